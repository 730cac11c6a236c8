"""Loop equations -> Python loops in the generated code.

Guarantees of :func:`emit_loop`: a :class:`~ad_transform.ir.Loop` becomes one
Python ``for``/``while`` statement, preceded by a comment naming the source
line of the loop and the trip count seen when it was lowered; the carried
variables are assigned their initial values before it, updated by the end of
each iteration and copied to the loop's results after it: the equation that
computes a carried variable's next value writes the variable itself when
nothing reads the variable's old value later in the iteration, the others are
assigned at its end by one tuple assignment (so they change together; always so
in :func:`compile_runner`, which reports an iteration's starting values); every
guard of the body is checked on every iteration and raises ``PathMiss`` as a
guard outside loops does; a while loop's test leaves the loop: in the
``while`` header when the body starts with it (the equations computing it read
by nothing else and written as one expression), else ``while True`` and
``if not test: break``;
tapes are plain lists named after what they save (``x_tape``, appended to
through a bound ``append``) and walked in reverse by the adjoint loop (``for x
in reversed(x_tape)``, zipped with the reversed index range or the other
tapes); a while loop with tapes counts its iterations by their length, not by
a counter incremented per iteration.  A function the loops call through a
chain of modules (``math.sin``, ``np.linalg.norm``, ``_rt.same``) is bound to a
local before the outermost loop (``math_sin = math.sin``) unless a body runs
user code (see :func:`hoist_chain`); ``d_x_1[i] += g`` leaves its result in
``d_x_1``, which later equations read.  In a body, a value read once, by a
later equation of its block, is written inside that equation's expression
where that changes no effect (see ``_folds``): a statement of a body may hold
several equations, in the order they were recorded.
"""
from __future__ import annotations

import builtins
import types
from collections import Counter

import gast

from .ir import COND, EXIT, LOOP, Eqn, Loop, Namer, Program, Var, body_free, cond_of, loop_of

__all__ = ["emit_block", "emit_loop", "compile_runner", "hoist_chain"]


def _load(name):
    return gast.Name(id=name, ctx=gast.Load(), annotation=None, type_comment=None)


def _store(name):
    return gast.Name(id=name, ctx=gast.Store(), annotation=None, type_comment=None)


def _const(value):
    return gast.Constant(value=value, kind=None)


def _assign(name, value):
    return gast.Assign(targets=[_store(name)], value=value, type_comment=None)


def _name(em, v):
    return em.names.get(v, v.name)


def _marker(comments, text):
    comments.append(text)
    return gast.Expr(value=_load(f"__ad_comment_{len(comments) - 1}__"))


def emit_block(em, eqns, comments, uses=None) -> list:
    """Statements for a block of equations (a loop body), with source-line comments.
    With ``uses`` (Var -> times read in the whole loop), a value read once, by a later
    equation of the block, is written inside that equation's expression (see _folds)."""
    out, block = [], None
    folded = _folds(em, eqns, uses) if uses is not None else ()
    for k, e in enumerate(eqns):
        data = loop_of(e)
        if data is not None:
            out.extend(emit_loop(em, e, comments))
            block = None
            continue
        if e.prim is COND:  # a merged if in the body (branches.py)
            out.extend(em.cond(e, comments))
            block = None
            continue
        if k in folded:
            em.inline[e.out] = em.expr(e)
            continue
        phase = "adjoint" if e.phase == "adjoint" else "primal"  # tangents: with their line
        key = (phase, e.loc.file, e.loc.line, e.loc.trip) if e.loc else (phase, None)
        if key != block and e.loc is not None:
            block = key
            label = "adjoint of " if e.phase == "adjoint" else ""
            out.append(_marker(comments, f"{label}{e.loc.place()}: {e.loc.text.strip()}"))
        if e.prim is EXIT:
            out.append(gast.If(test=gast.UnaryOp(op=gast.Not(), operand=em.atom(e.ins[0])),
                               body=[gast.Break()], orelse=[]))
        elif e.out is None:
            out.append(em.guard(e))
        elif e.prim is _add_at() and isinstance(e.ins[0], Var):
            # d_x = _rt.add_at(d_x_1, i, g), the same written out: d_x_1[i] += g; d_x = d_x_1
            buf, idx, g = e.ins
            out.append(gast.AugAssign(target=gast.Subscript(
                value=_load(_name(em, buf)), slice=em.index(idx), ctx=gast.Store()),
                op=gast.Add(), value=em.atom(g)))
            if _name(em, buf) != _name(em, e.out):
                out.append(_assign(_name(em, e.out), em.atom(buf)))
        else:
            out.append(_assign(_name(em, e.out), em.expr(e)))
    assert not any(eqns[k].out in em.inline for k in folded), "a folded value was not printed"
    return out


