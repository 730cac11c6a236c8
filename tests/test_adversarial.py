"""Python semantics the lowering once got silently wrong: each test compares the
value and the gradient with the plain function and with finite differences, on the
first call and on later (cached) calls, also after the inputs or the state the
function reads change between calls."""
import math
import sys
import types

import pytest

from ad_transform import gradient, value_and_gradient
from ad_transform.testing import numerical_gradient


def agrees(wrapper, f, *args):
    """``wrapper`` (a value_and_gradient of ``f`` w.r.t. argument 0) matches ``f`` and
    finite differences at ``args``; ``f`` runs on fresh copies (it may mutate them)."""
    fresh = lambda *a: f(*[list(v) if isinstance(v, list) else v for v in a])
    value, grad = wrapper(*[list(v) if isinstance(v, list) else v for v in args])
    want = fresh(*args)
    fd = numerical_gradient(fresh, args, 0)
    assert math.isclose(value, want, rel_tol=1e-9, abs_tol=1e-12), (value, want)
    assert math.isclose(grad, fd, rel_tol=1e-5, abs_tol=1e-6), (grad, fd)


# -- iterating a dict (or set, or dict view) passed in yields its keys ----------------

def sum_keys(x, d):
    t = 0.0
    for k in d:
        t += k * x
    return t + sum(d) * x + max(d) * x


def sum_items(x, d):
    return sum(k * v * x for k, v in d.items()) + sum(v for v in d.values()) * x


def sum_set(x, s):
    return sum(v * x for v in s)


@pytest.mark.parametrize("f, arg", [(sum_keys, {0: 5.0, 1: 7.0}), (sum_keys, {2: 1.0, 3: 4.0}),
                                    (sum_items, {0: 5.0, 1: 7.0}), (sum_set, {3.0, 4.0})])
def test_iterating_a_traced_dict_or_set(f, arg):
    vg = value_and_gradient(f)
    for _ in range(2):
        agrees(vg, f, 1.5, arg)


# -- a list changed in place by a method is read again afterwards ---------------------

def len_after_append(x, lst):
    n1 = len(lst)
    lst.append(1.0)
    return x * len(lst) + n1


def item_after_reverse(x, lst):
    a = lst[0]
    lst.reverse()
    return x * a + lst[0] * x * x


@pytest.mark.parametrize("f", [len_after_append, item_after_reverse])
def test_reads_after_an_in_place_method_are_not_reused(f):
    vg = value_and_gradient(f)
    for _ in range(3):
        agrees(vg, f, 1.5, [1.0, 2.0])


# -- a list fixed by an equality guard, changed in place by the caller ------------------

def concat_coeffs(x, coeffs):
    c = coeffs + [1.0]
    return sum(ci * x ** i for i, ci in enumerate(c))


def test_list_guard_compares_against_a_snapshot():
    vg = value_and_gradient(concat_coeffs)
    coeffs = [1.0, 2.0]
    agrees(vg, concat_coeffs, 1.5, coeffs)
    coeffs[0] = 10.0
    coeffs.append(3.0)
    agrees(vg, concat_coeffs, 1.5, coeffs)


def digits(x, items):
    return x * len(f"{items[0]}")


def test_equality_guard_checks_types():
    vg = value_and_gradient(digits)
    for item in (1, 1.0, True, 1, 0.0, -0.0, math.nan, math.nan, 1.0):
        agrees(vg, digits, 1.5, [item])


# -- globals, closure cells and attributes that change between calls ----------------------

CONFIG = {"scale": 2.0}
FUNCS = (math.sin, math.cos)


def scaled_by_dict(x):
    return CONFIG["scale"] * x * x


def first_of_tuple(x):
    return FUNCS[0](x) * x


def test_global_dict_and_tuple_of_functions(monkeypatch):
    vg_d, vg_t = value_and_gradient(scaled_by_dict), value_and_gradient(first_of_tuple)
    agrees(vg_d, scaled_by_dict, 1.5)
    agrees(vg_t, first_of_tuple, 1.5)
    monkeypatch.setitem(CONFIG, "scale", 5.0)  # changed in place
    agrees(vg_d, scaled_by_dict, 1.5)
    monkeypatch.setattr(sys.modules[__name__], "CONFIG", {"scale": 7.0})  # rebound
    agrees(vg_d, scaled_by_dict, 1.5)
    monkeypatch.setattr(sys.modules[__name__], "FUNCS", (math.cos, math.sin))
    agrees(vg_t, first_of_tuple, 1.5)


def make_model():
    coeffs = [1.0, 2.0]
    mode = "square"
    act = math.sin

    def model(x):
        y = coeffs[0] * x * x + coeffs[1] * act(x)
        return y * x if mode == "square" else y

    def configure(new_mode, new_act):
        nonlocal mode, act
        mode, act = new_mode, new_act
    return model, coeffs, configure


