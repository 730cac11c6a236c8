"""Calls users actually write: methods, callables passed in, partials, decorators,
recursion, and library code handed traced values.

Every gradient is compared with finite differences, on a first call (lowering), on a
second call with other values (the cached path, asserted by ``cache_info``) and, where
the callable or a key decides the path, on a call that must take another path.
"""
import functools
import inspect
import math
import sys

import pytest

from ad_transform import MissingRule, UnsupportedSyntax, gradient
from ad_transform.testing import numerical_gradient


def where(fn, snippet):
    lines, start = inspect.getsourcelines(fn)
    for k, line in enumerate(lines):
        col = line.find(snippet)
        if col >= 0:
            return f"{__file__}:{start + k}:{col}", line.strip()
    raise LookupError(snippet)


def assert_located(exc_info, fn, snippet, *words):
    msg = str(exc_info.value)
    loc, text = where(fn, snippet)
    assert loc in msg and text in msg, msg
    for w in words:
        assert w in msg, msg


def run(f, calls, wrt=0, paths=None):
    """``gradient(f, wrt)`` on each argument tuple of ``calls``, each checked against
    finite differences; ``paths`` is how many compiled paths the calls need."""
    g = gradient(f, wrt)
    g.cache_clear()  # the cache is per function: count this test's paths only
    for args in calls:
        got = g(*args)
        fd = numerical_gradient(f, args, wrt)
        assert math.isclose(got, fd, rel_tol=1e-5, abs_tol=1e-6), (args, got, fd)
    info = g.cache_info()
    assert info.misses == (len(calls) if paths is None else paths), info
    return g


# -- methods of the user's own classes ---------------------------------------------------

class Model:
    scale = 2.0

    def __init__(self, a):
        self.a = a

    def loss(self, w):
        return self.a * w * w + self.bias(w)

    def bias(self, w):
        return math.sin(w)

    @classmethod
    def from_class(cls, w):
        return cls.twice(w) * w

    @staticmethod
    def twice(w):
        return 2.0 * w

    def __call__(self, w):
        return self.loss(w) + 1.0


class Sub(Model):
    def bias(self, w):
        return math.cos(w)


MODEL = Model(3.0)


def uses_method(w):
    return MODEL.loss(w)


def uses_class_and_static(w):
    return Model.from_class(w) + MODEL.from_class(w) + Model.twice(w) + MODEL.twice(w)


def uses_callable_object(w):
    return MODEL(w)


def method_of_argument(w, model):
    return model.loss(w)


def test_bound_method_reads_instance_attributes_at_run_time():
    g = run(uses_method, [(1.5,), (0.5,)], paths=1)
    MODEL.a = 5.0  # an instance attribute: read by the compiled path on every call
    try:
        assert math.isclose(g(2.0), numerical_gradient(uses_method, (2.0,), 0), rel_tol=1e-6)
        assert g.cache_info().misses == 1
    finally:
        MODEL.a = 3.0


def test_classmethod_and_staticmethod():
    run(uses_class_and_static, [(1.5,), (0.5,)], paths=1)


def test_call_of_a_user_object():
    run(uses_callable_object, [(1.5,), (0.5,)], paths=1)


def test_method_of_an_argument_dispatches_on_its_class():
    # Model.bias and Sub.bias (a base-class loss calling an overridden method):
    # another class is another path, guarded by the method's identity
    run(method_of_argument, [(1.5, Model(2.0)), (0.5, Model(4.0)), (0.5, Sub(4.0))], paths=2)


def test_method_redefined_on_the_class_is_noticed():
    g = run(uses_method, [(1.5,)], paths=1)
    old = Model.loss
    Model.loss = lambda self, w: self.a * w ** 3
    try:
        assert math.isclose(g(2.0), 3 * 3.0 * 4.0, rel_tol=1e-9)  # x**3 at 2, times a=3
        assert g.cache_info().misses == 2
    finally:
        Model.loss = old


def test_gradient_of_a_bound_method():
    g = gradient(MODEL.loss)
    for w in (1.5, 0.5):
        assert math.isclose(g(w), numerical_gradient(MODEL.loss, (w,), 0), rel_tol=1e-6)
    assert g.cache_info().misses == 1