def _plain(e) -> bool:
    """Printed as ``name = <expression>`` (not a guard, a loop, an exit or ``+=``)."""
    return (e.out is not None and loop_of(e) is None and not e.prim.is_guard
            and e.prim is not EXIT and not (e.prim is _add_at() and isinstance(e.ins[0], Var)))


def _pure(e) -> bool:
    """An operator that neither raises nor changes anything (``+``, ``-x``, ``<``...)."""
    return _plain(e) and e.prim.kind in ("binop", "unary", "compare") and not e.prim.may_raise


def _folds(em, eqns, uses) -> set:
    """Positions of the equations of ``eqns`` whose expression is written into the one
    equation that reads them (``x_1 = math_sin(x_1) * a + 0.1 * x_1``), so an iteration
    stores and loads fewer names.  Python then runs a folded operation where its
    reader's statement runs, so an equation is folded only where that changes nothing:
    its reader is a later plain equation of the block and the only reader of its value
    in the loop; it moves past no nested loop or ``if``, no ``d_x[i] += g`` (they change
    arrays in place) and no statement that writes a name it reads (a carried variable written
    directly); an operation that may raise (a call, ``/``, an item read...) moves only
    past operations that cannot, and a statement holds at most one of them besides its
    own (so they raise in the order they did)."""
    reader = {}
    for k, e in enumerate(eqns):
        for x in _reads(e):
            if isinstance(x, Var):
                reader.setdefault(x, k)
    root = list(range(len(eqns)))  # the statement each equation is printed in
    impure = [0] * len(eqns)  # operations that may raise folded into a statement
    folded = set()
    for j in range(len(eqns) - 1, -1, -1):
        d = eqns[j]
        if not _plain(d) or uses.get(d.out) != 1 or _name(em, d.out) != d.out.name:
            continue
        u = reader.get(d.out)
        if u is None or u <= j or not _plain(eqns[u]):
            continue
        r = root[u]
        risky = not _pure(d)
        if risky and impure[r]:
            continue
        reads = {_name(em, x) for x in d.ins if isinstance(x, Var)}
        ok = True
        for k in range(j + 1, r):
            s = eqns[k]
            if root[k] == r:
                continue
            if loop_of(s) is not None or s.prim is COND or (
                    not _plain(s) and s.out is not None) or (risky and not _pure(s)):
                ok = False  # a nested loop or if, a buffer written in place, a raise
                break
            if s.out is not None and _name(em, s.out) in reads:
                ok = False  # a carried variable written directly
                break
        if ok:
            folded.add(j)
            root[j] = r
            impure[r] += risky
    return folded


def _add_at():
    from .rules import numpy as N
    return N.add_at


def _range(em, bounds):
    start, stop, step = bounds
    parts = [stop] if start == 0 and step == 1 else [start, stop] if step == 1 else bounds
    return _call(em, builtins.range, "range", [em.atom(b) if isinstance(b, Var) else em.const(b)
                                               for b in parts])


def _call(em, fn, hint, args):
    return gast.Call(func=_load(em.bind(fn, hint)), args=args, keywords=[])


def _reads(e) -> tuple:
    """The variables equation ``e`` reads (a nested loop: those it reads from outside)."""
    data = loop_of(e)
    if data is None:
        return e.ins
    return data.inits + data.free + tuple(t for _, t in data.pops) + (
        (data.count,) if data.count is not None and data.kind == "reverse" else ())


