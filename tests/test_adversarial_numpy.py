"""Adversarial NumPy programs: results that used to be silently wrong.

Each test compares with central finite differences (or with the function
itself), repeats calls to exercise the cached path, and checks that returned
arrays are the caller's own.  Where a program cannot be differentiated
faithfully, the test checks that it is refused with a located error.
"""
from __future__ import annotations

import numpy as np
import pytest

from ad_transform import UnsupportedSyntax, gradient, value_and_gradient
from ad_transform.testing import check_gradient, numerical_gradient

RNG = np.random.default_rng(7)
X5 = RNG.standard_normal(5) * 2.0
M45 = RNG.standard_normal((4, 5))
W5 = np.arange(1.0, 6.0)


def _check_twice(f, *args, wrt=0):
    """check_gradient on the first call (computed while lowering) and on a cached call."""
    first = check_gradient(f, *args, wrt=wrt)
    again = check_gradient(f, *args, wrt=wrt)
    np.testing.assert_allclose(again, first)
    return first


# -- a one-element output whose last operation has a constant operand ---------------------
def times_constant(x):
    return x * 2.0


def squared_matrix(x):
    return (x ** 2) / 3.0


def test_one_element_output_with_constant_operand():
    _check_twice(times_constant, np.array([1.5]))
    _check_twice(squared_matrix, np.array([[1.5]]))


def test_numerical_gradient_of_one_element_output():
    fd = numerical_gradient(times_constant, (np.array([1.5]),), 0)
    np.testing.assert_allclose(fd, [2.0], rtol=1e-6)


# -- item writes with repeated fancy indices: the last write wins ---------------------------
def repeated_index_write(x):
    y = x * 1.0
    y[np.array([0, 0, 1])] = x[2:]
    return np.sum(y ** 2 * W5)


def repeated_index_augmented(x):
    y = np.zeros(5)
    y[[1, 3]] = x[[0, 0]]
    y[[1, 1]] += 2.0 * x[[2, 3]]
    return np.sum(y ** 2 * W5)


def repeated_runtime_index_write(x):
    y = x * 1.0
    i = np.argsort(x)[:3] * 0  # an index array computed at run time: all zeros
    y[i] = x[2:]
    return np.sum(y ** 2 * W5)


def repeated_rows_write(x):
    y = np.zeros((3, 5))
    y[[0, 0, 2], 1:3] = np.stack([x[:2], x[1:3], x[3:]])
    return np.sum(y ** 2 * W5)


@pytest.mark.parametrize("f", [repeated_index_write, repeated_index_augmented,
                               repeated_runtime_index_write, repeated_rows_write])
def test_repeated_index_writes(f):
    _check_twice(f, X5)


# -- item writes keep the array's dtype, as NumPy does ---------------------------------------
def write_into_int_array(x):
    y = np.zeros(5, dtype=int)
    y[1] = x[1]  # truncated
    return np.sum(y * x)


def write_into_float32_array(x):
    y = np.zeros(5, dtype=np.float32)
    y[1] = x[1]
    return np.sum(y * 1.0)


@pytest.mark.parametrize("f", [write_into_int_array, write_into_float32_array])
def test_item_write_keeps_dtype(f):
    x = np.array([0.3, 2.7, -1.2, 0.4, 1.1])
    for _ in range(2):
        value, grad = value_and_gradient(f)(x)
        assert value == f(x) and type(value) is type(f(x))
        np.testing.assert_allclose(grad, numerical_gradient(f, (x,), 0, eps=1e-3), atol=1e-4)


# -- casts to integers or booleans pass no derivative on ------------------------------------
def astype_int(x):
    return np.sum(x.astype(int) * x)


def asarray_int(x):
    return np.sum(np.asarray(x, dtype=np.int64) * x)


def array_int_squared(x):
    return np.sum(np.array(x, dtype=int) ** 2) + np.sum(x)


def astype_bool(x):
    return np.sum(x.astype(bool) * x)


@pytest.mark.parametrize("f", [astype_int, asarray_int, array_int_squared, astype_bool])
def test_casts_to_integers_have_zero_derivative(f):
    _check_twice(f, np.array([0.3, 2.7, -1.2, 0.4, 1.1]))


# -- writes another live value would see: refused, not silently lost -------------------------
def _fill_first(a, v):
    a[0] = v


def write_in_helper(x):
    y = np.zeros(5)
    _fill_first(y, x[1])  # the caller's y must see it
    return np.sum(y * x)


def write_through_row_view(x):
    A = np.zeros((3, 5))
    row = A[1]
    row[2] = x[0]  # A must see it
    return np.sum(A * A) + x[0]


def write_while_listed(x):
    y = np.zeros(5)
    ys = [y]
    y[0] = x[1]
    return np.sum(ys[0] * x)


def write_under_reshaped_view(x):
    y = x.copy()
    v = y.reshape(5)
    y[0] = 3.0
    return np.sum(v * x)


def write_under_transposed_view(x):
    y = x.copy()
    t = y.T
    y[1, 2] = 0.0
    return np.sum(t * t)


def write_into_input_view(x):
    v = x[1:]
    v[0] = 0.0
    return np.sum(x * x)


def write_into_rebound_input_view(x):
    z = x
    z = z[1:]
    z[0] = 1.0
    return np.sum(z)


GLOBAL_BUFFER = np.zeros(5)


def write_into_global(x):
    GLOBAL_BUFFER[0] = x[1]
    return np.sum(GLOBAL_BUFFER * x)


