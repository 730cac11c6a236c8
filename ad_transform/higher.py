"""Second derivatives: ``hvp`` (Hessian-vector products) and ``hessian``.

Both are built from :func:`~ad_transform.api.gradient` and nothing else.
``hvp(f, wrt)`` is the gradient, with respect to the same arguments, of a small
generated function ``h(*args, v) = <gradient(f, wrt)(*args), v>``; the lowering
inlines the generated derivative of ``f`` inside it (see :mod:`ad_transform.nested`),
so ``hvp(f).source(*args, v)`` is one readable function, and the Hessian is never
formed.  ``hessian(f, wrt)`` of one array argument compiles, per path, one function
that computes the gradient program once and then one reverse sweep per unit
vector (the rows); otherwise it stacks Hessian-vector products with the unit
vectors.  Guarantees: the same
``wrt`` rules as ``gradient``; for one argument ``hessian`` returns a float for a
float and an array of shape ``shape + shape`` for an array; for a tuple ``wrt`` it
returns a tuple of tuples, block ``[i][j]`` of shape ``shape_i + shape_j``.  A tree
``wrt`` argument: ``hessian`` is ``jacobian(gradient(f))`` (forward over reverse), nested
as the trees are (``{k1: {k2: block}}``); ``hvp``'s inner product walks the gradient's
tree while lowering (``_vdot`` below), so ``v`` is a tree of the argument's structure.

Long loops stay rolled.  Called directly, ``hvp`` of a function of plain positional
parameters builds each path by one of two routes, in one cache: where ``f``'s path
(lowered with the default ``unroll``) keeps a loop rolled, forward over reverse on
the IR (:func:`_rolled_path`: ``f``'s gradient program, then its tangent along
``v``; the primal loop saves the tangents it carries on tapes, the adjoint loop
pops them); otherwise, and whenever that route raises (no forward rule, an
``Unroll`` or ``Unmerge``, any :class:`~ad_transform.errors.ADError`), the gradient
of ``<gradient(f)(*args), v>`` read back as above.  Each path checks every guard of
its own route (the rolled one: all of the gradient path's decisions, and ``v``'s
signature in the entry guard), so a call never runs a path built for other inputs,
and the cache tries every stored path on a miss.  ``hessian`` stacks those products
(for one array argument: when the path keeps a loop rolled; else one function per
path as above).  ``gradient(gradient(f, wrt=i), wrt=j)`` of float arguments takes
the rolled route too (:func:`second_builder`, called by ``api.gradient``: the
tangent seeded with a constant ``1.0``), and so does forward mode of a plain
``gradient(f, wrt)`` (:func:`forward_builder`, called by ``transforms.py`` for
``jvp``, ``forward_derivative`` and ``jacobian``'s columns: the path takes the
gradient's arguments and the tangents, guards all of the gradient path's decisions
and the tangents' signatures, and returns ``(gradient, its tangent)``).  All these
routes share :func:`_over_reverse`.  Lowered inside another function, or nested
(``gradient(hvp(f))``), ``hvp`` is the readback gradient (loops unrolled).
"""
from __future__ import annotations

import contextvars
import dataclasses
import functools
import inspect
import itertools
import os
import weakref

import numpy as np

from . import ir
from .builder import Builder
from .api import _NoCyclicGC, _State, _build, _check_output, _dump, _finish, _resolve_wrt
from .api import gradient
from .branches import Unmerge
from .cache import Entry, cache_for
from .compile import compile_function, define
from .dispatcher import emit_dispatcher
from .emit import emit
from .errors import ADError
from .forward import _STRICT, Unroll, forward
from .inner import attach, lower_hessian
from .loops import DEFAULT_UNROLL
from .loops import DEFAULT_UNROLL as api_default_unroll  # gradient's default (this module's
# DEFAULT_UNROLL is the threshold its rolled routes lower with)
from .lower import lower
from .pytree import fields_of, is_tree
from .transforms import _dispatcher, jacobian
from .reverse import prune, reverse
from .rules import builtins as B
from .rules import numpy as N

__all__ = ["hvp", "hessian"]

_serial = itertools.count(1)


