"""Reads of an array's elements and slices accumulate their adjoints in place, into one
buffer per gradient (``_rt.add_at(d_x, i, g)``, printed ``d_x[i] += g``), and stay
exact: buffers handed on to other adjoints are never written into, repeated and
computed indices add up, dtypes are those of the full-size sum.

Every gradient is compared with central finite differences, and against autograd where
the function can be written for it; array gradients also pass a dot-product check.
"""
import numpy as np
import pytest

from ad_transform import gradient, value_and_gradient
from ad_transform.testing import check_gradient, check_vjp

from test_rolled import rosenbrock as rosen


def test_rosenbrock_loop_accumulates_in_place():
    x = np.random.default_rng(0).uniform(0.5, 1.5, 12)
    g = check_gradient(rosen, x)
    src = gradient(rosen).source(x)
    assert src.count("np.zeros(") == 1 and src.count("d_x[") == src.count("] += ") + 1 > 2
    assert " + g_" not in src
    ag = pytest.importorskip("autograd")
    assert np.allclose(g, ag.grad(rosen)(x), rtol=1e-12, atol=1e-12)


def same_element_twice(x):
    return x[0] * x[0] + x[0] + x[1] * 3.0


def test_the_same_read_repeated():
    check_gradient(same_element_twice, np.array([0.3, -1.2, 2.0]))


def handed_on(a, b):
    """``v``'s adjoint buffer reaches ``a`` and ``b`` (by ``+``) as their first adjoint;
    the reads of ``a`` before it (processed after it, in reverse) must not write into
    it: it is ``b``'s adjoint too."""
    t = a[2] * 3.0 + b[1] * 5.0 + a[0] * b[0]
    v = a + b
    return v[0] * v[1] + v[2] + t


def test_a_buffer_handed_on_is_not_written_into():
    a, b = np.array([0.4, -0.7, 1.1]), np.array([1.5, 0.2, -0.3])
    check_gradient(handed_on, a, b, wrt=(0, 1))
    check_vjp(lambda a, b: (a + b)[0] * a[1] + b[2] * a, a, b, wrt=0)


def twice_the_same_row(X):
    """Two reads of row ``X[0]`` whose adjoints are one value: the same scatter twice.
    The second must not be the first one's buffer, written into meanwhile by ``X[1, 1]``."""
    u1 = X[0]
    m = X[1, 1] ** 2
    u2 = X[0]
    w = u1 + u2
    return np.sum(w * w) + m


def test_a_buffer_is_no_common_subexpression():
    check_gradient(twice_the_same_row, np.array([[0.3, -1.2], [2.0, 0.9]]))


def matrix_reads(A):
    t = 0.0
    for i in range(3):
        t = t + A[i, 0] * A[i, 1] + np.sum(A[i:i + 2, 1] ** 2) + np.sum(A[i] * A[i])
    return t


def test_elements_rows_and_slices_of_a_matrix():
    A = np.random.default_rng(1).standard_normal((4, 2))
    check_gradient(matrix_reads, A)


def fancy(x):
    idx = np.argsort(x)
    return np.sum(x[idx] * np.arange(4.0)) + x[[0, 0, 1]].sum() * x[2] + x[3] * x[1]


def test_computed_and_repeated_indices():
    check_gradient(fancy, np.array([0.3, -1.2, 2.0, 0.9]))


def mixed_dtypes(x, w):
    return x[0] * 2.0 + np.sum(x[1:3] * w) + x[3] * x[0]


def test_a_float32_input_read_with_float64_weights():
    x = np.array([0.5, 1.5, -0.5, 2.0], dtype=np.float32)
    w = np.array([0.25, -3.0])
    g = gradient(mixed_dtypes)(x, w)
    assert g.dtype == np.float32
    want = np.array([2.0 + 2.0, 0.25, -3.0, 0.5])
    assert np.allclose(g, want, rtol=1e-6)
    check_gradient(mixed_dtypes, x.astype(np.float64), w)


def test_gradients_are_new_arrays_on_every_call():
    f = value_and_gradient(rosen)
    x = np.array([1.1, 0.9, 1.3, 0.7])
    _, g1 = f(x)
    g1_copy = g1.copy()
    g1[:] = 123.0  # the caller owns what it got
    _, g2 = f(x)
    assert np.array_equal(g2, g1_copy) and g2 is not g1
