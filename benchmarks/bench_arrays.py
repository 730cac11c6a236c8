"""Array benchmarks for ad_transform: generated NumPy gradients vs hand-written ones.

Run from the repository root::

    python benchmarks/bench_arrays.py              # table only
    python benchmarks/bench_arrays.py --json       # also write benchmarks/results_arrays.json
    python benchmarks/bench_arrays.py --breakdown  # also: per-statement cost of the MLP gradients

Cases (all float64):

* ``linreg n=50`` and ``linreg n=1000000``: ``mean((X @ w + b - y) ** 2)`` with
  X of shape (n, 1), w of shape (1,), b a float; gradient with respect to (w, b).
* ``mlp 784-256-10 b=128``: tanh hidden layer, softmax cross-entropy on
  random data; gradient with respect to (W1, b1, W2, b2).

For each case the table gives the steady-state time per call of the primal
(the loss alone), of a hand-written NumPy gradient, and of the
``ad_transform.gradient`` of the loss, then ad_transform/hand (target <= 1.3)
and ad_transform/primal.  Every variant is timed in the same process,
round-robin in short samples (so drift and noisy neighbours hit all of them
alike) for ``--budget`` seconds per case; the table shows the minimum, then
the median.  Ratios and pass/fail use, by default, the median over rounds of
the ratio of the two samples taken in the same round (``--stat paired``):
on a busy machine that is far steadier than a ratio of minima (``--stat min``,
also printed).  BLAS runs on one thread while timing (``--blas-threads``).
Ratios are only meaningful within one run: BLAS kernels (e.g.
``OPENBLAS_CORETYPE``) and thread counts change absolute times.  HIPS autograd
is timed too if it is importable (``pip install autograd``), JAX if it is
importable; others are skipped.  A full run takes about 30 s.
"""
from __future__ import annotations

import argparse
import ast
import gc
import inspect
import json
import os
import platform
import statistics
import sys
import textwrap
import time

import numpy as np

import ad_transform
from ad_transform import gradient

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_JSON = os.path.join(HERE, "results_arrays.json")
TARGET_VS_HAND = 1.3


# ---------------------------------------------------------------------------
# The functions under test (module level: ad_transform reads their source).
# ---------------------------------------------------------------------------

def linreg_loss(w, b, X, y):
    return np.mean((X @ w + b - y) ** 2)


def linreg_grad_hand(w, b, X, y):
    r = X @ w + b - y
    c = 2.0 / y.shape[0]
    return c * (X.T @ r), c * float(r.sum())


def mlp_loss(W1, b1, W2, b2, X, Y):
    h = np.tanh(X @ W1 + b1)
    z = h @ W2 + b2
    z = z - np.max(z, axis=1, keepdims=True)
    logp = z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))
    return -np.sum(Y * logp) / X.shape[0]


def mlp_grad_hand(W1, b1, W2, b2, X, Y):
    h = np.tanh(X @ W1 + b1)
    z = h @ W2 + b2
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    dz = (p - Y) / X.shape[0]
    dW2 = h.T @ dz
    db2 = dz.sum(axis=0)
    dpre = (dz @ W2.T) * (1.0 - h * h)
    dW1 = X.T @ dpre
    db1 = dpre.sum(axis=0)
    return dW1, db1, dW2, db2


def linreg_data(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 1))
    y = 3.0 * X[:, 0] + 1.0 + 0.1 * rng.standard_normal(n)
    return (np.array([0.5]), 0.2, X, y)


