"""Python's builtins the interpreter runs itself: structure, not data.

``len``, ``range``, ``zip``, ``sorted``, ``max(..., key=)``, ``functools.reduce`` ...
decide the structure of the path (counts, orders, which items), so the interpreter runs
them on interpreter values, each fact it reads guarded.  They are registered in the one
registry of lowerings (:func:`~ad_transform.rules.core.deflowering`) with the
interpreter's signature ``(lw, args, kwargs, node, hint)``; one returns
``NotImplemented`` to leave the call to Python (and Python's own ``TypeError``).
"""
from __future__ import annotations

import builtins
import functools

import gast
import numpy as np

from ..ir import Var
from ..pytree import is_tree
from ..values import _Generated, _Partial, _contains_var, _is_user_callable
from . import builtins as B
from . import numpy as N
from .core import deflowering, lookup

def _i_len(lw, args, kwargs, node, hint):
    (x,) = args
    if isinstance(x, Var):
        value = lw.sig(x)
        if hasattr(value, "shape"):
            return len(value)
        lw.b.loc = lw.loc(node)
        return lw.b.apply(B.length, (x,), None, hint)
    return len(x)


def _i_range(lw, args, kwargs, node, hint):
    return range(*(lw.concrete(a, node) for a in args))


def _i_enumerate(lw, args, kwargs, node, hint):
    start = lw.concrete(args[1] if len(args) > 1 else kwargs.get("start", 0), node)
    return _Generated(enumerate(lw.iterate(args[0], node), start))


def _i_zip(lw, args, kwargs, node, hint):
    return _Generated(zip(*(lw.iterate(a, node) for a in args)))


def _i_reversed(lw, args, kwargs, node, hint):
    return _Generated(reversed(lw.iterate(args[0], node)))


def _i_list(lw, args, kwargs, node, hint):
    return lw.iterate(args[0], node) if args else []


def _i_tuple(lw, args, kwargs, node, hint):
    return tuple(lw.iterate(args[0], node)) if args else ()


def _i_sum(lw, args, kwargs, node, hint):
    if isinstance(args[0], Var) and isinstance(lw.sig(args[0]), np.ndarray):
        lw.b.loc = lw.loc(node)
        total = lw.b.apply(N.sum_, (args[0],), {"axis": 0}, hint)
        return total if len(args) < 2 else lw.binop(gast.Add, args[1], total, node)
    items = lw.iterate(args[0], node)
    start = args[1] if len(args) > 1 else kwargs.get("start", 0)
    if isinstance(start, (list, tuple)) or any(isinstance(i, (list, tuple)) for i in items):
        acc = start  # concatenation of containers: structure, item by item
        for item in items:
            acc = lw.binop(gast.Add, acc, item, node)
        return acc
    lw.b.loc = lw.loc(node)  # one call of Python's sum: its rounding, on every Python
    return lw.b.apply(B.sum_items, (start, *items), None, hint)


def _reduce_minmax(prim, pyfn):
    def intrinsic(lw, args, kwargs, node, hint):
        if len(args) == 1 and not kwargs and isinstance(args[0], Var) and isinstance(
                lw.sig(args[0]), np.ndarray) and lw.sig(args[0]).ndim == 1:
            # (of a 2-D array Python compares rows below, and raises as it does)
            lw.b.loc = lw.loc(node)
            return lw.b.apply(lookup(getattr(np, pyfn.__name__)), (args[0],), {"axis": 0}, hint)
        items = lw.iterate(args[0], node) if len(args) == 1 else list(args)
        if not any(_contains_var(i) for i in items) and not _is_user_callable(
                kwargs.get("key")):
            return pyfn(items, **kwargs) if len(args) == 1 else pyfn(*args, **kwargs)
        if len(args) == 1 and items and kwargs.get("key") is None and set(kwargs) <= {
                "key", "default"}:
            kwargs = {}  # max(items, default=d) of a non-empty list: max(items)
        if kwargs:
            if set(kwargs) - {"key", "default"} or ("default" in kwargs and len(args) > 1):
                return NotImplemented  # Python's own TypeError
            return lw._minmax_key(items, kwargs.get("key"), pyfn is builtins.max,
                                  kwargs.get("default", lw.NO_DEFAULT), node)
        if not items:
            raise ValueError(f"{pyfn.__name__}() arg is an empty sequence")
        if len(items) == 1:
            return items[0]
        lw.b.loc = lw.loc(node)  # one equation: ties share the derivative (docs/kinks.md)
        return lw.b.apply(prim, tuple(items), None, hint)
    return intrinsic


