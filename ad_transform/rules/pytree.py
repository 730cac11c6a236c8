"""Primitives for structured ``wrt`` arguments and auxiliary outputs (see ``pytree.py``).

A ``wrt`` argument that is a tree is lowered by :func:`lower_wrt_tree`:

* ``params_structure = _tree.structure(params)`` and a guard that it equals
  ``params_tree``, the structure of the first call (containers, keys, leaf types and shapes,
  static leaves by value): a different structure takes another path;
* one read per leaf (``params_W = params['W']``, ``p_W = p.W``), each leaf a
  differentiated input of the program; the function itself sees a new
  container of the same type holding the traced leaves;
* the reverse pass returns ``_tree.unflatten(params_tree, d_params_W, ...)``
  (:func:`regroup`): the gradient, a new tree of the same structure.

``_tree.structure`` and ``_tree.unflatten`` also have lowerings, so the
generated code can itself be lowered again (a derivative of a derivative).
"""
from __future__ import annotations

import dataclasses
import operator

import numpy as np

from .. import pytree as T
from ..errors import BadWrt, UnsupportedSyntax
from ..ir import Const, Var
from . import builtins as B
from .core import defprim, deflowering, defzero, value_of

__all__ = ["structure", "unflatten", "lower_wrt_tree", "read_leaves", "guard_tree", "regroup",
           "build_aux"]

structure = defzero(defprim("tree.structure", T.structure, ("call", "_tree", "structure"),
                            hint="tree", root=T))
unflatten = defprim("tree.unflatten", T.unflatten, ("call", "_tree", "unflatten"),
                    hint="tree", root=T)
rebuild = defprim("tree.rebuild", T.rebuild, ("call", "_tree", "rebuild"), hint="aux", root=T)

# reads of a tree's leaves: not ``B.getitem`` and not opaque, so no guard follows them
# (their signatures are in the structure guard)
_item = defzero(defprim("tree_item", operator.getitem, ("getitem",), hint="leaf"))
_ATTRS: dict = {}


def _attr(name):
    if name not in _ATTRS:
        _ATTRS[name] = defzero(defprim(f"tree_attr_{name}", operator.attrgetter(name),
                                       ("getattr", name), hint=name))
    return _ATTRS[name]


def _check_leaf(pname, path, value, loc):
    where = T.show_path(pname, path)
    if isinstance(value, complex) or getattr(getattr(value, "dtype", None), "kind", "") == "c":
        raise BadWrt(f"{where} in argument {pname!r} is complex; ad_transform "
                     "differentiates real inputs only", loc)
    dtype = getattr(value, "dtype", None)
    if dtype is not None and hasattr(value, "shape"):
        if dtype.kind not in "fiu":
            raise BadWrt(f"{where} in argument {pname!r} is an array of {dtype}; an array "
                         "in a wrt argument must hold floats or ints", loc)
        return
    if not (isinstance(value, (int, float)) and not isinstance(value, bool)):
        raise BadWrt(f"{where} in argument {pname!r} is a {type(value).__name__}; the leaves "
                     "of a wrt argument must be floats, ints or NumPy arrays (None, bools and "
                     "strings are kept as they are and get None in the gradient)", loc)


def lower_wrt_tree(lw, pname, var, value, loc):
    """Lower the ``wrt`` argument ``var`` (concrete ``value``, a tree): guard its
    structure, read its leaves, mark them differentiated.  Returns ``(treedef, leaves,
    rebuilt)``; ``rebuilt`` is what the function's parameter is bound to."""
    td = T.structure(value, f"{pname}_tree")
    leaves_now, _ = T.tree_flatten(value)
    leaf_paths = T.paths(td)
    for path, leaf in zip(leaf_paths, leaves_now):
        _check_leaf(pname, path, leaf, loc)
    b = lw.b
    b.loc = loc
    spec = b.record(structure, (var,), hint=f"{pname}_structure")
    lw._decide(B.guard_eq, (spec,), td, None)
    b.loc = loc
    leaves = read_leaves(b, pname, var, leaf_paths)
    b.active.update(leaves)
    rebuilt = td.unflatten(*leaves, static=True)
    stack = [rebuilt]
    while stack:  # the lowering reads static fields off these directly (see e_Attribute)
        obj = stack.pop()
        if T.is_tree(obj):
            lw.tree_objects.add(id(obj))
            stack.extend(T.children(obj)[2])
    return td, leaves, rebuilt


