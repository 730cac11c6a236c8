"""AST + concrete inputs -> three-address SSA along the path the inputs take.

The lowering is an interpreter over the (fenced) gast AST that evaluates the
function on its concrete arguments and, as it goes, appends one equation per
operation on a traced value.  Guarantees of :func:`lower`:

* the result is a :class:`~ad_transform.ir.Program` in SSA form: one operation
  per equation, every variable defined once, named after the user's variable
  it was assigned to (``c``, ``c_1``, ...) or after its operation;
* ``if``/``elif``, ``and``/``or``, conditional expressions and ``while`` tests
  are decided on the concrete values; loops are unrolled; calls into the
  user's own Python functions (helpers, closures, lambdas, recursion) are
  inlined; operations on constants only are folded away;
* every decision that depends on the inputs is recorded in
  ``Program.decisions`` and checked by a guard equation, so the program is
  only ever run on inputs that take the same path;
* numbers and arrays read from globals, closure cells and attributes of the
  user's own modules, classes and objects are read at run time (their types
  guarded), not baked in; anything else read from them is resolved now and
  guarded: flags and containers by value (against a snapshot), functions and
  other objects by identity; modules and classes are resolved once, unguarded.

Interpreter values are: a :class:`Var` (traced), a Python list/tuple/dict
holding interpreter values (containers are structure, not data), a
:class:`Closure` (a function defined inside traced code) or any other Python
object, which is a constant.
"""
from __future__ import annotations

import builtins
import datetime
import functools
import inspect
import threading
import operator
import random
import sys
import types
import weakref

import gast
import numpy as np

from . import fence
from .errors import ADError, BadWrt, MissingRule, SourceUnavailable, UnsupportedSyntax
from .ir import Builder, Namer, Primitive, Program, Var
from . import runtime
from .rules import builtins as B
from .rules import lookup, lookup_attr, lookup_lowering, lookup_method
from .rules import numpy as N
from .source import FunctionSource, get_source, loc_of

__all__ = ["lower", "Closure"]

BINOPS = {
    gast.Add: operator.add, gast.Sub: operator.sub, gast.Mult: operator.mul,
    gast.Div: operator.truediv, gast.FloorDiv: operator.floordiv, gast.Mod: operator.mod,
    gast.Pow: operator.pow, gast.MatMult: operator.matmul, gast.BitAnd: operator.and_,
    gast.BitOr: operator.or_, gast.BitXor: operator.xor, gast.LShift: operator.lshift,
    gast.RShift: operator.rshift,
}
_SYMBOLS = {gast.Add: "+", gast.Sub: "-", gast.Mult: "*", gast.Div: "/", gast.FloorDiv: "//",
            gast.Mod: "%", gast.Pow: "**", gast.MatMult: "@", gast.BitAnd: "&",
            gast.BitOr: "|", gast.BitXor: "^", gast.LShift: "<<", gast.RShift: ">>"}
UNARY = {gast.USub: operator.neg, gast.UAdd: operator.pos, gast.Not: operator.not_,
         gast.Invert: operator.invert}
COMPARE = {
    gast.Lt: operator.lt, gast.LtE: operator.le, gast.Gt: operator.gt, gast.GtE: operator.ge,
    gast.Eq: operator.eq, gast.NotEq: operator.ne, gast.Is: operator.is_,
    gast.IsNot: operator.is_not, gast.In: lambda a, b: a in b,
    gast.NotIn: lambda a, b: a not in b,
}
# list/dict methods that change the container (refused on containers from outside)
_MUTATORS = frozenset({"append", "extend", "insert", "pop", "remove", "clear", "sort",
                       "reverse", "setdefault", "update", "popitem", "__setitem__",
                       "__delitem__", "__iadd__", "__imul__", "__ior__"})
_DATA_TYPES = (int, float, complex)  # read at run time when they come from globals or cells
_IMMUTABLE = (int, float, complex, bool, str, bytes, type(None), np.generic)


_FIRST_SEEN: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # see _check_unchanged


class _Return(Exception):
    def __init__(self, value):
        self.value = value


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class Closure:
    """A function defined inside traced code (``def`` or ``lambda``)."""

    def __init__(self, node, scope, src, defaults, kwdefaults):
        self.node, self.scope, self.src = node, scope, src
        self.defaults, self.kwdefaults = defaults, kwdefaults
        self.__name__ = getattr(node, "name", "<lambda>")


class _Generated(list):
    """The items of a one-shot iterator: a generator expression, ``map``, ``filter``,
    ``zip``, ``enumerate``, ``reversed`` (evaluated eagerly); iterating it or ``next()``
    consumes them, as in Python."""


class VarMethod:
    """``x.method`` for a traced ``x``, waiting to be called."""

    def __init__(self, var, name):
        self.var, self.name = var, name


class _Partial:
    """``functools.partial`` of an interpreter value (a local function, traced arguments):
    calling it calls ``func`` with the stored arguments first, as Python does."""

    def __init__(self, func, args, keywords):
        self.func, self.args, self.keywords = func, tuple(args), dict(keywords)
        self.__name__ = getattr(func, "__name__", "partial")


_USER_TYPES: dict = {}


def _user_instance(v) -> bool:
    """``v`` is an object of one of the user's own classes."""
    t = type(v)
    known = _USER_TYPES.get(t)
    if known is None:
        known = not issubclass(t, (type, types.ModuleType, types.FunctionType,
                                   types.MethodType, Closure, _Partial, VarMethod, Var)) \
            and _is_user_module(getattr(t, "__module__", "") or "", "")
        if len(_USER_TYPES) < 10_000:
            _USER_TYPES[t] = known
    return known


def _user_callable_object(v) -> bool:
    """An object of a user class whose ``__call__`` is the user's code."""
    call = getattr(type(v), "__call__", None)
    return _user_instance(v) and isinstance(call, types.FunctionType) and _is_user_code(call)


def _is_user_callable(v) -> bool:
    """A callable the interpreter must inline (never hand to library code as it is)."""
    if isinstance(v, (Closure, _Partial, VarMethod)):
        return True
    if isinstance(v, types.MethodType):
        v = v.__func__
    return isinstance(v, types.FunctionType) and _is_user_code(v) and not getattr(
        v, "__ad_transform__", False)


class Scope:
    __slots__ = ("locals", "parent", "globals", "cells", "local_names")

    def __init__(self, locals_, parent, globals_, cells, local_names):
        self.locals = locals_
        self.parent = parent
        self.globals = globals_
        self.cells = cells
        self.local_names = local_names


def _local_names(node) -> frozenset:
    """Names a function binds (Python makes them local for its whole body)."""
    cached = getattr(node, "_ad_locals", None)
    if cached is not None:
        return cached
    names = set()
    a = node.args
    for p in a.posonlyargs + a.args + a.kwonlyargs + [a.vararg, a.kwarg]:
        if p is not None:
            names.add(p.id)
    body = node.body if isinstance(node.body, list) else [node.body]
    stack = list(body)
    while stack:
        n = stack.pop()
        if isinstance(n, gast.Name) and isinstance(n.ctx, gast.Store):
            names.add(n.id)
        if isinstance(n, gast.FunctionDef):
            names.add(n.name)
            stack.extend(n.args.defaults)
            continue
        if isinstance(n, (gast.Lambda, gast.ListComp, gast.GeneratorExp)):
            continue
        stack.extend(gast.iter_child_nodes(n))
    node._ad_locals = frozenset(names)
    return node._ad_locals


def _contains_var(x) -> bool:
    if isinstance(x, Var):
        return True
    if isinstance(x, (list, tuple)):
        return any(_contains_var(i) for i in x)
    if isinstance(x, dict):
        return any(_contains_var(i) for i in x.values())
    return False


def _sees_write(arr, idx, view) -> bool:
    """Would ``view`` (sharing memory with ``arr``) change under ``arr[idx] = ...``?

    Found by writing 0, then 1, into ``arr`` (restored after): every element written
    differs from its old value in one of the two.  An index computed at run time (an
    index array) may write elsewhere next time: any shared memory counts then.
    """
    if _contains_var(idx) or not arr.flags.writeable:
        return True
    saved, before = arr.copy(), view.tobytes()
    try:
        for fill in (0, 1):
            arr[idx] = fill
            if view.tobytes() != before:
                return True
        return False
    finally:
        arr[...] = saved


def _is_user_module(module: str, filename: str) -> bool:
    """Code of the (dotted) ``module``, in ``filename``, is the user's: not the standard
    library, NumPy, SciPy, ad_transform or an installed package."""
    root = module.split(".")[0]
    if root in sys.stdlib_module_names or root in ("numpy", "scipy", "ad_transform"):
        return False
    return "site-packages" not in filename and "dist-packages" not in filename


def _is_user_code(fn) -> bool:
    """True for functions the user wrote (inlined), False for libraries (opaque)."""
    filename = getattr(getattr(fn, "__code__", None), "co_filename", "")
    return _is_user_module(getattr(fn, "__module__", "") or "", filename)


def _user_attribute(obj, name) -> bool:
    """``obj.name`` is the user's own mutable state: an attribute of one of their modules
    or classes, or an instance attribute of any object (not ``math.pi``, ``np.float64``)."""
    if isinstance(obj, types.ModuleType):
        return _is_user_module(obj.__name__, getattr(obj, "__file__", "") or "")
    if isinstance(obj, type):
        return name in vars(obj) and _is_user_code(obj)
    attrs = getattr(obj, "__dict__", None)
    if isinstance(attrs, dict) and name in attrs:
        return True
    # through an instance of the user's class: a class attribute, a property (its getter
    # runs again at run time) or a __slots__ member; not a method (resolved by the class)
    static = inspect.getattr_static(obj, name, None)
    return _is_user_code(type(obj)) and not isinstance(
        static, (types.FunctionType, staticmethod, classmethod))


