"""A rolled primal loop whose results nothing reads is dropped, only when it can
neither fail a guard nor raise (``loops_reverse.droppable``).

Gradients are checked as in ``test_rolled.py`` (finite differences, autograd, the
unrolled derivative, a directional derivative for arrays); whether the primal loop
is still there is read from ``.source()`` (its comment says "iterations seen").
"""
import math

import numpy as np
import pytest

from ad_transform import gradient
from ad_transform.testing import numerical_gradient

from test_rolled import check, rosenbrock


def test_dead_primal_loop_over_array_items_is_dropped():
    x = np.linspace(-1.2, 1.1, 60)
    src = check(rosenbrock, (x,)).source(x)
    assert "iterations seen" not in src, src
    assert "iterations in reverse" in src, src


def guarded(x):
    s = 0.0
    for i in range(len(x)):
        if x[i] > 0:
            s = s + x[i] ** 2
        else:
            s = s - x[i]
    return s


def test_primal_loop_with_a_guard_is_kept():
    x = np.linspace(0.1, 2.0, 40)
    g = check(guarded, (x,))
    assert "iterations seen" in g.source(x)
    y = x.copy()
    y[25] = -0.5  # leaves the body's path mid-loop: another path, still exact
    got = g(y)
    assert np.allclose(got, numerical_gradient(guarded, (y,), 0), rtol=1e-4, atol=1e-6)


def cubes(x, n):
    s = 0.0
    for i in range(n):
        s = s + (x * i) ** 3
    return s


def test_loop_whose_power_can_overflow_is_kept_and_raises():
    g = check(cubes, (1.3, 20))
    assert "iterations seen" in g.source(1.3, 20)
    with pytest.raises(OverflowError):
        cubes(1e150, 20)
    with pytest.raises(OverflowError):
        g(1e150, 20)


def test_numpy_scalar_power_cannot_raise_so_the_loop_is_dropped():
    x = np.float64(1.3)
    g = gradient(cubes)
    got = g(x, 20)
    assert math.isclose(got, numerical_gradient(cubes, (x, 20), 0), rel_tol=1e-5)
    assert math.isclose(got, gradient(cubes, unroll=0)(x, 20), rel_tol=1e-12)
    assert "iterations seen" not in g.source(x, 20)


def sines(x):
    s = 0.0
    for i in range(30):
        s = s + math.sin(x * i)
    return s


def auto_sines(x):
    s = 0.0
    for i in range(30):
        s = s + np.sin(x * i)
    return s


def test_loop_with_a_call_is_kept_and_raises():
    g = check(sines, (0.4,), auto=auto_sines)
    assert "iterations seen" in g.source(0.4)
    with pytest.raises(ValueError):
        sines(math.inf)
    with pytest.raises(ValueError):
        g(math.inf)
