"""examples/mlp_digits.py: it trains to >= 95% test accuracy, and its loss's gradient is right."""
import importlib.util
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from ad_transform import gradient, value_and_gradient
from ad_transform.testing import check_gradient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "mlp_digits.py")


def _load_example():
    spec = importlib.util.spec_from_file_location("mlp_digits_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # training is guarded by __main__: this only defines things
    return module


@pytest.fixture(scope="module")
def example():
    return _load_example()


def _tiny_problem(seed=0, n=5, n_in=64, hidden=4, n_out=10):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_in))
    Y = np.eye(n_out)[rng.integers(0, n_out, n)]
    W1 = rng.standard_normal((n_in, hidden)) * 0.3
    b1 = rng.standard_normal(hidden) * 0.1
    W2 = rng.standard_normal((hidden, n_out)) * 0.5
    b2 = rng.standard_normal(n_out) * 0.1
    return W1, b1, W2, b2, X, Y


def test_example_trains_to_95_percent(tmp_path):
    out = tmp_path / "img"
    proc = subprocess.run([sys.executable, EXAMPLE, "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    match = re.search(r"test accuracy:\s*([0-9.]+)", proc.stdout)
    assert match, proc.stdout
    assert float(match.group(1)) >= 0.95, proc.stdout
    png = out / "mlp_digits.png"
    assert png.is_file() and png.stat().st_size > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_loss_gradient_matches_finite_differences(example):
    args = _tiny_problem()
    grads = check_gradient(example.loss, *args, wrt=(0, 1, 2, 3))
    assert len(grads) == 4
    for g, p in zip(grads, args[:4]):
        assert g.shape == p.shape and g.dtype == np.float64


@pytest.mark.parametrize("seed", [1, 2])
def test_loss_gradient_each_parameter_alone(example, seed):
    args = _tiny_problem(seed)
    for i in range(4):
        check_gradient(example.loss, *args, wrt=i)


def test_loss_gradient_matches_hand_written_backprop(example):
    W1, b1, W2, b2, X, Y = _tiny_problem(3)
    value, (dW1, db1, dW2, db2) = value_and_gradient(example.loss, wrt=(0, 1, 2, 3))(
        W1, b1, W2, b2, X, Y)
    h = np.tanh(X @ W1 + b1)
    z = h @ W2 + b2
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    n = X.shape[0]
    assert value == pytest.approx(-np.sum(Y * np.log(p)) / n, rel=1e-12)
    dz = (p - Y) / n
    dpre = (dz @ W2.T) * (1.0 - h * h)
    np.testing.assert_allclose(dW2, h.T @ dz, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(db2, dz.sum(axis=0), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(dW1, X.T @ dpre, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(db1, dpre.sum(axis=0), rtol=1e-10, atol=1e-14)


def test_loss_gradient_with_tied_row_max(example):
    """Rows whose largest logits tie: the max's derivative still cancels."""
    W1, b1, W2, b2, X, Y = _tiny_problem(4)
    W2 = W2.copy()
    b2 = b2.copy()
    W2[:, 1] = W2[:, 0]
    b2[1] = b2[0] = 50.0  # logits 0 and 1 are equal and the largest in every row
    grads = gradient(example.loss, wrt=(0, 1, 2, 3))(W1, b1, W2, b2, X, Y)
    assert all(np.all(np.isfinite(g)) for g in grads)
    check_gradient(example.loss, W1, b1, W2, b2, X, Y, wrt=(0, 1, 2, 3))
