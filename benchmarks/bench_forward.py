"""Forward mode on the seed function: jvp against its primal, in one run.

    python benchmarks/bench_forward.py [--repeat N] [--json [PATH]]

Times, in nanoseconds per call of already compiled code:

* ``primal``: ``f(2.0, 1.0)`` with ``f(x1, x2) = math.log(x1) + x1 * math.sin(x2)``;
* ``forward_derivative``: the compiled form, ``fd(2.0, 1.0, 1.0, 0.5)``, returning
  the value and the derivative along the tangent ``(1.0, 0.5)``;
* ``jvp()``: the convenience call ``jvp(f, (2.0, 1.0), (1.0, 0.5))`` (a cache
  look-up keyed on ``f``, then the same compiled code);
* ``hand-written``: value and tangent written out by hand in plain Python;
* ``gradient``: the reverse-mode gradient of both arguments, for comparison.

Every case is first checked against the hand-written tangent.  Each ``timeit``
loop is calibrated to about 2 ms; the cases are then timed round robin
``--repeat`` times and the minimum is kept, so ratios come from one run on the
same machine state.  Target: jvp at most 3x the primal.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # (_shared)

from _shared import round_robin  # noqa: E402
from ad_transform import forward_derivative, gradient, jvp  # noqa: E402


def f(x1, x2):
    return math.log(x1) + x1 * math.sin(x2)


def hand_jvp(x1, x2, t1, t2):
    s = math.sin(x2)
    return math.log(x1) + x1 * s, t1 / x1 + t1 * s + x1 * math.cos(x2) * t2


fd = forward_derivative(f, wrt=(0, 1))
grad = gradient(f, wrt=(0, 1))
P, T = (2.0, 1.0), (1.0, 0.5)

CASES = {
    "primal": "f(2.0, 1.0)",
    "forward_derivative": "fd(2.0, 1.0, 1.0, 0.5)",
    "jvp()": "jvp(f, P, T)",
    "hand-written": "hand_jvp(2.0, 1.0, 1.0, 0.5)",
    "gradient": "grad(2.0, 1.0)",
}


def check():
    want = hand_jvp(*P, *T)
    for got in (fd(*P, *T), jvp(f, P, T)):
        assert got[0] == want[0] and math.isclose(got[1], want[1], rel_tol=1e-14), (got, want)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=40)
    ap.add_argument("--target-ms", type=float, default=2.0)
    ap.add_argument("--json", nargs="?", const=os.path.join(os.path.dirname(__file__),
                                                           "results_forward.json"))
    args = ap.parse_args(argv)
    check()
    times = round_robin(CASES, globals(), args.repeat, args.target_ms)
    spread = {name: [t * 1e9 for t in ts] for name, ts in times.items()}
    best = {name: min(ns) for name, ns in spread.items()}
    primal = best["primal"]
    print(f"jvp of f(x1, x2) = log(x1) + x1*sin(x2) at (2, 1), tangent (1, 0.5); "
          f"Python {platform.python_version()}, min of {args.repeat} round-robin repeats")
    print(f"{'case':<20}{'ns/call':>10}{'ratio':>8}{'median':>10}")
    rows = {}
    for name in CASES:
        med = sorted(spread[name])[len(spread[name]) // 2]
        rows[name] = {"ns": round(best[name], 1), "ratio": round(best[name] / primal, 2),
                      "median_ns": round(med, 1)}
        print(f"{name:<20}{best[name]:>10.0f}{best[name] / primal:>8.2f}{med:>10.0f}")
    ok = rows["forward_derivative"]["ratio"] <= 3.0, rows["jvp()"]["ratio"] <= 3.0
    print(f"target jvp <= 3x primal: forward_derivative {'met' if ok[0] else 'MISSED'}, "
          f"jvp() {'met' if ok[1] else 'MISSED'}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"python": platform.python_version(), "repeat": args.repeat,
                       "cases": rows}, fh, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
