"""Memory: a cached path holds its code and its guards, nothing of the call it was built on.

The bound, measured with tracemalloc: after N paths are built over inputs of
B bytes each and the inputs are dropped, the memory still held is a small
multiple of the generated code's size (plus a fixed 32 KB), whatever B is.  Evicted paths (LRU,
``cache_clear``, a function redefined) leave ``linecache``.  Gradients are
checked against finite differences on small inputs of the same functions.
"""
import gc
import linecache
import tracemalloc
import weakref

import numpy as np

from ad_transform import gradient, value_and_gradient
from ad_transform.testing import check_gradient


def mem_chain(x, k):
    """Several big intermediates per path (the first call's values)."""
    y = np.tanh(x) * x
    z = np.exp(-y) + y * 2.0
    w = z / (1.0 + x * x)
    return np.sum(w * w) + k * np.sum(x)


def mlp_loss(W1, b1, W2, b2, X, Y):
    h = np.tanh(X @ W1 + b1)
    z = h @ W2 + b2
    z = z - np.max(z, axis=1, keepdims=True)
    logp = z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))
    return -np.sum(Y * logp) / X.shape[0]


def mlp_args(n_in, hidden, batch, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n_in, hidden)) / np.sqrt(n_in), 0.1 * rng.standard_normal(hidden),
            rng.standard_normal((hidden, 10)) / np.sqrt(hidden), 0.1 * rng.standard_normal(10),
            rng.standard_normal((batch, n_in)), np.eye(10)[rng.integers(0, 10, batch)])


def _ad_files(label):
    label = f"{label} #"
    return {k for k in linecache.cache if k.startswith("<ad_transform") and label in k}


def _code_bytes(label):
    """Size of the generated source of the live paths whose file names hold ``label``."""
    return sum(len("".join(linecache.cache[k][2])) for k in _ad_files(label))


def _held_by_paths(n_paths, floats):
    """Bytes still traced after ``n_paths`` paths of ``mem_chain`` are built on inputs of
    ``floats`` float64s each (a new length per path) and the inputs are dropped."""
    g = gradient(mem_chain)
    g.cache_clear()
    g(np.ones(3), 0.5)  # imports and one-time tables, outside the measurement
    g.cache_clear()
    rng = np.random.default_rng(0)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(n_paths):
            g(rng.standard_normal(floats + i), 0.5)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert g.cache_info().currsize == n_paths
    code = _code_bytes("mem_chain grad")
    g.cache_clear()
    return held, code


def test_cached_paths_hold_their_code_not_their_inputs():
    check_gradient(mem_chain, np.linspace(-1.0, 1.0, 7), 0.5)
    _held_by_paths(4, 1_000)  # once first: one-time allocations (tables, interned names)
    small_held, small_code = _held_by_paths(4, 1_000)  # 8 KB inputs
    held, code = _held_by_paths(4, 250_000)  # 2 MB inputs: 8 MB in all, ~100 MB of values
    assert held < 16 * code + 32_000, f"4 paths over 2 MB inputs hold {held} bytes ({code} of code)"
    assert held < small_held + 64_000, (held, small_held)  # independent of the input size


def test_an_mlp_path_holds_no_activations():
    small = mlp_args(5, 4, 3)
    for i in range(4):
        check_gradient(mlp_loss, *small, wrt=i)
    g = value_and_gradient(mlp_loss, wrt=(0, 1, 2, 3))
    g.cache_clear()
    g(*small)
    g.cache_clear()
    args = mlp_args(256, 256, 512)  # X alone is 1 MB; the activations several more
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        g(*args)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    code = _code_bytes("mlp_loss value_and_grad")
    assert held < 16 * code + 32_000, f"an MLP path holds {held} bytes ({code} of code)"
    g.cache_clear()


def test_inputs_die_with_the_call_without_the_garbage_collector():
    """No reference cycle (a caught PathMiss and its frames) keeps an input alive."""
    g = gradient(mem_chain)
    g.cache_clear()
    check_gradient(mem_chain, np.linspace(-1.0, 1.0, 5), 0.5)
    gc.collect()
    gc.disable()
    try:
        for n in (5, 6, 6, 5):  # a first call, a miss that builds, a hit, a miss to a cached path
            x = np.linspace(-1.0, 1.0, n)
            ref = weakref.ref(x)
            g(x, 0.5)
            del x
            assert ref() is None, f"an input of length {n} outlived its call"
    finally:
        gc.enable()
    g.cache_clear()


def test_evicted_paths_leave_linecache():
    g = gradient(mem_chain, maxsize=2)
    g.cache_clear()
    gc.collect()  # caches replaced by other tests (another maxsize) go with their paths
    assert _ad_files("mem_chain grad") == set()
    for n in (3, 4, 5):
        g(np.ones(n), 0.5)
    assert len(_ad_files("mem_chain grad")) == 2  # the LRU bound evicted the first path
    assert "np.tanh(x)" in g.source(np.ones(5), 0.5)
    g.cache_clear()
    assert _ad_files("mem_chain grad") == set()


def test_a_redefined_function_frees_its_paths():
    def make():
        def mem_redefined(x):
            return np.sum(np.sin(x) * x)
        return mem_redefined

    f = make()
    check_gradient(f, np.linspace(-1.0, 1.0, 4))
    g = gradient(f)
    for n in (2, 3):
        g(np.ones(n))
    assert len(_ad_files("mem_redefined grad")) >= 2
    f = make()  # the old function object and its gradient go
    del g
    gc.collect()
    assert _ad_files("mem_redefined grad") == set()
    check_gradient(f, np.linspace(-1.0, 1.0, 3))
