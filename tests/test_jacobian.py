"""``vjp`` and ``jacobian``: against finite differences and autograd, both modes.

Jacobians are compared with a central-difference Jacobian and with
``autograd.jacobian`` of the same source (``np``/``math`` rebound); forward and
reverse mode must agree with each other; ``vjp``'s pullback is checked with
dot products against ``jvp``.
"""
from __future__ import annotations

import math
import types

import numpy as np
import pytest

from ad_transform import (BadWrt, NonScalarOutput, forward_derivative, gradient, jacobian, jvp,
                          vjp)

RNG = np.random.default_rng(11)


def fd_jacobian(f, args, i, eps=1e-6):
    """d f / d args[i] by central differences, shaped out.shape + arg.shape."""
    x = np.asarray(args[i], float)
    out = np.asarray(f(*args), float)
    jac = np.zeros(out.shape + x.shape)
    for idx in np.ndindex(x.shape):
        h = eps * max(1.0, abs(x[idx]))
        up, down = x.copy(), x.copy()
        up[idx] += h
        down[idx] -= h
        a_up, a_down = list(args), list(args)
        a_up[i] = up if x.shape else float(up)
        a_down[i] = down if x.shape else float(down)
        col = (np.asarray(f(*a_up), float) - np.asarray(f(*a_down), float)) / (2 * h)
        jac[(Ellipsis,) + idx] = col
    return jac


def autograd_jacobian(f, args, i):
    import autograd
    import autograd.numpy as anp
    shim = types.SimpleNamespace(sin=anp.sin, cos=anp.cos, tanh=anp.tanh, exp=anp.exp,
                                 log=anp.log, sqrt=anp.sqrt)
    g = types.FunctionType(f.__code__, {**f.__globals__, "np": anp, "math": shim},
                           f.__name__, f.__defaults__, f.__closure__)

    def fi(xi):
        a = list(args)
        a[i] = xi
        return g(*a)
    return np.asarray(autograd.jacobian(fi)(np.asarray(args[i], float)))


def close(a, b, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=rtol, atol=atol)


# -- functions ------------------------------------------------------------------------------

def layer(W, x, b):
    return np.tanh(W @ x + b)


def branchy(x, scale):
    y = x * scale
    if np.sum(y) > 1.0:
        y = y / np.sum(y)
    for k in range(2):
        y = np.sin(y) + y[::-1] * 0.5
    return y


def reduce_and_index(A):
    return np.concatenate([A.sum(axis=0), A[1:, 0] ** 2, np.max(A) * np.min(A) * np.ones(1)])


def scalar_to_array(t):
    return np.array([math.sin(t), t * t, math.exp(-t)])


def array_to_scalar(x):
    return np.sum(np.sin(x) * x) + np.prod(x[:2])


def scalar_scalar(x, y):
    if x > y:
        return x * math.sin(y)
    return y * math.cos(x)


CASES = [
    (layer, (RNG.normal(size=(3, 4)), RNG.normal(size=4), RNG.normal(size=3)), 0),
    (layer, (RNG.normal(size=(3, 4)), RNG.normal(size=4), RNG.normal(size=3)), 1),
    (layer, (RNG.normal(size=(2, 5)), RNG.normal(size=5), RNG.normal(size=2)), 2),
    (branchy, (RNG.uniform(0.1, 1, 4), 0.9), 0),
    (branchy, (RNG.uniform(0.1, 1, 4), 0.1), 0),
    (branchy, (RNG.uniform(0.1, 1, 4), 0.9), 1),
    (reduce_and_index, (RNG.uniform(0.2, 1.0, (3, 2)),), 0),
    (scalar_to_array, (0.7,), 0),
    (array_to_scalar, (RNG.uniform(0.2, 1.0, 5),), 0),
    (scalar_scalar, (2.0, 1.0), 0),
    (scalar_scalar, (0.5, 1.0), 1),
]
IDS = [f"{f.__name__}-{i}-wrt{w}" for i, (f, a, w) in enumerate(CASES)]


