"""The public surface: decorator forms, wrt, metadata, sources from notebooks and REPLs."""
import inspect
import linecache
import math

import pytest

from ad_transform import BadWrt, gradient, value_and_gradient
from ad_transform.testing import check_gradient, numerical_gradient


def seed(x1, x2):
    """The article's example."""
    return math.log(x1) + x1 * math.sin(x2)


def close(a, b):
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def fd(f, args, i):
    return numerical_gradient(f, args, i)


def test_three_decorator_forms_agree_with_finite_differences():
    plain = gradient(seed)

    @gradient
    def bare(x1, x2):
        return math.log(x1) + x1 * math.sin(x2)

    @gradient(wrt=(0, 1))
    def both(x1, x2):
        return math.log(x1) + x1 * math.sin(x2)

    args = (2.0, 1.0)
    assert close(plain(*args), fd(seed, args, 0))
    assert close(bare(*args), fd(seed, args, 0))
    g1, g2 = both(*args)
    assert close(g1, fd(seed, args, 0)) and close(g2, fd(seed, args, 1))


@pytest.mark.parametrize("wrt, expect_tuple", [(0, False), ("x2", False), ((0,), True),
                                                (("x2", 0), True), (-1, False)])
def test_wrt_by_index_name_and_tuple(wrt, expect_tuple):
    args = (1.5, 0.3)
    got = gradient(seed, wrt)(*args)
    names = list(inspect.signature(seed).parameters)
    items = wrt if isinstance(wrt, tuple) else (wrt,)
    idx = [names.index(w) if isinstance(w, str) else w % 2 for w in items]
    assert isinstance(got, tuple) == expect_tuple
    got = got if expect_tuple else (got,)
    for g, i in zip(got, idx):
        assert type(g) is float and close(g, fd(seed, args, i))


def test_value_and_gradient_is_one_evaluation_of_both():
    value, grads = value_and_gradient(seed, wrt=(0, 1))(2.0, 1.0)
    assert value == seed(2.0, 1.0)
    assert close(grads[0], fd(seed, (2.0, 1.0), 0)) and close(grads[1], fd(seed, (2.0, 1.0), 1))


def test_int_arguments_are_real_and_get_float_gradients():
    g = gradient(seed, wrt=(0, 1))(2, 1)
    assert all(type(v) is float for v in g)
    assert close(g[0], fd(seed, (2.0, 1.0), 0))


def test_wrapper_keeps_name_doc_wrapped_and_signature():
    g = gradient(seed, wrt=(0, 1))
    assert g.__name__ == "seed" and g.__doc__ == seed.__doc__
    assert g.__wrapped__ is seed
    assert inspect.signature(g) == inspect.signature(seed)


def with_defaults(x, scale=2.0, *, power=2):
    return scale * x ** power


def test_keyword_and_default_arguments_at_the_top_level():
    g = gradient(with_defaults)
    assert close(g(1.5), fd(with_defaults, (1.5,), 0))
    assert close(g(1.5, power=3), numerical_gradient(lambda x: with_defaults(x, power=3),
                                                     (1.5,), 0))
    assert close(g(x=1.5, scale=0.5), fd(with_defaults, (1.5, 0.5), 0))
    with pytest.raises(TypeError):
        g(1.5, 2.0, 3)  # power is keyword-only, as in the user's function


def test_wrt_errors_are_bad_wrt():
    for wrt in ("nope", 5, (0, "nope"), 1.5, ()):
        with pytest.raises(BadWrt):
            gradient(seed, wrt)


def test_gradient_of_the_same_function_shares_its_cache():
    g1 = gradient(seed, wrt=(0, 1))
    g1.cache_clear()
    g1(2.0, 1.0)
    g2 = gradient(seed, wrt=(0, 1))
    g2(2.0, 1.0)
    assert g2.cache_info().misses == 1 and g2.cache_info().hits >= 1


def _define_in_fake_cell(source, filename, name):
    """What IPython and Jupyter do: the cell's text sits in linecache under a made-up name."""
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"math": math}
    exec(compile(source, filename, "exec"), namespace)
    return namespace[name]


def test_function_defined_in_a_notebook_cell():
    cell = "def cell_fn(x, y):\n    z = x * y\n    return math.exp(z) + y\n"
    f = _define_in_fake_cell(cell, "<ipython-input-3-0123456789ab>", "cell_fn")
    check_gradient(f, 0.3, 1.2, wrt=(0, 1))
    check_gradient(f, 0.3, 1.2, wrt=(0, 1))  # the cached path
    assert "z = x * y" in gradient(f).source(0.3, 1.2)  # comments quote the cell's lines


def test_nested_function_defined_in_a_test():
    k = 3.0

    def inner(x):
        return k * math.sin(x) * x

    check_gradient(inner, 0.7)
    check_gradient(inner, 0.7)
