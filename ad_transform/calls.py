"""How a call is carried out, once :meth:`Lowerer.call` has chosen how.

Guarantees:

* the user's own functions, methods, closures and operators (``__add__`` of their
  classes) are inlined: run by the interpreter in a fresh :class:`~ad_transform.scope.Scope`,
  as deep as Python itself would allow the recursion;
* library code that has no rule runs *opaquely*: on constants it is folded; on traced
  values that are not differentiated it becomes one ``call_opaque``/``method`` equation,
  after which earlier reads of traced containers are not reused; on differentiated
  values it raises :class:`~ad_transform.errors.MissingRule`;
* the user's callables handed to library code (``sorted(xs, key=f)``) are inlined on each
  call back, and what they return to the library becomes a guarded fact;
* calls that read the world (random generators, the clock, the environment) are
  refused: a value read while tracing would be frozen into the compiled path.
"""
from __future__ import annotations

import datetime
import random
import sys
import threading
import types

import numpy as np

from . import fence
from .errors import MissingRule, SourceUnavailable, UnsupportedSyntax
from .ir import Primitive, Var
from .rules import builtins as B
from .rules import lookup_method
from .scope import Scope, bind, cells, local_names
from .source import FunctionSource, get_source
from .values import (VarMethod, _contains_var, _hashable, _is_user_callable, _is_user_code,
                     _user_instance)

_IMMUTABLE = (int, float, complex, bool, str, bytes, type(None), np.generic)

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


class Calls:
    """The :class:`~ad_transform.lower.Lowerer`'s ways of carrying out a call."""

    # -- the user's code: inlined ----------------------------------------------------
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

    def call_method(self, m, args, kwargs, node, hint):
        value = self.sig(m.var)
        prim = lookup_method(value, m.name)
        if prim is None and (_user_instance(value) or isinstance(value, type) or
                             _is_user_callable(getattr(value, m.name, None))):
            # obj.method(...) on an object passed in: which function runs is guarded
            self.b.loc = self.loc(node)
            fn = self.b.record(B.getattr_(m.name), (m.var,), hint=m.name)
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
        bound = bind(node_.args, c.defaults, c.kwdefaults, args, kwargs, c.__name__)
        scope = Scope(bound, c.scope, c.scope.globals, c.scope.cells, local_names(node_))
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
        bound = bind(src.node.args, defaults, kwdefaults, args, kwargs, fn.__name__)
        scope = Scope(bound, None, fn.__globals__, cells(fn), local_names(src.node))
        return self._inlined(src, scope, node)

    # -- library code: run now, or opaque ----------------------------------------------
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
                items = [static(i, keyword) for i in x]
                return type(x)(*items) if hasattr(x, "_fields") else type(x)(items)
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
        out = self.b.record(prim, ins, kwargs, hint=hint)
        if any(isinstance(x, Var) and not isinstance(self.sig(x), _IMMUTABLE)
               for x in list(ins) + list(kwargs.values())):
            self.b.seen.clear()
        return out
