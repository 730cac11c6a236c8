"""Every error path: exception type, construct name, the user's file:line:col, source text.

Locations are never hard-coded: :func:`where` finds the line of a function's own
source that holds a snippet (with ``inspect.getsourcelines``) and the snippet's
column on it, and builds ``f"{__file__}:{line}:{col}"``.
"""
import inspect
import math
import statistics

import numpy as np
import pytest

import ad_transform
from ad_transform import (BadWrt, MissingRule, NonScalarOutput, PathTooLong, SourceUnavailable,
                          UnsupportedSyntax, gradient, value_and_gradient)
from ad_transform.testing import numerical_gradient


def where(fn, snippet):
    """``(f"{__file__}:{line}:{col}", stripped source line)`` of ``snippet`` in ``fn``."""
    lines, start = inspect.getsourcelines(fn)
    for k, line in enumerate(lines):
        col = line.find(snippet)
        if col >= 0:
            return f"{__file__}:{start + k}:{col}", line.strip()
    raise LookupError(f"{snippet!r} is not in the source of {fn.__name__}")


def assert_located(exc_info, fn, snippet, *words):
    """The message names ``words``, the location of ``snippet`` in ``fn`` and its line."""
    msg = str(exc_info.value)
    loc, text = where(fn, snippet)
    assert loc in msg, f"{loc!r} not in {msg!r}"
    assert text in msg, f"{text!r} not in {msg!r}"
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"
    err = exc_info.value
    assert err.loc is not None and str(err.loc) == loc
    return msg


# -- UnsupportedSyntax ---------------------------------------------------------------

def s_try(x):
    try:
        y = x * 2.0
    except ValueError:
        y = x
    return y


def s_with(x):
    with open(__file__) as fh:
        fh.read()
    return x


def s_yield(x):
    yield x * 2.0


def s_async(x):
    async def inner():
        return 1.0
    return x


def s_global(x):
    global _UNUSED
    return x


def s_nonlocal(x):
    def inner():
        nonlocal x
        return x
    return inner()


def s_class(x):
    class Box:
        pass
    return x


def s_del(x):
    y = x * 2.0
    del y
    return x


def s_import(x):
    import os
    return x + len(os.sep)


def s_from_import(x):
    from os import sep
    return x + len(sep)


def s_setcomp(x):
    s = {x * i for i in range(3)}
    return sum(s)


def s_dictcomp(x):
    d = {i: x * i for i in range(3)}
    return d[1]


def s_set_literal(x):
    s = {x, 2.0}
    return x


def s_walrus(x):
    if (y := x * 2.0) > 0:
        return y
    return x


def s_match(x):
    match x:
        case 1.0:
            return x
    return x * 2.0


def s_nested_decorator(x):
    @staticmethod
    def inner(z):
        return z
    return x


def s_attr_target(x):
    s_attr_target.cache = x
    return x


def s_starred_target(x):
    a, *rest = [x, x, x]
    return a


UNSUPPORTED = [
    (s_try, "try:", "'try' statement"),
    (s_with, "with open", "'with' statement"),
    (s_yield, "yield x", "'yield' expression"),
    (s_async, "async def inner", "'async def' function"),
    (s_global, "global _UNUSED", "'global' statement"),
    (s_nonlocal, "nonlocal x", "'nonlocal' statement"),
    (s_class, "class Box", "'class' definition"),
    (s_del, "del y", "'del' statement"),
    (s_import, "import os", "'import' statement"),
    (s_from_import, "from os import", "'from ... import' statement"),
    (s_setcomp, "{x * i for", "set comprehension"),
    (s_dictcomp, "{i: x * i for", "dict comprehension"),
    (s_set_literal, "{x, 2.0}", "set literal"),
    (s_walrus, "y := x", "assignment expression ':='"),
    (s_match, "match x:", "'match' statement"),
    (s_nested_decorator, "staticmethod", "decorator on a nested function"),
    (s_attr_target, "s_attr_target.cache", "assignment to an attribute"),
    (s_starred_target, "*rest", "starred assignment target"),
]


