"""Expected-output tests of the IR, the generated source and the pipeline dump.

Locations in the expected texts are computed (file base name from ``__file__``,
line numbers from ``inspect.getsourcelines``), never written by hand.
"""
import inspect
import math
import os
import subprocess
import sys
import textwrap

import pytest

from ad_transform import gradient, ir, lower, reverse, value_and_gradient
from ad_transform.ir import Const, Eqn, Program, Var
from ad_transform.rules import builtins as B
from ad_transform.testing import numerical_gradient

BASE = os.path.basename(__file__)


def f(x1, x2):
    return math.log(x1) + x1 * math.sin(x2)


def _lines(fn):
    """(line of the ``def``, line after it) of ``fn`` in this file."""
    start = inspect.getsourcelines(fn)[1]
    return start, start + 1


def _close(a, b):
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7)


# -- (a) the generated source ---------------------------------------------------------

def test_gradient_source_text():
    d, r = _lines(f)
    g = gradient(f, wrt=(0, 1))
    expected = f"""\
def f_grad(x1, x2):
    # {BASE}:{d}: def f(x1, x2):
    if type(x1) is not float or type(x2) is not float:
        raise _rt.PathMiss(0, _rt.signatures(x1, x2))
    # {BASE}:{r}: return math.log(x1) + x1 * math.sin(x2)
    log = math.log(x1)
    sin = math.sin(x2)
    # adjoint of {BASE}:{r}: return math.log(x1) + x1 * math.sin(x2)
    cos = math.cos(x2)
    d_x2 = x1 * cos
    div = 1.0 / x1
    d_x1 = sin + div
    return (d_x1, d_x2)
"""
    assert g.source(2.0, 1.0) == expected
    gx, gy = g(2.0, 1.0)
    assert _close(gx, numerical_gradient(f, (2.0, 1.0), 0))
    assert _close(gy, numerical_gradient(f, (2.0, 1.0), 1))


def test_value_and_gradient_source_text():
    d, r = _lines(f)
    vg = value_and_gradient(f, wrt=(0, 1))
    expected = f"""\
def f_value_and_grad(x1, x2):
    # {BASE}:{d}: def f(x1, x2):
    if type(x1) is not float or type(x2) is not float:
        raise _rt.PathMiss(0, _rt.signatures(x1, x2))
    # {BASE}:{r}: return math.log(x1) + x1 * math.sin(x2)
    log = math.log(x1)
    sin = math.sin(x2)
    mul = x1 * sin
    add = log + mul
    # adjoint of {BASE}:{r}: return math.log(x1) + x1 * math.sin(x2)
    cos = math.cos(x2)
    d_x2 = x1 * cos
    div = 1.0 / x1
    d_x1 = sin + div
    return (add, (d_x1, d_x2))
"""
    assert vg.source(2.0, 1.0) == expected
    value, (gx, gy) = vg(2.0, 1.0)
    assert value == f(2.0, 1.0)
    assert _close(gx, numerical_gradient(f, (2.0, 1.0), 0))
    assert _close(gy, numerical_gradient(f, (2.0, 1.0), 1))


def test_generated_source_is_what_runs():
    """The printed source, executed on its own namespace, gives the same gradient."""
    g = gradient(f, wrt=(0, 1))
    src = g.source(2.0, 1.0)
    from ad_transform import runtime
    namespace = {"math": math, "_rt": runtime, "type": type, "float": float}
    exec(src, namespace)
    got = namespace["f_grad"](2.0, 1.0)
    assert got == g(2.0, 1.0)
    assert _close(got[0], numerical_gradient(f, (2.0, 1.0), 0))


# -- (b) the printed IR -----------------------------------------------------------------

def test_format_program_text():
    d, r = _lines(f)
    prog, _ = lower.lower(f, (2.0, 1.0), (0, 1))
    expected = f"""\
program f(x1:float, x2:float):
  guard_types(x1, x2, expect=(<class 'float'>, <class 'float'>), index=0)    # {BASE}:{d}
  log:float = math.log(x1)    # {BASE}:{r}
  sin:float = math.sin(x2)    # {BASE}:{r}
  mul:float = mul(x1, sin)    # {BASE}:{r}
  add:float = add(log, mul)    # {BASE}:{r}
  return add"""
    assert ir.format_program(prog) == expected
    assert str(prog) == expected


# -- (c) the SSA checker ----------------------------------------------------------------

def _reversed(fn, args, wrt, with_value=False):
    full, values = reverse.reverse(*lower.lower(fn, args, wrt), wrt, False, with_value)
    return reverse.prune(full, values)


