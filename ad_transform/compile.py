"""gast -> Python source -> a function, compiled under a file name linecache knows.

:func:`to_source` is the one place that turns AST into text (with astunparse);
:func:`compile_function` registers that text with :mod:`linecache`, so
tracebacks, ``inspect.getsource`` and debuggers show the generated lines.
The registration lives as long as the compiled function: when a path is
evicted from its cache and its function is freed, its lines leave
``linecache`` too (:func:`source_lines` reads them meanwhile).
"""
from __future__ import annotations

import ast
import io
import itertools
import linecache
import re
import weakref

import astunparse
import gast

from .emit import Emitted

__all__ = ["to_source", "compile_function", "source_lines"]

_MARKER = re.compile(r"^(\s*)__ad_comment_(\d+)__\s*$", re.M)
_serial = itertools.count(1)


# Binding strength of Python's expression grammar, weakest first.
_TEST, _OR, _AND, _NOT, _CMP, _BOR, _BXOR, _BAND, _SHIFT, _ARITH, _TERM, _FACTOR, _POWER, \
    _ATOM = range(1, 15)
_BINOP_PREC = {ast.BitOr: _BOR, ast.BitXor: _BXOR, ast.BitAnd: _BAND, ast.LShift: _SHIFT,
               ast.RShift: _SHIFT, ast.Add: _ARITH, ast.Sub: _ARITH, ast.Mult: _TERM,
               ast.MatMult: _TERM, ast.Div: _TERM, ast.FloorDiv: _TERM, ast.Mod: _TERM,
               ast.Pow: _POWER}


def _precedence(node) -> int:
    """How strongly ``node`` binds as an operand (:data:`_ATOM` for names, calls...)."""
    if isinstance(node, ast.BinOp):
        return _BINOP_PREC[type(node.op)]
    if isinstance(node, ast.UnaryOp):
        return _NOT if isinstance(node.op, ast.Not) else _FACTOR
    if isinstance(node, ast.Compare):
        return _CMP
    if isinstance(node, ast.BoolOp):
        return _AND if isinstance(node.op, ast.And) else _OR
    if isinstance(node, ast.IfExp):
        return _TEST
    if isinstance(node, (ast.Lambda, ast.NamedExpr)):
        return _TEST - 1
    return _ATOM


class _Unparser(astunparse.Unparser):
    """astunparse with parentheses only where the grammar needs them.

    astunparse encloses every operator expression in parentheses; here an operand
    is enclosed only when it binds less strongly than its position requires
    (``a - (b - c)``, ``(-1) ** n``, ``(a + b).sum()``), so the text reads like
    hand-written Python and parses back to the same tree.  It also avoids
    astunparse's one use of ``Constant.n`` (removed in Python 3.14).
    """

    def _operand(self, node, weakest: int) -> None:
        """Write ``node``, in parentheses if it binds less strongly than ``weakest``."""
        wrap = _precedence(node) < weakest
        if wrap:
            self.write("(")
        self.dispatch(node)
        if wrap:
            self.write(")")

    def _BinOp(self, t):
        prec = _BINOP_PREC[type(t.op)]
        if prec == _POWER:  # right-associative, and its right side may be -x
            left, right = _POWER + 1, _FACTOR
        else:  # left-associative: a - b - c is (a - b) - c
            left, right = prec, prec + 1
        self._operand(t.left, left)
        self.write(" " + self.binop[t.op.__class__.__name__] + " ")
        self._operand(t.right, right)

    def _UnaryOp(self, t):
        if isinstance(t.op, ast.Not):
            self.write("not ")
            self._operand(t.operand, _NOT)
        else:
            self.write(self.unop[t.op.__class__.__name__])
            self._operand(t.operand, _FACTOR)

    def _Compare(self, t):  # a < b < c is a chain: each operand binds more strongly
        self._operand(t.left, _CMP + 1)
        for o, e in zip(t.ops, t.comparators):
            self.write(" " + self.cmpops[o.__class__.__name__] + " ")
            self._operand(e, _CMP + 1)

    def _BoolOp(self, t):
        weakest = _precedence(t) + 1
        for i, v in enumerate(t.values):
            if i:
                self.write(" %s " % self.boolops[t.op.__class__])
            self._operand(v, weakest)

    def _IfExp(self, t):
        self._operand(t.body, _OR)
        self.write(" if ")
        self._operand(t.test, _OR)
        self.write(" else ")
        self._operand(t.orelse, _TEST)

    def _Attribute(self, t):
        self._operand(t.value, _ATOM)
        if isinstance(t.value, ast.Constant) and isinstance(t.value.value, int):
            self.write(" ")  # 3 .real, not the syntax error 3.real
        self.write(".")
        self.write(t.attr)

    def _Call(self, t):
        self._operand(t.func, _ATOM)
        self.write("(")
        for i, e in enumerate(list(t.args) + list(t.keywords)):
            if i:
                self.write(", ")
            self.dispatch(e)
        self.write(")")

    def _Subscript(self, t):
        self._operand(t.value, _ATOM)
        self.write("[")
        if isinstance(t.slice, ast.Tuple) and t.slice.elts:
            for i, e in enumerate(t.slice.elts):  # x[i, j] and x[1:2,], not x[(i, j)]
                if i:
                    self.write(", ")
                self.dispatch(e)
            if len(t.slice.elts) == 1:
                self.write(",")
        else:
            self.dispatch(t.slice)
        self.write("]")


