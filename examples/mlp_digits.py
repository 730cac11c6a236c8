"""Train a small neural network on handwritten digits with ad_transform gradients.

Run it from the repository root:

    python3 examples/mlp_digits.py                 # plot goes to docs/img/mlp_digits.png
    python3 examples/mlp_digits.py --out /tmp/img  # plot goes to /tmp/img/mlp_digits.png

The network is 64 pixels -> hidden tanh layer -> 10 logits, trained with
softmax cross-entropy on scikit-learn's bundled 8x8 digits (no download).
Every gradient comes from ``value_and_gradient(loss, wrt=(0, 1, 2, 3))``:
ad_transform reads ``loss`` below, writes its derivative as NumPy code once
per input shape, and the training loop just calls it.  The optimiser is
mini-batch gradient descent with momentum.

``loss`` lives at module level and training is guarded by ``__main__``, so
``from mlp_digits import loss`` works (the tests check its gradient against
finite differences).
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from ad_transform import value_and_gradient


# -- the model ----------------------------------------------------------------------
def loss(W1, b1, W2, b2, X, Y):
    """Mean softmax cross-entropy of the 2-layer tanh network on a batch.

    X is (batch, 64), Y is one-hot (batch, 10).  Subtracting each row's max
    before ``exp`` keeps it from overflowing; the max's own derivative
    cancels exactly (shifting all logits of a row changes nothing), so
    differentiating through it is harmless.
    """
    h = np.tanh(X @ W1 + b1)
    z = h @ W2 + b2
    z = z - np.max(z, axis=1, keepdims=True)
    logp = z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))
    return -np.sum(Y * logp) / X.shape[0]


def predict(W1, b1, W2, b2, X):
    """The predicted class of every row of X (no gradient needed)."""
    return np.argmax(np.tanh(X @ W1 + b1) @ W2 + b2, axis=1)


def init_params(n_in, n_hidden, n_out, rng):
    """Glorot-style random weights and zero biases, in the order ``loss`` takes them."""
    W1 = rng.standard_normal((n_in, n_hidden)) * np.sqrt(1.0 / n_in)
    W2 = rng.standard_normal((n_hidden, n_out)) * np.sqrt(1.0 / n_hidden)
    return [W1, np.zeros(n_hidden), W2, np.zeros(n_out)]


def load_data(seed=0, test_fraction=0.25):
    """Digits, split with a fixed seed and standardised with the training set's statistics."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X, y = digits.data.astype(np.float64), digits.target
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=test_fraction,
                                              random_state=seed, stratify=y)
    mu, sd = X_tr.mean(axis=0), X_tr.std(axis=0)
    sd[sd == 0] = 1.0  # some border pixels are always 0
    return (X_tr - mu) / sd, y_tr, (X_te - mu) / sd, y_te


# -- training -------------------------------------------------------------------------
def train(epochs=30, hidden=64, batch=64, lr=0.05, momentum=0.9, seed=0, log=print):
    X_tr, y_tr, X_te, y_te = load_data(seed)
    Y_tr = np.eye(10)[y_tr]
    rng = np.random.default_rng(seed)
    params = init_params(X_tr.shape[1], hidden, 10, rng)
    velocity = [np.zeros_like(p) for p in params]
    grad = value_and_gradient(loss, wrt=(0, 1, 2, 3))

    history = {"loss": [], "test_acc": []}
    t_grad = t_compile = 0.0
    n_calls = 0
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(X_tr))
        total = 0.0
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            misses = grad.cache_info().misses
            t = time.perf_counter()
            value, grads = grad(*params, X_tr[idx], Y_tr[idx])
            dt = time.perf_counter() - t
            if grad.cache_info().misses > misses:  # a new batch shape: this call compiled
                t_compile += dt
            else:
                t_grad += dt
                n_calls += 1
            total += value * len(idx)
            for p, v, g in zip(params, velocity, grads):
                v *= momentum
                v -= lr * g
                p += v
        acc = float(np.mean(predict(*params, X_te) == y_te))
        history["loss"].append(total / len(X_tr))
        history["test_acc"].append(acc)
        if epoch == 1 or epoch % 5 == 0 or epoch == epochs:
            log(f"epoch {epoch:3d}  train loss {total / len(X_tr):.4f}  test accuracy {acc:.4f}")
    elapsed = time.perf_counter() - t0
    return params, history, {"elapsed": elapsed, "t_grad": t_grad, "n_calls": n_calls,
                             "t_compile": t_compile,
                             "cache": grad.cache_info(), "n_train": len(X_tr),
                             "n_test": len(X_te)}


def save_plot(history, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(epochs, history["loss"], marker=".")
    ax1.set_yscale("log")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss (cross-entropy)")
    ax1.set_title("loss")
    ax2.plot(epochs, history["test_acc"], marker=".", color="tab:green")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("test accuracy")
    ax2.set_title(f"test accuracy (final {history['test_acc'][-1]:.3f})")
    ax2.grid(alpha=0.3)
    fig.suptitle("64-tanh-10 MLP on sklearn digits, gradients from ad_transform")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.join(os.path.dirname(here), "docs", "img")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=default_out, help="folder for mlp_digits.png "
                        "(default: docs/img/)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    params, history, stats = train(epochs=args.epochs, hidden=args.hidden, seed=args.seed)
    acc = history["test_acc"][-1]
    per_call = stats["t_grad"] / stats["n_calls"]
    print(f"train/test samples: {stats['n_train']}/{stats['n_test']}")
    print(f"gradient calls: {stats['cache']}")
    print(f"training time: {stats['elapsed']:.2f} s  (compiling {stats['t_compile']:.2f} s; "
          f"{stats['n_calls']} cached gradient calls {stats['t_grad']:.2f} s, "
          f"{per_call * 1e6:.0f} us per call)")
    print(f"test accuracy: {acc:.4f}")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "mlp_digits.png")
    save_plot(history, path)
    print(f"plot saved to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
