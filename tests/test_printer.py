"""The printer of generated code (compile._Unparser): parentheses only where needed,
and the text always parses back to the tree it was printed from."""
import ast
import io
import random

from ad_transform.compile import _Unparser


def _text(tree) -> str:
    out = io.StringIO()
    _Unparser(tree, file=out)
    return out.getvalue().strip()


_BIN = [ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.MatMult,
        ast.BitOr, ast.BitAnd, ast.BitXor, ast.LShift, ast.RShift]
_CMP = [ast.Lt, ast.Eq, ast.IsNot, ast.NotIn]


def _expr(rng, depth):
    if depth == 0 or rng.random() < 0.2:
        return rng.choice([ast.Name(id=rng.choice("abc"), ctx=ast.Load()),
                           ast.Constant(value=rng.choice([1, 2.5, 3]))])
    kind = rng.randrange(9)
    sub = lambda: _expr(rng, depth - 1)  # noqa: E731
    if kind <= 2:
        return ast.BinOp(left=sub(), op=rng.choice(_BIN)(), right=sub())
    if kind == 3:
        return ast.UnaryOp(op=rng.choice([ast.USub, ast.UAdd, ast.Invert, ast.Not])(),
                           operand=sub())
    if kind == 4:
        n = rng.randrange(1, 3)
        return ast.Compare(left=sub(), ops=[rng.choice(_CMP)() for _ in range(n)],
                           comparators=[sub() for _ in range(n)])
    if kind == 5:
        return ast.BoolOp(op=rng.choice([ast.And, ast.Or])(), values=[sub(), sub(), sub()])
    if kind == 6:
        return ast.IfExp(test=sub(), body=sub(), orelse=sub())
    if kind == 7:
        return ast.Attribute(value=sub(), attr="real", ctx=ast.Load())
    index = rng.choice([sub(), ast.Tuple(elts=[ast.Slice(lower=sub(), upper=None, step=None)],
                                         ctx=ast.Load()),
                        ast.Tuple(elts=[sub(), ast.Slice(lower=None, upper=sub(), step=sub())],
                                  ctx=ast.Load())])
    return ast.Call(func=ast.Subscript(value=sub(), slice=index, ctx=ast.Load()),
                    args=[sub()], keywords=[])


def test_printed_expressions_parse_back_to_the_same_tree():
    rng = random.Random(7)
    for _ in range(3000):
        tree = ast.Expression(body=_expr(rng, 4))
        text = _text(ast.Module(body=[ast.Expr(value=tree.body)], type_ignores=[]))
        again = ast.parse(text, mode="eval")
        assert ast.dump(again) == ast.dump(tree), text


def _parse(text):
    return ast.parse(text).body[0].value


def test_parentheses_only_where_the_grammar_needs_them():
    for text in ["a - (b - c)", "a - b - c", "(-1) ** n", "2 ** -1", "a ** b ** c",
                 "(a ** b) ** c", "-0.2 / item", "(a + b).sum()", "-a.b", "(a < b) < c",
                 "a < b < c", "not a or b", "not (a or b)", "a and (b or c)",
                 "type(x1) is not float or type(x2) is not float", "(a if b else c) + 1",
                 "x[1:] + y[i, j]", "x[1:2,]", "x[i,]", "x[()]", "x[1:, ::2]", "a or b if c else d", "(a if b else c) if d else e"]:
        tree = ast.Module(body=[ast.Expr(value=_parse(text))], type_ignores=[])
        assert _text(tree) == text
