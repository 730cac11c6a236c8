"""Refused by design (fuzz seed 11000503, opt-in run of 10,000 programs, seed 11).
The helper's `a0 += a0` writes into the caller's array t2 (NumPy changes it there too);
ad_transform updates arrays functionally, so it refuses with a located UnsupportedSyntax
(docs/python-subset.md) instead of differentiating something else."""
import math

import numpy as np

ARGS = {'x': ('n',), 's': ()}
WRT = (0, 1)
SEED = 11000503


def helper1(a0):
    a0 += a0
    return a0


def f(x, s):
    t2 = np.ones(x.shape) * s
    t2 = helper1(t2)
    return np.sum(x * t2)
