"""Merged ifs (ad_transform/branches.py): from a function's third path on, an ``if``
whose branches are simple keeps both in the path, so inputs that decide ifs at random
share one compiled path.  Every gradient is compared with central finite differences
(arrays: also a dot-product check); merges that would be unsound are refused and the
test decided as before, never a wrong gradient.
"""
import itertools
import math
import random
import warnings

import numpy as np
import pytest

from ad_transform import gradient, ir, value_and_gradient
from ad_transform.cache import PathCache
from ad_transform.lower import lower
from ad_transform.reverse import prune, reverse
from ad_transform.testing import numerical_gradient


from test_trie import assert_fd  # scalar gradients against central finite differences


def close(a, b, rel=1e-6, abs_=1e-7):
    return np.allclose(a, b, rtol=rel, atol=abs_)


def signs(x, s0, s1, s2, s3, s4, s5):
    for s in (s0, s1, s2, s3, s4, s5):
        if s * x > 0:
            x = x * 0.9 + math.sin(x) * s
        else:
            x = x * 1.1 - 0.5 * s
    return x


def test_random_signs_share_one_merged_path():
    g = gradient(signs, wrt=(0, 1, 4))
    rng = random.Random(3)
    patterns = list(itertools.product((-1.0, 1.0), repeat=6))
    for _ in range(150):
        bits = rng.choice(patterns)
        args = (0.5 + rng.random(),) + tuple(b * (0.5 + rng.random()) for b in bits)
        got = g(*args)
        for pos, i in enumerate((0, 1, 4)):
            assert_fd(signs, args, got[pos], i)
    info = g.cache_info()
    assert info.misses == PathCache.merge_from and info.currsize == info.misses, info


def test_merged_source_has_both_branches():
    g = gradient(signs)
    for args in [(0.8, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0), (0.8, -1.0, 1.0, 1.0, 1.0, 1.0, 1.0),
                 (0.8, 1.0, -1.0, 1.0, 1.0, 1.0, 1.0)]:
        g(*args)
    src = g.source(0.8, -1.0, -1.0, 1.0, -1.0, 1.0, -1.0)
    assert src.count("(both branches)") == 12  # six ifs, in the primal and in the adjoint
    assert "    if gt:" in src and "    else:" in src
    assert "PathMiss" in src.split("\n")[3]  # the entry guard only: no decision guards
    assert src.count("PathMiss") == 1


def lowered(fn, args, wrt=(0,)):
    prog, values = lower(fn, args, wrt, merge=True)
    full, values = reverse(prog, values, wrt, single=True, with_value=True)
    full = prune(full, values)
    ir.verify(full, values)
    return full


def test_interpreted_merged_program_matches_both_branches():
    full = lowered(signs, (0.8, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0))
    assert sum(e.prim is ir.COND for e in full.eqns) == 12
    text = ir.format_program(full)
    assert "(then taken)" in text and "(else taken)" in text
    rng = random.Random(1)
    for _ in range(20):
        args = (0.5 + rng.random(),) + tuple(rng.choice((-1.0, 1.0)) for _ in range(6))
        value, grad = ir.evaluate(full, *args)
        assert math.isclose(value, signs(*args), rel_tol=1e-12)
        assert_fd(signs, args, grad)


def chain(x, k):
    if k > 2.0:
        y = x * x
    elif k > 0.0:
        y = math.exp(x) * k
    else:
        y = -x
        if x > 1.0:
            y = y * x
    return y * k


def test_elif_chains_and_nested_ifs_merge():
    full = lowered(chain, (0.7, 1.0), (0, 1))
    assert sum(e.prim is ir.COND for e in full.eqns) >= 2
    g = gradient(chain, wrt=(0, 1))
    for args in [(0.7, 3.0), (0.7, 1.0), (0.7, -1.0), (1.5, -2.0), (0.3, 2.5), (1.2, 0.5),
                 (2.0, -0.5)]:
        got = g(*args)
        assert_fd(chain, args, got[0], 0)
        assert_fd(chain, args, got[1], 1)
    assert g.cache_info().misses <= PathCache.merge_from


