"""Merging an ``if`` statement's two branches into one :class:`~ad_transform.ir.Cond`.

A path decides every ``if`` on the values of the call that lowered it, and a guard
re-checks the decision.  Inputs that decide independent ``if`` s at random (signs,
thresholds) then take a new path on almost every call: each is lowered, reversed and
run once.  Once a function has taken a few paths (:attr:`PathCache.merge_from
<ad_transform.cache.PathCache.merge_from>`), its new paths are lowered with
``merge=True``, and an ``if`` whose branches are simple enough becomes one equation
that holds both: the generated code has the ``if``, and its adjoint an ``if`` on the
same test, so one compiled path serves every outcome.

Guarantees of :func:`run_if` (called by the lowering for an ``if`` whose test is a
traced value; it returns False to let the lowering decide the test and guard it, as
without merging):

* both branches are lowered, each from the state before the statement; the result
  is one :data:`~ad_transform.ir.COND` equation whose outputs are the names either
  branch rebinds, bound after it to the values of the branch the inputs take;
* only where that is the same as lowering each branch on its own path: the branches
  are straight-line (assignments to names, expressions, nested ``if`` s), call
  registered primitives, array methods that change nothing and computing builtins
  only (no inlined helper, no library call the lowering cannot see into, no container
  method), record no decision (no guard: every fact they
  consult was already fixed), and raise no error and no warning on this call's
  values; every name either branch rebinds is bound after both, to Python numbers or
  traced values of one signature (type; an array's shape and dtype), except a
  temporary of one branch (unbound before, read nowhere outside the statement), which
  is left unbound.  Otherwise the
  lowering is rewound to the statement and the test decided as before;
* with ``merge`` (a function's third path on), and in the iterations of a loop that
  :mod:`ad_transform.loops` probes for rolling whenever loops roll: a body whose
  iterations decide an ``if`` differently is then one body, and the loop rolls.
  Never in derivatives read back (``unroll=0``).  (Forward mode gives a merged
  ``if`` its tangent: :func:`ad_transform.forward.forward`.)

Concrete values read here: the signatures of the values the branches bind (as
``sig`` does), and the test's truth, to continue the path with the values of the
branch this call takes.  That reads no fact the path depends on: both branches are
in the code, and the values they bind have one signature.

:func:`reverse_cond` is the adjoint: an ``if`` on the same test whose branches
recompute their primal values and run the branch's adjoint; :func:`prune_cond` drops
what a branch computes that nothing uses.
"""
from __future__ import annotations

import types
import warnings

import gast
import numpy as np

from .ir import Cond, Const, Var, cond_eqn, cond_of
from .scope import read_outside

__all__ = ["run_if", "call_allowed", "reverse_cond", "prune_cond", "propagate_cond",
           "Unmerge"]


class _NoMerge(Exception):
    """A branch does something the merge cannot carry: decide the test instead."""


class Unmerge(Exception):
    """The adjoint of a merged ``if`` could not be built on this call's values: the
    pipeline lowers the path again without merging."""


_UNBOUND = object()
_EXPR_REFUSED = (gast.Lambda, gast.ListComp, gast.SetComp, gast.DictComp, gast.GeneratorExp,
                 gast.NamedExpr, gast.Yield, gast.YieldFrom, gast.Await)


def _simple(stmts) -> bool:
    """Straight-line statements: assignments to names, expressions, passes, nested ifs."""
    for s in stmts:
        if isinstance(s, gast.If):
            if not (_simple(s.body) and _simple(s.orelse)):
                return False
        elif isinstance(s, gast.Assign):
            if not all(_names_only(t) for t in s.targets):
                return False
        elif isinstance(s, gast.AugAssign):
            if not isinstance(s.target, gast.Name):
                return False
        elif not isinstance(s, (gast.Expr, gast.Pass)):
            return False
        if any(isinstance(n, _EXPR_REFUSED) for n in gast.walk(s)):
            return False
    return True


