"""Second derivatives over long loops (issues 8 and 9), measured in one run.

    python benchmarks/bench_second_loops.py [--repeat N] [--json [PATH]] [--no-first]

The function is the recurrence of ``bench_loops.py``:
``for _ in range(n): x = math.sin(x) * a + 0.1 * x``.

* ``first``: the first call, in a fresh interpreter per row, of
  ``hessian(recurrence, wrt=(0, 1))(1.0, 0.9, n)``, of ``gradient(gradient(
  recurrence))``, of ``hvp(recurrence, wrt=(0, 1))``, of ``jvp(gradient(recurrence,
  wrt=(0, 1)), ...)`` and of ``jacobian(gradient(recurrence, wrt=(0, 1)))``, whose
  loops stay rolled (forward over reverse on the IR), beside the readback route they
  took before (the inner gradient read back with every loop unrolled: ``unroll=0``,
  and ``hvp(...).gradient``), at n = 100, 1,000 and 10,000 (the readback rows at 100
  and 1,000 only: about 80 s at 10,000).
* ``steady``: microseconds per call at n = 1,000 of the compiled ``hvp`` (rolled
  and readback), of ``forward_derivative(gradient(recurrence))`` along the same
  vector, of a hand-written Hessian-vector product (a forward sweep saving
  the values and their tangents, then the adjoint sweep and its tangent, in plain
  Python loops) and of the primal; ratios from one run (minimum over round-robin
  repeats).

Every product is first checked against the hand-written one, itself checked
against central finite differences of the gradient.
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
from ad_transform import forward_derivative, gradient, hvp, jvp  # noqa: E402


def hand_hvp(x, a, n, vx, va):
    """``H @ (vx, va)`` of the recurrence with respect to ``(x, a)``, written by hand."""
    sin, cos = math.sin, math.cos
    xs, txs = [], []
    tx = vx
    for _ in range(n):
        xs.append(x)
        txs.append(tx)
        s = sin(x)
        tx = tx * (cos(x) * a + 0.1) + va * s
        x = s * a + 0.1 * x
    d, td, da, tda = 1.0, 0.0, 0.0, 0.0
    for x, tx in zip(reversed(xs), reversed(txs)):
        s, c = sin(x), cos(x)
        da += d * s
        tda += td * s + d * c * tx
        d, td = d * (c * a + 0.1), td * (c * a + 0.1) + d * (c * va - s * tx * a)
    return td, tda


N = 1000
rolled = hvp(recurrence, wrt=(0, 1))
tangent = forward_derivative(gradient(recurrence, wrt=(0, 1)), wrt=(0, 1))
P = (1.0, 0.9, N)
V = (1.0, 0.5)

CASES = {
    "primal": "recurrence(1.0, 0.9, N)",
    "hvp (rolled)": "rolled(1.0, 0.9, N, V)",
    "hvp (readback)": "rolled.gradient(1.0, 0.9, N, V)",
    "jvp(gradient) (rolled)": "tangent(1.0, 0.9, N, 1.0, 0.5)",
    "hand-written hvp": "hand_hvp(1.0, 0.9, N, 1.0, 0.5)",
}

FIRST = {
    "hessian": ("hessian(rec, wrt=(0, 1))(1.0, 0.9, n)", (100, 1000, 10000)),
    "hessian (readback)": ("p = hvp(rec, wrt=(0, 1)).gradient\n"
                           "[p(1.0, 0.9, n, e) for e in ((1.0, 0.0), (0.0, 1.0))]",
                           (100, 1000)),
    "gradient(gradient)": ("gradient(gradient(rec))(1.0, 0.9, n)", (100, 1000, 10000)),
    "gradient(gradient) (readback)": ("gradient(gradient(rec, unroll=0))(1.0, 0.9, n)",
                                      (100, 1000)),
    "hvp": ("hvp(rec, wrt=(0, 1))(1.0, 0.9, n, (1.0, 0.5))", (100, 1000, 10000)),
    "jvp(gradient)": ("jvp(gradient(rec, wrt=(0, 1)), (1.0, 0.9, n), (1.0, 0.5, None))",
                      (100, 1000, 10000)),
    "jvp(gradient) (readback)": ("jvp(gradient(rec, wrt=(0, 1), unroll=0), (1.0, 0.9, n), "
                                 "(1.0, 0.5, None))", (100, 1000)),
    "jacobian(gradient)": ("jacobian(gradient(rec, wrt=(0, 1)), wrt=(0, 1))(1.0, 0.9, n)",
                           (100, 1000, 10000)),
    "jacobian(gradient) (readback)": ("jacobian(gradient(rec, wrt=(0, 1), unroll=0), "
                                      "wrt=(0, 1))(1.0, 0.9, n)", (100, 1000)),
}


def check():
    h = 1e-6
    g = gradient(recurrence, wrt=(0, 1))
    want = hand_hvp(*P, *V)
    up, down = g(1.0 + h, 0.9 + 0.5 * h, N), g(1.0 - h, 0.9 - 0.5 * h, N)
    for w, u, d in zip(want, up, down):
        assert math.isclose(w, (u - d) / (2 * h), rel_tol=1e-5), (want, up, down)
    jvps = (jvp(gradient(recurrence, wrt=(0, 1)), P, V + (None,))[1], tangent(*P, *V)[1])
    for got in (rolled(*P, V), rolled.gradient(*P, V)) + jvps:
        for a, b in zip(got, want):
            assert math.isclose(a, b, rel_tol=1e-10), (got, want)
    assert "rolled loop" in rolled.source(*P, V) and "rolled loop" in tangent.source(*P, *V)


def first_call(stmt, n):
    """Seconds of ``stmt``'s first call in a fresh interpreter."""
    return first_call_of_recurrence(stmt, n, 'gradient, hessian, hvp, jacobian, jvp')


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--target-ms", type=float, default=2.0)
    ap.add_argument("--no-first", action="store_true", help="skip the fresh-interpreter rows")
    ap.add_argument("--json", nargs="?", const=os.path.join(HERE, "results_second_loops.json"))
    args = ap.parse_args(argv)
    check()
    results = {"machine": platform.platform(), "python": platform.python_version()}
    sizes = (100, 1000, 10000)
    if not args.no_first:
        print("First call, fresh interpreter per row (seconds)")
        print(f"{'':32s}" + "".join(f"{f'n = {n:,}':>12s}" for n in sizes))
        first = {}
        for name, (stmt, ns) in FIRST.items():
            first[name] = {n: first_call(stmt, n) for n in ns}
            print(f"{name:32s}" + "".join(f"{first[name][n]:12.3f}" if n in ns else
                                          f"{'-':>12s}" for n in sizes))
        results["first_call_s"] = first
    times = round_robin(CASES, globals(), args.repeat, args.target_ms)
    report_steady(times, N, args.repeat, 'hand-written hvp', results, args.json)


if __name__ == "__main__":
    main()