# NumPy functions whose result's shape depends on the values of their operands, not only
# on their shapes (a mask's count, the distinct values, ...), and those whose shape follows
# a count or shape operand (guarded when that operand is traced, i.e. read at run time).
_VALUE_SHAPED = frozenset({
    "nonzero", "flatnonzero", "argwhere", "unique", "unique_values", "unique_counts",
    "unique_inverse", "unique_all", "compress", "extract", "trim_zeros", "setdiff1d",
    "intersect1d", "union1d", "setxor1d", "histogram", "bincount"})
_COUNT_SHAPED = frozenset({
    "repeat", "arange", "linspace", "delete", "insert", "resize", "tile", "full", "zeros",
    "ones", "empty", "eye", "identity", "reshape", "broadcast_to", "take"})


def _has_mask(idx) -> bool:
    if isinstance(idx, np.ndarray):
        return idx.dtype == np.bool_
    if isinstance(idx, (tuple, list)):
        return any(_has_mask(i) for i in idx)
    return False


def _value_shaped(prim, ins, vals) -> bool:
    """Can the type, shape or dtype of ``prim(*vals)`` change with the *values* (not the
    signatures) of its operands?  Such a result's signature is guarded where it is made."""
    if not any(isinstance(x, Var) for x in ins):
        return False  # a read from outside (a global, a cell, an attribute): the reader
        # guards it (Lowerer._load_outside, Lowerer._guard_function)
    if prim is B.getitem:  # an element of a list/dict/object, or a boolean-mask selection
        return type(vals[0]) is not np.ndarray or _has_mask(vals[1])
    if prim in (B.call_opaque, B.load_global, B.load_cell) or prim.form[0] in (
            "getattr", "method", "call_obj"):
        return True  # a library's or the user's object: anything may come back
    if prim.form[:2] in (("binop", "**"), ("call", "pow")):
        a, b = vals[:2]
        if type(a) is int and type(b) is int:
            return True  # 2 ** -1 is a float
        # (-8.0) ** (1 / 3) is complex: a float exponent that may be fractional
        return type(a) in (int, float) and type(b) is float and (
            isinstance(ins[1], Var) or not b.is_integer())
    if prim in (B.max2, B.min2, B.sum_items):  # max(1, 2.0) is 2.0, max(3, 2.0) is 3
        return len({type(v) for v in vals}) > 1
    name = prim.name.rsplit(".", 1)[-1]
    if name == "where":
        return len(vals) == 1
    if name in _VALUE_SHAPED:
        return True
    return name in _COUNT_SHAPED and any(isinstance(x, Var) for x in ins[1:])


class _PathBuilder(Builder):
    """The lowering's :class:`Builder`.  Invariant it keeps: the type (and an array's shape
    and dtype) of every traced value is fixed by guarded facts.  Inputs and values read
    from outside are guarded by :meth:`Lowerer._load_outside` and the entry guard; a value
    whose signature may depend on its operands' *values* (:func:`_value_shaped`: a mask
    selection, ``np.nonzero``, an element of a traced container, an attribute of a traced
    object, an opaque call's result) gets a ``guard_types`` right after it is made.  So
    :meth:`Lowerer.sig` may read any traced value's type, shape and dtype."""

    def __init__(self, lowerer, namer, max_eqns):
        super().__init__(namer, max_eqns)
        self.lowerer = lowerer

    def _emit(self, prim, ins, vals, params, hint):
        out = super()._emit(prim, ins, vals, params, hint)
        if self.phase == "primal" and _value_shaped(prim, ins, vals):
            self.lowerer._decide(B.guard_types, (out,), runtime.signatures(self.values[out]),
                                 None)
        return out


_RNG_TYPES = (random.Random, np.random.Generator, np.random.RandomState,
              np.random.BitGenerator)


_CLOCKS = {("time", n) for n in ("time", "time_ns", "perf_counter", "perf_counter_ns",
                                  "monotonic", "monotonic_ns", "process_time", "thread_time")}
_CLOCKS |= {("os", "urandom"), ("os", "getenv"), ("uuid", "uuid1"), ("uuid", "uuid4")}


def _draws_random(func) -> bool:
    """``func`` draws from a random generator held outside the traced values
    (``np.random.rand``, ``random.random``, ``rng.normal`` on a global ``rng``)."""
    owner = getattr(func, "__self__", None)
    return isinstance(owner, _RNG_TYPES) or (
        getattr(func, "__module__", None) in ("numpy.random", "random", "secrets")
        and getattr(func, "__name__", "") not in ("default_rng", "Generator", "RandomState",
                                                  "Random", "PCG64", "SeedSequence"))


def _reads_world(func) -> bool:
    """``func`` reads the clock or the environment: its answer changes between calls."""
    mod = getattr(func, "__module__", None)
    if mod == "posix" or mod == "nt":
        mod = "os"
    owner = getattr(func, "__self__", None)
    if isinstance(owner, type) and issubclass(owner, (datetime.date, datetime.time)):
        return getattr(func, "__name__", "") in ("now", "today", "utcnow")
    return _hashable(func) and (mod, getattr(func, "__name__", "")) in _CLOCKS


def _describe(fn) -> str:
    mod = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"{mod}.{name}" if mod and mod != "builtins" else name