class Vec:
    def __init__(self, a):
        self.a = a

    def __add__(self, other):
        return self.a * other  # not linear in a way the + rule would assume

    def __rmul__(self, other):
        return other * other * self.a


VEC = Vec(3.0)


def user_operators(w):
    return (VEC + w) + w * VEC


def test_dunder_operators_of_user_classes_are_inlined():
    run(user_operators, [(1.5,), (0.5,)], paths=1)


# -- functions passed as arguments -------------------------------------------------------

def apply(x, act):
    return act(x) * x


def cube(t):
    return t ** 3


def test_function_argument_is_inlined_and_guarded_by_identity():
    lam = lambda t: math.exp(-t)  # noqa: E731
    run(apply, [(0.7, math.tanh), (0.3, math.tanh), (0.7, cube), (0.2, cube), (0.4, lam)],
        paths=3)


def test_bound_method_argument_dispatches_on_its_function_not_its_object():
    run(apply, [(0.7, Model(2.0).loss), (0.3, Model(5.0).loss), (0.3, Sub(5.0).loss)],
        paths=2)


def test_calling_a_differentiated_value_is_located():
    def calls_x(x, f):
        return x(f)

    with pytest.raises(MissingRule) as exc_info:
        gradient(calls_x)(1.0, 2.0)
    assert_located(exc_info, calls_x, "x(f)", "calling a traced value")


# -- functools.partial and decorators --------------------------------------------------

def with_partials(x):
    power = functools.partial(math.pow, x)
    scaled = functools.partial(apply, act=math.sin)
    return power(2.5) + scaled(x)


def test_partial_of_library_and_user_functions():
    run(with_partials, [(0.7,), (1.3,)], paths=1)


def test_gradient_of_a_partial_argument():
    g = gradient(apply)
    p = functools.partial(cube)
    assert math.isclose(g(0.5, p), numerical_gradient(apply, (0.5, p), 0), rel_tol=1e-6)


