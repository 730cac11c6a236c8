"""A seeded fuzzer: random valid Python/NumPy functions, checked three ways.

``generate(seed)`` writes the source of one random module: helper functions
and ``def f(...)`` over scalar Python (arithmetic, ``math`` on valid domains,
``if``/``elif``/``else`` on data, bounded data-dependent ``while`` loops,
``for``/``range`` with ``break``/``continue``, lists/tuples/dicts) or NumPy
(broadcasting in every direction, reshape/transpose/``.T``/``expand_dims``,
int/slice/fancy/boolean-mask indexing, reductions with ``axis``/``keepdims``,
``np.linalg`` on well-conditioned matrices, item writes on copies).  Array
shapes are symbolic (``n``, ``m``, ``k``, read from the arguments' shapes), so
one program runs on inputs of many shapes.  The module also holds ``ARGS``
(each argument's shape, ``()`` for a float, ``"int"`` for a small int that
is not differentiated), ``WRT`` (the differentiated arguments: a random subset,
so non-differentiated arrays meet differentiated ones) and ``SEED`` (of the
input draws).

``check(source)`` imports the module from a real file and, for 4 input draws
(new values every time, new shapes on draws 3 and 4, the first shapes again on
the last), compares ``value_and_gradient(f, wrt=WRT)``
against the primal value, against central finite differences, and against
HIPS autograd running the same source with ``np``/``math`` rebound to
``autograd.numpy`` (item writes are rewritten to a functional ``_setitem``).
A draw whose primal raises or is not finite is skipped; a draw where autograd
and finite differences disagree (a kink, rounding) is skipped too.  The first
mismatch is a failure with a class (``crash``, ``refused``, ``value``,
``wrong``, ``wrong-on-reuse``).

``shrink(source, failure)`` deletes statements and replaces expressions by
their operands while the program still fails with the same class, and
returns the smallest source found.

Command line: ``python -m tests.fuzz --n 1000 --seed 7 [--kind numpy|scalar]``.
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.util
import math
import os
import random
import sys
import tempfile
import time
import types
import warnings

import numpy as np

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:  # python -m tests.fuzz from anywhere
    sys.path.insert(0, _ROOT)

from ad_transform import ADError, value_and_gradient  # noqa: E402

DIMS = ("n", "m", "k")
SHAPES = [("n",), ("m", "n"), ("n", "1"), ("1", "m"), ("k", "k"), ("1", "n"), ("m", "1")]


# -- the generator -------------------------------------------------------------------------
class _Gen:
    """One program: an environment of typed variables and a list of source lines."""

    def __init__(self, rng: random.Random, kind: str):
        self.r = rng
        self.kind = kind
        self.lines: list[str] = []
        self.helpers: list[str] = []
        self.helper_sigs: list[tuple[str, list, object]] = []  # name, param types, result type
        self.count = 0
        self.depth = rng.choice([1, 2, 2, 3])  # expression depth: small programs meet the simple bugs

    def fresh(self, prefix="t"):
        self.count += 1
        return f"{prefix}{self.count}"

    # types: () is a float, a tuple of dim names is an array of that symbolic shape
    def pick(self, env, ty):
        names = [v for v, t in env.items() if t == ty]
        return self.r.choice(names) if names else None

    # ---- scalar expressions
    def scalar(self, env, depth):
        r = self.r
        if depth <= 0 or r.random() < 0.25:
            v = self.pick(env, ())
            if v is not None and r.random() < 0.85:
                return v
            arrays = [(v, t) for v, t in env.items() if t != () and t != "int"]
            if arrays and r.random() < 0.7:
                return self.reduce_to_scalar(env, depth)
            return repr(round(r.uniform(-2, 2), 2))
        if self.kind == "numpy" and r.random() < 0.45:
            return self.reduce_to_scalar(env, depth)
        a = self.scalar(env, depth - 1)
        choice = r.randrange(12)
        if choice < 5:
            b = self.scalar(env, depth - 1)
            op = r.choice(["+", "-", "*", "*", "+"])
            return f"({a} {op} {b})"
        if choice == 5:
            b = self.scalar(env, depth - 1)
            return f"({a} / (1.0 + {b} * {b}))"
        if choice == 6:
            return f"(({a}) ** {r.choice([2, 3])})"
        if choice == 7:
            m = "math" if self.kind == "scalar" else "np"
            fn = r.choice(["sin", "cos", "tanh", "exp", "atan" if m == "math" else "arctan"])
            if fn == "exp":
                return f"{m}.exp({m}.tanh({a}))" if r.random() < 0.5 else f"{m}.exp(0.3 * {a})"
            return f"{m}.{fn}({a})"
        if choice == 8:
            m = "math" if self.kind == "scalar" else "np"
            fn = r.choice(["log", "sqrt"])
            return f"{m}.{fn}(1.0 + ({a}) ** 2)"
        if choice == 9:
            b = self.scalar(env, depth - 1)
            return f"{r.choice(['max', 'min'])}({a}, {b})"
        if choice == 10:
            return f"abs({a})"
        ints = [v for v, t in env.items() if t == "int"]
        if ints:
            return f"({a} * {r.choice(ints)})"
        return f"(-{a})"

    def reduce_to_scalar(self, env, depth):
        r = self.r
        arrays = [t for t in env.values() if t not in ((), "int")]
        shape = r.choice(arrays) if arrays and r.random() < 0.6 else r.choice(SHAPES)
        e = self.array(env, shape, depth - 1)
        c = r.randrange(10)
        if c < 3:
            return f"np.sum({e})"
        if c == 3:
            return f"np.mean({e})"
        if c == 4:
            return f"{e}.sum()"
        if c == 5:
            return f"np.max({e})"
        if c == 6 and len(shape) == 1:
            e2 = self.array(env, shape, depth - 1)
            return f"({e} @ {e2})"
        if c == 7:
            idx = ", ".join(r.choice(["0", "-1", "1"]) for _ in shape)
            return f"{e}[{idx}]"
        if c == 8 and len(shape) == 2 and shape[0] == shape[1]:
            return f"np.linalg.det({self.well_conditioned(env, shape[0], depth)})"
        if c == 8 or c == 9:
            # shape-changing subexpressions reduced right away: slices, masks, fancy
            s = r.randrange(4)
            if s == 0:
                return f"np.sum({e}[1:] * {e}[:-1])" if len(shape) == 1 else f"np.sum({e}[1:, :] - {e}[:-1, :])"
            if s == 1:
                return f"np.sum({e}[{e} > 0.0] ** 2)"
            if s == 2:
                idx = "[0, 1, 0]" if len(shape) == 1 else "[1, 0]"
                return f"np.sum({e}[np.array({idx})])"
            return f"np.sum(np.where({e} > 0.0, {e}, 0.1 * {e}))"
        return f"np.sum({e})"

    def well_conditioned(self, env, d, depth):
        e = self.array(env, (d, d), max(depth - 1, 0))
        return f"(np.eye({d}) * 3.0 + 0.4 * np.tanh({e}))"

    # ---- array expressions of an exact symbolic shape
    def array(self, env, shape, depth):
        r = self.r
        v = self.pick(env, shape)
        if depth <= 0 or r.random() < 0.2:
            return self.leaf(env, shape)
        c = r.randrange(16)
        if c >= 14 and len(shape) == 2 and "1" in shape:  # a vector made a row or a column
            if shape[0] == "1":
                a = self.array(env, shape[1:], depth - 1)
                return r.choice([f"{a}[None, :]", f"np.expand_dims({a}, 0)", f"{a}.reshape(1, {shape[1]})",
                                 f"{a}[np.newaxis]", f"{a}.reshape(1, -1)"])
            a = self.array(env, shape[:1], depth - 1)
            return r.choice([f"{a}[:, None]", f"np.expand_dims({a}, 1)", f"{a}.reshape({shape[0]}, 1)",
                             f"{a}[:, np.newaxis]", f"{a}.reshape(-1, 1)"])
        if c < 4 or c >= 14:  # elementwise binary with broadcasting
            a = self.operand(env, shape, depth - 1)
            b = self.operand(env, shape, depth - 1)
            if not (a[1] == shape or b[1] == shape):
                a = (self.array(env, shape, depth - 1), shape)
            op = r.choice(["+", "-", "*", "*"])
            return f"({a[0]} {op} {b[0]})"
        if c == 4:
            a = self.array(env, shape, depth - 1)
            fn = r.choice(["sin", "cos", "tanh"])
            return f"np.{fn}({a})"
        if c == 5:
            a = self.array(env, shape, depth - 1)
            return r.choice([f"np.log(1.0 + {a} ** 2)", f"np.sqrt(1.0 + {a} ** 2)",
                             f"np.exp(0.3 * {a})", f"(({a}) ** 2)", f"np.abs({a})",
                             f"np.maximum({a}, 0.2)", f"np.minimum({a}, -0.1)",
                             f"np.clip({a}, -0.5, 0.5)"])
        if c == 6:  # transpose
            if len(shape) == 2:
                a = self.array(env, shape[::-1], depth - 1)
                return r.choice([f"{a}.T", f"np.transpose({a})", f"{a}.transpose()"])
        if c == 7:  # reshape
            if len(shape) == 2:
                a = self.array(env, shape[::-1], depth - 1)
                return f"{a}.reshape({shape[0]}, {shape[1]})"
            if len(shape) == 1:
                a = self.array(env, (shape[0], "1") if r.random() < 0.5 else ("1", shape[0]),
                               depth - 1)
                return r.choice([f"{a}.reshape({shape[0]})", f"{a}.reshape(-1)", f"{a}.ravel()"])
        if c == 8:  # reductions with axis
            if len(shape) == 1:
                other = r.choice([d for d in DIMS if d != shape[0]] + ["1"])
                if r.random() < 0.5:
                    a = self.array(env, (other, shape[0]), depth - 1)
                    return f"np.{r.choice(['sum', 'mean', 'max'])}({a}, axis=0)"
                a = self.array(env, (shape[0], other), depth - 1)
                return f"{a}.{r.choice(['sum', 'mean'])}(axis=1)"
            if len(shape) == 2 and "1" in shape:
                ax = shape.index("1")
                full = tuple(r.choice(DIMS) if d == "1" else d for d in shape)
                a = self.array(env, full, depth - 1)
                return f"np.{r.choice(['sum', 'mean', 'max'])}({a}, axis={ax}, keepdims=True)"
        if c == 9:  # matmul
            if len(shape) == 1:
                inner = r.choice(DIMS)
                a = self.array(env, (shape[0], inner), depth - 1)
                b = self.array(env, (inner,), depth - 1)
                return f"({a} @ {b})"
            if len(shape) == 2 and "1" not in shape:
                inner = r.choice(DIMS)
                a = self.array(env, (shape[0], inner), depth - 1)
                b = self.array(env, (inner, shape[1]), depth - 1)
                return f"np.dot({a}, {b})" if r.random() < 0.3 else f"({a} @ {b})"
        if c == 10 and "1" not in shape:  # linalg
            if len(shape) == 1:
                w = self.well_conditioned(env, shape[0], depth)
                b = self.array(env, shape, depth - 1)
                return f"np.linalg.solve({w}, {b})"
            if shape[0] == shape[1]:
                w = self.well_conditioned(env, shape[0], depth)
                return f"np.linalg.inv({w})"
        if c == 11 and len(shape) == 1:  # indexing that keeps the shape
            a = self.array(env, shape, depth - 1)
            return r.choice([f"{a}[::-1]", f"np.concatenate([{a}[1:], {a}[:1]])",
                             f"{a}[np.arange({shape[0]})[::-1]]"])
        if c == 12 and len(shape) == 1:  # a row or column of a matrix
            other = r.choice(DIMS)
            if r.random() < 0.5:
                a = self.array(env, (other, shape[0]), depth - 1)
                return f"{a}[{r.choice(['0', '-1', '1'])}]"
            a = self.array(env, (shape[0], other), depth - 1)
            return f"{a}[:, {r.choice(['0', '-1'])}]"
        if c == 13:
            s = self.scalar(env, depth - 1)
            a = self.array(env, shape, depth - 1)
            return f"({s} * {a})"
        return self.leaf(env, shape)

    def leaf(self, env, shape, tries=2):
        """A variable of ``shape``, else one reshaped, expanded or transposed to it, else a constant."""
        r = self.r
        v = self.pick(env, shape)
        if v is not None and r.random() < 0.6:
            return v
        if tries > 0 and r.random() < 0.8:
            if len(shape) == 1:
                form = r.randrange(3)
                if form == 0:
                    return f"{self.leaf(env, (shape[0], '1'), tries - 1)}.ravel()"
                if form == 1:
                    return f"{self.leaf(env, (r.choice(DIMS), shape[0]), tries - 1)}[0]"
            elif len(shape) == 2 and shape[0] == "1":
                return r.choice(["{}[None, :]", "{}.reshape(1, -1)", "np.expand_dims({}, 0)"]).format(
                    self.leaf(env, shape[1:], tries - 1))
            elif len(shape) == 2 and shape[1] == "1":
                return r.choice(["{}[:, None]", "{}.reshape(-1, 1)", "np.expand_dims({}, 1)"]).format(
                    self.leaf(env, shape[:1], tries - 1))
            elif len(shape) == 2 and r.random() < 0.5:
                return f"{self.leaf(env, shape[::-1], tries - 1)}.T"
            elif len(shape) == 2:
                return f"({self.leaf(env, ('1', shape[1]), tries - 1)} * {self.leaf(env, (shape[0], '1'), tries - 1)})"
        scalars = [n for n, t in env.items() if t == ()]
        if scalars and r.random() < 0.6:
            return f"({r.choice(scalars)} * {self.constant(shape)})"
        return self.constant(shape)

    def operand(self, env, shape, depth):
        """An expression that broadcasts against ``shape`` (returned with its own shape)."""
        r = self.r
        c = r.randrange(8)
        if c < 3 or len(shape) == 0:
            return self.array(env, shape, depth), shape
        if c == 3:
            return self.scalar(env, depth), ()
        if len(shape) == 1:
            return self.array(env, ("1",), depth), ("1",)
        a, b = shape
        if c == 4:  # row vector: (b,) or (1, b)
            v = self.array(env, (b,), depth)
            return r.choice([v, f"{v}[None, :]", f"np.expand_dims({v}, 0)",
                             f"{v}.reshape(1, {b})"]), (b,)
        if c == 5:  # column: (a, 1)
            v = self.array(env, (a,), depth)
            return r.choice([f"{v}[:, None]", f"np.expand_dims({v}, 1)",
                             f"{v}.reshape({a}, 1)", f"{v}[:, np.newaxis]"]), (a, "1")
        if c == 6:
            return self.array(env, ("1", b), depth), ("1", b)
        return self.array(env, (a, "1"), depth), (a, "1")

    def constant(self, shape):
        r = self.r
        if shape == ():
            return repr(round(r.uniform(-2, 2), 2))
        size = " * ".join(shape)
        dims = ", ".join(shape)
        lo, hi = round(r.uniform(-1.5, 0), 2), round(r.uniform(0.1, 1.5), 2)
        if len(shape) == 1:
            return '(' + r.choice([f"np.linspace({lo}, {hi}, {shape[0]})",
                             f"np.cos(np.arange({shape[0]}) + {hi})", f"np.ones({shape[0]}) * {lo}"]) + ')'
        return '(' + r.choice([f"np.linspace({lo}, {hi}, {size}).reshape({dims})",
                         f"np.sin(np.arange({size}).reshape({dims}) + {lo})",
                         f"np.full(({dims}), {hi})"]) + ')'

    # ---- statements
    def statements(self, env, n, indent, depth=0):
        for _ in range(n):
            self.statement(env, indent, depth)

    def emit(self, indent, text):
        for line in text.split("\n"):
            self.lines.append("    " * indent + line)

    def value_types(self, env):
        return [t for t in env.values() if t != "int"]

    def statement(self, env, indent, depth):
        r = self.r
        c = r.randrange(12)
        types_ = self.value_types(env)
        ty = r.choice(types_) if r.random() < 0.8 else ()
        if self.kind == "numpy" and r.random() < 0.6:
            ty = r.choice(SHAPES)
        if self.kind == "numpy" and c == 11:
            self.broadcast_idiom(env, indent)
            return
        if self.kind == "numpy" and c == 10:  # reduce a broadcast product right away
            shape = r.choice([t for t in SHAPES if len(t) == 2])
            a = self.array(env, shape, self.depth - 1)
            b, _ = self.operand(env, shape, self.depth - 1)
            if r.random() < 0.5:  # a row against a vector: (1, b) * (b,), or a column against a row
                b = self.leaf(env, shape[1:]) if shape[0] == "1" else self.leaf(env, ("1", shape[1]))
            v = self.fresh()
            if r.random() < 0.5:
                self.emit(indent, f"{v} = np.{r.choice(['sum', 'mean'])}({a} {r.choice(['*', '+', '-'])} {b})")
                env[v] = ()
            else:
                ax = r.randrange(2)
                self.emit(indent, f"{v} = np.sum({a} * {b}, axis={ax}, keepdims=True)")
                env[v] = tuple("1" if i == ax else d for i, d in enumerate(shape))
            return
        if c < 4 or depth >= 2:
            v = self.pick(env, ty) if r.random() < 0.4 else None
            v = v or self.fresh()
            expr = self.scalar(env, self.depth) if ty == () else self.array(env, ty, self.depth)
            if v in env and r.random() < 0.3:
                op = r.choice(["+=", "-=", "*="])
                self.emit(indent, f"{v} {op} {expr}")
            else:
                self.emit(indent, f"{v} = {expr}")
            env[v] = ty
            return
        target = self.pick(env, ty)
        if target is None:
            target = self.fresh()
            self.emit(indent, f"{target} = {self.scalar(env, 2) if ty == () else self.array(env, ty, 2)}")
            env[target] = ty
        d0 = min(self.depth, 2)
        expr = (lambda d=d0: self.scalar(env, d)) if ty == () else (lambda d=d0: self.array(env, ty, d))
        if c == 4:  # if / elif / else on data
            cond = self.scalar(env, 2)
            self.emit(indent, f"if {cond} > {round(r.uniform(-1, 1), 2)}:")
            self.branch(env, indent + 1, depth, target, expr)
            if r.random() < 0.5:
                self.emit(indent, f"elif {self.scalar(env, 2)} < {round(r.uniform(-1, 1), 2)}:")
                self.branch(env, indent + 1, depth, target, expr)
            if r.random() < 0.7:
                self.emit(indent, "else:")
                self.branch(env, indent + 1, depth, target, expr)
        elif c == 5:  # while with a data-dependent trip count, bounded
            i = self.fresh("i")
            s = self.pick(env, ()) or target
            probe = s if env.get(s) == () else f"np.sum({s})"
            self.emit(indent, f"{i} = 0")
            self.emit(indent, f"while {probe} < {round(r.uniform(-1, 3), 2)} and {i} < {r.randint(1, 5)}:")
            self.emit(indent + 1, f"{target} = {target} * 0.5 + {expr()} + 0.3")
            if s != target:
                self.emit(indent + 1, f"{s} = {s} + 0.25 * abs({self.scalar(env, 1)}) + 0.1")
            self.emit(indent + 1, f"{i} += 1")
        elif c == 6:  # for / range with break / continue
            j = self.fresh("j")
            ints = [v for v, t in env.items() if t == "int"]
            bound = r.choice(ints + ["3", "4"])
            self.emit(indent, f"for {j} in range({bound}):")
            inner = dict(env)
            inner[j] = "int"
            if r.random() < 0.6:
                kw = r.choice(["break", "continue"])
                self.emit(indent + 1, f"if {self.scalar(inner, 1)} > {round(r.uniform(-1, 1), 2)}:")
                self.emit(indent + 2, kw)
            self.emit(indent + 1, f"{target} = {target} * 0.8 + {expr(2) if True else ''} * {j}" if r.random() < 0.5
                      else f"{target} = {target} + {self.scalar(inner, 1) if ty == () else self.array(inner, ty, 1)} * 0.5")
            self.statements(inner, r.randint(0, 1), indent + 1, depth + 1)
            env.update({k: t for k, t in inner.items() if k in env})
        elif c == 7:  # helper function
            self.call_helper(env, indent, target, ty)
        elif c == 8:  # list / tuple / dict
            a, b, c2 = expr(), expr(), expr()
            form = r.randrange(4)
            if form == 0:
                L = self.fresh("L")
                self.emit(indent, f"{L} = [{a}, {b}, {c2}]")
                self.emit(indent, f"{target} = {L}[{r.choice(['0', '1', '-1'])}] * {L}[{r.choice(['0', '2'])}] + {target}")
            elif form == 1:
                p, q = self.fresh("p"), self.fresh("q")
                self.emit(indent, f"{p}, {q} = ({a}, {b})")
                self.emit(indent, f"{target} = {p} - {q} * 0.5")
            elif form == 2:
                d = self.fresh("d")
                self.emit(indent, f"{d} = {{'a': {a}, 'b': {b}}}")
                self.emit(indent, f"{target} = {d}['a'] * {d}['b'] + {d}['a']")
            else:
                acc, j = self.fresh("acc"), self.fresh("j")
                self.emit(indent, f"{acc} = []")
                self.emit(indent, f"for {j} in range(3):")
                self.emit(indent + 1, f"{acc}.append({target} * ({j} + 1.0))")
                self.emit(indent, f"{target} = sum({acc}) + {a}")
        elif c == 9 and self.kind == "numpy" and ty != () and ty[0] != "1":
            self.item_writes(env, indent, target, ty)
        else:
            self.emit(indent, f"{target} = {expr()}")

    def broadcast_idiom(self, env, indent):
        """``t = np.sum(x[None, :] * c)`` and kin: a vector made a row or column, met by a
        vector, row, column or matrix, reduced at once (all of it, or along an axis)."""
        r = self.r
        vecs = [n for n, t in env.items() if t != "int" and len(t) == 1 and t[0] != "1"]
        d = env[r.choice(vecs)][0] if vecs else "n"
        vec = self.leaf(env, (d,))
        row = r.random() < 0.6
        lhs = r.choice(["{}[None, :]", "{}.reshape(1, -1)", "np.expand_dims({}, 0)", "{}[np.newaxis]",
                        "{}.reshape(1, {})".replace("{})", d + ")")] if row else
                       ["{}[:, None]", "{}.reshape(-1, 1)", "np.expand_dims({}, 1)",
                        "{}.reshape({}, 1)".replace("{}, 1", d + ", 1")]).format(vec)
        other = r.choice(["m", "k", "1"])
        shapes = [(d,), ("1", d), (other, d), (other, "1")] if row else [(d, other), ("1", other), (d, "1")]
        shape = r.choice(shapes)
        rhs = self.constant(shape) if r.random() < 0.5 else self.leaf(env, shape)
        op = r.choice(["*", "*", "+", "-"])
        prod = f"{lhs} {op} {rhs}" if r.random() < 0.7 else f"{rhs} {op} {lhs}"
        v = self.fresh()
        red = r.choice(["np.sum", "np.mean"])
        if r.random() < 0.6:
            self.emit(indent, f"{v} = {red}({prod})")
            env[v] = ()
        else:
            self.emit(indent, f"{v} = np.sum({red}({prod}, axis={r.randrange(2)}, keepdims=True))")
            env[v] = ()

    def branch(self, env, indent, depth, target, expr):
        self.emit(indent, f"{target} = {expr()}")
        if self.r.random() < 0.4:
            self.statements(dict(env), 1, indent, depth + 1)

    def item_writes(self, env, indent, target, ty):
        r = self.r
        y = self.fresh("y")
        src = self.array(env, ty, 2)
        self.emit(indent, f"{y} = {src}.copy()")
        row = ty[1:]
        for _ in range(r.randint(1, 3)):
            c = r.randrange(4)
            if c == 0:
                val = self.scalar(env, 1) if not row else self.array(env, row, 1)
                self.emit(indent, f"{y}[{r.choice(['0', '1', '-1'])}] = {val}")
            elif c == 1:
                self.emit(indent, f"{y}[1:] += {y}[:-1] * 0.5")
            elif c == 2:
                val = self.scalar(env, 1)
                self.emit(indent, f"{y}[0:2] *= {val}")
            else:
                val = self.scalar(env, 1)
                self.emit(indent, f"{y}[-1] -= {val}")
        self.emit(indent, f"{target} = {target} + {y}")

    def call_helper(self, env, indent, target, ty):
        r = self.r
        fitting = [h for h in self.helper_sigs if h[2] == ty and all(p in self.value_types(env) for p in h[1])]
        if not fitting or r.random() < 0.3:
            params = [ty] + ([()] if r.random() < 0.5 else [])
            name = f"helper{len(self.helper_sigs) + 1}"
            names = [f"a{i}" for i in range(len(params))] + (list(DIMS) if self.kind == "numpy" else [])
            sub = _Gen(r, self.kind)
            sub.count = 100 * (len(self.helper_sigs) + 1)
            henv = dict(zip(names, params))  # the dims are ints the helper may use in shapes
            sub.lines.append(f"def {name}({', '.join(names)}):")
            sub.statements(henv, r.randint(0, 2), 1, depth=1)
            ret = sub.scalar(henv, 2) if ty == () else sub.array(henv, ty, 2)
            sub.lines.append(f"    return {ret}")
            self.helpers.append("\n".join(sub.lines))
            self.helper_sigs.append((name, params, ty))
            fitting = [self.helper_sigs[-1]]
        name, params, _ = r.choice(fitting)
        args = [self.pick(env, p) if p != ty else target for p in params]
        args = [a if a is not None else self.scalar(env, 1) for a in args]
        if self.kind == "numpy":
            args += list(DIMS)
        self.emit(indent, f"{target} = {name}({', '.join(args)})")


def generate(seed: int, kind: str | None = None) -> str:
    """The source of one random module with ``ARGS`` and ``def f``; a pure function of seed."""
    r = random.Random(f"ad_transform fuzz {seed}")
    kind = kind or r.choice(["scalar", "numpy", "numpy"])
    g = _Gen(r, kind)
    if kind == "scalar":
        args = {"x": (), "y": ()}
        if r.random() < 0.5:
            args["z"] = ()
    else:
        pool = [("x", ("n",)), ("A", ("m", "n")), ("s", ()), ("S", ("k", "k")), ("v", ("m",))]
        args = dict([pool[0]] + r.sample(pool[1:], r.randint(1, 3)))
    if r.random() < 0.3:
        args["r"] = "int"
    env = dict(args)
    g.lines.append(f"def f({', '.join(args)}):")
    if kind == "numpy":
        for d in DIMS:  # bind each dim that the arguments fix, and the others to constants
            owner = next(((a, i) for a, t in args.items() if t not in ((), "int") for i, x in enumerate(t) if x == d), None)
            g.lines.append(f"    {d} = {owner[0]}.shape[{owner[1]}]" if owner else f"    {d} = {r.randint(2, 4)}")
    g.statements(env, r.randint(1, 6), 1)
    values = [v for v, t in env.items() if t != "int"]
    terms = [v if env[v] == () else f"np.sum({v} * {g.constant(env[v])})" if r.random() < 0.5
             else f"np.sum(np.sin({v}))" for v in values]
    g.lines.append(f"    return {' + '.join(terms)}")
    floats = [i for i, t in enumerate(args.values()) if t != "int"]
    wrt = tuple(sorted(r.sample(floats, r.randint(1, len(floats)))))
    head = ['"""Generated by tests/fuzz.py."""', "import math", "", "import numpy as np", "",
            f"ARGS = {args!r}", f"WRT = {wrt!r}", f"SEED = {seed}", "", ""]
    return "\n".join(head + [h + "\n\n" for h in g.helpers] + g.lines) + "\n"


# -- loading and inputs ----------------------------------------------------------------------
_TMP = None
_NAMES = 0


def _tmpdir():
    global _TMP
    if _TMP is None:
        _TMP = tempfile.TemporaryDirectory(prefix="ad_fuzz_")
    return _TMP.name


def load(source: str, tag: str = "prog"):
    """Import ``source`` from a real file (so ad_transform can read it); a new module each time."""
    global _NAMES
    _NAMES += 1
    name = f"fuzz_{tag}_{_NAMES}"
    path = os.path.join(_tmpdir(), name + ".py")
    with open(path, "w") as fh:
        fh.write(source)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def draw_inputs(args: dict, rng: np.random.Generator, dims: dict):
    out = []
    for t in args.values():
        if t == "int":
            out.append(int(rng.integers(0, 4)))
        elif t == ():
            out.append(float(rng.uniform(-1.5, 1.5)))
        else:
            out.append(rng.uniform(-1.5, 1.5, tuple(dims.get(d, 1) for d in t)))
    return out


def draws(args: dict, seed: int, count: int = 4):
    """Input tuples: same shapes twice, then new shapes, then the first shapes again."""
    rng = np.random.default_rng(seed)
    first = {d: int(rng.integers(2, 5)) for d in DIMS}
    other = {d: int(rng.integers(2, 6)) for d in DIMS}
    plan = [first, first, other, first][:count]
    return [draw_inputs(args, rng, dims) for dims in plan]



def programs(first: int, count: int, tag: str):
    """``(seed, module, wrt)`` for the programs of seeds ``first .. first + count - 1``
    (``wrt``: the module's own, else every argument that is not an ``int``), as the tests of
    other transformations over these programs walk them."""
    for s in range(first, first + count):
        mod = load(generate(s), f"{tag}{s}")
        wrt = getattr(mod, "WRT", None) or tuple(
            i for i, t in enumerate(mod.ARGS.values()) if t != "int")
        yield s, mod, tuple(wrt)


def copied(inputs) -> tuple:
    """``inputs`` with every array copied (a program may write into its arguments)."""
    return tuple(np.copy(a) if isinstance(a, np.ndarray) else a for a in inputs)


def random_like(rng, a):
    """A standard normal float, or array of ``a``'s shape when ``a`` is an array."""
    return rng.standard_normal(np.shape(a)) if isinstance(a, np.ndarray) \
        else float(rng.standard_normal())

# -- the autograd oracle ---------------------------------------------------------------------
class _Index:
    def __getitem__(self, key):
        return key


class _ToFunctional(ast.NodeTransformer):
    """``y[i] = e`` -> ``y = _setitem(y, _ix[i], e)``; ``y[i] += e`` likewise; ``a.copy()`` -> ``_copy(a)``."""

    def visit_Assign(self, node):
        self.generic_visit(node)
        t = node.targets[0]
        if len(node.targets) == 1 and isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name):
            return self._set(t, node.value, node)
        return node

    def visit_AugAssign(self, node):
        self.generic_visit(node)
        t = node.target
        if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name):
            read = ast.Subscript(value=ast.Name(t.value.id, ast.Load()), slice=t.slice, ctx=ast.Load())
            return self._set(t, ast.BinOp(read, node.op, node.value), node)
        return node

    def _set(self, t, value, node):
        key = ast.Subscript(value=ast.Name("_ix", ast.Load()), slice=t.slice, ctx=ast.Load())
        call = ast.Call(ast.Name("_setitem", ast.Load()), [ast.Name(t.value.id, ast.Load()), key, value], [])
        return ast.copy_location(ast.Assign([ast.Name(t.value.id, ast.Store())], call), node)

    def visit_Call(self, node):
        self.generic_visit(node)
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr == "copy" and not node.args:
            return ast.Call(ast.Name("_copy", ast.Load()), [f.value], [])
        return node


