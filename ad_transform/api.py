"""The public surface: ``gradient``, ``value_and_gradient`` and what they return.

No AST code lives here: a call runs the cached derivative of its control path,
and only a miss runs the pipeline
``lower -> reverse -> prune -> emit -> compile``.  Set the environment
variable ``AD_TRANSFORM_DUMP=1`` to print every stage of the pipeline to
stderr as it runs.
"""
from __future__ import annotations

import dataclasses
import functools
import gc
import inspect
import os
import sys
import threading
import types
import weakref

import gast

from . import ir
from .branches import Unmerge
from .builder import Builder
from .cache import Entry, cache_for
from .compile import compile_function
from .dispatcher import emit_dispatcher, fuse, swapped
from .emit import emit
from .errors import BadWrt, NonScalarOutput, SourceUnavailable, UnsupportedSyntax
from .loops import DEFAULT_UNROLL
from .lower import lower
from .reverse import prune, reverse
from .rules.pytree import build_aux
from .source import get_source
from .values import derivative_info

__all__ = ["gradient", "value_and_gradient", "derivative_source"]


def gradient(fun=None, wrt=0, *, has_aux: bool = False, maxsize: int = 128,
             max_eqns: int = 200_000, unroll: int = DEFAULT_UNROLL):
    """The gradient of ``fun`` with respect to the argument(s) ``wrt``.

    ``wrt`` is a parameter index, a parameter name, or a tuple of them; an int
    or a name gives one gradient, a tuple gives a tuple.  A ``wrt`` argument
    may be a float, an int, an array or a tree of them (nested lists, tuples,
    namedtuples, dicts, dataclasses): its gradient has the same structure.
    With ``has_aux=True``, ``fun`` returns ``(loss, aux)`` and the result is
    ``(gradient, aux)``.  Works as ``gradient(f)``, ``@gradient`` and
    ``@gradient(wrt=(0, 1))``.  The returned function has ``.source(*args)``
    (the generated derivative for the path these arguments take),
    ``.cache_info()`` and ``.cache_clear()``.

    Loops that run at least ``unroll`` times become loops in the generated code
    (a rolled loop: its body once, its guards checked on every iteration);
    shorter ones are unrolled into straight-line code.  ``unroll=0`` unrolls
    every loop.
    """
    if fun is None:
        return lambda f: _make(f, wrt, False, maxsize, max_eqns, has_aux, unroll)
    return _make(fun, wrt, False, maxsize, max_eqns, has_aux, unroll)


def value_and_gradient(fun=None, wrt=0, *, has_aux: bool = False, maxsize: int = 128,
                       max_eqns: int = 200_000, unroll: int = DEFAULT_UNROLL):
    """Like :func:`gradient`, but returns ``(value, gradient)`` from one evaluation
    (``((loss, aux), gradient)`` with ``has_aux=True``)."""
    if fun is None:
        return lambda f: _make(f, wrt, True, maxsize, max_eqns, has_aux, unroll)
    return _make(fun, wrt, True, maxsize, max_eqns, has_aux, unroll)


def derivative_source(fun, *args, wrt=0, **kwargs) -> str:
    """The generated derivative source of ``fun`` for the path ``args`` take."""
    return gradient(fun, wrt).source(*args, **kwargs)


def _def_loc(fun):
    """Where ``fun`` is defined (its ``def``), for errors about its signature."""
    try:
        src = get_source(fun)
    except SourceUnavailable:
        return None
    return src.loc(src.node)


def _resolve_wrt(fun, params, wrt):
    single = not isinstance(wrt, (tuple, list))
    items = [wrt] if single else list(wrt)
    names = [p.name for p in params]
    out = []
    for w in items:
        if isinstance(w, bool) or not isinstance(w, (int, str)):
            raise BadWrt(f"wrt must be a parameter index, a parameter name or a tuple of them; "
                         f"got {w!r}", _def_loc(fun))
        if isinstance(w, str):
            if w not in names:
                raise BadWrt(f"wrt={w!r} names no parameter of {fun.__qualname__}"
                             f"{inspect.signature(fun)}", _def_loc(fun))
            i = names.index(w)
        else:
            i = w + len(params) if w < 0 else w
            if not 0 <= i < len(params):
                raise BadWrt(f"wrt={w} is out of range: {fun.__qualname__}"
                             f"{inspect.signature(fun)} has {len(params)} parameters",
                             _def_loc(fun))
        kind = params[i].kind
        if kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise BadWrt(f"wrt={w!r} names the catch-all parameter {params[i]}; "
                         "differentiate with respect to a named parameter", _def_loc(fun))
        out.append(i)
    if not out:
        raise BadWrt("wrt is empty", _def_loc(fun))
    return tuple(out), single


