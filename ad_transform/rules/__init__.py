"""Derivative rules as data, one module per namespace."""
from . import builtins, math, numpy, python, pytree, runtime  # noqa: F401  (importing registers the rules)
from .core import REGISTRY, lookup, lookup_attr, lookup_lowering, lookup_method

__all__ = ["REGISTRY", "lookup", "lookup_attr", "lookup_lowering", "lookup_method"]