def mlp_data(n_in=784, hidden=256, n_out=10, batch=128, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((batch, n_in))
    Y = np.eye(n_out)[rng.integers(0, n_out, batch)]
    W1 = rng.standard_normal((n_in, hidden)) / np.sqrt(n_in)
    b1 = 0.1 * rng.standard_normal(hidden)
    W2 = rng.standard_normal((hidden, n_out)) / np.sqrt(hidden)
    b2 = 0.1 * rng.standard_normal(n_out)
    return (W1, b1, W2, b2, X, Y)


# ---------------------------------------------------------------------------
# Peers, each optional: name -> (make_linreg_grad, make_mlp_grad) or a reason.
# ---------------------------------------------------------------------------

def _autograd_peer():
    import autograd
    import autograd.numpy as anp

    def lin(w, b, X, y):
        return anp.mean((anp.dot(X, w) + b - y) ** 2)

    def mlp(W1, b1, W2, b2, X, Y):
        h = anp.tanh(anp.dot(X, W1) + b1)
        z = anp.dot(h, W2) + b2
        z = z - anp.max(z, axis=1, keepdims=True)
        logp = z - anp.log(anp.sum(anp.exp(z), axis=1, keepdims=True))
        return -anp.sum(Y * logp) / X.shape[0]

    version = getattr(autograd, "__version__", None)
    if version is None:
        from importlib.metadata import version as _v
        version = _v("autograd")
    return version, autograd.grad(lin, (0, 1)), autograd.grad(mlp, (0, 1, 2, 3))


def _jax_peer():
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    def lin(w, b, X, y):
        return jnp.mean((X @ w + b - y) ** 2)

    def mlp(W1, b1, W2, b2, X, Y):
        h = jnp.tanh(X @ W1 + b1)
        z = h @ W2 + b2
        z = z - jnp.max(z, axis=1, keepdims=True)
        logp = z - jnp.log(jnp.sum(jnp.exp(z), axis=1, keepdims=True))
        return -jnp.sum(Y * logp) / X.shape[0]

    def blocking(f):
        def run(*args):
            return jax.block_until_ready(f(*args))
        return run

    return (jax.__version__, blocking(jax.jit(jax.grad(lin, (0, 1)))),
            blocking(jax.jit(jax.grad(mlp, (0, 1, 2, 3)))))


def load_peers(wanted=True):
    peers, skipped = {}, {}
    if not wanted:
        return peers, skipped
    for name, make in (("autograd", _autograd_peer), ("jax.jit", _jax_peer)):
        try:
            version, lin, mlp = make()
        except ImportError as exc:
            skipped[name] = f"not importable ({exc.name or exc})"
            continue
        except Exception as exc:  # a broken install must not stop the benchmark
            skipped[name] = f"{type(exc).__name__}: {exc}"
            continue
        peers[name] = {"version": version, "linreg": lin, "mlp": mlp}
    return peers, skipped


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------

def _loop(fn, args, number):
    t0 = time.perf_counter()
    for _ in range(number):
        fn(*args)
    return time.perf_counter() - t0


def _calibrate(fn, args, sample_s):
    """Calls per sample so that one sample takes about ``sample_s``."""
    number = 1
    while True:
        t = _loop(fn, args, number)
        if t >= sample_s:
            return number
        number = max(number * 2, int(number * sample_s / max(t, 1e-9) * 1.1))


def measure(variants: dict, args, min_repeat: int, budget_s: float, sample_s: float,
            max_repeat: int = 400) -> dict:
    """Steady-state seconds per call of every variant, timed round-robin.

    ``variants`` maps name -> callable(*args).  Each is warmed up (the
    ad_transform one compiles on its first call) and calibrated so that one
    sample takes about ``sample_s``.  Then rounds, each timing one sample of
    every variant in turn, run until ``budget_s`` is spent (at least
    ``min_repeat`` rounds).  Many short interleaved samples make the minimum
    robust on a shared machine (each variant only needs a few quiet moments),
    and samples of the same round can be paired (see :func:`ratio`).
    """
    for fn in variants.values():
        for _ in range(3):
            fn(*args)
    numbers = {k: _calibrate(fn, args, sample_s) for k, fn in variants.items()}
    samples = {k: [] for k in variants}
    enabled = gc.isenabled()
    gc.disable()
    t_end = time.perf_counter() + budget_s
    try:
        rounds = 0
        while rounds < min_repeat or (time.perf_counter() < t_end and rounds < max_repeat):
            for k, fn in variants.items():
                samples[k].append(_loop(fn, args, numbers[k]) / numbers[k])
            rounds += 1
    finally:
        if enabled:
            gc.enable()
    return {k: {"min_s": min(s), "median_s": statistics.median(s), "max_s": max(s),
                "calls_per_sample": numbers[k], "samples": len(s), "raw": s}
            for k, s in samples.items()}


def ratio(times: dict, a: str, b: str, stat: str) -> float:
    """Time of ``a`` over time of ``b``: ratio of minima, or median of per-round ratios."""
    if stat == "min":
        return times[a]["min_s"] / times[b]["min_s"]
    return statistics.median(x / y for x, y in zip(times[a]["raw"], times[b]["raw"]))


def first_call_s(loss, wrt, args) -> float:
    """Lowering + differentiating + compiling + the first answer, for a fresh gradient."""
    g = gradient(loss, wrt=wrt)
    t0 = time.perf_counter()
    g(*args)
    return time.perf_counter() - t0


def fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:8.2f} us"
    if s < 1.0:
        return f"{s * 1e3:8.3f} ms"
    return f"{s:8.3f} s "


