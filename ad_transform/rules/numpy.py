"""Rules for NumPy: one primitive and its derivative per line where it fits.

Adjoints may come out broadcast; the reverse pass sums them back to their
input's shape (``_rt.fit_shape``) only where the shapes differ, so rules are
written as if shapes matched.  Helpers that would otherwise be repeated NumPy
boilerplate live in :mod:`.numpy_kernels` and print as ``_rt.name``.
"""
from __future__ import annotations

import operator

import numpy as np

from .. import runtime
from ..ir import Var
from . import numpy_kernels
from .builtins import getitem
from .elementwise import _LN2, define
from .core import (ATTRS, METHODS, call_prim, defprim, deflowering, defvjp, defvjp_variadic,
                   defzero, lookup, refuse, value_of)

__all__ = []


def n(name, hint=None):
    return call_prim(np, name, "np", hint=hint)


def rt(name, hint=None):
    """A primitive printed as ``_rt.name(...)``: a kernel of :mod:`.numpy_kernels` (which
    runtime re-exports) or a helper of :mod:`ad_transform.runtime`."""
    impl = getattr(numpy_kernels, name, None) or getattr(runtime, name)
    return call_prim(runtime, name, "_rt", hint=hint, impl=impl, register=False)


def linalg(name):
    fn = getattr(np.linalg, name)
    return defprim(f"np.linalg.{name}", fn, ("call", "np", "linalg", name), hint=name, root=np,
                   register=fn)


def shape(x):
    return np.shape(value_of(x))


def ndim(x):
    return np.ndim(value_of(x))


fit_shape = rt("fit_shape", "g")
minmax_vjp = rt("minmax_vjp", "g")
getitem_vjp = rt("getitem_vjp", "g")
# adjoint code only: they write into their first operand (see reverse._accumulate)
add_at = rt("add_at", "g")
add_at_repeated = rt("add_at_repeated", "g")
setitem_vjp = rt("setitem_vjp", "g")


def _keeps_derivative(src, dst) -> bool:
    """A value converted to ``dst``'s dtype keeps its derivative, unless the conversion
    truncates floats to integers or makes booleans (piecewise constant)."""
    sk, dk = np.result_type(value_of(src)).kind, np.result_type(value_of(dst)).kind
    return dk in "fc" or (dk in "iu" and sk in "iu")


def _setitem_value(g, ans, x, idx, v):
    if not _keeps_derivative(v, ans):
        return None
    iv = value_of(idx)
    if not isinstance(idx, Var) and (numpy_kernels._basic(iv) or numpy_kernels.written(shape(ans), iv).all()):
        return getitem(g, idx)  # every value written lands: no index repeats
    return setitem_vjp(g, idx)


setitem = defvjp(rt("setitem", "upd"),
                 lambda g, ans, x, idx, v: setitem(g, idx, 0.0),
                 None,
                 _setitem_value)
index_tuple = rt("index_tuple", "idx")  # no derivative: indices are piecewise constant
(flat_item, block, tensordot_vjp, einsum_vjp, trace_vjp, nuc_vjp, cumsum_vjp, prod_vjp,
 tile_vjp, repeat_vjp, diag_vjp) = (rt(_name, "g") for _name in (
    "flat_item", "block", "tensordot_vjp", "einsum_vjp", "trace_vjp", "nuc_vjp", "cumsum_vjp",
    "prod_vjp", "tile_vjp", "repeat_vjp", "diag_vjp"))
(as_grad, log_or_zero, tie_share, clip_share, div0, pow_grad) = (rt(_name, _out) for _name, _out in (
    ("as_grad", "grad"), ("log_or_zero", "log"), ("tie_share", "share"),
    ("clip_share", "share"), ("div0", "ratio"), ("pow_grad", "dpow")))

def _scatter(g, x, idx):
    """``g`` scattered into zeros shaped like ``x`` (its shape and dtype are known now,
    so the adjoint does not keep ``x`` itself alive)."""
    gv, xv = value_of(g), value_of(x)
    dtype = np.result_type(gv, np.float64) if np.ndim(gv) else np.result_type(xv, np.float64)
    return getitem_vjp(g, shape(x), np.dtype(dtype).name, idx)


