"""Structured parameters: nested containers of floats and arrays ("trees").

A *tree* is a ``list``, a ``tuple``, a ``namedtuple``, a ``dict`` (or
``OrderedDict``) or a dataclass instance whose items are trees or leaves.
:func:`structure` describes one as a :class:`TreeDef`: the container types,
dict keys in their order, lengths and field names, and for each leaf its
signature (type; an array's shape and dtype).  Two values take the same
compiled path only if their ``TreeDef`` s are equal, which the generated code
checks on every call (``_rt.same``), so a different structure gets its own
path, never a wrong one.

Leaves, as ``gradient`` sees them inside a ``wrt`` tree:

* floats, ints and real NumPy arrays (and NumPy scalars) are differentiated,
  with the same rules as a top-level argument: an int gets a float gradient;
* ``None``, ``bool``, ``str`` and ``bytes`` are *static*: flags and labels
  that are part of the structure (guarded by value) and get ``None`` in the
  gradient (JAX also puts ``None`` where the argument has ``None``; JAX and
  autograd refuse ints and strings, see docs/api.md);
* anything else (a set, a complex number, an object of another class) is a
  :class:`~ad_transform.errors.BadWrt` naming its place in the tree.

Guarantees: :meth:`TreeDef.unflatten` builds new containers every time (a
gradient the caller owns); a dataclass is rebuilt without running its
``__init__``/``__post_init__`` (a gradient is not a valid parameter set).
"""
from __future__ import annotations

import dataclasses
from collections import OrderedDict

import numpy as np

__all__ = ["TreeDef", "is_tree", "structure", "tree_flatten", "tree_unflatten",
           "tree_map", "STATIC"]

STATIC = (type(None), bool, str, bytes, np.bool_)


_NAMEDTUPLES: dict = {}  # type -> is it a namedtuple (checked once per class)


def _kind(x):
    t = type(x)
    if t is dict or t is OrderedDict:
        return "dict"
    if t is list:
        return "list"
    if t is tuple:
        return "tuple"
    if isinstance(x, tuple):
        known = _NAMEDTUPLES.get(t)
        if known is None:
            known = _NAMEDTUPLES[t] = isinstance(getattr(t, "_fields", None), tuple)
        return "namedtuple" if known else None
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return "dataclass"
    return None


def is_tree(x) -> bool:
    """``x`` is a container :func:`structure` walks into."""
    return _kind(x) is not None


def children(x):
    """``(kind, keys, values)`` of a container (keys: dict keys, field names, or indices)."""
    kind = _kind(x)
    if kind == "dict":
        return kind, tuple(x), tuple(x.values())
    if kind == "namedtuple":
        return kind, type(x)._fields, tuple(x)
    if kind == "dataclass":
        names = tuple(f.name for f in dataclasses.fields(x))
        return kind, names, tuple(getattr(x, n) for n in names)
    return kind, tuple(range(len(x))), tuple(x)


def leaf_signature(v):
    """What a path depends on of a leaf: its type, and an array's shape and dtype."""
    if type(v) is np.ndarray:
        return (np.ndarray, v.shape, v.dtype)
    return type(v)


def _leaf_node(v):
    t = type(v)
    if t is np.ndarray:
        return ("leaf", (np.ndarray, v.shape, v.dtype))
    if t is float or t is int:
        return ("leaf", t)
    if isinstance(v, STATIC):  # the type too: True and np.True_ differ, as do 1 and True
        return ("static", t, v)
    return ("leaf", t)


def _node(x, leaf, atoms=()):
    """The structure of ``x``; ``leaf(item)`` gives a leaf's node (an instance of
    ``atoms`` is a leaf, even a dataclass)."""
    t = type(x)
    if t is dict:  # the common cases first: this runs on every call of a derivative
        return ("dict", t, tuple(x), tuple([_node(v, leaf, atoms) for v in x.values()]))
    if t is list or t is tuple:
        return (t.__name__, t, len(x), tuple([_node(v, leaf, atoms) for v in x]))
    kind = _kind(x)
    if kind is None or (atoms and isinstance(x, atoms)):
        return leaf(x)
    kind, keys, values = children(x)
    return (kind, t, keys, tuple([_node(v, leaf, atoms) for v in values]))


