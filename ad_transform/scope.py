"""Python's binding rules, for the interpreter in :mod:`ad_transform.lower`.

Standalone (it knows nothing of tracing), in the way beniget's ``collect_locals`` is.
Guarantees:

* :func:`local_names` is the set of names a function binds anywhere in its body (its
  parameters, assignment targets, nested ``def`` names): Python makes each of them local
  for the *whole* body, so reading one before it is assigned is ``UnboundLocalError``;
* :func:`resolve` finds a name as Python does: the current frame's locals, then the
  enclosing functions' (a name an enclosing function binds but has not yet assigned is
  Python's ``NameError``), then the function's closure cells, its globals, the builtins;
* :func:`bind` binds call arguments to parameters as Python does (positional-only,
  defaults, ``*args``, keyword-only, ``**kwargs``), raising Python's ``TypeError``s;
* a :class:`Closure` (a ``def`` or ``lambda`` run inside traced code) keeps the scope it
  was defined in, so it sees its enclosing function's later assignments, as Python's
  cells do.
"""
from __future__ import annotations

import ast
import builtins
import functools
import types

import gast

__all__ = ["Scope", "Closure", "local_names", "bind", "cells", "resolve", "entry_code"]


class Scope:
    """One running function's frame: its ``locals`` (name -> interpreter value), the
    ``parent`` scope of the function it is nested in (``None`` at module level), the
    ``globals`` dict and closure ``cells`` of its code, and the ``local_names`` it binds
    (see :func:`local_names`)."""

    __slots__ = ("locals", "parent", "globals", "cells", "local_names")

    def __init__(self, locals_, parent, globals_, cells, local_names):
        self.locals = locals_
        self.parent = parent
        self.globals = globals_
        self.cells = cells
        self.local_names = local_names


class Closure:
    """A function defined inside traced code (``def`` or ``lambda``)."""

    def __init__(self, node, scope, src, defaults, kwdefaults):
        self.node, self.scope, self.src = node, scope, src
        self.defaults, self.kwdefaults = defaults, kwdefaults
        self.__name__ = getattr(node, "name", "<lambda>")


_OWN_SCOPE = (gast.Lambda, gast.ListComp, gast.GeneratorExp)  # bind names of their own


def local_names(node) -> frozenset:
    """Names a function binds (Python makes them local for its whole body)."""
    cached = getattr(node, "_ad_locals", None)
    if cached is not None:
        return cached
    names = set()
    a = node.args
    for p in a.posonlyargs + a.args + a.kwonlyargs + [a.vararg, a.kwarg]:
        if p is not None:
            names.add(p.id)
    nodes = list(node.body) if isinstance(node.body, list) else [node.body]
    for n in nodes:  # (the loop visits the children it appends)
        kind = type(n)
        if kind is gast.Name:
            if isinstance(n.ctx, gast.Store):
                names.add(n.id)
            continue  # (its children: a context, and an annotation only as a parameter)
        if kind is gast.FunctionDef:
            names.add(n.name)
            nodes.extend(n.args.defaults)
            continue
        if kind in _OWN_SCOPE:
            continue
        for field in n._fields:
            value = getattr(n, field, None)
            if type(value) is list:
                nodes.extend([item for item in value if isinstance(item, ast.AST)])
            elif isinstance(value, ast.AST):
                nodes.append(value)
    node._ad_locals = frozenset(names)
    return node._ad_locals


def read_outside(fnode, stmt) -> frozenset:
    """Names the function ``fnode`` reads outside statement ``stmt``'s own blocks: a
    loop's body (and a ``while`` test), an ``if`` 's test and both branches.  (A loop's
    ``else`` runs after it: outside.)  Cached on ``stmt``."""
    cache = getattr(stmt, "_ad_read_outside", None)
    if cache is not None and cache[0] is fnode:
        return cache[1]
    own = list(stmt.body)
    if isinstance(stmt, gast.If):
        own += stmt.orelse
    if isinstance(stmt, (gast.While, gast.If)):
        own.append(stmt.test)
    inside = {id(n) for s in own for n in gast.walk(s)}
    body = fnode.body if isinstance(fnode.body, list) else [fnode.body]
    reads = frozenset(n.id for s in body for n in gast.walk(s)
                      if isinstance(n, gast.Name) and isinstance(n.ctx, gast.Load)
                      and id(n) not in inside)
    stmt._ad_read_outside = (fnode, reads)
    return reads


def bind(a, defaults, kwdefaults, args, kwargs, fname) -> dict:
    """Python's argument binding, for interpreter values."""
    pos = [p.id for p in a.posonlyargs + a.args]
    out = dict(zip(pos, args))
    kwargs = dict(kwargs)
    extra = list(args[len(pos):])
    if a.vararg is not None:
        out[a.vararg.id] = tuple(extra)
    elif extra:
        raise TypeError(f"{fname}() takes {len(pos)} positional arguments but {len(args)} "
                        "were given")
    posonly = {p.id for p in a.posonlyargs}
    first_default = len(pos) - len(defaults)
    for i, name in enumerate(pos):
        if name in kwargs and name not in posonly:
            if name in out:
                raise TypeError(f"{fname}() got multiple values for argument '{name}'")
            out[name] = kwargs.pop(name)
        elif name not in out:
            if i < first_default:
                raise TypeError(f"{fname}() missing required argument '{name}'")
            out[name] = defaults[i - first_default]
    for p in a.kwonlyargs:
        if p.id in kwargs:
            out[p.id] = kwargs.pop(p.id)
        elif p.id in kwdefaults:
            out[p.id] = kwdefaults[p.id]
        else:
            raise TypeError(f"{fname}() missing required keyword-only argument '{p.id}'")
    if a.kwarg is not None:
        out[a.kwarg.id] = kwargs
    elif kwargs:
        raise TypeError(f"{fname}() got an unexpected keyword argument '{next(iter(kwargs))}'")
    return out


def cells(fn) -> dict:
    """The closure cells of the Python function ``fn``, by free-variable name."""
    return dict(zip(fn.__code__.co_freevars, fn.__closure__ or ()))


def resolve(scope: Scope, name: str, where):
    """Find ``name`` from ``scope`` as Python does.  Returns ``(kind, found)``: ``("local",
    value)``, ``("cell", cell)``, ``("global", globals_dict)`` or ``("builtin", value)``;
    reading a cell or a global is left to the caller (they are values from outside the
    function).  ``where()`` gives the location named in Python's errors."""
    if name in scope.locals:
        return "local", scope.locals[name]
    if name in scope.local_names:
        raise UnboundLocalError(f"local variable '{name}' referenced before assignment "
                                f"(at {where()})")
    p = scope.parent
    while p is not None:
        if name in p.locals:
            return "local", p.locals[name]
        if name in p.local_names:  # the enclosing function's, not yet assigned
            raise NameError(f"cannot access free variable '{name}' where it is not "
                            f"associated with a value (at {where()})")
        p = p.parent
    if name in scope.cells:
        return "cell", scope.cells[name]
    if name in scope.globals:
        return "global", scope.globals
    if hasattr(builtins, name):
        return "builtin", getattr(builtins, name)
    raise NameError(f"name '{name}' is not defined (at {where()})")


def entry_code(fn):
    """The Python function whose code runs first when ``fn`` is called."""
    while True:
        if isinstance(fn, functools.partial):
            fn = fn.func
        elif isinstance(fn, types.MethodType):
            fn = fn.__func__
        elif not isinstance(fn, types.FunctionType) and callable(fn) and isinstance(
                getattr(type(fn), "__call__", None), types.FunctionType):
            fn = type(fn).__call__
        else:
            return fn
