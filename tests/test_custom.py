"""stop_gradient, custom_vjp and defvjp: against finite differences (the rule being
right), autograd where it has the function, a deliberately wrong rule used as given,
and the located errors."""
from __future__ import annotations

import math

import autograd
import autograd.numpy as anp
import autograd.scipy.special as asp
import numpy as np
import pytest
import scipy.special

from ad_transform import (BadRule, MissingRule, custom_vjp, defvjp, gradient, stop_gradient,
                          value_and_gradient)
from ad_transform.testing import check_gradient, check_vjp, numerical_gradient

RNG = np.random.default_rng(3)


# -- stop_gradient ------------------------------------------------------------------------

def frozen_square(x):
    return x * stop_gradient(x * x)


def test_stop_gradient_on_floats_is_a_constant_for_the_derivative():
    for x0 in (0.5, -1.3, 2.0):
        # the derivative of t * c with c = x0 * x0 held fixed
        want = numerical_gradient(lambda t: t * (x0 * x0), (x0,), 0)
        assert math.isclose(gradient(frozen_square)(x0), want, rel_tol=1e-6)
        assert frozen_square(x0) == x0 * (x0 * x0)  # the identity in plain Python
    # autograd's stop_gradient-free equivalent: the same constant passed in
    assert math.isclose(gradient(frozen_square)(1.7),
                        autograd.grad(lambda t, c: t * c)(1.7, 1.7 * 1.7))


def damped(w, x):
    scale = stop_gradient(np.sum(w ** 2))  # a normaliser treated as a constant
    return np.sum(np.tanh(w * x)) / scale


def test_stop_gradient_on_arrays_with_dot_product_check():
    w, x = RNG.normal(size=4), RNG.normal(size=4)
    g = gradient(damped)(w, x)
    c = float(np.sum(w ** 2))
    fixed = lambda w_, x_: np.sum(np.tanh(w_ * x_)) / c
    assert np.allclose(g, numerical_gradient(fixed, (w, x), 0), atol=1e-7)
    assert np.allclose(g, autograd.grad(lambda w_: anp.sum(anp.tanh(w_ * x)) / c)(w))
    check_vjp(lambda x_: np.tanh(w * x_) / c, x)  # the part that is differentiated


def _helper(v, k):
    return v * stop_gradient(v) * k


def in_loop(x):
    total = 0.0
    for k in range(1, 4):
        total = total + _helper(x, k)  # d/dx of x * c * k = c * k, c = x held fixed
    return total


def test_stop_gradient_inside_helpers_and_loops():
    for x0 in (0.3, -2.0):
        want = numerical_gradient(lambda t: sum(t * x0 * k for k in range(1, 4)), (x0,), 0)
        assert math.isclose(gradient(in_loop)(x0), want, rel_tol=1e-6)


def test_stop_gradient_of_a_container_and_of_a_constant():
    def f(x):
        a, b = stop_gradient([x * 2.0, x * 3.0])
        d = stop_gradient({"k": x})
        return x * a + b * x + d["k"] + stop_gradient(5.0)

    x0 = 1.25
    want = numerical_gradient(lambda t: t * (x0 * 2.0) + (x0 * 3.0) * t, (x0,), 0)
    assert math.isclose(gradient(f)(x0), want, rel_tol=1e-6)
    assert stop_gradient({"a": [1.0]}) == {"a": [1.0]}


def test_stop_gradient_of_everything_gives_a_zero_gradient():
    def f(x):
        return stop_gradient(x) ** 2

    assert gradient(f)(3.0) == 0.0
    assert value_and_gradient(f)(3.0) == (9.0, 0.0)


# -- custom_vjp -------------------------------------------------------------------------------

CALLS = []


@custom_vjp
def softplus(x):
    try:  # unsupported syntax if it were inlined: it is called, not inlined
        return np.logaddexp(0.0, x)
    except FloatingPointError:
        raise


def _softplus_rule(g, ans, x):
    CALLS.append(np.shape(x))
    return g * scipy.special.expit(x)


softplus.defvjp(_softplus_rule)


def sp_net(w, x):
    h = x
    for _ in range(3):
        h = softplus(h * w) - 1.0
    return np.sum(h ** 2)


def test_custom_vjp_in_a_loop_matches_fd_and_autograd_and_the_rule_runs_each_call():
    w, x = RNG.normal(size=3), RNG.normal(size=3)
    CALLS.clear()
    g = gradient(sp_net)(w, x)
    assert np.allclose(g, numerical_gradient(sp_net, (w, x), 0), atol=1e-6)

    def a_net(w_):
        h = x
        for _ in range(3):
            h = anp.logaddexp(0.0, h * w_) - 1.0
        return anp.sum(h ** 2)

    assert np.allclose(g, autograd.grad(a_net)(w))
    assert len(CALLS) == 3
    gradient(sp_net)(w * 0.5, x)  # the cached path calls the rule at run time
    assert len(CALLS) == 6
    check_vjp(lambda v: softplus(v), x)


