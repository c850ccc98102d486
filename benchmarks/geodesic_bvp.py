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
import time

import jax


jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp
import numpy as np
import optax

import jaxgeo as jg


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


def timed(fn, *args, repeats: int):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return out, compile_s, float(np.median(times))


def main(repeats: int = 7) -> dict:
    m = metric()
    pairs = jnp.asarray(np.random.default_rng(0).uniform(-4, 4, size=(256, 2, 2)))
    ref = jg.geodesic_bvp(
        m, X0, X1, num_points=NUM_POINTS, rtol=1e-12, atol=1e-12, max_steps=100_000
    )

    single = jax.jit(lambda a, b: jg.geodesic_bvp(m, a, b, num_points=NUM_POINTS, throw=False))
    batch = jax.jit(
        jax.vmap(lambda p: jg.geodesic_bvp(m, p[0], p[1], num_points=NUM_POINTS, throw=False))
    )
    adam_single = jax.jit(lambda a, b: adam_baseline(m, a, b))
    adam_batch = jax.jit(jax.vmap(lambda p: adam_baseline(m, p[0], p[1])))

    sol, c1, t1 = timed(single, X0, X1, repeats=repeats)
    sols, cb, tb = timed(batch, pairs, repeats=max(3, repeats // 2))
    adam_len, ca1, ta1 = timed(adam_single, X0, X1, repeats=repeats)
    _, cab, tab = timed(adam_batch, pairs, repeats=max(3, repeats // 2))

    ok = int(jnp.sum(sols.result == jg.RESULTS.successful))
    steps = sols.stats["num_steps"]
    rows = [
        (
            "jaxgeo geodesic_bvp (default)",
            c1,
            t1,
            cb,
            tb,
            abs(float(sol.length - ref.length)) / float(ref.length),
            int(sol.stats["num_steps"]),
        ),
        (
            "plain Adam, 3000 steps",
            ca1,
            ta1,
            cab,
            tab,
            abs(float(adam_len - ref.length)) / float(ref.length),
            3000,
        ),
    ]
    print(
        f"Stein metric rho=0.8, ({X0.tolist()}) -> ({X1.tolist()}), {NUM_POINTS} points; "
        f"reference length {float(ref.length):.10f}"
    )
    print(
        "| method | compile (s) | one solve (ms) | 256 pairs compile (s) | 256 pairs (s) "
        "| geodesics/s | rel. length error | steps |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, c, t, cbb, tbb, err, num in rows:
        print(
            f"| {name} | {c:.2f} | {t * 1e3:.2f} | {cbb:.2f} | {tbb:.3f} | {256 / tbb:.0f} "
            f"| {err:.1e} | {num} |"
        )
    print(
        f"batch: {ok}/256 successful, steps median {float(jnp.median(steps)):.0f} "
        f"max {int(jnp.max(steps))}"
    )
    print(f"ratio jaxgeo/Adam: one solve {t1 / ta1:.2f}, 256 pairs {tb / tab:.2f}")
    return dict(single_ms=t1 * 1e3, batch_s=tb, adam_single_ms=ta1 * 1e3, adam_batch_s=tab)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    main(parser.parse_args().repeats)
