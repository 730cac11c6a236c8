"""AST + concrete inputs -> three-address SSA along the path the inputs take.

The lowering is an interpreter over the (fenced) gast AST that evaluates the
function on its concrete arguments and, as it goes, appends one equation per
operation on a traced value.  Guarantees of :func:`lower`:

* the result is a :class:`~ad_transform.ir.Program` in SSA form: one operation
  per equation, every variable defined once, named after the user's variable
  it was assigned to (``c``, ``c_1``, ...) or after its operation;
* ``if``/``elif``, ``and``/``or``, conditional expressions and ``while`` tests
  are decided on the concrete values; loops are unrolled, or rolled into one
  :class:`~ad_transform.ir.Loop` equation by :mod:`ad_transform.loops`; calls into the
  user's own Python functions (helpers, closures, lambdas, recursion) are
  inlined; operations on constants only are folded away;
* every decision that depends on the inputs is recorded in
  ``Program.decisions`` and checked by a guard equation, so the program is
  only ever run on inputs that take the same path (:mod:`ad_transform.outside`);
* values from outside the function follow the policy of :mod:`ad_transform.outside`;
  names are bound as :mod:`ad_transform.scope` says; array writes are checked for
  aliasing by :mod:`ad_transform.alias`; calls are carried out by
  :mod:`ad_transform.calls`, containers and iteration by :mod:`ad_transform.containers`,
  operators, attributes and f-strings by :mod:`ad_transform.operators`;
  builtins the interpreter runs itself are lowerings in :mod:`ad_transform.rules.python`.

The interpreter's values are described in :mod:`ad_transform.values`.
"""
from __future__ import annotations

import functools
import inspect
import sys
import types

import gast
import numpy as np

from . import branches, fence, loops
from .alias import WriteAliasing
from .calls import Calls, _RoomToRecurse, _describe, _draws_random, _reads_world
from .containers import Containers
from .errors import ADError, LoopRun, MissingRule, UnsupportedSyntax
from .ir import Namer, Program, Var, flat_outputs
from .operators import Operators
from .outside import OutsideValues, _PathBuilder
from . import runtime
from .rules import builtins as B
from .rules import lookup, lookup_lowering, lookup_method
from .rules import numpy as N
from .scope import Closure, Scope, cells, entry_code, local_names, resolve
from .pytree import is_tree
from .rules.pytree import lower_wrt_tree
from .source import FunctionSource, get_source, loc_of
from .values import (VarMethod, _Partial, _contains_var, _hashable, _is_user_callable,
                     _is_user_code, _user_callable_object, derivative_info)

__all__ = ["lower", "Lowerer", "Closure"]

class _Return(Exception):
    def __init__(self, value):
        self.value = value


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


_UNSET = object()
_EVAL: dict = {}  # node class -> the Lowerer method evaluating it (e_<class name>)


