"""The fast ways into a compiled path: the fused dispatcher of forward mode and vjp
(its first path's statements run in its own frame) and jvp()'s direct call of the
current path.  Neither may run a path on inputs it was not built for: every call
here is checked against central finite differences along its tangent (and, for
arrays, a dot-product check against vjp), on inputs that take other branches, loop
counts, types and shapes, in every order.
"""
from __future__ import annotations

import gc
import math
import threading
import weakref

import numpy as np
import pytest

from ad_transform import forward_derivative, jacobian, jvp, vjp
from ad_transform import transforms

from test_forward import close, fd_directional


def stepped(x, y):
    # the generated path reassigns x and y (it reuses their names): a miss after a few
    # iterations must hand the cache the arguments as they were passed
    x = math.exp(0.3 * y) * x
    i = 0
    while y < 2.5 and i < 4:
        x = x * 0.5 - y + 0.3
        y = y + 0.25 * abs(x + y) + 0.1
        i += 1
    if x > 0:
        return x * y + math.sin(x)
    return x - y * y


POINTS = [(0.16, 0.23), (0.83, -1.13), (-0.4, 2.7), (1.5, 0.4), (0.16, 0.23), (-2.0, -3.0),
          (0.83, -1.13), (3.0, 2.6)]


def _fused(fn) -> bool:
    return "fused" in fn.__code__.co_filename


def test_fused_dispatcher_follows_every_path_of_a_loop_and_a_branch():
    fd = forward_derivative(stepped, wrt=(0, 1))
    fd.cache_clear()
    seen = set()
    for k, (x, y) in enumerate(POINTS * 2):
        t = (1.0, -0.5) if k % 2 else (0.25, 1.0)
        value, tangent = fd(x, y, *t)
        assert value == stepped(x, y)
        close(tangent, fd_directional(stepped, (x, y), t))
        seen.add(fd.source(x, y, *t))
    info = fd.cache_info()
    assert info.misses == info.currsize == len(seen) >= 4
    assert info.hits == 2 * len(POINTS) - info.misses


def test_fused_code_runs_while_its_path_is_the_current_one():
    def f(x):
        if x > 0:
            return x * x
        return math.sin(x)

    fd = forward_derivative(f)
    fd.cache_clear()
    assert fd(3.0, 1.0) == (9.0, 6.0)
    assert _fused(fd)  # the first path, fused
    assert fd(-1.0, 1.0) == (math.sin(-1.0), math.cos(-1.0))
    assert not _fused(fd)  # the other branch is current: the plain dispatcher calls it
    assert fd(2.0, 1.0) == (4.0, 4.0)
    assert _fused(fd)
    info = fd.cache_info()
    assert (info.hits, info.misses) == (1, 2)
    fd.cache_clear()  # the fused path is gone: plain code from now on
    assert not _fused(fd)
    assert fd(2.0, 0.5) == (4.0, 2.0) and fd(-2.0, 1.0)[1] == math.cos(-2.0)
    assert fd.cache_info().misses == 2


@pytest.mark.parametrize("tangent", [2, np.float64(2.0), True, np.ones(1), np.ones(()), None])
def test_fused_path_with_a_tangent_of_another_type_or_shape(tangent):
    def f(x):
        return x * math.exp(x)

    fd = forward_derivative(f)
    fd.cache_clear()
    assert fd(0.5, 2.0)[1] == 2.0 * 1.5 * math.exp(0.5)
    assert _fused(fd)
    try:
        value, t = fd(0.5, tangent)
    except ValueError as e:  # refused by the first call of the new path: never an answer
        assert "tangent for x" in str(e)
        assert isinstance(tangent, (bool, np.ndarray)) or tangent is None
    else:
        assert value == f(0.5)
        close(t, fd_directional(f, (0.5,), (float(tangent),)))
        assert fd.cache_info().misses == 2
    assert fd(0.5, 2.0)[1] == 2.0 * 1.5 * math.exp(0.5)  # the float path again


def test_fused_dispatcher_with_one_cached_path_at_a_time():
    fd = forward_derivative(stepped, wrt=(0, 1), maxsize=1)
    for x, y in POINTS:
        close(fd(x, y, 1.0, 1.0)[1], fd_directional(stepped, (x, y), (1.0, 1.0)))
        assert fd.cache_info().currsize == 1


def test_fused_dispatcher_under_threads():
    fd = forward_derivative(stepped, wrt=(0, 1))
    fd.cache_clear()
    want = {p: fd_directional(stepped, p, (1.0, 1.0)) for p in POINTS}
    errors = []

    def work(shift):
        for k in range(300):
            p = POINTS[(k + shift) % len(POINTS)]
            t = fd(*p, 1.0, 1.0)[1]
            if not math.isclose(t, want[p], rel_tol=1e-5, abs_tol=1e-6):
                errors.append((p, t, want[p]))

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert fd.cache_info().hits + fd.cache_info().misses >= 1200 - 4 * len(POINTS)


