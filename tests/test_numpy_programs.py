"""Whole NumPy programs: models, losses, loops and item writes, against finite differences.

Also: gradients keep the argument's shape and dtype (float64 for integer
arrays), complex arguments are refused, a new shape is a new control path,
and the generated code of array programs stays lean (no adjoint buffers that
are never read, no shape fitting where shapes already match).
"""
from __future__ import annotations

import re
import sys

import numpy as np
import pytest

import ad_transform
from ad_transform import gradient, value_and_gradient
from ad_transform.testing import check_gradient

RNG = np.random.default_rng(20240611)
X = RNG.standard_normal((8, 3))
Y = X @ np.array([0.5, -1.0, 2.0]) + 0.3 + 0.1 * RNG.standard_normal(8)
LABELS = np.array([0, 2, 1, 1, 0, 2, 2, 1])


# -- programs --------------------------------------------------------------------------------
def linear_mse(w, b):
    pred = X @ w + b  # broadcasting b + X @ w
    err = pred - Y
    return np.mean(err ** 2)


def linear_mse_ridge(w, b, lam):
    resid = Y - (b + X.dot(w))
    return resid @ resid / len(Y) + lam * np.sum(w * w)


def softmax_cross_entropy(W, b):
    logits = X @ W + b
    logits = logits - np.max(logits, axis=1, keepdims=True)
    logp = logits - np.log(np.sum(np.exp(logits), axis=1, keepdims=True))
    return -np.mean(logp[np.arange(len(LABELS)), LABELS])


def softmax_one_hot(W):
    z = X @ W
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p = p / p.sum(axis=1, keepdims=True)
    onehot = np.eye(3)[LABELS]
    return -np.sum(onehot * np.log(p)) / X.shape[0]


def mlp(W1, b1, W2):
    h = np.tanh(X @ W1 + b1)
    out = h @ W2
    return 0.5 * np.sum((out - Y) ** 2)


def recurrence(a, x0):
    n = 6
    y = np.zeros(n)
    y[0] = x0
    for i in range(1, n):
        y[i] = a * y[i - 1] + np.sin(y[i - 1])
    return np.sum(y * np.arange(1, n + 1))


def recurrence_matrix(A, h0):
    hs = np.zeros((4, h0.shape[0]))
    h = h0
    for t in range(4):
        h = np.tanh(A @ h + 0.1 * t)
        hs[t] = h
    hs[1:3] += hs[0:2] * 0.5
    return np.sum(hs ** 2)


def loop_over_rows(M, v):
    total = 0.0
    for row in M:
        total = total + np.exp(-np.sum((row - v) ** 2))
    return total


def loop_with_index(M):
    acc = np.zeros(M.shape[1])
    for i in range(len(M)):
        acc += M[i] * (i + 1)
        acc[0] = acc[0] * 0.9
    return acc @ acc


def piecewise(x):
    # a smooth-ish piecewise function: where() picks per entry, both branches computed
    inner = np.where(np.abs(x) < 1.0, 0.5 * x ** 2, np.abs(x) - 0.5)  # Huber
    outer = np.where(x > 1.5, np.log(np.abs(x)), x)
    return np.sum(inner) + np.sum(outer * x)


def normalize_columns(A):
    centered = A - A.mean(axis=0)
    scaled = centered / np.sqrt(centered.var(axis=0) + 1e-3)
    return np.sum(scaled[:, 0] * scaled[:, 1]) + np.linalg.norm(scaled)


def gaussian_nll(mu, L):
    # a lower-triangular Cholesky factor: log-det and a solve
    S = L @ L.T + np.eye(3)
    d = X - mu
    sol = np.linalg.solve(S, d.T)
    _, logdet = np.linalg.slogdet(S)
    return 0.5 * np.sum(d.T * sol) + 0.5 * len(X) * logdet


def build_from_scalars(a, b):
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    v = np.array([b, 1.0])
    return np.sum((R @ v) ** 2) + np.trace(R) * b