# ---------------------------------------------------------------------------
# Correctness (a benchmark of wrong answers is worthless)
# ---------------------------------------------------------------------------

def _assert_same(name, got, want, rtol=1e-9, atol=1e-12):
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    assert len(got) == len(want), f"{name}: {len(got)} gradients, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        if not np.allclose(np.asarray(g), np.asarray(w), rtol=rtol, atol=atol):
            raise AssertionError(f"{name}: gradient {i} differs from the hand-written one "
                                 f"(max abs diff {np.max(np.abs(np.asarray(g) - w)):.3g})")


# ---------------------------------------------------------------------------
# Per-statement cost of a function body (--breakdown)
# ---------------------------------------------------------------------------

def _capture_globals(fn, args, code_name):
    """The globals of the frame called ``code_name`` that runs while ``fn(*args)`` does.

    ad_transform compiles its derivative into its own namespace; profiling
    one call is the least intrusive way to get at it.
    """
    found = {}

    def prof(frame, event, arg):
        if event == "call" and frame.f_code.co_name == code_name and "g" not in found:
            found["g"] = frame.f_globals

    sys.setprofile(prof)
    try:
        fn(*args)
    finally:
        sys.setprofile(None)
    return found.get("g")


def statement_costs(source: str, namespace: dict, args, rounds: int = 200):
    """Seconds per statement of the (single) function in ``source``, run on ``args``.

    Each top-level statement of the body is compiled on its own and executed
    in order in one dict; the cost of timing an empty statement is
    subtracted.  ``return e`` is timed as ``__result = e``.  The numbers add
    up to roughly the whole call; they say where its time goes.
    """
    fdef = ast.parse(textwrap.dedent(source)).body[0]
    params = [a.arg for a in fdef.args.args]
    lines = source.splitlines()
    stmts = []
    for node in fdef.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # docstring
        if isinstance(node, ast.Return):
            node = ast.Assign(targets=[ast.Name("__result", ast.Store())], value=node.value)
            ast.copy_location(node, fdef.body[-1])
        text = lines[node.lineno - 1].strip() if not isinstance(node, ast.If) else \
            "if <guard on argument types, shapes, dtypes>: raise PathMiss"
        module = ast.fix_missing_locations(ast.Module(body=[node], type_ignores=[]))
        stmts.append((text, compile(module, "<stmt>", "exec")))
    empty = compile("pass", "<stmt>", "exec")
    totals = [0.0] * len(stmts)
    base = 0.0
    clock = time.perf_counter
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            ns = dict(namespace)
            ns.update(zip(params, args))
            for i, (_, code) in enumerate(stmts):
                t0 = clock()
                exec(code, ns)
                totals[i] += clock() - t0
            t0 = clock()
            exec(empty, ns)
            base += clock() - t0
    finally:
        if enabled:
            gc.enable()
    base /= rounds
    return [(text, max(t / rounds - base, 0.0)) for (text, _), t in zip(stmts, totals)]


def print_breakdown(title, costs, whole_s):
    total = sum(c for _, c in costs)
    print(f"\n{title}: per-statement cost (sum {fmt_time(total).strip()}, "
          f"whole call {fmt_time(whole_s).strip()})")
    for text, c in costs:
        text = text if len(text) <= 78 else text[:75] + "..."
        print(f"  {fmt_time(c)} {100 * c / total:5.1f}%  {text}")


