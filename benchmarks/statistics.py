"""W8, statistics of data sets: jaxgeo, and geomstats 2.8.0 on the same metrics in the
same run. Run within `python -m benchmarks`, or alone:

    python -m benchmarks.statistics [--repeats 3] [--smoke] [--num-points 200]
        [--no-peers] [--peer-seconds 120]

On the learned ring metric of W6 (`benchmarks.learned.ring_score`):
- distance matrices of `num_points` ring points (seed 2), at the default tolerance and
  at `rtol=1e-3`, end to end (compile included: one program per call size), with the
  time a 1,000-point matrix would take at the same rate, and the largest error of 10
  sampled entries against the fixed-level reference (512 segments, tolerance 1e-12);
- k-medoids on the matrix, and on a 1,000 x 1,000 matrix (Euclidean distances of 1,000
  ring points: the clustering's own cost);
- k-means (k = 2) of the first 60 matrix points (`--smoke`: 12) and of 1,000 ring points
  (seed 2; `--smoke`: 24).
Higher dimensions: on the score-Jacobian metric (damping 1) of an `MLPScore(50,
width=128, depth=3)` of the 50-D Swiss roll (`benchmarks.learned.swiss_roll_score`),
`distance` between the points nearest (t, h) = (1.7 pi, 5) and (4.3 pi, 5) (compile, then
the median run), and `pairwise_distances` of 20 of its points (`--smoke`: 4), end to end.
Fréchet means, every solver (`NewtonMean`, the default; `KarcherMean`; `EnergyMean`),
compile and run times, and the distance (metric norm at the mean) to the exact or
converged mean (`NewtonMean(rtol=1e-9, max_segments=1024)`):
(a) 8 points at hyperbolic distance 1 around (0, 1) on the Poincaré half-plane (exact
mean (0, 1)); (b) 16 samples of the rho = 0.95 Gaussian (seed 0) under its Stein metric
(damping 1); (c) 16 and 128 ring points above y = 0.3 (seed 3) under the learned
metric; (d) 16 codes of the digit 3 under the calibrated pullback metric of the digit VAE
of `experiments.latent_oddity` (seed 0), started from the medoid along k-NN graph paths
(128 codes: the default `NewtonMean` ran over 10 minutes, not measured yet). Of 128
points, the default solver only. `--smoke` checks that every part runs, at the least
cost: every solver on (a) only, the default solver on the others, no 128-point problem,
and 8 digit codes.

The peer (`benchmarks.peers.geomstats_peer`, autograd backend): `FrechetMean()` at its
defaults on each mean problem -- on (a) on geomstats' own `PoincareHalfSpace(2)` (closed
forms; also at a tight tolerance) and on the matrix I / y² given to `Euclidean(2)`; on
(b) and (c) on the Stein metric written in geomstats' backend ops (the network's weights
copied), whose matrices are checked against jaxgeo's -- with the default shooting and
with `LogODESolver` (geomstats gives a user metric no geodesic solver, see the peer's
docstring); `RiemannianKMeans` and `RiemannianKMedoids` (which computes its own distance
matrix) at their defaults on the learned metric's k-means and k-medoids points, and
`RiemannianKMedoids` on the 1,000 Euclidean points. A peer row whose solvers run longer
than `peer_seconds` (default 120 s; `--smoke`: 1 s, where the peer's Euclidean k-medoids
takes 100 points) is stopped and reported as such. Ratios are jaxgeo's time / the peer's
(< 1: jaxgeo is faster). The peer does not run on the digit VAE's metric (its decoder is
not written in geomstats' backend).
"""

import tempfile
import time
from pathlib import Path

import jax


jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp
import numpy as np

import jaxgeo as jg

from .learned import ring, ring_score, score_weights, swiss_roll_score
from .peers import geomstats_peer
from .report import command_line, extrapolated_length, markdown_table, timed