class TreeDef:
    """The structure of a tree: containers, keys, leaf signatures and static leaves.

    Equal ``TreeDef`` s mean the same path.  The description is a nested tuple of
    kinds, types, keys, shapes, dtypes and static values with their types, so
    tuple equality is exact (a static ``True`` differs from ``np.True_``; a leaf
    and a static value differ by kind).  ``__name__`` names it in generated code.
    """

    __slots__ = ("node", "__name__")
    _same_by_eq = True  # runtime.same compares TreeDefs with ==

    def __init__(self, node, name="tree"):
        self.node = node
        self.__name__ = name

    def __eq__(self, other):
        return type(other) is TreeDef and self.node == other.node

    def __hash__(self):
        return hash(self.node)

    def __repr__(self):
        return f"TreeDef({_show(self.node)})"

    @property
    def num_leaves(self) -> int:
        return _count(self.node)

    def unflatten(self, *leaves, static=False):
        """A new tree of this structure holding ``leaves`` in order; static leaves
        become ``None`` (a gradient) or, with ``static=True``, their own value."""
        it = iter(leaves)
        out = _build(self.node, it, static)
        rest = next(it, _END)
        if rest is not _END:
            raise ValueError("more leaves than the structure holds")
        return out


_END = object()


def _count(node):
    if node[0] == "leaf":
        return 1
    if node[0] == "static":
        return 0
    return sum(_count(c) for c in node[3])


def _build(node, it, static):
    kind = node[0]
    if kind == "leaf":
        return next(it)
    if kind == "static":
        return node[2] if static else None
    _, t, keys, kids = node
    values = [_build(c, it, static) for c in kids]
    if kind == "list":
        return values
    if kind == "tuple":
        return tuple(values)
    if kind == "namedtuple":
        return t(*values)
    if kind == "dict":
        return t(zip(keys, values))
    obj = object.__new__(t)  # a dataclass: no __init__/__post_init__ for a gradient
    for name, v in zip(keys, values):
        object.__setattr__(obj, name, v)
    return obj


def _show(node, text=None):
    """``node`` as text; ``text()`` (if given) spells the next leaf."""
    kind = node[0]
    if kind == "leaf":
        sig = node[1]
        if text is not None:
            return text()
        return f"{sig[2]}{list(sig[1])}" if isinstance(sig, tuple) else \
            "*" if sig is None else sig.__name__
    if kind == "static":
        return repr(node[2])
    _, t, keys, kids = node
    items = [_show(c, text) for c in kids]
    if kind == "dict":
        return "{" + ", ".join(f"{k!r}: {v}" for k, v in zip(keys, items)) + "}"
    if kind == "list":
        return "[" + ", ".join(items) + "]"
    if kind == "tuple":
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    return f"{t.__name__}(" + ", ".join(f"{k}={v}" for k, v in zip(keys, items)) + ")"


_SCALAR_LEAVES = {float: ("leaf", float), int: ("leaf", int)}


def _fast(x):
    """``_node(x, _leaf_node)``, with the common cases inline (it runs on every call of a
    derivative whose wrt argument is a tree)."""
    t = type(x)
    if t is np.ndarray:
        return ("leaf", (np.ndarray, x.shape, x.dtype))
    found = _SCALAR_LEAVES.get(t)
    if found is not None:
        return found
    if t is dict:
        return ("dict", t, tuple(x), tuple([_fast(v) for v in x.values()]))
    if t is list or t is tuple:
        return (t.__name__, t, len(x), tuple([_fast(v) for v in x]))
    kind = _kind(x)
    if kind is None:
        return _leaf_node(x)
    kind, keys, values = children(x)
    return (kind, t, keys, tuple([_fast(v) for v in values]))


def structure(x, name="tree") -> TreeDef:
    """The :class:`TreeDef` of ``x`` (any value: a leaf is a tree of one leaf)."""
    return TreeDef(_fast(x), name)


def tree_flatten(x):
    """``(leaves, treedef)``: the non-static leaves of ``x`` in order (dict keys in their
    order, fields in definition order), and its structure."""
    leaves = []

    def leaf(v):
        node = _leaf_node(v)
        if node[0] == "leaf":
            leaves.append(v)
        return node

    return leaves, TreeDef(_node(x, leaf))


def tree_unflatten(treedef: TreeDef, leaves):
    """The tree of ``treedef`` holding ``leaves``; static leaves keep their values."""
    return treedef.unflatten(*leaves, static=True)


def unflatten(treedef: TreeDef, *leaves):
    """A gradient of structure ``treedef`` (static leaves are ``None``): what
    ``_tree.unflatten`` in generated code calls."""
    return treedef.unflatten(*leaves)


def rebuild(treedef: TreeDef, *leaves):
    """An auxiliary output of structure ``treedef``, built anew on every call."""
    return treedef.unflatten(*leaves, static=True)