def doubled(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return 2.0 * fn(*args, **kwargs)
    return wrapper


def shifted(fn):
    @functools.wraps(fn)
    def shifted(x):  # the same name as the function it wraps
        return fn(x + 1.0)
    return shifted


@doubled
@shifted
def shifted(x):
    return x * x


def calls_decorated(x):
    return shifted(x) + 1.0


def test_wraps_decorators_are_inlined_not_dropped():
    # shifted(x) = 2 * (x + 1)**2: both wrappers run
    for f in (calls_decorated, shifted):
        run(f, [(0.5,), (1.5,)], paths=1)
        assert math.isclose(gradient(f)(0.5), 4 * 1.5, rel_tol=1e-9)


# -- recursion ------------------------------------------------------------------------

def deep(x, n):
    if n == 0:
        return x
    return math.sin(deep(x, n - 1)) + 0.001 * x


def runaway(x):
    return runaway(x) + 1.0


def test_recursion_as_deep_as_python_allows():
    n = sys.getrecursionlimit() - 100
    assert deep(0.5, n) == deep(0.5, n)  # plain Python manages this depth
    run(deep, [(0.5, n), (0.7, n)], paths=1)
    assert sys.getrecursionlimit() == n + 100  # restored


def test_runaway_recursion_is_a_located_error():
    with pytest.raises(UnsupportedSyntax) as exc_info:
        gradient(runaway)(1.0)
    assert_located(exc_info, runaway, "runaway(x) + 1.0", "recursion deeper than Python")


# -- library code handed traced values --------------------------------------------------

TABLE = {"slow": 0.5, "fast": 2.0}
NAMES = ["a", "b", "c"]
LOG = []


def table_get(x, key):
    return TABLE.get(key, 10.0) * x * x


def names_index(x, key):
    return (NAMES.index(key) + NAMES.count(key)) * x * x


def test_global_container_methods_see_real_keys():
    run(table_get, [(1.5, "fast"), (0.5, "fast"), (1.5, "slow"), (1.5, "none")], paths=3)
    run(names_index, [(1.5, "b"), (0.5, "b"), (1.5, "c")], paths=2)


def local_containers(x, y, key):
    d = {"u": x, "v": y}
    found = d.get(key, y) * d.setdefault("w", x * y)
    items = [x, y, 2.0]
    first = items.index(y) + items.count(2.0) + (y in items) + (x in (y, 3.0))
    d.pop("u")
    items.remove(y)
    return found * first + len(d) + sum(items)


def test_local_container_methods_compare_traced_items():
    run(local_containers, [(1.5, 0.5, "u"), (2.5, 0.7, "u"), (1.5, 0.5, "v")], paths=2)
    # y == 2.0 counts twice: another path (at a tie, so only x is checked)
    run(local_containers, [(1.5, 2.0, "u"), (2.5, 2.0, "u")], paths=1)
    run(local_containers, [(1.5, 0.5, "u"), (2.5, 0.7, "v")], wrt=1, paths=2)


def sort_and_pick(x, y, z):
    low, mid, high = sorted([x, y, z], key=lambda t: (t - 1.0) ** 2)
    first = max([x, y, z], key=abs) + min(x, y, key=lambda t: -t)
    ordered = sorted([y, x])
    return low * 3.0 + mid * high + first + ordered[0] * ordered[1] ** 2


def test_sorted_min_max_with_key():
    run(sort_and_pick, [(0.2, 1.9, 3.0), (0.3, 2.0, 3.5), (3.0, 1.9, 0.2)], paths=2)
    for wrt in (1, 2):
        run(sort_and_pick, [(0.2, 1.9, 3.0)], wrt=wrt)


def reduce_product(x, n):
    return functools.reduce(lambda a, b: a * b + 0.1, [x] * n, 1.0)


def test_reduce_with_lambda():
    run(reduce_product, [(0.7, 3), (1.3, 3), (0.7, 4)], paths=2)


def appends_to_log(x, tag):
    LOG.append(tag)
    return x * x


def table_write(x):
    TABLE["last"] = x
    return x


def test_global_container_mutation_is_refused():
    with pytest.raises(UnsupportedSyntax) as exc_info:
        gradient(appends_to_log)(1.0, "t")
    assert_located(exc_info, appends_to_log, "LOG.append(tag)", ".append()", "outside")
    assert LOG == []  # the user's data is untouched


def nested_table_write(x):
    NESTED["inner"][0] = x * 2.0
    return x


def local_copy_write(x):
    table = dict(TABLE)
    table["last"] = x * 3.0
    rows = [list(NESTED["inner"])]
    rows[0][0] = x
    return table["last"] + rows[0][0]


NESTED = {"inner": [1.0, 2.0]}


@pytest.mark.parametrize("fn, snippet", [(table_write, 'TABLE["last"]'),
                                         (nested_table_write, 'NESTED["inner"][0]')])
def test_item_assignment_into_a_global_container_is_refused(fn, snippet):
    before = (dict(TABLE), {k: list(v) for k, v in NESTED.items()})
    with pytest.raises(UnsupportedSyntax) as exc_info:
        gradient(fn)(1.5)
    assert_located(exc_info, fn, snippet, "item assignment", "outside", "argument")
    assert (TABLE, NESTED) == before  # the user's data is untouched


def test_item_assignment_into_a_local_copy_works():
    run(local_copy_write, [(1.5,), (0.5,)], paths=1)
    assert "last" not in TABLE and NESTED == {"inner": [1.0, 2.0]}


def passes_closure_to_library(x):
    return math.fsum(map(lambda t: t * x, [1.0, 2.0])) + x


def test_library_sees_real_values_from_callbacks():
    # map is the interpreter's: the library gets traced items -> refused, located
    with pytest.raises(MissingRule) as exc_info:
        gradient(passes_closure_to_library)(1.0)
    assert_located(exc_info, passes_closure_to_library, "math.fsum(", "math.fsum")


SCALE = 2.0


def constant_helper():
    return SCALE * 3.0


def uses_constant_helper(x):
    return x * constant_helper()


def test_helper_called_on_constants_reads_globals_at_run_time():
    global SCALE
    g = run(uses_constant_helper, [(1.0,)], paths=1)
    SCALE = 5.0
    try:
        assert g(1.0) == 15.0
    finally:
        SCALE = 2.0


def wrong_arity(x):
    return cube(x, 2.0)


def test_wrong_argument_count_is_pythons_error_noted_at_the_call():
    with pytest.raises(TypeError) as exc_info:
        gradient(wrong_arity)(1.0)
    loc, _ = where(wrong_arity, "cube(x, 2.0)")
    assert loc in "\n".join(getattr(exc_info.value, "__notes__", []))
