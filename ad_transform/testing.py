"""Finite-difference checks for users' own test suites.

>>> from ad_transform.testing import check_gradient
>>> check_gradient(lambda x, y: x * y + y, 2.0, 3.0, wrt=(0, 1))
(3.0, 3.0)
"""
from __future__ import annotations

import math

__all__ = ["check_gradient", "numerical_gradient"]


def _is_array(x) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype") and getattr(x, "ndim", 0) > 0


def numerical_gradient(f, args, i, eps=1e-6):
    """Central finite differences of ``f(*args)`` with respect to argument ``i``."""
    args = list(args)
    x = args[i]

    def at(value):
        args[i] = value
        return float(f(*args))

    if _is_array(x):
        import numpy as np
        base = np.asarray(x, dtype=np.float64)
        grad = np.zeros(base.shape)
        for idx in np.ndindex(base.shape):
            h = eps * max(1.0, abs(base[idx]))
            up, down = base.copy(), base.copy()
            up[idx] += h
            down[idx] -= h
            grad[idx] = (at(up.astype(x.dtype)) - at(down.astype(x.dtype))) / (2 * h)
        args[i] = x
        return grad
    h = eps * max(1.0, abs(x))
    result = (at(x + h) - at(x - h)) / (2 * h)
    args[i] = x
    return result


def _rows(name, ad, fd):
    if _is_array(ad) or _is_array(fd):
        import numpy as np
        ad_a, fd_a = np.asarray(ad, dtype=float), np.asarray(fd, dtype=float)
        for idx in np.ndindex(np.shape(ad_a)):
            yield f"{name}{list(idx)}", float(ad_a[idx]), float(fd_a[idx])
    else:
        yield name, float(ad), float(fd)


def check_gradient(f, *args, wrt=0, rtol=1e-5, atol=1e-6, eps=1e-6, **kwargs):
    """Compare ``gradient(f, wrt)(*args)`` with central finite differences.

    Returns the gradient on success; raises ``AssertionError`` with a table of
    the entries that differ otherwise.  ``f`` is the plain function.
    """
    import inspect

    from .api import _resolve_wrt, gradient

    if kwargs:
        bound = inspect.signature(f).bind(*args, **kwargs)
        args = tuple(bound.args)
        for k, v in bound.kwargs.items():
            raise TypeError(f"check_gradient passes arguments by position; got keyword {k}={v!r}")
    grads = gradient(f, wrt)(*args)
    params = list(inspect.signature(f).parameters)
    idx, single = _resolve_wrt(f, list(inspect.signature(f).parameters.values()), wrt)
    got = (grads,) if single else grads
    bad = []
    for i, g in zip(idx, got):
        fd = numerical_gradient(f, args, i, eps)
        for name, a, n in _rows(params[i], g, fd):
            if not (math.isclose(a, n, rel_tol=rtol, abs_tol=atol)
                    or (math.isnan(a) and math.isnan(n))):
                bad.append((name, a, n))
    if bad:
        head = f"{'entry':<16}{'ad_transform':>24}{'finite diff':>24}{'abs error':>14}"
        lines = [f"gradient of {getattr(f, '__qualname__', f)} differs from finite differences "
                 f"at {args!r}:", head]
        lines += [f"{n:<16}{a:>24.16g}{d:>24.16g}{abs(a - d):>14.3g}" for n, a, d in bad]
        raise AssertionError("\n".join(lines))
    return grads
