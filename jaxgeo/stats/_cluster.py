r"""Geodesic clustering and neighbours: k-medoids on a distance matrix, Riemannian
k-means with Fréchet means as centres, and k-nearest-neighbour queries."""

import functools as ft
import sys
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, PyTree

from .._checks import as_int, check_integer
from .._curve import curve_length, straight_line
from .._custom_types import Input, Scalar
from .._geodesic._base import AbstractBoundarySolver
from .._geodesic._distance import length_solution, pairwise_distances
from .._metric._base import AbstractMetric
from .._numerics import LENGTH_TOL
from .._sharding import map_solves
from .._solution import raise_outside_jit, RESULTS
from ._frechet import AbstractMeanSolver, first_failure, NewtonMean


class KMedoids(eqx.Module):
    r"""A k-medoids clustering, as [`jaxgeo.stats.k_medoids`][] returns it.

    **Attributes:**

    - `medoids`: the indices of the medoids among the points, shape `(k,)`.
    - `labels`: the cluster of every point (the index of its nearest medoid in
      `medoids`), shape `(n,)`.
    - `cost`: $\sum_i d(x_i, \text{its medoid})$.
    - `result`: `RESULTS.successful`; `max_steps_reached` if swaps still lowered the
      cost in the last of `max_steps` sweeps; `nonfinite_distances` if a point is at an
      infinite or undefined distance from every medoid.
    - `stats`: `num_steps`, the sweeps over the candidates (the last one stops part
      way, once `n` candidates in a row have given no swap); `num_swaps`; `max_steps`;
      and `num_failed_pairs`, the number of pairs $i < j$ whose distance is NaN (failed
      solves; they count as infinite).
    """

    medoids: Int[Array, " clusters"]
    labels: Int[Array, " points"]
    cost: Scalar
    result: RESULTS
    stats: dict[str, Any]


def _rank_last(costs, taken):
    """`costs` for an argmin in which the `taken` entries come strictly last (after
    infinite and NaN costs too)."""
    biggest = jnp.finfo(costs.dtype).max
    return jnp.where(taken, jnp.inf, jnp.nan_to_num(costs, nan=biggest, posinf=biggest))


def _unfailed(distances):
    """Failed (NaN) distances as infinite. Applied to the rows as they are read, so that
    no second n x n matrix is held."""
    return jnp.where(jnp.isnan(distances), jnp.inf, distances)


def _build(distances, num_clusters):
    """PAM's greedy BUILD: the point of least total distance, then repeatedly the point
    that lowers the total distance to the nearest medoid most (deterministic); never a
    point twice."""
    n = distances.shape[0]
    first = jnp.argmin(jnp.sum(_unfailed(distances), axis=1))
    medoids = jnp.zeros(num_clusters, int).at[0].set(first)
    taken = jnp.zeros(n, bool).at[first].set(True)
    nearest = _unfailed(distances[first])

    def add(j, carry):
        medoids, taken, nearest = carry
        # cost with candidate c added: sum_i min(nearest_i, d(c, i))
        costs = jnp.sum(jnp.minimum(nearest[None], _unfailed(distances)), axis=1)
        new = jnp.argmin(_rank_last(costs, taken))
        nearest = jnp.minimum(nearest, _unfailed(distances[new]))
        return medoids.at[j].set(new), taken.at[new].set(True), nearest

    medoids, _, _ = jax.lax.fori_loop(1, num_clusters, add, (medoids, taken, nearest))
    return medoids


def _assign(distances, medoids):
    """Every point's nearest medoid (its slot in `medoids`, the first of equals), the
    distance to it, and the distance to the second nearest (infinite with one medoid)."""
    to_medoids = _unfailed(distances[medoids])  # (k, n)
    nearest = jnp.argmin(to_medoids, axis=0)
    slots = jnp.arange(medoids.shape[0])[:, None]
    first = jnp.min(to_medoids, axis=0)
    second = jnp.min(jnp.where(slots == nearest[None], jnp.inf, to_medoids), axis=0)
    return nearest, first, second


def _split(d):
    """Distances, some infinite, as pairs (1 if infinite, else 0; the finite distance or
    0), shape `d.shape + (2,)`: sums of them compare lexicographically (`_less`), so
    a clustering that reaches more points is better whatever its finite cost, and no
    inf - inf arises."""
    infinite = jnp.isinf(d)
    return jnp.stack([infinite.astype(d.dtype), jnp.where(infinite, 0, d)], axis=-1)


def _less(a, b):
    """Whether the split total `a` (a sum of `_split`s) is below `b`."""
    return (a[0] < b[0]) | ((a[0] == b[0]) & (a[1] < b[1]))