class Lowerer(Operators, OutsideValues, WriteAliasing, Calls, Containers):
    """The interpreter: runs the user's function on concrete values and records, in
    ``self.b`` (a :class:`~ad_transform.outside._PathBuilder`), one equation per
    operation on a traced value.

    Statements are ``s_<Node>`` methods and expressions ``e_<Node>`` methods, dispatched
    on the gast node's type; :meth:`call` decides how a call is carried out.  The other
    policies are in the mixins, one module each: :class:`~ad_transform.outside.OutsideValues`
    (concrete values, guards, globals, cells, attributes),
    :class:`~ad_transform.alias.WriteAliasing` (array writes),
    :class:`~ad_transform.calls.Calls` (inlining and library calls) and
    :class:`~ad_transform.containers.Containers` (iteration, container methods)."""

    Break, Continue, Return = _Break, _Continue, _Return  # for loops.py

    def __init__(self, fn, wrt, max_eqns=200_000, unroll=loops.DEFAULT_UNROLL, merge=False):
        self.fn = fn
        self.unroll = unroll  # loops this long or longer are rolled (loops.py)
        self.merge = merge  # an if with simple branches keeps both (branches.py)
        self.merge_loops = unroll > 0  # ... in the iterations of a loop probed for rolling
        self.speculating = 0  # branches being lowered for a merge (branches.py)
        self.in_loop = 0  # iterations being probed by loops.py (indices stay traced)
        self.rolling_stop = None  # the traced stop of the range(n) being rolled (loops.py)
        self.wrt = wrt
        self.namer = Namer()
        self.b = _PathBuilder(self, self.namer, max_eqns)
        self.decisions: list = []
        self.guarded: dict = {}
        self.loads: dict = {}
        self.src: FunctionSource | None = None
        self.scope: Scope | None = None
        self._locs: dict = {}
        self.trip: tuple = ()  # the unrolled loop iterations being run (errors.Loc.trip)
        self.inputs: set = set()
        self.return_loc = None
        self.frames: list = []  # the scope of each function being run, outermost first
        self.loops: dict = {}  # loop node -> iterations unrolled on this path (PathTooLong)
        self.depth = 0  # inlined calls being run (recursion depth of the user's code)
        self.max_depth = sys.getrecursionlimit()
        self._finished = False
        self._defaults: list = []  # default values of inlined functions (outside state)
        self.inlined_paths: list = []  # the derivatives' paths inlined (nested.py)
        self.tree_objects: set = set()  # ids of the containers a wrt tree is rebuilt as

    # -- entry point -----------------------------------------------------------
    def lower(self, args) -> tuple[Program, dict]:
        fn = self.fn
        sig = inspect.signature(fn)
        params = list(sig.parameters)
        # a plain function runs as the body; anything else (a bound method, a
        # functools.wraps wrapper, a partial, an object with __call__) is called with
        # the arguments its visible signature binds, and inlined like any call
        nested = derivative_info(fn)  # a derivative: read its function's
        # (a function with custom rules is called as the primitive it is, never read)
        custom = nested is None and _hashable(fn) and lookup(fn) is not None
        # a jacobian, hessian, forward_derivative... of ours: called (its hook, inner.py);
        # its user's function gives the source positions
        ours = getattr(getattr(fn, "__ad_inner__", None), "owner", None) == id(fn)
        direct = nested is None and not custom and not ours and isinstance(
            fn, types.FunctionType) and (
            params == list(inspect.signature(fn, follow_wrapped=False).parameters))
        if ours:
            src = get_source(entry_code(getattr(fn, "__ad_fun__", None)
                                        or getattr(fn, "__wrapped__", None) or fn))
        else:
            src = get_source(fn if direct else entry_code(nested.root if nested else fn))
        if not custom and not ours:
            fence.check(src)
        self.src = src
        self.b.loc = self.loc(src.node)
        with self.b:
            inputs = [self.b.input(name, value) for name, value in zip(params, args)]
            for i in self.wrt:
                if not is_tree(args[i]):  # a tree: checked leaf by leaf below
                    self._check_wrt(params[i], args[i])
                    self.b.active.add(inputs[i])
            self._decide(B.guard_types, inputs, runtime.signatures(*args), src.node)
            self._check_unchanged(fn, src.node)
            bound, trees = list(inputs), {}  # a tree argument is bound to its leaves
            for i in self.wrt:
                if is_tree(args[i]):
                    td, leaves, bound[i] = lower_wrt_tree(self, params[i], inputs[i], args[i],
                                                          self._param_loc(params[i]))
                    trees[i] = (td, leaves)
            self.inputs = set(inputs).union(*(leaves for _, leaves in trees.values()))
            try:
                if direct:
                    locals_ = dict(zip(params, bound))
                    scope = Scope(locals_, None, fn.__globals__, cells(fn),
                                  local_names(src.node))
                    result = self._run(src, scope)
                else:
                    result = self._call_entry(fn, sig, bound, src)
            except (ADError, _Break, _Continue, loops.CannotRoll):
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
        # after the guards' outcomes: the derivatives' paths inlined (nested.py), which tell
        # apart paths whose guards have the same outcomes but check different things
        decisions = tuple(self.decisions) + tuple(self.inlined_paths)
        outputs, out_tree = flat_outputs(result)
        prog = Program(src.name, tuple(inputs), self.b.eqns, outputs, decisions,
                       self.namer, self.return_loc, trees=trees, out_tree=out_tree)
        return prog, self.b.values

    def _call_entry(self, fn, sig, inputs, src):
        """Call ``fn`` with the inputs bound to its visible signature's parameters."""
        self.scope = Scope({}, None, getattr(entry_code(fn), "__globals__", {}), {},
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

    def loc(self, node):
        loc = getattr(node, "_ad_loc", None)  # kept on the (cached) AST node across paths
        if loc is None or loc.file != self.src.filename:
            key = (self.src.filename, getattr(node, "lineno", 0), getattr(node, "col_offset", 0))
            loc = self._locs.get(key)
            if loc is None:
                loc = self._locs[key] = loc_of(self.src.filename, node)
                try:
                    node._ad_loc = loc
                except AttributeError:
                    pass
        return loc.in_trip(self.trip) if self.trip else loc  # in the loop iterations being run

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

    # Concrete values are read only through OutsideValues._fact/sig/_memory (outside.py);
    # tests/test_guards.py::test_lowering_reads_values_only_through_facts checks it.

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
            cur = self.read_name(t.id, t)
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

    def s_If(self, s):
        test = self.eval(s.test)
        if isinstance(test, Var) and branches.run_if(self, s, test):
            return  # both branches are in the path (branches.py)
        if self.truth(test, s.test):
            self.exec_block(s.body)
        else:
            self.exec_block(s.orelse)

    def s_While(self, s):
        if loops.run_while(self, s):
            return
        run, outer = LoopRun(), self.trip
        try:
            while True:
                self.trip = outer + ((run, run.count + 1),)  # its test belongs to it
                self.b.loc = self.loc(s)
                if not self.truth(self.eval(s.test), s.test):
                    self.trip = outer
                    self.exec_block(s.orelse)
                    return
                run.count += 1
                self.loops[s] = self.loops.get(s, 0) + 1
                if not self._iteration(s.body):
                    return
        finally:
            self.trip = outer

    def s_For(self, s):
        items = self._for_items(s)
        if loops.run_for(self, s, items):
            return
        if isinstance(items, loops.TracedStop):
            items = items.range  # unrolled: the guard of n's value stays
        run, outer = LoopRun(), self.trip
        try:
            for item in self._live(items, s.iter):
                run.count += 1
                self.trip = outer + ((run, run.count),)
                self.b.loc = self.loc(s)
                self.assign(s.target, item)
                self.loops[s] = self.loops.get(s, 0) + 1
                if not self._iteration(s.body):
                    return
        finally:
            self.trip = outer
        self.exec_block(s.orelse)

    def _for_items(self, s):
        """What ``s`` iterates over; ``range(n)`` or ``range(a, n)`` with a traced int
        ``n`` (a loop that may roll) comes as a :class:`~ad_transform.loops.TracedStop`."""
        it = s.iter
        if (self.unroll and not self.in_loop and isinstance(it, gast.Call) and not it.keywords
                and isinstance(it.func, gast.Name) and it.func.id == "range"
                and 1 <= len(it.args) <= 2
                and not any(isinstance(a, gast.Starred) for a in it.args)):
            func = self.eval(it.func)
            if func is range:
                args = [self.eval(a) for a in it.args]
                stop, start = args[-1], (args[0] if len(args) == 2 else 0)
                if isinstance(stop, Var) and type(self.sig(stop)) is int and type(start) is int:
                    self.b.loc = self.loc(it)
                    return loops.traced_range(self, start, stop, it)
                return self.call(func, args, {}, it)
        return self.eval(it)

    def _iteration(self, body) -> bool:
        """Run one iteration of a loop's ``body``; False when it ends in ``break``."""
        try:
            self.exec_block(body)
        except _Break:
            return False
        except _Continue:
            pass
        return True

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

    # -- expressions -----------------------------------------------------------
    def eval(self, node, hint=None):
        kind = type(node)
        method = _EVAL.get(kind)
        if method is None:
            method = _EVAL[kind] = getattr(Lowerer, "e_" + kind.__name__)
        return method(self, node, hint)

    def e_Constant(self, node, hint):
        return node.value

    def e_Name(self, node, hint):
        found = self.scope.locals.get(node.id, _UNSET)  # a local: resolve's first answer
        return found if found is not _UNSET else self.read_name(node.id, node)

    def read_name(self, name, node):
        """The value of the variable ``name`` (Python's rules:
        :func:`~ad_transform.scope.resolve`); a global or a closure cell is a value from
        outside, read as :mod:`ad_transform.outside` says."""
        kind, found = resolve(self.scope, name, lambda: self.loc(node))
        if kind == "cell":
            return self._from_cell(found, name, node)
        if kind == "global":
            return self._from_global(found, name, node)
        return found

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
        """Carry out ``func(*args, **kwargs)``.  The dispatch order is the policy; the
        first that applies wins:

        1. a function defined in traced code (:class:`Closure`) is inlined; a method of a
           traced value (``x.sum``) goes to its rule (:meth:`call_method`); a traced
           value called is resolved to the function it holds, guarded by identity;
           a partial is unpacked;
        2. a lowering registered for ``func`` (``rules.lookup_lowering``): the builtins
           the interpreter runs itself (``len``, ``range``, ``sorted``, ...,
           :mod:`ad_transform.rules.python`) and NumPy calls that are more than one
           primitive (``np.array([a, b])``); a lowering may decline (``NotImplemented``);
        3. a derivative made by ad_transform: called on constants; on traced values its
           generated source is inlined (:mod:`ad_transform.nested`), and a ``jacobian``,
           ``hessian`` or ``hvp`` is lowered as the gradients it is made of
           (:mod:`ad_transform.inner`);
        4. the user's own code is inlined, also on constants (it may read globals),
           unless the user registered a rule for it;
        5. a method of a list, dict or tuple runs on the interpreter's values;
        6. constants only: folded (called now);
        7. a registered primitive is applied (one equation);
        8. anything else is opaque library code (:meth:`call_opaque`).
        """
        if self.speculating:  # a branch lowered for a merge calls primitives only
            branches.call_allowed(self, func)
        if isinstance(func, Closure):
            return self.call_closure(func, args, kwargs, node)
        if isinstance(func, VarMethod):
            return self.call_method(func, args, kwargs, node, hint)
        if isinstance(func, Var):
            func = self._callee(func, node)
        if isinstance(func, (_Partial, functools.partial)):
            return self.call(func.func, [*func.args, *args], {**func.keywords, **kwargs},
                             node, hint)
        lowering = lookup_lowering(func)
        if lowering is not None:
            result = lowering(self, args, kwargs, node, hint)
            if result is not NotImplemented:
                return result
        has_var = any(_contains_var(a) for a in args) or any(
            _contains_var(v) for v in kwargs.values())
        inner = getattr(func, "__ad_inner__", None)  # jacobian, hessian, hvp (inner.py)
        if inner is not None and getattr(inner, "owner", None) == id(func) and (
                has_var or inner.always):
            return inner(self, args, kwargs, node)
        if getattr(func, "__ad_transform__", False):
            if has_var:  # a derivative of ours: its generated source is inlined
                if derivative_info(func) is None:  # a wrapper of another kind
                    raise UnsupportedSyntax(
                        f"{_describe(func)} (made by ad_transform) called on a "
                        "differentiated value: nest gradient, jacobian, hessian, hvp, jvp, "
                        "vjp or forward_derivative wrappers instead", self.loc(node))
                from .nested import inline
                return inline(self, func, args, kwargs, node)
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
        if not has_var and getattr(func, "__ad_constructor__", False):
            # gradient(f), hessian(f), ...: made now, of the user's own function
            if any(_is_user_callable(a) and not isinstance(a, types.FunctionType)
                   for a in [*args, *kwargs.values()]):
                raise UnsupportedSyntax(
                    f"{func.__name__}() of a function defined inside the function being "
                    "differentiated: define it at module level (or outside), and pass what "
                    "it reads as arguments", self.loc(node))
            return func(*args, **kwargs)
        if not has_var:  # constants only: fold (user callables inlined when called back)
            return func(*self._library_args(args, node), **self._library_args(kwargs, node))
        owner = getattr(func, "__self__", None)
        if isinstance(func, types.BuiltinMethodType) and isinstance(owner, np.ndarray) and (
                lookup_method(owner, func.__name__) is not None):  # const.dot(traced)
            return self.call_method(VarMethod(owner, func.__name__), args, kwargs, node, hint)
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



def _frames_below() -> int:
    """How many frames the caller's stack holds (``len(inspect.stack(0))`` without reading
    every frame's source file)."""
    n, frame = 0, sys._getframe(1)
    while frame is not None:
        n, frame = n + 1, frame.f_back
    return n


def lower(fn, args, wrt, max_eqns=200_000, unroll=loops.DEFAULT_UNROLL,
          merge=False) -> tuple[Program, dict]:
    """Lower ``fn`` on the concrete ``args`` (one per parameter) to SSA.

    Returns the program and, apart, the concrete value of each of its
    variables on ``args`` (``Var -> value``): later passes read shapes and
    types off them, and nothing keeps them past the pipeline.  With ``merge``, an
    ``if`` whose branches are simple keeps both (:mod:`ad_transform.branches`)."""
    with _RoomToRecurse() as python_limit:
        lowerer = Lowerer(fn, wrt, max_eqns, unroll, merge and unroll > 0)
        # the user's code may nest calls as deeply as plain Python would let it
        lowerer.max_depth = python_limit - _frames_below() - 10
        try:
            return lowerer.lower(tuple(args))
        except loops.CannotRoll:  # a probed loop changed a container: unroll every loop
            return lower(fn, args, wrt, max_eqns, unroll=0, merge=merge)
        finally:
            # Closures made while lowering may refer back to the lowerer (a recursive
            # helper closure is a reference cycle); emptied, it holds no value of this
            # call until the garbage collector gets to it.
            lowerer.__dict__.clear()
            lowerer._finished = True
