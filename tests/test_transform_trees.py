"""Trees (structured arguments) in every transformation: jvp, forward_derivative, vjp,
jacobian, hessian and hvp, with dict, tuple, list, namedtuple, dataclass and nested
arguments of mixed float/array leaves, against finite differences (and autograd where it
takes the container); structure changes take new paths and bad structures are refused."""
from __future__ import annotations

import math
from collections import namedtuple
from dataclasses import dataclass

import autograd
import autograd.numpy as anp
import numpy as np
import pytest

from ad_transform import (forward_derivative, gradient, hessian, hvp, jacobian, jvp,
                          tree_flatten, tree_map, vjp)

RNG = np.random.default_rng(11)
EPS = 1e-6

Affine = namedtuple("Affine", "scale shift")


@dataclass
class Model:
    layers: list
    activation: str
    steps: int


def close(a, b, rtol=1e-5, atol=1e-6):
    """Same containers and keys, leaves equal to tolerance."""
    la, ta = tree_flatten(a)
    lb, tb = tree_flatten(b)
    skeleton = lambda t: tree_flatten(tree_map(lambda v: 0, t))[1]  # noqa: E731
    assert skeleton(a) == skeleton(b), (a, b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        assert np.shape(x) == np.shape(y), (x, y)
        assert np.allclose(x, y, rtol=rtol, atol=atol), (x, y)


def direction(tree):
    return tree_map(lambda p: RNG.standard_normal(np.shape(p)) if np.ndim(p)
                    else float(RNG.standard_normal()), tree)


def moved(tree, d, t):
    return tree_map(lambda p, v: p + t * v, tree, d)


def vdot(a, b):
    return sum(float(np.sum(np.asarray(x) * np.asarray(y)))
               for x, y in zip(tree_flatten(a)[0], tree_flatten(b)[0]))


def fd_jvp(f, args, i, d):
    """(f(p + eps d) - f(p - eps d)) / 2 eps for the argument i, output tree by tree."""
    up = f(*args[:i], moved(args[i], d, EPS), *args[i + 1:])
    down = f(*args[:i], moved(args[i], d, -EPS), *args[i + 1:])
    return tree_map(lambda u, w: (np.asarray(u, float) - w) / (2 * EPS) if np.ndim(u)
                    else (u - w) / (2 * EPS), up, down)


# -- the functions: each takes a tree first ------------------------------------------------

def mse(params, X, y):
    pred = X @ params["W"] + params["b"]
    return np.mean((pred - y) ** 2)


def a_mse(params, X, y):
    pred = anp.dot(X, params["W"]) + params["b"]
    return anp.mean((pred - y) ** 2)


def seq_tuple(ws, x):
    w, c = ws
    return np.sum(np.sin(w * x)) * c + c ** 3


def a_seq_tuple(ws, x):
    w, c = ws
    return anp.sum(anp.sin(w * x)) * c + c ** 3


def seq_list(ws, x):
    total = 0.0
    for w in ws:  # a loop over the list: unrolled
        total = total + np.sum(np.tanh(w * x))
    return total


def a_seq_list(ws, x):
    total = 0.0
    for w in ws:
        total = total + anp.sum(anp.tanh(w * x))
    return total


def affine(layer, x):
    return np.sum(np.exp(layer.scale * x) + layer.shift * x)


def run(model, x):
    for layer in model.layers:
        x = np.tanh(layer.scale * x + layer.shift)
    return np.sum(x * model.steps) if model.activation == "tanh" else np.sum(x)


def nested(params, x):
    h = x
    for layer in params["layers"]:
        h = np.tanh(layer["W"] @ h + layer["b"])
    return np.sum(h ** 2) * params["scale"]


def a_nested(params, x):
    h = x
    for layer in params["layers"]:
        h = anp.tanh(anp.dot(layer["W"], h) + layer["b"])
    return anp.sum(h ** 2) * params["scale"]


X, Y = RNG.normal(size=(5, 3)), RNG.normal(size=5)
x3 = RNG.normal(size=3)
CASES = {
    "dict": (mse, a_mse, ({"W": RNG.normal(size=3), "b": 0.3}, X, Y)),
    "tuple": (seq_tuple, a_seq_tuple, ((RNG.normal(size=3), 0.7), x3)),
    "list": (seq_list, a_seq_list, ([0.5, RNG.normal(size=3), -1.2], x3)),
    "namedtuple": (affine, None, (Affine(RNG.normal(size=3), 0.4), x3)),
    "dataclass": (run, None, (Model([Affine(0.5, RNG.normal(size=3)), Affine(2.0, -0.3)],
                                    "tanh", 3), x3)),
    "nested": (nested, a_nested, ({"layers": [{"W": RNG.normal(size=(4, 3)), "b": 0.1},
                                              {"W": RNG.normal(size=(2, 4)),
                                               "b": RNG.normal(size=2)}],
                                   "scale": 0.5}, x3)),
}
IDS = list(CASES)


@pytest.mark.parametrize("name", IDS)
def test_jvp_matches_finite_differences_and_gradient(name):
    f, _, args = CASES[name]
    d = direction(args[0])
    for _ in range(2):  # the first call's values, then the compiled path
        value, tangent = jvp(f, args, (d,) + (None,) * (len(args) - 1))
        assert value == pytest.approx(f(*args), rel=1e-12)
        assert tangent == pytest.approx(fd_jvp(f, args, 0, d), rel=1e-5, abs=1e-6)
        assert tangent == pytest.approx(vdot(gradient(f)(*args), d), rel=1e-9, abs=1e-10)


@pytest.mark.parametrize("name", IDS)
def test_vjp_matches_finite_differences_and_autograd(name):
    f, af, args = CASES[name]
    value, pullback = vjp(f, *args)
    assert value == f(*args)
    g = pullback(1.0)[0]
    close(g, gradient(f)(*args), rtol=1e-10, atol=1e-12)
    d = direction(args[0])
    assert vdot(g, d) == pytest.approx(fd_jvp(f, args, 0, d), rel=1e-5, abs=1e-6)
    g2 = pullback(2.5)[0]  # the cotangent scales it
    close(g2, tree_map(lambda v: 2.5 * v, g), rtol=1e-10, atol=1e-12)
    if af is not None:
        close(g, autograd.grad(af)(*args), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("name", IDS)
def test_jacobian_of_scalar_output_is_the_gradient(name):
    f, _, args = CASES[name]
    for mode in ("forward", "reverse", None):
        close(jacobian(f, mode=mode)(*args), gradient(f)(*args), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("name", ["dict", "tuple", "nested"])
def test_hessian_of_trees_matches_fd_of_the_gradient(name):
    f, _, args = CASES[name]
    H = hessian(f)(*args)
    grad = gradient(f)
    leaves, td = tree_flatten(args[0])
    # H[a][b] has shape a.shape + b.shape; its contraction with a direction d is H @ d
    d = direction(args[0])
    fd = fd_jvp(grad, args, 0, d)
    hl, _ = tree_flatten(H)
    dl, _ = tree_flatten(d)
    # H flattens row by row: for row leaf a, the blocks H[a][b] for every leaf b
    n = len(leaves)
    got = []
    for a in range(n):
        blocks = hl[a * n:(a + 1) * n]
        acc = np.zeros(np.shape(leaves[a]))
        for b, blk in enumerate(blocks):
            assert np.shape(blk) == np.shape(leaves[a]) + np.shape(leaves[b])
            acc = acc + np.tensordot(blk, dl[b], axes=np.ndim(dl[b]))
        got.append(acc if np.ndim(leaves[a]) else float(acc))
    close(td.unflatten(*got), fd, rtol=1e-5, atol=1e-6)
    close(hvp(f)(*args, d), fd, rtol=1e-5, atol=1e-6)


def test_jacobian_of_gradient_is_the_hessian_on_dict_params():
    f, _, args = CASES["dict"]
    H = hessian(f)(*args)
    assert list(H) == ["W", "b"] and list(H["W"]) == ["W", "b"]
    assert H["W"]["W"].shape == (3, 3) and H["W"]["b"].shape == (3,)
    assert H["b"]["W"].shape == (3,) and type(H["b"]["b"]) is float
    for mode in ("forward", "reverse"):
        close(jacobian(gradient(f), mode=mode)(*args), H, rtol=1e-9, atol=1e-10)
    # symmetric: H[W][b] == H[b][W]
    close(H["W"]["b"], H["b"]["W"], rtol=1e-10, atol=1e-12)
    # against finite differences of the gradient, leaf by leaf of the row
    W, b = args[0]["W"], args[0]["b"]
    for k in range(3):
        e = np.zeros(3)
        e[k] = EPS
        up = gradient(f)({"W": W + e, "b": b}, *args[1:])
        down = gradient(f)({"W": W - e, "b": b}, *args[1:])
        close(H["W"]["W"][:, k], (up["W"] - down["W"]) / (2 * EPS), rtol=1e-5, atol=1e-6)
        assert H["b"]["W"][k] == pytest.approx((up["b"] - down["b"]) / (2 * EPS), rel=1e-5)


def test_hessian_of_mixed_tuple_wrt_nests_as_jax():
    def f(params, s):
        return np.sum(np.tanh(params["W"]) * s) + params["b"] * s ** 2

    p = {"W": RNG.normal(size=2), "b": 0.7}
    H = hessian(f, wrt=(0, 1))(p, 1.3)
    # jacobian(gradient(f, (0, 1)), (0, 1)): the gradient's structure (grad_p, grad_s)
    # outside, then one Jacobian per wrt argument, as JAX nests them; for arrays this is
    # ((H_pp, H_ps), (H_sp, H_ss))
    assert H[0]["W"][0]["W"].shape == (2, 2) and H[0]["W"][0]["b"].shape == (2,)
    assert H[0]["W"][1].shape == (2,) and type(H[1][1]) is float
    assert type(H[1][0]["b"]) is float and H[1][0]["W"].shape == (2,)
    assert H[1][1] == pytest.approx(2 * p["b"], rel=1e-12)
    assert H[1][0]["b"] == pytest.approx(2 * 1.3, rel=1e-12)
    assert H[0]["b"][1] == pytest.approx(2 * 1.3, rel=1e-12)
    close(H[0]["W"][1], H[1][0]["W"], rtol=1e-12, atol=1e-14)  # symmetric
    close(H[0]["b"][0], hessian(f)(p, 1.3)["b"], rtol=1e-12, atol=1e-14)
    hv = hvp(f, wrt=(0, 1))(p, 1.3, ({"W": np.ones(2), "b": 0.0}, 0.0))
    close(hv[0], {"W": H[0]["W"][0]["W"].sum(axis=1), "b": H[0]["b"][0]["W"].sum()},
          rtol=1e-10, atol=1e-12)


def test_dataclass_and_namedtuple_hessian_and_hvp():
    f, _, args = CASES["dataclass"]
    H = hessian(f)(*args)
    assert type(H) is Model and type(H.layers) is list and type(H.layers[0]) is Affine
    assert H.activation is None
    row = H.layers[0].shift  # the row of layers[0].shift: a Model of blocks
    assert type(row) is Model and row.layers[0].shift.shape == (3, 3)
    d = direction(args[0])
    close(hvp(f)(*args, d), fd_jvp(gradient(f), args, 0, d), rtol=1e-5, atol=1e-6)
    f, _, args = CASES["namedtuple"]
    H = hessian(f)(*args)
    assert type(H) is Affine and type(H.scale) is Affine and H.scale.scale.shape == (3, 3)
    d = direction(args[0])
    close(hvp(f)(*args, d), fd_jvp(gradient(f), args, 0, d), rtol=1e-5, atol=1e-6)


# -- tree outputs -------------------------------------------------------------------------

def predict(params, X):
    h = np.tanh(X @ params["W"] + params["b"])
    return {"h": h, "total": np.sum(h), "pair": (params["b"] * 2.0, h[0])}


def a_predict_flat(W, b, X):
    h = anp.tanh(anp.dot(X, W) + b)
    return anp.concatenate([h, anp.array([anp.sum(h), b * 2.0, h[0]])])


def test_tree_outputs_in_jvp_vjp_and_jacobian():
    p = {"W": RNG.normal(size=3), "b": 0.2}
    d = direction(p)
    for _ in range(2):
        value, tangent = jvp(predict, (p, X), (d, None))
        close(value, predict(p, X), rtol=1e-12, atol=0)
        close(tangent, fd_jvp(predict, (p, X), 0, d))
    value, pullback = vjp(predict, p, X)
    ct = {"h": RNG.normal(size=5), "total": 0.5, "pair": (1.5, -2.0)}
    g, gX = pullback(ct)
    assert vdot(g, d) == pytest.approx(vdot(ct, tangent), rel=1e-9)  # <ct, J d> both ways
    assert gX.shape == X.shape
    with pytest.raises(ValueError, match=r"cotangent\['pair'\]"):
        pullback({"h": ct["h"], "total": 0.5, "pair": [1.5, -2.0]})  # a list, not a tuple
    with pytest.raises(ValueError, match="shape"):
        pullback({"h": np.ones(4), "total": 0.5, "pair": (1.5, -2.0)})
    # the Jacobian: output structure outside, the argument's inside; against autograd
    aJ_W = autograd.jacobian(a_predict_flat, 0)(p["W"], p["b"], X)
    aJ_b = autograd.jacobian(a_predict_flat, 1)(p["W"], p["b"], X)
    for mode in ("forward", "reverse"):
        J = jacobian(predict, mode=mode)(p, X)
        assert J["h"]["W"].shape == (5, 3) and J["total"]["W"].shape == (3,)
        close(J["h"]["W"], aJ_W[:5], rtol=1e-10)
        close(J["h"]["b"], aJ_b[:5], rtol=1e-10)
        close(J["total"], {"W": aJ_W[5], "b": float(aJ_b[5])}, rtol=1e-10)
        close(J["pair"][0], {"W": aJ_W[6], "b": float(aJ_b[6])}, rtol=1e-10, atol=1e-12)
        close(J["pair"][1], {"W": aJ_W[7], "b": float(aJ_b[7])}, rtol=1e-10)


def test_forward_derivative_with_trees_guards_the_structure():
    f, _, args = CASES["dict"]
    df = forward_derivative(f)
    d = direction(args[0])
    value, t = df(*args, d)
    assert t == pytest.approx(fd_jvp(f, args, 0, d), rel=1e-5)
    src = df.source(*args, d)
    assert "t_params_structure = _tree.structure(t_params)" in src
    assert "t_params_W = t_params['W']" in src
    # another tangent structure: the guard misses, and the new path refuses it
    with pytest.raises(ValueError, match=r"tangent for params\['W'\] must be an array"):
        df(*args, {"W": 1.0, "b": 0.0})
    with pytest.raises(ValueError, match="t_params must be"):
        df(*args, {"b": 0.0, "W": d["W"]})  # the keys in another order
    with pytest.raises(ValueError, match="structure"):
        jvp(f, args, ((d["W"], d["b"]), None, None))
    assert df(*args, d)[1] == t  # the good path is still there


def test_structure_change_takes_a_new_path_never_a_wrong_one():
    def f(params, x):
        total = 0.0
        for k in params:
            total = total + np.sum(params[k] * x) ** 2
        return total

    x = RNG.normal(size=2)
    p1 = {"a": RNG.normal(size=2), "b": 0.5}
    p2 = {"a": RNG.normal(size=2), "b": RNG.normal(size=2), "c": 1.0}
    p3 = {"b": 0.5, "a": p1["a"]}  # the same leaves, another order
    for p in (p1, p2, p3, p1, p2):
        d = direction(p)
        t = jvp(f, (p, x), (d, None))[1]
        assert t == pytest.approx(fd_jvp(f, (p, x), 0, d), rel=1e-5)
        close(vjp(f, p, x)[1](1.0)[0], gradient(f)(p, x), rtol=1e-10)
        close(jacobian(f)(p, x), gradient(f)(p, x), rtol=1e-10)
        H = hessian(f)(p, x)
        assert list(H) == list(p) and all(list(row) == list(p) for row in H.values())
        close(hvp(f)(p, x, d), fd_jvp(gradient(f), (p, x), 0, d), rtol=1e-5, atol=1e-6)
    info = forward_derivative(f).cache_info()
    assert info.currsize == 3 and info.misses == 3


def test_static_leaves_and_int_leaves():
    def f(cfg, x):
        y = x * cfg["scale"] if cfg["on"] else x
        return np.sum(y ** 2) + cfg["n"] * 1.5

    cfg = {"scale": 2.0, "on": True, "n": 3, "label": None}
    x = np.arange(3.0)
    t_same = {"scale": 1.0, "on": True, "n": 1.0, "label": None}  # as tree_map makes it
    t_none = {"scale": 1.0, "on": None, "n": 1.0, "label": None}
    for t in (t_same, t_none):
        assert jvp(f, (cfg, x), (t, None))[1] == pytest.approx(
            fd_jvp(f, (cfg, x), 0, {"scale": 1.0, "n": 1.0, "on": True, "label": None}),
            rel=1e-5)
    with pytest.raises(ValueError, match=r"t_cfg\['on'\] must be None"):
        jvp(f, (cfg, x), ({"scale": 1.0, "on": False, "n": 1.0, "label": None}, None))
    g = vjp(f, cfg, x)[1](1.0)[0]
    assert g["on"] is None and g["label"] is None and type(g["n"]) is float
    J = jacobian(f)(cfg, x)
    assert J["on"] is None and J["n"] == pytest.approx(1.5)
    H = hessian(f)(cfg, x)
    assert H["scale"]["on"] is None and H["on"] is None
    assert H["scale"]["scale"] == pytest.approx(2 * np.sum(x ** 2), rel=1e-12)


def test_keyword_arguments_with_defaults():
    def f(params, x, *, power=2.0, **options):
        s = np.sum(params["W"] * x) + params["b"]
        return s ** power * options.get("scale", 1.0)

    p = {"W": RNG.normal(size=3), "b": 0.4}
    J2 = jacobian(f)(p, x3)
    J3 = jacobian(f)(p, x3, power=3.0, scale=0.5)
    close(J2, gradient(f)(p, x3), rtol=1e-10)
    close(J3, gradient(f)(p, x3, power=3.0, scale=0.5), rtol=1e-10)
    H = hessian(f)(p, x3, power=3.0)
    fd = fd_jvp(lambda q, y: gradient(f)(q, y, power=3.0), (p, x3), 0,
                {"W": np.zeros(3), "b": 1.0})
    close({"W": H["W"]["b"], "b": H["b"]["b"]}, fd, rtol=1e-5, atol=1e-6)
    assert jvp(f, (p, x3), ({"W": np.zeros(3), "b": 1.0}, None))[1] == pytest.approx(
        gradient(f)(p, x3)["b"], rel=1e-12)
    close(vjp(f, p, x3)[1](1.0)[0], gradient(f)(p, x3), rtol=1e-10)


def test_hessian_of_trees_against_autograd_on_the_flat_function():
    f, _, args = CASES["nested"]
    leaves, td = tree_flatten(args[0])

    def flat(v):
        parts, k = [], 0
        for leaf in leaves:
            n = int(np.prod(np.shape(leaf), dtype=int))
            parts.append(anp.reshape(v[k:k + n], np.shape(leaf)) if np.ndim(leaf) else v[k])
            k += n
        p = {"layers": [{"W": parts[0], "b": parts[1]}, {"W": parts[2], "b": parts[3]}],
             "scale": parts[4]}
        return a_nested(p, args[1])

    v0 = np.concatenate([np.ravel(leaf) for leaf in leaves])
    A = autograd.hessian(flat)(v0)
    H = hessian(f)(*args)
    hl, _ = tree_flatten(H)
    sizes = [int(np.prod(np.shape(leaf), dtype=int)) for leaf in leaves]
    starts = np.cumsum([0] + sizes)
    n = len(leaves)
    for a in range(n):
        for b in range(n):
            block = np.reshape(hl[a * n + b], (sizes[a], sizes[b]))
            assert np.allclose(block, A[starts[a]:starts[a + 1], starts[b]:starts[b + 1]],
                               rtol=1e-8, atol=1e-10)
    assert math.isfinite(float(np.sum(A)))


def test_branches_behind_a_tree_tangent_take_their_own_paths():
    """The tangent's structure guard comes right after the entry guard and the guards of
    the function after it: a branch that changes takes its own path, found again later."""
    def f(params, x):
        if params["a"] > 0.0:
            return np.sum(np.sin(params["w"] * x)) * params["a"]
        return np.sum(params["w"] ** 2) - params["a"] * x[0]

    x = RNG.normal(size=3)
    df = forward_derivative(f)
    for a in (0.5, -0.5, 0.7, -1.5):
        p = {"a": a, "w": RNG.normal(size=3)}
        d = direction(p)
        for _ in range(2):
            assert df(p, x, d)[1] == pytest.approx(fd_jvp(f, (p, x), 0, d), rel=1e-5)
            assert jvp(f, (p, x), (d, None))[1] == pytest.approx(vdot(gradient(f)(p, x), d),
                                                                 rel=1e-10)
    info = df.cache_info()
    assert info.currsize == 2 and info.misses == 2
    src = df.source(p, x, d)
    assert src.index("PathMiss(1, t_params_structure)") < src.index(
        "PathMiss(2, params_structure)")


def test_tuple_wrt_mixing_a_tree_and_an_array():
    def f(params, x):
        return np.tanh(params["W"] @ x + params["b"]) * np.sum(x)

    p = {"W": RNG.normal(size=(2, 3)), "b": RNG.normal(size=2)}
    x = RNG.normal(size=3)
    for mode in ("forward", "reverse"):
        Jp, Jx = jacobian(f, wrt=(0, 1), mode=mode)(p, x)
        assert Jp["W"].shape == (2, 2, 3) and Jp["b"].shape == (2, 2) and Jx.shape == (2, 3)
        dp, dx = direction(p), RNG.normal(size=3)
        want = fd_jvp(lambda q, y: f(q, y), (p, x), 0, dp) + fd_jvp(f, (p, x), 1, dx)
        got = (np.tensordot(Jp["W"], dp["W"], axes=2) + Jp["b"] @ dp["b"] + Jx @ dx)
        assert np.allclose(got, want, rtol=1e-5, atol=1e-6)
        both = forward_derivative(f, wrt=(0, 1))(p, x, dp, dx)[1]
        assert np.allclose(both, want, rtol=1e-5, atol=1e-6)
        ct = RNG.normal(size=2)
        gp, gx = vjp(f, p, x)[1](ct)
        assert vdot(gp, dp) + float(gx @ dx) == pytest.approx(float(ct @ want), rel=1e-5)


def test_star_args_and_kwargs_in_jvp_and_vjp():
    def f(x, *rest, scale=2.0, **options):
        return x * scale * (1.0 + len(rest)) + options.get("shift", 0.0)

    assert jvp(f, (1.5,), (1.0,)) == (3.0, 2.0)  # rest=(), scale=2.0, options={}
    assert vjp(f, 1.5)[1](1.0) == (2.0,)
    # an extra argument goes to *rest, with its own tangent (None: not differentiated)
    assert jvp(f, (1.5, 2.0), (1.0, None)) == (6.0, 4.0)
    assert vjp(f, 1.5, 2.0)[1](1.0) == (4.0, 0.0)
    J = jacobian(f)(1.5, 7.0, scale=3.0, shift=1.0)  # jacobian binds as f does
    assert J == pytest.approx(6.0, rel=1e-12)
    H = hessian(power_of, wrt="x")(x=1.5, power=3.0)
    assert H == pytest.approx(6.0 * 1.5, rel=1e-12)


def power_of(x, *, power=2.0):
    return x ** power
