"""`jaxgeo.Shortest`: the shortest of several geodesics, from several initial curves.

A conformal bump $(1 + 3 e^{-|x - c|^2})^2 I$, $c = (0, 0.3)$, between $(-2, 0)$ and
$(2, 0)$: two locally shortest geodesics, one below the bump (length 5.7909, found from
the straight line) and a longer one above it (6.9672, from a curve over the bump)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgeo as jg


CENTRE = jnp.array([0.0, 0.3])
BUMP = jg.MatrixMetric(
    lambda x: jnp.eye(2, dtype=x.dtype) * (1 + 3 * jnp.exp(-(x - CENTRE) @ (x - CENTRE))) ** 2
)
A, B = jnp.array([-2.0, 0.0]), jnp.array([2.0, 0.0])


def over(x0, x1, num_points):
    """A polyline over the bump: x0, (0, 2.5), x1 (3 points; resampled by `Shortest`)."""
    return jnp.stack([x0, jnp.array([0.0, 2.5], x0.dtype), x1])


def test_the_shortest_candidate_is_kept_and_reported():
    below = jg.log_map(BUMP, A, B)
    above = jg.log_map(BUMP, A, B, solver=jg.Shortest(inits=(over,)))
    assert float(below.xs[64, 1]) < -1 and float(above.xs[64, 1]) > 1
    assert float(above.length) > 1.1 * float(below.length)
    sol = jg.log_map(BUMP, A, B, solver=jg.Shortest(inits=(over, None)))
    assert sol.result == jg.RESULTS.successful
    assert int(sol.stats["candidate"]) == 1
    np.testing.assert_allclose(sol.stats["candidate_lengths"], [above.length, below.length])
    np.testing.assert_allclose(sol.length, below.length, rtol=1e-12)
    np.testing.assert_allclose(sol.vs[0], below.vs[0], rtol=1e-9)


@pytest.mark.slow
def test_the_shortest_candidates_derivatives_and_a_graph_path():
    below = jg.distance(BUMP, A, B)
    # The derivatives are the chosen candidate's.
    length_only = jg.Richardson(resolve_velocity=False)
    shortest = jg.Shortest(inits=(over, None), solver=length_only)
    grad = jax.grad(lambda b: jg.distance(BUMP, A, b, solver=shortest))(B)
    np.testing.assert_allclose(grad, jax.grad(lambda b: jg.distance(BUMP, A, b))(B), rtol=1e-9)
    # A graph's shortest path is a candidate too.
    grid = jnp.stack(jnp.meshgrid(jnp.linspace(-3, 3, 9), jnp.linspace(-3, 3, 9)), -1).reshape(
        -1, 2
    )
    graph = jg.knn_graph(BUMP, grid, k=8)
    d = jg.distance(BUMP, A, B, solver=jg.Shortest(inits=(over, graph)))
    np.testing.assert_allclose(d, below, rtol=1e-6)


@pytest.mark.slow
def test_shortest_in_batches_and_statistics():
    solver = jg.Shortest(inits=(over, None), solver=jg.Richardson(resolve_velocity=False))
    xs = jnp.stack([A, B, jnp.array([0.0, -2.5])])
    matrix = jg.pairwise_distances(BUMP, xs, solver=solver)
    np.testing.assert_allclose(matrix[0, 1], jg.distance(BUMP, A, B, solver=solver), rtol=1e-9)
    np.testing.assert_allclose(matrix[0, 1], jg.distance(BUMP, A, B), rtol=1e-6)
    # Under vmap, each pair keeps its own shortest candidate.
    lengths = jax.vmap(lambda b: jg.distance(BUMP, A, b, solver=solver, throw=False))(xs[1:])
    np.testing.assert_allclose(lengths, matrix[0, 1:], rtol=1e-9)

    # The log maps of a Frechet mean: a detour candidate never wins.
    def detour(x0, x1, num_points):
        return jnp.stack([x0, jnp.array([5.0, 5.0], x0.dtype), x1])

    points = jnp.array([[0.5, 1.5], [1.0, 2.0], [1.5, 1.2]])
    karcher = jg.stats.KarcherMean()
    plain = jg.stats.frechet_mean(BUMP, points, solver=karcher)
    detours = jg.Shortest(inits=(detour, None))
    shortest = jg.stats.frechet_mean(
        BUMP, points, solver=jg.stats.KarcherMean(geodesic_solver=detours)
    )
    assert shortest.result == jg.RESULTS.successful
    np.testing.assert_allclose(shortest.mean, plain.mean, rtol=1e-7)


def test_bad_candidates_are_clear_errors():
    with pytest.raises(ValueError, match="non-empty tuple"):
        jg.Shortest(inits=())
    # (TypeError where the tests' run-time type checking sees the annotation first.)
    with pytest.raises((ValueError, TypeError), match="None or a callable|inits"):
        jg.Shortest(inits=(jnp.zeros((3, 2)),))
    with pytest.raises((ValueError, TypeError), match="AbstractBoundarySolver|solver"):
        jg.Shortest(solver="newton")
    with pytest.raises(ValueError, match=r"curve of shape \(2,\)"):
        jg.distance(BUMP, A, B, solver=jg.Shortest(inits=(lambda a, b, n: a + b + 1,)))
