"""What the generated code looks like (issue 7, "the generated code"): it reads like the
evaluation trace.  Each test also checks the gradient against finite differences, and the
expected texts compute their line numbers from this file."""
import inspect
import math
import os

import numpy as np

from ad_transform import gradient, lower, reverse
from ad_transform.registers import last_uses, reuse_names
from ad_transform.testing import check_gradient, check_vjp

BASE = os.path.basename(__file__)


def _line(fn, offset):
    return inspect.getsourcelines(fn)[1] + offset


def repeated_sin(x):
    for _ in range(3):
        x = math.sin(x)
    return x


def recurrence(x, y):
    for _ in range(3):
        x = x * y + 0.5 * x
    return x


def test_unrolled_iterations_are_marked_and_the_gradient_is_d_x():
    d, body = _line(repeated_sin, 0), _line(repeated_sin, 2)
    expected = f"""\
def repeated_sin_grad(x):
    # {BASE}:{d}: def repeated_sin(x):
    if type(x) is not float:
        raise _rt.PathMiss(0, _rt.signatures(x))
    # {BASE}:{body} (iteration 1 of 3): x = math.sin(x)
    x_1 = math.sin(x)
    # {BASE}:{body} (iteration 2 of 3): x = math.sin(x)
    x_2 = math.sin(x_1)
    # {BASE}:{body} (iteration 3 of 3): x = math.sin(x)
    x_3 = math.sin(x_2)
    # adjoint of {BASE}:{body} (iteration 3 of 3): x = math.sin(x)
    d_x = math.cos(x_2)
    # adjoint of {BASE}:{body} (iteration 2 of 3): x = math.sin(x)
    cos_1 = math.cos(x_1)
    d_x = d_x * cos_1
    # adjoint of {BASE}:{body} (iteration 1 of 3): x = math.sin(x)
    cos_1 = math.cos(x)
    d_x = d_x * cos_1
    return d_x
"""
    g = gradient(repeated_sin)
    assert g.source(0.7) == expected
    check_gradient(repeated_sin, 0.7)


def test_a_recurrence_keeps_its_names_across_iterations():
    """The 3-step recurrence returns its x gradient as d_x; mul and mul_1 hold the same
    products in every iteration."""
    src = gradient(recurrence, (0, 1)).source(0.5, 0.7)
    assert src.rstrip().endswith("return (d_x, d_y)")
    lines = [line.strip() for line in src.splitlines()]
    assert lines.count("mul = x * y") == 1 and lines.count("mul = x_1 * y") == 1
    assert lines.count("mul_1 = 0.5 * x") == 1 and lines.count("mul_1 = 0.5 * x_1") == 1
    check_gradient(recurrence, 0.5, 0.7, wrt=(0, 1))


def _families_per_name(fn, args, wrt):
    prog, values = lower.lower(fn, args, wrt)
    full, values = reverse.reverse(prog, values, wrt, False, False)
    prog = reverse.prune(full, values)
    names = reuse_names(prog, last_uses(prog))
    held: dict = {}
    for v in list(prog.inputs) + [e.out for e in prog.eqns if e.out is not None]:
        held.setdefault(names.get(v, v.name), set()).add(v.family)
    return held


def two_variables(x, y):
    a = x * y
    for _ in range(3):
        a = a * x
        x = a + x
        y = math.sin(y) * a
    return a + x + y


def test_a_printed_name_holds_one_family():
    """A name never holds the adjoints of two user variables (nor a variable and an
    adjoint), however the names of dead values are reused."""
    for fn, args, wrt in [(recurrence, (0.5, 0.7), (0, 1)), (repeated_sin, (0.7,), (0,)),
                          (two_variables, (0.3, 0.4), (0, 1))]:
        for name, families in _families_per_name(fn, args, wrt).items():
            assert len(families) == 1, (fn.__name__, name, families)
    src = gradient(two_variables, (0, 1)).source(0.3, 0.4)
    assert src.rstrip().endswith("return (d_x, d_y)")
    check_gradient(two_variables, 0.3, 0.4, wrt=(0, 1))


def power_sum(x, n):
    s = 0.0
    for _ in range(n):
        s = s + x ** 2
    return s


def test_a_count_checked_after_the_type_guard_is_compared_only():
    src = gradient(power_sum).source(0.5, 4)
    assert "if type(x) is not float or type(n) is not int:" in src
    assert "    if n != 4:\n" in src and "type(n) is not int or" not in src
    g = gradient(power_sum)
    assert g(0.5, 4) == check_gradient(power_sum, 0.5, 4)
    g_float = gradient(lambda x, n: power_sum(x, int(n)))  # 4.0 is another path than 4
    assert g_float(0.5, 4.0) == g(0.5, 4)
    assert g_float.cache_info().misses == 1
    assert g_float(0.5, 4) == g(0.5, 4) and g_float.cache_info().misses == 2


def scaled(x):
    return x * np.float64(2.5) - 0.2 / x


def test_constants_are_printed_and_operators_unparenthesised():
    src = gradient(scaled).source(1.5)
    assert "np.float64(2.5)" in src and "_k" not in src
    assert "0.2 / x" in src and "((" not in src
    check_gradient(scaled, 1.5)


def sliced(x):
    item = x[1:]
    return np.sum(item * item) + x[0] * x[2]


def test_index_adjoints_read_as_numpy():
    x = np.linspace(0.3, 1.2, 4)
    src = gradient(sliced).source(x)
    assert "_rt." not in src.split("_rt.signatures(x))")[-1]  # after the guard: NumPy only
    assert "    d_x = np.zeros((4,), 'float64')\n    d_x[2] = d_item_2\n" in src
    assert "    d_x[0] += d_item_1\n" in src and "    d_x[1:] += d_item\n" in src
    check_gradient(sliced, x)
    check_vjp(lambda v: v[1:] * v[1:], x, rng=np.random.default_rng(0))


def picked(x, i):
    return np.sum(x[i] ** 2)


def test_index_adjoint_with_repeated_indices_adds():
    x = np.linspace(0.3, 1.2, 4)
    idx = np.array([0, 2, 2])
    g = gradient(lambda x: picked(x, idx))
    assert "_rt.getitem_vjp(" in g.source(x)  # x[idx] += g would count index 2 once
    check_gradient(lambda x: picked(x, idx), x)


def grow(x):
    y = x
    while y < 2.0:
        y = y * 1.5 + x
    return y


def test_while_iterations_and_the_exit_test_are_marked():
    test = _line(grow, 2)
    src = gradient(grow).source(0.5)
    assert f"# {BASE}:{test} (iteration 2 of 2): while y < 2.0:" in src
    assert f"# {BASE}:{test} (exit test after 2 iterations): while y < 2.0:" in src
    assert f"# {BASE}:{test} (exit test after 0 iterations)" in gradient(grow).source(5.0)
    check_gradient(grow, 0.5)
    check_gradient(grow, 5.0)


def nested(x):
    for i in range(2):
        for j in range(3):
            x = x * 0.5 + math.sin(x)
    return x


def test_nested_iterations_are_marked_inner_first():
    body = _line(nested, 3)
    src = gradient(nested).source(0.3)
    assert f"# adjoint of {BASE}:{body} (iteration 3 of 3 in iteration 1 of 2): " in src
    assert src.count(f"# {BASE}:{body} (iteration") == 6
    check_gradient(nested, 0.3)
