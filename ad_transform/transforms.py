"""Forward mode, vector-Jacobian products and Jacobians: ``jvp``, ``forward_derivative``,
``vjp`` and ``jacobian``.

Each compiled form runs the same pipeline as :func:`~ad_transform.gradient`
(``lower`` -> a derivative pass -> ``prune`` -> ``emit`` -> ``compile``), one
compiled function per control path in the function's :class:`PathCache`,
behind a dispatcher compiled once per ``(function, mode, wrt)``:

* forward mode (:mod:`ad_transform.forward`) takes the arguments and one
  tangent per ``wrt`` argument and returns ``(value, tangent)``;
* reverse mode with a cotangent (:func:`ad_transform.reverse.reverse` seeded
  with an input) takes the arguments and one cotangent per output and returns
  the gradients.

Loops that run at least ``DEFAULT_UNROLL`` times stay loops in the generated
code, as :func:`~ad_transform.gradient`'s do by default (``loops.py``): forward
mode carries the tangents through a rolled loop (:mod:`ad_transform.forward`),
and the pullback walks it in reverse (``loops_reverse.py``), so a first call
costs in proportion to the loop's body, not to its trip count, and a path
serves every trip count whose iterations take the same body path.  A path with
a rolled loop or a merged ``if`` is compiled when it is built and run for the
first call's answer.  Where forward mode cannot build a rolled body's tangent
(:class:`~ad_transform.forward.Unroll`), or a merged ``if``'s adjoint fails
(:class:`~ad_transform.branches.Unmerge`), the path is lowered again with every
loop unrolled.  Derivatives read back while lowering another (``inner.py``,
``higher.py``) keep every loop unrolled.  Forward mode of a plain ``gradient(f)``
wrapper (``jvp``, ``forward_derivative``, ``jacobian``'s columns) is built, where
``f``'s path keeps a loop rolled, as forward over reverse on the IR
(:func:`ad_transform.higher.forward_builder`; any other path, and any it cannot
build, is read back as above), in the same cache, which then tries every stored
path on a miss; the dispatcher of a ``gradient`` wrapper checks the code and
defaults of the user's function at its root on every call.

Arguments: ``jvp`` and ``vjp`` take them by position and fill the parameters
after them with their defaults (``()`` and a new ``{}`` for ``*args`` and
``**kwargs``); ``jacobian`` binds ``(*args, **kwargs)`` as ``fun`` does;
``forward_derivative`` refuses ``*args``, ``**kwargs`` and keyword-only
parameters (:class:`~ad_transform.errors.BadWrt`).  The compiled paths take one
value per parameter.  Any ``wrt`` argument may be a tree (``pytree.py``): its
structure is guarded in the path as for ``gradient``, and so is a tangent
tree's; cotangents and Jacobians follow the trees with the
:mod:`ad_transform.pytree` helpers.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import os
import weakref

import gast
import numpy as np

from . import ir
from . import pytree as T
from .api import _LAZY_EQNS, _NoCyclicGC, _State, _def_loc, _dump, _resolve_wrt, gradient
from .api import _finish as _compile_path
from .branches import Unmerge
from .cache import Entry, cache_for
from .compile import compile_function, define
from .dispatcher import emit_dispatcher, fuse, swapped
from .errors import BadWrt, NonScalarOutput
from .forward import Unroll, check_like, extend_entry_guard, forward
from .inner import attach, lower_jacobian, lower_jvp, lower_vjp
from .ir import Namer, Var
from .loops import DEFAULT_UNROLL
from .lower import lower
from .runtime import PathMiss
from .reverse import prune, reverse
from .values import derivative_info

__all__ = ["jvp", "forward_derivative", "vjp", "jacobian"]

_P = inspect.Parameter


def _params(fun, what):
    if not callable(fun) or not hasattr(fun, "__code__"):
        raise TypeError(f"{what} needs a Python function, got {fun!r}")
    return list(inspect.signature(fun).parameters.values())


def _positional_params(fun, what):
    params = _params(fun, what)
    for p in params:
        if p.kind not in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD):
            raise BadWrt(f"{what} passes arguments by position only, and {fun.__qualname__} "
                         f"has the parameter {p}; wrap it in a function of positional "
                         "parameters, or use jvp/vjp/jacobian, which fill it in", _def_loc(fun))
    return params


class _Fresh:
    """A fill-in made anew on every call (``{}`` for ``**kwargs``)."""

    def __init__(self, make):
        self.make = make


def _fill(fun, n, what):
    """``fun``'s parameters and the values of those after the first ``n`` (given by
    position): their defaults, ``()`` for ``*args`` and a new ``{}`` for ``**kwargs``."""
    params = _params(fun, what)
    named = sum(p.kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD) for p in params)
    if n > named:
        if any(p.kind is _P.VAR_POSITIONAL for p in params):
            raise BadWrt(f"{what} gives each argument its own tangent or gradient, and "
                         f"{fun.__qualname__}{inspect.signature(fun)} collects extra "
                         "positional arguments in *args: pass them as one tuple argument "
                         "(a tree) of a function with named parameters", _def_loc(fun))
        raise TypeError(f"{fun.__qualname__}{inspect.signature(fun)} takes {named} "
                        f"positional arguments; {what} got {n}")
    fill = []
    for p in params[n:]:
        if p.kind is _P.VAR_POSITIONAL:
            fill.append(())
        elif p.kind is _P.VAR_KEYWORD:
            fill.append(_Fresh(dict))
        elif p.default is p.empty:
            raise TypeError(f"{fun.__qualname__}{inspect.signature(fun)}: {what} got "
                            f"{n} arguments and no value for the parameter {p.name!r}")
        else:
            fill.append(p.default)
    return params, tuple(fill)


def _spread(fun, n, known):
    """``fun``, or, for ``f(*args)`` given more positional arguments than it names, a
    function of ``n`` named parameters that calls it (so each argument gets its own
    tangent or gradient, as in JAX), made once per ``n`` and kept in ``known``."""
    params = list(inspect.signature(fun).parameters.values())
    named = [p.name for p in params if p.kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)]
    var = next((p.name for p in params if p.kind is _P.VAR_POSITIONAL), None)
    if var is None or n <= len(named):
        return fun
    made = known[2].get(("spread", n))
    if made is None:
        namer = Namer(reserved=[p.name for p in params] + ["_fun"])
        names = named + [namer.fresh(f"{var}_{k}") for k in range(n - len(named))]
        base = fun.__name__ if fun.__name__.isidentifier() else "f"
        text = (f"def {base}({', '.join(names)}):\n"
                f"    return _fun()({', '.join(names)})\n")
        filename = f"<ad_transform {fun.__qualname__} of {n} arguments>"
        # (a weak reference: the adapter must not keep fun alive)
        made = known[2][("spread", n)] = define(text, filename, {"_fun": weakref.ref(fun)},
                                                base)
    return made


def _filled(fill):
    """The fill-ins of one call (a new dict for ``**kwargs``)."""
    return tuple(v.make() if type(v) is _Fresh else v for v in fill)


def _dispatcher(fun, key, maxsize, extra_hints, build_path):
    """The compiled entry point ``d(*params, *extras)`` for ``fun`` in mode ``key``.

    Its first compiled path is fused into it (:func:`~ad_transform.dispatcher.fuse`):
    while that path is the current one, a call runs its statements in ``d``'s own
    frame."""
    cache = cache_for(fun, key, maxsize)
    if cache.dispatcher is None:
        params = list(inspect.signature(fun).parameters.values())
        namer = Namer(reserved=[p.name for p in params])
        extras = [namer.fresh(h) for h in extra_hints]
        dparams = [_P(p.name, _P.POSITIONAL_OR_KEYWORD) for p in params] + [
            _P(n, _P.POSITIONAL_OR_KEYWORD) for n in extras]
        fun_ref = weakref.ref(fun)  # the cache must not keep the function alive
        name = fun.__name__ if fun.__name__.isidentifier() else "dispatch"

        def build(args, compile_now=True):
            entry, result = build_path(fun_ref(), args, compile_now)
            fuse(cache.dispatcher, cache, entry, name, dparams, check(), names[:-1])
            return entry, result

        def check():
            """The state check: of the code alone for a function without defaults (every
            argument is passed: defaults given to it later change nothing here)."""
            if not names:
                return None
            if code_only:
                return gast.parse(f"if {names[0]}.__code__ is not {names[1]}:\n"
                                  f"    {names[4]}()\n").body[0]
            return _State.statement(names)

        emitted = emit_dispatcher(name, dparams, cache.slot, cache, build)
        # as gradient's: every call checks that fun's code and defaults are those its paths
        # were lowered from (a replaced one raises); through weak references only, as the
        # cache must not keep fun alive.  For a wrapper of ours (gradient(f)), f's: its
        # paths inline f's code (and the rolled ones lower f itself)
        watched = _watched(fun)
        watched_ref = weakref.ref(watched)
        state = _State(watched)  # (not kept: it holds fun)
        names = state.insert_check(emitted, dparams)
        code_only = state.defaults is None and state.kwdefaults is None
        if names:
            emitted.fdef.body[0] = check()
            made = state.made_from
            emitted.namespace.update(zip(names, (
                weakref.proxy(watched), state.code, state.defaults, state.kwdefaults,
                lambda: _State(watched_ref(), made).changed(),
                lambda: _State(watched_ref(), made).kw_changed())))
        del watched
        del state
        shape = (name, tuple(p.name for p in dparams), "positional", names)
        d, _, _ = compile_function(emitted, f"{name} dispatcher", shape)
        d.cache, d.build, d.plain = cache, build, d.__code__
        d.wrappers = weakref.WeakSet()  # the _public copies of d: they share its code
        d.fused = None  # (weak reference to the fused entry, its code, its function)
        swapped.add(d)
        cache.dispatcher = d
    return cache.dispatcher


def _watched(fun):
    """The function whose code and defaults a dispatcher for ``fun`` checks on every call:
    ``fun``, or for a ``gradient`` wrapper of ours the user's function at its root."""
    info = derivative_info(fun)
    return info.root if info is not None else fun


