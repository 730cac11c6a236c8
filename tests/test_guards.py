"""Every fact a compiled path depends on is guarded (issue 6, items 1 and 2).

Each test differentiates on a first input, then on a second input that must take another
path (a new length, shape, type or value), and checks the second gradient against central
finite differences, or checks the located error that refuses the construct.
"""
import random
import re

import numpy as np
import pytest

from ad_transform import gradient
from ad_transform.errors import ADError
from ad_transform.testing import numerical_gradient


def twice(f, first, second, wrt=0):
    """The gradient on ``second`` after the same gradient function ran on ``first``."""
    g = gradient(f, wrt=wrt)
    g(*first)
    got = g(*second)
    fd = numerical_gradient(f, list(second), wrt)
    np.testing.assert_allclose(got, fd, rtol=1e-5, atol=1e-6)
    return got


def located(exc_info, *words):
    msg = str(exc_info.value)
    assert re.search(r"test_guards\.py:\d+:\d+", msg), msg
    for w in words:
        assert w in msg, msg


# -- shapes that depend on values -----------------------------------------------------

def mask_mean(x):
    sel = x[x > 0]
    return np.sum(sel * sel) / len(sel)


def test_mask_selection_length_is_guarded():
    twice(mask_mean, (np.array([1.0, -2.0, 3.0]),), (np.array([1.0, 2.0, 3.0]),))


def mask_mean_shape(x):
    sel = x[x > 0]
    return np.sum(sel) / sel.shape[0]


def test_mask_selection_shape_is_guarded():
    twice(mask_mean_shape, (np.array([1.0, -2.0, 3.0]),), (np.array([1.0, 2.0, -3.0, 4.0]),))


def nonzero_count(x):
    (idx,) = np.nonzero(x > 0)
    return np.sum(x[idx] ** 2) / idx.shape[0]


def test_nonzero_result_shape_is_guarded():
    twice(nonzero_count, (np.array([1.0, -2.0, 3.0]),), (np.array([1.0, 2.0, 3.0]),))


def where_count(x):
    (idx,) = np.where(x > 0)
    return np.sum(x[idx]) * len(idx)


def test_where_one_argument_shape_is_guarded():
    twice(where_count, (np.array([1.0, -2.0, 3.0]),), (np.array([-1.0, -2.0, 3.0]),))


def unique_count(x, labels):
    return np.sum(x) * len(np.unique(labels))


def test_unique_length_is_guarded():
    x = np.array([1.0, 2.0, 3.0])
    twice(unique_count, (x, np.array([1, 1, 2])), (x, np.array([1, 2, 3])))


# -- arrays reached through non-wrt containers and objects --------------------------------

def batch_loss(w, batch):
    X = batch["X"]
    return np.sum((X @ w) ** 2) / X.shape[0]


def test_dict_element_shape_is_guarded():
    w = np.array([0.5, -1.0])
    twice(batch_loss, (w, {"X": np.ones((2, 2))}),
          (w, {"X": np.arange(6.0).reshape(3, 2)}))


def list_loss(w, data):
    total = 0.0
    for X in data:
        total = total + np.sum(X * w) / len(X)
    return total


def test_list_elements_shapes_are_guarded():
    w = np.array([0.5, -1.0])
    twice(list_loss, (w, [np.ones((2, 2))]), (w, [np.ones((3, 2)), np.arange(4.0).reshape(2, 2)]))


class Batch:
    def __init__(self, X):
        self.X = X


class Slotted:
    __slots__ = ("X",)

    def __init__(self, X):
        self.X = X


def object_loss(w, b):
    return np.sum(b.X @ w) / b.X.shape[0]


@pytest.mark.parametrize("cls", [Batch, Slotted])
def test_object_attribute_shape_is_guarded(cls):
    w = np.array([0.5, -1.0])
    twice(object_loss, (w, cls(np.ones((2, 2)))), (w, cls(np.arange(6.0).reshape(3, 2))))


def scaled(x, opts):
    s = opts["scale"]
    if s is None:
        return x * x
    if isinstance(s, int):
        return x * s
    return np.sin(x) * s


def test_is_none_and_isinstance_on_container_elements_are_guarded():
    g = gradient(scaled)
    for opts in ({"scale": None}, {"scale": 3}, {"scale": 2.5}, {"scale": None}):
        got = g(0.7, opts)
        assert np.isclose(got, numerical_gradient(scaled, [0.7, opts], 0))


def typed(x, pair):
    a = pair[0]
    if type(a) is float:
        return x * a
    return x * x


def test_type_of_tuple_element_is_guarded():
    twice(typed, (2.0, (3.0, 1)), (2.0, (3, 1)))


def int_pow(x, n):
    k = 2 ** n
    if isinstance(k, float):
        return x * x
    return x * k


def test_type_of_int_power_is_guarded():
    twice(int_pow, (2.0, 2), (2.0, -1))


# -- user attributes of objects read from globals --------------------------------------

class Config:
    rate = 2.0

    def __init__(self):
        self._k = 1.0

    @property
    def k(self):
        return self._k


CONFIG = Config()


def with_class_attribute(x):
    return x * CONFIG.rate


def test_class_attribute_through_instance_is_read_at_run_time():
    g = gradient(with_class_attribute)
    try:
        assert np.isclose(g(1.5), 2.0)
        Config.rate = 5.0
        assert np.isclose(g(1.5), numerical_gradient(with_class_attribute, [1.5], 0))
    finally:
        Config.rate = 2.0


def with_property(x):
    return x ** 2 * CONFIG.k


def test_property_through_instance_is_read_at_run_time():
    g = gradient(with_property)
    try:
        g(1.5)
        CONFIG._k = 4.0
        assert np.isclose(g(1.5), numerical_gradient(with_property, [1.5], 0))
    finally:
        CONFIG._k = 1.0
