"""Higher order: gradient(gradient(f)), deeper nestings, hessian and hvp.

Every second derivative is checked against central finite differences of the first
derivative (itself checked against finite differences of f elsewhere) and against
autograd; Hessians of NumPy programs are also checked for symmetry.
"""
import math

import autograd
import autograd.numpy as anp
import numpy as np
import pytest

from ad_transform import (MissingRule, UnsupportedSyntax, gradient, hessian, hvp, jacobian,
                          value_and_gradient)
from ad_transform.testing import numerical_gradient


def close(a, b, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float),
                               rtol=rtol, atol=atol)


# -- scalar functions with branches and loops, and their autograd twins ------------------

def branchy(x):
    if x > 0.5:
        y = math.sin(x) * x ** 3
    else:
        y = math.exp(-x) + x * x
    return y * math.log(2.0 + x * x)


def a_branchy(x):
    if x > 0.5:
        y = anp.sin(x) * x ** 3
    else:
        y = anp.exp(-x) + x * x
    return y * anp.log(2.0 + x * x)


def looped(x):
    acc = 1.0
    k = 0
    while acc < 40.0:  # the loop count depends on x
        acc = acc * (1.5 + x * x) + math.cos(x * k)
        k += 1
    return acc / (1.0 + x * x)


def a_looped(x):
    acc = 1.0
    k = 0
    while acc < 40.0:
        acc = acc * (1.5 + x * x) + anp.cos(x * k)
        k += 1
    return acc / (1.0 + x * x)


def two_args(x, y):
    t = x * y
    for _ in range(3):
        t = math.tanh(t) + x / (1.0 + y * y)
    return t * t + math.atan2(y, x)


def a_two_args(x, y):
    t = x * y
    for _ in range(3):
        t = anp.tanh(t) + x / (1.0 + y * y)
    return t * t + anp.arctan2(y, x)


