"""W8, statistics of data sets (jaxgeo's side). Run within `python -m benchmarks`, or
alone:

    python -m benchmarks.statistics [--repeats 3] [--smoke] [--num-points 200]

On the learned ring metric of W6 (`benchmarks.learned.ring_score`):
- distance matrices of `num_points` ring points (seed 2), at the default tolerance and
  at `rtol=1e-3`, end to end (compile included: one program per call size), with the
  time a 1,000-point matrix would take at the same rate, and the largest error of 10
  sampled entries against the fixed-level reference (512 segments, tolerance 1e-12);
- k-medoids on the matrix, and on a 1,000 x 1,000 matrix (Euclidean distances of 1,000
  ring points: the clustering's own cost);
- k-means (k = 2) of the first 60 matrix points (`--smoke`: 12).
Fréchet means, every solver (`NewtonMean`, the default; `KarcherMean`; `EnergyMean`),
compile and run times, and the distance (metric norm at the mean) to the exact or
converged mean (`NewtonMean(rtol=1e-9, max_segments=1024)`):
(a) 8 points at hyperbolic distance 1 around (0, 1) on the Poincaré half-plane (exact
mean (0, 1)); (b) 16 samples of the rho = 0.95 Gaussian (seed 0) under its Stein metric
(damping 1); (c) 16 ring points above y = 0.3 (seed 3) under the learned metric.
The digit VAE's metric and the geomstats peers are not measured here yet.
"""

import time

import jax


jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp
import numpy as np

import jaxgeo as jg

from .learned import ring, ring_score
from .report import command_line, extrapolated_length, markdown_table, timed


TIGHT = jg.EnergyNewton(rtol=1e-12, atol=1e-12)
FULL_MATRIX = 1000


def _poincare_problem():
    metric = jg.MatrixMetric(lambda x: jnp.eye(2, dtype=x.dtype) / x[1] ** 2)
    centre = jnp.array([0.0, 1.0])
    angles = jnp.arange(8.0) * 2 * jnp.pi / 8 + 0.3
    directions = jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=1)
    xs = jax.vmap(lambda v: jg.exp_map(metric, centre, v, rtol=1e-13, atol=1e-13))(directions)
    return metric, xs, centre


def _gaussian_problem():
    rho = 0.95
    cov = jnp.array([[1.0, rho], [rho, 1.0]])
    metric = jg.SteinMetric(jg.scores.gaussian(jnp.zeros(2), cov), damping=1.0)
    xs = jnp.asarray(np.random.default_rng(0).multivariate_normal(np.zeros(2), cov, 16))
    return metric, xs, None


def _ring_problem(metric):
    data = ring(5000, seed=3)
    return metric, jnp.asarray(data[data[:, 1] > 0.3][:16]), None


def means(metric_ring, repeats: int) -> list[dict]:
    """Rows (problem, solver, compile_s, run_s, error, result) of the three mean problems."""
    rows = []
    problems = {
        "(a) Poincaré, 8 points": _poincare_problem(),
        "(b) Gaussian rho = 0.95 Stein, 16 points": _gaussian_problem(),
        "(c) learned ring, 16 points": _ring_problem(metric_ring),
    }
    solvers = {
        "NewtonMean() (default)": jg.stats.NewtonMean(),
        "KarcherMean()": jg.stats.KarcherMean(),
        "EnergyMean()": jg.stats.EnergyMean(),
    }
    for name, (metric, xs, exact) in problems.items():
        if exact is None:  # (the final log maps may not resolve at 1e-6: not needed)
            converged = jg.stats.NewtonMean(rtol=1e-9, max_segments=1024)
            exact = jg.stats.frechet_mean(metric, xs, solver=converged, throw=False).mean
        for label, solver in solvers.items():
            out, compile_s, run_s = timed(
                lambda m=metric, x=xs, s=solver: jg.stats.frechet_mean(m, x, solver=s, throw=False),
                repeats=repeats,
            )
            error = float(metric.norm(exact, out.mean - exact))
            rows.append(
                dict(
                    problem=name,
                    solver=label,
                    compile_s=compile_s,
                    run_s=run_s,
                    error=error,
                    result=jg.RESULTS[out.result] or "successful",
                )
            )
            print(rows[-1], flush=True)
        jax.clear_caches()
    return rows


