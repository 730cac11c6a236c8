"""A first tour of ad_transform.

Run it from the repository root:

    python3 examples/intro.py

It differentiates f(x1, x2) = log(x1) + x1*sin(x2) at (2, 1), shows the
Python code ad_transform wrote for that derivative, checks the answer against
finite differences, and then looks at a function with an ``if`` whose two
branches get two separately cached derivatives.
"""
import math

from ad_transform import gradient, value_and_gradient
from ad_transform.testing import check_gradient


def heading(title):
    print()
    print(f"== {title} ==")


# -- 1. The function ------------------------------------------------------------
# An ordinary Python function of two floats.  Nothing about it is special:
# ad_transform reads its source, so it must live in a file (or a notebook cell).
def f(x1, x2):
    return math.log(x1) + x1 * math.sin(x2)


heading("f(x1, x2) = log(x1) + x1*sin(x2) at (2, 1)")
print("f(2, 1) =", f(2.0, 1.0))

# -- 2. Its gradient --------------------------------------------------------------
# gradient(f, wrt=...) returns a new function.  wrt=(0, 1) asks for the partial
# derivatives with respect to both parameters, returned as a tuple:
#   df/dx1 = 1/x1 + sin(x2)        df/dx2 = x1*cos(x2)
df = gradient(f, wrt=(0, 1))
heading("gradient(f, wrt=(0, 1))(2.0, 1.0)")
print(df(2.0, 1.0))
print("by hand:", (1 / 2.0 + math.sin(1.0), 2.0 * math.cos(1.0)))

# -- 3. The code that computed it -------------------------------------------------
# The first call lowered f to straight-line code along the path (2.0, 1.0) takes,
# appended the adjoint of every step in reverse order, dropped what the gradient
# does not need, and compiled the result.  .source() shows that Python code.
heading("generated derivative: df.source(2.0, 1.0)")
print(df.source(2.0, 1.0))

# value_and_gradient keeps the primal computation too, and returns
# (f(x1, x2), (df/dx1, df/dx2)) from one run.
vdf = value_and_gradient(f, wrt=(0, 1))
heading("value_and_gradient(f, wrt=(0, 1))(2.0, 1.0)")
print(vdf(2.0, 1.0))
heading("generated source of value_and_gradient")
print(vdf.source(2.0, 1.0))

# -- 4. Trust, but verify -----------------------------------------------------------
# check_gradient compares the derivative with central finite differences and
# raises AssertionError (with a table of the disagreeing entries) on a mismatch.
# Use it in your own test suite for every function you differentiate.
heading("check_gradient(f, 2.0, 1.0, wrt=(0, 1))")
print("agrees with finite differences:", check_gradient(f, 2.0, 1.0, wrt=(0, 1)))


# -- 5. Control flow: one compiled derivative per path ------------------------------
# soft_ramp(x) is x - 0.5 above 1 and x*x/2 below, so its derivative is 1 or x.
# Python decides the `if` on the real input.  ad_transform records that decision
# and protects the compiled code with a guard; inputs that take the other branch
# make the guard fail, and a second derivative is built and cached beside the first.
@gradient
def soft_ramp(x):
    if x > 1.0:
        return x - 0.5
    return 0.5 * x * x


heading("a function with an if: two control paths")
for x in (3.0, 2.0, 0.25, -4.0):
    print(f"soft_ramp'({x}) = {soft_ramp(x)}   {soft_ramp.cache_info()}")
print("misses = paths compiled, hits = calls answered by an already compiled path")

heading("the derivative for x > 1.0 (note the guard that checks the branch)")
print(soft_ramp.source(3.0))
heading("the derivative for x <= 1.0")
print(soft_ramp.source(0.25))