def _inner_product_function(fun, grad_f, params, single, split=0):
    """``h(*params, v) = <grad_f(*params), v>`` as Python source, compiled under a file
    name linecache knows (so the lowering reads it as it reads the user's code).  With
    ``split`` (a tuple ``wrt`` of that many arguments), ``v`` is given as that many
    parameters ``v_0, v_1, ...``, one per ``wrt`` argument."""
    names = {p.name for p in params}
    v = next(n for n in ("v", "v_", "vector", "v_1", "v_2") if n not in names)
    if split:
        vs = [f"{v}_{k}" for k in range(split)]
        while names & set(vs):
            v += "_"
            vs = [f"{v}_{k}" for k in range(split)]
    P = inspect.Parameter
    call = []
    for p in params:
        if p.kind is P.VAR_POSITIONAL:
            call.append(f"*{p.name}")
        elif p.kind is P.VAR_KEYWORD:
            call.append(f"**{p.name}")
        elif p.kind is P.KEYWORD_ONLY:
            call.append(f"{p.name}={p.name}")
        else:
            call.append(p.name)
    base = fun.__name__ if fun.__name__.isidentifier() else "f"
    vector = f"({', '.join(vs)},)" if split else v
    head = f"def {base}_hvp({', '.join([p.name for p in params] + (vs if split else [v]))}):\n"
    head += f"    g = grad_f({', '.join(call)})\n"
    body = f"    return _vdot(g, {vector})\n"
    text = head + body + _VDOT
    filename = f"<ad_transform {fun.__qualname__} hvp #{next(_serial)}>"
    return define(text, filename, {"grad_f": grad_f, "np": np, "fields_of": fields_of},
                  f"{base}_hvp")


# <g, v> for a gradient g and a vector v of the same structure (floats, arrays, and tuples,
# lists, namedtuples, dicts and dataclasses of them): read by the lowering like the user's
# code, so each container is walked while lowering and the generated code is straight-line
_VDOT = """

def _vdot(g, v):
    if g is None:
        return 0.0
    if isinstance(g, float):
        return g * v
    if isinstance(g, np.ndarray):
        return (g * v).sum()
    if isinstance(g, dict):
        total = 0.0
        for k in g:
            total = total + _vdot(g[k], v[k])
        return total
    if isinstance(g, (tuple, list)):
        total = 0.0
        for g_i, v_i in zip(g, v):
            total = total + _vdot(g_i, v_i)
        return total
    if hasattr(g, "__dataclass_fields__"):
        total = 0.0
        for g_i, v_i in zip(fields_of(g), fields_of(v)):
            total = total + _vdot(g_i, v_i)
        return total
    return g * v
"""


class _NotRolled(Exception):
    """The path keeps no loop rolled (or differentiates a tree): the readback route."""


def _rolls(eqns) -> bool:
    """A rolled loop among ``eqns`` (merged ifs' branches included)."""
    for e in eqns:
        if e.prim is ir.LOOP:
            return True
        cond = ir.cond_of(e)
        if cond is not None and (_rolls(cond.then) or _rolls(cond.orelse)):
            return True
    return False


def _over_reverse(fun, args, wrt_idx, single, max_eqns, merge, along, tangents, constant,
                  with_value, what):
    """Forward over reverse on the IR, shared by every rolled route here: ``fun`` lowered
    on ``args`` with its long loops rolled, its gradient program with respect to
    ``wrt_idx`` (``reverse``), and that program's tangent along its inputs ``along``
    (``forward``: ``tangents``, given as inputs of the result, or baked in with
    ``constant``).  Returns the pruned, verified program and its values: it takes
    ``args`` (then the tangents) and returns ``(gradient, tangent)`` with ``with_value``,
    else the tangent alone.  Its decisions are all of the gradient path's, its entry
    guard checks the tangents' signatures too.  Raises :class:`_NotRolled` for a path
    without a rolled loop or with a tree argument; :class:`~ad_transform.forward.Unroll`,
    :class:`~ad_transform.branches.Unmerge` and every other
    :class:`~ad_transform.errors.ADError` pass through (the caller's readback route)."""
    prog, values = lower(fun, args, wrt_idx, max_eqns, DEFAULT_UNROLL, merge)
    if prog.trees or not _rolls(prog.eqns):
        raise _NotRolled()
    _check_output(prog, values)
    full, values = reverse(prog, values, wrt_idx, single, False)
    full = prune(full, values)
    token = _STRICT.set(True)
    try:
        fw, values = forward(full, values, along, tangents, constant=constant)
    finally:
        _STRICT.reset(token)
    if not with_value:
        _, tangent = ir.output_value(fw, lambda x: x)
        outputs, out_tree = ir.flat_outputs(tangent)
        fw = dataclasses.replace(fw, outputs=outputs, out_tree=out_tree)
    fw = prune(fw, values)
    ir.verify(fw, values)
    if os.environ.get("AD_TRANSFORM_DUMP"):
        _dump(f"{what}: forward over reverse, pruned", ir.format_program(fw))
    return fw, values


