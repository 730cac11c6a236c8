"""Transformations called on traced values inside a function being lowered.

``gradient`` wrappers nest by themselves: the lowering inlines their generated source
(:mod:`ad_transform.nested`).  ``jacobian``, ``hessian`` and ``hvp`` wrappers run
Python between compiled derivatives (binding arguments, stacking rows), which the
lowering cannot read; each carries ``__ad_inner__(lw, args, kwargs, node)``, which the
lowering calls instead (:meth:`ad_transform.lower.Lowerer.call`).  It lowers the
transformation as the calls of ``gradient`` wrappers it is made of, each inlined:

* ``jacobian(f, wrt)``: ``f`` once (for its output's shape), then row ``k`` is the
  gradient, with respect to ``wrt``, of ``<f(*args), e_k>`` (:func:`lower_jacobian`);
* ``hessian(f, wrt)``: row ``k`` is the Hessian-vector product with ``e_k``, the
  gradient of ``<gradient(f)(*args), e_k>`` (:func:`lower_hessian`);
* ``hvp(f, wrt)``: that gradient, once.

The rows are stacked and shaped as the wrapper shapes them (``out.shape + arg.shape``;
a float for a float).  So ``jacobian(hessian(f))``, ``hessian(hessian(f))`` (of a
float) and ``gradient(lambda x: np.sum(jacobian(g)(x)))`` are paths like any other:
every guard of every inlined derivative is a guard of the outer path.  A ``wrt``
argument or an output that is a tree is refused with a located error: call the
transformation outside the function being differentiated, or nest ``gradient`` s.
"""
from __future__ import annotations

import numpy as np

from .errors import UnsupportedSyntax
from .ir import Var
from .pytree import is_tree

__all__ = ["lower_jacobian", "lower_hessian", "attach"]


def attach(wrapper, hook):
    """Give ``wrapper`` its ``__ad_inner__`` ``hook``, marked as its own: a function that
    copies the attribute (``functools.wraps``) is not lowered as the transformation."""
    hook.owner = id(wrapper)
    wrapper.__ad_inner__ = hook
    return wrapper


def _shape(lw, x):
    return np.shape(lw.sig(x) if isinstance(x, Var) else x)


def _units(shape):
    """The unit vectors of ``shape``, each of that shape (1.0 for a float)."""
    if not shape:
        return [1.0]
    n = int(np.prod(shape, dtype=int))
    return list(np.eye(n).reshape((n,) + tuple(shape)))


def _stack(lw, parts, shape, node):
    """``np.stack(parts).reshape(shape)`` in the path; the one part for a float."""
    if not shape:
        return parts[0]
    stacked = lw.call(np.stack, [list(parts)], {}, node)
    return lw.call(np.reshape, [stacked, tuple(shape)], {}, node)


def _no_trees(lw, what, values, node):
    if any(is_tree(v) for v in values):
        raise UnsupportedSyntax(
            f"{what} of a tree, called on a differentiated value: call it outside the "
            "function being differentiated, or nest gradient()s", lw.loc(node))


def _blocks(lw, rows, shapes, row_shapes, single, node):
    """``rows[i][k]``: the gradient (one value, or one per ``wrt`` argument) for unit
    vector ``k`` of row block ``i``; block ``[i][j]`` has shape ``row_shapes[i] +
    shapes[j]``."""
    blocks = []
    for i, si in enumerate(row_shapes):
        line = []
        for j, sj in enumerate(shapes):
            parts = [r if single else r[j] for r in rows[i]]
            line.append(_stack(lw, parts, tuple(si) + tuple(sj), node))
        blocks.append(tuple(line))
    return blocks


def lower_jacobian(lw, fun, sig, params, wrt_idx, single, inner_grad, args, kwargs, node):
    """``jacobian(fun, wrt)(*args, **kwargs)`` in the path being lowered.
    ``inner_grad()`` is the gradient wrapper of ``<fun(*params), v>`` (made once)."""
    ba = sig.bind(*args, **kwargs)
    ba.apply_defaults()
    vals = [ba.arguments[p.name] for p in params]
    _no_trees(lw, "jacobian", [vals[i] for i in wrt_idx], node)
    out = lw.call(fun, list(ba.args), dict(ba.kwargs), node)
    if is_tree(out) or not isinstance(out, Var) and not isinstance(
            out, (float, int, np.ndarray)):
        raise UnsupportedSyntax(
            "jacobian of a function returning a tree (or no number), called on a "
            "differentiated value: call it outside the function being differentiated",
            lw.loc(node))
    out_shape = _shape(lw, out)
    dg = inner_grad()
    rows = [lw.call(dg, [*vals, e], {}, node) for e in _units(out_shape)]
    shapes = [_shape(lw, vals[i]) for i in wrt_idx]
    (line,) = _blocks(lw, [rows], shapes, [out_shape], single, node)
    return line[0] if single else line


def lower_hessian(lw, sig, params, wrt_idx, single, dh, args, kwargs, node):
    """``hessian(fun, wrt)(*args, **kwargs)`` in the path being lowered: ``dh`` is the
    Hessian-vector product's gradient wrapper, called with one value per parameter and
    then ``v``."""
    ba = sig.bind(*args, **kwargs)
    ba.apply_defaults()
    vals = [ba.arguments[p.name] for p in params]
    _no_trees(lw, "hessian", [vals[i] for i in wrt_idx], node)
    shapes = [_shape(lw, vals[i]) for i in wrt_idx]
    zeros = [np.zeros(s) if s else 0.0 for s in shapes]
    rows = []
    for i, s in enumerate(shapes):
        rows.append([lw.call(dh, [*vals, e if single else tuple(
            e if j == i else zeros[j] for j in range(len(shapes)))], {}, node)
            for e in _units(s)])
    blocks = _blocks(lw, rows, shapes, shapes, single, node)
    return blocks[0][0] if single else tuple(blocks)