@pytest.mark.parametrize("f, af", [(branchy, a_branchy), (looped, a_looped)])
@pytest.mark.parametrize("x", [-0.7, 0.3, 0.9, 1.7])
def test_second_derivative_scalar(f, af, x):
    d1, d2 = gradient(f), gradient(gradient(f))
    got = d2(x)
    assert type(got) is float
    close(got, numerical_gradient(d1, (x,), 0), rtol=1e-5, atol=1e-5)
    close(got, autograd.grad(autograd.grad(af))(x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("x", [-0.7, 0.3, 0.9, 1.7])
def test_third_derivative(x):
    d2, d3 = gradient(gradient(branchy)), gradient(gradient(gradient(branchy)))
    got = d3(x)
    close(got, numerical_gradient(d2, (x,), 0), rtol=1e-5, atol=1e-5)
    close(got, autograd.grad(autograd.grad(autograd.grad(a_branchy)))(x), rtol=1e-9)


def test_fourth_derivative_of_a_polynomial_and_sine():
    def f(x):
        return x ** 5 - 3.0 * x ** 2 + math.sin(x)
    d4 = gradient(gradient(gradient(gradient(f))))
    for x in (0.4, -1.3):
        close(d4(x), 120.0 * x + math.sin(x), rtol=1e-10)
        close(d4(x), numerical_gradient(gradient(gradient(gradient(f))), (x,), 0), rtol=1e-5)


def test_mixed_partials_two_arguments():
    for wrt_outer in (0, 1):
        for wrt_inner in (0, 1):
            d2 = gradient(gradient(two_args, wrt=wrt_inner), wrt=wrt_outer)
            a2 = autograd.grad(autograd.grad(a_two_args, wrt_inner), wrt_outer)
            for args in [(0.8, 1.1), (-0.4, 0.6)]:
                close(d2(*args), a2(*args), rtol=1e-9)
                close(d2(*args), numerical_gradient(gradient(two_args, wrt=wrt_inner), args,
                                                    wrt_outer), rtol=1e-5, atol=1e-6)


def test_derivative_used_inside_a_function():
    """A gradient made outside and called inside the differentiated function."""
    d = gradient(branchy)

    def energy(x):
        return d(x) ** 2 + x

    for x in (0.2, 1.1):
        close(gradient(energy)(x), numerical_gradient(energy, (x,), 0), rtol=1e-5)


def test_value_and_gradient_of_a_gradient():
    v, g = value_and_gradient(gradient(looped))(0.4)
    close(v, gradient(looped)(0.4))
    close(g, autograd.grad(autograd.grad(a_looped))(0.4), rtol=1e-9)


# -- paths at second order: new inner branches are found, correct and cached ---------------

def test_path_change_at_second_order_is_correct_and_cached():
    d2 = gradient(gradient(branchy))
    d2.cache_clear()
    a2 = autograd.grad(autograd.grad(a_branchy))
    xs = [0.9, 0.2, 1.4, -0.3, 0.9, 0.2]  # alternates between the two branches
    for x in xs:
        close(d2(x), a2(x), rtol=1e-10)
    info = d2.cache_info()
    assert info.currsize == 2 and info.misses == 2 and info.hits == len(xs) - 2


def test_loop_count_change_at_second_order():
    d1, d2 = gradient(looped), gradient(gradient(looped))
    d1.cache_clear()
    d2.cache_clear()
    a2 = autograd.grad(autograd.grad(a_looped))
    xs = (0.3, 0.9, 0.3, 2.0, 0.9, 0.1)
    for x in xs:
        close(d2(x), a2(x), rtol=1e-9)
        d1(x)
    assert d2.cache_info().currsize == d1.cache_info().currsize  # one per loop count
    assert d2.cache_info().hits == len(xs) - d2.cache_info().currsize


SCALE = 2.0


def scaled(x):
    return SCALE * x ** 3


def test_global_read_by_the_inner_derivative_is_read_at_run_time():
    global SCALE
    d2 = gradient(gradient(scaled))
    close(d2(1.5), 2.0 * 6.0 * 1.5)
    SCALE = 3.0
    try:
        close(d2(1.5), 3.0 * 6.0 * 1.5)
    finally:
        SCALE = 2.0


_A = np.array([[0.5, -1.0, 0.3], [0.2, 0.8, -0.6], [1.1, 0.4, 0.9]])
_T = np.arange(24.0).reshape(2, 3, 4) / 10.0 - 1.0


def _multilinear(x):
    """einsum (with a diagonal), tensordot, an N-D dot and products with zeros possible."""
    y = np.einsum("i,ij,j->", x, _A, x) + np.einsum("ii->", np.outer(x, x) * _A)
    z = np.tensordot(_T, np.concatenate([x, x[:1]]), axes=1)  # (2, 3)
    w = np.dot(_T.transpose(0, 2, 1), x)  # an N-D dot: (2, 4)
    p = np.prod(x) + np.sum(np.prod(np.outer(x, x + 1.5), axis=0) ** 2)
    return y + np.sum(z * z) + np.sum(np.sin(w)) + p


def _a_multilinear(x):
    y = anp.einsum("i,ij,j->", x, _A, x) + anp.sum(anp.diag(anp.outer(x, x) * _A))
    z = anp.tensordot(_T, anp.concatenate([x, x[:1]]), axes=1)
    w = anp.dot(_T.transpose(0, 2, 1), x)
    p = anp.prod(x) + anp.sum(anp.prod(anp.outer(x, x + 1.5), axis=0) ** 2)
    return y + anp.sum(z * z) + anp.sum(anp.sin(w)) + p


@pytest.mark.parametrize("x", [[0.3, -1.0, 2.0], [0.0, 0.7, -0.2], [0.0, 0.0, 1.5]])
def test_hessian_through_einsum_tensordot_nd_dot_and_prod(x):
    x = np.array(x)
    H = hessian(_multilinear)(x)
    if np.all(x != 0):  # autograd divides by x in prod's derivative: nan at a zero
        close(H, autograd.hessian(_a_multilinear)(x), rtol=1e-9, atol=1e-9)
    g = gradient(_multilinear)  # and against finite differences of the gradient
    fd = np.array([numerical_gradient(lambda t: g(t)[i], (x,), 0) for i in range(3)])
    close(H, fd, rtol=1e-5, atol=1e-5)
    u, v = np.array([0.3, -0.2, 0.5]), np.array([-0.4, 0.1, 0.9])
    close(u @ H @ v, v @ H @ u, rtol=1e-10, atol=1e-10)  # symmetric


def test_third_derivative_of_prod_is_refused():
    def f(s):
        return np.prod(np.array([s, s * s, 1.5]))
    close(gradient(gradient(f))(0.7), 1.5 * 6.0 * 0.7)  # second order is fine
    with pytest.raises(MissingRule, match="prod_hvp"):
        gradient(gradient(gradient(f)))(0.7)


def _sorted_weights(x):
    s = np.sort(x * x * x)
    return np.sum(s * np.arange(4.0) * s) + np.sin(np.sort(x)[0])


def test_hessian_through_sort():
    x = np.array([0.3, -1.0, 2.0, 0.9])

    def a_f(x):
        s = anp.sort(x * x * x)
        return anp.sum(s * anp.arange(4.0) * s) + anp.sin(anp.sort(x)[0])

    assert "_rt.sort_vjp" in gradient(_sorted_weights).source(x)
    close(hessian(_sorted_weights)(x), autograd.hessian(a_f)(x), rtol=1e-10, atol=1e-10)
    with pytest.raises(MissingRule, match="1-D"):
        hessian(lambda X: np.sum(np.sort(X, axis=1) ** 3))(np.ones((2, 2)))


def test_derivative_source_of_a_second_derivative_is_readable():
    src = gradient(gradient(branchy)).source(0.9)
    assert "def branchy_grad_grad(x)" in src
    assert "raise _rt.PathMiss" in src
    assert "adjoint of <ad_transform branchy grad (for lowering)" in src


# -- hessian and hvp -------------------------------------------------------------------------

def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def a_rosen(x):
    return anp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def softplus_net(w, X):
    h = X @ w
    out = 0.0
    for i in range(3):
        if i % 2 == 0:
            out = out + np.sum(np.log1p(np.exp(h * (i + 1.0))))
        else:
            out = out + np.sum(np.tanh(h) ** 2) / (i + 1.0)
    return out + 0.5 * np.sum(w * w)


def a_softplus_net(w, X):
    h = anp.dot(X, w)
    out = 0.0
    for i in range(3):
        if i % 2 == 0:
            out = out + anp.sum(anp.log1p(anp.exp(h * (i + 1.0))))
        else:
            out = out + anp.sum(anp.tanh(h) ** 2) / (i + 1.0)
    return out + 0.5 * anp.sum(w * w)


def matrix_fn(A):
    B = A @ A.T
    return np.sum(np.exp(-B) * np.cos(A).sum()) + np.max(A)


def a_matrix_fn(A):
    B = anp.dot(A, A.T)
    return anp.sum(anp.exp(-B) * anp.cos(A).sum()) + anp.max(A)


def test_hessian_of_a_float_argument_is_a_float():
    h = hessian(branchy)(0.9)
    assert type(h) is float
    close(h, autograd.grad(autograd.grad(a_branchy))(0.9), rtol=1e-10)


@pytest.mark.parametrize("n", [2, 5, 10])
def test_hessian_rosenbrock(n):
    x = np.linspace(-1.2, 1.1, n)
    H = hessian(rosen)(x)
    assert H.shape == (n, n)
    close(H, H.T, rtol=0, atol=1e-9)
    close(H, autograd.hessian(a_rosen)(x), rtol=1e-10, atol=1e-9)
    close(H, np.array([numerical_gradient(lambda x: gradient(rosen)(x)[i], (x,), 0)
                       for i in range(n)]), rtol=1e-5, atol=1e-4)


def test_hessian_of_a_numpy_program_with_loops_and_branches():
    rng = np.random.default_rng(3)
    w, X = rng.normal(size=4) * 0.5, rng.normal(size=(6, 4))
    H = hessian(softplus_net)(w, X)
    assert H.shape == (4, 4)
    close(H, H.T, rtol=0, atol=1e-10)
    close(H, autograd.hessian(a_softplus_net)(w, X), rtol=1e-9, atol=1e-10)


def test_hessian_of_a_matrix_argument_has_shape_plus_shape():
    A = np.array([[0.3, -0.2, 0.5], [0.1, 0.4, -0.6]])
    H = hessian(matrix_fn)(A)
    assert H.shape == (2, 3, 2, 3)
    close(H, H.transpose(2, 3, 0, 1), rtol=0, atol=1e-10)
    close(H, autograd.hessian(a_matrix_fn)(A), rtol=1e-9, atol=1e-10)


def test_hessian_tuple_wrt_is_nested_blocks():
    def f(x, a, y):
        return np.sum(np.sin(x) * a) * y ** 2 + a ** 3 * y

    def af(x, a, y):
        return anp.sum(anp.sin(x) * a) * y ** 2 + a ** 3 * y

    x, a, y = np.array([0.2, -0.4, 1.0]), 0.7, 1.3
    H = hessian(f, wrt=(0, 1, 2))(x, a, y)
    assert len(H) == 3 and all(len(row) == 3 for row in H)
    shapes = [(3,), (), ()]
    for i in range(3):
        for j in range(3):
            assert np.shape(H[i][j]) == shapes[i] + shapes[j]
            close(H[i][j], np.transpose(H[j][i]), atol=1e-12)
            want = autograd.jacobian(autograd.grad(af, i), j)(x, a, y)
            close(H[i][j], want, rtol=1e-10, atol=1e-12)
    assert type(H[1][2]) is float


@pytest.mark.parametrize("seed", [0, 1])
def test_hvp_matches_hessian_times_v(seed):
    rng = np.random.default_rng(seed)
    x, v = rng.normal(size=7), rng.normal(size=7)
    got = hvp(rosen)(x, v)
    close(got, hessian(rosen)(x) @ v, rtol=1e-10, atol=1e-8)
    close(got, autograd.hessian_vector_product(a_rosen)(x, v), rtol=1e-10, atol=1e-8)
    # dot-product check: <hvp(v), u> == <v, hvp(u)> (the Hessian is symmetric)
    u = rng.normal(size=7)
    close(np.dot(got, u), np.dot(v, hvp(rosen)(x, u)), rtol=1e-10)


def test_hvp_on_floats_and_tuples():
    close(hvp(branchy)(0.9, 2.0), 2.0 * autograd.grad(autograd.grad(a_branchy))(0.9),
          rtol=1e-10)
    H = hessian(two_args, wrt=(0, 1))(0.8, 1.1)
    hv = hvp(two_args, wrt=(0, 1))(0.8, 1.1, (0.5, -2.0))
    close(hv[0], H[0][0] * 0.5 + H[0][1] * -2.0, rtol=1e-10)
    close(hv[1], H[1][0] * 0.5 + H[1][1] * -2.0, rtol=1e-10)


def test_hvp_source_is_one_function():
    src = hvp(rosen).source(np.ones(4), np.ones(4))
    assert src.count("\ndef ") == 0 and src.startswith("def rosen_hvp_grad(x, v):")


def test_hessian_path_change_is_rechecked():
    def f(x):
        if np.sum(x) > 0:
            return np.sum(x ** 4)
        return np.sum(np.exp(x) * x)

    def af(x):
        if anp.sum(x) > 0:
            return anp.sum(x ** 4)
        return anp.sum(anp.exp(x) * x)

    h = hessian(f)
    for x in (np.array([1.0, 2.0]), np.array([-1.0, -2.0]), np.array([0.5, 0.1])):
        close(h(x), autograd.hessian(af)(x), rtol=1e-10, atol=1e-12)


# -- docs/api.md's section runs and prints what it shows; the SciPy example runs ------------

ROOT = __import__("os").path.dirname(__import__("os").path.dirname(__import__("os").path.abspath(__file__)))


def _run(path):
    import os
    import subprocess
    import sys
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_api_md_higher_order_section(tmp_path):
    import os
    import re
    text = open(os.path.join(ROOT, "docs", "api.md"), encoding="utf-8").read()
    section = text[text.index("## Higher-order derivatives"):]
    section = section[:section.index("\n## ", 1)]
    pairs = re.findall(r"```python\n(.*?)\n```\n\n```text\n(.*?)\n```", section, re.S)
    assert len(pairs) == 3
    for name, (code, shown) in zip(["nesting_demo.py", "higher_demo.py", "hvp_source.py"],
                                   pairs):
        path = tmp_path / name
        path.write_text(code + "\n")
        got = _run(path)
        assert re.sub(r"#\d+>", "#n>", got.rstrip()) == re.sub(r"#\d+>", "#n>", shown.rstrip())



def test_hessian_keywords_defaults_and_its_source():
    def f(x, scale=2.0):
        return scale * np.sum(np.exp(x) * x)

    def af(x, scale=2.0):
        return scale * anp.sum(anp.exp(x) * x)

    x = np.array([0.1, -0.5, 0.3])
    h = hessian(f)
    close(h(x), autograd.hessian(af)(x), rtol=1e-12)
    close(h(x=x, scale=3.0), autograd.hessian(af)(x, 3.0), rtol=1e-12)
    close(h(x, 3.0), h(x=x, scale=3.0), rtol=0, atol=0)
    src = h.source(x)
    assert src.startswith("def f_grad_hessian(x, scale):") and "raise _rt.PathMiss" in src


def test_nested_wrappers_made_again_share_one_cache():
    for _ in range(3):
        d2 = gradient(gradient(branchy))
        d2(0.9)
    assert gradient(gradient(branchy)).cache_info().currsize >= 1
    before = gradient(gradient(branchy)).cache_info()
    gradient(gradient(branchy))(0.9)
    after = gradient(gradient(branchy)).cache_info()
    assert after.misses == before.misses and after.hits == before.hits + 1


def test_gradient_of_hvp_is_a_third_derivative():
    """hvp(f) is itself a derivative made by ad_transform: it nests."""
    d3 = gradient(hvp(branchy))  # d/dx (f''(x) * v)
    for x in (0.3, 1.4):
        close(d3(x, 2.0), 2.0 * autograd.grad(autograd.grad(autograd.grad(a_branchy)))(x),
              rtol=1e-9)
    dv = gradient(hvp(two_args, wrt=1), wrt=2)  # d/dv (H v) = H[1][1]
    close(dv(0.8, 1.1, 3.0), hessian(two_args, wrt=1)(0.8, 1.1), rtol=1e-10)


def _make_cubic():
    k = 2.0

    def f(x):
        return k * x ** 3

    def set_k(value):
        nonlocal k
        k = value
    return f, set_k


ACTIVATION = math.tanh


def activated(x):
    return ACTIVATION(x) * x


def test_closure_cell_read_by_the_inner_derivative_is_read_at_run_time():
    f, set_k = _make_cubic()
    d2 = gradient(gradient(f))
    close(d2(1.5), 2.0 * 6.0 * 1.5, rtol=1e-12)
    set_k(5.0)
    close(d2(1.5), 5.0 * 6.0 * 1.5, rtol=1e-12)


def test_global_function_rebound_gives_a_new_second_derivative():
    global ACTIVATION
    d2 = gradient(gradient(activated))
    x = 0.7
    t = math.tanh(x)
    close(d2(x), 2 * (1 - t * t) + x * (-2 * t * (1 - t * t)), rtol=1e-12)
    ACTIVATION = math.sin
    try:
        close(d2(x), 2 * math.cos(x) - x * math.sin(x), rtol=1e-12)
    finally:
        ACTIVATION = math.tanh


def test_second_derivative_of_a_lambda_and_of_an_int_argument():
    d2 = gradient(gradient(lambda x: x ** 4 + 3.0 * x))
    close(d2(1.5), 12 * 1.5 ** 2, rtol=1e-12)
    assert type(d2(2)) is float and d2(2) == 48.0
    assert hessian(lambda x: x ** 4)(2) == 48.0


def test_nested_reads_concrete_values_only_to_choose_the_inner_path():
    """nested.py reads the builder's values in one place, _path_values, which only
    picks the compiled inner path (whose own guards become the outer path's)."""
    import ast
    import inspect as _inspect

    from ad_transform import nested

    tree = ast.parse(_inspect.getsource(nested))
    readers = set()
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef):
            for node in ast.walk(fn):
                if isinstance(node, ast.Attribute) and node.attr in ("value", "values") and \
                        isinstance(node.value, ast.Attribute) and node.value.attr == "b":
                    readers.add(fn.name)
    assert readers == {"_path_values"}


def test_nested_derivatives_keep_nothing_alive():
    import gc
    import weakref

    def f(x):
        return x ** 3 * math.sin(x)

    d3 = gradient(gradient(gradient(f)))  # the inner wrappers are referenced by nothing
    gc.collect()
    close(d3(0.8), numerical_gradient(gradient(gradient(f)), (0.8,), 0), rtol=1e-5)
    h = hessian(f)
    h(0.5)
    ref = weakref.ref(f)
    del f, d3, h
    for _ in range(3):  # a weak key's callback frees a cycle the next collection finds
        gc.collect()
    assert ref() is None


# -- every _rt helper with a rule (rules/runtime.py), at second order, against autograd -----
# Each program's first derivative calls the helper named; its Hessian differentiates it.

def _programs(np_):
    if np_ is np:
        def trace12(T):
            return np.trace(T, 0, 1, 2)
    else:  # autograd's trace takes no axes
        def trace12(T):
            return T[:, 0, 0] + T[:, 1, 1]

    def broadcast(x):  # _rt.fit_shape, x.sum(axis=...)
        m = x[:, None] * x[None, :2]
        return np_.sum(np_.sin(m) * np_.reshape(x, (-1, 1)))

    def maximum(x):  # _rt.minmax_vjp
        m = np_.max(np_.reshape(x, (2, 2)) ** 3, axis=0)  # the adjoints reaching the
        return np_.sin(np_.max(x * x * np_.array([1.0, 2.0, 0.5, 1.5]))) + np_.sum(
            m * m) + np_.max(x) * np_.sum(x)  # maxima depend on x: traced at second order

    def scalars(x):  # _rt.pack / _rt.flat_item, _rt.sum_items, _rt.log_or_zero
        a, b = x[0], x[1]
        v = np_.array([a * b, a + b ** 2, np_.sin(a)])
        return np_.sum(v * v) + sum([a * a, b * a, x[2] ** x[3]])

    def pieces(x):  # _rt.concatenate / _rt.block, _rt.stack
        y = np_.concatenate([x[:2] ** 2, np_.exp(x[2:]), x])
        z = np_.stack([x, np_.cos(x)])
        return np_.sum(y * y[::-1]) + np_.sum(z[0] * z[1])

    def cumulative(x):  # _rt.cumsum_vjp, _rt.tile_vjp, _rt.repeat_vjp
        c = np_.cumsum(x ** 2)
        t = np_.tile(x, 2)
        r = np_.repeat(x, 2)
        return np_.sum(c * np_.sin(c)) + np_.sum(t * r * r)

    def diagonal(x):  # _rt.diag_vjp, _rt.trace_vjp (3-D)
        M = np_.diag(x ** 2) + np_.outer(x, x)
        T = np_.reshape(np_.concatenate([x, x ** 2]), (2, 2, 2))
        return np_.sum(np_.diag(M) ** 2) + np_.sum(trace12(T) ** 3) \
            + np_.sum(M * M)

    return [broadcast, maximum, scalars, pieces, cumulative, diagonal]


def _setitem_program(x):  # _rt.setitem, _rt.setitem_vjp (a repeated index), _rt.getitem_vjp
    y = np.zeros(5)
    y[1:] = x ** 2
    y[[0, 0, 2]] = x[:3] * x[1]
    return np.sum(y * np.sin(y))


def _a_setitem_program(x):  # the same values, written without item assignment
    y1 = x[:3] * x[1]
    sq = x ** 2
    y = anp.concatenate([y1[1:2], sq[:1], y1[2:3], sq[2:]])
    return anp.sum(y * anp.sin(y))


@pytest.mark.parametrize("i", range(6))
def test_hessian_through_each_runtime_helper(i):
    ours, theirs = _programs(np)[i], _programs(anp)[i]
    x = np.array([0.3, -0.7, 0.9, 1.2])
    H = hessian(ours)(x)
    close(H, H.T, rtol=0, atol=1e-9)
    close(H, autograd.hessian(theirs)(x), rtol=1e-9, atol=1e-9)
    close(H, np.array([numerical_gradient(lambda x: gradient(ours)(x)[k], (x,), 0)
                       for k in range(4)]), rtol=1e-5, atol=1e-5)


def test_hessian_through_item_assignment():
    x = np.array([0.3, -0.7, 0.9, 1.2])
    close(_setitem_program(x), _a_setitem_program(x), rtol=1e-14)
    H = hessian(_setitem_program)(x)
    close(H, autograd.hessian(_a_setitem_program)(x), rtol=1e-9, atol=1e-9)


def _helper_with_default(x, k=2.0):
    return k * x ** 3


def _calls_helper(x):
    return _helper_with_default(x) + x


def test_inlined_helper_state_is_guarded_at_second_order():
    d2 = gradient(gradient(_calls_helper))
    close(d2(1.5), 2.0 * 6.0 * 1.5, rtol=1e-12)
    saved = _helper_with_default.__defaults__
    _helper_with_default.__defaults__ = (5.0,)
    try:
        close(d2(1.5), 5.0 * 6.0 * 1.5, rtol=1e-12)
    finally:
        _helper_with_default.__defaults__ = saved
    close(d2(1.5), 2.0 * 6.0 * 1.5, rtol=1e-12)


def _raveled(x):
    return np.sum(np.ravel(x) ** 3)


def test_hessian_when_the_gradient_is_copied_out_of_a_view():
    """The gradient of a reshaped view is copied for the caller (_rt.as_grad), which is
    differentiated again here."""
    x = np.array([[1.0], [2.0], [3.0]])
    assert "_rt.as_grad" in gradient(_raveled).source(x)
    H = hessian(_raveled)(x)
    assert H.shape == (3, 1, 3, 1)
    close(H.reshape(3, 3), np.diag(6.0 * x.ravel()), rtol=0, atol=1e-12)


def _cubes(x):
    return np.sum(x ** 3) + np.sum(x[:2] * x[1:])


def test_hessian_of_an_int_array_argument():
    x = np.array([1, 2, 3])
    H = hessian(_cubes)(x)
    assert H.dtype == np.float64
    want = np.diag(6.0 * x) + np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]])
    close(H, want, rtol=0, atol=1e-12)