def _rolled_path(fun, args, wrt_idx, single, max_eqns, merge):
    """One path of ``hvp(fun)`` as forward over reverse on the IR: ``fun`` lowered with
    its long loops rolled, its gradient program (``reverse``), and that program's
    tangent along ``v`` (``forward``, one tangent input per ``wrt`` argument), of which
    only the tangent is returned.  Every guard of the gradient's path stays, and the
    entry guard checks the vectors' signatures too.  Compiled now and run for the first
    call's answer (the loops' iterations were not interpreted).  Raises
    :class:`_NotRolled` for a path without a rolled loop or with a tree argument, and
    lets :class:`~ad_transform.forward.Unroll`, :class:`~ad_transform.branches.Unmerge`
    and every other :class:`~ad_transform.errors.ADError` through: the caller then
    builds the path by the readback route."""
    n = len(args) - len(wrt_idx)
    fw, values = _over_reverse(fun, args[:n], wrt_idx, single, max_eqns, merge, wrt_idx,
                               tuple(args[n:]), False, False, "hvp")
    base = fun.__name__ if fun.__name__.isidentifier() else "f"
    fn, filename = _finish(f"{base}_hvp", f"{fun.__qualname__} hvp", True, fw, values)
    return Entry(fn, fw.decisions, filename), fn(*args)


def _plain_gradient(inner):
    """``(wrt_idx, single, max_eqns)`` when ``inner`` (a wrapper's derivative information)
    is a plain ``gradient(f, wrt)`` of the user's own function (no value, no aux, the
    default unroll); else None."""
    chain = inner.chain
    if not (type(chain) is tuple and len(chain) == 4 and type(chain[0]) is tuple
            and type(chain[1]) is bool and not chain[2]):
        return None
    return chain[0], chain[1], chain[3]


def _try_rolled(merge, make):
    """``make(merge)`` for each way of lowering the path's ifs (merged first when the
    cache asks for it); None when every one raises (no rolled loop, an ``Unroll``, an
    ``Unmerge``, any :class:`~ad_transform.errors.ADError`): the readback route then."""
    with _NoCyclicGC():
        for m in ((True, False) if merge else (False,)):
            try:
                return make(m)
            except (_NotRolled, Unroll, Unmerge, ADError):
                continue
    return None


def second_builder(inner, wrt_idx, single, with_value, has_aux, unroll):
    """For ``gradient(g, wrt)`` (``value_and_gradient`` with ``with_value``) of ``g =
    gradient(f, wrt=i)`` (``inner``: ``g``'s derivative information), both with respect
    to one argument: ``build(args, merge) -> (Entry, result) or None``, the path as
    forward over reverse on the IR when ``f`` keeps a loop rolled there and both
    arguments are floats (``None``: the caller lowers ``g`` as it is, reading back its
    generated source); else ``None``."""
    plain = _plain_gradient(inner)
    if plain is None or not plain[1]:
        return None  # not a plain gradient(f, wrt=i) of the user's own function
    if not single or has_aux or unroll != api_default_unroll:
        return None  # (an explicit unroll=: the readback route, as asked)
    ((i,), _, max_eqns), (j,) = plain, wrt_idx
    root = weakref.ref(inner.root)
    base = inner.name  # f_grad

    def build(args, merge):
        fun = root()
        if fun is None or type(args[i]) is not float or type(args[j]) is not float:
            return None
        return _try_rolled(merge, lambda m: _second_path(fun, args, i, j, with_value,
                                                         max_eqns, m, base))
    return build