@pytest.mark.parametrize("fn, snippet, construct", UNSUPPORTED,
                         ids=[c[0].__name__ for c in UNSUPPORTED])
def test_unsupported_syntax(fn, snippet, construct):
    with pytest.raises(UnsupportedSyntax) as exc_info:
        gradient(fn)(1.0)
    msg = assert_located(exc_info, fn, snippet, construct, "unsupported syntax")
    assert msg.startswith(where(fn, snippet)[0] + ": ")


def test_unsupported_syntax_also_from_value_and_gradient():
    with pytest.raises(UnsupportedSyntax) as exc_info:
        value_and_gradient(s_try)(1.0)
    assert_located(exc_info, s_try, "try:", "'try' statement")


def test_unsupported_syntax_is_an_ad_error():
    with pytest.raises(ad_transform.ADError):
        gradient(s_with)(1.0)


def s_closure_attr(x):
    def inner(z):
        return z
    return inner.__name__ and x


def test_attribute_of_local_function():
    with pytest.raises(UnsupportedSyntax) as exc_info:
        gradient(s_closure_attr)(1.0)
    assert_located(exc_info, s_closure_attr, "inner.__name__", "attribute of a local function")


def _runaway(x):
    return _runaway(x) + 1.0


def test_unbounded_recursion_is_reported_not_a_crash():
    with pytest.raises(UnsupportedSyntax) as exc_info:
        gradient(_runaway)(1.0)
    assert_located(exc_info, _runaway, "_runaway(x) + 1.0", "recursion deeper than Python allows")


def _long_loop(x, n):
    s = 0.0
    for i in range(n):
        s = s + x * i
    return s


def test_path_too_long():
    with pytest.raises(PathTooLong) as exc_info:
        gradient(_long_loop, max_eqns=50, unroll=0)(1.0, 100)  # unrolled: 300 operations
    msg = str(exc_info.value)  # at the loop body's line (its `+` or its `*`)
    line = where(_long_loop, "s + x * i")[0].rsplit(":", 1)[0]
    assert line + ":" in msg and "s = s + x * i" in msg and "max_eqns" in msg
    # under the budget, the same function differentiates correctly
    g = gradient(_long_loop, max_eqns=50)(1.0, 5)
    assert math.isclose(g, numerical_gradient(_long_loop, (1.0, 5), 0), rel_tol=1e-6)


# -- MissingRule -----------------------------------------------------------------------

def m_gamma(x):
    y = x * 2.0
    return math.gamma(y) + 1.0


def m_library(x):
    return statistics.fmean([x, 2.0 * x])


def m_call_traced(x):
    return x(1.0)


def m_method(x):
    return x.conjugate() * 2.0


def m_attribute(n):
    return n.numerator * 2


def m_kwarg(x, n):
    return x * round(x, ndigits=n)


MISSING = [
    (m_gamma, (1.5,), 0, "math.gamma(y)", ["math.gamma", "no derivative rule"]),
    (m_library, (1.5,), 0, "statistics.fmean(", ["statistics.fmean", "no derivative rule"]),
    (m_call_traced, (1.5,), 0, "x(1.0)", ["calling a traced value"]),
    (m_method, (1.5,), 0, "x.conjugate()", [".conjugate()", "float"]),
    (m_attribute, (3,), 0, "n.numerator", [".numerator", "int"]),
    (m_kwarg, (1.5, 2), 0, "round(x, ndigits=n)", ["traced keyword argument", "round"]),
]


@pytest.mark.parametrize("fn, args, wrt, snippet, words", MISSING,
                         ids=[c[0].__name__ for c in MISSING])
def test_missing_rule(fn, args, wrt, snippet, words):
    with pytest.raises(MissingRule) as exc_info:
        gradient(fn, wrt)(*args)
    assert_located(exc_info, fn, snippet, *words)


