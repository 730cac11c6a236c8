"""Refused (was: wrong value and gradient, array aliasing; issue 6 item 2 "z = y; y += x").
An augmented assignment updates the array in place, so the alias t3 sees it too; the
functional update would miss that, so it is now refused with a located UnsupportedSyntax
(docs/python-subset.md documents it). Shrunk from fuzz seeds 1000214, 1000247, 2000585."""
import math

import numpy as np

ARGS = {'x': ('n',), 'v': ('m',)}
WRT = (1,)
SEED = 1000214


def f(x, v):
    t1 = v * 1.0
    t3 = t1
    t1 *= t1
    return np.sum(t3)