def test_vjp_and_jacobian_through_a_fused_dispatcher():
    def f(x):
        s = np.sum(x * x)
        if s > 1.0:
            return np.tanh(x) * s
        return x * 3.0

    for x in (np.array([0.1, 0.2]), np.array([1.0, -2.0]), np.array([0.3, 0.1]),
              np.array([2.0, 0.5])):
        u = np.array([0.7, -1.3])
        v, pull = vjp(f, x)
        close(v, f(x))
        (g,) = pull(u)
        t = np.array([0.2, 0.9])
        close(np.dot(g, t), np.dot(u, fd_directional(f, (x,), (t,))))
        J = jacobian(f, mode="reverse")(x)
        close(J @ t, fd_directional(f, (x,), (t,)))


# -- jvp(): the path used last, called directly ------------------------------------------------

def two(x, y):
    return math.log(x) + x * math.sin(y)


def one(x):
    return x * math.tanh(x)


def three(x, y, z):
    return x * y - z * math.cos(x)


def four(a, b, c, d):
    return a * b + c * d * d


@pytest.mark.parametrize("f, primals", [(one, (0.7,)), (two, (2.0, 1.0)),
                                        (three, (0.5, -1.5, 2.0)),
                                        (four, (1.0, 2.0, 3.0, 4.0))])
def test_jvp_fast_path_of_every_arity(f, primals):
    fd = forward_derivative(f, wrt=tuple(range(len(primals))))
    fd.cache_clear()
    for k in range(4):
        tangents = tuple(1.0 + 0.5 * i - k for i in range(len(primals)))
        value, t = jvp(f, primals, tangents)
        assert value == f(*primals)
        close(t, fd_directional(f, primals, tangents))
    assert fd.cache_info().misses == 1 and fd.cache_info().hits == 3


def test_jvp_fast_path_refuses_what_it_was_not_built_for():
    fd = forward_derivative(four, wrt=(0, 1, 2, 3))
    jvp(four, (1.0, 2.0, 3.0, 4.0), (1.0, 1.0, 1.0, 1.0))
    # 3 + 5 values are 8, as 4 + 4: never read as the four arguments and four tangents
    with pytest.raises(ValueError, match="3 primals and 5 tangents"):
        jvp(four, (1.0, 2.0, 3.0), (1.0, 4.0, 1.0, 1.0, 1.0))
    with pytest.raises(TypeError, match="tuples"):
        jvp(two, {2.0, 1.0}, (1.0, 0.0))
    jvp(two, (2.0, 1.0), (1.0, 0.5))
    with pytest.raises(TypeError, match="tuples"):
        jvp(two, (2.0, 1.0), {1.0, 0.5})
    with pytest.raises(ValueError, match="1 primals and 2 tangents"):
        jvp(two, (2.0,), (1.0, 0.5))
    assert fd.cache_info().misses == 1


def test_jvp_fast_path_with_none_lists_other_types_and_errors():
    full = forward_derivative(two, wrt=(0, 1))
    full.cache_clear()
    for primals, tangents in [((2.0, 1.0), (1.0, 0.5)), ((2.0, 1.0), (1.0, None)),
                              ((2.0, 1.0), (None, 3.0)), ([2.0, 1.0], [1.0, 0.5]),
                              ((2.0, 1.0), (1, 0.5)), ((2, 1.0), (1.0, 0.5)),
                              ((np.float64(2.0), 1.0), (1.0, 0.5)), ((2.0, 1.0), (1.0, 0.5))]:
        value, t = jvp(two, primals, tangents)
        assert value == two(*primals)
        close(t, fd_directional(two, tuple(primals), tuple(tangents)))
    with pytest.raises(ValueError, match="tangent for y must be a float"):
        jvp(two, (2.0, 1.0), (1.0, np.ones(2)))
    with pytest.raises(ValueError, match="math domain"):  # raised by the path itself
        jvp(two, (-2.0, 1.0), (1.0, 0.5))
    close(jvp(two, (2.0, 1.0), (1.0, 0.5))[1], fd_directional(two, (2.0, 1.0), (1.0, 0.5)))


def test_jvp_alternating_functions():
    for k in range(6):
        f, primals = [(one, (0.7,)), (two, (2.0, 1.0)), (three, (0.5, -1.5, 2.0))][k % 3]
        tangents = tuple(0.5 + i for i in range(len(primals)))
        close(jvp(f, primals, tangents)[1], fd_directional(f, primals, tangents))