_AUTOGRAD = None


def _autograd_env():
    global _AUTOGRAD
    if _AUTOGRAD is None:
        import autograd
        import autograd.numpy as anp
        from autograd.extend import defvjp, primitive

        @primitive
        def _setitem(a, key, value):
            out = np.array(a, dtype=float)
            out[key] = value
            return out

        def _unbroadcast(g, shape):
            while g.ndim > len(shape):
                g = g.sum(axis=0)
            for ax, d in enumerate(shape):
                if d == 1 and g.shape[ax] != 1:
                    g = g.sum(axis=ax, keepdims=True)
            return g

        def _vjp_a(ans, a, key, value):
            def back(g):
                g = np.array(g, dtype=float)
                g[key] = 0.0
                return g
            return back

        def _vjp_value(ans, a, key, value):
            return lambda g: _unbroadcast(np.asarray(g)[key], np.shape(value))

        defvjp(_setitem, _vjp_a, None, _vjp_value)
        shim = types.SimpleNamespace(
            sin=anp.sin, cos=anp.cos, tanh=anp.tanh, exp=anp.exp, log=anp.log, sqrt=anp.sqrt,
            atan=anp.arctan, pi=math.pi)
        _AUTOGRAD = (autograd, anp, shim, _setitem)
    return _AUTOGRAD