def _dump(stage: str, text: str) -> None:
    print(f"--- ad_transform: {stage} ---\n{text}", file=sys.stderr)


def _check_output(prog, values):
    value = ir.output_value(prog, lambda x: values[x] if isinstance(x, ir.Var) else x)
    shape = getattr(value, "shape", None)
    scalar = (isinstance(value, (int, float)) and not isinstance(value, bool)) or (
        shape is not None and getattr(value, "size", 2) == 1 and value.dtype.kind in "fiu")
    if not scalar:
        what = f"a {type(value).__name__}" if shape is None else f"an array of shape {shape}"
        raise NonScalarOutput(f"{prog.name} returned {what}; gradient needs a function that "
                              "returns one real number (reduce it, e.g. with sum())",
                              prog.return_loc)


class _NoCyclicGC:
    """The cyclic garbage collector stays off while a path is built (restored after,
    also on an error).

    The pipeline allocates millions of small objects that all stay alive until it
    ends (equations, values, AST nodes); every full collection would rescan them
    all, which makes a long path's build cost grow faster than its length.  What
    the pipeline leaves behind is freed by reference counting (see ``_result``);
    cycles among it wait for the next collection.  Nested and concurrent builds
    share one count: the collector comes back on when the last one ends, and only
    if it was on when the first one began.
    """

    _depth = 0
    _was_enabled = False
    _lock = threading.Lock()

    def __enter__(self):
        with self._lock:
            cls = type(self)
            if cls._depth == 0:
                cls._was_enabled = gc.isenabled()
                gc.disable()
            cls._depth += 1

    def __exit__(self, *exc):
        with self._lock:
            cls = type(self)
            cls._depth -= 1
            if cls._depth == 0 and cls._was_enabled:
                gc.enable()


def _split_aux(prog, values):
    """``fun`` returned ``(loss, aux)``: the program returns ``loss``; ``aux`` apart."""
    node = prog.out_tree.node
    if not (node[0] in ("tuple", "list") and node[2] == 2):
        value = ir.output_value(prog, lambda x: values[x] if isinstance(x, ir.Var) else x)
        what = f"a {type(value).__name__}" + (f" of length {len(value)}" if isinstance(
            value, (tuple, list)) else "")
        raise NonScalarOutput(f"{prog.name} returned {what}; with has_aux=True it must return "
                              "a pair (loss, aux)", prog.return_loc)
    loss, aux = ir.output_value(prog, lambda x: x)
    outputs, out_tree = ir.flat_outputs(loss)
    return dataclasses.replace(prog, outputs=outputs, out_tree=out_tree), aux


def _attach_aux(full, values, aux, with_value):
    """Append the equation building ``aux`` (after the adjoints, so no in-place update
    of the gradient code can touch an array in it) and return it beside the gradient."""
    b = Builder(full.namer)
    b.values, b.eqns = values, list(full.eqns)
    owned = full.outputs[1:] if with_value else full.outputs  # the gradients
    with b:
        atom = build_aux(b, aux, full.return_loc, owned)
    out = ir.output_value(full, lambda x: x)
    outputs, out_tree = ir.flat_outputs(((out[0], atom), out[1]) if with_value else (out, atom))
    return dataclasses.replace(full, eqns=b.eqns, outputs=outputs, out_tree=out_tree)


def _build(fun, args, wrt, single, with_value, max_eqns, compile_now=True,
           for_lowering=False, has_aux=False, unroll=DEFAULT_UNROLL, merge=False):
    """The pipeline: one new path for ``args``, and its result.

    The concrete values of the first call (``values``) pass through the stages
    beside the program and die with this frame: the :class:`Entry` holds the
    compiled function, its guards' expected outcomes and its file name only.
    Without ``compile_now`` the path is not emitted nor compiled yet: its entry
    holds the program (no value of this call), which runs interpreted until the
    path is taken again (see :mod:`ad_transform.cache`).
    """
    with _NoCyclicGC():
        run = functools.partial(_pipeline, fun, args, wrt, single, with_value, max_eqns,
                                compile_now or for_lowering, for_lowering, has_aux=has_aux,
                                unroll=0 if for_lowering else unroll)  # read back: straight-line
        if merge and not for_lowering:
            try:
                return run(merge=True)
            except Unmerge:  # a merged if's adjoint failed on these values: decide it
                pass
        try:
            return run()
        except Unmerge:  # one in a rolled loop's body (merged when probed): unrolled
            return run(unroll=0)


