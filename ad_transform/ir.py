"""The intermediate representation: three-address SSA along one control path.

A :class:`Program` is a straight line of :class:`Eqn` s.  Each equation applies
one :class:`Primitive` to atoms (:class:`Var` or :class:`Const`) and defines at
most one new variable; every variable is defined exactly once, before its uses.
A program's ``outputs`` are a flat tuple of atoms; its ``out_tree`` (one
:class:`~ad_transform.pytree.TreeDef`) says how they nest into the value it
returns, and only the code that builds that value unflattens them
(:func:`output_value`, the emitter's ``return``).
Guards (``prim.is_guard``) define nothing: they check at run time that
the inputs still take the control path the program was built for.

Besides the data types this module holds a printer (:func:`format_program`), a
checker (:func:`verify`) and an interpreter (:func:`evaluate`).  The one way to
append equations, :class:`~ad_transform.builder.Builder`, is in
:mod:`ad_transform.builder`.
"""
from __future__ import annotations

import builtins
import contextvars
import keyword
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .errors import Loc
from .pytree import ITEM, TreeDef, flatten_items, show_items

__all__ = [
    "Var", "Const", "Eqn", "Program", "Primitive", "Namer", "Hint",
    "format_program", "verify", "evaluate", "value_kind", "current_builder",
    "Loop", "LOOP", "EXIT", "loop_of", "Cond", "COND", "cond_of", "cond_eqn",
    "flat_outputs", "output_value", "ONE",
]


def value_kind(value) -> str:
    """A short type description used in printed IR and error messages."""
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) and hasattr(value, "dtype"):
        return f"{value.dtype}{list(shape)}"
    return type(value).__name__


class Var:
    """An SSA variable.  Identity is the variable; the name is for printing.

    Arithmetic on a ``Var`` appends equations to the builder that is current
    (see :func:`current_builder`), which is how derivative rules are written:
    ``lambda g, ans, x: g * cos(x)``.
    """

    __slots__ = ("name", "kind", "family")

    def __init__(self, name: str, kind: str = "?", family=None):
        self.name = name
        self.kind = kind
        # which values the printed code may store under one name (registers.reuse_names):
        # the versions of one user variable (x, x_1, ...), or the adjoints of one
        self.family = name if family is None else family

    def __repr__(self) -> str:
        return self.name

    # Operators build IR in the current builder; they are defined at the end of
    # rules/builtins.py, next to the primitives they apply.


@dataclass(frozen=True)
class Const:
    """A constant operand, baked into the program."""

    value: Any

    def __repr__(self) -> str:
        return repr(self.value)


Atom = Any  # Var | Const


class Hint(str):
    """A name hint (``d_x_1``) that also gives the family of the variable it names, where
    that is not the hint itself: the adjoints of ``x``, ``x_1``... are one family."""

    def __new__(cls, text: str, family):
        self = super().__new__(cls, text)
        self.family = family
        return self


