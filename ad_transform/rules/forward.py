"""Forward-mode (JVP) rules: one table entry per primitive that has a VJP rule.

A JVP rule is ordinary Python over IR atoms, like a VJP rule (see :mod:`.core`):
``rule(ts, ans, *ins, **params)`` gets ``ts``, the tangent of each input
(``None`` where the input is constant along the path, so its tangent is zero),
the output ``ans`` and the inputs, and returns the output's tangent (``None``:
zero).  The forward pass (:mod:`ad_transform.forward`) brings the result to
the output's exact shape.

Most entries are one of four derivations, each stated with the property of the
operation that makes it exact:

* :func:`diagonal`: an operation whose Jacobian in each input is diagonal (an
  elementwise one, or any function of scalars to a scalar).  Its VJP rule
  multiplies ``g`` by that diagonal, so the same rule applied to the tangent
  gives ``J t``.  Used for every elementwise primitive and every scalar one
  with no entry here (:func:`lookup`), so ``math``, the operators and NumPy's
  ufuncs need no second table.
* :func:`linear`: linear in the inputs at ``positions`` (the others are shapes,
  indices or axes): the tangent is the operation applied to the tangent.
* :func:`multilinear`: linear in each of the inputs at ``positions`` separately
  (``a @ b``): the sum over active inputs of the operation with that input
  replaced by its tangent.
* :func:`jointly_linear`: linear in all its array inputs together
  (``np.concatenate``): the operation on the tangents, zeros for constant inputs.
* :func:`reduction`: ``out[j]`` depends on one group of ``x`` (a reduction
  over ``axis``, or a determinant over the last two axes): the VJP rule with
  ``g = 1`` gives the gradient of each group, and the tangent is the sum of
  ``t`` times it over the group.

An operation with no entry and no diagonal Jacobian has no forward rule:
:func:`lookup` returns ``None`` and the forward pass raises a located
:class:`~ad_transform.errors.MissingRule`.
"""
from __future__ import annotations

import inspect

import numpy as np

from .. import runtime
from ..ir import Primitive
from . import builtins as B
from . import numpy as N
from .core import call_prim, lookup as lookup_fn, refuse, value_of

__all__ = ["JVPS", "lookup", "diagonal_here"]

JVPS: dict = {}  # Primitive -> rule(ts, ans, *ins, **params)


def defjvp(prim: Primitive, rule):
    JVPS[prim] = rule
    return prim


def _add(acc, c):
    if c is None:
        return acc
    return c if acc is None else acc + c


def diagonal(prim: Primitive):
    def rule(ts, ans, *ins, **params):
        acc = None
        for i, t in enumerate(ts):
            vjp = prim.vjp(i) if t is not None else None
            if vjp is not None:
                acc = _add(acc, vjp(t, ans, *ins, **params))
        return acc
    return rule


def linear(prim: Primitive, *positions):
    positions = positions or (0,)

    def rule(ts, ans, *ins, **params):
        acc = None
        for i in positions:
            if i < len(ts) and ts[i] is not None:
                args = list(ins)
                args[i] = ts[i]
                acc = _add(acc, prim(*args, **params))
        return acc
    return rule


multilinear = linear  # linear in each listed input separately: the same sum


_np_zeros, _np_ones_like = lookup_fn(np.zeros), lookup_fn(np.ones_like)


def _zeros(x):
    shape = np.shape(value_of(x))
    return _np_zeros(shape) if shape else 0.0


def jointly_linear(prim: Primitive, skip=0):
    """Linear in all inputs from ``skip`` on together: the operation on their tangents."""
    def rule(ts, ans, *ins, **params):
        args = list(ins[:skip]) + [t if t is not None else _zeros(x)
                                   for t, x in zip(ts[skip:], ins[skip:])]
        return prim(*args, **params)
    return rule


def _ones(ans):
    return _np_ones_like(ans) if np.ndim(value_of(ans)) else 1.0


def reduction(prim: Primitive, axes=None):
    """``axes``: the axes ``out[j]``'s group spans (default: the call's ``axis``/``keepdims``)."""
    def rule(ts, ans, x, *rest, **params):
        if ts[0] is None:
            return None
        weights = prim.vjp(0)(_ones(ans), ans, x, *rest, **params)
        if weights is None:
            return None
        if axes is not None:
            return N.sum_(ts[0] * weights, axis=axes)
        bound = inspect.signature(prim.impl).bind(x, *rest, **params).arguments
        axis, keep = bound.get("axis"), bool(bound.get("keepdims", False))
        return N.sum_(ts[0] * weights, axis=axis, keepdims=keep) if keep else \
            N.sum_(ts[0] * weights, axis=axis)
    return rule