def test_missing_rule_is_only_for_differentiated_values():
    # math.gamma of a value that does not depend on x is an opaque call, not an error
    def f(x, n):
        return x * math.gamma(n)

    g = gradient(f, 0)(1.5, 4.0)
    assert math.isclose(g, numerical_gradient(f, (1.5, 4.0), 0), rel_tol=1e-6)


# -- errors inside an inlined helper point at the helper's line --------------------------

def _helper_no_rule(a):
    b = a + 1.0
    return math.lgamma(b) * 2.0


def _helper_syntax(a):
    with open(__file__):
        pass
    return a


def _helper_library(a):
    return statistics.fmean([a, a])


def _uses_no_rule(x):
    return _helper_no_rule(x) + x


def _uses_syntax(x):
    return _helper_syntax(x) + x


def _uses_library(x):
    return 3.0 * _helper_library(x)


def test_missing_rule_in_helper_points_at_helper():
    with pytest.raises(MissingRule) as exc_info:
        gradient(_uses_no_rule)(1.5)
    assert_located(exc_info, _helper_no_rule, "math.lgamma(b)", "math.lgamma")


def test_unsupported_syntax_in_helper_points_at_helper():
    with pytest.raises(UnsupportedSyntax) as exc_info:
        gradient(_uses_syntax)(1.5)
    assert_located(exc_info, _helper_syntax, "with open", "'with' statement")


def test_library_call_in_helper_points_at_helper():
    with pytest.raises(MissingRule) as exc_info:
        gradient(_uses_library)(1.5)
    assert_located(exc_info, _helper_library, "statistics.fmean(", "statistics.fmean")


# -- NonScalarOutput ---------------------------------------------------------------------

def n_list(x):
    return [x, 2.0 * x]


def n_tuple(x):
    return x, 2.0 * x


def n_none(x):
    y = x * 2.0
    return None


def n_fall_off(x):
    y = x * 2.0


def n_str(x):
    return f"{x}"


NONSCALAR = [
    (n_list, "return [x", "list"),
    (n_tuple, "return x, 2.0", "tuple"),
    (n_none, "return None", "NoneType"),
    (n_fall_off, "def n_fall_off", "NoneType"),
    (n_str, "return f", "str"),
]


@pytest.mark.parametrize("fn, snippet, what", NONSCALAR, ids=[c[0].__name__ for c in NONSCALAR])
@pytest.mark.parametrize("make", [gradient, value_and_gradient])
def test_non_scalar_output(make, fn, snippet, what):
    with pytest.raises(NonScalarOutput) as exc_info:
        make(fn)(1.5)
    assert_located(exc_info, fn, snippet, fn.__name__, f"returned a {what}", "one real number")
    assert isinstance(exc_info.value, TypeError)


# -- BadWrt ----------------------------------------------------------------------------

def w_two(x, y):
    return x * y


def w_star(x, *rest):
    return x * sum(rest)


def w_kw(x, **options):
    return x


BADWRT_AT_DEFINITION = [
    (w_two, "z", ["'z'", "names no parameter", "w_two(x, y)"]),
    (w_two, 2, ["wrt=2", "out of range", "2 parameters"]),
    (w_two, -3, ["wrt=-3", "out of range"]),
    (w_two, (0, "nope"), ["'nope'", "names no parameter"]),
    (w_star, 1, ["*rest", "catch-all parameter"]),
    (w_star, "rest", ["*rest", "catch-all parameter"]),
    (w_kw, "options", ["**options", "catch-all parameter"]),
    (w_two, 1.0, ["got 1.0", "parameter index"]),
    (w_two, True, ["got True", "parameter index"]),
    (w_two, (), ["wrt is empty"]),
]


@pytest.mark.parametrize("fn, wrt, words", BADWRT_AT_DEFINITION,
                         ids=[repr(c[1]) for c in BADWRT_AT_DEFINITION])