def _finish(fun, full, values, suffix, compile_now, args):
    """prune -> verify -> (emit -> compile, now or on the path's second use, as
    :mod:`ad_transform.cache` decides); the Entry and the first call's result (``args``:
    the call's, for a path with a rolled loop or a merged if, which is compiled now and
    run for it, as in ``api._pipeline``: the values of a rolled loop's iterations were
    not kept, and an untaken branch holds values this call never had)."""
    full = prune(full, values)
    ir.verify(full, values)
    if os.environ.get("AD_TRANSFORM_DUMP"):
        _dump(f"after the {'forward' if suffix == 'jvp' else 'reverse'} pass and prune",
              ir.format_program(full))
    name = f"{fun.__name__}_{suffix}" if fun.__name__.isidentifier() else suffix
    finish = functools.partial(_compile_path, name, f"{fun.__qualname__} {suffix}", True)
    if any(e.prim is ir.LOOP or e.prim is ir.COND for e in full.eqns):
        fn, filename = finish(full, values)
        return Entry(fn, full.decisions, filename), fn(*args)
    if compile_now or len(full.eqns) > _LAZY_EQNS:
        fn, filename = finish(full, values)
        entry = Entry(fn, full.decisions, filename)
    else:  # runs interpreted until the path is taken again (no value of this call kept)
        entry = Entry(None, full.decisions, None, program=full, finish=finish)
    return entry, _result(full, values)