def test_local_function_passed_to_an_inner_derivative_is_refused():
    def apply_twice(g, x):
        return g(g(x))

    d_apply = gradient(apply_twice, wrt=1)

    def f(x):
        def square(t):
            return t * t
        return d_apply(square, x)

    with pytest.raises(UnsupportedSyntax, match="defined inside the differentiated code"):
        gradient(f)(1.5)


def _apply_twice(g, x):
    return g(g(x))


def _cube_plus(t):
    return t ** 3 + t


def test_functions_passed_to_an_inner_derivative():
    d_apply = gradient(_apply_twice, wrt=1)

    def f(x, which):
        return d_apply(math.sin if which else _cube_plus, x) * x

    d = gradient(f)
    for x, which in [(0.4, True), (0.4, False), (0.9, True), (-0.3, False)]:
        close(d(x, which), numerical_gradient(lambda x: f(x, which), (x,), 0), rtol=1e-6)


def test_readme_second_derivatives_block(tmp_path):
    import os
    import re
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = text[text.index("### Second derivatives"):]
    section = section[:section.index("\n### ", 1)]
    ((code, shown),) = re.findall(r"```python\n(.*?)\n```\n\n```text\n(.*?)\n```", section, re.S)
    path = tmp_path / "second.py"
    path.write_text(code + "\n")
    assert _run(path).rstrip() == shown.rstrip()


