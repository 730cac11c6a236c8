"""Fuzz corpus: builtin abs() of a NumPy scalar (np.mean gives np.float64) crashed the
reverse pass (runtime.sign subtracted two np.bool_). Fixed in runtime.sign."""
import math

import numpy as np

ARGS = {'v': ('m',), 's': ()}
WRT = (0, 1)
SEED = 1000003


def f(v, s):
    return abs(np.mean(v * s)) + s
