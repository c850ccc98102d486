import hashlib
import os
import time
from collections.abc import Sequence
from pathlib import Path

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
from .._sharding import sharded_map
from .._solution import GeodesicSolution, RESULTS
from ._base import AbstractBoundarySolver
from ._bvp import default_chunk_size, geodesic_bvp
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
    relative on the Part II geodesic (128 segments), 2e-10 on a Poincaré pair (64).
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


def _distance(metric, x0, x1, solver, num_points, max_steps, throw) -> tuple[Scalar, RESULTS]:
    """`distance` and the `RESULTS` of its solve."""
    if solver is None:
        solver = Richardson(resolve_velocity=False)  # the length only
    sol = log_map(
        metric, x0, x1, solver=solver, num_points=num_points, max_steps=max_steps, throw=throw
    )
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
    progress: bool | None = None,
    checkpoint: str | Path | None = None,
    return_results: bool = False,
) -> Float[Array, "n m"] | tuple[Float[Array, "n m"], RESULTS]:
    """Geodesic distances between every `xs[i]` and `ys[j]`, shape `(n, m)`, by
    [`jaxgeo.distance`][] (`solver`, `num_points`, `max_steps` go there; e.g.
    `solver=jaxgeo.Richardson(rtol=1e-3)` for a looser tolerance). Without `ys`, the
    symmetric matrix of distances within `xs`: only the $n(n-1)/2$ pairs $i < j$ are
    solved, and the diagonal is zero. A pair whose solve fails gives NaN; with
    `return_results=True` the call returns `(distances, results)`, `results` a
    [`jaxgeo.RESULTS`][] of shape `(n, m)` saying why (`jaxgeo.result_name(results)`:
    their short names; the diagonal of the symmetric case is `successful`).

    The pairs are solved `pairs_per_call` at a time (default 256 per device on CPU,
    8,192 on accelerators) by one compiled program, reused for every call, whatever the
    number of points (a smaller last call compiles once more); between calls a progress
    bar (tqdm; `progress=None`: only on a terminal) advances. Memory: the matrix, and one
    call's pairs and solves. Within a call the pairs are split evenly over `devices`
    (default: all of `jax.devices()`; one device means no sharding) with
    `jax.shard_map`, and each device solves its pairs `chunk_size` at a time (vmapped
    within a chunk, `lax.map` over chunks; the default is as in
    [`jaxgeo.geodesic_bvp_batch`][]).

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
    if pairs_per_call is not None and (not isinstance(pairs_per_call, int) or pairs_per_call < 1):
        raise ValueError(
            f"pairwise_distances: pairs_per_call must be a positive integer, got {pairs_per_call!r}"
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

    def solve(pairs):
        return _pair_distances(metric, pairs, devices, chunk_size, kwargs)

    traced = any(isinstance(leaf, jax.core.Tracer) for leaf in jtu.tree_leaves((metric, xs, ys)))
    if traced or jax.process_count() > 1:
        if checkpoint is not None:
            raise ValueError(
                "pairwise_distances: a checkpoint needs concrete (not traced) inputs and one "
                "process"
            )
        lengths, codes = solve(jnp.stack([xs[rows], ys[cols]], axis=1))
    else:
        per_call = pairs_per_call or _default_pairs_per_call(devices)
        lengths, codes = _solve_in_calls(
            solve, xs, ys, rows, cols, per_call, progress, checkpoint, (metric, xs, ys, kwargs)
        )
    out = jnp.zeros((n, m), lengths.dtype).at[rows, cols].set(lengths)
    out = out + out.T if symmetric else out
    if not return_results:
        return out
    results = jnp.zeros((n, m), codes.dtype).at[rows, cols].set(codes)
    return out, _results(results + results.T if symmetric else results)


def _results(codes: Int[Array, "..."]) -> RESULTS:
    """A batch of `RESULTS` from their integer codes (`RESULTS` items are pytrees)."""
    return jtu.tree_unflatten(jtu.tree_structure(RESULTS.successful), [codes])


# Pairs per compiled call when not given. CPU: a call of a learned metric's pairs takes
# seconds (W6's ring network: about 20 ms a pair), so the progress bar moves.
CPU_PAIRS_PER_CALL = 256
ACCELERATOR_PAIRS_PER_CALL = 8192
CHECKPOINT_INTERVAL_S = 30.0


def _default_pairs_per_call(devices: Sequence[jax.Device] | None) -> int:
    devices = jax.devices() if devices is None else list(devices)
    if devices[0].platform == "cpu":
        return CPU_PAIRS_PER_CALL * len(devices)
    return ACCELERATOR_PAIRS_PER_CALL


def _solve_in_calls(
    solve, xs, ys, rows, cols, per_call, progress, checkpoint, identity
) -> tuple[Float[Array, " pairs"], Int[Array, " pairs"]]:
    """The pairs' distances and result codes, `per_call` pairs per call of `solve`, with
    a progress bar and (if `checkpoint` is a path) saved and resumed progress."""
    num_pairs = len(rows)
    dtype = jnp.result_type(xs.dtype, ys.dtype)
    dtype = dtype if jnp.issubdtype(dtype, jnp.inexact) else jnp.asarray(0.0).dtype
    lengths = np.full(num_pairs, np.nan, dtype)
    codes = np.zeros(num_pairs, np.int32)
    path = None if checkpoint is None else Path(checkpoint)
    meta = None if path is None else hashlib.sha256(describe(identity).encode()).hexdigest()
    done = 0 if path is None else _load_progress(path, meta, lengths, codes)
    bar = progress_bar(num_pairs, done, progress, unit="pair", desc="pairwise_distances")
    saved_at, saved_done = time.monotonic(), done
    try:
        while done < num_pairs:
            stop = min(done + per_call, num_pairs)
            pairs = jnp.stack([xs[rows[done:stop]], ys[cols[done:stop]]], axis=1)
            solved, solved_codes = solve(pairs)
            lengths[done:stop], codes[done:stop] = np.asarray(solved), np.asarray(solved_codes)
            bar.update(stop - done)
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


@eqx.filter_jit  # one trace per metric structure and number of pairs, not one per call
def _pair_distances(
    metric, pairs, devices, chunk_size, kwargs
) -> tuple[Float[Array, " pairs"], Int[Array, " pairs"]]:
    def one(pair):
        length, result = _distance(metric, pair[0], pair[1], throw=False, **kwargs)
        return length, jtu.tree_leaves(result)[0]  # (a RESULTS item: a pytree of its code)

    return sharded_map(one, pairs, devices=devices, chunk_size=chunk_size)