def test_bad_wrt_at_definition(fn, wrt, words):
    with pytest.raises(BadWrt) as exc_info:
        gradient(fn, wrt)
    assert_located(exc_info, fn, f"def {fn.__name__}", *words)
    assert isinstance(exc_info.value, ValueError)


BADWRT_AT_CALL = [
    ({1.0, 2.0}, ["'x'", "set"]),  # (a list is a tree of floats: tests/test_pytrees.py)
    (1.0 + 2.0j, ["'x'", "complex"]),
    (True, ["'x'", "bool"]),
    ("1.0", ["'x'", "str"]),
    (None, ["'x'", "NoneType"]),
]


@pytest.mark.parametrize("arg, words", BADWRT_AT_CALL,
                         ids=[type(c[0]).__name__ for c in BADWRT_AT_CALL])
def test_bad_wrt_argument(arg, words):
    with pytest.raises(BadWrt) as exc_info:
        gradient(w_two, 0)(arg, 2.0)
    # points at the parameter in the signature
    assert_located(exc_info, w_two, "x, y)", *words)


def test_bad_wrt_argument_second_parameter():
    with pytest.raises(BadWrt) as exc_info:
        gradient(w_two, "y")(2.0, {1.0})
    assert_located(exc_info, w_two, "y)", "'y'", "set")


def test_non_wrt_argument_may_be_anything():
    def f(x, scale):
        return x * scale[0]

    g = gradient(f, 0)(1.5, [3.0])
    assert math.isclose(g, numerical_gradient(f, (1.5, [3.0]), 0), rel_tol=1e-6)


# -- SourceUnavailable -------------------------------------------------------------------

def _exec_function(name="from_string"):
    namespace = {}
    exec(f"def {name}(x):\n    return x * x\n", namespace)
    return namespace[name]


def test_source_unavailable_for_exec_function():
    fn = _exec_function()
    with pytest.raises(SourceUnavailable) as exc_info:
        gradient(fn)(1.5)
    msg = str(exc_info.value)
    assert "cannot read the source of from_string" in msg
    assert "<string>" in msg
    assert "Define it in a file" in msg
    assert "Traceback" not in msg and "\n" not in msg.strip()


def _call_exec_helper(x):
    return _EXEC_HELPER(x) + 1.0


_EXEC_HELPER = _exec_function("exec_helper")


def test_source_unavailable_for_exec_helper_names_the_call_site():
    with pytest.raises(SourceUnavailable) as exc_info:
        gradient(_call_exec_helper)(1.5)
    msg = assert_located(exc_info, _call_exec_helper, "_EXEC_HELPER(x)")
    assert "cannot read the source of exec_helper" in msg


def test_builtin_is_not_a_python_function():
    with pytest.raises(TypeError, match="needs a Python function"):
        gradient(math.sin)


# -- the user's own errors propagate unchanged ----------------------------------------

def u_divide(x, y):
    return x / y


def u_domain(x):
    return math.log(x) * 2.0


def u_assert(x):
    assert x > 0.0, "x must be positive"
    return x * x


def u_raise(x):
    if x > 1.0:
        raise ValueError("x is too large")
    return x * 3.0


def _helper_divides(a):
    return 1.0 / (a - 1.0)


def u_helper_divides(x):
    return _helper_divides(x) * 2.0


def _notes(exc_info):
    return "\n".join(getattr(exc_info.value, "__notes__", []))


def test_zero_division_while_lowering():
    with pytest.raises(ZeroDivisionError) as exc_info:
        gradient(u_divide, (0, 1))(1.0, 0.0)
    loc, text = where(u_divide, "x / y")
    assert loc in _notes(exc_info) and text in _notes(exc_info)
    with pytest.raises(ZeroDivisionError):
        u_divide(1.0, 0.0)


