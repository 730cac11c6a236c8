"""Broadcasting adjoints: one helper (``runtime.sum_axes``/``fit_shape``) brings an
adjoint to its target shape by NumPy's rules, aligned from the right.

* a property test of the helper: for any adjoint ``g`` and target shape ``t`` that
  broadcast together, ``fit_shape(g, t)`` is the adjoint of broadcasting (the
  dot-product identity ``<bcast(u), bcast(g)> == <u, fit_shape(g, t)>``);
* regression programs (reshape, ``x[None, :]``, ``.T``, broadcast constants,
  ``sum(axis, keepdims=True)``) checked with ``check_gradient`` and ``check_vjp``;
* ``ir.verify`` refuses an adjoint whose shape does not broadcast to its primal's.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ad_transform import gradient, ir
from ad_transform.runtime import fit_shape, sum_axes
from ad_transform.testing import check_gradient, check_vjp


@st.composite
def _pair(draw):
    """An adjoint shape and a target shape that broadcast together (either may have
    more axes; each axis is equal, or 1 on one side)."""
    nd = draw(st.integers(0, 4))
    full = [draw(st.integers(1, 3)) for _ in range(nd)]
    g_nd, t_nd = draw(st.integers(0, nd)), draw(st.integers(0, nd))
    g = [n if draw(st.booleans()) else 1 for n in full[nd - g_nd:]]
    t = [n if draw(st.booleans()) else 1 for n in full[nd - t_nd:]]
    return tuple(g), tuple(t)


@settings(max_examples=300, deadline=None)
@given(_pair(), st.integers(0, 2**31 - 1))
def test_fit_shape_is_the_adjoint_of_broadcasting(shapes, seed):
    gshape, tshape = shapes
    rng = np.random.default_rng(seed)
    g, u = rng.standard_normal(gshape), rng.standard_normal(tshape)
    big = np.broadcast_shapes(gshape, tshape)
    fitted = fit_shape(g, tshape)
    assert np.shape(fitted) == tshape
    lhs = np.sum(np.broadcast_to(u, big) * np.broadcast_to(g, big))
    assert np.isclose(lhs, np.sum(u * fitted), rtol=1e-10, atol=1e-10)
    lead, keep = sum_axes(gshape, tshape)  # the sums alone leave a shape that broadcasts
    summed = g.sum(axis=tuple(range(lead))) if lead else g
    summed = summed.sum(axis=keep, keepdims=True) if keep else summed
    assert np.broadcast_shapes(summed.shape, tshape) == tshape


def test_sum_axes_aligns_from_the_right():
    assert sum_axes((4,), (1, 4)) == (0, ())  # the adjoint stands for its broadcast
    assert sum_axes((3, 4), (4,)) == (1, ())
    assert sum_axes((3, 4), (1, 4)) == (0, (0,))
    assert sum_axes((2, 3, 4), (3, 1)) == (1, (1,))
    with pytest.raises(ValueError):
        sum_axes((3,), (4,))


V = np.arange(12.0).reshape(3, 4) - 5.0
W4 = np.linspace(-1.0, 2.0, 4)
M44 = np.arange(16.0).reshape(4, 4) / 7.0 - 1.0
C31 = np.array([[1.5], [-2.0], [0.5]])


def leading_none_times_row(x):  # the example: x[None, :] against a (4,) row
    return np.sum(x[None, :] * W4)


def leading_none_times_matrix(x):
    return np.sum(x[None, :] * V)


def column_times_row(x):
    return np.sum(x[:, None] * W4)


def outer_by_broadcast(x):
    return np.sum(x[:, None] * x[None, :] * M44)


def keepdims_times_x(x):
    return np.sum(np.sum(x[:, None] * M44, axis=1, keepdims=True) * x[None, :] * M44)


def keepdims_transposed(x):
    return np.sum(np.sum(x[:, None] * M44, axis=1, keepdims=True).T * M44)


def keepdims_reshaped(x):
    return np.sum(np.sum(M44 * x, axis=1, keepdims=True).reshape(4) * W4)


def keepdims_broadcast_to(x):
    return np.sum(np.broadcast_to(np.sum(M44 * x, axis=1, keepdims=True), (4, 4)).T * M44)


def reshape_column_times_row(x):
    return np.sum(np.sin(x.reshape(4, 1)) * W4 + x.reshape(1, 4))


def full_of_array(x):  # np.full broadcasts its fill value
    return np.sum(np.full((3, 4), x) * V)


def full_of_traced_scalar(s):
    return np.sum(np.full((3, 4), s * 2.0) * V)


PROGRAMS = [leading_none_times_row, leading_none_times_matrix, column_times_row,
            outer_by_broadcast, keepdims_times_x, keepdims_transposed, keepdims_reshaped,
            keepdims_broadcast_to, reshape_column_times_row, full_of_array]


@pytest.mark.parametrize("fn", PROGRAMS, ids=lambda f: f.__name__)
def test_broadcast_programs(fn):
    x = np.linspace(0.3, 1.2, 4)
    check_gradient(fn, x)
    check_vjp(fn, x)


def matrix_ops(x):  # an array output: check_vjp's dot-product test over it
    return (x[None, :] + C31) * x.T[None, :] + np.sum(x * C31, axis=0, keepdims=True)


def column_fill(x):
    return np.sum(np.full((3, 4), x) * V)


def test_broadcast_array_output_and_column_fill():
    check_vjp(matrix_ops, np.linspace(0.3, 1.2, 4))
    check_gradient(column_fill, np.array([[0.5], [1.0], [2.0]]))
    check_gradient(full_of_traced_scalar, 1.5)


def test_verify_checks_adjoint_shapes():
    from ad_transform.lower import lower
    from ad_transform.reverse import prune, reverse
    prog, values = lower(leading_none_times_row, (np.ones(4),), (0,), 10_000)
    full, values = reverse(prog, values, (0,), True, False)
    full = prune(full, values)
    assert full.adjoints, "the reverse pass records its adjoints for verify"
    ir.verify(full, values)
    x = full.inputs[0]
    full.adjoints.append((ir.Const(np.ones(3)), x, False))
    with pytest.raises(AssertionError, match="does not broadcast"):
        ir.verify(full, values)
    full.adjoints[-1] = (ir.Const(np.ones((1, 4))), x, True)
    with pytest.raises(AssertionError, match="gradient of"):
        ir.verify(full, values)