# Tolerance of the distance-matrix checks, relative to the entries (symmetry) or to the
# largest finite entry (diagonal, sign): loose enough for distances solved in both
# orders by separate solves (about 1e-6 relative apart), tight enough to catch a
# matrix with one triangle filled, a similarity or a kernel matrix.
_MATRIX_RTOL = 1e-3


def _matrix_defects(d: np.ndarray) -> list[str]:
    """What makes the square matrix `d` (NaN allowed off the diagonal: failed pairs) not
    a distance matrix, in words, each with a count, an example and the fix."""
    n = d.shape[0]
    finite = np.isfinite(d)
    scale = float(np.max(np.abs(d[finite]), initial=0.0)) or 1.0
    atol = _MATRIX_RTOL * scale
    off = ~np.eye(n, dtype=bool)
    defects = []
    diagonal = np.diagonal(d)
    bad = np.flatnonzero(~(np.abs(diagonal) <= atol))  # (NaN included)
    if bad.size:
        i = int(bad[0])
        defects.append(
            f"its diagonal must be zero (d(x, x) = 0), but {bad.size} diagonal entries are "
            f"not, e.g. distances[{i}, {i}] = {diagonal[i]:.6g}: a similarity or kernel matrix "
            "is not a distance matrix (convert it, e.g. 1 - similarity)"
        )
    negative = np.argwhere(off & (d < -atol))
    if negative.size:
        i, j = (int(k) for k in negative[0])
        defects.append(
            f"distances must be >= 0, but {len(negative)} entries are negative, e.g. "
            f"distances[{i}, {j}] = {d[i, j]:.6g}: a similarity or a log-likelihood passed as "
            "a distance?"
        )
    with np.errstate(invalid="ignore"):
        close = (d == d.T) | (np.isnan(d) & np.isnan(d.T))
        bound = _MATRIX_RTOL * np.maximum(np.abs(d), np.abs(d.T))
        close |= finite & finite.T & (np.abs(d - d.T) <= bound)
    asymmetric = np.argwhere(np.triu(~close, 1))
    if asymmetric.size:
        i, j = (int(k) for k in asymmetric[0])
        hint = (
            "only one triangle is filled (as a loop over the pairs i < j gives): fill "
            "both, e.g. distances + distances.T"
            if not np.any(np.tril(d, -1)) or not np.any(np.triu(d, 1))
            else "symmetrise it, e.g. (distances + distances.T) / 2, or compute it with "
            "jaxgeo.pairwise_distances(metric, xs)"
        )
        defects.append(
            f"a distance matrix must be symmetric (to {_MATRIX_RTOL:g} relative), but "
            f"{len(asymmetric)} pairs differ, e.g. distances[{i}, {j}] = {d[i, j]:.6g} and "
            f"distances[{j}, {i}] = {d[j, i]:.6g}: {hint}"
        )
    return defects


def _traced_defects(d):
    """The checks of `_matrix_defects` on a traced matrix: which one fails first (0
    diagonal, 1 sign, 2 symmetry; 3 none)."""
    n = d.shape[0]
    finite = jnp.isfinite(d)
    scale = jnp.max(jnp.where(finite, jnp.abs(d), 0))
    atol = _MATRIX_RTOL * jnp.where(scale > 0, scale, 1)
    off = ~jnp.eye(n, dtype=bool)
    diagonal = ~jnp.all(jnp.abs(jnp.diagonal(d)) <= atol)
    negative = jnp.any(off & (d < -atol))
    close = (d == d.T) | (jnp.isnan(d) & jnp.isnan(d.T))
    difference = jnp.abs(jnp.where(finite & finite.T, d - d.T, 0))
    bound = _MATRIX_RTOL * jnp.maximum(jnp.abs(d), jnp.abs(d.T))
    close = close | (finite & finite.T & (difference <= bound))
    asymmetric = ~jnp.all(close)
    return jnp.argmax(jnp.stack([diagonal, negative, asymmetric, jnp.array(True)]))


_TRACED_DEFECTS = tuple(
    f"k_medoids: not a distance matrix: {what} (checked under jit, where the entries "
    "cannot be named; call k_medoids outside jit for the offending entries)"
    for what in (
        "its diagonal must be zero (d(x, x) = 0); a similarity or kernel matrix is not a "
        "distance matrix",
        "distances must be >= 0 (a similarity passed as a distance?)",
        f"it must be symmetric (to {_MATRIX_RTOL:g} relative); only one triangle filled? "
        "Fill both, e.g. distances + distances.T",
    )
)


