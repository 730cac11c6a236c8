"""Kinks, ties and the ends of domains: every row of docs/kinks.md.

Where the function is differentiable from both sides (or a tie of two
operands, where the symmetric difference quotient is the convention) the
gradient is compared with central finite differences, which *are* symmetric
differences.  Otherwise it is compared with the convention derived from a
difference quotient: ties of k operands share the derivative along "all tied
operands together" evenly; an infinite one-sided derivative is ``inf``.
Every point is reached twice: lowered there, and on a path compiled at a
smooth point and cached (the generated code itself must handle the kink).
"""
import math
import warnings

import numpy as np
import pytest

from ad_transform import gradient
from ad_transform.testing import numerical_gradient


def at(f, args, wrt, warm=None):
    """``gradient(f, wrt)`` at ``args``: freshly lowered there, and on the path compiled at
    ``warm`` (a smooth point on the same path); both must agree."""
    wrt_t = wrt if isinstance(wrt, tuple) else (wrt,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's own, for inf/nan
        g = gradient(f, wrt_t)
        g.cache_clear()
        fresh = g(*args)
        g.cache_clear()
        if warm is not None:
            g(*warm)
            cached = g(*args)
            assert g.cache_info().misses == 1, "the kink point took another path"
            for a, b in zip(fresh, cached):
                np.testing.assert_array_equal(a, b)
    return fresh if isinstance(wrt, tuple) else fresh[0]


def fd(f, args, wrt):
    return tuple(numerical_gradient(f, list(args), i) for i in wrt)


def matches_fd(f, args, wrt, warm=None):
    got = at(f, args, wrt, warm)
    want = fd(f, args, wrt)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    return got


def dot_check(f, x, got, rng):
    """<grad, v> against the central difference of f along v (arrays)."""
    v = rng.standard_normal(np.shape(x))
    h = 1e-6
    want = (f(x + h * v) - f(x - h * v)) / (2 * h)
    np.testing.assert_allclose(np.sum(got * v), want, rtol=1e-6, atol=1e-6)


# -- ties of max / min -------------------------------------------------------------------

def bmax(x, y):
    return max(x, y)


def bmin(x, y):
    return min(x, y)


def max_plus_min(x, y):
    return max(x, y) + min(x, y)


def max_of_list(x, y):
    return max([x, y], default=0.0) * 2.0


def max_by_formula(x, y):
    return (x + y + abs(x - y)) / 2.0  # max without max: the abs convention gives the same


@pytest.mark.parametrize("f", [bmax, bmin, max_plus_min, max_of_list, max_by_formula])
def test_builtin_max_min_tie_of_two_is_the_symmetric_difference(f):
    got = matches_fd(f, (1.25, 1.25), (0, 1), warm=(1.25, 1.0) if f is not bmin else (1.0, 1.25))
    assert got[0] == got[1]
    if f is max_plus_min:
        assert got == (1.0, 1.0)


def max3(x, y, z):
    return max(x, y, z)


def min4(x, y, z, w):
    return min(x, y, z, w)


@pytest.mark.parametrize("f, args, tied", [
    (max3, (0.5, 0.5, 0.5), (0, 1, 2)),
    (max3, (0.5, 0.25, 0.5), (0, 2)),
    (min4, (0.5, -0.75, -0.75, -0.75), (1, 2, 3)),
])
def test_builtin_max_min_ties_of_k_share_evenly(f, args, tied):
    n = len(args)
    got = at(f, args, tuple(range(n)))
    # the derivative along "every tied operand together" is a symmetric difference
    h = 1e-6
    along = [h if i in tied else 0.0 for i in range(n)]
    total = (f(*(a + d for a, d in zip(args, along)))
             - f(*(a - d for a, d in zip(args, along)))) / (2 * h)
    for i in range(n):
        expect = total / len(tied) if i in tied else 0.0
        assert got[i] == pytest.approx(expect, abs=1e-9)
    assert sum(got) == pytest.approx(total)


def max_same_operand(x):
    return max(x, x) + min(x, x, x)


def test_max_of_one_value_with_itself():
    assert matches_fd(max_same_operand, (0.3,), (0,)) == (2.0,)


def max_with_key(x, y):
    return max(x, y, key=abs)


def test_max_with_key_at_a_tie_is_the_selection_python_makes():
    # keys tie (|x| == |y|): Python returns the first item, and so does the derivative
    assert at(max_with_key, (-0.5, 0.5), (0, 1)) == (1.0, 0.0)
    assert max_with_key(-0.5, 0.5) == -0.5
    assert matches_fd(max_with_key, (-0.5, 0.25), (0, 1)) == (1.0, 0.0)


def np_maximum(x, y):
    return np.sum(np.maximum(x, y) * np.array([1.0, 2.0, 3.0, 4.0]))


def np_minimum(x, y):
    return np.sum(np.minimum(x, y) ** 2)


def np_fmax(x, y):
    return np.sum(np.fmax(x, y) * np.fmin(x, y))


def relu(x, y):
    return np.sum(np.maximum(x, 0.0) * y)


@pytest.mark.parametrize("f", [np_maximum, np_minimum, np_fmax, relu])
def test_np_maximum_minimum_ties_split_elementwise(f):
    rng = np.random.default_rng(0)
    x = np.array([0.5, -0.25, 0.0, 1.5])
    y = np.array([0.5, 0.75, 0.0, 1.5])  # ties at 0, 2, 3
    warm = (np.array([0.6, -0.25, 0.1, 1.4]), np.array([0.5, 0.75, 0.0, 1.5]))
    gx, gy = matches_fd(f, (x, y), (0, 1), warm=warm if f is np_maximum else None)
    dot_check(lambda v: f(v, y), x, gx, rng)
    dot_check(lambda v: f(x, v), y, gy, rng)
    if f is np_maximum:
        np.testing.assert_array_equal(gx, [0.5, 0.0, 1.5, 2.0])


def np_max_all(x):
    return np.max(x) * 3.0


def np_min_axis(x):
    return np.sum(np.min(x, axis=1) * np.array([1.0, 2.0]))


def amax_keepdims(x):
    return np.sum(np.amax(x, axis=0, keepdims=True) ** 2)


def method_max(x):
    return x.max() + x.min()


@pytest.mark.parametrize("f, x", [
    (np_max_all, np.array([1.0, 2.0, 2.0, -1.0, 2.0])),
    (np_min_axis, np.array([[0.5, 0.5, 1.0], [-1.0, 0.0, -1.0]])),
    (amax_keepdims, np.array([[0.5, 1.0, 2.0], [0.5, 1.0, 3.0], [0.5, -1.0, 3.0]])),
    (method_max, np.array([[1.0, 1.0], [0.0, 0.0]])),
])
def test_np_max_min_reductions_share_ties_evenly(f, x):
    g = at(f, (x,), 0)
    h = 1e-6
    # within each group of tied entries: equal shares, adding up to the symmetric
    # difference along the group moved together (which is how the test finds the groups)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = 1.0
        if f(x + h * e) == f(x - h * e):
            assert g[idx] == 0.0
    tied = [g != 0]
    total = (f(x + h * tied[0]) - f(x - h * tied[0])) / (2 * h)
    assert np.sum(g) == pytest.approx(total)
    if f is np_max_all:
        np.testing.assert_allclose(g, [0.0, 1.0, 1.0, 0.0, 1.0])


# -- np.clip -------------------------------------------------------------------------------

def clip3(x, lo, hi):
    return np.sum(np.clip(x, lo, hi) * np.array([1.0, 2.0, 3.0, 4.0]))


def clip_method(x, lo, hi):
    return np.sum(x.clip(lo, hi) ** 2)


def clip_kw(x, lo, hi):
    return np.sum(np.clip(x, lo, None) + np.clip(x, None, hi))


@pytest.mark.parametrize("f", [clip3, clip_method, clip_kw])
def test_np_clip_at_the_bounds_shares_with_the_bound(f):
    x = np.array([0.0, 0.5, 1.0, 2.0])  # at lo, inside, at hi, above
    lo, hi = 0.0, 1.0
    gx, glo, ghi = matches_fd(f, (x, lo, hi), (0, 1, 2))
    if f is clip3:
        np.testing.assert_allclose(gx, [0.5, 2.0, 1.5, 0.0])
        assert (glo, ghi) == (0.5, 1.5 + 4.0)
    dot_check(lambda v: f(v, lo, hi), x, gx, np.random.default_rng(2))


def clip_scalar(x):
    return float(np.clip(x, -1.0, 1.0)) * 2.0


def test_np_clip_on_a_cached_path_at_a_bound():
    assert matches_fd(clip_scalar, (1.0,), (0,), warm=(0.5,)) == (1.0,)


# -- abs and hypot: 0 at the kink ----------------------------------------------------------

def babs(x):
    return abs(x) + math.fabs(x) * 2.0


def npabs(x):
    return np.sum(np.abs(x))


def hypot2(x, y):
    return math.hypot(x, y)


def hypot1(x):
    return math.hypot(x) - abs(x) * 0.5


def nphypot(x, y):
    return np.sum(np.hypot(x, y))


def test_abs_at_zero_is_zero():
    assert matches_fd(babs, (0.0,), (0,), warm=(0.5,)) == (0.0,)
    assert matches_fd(babs, (-0.0,), (0,)) == (0.0,)
    g = matches_fd(npabs, (np.array([0.0, -1.0, 2.0]),), (0,))[0]
    np.testing.assert_array_equal(g, [0.0, -1.0, 1.0])


def test_hypot_at_the_origin_is_zero_as_abs():
    assert matches_fd(hypot2, (0.0, 0.0), (0, 1), warm=(0.5, 0.25)) == (0.0, 0.0)
    assert matches_fd(hypot1, (0.0,), (0,), warm=(1.0,)) == (0.0,)
    gx, gy = matches_fd(nphypot, (np.array([0.0, 3.0]), np.array([0.0, 4.0])), (0, 1))
    np.testing.assert_allclose(gx, [0.0, 0.6])


# -- infinite derivatives: IEEE inf / nan, never a bare exception ------------------------

def msqrt(x):
    return math.sqrt(x)


def neg_msqrt(x):
    return -math.sqrt(x) * 3.0


def sqrt_times(x, y):
    return math.sqrt(x) * y


def half_power(x):
    return x ** 0.5


def mpow_half(x):
    return math.pow(x, 0.5)


def npsqrt(x):
    return np.sum(np.sqrt(x))


def masin(x):
    return math.asin(x)


def macos(x):
    return math.acos(x)


def macosh(x):
    return math.acosh(x)


def _one_sided_grows(f, x, side):
    """The one-sided difference quotient at ``x`` grows without bound (so inf is the
    derivative's value there, not a convention picked at random)."""
    q = [abs(f(x + side * h) - f(x)) / h for h in (1e-2, 1e-4, 1e-6, 1e-8)]
    assert all(b > 5 * a for a, b in zip(q, q[1:])), q


@pytest.mark.parametrize("f, x, side, sign", [
    (msqrt, 0.0, 1, 1), (neg_msqrt, 0.0, 1, -1), (half_power, 0.0, 1, 1),
    (mpow_half, 0.0, 1, 1), (masin, 1.0, -1, 1), (masin, -1.0, 1, 1), (macos, 1.0, -1, -1),
    (macosh, 1.0, 1, 1),
])
def test_infinite_derivatives_are_inf(f, x, side, sign):
    _one_sided_grows(f, x, side)
    warm = x + side * 0.25
    assert at(f, (x,), 0, warm=(warm,)) == sign * math.inf


def test_inf_times_a_zero_adjoint_is_nan_not_an_exception():
    gx, gy = at(sqrt_times, (0.0, 0.0), (0, 1), warm=(4.0, 1.0))
    assert math.isnan(gx) and gy == 0.0
    assert at(sqrt_times, (0.0, -2.0), (0, 1), warm=(4.0, 1.0)) == (-math.inf, 0.0)


def test_np_sqrt_at_zero_is_numpys_inf():
    g = at(npsqrt, (np.array([0.0, 4.0]),), 0, warm=(np.array([1.0, 4.0]),))
    np.testing.assert_array_equal(g, [np.inf, 0.25])


def matan2(y, x):
    return math.atan2(y, x)


def test_atan2_at_the_origin_is_nan():
    # no limit exists there: atan2 takes every value near the origin
    h = 1e-12
    assert matan2(h * math.sin(1.0), h * math.cos(1.0)) == pytest.approx(1.0)
    assert matan2(h * math.sin(2.0), h * math.cos(2.0)) == pytest.approx(2.0)
    gy, gx = at(matan2, (0.0, 0.0), (0, 1), warm=(0.5, 1.0))
    assert math.isnan(gy) and math.isnan(gx)


# -- powers at 0 -----------------------------------------------------------------------------

def cube(x):
    return x ** 3


def first_power(x):
    return x ** 1 + pow(x, 2)


def zeroth_power(x):
    return x ** 0 + math.pow(x, 0) + x ** 0.0


def xy(x, y):
    return x ** y


def mpow_xy(x, y):
    return math.pow(x, y)


def int_base_power(x, n):
    return x ** n


@pytest.mark.parametrize("f", [cube, first_power, zeroth_power])
def test_integer_powers_at_zero_match_the_symmetric_difference(f):
    matches_fd(f, (0.0,), (0,), warm=(0.5,))


@pytest.mark.parametrize("f", [xy, mpow_xy])
def test_both_operands_of_a_power_at_zero(f):
    assert matches_fd(f, (0.0, 2.0), (0, 1), warm=(0.5, 2.0)) == (0.0, 0.0)
    assert matches_fd(f, (0.0, 1.0), (0,), warm=(0.5, 1.0)) == (1.0,)
    assert matches_fd(f, (0.0, 3.0), (0, 1), warm=(0.5, 3.0)) == (0.0, 0.0)
    # 0 ** y for y < 1 has an infinite derivative in x; in y it is constant (0) for y > 0
    _one_sided_grows(lambda v: f(v, 0.5), 0.0, 1)
    assert at(f, (0.0, 0.5), (0, 1), warm=(0.5, 0.5)) == (math.inf, 0.0)
    # y == 0: x ** 0 is the constant 1 in x (also at 0); from y > 0 it jumps to 0 in y
    assert at(f, (0.0, 0.0), 0, warm=(0.5, 0.0)) == 0.0
    assert matches_fd(f, (0.5, 0.0), (0, 1)) is not None


def test_a_traced_integer_exponent_at_zero():
    assert at(int_base_power, (0.0, 0), 0, warm=(0.5, 0)) == 0.0
    assert matches_fd(int_base_power, (0.0, 1), (0,)) == (1.0,)
    assert matches_fd(int_base_power, (0.0, 3), (0,)) == (0.0,)


def np_power(x, y):
    return np.sum(np.power(x, y))


def test_np_power_with_zero_exponents_at_zero():
    x = np.array([0.0, 0.0, 2.0, 0.0])
    y = np.array([0.0, 2.0, 0.0, 1.0])
    gx, gy = at(np_power, (x, y), (0, 1), warm=(np.array([0.5, 0.5, 2.0, 0.5]), y))
    with np.errstate(divide="ignore", invalid="ignore"):  # 0 ** (0 - h): the primal's own inf
        fx, fy = (numerical_gradient(np_power, [x, y], i) for i in (0, 1))
    np.testing.assert_allclose(gx, fx, atol=1e-6)
    np.testing.assert_allclose(gy[1:], fy[1:], atol=1e-6)
    assert gy[0] == 0.0  # 0 ** y at y == 0: the convention log(0) -> 0 (a jump from y > 0)


# -- the remaining rows ------------------------------------------------------------------------

def norm_inf(x):
    return np.linalg.norm(x, ord=np.inf)


def test_norm_inf_shares_ties_of_the_largest_magnitude():
    x = np.array([2.0, -2.0, 1.0])
    g = at(norm_inf, (x,), 0, warm=(np.array([2.5, -2.0, 1.0]),))
    np.testing.assert_allclose(g, [0.5, -0.5, 0.0])
    h, out = 1e-6, np.sign(x) * (np.abs(x) == 2.0)  # the tied entries, moved outward together
    assert np.sum(g * out) == pytest.approx((norm_inf(x + h * out) - norm_inf(x - h * out)) / (2 * h))


def copysign_(x, y):
    return math.copysign(x, y) * 3.0


def test_copysign_at_zero_is_zero_as_fabs():
    assert matches_fd(copysign_, (0.0, -1.0), (0,), warm=(0.5, -1.0)) == (0.0,)


def norm2(x):
    return np.linalg.norm(x)


def test_norm_at_zero_is_numpys_nan():
    g = at(norm2, (np.zeros(3),), 0, warm=(np.ones(3),))
    assert np.isnan(g).all()  # 0 / 0, as NumPy computes it (docs/kinks.md)


def max_of_many(x):
    return max([x * (i % 7) for i in range(120)])


def test_max_of_many_operands_stays_linear():
    g = gradient(max_of_many)
    got = g(0.5)
    # 0.5 * 6 is attained by the 17 items with i % 7 == 6; together they move as 6 * x
    assert got == pytest.approx(numerical_gradient(max_of_many, [0.5], 0)) == pytest.approx(6.0)
    # one n-ary line for the max and one for counting its ties; each operand's adjoint
    # is short (120 adjoints naming all 120 operands would be ~150,000 characters)
    assert len(g.source(0.5)) < 40_000
