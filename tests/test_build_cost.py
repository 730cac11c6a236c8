"""What keeps building a path cheap: the equation budget (``max_eqns``) bounds the primal
path only and reaches every stage, the cyclic garbage collector is off during a build and
restored after it (also after an error), source locations share their line's text, and a
function's source is converted to gast nodes exactly as gast converts it.

Every gradient is compared with central finite differences.
"""
import ast
import gc
import math
import pathlib
import sys

import gast
import pytest

from ad_transform import PathTooLong, UnsupportedSyntax, builder, gradient, ir
from ad_transform.lower import lower
from ad_transform.source import to_gast, walk
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


# -- reading the source: to_gast makes exactly gast's nodes, walk walks them as gast does ---

_EVERY_KIND = '''
import os, sys as system
from a.b import c as d, e
@decorator(1, key=2)
class K(Base, metaclass=M):
    attr: int = 3
    async def method(self, /, a, b: "B" = 2, *args, c, d=4, **kwargs) -> None:
        async with open(a) as f, g:
            await f
        async for i in aiter(b):
            yield i
        yield from b
def f(x):  # type: (int) -> int
    global g
    def inner():
        nonlocal x
        x += 1
    try:
        y = [i * 2 for i in range(3) if i if not i]
    except (TypeError, ValueError) as exc:
        raise RuntimeError("no") from exc
    else:
        del y[0], y[1:2]
    finally:
        assert x, f"{x!r:>{10}} and {y}"
    with a as (b, c):
        pass
    while x < 3 <= 4 or x is not None and x not in {1, 2}:
        x = -x if ~x else +x
        break
    else:
        continue
    for a, *b in {k: v for k, v in d.items()}:
        lambda q, *r, s=1, **t: (q, r, s, t)
    match x:
        case [1, 2, *rest]: pass
        case {"k": v, **kw}: pass
        case Point(x=0, y=_) | None: pass
        case str() as s if s: pass
    print(*a, **b, sep=x[1:2, ::3], end=b"bytes")
    if (n := len(a)) > 1j:
        return {*a}, ..., True, x @ y // z % w ** v << 1 >> 2 & 3 | 4 ^ 5
'''


def _same_nodes(a, b, where="tree"):
    """``a`` and ``b`` are the same gast tree: the same classes, fields (in order) and
    locations, node for node."""
    assert type(a) is type(b), where
    if isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same_nodes(x, y, f"{where}[{i}]")
    elif isinstance(a, ast.AST):
        assert list(vars(a)) == list(vars(b)), where
        for key in vars(a):
            _same_nodes(getattr(a, key), getattr(b, key), f"{where}.{key}")
    else:
        assert a == b or (a != a and b != b), where


_ROOT = pathlib.Path(__file__).parent.parent


@pytest.mark.parametrize("path", [None] + sorted(
    str(p.relative_to(_ROOT)) for d in ("ad_transform", "examples")
    for p in (_ROOT / d).glob("*.py")))
def test_to_gast_makes_the_nodes_gast_makes(path):
    text = _EVERY_KIND if path is None else (_ROOT / path).read_text()
    if path is None and sys.version_info >= (3, 11):
        text += "try:\n    pass\nexcept* OSError as group:\n    pass\n"
    if path is None and sys.version_info >= (3, 12):
        text += "type Alias[T: int, *Ts, **P] = list[T]\ndef gen[U](u: U) -> U: pass\n"
    tree = ast.parse(text, type_comments=True)
    mine, theirs = to_gast(tree), gast.ast_to_gast(ast.parse(text, type_comments=True))
    assert isinstance(mine, gast.Module)
    _same_nodes(mine, theirs)
    assert list(map(id, walk(mine))) == list(map(id, gast.walk(mine)))  # the fence's walk


def test_to_gast_of_a_long_expression_keeps_its_positions():
    text = "def f(x, y):\n    return " + " + ".join(f"{i}.5 * x * y" for i in range(2000)) + "\n"
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(max(before, 20000))  # Python's parser recurses in a long sum
    try:
        _same_nodes(to_gast(ast.parse(text)), gast.parse(text))
    finally:
        sys.setrecursionlimit(before)
