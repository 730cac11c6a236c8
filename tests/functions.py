"""A corpus of plain Python functions on scalar floats, for gradient checks.

Every function here is ordinary Python (``import math`` only, no NumPy) and is
called unchanged by the finite-difference reference.  ``CASES`` lists
``(function, args, wrt)``; a function may appear with several argument sets so
that different branches and loop trip counts are exercised.  Inputs are chosen
inside each function's domain and away from kinks and jumps, so that central
finite differences are a valid reference.
"""
import math

# =============================================================================
# Group 1 -- arithmetic: + - * / // % ** (constant and variable exponents),
# unary - and +, abs, min/max (2 args, n args, over a list), float(), int(),
# round() (int/round: zero derivative; float: identity), chained comparisons,
# and/or/not, conditional expressions; also (-1) ** n with an int argument n.
# =============================================================================


def arith_basic(x, y):
    return x + y - x * y + x / y - y / x


def alternating_sign(x, n):
    return (-1) ** n * x * x + (-2) ** n * x + (-x) ** 3 + (-0.5) ** n


def arith_floordiv_mod(x, y):
    q = x // y
    r = x % y
    return q * x + r * y + x % 2.0 + 5.0 % y


def pow_const(x):
    return x ** 2 + x ** 3 + x ** 0.5 + x ** -1 + x ** 1 + x ** 0 + x ** -2.5


def pow_var(x, y):
    return x ** y + y ** x + 2.0 ** x + x ** (y - 1.0)


def unary_ops(x, y):
    return -x + (+y) * -(-x) - (-(x * y))


def abs_fn(x, y):
    return abs(x - y) + abs(x * y) + abs(-x)


def minmax_two(x, y):
    return min(x, y) * 2.0 + max(x, y) ** 2 + max(x, 0.5) - min(1.0, y)


def minmax_n(x, y, z):
    return max(x, y, z) - 3.0 * min(x, y, z) + max(x * y, y * z, x * z, 0.1)


def minmax_list(x, y):
    vals = [x, 2.0 * y, x * y, 1.5]
    return max(vals) + min(vals) * x


def float_int_round(x):
    return float(x) * 2.0 + int(x) * x + round(x) + round(x, 1) * x + round(x, ndigits=2)


def chained_compare(x, y):
    if 0.0 < x < y <= 10.0:
        return x * y
    return x + y * y


def bool_ops(x, y):
    if (x > 0 and y > 0) or not (x > -5):
        s = x * y
    else:
        s = x - y
    if not (x < y):
        s = s + x * x
    return s


def bool_values(x, y):
    a = (x > 1.0 and x * y) or y * y   # and/or return one of their operands
    b = x * 0.0 or y                    # a falsy traced value falls through
    return a + b


def compare_as_numbers(x, y):
    return (x > y) * x + (x <= y) * y + (not x < 0.0) * x * y


def cond_expr(x):
    return x * x if x > 0 else -x * x * x


def cond_expr_nested(x, y):
    return (x * y if x > y else x + y) if x > 0 else (math.sin(x) if y > 0 else math.cos(y))


# =============================================================================
# Group 2 -- the math module: exp, expm1, log (1 and 2 args), log1p, log2,
# log10, sqrt, pow, sin, cos, tan, asin, acos, atan, atan2, sinh, cosh, tanh,
# asinh, acosh, atanh, hypot, erf, erfc, fabs, copysign, floor/ceil/trunc
# (zero derivative), math.pi, math.e.
# =============================================================================


def m_exp(x):
    return math.exp(x) * math.exp(-x * x)


def m_expm1(x):
    return math.expm1(x) / x


def m_log(x):
    return math.log(x) * x


def m_log_base(x, base):
    return math.log(x, base) + math.log(x, 10) + math.log(7.0, base)


def m_log1p(x):
    return math.log1p(x * x)


def m_log2_log10(x):
    return math.log2(x) + 3.0 * math.log10(x)


def m_sqrt(x):
    return math.sqrt(x) + math.sqrt(x * x + 1.0)


def m_pow(x, y):
    return math.pow(x, y) + math.pow(x, 3) + math.pow(2.0, y)


def m_sin_cos(x):
    return math.sin(x) * math.cos(2.0 * x)


def m_tan(x):
    return math.tan(x) + math.tan(x) ** 2


def m_asin_acos(x):
    return math.asin(x) * 2.0 + math.acos(x * 0.5)


def m_atan(x):
    return math.atan(x) + math.atan(1.0 / x)


def m_atan2(y, x):
    return math.atan2(y, x) + math.atan2(1.0, x) * math.atan2(y, 2.0)


def m_sinh_cosh(x):
    return math.sinh(x) - math.cosh(x) * 0.5


def m_tanh(x):
    return math.tanh(x) * x


def m_asinh(x):
    return math.asinh(x) + math.asinh(-2.0 * x)


def m_acosh(x):
    return math.acosh(x) + math.acosh(x * x)


def m_atanh(x):
    return math.atanh(x) + math.atanh(x / 2.0)