def breakdown(args, whole_ad, whole_hand):
    g = gradient(mlp_loss, wrt=(0, 1, 2, 3))
    g(*args)
    source = g.source(*args)
    name = ast.parse(source).body[0].name
    ns = _capture_globals(g, args, name)
    if ns is None:
        print("\n(breakdown skipped: could not find the generated function's namespace)")
        return None
    ad_costs = statement_costs(source, ns, args)
    hand_src = textwrap.dedent(inspect.getsource(mlp_grad_hand))
    hand_costs = statement_costs(hand_src, mlp_grad_hand.__globals__, args)
    print_breakdown("ad_transform gradient of mlp_loss", ad_costs, whole_ad)
    print_breakdown("hand-written mlp_grad_hand", hand_costs, whole_hand)
    return {"ad_transform": ad_costs, "hand": hand_costs}


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def environment() -> dict:
    env = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "numpy": np.__version__,
        "ad_transform": getattr(ad_transform, "__version__", "dev"),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                "MKL_NUM_THREADS"):
        if os.environ.get(var):
            env[var] = os.environ[var]
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        env["blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:
        pass
    return env


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="array benchmarks for ad_transform")
    parser.add_argument("--json", nargs="?", const=DEFAULT_JSON, default=None, metavar="PATH",
                        help=f"write results as JSON (default path {DEFAULT_JSON})")
    parser.add_argument("--budget", type=float, default=10.0,
                        help="seconds of round-robin timing per case (default 10)")
    parser.add_argument("--repeat", type=int, default=15,
                        help="at least this many samples per variant, whatever the budget")
    parser.add_argument("--stat", choices=("paired", "min"), default="paired",
                        help="statistic for the ratios and pass/fail: median of per-round "
                        "ratios (default; robust when the machine is busy) or ratio of minima")
    parser.add_argument("--sample", type=float, default=0.005,
                        help="seconds per sample (calls per sample are calibrated)")
    parser.add_argument("--blas-threads", type=int, default=1, metavar="N",
                        help="BLAS threads while timing (default 1: on a shared or small "
                        "machine, a second BLAS thread that gets descheduled makes matmul "
                        "times swing by 10x; 0 leaves the library default)")
    parser.add_argument("--no-peers", action="store_true", help="skip autograd / JAX")
    parser.add_argument("--breakdown", action="store_true",
                        help="per-statement cost of the MLP gradient, generated vs hand-written")
    opts = parser.parse_args(argv)

    t_start = time.perf_counter()
    env = environment()
    limiter = None
    if opts.blas_threads > 0:
        try:
            from threadpoolctl import threadpool_limits
            limiter = threadpool_limits(limits=opts.blas_threads, user_api="blas")
            env["blas_threads"] = opts.blas_threads
        except ImportError:
            env["blas_threads"] = "default (threadpoolctl not importable)"
    else:
        env["blas_threads"] = "default"
    try:
        return _run(opts, env, t_start)
    finally:
        if limiter is not None:
            limiter.restore_original_limits()


