"""Forward mode and vjp keep long loops rolled (issues 8 and 9).

``jvp``, ``forward_derivative``, ``vjp`` and ``jacobian`` lower with the default
``unroll``: a loop of at least that many iterations is one Python loop in the
generated code, carrying the tangents of its active values beside them.  Every
derivative here is compared with central finite differences (a directional one
along the tangent for ``jvp``), and, where there are arrays, ``jvp`` and ``vjp``
are checked against each other (``<u, J t> == <J^T u, t>``).  The shape of the
generated code is checked through ``.source()``, the number of compiled paths
through ``cache_info()``.
"""
import math
import re
import types
import warnings

import numpy as np
import pytest

from ad_transform import MissingRule, forward_derivative, jacobian, jvp, vjp
from ad_transform.loops import DEFAULT_UNROLL
from ad_transform.rules import numpy as N
from ad_transform.rules.core import call_prim, defvjp

RNG = np.random.default_rng(11)


def close(a, b, rtol=1e-5, atol=1e-7):
    return np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=rtol, atol=atol)


def directional(f, primals, tangents, eps=1e-6):
    """(f(p + h t) - f(p - h t)) / 2h, leaf by leaf for a tuple output."""
    def at(sign):
        return f(*[p if t is None else p + sign * eps * t for p, t in zip(primals, tangents)])

    up, down = at(1.0), at(-1.0)
    if isinstance(up, tuple):
        return tuple((np.asarray(u, float) - np.asarray(d, float)) / (2 * eps)
                     for u, d in zip(up, down))
    return (np.asarray(up, float) - np.asarray(down, float)) / (2 * eps)


def code_lines(src):
    """The generated source without its comment lines."""
    return "\n".join(l for l in src.splitlines() if not l.strip().startswith("#"))


def has_loop(src) -> bool:
    return re.search(r"^\s*(for|while) ", code_lines(src), re.M) is not None


def check_jvp(f, primals, tangents, rtol=1e-5, atol=1e-6):
    """jvp against f itself (value) and finite differences (tangent); returns it."""
    value, tangent = jvp(f, primals, tangents)
    want = f(*primals)
    if isinstance(want, tuple):
        for v, w in zip(value, want):
            assert close(v, w, 1e-12, 1e-12)
    else:
        assert close(value, want, 1e-12, 1e-12)
    fd = directional(f, primals, tangents)
    if isinstance(fd, tuple):
        for t, d in zip(tangent, fd):
            assert close(t, d, rtol, atol), (t, d)
    else:
        assert close(tangent, fd, rtol, atol), (tangent, fd)
    return value, tangent


def check_dot(f, primals, tangents, cotangent):
    """<cotangent, J t> (forward) == <J^T cotangent, t> (vjp)."""
    _, jt = jvp(f, primals, tangents)
    _, pullback = vjp(f, *primals)
    grads = pullback(cotangent)
    cts = cotangent if isinstance(cotangent, tuple) else (cotangent,)
    jts = jt if isinstance(jt, tuple) else (jt,)
    left = sum(float(np.sum(np.asarray(c) * np.asarray(t))) for c, t in zip(cts, jts))
    right = sum(float(np.sum(np.asarray(g) * np.asarray(t)))
                for g, t in zip(grads, tangents) if t is not None)
    assert math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-10), (left, right)


# -- a scalar recurrence: the loop of the task ------------------------------------------------

def fresh_recurrence():
    """A new function object each call: its derivatives have caches of their own."""
    def recurrence(x, a, n):
        for _ in range(n):
            x = math.sin(x) * a + 0.1 * x
        return x
    return recurrence


recurrence = fresh_recurrence()


@pytest.mark.parametrize("n", [20, 100, 1000])
def test_jvp_of_a_rolled_recurrence(n):
    check_jvp(recurrence, (1.0, 0.9, n), (1.0, 0.5, None))
    check_jvp(recurrence, (0.3, 1.1, n), (0.0, 1.0, None))


