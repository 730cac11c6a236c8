"""Program -> Program with adjoint equations, in reverse order.

Guarantees of :func:`reverse`: the result holds the primal equations, then
the adjoint equations (``phase == "adjoint"``), produced by one loop over the
primal equations in reverse; the adjoint of a variable used several times is
the sum of its contributions; only equations on a path from a ``wrt`` input
to the output get adjoints; every adjoint has its primal's shape, or a
smaller one that broadcasts to it (a reduction's adjoint, broadcast only where
a consumer needs the full shape), and broadcast contributions are summed back;
each gradient has its input's shape; a ``wrt`` input the output does not
depend on gets a zero gradient.  Then :func:`prune` drops every equation whose
result is never used (guards, opaque calls and primal operations that may
raise stay).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from . import runtime
from .errors import ADError, MissingRule
from .builder import Builder, _cse_key
from .branches import prune_cond, reverse_cond
from .ir import COND, LOOP, Const, Hint, Program, Var, _raw, flat_outputs, output_vars
from .loops_reverse import _fit, droppable, propagate, reverse_loop
from .rules import builtins as B
from .rules import numpy as N
from .rules import numpy_kernels as K
from .rules import pytree as T

__all__ = ["reverse", "prune"]


def _active_set(prog: Program, wrt_vars) -> set:
    active = set(wrt_vars)
    propagate(prog.eqns, active)  # loops_reverse.py: loop equations too
    return active


def reverse(prog: Program, values: dict, wrt: tuple, single: bool,
            with_value: bool, seeds: tuple | None = None) -> tuple[Program, dict]:
    """Append the adjoint of ``prog`` with respect to inputs ``wrt`` (indices).

    ``values`` are the concrete values of ``prog``'s variables (from
    :func:`~ad_transform.lower.lower`).  The result returns ``grad``
    (``single``) or a tuple of gradients, preceded by the primal value when
    ``with_value``; it comes with the values of its variables (a new dict).
    ``seeds`` (for a vector-Jacobian product) pairs each output variable with
    the variable holding its cotangent, which the caller makes an input (a
    variable output twice gets the sum); by default the one output is seeded
    with 1.0.
    """
    b = Builder(prog.namer, max_eqns=math.inf)  # max_eqns bounds the primal path only
    b.values = dict(values)
    b.eqns = list(prog.eqns)
    b.phase = "adjoint"
    for e in prog.eqns:  # adjoints reuse what the primal computed (cos(x) for sin's rule)
        key = None if e.out is None or e.prim is B.call_opaque else _cse_key(
            e.prim, e.ins, dict(e.params))
        if key is not None:
            b.seen.setdefault(key, e.out)
    wrt_vars = T.wrt_vars(prog, wrt)  # a tree argument: its leaves
    active = _active_set(prog, wrt_vars)
    (out,) = prog.outputs if seeds is None else (None,)  # one number, unless seeded
    adj: dict = {}
    owned: dict = {}  # adjoint buffer -> the one variable whose adjoint it is (see _accumulate)
    record = []  # (adjoint, primal, exact): what ir.verify checks
    with b:
        if seeds is not None:
            for y, ct in seeds:
                if y in active:
                    adj[y] = ct if y not in adj else b.apply(B.add, (adj[y], ct))
        elif isinstance(out, Var) and out in active:
            adj[out] = _seed(b.value(out))
        leaves = set(wrt_vars) - set(prog.inputs)
        for e in reversed(prog.eqns):
            if e.out is not None and e.out in leaves:
                continue  # (a tree's leaf keeps its adjoint: it is a gradient)
            backprop(b, e, adj, active, record, owned)
        grads = []
        for x in wrt_vars:
            g = adj.get(x)
            if g is None:
                g = _zero_like(b, x)
            elif isinstance(b.value(x), (int, float)) and type(b.value(g)) is not float:
                g = b.apply(B.to_float, (g,), hint=_dname(x))  # a float for a float or int
            elif isinstance(b.value(x), np.ndarray):
                g = _owned_grad(b, g, x, prog, [b.value(t) for t in grads])
            grads.append(g)
            record.append((g, x, True))
        grads = T.regroup(b, prog, wrt, grads)
        if with_value and isinstance(_raw(out), np.ndarray):  # a constant of the code:
            out = b.record(N.copy, (_raw(out),), hint="value")  # each call gets its own
    ret = grads[0] if single else tuple(grads)
    outputs, out_tree = flat_outputs((out, ret) if with_value else ret)
    result = dataclasses.replace(
        prog, eqns=b.eqns, outputs=outputs, out_tree=out_tree,
        adjoints=[(g, x, exact) for g, x, exact in record
                  if isinstance(g, Var) or _shape(g)])  # (a constant number: not checked)
    return result, b.values


def backprop(b: Builder, e, adj: dict, active: set, record: list, owned: dict) -> None:
    """The adjoint of one equation: its inputs' contributions added into ``adj``
    (a rolled loop's adjoint is a loop: :func:`ad_transform.loops_reverse.reverse_loop`)."""
    if e.prim is LOOP:
        reverse_loop(b, e, adj, active, owned)
        return
    if e.prim is COND:  # a merged if: an if on the same test (branches.py)
        reverse_cond(b, e, adj, active, record, owned, backprop, _zero_like, _fit, _dname)
        return
    if e.out is None or e.out not in adj:
        return
    g = adj.pop(e.out)
    b.loc = e.loc
    g = _spread(b, e, g, active)
    params = dict(e.params) if e.params else {}
    ins = [x.value if isinstance(x, Const) else x for x in e.ins]  # (_raw of each)
    for i, x in enumerate(e.ins):
        if not (isinstance(x, Var) and x in active):
            continue
        rule = e.prim.vjp(i)
        if rule is None:
            continue
        mark = len(b.eqns)
        contrib = _apply_rule(b, e, rule, g, ins, params, x)
        if contrib is None:
            continue
        _accumulate(b, adj, x, contrib, mark, owned)
        record.append((adj[x], x, False))


def _apply_rule(b: Builder, e, rule, g, ins, params, x):
    """One input's contribution, brought to its shape; a rule that fails (a bare
    ``TypeError`` from arguments it does not know, a NumPy error) becomes a
    :class:`MissingRule` at the user's line, naming the operation."""
    try:
        contrib = rule(g, e.out, *ins, **params)
        return None if contrib is None else _match_shape(b, contrib, b.value(x))
    except (ADError, Warning):  # located already; a warning the user made an error
        raise
    except Exception as exc:
        raise MissingRule(f"the derivative of {_describe(e.prim)} failed for these arguments "
                          f"({type(exc).__name__}: {exc}); rewrite the call with operations "
                          "docs/numpy.md lists as differentiable", e.loc) from exc


def _describe(prim) -> str:
    form = prim.form
    if form[0] == "call":
        return ".".join(form[1:]) + "(...)"
    if form[0] == "method":
        return f".{form[1]}(...)"
    if form[0] == "binop":
        return f"the operator {form[1]}"
    return prim.name


def _seed(value):
    if np.ndim(value):  # a plain array: rules compute with it (``g * 2.0``) like with 1.0
        return np.ones(np.shape(value))
    return 1.0


def _zero_like(b: Builder, x: Var):
    value = b.value(x)
    if isinstance(value, np.ndarray):
        return b.record(N.zeros_like, (x,), {"dtype": np.float64} if value.dtype.kind != "f"
                      else None, hint=_dname(x))
    return 0.0


def _shape(value) -> tuple:
    """``np.shape(value)``, without converting a Python number to an array first."""
    t = type(value)
    if t is float or t is int or t is bool:
        return ()
    if t is np.ndarray:
        return value.shape
    return np.shape(value)


def _lazy(gshape, shape) -> bool:
    """``gshape`` is smaller than ``shape`` and broadcasts to it."""
    if gshape == shape:
        return False
    try:
        return gshape != shape and np.broadcast_shapes(gshape, shape) == shape
    except ValueError:
        return False


def _spread(b: Builder, e, g, active):
    """Broadcast an adjoint smaller than its array up to the array's shape, where needed.

    An adjoint may stand for its broadcast ("this value along the reduced
    axes": a reduction's adjoint is one).  Elementwise operations whose active
    inputs all have the output's shape consume it as it is, which NumPy
    broadcasting makes free; anything else gets a broadcast view.
    """
    out_shape = _shape(b.value(e.out))
    if not _lazy(_shape(b.value(g)), out_shape):
        return g
    if e.prim.elementwise and all(_shape(b.value(x)) == out_shape for x in e.ins
                                  if isinstance(x, Var) and x in active):
        return g
    return b.apply(N.fit_shape, (g, out_shape))


def _match_shape(b: Builder, contrib, target):
    """Sum a broadcast contribution back to its input's shape (NumPy's rules, aligned
    from the right: :func:`ad_transform.runtime.sum_axes`), where the shapes differ.

    A contribution that then broadcasts to its input stays so (see
    :func:`_spread`).  The sums are emitted as plain ``x.sum(...)`` calls over
    axes known now.
    """
    cshape, tshape = _shape(b.value(contrib)), _shape(target)
    if cshape == tshape or _lazy(cshape, tshape):
        return contrib
    if not tshape:
        return b.apply(N.sum_method, (contrib,))
    lead, keep = runtime.sum_axes(cshape, tshape)
    if lead:
        contrib = b.apply(N.sum_method, (contrib,), {"axis": _axis(range(lead))})
    if keep:
        contrib = b.apply(N.sum_method, (contrib,), {"axis": _axis(keep), "keepdims": True})
    return contrib


def _axis(axes):
    axes = tuple(axes)
    return axes[0] if len(axes) == 1 else axes


def _owned_grad(b: Builder, g, x: Var, prog: Program, taken=()):
    """An array gradient the caller may keep and mutate, with its argument's dtype.

    Copies only where the adjoint could share memory with something else (an
    input, a constant, a view, a gradient returned before it: ``taken``) or has
    another dtype.
    """
    gv, xv = b.value(g), b.value(x)
    fresh = (isinstance(g, Var) and g not in prog.inputs and isinstance(gv, np.ndarray)
             and gv.base is None and gv.flags.writeable and gv.shape == xv.shape
             and not any(e.out is g and e.prim.layout_view for e in b.eqns)  # a view later?
             # bound by a merged if: the other branch may bind a seed or an input's array
             and not any(e.prim is COND and g in e.params[0][1].outs for e in b.eqns)
             and not any(v is gv for v in _outside_arrays(prog, b.values))
             and not any(t is gv for t in taken))
    want = xv.dtype if xv.dtype.kind == "f" else np.dtype(np.float64)
    if fresh and gv.dtype == want:
        return g
    return b.record(N.as_grad, (g, x), hint=_dname(x))  # record: a new array every time


def _outside_arrays(prog: Program, values: dict):
    """Arrays the caller or the compiled code also holds: inputs, globals and closure
    cells read at run time, constants.  (An adjoint can *be* one of them: ``u`` in the
    adjoint of ``np.sum(u * x)``, or ``x`` itself after ``x.astype(x.dtype)``.)"""
    for v in prog.inputs:
        yield values[v]
    for e in prog.eqns:
        if e.prim is B.load_global or e.prim is B.load_cell or _read_from(e, values):
            yield values[e.out]
        for a in e.ins:
            if isinstance(a, Const):
                yield a.value


def _read_from(e, values) -> bool:
    """``e`` reads a value out of a container or an object (``data['X']``, ``p.W``, an
    opaque call): the array it gives is the caller's, not one this code made."""
    if getattr(e.prim, "user_code", False):  # a call of a custom function or rule: its
        return e.out is not None  # result may be an array the user's code keeps
    if e.phase != "primal" or e.out is None:
        return False
    form = e.prim.kind
    if form == "getitem":
        return not isinstance(_raw(e.ins[0]) if isinstance(e.ins[0], Const)
                              else values.get(e.ins[0]), np.ndarray)
    return form in ("getattr", "call_obj") or _opaque_method(e.prim)


def _accumulate(b: Builder, adj: dict, x: Var, contrib, mark: int, owned: dict) -> None:
    """adj[x] += contrib, naming the result ``d_<x>``.

    Reads of an array (``x[i]``, ``x[i, j]``, ``x[a:b]``) contribute ``g`` scattered
    into zeros shaped like ``x``.  The first such contribution becomes a buffer that
    belongs to ``x``'s adjoint alone (``owned``: no other adjoint, no common
    subexpression shares it); each later one adds ``g`` into it in place
    (``d_x = _rt.add_at(d_x, i, g)``) instead of building a full-size array and
    adding it: O(size of g) per read, not O(size of x).  Only where the buffer has
    the contribution's shape and dtype, so the sum is the one ``d_x + g_1`` computes.
    """
    scatter = _fresh_scatter(b, contrib, mark)
    if x in adj:
        name = _dname(x)
        acc = adj[x]
        mine = isinstance(acc, Var) and owned.get(acc) is x
        if scatter is not None and mine and _fits(b, acc, scatter):
            b.eqns.pop()  # the scatter: its g goes into the buffer instead
            _forget_cse(b, scatter)
            g, _, _, idx = scatter.ins
            basic = K._basic(b.value(idx))  # the index's type is fixed by guards
            adj[x] = b.record(N.add_at if basic else N.add_at_repeated, (acc, _raw(idx), g),
                            hint=name)
            owned[adj[x]] = x
        elif scatter is not None and _fits(b, acc, scatter):
            adj[x] = b.record(B.add, (acc, contrib), hint=name)  # a new array: x's own buffer
            owned[adj[x]] = x
        else:
            adj[x] = b.apply(B.add, (adj[x], contrib), hint=name)
        return
    if isinstance(contrib, Var) and any(e.out is contrib for e in b.eqns[mark:]):
        name = _dname(x)
        contrib.name = b.namer.fresh(name)  # created by this rule: give it the adjoint's name
        contrib.family = name.family
        if scatter is not None:
            _forget_cse(b, scatter)  # written into later: no other use may share it
            owned[contrib] = x
    adj[x] = contrib


def _dname(x: Var) -> Hint:
    """The name of ``x``'s adjoint, ``d_<x>``, in the family of the adjoints of ``x``'s
    user variable (the printed code may store them under one name, never another's)."""
    return Hint("d_" + x.name, ("d", x.family))


def _fresh_scatter(b: Builder, contrib, mark: int):
    """The ``getitem_vjp`` equation that made ``contrib``, if this rule just appended it."""
    if not isinstance(contrib, Var) or len(b.eqns) <= mark:
        return None
    e = b.eqns[-1]
    return e if e.out is contrib and e.prim is N.getitem_vjp else None


def _fits(b: Builder, acc, scatter) -> bool:
    """``acc`` is a full-size array of the scatter's shape and dtype."""
    value = b.value(acc) if isinstance(acc, Var) else None
    _, shape, dtype, _ = scatter.ins
    return (type(value) is np.ndarray and value.shape == _raw(shape)
            and value.dtype == np.dtype(_raw(dtype)))


def _forget_cse(b: Builder, e) -> None:
    key = _cse_key(e.prim, e.ins, dict(e.params))
    if key is not None and b.seen.get(key) is e.out:
        del b.seen[key]


def _may_raise(e, values) -> bool:
    """A primal call or ``/ // % **`` on Python numbers, or an item read from a list or
    dict: it can raise (``log(-1)``, ``1/0``, ``lst[5]``).

    Such an equation stays even when its result is unused, so the derivative raises
    where the function raises, whichever path the cache compiled first.  (NumPy
    operations warn instead of raising, so they are pruned as usual.)
    """
    if e.phase == "primal" and e.prim is B.getitem and not isinstance(
            values.get(e.ins[0]), np.ndarray):
        return True  # lst[5], d["key"]: IndexError, KeyError
    if e.phase != "primal" or e.out is None or type(values.get(e.out)) not in (int, float):
        return False
    return e.prim.may_raise


def _opaque_method(prim) -> bool:
    """``obj.name(...)`` run without a rule (``lst.append(1.0)``): it may change ``obj``."""
    return prim.may_mutate


def prune(prog: Program, values: dict) -> Program:
    """Drop equations whose results are never used; keep guards, opaque calls and
    primal operations that may raise (see :func:`_may_raise`, which reads ``values``),
    and rolled loops unless :func:`~ad_transform.loops_reverse.droppable` says they can
    neither fail a guard nor raise; a merged ``if`` keeps what its used outputs need."""
    live = set(output_vars(prog.outputs))
    return dataclasses.replace(prog, eqns=_prune_block(prog.eqns, live, values))


def _prune_block(eqns, live: set, values: dict) -> list:
    kept = []
    for e in reversed(eqns):
        if e.prim is COND:
            e = prune_cond(e, live, lambda block, used: _prune_block(block, used, values))
            keep = e is not None
        elif e.prim is LOOP:  # a rolled loop: kept while anything it defines is used
            keep = any(d in live for d in e.params[0][1].defines()) or not droppable(e, values)
        else:
            keep = (e.out is None or e.out in live or e.prim is B.call_opaque
                    or _opaque_method(e.prim) or _may_raise(e, values))
        if keep:
            kept.append(e)
            live.update(x for x in e.ins if isinstance(x, Var))
    kept.reverse()
    return kept
