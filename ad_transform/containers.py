"""Python's containers, subscripts and iteration, on interpreter values.

Containers are structure, not data: a list, tuple or dict of traced values is a Python
object of the interpreter (displays, comprehensions and ``+=`` on them build and change
it now; a subscript of it is taken now, its key a guarded fact; a subscript of a traced
value is one ``getitem`` equation, a traced index tuple one ``index_tuple``).  Guarantees: iterating follows Python (a list grown inside
its ``for`` loop is seen; a one-shot iterator is used up); a container method runs on
real values now, with keys and counts taken as guarded facts and stored values kept
traced; items are compared by the interpreter (``in``, ``index``, ``sort``, ``max(...,
key=)``), each comparison guarded, so a permutation is part of the path and derivatives
follow the items; a container from outside the function is never changed.
"""
from __future__ import annotations

import builtins

import gast
import numpy as np

from . import loops
from .errors import MissingRule, UnsupportedSyntax
from .ir import Var
from .rules import builtins as B
from .rules import numpy as N
from .scope import Scope
from .values import _Generated, _contains_var

# list/dict methods that change the container (refused on containers from outside)
_MUTATORS = frozenset({"append", "extend", "insert", "pop", "remove", "clear", "sort",
                       "reverse", "setdefault", "update", "popitem", "__setitem__",
                       "__delitem__", "__iadd__", "__imul__", "__ior__"})

_NO_DEFAULT = object()  # max()/min() without default=