def guarded_log(x, s):
    if x > 0.0:
        y = math.log(x) * s  # raises on the values of a call that takes the else branch
    else:
        y = x * s
    return y


def test_untaken_branch_that_raises_is_not_merged():
    # no merged if on a call that takes the else branch: log(x) raises there
    assert not any(e.prim is ir.COND for e in lowered(guarded_log, (-0.5, 2.0)).eqns)
    assert any(e.prim is ir.COND for e in lowered(guarded_log, (0.5, 2.0)).eqns)
    g = gradient(guarded_log, wrt=(0, 1))
    for args in [(0.5, 2.0), (-0.5, 2.0), (1.5, -1.0), (-2.0, 0.5), (0.2, 1.0), (-0.1, 3.0)]:
        got = g(*args)
        assert_fd(guarded_log, args, got[0], 0)
        assert_fd(guarded_log, args, got[1], 1)


def unmergeable(x, n):
    if n > 0:
        k = 2  # an int here, a float there: not one signature
    else:
        k = 2.5
    if x > 0.0:
        z = helper(x)  # an inlined helper: decided, not merged
    else:
        z = -x
    if x > 1.0:
        w = x * 3.0  # bound by one branch only
    if x > 0.5:
        v = x * 2.0
    else:
        v = 1.0  # a number in one branch, a traced value in the other: one signature
    return z * k + v


def helper(t):
    return t * t


def test_branches_that_cannot_merge_are_decided():
    full = lowered(unmergeable, (0.7, 1))
    conds = [ir.cond_of(e) for e in full.eqns if e.prim is ir.COND]
    assert [c.line for c in conds] == ["if x > 0.5:"] * len(conds) and conds
    g = gradient(unmergeable)
    for args in [(0.7, 1), (0.7, 0), (-0.3, 1), (1.5, 0), (0.2, 1), (-1.0, 0), (0.6, 5)]:
        assert_fd(unmergeable, args, g(*args))


def arrays(x, w):
    if np.sum(x * w) > 0.0:
        y = np.tanh(x) * w
    else:
        y = x * x - w
    return np.sum(y * y)


def test_array_branches_merge_with_dot_product_check():
    rng = np.random.default_rng(0)
    full = lowered(arrays, (rng.normal(size=4), rng.normal(size=4)), (0, 1))
    assert any(e.prim is ir.COND for e in full.eqns)
    g = gradient(arrays, wrt=(0, 1))
    for _ in range(8):
        x, w = rng.normal(size=4), rng.normal(size=4)
        gx, gw = g(x, w)
        assert gx.shape == x.shape and gw.shape == w.shape
        assert close(gx, numerical_gradient(arrays, (x, w), 0), 1e-5, 1e-6)
        assert close(gw, numerical_gradient(arrays, (x, w), 1), 1e-5, 1e-6)
        u, v = rng.normal(size=4), rng.normal(size=4)  # directional derivative
        h = 1e-6
        fd = (arrays(x + h * u, w + h * v) - arrays(x - h * u, w - h * v)) / (2 * h)
        assert math.isclose(gx @ u + gw @ v, fd, rel_tol=1e-5, abs_tol=1e-6)
    assert g.cache_info().misses <= PathCache.merge_from


def shapes(x):
    if x[0] > 0.0:
        y = x[:2] * 2.0  # shape (2,) here, (3,) there: not merged
    else:
        y = x * 3.0
    return np.sum(y * y)