def diagonal_here(prim: Primitive, ans, ins, active) -> bool:
    """The Jacobian is diagonal for these operands: elementwise, or scalars to a scalar."""
    if prim.elementwise:
        return True
    if not _is_scalar(value_of(ans)):
        return False
    return all(_is_scalar(value_of(x)) for x, a in zip(ins, active) if a)


def _is_scalar(v) -> bool:
    return (isinstance(v, (int, float, np.number)) and not isinstance(v, bool)) or (
        isinstance(v, np.ndarray) and v.ndim == 0)


def lookup(prim: Primitive, ans, ins, active):
    """The JVP rule of ``prim`` for these operands, or ``None`` when it has none."""
    rule = JVPS.get(prim)
    if rule is not None:
        return rule
    if diagonal_here(prim, ans, ins, active):
        return diagonal(prim)
    return None


# a list the function returns: built by the generated code (not differentiated itself)
as_list = call_prim(runtime, "as_list", "_rt", hint="out", register=False)
as_tuple = call_prim(runtime, "as_tuple", "_rt", hint="out", register=False)

# -- builtins ---------------------------------------------------------------------------
defjvp(B.getitem, linear(B.getitem))
defjvp(B.to_float, linear(B.to_float))  # float(x) of a number or a one-element array
defjvp(B.abs_, diagonal(B.abs_))  # abs(x) and pow(x, y) are elementwise on arrays too
defjvp(B.builtins_pow, diagonal(B.builtins_pow))
defjvp(B.sum_items, jointly_linear(B.sum_items))

# -- NumPy: indexing and writes ----------------------------------------------------------


def _setitem(ts, ans, x, idx, v):
    tx, tv = ts[0], ts[2]
    if tv is not None and not N._keeps_derivative(v, ans):
        tv = None
    if tx is None and tv is None:
        return None
    if tx is None:
        tx = _np_zeros(np.shape(value_of(x)))
    return N.setitem(tx, idx, 0.0 if tv is None else tv)


defjvp(N.setitem, _setitem)
defjvp(N.take, linear(N.take))

# -- NumPy: elementwise primitives that are not ufuncs ------------------------------------
defjvp(N.sinc, diagonal(N.sinc))

# -- NumPy: linear in the array, the rest are shapes and axes -----------------------------
for _prim in (N.sum_, N.sum_method, N.mean, N.cumsum, N.T, N.transpose, N.swapaxes,
              N.reshape, N.expand_dims, N.ravel, N.squeeze, N.moveaxis, N.broadcast_to,
              N.tile, N.repeat, N.flip, N.roll, N.copy, N.trace, N.diag):
    defjvp(_prim, linear(_prim))


def _asarray(ts, ans, x, dtype=None, **kw):
    if ts[0] is None or not N._keeps_derivative(x, ans):
        return None
    if np.result_type(value_of(ans)).kind == "f":
        return N.asarray(ts[0], dtype=dtype, **kw) if dtype is not None else N.asarray(ts[0])
    return ts[0]  # an int array converted to ints: the tangent stays a float


defjvp(N.asarray, _asarray)
defjvp(N.full, lambda ts, ans, shape_, fill, **kw: None if ts[1] is None
       else N.full(shape_, ts[1]))
defjvp(N.full_like, lambda ts, ans, x, fill, **kw: None if ts[1] is None
       else N.full(np.shape(value_of(ans)), ts[1]))

# -- NumPy: built from several arrays ------------------------------------------------------
for _prim in (N.pack, N.concatenate_, N.stack_):
    defjvp(_prim, jointly_linear(_prim))

# -- NumPy: products -----------------------------------------------------------------------
for _prim in (N.matmul, N.matmul_op, N.dot, N.vdot, N.inner, N.outer, N.tensordot):
    defjvp(_prim, multilinear(_prim, 0, 1))


def _einsum(ts, ans, spec, *ops):
    acc = None
    for i, t in enumerate(ts[1:]):
        if t is not None:
            args = list(ops)
            args[i] = t
            acc = _add(acc, N.einsum(spec, *args))
    return acc


defjvp(N.einsum, _einsum)

