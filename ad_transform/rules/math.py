"""Rules for the ``math`` module: one primitive and its derivative per line.

The formulas ``math`` shares with NumPy are written once, in :mod:`.elementwise`;
this module applies them to ``math`` and adds those of its own.
"""
from __future__ import annotations

import math

from .. import runtime
from .builtins import log_or_zero, pow_grad, sign
from .core import call_prim, defvjp, defvjp_variadic, defzero
from .elementwise import define

__all__ = []


def m(name):
    return call_prim(math, name, "math")


def rt(name, hint):
    return call_prim(runtime, name, "_rt", hint=hint, register=False)


# Where the function is finite but its derivative is not (sqrt at 0, asin at +-1), the
# derivative is +-inf or nan as IEEE division gives it (``_rt.fdiv``), where Python's own
# float division raises; at the kinks of hypot (the origin) it is 0, as abs's (docs/kinks.md)
fdiv = call_prim(runtime, "fdiv", "_rt", hint="d")
div0 = call_prim(runtime, "div0", "_rt", hint="ratio")
# (rules of these helpers themselves: a second derivative reads them back)
defvjp(fdiv, lambda g, ans, a, b: fdiv(g, b), lambda g, ans, a, b: -fdiv(g * ans, b))
defvjp(div0, lambda g, ans, a, b: div0(g, b), lambda g, ans, a, b: -div0(g * ans, b))
clip_share = defzero(call_prim(runtime, "clip_share", "_rt", hint="share"))

_2_SQRT_PI = 2.0 / math.sqrt(math.pi)

# the formulas math shares with NumPy (exp, sqrt, sin, asin, fabs, ...): rules/elementwise.py
globals().update(define(m, "math", sign=sign, div=fdiv))
log = defvjp(m("log"),
             lambda g, ans, x, base=None: g / x if base is None else g / (x * log(base)),
             lambda g, ans, x, base: -g * ans / (base * log(base)))
pow_ = defvjp(m("pow"),  # as x ** y (docs/kinks.md): 0 for y == 0, inf at x == 0 for 0 < y < 1
              lambda g, ans, x, y: (None if isinstance(y, (int, float)) and y == 0
                                    else g * pow_grad(x, y)),
              lambda g, ans, x, y: g * (ans * log_or_zero(x)))
hypot = defvjp_variadic(m("hypot"), lambda i, g, ans, *xs: g * div0(xs[i], ans))
erf = defvjp(m("erf"), lambda g, ans, x: g * (_2_SQRT_PI * exp(-(x * x))))
erfc = defvjp(m("erfc"), lambda g, ans, x: -g * (_2_SQRT_PI * exp(-(x * x))))
copysign = defvjp(m("copysign"),
                  lambda g, ans, x, y: g * (sign(x) * copysign(1.0, ans)),  # 0 at x=0, as fabs
                  None)
floor = defzero(m("floor"))
ceil = defzero(m("ceil"))
trunc = defzero(m("trunc"))
degrees = defvjp(m("degrees"), lambda g, ans, x: g * (180.0 / math.pi))
radians = defvjp(m("radians"), lambda g, ans, x: g * (math.pi / 180.0))