@dataclass(eq=False)
class Primitive:
    """One operation of the IR.

    ``form`` says how the emitter prints it, without naming any AST class:
    ``("binop", "+")``, ``("unary", "-")``, ``("compare", "<")``,
    ``("call", root, attr, ...)`` for ``root.attr(...)``, ``("method", name)``,
    ``("getattr", name)``, ``("getitem",)``, ``("guard", kind)``, ...  It is for
    printing only: what a primitive *means* to the passes is in its flags below
    (``rules.core.defprim`` sets them when the primitive is declared).
    ``vjps[i]`` is the derivative rule of input ``i`` (``None``: not
    differentiable in that input; ``zero=True``: derivative zero everywhere).
    """

    name: str
    impl: Callable
    form: tuple
    hint: str = "t"
    root: Any = None  # the object bound to form[1] for "call" forms
    # what the operation is ("binop", "unary", "compare", "call", "method", "getattr",
    # "getitem", "guard", ...) and, for an operator, its symbol ("+", "**") or, for a
    # guard, what it checks ("truth", "types", "value"): set by rules.core.defprim
    kind: str = ""
    op: str | None = None
    vjps: tuple = ()
    variadic_vjp: Callable | None = None
    zero: bool = False  # piecewise constant: no derivative flows through it
    elementwise: bool = False  # output[i] depends on input[i] only (NumPy broadcasting aside)
    # returns a view of input 0 or a copy depending on its memory layout (np.ravel,
    # np.reshape), which guards do not check: a copy while lowering may be a view later
    layout_view: bool = False
    is_guard: bool = False  # checks its inputs against ``expect`` and defines nothing
    # may raise on scalars of the path's types (a call, ``/``, ``//``, ``%``, ``**``):
    # the pruner keeps it, so the derivative raises where the function does
    may_raise: bool = False
    # reads state or runs code the lowering cannot see into (a global, a cell, an
    # attribute, a library call): its result's type may change with values
    opaque: bool = False
    may_mutate: bool = False  # a library method that may change its object (lst.append)
    # computes its result (an operator or a function call), rather than reading it from
    # somewhere (a global, a cell, an item, an attribute): a new array is this code's own
    computes: bool = False

    def __repr__(self) -> str:
        return self.name

    def __call__(self, *ins, **params):
        """Apply symbolically in the current builder (used by derivative rules)."""
        return current_builder().apply(self, ins, params)

    @property
    def differentiable(self) -> bool:
        return not self.zero and (bool(self.vjps) or self.variadic_vjp is not None)

    def vjp(self, i: int):
        if self.variadic_vjp is not None:
            rule = self.variadic_vjp
            return lambda g, ans, *ins, **params: rule(i, g, ans, *ins, **params)
        return self.vjps[i] if i < len(self.vjps) else None


@dataclass(frozen=True, eq=False)
class Eqn:
    prim: Primitive
    ins: tuple
    out: Var | None
    loc: Loc | None
    params: tuple = ()  # static keyword arguments, as (name, value) pairs
    phase: str = "primal"  # or "adjoint"


ONE = TreeDef(ITEM, "out")  # the structure of a single output


def flat_outputs(result) -> tuple:
    """``(outputs, out_tree)`` for a program returning ``result`` (atoms, in containers)."""
    items, tree = flatten_items(result, (Var, Const))
    return tuple(items), tree


def output_value(p: Program, read: Callable):
    """The value ``p`` returns, each output atom ``x`` read as ``read(x)``."""
    return p.out_tree.unflatten(*[read(x) for x in p.outputs])


@dataclass
class Program:
    """A function along one control path: inputs, equations, outputs.

    Every field is declared here and set once, by :func:`ad_transform.lower.lower`;
    later passes make new programs with :func:`dataclasses.replace` (the reverse pass
    sets ``eqns``, ``outputs``, ``out_tree`` and ``adjoints``; pruning ``eqns``).
    A program holds no concrete value of the call it was lowered on: those
    (``Var -> value``, what :attr:`Builder.values` records) travel beside it
    through the pipeline and are dropped once the code is emitted, so a cached
    path keeps none of its first call's data.
    """

    name: str
    inputs: tuple  # one Var per parameter of the user's function
    eqns: list
    outputs: tuple  # the atoms returned, flat (nested as ``out_tree`` says)
    decisions: tuple = ()  # the control path: expected outcome of each guard
    namer: Namer | None = field(default=None, repr=False)  # gives the names used, and new ones
    return_loc: Loc | None = None  # the ``return`` that produced the output (for errors)
    # set by the reverse pass: (adjoint, primal variable, exact) for every adjoint and
    # gradient (exact: a gradient, which must have its input's shape)
    adjoints: list = field(default_factory=list, repr=False)
    # wrt index -> (TreeDef, leaf Vars) for a structured wrt argument (see pytree.py)
    trees: dict = field(default_factory=dict, repr=False)
    # how ``outputs`` nest into the returned value (tuples, for a program that is emitted);
    # by default the one output is the value
    out_tree: TreeDef = ONE

    def __str__(self) -> str:
        return format_program(self)