def k_medoids(
    distances: Input, num_clusters: int | np.integer, *, max_steps: int = 100
) -> KMedoids:
    r"""k-medoids of `n` points from their distance matrix (e.g.
    [`jaxgeo.pairwise_distances`][]: geodesic k-medoids), by FasterPAM (Schubert and
    Rousseeuw 2021, *Fast and eager k-medoids clustering*): PAM's greedy BUILD
    initialisation, then sweeps over the points as candidates; for each candidate the
    change of the cost $\sum_i d(x_i, \text{its medoid})$ of swapping it for each of
    the `k` medoids, all at once in $O(n)$ from every point's nearest and
    second-nearest medoid distances, and the best of these swaps made at once if it
    lowers the cost. It stops when `n` candidates in a row give no swap (at most
    `max_steps` sweeps). Deterministic; jit-able; $O(nk)$ memory besides the matrix,
    which is read a row at a time (`distances[m, i]` is the distance of point `i` to
    medoid `m`).

    The result is a local optimum of swaps: no exchange of one medoid for one other
    point lowers the cost. k-medoids is NP-hard, and such an optimum need not be the
    global one: of 200 random sets of 12 Gaussian points in the plane, k = 3, 173 came
    out optimal (the others 0.02-9.5 % above the optimum, where the earlier
    alternation of assignments and medoid updates found 120).

    `distances` must be a distance matrix: square, symmetric (to 1e-3 relative),
    non-negative, with a zero diagonal; anything else (one triangle filled, a similarity
    or kernel matrix) is an error (under `jit` by `eqx.error_if`). NaN entries off the
    diagonal are failed solves (as [`jaxgeo.pairwise_distances`][] gives them): they
    count as infinite, and `stats["num_failed_pairs"]` counts them; a point at a NaN or
    infinite distance from every medoid fails the clustering (`nonfinite_distances`).

    **Returns:** a [`jaxgeo.stats.KMedoids`][].

    **Raises:** `ValueError` for a matrix that is not a distance matrix, or
    `num_clusters` outside `[1, n]`.
    """
    distances = jnp.asarray(distances)
    if distances.ndim != 2 or distances.shape[0] != distances.shape[1]:
        raise ValueError(
            f"k_medoids: expected a square distance matrix of shape (n, n), got shape "
            f"{distances.shape}; compute one with jaxgeo.pairwise_distances(metric, xs)"
        )
    n = distances.shape[0]
    if n == 0:
        raise ValueError("k_medoids: the distance matrix is empty (0 points)")
    if jnp.issubdtype(distances.dtype, jnp.integer):
        distances = distances.astype(jnp.result_type(float))  # (e.g. Hamming distances)
    if not jnp.issubdtype(distances.dtype, jnp.floating):
        raise ValueError(f"k_medoids: distances must be real numbers, got dtype {distances.dtype}")
    num_clusters = as_int(num_clusters)
    if not isinstance(num_clusters, int) or not 1 <= num_clusters <= n:
        raise ValueError(
            f"k_medoids: num_clusters must be in [1, {n}] (an integer, at most the number "
            f"of points), got {num_clusters!r}"
        )
    check_integer(max_steps, "k_medoids: max_steps", minimum=0)
    traced = isinstance(distances, jax.core.Tracer)
    if not traced:
        defects = _matrix_defects(np.asarray(distances))
        if defects:
            raise ValueError("k_medoids: not a distance matrix: " + "; ".join(defects))
    return _k_medoids(distances, num_clusters, max_steps, traced)