def _pipeline(fun, args, wrt, single, with_value, max_eqns, compile_now=True,
              for_lowering=False, has_aux=False, unroll=DEFAULT_UNROLL, merge=False):
    dump = os.environ.get("AD_TRANSFORM_DUMP")
    prog, values = lower(fun, args, wrt, max_eqns, unroll, merge)
    if has_aux:
        prog, aux = _split_aux(prog, values)
    _check_output(prog, values)
    if dump:
        _dump("lowered SSA (primal)", ir.format_program(prog))
    full, values = reverse(prog, values, wrt, single, with_value)
    if has_aux:
        full = _attach_aux(full, values, aux, with_value)
    full = prune(full, values)
    ir.verify(full, values)
    if dump:
        _dump("after reverse and prune", ir.format_program(full))
    suffix = "value_and_grad" if with_value else "grad"
    inner = derivative_info(fun)
    base = inner.name if inner is not None else fun.__name__  # f_grad_grad for a nesting
    name = f"{base}_{suffix}" if base.isidentifier() else suffix
    label = f"{fun.__qualname__} {suffix}" + (" (for lowering)" if for_lowering else "")
    finish = functools.partial(_finish, name, label, not for_lowering)
    if any(e.prim is ir.LOOP or e.prim is ir.COND for e in full.eqns):
        # the values of a rolled loop's iterations were not kept, and a merged if's
        # untaken branch holds values this call never had: compile the path now and run
        # it for the first call's answer
        fn, filename = finish(full, values)
        return Entry(fn, full.decisions, filename), fn(*args)
    if compile_now or len(full.eqns) > _LAZY_EQNS:
        fn, filename = finish(full, values)
        entry = Entry(fn, full.decisions, filename)
    else:
        entry = Entry(None, full.decisions, None, program=full, finish=finish)
    return entry, _result(full, values)


# A path longer than this is compiled when built, even past a function's first paths:
# holding its program until a second call would make every full collection of the cyclic
# garbage collector scan it.
_LAZY_EQNS = 5_000


def _finish(name, label, inplace, prog, values):
    """Emit and compile ``prog``, whose variables have the concrete ``values`` (of the
    call that built it, or of a later call on the same path); ``(function, file name)``.
    Without ``inplace`` the derivative makes no in-place NumPy writes (the variant that
    the lowering reads back for a nested derivative)."""
    with _NoCyclicGC():
        emitted = emit(prog, values, name, inplace=inplace)
        fn, source, filename = compile_function(emitted, label)
    if os.environ.get("AD_TRANSFORM_DUMP"):
        _dump(f"generated source ({filename})", source)
    return fn, filename


def _result(prog, values):
    """The first call's answer, already computed while lowering.

    (A module-level function: a closure over ``values`` kept alive would hold them
    until the garbage collector runs.)"""
    return ir.output_value(prog, lambda x: values[x] if isinstance(x, ir.Var) else ir._raw(x))


class Derivative:
    """What a wrapper made here carries as ``__ad_transform__``: enough for the lowering to
    inline the derivative when the wrapper is called on traced values (``nested.py``).

    ``root`` is the user's function at the bottom of a nesting (``gradient(gradient(f))``
    has root ``f``); ``chain`` names the transformations above it, so caches are keyed by
    ``(root, chain)`` and shared by every wrapper built the same way.
    ``lowering_entry(values)`` is the compiled path ``values`` take, in the variant the
    lowering reads back (no in-place NumPy writes), from a cache of its own.
    """

    __slots__ = ("root", "chain", "bind", "lowering_entry", "name", "remake")

    def __init__(self, root, chain, bind, lowering_entry, name, remake):
        self.root, self.chain, self.bind, self.lowering_entry = root, chain, bind, lowering_entry
        self.name = name  # of the generated function (f_grad, f_grad_grad, ...)
        # () -> an equivalent wrapper, holding nothing alive (for the caches of a nesting)
        self.remake = remake


