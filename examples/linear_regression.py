"""Linear regression by gradient descent, with gradients from ad_transform.

Run it from the repository root:

    python3 examples/linear_regression.py [--out DIR] [--seed N]

Fifty points with X uniform in [0, 1) and y = X + 1 + noise (standard
deviation 0.05) are fitted with the model w0 + w1*X.  The loss is the mean
squared error written as a plain NumPy function; ad_transform turns it into
Python code for its gradient, and plain gradient descent walks (w0, w1) from
(0, 0) to about (1, 1).  Three figures are written to DIR (default docs/img/):

* linreg_fit.png   the data, the true line y = x + 1 and the fitted line;
* linreg_loss.png  the loss at every iteration (log scale);
* linreg_path.png  the path of (w0, w1) over the contours of the loss.
"""
import argparse
import os
import time

import numpy as np

from ad_transform import value_and_gradient

N_POINTS = 50
NOISE = 0.05
LEARNING_RATE = 0.1
ITERATIONS = 1000
W_START = (0.0, 0.0)


def make_data(seed=0, n=N_POINTS):
    """X uniform in [0, 1) and y = X + 1 + N(0, NOISE) noise."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.0, 1.0, n)
    y = X + 1.0 + rng.normal(0.0, NOISE, n)
    return X, y


def loss(w, X, y):
    """Mean squared error of the line w[0] + w[1]*X on the data (X, y)."""
    pred = w[0] + w[1] * X
    return np.mean((pred - y) ** 2)


def fit(X, y, lr=LEARNING_RATE, iterations=ITERATIONS, w_start=W_START):
    """Gradient descent on ``loss``; returns the final w, the losses and the path."""
    loss_and_grad = value_and_gradient(loss, wrt=0)
    w = np.array(w_start, dtype=float)
    path, losses = [w.copy()], []
    for _ in range(iterations):
        value, g = loss_and_grad(w, X, y)
        losses.append(float(value))
        w = w - lr * g
        path.append(w.copy())
    losses.append(float(loss(w, X, y)))
    return w, np.array(losses), np.array(path), loss_and_grad


def least_squares(X, y):
    """The exact minimiser of the loss, for comparison."""
    A = np.stack([np.ones_like(X), X], axis=1)
    return np.linalg.lstsq(A, y, rcond=None)[0]


def save_figures(X, y, w, losses, path, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out, exist_ok=True)
    xs = np.linspace(0.0, 1.0, 2)
    written = []

    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.scatter(X, y, s=18, color="tab:blue", alpha=0.8, label="data (50 points)")
    ax.plot(xs, xs + 1.0, "k--", lw=1.5, label="true line  y = x + 1")
    ax.plot(xs, w[0] + w[1] * xs, color="tab:red", lw=2,
            label=f"fitted  y = {w[0]:.3f} + {w[1]:.3f} x")
    ax.set_xlabel("X")
    ax.set_ylabel("y")
    ax.set_title("Linear regression by gradient descent (ad_transform gradients)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    written.append(os.path.join(out, "linreg_fit.png"))
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4.5))
    best = loss(least_squares(X, y), X, y)
    ax.semilogy(np.arange(len(losses)), losses, color="tab:purple", lw=2, label="loss")
    ax.semilogy(np.arange(len(losses)), np.maximum(losses - best, 1e-17), color="tab:orange",
                lw=1.2, ls="--", label="loss - least-squares minimum")
    ax.axhline(NOISE ** 2, color="gray", ls=":", label=f"noise variance {NOISE ** 2:g}")
    ax.set_xlabel("iteration")
    ax.set_ylabel("mean squared error")
    ax.set_title("Loss per iteration")
    ax.legend()
    fig.tight_layout()
    written.append(os.path.join(out, "linreg_loss.png"))
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 5))
    g0 = np.linspace(-0.25, 1.75, 201)
    g1 = np.linspace(-0.25, 1.75, 201)
    W0, W1 = np.meshgrid(g0, g1)
    # the loss on the whole grid at once: broadcast the residuals over a third axis
    Z = np.mean((W0[..., None] + W1[..., None] * X - y) ** 2, axis=-1)
    levels = np.geomspace(Z.min() * 1.05, Z.max(), 25)
    cs = ax.contour(W0, W1, Z, levels=levels, cmap="viridis", linewidths=0.8,
                    norm=matplotlib.colors.LogNorm())
    cbar = fig.colorbar(cs, ax=ax, label="loss (log-spaced contours)")
    cbar.set_ticks(levels[::4], labels=[f"{v:.3g}" for v in levels[::4]])
    ax.plot(path[:, 0], path[:, 1], ".-", color="tab:red", ms=3, lw=1,
            markevery=max(1, len(path) // 60), label="gradient descent path")
    ax.plot(*path[0], "o", color="tab:red", ms=7, label=f"start ({path[0][0]:g}, {path[0][1]:g})")
    ax.plot(*path[-1], "*", color="gold", mec="k", ms=14,
            label=f"end ({path[-1][0]:.3f}, {path[-1][1]:.3f})")
    ax.plot(1.0, 1.0, "x", color="k", ms=10, mew=2, label="true (1, 1)")
    ax.set_xlabel("w0 (intercept)")
    ax.set_ylabel("w1 (slope)")
    ax.set_aspect("equal")
    ax.set_title("Path of (w0, w1) over the loss contours")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    written.append(os.path.join(out, "linreg_path.png"))
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join("docs", "img"),
                        help="directory for the PNGs (default: docs/img)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for the data")
    parser.add_argument("--iterations", type=int, default=ITERATIONS)
    parser.add_argument("--lr", type=float, default=LEARNING_RATE)
    args = parser.parse_args(argv)

    X, y = make_data(args.seed)
    start = time.perf_counter()
    w, losses, path, loss_and_grad = fit(X, y, args.lr, args.iterations)
    elapsed = time.perf_counter() - start

    print("== generated derivative source of loss (value and gradient wrt w) ==")
    print(loss_and_grad.source(np.array(W_START), X, y))
    print(f"gradient descent: {args.iterations} iterations, learning rate {args.lr}, "
          f"{elapsed:.2f} s")
    print(f"cache_info: {loss_and_grad.cache_info()}")
    print(f"least squares:  w0 = {least_squares(X, y)[0]:.6f}, w1 = {least_squares(X, y)[1]:.6f}")
    print(f"final w0 = {w[0]:.6f}")
    print(f"final w1 = {w[1]:.6f}")
    print(f"final loss = {losses[-1]:.6g}")
    for name in save_figures(X, y, w, losses, path, args.out):
        print(f"wrote {name}")


if __name__ == "__main__":
    main()