def matrices(metric, num_points: int, smoke: bool) -> list[dict]:
    """Rows of the distance matrices and clusterings."""
    points = jnp.asarray(ring(5000, seed=2)[:num_points])
    pairs = num_points * (num_points - 1) // 2
    full_pairs = FULL_MATRIX * (FULL_MATRIX - 1) // 2
    rng = np.random.default_rng(0)
    sample = rng.choice(pairs, min(10, pairs), replace=False)
    rows_, cols_ = np.triu_indices(num_points, k=1)
    references = [
        extrapolated_length(metric, points[rows_[k]], points[cols_[k]], TIGHT, 512) for k in sample
    ]
    rows = []
    matrix = None
    for label, solver in {
        "default (1e-6)": None,
        "rtol = 1e-3": jg.Richardson(rtol=1e-3, resolve_velocity=False),
    }.items():
        start = time.perf_counter()
        out = np.asarray(jg.pairwise_distances(metric, points, solver=solver))
        seconds = time.perf_counter() - start
        errors = [abs(out[rows_[k], cols_[k]] - ref) / ref for k, ref in zip(sample, references)]
        rows.append(
            dict(
                call=f"pairwise_distances, {num_points} points, {label}",
                seconds=seconds,
                per_pair_ms=1e3 * seconds / pairs,
                full_estimate_s=seconds / pairs * full_pairs,
                failed=int(np.isnan(out).sum()),
                error=float(np.nanmax(errors)),
            )
        )
        print(rows[-1], flush=True)
        matrix = out if matrix is None else matrix
        jax.clear_caches()
    k = 2
    for name, distances in {
        f"k_medoids, the {num_points}-point matrix": matrix,
        f"k_medoids, {FULL_MATRIX} points (Euclidean matrix)": _euclidean_matrix(FULL_MATRIX),
    }.items():
        clusters = min(10, distances.shape[0])
        _, compile_s, run_s = timed(
            lambda d=distances, c=clusters: jg.stats.k_medoids(d, c).labels, repeats=3
        )
        rows.append(dict(call=f"{name}, k = {clusters}", seconds=run_s, compile_s=compile_s))
    members = points[: 12 if smoke else 60]
    start = time.perf_counter()
    clustering = jg.stats.k_means(metric, members, k, throw=False)
    jax.block_until_ready(clustering.labels)
    result = jg.RESULTS[clustering.result] or "successful"
    call = f"k_means, {len(members)} points, k = {k} ({result})"
    rows.append(dict(call=call, seconds=time.perf_counter() - start))
    print(rows[-1], flush=True)
    return rows


def _euclidean_matrix(n: int) -> jax.Array:
    points = jnp.asarray(ring(n, seed=4))
    return jnp.sqrt(jnp.sum((points[:, None] - points[None]) ** 2, axis=-1))


def main(repeats: int = 3, smoke: bool = False, num_points: int = 200) -> dict:
    start = time.perf_counter()
    score, _ = ring_score(200 if smoke else 3000)
    print(f"W8: trained the score in {time.perf_counter() - start:.1f} s", flush=True)
    metric = jg.SteinMetric(score, damping=1.0)
    matrix_rows = matrices(metric, 8 if smoke else num_points, smoke)
    mean_rows = means(metric, repeats)
    print(
        "\n".join(
            markdown_table(
                ["problem", "solver", "compile (s)", "run (s)", "error", "result"],
                [list(r.values()) for r in mean_rows],
            )
        )
    )
    return dict(matrices=matrix_rows, means=mean_rows)


if __name__ == "__main__":
    main(**command_line(__doc__, repeats=3, smoke=False, num_points=200))