def _result(prog, values):
    """The first call's answer (module-level: see ``api._result``)."""
    return ir.output_value(prog, lambda x: values[x] if isinstance(x, Var) else ir._raw(x))


# -- forward mode ----------------------------------------------------------------------------

def _build_forward(wrt, max_eqns):
    def build(fun, args, compile_now=True):
        n = len(args) - len(wrt)
        with _NoCyclicGC():
            try:
                full, values = _forward_path(fun, args, n, wrt, max_eqns, DEFAULT_UNROLL)
            except Unroll:  # a rolled body's tangent failed: every loop unrolled
                full, values = _forward_path(fun, args, n, wrt, max_eqns, 0)
            return _finish(fun, full, values, "jvp", compile_now, args)
    return build


def _forward_path(fun, args, n, wrt, max_eqns, unroll):
    """lower -> forward: loops of ``unroll`` iterations or more rolled (0: none)."""
    prog, values = lower(fun, args[:n], wrt, max_eqns, unroll=unroll)
    if os.environ.get("AD_TRANSFORM_DUMP"):
        _dump("lowered SSA (primal)", ir.format_program(prog))
    return forward(prog, values, wrt, args[n:])


def _forward_dispatcher(fun, wrt_idx, maxsize, max_eqns):
    params = _params(fun, "forward mode")
    hints = ["t_" + params[i].name for i in wrt_idx]
    build = _build_forward(wrt_idx, max_eqns)
    info = derivative_info(fun)
    rolled = None
    if info is not None:  # the tangent of gradient(f): loops kept rolled (higher.py)
        from .higher import forward_builder
        rolled = forward_builder(info, wrt_idx)
    if rolled is None:
        return _dispatcher(fun, ("jvp", wrt_idx, max_eqns), maxsize, hints, build)
    readback, holder = build, []

    def build(fun, args, compile_now=True):
        made = rolled(args, holder[0].merge_branches()) if holder else None
        return made if made is not None else readback(fun, args, compile_now)

    d = _dispatcher(fun, ("jvp", wrt_idx, max_eqns), maxsize, hints, build)
    # the two routes' guards are not numbered alike: each path checks all of its own
    d.cache.exhaustive = True
    holder.append(d.cache)
    return d