@dataclass(eq=False)
class Loop:
    """A rolled loop: one equation (``prim`` :data:`LOOP`) that runs ``body`` per iteration.

    The body is a block of equations over the carried variables ``phis`` (their
    values at the start of an iteration), the loop ``index`` (``for``) and
    outer variables (``free``); ``nexts`` are the carried values at the end of an
    iteration, ``outs`` the carried values after the loop.  Variables the body
    defines are local to it (each iteration redefines them).  Kinds:
    ``"for"`` runs ``range(*bounds)``; ``"while"`` runs until an :data:`EXIT`
    equation of the body sees a false test; ``"reverse"`` is an adjoint loop:
    it runs ``count`` times (a Var, or the ``range(*bounds)`` reversed) and
    restores ``pops`` (variable, tape) from the tapes the primal loop filled
    (``saves``: atom, tape).  Guards in a body are checked on every iteration.
    """

    kind: str
    body: list
    phis: tuple
    inits: tuple
    nexts: tuple
    outs: tuple
    index: Var | None = None
    bounds: tuple = ()
    free: tuple = ()
    trips: int = 0  # iterations seen when lowered
    line: str = ""  # source text of the loop statement
    saves: tuple = ()  # (atom, tape Var): appended to the tape each iteration
    count: Var | None = None  # while loops: iterations run (for the adjoint loop)
    pops: tuple = ()  # reverse loops: (Var, tape Var) popped each iteration

    def defines(self) -> tuple:
        """Variables the loop equation defines for the code after it."""
        return (self.outs + tuple(t for _, t in self.saves)
                + ((self.count,) if self.count is not None and self.kind != "reverse" else ()))


LOOP = Primitive("loop", None, ("loop",), kind="loop")
EXIT = Primitive("loop_exit", bool, ("exit",), kind="exit")  # in a while loop's body: leave when false


def loop_of(e) -> Loop | None:
    """The :class:`Loop` of a loop equation, else None."""
    return e.params[0][1] if e.prim is LOOP else None


@dataclass(eq=False)
class Cond:
    """An ``if`` statement both of whose branches were lowered: one equation (``prim``
    :data:`COND`) that runs ``then`` when ``test`` is true, else ``orelse``.

    Each branch is a block of equations over outer variables; its variables are local
    to it.  ``outs`` are the variables bound after the statement: the branch run binds
    each to its own atom (``then_outs``, ``else_outs``), and the two atoms have one
    signature (type; an array's shape and dtype).  The equation's ``ins`` are the test
    and the outer variables either branch reads (:func:`cond_eqn`).  ``taken`` is the
    branch the lowering call took (for printing).
    """

    test: Var
    then: list
    then_outs: tuple
    orelse: list
    else_outs: tuple
    outs: tuple
    line: str = ""  # source text of the if statement
    taken: bool = True

    def defines(self) -> tuple:
        return self.outs


COND = Primitive("cond", None, ("cond",), kind="cond")


def cond_of(e) -> Cond | None:
    """The :class:`Cond` of a branch equation, else None."""
    return e.params[0][1] if e.prim is COND else None


def cond_eqn(data: Cond, loc, phase: str = "primal") -> Eqn:
    """The equation of ``data``: its ``ins`` are the test and every outer variable a
    branch reads, so passes that only read ``ins`` (liveness, names) see them."""
    free = body_free(data.then + [Eqn(COND, data.then_outs, None, None)], ())
    free += body_free(data.orelse + [Eqn(COND, data.else_outs, None, None)], ())
    return Eqn(COND, tuple(dict.fromkeys((data.test, *free))), None, loc,
               (("cond", data),), phase)


def body_free(body, bound) -> list:
    """Outer variables a block (nested loops included) reads, in first-use order."""
    seen, out = set(bound), []

    def walk(eqns):
        for e in eqns:
            data = loop_of(e)
            ins = e.ins if data is None else data.inits + data.free + tuple(
                t for _, t in data.pops) + ((data.count,) if data.count is not None
                                            and data.kind == "reverse" else ())
            for x in ins:
                if isinstance(x, Var) and x not in seen:
                    seen.add(x)
                    out.append(x)
            if e.out is not None:
                seen.add(e.out)
            if data is not None:
                seen.update(data.defines())
            elif e.prim is COND and e.params:
                seen.update(e.params[0][1].outs)
    walk(body)
    return out