def _names_only(t) -> bool:
    if isinstance(t, gast.Name):
        return True
    return isinstance(t, (gast.Tuple, gast.List)) and all(_names_only(e) for e in t.elts)


def _mergeable(s) -> bool:
    cached = getattr(s, "_ad_mergeable", None)
    if cached is None:
        cached = _simple(s.body) and _simple(s.orelse)
        try:
            s._ad_mergeable = cached
        except AttributeError:
            pass
    return cached


# array methods that return a new value and change nothing (on a traced array, or folded
# on a constant one), and builtins that only compute
_PURE_METHODS = frozenset({
    "reshape", "ravel", "flatten", "squeeze", "transpose", "swapaxes", "copy", "astype",
    "sum", "mean", "prod", "max", "min", "std", "var", "cumsum", "cumprod", "dot", "clip",
    "round", "any", "all", "conj", "trace", "diagonal", "take", "repeat"})
_PURE_BUILTINS = frozenset({abs, min, max, sum, float, int, bool, round, pow, len})


def call_allowed(lw, func) -> None:
    """While a branch is lowered for a merge: only registered primitives, the array
    methods and builtins above may be called (an inlined helper or a library call could
    change state the rewind cannot undo)."""
    from .rules import lookup
    from .values import VarMethod
    if isinstance(func, VarMethod) or (isinstance(func, types.BuiltinMethodType) and isinstance(
            getattr(func, "__self__", None), np.ndarray)):
        if (func.name if isinstance(func, VarMethod) else func.__name__) in _PURE_METHODS:
            return
        raise _NoMerge()
    try:
        prim = lookup(func)
        if func in _PURE_BUILTINS:
            return
    except TypeError:  # unhashable
        prim = None
    if prim is None or getattr(prim, "user_code", False) or prim.opaque or prim.may_mutate:
        raise _NoMerge()


class _State:
    """What lowering a branch may change, to rewind it."""

    def __init__(self, lw):
        b = lw.b
        self.eqns = len(b.eqns)
        self.seen = dict(b.seen)
        self.active = set(b.active)
        self.locals = dict(lw.scope.locals)
        self.scope = lw.scope
        self.decisions = len(lw.decisions)
        self.guarded = dict(lw.guarded)
        self.loads = dict(lw.loads)
        self.inlined = len(lw.inlined_paths)
        self.loc = b.loc

    def rewind(self, lw):
        b = lw.b
        del b.eqns[self.eqns:]
        b.seen = dict(self.seen)
        b.active = set(self.active)
        lw.scope = self.scope
        lw.scope.locals.clear()
        lw.scope.locals.update(self.locals)
        del lw.decisions[self.decisions:]
        lw.guarded = dict(self.guarded)
        lw.loads = dict(self.loads)
        del lw.inlined_paths[self.inlined:]
        b.loc = self.loc


def _branch(lw, stmts, state: _State):
    """Lower one branch from ``state``: (its equations, the names it binds, active set)."""
    lw.exec_block(stmts)
    if len(lw.decisions) != state.decisions or lw.scope is not state.scope:
        raise _NoMerge()
    eqns = lw.b.eqns[state.eqns:]
    if any(e.prim.is_guard for e in eqns):
        raise _NoMerge()
    return eqns, dict(lw.scope.locals), set(lw.b.active)


def _signature(lw, v):
    """The join signature of a bound value, or None where it cannot be joined."""
    value = lw.sig(v) if isinstance(v, Var) else v
    t = type(value)
    if t is np.ndarray:
        return (t, value.shape, value.dtype)
    if t in (float, int, bool) or isinstance(value, np.generic):
        return (t,)
    return None


