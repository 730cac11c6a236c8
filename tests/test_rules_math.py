"""Every derivative rule for ``math`` and for Python's operators and builtins,
swept over random points of its domain and checked against finite differences.

A table row names the function, its arity and a valid input range per argument.
The sweep draws a few points per row from a fixed seed and runs
``check_gradient`` on a plain wrapper function (``call1(x): return fn(x)``,
built per row by a small factory), so the derivative goes through the whole
pipeline: lowering, reverse, emit, compile.
"""
import builtins
import math
import operator
import random
from dataclasses import dataclass

import pytest

from ad_transform import gradient
from ad_transform.rules import REGISTRY
from ad_transform.testing import check_gradient, numerical_gradient

POINTS_PER_ROW = 3


@dataclass(frozen=True)
class I:
    """An integer range (inclusive), for arguments passed as Python ints."""

    lo: int
    hi: int


def _wrap(fn, arity):
    """A plain Python function of ``arity`` arguments calling ``fn``."""
    if arity == 1:
        def call1(x):
            return fn(x)
        return call1
    if arity == 2:
        def call2(x, y):
            return fn(x, y)
        return call2
    if arity == 3:
        def call3(x, y, z):
            return fn(x, y, z)
        return call3
    raise ValueError(arity)


ANY = (-3.0, 3.0)
POS = (0.1, 5.0)
UNIT = (-0.9, 0.9)

# (math function, arity, valid range per argument)
MATH_TABLE = [
    (math.exp, 1, [ANY]),
    (math.expm1, 1, [ANY]),
    (math.log, 1, [POS]),
    (math.log, 2, [POS, (1.5, 10.0)]),
    (math.log1p, 1, [(-0.9, 5.0)]),
    (math.log2, 1, [POS]),
    (math.log10, 1, [POS]),
    (math.sqrt, 1, [POS]),
    (math.pow, 2, [(0.2, 3.0), (-2.0, 2.0)]),
    (math.sin, 1, [(-6.0, 6.0)]),
    (math.cos, 1, [(-6.0, 6.0)]),
    (math.tan, 1, [(-1.3, 1.3)]),
    (math.asin, 1, [UNIT]),
    (math.acos, 1, [UNIT]),
    (math.atan, 1, [(-5.0, 5.0)]),
    (math.atan2, 2, [ANY, ANY]),
    (math.sinh, 1, [ANY]),
    (math.cosh, 1, [ANY]),
    (math.tanh, 1, [ANY]),
    (math.asinh, 1, [(-5.0, 5.0)]),
    (math.acosh, 1, [(1.1, 5.0)]),
    (math.atanh, 1, [UNIT]),
    (math.hypot, 1, [ANY]),
    (math.hypot, 2, [ANY, ANY]),
    (math.hypot, 3, [ANY, ANY, ANY]),
    (math.erf, 1, [ANY]),
    (math.erfc, 1, [ANY]),
    (math.fabs, 1, [ANY]),
    (math.copysign, 2, [ANY, ANY]),
    (math.floor, 1, [(-5.0, 5.0)]),
    (math.ceil, 1, [(-5.0, 5.0)]),
    (math.trunc, 1, [(-5.0, 5.0)]),
    (math.degrees, 1, [ANY]),
    (math.radians, 1, [(-200.0, 200.0)]),
]


# -- operators and builtins: written as source, so the operator syntax is what is lowered --

def op_add(x, y):
    return x + y


def op_sub(x, y):
    return x - y


def op_mul(x, y):
    return x * y


def op_div(x, y):
    return x / y


def op_floordiv(x, y):
    return x // y


def op_mod(x, y):
    return x % y


def op_pow(x, y):
    return x ** y


def op_square(x):
    return x ** 2


def op_cube(x):
    return x ** 3


def op_pow_one(x):
    return x ** 1


def op_pow_zero(x):
    return x ** 0


def op_pow_half(x):
    return x ** 0.5


def op_pow_negative(x):
    return x ** -1.5


def op_exp2(x):
    return 2.0 ** x


def op_neg(x):
    return -x


def op_pos(x):
    return +x


def op_abs(x):
    return abs(x)


def op_max2(x, y):
    return max(x, y)


def op_min2(x, y):
    return min(x, y)


