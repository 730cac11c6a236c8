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

These functions call the user's function with positional arguments only:
a function with ``*args``, ``**kwargs`` or keyword-only parameters is
refused with :class:`~ad_transform.errors.BadWrt`.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import linecache
import os
import weakref

import numpy as np

from . import ir
from .api import _LAZY_EQNS, _def_loc, _dump, _resolve_wrt
from .api import _finish as _compile_path
from .cache import Entry, cache_for
from .compile import compile_function
from .dispatcher import emit_dispatcher
from .errors import BadWrt, NonScalarOutput
from .forward import check_like, extend_entry_guard, forward
from .ir import Namer, Var
from .lower import lower
from .runtime import PathMiss
from .reverse import prune, reverse

__all__ = ["jvp", "forward_derivative", "vjp", "jacobian"]

_P = inspect.Parameter


def _positional_params(fun, what):
    if not callable(fun) or not hasattr(fun, "__code__"):
        raise TypeError(f"{what} needs a Python function, got {fun!r}")
    params = list(inspect.signature(fun).parameters.values())
    for p in params:
        if p.kind not in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD):
            raise BadWrt(f"{what} passes arguments by position only, and {fun.__qualname__} "
                         f"has the parameter {p}; wrap it in a function of positional "
                         "parameters", _def_loc(fun))
    return params


def _dispatcher(fun, key, maxsize, extra_hints, build_path):
    """The compiled entry point ``d(*params, *extras)`` for ``fun`` in mode ``key``."""
    cache = cache_for(fun, key, maxsize)
    if cache.dispatcher is None:
        params = list(inspect.signature(fun).parameters.values())
        namer = Namer(reserved=[p.name for p in params])
        extras = [namer.fresh(h) for h in extra_hints]
        dparams = [_P(p.name, _P.POSITIONAL_OR_KEYWORD) for p in params] + [
            _P(n, _P.POSITIONAL_OR_KEYWORD) for n in extras]
        fun_ref = weakref.ref(fun)  # the cache must not keep the function alive

        def build(args, compile_now=True):
            return build_path(fun_ref(), args, compile_now)

        name = fun.__name__ if fun.__name__.isidentifier() else "dispatch"
        emitted = emit_dispatcher(name, dparams, cache.slot, cache, build)
        shape = (name, tuple(p.name for p in dparams), "positional")
        cache.dispatcher, _, _ = compile_function(emitted, f"{name} dispatcher", shape)
        cache.dispatcher.cache = cache
        cache.dispatcher.build = build
    return cache.dispatcher


def _finish(fun, full, values, suffix, compile_now):
    """prune -> verify -> (emit -> compile, now or on the path's second use, as
    :mod:`ad_transform.cache` decides); the Entry and the first call's result."""
    full = prune(full, values)
    ir.verify(full, values)
    name = f"{fun.__name__}_{suffix}" if fun.__name__.isidentifier() else suffix
    finish = functools.partial(_compile_path, name, f"{fun.__qualname__} {suffix}", True)
    if compile_now or len(full.eqns) > _LAZY_EQNS:
        fn, filename = finish(full, values)
        entry = Entry(fn, full.decisions, filename)
    else:  # runs interpreted until the path is taken again (no value of this call kept)
        entry = Entry(None, full.decisions, None, program=full, finish=finish)
    return entry, _result(full.outputs[0], values)


def _result(x, values):
    """The first call's answer for output ``x`` (tuples and lists of atoms)."""
    if isinstance(x, (tuple, list)):
        return type(x)(_result(i, values) for i in x)
    if isinstance(x, Var):
        return values[x]
    return x.value if isinstance(x, ir.Const) else x


# -- forward mode ----------------------------------------------------------------------------

def _build_forward(wrt, max_eqns):
    def build(fun, args, compile_now=True):
        n = len(args) - len(wrt)
        prog, values = lower(fun, args[:n], wrt, max_eqns)
        if os.environ.get("AD_TRANSFORM_DUMP"):
            _dump("lowered SSA (primal)", ir.format_program(prog))
        full, values = forward(prog, values, wrt, args[n:])
        return _finish(fun, full, values, "jvp", compile_now)
    return build