def test_verify_accepts_lowered_and_reversed_programs():
    for fn, args, wrt in CASES:
        ir.verify(lower.lower(fn, args, wrt)[0])
        ir.verify(reverse.reverse(*lower.lower(fn, args, wrt), wrt, False, True)[0])
        ir.verify(_reversed(fn, args, wrt))


def _two_var_program():
    x, y, t = Var("x", "float"), Var("y", "float"), Var("t", "float")
    return x, y, t


def test_verify_rejects_use_before_definition():
    x, y, t = _two_var_program()
    broken = Program("broken", (x,), [Eqn(B.mul, (x, y), t, None)], (t,))
    with pytest.raises(AssertionError, match="y used before it is defined"):
        ir.verify(broken)
    # a real program with two equations swapped
    prog, _ = lower.lower(f, (2.0, 1.0), (0, 1))
    eqns = list(prog.eqns)
    i = next(k for k, e in enumerate(eqns) if e.out is not None and e.out.name == "mul")
    eqns[i - 1], eqns[i] = eqns[i], eqns[i - 1]  # mul before the sin it reads
    with pytest.raises(AssertionError, match="sin used before it is defined"):
        ir.verify(Program(prog.name, prog.inputs, eqns, prog.outputs))


def test_verify_rejects_a_variable_defined_twice():
    x, y, t = _two_var_program()
    eqns = [Eqn(B.add, (x, Const(1.0)), t, None), Eqn(B.mul, (t, x), t, None)]
    with pytest.raises(AssertionError, match="t defined twice"):
        ir.verify(Program("broken", (x,), eqns, (t,)))
    prog, _ = lower.lower(f, (2.0, 1.0), (0, 1))
    eqns = list(prog.eqns)
    eqns.insert(2, eqns[1])  # the same equation twice
    with pytest.raises(AssertionError, match="defined twice"):
        ir.verify(Program(prog.name, prog.inputs, eqns, prog.outputs))


def test_verify_rejects_other_violations():
    x, y, t = _two_var_program()
    with pytest.raises(AssertionError, match="never defined"):
        ir.verify(Program("broken", (x,), [], (t,)))
    with pytest.raises(AssertionError, match="input is listed twice"):
        ir.verify(Program("broken", (x, x), [], (x,)))
    twin = Var("x", "float")
    with pytest.raises(AssertionError, match="share a name"):
        ir.verify(Program("broken", (x,), [Eqn(B.neg, (x,), twin, None)], (twin,)))
    with pytest.raises(AssertionError, match="not an atom"):
        ir.verify(Program("broken", (x,), [Eqn(B.neg, (1.0,), t, None)], (t,)))



def test_outputs_are_flat_with_one_structure():
    """A program returns flat atoms, nested as its ``out_tree`` says."""
    full = _reversed(f, (2.0, 1.0), (0, 1), with_value=True)
    assert len(full.outputs) == 3
    assert all(isinstance(x, (Var, Const)) for x in full.outputs)
    assert str(full).endswith("return (add, (d_x1, d_x2))")
    value, grads = ir.evaluate(full, 2.0, 1.0)
    assert value == f(2.0, 1.0)
    for i, g in enumerate(grads):
        assert _close(g, numerical_gradient(f, (2.0, 1.0), i))
    x, y, t = _two_var_program()
    with pytest.raises(AssertionError, match="out_tree"):
        ir.verify(Program("broken", (x,), [], (x, x)))  # two outputs, a one-output structure

# -- (d) interpreting the IR --------------------------------------------------------------

SCALE = 1.5


def _helper(a, b=2.0):
    return a * b + math.sin(a)


def _rec(x, n):
    return x if n == 0 else x * _rec(x, n - 1)


def c_product(x, y):
    return x * y + y


def c_branches(x, y):
    if x > y:
        return x - y
    elif x < 0:
        return x * y
    else:
        return y ** 2


def c_for(x, y):
    s = 0.0
    for i in range(4):
        s = s + x ** i * y
    return s


def c_while(x, y):
    while x < 10.0:
        x = x * y
    return x


def c_helpers(x, y):
    return _helper(x) + _helper(y, b=x)


def c_closure(x, y):
    def inner(z):
        return z * x
    return inner(y) + (lambda t: t * t)(x)


def c_minmax(x, y):
    return max(x, y) + min(x, y, 0.5) + abs(x - y)


def c_listcomp(x, y):
    return sum([x * i for i in range(4)]) + y


def c_lists(x, y):
    v = [x, y, x * y]
    v[1] = v[1] * 2.0
    a, b, c = v
    return a + b * c