def test_forward_derivative_source_is_one_loop_carrying_tangents():
    recurrence = fresh_recurrence()
    fd = forward_derivative(recurrence, wrt=(0, 1))
    value, tangent = fd(1.0, 0.9, 200, 1.0, 0.5)
    assert close(tangent, directional(recurrence, (1.0, 0.9, 200), (1.0, 0.5, None)))
    src = fd.source(1.0, 0.9, 200, 1.0, 0.5)
    assert has_loop(src)
    assert "(rolled loop: 200 iterations seen)" in src
    assert "recurrence(x, a, n):" not in code_lines(src)
    assert re.search(r"^\s*t_x\w* = ", src, re.M), src  # tangents named after their value
    assert src.count("math_sin(") == 1  # the body once
    assert type(tangent) is float and type(value) is float


def test_trip_counts_share_one_path():
    recurrence = fresh_recurrence()
    fd = forward_derivative(recurrence, wrt=(0, 1))
    for n in (40, 17, 300, 1000, 64):
        _, t = fd(0.7, 0.8, n, 1.0, 0.0)
        assert close(t, directional(recurrence, (0.7, 0.8, n), (1.0, 0.0, None)))
    assert fd.cache_info().misses == 1


def test_short_loops_stay_straight_line():
    short = DEFAULT_UNROLL - 1
    f = fresh_recurrence()
    fd = forward_derivative(f, wrt=(0, 1))
    _, t = fd(1.0, 0.9, short, 1.0, 0.5)
    assert close(t, directional(f, (1.0, 0.9, short), (1.0, 0.5, None)))
    assert not has_loop(fd.source(1.0, 0.9, short, 1.0, 0.5))
    _, pullback = vjp(f, 1.0, 0.9, short)
    assert close(pullback(1.0)[1], directional(f, (1.0, 0.9, short), (0.0, 1.0, None)))
    f = fresh_recurrence()
    assert has_loop(forward_derivative(f, wrt=(0, 1)).source(1.0, 0.9, DEFAULT_UNROLL, 1.0, 0.5))


def test_jacobian_both_modes_roll():
    for mode in ("forward", "reverse", None):
        jac = jacobian(recurrence, wrt=(0, 1), mode=mode)
        for n in (30, 500):
            j0, j1 = jac(1.0, 0.9, n)
            assert close(j0, directional(recurrence, (1.0, 0.9, n), (1.0, 0.0, None)))
            assert close(j1, directional(recurrence, (1.0, 0.9, n), (0.0, 1.0, None)))


def test_vjp_of_a_rolled_recurrence():
    value, pullback = vjp(recurrence, 1.0, 0.9, 300)
    assert value == recurrence(1.0, 0.9, 300)
    gx, ga, gn = pullback(2.0)
    assert gn is None or gn == 0.0
    assert close(gx, 2.0 * directional(recurrence, (1.0, 0.9, 300), (1.0, 0.0, None)))
    assert close(ga, 2.0 * directional(recurrence, (1.0, 0.9, 300), (0.0, 1.0, None)))


# -- while loops ------------------------------------------------------------------------------

def grow(x, rate):
    steps = 0
    while x < 50.0:
        x = x * rate + 0.01 * x * x
        steps += 1
    return x * steps


def test_jvp_of_a_while_loop_whose_trip_count_varies():
    fd = forward_derivative(grow, wrt=(0, 1))
    trips = set()
    for x0, rate in ((1.0, 1.05), (0.5, 1.05), (2.0, 1.03), (1.3, 1.02)):
        _, t = fd(x0, rate, 1.0, 0.3)
        assert close(t, directional(grow, (x0, rate), (1.0, 0.3)), 1e-4, 1e-6)
        steps, x = 0, x0
        while x < 50.0:
            x, steps = x * rate + 0.01 * x * x, steps + 1
        trips.add(steps)
    assert len(trips) > 2
    assert fd.cache_info().currsize == 1  # one body path, not one path per trip count
    assert has_loop(fd.source(1.0, 1.05, 1.0, 0.3))