@eqx.filter_jit
def _k_medoids(distances, num_clusters, max_steps, check) -> KMedoids:
    if check:  # (traced by the caller's jit: its entries cannot be checked before)
        defect = _traced_defects(distances)
        distances = eqx.branched_error_if(
            distances, defect < len(_TRACED_DEFECTS), defect, _TRACED_DEFECTS
        )
    num_failed_pairs = jnp.sum(jnp.triu(jnp.isnan(distances), 1))
    n = distances.shape[0]
    # (a bound on the candidates tried, within the default integer's range)
    limit = min(max_steps * n, int(jnp.iinfo(jnp.result_type(int)).max))

    def sweep_on(state):
        *_, tried, since_swap, _ = state
        return (since_swap < n) & (tried < limit)

    def try_candidate(state):
        medoids, nearest, first, second, total, tried, since_swap, num_swaps = state
        candidate = tried % n
        to_candidate = _unfailed(jax.lax.dynamic_index_in_dim(distances, candidate, 0, False))
        # Swapping medoid m for the candidate, a point keeps min(d_c, first) if its
        # nearest medoid is not m, and gets min(d_c, second) if it is: the change of the
        # total is a part shared by every m, plus, for m, the sum over its own points of
        # min(d_c, second) - min(d_c, first). (FasterPAM precomputes each medoid's
        # "removal loss", the sum of second - first over its points, so as to visit
        # only the points with d_c < second; evaluating all n points at once, as here,
        # the removal loss and its corrections are one sum.)
        stay = _split(jnp.minimum(to_candidate, first))
        lose = _split(jnp.minimum(to_candidate, second))
        shared = jnp.sum(stay - _split(first), axis=0)
        change = shared[None] + jax.ops.segment_sum(lose - stay, nearest, num_clusters)
        # the medoid best swapped out: fewest unreached points, then least cost
        fewest = jnp.min(change[:, 0])
        slot = jnp.argmin(jnp.where(change[:, 0] == fewest, change[:, 1], jnp.inf))
        improves = _less(change[slot], jnp.zeros_like(shared)) & ~jnp.any(medoids == candidate)

        def swap():
            new_medoids = medoids.at[slot].set(candidate)
            new_assignment = _assign(distances, new_medoids)
            new_total = jnp.sum(_split(new_assignment[1]), axis=0)
            # Accepted on the totals themselves, which are functions of the set of
            # medoids: the total strictly decreases at every swap, so no swap between
            # equal clusterings (a predicted change a round-off below zero) can cycle.
            better = _less(new_total, total)
            old = (medoids, (nearest, first, second), total)
            new = (new_medoids, new_assignment, new_total)
            return jtu.tree_map(ft.partial(jnp.where, better), new, old), better

        def keep():
            return (medoids, (nearest, first, second), total), jnp.array(False)

        (medoids, (nearest, first, second), total), swapped = jax.lax.cond(improves, swap, keep)
        return (
            medoids,
            nearest,
            first,
            second,
            total,
            tried + 1,
            jnp.where(swapped, 0, since_swap + 1),
            num_swaps + swapped.astype(int),
        )

    medoids = _build(distances, num_clusters)
    nearest, first, second = _assign(distances, medoids)
    total = jnp.sum(_split(first), axis=0)
    counts = (jnp.zeros((), int),) * 3  # (tried, since_swap, num_swaps)
    medoids, nearest, first, _, _, tried, since_swap, num_swaps = jax.lax.while_loop(
        sweep_on, try_candidate, (medoids, nearest, first, second, total, *counts)
    )
    cost = jnp.sum(first)  # (infinite if a point is unreached)
    result = RESULTS.where(since_swap < n, RESULTS.max_steps_reached, RESULTS.successful)
    return KMedoids(
        medoids=medoids,
        labels=nearest,
        cost=cost,
        result=RESULTS.where(jnp.isfinite(cost), result, RESULTS.nonfinite_distances),
        stats=dict(
            num_steps=(tried + n - 1) // n,
            num_swaps=num_swaps,
            max_steps=max_steps,
            num_failed_pairs=num_failed_pairs,
        ),
    )


class KMeans(eqx.Module):
    r"""A Riemannian k-means clustering, as [`jaxgeo.stats.k_means`][] returns it.

    **Attributes:**

    - `centres`: the cluster centres (Fréchet means of their clusters), shape `(k, D)`.
    - `labels`: the cluster of every point, shape `(n,)`.
    - `distances`: the geodesic distance of every point to every centre, shape
      `(n, k)`.
    - `inertia`: $\sum_i d(x_i, \text{its centre})^2$.
    - `result`: a [`jaxgeo.RESULTS`][]: the first failure of the last Fréchet means
      (`max_steps_reached` if the labels still changed after `max_steps` iterations;
      `nonfinite_distances` if a point's distance to its centre failed).
    - `stats`: `num_steps` (iterations), `max_steps`, `error_estimates` (of the
      final centres, one per cluster, in the metric's norm; NaN where the mean solver
      gives none), `num_subsample_steps` (the iterations on the subsample that
      seeded it; 0 if none) and `num_distance_solves` (distances to other centres
      solved in the iterations: the rest were ruled out by bounds).
    """

    centres: Float[Array, "clusters dim"]
    labels: Int[Array, " points"]
    distances: Float[Array, "points clusters"]
    inertia: Scalar
    result: RESULTS
    stats: dict[str, Any]