_AVOID = frozenset(keyword.kwlist) | frozenset(dir(builtins))


class Namer:
    """Hands out unique, readable names: ``x``, ``x_1``, ``x_2`` ...

    Variables never take a keyword or a builtin's name (``abs`` becomes
    ``abs_1``); globals of the generated code may take a builtin's own name.
    """

    def __init__(self, reserved=()):
        self.used: set[str] = set(reserved)
        self.counters: dict[str, int] = {}

    def fresh(self, hint: str, global_name: bool = False) -> str:
        hint = hint or "t"
        avoid = keyword.iskeyword(hint) if global_name else hint in _AVOID
        if hint not in self.used and not avoid:
            hint = str(hint)  # not a Hint
            self.used.add(hint)
            return hint
        n = self.counters.get(hint, 0)
        while True:
            n += 1
            name = f"{hint}_{n}"
            if name not in self.used:
                self.counters[hint] = n
                self.used.add(name)
                return name


_BUILDER: contextvars.ContextVar = contextvars.ContextVar("ad_transform_builder")


def current_builder():
    """The :class:`~ad_transform.builder.Builder` now appending equations."""
    try:
        return _BUILDER.get()
    except LookupError:
        raise RuntimeError("IR is built only inside a Builder context") from None


def _raw(x):
    return x.value if isinstance(x, Const) else x


# -- printer, checker, interpreter ------------------------------------------------

def _fmt_atom(x) -> str:
    if isinstance(x, Var):
        return x.name
    return repr(x.value) if isinstance(x, Const) else f"<not an atom: {x!r}>"  # for verify


def _format_loop(e: Eqn, data: Loop, indent: str) -> str:
    where = f"    # {e.loc.file.rsplit('/', 1)[-1]}:{e.loc.line}" if e.loc else ""
    carry = ", ".join(f"{p.name}={_fmt_atom(i)}" for p, i in zip(data.phis, data.inits))
    rng = "range(" + ", ".join(_fmt_atom(x) if isinstance(x, (Var, Const)) else repr(x)
                               for x in data.bounds) + ")"
    if data.kind == "for":
        head = f"for {data.index.name if data.index is not None else '_'} in {rng}"
    elif data.kind == "while":
        head = "while"
    else:
        head = f"reverse {rng if data.bounds else data.count}"
    lines = [f"loop {head} ({data.trips} trips seen) carry({carry}):{where}"]
    lines += [f"{indent}  {p.name} = pop({t.name})" for p, t in data.pops]
    lines += [f"{indent}  " + format_eqn(b, indent + "  ") for b in data.body]
    lines += [f"{indent}  save {_fmt_atom(a)} -> {t.name}" for a, t in data.saves]
    lines.append(f"{indent}  next " + ", ".join(_fmt_atom(n) for n in data.nexts))
    lines.append(f"{indent}-> " + ", ".join(v.name for v in data.defines()))
    return "\n".join(lines)


def _format_cond(e: Eqn, data: Cond, indent: str) -> str:
    where = f"    # {e.loc.file.rsplit('/', 1)[-1]}:{e.loc.line}" if e.loc else ""
    lines = [f"if {data.test.name} ({'then' if data.taken else 'else'} taken):{where}"]
    for label, eqns, outs in (("then", data.then, data.then_outs),
                              ("else", data.orelse, data.else_outs)):
        lines.append(f"{indent}{label}:")
        lines += [f"{indent}  " + format_eqn(b, indent + "  ") for b in eqns]
        lines.append(f"{indent}  -> " + ", ".join(_fmt_atom(a) for a in outs))
    lines.append(f"{indent}-> " + ", ".join(v.name for v in data.outs))
    return "\n".join(lines)


