"""Rolled loops (issue 8): long loops become Python loops in the generated code.

Every gradient is compared with central finite differences and with autograd
(and, for array inputs, with a directional derivative: the dot-product check);
the rolled derivative also agrees with the unrolled one (``unroll=0``).  The
shape of the generated code is checked through ``.source()`` and the number of
compiled paths through ``cache_info()``.
"""
import math
import types

import autograd
import autograd.numpy as anp
import numpy as np
import pytest

from ad_transform import custom_vjp, gradient, ir, lower, value_and_gradient
from ad_transform.testing import numerical_gradient


def _autograd_version(f):
    """``f`` (and the helpers of this module it calls) with ``np`` bound to autograd.numpy."""
    env = dict(f.__globals__)
    env["np"] = anp
    for name, v in list(env.items()):
        if isinstance(v, types.FunctionType) and v.__module__ == __name__:
            env[name] = types.FunctionType(v.__code__, env, v.__name__, v.__defaults__)
    return env[f.__name__]


def _close(a, b, rtol=1e-5, atol=1e-7):
    return np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=rtol, atol=atol)


def check(f, args, wrt=0, auto=None, rtol=1e-5, atol=1e-7, rolled=True):
    """gradient(f) vs finite differences, autograd (``auto``: the same function written
    with autograd.numpy, default ``f``), the unrolled derivative, and for arrays a
    directional derivative.  Returns the gradient wrapper."""
    g = gradient(f, wrt=wrt)
    got = g(*args)
    single = not isinstance(wrt, tuple)
    idx = (wrt,) if single else wrt
    grads = (got,) if single else got
    for i, gi in zip(idx, grads):
        fd = numerical_gradient(f, args, i)
        assert _close(gi, fd, rtol=1e-4, atol=1e-6), (f.__name__, i, gi, fd)
        ag = autograd.grad(_autograd_version(auto or f), i)(*args)
        assert _close(gi, ag, rtol, atol), (f.__name__, i, gi, ag)
        if np.ndim(args[i]):
            v = np.random.default_rng(i).standard_normal(np.shape(args[i]))
            eps = 1e-6
            plus = list(args); plus[i] = args[i] + eps * v
            minus = list(args); minus[i] = args[i] - eps * v
            dd = (f(*plus) - f(*minus)) / (2 * eps)
            assert math.isclose(float(np.sum(gi * v)), dd, rel_tol=1e-4, abs_tol=1e-6)
    unrolled = gradient(f, wrt=wrt, unroll=0)(*args)
    assert _close(got, unrolled, 1e-9, 1e-12)
    src = g.source(*args)
    assert ("rolled loop" in src) == rolled, src
    return g


# -- recurrences, integration, arrays ----------------------------------------------------

def recurrence(x, a):
    for i in range(200):
        x = np.sin(x) * a + 0.1 * x
    return x


def test_recurrence_is_one_loop_in_the_source():
    g = check(recurrence, (0.3, 1.2), wrt=(0, 1))
    src = g.source(0.3, 1.2)
    assert src.count("\n") < 80  # the body once (and once peeled: x becomes a NumPy float)
    assert "for i in range(1, 200):" in src
    assert "x_2_tape_append(x_2)" in src and "for x_2 in reversed(x_2_tape):" in src
    assert "(rolled loop: 199 iterations seen)" in src


def test_value_and_gradient_of_a_rolled_loop():
    value, grads = value_and_gradient(recurrence, wrt=(0, 1))(0.3, 1.2)
    assert value == pytest.approx(recurrence(0.3, 1.2))
    assert _close(grads, gradient(recurrence, wrt=(0, 1), unroll=0)(0.3, 1.2))


def euler(k, c):
    x, v, dt = 1.0, 0.0, 0.01
    for i in range(1000):
        acc = -k * x - c * v
        x = x + dt * v
        v = v + dt * acc
    return x


def test_euler_damped_oscillator():
    check(euler, (2.0, 0.3), wrt=(0, 1))


def time_dependent(x):
    dt = 0.05
    for i in range(100):
        t = i * dt  # the loop index is a value of the path, not a constant
        x = x + dt * np.cos(t) * x
    return x


def test_values_derived_from_the_index():
    g = check(time_dependent, (0.7,))
    assert "i * 0.05" in g.source(0.7)


def rosenbrock(x):
    s = 0.0
    for i in range(len(x) - 1):
        s = s + 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2
    return s