def stacked_features(x):
    feats = np.stack([x, x ** 2, np.sin(x)], axis=1)
    flat = np.concatenate([feats.ravel(), np.cumsum(x)])
    return np.sum(flat[::2]) - np.prod(feats[0])


PROGRAMS = [
    (linear_mse, (RNG.standard_normal(3), 0.2), (0, 1)),
    (linear_mse_ridge, (RNG.standard_normal(3), -0.1, 0.3), (0, 1, 2)),
    (softmax_cross_entropy, (RNG.standard_normal((3, 3)), RNG.standard_normal(3)), (0, 1)),
    (softmax_one_hot, (RNG.standard_normal((3, 3)),), 0),
    (mlp, (RNG.standard_normal((3, 5)), RNG.standard_normal(5), RNG.standard_normal(5)),
     (0, 1, 2)),
    (recurrence, (0.7, 0.4), (0, 1)),
    (recurrence_matrix, (0.5 * RNG.standard_normal((3, 3)), RNG.standard_normal(3)), (0, 1)),
    (loop_over_rows, (RNG.standard_normal((5, 3)), RNG.standard_normal(3)), (0, 1)),
    (loop_with_index, (RNG.standard_normal((4, 3)),), 0),
    (piecewise, (np.array([-2.3, -0.7, 0.2, 0.9, 1.2, 1.8, 3.0]),), 0),
    (normalize_columns, (RNG.standard_normal((6, 2)),), 0),
    (gaussian_nll, (RNG.standard_normal(3), np.tril(RNG.standard_normal((3, 3)))), (0, 1)),
    (build_from_scalars, (0.3, 1.7), (0, 1)),
    (stacked_features, (RNG.uniform(0.5, 1.5, 4),), 0),
]


@pytest.mark.parametrize("f, args, wrt", PROGRAMS, ids=[p[0].__name__ for p in PROGRAMS])
def test_program_matches_finite_differences(f, args, wrt):
    first = check_gradient(f, *args, wrt=wrt, rtol=1e-5, atol=1e-6)
    grad = gradient(f, wrt)
    misses = grad.cache_info().misses
    second = grad(*args)
    assert grad.cache_info().misses == misses, "the second call lowered the function again"
    for a, b in zip(first if isinstance(wrt, tuple) else (first,),
                    second if isinstance(wrt, tuple) else (second,)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("f, args, wrt", PROGRAMS[:4], ids=[p[0].__name__ for p in PROGRAMS[:4]])
def test_value_and_gradient(f, args, wrt):
    value, grads = value_and_gradient(f, wrt)(*args)
    assert value == f(*args)
    expected = gradient(f, wrt)(*args)
    for a, b in zip(grads, expected):
        np.testing.assert_array_equal(a, b)


# -- dtypes -----------------------------------------------------------------------------------
def energy(x):
    return np.sum(np.sin(x) * x) + np.mean(x ** 2)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(5,), (2, 3), (2, 1, 3), ()])
def test_gradient_keeps_shape_and_dtype(dtype, shape):
    x = np.asarray(RNG.uniform(-1, 1, shape), dtype=dtype)
    g = gradient(energy)(x)
    assert isinstance(g, np.ndarray)
    assert g.shape == x.shape and g.dtype == x.dtype
    x64 = x.astype(np.float64)
    expected = np.sin(x64) + x64 * np.cos(x64) + 2 * x64 / max(x.size, 1)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(g, expected, rtol=tol, atol=tol)


def weighted(x, w):
    return np.sum(w * x * x)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8])
def test_integer_array_is_treated_as_real(dtype):
    x = np.array([1, 2, 3], dtype=dtype)
    w = np.array([0.5, -1.0, 2.0])
    g = gradient(weighted)(x, w)
    assert g.dtype == np.float64 and g.shape == (3,)
    np.testing.assert_allclose(g, 2 * w * x)
    check_gradient(weighted, x.astype(np.float64), w)


