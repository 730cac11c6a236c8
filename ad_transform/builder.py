"""The one way to append equations to a program: :class:`Builder`.

Guarantees: every appended equation's inputs are defined (inputs, earlier outputs or
constants) and every variable is defined once (SSA, :class:`~ad_transform.ir.Namer`);
an operation on constants only is folded to a constant; identities that never change a
value are dropped (:func:`_peephole`); an operation already applied to the same operands
is not appended again (:func:`_cse_key`); each new variable's concrete value is
recorded beside the program (``Builder.values``), and NumPy warnings raised by an
operation are re-issued at the user's line.  :func:`current_builder` is the builder of
the lowering or pass now running (rules call it to apply primitives).
"""
from __future__ import annotations

import math
import warnings
from typing import Any

from .errors import Loc, PathTooLong
from .ir import _BUILDER, Const, Eqn, Namer, Primitive, Var, _raw, current_builder, value_kind

__all__ = ["Builder", "current_builder"]  # current_builder: defined in ir (Primitive.__call__)


class Builder:
    """Appends equations, evaluating each one on concrete values as it goes.

    Guarantees: every appended equation's inputs are defined (inputs, earlier
    outputs or constants); :meth:`apply` folds an operation whose inputs are
    all constants to a constant instead of appending it, drops identities
    (``x * 1.0``) and reuses the earlier result of the same operation (for
    arrays, only in adjoint code), while :meth:`record` always appends;
    ``values[v]`` holds the concrete value of every variable, so later passes
    know shapes and types exactly.
    """

    def __init__(self, namer: Namer, max_eqns: int = 200_000):
        self.namer = namer
        self.eqns: list[Eqn] = []
        self.values: dict[Var, Any] = {}
        self.loc: Loc | None = None
        self.max_eqns = max_eqns
        self.active: set[Var] = set()  # variables that depend on a wrt input
        self.seen: dict = {}  # (prim, operands, params) -> Var: common subexpressions
        self.phase = "primal"

    # -- context -----------------------------------------------------------
    def __enter__(self):
        self._token = _BUILDER.set(self)
        return self

    def __exit__(self, *exc):
        _BUILDER.reset(self._token)

    # -- values ------------------------------------------------------------
    def value(self, x):
        if isinstance(x, Var):
            return self.values[x]
        if isinstance(x, Const):
            return x.value
        return x

    def new_var(self, hint: str, value, family=None) -> Var:
        family = getattr(hint, "family", hint or "t") if family is None else family
        v = Var(self.namer.fresh(hint), value_kind(value), family)
        self.values[v] = value
        return v

    def input(self, name: str, value) -> Var:
        return self.new_var(name, value)

    # -- equations ---------------------------------------------------------
    def apply(self, prim: Primitive, ins, params=None, hint: str | None = None):
        """Apply ``prim`` to atoms or raw constants; returns a Var or a raw constant."""
        params = params or {}
        values, vals, traced = self.values, [], False
        for x in ins:  # (self.value of each operand, in one pass: this runs per operation)
            if isinstance(x, Var):
                vals.append(values[x])
                traced = True
            else:
                vals.append(x.value if isinstance(x, Const) else x)
        if not traced:
            return prim.impl(*vals, **params)
        folded = _peephole(prim, ins, vals)
        # In user code ``y = x * 1.0`` is a new array (writing into y leaves x alone):
        # arrays are folded only in the adjoint code, which never writes into them.
        if folded is not _NO_FOLD and (self.phase != "primal"
                                       or not hasattr(self.value(folded), "shape")):
            return folded
        key = _cse_key(prim, ins, params)
        seen = self.seen.get(key) if key is not None else None
        # The same operation on the same operands was computed already (arrays
        # only in adjoint code, for the same reason as above).
        if seen is not None and (self.phase != "primal" or not hasattr(self.value(seen), "shape")):
            return seen
        out = self._emit(prim, ins, vals, params, hint)
        if key is not None:
            self.seen[key] = out
        return out

    def record(self, prim: Primitive, ins, params=None, hint: str | None = None) -> Var:
        """Like :meth:`apply`, but always appends (reads of globals, opaque calls)."""
        params = params or {}
        return self._emit(prim, ins, [self.value(x) for x in ins], params, hint)

    def _emit(self, prim, ins, vals, params, hint):
        value = self._run(prim, vals, params)  # unnamed: not a user variable's family
        out = self.new_var(hint, value) if hint else self.new_var(prim.hint, value, ("op", prim.hint))
        atoms, active = [], False
        for x in ins:
            if isinstance(x, Var):
                atoms.append(x)
                active = active or x in self.active
            else:
                atoms.append(x if isinstance(x, Const) else Const(x))
        self.append(Eqn(prim, tuple(atoms), out, self.loc,
                        tuple(sorted(params.items())) if params else (), self.phase))
        if active and prim.differentiable:
            self.active.add(out)
        return out

    def _run(self, prim, vals, params):
        """``prim`` on concrete values; a warning it raises (NumPy's ``divide by zero``)
        is re-issued at the user's line being lowered or differentiated, not here."""
        if self.loc is None or _quiet(prim, vals):
            return prim.impl(*vals, **params)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = prim.impl(*vals, **params)
        for w in caught:
            warnings.warn_explicit(w.message, w.category, self.loc.file, self.loc.line,
                                   registry=_WARNED.setdefault(self.loc.file, {}))
        return value

    def guard(self, prim: Primitive, ins, params) -> None:
        """Append a guard: it checks, and defines nothing."""
        atoms = tuple(x if isinstance(x, (Var, Const)) else Const(x) for x in ins)
        self.append(Eqn(prim, atoms, None, self.loc, tuple(sorted(params.items())), self.phase))

    def append(self, eqn: Eqn) -> None:
        if len(self.eqns) >= self.max_eqns:
            raise self.too_long()
        self.eqns.append(eqn)

    def too_long(self) -> PathTooLong:
        """The error for a path longer than ``max_eqns`` (the lowering names its loops)."""
        return PathTooLong(
            f"the control path these inputs take passed max_eqns={self.max_eqns} "
            "operations; is a loop running away? (pass a larger max_eqns= to gradient "
            "to allow more)", self.loc)