def test_zero_division_in_compiled_path():
    g = gradient(u_divide, (0, 1))
    gx, gy = g(1.0, 2.0)
    assert math.isclose(gx, numerical_gradient(u_divide, (1.0, 2.0), 0), rel_tol=1e-6)
    assert math.isclose(gy, numerical_gradient(u_divide, (1.0, 2.0), 1), rel_tol=1e-6)
    with pytest.raises(ZeroDivisionError):
        g(1.0, 0.0)  # same path: the generated code divides by zero itself


def test_math_domain_error_while_lowering_and_compiled():
    with pytest.raises(ValueError, match="math domain error") as exc_info:
        gradient(u_domain)(-1.0)
    assert where(u_domain, "math.log(x)")[0] in _notes(exc_info)
    g = gradient(u_domain)
    assert math.isclose(g(2.0), numerical_gradient(u_domain, (2.0,), 0), rel_tol=1e-6)
    with pytest.raises(ValueError, match="math domain error"):
        g(-2.0)


def test_assert_propagates():
    g = gradient(u_assert)
    assert math.isclose(g(2.0), numerical_gradient(u_assert, (2.0,), 0), rel_tol=1e-6)
    with pytest.raises(AssertionError, match="x must be positive") as exc_info:
        g(-2.0)  # leaves the cached path, then the assert fails while lowering
    assert where(u_assert, "assert x > 0.0")[0].rsplit(":", 1)[0] in _notes(exc_info)
    with pytest.raises(AssertionError, match="x must be positive"):
        gradient(u_assert)(-3.0)


def test_raise_statement_propagates():
    g = gradient(u_raise)
    assert math.isclose(g(0.5), numerical_gradient(u_raise, (0.5,), 0), rel_tol=1e-6)
    with pytest.raises(ValueError, match="x is too large"):
        g(2.0)


def test_user_error_inside_helper_points_at_helper():
    with pytest.raises(ZeroDivisionError) as exc_info:
        gradient(u_helper_divides)(1.0)
    loc, text = where(_helper_divides, "1.0 / (a - 1.0)")
    assert loc in _notes(exc_info) and text in _notes(exc_info)


def u_unbound(x):
    if x > 0.0:
        y = x * 2.0
    return y


def u_unbound_closure(x):
    def inner():
        return z
    r = inner() if x > 10.0 else x
    z = 1.0
    return r


def test_unbound_local_behaves_like_python():
    with pytest.raises(UnboundLocalError):
        u_unbound(-1.0)
    g = gradient(u_unbound)
    assert math.isclose(g(1.0), numerical_gradient(u_unbound, (1.0,), 0), rel_tol=1e-6)
    with pytest.raises(UnboundLocalError) as exc_info:
        g(-1.0)
    assert "'y'" in str(exc_info.value)
    with pytest.raises(UnboundLocalError):
        gradient(u_unbound)(-2.0)


def test_free_variable_before_assignment_behaves_like_python():
    with pytest.raises(NameError) as py_info:
        u_unbound_closure(20.0)
    with pytest.raises(type(py_info.value)):
        gradient(u_unbound_closure)(20.0)
    g = gradient(u_unbound_closure)(1.0)
    assert math.isclose(g, numerical_gradient(u_unbound_closure, (1.0,), 0), rel_tol=1e-6)


def u_name_error(x):
    return x * undefined_name_here  # noqa: F821


def test_name_error_behaves_like_python():
    with pytest.raises(NameError):
        u_name_error(1.0)
    with pytest.raises(NameError, match="undefined_name_here") as exc_info:
        gradient(u_name_error)(1.0)
    assert where(u_name_error, "undefined_name_here")[0] in str(exc_info.value)


# -- higher-order derivatives are second derivatives, never a first derivative ---------

def cubed(x):
    return x * x * x


D_CUBED = gradient(cubed)


def doubles_a_derivative(x):
    return D_CUBED(x) * 2.0


def uses_a_constant_derivative(x):
    return D_CUBED(2.0) * x