def forward_builder(inner, along):
    """For forward mode (``jvp``, ``forward_derivative``, ``jacobian``'s columns) of ``g =
    gradient(f, wrt)`` (``inner``: ``g``'s derivative information) along the arguments
    ``along``: ``build(args, merge) -> (Entry, result) or None``, ``args`` being ``g``'s
    arguments then one tangent per ``along`` argument.  The path is forward over reverse
    on the IR, returning ``(gradient, its tangent)``, when ``f`` keeps a loop rolled there
    (``None``: the caller reads ``g``'s generated source back, loops unrolled); ``None``
    for any other ``g``."""
    plain = _plain_gradient(inner)
    if plain is None:
        return None
    wrt_idx, single, max_eqns = plain
    root = weakref.ref(inner.root)
    base = inner.name  # f_grad
    name = f"{base}_jvp" if base.isidentifier() else "jvp"

    def build(args, merge):
        fun = root()
        n = len(args) - len(along)
        if fun is None or any(is_tree(args[k]) for k in along):
            return None  # (a tree's tangent: the readback route, which reads it as one)

        def make(m):
            fw, values = _over_reverse(fun, args[:n], wrt_idx, single, max_eqns, m, along,
                                       tuple(args[n:]), False, True, "jvp of a gradient")
            fn, filename = _finish(name, f"{fun.__qualname__} {base} jvp", True, fw, values)
            return Entry(fn, fw.decisions, filename), fn(*args)
        return _try_rolled(merge, make)
    return build


def _second_path(fun, args, i, j, with_value, max_eqns, merge, base):
    """``d/dx_j`` of ``gradient(fun, wrt=i)`` (floats) on one path: ``fun`` lowered with
    its long loops rolled, its gradient program, and that program's tangent seeded
    with ``1.0`` at input ``j`` (a constant: the path takes ``fun``'s arguments only).
    Compiled now and run for the first call's answer; raises as :func:`_rolled_path`."""
    fw, values = _over_reverse(fun, args, (i,), True, max_eqns, merge, (j,), (1.0,), True,
                               with_value, "second derivative")
    suffix = "value_and_grad" if with_value else "grad"
    name = f"{base}_{suffix}" if base.isidentifier() else suffix
    fn, filename = _finish(name, f"{fun.__qualname__} {base} {suffix}", True, fw, values)
    return Entry(fn, fw.decisions, filename), fn(*args)


def _rolled_products(fun, h_split, wrt_idx, single, maxsize, max_eqns):
    """The compiled Hessian-vector product ``d(*args, *vs)`` (one vector per ``wrt``
    argument): a path whose loops stay rolled is built by :func:`_rolled_path`, any
    other by the readback route (the gradient of ``h_split``, the inner product with
    the generated gradient read back, every loop unrolled), in the same cache.  The
    cache tries every stored path on a miss (``exhaustive``): the two kinds' guards are
    not numbered alike, and each path checks all of its own."""
    fun_ref = weakref.ref(fun)  # (h_split, which the cache is keyed by, holds fun alive)
    holder = []

    def build(h, args, compile_now=True):
        merge = holder[0].merge_branches()
        made = _try_rolled(merge, lambda m: _rolled_path(fun_ref(), args, wrt_idx, single,
                                                         max_eqns, m))
        if made is not None:
            return made
        return _build(h, args, wrt_idx, single, False, max_eqns, compile_now, merge=merge)

    d = _dispatcher(h_split, ("hvp", wrt_idx, max_eqns), maxsize, [], build)
    d.cache.exhaustive = True
    holder.append(d.cache)
    return d


def _parameters(fun, wrt):
    """``fun``'s signature and parameters, the indices ``wrt`` names, whether it names one, and ``wrt``
    in the resolved form that :func:`gradient` takes."""
    sig = inspect.signature(fun)
    params = list(sig.parameters.values())
    wrt_idx, single = _resolve_wrt(fun, params, wrt)
    return sig, params, wrt_idx, single, (wrt_idx[0] if single else wrt_idx)


