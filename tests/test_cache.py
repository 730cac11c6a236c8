"""The path cache: hits and misses, type keys, LRU bound, threads, globals read at run time.

Every gradient is compared with central finite differences.
"""
import math
import sys
import threading

import pytest

from ad_transform import gradient, value_and_gradient
from ad_transform.testing import numerical_gradient

THIS = sys.modules[__name__]


def close(a, b, rel=1e-6, abs_=1e-7):
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def assert_fd(fn, args, got, wrt=0):
    fd = numerical_gradient(fn, args, wrt)
    assert close(got, fd), f"{fn.__name__}{args}: ad {got!r} vs finite differences {fd!r}"


def two_paths(x):
    if x > 0:
        return x * x * math.sin(x)
    return math.exp(x) - x ** 3


def four_paths(x):
    if x > 1.0:
        return x * x
    if x > 0.0:
        return math.sin(x) * x
    if x > -1.0:
        return x ** 3 - x
    return math.exp(x) * 2.0


FOUR_POINTS = [2.0, 0.5, -0.5, -2.0]


def test_alternating_paths_hit_the_cache():
    g = gradient(two_paths)
    g.cache_clear()
    assert_fd(two_paths, (1.5,), g(1.5))
    assert_fd(two_paths, (-1.5,), g(-1.5))
    warm = g.cache_info()
    assert warm.misses == 2 and warm.currsize == 2
    n = 40
    for k in range(n):
        x = (0.3 + 0.05 * k) * (1 if k % 2 == 0 else -1)
        assert_fd(two_paths, (x,), g(x))
    info = g.cache_info()
    assert info.misses == warm.misses
    assert info.currsize == 2
    assert info.hits == warm.hits + n


def test_value_and_gradient_alternating_paths():
    vg = value_and_gradient(two_paths)
    vg.cache_clear()
    for k in range(20):
        x = 1.25 if k % 2 else -0.75
        value, grad = vg(x)
        assert value == two_paths(x)
        assert_fd(two_paths, (x,), grad)
    assert vg.cache_info().misses == 2
    assert vg.cache_info().hits == 18


def poly(x):
    return 3.0 * x * x + x


def test_argument_types_are_part_of_the_key():
    g = gradient(poly)
    g.cache_clear()
    as_float = g(2.0)
    as_int = g(2)
    assert g.cache_info().misses == 2 and g.cache_info().currsize == 2
    assert_fd(poly, (2.0,), as_float)
    assert_fd(poly, (2,), as_int)
    assert type(as_float) is float and type(as_int) is float
    # both paths stay cached: alternating between types is all hits
    before = g.cache_info()
    for k in range(10):
        x = 3 if k % 2 else 3.0
        assert_fd(poly, (x,), g(x))
    after = g.cache_info()
    assert after.misses == before.misses and after.hits == before.hits + 10


def test_redefined_function_gets_a_new_derivative():
    def redefined(x):
        return x * x

    first = gradient(redefined)
    assert_fd(redefined, (1.3,), first(1.3))
    old = redefined

    def redefined(x):  # noqa: F811  (same name, new body, new def)
        return math.sin(x) * x

    second = gradient(redefined)
    assert_fd(redefined, (1.3,), second(1.3))
    assert not close(first(1.3), second(1.3))
    # the first wrapper still differentiates the function it was given
    assert_fd(old, (1.3,), first(1.3))


def _make_scaled(k):
    def scaled(x):
        return k * x * x
    return scaled


def test_closures_sharing_code_differ_by_their_cells():
    for k in (2.0, -3.0, 0.5):
        fn = _make_scaled(k)
        assert_fd(fn, (1.7,), gradient(fn)(1.7))


def test_lru_bound_and_evicted_paths_relower_correctly():
    g = gradient(four_paths, maxsize=2)
    g.cache_clear()
    order = [0, 1, 0, 2, 0, 1, 3, 2, 1, 0, 3, 3, 1, 2] * 3
    for i in order:
        x = FOUR_POINTS[i]
        assert_fd(four_paths, (x,), g(x))
        info = g.cache_info()
        assert info.currsize <= 2 and info.maxsize == 2
    info = g.cache_info()
    assert info.hits + info.misses == len(order)
    assert info.misses > 4  # evicted paths were lowered again


def test_lru_evicts_the_least_recently_used_path():
    g = gradient(four_paths, maxsize=2)
    g.cache_clear()
    g(FOUR_POINTS[0])
    g(FOUR_POINTS[1])
    g(FOUR_POINTS[0])  # hit: path 0 is now the most recent
    assert g.cache_info() == (1, 2, 2, 2)
    g(FOUR_POINTS[2])  # miss: evicts path 1, the least recently used
    assert g.cache_info().misses == 3
    assert_fd(four_paths, (FOUR_POINTS[0],), g(FOUR_POINTS[0]))
    assert g.cache_info().misses == 3  # path 0 survived
    assert_fd(four_paths, (FOUR_POINTS[1],), g(FOUR_POINTS[1]))
    assert g.cache_info().misses == 4  # path 1 had been evicted


def test_cache_clear():
    g = gradient(four_paths)
    for x in FOUR_POINTS:
        g(x)
    assert g.cache_info().currsize == 4
    assert g.cache_clear() is None
    assert g.cache_info() == (0, 0, 128, 0)
    assert_fd(four_paths, (0.5,), g(0.5))
    assert g.cache_info() == (0, 1, 128, 1)
    assert_fd(four_paths, (0.75,), g(0.75))
    assert g.cache_info() == (1, 1, 128, 1)