def read_leaves(b, pname, var, leaf_paths):
    """One read per leaf of the tree ``var`` (``params_W = params['W']``, ``p_W = p.W``),
    in ``leaf_paths`` order; the reads of a shared container are made once."""
    leaves = []
    for path in leaf_paths:
        cur = var
        for i, (kind, key) in enumerate(path):
            hint = T.var_name(pname, path[:i + 1])
            if kind in ("namedtuple", "dataclass"):
                cur = b.apply(_attr(key), (cur,), None, hint)
            else:
                cur = b.apply(_item, (cur, key), None, hint)
        leaves.append(cur)
    return leaves


def guard_tree(b, var, name, value, index):
    """``name_structure = _tree.structure(var)`` and a guard (decision ``index``) that it
    equals the structure of ``value``, named ``name_tree``; returns that structure."""
    td = T.structure(value, f"{name}_tree")
    spec = b.record(structure, (var,), hint=f"{name}_structure")
    b.guard(B.guard_eq, (spec,), {"expect": td, "index": index})
    return td


def regroup(b, prog, wrt, grads_flat):
    """The gradients of the ``wrt`` inputs, leaf gradients of a tree argument put back in
    its structure (``_tree.unflatten``); ``grads_flat`` are in :func:`wrt_vars` order."""
    out, k = [], 0
    for i in wrt:
        tree = prog.trees.get(i) if prog.trees else None
        if tree is None:
            out.append(grads_flat[k])
            k += 1
            continue
        td, leaves = tree
        mine = grads_flat[k:k + len(leaves)]
        k += len(leaves)
        out.append(b.record(unflatten, (Const(td), *mine), hint="d_" + prog.inputs[i].name))
    return out


def wrt_vars(prog, wrt):
    """The differentiated variables: each ``wrt`` input, or the leaves of a tree input."""
    trees = prog.trees or {}
    return [v for i in wrt for v in (trees[i][1] if i in trees else [prog.inputs[i]])]


def build_aux(b, aux, loc, owned=()):
    """An atom for the auxiliary output ``aux`` (an interpreter value: atoms, constants,
    containers of them) built by the generated code on every call: containers are
    new each time (``_tree.rebuild``), a constant array is copied, and a traced array
    that is also a gradient (``owned``) is copied so the two stay apart."""
    from . import numpy as N
    b.loc = loc
    leaves = []

    def leaf(v):
        if isinstance(v, Var):
            if any(v is o for o in owned) and isinstance(b.value(v), np.ndarray):
                v = b.record(N.copy, (v,), hint="aux_item")
        elif isinstance(v, np.ndarray):
            v = b.record(N.copy, (v,), hint="aux_item")
        elif type(v).__name__ in ("Closure", "_Partial", "VarMethod", "_Generated"):
            raise UnsupportedSyntax(f"the auxiliary output holds a {type(v).__name__.strip('_')} made "
                          "inside the function, which the derivative cannot return; return "
                          "plain values", loc)
        leaves.append(v)
        return ("leaf", None)

    if not T.is_tree(aux):
        leaf(aux)
        return leaves[0]
    td = T.TreeDef(T._node(aux, leaf), "aux_tree")
    b.loc = loc
    return b.record(rebuild, (Const(td), *leaves), hint="aux")


# -- lowerings: the generated code, lowered again (derivatives of derivatives) -----------

@deflowering(T.structure)
def _lower_structure(x, name="tree"):
    if isinstance(x, Var):  # a tree that is not differentiated here (an input as it is):
        return NotImplemented  # its structure is computed by the code, and guarded

    def leaf(v):
        if isinstance(v, Var):
            v = value_of(v)  # its type, shape and dtype: fixed by the path's guards
            if T.is_tree(v):
                raise UnsupportedSyntax("a derivative made by ad_transform was called on a "
                                        "tree holding a container that is not "
                                        "differentiated; pass the containers apart", None)
        return T._leaf_node(v)

    return T.TreeDef(T._node(x, leaf), name)


@deflowering(T.unflatten)
def _lower_unflatten(td, *leaves):
    return td.unflatten(*leaves)


@deflowering(T.rebuild)
def _lower_rebuild(td, *leaves):
    return td.unflatten(*leaves, static=True)


@deflowering(T.fields_of, interpreter=True)
def _lower_fields_of(lw, args, kwargs, node, hint):
    """A dataclass's fields: read off the object the lowering holds, or, for a traced
    dataclass (an input that is not differentiated), one guarded attribute read each
    (its class is fixed by the path's type guards)."""
    (x,) = args
    if isinstance(x, Var):
        return tuple(lw.var_attr(x, f.name, node) for f in dataclasses.fields(lw.sig(x)))
    return T.fields_of(x)
