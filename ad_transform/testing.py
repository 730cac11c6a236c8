"""Finite-difference checks for users' own test suites.

>>> from ad_transform.testing import check_gradient
>>> check_gradient(lambda x, y: x * y + y, 2.0, 3.0, wrt=(0, 1))
(3.0, 3.0)
>>> import numpy as np
>>> check_vjp(np.sin, np.linspace(0.0, 1.0, 5), rng=np.random.default_rng(0))
"""
from __future__ import annotations

import math

__all__ = ["check_gradient", "check_vjp", "numerical_gradient"]


def _is_array(x) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype") and getattr(x, "ndim", 0) > 0


def numerical_gradient(f, args, i, eps=1e-6):
    """Central finite differences of ``f(*args)`` with respect to argument ``i``
    (a tree of floats and arrays gives a tree, ``None`` at its static leaves)."""
    from .pytree import is_tree, tree_flatten
    args = list(args)
    x = args[i]
    if is_tree(x):
        leaves, treedef = tree_flatten(x)

        def at_leaf(k):
            def g(*a):
                new = list(leaves)
                new[k] = a[i]
                return f(*a[:i], treedef.unflatten(*new, static=True), *a[i + 1:])
            return numerical_gradient(g, args[:i] + [leaves[k]] + args[i + 1:], i, eps)

        return treedef.unflatten(*(at_leaf(k) for k in range(len(leaves))))

    def at(value):
        args[i] = value
        value = f(*args)  # gradient accepts one-element arrays too: (1,), (1, 1)
        return float(value.reshape(()) if getattr(value, "size", 0) == 1 else value)

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
    from .pytree import is_tree, paths, show_path, tree_flatten
    if is_tree(ad) or is_tree(fd):
        (ad_leaves, td), (fd_leaves, _) = tree_flatten(ad), tree_flatten(fd)
        if len(ad_leaves) != len(fd_leaves):
            raise AssertionError(f"the gradient of {name} is {ad!r}, finite differences {fd!r}")
        for path, a, n in zip(paths(td), ad_leaves, fd_leaves):
            yield from _rows(show_path(name, path), a, n)
        return
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

    sig = inspect.signature(f)
    if kwargs:
        bound = sig.bind(*args, **kwargs)
        args = tuple(bound.args)
        for k, v in bound.kwargs.items():
            raise TypeError(f"check_gradient passes arguments by position; got keyword {k}={v!r}")
    grads = gradient(f, wrt)(*args)
    params = list(sig.parameters)
    idx, single = _resolve_wrt(f, list(sig.parameters.values()), wrt)
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


def check_vjp(op, *args, wrt=0, rng=None, rtol=1e-5, atol=1e-8, eps=1e-6):
    """Dot-product test of the derivative of an array-valued ``op`` (returns nothing).

    ``op(*args)`` may return an array.  With a random cotangent ``u`` of the
    output's shape, ``s(*args) = np.sum(u * op(*args))`` is differentiated by
    ``gradient`` (so its gradient is ``J^T u``, where ``J`` is the Jacobian of
    ``op`` in argument ``wrt``), and for a random direction ``v`` of that
    argument's shape the identity ``<J^T u, v> == <u, J v>`` is checked, the
    right side by the central difference ``(s(x + h v) - s(x - h v)) / 2h``
    computed in float64.  Also checks the gradient's shape and dtype (the
    argument's, float64 for integer arguments).  ``wrt`` is an argument index
    or a tuple of them; ``rng`` a :class:`numpy.random.Generator` (default:
    seeded with 0).  Raises ``AssertionError`` with a readable message.
    """
    import numpy as np

    from .api import gradient

    rng = np.random.default_rng(0) if rng is None else rng
    indices = (wrt,) if isinstance(wrt, int) else tuple(wrt)
    args = tuple(args)
    out = op(*args)
    u = rng.standard_normal(np.shape(out))
    if np.ndim(out) == 0:
        u = float(u)
    name = getattr(op, "__qualname__", None) or getattr(op, "__name__", repr(op))
    for i in indices:
        x = args[i]
        before, after = args[:i], args[i + 1:]

        def scalarized(xi):
            return np.sum(u * op(*before, xi, *after))

        grad = gradient(scalarized)(x)
        where = f"check_vjp({name}, argument {i})"
        if isinstance(x, np.ndarray):  # 0-d arrays included
            want = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
            if not isinstance(grad, np.ndarray) or grad.shape != x.shape or grad.dtype != want:
                raise AssertionError(
                    f"{where}: the gradient is {type(grad).__name__} "
                    f"{getattr(grad, 'dtype', '')}{list(np.shape(grad))}, expected an array "
                    f"{want}{list(x.shape)} like the argument")
            v = rng.standard_normal(x.shape)
            x64 = np.asarray(x, dtype=np.float64)
            h = eps * max(1.0, float(np.max(np.abs(x64), initial=0.0)))
            up, down = x64 + h * v, x64 - h * v
        else:
            if not isinstance(grad, float):
                raise AssertionError(f"{where}: the gradient of a scalar argument is a "
                                     f"{type(grad).__name__}, not a float")
            v = float(rng.standard_normal())
            h = eps * max(1.0, abs(x))
            up, down = x + h * v, x - h * v
        s = lambda xi: float(np.sum(u * np.asarray(op(*before, xi, *after), dtype=np.float64)))
        lhs = float(np.sum(np.asarray(grad, dtype=np.float64) * v))
        rhs = (s(up) - s(down)) / (2 * h)
        scale = float(np.sum(np.abs(np.asarray(grad, dtype=np.float64) * v)))
        if not (abs(lhs - rhs) <= atol + rtol * max(abs(lhs), abs(rhs), scale)
                or (math.isnan(lhs) and math.isnan(rhs))):
            raise AssertionError(
                f"{where}: dot-product test failed at args {args!r}:\n"
                f"  <J^T u, v> (ad_transform)  = {lhs!r}\n"
                f"  <u, J v>   (finite diff.)  = {rhs!r}\n"
                f"  abs error {abs(lhs - rhs):.3g}, tolerance {atol + rtol * max(abs(lhs), abs(rhs), scale):.3g}")