@pytest.mark.parametrize("f, args, wrt", CASES, ids=IDS)
def test_jacobian_matches_finite_differences_autograd_and_both_modes(f, args, wrt):
    out, arg = f(*args), args[wrt]
    jac = jacobian(f, wrt)(*args)
    assert np.shape(jac) == np.shape(out) + np.shape(arg)
    if not np.shape(jac):
        assert type(jac) is float
    close(jac, fd_jacobian(f, args, wrt), rtol=1e-5, atol=1e-6)
    if f is not scalar_scalar:  # autograd's math shim has no branch on boxes
        close(jac, autograd_jacobian(f, args, wrt), rtol=1e-10, atol=1e-12)
    fwd = jacobian(f, wrt, mode="forward")(*args)
    rev = jacobian(f, wrt, mode="reverse")(*args)
    close(fwd, rev, rtol=1e-12, atol=1e-14)
    close(jac, fwd, rtol=1e-12, atol=1e-14)


def test_jacobian_picks_the_smaller_side():
    """Forward mode for a small input (a jvp path is compiled), reverse for a small output."""
    def wide(x):
        return np.sin(x) * 2.0

    def tall(t):
        return np.array([t, t * t, t ** 3, math.sin(t)])

    def narrow(x):
        return np.array([np.sum(x), np.sum(x * x)])

    for f, args, mode in [(tall, (0.3,), "jvp"), (narrow, (np.arange(6.0),), "vjp")]:
        jacobian(f)(*args)
        from ad_transform.cache import _CACHES
        kinds = {key[0] for key in _CACHES[f]}
        assert kinds == {mode}, kinds
    close(jacobian(wide)(np.arange(3.0)), np.diag(2.0 * np.cos(np.arange(3.0))))


def test_tuple_wrt_gives_a_tuple_of_jacobians():
    W, x, b = RNG.normal(size=(3, 4)), RNG.normal(size=4), RNG.normal(size=3)
    for mode in (None, "forward", "reverse"):
        jW, jx, jb = jacobian(layer, wrt=(0, "x", 2), mode=mode)(W, x, b)
        assert jW.shape == (3, 3, 4) and jx.shape == (3, 4) and jb.shape == (3, 3)
        for i, j in enumerate((jW, jx, jb)):
            close(j, fd_jacobian(layer, (W, x, b), i))


def test_jacobian_of_a_scalar_function_is_its_gradient():
    x = RNG.uniform(0.2, 1.0, 5)
    close(jacobian(array_to_scalar)(x), gradient(array_to_scalar)(x), rtol=1e-12)


def test_jacobian_refuses_outputs_that_are_not_numbers():
    def f(x):
        return x, {x * 2.0}  # a set: not a tree (tuple outputs: test_transform_trees.py)

    with pytest.raises(NonScalarOutput, match="float, an array"):
        jacobian(f)(1.0)


# -- vjp ------------------------------------------------------------------------------------

@pytest.mark.parametrize("f, args, wrt", CASES, ids=IDS)
def test_vjp_matches_jacobian_transpose_and_jvp(f, args, wrt):
    value, pullback = vjp(f, *args)
    close(value, f(*args), rtol=0, atol=0)
    v = RNG.normal(size=np.shape(value)) if np.ndim(value) else float(RNG.normal())
    grads = pullback(v)
    assert len(grads) == len(args)
    for i, (g, a) in enumerate(zip(grads, args)):
        if isinstance(a, int) and not isinstance(a, float):
            continue
        assert np.shape(g) == np.shape(a)
        expected = np.tensordot(v, fd_jacobian(f, args, i), axes=np.ndim(v))
        close(g, expected, rtol=1e-5, atol=1e-6)
        u = RNG.normal(size=np.shape(a)) if np.ndim(a) else float(RNG.normal())
        tangents = tuple(u if k == i else None for k in range(len(args)))
        _, ju = jvp(f, args, tangents)
        close(np.sum(v * ju), np.sum(g * u), rtol=1e-10, atol=1e-12)


def test_vjp_of_tuple_outputs_and_non_numbers():
    def f(x, label, n):
        y = x
        for _ in range(n):
            y = y * x
        return np.sum(y), y[0] * 2.0

    x = np.array([0.5, 1.5])
    (s, first), pullback = vjp(f, x, "tag", 2)
    gx, glabel, gn = pullback((1.0, 3.0))
    assert glabel is None
    assert gn == 0.0  # an int counts as a number: its gradient is zero here
    close(gx, 3 * x ** 2 + np.array([3 * 0.5 ** 2 * 2.0 * 3.0, 0.0]))