def k_means(
    metric: AbstractMetric,
    xs: Input,
    num_clusters: int,
    *,
    init: Input | None = None,
    key: PRNGKeyArray | None = None,
    num_points: int = 129,
    geodesic_solver: AbstractBoundarySolver | None = None,
    mean_solver: AbstractMeanSolver | None = None,
    max_steps: int = 32,
    subsample: int | None = 256,
    progress: bool = False,
    throw: bool = True,
) -> KMeans:
    r"""Riemannian k-means (Lloyd's iteration) of the points `xs`, shape `(n, D)`:
    assign every point to its nearest centre by geodesic distance, move every centre to
    the Fréchet mean of its cluster, until the labels stop changing (at most
    `max_steps` iterations). `init`: the initial centres, shape `(k, D)`; default
    k-means++ seeding by geodesic distance from `key` (default `jax.random.key(0)`),
    and on more than `subsample` points the clustering of a random `subsample` of
    them (until its labels settle, coarsely: see below) seeds the whole set's. A
    cluster that empties keeps its centre.

    Built for data sets (a thousand points in minutes on a laptop):

    - the means of all the clusters are one solve of `mean_solver`'s
      `cluster_means` (default [`jaxgeo.stats.NewtonMean`][]`(min_segments=32)`:
      Newton's method on every mean and the polylines to its own points only, all
      clusters at once, each from the previous iteration's polylines, which also give
      every point's distance to its own centre; a point that changes cluster starts
      from its geodesic to the new centre, solved when it was compared);
    - a point's distance to another centre is solved only where a lower bound does
      not rule that centre out (Elkan's: the last solved distance less the centre's
      moves since, by the triangle inequality; a move is bounded by the length of the
      straight segment from the old centre to the new, no solve);
    - while the labels change, the means are solved to the square root of their
      tolerance (`NewtonMean`: after the first, on one level, with the last
      extrapolation's corrections); once they settle, to the full tolerance, and every
      distance is solved, until the labels settle again: the centres are the Fréchet
      means of their clusters (their error estimates are in `stats`), and every label
      is the nearest centre by the solved distances;
    - the seeding, the iterations and the last distances are one loop with one
      compiled distance solve (1,000 learned-ring points, k = 2: 95 s with compile,
      24 iterations).

    `num_points` and `geodesic_solver` (its `solver`, e.g. [`jaxgeo.Shortest`][]) go to
    [`jaxgeo.distance`][] and to the default mean solver. `progress=True` prints a line
    to standard error after every iteration (a host callback: that program is not
    written to JAX's persistent compilation cache).

    **Returns:** a [`jaxgeo.stats.KMeans`][].
    """
    xs = jnp.asarray(xs)
    if xs.ndim != 2 or not jnp.issubdtype(xs.dtype, jnp.floating):
        raise ValueError(f"k_means: expected floating points xs of shape (n, D), got {xs.shape}")
    if not 1 <= num_clusters <= xs.shape[0]:
        raise ValueError(f"k_means: num_clusters must be in [1, {xs.shape[0]}], got {num_clusters}")
    if init is not None:
        init = jnp.asarray(init, xs.dtype)
        if init.shape != (num_clusters, xs.shape[1]):
            raise ValueError(
                f"k_means: init must have shape {(num_clusters, xs.shape[1])}, got {init.shape}"
            )
    if subsample is not None:
        check_integer(subsample, "k_means: subsample", minimum=num_clusters)
    key = jr.key(0) if key is None else key
    if mean_solver is None:
        # (from 32 segments: a cluster's curves are long, and 16 segments of a
        # half-ring arc on the learned ring metric cycle between rejected Newton steps
        # until the level's budget is spent; at 1,000 points 10 s a mean solve -> 4 s)
        mean_solver = NewtonMean(geodesic_solver=geodesic_solver, min_segments=32)
    options = dict(
        num_clusters=num_clusters,
        num_points=num_points,
        solver=geodesic_solver,
        mean_solver=mean_solver,
        max_steps=max_steps,
        progress=progress,
    )
    subsample_steps = jnp.array(0)
    if init is None and subsample is not None and xs.shape[0] > subsample:
        key, pick = jr.split(key)
        chosen = jr.choice(pick, xs.shape[0], (subsample,), replace=False)
        seeds = _k_means(metric, xs[chosen], None, key, 0, **options, tight=False, throw=False)
        init, subsample_steps = seeds.centres, seeds.stats["num_steps"]
    return _k_means(metric, xs, init, key, subsample_steps, **options, tight=True, throw=throw)


def _solve_masked(solve, needed):
    """`solve()` (floating outputs) where `needed`, else NaNs of its shapes: under
    `lax.map` (the CPU's `map_solves`) the skipped solves cost nothing."""
    shapes = jax.eval_shape(solve)
    return jax.lax.cond(
        needed, solve, lambda: jtu.tree_map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), shapes)
    )


DISTANCE_MAX_STEPS = 4096  # as `distance`'s default


def _solved_length(metric, x0, x1, solver, num_points, init=None):
    """`distance(x0, x1)` (NaN where its solve failed) and its polyline, `num_points`
    from `x0` to `x1`."""
    sol = length_solution(metric, x0, x1, solver, num_points, DISTANCE_MAX_STEPS, False, init)
    return jnp.where(sol.result == RESULTS.successful, sol.length, jnp.nan), sol.xs


def _nearer(best, candidate):
    """The (length, polyline) of the two of lesser length (a NaN length never wins)."""
    better = candidate[0] < best[0]
    return jnp.where(better, candidate[0], best[0]), jnp.where(better, candidate[1], best[1])


