"""Fixed (class: wrong gradient, broadcasting adjoint; issue 6 item 3, runtime.sum_axes).
A row x[None, :] met by a (n,) vector and reduced at once: the adjoint was summed over
axes aligned from the wrong end. Shrunk from fuzz seed 1000078 pattern."""
import math

import numpy as np

ARGS = {'x': ('n',), 'v': ('n',)}
WRT = (0,)
SEED = 1000078


def f(x, v):
    return np.sum(x[None, :] * v)
