"""What keeps building a path cheap: the equation budget (``max_eqns``) bounds the primal
path only and reaches every stage, the cyclic garbage collector is off during a build and
restored after it (also after an error), and source locations share their line's text.

Every gradient is compared with central finite differences.
"""
import gc
import math

import pytest

from ad_transform import PathTooLong, UnsupportedSyntax, builder, gradient, ir
from ad_transform.lower import lower
from ad_transform.testing import numerical_gradient


def close(a, b, rel=1e-6, abs_=1e-7):
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def _loop(x, a, n):
    for _ in range(n):
        x = math.sin(x) * a + 0.1 * x
    return x


def _primal_length(fn, args, wrt):
    prog, _ = lower(fn, args, wrt, 10 ** 9, unroll=0)
    return len(prog.eqns)


def test_max_eqns_bounds_the_primal_path_only():
    args = (0.5, 0.9, 30)
    n = _primal_length(_loop, args, (0, 1))
    # the adjoint roughly doubles the code: a budget just above the primal path is enough
    g = gradient(_loop, wrt=(0, 1), max_eqns=n + 1, unroll=0)(*args)  # loops unrolled
    for i in (0, 1):
        assert close(g[i], numerical_gradient(_loop, args, i))
    with pytest.raises(PathTooLong):
        gradient(_loop, wrt=(0, 1), max_eqns=n - 5, unroll=0)(*args)


def test_max_eqns_reaches_the_reverse_pass(monkeypatch):
    """With a small default budget, a large ``max_eqns`` must still let the adjoint grow
    (the reverse pass used the default, whatever ``max_eqns`` said)."""
    init = builder.Builder.__init__
    monkeypatch.setattr(builder.Builder.__init__, "__defaults__", (40,))
    assert init.__defaults__ == (40,)
    args = (0.5, 0.9, 20)
    g = gradient(_loop, wrt=(0, 1), max_eqns=10 ** 6)(*args)
    for i in (0, 1):
        assert close(g[i], numerical_gradient(_loop, args, i))


def _nested(x, n):
    s = 0.0
    for i in range(3):
        j = 0
        while j < n:
            s = s + x * j
            j += 1
    return s


def test_path_too_long_names_the_loops_and_their_iterations():
    with pytest.raises(PathTooLong) as exc_info:
        gradient(_nested, max_eqns=100, unroll=0)(1.0, 1000)  # loops unrolled
    msg = str(exc_info.value)
    first = _nested.__code__.co_firstlineno
    f = _nested.__code__.co_filename
    assert f"the loop at {f}:{first + 2}:4 ran 1 iterations" in msg
    assert f"the loop at {f}:{first + 4}:8 ran 25 iterations" in msg
    assert "max_eqns=100" in msg and msg.startswith(f"{f}:")


def _bad(x):
    with open("nothing"):
        return x


def _raises_while_lowering(x):
    return x + [][0]


@pytest.mark.parametrize("fn", [_bad, _raises_while_lowering])
def test_gc_comes_back_after_a_build_that_fails(fn):
    assert gc.isenabled()
    with pytest.raises((UnsupportedSyntax, IndexError)):
        gradient(fn)(1.0)
    assert gc.isenabled()


def test_gc_stays_off_if_it_was_off():
    gc.disable()
    try:
        assert close(gradient(_loop)(0.5, 0.9, 3), numerical_gradient(_loop, (0.5, 0.9, 3), 0))
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_gc_is_off_during_a_build_and_on_after():
    seen = []

    def probe(x):
        return x

    from ad_transform import api
    real = api._pipeline

    def spy(*a, **k):
        seen.append(gc.isenabled())
        return real(*a, **k)

    api._pipeline = spy
    try:
        assert close(gradient(_loop)(0.5, 0.9, 2), numerical_gradient(_loop, (0.5, 0.9, 2), 0))
    finally:
        api._pipeline = real
    assert seen == [False] and gc.isenabled()


def _long_line(x, y):
    return x * y + x * 2.0 + y * 3.0 + x * x * 4.0 + y * x * 5.0 + x * 6.0 + y * y * 7.0


def test_locations_on_one_line_share_their_text():
    prog, _ = lower(_long_line, (0.3, 0.7), (0, 1))
    locs = [e.loc for e in prog.eqns if e.loc is not None and "x * 6.0" in e.loc.text]
    assert len({(l.line, l.col) for l in locs}) > 5
    assert len({id(l.text) for l in locs}) == 1
    g = gradient(_long_line, wrt=(0, 1))(0.3, 0.7)
    for i in (0, 1):
        assert close(g[i], numerical_gradient(_long_line, (0.3, 0.7), i))


class _Holder:
    def method(self, x):
        s = """a docstring-like
string at column 0"""
        return x * len(s) + math.sin(x) * [][0]  # IndexError, located


def test_an_indented_function_keeps_its_real_positions():
    with pytest.raises(IndexError) as exc_info:
        gradient(_Holder().method)(1.0)
    notes = "".join(getattr(exc_info.value, "__notes__", []))
    line = _Holder.method.__code__.co_firstlineno + 3
    assert f"{__file__}:{line}:" in notes and "[][0]" in notes