# -- reads x[i] in a loop accumulate into one buffer (_rt.add_at); read back at 2nd order --

def _indexed_loop(x):
    s = 0.0
    for i in range(len(x) - 1):
        s = s + x[i] * x[i + 1] ** 2 + np.sin(x[i])
    return s + x[0] * x[0]


def test_hessian_of_a_loop_of_indexed_reads_matches_finite_differences_and_autograd():
    x = np.array([0.3, -1.2, 0.8, 2.0])
    H = hessian(_indexed_loop)(x)
    g = gradient(_indexed_loop)
    fd = np.stack([numerical_gradient(lambda v: g(v)[j], [x], 0) for j in range(len(x))])
    close(H, fd, rtol=1e-4, atol=1e-5)

    def a_loop(v):
        s = 0.0
        for i in range(len(v) - 1):
            s = s + v[i] * v[i + 1] ** 2 + anp.sin(v[i])
        return s + v[0] * v[0]
    close(H, autograd.hessian(a_loop)(x))


# -- jacobian, hessian and hvp called inside a function being differentiated ------------

def _cubic(x):
    return np.sum(np.sin(x) * x * x) + x[0] * x[1] * x[2]


def _fd_jacobian(fn, x, eps=1e-6):
    """Central differences of an array-valued ``fn``: shape ``fn(x).shape + x.shape``."""
    cols = []
    for k in range(x.size):
        e = np.zeros_like(x)
        e.flat[k] = eps
        cols.append((np.asarray(fn(x + e)) - np.asarray(fn(x - e))) / (2 * eps))
    return np.moveaxis(np.array(cols), 0, -1).reshape(np.shape(fn(x)) + x.shape)


