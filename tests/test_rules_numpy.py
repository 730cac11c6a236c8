"""Every NumPy derivative rule, checked against finite differences.

``TABLE`` lists one entry per (operation, argument shapes, options): the name
of the rule it exercises, a module-level function calling it (written here
or made by a small factory), the shapes of its arguments (``None``: a Python
float), the range the inputs are drawn from and, for reductions, the
axis/keepdims variants.  Every argument of an entry's function is
differentiated.  For each entry, with a fixed-seed generator:

* the gradient of ``np.sum(u * fn(*args))`` (random ``u``) is compared entrywise
  with central finite differences, and a second call must run the cached
  derivative and give the same gradient;
* :func:`ad_transform.testing.check_vjp` runs the dot-product test
  ``<J^T u, v> == <u, J v>`` for each argument.

At the end, ``docs/numpy.md``'s coverage table is compared with the registry.
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from ad_transform import MissingRule, gradient
from ad_transform.testing import check_gradient, check_vjp

# ------------------------------------------------------------------------------------
# The table
# ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    op: str  # the rule exercised, as named in the registry ("sin", "linalg.norm", "x.sum()")
    fn: Callable  # a module-level function (or a factory's closure) calling it
    shapes: tuple = ()  # one per argument: a shape, or None for a Python float
    low: float = -2.0  # inputs are drawn uniformly from [low, high]
    high: float = 2.0
    make: Callable | None = None  # rng -> args, for inputs that need structure
    note: str = ""  # tells entries of one op apart in test ids

    @property
    def id(self) -> str:
        shapes = "_".join("s" if s is None else "x".join(map(str, s)) or "0d"
                          for s in self.shapes)
        return "-".join(p for p in (self.op, self.note, shapes) if p)

    def args(self, rng):
        if self.make is not None:
            return tuple(self.make(rng))
        return tuple(float(rng.uniform(self.low, self.high)) if s is None
                     else rng.uniform(self.low, self.high, size=s) for s in self.shapes)


TABLE: list[Case] = []


def case(op, fn, *shapes, low=-2.0, high=2.0, make=None, note=""):
    TABLE.append(Case(op, fn, shapes, low, high, make, note))


# -- elementwise binary ------------------------------------------------------------------
def f_add(x, y):
    return np.add(x, y)


def f_subtract(x, y):
    return np.subtract(x, y)


def f_multiply(x, y):
    return np.multiply(x, y)


def f_divide(x, y):
    return np.divide(x, y)


def f_true_divide(x, y):
    return np.true_divide(x, y)


def f_power(x, y):
    return np.power(x, y)


def f_maximum(x, y):
    return np.maximum(x, y)


def f_minimum(x, y):
    return np.minimum(x, y)


def f_fmax(x, y):
    return np.fmax(x, y)


def f_fmin(x, y):
    return np.fmin(x, y)


def f_arctan2(x, y):
    return np.arctan2(x, y)


def f_hypot(x, y):
    return np.hypot(x, y)


def f_logaddexp(x, y):
    return np.logaddexp(x, y)


def f_op_add(x, y):
    return x + y


def f_op_sub(x, y):
    return x - y


def f_op_mul(x, y):
    return x * y


def f_op_div(x, y):
    return x / y


def f_op_pow(x, y):
    return x ** y


BROADCAST = [((3, 4), (3, 4)), ((3, 1), (1, 4)), (None, (3,)), ((2, 3), None), ((4,), (2, 4)),
             ((), (3,))]
for _op, _fn, _lo, _hi in [("add", f_add, -2, 2), ("subtract", f_subtract, -2, 2),
                           ("multiply", f_multiply, -2, 2), ("divide", f_divide, 0.5, 2),
                           ("true_divide", f_true_divide, 0.5, 2), ("power", f_power, 0.5, 2),
                           ("maximum", f_maximum, -2, 2), ("minimum", f_minimum, -2, 2),
                           ("fmax", f_fmax, -2, 2), ("fmin", f_fmin, -2, 2),
                           ("arctan2", f_arctan2, -2, 2), ("hypot", f_hypot, -2, 2),
                           ("logaddexp", f_logaddexp, -2, 2),
                           ("+", f_op_add, -2, 2), ("-", f_op_sub, -2, 2), ("*", f_op_mul, -2, 2),
                           ("/", f_op_div, 0.5, 2), ("**", f_op_pow, 0.5, 2)]:
    for _a, _b in BROADCAST:
        case(_op, _fn, _a, _b, low=_lo, high=_hi)


def power_const(p):
    def f(x):
        return np.power(x, p)
    return f


def pow_op_const(p):
    def f(x):
        return x ** p
    return f


def rpow_const(x):
    return 2.0 ** x


for _p in (2, 3, 0.5, -1.5):
    case("power", power_const(_p), (3, 4), low=0.5, high=2.0, note=f"p{_p}")
    case("**", pow_op_const(_p), (3, 4), low=0.5, high=2.0, note=f"p{_p}")
case("**", rpow_const, (5,), note="const-base")
case("power", power_const(3), (5,), low=-2.0, high=-0.5, note="negative-base")
case("**", pow_op_const(2), (5,), low=-2.0, high=2.0, note="negative-base")


# -- elementwise unary -------------------------------------------------------------------
def unary(name):
    fn = getattr(np, name)

    def f(x):
        return fn(x)
    f.__qualname__ = f"unary({name!r})"
    return f


UNARY = {  # name: input range
    "negative": (-2, 2), "positive": (-2, 2), "square": (-2, 2), "sqrt": (0.2, 3),
    "cbrt": (0.2, 3), "reciprocal": (0.5, 2), "exp": (-2, 2), "exp2": (-2, 2),
    "expm1": (-2, 2), "log": (0.2, 3), "log2": (0.2, 3), "log10": (0.2, 3),
    "log1p": (-0.5, 2), "sin": (-3, 3), "cos": (-3, 3), "tan": (-1.2, 1.2),
    "arcsin": (-0.9, 0.9), "arccos": (-0.9, 0.9), "arctan": (-3, 3), "sinh": (-2, 2),
    "cosh": (-2, 2), "tanh": (-2, 2), "arcsinh": (-3, 3), "arccosh": (1.2, 3),
    "arctanh": (-0.9, 0.9), "abs": (-2, 2), "absolute": (-2, 2), "sign": (-2, 2),
    "sinc": (-2, 2), "floor": (-3, 3), "ceil": (-3, 3), "round": (-3, 3),
}
for _name, (_lo, _hi) in UNARY.items():
    case(_name, unary(_name), (3, 4), low=_lo, high=_hi)
    case(_name, unary(_name), None, low=_lo, high=_hi)
case("cbrt", unary("cbrt"), (6,), low=-3, high=-0.2, note="negative")
case("sinc", unary("sinc"), make=lambda rng: (np.array([0.0, 0.5, -1.3, 2.2]),), note="at0")


def f_neg_op(x):
    return -x


def f_abs_builtin(x):
    return abs(x)


case("-x", f_neg_op, (3, 4))
case("abs()", f_abs_builtin, (3, 4))


def f_clip_const(x):
    return np.clip(x, -0.5, 0.7)


def f_clip_arrays(x, lo, hi):
    return np.clip(x, lo, hi)


def f_clip_low(x):
    return np.clip(x, -0.5, None)


def f_clip_high(x):
    return np.clip(x, None, 0.5)


def f_clip_method(x):
    return x.clip(-0.5, 0.5)


case("clip", f_clip_const, (3, 4), note="both")
case("clip", f_clip_low, (3, 4), note="low")
case("clip", f_clip_high, (3, 4), note="high")
case("clip", f_clip_method, (3, 4), note="method")
case("clip", f_clip_arrays, make=lambda rng: (rng.uniform(-2, 2, (3, 4)),
                                              rng.uniform(-1.5, -0.5, (3, 1)),
                                              rng.uniform(0.5, 1.5, (4,))), note="arrays")


def f_where(x, y):
    return np.where(x > 0.0, x * x, y)


def f_where_scalar(x):
    return np.where(x > 0.0, np.sin(x), 0.5)


case("where", f_where, (3, 4), (3, 4))
case("where", f_where, (3, 1), (4,))
case("where", f_where_scalar, (3, 4))


# -- reductions ------------------------------------------------------------------------
def reduction(name, **kw):
    fn = getattr(np, name) if "." not in name else np.linalg.norm

    def f(x):
        return fn(x, **kw)
    f.__qualname__ = f"reduction({name!r}, {kw})"
    return f


AXES = [dict(), dict(axis=0), dict(axis=1), dict(axis=-1), dict(axis=(0, 1)),
        dict(axis=None, keepdims=True), dict(axis=0, keepdims=True), dict(axis=1, keepdims=True),
        dict(axis=(0, 2), keepdims=True)]


def _kw_note(kw):
    return ",".join(f"{k}={v}" for k, v in kw.items()).replace(" ", "")


for _name in ("sum", "mean", "prod", "max", "min", "amax", "amin", "var", "std"):
    lo, hi = (0.5, 1.5) if _name == "prod" else (-2, 2)
    for _kw in AXES:
        shape = (2, 3, 4) if _kw.get("axis") == (0, 2) else (3, 4)
        case(_name, reduction(_name, **_kw), shape, low=lo, high=hi, note=_kw_note(_kw))
    case(_name, reduction(_name), (5,), low=lo, high=hi)


def with_zeros(rng):
    x = rng.uniform(-2, 2, (3, 4))
    x[0, 1] = x[2, 1] = x[2, 3] = 0.0  # one zero in a row, two in a column
    return (x,)


for _kw in (dict(), dict(axis=0), dict(axis=1, keepdims=True)):
    case("prod", reduction("prod", **_kw), make=with_zeros, note="zeros," + _kw_note(_kw))
for _name in ("var", "std"):
    case(_name, reduction(_name, ddof=1), (3, 4), note="ddof=1")
    case(_name, reduction(_name, axis=0, ddof=1, keepdims=True), (3, 4),
         note="axis=0,ddof=1,keepdims")
for _name in ("cumsum", "cumprod"):
    lo, hi = (0.5, 1.5) if _name == "cumprod" else (-2, 2)
    for _kw in (dict(), dict(axis=0), dict(axis=1), dict(axis=-1)):
        case(_name, reduction(_name, **_kw), (3, 4), low=lo, high=hi, note=_kw_note(_kw))
    case(_name, reduction(_name), (5,), low=lo, high=hi)
for _kw in (dict(), dict(ord="fro"), dict(axis=1), dict(axis=0, keepdims=True),
            dict(ord=2, axis=1), dict(keepdims=True)):  # Frobenius, and vector norms along axes
    case("linalg.norm", reduction("linalg.norm", **_kw), (3, 4), note=_kw_note(_kw))
for _kw in (dict(), dict(ord=2), dict(keepdims=True)):
    case("linalg.norm", reduction("linalg.norm", **_kw), (5,), note=_kw_note(_kw))


# -- linear algebra ----------------------------------------------------------------------
def f_dot(a, b):
    return np.dot(a, b)


def f_matmul(a, b):
    return np.matmul(a, b)


def f_at(a, b):
    return a @ b


def f_vdot(a, b):
    return np.vdot(a, b)


def f_inner(a, b):
    return np.inner(a, b)


def f_outer(a, b):
    return np.outer(a, b)


def f_method_dot(a, b):
    return a.dot(b)


MATMUL_SHAPES = [((3,), (3,)), ((3, 4), (4,)), ((4,), (4, 3)), ((3, 4), (4, 2)),
                 ((2, 3, 4), (2, 4, 5)), ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)),
                 ((2, 3, 4), (4,)), ((4,), (2, 4, 5))]
for _a, _b in MATMUL_SHAPES:
    case("matmul", f_matmul, _a, _b)
    case("@", f_at, _a, _b)
    if len(_a) <= 2 and len(_b) <= 2:
        case("dot", f_dot, _a, _b)
        case("x.dot()", f_method_dot, _a, _b)
case("dot", f_dot, None, (3,))
case("dot", f_dot, (3, 2), None)
for _a, _b in [((3,), (3,)), ((2, 3), (2, 3))]:
    case("vdot", f_vdot, _a, _b)
for _a, _b in [((3,), (3,)), ((2, 3), (4, 3)), ((3,), (2, 3)), ((2, 2, 3), (3,))]:
    case("inner", f_inner, _a, _b)
for _a, _b in [((3,), (4,)), ((2, 2), (3,))]:
    case("outer", f_outer, _a, _b)


def tensordot(axes):
    def f(a, b):
        return np.tensordot(a, b, axes=axes)
    f.__qualname__ = f"tensordot({axes})"
    return f


case("tensordot", tensordot(2), (2, 3, 4), (3, 4, 5), note="axes=2")
case("tensordot", tensordot(1), (3, 4), (4, 2), note="axes=1")
case("tensordot", tensordot(0), (2,), (3,), note="axes=0")
case("tensordot", tensordot(([1, 0], [0, 1])), (3, 4, 2), (4, 3), note="pairs")
case("tensordot", tensordot((2, 0)), (3, 4, 5), (5, 2), note="ints")


def einsum(spec):
    def f(*ops):
        return np.einsum(spec, *ops)
    f.__qualname__ = f"einsum({spec!r})"
    return f


def einsum1(spec):
    def f(a):
        return np.einsum(spec, a)
    f.__qualname__ = f"einsum({spec!r})"
    return f


def einsum2(spec):
    def f(a, b):
        return np.einsum(spec, a, b)
    f.__qualname__ = f"einsum({spec!r})"
    return f


def einsum3(spec):
    def f(a, b, c):
        return np.einsum(spec, a, b, c)
    f.__qualname__ = f"einsum({spec!r})"
    return f


case("einsum", einsum2("ij,jk->ik"), (3, 4), (4, 2), note="ij,jk->ik")
case("einsum", einsum2("ij,jk"), (3, 4), (4, 2), note="implicit")
case("einsum", einsum2("ij,ij->"), (3, 4), (3, 4), note="ij,ij->")
case("einsum", einsum2("i,j->ij"), (3,), (4,), note="i,j->ij")
case("einsum", einsum2("bij,bjk->bik"), (2, 3, 4), (2, 4, 5), note="batched")
case("einsum", einsum2("ij,j->i"), (3, 4), (4,), note="ij,j->i")
case("einsum", einsum1("ij->j"), (3, 4), note="ij->j")
case("einsum", einsum1("ij->ji"), (3, 4), note="ij->ji")
case("einsum", einsum3("ij,jk,kl->il"), (2, 3), (3, 4), (4, 2), note="chain")
case("einsum", einsum2("ij,k->ik"), (3, 4), (2,), note="sum-out")


def f_trace(x):
    return np.trace(x)


def f_trace_offset(x):
    return np.trace(x, 1) + np.trace(x, offset=-1)


def f_trace_method(x):
    return x.trace()


def diag(k):
    def f(x):
        return np.diag(x, k)
    f.__qualname__ = f"diag(k={k})"
    return f


case("trace", f_trace, (3, 3))
case("trace", f_trace_offset, (3, 4), note="offset")
case("trace", f_trace, (3, 4))
case("x.trace()", f_trace_method, (4, 4))
for _k in (0, 1, -1):
    case("diag", diag(_k), (4,), note=f"k={_k}")
    case("diag", diag(_k), (4, 4), note=f"k={_k}")
case("diag", diag(0), (3, 5), note="rect")


def f_inv(a):
    return np.linalg.inv(a)


def f_solve(a, b):
    return np.linalg.solve(a, b)


def f_det(a):
    return np.linalg.det(a)


def f_slogdet(a):
    sign, logdet = np.linalg.slogdet(a)
    return sign * logdet


def f_slogdet_logabs(a):
    return np.linalg.slogdet(a)[1]


def well_conditioned(n, *extra):
    def make(rng):
        a = rng.uniform(-1, 1, (n, n)) + n * np.eye(n)
        return (a,) + tuple(rng.uniform(-1, 1, s) for s in extra)
    return make


def negative_det(rng):
    a = rng.uniform(-0.3, 0.3, (3, 3)) + np.diag([3.0, -3.0, 3.0])
    return (a,)


case("linalg.inv", f_inv, make=well_conditioned(3), note="3x3")
case("linalg.solve", f_solve, make=well_conditioned(3, (3,)), note="vector-b")
case("linalg.solve", f_solve, make=well_conditioned(3, (3, 2)), note="matrix-b")
case("linalg.det", f_det, make=well_conditioned(3), note="3x3")
case("linalg.det", f_det, make=negative_det, note="negative")
case("linalg.slogdet", f_slogdet, make=well_conditioned(3), note="sign*logdet")
case("linalg.slogdet", f_slogdet_logabs, make=negative_det, note="negative")


# -- shapes ------------------------------------------------------------------------------
def f_reshape(x):
    return np.reshape(x, (4, 3))


def f_reshape_neg(x):
    return np.reshape(x, (2, -1))


def f_reshape_method(x):
    return x.reshape(2, 6)


def f_reshape_method_tuple(x):
    return x.reshape((6, -1))


def f_transpose(x):
    return np.transpose(x)


def f_transpose_axes(x):
    return np.transpose(x, (1, 2, 0))


def f_transpose_neg_axes(x):
    return np.transpose(x, (-1, 0, 1))


def f_transpose_method(x):
    return x.transpose(2, 0, 1)


def f_T(x):
    return x.T


def f_swapaxes(x):
    return np.swapaxes(x, 0, 2)


def f_swapaxes_method(x):
    return x.swapaxes(0, 1)


def f_moveaxis(x):
    return np.moveaxis(x, 0, -1)


def f_expand_dims(x):
    return np.expand_dims(x, 1)


def f_expand_dims_tuple(x):
    return np.expand_dims(x, (0, 2))


def f_squeeze(x):
    return np.squeeze(x)


def f_squeeze_axis(x):
    return np.squeeze(x, axis=0)


def f_squeeze_method(x):
    return x.squeeze()


def f_ravel(x):
    return np.ravel(x)


def f_ravel_method(x):
    return x.ravel()


def f_flatten(x):
    return x.flatten()


def f_concatenate(x, y):
    return np.concatenate([x, y])


def f_concatenate_axis1(x, y, z):
    return np.concatenate((x, y, z), axis=1)


def f_stack(x, y):
    return np.stack([x, y])


def f_stack_axis1(x, y):
    return np.stack([x, y], axis=1)


def f_hstack(x, y):
    return np.hstack([x, y])


def f_vstack(x, y):
    return np.vstack([x, y])


def f_broadcast_to(x):
    return np.broadcast_to(x, (2, 3, 4))


def tile(reps):
    def f(x):
        return np.tile(x, reps)
    f.__qualname__ = f"tile({reps})"
    return f


def repeat(repeats, axis=None):
    def f(x):
        return np.repeat(x, repeats, axis=axis)
    f.__qualname__ = f"repeat({repeats}, axis={axis})"
    return f


def f_repeat_method(x):
    return x.repeat(2, axis=1)


def flip(axis):
    def f(x):
        return np.flip(x, axis)
    f.__qualname__ = f"flip({axis})"
    return f


def roll(shift, axis=None):
    def f(x):
        return np.roll(x, shift, axis=axis)
    f.__qualname__ = f"roll({shift}, axis={axis})"
    return f


case("reshape", f_reshape, (3, 4))
case("reshape", f_reshape_neg, (3, 4), note="-1")
case("x.reshape()", f_reshape_method, (3, 4))
case("x.reshape()", f_reshape_method_tuple, (3, 4), note="tuple")
case("transpose", f_transpose, (3, 4))
case("transpose", f_transpose_axes, (2, 3, 4), note="axes")
case("transpose", f_transpose_neg_axes, (2, 3, 4), note="negative axes")
case("x.transpose()", f_transpose_method, (2, 3, 4))
case("x.T", f_T, (3, 4))
case("x.T", f_T, (2, 3, 4))
case("swapaxes", f_swapaxes, (2, 3, 4))
case("x.swapaxes()", f_swapaxes_method, (3, 4))
case("moveaxis", f_moveaxis, (2, 3, 4))
case("expand_dims", f_expand_dims, (3, 4))
case("expand_dims", f_expand_dims_tuple, (3, 4), note="tuple")
case("squeeze", f_squeeze, (1, 3, 1))
case("squeeze", f_squeeze_axis, (1, 3, 1), note="axis")
case("x.squeeze()", f_squeeze_method, (3, 1))
case("ravel", f_ravel, (3, 4))
case("x.ravel()", f_ravel_method, (3, 4))
case("x.flatten()", f_flatten, (3, 4))
case("concatenate", f_concatenate, (2, 3), (4, 3))
case("concatenate", f_concatenate, (3,), (2,))
case("concatenate", f_concatenate_axis1, (2, 3), (2, 1), (2, 2), note="axis1")
case("stack", f_stack, (3, 4), (3, 4))
case("stack", f_stack_axis1, (3,), (3,), note="axis1")
case("hstack", f_hstack, (3,), (2,))
case("hstack", f_hstack, (2, 3), (2, 1))
case("vstack", f_vstack, (3,), (3,))
case("vstack", f_vstack, (2, 3), (1, 3))
case("broadcast_to", f_broadcast_to, (3, 1))
case("broadcast_to", f_broadcast_to, (4,))
case("tile", tile(2), (3,), note="2")
case("tile", tile((2, 3)), (2, 2), note="2x3")
case("tile", tile((2, 1, 2)), (3,), note="3d")
case("repeat", repeat(2), (2, 3), note="flat")
case("repeat", repeat(3, axis=0), (2, 3), note="axis0")
case("repeat", repeat([1, 0, 2], axis=1), (2, 3), note="array")
case("x.repeat()", f_repeat_method, (2, 3))
case("flip", flip(None), (3, 4), note="all")
case("flip", flip(0), (3, 4), note="axis0")
case("flip", flip((0, 1)), (3, 4), note="axes")
case("roll", roll(1), (3, 4), note="flat")
case("roll", roll(-2, axis=1), (3, 4), note="axis1")
case("roll", roll((1, 2), axis=(0, 1)), (3, 4), note="tuple")


def take(indices, axis=None):
    def f(x):
        return np.take(x, indices, axis=axis)
    f.__qualname__ = f"take({indices}, axis={axis})"
    return f


case("take", take([0, 5, 5, 2]), (2, 3), note="flat")
case("take", take([1, 1, 0], axis=1), (2, 3), note="axis1")


# -- indexing reads ------------------------------------------------------------------------
IDX = np.array([2, 0, 2])  # repeated index: adjoints add up
MASK = np.array([True, False, True, True])


def idx_int(x):
    return x[1]


def idx_neg(x):
    return x[-1]


def idx_int2(x):
    return x[1, -2]


def idx_slice(x):
    return x[1:3]


def idx_step(x):
    return x[::2]


def idx_neg_step(x):
    return x[::-1]


def idx_slice2(x):
    return x[1:, ::-2]


def idx_none(x):
    return x[None]


def idx_none_mid(x):
    return x[:, None, 1]


def idx_ellipsis(x):
    return x[..., 0]


def idx_ellipsis_slice(x):
    return x[..., 1:]


def idx_array(x):
    return x[IDX]


def idx_list(x):
    return x[[0, 1, 1]]


def idx_array_2d(x):
    return x[IDX, np.array([0, 1, 3])]


def idx_array_col(x):
    return x[:, IDX]


def idx_mask(x):
    return x[MASK]


def idx_mask_rows(x):
    return x[:, MASK]


def idx_self_mask(x):
    return x[x > 0.0]


def idx_loop(x):
    total = 0.0
    for row in x:
        total = total + row * row[0]
    return total


def idx_loop_scalar(x):
    total = 0.0
    for v in x:
        total = total + np.sin(v) * v
    return total


def idx_getitem_after_op(x):
    return (x * x)[:, 2]


for _label, _fn, _shape in [("int", idx_int, (3, 4)), ("negative int", idx_neg, (3, 4)),
                            ("int,int", idx_int2, (3, 4)), ("slice", idx_slice, (4, 3)),
                            ("step", idx_step, (5,)), ("negative step", idx_neg_step, (5,)),
                            ("slices", idx_slice2, (3, 4)), ("None", idx_none, (3,)),
                            (":,None,int", idx_none_mid, (3, 4)),
                            ("...,int", idx_ellipsis, (2, 3, 4)),
                            ("...,slice", idx_ellipsis_slice, (2, 3)),
                            ("int array", idx_array, (4, 2)), ("list", idx_list, (3,)),
                            ("two arrays", idx_array_2d, (3, 4)),
                            (":,array", idx_array_col, (2, 3)),
                            ("mask", idx_mask, (4,)), (":,mask", idx_mask_rows, (2, 4)),
                            ("mask from x", idx_self_mask, (3, 4)),
                            ("for row", idx_loop, (3, 4)), ("for item", idx_loop_scalar, (5,)),
                            ("of result", idx_getitem_after_op, (2, 3))]:
    case("getitem", _fn, _shape, note=_label)


# -- methods, attributes -------------------------------------------------------------------
def m_sum(x):
    return x.sum()


def m_sum_axis(x):
    return x.sum(axis=0, keepdims=True)


def m_mean(x):
    return x.mean()


def m_mean_axis(x):
    return x.mean(axis=1)


def m_max(x):
    return x.max()


def m_max_axis(x):
    return x.max(axis=0)


def m_min(x):
    return x.min(axis=1, keepdims=True)


def m_prod(x):
    return x.prod(axis=0)


def m_var(x):
    return x.var()


def m_std(x):
    return x.std(axis=0)


def m_cumsum(x):
    return x.cumsum(axis=1)


def m_copy(x):
    return x.copy() * 2.0


def m_astype(x):
    return x.astype(np.float64)


def attrs(x):
    # shape, ndim, size and len() are constants of the path
    n, m = x.shape
    return x * (x.ndim + x.size / len(x)) + x[n - 1, m - 1]


case("x.sum()", m_sum, (3, 4))
case("x.sum()", m_sum_axis, (3, 4), note="axis=0,keepdims")
case("x.mean()", m_mean, (3, 4))
case("x.mean()", m_mean_axis, (3, 4), note="axis=1")
case("x.max()", m_max, (3, 4))
case("x.max()", m_max_axis, (3, 4), note="axis=0")
case("x.min()", m_min, (3, 4), note="axis=1,keepdims")
case("x.prod()", m_prod, (3, 4), low=0.5, high=1.5)
case("x.var()", m_var, (3, 4))
case("x.std()", m_std, (3, 4))
case("x.cumsum()", m_cumsum, (3, 4))
case("x.copy()", m_copy, (3, 4))
case("x.astype()", m_astype, (3, 4))
case("x.shape", attrs, (3, 4), note="shape,ndim,size,len")


# -- constants ---------------------------------------------------------------------------
def c_zeros(x):
    return x * np.zeros(3) + x


def c_ones(x):
    return np.ones((2, 3)) * x


def c_full(x):
    return np.full((2, 3), 1.5) * x


def c_full_active(x):
    return np.full((2, 3), x)  # the fill value is differentiated


def c_eye(x):
    return np.eye(3) @ x + np.eye(3, 4)[:, 1:] * x


def c_arange(x):
    return x * np.arange(3) + np.arange(1.0, 2.0, 0.25)[1:] * x ** 2


def c_linspace(x):
    return np.linspace(0.0, 1.0, 3) * x ** 2


def c_zeros_like(x):
    return np.zeros_like(x) + x


def c_ones_like(x):
    return np.ones_like(x) * x - np.full_like(x, 2.0) * x


def c_array(x, y):
    return np.array([x, y * x, 2.0])


def c_array_2d(x, y):
    return np.array([[x, y], [y * y, 1.0]])


def c_array_rows(x):
    return np.array([x, 2.0 * x])


def c_asarray(x):
    return np.asarray(x) * np.array(x)


case("zeros", c_zeros, (3,))
case("ones", c_ones, (3,))
case("full", c_full, (2, 3))
case("full", c_full_active, None, note="active fill")
case("eye", c_eye, (3, 3))
case("arange", c_arange, (3,))
case("linspace", c_linspace, (3,))
case("zeros_like", c_zeros_like, (3, 4))
case("ones_like", c_ones_like, (3, 4), note="and full_like")
case("array", c_array, None, None, note="scalars")
case("array", c_array_2d, None, None, note="nested")
case("array", c_array_rows, (3,), note="rows")
case("asarray", c_asarray, (3,))


# -- writes into arrays the function created ---------------------------------------------------
def w_setitem(x):
    y = np.zeros(4)
    y[1] = x * 2.0
    y[-1] = np.sin(x)
    return y


def w_iadd(x):
    y = np.ones((2, 3))
    y[0] += x
    y[1, 2] += x[0] * x[1]
    return y


def w_slice(x):
    y = np.zeros(6)
    y[1:4] = x
    y[::2] = y[::2] * 3.0
    return y


def w_copy_overwrite(x):
    y = x.copy()
    y[0] = 1.0
    y[1:] += y[:-1] * x[1:]
    return y


def w_mask(x):
    y = x * 1.0
    y[x < 0.0] = 0.0
    return y


case("setitem", w_setitem, None, note="y[i]=v")
case("setitem", w_iadd, (3,), note="y[i]+=v")
case("setitem", w_slice, (3,), note="y[a:b]=v")
case("setitem", w_copy_overwrite, (4,), note="copy")
case("setitem", w_mask, (5,), note="mask")


# ------------------------------------------------------------------------------------
# The checks
# ------------------------------------------------------------------------------------

def _rng(c: Case):
    return np.random.default_rng(zlib.crc32(c.id.encode()))


def weighted_sum(fn, u, n):
    """``np.sum(u * fn(...))`` as a function of ``n`` named parameters."""
    if n == 1:
        def f(a):
            return np.sum(u * fn(a))
    elif n == 2:
        def f(a, b):
            return np.sum(u * fn(a, b))
    elif n == 3:
        def f(a, b, c):
            return np.sum(u * fn(a, b, c))
    else:
        raise ValueError(n)
    f.__qualname__ = f"sum(u * {fn.__qualname__})"
    return f


def _prepare(c: Case):
    rng = _rng(c)
    args = c.args(rng)
    out = c.fn(*args)
    u = rng.standard_normal(np.shape(out))
    return args, weighted_sum(c.fn, float(u) if np.ndim(u) == 0 else u, len(args)), rng


IDS = [c.id for c in TABLE]
assert len(set(IDS)) == len(IDS), sorted(i for i in IDS if IDS.count(i) > 1)


@pytest.mark.parametrize("c", TABLE, ids=IDS)
def test_gradient_matches_finite_differences(c: Case):
    args, f, _ = _prepare(c)
    wrt = tuple(range(len(args)))
    check_gradient(f, *args, wrt=wrt)
    grad_fn = gradient(f, wrt)
    first = grad_fn(*args)
    info = grad_fn.cache_info()
    second = grad_fn(*args)
    after = grad_fn.cache_info()
    assert after.misses == info.misses and after.hits == info.hits + 1, \
        "the second call did not run the cached derivative"
    for a, g1, g2 in zip(args, first, second):
        assert type(g1) is type(g2)
        np.testing.assert_array_equal(g1, g2)
        if isinstance(a, np.ndarray):
            assert g1.shape == a.shape and g1.dtype == a.dtype
            assert g1 is not g2, "two calls returned the same gradient array"
        else:
            assert type(g1) is float


@pytest.mark.parametrize("c", TABLE, ids=IDS)
def test_dot_product(c: Case):
    rng = _rng(c)
    args = c.args(rng)
    check_vjp(c.fn, *args, wrt=tuple(range(len(args))), rng=rng)


F32 = [c for c in TABLE if c.make is None and all(s is not None for s in c.shapes)]


@pytest.mark.parametrize("c", F32, ids=[c.id for c in F32])
def test_float32_arguments(c: Case):
    # float32 all the way through (u too): the gradient is float32, of the argument's
    # shape, and agrees with the float64 gradient at the same points
    rng = _rng(c)
    args = tuple(a.astype(np.float32) for a in c.args(rng))
    u = rng.standard_normal(np.shape(c.fn(*args))).astype(np.float32)
    f = weighted_sum(c.fn, u, len(args))
    wrt = tuple(range(len(args)))
    g32 = gradient(f, wrt)(*args)
    g64 = gradient(f, wrt)(*(a.astype(np.float64) for a in args))
    for a, x, y in zip(args, g32, g64):
        assert isinstance(x, np.ndarray) and x.dtype == np.float32 and x.shape == a.shape
        np.testing.assert_allclose(x, y, rtol=2e-3, atol=1e-4 * max(1.0, np.abs(y).max()))


ZERO = ["sign", "floor", "ceil", "round"]


def zero_sum(name):
    fn = getattr(np, name)

    def f(x):
        return np.sum(fn(x))
    return f


def zero_times_x(name):
    fn = getattr(np, name)

    def f(x):
        return np.sum(fn(x) * x)
    return f


def f_fmax_fmin(x, y):
    return np.sum(np.fmax(x, y) + np.fmin(x, y) ** 2)


def test_fmax_fmin_ignore_nan():
    # the operand that is not NaN is the result, and gets the derivative
    x = np.array([1.0, np.nan, 3.0, 0.5])
    y = np.array([np.nan, 2.0, 1.0, 0.7])
    gx, gy = gradient(f_fmax_fmin, (0, 1))(x, y)
    np.testing.assert_array_equal(gx, [3.0, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(gy, [0.0, 5.0, 2.0, 1.0])


def f_spectral_norm(x):
    return np.linalg.norm(x, 2)


def f_sum_where(x):
    return np.sum(x, where=np.array([True, False, True]))


def f_max_initial(x):
    return np.max(x, initial=5.0)


def f_var_correction(x):
    return np.var(x, correction=1)


def _line_of(fn, snippet):
    import inspect
    lines, start = inspect.getsourcelines(fn)
    return next(start + k for k, line in enumerate(lines) if snippet in line)


@pytest.mark.parametrize("fn,option", [(f_sum_where, "where="), (f_max_initial, "initial="),
                                       (f_var_correction, "correction=")])
def test_reduction_options_without_rules_raise(fn, option):
    # options the rules do not cover are refused at the user's line, never ignored
    with pytest.raises(MissingRule, match="no derivative rule") as info:
        gradient(fn)(np.ones(3))
    assert option in str(info.value)
    assert f"{__file__}:{_line_of(fn, 'return')}:" in str(info.value)


def test_spectral_norm_is_reported_unsupported():
    # ord=2 of a matrix (its largest singular value) has no rule: it raises, never guesses
    with pytest.raises(MissingRule, match="ord=2") as info:
        gradient(f_spectral_norm)(np.arange(6.0).reshape(2, 3))
    assert f"{__file__}:{_line_of(f_spectral_norm, 'return')}:" in str(info.value)


@pytest.mark.parametrize("name", ZERO)
def test_zero_derivative(name):
    x = np.array([-1.7, -0.2, 0.0, 0.3, 2.6])
    np.testing.assert_array_equal(gradient(zero_sum(name))(x), np.zeros(5))
    np.testing.assert_array_equal(gradient(zero_times_x(name))(x), getattr(np, name)(x))


# -- every op the brief names is in the table and in the registry ----------------------------

REQUIRED = {
    "elementwise": "add subtract multiply divide true_divide power negative positive square "
                   "sqrt cbrt reciprocal exp exp2 expm1 log log2 log10 log1p sin cos tan arcsin "
                   "arccos arctan arctan2 sinh cosh tanh arcsinh arccosh arctanh abs absolute "
                   "sign maximum minimum fmax fmin clip where hypot logaddexp sinc floor ceil "
                   "round",
    "reductions": "sum mean prod max min amax amin var std cumsum cumprod linalg.norm",
    "linalg": "dot matmul vdot inner outer tensordot einsum trace diag linalg.inv linalg.solve "
              "linalg.det linalg.slogdet",
    "shapes": "reshape transpose swapaxes moveaxis expand_dims squeeze ravel concatenate stack "
              "hstack vstack broadcast_to tile repeat flip roll",
    "constants": "zeros ones full eye arange linspace zeros_like ones_like array",
}
REQUIRED_OTHER = ["@", "getitem", "setitem", "x.sum()", "x.mean()", "x.max()", "x.reshape()",
                  "x.dot()", "x.T", "x.shape", "x.flatten()"]


def _np_function(name):
    obj = np
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize("group", sorted(REQUIRED))
def test_required_rules_are_registered_and_tested(group):
    from ad_transform.rules import REGISTRY, lookup, lookup_lowering

    tested = {c.op for c in TABLE}
    missing_tests = [n for n in REQUIRED[group].split() if n not in tested]
    assert not missing_tests, f"no TABLE entry for {missing_tests}"
    unregistered = [n for n in REQUIRED[group].split()
                    if lookup(_np_function(n)) is None and lookup_lowering(_np_function(n)) is None]
    assert not unregistered, f"np.{unregistered} are not in the registry"
    no_rule = []
    for n in REQUIRED[group].split():
        prim = lookup(_np_function(n))
        if prim is not None and not (prim.differentiable or prim.zero):
            no_rule.append(n)
    assert not no_rule, f"np.{no_rule} are registered without a derivative rule"
    assert REGISTRY  # the registry is populated by importing ad_transform.rules


def test_other_required_entries_are_tested():
    tested = {c.op for c in TABLE}
    assert not [n for n in REQUIRED_OTHER if n not in tested]


# -- the coverage table in docs/numpy.md --------------------------------------------------------

DOC = Path(__file__).resolve().parent.parent / "docs" / "numpy.md"


def test_docs_coverage_table_matches_registry():
    from ad_transform._coverage import END, START, numpy_coverage_table

    text = DOC.read_text()
    found = re.search(re.escape(START) + r"\n(.*?)" + re.escape(END), text, re.S)
    assert found, f"{DOC} has no {START} ... {END} block"
    assert found.group(1).strip() == numpy_coverage_table().strip(), (
        f"the coverage table in {DOC} disagrees with the rule registry; regenerate it with\n"
        "    python -m ad_transform._coverage --write")


# -- options and forms whose rules failed in the reverse pass (issue 6, item 4) --------------

A33 = np.array([[2.0, -1.0, 0.5], [0.3, 1.5, -2.0], [1.0, 0.7, 3.0]])


def f_sum_initial(x):
    return np.sum(x, initial=1.0) * np.sum(x * x, axis=0, initial=-2.0)[0]


def f_einsum_diag(a):
    return np.einsum("ii", a) + np.sum(np.einsum("ii->i", a) ** 2)


def f_einsum_repeated_with_other(a, v):
    return np.einsum("ii,i->", a, v) + np.sum(np.einsum("iji->j", a[:, :2, None] * a[:, None, :]))


def f_einsum_ellipsis(x, y):
    return np.sum(np.einsum("...i,...i->...", x, y) ** 2) + np.sum(np.einsum("i...->...", x))


def f_dot_3d(x, y):
    return np.sum(np.sin(np.dot(x, y))) + np.sum(np.dot(x, y[0, :, 0]) ** 2)


def f_trace_axes(x):
    return np.sum(np.trace(x, axis1=1, axis2=2) ** 2) + np.sum(np.trace(x, 1, 0, 2) * 3.0)


def f_norm_ords(x):
    return (np.linalg.norm(x, ord=1) + np.linalg.norm(x, ord=np.inf) + np.linalg.norm(x, -np.inf)
            + np.linalg.norm(x, ord=3) + np.linalg.norm(x, ord=0.5))


def f_norm_ords_axis(x):
    return (np.sum(np.linalg.norm(x, ord=1, axis=0)) + np.sum(np.linalg.norm(x, ord=np.inf, axis=1))
            + np.sum(np.linalg.norm(x, ord=3, axis=1, keepdims=True) * x))


def f_norm_nuc(a):
    return np.linalg.norm(a, ord="nuc") + np.linalg.norm(a, "fro")


@pytest.mark.parametrize("fn,args", [
    (f_sum_initial, (np.array([[0.5, -1.2], [2.0, 0.3]]),)),
    (f_einsum_diag, (A33,)),
    (f_einsum_repeated_with_other, (A33, np.array([0.4, -1.0, 2.0]))),
    (f_einsum_ellipsis, (np.arange(6.0).reshape(2, 3) / 5 - 0.3, np.linspace(-1, 1, 6).reshape(2, 3))),
    (f_dot_3d, (np.linspace(-1, 1, 12).reshape(2, 3, 2), np.linspace(0, 2, 12).reshape(3, 2, 2))),
    (f_trace_axes, (np.linspace(-1, 2, 24).reshape(2, 3, 4),)),
    (f_norm_ords, (np.array([0.5, -2.0, 1.2, -0.1]),)),
    (f_norm_ords_axis, (np.array([[0.5, -2.0, 1.2], [-0.3, 0.8, 1.9]]),)),
    (f_norm_nuc, (A33,)),
], ids=lambda v: getattr(v, "__name__", ""))
def test_rules_for_options_that_used_to_fail(fn, args):
    wrt = tuple(range(len(args)))
    check_gradient(fn, *args, wrt=wrt)
    check_vjp(fn, *args, wrt=wrt)


def f_matrix_norm_1(a):
    return np.linalg.norm(a, ord=1)


def test_matrix_norm_without_rule_says_what_to_write():
    with pytest.raises(MissingRule, match=r"np.max\(np.sum\(np.abs\(A\), axis=0\)\)") as info:
        gradient(f_matrix_norm_1)(A33)
    assert f"{__file__}:{_line_of(f_matrix_norm_1, 'return')}:" in str(info.value)


def _broken(x):
    return x * 2.0


def _broken_rule(g, ans, x):
    raise TypeError("a rule's internal failure")


from ad_transform.rules.core import defprim, defvjp  # noqa: E402

defvjp(defprim("test_broken", _broken, ("call", "_broken"), register=_broken), _broken_rule)


def f_calls_broken(x):
    y = x + 1.0
    return _broken(y)


def test_a_failing_rule_becomes_a_located_missing_rule():
    # structural: any non-ADError exception in a rule is a MissingRule at the user's line
    with pytest.raises(MissingRule) as info:
        gradient(f_calls_broken)(1.5)
    msg = str(info.value)
    assert "_broken" in msg and "TypeError" in msg
    assert f"{__file__}:{_line_of(f_calls_broken, 'return _broken')}:" in msg
    assert isinstance(info.value.__cause__, TypeError)


# -- semantics: np.sort routes the gradient through its permutation (issue 6) ------------------

def f_sort_last(x):
    return np.sort(x)


def f_sort_axis0(x):
    return np.sort(x, axis=0)


def f_sort_flat(x):
    return np.sort(x, axis=None)


@pytest.mark.parametrize("fn", [f_sort_last, f_sort_axis0, f_sort_flat], ids=lambda f: f.__name__)
def test_sort_gradient_goes_through_the_permutation(fn):
    x = np.array([[3.0, 1.0, 2.0], [0.5, -1.0, 4.0]])
    check_vjp(fn, x)
    check_vjp(fn, x[0])
    check_gradient(lambda_free_sort_sum, x[0])


def lambda_free_sort_sum(x):
    return np.sum(np.sort(x) * np.array([1.0, 2.0, 3.0]))