def test_mixed_float32_and_float64_arguments():
    x = np.ones(3, dtype=np.float32)
    w = np.array([1.0, 2.0, 3.0])
    gx, gw = gradient(weighted, (0, 1))(x, w)
    assert gx.dtype == np.float32 and gw.dtype == np.float64
    np.testing.assert_allclose(gx, 2 * w)
    np.testing.assert_allclose(gw, np.ones(3))


@pytest.mark.parametrize("value", [np.array([1 + 2j, 3.0]),
                                   np.array([1.0, 2.0], dtype=np.complex64), 1 + 2j])
def test_complex_argument_raises_badwrt(value):
    with pytest.raises(ad_transform.BadWrt, match="complex"):
        gradient(energy)(value)


def test_bool_array_argument_raises_badwrt():
    with pytest.raises(ad_transform.BadWrt, match="array of bool"):
        gradient(energy)(np.array([True, False]))


def test_complex_argument_not_differentiated_is_fine():
    def f(x, c):
        return np.sum(np.abs(c) * x)
    g = gradient(f)(np.ones(2), np.array([3 + 4j, 1j]))
    np.testing.assert_allclose(g, [5.0, 1.0])


# -- shapes are part of the control path ------------------------------------------------------
def shape_dependent(x):
    n = x.shape[0]
    if x.ndim == 2:
        x = x.sum(axis=1)
    return np.sum(x * np.arange(n)) / len(x)


def test_new_shape_is_a_new_path():
    grad = gradient(shape_dependent)
    grad.cache_clear()
    g1 = grad(np.ones(4))
    assert grad.cache_info().misses == 1
    g1b = grad(np.full(4, 2.0))  # same shape and dtype: the cached path
    assert grad.cache_info().misses == 1 and grad.cache_info().hits == 1
    np.testing.assert_array_equal(g1, g1b)
    g2 = grad(np.ones(5))  # new shape: a miss, and the right answer for it
    assert grad.cache_info().misses == 2
    np.testing.assert_allclose(g2, np.arange(5) / 5)
    g3 = grad(np.ones((3, 2)))  # new number of dimensions: another path
    assert grad.cache_info().misses == 3
    np.testing.assert_allclose(g3, np.repeat(np.arange(3)[:, None] / 3, 2, axis=1))
    grad(np.ones(4, dtype=np.float32))  # new dtype: another path
    assert grad.cache_info().misses == 4
    np.testing.assert_array_equal(grad(np.ones(4)), g1)  # the old paths are still there
    assert grad.cache_info().misses == 4
    assert grad.cache_info().currsize == 4


def test_global_array_is_read_at_run_time(monkeypatch):
    module = sys.modules[__name__]
    grad = gradient(scaled)
    grad.cache_clear()
    np.testing.assert_array_equal(grad(np.ones(2)), [1.0, 2.0])
    monkeypatch.setattr(module, "SCALE", np.array([3.0, -1.0]))
    np.testing.assert_array_equal(grad(np.ones(2)), [3.0, -1.0])
    assert grad.cache_info().misses == 1
    monkeypatch.setattr(module, "SCALE", np.array([[1.0], [2.0]]))  # a new shape: a new path
    np.testing.assert_array_equal(grad(np.ones(2)), [3.0, 3.0])
    assert grad.cache_info().misses == 2


AXIS = 1


def cumsum_along(x):
    return np.sum(np.cumsum(x, axis=AXIS) ** 2)


def test_global_int_used_as_axis_is_a_constant_of_the_path(monkeypatch):
    grad = gradient(cumsum_along)
    x = RNG.standard_normal((2, 3))
    check_gradient(cumsum_along, x)
    monkeypatch.setattr(sys.modules[__name__], "AXIS", 0)
    misses = grad.cache_info().misses
    g = grad(x)  # the guard on AXIS sends the call to a new path
    assert grad.cache_info().misses == misses + 1
    np.testing.assert_allclose(g, check_gradient(cumsum_along, x))