def _quiet(prim, vals) -> bool:
    """``prim`` cannot warn on ``vals``: an operator or a ``math`` function on Python
    floats and ints (they raise instead), so no warning filter needs to be set up."""
    kind = prim.kind
    if not (kind == "binop" or kind == "unary" or kind == "compare"
            or (kind == "call" and prim.root is math)):
        return False
    for v in vals:
        t = type(v)
        if t is not float and t is not int:
            return False
    return True


_NO_FOLD = object()
_WARNED: dict = {}  # file -> the warnings registry of its line (the "default" action's memory)


def _cse_key(prim, ins, params):
    """A hashable key for an operation, or None when an operand is not hashable.

    Constants are keyed by type and repr, so ``0.0`` and ``-0.0`` (equal, and
    equal-hashing) stay apart.
    """
    parts = []
    for x in ins:
        if isinstance(x, Var):
            parts.append(x)
        else:
            x = _raw(x)
            parts.append((type(x), repr(x) if isinstance(x, float) else x))
    try:
        key = (prim, tuple(parts), tuple(sorted(params.items())) if params else ())
        hash(key)
        return key
    except TypeError:
        return None


def _peephole(prim, ins, vals):
    """Identities that never change a value: ``x*1``, ``1*x``, ``x/1``, ``x-0``,
    ``x+(-0.0)``, ``(-0.0)+x``.

    Not ``x+0.0``: it maps ``-0.0`` to ``0.0``, which ``math.copysign``, ``1/x``
    or ``atan2`` downstream can see (and ``x-(-0.0)`` likewise).  Applied only when
    the kept operand is a float (Python or NumPy floating array), so dropping
    the operation loses no cast and no broadcast.
    """
    if prim.kind != "binop" or len(ins) != 2 or prim.op not in _UNITS:
        return _NO_FOLD
    (a, b), (va, vb) = ins, vals
    unit, left_ok = _UNITS[prim.op]
    if not isinstance(b, Var) and _is_unit(vb, unit) and _is_float(va):
        return a
    if left_ok and not isinstance(a, Var) and _is_unit(va, unit) and _is_float(vb):
        return b
    return _NO_FOLD


_UNITS = {"*": (1, True), "+": (-0.0, True), "-": (0, False), "/": (1, False)}


def _is_unit(v, unit) -> bool:
    """``v`` is ``unit``, zeros told apart by sign (``x + 0.0`` is not ``x`` at ``-0.0``)."""
    return (type(v) in (int, float) and v == unit
            and (unit != 0 or math.copysign(1.0, v) == math.copysign(1.0, unit)))


def _is_float(v) -> bool:
    if type(v) is float:
        return True
    dtype = getattr(v, "dtype", None)
    return dtype is not None and getattr(v, "ndim", 0) > 0 and dtype.kind == "f"
