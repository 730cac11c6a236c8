"""Register allocation for the generated code: which name each value is printed
under, and which elementwise NumPy operations write into an operand's buffer.

Both are decided on the program and the lowering's concrete values before any AST is
built (:mod:`ad_transform.emit` prints what they decide).  Guarantees: the program
stays SSA (only printed names repeat, never while the earlier value is live, and a
name only ever holds values of one family: see :func:`reuse_names`); a value is
written into only where it is read nowhere later, was made by this code, shares
memory with no other value and has the result's shape and dtype.
"""
from __future__ import annotations

import numpy as np

from . import runtime
from .rules import numpy_kernels
from .ir import Const, Program, Var, output_vars

__all__ = ["last_uses", "reuse_names", "plan_inplace", "scatter_printed", "writes_into"]


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
    """The name each value is printed under, where it is not its own: ``Var -> name``.

    The IR stays SSA; only printed names repeat, the way a variable does in the
    user's loop, so frames stay small and values are freed as soon as they die.
    Guarantees: a name is taken only while no live value holds it; a name only
    ever holds values of one family (:attr:`~ad_transform.ir.Var.family`: the
    versions of one user variable, the adjoints of one, the results of one kind of
    operation), so ``d_x`` never holds another variable's adjoint; an output is
    printed under its family's shortest name (the gradient of ``x`` is returned as
    ``d_x``);
    a value takes, in this order, a dead name that last held the same operation
    of the same source position (an unrolled loop's ``mul`` and ``mul_1`` keep
    their roles from one iteration to the next), the family's shortest name
    (``x``, ``d_x``), the name freed last, its own name.
    """
    eqns, names = prog.eqns, {}
    members: dict = {}
    defined: dict = {}
    for v in prog.inputs:
        members.setdefault(v.family, []).append(v.name)
    for i, e in enumerate(eqns):
        if e.out is not None:
            members.setdefault(e.out.family, []).append(e.out.name)
            defined[e.out] = i
    shortest = {f: min(ns, key=lambda n: (len(n), n)) for f, ns in members.items()}
    # An output is printed under its family's shortest name (its own, if an input has it);
    # another value may hold that name only if it dies by the time the output is made.
    inputs = {v.name for v in prog.inputs}
    want, reserved = {}, {}
    for x in output_vars(prog.outputs):
        if x in defined and x not in want:
            name = shortest[x.family]
            want[x] = x.name if name in inputs or name in reserved else name
            reserved[want[x]] = (x, defined[x])
    held = {v.name for v in prog.inputs if v in last}  # names of live values
    free: dict = {}  # family -> {name: None} no live value holds, in the order freed
    by_role: dict = {}  # (family, role) -> names freed by a value of that role
    role_of: dict = {}  # name -> the role of the value that held it last

    def allowed(name, v, dies):
        owner, born = reserved.get(name, (v, dies))
        return name not in held and (owner is v or born >= dies)

    def release(e, i):
        for x in dict.fromkeys(x for x in e.ins if isinstance(x, Var)):
            if last.get(x) == i:
                name = names.get(x, x.name)
                held.discard(name)
                free.setdefault(x.family, {})[name] = None
                by_role.setdefault((x.family, role_of.get(name)), []).append(name)

    def candidates(e, v, pool, role):
        if v in want:
            yield want[v]
        elif writes_into(e):  # printed as buf[idx] += g: the result is its buffer
            yield names.get(e.ins[0], e.ins[0].name)
        else:
            same = by_role.get((v.family, role), ())
            while same and same[-1] not in pool:
                same.pop()  # taken since by another role
            yield from (n for n in reversed(same) if n in pool)
            yield shortest[v.family]
            yield from reversed(pool)
        yield v.name

    for i, e in enumerate(eqns):
        after = scatter_printed(e)  # its operands are read after its result is made
        if not after:
            release(e, i)
        v = e.out
        if v is None:
            continue
        dies = last.get(v, i)
        pool = free.setdefault(v.family, {})
        role = _role(e)
        name = next((n for n in candidates(e, v, pool, role) if allowed(n, v, dies)), None)
        if name is None:  # its own name is held: by a value that took the family's name
            name = prog.namer.fresh(shortest[v.family])
        pool.pop(name, None)
        if name != v.name:
            names[v] = name
        role_of[name] = role
        if v in last:
            held.add(name)
        else:  # never read: its name is free again at once
            pool[name] = None
            by_role.setdefault((v.family, role), []).append(name)
        if after:
            release(e, i)
    return names


def scatter_printed(e) -> bool:
    """``_rt.getitem_vjp(g, shape, dtype, idx)`` is printed as the NumPy it runs (a new
    buffer of zeros, then ``buf[idx] = g``): where its shape, dtype and index are constants
    and the index is basic (ints and slices: no index repeats)."""
    return (e.prim.impl is runtime.getitem_vjp and all(isinstance(x, Const) for x in e.ins[1:])
            and numpy_kernels._basic(e.ins[3].value))


def writes_into(e) -> bool:
    """``_rt.add_at(buf, idx, g)``: adds ``g`` into the adjoint buffer ``buf`` (which no
    other value shares, see ``reverse._accumulate``) and returns it."""
    return e.prim.impl is runtime.add_at and isinstance(e.ins[0], Var)


def _role(e):
    """What an equation computes, up to the loop iteration it is in."""
    loc = e.loc
    if loc is None:
        return None
    return (e.prim, e.phase, loc.file, loc.line, loc.col)


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
    if (prim.kind, prim.op) in _UFUNC_OF_OP:
        return _UFUNC_OF_OP[prim.kind, prim.op]
    if prim.kind == "call" and prim.root is np and isinstance(prim.impl, np.ufunc) \
            and getattr(np, prim.impl.__name__, None) is prim.impl:
        return prim.impl
    return None
