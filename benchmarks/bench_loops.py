"""Loop benchmarks for ad_transform: the targets of issue 8, measured in one run.

Run from the repository root::

    python benchmarks/bench_loops.py                 # all cases (a few minutes today)
    python benchmarks/bench_loops.py --json          # also write benchmarks/results_loops.json
    python benchmarks/bench_loops.py --n100000       # also the 100,000-step first call (slow)
    python benchmarks/bench_loops.py --only first,ifs   # a subset of the sections

Sections (see benchmarks/README.md, "bench_loops.py"):

* ``first``: first call (lower + reverse + emit + compile + run) in a fresh
  interpreter per point: the recurrence ``x = sin(x) * a + 0.1 * x`` at n = 100,
  1,000, 10,000 (100,000 with ``--n100000``), the 1,000-step Euler damped
  oscillator, the 5,000-term expression and a 200-parameter function, with
  peak RSS, the time the cyclic garbage collector took, and generated lines.
* ``steady``: per-call cost of the compiled gradients of the 1,000-step
  recurrence and Euler loops, and of the 100-step recurrence (a short loop),
  vs hand-written reverse sweeps over the same loops, and vs the primal.
* ``rosen``: Rosenbrock written as a Python loop over a NumPy array, n = 1,000:
  first call, then per call vs a hand-written loop gradient (and a vectorised one).
* ``while``: a ``while`` loop whose trip count is random in [1, 200] on every
  call (per call vs the primal after warm-up; paths cached), and the hit cost
  with 128 cached paths of another ``while`` loop.
* ``ifs``: 20 independent data-dependent ``if`` s, random on every call, vs
  HIPS autograd on the same function.

Every gradient is checked against a hand-written one (itself checked against
finite differences) before it is timed.  Ratios are taken within one run.
"""
from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_JSON = os.path.join(HERE, "results_loops.json")

# ---------------------------------------------------------------------------
# The functions under test.  They are written into one module file under a
# temporary directory (ad_transform reads their source); the 5,000-term
# expression and the 200-parameter function are generated text.
# ---------------------------------------------------------------------------

CASES_SOURCE = '''
import math
import numpy as np


def recurrence(x, a, n):
    for _ in range(n):
        x = math.sin(x) * a + 0.1 * x
    return x


def euler(k, c, x, v, dt, n):
    for _ in range(n):
        acc = -k * x - c * v
        x = x + dt * v
        v = v + dt * acc
    return x


def rosen(x):
    s = 0.0
    for i in range(len(x) - 1):
        s = s + 100.0 * (x[i + 1] - x[i] ** 2) ** 2 + (1.0 - x[i]) ** 2
    return s


def whileloop(x, a, m):
    i = 0
    while i < m:
        x = math.sin(x) * a + 0.1 * x
        i += 1
    return x


def whilecheap(x, a, m):
    i = 0
    while i < m:
        x = x * a + 0.1
        i += 1
    return x
'''


def _expression_source(terms: int) -> str:
    forms = ["{k}*x*y", "math.sin(x*{k})", "{k}*y*y", "math.cos(y+{k})", "x/({k}+y*y)"]
    parts = [forms[i % len(forms)].format(k=round(0.5 + (i % 97) / 97, 4)) for i in range(terms)]
    return "\n\ndef expression(x, y):\n    return " + " + ".join(parts) + "\n"


def _params_source(n: int) -> str:
    names = [f"p{i}" for i in range(n)]
    body = " + ".join(f"{names[i]} * {names[(i + 1) % n]}" for i in range(n))
    body += " + " + " + ".join(f"math.sin({p})" for p in names[::7])
    return f"\n\ndef params200({', '.join(names)}):\n    return {body}\n"


def _ifs_source(n: int, sin: str) -> str:
    lines = [f"\n\ndef ifs(x, {', '.join(f's{i}' for i in range(n))}):"]
    for i in range(n):
        lines += [f"    if s{i} * x > 0.0:", f"        x = x * 0.9 + {sin}(x) * s{i}",
                  "    else:", f"        x = x * 1.1 - 0.5 * s{i}"]
    lines.append("    return x")
    return "\n".join(lines) + "\n"


EXPR_TERMS = 5000
N_PARAMS = 200
N_IFS = 20


def all_source() -> str:
    return (CASES_SOURCE + _expression_source(EXPR_TERMS) + _params_source(N_PARAMS)
            + _ifs_source(N_IFS, "math.sin"))


# -- hand-written gradients: what a careful user writes (reverse sweeps) -------

