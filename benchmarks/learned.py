"""Time to result on a learned metric (W6, jaxgeo's side): the Stein metric of an
`MLPScore` trained on a noisy 2-D ring.

    python -m benchmarks.learned [--repeats 3] [--smoke]

The data: 5,000 points at radius 2 + N(0, 0.2^2), uniform in angle (seed 0). The score:
`jg.nn.MLPScore(2, width=64, depth=2)` trained by denoising score matching
(sigma = 0.1, Adam 1e-3, 3,000 steps of 256, seed 1); the metric `SteinMetric(score,
damping=1)`. For each call a user reaches for first, the compile time (the first call:
tracing, compilation and one run, in this process with no persistent cache) and the
median of `--repeats` further calls, and for the distances the error relative to a
reference: the 512-segment Richardson-extrapolated geodesic at tolerance 1e-12,
checked against multiple shooting (32 segments, 1e-12).

Pairs: a quarter of the ring, (2, 0) -> (0, 2), for the single calls; 30 data points
(seed 2) for `pairwise_distances` (the 435 pairs i < j, end to end: compile and solve).
`knn_graph` is built on 500 data points.
"""

import functools
import time

import jax


jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp
import numpy as np
import optax

import jaxgeo as jg

from .report import command_line, markdown_table, timed


def ring(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0, 2 * np.pi, n)
    radius = 2.0 + 0.2 * rng.normal(size=n)
    return np.stack([radius * np.cos(theta), radius * np.sin(theta)], axis=1)


def trained_metric(num_steps: int) -> tuple[jg.SteinMetric, np.ndarray]:
    data = ring(5000)
    model = jg.nn.MLPScore(
        2, width=64, depth=2, scale=jnp.asarray(data.std(0)), key=jax.random.key(0)
    )
    fit = jg.train.fit(
        functools.partial(jg.train.denoising_score_matching, sigma=0.1),
        model,
        jnp.asarray(data),
        optimizer=optax.adam(1e-3),
        num_steps=num_steps,
        batch_size=256,
        key=jax.random.key(1),
        steps_per_chunk=min(num_steps, 1000),
    )
    return jg.SteinMetric(fit.model, damping=1.0), data


def references(metric, a, b) -> tuple[float, float]:
    """The reference length (512-segment Richardson at 1e-12) and its difference from
    32-segment multiple shooting at 1e-12."""
    tight = jg.EnergyNewton(rtol=1e-12, atol=1e-12)
    extrapolated = jg.distance(metric, a, b, solver=jg.Richardson(tight), num_points=513)
    shooting = jg.Shooting(num_segments=32, rtol=1e-12, atol=1e-12, init_solver=tight)
    shot = jg.distance(metric, a, b, solver=shooting, num_points=257)
    return float(extrapolated), float(abs(shot - extrapolated) / extrapolated)


def main(repeats: int = 3, smoke: bool = False) -> list[dict]:
    start = time.perf_counter()
    metric, data = trained_metric(200 if smoke else 3000)
    print(f"trained the score in {time.perf_counter() - start:.1f} s")
    a, b = jnp.array([2.0, 0.0]), jnp.array([0.0, 2.0])
    reference, shooting_gap = references(metric, a, b)
    print(f"reference length {reference:.12f} (multiple shooting differs by {shooting_gap:.1e})")
    lengths = {  # each returns a length, compared with the reference
        "geodesic_bvp, default (64-point polyline)": lambda: jg.geodesic_bvp(metric, a, b).length,
        "distance, default (Richardson)": lambda: jg.distance(metric, a, b),
        "log_map, default (Richardson)": lambda: jg.log_map(metric, a, b).length,
        "distance(solver=Shooting())": lambda: jg.distance(metric, a, b, solver=jg.Shooting()),
    }
    others = {
        "exp_map, v0 = (0, 1)": lambda: jg.exp_map(metric, a, jnp.array([0.0, 1.0])),
        "knn_graph, 500 samples, k = 8": lambda: jg.knn_graph(metric, data[:500]).lengths,
    }
    if smoke:  # multiple shooting compiles for tens of seconds
        del lengths["distance(solver=Shooting())"]
    rows = []
    for name, call in {**lengths, **others}.items():
        value, compile_s, run_s = timed(call, repeats=repeats)
        error = abs(float(value) - reference) / reference if name in lengths else None
        rows.append(dict(call=name, compile_s=compile_s, run_s=run_s, error=error))
    points = jnp.asarray(ring(5000, seed=2)[: 6 if smoke else 30])
    start = time.perf_counter()
    matrix = jax.block_until_ready(jg.pairwise_distances(metric, points))
    seconds = time.perf_counter() - start
    solved = int(np.isfinite(np.asarray(matrix)).sum())
    rows.append(
        dict(
            call=f"pairwise_distances, {len(points)} points ({solved}/{matrix.size} finite), "
            "end to end",
            compile_s=None,
            run_s=seconds,
            error=None,
            finite=solved,
            entries=matrix.size,
        )
    )
    table = [
        [
            r["call"],
            "–" if r["compile_s"] is None else f"{r['compile_s']:.2f}",
            f"{1e3 * r['run_s']:.1f}",
            "–" if r["error"] is None else f"{r['error']:.1e}",
        ]
        for r in rows
    ]
    print("\n".join(markdown_table(["call", "compile (s)", "run (ms)", "rel. error"], table)))
    return rows


if __name__ == "__main__":
    main(**command_line(__doc__, repeats=3, smoke=False))
