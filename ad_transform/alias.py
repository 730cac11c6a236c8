"""NumPy write aliasing: when is a functional update faithful to NumPy's in-place write?

The path updates arrays functionally (``y[i] = v`` makes a new SSA value and rebinds
``y``; so does ``y += x``).  NumPy writes into memory, which every other binding sharing
it sees.  Guarantees: an item assignment or in-place operator is lowered only when no
other live binding (in this frame, a caller's frame, a list) would see the write, when
the array is not (a view of) an input or an array read from outside the function (the
caller's array would change), and, for ``+=``, when the result keeps the array's shape
and dtype; otherwise it raises :class:`~ad_transform.errors.UnsupportedSyntax`, located.
Which bindings share memory is read through ``Lowerer._memory`` only.
"""
from __future__ import annotations

import gast
import numpy as np

from . import loops
from .errors import UnsupportedSyntax
from .ir import Var
from . import runtime
from .rules import numpy as N
from .values import _contains_var

_SYMBOLS = {gast.Add: "+", gast.Sub: "-", gast.Mult: "*", gast.Div: "/", gast.FloorDiv: "//",
            gast.Mod: "%", gast.Pow: "**", gast.MatMult: "@", gast.BitAnd: "&",
            gast.BitOr: "|", gast.BitXor: "^", gast.LShift: "<<", gast.RShift: ">>"}


def _sees_write(arr, idx, view) -> bool:
    """Would ``view`` (sharing memory with ``arr``) change under ``arr[idx] = ...``?

    Found by writing 0, then 1, into ``arr`` (restored after): every element written
    differs from its old value in one of the two.  An index computed at run time (an
    index array) may write elsewhere next time: any shared memory counts then.
    """
    if _contains_var(idx) or not arr.flags.writeable:
        return True
    saved, before = arr.copy(), view.tobytes()
    try:
        for fill in (0, 1):
            arr[idx] = fill
            if view.tobytes() != before:
                return True
        return False
    finally:
        arr[...] = saved


class WriteAliasing:
    """The :class:`~ad_transform.lower.Lowerer`'s array writes and their aliasing checks."""

    def setitem(self, target, obj, idx, value):
        """``obj[idx] = value`` for the Subscript ``target``.

        Lists and dicts are structure and change in place.  A traced array is
        updated functionally (a new SSA value) and the name that held it is
        rebound, which is only faithful when no other name shares the array.
        """
        if isinstance(obj, (list, dict)):
            if self._is_outside(obj):
                raise UnsupportedSyntax(
                    f"item assignment would change a {type(obj).__name__} that lives outside "
                    "the function (a global, a closure cell, an attribute or a default "
                    "value): ad_transform runs the function once per path, so this side "
                    "effect would not happen on every call. Return the value instead, or "
                    "pass the container in as an argument", self.loc(target))
            obj[self.concrete(idx, target)] = value
            return
        if not isinstance(self.sig(obj), np.ndarray):
            what = type(self.sig(obj)).__name__
            raise UnsupportedSyntax(f"item assignment to a {what} value", self.loc(target))
        if isinstance(obj, Var) and obj in self.inputs:
            raise UnsupportedSyntax("writing into an input array (the caller's array would "
                                    "change); copy it first, e.g. y = x.copy()", self.loc(target))
        holder = target.value
        if not isinstance(holder, gast.Name):
            others = []
        elif self._outside_memory(obj):
            raise UnsupportedSyntax("writing into a view of an input array or into an array "
                                    "read from a global or closure (the caller's array would "
                                    "change); copy it first, e.g. y = x.copy()", self.loc(target))
        else:
            traced = self.in_loop and loops.traced_index_ok(self, obj, idx)  # whole array
            others = self._sharers(obj, Ellipsis if traced else self.concrete(idx, target),
                                   (self.scope, holder.id))
        if others or not isinstance(holder, gast.Name):
            raise UnsupportedSyntax(
                "item assignment to an array that is also bound to "
                f"{', '.join(others) or 'another expression'}; ad_transform updates arrays "
                "functionally, so write through one plain name", self.loc(target))
        self.b.loc = self.loc(target)
        idx = self.index_atom(self.array_index(obj, idx, target), target)
        new = self.b.apply(N.setitem, (obj, idx, value), None, hint=holder.id)
        self.scope.locals[holder.id] = new

    def _inplace_array(self, opcls, cur, rhs, target, node):
        """``y += x`` on an array: NumPy writes into ``y``; the path makes a new array and
        rebinds ``y``, which is faithful only when nothing else sees ``y``'s memory and
        the result keeps ``y``'s shape and dtype.  Otherwise refused, located."""
        op = _SYMBOLS.get(opcls, opcls.__name__)
        if (isinstance(cur, Var) and cur in self.inputs) or self._outside_memory(cur):
            raise UnsupportedSyntax(
                f"in-place '{op}=' on an input array or on an array read from a global or a "
                f"closure (the caller's array would change); write {target.id} = "
                f"{target.id} ... instead", self.loc(node))
        others = self._sharers(cur, Ellipsis, (self.scope, target.id))
        if others:
            raise UnsupportedSyntax(
                f"in-place '{op}=' on an array also bound to {', '.join(others)}; NumPy "
                "would change it there too, ad_transform updates arrays functionally: write "
                f"{target.id} = {target.id} ... (a new array) instead", self.loc(node))
        new = self.binop(opcls, cur, rhs, node, target.id)
        before, after = runtime.signature(self.sig(cur)), runtime.signature(self.sig(new))
        if before != after:
            raise UnsupportedSyntax(
                f"in-place '{op}=' that would change the array's shape or dtype ({before[1]} "
                f"{before[2]} -> {after[1]} {after[2]}): NumPy casts or raises here; write "
                f"{target.id} = {target.id} ... (a new array) instead", self.loc(node))
        return new

    def _outside_memory(self, obj) -> bool:
        """``obj`` is (a view of) an input array or an array read from a global or a cell."""
        arr = self._memory(obj)
        outside = [self._memory(v) for v in self.inputs]
        outside += [self._memory(v) for v in self.loads.values() if isinstance(v, Var)]
        return type(arr) is np.ndarray and any(
            isinstance(o, np.ndarray) and np.shares_memory(arr, o) for o in outside)

    def _sharers(self, obj, idx, skip) -> list:
        """Names of live bindings that would see ``obj[idx] = ...`` in NumPy but not in the
        functional update: ``obj`` itself under another name (in this frame, a caller's
        frame or a list), and views into the elements written (``row = A[1]`` for
        ``A[1, 2] = v``; ``A`` for ``row[2] = v``).  ``skip`` is ``(scope, name)``, the
        binding that is rebound to the update."""
        arr = self._memory(obj)
        scopes, seen = [], set()
        for s in [self.scope, *self.frames]:
            while s is not None and id(s) not in seen:
                seen.add(id(s))
                scopes.append(s)
                s = s.parent
        found, visited = [], set()

        def visit(name, v):
            if isinstance(v, (list, tuple, dict)):
                if id(v) not in visited:
                    visited.add(id(v))
                    for item in (v.values() if isinstance(v, dict) else v):
                        visit(name, item)
            elif v is obj:
                found.append(name)
            else:
                val = self._memory(v) if isinstance(v, Var) else v
                if type(val) is np.ndarray and type(arr) is np.ndarray and \
                        np.shares_memory(val, arr) and _sees_write(arr, idx, val):
                    found.append(name)

        for s in scopes:
            for k, v in s.locals.items():
                if s is not skip[0] or k != skip[1]:
                    visit(k, v)
        return list(dict.fromkeys(found))