def recurrence_grad_hand(x, a, n):
    xs, sins = [], []
    for _ in range(n):
        s = math.sin(x)
        xs.append(x)
        sins.append(s)
        x = s * a + 0.1 * x
    dx, da = 1.0, 0.0
    for xi, s in zip(reversed(xs), reversed(sins)):
        da += dx * s
        dx *= a * math.cos(xi) + 0.1
    return dx, da


def euler_grad_hand(k, c, x, v, dt, n):
    xs, vs = [], []
    for _ in range(n):
        xs.append(x)
        vs.append(v)
        acc = -k * x - c * v
        x = x + dt * v
        v = v + dt * acc
    gx, gv, gk, gc_ = 1.0, 0.0, 0.0, 0.0
    for x0, v0 in zip(reversed(xs), reversed(vs)):
        gacc = gv * dt
        gk -= gacc * x0
        gc_ -= gacc * v0
        gx, gv = gx - gacc * k, gx * dt + gv - gacc * c
    return gk, gc_


def rosen_grad_hand(x):
    """The loop gradient, element by element, as the primal loop reads them."""
    g = np.zeros(len(x))
    for i in range(len(x) - 1):
        xi = x[i]
        t = x[i + 1] - xi ** 2
        g[i] += -400.0 * t * xi - 2.0 * (1.0 - xi)
        g[i + 1] += 200.0 * t
    return g


def rosen_grad_vectorised(x):
    g = np.zeros_like(x)
    t = x[1:] - x[:-1] ** 2
    g[:-1] = -400.0 * t * x[:-1] - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * t
    return g


def while_grad_hand(x, a, m):
    return recurrence_grad_hand(x, a, m)


def _whilecheap(x, a, m):
    xs = []
    for _ in range(m):
        xs.append(x)
        x = x * a + 0.1
    dx, da = 1.0, 0.0
    for xi in reversed(xs):
        da += dx * xi
        dx *= a
    return dx, da


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def load_cases(directory: str):
    path = os.path.join(directory, "loop_cases.py")
    if not os.path.exists(path):
        with open(path, "w") as fh:
            fh.write(all_source())
    spec = importlib.util.spec_from_file_location("loop_cases", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def fd_grad(f, args, wrt, h=1e-6):
    out = []
    for i in wrt:
        lo, hi = list(args), list(args)
        lo[i] -= h
        hi[i] += h
        out.append((f(*hi) - f(*lo)) / (2 * h))
    return out


def close(got, want, rtol=1e-7, atol=1e-9) -> bool:
    return bool(np.allclose(np.asarray(got, dtype=float), np.asarray(want, dtype=float),
                            rtol=rtol, atol=atol))


def check(name, got, want, **kw):
    if not close(got, want, **kw):
        raise SystemExit(f"{name}: gradient {got!r} differs from the hand-written {want!r}")


def per_call(variants: dict, repeat: int, sample_s: float) -> dict:
    """variants: name -> (fn, list of argument tuples).  One sample calls ``fn`` on every
    tuple of its list, ``loops`` times; samples are taken round robin.  Seconds per call."""
    def run(fn, seq, loops):
        t0 = time.perf_counter()
        for _ in range(loops):
            for a in seq:
                fn(*a)
        return time.perf_counter() - t0

    loops = {}
    for name, (fn, seq) in variants.items():
        run(fn, seq, 1)
        n = 1
        while run(fn, seq, n) < sample_s and n < 1 << 20:
            n *= 2
        loops[name] = n
    samples = {name: [] for name in variants}
    for _ in range(repeat):
        for name, (fn, seq) in variants.items():
            samples[name].append(run(fn, seq, loops[name]) / (loops[name] * len(seq)))
    return {name: {"min_s": min(s), "median_s": statistics.median(s), "loops": loops[name],
                   "calls_per_loop": len(variants[name][1]), "repeat": repeat}
            for name, s in samples.items()}


def fmt(s: float) -> str:
    for unit, k in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= k:
            return f"{s / k:.3g} {unit}"
    return f"{s * 1e9:.3g} ns"


# -- first call in a fresh interpreter ---------------------------------------------

CHILD = r'''
import gc, json, resource, sys, time
sys.setrecursionlimit(10000)  # as the parent: Python cannot compile the expression without
sys.path[:0] = [{root!r}, {cases_dir!r}]
gc_time = [0.0, None]
def _cb(phase, info):
    if phase == "start":
        gc_time[1] = time.perf_counter()
    elif gc_time[1] is not None:
        gc_time[0] += time.perf_counter() - gc_time[1]
gc.callbacks.append(_cb)
t0 = time.perf_counter()
import ad_transform
import loop_cases
t_import = time.perf_counter() - t0
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
f = getattr(loop_cases, {name!r})
args = eval({args!r})
opts = {opts!r}
gc_time[0] = 0.0
t0 = time.perf_counter(); c0 = time.process_time()
g = ad_transform.gradient(f, wrt={wrt!r}, **opts)
r = g(*args)
wall = time.perf_counter() - t0; cpu = time.process_time() - c0
gct = gc_time[0]
t0 = time.perf_counter()
g(*args)
second = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    lines = len(g.source(*args).splitlines())
except Exception:
    lines = None
print(json.dumps(dict(wall_s=wall, cpu_s=cpu, gc_s=gct, peak_rss_mb=rss / 1024,
                      rss_before_mb=rss0 / 1024, import_s=t_import, lines=lines, second_s=second,
                      grad=__import__("numpy").hstack(r).astype(float).tolist())))
'''


def first_call(cases_dir, name, args, wrt, opts=None, timeout=3600):
    if not isinstance(args, str):
        args = repr(tuple(args))
    code = CHILD.format(root=ROOT, cases_dir=cases_dir, name=name, args=args, wrt=wrt,
                        opts=opts or {})
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed",
                "wall_s": time.perf_counter() - t0}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------

