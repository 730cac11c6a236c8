"""Function -> gast AST, with the real file name and line numbers.

Guarantees of :func:`get_source`: the returned node is the function's own
``FunctionDef`` or ``Lambda``, found from its code object (a ``functools.wraps``
wrapper is the wrapper's code, never the function it wraps); every node's ``lineno``/``col_offset`` refer to
the file the function was defined in (not to the dedented snippet); the result
is cached per code object, so a function is parsed once.  The source is read by
Python's own parser once and converted to gast nodes by :func:`to_gast`, which makes
exactly the nodes ``gast.ast_to_gast`` makes.
"""
from __future__ import annotations

import ast
import inspect
import linecache
import weakref
from dataclasses import dataclass

import gast
import gast.ast3

from .errors import Loc, SourceUnavailable

__all__ = ["FunctionSource", "get_source", "loc_of", "to_gast", "walk"]


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
    # the code object's own lines: inspect.getsourcelines(fn) would follow
    # ``__wrapped__`` to the decorated function and lose a functools.wraps wrapper
    found = _def_block(code)
    if found is not None:
        return FunctionSource(node=to_gast(found), filename=filename, name=name)
    try:
        lines, start = inspect.getsourcelines(code)
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
        node = _find_lambda(tree.body, code)
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
    """The ``def`` whose code is ``code``, as Python's own parser reads it where it stands
    in its file (an ``ast`` node at its real lines and columns), found without tokenizing
    the block in Python as ``inspect.getsourcelines`` does (seconds for a 5,000-term
    expression).  The block is cut where the indentation returns to the ``def``'s; it must
    parse to one ``def`` of that name.  ``None`` (inspect then looks) for a lambda, or a
    cut that fails."""
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
    body = _parse_lines(lines[first - 1:end], first, indent)
    node = body[0] if body is not None and len(body) == 1 else None
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or \
            node.name != code.co_name:
        return None
    return node


def _parse_lines(lines, start, indent):
    """The statements of ``lines`` (which start at line ``start`` of their file, indented
    by ``indent``) as Python's parser reads them in place: blank lines before them (and
    ``if 1:`` above an indented block) put every node at its real line and column, with
    no pass over the tree to move them.  ``None`` when that text does not parse."""
    if indent and start < 2:
        return None
    head = "\n" * (start - 1) if not indent else "\n" * (start - 2) + "if 1:\n"
    try:
        tree = ast.parse(head + "".join(lines))
    except (SyntaxError, ValueError):
        return None
    return tree.body[0].body if indent and tree.body else tree.body


def _parse_in_place(lines, start, indent, code):
    """The function's gast node, parsed from its lines where they stand in their file (see
    :func:`_parse_lines`).  ``None`` when that text does not parse (a lambda in the middle
    of a statement); :func:`_parse` then parses the dedented snippet."""
    body = _parse_lines(lines, start, indent)
    if body is None:
        return None
    if code.co_name == "<lambda>":
        return _find_lambda(to_gast(body), code)
    first = body[0] if body else None
    return to_gast(first) if isinstance(first, (ast.FunctionDef, ast.AsyncFunctionDef)) \
        and first.name == code.co_name else None


def _find_lambda(stmts, code):
    """The one lambda among the gast statements ``stmts`` whose parameters are ``code``'s."""
    argnames = list(code.co_varnames[:code.co_argcount + code.co_kwonlyargcount])
    found = [n for s in stmts for n in gast.walk(s) if isinstance(n, gast.Lambda)
             and [a.id for a in n.args.posonlyargs + n.args.args + n.args.kwonlyargs] == argnames]
    return found[0] if len(found) == 1 else None  # two look-alike lambdas: ambiguous


# -- ast -> gast ----------------------------------------------------------------------------
# gast.ast_to_gast visits every node through ast.NodeVisitor's dispatch and a generic visitor
# that builds each node from a dict of its fields: most of the cost of reading a long
# function.  to_gast makes the same nodes directly for the kinds gast's translator converts
# generically, and hands every other kind to that translator (whose children come back here).


class _Translator(gast.ast3.Ast3ToGAst):
    """gast's own translator, for the node kinds it converts in a way of its own."""

    def _visit(self, node):
        return to_gast(node)


