"""Rules for Python's operators and builtins, and the IR's own bookkeeping ops.

Each primitive is declared beside its derivative rules.  Rules are written on
IR atoms with ordinary Python arithmetic (see :mod:`.core`).
"""
from __future__ import annotations

import builtins
import operator

import numpy as np

from .. import runtime
from ..errors import MissingRule
from ..ir import Var, current_builder
from .core import call_prim, defprim, defvjp, defvjp_variadic, defzero, refuse, value_of

__all__ = []  # primitives are reached through the registry


def _binop(fn, symbol, hint):
    return defprim(hint, fn, ("binop", symbol), register=fn)


def _cmp(fn, symbol, hint):
    return defzero(defprim(hint, fn, ("compare", symbol), register=fn))


# -- arithmetic ---------------------------------------------------------------
add = defvjp(_binop(operator.add, "+", "add"),
             lambda g, ans, a, b: g,
             lambda g, ans, a, b: g)
sub = defvjp(_binop(operator.sub, "-", "sub"),
             lambda g, ans, a, b: g,
             lambda g, ans, a, b: -g)
mul = defvjp(_binop(operator.mul, "*", "mul"),
             lambda g, ans, a, b: g * b,
             lambda g, ans, a, b: g * a)
div = defvjp(_binop(operator.truediv, "/", "div"),
             lambda g, ans, a, b: g / b,
             lambda g, ans, a, b: -g * ans / b)