REC_ARGS = (1.0, 0.9)
EULER_ARGS = (4.0, 0.3, 1.0, 0.0, 0.01)


def section_first(mod, cases_dir, opts, out):
    rows = []
    ns = [100, 1000, 10000] + ([100000] if opts.n100000 else [])
    points = [(f"recurrence n={n}", "recurrence", REC_ARGS + (n,), (0, 1),
               recurrence_grad_hand(*REC_ARGS, n)) for n in ns]
    points.append(("euler n=1000", "euler", EULER_ARGS + (1000,), (0, 1),
                   euler_grad_hand(*EULER_ARGS, 1000)))
    ex_args = (0.7, 1.3)
    points.append((f"expression {EXPR_TERMS} terms", "expression", ex_args, (0, 1),
                   fd_grad(mod.expression, ex_args, (0, 1))))
    p_args = tuple(0.1 + 0.01 * i for i in range(N_PARAMS))
    points.append((f"{N_PARAMS} parameters", "params200", p_args, tuple(range(N_PARAMS)),
                   fd_grad(mod.params200, p_args, range(N_PARAMS))))
    print("\nFirst call (fresh interpreter per run: lower + reverse + emit + compile + run;"
          f" the median of {opts.first_repeat} runs, and their range)")
    print(f"{'case':<26}{'wall':>10}{'cpu':>10}{'gc':>10}{'peak RSS':>11}{'lines':>10}"
          f"{'range':>22}")
    for label, name, args, wrt, want in points:
        if name == "recurrence" and args[-1] >= 100000:
            extra = {"max_eqns": 10 ** 9}
        else:
            extra = {}
        runs = [first_call(cases_dir, name, args, wrt, extra) for _ in range(opts.first_repeat)]
        failed = [r for r in runs if "error" in r]
        if failed:
            r = failed[0]
        else:  # the run of median wall time, with every run's wall time beside it
            runs.sort(key=lambda r: r["wall_s"])
            r = runs[len(runs) // 2]
            r["wall_s_runs"] = [x["wall_s"] for x in runs]
        r["case"] = label
        if "error" not in r:
            rtol = 1e-5 if name in ("expression", "params200") else 1e-7
            r["gradient_ok"] = close(r.pop("grad"), want, rtol=rtol, atol=1e-6)
            print(f"{label:<26}{fmt(r['wall_s']):>10}{fmt(r['cpu_s']):>10}{fmt(r['gc_s']):>10}"
                  f"{r['peak_rss_mb']:>8.0f} MB{r['lines'] or 0:>10}"
                  f"{fmt(min(r['wall_s_runs'])):>11}-{fmt(max(r['wall_s_runs'])):<10}"
                  + ("" if r["gradient_ok"] else "  WRONG GRADIENT"))
        else:
            print(f"{label:<26}  error: {r['error']}")
        rows.append(r)
    out["first_call"] = rows
    byname = {r["case"]: r for r in rows}
    t = {"recurrence n=1000 < 50 ms": ("recurrence n=1000", 0.05),
         "euler n=1000 < 50 ms": ("euler n=1000", 0.05),
         f"expression {EXPR_TERMS} terms < 1 s": (f"expression {EXPR_TERMS} terms", 1.0)}
    targets = {k: byname.get(c, {}).get("wall_s", math.inf) < lim for k, (c, lim) in t.items()}
    targets[f"expression {EXPR_TERMS} terms < 300 MB"] = byname.get(
        f"expression {EXPR_TERMS} terms", {}).get("peak_rss_mb", math.inf) < 300
    if opts.n100000:
        big = byname.get("recurrence n=100000", {})
        targets["recurrence n=100000 < 0.5 s"] = big.get("wall_s", math.inf) < 0.5
        targets["recurrence n=100000 < 300 MB"] = big.get("peak_rss_mb", math.inf) < 300
        targets["n=100000 <= 3x n=1000"] = big.get("wall_s", math.inf) <= 3 * byname[
            "recurrence n=1000"].get("wall_s", math.inf)
        # what the first call adds to a call of the compiled path (lowering, compiling,
        # running the loop's primal once while lowering): shown beside the target, which
        # also counts running the 100,000 steps themselves
        small = byname.get("recurrence n=1000", {})
        extra = [r.get("wall_s", math.inf) - r.get("second_s", 0.0) for r in (big, small)]
        print(f"\nrecurrence first call less a second call: n=1000 {fmt(extra[1])}, "
              f"n=100000 {fmt(extra[0])} ({extra[0] / extra[1]:.2f}x); a second call at "
              f"n=100000: {fmt(big.get('second_s', math.nan))}")
    return targets


def section_steady(mod, opts, out):
    from ad_transform import gradient
    rows, targets = [], {}
    print("\nSteady state (per call; gradient vs a hand-written reverse sweep)")
    print(f"{'case':<22}{'primal':>11}{'hand':>11}{'ad':>11}{'ad/hand':>9}{'ad/primal':>10}")
    for label, f, hand, args in (
            ("recurrence n=100", mod.recurrence, recurrence_grad_hand, REC_ARGS + (100,)),
            ("recurrence n=1000", mod.recurrence, recurrence_grad_hand, REC_ARGS + (1000,)),
            ("euler n=1000", mod.euler, euler_grad_hand, EULER_ARGS + (1000,))):
        check(label + " (hand vs fd)", hand(*args), fd_grad(f, args, (0, 1)), rtol=1e-5,
              atol=1e-7)
        g = gradient(f, wrt=(0, 1), max_eqns=10 ** 9)
        check(label, g(*args), hand(*args))
        t = per_call({"primal": (f, [args]), "hand": (hand, [args]), "ad": (g, [args])},
                     opts.repeat, opts.sample)
        ratio = t["ad"]["min_s"] / t["hand"]["min_s"]
        rows.append({"case": label, "times": t, "ad_vs_hand": ratio,
                     "ad_vs_primal": t["ad"]["min_s"] / t["primal"]["min_s"]})
        print(f"{label:<22}{fmt(t['primal']['min_s']):>11}{fmt(t['hand']['min_s']):>11}"
              f"{fmt(t['ad']['min_s']):>11}{ratio:>9.2f}{rows[-1]['ad_vs_primal']:>10.1f}")
        if label.endswith("1000"):
            targets[f"{label} <= 1.5x hand"] = ratio <= 1.5
    out["steady"] = rows
    return targets


def section_rosen(mod, cases_dir, opts, out):
    from ad_transform import gradient
    x = np.random.default_rng(0).uniform(0.5, 1.5, 1000)
    check("rosen (hand vs vectorised)", rosen_grad_hand(x), rosen_grad_vectorised(x))
    # (the child evaluates the argument text: the same array, drawn there)
    first = first_call(cases_dir, "rosen", "(__import__('numpy').random.default_rng(0)"
                       ".uniform(0.5, 1.5, 1000),)", 0, {"max_eqns": 10 ** 9})
    first.pop("grad", None)
    g = gradient(mod.rosen, max_eqns=10 ** 9)
    check("rosen", g(x), rosen_grad_hand(x))
    t = per_call({"primal": (mod.rosen, [(x,)]), "hand": (rosen_grad_hand, [(x,)]),
                  "vectorised": (rosen_grad_vectorised, [(x,)]), "ad": (g, [(x,)])},
                 max(3, opts.repeat // 3), opts.sample)
    ratio = t["ad"]["min_s"] / t["hand"]["min_s"]
    print("\nRosenbrock as a loop over a NumPy array, n = 1000")
    if "error" in first:
        print(f"  first call: error {first['error']}")
    else:
        print(f"  first call {fmt(first['wall_s'])}, peak RSS {first['peak_rss_mb']:.0f} MB, "
              f"{first['lines']} lines")
    print(f"  primal {fmt(t['primal']['min_s'])}  hand loop {fmt(t['hand']['min_s'])}  "
          f"vectorised {fmt(t['vectorised']['min_s'])}  ad {fmt(t['ad']['min_s'])}  "
          f"ad/hand {ratio:.2f}  ad/primal {t['ad']['min_s'] / t['primal']['min_s']:.1f}")
    out["rosen"] = {"first_call": first, "times": t, "ad_vs_hand": ratio}
    return {"rosen n=1000 <= 1.5x hand": ratio <= 1.5}


def section_while(mod, opts, out):
    from ad_transform import gradient
    rng = random.Random(1)
    lo, hi = 1, opts.while_max
    print(f"\nwhile loop, trip count random in [{lo}, {hi}] on every call")
    g = gradient(mod.whileloop, wrt=(0, 1))
    warm = [(1.0, 0.9, rng.randint(lo, hi)) for _ in range(opts.while_calls)]
    timed = [(1.0, 0.9, rng.randint(lo, hi)) for _ in range(opts.while_calls)]
    for a in warm[:3]:
        check("while", g(*a), while_grad_hand(*a))
    t0 = time.perf_counter()
    for a in warm:
        g(*a)
    warm_s = time.perf_counter() - t0
    info0 = g.cache_info()
    t0 = time.perf_counter()
    for a in timed:
        g(*a)
    timed_s = time.perf_counter() - t0
    info1 = g.cache_info()
    # per call: the gradient and the primal sampled alike (round robin, best of 5)
    t = per_call({"primal": (mod.whileloop, timed), "ad": (g, timed)}, 5, opts.sample)
    tp, per = t["primal"]["min_s"], t["ad"]["min_s"]
    row = {"calls": len(timed), "warmup_s": warm_s, "per_call_s": per, "primal_s": tp,
           "ratio": per / tp, "first_pass_per_call_s": timed_s / len(timed),
           "misses_while_timed": info1.misses - info0.misses, "cache_info": info1._asdict()}
    print(f"  warm-up {len(warm)} calls {fmt(warm_s)}; then {len(timed)} calls "
          f"{fmt(timed_s)} with {row['misses_while_timed']} misses; {info1}")
    print(f"  per call {fmt(per)} = {per / tp:.2f}x primal ({fmt(tp)})")
    # hit cost with 128 cached paths
    k = 128
    h = gradient(mod.whilecheap, wrt=(0, 1), maxsize=k)
    for m in range(1, k + 1):
        h(1.0, 0.9, m)
    seq = [(1.0, 0.9, rng.randint(1, k)) for _ in range(200)]
    for a in seq[:3]:
        check("whilecheap", h(*a), _whilecheap(*a))
    m0 = h.cache_info().misses
    t = per_call({"primal": (mod.whilecheap, seq), "ad": (h, seq)}, 5, opts.sample)
    hit = {"paths": h.cache_info().currsize, "misses": h.cache_info().misses - m0,
           "hit_s": t["ad"]["min_s"], "primal_s": t["primal"]["min_s"],
           "ratio": t["ad"]["min_s"] / t["primal"]["min_s"]}
    print(f"  {hit['paths']} cached paths of a while loop: a hit costs {fmt(hit['hit_s'])} = "
          f"{hit['ratio']:.1f}x its primal ({fmt(hit['primal_s'])}); misses {hit['misses']}")
    out["while"] = {"random_trip": row, "hits_128": hit}
    return {"while random trip <= 3x primal": row["ratio"] <= 3,
            "while random trip: a few paths": info1.currsize <= 4}


def section_ifs(mod, cases_dir, opts, out):
    from ad_transform import gradient
    rng = random.Random(2)

    def draw():
        return [(0.5 + rng.random(),) + tuple(rng.choice((-1.0, 1.0)) * (0.5 + rng.random())
                                              for _ in range(N_IFS))
                for _ in range(opts.ifs_calls)]

    seq = draw()
    g = gradient(mod.ifs)
    peers = {}
    try:
        import autograd
        import autograd.numpy as anp
        ns = {"np": anp}
        exec(_ifs_source(N_IFS, "np.sin"), ns)
        peers["autograd"] = autograd.grad(ns["ifs"])
    except ImportError:
        out["ifs_skipped"] = "autograd not importable"
    for a in seq[:3]:
        want = fd_grad(mod.ifs, a, (0,))[0]
        check("ifs", g(*a), want, rtol=1e-5, atol=1e-7)
        for p in peers.values():
            check("ifs autograd", p(*a), want, rtol=1e-5, atol=1e-7)
    for a in seq:  # warm-up (a sequence of its own)
        g(*a)
    info0 = g.cache_info()
    variants = {"primal": mod.ifs, "ad": g, **peers}
    samples = {k: [] for k in variants}
    for _ in range(opts.repeat):  # every round draws new sign patterns: every call is new
        fresh = draw()
        for k, fn in variants.items():
            t0 = time.perf_counter()
            for a in fresh:
                fn(*a)
            samples[k].append((time.perf_counter() - t0) / len(fresh))
    t = {k: {"min_s": min(v), "median_s": statistics.median(v), "repeat": len(v)}
         for k, v in samples.items()}
    info1 = g.cache_info()
    row = {"calls_per_round": len(seq), "times": t, "cache_info": info1._asdict(),
           "misses": info1.misses - info0.misses}
    line = (f"\n{N_IFS} random ifs, new signs on every call ({opts.repeat} x {len(seq)} "
            f"calls): primal "
            f"{fmt(t['primal']['min_s'])}, ad {fmt(t['ad']['min_s'])}")
    targets = {}
    if "autograd" in t:
        row["ad_vs_autograd"] = t["ad"]["min_s"] / t["autograd"]["min_s"]
        line += (f", autograd {fmt(t['autograd']['min_s'])}; ad/autograd "
                 f"{row['ad_vs_autograd']:.2f}")
        targets["20 ifs: below autograd"] = row["ad_vs_autograd"] < 1.0
    print(line + f"; misses {row['misses']}")
    out["ifs"] = row
    return targets


SECTIONS = ("first", "steady", "rosen", "while", "ifs")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="loop benchmarks for ad_transform (issue 8)")
    p.add_argument("--json", nargs="?", const=DEFAULT_JSON, default=None, metavar="PATH")
    p.add_argument("--n100000", action="store_true", help="also the 100,000-step first call")
    p.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    p.add_argument("--repeat", type=int, default=9, help="timing rounds per case")
    p.add_argument("--first-repeat", type=int, default=5,
                   help="fresh interpreters per first-call row (the median is kept)")
    p.add_argument("--sample", type=float, default=0.02, help="seconds per timing sample")
    p.add_argument("--while-max", type=int, default=200)
    p.add_argument("--while-calls", type=int, default=300)
    p.add_argument("--ifs-calls", type=int, default=200)
    p.add_argument("--label", default="", help="a note stored in the JSON")
    opts = p.parse_args(argv)
    # CPython's compiler needs this much to compile the 5,000-term expression at all
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    sys.path.insert(0, ROOT)
    import ad_transform
    wanted = [s for s in opts.only.split(",") if s]
    tmp = tempfile.mkdtemp(prefix="bench_loops_")
    out = {"benchmark": "bench_loops", "label": opts.label,
           "environment": {"python": platform.python_version(), "numpy": np.__version__,
                           "ad_transform": getattr(ad_transform, "__version__", "?"),
                           "machine": platform.machine(), "cpu_count": os.cpu_count(),
                           "platform": platform.platform()},
           "settings": vars(opts), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    targets = {}
    t_start = time.perf_counter()
    try:
        mod = load_cases(tmp)
        for s in wanted:
            if s == "first":
                targets.update(section_first(mod, tmp, opts, out))
            elif s == "steady":
                targets.update(section_steady(mod, opts, out))
            elif s == "rosen":
                targets.update(section_rosen(mod, tmp, opts, out))
            elif s == "while":
                targets.update(section_while(mod, opts, out))
            elif s == "ifs":
                targets.update(section_ifs(mod, tmp, opts, out))
            else:
                raise SystemExit(f"unknown section {s!r}; choose from {SECTIONS}")
            gc.collect()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out["targets"] = targets
    out["run_s"] = time.perf_counter() - t_start
    print("\nTargets (issue 8):")
    for k, v in targets.items():
        print(f"  {'met   ' if v else 'MISSED'}  {k}")
    if opts.json:
        with open(opts.json, "w") as fh:
            json.dump(out, fh, indent=2, default=str)
        print(f"wrote {opts.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
