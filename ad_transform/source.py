"""Function -> gast AST, with the real file name and line numbers.

Guarantees of :func:`get_source`: the returned node is the function's own
``FunctionDef`` or ``Lambda``, found from its code object (a ``functools.wraps``
wrapper is the wrapper's code, never the function it wraps); every node's ``lineno``/``col_offset`` refer to
the file the function was defined in (not to the dedented snippet); the result
is cached per code object, so a function is parsed once.
"""
from __future__ import annotations

import ast
import inspect
import linecache
import weakref
from dataclasses import dataclass

import gast

from .errors import Loc, SourceUnavailable

__all__ = ["FunctionSource", "get_source", "loc_of"]


@dataclass(frozen=True, eq=False)
class FunctionSource:
    node: object  # gast.FunctionDef | gast.Lambda
    filename: str
    name: str

    def loc(self, node) -> Loc:
        return loc_of(self.filename, node)


def loc_of(filename: str, node) -> Loc:
    """Where ``node`` is; every location on one line shares one string of its text (a
    long expression on one line has thousands of locations)."""
    line = getattr(node, "lineno", 0) or 0
    col = getattr(node, "col_offset", 0) or 0
    return Loc(filename, line, col, line_text(filename, line) if line else "")


_LINES: dict = {}  # (file, line) -> (linecache's line, that line without its newline)


def line_text(filename: str, line: int) -> str:
    """Source line ``line`` of ``filename`` without its newline, one shared string per line
    for as long as :mod:`linecache` holds the same line."""
    raw = linecache.getline(filename, line)
    hit = _LINES.get((filename, line))
    if hit is not None and hit[0] is raw:
        return hit[1]
    if len(_LINES) >= 4096:
        _LINES.clear()
    text = raw.rstrip("\n")
    _LINES[(filename, line)] = (raw, text)
    return text


_CACHE: dict = {}  # id(code) -> (weakref to the code, FunctionSource)


def get_source(fn) -> FunctionSource:
    code = getattr(fn, "__code__", None)
    if code is None:
        raise SourceUnavailable(f"{fn!r} is not a Python function, so it has no source to read")
    # Keyed by identity: equal code objects from two files must not share a parse.
    hit = _CACHE.get(id(code))
    if hit is not None and hit[0]() is code:
        return hit[1]
    src = _parse(fn, code)
    key = id(code)
    _CACHE[key] = (weakref.ref(code, lambda _, key=key: _CACHE.pop(key, None)), src)
    return src


def _parse(fn, code) -> FunctionSource:
    name = getattr(fn, "__qualname__", getattr(fn, "__name__", "<function>"))
    filename = code.co_filename
    try:
        # the code object's own lines: inspect.getsourcelines(fn) would follow
        # ``__wrapped__`` to the decorated function and lose a functools.wraps wrapper
        found = _def_block(code)
        lines, start = found if found is not None else inspect.getsourcelines(code)
    except (OSError, TypeError) as exc:
        raise SourceUnavailable(
            f"cannot read the source of {name} (defined in {filename}): {exc}. "
            "Define it in a file, a notebook cell or an IPython prompt, where "
            "inspect can find its source.") from None
    start = max(start, 1)
    indent = len(lines[0]) - len(lines[0].lstrip())
    node = _parse_in_place(lines, start, indent, code)
    if node is not None:
        return FunctionSource(node=node, filename=filename, name=name)
    dedented = [ln[indent:] if not indent or ln[:indent].isspace() else ln.lstrip() for ln in lines]
    text = "".join(dedented)
    tree = None
    for candidate in (text, text.rstrip().rstrip(",)") + "\n"):
        try:
            tree = gast.parse(candidate)
            break
        except SyntaxError:
            continue
    if tree is None:
        raise SourceUnavailable(f"cannot parse the source of {name} at {filename}:{start}")
    for node in gast.walk(tree):
        if hasattr(node, "lineno") and node.lineno is not None:
            node.lineno += start - 1
            node.col_offset = (node.col_offset or 0) + indent
            if getattr(node, "end_lineno", None) is not None:
                node.end_lineno += start - 1
    if code.co_name == "<lambda>":
        node = _find_lambda(tree, code)
    else:
        # the block starts at the function's first line (its decorators): its own def
        # is the first statement, not a same-named def nested in it
        first = tree.body[0] if tree.body else None
        node = first if isinstance(first, (gast.FunctionDef, gast.AsyncFunctionDef)) \
            and first.name == code.co_name else None
    if node is None:
        raise SourceUnavailable(f"cannot find the definition of {name} in its source at "
                                f"{filename}:{start}")
    return FunctionSource(node=node, filename=filename, name=name)


def _def_block(code):
    """``(lines, first line)`` of the ``def`` whose code is ``code``: what
    ``inspect.getsourcelines`` gives, without tokenizing the block in Python (seconds for
    a 5,000-term expression).  The block is cut where the indentation returns to the
    ``def``'s and checked by Python's own parser: it must parse to one ``def`` of that
    name spanning it.  ``None`` (inspect then looks) for a lambda, or a cut that fails."""
    if code.co_name == "<lambda>":
        return None
    lines = linecache.getlines(code.co_filename)
    first = code.co_firstlineno
    if not lines or first > len(lines):
        return None
    head = lines[first - 1]
    indent = len(head) - len(head.lstrip())
    end = first  # lines[first - 1:end] is the block
    while end < len(lines) and lines[end].lstrip()[:1] == "@":
        end += 1  # decorators, then the def line itself
    end += 1
    while end < len(lines):
        line = lines[end]
        stripped = line.lstrip()
        if stripped and not stripped.startswith("#") and len(line) - len(stripped) <= indent:
            break
        end += 1
    while end > first and not lines[end - 1].strip():
        end -= 1
    block = lines[first - 1:end]
    text = "".join(ln[indent:] if ln[:indent].isspace() or not indent else ln for ln in block)
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    node = tree.body[0] if len(tree.body) == 1 else None
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or \
            node.name != code.co_name:
        return None
    return block, first


def _parse_in_place(lines, start, indent, code):
    """The function's node, parsed from its lines where they stand in their file: blank
    lines before them (and ``if 1:`` above an indented block) put every node at its real
    line and column, with no pass over the tree to move them.  ``None`` when that text
    does not parse (a lambda in the middle of a statement); :func:`_parse` then parses the
    dedented snippet."""
    if indent and start < 2:
        return None
    head = "\n" * (start - 1) if not indent else "\n" * (start - 2) + "if 1:\n"
    try:
        tree = gast.parse(head + "".join(lines))
    except SyntaxError:
        return None
    body = tree.body[0].body if indent and tree.body else tree.body
    if code.co_name == "<lambda>":
        return _find_lambda(tree, code)
    first = body[0] if body else None
    return first if isinstance(first, (gast.FunctionDef, gast.AsyncFunctionDef)) \
        and first.name == code.co_name else None


def _find_lambda(tree, code):
    argnames = list(code.co_varnames[:code.co_argcount + code.co_kwonlyargcount])
    found = [n for n in gast.walk(tree) if isinstance(n, gast.Lambda)
             and [a.id for a in n.args.posonlyargs + n.args.args + n.args.kwonlyargs] == argnames]
    return found[0] if len(found) == 1 else None  # two look-alike lambdas: ambiguous
