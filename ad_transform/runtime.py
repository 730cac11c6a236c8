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

__all__ = ["PathMiss", "sum_items", "sign", "log_or_zero", "tie_share", "tie_count", "tie_part", "clip_share", "fdiv",
           "div0", "pow_grad", "same", "snapshot", "function_state", "signature", "signatures", "sum_axes", "sum_to", "fit_shape",
           "expand_reduced", "minmax_vjp", "getitem_vjp", "add_at", "add_at_repeated", "index_tuple", "setitem",
           "setitem_vjp", "written", "pack",
           "flat_item", "concatenate", "stack", "block", "tensordot_vjp", "einsum_vjp", "trace_vjp", "sort_vjp", "nuc_vjp", "cumsum_vjp",
           "prod_vjp", "prod_hvp", "tile_vjp", "repeat_vjp", "diag_vjp", "logabsdet", "slogdet_sign", "as_grad"]


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


# -- kinks: one convention, documented in docs/kinks.md --------------------------------

def tie_share(ans, x, *others):
    """The share of ``max``/``min``'s derivative that goes to operand ``x``: 1 where ``x`` is
    the result, 0 where it is not, and split evenly among the operands that tie there
    (``x`` and ``others`` equal to ``ans``), as JAX and PyTorch do.  Elementwise on arrays
    (``np.maximum``); 0 where the result is ``nan`` and ``x`` is not it."""
    hit = x == ans
    if not isinstance(hit, (np.ndarray, np.generic)):
        if not hit:
            return 0.0
        return 1.0 / (1 + sum(1 for o in others if o == ans))
    count = 1
    for o in others:
        count = count + (o == ans)
    return hit / count


def tie_count(ans, *items):
    """How many of ``items`` (operands of ``max``/``min``) are the result ``ans``."""
    return sum(1 for x in items if x == ans)


def tie_part(ans, x, count):
    """``x``'s share of ``max``/``min``'s derivative, given :func:`tie_count`."""
    return 1.0 / count if x == ans else 0.0


def clip_share(x, lo, hi, which):
    """The share of ``np.clip(x, lo, hi)``'s derivative that goes to ``x`` (``which`` 0),
    ``lo`` (1) or ``hi`` (2).  ``np.clip`` is ``minimum(maximum(x, lo), hi)``, and so is
    its derivative: at a bound, ``x`` and the bound tie and share it (:func:`tie_share`).
    A bound may be ``None``."""
    low = x if lo is None else np.maximum(x, lo)
    out = low if hi is None else np.minimum(low, hi)
    if which == 2:
        return tie_share(out, hi, low)
    through = 1.0 if hi is None else tie_share(out, low, hi)
    if lo is None:
        return through
    return through * (tie_share(low, x, lo) if which == 0 else tie_share(low, lo, x))


def fdiv(a, b):
    """``a / b`` as IEEE 754 (and NumPy) divides where Python raises: ``+-inf``, or ``nan``
    for ``0 / 0``.  For derivatives that are infinite where the function is not
    (``math.sqrt`` and ``math.asin`` at the ends of their domains)."""
    try:
        return a / b
    except ZeroDivisionError:
        if a != a or a == 0:
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


def div0(a, b):
    """``a / b``, and 0 where ``b`` is 0: the derivative of ``hypot`` at the origin, 0 as
    ``abs``'s is at 0."""
    if isinstance(b, (np.ndarray, np.generic)) or isinstance(a, (np.ndarray, np.generic)):
        zero = b == 0
        return np.where(zero, 0.0, a / np.where(zero, 1.0, b))
    return a / b if b != 0 else 0.0 * a


def pow_grad(a, b):
    """``d/da a ** b`` = ``b * a ** (b - 1)``: 0 where ``b`` is 0 (``a ** 0`` is constant, also
    at ``a == 0``), ``inf`` at ``a == 0`` for ``0 < b < 1`` (the derivative from the right,
    as NumPy computes it) where Python raises."""
    if isinstance(a, (np.ndarray, np.generic)) or isinstance(b, (np.ndarray, np.generic)):
        b_ = np.asarray(b)
        return b * np.power(a, np.where(b_ == 0, 1, b_ - 1))
    if b == 0:
        return 0.0
    try:
        return b * a ** (b - 1)
    except ZeroDivisionError:  # 0.0 ** negative: a == 0 and b < 1
        return b * math.inf


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
    if getattr(t, "_same_by_eq", False):  # a pytree.TreeDef: compared by its structure
        return v == expect
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


def as_list(*items):
    """A list the differentiated function returned (forward mode returns it as one)."""
    return list(items)


def as_tuple(*items):
    """A tuple inside such a list."""
    return items


# The NumPy adjoint kernels live beside the NumPy rules; generated code calls them as
# ``_rt.name``.  (Imported last: importing rules/ imports this module's names above.)
from .rules.numpy_kernels import (  # noqa: E402
    sum_axes, sum_to, fit_shape, expand_reduced, minmax_vjp, getitem_vjp, add_at,
    add_at_repeated, index_tuple,
    setitem, written, setitem_vjp, pack, flat_item, concatenate, stack, block,
    tensordot_vjp, einsum_vjp, trace_vjp, sort_vjp, nuc_vjp, cumsum_vjp, prod_vjp, prod_hvp,
    tile_vjp, repeat_vjp, diag_vjp, logabsdet, slogdet_sign, as_grad)
