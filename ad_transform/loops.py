"""Rolling loops while lowering: a long loop becomes one :class:`~ad_transform.ir.Loop`.

Guarantees of :func:`run_for` and :func:`run_while` (called by the lowering for
every ``for`` and ``while`` statement; they return False to let it unroll the
loop exactly as before):

* loops that run fewer than ``unroll`` times (the option of ``gradient``) are
  unrolled as before, so short loops stay straight-line code;
* an iteration is *probed*: lowered with the variables it rebinds replaced by
  fresh carried variables and the loop index traced (so values derived from
  the index are values of the path, and any decision on them is a guard of
  the body).  When two consecutive probed iterations give the same equations
  up to renaming (same operations, constants, guard outcomes and types), the
  body path is established: the rest of the loop is not interpreted but run
  on concrete values by the body compiled with its guards, until an iteration
  leaves the body's path (a guard fails, or an operation raises).  That
  iteration is then lowered normally (the loop is split), and probing starts
  again after it;
* a loop is rolled only when lowering it again would give the same thing: the
  iteration changes no container and no name other than carried numbers and
  arrays, the loop variable and temporaries that nothing after the loop reads.
  Otherwise (or after a few probes that do not match, or when a probe raises)
  the lowering is rewound to the start of the probe and the loop is unrolled
  as before: never a wrong path.  (A probe that changed a container cannot be
  rewound: :class:`CannotRoll` makes :func:`ad_transform.lower.lower` start
  again with every loop unrolled.)

Concrete values read here: a carried value's type (as ``sig`` does), and the
values of carried and outer variables handed to the compiled body, whose own
guards check every fact the body's path depends on, on every iteration.
"""
from __future__ import annotations

import gast
import numpy as np

from .errors import LoopRun, PathTooLong
from .ir import EXIT, LOOP, Const, Eqn, Loop, Var, body_free, value_kind
from .loops_match import same_iteration
from .scope import read_outside

__all__ = ["run_for", "run_while", "traced_index_ok", "traced_range", "TracedStop",
           "CannotRoll", "DEFAULT_UNROLL"]

DEFAULT_UNROLL = 16  # loops with fewer iterations are unrolled (gradient(..., unroll=))
_PROBES = 4  # probes of one loop that did not match before it is unrolled for good
_ROLLS = 16  # rolled pieces of one loop (each split costs one interpreted iteration)
_RUNAWAY = 50  # a while loop rolls at most max_eqns * _RUNAWAY iterations


# -- what the loop's code may touch (syntax, cached per loop node) ---------------------

def _names(node):
    """(assigned names, loop-target names) of a loop's body, not entering nested scopes."""
    cached = getattr(node, "_ad_roll_names", None)
    if cached is not None:
        return cached
    assigned, stack = set(), list(node.body)
    while stack:
        n = stack.pop()
        if isinstance(n, gast.Name) and isinstance(n.ctx, (gast.Store, gast.Del)):
            assigned.add(n.id)
        elif isinstance(n, gast.Subscript) and isinstance(n.ctx, gast.Store):
            base = n.value
            while isinstance(base, gast.Subscript):
                base = base.value
            if isinstance(base, gast.Name):
                assigned.add(base.id)
        elif isinstance(n, gast.AugAssign) and isinstance(n.target, gast.Subscript):
            base = n.target.value
            while isinstance(base, gast.Subscript):
                base = base.value
            if isinstance(base, gast.Name):
                assigned.add(base.id)
        if isinstance(n, gast.FunctionDef):
            assigned.add(n.name)
            continue
        if isinstance(n, (gast.Lambda, gast.ListComp, gast.GeneratorExp, gast.SetComp,
                          gast.DictComp)):
            continue
        stack.extend(gast.iter_child_nodes(n))
    targets = set()  # this loop's and nested loops' variables: not carried
    fors = [node] if isinstance(node, gast.For) else []
    fors += [n for st in node.body for n in gast.walk(st) if isinstance(n, gast.For)]
    for loop in fors:
        stack = [loop.target]
        while stack:
            n = stack.pop()
            if isinstance(n, gast.Name):
                targets.add(n.id)
            stack.extend(gast.iter_child_nodes(n))
    node._ad_roll_names = (frozenset(assigned - targets), frozenset(targets))
    return node._ad_roll_names