def oracle_gradients(source: str, wrt, inputs):
    """Gradients by HIPS autograd of the same program, ``np``/``math`` rebound."""
    autograd, anp, shim, setitem = _autograd_env()
    tree = _ToFunctional().visit(ast.parse(source))
    mod = load(ast.unparse(ast.fix_missing_locations(tree)), "oracle")
    mod.np, mod.math = anp, shim
    mod._setitem, mod._ix, mod._copy = setitem, _Index(), anp.array
    out = []
    for i in wrt:
        def fi(xi, i=i):
            args = list(inputs)
            args[i] = xi
            return mod.f(*args)
        out.append(np.asarray(autograd.grad(fi)(inputs[i]), dtype=float))
    return out


def finite_differences(f, inputs, i, eps=1e-6):
    x = inputs[i]

    def at(value):
        args = _copies(inputs)
        args[i] = value.copy() if isinstance(value, np.ndarray) else value
        return float(f(*args))

    if isinstance(x, np.ndarray):
        g = np.zeros(x.shape)
        for idx in np.ndindex(x.shape):
            h = eps * max(1.0, abs(x[idx]))
            up, down = x.copy(), x.copy()
            up[idx] += h
            down[idx] -= h
            g[idx] = (at(up) - at(down)) / (2 * h)
        return g
    h = eps * max(1.0, abs(x))
    return np.asarray((at(x + h) - at(x - h)) / (2 * h))


