"""Differentiating through a simulation whose loop length depends on its inputs.

Run it from the repository root:

    python3 examples/projectile.py [--target METRES] [--out DIR]

A projectile with quadratic air drag is launched from a height of LAUNCH_HEIGHT
with an angle (in degrees) and a speed, and stepped with explicit Euler
``while y > 0``: how many steps that loop takes depends on the inputs.  The
landing point is interpolated linearly on the last step, so the distance, and
the loss (distance - target)**2, are continuous in the angle and the speed, and
smooth except where the number of steps changes, where only the slope jumps a
little (the plain "x after the last step" would jump by a whole step there).
ad_transform differentiates the loss along the path the inputs take, and
gradient descent aims the projectile at the target:

1. at the fixed starting angle, on the speed alone;
2. then on the angle and the speed together.

The angle is measured in degrees so that one degree and one metre per second
move the landing point by comparable amounts (about 0.2-1 m and 2-2.5 m here),
and one learning rate suits both.  The Euler loop is rolled in the derivative:
its body is compiled once, as a Python loop whose test is checked on every
iteration, so one compiled path serves every trip count.
With ``--out DIR`` the trajectories are drawn into DIR/projectile.png.
"""
import argparse
import math
import os
import textwrap
import time

from ad_transform import value_and_gradient

G = 9.81                # gravity, m/s^2
DRAG = 0.01             # quadratic drag per unit mass, 1/m: a = -DRAG * |v| * v
DT = 0.05               # Euler time step, s
LAUNCH_HEIGHT = 1.0     # m

TARGET = 40.0           # m
ANGLE0, SPEED0 = 30.0, 15.0     # degrees, m/s: the first guess (lands short)
ANGLE2 = 70.0           # degrees: phase 2 restarts from this steep angle
LEARNING_RATE = 0.06
TOLERANCE = 0.01        # m: stop when |distance - target| is below this


def step(x, y, vx, vy):
    """One explicit Euler step of the drag equations."""
    speed = math.sqrt(vx * vx + vy * vy)
    ax = -DRAG * speed * vx
    ay = -G - DRAG * speed * vy
    return x + DT * vx, y + DT * vy, vx + DT * ax, vy + DT * ay


def landing_distance(angle, speed):
    """Where the projectile launched at ``angle`` degrees and ``speed`` m/s lands."""
    theta = math.radians(angle)
    x, y = 0.0, LAUNCH_HEIGHT
    vx, vy = speed * math.cos(theta), speed * math.sin(theta)
    x_prev, y_prev = x, y
    while y > 0:
        x_prev, y_prev = x, y
        x, y, vx, vy = step(x, y, vx, vy)
    # the last step went from y_prev > 0 to y <= 0: cross y = 0 on the straight line
    return x_prev + (x - x_prev) * y_prev / (y_prev - y)


def loss(angle, speed, target):
    """Squared miss distance of a launch at (angle, speed) aimed at ``target``."""
    return (landing_distance(angle, speed) - target) ** 2


def trajectory(angle, speed):
    """The Euler points of a flight, up to and including the landing point (plain Python)."""
    theta = math.radians(angle)
    x, y = 0.0, LAUNCH_HEIGHT
    vx, vy = speed * math.cos(theta), speed * math.sin(theta)
    xs, ys = [x], [y]
    while y > 0:
        x, y, vx, vy = step(x, y, vx, vy)
        xs.append(x)
        ys.append(y)
    xs[-1] = landing_distance(angle, speed)
    ys[-1] = 0.0
    return xs, ys


def steps_of(angle, speed):
    return len(trajectory(angle, speed)[0]) - 1


def descend(loss_and_grad, angle, speed, target, lr, max_iter, both):
    """Gradient descent on the speed (``both=False``) or on the angle and the speed.

    Prints one line per iteration: the Euler steps of the flight (the trip count of
    the while loop) and whether its derivative was compiled now (miss) or reused (hit).
    """
    history = [(angle, speed)]
    for it in range(max_iter):
        misses = loss_and_grad.cache_info().misses
        value, (g_angle, g_speed) = loss_and_grad(angle, speed, target)
        how = "miss" if loss_and_grad.cache_info().misses > misses else "hit"
        print(f"  iter {it:3d}: angle {angle:8.4f} deg  speed {speed:8.4f} m/s  "
              f"off by {math.sqrt(value):8.4f} m  {steps_of(angle, speed):3d} Euler steps "
              f"(cache {how})")
        if math.sqrt(value) < TOLERANCE:
            break
        speed -= lr * g_speed
        if both:
            angle -= lr * g_angle
        history.append((angle, speed))
    else:
        raise RuntimeError(f"no convergence in {max_iter} iterations")
    return angle, speed, history, it