class Lowerer:
    def __init__(self, fn, wrt, max_eqns=200_000):
        self.fn = fn
        self.wrt = wrt
        self.namer = Namer()
        self.b = _PathBuilder(self, self.namer, max_eqns)
        self.decisions: list = []
        self.guarded: dict = {}
        self.loads: dict = {}
        self.src: FunctionSource | None = None
        self.scope: Scope | None = None
        self._locs: dict = {}
        self.inputs: set = set()
        self.return_loc = None
        self.frames: list = []  # the scope of each function being run, outermost first
        self.depth = 0  # inlined calls being run (recursion depth of the user's code)
        self.max_depth = sys.getrecursionlimit()
        self._finished = False
        self._defaults: list = []  # default values of inlined functions (outside state)

    # -- entry point -----------------------------------------------------------
    def lower(self, args) -> tuple[Program, dict]:
        fn = self.fn
        sig = inspect.signature(fn)
        params = list(sig.parameters)
        # a plain function runs as the body; anything else (a bound method, a
        # functools.wraps wrapper, a partial, an object with __call__) is called with
        # the arguments its visible signature binds, and inlined like any call
        direct = isinstance(fn, types.FunctionType) and params == list(
            inspect.signature(fn, follow_wrapped=False).parameters)
        src = get_source(fn if direct else _entry_code(fn))
        fence.check(src)
        self.src = src
        self.b.loc = self.loc(src.node)
        with self.b:
            inputs = [self.b.input(name, value) for name, value in zip(params, args)]
            for i in self.wrt:
                self._check_wrt(params[i], args[i])
                self.b.active.add(inputs[i])
            self._decide(B.guard_types, inputs, runtime.signatures(*args), src.node)
            self._check_unchanged(fn, src.node)
            self.inputs = set(inputs)
            try:
                if direct:
                    locals_ = dict(zip(params, inputs))
                    scope = Scope(locals_, None, fn.__globals__, self._cells(fn),
                                  _local_names(src.node))
                    result = self._run(src, scope)
                else:
                    result = self._call_entry(fn, sig, inputs, src)
            except (ADError, _Break, _Continue):
                raise
            except RecursionError:
                raise UnsupportedSyntax("recursion too deep to unroll along this path",
                                        self.b.loc) from None
            except Exception as exc:
                if self.b.loc is not None and not getattr(exc, "_ad_noted", False):
                    note = (f"(raised at {self.b.loc} while ad_transform lowered "
                            f"{src.name}){self.b.loc.excerpt()}")
                    if hasattr(exc, "add_note"):
                        exc.add_note(note)
                    else:  # Python 3.10: keep the note where 3.11 would (not printed there)
                        exc.__notes__ = [*getattr(exc, "__notes__", []), note]
                    exc._ad_noted = True
                raise
        prog = Program(src.name, tuple(inputs), self.b.eqns, (result,), tuple(self.decisions),
                       self.namer, self.return_loc)
        return prog, self.b.values

    def _check_unchanged(self, fn, node):
        """The differentiated function's ``__code__`` and defaults are those it had when it
        was first lowered (the caller binds arguments by the signature it read then):
        a replaced one raises here, on the next lowering.  (Not re-checked on every call:
        see docs/python-subset.md.)"""
        now = (fn.__code__, runtime.snapshot(fn.__defaults__), runtime.snapshot(fn.__kwdefaults__))
        first = _FIRST_SEEN.setdefault(fn, now)
        if first[0] is not now[0] or not runtime.same(list(first[1:]), list(now[1:])):
            what = "__code__" if first[0] is not now[0] else "__defaults__/__kwdefaults__"
            raise UnsupportedSyntax(
                f"the {what} of {fn.__qualname__} was replaced after it was first "
                "differentiated; ad_transform does not follow a function whose code or "
                "defaults change: define a new function instead", self.loc(node))

    def _call_entry(self, fn, sig, inputs, src):
        """Call ``fn`` with the inputs bound to its visible signature's parameters."""
        self.scope = Scope({}, None, getattr(_entry_code(fn), "__globals__", {}), {},
                           frozenset())
        args, kwargs = [], {}
        for p, inp in zip(sig.parameters.values(), inputs):
            if p.kind == p.VAR_POSITIONAL:
                args.extend(self.iterate(inp, src.node))
            elif p.kind == p.VAR_KEYWORD:
                kwargs.update(self._as_mapping(inp, src.node))
            elif p.kind == p.KEYWORD_ONLY:
                kwargs[p.name] = inp
            else:
                args.append(inp)
        return self.call(fn, args, kwargs, src.node)

    def _check_wrt(self, name, value):
        a = self.src.node.args  # errors point at the parameter in the signature
        loc = next((self.loc(p) for p in a.posonlyargs + a.args + a.kwonlyargs if p.id == name),
                   self.loc(self.src.node))
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        dtype = getattr(value, "dtype", None)
        if dtype is not None and hasattr(value, "shape"):
            ok = dtype.kind in "fiu"
            if dtype.kind == "c":
                raise BadWrt(f"argument {name!r} is complex ({dtype}); ad_transform "
                             "differentiates real inputs only", loc)
            if not ok:  # bool, str, object, datetime ... arrays
                raise BadWrt(f"argument {name!r} is an array of {dtype}; a wrt array must "
                             "hold floats or ints", loc)
        if isinstance(value, complex):
            raise BadWrt(f"argument {name!r} is complex; ad_transform differentiates real "
                         "inputs only", loc)
        if not ok:
            raise BadWrt(f"argument {name!r} is a {type(value).__name__}; a wrt argument must "
                         "be a float, an int or a NumPy array", loc)

    def loc(self, node):
        key = (self.src.filename, getattr(node, "lineno", 0), getattr(node, "col_offset", 0))
        loc = self._locs.get(key)
        if loc is None:
            loc = self._locs[key] = loc_of(self.src.filename, node)
        return loc

    @staticmethod
    def _cells(fn) -> dict:
        return dict(zip(fn.__code__.co_freevars, fn.__closure__ or ()))

    def _run(self, src, scope):
        saved = self.src, self.scope
        self.src, self.scope = src, scope
        self.frames.append(scope)
        try:
            node = src.node
            if isinstance(node, gast.Lambda):
                return self.eval(node.body)
            try:
                self.exec_block(node.body)
            except _Return as r:
                return r.value
            self.return_loc = self.loc(node)
            return None
        finally:
            self.frames.pop()
            self.src, self.scope = saved

    # -- decisions -------------------------------------------------------------
    def _decide(self, prim, ins, expect, node):
        key = (prim, tuple(ins))
        if key in self.guarded:
            return
        self.guarded[key] = expect
        if node is not None:
            self.b.loc = self.loc(node)
        self.b.guard(prim, ins, {"expect": expect, "index": len(self.decisions)})
        self.decisions.append(expect)

    # -- the only places lowering reads a concrete value ----------------------------
    # tests/test_guards.py::test_lowering_reads_values_only_through_facts checks that no
    # other code in this module reads ``b.value``/``b.values``.
    def _fact(self, x):
        """The concrete value of ``x``, for :meth:`truth`, :meth:`concrete` and guards
        only: each records the guard that re-checks what it read (or raises)."""
        return self.b.value(x)

    def sig(self, x):
        """The concrete value of ``x``, to read its type, and an array's shape, ndim and
        dtype: nothing else (values go through :meth:`truth` or :meth:`concrete`).  Sound
        without a new guard: :class:`_PathBuilder` keeps every traced value's signature
        fixed by guarded facts.  (Rules read shapes the same way, through
        ``rules.core.value_of``.)"""
        return self.b.value(x)

    def _memory(self, x):
        """The array behind ``x``, to ask which bindings share its memory (item-assignment
        and ``+=`` aliasing checks).  Sharing follows from the operations that made the
        arrays (a slice is a view, arithmetic makes a new array), which the path fixes,
        and from the inputs' own memory, which only makes a check refuse more."""
        return self.b.value(x)

    def truth(self, x, node) -> bool:
        if not isinstance(x, Var):
            return bool(x)
        outcome = bool(self._fact(x))
        self._decide(B.guard_truth, (x,), outcome, node)
        return outcome

    def concrete(self, x, node):
        """The value of ``x`` where Python needs it now (a count, an index, a key)."""
        if isinstance(x, Var):
            value = self._fact(x)
            if hasattr(value, "shape") and getattr(value, "ndim", 0) > 0:
                return x  # an index array stays traced
            # against a snapshot: a list or dict may change in place before the next call
            self._decide(B.guard_eq, (x,), runtime.snapshot(value), node)
            return value
        if isinstance(x, tuple):
            return tuple(self.concrete(i, node) for i in x)
        if isinstance(x, slice):
            return slice(*(self.concrete(i, node) for i in (x.start, x.stop, x.step)))
        return x

    def plain(self, x, node):
        """``x`` as a plain Python value, every traced part in it guarded by value
        (against a snapshot): for text baked into the path."""
        if isinstance(x, Var):
            value = self._fact(x)
            self._decide(B.guard_eq, (x,), runtime.snapshot(value), node)
            return value
        if isinstance(x, (list, tuple)) and _contains_var(x):
            return type(x)(self.plain(i, node) for i in x)
        if isinstance(x, dict) and _contains_var(x):
            return {k: self.plain(i, node) for k, i in x.items()}
        return x

    # -- statements ------------------------------------------------------------
    def exec_block(self, stmts):
        for s in stmts:
            self.b.loc = self.loc(s)
            getattr(self, "s_" + type(s).__name__)(s)

    def s_Expr(self, s):
        self.eval(s.value)

    def s_Pass(self, s):
        pass

    def s_Break(self, s):
        raise _Break()

    def s_Continue(self, s):
        raise _Continue()

    def s_Return(self, s):
        self.return_loc = self.loc(s)
        raise _Return(None if s.value is None else self.eval(s.value))

    def s_Assign(self, s):
        hint = s.targets[0].id if len(s.targets) == 1 and isinstance(s.targets[0], gast.Name) else None
        value = self.eval(s.value, hint)
        for t in s.targets:
            self.assign(t, value)

    def s_AnnAssign(self, s):
        if s.value is not None:
            hint = s.target.id if isinstance(s.target, gast.Name) else None
            self.assign(s.target, self.eval(s.value, hint))

    def s_AugAssign(self, s):
        t = s.target
        rhs = self.eval(s.value)
        if isinstance(t, gast.Name):
            cur = self.lookup(t.id, t)
            if isinstance(cur, (list, dict)):  # in-place, as Python does
                self.scope.locals[t.id] = self._inplace(type(s.op), cur, rhs, s)
            elif type(self.sig(cur)) is np.ndarray:  # traced, or a constant made here
                self.scope.locals[t.id] = self._inplace_array(type(s.op), cur, rhs, t, s)
            else:
                self.scope.locals[t.id] = self.binop(type(s.op), cur, rhs, s, t.id)
            return
        obj = self.eval(t.value)
        idx = self.index(t.slice)
        cur = self.getitem(obj, idx, t)
        self.setitem(t, obj, idx, self.binop(type(s.op), cur, rhs, s))

    def _inplace_array(self, opcls, cur, rhs, target, node):
        """``y += x`` on an array: NumPy writes into ``y``; the path makes a new array and
        rebinds ``y``, which is faithful only when nothing else sees ``y``'s memory and
        the result keeps ``y``'s shape and dtype.  Otherwise refused, located."""
        op = _SYMBOLS.get(opcls, opcls.__name__)
        if (isinstance(cur, Var) and cur in self.inputs) or self._outside_memory(cur):
            raise UnsupportedSyntax(
                f"in-place '{op}=' on an input array or on an array read from a global or a "
                f"closure (the caller's array would change); write {target.id} = "
                f"{target.id} ... instead", self.loc(node))
        others = self._sharers(cur, Ellipsis, (self.scope, target.id))
        if others:
            raise UnsupportedSyntax(
                f"in-place '{op}=' on an array also bound to {', '.join(others)}; NumPy "
                "would change it there too, ad_transform updates arrays functionally: write "
                f"{target.id} = {target.id} ... (a new array) instead", self.loc(node))
        new = self.binop(opcls, cur, rhs, node, target.id)
        before, after = runtime.signature(self.sig(cur)), runtime.signature(self.sig(new))
        if before != after:
            raise UnsupportedSyntax(
                f"in-place '{op}=' that would change the array's shape or dtype ({before[1]} "
                f"{before[2]} -> {after[1]} {after[2]}): NumPy casts or raises here; write "
                f"{target.id} = {target.id} ... (a new array) instead", self.loc(node))
        return new

    def _inplace(self, opcls, cur, rhs, node):
        if opcls is gast.Add:
            cur += self.iterate(rhs, node) if isinstance(cur, list) else rhs
            return cur
        if opcls is gast.Mult:
            cur *= self.concrete(rhs, node)
            return cur
        if opcls is gast.BitOr and isinstance(cur, dict):
            cur |= rhs
            return cur
        return self.binop(opcls, cur, rhs, node)

    def s_If(self, s):
        if self.truth(self.eval(s.test), s.test):
            self.exec_block(s.body)
        else:
            self.exec_block(s.orelse)

    def s_While(self, s):
        while True:
            if not self.truth(self.eval(s.test), s.test):
                self.exec_block(s.orelse)
                return
            try:
                self.exec_block(s.body)
            except _Break:
                return
            except _Continue:
                pass
            self.b.loc = self.loc(s)

    def s_For(self, s):
        for item in self._live(self.eval(s.iter), s.iter):
            self.b.loc = self.loc(s)
            self.assign(s.target, item)
            try:
                self.exec_block(s.body)
            except _Break:
                return
            except _Continue:
                pass
        self.exec_block(s.orelse)

    def s_Assert(self, s):
        if not self.truth(self.eval(s.test), s.test):
            msg = () if s.msg is None else (self._fact(self.eval(s.msg)),)  # raise-only: no path
            raise AssertionError(*msg)

    def s_Raise(self, s):
        exc = self.eval(s.exc) if s.exc is not None else RuntimeError("re-raise outside except")
        cause = self.eval(s.cause) if s.cause is not None else None
        raise exc from cause

    def s_FunctionDef(self, s):
        self.scope.locals[s.name] = self._closure(s)

    def _closure(self, node):
        a = node.args
        defaults = [self.eval(d) for d in a.defaults]
        kwdefaults = {p.id: self.eval(d) for p, d in zip(a.kwonlyargs, a.kw_defaults)
                      if d is not None}
        return Closure(node, self.scope, self.src, defaults, kwdefaults)

    # -- assignment targets ----------------------------------------------------
    def assign(self, target, value):
        if isinstance(target, gast.Name):
            self.scope.locals[target.id] = value
        elif isinstance(target, (gast.Tuple, gast.List)):
            items = self.iterate(value, target)
            if len(items) != len(target.elts):
                raise ValueError(f"cannot unpack {len(items)} values into {len(target.elts)} names")
            for t, v in zip(target.elts, items):
                self.assign(t, v)
        else:  # Subscript (the fence rules out everything else)
            self.setitem(target, self.eval(target.value), self.index(target.slice), value)

    def setitem(self, target, obj, idx, value):
        """``obj[idx] = value`` for the Subscript ``target``.

        Lists and dicts are structure and change in place.  A traced array is
        updated functionally (a new SSA value) and the name that held it is
        rebound, which is only faithful when no other name shares the array.
        """
        if isinstance(obj, (list, dict)):
            obj[self.concrete(idx, target)] = value
            return
        if not isinstance(self.sig(obj), np.ndarray):
            what = type(self.sig(obj)).__name__
            raise UnsupportedSyntax(f"item assignment to a {what} value", self.loc(target))
        if isinstance(obj, Var) and obj in self.inputs:
            raise UnsupportedSyntax("writing into an input array (the caller's array would "
                                    "change); copy it first, e.g. y = x.copy()", self.loc(target))
        holder = target.value
        if not isinstance(holder, gast.Name):
            others = []
        elif self._outside_memory(obj):
            raise UnsupportedSyntax("writing into a view of an input array or into an array "
                                    "read from a global or closure (the caller's array would "
                                    "change); copy it first, e.g. y = x.copy()", self.loc(target))
        else:
            others = self._sharers(obj, self.concrete(idx, target), (self.scope, holder.id))
        if others or not isinstance(holder, gast.Name):
            raise UnsupportedSyntax(
                "item assignment to an array that is also bound to "
                f"{', '.join(others) or 'another expression'}; ad_transform updates arrays "
                "functionally, so write through one plain name", self.loc(target))
        self.b.loc = self.loc(target)
        idx = self.index_atom(self.concrete(idx, target), target)
        new = self.b.apply(N.setitem, (obj, idx, value), None, hint=holder.id)
        self.scope.locals[holder.id] = new

    def _outside_memory(self, obj) -> bool:
        """``obj`` is (a view of) an input array or an array read from a global or a cell."""
        arr = self._memory(obj)
        outside = [self._memory(v) for v in self.inputs]
        outside += [self._memory(v) for v in self.loads.values() if isinstance(v, Var)]
        return type(arr) is np.ndarray and any(
            isinstance(o, np.ndarray) and np.shares_memory(arr, o) for o in outside)

    def _sharers(self, obj, idx, skip) -> list:
        """Names of live bindings that would see ``obj[idx] = ...`` in NumPy but not in the
        functional update: ``obj`` itself under another name (in this frame, a caller's
        frame or a list), and views into the elements written (``row = A[1]`` for
        ``A[1, 2] = v``; ``A`` for ``row[2] = v``).  ``skip`` is ``(scope, name)``, the
        binding that is rebound to the update."""
        arr = self._memory(obj)
        scopes, seen = [], set()
        for s in [self.scope, *self.frames]:
            while s is not None and id(s) not in seen:
                seen.add(id(s))
                scopes.append(s)
                s = s.parent
        found, visited = [], set()

        def visit(name, v):
            if isinstance(v, (list, tuple, dict)):
                if id(v) not in visited:
                    visited.add(id(v))
                    for item in (v.values() if isinstance(v, dict) else v):
                        visit(name, item)
            elif v is obj:
                found.append(name)
            else:
                val = self._memory(v) if isinstance(v, Var) else v
                if type(val) is np.ndarray and type(arr) is np.ndarray and \
                        np.shares_memory(val, arr) and _sees_write(arr, idx, val):
                    found.append(name)

        for s in scopes:
            for k, v in s.locals.items():
                if s is not skip[0] or k != skip[1]:
                    visit(k, v)
        return list(dict.fromkeys(found))

    # -- expressions -----------------------------------------------------------
    def eval(self, node, hint=None):
        return getattr(self, "e_" + type(node).__name__)(node, hint)

    def e_Constant(self, node, hint):
        return node.value

    def e_Name(self, node, hint):
        return self.lookup(node.id, node)

    def lookup(self, name, node):
        scope = self.scope
        if name in scope.locals:
            return scope.locals[name]
        if name in scope.local_names:
            raise UnboundLocalError(f"local variable '{name}' referenced before assignment "
                                    f"(at {self.loc(node)})")
        p = scope.parent
        while p is not None:
            if name in p.locals:
                return p.locals[name]
            if name in p.local_names:  # the enclosing function's, not yet assigned
                raise NameError(f"cannot access free variable '{name}' where it is not "
                                f"associated with a value (at {self.loc(node)})")
            p = p.parent
        if name in scope.cells:
            return self._from_cell(scope.cells[name], name, node)
        if name in scope.globals:
            return self._from_global(scope.globals, name, node)
        if hasattr(builtins, name):
            return getattr(builtins, name)
        raise NameError(f"name '{name}' is not defined (at {self.loc(node)})")

    def _is_data(self, obj):
        """Numbers and arrays from globals and cells: read at run time, never baked in."""
        return (isinstance(obj, _DATA_TYPES) and not isinstance(obj, bool)) or isinstance(
            obj, (np.ndarray, np.generic))

    def _from_global(self, g, name, node):
        key = (id(g), name)
        if key in self.loads:
            return self.loads[key]
        return self._load_outside(
            key, g[name], lambda: self.b.emit(B.load_global, (g, name), hint=name), node)

    def _load_outside(self, key, value, load, node):
        """A value from outside the function (a global, a closure cell, a user attribute),
        remembered under ``key``.  Data is read at run time (``load()`` emits the read) and
        its type guarded; anything else is baked into the path and guarded."""
        self.b.loc = self.loc(node)
        if self._is_data(value):
            value = load()
            self._decide(B.guard_types, (value,), runtime.signatures(self._fact(value)), node)
        else:
            self._guard_constant(value, load, node)
        self.loads[key] = value
        return value

    def _guard_constant(self, obj, load, node):
        """Guard a global or a closure cell that is not data: its value is baked into the
        path.  ``load()`` emits the read of it at run time."""
        if isinstance(obj, (type, types.ModuleType)):
            return  # resolved once (see docs/python-subset.md)
        if isinstance(obj, (bool, str, bytes, type(None), list, tuple, dict, set, frozenset)):
            # flags and containers are baked into the path, so guard their values, against
            # a snapshot (a list may change in place); functions and arrays in them by
            # identity (runtime.same)
            self._decide(B.guard_eq, (load(),), runtime.snapshot(obj), node)
        else:
            # a function or another object: the path depends on which one, so guard its
            # identity (ACTIVATION = math.tanh rebound to math.sin must not reuse tanh's path)
            self._decide(B.guard_is, (load(),), obj, node)

    def _guard_function(self, fn, node):
        """An inlined function's code and defaults are baked into the path: one guard
        checks its ``__code__`` by identity and its ``__defaults__``/``__kwdefaults__``
        against a snapshot, so replacing them makes (or refuses) a new path."""
        key = (id(fn), "function_state")
        if key in self.loads:
            return
        self.b.loc = self.loc(node)
        state = self.b.emit(B.function_state, (fn,), hint="state")
        self._decide(B.guard_eq, (state,), runtime.snapshot(runtime.function_state(fn)), node)
        self.loads[key] = state

    def _from_cell(self, cell, name, node):
        key = id(cell)
        if key in self.loads:
            return self.loads[key]
        return self._load_outside(
            key, cell.cell_contents, lambda: self.b.emit(B.load_cell, (cell,), hint=name), node)

    def apply(self, fn, ins, node, hint=None, params=None):
        prim = lookup(fn)
        if prim is None:
            raise MissingRule(f"no derivative rule for {_describe(fn)}", self.loc(node))
        self.b.loc = self.loc(node)
        return self.b.apply(prim, ins, params, hint)

    def e_BinOp(self, node, hint):
        return self.binop(type(node.op), self.eval(node.left), self.eval(node.right), node, hint)

    def binop(self, opcls, left, right, node, hint=None):
        fn = BINOPS[opcls]
        if _user_instance(self.sig(left) if isinstance(left, Var) else left) or \
                _user_instance(self.sig(right) if isinstance(right, Var) else right):
            return self.user_operator(fn, left, right, node, hint)
        lv, rv = isinstance(left, Var), isinstance(right, Var)
        if not lv and not rv:
            return fn(left, right)  # constants, and list/tuple concatenation
        if isinstance(left, (list, tuple)) or isinstance(right, (list, tuple)):
            return fn(self.concrete(left, node), self.concrete(right, node))
        return self.apply(fn, (left, right), node, hint)

    def e_UnaryOp(self, node, hint):
        x = self.eval(node.operand)
        fn = UNARY[type(node.op)]
        if not isinstance(x, Var):
            return fn(x)
        return self.apply(fn, (x,), node, hint)

    def e_BoolOp(self, node, hint):
        is_and = isinstance(node.op, gast.And)
        for expr in node.values[:-1]:
            v = self.eval(expr)
            if self.truth(v, expr) != is_and:
                return v
        return self.eval(node.values[-1])

    def e_Compare(self, node, hint):
        left = self.eval(node.left)
        result = True
        for i, (op, comp) in enumerate(zip(node.ops, node.comparators)):
            right = self.eval(comp)
            result = self.compare(type(op), left, right, node, hint)
            if i + 1 < len(node.ops) and not self.truth(result, node):
                return result
            left = right
        return result

    def compare(self, opcls, left, right, node, hint=None):
        fn = COMPARE[opcls]
        lv, rv = isinstance(left, Var), isinstance(right, Var)
        if opcls in (gast.In, gast.NotIn) and type(right) in (list, tuple) and (
                _contains_var(right) or lv):  # item by item, as Python does (see call_...)
            found = self._seq_method(right, "__contains__", [left], node)
            return found if opcls is gast.In else not found
        if not lv and not rv:
            return fn(left, right)
        if opcls in (gast.Is, gast.IsNot) and (left is None or right is None):
            return fn(self.sig(left), self.sig(right))  # decided by the type guard
        if opcls in (gast.In, gast.NotIn):
            if _contains_var(right) and not isinstance(right, Var):
                raise MissingRule("'in' on a container holding traced values is not supported",
                                  self.loc(node))
            prim = B.contains if opcls is gast.In else B.not_in
            self.b.loc = self.loc(node)
            return self.b.apply(prim, (left, right), None, hint)
        return self.apply(fn, (left, right), node, hint)

    def e_IfExp(self, node, hint):
        if self.truth(self.eval(node.test), node.test):
            return self.eval(node.body, hint)
        return self.eval(node.orelse, hint)

    def e_Lambda(self, node, hint):
        return self._closure(node)

    def e_Tuple(self, node, hint):
        return tuple(self._elements(node.elts))

    def e_List(self, node, hint):
        return self._elements(node.elts)

    def _elements(self, elts):
        out = []
        for e in elts:
            if isinstance(e, gast.Starred):
                out.extend(self.iterate(self.eval(e.value), e))
            else:
                out.append(self.eval(e))
        return out

    def e_Dict(self, node, hint):
        out = {}
        for k, v in zip(node.keys, node.values):
            if k is None:
                out.update(self.eval(v))
            else:
                out[self.concrete(self.eval(k), k)] = self.eval(v)
        return out

    def e_ListComp(self, node, hint):
        out = []
        saved = self.scope
        self.scope = Scope({}, saved, saved.globals, saved.cells, frozenset())
        try:
            self._comprehend(node, 0, out)
        finally:
            self.scope = saved
        return out

    def e_GeneratorExp(self, node, hint):
        # Evaluated eagerly, all at once; next() takes items from the front (see _i_next).
        return _Generated(self.e_ListComp(node, hint))

    def _comprehend(self, node, i, out):
        if i == len(node.generators):
            out.append(self.eval(node.elt))
            return
        gen = node.generators[i]
        for item in self.iterate(self.eval(gen.iter), gen.iter):
            self.assign(gen.target, item)
            if all(self.truth(self.eval(c), c) for c in gen.ifs):
                self._comprehend(node, i + 1, out)

    def e_JoinedStr(self, node, hint):
        parts = []
        for v in node.values:
            parts.append(v.value if isinstance(v, gast.Constant) else self.e_FormattedValue(v, None))
        return "".join(parts)

    def e_FormattedValue(self, node, hint):
        # The text is baked into the path, so a traced scalar is guarded like an index.
        # The text is baked into the path: every traced value in it is guarded by value
        # (an array too: f"{x}" shows its elements).
        value = self.plain(self.eval(node.value), node)
        conv = {115: str, 114: repr, 97: ascii}.get(node.conversion)
        if conv is not None:
            value = conv(value)
        spec = self.e_JoinedStr(node.format_spec, None) if node.format_spec else ""
        return format(value, spec)

    def e_Starred(self, node, hint):
        raise UnsupportedSyntax("starred expression here", self.loc(node))

    def e_Attribute(self, node, hint):
        obj = self.eval(node.value)
        if isinstance(obj, Var):
            return self.var_attr(obj, node.attr, node, hint)
        if isinstance(obj, Closure):
            raise UnsupportedSyntax("attribute of a local function", self.loc(node))
        value = getattr(obj, node.attr)
        if isinstance(value, types.MethodType) and _is_user_code(value.__func__):
            return self._bound_method(obj, node.attr, value, node)
        if _user_attribute(obj, node.attr):
            return self._from_attribute(obj, node.attr, value, node)
        return value

    def _from_attribute(self, obj, name, value, node):
        """``config.RATE``, ``settings.flag``: an attribute of the user's own module, class
        or object, which may change between calls like a global.  Read at run time when it
        is data, guarded like a global otherwise."""
        key = (id(obj), name, "attr")
        if key in self.loads:
            return self.loads[key]
        return self._load_outside(
            key, value, lambda: self.b.emit(B.getattr_(name), (obj,), hint=name), node)

    def var_attr(self, var, name, node, hint=None):
        value = self.sig(var)
        attr_rule = lookup_attr(value, name)
        if attr_rule is not None:
            self.b.loc = self.loc(node)
            return attr_rule(var)
        if isinstance(value, (int, float)) and name == "real":
            return var
        if isinstance(value, (int, float)) and name == "imag":
            return 0.0 * value
        attr = getattr(value, name)  # AttributeError as Python would raise it
        if callable(attr):
            return VarMethod(var, name)
        if var in self.b.active:
            raise MissingRule(f"no derivative rule for attribute .{name} of "
                              f"{type(value).__name__}", self.loc(node))
        self.b.loc = self.loc(node)
        return self.b.emit(B.getattr_(name), (var,), hint=hint or name)

    def e_Subscript(self, node, hint):
        obj = self.eval(node.value)
        return self.getitem(obj, self.index(node.slice), node, hint)

    def index(self, node):
        if isinstance(node, gast.Slice):
            return slice(*(None if p is None else self.eval(p)
                           for p in (node.lower, node.upper, node.step)))
        if isinstance(node, gast.Tuple):
            return tuple(self.index(e) for e in node.elts)
        return self.eval(node)

    def getitem(self, obj, idx, node, hint=None):
        if isinstance(obj, Var) or (isinstance(obj, np.ndarray) and _contains_var(idx)):
            idx = self.index_atom(self.concrete(idx, node), node)
            self.b.loc = self.loc(node)
            return self.b.apply(B.getitem, (obj, idx), None, hint)
        return obj[self.concrete(idx, node)]

    def index_atom(self, idx, node):
        """An index tuple holding traced index arrays (``x[rows, cols]``, ``x[:, mask]``)
        becomes one traced value, built at run time."""
        if isinstance(idx, tuple) and _contains_var(idx):
            self.b.loc = self.loc(node)
            return self.b.apply(N.index_tuple, idx, None, "idx")
        return idx

    def _live(self, x, node):
        """Iterate as Python's ``for`` does: a list changed inside the loop is seen
        (``queue.append(v)`` in the body adds an iteration), and items a ``break`` leaves
        in a one-shot iterator (``zip``, a generator expression) stay there."""
        if isinstance(x, _Generated):
            while x:
                yield x.pop(0)
        elif type(x) is list:
            i = 0
            while i < len(x):
                i += 1
                yield x[i - 1]
        else:
            yield from self.iterate(x, node)

    def iterate(self, x, node) -> list:
        """The items of an iterable, as a list of interpreter values.  A one-shot
        iterator (``map``, ``zip``, a generator expression...) is used up, as in Python."""
        if isinstance(x, _Generated):
            items = list(x)
            x.clear()
            return items
        if isinstance(x, Var):
            value = self.sig(x)
            if hasattr(value, "shape"):
                n = len(value)  # shapes are part of the path
            else:
                self.b.loc = self.loc(node)
                if not isinstance(value, (list, tuple, str, bytes, range)):
                    # a dict, set, dict view, ...: iterating it is not x[0], x[1], ...
                    # (a dict yields its keys), so take its items as a list first
                    x = self.b.emit(B.call_opaque, (builtins.list, x), hint="items")
                n = self.concrete(self.b.apply(B.length, (x,)), node)
            return [self.getitem(x, i, node) for i in range(n)]
        return list(x)  # a dict yields its keys, as in Python

    # -- calls -----------------------------------------------------------------
    def e_Call(self, node, hint):
        func = self.eval(node.func)
        args = self._elements(node.args)
        kwargs = {}
        for kw in node.keywords:
            if kw.arg is None:
                kwargs.update(self.eval(kw.value))
            else:
                kwargs[kw.arg] = self.eval(kw.value)
        if _draws_random(func):
            raise UnsupportedSyntax(
                f"call of the random number generator {_describe(func)}: a draw made while "
                "ad_transform traces the function would be frozen into its compiled path; "
                "pass the random draw in as an argument instead", self.loc(node))
        if _reads_world(func):
            raise UnsupportedSyntax(
                f"call of {_describe(func)}, whose answer changes from call to call (the "
                "clock, the environment): it would be read once while ad_transform traces "
                "the function and frozen into its compiled path; pass the value in as an "
                "argument instead", self.loc(node))
        return self.call(func, args, kwargs, node, hint)

    def call(self, func, args, kwargs, node, hint=None):
        if isinstance(func, Closure):
            return self.call_closure(func, args, kwargs, node)
        if isinstance(func, VarMethod):
            return self.call_method(func, args, kwargs, node, hint)
        if isinstance(func, Var):
            func = self._callee(func, node)
        if isinstance(func, (_Partial, functools.partial)):
            return self.call(func.func, [*func.args, *args], {**func.keywords, **kwargs},
                             node, hint)
        intrinsic = _INTRINSICS.get(func) if _hashable(func) else None
        if intrinsic is not None:
            result = intrinsic(self, args, kwargs, node, hint)
            if result is not NotImplemented:
                return result
        has_var = any(_contains_var(a) for a in args) or any(
            _contains_var(v) for v in kwargs.values())
        if getattr(func, "__ad_transform__", False):
            if has_var:
                raise UnsupportedSyntax(
                    f"call of {_describe(func)}, a derivative made by ad_transform, on a "
                    "traced value: higher-order derivatives are not supported yet",
                    self.loc(node))
            return func(*self._library_args(args, node), **self._library_args(kwargs, node))
        # the user's own code is always inlined, also on constants: it may read globals
        # (unless the user registered a rule for it: then it is a primitive, called)
        if isinstance(func, types.FunctionType) and _is_user_code(func) and lookup(func) is None:
            return self.call_function(func, args, kwargs, node)
        if isinstance(func, types.MethodType) and _is_user_code(func.__func__):
            return self.call_function(func.__func__, [func.__self__, *args], kwargs, node)
        if _user_callable_object(func):
            return self.call(self._bound_method(func, "__call__", func.__call__, node),
                             args, kwargs, node, hint)
        if isinstance(func, (types.BuiltinMethodType, types.MethodWrapperType)) and isinstance(
                getattr(func, "__self__", None), (list, dict, tuple)):
            return self.call_container_method(func, args, kwargs, node)
        if not has_var:  # constants only: fold (user callables inlined when called back)
            return func(*self._library_args(args, node), **self._library_args(kwargs, node))
        owner = getattr(func, "__self__", None)
        if isinstance(func, types.BuiltinMethodType) and isinstance(owner, np.ndarray) and (
                lookup_method(owner, func.__name__) is not None):  # const.dot(traced)
            return self.call_method(VarMethod(owner, func.__name__), args, kwargs, node, hint)
        lowering = lookup_lowering(func)
        if lowering is not None:
            self.b.loc = self.loc(node)
            args, kwargs = self.static_args(args, kwargs, node)
            return lowering(*args, **kwargs)
        prim = lookup(func)
        if prim is not None and prim.root is np:
            args, kwargs = self.static_args(args, kwargs, node)
            args = [N._to_array(a) if isinstance(a, (list, tuple)) and _contains_var(a) else a
                    for a in args]
        if prim is not None:
            if isinstance(func, np.ufunc) and {"out", "where"} & kwargs.keys():
                raise UnsupportedSyntax(
                    f"{_describe(func)}(..., {'/'.join(sorted({'out', 'where'} & kwargs.keys()))}"
                    "=...) on a traced value: write the result to a new name "
                    "(or use np.where) instead", self.loc(node))
            if any(_contains_var(v) for v in kwargs.values()):
                raise MissingRule(f"traced keyword argument to {_describe(func)}",
                                  self.loc(node))
            self.b.loc = self.loc(node)
            return self.b.apply(prim, tuple(args), kwargs, hint)
        return self.call_opaque(func, args, kwargs, node, hint)

    def user_operator(self, fn, left, right, node, hint=None):
        """``a + b`` where an operand is an object of the user's class: its ``__add__`` (or
        the other's ``__radd__``) is inlined like any method call."""
        name = fn.__name__.strip("_")
        for obj, other, dunder in ((left, right, f"__{name}__"), (right, left, f"__r{name}__")):
            value = self.sig(obj) if isinstance(obj, Var) else obj
            method = getattr(type(value), dunder, None)
            if not _user_instance(value) or method is None:
                continue
            if not (isinstance(method, types.FunctionType) and _is_user_code(method)):
                raise MissingRule(f"operator {dunder} of {type(value).__name__} is not the "
                                  "user's Python code, so it cannot be inlined",
                                  self.loc(node))
            bound = VarMethod(obj, dunder) if isinstance(obj, Var) else self._bound_method(
                obj, dunder, getattr(obj, dunder), node)
            result = self.call(bound, [other], {}, node, hint)
            if result is not NotImplemented:
                return result
        raise TypeError(f"unsupported operand type(s) for {fn.__name__}: "
                        f"'{type(self.sig(left) if isinstance(left, Var) else left).__name__}'"
                        f" and '{type(self.sig(right) if isinstance(right, Var) else right).__name__}'")

    def _callee(self, var, node):
        """The function a traced value holds (an argument ``act`` called as ``act(x)``):
        the path depends on which one, so it is guarded by identity (a bound method by
        its function, its object read at run time)."""
        if var in self.b.active:
            raise MissingRule("calling a traced value that is differentiated", self.loc(node))
        value = self.sig(var)  # its identity is guarded below
        if not callable(value):
            raise TypeError(f"'{type(value).__name__}' object is not callable")
        self.b.loc = self.loc(node)
        if isinstance(value, types.MethodType):
            fn = self.b.emit(B.getattr_("__func__"), (var,), hint="func")
            self._decide(B.guard_is, (fn,), value.__func__, node)
            obj = self.b.emit(B.getattr_("__self__"), (var,), hint="obj")
            return _Partial(value.__func__, (obj,), {})
        self._decide(B.guard_is, (var,), value, node)
        return value

    def _bound_method(self, obj, name, value, node):
        """``obj.name`` that is a method of the user's own class: the path depends on the
        function it resolves to, so that is guarded by identity (``obj.name.__func__``)."""
        key = (id(obj), name, "method")
        if key not in self.loads:
            self.b.loc = self.loc(node)
            attr = self.b.emit(B.getattr_(name), (obj,), hint=name)
            fn = self.b.emit(B.getattr_("__func__"), (attr,), hint="func")
            self._decide(B.guard_is, (fn,), value.__func__, node)
            self.loads[key] = value
        return self.loads[key]

    def _library_args(self, args, node):
        """Arguments handed to library code that runs now: the user's callables in them
        become real Python functions that inline the callable (see :meth:`_as_callable`)."""
        if isinstance(args, dict):
            return {k: self._library_args(v, node) for k, v in args.items()}
        if type(args) in (list, tuple):
            return type(args)(self._library_arg(a, node) for a in args)
        return args

    def _library_arg(self, a, node):
        if _is_user_callable(a):
            return self._as_callable(a, node)
        if type(a) in (list, tuple, dict) and any(
                _is_user_callable(i) for i in (a.values() if isinstance(a, dict) else a)):
            return self._library_args(a, node)
        return a

    def _as_callable(self, fn, node):
        """A real function for library code that calls ``fn`` back while the path is
        lowered (``sorted(names, key=score)``): each call is inlined, and its result,
        which the library decides on, becomes a guarded fact of the path."""
        lw = self

        def callback(*args, **kwargs):
            if lw.b is None or lw._finished:
                raise UnsupportedSyntax(
                    f"the function {getattr(fn, '__name__', fn)} was kept by library code "
                    "and called after ad_transform lowered the path", lw.loc(node))
            result = lw.call(fn, list(args), kwargs, node)
            return lw._concrete_result(result, fn, node)
        callback.__name__ = getattr(fn, "__name__", "callback")
        return callback

    def _concrete_result(self, x, fn, node):
        if isinstance(x, Var):
            if x in self.b.active:
                raise MissingRule(
                    f"{getattr(fn, '__name__', 'a function')} is called by library code that "
                    "has no derivative rule, and returns a differentiated value; "
                    "write the computation without that library call", self.loc(node))
            return self.sig(self.concrete(x, node)) if not isinstance(
                self.sig(x), np.ndarray) else self._refuse_array(fn, node)
        if type(x) in (list, tuple):
            return type(x)(self._concrete_result(i, fn, node) for i in x)
        if type(x) is dict:
            return {k: self._concrete_result(i, fn, node) for k, i in x.items()}
        return x

    def _refuse_array(self, fn, node):
        raise MissingRule(f"{getattr(fn, '__name__', 'a function')} returns a traced array to "
                          "library code that has no rule for it", self.loc(node))

    def static_args(self, args, kwargs, node):
        """Arguments of a NumPy call with its parameters made plain values.

        NumPy needs axes, shifts, counts and keyword options as Python values.  A
        traced Python int that no wrt input reaches (read from a global or a closure
        cell) becomes a constant of the path, checked by a guard; so does any such
        traced number passed by keyword.  Arrays and differentiated values stay traced.
        """
        def static(x, keyword):
            if isinstance(x, Var):
                value = self.sig(x)
                if x not in self.b.active and (type(value) in (int, bool) or (
                        keyword and isinstance(value, (int, float)))):
                    return self.concrete(x, node)
                return x
            if isinstance(x, (list, tuple)) and _contains_var(x):
                return type(x)(static(i, keyword) for i in x)
            return x

        if not (any(_contains_var(a) for a in args)
                or any(_contains_var(v) for v in kwargs.values())):
            return args, kwargs
        return ([static(a, False) for a in args],
                {k: static(v, True) for k, v in kwargs.items()})

    def call_opaque(self, func, args, kwargs, node, hint=None):
        if any(_is_user_callable(a) for a in list(args) + list(kwargs.values())):
            raise MissingRule(
                f"{_describe(func)} has no derivative rule and is given both a traced value "
                "and a function of yours to call back; ad_transform cannot see what it does "
                "with them. Write the computation in the function itself", self.loc(node))
        active = [a for a in list(args) + list(kwargs.values())
                  if isinstance(a, Var) and a in self.b.active]
        if active or any(isinstance(a, (list, tuple, dict)) and _contains_var(a)
                         for a in list(args) + list(kwargs.values())):
            what = "no derivative rule for"
            if isinstance(func, types.FunctionType):
                what = "no derivative rule (and no user source to inline) for"
            raise MissingRule(f"{what} {_describe(func)}, called on a differentiated value",
                              self.loc(node))
        if any(isinstance(v, Var) for v in kwargs.values()):
            raise MissingRule(f"traced keyword argument to {_describe(func)}", self.loc(node))
        self.b.loc = self.loc(node)
        name = getattr(func, "__name__", "call")
        return self._opaque(B.call_opaque, (func, *args), kwargs,
                            hint or (name if name.isidentifier() else "call"))

    def _opaque(self, prim, ins, kwargs, hint):
        """Emit a call the lowering cannot see into.  It may change a container it is
        given (``lst.append(1.0)``, ``helper(d)``), so earlier reads of traced containers
        (``len(lst)``, ``lst[0]``) are not reused for later ones."""
        out = self.b.emit(prim, ins, kwargs, hint=hint)
        if any(isinstance(x, Var) and not isinstance(self.sig(x), _IMMUTABLE)
               for x in list(ins) + list(kwargs.values())):
            self.b.seen.clear()
        return out

    def call_method(self, m, args, kwargs, node, hint):
        value = self.sig(m.var)
        prim = lookup_method(value, m.name)
        if prim is None and (_user_instance(value) or isinstance(value, type) or
                             _is_user_callable(getattr(value, m.name, None))):
            # obj.method(...) on an object passed in: which function runs is guarded
            self.b.loc = self.loc(node)
            fn = self.b.emit(B.getattr_(m.name), (m.var,), hint=m.name)
            return self.call(fn, args, kwargs, node, hint)
        if prim is not None:
            self.b.loc = self.loc(node)
            args, kwargs = self.static_args(args, kwargs, node)
            if not isinstance(prim, Primitive):  # a lowering function
                return prim(m.var, *args, **kwargs)
            return self.b.apply(prim, (m.var, *args), kwargs, hint)
        if m.var in self.b.active or any(isinstance(a, Var) and a in self.b.active for a in args):
            raise MissingRule(f"no derivative rule for method .{m.name}() of "
                              f"{type(value).__name__}", self.loc(node))
        self.b.loc = self.loc(node)
        return self._opaque(B.method(m.name), (m.var, *args), kwargs, hint or m.name)

    def call_closure(self, c, args, kwargs, node):
        node_ = c.node
        self.b.loc = self.loc(node)  # Python's TypeError of a bad call is noted here
        bound = _bind(node_.args, c.defaults, c.kwdefaults, args, kwargs, c.__name__)
        scope = Scope(bound, c.scope, c.scope.globals, c.scope.cells, _local_names(node_))
        return self._inlined(FunctionSource(node_, c.src.filename, c.__name__), scope, node)

    def _inlined(self, src, scope, node):
        """Run an inlined call, as deep as Python itself would allow the recursion."""
        if self.depth >= self.max_depth:
            raise UnsupportedSyntax(
                f"recursion deeper than Python allows: {self.depth} nested calls "
                f"(sys.getrecursionlimit() is {_ROOM['saved'] or sys.getrecursionlimit()}); "
                "raise it with sys.setrecursionlimit, or write the recursion as a loop",
                self.loc(node))
        self.depth += 1
        try:
            return self._run(src, scope)
        finally:
            self.depth -= 1

    def call_function(self, fn, args, kwargs, node):
        try:
            src = get_source(fn)
        except SourceUnavailable as exc:  # say where the helper is called
            raise SourceUnavailable(exc.message, exc.loc or self.loc(node)) from None
        fence.check(src)
        self._guard_function(fn, node)
        defaults, kwdefaults = list(fn.__defaults__ or ()), dict(fn.__kwdefaults__ or {})
        self._defaults.append((defaults, kwdefaults))
        self.b.loc = self.loc(node)  # Python's TypeError of a bad call is noted here
        bound = _bind(src.node.args, defaults, kwdefaults, args, kwargs, fn.__name__)
        scope = Scope(bound, None, fn.__globals__, self._cells(fn), _local_names(src.node))
        return self._inlined(src, scope, node)

    # -- Python's containers' methods, on interpreter values ------------------------
    def call_container_method(self, func, args, kwargs, node):
        """``lst.index(key)``, ``TABLE.get(key)``, ``d.setdefault(k, v)``...: the method runs
        on real values now.  Keys and counts are taken as guarded facts (``concrete``);
        values stored stay traced (containers are structure); items are compared by the
        interpreter, each comparison guarded.  A container from outside the function (a
        global, a closure cell, an attribute, a default value) is never changed."""
        owner, name = func.__self__, func.__name__
        if name in _MUTATORS and self._is_outside(owner):
            raise UnsupportedSyntax(
                f".{name}() would change a {type(owner).__name__} that lives outside the "
                "function (a global, a closure cell, an attribute or a default value): "
                "ad_transform runs the function once per path, so this side effect would "
                "not happen on every call. Return the value instead, or pass the container "
                "in as an argument", self.loc(node))
        if name == "sort":
            owner[:] = self._sort(list(owner), kwargs.get("key"),
                                  self.concrete(kwargs.get("reverse", False), node), node)
            return None
        if name in ("index", "count", "remove", "__contains__") and isinstance(
                owner, (list, tuple)) and (_contains_var(owner) or _contains_var(args)):
            return self._seq_method(owner, name, args, node)
        if name in ("append", "__setitem__", "insert", "setdefault", "get", "pop"):
            keep = {"append": 0, "__setitem__": 1, "insert": 1, "setdefault": 1, "get": 1,
                    "pop": 1}[name]  # arguments from here on are values: kept traced
            args = [self._concrete_all(a, node) if i < keep else a for i, a in enumerate(args)]
        elif name == "extend":
            args = [self.iterate(args[0], node)]
        elif name == "update":
            args = [self._as_mapping(a, node) for a in args]
        else:
            args = [self._concrete_all(a, node) for a in args]
            kwargs = {k: self._concrete_all(v, node) for k, v in kwargs.items()}
        return func(*args, **kwargs)

    def _concrete_all(self, x, node):
        """``x`` with every traced value in it taken as a guarded fact."""
        if isinstance(x, Var):
            if isinstance(self.sig(x), np.ndarray):
                raise MissingRule("a traced array used as a key or searched for in a list",
                                  self.loc(node))
            return self.sig(self.concrete(x, node))
        if type(x) in (list, tuple):
            return type(x)(self._concrete_all(i, node) for i in x)
        if type(x) is dict:
            return {k: self._concrete_all(v, node) for k, v in x.items()}
        return x

    def _as_mapping(self, x, node):
        if isinstance(x, Var):  # a dict passed in: its keys decide the structure
            keys = [self._concrete_all(k, node) for k in self.iterate(x, node)]
            return {k: self.getitem(x, k, node) for k in keys}
        return x

    def _is_outside(self, obj) -> bool:
        """Is the container ``obj`` reachable from a global, a closure cell, an attribute
        or a default value the path has read (state that outlives the call)?"""
        roots = [v for v in self.loads.values() if not isinstance(v, Var)]
        roots += [d for pair in self._defaults for d in (pair[0], list(pair[1].values()))]
        seen = set()
        while roots:
            v = roots.pop()
            if v is obj:
                return True
            if type(v) in (list, tuple, dict, set) and id(v) not in seen:
                seen.add(id(v))
                roots.extend(v.values() if isinstance(v, dict) else v)
        return False

    def _equal(self, a, b, node) -> bool:
        """``a == b`` as ``in``/``index`` decide it (identity first), guarded."""
        if a is b:
            return True
        if not (_contains_var(a) or _contains_var(b)):
            return a == b
        if type(a) in (list, tuple) and type(b) is type(a):
            return len(a) == len(b) and all(self._equal(x, y, node) for x, y in zip(a, b))
        return self.truth(self.compare(gast.Eq, a, b, node), node)

    def _less(self, a, b, node) -> bool:
        """``a < b`` (lexicographic for tuples and lists), each comparison guarded."""
        if not (_contains_var(a) or _contains_var(b)):
            return a < b
        if type(a) in (list, tuple) and type(b) is type(a):
            for x, y in zip(a, b):
                if not self._equal(x, y, node):
                    return self._less(x, y, node)
            return len(a) < len(b)
        return self.truth(self.compare(gast.Lt, a, b, node), node)

    def _seq_method(self, seq, name, args, node):
        x = args[0]
        lo, hi = (self._concrete_all(a, node) for a in (list(args[1:]) + [0, len(seq)])[:2])
        hits = (i for i in range(len(seq))[lo:hi] if self._equal(seq[i], x, node))
        if name == "count":
            return sum(1 for _ in hits)
        found = next(hits, None)
        if name == "__contains__":
            return found is not None
        if found is None:
            what = "list.remove(x): x" if name == "remove" else f"{self._shown(x)}"
            raise ValueError(f"{what} not in {type(seq).__name__}")
        if name == "remove":
            del seq[found]
            return None
        return found

    def _shown(self, x):
        return repr(self.sig(x)) if isinstance(x, Var) else repr(x)

    def _sort(self, items, key, reverse, node) -> list:
        """Python's stable sort of interpreter values: every comparison it makes is
        decided on the real values and guarded, so the permutation is part of the path
        and the derivative follows the items."""
        keys = items if key is None else [self.call(key, [i], {}, node) for i in items]
        if not any(_contains_var(k) for k in keys):
            order = sorted(range(len(items)), key=keys.__getitem__, reverse=reverse)
        else:
            lw = self

            class Key:
                __slots__ = ("i",)

                def __init__(self, i):
                    self.i = i

                def __lt__(self, other):
                    return lw._less(keys[self.i], keys[other.i], node)

            order = sorted(range(len(items)), key=Key, reverse=reverse)
        return [items[i] for i in order]

    def _minmax_key(self, items, key, is_max, default, node):
        """``max(items, key=f)`` / ``min``: the first best item, comparisons guarded."""
        if not items:
            if default is not _NO_DEFAULT:
                return default
            raise ValueError(f"{'max' if is_max else 'min'}() iterable argument is empty")
        best = items[0]
        best_key = best if key is None else self.call(key, [best], {}, node)
        for item in items[1:]:
            k = item if key is None else self.call(key, [item], {}, node)
            if self._less(best_key, k, node) if is_max else self._less(k, best_key, node):
                best, best_key = item, k
        return best