def test_custom_function_is_called_not_inlined_and_code_shows_the_rule_call():
    src = gradient(sp_net).source(np.ones(2), np.ones(2))
    assert "softplus_vjp0(" in src and "softplus_" in src
    assert "logaddexp" not in src  # its body is not in the derivative


def _helper_with_custom(a, b):
    return softplus(a) * b


def test_custom_vjp_inside_a_helper_and_on_floats():
    def f(a, b):
        return _helper_with_custom(a, b) + softplus(b * a)

    for a, b in ((0.3, 1.2), (-1.0, 0.5)):
        check_gradient(f, a, b, wrt=(0, 1))
        assert type(gradient(f)(a, b)) is float


@custom_vjp
def scaled_sum(x, k, shift=0.0):
    return np.sum(x) * k + shift


scaled_sum.defvjp(lambda g, ans, x, k, shift=0.0: g * k * np.ones_like(x),
                  lambda g, ans, x, k, shift=0.0: g * np.sum(x))


def test_custom_vjp_of_two_arguments_and_a_static_keyword():
    def f(x, k):
        return scaled_sum(x * x, k, shift=1.0) ** 2

    x = RNG.normal(size=4)
    check_gradient(f, x, 0.7, wrt=(0, 1))


def test_a_missing_rule_for_a_differentiated_argument_is_located():
    def f(x, k):
        return scaled_sum(x, k + 0.0)

    # (rules exist for x and k); a third positional argument has none
    def g(x, s):
        return scaled_sum(x, 2.0, s)

    with pytest.raises(MissingRule) as info:
        gradient(g, wrt=1)(np.ones(2), 0.5)
    msg = str(info.value)
    assert "argument 2 (shift)" in msg and "scaled_sum" in msg and "defvjp" in msg
    assert "test_custom.py" in msg and "return scaled_sum(x, 2.0, s)" in msg
    # not differentiated there: fine
    assert np.allclose(gradient(g)(np.ones(2), 0.5), 2.0)
    check_gradient(f, np.ones(2), 0.5, wrt=(0, 1))


@custom_vjp
def no_rules(x):
    return x * 3.0


def test_custom_vjp_without_any_rule_is_located_missing_rule():
    def f(x):
        return no_rules(x) + 1.0

    with pytest.raises(MissingRule, match="argument 0 .x. of .*no_rules") as info:
        gradient(f)(1.0)
    assert "no_rules(x) + 1.0" in str(info.value)
    assert no_rules(2.0) == 6.0  # still an ordinary function


def test_a_wrong_rule_is_used_as_given_we_trust_the_rule():
    calls = []

    @custom_vjp
    def cube(x):
        return x ** 3

    def wrong(g, ans, x):  # the true rule is 3 x^2 g
        calls.append(x)
        return g * 2.0 * x

    cube.defvjp(wrong)

    def f(x):
        return cube(x) + x

    assert gradient(f)(1.5) == 2.0 * 1.5 + 1.0
    assert calls == [1.5]
    true = numerical_gradient(f, (1.5,), 0)
    assert not math.isclose(gradient(f)(1.5), true, rel_tol=1e-3)  # as documented
    assert calls == [1.5, 1.5]


def test_a_rule_of_the_wrong_shape_is_a_located_bad_rule_naming_it():
    @custom_vjp
    def total(x):
        return np.sum(x)

    def summed_rule(g, ans, x):
        return g * np.sum(x)  # a scalar for an array argument

    total.defvjp(summed_rule)

    def f(x):
        return total(x * 2.0)

    with pytest.raises(BadRule) as info:
        gradient(f)(np.ones(3))
    msg = str(info.value)
    assert "summed_rule" in msg and "shape ()" in msg and "(3,)" in msg
    assert "test_custom.py" in msg and "return total(x * 2.0)" in msg


def test_a_rule_that_raises_or_returns_junk_is_a_bad_rule():
    @custom_vjp
    def ident(x):
        return x * 1.0

    def f(x):
        return ident(x)

    ident.defvjp(lambda g, ans, x: 1 / 0)
    with pytest.raises(BadRule, match="ZeroDivisionError"):
        gradient(f)(2.0)
    ident.defvjp(lambda g, ans, x: "one")
    with pytest.raises(BadRule, match="returned a str"):
        gradient(f)(2.0)


def test_new_rules_replace_old_ones_in_compiled_paths():
    @custom_vjp
    def twice(x):
        return 2.0 * x

    twice.defvjp(lambda g, ans, x: 2.0 * g)

    def f(x):
        return twice(x) * x

    assert gradient(f)(3.0) == 12.0
    twice.defvjp(lambda g, ans, x: 100.0 * g)  # a different rule: paths compiled before go
    assert gradient(f)(3.0) == 306.0


def test_custom_function_on_constants_only_is_just_called():
    def f(x):
        return x * softplus(0.0)

    assert math.isclose(gradient(f)(2.0), math.log(2.0))