def tree_map(fn, x, *rest):
    """``fn`` applied to every non-static leaf of ``x`` (and the leaves in the same
    places of the trees ``rest``: ``tree_map(lambda p, g: p - 0.1 * g, params, grad)``),
    in a new tree of ``x``'s structure (static leaves kept)."""
    leaves, treedef = tree_flatten(x)
    others = [tree_flatten(r)[0] for r in rest]
    if any(len(o) != len(leaves) for o in others):
        raise ValueError("tree_map: the trees have different numbers of leaves")
    return tree_unflatten(treedef, [fn(*vs) for vs in zip(leaves, *others)])


def paths(treedef: TreeDef):
    """For each non-static leaf, the path from the root: ``((kind, key), ...)``."""
    return _paths_of(treedef, "leaf")


def static_paths(treedef: TreeDef):
    """The paths of the static leaves (``None``, flags, labels)."""
    return _paths_of(treedef, "static")


def _paths_of(treedef: TreeDef, kind: str):
    """The paths from the root to the leaves of ``kind`` ("leaf" or "static"), in order."""
    out = []

    def walk(node, path):
        if node[0] == kind:
            out.append(path)
        elif node[0] not in ("leaf", "static"):
            for k, c in zip(_keys(node), node[3]):
                walk(c, path + ((node[0], k),))

    walk(treedef.node, ())
    return out


def _keys(node):
    keys = node[2]
    return range(keys) if type(keys) is int else keys  # a list or tuple: its length


def show_path(name: str, path) -> str:
    """``params['layers'][0].W``: a path as Python would spell it."""
    out = name
    for kind, key in path:
        out += f".{key}" if kind in ("namedtuple", "dataclass") else f"[{key!r}]"
    return out


def var_name(name: str, path) -> str:
    """A readable variable name for a leaf: ``params_layers_0_W``."""
    parts = [name]
    for _, key in path:
        s = str(key)
        parts.append(s if s.isidentifier() or s.isdigit() else "k")
    return "_".join(parts)


def flatten_with(x, value_of):
    """``(leaves, treedef)`` of a tree whose items may stand for values (the lowering's
    traced variables): ``value_of(item)`` is what classifies an item as a leaf or a static
    leaf, so the treedef is the one :func:`tree_flatten` gives for the values."""
    leaves = []

    def leaf(v):
        node = _leaf_node(value_of(v))
        if node[0] == "leaf":
            leaves.append(v)
        return node

    return leaves, TreeDef(_node(x, leaf))


ITEM = ("leaf", None)  # a leaf of a structure of traced items: no signature


def flatten_items(x, atoms=(), name="out"):
    """``(items, treedef)`` for a structure of traced items (a program's output): the
    containers walked as :func:`tree_flatten` walks them, and every other item (an
    instance of ``atoms``, a constant, ``None``) one leaf, with no signature
    (:data:`ITEM`).  ``treedef.unflatten(*items)`` rebuilds the structure."""
    items = []

    def leaf(v):
        items.append(v)
        return ITEM

    return items, TreeDef(_node(x, leaf, atoms), name)


def show_items(treedef: TreeDef, texts) -> str:
    """The structure ``treedef`` spelled with ``texts`` at its leaves: ``(d_x1, d_x2)``."""
    it = iter(texts)
    return _show(treedef.node, lambda: next(it))


def mismatch(like: TreeDef, given: TreeDef, name: str):
    """``None`` if ``given`` (a tangent, a cotangent, a vector) has the containers of
    ``like``: the same container types, keys in the same order and lengths, a leaf where
    ``like`` has a leaf (its shape is checked apart), and ``None`` or the same value where
    ``like`` has a static leaf.  Otherwise a sentence saying where they differ."""

    def walk(a, b, path):
        where = show_path(name, path)
        if a[0] == "leaf":
            return None if b[0] == "leaf" else f"{where} must be a number or an array, " \
                f"like the argument's leaf there; got {_show(b)}"
        if a[0] == "static":
            if b[0] == "static" and (b[2] is None or (b[1] is a[1] and b[2] == a[2])):
                return None
            return f"{where} must be None (or {a[2]!r}, as in the argument); got {_show(b)}"
        if b[0] != a[0] or b[1] is not a[1] or b[2] != a[2]:
            return f"{where} must be a {_show(a)}, with the argument's containers and keys; " \
                f"got {_show(b)}"
        for k, ca, cb in zip(_keys(a), a[3], b[3]):
            found = walk(ca, cb, path + ((a[0], k),))
            if found is not None:
                return found
        return None

    return walk(like.node, given.node, ())


def fields_of(x) -> tuple:
    """The field values of the dataclass instance ``x``, in definition order."""
    return tuple(getattr(x, f.name) for f in dataclasses.fields(x))