def _entry_code(fn):
    """The Python function whose code runs first when ``fn`` is called."""
    while True:
        if isinstance(fn, functools.partial):
            fn = fn.func
        elif isinstance(fn, types.MethodType):
            fn = fn.__func__
        elif not isinstance(fn, types.FunctionType) and callable(fn) and isinstance(
                getattr(type(fn), "__call__", None), types.FunctionType):
            fn = type(fn).__call__
        else:
            return fn


def _hashable(x) -> bool:
    try:
        hash(x)
        return True
    except TypeError:
        return False


def _bind(a, defaults, kwdefaults, args, kwargs, fname) -> dict:
    """Python's argument binding, for interpreter values."""
    pos = [p.id for p in a.posonlyargs + a.args]
    out = dict(zip(pos, args))
    kwargs = dict(kwargs)
    extra = list(args[len(pos):])
    if a.vararg is not None:
        out[a.vararg.id] = tuple(extra)
    elif extra:
        raise TypeError(f"{fname}() takes {len(pos)} positional arguments but {len(args)} "
                        "were given")
    posonly = {p.id for p in a.posonlyargs}
    first_default = len(pos) - len(defaults)
    for i, name in enumerate(pos):
        if name in kwargs and name not in posonly:
            if name in out:
                raise TypeError(f"{fname}() got multiple values for argument '{name}'")
            out[name] = kwargs.pop(name)
        elif name not in out:
            if i < first_default:
                raise TypeError(f"{fname}() missing required argument '{name}'")
            out[name] = defaults[i - first_default]
    for p in a.kwonlyargs:
        if p.id in kwargs:
            out[p.id] = kwargs.pop(p.id)
        elif p.id in kwdefaults:
            out[p.id] = kwdefaults[p.id]
        else:
            raise TypeError(f"{fname}() missing required keyword-only argument '{p.id}'")
    if a.kwarg is not None:
        out[a.kwarg.id] = kwargs
    elif kwargs:
        raise TypeError(f"{fname}() got an unexpected keyword argument '{next(iter(kwargs))}'")
    return out