def hvp(fun=None, wrt=0, *, maxsize: int = 128, max_eqns: int = 200_000):
    """The Hessian-vector product of ``fun``: ``hvp(f, wrt)(*args, v)`` is ``H @ v``, with
    ``H`` the Hessian of ``f`` with respect to the argument(s) ``wrt`` at ``args``.

    ``v`` has the shape of the ``wrt`` argument (a tuple of them for a tuple ``wrt``), and
    so does the result.  The Hessian is not formed: this is the gradient of
    ``<gradient(f)(*args), v>``, one compiled function (``.source(*args, v)``)."""
    if fun is None:
        return lambda f: hvp(f, wrt, maxsize=maxsize, max_eqns=max_eqns)
    sig, params, wrt_idx, single, wrt = _parameters(fun, wrt)
    grad_f = gradient(fun, wrt, maxsize=maxsize, max_eqns=max_eqns)
    h = _inner_product_function(fun, grad_f, params, single)
    dh = gradient(h, wrt, maxsize=maxsize, max_eqns=max_eqns)

    def values(args, kwargs):
        if not args:
            raise TypeError(f"hvp of {fun.__qualname__} needs the vector v as its last "
                            "positional argument")
        ba = sig.bind(*args[:-1], **kwargs)
        ba.apply_defaults()
        return tuple(ba.arguments[p.name] for p in params) + (args[-1],)

    dh._inner = h  # keeps the generated h (and so dh's cache) alive with the wrapper
    dh.gradient = dh
    if all(p.kind is p.POSITIONAL_OR_KEYWORD and p.default is p.empty for p in params):
        return _rolled_product(fun, grad_f, params, wrt_idx, single, h, dh, maxsize,
                               max_eqns)

    @functools.wraps(fun)
    def product(*args, **kwargs):
        return dh(*values(args, kwargs))

    def source(*args, **kwargs):
        """The generated source of the Hessian-vector product for these arguments' path."""
        return dh.source(*values(args, kwargs))

    product.source = source
    product.cache_info = dh.cache_info
    product.cache_clear = dh.cache_clear
    product.gradient = dh  # called with one value per parameter of fun, then v
    return attach(product, lambda lw, args, kwargs, node: lw.call(
        dh, list(values(args, kwargs)), {}, node))


def _rolled_product(fun, grad_f, params, wrt_idx, single, h, dh, maxsize, max_eqns):
    """``hvp(f)`` for a function of plain positional parameters: called, it runs
    :func:`_rolled_products` (``.source``, ``.cache_info``, ``.cache_clear`` are its);
    lowered or nested (``gradient(hvp(f))``, a call on traced values), it is ``dh``,
    the gradient of ``h`` (its ``__ad_transform__`` and signature)."""
    k = len(wrt_idx)
    h_split = h if single else _inner_product_function(fun, grad_f, params, single, k)
    rolled = _rolled_products(fun, h_split, wrt_idx, single, maxsize, max_eqns)
    state = _State(fun)  # the rolled paths lower fun itself: its code is checked per call
    cache, build = rolled.cache, rolled.build

    def split(args):
        if not args:
            raise TypeError(f"hvp of {fun.__qualname__} needs the vector v as its last "
                            "positional argument")
        if single:
            return args
        v = args[-1]
        if not isinstance(v, (tuple, list)) or len(v) != k:
            raise TypeError(f"hvp of {fun.__qualname__} with respect to {k} arguments "
                            f"takes v as a tuple of {k} vectors, one per argument")
        return tuple(args[:-1]) + tuple(v)

    signature = inspect.signature(dh)  # fun's parameters, then v

    def bound(args, kwargs):
        ba = signature.bind(*args, **kwargs)
        return tuple(ba.arguments[p] for p in signature.parameters)

    def product(*args, **kwargs):
        state.check()
        return rolled(*split(bound(args, kwargs) if kwargs else args))

    def source(*args, **kwargs):
        """The generated source of the Hessian-vector product for these arguments' path."""
        state.check()
        return cache.entry_for(split(bound(args, kwargs) if kwargs else args), build).source

    functools.update_wrapper(product, dh)
    del product.__wrapped__
    product.__signature__ = signature
    product.__name__ = dh.__name__
    product.source = source
    product.cache_info = cache.info
    product.cache_clear = cache.clear
    product.gradient = dh  # the readback route: nests, and is inlined when lowered
    product.rolled = rolled  # called with one value per parameter, then one per vector
    product.__ad_transform__ = dh.__ad_transform__
    product._keep = (h, h_split, dh)
    return product