def test_loop_over_array_elements_by_index():
    x = np.linspace(-1.2, 1.1, 60)
    check(rosenbrock, (x,))


def sum_of_squares(x):
    s = 0.0
    for xi in x:
        s = s + xi * np.tanh(xi)
    return s


def test_loop_over_an_array():
    check(sum_of_squares, (np.linspace(-2.0, 2.0, 40),))


def write_items(x):
    y = x * 1.0
    for i in range(1, len(x)):
        y[i] = y[i - 1] * 0.5 + x[i]
    return np.sum(y * y)


def auto_write_items(x):
    y = [x[0]]
    for i in range(1, len(x)):
        y.append(y[-1] * 0.5 + x[i])
    return np.sum(np.array(y) ** 2)


def test_item_assignment_in_a_loop():
    check(write_items, (np.linspace(0.1, 2.0, 30),), auto=auto_write_items)


def array_state(w, x):
    h = x
    for i in range(30):
        h = np.tanh(w * h + 0.1)
    return np.sum(h)


def test_carried_array():
    check(array_state, (np.full(5, 0.9), np.linspace(-1, 1, 5)), wrt=(0, 1))


# -- while loops: one path for every trip count ---------------------------------------

def grow(x):
    while x < 100.0:
        x = x * 1.1 + 0.01
    return x


def test_while_loop_one_path_across_trip_counts():
    g = gradient(grow)
    starts = [1.0, 2.0, 0.5, 3.0, 10.0, 0.01, 0.2, 7.0]
    counts = set()
    for x0 in starts:
        got = g(x0)
        assert _close(got, numerical_gradient(grow, (x0,), 0), 1e-4, 1e-6)
        assert _close(got, autograd.grad(_autograd_version(grow))(x0))
        n, x = 0, x0
        while x < 100.0:
            x, n = x * 1.1 + 0.01, n + 1
        counts.add(n)
    assert len(counts) > 4
    assert g.cache_info().currsize == 1  # one compiled path for every trip count >= 16
    assert "    while x_1 < 100.0:\n" in g.source(1.0)  # the loop's own test, in its header


def short_while(x):
    while x < 2.0:
        x = x * 1.5
    return x


def test_short_while_loop_stays_straight_line():
    g = gradient(short_while)
    assert _close(g(1.0), autograd.grad(_autograd_version(short_while))(1.0))
    assert "while True" not in g.source(1.0) and "rolled loop" not in g.source(1.0)


# -- leaving the body's path mid-loop -------------------------------------------------

def flip(x, n):
    for i in range(n):
        if x > 1.0:
            x = x * 0.5
        else:
            x = x * 1.3 + 0.1
    return x


def test_iteration_that_leaves_the_body_path():
    check(flip, (0.2, 40))


def late_switch(x):
    for i in range(60):
        if i < 45:
            x = np.sin(x) + 0.5
        else:
            x = x * x * 0.5
    return x


def test_branch_on_the_index_changes_mid_loop():
    g = check(late_switch, (0.3,))
    # iterations 0-44 and 46-59 are rolled pieces; iteration 45 is lowered on its own
    assert g.source(0.3).count("rolled loop") >= 2


def test_if_inside_a_rolled_loop_keeps_both_branches():
    g = gradient(flip)
    a = g(0.2, 40)
    b = g(1.7, 40)  # takes the branches in another order: the same path
    assert _close(b, numerical_gradient(flip, (1.7, 40), 0), 1e-4, 1e-6)
    assert _close(a, numerical_gradient(flip, (0.2, 40), 0), 1e-4, 1e-6)
    assert g.cache_info().currsize == 1
    assert "(both branches)" in g.source(0.2, 40) and "rolled loop" in g.source(0.2, 40)


def _halve(x):
    return x * 0.5


def flip_helper(x, n):
    for i in range(n):
        if x > 1.0:
            x = _halve(x)  # an inlined helper: not merged (branches.py), the if is a guard
        else:
            x = x * 1.3 + 0.1
    return x


def test_guard_inside_a_rolled_loop_sends_other_inputs_elsewhere():
    g = gradient(flip_helper)
    a = g(0.2, 40)
    b = g(1.7, 40)  # takes the branches in another order: another path
    assert _close(b, numerical_gradient(flip_helper, (1.7, 40), 0), 1e-4, 1e-6)
    assert _close(a, numerical_gradient(flip_helper, (0.2, 40), 0), 1e-4, 1e-6)
    assert g.cache_info().currsize == 2