# -- builtins the interpreter handles itself (structure, not data) -----------------

def _i_len(lw, args, kwargs, node, hint):
    (x,) = args
    if isinstance(x, Var):
        value = lw.sig(x)
        if hasattr(value, "shape"):
            return len(value)
        lw.b.loc = lw.loc(node)
        return lw.b.apply(B.length, (x,), None, hint)
    return len(x)


def _i_range(lw, args, kwargs, node, hint):
    return range(*(lw.concrete(a, node) for a in args))


def _i_enumerate(lw, args, kwargs, node, hint):
    start = lw.concrete(args[1] if len(args) > 1 else kwargs.get("start", 0), node)
    return _Generated(enumerate(lw.iterate(args[0], node), start))


def _i_zip(lw, args, kwargs, node, hint):
    return _Generated(zip(*(lw.iterate(a, node) for a in args)))


def _i_reversed(lw, args, kwargs, node, hint):
    return _Generated(reversed(lw.iterate(args[0], node)))


def _i_list(lw, args, kwargs, node, hint):
    return lw.iterate(args[0], node) if args else []


def _i_tuple(lw, args, kwargs, node, hint):
    return tuple(lw.iterate(args[0], node)) if args else ()


def _i_sum(lw, args, kwargs, node, hint):
    if isinstance(args[0], Var) and isinstance(lw.sig(args[0]), np.ndarray):
        lw.b.loc = lw.loc(node)
        total = lw.b.apply(N.sum_, (args[0],), {"axis": 0}, hint)
        return total if len(args) < 2 else lw.binop(gast.Add, args[1], total, node)
    items = lw.iterate(args[0], node)
    start = args[1] if len(args) > 1 else kwargs.get("start", 0)
    if isinstance(start, (list, tuple)) or any(isinstance(i, (list, tuple)) for i in items):
        acc = start  # concatenation of containers: structure, item by item
        for item in items:
            acc = lw.binop(gast.Add, acc, item, node)
        return acc
    lw.b.loc = lw.loc(node)  # one call of Python's sum: its rounding, on every Python
    return lw.b.apply(B.sum_items, (start, *items), None, hint)