TIGHT = jg.EnergyNewton(rtol=1e-12, atol=1e-12)
DISTANCE = jg.Richardson(resolve_velocity=False)  # `distance`'s default, with its stats
FULL_MATRIX = 1000
SHORTER = 1e-4  # an entry this much below its reference is another, shorter geodesic
PEER_SECONDS = 120.0  # a peer row whose solvers run longer is stopped
SMOKE_PEER_SECONDS = 1.0
SMOKE_PEER_MEDOIDS = 100  # points of the peer's Euclidean k-medoids in --smoke


def _poincare_problem():
    metric = jg.MatrixMetric(lambda x: jnp.eye(2, dtype=x.dtype) / x[1] ** 2)
    centre = jnp.array([0.0, 1.0])
    angles = jnp.arange(8.0) * 2 * jnp.pi / 8 + 0.3
    directions = jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=1)
    xs = jax.vmap(lambda v: jg.exp_map(metric, centre, v, rtol=1e-13, atol=1e-13))(directions)
    return metric, xs, centre, [("half_space", {}), ("half_plane", {})], {}


def _gaussian_problem():
    rho = 0.95
    cov = np.array([[1.0, rho], [rho, 1.0]])
    metric = jg.SteinMetric(jg.scores.gaussian(jnp.zeros(2), jnp.asarray(cov)), damping=1.0)
    xs = jnp.asarray(np.random.default_rng(0).multivariate_normal(np.zeros(2), cov, 16))
    return metric, xs, None, [("stein", dict(cov=cov, damping=1.0))], {}


def _ring_problem(metric, num_points: int = 16):
    data = ring(5000, seed=3)
    layers, shift, scale = score_weights(metric.score)
    params = dict(layers=layers, shift=shift, scale=scale, damping=float(metric.damping))
    xs = jnp.asarray(data[data[:, 1] > 0.3][:num_points])
    return metric, xs, None, [("learned_stein", params)], {}


def _digit_problems(smoke: bool, sizes: tuple[int, ...]) -> dict:
    """The codes of the digit 3 under the calibrated expected pullback metric of
    `experiments.latent_oddity`'s VAE (seed 0, trained here: about 30 s), started as that
    experiment does: from the Euclidean medoid, along shortest paths through a k-NN graph
    of all the codes (several geodesics join two codes on this metric)."""
    from experiments import latent_oddity

    with tempfile.TemporaryDirectory() as tmp:
        _, decoder, codes, _, labels, _ = latent_oddity.train(0, Path(tmp), smoke)
    metric = decoder.expected_metric()
    graph = jg.knn_graph(metric, codes, k=8)
    threes = codes[np.flatnonzero(labels == 3)]
    problems = {}
    for size in sizes:
        xs = threes[:size]
        medoid = xs[jnp.argmin(jnp.sum(jnp.sum((xs[:, None] - xs[None]) ** 2, -1), 1))]
        curves = jax.vmap(lambda x: jg.graph_geodesic(graph, medoid, x, num_points=129))(xs)
        options = dict(init=medoid, init_curves=curves)
        problems[f"(d) digit VAE, {size} codes of the digit 3"] = (metric, xs, None, [], options)
    return problems


def _peer_unavailable(peers: bool) -> str | None:
    """Why the peer does not run (None: it runs)."""
    return geomstats_peer.unavailable() if peers else "not asked for (--no-peers)"


def _not_run(reason: str, **row) -> dict:
    return dict(library=geomstats_peer.NAME, **row, note=f"not run: {reason}")


def _ratio(ours: float, peer_row: dict, limit: float, label: str = "") -> str:
    """jaxgeo's time / the peer's, or a bound where the peer was stopped at `limit`."""
    if peer_row.get("time_s") is not None:
        return f"{ours / peer_row['time_s']:.2g}{label}"
    if str(peer_row.get("error", "")).startswith("TimeLimit"):
        return f"< {ours / limit:.2g}{label}"
    return "–"


def _failure(peer_row: dict) -> str:
    stopped = str(peer_row.get("error", "")).startswith("TimeLimit")
    return "stopped at the time limit" if stopped else "failed"


