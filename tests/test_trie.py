"""Path selection through the decision trie: with many cached paths, the right one is
found (including a path that leaves another only at its last guard), nothing cached is
lowered again, evicted paths leave the trie, and outcomes without a hash (snapshots of
arrays and lists) and outcomes that only differ in type (1, 1.0, True) stay apart.

Every gradient is compared with central finite differences.
"""
import itertools
import math
import random

import numpy as np
import pytest

from ad_transform import gradient
from ad_transform.cache import PathCache, _key, cache_for
from ad_transform.testing import check_gradient, numerical_gradient


@pytest.fixture(autouse=True)
def decided_ifs(monkeypatch):
    """These tests select among many paths: every if stays a decision of its path (no
    merged branches, tests/test_branches.py), however many paths a function takes."""
    monkeypatch.setattr(PathCache, "merge_from", 10**9)


def close(a, b, rel=1e-6, abs_=1e-7):
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def assert_fd(fn, args, got, wrt=0):
    fd = numerical_gradient(fn, args, wrt)
    assert close(got, fd), f"{fn.__name__}{args}: ad {got!r} vs finite differences {fd!r}"


def six_signs(x, s0, s1, s2, s3, s4, s5):
    for s in (s0, s1, s2, s3, s4, s5):
        if s > 0:
            x = x * 0.9 + math.sin(x) * s
        else:
            x = x * 1.1 - 0.5 * s
    return x


def _signs(bits):
    return tuple(0.7 if b else -0.6 for b in bits)


def test_sixty_four_paths_each_lowered_once():
    g = gradient(six_signs)
    patterns = list(itertools.product((0, 1), repeat=6))
    for bits in patterns:
        args = (0.8,) + _signs(bits)
        assert_fd(six_signs, args, g(*args))
    assert g.cache_info().misses == 64 and g.cache_info().currsize == 64
    rng = random.Random(5)
    for _ in range(200):  # every call a random cached path, new values
        bits = rng.choice(patterns)
        args = (0.5 + rng.random(),) + tuple(v * (0.5 + rng.random()) for v in _signs(bits))
        assert_fd(six_signs, args, g(*args))
    assert g.cache_info().misses == 64


def late(x, k):
    """Paths that agree on every decision but the last."""
    for i in range(6):
        x = x * 0.8 + 0.1 * math.sin(x)
    if k > 3:
        return x * k
    return x + k


def test_a_path_that_fails_at_its_last_guard():
    g = gradient(late)
    for args in [(0.3, 5.0), (0.3, 1.0), (0.9, 7.0), (0.2, -1.0)]:
        assert_fd(late, args, g(*args))
    assert g.cache_info().misses == 2


def trips(x, m):
    i = 0
    while i < m:
        x = x * 0.9 + 0.05 * math.sin(x)
        i += 1
    return x


def test_trip_counts_of_a_while_loop_as_paths():
    g = gradient(trips, maxsize=40, unroll=0)  # unrolled: one path per trip count
    counts = list(range(0, 40))
    random.Random(3).shuffle(counts)
    for m in counts:
        assert_fd(trips, (0.7, m), g(0.7, m))
    assert g.cache_info().misses == 40
    for m in [39, 0, 17, 1, 38, 2, 20, 20, 5]:
        assert_fd(trips, (1.3, m), g(1.3, m))
    assert g.cache_info().misses == 40


def test_evicted_paths_leave_the_trie():
    g = gradient(trips, maxsize=3, unroll=0)
    for m in range(10):
        assert_fd(trips, (0.7, m), g(0.7, m))
    cache = next(c for c in cache_for.__globals__["_CACHES"][trips].values())
    assert len(cache.entries) == 3 and len(cache.by_code) == 3

    def leaves(node):
        return (node.entry is not None) + sum(leaves(n) for n in node.keyed.values()) + \
            sum(leaves(n) for _, n in node.other)
    assert leaves(cache.root) == 3
    for m in (0, 9, 8):  # 0 was evicted: lowered again
        assert_fd(trips, (0.7, m), g(0.7, m))
    assert g.cache_info().misses == 11


WEIGHTS = [1.0, 2.0]


def weighted(x, k):
    if k > 0:
        return x * (WEIGHTS[0] + WEIGHTS[1] * x)
    return x * x


def test_unhashable_outcomes_are_compared_by_value():
    """A global list is baked into the path against a snapshot (a decision without a
    hash): two contents of the list are two paths, each found again."""
    g = gradient(weighted)
    try:
        for contents in ([1.0, 2.0], [3.0, -1.0]):
            WEIGHTS[:] = contents
            for k in (1.0, -1.0):
                assert_fd(weighted, (0.5, k), g(0.5, k))
        assert g.cache_info().misses == 3  # (k <= 0 does not read the list)
        cache = next(iter(cache_for.__globals__["_CACHES"][weighted].values()))
        assert any(_key(d) is None for e in cache.entries for d in e.decisions)
        for contents in ([1.0, 2.0], [3.0, -1.0], [1.0, 2.0]):
            WEIGHTS[:] = contents
            for k in (2.0, -2.0):
                assert_fd(weighted, (0.7, k), g(0.7, k))
        assert g.cache_info().misses == 3
    finally:
        WEIGHTS[:] = [1.0, 2.0]


