"""The interpreter's values, and which code is the user's.

Interpreter values are: a :class:`~ad_transform.ir.Var` (traced), a Python
list/tuple/dict holding interpreter values (containers are structure, not data), one of
the callables below (a :class:`~ad_transform.scope.Closure`, a :class:`VarMethod`, a
:class:`_Partial`), a :class:`_Generated` one-shot iterator, or any other Python object,
which is a constant.

Guarantees: :func:`_is_user_code` and :func:`_is_user_callable` decide which code the
interpreter inlines (the user's own Python) and which it calls as a library (the
standard library, NumPy, SciPy, ad_transform, installed packages); the answer depends
on the code's module and file only.
"""
from __future__ import annotations

import sys
import types

from .ir import Var
from .scope import Closure

class _Generated(list):
    """The items of a one-shot iterator: a generator expression, ``map``, ``filter``,
    ``zip``, ``enumerate``, ``reversed`` (evaluated eagerly); iterating it or ``next()``
    consumes them, as in Python."""


class VarMethod:
    """``x.method`` for a traced ``x``, waiting to be called."""

    def __init__(self, var, name):
        self.var, self.name = var, name


class _Partial:
    """``functools.partial`` of an interpreter value (a local function, traced arguments):
    calling it calls ``func`` with the stored arguments first, as Python does."""

    def __init__(self, func, args, keywords):
        self.func, self.args, self.keywords = func, tuple(args), dict(keywords)
        self.__name__ = getattr(func, "__name__", "partial")


def _contains_var(x) -> bool:
    if isinstance(x, Var):
        return True
    if isinstance(x, (list, tuple)):
        return any(_contains_var(i) for i in x)
    if isinstance(x, dict):
        return any(_contains_var(i) for i in x.values())
    fields = getattr(type(x), "__dataclass_fields__", None)
    if fields is not None and not isinstance(x, type):  # a wrt tree's dataclass, rebuilt
        return any(_contains_var(getattr(x, name, None)) for name in fields)
    return False


def _hashable(x) -> bool:
    try:
        hash(x)
        return True
    except TypeError:
        return False


def _is_user_module(module: str, filename: str) -> bool:
    """Code of the (dotted) ``module``, in ``filename``, is the user's: not the standard
    library, NumPy, SciPy, ad_transform or an installed package."""
    root = module.split(".")[0]
    if root in sys.stdlib_module_names or root in ("numpy", "scipy", "ad_transform"):
        return False
    return "site-packages" not in filename and "dist-packages" not in filename


def _is_user_code(fn) -> bool:
    """True for functions the user wrote (inlined), False for libraries (opaque)."""
    filename = getattr(getattr(fn, "__code__", None), "co_filename", "")
    return _is_user_module(getattr(fn, "__module__", "") or "", filename)


_USER_TYPES: dict = {}


def _user_instance(v) -> bool:
    """``v`` is an object of one of the user's own classes."""
    t = type(v)
    known = _USER_TYPES.get(t)
    if known is None:
        known = not issubclass(t, (type, types.ModuleType, types.FunctionType,
                                   types.MethodType, Closure, _Partial, VarMethod, Var)) \
            and _is_user_module(getattr(t, "__module__", "") or "", "")
        if len(_USER_TYPES) < 10_000:
            _USER_TYPES[t] = known
    return known


def _user_callable_object(v) -> bool:
    """An object of a user class whose ``__call__`` is the user's code."""
    call = getattr(type(v), "__call__", None)
    return _user_instance(v) and isinstance(call, types.FunctionType) and _is_user_code(call)


def derivative_info(fn):
    """The :class:`~ad_transform.api.Derivative` a ``gradient`` wrapper carries as
    ``__ad_transform__``, else None (a jacobian's or forward_derivative's flag is
    ``True``: those are lowered as the calls they are, :mod:`ad_transform.inner`)."""
    info = getattr(fn, "__ad_transform__", None)
    return info if hasattr(info, "root") else None


def _is_user_callable(v) -> bool:
    """A callable the interpreter must inline (never hand to library code as it is)."""
    if isinstance(v, (Closure, _Partial, VarMethod)):
        return True
    if isinstance(v, types.MethodType):
        v = v.__func__
    return isinstance(v, types.FunctionType) and _is_user_code(v) and not getattr(
        v, "__ad_transform__", False)