def _carryable(b, v) -> bool:
    """A value a loop may carry: a traced number or array, or a plain int/float."""
    if isinstance(v, Var):
        value = b.values[v]
        return not isinstance(value, (bool, np.bool_)) and (
            isinstance(value, (int, float, np.number)) or type(value) is np.ndarray)
    return type(v) in (int, float)


def _containers(lw):
    """Identity and items of every container the running frames can reach: an iteration
    that changes one is not rolled (nor rewound)."""
    seen, out = set(), []

    def visit(v):
        if isinstance(v, (list, dict, tuple, set)) and id(v) not in seen:
            seen.add(id(v))
            items = list(v.items()) if isinstance(v, dict) else list(v)
            out.append((id(v), tuple(map(id, items)) if not isinstance(v, dict)
                        else tuple((k, id(i)) for k, i in items)))
            for i in (v.values() if isinstance(v, dict) else v):
                visit(i)

    scopes, done = [lw.scope, *lw.frames], set()
    for s in scopes:
        while s is not None and id(s) not in done:
            done.add(id(s))
            for v in s.locals.values():
                visit(v)
            s = s.parent
    return out


# -- snapshots of the lowering ---------------------------------------------------------

class _Snapshot:
    def __init__(self, lw):
        b = lw.b
        self.locals = dict(lw.scope.locals)
        self.n_eqns, self.n_dec = len(b.eqns), len(lw.decisions)
        self.seen, self.guarded, self.loads = dict(b.seen), dict(lw.guarded), dict(lw.loads)
        self.namer = (set(b.namer.used), dict(b.namer.counters))
        self.containers = _containers(lw)
        self.loc = b.loc

    def caches(self, lw):
        """Start an iteration from the caches of the snapshot (so two iterations lower
        alike, and nothing defined inside one iteration is reused outside it)."""
        lw.b.seen, lw.guarded, lw.loads = dict(self.seen), dict(self.guarded), dict(self.loads)

    def rewind(self, lw, namer=None):
        b = lw.b
        lw.scope.locals.clear()
        lw.scope.locals.update(self.locals)
        del b.eqns[self.n_eqns:]
        del lw.decisions[self.n_dec:]
        self.caches(lw)
        used, counters = namer or self.namer
        b.namer.used, b.namer.counters = set(used), dict(counters)
        b.loc = self.loc


class _Probe:
    """One iteration lowered with its carried variables and index traced."""

    def __init__(self, names, phis, inits, index):
        self.names, self.phis, self.inits, self.index = names, phis, inits, index
        self.body = self.decisions = self.nexts = None
        self.namer = None
        self.exit = None  # while loops: (the EXIT equation, the guard it replaced)


def _probe(lw, s, snap, state, index_value, item_of, active=frozenset()):
    """Lower one iteration of loop ``s`` in loop mode from ``state`` (name -> value of
    the carried names).  Returns a :class:`_Probe`, or None when the iteration cannot
    be part of a rolled loop (the caller rewinds)."""
    b = lw.b
    assigned, targets = _names(s)
    snap.caches(lw)
    names = sorted(state)
    phis = []
    for name in names:
        v = state[name]
        value = b.values[v] if isinstance(v, Var) else v
        phi = b.new_var(name, value)
        if (isinstance(v, Var) and v in b.active) or name in active:
            b.active.add(phi)
        phis.append(phi)
        lw.scope.locals[name] = phi
    hint = s.target.id if isinstance(s, gast.For) and isinstance(s.target, gast.Name) and \
        getattr(item_of, "is_index", False) else "index"
    index = b.new_var(hint, index_value) if index_value is not None else None
    probe = _Probe(names, tuple(phis), tuple(state[n] for n in names), index)
    mark, dmark = len(b.eqns), len(lw.decisions)
    lw.in_loop += 1
    try:
        if isinstance(s, gast.While):
            test = lw.eval(s.test)
            if not isinstance(test, Var):
                if not test:
                    return None
            else:
                before = len(b.eqns)
                if not lw.truth(test, s.test):
                    return None
                if len(b.eqns) != before + 1 or b.eqns[-1].ins != (test,):
                    return None  # the test was decided before (no guard of its own here)
                g = b.eqns.pop()
                probe.exit = (Eqn(EXIT, (test,), None, g.loc, (), g.phase), g)
                b.eqns.append(probe.exit[0])
        else:
            b.loc = lw.loc(s)
            lw.assign(s.target, item_of(index))
        try:
            lw.exec_block(s.body)
        except lw.Continue:
            pass
    except (lw.Break, lw.Return):
        return None
    finally:
        lw.in_loop -= 1
    probe.body = b.eqns[mark:]
    probe.decisions = lw.decisions[dmark:]
    probe.namer = (set(b.namer.used), dict(b.namer.counters))
    nexts = []
    for name, phi in zip(names, phis):
        v = lw.scope.locals.get(name, _UNBOUND)
        if not _carryable(b, v) or _kind(b, v) != phi.kind:
            return None
        nexts.append(v if isinstance(v, Var) else Const(v))
    probe.nexts = tuple(nexts)
    # every other name the body binds: unchanged, or a temporary nothing after reads
    reads = read_outside(lw.src.node, s)
    for name in (assigned | targets) - set(names):
        before = snap.locals.get(name, _UNBOUND)
        now = lw.scope.locals.get(name, _UNBOUND)
        if now is before:
            continue
        if name in reads or (before is not _UNBOUND and name not in targets):
            return None
    if _containers(lw) != snap.containers:
        probe.mutated = True
        return probe
    probe.mutated = False
    return probe


