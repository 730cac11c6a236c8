"""Custom derivatives: ``custom_vjp``, ``defvjp`` and ``stop_gradient``.

``custom_vjp(fun)`` makes the user's function ``fun`` a primitive: the
lowering calls it (it is not inlined) and the reverse pass uses the rules
given with ``fun.defvjp(rule0, rule1, ...)``, one per positional argument.
``defvjp(fn, rule0, ...)`` does the same for a function that is not the
user's (``scipy.special.expit``).  A rule has the form of the built-in ones,
``rule(g, ans, *args, **kwargs)``: ``g`` is the adjoint of the output, ``ans``
the output, ``args`` the arguments as passed; it returns the adjoint
contribution for its argument, with that argument's shape.

Guarantees:

* A rule is ordinary Python **called at run time** by the generated code
  (``d_x = expit_vjp0(d_p, p, x)``): it may use NumPy, SciPy, loops and
  branches, and is not traced.  So the derivative of a derivative can inline
  a rule written in Python (the rule is user code like any other).
* We trust the rule: its value is not checked against the function.  Its
  result is checked on the first call of each compiled path: it must be a
  real number or array with its argument's shape; otherwise a located
  :class:`~ad_transform.errors.BadRule` naming the rule.  A rule that raises
  while the path is built is reported the same way.
* Differentiating through an argument that has no rule (``None`` or missing)
  is a located :class:`~ad_transform.errors.MissingRule`, never a zero.
* Giving new rules to a function whose rules were already used, or making a
  Python function a primitive, clears every compiled path (they call the old
  rules, or inlined the function's body).
* ``stop_gradient(x)`` is the identity (it returns ``x`` itself; containers
  element by element) and no derivative flows through it.
"""
from __future__ import annotations

import inspect
import types

import numpy as np

from . import pytree as T
from .errors import BadRule, MissingRule
from .ir import Var, current_builder
from .rules import builtins as B
from .rules import numpy as N
from .rules.core import LOWERINGS, REGISTRY, _key, defprim, defzero, value_of
from .values import _contains_var

__all__ = ["custom_vjp", "defvjp", "stop_gradient"]


def stop_gradient(x):
    """``x`` itself, with a zero derivative: ``gradient`` treats it as a constant."""
    return x


_stop = defzero(defprim("stop_gradient", stop_gradient, ("call", "stop_gradient"),
                        root=stop_gradient, register=stop_gradient))
_stop.computes = False  # returns its argument: not a new array the code may write into


def _lower_stop(hint, x):
    b = current_builder()
    if T.is_tree(x):  # a container built in the function: each traced item
        leaves = []
        td = T.TreeDef(T._node(x, lambda v: leaves.append(v) or ("leaf", None)))
        return td.unflatten(*(b.apply(_stop, (v,)) if isinstance(v, Var) else v
                              for v in leaves), static=True)
    return b.apply(_stop, (x,), None, hint) if isinstance(x, Var) else x


def _register(fn, lowering):
    """Lower calls of ``fn`` with ``lowering(hint, *args, **kwargs)`` when a traced value
    is among the arguments (with constants only, ``fn`` is simply called)."""
    def entry(lw, args, kwargs, node, hint):
        if not (any(_contains_var(a) for a in args) or any(_contains_var(v) for v in kwargs.values())):
            return NotImplemented
        lw.b.loc = lw.loc(node)
        args, kwargs = lw.static_args(list(args), kwargs, node)
        return lowering(hint, *args, **kwargs)
    LOWERINGS[_key(fn)] = entry


_register(stop_gradient, _lower_stop)


class _Custom:
    """The rules of one custom function, and the primitives that call them."""

    def __init__(self, fn, name):
        self.fn, self.name = fn, name
        self.rules: tuple = ()
        self.used = False  # a path was built with these rules
        self.calls: dict = {}  # index -> primitive that calls the rule at run time
        try:
            self.params = [p.name for p in inspect.signature(fn).parameters.values()]
        except (TypeError, ValueError):
            self.params = []
        hint = name.rsplit(".", 1)[-1]
        self.hint = hint if hint.isidentifier() else "custom"
        prim = defprim(name, fn, ("call", self.hint), hint=self.hint, root=fn, register=fn)
        prim.variadic_vjp = self.vjp
        prim.custom = self
        # the user's code: its result may be an array it was given or holds elsewhere
        # (not one the generated code may write into), and its type may follow the values
        prim.computes, prim.opaque, prim.may_raise, prim.user_code = False, True, True, True
        self.prim = prim

    def arg_name(self, i):
        if i < len(self.params):
            return f"argument {i} ({self.params[i]})"
        return f"argument {i}"

    def vjp(self, i, g, ans, *ins, **params):
        """The reverse pass's rule for input ``i``: a call of the user's rule."""
        b = current_builder()
        rule = self.rules[i] if i < len(self.rules) else None
        if rule is None:
            raise MissingRule(
                f"no derivative rule for {self.arg_name(i)} of {self.name}, which is "
                f"differentiated here; give one with {self.hint}.defvjp(...) (one rule per "
                "positional argument, None where it is never differentiated)", b.loc)
        self.used = True
        prim = self.calls.get(i)
        if prim is None or prim.impl is not rule:
            prim = self.calls[i] = defprim(f"{self.name} vjp{i}", rule,
                                           ("call", f"{self.hint}_vjp{i}"), root=rule,
                                           hint=f"d_{self.hint}")
            prim.computes = False  # the rule may return g itself, or an array it keeps
            prim.user_code = True
        label = f"the rule for {self.arg_name(i)} of {self.name} ({_rule_name(rule)})"
        if isinstance(g, np.ndarray):  # a constant of the code: the rule may write into g
            g = b.record(N.copy, (g,), hint="g")
        try:
            out = b.record(prim, (g, ans, *ins), params)
        except Exception as exc:
            raise BadRule(f"{label} raised {type(exc).__name__}: {exc}", b.loc) from exc
        got, want = value_of(out), value_of(ins[i])
        if not _real(got):
            raise BadRule(f"{label} returned a {type(got).__name__}; a rule returns a real "
                          "number or array shaped like its argument", b.loc)
        if np.shape(got) != np.shape(want):
            raise BadRule(f"{label} returned shape {np.shape(got)}, but the argument has shape "
                          f"{np.shape(want)}", b.loc)
        return out


