r"""Distance matrices that obey the triangle inequality: pairs whose solve stopped at a
longer local geodesic than a path through other points, solved again from that path.

A solve finds the geodesic in the basin of its initial curve (the straight line); on a
learned metric another geodesic is often shorter (a learned ring metric, 60 points: 74 of
1,770 distances exceeded a path through other points, by up to 38 %). Every entry of a
matrix is the length of a curve, so $d_{ij} > d_{ik} + d_{kj}$ proves that $d_{ij}$ is
not the distance, and the concatenated geodesics $i \to k \to j$ are a curve in the
basin of a shorter one.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .._custom_types import Curve
from .._numerics import LENGTH_TOL
from ._base import AbstractBoundarySolver
from ._graph import resample_by_arc
from ._richardson import Richardson
from ._shortest import Shortest


# The most legs of a path a repair concatenates (paths through the exact distances of a
# matrix have few: 2 or 3 on a learned ring metric, more once repaired legs are expanded); a pair
# whose path has more stays flagged.
MAX_LEGS = 16
# The points of each leg's geodesic in the concatenated initial curve.
LEG_POINTS = 33
# Repair rounds: the second sees the distances the first shortened.
REPAIR_ROUNDS = 2


@jax.jit
def shortest_paths(
    distances: Float[Array, "n n"],
) -> tuple[Float[Array, "n n"], Int[Array, "n n"]]:
    """Floyd–Warshall over the complete graph whose edge lengths are `distances` (NaN:
    no edge): the shortest path lengths and each path's predecessor matrix
    (`pred[i, j]`: the node before `j` on the path from `i`)."""
    n = distances.shape[0]
    short = jnp.where(jnp.isnan(distances), jnp.inf, distances)
    pred = jnp.broadcast_to(jnp.arange(n)[:, None], (n, n))

    def through(k, carry):
        short, pred = carry
        via = short[:, k, None] + short[None, k, :]
        better = via < short
        return jnp.where(better, via, short), jnp.where(better, pred[k][None, :], pred)

    return jax.lax.fori_loop(0, n, through, (short, pred))


def violation_margin(solver: AbstractBoundarySolver | None, dtype) -> float:
    """How far (relative) a distance may exceed a path before it counts as a longer
    local geodesic: 10 times the length tolerance of `Richardson` (the default; also
    inside `Shortest`), else 1e-3 (a polyline's length is $O(1/N^2)$ off)."""
    if isinstance(solver, Shortest):
        solver = solver.solver
    if solver is None or isinstance(solver, Richardson):
        rtol = None if solver is None else solver.rtol
        return 10 * (LENGTH_TOL(dtype) if rtol is None else rtol)
    return 1e-3


def violations(
    distances: np.ndarray, short: np.ndarray, margin: float
) -> tuple[np.ndarray, np.ndarray]:
    """The pairs `i < j` whose distance exceeds the shortest path by more than `margin`
    (relative), or failed (NaN) where a path exists."""
    i, j = np.triu_indices(distances.shape[0], k=1)
    d, s = distances[i, j], short[i, j]
    longer = s < d * (1 - margin)
    failed = np.isnan(d) & np.isfinite(s)
    keep = longer | failed
    return i[keep], j[keep]


def path_nodes(pred: np.ndarray, i: int | np.integer, j: int | np.integer) -> list[int] | None:
    """The nodes of the shortest path from `i` to `j` (`None` if it has more than
    `MAX_LEGS` legs)."""
    i, j = int(i), int(j)
    nodes = [j]
    while nodes[-1] != i:
        if len(nodes) > MAX_LEGS:
            return None
        nodes.append(int(pred[i, nodes[-1]]))
    return nodes[::-1]


def expanded_path(nodes: list[int] | None, routes: dict) -> list[int] | None:
    """The path with every leg that an earlier round repaired replaced by its own route
    (`routes[i, j]`, `i < j`), so that every leg is a pair solved from its straight line,
    whose geodesic the matrix's solver reproduces."""
    if nodes is None:
        return None
    out = [nodes[0]]
    for a, b in zip(nodes[:-1], nodes[1:]):
        route = routes.get((min(a, b), max(a, b)))
        if route is None:
            out.append(b)
        else:
            out.extend((route if route[0] == a else route[::-1])[1:])
    return out


def concatenated_geodesics(
    curves: Float[Array, "legs leg_points dim"],
    lengths: Float[Array, " legs"],
    num_legs: Int[Array, ""],
    num_points: int,
) -> Curve:
    """The geodesics of the first `num_legs` legs (each `LEG_POINTS` points, from its
    start to its end, and its length) joined end to end, resampled to `num_points`
    points equally spaced in arc length."""
    active = jnp.arange(curves.shape[0], dtype=num_legs.dtype) < num_legs
    lengths = jnp.where(active, lengths, 0.0)
    curves = jnp.where(active[:, None, None], curves, curves[num_legs - 1, -1])
    # A geodesic has constant speed: its points' arc lengths are uniform in time.
    starts = jnp.concatenate([jnp.zeros(1, lengths.dtype), jnp.cumsum(lengths)[:-1]])
    times = jnp.linspace(0.0, 1.0, LEG_POINTS, dtype=lengths.dtype)
    arcs = starts[:, None] + times[None] * lengths[:, None]
    dim = curves.shape[-1]
    return resample_by_arc(curves.reshape(-1, dim), arcs.reshape(-1), num_points)


def leg_curves(
    paths: list[list[int]], legs: dict, dim: int, dtype
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The paths' leg geodesics as `(P, MAX_LEGS, LEG_POINTS, dim)` curves and
    `(P, MAX_LEGS)` lengths (the unused legs zero), and the numbers of legs; `legs` maps
    `(a, b)`, `a < b`, to that pair's curve from `a` to `b` and its length."""
    curves = np.zeros((len(paths), MAX_LEGS, LEG_POINTS, dim), dtype)
    lengths = np.zeros((len(paths), MAX_LEGS), dtype)
    for k, path in enumerate(paths):
        for leg, (a, b) in enumerate(zip(path[:-1], path[1:])):
            curve, lengths[k, leg] = legs[min(a, b), max(a, b)]
            curves[k, leg] = curve if a < b else curve[::-1]
    return curves, lengths, np.array([len(p) - 1 for p in paths], np.int32)