def forward_derivative(fun=None, wrt=0, *, maxsize: int = 128, max_eqns: int = 200_000):
    """Forward mode, compiled: ``forward_derivative(f, wrt)(*args, *tangents)`` returns
    ``(f(*args), directional derivative)``.

    ``wrt`` is a parameter index or name, or a tuple of them, as for
    :func:`~ad_transform.gradient`; one tangent follows the arguments for each
    ``wrt`` parameter, shaped like it.  Every argument of ``f`` is passed, by
    position.  The returned function has ``.source(*args, *tangents)``,
    ``.cache_info()`` and ``.cache_clear()``.
    """
    if fun is None:
        return lambda f: forward_derivative(f, wrt, maxsize=maxsize, max_eqns=max_eqns)
    params = _positional_params(fun, "forward_derivative")
    wrt_idx, _ = _resolve_wrt(fun, params, wrt)
    if len(set(wrt_idx)) != len(wrt_idx):
        raise BadWrt(f"wrt={wrt!r} names a parameter twice", _def_loc(fun))
    public = _public(fun, _forward_dispatcher(fun, wrt_idx, maxsize, max_eqns))
    n = len(params)

    def inner(lw, args, kwargs, node):  # called inside a lowered function (inner.py)
        tangents = [None] * n
        for i, t in zip(wrt_idx, args[n:]):
            tangents[i] = t
        return lower_jvp(lw, fun, args[:n], tangents, node)

    return attach(public, inner)


def _public(fun, base):
    """A wrapper named like ``fun`` around the dispatcher, with ``.source``."""
    cache, build = base.cache, base.build
    names = base.__globals__.get("__ad_state__", ())
    with cache.lock:  # (a fusion adds names to every copy's globals)
        space = base.__globals__
        if names:  # its state check reads fun itself (base: a weak proxy, slower to read)
            space = dict(space)
            space[names[0]] = _watched(fun)
        wrapper = type(base)(base.__code__, space, base.__name__, base.__defaults__,
                             base.__closure__)
        base.wrappers.add(wrapper)
    swapped.add(wrapper)
    functools.update_wrapper(wrapper, fun)
    del wrapper.__wrapped__  # its signature is the dispatcher's, not fun's
    wrapper.__ad_fun__ = fun  # (for the lowering's source positions when it is lowered)

    def source(*args):
        """The generated derivative source for the control path these arguments take."""
        return cache.entry_for(tuple(args), build).source

    wrapper.source = source
    wrapper.cache_info = cache.info
    wrapper.cache_clear = cache.clear
    wrapper.__ad_transform__ = True
    return wrapper


def _fast(ref, n, dispatcher):
    """How :func:`jvp` calls the compiled paths of a function all of whose ``n``
    parameters get an argument and a tangent: ``slot[0](*primals, *tangents)``, the
    path used last, as the dispatcher calls it (a hit counted, a miss resolved by the
    cache), without the dispatcher's frame.  ``ref``: a weak reference to the function.
    A tuple: ``(ref, n, slot, hits, resolve, build, code, root)``, read by index
    (``code``: the code of the function the dispatcher watches, checked by jvp before it
    calls the path, None when it watches none; ``root``: for a ``gradient`` wrapper of
    ours, the user's function its paths lower, whose code that is; else None)."""
    cache = dispatcher.cache
    fun = ref()
    watched = _watched(fun)
    # replaced: the dispatcher raises
    code = watched.__code__ if _State(watched).watched else None
    return (ref, n, cache.slot, cache.counter, cache.resolve, dispatcher.build, code,
            watched if watched is not fun else None)


def _nobody():
    return None


_NOBODY = (_nobody, -1)