def _hessian_function(fun, grad_f, params, i, maxsize, max_eqns, rolls=False):
    """The Hessian with respect to the array argument ``i`` as one compiled function per
    path: the gradient program (``grad_f`` lowered, its derivative inlined) computed
    once, then one reverse sweep per unit vector ``e_k`` (the adjoint of
    ``sum(grad * e_k)``, whose constant seed folds away), the rows stacked.

    With ``rolls`` (``hvp`` keeps loops rolled): a path on which ``fun`` keeps a loop
    rolled is not unrolled into one function; its entry stacks the rows of the ``hvp``
    the calling wrapper sets in ``_ROWS`` (an entry with no decisions, which every later
    call takes too: each row resolves its own path in that ``hvp``'s cache)."""
    root = grad_f.__ad_transform__.root
    chain = ("hessian", grad_f.__ad_transform__.chain)
    cache = cache_for(root, chain, maxsize)
    cache.exhaustive = True
    name = f"{grad_f.__ad_transform__.name}_hessian"
    name = name if name.isidentifier() else "hessian"

    grad_ref, remake = weakref.ref(grad_f), grad_f.__ad_transform__.remake
    label = f"{fun.__qualname__} hessian"

    fun_ref = weakref.ref(fun)

    def build(args, compile_now=True):  # always compiled; holds nothing alive
        if rolls and _ROWS.get() is not None and _keeps_loops(fun_ref(), args, i, max_eqns):
            def stacked(*args):  # the hvp of the hessian wrapper calling (the cache is shared)
                return _stacked_rows(_ROWS.get(), i, len(params), args)

            result = stacked(*args)
            entry = _ROWS.get().rolled.cache.current  # the source shown: a row's path
            return Entry(stacked, (), entry.filename if entry is not None else None), result
        prog, values = lower(grad_ref() or remake(), args, (i,), max_eqns, unroll=0)
        (grad,) = prog.outputs
        shape = np.shape(values[prog.inputs[i]])
        eqns, rows = list(prog.eqns), []
        values = dict(values)
        for k in range(int(np.prod(shape, dtype=int))):
            unit = np.zeros(shape)
            unit.flat[k] = 1.0
            b = Builder(prog.namer)
            b.values, b.eqns = values, list(prog.eqns)
            with b:
                b.loc = prog.return_loc
                total = b.apply(N.sum_, (b.apply(B.mul, (grad, unit)),))
            seeded = ir.Program(prog.name, prog.inputs, b.eqns, (total,), prog.decisions,
                                prog.namer, prog.return_loc)
            full, values = reverse(seeded, b.values, (i,), True, False)
            eqns += full.eqns[len(prog.eqns):]
            rows.append(full.outputs[0])
        b = Builder(prog.namer)
        b.values, b.eqns, b.phase = values, eqns, "adjoint"
        with b:
            b.loc = prog.return_loc
            # np.array of the rows (not np.stack: four times faster on small rows)
            hess = b.record(N.pack, tuple(rows), {"shape": shape + shape}, hint="hessian")
        full = prune(ir.Program(prog.name, prog.inputs, b.eqns, (hess,), prog.decisions,
                                prog.namer, prog.return_loc), b.values)
        ir.verify(full, b.values)
        fn, _, filename = compile_function(emit(full, b.values, name), label)
        return Entry(fn, full.decisions, filename), b.values[hess]

    if cache.dispatcher is None:
        emitted = emit_dispatcher(name, params, cache.slot, cache, build)
        cache.dispatcher, _, _ = compile_function(emitted, f"{name} dispatcher")
    return cache.dispatcher, cache, build


# the hvp whose rows a hessian's stacked entry takes: set by the hessian wrapper calling
_ROWS = contextvars.ContextVar("ad_transform_hessian_rows", default=None)


def _keeps_loops(fun, args, i, max_eqns) -> bool:
    """``fun``'s path for ``args`` keeps a loop rolled (lowered with the default unroll)."""
    try:
        prog, _ = lower(fun, args, (i,), max_eqns, DEFAULT_UNROLL)
    except ADError:
        return False  # (the readback route raises what it raises)
    return _rolls(prog.eqns)


def _stacked_rows(product, i, n, args):
    """The Hessian with respect to the array argument ``i`` as ``product``'s rows."""
    shape = np.shape(args[i])
    m = int(np.prod(shape, dtype=int))
    if m == 0:
        return np.zeros(shape + shape)
    units = np.eye(m).reshape((m,) + shape)
    rows = [product(*args[:n], e) for e in units]
    return np.stack([_as_float(r) for r in rows]).reshape(shape + shape)


def _as_float(x):
    return np.asarray(x, dtype=np.float64)


