"""Scalar benchmarks for ad_transform: steady-state cost and first-call cost.

Run from the repository root::

    python benchmarks/bench_scalar.py              # table only
    python benchmarks/bench_scalar.py --json       # also write benchmarks/results_scalar.json
    python benchmarks/bench_scalar.py --breakdown  # also: where the seed gradient's time goes

Everything is measured in one process and every ratio is taken between
timings from the same run, so the ratios are comparable across machines
even when the absolute nanoseconds are not.  See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import gc
import importlib.util
import inspect
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import timeit
import types

import ad_transform
from ad_transform import gradient

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_JSON = os.path.join(HERE, "results_scalar.json")

# ---------------------------------------------------------------------------
# The functions under test.  They live at module level so their source is
# readable (ad_transform needs it) and so the first-call benchmark can copy
# their exact text into fresh modules.
# ---------------------------------------------------------------------------


def seed(x1, x2):
    return math.log(x1) + x1 * math.sin(x2)


def recurrence(x, a):
    for _ in range(100):
        x = math.sin(x) * a + 0.1 * x
    return x


SEED_ARGS = (2.0, 1.0)
# (1.0, 0.9) keeps the trajectory and both partials O(1e-3..1e1): no
# underflow towards subnormals, and a finite-difference check is meaningful.
REC_ARGS = (1.0, 0.9)

# Targets from the project brief.
SEED_RATIO_TARGET = 3.0   # gradient <= 3x primal
REC_RATIO_TARGET = 4.0    # gradient <= 4x primal
SEED_FIRST_CALL_MS = 10.0  # lowering + compiling + first answer < 10 ms


# Hand-written gradients in plain Python: what a careful user would write.


def seed_grad_hand(x1, x2):
    return 1.0 / x1 + math.sin(x2), x1 * math.cos(x2)


def recurrence_grad_hand(x, a):
    # Reverse mode by hand: record the trajectory, then sweep backwards.
    xs = []
    sins = []
    for _ in range(100):
        s = math.sin(x)
        xs.append(x)
        sins.append(s)
        x = s * a + 0.1 * x
    dx, da = 1.0, 0.0
    for xi, s in zip(reversed(xs), reversed(sins)):
        da += dx * s
        dx *= a * math.cos(xi) + 0.1
    return dx, da


# ---------------------------------------------------------------------------
# Timing helpers
# ---------------------------------------------------------------------------


def make_timer(fn, args, kwargs=None) -> timeit.Timer:
    """A timer whose loop body is just ``fn(<literal args>)``."""
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in (kwargs or {}).items()]
    return timeit.Timer("fn(" + ", ".join(parts) + ")", globals={"fn": fn})


def calibrate(timer: timeit.Timer, target_s: float) -> int:
    """The smallest loop count in 1, 2, 5, 10, 20, ... that takes >= target_s."""
    number = 1
    while True:
        for m in (1, 2, 5):
            n = number * m
            if timer.timeit(n) >= target_s:
                return n
        number *= 10


def measure_round_robin(cases: dict, repeat: int, target_s: float) -> dict:
    """Time every case ``repeat`` times, interleaved, so drift hits all alike.

    ``cases`` maps name -> (fn, args) or (fn, args, kwargs).  Returns
    name -> stats in ns per call.
    """
    timers = {name: make_timer(*case) for name, case in cases.items()}
    for t in timers.values():  # warm up (specialising interpreter, caches)
        t.timeit(50)
    numbers = {name: calibrate(t, target_s) for name, t in timers.items()}
    samples = {name: [] for name in timers}
    for _ in range(repeat):
        for name, t in timers.items():
            samples[name].append(t.timeit(numbers[name]) / numbers[name] * 1e9)
    return {name: {"min_ns": min(s), "median_ns": statistics.median(s),
                   "max_ns": max(s), "loops": numbers[name], "repeat": repeat}
            for name, s in samples.items()}


def loop_overhead_ns(repeat: int) -> float:
    """What the timeit loop itself costs per iteration (included in every number)."""
    t = timeit.Timer("pass")
    return min(t.repeat(repeat, 1_000_000)) / 1_000_000 * 1e9


# ---------------------------------------------------------------------------
# Peers: HIPS autograd (installed via the ``bench`` extra), JAX and torch only
# if already importable.  Each returns (grad_fn, primal_fn_in_its_numpy) or
# raises; the caller turns exceptions into a 'skipped' note.
# ---------------------------------------------------------------------------


def peer_autograd(which):
    import autograd
    import autograd.numpy as anp

    if which == "seed":
        def f(x1, x2):
            return anp.log(x1) + x1 * anp.sin(x2)
    else:
        def f(x, a):
            for _ in range(100):
                x = anp.sin(x) * a + 0.1 * x
            return x
    return autograd.grad(f, argnum=(0, 1)), f


def peer_jax(which):
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    if which == "seed":
        def f(x1, x2):
            return jnp.log(x1) + x1 * jnp.sin(x2)
    else:
        def f(x, a):
            for _ in range(100):
                x = jnp.sin(x) * a + 0.1 * x
            return x
    g = jax.jit(jax.grad(f, argnums=(0, 1)))

    def grad_jit(*args):  # block: JAX dispatches asynchronously
        return jax.block_until_ready(g(*args))
    return grad_jit, f


def peer_torch(which):
    import torch

    def grad(*args):
        ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in args]
        if which == "seed":
            y = torch.log(ts[0]) + ts[0] * torch.sin(ts[1])
        else:
            x, a = ts
            for _ in range(100):
                x = torch.sin(x) * a + 0.1 * x
            y = x
        return tuple(g.item() for g in torch.autograd.grad(y, ts))
    return grad, None


PEERS = {"autograd": peer_autograd, "jax.jit(grad)": peer_jax, "torch": peer_torch}
PEER_MODULES = {"autograd": "autograd", "jax.jit(grad)": "jax", "torch": "torch"}


def _importable(mod: str) -> bool:
    return importlib.util.find_spec(mod) is not None


# ---------------------------------------------------------------------------
# Correctness: every contestant must agree before its time means anything.
# ---------------------------------------------------------------------------


def _close(got, want, rel=1e-9):
    got = tuple(float(g) for g in got)
    return len(got) == len(want) and all(
        math.isclose(g, w, rel_tol=rel, abs_tol=1e-12) for g, w in zip(got, want))


def _finite_difference(fn, args, h=1e-6):
    out = []
    for i in range(len(args)):
        up = list(args)
        dn = list(args)
        up[i] += h
        dn[i] -= h
        out.append((fn(*up) - fn(*dn)) / (2 * h))
    return tuple(out)


# ---------------------------------------------------------------------------
# Fresh functions for first-call timing: each is a new module file under a
# temporary directory, imported and registered like a real module, so the
# function object, its code object, its source lines and every per-function
# cache are new.
# ---------------------------------------------------------------------------


class FreshModules:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ad_transform_bench_")
        self.count = 0
        self.names = []

    def write(self, fn):
        """Write a module holding a copy of ``fn``; returns (module name, path)."""
        self.count += 1
        name = f"_ad_bench_{os.getpid()}_{self.count}_{fn.__name__}"
        path = os.path.join(self.dir, name + ".py")
        text = "import math\n\n\n" + textwrap.dedent(inspect.getsource(fn))
        with open(path, "w") as fh:
            fh.write(text)
        return name, path

    def load(self, fn):
        """A freshly imported copy of ``fn``."""
        name, path = self.write(fn)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # as for a real import: inspect finds it fast
        spec.loader.exec_module(module)
        self.names.append(name)
        return getattr(module, fn.__name__)

    def close(self):
        for name in self.names:
            sys.modules.pop(name, None)
        shutil.rmtree(self.dir, ignore_errors=True)


def first_call_in_process(fresh: FreshModules, fn, args, repeat: int) -> dict:
    """ms for ``gradient(f, wrt=(0, 1))`` + its first call, fresh ``f`` each time.

    Wall time (perf_counter) and CPU time (process_time) are both kept: on a
    shared machine the wall time also counts the time other processes held
    the core, the CPU time does not.
    """
    wall, cpu, construct = [], [], []
    for _ in range(repeat):
        f = fresh.load(fn)
        gc.collect()
        c0 = time.process_time()
        t0 = time.perf_counter()
        g = gradient(f, wrt=(0, 1))
        t1 = time.perf_counter()
        g(*args)
        t2 = time.perf_counter()
        c2 = time.process_time()
        info = g.cache_info()
        if info.misses != 1 or info.hits != 0:
            raise RuntimeError(f"first-call benchmark did not start cold: {info}")
        construct.append((t1 - t0) * 1e3)
        wall.append((t2 - t0) * 1e3)
        cpu.append((c2 - c0) * 1e3)
    return {"first_ms": wall[0], "median_ms": statistics.median(wall), "min_ms": min(wall),
            "max_ms": max(wall), "cpu_median_ms": statistics.median(cpu),
            "construct_median_ms": statistics.median(construct), "repeat": repeat}


_COLD_SCRIPT = r"""
import importlib.util, json, sys, time
t0 = time.perf_counter()
import ad_transform
t1 = time.perf_counter()
spec = importlib.util.spec_from_file_location(sys.argv[1], sys.argv[2])
mod = importlib.util.module_from_spec(spec)
sys.modules[sys.argv[1]] = mod
spec.loader.exec_module(mod)
f = getattr(mod, sys.argv[3])
args = json.loads(sys.argv[4])
c2 = time.process_time()
t2 = time.perf_counter()
ad_transform.gradient(f, wrt=(0, 1))(*args)
t3 = time.perf_counter()
c3 = time.process_time()
print(json.dumps({"import_ms": (t1 - t0) * 1e3, "first_call_ms": (t3 - t2) * 1e3,
                  "first_call_cpu_ms": (c3 - c2) * 1e3}))