@pytest.mark.parametrize("f, arg", [
    (write_in_helper, X5), (write_through_row_view, X5), (write_while_listed, X5),
    (write_under_reshaped_view, X5), (write_under_transposed_view, M45),
    (write_into_input_view, X5), (write_into_rebound_input_view, X5),
    (write_into_global, X5)])
def test_writes_seen_by_other_values_are_refused(f, arg):
    with pytest.raises(UnsupportedSyntax) as info:
        gradient(f)(arg.copy())
    assert "test_adversarial_numpy.py" in str(info.value)


def rows_recurrence(x):
    y = np.zeros((3, 5))
    for i in range(1, 3):
        prev = y[i - 1]  # a view of another row than the one written: fine
        y[i] = prev * 2.0 + x
    return np.sum(y * y)


def test_write_beside_a_live_view_is_allowed():
    _check_twice(rows_recurrence, X5)


# -- np.array and astype copy, np.asarray does not ------------------------------------------
def array_then_write(x):
    y = np.array(x)
    y[0] = 5.0
    return np.sum(y * x)


def astype_then_write(x):
    y = x.astype(np.float64)
    y[1] = y[0] * 2.0
    return np.sum(y * x)


def asarray_then_write(x):
    y = np.asarray(x)
    y[0] = 5.0  # NumPy writes into the caller's x
    return np.sum(y * x)


def test_array_and_astype_copy():
    _check_twice(array_then_write, X5)
    _check_twice(astype_then_write, X5)
    with pytest.raises(UnsupportedSyntax, match="input array"):
        gradient(asarray_then_write)(X5.copy())


# -- out= must not trust a copy that is a view on other inputs (np.ravel, reshape) -----------
def ravel_then_scale(x):
    y = np.ravel(x)  # a copy of an F-ordered x, a view of a C-ordered one
    z = y * 2.0
    return np.sum(z * z)


def ravel_of_live_intermediate(x):
    y = np.exp(x * 0.01)
    r = np.ravel(y)  # a copy of y while lowering (F order), a view of y later
    z = y * 2.0
    return np.sum(z * z) + np.sum(r ** 3)


@pytest.mark.parametrize("f", [ravel_then_scale, ravel_of_live_intermediate])
def test_layout_dependent_views_are_not_written_into(f):
    rng = np.random.default_rng(3)
    grad = gradient(f)
    grad(rng.standard_normal((100, 100)).T)  # lowered on a non-contiguous input
    for x in (rng.standard_normal((100, 100)), rng.standard_normal((100, 100)).T):
        before = x.copy()
        g = grad(x)
        np.testing.assert_array_equal(x, before)  # the caller's array is untouched
        v = rng.standard_normal(x.shape)
        h = 1e-6
        fd = (f(x + h * v) - f(x - h * v)) / (2 * h)
        np.testing.assert_allclose(np.sum(g * v), fd, rtol=1e-4)
        assert not np.shares_memory(g, x)


# -- determinants of a stack of matrices ----------------------------------------------------
def stacked_det(b):
    return np.sum(np.linalg.det(b) ** 2)


def stacked_slogdet(b):
    sign, logdet = np.linalg.slogdet(b)
    return np.sum(sign * logdet)


@pytest.mark.parametrize("f", [stacked_det, stacked_slogdet])
def test_stacked_determinants(f):
    b = RNG.standard_normal((2, 3, 3)) + 3.0 * np.eye(3)
    _check_twice(f, b)


# -- returned arrays are the caller's own: not shared between results or between calls --------
def squared_sum_of_two(a, b):
    return np.sum((a + b) ** 2)


def test_gradients_of_two_arguments_do_not_share_memory():
    a, b = X5.copy(), X5[::-1].copy()
    for wrt in ((0, 1), (0, 0, 1)):
        for _ in range(2):
            grads = check_gradient(squared_sum_of_two, a, b, wrt=wrt)
            for i in range(len(grads)):
                for j in range(i):
                    assert not np.shares_memory(grads[i], grads[j])
    grads = gradient(squared_sum_of_two, wrt=(0, 1))(a, a)  # one array passed twice
    assert not np.shares_memory(grads[0], grads[1]) and not np.shares_memory(grads[0], a)


def constant_array_value(x):
    return np.ones((1, 1)) * 2.0


def test_constant_value_is_not_shared_between_calls():
    f = value_and_gradient(constant_array_value)
    x = np.array([1.0, 2.0])
    for _ in range(3):
        value, grad = f(x)
        np.testing.assert_array_equal(value, constant_array_value(x))
        np.testing.assert_array_equal(grad, np.zeros(2))
        value[...] = 99.0  # the caller owns it: the next call is not affected
        grad[...] = 77.0


# -- arrays inside global containers are baked into the path: changed in place, a new path ----
GLOBAL_PARAMS = {"w": np.ones(3)}
GLOBAL_LIST = [np.ones(2)]


def uses_arrays_in_global_containers(x):
    return np.sum(GLOBAL_PARAMS["w"] * x) + np.sum(GLOBAL_LIST[0]) * x[1]


def test_arrays_in_global_containers_changed_in_place():
    x = np.array([1.0, 2.0, 3.0])
    grad = gradient(uses_arrays_in_global_containers)
    try:
        for w, l in [(1.0, 1.0), (2.0, 5.0), (-1.0, 0.5)]:
            GLOBAL_PARAMS["w"][:] = w
            GLOBAL_LIST[0][:] = l
            for _ in range(2):
                np.testing.assert_allclose(
                    grad(x), numerical_gradient(uses_arrays_in_global_containers, (x,), 0),
                    atol=1e-6)
    finally:
        GLOBAL_PARAMS["w"][:] = 1.0
        GLOBAL_LIST[0][:] = 1.0