# -- checking --------------------------------------------------------------------------------
class Failure(Exception):
    def __init__(self, cls: str, detail: str, draw: int):
        super().__init__(f"[{cls}] draw {draw}: {detail}")
        self.cls, self.detail, self.draw = cls, detail, draw


def _copies(inputs):
    """Fresh copies: a program may update an argument in place (``x += ...``)."""
    return [a.copy() if isinstance(a, np.ndarray) else a for a in inputs]


def _close(a, b, rtol=1e-4, atol=1e-5):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= atol + rtol * np.maximum(np.abs(a), np.abs(b))))


# Refusals that docs/python-subset.md documents: a program that writes into its
# caller's array, or in place into an array another name or view also sees (NumPy
# would change it there too), is refused, not differentiated; the generator may
# produce one.  tests/fuzz_corpus/refused/ holds such cases (checked to be refused).
DOCUMENTED_REFUSALS = ("on an input array", "on an array also bound to",
                       "item assignment to an array that is also bound to",
                       "writing into a view of an input array")


def check(source: str, seed: int | None = None, count: int = 4):
    """Check one program; returns ``(checked draws, skipped draws)``, raises ``Failure``."""
    mod = load(source)
    args = mod.ARGS
    seed = mod.SEED if seed is None else seed
    wrt = getattr(mod, "WRT", None) or tuple(i for i, t in enumerate(args.values()) if t != "int")
    vg = value_and_gradient(mod.f, wrt=wrt)
    checked = skipped = 0
    for n, inputs in enumerate(draws(args, seed, count)):
        try:
            with warnings.catch_warnings(), np.errstate(all="raise"):
                warnings.simplefilter("error")
                value = mod.f(*_copies(inputs))
            value = float(value)
        except Exception:
            skipped += 1
            continue
        if not math.isfinite(value) or abs(value) > 1e8:
            skipped += 1
            continue
        hits = vg.cache_info().hits
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got_value, grads = vg(*_copies(inputs))
        except ADError as exc:
            if any(reason in str(exc) for reason in DOCUMENTED_REFUSALS):
                skipped += 1  # the program does what ad_transform refuses by design
                continue
            raise Failure("refused", f"{type(exc).__name__}: {exc}", n) from None
        except Exception as exc:
            raise Failure("crash", f"{type(exc).__name__}: {exc}", n) from None
        reused = vg.cache_info().hits > hits
        if not _close(got_value, value, 1e-9, 1e-9):
            raise Failure("value", f"value {got_value!r}, primal {value!r}", n)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                want = oracle_gradients(source, wrt, _copies(inputs))
        except Exception:
            skipped += 1  # autograd cannot run it (or a kink it refuses): no oracle, no verdict
            continue
        for pos, i in enumerate(wrt):
            g = np.asarray(grads[pos], dtype=float)
            if _close(g, want[pos]):
                continue
            fd = finite_differences(mod.f, inputs, i)
            if not _close(fd, want[pos], 1e-3, 1e-4):
                skipped += 1  # the oracles disagree: a kink or rounding, no verdict
                break
            if not _close(g, fd, 1e-3, 1e-4):
                cls = "wrong-on-reuse" if reused else "wrong"
                name = list(args)[i]
                raise Failure(cls, f"d/d{name}: ad_transform {np.array2string(g, precision=4)}, "
                                   f"autograd {np.array2string(want[pos], precision=4)}, "
                                   f"finite diff {np.array2string(fd, precision=4)}", n)
        else:
            checked += 1
    return checked, skipped


