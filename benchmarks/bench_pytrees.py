"""What structured parameters and custom rules cost, measured in one run.

Run from the repository root::

    python benchmarks/bench_pytrees.py

Cases (float64, a 10-16-1 tanh MLP with a mean squared error):

* ``dict params``: ``gradient(loss)({"W1": .., "b1": .., "W2": .., "b2": ..}, X, y)``
  against the same loss with four array parameters and ``wrt=(0, 1, 2, 3)``: the
  price of the structure guard, the leaf reads and rebuilding the gradient dict;
  autograd's ``grad`` on the dict, if importable.
* ``custom_vjp``: a logistic loss whose ``scipy.special.expit`` has a rule given
  with ``defvjp`` (called at run time) against the same loss written with
  ``np.tanh`` (a built-in rule, emitted inline): ``expit(z) = (1 + tanh(z/2)) / 2``.

Timing is round-robin in short samples, and the table shows the minimum per call
and ratios of minima taken in this run.  Ratios are only meaningful within one run.
"""
from __future__ import annotations

import os
import sys
import timeit

import numpy as np
import scipy.special

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ad_transform import defvjp, gradient  # noqa: E402


def mlp(params, X, y):
    h = np.tanh(X @ params["W1"] + params["b1"])
    out = h @ params["W2"] + params["b2"]
    return np.mean((out - y) ** 2)


def mlp_flat(W1, b1, W2, b2, X, y):
    h = np.tanh(X @ W1 + b1)
    out = h @ W2 + b2
    return np.mean((out - y) ** 2)


defvjp(scipy.special.expit, lambda g, ans, x: g * ans * (1.0 - ans))


def logistic_expit(w, X, y):
    p = scipy.special.expit(X @ w)
    return -np.mean(y * np.log(p) + (1.0 - y) * np.log(1.0 - p))


def logistic_tanh(w, X, y):
    p = 0.5 * (1.0 + np.tanh(0.5 * (X @ w)))
    return -np.mean(y * np.log(p) + (1.0 - y) * np.log(1.0 - p))


def best(fns, rounds=15, number=300):
    """Minimum seconds per call of each function, sampled round-robin."""
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(timeit.timeit(fn, number=number) / number)
    return {name: min(t) for name, t in times.items()}


def main():
    rng = np.random.default_rng(0)
    rows = []
    for n in (8, 256):
        X, y = rng.normal(size=(n, 10)), rng.normal(size=(n, 1))
        p = {"W1": rng.normal(size=(10, 16)), "b1": np.zeros(16),
             "W2": rng.normal(size=(16, 1)), "b2": np.zeros(1)}
        g_tree, g_flat = gradient(mlp), gradient(mlp_flat, wrt=(0, 1, 2, 3))
        fns = {"dict params": lambda: g_tree(p, X, y),
               "separate arrays": lambda: g_flat(p["W1"], p["b1"], p["W2"], p["b2"], X, y)}
        try:
            import autograd
            import autograd.numpy as anp

            def amlp(params):
                h = anp.tanh(anp.dot(X, params["W1"]) + params["b1"])
                return anp.mean((anp.dot(h, params["W2"]) + params["b2"] - y) ** 2)
            ag = autograd.grad(amlp)
            fns["autograd dict"] = lambda: ag(p)
        except ImportError:
            pass
        t = best(fns)
        rows.append((f"mlp 10-16-1 batch {n}", t, "dict params", "separate arrays"))

        w = rng.normal(size=10)
        yb = (rng.random(n) > 0.5).astype(float)
        ge, gt = gradient(logistic_expit), gradient(logistic_tanh)
        t = best({"custom rule (expit)": lambda: ge(w, X, yb),
                  "built-in rules (tanh)": lambda: gt(w, X, yb),
                  "primal (expit)": lambda: logistic_expit(w, X, yb)})
        rows.append((f"logistic batch {n}", t, "custom rule (expit)", "built-in rules (tanh)"))
    for title, t, a, b in rows:
        print(title)
        for name, secs in t.items():
            print(f"  {name:<24}{secs * 1e6:10.1f} us")
        print(f"  {a} / {b}: {t[a] / t[b]:.2f}")


if __name__ == "__main__":
    main()