def c_global(x, y):
    return SCALE * x * y


def c_boolops(x, y):
    return x if x > 0 and y > 0 else -y


def c_dict(x, y):
    d = {"a": x, "b": y}
    return d["a"] * d["b"]


def c_math(x, y):
    return math.exp(x) / (1.0 + math.exp(y)) - math.atan2(y, x)


def c_loop_branch(x, y):
    acc = x
    for _ in range(3):
        if acc > 1.0:
            acc = acc / y
        else:
            acc = acc * y
    return acc


def c_misc(x, y):
    return math.hypot(x, y) + (x % 1.3) + x // 1.0 + float(y)


def c_recursion(x, y):
    return _rec(x, 3) + y


def c_augassign(x, y):
    t = x
    t *= y
    t += 2.0
    t -= x / y
    return t ** 0.5


CASES = [
    (c_product, (2.0, 3.0), (0, 1)),
    (c_branches, (2.0, 1.0), (0, 1)),
    (c_branches, (-1.0, 2.0), (0, 1)),
    (c_branches, (0.5, 2.0), (0, 1)),
    (c_for, (1.5, 0.5), (0, 1)),
    (c_while, (1.5, 2.0), (0, 1)),
    (c_helpers, (0.7, 1.3), (0, 1)),
    (c_closure, (0.7, 1.3), (0, 1)),
    (c_minmax, (0.7, 0.3), (0, 1)),
    (c_listcomp, (0.7, 1.3), (0,)),
    (c_lists, (0.7, 1.3), (0, 1)),
    (c_global, (0.7, 1.3), (1,)),
    (c_boolops, (0.7, 1.3), (0, 1)),
    (c_boolops, (-0.7, 1.3), (0, 1)),
    (c_dict, (0.7, 1.3), (0, 1)),
    (c_math, (0.7, 1.3), (0, 1)),
    (c_loop_branch, (0.7, 1.3), (0, 1)),
    (c_misc, (0.7, 1.3), (0, 1)),
    (c_recursion, (0.7, 1.3), (0, 1)),
    (c_augassign, (0.7, 1.3), (0, 1)),
]
IDS = [f"{fn.__name__}{args}" for fn, args, _ in CASES]


@pytest.mark.parametrize("fn, args, wrt", CASES, ids=IDS)
def test_evaluate_matches_the_function(fn, args, wrt):
    prog, _ = lower.lower(fn, args, wrt)
    assert ir.evaluate(prog, *args) == fn(*args)


@pytest.mark.parametrize("fn, args, wrt", CASES, ids=IDS)
def test_evaluate_reversed_matches_compiled_and_finite_differences(fn, args, wrt):
    interpreted = ir.evaluate(_reversed(fn, args, wrt), *args)
    compiled = gradient(fn, wrt)(*args)
    assert interpreted == compiled
    assert len(compiled) == len(wrt)
    for i, g in zip(wrt, compiled):
        assert _close(g, numerical_gradient(fn, args, i)), (fn.__name__, i)
    value, grads = ir.evaluate(_reversed(fn, args, wrt, with_value=True), *args)
    assert value == fn(*args) and grads == compiled


@pytest.mark.parametrize("fn, args, wrt", CASES, ids=IDS)
def test_evaluate_on_nearby_inputs_of_the_same_path(fn, args, wrt):
    """The program is a function of its inputs, not a record of one evaluation."""
    prog, _ = lower.lower(fn, args, wrt)
    rev = _reversed(fn, args, wrt)
    nearby = tuple(a * (1.0 + 1e-3) if isinstance(a, float) else a for a in args)
    assert math.isclose(ir.evaluate(prog, *nearby), fn(*nearby), rel_tol=1e-12)
    for i, g in zip(wrt, ir.evaluate(rev, *nearby)):
        assert _close(g, numerical_gradient(fn, nearby, i))


@pytest.mark.parametrize("fn, args, other", [
    (c_branches, (2.0, 1.0), (-1.0, 2.0)),      # another branch
    (c_branches, (2.0, 1.0), (2, 1)),            # other argument types
    (c_boolops, (0.7, 1.3), (0.7, -1.3)),       # the second operand of 'and' decides
    (c_while, (1.5, 2.0), (0.5, 2.0)),          # another trip count
    (c_loop_branch, (0.7, 1.3), (0.7, 3.0)),    # another branch on a later iteration
    (c_product, (2.0, 3.0), (2.0, 3)),
])
def test_evaluate_raises_guard_failed_on_another_path(fn, args, other):
    prog, _ = lower.lower(fn, args, (0, 1))
    with pytest.raises(ir.GuardFailed, match="guard_"):
        ir.evaluate(prog, *other)
    with pytest.raises(ir.GuardFailed):
        ir.evaluate(_reversed(fn, args, (0, 1)), *other)