def _fails_same(source, cls, seed):
    try:
        check(source, seed)
    except Failure as f:
        return f.cls == cls
    except Exception:
        return False
    return False


# -- shrinking -------------------------------------------------------------------------------
def _candidates(source: str):
    """Smaller variants: one statement deleted or hoisted, one expression replaced by a part."""
    tree = ast.parse(source)
    bodies = []
    for node in ast.walk(tree):
        for field in ("body", "orelse"):
            body = getattr(node, field, None)
            if isinstance(body, list) and body and isinstance(body[0], ast.stmt) and not isinstance(node, ast.Module):
                bodies.append((node, field))
    for node, field in bodies:
        for i in range(len(getattr(node, field))):
            for mode in ("drop", "hoist"):
                t = ast.parse(source)
                n2 = _same_node(t, tree, node)
                body = getattr(n2, field)
                stmt = body[i]
                if mode == "drop":
                    if isinstance(stmt, ast.Return):
                        continue
                    new = body[:i] + body[i + 1:]
                else:
                    inner = getattr(stmt, "body", None)
                    if not isinstance(stmt, (ast.If, ast.For, ast.While)):
                        continue
                    new = body[:i] + inner + body[i + 1:]
                setattr(n2, field, new or [ast.Pass()])
                yield ast.unparse(t)
    # module level: drop unused helpers
    for i, stmt in enumerate(tree.body):
        if isinstance(stmt, ast.FunctionDef) and stmt.name != "f":
            t = ast.parse(source)
            del t.body[i]
            yield ast.unparse(t)
    # expressions: replace by an operand
    exprs = [n for n in ast.walk(tree) if isinstance(n, (ast.BinOp, ast.Call, ast.UnaryOp, ast.Subscript,
                                                             ast.BoolOp, ast.IfExp))]
    for node in exprs:
        for part in _parts(node):
            t = ast.parse(source)
            n2 = _same_node(t, tree, node)
            p2 = _same_node(t, tree, part)
            if _replace(t, n2, p2):
                yield ast.unparse(t)


