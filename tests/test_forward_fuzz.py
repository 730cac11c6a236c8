"""Forward mode on the fuzzer's random programs (tests/fuzz.py): ``jvp`` along random
tangents equals the reverse-mode gradient contracted with them, on two draws each.

The gradient is checked against finite differences and autograd by
tests/test_fuzz.py on the same programs; here it is the oracle for the tangent.
A draw whose primal raises or is not finite, or that gradient refuses (where jvp
must refuse too), gets no verdict.
"""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import fuzz
from ad_transform import ADError, gradient, jvp

N = int(os.environ.get("AD_FUZZ_N_FORWARD", "60"))


@pytest.mark.parametrize("seed", range(1_000_000, 1_000_000 + N, 20))
def test_jvp_of_random_programs_matches_contracted_gradient(seed):
    rng = np.random.default_rng(seed)
    checked = 0
    for s, mod, wrt in fuzz.programs(seed, 20, "fwd"):
        for inputs in list(fuzz.draws(mod.ARGS, mod.SEED))[:2]:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if not np.all(np.isfinite(mod.f(*fuzz.copied(inputs)))):
                        continue
            except Exception:
                continue
            ts = tuple(fuzz.random_like(rng, a) if i in wrt else None
                       for i, a in enumerate(inputs))
            try:
                grads = gradient(mod.f, tuple(wrt))(*fuzz.copied(inputs))
            except ADError:
                with pytest.raises(ADError):
                    jvp(mod.f, fuzz.copied(inputs), ts)
                continue
            value, tangent = jvp(mod.f, fuzz.copied(inputs), ts)
            want = sum(float(np.sum(g * ts[i])) for g, i in zip(grads, wrt))
            np.testing.assert_allclose(float(tangent), want, rtol=1e-7, atol=1e-9,
                                       err_msg=f"seed {s}:\n{fuzz.generate(s)}")
            checked += 1
    assert checked > 20