def test_vjp_snapshots_array_arguments():
    def f(x):
        return x * x

    x = np.array([1.0, 2.0])
    _, pullback = vjp(f, x)
    x[:] = 10.0
    close(pullback(np.ones(2))[0], [2.0, 4.0])


def test_vjp_refuses_a_cotangent_of_the_wrong_shape():
    def f(x):
        return np.sin(x)

    _, pullback = vjp(f, np.arange(3.0))
    close(pullback(np.ones(3))[0], np.cos(np.arange(3.0)))
    with pytest.raises(ValueError, match="cotangent for the output must be an array of shape"):
        pullback(np.ones(2))
    with pytest.raises(ValueError, match="cotangent"):
        pullback(1.0)  # would broadcast silently


def test_vjp_pullback_reuses_the_compiled_path():
    def f(x):
        return x * 3.0 if x > 0 else -x

    _, pb = vjp(f, 2.0)
    assert pb(1.0) == (3.0,)
    _, pb2 = vjp(f, 5.0)
    assert pb2(2.0) == (6.0,)
    _, pb3 = vjp(f, -1.0)
    assert pb3(1.0) == (-1.0,)
    from ad_transform.cache import _CACHES
    (cache,) = [c for k, c in _CACHES[f].items() if k[0] == "vjp"]
    assert cache.info().misses == 2 and cache.info().hits >= 1


def test_keyword_only_parameters():
    def f(x, *, k):
        return x * k

    with pytest.raises(BadWrt, match="by position only"):
        forward_derivative(f)  # its compiled signature takes every argument by position
    with pytest.raises(TypeError, match="no value for the parameter 'k'"):
        vjp(f, 1.0)
    close(jacobian(f)(1.5, k=2.0), 2.0, rtol=0)  # jacobian binds as f does

    def g(x, *, k=3.0):
        return x * k

    close(vjp(g, 1.5)[1](1.0)[0], 3.0, rtol=0)  # a default fills it in
    close(jvp(g, (1.5,), (1.0,))[1], 3.0, rtol=0)


def test_pullback_returns_arrays_the_caller_owns():
    def ident(x):
        return x

    v = np.ones(3)
    _, pullback = vjp(ident, np.arange(3.0))
    (g,) = pullback(v)
    assert not np.shares_memory(g, v)
    close(g, v)


def test_vjp_with_defaults_and_repeated_calls():
    def f(x, scale=3.0):
        return x * scale

    for x in (1.0, 2.0, 4.0):
        value, pullback = vjp(f, x)
        assert value == 3.0 * x and pullback(1.0) == (3.0,)
    value, pullback = vjp(f, 2.0, 5.0)
    assert pullback(1.0) == (5.0, 2.0)
    from ad_transform.cache import _CACHES
    misses = [c.info().misses for k, c in _CACHES[f].items() if k[0] == "vjp"]
    assert sorted(misses) == [1, 1]  # one path per wrt: (0,) with the default, and (0, 1)


# -- nesting (derivatives of derivatives: the lowering inlines gradient's generated code) --

def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def test_jacobian_of_gradient_is_the_hessian():
    from ad_transform import hessian
    x = np.array([0.5, -0.3, 1.2, 0.8])
    H = hessian(rosen)(x)
    for mode in (None, "forward", "reverse"):
        close(jacobian(gradient(rosen), mode=mode)(x), H, rtol=1e-10, atol=1e-10)
    close(H, fd_jacobian(gradient(rosen), (x,), 0), rtol=1e-5, atol=1e-4)


def test_jvp_and_vjp_of_gradient_are_hessian_products():
    from ad_transform import hessian
    x, u, v = np.array([0.5, -0.3, 1.2]), RNG.normal(size=3), RNG.normal(size=3)
    H = hessian(rosen)(x)
    g, Hu = jvp(gradient(rosen), (x,), (u,))
    close(g, gradient(rosen)(x), rtol=0, atol=0)
    close(Hu, H @ u, rtol=1e-10, atol=1e-10)
    _, pullback = vjp(gradient(rosen), x)
    close(pullback(v)[0], v @ H, rtol=1e-10, atol=1e-10)

    def scalar(a, b):
        if a > b:
            return a * math.sin(b) + a ** 3
        return b * b
    _, t = jvp(gradient(scalar, wrt=(0, 1)), (2.0, 1.0), (1.0, 0.0))
    close(t, (6.0 * 2.0, math.cos(1.0)), rtol=1e-12)
