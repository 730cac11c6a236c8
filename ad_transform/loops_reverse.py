"""The adjoint of a rolled loop is a loop over the body's adjoint, run in reverse.

Guarantees of :func:`reverse_loop`: the primal loop is given tapes (one list
per carried variable the adjoint needs, filled with its value at the start of
every iteration); one adjoint loop walks the iterations in reverse, restores
those values from the tapes, recomputes what the body's adjoint needs from
them (the body's guards were checked by the primal loop and are dropped), and
carries the adjoints of the carried variables and of the outer variables the
body reads or carries as they are (a next value found before the loop), summed
over the iterations.  The carried adjoints keep their
variables' shapes on every iteration.  Afterwards the adjoints flow to the
loop's initial values and outer variables like any contribution.
:func:`propagate` is the activity analysis with loops: a carried variable is
active when its initial value is or when an iteration makes it so.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .builder import _cse_key
from .branches import propagate_cond
from .ir import COND, EXIT, LOOP, Const, Eqn, Loop, Var, body_free, cond_of, loop_of

__all__ = ["propagate", "reverse_loop"]


def propagate(eqns, active: set) -> None:
    """Add to ``active`` every variable of ``eqns`` that depends on an active one (through
    an operation with a derivative rule: a VJP rule, or, for the adjoint helpers of a
    derivative program differentiated again, such as ``_rt.add_at``, a JVP rule)."""
    for e in eqns:
        data = loop_of(e)
        if data is not None:
            flags, _ = _activity(data, active)
            active.update(o for o, f in zip(data.outs, flags) if f)
        elif e.prim is COND:  # a merged if (branches.py)
            propagate_cond(e, active, propagate)
        elif e.out is not None and (e.prim.differentiable or e.prim in _tangent_rules()) and any(
                isinstance(x, Var) and x in active for x in e.ins):
            active.add(e.out)


_JVPS: list = []


def _tangent_rules() -> dict:
    """The JVP rules (``rules/forward.py``; imported on first use)."""
    if not _JVPS:
        from .rules.forward import JVPS
        _JVPS.append(JVPS)
    return _JVPS[0]


def _activity(data: Loop, active: set):
    """(active flag of each carried variable, the active set inside the body)."""
    flags = [isinstance(i, Var) and i in active for i in data.inits]
    while True:
        local = set(active)
        local.update(p for p, f in zip(data.phis, flags) if f)
        propagate(data.body, local)
        new = [f or (isinstance(n, Var) and n in local) for f, n in zip(flags, data.nexts)]
        if new == flags:
            return flags, local
        flags = new


def _like(value, result=False):
    """A stand-in value for an adjoint whose per-iteration value is not computed now:
    right type and shape (a read-only view, so a gradient made from it is copied; a
    loop's result as a NumPy float, so a gradient made from it is made a float)."""
    if isinstance(value, np.ndarray):
        return np.broadcast_to(np.ones((), dtype=np.result_type(value.dtype, np.float64)),
                               value.shape)
    return np.float64(1.0) if result or not isinstance(value, (int, float)) else 1.0


def _zero(b, like: Var, inside: bool):
    from .rules import numpy as N
    value = b.value(like)
    if isinstance(value, np.ndarray):
        return b.record(N.zeros_like, (like,), {"dtype": np.float64}
                      if value.dtype.kind != "f" else None, hint="d_" + like.name)
    return 0.0


def _fit(b, g, like):
    """``g`` with the shape (and, for a Python number, the float type) of ``like``'s
    value, so a carried adjoint keeps its signature on every iteration."""
    from .rules import builtins as B
    from .rules import numpy as N
    value, gv = b.value(like), b.value(g)
    if isinstance(value, np.ndarray):
        if np.shape(gv) != value.shape:
            g = b.apply(N.fit_shape, (g, value.shape))
        return g
    if type(gv) is not float:
        g = b.apply(B.to_float, (g,))
    return g


def _prune(eqns, outs) -> list:
    live = {x for x in outs if isinstance(x, Var)}
    kept = []
    for e in reversed(eqns):
        data = loop_of(e) or cond_of(e)
        defs = data.defines() if data is not None else ((e.out,) if e.out is not None else ())
        if any(d in live for d in defs):
            kept.append(e)
            live.update(x for x in e.ins if isinstance(x, Var))
    kept.reverse()
    return kept


def _replace(eqns: list, old, new) -> None:
    for i in range(len(eqns) - 1, -1, -1):
        if eqns[i] is old:
            eqns[i] = new
            return
    raise AssertionError("loop equation not found")


def reverse_loop(b, e, adj: dict, active: set, owned: dict) -> None:
    """Append the adjoint loop of loop equation ``e`` (see the module docstring)."""
    from .reverse import _accumulate, backprop
    from .rules import builtins as B

    data = loop_of(e)
    flags, local = _activity(data, active)
    gs = {k: adj.pop(o) for k, o in enumerate(data.outs) if o in adj}
    if not gs:
        return
    index = {data.index} if data.index is not None else set()
    carried = [k for k, f in enumerate(flags) if f]
    bound = set(data.phis) | index
    free = body_free(data.body, bound)
    # an outer value carried as it is (a next value the body does not compute, e.g. one
    # computed before the loop and found again in it) receives its carried adjoint too
    inner = {d for x in data.body for d in (
        (loop_of(x) or cond_of(x)).defines() if x.prim is LOOP or x.prim is COND
        else (x.out,)) if d is not None}
    free += [n for n in dict.fromkeys(data.nexts) if isinstance(n, Var) and n not in bound
             and n not in inner and n not in free]
    free_active = [x for x in free if x in active]
    b.loc = e.loc
    inits = []
    for k in carried:
        g = gs.get(k)
        inits.append(_fit(b, g, data.outs[k]) if g is not None
                     else _zero(b, data.outs[k], False))
    inits += [_zero(b, x, False) for x in free_active]

    saved = b.eqns, b.seen
    b.eqns, b.seen = [], {}
    try:
        dps = [b.new_var("d_" + data.phis[k].name, _like(b.value(data.phis[k])))
               for k in carried]
        accs = [b.new_var("d_" + x.name, np.zeros(np.shape(b.value(x)), np.result_type(
            b.value(x), np.float64)) if isinstance(b.value(x), np.ndarray)
            else _like(b.value(x))) for x in free_active]  # arrays: a buffer written in place
        recompute = [x for x in data.body if x.prim is not EXIT and (
            x.out is not None or x.prim is LOOP or x.prim is COND)]
        for x in recompute:
            b.eqns.append(x)
            key = None if x.out is None or x.prim is B.call_opaque else _cse_key(
                x.prim, x.ins, dict(x.params))
            if key is not None:
                b.seen.setdefault(key, x.out)
        # an array read by the body gets its adjoint summed into one buffer, carried from
        # iteration to iteration and written in place (x[i] adds into d_x[i])
        body_adj: dict = {x: acc for x, acc in zip(free_active, accs)
                          if isinstance(b.value(x), np.ndarray)}
        body_owned: dict = {acc: x for x, acc in body_adj.items()}
        for k, d in zip(carried, dps):
            n = data.nexts[k]
            if isinstance(n, Var) and n in local:
                _accumulate(b, body_adj, n, d, len(b.eqns), body_owned)
        for x in reversed(recompute):
            backprop(b, x, body_adj, local, [], body_owned)
        b.loc = e.loc
        nexts = []
        for k in carried:
            phi = data.phis[k]
            g = body_adj.pop(phi, None)
            nexts.append(_fit(b, g, phi) if g is not None else _zero(b, phi, True))
        for x, acc in zip(free_active, accs):
            g = body_adj.pop(x, None)
            if isinstance(b.value(x), np.ndarray):
                nexts.append(_fit(b, g, x))  # the buffer, with this iteration's reads added
            else:
                nexts.append(b.apply(B.add, (acc, g), hint="d_" + x.name) if g is not None
                             else acc)
        nexts = [x if isinstance(x, Var) else Const(x) for x in nexts]
        body = b.eqns
    finally:
        b.eqns, b.seen = saved
    body = _prune(body, nexts)
    phis = tuple(dps) + tuple(accs)
    uses = body_free(body, set(phis) | index)
    made = {q.out for q in body} | {v for q in body if q.prim is COND for v in cond_of(q).outs}
    uses += [x for x in nexts if isinstance(x, Var) and x not in uses and x not in phis
             and x not in made]
    pops = [p for p in data.phis if p in uses]
    outer = [x for x in uses if x not in data.phis and x not in index]
    tapes = tuple((p, b.new_var(p.name + "_tape", [])) for p in pops)
    count = b.new_var("trips", 0) if data.kind == "while" else None
    primal = dataclasses.replace(data, saves=tapes, count=count)
    _replace(b.eqns, e, Eqn(LOOP, e.ins, None, e.loc, (("loop", primal),), e.phase))
    outs = tuple(b.new_var(p.name, _like(b.value(p), True)) for p in phis)
    rev = Loop("reverse", body, phis, tuple(x if isinstance(x, Var) else Const(x)
                                            for x in inits), tuple(nexts), outs,
               data.index, tuple(data.bounds) if data.kind == "for" else (), tuple(outer),
               data.trips, data.line, count=count, pops=tapes)
    ins = [x for x in rev.inits if isinstance(x, Var)] + outer + [t for _, t in tapes]
    ins += [count] if count is not None else []
    ins += [x for x in rev.bounds if isinstance(x, Var)]  # range(k, n) on a traced n
    if tapes:  # the initial values are on the tapes: never written in place before this
        ins += [x for x in data.inits if isinstance(x, Var)]
    b.append(Eqn(LOOP, tuple(dict.fromkeys(ins)), None, e.loc, (("loop", rev),), "adjoint"))
    mark = len(b.eqns)
    for k, o in zip(carried, outs):
        init = data.inits[k]
        if isinstance(init, Var) and init in active:
            _accumulate(b, adj, init, o, mark, owned)
    for x, o in zip(free_active, outs[len(carried):]):
        _accumulate(b, adj, x, o, mark, owned)


# -- a primal loop nothing reads ------------------------------------------------------

def droppable(e, values: dict) -> bool:
    """Loop equation ``e`` may be dropped when none of its results is used: a ``for``
    loop over constant bounds whose body can neither fail a guard nor raise.

    Sound by construction, so the derivative raises wherever the function raises: the
    body may hold only arithmetic (``binop``/``unary``/``compare`` forms; an operator
    that can raise, ``/ // % **``, only with a NumPy result, which warns instead) and
    reads ``a[i + c]`` of an outer NumPy array (whose shape is a fact of the path) at
    an index in range on every iteration.  Anything else (a guard, a while loop's test,
    a nested loop, a call, a container read) keeps the loop.
    """
    from .rules import builtins as B

    data = loop_of(e)
    if data is None or data.kind != "for" or data.index is None or len(data.bounds) != 3:
        return False
    bounds = [b.value if isinstance(b, Const) else b for b in data.bounds]
    traced_stop = isinstance(bounds[1], Var)  # range(k, n) on a traced n: reads not checked
    if traced_stop:
        bounds[1] = bounds[0] + 1
    if not all(type(b) is int for b in bounds) or bounds[2] == 0:
        return False
    steps = range(*bounds)
    if len(steps) == 0:
        return True
    lo, hi = min(steps[0], steps[-1]), max(steps[0], steps[-1])
    local = {data.index, *data.phis}
    shifts = {data.index: 0}  # body variables equal to index + constant
    for x in data.body:
        if x.out is None or x.prim is LOOP or x.prim.opaque or x.prim.may_mutate:
            return False
        form = x.prim.kind
        if x.prim is B.getitem:
            arr, idx = x.ins[0], x.ins[1] if len(x.ins) == 2 else None
            value = values.get(arr) if isinstance(arr, Var) else None
            if (arr in local or type(value) is not np.ndarray or value.ndim < 1
                    or idx not in shifts or traced_stop):
                return False
            n = value.shape[0]
            if not (-n <= lo + shifts[idx] and hi + shifts[idx] < n):
                return False
        elif form not in ("binop", "unary", "compare") or x.params:
            return False
        elif x.prim.may_raise and not isinstance(values.get(x.out), (np.ndarray, np.generic)):
            return False
        a = x.ins[0] if x.ins else None
        c = x.ins[1] if len(x.ins) == 2 else None
        if x.prim in (B.add, B.sub) and isinstance(a, Var) and a in shifts \
                and isinstance(c, Const) and type(c.value) is int:
            shifts[x.out] = shifts[a] + (c.value if x.prim is B.add else -c.value)
        elif x.prim is B.add and isinstance(c, Var) and c in shifts \
                and isinstance(a, Const) and type(a.value) is int:
            shifts[x.out] = shifts[c] + a.value
        local.add(x.out)
    return True
