"""Higher order: a derivative made by ad_transform, called on traced values, is inlined.

``gradient(gradient(f))`` lowers the function ``gradient(f)``.  Its body is
generated Python: the derivative of ``f`` along the path the concrete inputs
take.  When the lowering meets a call of such a derivative with a traced
argument, :func:`inline` reads that generated source back (it is registered
with :mod:`linecache` like a file, so :mod:`~ad_transform.source` parses it as
it parses the user's code) and interprets it like any helper of the user's.
Guarantees:

* the path chosen is the one the concrete arguments take; the compiled variant
  read back writes into no operand (``emit(..., inplace=False)``) and comes
  from a cache of its own, keyed like the derivative's;
* every guard of the generated code (``if ...: raise _rt.PathMiss``) is
  interpreted like the user's own ``if``: its test on traced values becomes a
  guard of the outer path, re-checked on every call, so inputs that take
  another inner path miss the outer path too and a new one is lowered;
* reads of globals, closure cells and attributes inside the generated code go
  through the lowering's own readers (read at run time, guarded), and an
  inlined helper's code and defaults are guarded as in first order
  (``_rt.function_state`` is a lowering, in :mod:`ad_transform.rules.runtime`);
* every ``_rt`` helper the generated code calls is a primitive with rules
  (:mod:`ad_transform.rules.runtime`) or, without a rule, a ``MissingRule``
  when it meets a differentiated value: never a silent zero.
"""
from __future__ import annotations

import types

from . import fence, runtime
from .ir import Var
from .pytree import flatten_with, is_tree, tree_unflatten
from .errors import UnsupportedSyntax
from .scope import Closure, Scope, local_names
from .values import VarMethod, _Partial
from .source import get_source

__all__ = ["inline"]


def inline(lw, func, args, kwargs, node):
    """The result of ``func(*args, **kwargs)`` for the derivative ``func``, inlined into
    the program ``lw`` (a :class:`~ad_transform.lower.Lowerer`) is building."""
    info = func.__ad_transform__
    bound = info.bind(args, kwargs)  # one interpreter value per parameter
    entry = info.lowering_entry(tuple(_path_values(lw, v) for v in bound))
    # the outer path is told apart from others by the inner paths it inlined (its cache
    # also tries every stored path before lowering a new one: PathCache.exhaustive)
    lw.inlined_paths.append(("inlined", entry.decisions))
    src = get_source(entry.fn)
    fence.check(src)
    namespace = entry.fn.__globals__
    consts = {k: _outside(lw, v) for k, v in namespace.items() if not k.startswith("__")}
    outer = Scope(consts, None, {}, {}, frozenset())
    code = entry.fn.__code__
    params = code.co_varnames[:code.co_argcount]
    scope = Scope(dict(zip(params, bound)), outer, {}, {}, local_names(src.node))
    result = lw._inlined(src, scope, node)
    lw.return_loc = lw.loc(node)  # errors about the outer output point at this call
    return result


def _path_values(lw, x):
    """The concrete value of an argument, used only to choose which compiled path to read
    back.  Sound without a guard of its own: the path read back checks every fact it
    depends on with its own guards, which become guards of the outer path."""
    if isinstance(x, Var):
        return lw.b.value(x)
    if type(x) in (list, tuple):
        return type(x)(_path_values(lw, i) for i in x)
    if type(x) is dict:
        return {k: _path_values(lw, i) for k, i in x.items()}
    if is_tree(x):  # a namedtuple, dataclass or OrderedDict (a wrt tree, rebuilt)
        leaves, td = flatten_with(x, lambda v: lw.b.value(v) if isinstance(v, Var) else v)
        return tree_unflatten(td, [_path_values(lw, i) for i in leaves])
    if isinstance(x, (Closure, _Partial, VarMethod)):
        raise UnsupportedSyntax(
            "a function defined inside the differentiated code, passed to a derivative made "
            "by ad_transform: define it at module level (or close over it in the function "
            "that gradient() differentiates) instead", lw.b.loc)
    return x


def _outside(lw, v):
    """A name of the generated code's namespace, as the interpreter should see it:
    constants as they are; a module's globals and a closure cell through proxies that
    read the user's state with the lowering's guarded readers."""
    if type(v) is dict and "__builtins__" in v and "__name__" in v:
        return _Globals(lw, v)
    if isinstance(v, types.CellType):
        return _Cell(lw, v)
    return v


class _Globals:
    """``g['name']`` in generated code (a read of the user's global): the lowering's own
    read of that global (at run time for data, guarded otherwise)."""

    def __init__(self, lw, d):
        self._lw, self._d = lw, d

    def __getitem__(self, name):
        return self._lw._from_global(self._d, name, None)


class _Cell:
    """``cell.cell_contents`` in generated code: the lowering's own read of that cell."""

    def __init__(self, lw, cell):
        self._lw, self._cell = lw, cell

    @property
    def cell_contents(self):
        return self._lw._from_cell(self._cell, "cell", None)