# -- nested loops, break/continue, helpers ----------------------------------------------

def nested(x):
    for i in range(20):
        for j in range(20):
            x = np.sin(x) + 0.01 * j
    return x


def test_nested_loops_roll_inside_out():
    g = check(nested, (0.5,))
    src = g.source(0.5)
    assert "for i in range(1, 20):" in src  # outer iteration 0 peeled: x becomes np.float64
    assert "for x_5 in reversed(x_5_tape):" in src  # the adjoint walks the outer tape
    assert src.count("\n") < 150


def nested_while(x, z):
    for j in range(20):
        k = 0
        while k < 18:
            z = z * 0.9 + 0.01 * np.sin(x * z)
            k += 1
        x = x + 0.01 * z
    return x + z


def test_while_loop_nested_in_a_rolled_loop():
    # the inner loop's adjoint runs as many times as the primal inner loop did (its
    # trip count is a value of the outer body)
    g = check(nested_while, (0.5, 1.5), wrt=(0, 1))
    assert "        while k_4 < 18:\n" in g.source(0.5, 1.5)  # inside the outer loop


def matrix_loops(a):
    s = 0.0
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            s = s + a[i, j] * a[i, j] * (i + 1)
    return s


def test_nested_loops_over_a_matrix():
    check(matrix_loops, (np.arange(20 * 18, dtype=float).reshape(20, 18) / 100,))


def stops_early(x):
    for i in range(100):
        x = x * 1.05
        if x > 3.0:
            break
    return x


def test_break():
    check(stops_early, (1.0,))


def skips(x):
    for i in range(50):
        if x > 5.0:
            continue
        x = x + 0.1 * np.sin(x)
    return x


def test_continue():
    check(skips, (1.0,))
    check(skips, (4.0,))


def forever(x):
    n = 0
    while True:
        x = x * 1.2
        n = n + 1
        if x > 50.0:
            break
    return x * n


def test_while_true_with_break():
    check(forever, (1.0,))


def step(x, v, k):
    return x + 0.01 * v, v - 0.01 * k * x


def integrate(x, k):
    v = 0.0
    for i in range(300):
        x, v = step(x, v, k)
    return x


def test_loop_calling_a_helper():
    check(integrate, (1.0, 3.0), wrt=(0, 1))


def inner_loop(x, a):
    for i in range(25):
        x = np.tanh(a * x + 0.1)
    return x


def uses_helper(x, a):
    return inner_loop(x, a) * inner_loop(a, x)


def test_loop_in_an_inlined_helper():
    check(uses_helper, (0.5, 1.5), wrt=(0, 1))


def int_counter(x):
    n = 0
    total = 0.0
    for i in range(40):
        n = n + 2
        total = total + x * n
    return total


def test_carried_int_counter():
    check(int_counter, (1.5,))


def appends(x):
    out = []
    for i in range(30):
        x = x * 1.01
        out.append(x)
    return sum(out)


def test_loop_that_appends_stays_unrolled():
    check(appends, (1.0,), rolled=False)


def found_again(a, b, c):
    t = 0.3
    i = 0
    while i < 39:
        b = 0.5 * math.tanh(0.5)
        t = 0.5 * math.tanh(0.5 + c)  # the value of the first iteration, found again
        i += 1
    return a + 2.0 * b + 3.0 * c + t


def _found_again_ag(a, b, c):
    t = 0.3
    i = 0
    while i < 39:
        b = 0.5 * anp.tanh(0.5)
        t = 0.5 * anp.tanh(0.5 + c)
        i += 1
    return a + 2.0 * b + 3.0 * c + t


def test_carried_value_computed_before_the_loop_gets_its_adjoint():
    # t's next value in the rolled loop is the outer t of iteration 1: the adjoint
    # carried for t flows back to it (it was dropped: d/dc was 3.0)
    check(found_again, (0.3, -0.2, 0.7), wrt=(0, 2), auto=_found_again_ag)


def found_again_array(x, c):
    y = np.sin(x) * c
    z = x
    for i in range(25):
        z = np.sin(x) * c
    return np.sum(z * y)


def test_carried_array_computed_before_the_loop():
    for wrt in (0, 1):
        check(found_again_array, (np.linspace(0.0, 1.0, 5), 0.7), wrt=wrt)