def test_branches_of_different_shapes_are_decided():
    x = np.array([0.5, -1.0, 2.0])
    assert not any(e.prim is ir.COND for e in lowered(shapes, (x,)).eqns)
    g = gradient(shapes)
    for v in ([0.5, -1.0, 2.0], [-0.5, 1.0, 2.0], [1.5, 0.2, -0.3], [-2.0, 0.1, 0.4]):
        v = np.array(v)
        assert close(g(v), numerical_gradient(shapes, (v,), 0), 1e-5, 1e-6)


def warns(x, s):
    if s > 0.0:
        y = np.log(x)  # warns (log of a negative number) on a call that takes the else branch
    else:
        y = x * 2.0
    return np.sum(y)


def test_untaken_branch_warning_is_neither_shown_nor_merged():
    x = np.array([-1.0, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        full = lowered(warns, (x, -1.0))
    assert not any(e.prim is ir.COND for e in full.eqns)


def test_value_and_gradient_of_merged_ifs():
    vg = value_and_gradient(signs)
    rng = random.Random(8)
    for _ in range(20):
        args = (0.5 + rng.random(),) + tuple(rng.choice((-1.0, 1.0)) for _ in range(6))
        value, grad = vg(*args)
        assert math.isclose(value, signs(*args), rel_tol=1e-12)
        assert_fd(signs, args, grad)


def piecewise_sum(x, a):
    s = 0.0
    for i in range(x.shape[0]):
        if x[i] * a > 0.0:
            s = s + x[i] * a
        else:
            s = s - 0.1 * x[i] * a * x[i]
    return s


def test_if_inside_a_long_loop_rolls_with_both_branches():
    rng = np.random.default_rng(4)
    g = gradient(piecewise_sum, wrt=(0, 1))
    x = rng.normal(size=200)
    src = g.source(x, 0.7)
    assert "rolled loop" in src and "(both branches)" in src
    assert "d_x_1[i] +=" in src  # reads add into one buffer, in either branch
    assert len(src.splitlines()) < 150
    for _ in range(6):  # new signs on every call
        x = rng.normal(size=200)
        gx, ga = g(x, 0.7)
        assert close(gx, numerical_gradient(piecewise_sum, (x, 0.7), 0), 1e-5, 1e-6)
        assert math.isclose(ga, numerical_gradient(piecewise_sum, (x, 0.7), 1), rel_tol=1e-5)
        u = rng.normal(size=200)
        h = 1e-6
        fd = (piecewise_sum(x + h * u, 0.7 + h) - piecewise_sum(x - h * u, 0.7 - h)) / (2 * h)
        assert math.isclose(gx @ u + ga, fd, rel_tol=1e-5, abs_tol=1e-6)  # dot-product check
    assert g.cache_info().currsize <= 2  # the first iteration is peeled, its if decided


def bounce(x, v, m):
    i = 0
    while i < m:
        if x + v > 1.0:
            v = -0.8 * v
        else:
            x = x + v
            v = v - 0.05 * x
        i += 1
    return x * x + v


def test_if_inside_a_while_loop_with_varying_trip_counts():
    g = gradient(bounce, wrt=(0, 1))
    rng = random.Random(6)
    for _ in range(12):
        args = (rng.uniform(-0.5, 0.9), rng.uniform(-0.3, 0.3), rng.randint(20, 80))
        got = g(*args)
        assert_fd(bounce, args, got[0], 0)
        assert_fd(bounce, args, got[1], 1)
    assert g.cache_info().currsize <= 4


def methods_and_builtins(x, k):
    if k * np.sum(x) > 0.0:
        y = x.reshape(2, 2).sum(axis=0) * max(k, 0.5)
    else:
        y = np.arange(4.0).reshape(2, 2).sum(axis=1) * abs(k) + x[:2]
    return np.sum(y * y)


def test_branches_calling_array_methods_and_builtins_merge():
    rng = np.random.default_rng(9)
    x = rng.normal(size=4)
    full = lowered(methods_and_builtins, (x, 0.7), (0, 1))
    assert any(e.prim is ir.COND for e in full.eqns)
    g = gradient(methods_and_builtins, wrt=(0, 1))
    for _ in range(6):
        x, k = rng.normal(size=4), float(rng.normal())
        gx, gk = g(x, k)
        assert close(gx, numerical_gradient(methods_and_builtins, (x, k), 0), 1e-5, 1e-6)
        assert math.isclose(gk, numerical_gradient(methods_and_builtins, (x, k), 1),
                            rel_tol=1e-5, abs_tol=1e-6)


def passthrough(x, w, c):
    if c > 0.0:
        y = x  # the adjoint binds w itself in this branch, a new array in the other
    else:
        y = x * 2.0
    return np.sum(y * w)


def test_gradient_bound_by_a_merged_if_is_the_callers_own(monkeypatch):
    monkeypatch.setattr(PathCache, "merge_from", 0)  # merged from the first path on
    g = gradient(passthrough)
    x, w = np.array([1.0, 2.0]), np.array([0.5, -1.5])
    g(x, w, -1.0)  # built while the else branch is taken
    assert "both branches" in g.source(x, w, 1.0)
    first = g(x, w, 1.0)
    assert first is not w
    first[:] = 100.0  # the caller may write into what it got
    assert close(w, [0.5, -1.5], 0, 0)
    assert close(g(x, w, 1.0), numerical_gradient(passthrough, (x, w, 1.0), 0), 1e-6, 1e-8)
    assert close(g(x, w, -1.0), numerical_gradient(passthrough, (x, w, -1.0), 0), 1e-6, 1e-8)


def temporaries(x, c):
    if c > 0.0:
        t = math.sin(x) * c  # a temporary of this branch only
        y = t * t
    else:
        u = x * x
        y = u - c
    return y * x


def temporary_read_later(x, c):
    if c > 0.0:
        t = x * 2.0
        y = t
    else:
        y = x
        t = 1.0 if c < -5.0 else y  # bound in both (a conditional expression: decided)
    return y + t


def test_a_branch_temporary_does_not_stop_the_merge():
    full = lowered(temporaries, (0.7, 1.0), (0, 1))
    assert any(e.prim is ir.COND for e in full.eqns)
    g = gradient(temporaries, wrt=(0, 1))
    for args in [(0.7, 1.0), (0.7, -1.0), (-1.2, 0.5), (0.3, -2.0)]:
        got = g(*args)
        assert_fd(temporaries, args, got[0], 0)
        assert_fd(temporaries, args, got[1], 1)
    g2 = gradient(temporary_read_later)
    for args in [(0.7, 1.0), (0.7, -1.0), (-1.2, -6.0)]:
        assert_fd(temporary_read_later, args, g2(*args))


def piecewise_loop(x, a):
    s = 0.0
    for _ in range(40):
        if x > 0.5:
            y = x * x
        else:
            y = math.sin(x)
        s = s + y * a
        x = x * 0.99 + 0.02
    return s


def test_a_merged_if_in_a_rolled_body_whose_adjoint_fails_is_unrolled(monkeypatch):
    # an if inside a probed loop body is merged on a function's first path too; if its
    # adjoint cannot be built on these values (simulated), the path is lowered again with
    # every loop unrolled instead of failing
    import ad_transform.reverse as R
    from ad_transform.branches import Unmerge

    calls = []
    real = R.reverse_cond

    def failing(*args, **kwargs):
        calls.append(1)
        raise Unmerge()

    monkeypatch.setattr(R, "reverse_cond", failing)
    g = gradient(piecewise_loop, wrt=(0, 1))
    got = g(0.3, 1.7)
    assert calls  # the merged if's adjoint was tried
    assert "for " not in g.source(0.3, 1.7)  # unrolled: no loop left
    monkeypatch.setattr(R, "reverse_cond", real)
    assert_fd(piecewise_loop, (0.3, 1.7), got[0], 0)
    assert_fd(piecewise_loop, (0.3, 1.7), got[1], 1)
