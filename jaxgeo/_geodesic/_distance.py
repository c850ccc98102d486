import hashlib
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, Float, Int

from .._custom_types import Input, Scalar
from .._describe import describe
from .._metric._base import AbstractMetric
from .._progress import progress_bar
from .._sharding import Calls, default_threads, is_traced, sharded_map, unless_padding
from .._solution import GeodesicSolution, RESULTS
from ._base import AbstractBoundarySolver
from ._bvp import CPU_PAIRS_PER_CALL, default_chunk_size, geodesic_bvp
from ._graph import GeodesicGraph, knn_graph, tree_path
from ._repair import (
    concatenated_geodesics,
    expanded_path,
    leg_curves,
    LEG_POINTS,
    MAX_LEGS,
    path_nodes,
    REPAIR_ROUNDS,
    shortest_paths,
    violation_margin,
    violations,
)
from ._richardson import Richardson


def log_map(
    metric: AbstractMetric,
    x0: Input,
    x1: Input,
    *,
    solver: AbstractBoundarySolver | None = None,
    num_points: int = 129,
    init: Input | None = None,
    max_steps: int = 4096,
    throw: bool = True,
) -> GeodesicSolution:
    r"""The logarithmic map $\log_{x_0}(x_1)$: the initial velocity `sol.vs[0]` of the
    geodesic from `x0` (at $t = 0$) to `x1` (at $t = 1$), with its `length`.

    [`jaxgeo.geodesic_bvp`][] with a fourth-order default solver at the resolution
    the pair needs, [`jaxgeo.Richardson`][]: discrete geodesics with 16, 32, 64, ...
    segments, extrapolated until the length's estimated error is below 1e-6 relative
    in float64 (`sol.stats["error_estimate"]`, `sol.stats["num_segments"]`), or
    `RESULTS.unresolved_curve` at `Richardson(max_segments=...)`. Measured: 5e-8
    relative on the Stein metric of the $\rho = 0.8$ Gaussian, $(-4, -2) \to (4, -2)$ (128
    segments), 2e-10 on a Poincaré pair (64).
    `num_points` is the number of points of the returned curve (points and velocities
    there are extrapolated, and Hermite interpolated between the levels' points), not
    its resolution. For the exact ODE geodesic (1e-10) pass
    `solver=jaxgeo.Shooting()`. The initial polyline
    (`init`, default the straight line) selects *which* geodesic is found. Differentiable
    in `x0`, `x1` and the metric's parameters. Other arguments as in
    [`jaxgeo.geodesic_bvp`][].

    **Returns:** a [`jaxgeo.GeodesicSolution`][]: `vs[0]` is the log map, `length`
    $= \|\log_{x_0}(x_1)\|_{G(x_0)}$ the geodesic distance.
    """
    solver = Richardson() if solver is None else solver
    return geodesic_bvp(
        metric,
        x0,
        x1,
        solver=solver,
        num_points=num_points,
        init=init,
        max_steps=max_steps,
        throw=throw,
    )


def distance(
    metric: AbstractMetric,
    x0: Input,
    x1: Input,
    *,
    solver: AbstractBoundarySolver | None = None,
    num_points: int = 129,
    max_steps: int = 4096,
    throw: bool = True,
) -> Scalar:
    r"""The geodesic distance between `x0` and `x1`: the `length` of
    [`jaxgeo.log_map`][]'s geodesic, found by `solver`.

    - Default, [`jaxgeo.Richardson`][]: the extrapolated lengths of energy-minimising
      polylines, refined until the estimated error is below 1e-6 relative in float64;
      no ODE solves (see [`jaxgeo.log_map`][]).
    - [`jaxgeo.Shooting`][]: the exact geodesic of the ODE, accurate to the ODE
      tolerances (about 1e-10 relative in float64), at many times the cost.
    - A polyline solver ([`jaxgeo.EnergyNewton`][], [`jaxgeo.EnergyDescent`][]): the
      polyline's midpoint-rule length, $O(1/N^2)$ short.

    Under `jax.vmap` pass `throw=False`; a failed solve then gives NaN.
    """
    length, _ = _distance(metric, x0, x1, solver, num_points, max_steps, throw)
    return length