def _reduce_minmax(prim, pyfn):
    def intrinsic(lw, args, kwargs, node, hint):
        if len(args) == 1 and not kwargs and isinstance(args[0], Var) and isinstance(
                lw.sig(args[0]), np.ndarray) and lw.sig(args[0]).ndim == 1:
            # (of a 2-D array Python compares rows below, and raises as it does)
            lw.b.loc = lw.loc(node)
            return lw.b.apply(lookup(getattr(np, pyfn.__name__)), (args[0],), {"axis": 0}, hint)
        items = lw.iterate(args[0], node) if len(args) == 1 else list(args)
        if not any(_contains_var(i) for i in items) and not _is_user_callable(
                kwargs.get("key")):
            return pyfn(items, **kwargs) if len(args) == 1 else pyfn(*args, **kwargs)
        if kwargs:
            if set(kwargs) - {"key", "default"} or ("default" in kwargs and len(args) > 1):
                return NotImplemented  # Python's own TypeError
            return lw._minmax_key(items, kwargs.get("key"), pyfn is builtins.max,
                                  kwargs.get("default", _NO_DEFAULT), node)
        if not items:
            raise ValueError(f"{pyfn.__name__}() arg is an empty sequence")
        acc = items[0]
        lw.b.loc = lw.loc(node)
        for item in items[1:]:
            acc = lw.b.apply(prim, (acc, item), None, hint)
        return acc
    return intrinsic