def run_if(lw, s, test) -> bool:
    """Lower ``if`` statement ``s``, whose test evaluated to the traced ``test``, as one
    :data:`~ad_transform.ir.COND` equation; False (nothing changed) where it cannot."""
    if not (lw.merge or lw.in_loop and lw.merge_loops) or not _mergeable(s):
        return False
    state = _State(lw)
    lw.speculating += 1
    try:
        with warnings.catch_warnings(), np.errstate(all="raise"):
            warnings.simplefilter("error")
            then, then_env, then_active = _branch(lw, s.body, state)
            state.rewind(lw)
            orelse, else_env, else_active = _branch(lw, s.orelse, state)
            state.rewind(lw)
        joined, dropped = _join(lw, s, state.locals, then_env, else_env)
    except Exception:  # anything: decide the test instead, as without merging
        state.rewind(lw)
        return False
    finally:
        lw.speculating -= 1
    taken = bool(lw._fact(test))  # which branch's values continue the path (see above)
    outs, then_outs, else_outs = [], [], []
    for name, (t, f) in joined.items():
        now = t if taken else f  # the value this call continues with
        v = lw.b.new_var(name, lw.sig(now) if isinstance(now, Var) else now)
        if (isinstance(t, Var) and t in then_active) or (isinstance(f, Var) and f in else_active):
            lw.b.active.add(v)
        outs.append(v)
        then_outs.append(t if isinstance(t, Var) else Const(t))
        else_outs.append(f if isinstance(f, Var) else Const(f))
        lw.scope.locals[name] = v
    for name, value in (then_env if taken else else_env).items():
        if name not in joined and name not in dropped and \
                state.locals.get(name, _UNBOUND) is not value:
            lw.scope.locals[name] = value  # the same object after both branches
    data = Cond(test, then, tuple(then_outs), orelse, tuple(else_outs), tuple(outs),
                _line(lw, s), taken)
    lw.b.loc = lw.loc(s)
    lw.b.append(cond_eqn(data, lw.b.loc))
    return True


def _join(lw, s, before, then_env, else_env):
    """``(joined, dropped)``: name -> (value after ``then``, value after ``orelse``) for
    every name a branch rebinds to another object, and the names one branch binds that
    were unbound before and that nothing outside the statement reads (a branch's
    temporaries: left unbound after it); raises :class:`_NoMerge` where they cannot be
    joined."""
    joined, dropped = {}, set()
    for name in dict.fromkeys([*then_env, *else_env]):
        old = before.get(name, _UNBOUND)
        t, f = then_env.get(name, _UNBOUND), else_env.get(name, _UNBOUND)
        if t is old and f is old:
            continue
        if t is _UNBOUND or f is _UNBOUND:
            if old is _UNBOUND and name not in read_outside(lw.src.node, s):
                dropped.add(name)
                continue
            raise _NoMerge()  # bound by one branch only, and read after it
        if t is f:
            continue
        sig_t, sig_f = _signature(lw, t), _signature(lw, f)
        if sig_t is None or sig_t != sig_f:
            raise _NoMerge()
        joined[name] = (t, f)
    return joined, dropped


def _line(lw, s) -> str:
    return lw.loc(s).text.strip()


# -- the adjoint ---------------------------------------------------------------------

def propagate_cond(e, active: set, propagate) -> None:
    """Activity through a merged ``if``: an output is active when either branch's is."""
    data = cond_of(e)
    propagate(data.then, active)
    propagate(data.orelse, active)
    for o, t, f in zip(data.outs, data.then_outs, data.else_outs):
        if (isinstance(t, Var) and t in active) or (isinstance(f, Var) and f in active):
            active.add(o)


