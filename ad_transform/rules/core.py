"""The rule registry: primitives keyed by the Python callable they stand for.

A derivative rule is ordinary Python over IR atoms: ``g`` (the output's
adjoint), ``ans`` (the output) and the inputs, each a :class:`~ad_transform.ir.Var`
or a plain constant.  Arithmetic on them and calls of primitives append
equations to the current builder, so ``lambda g, ans, x: g * cos(x)`` *is* the
rule for ``math.sin``.  A rule returns the adjoint contribution for its input.
"""
from __future__ import annotations

import builtins
from typing import Any, Callable

from ..ir import Primitive, current_builder
from ..values import _contains_var

__all__ = ["REGISTRY", "METHODS", "LOWERINGS", "defprim", "defvjp", "defzero", "deflowering",
           "lookup", "lookup_method", "lookup_attr", "lookup_lowering", "value_of", "refuse"]

REGISTRY: dict[Any, Primitive] = {}  # Python callable -> primitive
METHODS: dict[tuple[type, str], Any] = {}  # (type, method name) -> primitive or lowering
LOWERINGS: dict[Any, Callable] = {}  # Python callable -> function that builds IR for a call
ATTRS: dict[tuple[type, str], Callable] = {}  # (type, attribute) -> function of the atom


def deflowering(*fns, interpreter: bool = False):
    """Register how calls of ``fns`` are lowered: the one registry of lowerings.

    Every entry is called by the interpreter as ``lowering(lw, args, kwargs, node, hint)``
    (``lw`` the :class:`~ad_transform.lower.Lowerer`) and returns the call's interpreter
    value, or ``NotImplemented`` to leave the call to the next step of ``Lowerer.call``.

    ``interpreter=True`` registers such a function as it is (the builtins the interpreter
    runs itself, :mod:`ad_transform.rules.python`).  Otherwise the function is a rule over
    the traced values, for calls that are more than one primitive (``np.array([a, b])``,
    ``np.linalg.slogdet``): it is called only when a traced value is among the arguments,
    with NumPy's static arguments made plain (``Lowerer.static_args``), as
    ``lowering(*args, **kwargs)``, and applies primitives, returning any Python structure.
    """
    def register(lowering):
        entry = lowering if interpreter else _of_traced(lowering)
        for fn in fns:
            LOWERINGS[_key(fn)] = entry
        return lowering
    return register


def _of_traced(lowering):
    def lower_call(lw, args, kwargs, node, hint):
        if not (any(_contains_var(a) for a in args) or any(_contains_var(v) for v in kwargs.values())):
            return NotImplemented  # constants only: folded
        lw.b.loc = lw.loc(node)
        args, kwargs = lw.static_args(args, kwargs, node)
        return lowering(*args, **kwargs)
    return lower_call


def lookup_lowering(fn):
    return LOWERINGS.get(_key(fn))


def value_of(x):
    """The concrete value of an atom while IR is being built (rules may branch on shapes)."""
    return current_builder().value(x)


def refuse(message: str):
    """Raise :class:`~ad_transform.errors.MissingRule` at the equation being differentiated
    (a rule's way to say "no derivative for these arguments; do this instead")."""
    from ..errors import MissingRule
    raise MissingRule(message, current_builder().loc)


def _key(fn):
    try:
        hash(fn)
        return fn
    except TypeError:
        return id(fn)


def defprim(name: str, impl: Callable, form: tuple, *, hint: str | None = None,
            root: Any = None, register: Any = None, opaque: bool = False,
            may_mutate: bool = False) -> Primitive:
    """Declare a primitive.  ``register``: the user-facing callable it answers for.

    The one place a primitive's printing ``form`` gives its meaning: what the passes read
    (``kind``, ``op``, ``elementwise``, ``is_guard``, ``may_raise``, ``computes``) is set
    here from it, and past this point ``form`` is read for printing only;
    ``opaque`` and ``may_mutate`` are given by the declaration."""
    prim = Primitive(name=name, impl=impl, form=form, hint=hint or name.rsplit(".", 1)[-1],
                     root=root, opaque=opaque, may_mutate=may_mutate)
    prim.kind = form[0]
    prim.op = form[1] if form[0] in ("binop", "unary", "compare", "guard") else None
    prim.elementwise = form[0] in ("unary", "compare") or (form[0] == "binop" and form[1] != "@")
    prim.is_guard = form[0] == "guard"
    prim.computes = form[0] in ("binop", "unary", "call")
    prim.may_raise = form[0] == "call" or (form[0] == "binop" and form[1] in ("/", "//", "%", "**"))
    if register is not None:
        REGISTRY[_key(register)] = prim
    return prim


def call_prim(module, attr: str, root_name: str, *, hint: str | None = None,
              impl: Callable | None = None, register: bool = True) -> Primitive:
    """A primitive printed as ``root_name.attr(...)``, e.g. ``math.sin(x)``."""
    fn = impl or getattr(module, attr)
    if module is builtins:  # printed bare: abs(x), float(x)
        return defprim(attr, fn, ("call", root_name), hint=hint or attr, root=fn,
                       register=fn if register else None)
    prim = defprim(f"{root_name}.{attr}", fn, ("call", root_name, attr), hint=hint or attr,
                   root=module, register=fn if register else None)
    prim.elementwise = type(fn).__name__ == "ufunc"
    return prim


def defvjp(prim: Primitive, *rules: Callable | None) -> Primitive:
    """Attach one rule per positional input (``None``: no derivative there)."""
    prim.vjps = tuple(rules)
    return prim


def defvjp_variadic(prim: Primitive, rule: Callable) -> Primitive:
    """Attach ``rule(i, g, ans, *ins)`` for functions of any number of inputs."""
    prim.variadic_vjp = rule
    return prim


def defzero(prim: Primitive) -> Primitive:
    """Mark a piecewise-constant primitive: its derivative is zero everywhere."""
    prim.zero = True
    return prim


def lookup(fn) -> Primitive | None:
    return REGISTRY.get(_key(fn))


def lookup_method(obj, name: str):
    """The primitive (or lowering function) for ``obj.name(...)``, if any."""
    return _by_type(METHODS, obj, name)


def lookup_attr(obj, name: str):
    """A function of the atom giving ``obj.name``, if any."""
    return _by_type(ATTRS, obj, name)


def _by_type(table, obj, name):
    for cls in type(obj).__mro__:
        found = table.get((cls, name))
        if found is not None:
            return found
    return None