def test_jacobian_of_hessian_is_the_third_derivative():
    x = np.array([0.3, -1.0, 2.0])
    T3 = jacobian(hessian(_cubic))(x)
    assert T3.shape == (3, 3, 3)
    close(T3, _fd_jacobian(hessian(_cubic), x), rtol=1e-5, atol=1e-5)
    close(T3, np.transpose(T3, (1, 2, 0)), rtol=1e-10, atol=1e-10)  # symmetric in all axes


def _hessian_sum(x):
    return np.sum(hessian(_cubic)(x) * _W)


_W = np.array([[1.0, 0.5, -0.3], [0.2, -1.0, 0.7], [0.4, 0.1, 2.0]])


def test_gradient_through_hessian_jacobian_and_hvp_called_inside():
    x = np.array([0.3, -1.0, 2.0])
    v = np.array([0.5, -0.2, 1.0])
    close(gradient(_hessian_sum)(x), numerical_gradient(_hessian_sum, (x,), 0),
          rtol=1e-5, atol=1e-5)

    def through_jacobian(x):
        return np.sum(jacobian(gradient(_cubic))(x) * _W)

    close(gradient(through_jacobian)(x), gradient(_hessian_sum)(x), rtol=1e-10, atol=1e-10)

    def through_hvp(x):
        return np.sum(hvp(_cubic)(x, v) ** 2)

    close(gradient(through_hvp)(x), numerical_gradient(through_hvp, (x,), 0),
          rtol=1e-5, atol=1e-5)


