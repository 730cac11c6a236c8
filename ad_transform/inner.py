"""Transformations called on traced values inside a function being lowered.

``gradient`` wrappers nest by themselves: the lowering inlines their generated source
(:mod:`ad_transform.nested`).  ``jacobian``, ``hessian``, ``hvp``, ``jvp``, ``vjp`` and
``forward_derivative`` run Python between compiled derivatives (binding arguments,
stacking rows), which the lowering cannot read; each carries ``__ad_inner__(lw, args, kwargs, node)``, which the
lowering calls instead (:meth:`ad_transform.lower.Lowerer.call`).  It lowers the
transformation as the calls of ``gradient`` wrappers it is made of, each inlined
(forward mode too: correct, though each output element costs one reverse sweep):

* ``jacobian(f, wrt)``: ``f`` once (for its output's shape), then row ``k`` is the
  gradient, with respect to ``wrt``, of ``<f(*args), e_k>`` (:func:`lower_jacobian`);
* ``hessian(f, wrt)``: row ``k`` is the Hessian-vector product with ``e_k``, the
  gradient of ``<gradient(f)(*args), e_k>`` (:func:`lower_hessian`);
* ``hvp(f, wrt)``: that gradient, once;
* ``jvp(f, primals, tangents)`` and ``forward_derivative(f)``: ``f`` and its Jacobian
  (as above) contracted with the tangents (:func:`lower_jvp`);
* ``vjp(f, *args)``: ``f`` and a pullback that, called in the path, is the gradient of
  ``<f(*args), cotangent>`` (:func:`lower_vjp`).

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

__all__ = ["lower_jacobian", "lower_hessian", "lower_jvp", "lower_vjp", "attach"]


def attach(wrapper, hook, always=False):
    """Give ``wrapper`` its ``__ad_inner__`` ``hook``, marked as its own: a function that
    copies the attribute (``functools.wraps``) is not lowered as the transformation.
    ``always``: also when called on constants only (a pullback made in the path)."""
    hook.owner = id(wrapper)
    hook.always = always
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


def lower_jacobian(lw, fun, sig, params, wrt_idx, single, inner_grad, args, kwargs, node,
                   with_value=False):
    """``jacobian(fun, wrt)(*args, **kwargs)`` in the path being lowered (with
    ``with_value``: ``(fun(*args), jacobian)``).  ``inner_grad()`` is the gradient
    wrapper of ``<fun(*params), v>`` (made once)."""
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
    jac = line[0] if single else line
    return (out, jac) if with_value else jac


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


def lower_jvp(lw, fun, primals, tangents, node):
    """``jvp(fun, primals, tangents)`` in the path: ``fun``'s Jacobian with respect to the
    arguments that have a tangent (reverse rows, :func:`lower_jacobian`), contracted
    with the tangents."""
    from .rules import builtins as B
    from .transforms import jacobian
    if not hasattr(fun, "__code__"):
        raise UnsupportedSyntax(f"jvp of {fun!r}, called on a differentiated value: jvp "
                                "there takes a Python function (wrap the call in one)",
                                lw.loc(node))
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"jvp got {len(primals)} primals and {len(tangents)} tangents")
    wrt = tuple(i for i, t in enumerate(tangents) if t is not None)
    _no_trees(lw, "jvp", [primals[i] for i in wrt] + [tangents[i] for i in wrt], node)
    jac = jacobian(fun, wrt=wrt)
    value, blocks = jac.__ad_inner__.lower(lw, list(primals), {}, node, with_value=True)
    out_shape = _shape(lw, value)
    lw.b.loc = lw.loc(node)
    tangent = None
    for J, i in zip(blocks, wrt):
        t = tangents[i]
        nd = len(_shape(lw, t))
        if nd == 0:
            part = lw.b.apply(B.mul, (J, t))
        elif not out_shape:
            part = lw.call(np.sum, [lw.b.apply(B.mul, (J, t))], {}, node)
        else:
            part = lw.call(np.tensordot, [J, t], {"axes": nd}, node)
        tangent = part if tangent is None else lw.b.apply(B.add, (tangent, part))
    return value, tangent


def lower_vjp(lw, fun, args, node):
    """``vjp(fun, *args)`` in the path: ``fun(*args)`` and a pullback that, called in the
    path, is the gradient of ``<fun(*args), cotangent>`` with respect to the arguments
    that are numbers or arrays (None for the others), inlined."""
    from .transforms import jacobian
    from .transforms import _is_number  # the arguments vjp differentiates outside too
    wrt = tuple(i for i, a in enumerate(args)
                if _is_number(lw.sig(a) if isinstance(a, Var) else a))
    _no_trees(lw, "vjp", args, node)
    value = lw.call(fun, list(args), {}, node)
    if not isinstance(value, (Var, float, int, np.ndarray)):
        raise UnsupportedSyntax("vjp of a function returning a tree, called on a "
                                "differentiated value: call it outside the function being "
                                "differentiated", lw.loc(node))
    dg = jacobian(fun, wrt=wrt).__ad_inner__.inner_grad() if wrt else None

    def pullback(cotangent):
        raise RuntimeError("a pullback made while ad_transform lowered a function is "
                           "called only inside that function")

    def pull(lw, cargs, ckwargs, cnode):
        (ct,) = cargs
        grads = lw.call(dg, [*args, ct], {}, cnode) if dg is not None else ()
        out = [None] * len(args)
        for i, g in zip(wrt, grads):  # a tuple: wrt is a tuple
            out[i] = g
        return tuple(out)

    return value, attach(pullback, pull, always=True)