# id(fun) -> [weak reference to fun, its _fast tuple or None, {(number of primals, wrt):
# (dispatcher, default values appended)} for the other calls]: what jvp() calls without
# building anything (a WeakKeyDictionary look-up, or inspect.signature, costs more than
# the primal).  _LAST is the _fast tuple of the function jvp() was called with last: a
# weak reference call finds it (id() and a dict look-up cost a third of the primal).
_FAST: dict = {}
_LAST = _NOBODY


def _forget(key, ref):
    global _LAST
    hit = _FAST.get(key)
    if hit is not None and hit[0] is ref:
        del _FAST[key]
    if _LAST[0] is ref:  # the last function's paths are not kept alive after it
        _LAST = _NOBODY


def _known(fun):
    key = id(fun)
    hit = _FAST.get(key)
    if hit is None or hit[0]() is not fun:
        hit = _FAST[key] = [weakref.ref(fun, functools.partial(_forget, key)), None, {}]
    return hit


def jvp(fun, primals, tangents):
    """``(fun(*primals), J @ tangents)``: the value and its directional derivative.

    ``primals`` and ``tangents`` are tuples (or lists) of the same length; each
    tangent has its primal's shape (a float for a float).  A tangent ``None``
    leaves its argument out of the differentiation (an ``int`` count, a flag,
    a string).  The compiled path is cached on ``fun``, so calling ``jvp`` in a
    loop compiles once; :func:`forward_derivative` skips even the lookup.
    """
    global _LAST
    fast = _LAST
    if fast[0]() is not fun:
        hit = _FAST.get(id(fun))
        fast = hit[1] if hit is not None and hit[0]() is fun else None
        if fast is not None:
            _LAST = fast
    # Tuples, a tangent for every parameter: the path used last, called as the dispatcher
    # calls it.  Its entry guard checks every argument and tangent, so a call it was not
    # built for misses; a None tangent too (no path is built for one): the slow path.
    if fast is not None and type(primals) is tuple and type(tangents) is tuple and (
            fast[6] is None or (fast[7] or fun).__code__ is fast[6]):
        n = fast[1]
        try:
            if n == 2:
                p0, p1 = primals
                t0, t1 = tangents
                result = fast[2][0](p0, p1, t0, t1)
            elif n == 1:
                p0, = primals
                t0, = tangents
                result = fast[2][0](p0, t0)
            elif n == 3:
                p0, p1, p2 = primals
                t0, t1, t2 = tangents
                result = fast[2][0](p0, p1, p2, t0, t1, t2)
            elif len(primals) == n == len(tangents):
                result = fast[2][0](*primals, *tangents)
            else:
                raise ValueError
        except PathMiss as miss:
            missed = miss
        except ValueError:  # raised by the path itself, or another number of arguments
            if len(primals) == n == len(tangents):
                raise
            missed = None
        else:
            next(fast[3])
            return result
        if missed is not None and not any(t is None for t in tangents):
            return fast[4](primals + tangents, missed, fast[5])
        missed = None
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("jvp(f, primals, tangents) takes tuples (or lists) of arguments "
                        f"and tangents; got {type(primals).__name__} and "
                        f"{type(tangents).__name__}")
    if len(primals) != len(tangents):
        raise ValueError(f"jvp got {len(primals)} primals and {len(tangents)} tangents; "
                         "give one tangent per argument (None: not differentiated)")
    wrt = tuple(i for i, t in enumerate(tangents) if t is not None)
    if not wrt:
        raise ValueError("jvp got no tangent (all are None)")
    known = _known(fun) if hasattr(fun, "__code__") else [None, None, {}]
    found = known[2].get((len(primals), wrt))
    if found is None:
        fun = _spread(fun, len(primals), known) if known[0] is not None else fun
        params, fill = _fill(fun, len(primals), "jvp")  # the rest: defaults, no tangents
        d = _forward_dispatcher(fun, wrt, 128, 200_000)
        found = known[2][(len(primals), wrt)] = (d, fill)
        if len(wrt) == len(tangents) == len(params):  # the fast path above
            known[1] = _LAST = _fast(known[0], len(params), d)
    d, fill = found
    return d(*primals, *_filled(fill), *(t for t in tangents if t is not None))


# -- reverse mode with a cotangent ----------------------------------------------------------

def _out_leaves(prog, values):
    """The outputs of ``prog`` that :func:`~ad_transform.tree_flatten` gives as leaves of
    its value, in order (not its static leaves: ``None``, flags, labels)."""
    return [y for y in prog.outputs if T._leaf_node(
        values[y] if isinstance(y, Var) else ir._raw(y))[0] == "leaf"]