def format_eqn(e: Eqn, indent: str = "  ") -> str:
    data = loop_of(e)
    if data is not None:
        return _format_loop(e, data, indent)
    cond = cond_of(e)
    if cond is not None:
        return _format_cond(e, cond, indent)
    args = ", ".join(_fmt_atom(x) for x in e.ins)
    params = "".join(f", {k}={v!r}" for k, v in e.params)
    rhs = f"{e.prim.name}({args}{params})"
    where = f"    # {e.loc.place()}" if e.loc else ""
    if e.out is None:
        return f"{rhs}{where}"
    return f"{e.out.name}:{e.out.kind} = {rhs}{where}"


def format_program(p: Program) -> str:
    """Print a program one equation a line, e.g. ``sin:float = math.sin(x2)``."""
    lines = [f"program {p.name}(" + ", ".join(f"{v.name}:{v.kind}" for v in p.inputs) + "):"]
    lines += ["  " + format_eqn(e) for e in p.eqns]
    outs = [_fmt_atom(x) if isinstance(x, (Var, Const)) else repr(x) for x in p.outputs]
    lines.append("  return " + show_items(p.out_tree, outs))
    return "\n".join(lines)


def verify(p: Program, values: dict | None = None) -> None:
    """Check the SSA invariants; raise AssertionError naming the first violation.

    With the concrete ``values`` of a reversed program, also check the reverse
    pass's shape guarantee (each adjoint broadcasts to its primal's shape, each
    gradient has its input's shape)."""
    values = values or {}
    defined = set(p.inputs)
    assert len(defined) == len(p.inputs), "an input is listed twice"
    names = [v.name for v in _verify_block(p.eqns, defined)]
    assert len(names) == len(set(names)), "two variables share a name"
    _verify_adjoint_shapes(p, values)
    assert type(p.outputs) is tuple and p.out_tree.num_leaves == len(p.outputs), \
        "outputs do not match out_tree"
    for x in output_vars(p.outputs):
        assert x in defined, f"output {x.name} is never defined"


def output_vars(outputs) -> list:
    """The variables among a program's (flat) ``outputs``."""
    return [x for x in outputs if isinstance(x, Var)]


def _verify_block(eqns, defined: set) -> set:
    """Check one block; ``defined`` grows with its definitions.  A loop's body is a
    block of its own (its variables are local to it).  Returns every name defined."""
    every = set(defined)
    for e in eqns:
        data = loop_of(e)
        if data is not None:
            for x in e.ins:
                assert not isinstance(x, Var) or x in defined, \
                    f"loop at {e.loc}: {x.name} used before it is defined"
            inner = set(defined) | set(data.phis) | {v for v, _ in data.pops}
            if data.index is not None:
                inner.add(data.index)
            every |= _verify_block(data.body, inner) | inner
            for x in data.nexts + tuple(a for a, _ in data.saves):
                assert not isinstance(x, Var) or x in inner, f"loop carries undefined {x}"
            assert len(data.phis) == len(data.inits) == len(data.nexts) == len(data.outs)
            for v in data.defines():
                assert v not in defined, f"{v.name} defined twice"
                defined.add(v)
            every |= set(data.defines())
            continue
        cond = cond_of(e)
        if cond is not None:
            for x in e.ins:
                assert not isinstance(x, Var) or x in defined, \
                    f"if at {e.loc}: {x.name} used before it is defined"
            assert cond.test in defined, f"if at {e.loc}: its test is not defined"
            for eqns, outs in ((cond.then, cond.then_outs), (cond.orelse, cond.else_outs)):
                inner = set(defined)
                every |= _verify_block(eqns, inner)
                assert len(outs) == len(cond.outs), f"if at {e.loc}: a branch binds too few"
                for x in outs:
                    assert not isinstance(x, Var) or x in inner, f"if binds undefined {x}"
            for v in cond.outs:
                assert v not in defined, f"{v.name} defined twice"
                defined.add(v)
            every |= set(cond.outs)
            continue
        for x in e.ins:
            assert isinstance(x, (Var, Const)), f"{format_eqn(e)}: operand {x!r} is not an atom"
            if isinstance(x, Var):
                assert x in defined, f"{format_eqn(e)}: {x.name} used before it is defined"
        if e.prim.is_guard or e.prim is EXIT:
            assert e.out is None, f"{format_eqn(e)}: a guard defines nothing"
        else:
            assert e.out is not None, f"{format_eqn(e)}: no output"
            assert e.out not in defined, f"{format_eqn(e)}: {e.out.name} defined twice"
            defined.add(e.out)
            every.add(e.out)
    return every