# -- NumPy: reductions that are not linear --------------------------------------------------
for _prim in (N.var, N.std, N.prod, N.amax, N.amin, lookup_fn(np.amax), lookup_fn(np.amin),
              N.norm):
    defjvp(_prim, reduction(_prim))


defjvp(N.det, reduction(N.det, (-2, -1)))
defjvp(N.slogdet_logabs, reduction(N.slogdet_logabs, (-2, -1)))


def _cumprod(ts, ans, x, axis=None, **kw):
    # as the VJP rule: through t / x, so undefined where x has zeros
    return None if ts[0] is None else ans * N.cumsum(ts[0] / x, axis=axis)


defjvp(N.cumprod, _cumprod)

# -- NumPy: linear algebra ---------------------------------------------------------------------
defjvp(N.inv, lambda ts, ans, x: None if ts[0] is None else -N._mm(ans, N._mm(ts[0], ans)))


def _solve(ts, ans, a, b):
    rhs = ts[1]
    if ts[0] is not None:
        ta_x = N._mm(ts[0], ans)
        rhs = -ta_x if rhs is None else rhs - ta_x
    return N.solve(a, rhs)


defjvp(N.solve, _solve)

# -- NumPy: permutations -----------------------------------------------------------------------
_argsort = lookup_fn(np.argsort)
_take_along_axis = call_prim(np, "take_along_axis", "np", register=False)


def _sort(ts, ans, x, axis=-1, kind=None, order=None, **kw):
    if ts[0] is None:
        return None
    if order is not None:
        refuse("np.sort(..., order=) has no derivative rule")
    return _take_along_axis(ts[0], _argsort(x, axis=axis), axis)


defjvp(N.sort, _sort)

# -- the _rt helpers of adjoint code (a derivative differentiated again, rules/runtime.py):
# linear in the adjoint ``g`` they receive, the rest piecewise constant (their VJP rules
# are None there), so the tangent is the helper applied to ``g``'s tangent
for _prim in (N.fit_shape, N.getitem_vjp, N.setitem_vjp, N.as_grad, N.minmax_vjp,
              N.flat_item, N.block, N.cumsum_vjp, N.trace_vjp, N.diag_vjp, N.tile_vjp,
              N.repeat_vjp, N.sort_vjp):
    defjvp(_prim, linear(_prim))
# multilinear helpers (rules/runtime.py): in the adjoint and every operand but their own,
# which they read for its shape only
defjvp(N.tensordot_vjp, lambda ts, ans, g, a, b, axes, argnum: linear(
    N.tensordot_vjp, 0, 2 if argnum == 0 else 1)(ts, ans, g, a, b, axes, argnum))
defjvp(N.einsum_vjp, lambda ts, ans, g, spec, argnum, *ops: linear(
    N.einsum_vjp, 0, *(3 + j for j in range(len(ops)) if j != argnum))(
        ts, ans, g, spec, argnum, *ops))


def _prod_vjp(ts, ans, g, x, axis=None, keepdims=False):
    """Linear in ``g``; in ``x``, the tangent of the products of the others is prod's
    Hessian applied to it (``prod_hvp``, whose ``g`` is constant along each product)."""
    from .runtime import prod_hvp
    acc = None if ts[0] is None else N.prod_vjp(ts[0], x, axis, keepdims)
    return acc if len(ts) < 2 or ts[1] is None else _add(acc, prod_hvp(ts[1], g, x, axis,
                                                                      keepdims))


defjvp(N.prod_vjp, _prod_vjp)
for _prim in (B.log_or_zero, N.log_or_zero):  # log, elementwise
    defjvp(_prim, diagonal(_prim))


def _add_at(ts, ans, out, idx, g):
    """``_rt.add_at(out, idx, g)`` (``out[idx] += g`` into an adjoint buffer): linear in
    ``out`` and ``g`` together.  The tangent is a new array (``t_out`` plus ``t_g``
    scattered into zeros, repeated indices added), never written into in place: ``t_out``
    may be another tangent's value as well."""
    from .runtime import _float_dtype
    t_out, t_g = ts[0], ts[2]
    if t_g is None:
        return t_out
    scatter = N.getitem_vjp(t_g, np.shape(value_of(out)), _float_dtype(out), idx)
    return scatter if t_out is None else t_out + scatter


for _prim in (N.add_at, N.add_at_repeated):
    defjvp(_prim, _add_at)
