"""Program -> Program with tangent equations interleaved, in forward order.

Guarantees of :func:`forward`: the result takes the program's inputs and then
one tangent per ``wrt`` input (``t_<name>``, same shape as its input); after
each primal equation whose output depends on a ``wrt`` input comes the
equation(s) of its tangent (``phase == "tangent"``), built by the JVP rule of
:mod:`ad_transform.rules.forward`; every tangent has exactly its primal's
shape; the result returns ``(value, tangent of the value)``, the tangent
shaped like the value (a tuple for a tuple), zero where the value does not
depend on a ``wrt`` input.  The entry guard checks the tangents' types, shapes
and dtypes beside the inputs', so a new path is compiled for other tangents.
An operation with a VJP rule but no JVP rule raises
:class:`~ad_transform.errors.MissingRule` at the user's line.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from . import runtime
from .errors import ADError, MissingRule
from .ir import Builder, Const, Eqn, Hint, Program, Var, _cse_key, _raw
from .values import _contains_var
from .reverse import _describe, _owned_grad
from .rules import builtins as B
from .rules import forward as F
from .rules import numpy as N

__all__ = ["forward", "extend_entry_guard", "check_like"]


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


def forward(prog: Program, values: dict, wrt: tuple, tangents: tuple) -> tuple[Program, dict]:
    """Interleave the tangent of ``prog`` along the inputs ``wrt`` (indices).

    ``tangents`` are the first call's tangent values (one per ``wrt``), checked
    to have their input's shape.  Returns the new program and its values.
    """
    b = Builder(prog.namer)
    b.values = dict(values)
    b.phase = "tangent"
    tan: dict = {}
    t_inputs = []
    for i, t in zip(wrt, tangents):
        x = prog.inputs[i]
        check_like("tangent", x.name, t, values[x])
        tv = b.new_var(Hint("t_" + x.name, ("t", x.family)), t)
        t_inputs.append(tv)
        tan[x] = tv
    eqns, decisions = extend_entry_guard(prog.eqns, prog.decisions, prog.inputs,
                                         tuple(t_inputs), b.values)
    with b:
        for e in eqns:
            b.append(e)
            if e.out is None:
                continue
            if e.prim is not B.call_opaque:  # tangent rules reuse what the primal computed
                key = _cse_key(e.prim, e.ins, dict(e.params))
                if key is not None:
                    b.seen.setdefault(key, e.out)
            ts = [tan.get(x) if isinstance(x, Var) else None for x in e.ins]
            if not e.prim.differentiable or all(t is None for t in ts):
                continue
            b.loc = e.loc
            t = _tangent(b, e, ts)
            if t is not None:
                tan[e.out] = t
        inputs = tuple(prog.inputs) + tuple(t_inputs)
        shell = dataclasses.replace(prog, inputs=inputs, eqns=b.eqns, outputs=(),
                                    decisions=decisions)
        value, taken = _value(b, prog.outputs[0], prog.return_loc), []
        out_tan = _out_tangent(b, prog.outputs[0], tan, shell, taken)
    return dataclasses.replace(shell, outputs=((value, out_tan),)), b.values


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


def _value(b: Builder, out, loc):
    """The value returned: tuples and lists of numbers and arrays (anything else holding a
    traced value is refused: the emitter writes out tuples and lists only)."""
    if isinstance(out, tuple):
        return tuple(_value(b, o, loc) for o in out)
    if isinstance(out, list):
        return b.record(F.as_list, [_packed(b, _value(b, o, loc)) for o in out], hint="value")
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
    """The tangent of an output: a float for a number, an owned array for an array."""
    if isinstance(out, tuple):
        return tuple(_out_tangent(b, o, tan, shell, taken) for o in out)
    if isinstance(out, list):
        return b.record(F.as_list, [_packed(b, _out_tangent(b, o, tan, shell, taken))
                                  for o in out], hint="tangent")
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
        return t if type(b.value(t)) is float else b.apply(B.to_float, (t,), hint="t_out")
    if t is None:
        return None  # not a number: no tangent
    raise MissingRule(f"{shell.name} returned a {type(value).__name__}, which has no "
                      "tangent; return floats, arrays or tuples of them", shell.return_loc)