def _runs_user_code(body) -> bool:
    """Some equation of ``body`` (nested loops and ifs included) may run Python code the lowering
    did not see into: a user's function or rule, a call of an arbitrary object, a method
    or an attribute read (a property).  Reading a global or a closure cell runs none."""
    from .rules import builtins as B
    for e in body:
        data, cond = loop_of(e), cond_of(e)
        if data is not None:
            if _runs_user_code(data.body):
                return True
        elif cond is not None:
            if _runs_user_code(cond.then) or _runs_user_code(cond.orelse):
                return True
        elif getattr(e.prim, "user_code", False) or (
                e.prim.opaque and e.prim is not B.load_global and e.prim is not B.load_cell):
            return True
    return False


def _printed_reads(em, stmts) -> list:
    """For each statement position, the printed names it reads."""
    return [{_name(em, x) for x in reads if isinstance(x, Var)} for reads in stmts]


def _plan_body(em, data: Loop, exit_at: int, direct: bool) -> list:
    """Print names for the body's values where a copy can be saved; the pairs
    ``(carried, next)`` still assigned at the end of an iteration.

    Sets ``em.names`` (the caller restores it after the loop): ``d_x_1[i] += g`` leaves
    its result in ``d_x_1``, so later reads of the result read ``d_x_1``; with
    ``direct``, the equation that computes a carried variable's next value writes the
    carried variable itself when nothing reads the variable's old value after it (nor
    the test of a while loop that leaves before it)."""
    body = data.body
    for e in body:
        if e.prim is _add_at() and isinstance(e.ins[0], Var) and e.out is not None:
            em.names[e.out] = _name(em, e.ins[0])
    # what each position reads, the saves (appended after the exit test) included
    stmts = [_reads(e) for e in body[:exit_at + 1]] + [tuple(a for a, _ in data.saves)] + \
        [_reads(e) for e in body[exit_at + 1:]]
    where = {e.out: k + (k > exit_at) for k, e in enumerate(body)
             if e.out is not None and loop_of(e) is None and not e.prim.is_guard}
    pairs = [(p, n) for p, n in zip(data.phis, data.nexts)
             if not isinstance(n, Var) or _name(em, n) != p.name]
    if not direct:
        return pairs
    reads = _printed_reads(em, stmts)
    end = {_name(em, n) for _, n in pairs if isinstance(n, Var)}  # read by the carry
    nexts = [n for _, n in pairs]
    kept = []
    for p, n in pairs:
        k = where.get(n) if isinstance(n, Var) else None
        if (k is None or k <= exit_at or nexts.count(n) != 1 or _name(em, n) != n.name
                or p.name in end or any(p.name in r for r in reads[k + 1:])):
            kept.append((p, n))
            continue
        em.names[n] = p.name
    return kept


def _hoistable(root_obj, attrs) -> bool:
    """``root.a.b`` reads module dictionaries only (no ``__getattr__``, no property)."""
    obj = root_obj
    for a in attrs:
        if type(obj) is not types.ModuleType or a not in vars(obj):
            return False
        obj = vars(obj)[a]
    return True


def emit_loop(em, e: Eqn, comments, counter: tuple | None = None) -> list:
    """The statements of loop equation ``e``: set-up, the loop, and its results."""
    data: Loop = loop_of(e)
    outermost = em.hoist is None
    saved_names = dict(em.names)
    if outermost and not _runs_user_code(data.body):
        em.hoist = {}
    try:
        out = _emit_loop(em, e, data, comments, counter)
        if outermost and em.hoist:  # the callees its loops look up, bound before it
            at = 1 if data.kind == "reverse" or counter is None else 0  # after the comment
            out[at:at] = [_assign(name, _chain(bound, attrs))
                          for (bound, attrs), name in em.hoist.items()]
        return out
    finally:
        em.names = saved_names
        if outermost:
            em.hoist = None


