"""Reject unsupported syntax up front, with a located error.

Guarantee of :func:`check`: when it returns, every node of the function is of
a kind the lowering handles, so the lowering never meets an unknown construct
half way through a path.  Otherwise it raises :class:`UnsupportedSyntax`
naming the first offending construct, its ``file:line:col`` and source line.
"""
from __future__ import annotations

import weakref

import gast

from .errors import UnsupportedSyntax
from .source import FunctionSource, walk

__all__ = ["check"]

_SUPPORTED = {
    # statements
    gast.FunctionDef, gast.Return, gast.Assign, gast.AugAssign, gast.AnnAssign, gast.Expr,
    gast.If, gast.For, gast.While, gast.Break, gast.Continue, gast.Pass, gast.Assert,
    gast.Raise,
    # expressions
    gast.BoolOp, gast.BinOp, gast.UnaryOp, gast.Lambda, gast.IfExp, gast.Dict, gast.ListComp,
    gast.GeneratorExp, gast.Compare, gast.Call, gast.Constant, gast.Attribute, gast.Subscript,
    gast.Starred, gast.Name, gast.List, gast.Tuple, gast.Slice, gast.comprehension,
    gast.arguments, gast.keyword, gast.JoinedStr, gast.FormattedValue,
}
_CONTEXTS = (gast.Load, gast.Store, gast.Param, gast.boolop, gast.operator, gast.unaryop,
             gast.cmpop)
_ASSIGNING = (gast.Assign, gast.AugAssign, gast.AnnAssign, gast.For)  # targets to check
_KINDS: dict = {}  # node class -> whether it is supported (in _SUPPORTED, or a context)

_NAMES = {
    "Try": "'try' statement", "TryStar": "'try/except*' statement", "With": "'with' statement",
    "AsyncWith": "'async with' statement", "AsyncFor": "'async for' loop",
    "AsyncFunctionDef": "'async def' function", "Await": "'await' expression",
    "Yield": "'yield' expression (generators)", "YieldFrom": "'yield from' expression",
    "Global": "'global' statement", "Nonlocal": "'nonlocal' statement",
    "ClassDef": "'class' definition", "Delete": "'del' statement", "Import": "'import' statement",
    "ImportFrom": "'from ... import' statement", "Match": "'match' statement",
    "NamedExpr": "assignment expression ':='", "SetComp": "set comprehension",
    "DictComp": "dict comprehension", "Set": "set literal",
}


_PASSED: "weakref.WeakSet" = weakref.WeakSet()  # sources checked already (parsed once each)


def check(src: FunctionSource) -> None:
    if src in _PASSED:
        return
    _check(src)
    _PASSED.add(src)


def _check(src: FunctionSource) -> None:
    root = src.node
    for node in walk(root):
        kind = type(node)
        supported = _KINDS.get(kind)
        if supported is None:
            supported = _KINDS[kind] = kind in _SUPPORTED or issubclass(kind, _CONTEXTS)
        if supported:
            if kind is gast.FunctionDef and node is not root and node.decorator_list:
                _fail(src, node.decorator_list[0], "decorator on a nested function")
            if kind in _ASSIGNING:
                targets = node.targets if kind is gast.Assign else [node.target]
                for t in targets:
                    _check_target(src, t)
            continue
        if node is root and kind is gast.Lambda:
            continue
        name = _NAMES.get(kind.__name__, f"'{kind.__name__}' construct")
        _fail(src, node, name)


def _check_target(src, target):
    if isinstance(target, (gast.Tuple, gast.List)):
        for elt in target.elts:
            _check_target(src, elt)
    elif isinstance(target, gast.Attribute):
        _fail(src, target, "assignment to an attribute (objects are not differentiated)")
    elif isinstance(target, gast.Starred):
        _fail(src, target, "starred assignment target")
    elif not isinstance(target, (gast.Name, gast.Subscript)):
        _fail(src, target, f"assignment to a {type(target).__name__}")


def _fail(src, node, what):
    raise UnsupportedSyntax(f"unsupported syntax: {what}", src.loc(node))
