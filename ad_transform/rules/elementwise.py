"""Elementwise derivative formulas, each written once for every namespace that has it.

``math.sin`` and ``np.sin`` have the same derivative; the formula is written here once,
as a function of the namespace's primitives ``P`` (``P.cos`` is ``math.cos`` for the
``math`` rules and ``np.cos`` for the NumPy rules), and :func:`define` applies the table
to one namespace.  Guarantee: a namespace's primitive for a name in :data:`TABLE` gets
exactly the rules written here; rules that differ between namespaces (``math.log``'s
``base``, ``math.pow``, ``np.power``) stay beside their namespace's other rules.
"""
from __future__ import annotations

import math
import operator
import types

from .core import defvjp

__all__ = ["TABLE", "define"]

_LN2, _LN10 = math.log(2.0), math.log(10.0)

# common name: (name in math, name in NumPy, the rules as a function of the namespace P)
TABLE = {
    "exp": ("exp", "exp", lambda P: [lambda g, ans, x: g * ans]),
    "expm1": ("expm1", "expm1", lambda P: [lambda g, ans, x: g * (ans + 1.0)]),
    "log1p": ("log1p", "log1p", lambda P: [lambda g, ans, x: g / (x + 1.0)]),
    "log2": ("log2", "log2", lambda P: [lambda g, ans, x: g / (x * _LN2)]),
    "log10": ("log10", "log10", lambda P: [lambda g, ans, x: g / (x * _LN10)]),
    "sqrt": ("sqrt", "sqrt", lambda P: [lambda g, ans, x: P.div(g, 2.0 * ans)]),
    "sin": ("sin", "sin", lambda P: [lambda g, ans, x: g * P.cos(x)]),
    "cos": ("cos", "cos", lambda P: [lambda g, ans, x: -g * P.sin(x)]),
    "tan": ("tan", "tan", lambda P: [lambda g, ans, x: g * (1.0 + ans * ans)]),
    "arcsin": ("asin", "arcsin", lambda P: [lambda g, ans, x: P.div(g, P.sqrt(1.0 - x * x))]),
    "arccos": ("acos", "arccos", lambda P: [lambda g, ans, x: P.div(-g, P.sqrt(1.0 - x * x))]),
    "arctan": ("atan", "arctan", lambda P: [lambda g, ans, x: g / (1.0 + x * x)]),
    "arctan2": ("atan2", "arctan2", lambda P: [lambda g, ans, y, x: P.div(g * x, x * x + y * y),
                                               lambda g, ans, y, x: P.div(-g * y, x * x + y * y)]),
    "sinh": ("sinh", "sinh", lambda P: [lambda g, ans, x: g * P.cosh(x)]),
    "cosh": ("cosh", "cosh", lambda P: [lambda g, ans, x: g * P.sinh(x)]),
    "tanh": ("tanh", "tanh", lambda P: [lambda g, ans, x: g * (1.0 - ans * ans)]),
    "arcsinh": ("asinh", "arcsinh", lambda P: [lambda g, ans, x: g / P.sqrt(x * x + 1.0)]),
    "arccosh": ("acosh", "arccosh", lambda P: [lambda g, ans, x: P.div(g, P.sqrt(x * x - 1.0))]),
    "arctanh": ("atanh", "arctanh", lambda P: [lambda g, ans, x: g / (1.0 - x * x)]),
    "absolute": ("fabs", "absolute", lambda P: [lambda g, ans, x: g * P.sign(x)]),
}


def define(make, namespace: str, **extra) -> dict:
    """The primitives of ``namespace`` ("math" or "np") for :data:`TABLE`, with their
    rules attached: ``make(name)`` declares the primitive for the namespace's own
    ``name``; ``extra`` are other primitives the formulas use (``sign``; ``div``, the
    division where a derivative may be infinite: ``/`` unless given, and for ``math``
    ``_rt.fdiv``, IEEE's ``inf``/``nan`` where Python's float division raises, see
    docs/kinks.md).  Returns them by the namespace's own names (``asin`` for math,
    ``arcsin`` for NumPy)."""
    column = 0 if namespace == "math" else 1
    prims = {common: make(row[column]) for common, row in TABLE.items()}
    extra.setdefault("div", operator.truediv)
    P = types.SimpleNamespace(**prims, **extra)
    for common, prim in prims.items():
        defvjp(prim, *TABLE[common][2](P))
    return {TABLE[common][column]: prim for common, prim in prims.items()}
