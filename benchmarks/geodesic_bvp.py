"""Geodesic BVP benchmark on Part II's case: Stein metric of the rho = 0.8 Gaussian.

    python -m benchmarks.geodesic_bvp [--repeats 7]

Reports, for jaxgeo's default `geodesic_bvp` and for a plain jitted Adam loop of 3,000
steps (the baseline named in the core issue), measured in the same run:
  - compile time and median wall time of one solve from (-4, -2) to (4, -2), 64 points;
  - wall time and throughput of 256 random endpoint pairs in [-4, 4]^2 (numpy seed 0)
    solved in one vmapped call;
  - the accuracy reached: relative length error against a tightly converged reference.
"""

import argparse

import jax


jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp
import numpy as np
import optax

import jaxgeo as jg

from ._timing import timed


NUM_POINTS = 64
X0 = jnp.array([-4.0, -2.0])
X1 = jnp.array([4.0, -2.0])


def metric() -> jg.SteinMetric:
    return jg.SteinMetric(jg.scores.gaussian(jnp.zeros(2), jnp.array([[1.0, 0.8], [0.8, 1.0]])))


def adam_baseline(m, x0, x1, num_steps: int = 3000, lr: float = 1e-2):
    """A plain jitted Adam loop on the raw interior points, fixed number of steps."""
    line = jg.straight_line(x0, x1, NUM_POINTS)
    opt = optax.adam(lr)

    def energy(inner):
        return jg.curve_energy(m, jnp.concatenate([x0[None], inner, x1[None]]))

    def step(_, carry):
        inner, state = carry
        updates, state = opt.update(jax.grad(energy)(inner), state)
        return optax.apply_updates(inner, updates), state

    inner, _ = jax.lax.fori_loop(0, num_steps, step, (line[1:-1], opt.init(line[1:-1])))
    xs = jnp.concatenate([x0[None], inner, x1[None]])
    return jg.curve_length(m, xs)


def main(repeats: int = 7) -> list[dict]:
    m = metric()
    pairs = jnp.asarray(np.random.default_rng(0).uniform(-4, 4, size=(256, 2, 2)))
    ref = jg.geodesic_bvp(
        m, X0, X1, num_points=NUM_POINTS, rtol=1e-12, atol=1e-12, max_steps=100_000
    )

    def bvp(solver):
        def solve(a, b):
            sol = jg.geodesic_bvp(m, a, b, num_points=NUM_POINTS, solver=solver, throw=False)
            return sol.length, sol.stats["num_steps"], sol.result == jg.RESULTS.successful

        return solve

    def adam(a, b):
        return adam_baseline(m, a, b), jnp.array(3000), jnp.array(True)

    methods = [
        ("jaxgeo default (EnergyNewton)", bvp(None)),
        ("jaxgeo EnergyDescent (L-BFGS)", bvp(jg.EnergyDescent())),
        ("plain jitted Adam, 3000 steps", adam),
    ]
    print(
        f"Stein metric rho=0.8, {X0.tolist()} -> {X1.tolist()}, {NUM_POINTS} points; "
        f"converged discrete length {float(ref.length):.10f}"
    )
    print(
        "| method | compile (s) | one solve (ms) | steps | rel. length error "
        "| 256 pairs (s) | geodesics/s | successful | steps median / max |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name, fn in methods:
        (length, steps, _), compile_s, single_s = timed(jax.jit(fn), X0, X1, repeats=repeats)
        batch = jax.jit(jax.vmap(lambda p, fn=fn: fn(p[0], p[1])))
        (_, b_steps, b_ok), _, batch_s = timed(batch, pairs, repeats=max(3, repeats // 2))
        error = abs(float(length - ref.length)) / float(ref.length)
        rows.append(dict(name=name, single_ms=single_s * 1e3, batch_s=batch_s, error=error))
        print(
            f"| {name} | {compile_s:.2f} | {single_s * 1e3:.2f} | {int(steps)} | {error:.1e} "
            f"| {batch_s:.3f} | {256 / batch_s:.0f} | {int(jnp.sum(b_ok))}/256 "
            f"| {float(jnp.median(b_steps)):.0f} / {int(jnp.max(b_steps))} |"
        )
    base = rows[-1]
    for row in rows[:-1]:
        print(
            f"{row['name']} / Adam: one solve {row['single_ms'] / base['single_ms']:.2f}, "
            f"256 pairs {row['batch_s'] / base['batch_s']:.3f}"
        )
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    main(parser.parse_args().repeats)