def test_vjp_and_jacobian_of_a_while_loop():
    _, pullback = vjp(grow, 1.0, 1.05)
    gx, gr = pullback(1.0)
    assert close(gx, directional(grow, (1.0, 1.05), (1.0, 0.0)), 1e-4)
    assert close(gr, directional(grow, (1.0, 1.05), (0.0, 1.0)), 1e-4)
    j = jacobian(grow, wrt=1)(1.0, 1.05)
    assert close(j, gr, 1e-9)


# -- branches in the body ---------------------------------------------------------------------

def bang(x, a, n):
    for i in range(n):
        if x > 0.0:
            x = x * a - 0.3
        else:
            x = math.sin(x) * a + 0.05
    return x


def test_merged_if_in_a_rolled_body():
    fd = forward_derivative(bang, wrt=(0, 1))
    for x0 in (2.0, -1.0, 5.0):
        _, t = fd(x0, 0.8, 60, 1.0, 0.5)
        assert close(t, directional(bang, (x0, 0.8, 60), (1.0, 0.5, None)), 1e-4, 1e-6)
    src = fd.source(2.0, 0.8, 60, 1.0, 0.5)
    assert has_loop(src) and "(both branches)" in src
    assert fd.cache_info().currsize == 1
    check_jvp(bang, (3.0, 0.9, 80), (1.0, -0.5, None))
    _, pullback = vjp(bang, 3.0, 0.9, 80)
    gx, ga, _ = pullback(1.0)
    assert close(gx, directional(bang, (3.0, 0.9, 80), (1.0, 0.0, None)), 1e-4)
    assert close(ga, directional(bang, (3.0, 0.9, 80), (0.0, 1.0, None)), 1e-4)


def bang_arrays(v, w, n):
    for i in range(n):
        if v[0] > 0.0:
            v = np.tanh(v * w) - 0.2
        else:
            v = v * 0.5 + w
    return v


def test_merged_if_with_array_values():
    v, w = np.array([1.5, -0.3, 0.2]), np.array([0.9, 1.1, -0.4])
    tv, tw = RNG.standard_normal(3), RNG.standard_normal(3)
    check_jvp(bang_arrays, (v, w, 40), (tv, tw, None))
    check_dot(bang_arrays, (v, w, 40), (tv, tw, None), RNG.standard_normal(3))


def _down(x, a):
    return x - 0.1 * a * (1.0 + x * x) ** 0.5


def _up(x, a):
    return 0.9 * x - 0.01 * a


def sign_change(x, a, n):
    for i in range(n):
        if x > 0.0:  # inlined helpers: not merged, each iteration's decision is guarded
            x = _down(x, a)
        else:
            x = _up(x, a)
    return x


def test_an_iteration_leaving_the_body_path_mid_loop():
    # x falls below zero near iteration 25: the rolled body's guard fails there
    xs, x = [], 3.0
    for _ in range(80):
        xs.append(x)
        x = _down(x, 1.0) if x > 0.0 else _up(x, 1.0)
    assert xs[0] > 0.0 > xs[-1]
    fd = forward_derivative(sign_change, wrt=(0, 1))
    _, t = fd(3.0, 1.0, 80, 1.0, 0.25)
    assert close(t, directional(sign_change, (3.0, 1.0, 80), (1.0, 0.25, None)), 1e-4)
    assert has_loop(fd.source(3.0, 1.0, 80, 1.0, 0.25))
    check_jvp(sign_change, (3.0, 1.0, 80), (0.5, 1.0, None), 1e-4)
    # a call whose sign changes at another iteration leaves the path: the right answer
    _, t = fd(1.0, 1.0, 80, 1.0, 0.25)
    assert close(t, directional(sign_change, (1.0, 1.0, 80), (1.0, 0.25, None)), 1e-4)
    _, pullback = vjp(sign_change, 3.0, 1.0, 80)
    assert close(pullback(1.0)[1], directional(sign_change, (3.0, 1.0, 80), (0.0, 1.0, None)),
                 1e-4)