def _parts(node):
    if isinstance(node, ast.BinOp):
        return [node.left, node.right]
    if isinstance(node, ast.UnaryOp):
        return [node.operand]
    if isinstance(node, ast.Call):
        method_of = []
        f = node.func
        if isinstance(f, ast.Attribute) and not (isinstance(f.value, ast.Name) and f.value.id in ("np", "math")):
            method_of = [f.value]  # x.sum() -> x
        return [a for a in node.args if not isinstance(a, ast.Starred)] + method_of
    if isinstance(node, ast.Subscript):
        return [node.value]
    if isinstance(node, ast.BoolOp):
        return list(node.values)
    return []


def _same_node(new_tree, old_tree, old_node):
    for a, b in zip(ast.walk(new_tree), ast.walk(old_tree)):
        if b is old_node:
            return a
    raise LookupError


def _replace(tree, old, new):
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is old:
                if isinstance(parent, (ast.Assign, ast.AugAssign)) and field in ("targets", "target"):
                    return False
                setattr(parent, field, new)
                return True
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if item is old:
                        value[i] = new
                        return True
    return False


def shrink(source: str, failure: Failure, seed: int | None = None, budget: float = 60.0) -> str:
    """The smallest variant of ``source`` found that still fails with ``failure.cls``."""
    seed = load(source).SEED if seed is None else seed
    deadline = time.monotonic() + budget
    best = source
    progress = True
    seen = {source}
    while progress and time.monotonic() < deadline:
        progress = False
        for cand in _candidates(best):
            if time.monotonic() > deadline:
                break
            if cand in seen or len(cand) >= len(best):
                continue
            seen.add(cand)
            if _fails_same(cand, failure.cls, seed):
                best = cand
                progress = True
                break
    return best