def test_gradient_of_a_gradient_is_the_second_derivative():
    d2 = gradient(D_CUBED)
    for x in (3.0, -0.5):
        assert math.isclose(d2(x), numerical_gradient(D_CUBED, (x,), 0), rel_tol=1e-6)
        assert math.isclose(d2(x), 6.0 * x, rel_tol=1e-12)


def test_derivative_called_on_a_traced_value_is_differentiated():
    got = gradient(doubles_a_derivative)(3.0)
    assert math.isclose(got, numerical_gradient(doubles_a_derivative, (3.0,), 0), rel_tol=1e-6)
    assert math.isclose(got, 36.0, rel_tol=1e-12)


def test_derivative_of_a_constant_is_just_a_constant():
    got = gradient(uses_a_constant_derivative)(3.0)
    assert math.isclose(got, numerical_gradient(uses_a_constant_derivative, (3.0,), 0),
                        rel_tol=1e-6)


def looping(x, n):
    for _ in range(n):
        x = x * 1.05
    return x


def test_error_on_a_new_path_is_not_chained_to_the_path_miss():
    g = gradient(looping, max_eqns=500, unroll=0)  # unrolled, so 1000 iterations are too long
    g(1.0, 10)
    with pytest.raises(PathTooLong) as info:
        g(1.0, 1000)
    assert info.value.__context__ is None, "reported as raised while handling PathMiss"
    assert_located(info, looping, "x * 1.05", "500")


def ufunc_out(x):
    y = np.zeros(3)
    np.sin(x, out=y)
    return np.sum(y)


def ufunc_where(x):
    return np.sum(np.sin(x, where=x > 0))


def test_ufunc_out_and_where_are_refused_not_ignored():
    x = np.array([0.5, -1.0, 2.0])
    with pytest.raises(UnsupportedSyntax) as info:
        gradient(ufunc_out)(x)
    assert_located(info, ufunc_out, "np.sin(x, out=y)", "out=")
    with pytest.raises(UnsupportedSyntax) as info:
        gradient(ufunc_where)(x)
    assert_located(info, ufunc_where, "np.sin(x, where=x > 0)", "where=")


# -- NumPy warnings point at the user's line (issue 6, item 4) -------------------------------

def w_log_of_zero(x):
    d = x - x
    return np.sum(np.log(d) * 0.0 + x)


def test_numpy_warnings_point_at_the_users_line():
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gradient(w_log_of_zero)(np.ones(3))
    numpy_warnings = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert numpy_warnings, "log(0) warns"
    loc, _ = where(w_log_of_zero, "np.log(d)")
    line = int(loc.split(":")[-2])
    for w in numpy_warnings:
        assert (w.filename, w.lineno) == (__file__, line), (w.filename, w.lineno, str(w.message))
    assert any("divide by zero" in str(w.message) for w in numpy_warnings)


# -- semantics kept (issue 6): -0.0 is not folded into 0.0; max() of a 2-D array raises ----------

def sign_branch(x):
    y = x + 0.0  # -0.0 + 0.0 is 0.0 in Python: the first branch
    if math.copysign(1.0, y) > 0:
        return 2.0 * x
    return 3.0 * x


def test_plus_zero_is_not_folded_at_negative_zero():
    h = 1e-6  # the branch Python takes at -0.0 is y >= +0: a forward difference on it
    fd = (sign_branch(h) - sign_branch(-0.0)) / h
    assert math.isclose(gradient(sign_branch)(-0.0), fd, rel_tol=1e-9)


def builtin_max_2d(a):
    return max(a)


def test_builtin_max_of_a_matrix_raises_like_python():
    a = np.arange(6.0).reshape(2, 3)
    with pytest.raises(ValueError) as py:
        builtin_max_2d(a)
    with pytest.raises(ValueError, match="truth value"):
        gradient(builtin_max_2d)(a)
    assert "truth value" in str(py.value)