# -- arrays -----------------------------------------------------------------------------------

def rnn(h, W, b, n):
    for _ in range(n):
        h = np.tanh(W @ h + b)
    return h


def test_array_carried_values():
    h, W, b = RNG.standard_normal(4), 0.5 * RNG.standard_normal((4, 4)), RNG.standard_normal(4)
    th, tW, tb = RNG.standard_normal(4), RNG.standard_normal((4, 4)), RNG.standard_normal(4)
    _, t = check_jvp(rnn, (h, W, b, 30), (th, tW, tb, None))
    check_dot(rnn, (h, W, b, 30), (th, tW, tb, None), RNG.standard_normal(4))
    fd = forward_derivative(rnn, wrt=(0, 1, 2))
    assert has_loop(fd.source(h, W, b, 30, th, tW, tb))
    j = jacobian(rnn, wrt=0)(h, W, b, 30)
    assert j.shape == (4, 4)
    assert close(j @ th, directional(rnn, (h, W, b, 30), (th, None, None, None)))


def moving(x, y):
    for i in range(40):
        y = x  # carried, its next value is an outer array itself
        x = x * 0.99
    return y


def test_a_returned_tangent_is_never_the_callers_array():
    x = np.array([1.0, 2.0, 3.0])
    t = np.array([0.5, -1.0, 2.0])
    keep = t.copy()
    _, ty = jvp(moving, (x, np.zeros(3)), (t, np.zeros(3)))
    assert close(ty, directional(moving, (x, np.zeros(3)), (t, np.zeros(3))))
    ty += 100.0  # the caller owns what it got
    assert np.array_equal(t, keep)
    ct = np.array([1.0, 1.0, 1.0])
    _, pullback = vjp(moving, x, np.zeros(3))
    gx, _ = pullback(ct)
    gx += 5.0
    assert np.array_equal(ct, np.ones(3))


def squares(x):
    s = 0.0
    for i in range(len(x)):
        s = s + x[i] * x[i] * math.cos(s)
    return s


def elements(x, c):
    acc = 1.0
    for xi in x:
        acc = acc * 0.9 + np.sin(xi * c)
    return acc


def test_loops_over_array_elements():
    x = RNG.uniform(-0.5, 0.5, 50)
    tx = RNG.standard_normal(50)
    check_jvp(squares, (x,), (tx,))
    check_dot(squares, (x,), (tx,), 1.7)
    fd = forward_derivative(squares)
    assert has_loop(fd.source(x, tx))
    check_jvp(elements, (x, 1.3), (tx, 0.7))
    check_dot(elements, (x, 1.3), (tx, 0.7), -0.4)
    assert has_loop(forward_derivative(elements, wrt=(0, 1)).source(x, 1.3, tx, 0.7))
    g = jacobian(squares)(x)  # reverse mode: one output
    assert close(g @ tx, directional(squares, (x,), (tx,)))


def nested(x, a):
    total = 0.0
    for i in range(20):
        y = x
        for j in range(18):
            y = y * a + math.sin(y + total)
        total = total + y * 0.01
        x = x * 0.97
    return total


def test_nested_loops():
    fd = forward_derivative(nested, wrt=(0, 1))
    _, t = fd(0.4, 0.5, 1.0, -0.3)
    assert close(t, directional(nested, (0.4, 0.5), (1.0, -0.3)), 1e-4)
    src = fd.source(0.4, 0.5, 1.0, -0.3)
    assert len(re.findall(r"^\s*for ", code_lines(src), re.M)) >= 2, src
    check_jvp(nested, (0.2, 0.6), (0.5, 1.0), 1e-4)
    _, pullback = vjp(nested, 0.4, 0.5)
    gx, ga = pullback(1.0)
    assert close(gx, directional(nested, (0.4, 0.5), (1.0, 0.0)), 1e-4)
    assert close(ga, directional(nested, (0.4, 0.5), (0.0, 1.0)), 1e-4)


