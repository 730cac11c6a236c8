"""Names the generated code refers to at run time (bound as ``_rt``).

Kept tiny on purpose: a generated derivative is plain Python that calls
``math``, builtins and these few helpers: the guards' checks (``same``,
``signatures``, ``PathMiss``) and scalar helpers are here; the NumPy adjoint
kernels live beside the NumPy rules (:mod:`ad_transform.rules.numpy_kernels`) and
are re-exported here, so generated code calls every one as ``_rt.name``.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["PathMiss", "sum_items", "sign", "log_or_zero", "same", "snapshot", "function_state", "signature", "signatures", "sum_axes", "sum_to", "fit_shape",
           "expand_reduced", "minmax_vjp", "getitem_vjp", "add_at", "add_at_repeated", "index_tuple", "setitem",
           "setitem_vjp", "written", "pack",
           "flat_item", "concatenate", "stack", "block", "tensordot_vjp", "einsum_vjp", "trace_vjp", "sort_vjp", "nuc_vjp", "cumsum_vjp",
           "prod_vjp", "tile_vjp", "repeat_vjp", "diag_vjp", "logabsdet", "slogdet_sign", "as_grad"]


class PathMiss(Exception):
    """Raised by a guard: these inputs take another control path.

    ``index`` is the guard's position along the path, ``observed`` the outcome
    the inputs produced there.  The cache uses both to find (or build) the
    derivative of the path the inputs really take.
    """

    def __init__(self, index: int, observed):
        self.index = index
        self.observed = observed


def sum_items(start, *items):
    """``sum(items, start)``: Python's own ``sum``, whose float rounding differs between
    versions (3.12 compensates), so a derivative's value matches the function's exactly."""
    return sum(items, start)


def sign(x):
    """-1, 0 or 1: the derivative of ``abs`` (0 at 0, as in JAX and autograd)."""
    if isinstance(x, (np.ndarray, np.generic)):  # np.float64 too: its bools do not subtract
        return np.sign(x)
    return (x > 0) - (x < 0) + 0.0


def log_or_zero(x):
    """``log(x)``, with 0 at ``x == 0`` (``d/dy x**y`` there) and nan below."""
    if isinstance(x, np.ndarray):
        pos = x > 0
        return np.where(pos, np.log(np.where(pos, x, 1.0)), np.where(x == 0, 0.0, np.nan))
    if x > 0:
        return math.log(x)
    return 0.0 if x == 0 else math.nan


_SCALARS = (int, float, complex, bool, str, bytes, type(None), set, frozenset, np.generic)


def same(v, expect) -> bool:
    """``v`` is ``expect`` as far as a path baked into code can tell: equal, of the same
    types all the way down (``1`` is not ``1.0`` nor ``True``: ``f"{v}"`` differs), ``-0.0``
    is not ``0.0`` and ``nan`` is ``nan``; functions, arrays and other objects inside are
    the same objects.  What an equality guard checks (``expect`` from :func:`snapshot`)."""
    t = type(v)
    if t is not type(expect):
        return False
    if t is float:
        if v != v:
            return expect != expect
        return v == expect and (v != 0.0 or math.copysign(1.0, v) == math.copysign(1.0, expect))
    if t is list or t is tuple:
        return len(v) == len(expect) and all(same(a, b) for a, b in zip(v, expect))
    if t is dict:
        return same(list(v), list(expect)) and all(same(v[k], expect[k]) for k in v)
    if isinstance(v, _SCALARS):
        return bool(v == expect)
    if t is np.ndarray:  # its values are baked into the path: changed in place, it differs
        return v.shape == expect.shape and v.dtype == expect.dtype and np.array_equal(
            v, expect, equal_nan=v.dtype.kind in "fc")
    return v is expect


def snapshot(v):
    """A copy of the lists, tuples, dicts, sets and arrays in ``v``, sharing everything else."""
    t = type(v)
    if t is list or t is tuple:
        return t(snapshot(i) for i in v)
    if t is dict:
        return {k: snapshot(i) for k, i in v.items()}
    if t is set:
        return set(v)
    if t is np.ndarray:
        return v.copy()
    return v


def function_state(fn):
    """What a path baked in of a Python function it inlined: its code and its defaults
    (guarded by :func:`same` against a :func:`snapshot`; the code by identity)."""
    return (fn.__code__, fn.__defaults__, fn.__kwdefaults__)


def signature(v):
    """What the control path depends on of a value: its type, and an array's shape and dtype."""
    if type(v) is np.ndarray:
        return (np.ndarray, v.shape, v.dtype.str)
    return type(v)


def signatures(*vals):
    return tuple(signature(v) for v in vals)


# The NumPy adjoint kernels live beside the NumPy rules; generated code calls them as
# ``_rt.name``.  (Imported last: importing rules/ imports this module's names above.)
from .rules.numpy_kernels import (  # noqa: E402
    sum_axes, sum_to, fit_shape, expand_reduced, minmax_vjp, getitem_vjp, add_at,
    add_at_repeated, index_tuple,
    setitem, written, setitem_vjp, pack, flat_item, concatenate, stack, block,
    tensordot_vjp, einsum_vjp, trace_vjp, sort_vjp, nuc_vjp, cumsum_vjp, prod_vjp,
    tile_vjp, repeat_vjp, diag_vjp, logabsdet, slogdet_sign, as_grad)