class _State:
    """What a wrapper was made from: ``fun``'s ``__code__``, ``__defaults__`` and
    ``__kwdefaults__`` (and the values in the last, a mutable dict).  The wrapper binds
    arguments by the signature read then, and the cached paths were lowered from that
    code, so every call checks, by identity (three attribute reads), that they are still
    the same; a replaced one raises :class:`UnsupportedSyntax` at ``fun``'s ``def``."""

    def __init__(self, fun, made_from=None):
        """``made_from``: the state the cache's dispatcher was compiled from (its signature
        and defaults are baked in), if it was compiled before; else ``fun``'s own now."""
        self.fun = fun
        # (a wrapper made here swaps its own code object: see dispatcher.swap)
        self.watched = isinstance(fun, (types.FunctionType, types.MethodType)) and \
            fun not in swapped
        if made_from is None:
            kwdefaults = getattr(fun, "__kwdefaults__", None)
            made_from = (fun.__code__, getattr(fun, "__defaults__", None), kwdefaults,
                         list((kwdefaults or {}).items()))
        self.made_from = made_from
        self.code, self.defaults, self.kwdefaults, self.kw_items = made_from

    def insert_check(self, emitted, params) -> tuple:
        """Put ``if <state changed>: changed()`` first in the dispatcher ``emitted``;
        returns the global names it uses (their values: :meth:`bind`)."""
        if not self.watched:
            emitted.namespace["__ad_state__"] = ()
            return ()
        taken = {p.name for p in params} | set(emitted.namespace) | {emitted.fdef.name}

        def fresh(base):
            name, i = base, 1
            while name in taken:
                name, i = f"{base}_{i}", i + 1
            taken.add(name)
            return name

        names = tuple(fresh(n) for n in ("fun", "fun_code", "fun_defaults", "fun_kwdefaults",
                                         "changed", "kw_changed"))
        names += (bool(self.kw_items),)  # part of the compiled code's reuse key
        emitted.fdef.body.insert(0, self.statement(names))
        for n in names[:-1]:
            emitted.namespace[n] = None  # bound per wrapper (bind)
        emitted.namespace["__ad_state__"] = names
        return names

    @staticmethod
    def statement(names):
        """``if <state changed>: changed()`` over the global ``names`` of
        :meth:`insert_check` (its last item: whether keyword defaults are checked too)."""
        fn_, code, defaults, kwdefaults, changed, kw_changed, kw = names
        test = (f"{fn_}.__code__ is not {code} or {fn_}.__defaults__ is not {defaults} "
                f"or {fn_}.__kwdefaults__ is not {kwdefaults}")
        if kw:  # a dict: changed in place, it is the same object
            test += f" or {kw_changed}()"
        return gast.parse(f"if {test}:\n    {changed}()\n").body[0]

    def bind(self, namespace) -> dict:
        """The dispatcher's globals for this wrapper: ``namespace`` plus this state."""
        out = dict(namespace)
        names = namespace["__ad_state__"]
        if names:
            out.update(zip(names, (self.fun, self.code, self.defaults, self.kwdefaults,
                                   self.changed, self.kw_changed)))
        return out

    def kw_changed(self) -> bool:
        now = self.fun.__kwdefaults__ or {}
        return len(now) != len(self.kw_items) or any(
            now.get(k, self) is not v for k, v in self.kw_items)

    def check(self):
        fun = self.fun
        if self.watched and (fun.__code__ is not self.code or fun.__defaults__ is not
                             self.defaults or fun.__kwdefaults__ is not self.kwdefaults
                             or (self.kw_items and self.kw_changed())):
            self.changed()

    def changed(self):
        fun = self.fun
        what = ("__code__" if fun.__code__ is not self.code else
                "__defaults__" if fun.__defaults__ is not self.defaults else "__kwdefaults__")
        raise UnsupportedSyntax(
            f"the {what} of {fun.__qualname__} was replaced after a derivative of it was made "
            "(gradient, jvp, vjp, jacobian...); "
            "its derivative and its signature were taken from the old one, and ad_transform "
            "does not follow a function whose code or defaults change: define a new "
            "function (and take its gradient) instead", _def_loc(self._original()))

    def _original(self):
        """A function with the code the wrapper was made from (for its location)."""
        cells = tuple(types.CellType() for _ in self.code.co_freevars)
        return types.FunctionType(self.code, {}, self.fun.__name__, None, cells or None)


def _fuse(cache, entry, name, params):
    """After a build: the first compiled path fused into the dispatcher, after the same
    state check the plain dispatcher starts with (:func:`dispatcher.fuse`)."""
    d = cache.dispatcher
    if d is None or d.fused is not None:
        return
    names = d.__globals__.get("__ad_state__", ())
    fuse(d, cache, entry, name, params, _State.statement(names) if names else None,
         names[:-1])