def _peer_mean_rows(name, metric, xs, exact, spaces, rows, repeats, peer_seconds) -> list:
    """geomstats' `FrechetMean` rows of one problem, errors and ratios against `rows`
    (jaxgeo's: the fastest solver at an equal or smaller error; the default when the peer
    has no mean)."""
    out = []
    ours = {r["solver"]: r for r in rows}
    for space, params in spaces:
        matrix = geomstats_peer.w8_metric_matrix(space, params, np.asarray(xs))
        ref = np.asarray(jax.vmap(metric.matrix)(xs))
        matrix_error = float(np.max(np.abs(matrix - ref)) / np.max(np.abs(ref)))
        for r in geomstats_peer.w8_means(space, params, np.asarray(xs), repeats, peer_seconds):
            error = None
            if "mean" in r:
                error = float(metric.norm(exact, jnp.asarray(r["mean"]) - exact))
            match = [o for o in rows if error is not None and o["error"] <= error]
            base = min(match, key=lambda o: o["run_s"]) if match else ours["NewtonMean() (default)"]
            label = f" (vs {base['solver'].split('(')[0]}; first call {{}})"
            first = _ratio(base["compile_s"], r, peer_seconds)
            note = "; ".join(filter(None, [r.get("note"), r.get("error")]))
            out.append(
                dict(
                    library=geomstats_peer.NAME,
                    problem=name,
                    solver=f"{r['setting']} on {space}",
                    compile_s=None,
                    run_s=r.get("time_s"),
                    error=error,
                    result="successful" if "mean" in r else _failure(r),
                    ratio=_ratio(base["run_s"], r, peer_seconds, label.format(first)),
                    note=f"{note}; metric matrices vs jaxgeo's: {matrix_error:.1e} relative",
                    matrix_error=matrix_error,
                )
            )
            print(out[-1], flush=True)
    return out


def means(
    metric_ring,
    repeats: int,
    peers: bool = True,
    peer_seconds: float = PEER_SECONDS,
    smoke: bool = False,
) -> list[dict]:
    """Rows (library, problem, solver, compile_s, run_s, error, result, ratio, note) of
    the mean problems, jaxgeo's and, if `peers`, geomstats'. Of 128 points, the default
    solver only (`KarcherMean` takes a log map to every point a step)."""
    rows = []
    unavailable = _peer_unavailable(peers)
    problems = {
        "(a) Poincaré, 8 points": _poincare_problem(),
        "(b) Gaussian rho = 0.95 Stein, 16 points": _gaussian_problem(),
        "(c) learned ring, 16 points": _ring_problem(metric_ring),
        **({} if smoke else {"(c) learned ring, 128 points": _ring_problem(metric_ring, 128)}),
        **_digit_problems(smoke, (8 if smoke else 16,)),
    }
    default = {"NewtonMean() (default)": jg.stats.NewtonMean()}
    solvers = {
        **default,
        "KarcherMean()": jg.stats.KarcherMean(),
        "EnergyMean()": jg.stats.EnergyMean(),
    }
    for name, (metric, xs, exact, spaces, options) in problems.items():
        if exact is None:  # (the final log maps may not resolve at 1e-6: not needed)
            converged = jg.stats.NewtonMean(rtol=1e-9, max_segments=1024)
            exact = jg.stats.frechet_mean(metric, xs, solver=converged, throw=False, **options)
            exact = exact.mean
        ours = []
        all_solvers = len(xs) <= 16 and (name.startswith("(a)") or not smoke)
        chosen = solvers if all_solvers else default
        for label, solver in chosen.items():
            out, compile_s, run_s = timed(
                lambda m=metric, x=xs, s=solver: jg.stats.frechet_mean(
                    m, x, solver=s, throw=False, **options
                ),
                repeats=repeats,
            )
            error = float(metric.norm(exact, out.mean - exact))
            ours.append(
                dict(
                    library="jaxgeo",
                    problem=name,
                    solver=label,
                    compile_s=compile_s,
                    run_s=run_s,
                    error=error,
                    result=str(jg.result_name(out.result)),
                    ratio="",
                    note="",
                )
            )
            print(ours[-1], flush=True)
        jax.clear_caches()
        rows += ours
        if unavailable or not spaces:
            reason = unavailable or "the decoder's metric is not written in geomstats' backend"
            rows.append(_not_run(reason, problem=name, solver="FrechetMean"))
        else:
            rows += _peer_mean_rows(name, metric, xs, exact, spaces, ours, repeats, peer_seconds)
    return rows