def test_evaluate_reads_globals_at_run_time(monkeypatch):
    prog, _ = lower.lower(c_global, (0.7, 1.3), (1,))
    monkeypatch.setattr(sys.modules[__name__], "SCALE", -4.0)
    assert ir.evaluate(prog, 0.7, 1.3) == c_global(0.7, 1.3)


# -- (e) determinism ------------------------------------------------------------------------

@pytest.mark.parametrize("fn, args, wrt", CASES[:8], ids=IDS[:8])
def test_lowering_is_deterministic(fn, args, wrt):
    assert ir.format_program(lower.lower(fn, args, wrt)[0]) == ir.format_program(
        lower.lower(fn, args, wrt)[0])
    assert ir.format_program(_reversed(fn, args, wrt)) == ir.format_program(
        _reversed(fn, args, wrt))
    g = gradient(fn, wrt)
    g.cache_clear()
    first = g.source(*args)
    g.cache_clear()
    assert g.source(*args) == first


def test_generated_source_does_not_depend_on_hash_seed(tmp_path):
    module = tmp_path / "seeded.py"
    module.write_text(textwrap.dedent("""\
        import math

        def target(x, y, z):
            d = {"b": y, "a": x, "c": z}
            s = 0.0
            for k in ("c", "a", "b"):
                s = s + d[k] * math.sin(d[k])
            return s * max(x, y) + min(y, z) ** 2
        """))
    script = ("import sys; sys.path.insert(0, sys.argv[1]); import seeded, ad_transform; "
              "print(ad_transform.value_and_gradient(seeded.target, wrt=(0, 1, 2))"
              ".source(0.3, 0.7, 1.1))")
    outputs = []
    for seed in ("1", "2", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        env.pop("AD_TRANSFORM_DUMP", None)
        done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env,
                              capture_output=True, text=True, timeout=60, check=True)
        outputs.append(done.stdout)
    assert outputs[0] and outputs[0] == outputs[1] == outputs[2]


# -- (f) AD_TRANSFORM_DUMP ------------------------------------------------------------------

def dumped(x1, x2):
    return x1 * math.cos(x2) - x2


def test_dump_prints_every_stage(monkeypatch, capsys):
    monkeypatch.setenv("AD_TRANSFORM_DUMP", "1")
    g = gradient(dumped, wrt=(0, 1))
    g.cache_clear()
    gx, gy = g(0.5, 0.25)
    err = capsys.readouterr().err
    stages = ["--- ad_transform: lowered SSA (primal) ---",
              "--- ad_transform: after reverse and prune ---",
              "--- ad_transform: generated source ("]
    positions = [err.find(s) for s in stages]
    assert all(p >= 0 for p in positions), err
    assert positions == sorted(positions)
    monkeypatch.delenv("AD_TRANSFORM_DUMP")
    assert ir.format_program(lower.lower(dumped, (0.5, 0.25), (0, 1))[0]) in err
    assert g.source(0.5, 0.25) in err
    assert "d_x2" in err and "program dumped(x1:float, x2:float):" in err
    assert _close(gx, numerical_gradient(dumped, (0.5, 0.25), 0))
    assert _close(gy, numerical_gradient(dumped, (0.5, 0.25), 1))
    # a cache hit runs no pipeline, so prints nothing
    monkeypatch.setenv("AD_TRANSFORM_DUMP", "1")
    g(0.6, 0.35)
    assert capsys.readouterr().err == ""


def test_no_dump_without_the_variable(monkeypatch, capsys):
    monkeypatch.delenv("AD_TRANSFORM_DUMP", raising=False)
    g = gradient(dumped, wrt=(0, 1))
    g.cache_clear()
    g(0.5, 0.25)
    assert capsys.readouterr().err == ""


def test_the_printing_form_is_read_for_printing_only():
    """Passes read what a primitive means from its fields (``kind``, ``op``, the flags),
    set once by ``rules.core.defprim``; ``form`` is read by the printers only."""
    import ast
    import pathlib

    import ad_transform
    root = pathlib.Path(ad_transform.__file__).parent
    printers = {("emit.py", "expr"), ("reverse.py", "_describe"), ("rules/core.py", "defprim")}
    readers = set()
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if any(isinstance(n, ast.Attribute) and n.attr == "form" for n in ast.walk(fn)):
                    readers.add((rel, fn.name))
    assert readers and readers <= printers, readers - printers