def _i_isinstance(lw, args, kwargs, node, hint):
    return isinstance(lw.sig(args[0]) if isinstance(args[0], Var) else args[0], args[1])


def _i_type(lw, args, kwargs, node, hint):
    if len(args) == 1 and isinstance(args[0], Var):
        return type(lw.sig(args[0]))
    return NotImplemented


def _i_map(lw, args, kwargs, node, hint):
    fn, *seqs = args
    return _Generated(lw.call(fn, list(items), {}, node)
                      for items in zip(*(lw.iterate(s, node) for s in seqs)))


def _i_filter(lw, args, kwargs, node, hint):
    fn, seq = args
    return _Generated(x for x in lw.iterate(seq, node)
                      if lw.truth(x if fn is None else lw.call(fn, [x], {}, node), node))


def _i_any_all(is_any):
    def intrinsic(lw, args, kwargs, node, hint):
        for x in lw._live(args[0], node):  # stops where Python stops consuming
            if lw.truth(x, node) == is_any:
                return is_any
        return not is_any
    return intrinsic


def _i_divmod(lw, args, kwargs, node, hint):
    a, b = args
    return (lw.binop(gast.FloorDiv, a, b, node), lw.binop(gast.Mod, a, b, node))


def _i_sorted(lw, args, kwargs, node, hint):
    if set(kwargs) - {"key", "reverse"} or len(args) != 1:
        return NotImplemented  # Python's own TypeError
    reverse = lw._concrete_all(kwargs.get("reverse", False), node)
    return lw._sort(lw.iterate(args[0], node), kwargs.get("key"), reverse, node)