SCALE = np.array([1.0, 2.0])


def scaled(x):
    return np.sum(SCALE * x)


def test_gradient_is_owned_by_the_caller():
    u = np.array([1.0, 2.0, 3.0])

    def f(x):
        return np.sum(u * x)
    g = gradient(f)
    first = g(np.zeros(3))
    first[:] = 99.0  # mutating a returned gradient changes nothing else
    np.testing.assert_array_equal(u, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(g(np.zeros(3)), [1.0, 2.0, 3.0])


def test_writing_into_an_input_array_is_refused():
    def f(x):
        x[0] = 1.0
        return np.sum(x)
    with pytest.raises(ad_transform.UnsupportedSyntax, match="copy it first"):
        gradient(f)(np.ones(3))


def copy_then_write(x):
    y = x * 1.0  # a new array, as in NumPy: writing into y leaves x alone
    y[0] = 0.0
    return np.sum(y * x)


def test_writing_into_a_computed_copy():
    x = np.array([1.0, 2.0, 3.0])
    check_gradient(copy_then_write, x)


# -- the generated code stays lean -------------------------------------------------------------
def lean(x, w):
    h = np.tanh(x @ w)
    y = np.zeros(3)
    y[0] = h[0]
    y[2] = h[1] * 2.0
    return np.sum(y) + np.sum(h * h)


def same_shapes(a, b):
    c = a * b + np.sin(a)
    d = np.exp(c) / (1.0 + b)
    return np.sum(d * c)


def _code(src):
    """The statements of a generated source, without comments."""
    return "\n".join(line.split("#")[0] for line in src.splitlines())


def test_no_zero_buffers_for_adjoints_never_read():
    x, w = RNG.standard_normal((3, 4)), RNG.standard_normal(4)
    src = gradient(lean, (0, 1)).source(x, w)
    code = _code(src)
    # no adjoint starts as a buffer of zeros (the function's own np.zeros(3) is not
    # needed by the derivative either, so it is pruned)
    assert not re.search(r"zeros(_like)?\(", code), src
    assert "nan" not in code, src  # constants are not named after values they do not have


def unused_branch(x, y):
    a = np.tanh(x) * y  # a and b never reach the result
    b = a @ a
    c = np.cos(x)
    return np.sum(c * c) + 0.0 * np.sum(y[:1])


def test_dead_adjoints_are_pruned():
    x, y = RNG.standard_normal(4), RNG.standard_normal(4)
    src = gradient(unused_branch, (0, 1)).source(x, y)
    code = _code(src)
    assert "tanh(" not in code and "@" not in code, src
    assert len(re.findall(r"zeros(_like)?\(", code)) == 0, src
    check_gradient(unused_branch, x, y, wrt=(0, 1))


def test_no_fit_shape_where_shapes_match():
    a, b = RNG.standard_normal((3, 4)), RNG.uniform(0.5, 1.5, (3, 4))
    src = gradient(same_shapes, (0, 1)).source(a, b)
    assert "fit_shape" not in src, src
    assert "broadcast_to" not in src, src


def test_fit_shape_only_where_broadcasting_happened():
    a, b = RNG.standard_normal((3, 4)), RNG.uniform(0.5, 1.5, (1, 4))
    src = gradient(same_shapes, (0, 1)).source(a, b)
    # b was broadcast over axis 0: its adjoint is summed back over that axis
    assert re.search(r"\.sum\(axis=0, keepdims=True\)", _code(src)), src
    check_gradient(same_shapes, a, b, wrt=(0, 1))


def clip_one_bound(x):
    return np.sum(x.clip(0.1) ** 2) + np.sum(np.clip(x, None, 0.4) * x)


def test_clip_with_one_bound():
    x = np.array([-0.7, 0.05, 0.3, 0.9])
    check_gradient(clip_one_bound, x)
    check_gradient(clip_one_bound, x)  # the cached path