_UNBOUND = object()


def _kind(b, v) -> str:
    return v.kind if isinstance(v, Var) else value_kind(v)


# -- running the rest of the loop on concrete values -----------------------------------

def _run_rest(lw, data, values):
    """Run ``data`` (a loop over the probed body) from the carried ``values``; returns
    (stopped early?, iterations completed, carried values at the stop)."""
    from .loops_emit import compile_runner
    b = lw.b
    free = body_free(data.body, set(data.phis) | ({data.index} if data.index is not None else set()))
    cap = b.max_eqns * _RUNAWAY
    fn = compile_runner(data, free, b.namer.used, cap, lw.src.name)
    exc, n, state = fn(*values, *(b.values[x] for x in free))
    if exc is None and data.kind == "while" and n >= cap:
        raise PathTooLong(f"a while loop ran {n} iterations; is it running away? (raise "
                          "max_eqns= to allow more)", b.loc)
    return exc is not None, n, state


def _carried(lw, s):
    """name -> value of the names the loop body rebinds that it can carry, or None when
    a rebound name holds something else (a list, a string...) whose change we cannot
    trace; then the loop is unrolled."""
    assigned, _ = _names(s)
    state = {}
    for name in assigned:
        v = lw.scope.locals.get(name, _UNBOUND)
        if v is _UNBOUND:
            continue
        if _carryable(lw.b, v):
            state[name] = v
    return state