def _build_vjp(wrt, max_eqns):
    def build(fun, args, compile_now=True):
        n = len(inspect.signature(fun).parameters)
        with _NoCyclicGC():
            try:
                return _vjp_path(fun, args, n, wrt, max_eqns, compile_now, DEFAULT_UNROLL)
            except Unmerge:  # a merged if's adjoint in a rolled body failed: unrolled
                return _vjp_path(fun, args, n, wrt, max_eqns, compile_now, 0)
    return build


def _vjp_path(fun, args, n, wrt, max_eqns, compile_now, unroll):
    """lower (loops of ``unroll`` iterations or more rolled; 0: none) -> reverse, seeded
    with the cotangents ``args[n:]``."""
    prog, values = lower(fun, args[:n], wrt, max_eqns, unroll=unroll)
    leaves = _out_leaves(prog, values)
    cts = args[n:]
    likes = [values[y] if isinstance(y, Var) else ir._raw(y) for y in leaves]
    for like in likes:
        if not _is_number(like):
            raise NonScalarOutput(f"{prog.name} returned a {type(like).__name__}; vjp "
                                  "needs floats, arrays of numbers or trees of them",
                                  prog.return_loc)
    if len(cts) != len(leaves):
        raise ValueError(f"{prog.name} returns {len(leaves)} values; the pullback got "
                         f"{len(cts)} cotangents")
    seeds, ct_vars = [], []
    for y, ct, like in zip(leaves, cts, likes):
        check_like("cotangent", "the output", ct, like)
        v = Var(prog.namer.fresh("ct"), ir.value_kind(ct))
        values[v] = ct
        ct_vars.append(v)
        if isinstance(y, Var):
            seeds.append((y, v))
    eqns, decisions = extend_entry_guard(prog.eqns, prog.decisions, prog.inputs,
                                         tuple(ct_vars), values)
    # inputs of the generated code (after the arguments, so wrt indices stay): the
    # reverse pass then copies a gradient that would be the caller's cotangent itself
    prog = dataclasses.replace(prog, eqns=eqns, decisions=decisions,
                               inputs=tuple(prog.inputs) + tuple(ct_vars))
    full, values = reverse(prog, values, wrt, False, False, tuple(seeds))
    return _finish(fun, full, values, "vjp", compile_now, args)


def _is_number(v) -> bool:
    return (isinstance(v, (int, float, np.number)) and not isinstance(v, bool)) or (
        isinstance(v, np.ndarray) and v.dtype.kind in "fiu")


def _vjp_dispatcher(fun, wrt_idx, n_out, maxsize=128, max_eqns=200_000):
    _params(fun, "vjp")
    hints = ["ct"] * n_out
    return _dispatcher(fun, ("vjp", wrt_idx, n_out, max_eqns), maxsize, hints,
                       _build_vjp(wrt_idx, max_eqns))


def _differentiable(v) -> bool:
    """A number, an array of numbers, or a tree whose (non-static) leaves all are."""
    if _is_number(v):
        return True
    if not T.is_tree(v):
        return False
    leaves, _ = T.tree_flatten(v)
    return bool(leaves) and all(_is_number(x) for x in leaves)


def _own(a):
    """``a`` as the pullback keeps it: arrays (also inside a tree) copied."""
    if isinstance(a, np.ndarray):
        return np.array(a)
    return copy.deepcopy(a) if T.is_tree(a) else a


def _cotangents(cotangent, out_td):
    """The leaves of ``cotangent``, which must have the output's structure ``out_td``."""
    cts, td = T.tree_flatten(cotangent)
    where = T.mismatch(out_td, td, "cotangent")
    if where is not None:
        raise ValueError(f"the cotangent must have the output's structure: {where}")
    return cts