class Containers:
    """The :class:`~ad_transform.lower.Lowerer`'s containers: displays, comprehensions,
    subscripts, iteration and container methods."""

    NO_DEFAULT = _NO_DEFAULT

    def _live(self, x, node):
        """Iterate as Python's ``for`` does: a list changed inside the loop is seen
        (``queue.append(v)`` in the body adds an iteration), and items a ``break`` leaves
        in a one-shot iterator (``zip``, a generator expression) stay there."""
        if isinstance(x, _Generated):
            while x:
                yield x.pop(0)
        elif type(x) is list:
            i = 0
            while i < len(x):
                i += 1
                yield x[i - 1]
        else:
            yield from self.iterate(x, node)

    def iterate(self, x, node) -> list:
        """The items of an iterable, as a list of interpreter values.  A one-shot
        iterator (``map``, ``zip``, a generator expression...) is used up, as in Python."""
        if isinstance(x, _Generated):
            items = list(x)
            x.clear()
            return items
        if isinstance(x, Var):
            value = self.sig(x)
            if hasattr(value, "shape"):
                n = len(value)  # shapes are part of the path
            else:
                self.b.loc = self.loc(node)
                if not isinstance(value, (list, tuple, str, bytes, range)):
                    # a dict, set, dict view, ...: iterating it is not x[0], x[1], ...
                    # (a dict yields its keys), so take its items as a list first
                    x = self.b.record(B.call_opaque, (builtins.list, x), hint="items")
                n = self.concrete(self.b.apply(B.length, (x,)), node)
            return [self.getitem(x, i, node) for i in range(n)]
        return list(x)  # a dict yields its keys, as in Python

    def call_container_method(self, func, args, kwargs, node):
        """``lst.index(key)``, ``TABLE.get(key)``, ``d.setdefault(k, v)``...: the method runs
        on real values now.  Keys and counts are taken as guarded facts (``concrete``);
        values stored stay traced (containers are structure); items are compared by the
        interpreter, each comparison guarded.  A container from outside the function (a
        global, a closure cell, an attribute, a default value) is never changed."""
        owner, name = func.__self__, func.__name__
        if name in _MUTATORS and self._is_outside(owner):
            raise UnsupportedSyntax(
                f".{name}() would change a {type(owner).__name__} that lives outside the "
                "function (a global, a closure cell, an attribute or a default value): "
                "ad_transform runs the function once per path, so this side effect would "
                "not happen on every call. Return the value instead, or pass the container "
                "in as an argument", self.loc(node))
        if name == "sort":
            owner[:] = self._sort(list(owner), kwargs.get("key"),
                                  self.concrete(kwargs.get("reverse", False), node), node)
            return None
        if name in ("index", "count", "remove", "__contains__") and isinstance(
                owner, (list, tuple)) and (_contains_var(owner) or _contains_var(args)):
            return self._seq_method(owner, name, args, node)
        if name in ("append", "__setitem__", "insert", "setdefault", "get", "pop"):
            keep = {"append": 0, "__setitem__": 1, "insert": 1, "setdefault": 1, "get": 1,
                    "pop": 1}[name]  # arguments from here on are values: kept traced
            args = [self._concrete_all(a, node) if i < keep else a for i, a in enumerate(args)]
        elif name == "extend":
            args = [self.iterate(args[0], node)]
        elif name == "update":
            args = [self._as_mapping(a, node) for a in args]
        else:
            args = [self._concrete_all(a, node) for a in args]
            kwargs = {k: self._concrete_all(v, node) for k, v in kwargs.items()}
        return func(*args, **kwargs)

    def _concrete_all(self, x, node):
        """``x`` with every traced value in it taken as a guarded fact."""
        if isinstance(x, Var):
            if isinstance(self.sig(x), np.ndarray):
                raise MissingRule("a traced array used as a key or searched for in a list",
                                  self.loc(node))
            return self.sig(self.concrete(x, node))
        if type(x) in (list, tuple):
            return type(x)(self._concrete_all(i, node) for i in x)
        if type(x) is dict:
            return {k: self._concrete_all(v, node) for k, v in x.items()}
        return x

    def _as_mapping(self, x, node):
        if isinstance(x, Var):  # a dict passed in: its keys decide the structure
            keys = [self._concrete_all(k, node) for k in self.iterate(x, node)]
            return {k: self.getitem(x, k, node) for k in keys}
        return x

    def _equal(self, a, b, node) -> bool:
        """``a == b`` as ``in``/``index`` decide it (identity first), guarded."""
        if a is b:
            return True
        if not (_contains_var(a) or _contains_var(b)):
            return a == b
        if type(a) in (list, tuple) and type(b) is type(a):
            return len(a) == len(b) and all(self._equal(x, y, node) for x, y in zip(a, b))
        return self.truth(self.compare(gast.Eq, a, b, node), node)

    def _less(self, a, b, node) -> bool:
        """``a < b`` (lexicographic for tuples and lists), each comparison guarded."""
        if not (_contains_var(a) or _contains_var(b)):
            return a < b
        if type(a) in (list, tuple) and type(b) is type(a):
            for x, y in zip(a, b):
                if not self._equal(x, y, node):
                    return self._less(x, y, node)
            return len(a) < len(b)
        return self.truth(self.compare(gast.Lt, a, b, node), node)

    def _seq_method(self, seq, name, args, node):
        x = args[0]
        lo, hi = (self._concrete_all(a, node) for a in (list(args[1:]) + [0, len(seq)])[:2])
        hits = (i for i in range(len(seq))[lo:hi] if self._equal(seq[i], x, node))
        if name == "count":
            return sum(1 for _ in hits)
        found = next(hits, None)
        if name == "__contains__":
            return found is not None
        if found is None:
            what = "list.remove(x): x" if name == "remove" else f"{self._shown(x)}"
            raise ValueError(f"{what} not in {type(seq).__name__}")
        if name == "remove":
            del seq[found]
            return None
        return found

    def _shown(self, x):
        return repr(self.sig(x)) if isinstance(x, Var) else repr(x)

    def _sort(self, items, key, reverse, node) -> list:
        """Python's stable sort of interpreter values: every comparison it makes is
        decided on the real values and guarded, so the permutation is part of the path
        and the derivative follows the items."""
        keys = items if key is None else [self.call(key, [i], {}, node) for i in items]
        if not any(_contains_var(k) for k in keys):
            order = sorted(range(len(items)), key=keys.__getitem__, reverse=reverse)
        else:
            lw = self

            class Key:
                __slots__ = ("i",)

                def __init__(self, i):
                    self.i = i

                def __lt__(self, other):
                    return lw._less(keys[self.i], keys[other.i], node)

            order = sorted(range(len(items)), key=Key, reverse=reverse)
        return [items[i] for i in order]

    def _minmax_key(self, items, key, is_max, default, node):
        """``max(items, key=f)`` / ``min``: the first best item, comparisons guarded."""
        if not items:
            if default is not _NO_DEFAULT:
                return default
            raise ValueError(f"{'max' if is_max else 'min'}() iterable argument is empty")
        best = items[0]
        best_key = best if key is None else self.call(key, [best], {}, node)
        for item in items[1:]:
            k = item if key is None else self.call(key, [item], {}, node)
            if self._less(best_key, k, node) if is_max else self._less(k, best_key, node):
                best, best_key = item, k
        return best

    def _inplace(self, opcls, cur, rhs, node):
        if opcls is gast.Add:
            cur += self.iterate(rhs, node) if isinstance(cur, list) else rhs
            return cur
        if opcls is gast.Mult:
            cur *= self.concrete(rhs, node)
            return cur
        if opcls is gast.BitOr and isinstance(cur, dict):
            cur |= rhs
            return cur
        return self.binop(opcls, cur, rhs, node)

    def e_Tuple(self, node, hint):
        return tuple(self._elements(node.elts))

    def e_List(self, node, hint):
        return self._elements(node.elts)

    def _elements(self, elts):
        out = []
        for e in elts:
            if isinstance(e, gast.Starred):
                out.extend(self.iterate(self.eval(e.value), e))
            else:
                out.append(self.eval(e))
        return out

    def e_Dict(self, node, hint):
        out = {}
        for k, v in zip(node.keys, node.values):
            if k is None:
                out.update(self.eval(v))
            else:
                out[self.concrete(self.eval(k), k)] = self.eval(v)
        return out

    def e_ListComp(self, node, hint):
        out = []
        saved = self.scope
        self.scope = Scope({}, saved, saved.globals, saved.cells, frozenset())
        try:
            self._comprehend(node, 0, out)
        finally:
            self.scope = saved
        return out

    def e_GeneratorExp(self, node, hint):
        # Evaluated eagerly, all at once; next() takes items from the front (see _i_next).
        return _Generated(self.e_ListComp(node, hint))

    def _comprehend(self, node, i, out):
        if i == len(node.generators):
            out.append(self.eval(node.elt))
            return
        gen = node.generators[i]
        for item in self.iterate(self.eval(gen.iter), gen.iter):
            self.assign(gen.target, item)
            if all(self.truth(self.eval(c), c) for c in gen.ifs):
                self._comprehend(node, i + 1, out)

    def e_Subscript(self, node, hint):
        obj = self.eval(node.value)
        return self.getitem(obj, self.index(node.slice), node, hint)

    def index(self, node):
        if isinstance(node, gast.Slice):
            return slice(*(None if p is None else self.eval(p)
                           for p in (node.lower, node.upper, node.step)))
        if isinstance(node, gast.Tuple):
            return tuple(self.index(e) for e in node.elts)
        return self.eval(node)

    def getitem(self, obj, idx, node, hint=None):
        if isinstance(obj, Var) or (isinstance(obj, np.ndarray) and _contains_var(idx)):
            idx = self.index_atom(self.array_index(obj, idx, node), node)
            self.b.loc = self.loc(node)
            return self.b.apply(B.getitem, (obj, idx), None, hint)
        return obj[self.concrete(idx, node)]

    def array_index(self, obj, idx, node):
        """An index into an array, as Python needs it; in a loop being rolled an int
        index stays traced (the result's signature does not depend on its value)."""
        if self.in_loop and loops.traced_index_ok(self, obj, idx):
            return idx
        return self.concrete(idx, node)

    def index_atom(self, idx, node):
        """An index tuple holding traced index arrays (``x[rows, cols]``, ``x[:, mask]``)
        becomes one traced value, built at run time."""
        if isinstance(idx, tuple) and _contains_var(idx):
            self.b.loc = self.loc(node)
            return self.b.apply(N.index_tuple, idx, None, "idx")
        return idx