def _real(v) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, (int, float)):
        return True
    dtype = getattr(v, "dtype", None)
    return dtype is not None and hasattr(v, "shape") and dtype.kind in "fiu"


def _rule_name(rule) -> str:
    code = getattr(rule, "__code__", None)
    name = getattr(rule, "__qualname__", None) or repr(rule)
    if code is not None:
        return f"{name} at {code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno}"
    return name


def _describe(fn) -> str:
    mod = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"{mod}.{name}" if mod and mod not in ("builtins", "__main__") else name


def _custom_for(fn) -> _Custom:
    prim = REGISTRY.get(_key(fn))
    if prim is not None and getattr(prim, "custom", None) is not None:
        return prim.custom
    if prim is not None:
        raise ValueError(f"{_describe(fn)} already has a built-in derivative rule "
                         f"({prim.name}); ad_transform does not replace it")
    if getattr(fn, "__ad_transform__", False):
        raise ValueError("a derivative made by ad_transform cannot be given custom rules")
    custom = _Custom(fn, _describe(fn))
    _register(fn, _lowering(custom))
    if isinstance(fn, types.FunctionType):
        from .cache import clear_all
        clear_all()  # compiled paths may have inlined its body: now it is a primitive
    return custom


def _lowering(custom):
    def lower_call(hint, *args, **kwargs):
        b = current_builder()
        for a in list(args) + list(kwargs.values()):
            if isinstance(a, (list, tuple, dict)) and _contains_var(a):
                raise MissingRule(f"{custom.name} is a custom_vjp function: pass it floats and "
                                  "arrays, not containers of traced values", b.loc)
        if any(isinstance(v, Var) for v in kwargs.values()):
            raise MissingRule(f"{custom.name} is a custom_vjp function: pass traced values "
                              "positionally (its rules get one argument each)", b.loc)
        out = b.apply(custom.prim, args, kwargs, hint)
        if any(isinstance(a, Var) and a in b.active for a in args) and not _real(value_of(out)):
            raise BadRule(f"{custom.name} returned a {type(value_of(out)).__name__}; a function "
                          "with custom rules returns one real number or array", b.loc)
        lowerer = getattr(b, "lowerer", None)
        if isinstance(out, Var) and lowerer is not None:
            # user code: its result's type (and shape) may depend on the values: guarded
            from . import runtime
            lowerer._decide(B.guard_types, (out,), runtime.signatures(value_of(out)), None)
        return out
    return lower_call


def defvjp(fn, *rules):
    """Give ``fn`` (any callable: the user's function or a library's, e.g.
    ``scipy.special.expit``) one derivative rule per positional argument,
    ``rule(g, ans, *args, **kwargs)`` (``None``: never differentiated there).
    ``fn`` becomes a primitive: called, not inlined.  Returns ``fn``."""
    if not callable(fn):
        raise TypeError(f"defvjp needs a function, got {fn!r}")
    for i, r in enumerate(rules):
        if r is not None and not callable(r):
            raise TypeError(f"rule {i} for {_describe(fn)} is {r!r}, not a function or None")
    custom = _custom_for(fn)
    if custom.used and custom.rules != tuple(rules):
        from .cache import clear_all
        clear_all()  # compiled paths call the old rules
        custom.used = False
    custom.rules = tuple(rules)
    return fn


def custom_vjp(fun):
    """Mark the Python function ``fun`` as a primitive whose derivative you give:
    ``fun.defvjp(rule0, rule1, ...)``.  Returns ``fun`` itself (calling it is
    unchanged); use it as a decorator."""
    if not isinstance(fun, types.FunctionType):
        raise TypeError(f"custom_vjp needs a Python function, got {fun!r}; for other "
                        "callables use ad_transform.defvjp(fn, rule, ...)")
    if "." in fun.__qualname__.rsplit("<locals>.", 1)[-1]:
        raise TypeError(f"custom_vjp: {fun.__qualname__} is defined in a class; a method is "
                        "inlined with its object, so give the rule to a plain function the "
                        "method calls")
    _custom_for(fun)
    fun.defvjp = lambda *rules: defvjp(fun, *rules)
    return fun
