"""The NumPy adjoint kernels: one line of NumPy each that the NumPy rules
(:mod:`ad_transform.rules.numpy`) would otherwise repeat in every derivative.

Generated code calls them as ``_rt.name`` (:mod:`ad_transform.runtime` re-exports each
one), so this module imports nothing of ad_transform.  Guarantees: each kernel is a
function of its arguments that never writes into them (:func:`setitem` writes into a
copy), and returns an adjoint of its input's shape where its docstring says so.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["sum_axes", "sum_to", "fit_shape", "expand_reduced", "minmax_vjp", "getitem_vjp", "index_tuple", "setitem", "written", "setitem_vjp", "pack", "flat_item", "concatenate", "stack", "block", "tensordot_vjp", "einsum_vjp", "trace_vjp", "sort_vjp", "nuc_vjp", "cumsum_vjp", "prod_vjp", "prod_hvp", "tile_vjp", "repeat_vjp", "diag_vjp", "logabsdet", "slogdet_sign", "as_grad"]


def sum_axes(gshape, shape):
    """How to bring an adjoint of ``gshape`` to ``shape`` by NumPy's broadcasting rules.

    Shapes align from the right.  Returns ``(lead, keep)``: sum the ``lead``
    leading axes ``gshape`` has beyond ``shape``, then sum (keeping them, as
    length 1) the axes ``keep`` where ``shape`` has 1 and the adjoint does not.
    The result has ``shape``, or a shape that broadcasts to it (an adjoint
    with fewer axes, or 1 where ``shape`` is not: it stands for its broadcast).
    ``ValueError`` if the shapes do not broadcast together.
    """
    gshape, shape = tuple(gshape), tuple(shape)
    np.broadcast_shapes(gshape, shape)  # ValueError: not broadcastable
    lead = max(len(gshape) - len(shape), 0)
    rest = gshape[lead:]
    off = len(shape) - len(rest)  # rest[i] is aligned with shape[i + off]
    keep = tuple(i for i, n in enumerate(rest) if n != 1 and shape[i + off] == 1)
    return lead, keep


def sum_to(g, shape):
    """``g`` summed over its broadcast axes (:func:`sum_axes`), not broadcast up."""
    g = np.asarray(g)
    lead, keep = sum_axes(g.shape, shape)
    if lead:
        g = g.sum(axis=tuple(range(lead)))
    if keep:
        g = g.sum(axis=keep, keepdims=True)
    return g


def fit_shape(g, shape):
    """An adjoint brought to exactly ``shape``: summed over its broadcast axes
    (:func:`sum_axes`, aligned from the right), then broadcast up where smaller."""
    shape = tuple(shape)
    g = sum_to(g, shape)
    if g.shape != shape:
        g = np.broadcast_to(g, shape)
    return g[()] if g.ndim == 0 else g


def expand_reduced(g, shape, axis=None, keepdims=False):
    """Broadcast the adjoint of a reduction over ``axis`` back to the input's ``shape``."""
    g = np.asarray(g)
    if axis is not None and not keepdims:
        axes = (axis,) if np.ndim(axis) == 0 else tuple(axis)
        g = np.expand_dims(g, tuple(a % len(shape) for a in axes))
    return np.broadcast_to(g, shape)


def minmax_vjp(g, ans, x, axis=None, keepdims=False):
    """Adjoint of max/min reductions: shared equally among the entries that attain it
    (ties split evenly, as JAX does; docs/kinks.md)."""
    shape = np.shape(x)
    hit = x == expand_reduced(ans, shape, axis, keepdims)
    count = hit.sum(axis=axis, keepdims=True)
    return expand_reduced(g, shape, axis, keepdims) * hit / count


def _basic(idx) -> bool:
    items = idx if isinstance(idx, tuple) else (idx,)
    return all(i is None or i is Ellipsis or isinstance(i, (int, np.integer, slice)) for i in items)


def getitem_vjp(g, shape, dtype, idx):
    """Adjoint of ``x[idx]`` for ``x`` of ``shape``: ``g`` scattered into zeros of
    ``dtype`` (added where indices repeat)."""
    out = np.zeros(shape, dtype=dtype)
    if type(idx) is slice or _basic(idx):  # (a slice first: the common case, checked fast)
        out[idx] = g
    else:
        np.add.at(out, idx, g)
    return out