def save_figure(path, target, runs, tries):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    top = 0.0
    for i, (angle, speed) in enumerate(tries):
        xs, ys = trajectory(angle, speed)
        ax.plot(xs, ys, color="0.75", lw=0.8, zorder=1,
                label="intermediate iterates" if i == 0 else None)
        top = max(top, max(ys))
    for label, (angle, speed), style in runs:
        xs, ys = trajectory(angle, speed)
        ax.plot(xs, ys, style, lw=1.8, zorder=2,
                label=f"{label}: {angle:.2f} deg, {speed:.2f} m/s -> {xs[-1]:.2f} m")
        top = max(top, max(ys))
    ax.axvline(target, color="k", ls=":", lw=1)
    ax.plot([target], [0.0], "kx", ms=10, mew=2, zorder=3, label=f"target {target:g} m")
    ax.axhline(0.0, color="tab:brown", lw=1)
    ax.set_xlabel("distance (m)")
    ax.set_ylabel("height (m)")
    ax.set_title("Aiming a projectile with quadratic drag by gradient descent")
    ax.set_ylim(-0.5, 1.65 * top)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=float, default=TARGET, help="target distance (m)")
    parser.add_argument("--out", default=None, help="directory for projectile.png (optional)")
    parser.add_argument("--lr", type=float, default=LEARNING_RATE)
    parser.add_argument("--max-iter", type=int, default=200)
    args = parser.parse_args(argv)
    target = args.target

    loss_and_grad = value_and_gradient(loss, wrt=(0, 1))
    start = time.perf_counter()
    d0 = landing_distance(ANGLE0, SPEED0)
    print(f"target {target:g} m; first guess {ANGLE0:g} deg, {SPEED0:g} m/s lands at "
          f"{d0:.3f} m after {steps_of(ANGLE0, SPEED0)} Euler steps")

    print("phase 1: gradient descent on the speed at a fixed angle")
    angle, speed, hist1, n1 = descend(loss_and_grad, ANGLE0, SPEED0, target, args.lr,
                                      args.max_iter, False)
    d1 = landing_distance(angle, speed)
    print(f"  -> {n1} steps of descent: {angle:.4f} deg, {speed:.4f} m/s lands at {d1:.4f} m")
    print(f"  {loss_and_grad.cache_info()}")

    # phase 2 moves away from the phase-1 solution on purpose: a much steeper launch
    # at the phase-1 speed falls short, and the descent must fix angle and speed
    angle2, speed2 = ANGLE2, speed
    print(f"phase 2: gradient descent on angle and speed, from {angle2:.4f} deg, "
          f"{speed2:.4f} m/s (lands at {landing_distance(angle2, speed2):.3f} m)")
    angle, speed, hist2, n2 = descend(loss_and_grad, angle2, speed2, target, args.lr,
                                      args.max_iter, True)
    distance = landing_distance(angle, speed)
    elapsed = time.perf_counter() - start
    print(f"  -> {n2} steps of descent: {angle:.4f} deg, {speed:.4f} m/s lands at "
          f"{distance:.4f} m after {steps_of(angle, speed)} Euler steps")
    print(f"final angle = {angle:.6f}")
    print(f"final speed = {speed:.6f}")
    print(f"final distance = {distance:.6f}")
    print(f"target = {target:.6f}")
    print(f"miss = {abs(distance - target):.6f} (tolerance {TOLERANCE})")
    print(f"time: {elapsed:.2f} s")

    info = loss_and_grad.cache_info()
    print(f"cache_info: {info}")
    print(textwrap.fill(
          "The `while y > 0:` loop is rolled in the derivative: its body is compiled once, "
          "inside a Python loop that checks the loop test on every iteration, so one "
          "compiled path serves every trip count the descent visits (a loop shorter than "
          "gradient's unroll= threshold, 16 iterations by default, would be unrolled "
          "into straight-line code, one path per trip count).", 88))
    trips = sorted({steps_of(a, s) for a, s in hist1 + hist2})
    print(f"distinct trip counts visited: {len(trips)} ({trips[0]}..{trips[-1]})")

    if args.out:
        os.makedirs(args.out, exist_ok=True)
        path = os.path.join(args.out, "projectile.png")
        save_figure(path, target, [
            ("first guess", (ANGLE0, SPEED0), "--"),
            ("after phase 1 (speed)", hist1[-1], "-"),
            ("phase 2 start", (angle2, speed2), ":"),
            ("after phase 2 (both)", (angle, speed), "-"),
        ], hist1[1:-1] + hist2[1:-1])
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