defvjp(getitem, lambda g, ans, x, idx: _scatter(g, x, idx))

# -- elementwise ----------------------------------------------------------------------

add = defvjp(n("add"), lambda g, ans, a, b: g, lambda g, ans, a, b: g)
subtract = defvjp(n("subtract", "sub"), lambda g, ans, a, b: g, lambda g, ans, a, b: -g)
multiply = defvjp(n("multiply", "mul"), lambda g, ans, a, b: g * b, lambda g, ans, a, b: g * a)
divide = defvjp(n("divide", "div"), lambda g, ans, a, b: g / b, lambda g, ans, a, b: -g * ans / b)


def _power_base(g, ans, a, b):
    """``b * a ** (b - 1)``, 0 where ``b == 0`` (also at ``a == 0``: docs/kinks.md)."""
    if isinstance(b, Var):
        return g * pow_grad(a, b)
    bv = np.asarray(b)
    if np.all(bv == 0):
        return None
    if np.all(bv == 2):
        return (g * 2.0) * a  # folds to one multiply when g is a constant
    if np.any(bv == 0):
        return g * pow_grad(a, b)
    return g * (b * power(a, b - 1))


power = defvjp(n("power", "pow"), _power_base, lambda g, ans, a, b: g * (ans * log_or_zero(a)))
negative = defvjp(n("negative", "neg"), lambda g, ans, x: -g)
positive = defvjp(n("positive", "pos"), lambda g, ans, x: g)
square = defvjp(n("square"), lambda g, ans, x: g * (2.0 * x))
sign = defzero(n("sign"))
# the formulas NumPy shares with math (exp, sqrt, sin, arcsin, absolute, ...):
# rules/elementwise.py
globals().update(define(lambda name: n(name, "abs" if name == "absolute" else None), "np",
                        sign=sign))
cbrt = defvjp(n("cbrt"), lambda g, ans, x: g / (3.0 * ans * ans))
reciprocal = defvjp(n("reciprocal"), lambda g, ans, x: -g * (ans * ans))
exp2 = defvjp(n("exp2"), lambda g, ans, x: g * (ans * _LN2))
log = defvjp(n("log"), lambda g, ans, x: g / x)
# the operand that is the result gets g; at a tie (a == b) each gets g / 2 (docs/kinks.md).
# fmax/fmin ignore a NaN operand: the other one is the result and gets the derivative.
_share_a = lambda g, ans, a, b: g * tie_share(ans, a, b)  # noqa: E731
_share_b = lambda g, ans, a, b: g * tie_share(ans, b, a)  # noqa: E731
maximum = defvjp(n("maximum"), _share_a, _share_b)
minimum = defvjp(n("minimum"), _share_a, _share_b)
fmax = defvjp(n("fmax"), _share_a, _share_b)
fmin = defvjp(n("fmin"), _share_a, _share_b)
logical_and = defzero(n("logical_and"))
where = defvjp(n("where"), None,
               lambda g, ans, c, a, b: where(c, g, 0.0),
               lambda g, ans, c, a, b: where(c, 0.0, g))
def _clip_rule(which):
    """``np.clip(x, lo, hi)`` is ``minimum(maximum(x, lo), hi)``, and so is its derivative:
    ``g`` goes to whichever of ``x``, ``lo``, ``hi`` is the result; at a bound ``x`` and the
    bound tie and share it (``_rt.clip_share``; docs/kinks.md).  Either bound may be
    missing, or given by keyword."""
    def rule(g, ans, x, lo=None, hi=None, **kw):
        lo = lo if lo is not None else kw.get("min", kw.get("a_min"))
        hi = hi if hi is not None else kw.get("max", kw.get("a_max"))
        if lo is None and hi is None:
            return g if which == 0 else None
        return g * clip_share(x, lo, hi, which)
    return rule