def _try_roll(lw, s, k, total, item_of, index_of, bounds_of, active=frozenset()):
    """Probe iterations k and k+1; roll from k when they match.  Returns the number of
    iterations the rolled loop covers and whether the loop ended inside it, or None
    (lowering rewound to iteration k, nothing changed) or "mutated" (could not rewind:
    the probed iterations stay, as unrolled code)."""
    b = lw.b
    snap = _Snapshot(lw)
    state = _carried(lw, s)
    p0 = _guarded_probe(lw, s, snap, state, index_of(k), item_of, active)
    if p0 is None or p0.mutated:
        return _give_up(lw, snap, p0)
    state1 = {n: (v if isinstance(v, Var) else v.value) for n, v in zip(p0.names, p0.nexts)}
    if total is not None and k + 1 >= total:
        snap.rewind(lw)
        return None
    p1 = _guarded_probe(lw, s, snap, state1, index_of(k + 1), item_of)
    if p1 is None or p1.mutated:
        return _give_up(lw, snap, p1)
    if not same_iteration(b, p0, p1):
        snap.rewind(lw)
        if not active and same_iteration(b, p0, p1, activity=False):
            # the first iteration made a carried value depend on a wrt input: probe
            # again with it active from the start (once: with none to make active, the
            # probes differ in something else, and probing again would repeat forever)
            again = frozenset(n for n, p, x, y in zip(p1.names, p1.phis, p0.nexts, p1.nexts)
                              if p in b.active or x in b.active or y in b.active)
            if again:
                return _try_roll(lw, s, k, total, item_of, index_of, bounds_of, again)
        return None
    # the body path is established: run the rest of the loop on concrete values
    start = [b.values[v] if isinstance(v, Var) else v.value for v in p1.nexts]
    seen = 2
    left = False
    if total is None or k + 2 < total:
        data = Loop(s.__class__.__name__.lower(), p0.body, p0.phis, p0.phis, p0.nexts, (),
                    p0.index, bounds_of(k + 2, total) if total is not None else ())
        left, n, start = _run_rest(lw, data, start)
        start = list(start)
        seen += n
    if k == 0 and not left and seen < lw.unroll:
        snap.rewind(lw)
        return "short"
    snap.rewind(lw, p0.namer)
    lw.decisions.extend(p0.decisions)
    _drop_dead(lw, s, p0, p1, start)
    outs = tuple(b.new_var(name, value) for name, value in zip(p0.names, start))
    for name, out, p, q in zip(p0.names, outs, p0.phis, p1.phis):
        if p in b.active or q in b.active:
            b.active.add(out)
        lw.scope.locals[name] = out
    free = body_free(p0.body, set(p0.phis) | ({p0.index} if p0.index is not None else set()))
    b.loc = lw.loc(s)
    kind, body, bounds = s.__class__.__name__.lower(), p0.body, ()
    sym = lw.rolling_stop
    if total is not None:
        bounds = bounds_of(k, k + seen)
        if sym is not None and not left and k + seen == total and bounds[2] == 1:
            bounds = (bounds[0], sym.stop, 1)  # range(k, n): n is a value of the path
            _relax(lw, sym, k)
            lw.rolling_stop = None
    elif left:  # a while loop left its body's path: exactly these iterations, test guarded
        kind, bounds = "for", (0, seen, 1)
        if p0.exit is not None:
            body = [p0.exit[1] if x is p0.exit[0] else x for x in body]
    data = Loop(kind, body, p0.phis, p0.inits, p0.nexts, outs, p0.index, bounds,
                tuple(free), seen, _loop_text(s, lw))
    data.inits = tuple(x if isinstance(x, Var) else Const(x) for x in data.inits)
    inits = tuple(dict.fromkeys(x for x in data.inits if isinstance(x, Var)))
    stops = tuple(x for x in bounds if isinstance(x, Var) and x not in free)
    b.append(Eqn(LOOP, inits + tuple(free) + stops, None, b.loc, (("loop", data),)))
    return seen, not left


def _drop_dead(lw, s, p0, p1, start):
    """Stop carrying a name the body does not read (a temporary bound before the loop)
    when nothing after the loop reads it or the body leaves it unchanged: after the loop
    it keeps its value from before the loop, which is right or never read."""
    used = set(body_free(p0.body, set()))
    reads = read_outside(lw.src.node, s)
    keep = [i for i, (name, phi, nxt) in enumerate(zip(p0.names, p0.phis, p0.nexts))
            if phi in used or (nxt is not phi and name in reads)]
    if len(keep) == len(p0.names):
        return
    for p in (p0, p1):
        p.names = [p.names[i] for i in keep]
        p.phis = tuple(p.phis[i] for i in keep)
        p.inits = tuple(p.inits[i] for i in keep)
        p.nexts = tuple(p.nexts[i] for i in keep)
    start[:] = [start[i] for i in keep]


def _guarded_probe(lw, s, snap, *args):
    """:func:`_probe`, where an error (a traced index reaching code that needs a plain
    int, a refusal, or the user's own error) means "not rolled here": the lowering is
    rewound, and unrolling the iteration raises the error again if it is real."""
    try:
        return _probe(lw, s, snap, *args)
    except CannotRoll:
        raise
    except Exception:
        if _containers(lw) != snap.containers:
            raise CannotRoll() from None
        return None


def _give_up(lw, snap, probe):
    if probe is not None and probe.mutated:
        raise CannotRoll()
    snap.rewind(lw)
    return None


def _loop_text(s, lw) -> str:
    loc = lw.loc(s)
    return loc.text.strip() if loc is not None and loc.text else type(s).__name__.lower()


# -- range(n) with a traced n: a loop that rolls to its end runs range(n) -----------------