def typed(x, k):
    if k == 1:
        return x * 2.0
    return x * 3.0


def test_outcomes_of_different_types_stay_apart():
    g = gradient(typed)
    for k in (1, 1.0, True, 2, 1, 1.0, True):
        assert_fd(typed, (0.5, k), g(0.5, k))
    assert _key(1) != _key(1.0) != _key(True) and _key(0.0) != _key(-0.0)
    assert _key(float("nan")) == _key(float("nan"))
    assert _key([1]) is None and _key((1, [2])) is None


# -- paths past the first few: compiled when taken a second time -----------------------

def _cache_of(fn):
    return next(iter(cache_for.__globals__["_CACHES"][fn].values()))


def stepped(x, k):
    """One path per integer k (k compares), each with a log: may raise on its path."""
    y = x
    for i in range(k):
        y = y * 0.5 + math.log(x) * 0.1
    return y * y


def arr_steps(x, k):
    for i in range(k):
        x = np.sin(x) * 0.9
    return np.sum(x * x)


def test_a_new_path_past_the_first_few_is_compiled_when_taken_again():
    import gc
    import linecache
    import weakref

    g = gradient(stepped)
    cache = _cache_of(stepped)
    eager = cache.eager
    for k in range(eager):
        assert_fd(stepped, (1.3, k), g(1.3, k))
    files = {f for f in linecache.cache if "stepped grad" in f}
    assert len(files) == eager and all(e.program is None for e in cache.entries)
    k = eager + 2
    assert_fd(stepped, (1.3, k), g(1.3, k))  # answered from the build's values
    new = next(e for e in cache.entries if e.program is not None)
    assert {f for f in linecache.cache if "stepped grad" in f} == files
    assert g.cache_info().misses == eager + 1
    for i in range(3):  # another path first (the new one is not the current one) ...
        assert_fd(stepped, (1.2, 1), g(1.2, 1))
        assert_fd(stepped, (0.9 + i, k), g(0.9 + i, k))  # ... then hit: compiled now
        assert new.program is None and "stepped" in new.source
    assert g.cache_info().misses == eager + 1
    # an input of an interpreted path dies with its call (no reference cycle)
    h = gradient(arr_steps)
    for k in range(eager + 1):
        h(np.ones(3), k)
    gc.disable()
    try:
        # interpreted (then compiled); new (built, not compiled); a miss of that
        # interpreted current path, resolved to a compiled one
        for k in (eager, eager + 1, 2):
            x = np.linspace(0.5, 1.5, 3)
            ref, kept = weakref.ref(x), x.copy()
            got = h(x, k)
            del x
            assert ref() is None
            assert np.allclose(got, gradient(arr_steps)(kept, k))
            check_gradient(arr_steps, kept, k)
    finally:
        gc.enable()
    # an error on an interpreted path is the one the compiled code raises
    k3 = eager + 5
    g(1.1, k3)
    assert next(e for e in cache.entries if e.decisions[-1:] and e.program is not None)
    with pytest.raises(ValueError, match="math domain error"):
        g(-1.0, k3)
    assert g.cache_info().misses == eager + 2


def test_source_of_a_path_not_compiled_yet():
    g = gradient(stepped)
    for k in range(_cache_of(stepped).eager + 1):
        g(1.3, k)
    k = _cache_of(stepped).eager
    text = g.source(1.3, k)
    assert "def stepped_grad(x, k):" in text and "log" in text
    assert_fd(stepped, (1.4, k), g(1.4, k))


def test_paths_compile_when_built_once_inputs_come_back_to_them():
    g = gradient(trips, unroll=0)
    cache = _cache_of(trips)
    cache.clear()
    n = cache.eager + cache.trial
    for m in range(n):  # each path twice: every deferred path is compiled on its second call
        assert_fd(trips, (0.7, m), g(0.7, m))
        assert_fd(trips, (0.8, m), g(0.8, m))
    assert cache.deferred == cache.trial and cache.promoted == cache.trial
    assert_fd(trips, (0.7, n), g(0.7, n))  # new: compiled at once now
    assert all(e.program is None for e in cache.entries)
    assert g.cache_info().misses == n + 1


def test_paths_taken_once_stay_uncompiled():
    g = gradient(six_signs)
    cache = _cache_of(six_signs)
    cache.clear()
    patterns = list(itertools.product((0, 1), repeat=6))[:40]
    for bits in patterns:
        args = (0.8,) + _signs(bits)
        assert_fd(six_signs, args, g(*args))
    assert sum(e.program is not None for e in cache.entries) == 40 - cache.eager
