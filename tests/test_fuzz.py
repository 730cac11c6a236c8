"""The fuzzer (tests/fuzz.py) in CI: random programs, the corpus, and the harness itself.

Every program is checked against finite differences and HIPS autograd on 4
input draws (new values, then new shapes, then the first shapes again).  CI
runs ``AD_FUZZ_N`` programs (default 400) from ``AD_FUZZ_SEED`` (default 1);
an opt-in run does more, e.g. ``AD_FUZZ_N=10000 AD_FUZZ_SEED=3 pytest
tests/test_fuzz.py`` (see tests/README.md).  A failure prints the program,
shrunk, as source: add it to tests/fuzz_corpus/ with the fix.
"""
from __future__ import annotations

import glob
import os
import re

import numpy as np
import pytest

import fuzz

N = int(os.environ.get("AD_FUZZ_N", "400"))
SEED = int(os.environ.get("AD_FUZZ_SEED", "1"))
CHUNK = 50
HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = sorted(glob.glob(os.path.join(HERE, "fuzz_corpus", "*.py")))
PENDING = sorted(glob.glob(os.path.join(HERE, "fuzz_corpus", "pending", "*.py")))

# Programs of the default seeds that fail because of bugs being fixed on other branches;
# each one's shrunk source is in tests/fuzz_corpus/pending/ (named in the comment).
# When the fix lands: move that file up to tests/fuzz_corpus/ and delete the seed here.
KNOWN_PENDING: dict = {}
REFUSED = sorted(glob.glob(os.path.join(HERE, "fuzz_corpus", "refused", "*.py")))


@pytest.mark.parametrize("start", range(0, N, CHUNK))
def test_random_programs(start):
    stats = fuzz.run(min(CHUNK, N - start), SEED, out=lambda s: None,
                     exclude=set(KNOWN_PENDING) if SEED == 1 else set(), first=start)
    assert stats["programs"] > 0
    assert stats["checked_draws"] > stats["skipped_draws"], stats  # most draws get a verdict
    report = "\n\n".join(f"seed {s}: {f}\n{src}" for s, f, src in stats["failures"])
    assert not stats["failures"], f"{len(stats['failures'])} failing programs:\n{report}"


@pytest.mark.parametrize("path", CORPUS, ids=os.path.basename)
def test_corpus(path):
    with open(path) as fh:
        checked, _ = fuzz.check(fh.read())
    assert checked > 0


@pytest.mark.parametrize("path", REFUSED, ids=os.path.basename)
def test_refused_corpus(path):
    """Programs ad_transform refuses by design (documented): every draw is refused with a
    located error the harness recognises, never differentiated wrongly."""
    with open(path) as fh:
        source = fh.read()
    checked, skipped = fuzz.check(source)
    assert checked == 0 and skipped == 4
    mod = fuzz.load(source)
    with pytest.raises(fuzz.ADError) as e:
        fuzz.value_and_gradient(mod.f, wrt=mod.WRT)(*next(iter(fuzz.draws(mod.ARGS, mod.SEED))))
    assert any(r in str(e.value) for r in fuzz.DOCUMENTED_REFUSALS)
    assert re.search(r"\.py:\d+:\d+", str(e.value))


def test_pending_cases_still_parse_and_run():
    """Pending cases are not run for a verdict (their fixes are elsewhere), but stay valid."""
    assert {os.path.basename(p) for p in PENDING} >= set(KNOWN_PENDING.values())
    for path in PENDING:
        with open(path) as fh:
            mod = fuzz.load(fh.read())
        for inputs in fuzz.draws(mod.ARGS, mod.SEED):
            assert np.isfinite(mod.f(*inputs))


def test_generator_is_a_function_of_the_seed():
    for s in range(20):
        src = fuzz.generate(s)
        assert src == fuzz.generate(s)
        compile(src, f"<fuzz {s}>", "exec")
    assert len({fuzz.generate(s) for s in range(20)}) == 20


def test_both_kinds_and_the_constructs_are_generated():
    text = "\n".join(fuzz.generate(s) for s in range(300))
    for needle in ["math.", "if ", "elif ", "while ", "for ", "break", "continue", "def helper",
                   "[None, :]", "[:, None]", ".T", "reshape(", "expand_dims", "keepdims=True",
                   "axis=0", "axis=1", "np.linalg.inv", "np.linalg.solve", "np.linalg.det",
                   "> 0.0]", "np.array([", ".copy()", "+= ", "{'a':", ".append(",
                   "np.maximum(", "np.clip(", "max("]:
        assert needle in text, needle


def _perturbed(monkeypatch):
    """ad_transform with a wrong gradient: every gradient off by 1e-2."""
    real = fuzz.value_and_gradient

    def wrong(f, wrt):
        vg = real(f, wrt=wrt)

        def call(*args):
            v, gs = vg(*args)
            return v, tuple(g + 1e-2 for g in gs)
        call.cache_info = vg.cache_info
        return call
    monkeypatch.setattr(fuzz, "value_and_gradient", wrong)


PROGRAM = '''
import math
import numpy as np
ARGS = {'x': ('n',), 's': ()}
WRT = (0,)
SEED = 3
def f(x, s):
    n = x.shape[0]
    t1 = np.sum(np.sin(x) * s)
    t2 = s * 2.0
    for j in range(3):
        t2 = t2 + math.cos(t2) * j
    return t1 + t2
'''


def test_the_checker_catches_a_wrong_gradient_and_the_shrinker_cuts(monkeypatch):
    assert fuzz.check(PROGRAM)[0] == 4  # sound as it is
    _perturbed(monkeypatch)
    with pytest.raises(fuzz.Failure) as info:
        fuzz.check(PROGRAM)
    assert info.value.cls == "wrong" and "d/dx" in str(info.value)
    small = fuzz.shrink(PROGRAM, info.value, budget=30)
    assert "for " not in small and "math.cos" not in small  # the loop plays no part
    with pytest.raises(fuzz.Failure):
        fuzz.check(small)


def test_the_oracle_rewrites_item_writes_functionally():
    src = '''
import numpy as np
ARGS = {'x': ('n',), 's': ()}
WRT = (0, 1)
SEED = 4
def f(x, s):
    y = (x * 2.0).copy()
    y[0] = s * s
    y[1:] += y[:-1] * 0.5
    y[-1] -= s
    return np.sum(y * y)
'''
    mod = fuzz.load(src)
    for inputs in fuzz.draws(mod.ARGS, mod.SEED):
        got = fuzz.oracle_gradients(src, (0, 1), inputs)
        for pos, i in enumerate((0, 1)):
            fd = fuzz.finite_differences(mod.f, inputs, i)
            assert np.allclose(got[pos], fd, rtol=1e-5, atol=1e-6)
    assert fuzz.check(src)[0] == 4