def reverse_cond(b, e, adj: dict, active: set, record: list, owned: dict,
                 backprop, zero_like, fit, dname) -> None:
    """The adjoint of a merged ``if``: an ``if`` on the same test.  Each branch
    recomputes its primal values, runs its adjoint from the outputs' adjoints, and binds
    its contribution to each outer variable (zero where it has none), brought to the
    variable's signature so both branches bind one; the sums then flow on as usual."""
    from .builder import _cse_key
    from .rules import builtins as B
    data = cond_of(e)
    seeds = [(i, adj.pop(o)) for i, o in enumerate(data.outs) if o in adj]
    if not seeds:
        return
    taken = bool(b.value(data.test))
    # an outer array whose adjoint is a buffer of its own (reverse._accumulate): each
    # branch adds its reads into that buffer in place (d_x[i] += g) and binds it, rather
    # than building a full-size contribution to add afterwards
    carry = {x: adj[x] for x in e.ins[1:] if isinstance(x, Var) and x in adj
             and isinstance(adj[x], Var) and owned.get(adj[x]) is x
             and isinstance(b.value(adj[x]), np.ndarray)}
    saved_eqns, saved_seen = b.eqns, b.seen
    branches = []
    try:
        for branch, outs, is_taken in ((data.then, data.then_outs, taken),
                                       (data.orelse, data.else_outs, not taken)):
            b.eqns, b.seen = list(branch), dict(saved_seen)
            for x in branch:  # its adjoint reuses what it computes (cos(x) for sin's rule)
                key = None if x.out is None else _cse_key(x.prim, x.ins, dict(x.params))
                if key is not None:
                    b.seen.setdefault(key, x.out)
            local: dict = dict(carry)
            with warnings.catch_warnings():
                if not is_taken:  # computed on values this call's branch never had
                    warnings.simplefilter("ignore")
                for i, g in seeds:
                    a = outs[i]
                    if isinstance(a, Var) and a in active:
                        local[a] = g if a not in local else b.apply(B.add, (local[a], g))
                for x in reversed(branch):
                    backprop(b, x, local, active, record, owned)
            branches.append((b.eqns, local))
        targets = list(dict.fromkeys(x for _, local in branches for x in local))
        douts = []
        b.loc = e.loc
        for k, (eqns, local) in enumerate(branches):
            b.eqns, b.seen = eqns, dict(saved_seen)
            with warnings.catch_warnings():
                if k == (0 if not taken else 1):
                    warnings.simplefilter("ignore")
                douts.append(tuple(fit(b, local[x], x) if x in local else zero_like(b, x)
                                   for x in targets))
    except Exception as exc:
        raise Unmerge() from exc
    finally:
        b.eqns, b.seen = saved_eqns, saved_seen
    pick = douts[0] if taken else douts[1]
    outs = tuple(b.new_var(dname(x), b.value(g)) for x, g in zip(targets, pick))
    then_outs, else_outs = ([a if isinstance(a, Var) else Const(a) for a in d] for d in douts)
    rev = Cond(data.test, branches[0][0], tuple(then_outs), branches[1][0], tuple(else_outs),
               outs, data.line, data.taken)
    b.loc = e.loc
    b.append(cond_eqn(rev, e.loc, "adjoint"))
    for x, d in zip(targets, outs):
        if x in carry:  # the buffer, with this statement's reads added
            adj[x] = d
            owned[d] = x
        else:
            adj[x] = d if x not in adj else b.apply(B.add, (adj[x], d), hint=dname(x))
        record.append((adj[x], x, False))


def prune_cond(e, live: set, prune_block):
    """``e`` with the outputs nothing uses dropped and each branch pruned to what its
    remaining outputs need (and what may raise); None when nothing is left."""
    data = cond_of(e)
    keep = [i for i, o in enumerate(data.outs) if o in live]
    then = prune_block(data.then, {x for i in keep for x in [data.then_outs[i]]
                                   if isinstance(x, Var)})
    orelse = prune_block(data.orelse, {x for i in keep for x in [data.else_outs[i]]
                                       if isinstance(x, Var)})
    if not keep and not then and not orelse:
        return None
    pruned = Cond(data.test, then, tuple(data.then_outs[i] for i in keep), orelse,
                  tuple(data.else_outs[i] for i in keep), tuple(data.outs[i] for i in keep),
                  data.line, data.taken)
    return cond_eqn(pruned, e.loc, e.phase)
