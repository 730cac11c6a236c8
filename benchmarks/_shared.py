"""What several benchmarks share: round-robin timing of compiled calls, and the first
call of a statement over the recurrence ``x = sin(x) * a + 0.1 * x`` in a fresh
interpreter."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import timeit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# the recurrence the loop benchmarks differentiate (read by ad_transform from this file)
def recurrence(x, a, n):
    for _ in range(n):
        x = math.sin(x) * a + 0.1 * x
    return x


def round_robin(cases: dict, env: dict, repeat: int, target_ms: float) -> dict:
    """``{name: [seconds per call of each repeat]}`` for the statements ``cases`` (name ->
    statement, run in ``env``): each loop calibrated to about ``target_ms``, then the cases
    timed in turn ``repeat`` times, so every ratio comes from one machine state."""
    timers = {name: timeit.Timer(stmt, globals=env) for name, stmt in cases.items()}
    numbers = {}
    for name, t in timers.items():
        k, _ = t.autorange()
        one = t.timeit(k) / k
        numbers[name] = max(1, int(target_ms * 1e-3 / one))
    times: dict = {name: [] for name in cases}
    for _ in range(repeat):
        for name, t in timers.items():
            times[name].append(t.timeit(numbers[name]) / numbers[name])
    return times


def best(times: dict) -> dict:
    """The minimum of each case's repeats (:func:`round_robin`)."""
    return {name: min(ts, default=math.inf) for name, ts in times.items()}


def first_call_of_recurrence(stmt: str, n: int, imports: str) -> float:
    """Seconds ``stmt`` takes in a fresh interpreter, with ``rec(x, a, n)`` (the
    recurrence, in a file: ad_transform reads its source), ``n`` and ``from ad_transform
    import <imports>`` defined."""
    code = (
        "import math, sys, time\n"
        f"sys.path.insert(0, {ROOT!r})\n"
        f"from ad_transform import {imports}\n"
        f"n = {n}\n"
        "def rec(x, a, n):\n"
        "    for _ in range(n):\n"
        "        x = math.sin(x) * a + 0.1 * x\n"
        "    return x\n"
        "t = time.perf_counter()\n"
        f"{stmt}\n"
        "print(time.perf_counter() - t)\n")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "first_call.py")
        with open(path, "w") as f:
            f.write(code)
        out = subprocess.run([sys.executable, path], capture_output=True, text=True,
                             check=True)
    return float(out.stdout.strip().splitlines()[-1])


def report_steady(times: dict, n: int, repeat: int, hand: str, results: dict, path) -> None:
    """Print the steady-state table of :func:`round_robin`'s ``times`` (per call, against
    the primal and the hand-written case ``hand``), store it in ``results`` and write
    ``results`` as JSON to ``path`` (if given)."""
    fastest = best(times)
    print(f"\nSteady state, n = {n:,} (microseconds per call, min of {repeat})")
    for name, t in fastest.items():
        print(f"{name:24s}{t * 1e6:10.1f}   x{t / fastest['primal']:5.2f} primal"
              f"   x{t / fastest[hand]:5.2f} hand-written")
    results["steady_us"] = {name: t * 1e6 for name, t in fastest.items()}
    if path:
        with open(path, "w") as f:
            json.dump(results, f, indent=1)
        print(f"\nwrote {path}")