def test_traced_keyword_or_container_arguments_are_refused():
    def kw(x):
        return scaled_sum(x, k=2.0) + scaled_sum(x, 1.0, shift=x[0])

    with pytest.raises(MissingRule, match="positionally") as info:
        gradient(kw)(np.ones(2))
    assert "test_custom.py" in str(info.value)

    def lst(x):
        return scaled_sum([x[0], x[1]], 1.0)

    with pytest.raises(MissingRule, match="containers"):
        gradient(lst)(np.ones(2))


# -- defvjp for a library function --------------------------------------------------------------

defvjp(scipy.special.expit, lambda g, ans, x: g * ans * (1.0 - ans))


def logistic_loss(w, X, y):
    p = scipy.special.expit(X @ w)
    return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))


def test_defvjp_for_scipy_expit_against_fd_and_autograd():
    X = RNG.normal(size=(8, 3))
    y = (RNG.random(8) > 0.5).astype(float)
    w = RNG.normal(size=3)
    g = check_gradient(logistic_loss, w, X, y)

    def a_loss(w_):
        p = asp.expit(anp.dot(X, w_))
        return -anp.mean(y * anp.log(p) + (1 - y) * anp.log(1 - p))

    assert np.allclose(g, autograd.grad(a_loss)(w))
    check_vjp(scipy.special.expit, w)
    assert math.isclose(gradient(lambda t: scipy.special.expit(t))(0.2),
                        scipy.special.expit(0.2) * (1 - scipy.special.expit(0.2)))


def test_defvjp_refuses_to_replace_a_built_in_rule_and_bad_arguments():
    with pytest.raises(ValueError, match="built-in"):
        defvjp(np.exp, lambda g, ans, x: g * ans)
    with pytest.raises(TypeError):
        defvjp(scipy.special.erf, "not a rule")
    with pytest.raises(TypeError, match="defvjp"):
        custom_vjp(np.sin)


def test_a_custom_function_must_return_a_number_or_an_array():
    @custom_vjp
    def pair(x):
        return (x, x)

    pair.defvjp(lambda g, ans, x: g)

    def f(x):
        return pair(x)[0]

    with pytest.raises(BadRule, match="returned a tuple"):
        gradient(f)(1.0)


def test_the_gradient_of_a_custom_function_itself_uses_its_rule():
    CALLS.clear()
    x = np.array([0.5, -2.0])
    g = gradient(lambda v: np.sum(softplus(v)))(x)
    assert np.allclose(gradient(softplus)(0.7), scipy.special.expit(0.7))  # not inlined:
    assert np.allclose(g, scipy.special.expit(x))  # its body has a try statement
    assert len(CALLS) == 2


def test_making_a_function_custom_after_it_was_inlined_drops_the_old_paths():
    def clip_grad(x):
        return x * x

    def f(x):
        return clip_grad(x) + 0.0

    assert gradient(f)(3.0) == 6.0  # inlined: the true derivative
    custom_vjp(clip_grad).defvjp(lambda g, ans, x: g * max(min(2.0 * x, 1.0), -1.0))
    assert gradient(f)(3.0) == 1.0  # the rule, not the path compiled before


def test_custom_vjp_refuses_methods():
    class Model:
        def predict(self, x):
            return x

    with pytest.raises(TypeError, match="class"):
        custom_vjp(Model.predict)


COEF = np.array([1.0, 1.25, 1.5, 1.75, 2.0])  # owns its data (base None)


@custom_vjp
def scale_by_coef(x):
    return COEF * x


scale_by_coef.defvjp(lambda g, ans, x: g * COEF)


@custom_vjp
def coef_of(x):
    return COEF  # (its derivative is zero: the rule says so)


coef_of.defvjp(lambda g, ans, x: np.zeros_like(x))


def test_gradients_never_alias_arrays_that_custom_code_returns():
    before = COEF.copy()

    def f(w, x):
        return np.sum(w * coef_of(x))  # d/dw is COEF itself

    g = gradient(f)(np.ones(5), np.ones(5))
    assert np.array_equal(g, COEF) and not np.shares_memory(g, COEF)
    g[:] = 0.0
    assert np.array_equal(COEF, before)
    check_gradient(lambda x: np.sum(scale_by_coef(x) ** 2), np.ones(5))


@custom_vjp
def cube3(x):
    return x ** 3


def _cube3_rule(g, ans, x):
    return g * 3.0 * x * x


cube3.defvjp(_cube3_rule)


def test_second_order_inlines_the_rule_as_python():
    def f(x):
        return cube3(x) * 2.0 + x

    d2 = gradient(gradient(f))
    for x0 in (1.5, -0.7):
        want = numerical_gradient(gradient(f), (x0,), 0)  # FD of the first derivative
        assert math.isclose(d2(x0), want, rel_tol=1e-6)
        assert math.isclose(d2(x0), 12.0 * x0, rel_tol=1e-9)


def test_second_order_of_stop_gradient_is_zero_as_in_jax():
    def h(x):
        return x * stop_gradient(x * x)

    # the first derivative is stop_gradient(x * x): held constant again
    assert gradient(h)(2.0) == 4.0 and gradient(gradient(h))(2.0) == 0.0