def matrices(
    metric, num_points: int, smoke: bool, peers: bool = True, peer_seconds: float = PEER_SECONDS
) -> list[dict]:
    """Rows of the distance matrices and clusterings, jaxgeo's and, if `peers`,
    geomstats' clusterings."""
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
        gaps = np.array(
            [(out[rows_[k], cols_[k]] - ref) / ref for k, ref in zip(sample, references)]
        )
        # An entry shorter than its reference is a shorter geodesic than the one the
        # reference found from the straight line (the matrix's repair starts such pairs
        # from a path through other points): not an error of the entry.
        shorter = gaps < -SHORTER
        rows.append(
            dict(
                library="jaxgeo",
                call=f"pairwise_distances, {num_points} points, {label}",
                seconds=seconds,
                per_pair_ms=1e3 * seconds / pairs,
                full_estimate_s=seconds / pairs * full_pairs,
                failed=int(np.isnan(out).sum()),
                error=float(np.nanmax(np.abs(gaps[~shorter]))) if (~shorter).any() else None,
                note=(
                    f"{shorter.sum()} of the {len(gaps)} sampled entries are shorter than "
                    f"the straight-line reference (by up to {-gaps.min():.1%}): shorter "
                    "geodesics, found by the repair; the error is the others'"
                    if shorter.any()
                    else ""
                ),
            )
        )
        print(rows[-1], flush=True)
        if matrix is None:
            matrix, matrix_seconds = out, seconds
        jax.clear_caches()
    unavailable = _peer_unavailable(peers)
    layers, shift, scale = score_weights(metric.score)
    learned = dict(layers=layers, shift=shift, scale=scale, damping=float(metric.damping))
    euclidean = ring(FULL_MATRIX, seed=4)
    for name, distances, space, params, peer_points, before in (
        (
            f"the {num_points}-point matrix",
            matrix,
            "learned_stein",
            learned,
            points,
            matrix_seconds,
        ),
        (
            f"{FULL_MATRIX} points (Euclidean matrix)",
            _euclidean_matrix(euclidean),
            "euclidean",
            {},
            euclidean[:SMOKE_PEER_MEDOIDS] if smoke else euclidean,
            0.0,
        ),
    ):
        clusters = min(10, distances.shape[0])
        (_, cost), compile_s, run_s = timed(
            lambda d=distances, c=clusters: _k_medoids(d, c), repeats=3
        )
        call = f"k_medoids, {name}, k = {clusters}"
        rows.append(
            dict(
                library="jaxgeo",
                call=call,
                seconds=run_s,
                compile_s=compile_s,
                note=f"cost {cost:.6g}",
            )
        )
        if unavailable:
            rows.append(_not_run(unavailable, call="RiemannianKMedoids, " + name))
            continue
        m = len(peer_points)
        r = geomstats_peer.w8_k_medoids(
            space, params, np.asarray(peer_points), clusters, peer_seconds
        )
        note = [r.get("note"), r.get("error")]
        if "medoids" in r:  # its cost Σ d(x, nearest medoid), from jaxgeo's matrix
            sub = np.asarray(distances)[:m, :m]
            note.append(f"cost {np.nansum(sub[:, r['medoids']].min(axis=1)):.6g}")
        if m == len(distances):
            ours = (before + run_s) if before else run_s
            what = " (vs pairwise_distances + k_medoids)" if before else ""
            ratio = _ratio(ours, r, peer_seconds, what)
        else:
            ratio = f"– ({m} points, not {len(distances)})"
        rows.append(
            dict(
                library=geomstats_peer.NAME,
                call=f"{r['setting']}, {m} points",
                seconds=r.get("time_s"),
                ratio=ratio,
                note="; ".join(filter(None, note)),
            )
        )
        print(rows[-1], flush=True)
    k = 2
    every = jnp.asarray(ring(5000, seed=2)[: 24 if smoke else FULL_MATRIX])
    for members in (points[: 12 if smoke else 60], every):
        rows += _k_means_rows(metric, learned, members, k, unavailable, peer_seconds)
    return rows