def length_solution(metric, x0, x1, solver, num_points, max_steps, throw, init=None):
    """The geodesic `distance` solves (its length resolved, not its velocity)."""
    if solver is None:
        solver = Richardson(resolve_velocity=False)  # the length only
    options = dict(num_points=num_points, init=init, max_steps=max_steps, throw=throw)
    return log_map(metric, x0, x1, solver=solver, **options)


def _distance(
    metric, x0, x1, solver, num_points, max_steps, throw, init=None
) -> tuple[Scalar, RESULTS]:
    """`distance` and the `RESULTS` of its solve."""
    sol = length_solution(metric, x0, x1, solver, num_points, max_steps, throw, init)
    return jnp.where(sol.result == RESULTS.successful, sol.length, jnp.nan), sol.result


def pairwise_distances(
    metric: AbstractMetric,
    xs: Input,
    ys: Input | None = None,
    *,
    solver: AbstractBoundarySolver | None = None,
    num_points: int = 129,
    max_steps: int = 4096,
    chunk_size: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    pairs_per_call: int | None = None,
    threads: int | None = None,
    progress: bool | None = None,
    checkpoint: str | Path | None = None,
    return_results: bool = False,
    init: Literal["graph", "line"] | GeodesicGraph = "line",
    repair: bool = True,
) -> Float[Array, "n m"] | tuple[Float[Array, "n m"], RESULTS]:
    """Geodesic distances between every `xs[i]` and `ys[j]`, shape `(n, m)`, by
    [`jaxgeo.distance`][] (`solver`, `num_points`, `max_steps` go there; e.g.
    `solver=jaxgeo.Richardson(rtol=1e-3)` for a looser tolerance). Without `ys`, the
    symmetric matrix of distances within `xs`: only the $n(n-1)/2$ pairs $i < j$ are
    solved, and the diagonal is zero. A pair whose solve fails gives NaN; with
    `return_results=True` the call returns `(distances, results)`, `results` a
    [`jaxgeo.RESULTS`][] of shape `(n, m)` saying why (`jaxgeo.result_name(results)`:
    their short names; the diagonal of the symmetric case is `successful`).

    `init`: each pair's initial curve, which selects *which* geodesic its solve finds.
    `"line"` (default): the straight line. `"graph"`: its shortest path through the
    $k$-nearest-neighbour graph of the points ([`jaxgeo.knn_graph`][] of `xs` and `ys`,
    $k = 8$, edge lengths on 8 pieces; see [`jaxgeo.graph_geodesic`][]) where that is
    shorter than the straight line, and more than 9 points (the shortest-path trees of
    the rows are computed once: two `(n, n + m)` arrays, and the neighbour search
    `(n + m)^2`). Or a [`jaxgeo.GeodesicGraph`][] of your own (e.g. over more samples
    of the data).

    `repair` (the symmetric case, concrete inputs, one process): every entry is the
    length of a curve, so $d_{ij} > d_{ik} + d_{kj}$ proves that the solve of $(i, j)$
    stopped at a longer local geodesic. After all pairs are solved, the pairs whose
    distance exceeds their shortest path through the matrix (Floyd–Warshall, $O(n^3)$)
    by more than 10 times the length tolerance (1e-3 for a solver other than
    [`jaxgeo.Richardson`][]), and the failed pairs that such a path joins, are solved
    again from the concatenated geodesics of that path (each leg solved once more, as its
    entry was, at 33 points), and keep the shorter; two rounds. A pair
    that still exceeds its path is `RESULTS.longer_than_a_path` (NaN). On a learned ring
    metric (an MLP score of a noisy ring), 100 points from straight lines: 248 of 4,950
    distances exceeded a path, by up to 44 %; repaired but 1, for 10 % more time (compile
    included).

    At defaults (`solver=None`), the pairs left `unresolved_curve` (or out of steps) by
    the default [`jaxgeo.Richardson`][] are first solved once more with twice its
    `max_segments` and twice `max_steps` (a learned score-Jacobian metric: a few pairs
    in a hundred need more than 2,048 segments); an explicit `solver` is a cap.

    The pairs are solved `pairs_per_call` at a time (default 32 per device on CPU,
    8,192 on accelerators) by one compiled program, reused for every call, whatever the
    number of points (the last call is padded; its padding is skipped, not solved);
    between calls a progress bar (tqdm; `progress=None`: only on a terminal) advances.
    `threads` calls run at once (default: on one CPU device, one per core available to
    the process, each call on one core; else 1), after a call of padding only has
    compiled the program. Memory: the matrix, and `threads` calls' pairs and solves.
    Within a call the pairs are split evenly over `devices` (default: all of
    `jax.devices()`; one device means no sharding) with `jax.shard_map`, and each device
    solves its pairs `chunk_size` at a time (vmapped within a chunk, `lax.map` over
    chunks; the default is as in [`jaxgeo.geodesic_bvp_batch`][]).

    `checkpoint`: a file (`.npz`) where the distances solved so far are saved, at most
    every 30 s, at the end, and when the run is interrupted (e.g. `KeyboardInterrupt`),
    atomically and with their SHA-256; a later call with the same path resumes where it
    stopped. A checkpoint of another matrix (metric parameters, points or solver
    arguments differ) or a damaged one is an error naming the file, and is never
    overwritten. Under `jax.jit` (traced points or metric) and across several processes
    (`jax.distributed`; the result is then a global array) all pairs are one call, without
    progress bar or checkpoint."""
    xs = jnp.asarray(xs)
    symmetric = ys is None
    ys = xs if symmetric else jnp.asarray(ys)
    if xs.ndim != 2 or ys.ndim != 2 or xs.shape[1] != ys.shape[1]:
        raise ValueError(
            f"pairwise_distances: expected xs (n, D) and ys (m, D), got {xs.shape} and {ys.shape}"
        )
    for name, value in (("pairs_per_call", pairs_per_call), ("threads", threads)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(
                f"pairwise_distances: {name} must be a positive integer, got {value!r}"
            )
    n, m = xs.shape[0], ys.shape[0]
    if symmetric:
        rows, cols = np.triu_indices(n, k=1)
    else:
        rows, cols = np.repeat(np.arange(n), m), np.tile(np.arange(m), n)
    if len(rows) == 0:
        empty = jnp.zeros((n, m), xs.dtype)
        return (empty, _results(jnp.zeros((n, m), int))) if return_results else empty
    kwargs = dict(solver=solver, num_points=num_points, max_steps=max_steps)
    chunk_size = default_chunk_size(chunk_size, devices)
    graph = _initial_graph(metric, init, xs, ys, symmetric)
    trees = None if graph is None else _shortest_path_trees(graph, xs)

    def solve(pair_rows, pair_cols, valid, kwargs=kwargs):
        pairs = jnp.stack([xs[pair_rows], ys[pair_cols]], axis=1)
        inits = None
        if graph is not None:
            rows_trees = jtu.tree_map(lambda t: t[pair_rows], trees)
            inits = _graph_inits(graph, rows_trees, pairs, num_points)
        return _pair_distances(metric, pairs, inits, valid, devices, chunk_size, kwargs)

    concrete = not is_traced((metric, xs, ys)) and jax.process_count() == 1
    if not concrete:
        if checkpoint is not None:
            raise ValueError(
                "pairwise_distances: a checkpoint needs concrete (not traced) inputs and one "
                "process"
            )
        lengths, codes = solve(rows, cols, np.ones(len(rows), bool))
    else:
        calls = Calls(
            pairs_per_call or _default_pairs_per_call(devices), threads or default_threads(devices)
        )
        lengths, codes = _solve_in_calls(
            solve,
            jnp.result_type(xs.dtype, ys.dtype),
            rows,
            cols,
            calls,
            progress,
            checkpoint,
            (metric, xs, ys, kwargs, init),
        )
        lengths, codes = _finer(calls, solve, (rows, cols), (lengths, codes), kwargs)
    out = jnp.zeros((n, m), lengths.dtype).at[rows, cols].set(lengths)
    out = out + out.T if symmetric else out
    results = jnp.zeros((n, m), codes.dtype).at[rows, cols].set(codes)
    results = results + results.T if symmetric else results
    if repair and symmetric and concrete:
        out, results = _repair(metric, xs, out, results, kwargs, devices, chunk_size, calls)
    return (out, _results(results)) if return_results else out


# Pairs that the default Richardson leaves unresolved at its finest level, or whose levels
# ran out of steps, are solved once more with FINER times the segments and the steps (one
# more program, compiled only where a pair needs it): on the learned score-Jacobian metric
# of two moons (24 points), 6 of 276 pairs failed with 2,048 segments at most (unresolved,
# or repaired from a path, shorter, but unresolved), none with the finer solves.
FINER = 2
DEFAULT_MAX_SEGMENTS = Richardson().max_segments


def _code(result: RESULTS) -> int:
    return int(jtu.tree_leaves(result)[0])


RETRY_CODES = [_code(RESULTS.unresolved_curve), _code(RESULTS.nonlinear_max_steps_reached)]


def _finer(calls, solve, batch, outputs, kwargs):
    """At defaults (`kwargs["solver"]` None), the items whose solve (`solve(*chunk,
    valid, kwargs)`; its last output a result code) ended unresolved or out of steps,
    solved again with `FINER` times the segments and steps: `outputs` with theirs
    replaced (a pair that fails again keeps the reason of the finer solve)."""
    outputs = tuple(np.array(o) for o in outputs)
    retry = np.flatnonzero(np.isin(outputs[-1], RETRY_CODES))
    if kwargs["solver"] is not None or not retry.size:
        return outputs
    finer = dict(
        kwargs,
        solver=Richardson(resolve_velocity=False, max_segments=FINER * DEFAULT_MAX_SEGMENTS),
        max_steps=FINER * kwargs["max_steps"],
    )
    again = calls.run(lambda *chunk: solve(*chunk, finer), tuple(b[retry] for b in batch))
    for output, solved in zip(outputs, again):
        output[retry] = solved
    return outputs


def _repair(metric, xs, distances, codes, kwargs, devices, chunk_size, calls):
    """`pairwise_distances(repair=True)`: up to `REPAIR_ROUNDS` rounds of re-solving the
    pairs that violate the triangle inequality (or failed) from the concatenated
    geodesics of their shortest path through the matrix; those still violating it are
    `RESULTS.longer_than_a_path` (NaN)."""
    distances, codes = np.array(distances), np.array(codes)
    margin = violation_margin(kwargs["solver"], distances.dtype)
    routes = {}  # the repaired pairs' paths, in legs solved from straight lines
    legs = {}  # (a, b), a < b: the geodesic from a to b the matrix's entry is the length of
    points = np.asarray(xs)
    for round_ in range(REPAIR_ROUNDS + 1):
        short, pred = (np.asarray(a) for a in shortest_paths(jnp.asarray(distances)))
        rows, cols = violations(distances, short, margin)
        if round_ == REPAIR_ROUNDS:
            break
        paths = [expanded_path(path_nodes(pred, i, j), routes) for i, j in zip(rows, cols)]
        keep = [k for k, p in enumerate(paths) if p is not None and len(p) <= MAX_LEGS + 1]
        if not keep:
            break
        repair_rows, repair_cols = rows[keep], cols[keep]
        paths = [paths[k] for k in keep]
        # Each leg solved once, by the matrix's own solver from its straight line: the
        # geodesic whose length the path adds up (a coarser solve can find another one,
        # longer: on a learned Monge metric of two moons, 3.56 for an entry of 3.30).
        new = sorted(
            {(min(a, b), max(a, b)) for p in paths for a, b in zip(p[:-1], p[1:])} - legs.keys()
        )
        if new:
            ends = np.array(new)
            batch = (points[ends[:, 0]], points[ends[:, 1]])

            def solve_legs(a, b, valid, kwargs):
                return _leg_geodesics(metric, a, b, valid, devices, chunk_size, kwargs)

            solved = calls.run(lambda *chunk: solve_legs(*chunk, kwargs), batch)
            curves, lengths, leg_codes = _finer(calls, solve_legs, batch, solved, kwargs)
            # (A failed leg: its straight line, with its Euclidean length.)
            failed = leg_codes != _code(RESULTS.successful)
            curves[failed] = np.linspace(batch[0][failed], batch[1][failed], LEG_POINTS, axis=1)
            lengths[failed] = np.linalg.norm(batch[1][failed] - batch[0][failed], axis=-1)
            legs.update(zip(new, zip(curves, lengths)))
        pairs = np.stack([points[repair_rows], points[repair_cols]], axis=1)

        def solve(index, valid, kwargs):
            curves, lengths, num_legs = leg_curves(
                [paths[k] for k in np.asarray(index)], legs, points.shape[1], distances.dtype
            )
            return _repaired_distances(
                metric,
                pairs[np.asarray(index)],
                curves,
                lengths,
                num_legs,
                valid,
                devices,
                chunk_size,
                kwargs,
            )

        batch = (np.arange(len(paths)),)
        solved = calls.run(lambda *chunk: solve(*chunk, kwargs), batch)
        lengths, new_codes = _finer(calls, solve, batch, solved, kwargs)
        old = distances[repair_rows, repair_cols]
        better = np.isfinite(lengths) & ~(lengths >= old)  # shorter, or the old one failed
        for a, b in ((repair_rows, repair_cols), (repair_cols, repair_rows)):
            distances[a[better], b[better]] = lengths[better]
            codes[a[better], b[better]] = new_codes[better]
        for k in np.flatnonzero(better):
            routes[int(repair_rows[k]), int(repair_cols[k])] = paths[k]
    # (`rows`, `cols`: the violations left, from the last Floyd–Warshall.)
    longer = ~np.isnan(distances[rows, cols])
    flagged = _code(RESULTS.longer_than_a_path)
    for a, b in ((rows[longer], cols[longer]), (cols[longer], rows[longer])):
        distances[a, b] = np.nan
        codes[a, b] = flagged
    return jnp.asarray(distances), jnp.asarray(codes)


@eqx.filter_jit
def _repaired_distances(
    metric, pairs, curves, lengths, num_legs, valid, devices, chunk_size, kwargs
):
    """Each pair solved from the concatenated geodesics of its legs (the `valid` ones;
    the rest is padding)."""

    def one(pair, pair_curves, pair_lengths, count):
        init = concatenated_geodesics(pair_curves, pair_lengths, count, kwargs["num_points"])
        length, result = _distance(metric, pair[0], pair[1], throw=False, init=init, **kwargs)
        return length, jtu.tree_leaves(result)[0]

    batch = (valid, pairs, curves, lengths, num_legs)
    return sharded_map(unless_padding(one), batch, devices=devices, chunk_size=chunk_size)


@eqx.filter_jit
def _leg_geodesics(metric, starts, ends, valid, devices, chunk_size, kwargs):
    """Each leg's geodesic at `LEG_POINTS` points, its length and its result code, as the
    matrix solved it."""

    def one(a, b):
        solver, max_steps = kwargs["solver"], kwargs["max_steps"]
        sol = length_solution(metric, a, b, solver, LEG_POINTS, max_steps, False)
        ok = jnp.all(jnp.isfinite(sol.xs)) & jnp.isfinite(sol.length)
        result = RESULTS.where(ok, sol.result, RESULTS.nonfinite_energy)
        return sol.xs, sol.length, jtu.tree_leaves(result)[0]

    return sharded_map(
        unless_padding(one), (valid, starts, ends), devices=devices, chunk_size=chunk_size
    )


def _results(codes: Int[Array, "..."]) -> RESULTS:
    """A batch of `RESULTS` from their integer codes (`RESULTS` items are pytrees)."""
    return jtu.tree_unflatten(jtu.tree_structure(RESULTS.successful), [codes])


# Pairs per compiled call when not given: on CPU, CPU_PAIRS_PER_CALL (`_bvp`).
ACCELERATOR_PAIRS_PER_CALL = 8192
CHECKPOINT_INTERVAL_S = 30.0


def _default_pairs_per_call(devices: Sequence[jax.Device] | None) -> int:
    devices = jax.devices() if devices is None else list(devices)
    if devices[0].platform == "cpu":
        return CPU_PAIRS_PER_CALL * len(devices)
    return ACCELERATOR_PAIRS_PER_CALL


def _solve_in_calls(
    solve, dtype, rows, cols, calls: Calls, progress, checkpoint, identity
) -> tuple[Float[Array, " pairs"], Int[Array, " pairs"]]:
    """The pairs' distances and result codes, in `calls` of `solve`, with a progress
    bar and (if `checkpoint` is a path) saved and resumed progress."""
    num_pairs = len(rows)
    dtype = dtype if jnp.issubdtype(dtype, jnp.inexact) else jnp.asarray(0.0).dtype
    lengths = np.full(num_pairs, np.nan, dtype)
    codes = np.zeros(num_pairs, np.int32)
    path = None if checkpoint is None else Path(checkpoint)
    meta = None if path is None else hashlib.sha256(describe(identity).encode()).hexdigest()
    done = 0 if path is None else _load_progress(path, meta, lengths, codes)
    bar = progress_bar(num_pairs, done, progress, unit="pair", desc="pairwise_distances")
    saved_at, saved_done = time.monotonic(), done
    try:
        offset = done
        for start, stop, (solved, solved_codes) in calls.each(
            solve, (rows[offset:], cols[offset:])
        ):
            start, stop = start + offset, stop + offset
            lengths[start:stop], codes[start:stop] = solved, solved_codes
            bar.update(stop - start)
            done = stop
            if path is not None and time.monotonic() - saved_at > CHECKPOINT_INTERVAL_S:
                _save_progress(path, meta, lengths, codes, done)
                saved_at, saved_done = time.monotonic(), done
    finally:
        bar.close()
        if path is not None and done > saved_done:
            _save_progress(path, meta, lengths, codes, done)
    return jnp.asarray(lengths), jnp.asarray(codes)


def _save_progress(
    path: Path, meta: str, lengths: np.ndarray, codes: np.ndarray, done: int
) -> None:
    """Atomic: the file is written beside `path` and moved over it in one `os.replace`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as file:
        digest = _digest(lengths, codes, done)
        np.savez(file, lengths=lengths, codes=codes, done=done, meta=meta, sha256=digest)
    os.replace(temporary, path)


def _load_progress(path: Path, meta: str, lengths: np.ndarray, codes: np.ndarray) -> int:
    """Fill `lengths` and `codes` from the checkpoint at `path` (if any); the number of
    pairs done."""
    if not path.exists():
        return 0
    try:
        with np.load(path) as saved:
            saved_lengths, saved_codes, done = saved["lengths"], saved["codes"], int(saved["done"])
            saved_meta, sha256 = str(saved["meta"]), str(saved["sha256"])
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(
            f"pairwise_distances: the checkpoint {path} is unreadable ({error}); delete it to "
            "start afresh"
        ) from error
    if saved_meta != meta or saved_lengths.shape != lengths.shape:
        raise ValueError(
            f"pairwise_distances: the checkpoint {path} belongs to another matrix (the metric's "
            "parameters, the points or the solver arguments differ); pass another path, or "
            "delete it to start afresh"
        )
    if sha256 != _digest(saved_lengths, saved_codes, done):
        raise ValueError(
            f"pairwise_distances: the checkpoint {path} is damaged (its SHA-256 does not match "
            "its distances); delete it to start afresh"
        )
    lengths[:done], codes[:done] = saved_lengths[:done], saved_codes[:done]
    return done


def _digest(lengths: np.ndarray, codes: np.ndarray, done: int) -> str:
    data = np.ascontiguousarray(lengths).tobytes() + np.ascontiguousarray(codes).tobytes()
    return hashlib.sha256(data + str(done).encode()).hexdigest()


# The default graph of `pairwise_distances(init="graph")`: 8 neighbours, each edge's
# length by the midpoint rule on 8 pieces (on a learned ring metric, 60 points: with 2 pieces 4
# of 1,770 distances were longer than from the straight line, with 8 pieces 3; from the
# straight line, 13 were longer than from the graph, by up to 38 %).
GRAPH_NEIGHBOURS = 8
GRAPH_SUBDIVISIONS = 8


def _initial_graph(metric, init, xs, ys, symmetric) -> GeodesicGraph | None:
    """The graph whose shortest paths start the pairs' solves, or `None` (straight
    lines)."""
    if isinstance(init, GeodesicGraph):
        if init.nodes.shape[1] != xs.shape[1]:
            raise ValueError(
                f"pairwise_distances: init is a graph over nodes of shape {init.nodes.shape}, "
                f"for points of dimension {xs.shape[1]}"
            )
        return init
    if init not in ("graph", "line"):
        raise ValueError(
            f'pairwise_distances: init must be "graph", "line" or a jaxgeo.GeodesicGraph, '
            f"got {init!r}"
        )
    dtype = jnp.result_type(xs.dtype, ys.dtype, float)
    nodes = xs if symmetric else jnp.concatenate([xs, ys])
    nodes = nodes.astype(dtype)
    if init == "line" or nodes.shape[0] <= GRAPH_NEIGHBOURS + 1:
        return None
    return knn_graph(metric, nodes, k=GRAPH_NEIGHBOURS, subdivisions=GRAPH_SUBDIVISIONS)


@eqx.filter_jit
def _shortest_path_trees(graph: GeodesicGraph, sources: Float[Array, "n dim"]):
    """Each source's shortest-path tree in `graph` (distances and predecessors, `(n, V)`),
    one source at a time."""
    sources = sources.astype(graph.nodes.dtype)
    return jax.lax.map(lambda x: graph.shortest_paths(*graph.connect(x)), sources)


@eqx.filter_jit
def _graph_inits(graph, trees, pairs, num_points):
    """Each pair's shortest path through `graph` (its row's tree), as an initial curve."""

    def one(batch):
        pair, tree = batch
        x0, x1 = pair.astype(graph.nodes.dtype)
        return tree_path(graph, tree, x0, x1, num_points).astype(pair.dtype)

    return jax.lax.map(one, (pairs, trees))


@eqx.filter_jit  # one trace per metric structure and number of pairs, not one per call
def _pair_distances(
    metric, pairs, inits, valid, devices, chunk_size, kwargs
) -> tuple[Float[Array, " pairs"], Int[Array, " pairs"]]:
    def one(pair, init):
        length, result = _distance(metric, pair[0], pair[1], throw=False, init=init, **kwargs)
        return length, jtu.tree_leaves(result)[0]  # (a RESULTS item: a pytree of its code)

    return sharded_map(
        unless_padding(one), (valid, pairs, inits), devices=devices, chunk_size=chunk_size
    )