def _two(x, y):
    return x * x * y + math.sin(y) * x


def test_hessian_of_floats_and_a_tuple_wrt_inside_gradient():
    def f(x, y):
        (hxx, hxy), (hyx, hyy) = hessian(_two, wrt=(0, 1))(x, y)
        return hxx * hyy - hxy * hyx  # the Hessian's determinant

    g = gradient(f, wrt=(0, 1))
    for args in [(0.3, 1.2), (-0.7, 0.4)]:
        got = g(*args)
        close(got[0], numerical_gradient(f, args, 0), rtol=1e-5, atol=1e-6)
        close(got[1], numerical_gradient(f, args, 1), rtol=1e-5, atol=1e-6)


def test_transformation_of_an_inner_function_is_refused_with_its_line():
    def f(x):
        return hessian(lambda y: np.sum(y ** 3))(x)[0, 0]

    with pytest.raises(UnsupportedSyntax, match="hessian.*define it at module level") as info:
        gradient(f)(np.array([1.0, 2.0]))
    assert "test_higher.py" in str(info.value)


def test_forward_over_reverse_through_einsum_tensordot_and_prod():
    from ad_transform import jvp
    t = np.array([0.2, 0.5, -0.4])
    for x in (np.array([0.3, -1.0, 2.0]), np.array([0.0, 0.7, -0.2])):
        _, tangent = jvp(gradient(_multilinear), (x,), (t,))
        H = hessian(_multilinear)(x)  # checked against finite differences above
        close(tangent, H @ t, rtol=1e-9, atol=1e-9)
        fd = (gradient(_multilinear)(x + 1e-6 * t) - gradient(_multilinear)(x - 1e-6 * t)) / 2e-6
        close(tangent, fd, rtol=1e-5, atol=1e-5)