floordiv = defzero(_binop(operator.floordiv, "//", "floordiv"))
mod = defvjp(_binop(operator.mod, "%", "mod"),
             lambda g, ans, a, b: g,
             lambda g, ans, a, b: -g * (a // b))


pow_grad = call_prim(runtime, "pow_grad", "_rt", hint="dpow")


defvjp(pow_grad,  # of b * a ** (b - 1): in a, b * (b - 1) * a ** (b - 2); in b, a ** (b - 1) * (1 + b log a)
       lambda g, ans, a, b: g * (b * pow_grad(a, b - 1)),
       lambda g, ans, a, b: g * (a ** (b - 1) * (1.0 + b * log_or_zero(a))))


def _pow_base(g, ans, a, b):
    """``b * a ** (b - 1)``; at ``a == 0`` (docs/kinks.md): 0 for ``b == 0``, ``inf`` for
    ``0 < b < 1`` (``_rt.pow_grad``, where Python's ``0.0 ** -0.5`` raises)."""
    if isinstance(b, Var):
        return g * pow_grad(a, b)
    if not isinstance(b, (int, float)):  # a constant array exponent: no scalar shortcuts
        return g * pow_grad(a, b) if np.any(np.asarray(b) == 0) else g * (b * a ** (b - 1))
    if b == 0:
        return None  # d/da a**0 is 0, also at a == 0 (where a ** -1 would raise)
    if b == 2:
        return (g * 2) * a  # folds to one multiply when g is a constant
    if b == 1:
        return g
    if 0 < b < 1 and isinstance(value_of(a), (int, float)):
        return g * pow_grad(a, b)  # a ** (b - 1) raises at a == 0
    return g * (b * a ** (b - 1))


log_or_zero = call_prim(runtime, "log_or_zero", "_rt", hint="log")
power = defvjp(_binop(operator.pow, "**", "pow"),
               _pow_base,
               lambda g, ans, a, b: g * (ans * log_or_zero(a)))
builtins_pow = defvjp(call_prim(builtins, "pow", "pow"), _pow_base,
                      lambda g, ans, a, b: g * (ans * log_or_zero(a)))

neg = defvjp(defprim("neg", operator.neg, ("unary", "-"), register=operator.neg),
             lambda g, ans, x: -g)
pos = defvjp(defprim("pos", operator.pos, ("unary", "+"), register=operator.pos),
             lambda g, ans, x: g)
not_ = defzero(defprim("not", operator.not_, ("unary", "not"), register=operator.not_))

# -- comparisons: no derivative -------------------------------------------------
lt = _cmp(operator.lt, "<", "lt")
le = _cmp(operator.le, "<=", "le")
gt = _cmp(operator.gt, ">", "gt")
ge = _cmp(operator.ge, ">=", "ge")
eq = _cmp(operator.eq, "==", "eq")
ne = _cmp(operator.ne, "!=", "ne")
is_ = _cmp(operator.is_, "is", "is")
is_not = _cmp(operator.is_not, "is not", "is_not")
contains = defzero(defprim("in", lambda a, b: a in b, ("compare", "in"), hint="in"))
not_in = defzero(defprim("not_in", lambda a, b: a not in b, ("compare", "not in"), hint="not_in"))

# -- builtins -------------------------------------------------------------------
sign = call_prim(runtime, "sign", "_rt")
abs_ = defvjp(call_prim(builtins, "abs", "abs"), lambda g, ans, x: g * sign(x))
tie_share = call_prim(runtime, "tie_share", "_rt", hint="share")


# the shares are piecewise constant (a second derivative reads them back)
defzero(tie_share)
tie_count = defzero(call_prim(runtime, "tie_count", "_rt", hint="ties"))
tie_part = defzero(call_prim(runtime, "tie_part", "_rt", hint="share"))


def _tie_rule(i, g, ans, *items):
    """``max(a, b, ...)``/``min``: the operand that is the result gets ``g``; operands that
    tie share it evenly (docs/kinks.md).  Of more than two operands the ties are counted
    once (the builder reuses the one ``tie_count`` equation), so code stays linear."""
    if len(items) == 2:
        return g * tie_share(ans, items[i], items[1 - i])
    return g * tie_part(ans, items[i], tie_count(ans, *items))


# max(a, b, ...) / min(...) of two or more operands, as one equation
max2 = defvjp_variadic(defprim("max", builtins.max, ("call", "max"), root=builtins.max),
                       _tie_rule)
min2 = defvjp_variadic(defprim("min", builtins.min, ("call", "min"), root=builtins.min),
                       _tie_rule)
sum_items = defvjp_variadic(call_prim(runtime, "sum_items", "_rt", hint="sum", register=False),
                            lambda i, g, ans, *items: g)
to_float = defvjp(call_prim(builtins, "float", "float"), lambda g, ans, x: g)
to_int = defzero(call_prim(builtins, "int", "int"))
round_ = defzero(call_prim(builtins, "round", "round"))
length = defzero(call_prim(builtins, "len", "len"))
to_bool = defzero(call_prim(builtins, "bool", "bool"))

# -- bookkeeping: reads of globals and closure cells, opaque calls, indexing ----
load_global = defprim("load_global", lambda d, name: d[name], ("getitem",), hint="g",
                      opaque=True)
load_cell = defprim("load_cell", lambda cell: cell.cell_contents, ("getattr", "cell_contents"),
                    hint="cell", opaque=True)
getitem = defprim("getitem", operator.getitem, ("getitem",), hint="item")
call_opaque = defzero(defprim("call", lambda fn, *args, **kw: fn(*args, **kw), ("call_obj",),
                              hint="call", opaque=True))

function_state = defzero(call_prim(runtime, "function_state", "_rt", hint="state",
                                   register=False))

_ATTRS: dict = {}
_METHODS: dict = {}


def getattr_(name):
    """``x.name`` on a traced value, read without a derivative."""
    if name not in _ATTRS:
        _ATTRS[name] = defzero(defprim(f"getattr_{name}", operator.attrgetter(name),
                                       ("getattr", name), hint=name, opaque=True))
    return _ATTRS[name]


def method(name):
    """``x.name(...)`` on a traced value, called without a derivative."""
    if name not in _METHODS:
        _METHODS[name] = defzero(defprim(f"method_{name}",
                                         lambda obj, *a, **k: getattr(obj, name)(*a, **k),
                                         ("method", name), hint=name, opaque=True,
                                         may_mutate=True))
    return _METHODS[name]


# -- guards: check at run time that the inputs take the recorded path -------------
guard_truth = defprim("guard_truth", lambda v, expect, index: bool(v) == expect,
                      ("guard", "truth"))
guard_eq = defprim("guard_eq", lambda v, expect, index: runtime.same(v, expect),
                   ("guard", "eq"))
guard_is = defprim("guard_is", lambda v, expect, index: v is expect, ("guard", "is"))
guard_types = defprim("guard_types",
                      lambda *vals, expect, index: runtime.signatures(*vals) == expect,
                      ("guard", "types"))


# -- operators on Var build IR, so rules read as ordinary arithmetic -----------------
def _no_truth(self):
    try:
        loc = current_builder().loc
    except RuntimeError:
        loc = None
    raise MissingRule(f"the truth value of the traced value {self.name} was needed by code "
                      "ad_transform does not trace (e.g. list.sort() or a library function "
                      "comparing traced values); compare the values in the function itself",
                      loc)


def _install_operators():
    def binary(prim):
        def op(self, other):
            return current_builder().apply(prim, (self, other))

        def rop(self, other):
            return current_builder().apply(prim, (other, self))
        return op, rop

    for name, prim in [("add", add), ("sub", sub), ("mul", mul), ("truediv", div),
                       ("floordiv", floordiv), ("mod", mod), ("pow", power)]:
        op, rop = binary(prim)
        setattr(Var, f"__{name}__", op)
        setattr(Var, f"__r{name}__", rop)
    for name, prim in [("lt", lt), ("le", le), ("gt", gt), ("ge", ge)]:
        setattr(Var, f"__{name}__", binary(prim)[0])
    Var.__neg__ = lambda self: current_builder().apply(neg, (self,))
    Var.__bool__ = _no_truth  # a truth test the interpreter does not see would be silently True
    Var.__array_ufunc__ = None  # NumPy scalars defer to Var's reflected operators


_install_operators()