def _emit_loop(em, e, data, comments, counter) -> list:
    out = []
    where = e.loc.place() if e.loc else "?"
    if data.kind == "reverse":
        out.append(_marker(comments, f"adjoint of {where}: {data.line}  (rolled loop, "
                                     f"iterations in reverse)"))
    elif counter is None:
        out.append(_marker(comments, f"{where}: {data.line}  (rolled loop: {data.trips} "
                                     f"iterations seen)"))
    appends = []
    for _, tape in data.saves:
        out.append(_assign(_name(em, tape), gast.List(elts=[], ctx=gast.Load())))
        appends.append(em.namer.fresh(_name(em, tape) + "_append"))
        out.append(_assign(appends[-1], gast.Attribute(value=_load(_name(em, tape)),
                                                       attr="append", ctx=gast.Load())))
    # a while loop's iterations are counted by its tapes when it has some
    counting = data.count is not None and data.kind != "reverse" and not data.saves
    if counting:
        out.append(_assign(_name(em, data.count), _const(0)))
    for phi, init in zip(data.phis, data.inits):
        if init is not phi:
            out.append(_assign(phi.name, em.atom(init)))
    exit_at = next((i for i, b in enumerate(data.body) if b.prim is EXIT), -1)
    # the runner reports the carried values at the start of an iteration that raised:
    # they are assigned together at its end
    pairs = _plan_body(em, data, exit_at, direct=counter is None)
    uses = Counter(x for b in data.body for x in _reads(b) if isinstance(x, Var))
    uses.update(x for x in data.nexts if isinstance(x, Var))
    uses.update(a for a, _ in data.saves if isinstance(a, Var))
    test = _header_test(em, data, exit_at, uses)
    inner = []
    saves = [gast.Expr(value=gast.Call(func=_load(name), args=[em.atom(a)], keywords=[]))
             for (a, _), name in zip(data.saves, appends)]
    if test is None:
        inner += emit_block(em, data.body[:exit_at + 1], comments, uses)
    inner += saves
    inner += emit_block(em, data.body[exit_at + 1:], comments, uses)
    if pairs:
        targets = [_store(p.name) for p, _ in pairs]
        values = [em.atom(n) for _, n in pairs]
        inner.append(gast.Assign(
            targets=[targets[0] if len(pairs) == 1 else gast.Tuple(elts=targets, ctx=gast.Store())],
            value=values[0] if len(pairs) == 1 else gast.Tuple(elts=values, ctx=gast.Load()),
            type_comment=None))
    for name in ([_name(em, data.count)] if counting else []) + (
            [counter[0]] if counter else []):
        inner.append(gast.AugAssign(target=_store(name), op=gast.Add(), value=_const(1)))
    if counter and data.kind == "while":
        inner.append(gast.If(test=gast.Compare(left=_load(counter[0]), ops=[gast.GtE()],
                                               comparators=[_load(counter[1])]),
                             body=[gast.Break()], orelse=[]))
    if not inner:
        inner = [gast.Pass()]
    index = _store(data.index.name) if data.index is not None else _store("_")
    if data.kind == "for":
        out.append(gast.For(target=index, iter=_range(em, data.bounds),
                            body=inner, orelse=[], type_comment=None))
    elif data.kind == "while":
        out.append(gast.While(test=_const(True) if test is None else test, body=inner,
                              orelse=[]))
    else:  # the tapes walked in reverse, with the index (or a count when neither)
        targets, iters = [], []
        reads_index = data.index is not None and data.index in body_free(data.body, set(data.phis))
        if data.bounds and (reads_index or not data.pops):
            targets.append(index)
            iters.append(_call(em, builtins.reversed, "reversed", [_range(em, data.bounds)]))
        for v, tape in data.pops:
            targets.append(_store(v.name))
            iters.append(_call(em, builtins.reversed, "reversed", [_load(_name(em, tape))]))
        if not iters:
            targets, iters = [index], [_call(em, builtins.range, "range",
                                             [em.atom(data.count)])]
        target = targets[0] if len(targets) == 1 else gast.Tuple(elts=targets,
                                                                   ctx=gast.Store())
        steps = iters[0] if len(iters) == 1 else _call(em, builtins.zip, "zip", iters)
        out.append(gast.For(target=target, iter=steps, body=inner, orelse=[],
                            type_comment=None))
    if data.count is not None and data.kind == "while" and not counting:
        out.append(_assign(_name(em, data.count), gast.Call(
            func=_load(em.bind(builtins.len, "len")),
            args=[_load(_name(em, data.saves[0][1]))], keywords=[])))
    for o, phi in zip(data.outs, data.phis):
        out.append(_assign(_name(em, o), _load(phi.name)))
    return out