"""


def first_call_cold_process(fresh: FreshModules, fn, args, repeat: int) -> dict:
    """The same, but in a brand-new interpreter (includes one-time warm-up)."""
    runs = []
    for _ in range(repeat):
        name, path = fresh.write(fn)
        out = subprocess.run([sys.executable, "-c", _COLD_SCRIPT, name, path, fn.__name__,
                              json.dumps(list(args))],
                             capture_output=True, text=True, timeout=60, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {"import_ms_median": statistics.median(r["import_ms"] for r in runs),
            "first_call_ms_median": statistics.median(r["first_call_ms"] for r in runs),
            "first_call_cpu_ms_median": statistics.median(r["first_call_cpu_ms"] for r in runs),
            "first_call_ms_all": [r["first_call_ms"] for r in runs], "repeat": repeat}


# ---------------------------------------------------------------------------
# Breakdown of the steady-state cost (uses library internals; read-only)
# ---------------------------------------------------------------------------


def _closure_vars(fn) -> dict:
    return {name: cell.cell_contents
            for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ())}


def _current_entry(g, fun):
    """The cache behind the wrapper ``g`` and the compiled path it runs now.

    Looks in the wrapper's closure and globals (the dispatcher binds its cache
    there), then in ``ad_transform.cache``'s registry; read-only.
    """
    from ad_transform import cache as adcache

    found = list(_closure_vars(g).values()) + list(getattr(g, "__globals__", {}).values())
    caches = [c for c in found if isinstance(c, adcache.PathCache)]
    if not caches:
        registry = getattr(adcache, "_CACHES", {})
        caches = [c for c in registry.get(fun, {}).values() if c.current is not None]
    if len(caches) != 1 or caches[0].current is None:
        raise RuntimeError(f"cannot find the one compiled path of {fun.__name__}")
    return caches[0], caches[0].current


def _recompile(entry, source: str, label: str):
    namespace = dict(entry.fn.__globals__)
    exec(compile(source, f"<bench {label}>", "exec"), namespace)
    return namespace[entry.fn.__name__]


def _strip_guards(source: str) -> str:
    """The generated source without its ``if ...: raise PathMiss(...)`` guards."""
    lines = source.splitlines(True)
    out, i = [], 0
    while i < len(lines):
        if (lines[i].lstrip().startswith("if ") and i + 1 < len(lines)
                and "PathMiss(" in lines[i + 1]):
            i += 2
            continue
        out.append(lines[i])
        i += 1
    return "".join(out)


def _prebind_module_attrs(entry, source: str):
    """Rewrite ``math.sin(`` into a prebound global ``math__sin(``."""
    namespace = dict(entry.fn.__globals__)
    mods = [n for n, v in namespace.items() if isinstance(v, types.ModuleType)]
    for mod in mods:
        pattern = re.compile(rf"(?<![\w.]){re.escape(mod)}\.(\w+)\(")
        for attr in set(pattern.findall(source)):
            namespace[f"{mod}__{attr}"] = getattr(namespace[mod], attr)
        source = pattern.sub(lambda m, mod=mod: f"{mod}__{m.group(1)}(", source)
    exec(compile(source, "<bench prebound>", "exec"), namespace)
    return namespace[entry.fn.__name__], source


def wrapper_ladder(gen, nparams, PathMiss):
    """Wrappers around the same generated fn, one cost at a time.

    All are generated with the arity of the function (as the library's
    dispatcher is since 9646e3a), except the last, which replicates the
    ``*args, **kwargs`` wrapper the library used before.
    """
    names = ", ".join(f"a{i}" for i in range(nparams))

    class Holder:  # stands in for PathCache: a plain attribute, not a property
        pass

    holder = Holder()
    holder.hits = 0
    holder.current = types.SimpleNamespace(fn=gen)
    ns = {"gen": gen, "slot": [gen], "cache": holder, "PathMiss": PathMiss,
          "nparams": nparams, "simple": True}
    exec(textwrap.dedent(f"""
        def call_only({names}):
            return gen({names})

        def slot_try({names}):
            try:
                return slot[0]({names})
            except PathMiss:
                raise

        def slot_try_hits({names}):
            try:
                result = slot[0]({names})
            except PathMiss:
                raise
            else:
                cache.hits += 1
                return result

        def old_varargs(*args, **kwargs):
            if kwargs or not simple or len(args) != nparams:
                raise AssertionError
            entry = cache.current
            if entry is not None:
                try:
                    result = entry.fn(*args)
                except PathMiss:
                    raise
                cache.hits += 1
                return result
            raise AssertionError
        """), ns)
    return {"wrapper: call only": ns["call_only"],
            "wrapper: + slot[0], try": ns["slot_try"],
            "wrapper: + hits += 1 (= dispatcher)": ns["slot_try_hits"],
            "old *args/**kwargs wrapper (pre-9646e3a)": ns["old_varargs"]}


def _reuse_names(entry):
    """The generated fn with its locals renamed so dead values free their slot.

    A linear scan over the straight-line body: a name whose last use is the
    current statement gives its slot back before the statement's target takes
    one.  Models an emitter that reuses names (or ``del``s dead temporaries),
    which keeps few floats alive and the frame small.
    """
    import ast

    tree = ast.parse(entry.source)
    fdef = tree.body[0]
    params = {a.arg for a in fdef.args.args}
    if not all(isinstance(st, (ast.Assign, ast.If, ast.Return, ast.Expr)) for st in fdef.body):
        raise RuntimeError("generated body is not straight-line")

    def loads(node):
        return [n for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]

    targets = {st.targets[0].id for st in fdef.body
               if isinstance(st, ast.Assign) and isinstance(st.targets[0], ast.Name)}
    last = {}
    for i, st in enumerate(fdef.body):
        for n in loads(st):
            last[n.id] = i
    rename, free, count = {}, [], 0
    for i, st in enumerate(fdef.body):
        used = {n.id for n in loads(st)}
        for n in loads(st):
            n.id = rename.get(n.id, n.id)
        for name in used & targets:
            if last[name] == i:
                free.append(rename[name])
        if isinstance(st, ast.Assign):
            target = st.targets[0]
            if not free:
                count += 1
                free.append(f"_r{count}")
            rename[target.id] = target.id = free.pop()
    assert not params & set(rename.values())
    namespace = dict(entry.fn.__globals__)
    exec(compile(ast.unparse(tree), "<bench reuse>", "exec"), namespace)
    return namespace[entry.fn.__name__], count, len(targets)


def breakdown_steady(fun, args, wrt, repeat, target_s, ladder=True) -> dict:
    from ad_transform.runtime import PathMiss
    g = gradient(fun, wrt=wrt)
    g(*args)
    cache, entry = _current_entry(g, fun)
    gen = entry.fn
    no_guard = _recompile(entry, _strip_guards(entry.source), "no guard")
    prebound, _ = _prebind_module_attrs(entry, entry.source)
    reused, slots, names = _reuse_names(entry)
    cases = {"primal": (fun, args),
             "generated fn, no guard": (no_guard, args),
             "generated fn, math.* prebound": (prebound, args),
             f"generated fn, names reused ({slots} for {names})": (reused, args),
             "generated fn (cache entry)": (gen, args)}
    if ladder:
        for name, w in wrapper_ladder(gen, len(args), PathMiss).items():
            cases[name] = (w, args)
    cases["api wrapper: gradient(...)(x, y)"] = (g, args)
    names_ = list(inspect.signature(fun).parameters)
    cases["api wrapper, keyword call"] = (g, (), dict(zip(names_, args)))
    want = tuple(float(v) for v in gen(*args))
    for name, case in cases.items():
        fn, a, kw = (case + ({},))[:3]
        if name != "primal" and not _close(fn(*a, **kw), want, rel=1e-12):
            raise RuntimeError(f"breakdown variant {name!r} disagrees with the generated fn")
    return measure_round_robin(cases, repeat, target_s)


def breakdown_first_call(fresh: FreshModules, fn, args, wrt, repeat) -> dict:
    """Where a cold gradient's first call goes, stage by stage (replicates api._build).

    CPU milliseconds (process_time), median per stage over fresh functions.
    """
    from ad_transform import api, compile as adcompile, source as adsource

    import gast

    stages = {k: [] for k in ("gradient(f) (dispatcher)", "get_source (parse)", "lower (+trace)",
                              "reverse + prune + verify", "emit (gast)", "to_source",
                              "compile+exec", "total")}
    g2a = []
    for _ in range(repeat):
        f = fresh.load(fn)
        gc.collect()
        t0 = time.process_time()
        gradient(f, wrt=wrt)  # only to time construction; its cache stays cold
        t1 = time.process_time()
        adsource.get_source(f)
        t2 = time.process_time()
        prog, values = api.lower(f, args, tuple(wrt), 500_000)
        api._check_output(prog, values)
        t3 = time.process_time()
        full, values = api.reverse(prog, values, tuple(wrt), False, False)
        full = api.prune(full, values)
        api.ir.verify(full)
        t4 = time.process_time()
        emitted = api.emit(full, values, f"{f.__name__}_grad")
        t5 = time.process_time()
        src = adcompile.to_source(emitted)
        t6 = time.process_time()
        code = compile(src, "<bench>", "exec")
        ns = dict(emitted.namespace)
        exec(code, ns)
        t7 = time.process_time()
        for key, (a, b) in zip(stages, [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5),
                                         (t5, t6), (t6, t7), (t0, t7)]):
            stages[key].append((b - a) * 1e3)
        t8 = time.process_time()  # the part of to_source that converts gast -> ast
        gast.gast_to_ast(gast.Module(body=[emitted.fdef], type_ignores=[]))
        g2a.append((time.process_time() - t8) * 1e3)
    out = {k: statistics.median(v) for k, v in stages.items()}
    out["  (to_source's gast_to_ast, separately)"] = statistics.median(g2a)
    return out


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


def steady_state(repeat, target_s, notes) -> list:
    rows = []
    specs = [("seed", seed, SEED_ARGS, seed_grad_hand, SEED_RATIO_TARGET),
             ("recurrence100", recurrence, REC_ARGS, recurrence_grad_hand, REC_RATIO_TARGET)]
    for label, fun, args, hand, target in specs:
        reference = tuple(hand(*args))
        fd = _finite_difference(fun, args)
        if not _close(fd, reference, rel=1e-5):
            raise RuntimeError(f"{label}: hand-written gradient {reference} disagrees with "
                               f"finite differences {fd}")
        g = gradient(fun, wrt=(0, 1))
        if not _close(g(*args), reference):
            raise RuntimeError(f"{label}: ad_transform gives {g(*args)}, expected {reference}")
        cases = {"primal": (fun, args), "ad_transform": (g, args), "hand-written": (hand, args)}
        peer_primals = {}
        for peer, make in PEERS.items():
            if not _importable(PEER_MODULES[peer]):
                notes.setdefault(peer, "not importable: skipped")
                continue
            try:
                pg, pprimal = make("seed" if label == "seed" else "recurrence")
                if not _close(pg(*args), reference, rel=1e-7):
                    raise RuntimeError(f"gives {pg(*args)}, expected {reference}")
            except Exception as exc:  # a peer must never break the run
                notes[peer] = f"skipped ({type(exc).__name__}: {exc})"
                continue
            cases[peer] = (pg, args)
            if pprimal is not None:
                cases[f"{peer} primal"] = (pprimal, args)
                peer_primals[peer] = f"{peer} primal"
        stats = measure_round_robin(cases, repeat, target_s)
        p, h = stats["primal"], stats["hand-written"]
        for method in [m for m in cases if m != "primal" and not m.endswith(" primal")]:
            s = stats[method]
            row = {"function": label, "method": method,
                   "primal_ns": p["min_ns"], "gradient_ns": s["min_ns"],
                   "ratio": s["min_ns"] / p["min_ns"],
                   "ratio_median": s["median_ns"] / p["median_ns"],
                   "vs_hand": s["min_ns"] / h["min_ns"],
                   "gradient_median_ns": s["median_ns"], "primal_median_ns": p["median_ns"],
                   "loops": s["loops"], "repeat": s["repeat"],
                   "target": f"<= {target:g}x" if method == "ad_transform" else None}
            if method in peer_primals:
                row["own_primal_ns"] = stats[peer_primals[method]]["min_ns"]
            row["pass"] = (row["ratio"] <= target) if method == "ad_transform" else None
            rows.append(row)
    return rows


def _fmt_ns(ns):
    return f"{ns:,.0f}" if ns >= 100 else f"{ns:.1f}"


def print_steady(rows, overhead):
    print(f"\nSteady state: ns per call, min over repeats (timeit loop overhead "
          f"{overhead:.1f} ns/call, included everywhere)")
    head = (f"{'function':<14} {'method':<16} {'primal ns':>10} {'gradient ns':>12} "
            f"{'ratio':>9} {'vs hand':>8} {'target':>8} {'result':>6}")
    print(head)
    print("-" * len(head))
    for r in rows:
        res = "" if r["pass"] is None else ("PASS" if r["pass"] else "FAIL")
        print(f"{r['function']:<14} {r['method']:<16} {_fmt_ns(r['primal_ns']):>10} "
              f"{_fmt_ns(r['gradient_ns']):>12} {r['ratio']:>8.2f}x "
              f"{r['vs_hand']:>7.2f}x {r['target'] or '-':>8} {res:>6}")
    spread = max(max(r["gradient_median_ns"] / r["gradient_ns"],
                     r["primal_median_ns"] / r["primal_ns"]) for r in rows)
    print(f"  noise: the worst median/min spread of a timed case was {100 * (spread - 1):.0f}% "
          f"(the min is what the ratios use; a large spread means a busy machine)")
    for r in rows:
        if "own_primal_ns" in r:
            print(f"  note: {r['method']} on {r['function']}: its own primal (its numpy on "
                  f"floats) takes {_fmt_ns(r['own_primal_ns'])} ns; ratios above use the "
                  f"plain-math primal")


def print_first(rows):
    print("\nFirst call: gradient(f, wrt=(0, 1)) + first call on a fresh function "
          "(new module per repeat), ms;\n  wall = perf_counter, cpu = process_time "
          "(immune to other processes); target judged on the cpu median")
    head = (f"{'function':<14} {'where':<16} {'wall med':>8} {'cpu med':>8} {'wall min':>8} "
            f"{'wall max':>8} {'1st':>8} {'n':>3} {'target':>8} {'result':>6}")
    print(head)
    print("-" * len(head))
    for r in rows:
        res = "" if r["pass"] is None else ("PASS" if r["pass"] else "FAIL")
        cells = [f"{r[k]:>8.2f}" if r.get(k) is not None else f"{'-':>8}"
                 for k in ("median_ms", "cpu_median_ms", "min_ms", "max_ms", "first_ms")]
        print(f"{r['function']:<14} {r['where']:<16} {' '.join(cells)} {r['repeat']:>3} "
              f"{r['target'] or '-':>8} {res:>6}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", nargs="?", const=DEFAULT_JSON, metavar="PATH",
                    help=f"also write the results as JSON (default path {DEFAULT_JSON})")
    ap.add_argument("--repeat", type=int, default=60,
                    help="timing repeats per case, interleaved (default 60)")
    ap.add_argument("--target-ms", type=float, default=2.0,
                    help="duration of one timing repeat in ms (default 2)")
    ap.add_argument("--first-repeat", type=int, default=21,
                    help="fresh functions timed for the seed first call (default 21; "
                         "the recurrence uses a third of it)")
    ap.add_argument("--no-subprocess", action="store_true",
                    help="skip the first call in a brand-new interpreter")
    ap.add_argument("--breakdown", action="store_true",
                    help="also break down where the seed gradient's time goes")
    ap.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    opts = ap.parse_args(argv)
    target_s = opts.target_ms / 1e3
    started = time.perf_counter()
    notes: dict = {}
    fresh = FreshModules()
    try:
        # First calls run first, so the first repeat is the first build in the process.
        first = []
        for label, fn, args, n, target in (
                ("seed", seed, SEED_ARGS, opts.first_repeat, SEED_FIRST_CALL_MS),
                ("recurrence100", recurrence, REC_ARGS, max(3, opts.first_repeat // 3), None)):
            r = first_call_in_process(fresh, fn, args, n)
            r.update(function=label, where="in process",
                     target=f"< {target:g} ms" if target else None,
                     **{"pass": (r["cpu_median_ms"] < target) if target else None})
            first.append(r)
        if not opts.no_subprocess:
            for label, fn, args, n in (("seed", seed, SEED_ARGS, 3),
                                       ("recurrence100", recurrence, REC_ARGS, 1)):
                try:
                    c = first_call_cold_process(fresh, fn, args, n)
                except Exception as exc:
                    notes[f"cold process {label}"] = f"skipped ({type(exc).__name__}: {exc})"
                    continue
                first.append({"function": label, "where": "new interpreter",
                              "median_ms": c["first_call_ms_median"],
                              "cpu_median_ms": c["first_call_cpu_ms_median"],
                              "min_ms": min(c["first_call_ms_all"]),
                              "max_ms": max(c["first_call_ms_all"]),
                              "all_ms": c["first_call_ms_all"], "repeat": n,
                              "import_ad_transform_ms": c["import_ms_median"],
                              "target": None, "pass": None})

        overhead = loop_overhead_ns(5)
        steady = steady_state(opts.repeat, target_s, notes)

        breakdown = None
        if opts.breakdown:
            breakdown = {}
            try:
                breakdown["seed_steady"] = breakdown_steady(seed, SEED_ARGS, (0, 1),
                                                            opts.repeat, target_s)
                breakdown["recurrence_steady"] = breakdown_steady(
                    recurrence, REC_ARGS, (0, 1), opts.repeat, target_s, ladder=False)
            except Exception as exc:
                notes["breakdown (steady)"] = f"unavailable ({type(exc).__name__}: {exc})"
            try:
                breakdown["seed_first_call_ms"] = breakdown_first_call(
                    fresh, seed, SEED_ARGS, (0, 1), opts.first_repeat)
                breakdown["recurrence_first_call_ms"] = breakdown_first_call(
                    fresh, recurrence, REC_ARGS, (0, 1), max(3, opts.first_repeat // 3))
            except Exception as exc:
                notes["breakdown (first call)"] = f"unavailable ({type(exc).__name__}: {exc})"
    finally:
        fresh.close()

    print(f"ad_transform {ad_transform.__version__}, Python {platform.python_version()} "
          f"({platform.python_implementation()}), {platform.machine()}, {platform.system()}")
    print_steady(steady, overhead)
    print_first(first)
    for r in first:
        if "import_ad_transform_ms" in r:
            print(f"  note: in a new interpreter, 'import ad_transform' took "
                  f"{r['import_ad_transform_ms']:.1f} ms (not included above)")
            break
    if breakdown:
        for key in ("seed_steady", "recurrence_steady"):
            if key not in breakdown:
                continue
            st = breakdown[key]
            gen = st["generated fn (cache entry)"]["min_ns"]
            print(f"\nBreakdown, {key.replace('_', ' ')} (min ns per call; delta vs the "
                  f"generated fn called directly)")
            for name, s in st.items():
                print(f"  {name:<42} {_fmt_ns(s['min_ns']):>10}   {s['min_ns'] - gen:>+9.1f}")
        for key in ("seed_first_call_ms", "recurrence_first_call_ms"):
            if key in breakdown:
                print(f"\nFirst-call stages, {key.rsplit('_first', 1)[0]} (median CPU ms)")
                for name, ms in breakdown[key].items():
                    print(f"  {name:<28} {ms:>8.3f}")
    for k, v in notes.items():
        print(f"  note: {k}: {v}")
    elapsed = time.perf_counter() - started
    targets = [r["pass"] for r in steady + first if r["pass"] is not None]
    all_pass = all(targets)
    print(f"\n{'ALL TARGETS MET' if all_pass else 'SOME TARGETS MISSED'} "
          f"({sum(targets)}/{len(targets)}); run took {elapsed:.1f} s")

    if opts.json:
        doc = {"ad_transform_version": ad_transform.__version__,
               "python": platform.python_version(),
               "implementation": platform.python_implementation(),
               "machine": platform.machine(), "system": platform.system(),
               "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "config": {"repeat": opts.repeat, "target_ms": opts.target_ms,
                          "first_repeat": opts.first_repeat, "seed_args": SEED_ARGS,
                          "recurrence_args": REC_ARGS, "statistic": "min over repeats"},
               "loop_overhead_ns": overhead, "steady_state": steady, "first_call": first,
               "breakdown": breakdown, "notes": notes, "all_pass": all_pass,
               "elapsed_s": elapsed}
        with open(opts.json, "w") as fh:
            json.dump(doc, fh, indent=2)
            fh.write("\n")
        print(f"wrote {opts.json}")
    return 1 if (opts.strict and not all_pass) else 0


if __name__ == "__main__":
    sys.exit(main())