clip = defvjp(n("clip"), _clip_rule(0), _clip_rule(1), _clip_rule(2))
where.elementwise = clip.elementwise = True
# 0 at the origin, as abs at 0 (docs/kinks.md)
hypot = defvjp(n("hypot"), lambda g, ans, a, b: g * div0(a, ans),
               lambda g, ans, a, b: g * div0(b, ans))
logaddexp = defvjp(n("logaddexp"),
                   lambda g, ans, a, b: g * exp(a - ans),
                   lambda g, ans, a, b: g * exp(b - ans))
sinc = defvjp(n("sinc"),  # (Var == 0 would compare identities: use the primitive)
              lambda g, ans, x: g * where(equal(x, 0.0), 0.0,
                                          (cos(np.pi * x) - ans) / where(equal(x, 0.0), 1.0, x)))
for _name in ("floor", "ceil", "round", "around", "rint", "trunc", "fix", "isnan", "isfinite",
              "isinf", "greater", "less", "equal", "not_equal", "greater_equal", "less_equal",
              "argmax", "argmin", "argsort", "nonzero", "count_nonzero", "logical_or",
              "logical_not"):
    defzero(n(_name))
sort_vjp = rt("sort_vjp", "g")
sort = defvjp(n("sort"),  # a permutation: the gradient goes back through it
              lambda g, ans, x, axis=-1, kind=None, order=None, **kw:
              refuse("np.sort(..., order=) has no derivative rule") if order is not None
              else sort_vjp(g, x, axis))
equal, isnan = lookup(np.equal), lookup(np.isnan)
logical_or, logical_not = lookup(np.logical_or), lookup(np.logical_not)

# -- reductions -----------------------------------------------------------------------


def _reduce_count(x, axis):
    s = shape(x)
    if axis is None:
        return float(np.prod(s))
    axes = (axis,) if np.ndim(axis) == 0 else tuple(axis)
    return float(np.prod([s[a] for a in axes]))


def _expand(g, x, axis, keepdims):
    """The adjoint of a reduction, with the reduced axes back as length-1 axes.

    It is not broadcast to ``x``'s shape: NumPy broadcasting spreads it in the
    next elementwise operation for free, and the reverse pass broadcasts it
    up only where a consumer needs the full shape.
    """
    if axis is None or keepdims:
        return g  # already broadcasts against x
    axes = (axis,) if np.ndim(axis) == 0 else tuple(axis)
    return expand_dims(g, tuple(a % ndim(x) for a in axes) if len(axes) > 1 else axes[0] % ndim(x))


def _plain(name, out, kw, allowed=()):
    """Reduction rules cover ``axis``, ``dtype``, ``keepdims`` and ``ddof`` (and ``allowed``);
    refuse the rest (``where=``, ``initial=``, ``out=``, ``correction=``) instead of
    ignoring it."""
    extra = [k for k, v in kw.items() if v is not None and k not in allowed]
    extra += ["out"] if out is not None else []
    if extra:
        refuse(f"np.{name}(..., {'=, '.join(extra)}=) has no derivative rule; leave "
               f"{'it' if len(extra) == 1 else 'them'} out (e.g. select with np.where first, "
               "combine with the initial value after)")


def _sum_rule(g, ans, x, axis=None, dtype=None, out=None, keepdims=False, **kw):
    _plain("sum", out, kw, allowed=("initial",))  # initial= adds a constant
    return _expand(g, x, axis, keepdims)


def _mean_rule(g, ans, x, axis=None, dtype=None, out=None, keepdims=False, **kw):
    _plain("mean", out, kw)
    return _expand(g / _reduce_count(x, axis), x, axis, keepdims)