# -- several outputs, trees -------------------------------------------------------------------

def euler(k, c, x, v):
    dt = 0.01
    for _ in range(300):
        acc = -k * x - c * v
        x = x + dt * v
        v = v + dt * acc
    return x, v


def test_tuple_outputs_forward_and_vjp():
    check_jvp(euler, (2.0, 0.3, 1.0, 0.0), (1.0, 0.5, 0.0, 0.0))
    check_dot(euler, (2.0, 0.3, 1.0, 0.0), (1.0, 0.5, 0.2, -0.1), (0.7, -1.3))
    jx, jv = jacobian(euler, wrt=(0, 1))(2.0, 0.3, 1.0, 0.0)
    assert close(jx[0], directional(euler, (2.0, 0.3, 1.0, 0.0), (1.0, 0.0, 0.0, 0.0))[0])
    assert close(jv[1], directional(euler, (2.0, 0.3, 1.0, 0.0), (0.0, 1.0, 0.0, 0.0))[1])


def array_outputs(x, w):
    y = x * 1.0
    for i in range(25):
        y = np.sin(y) * w + x
    return y, np.sum(y * y)


def test_array_and_tuple_outputs_of_vjp():
    x, w = RNG.standard_normal(5), RNG.standard_normal(5)
    tx, tw = RNG.standard_normal(5), RNG.standard_normal(5)
    check_jvp(array_outputs, (x, w), (tx, tw))
    check_dot(array_outputs, (x, w), (tx, tw), (RNG.standard_normal(5), 0.6))
    jac = jacobian(array_outputs, wrt=0)(x, w)
    assert jac[0].shape == (5, 5) and jac[1].shape == (5,)
    assert close(jac[0] @ tx, directional(array_outputs, (x, w), (tx, None))[0])


def tree_loop(p, n):
    x = p["x"]
    for i in range(n):
        if x > 1.0:  # a guard inside the rolled body (an inlined helper: not merged)
            x = _down(x, p["a"])
        else:
            x = x * p["a"] + 0.5
    return x


def test_tree_tangent_through_a_rolled_loop_with_guards():
    p = {"x": 0.3, "a": 0.7}
    tp = {"x": 1.0, "a": -0.5}
    fd = forward_derivative(tree_loop, wrt=0)
    _, t = fd(p, 40, tp)
    want = (tree_loop({"x": 0.3 + 1e-6, "a": 0.7 - 0.5e-6}, 40)
            - tree_loop({"x": 0.3 - 1e-6, "a": 0.7 + 0.5e-6}, 40)) / 2e-6
    assert close(t, want, 1e-4)
    assert has_loop(fd.source(p, 40, tp))
    for x0 in (2.5, 0.9):  # other paths through the same function
        q = {"x": x0, "a": 0.7}
        _, t = fd(q, 40, tp)
        want = (tree_loop({"x": x0 + 1e-6, "a": 0.7 - 0.5e-6}, 40)
                - tree_loop({"x": x0 - 1e-6, "a": 0.7 + 0.5e-6}, 40)) / 2e-6
        assert close(t, want, 1e-4)


# -- what has no forward rule -----------------------------------------------------------------

def _reverse_cumsum(x):
    return np.cumsum(x[::-1])[::-1]


_lib = types.ModuleType("reverse_only_lib")
_lib.reverse_cumsum = _reverse_cumsum
_rc = defvjp(call_prim(_lib, "reverse_cumsum", "reverse_only_lib"),
             lambda g, ans, x: N.cumsum(g))  # a primitive with a VJP rule only


def no_forward_rule(x):
    for i in range(30):
        x = _lib.reverse_cumsum(x) * 0.1
    return x


