"""Forward mode and vjp over long loops (issues 8 and 9), measured in one run.

    python benchmarks/bench_forward_loops.py [--repeat N] [--json [PATH]] [--no-first]

The function is the recurrence of ``bench_loops.py``:
``for _ in range(n): x = math.sin(x) * a + 0.1 * x``.

* ``first``: the first call, in a fresh interpreter per row (lower + forward or
  reverse + emit + compile + run), of ``jvp(recurrence, (1.0, 0.9, n), (1.0, 0.5,
  None))``, of ``jacobian(recurrence, wrt=(0, 1))(1.0, 0.9, n)`` (two inputs, one
  output: reverse mode, through ``vjp``'s compiled pullback) and of its
  ``mode="forward"`` variant, and of ``gradient`` for comparison, at n = 100, 1,000
  and 10,000.  With rolled loops this stays flat in n; with every loop unrolled it
  grew with n (0.9 s for jvp at n = 1,000 before).
* ``steady``: nanoseconds per call at n = 1,000 of the compiled
  ``forward_derivative``, of ``jvp()`` (cache look-up, then the same code), of a
  hand-written forward sweep (value and tangent in one plain Python loop) and of
  the primal; ratios from one run (minimum over round-robin repeats).

Every derivative is first checked against the hand-written sweep, itself checked
against central finite differences.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)  # (_shared)

from _shared import (first_call_of_recurrence, recurrence,  # noqa: E402
                     report_steady, round_robin)
from ad_transform import forward_derivative, jvp  # noqa: E402


def hand_jvp(x, a, n, tx, ta):
    """Value and tangent of the recurrence along ``(tx, ta)``, written by hand."""
    sin, cos = math.sin, math.cos
    for _ in range(n):
        s = sin(x)
        tx = tx * (cos(x) * a + 0.1) + ta * s
        x = s * a + 0.1 * x
    return x, tx


N = 1000
fd = forward_derivative(recurrence, wrt=(0, 1))
P = (1.0, 0.9, N)
T = (1.0, 0.5, None)

CASES = {
    "primal": "recurrence(1.0, 0.9, N)",
    "forward_derivative": "fd(1.0, 0.9, N, 1.0, 0.5)",
    "jvp()": "jvp(recurrence, P, T)",
    "hand-written forward": "hand_jvp(1.0, 0.9, N, 1.0, 0.5)",
}

FIRST = {
    "jvp": "jvp(rec, (1.0, 0.9, n), (1.0, 0.5, None))",
    "jacobian (reverse, via vjp)": "jacobian(rec, wrt=(0, 1))(1.0, 0.9, n)",
    "jacobian (forward)": "jacobian(rec, wrt=(0, 1), mode='forward')(1.0, 0.9, n)",
    "gradient": "gradient(rec, wrt=(0, 1))(1.0, 0.9, n)",
}


def check():
    h = 1e-6
    want = hand_jvp(*P, 1.0, 0.5)
    fdiff = (recurrence(1.0 + h, 0.9 + 0.5 * h, N) - recurrence(1.0 - h, 0.9 - 0.5 * h, N)) / (2 * h)
    assert math.isclose(want[1], fdiff, rel_tol=1e-5), (want, fdiff)
    for got in (fd(*P, 1.0, 0.5), jvp(recurrence, P, T)):
        assert got[0] == want[0] and math.isclose(got[1], want[1], rel_tol=1e-12), (got, want)


def first_call(stmt, n):
    """Seconds of ``stmt``'s first call in a fresh interpreter."""
    return first_call_of_recurrence(stmt, n, 'gradient, jacobian, jvp')


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--target-ms", type=float, default=2.0)
    ap.add_argument("--no-first", action="store_true", help="skip the fresh-interpreter rows")
    ap.add_argument("--json", nargs="?", const=os.path.join(HERE, "results_forward_loops.json"))
    args = ap.parse_args(argv)
    check()
    results = {"machine": platform.platform(), "python": platform.python_version()}
    if not args.no_first:
        print("First call, fresh interpreter per row (seconds)")
        print(f"{'':30s}" + "".join(f"{f'n = {n:,}':>12s}" for n in (100, 1000, 10000)))
        first = {}
        for name, stmt in FIRST.items():
            first[name] = {n: first_call(stmt, n) for n in (100, 1000, 10000)}
            print(f"{name:30s}" + "".join(f"{first[name][n]:12.3f}" for n in (100, 1000, 10000)))
        results["first_call_s"] = first
    times = round_robin(CASES, globals(), args.repeat, args.target_ms)
    report_steady(times, N, args.repeat, 'hand-written forward', results, args.json)


if __name__ == "__main__":
    main()