def op_max3(x, y, z):
    return max(x, y, z)


def op_min_list(x, y, z):
    return min([x, y, z])


def op_float(x):
    return float(x)


def op_int(x):
    return int(x)


def op_round(x):
    return round(x)


def op_round2(x):
    return round(x, 2)


def op_builtin_pow(x, y):
    return pow(x, y)


def op_builtin_pow3(x):
    return pow(x, 3)


def op_math_pow_zero(x):
    return math.pow(x, 0.0)


# (label, wrapper, valid range per argument, what it covers)
BUILTIN_TABLE = [
    ("x + y", op_add, [ANY, ANY], operator.add),
    ("x - y", op_sub, [ANY, ANY], operator.sub),
    ("x * y", op_mul, [ANY, ANY], operator.mul),
    ("x / y", op_div, [ANY, (0.5, 3.0)], operator.truediv),
    ("x / y, y < 0", op_div, [ANY, (-3.0, -0.5)], operator.truediv),
    ("x // y", op_floordiv, [(-5.0, 5.0), (0.7, 3.0)], operator.floordiv),
    ("x % y", op_mod, [(-5.0, 5.0), (0.7, 3.0)], operator.mod),
    ("x % y, y < 0", op_mod, [(-5.0, 5.0), (-3.0, -0.7)], operator.mod),
    ("x ** y", op_pow, [(0.2, 3.0), (-2.0, 2.0)], operator.pow),
    ("x ** 2", op_square, [ANY], operator.pow),
    ("x ** 3", op_cube, [ANY], operator.pow),
    ("x ** 1", op_pow_one, [ANY], operator.pow),
    ("x ** 0", op_pow_zero, [ANY], operator.pow),
    ("x ** 0.5", op_pow_half, [POS], operator.pow),
    ("x ** -1.5", op_pow_negative, [POS], operator.pow),
    ("2.0 ** x", op_exp2, [ANY], operator.pow),
    ("-x", op_neg, [ANY], operator.neg),
    ("+x", op_pos, [ANY], operator.pos),
    ("abs(x)", op_abs, [ANY], builtins.abs),
    ("max(x, y)", op_max2, [ANY, ANY], builtins.max),
    ("min(x, y)", op_min2, [ANY, ANY], builtins.min),
    ("max(x, y, z)", op_max3, [ANY, ANY, ANY], builtins.max),
    ("min([x, y, z])", op_min_list, [ANY, ANY, ANY], builtins.min),
    ("float(x)", op_float, [ANY], builtins.float),
    ("int(x)", op_int, [(-5.0, 5.0)], builtins.int),
    ("round(x)", op_round, [(-5.0, 5.0)], builtins.round),
    ("round(x, 2)", op_round2, [(-5.0, 5.0)], builtins.round),
    ("pow(x, y)", op_builtin_pow, [(0.2, 3.0), (-2.0, 2.0)], builtins.pow),
    ("pow(x, 3)", op_builtin_pow3, [ANY], builtins.pow),
    # Python ints as inputs: the gradient is a float, the path is typed
    ("n + m (ints)", op_add, [I(-9, 9), I(-9, 9)], operator.add),
    ("n * y (int, float)", op_mul, [I(-9, 9), ANY], operator.mul),
    ("n / m (ints)", op_div, [I(-9, 9), I(1, 9)], operator.truediv),
    ("n ** 2 (int)", op_square, [I(-9, 9)], operator.pow),
    ("n ** m (ints)", op_pow, [I(1, 5), I(0, 4)], operator.pow),
    ("abs(n) (int)", op_abs, [I(1, 9)], builtins.abs),
    ("float(n) (int)", op_float, [I(-9, 9)], builtins.float),
    ("max(n, y) (int, float)", op_max2, [I(-3, 3), (-2.5, 2.5)], builtins.max),
]


def _draw(rng, ranges):
    out = []
    for r in ranges:
        if isinstance(r, I):
            out.append(rng.randint(r.lo, r.hi))
        else:
            out.append(rng.uniform(*r))
    return tuple(out)


def _points(label, ranges):
    rng = random.Random(f"ad_transform rules {label}")  # str seeds are stable across runs
    return [_draw(rng, ranges) for _ in range(POINTS_PER_ROW)]


