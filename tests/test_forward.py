"""Forward mode: ``jvp`` and ``forward_derivative``.

Every tangent is checked against central finite differences along the
tangent direction, and against a second oracle: the reverse-mode gradient
contracted with the tangent (scalar corpus), or HIPS autograd running the same
source with ``np``/``math`` rebound (NumPy programs).
"""
from __future__ import annotations

import inspect
import math
import types

import numpy as np
import pytest

from ad_transform import (BadWrt, MissingRule, forward_derivative, gradient, jvp, vjp)
from ad_transform.rules import numpy as N
from ad_transform.rules.core import call_prim, defvjp
from functions import CASES

RNG = np.random.default_rng(7)


# -- oracles ----------------------------------------------------------------------------------

def fd_directional(f, primals, tangents, eps=1e-6):
    """(f(x + h t) - f(x - h t)) / 2h, a tuple for a tuple output."""
    scale = max([1.0] + [float(np.max(np.abs(p))) for p, t in zip(primals, tangents)
                         if t is not None])
    h = eps * scale

    def at(sign):
        args = [p if t is None else (p + sign * h * t) for p, t in zip(primals, tangents)]
        return f(*args)

    up, down = at(1.0), at(-1.0)
    if isinstance(up, tuple):
        return tuple((np.asarray(u, float) - np.asarray(d, float)) / (2 * h)
                     for u, d in zip(up, down))
    return (np.asarray(up, float) - np.asarray(down, float)) / (2 * h)


def autograd_jvp(f, primals, tangents):
    """J t by autograd on the same source: the Jacobian of each argument, contracted."""
    import autograd
    import autograd.numpy as anp
    shim = types.SimpleNamespace(sin=anp.sin, cos=anp.cos, tanh=anp.tanh, exp=anp.exp,
                                 log=anp.log, sqrt=anp.sqrt, pi=math.pi)
    g = types.FunctionType(f.__code__, {**f.__globals__, "np": anp, "math": shim},
                           f.__name__, f.__defaults__, f.__closure__)
    total = 0.0
    for i, t in enumerate(tangents):
        if t is None:
            continue

        def fi(xi, i=i):
            args = list(primals)
            args[i] = xi
            return g(*args)
        jac = np.asarray(autograd.jacobian(fi)(np.asarray(primals[i], float)))
        total = total + np.tensordot(jac, np.asarray(t, float), axes=np.ndim(t))
    return total


def close(a, b, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=rtol, atol=atol)


# -- the scalar corpus: branches, loops, helpers ---------------------------------------------

IDS = [f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)]


def _indices(f, wrt):
    names = list(inspect.signature(f).parameters)
    wrt = wrt if isinstance(wrt, (tuple, list)) else (wrt,)
    return tuple(names.index(w) if isinstance(w, str) else w for w in wrt)


def _tangents(args, wrt):
    return tuple(float(RNG.uniform(0.5, 1.5)) if i in wrt else None for i in range(len(args)))


@pytest.mark.parametrize("f, args, wrt", CASES, ids=IDS)
def test_jvp_of_corpus_matches_finite_differences_and_gradient(f, args, wrt):
    params = inspect.signature(f).parameters.values()
    named = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
    wrt = _indices(f, wrt)
    tangents = _tangents(args, wrt)
    value, tangent = jvp(f, args, tangents)
    assert value == f(*args)
    assert type(tangent) is float
    close(tangent, fd_directional(f, args, tangents), rtol=1e-4, atol=1e-5)
    if len(args) > named:  # f(*args): each argument its own tangent, as in JAX
        grads = [vjp(f, *args)[1](1.0)[i] for i in wrt]
    else:
        grads = gradient(f, wrt)(*args)
    close(tangent, sum(g * tangents[i] for g, i in zip(grads, wrt)), rtol=1e-9, atol=1e-12)
    assert jvp(f, args, tangents) == (value, tangent)  # the cached path


def _smooth_step(v):
    return v * v * (3.0 - 2.0 * v) if 0.0 < v < 1.0 else (0.0 if v <= 0.0 else 1.0)


def scalar_branches(x, y):
    if x * y > 1.0:
        z = math.exp(-x) * y
    else:
        z = math.log(x + y) - x
    return z + _smooth_step(y - 0.5)