def _var_rule(g, ans, x, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
    _plain("var", out, kw)
    centered = x - mean(x, axis=axis, keepdims=True)
    scale = 2.0 / (_reduce_count(x, axis) - ddof)
    return _expand(g, x, axis, keepdims) * (scale * centered)


def _std_rule(g, ans, x, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
    _plain("std", out, kw)
    return _var_rule(g / (2.0 * ans), None, x, axis, dtype, out, ddof, keepdims)


def _minmax_rule(g, ans, x, axis=None, out=None, keepdims=False, **kw):
    _plain("max/min", out, kw)
    return minmax_vjp(g, ans, x, axis, keepdims)


def _prod_rule(g, ans, x, axis=None, dtype=None, out=None, keepdims=False, **kw):
    _plain("prod", out, kw)
    return prod_vjp(g, x, axis, keepdims)  # products of the others: exact where x has zeros


sum_ = defvjp(n("sum"), _sum_rule)
# ``x.sum(...)``: what adjoint code emits to sum broadcast axes (cheaper to call than np.sum)
sum_method = defvjp(defprim("sum", lambda x, **kw: x.sum(**kw), ("method", "sum"), hint="sum"),
                    _sum_rule)
mean = defvjp(n("mean"), _mean_rule)
var = defvjp(n("var"), _var_rule)
std = defvjp(n("std"), _std_rule)
prod = defvjp(n("prod"), _prod_rule)
amax, amin = defvjp(n("max"), _minmax_rule), defvjp(n("min"), _minmax_rule)
defvjp(n("amax"), _minmax_rule)
defvjp(n("amin"), _minmax_rule)
cumsum = defvjp(n("cumsum"), lambda g, ans, x, axis=None, **kw: cumsum_vjp(g, shape(x), axis))
cumprod = defvjp(n("cumprod"),
                 lambda g, ans, x, axis=None, **kw: cumsum_vjp(g * ans, shape(x), axis) / x)


_MATRIX_NORMS = {1: "np.max(np.sum(np.abs(A), axis=0))", -1: "np.min(np.sum(np.abs(A), axis=0))",
                 np.inf: "np.max(np.sum(np.abs(A), axis=1))",
                 -np.inf: "np.min(np.sum(np.abs(A), axis=1))"}


def _norm_rule(g, ans, x, ord=None, axis=None, keepdims=False):
    """Vector norms of every order (``ord=inf``/``-inf``: the entries of largest/smallest
    magnitude share ``g``, as ties of ``np.max`` do; ``ord=0`` counts: no derivative),
    and the matrix norms ``None``/``'fro'`` and ``'nuc'``."""
    matrix = (axis is None and ndim(x) == 2 and ord is not None) or np.ndim(axis) == 1
    if matrix and ord == "nuc" and axis is None:
        return g * nuc_vjp(x)
    if matrix and ord not in (None, "fro"):
        hint = _MATRIX_NORMS.get(ord)
        refuse(f"np.linalg.norm(A, ord={ord!r}) of a matrix has no derivative rule"
               + (f"; write it as {hint}" if hint else "; use ord='fro' or 'nuc'"))
    if ord == 0:
        return None
    gx = _expand(g, x, axis, keepdims)
    full = ans if keepdims or axis is None else expand_dims(ans, axis)
    if ord in (None, 2, "fro"):
        return gx * x / full
    if ord in (np.inf, -np.inf):
        return minmax_vjp(g, ans, absolute(x), axis, keepdims) * sign(x)
    if ord == 1:
        return gx * sign(x)
    p = float(ord)
    return gx * (sign(x) * power(absolute(x) / full, p - 1.0))


norm = defvjp(linalg("norm"), _norm_rule)

# -- linear algebra ---------------------------------------------------------------------
outer = n("outer")
transpose = n("transpose")
swapaxes = n("swapaxes")
reshape = n("reshape")
expand_dims = n("expand_dims")
ravel = n("ravel")
reshape.layout_view = ravel.layout_view = True


T = defprim("T", lambda x: x.T, ("getattr", "T"), hint="T")
defvjp(T, lambda g, ans, x: T(g))


def _mT(x):
    """The matrix transpose of the last two axes (``x.T`` for a matrix)."""
    return T(x) if ndim(x) == 2 else swapaxes(x, -1, -2)


def _matmul_a(g, ans, a, b):
    if ndim(a) == 1 and ndim(b) == 1:
        return g * b
    if ndim(b) == 1:
        return expand_dims(g, -1) * b
    if ndim(a) == 1:  # b may be a stack of matrices: g is then a stack of vectors
        return _mm(b, g) if ndim(b) == 2 else squeeze(_mm(b, expand_dims(g, -1)), -1)
    return _mm(g, _mT(b))


def _matmul_b(g, ans, a, b):
    if ndim(a) == 1 and ndim(b) == 1:
        return g * a
    if ndim(a) == 1:
        return outer(a, g) if ndim(g) == 1 else expand_dims(a, -1) * expand_dims(g, -2)
    if ndim(b) == 1:
        return _mm(_mT(a), g) if ndim(a) == 2 else sum_(_mT(a) * expand_dims(g, -2), axis=-1)
    return _mm(_mT(a), g)


def _dot_rule(matmul_rule, other):
    """np.dot's rule for one operand: a product with a scalar, else matmul's rule."""
    def rule(g, ans, a, b):
        if ndim(a) == 0 or ndim(b) == 0:
            return g * other(a, b)
        if ndim(a) <= 2 and ndim(b) <= 2:
            return matmul_rule(g, ans, a, b)
        axes = ([-1], [-2 if ndim(b) >= 2 else 0])  # N-D dot is this tensordot
        return tensordot_vjp(g, a, b, axes, 0 if matmul_rule is _matmul_a else 1)
    return rule


_dot_a = _dot_rule(_matmul_a, lambda a, b: b)
_dot_b = _dot_rule(_matmul_b, lambda a, b: a)


def _mm(a, b):
    """``a @ b`` in adjoint code."""
    return matmul_op(a, b)


matmul = defvjp(n("matmul"), _matmul_a, _matmul_b)
matmul_op = defvjp(defprim("matmul", operator.matmul, ("binop", "@"), register=operator.matmul),
                   _matmul_a, _matmul_b)
dot = defvjp(n("dot"), _dot_a, _dot_b)
vdot = defvjp(n("vdot"), lambda g, ans, a, b: g * b, lambda g, ans, a, b: g * a)
inner = defvjp(n("inner"),
               lambda g, ans, a, b: tensordot_vjp(g, a, b, ([-1], [-1]), 0),
               lambda g, ans, a, b: tensordot_vjp(g, a, b, ([-1], [-1]), 1))
defvjp(outer,
       lambda g, ans, a, b: reshape(_mm(g, ravel(b)), shape(a)),
       lambda g, ans, a, b: reshape(_mm(ravel(a), g), shape(b)))
tensordot = defvjp(n("tensordot"),
                   lambda g, ans, a, b, axes=2: tensordot_vjp(g, a, b, axes, 0),
                   lambda g, ans, a, b, axes=2: tensordot_vjp(g, a, b, axes, 1))
einsum = defvjp_variadic(n("einsum"),
                         lambda i, g, ans, spec, *ops: None if i == 0 else
                         einsum_vjp(g, spec, i - 1, *ops))
eye = defzero(n("eye"))
trace = defvjp(n("trace"),
               lambda g, ans, x, offset=0, axis1=0, axis2=1, **kw:
               g * eye(shape(x)[0], shape(x)[1], offset) if ndim(x) == 2 and (axis1, axis2) == (0, 1)
               else trace_vjp(g, shape(x), offset, axis1, axis2))
diag = defvjp(n("diag"), lambda g, ans, x, k=0: diag_vjp(g, shape(x), k))
inv = defvjp(linalg("inv"), lambda g, ans, x: -_mm(_mT(ans), _mm(g, _mT(ans))))


def _solve_a(g, ans, a, b):
    gb = solve(_mT(a), g)
    return -outer(gb, ans) if ndim(ans) == 1 else -_mm(gb, _mT(ans))


solve = defvjp(linalg("solve"), _solve_a, lambda g, ans, a, b: solve(_mT(a), g))


def _per_matrix(g, x):
    """An adjoint with one entry per matrix of the stack ``x``, against the matrices."""
    return g if ndim(x) == 2 else expand_dims(g, (-2, -1))


det = defvjp(linalg("det"), lambda g, ans, x: _per_matrix(g * ans, x) * _mT(inv(x)))
slogdet_logabs = defvjp(rt("logabsdet", "logdet"), lambda g, ans, x: _per_matrix(g, x) * _mT(inv(x)))
slogdet_sign = defzero(rt("slogdet_sign", "sign"))


@deflowering(np.linalg.slogdet)
def _slogdet(x):
    return (slogdet_sign(x), slogdet_logabs(x))


# -- shapes -----------------------------------------------------------------------------
defvjp(reshape, lambda g, ans, x, *a, **k: reshape(g, shape(x)))
defvjp(ravel, lambda g, ans, x, *a, **k: reshape(g, shape(x)))
defvjp(expand_dims, lambda g, ans, x, axis: reshape(g, shape(x)))
squeeze = defvjp(n("squeeze"), lambda g, ans, x, axis=None: reshape(g, shape(x)))
defvjp(transpose, lambda g, ans, x, axes=None: transpose(g) if axes is None
       else transpose(g, tuple(np.argsort([a % ndim(x) for a in axes]))))
defvjp(swapaxes, lambda g, ans, x, a1, a2: swapaxes(g, a1, a2))
moveaxis = defvjp(n("moveaxis"), lambda g, ans, x, src, dst: moveaxis(g, dst, src))
broadcast_to = defvjp(n("broadcast_to"), lambda g, ans, x, shape_: g)
tile = defvjp(n("tile"), lambda g, ans, x, reps: tile_vjp(g, shape(x), reps))
repeat = defvjp(n("repeat"), lambda g, ans, x, repeats, axis=None: repeat_vjp(g, shape(x), repeats, axis))
flip = defvjp(n("flip"), lambda g, ans, x, axis=None: flip(g, axis))
roll = defvjp(n("roll"), lambda g, ans, x, shift, axis=None:
              roll(g, -shift if np.ndim(shift) == 0 else tuple(-s for s in shift), axis))
copy = defvjp(n("copy"), lambda g, ans, x: g)
asarray = defvjp(n("asarray"), lambda g, ans, x, dtype=None: g if _keeps_derivative(x, ans) else None)
pack = defvjp_variadic(rt("pack", "arr"), lambda i, g, ans, *items, shape: flat_item(g, i))


def _block_rule(i, g, ans, *arrays, axis=0):
    sizes = [shape(a)[axis] for a in arrays]
    start = sum(sizes[:i])
    return block(g, axis, start, start + sizes[i])


concatenate_ = defvjp_variadic(rt("concatenate", "cat"), _block_rule)
stack_ = defvjp_variadic(rt("stack", "stacked"), lambda i, g, ans, *arrays, axis=0:
                         take(g, i, axis=axis))
take = n("take")


def _take_rule(g, ans, x, indices, axis=None, **kw):
    if axis is None:
        return reshape(_scatter(g, ravel(x), indices), shape(x))
    idx = (slice(None),) * (axis % ndim(x)) + (indices,)
    return _scatter(g, x, index_tuple(*idx))


defvjp(take, _take_rule)  # without a rule, np.take would silently pass no derivative on


def _to_array(x):
    """A (nested) list or tuple of atoms -> one array atom; anything else unchanged."""
    if not isinstance(x, (list, tuple)):
        return x
    if any(isinstance(i, Var) and ndim(i) for i in _flatten(x)):
        return _stack(list(x))
    items = list(_flatten(x))
    if not any(isinstance(i, Var) for i in items):
        return np.array(x)
    return pack(*items, shape=np.shape(_probe(x)))


def _flatten(x):
    if isinstance(x, (list, tuple)):
        for i in x:
            yield from _flatten(i)
    else:
        yield x


def _probe(x):
    return [_probe(i) for i in x] if isinstance(x, (list, tuple)) else 0.0


@deflowering(np.asarray)
def _asarray(x, dtype=None, **kw):
    if isinstance(x, (list, tuple)):
        out = _to_array(x)
    else:
        out = asarray(x) if isinstance(x, Var) else np.asarray(x)
    if dtype is not None:
        out = asarray(out, dtype=dtype) if isinstance(out, Var) else np.asarray(out, dtype=dtype)
    return out


@deflowering(np.array)
def _array(x, dtype=None, **kw):
    """Like ``np.asarray``, but a new array (unless ``copy=False``), as NumPy makes one:
    a later item write into it must not reach ``x``."""
    return _copied(x, _asarray(x, dtype), kw.get("copy", True))


def _copied(x, out, copy_=True):
    if copy_ and value_of(out) is value_of(x):
        return copy(out) if isinstance(out, Var) else np.array(out)
    return out


def _arrays(seq):
    return [_to_array(a) for a in seq]


@deflowering(np.concatenate)
def _concatenate(seq, axis=0):
    return concatenate_(*_arrays(seq), axis=axis)


@deflowering(np.stack)
def _stack(seq, axis=0):
    return stack_(*_arrays(seq), axis=axis)


@deflowering(np.hstack)
def _hstack(seq):
    arrays = [_atleast(a, 1) for a in _arrays(seq)]
    return concatenate_(*arrays, axis=0 if ndim(arrays[0]) == 1 else 1)


@deflowering(np.vstack)
def _vstack(seq):
    return concatenate_(*[_atleast(a, 2) for a in _arrays(seq)], axis=0)


def _atleast(a, nd):
    s = shape(a)
    if len(s) >= nd:
        return a
    return reshape(a, (1,) * (nd - len(s)) + s)


# -- constants: no derivative flows into these ------------------------------------------
for _name in ("zeros", "ones", "empty", "zeros_like", "ones_like", "empty_like", "arange",
              "linspace", "identity", "shape", "ndim", "size"):
    defzero(n(_name))
zeros_like = lookup(np.zeros_like)  # the zero-derivative primitive registered above
# the fill value is broadcast to the output: the reverse pass sums ``g`` back to its shape
full = defvjp(n("full"), None, lambda g, ans, shape_, fill, **kw: g)
full_like = defvjp(n("full_like"), None, lambda g, ans, x, fill, **kw: g)

# -- methods and attributes of ndarray --------------------------------------------------
for _name, _prim in [("sum", sum_), ("mean", mean), ("var", var), ("std", std), ("prod", prod),
                     ("max", amax), ("min", amin), ("dot", dot), ("cumsum", cumsum),
                     ("cumprod", cumprod), ("ravel", ravel), ("flatten", ravel),
                     ("squeeze", squeeze), ("copy", copy),
                     ("swapaxes", swapaxes), ("trace", trace), ("repeat", repeat)]:
    METHODS[(np.ndarray, _name)] = _prim


def _method_reshape(x, *shape_, **kw):
    return reshape(x, shape_[0] if len(shape_) == 1 else shape_, **kw)


def _method_transpose(x, *axes):
    if not axes:
        return transpose(x)
    return transpose(x, axes[0] if len(axes) == 1 else axes)


def _method_astype(x, dtype, **kw):
    return _copied(x, asarray(x, dtype=dtype), kw.get("copy", True))  # a copy, as in NumPy


def _method_clip(x, lo=None, hi=None, **kw):
    return clip(x, lo, hi, **kw)  # x.clip(lo) may leave out the upper bound; np.clip may not


METHODS[(np.ndarray, "clip")] = _method_clip
METHODS[(np.ndarray, "reshape")] = _method_reshape
METHODS[(np.ndarray, "transpose")] = _method_transpose
METHODS[(np.ndarray, "astype")] = _method_astype
for _name in ("shape", "ndim", "size", "dtype"):
    ATTRS[(np.ndarray, _name)] = (lambda name: lambda x: getattr(value_of(x), name))(_name)
    ATTRS[(np.generic, _name)] = ATTRS[(np.ndarray, _name)]
ATTRS[(np.ndarray, "T")] = T