def _header_test(em, data: Loop, exit_at: int, uses):
    """The test of a while loop whose body starts with it, printed as one expression in
    the ``while`` header (the equations computing it read by nothing else, and folded
    into one expression as ``_folds`` allows); else None."""
    if data.kind != "while" or exit_at < 0:
        return None
    test = data.body[exit_at].ins[0]
    if exit_at == 0:
        return em.atom(test)
    pre = data.body[:exit_at]
    last = pre[-1]
    if last.out is not test or not _plain(last) or uses.get(test) != 1:
        return None
    if len(_folds(em, pre, uses)) != exit_at - 1:
        return None
    for e in pre[:-1]:
        em.inline[e.out] = em.expr(e)
    return em.expr(last)


def hoist_chain(em, bound: str, attrs: tuple):
    """``root.a.b`` in call position: inside a rolled loop whose body runs no user code,
    a local bound to it before the outermost loop (``math_sin = math.sin``), so an
    iteration does not look it up again.  The generated code's globals never change
    after it is compiled (it assigns none; :func:`~ad_transform.compile.compile_function`
    gives each function its own copy) and ``_hoistable`` chains read module dictionaries
    that the loop's equations do not write, so the local holds the object every
    iteration would have looked up."""
    name = em.hoisted.get((bound, attrs))
    if name is None:
        name = em.hoisted[(bound, attrs)] = em.namer.fresh("_".join((bound.lstrip("_"),) + attrs))
    em.hoist[(bound, attrs)] = name
    return _load(name)


def _chain(bound: str, attrs: tuple):
    node = _load(bound)
    for a in attrs:
        node = gast.Attribute(value=node, attr=a, ctx=gast.Load())
    return node


def compile_runner(data: Loop, free, used, cap: int, label: str):
    """A function running loop ``data`` from the carried values it is given (then the
    values of ``free``): returns ``(exception or None, iterations completed, carried
    values)``; on an exception the carried values are those at the start of the
    iteration that raised (a guard's ``PathMiss``, or an error of the user's code)."""
    from .compile import compile_function
    from .emit import Emitted, _Emitter

    namer = Namer(reserved=used)
    prog = Program("run_loop", tuple(data.phis) + tuple(free), [], (), namer=namer)
    em = _Emitter(prog, {})
    comments: list = []
    n, exc, cap_name = namer.fresh("n"), namer.fresh("exc"), namer.fresh("cap")
    eqn = Eqn(LOOP, (), None, None, (("loop", data),))
    state = gast.Tuple(elts=[_load(p.name) for p in data.phis], ctx=gast.Load())
    body = [_assign(n, _const(0)), gast.Try(
        body=emit_loop(em, eqn, comments, counter=(n, cap_name)),
        handlers=[gast.ExceptHandler(type=_load(em.bind(Exception, "Exception")),
                                     name=_store(exc), body=[gast.Return(value=gast.Tuple(
                                         elts=[_load(exc), _load(n), state], ctx=gast.Load()))])],
        orelse=[], finalbody=[]),
        gast.Return(value=gast.Tuple(elts=[_const(None), _load(n), state], ctx=gast.Load()))]
    em.namespace[cap_name] = cap
    args = gast.arguments(args=[gast.Name(id=v.name, ctx=gast.Param(), annotation=None,
                                          type_comment=None) for v in prog.inputs],
                          posonlyargs=[], vararg=None, kwonlyargs=[], kw_defaults=[],
                          kwarg=None, defaults=[])
    fdef = gast.FunctionDef(name="run_loop", args=args, body=body, decorator_list=[],
                            returns=None, type_comment=None, type_params=[])
    fn, _, _ = compile_function(Emitted(fdef, em.namespace, comments), f"{label} loop")
    return fn
