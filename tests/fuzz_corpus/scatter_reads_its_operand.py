"""Fuzz corpus: the adjoint of ``(...)[0][None, :]`` printed its scatter as NumPy
(``buf = np.zeros(...)`` then ``buf[None, :] = g``) under the name of ``g``, which the
buffer had just replaced (``d_item[None, :] = d_item``).  Fixed in registers.reuse_names:
a scatter's operands keep their names until after its buffer is made."""
import math

import numpy as np

ARGS = {'x': ('n',), 'S': ('k', 'k'), 's': ()}
WRT = (0, 1, 2)
SEED = 1000080


def f(x, S, s):
    m = 2
    t1 = s
    t2 = t1 * (s * np.full((m, 1), 0.85))[0][None, :]
    return np.sum(t2)
