"""Register allocation for the generated code: which name each value is printed
under, and which elementwise NumPy operations write into an operand's buffer.

Both are decided on the program and the lowering's concrete values before any AST is
built (:mod:`ad_transform.emit` prints what they decide).  Guarantees: the program
stays SSA (only printed names repeat, never while the earlier value is live); a value
is written into only where it is read nowhere later, was made by this code, shares
memory with no other value and has the result's shape and dtype.
"""
from __future__ import annotations

import numpy as np

from .ir import Const, Program, Var, output_vars

__all__ = ["last_uses", "reuse_names", "plan_inplace"]


def last_uses(prog: Program) -> dict:
    """Var -> index of the last equation that reads it (outputs: past the end)."""
    eqns = prog.eqns
    last: dict = {}
    for i, e in enumerate(eqns):
        for x in e.ins:
            if isinstance(x, Var):
                last[x] = i
    for x in output_vars(prog.outputs):
        last[x] = len(eqns)
    return last


def reuse_names(prog: Program, last: dict) -> dict:
    """Let a value take the name of a dead value of the same family (``x_3`` -> ``x``):
    returns ``Var -> printed name`` for the values that reuse a name.

    The IR stays SSA; only the printed names repeat, the way a loop's
    variable does in the user's code.  Frames stay small and values are
    freed as soon as they die, which matters for long unrolled loops.
    """
    eqns, names = prog.eqns, {}
    free: dict = {}
    for i, e in enumerate(eqns):
        for x in dict.fromkeys(x for x in e.ins if isinstance(x, Var)):
            if last[x] == i:
                free.setdefault(_family(x.name), []).append(names.get(x, x.name))
        if e.out is not None:
            pool = free.get(_family(e.out.name))
            if pool and e.out in last:
                names[e.out] = pool.pop()
    return names


def plan_inplace(prog: Program, values: dict, last: dict) -> dict:
    """Elementwise NumPy operations write into an operand that dies with them: returns
    ``equation index -> (ufunc, operand it writes into)``.

    ``d = a * b`` becomes ``d = np.multiply(a, b, out=a)`` when ``a`` is
    read nowhere later, was made by this code (not an input, a global, a
    constant or a view), shares memory with no other value, and has the
    result's shape and dtype.  Long elementwise chains on big arrays then
    reuse one buffer instead of allocating, and freeing, one per step.
    Ownership is read off the concrete values of the lowering, which the
    same operations on the same shapes and dtypes reproduce at run time.
    """
    inplace = {}
    arrays = [v for v in values.values() if type(v) is np.ndarray]
    count: dict = {}
    for v in arrays:
        count[id(v)] = count.get(id(v), 0) + 1
    shared = {id(v.base) for v in arrays if v.base is not None}
    shared.update(id(values[v]) for v in prog.inputs)
    made = set()
    for e in prog.eqns:
        shared.update(id(x.value) for x in e.ins if isinstance(x, Const))
        if e.prim.layout_view:  # a copy now, a view of its operand on other inputs
            shared.update(id(values[x]) for x in e.ins[:1] if isinstance(x, Var))
        elif e.out is not None and e.prim.computes:
            made.add(e.out)  # not a read of a global, a cell or an opaque call's result

    def owned(x):
        v = values.get(x)
        return (x in made and type(v) is np.ndarray and v.ndim > 0 and v.base is None
                and v.flags.writeable and v.flags.owndata and count[id(v)] == 1
                and id(v) not in shared)

    for i, e in enumerate(prog.eqns):
        ufunc = _ufunc_of(e.prim)
        out = values.get(e.out) if e.out is not None else None
        if ufunc is None or type(out) is not np.ndarray or out.nbytes < _INPLACE_BYTES:
            continue
        for x in e.ins:
            if isinstance(x, Var) and last.get(x) == i and owned(x) and \
                    values[x].shape == out.shape and values[x].dtype == out.dtype:
                inplace[i] = (ufunc, x)
                break
    return inplace


# Below this size NumPy's allocator recycles buffers cheaply and ``out=`` only adds
# call overhead; above it a fresh buffer costs page faults on every call.
_INPLACE_BYTES = 1 << 16

_UFUNC_OF_OP = {("binop", "+"): np.add, ("binop", "-"): np.subtract,
                ("binop", "*"): np.multiply, ("binop", "/"): np.true_divide,
                ("binop", "**"): np.power, ("unary", "-"): np.negative}


def _ufunc_of(prim):
    """The NumPy ufunc an equation computes, if it can write into an ``out=`` array."""
    if prim.form[:2] in _UFUNC_OF_OP:
        return _UFUNC_OF_OP[prim.form[:2]]
    if prim.form[0] == "call" and prim.root is np and isinstance(prim.impl, np.ufunc) \
            and len(prim.form) == 3 and getattr(np, prim.form[2], None) is prim.impl:
        return prim.impl
    return None


def _family(name: str) -> str:
    base, _, digits = name.rpartition("_")
    return base if base and digits.isdigit() else name