def test_maxsize_must_be_positive():
    with pytest.raises(ValueError):
        gradient(poly, maxsize=0)(1.0)


def shrink(x):
    n = 0
    while x > 1.0:
        x = 0.5 * x + 0.1 * math.sin(x)
        n += 1
    return x * x + n


def _trips(x):
    n = 0
    while x > 1.0:
        x = 0.5 * x + 0.1 * math.sin(x)
        n += 1
    return n


def test_data_dependent_while_loop():
    g = gradient(shrink)
    g.cache_clear()
    points = [0.5, 1.5, 3.0, 7.0, 20.0]
    trips = [_trips(x) for x in points]
    assert len(set(trips)) == len(points)  # each point takes its own trip count
    for k, x in enumerate(points):
        assert_fd(shrink, (x,), g(x))
        assert g.cache_info().misses == k + 1
    # same trip counts again (different values): no new path
    before = g.cache_info()
    for x in points:
        y = x * 1.01
        assert _trips(y) == _trips(x)
        assert_fd(shrink, (y,), g(y))
    assert g.cache_info().misses == before.misses
    assert g.cache_info().hits == before.hits + len(points)


def test_threads_agree_with_single_threaded_results():
    xs = [FOUR_POINTS[(i * 7 + i // 3) % 4] * (1.0 + 0.01 * (i % 5)) for i in range(200)]
    g = gradient(four_paths)
    g.cache_clear()
    expected = [g(x) for x in xs]
    for x, got in zip(xs[:20], expected):
        assert_fd(four_paths, (x,), got)
    reference = dict(zip(xs, expected))
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, to provoke races
    try:
        for _ in range(3):
            g.cache_clear()  # threads start from a cold cache, racing to compile
            results, errors = _run_threads(g, xs)
            assert not errors
            for k in range(4):
                mine, got = results[k]
                assert len(got) == 200
                assert got == [reference[x] for x in mine]
            info = g.cache_info()
            assert info.misses == 4  # each path compiled once, even under contention
            assert info.currsize == 4
    finally:
        sys.setswitchinterval(interval)


def _run_threads(g, xs):
    barrier = threading.Barrier(4)
    results, errors = {}, []

    def work(k):
        try:
            barrier.wait()
            mine = xs[k * 50:] + xs[:k * 50]  # each thread starts on another path
            results[k] = (mine, [g(x) for x in mine])
        except BaseException as exc:  # noqa: BLE001  (reported by the caller)
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


SCALE = 2.0


def scaled_by_global(x):
    return SCALE * x * x


def test_global_constant_is_read_at_run_time(monkeypatch):
    g = gradient(scaled_by_global)
    g.cache_clear()
    assert_fd(scaled_by_global, (1.5,), g(1.5))
    for value in (5.0, -1.25, 0.0):
        monkeypatch.setattr(THIS, "SCALE", value)
        got = g(1.5)
        assert_fd(scaled_by_global, (1.5,), got)
        assert close(got, 2 * value * 1.5)
    assert g.cache_info().misses == 1  # same path: the value is read, not baked in
    monkeypatch.setattr(THIS, "SCALE", 3)  # an int: a new type, a new path
    assert_fd(scaled_by_global, (1.5,), g(1.5))
    assert g.cache_info().misses == 2


def _square(a):
    return a * a


def _sine(a):
    return math.sin(a) * 3.0


HELPER = _square


def calls_global_helper(x):
    return HELPER(x) + x


def test_rebound_global_helper_is_detected(monkeypatch):
    g = gradient(calls_global_helper)
    g.cache_clear()
    assert_fd(calls_global_helper, (0.8,), g(0.8))
    monkeypatch.setattr(THIS, "HELPER", _sine)
    assert_fd(calls_global_helper, (0.8,), g(0.8))
    assert g.cache_info().misses == 2
    monkeypatch.setattr(THIS, "HELPER", _square)
    assert_fd(calls_global_helper, (0.8,), g(0.8))
    assert g.cache_info().misses == 2  # the first helper's path is still cached
    assert g.cache_info().hits == 1


WEIGHTS = [1.0, 2.0]


def weighted_powers(x):
    total = 0.0
    for k, w in enumerate(WEIGHTS):
        total = total + w * x ** (k + 1)
    return total


def test_global_list_changed_in_place_is_detected():
    g = gradient(weighted_powers)
    g.cache_clear()
    assert_fd(weighted_powers, (1.3,), g(1.3))
    WEIGHTS.append(0.5)  # same object, new contents: the baked path must not be reused
    try:
        assert_fd(weighted_powers, (1.3,), g(1.3))
        assert g.cache_info().misses == 2
        WEIGHTS[0] = -4.0
        assert_fd(weighted_powers, (1.3,), g(1.3))
        assert g.cache_info().misses == 3
    finally:
        WEIGHTS[:] = [1.0, 2.0]


ACTIVATION = math.tanh


def activated(x):
    return ACTIVATION(2.0 * x) + x


def test_global_alias_of_a_library_function_is_guarded(monkeypatch):
    g = gradient(activated)
    g.cache_clear()
    assert_fd(activated, (0.4,), g(0.4))
    monkeypatch.setattr(THIS, "ACTIVATION", math.sin)
    assert_fd(activated, (0.4,), g(0.4))  # sin's derivative, not tanh's
    assert g.cache_info().misses == 2