class TracedStop:
    """``range(start, n)`` for a traced int ``n``: the range it has on this call, and the
    guard ``n == <value>`` that :func:`traced_range` recorded for it.  When the loop's
    last piece rolls to the end, :func:`_relax` makes ``n`` a value of the path: the
    rolled loop runs ``range(k, n)`` and the guard becomes ``n >= k``."""

    def __init__(self, rng, stop, guard, key, expect):
        self.range, self.stop, self.guard, self.key, self.expect = rng, stop, guard, key, expect


def traced_range(lw, start, stop, node):
    """``range(start, stop)`` for the loop ``for`` statement being lowered, ``stop`` a
    traced int: the concrete range, guarded by value (as ``range`` is), wrapped in a
    :class:`TracedStop` when the guard can later be relaxed."""
    before = len(lw.b.eqns)
    n = lw.concrete(stop, node)
    rng = range(start, n)
    if len(lw.b.eqns) != before + 1 or not lw.b.eqns[-1].prim.is_guard:
        return rng  # already guarded by value: keep it so
    from .rules import builtins as B
    key = (B.guard_eq, (stop,))
    if lw.guarded.get(key, None) is None:
        return rng
    expect = lw.guarded.pop(key)  # reads of n inside the loop get guards of their own
    return TracedStop(rng, stop, lw.b.eqns[-1], key, expect)


def _settle(lw, sym, relaxed):
    """After the loop: the guard by value stays (and counts for later reads of ``n``)
    unless :func:`_relax` replaced it."""
    if sym is not None and not relaxed:
        lw.guarded.setdefault(sym.key, sym.expect)


def _relax(lw, sym, k):
    """The loop rolled from iteration ``k`` to its end: the guard of ``n``'s value becomes
    ``n >= k`` (at the same place and index), so every ``n`` that runs the iterations
    before ``k`` takes this path."""
    from .rules import builtins as B
    b = lw.b
    i = next(j for j in range(len(b.eqns) - 1, -1, -1) if b.eqns[j] is sym.guard)
    g = sym.guard
    start = sym.range.start
    bound = start + k * sym.range.step
    ge = b.new_var("enough", True)
    test = Eqn(B.ge, (sym.stop, Const(bound)), ge, g.loc, (), "primal")
    params = dict(g.params)
    guard = Eqn(B.guard_truth, (ge,), None, g.loc,
                tuple(sorted({"expect": True, "index": params["index"]}.items())), "primal")
    b.eqns[i:i + 1] = [test, guard]
    lw.decisions[params["index"]] = True
    lw.guarded[(B.guard_truth, (ge,))] = True


# -- the drivers -----------------------------------------------------------------------

def _eligible(lw, s) -> bool:
    if not lw.unroll:
        return False
    # a body that appends to or writes into containers changes state we cannot rewind
    for n in (x for st in s.body for x in gast.walk(st)):
        if isinstance(n, (gast.Yield, gast.YieldFrom, gast.Global, gast.Nonlocal)):
            return False
        if isinstance(n, gast.Call) and isinstance(n.func, gast.Attribute) and \
                n.func.attr in ("append", "extend", "insert", "pop", "remove", "clear",
                                "update", "setdefault", "popitem", "add", "discard"):
            return False
    return True


def run_for(lw, s, iterable) -> bool:
    """Lower ``for`` statement ``s`` over ``iterable`` with rolled pieces; False when it
    is not a loop to roll (the caller unrolls it).  A :class:`TracedStop` whose loop
    rolls to its end runs ``range(k, n)`` on the traced ``n`` (see :func:`_relax`)."""
    b = lw.b
    sym = iterable if isinstance(iterable, TracedStop) else None
    if sym is not None:
        iterable = sym.range
    if isinstance(iterable, range):
        total = len(iterable)
        def item_of(index):
            return index
        item_of.is_index = True
        def index_of(k):
            return iterable[k]
        def bounds_of(k, stop):
            r = iterable[k:stop]
            return (r.start, r.stop, r.step)
        def concrete_item(k):
            return iterable[k]
    elif isinstance(iterable, Var) and type(b.values[iterable]) is np.ndarray and \
            b.values[iterable].ndim >= 1:
        from .rules import builtins as B
        total = len(b.values[iterable])  # the shape is part of the path
        def item_of(index):
            b.loc = lw.loc(s.iter)
            return b.apply(B.getitem, (iterable, index), None, "item")
        def index_of(k):
            return k
        def bounds_of(k, stop):
            return (k, stop, 1)
        def concrete_item(k):
            return lw.getitem(iterable, k, s.iter)
    else:
        return False
    if total < lw.unroll or not isinstance(s.target, gast.Name) and isinstance(
            iterable, range) or not _eligible(lw, s):
        _settle(lw, sym, False)
        return False
    run, outer = LoopRun(), lw.trip
    lw.rolling_stop = sym
    try:
        return _for_pieces(lw, s, total, item_of, index_of, bounds_of, concrete_item, run,
                           outer)
    finally:
        lw.trip = outer
        _settle(lw, sym, lw.rolling_stop is None)
        lw.rolling_stop = None