# Higher dimensions (issue 29, item 7): the 50-D Swiss roll of `benchmarks.learned`, its
# ends nearest (t, h) = (1.7 pi, 5) and (4.3 pi, 5), and a matrix of 20 of its points.
ROLL_ENDS = ((1.7 * np.pi, 5.0), (4.3 * np.pi, 5.0))
ROLL_MATRIX = 20


def higher_dimension(repeats: int, smoke: bool) -> list[dict]:
    """Rows of `distance` and a `pairwise_distances` on the score-Jacobian metric
    (damping 1) of an `MLPScore(50, width=128, depth=3)` of the 50-D Swiss roll."""
    score, data, coordinates = swiss_roll_score(200 if smoke else 3000)
    metric = jg.ScoreJacobianMetric(score, damping=1.0)
    a, b = (
        jnp.asarray(data[np.argmin(np.sum((coordinates - end) ** 2, axis=1))]) for end in ROLL_ENDS
    )
    solve = jax.jit(lambda a, b: jg.log_map(metric, a, b, solver=DISTANCE, throw=False))
    sol, compile_s, run_s = timed(solve, a, b, repeats=repeats)
    name = "ScoreJacobianMetric(damping=1) of an MLPScore(50, width=128, depth=3)"
    rows = [
        dict(
            library="jaxgeo",
            call=f"distance, 50-D Swiss roll, {name}, default",
            seconds=run_s,
            per_pair_ms=1e3 * run_s,
            failed=int(sol.result != jg.RESULTS.successful),
            note=(
                f"compile {compile_s:.1f} s; length {float(sol.length):.8g}, "
                f"{jg.result_name(sol.result)}, error estimate "
                f"{float(sol.stats['error_estimate']) / float(sol.length):.1e} (relative), "
                f"{int(sol.stats['num_segments'])} segments"
            ),
        )
    ]
    num_points = 4 if smoke else ROLL_MATRIX
    points = jnp.asarray(data[np.random.default_rng(0).choice(len(data), num_points, False)])
    start = time.perf_counter()
    distances, results = jg.pairwise_distances(metric, points, return_results=True)
    seconds = time.perf_counter() - start
    names = jg.result_name(results)[np.triu_indices(num_points, k=1)]
    failed = names != "successful"
    rows.append(
        dict(
            library="jaxgeo",
            call=f"pairwise_distances, {num_points} Swiss-roll points (50-D), default",
            seconds=seconds,
            per_pair_ms=1e3 * seconds / len(names),
            failed=int(failed.sum()),
            note="end to end, compile and repair included"
            + (f"; failed: {', '.join(sorted(set(names[failed])))}" if failed.any() else ""),
        )
    )
    return rows