def _i_isinstance(lw, args, kwargs, node, hint):
    return isinstance(lw.sig(args[0]) if isinstance(args[0], Var) else args[0], args[1])


def _i_type(lw, args, kwargs, node, hint):
    if len(args) == 1 and isinstance(args[0], Var):
        return type(lw.sig(args[0]))
    if len(args) == 1 and (type(args[0]) in (list, tuple, dict) or is_tree(args[0])):
        return type(args[0])  # a container of the interpreter's (traced items or not)
    return NotImplemented


def _i_map(lw, args, kwargs, node, hint):
    fn, *seqs = args
    return _Generated(lw.call(fn, list(items), {}, node)
                      for items in zip(*(lw.iterate(s, node) for s in seqs)))


def _i_filter(lw, args, kwargs, node, hint):
    fn, seq = args
    return _Generated(x for x in lw.iterate(seq, node)
                      if lw.truth(x if fn is None else lw.call(fn, [x], {}, node), node))


def _i_any_all(is_any):
    def intrinsic(lw, args, kwargs, node, hint):
        for x in lw._live(args[0], node):  # stops where Python stops consuming
            if lw.truth(x, node) == is_any:
                return is_any
        return not is_any
    return intrinsic


def _i_divmod(lw, args, kwargs, node, hint):
    a, b = args
    return (lw.binop(gast.FloorDiv, a, b, node), lw.binop(gast.Mod, a, b, node))


def _i_sorted(lw, args, kwargs, node, hint):
    if set(kwargs) - {"key", "reverse"} or len(args) != 1:
        return NotImplemented  # Python's own TypeError
    reverse = lw._concrete_all(kwargs.get("reverse", False), node)
    return lw._sort(lw.iterate(args[0], node), kwargs.get("key"), reverse, node)


def _i_reduce(lw, args, kwargs, node, hint):
    if kwargs or not 2 <= len(args) <= 3:
        return NotImplemented
    fn, seq, *init = args
    items = lw.iterate(seq, node)
    if init:
        acc = init[0]
    elif not items:
        raise TypeError("reduce() of empty iterable with no initial value")
    else:
        acc, items = items[0], items[1:]
    for item in items:
        acc = lw.call(fn, [acc, item], {}, node)
    return acc


def _i_partial(lw, args, kwargs, node, hint):
    if not args:
        return NotImplemented
    return _Partial(args[0], args[1:], kwargs)


def _i_next(lw, args, kwargs, node, hint):
    if not isinstance(args[0], _Generated):
        return NotImplemented
    if args[0]:
        return args[0].pop(0)
    if len(args) > 1:
        return args[1]
    raise StopIteration


def _i_dict(lw, args, kwargs, node, hint):
    return dict(*args, **kwargs)


for _fn, _intrinsic in {
    builtins.len: _i_len, builtins.range: _i_range, builtins.enumerate: _i_enumerate,
    builtins.zip: _i_zip, builtins.reversed: _i_reversed, builtins.list: _i_list,
    builtins.tuple: _i_tuple, builtins.sum: _i_sum,
    builtins.max: _reduce_minmax(B.max2, builtins.max),
    builtins.min: _reduce_minmax(B.min2, builtins.min),
    builtins.isinstance: _i_isinstance, builtins.type: _i_type, builtins.map: _i_map,
    builtins.filter: _i_filter, builtins.any: _i_any_all(True), builtins.all: _i_any_all(False),
    builtins.divmod: _i_divmod, builtins.sorted: _i_sorted, builtins.dict: _i_dict,
    builtins.next: _i_next, functools.reduce: _i_reduce, functools.partial: _i_partial,
}.items():
    deflowering(_fn, interpreter=True)(_intrinsic)
