r"""Geodesic clustering and neighbours: k-medoids on a distance matrix, Riemannian
k-means with Fréchet means as centres, and k-nearest-neighbour queries."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._custom_types import Input, Scalar
from .._geodesic._base import AbstractBoundarySolver
from .._geodesic._distance import distance, pairwise_distances
from .._metric._base import AbstractMetric
from .._sharding import map_solves
from .._solution import raise_outside_jit, RESULTS
from ._frechet import _karcher_mean, first_failure, initial_curves, karcher_rtol


class KMedoids(eqx.Module):
    r"""A k-medoids clustering, as [`jaxgeo.stats.k_medoids`][] returns it.

    **Attributes:**

    - `medoids`: the indices of the medoids among the points, shape `(k,)`.
    - `labels`: the cluster of every point (the index of its nearest medoid in
      `medoids`), shape `(n,)`.
    - `cost`: $\sum_i d(x_i, \text{its medoid})$.
    - `result`: `RESULTS.successful`; `max_steps_reached` if the medoids still moved
      after `max_steps` iterations; `nonfinite_distances` if a point is at an infinite
      or undefined distance from every medoid.
    - `stats`: `num_steps`, `max_steps`.
    """

    medoids: Int[Array, " clusters"]
    labels: Int[Array, " points"]
    cost: Scalar
    result: RESULTS
    stats: dict[str, Any]


def _nearest(distances, medoids):
    """The nearest medoid of every point and the total distance to it."""
    to_medoids = distances[:, medoids]
    return jnp.argmin(to_medoids, axis=1), jnp.sum(jnp.min(to_medoids, axis=1))


def _rank_last(costs, taken):
    """`costs` for an argmin in which the `taken` entries come strictly last (after
    infinite and NaN costs too)."""
    biggest = jnp.finfo(costs.dtype).max
    return jnp.where(taken, jnp.inf, jnp.nan_to_num(costs, nan=biggest, posinf=biggest))


def _build(distances, num_clusters):
    """PAM's greedy BUILD: the point of least total distance, then repeatedly the point
    that lowers the total distance to the nearest medoid most (deterministic); never a
    point twice."""
    n = distances.shape[0]
    first = jnp.argmin(jnp.sum(distances, axis=1))
    medoids = jnp.zeros(num_clusters, int).at[0].set(first)
    slots = jnp.arange(num_clusters)

    def add(j, medoids):
        chosen = slots < j
        nearest = jnp.min(jnp.where(chosen[None], distances[:, medoids], jnp.inf), 1)
        # cost with candidate c added: sum_i min(nearest_i, d(i, c))
        costs = jnp.sum(jnp.minimum(nearest[:, None], distances), axis=0)
        taken = jnp.any((jnp.arange(n)[:, None] == medoids[None]) & chosen[None], axis=1)
        return medoids.at[j].set(jnp.argmin(_rank_last(costs, taken)))

    return jax.lax.fori_loop(1, num_clusters, add, medoids)


def k_medoids(distances: Input, num_clusters: int, *, max_steps: int = 100) -> KMedoids:
    r"""k-medoids of `n` points from their distance matrix (e.g.
    [`jaxgeo.pairwise_distances`][]: geodesic k-medoids): PAM's greedy BUILD
    initialisation, then alternating assignment to the nearest medoid and, within each
    cluster, the point of least total distance to the others as its new medoid, until
    the medoids stop moving (each step lowers the cost; at most `max_steps`).
    Deterministic; jit-able. NaN distances (failed solves) count as infinite.

    **Returns:** a [`jaxgeo.stats.KMedoids`][].
    """
    distances = jnp.asarray(distances)
    if distances.ndim != 2 or distances.shape[0] != distances.shape[1]:
        raise ValueError(f"k_medoids: expected a square distance matrix, got {distances.shape}")
    if not 1 <= num_clusters <= distances.shape[0]:
        raise ValueError(
            f"k_medoids: num_clusters must be in [1, {distances.shape[0]}], got {num_clusters}"
        )
    return _k_medoids(distances, num_clusters, max_steps)


@eqx.filter_jit
def _k_medoids(distances, num_clusters, max_steps) -> KMedoids:
    distances = jnp.where(jnp.isnan(distances), jnp.inf, distances)
    clusters = jnp.arange(num_clusters)

    def update(medoids):
        labels, _ = _nearest(distances, medoids)
        members = labels[:, None] == clusters[None]  # (n, k)
        # within[i, j]: the total distance of point i to cluster j (a where, not a
        # product: inf * 0 would be NaN)
        within = jnp.sum(jnp.where(members[None], distances[:, :, None], 0), axis=1)
        candidates = jnp.where(members, within, jnp.inf)
        best = jnp.argmin(candidates, axis=0)
        # keep the medoid where it is as good as the best (no cycling between ties)
        current = within[medoids, clusters]
        return jnp.where(candidates[best, clusters] < current, best, medoids)

    def body(carry):
        medoids, _, num_steps = carry
        new = update(medoids)
        return new, jnp.any(new != medoids), num_steps + 1

    medoids, moved, num_steps = jax.lax.while_loop(
        lambda c: c[1] & (c[2] < max_steps),
        body,
        (_build(distances, num_clusters), jnp.array(True), jnp.array(0)),
    )
    labels, cost = _nearest(distances, medoids)
    result = RESULTS.where(moved, RESULTS.max_steps_reached, RESULTS.successful)
    return KMedoids(
        medoids=medoids,
        labels=labels,
        cost=cost,
        result=RESULTS.where(jnp.isfinite(cost), result, RESULTS.nonfinite_distances),
        stats=dict(num_steps=num_steps, max_steps=max_steps),
    )


class KMeans(eqx.Module):
    r"""A Riemannian k-means clustering, as [`jaxgeo.stats.k_means`][] returns it.

    **Attributes:**

    - `centres`: the cluster centres (Fréchet means of their clusters), shape `(k, D)`.
    - `labels`: the cluster of every point, shape `(n,)`.
    - `distances`: the geodesic distance of every point to every centre, shape
      `(n, k)`.
    - `inertia`: $\sum_i d(x_i, \text{its centre})^2$.
    - `result`: a [`jaxgeo.RESULTS`][]: the first failed Fréchet mean or geodesic, or
      `max_steps_reached` if the labels still changed after `max_steps` iterations.
    - `stats`: `num_steps`, `max_steps`.
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
    max_steps: int = 32,
    mean_steps: int = 16,
    throw: bool = True,
) -> KMeans:
    r"""Riemannian k-means (Lloyd's iteration) of the points `xs`, shape `(n, D)`:
    assign every point to its nearest centre by geodesic distance, move every centre to
    the Fréchet mean of its cluster (Karcher iteration from the current centre, at most
    `mean_steps` steps, [`jaxgeo.stats.frechet_mean`][]), until the labels stop
    changing (at most `max_steps` iterations). The geodesics of each mean, to all the
    points, give the next assignment, so an iteration is one batch of log maps per
    Karcher step. `init`: the initial centres, shape `(k, D)`; default k-means++
    seeding by geodesic distance from `key` (default `jax.random.key(0)`). A cluster
    that empties keeps its centre. `num_points` and `geodesic_solver` (its `solver`, e.g.
    [`jaxgeo.Shortest`][]) go to [`jaxgeo.log_map`][] and [`jaxgeo.distance`][].

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
    key = jr.key(0) if key is None else key
    return _k_means(
        metric,
        xs,
        init,
        key,
        num_clusters=num_clusters,
        num_points=num_points,
        solver=geodesic_solver,
        max_steps=max_steps,
        mean_steps=mean_steps,
        throw=throw,
    )


def _distances_from(metric, centre, xs, num_points, solver):
    """Geodesic distances from `centre` to every point (NaN where a solve failed)."""

    def one(x):
        return distance(metric, centre, x, solver=solver, num_points=num_points, throw=False)

    return map_solves(one, xs)


def _plus_plus(metric, xs, num_clusters, key, num_points, solver):
    r"""k-means++ seeding: the first centre uniformly, each next one with probability
    $\propto d^2$ to the nearest chosen centre."""
    n = xs.shape[0]
    key, first = jr.split(key)
    index = jr.randint(first, (), 0, n)
    nearest = _distances_from(metric, xs[index], xs, num_points, solver) ** 2
    indices = jnp.zeros(num_clusters, int).at[0].set(index)

    def add(j, carry):
        indices, nearest = carry
        weights = jnp.where(jnp.isfinite(nearest), nearest, 0)
        total = jnp.sum(weights)  # (zero when every point is a chosen one: uniform)
        p = jnp.where(total > 0, weights / jnp.where(total > 0, total, 1), 1 / n)
        index = jr.choice(jr.fold_in(key, j), n, p=p)
        new = _distances_from(metric, xs[index], xs, num_points, solver) ** 2
        return indices.at[j].set(index), jnp.fmin(nearest, new)

    indices, _ = jax.lax.fori_loop(1, num_clusters, add, (indices, nearest))
    return xs[indices]


@raise_outside_jit
def _k_means(
    metric, xs, init, key, *, num_clusters, num_points, solver, max_steps, mean_steps, throw=True
) -> KMeans:
    del throw
    n = xs.shape[0]
    if init is None:
        init = _plus_plus(metric, xs, num_clusters, key, num_points, solver)
    tol = karcher_rtol(xs.dtype)
    clusters = jnp.arange(num_clusters)

    def assign(distances):
        return jnp.argmin(jnp.where(jnp.isnan(distances), jnp.inf, distances), axis=1)

    def means(centres, distances, labels):
        members = (labels[:, None] == clusters[None]).T.astype(xs.dtype)  # (k, n)
        empty = jnp.sum(members, axis=1) == 0
        weights = jnp.where(empty[:, None], 1.0, members)
        weights = weights / jnp.sum(weights, axis=1, keepdims=True)

        def one(centre, w):
            lines = initial_curves(None, xs, centre, num_points)
            mean, geodesics, result, _ = _karcher_mean(
                metric, xs, w, centre, lines, num_points, mean_steps, tol, solver
            )
            return mean, geodesics.length, result

        new, lengths, results = map_solves(lambda pair: one(*pair), (centres, weights))
        # A cluster that empties keeps its centre and its distances.
        new = jnp.where(empty[:, None], centres, new)
        lengths = jnp.where(empty[:, None], distances.T, lengths)
        # (A Karcher mean that ran out of steps is still a better centre.)
        failed = (results != RESULTS.successful) & (results != RESULTS.max_steps_reached)
        return new, lengths.T, first_failure(results, failed & ~empty)

    def body(carry):
        centres, distances, labels, _, _, num_steps = carry
        centres, new_distances, result = means(centres, distances, labels)
        new_labels = assign(new_distances)
        return (
            centres,
            new_distances,
            new_labels,
            jnp.any(new_labels != labels),
            result,
            num_steps + 1,
        )

    distances = map_solves(lambda c: _distances_from(metric, c, xs, num_points, solver), init).T
    labels = assign(distances)
    carry = (init, distances, labels, jnp.array(True), RESULTS.successful, jnp.array(0))
    centres, distances, labels, changed, result, num_steps = jax.lax.while_loop(
        lambda c: c[3] & (c[4] == RESULTS.successful) & (c[5] < max_steps), body, carry
    )
    result = RESULTS.where(
        (result == RESULTS.successful) & changed, RESULTS.max_steps_reached, result
    )
    nearest = distances[jnp.arange(n), labels]
    result = RESULTS.where(
        (result == RESULTS.successful) & ~jnp.all(jnp.isfinite(nearest)),
        RESULTS.nonfinite_distances,
        result,
    )
    return KMeans(
        centres=centres,
        labels=labels,
        distances=distances,
        inertia=jnp.sum(nearest**2),
        result=result,
        stats=dict(num_steps=num_steps, max_steps=max_steps),
    )


def nearest_neighbours(
    metric: AbstractMetric,
    queries: Input,
    xs: Input,
    num_neighbours: int,
    **distance_kwargs,
) -> tuple[Float[Array, "queries neighbours"], Int[Array, "queries neighbours"]]:
    r"""The `num_neighbours` nearest points of `xs` (shape `(n, D)`) to every query
    (shape `(q, D)`) by geodesic distance: `(distances, indices)`, each of shape
    `(q, num_neighbours)`, nearest first. The distances are
    [`jaxgeo.pairwise_distances`][]`(metric, queries, xs, **distance_kwargs)`
    (sharded over the devices); a failed solve (NaN) ranks last."""
    xs = jnp.asarray(xs)
    if not 1 <= num_neighbours <= xs.shape[0]:
        raise ValueError(
            f"nearest_neighbours: num_neighbours must be in [1, {xs.shape[0]}], "
            f"got {num_neighbours}"
        )
    distances = pairwise_distances(metric, queries, xs, **distance_kwargs)
    return _smallest(distances, num_neighbours)


@eqx.filter_jit
def _smallest(distances, k):
    ranked = jnp.where(jnp.isnan(distances), -jnp.inf, -distances)
    _, indices = jax.lax.top_k(ranked, k)
    return jnp.take_along_axis(distances, indices, axis=1), indices