def _k_means_rows(metric, learned, members, k, unavailable, peer_seconds) -> list[dict]:
    """jaxgeo's k-means of `members` (compile included) and, unless `unavailable`,
    geomstats' `RiemannianKMeans` on the same points."""
    start = time.perf_counter()
    clustering = jg.stats.k_means(metric, members, k, throw=False)
    jax.block_until_ready(clustering.labels)
    seconds = time.perf_counter() - start
    result = str(jg.result_name(clustering.result))
    call = f"k_means, {len(members)} points, k = {k} ({result})"
    note = (
        f"{int(clustering.stats['num_steps'])} iterations "
        f"(+ {int(clustering.stats['num_subsample_steps'])} on a subsample), "
        f"inertia {float(clustering.inertia):.9g}, centres' error estimates "
        f"{float(jnp.max(clustering.stats['error_estimates'])):.1e}"
    )
    rows = [dict(library="jaxgeo", call=call, seconds=seconds, note=note)]
    print(rows[-1], flush=True)
    jax.clear_caches()
    if unavailable:
        rows.append(_not_run(unavailable, call="RiemannianKMeans"))
        return rows
    r = geomstats_peer.w8_k_means("learned_stein", learned, np.asarray(members), k, peer_seconds)
    note = [r.get("note"), r.get("error")]
    if "labels" in r:
        from sklearn.metrics import adjusted_rand_score

        agreement = adjusted_rand_score(np.asarray(clustering.labels), r["labels"])
        note.append(f"adjusted Rand index with jaxgeo's labels {agreement:.3g}")
    rows.append(
        dict(
            library=geomstats_peer.NAME,
            call=f"{r['setting']}, {len(members)} points",
            seconds=r.get("time_s"),
            ratio=_ratio(seconds, r, peer_seconds),
            note="; ".join(filter(None, note)),
        )
    )
    print(rows[-1], flush=True)
    return rows


def _k_medoids(distances, clusters: int):
    out = jg.stats.k_medoids(distances, clusters)
    return out.labels, out.cost


def _euclidean_matrix(points: np.ndarray) -> jax.Array:
    points = jnp.asarray(points)
    return jnp.sqrt(jnp.sum((points[:, None] - points[None]) ** 2, axis=-1))


def tables(out: dict) -> list[tuple[list[str], list[list]]]:
    """`(header, rows)` of the matrices' and the means' tables of `main`'s output."""
    matrices = (
        [
            "library",
            "call",
            "time (s)",
            "per pair (ms)",
            "1,000 points (s, est.)",
            "failed",
            "max error",
            "jaxgeo time / peer time",
            "notes",
        ],
        [
            [
                r["library"],
                r["call"],
                r.get("seconds"),
                r.get("per_pair_ms"),
                r.get("full_estimate_s"),
                r.get("failed"),
                r.get("error"),
                r.get("ratio", ""),
                r.get("note", ""),
            ]
            for r in out["matrices"]
        ],
    )
    keys = (
        "library",
        "problem",
        "solver",
        "compile_s",
        "run_s",
        "error",
        "result",
        "ratio",
        "note",
    )
    means = (
        [
            "library",
            "problem",
            "solver",
            "compile (s)",
            "run (s)",
            "error",
            "result",
            "jaxgeo time / peer time",
            "notes",
        ],
        [[r.get(key) for key in keys] for r in out["means"]],
    )
    return [matrices, means]


def main(
    repeats: int = 3,
    smoke: bool = False,
    num_points: int = 200,
    no_peers: bool = False,
    peer_seconds: float = 0.0,
) -> dict:
    """`peer_seconds`: the peer's time limit per row (0: `PEER_SECONDS`, with `smoke`
    `SMOKE_PEER_SECONDS`)."""
    start = time.perf_counter()
    peer_seconds = peer_seconds or (SMOKE_PEER_SECONDS if smoke else PEER_SECONDS)
    score, _ = ring_score(200 if smoke else 3000)
    print(f"W8: trained the score in {time.perf_counter() - start:.1f} s", flush=True)
    metric = jg.SteinMetric(score, damping=1.0)
    peers = not no_peers
    out = dict(
        matrices=matrices(metric, 8 if smoke else num_points, smoke, peers, peer_seconds)
        + higher_dimension(repeats, smoke),
        means=means(metric, repeats, peers, peer_seconds, smoke),
    )
    for header, rows in tables(out):
        print("\n".join(markdown_table(header, rows)) + "\n")
    return out


if __name__ == "__main__":
    main(
        **command_line(
            __doc__, repeats=3, smoke=False, num_points=200, no_peers=False, peer_seconds=0.0
        )
    )