def add_at(out, idx, g):
    """``out[idx] += g`` in place for a basic index (ints, slices); returns ``out`` (an
    adjoint buffer that belongs to one gradient: see ``reverse._accumulate``)."""
    out[idx] += g
    return out


def add_at_repeated(out, idx, g):
    """Like :func:`add_at` for an index array, adding where indices repeat."""
    np.add.at(out, idx, g)
    return out


def index_tuple(*parts):
    """``x[a, b]`` where ``a`` or ``b`` is an index array computed at run time."""
    return parts


def setitem(x, idx, v):
    """``x[idx] = v`` without touching ``x``: a functional update (``x``'s dtype, as NumPy:
    a float written into an int array is truncated)."""
    out = np.array(x)
    out[idx] = v
    return out


def written(shape, idx):
    """For ``x[idx] = v`` with ``x`` of ``shape``: a boolean array shaped like ``x[idx]``,
    true where the write landed.  Where an index repeats NumPy keeps one of the values
    written there (the last); the others are overwritten and get no derivative."""
    probe = np.full(shape, -1, dtype=np.intp)
    taken = probe[idx]
    ids = np.arange(taken.size, dtype=np.intp).reshape(taken.shape)
    probe[idx] = ids
    return probe[idx] == ids


def setitem_vjp(g, idx):
    """Adjoint of ``x[idx] = v`` for ``v``: ``g[idx]``, zero where a repeated index's
    write was overwritten by a later one."""
    return np.where(written(np.shape(g), idx), g[idx], 0.0)


def pack(*items, shape):
    """``np.array([...])`` from scalars (listed flat, in C order)."""
    return np.array(items).reshape(shape)


def flat_item(g, i):
    return g.flat[i]


def concatenate(*arrays, axis=0):
    return np.concatenate(arrays, axis=axis)


def stack(*arrays, axis=0):
    return np.stack(arrays, axis=axis)


def block(g, axis, start, stop):
    """``g`` restricted to ``start:stop`` along ``axis``."""
    index = [slice(None)] * np.ndim(g)
    index[axis] = slice(start, stop)
    return g[tuple(index)]


def _axes(axes, nd_a):
    if np.ndim(axes) == 0:
        return list(range(nd_a - axes, nd_a)), list(range(axes))
    a, b = axes
    a = [a] if np.ndim(a) == 0 else list(a)
    b = [b] if np.ndim(b) == 0 else list(b)
    return a, b


def tensordot_vjp(g, a, b, axes, argnum):
    """Adjoint of ``np.tensordot(a, b, axes)`` for operand ``argnum``."""
    ax_a, ax_b = _axes(axes, np.ndim(a))
    ax_a = [i % np.ndim(a) for i in ax_a]
    ax_b = [i % np.ndim(b) for i in ax_b]
    free_a = [i for i in range(np.ndim(a)) if i not in ax_a]
    free_b = [i for i in range(np.ndim(b)) if i not in ax_b]
    g = np.asarray(g)
    if argnum == 0:
        res = np.tensordot(g, b, axes=(list(range(len(free_a), g.ndim)), free_b))
        order = free_a + [ax_a[ax_b.index(j)] for j in sorted(ax_b)]
    else:
        res = np.tensordot(a, g, axes=(free_a, list(range(len(free_a)))))
        order = [ax_b[ax_a.index(i)] for i in sorted(ax_a)] + free_b
    return np.transpose(res, np.argsort(order))


_SPARE = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _explicit(subscripts, operands):
    """``(inputs, output)``: einsum subscripts with ``...`` spelled out as letters and the
    output written out (NumPy's implicit output: the letters used once, sorted)."""
    spec = subscripts.replace(" ", "")
    ins, out = spec.split("->") if "->" in spec else (spec, None)
    ins = ins.split(",")
    free = "".join(c for c in _SPARE if c not in spec)
    dims = [np.ndim(op) - (len(sub) - 3) if "..." in sub else 0 for sub, op in zip(ins, operands)]
    dots = free[:max(dims, default=0)]
    ins = [sub.replace("...", dots[len(dots) - n:]) for sub, n in zip(ins, dims)]  # from the right
    if out is None:
        letters = "".join(ins).replace(",", "")
        out = dots + "".join(sorted(c for c in set(letters) - set(dots)
                                    if letters.count(c) == 1))
    else:
        out = out.replace("...", dots)
    return ins, out


