"""Rules for the ``_rt`` helpers that generated derivatives call, so a derivative can be
differentiated again (``gradient(gradient(f))``, see :mod:`ad_transform.nested`).

Each helper the adjoint code prints as ``_rt.name(...)`` is registered here under its
function, beside its rule.  Most are linear in the adjoint they receive, and their rule
is the transposed operation (a scatter's rule is a gather, a broadcast's is a sum).
Helpers registered without a rule are piecewise constant (``defzero``); a helper not
registered at all (``_rt.nuc_vjp``, ``_rt.prod_hvp``) is an opaque call, which the
lowering refuses with ``MissingRule`` on a differentiated value.
"""
from __future__ import annotations

import numpy as np

from .. import runtime
from . import builtins as B
from . import numpy as N
from . import numpy_kernels
from .core import (REGISTRY, call_prim, deflowering, defvjp, defvjp_variadic, defzero, lookup,
                   refuse, value_of)

__all__ = []


def _register(prim):
    REGISTRY[prim.impl] = prim
    return prim


def _shape(x):
    return np.shape(value_of(x))


def _float_dtype(x) -> str:
    return np.result_type(value_of(x), np.float64).name


# -- piecewise constant ------------------------------------------------------------------
same = _register(defzero(call_prim(runtime, "same", "_rt", register=False)))
defzero(B.sign)
_register(defzero(N.index_tuple))
_register(N.slogdet_sign)

# -- d/dx log(x) = 1/x (the helper is log, with 0 at 0 where x ** y needs it) -----------
for _prim in (B.log_or_zero, N.log_or_zero):
    defvjp(_prim, lambda g, ans, x: g / x)
_register(B.log_or_zero)

# -- linear in the adjoint: the rule is the transposed operation ---------------------------
_register(defvjp(N.fit_shape, lambda ct, ans, g, shape: N.fit_shape(ct, _shape(g)), None))
_register(defvjp(N.getitem_vjp, lambda ct, ans, g, shape, dtype, idx: B.getitem(ct, idx),
                 None, None, None))
_register(defvjp(N.setitem_vjp, lambda ct, ans, g, idx: N.setitem(N.zeros_like(g), idx, ct),
                 None))
_register(defvjp(N.as_grad, lambda ct, ans, g, like: ct, None))


def _minmax_t(ct, out, g, ans, x, axis=None, keepdims=False):
    """``minmax_vjp`` spreads ``g`` over the entries that attain the max, with weights that
    are piecewise constant in ``x``; its transpose sums ``ct`` with the same weights."""
    weights = N.minmax_vjp(np.ones(_shape(ans)), ans, x, axis, keepdims)
    return N.sum_(ct * weights, axis=axis, keepdims=keepdims)


_register(defvjp(N.minmax_vjp, _minmax_t, None, None, None, None))
_register(defvjp(N.flat_item, lambda ct, ans, g, i: N.getitem_vjp(
    ct, _shape(g), _float_dtype(g), np.unravel_index(i, _shape(g))), None))


def _block_t(ct, ans, g, axis, start, stop):
    index = [slice(None)] * len(_shape(g))
    index[axis] = slice(start, stop)
    return N.getitem_vjp(ct, _shape(g), _float_dtype(g), tuple(index))


_register(defvjp(N.block, _block_t, None, None, None))

_register(defvjp(N.cumsum_vjp, lambda ct, ans, g, shape, axis=None: N.cumsum(ct, axis=axis),
                 None, None))
_register(defvjp(N.trace_vjp, lambda ct, ans, g, shape, offset=0, axis1=0, axis2=1: N.trace(
    ct, offset=offset, axis1=axis1, axis2=axis2), None, None, None, None))
_register(defvjp(N.diag_vjp, lambda ct, ans, g, shape, k=0: N.diag(ct, k=k), None, None))
_register(defvjp(N.tile_vjp, lambda ct, ans, g, shape, reps: N.tile(ct, reps), None, None))
_register(defvjp(N.repeat_vjp, lambda ct, ans, g, shape, repeats, axis=None: N.repeat(
    ct, repeats, axis=axis), None, None, None))

def _sort_t(ct, ans, g, x, axis=-1):
    """``sort_vjp`` routes ``g`` back through the permutation that sorts ``x`` (piecewise
    constant in ``x``); its transpose gathers ``ct`` through the same permutation."""
    if len(_shape(x)) != 1:
        refuse("the second derivative of np.sort is supported on 1-D arrays only")
    return B.getitem(ct, lookup(np.argsort)(x, kind="stable"))


_register(defvjp(N.sort_vjp, _sort_t, None, None))

# -- multilinear in the adjoint and the other operands: <ct, vjp(g)> = <g, op(.., ct, ..)> --
# (the adjoint for operand k is linear in g and in every operand but k, which it reads for
# its shape only; transposing it puts ct in operand k's place)
def _tensordot_t(i):
    def rule(ct, ans, g, a, b, axes, argnum):
        if i == 0:
            return N.tensordot(ct, b, axes=axes) if argnum == 0 else N.tensordot(a, ct, axes=axes)
        if i == 1 + argnum:
            return None  # its own operand: read for its shape only
        return N.tensordot_vjp(g, ct, b, axes, 1) if argnum == 0 else \
            N.tensordot_vjp(g, a, ct, axes, 0)
    return rule


_register(defvjp(N.tensordot_vjp, _tensordot_t(0), _tensordot_t(1), _tensordot_t(2), None, None))


def _einsum_t(i, ct, ans, g, spec, argnum, *ops):
    if i in (1, 2) or i - 3 == argnum:
        return None  # the subscripts, the operand number, its own operand (its shape)
    ops = ops[:argnum] + (ct,) + ops[argnum + 1:]
    return N.einsum(spec, *ops) if i == 0 else N.einsum_vjp(g, spec, i - 3, *ops)


_register(defvjp_variadic(N.einsum_vjp, _einsum_t))

prod_hvp = N.rt("prod_hvp", "g")
_register(defvjp(N.prod_vjp,
                 lambda ct, ans, g, x, axis=None, keepdims=False: N.sum_(
                     ct * N.prod_vjp(np.ones(_shape(g)), x, axis, keepdims), axis=axis,
                     keepdims=keepdims),
                 lambda ct, ans, g, x, axis=None, keepdims=False: prod_hvp(
                     ct, g, x, axis, keepdims), None, None))

# -- helpers whose rules live beside their primitive in rules/numpy.py and builtins.py -----
for _prim in (B.sum_items, N.setitem, N.pack, N.concatenate_, N.stack_, N.slogdet_logabs):
    _register(_prim)


@deflowering(runtime.function_state, interpreter=True)
def _function_state(lw, args, kwargs, node, hint):
    """``_rt.function_state(helper)`` in generated code read back by the lowering
    (:mod:`ad_transform.nested`): the guard of the helper's code and defaults, taken
    again in the outer path, as inlining the helper itself does."""
    (fn,) = args
    lw._guard_function(fn, node)
    return runtime.function_state(fn)


@deflowering(numpy_kernels.add_at, numpy_kernels.add_at_repeated)
def _add_at(out, idx, g):
    """``_rt.add_at(out, idx, g)`` (``out[idx] += g`` into an adjoint buffer) read back by
    the lowering: the same sum written without the in-place write, as a scatter of ``g``
    added to ``out``, whose rules already exist."""
    return N.add(out, N.getitem_vjp(g, _shape(out), _float_dtype(out), idx))
