"""Two probed iterations of a loop: the same equations up to renaming?

:func:`same_iteration` is true only when the iterations apply the same
primitives to the same constants in the same order, with the same guard
outcomes and parameters, the same types (and activity) of their carried
values, at the same source locations, reading the same outer variables, and
carrying the corresponding results: then the first one's equations, run on
the second one's carried values, are the second iteration (renamed), and
checking the first one's guards decides whether a later iteration is one too.
Constant arrays and other objects count as equal only when they are the same
object.  Nested loop equations and merged ifs are compared the same way, bodies
included.
"""
from __future__ import annotations

from . import runtime
from .ir import Var, cond_of, loop_of

__all__ = ["same_iteration"]


def _same_const(x, y) -> bool:
    vx, vy = x.value, y.value
    if vx is vy:
        return True
    if type(vx) is not type(vy):
        return False
    if type(vx) in (int, str, bool, bytes, type(None)):
        return vx == vy
    if type(vx) is float:
        return repr(vx) == repr(vy)
    if type(vx) is slice or type(vx) is tuple:
        try:
            return runtime.same(vx, vy)
        except Exception:
            return False
    return False


def _same_param(x, y) -> bool:
    if x is y:
        return True
    try:
        return runtime.same(x, y) and type(x) is type(y)
    except Exception:
        return False


def _match_block(ea, eb, m: dict, defined_a: set) -> bool:
    if len(ea) != len(eb):
        return False
    for a, c in zip(ea, eb):
        if a.prim is not c.prim or len(a.ins) != len(c.ins) or (a.loc is None) != (
                c.loc is None) or a.loc is not None and (a.loc.file, a.loc.line, a.loc.col) != (
                c.loc.file, c.loc.line, c.loc.col):  # (not the iteration numbers)
            return False
        for x, y in zip(a.ins, c.ins):
            if isinstance(x, Var):
                if not isinstance(y, Var):
                    return False
                if x in m:
                    if m[x] is not y:
                        return False
                elif x in defined_a or x is not y:
                    return False
            elif isinstance(y, Var) or not _same_const(x, y):
                return False
        da, dc = loop_of(a), loop_of(c)
        if da is not None:
            if dc is None or da.kind != dc.kind or tuple(da.bounds) != tuple(dc.bounds):
                return False
            for p, q in zip(da.phis, dc.phis):
                if p.kind != q.kind:
                    return False
                m[p] = q
            if (da.index is None) != (dc.index is None):
                return False
            if da.index is not None:
                m[da.index] = dc.index
            inner = set(defined_a) | set(da.phis)
            if not _match_block(da.body, dc.body, m, inner):
                return False
            for x, y in zip(da.nexts, dc.nexts):
                if isinstance(x, Var) != isinstance(y, Var) or (
                        isinstance(x, Var) and m.get(x) is not y) or (
                        not isinstance(x, Var) and not _same_const(x, y)):
                    return False
            for p, q in zip(da.outs, dc.outs):
                m[p] = q
                defined_a.add(p)
            continue
        ca, cc = cond_of(a), cond_of(c)
        if ca is not None:  # a merged if: both branches alike, binding alike
            if cc is None or len(ca.outs) != len(cc.outs):
                return False
            for xa, xc, ya, yc in ((ca.then, cc.then, ca.then_outs, cc.then_outs),
                                   (ca.orelse, cc.orelse, ca.else_outs, cc.else_outs)):
                inner = set(defined_a)
                if not _match_block(xa, xc, m, inner):
                    return False
                for x, y in zip(ya, yc):
                    if isinstance(x, Var) != isinstance(y, Var) or (
                            isinstance(x, Var) and m.get(x, x) is not y) or (
                            not isinstance(x, Var) and not _same_const(x, y)):
                        return False
            for p, q in zip(ca.outs, cc.outs):
                if p.kind != q.kind:
                    return False
                m[p] = q
                defined_a.add(p)
            continue
        pa, pc = dict(a.params), dict(c.params)
        if pa.keys() != pc.keys():
            return False
        for k in pa:
            if k == "index" and a.prim.is_guard:
                continue
            if not _same_param(pa[k], pc[k]):
                return False
        if (a.out is None) != (c.out is None):
            return False
        if a.out is not None:
            if a.out.kind != c.out.kind:
                return False
            m[a.out] = c.out
            defined_a.add(a.out)
    return True


def same_iteration(b, p, q, activity=True) -> bool:
    if p.names != q.names or len(p.body) != len(q.body):
        return False
    m = {x: y for x, y in zip(p.phis, q.phis)}
    for x, y in zip(p.phis, q.phis):
        if x.kind != y.kind or (activity and (x in b.active) != (y in b.active)):
            return False
    if p.index is not None:
        m[p.index] = q.index
    if not _match_block(p.body, q.body, m, set(p.phis)):
        return False
    for x, y in zip(p.nexts, q.nexts):
        if isinstance(x, Var) != isinstance(y, Var):
            return False
        if isinstance(x, Var) and m.get(x, x) is not y:
            return False
        if not isinstance(x, Var) and not _same_const(x, y):
            return False
    return True