def hessian(fun=None, wrt=0, *, maxsize: int = 128, max_eqns: int = 200_000):
    """The Hessian of ``fun`` with respect to the argument(s) ``wrt``.

    ``hessian(f)(x)`` is a float for a float ``x`` and an array of shape
    ``x.shape + x.shape`` for an array; with a tuple ``wrt`` it is a tuple of tuples
    whose block ``[i][j]`` has shape ``shape_i + shape_j`` (a float when both are
    floats), as JAX does.  For one array argument (and a function without ``*args``,
    ``**kwargs`` or keyword-only parameters) each path compiles one function: the
    gradient once, then one reverse sweep per unit vector, whose rows it returns
    (``.source(*args)``, ``.cache_info()``, ``.cache_clear()``).  Otherwise row ``k`` is
    one call of :func:`hvp` with the ``k``-th unit vector."""
    if fun is None:
        return lambda f: hessian(f, wrt, maxsize=maxsize, max_eqns=max_eqns)
    sig, params, wrt_idx, single, wrt = _parameters(fun, wrt)
    product = hvp(fun, wrt, maxsize=maxsize, max_eqns=max_eqns)

    dh = product.gradient
    # the rows: products with the unit vectors, rolled where the path keeps loops rolled
    hv = product if hasattr(product, "rolled") else dh
    fast = None
    if single and all(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params):
        grad_f = gradient(fun, wrt_idx[0], maxsize=maxsize, max_eqns=max_eqns)
        fast, cache, build = _hessian_function(fun, grad_f, params, wrt_idx[0], maxsize,
                                               max_eqns, hv is product)
        fast_grad = grad_f  # keeps the gradient wrapper (and the fast path's root) alive

    tree_hessian = []  # jacobian(gradient(f)), made at the first call with a tree

    @functools.wraps(fun)
    def hess(*args, **kwargs):
        if fast is not None and not kwargs and len(args) == len(params):
            vals = args  # every parameter given by position: nothing to bind
        else:
            ba = sig.bind(*args, **kwargs)
            ba.apply_defaults()
            vals = [ba.arguments[p.name] for p in params]
        if fast is not None and type(vals[wrt_idx[0]]) is np.ndarray:
            token = _ROWS.set(product)
            try:
                return fast(*vals)  # one compiled function: the gradient once, n sweeps
            finally:
                _ROWS.reset(token)
        if any(is_tree(vals[i]) for i in wrt_idx):  # blocks nested as the trees are
            if not tree_hessian:
                tree_hessian.append(jacobian(gradient(fun, wrt, maxsize=maxsize,
                                                      max_eqns=max_eqns), wrt,
                                             mode="forward", maxsize=maxsize,
                                             max_eqns=max_eqns))
            if fast is not None and not kwargs and len(args) == len(params):
                return tree_hessian[0](*vals)
            return tree_hessian[0](*ba.args, **ba.kwargs)
        shapes = [np.shape(vals[i]) for i in wrt_idx]
        zeros = [np.zeros(s) if s else 0.0 for s in shapes]
        rows = [[] for _ in wrt_idx]  # rows[i][k]: the products with unit vector k of i
        for i, s in enumerate(shapes):
            n = int(np.prod(s, dtype=int))
            units = np.eye(n).reshape((n,) + s) if s else [1.0]
            for e in units:  # views of one identity matrix, each of the argument's shape
                if single:
                    rows[i].append(hv(*vals, e))
                else:
                    v = tuple(e if j == i else zeros[j] for j in range(len(shapes)))
                    rows[i].append(hv(*vals, v))
        blocks = []
        for i, si in enumerate(shapes):
            line = []
            for j, sj in enumerate(shapes):
                parts = [r if single else r[j] for r in rows[i]]
                if not si and not sj:
                    line.append(float(parts[0]))
                else:
                    line.append(np.stack([_as_float(p) for p in parts]).reshape(si + sj))
            blocks.append(tuple(line))
        return blocks[0][0] if single else tuple(blocks)

    hess.hvp = product
    if fast is not None:
        def source(*args, **kwargs):
            """The generated Hessian of the path these arguments take (an array ``wrt``)."""
            ba = sig.bind(*args, **kwargs)
            ba.apply_defaults()
            token = _ROWS.set(product)
            try:
                return cache.entry_for(tuple(ba.arguments[p.name] for p in params),
                                       build).source
            finally:
                _ROWS.reset(token)

        hess.source = source
        hess.cache_info, hess.cache_clear = cache.info, cache.clear
        hess._grad = fast_grad
    return attach(hess, lambda lw, args, kwargs, node: lower_hessian(
        lw, sig, params, wrt_idx, single, dh, args, kwargs, node))


for _constructor in (hvp, hessian):  # made inside a lowered function too (see api.py)
    _constructor.__ad_constructor__ = True