def _elementwise(x):
    return np.sin(x) * x


_TAN = np.array([0.5, -1.0, 0.25])


def test_jvp_vjp_and_forward_derivative_called_inside_gradient():
    from ad_transform import forward_derivative, jvp, vjp
    x = np.array([0.3, 0.7, -1.2])
    fd = forward_derivative(_elementwise)

    def through_jvp(x):
        value, tangent = jvp(_elementwise, (x,), (_TAN,))
        return np.sum(tangent * value)

    def through_vjp(x):
        value, pullback = vjp(_elementwise, x)
        (g,) = pullback(_TAN * value)
        return np.sum(g * g)

    def through_forward_derivative(x):
        value, tangent = fd(x, _TAN)
        return np.sum(tangent * value)

    for fn in (through_jvp, through_vjp, through_forward_derivative):
        close(gradient(fn)(x), numerical_gradient(fn, (x,), 0), rtol=1e-5, atol=1e-6)
    close(gradient(through_jvp)(x), gradient(through_forward_derivative)(x), 1e-12, 1e-12)


def test_jvp_of_two_floats_inside_hessian():
    from ad_transform import jvp

    def f(a, b):
        return a * a * b + math.sin(a * b)

    def directional(a):
        return jvp(f, (a, 0.8), (1.0, 0.5))[1]

    for a in (0.3, -1.1):
        want = numerical_gradient(gradient(directional), (a,), 0)
        close(hessian(directional)(a), want, rtol=1e-5, atol=1e-6)


def test_gradient_of_forward_derivative_and_jacobian_wrappers():
    from ad_transform import forward_derivative

    def f(x):
        return x * x * math.sin(x)

    fd = forward_derivative(f)
    x = 0.8
    (value, tangent), = [fd(x, 1.0)]
    grad, aux = gradient(fd, has_aux=True)(x, 1.0)  # d/dx of the value; the tangent as aux
    close(grad, tangent, rtol=1e-12, atol=1e-12)
    close(aux, numerical_gradient(f, (x,), 0), rtol=1e-6, atol=1e-8)
    d2 = gradient(jacobian(f))(x)
    close(d2, numerical_gradient(gradient(f), (x,), 0), rtol=1e-5, atol=1e-7)
    close(d2, hessian(f)(x), rtol=1e-10, atol=1e-12)
