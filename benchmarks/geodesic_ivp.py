"""Geodesic ODE benchmark.

    python -m benchmarks.geodesic_ivp

1. One exp map of the Part II Stein metric (rho = 0.8 Gaussian) from x0 = (-4, -2) with
   v0 = (1, 0.5), t1 = 1: compile time, median wall time, and the end-point error against
   a tight-tolerance Dopri8 reference.
2. `geodesic_acceleration` (matrix-free: one JVP, one gradient, one Sherman-Morrison
   solve) against the contraction of the full Christoffel tensor from `christoffel`, for
   the Stein metric of a D-dimensional Gaussian, D = 2, 16, 128, 1024; and the Stein
   metric's closed form for conservative scores (two Hessian-vector products).
"""

import jax


jax.config.update("jax_enable_x64", True)

import diffrax as dfx
import jax.numpy as jnp
import numpy as np

import jaxgeo as jg

from .report import command_line, table_header, table_row, timed


def stein(dim: int, conservative: bool = False) -> jg.SteinMetric:
    rng = np.random.default_rng(dim)
    a = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    score = jg.scores.gaussian(jnp.zeros(dim), jnp.asarray(a @ a.T + np.eye(dim)))
    return jg.SteinMetric(score, conservative=conservative)


def main(repeats: int = 7, max_christoffel_dim: int = 128) -> None:
    cov = jnp.array([[1.0, 0.8], [0.8, 1.0]])
    metric = jg.SteinMetric(jg.scores.gaussian(jnp.zeros(2), cov))
    x0, v0 = jnp.array([-4.0, -2.0]), jnp.array([1.0, 0.5])
    exp = jax.jit(lambda x, v: jg.exp_map(metric, x, v))
    end, c, t = timed(exp, x0, v0, repeats=repeats)
    ref = jg.exp_map(
        metric,
        x0,
        v0,
        solver=dfx.Dopri8(),
        rtol=1e-13,
        atol=1e-13,
        max_steps=100_000,
    )
    print(
        f"exp map (Stein rho=0.8, x0={x0.tolist()}, v0={v0.tolist()}): compile {c:.2f} s, "
        f"{t * 1e3:.2f} ms, end point {np.asarray(end).round(8).tolist()}, "
        f"error {float(jnp.max(jnp.abs(end - ref))):.1e}"
    )
    header = [
        "D",
        "matrix-free (us)",
        "conservative closed form (us)",
        "via christoffel (us)",
        "max abs difference",
    ]
    print("\n".join(table_header(header)))
    for dim in (2, 16, 128, 1024):
        m = stein(dim)
        x = jnp.asarray(np.random.default_rng(1).normal(size=dim))
        v = jnp.asarray(np.random.default_rng(2).normal(size=dim))
        free = jax.jit(lambda x, v, m=m: jg.geodesic_acceleration(m, x, v))
        a_free, _, t_free = timed(free, x, v, repeats=repeats * 5)
        closed = jax.jit(lambda x, v, m=stein(dim, True): jg.geodesic_acceleration(m, x, v))
        a_closed, _, t_closed = timed(closed, x, v, repeats=repeats * 5)
        diffs = [float(jnp.max(jnp.abs(a_free - a_closed)))]
        if dim <= max_christoffel_dim:
            full = jax.jit(lambda x, v, m=m: -jnp.einsum("kij,i,j->k", jg.christoffel(m, x), v, v))
            a_full, _, t_full = timed(full, x, v, repeats=repeats)
            diffs.append(float(jnp.max(jnp.abs(a_free - a_full))))
            full_us = f"{t_full * 1e6:.0f}"
        else:
            full_us = "skipped (D^3 tensor)"
        print(
            table_row(
                [
                    f"{dim}",
                    f"{t_free * 1e6:.0f}",
                    f"{t_closed * 1e6:.0f}",
                    full_us,
                    f"{max(diffs):.1e}",
                ]
            )
        )


if __name__ == "__main__":
    main(**command_line(__doc__, repeats=7, max_christoffel_dim=128))