def einsum_vjp(g, subscripts, argnum, *operands):
    """Adjoint of ``np.einsum(subscripts, *operands)`` for operand ``argnum``.

    ``...`` and a letter repeated within the operand (``"ii"``, a diagonal) are
    supported: the adjoint is computed over the operand's distinct letters and
    written through einsum's own (writable) diagonal view of a zero array.
    """
    ins, out = _explicit(subscripts, operands)
    target = ins[argnum]
    others = [s for i, s in enumerate(ins) if i != argnum]
    have = set(out).union(*others) if others else set(out)
    distinct = "".join(dict.fromkeys(target))
    kept = "".join(c for c in distinct if c in have)
    args = [g] + [op for i, op in enumerate(operands) if i != argnum]
    res = np.einsum(",".join([out] + others) + "->" + kept, *args)
    shape = np.shape(operands[argnum])
    sizes = dict(zip(target, shape))
    res = np.reshape(res, [sizes[c] if c in have else 1 for c in distinct])
    if distinct == target:
        return np.broadcast_to(res, shape)
    full = np.zeros(shape, dtype=np.result_type(res, np.float64))
    np.einsum(target + "->" + distinct, full)[...] = res  # the diagonal, as a view
    return full


def trace_vjp(g, shape, offset=0, axis1=0, axis2=1):
    """Adjoint of ``np.trace(x, offset, axis1, axis2)`` for ``x`` of ``shape``: ``g``
    on the traced diagonal of every matrix, zero elsewhere."""
    out = np.zeros(shape, dtype=np.result_type(g, np.float64))
    mats = np.moveaxis(out, (axis1, axis2), (-2, -1))  # a view: writes land in out
    n = np.diagonal(mats, offset, -2, -1).shape[-1]
    rows = np.arange(n) + max(-offset, 0)
    cols = np.arange(n) + max(offset, 0)
    mats[..., rows, cols] = np.asarray(g)[..., None]
    return out


def sort_vjp(g, x, axis=-1):
    """Adjoint of ``np.sort(x, axis)``: ``g`` routed back through the permutation that
    sorted ``x`` (entries that tie have equal values: each gets its own slot's ``g``)."""
    x = np.asarray(x)
    if axis is None:
        out = np.zeros(x.size, dtype=np.result_type(g, np.float64))
        out[np.argsort(x, axis=None, kind="stable")] = np.ravel(g)
        return out.reshape(x.shape)
    out = np.zeros(x.shape, dtype=np.result_type(g, np.float64))
    np.put_along_axis(out, np.argsort(x, axis=axis, kind="stable"), g, axis=axis)
    return out


def nuc_vjp(x):
    """The derivative of the nuclear norm of the matrix ``x``: ``U @ Vh`` of its SVD."""
    u, _, vh = np.linalg.svd(x, full_matrices=False)
    return u @ vh


def cumsum_vjp(g, shape, axis=None):
    if axis is None:
        return np.flip(np.cumsum(np.flip(np.ravel(g)))).reshape(shape)
    return np.flip(np.cumsum(np.flip(g, axis), axis), axis)


def prod_vjp(g, x, axis=None, keepdims=False):
    """Adjoint of ``np.prod(x, axis)``: ``g`` times the product of the *other* entries.

    Products to the left and to the right of each entry (no division), so the
    result is exact where ``x`` has zeros.
    """
    x = np.asarray(x)
    axes = range(x.ndim) if axis is None else (axis,) if np.ndim(axis) == 0 else axis
    axes = [a % x.ndim for a in axes]
    rest = [i for i in range(x.ndim) if i not in axes]
    order = rest + axes
    xt = np.transpose(x, order).reshape([x.shape[i] for i in rest] + [-1])
    ones = np.ones(xt.shape[:-1] + (1,), dtype=xt.dtype)
    left = np.concatenate([ones, np.cumprod(xt[..., :-1], axis=-1)], axis=-1)
    right = np.concatenate([ones, np.cumprod(xt[..., :0:-1], axis=-1)], axis=-1)[..., ::-1]
    others = (left * right).reshape([x.shape[i] for i in order])
    return expand_reduced(g, x.shape, axis, keepdims) * np.transpose(others, np.argsort(order))