def _masked_distances(metric, centres, xs, needed, inits, num_points, solver):
    """The distances from every point to the centres it `needed` (shape `(n, k)`; NaN
    where not), each solve from its initial polyline `inits(j, i)`, and every point's
    polyline from the nearest of them (shape `(n, num_points, D)`; NaN where none)."""
    dtype = xs.dtype

    def one(args):
        i, needed = args

        def to(best, j):
            solved = _solve_masked(
                lambda: _solved_length(metric, centres[j], xs[i], solver, num_points, inits(j, i)),
                needed[j],
            )
            return _nearer(best, solved), solved[0]

        start = (jnp.array(jnp.inf, dtype), jnp.full((num_points, xs.shape[1]), jnp.nan, dtype))
        (_, curve), lengths = jax.lax.scan(to, start, jnp.arange(centres.shape[0]))
        return lengths, curve

    return map_solves(one, (jnp.arange(xs.shape[0]), needed))


# A centre's move bounds the change of every distance to it (Elkan's bounds): it is
# bounded above by the length of the straight segment from the old centre to the new
# (midpoint rule on MOVE_PIECES pieces, MOVE_MARGIN added for the rule's error): no
# geodesic solve. (A bound that is too tight only spares a solve in an iteration that
# is not the last: the last solves every distance.)
MOVE_PIECES = 64
MOVE_MARGIN = 1e-3


def _move_bounds(metric, old, new):
    """Upper bounds of the geodesic distances from the `old` centres to the `new`."""
    lengths = jax.vmap(lambda a, b: curve_length(metric, straight_line(a, b, MOVE_PIECES + 1)))(
        old, new
    )
    return jnp.where(jnp.isfinite(lengths), lengths * (1 + MOVE_MARGIN), jnp.inf)


class _Lloyd(NamedTuple):
    centres: Float[Array, "k dim"]
    labels: Int[Array, " n"]
    curves: Float[Array, "n points dim"]  # from every point's centre to it
    # To the own centre: the means' polylines'; to the others: solved where `exact`,
    # else a lower bound (the last solved distance less the centre's moves since).
    distances: Float[Array, "n k"]
    exact: Bool[Array, "n k"]
    coarse: Bool[Array, ""]  # means to the square root of the tolerance
    verify: Bool[Array, ""]  # this iteration solves every distance (no bounds)
    results: RESULTS  # the last means', one per cluster
    error_estimates: Float[Array, " k"]
    means_state: PyTree  # the mean solver's, carried between its calls
    running: Bool[Array, ""]
    num_steps: Int[Array, ""]
    num_solves: Int[Array, ""]  # distances solved to the other centres
    seeded: Int[Array, ""]  # centres chosen (and their distances solved) so far
    finished: Bool[Array, ""]


def _report(phase, lloyd, step, num_changed, coarse, num_solved, estimate):
    if not lloyd:
        return
    means = "coarse" if coarse else "tight"
    how = (
        "one level, the last extrapolation's corrections added"
        if np.isnan(estimate)
        else f"largest error estimate {estimate:.1e}"
    )
    print(
        f"k_means{phase}: iteration {step}: {num_changed} labels changed; {means} means "
        f"({how}); {num_solved} distances to other centres solved",
        file=sys.stderr,
        flush=True,
    )


def _nearest(distances):
    return jnp.argmin(jnp.where(jnp.isnan(distances), jnp.inf, distances), axis=1)