def _run(opts, env, t_start) -> int:
    peers, skipped = load_peers(not opts.no_peers)
    cases = [
        ("linreg n=50", "linreg", linreg_loss, linreg_grad_hand, (0, 1), linreg_data(50)),
        ("linreg n=1000000", "linreg", linreg_loss, linreg_grad_hand, (0, 1),
         linreg_data(1_000_000)),
        ("mlp 784-256-10 b=128", "mlp", mlp_loss, mlp_grad_hand, (0, 1, 2, 3), mlp_data()),
    ]

    rows = []
    mlp_times = None
    for label, kind, loss, hand, wrt, args in cases:
        compile_s = first_call_s(loss, wrt, args)
        ad = gradient(loss, wrt=wrt)
        want = hand(*args)
        _assert_same(f"{label} ad_transform", ad(*args), want)
        variants = {"primal": loss, "hand": hand, "ad_transform": ad}
        for pname, peer in peers.items():
            try:
                _assert_same(f"{label} {pname}", tuple(np.asarray(g) for g in peer[kind](*args)),
                             want, rtol=1e-7, atol=1e-10)
            except Exception as exc:
                print(f"note: {pname} skipped for {label}: {type(exc).__name__}: {exc}")
                continue
            variants[pname] = peer[kind]
        times = measure(variants, args, opts.repeat, opts.budget, opts.sample)
        t = {k: v["min_s"] for k, v in times.items()}
        r_hand = ratio(times, "ad_transform", "hand", opts.stat)
        rows.append({
            "case": label,
            "times": {k: {f: x for f, x in v.items() if f != "raw"} for k, v in times.items()},
            "first_call_s": compile_s,
            "statistic": opts.stat,
            "ratio_vs_hand": r_hand,
            "ratio_vs_primal": ratio(times, "ad_transform", "primal", opts.stat),
            "hand_vs_primal": ratio(times, "hand", "primal", opts.stat),
            "ratio_vs_hand_min": ratio(times, "ad_transform", "hand", "min"),
            "ratio_vs_hand_paired": ratio(times, "ad_transform", "hand", "paired"),
            "ratio_vs_primal_min": ratio(times, "ad_transform", "primal", "min"),
            "ratio_vs_primal_paired": ratio(times, "ad_transform", "primal", "paired"),
            "target_vs_hand": TARGET_VS_HAND,
            "pass": r_hand <= TARGET_VS_HAND,
            "peers": {p: {"min_s": t[p], "ratio_vs_hand": ratio(times, p, "hand", opts.stat),
                          "ad_transform_speedup": ratio(times, p, "ad_transform", opts.stat)}
                      for p in variants if p in peers},
        })
        if kind == "mlp":
            mlp_times = (args, t["ad_transform"], t["hand"])

    what = ("ratios of the minima" if opts.stat == "min"
            else "ratios are medians of per-round ratios")
    print(f"steady-state time per call: minimum over round-robin samples; {what}")
    head = (f"{'case':<22} {'primal':>11} {'hand':>11} {'ad_transform':>12} "
            f"{'ad/hand':>8} {'ad/primal':>9} {'target':>7} {'result':>6}")
    print(head)
    print("-" * len(head))
    for r in rows:
        t = {k: v["min_s"] for k, v in r["times"].items()}
        print(f"{r['case']:<22} {fmt_time(t['primal']):>11} {fmt_time(t['hand']):>11} "
              f"{fmt_time(t['ad_transform']):>12} {r['ratio_vs_hand']:7.2f}x "
              f"{r['ratio_vs_primal']:8.2f}x {'<=' + str(r['target_vs_hand']) + 'x':>7} "
              f"{'pass' if r['pass'] else 'FAIL':>6}")
    print("\nother statistics (ad/hand and ad/primal as ratio of minima | median per-round ratio)")
    for r in rows:
        med = {k: v["median_s"] for k, v in r["times"].items()}
        print(f"  {r['case']:<22} ad/hand {r['ratio_vs_hand_min']:.2f}x | "
              f"{r['ratio_vs_hand_paired']:.2f}x; ad/primal {r['ratio_vs_primal_min']:.2f}x | "
              f"{r['ratio_vs_primal_paired']:.2f}x; hand/primal {r['hand_vs_primal']:.2f}x; "
              f"medians: hand {fmt_time(med['hand']).strip()}, ad_transform "
              f"{fmt_time(med['ad_transform']).strip()}; {r['times']['hand']['samples']} rounds; "
              f"first ad_transform call {fmt_time(r['first_call_s']).strip()}")
    if peers:
        print("\npeers (min time per call; ratio vs the hand-written gradient; "
              "how many times faster ad_transform is)")
        for r in rows:
            for p, v in r["peers"].items():
                print(f"  {r['case']:<22} {p:<10} {fmt_time(v['min_s'])}  "
                      f"{v['ratio_vs_hand']:6.2f}x hand   ad_transform "
                      f"{v['ad_transform_speedup']:5.2f}x faster")
    for p, why in skipped.items():
        print(f"peer {p} skipped: {why}")

    bd = None
    if opts.breakdown and mlp_times is not None:
        bd = breakdown(*mlp_times)

    elapsed = time.perf_counter() - t_start
    print(f"\n{sum(r['pass'] for r in rows)}/{len(rows)} cases meet the target; "
          f"benchmark took {elapsed:.1f} s")
    print("environment: " + ", ".join(f"{k}={v}" for k, v in env.items()))
    if opts.json:
        out = {
            "benchmark": "bench_arrays",
            "environment": env,
            "settings": {"min_repeat": opts.repeat, "budget_s": opts.budget, "sample_s": opts.sample,
                         "statistic": opts.stat},
            "peers": {p: v["version"] for p, v in peers.items()},
            "peers_skipped": skipped,
            "cases": rows,
            "elapsed_s": elapsed,
        }
        if bd is not None:
            out["breakdown_mlp_s"] = {k: [{"statement": s, "seconds": c} for s, c in v]
                                      for k, v in bd.items()}
        with open(opts.json, "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")
        print(f"wrote {opts.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