def prod_hvp(ct, g, x, axis=None, keepdims=False):
    """The derivative in ``x`` of ``sum(ct * prod_vjp(g, x, axis, keepdims))``: entry
    ``m`` is the sum over the other entries ``i`` of its group of ``ct_i g`` times the
    product of the entries but ``i`` and ``m``.  Each is the product of the others in a
    copy of the group with entry ``m`` set to 1 (no division: exact where ``x`` has
    zeros); a group of ``n`` entries costs ``n * n``."""
    x = np.asarray(x)
    w = np.asarray(ct) * expand_reduced(g, x.shape, axis, keepdims)
    axes = range(x.ndim) if axis is None else (axis,) if np.ndim(axis) == 0 else axis
    axes = [a % x.ndim for a in axes]
    rest = [i for i in range(x.ndim) if i not in axes]
    order = rest + axes
    xt = np.transpose(x, order).reshape([x.shape[i] for i in rest] + [-1])
    wt = np.transpose(w, order).reshape(xt.shape)
    n = xt.shape[-1]
    copies = np.repeat(xt[..., None, :], n, axis=-2).astype(np.result_type(xt, np.float64))
    diag = np.arange(n)
    copies[..., diag, diag] = 1.0
    others = prod_vjp(np.ones(copies.shape[:-1]), copies, -1)  # [..., m, i]
    res = np.einsum("...mi,...i->...m", others, wt) - others[..., diag, diag] * wt
    return np.transpose(res.reshape([x.shape[i] for i in order]), np.argsort(order))


def tile_vjp(g, shape, reps):
    reps = (reps,) if np.ndim(reps) == 0 else tuple(reps)
    nd = max(len(shape), len(reps))
    shape_ = (1,) * (nd - len(shape)) + tuple(shape)
    reps = (1,) * (nd - len(reps)) + reps
    split = [n for pair in zip(reps, shape_) for n in pair]
    g = np.reshape(g, split).sum(axis=tuple(range(0, 2 * nd, 2)))
    return g.reshape(shape)


def repeat_vjp(g, shape, repeats, axis=None):
    if axis is None:
        size = math.prod(shape)
        idx = np.repeat(np.arange(size), repeats)
        out = np.zeros(size, dtype=np.result_type(g, np.float64))
        np.add.at(out, idx, np.ravel(g))
        return out.reshape(shape)
    axis %= len(shape)
    idx = np.repeat(np.arange(shape[axis]), repeats)
    out = np.zeros(shape, dtype=np.result_type(g, np.float64))
    np.add.at(np.moveaxis(out, axis, 0), idx, np.moveaxis(g, axis, 0))
    return out


def diag_vjp(g, shape, k=0):
    if len(shape) == 1:
        return np.diagonal(g, k).copy()
    out = np.zeros(shape, dtype=np.result_type(g, np.float64))
    n = np.diagonal(out, k).shape[0]
    rows = np.arange(n) + max(-k, 0)
    cols = np.arange(n) + max(k, 0)
    out[rows, cols] = g
    return out


def logabsdet(x):
    """The second half of ``np.linalg.slogdet``: log |det x| (differentiable)."""
    return np.linalg.slogdet(x)[1]


def slogdet_sign(x):
    """The first half of ``np.linalg.slogdet``: the sign of det x (piecewise constant)."""
    return np.linalg.slogdet(x)[0]


def as_grad(g, like):
    """A gradient the caller owns, with its argument's dtype (float for ints)."""
    dtype = like.dtype if like.dtype.kind == "f" else np.float64
    return np.array(np.broadcast_to(g, like.shape), dtype=dtype)