def scalar_loop(x, a, n):
    acc = 0.0
    for k in range(n):
        x = math.sin(x) * a + 0.1 * x
        if x > 0.5:
            acc = acc + x * x
        else:
            acc = acc - math.sqrt(abs(x) + 1.0)
    return acc + math.tanh(x)


SCALAR_CASES = [(scalar_branches, (2.0, 0.9)), (scalar_branches, (0.4, 0.7)),
                (scalar_loop, (1.0, 0.9, 5)), (scalar_loop, (0.2, 1.4, 8))]


@pytest.mark.parametrize("f, args", SCALAR_CASES, ids=[f"{c[0].__name__}-{i}"
                                                       for i, c in enumerate(SCALAR_CASES)])
def test_jvp_of_scalar_programs_matches_autograd(f, args):
    tangents = tuple(None if isinstance(a, int) else float(RNG.uniform(0.5, 1.5)) for a in args)
    value, tangent = jvp(f, args, tangents)
    assert value == f(*args)
    close(tangent, fd_directional(f, args, tangents), rtol=1e-5, atol=1e-7)
    close(tangent, autograd_jvp(f, args, tangents), rtol=1e-12, atol=1e-14)


# -- NumPy programs ------------------------------------------------------------------------------

def broadcast(x, b):
    return np.tanh(x[:, None] * b + b) * np.exp(-x[:, None])


def reductions(x):
    return np.array([np.sum(x * x), np.mean(np.sin(x), axis=0).sum(), np.var(x), np.std(x, axis=1).sum(),
                     np.max(x), np.prod(x[0]), np.linalg.norm(x)])


def matmul_chain(W, x, b):
    h = np.tanh(W @ x + b)
    return W.T @ h + np.dot(x, x) * x


def indexing(x):
    y = x[1:, ::2] * 2.0
    z = x[[0, 2], 1]
    w = np.where(x > 0.5, x, -x)
    return np.concatenate([y.ravel(), z, w.sum(axis=0)])


def item_writes(x, y):
    out = np.zeros(4)
    for i in range(3):
        out[i] = x[i] * y
    out[3] = np.sum(x) ** 2
    return out * x[0]


def loop_and_branch(x, n):
    for _ in range(n):
        if np.sum(x) > 0:
            x = np.sin(x) * 1.5 + 0.1
        else:
            x = x * x
    return x


def _relu(v):
    return np.maximum(v, 0.0)


def with_helper(W, x):
    return _relu(W @ x - 0.2).sum() + np.log(np.sum(np.exp(x)))


NUMPY_CASES = [
    (broadcast, (RNG.uniform(0.1, 1, 4), RNG.uniform(0.1, 1, (4, 3)))),
    (reductions, (RNG.uniform(0.2, 1.0, (3, 4)),)),
    (matmul_chain, (RNG.normal(size=(3, 4)), RNG.normal(size=4), RNG.normal(size=3))),
    (indexing, (RNG.uniform(0, 1, (3, 4)),)),
    (item_writes, (RNG.uniform(0, 1, 5), 0.7)),
    (loop_and_branch, (RNG.uniform(0.1, 1, 4), 3)),
    (loop_and_branch, (-RNG.uniform(0.1, 1, 4), 2)),
    (with_helper, (RNG.normal(size=(3, 2)), RNG.normal(size=2))),
]


def _array_tangents(args):
    return tuple(None if isinstance(a, int) else
                 (RNG.normal(size=np.shape(a)) if np.ndim(a) else float(RNG.normal()))
                 for a in args)