def _forward_dispatcher(fun, wrt_idx, maxsize, max_eqns):
    params = _positional_params(fun, "forward mode")
    hints = ["t_" + params[i].name for i in wrt_idx]
    return _dispatcher(fun, ("jvp", wrt_idx, max_eqns), maxsize, hints,
                       _build_forward(wrt_idx, max_eqns))


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
    return _public(fun, _forward_dispatcher(fun, wrt_idx, maxsize, max_eqns))


def _public(fun, base):
    """A wrapper named like ``fun`` around the dispatcher, with ``.source``."""
    wrapper = type(base)(base.__code__, base.__globals__, base.__name__, base.__defaults__,
                         base.__closure__)
    cache, build = base.cache, base.build
    functools.update_wrapper(wrapper, fun)
    del wrapper.__wrapped__  # its signature is the dispatcher's, not fun's

    def source(*args):
        """The generated derivative source for the control path these arguments take."""
        return cache.entry_for(tuple(args), build).source

    wrapper.source = source
    wrapper.cache_info = cache.info
    wrapper.cache_clear = cache.clear
    wrapper.__ad_transform__ = True
    return wrapper


_MISS = object()  # what a jvp caller returns when the call is not its kind: the slow path
_CALLERS: dict = {}  # n -> code of the caller for functions of n arguments

_CALLER = """\
def jvp_call(primals, tangents):
    if type(primals) is not tuple or type(tangents) is not tuple or \\
            len(primals) != {n} or len(tangents) != {n}:
        return MISS
    {ps}, = primals
    {ts}, = tangents
    if {nones}:
        return MISS
    try:
        result = slot[0]({ps}, {ts})
    except PathMiss:
        return dispatcher({ps}, {ts})
    next(hits)
    return result
"""


def _caller(n, d):
    """``jvp_call(primals, tangents)`` for a dispatcher ``d`` of ``n`` arguments and ``n``
    tangents: it unpacks the two tuples into the call of the path used last (no
    ``*args`` call, which costs more than the seed function's primal) and counts the hit
    as the dispatcher does; a miss goes to ``d``; a call of another arity, with lists
    or with a ``None`` tangent returns ``MISS``."""
    code = _CALLERS.get(n)
    if code is None:
        names = lambda c: ", ".join(f"{c}{i}" for i in range(n))  # noqa: E731
        src = _CALLER.format(n=n, ps=names("p"), ts=names("t"),
                             nones=" or ".join(f"t{i} is None" for i in range(n)))
        filename = f"<ad_transform jvp caller of {n} arguments>"
        linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
        code = _CALLERS[n] = compile(src, filename, "exec")
    namespace = {"MISS": _MISS, "PathMiss": PathMiss, "slot": d.cache.slot,
                 "hits": d.cache.counter, "dispatcher": d}
    exec(code, namespace)
    return namespace["jvp_call"]


# id(fun) -> (weak reference to fun, its jvp caller along every argument or None, and
# {(number of primals, wrt): (dispatcher, default values appended)} for the other calls):
# what jvp() calls without building anything (a WeakKeyDictionary look-up, or
# inspect.signature, costs more than the primal)
_FAST: dict = {}


def _known(fun):
    key = id(fun)
    hit = _FAST.get(key)
    if hit is None or hit[0]() is not fun:
        hit = _FAST[key] = [weakref.ref(fun, lambda _, key=key: _FAST.pop(key, None)), None, {}]
    return hit