_TRANSLATOR = _Translator()
# ast.NodeVisitor.visit_Constant hands a constant to visit_Num, visit_Str... when the visitor
# has one (gast's translator has them on Python 3.7 only), else to generic_visit
_CONSTANT_VISITOR = getattr(ast.NodeVisitor, "visit_Constant", None)
_OLD_CONSTANTS = ("Num", "Str", "Bytes", "NameConstant", "Ellipsis")
_PLAIN: dict = {}  # ast class -> (gast class, fields, attributes), or None: gast's translator
_LEAVES: dict = {}  # ast class -> gast class, for the plain kinds with no field nor location


def _plain(kind):
    """How to convert a node of the ``ast`` class ``kind``, when gast's translator does it
    generically: a gast class of the same name with the same fields, and no visitor of the
    translator's own for it.  ``None`` otherwise."""
    if not issubclass(kind, ast.AST):
        return None
    target = getattr(gast, kind.__name__, None)
    visitor = getattr(_Translator, "visit_" + kind.__name__, None)
    if visitor is not None and visitor is _CONSTANT_VISITOR and not any(
            hasattr(_Translator, "visit_" + old) for old in _OLD_CONSTANTS):
        visitor = None  # ast.NodeVisitor's own visit_Constant: generic_visit, for gast
    if target is None or visitor is not None or tuple(target._fields) != tuple(kind._fields):
        return None
    if not kind._fields and not kind._attributes:  # Load, Store, Add, Mult, ...
        _LEAVES[kind] = target
    return target, tuple(kind._fields), tuple(kind._attributes)


def to_gast(node):
    """``gast.ast_to_gast(node)``: the same gast nodes (classes, fields in their order,
    locations), made about three times faster.  ``node`` is an ``ast`` node or a list of
    them.  (tests/test_build_cost.py compares the two on the source files of the
    package and its examples, and on a snippet of every node kind.)"""
    kind = type(node)
    if kind is list:
        return [to_gast(n) for n in node]
    try:
        plain = _PLAIN[kind]
    except KeyError:
        plain = _PLAIN[kind] = _plain(kind)
    if plain is None:
        if kind is ast.Name:
            return _name(node)
        return _TRANSLATOR.visit(node) if isinstance(node, ast.AST) else node
    target, fields, attributes = plain
    new = target.__new__(target)  # what gast's constructor makes when given no field
    into = new.__dict__
    for field in fields:
        value = getattr(node, field)
        if type(value) is list:
            value = [to_gast(n) for n in value]
        elif isinstance(value, ast.AST):
            leaf = _LEAVES.get(type(value))
            value = leaf.__new__(leaf) if leaf is not None else to_gast(value)
        into[field] = value
    for attribute in attributes:
        try:
            into[attribute] = getattr(node, attribute)
        except AttributeError:
            pass
    return new


_LOCATION = ("lineno", "col_offset", "end_lineno", "end_col_offset")


def _name(node):
    """The gast ``Name`` gast's translator makes of an ``ast.Name`` (its ``visit_Name``, the
    same in gast 0.6 and 0.7: no annotation nor type comment, the location copied by
    ``ast.copy_location``), made directly: names are the most common nodes."""
    new = gast.Name.__new__(gast.Name)
    into = new.__dict__
    into["id"] = node.id
    into["ctx"] = to_gast(node.ctx)
    into["annotation"] = into["type_comment"] = None
    where = [getattr(node, attribute, None) for attribute in _LOCATION]
    if None in where:  # not the parser's: copy_location's own rules for missing values
        return ast.copy_location(new, node)
    into.update(zip(_LOCATION, where))
    return new


# -- walking a tree ------------------------------------------------------------------------


def walk(node) -> list:
    """The nodes of the tree under ``node`` (itself first), in ``ast.walk``'s order."""
    nodes = [node]
    for node in nodes:  # (the loop visits what it appends: breadth first, as ast.walk)
        for field in node._fields:
            value = getattr(node, field, None)
            if type(value) is list:
                nodes.extend([item for item in value if isinstance(item, ast.AST)])
            elif isinstance(value, ast.AST):
                nodes.append(value)
    return nodes
