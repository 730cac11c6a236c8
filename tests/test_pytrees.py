"""Structured wrt arguments (trees) and has_aux: every container kind, nested, mixed
float/array leaves, against finite differences, a dot-product check and autograd;
structure changes take new paths; static leaves; refusals."""
from __future__ import annotations

import math
from collections import OrderedDict, namedtuple
from dataclasses import dataclass, field

import autograd
import autograd.numpy as anp
import numpy as np
import pytest

from ad_transform import (BadWrt, NonScalarOutput, gradient, tree_flatten, tree_map,
                          tree_unflatten, value_and_gradient)
from ad_transform.testing import check_gradient, numerical_gradient

RNG = np.random.default_rng(7)


def leaves_close(a, b, rtol=1e-5, atol=1e-7):
    la, _ = tree_flatten(a)
    lb, _ = tree_flatten(b)
    skeleton = lambda t: tree_flatten(tree_map(lambda v: 0, t))[1]  # containers and keys
    assert skeleton(a) == skeleton(b), (a, b)
    for x, y in zip(la, lb):
        assert np.shape(x) == np.shape(y)
        assert np.allclose(x, y, rtol=rtol, atol=atol), (x, y)


def dot_check(f, args, i, grad, eps=1e-6):
    """<grad, v> == d/dt f(params + t v) for a random direction v of the tree."""
    leaves, td = tree_flatten(args[i])
    vs = [RNG.standard_normal(np.shape(x)) if np.ndim(x) else float(RNG.standard_normal())
          for x in leaves]

    def at(t):
        moved = td.unflatten(*(np.asarray(x, float) + t * v if np.ndim(x) else x + t * v
                               for x, v in zip(leaves, vs)), static=True)
        return float(f(*args[:i], moved, *args[i + 1:]))

    gl, _ = tree_flatten(grad)
    lhs = sum(float(np.sum(g * v)) for g, v in zip(gl, vs))
    rhs = (at(eps) - at(-eps)) / (2 * eps)
    assert math.isclose(lhs, rhs, rel_tol=1e-5, abs_tol=1e-6), (lhs, rhs)


def check(f, *args, wrt=0, oracle=None):
    """gradient vs finite differences (tree by tree) and a dot-product check; returns it."""
    g = gradient(f, wrt)(*args)
    fd = numerical_gradient(f, args, wrt)
    leaves_close(g, fd, rtol=1e-5, atol=1e-6)
    dot_check(f, args, wrt, g)
    if oracle is not None:
        leaves_close(g, oracle)
    return g


# -- the containers -------------------------------------------------------------------

def mse(params, X, y):
    pred = X @ params["W"] + params["b"]
    return np.mean((pred - y) ** 2)


def amse(params, X, y):
    pred = anp.dot(X, params["W"]) + params["b"]
    return anp.mean((pred - y) ** 2)


def test_dict_of_array_and_float_matches_fd_and_autograd():
    X, y = RNG.normal(size=(6, 3)), RNG.normal(size=6)
    p = {"W": RNG.normal(size=3), "b": 0.3}
    g = check(mse, p, X, y, oracle=autograd.grad(amse)(p, X, y))
    assert list(g) == ["W", "b"] and type(g["b"]) is float and g["W"].shape == (3,)


def seq_loss(ws, x):
    total = 0.0
    for w in ws:
        total = total + np.sum(np.tanh(w * x))
    return total


def aseq_loss(ws, x):
    total = 0.0
    for w in ws:
        total = total + anp.sum(anp.tanh(w * x))
    return total


@pytest.mark.parametrize("kind", [list, tuple])
def test_list_and_tuple(kind):
    x = RNG.normal(size=4)
    ws = kind([0.5, RNG.normal(size=4), -1.2])
    g = check(seq_loss, ws, x, oracle=autograd.grad(aseq_loss)(ws, x))
    assert type(g) is kind and len(g) == 3


Pair = namedtuple("Pair", "scale shift")


def nt_loss(p, x):
    return np.sum((p.scale * x + p.shift) ** 2) + p[0] ** 2


def test_namedtuple():
    x = RNG.normal(size=5)
    p = Pair(1.5, RNG.normal(size=5))
    g = check(nt_loss, p, x,
              oracle=Pair(*autograd.grad(lambda t: nt_loss(Pair(*t), x))(tuple(p))))
    assert type(g) is Pair


@dataclass
class Layer:
    W: np.ndarray
    b: np.ndarray
    act: str = "tanh"

    def __call__(self, x):
        z = x @ self.W + self.b
        return np.tanh(z) if self.act == "tanh" else np.maximum(z, 0.0)