@raise_outside_jit
def _k_means(
    metric,
    xs,
    init,
    key,
    subsample_steps,
    *,
    num_clusters,
    num_points,
    solver,
    mean_solver,
    max_steps,
    progress,
    tight,
    throw=True,
) -> KMeans:
    """Lloyd's iteration; `tight=False`: to the coarse means only. One loop, whose
    every pass solves one batch of distances (one compiled solve): first the seeding
    (`init`: all the centres' distances at once; k-means++: one centre a pass), then
    the iterations, then the last distances."""
    del throw
    n, k = xs.shape[0], num_clusters
    dtype = xs.dtype
    points, clusters = jnp.arange(n), jnp.arange(k)
    slack = 4 * LENGTH_TOL(dtype)  # (the solves' tolerance, on both terms of a bound)

    def seed(state: _Lloyd):
        """The centre(s) of this seeding pass and the distances they need."""
        if init is not None:
            return init, jnp.ones((n, k), bool), init[0], jnp.array(-1)
        j = state.seeded
        # k-means++: the first uniformly, each next with probability ~ d^2 to the
        # nearest centre chosen so far
        chosen = clusters[None] < j
        nearest = jnp.min(
            jnp.where(chosen & jnp.isfinite(state.distances), state.distances, jnp.inf), axis=1
        )
        weights = jnp.where(jnp.isfinite(nearest), nearest**2, 0)
        total = jnp.sum(weights)  # (zero at the first, or when every point is chosen)
        p = jnp.where(total > 0, weights / jnp.where(total > 0, total, 1), 1 / n)
        index = jr.choice(jr.fold_in(key, j), n, p=p)
        centres = state.centres.at[j].set(xs[index])
        return centres, jnp.broadcast_to(clusters[None] == j, (n, k)), xs[index], index

    def step(state: _Lloyd) -> _Lloyd:
        seeding = state.seeded < k
        lloyd = ~seeding & state.running & (state.num_steps < max_steps)
        final = ~seeding & ~lloyd
        mine = clusters[None] == state.labels[:, None]

        def means():
            return mean_solver.cluster_means(
                metric,
                xs,
                state.labels,
                state.centres,
                state.curves,
                num_points,
                state.coarse,
                state.means_state,
            )

        def kept():
            own = state.distances[points, state.labels]
            return (
                state.centres,
                state.curves,
                own,
                state.results,
                state.error_estimates,
                state.means_state,
            )

        new, curves, own, results, estimates, means_state = jax.lax.cond(lloyd, means, kept)
        new = jnp.where(jnp.all(jnp.isfinite(new), axis=1)[:, None], new, state.centres)
        seed_centres, seed_needed, seed_centre, seed_index = seed(state)
        centres = jnp.where(seeding, seed_centres, new)
        # How far every centre moved: by the triangle inequality no distance to it fell
        # by more, so a point whose lower bound to another centre exceeds its distance to
        # its own cannot move there, and that distance is not solved (Elkan's bound).
        moves = _move_bounds(metric, state.centres, new)
        bounds = state.distances * (1 - slack) - moves[None] * (1 + slack)
        iteration_needed = ~mine & (
            state.verify | ~(bounds > own[:, None]) | jnp.isnan(state.distances)
        )
        # The last pass: every point's distance to its own centre, from its polyline,
        # and those to the other centres that are bounds only (the iterations ran out).
        final_needed = (mine & (state.num_steps > 0)) | ~state.exact
        needed = jnp.where(seeding, seed_needed, jnp.where(lloyd, iteration_needed, final_needed))
        solved, nearest_curves = _masked_distances(
            metric,
            centres,
            xs,
            needed,
            lambda j, i: jnp.where(
                final & (j == state.labels[i]),
                state.curves[i],
                straight_line(centres[j], xs[i], num_points),
            ),
            num_points,
            solver,
        )

        # Seeding: the distances to the new centre(s); every point's polyline from its
        # nearest centre so far (the first means start from them).
        if init is None:  # (the chosen point itself: zero, whatever its solve gave)
            solved = jnp.where((points == seed_index)[:, None] & seed_needed & seeding, 0, solved)
            nearest_curves = jnp.where(
                (points == seed_index)[:, None, None] & seeding, seed_centre, nearest_curves
            )
        before = jnp.min(
            jnp.where(~seed_needed & (clusters[None] < state.seeded), state.distances, jnp.inf),
            axis=1,
        )
        seeded_distances = jnp.where(seed_needed, solved, state.distances)
        closer = jnp.min(jnp.where(seed_needed, solved, jnp.inf), axis=1) < before
        seeded_curves = jnp.where(closer[:, None, None], nearest_curves, state.curves)
        seeded = state.seeded + (1 if init is None else k)

        # An iteration: the nearest centres by the solved distances and the bounds.
        distances = jnp.where(mine, own[:, None], jnp.where(needed, solved, bounds))
        exact = mine | needed
        # (a point moves only to a centre nearer by more than the distances' tolerance:
        # no flips between two centres that tie within it)
        nearest = _nearest(jnp.where(exact, distances, jnp.inf))
        stay = jnp.isfinite(own) & ~(distances[points, nearest] < own * (1 - LENGTH_TOL(dtype)))
        labels = jnp.where(stay, state.labels, nearest)
        changed = jnp.any(labels != state.labels)
        switched = (labels != state.labels)[:, None, None]
        # Once the labels settle, the means to the full tolerance and every distance
        # solved; the labels that still do not change end the iteration.
        coarse = state.coarse & (changed | (not tight))
        if progress:
            jax.debug.callback(
                ft.partial(_report, "" if tight else " (subsample)"),
                lloyd,
                state.num_steps + 1,
                jnp.sum(labels != state.labels),
                state.coarse,
                jnp.sum(needed),
                jnp.max(estimates),
            )
        iterated = _Lloyd(
            centres=new,
            labels=labels,
            # (a point that moved: its geodesic to its new centre, solved just now)
            curves=jnp.where(switched, nearest_curves, curves),
            distances=distances,
            exact=exact,
            coarse=coarse,
            verify=~changed & tight,
            results=results,
            error_estimates=estimates,
            means_state=means_state,
            running=changed | (tight & ~state.verify),  # (verify: tight means)
            num_steps=state.num_steps + 1,
            num_solves=state.num_solves + jnp.sum(needed),
            seeded=state.seeded,
            finished=jnp.array(False),
        )
        seeded_state = state._replace(
            centres=seed_centres,
            labels=_nearest(seeded_distances),
            curves=seeded_curves,
            distances=seeded_distances,
            seeded=seeded,
        )
        final_state = state._replace(
            distances=jnp.where(needed, solved, state.distances), finished=jnp.array(True)
        )
        return jax.tree.map(
            lambda a, b, c: jnp.where(seeding, a, jnp.where(lloyd, b, c)),
            seeded_state,
            iterated,
            final_state,
        )

    start = _Lloyd(
        centres=jnp.zeros((k, xs.shape[1]), dtype) if init is None else init,
        labels=jnp.zeros(n, int),
        curves=jax.vmap(lambda x: straight_line(x, x, num_points))(xs),
        distances=jnp.full((n, k), jnp.nan, dtype),
        exact=jnp.ones((n, k), bool),
        coarse=jnp.array(True),
        verify=jnp.array(False),
        results=jax.tree.map(lambda r: jnp.full(k, r), RESULTS.successful),
        error_estimates=jnp.full(k, jnp.nan, dtype),
        means_state=mean_solver.cluster_state(xs, k),
        running=jnp.array(True),
        num_steps=jnp.array(0),
        num_solves=jnp.array(0),
        seeded=jnp.array(0),
        finished=jnp.array(False),
    )
    state = jax.lax.while_loop(lambda s: ~s.finished, step, start)
    nearest = state.distances[points, state.labels]
    empty = jnp.zeros(k, int).at[state.labels].add(1) == 0
    results = state.results
    failed = (results != RESULTS.successful) & (results != RESULTS.max_steps_reached)
    result = first_failure(results, failed & ~empty)
    result = RESULTS.where(
        (result == RESULTS.successful) & state.running, RESULTS.max_steps_reached, result
    )
    result = RESULTS.where(
        (result == RESULTS.successful) & ~jnp.all(jnp.isfinite(nearest)),
        RESULTS.nonfinite_distances,
        result,
    )
    return KMeans(
        centres=state.centres,
        labels=state.labels,
        distances=state.distances,
        inertia=jnp.sum(nearest**2),
        result=result,
        stats=dict(
            num_steps=state.num_steps,
            max_steps=max_steps,
            error_estimates=state.error_estimates,
            num_subsample_steps=subsample_steps,
            num_distance_solves=state.num_solves,
        ),
    )


