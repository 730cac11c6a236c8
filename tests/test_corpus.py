"""Gradient checks of the whole corpus in ``tests/functions.py``.

Every case is compared with central finite differences (no hard-coded
gradients), twice: the first call lowers and compiles the path, the second
must run the cached compiled path without lowering again.
"""
import pytest

from ad_transform import gradient, value_and_gradient
from ad_transform.testing import check_gradient

from functions import CASES


def _case_id(case):
    return case[0].__name__


IDS = [f"{_case_id(c)}-{i}" for i, c in enumerate(CASES)]


def _as_tuple(wrt, grads):
    return (grads,) if not isinstance(wrt, (tuple, list)) else tuple(grads)


@pytest.mark.parametrize("f, args, wrt", CASES, ids=IDS)
def test_gradient_matches_finite_differences(f, args, wrt):
    grad_fn = gradient(f, wrt)
    first = check_gradient(f, *args, wrt=wrt)
    misses = grad_fn.cache_info().misses
    second = check_gradient(f, *args, wrt=wrt)
    assert grad_fn.cache_info().misses == misses, "second call lowered the function again"
    assert second == first
    for g in _as_tuple(wrt, second):
        assert type(g) is float, f"gradient {g!r} is a {type(g).__name__}, not a float"


@pytest.mark.parametrize("f, args, wrt", CASES, ids=IDS)
def test_value_is_preserved(f, args, wrt):
    vg = value_and_gradient(f, wrt)
    expected = f(*args)
    for _ in range(2):  # lowered path, then the cached compiled path
        value, grads = vg(*args)
        assert value == expected
        assert type(value) is type(expected)
        assert grads == gradient(f, wrt)(*args)
        for g in _as_tuple(wrt, grads):
            assert type(g) is float


def test_corpus_size():
    functions = {c[0] for c in CASES}
    assert len(functions) >= 100
    assert len(CASES) >= len(functions)


def _multi_path_groups():
    groups = {}
    for f, args, wrt in CASES:
        groups.setdefault((f, wrt), []).append(args)
    return [(f, wrt, argsets) for (f, wrt), argsets in groups.items() if len(argsets) > 1]


@pytest.mark.parametrize("f, wrt, argsets", _multi_path_groups(),
                         ids=[g[0].__name__ for g in _multi_path_groups()])
def test_switching_between_paths(f, wrt, argsets):
    """Alternating inputs that take different paths: each call must take its own path."""
    expected = [check_gradient(f, *args, wrt=wrt) for args in argsets]
    grad_fn = gradient(f, wrt)
    for _ in range(2):
        for args, want in zip(argsets, expected):
            assert grad_fn(*args) == want
        for args, want in zip(reversed(argsets), reversed(expected)):
            assert grad_fn(*args) == want


@pytest.mark.parametrize("name, value", [
    ("SCALE", -1.5), ("OFFSET", 2.5), ("RATE", 3), ("USE_SQUARE", False), ("MODE", "exp"),
    ("MODE", "none"), ("N_TERMS", 5), ("COEFFS", (2.0, 0.5, -1.0)),
])
def test_globals_are_read_at_call_time(monkeypatch, name, value):
    """A compiled path must not keep using the old value of a module-level constant."""
    import functions
    fs = [functions.use_globals, functions.use_global_tuple, functions.global_in_helper,
          functions.use_global_flags]
    cases = [c for c in CASES if c[0] in fs]
    for f, args, wrt in cases:  # compile every path with the original values
        check_gradient(f, *args, wrt=wrt)
    monkeypatch.setattr(functions, name, value)
    for f, args, wrt in cases:
        check_gradient(f, *args, wrt=wrt)
        assert value_and_gradient(f, wrt)(*args)[0] == f(*args)