# -- running many ---------------------------------------------------------------------------
def run(n: int, seed: int, kind: str | None = None, shrink_failures: bool = True, out=print,
        exclude=frozenset(), first: int = 0):
    """Generate and check ``n`` programs; returns a summary dict (failures with shrunk sources)."""
    stats = {"programs": 0, "checked_draws": 0, "skipped_draws": 0, "skipped_programs": 0,
             "failures": []}
    for p in range(first, first + n):
        s = seed * 1_000_003 + p
        if s in exclude:
            continue
        src = generate(s, kind)
        stats["programs"] += 1
        try:
            checked, skipped = check(src)
        except Failure as f:
            small = shrink(src, f) if shrink_failures else src
            try:
                check(small)
                final = f
            except Failure as f2:
                final = f2
            stats["failures"].append((s, final, small))
            out(f"FAIL seed={s} {final}\n{small}")
            continue
        stats["checked_draws"] += checked
        stats["skipped_draws"] += skipped
        if checked == 0:
            stats["skipped_programs"] += 1
    return stats


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--kind", choices=["scalar", "numpy"], default=None)
    ap.add_argument("--no-shrink", action="store_true")
    ap.add_argument("--show", type=int, default=None, help="print the program of this seed and exit")
    ap.add_argument("--merge", action="store_true",
                    help="merge simple ifs from a function's first path on (branches.py)")
    ns = ap.parse_args(argv)
    if ns.merge:
        from ad_transform.cache import PathCache
        PathCache.merge_from = 0
    if ns.show is not None:
        print(generate(ns.show, ns.kind))
        return 0
    t0 = time.monotonic()
    stats = run(ns.n, ns.seed, ns.kind, not ns.no_shrink)
    by = {}
    for _, f, _ in stats["failures"]:
        by[f.cls] = by.get(f.cls, 0) + 1
    print(f"{stats['programs']} programs, {len(stats['failures'])} failures {by}, "
          f"{stats['checked_draws']} draws checked, {stats['skipped_draws']} draws skipped, "
          f"{stats['skipped_programs']} programs with no checked draw, {time.monotonic() - t0:.1f} s")
    return 1 if stats["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