def _to_ast(node):
    """gast -> ast for the node kinds the emitter builds, for the unparser only.

    Does what ``gast.gast_to_ast`` does for them, several times faster (a
    long unrolled loop makes thousands of statements): parameters become
    ``ast.arg``, an except clause's name a string, extra gast fields drop.  A
    node with no fields (``Load``, ``Add``...) is one shared instance per kind:
    the tree is printed, never compiled nor changed.
    """
    kind = type(node)
    if kind is list or isinstance(node, list):
        return [_to_ast(n) for n in node]
    how = _HOW.get(kind)
    if how is None:
        if not isinstance(node, gast.AST):
            return node
        how = _HOW[kind] = _how(kind)
    if how is _NAME:
        if isinstance(node.ctx, gast.Param):
            return ast.arg(arg=node.id, annotation=None)
        return ast.Name(id=node.id, ctx=_to_ast(node.ctx))
    if how is _HANDLER:
        return ast.ExceptHandler(type=_to_ast(node.type), name=node.name and node.name.id,
                                 body=_to_ast(node.body))
    target, fields = how
    if not fields:
        return target
    args = {}
    for field in fields:
        value = getattr(node, field, _HOW)  # (a field the gast node lacks is left out)
        if value is _HOW:
            continue
        if type(value) is list:
            value = [_to_ast(n) for n in value]
        elif isinstance(value, gast.AST):
            value = _to_ast(value)
        args[field] = value
    return target(**args)


_NAME, _HANDLER = object(), object()
_HOW: dict = {}  # gast class -> _NAME, _HANDLER, (an ast instance, ()) or (ast class, fields)


def _how(kind):
    name = kind.__name__
    if name == "Name":
        return _NAME
    if name == "ExceptHandler":
        return _HANDLER
    target = getattr(ast, name)
    return (target(), ()) if not target._fields else (target, tuple(target._fields))


def to_source(emitted: Emitted) -> str:
    """Readable Python source of a generated function, with its comments."""
    module = gast.Module(body=[emitted.fdef], type_ignores=[])
    out = io.StringIO()
    _Unparser(_to_ast(module), file=out)
    text = out.getvalue().strip("\n") + "\n"
    return _MARKER.sub(lambda m: f"{m.group(1)}# {emitted.comments[int(m.group(2))]}", text)


_CODE: dict = {}  # reuse_key -> (code, source, filename), for generated code that repeats


def compile_function(emitted: Emitted, label: str, reuse_key=None):
    """Compile the generated function; returns ``(function, source, filename)``.

    The function is not bound in its own namespace (nothing calls it by
    name), so it is freed as soon as its last user drops it, and its
    ``linecache`` entry with it.  With ``reuse_key``, code generated before
    under the same key (same text, other objects in its namespace) is not
    unparsed and compiled again, and its lines stay registered.
    """
    if reuse_key is not None and reuse_key in _CODE:
        code, source, filename = _CODE[reuse_key]
    else:
        source = to_source(emitted)
        filename = f"<ad_transform {label} #{next(_serial)}>"
        lines = source.splitlines(True)
        linecache.cache[filename] = (len(source), None, lines, filename)
        code = compile(source, filename, "exec")
        if reuse_key is not None:
            if len(_CODE) >= 1024:
                _CODE.pop(next(iter(_CODE)))
            _CODE[reuse_key] = code, source, filename
    namespace = dict(emitted.namespace)
    exec(code, namespace)
    fn = namespace.pop(emitted.fdef.name)
    if reuse_key is None:
        weakref.finalize(fn, _forget, filename, lines)
    return fn, source, filename


def define(text: str, filename: str, namespace: dict, name: str):
    """The function ``name`` that Python source ``text`` defines, compiled under
    ``filename``, whose lines linecache holds while the function lives (so the lowering
    reads it as it reads the user's code).  It is not left in ``namespace``, its globals:
    a cache keyed by it must not be held by it."""
    lines = text.splitlines(True)
    linecache.cache[filename] = (len(text), None, lines, filename)
    exec(compile(text, filename, "exec"), namespace)
    fn = namespace.pop(name)
    weakref.finalize(fn, _forget, filename, lines)
    return fn


def _forget(filename: str, lines: list) -> None:
    """Drop ``filename`` from linecache, if the entry there is still the one registered."""
    entry = linecache.cache.get(filename)
    if entry is not None and len(entry) > 2 and entry[2] is lines:
        del linecache.cache[filename]


def source_lines(filename: str) -> list:
    """The generated lines registered under ``filename`` (empty once freed)."""
    entry = linecache.cache.get(filename)
    return entry[2] if entry is not None and len(entry) > 2 else []
