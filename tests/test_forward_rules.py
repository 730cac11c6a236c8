"""Every forward (JVP) rule, on the table of every NumPy rule (tests/test_rules_numpy.py).

For each entry, with random tangents ``t`` for all arguments and a random
weight ``u`` on the output:

* the tangent matches central finite differences of the function along ``t``;
* ``<u, J t>`` (forward mode) equals ``<J^T u, t>`` (the reverse-mode gradient of
  ``np.sum(u * f(...))``, an independent pass with its own rules).
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest

from ad_transform import gradient, jvp
from test_rules_numpy import IDS, TABLE, Case, weighted_sum


def _tangent(rng, a):
    return rng.standard_normal(np.shape(a)) if isinstance(a, np.ndarray) else float(rng.standard_normal())


def _directional(f, args, ts, eps=1e-6):
    scale = max([1.0] + [float(np.max(np.abs(a))) for a in args])
    h = eps * scale
    up = f(*[a + h * t for a, t in zip(args, ts)])
    down = f(*[a - h * t for a, t in zip(args, ts)])
    return (np.asarray(up, float) - np.asarray(down, float)) / (2 * h)


@pytest.mark.parametrize("c", TABLE, ids=IDS)
def test_jvp_rule(c: Case):
    rng = np.random.default_rng(zlib.crc32(c.id.encode()))
    args = c.args(rng)
    ts = tuple(_tangent(rng, a) for a in args)
    value, tangent = jvp(c.fn, args, ts)
    np.testing.assert_allclose(value, c.fn(*args), rtol=1e-12, atol=0)
    assert np.shape(tangent) == np.shape(value)
    np.testing.assert_allclose(tangent, _directional(c.fn, args, ts), rtol=1e-4, atol=1e-5)
    u = rng.standard_normal(np.shape(value))
    u = float(u) if np.ndim(u) == 0 else u
    grads = gradient(weighted_sum(c.fn, u, len(args)), tuple(range(len(args))))(*args)
    backward = sum(float(np.sum(g * t)) for g, t in zip(grads, ts))
    np.testing.assert_allclose(float(np.sum(u * tangent)), backward, rtol=1e-9, atol=1e-10)