@dataclass(frozen=True)
class Net:
    layers: list
    scale: float = 1.0


def net_loss(net, x, y):
    h = x
    for layer in net.layers:
        h = layer(h)
    return net.scale * np.mean((h[:, 0] - y) ** 2)


def make_net():
    return Net([Layer(RNG.normal(size=(3, 4)), RNG.normal(size=4)),
                Layer(RNG.normal(size=(4, 1)), RNG.normal(size=1), "relu")], 0.7)


def test_dataclasses_with_methods_nested_in_a_list():
    x, y = RNG.normal(size=(5, 3)), RNG.normal(size=5)
    net = make_net()
    g = check(net_loss, net, x, y)
    assert type(g) is Net and type(g.layers[0]) is Layer
    assert g.layers[0].act is None and g.layers[1].act is None  # static leaves: None

    def as_list(flat):
        return Net([Layer(flat[0], flat[1], "tanh"), Layer(flat[2], flat[3], "relu")], flat[4])

    def anet(flat):
        h = x
        for layer in as_list(flat).layers:
            z = anp.dot(h, layer.W) + layer.b
            h = anp.tanh(z) if layer.act == "tanh" else anp.maximum(z, 0.0)
        return flat[4] * anp.mean((h[:, 0] - y) ** 2)

    flat, _ = tree_flatten(net)
    leaves_close(tree_flatten(g)[0], autograd.grad(anet)(flat))


def test_ordered_dict_and_deep_nesting_with_mixed_leaves():
    def f(p, x):
        a = p["outer"][0]["w"] * x
        b = p["outer"][1][1] ** 2 + np.sum(p["outer"][1][0] * x)
        return np.sum(np.sin(a)) + b * p["c"]

    x = RNG.normal(size=3)
    p = OrderedDict(outer=[{"w": RNG.normal(size=3)}, (RNG.normal(size=3), 0.4)], c=2.0)
    g = check(f, p, x)
    assert type(g) is OrderedDict and type(g["outer"][1]) is tuple


def test_wrt_tuple_mixing_a_tree_and_a_float():
    def f(p, s):
        return s * (p[0] * p[1]["z"])

    g = gradient(f, wrt=(0, 1))([2.0, {"z": 3.0}], 0.5)
    assert g[0] == [1.5, {"z": 1.0}] and g[1] == 6.0
    check_gradient(f, [2.0, {"z": 3.0}], 0.5, wrt=(0, 1))


def test_value_and_gradient_of_a_tree():
    X, y = RNG.normal(size=(4, 2)), RNG.normal(size=4)
    p = {"W": RNG.normal(size=2), "b": 0.1}
    value, g = value_and_gradient(mse)(p, X, y)
    assert value == pytest.approx(mse(p, X, y))
    leaves_close(g, numerical_gradient(mse, (p, X, y), 0))


# -- leaves that are not differentiated ------------------------------------------------

def test_int_leaves_get_float_gradients_and_static_leaves_none():
    def f(p):
        y = p["x"] * p["n"] if p["on"] else 0.0
        return y + len(p["name"]) + (0.0 if p["nothing"] is None else 1.0)

    p = {"x": 1.5, "n": 3, "on": True, "name": "abc", "nothing": None}
    g = gradient(f)(p)
    assert g == {"x": 3.0, "n": 1.5, "on": None, "name": None, "nothing": None}
    assert type(g["n"]) is float
    leaves_close(g, numerical_gradient(f, (p,), 0))


def test_static_leaf_decides_a_branch_and_each_value_is_its_own_path():
    x, y = RNG.normal(size=(5, 3)), RNG.normal(size=5)
    df = gradient(net_loss)
    df.cache_clear()
    net = make_net()
    other = Net([Layer(net.layers[0].W, net.layers[0].b, "relu"), net.layers[1]], 0.7)
    for n in (net, other, net):
        leaves_close(df(n, x, y), numerical_gradient(net_loss, (n, x, y), 0), atol=1e-6)
    assert df.cache_info().misses == 2


@pytest.mark.parametrize("bad, words", [
    ({"a": 1.0, "s": {1.0}}, ["['s']", "set"]),
    ({"a": 1.0, "z": 1j}, ["['z']", "complex"]),
    ([1.0, np.array([True])], ["[1]", "bool"]),
    ({"a": [1.0, object()]}, ["['a'][1]", "object"]),
])
def test_bad_leaves_are_bad_wrt_naming_their_place(bad, words):
    def f(p):
        return 1.0

    with pytest.raises(BadWrt) as info:
        gradient(f)(bad)
    msg = str(info.value)
    assert "test_pytrees.py" in msg and "'p'" in msg
    for w in words:
        assert w in msg, msg


