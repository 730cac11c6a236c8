"""Benchmarks for the derivative toolbox beyond first-order gradients.

Run from the repository root::

    python benchmarks/bench_toolbox.py            # table only
    python benchmarks/bench_toolbox.py --json     # also write benchmarks/results_toolbox.json

Cases (each a steady-state call, compiled paths already cached):

* ``hessian_rosen10``: the Hessian of the 10-dimensional Rosenbrock function at a
  fixed point, ``ad_transform.hessian`` against ``autograd.hessian`` and, when JAX
  is importable, JAX's un-jitted ``jax.hessian`` (skipped otherwise).  Target:
  ad_transform at least 20x faster than autograd.
* ``hvp_rosen10``: one Hessian-vector product, ``ad_transform.hvp`` against
  ``autograd.hessian_vector_product``.

All timings come from one process and every ratio is between timings of the same
run (min over repeats of a loop of about ``--target-ms``), so ratios compare across
machines when absolute times do not.  Every method's answer is checked against
ad_transform's before timing.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import timeit

import numpy as np

import ad_transform
from ad_transform import hessian, hvp

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_JSON = os.path.join(HERE, "results_toolbox.json")
N = 10
X = np.linspace(-1.2, 1.2, N)
V = np.cos(np.arange(N, dtype=float))
TARGET_RATIO = 20.0


def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _peers():
    """(name, hessian function, hvp function or None) for each importable peer."""
    peers = []
    try:
        import autograd
        import autograd.numpy as anp

        def a_rosen(x):
            return anp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

        peers.append(("autograd", autograd.hessian(a_rosen),
                      autograd.hessian_vector_product(a_rosen)))
    except ImportError:
        print("autograd: not installed, skipped")
    try:
        import jax
        import jax.numpy as jnp
        jax.config.update("jax_enable_x64", True)

        def j_rosen(x):
            return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

        jh = jax.hessian(j_rosen)
        peers.append(("jax (un-jitted)", lambda x: np.asarray(jh(x)), None))
    except ImportError:
        print("jax: not installed, skipped")
    return peers


def best_ns(fn, args, repeat, target_ms):
    """Min over ``repeat`` runs of a timed loop about ``target_ms`` long, per call."""
    timer = timeit.Timer(lambda: fn(*args))
    n = 1
    while True:
        t = timer.timeit(n)
        if t * 1e3 >= target_ms / 4 or n >= 1 << 20:
            break
        n *= 2
    n = max(1, int(n * target_ms / max(t * 1e3, 1e-9)))
    return min(timer.repeat(repeat=repeat, number=n)) / n * 1e9


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", nargs="?", const=DEFAULT_JSON, metavar="PATH")
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--target-ms", type=float, default=5.0)
    opts = ap.parse_args(argv)

    ours_h, ours_v = hessian(rosen), hvp(rosen)
    want_h, want_v = ours_h(X), ours_v(X, V)
    peers = _peers()
    for name, h, v in peers:  # the same answers before any timing
        np.testing.assert_allclose(h(X), want_h, rtol=1e-10, atol=1e-9, err_msg=name)
        if v is not None:
            np.testing.assert_allclose(v(X, V), want_v, rtol=1e-10, atol=1e-9, err_msg=name)

    rows = []
    t_h = best_ns(ours_h, (X,), opts.repeat, opts.target_ms)
    t_v = best_ns(ours_v, (X, V), opts.repeat, opts.target_ms)
    t_f = best_ns(rosen, (X,), opts.repeat, opts.target_ms)
    rows.append({"case": "hessian_rosen10", "method": "ad_transform", "ns": t_h,
                 "peer_over_ad_transform": 1.0})
    rows.append({"case": "hvp_rosen10", "method": "ad_transform", "ns": t_v,
                 "peer_over_ad_transform": 1.0})
    for name, h, v in peers:
        t = best_ns(h, (X,), opts.repeat, opts.target_ms)
        rows.append({"case": "hessian_rosen10", "method": name, "ns": t,
                     "peer_over_ad_transform": t / t_h})
        if v is not None:
            t = best_ns(v, (X, V), opts.repeat, opts.target_ms)
            rows.append({"case": "hvp_rosen10", "method": name, "ns": t,
                         "peer_over_ad_transform": t / t_v})

    print(f"primal rosen(x), n={N}: {t_f / 1e3:.2f} us")
    print(f"{'case':<18} {'method':<18} {'time':>12} {'peer / ad_transform':>20}")
    for r in rows:
        print(f"{r['case']:<18} {r['method']:<18} {r['ns'] / 1e3:>9.1f} us "
              f"{r['peer_over_ad_transform']:>19.1f}x")
    autograd_h = next((r for r in rows if r["case"] == "hessian_rosen10"
                       and r["method"] == "autograd"), None)
    met = None
    if autograd_h is not None:
        met = autograd_h["peer_over_ad_transform"] >= TARGET_RATIO
        print(f"target: hessian at least {TARGET_RATIO:.0f}x faster than autograd: "
              f"{'met' if met else 'MISSED'} ({autograd_h['peer_over_ad_transform']:.1f}x)")

    if opts.json:
        doc = {
            "ad_transform_version": ad_transform.__version__,
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "machine": platform.machine(),
            "system": platform.system(),
            "numpy": np.__version__,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "config": {"repeat": opts.repeat, "target_ms": opts.target_ms, "n": N,
                       "statistic": "min over repeats"},
            "primal_ns": t_f,
            "results": rows,
            "target": {"hessian_vs_autograd": TARGET_RATIO, "met": met},
        }
        with open(opts.json, "w") as fh:
            json.dump(doc, fh, indent=2)
            fh.write("\n")
        print(f"wrote {opts.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
