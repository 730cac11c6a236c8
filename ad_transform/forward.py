"""Program -> Program with tangent equations interleaved, in forward order.

Guarantees of :func:`forward`: the result takes the program's inputs and then
one tangent per ``wrt`` input (``t_<name>``, same shape as its input); after
each primal equation whose output depends on a ``wrt`` input comes the
equation(s) of its tangent (``phase == "tangent"``), built by the JVP rule of
:mod:`ad_transform.rules.forward`; every tangent has exactly its primal's
shape; the result returns ``(value, tangent of the value)``, the tangent
shaped like the value (a tuple for a tuple), zero where the value does not
depend on a ``wrt`` input; a tree output (dict, namedtuple, dataclass) gets a
tangent tree of its structure.  The entry guard checks the tangents' types, shapes
and dtypes beside the inputs', so a new path is compiled for other tangents.
The tangent of a tree input is a tree: right after the entry guard, its
structure is guarded (as the input's is, see ``rules/pytree.py``) and checked on
the first call to match the input's, and each leaf is read once.
An operation with a VJP rule but no JVP rule raises
:class:`~ad_transform.errors.MissingRule` at the user's line.

A rolled loop (:data:`~ad_transform.ir.LOOP`) stays one loop: it carries the
primal values and the tangents ``t_<name>`` of the active ones (a carried
value is active when its initial value has a tangent or an iteration makes it
depend on one: the fixpoint of :func:`ad_transform.loops_reverse.propagate`);
its body is the primal body, guards and a while loop's exit test unchanged,
each equation followed by its tangent, in forward order; outer tangents are
read from outside it; its results get their tangents.  A merged ``if``
(:data:`~ad_transform.ir.COND`) stays one ``if``: each branch gets its tangent
equations and binds a tangent for every output that either branch gives one
(zero, shaped like the output, where its own gives none).  The tangent values
recorded for a loop's iterations and results are stand-ins of the right type
and shape (the iterations are not run here): a program with a loop or a merged
``if`` gets its first answer from its compiled code, and a returned array
tangent made by a loop is copied (it may be the caller's own tangent).  Where
the tangent of such a body cannot be built on this call's values (no JVP rule,
or a rule failing on an untaken branch's values), :class:`Unroll` is raised
for the caller to lower the path again with every loop unrolled.

A derivative program (the reverse pass's output, differentiated again: a
Hessian-vector product, ``higher.py``) is handled the same way: a primal loop
that saves a value with a tangent on a tape saves that tangent on a tape of its
own (``t_<tape>``, appended in the same iteration); an adjoint loop (kind
``"reverse"``) that pops the value pops its tangent from that tape in step, and
carries the tangents of its adjoints; the tangent of ``_rt.add_at`` (``d_x[i] +=
g`` into an adjoint buffer) is added in place too (``t_d_x[i] += t_g``) only into
a buffer that is that adjoint's tangent alone (made by this pass: a loop's carried
tangent started from zeros and carried as itself, or a scatter of a tangent; never
an input's tangent nor one a rule shares with another value), else it is a new
array; ``add_at`` counts for the activity analysis.  While such a program is
differentiated (``_STRICT``), an operation reading a tangent that has neither a
rule nor a zero derivative raises (:class:`~ad_transform.errors.MissingRule`,
or :class:`Unroll` inside a loop) instead of passing no tangent.  With
``constant=True`` the tangents are floats baked into the program (the seed of
``d/dx`` in ``gradient(gradient(f))``): it takes no tangent inputs.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import warnings

import numpy as np

from . import runtime
from .errors import ADError, MissingRule
from .builder import Builder, _cse_key
from .ir import (COND, LOOP, Cond, Const, Eqn, Hint, Program, Var, _raw, body_free,
                 cond_eqn, cond_of, flat_outputs, loop_of)
from .values import _contains_var
from .loops_reverse import _activity
from .reverse import _describe, _owned_grad
from .rules import builtins as B
from .rules import forward as F
from .rules import numpy as N
from .rules import pytree as P
from . import pytree as T

__all__ = ["forward", "extend_entry_guard", "check_like", "Unroll"]

# On while a derivative program (the reverse pass's output) is differentiated again
# (``higher.py``'s rolled Hessian-vector products): an operation with neither a rule
# nor a zero derivative then raises instead of passing no tangent, since such an
# operation there is an adjoint helper, not a piecewise constant of the user's code.
_STRICT = contextvars.ContextVar("ad_transform_forward_strict", default=False)


def extend_entry_guard(eqns: list, decisions: tuple, inputs: tuple, extra: tuple,
                       values: dict) -> tuple[list, tuple]:
    """The entry guard (decision 0: the inputs' signatures) widened to ``extra`` inputs
    too (tangents, cotangents): one check at the top covers them all."""
    for k, e in enumerate(eqns):
        if e.prim is B.guard_types and dict(e.params)["index"] == 0:
            break
    else:
        raise AssertionError("the lowered program has no entry guard")
    expect = dict(e.params)["expect"] + runtime.signatures(*(values[v] for v in extra))
    guard = Eqn(e.prim, tuple(inputs) + tuple(extra), None, e.loc,
                tuple(sorted({"expect": expect, "index": 0}.items())), e.phase)
    return eqns[:k] + [guard] + eqns[k + 1:], (expect,) + tuple(decisions[1:])


def check_like(what: str, name: str, given, like, loc=None) -> None:
    """``given`` (a tangent or cotangent) has the shape of ``like``; else a ValueError."""
    ok = np.shape(given) == np.shape(like) and (
        isinstance(given, np.ndarray) and given.dtype.kind in "fiu"
        or isinstance(given, (int, float, np.floating, np.integer)) and not isinstance(given, bool))
    if not ok:
        kind = f"an array of shape {np.shape(like)}" if isinstance(like, np.ndarray) else "a float"
        got = (f"an array of shape {given.shape} ({given.dtype})" if isinstance(given, np.ndarray)
               else f"a {type(given).__name__}")
        raise ValueError(f"the {what} for {name} must be {kind} of real numbers, "
                         f"like {name}; got {got}")


def forward(prog: Program, values: dict, wrt: tuple, tangents: tuple,
            constant: bool = False) -> tuple[Program, dict]:
    """Interleave the tangent of ``prog`` along the inputs ``wrt`` (indices).

    ``tangents`` are the first call's tangent values (one per ``wrt``), checked
    to have their input's shape.  Returns the new program and its values.
    With ``constant``, the tangents are floats baked into the program (a second
    derivative's seed, ``d/dx``): it takes no tangent inputs.
    """
    b = Builder(prog.namer)
    b.values = dict(values)
    b.phase = "tangent"
    b.t_owned = {}  # tangent buffer -> the one primal buffer it is the tangent of (_add_at)
    tan: dict = {}
    t_inputs = []
    trees = prog.trees or {}
    entry_loc = next((e.loc for e in prog.eqns if e.prim is B.guard_types), prog.return_loc)
    reads = Builder(prog.namer)  # the reads of tree tangents, put after the entry guard
    reads.values, reads.phase, expects = b.values, "tangent", []
    for i, t in zip(wrt, tangents):
        x = prog.inputs[i]
        if constant:
            if i in trees or type(t) is not float or type(values[x]) is not float:
                raise ValueError("a constant tangent is a float, for a float input")
            tan[x] = t
            continue
        if i not in trees:
            check_like("tangent", x.name, t, values[x])
        tv = b.new_var(Hint("t_" + x.name, ("t", x.family)), t)
        t_inputs.append(tv)
        if i in trees:
            with reads:
                found, t_td = _tree_tangent(reads, x.name, tv, t, trees[i], values,
                                            1 + len(expects), entry_loc)
            tan.update(found)
            expects.append(t_td)
        else:
            tan[x] = tv
    eqns, decisions = extend_entry_guard(prog.eqns, prog.decisions, prog.inputs,
                                         tuple(t_inputs), b.values)
    if expects:
        eqns, decisions = _after_entry(eqns, decisions, reads.eqns, tuple(expects))
    with b:
        _forward_block(b, eqns, tan)
        inputs = tuple(prog.inputs) + tuple(t_inputs)
        shell = dataclasses.replace(prog, inputs=inputs, eqns=b.eqns, outputs=(),
                                    decisions=decisions)
        value = _returned(b, prog.out_tree.node, iter(prog.outputs),
                          lambda o: _value(b, o, prog.return_loc), "value")
        taken = []
        out_tan = _returned(b, prog.out_tree.node, iter(prog.outputs),
                            lambda o: _out_tangent(b, o, tan, shell, taken), "tangent")
        outputs, out_tree = flat_outputs((value, out_tan))
    return dataclasses.replace(shell, outputs=outputs, out_tree=out_tree), b.values


def _tree_tangent(b: Builder, name, tv, t, tree, values, index, loc):
    """The tangent ``tv`` (value ``t``) of the tree input ``name``: its structure guarded
    (decision ``index``), checked against the
    argument's on this first call (same containers and keys, each leaf shaped like the
    argument's leaf there), and one read per leaf.  Returns ``({leaf: tangent of it},
    the tangent's structure)``."""
    td, leaves = tree
    b.loc = loc
    t_td = P.guard_tree(b, tv, "t_" + name, t, index)
    where = T.mismatch(td, t_td, "t_" + name)
    if where is not None:
        raise ValueError(f"the tangent for {name} must have {name}'s structure: {where}")
    paths = T.paths(td)
    t_leaves = P.read_leaves(b, "t_" + name, tv, paths)
    for path, leaf, t_leaf in zip(paths, leaves, t_leaves):
        check_like("tangent", T.show_path(name, path), b.values[t_leaf], values[leaf])
    return dict(zip(leaves, t_leaves)), t_td


def _after_entry(eqns: list, decisions: tuple, block: list, expects: tuple):
    """``block`` (whose guards are decisions ``1 .. len(expects)``) put right after the
    entry guard; the later guards renumbered, so guards run in the order of their
    decisions."""
    m = len(expects)
    k = next(i for i, e in enumerate(eqns) if e.prim.is_guard and dict(e.params)["index"] == 0)
    out = _renumbered(eqns, m)
    return out[:k + 1] + list(block) + out[k + 1:], (decisions[0],) + expects + decisions[1:]


def _renumbered(eqns, m: int) -> list:
    """``eqns`` with every guard's index but the entry guard's moved up by ``m``, also in
    rolled loops' bodies and merged ifs' branches."""
    out = []
    for e in eqns:
        data, cond = loop_of(e), cond_of(e)
        if e.prim.is_guard and dict(e.params)["index"] != 0:
            params = dict(e.params)
            params["index"] += m
            e = dataclasses.replace(e, params=tuple(sorted(params.items())))
        elif data is not None:
            data = dataclasses.replace(data, body=_renumbered(data.body, m))
            e = dataclasses.replace(e, params=(("loop", data),))
        elif cond is not None:
            cond = dataclasses.replace(cond, then=_renumbered(cond.then, m),
                                       orelse=_renumbered(cond.orelse, m))
            e = cond_eqn(cond, e.loc, e.phase)
        out.append(e)
    return out


def _forward_block(b: Builder, eqns, tan: dict) -> None:
    """Append ``eqns`` to ``b``, each followed by its tangent; ``tan`` (Var -> tangent)
    grows with the tangents made.  A rolled loop becomes one loop carrying tangents too
    (:func:`_forward_loop`), a merged ``if`` one ``if`` binding them (:func:`_forward_cond`)."""
    for e in eqns:
        if e.prim is LOOP or e.prim is COND:
            for x in e.ins:  # an outer tangent buffer a loop or an if reads: shared
                if isinstance(x, Var) and isinstance(tan.get(x), Var):
                    b.t_owned.pop(tan[x], None)
            (_forward_loop if e.prim is LOOP else _forward_cond)(b, e, tan)
            continue
        b.append(e)
        if e.prim is N.add_at or e.prim is N.add_at_repeated:
            _add_at(b, e, tan)
            continue
        if e.out is None:
            continue
        if e.prim is not B.call_opaque:  # tangent rules reuse what the primal computed
            key = _cse_key(e.prim, e.ins, dict(e.params))
            if key is not None:
                b.seen.setdefault(key, e.out)
        ts = [tan.get(x) if isinstance(x, Var) else None for x in e.ins]
        if all(t is None for t in ts):
            continue
        if not e.prim.differentiable and e.prim not in F.JVPS:
            if e.prim.zero or not _STRICT.get():
                continue  # as the reverse pass does: no derivative flows through it
            b.loc = e.loc
            raise MissingRule(f"{_describe(e.prim)} has no derivative rule, and the "
                              "derivative being differentiated again reads a tangent "
                              "through it", e.loc)
        b.loc = e.loc
        t = _tangent(b, e, ts)
        if t is not None:
            tan[e.out] = t
            if isinstance(t, Var) and b.t_owned.get(t, e.out) is not e.out:
                del b.t_owned[t]  # now the tangent of a second buffer too: not written into


def _add_at(b: Builder, e, tan: dict) -> None:
    """The tangent of ``_rt.add_at(out, idx, g)`` (``out[idx] += g`` into an adjoint
    buffer that belongs to one adjoint): ``t_out[idx] += t_g`` in place too when
    ``t_out`` is a buffer that is the tangent of ``out`` alone (``b.t_owned``: made
    here, a scatter of a tangent or a loop's carried tangent started from zeros, and
    read by nothing after, as ``out`` itself); otherwise a new array, ``t_out`` plus
    ``t_g`` scattered into zeros (the JVP rule of ``rules/forward.py``), which then
    belongs to ``out``'s result.  Either way a scan of the reads of an array adds into
    one buffer per iteration, not a new array of its size."""
    out, idx, g = e.ins
    owned = b.t_owned
    t_out = tan.get(out) if isinstance(out, Var) else None
    t_g = tan.get(g) if isinstance(g, Var) else None
    b.loc = e.loc
    if t_g is None:
        if t_out is not None:
            tan[e.out] = t_out
            if _owns(b, t_out, out):
                owned[t_out] = e.out  # the same buffer, now holding the result
            elif isinstance(t_out, Var):
                owned.pop(t_out, None)
        return
    t_g = _fit(b, t_g, b.value(g))
    hint = _tangent_hint(e.out)
    if _owns(b, t_out, out):
        del owned[t_out]
        t = b.record(e.prim, (t_out, idx, t_g), hint=hint)
    else:
        like = b.value(out)
        from .rules.runtime import _float_dtype
        t = b.record(N.getitem_vjp, (t_g, np.shape(like), _float_dtype(like), idx),
                     hint=hint)
        if t_out is not None:
            t = b.record(B.add, (t_out, t), hint=hint)
    owned[t] = e.out
    tan[e.out] = t


def _owns(b: Builder, t, x) -> bool:
    """The tangent ``t`` is a buffer that belongs to the buffer ``x`` alone."""
    return isinstance(t, Var) and b.t_owned.get(t) is x


class Unroll(Exception):
    """A rolled loop's or a merged ``if``'s tangent could not be built on this call's
    values (an operation of its body has no forward rule, or its rule failed on the
    values of an iteration or a branch this call did not take): the caller lowers the
    path again with every loop unrolled, where the error, if it is real, is raised at
    the iteration it belongs to."""


def _tangent_hint(v: Var) -> Hint:
    return Hint("t_" + v.name, ("t", v.family))


def _stand_in(value, out=False):
    """A value for a tangent whose per-iteration value is not computed now, of the right
    type and shape: for a number, a float (a NumPy float for a loop's result, so a
    tangent returned from it is made a Python float); for an array, ones (inside a
    loop's body) or, for a loop's result, a read-only view, so a tangent returned from
    it is copied (at run time it may be the caller's own tangent, carried through the
    loop unchanged)."""
    if isinstance(value, np.ndarray):
        ones = np.ones(value.shape, dtype=np.result_type(value.dtype, np.float64))
        return np.broadcast_to(ones, value.shape) if out else ones
    return np.float64(1.0) if out or not isinstance(value, (int, float)) else 1.0


def _zero_tangent(b: Builder, x):
    """A zero tangent shaped like the atom ``x`` (an equation for an array)."""
    value = b.value(x)
    if isinstance(value, np.ndarray):
        return b.record(N.zeros_like, (x,) if isinstance(x, Var) else (value,),
                        {"dtype": np.float64} if value.dtype.kind != "f" else None,
                        hint=_tangent_hint(x) if isinstance(x, Var) else "t_zero")
    return Const(0.0)


def _atom(x):
    return x if isinstance(x, (Var, Const)) else Const(x)


def _forward_loop(b: Builder, e, tan: dict) -> None:
    """A rolled loop and its tangent as one loop: it carries the primal values and the
    tangents of the active ones (a carried variable is active when its initial value
    has a tangent or an iteration makes it depend on one: :func:`loops_reverse.propagate`'s
    fixpoint); its body is the primal body with the tangent equations interleaved,
    guards and exit test as they are; outer tangents are read from outside the loop.
    Tapes (a derivative program's loops, differentiated again): a primal loop that
    saves a value with a tangent saves that tangent on a tape of its own (``t_<tape>``),
    and the adjoint loop that pops the value pops its tangent from it, in step."""
    data = loop_of(e)
    popped = {v: tan[t] for v, t in data.pops if t in tan}  # value -> its tangent's tape
    active = set(tan) | set(popped)
    flags, inside = _activity(data, active)
    saved_active = [a for a, _ in data.saves if isinstance(a, Var) and a in inside]
    if not any(flags) and not popped and not saved_active:
        if _STRICT.get():
            _refuse_unknown(data.body, inside, e.loc)
        b.append(e)
        return
    carried = [k for k, f in enumerate(flags) if f]
    b.loc = e.loc
    t_inits = []
    for k in carried:
        init = data.inits[k]
        t = tan.get(init) if isinstance(init, Var) else None
        t_inits.append(_fit(b, t, b.value(init)) if t is not None else _zero_tangent(b, init))
    t_phis = tuple(b.new_var(_tangent_hint(data.phis[k]), _stand_in(b.value(data.phis[k])))
                   for k in carried)
    t_pops = tuple((b.new_var(_tangent_hint(v), _stand_in(b.value(v))), t_tape)
                   for v, t_tape in popped.items())
    # a carried array tangent that starts from zeros made here, and is not saved on a
    # tape, is a buffer of its own: the body may add into it in place (_add_at), if each
    # iteration's next tangent is that buffer again (checked below; else built again)
    saved_atoms = {a for a, _ in data.saves}
    fresh = [k for k, t in zip(carried, t_inits) if isinstance(t, Var)
             and not (isinstance(data.inits[k], Var) and data.inits[k] in tan)
             and data.phis[k] not in saved_atoms]
    saved = b.eqns, b.seen
    owned_before = dict(b.t_owned)
    for attempt in (True, False) if fresh else (False,):
        local = dict(tan)
        local.update((data.phis[k], t) for k, t in zip(carried, t_phis))
        local.update((v, t) for v, (t, _) in zip(popped, t_pops))
        b.t_owned = dict(owned_before)
        if attempt:
            b.t_owned.update((t_phis[carried.index(k)], data.phis[k]) for k in fresh)
        b.eqns, b.seen = [], dict(saved[1])
        try:
            with _quiet(True):  # (an iteration's values, and stand-ins for its tangents)
                _forward_block(b, data.body, local)
        except ADError as exc:
            b.eqns, b.seen = saved
            raise Unroll() from exc
        if not attempt or all(_owns(b, local.get(data.nexts[k]), data.nexts[k])
                              for k in fresh if isinstance(data.nexts[k], Var)):
            break
    try:
        b.t_owned = owned_before  # (nothing made in the body is read after it)
        b.loc = e.loc
        t_nexts = []
        for k, phi in zip(carried, t_phis):
            n = data.nexts[k]
            t = local.get(n) if isinstance(n, Var) else None
            t_nexts.append(_fit(b, t, b.value(n)) if t is not None else _zero_tangent(b, phi))
        t_saves = []
        for a, tape in data.saves:
            t = local.get(a) if isinstance(a, Var) else None
            if t is None and isinstance(a, Var) and a in inside:
                raise MissingRule(f"the tangent of {a.name}, saved on {tape.name}, was "
                                  "not carried through the loop", e.loc)
            if t is not None:
                t_saves.append((_atom(t), tape, b.new_var(
                    Hint("t_" + tape.name, ("t", tape.family)), [])))
        body = _drop_dead_tangents(b.eqns, t_nexts + [t for t, _, _ in t_saves])
    except ADError as exc:
        raise Unroll() from exc
    finally:
        b.eqns, b.seen = saved
    phis = tuple(data.phis) + t_phis
    nexts = tuple(data.nexts) + tuple(_atom(t) for t in t_nexts)
    index = {data.index} if data.index is not None else set()
    bound = set(phis) | index | {v for v, _ in data.pops} | {t for t, _ in t_pops}
    saves = tuple(data.saves) + tuple((t, t_tape) for t, _, t_tape in t_saves)
    # outer values the body reads, or carries as they are (a next value made outside)
    free = body_free(body + [Eqn(COND, nexts + tuple(a for a, _ in saves), None, None)],
                     bound)
    t_outs = tuple(b.new_var(_tangent_hint(data.outs[k]), _stand_in(b.value(data.outs[k]),
                                                                    out=True))
                   for k in carried)
    rolled = dataclasses.replace(data, body=body, phis=phis,
                                 inits=tuple(data.inits) + tuple(_atom(t) for t in t_inits),
                                 nexts=nexts, outs=tuple(data.outs) + t_outs, free=tuple(free),
                                 saves=saves, pops=tuple(data.pops) + t_pops)
    stops = [x for x in rolled.bounds if isinstance(x, Var)]
    ins = list(e.ins) + [x for x in rolled.inits if isinstance(x, Var)] + list(free) + stops
    ins += [t for _, t in t_pops]
    b.append(Eqn(LOOP, tuple(dict.fromkeys(ins)), None, e.loc, (("loop", rolled),), e.phase))
    tan.update((data.outs[k], t) for k, t in zip(carried, t_outs))
    tan.update((tape, t_tape) for _, tape, t_tape in t_saves)


def _refuse_unknown(eqns, active: set, loc) -> None:
    """In a derivative program differentiated again (``_STRICT``): an operation of a
    loop body left as it is (no carried value active) that has neither a rule nor a
    zero derivative and reads an active value raises :class:`Unroll` (the activity
    analysis passes no tangent through it, which would be a silent zero)."""
    for e in eqns:
        data, cond = loop_of(e), cond_of(e)
        if data is not None:
            _refuse_unknown(data.body, _activity(data, active)[1], loc)
        elif cond is not None:
            _refuse_unknown(cond.then, active, loc)
            _refuse_unknown(cond.orelse, active, loc)
        elif e.out is not None and not e.prim.differentiable and not e.prim.zero \
                and e.prim not in F.JVPS and any(isinstance(x, Var) and x in active
                                                 for x in e.ins):
            raise Unroll()


def _drop_dead_tangents(body, live_atoms) -> list:
    """``body`` without the tangent equations nothing reads (every primal equation, guard
    and exit test stays: the body's path and its errors are the primal loop's)."""
    live = {x for x in live_atoms if isinstance(x, Var)}
    kept = []
    for e in reversed(body):
        if e.phase == "tangent" and e.out is not None and e.out not in live \
                and e.prim is not LOOP and e.prim is not COND:
            continue
        kept.append(e)
        live.update(x for x in e.ins if isinstance(x, Var))  # (a loop's, an if's: all)
    kept.reverse()
    return kept


@contextlib.contextmanager
def _quiet(on: bool):
    """Warnings off (``on``) while tangents are computed on values that are not this
    call's own: a loop body's stand-ins, an untaken branch.  The compiled code, which
    gives the first call's answer, warns where the values do."""
    if not on:
        yield
        return
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


def _forward_cond(b: Builder, e, tan: dict) -> None:
    """A merged ``if`` whose branches read a tangent: each branch gets its tangent
    equations and binds the tangent of every output that either branch gives one (a
    zero where its own has none, shaped like the output: one signature per output)."""
    data = cond_of(e)
    if not any(isinstance(x, Var) and x in tan for x in e.ins[1:]):
        b.append(e)
        return
    taken = bool(b.value(data.test))
    saved = b.eqns, b.seen
    arms = []
    try:
        for eqns, outs, is_taken in ((data.then, data.then_outs, taken),
                                     (data.orelse, data.else_outs, not taken)):
            b.eqns, b.seen = [], dict(saved[1])
            local = dict(tan)
            with _quiet(not is_taken):  # values this call's branch never had
                _forward_block(b, eqns, local)
            arms.append([b.eqns, outs, [local.get(a) if isinstance(a, Var) else None
                                        for a in outs]])
        active = [i for i in range(len(data.outs)) if any(arm[2][i] is not None
                                                            for arm in arms)]
        b.loc = e.loc
        for arm in arms:
            b.eqns = arm[0]
            eqns, outs, ts = arm
            with _quiet(True):
                arm[2] = [_atom(_fit(b, ts[i], b.value(outs[i])) if ts[i] is not None
                                else _zero_tangent(b, outs[i])) for i in active]
    except ADError as exc:
        raise Unroll() from exc
    finally:
        b.eqns, b.seen = saved
    pick = arms[0][2] if taken else arms[1][2]
    t_outs = tuple(b.new_var(_tangent_hint(data.outs[i]), b.value(t))
                   for i, t in zip(active, pick))
    merged = Cond(data.test, arms[0][0], tuple(data.then_outs) + tuple(arms[0][2]),
                  arms[1][0], tuple(data.else_outs) + tuple(arms[1][2]),
                  tuple(data.outs) + t_outs, data.line, data.taken)
    b.append(cond_eqn(merged, e.loc, e.phase))
    tan.update((data.outs[i], t) for i, t in zip(active, t_outs))


def _tangent(b: Builder, e, ts):
    ins = [_raw(x) for x in e.ins]
    active = [t is not None for t in ts]
    rule = F.lookup(e.prim, e.out, ins, active)
    if rule is None:
        raise MissingRule(f"{_describe(e.prim)} has a reverse-mode rule but no forward-mode "
                          "(JVP) rule for these arguments; use gradient/vjp instead, or write "
                          "the operation with ones that have one", e.loc)
    mark = len(b.eqns)
    try:
        t = rule(ts, e.out, *ins, **dict(e.params))
    except (ADError, Warning):
        raise
    except Exception as exc:
        raise MissingRule(f"the forward derivative of {_describe(e.prim)} failed for these "
                          f"arguments ({type(exc).__name__}: {exc})", e.loc) from exc
    if t is None:
        return None
    t = _fit(b, t, b.value(e.out))
    if isinstance(t, Var) and any(q.out is t for q in b.eqns[mark:]):
        name = Hint("t_" + e.out.name, ("t", e.out.family))  # the tangents of one variable
        t.name = b.namer.fresh(name)  # made by this rule: name it after its primal
        t.family = name.family
    return t


def _fit(b: Builder, t, like):
    """A tangent brought to exactly ``like``'s shape (a smaller one broadcast up)."""
    shape = np.shape(like)
    if np.shape(b.value(t)) == shape:
        return t
    return b.apply(N.fit_shape, (t, shape))


def _returned(b: Builder, node, items, each, hint):
    """A program's output as the derivative returns it: ``node`` of its ``out_tree``
    over its outputs (``items``, an iterator), ``each`` applied to every output atom.
    Tuples stay tuples of atoms (the emitter writes them out); a list is built by one
    equation, and so is a dict, namedtuple or dataclass (``_tree.rebuild``, with
    everything inside it): new containers on every call.  (Module-level: a recursive
    closure would be a reference cycle holding the builder's values.)"""
    kind = node[0]
    if kind == "leaf":
        return each(next(items))
    if kind == "tuple":
        return tuple(_returned(b, c, items, each, hint) for c in node[3])
    if kind == "list":
        return b.record(F.as_list, [_packed(b, _returned(b, c, items, each, hint))
                                  for c in node[3]], hint=hint)
    td = T.TreeDef(node, hint + "_tree")
    atoms = [each(next(items)) for _ in range(td.num_leaves)]
    return b.record(P.rebuild, (Const(td), *atoms), hint=hint)


def _value(b: Builder, out, loc):
    """The value returned for one output atom: numbers and arrays (anything else holding
    a traced value is refused: the emitter writes out tuples and lists only)."""
    if isinstance(_raw(out), np.ndarray):  # a constant of the code: each call gets its own
        return b.record(N.copy, (_raw(out),), hint="value")
    if not isinstance(out, (Var, Const)) and _contains_var(out):
        raise MissingRule(f"forward mode returns floats, arrays, and tuples or lists of them; "
                          f"the function returned a {type(out).__name__} holding traced values",
                          loc)
    return out


def _packed(b: Builder, x):
    """A tuple of atoms inside a list, built by one equation (an operand is one atom)."""
    if isinstance(x, tuple):
        return b.record(F.as_tuple, [_packed(b, i) for i in x], hint="out")
    return x


def _out_tangent(b: Builder, out, tan: dict, shell: Program, taken: list):
    """The tangent of an output atom: a float for a number, an owned array for an array."""
    value = b.value(out) if isinstance(out, Var) else _raw(out)
    t = tan.get(out) if isinstance(out, Var) else None
    if isinstance(value, np.ndarray):
        if t is None:
            t = b.record(N.zeros_like, (out,) if isinstance(out, Var) else (value,),
                       {"dtype": np.float64} if value.dtype.kind != "f" else None,
                       hint="t_out")
        elif isinstance(out, Var):
            t = _owned_grad(b, t, out, shell, [b.value(x) for x in taken])
        taken.append(t)
        return t
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        if t is None:
            return 0.0
        if not isinstance(t, (Var, Const)):
            return Const(float(t))  # a constant seed, returned as it is
        return t if type(b.value(t)) is float else b.apply(B.to_float, (t,), hint="t_out")
    if t is None:
        return None  # not a number: no tangent
    raise MissingRule(f"{shell.name} returned a {type(value).__name__}, which has no "
                      "tangent; return floats, arrays or tuples of them", shell.return_loc)