def test_closure_cells_that_change():
    model, coeffs, configure = make_model()
    vg = value_and_gradient(model)
    agrees(vg, model, 1.5)
    coeffs[0] = 10.0
    agrees(vg, model, 1.5)
    configure("linear", math.sin)
    agrees(vg, model, 1.5)
    configure("linear", math.cos)
    agrees(vg, model, 1.5)
    configure("square", math.sin)
    agrees(vg, model, 1.5)


SETTINGS = types.SimpleNamespace(rate=2.0, squared=True)
settings_module = types.ModuleType("adversarial_settings")
settings_module.RATE = 2.0


def uses_attributes(x):
    y = SETTINGS.rate * settings_module.RATE * x
    return y * x if SETTINGS.squared else y


def test_attributes_of_user_objects_and_modules_change(monkeypatch):
    vg = value_and_gradient(uses_attributes)
    agrees(vg, uses_attributes, 1.5)
    monkeypatch.setattr(SETTINGS, "rate", 5.0)
    agrees(vg, uses_attributes, 1.5)
    monkeypatch.setattr(settings_module, "RATE", 3.0)
    agrees(vg, uses_attributes, 1.5)
    monkeypatch.setattr(SETTINGS, "squared", False)
    agrees(vg, uses_attributes, 1.5)
    assert gradient(uses_attributes)(1.5) == vg(1.5)[1]


# -- one-shot iterators are used up; a list grown inside its own loop is seen --------------

def generator_twice(x):
    g = (x * i for i in range(1, 4))
    return sum(g) + 10.0 * sum(g)


def map_filter_zip_twice(x):
    m = map(lambda t: t * x, [1.0, 2.0])
    f = filter(lambda t: t > 0.0, [x, -1.0, 2.0 * x])
    z = zip([x, 2.0], [3.0, x])
    r = reversed([x, 3.0])
    first = sum(m) + sum(f) + sum(p * q for p, q in z) + sum(r)
    return first + 10.0 * (sum(m) + sum(f) + len(list(z)) + sum(r))


def enumerate_after_next(x):
    e = enumerate([x, 2.0 * x, 3.0])
    _, v = next(e)
    return sum(k * w for k, w in e) + v


def any_stops_consuming(x):
    g = (v > 1.0 for v in [x, 2.0 * x, 0.5])
    return x * any(g) + x * len(list(g))


def break_leaves_the_rest(x):
    z = zip([x, 2.0 * x, 3.0 * x], [1.0, 2.0, 3.0])
    for a, b in z:
        if b > 1.0:
            break
    return sum(a * b for a, b in z) + a


def worklist(x):
    queue = [x]
    total = 0.0
    for v in queue:
        total += v
        if v < 10.0:
            queue.append(v * 2.0)
    return total


def remove_while_iterating(x):
    items = [x, 2.0 * x, 3.0 * x, 4.0 * x]
    out = 0.0
    for v in items:
        out += v
        items.remove(v)
    return out


@pytest.mark.parametrize("f, xs", [(generator_twice, [1.5]), (map_filter_zip_twice, [1.5]),
                                   (enumerate_after_next, [1.5]), (any_stops_consuming, [1.5, 0.3]),
                                   (break_leaves_the_rest, [1.5]), (worklist, [1.5, 3.0, 1.5]),
                                   (remove_while_iterating, [1.5])])
def test_iteration_as_python_does_it(f, xs):
    vg = value_and_gradient(f)
    for x in xs + xs:
        agrees(vg, f, x)


# -- a name the enclosing function assigns later is not read from the globals ----------------

scale = 10.0


def comprehension_reads_a_later_local(x):
    ys = [scale * v for v in (x, 2.0)]
    scale = 3.0  # noqa: F841 (makes scale local to the whole function, as Python does)
    return sum(ys)


def closure_reads_a_later_local(x):
    def times_scale():
        return scale * x
    first = times_scale()
    scale = 3.0  # noqa: F841
    return first


@pytest.mark.parametrize("f", [comprehension_reads_a_later_local, closure_reads_a_later_local])
def test_free_variable_not_yet_assigned_raises_like_python(f):
    with pytest.raises(NameError):
        f(1.5)
    with pytest.raises(NameError, match="free variable 'scale'"):
        gradient(f)(1.5)


# -- an unused read that fails in Python fails in the derivative too -------------------

def reads_an_unused_item(x, items):
    items[2]
    return x * x


def test_unused_item_read_still_raises():
    d = gradient(reads_an_unused_item)
    assert d(1.5, [1, 2, 3]) == pytest.approx(numerical_gradient(reads_an_unused_item,
                                                                 (1.5, [1, 2, 3]), 0))
    with pytest.raises(IndexError):
        d(1.5, [1])
    with pytest.raises(KeyError):
        d(1.5, {0: 1})
