"""ad_transform: source-to-source reverse-mode automatic differentiation for Python.

>>> import math
>>> from ad_transform import gradient
>>> @gradient(wrt=(0, 1))
... def f(x1, x2):
...     return math.log(x1) + x1 * math.sin(x2)
>>> f(2.0, 1.0)
(1.3414709848078965, 1.0806046117362795)
"""
from . import testing
from .api import derivative_source, gradient, value_and_gradient
from .custom import custom_vjp, defvjp, stop_gradient
from .higher import hessian, hvp
from .transforms import forward_derivative, jacobian, jvp, vjp
from .errors import (ADError, BadRule, BadWrt, MissingRule, NonScalarOutput, PathTooLong,
                     SourceUnavailable, UnsupportedSyntax)
from .pytree import tree_flatten, tree_map, tree_unflatten

__all__ = [
    "gradient", "value_and_gradient", "derivative_source", "hessian", "hvp", "testing",
    "jvp", "forward_derivative", "vjp", "jacobian",
    "custom_vjp", "defvjp", "stop_gradient", "tree_flatten", "tree_unflatten", "tree_map",
    "ADError", "UnsupportedSyntax", "MissingRule", "SourceUnavailable", "NonScalarOutput",
    "BadWrt", "PathTooLong", "BadRule",
]
__version__ = "0.1.0"