def jvp(fun, primals, tangents):
    """``(fun(*primals), J @ tangents)``: the value and its directional derivative.

    ``primals`` and ``tangents`` are tuples (or lists) of the same length; each
    tangent has its primal's shape (a float for a float).  A tangent ``None``
    leaves its argument out of the differentiation (an ``int`` count, a flag,
    a string).  The compiled path is cached on ``fun``, so calling ``jvp`` in a
    loop compiles once; :func:`forward_derivative` skips even the lookup.
    """
    hit = _FAST.get(id(fun))
    if hit is not None and hit[1] is not None and hit[0]() is fun:
        result = hit[1](primals, tangents)
        if result is not _MISS:
            return result
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
        params = _positional_params(fun, "jvp")
        if len(primals) > len(params) or any(p.default is p.empty
                                             for p in params[len(primals):]):
            raise TypeError(f"{fun.__qualname__}{inspect.signature(fun)} takes "
                            f"{len(params)} arguments; jvp got {len(primals)}")
        d = _forward_dispatcher(fun, wrt, 128, 200_000)
        found = known[2][(len(primals), wrt)] = (
            d, tuple(p.default for p in params[len(primals):]))  # defaults: no tangents
        if len(wrt) == len(tangents) == len(params):  # the fast path above
            known[1] = _caller(len(params), d)
    d, defaults = found
    return d(*primals, *defaults, *(t for t in tangents if t is not None))


# -- reverse mode with a cotangent ----------------------------------------------------------

def _leaves(x, out):
    if isinstance(x, (tuple, list)):
        for i in x:
            _leaves(i, out)
    else:
        out.append(x)
    return out


def _build_vjp(wrt, max_eqns):
    def build(fun, args, compile_now=True):
        n = len(inspect.signature(fun).parameters)
        prog, values = lower(fun, args[:n], wrt, max_eqns)
        leaves = _leaves(prog.outputs[0], [])
        cts = args[n:]
        if len(cts) != len(leaves):
            raise ValueError(f"{prog.name} returns {len(leaves)} values; the pullback got "
                             f"{len(cts)} cotangents")
        seeds, ct_vars = [], []
        for y, ct in zip(leaves, cts):
            like = values[y] if isinstance(y, Var) else ir._raw(y)
            if not _is_number(like):
                raise NonScalarOutput(f"{prog.name} returned a {type(like).__name__}; vjp "
                                      "needs floats, arrays of numbers or tuples of them",
                                      prog.return_loc)
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
        return _finish(fun, full, values, "vjp", compile_now)
    return build


def _is_number(v) -> bool:
    return (isinstance(v, (int, float, np.number)) and not isinstance(v, bool)) or (
        isinstance(v, np.ndarray) and v.dtype.kind in "fiu")


def _vjp_dispatcher(fun, wrt_idx, n_out, maxsize=128, max_eqns=200_000):
    _positional_params(fun, "vjp")
    hints = ["ct"] * n_out
    return _dispatcher(fun, ("vjp", wrt_idx, n_out, max_eqns), maxsize, hints,
                       _build_vjp(wrt_idx, max_eqns))


def _differentiable(v) -> bool:
    return _is_number(v)


def vjp(fun, *args):
    """``(fun(*args), pullback)``; ``pullback(cotangent)`` returns one gradient per
    argument: ``cotangent`` pulled back through ``fun``'s Jacobian.

    The cotangent has the output's shape (a float for a float output, a tuple
    for a tuple).  An argument that is not a number or an array of numbers
    gets ``None``.  The pullback runs the compiled derivative for the path
    ``args`` take (the value is computed again inside it); array arguments are
    copied now, so changing them later does not change the pullback.
    """
    wrt = tuple(i for i, a in enumerate(args) if _differentiable(a))
    known = _known(fun) if hasattr(fun, "__code__") else [None, None, {}]
    defaults = known[2].get(("vjp", len(args)))
    if defaults is None:  # checked once per function and number of arguments
        params = _positional_params(fun, "vjp")
        if len(args) > len(params) or any(p.default is p.empty for p in params[len(args):]):
            raise TypeError(f"{fun.__qualname__}{inspect.signature(fun)} takes "
                            f"{len(params)} arguments; vjp got {len(args)}")
        defaults = known[2][("vjp", len(args))] = tuple(p.default for p in params[len(args):])
    value = fun(*args)
    args = tuple(np.array(a) if isinstance(a, np.ndarray) else a for a in args)
    n_out = len(_leaves(value, []))
    d = None
    if wrt:
        d = known[2].get(("vjp", len(args), wrt, n_out))
        if d is None:
            d = known[2][("vjp", len(args), wrt, n_out)] = _vjp_dispatcher(fun, wrt, n_out)
    full = args + defaults
    is_tuple = isinstance(value, (tuple, list))

    def pullback(cotangent, _fun=fun):  # holds fun: its compiled paths are cached weakly
        cts = _leaves(cotangent, []) if is_tuple else [cotangent]
        grads = d(*full, *cts) if d is not None else ()
        out = [None] * len(args)
        for i, g in zip(wrt, grads):
            out[i] = g
        return tuple(out)

    return value, pullback


