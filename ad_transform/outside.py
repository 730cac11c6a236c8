"""Values from outside the function, and the guards that make reading them sound.

The one policy a reviewer of "no unguarded fact" needs to read.  Guarantees:

* lowering reads a concrete value only through :meth:`OutsideValues._fact` (for a fact
  that is then guarded: :meth:`~OutsideValues.truth`, :meth:`~OutsideValues.concrete`,
  :meth:`~OutsideValues.plain`), :meth:`~OutsideValues.sig` (a type, shape or dtype, fixed
  by guards :class:`_PathBuilder` records) or :meth:`~OutsideValues._memory` (which arrays
  share memory); tests/test_guards.py checks every module of the interpreter for it;
* every decision is recorded once (:meth:`~OutsideValues._decide`) as a guard equation
  and in ``Program.decisions``, so the program only runs on inputs that take its path;
* numbers and arrays read from globals, closure cells and attributes of the user's own
  modules, classes and objects are read at run time (their types guarded), not baked
  in; flags and containers are baked in and guarded by value (against a snapshot);
  functions and other objects by identity; modules and classes are resolved once,
  unguarded ("the constant of the path" policy, docs/python-subset.md);
* an inlined function's code and defaults, a method's function and a callable passed
  in are guarded by identity, so replacing them makes (or refuses) a new path.
"""
from __future__ import annotations

import inspect
import types
import weakref

import numpy as np

from .errors import BadWrt, MissingRule, PathTooLong, UnsupportedSyntax
from .builder import Builder
from .dispatcher import swapped
from .ir import Var
from . import runtime
from .rules import builtins as B
from .values import _Partial, _contains_var, _is_user_code, _is_user_module

_DATA_TYPES = (int, float, complex)  # read at run time when they come from globals or cells

_FIRST_SEEN: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # see _check_unchanged


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
    if prim.opaque:
        return True  # a library's or the user's object: anything may come back
    if prim in (B.power, B.builtins_pow):
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

    def too_long(self):
        """Names the loops that ran most iterations on this path: the usual cause."""
        lowerer = self.lowerer
        loops = sorted(lowerer.loops.items(), key=lambda item: -item[1])[:3]
        if not loops:
            return super().too_long()
        ran = "; ".join(f"the loop at {lowerer.loc(node)} ran {n:,} iterations"
                        for node, n in loops)
        return PathTooLong(
            f"this path's primal code passed max_eqns={self.max_eqns:,} operations while "
            f"unrolling loops ({ran}): every iteration adds its operations to the path; "
            "if a loop should end sooner, it runs away, otherwise pass a larger max_eqns= "
            "to gradient", self.loc)

    def _emit(self, prim, ins, vals, params, hint):
        out = super()._emit(prim, ins, vals, params, hint)
        if self.phase == "primal" and _value_shaped(prim, ins, vals):
            self.lowerer._decide(B.guard_types, (out,), runtime.signatures(self.values[out]),
                                 None)
        return out


class OutsideValues:
    """The :class:`~ad_transform.lower.Lowerer`'s reads of concrete values and of state
    outside the function, each with the guard that re-checks it on every call."""

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
    # other code of the interpreter's modules reads ``b.value``/``b.values``.
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

    # -- globals, closure cells, attributes: the constant of the path --------------
    def _check_unchanged(self, fn, node):
        """The differentiated function's ``__code__`` and defaults are those it had when it
        was first lowered (the caller binds arguments by the signature it read then):
        a replaced one raises here, on the next lowering.  (Not re-checked on every call:
        see docs/python-subset.md.)  A wrapper made by ad_transform is not checked: its
        code object is swapped by design (:func:`~ad_transform.dispatcher.swap`)."""
        if fn in swapped:
            return
        now = (fn.__code__, runtime.snapshot(fn.__defaults__), runtime.snapshot(fn.__kwdefaults__))
        first = _FIRST_SEEN.setdefault(fn, now)
        if first[0] is not now[0] or not runtime.same(list(first[1:]), list(now[1:])):
            what = "__code__" if first[0] is not now[0] else "__defaults__/__kwdefaults__"
            raise UnsupportedSyntax(
                f"the {what} of {fn.__qualname__} was replaced after it was first "
                "differentiated; ad_transform does not follow a function whose code or "
                "defaults change: define a new function instead", self.loc(node))

    def _is_data(self, obj):
        """Numbers and arrays from globals and cells: read at run time, never baked in."""
        return (isinstance(obj, _DATA_TYPES) and not isinstance(obj, bool)) or isinstance(
            obj, (np.ndarray, np.generic))

    def _from_global(self, g, name, node):
        key = (id(g), name)
        if key in self.loads:
            return self.loads[key]
        return self._load_outside(
            key, g[name], lambda: self.b.record(B.load_global, (g, name), hint=name), node)

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
        state = self.b.record(B.function_state, (fn,), hint="state")
        self._decide(B.guard_eq, (state,), runtime.snapshot(runtime.function_state(fn)), node)
        self.loads[key] = state

    def _from_cell(self, cell, name, node):
        key = id(cell)
        if key in self.loads:
            return self.loads[key]
        return self._load_outside(
            key, cell.cell_contents, lambda: self.b.record(B.load_cell, (cell,), hint=name), node)

    def _from_attribute(self, obj, name, value, node):
        """``config.RATE``, ``settings.flag``: an attribute of the user's own module, class
        or object, which may change between calls like a global.  Read at run time when it
        is data, guarded like a global otherwise."""
        key = (id(obj), name, "attr")
        if key in self.loads:
            return self.loads[key]
        return self._load_outside(
            key, value, lambda: self.b.record(B.getattr_(name), (obj,), hint=name), node)

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
            fn = self.b.record(B.getattr_("__func__"), (var,), hint="func")
            self._decide(B.guard_is, (fn,), value.__func__, node)
            obj = self.b.record(B.getattr_("__self__"), (var,), hint="obj")
            return _Partial(value.__func__, (obj,), {})
        self._decide(B.guard_is, (var,), value, node)
        return value

    def _bound_method(self, obj, name, value, node):
        """``obj.name`` that is a method of the user's own class: the path depends on the
        function it resolves to, so that is guarded by identity (``obj.name.__func__``)."""
        key = (id(obj), name, "method")
        if key not in self.loads:
            self.b.loc = self.loc(node)
            attr = self.b.record(B.getattr_(name), (obj,), hint=name)
            fn = self.b.record(B.getattr_("__func__"), (attr,), hint="func")
            self._decide(B.guard_is, (fn,), value.__func__, node)
            self.loads[key] = value
        return self.loads[key]

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

    def _param_loc(self, name):
        a = self.src.node.args  # errors point at the parameter in the signature
        return next((self.loc(p) for p in a.posonlyargs + a.args + a.kwonlyargs if p.id == name),
                    self.loc(self.src.node))

    def _check_wrt(self, name, value):
        loc = self._param_loc(name)
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
                         "be a float, an int, a NumPy array or a tree of them (lists, tuples, "
                         "dicts, namedtuples, dataclasses)", loc)