def m_hypot(x, y, z):
    return math.hypot(x, y) + math.hypot(x, y, z) + math.hypot(x, 3.0)


def m_erf(x):
    return math.erf(x) + math.erfc(2.0 * x)


def m_fabs_copysign(x, y):
    return math.fabs(x) * 2.0 + math.copysign(x, y) + math.copysign(3.0, x) * y


def m_floor_ceil_trunc(x):
    return math.floor(x) * x + math.ceil(x) * 2.0 + math.trunc(x) + x


def m_constants(x):
    return math.pi * x + math.e ** x + math.sin(math.pi * x / 4.0)


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def softplus(x):
    return math.log1p(math.exp(-abs(x))) + max(x, 0.0)


def gaussian_pdf(x, mu, sigma):
    z = (x - mu) / sigma
    return math.exp(-0.5 * z * z) / (sigma * math.sqrt(2.0 * math.pi))


def normal_cdf(x):
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def logistic_loss(w, b, x, y):
    p = sigmoid(w * x + b)
    return -(y * math.log(p) + (1.0 - y) * math.log(1.0 - p))


# =============================================================================
# Group 3 -- assignment: tuple unpacking and swaps, augmented assignment,
# reassignment, dead code; also item assignment/swaps in a list, chained and
# annotated assignment.
# =============================================================================


def tuple_unpack_swap(x, y):
    a, b = x * 2.0, y + 1.0
    a, b = b, a
    (c, d), e = (a * b, a - b), x
    [p, q] = [c, d]
    return p * q + e


def rotate_three(x, y, z):
    for _ in range(2):
        x, y, z = y, z, x * y
    return x + 2.0 * y + 3.0 * z


def aug_assign(x, y):
    s = x
    s += y
    s *= x
    s -= 2.0
    s /= y
    s **= 2
    t = s
    t %= 3.0
    t //= 1.0
    return s + t


def item_assign_swap(x, y):
    xs = [x, y, x * y]
    xs[0], xs[-1] = xs[-1], xs[0]
    xs[-1] += y
    xs[1] *= xs[0]
    a = b = xs[1] - x
    c: float = a * b
    return c + xs[0] + xs[2]


def reassign(x):
    y = x
    y = y * y
    y = math.sin(y)
    x = y + x
    return x * y


def dead_code(x, y):
    unused = math.exp(x) * y
    z = x * 2.0
    waste = [z * z, unused]
    if x > 100.0:
        return waste[0]
    z = z + 1.0
    return z * y


# =============================================================================
# Group 4 -- control flow: if/elif/else (nested), for over range with 1, 2 and
# 3 arguments (bounds from inputs: range(int(x)), an int argument n), for over
# tuples/lists, while, break, continue, for-else, while-else, early and
# multiple returns, nested loops, data-dependent trip counts.
# =============================================================================


def if_elif_else(x):
    if x < -1.0:
        return -x * x
    elif x < 1.0:
        y = math.sin(x)
    elif x < 3.0:
        y = x ** 3
    else:
        y = math.log(x)
    return y * 2.0


def nested_if(x, y):
    if x > 0:
        if y > 0:
            r = x * y
        else:
            r = x - y * y
    else:
        if y > x:
            r = math.exp(x) + y
        elif y > -10:
            r = x * x * y
        else:
            r = 0.0
    return r


def range_one(x):
    acc = 0.0
    for i in range(4):
        acc = acc + x ** i
    return acc


def range_two(x):
    acc = 1.0
    for k in range(2, 6):
        acc *= (x + k) / k
    return acc


def range_three(x):
    acc = 0.0
    for k in range(10, 0, -3):
        acc = acc * x + k
    for k in range(1, 8, 2):
        acc += math.sin(k * x)
    return acc


def range_from_input(x):
    acc = x
    for _ in range(int(x)):
        acc = math.sqrt(acc * x)
    return acc


def range_int_arg(x, n):
    acc = 1.0
    for i in range(n):
        acc = acc * x + i
    return acc


