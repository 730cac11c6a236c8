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
_ASSIGN = re.compile(r"^(\s*[\w.]+ = )\((.*)\)$", re.M)
_serial = itertools.count(1)


class _Unparser(astunparse.Unparser):
    """astunparse, minus its one use of ``Constant.n`` (removed in Python 3.14)."""

    def _Attribute(self, t):
        self.dispatch(t.value)
        if isinstance(t.value, ast.Constant) and isinstance(t.value.value, int):
            self.write(" ")  # 3 .real, not the syntax error 3.real
        self.write(".")
        self.write(t.attr)


def _unwrap(m) -> str:
    """``x = (a + b)`` -> ``x = a + b`` when the parentheses enclose the whole right side."""
    inner, depth = m.group(2), 0
    for ch in inner:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return m.group(0)
    return m.group(1) + inner


def _to_ast(node):
    """gast -> ast for the node kinds the emitter builds.

    Does what ``gast.gast_to_ast`` does for them, several times faster (a
    long unrolled loop makes thousands of statements): parameters become
    ``ast.arg``, an except clause's name a string, extra gast fields drop.
    """
    if isinstance(node, list):
        return [_to_ast(n) for n in node]
    if not isinstance(node, gast.AST):
        return node
    kind = type(node).__name__
    if kind == "Name":
        if isinstance(node.ctx, gast.Param):
            return ast.arg(arg=node.id, annotation=None)
        return ast.Name(id=node.id, ctx=_to_ast(node.ctx))
    if kind == "ExceptHandler":
        return ast.ExceptHandler(type=_to_ast(node.type), name=node.name and node.name.id,
                                 body=_to_ast(node.body))
    target = getattr(ast, kind)
    return target(**{f: _to_ast(getattr(node, f)) for f in target._fields if hasattr(node, f)})


def to_source(emitted: Emitted) -> str:
    """Readable Python source of a generated function, with its comments."""
    module = gast.Module(body=[emitted.fdef], type_ignores=[])
    out = io.StringIO()
    _Unparser(_to_ast(module), file=out)
    text = out.getvalue().strip("\n") + "\n"
    text = _ASSIGN.sub(_unwrap, text)
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


def _forget(filename: str, lines: list) -> None:
    """Drop ``filename`` from linecache, if the entry there is still the one registered."""
    entry = linecache.cache.get(filename)
    if entry is not None and len(entry) > 2 and entry[2] is lines:
        del linecache.cache[filename]


def source_lines(filename: str) -> list:
    """The generated lines registered under ``filename`` (empty once freed)."""
    entry = linecache.cache.get(filename)
    return entry[2] if entry is not None and len(entry) > 2 else []
