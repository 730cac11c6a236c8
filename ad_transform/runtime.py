"""Names the generated code refers to at run time (bound as ``_rt``).

Kept tiny on purpose: a generated derivative is plain Python that calls
``math``, builtins and these few helpers.
"""
from __future__ import annotations

import math

__all__ = ["PathMiss", "sign", "log_or_zero"]


class PathMiss(Exception):
    """Raised by a guard: these inputs take another control path.

    ``index`` is the guard's position along the path, ``observed`` the outcome
    the inputs produced there.  The cache uses both to find (or build) the
    derivative of the path the inputs really take.
    """

    def __init__(self, index: int, observed):
        self.index = index
        self.observed = observed


def sign(x):
    """-1, 0 or 1 as a float: the derivative of ``abs`` (0 at 0, as in JAX and autograd)."""
    return (x > 0) - (x < 0) + 0.0


def log_or_zero(x):
    """``log(x)``, with 0 at ``x == 0`` (``d/dy x**y`` there) and nan below."""
    if x > 0:
        return math.log(x)
    return 0.0 if x == 0 else math.nan