def vjp(fun, *args):
    """``(fun(*args), pullback)``; ``pullback(cotangent)`` returns one gradient per
    argument: ``cotangent`` pulled back through ``fun``'s Jacobian.

    The cotangent has the output's structure (a float for a float output, a
    tuple for a tuple, a dict for a dict, ...), each leaf the shape of the
    output's leaf.  An argument that is a tree of numbers and arrays gets a
    gradient of its structure, as with :func:`~ad_transform.gradient`; one
    that is not a number, an array of numbers or such a tree gets ``None``.
    Parameters after ``args`` take their defaults.  The pullback runs the
    compiled derivative for the path ``args`` take (the value is computed again
    inside it); array arguments (also in trees) are copied now, so changing
    them later does not change the pullback.
    """
    wrt = tuple(i for i, a in enumerate(args) if _differentiable(a))
    known = _known(fun) if hasattr(fun, "__code__") else [None, None, {}]
    fun = _spread(fun, len(args), known) if known[0] is not None else fun
    fill = known[2].get(("vjp", len(args)))
    if fill is None:  # checked once per function and number of arguments
        _, fill = _fill(fun, len(args), "vjp")
        known[2][("vjp", len(args))] = fill
    value = fun(*args)
    args = tuple(_own(a) for a in args)
    is_tree = T.is_tree(value)
    out_td = T.structure(value) if is_tree else None
    n_out = len(T.tree_flatten(value)[0]) if is_tree else 1
    d = None
    if wrt:
        d = known[2].get(("vjp", len(args), wrt, n_out))
        if d is None:
            d = known[2][("vjp", len(args), wrt, n_out)] = _vjp_dispatcher(fun, wrt, n_out)
    fill = _filled(fill)

    def pullback(cotangent, _fun=fun):  # holds fun: its compiled paths are cached weakly
        cts = _cotangents(cotangent, out_td) if is_tree else [cotangent]
        grads = d(*args, *fill, *cts) if d is not None else ()
        out = [None] * len(args)
        for i, g in zip(wrt, grads):
            out[i] = g
        return tuple(out)

    return value, pullback


# -- Jacobians --------------------------------------------------------------------------------

def jacobian(fun=None, wrt=0, *, mode: str | None = None, maxsize: int = 128,
             max_eqns: int = 200_000):
    """The Jacobian of ``fun`` with respect to ``wrt``.

    ``jacobian(f, wrt)(*args, **kwargs)`` has shape ``out.shape + arg.shape``
    (a float for a float argument and output), a tuple of them for a tuple
    ``wrt``.  A ``wrt`` argument may be a tree (as for
    :func:`~ad_transform.gradient`): the Jacobian is then a tree of its
    structure whose leaves have shape ``out.shape + leaf.shape``.  ``f`` may
    return a tree of floats and arrays too: the result is a tree of the
    output's structure holding, for each output leaf, what a function returning
    that leaf alone would get (as JAX nests them).  ``f`` is called once for its
    output's shape; then, whichever side is smaller, one forward-mode pass per
    input element or one reverse pass per output element runs the compiled
    derivative.  ``mode="forward"`` or ``"reverse"`` makes the choice instead.
    """
    if mode not in (None, "forward", "reverse"):
        raise ValueError(f"mode must be None, 'forward' or 'reverse'; got {mode!r}")
    if fun is None:
        return lambda f: jacobian(f, wrt, mode=mode, maxsize=maxsize, max_eqns=max_eqns)
    params = _params(fun, "jacobian")
    wrt_idx, single = _resolve_wrt(fun, params, wrt)
    if len(set(wrt_idx)) != len(wrt_idx):
        raise BadWrt(f"wrt={wrt!r} names a parameter twice", _def_loc(fun))
    sig = inspect.signature(fun)

    @functools.wraps(fun)
    def jac(*args, **kwargs):
        ba = sig.bind(*args, **kwargs)
        ba.apply_defaults()
        vals = tuple(ba.arguments[p.name] for p in params)
        out = fun(*ba.args, **ba.kwargs)
        out_leaves, out_td = T.tree_flatten(out)
        if not out_leaves or not all(_is_number(o) for o in out_leaves):
            raise NonScalarOutput(f"jacobian needs {fun.__qualname__} to return a float, an "
                                  "array of numbers or a tree of them; it returned a "
                                  f"{type(out).__name__}" + (" holding a " + type(next(
                                      o for o in out_leaves if not _is_number(o))).__name__
                                      if out_leaves else ""), _def_loc(fun))
        ins = [_wrt_leaves(fun, params[i].name, vals[i]) for i in wrt_idx]
        out_shapes = [np.shape(o) for o in out_leaves]
        n_out = sum(int(np.prod(s, dtype=int)) for s in out_shapes)
        n_in = sum(int(np.prod(np.shape(x), dtype=int)) for leaves, _ in ins for x in leaves)
        if mode == "forward" or (mode is None and n_in <= n_out):
            # blocks[o][m][l]: output leaf o, wrt argument m, its leaf l
            blocks = _forward_columns(fun, vals, wrt_idx, ins, out_shapes, maxsize, max_eqns)
        else:
            blocks = _reverse_rows(fun, vals, wrt_idx, ins, out_shapes, maxsize, max_eqns)
        per_out = []
        for row in blocks:
            jacs = [td.unflatten(*parts) for (_, td), parts in zip(ins, row)]
            per_out.append(jacs[0] if single else tuple(jacs))
        return out_td.unflatten(*per_out)

    jac.__ad_transform__ = True
    made = []  # the gradient of <fun(*args), v>, made at the first inner call

    def inner_grad():
        if not made:
            from .higher import _inner_product_function
            h = _inner_product_function(fun, fun, params, single)
            made.append((h, gradient(h, wrt_idx[0] if single else wrt_idx,
                                     maxsize=maxsize, max_eqns=max_eqns)))
        return made[0][1]

    def inner(lw, args, kwargs, node, with_value=False):
        return lower_jacobian(lw, fun, sig, params, wrt_idx, single, inner_grad, args, kwargs,
                              node, with_value)

    hook = lambda lw, args, kwargs, node: inner(lw, args, kwargs, node)  # noqa: E731
    hook.lower, hook.inner_grad = inner, inner_grad  # for jvp and vjp (inner.py)
    return attach(jac, hook)