# -- Jacobians --------------------------------------------------------------------------------

def jacobian(fun=None, wrt=0, *, mode: str | None = None, maxsize: int = 128,
             max_eqns: int = 200_000):
    """The Jacobian of ``fun`` (returning a float or an array) with respect to ``wrt``.

    ``jacobian(f, wrt)(*args)`` has shape ``out.shape + arg.shape`` (a float
    for a float argument and output), a tuple of them for a tuple ``wrt``.
    ``f`` is called once for its output's shape; then, whichever side is
    smaller, one forward-mode pass per input element or one reverse pass per
    output element runs the compiled derivative.  ``mode="forward"`` or
    ``"reverse"`` makes the choice instead.
    """
    if mode not in (None, "forward", "reverse"):
        raise ValueError(f"mode must be None, 'forward' or 'reverse'; got {mode!r}")
    if fun is None:
        return lambda f: jacobian(f, wrt, mode=mode, maxsize=maxsize, max_eqns=max_eqns)
    params = _positional_params(fun, "jacobian")
    wrt_idx, single = _resolve_wrt(fun, params, wrt)
    sig = inspect.signature(fun)

    @functools.wraps(fun)
    def jac(*args, **kwargs):
        ba = sig.bind(*args, **kwargs)
        ba.apply_defaults()
        args = tuple(ba.arguments[p.name] for p in params)
        out = fun(*args)
        if not _is_number(out):
            raise NonScalarOutput(f"jacobian needs {fun.__qualname__} to return a float or an "
                                  f"array of numbers; it returned a {type(out).__name__}",
                                  _def_loc(fun))
        out_shape = np.shape(out)
        n_out = int(np.prod(out_shape))
        shapes = [np.shape(args[i]) for i in wrt_idx]
        n_in = sum(int(np.prod(s)) for s in shapes)
        if mode == "forward" or (mode is None and n_in <= n_out):
            jacs = [_forward_columns(fun, args, i, s, out_shape, maxsize, max_eqns)
                    for i, s in zip(wrt_idx, shapes)]
        else:
            jacs = _reverse_rows(fun, args, wrt_idx, shapes, out_shape, maxsize, max_eqns)
        return jacs[0] if single else tuple(jacs)

    jac.__ad_transform__ = True
    return jac


def _basis(shape, j):
    if not shape:
        return 1.0
    e = np.zeros(shape)
    e.flat[j] = 1.0
    return e


def _shaped(parts, out_shape, in_shape, stack_axis):
    if not out_shape and not in_shape:
        return float(parts[0])
    # columns (axis -1): out.shape + (n_in,); rows (axis 0): (n_out,) + in.shape
    j = np.stack([np.asarray(p, dtype=np.float64) for p in parts], axis=stack_axis)
    return j.reshape(out_shape + in_shape)


def _forward_columns(fun, args, i, shape, out_shape, maxsize, max_eqns):
    d = _forward_dispatcher(fun, (i,), maxsize, max_eqns)
    cols = [d(*args, _basis(shape, j))[1] for j in range(int(np.prod(shape)))]
    return _shaped(cols, out_shape, shape, -1)


def _reverse_rows(fun, args, wrt_idx, shapes, out_shape, maxsize, max_eqns):
    d = _vjp_dispatcher(fun, wrt_idx, 1, maxsize, max_eqns)
    rows = [d(*args, _basis(out_shape, k)) for k in range(int(np.prod(out_shape)))]
    return [_shaped([r[m] for r in rows], out_shape, s, 0) for m, s in enumerate(shapes)]
