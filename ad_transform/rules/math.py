"""Rules for the ``math`` module: one primitive and its derivative per line."""
from __future__ import annotations

import math

from .builtins import sign
from .core import call_prim, defvjp, defvjp_variadic, defzero

__all__ = []


def m(name):
    return call_prim(math, name, "math")


_LN2, _LN10, _2_SQRT_PI = math.log(2.0), math.log(10.0), 2.0 / math.sqrt(math.pi)

exp = defvjp(m("exp"), lambda g, ans, x: g * ans)
expm1 = defvjp(m("expm1"), lambda g, ans, x: g * (ans + 1.0))
log = defvjp(m("log"),
             lambda g, ans, x, base=None: g / x if base is None else g / (x * log(base)),
             lambda g, ans, x, base: -g * ans / (base * log(base)))
log1p = defvjp(m("log1p"), lambda g, ans, x: g / (x + 1.0))
log2 = defvjp(m("log2"), lambda g, ans, x: g / (x * _LN2))
log10 = defvjp(m("log10"), lambda g, ans, x: g / (x * _LN10))
sqrt = defvjp(m("sqrt"), lambda g, ans, x: g / (2.0 * ans))
pow_ = defvjp(m("pow"),
              lambda g, ans, x, y: (None if isinstance(y, (int, float)) and y == 0  # 0 at x=0 too
                                    else g * (y * pow_(x, y - 1.0))),
              lambda g, ans, x, y: g * (ans * log(x)))
sin = m("sin")
cos = m("cos")
defvjp(sin, lambda g, ans, x: g * cos(x))
defvjp(cos, lambda g, ans, x: -g * sin(x))
tan = defvjp(m("tan"), lambda g, ans, x: g * (1.0 + ans * ans))
asin = defvjp(m("asin"), lambda g, ans, x: g / sqrt(1.0 - x * x))
acos = defvjp(m("acos"), lambda g, ans, x: -g / sqrt(1.0 - x * x))
atan = defvjp(m("atan"), lambda g, ans, x: g / (1.0 + x * x))
atan2 = defvjp(m("atan2"),
               lambda g, ans, y, x: g * x / (x * x + y * y),
               lambda g, ans, y, x: -g * y / (x * x + y * y))
sinh = m("sinh")
cosh = m("cosh")
defvjp(sinh, lambda g, ans, x: g * cosh(x))
defvjp(cosh, lambda g, ans, x: g * sinh(x))
tanh = defvjp(m("tanh"), lambda g, ans, x: g * (1.0 - ans * ans))
asinh = defvjp(m("asinh"), lambda g, ans, x: g / sqrt(x * x + 1.0))
acosh = defvjp(m("acosh"), lambda g, ans, x: g / sqrt(x * x - 1.0))
atanh = defvjp(m("atanh"), lambda g, ans, x: g / (1.0 - x * x))
hypot = defvjp_variadic(m("hypot"), lambda i, g, ans, *xs: g * xs[i] / ans)
erf = defvjp(m("erf"), lambda g, ans, x: g * (_2_SQRT_PI * exp(-(x * x))))
erfc = defvjp(m("erfc"), lambda g, ans, x: -g * (_2_SQRT_PI * exp(-(x * x))))
fabs = defvjp(m("fabs"), lambda g, ans, x: g * sign(x))
copysign = defvjp(m("copysign"),
                  lambda g, ans, x, y: g * (sign(x) * copysign(1.0, ans)),  # 0 at x=0, as fabs
                  None)
floor = defzero(m("floor"))
ceil = defzero(m("ceil"))
trunc = defzero(m("trunc"))
degrees = defvjp(m("degrees"), lambda g, ans, x: g * (180.0 / math.pi))
radians = defvjp(m("radians"), lambda g, ans, x: g * (math.pi / 180.0))
