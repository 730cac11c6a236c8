"""The examples run, reach what they claim, and their loss gradients are right.

Each example is run as a script in a subprocess (``sys.executable``), writing its
figures to a temporary directory; its loss functions are then loaded with
``runpy.run_path`` (the examples only train under ``if __name__ == "__main__"``)
and differentiated here, against central finite differences.
"""
import math
import os
import re
import runpy
import subprocess
import sys

import numpy as np
import pytest

from ad_transform import gradient, value_and_gradient
from ad_transform.testing import check_gradient, numerical_gradient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
LINREG = os.path.join(EXAMPLES, "linear_regression.py")
PROJECTILE = os.path.join(EXAMPLES, "projectile.py")
SCIPY_OPTIMIZE = os.path.join(EXAMPLES, "scipy_optimize.py")


def run_example(path, *args):
    proc = subprocess.run([sys.executable, path, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "MPLBACKEND": "Agg"})
    assert proc.returncode == 0, (f"{os.path.basename(path)} exited with {proc.returncode}\n"
                                  f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")
    return proc.stdout


def number(output, name):
    """The value printed on the line ``<name> = <number>``."""
    found = re.findall(rf"^{re.escape(name)} = ([-+0-9.eE]+)", output, re.M)
    assert found, f"no line '{name} = ...' in the output:\n{output}"
    return float(found[-1])


# -- the scripts ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def linreg_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("linreg")
    return out, run_example(LINREG, "--out", str(out))


@pytest.fixture(scope="module")
def projectile_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("projectile")
    return out, run_example(PROJECTILE, "--out", str(out))


def test_linear_regression_writes_its_figures(linreg_run):
    out, _ = linreg_run
    for name in ("linreg_fit.png", "linreg_loss.png", "linreg_path.png"):
        path = out / name
        assert path.is_file(), f"{name} was not written"
        with open(path, "rb") as f:
            head = f.read(8)
        assert head == b"\x89PNG\r\n\x1a\n", f"{name} is not a PNG"
        assert path.stat().st_size > 5000, f"{name} is suspiciously small"


def test_linear_regression_converges_to_one_one(linreg_run):
    _, output = linreg_run
    w0, w1 = number(output, "final w0"), number(output, "final w1")
    assert abs(w0 - 1.0) < 0.1 and abs(w1 - 1.0) < 0.1, (w0, w1)
    # the noise has standard deviation 0.05, so the fitted loss is about 0.05**2
    assert 0.0 < number(output, "final loss") < 0.01


def test_linear_regression_prints_the_generated_derivative(linreg_run):
    _, output = linreg_run
    assert "def loss_value_and_grad(w, X, y):" in output
    assert "return" in output.split("def loss_value_and_grad", 1)[1]


def test_projectile_hits_the_target(projectile_run):
    out, output = projectile_run
    distance, target = number(output, "final distance"), number(output, "target")
    assert abs(distance - target) < 0.01, (distance, target)
    assert "cache_info: CacheInfo(" in output
    assert "one compiled path" in " ".join(output.split())
    assert (out / "projectile.png").stat().st_size > 5000


def test_projectile_compiles_one_path_for_all_trip_counts(projectile_run):
    _, output = projectile_run
    info = re.findall(r"^cache_info: CacheInfo\(hits=(\d+), misses=(\d+)", output, re.M)
    hits, misses = map(int, info[-1])
    distinct = int(re.search(r"distinct trip counts visited: (\d+)", output).group(1))
    assert distinct > 2
    assert misses <= 2  # the while loop is rolled: one path serves every trip count
    assert hits > 0


# -- the loss functions, differentiated here ---------------------------------------------

@pytest.fixture(scope="module")
def linreg():
    return runpy.run_path(LINREG, run_name="linreg_example")


@pytest.fixture(scope="module")
def projectile():
    return runpy.run_path(PROJECTILE, run_name="projectile_example")


@pytest.mark.parametrize("w", [(0.0, 0.0), (1.3, -0.4), (0.98, 1.03)])
def test_linear_regression_loss_gradient(linreg, w):
    X, y = linreg["make_data"](0)
    w = np.array(w)
    g = check_gradient(linreg["loss"], w, X, y, wrt=0)
    # and the closed form: d/dw mean((w0 + w1 X - y)^2) = 2 mean(r), 2 mean(r X)
    r = w[0] + w[1] * X - y
    np.testing.assert_allclose(g, [2 * r.mean(), 2 * (r * X).mean()], rtol=1e-12, atol=1e-14)


def test_linear_regression_gradient_wrt_data(linreg):
    X, y = linreg["make_data"](3)
    w = np.array([0.5, 2.0])
    check_gradient(linreg["loss"], w, X, y, wrt=(1, 2))


def test_linear_regression_fit_matches_least_squares(linreg):
    X, y = linreg["make_data"](1)
    w, losses, _, _ = linreg["fit"](X, y)
    np.testing.assert_allclose(w, linreg["least_squares"](X, y), atol=1e-5)
    assert np.all(np.diff(losses) <= 1e-15), "gradient descent increased the loss"


@pytest.mark.parametrize("angle, speed", [(30.0, 15.0), (45.0, 20.0), (65.0, 29.0)])
def test_projectile_loss_gradient(projectile, angle, speed):
    loss, target = projectile["loss"], projectile["TARGET"]
    check_gradient(loss, angle, speed, target, wrt=(0, 1, 2), rtol=1e-5, atol=1e-6)


def test_projectile_distance_gradient_and_trip_counts(projectile):
    """Different trip counts share one path: the while loop is rolled."""
    dist, steps_of = projectile["landing_distance"], projectile["steps_of"]
    g = value_and_gradient(dist, wrt=(0, 1))
    g.cache_clear()
    points = [(40.0, 18.0), (40.0, 18.001), (40.0, 25.0), (40.0, 25.001)]
    assert steps_of(*points[0]) == steps_of(*points[1]) != steps_of(*points[2])
    assert steps_of(*points[2]) == steps_of(*points[3])
    for a, s in points:
        value, (ga, gs) = g(a, s)
        assert math.isclose(value, dist(a, s), rel_tol=1e-12)
        assert math.isclose(ga, numerical_gradient(dist, (a, s), 0), rel_tol=1e-5)
        assert math.isclose(gs, numerical_gradient(dist, (a, s), 1), rel_tol=1e-5)
        assert gs > 0, "a faster throw goes further"
    info = g.cache_info()
    assert (info.misses, info.hits) == (1, 3)


def test_projectile_generated_source_has_one_rolled_loop(projectile):
    """The while loop is rolled, its own test in its header; its adjoint runs the trips back;
    unrolled (unroll=0), the test is checked once per Euler step and once more."""
    dist = projectile["landing_distance"]
    src = gradient(dist, wrt=1).source(30.0, 15.0)
    code = [line.strip() for line in src.splitlines() if not line.strip().startswith("#")]
    loops = [line for line in code if line.startswith(("while ", "for "))]
    assert len(loops) == 2 and loops[0] == "while y > 0:", loops
    assert loops[1].startswith("for ") and "reversed(" in loops[1], loops  # tapes walked back
    assert sum("> 0" in line for line in code) == 1
    src = gradient(dist, wrt=1, unroll=0).source(30.0, 15.0)
    code = [line.strip() for line in src.splitlines() if not line.strip().startswith("#")]
    assert not [line for line in code if line.startswith(("while ", "for "))]
    trips = projectile["steps_of"](30.0, 15.0)
    assert sum("> 0" in line for line in code) == trips + 1


# -- scipy_optimize.py: exact gradient, Hessian and Jacobian beside finite differences ----

def test_scipy_optimize_example_converges_with_fewer_calls():
    out = run_example(SCIPY_OPTIMIZE)
    assert number(out, "rosenbrock error") < 1e-6
    assert number(out, "fit error") < 0.05
    rows = re.findall(r"^(ad_transform|finite differences).*nfev=(\d+).*"
                      r"function calls in all=(\d+)", out, re.M)
    assert [r[0] for r in rows] == ["ad_transform", "finite differences"] * 2, out
    for exact, fd in (rows[:2], rows[2:]):
        assert int(exact[2]) < int(fd[2]), "finite differences call the function more"


def test_scipy_optimize_derivatives_match_finite_differences():
    ns = runpy.run_path(SCIPY_OPTIMIZE)
    rosen, residuals = ns["rosen"], ns["residuals"]
    x = np.linspace(-1.0, 1.5, 10)
    g = gradient(rosen)(x)
    assert np.allclose(g, numerical_gradient(rosen, (x,), 0), rtol=1e-6, atol=1e-6)
    H = ns["hessian"](rosen)(x)
    assert np.allclose(H, np.array([numerical_gradient(lambda x: gradient(rosen)(x)[i], (x,), 0)
                                    for i in range(10)]), rtol=1e-5, atol=1e-4)
    p = np.array([2.0, 1.1, 0.4])
    J = ns["jacobian"](residuals)(p)
    fd = np.array([numerical_gradient(lambda p: residuals(p)[i], (p,), 0) for i in range(J.shape[0])])
    assert np.allclose(J, fd, rtol=1e-6, atol=1e-7)