# -- the structure is part of the path --------------------------------------------------

def keyed(p):
    total = 0.0
    for k, v in p.items():  # the order of the keys is the order of the sum
        total = total * 2.0 + np.sum(v)
    return total


def test_a_different_structure_never_reuses_a_path():
    df = gradient(keyed)
    df.cache_clear()
    cases = [
        {"a": 1.0, "b": np.ones(2)},
        {"b": np.ones(2), "a": 1.0},        # the same keys, another order
        {"a": 1.0, "b": np.ones(3)},        # a leaf's shape
        {"a": 1, "b": np.ones(2)},          # a leaf's type
        {"a": 1.0, "b": np.ones(2), "c": 2.0},  # another key
        {"a": [1.0, 2.0], "b": 0.5},        # a leaf becomes a container
        {"a": 1.0, "b": np.ones(2)},        # the first again: cached
    ]
    for p in cases:
        leaves_close(df(p), numerical_gradient(keyed, (p,), 0))
    assert df.cache_info().misses == 6 and df.cache_info().hits == 1


def test_list_length_and_container_type_are_guarded():
    df = gradient(seq_loss)
    x = np.ones(2)
    for ws in ([1.0, 2.0], [1.0, 2.0, 3.0], (1.0, 2.0), [1.0, 2.0]):
        g = df(ws, x)
        assert type(g) is type(ws) and len(g) == len(ws)
        leaves_close(g, numerical_gradient(seq_loss, (ws, x), 0))


def test_generated_code_guards_the_structure():
    src = gradient(mse).source({"W": np.ones(2), "b": 0.0}, np.ones((3, 2)), np.ones(3))
    assert "params_structure = _tree.structure(params)" in src
    assert "_rt.same(params_structure, params_tree)" in src
    assert "params_W = params['W']" in src
    assert "_tree.unflatten(params_tree" in src


# -- ownership ---------------------------------------------------------------------------

def test_gradients_are_new_containers_and_never_the_callers_arrays():
    def f(p):
        return np.sum(p["a"] * p["b"])  # d/da is b itself, d/db is a

    p = {"a": np.arange(3.0), "b": np.ones(3)}
    g1 = gradient(f)(p)
    g2 = gradient(f)(p)
    assert g1 is not g2 and g1 is not p
    for k in p:
        assert not np.shares_memory(g1[k], p[k])
        assert not np.shares_memory(g1[k], g2[k])
    g1["a"][:] = 100.0
    assert np.array_equal(p["b"], np.ones(3))


def test_an_array_read_from_a_non_wrt_container_is_not_returned_as_the_gradient():
    def f(w, data):
        return np.sum(w * data["X"])

    X = np.arange(3.0)
    g = gradient(f)(np.ones(3), {"X": X})
    assert np.array_equal(g, X) and not np.shares_memory(g, X)


def test_writing_into_a_leaf_array_is_refused_like_an_input():
    from ad_transform import UnsupportedSyntax

    def f(p):
        p["W"][0] = 0.0
        return np.sum(p["W"])

    with pytest.raises(UnsupportedSyntax, match="input array"):
        gradient(f)({"W": np.ones(2)})


# -- tree utilities -------------------------------------------------------------------------

def test_tree_flatten_unflatten_map_round_trip():
    p = {"a": [1.0, (2, np.ones(2))], "s": "keep", "n": None, "d": Pair(3.0, 4.0)}
    leaves, td = tree_flatten(p)
    assert len(leaves) == 5 and td.num_leaves == 5
    back = tree_unflatten(td, leaves)
    assert back["s"] == "keep" and back["n"] is None and type(back["d"]) is Pair
    doubled = tree_map(lambda v: v * 2, p)
    assert doubled["a"][1][0] == 4 and doubled["s"] == "keep"
    g = gradient(lambda q: q["a"][0] * q["d"].scale + np.sum(q["a"][1][1]))(p)
    step = tree_map(lambda v, d: v - 0.5 * d, p, g)
    assert step["a"][0] == 1.0 - 0.5 * 3.0 and step["d"].scale == 3.0 - 0.5 * 1.0
    assert step["s"] == "keep" and np.allclose(step["a"][1][1], 0.5)


# -- has_aux ------------------------------------------------------------------------------------