def _i_reduce(lw, args, kwargs, node, hint):
    if kwargs or not 2 <= len(args) <= 3:
        return NotImplemented
    fn, seq, *init = args
    items = lw.iterate(seq, node)
    if init:
        acc = init[0]
    elif not items:
        raise TypeError("reduce() of empty iterable with no initial value")
    else:
        acc, items = items[0], items[1:]
    for item in items:
        acc = lw.call(fn, [acc, item], {}, node)
    return acc


def _i_partial(lw, args, kwargs, node, hint):
    if not args:
        return NotImplemented
    return _Partial(args[0], args[1:], kwargs)


_NO_DEFAULT = object()


def _i_next(lw, args, kwargs, node, hint):
    if not isinstance(args[0], _Generated):
        return NotImplemented
    if args[0]:
        return args[0].pop(0)
    if len(args) > 1:
        return args[1]
    raise StopIteration


def _i_dict(lw, args, kwargs, node, hint):
    return dict(*args, **kwargs)


_INTRINSICS = {
    builtins.len: _i_len, builtins.range: _i_range, builtins.enumerate: _i_enumerate,
    builtins.zip: _i_zip, builtins.reversed: _i_reversed, builtins.list: _i_list,
    builtins.tuple: _i_tuple, builtins.sum: _i_sum,
    builtins.max: _reduce_minmax(B.max2, builtins.max),
    builtins.min: _reduce_minmax(B.min2, builtins.min),
    builtins.isinstance: _i_isinstance, builtins.type: _i_type, builtins.map: _i_map,
    builtins.filter: _i_filter, builtins.any: _i_any_all(True), builtins.all: _i_any_all(False),
    builtins.divmod: _i_divmod, builtins.sorted: _i_sorted, builtins.dict: _i_dict,
    builtins.next: _i_next, functools.reduce: _i_reduce, functools.partial: _i_partial,
}


# -- recursion: as deep as Python allows ---------------------------------------------
# Each inlined call costs the interpreter some Python frames (statement, expression and
# call dispatch; measured <= 25 in the worst constructs), so while any lowering runs the
# interpreter's recursion limit is raised to allow FRAMES_PER_CALL frames per call of the
# user's code, and the user's recursion depth is bounded by Python's own limit instead.
FRAMES_PER_CALL = 40
_ROOM = {"users": 0, "saved": 0}
_ROOM_LOCK = threading.Lock()


class _RoomToRecurse:
    """Raise ``sys.getrecursionlimit()`` while lowerings run (counted, so concurrent
    lowerings in several threads restore it once, when the last one ends)."""

    def __enter__(self):
        with _ROOM_LOCK:
            if _ROOM["users"] == 0:
                _ROOM["saved"] = sys.getrecursionlimit()
                sys.setrecursionlimit(_ROOM["saved"] * FRAMES_PER_CALL)
            _ROOM["users"] += 1
            return _ROOM["saved"]

    def __exit__(self, *exc):
        with _ROOM_LOCK:
            _ROOM["users"] -= 1
            if _ROOM["users"] == 0:
                sys.setrecursionlimit(_ROOM["saved"])


def lower(fn, args, wrt, max_eqns=200_000) -> tuple[Program, dict]:
    """Lower ``fn`` on the concrete ``args`` (one per parameter) to SSA.

    Returns the program and, apart, the concrete value of each of its
    variables on ``args`` (``Var -> value``): later passes read shapes and
    types off them, and nothing keeps them past the pipeline."""
    with _RoomToRecurse() as python_limit:
        lowerer = Lowerer(fn, wrt, max_eqns)
        # the user's code may nest calls as deeply as plain Python would let it
        lowerer.max_depth = python_limit - len(inspect.stack(0)) - 10
        try:
            return lowerer.lower(tuple(args))
        finally:
            # Closures made while lowering may refer back to the lowerer (a recursive
            # helper closure is a reference cycle); emptied, it holds no value of this
            # call until the garbage collector gets to it.
            lowerer.__dict__.clear()
            lowerer._finished = True