def test_an_operation_without_a_forward_rule_in_a_rolled_body_is_located():
    x = np.array([0.5, 1.0, 2.0])
    with pytest.raises(MissingRule, match="no forward-mode") as info:
        jvp(no_forward_rule, (x,), (np.ones(3),))
    assert info.value.loc is not None and "reverse_cumsum" in info.value.loc.excerpt()
    _, pullback = vjp(no_forward_rule, x)  # reverse mode has its rule
    u = RNG.standard_normal(3)
    (g,) = pullback(u)
    h = 1e-6
    for k in range(3):
        e = np.zeros(3)
        e[k] = h
        assert close(g[k], (np.sum(u * no_forward_rule(x + e))
                            - np.sum(u * no_forward_rule(x - e))) / (2 * h), 1e-4)


# -- the fuzzer's random programs with every loop of two iterations or more rolled --------

def _copy(a):
    return np.copy(a) if isinstance(a, np.ndarray) else a


def _smooth_directional(f, inputs, ts):
    """The directional derivative by central differences, or None where two step sizes
    disagree (a kink or a branch boundary within reach of the steps)."""
    def at(eps):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            up = f(*[_copy(a) if t is None else a + eps * t for a, t in zip(inputs, ts)])
            down = f(*[_copy(a) if t is None else a - eps * t for a, t in zip(inputs, ts)])
        return (float(up) - float(down)) / (2 * eps)

    one, two = at(1e-6), at(1e-5)
    return one if math.isclose(one, two, rel_tol=1e-4, abs_tol=1e-6) else None


@pytest.mark.parametrize("first", [3_000_000, 3_000_030])
def test_random_programs_with_their_loops_rolled(first, monkeypatch):
    """tests/fuzz.py's programs (``for``/``while`` loops with ``if``s, ``break``s, arrays),
    with forward mode and vjp rolling every loop of two iterations or more: the tangent
    and the pullback against finite differences and against the unrolled gradient
    (itself checked against finite differences and autograd by tests/test_fuzz.py)."""
    import fuzz
    from ad_transform import ADError, gradient, transforms
    monkeypatch.setattr(transforms, "DEFAULT_UNROLL", 2)
    rng = np.random.default_rng(first)
    checked = rolled = 0
    for s, mod, wrt in fuzz.programs(first, 30, "rollfwd"):
        for inputs in list(fuzz.draws(mod.ARGS, mod.SEED))[:2]:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if not np.all(np.isfinite(mod.f(*fuzz.copied(inputs)))):
                        continue
                    grads = gradient(mod.f, tuple(wrt), unroll=0)(*fuzz.copied(inputs))
            except Exception:
                continue  # the primal raises, or gradient refuses: no verdict here
            ts = tuple(fuzz.random_like(rng, a) if i in wrt else None
                       for i, a in enumerate(inputs))
            want = sum(float(np.sum(g * ts[i])) for g, i in zip(grads, wrt))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    _, tangent = jvp(mod.f, fuzz.copied(inputs), ts)
                except ADError:  # refused in forward mode (also unrolled): not a verdict
                    tangent = None
                _, pullback = vjp(mod.f, *fuzz.copied(inputs))
                got = pullback(1.0)
            if tangent is not None:
                np.testing.assert_allclose(float(tangent), want, rtol=1e-7, atol=1e-9,
                                           err_msg=f"seed {s}:\n{fuzz.generate(s)}")
                src = forward_derivative(mod.f, wrt=tuple(wrt)).source(
                    *fuzz.copied(inputs), *(ts[i] for i in wrt))
                rolled += "rolled loop" in src
            for g, i in zip(grads, wrt):
                np.testing.assert_allclose(got[i], g, rtol=1e-7, atol=1e-9,
                                           err_msg=f"seed {s}:\n{fuzz.generate(s)}")
            fd = _smooth_directional(mod.f, inputs, ts)
            if fd is not None:
                assert math.isclose(want, fd, rel_tol=1e-3, abs_tol=1e-5), (s, want, fd)
            checked += 1
    assert checked > 20 and rolled > 3, (checked, rolled)