def with_aux(w, x):
    pred = np.tanh(x @ w)
    loss = np.mean(pred ** 2)
    return loss, {"pred": pred, "n": len(x), "tag": "mse", "consts": np.zeros(2)}


def test_has_aux_gradient_and_value_and_gradient():
    w, x = RNG.normal(size=3), RNG.normal(size=(4, 3))
    g, aux = gradient(with_aux, has_aux=True)(w, x)
    assert np.allclose(g, numerical_gradient(lambda w, x: with_aux(w, x)[0], (w, x), 0),
                       atol=1e-7)
    assert np.allclose(aux["pred"], np.tanh(x @ w)) and aux["n"] == 4 and aux["tag"] == "mse"
    (value, aux2), g2 = value_and_gradient(with_aux, has_aux=True)(w, x)
    assert value == pytest.approx(with_aux(w, x)[0]) and np.allclose(g2, g)
    assert np.allclose(aux2["pred"], aux["pred"])
    # a later call on the same path: its own aux, built from these inputs
    w2 = RNG.normal(size=3)
    g3, aux3 = gradient(with_aux, has_aux=True)(w2, x)
    assert np.allclose(aux3["pred"], np.tanh(x @ w2)) and aux3 is not aux
    assert aux3["consts"] is not aux["consts"]  # a constant array: copied per call
    aux3["consts"][0] = 5.0
    assert gradient(with_aux, has_aux=True)(w2, x)[1]["consts"][0] == 0.0


def test_has_aux_with_a_tree_wrt_and_autograd():
    def f(p, x):
        y = p["a"] * x + p["b"]
        return np.sum(y ** 2), y

    def af(p, x):
        y = p["a"] * x + p["b"]
        return anp.sum(y ** 2)

    p, x = {"a": 0.5, "b": RNG.normal(size=3)}, RNG.normal(size=3)
    g, y = gradient(f, has_aux=True)(p, x)
    leaves_close(g, autograd.grad(af)(p, x))
    assert np.allclose(y, p["a"] * x + p["b"])


def test_has_aux_aux_that_is_a_gradient_too_is_a_separate_array():
    def f(w, u):
        return np.sum(w * u), u * 1.0

    w, u = np.ones(3), np.arange(3.0)
    g, aux = gradient(f, has_aux=True)(w, u)
    assert np.array_equal(g, u) and np.array_equal(aux, u)
    assert not np.shares_memory(g, aux)


def test_has_aux_needs_a_pair():
    def f(x):
        return x * 2.0

    with pytest.raises(NonScalarOutput, match="pair"):
        gradient(f, has_aux=True)(1.0)

    def g(x):
        return x, 1.0, 2.0

    with pytest.raises(NonScalarOutput, match="pair") as info:
        gradient(g, has_aux=True)(1.0)
    assert "test_pytrees.py" in str(info.value)


def test_has_aux_paths_are_cached_apart_from_plain_gradient():
    def f(x):
        return x * x, x + 1.0

    assert gradient(f, has_aux=True)(3.0) == (6.0, 4.0)
    with pytest.raises(NonScalarOutput):
        gradient(f)(3.0)


@dataclass(slots=True)
class Slotted:
    a: float
    b: np.ndarray = field(default_factory=lambda: np.ones(2))


def test_more_shapes_of_trees():
    def f(p):
        return p["s"].a * np.sum(p["s"].b) + len(p["empty"]) + p["same"][0] @ p["same"][1]

    W = np.arange(2.0)
    p = {"s": Slotted(2.0), "empty": [], "same": (W, W), "label": {"only": "static"}}
    g = check(f, p)
    assert type(g["s"]) is Slotted and g["empty"] == [] and g["label"] == {"only": None}
    assert not np.shares_memory(g["same"][0], g["same"][1])
    by_keyword = gradient(f)(p=p)
    leaves_close(by_keyword, g)


def test_a_tree_without_differentiable_leaves_gets_nones():
    def f(x, opts):
        return x * 2.0 if opts["double"] else x

    assert gradient(f, wrt=(0, 1))(1.0, {"double": True, "name": "x"}) == (
        2.0, {"double": None, "name": None})


def test_has_aux_cannot_return_a_local_function():
    from ad_transform import UnsupportedSyntax

    def f(x):
        return x * x, (lambda: 1.0)

    with pytest.raises(UnsupportedSyntax, match="auxiliary output") as info:
        gradient(f, has_aux=True)(1.0)
    assert "test_pytrees.py" in str(info.value)