def _for_pieces(lw, s, total, item_of, index_of, bounds_of, concrete_item, run, outer):
    b = lw.b
    k, probes, rolls = 0, 0, 0
    while k < total:
        if probes < _PROBES and rolls < _ROLLS and total - k >= 2:
            got = _try_roll(lw, s, k, total, item_of, index_of, bounds_of)
            if got == "short":
                got, probes = None, _PROBES
            if got is not None:
                rolls += 1
                k += got[0]
                run.count += got[0]
                if got[1] or k >= total:
                    break
            else:
                probes += 1
        # one iteration lowered as before (after a probe that failed, or where the
        # iterations left the rolled body's path), marked with its iteration number
        run.count += 1
        lw.trip = outer + ((run, run.count),)
        b.loc = lw.loc(s)
        lw.assign(s.target, concrete_item(k))
        k += 1
        if _body_once(lw, s, outer):
            return True
    lw.trip = outer
    lw.exec_block(s.orelse)
    return True


def _body_once(lw, s, outer) -> bool:
    """One iteration of loop ``s``'s body lowered as before (unrolled); True when it
    breaks out of the loop."""
    lw.loops[s] = lw.loops.get(s, 0) + 1
    try:
        lw.exec_block(s.body)
    except lw.Break:
        return True
    except lw.Continue:
        pass
    lw.trip = outer
    return False


def run_while(lw, s) -> bool:
    """Lower ``while`` statement ``s`` with rolled pieces; False when it is not a loop
    to roll."""
    if not _eligible(lw, s):
        return False
    run, outer = LoopRun(), lw.trip
    try:
        return _while_pieces(lw, s, run, outer)
    finally:
        lw.trip = outer


def _while_pieces(lw, s, run, outer):
    k, probes, rolls = 0, 0, 0
    while True:
        if probes < _PROBES and rolls < _ROLLS:
            got = _try_roll(lw, s, k, None, None, lambda k: None, None)
            if got == "short":
                if k == 0:
                    return False  # a short loop: unrolled by the lowering as before
                got, probes = None, _PROBES
            if got is not None:
                rolls += 1
                k += got[0]
                run.count += got[0]
                if got[1]:
                    lw.exec_block(s.orelse)
                    return True
            else:
                probes += 1
        lw.trip = outer + ((run, run.count + 1),)  # its test belongs to it
        lw.b.loc = lw.loc(s)
        if not lw.truth(lw.eval(s.test), s.test):
            lw.trip = outer
            lw.exec_block(s.orelse)
            return True
        run.count += 1
        k += 1
        if _body_once(lw, s, outer):
            return True


class CannotRoll(Exception):
    """Raised through the lowering when a probe changed a container (see
    :func:`ad_transform.lower.lower`, which lowers the function again unrolled)."""


# -- indexing inside a loop being probed -----------------------------------------------

def traced_index_ok(lw, obj, idx) -> bool:
    """``obj[idx]`` with a traced int index into an array: the result's signature does
    not depend on the index's value, so the index stays a value of the path."""
    target = lw.sig(obj) if isinstance(obj, Var) else obj
    if type(target) is not np.ndarray or target.ndim == 0:
        return False
    parts = idx if isinstance(idx, tuple) else (idx,)
    if len(parts) > target.ndim or not any(isinstance(p, Var) for p in parts):
        return False
    return all(type(p) is int or (isinstance(p, Var) and type(lw.sig(p)) is int)
               for p in parts)