def _wrt_leaves(fun, name, value):
    """``(leaves, treedef)`` of a ``wrt`` argument, each leaf a number or an array."""
    leaves, td = T.tree_flatten(value)
    for path, x in zip(T.paths(td), leaves):
        if not _is_number(x):
            raise BadWrt(f"jacobian differentiates floats, ints, arrays of numbers and trees "
                         f"of them; {T.show_path(name, path)} is a {type(x).__name__}",
                         _def_loc(fun))
    return leaves, td


def _basis(shape, j):
    if not shape:
        return 1.0
    e = np.zeros(shape)
    e.flat[j] = 1.0
    return e


def _zero(x):
    return np.zeros(np.shape(x)) if np.ndim(x) or isinstance(x, np.ndarray) else 0.0


def _shaped(parts, out_shape, in_shape, stack_axis):
    if not out_shape and not in_shape:
        return float(parts[0])
    # columns (axis -1): out.shape + (n_in,); rows (axis 0): (n_out,) + in.shape
    j = np.stack([np.asarray(p, dtype=np.float64) for p in parts], axis=stack_axis)
    return j.reshape(out_shape + in_shape)


def _forward_columns(fun, vals, wrt_idx, ins, out_shapes, maxsize, max_eqns):
    blocks = [[[] for _ in ins] for _ in out_shapes]
    for m, (i, (leaves, td)) in enumerate(zip(wrt_idx, ins)):
        d = _forward_dispatcher(fun, (i,), maxsize, max_eqns)
        zeros = [_zero(x) for x in leaves]
        for l, x in enumerate(leaves):
            shape = np.shape(x)
            cols = []
            for j in range(int(np.prod(shape, dtype=int))):
                t = td.unflatten(*zeros[:l], _basis(shape, j), *zeros[l + 1:], static=True)
                cols.append(T.tree_flatten(d(*vals, t)[1])[0])
            for o, s in enumerate(out_shapes):
                blocks[o][m].append(_shaped([c[o] for c in cols], s, shape, -1))
    return blocks


def _reverse_rows(fun, vals, wrt_idx, ins, out_shapes, maxsize, max_eqns):
    d = _vjp_dispatcher(fun, wrt_idx, len(out_shapes), maxsize, max_eqns)
    zeros = [np.zeros(s) if s else 0.0 for s in out_shapes]
    blocks = []
    for o, s in enumerate(out_shapes):
        rows = []
        for k in range(int(np.prod(s, dtype=int))):
            cts = zeros[:o] + [_basis(s, k)] + zeros[o + 1:]
            rows.append([T.tree_flatten(g)[0] for g in d(*vals, *cts)])
        blocks.append([[_shaped([r[m][l] for r in rows], s, np.shape(x), 0)
                        for l, x in enumerate(leaves)] for m, (leaves, _) in enumerate(ins)])
    return blocks


for _constructor in (jacobian, forward_derivative):  # made inside a lowered function too
    _constructor.__ad_constructor__ = True
attach(jvp, lambda lw, args, kwargs, node: lower_jvp(lw, *args, node=node, **kwargs))
attach(vjp, lambda lw, args, kwargs, node: lower_vjp(lw, args[0], args[1:], node))
