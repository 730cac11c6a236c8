"""SciPy's optimisers with exact derivatives from ad_transform, beside finite differences.

Run it from the repository root:

    python3 examples/scipy_optimize.py

1. The Rosenbrock function in 10 dimensions, minimised with
   ``scipy.optimize.minimize(method="trust-exact")``, which needs the gradient and
   the Hessian: ``jac=gradient(rosen)``, ``hess=hessian(rosen)``, then the same with
   central finite differences for both.
2. A curve fit ``y = a * exp(-b * t) + c`` to noisy data with
   ``scipy.optimize.least_squares(residuals, p0, jac=jacobian(residuals))``, then with
   SciPy's own finite-difference Jacobian (``jac="2-point"``).

Each run prints its iterations and evaluations: calls of the function by the
optimiser, of the derivatives, and every call of the function in all (the finite
differences call it too).
"""
import numpy as np
from scipy.optimize import least_squares, minimize

from ad_transform import gradient, hessian, jacobian

N = 10
CALLS = {"f": 0}


def rosen(x):
    """sum 100 (x[i+1] - x[i]^2)^2 + (1 - x[i])^2, minimum 0 at x = (1, ..., 1)."""
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def counted(x):
    CALLS["f"] += 1
    return rosen(x)


def fd_gradient(x, h=1e-6):
    """Central differences: 2 n calls of the function."""
    g = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (counted(x + e) - counted(x - e)) / (2 * h)
    return g


def fd_hessian(x, h=1e-4):
    """Central differences of the finite-difference gradient: 4 n^2 calls."""
    H = np.empty((x.size, x.size))
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        H[i] = (fd_gradient(x + e) - fd_gradient(x - e)) / (2 * h)
    return (H + H.T) / 2


# -- the curve fit ------------------------------------------------------------------------
T = np.linspace(0.0, 4.0, 40)
TRUE = np.array([2.5, 1.3, 0.5])
Y = TRUE[0] * np.exp(-TRUE[1] * T) + TRUE[2] + 0.02 * np.random.default_rng(0).normal(size=T.size)
P0 = np.array([1.0, 0.5, 0.0])
FIT_CALLS = {"f": 0}


def residuals(p):
    return p[0] * np.exp(-p[1] * T) + p[2] - Y


def counted_residuals(p):
    FIT_CALLS["f"] += 1
    return residuals(p)


def report(label, res, total=None):
    evals = f"nfev={res.nfev:<4} njev={getattr(res, 'njev', 0):<4}"
    if hasattr(res, "nhev"):
        evals += f" nhev={res.nhev:<4}"
    total = "" if total is None else f" function calls in all={total}"
    nit = getattr(res, "nit", None)
    nit = "" if nit is None else f"nit={nit:<4} "
    print(f"{label:<28} {nit}{evals}{total}  final cost={res.fun if np.ndim(res.fun) == 0 else res.cost:.3e}")


def main():
    x0 = np.full(N, -1.0)
    print(f"== Rosenbrock in {N} dimensions, minimize(method='trust-exact') from {x0[:4]}... ==")
    CALLS["f"] = 0
    exact = minimize(counted, x0, method="trust-exact", jac=gradient(rosen), hess=hessian(rosen))
    report("ad_transform jac + hess", exact, CALLS["f"])
    CALLS["f"] = 0
    fd = minimize(counted, x0, method="trust-exact", jac=fd_gradient, hess=fd_hessian)
    report("finite differences", fd, CALLS["f"])
    print(f"distance to the minimum: ad_transform {np.abs(exact.x - 1).max():.1e}, "
          f"finite differences {np.abs(fd.x - 1).max():.1e}")
    print(f"rosenbrock nit = {exact.nit}")
    print(f"rosenbrock error = {np.abs(exact.x - 1).max():.3e}")

    print("\n== curve fit y = a exp(-b t) + c, least_squares ==")
    FIT_CALLS["f"] = 0
    exact = least_squares(counted_residuals, P0, jac=jacobian(residuals))
    report("ad_transform jacobian", exact, FIT_CALLS["f"])
    FIT_CALLS["f"] = 0
    fd = least_squares(counted_residuals, P0, jac="2-point")
    report("finite differences", fd, FIT_CALLS["f"])
    print(f"fitted (a, b, c): ad_transform {np.round(exact.x, 4)}, finite differences "
          f"{np.round(fd.x, 4)}, true {TRUE}")
    print(f"fit error = {np.abs(exact.x - TRUE).max():.3e}")


if __name__ == "__main__":
    main()