def _check_row(fn, label, ranges):
    wrt = tuple(range(len(ranges)))
    for args in _points(label, ranges):
        grads = check_gradient(fn, *args, wrt=wrt)
        assert len(grads) == len(ranges)
        assert all(type(g) is float for g in grads), (label, args, grads)


def _math_label(fn, arity):
    return f"math.{fn.__name__}/{arity}"


@pytest.mark.parametrize("fn, arity, ranges", MATH_TABLE,
                         ids=[_math_label(f, a) for f, a, _ in MATH_TABLE])
def test_math_rule(fn, arity, ranges):
    assert len(ranges) == arity
    _check_row(_wrap(fn, arity), _math_label(fn, arity), ranges)


@pytest.mark.parametrize("label, fn, ranges, covers", BUILTIN_TABLE,
                         ids=[row[0] for row in BUILTIN_TABLE])
def test_builtin_rule(label, fn, ranges, covers):
    _check_row(fn, label, ranges)


@pytest.mark.parametrize("name, fn", [
    ("operator.add", operator.add), ("operator.mul", operator.mul),
    ("operator.truediv", operator.truediv), ("operator.pow", operator.pow),
    ("builtins.abs", builtins.abs),
])
def test_registered_callables_called_directly(name, fn):
    """The registry answers for the callable itself, not only for its syntax."""
    arity = 1 if fn is builtins.abs else 2
    _check_row(_wrap(fn, arity), name, [(0.5, 3.0)] * arity)


# -- nondifferentiable and edge points: the conventions agree with finite differences ---

@pytest.mark.parametrize("fn, x", [
    (op_pow_zero, 0.0),       # d/dx x**0 = 0, also at 0
    (op_pow_zero, 0),
    (op_math_pow_zero, 0.0),
    (op_square, 0.0),
    (op_cube, 0.0),
    (op_abs, 0.0),            # abs: 0 at 0 (a subgradient), symmetric differences agree
    (_wrap(math.fabs, 1), 0.0),
    (_wrap(math.copysign, 2), 0.0),
], ids=["x**0@0.0", "x**0@0", "math.pow(x,0)@0", "x**2@0", "x**3@0", "abs@0", "fabs@0",
        "copysign@0"])
def test_edge_points(fn, x):
    args = (x,) if fn.__code__.co_argcount == 1 else (x, 2.0)
    g = gradient(fn, 0)(*args)
    assert math.isclose(g, numerical_gradient(fn, args, 0), abs_tol=1e-6)


def test_pow_exponent_gradient_at_zero_base():
    # d/dy 0**y = 0 for y > 0 (log_or_zero), as finite differences in y see it
    g = gradient(op_pow, 1)(0.0, 2.0)
    assert math.isclose(g, numerical_gradient(op_pow, (0.0, 2.0), 1), abs_tol=1e-9)


# -- the table covers every registered rule ------------------------------------------------

def _is_math(key, prim):
    return getattr(key, "__module__", None) == "math" or prim.root is math


def test_table_covers_every_math_rule():
    registered = {key for key, prim in REGISTRY.items() if _is_math(key, prim)}
    assert registered, "no math rules registered?"
    covered = {fn for fn, _, _ in MATH_TABLE}
    missing = sorted(f"math.{k.__name__}" for k in registered - covered)
    assert not missing, f"math rules without a row in MATH_TABLE: {missing}"
    # and the table tests nothing that has no rule (it would not test a rule)
    assert covered <= registered


_ARRAY_ONLY = {operator.matmul}


def test_table_covers_every_differentiable_builtin_rule():
    registered = {key for key, prim in REGISTRY.items()
                  if getattr(key, "__module__", None) in ("builtins", "_operator", "operator")
                  and prim.differentiable and key not in _ARRAY_ONLY}
    covered = {row[3] for row in BUILTIN_TABLE}
    missing = sorted(repr(k) for k in registered - covered)
    assert not missing, f"builtin rules without a row in BUILTIN_TABLE: {missing}"


def test_points_are_reproducible():
    for fn, arity, ranges in MATH_TABLE[:3]:
        label = _math_label(fn, arity)
        assert _points(label, ranges) == _points(label, ranges)
