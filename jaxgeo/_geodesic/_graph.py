r"""Graph initialisation of geodesics: shortest paths in a $k$-nearest-neighbour graph.

Energy descent from a straight line finds *a* local geodesic; where several join the
same two points (strongly anisotropic data, several modes) the shortest path through a
graph over samples or a grid, with Riemannian edge lengths, starts the solver in the
right basin (Latent Space Oddity; stochman's `DiscretizedManifold`). Here the graph is
an Equinox module and the shortest path a parallel Bellman–Ford relaxation in one
`lax.while_loop`: jittable, vmappable over endpoint pairs, and the same on CPU and GPU.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from .._checks import finite_pair
from .._curve import straight_line
from .._custom_types import Curve, Input, Point, Scalar
from .._metric._base import AbstractMetric
from .._numerics import safe_sqrt


Nodes = Float[Array, "nodes dim"]


def _edge_length(metric: AbstractMetric, a: Point, b: Point, subdivisions: int) -> Scalar:
    """Riemannian length of the straight segment from `a` to `b` (midpoint rule)."""
    xs = straight_line(a, b, subdivisions + 1)
    return jnp.sum(safe_sqrt(jax.vmap(metric.midpoint_sq_norm)(xs[:-1], xs[1:])))


def _nearest(nodes: Nodes, x: Point, k: int) -> Int[Array, " k"]:
    return jax.lax.top_k(-jnp.sum((nodes - x[None]) ** 2, axis=1), k)[1]


class GeodesicGraph(eqx.Module):
    r"""A symmetric $k$-nearest-neighbour graph over `nodes` whose edges carry the
    Riemannian length of the straight segment between their ends. Build it with
    [`jaxgeo.knn_graph`][]; query it with [`jaxgeo.graph_geodesic`][].

    **Fields:** `metric`; `nodes` `(V, D)`; `neighbours` `(V, K)` (indices; `K = 2k`,
    padded with the node itself); `lengths` `(V, K)` (`inf` on padding); `k` and
    `subdivisions` (how the endpoints of a query are connected to the graph).
    """

    metric: AbstractMetric
    nodes: Nodes
    neighbours: Int[Array, "nodes K"]
    lengths: Float[Array, "nodes K"]
    k: int = eqx.field(static=True)
    subdivisions: int = eqx.field(static=True)

    def connect(self, x: Point) -> tuple[Int[Array, " k"], Float[Array, " k"]]:
        """The `k` nodes nearest to `x` (Euclidean) and the Riemannian edge lengths to them."""
        idx = _nearest(self.nodes, x, self.k)
        lengths = jax.vmap(lambda n: _edge_length(self.metric, x, n, self.subdivisions))(
            self.nodes[idx]
        )
        return idx, lengths

    def __call__(self, x0: Point, x1: Point, num_points: int) -> Curve:
        """[`jaxgeo.graph_geodesic`][]: an initial curve, e.g. a candidate of
        [`jaxgeo.Shortest`][]."""
        return graph_geodesic(self, x0, x1, num_points=num_points)

    def shortest_paths(
        self, source_nodes: Int[Array, " s"], source_lengths: Float[Array, " s"]
    ) -> tuple[Float[Array, " nodes"], Int[Array, " nodes"]]:
        r"""Distances from a source joined to `source_nodes` by edges of `source_lengths`,
        and each node's predecessor on its shortest path (`-1`: the source). Parallel
        Bellman–Ford: $d_v \leftarrow \min(d_v, \min_u d_u + \ell_{uv})$ over all nodes at
        once, until nothing changes (at most as many sweeps as the longest shortest
        path has edges)."""
        num_nodes = self.nodes.shape[0]
        dist = jnp.full(num_nodes, jnp.inf, self.lengths.dtype)
        dist = dist.at[source_nodes].min(source_lengths)
        pred = jnp.full(num_nodes, -1, self.neighbours.dtype)

        def sweep(carry):
            dist, pred, _ = carry
            candidates = dist[self.neighbours] + self.lengths
            best = jnp.argmin(candidates, axis=1)
            new = jnp.take_along_axis(candidates, best[:, None], axis=1)[:, 0]
            better = new < dist
            return (
                jnp.where(better, new, dist),
                jnp.where(better, self.neighbours[jnp.arange(num_nodes), best], pred),
                jnp.any(better),
            )

        dist, pred, _ = jax.lax.while_loop(lambda c: c[2], sweep, (dist, pred, jnp.array(True)))
        return dist, pred


def knn_graph(
    metric: AbstractMetric, nodes: Input, *, k: int = 8, subdivisions: int = 2
) -> GeodesicGraph:
    r"""The $k$-nearest-neighbour graph over `nodes` (samples, codes of a data set, or a
    grid), symmetrised (an edge wherever either end is among the other's $k$ nearest,
    Euclidean), with edge length the Riemannian length of the straight segment, by the
    midpoint rule on `subdivisions` pieces. Memory $O(V^2)$ for the neighbour search;
    the edge lengths are computed 64 nodes at a time (vmapped within, `lax.map` over).

    **Raises:** `ValueError` unless `nodes` has shape `(V, D)` with `V > k`, `k >= 1`.
    """
    nodes = jnp.asarray(nodes)
    if nodes.ndim != 2 or not jnp.issubdtype(nodes.dtype, jnp.floating):
        raise ValueError(f"knn_graph: nodes must be a float array (V, D), got {nodes.shape}")
    if not isinstance(k, int) or not 1 <= k < nodes.shape[0]:
        raise ValueError(f"knn_graph: need 1 <= k < V = {nodes.shape[0]}, got k = {k!r}")
    if not isinstance(subdivisions, int) or subdivisions < 1:
        raise ValueError(f"knn_graph: subdivisions must be >= 1, got {subdivisions!r}")
    return _knn_graph(metric, nodes, k, subdivisions)


GRAPH_ROWS_PER_BATCH = 64


@eqx.filter_jit
def _knn_graph(metric: AbstractMetric, nodes: Nodes, k: int, subdivisions: int) -> GeodesicGraph:
    num_nodes = nodes.shape[0]
    sq = jnp.sum((nodes[:, None] - nodes[None]) ** 2, axis=-1)
    sq = jnp.where(jnp.eye(num_nodes, dtype=bool), jnp.inf, sq)
    knn = jax.lax.top_k(-sq, k)[1]
    adjacent = (
        jnp.zeros((num_nodes, num_nodes), bool).at[jnp.arange(num_nodes)[:, None], knn].set(True)
    )
    adjacent = adjacent | adjacent.T
    # Up to 2k neighbours per node, nearest first; the rest (and padding) marked absent.
    order = jax.lax.top_k(jnp.where(adjacent, -sq, -jnp.inf), min(2 * k, num_nodes - 1))[1]
    present = jnp.take_along_axis(adjacent, order, axis=1)
    neighbours = jnp.where(present, order, jnp.arange(num_nodes, dtype=order.dtype)[:, None])
    # (GRAPH_ROWS_PER_BATCH nodes' edges at a time: a decoder metric's intermediates are
    # (edges, outputs) arrays, 2,000 nodes of a 1,900-output decoder took 22 GB at once)
    lengths = jax.lax.map(
        lambda row: jax.vmap(lambda b: _edge_length(metric, row[0], b, subdivisions))(row[1]),
        (nodes, nodes[neighbours]),
        batch_size=GRAPH_ROWS_PER_BATCH,
    )
    lengths = jnp.where(present, lengths, jnp.inf)
    return GeodesicGraph(metric, nodes, neighbours, lengths, k, subdivisions)


def resample_by_arc(
    path: Float[Array, "path dim"], arcs: Float[Array, " path"], num_points: int
) -> Float[Array, "points dim"]:
    """`num_points` points along the polyline `path`, equally spaced in the arc length
    `arcs` (non-decreasing, one per vertex: a geodesic has constant speed)."""
    targets = jnp.linspace(0.0, arcs[-1], num_points)
    index = jnp.clip(jnp.searchsorted(arcs, targets, side="right") - 1, 0, path.shape[0] - 2)
    # Zero-length (padding) segments are never selected: searchsorted skips them.
    seg = arcs[index + 1] - arcs[index]
    frac = jnp.clip((targets - arcs[index]) / jnp.where(seg > 0, seg, 1.0), 0, 1)
    return path[index] + frac[:, None] * (path[index + 1] - path[index])


def tree_path(
    graph: GeodesicGraph,
    tree: tuple[Float[Array, " nodes"], Int[Array, " nodes"]],
    x0: Point,
    x1: Point,
    num_points: int,
) -> Curve:
    """The shortest path to `x1` in the shortest-path tree `tree = (distances,
    predecessors)` of `x0` (`graph.shortest_paths`), resampled to `num_points` points
    equally spaced in the graph's arc length; or the straight line where its length as a
    polyline of `num_points` points is shorter (or `x1` is not reached)."""
    dist, pred = tree
    end_nodes, end_lengths = graph.connect(x1)
    totals = dist[end_nodes] + end_lengths
    last = end_nodes[jnp.argmin(totals)]
    # The straight line at the resolution of the curve returned (with the graph's few
    # subdivisions a long segment's length is a poor estimate, often far too short).
    direct = _edge_length(graph.metric, x0, x1, num_points - 1)
    use_graph = jnp.min(totals) < direct

    # Walk back from the last node; the path fills `points` from its end, each vertex
    # with its arc length from x0 (the tree's distance).
    num_nodes = graph.nodes.shape[0]
    points = jnp.broadcast_to(x0, (num_nodes + 2, x0.shape[0])).at[-1].set(x1)
    arcs = jnp.zeros(num_nodes + 2, dist.dtype).at[-1].set(jnp.min(totals))

    def back(carry):
        node, position, points, arcs = carry
        points = points.at[position].set(graph.nodes[node])
        return pred[node], position - 1, points, arcs.at[position].set(dist[node])

    _, _, points, arcs = jax.lax.while_loop(
        lambda c: (c[0] >= 0) & (c[1] > 0), back, (last, num_nodes, points, arcs)
    )
    curve = resample_by_arc(points, jnp.where(jnp.isfinite(arcs), arcs, 0.0), num_points)
    return jnp.where(use_graph, curve, straight_line(x0, x1, num_points))


@eqx.filter_jit
def graph_geodesic(graph: GeodesicGraph, x0: Input, x1: Input, *, num_points: int = 64) -> Curve:
    r"""The shortest path from `x0` to `x1` through `graph` (each endpoint joined to its
    `graph.k` nearest nodes; or the straight line, if its length as a polyline of
    `num_points` points is shorter), resampled to
    `num_points` points equally spaced in Riemannian arc length: an initial curve for
    [`jaxgeo.geodesic_bvp`][] (`init=`) that lies in the basin of the shortest geodesic
    up to the graph's resolution. Acts on one pair; `jax.vmap` it over pairs.

    If `x0` and `x1` are not connected through the graph, returns the straight line.
    """
    x0, x1 = finite_pair(x0, x1, ("x0", "x1"), "graph_geodesic")
    if x0.shape[0] != graph.nodes.shape[1]:
        raise ValueError(
            f"graph_geodesic: points of shape {x0.shape} for a graph over nodes of shape "
            f"{graph.nodes.shape}"
        )
    if not isinstance(num_points, int) or num_points < 2:
        raise ValueError(f"graph_geodesic: num_points must be an integer >= 2, got {num_points!r}")
    x0, x1 = x0.astype(graph.nodes.dtype), x1.astype(graph.nodes.dtype)
    return tree_path(graph, graph.shortest_paths(*graph.connect(x0)), x0, x1, num_points)