# -- the code of a rolled loop: callees looked up once, no copies ---------------------------

def test_module_callees_are_bound_before_the_loops_and_values_read_once_are_folded():
    g = check(recurrence, (0.3, 1.2), wrt=(0, 1))
    src = g.source(0.3, 1.2)
    primal, adjoint = src.split("(rolled loop, iterations in reverse)")
    # bound after the loop's comment, before its set-up; the loop calls the local
    assert "(rolled loop: 199 iterations seen)\n    np_sin = np.sin\n    x_2_tape = []" in primal
    assert "np_sin = np.sin\n    np_cos = np.cos\n    d_x_2 = 1.0" in adjoint
    # the body as the line reads: the carried variable written directly, no temporaries
    assert "        x_2 = np_sin(x_2) * a + 0.1 * x_2\n    x_4 = x_2" in primal
    body = adjoint.split("for x_2 in reversed(x_2_tape):")[1].split("\n    d_")[0]
    assert "        d_a_1 = d_x_2 * np_sin(x_2)\n" in body and "np_cos(x_2)" in body
    assert "np.sin(x_2)" not in body and "np.cos(x_2)" not in body


def helper_calls(x):
    for i in range(40):
        x = x + 0.05 * softsign(x) + 0.01 * math.sin(x)
    return x


@custom_vjp
def softsign(x):
    return x / (1.0 + abs(x))


softsign.defvjp(lambda g, ans, x: g / (1.0 + abs(x)) ** 2)


def test_no_callee_is_bound_before_a_loop_that_runs_user_code():
    # the user's function could rebind math.sin: the body looks it up on every call
    g = check(helper_calls, (0.4,), auto=_helper_calls_ag)
    src = g.source(0.4)
    assert "math_sin" not in src and src.count("math.sin(") >= 2


def _helper_calls_ag(x):
    for i in range(40):
        x = x + 0.05 * (x / (1.0 + anp.abs(x))) + 0.01 * anp.sin(x)
    return x


def swaps(x, y):
    for i in range(30):
        x, y = y, x * 0.5 + 0.3 * y  # y's next value reads x's old one; x's next is old y
    return x * y


def old_value_read_after_the_new(x, y):
    for i in range(30):
        x_new = math.sin(x) + 0.2
        y = y * 0.9 + x * x_new  # reads x after its next value is computed
        x = x_new
    return x + y


def test_carried_values_written_directly_only_when_the_old_value_is_dead():
    g = check(swaps, (0.7, -0.4), wrt=(0, 1))
    assert "(x_1, y_1) = (y_1, " in g.source(0.7, -0.4)  # assigned together
    g = check(old_value_read_after_the_new, (0.7, 0.2), wrt=(0, 1),
              auto=_old_value_ag)
    src = g.source(0.7, 0.2)
    # x_1 is rebound at the end of the iteration, after y's update read it
    assert "        y_1 = y_1 * 0.9 + x_1 * x_new\n        x_1 = x_new\n" in src


def _old_value_ag(x, y):
    for i in range(30):
        x_new = anp.sin(x) + 0.2
        y = y * 0.9 + x * x_new
        x = x_new
    return x + y


def squares_below(x):
    n = 0
    while x * x < 1e6:
        x = x * 1.3 + 0.1
        n += 1
    return x * n


def test_while_loop_whose_test_takes_two_operations():
    g = check(squares_below, (1.5,))
    assert "    while x_1 * x_1 < 1000000.0:\n" in g.source(1.5)
    assert g(2.5) == pytest.approx(numerical_gradient(squares_below, (2.5,), 0), rel=1e-4)


def root_of(x, c):
    for i in range(20):
        x = math.sqrt(x - c) + 1.0
    return x


def settles(x):
    while math.fabs(1.0 - x) > 1e-9:
        x = 0.95 * x + 0.05 * math.cos(x - 1.0)
    return x


def test_while_loop_whose_test_calls_a_function():
    g = check(settles, (0.2,), auto=_settles_ag)
    assert "    math_fabs = math.fabs\n" in g.source(0.2)
    assert "    while math_fabs(1.0 - x_1) > 1e-09:\n" in g.source(0.2)


def _settles_ag(x):
    while anp.abs(1.0 - x) > 1e-9:
        x = 0.95 * x + 0.05 * anp.cos(x - 1.0)
    return x