@pytest.mark.parametrize("f, args", NUMPY_CASES, ids=[c[0].__name__ for c in NUMPY_CASES])
def test_jvp_of_numpy_programs(f, args):
    tangents = _array_tangents(args)
    value, tangent = jvp(f, args, tangents)
    close(value, f(*args), rtol=1e-12, atol=0)
    assert np.shape(tangent) == np.shape(value)
    close(tangent, fd_directional(f, args, tangents), rtol=1e-4, atol=1e-6)
    if f is not item_writes:  # autograd has no item assignment
        close(tangent, autograd_jvp(f, args, tangents), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("f, args", NUMPY_CASES, ids=[c[0].__name__ for c in NUMPY_CASES])
def test_jvp_and_vjp_agree_on_dot_products(f, args):
    """<v, J u> computed forward (jvp, then v.) and backward (vjp(v), then .u)."""
    u = _array_tangents(args)
    value, ju = jvp(f, args, u)
    v = RNG.normal(size=np.shape(value)) if np.ndim(value) else float(RNG.normal())
    _, pullback = vjp(f, *args)
    grads = pullback(v)
    backward = sum(float(np.sum(g * t)) for g, t in zip(grads, u) if t is not None)
    close(float(np.sum(v * ju)), backward, rtol=1e-9, atol=1e-10)


def more_ops(x, A):
    s = np.sort(x)
    c = np.cumsum(x) + np.cumprod(x)
    d = np.linalg.det(A) + np.log(np.abs(np.linalg.slogdet(A)[1]) + 1.0)
    inv = np.linalg.inv(A) @ x[:3]
    sol = np.linalg.solve(A, x[:3])
    e = np.einsum("ij,j->i", A, x[:3])
    st = np.stack([x[:3], x[1:4]]).T.reshape(-1)
    return np.concatenate([s, c, [d], inv, sol, e, st, np.abs(x), np.clip(x, 0.3, 0.8),
                           np.hypot(x, 1.0), np.maximum(x, 0.5)])


def test_jvp_of_more_operations():
    args = (np.array([0.2, 0.9, 0.45, 0.7]), np.array([[2.0, 0.3, 0.1], [0.2, 1.5, 0.4],
                                                        [0.1, 0.2, 1.8]]))
    tangents = _array_tangents(args)
    value, tangent = jvp(more_ops, args, tangents)
    close(tangent, fd_directional(more_ops, args, tangents), rtol=1e-4, atol=1e-6)
    _, pullback = vjp(more_ops, *args)
    v = RNG.normal(size=value.shape)
    grads = pullback(v)
    close(float(v @ tangent), sum(float(np.sum(g * t)) for g, t in zip(grads, tangents)),
          rtol=1e-9, atol=1e-10)


def test_tuple_output_and_constant_parts():
    def f(x, y):
        return x * y, np.sin(x), 3.0, y

    x = np.array([0.5, 1.0])
    value, tangent = jvp(f, (x, 2.0), (np.ones(2), 0.0))
    assert len(tangent) == 4
    close(tangent[0], 2.0 * np.ones(2))
    close(tangent[1], np.cos(x))
    assert tangent[2] == 0.0 and tangent[3] == 0.0


# -- the compiled form ----------------------------------------------------------------------------

def seed(x1, x2):
    return math.log(x1) + x1 * math.sin(x2)


def test_forward_derivative_compiled_form_and_source():
    fd = forward_derivative(seed, wrt=(0, 1))
    value, tangent = fd(2.0, 1.0, 0.3, -0.7)
    close(tangent, fd_directional(seed, (2.0, 1.0), (0.3, -0.7)), rtol=1e-6)
    assert value == seed(2.0, 1.0)
    src = fd.source(2.0, 1.0, 0.3, -0.7)
    lines = [line.strip() for line in src.splitlines()]
    # the tangent of each primal statement follows it
    assert lines.index("t_log = t_x1 / x1") == lines.index("log = math.log(x1)") + 1
    assert "def seed_jvp(x1, x2, t_x1, t_x2):" in src
    single = forward_derivative(seed, wrt="x2")
    close(single(2.0, 1.0, 1.0)[1], 2.0 * math.cos(1.0), rtol=1e-12)


def test_jvp_caches_one_path_per_branch():
    def f(x):
        if x > 0:
            return x * x
        return math.sin(x)

    fd = forward_derivative(f)
    fd.cache_clear()
    assert jvp(f, (3.0,), (1.0,))[1] == 6.0
    assert fd.cache_info().misses == 1
    assert jvp(f, (2.0,), (1.0,))[1] == 4.0
    assert fd.cache_info().misses == 1  # the guard passed: same path
    assert jvp(f, (-1.0,), (1.0,))[1] == math.cos(-1.0)
    assert fd.cache_info().misses == 2  # the other branch: a new path
    assert jvp(f, (5.0,), (2.0,))[1] == 20.0
    assert jvp(f, (-2.0,), (1.0,))[1] == math.cos(-2.0)
    info = fd.cache_info()
    assert info.misses == 2 and info.currsize == 2 and info.hits >= 3


def test_tangent_of_another_type_takes_another_path():
    def f(x):
        return x * 3.0

    assert jvp(f, (2.0,), (1.0,)) == (6.0, 3.0)
    assert jvp(f, (2.0,), (1,)) == (6.0, 3.0)  # an int tangent: guarded, compiled apart
    x = np.arange(3.0)
    close(jvp(f, (x,), (np.ones(3),))[1], 3.0 * np.ones(3))


def test_tangent_of_the_wrong_shape_is_refused():
    def f(x):
        return np.sum(x * x)

    x = np.arange(3.0)
    assert jvp(f, (x,), (np.ones(3),))[1] == 6.0
    with pytest.raises(ValueError, match="tangent for x must be an array of shape"):
        jvp(f, (x,), (np.ones(4),))
    with pytest.raises(ValueError, match="tangent for x must be"):
        jvp(f, (x,), (1.0,))  # would broadcast silently
    with pytest.raises(ValueError, match="primals and 2 tangents"):
        jvp(f, (x,), (np.ones(3), 1.0))


def test_none_tangent_leaves_an_argument_out():
    def f(x, n):
        for _ in range(n):
            x = x * x
        return x

    assert jvp(f, (1.5, 2), (1.0, None)) == (1.5 ** 4, 4 * 1.5 ** 3)


def test_output_tangent_is_owned_by_the_caller():
    def ident(x):
        return x

    x, t = np.arange(3.0), np.ones(3)
    value, tangent = jvp(ident, (x,), (t,))
    assert tangent is not t and not np.shares_memory(tangent, t)
    close(tangent, t)


def test_forward_mode_refuses_keyword_only_parameters():
    def f(x, *, k=2.0):
        return x * k

    with pytest.raises(BadWrt, match="by position only"):
        forward_derivative(f)


def _reverse_cumsum(x):
    return np.cumsum(x[::-1])[::-1]


_mod = types.ModuleType("reverse_only")
_mod.reverse_cumsum = _reverse_cumsum
_rc = defvjp(call_prim(_mod, "reverse_cumsum", "reverse_only"),
             lambda g, ans, x: N.cumsum(g))  # a primitive with a VJP rule only


def test_missing_forward_rule_is_located():
    def f(x):
        return _mod.reverse_cumsum(x * 2.0)

    x = np.array([0.5, 1.0, 2.0])
    _, pullback = vjp(f, x)
    close(pullback(np.ones(3))[0], 2.0 * np.arange(1.0, 4.0))  # reverse mode has its rule
    with pytest.raises(MissingRule, match="no forward-mode") as info:
        jvp(f, (x,), (np.ones(3),))
    assert info.value.loc is not None and "reverse_cumsum" in info.value.loc.excerpt()


def test_every_rule_module_primitive_with_a_vjp_has_a_forward_rule():
    """A table entry, or a diagonal Jacobian (elementwise; math and builtins act on scalars)."""
    from ad_transform.rules import builtins as B, forward as F, math as M, numpy as NP
    scalar_only = {B.max2, B.min2} | {v for v in vars(M).values()
                                      if type(v).__name__ == "Primitive"}
    from ad_transform.rules import runtime as R
    missing = sorted(p.name for mod in (B, M, NP, R) for p in vars(mod).values()
                     if type(p).__name__ == "Primitive" and p.differentiable
                     and p not in F.JVPS and not p.elementwise and p not in scalar_only)
    assert missing == []


def test_list_and_dict_outputs():
    def as_list(x):
        return [x * 2.0, x, "label"]

    for _ in range(2):  # the first call's values, then the compiled path
        assert jvp(as_list, (1.5,), (1.0,)) == ([3.0, 1.5, "label"], [2.0, 1.0, None])

    def as_dict(x):
        return {"a": x, "b": x * x}

    for _ in range(2):  # a dict output gets a dict tangent (tests/test_transform_trees.py)
        assert jvp(as_dict, (1.5,), (1.0,)) == ({"a": 1.5, "b": 2.25}, {"a": 1.0, "b": 3.0})


def test_nested_list_and_tuple_outputs():
    def f(x, y):
        return [(x * y, 2.0), [y]], x

    for _ in range(2):
        value, tangent = jvp(f, (2.0, 3.0), (1.0, 0.5))
        assert value == ([(6.0, 2.0), [3.0]], 2.0)
        assert tangent == ([(4.0, 0.0), [0.5]], 1.0)


def test_transformed_functions_are_freed_with_their_caches():
    import weakref

    from ad_transform import jacobian
    from ad_transform.transforms import _FAST

    def make():
        def f(x):
            return x * x + 1.0
        return f

    before = len(_FAST)
    refs = []
    for _ in range(3):
        f = make()
        jvp(f, (2.0,), (1.0,))
        vjp(f, 2.0)[1](1.0)
        jacobian(f)(np.arange(2.0))
        refs.append(weakref.ref(f))
        del f
    assert all(r() is None for r in refs)  # by reference counting, no collector run
    assert len(_FAST) == before


def test_jvp_calls_of_every_form_reuse_their_compiled_paths():
    def f(x, y, scale=2.0):
        return x * y * scale

    full, partial = forward_derivative(f, wrt=(0, 1, 2)), forward_derivative(f, wrt=0)
    for cache in (full, partial):
        cache.cache_clear()
    for _ in range(3):
        assert jvp(f, (2.0, 3.0, 2.0), (1.0, 0.0, 0.0)) == (12.0, 6.0)
        assert jvp(f, [2.0, 3.0, 2.0], [1.0, 0.0, 0.0]) == (12.0, 6.0)  # lists
        assert jvp(f, (2.0, 3.0, 1.0), (1.0, None, None)) == (6.0, 3.0)  # a None tangent
    assert jvp(f, (2.0, 3.0), (1.0, None)) == (12.0, 6.0)  # scale's default, no tangent
    assert full.cache_info().misses == 1 and full.cache_info().hits == 5
    assert partial.cache_info().misses == 1
    with pytest.raises(ValueError, match="tangent for y must be a float"):
        forward_derivative(f, wrt=(0, 1))(2.0, 3.0, 1.0, 1.0, None)


def _star(x, *rest):
    return x * sum(rest) + math.sin(rest[0]) * x


def test_jvp_and_vjp_of_star_args_give_each_argument_its_own():
    args = (0.7, 1.2, -0.4)
    tangents = (0.3, -1.0, 0.5)
    value, tangent = jvp(_star, args, tangents)
    assert value == _star(*args)
    close(tangent, fd_directional(_star, args, tangents), rtol=1e-6, atol=1e-8)
    _, pullback = vjp(_star, *args)
    grads = pullback(1.0)
    close(sum(g * t for g, t in zip(grads, tangents)), tangent, rtol=1e-12, atol=1e-12)
    assert jvp(_star, args, tangents) == (value, tangent)  # the cached path
    _, four = jvp(_star, args + (2.0,), tangents + (1.0,))  # another count: its own adapter
    close(four, fd_directional(_star, args + (2.0,), tangents + (1.0,)), rtol=1e-6, atol=1e-8)


def test_forward_and_vjp_refuse_a_function_whose_code_was_replaced():
    from ad_transform import UnsupportedSyntax, jacobian

    def f(x):
        return x * x

    def cube(x):
        return x * x * x

    fd = forward_derivative(f)
    assert jvp(f, (3.0,), (1.0,)) == (9.0, 6.0) and fd(3.0, 1.0) == (9.0, 6.0)
    assert vjp(f, 3.0)[1](1.0) == (6.0,) and jacobian(f)(3.0) == 6.0
    f.__code__ = cube.__code__  # the compiled paths were lowered from the old code
    for call in (lambda: jvp(f, (3.0,), (1.0,)), lambda: fd(3.0, 1.0),
                 lambda: vjp(f, 3.0)[1](1.0), lambda: jacobian(f)(3.0)):
        with pytest.raises(UnsupportedSyntax, match="__code__ of .*f was replaced"):
            call()