def _make(fun, wrt, with_value, maxsize, max_eqns, has_aux=False, unroll=DEFAULT_UNROLL):
    if not callable(fun) or not hasattr(fun, "__code__"):
        raise TypeError(f"gradient needs a Python function, got {fun!r}")
    inner = derivative_info(fun)
    sig = inspect.signature(fun)
    params = list(sig.parameters.values())
    wrt_idx, single = _resolve_wrt(fun, params, wrt)
    key = (wrt_idx, single, with_value, max_eqns) + (("has_aux",) if has_aux else ()) + (
        (("unroll", unroll),) if unroll != DEFAULT_UNROLL else ())
    if inner is not None:
        # a derivative of a derivative: keyed by the user's function and the chain; the
        # inner wrapper is held weakly and made again if it is gone (gradient(gradient(f))
        # keeps no reference to the inner gradient(f))
        root, chain = inner.root, (inner.chain, key)
        inner_ref, remake_inner = weakref.ref(fun), inner.remake

        def fun_ref():
            return inner_ref() or remake_inner()
    else:
        root, chain = fun, key
        fun_ref = weakref.ref(fun)  # the cache must not keep the function alive
    cache = cache_for(root, chain, maxsize)
    cache.exhaustive = inner is not None

    def bind(args, kwargs):
        ba = sig.bind(*args, **kwargs)
        ba.apply_defaults()
        return tuple(ba.arguments[p.name] for p in params)

    name = fun.__name__ if fun.__name__.isidentifier() else "dispatch"

    second = None
    if inner is not None:  # gradient(gradient(f)) of floats: loops kept rolled (higher.py)
        from .higher import second_builder
        second = second_builder(inner, wrt_idx, single, with_value, has_aux, unroll)

    def build(args, compile_now=True):
        made = second(args, cache.merge_branches()) if second is not None else None
        if made is None:
            made = _build(fun_ref(), args, wrt_idx, single, with_value, max_eqns,
                          compile_now, has_aux=has_aux, unroll=unroll,
                          merge=cache.merge_branches())
        _fuse(cache, made[0], name, params)
        return made

    def build_for_lowering(args, compile_now=True):  # read back as source: always compiled
        return _build(fun_ref(), args, wrt_idx, single, with_value, max_eqns,
                      for_lowering=True, has_aux=has_aux)

    def lowering_entry(values):
        lowering = cache_for(root, ("for lowering", chain), maxsize)
        lowering.exhaustive = inner is not None
        return lowering.entry_for(values, build_for_lowering)

    # every call checks that the user's function is as its paths were lowered from: fun's
    # own state, or for a derivative of a derivative the root's (fun, a wrapper of ours,
    # is not watched; its paths inline the root's code)
    state = _State(root if inner is not None else fun, cache.made_from)
    if cache.dispatcher is None:  # compiled once; gradient(f)(x) in a loop stays cheap
        emitted = emit_dispatcher(name, params, cache.slot, cache, build)
        names = state.insert_check(emitted, params)
        shape = (name, tuple((p.name, p.kind, p.default is p.empty) for p in params), names)
        d, _, _ = compile_function(emitted, f"{name} dispatcher", shape)
        # its first compiled path is fused into it (dispatcher.fuse): these are its parts
        d.build, d.plain, d.wrappers, d.fused = build, d.__code__, weakref.WeakSet(), None
        swapped.add(d)
        cache.dispatcher = d
        cache.made_from = state.made_from  # (no reference to fun: the cache must not keep it)
    base = cache.dispatcher
    # the wrapper's own globals hold the function (the cache must not keep it alive); it is
    # made under the cache's lock, as a fusion adds names to every wrapper's globals
    with cache.lock:
        wrapper = types.FunctionType(base.__code__, state.bind(base.__globals__),
                                     base.__name__, base.__defaults__, base.__closure__)
        base.wrappers.add(wrapper)
        swapped.add(wrapper)
    wrapper.__kwdefaults__ = base.__kwdefaults__

    def source(*args, **kwargs):
        """The generated derivative source for the control path these arguments take."""
        state.check()
        return cache.entry_for(bind(args, kwargs), build).source

    functools.update_wrapper(wrapper, fun)
    wrapper.source = source
    wrapper.cache_info = cache.info
    wrapper.cache_clear = cache.clear
    # the lowering inlines this derivative when it is called on traced values (nested.py)
    base = inner.name if inner is not None else fun.__name__

    def remake():
        return _make(fun_ref(), wrt, with_value, maxsize, max_eqns, has_aux)

    wrapper.__ad_transform__ = Derivative(root, chain, bind, lowering_entry,
                                          f"{base}_{'value_and_grad' if with_value else 'grad'}",
                                          remake)
    return wrapper


# Called inside a function being lowered, these make their wrapper of the user's own
# function there and then (lower.py), instead of being handed a call-back stand-in.
for _constructor in (gradient, value_and_gradient):
    _constructor.__ad_constructor__ = True