def reads_its_test(x):
    while x * x < 1e6:
        x = x * 1.3 + 1e-7 * (x * x)  # x * x: the value the test computed
    return x


def test_while_loop_whose_test_value_the_body_reads_keeps_while_true():
    g = check(reads_its_test, (1.5,))
    assert "    while True:\n" in g.source(1.5)


def test_a_folded_call_raises_where_the_function_does():
    g = gradient(root_of, wrt=(0, 1))
    assert _close(g(5.0, 0.5), [numerical_gradient(root_of, (5.0, 0.5), i) for i in (0, 1)],
                  1e-4, 1e-6)
    assert "math_sqrt(" in g.source(5.0, 0.5)
    with pytest.raises(ValueError, match="math domain error"):
        root_of(5.0, 3.0)
    with pytest.raises(ValueError, match="math domain error"):
        g(5.0, 3.0)


# -- options and IR --------------------------------------------------------------------

def test_unroll_option_sets_the_threshold():
    assert "rolled loop" in gradient(recurrence, unroll=200).source(0.3, 1.2)
    assert "rolled loop" not in gradient(recurrence, unroll=201).source(0.3, 1.2)
    assert "rolled loop" not in gradient(recurrence, unroll=0).source(0.3, 1.2)


def test_loop_equation_prints_verifies_and_evaluates():
    prog, values = lower.lower(euler, (2.0, 0.3), (0, 1))
    text = ir.format_program(prog)
    assert "loop for i in range(0, 1000, 1) (1000 trips seen) carry(v=0.0, x=1.0)" in text
    ir.verify(prog)
    assert ir.evaluate(prog, 2.0, 0.3) == pytest.approx(euler(2.0, 0.3))
    assert len(prog.eqns) < 20


def recurrence_n(x, a, n):
    for _ in range(n):
        x = math.sin(x) * a + 0.1 * x
    return x


def test_range_of_a_traced_count_is_one_rolled_path():
    g = gradient(recurrence_n, wrt=(0, 1))
    for n in (200, 199, 40, 3, 17, 1000, 0):
        got = g(0.5, 0.9, n)
        for i in (0, 1):
            assert _close(got[i], numerical_gradient(recurrence_n, (0.5, 0.9, n), i), 1e-5, 1e-7)
    assert g.cache_info().currsize == 1  # every count runs range(n) in the one path
    src = g.source(0.5, 0.9, 50)
    assert "for _ in range(n):" in src and "enough = n >= 0" in src
    assert _close(g(0.5, 0.9, -3)[0], 1.0, 0, 0)  # range(-3) is empty: another path
    assert g.cache_info().currsize == 2


def from_two(x, n):
    s = 0.0
    for i in range(2, n):
        s = s + math.cos(x * i) * i
    return s


def test_a_count_below_the_rolled_start_takes_another_path():
    g = gradient(from_two)
    for n in (60, 25, 3, 2, 80, 1):
        assert _close(g(0.3, n), numerical_gradient(from_two, (0.3, n), 0), 1e-5, 1e-7)
    assert "enough = n >= 2" in g.source(0.3, 60)  # range(2, n) runs on every n >= 2
    assert g.cache_info().currsize == 2  # and n = 1 (range(2, 1) is empty) is its own path


def constant_state(a, b, c):
    t = 0.3
    for i in range(31):
        c = 0.5 * math.tanh(0.5)  # every carried value is overwritten by constants
        b = 0.5 * math.tanh(math.tanh(-(c / (2.0 + math.cos(c)))))
        a = 0.5 * math.tanh(-math.sin(-b))
        b, c = 0.5 * math.tanh(a), 0.5 * math.tanh(b * t * (a + b) - math.sin(b))
    return a + 2.0 * b + 3.0 * c + t


def test_probes_that_differ_without_activity_are_not_retried_forever(monkeypatch):
    from ad_transform import loops
    calls = []
    real = loops._try_roll
    monkeypatch.setattr(loops, "_try_roll", lambda *a, **k: calls.append(1) or real(*a, **k))
    got = gradient(constant_state, wrt=(0, 1, 2))(0.3, 0.2, 0.1)
    assert len(calls) < 40  # was ~20,000 (a retry that repeated itself), 10 s and more
    for i in range(3):
        assert _close(got[i], numerical_gradient(constant_state, (0.3, 0.2, 0.1), i), 1e-6, 1e-8)