def range_bounds_computed(x, n):
    acc = 0.0
    for i in range(n // 2, n + int(x), max(1, n // 3)):
        acc += x / (i + 1)
    return acc


def for_over_tuple(x):
    acc = 0.0
    for c in (1.0, -2.0, 0.5):
        acc = acc * x + c
    return acc


def for_over_list(x, y):
    acc = 0.0
    for v in [x, y, x * y, 2.0]:
        acc += v * v
    return acc


def while_loop(x):
    y = x
    i = 0
    while i < 5:
        y = y * 0.9 + math.sin(y)
        i += 1
    return y


def while_break(x):
    y = x
    while True:
        y = y * 1.5
        if y > 10.0:
            break
    return y * x


def for_continue(x):
    acc = 0.0
    for i in range(6):
        if i % 2 == 0:
            continue
        acc += x ** i
    return acc


def for_else(x):
    total = 0.0
    for k in range(1, 6):
        total += x ** k / k
        if total > 10.0:
            break
    else:
        total *= 2.0
    return total


def while_else(x):
    y = x
    n = 0
    while n < 4:
        y = y * y
        if y > 50.0:
            break
        n += 1
    else:
        y = -y
    return y


def early_return(x):
    if x > 2.0:
        return x * 3.0
    y = x * x
    if y > 1.0:
        return y
    return math.exp(y)


def return_in_loop(x):
    for k in range(1, 10):
        if x * k > 5.0:
            return x * k + k
    return -x


def nested_loops(x, y):
    acc = 0.0
    for i in range(3):
        for j in range(i, 3):
            acc += (x ** i) * (y ** j) / (1 + i + j)
    return acc


def nested_loops_break(x):
    acc = 0.0
    for i in range(1, 5):
        j = 0
        while True:
            j += 1
            acc += x / (i * j)
            if j >= i:
                break
    return acc


def newton_sqrt(c):
    y = c if c > 1.0 else 1.0
    while abs(y * y - c) > 1e-12:
        y = 0.5 * (y + c / y)
    return y


def taylor_exp(x):
    term = 1.0
    total = 1.0
    k = 1
    while abs(term) > 1e-16:
        term = term * x / k
        total += term
        k += 1
    return total


def fixed_point_cos(a):
    y = 0.0
    while True:
        y_new = a * math.cos(y)
        if abs(y_new - y) < 1e-14:
            break
        y = y_new
    return y_new


def collatz_like(x, n):
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
        x = x * 1.01
    return x * steps


# =============================================================================
# Group 5 -- calls: module-level helpers, helpers calling helpers, recursion
# (unrolled along the path), keyword and default arguments, *args, nested
# functions and closures (over a variable of the enclosing function, and a
# module-level factory returning a closure), helpers returning tuples,
# lambdas bound to names; also recursion whose depth depends on the input,
# f(*list) and f(**dict) at the call site.
# =============================================================================


def _square(t):
    return t * t


def _poly(t):
    return _square(t) + 3.0 * t + 1.0


def _norm2(a, b):
    return math.sqrt(_square(a) + _square(b))


def _polar(x, y):
    return math.hypot(x, y), math.atan2(y, x)


def _affine(x, scale=2.0, *, shift=0.5):
    return scale * x + shift


def _total(*xs):
    acc = 0.0
    for v in xs:
        acc += v * v
    return acc


def _weighted(*xs, w=1.0):
    return w * sum(xs)


def make_scaler(k):
    def scale(t):
        return k * t * t
    return scale


def make_affine(a, b):
    return lambda t: a * t + b


scale_by_three = make_scaler(3.0)
CUBE = lambda t: t ** 3  # noqa: E731  (a lambda bound to a module-level name)


def call_helper(x):
    return _square(x) + _square(math.sin(x))


def helper_chain(x, y):
    return _poly(x) * _norm2(x, y)


def helper_tuple(x, y):
    r, th = _polar(x, y)
    return r * math.cos(2.0 * th)


def kwargs_defaults(x, y):
    return _affine(x) + _affine(x, y) + _affine(x, scale=y, shift=x * y) + _affine(y, shift=x)


def star_args(x, y):
    vals = (x, y, x * y)
    opts = {"scale": y, "shift": 1.0}
    return (_total(x, y) + _total(*vals) + _weighted(x, y, w=y) + _total()
            + _total(*[x, 2.0], y) + _affine(x, **opts))


def rec_pow(x, n):
    if n == 0:
        return 1.0
    if n % 2 == 0:
        h = rec_pow(x, n // 2)
        return h * h
    return x * rec_pow(x, n - 1)


def rec_halve(x):
    if x < 1.0:
        return x * x
    return rec_halve(x / 2.0) + math.log(x)


def use_rec_pow(x):
    return rec_pow(x, 7) - rec_pow(x + 1.0, 4)


def rec_nest(x, depth):
    if depth <= 0:
        return x
    return math.sin(rec_nest(x, depth - 1)) + x


def _even(t, n):
    return t if n == 0 else _odd(t * 1.1, n - 1)


def _odd(t, n):
    return -t if n == 0 else _even(t + 0.5, n - 1)


def mutual_recursion(x):
    return _even(x, 5) * _odd(x, 4)


def nested_def(x, y):
    def inner(a, b):
        return a * b + math.sin(a)
    return inner(x, y) + inner(y, x)


def closure_enclosing(x, y):
    a = x * y

    def inner(t):
        return a * t + x

    return inner(y) + inner(2.0)


def closure_default_capture(x):
    k = x * 2.0

    def inner(t, k=k):
        return t * k
    k = 100.0
    return inner(x) + k


def closure_in_loop(x):
    acc = 0.0
    for i in range(1, 4):
        def term(t):
            return t ** i / i
        acc += term(x)
    return acc


def nested_closures(x):
    def outer(a):
        def inner(b):
            return a * b + x
        return inner(a + 1.0)
    return outer(x) * outer(2.0)


def factory_module_level(x):
    return scale_by_three(x) + make_scaler(x)(2.0)


def factory_inside(x, y):
    f = make_affine(x, y)
    g = make_affine(f(y), 1.0)
    return g(x) * f(2.0)


def lambdas_named(x):
    sq = lambda t: t * t  # noqa: E731
    lin = lambda t, k=2.0: k * t + 1.0  # noqa: E731
    return sq(lin(x)) + lin(x, k=x) + CUBE(x)


def higher_order(x, y):
    def apply_twice(f, v):
        return f(f(v))
    return apply_twice(math.sin, x) + apply_twice(lambda t: t * y, x) + apply_twice(_square, y)


def map_lambda(x, y):
    return sum(map(lambda t: t * t, [x, y, x * y]))


# =============================================================================
# Group 6 -- containers inside the function: tuple and list literals, indexing
# (including negative), append, len, sum, list comprehensions (with if),
# generator expressions (also with next()), dicts with constant keys (also
# `in` on them), enumerate, zip.
# =============================================================================


def tuple_index(x, y):
    t = (x, y, x * y)
    return t[0] * t[-1] + t[1] - t[-2] * t[2]


def list_index(x, y):
    xs = [x, y, 3.0, x + y]
    xs[2] = xs[0] * xs[-1]
    return xs[2] + xs[-3] * xs[1]


def slices(x, y):
    xs = [x, y, x * y, x - y, 2.0]
    head = xs[:2]
    rev = xs[::-1]
    return head[0] * rev[0] + sum(xs[1:4]) * rev[1]


def list_append(x):
    out = []
    for i in range(4):
        out.append(x ** i)
    out.append(math.exp(x))
    return out[-1] + out[2] * len(out)


def list_len_sum(x, y):
    xs = [x, y, x * y]
    return sum(xs) / len(xs) + sum(xs, 10.0)


def list_comp(x, y):
    ys = [v * v for v in (x, y, x + y)]
    zs = [v for v in ys if v > 1.0]
    return sum(ys) + sum(zs) * len(zs)


def list_comp_nested(x):
    grid = [[x * i + j for j in range(3)] for i in range(2)]
    flat = [v for row in grid for v in row if v > 0.5]
    return sum(flat) + grid[1][2] * grid[0][-1]


def gen_expr(x, y):
    return sum(v ** 2 for v in (x, y)) + max(v * x for v in [1.0, y, 2.0])


def dict_const_keys(x, y):
    d = {"a": x, "b": y * 2.0}
    d["c"] = d["a"] * d["b"]
    d["a"] += 1.0
    total = 0.0
    for k in d:
        total += d[k]
    return total + sum(d.values()) + d.get("b") * d.get("z", 1.5)


def dict_membership(x, y):
    d = {"a": x, "b": y}
    if "a" in d and "c" not in d:
        d["c"] = d["a"] * d["b"]
    for key in ("b", "z"):
        if key in d:
            d[key] = d[key] * 2.0
    return sum(d.values())


def gen_expr_next(x, y):
    first_big = next(v for v in [x, y, x * y] if v > 1.0)
    gen = (v * v for v in (x, y))
    head = next(gen)
    rest = sum(gen)
    return first_big * head + rest + next((v for v in [x] if v > 100.0), 0.5)


def dict_items(x):
    weights = {1: 0.5, 2: 0.25, 3: 0.125}
    acc = 0.0
    for k, w in weights.items():
        acc += w * x ** k
    return acc


def enumerate_zip(x, y):
    xs = [x, y, x * y]
    ws = (0.5, -1.0, 2.0)
    acc = 0.0
    for i, (a, w) in enumerate(zip(xs, ws)):
        acc += (i + 1) * a * w
    for i, a in enumerate(xs, 1):
        acc += a / i
    return acc


def dot(x, y):
    u = [x, y, 1.0]
    v = [y, x * x, 2.0]
    return sum(a * b for a, b in zip(u, v))


def list_concat_repeat(x):
    xs = [x] * 3 + [x * x]
    ys = (x,) + (2.0, x)
    return sum(xs) * sum(ys)


def list_pop_count(x, y):
    stack = [x, y]
    stack.append(x * y)
    top = stack.pop()
    stack.extend([top, top])
    return sum(stack) + top * len(stack)


def matrix_vector(x, y):
    m = [[x, y], [y * y, 1.0]]
    v = (1.0, x)
    out = [sum(m[i][j] * v[j] for j in range(2)) for i in range(2)]
    return out[0] * out[1]


def list_mutation_loop(x):
    xs = [x, 2.0 * x, 3.0]
    for i in range(len(xs)):
        xs[i] = xs[i] * xs[i - 1]
    return xs[0] + xs[1] + xs[2]


# =============================================================================
# Group 7 -- zero gradients: an output that does not depend on a wrt argument
# (no error), including one of two wrt arguments unused.
# =============================================================================


def unused_arg(x, y):
    return y * y + 1.0


def constant_output(x):
    return 3.0


def only_through_int(x):
    return float(int(x)) * 2.0 + math.floor(x)


def input_returned_unchanged(x, y):
    return y


def dead_dependency(x, y):
    t = x * y
    t = 2.0
    return t * y


def only_in_branch_condition(x, y):
    if x > 0.0:
        return y * 2.0
    return y * 3.0


# =============================================================================
# Group 8 -- module-level numeric constants read by the function (globals);
# also flags (bool, str) and an int loop bound.
# =============================================================================

SCALE = 2.5
OFFSET = 3
RATE = 0.1
COEFFS = (1.0, -0.5, 0.25)


def use_globals(x):
    return SCALE * x + OFFSET + math.exp(-RATE * x)


def use_global_tuple(x):
    acc = 0.0
    for c in COEFFS:
        acc = acc * x + c
    return acc * SCALE


def global_in_helper(x, y):
    return _scaled_global(x) * y + _scaled_global(y)


def _scaled_global(t):
    return SCALE * t * t + OFFSET


USE_SQUARE = True
MODE = "sin"
N_TERMS = 3


def use_global_flags(x):
    y = x * x if USE_SQUARE else x
    if MODE == "sin":
        y = math.sin(y)
    elif MODE == "exp":
        y = math.exp(y)
    acc = 0.0
    for k in range(N_TERMS):
        acc += y ** (k + 1)
    return acc


# =============================================================================
# Group 9 -- int inputs treated as reals: f(3, 2.0) wrt 0 gives a float.
# =============================================================================


def int_input_poly(x, y):
    return x * x * y + 3 * x - y


def int_input_math(n):
    return math.sqrt(n) + math.log(n) * n


def int_input_division(a, b):
    return a / b + a * b


# =============================================================================
# Group 10 -- larger mixed programs combining the constructs above.
# =============================================================================


def rosenbrock(x, y):
    return (1.0 - x) ** 2 + 100.0 * (y - x * x) ** 2


def himmelblau(x, y):
    return (x * x + y - 11.0) ** 2 + (x + y * y - 7.0) ** 2


def rastrigin2(x, y):
    return 20.0 + sum(v * v - 10.0 * math.cos(2.0 * math.pi * v) for v in (x, y))


def ackley2(x, y):
    a = -20.0 * math.exp(-0.2 * math.sqrt(0.5 * (x * x + y * y)))
    b = -math.exp(0.5 * (math.cos(2 * math.pi * x) + math.cos(2 * math.pi * y)))
    return a + b + math.e + 20.0


def logsumexp3(x, y, z):
    vals = [x, y, z]
    m = max(vals)
    return m + math.log(sum(math.exp(v - m) for v in vals))


def softmax_first(x, y, z):
    vals = (x, y, z)
    m = max(vals)
    exps = [math.exp(v - m) for v in vals]
    return exps[0] / sum(exps)


def horner(x):
    coeffs = [2.0, -3.0, 0.5, 1.0, -0.25]
    acc = 0.0
    for c in coeffs:
        acc = acc * x + c
    return acc


def chebyshev(x, n):
    t0, t1 = 1.0, x
    for _ in range(n - 1):
        t0, t1 = t1, 2.0 * x * t1 - t0
    return t1


def legendre(x, n):
    p0, p1 = 1.0, x
    for k in range(1, n):
        p0, p1 = p1, ((2 * k + 1) * x * p1 - k * p0) / (k + 1)
    return p1


def euler_ode(k, y0):
    y = y0
    h = 0.1
    t = 0.0
    while t < 1.0 - 1e-9:
        y = y + h * (-k * y + math.sin(t))
        t += h
    return y


def rk4_step(y, t, h):
    def f(tt, yy):
        return -2.0 * yy + math.cos(tt)
    k1 = f(t, y)
    k2 = f(t + h / 2, y + h / 2 * k1)
    k3 = f(t + h / 2, y + h / 2 * k2)
    k4 = f(t + h, y + h * k3)
    return y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def trapezoid_integral(a, b):
    n = 20
    h = (b - a) / n
    acc = 0.5 * (math.exp(-a * a) + math.exp(-b * b))
    for i in range(1, n):
        t = a + i * h
        acc += math.exp(-t * t)
    return acc * h


def piecewise_linear(x):
    knots = [(0.0, 0.0), (1.0, 2.0), (2.0, 1.0), (4.0, 3.0)]
    for (x0, y0), (x1, y1) in zip(knots, knots[1:]):
        if x0 <= x < x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return 3.0


def clamp_smooth(x, lo, hi):
    y = max(lo, min(x, hi))
    return y * y + x


def bisection_count(x):
    lo, hi = 0.0, 4.0
    steps = 0
    while hi - lo > 0.5:
        mid = 0.5 * (lo + hi)
        if mid * mid > x:
            hi = mid
        else:
            lo = mid
        steps += 1
    return x * steps + x * x


def geometric_mean(x, y, z):
    vals = [x, y, z]
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


def variance(x, y, z):
    xs = [x, y, z]
    mu = sum(xs) / len(xs)
    return sum((v - mu) ** 2 for v in xs) / (len(xs) - 1)


def cross_entropy(x, y):
    logits = [x, y, 0.0]
    m = max(logits)
    lse = m + math.log(sum(math.exp(v - m) for v in logits))
    return lse - logits[1]


def poly_eval_kwargs(x, a=1.0, b=-2.0, c=0.5):
    return a * x * x + b * x + c


def power_series_sin(x):
    acc = 0.0
    term = x
    k = 1
    while abs(term) > 1e-17:
        acc += term
        term = -term * x * x / ((k + 1) * (k + 2))
        k += 2
    return acc


def continued_fraction(x):
    acc = x
    for k in range(6, 0, -1):
        acc = k + x / acc
    return acc


def gcd_scaled(x, a, b):
    while b:
        a, b = b, a % b
    return x * a


def distance_min(x, y):
    points = [(0.0, 0.0), (1.0, 2.0), (3.0, -1.0)]
    return min(math.hypot(x - px, y - py) for px, py in points)


def accumulate_products(x):
    prods = [1.0]
    for i in range(1, 5):
        prods.append(prods[-1] * (x + i))
    return sum(prods) / prods[-1]


def kwonly_params(x, *, scale=3.0):
    return scale * x * x


def star_params(x, *rest):
    acc = x
    for r in rest:
        acc = acc * r + x
    return acc


def default_params(x, y=2.0):
    return x ** y + y


def string_format_ok(x):
    label = f"x={x:.3f}"
    return x * len(label)


def fstring_len(x):
    text = f"{x:.0f}|{2.0 * x:>8.2f}|{'ok'!s}"
    return x * len(text)


def assert_ok(x):
    assert x > 0, "x must be positive"
    return math.log(x) * x


def isinstance_dispatch(x, n):
    if isinstance(n, int):
        return x ** n
    return x * n


def any_all(x, y):
    vals = [x, y, x * y]
    if all(v > 0 for v in vals):
        return sum(vals)
    if any(v > 0 for v in vals):
        return x - y
    return x * y


def reversed_loop(x):
    acc = 0.0
    for c in reversed([1.0, 2.0, 3.0]):
        acc = acc * x + c
    return acc


def divmod_fn(x, y):
    q, r = divmod(x, y)
    return q * y + r * x


def tuple_of_list_builtins(x):
    xs = list((x, x * 2.0))
    ts = tuple(xs)
    return ts[1] * xs[0]


CASES = [
    # group 1
    (arith_basic, (1.5, 2.5), (0, 1)),
    (alternating_sign, (1.3, 2), 0),
    (alternating_sign, (1.3, 3), 0),
    (arith_floordiv_mod, (7.3, 2.1), (0, 1)),
    (arith_floordiv_mod, (-4.3, 1.7), (0, 1)),
    (pow_const, (1.7,), 0),
    (pow_var, (1.3, 2.2), (0, 1)),
    (unary_ops, (0.7, -1.2), (0, 1)),
    (abs_fn, (0.7, -1.2), (0, 1)),
    (abs_fn, (-2.0, 1.5), (0, 1)),
    (minmax_two, (0.3, 1.7), (0, 1)),
    (minmax_two, (2.5, -0.4), (0, 1)),
    (minmax_n, (0.3, 1.7, -0.5), (0, 1, 2)),
    (minmax_n, (2.0, 1.1, 3.5), (0, 1, 2)),
    (minmax_list, (0.8, 1.3), (0, 1)),
    (minmax_list, (3.0, 0.2), (0, 1)),
    (float_int_round, (2.34,), 0),
    (float_int_round, (-1.62,), 0),
    (chained_compare, (1.5, 2.5), (0, 1)),
    (chained_compare, (2.5, 1.5), (0, 1)),
    (chained_compare, (1.5, 12.0), (0, 1)),
    (bool_ops, (1.5, 2.5), (0, 1)),
    (bool_ops, (-1.5, 2.5), (0, 1)),
    (bool_ops, (-7.0, -2.5), (0, 1)),
    (bool_values, (1.5, 2.5), (0, 1)),
    (bool_values, (0.5, 2.5), (0, 1)),
    (compare_as_numbers, (1.5, 0.5), (0, 1)),
    (compare_as_numbers, (-1.5, 0.5), (0, 1)),
    (cond_expr, (1.3,), 0),
    (cond_expr, (-1.3,), 0),
    (cond_expr_nested, (2.0, 1.0), (0, 1)),
    (cond_expr_nested, (1.0, 2.0), (0, 1)),
    (cond_expr_nested, (-1.0, 2.0), (0, 1)),
    (cond_expr_nested, (-1.0, -2.0), (0, 1)),
    # group 2
    (m_exp, (0.6,), 0),
    (m_expm1, (0.3,), 0),
    (m_log, (2.2,), 0),
    (m_log_base, (3.3, 2.5), (0, 1)),
    (m_log1p, (0.4,), 0),
    (m_log2_log10, (5.5,), 0),
    (m_sqrt, (2.7,), 0),
    (m_pow, (1.6, 2.3), (0, 1)),
    (m_sin_cos, (0.9,), 0),
    (m_tan, (0.6,), 0),
    (m_asin_acos, (0.35,), 0),
    (m_atan, (1.7,), 0),
    (m_atan2, (0.8, -1.3), (0, 1)),
    (m_atan2, (-0.8, 2.3), (0, 1)),
    (m_sinh_cosh, (0.8,), 0),
    (m_tanh, (0.45,), 0),
    (m_asinh, (1.2,), 0),
    (m_acosh, (1.8,), 0),
    (m_atanh, (0.4,), 0),
    (m_hypot, (1.2, -0.7, 2.1), (0, 1, 2)),
    (m_erf, (0.55,), 0),
    (m_fabs_copysign, (1.3, -0.6), (0, 1)),
    (m_fabs_copysign, (-1.3, 0.6), (0, 1)),
    (m_floor_ceil_trunc, (2.6,), 0),
    (m_floor_ceil_trunc, (-1.4,), 0),
    (m_constants, (0.7,), 0),
    (sigmoid, (0.3,), 0),
    (softplus, (1.2,), 0),
    (softplus, (-0.8,), 0),
    (gaussian_pdf, (0.4, 0.1, 1.3), (0, 1, 2)),
    (normal_cdf, (0.7,), 0),
    (logistic_loss, (0.5, -0.2, 1.5, 1.0), (0, 1)),
    (logistic_loss, (0.5, -0.2, 1.5, 0.0), (0, 1, 2)),
    # group 3
    (tuple_unpack_swap, (1.2, 0.7), (0, 1)),
    (rotate_three, (1.2, 0.7, -0.4), (0, 1, 2)),
    (aug_assign, (1.4, 2.6), (0, 1)),
    (item_assign_swap, (1.2, 0.7), (0, 1)),
    (reassign, (0.8,), 0),
    (dead_code, (0.8, 1.9), (0, 1)),
    # group 4
    (if_elif_else, (-2.0,), 0),
    (if_elif_else, (0.5,), 0),
    (if_elif_else, (2.0,), 0),
    (if_elif_else, (4.0,), 0),
    (nested_if, (1.0, 2.0), (0, 1)),
    (nested_if, (1.0, -2.0), (0, 1)),
    (nested_if, (-1.0, 2.0), (0, 1)),
    (nested_if, (-1.0, -2.0), (0, 1)),
    (range_one, (1.3,), 0),
    (range_two, (0.7,), 0),
    (range_three, (0.4,), 0),
    (range_from_input, (3.5,), 0),
    (range_from_input, (1.5,), 0),
    (range_int_arg, (1.1, 5), 0),
    (range_int_arg, (1.1, 0), 0),
    (range_bounds_computed, (2.5, 7), 0),
    (for_over_tuple, (1.3,), 0),
    (for_over_list, (1.3, -0.4), (0, 1)),
    (while_loop, (0.6,), 0),
    (while_break, (0.7,), 0),
    (while_break, (3.0,), 0),
    (for_continue, (1.1,), 0),
    (for_else, (0.5,), 0),
    (for_else, (3.0,), 0),
    (while_else, (1.1,), 0),
    (while_else, (3.0,), 0),
    (early_return, (3.0,), 0),
    (early_return, (1.5,), 0),
    (early_return, (0.5,), 0),
    (return_in_loop, (1.3,), 0),
    (return_in_loop, (0.3,), 0),
    (nested_loops, (1.2, 0.8), (0, 1)),
    (nested_loops_break, (1.7,), 0),
    (newton_sqrt, (2.0,), 0),
    (newton_sqrt, (10.0,), 0),
    (newton_sqrt, (0.3,), 0),
    (taylor_exp, (1.5,), 0),
    (fixed_point_cos, (0.5,), 0),
    (collatz_like, (1.5, 6), 0),
    # group 5
    (call_helper, (0.9,), 0),
    (helper_chain, (0.9, 1.4), (0, 1)),
    (helper_tuple, (0.9, 1.4), (0, 1)),
    (kwargs_defaults, (0.9, 1.4), (0, 1)),
    (star_args, (0.9, 1.4), (0, 1)),
    (rec_pow, (1.3, 5), 0),
    (use_rec_pow, (0.9,), 0),
    (rec_halve, (0.7,), 0),
    (rec_halve, (5.3,), 0),
    (rec_halve, (37.0,), 0),
    (rec_nest, (0.7, 4), 0),
    (mutual_recursion, (0.7,), 0),
    (nested_def, (0.9, 1.4), (0, 1)),
    (closure_enclosing, (0.9, 1.4), (0, 1)),
    (closure_default_capture, (0.9,), 0),
    (closure_in_loop, (1.3,), 0),
    (nested_closures, (0.6,), 0),
    (factory_module_level, (0.6,), 0),
    (factory_inside, (0.6, 1.7), (0, 1)),
    (scale_by_three, (0.6,), 0),
    (lambdas_named, (0.6,), 0),
    (higher_order, (0.6, 1.3), (0, 1)),
    (map_lambda, (0.6, 1.3), (0, 1)),
    # group 6
    (tuple_index, (0.6, 1.3), (0, 1)),
    (list_index, (0.6, 1.3), (0, 1)),
    (slices, (0.6, 1.3), (0, 1)),
    (list_append, (0.6,), 0),
    (list_len_sum, (0.6, 1.3), (0, 1)),
    (list_comp, (0.6, 1.3), (0, 1)),
    (list_comp, (1.6, -0.3), (0, 1)),
    (list_comp_nested, (0.3,), 0),
    (gen_expr, (0.6, 1.3), (0, 1)),
    (dict_const_keys, (0.6, 1.3), (0, 1)),
    (dict_membership, (0.6, 1.3), (0, 1)),
    (gen_expr_next, (0.6, 1.3), (0, 1)),
    (gen_expr_next, (1.6, 0.3), (0, 1)),
    (dict_items, (0.6,), 0),
    (enumerate_zip, (0.6, 1.3), (0, 1)),
    (dot, (0.6, 1.3), (0, 1)),
    (list_concat_repeat, (0.6,), 0),
    (list_pop_count, (0.6, 1.3), (0, 1)),
    (matrix_vector, (0.6, 1.3), (0, 1)),
    (list_mutation_loop, (0.6,), 0),
    # group 7
    (unused_arg, (0.6, 1.3), 0),
    (unused_arg, (0.6, 1.3), (0, 1)),
    (constant_output, (0.6,), 0),
    (only_through_int, (2.6,), 0),
    (input_returned_unchanged, (0.6, 1.3), (0, 1)),
    (dead_dependency, (0.6, 1.3), (0, 1)),
    (only_in_branch_condition, (0.6, 1.3), (0, 1)),
    (only_in_branch_condition, (-0.6, 1.3), (0, 1)),
    # group 8
    (use_globals, (0.6,), 0),
    (use_global_tuple, (0.6,), 0),
    (global_in_helper, (0.6, 1.3), (0, 1)),
    (use_global_flags, (0.6,), 0),
    # group 9
    (int_input_poly, (3, 2.0), 0),
    (int_input_poly, (3, 2), (0, 1)),
    (int_input_math, (5,), 0),
    (int_input_division, (7, 2), (0, 1)),
    (rosenbrock, (2, 1), (0, 1)),
    # group 10
    (rosenbrock, (0.3, 0.7), (0, 1)),
    (himmelblau, (1.2, -0.7), (0, 1)),
    (rastrigin2, (0.3, -1.2), (0, 1)),
    (ackley2, (0.3, -1.2), (0, 1)),
    (logsumexp3, (0.3, -1.2, 0.8), (0, 1, 2)),
    (softmax_first, (0.3, -1.2, 0.8), (0, 1, 2)),
    (horner, (1.3,), 0),
    (chebyshev, (0.4, 5), 0),
    (legendre, (0.4, 6), 0),
    (euler_ode, (0.7, 1.2), (0, 1)),
    (rk4_step, (1.0, 0.2, 0.1), (0, 1, 2)),
    (trapezoid_integral, (0.2, 1.3), (0, 1)),
    (piecewise_linear, (0.5,), 0),
    (piecewise_linear, (1.5,), 0),
    (piecewise_linear, (3.0,), 0),
    (piecewise_linear, (5.0,), 0),
    (clamp_smooth, (0.5, 0.0, 1.0), (0, 1, 2)),
    (clamp_smooth, (1.5, 0.0, 1.0), (0, 1, 2)),
    (clamp_smooth, (-0.5, 0.0, 1.0), (0, 1, 2)),
    (bisection_count, (2.3,), 0),
    (geometric_mean, (1.3, 2.2, 0.7), (0, 1, 2)),
    (variance, (1.3, 2.2, 0.7), (0, 1, 2)),
    (cross_entropy, (1.3, 0.2), (0, 1)),
    (poly_eval_kwargs, (1.3,), 0),
    (poly_eval_kwargs, (1.3, 2.0, 1.0, 0.0), (0, 1, 2, 3)),
    (power_series_sin, (0.9,), 0),
    (continued_fraction, (1.4,), 0),
    (gcd_scaled, (1.4, 12, 18), 0),
    (distance_min, (0.9, 1.6), (0, 1)),
    (accumulate_products, (0.7,), 0),
    (kwonly_params, (1.3,), 0),
    (star_params, (1.3, 2.0, 0.5), 0),
    (star_params, (1.3,), "x"),
    (default_params, (1.3,), 0),
    (default_params, (1.3, 3.0), ("x", "y")),
    (string_format_ok, (1.3,), 0),
    (fstring_len, (1.3,), 0),
    (fstring_len, (12.3,), 0),
    (assert_ok, (1.3,), 0),
    (isinstance_dispatch, (1.3, 3), 0),
    (isinstance_dispatch, (1.3, 2.5), (0, 1)),
    (any_all, (1.3, 0.5), (0, 1)),
    (any_all, (1.3, -0.5), (0, 1)),
    (any_all, (-1.3, -0.5), (0, 1)),
    (reversed_loop, (1.3,), 0),
    (divmod_fn, (7.3, 2.1), (0, 1)),
    (tuple_of_list_builtins, (1.3,), 0),
]
