"""Graph initialisation: k-NN graphs, shortest paths, and geodesics started from them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.csgraph

import jaxgeo as jg


def _grid(low, high, num):
    g = jnp.linspace(low, high, num)
    return jnp.stack(jnp.meshgrid(g, g), -1).reshape(-1, 2)


def _stein(rho):
    return jg.SteinMetric(jg.scores.gaussian(jnp.zeros(2), jnp.array([[1.0, rho], [rho, 1.0]])))


def _blob():
    """A conformal metric with a costly bump at the origin: the straight line through it
    is a critical point of the energy (by symmetry), the geodesics go around."""
    return jg.MatrixMetric(lambda x: (1 + 50 * jnp.exp(-jnp.sum(x**2) / 0.5)) * jnp.eye(2))


def test_shortest_paths_match_scipy_dijkstra():
    nodes = jnp.asarray(np.random.default_rng(0).normal(size=(150, 3)))
    graph = jg.knn_graph(jg.Euclidean(3), nodes, k=5)
    rows = np.repeat(np.arange(150), graph.neighbours.shape[1])
    cols, weights = np.asarray(graph.neighbours).ravel(), np.asarray(graph.lengths).ravel()
    keep = np.isfinite(weights)
    adjacency = scipy.sparse.csr_matrix((weights[keep], (rows[keep], cols[keep])), (150, 150))
    # Symmetric: every edge is listed from both ends with the same length.
    assert abs(adjacency - adjacency.T).max() < 1e-12
    expected = scipy.sparse.csgraph.dijkstra(adjacency, indices=7)
    dist, pred = jax.jit(lambda g: g.shortest_paths(jnp.array([7]), jnp.zeros(1)))(graph)
    np.testing.assert_allclose(dist, expected, rtol=1e-12)
    # Following the predecessors from any node adds up its distance.
    node, total = 42, 0.0
    while int(pred[node]) >= 0:
        total += float(jnp.linalg.norm(nodes[node] - nodes[pred[node]]))
        node = int(pred[node])
    assert node == 7
    np.testing.assert_allclose(total, expected[42], rtol=1e-12)


def test_euclidean_grid_path_is_the_straight_line():
    graph = jg.knn_graph(jg.Euclidean(2), _grid(-2.0, 2.0, 9))
    x0, x1 = jnp.array([-1.5, 0.5]), jnp.array([2.0, 0.5])
    curve = jg.graph_geodesic(graph, x0, x1, num_points=20)
    np.testing.assert_allclose(curve, jg.straight_line(x0, x1, 20), atol=1e-12)


@pytest.mark.slow
def test_graph_init_finds_the_shorter_geodesic():
    m, x0, x1 = _blob(), jnp.array([-2.0, 0.0]), jnp.array([2.0, 0.0])
    graph = jg.knn_graph(m, _grid(-3.0, 3.0, 25))
    init = jg.graph_geodesic(graph, x0, x1)
    np.testing.assert_allclose(init[jnp.array([0, -1])], jnp.stack([x0, x1]), atol=1e-12)
    from_line = jg.geodesic_bvp(m, x0, x1)
    from_graph = jg.geodesic_bvp(m, x0, x1, init=init)
    assert from_graph.result == jg.RESULTS.successful
    assert float(from_line.length) > 13.0  # the saddle through the bump
    assert float(from_graph.length) < 6.0  # around it
    assert int(from_graph.stats["num_steps"]) <= 10
    # Resampled to constant speed: equal Riemannian segment lengths, up to the graph's
    # corners (each resampled point lies on the path).
    seg = jnp.sqrt(jax.vmap(m.midpoint_sq_norm)(init[:-1], init[1:]))
    assert float(jnp.max(seg) / jnp.mean(seg)) < 1.1


@pytest.mark.parametrize("rho", [0.0, 0.8, 0.95])
def test_part2_cases_converge_within_30_newton_steps(rho):
    """The performance issue's bar: relative energy change below 1e-10 within 30 steps
    (the straight line for rho = 0 and 0.8; the graph for rho = 0.95, whose geodesic is
    far from the line)."""
    m, x0, x1 = _stein(rho), jnp.array([-4.0, -2.0]), jnp.array([4.0, -2.0])
    init = None
    if rho == 0.95:
        init = jg.graph_geodesic(jg.knn_graph(m, _grid(-6.0, 6.0, 41)), x0, x1)
    solver = jg.EnergyNewton(rtol=1e-10, atol=1e-10)
    sol = jg.geodesic_bvp(m, x0, x1, init=init, solver=solver, max_steps=30)
    assert sol.result == jg.RESULTS.successful
    tight = jg.geodesic_bvp(m, x0, x1, init=sol.xs, solver=jg.EnergyNewton(rtol=1e-13, atol=1e-13))
    assert abs(float(sol.energy - tight.energy)) <= 1e-10 * float(tight.energy)


@pytest.mark.slow
def test_graph_geodesic_vmap_equals_loop():
    m = _blob()
    graph = jg.knn_graph(m, _grid(-3.0, 3.0, 15), k=6)
    pairs = jnp.asarray(np.random.default_rng(1).uniform(-2.5, 2.5, size=(5, 2, 2)))
    batched = jax.vmap(lambda p: jg.graph_geodesic(graph, p[0], p[1], num_points=16))(pairs)
    for i in range(5):
        one = jg.graph_geodesic(graph, pairs[i, 0], pairs[i, 1], num_points=16)
        np.testing.assert_allclose(batched[i], one, atol=1e-12)


def test_disconnected_graph_gives_the_straight_line():
    rng = np.random.default_rng(2)
    nodes = jnp.asarray(np.concatenate([rng.normal(size=(6, 2)), 100 + rng.normal(size=(6, 2))]))
    graph = jg.knn_graph(jg.Euclidean(2), nodes, k=2)
    x0, x1 = nodes[0] + 0.1, nodes[-1] + 0.1
    np.testing.assert_allclose(
        jg.graph_geodesic(graph, x0, x1, num_points=8), jg.straight_line(x0, x1, 8)
    )


def test_graph_bad_input():
    nodes = _grid(-1.0, 1.0, 3)
    with pytest.raises(ValueError, match=r"nodes must be a float array \(V, D\)"):
        jg.knn_graph(jg.Euclidean(2), nodes[0])
    with pytest.raises(ValueError, match="1 <= k < V = 9"):
        jg.knn_graph(jg.Euclidean(2), nodes, k=9)
    with pytest.raises(ValueError, match="subdivisions"):
        jg.knn_graph(jg.Euclidean(2), nodes, subdivisions=0)
    graph = jg.knn_graph(jg.Euclidean(2), nodes, k=3)
    with pytest.raises(ValueError, match=r"points of shape \(3,\) for a graph over nodes"):
        jg.graph_geodesic(graph, jnp.zeros(3), jnp.ones(3))
    with pytest.raises(ValueError, match="num_points"):
        jg.graph_geodesic(graph, jnp.zeros(2), jnp.ones(2), num_points=1)


CENTRE = jnp.array([0.0, 0.3])
BUMP = jg.MatrixMetric(
    lambda x: jnp.eye(2, dtype=x.dtype) * (1 + 3 * jnp.exp(-(x - CENTRE) @ (x - CENTRE))) ** 2
)
ANGLES = jnp.linspace(0, 2 * jnp.pi, 12, endpoint=False)
AROUND = CENTRE[None] + 1.6 * jnp.stack([jnp.cos(ANGLES), jnp.sin(ANGLES)], 1)
# A conformal bump on the straight line from (-2, 0.3) to (2, 0.3), and 12 points around
# it: Newton from the line stays on it (a geodesic by symmetry, over the bump's top,
# 9.29); the shortest geodesic passes beside the bump (6.36); so for the points
# opposite each other around the bump.
BUMP_POINTS = jnp.concatenate([jnp.array([[-2.0, 0.3], [2.0, 0.3]]), AROUND])


def _beside(x0, x1, num_points):
    return jnp.stack([x0, jnp.array([0.0, -1.5], x0.dtype), x1])


def test_pairwise_distances_repair_longer_local_geodesics():
    """The entries that exceed a path through other points (the pair over the bump's
    top, and the points opposite each other) are solved again from that path: every
    entry is then at most the one from the line, the pair's is the shortest geodesic,
    and the matrix obeys the triangle inequality."""
    plain = jg.pairwise_distances(BUMP, BUMP_POINTS, repair=False)
    np.testing.assert_allclose(plain[0, 1], jg.distance(BUMP, *BUMP_POINTS[:2]), rtol=1e-9)
    repaired, results = jg.pairwise_distances(BUMP, BUMP_POINTS, return_results=True)
    assert bool(jnp.all(results == jg.RESULTS.successful))
    beside = jg.distance(BUMP, *BUMP_POINTS[:2], solver=jg.Shortest(inits=(_beside,)))
    np.testing.assert_allclose(repaired[0, 1], beside, rtol=1e-6)
    assert float(repaired[0, 1]) < 0.7 * float(plain[0, 1])
    assert bool(jnp.all(repaired <= plain * (1 + 1e-9)))
    assert int(jnp.sum(repaired < 0.9 * plain)) >= 2 * 7  # the pair, 6 opposite pairs
    via = repaired[:, :, None] + repaired[None, :, :]  # d_ik + d_kj at [i, k, j]
    assert bool(jnp.all(repaired <= jnp.min(via, axis=1) * (1 + 1e-5)))


def test_pairwise_distances_flag_what_repair_cannot_mend(monkeypatch):
    """Where solving again from the path finds nothing shorter, the pairs that still
    exceed a path are `RESULTS.longer_than_a_path` and NaN, not silently long."""
    from jaxgeo._geodesic import _distance

    def nothing_shorter(metric, pairs, *args):
        size = pairs.shape[0]
        return jnp.full(size, jnp.inf), jnp.zeros(size, jnp.int32)

    monkeypatch.setattr(_distance, "_repaired_distances", nothing_shorter)
    matrix, results = jg.pairwise_distances(BUMP, BUMP_POINTS, return_results=True)
    flagged = results == jg.RESULTS.longer_than_a_path
    assert bool(flagged[0, 1]) and int(jnp.sum(flagged)) >= 2 * 7
    assert bool(jnp.all(jnp.isnan(matrix[flagged])))
    assert bool(jnp.all(jnp.isfinite(matrix[~flagged])))


@pytest.mark.slow
def test_pairwise_distances_start_from_the_points_graph():
    """`init="graph"`: the pair's shortest path through the points' graph starts it
    beside the bump, in the basin of the shortest geodesic, with no repair; a graph of
    one's own is used as given."""
    from_graph = jg.pairwise_distances(BUMP, BUMP_POINTS, init="graph", repair=False)
    repaired = jg.pairwise_distances(BUMP, BUMP_POINTS)
    np.testing.assert_allclose(from_graph[0, 1], repaired[0, 1], rtol=1e-6)
    own = jg.knn_graph(BUMP, AROUND, k=4)
    np.testing.assert_allclose(
        jg.pairwise_distances(BUMP, BUMP_POINTS[:2], init=own)[0, 1], repaired[0, 1], rtol=1e-6
    )


def test_the_repair_margin_follows_the_length_tolerance():
    from jaxgeo._geodesic._repair import violation_margin

    f64 = jnp.float64
    assert violation_margin(None, f64) == pytest.approx(1e-5)
    assert violation_margin(jg.Richardson(rtol=1e-3), f64) == pytest.approx(1e-2)
    assert violation_margin(jg.Shortest(solver=jg.Richardson(rtol=1e-4)), f64) == pytest.approx(
        1e-3
    )
    assert violation_margin(jg.Shortest(), f64) == pytest.approx(1e-5)
    assert violation_margin(jg.EnergyNewton(), f64) == 1e-3