def _verify_adjoint_shapes(p: Program, values: dict) -> None:
    """What the reverse pass promises: each adjoint has its primal's shape or one that
    broadcasts to it (NumPy's rules, aligned from the right); each gradient its input's."""
    for g, x, exact in p.adjoints:
        if x not in values or (isinstance(g, Var) and g not in values):
            continue  # values already released
        gs = _shape(values[g] if isinstance(g, Var) else _raw(g))
        xs = _shape(values[x])
        if gs == xs:
            continue
        if exact:
            assert gs == xs, f"the gradient of {x.name} has shape {gs}, its input {xs}"
            continue
        try:
            fits = np.broadcast_shapes(gs, xs) == xs
        except ValueError:
            fits = False
        assert fits, f"the adjoint of {x.name} has shape {gs}, which does not broadcast to {xs}"


def _shape(value) -> tuple:
    t = type(value)
    if t is float or t is int or t is bool:
        return ()
    return value.shape if t is np.ndarray else np.shape(value)


class GuardFailed(Exception):
    """Raised by :func:`evaluate` when the inputs leave the program's control path."""


class _Exit(Exception):
    pass


def run_block(eqns, env: dict) -> None:
    """Interpret a block of equations in ``env`` (Var -> value), loops included."""
    def read(x):
        return env[x] if isinstance(x, Var) else x.value

    for e in eqns:
        data = loop_of(e)
        if data is not None:
            run_loop(data, env)
            continue
        cond = cond_of(e)
        if cond is not None:
            branch, outs = ((cond.then, cond.then_outs) if env[cond.test]
                            else (cond.orelse, cond.else_outs))
            run_block(branch, env)
            env.update(zip(cond.outs, [read(x) for x in outs]))
            continue
        vals = [read(x) for x in e.ins]
        if e.prim is EXIT:
            if not vals[0]:
                raise _Exit()
            continue
        if e.prim.is_guard:
            if not e.prim.impl(*vals, **dict(e.params)):
                raise GuardFailed(format_eqn(e))
            continue
        env[e.out] = e.prim.impl(*vals, **dict(e.params))


def run_loop(data: Loop, env: dict) -> None:
    """Run a loop equation on the values in ``env``, defining what it defines."""
    def read(x):
        return env[x] if isinstance(x, Var) else x.value

    state = [read(x) for x in data.inits]
    tapes = {t: [] for _, t in data.saves}
    if data.kind == "for":
        steps = range(*(read(x) if isinstance(x, (Var, Const)) else x for x in data.bounds))
    elif data.kind == "while":
        steps = iter(int, 1)  # forever
    else:
        steps = reversed(range(*(read(x) if isinstance(x, (Var, Const)) else x
                                 for x in data.bounds))) if data.bounds else range(env[data.count])
    count = 0
    for i in steps:
        local = dict(env)
        local.update(zip(data.phis, state))
        if data.index is not None:
            local[data.index] = i
        for v, t in data.pops:
            local[v] = env[t].pop()
        try:
            run_block(data.body, local)
        except _Exit:
            break
        for a, t in data.saves:
            tapes[t].append(local[a] if isinstance(a, Var) else a.value)
        state = [local[x] if isinstance(x, Var) else x.value for x in data.nexts]
        count += 1
    env.update(zip(data.outs, state))
    env.update(tapes)
    if data.count is not None:
        env[data.count] = count


def evaluate(p: Program, *args):
    """Run a program on concrete inputs by interpreting its equations."""
    env = dict(zip(p.inputs, args))

    run_block(p.eqns, env)
    return output_value(p, lambda x: env[x] if isinstance(x, Var) else _raw(x))