def nearest_neighbours(
    metric: AbstractMetric,
    queries: Input,
    xs: Input,
    num_neighbours: int | np.integer,
    **distance_kwargs,
) -> tuple[Float[Array, "queries neighbours"], Int[Array, "queries neighbours"]]:
    r"""The `num_neighbours` nearest points of `xs` (shape `(n, D)`) to every query
    (shape `(q, D)`) by geodesic distance: `(distances, indices)`, each of shape
    `(q, num_neighbours)`, nearest first. The distances are
    [`jaxgeo.pairwise_distances`][]`(metric, queries, xs, **distance_kwargs)`
    (sharded over the devices); a failed solve (NaN) ranks last, so a query whose
    solves all failed (e.g. a NaN query) gets NaN distances."""
    xs, queries = jnp.asarray(xs), jnp.asarray(queries)
    if xs.ndim != 2 or queries.ndim != 2 or xs.shape[1] != queries.shape[1] or not xs.size:
        raise ValueError(
            "nearest_neighbours: expected queries of shape (q, D) and points xs of shape "
            f"(n, D), n >= 1, got {queries.shape} and {xs.shape} (one query: queries[None])"
        )
    num_neighbours = as_int(num_neighbours)
    if not isinstance(num_neighbours, int) or not 1 <= num_neighbours <= xs.shape[0]:
        raise ValueError(
            f"nearest_neighbours: num_neighbours must be in [1, {xs.shape[0]}] (an integer, "
            f"at most the number of points xs), got {num_neighbours!r}"
        )
    distances = pairwise_distances(metric, queries, xs, **distance_kwargs)
    return _smallest(distances, num_neighbours)


@eqx.filter_jit
def _smallest(distances, k):
    ranked = jnp.where(jnp.isnan(distances), -jnp.inf, -distances)
    _, indices = jax.lax.top_k(ranked, k)
    return jnp.take_along_axis(distances, indices, axis=1), indices
