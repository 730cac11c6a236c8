"""ad_transform.testing: the checks users put in their own suites must be able to fail."""
import numpy as np
import pytest

from ad_transform.testing import check_gradient, check_vjp, numerical_gradient


def step(x, y):
    # AD sees the branch taken (derivative 0 in x); central differences straddle the jump.
    return (1.0 if x > 0 else 0.0) + y * y


def test_check_gradient_reports_a_table_of_the_entries_that_differ():
    with pytest.raises(AssertionError) as info:
        check_gradient(step, 1e-7, 3.0, wrt=(0, 1))
    msg = str(info.value)
    assert "differs from finite differences" in msg
    assert "ad_transform" in msg and "finite diff" in msg and "abs error" in msg
    rows = [ln for ln in msg.splitlines() if ln.startswith(("x", "y"))]
    assert len(rows) == 1 and rows[0].startswith("x"), msg  # y agrees, so only x is listed


def test_check_gradient_returns_the_gradient_when_it_agrees():
    got = check_gradient(step, 0.5, 3.0, wrt=1)
    assert abs(got - numerical_gradient(step, (0.5, 3.0), 1)) < 1e-6


def array_step(x):
    return np.sum(np.where(x > 0, 1.0, 0.0) + x * x)


def test_check_gradient_on_arrays_names_the_entry():
    x = np.array([0.5, 1e-7, -0.5])
    with pytest.raises(AssertionError) as info:
        check_gradient(array_step, x)
    assert "x[1]" in str(info.value)
    assert "x[0]" not in str(info.value) and "x[2]" not in str(info.value)


def jump(x):
    return np.floor(x * 1e6) + x


def test_check_vjp_fails_where_the_derivative_is_not_the_jacobian():
    rng = np.random.default_rng(0)
    with pytest.raises(AssertionError):
        check_vjp(jump, np.array([0.5, 1.5, 2.5]) * 1e-6 + 1e-12, rng=rng)
    check_vjp(np.sin, rng.standard_normal(4), rng=rng)  # and passes where it is