def test_jvp_keeps_nothing_of_a_function_alive():
    def make():
        def f(x, y):
            return x * y + math.sin(x)
        return f

    f = make()
    assert jvp(f, (1.0, 2.0), (1.0, 0.0))[1] == 2.0 + math.cos(1.0)
    path = weakref.ref(transforms._LAST[2][0])
    fun = weakref.ref(f)
    del f
    assert fun() is None  # by reference counting
    assert transforms._LAST[1] == -1  # jvp() forgot it
    gc.collect()  # (the cache and its dispatcher refer to each other)
    assert path() is None


def test_fused_dispatcher_on_arrays_of_other_shapes_and_dtypes():
    def f(x, w):
        y = np.tanh(x * w)
        if np.sum(y) > 0:
            return y * 2.0
        return y[::-1] - w

    fd = forward_derivative(f, wrt=(0, 1))
    fd.cache_clear()
    rng = np.random.default_rng(3)
    cases = [(rng.standard_normal(3), rng.standard_normal(3)) for _ in range(3)]
    cases += [(np.abs(rng.standard_normal(4)), np.ones(4)), (-np.ones(3), np.ones(3)),
              (np.arange(3), np.ones(3))]  # an int array: a path of its own
    for x, w in cases * 2:
        tx, tw = rng.standard_normal(x.shape), rng.standard_normal(w.shape)
        value, t = fd(x, w, tx, tw)
        np.testing.assert_array_equal(value, f(x, w))
        close(t, fd_directional(f, (x.astype(float), w), (tx, tw)))
        u = rng.standard_normal(value.shape)  # dot-product check against vjp
        gx, gw = vjp(f, x.astype(float), w)[1](u)
        close(np.dot(u, t), np.dot(gx, tx) + np.dot(gw, tw))
        ti = np.ones(x.shape, dtype=np.int64)  # an int tangent: another path, same answer
        close(fd(x, w, ti, tw)[1], fd_directional(f, (x.astype(float), w), (ti, tw)))
    with pytest.raises(ValueError, match="tangent for x"):
        fd(np.ones(3), np.ones(3), np.ones(4), np.ones(3))
    assert fd.cache_info().hits > 0


def test_fused_code_is_dropped_when_a_rule_it_inlined_changes():
    from ad_transform import defvjp

    def sq(x):
        return x * x

    def h(x):
        return sq(x) + x

    fd = forward_derivative(h)
    assert fd(3.0, 1.0) == (12.0, 7.0)
    assert _fused(fd)
    defvjp(sq, lambda g, ans, x: g * 10.0)  # a deliberately different rule: used as given
    assert not _fused(fd)  # every cache was cleared: the old path's code runs no more
    assert fd(3.0, 1.0) == (12.0, 11.0)
    assert fd(2.0, 0.5) == (6.0, 5.5)


# -- gradient: the same fusion, after the wrapper's state check ------------------------------

def test_fused_gradient_follows_every_path_and_counts():
    from ad_transform import gradient
    from ad_transform.testing import numerical_gradient

    g = gradient(stepped, wrt=(0, 1))
    g.cache_clear()
    seen = set()
    for x, y in POINTS * 2:
        got = g(x, y)
        for i in (0, 1):
            close(got[i], numerical_gradient(stepped, (x, y), i))
        seen.add(g.source(x, y))
    info = g.cache_info()
    assert info.misses == info.currsize == len(seen) >= 4
    assert info.hits == 2 * len(POINTS) - info.misses
    g.cache_clear()
    assert not _fused(g)
    close(g(1.5, 0.4)[0], numerical_gradient(stepped, (1.5, 0.4), 0))


def test_fused_gradient_still_checks_its_function_first():
    from ad_transform import UnsupportedSyntax, gradient

    def f(x):
        return x * x

    def other(x):
        return x * x * x

    g = gradient(f)
    assert g(3.0) == 6.0 and _fused(g)
    saved = f.__code__
    f.__code__ = other.__code__
    try:
        with pytest.raises(UnsupportedSyntax, match="__code__ of .*f was replaced"):
            g(3.0)
    finally:
        f.__code__ = saved
    assert g(3.0) == 6.0


def test_nesting_over_wrappers_whose_code_is_swapped():
    from ad_transform import gradient
    from ad_transform.testing import numerical_gradient

    def f(x):
        if x > 0:
            return x * x * math.sin(x)
        return math.exp(x)

    inner = gradient(f)
    d2 = gradient(inner)
    for x0 in (1.5, -0.7, 2.0, -1.0):
        inner(-x0)  # the inner wrapper switches paths (and code objects) in between
        close(d2(x0), numerical_gradient(inner, (x0,), 0))
    fd = forward_derivative(f)
    outer = gradient(lambda x: fd(x, 1.0)[1])  # the second derivative, through forward mode
    for x0 in (1.5, -0.7, 2.0, -1.0):
        fd(-x0, 1.0)
        close(outer(x0), numerical_gradient(inner, (x0,), 0))
