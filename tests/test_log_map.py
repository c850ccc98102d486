"""Multiple-shooting log map and geodesic distances against closed forms."""

import jax
import jax.numpy as jnp
import jaxtyping
import numpy as np
import pytest

import jaxgeo as jg

from .helpers import poincare_distance, poincare_semicircle_geodesic, stein_gaussian


POINCARE = jg.MatrixMetric(lambda x: jnp.eye(2) / x[1] ** 2)


@pytest.mark.slow
def test_poincare_distance_closed_form():
    pairs = [
        (jnp.array([-1.0, 1.0]), jnp.array([1.0, 1.0])),
        (jnp.array([0.3, 0.5]), jnp.array([-2.0, 3.0])),
        (jnp.array([0.0, 1.0]), jnp.array([0.0, 4.0])),
    ]
    for x0, x1 in pairs:
        sol = jg.log_map(POINCARE, x0, x1, solver=jg.Shooting())
        assert sol.result == jg.RESULTS.successful
        np.testing.assert_allclose(sol.length, poincare_distance(x0, x1), rtol=1e-8)
        assert float(sol.stats["residual"]) < 1e-8


def test_log_inverts_exp():
    x0 = jnp.array([0.3, 1.2])
    v0 = jnp.array([0.7, -0.4])
    x1 = jg.exp_map(POINCARE, x0, v0)
    sol = jg.log_map(POINCARE, x0, x1)
    # Within the default tolerance (1e-6 relative) and within its own error estimate.
    np.testing.assert_allclose(sol.vs[0], v0, rtol=1e-6)
    assert float(jnp.linalg.norm(sol.vs[0] - v0)) <= float(sol.stats["velocity_error_estimate"])


def test_log_inverts_exp_above_eight_dimensions():
    # Six Poincaré half-planes, D = 12: geodesic_bvp's default is L-BFGS there, which
    # converged too slowly to the tolerance a resolved velocity needs (W7's 64-D digits
    # log map ran out of its steps); the log map's levels are Newton's up to D = 64.
    product = jg.MatrixMetric(lambda x: jnp.diag(1 / jnp.repeat(x[1::2], 2) ** 2))
    x0 = jnp.tile(jnp.array([0.3, 1.2]), 6)
    v0 = jnp.array([0.7, -0.4, 0.2, 0.5, -0.3, 0.1, 0.0, 0.6, 0.4, 0.4, -0.5, -0.2])
    x1 = jg.exp_map(product, x0, v0, rtol=1e-12, atol=1e-12)
    sol = jg.log_map(product, x0, x1)
    np.testing.assert_allclose(sol.vs[0], v0, rtol=1e-6, atol=1e-7)
    assert float(jnp.linalg.norm(sol.vs[0] - v0)) <= float(sol.stats["velocity_error_estimate"])
    assert int(sol.stats["num_steps"]) < 100


@pytest.mark.slow
def test_shooting_bvp_is_the_exact_semicircle():
    # (-1, 1) -> (1, 1): the circle of radius sqrt(2) about the origin, 3pi/4 -> pi/4.
    x0, x1 = jnp.array([-1.0, 1.0]), jnp.array([1.0, 1.0])
    sol = jg.geodesic_bvp(POINCARE, x0, x1, num_points=33, solver=jg.Shooting())
    assert sol.result == jg.RESULTS.successful
    expected, length = poincare_semicircle_geodesic(0.0, np.sqrt(2), 3 * np.pi / 4, np.pi / 4, 33)
    np.testing.assert_allclose(sol.xs, expected, atol=1e-9)
    np.testing.assert_allclose(sol.length, length, rtol=1e-10)
    np.testing.assert_allclose(sol.energy, length**2 / 2, rtol=1e-10)
    speeds = jax.vmap(POINCARE.norm)(sol.xs, sol.vs)
    np.testing.assert_allclose(speeds, length, rtol=1e-9)
    assert float(sol.stats["residual"]) < 1e-10

    # Forward-mode gradients of the exact length w.r.t. both endpoints through the
    # implicit function theorem (reverse mode, its transpose: the Stein case of
    # test_gradient_matches_finite_differences[shooting]).
    def length(a, b):
        return jg.geodesic_bvp(POINCARE, a, b, num_points=33, solver=jg.Shooting()).length

    expected = jax.grad(poincare_distance, argnums=(0, 1))(x0, x1)
    np.testing.assert_allclose(jax.jacfwd(length, argnums=(0, 1))(x0, x1), expected, rtol=1e-7)


@pytest.mark.slow
def test_log_map_reverse_and_forward_gradients():
    x0, x1 = jnp.array([0.0, 1.0]), jnp.array([1.0, 2.0])

    def dist(b):
        return jg.log_map(POINCARE, x0, b).length

    expected = jax.grad(poincare_distance, argnums=1)(x0, x1)
    np.testing.assert_allclose(jax.grad(dist)(x1), expected, rtol=1e-7)
    np.testing.assert_allclose(jax.jacfwd(dist)(x1), expected, rtol=1e-7)


@pytest.mark.slow
def test_stein_part2_distance_beats_polyline():
    # The Part II case: single shooting from the polyline's velocity diverges here, the
    # multiple-shooting solve converges; the polyline length converges from below at
    # O(1/N^2) to the same value (Richardson extrapolation of 256/512 segments).
    metric = stein_gaussian(0.8)
    x0, x1 = jnp.array([-4.0, -2.0]), jnp.array([4.0, -2.0])
    sol = jg.log_map(metric, x0, x1, solver=jg.Shooting())
    assert sol.result == jg.RESULTS.successful
    shot = jg.geodesic_bvp(metric, x0, x1, solver=jg.Shooting())
    assert shot.result == jg.RESULTS.successful
    np.testing.assert_allclose(shot.length, sol.length, rtol=1e-9)
    np.testing.assert_allclose(shot.vs[0], sol.vs[0], rtol=1e-8)
    coarse = jg.geodesic_bvp(metric, x0, x1, num_points=257).length
    fine = jg.geodesic_bvp(metric, x0, x1, num_points=513).length
    extrapolated = (4 * fine - coarse) / 3
    np.testing.assert_allclose(sol.length, extrapolated, rtol=1e-6)
    assert float(fine) < float(sol.length)


@pytest.mark.slow
def test_pairwise_distances_symmetric():
    pts = jnp.array([[0.0, 1.0], [1.0, 2.0], [-0.5, 0.5]])
    d = jg.pairwise_distances(POINCARE, pts, pts, chunk_size=4)
    expected = jax.vmap(lambda a: jax.vmap(lambda b: poincare_distance(a, b))(pts))(pts)
    np.testing.assert_allclose(jnp.diagonal(d), 0.0, atol=1e-8)
    off = ~np.eye(3, dtype=bool)
    np.testing.assert_allclose(np.asarray(d)[off], np.asarray(expected)[off], rtol=1e-7)
    # Without ys: the pairs i < j only, mirrored, with an exact zero diagonal.
    within = jg.pairwise_distances(POINCARE, pts, chunk_size=4)
    np.testing.assert_array_equal(within, within.T)
    np.testing.assert_array_equal(jnp.diagonal(within), 0.0)
    np.testing.assert_allclose(np.asarray(within)[off], np.asarray(expected)[off], rtol=1e-7)


def test_pairwise_distances_in_calls_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    """Calls of 4 pairs: an interrupted matrix keeps its solved pairs in the checkpoint,
    a second call solves only the rest; another matrix's or a damaged checkpoint is an
    error naming the file; under jit all pairs are one call."""
    import jaxgeo._geodesic._distance as module

    pts = jnp.array([[0.0, 1.0], [1.0, 2.0], [-0.5, 0.5], [0.3, 1.5], [2.0, 0.8]])
    expected = jax.vmap(lambda a: jax.vmap(lambda b: poincare_distance(a, b))(pts))(pts)
    solver = jg.EnergyNewton()  # the static polyline: fast, its error O(1/N^2)
    path = tmp_path / "d.npz"
    calls, real = [], module._pair_distances

    def counted(metric, pairs, *args):
        calls.append(pairs.shape[0])
        if len(calls) == 2 and interrupt:
            raise KeyboardInterrupt
        return real(metric, pairs, *args)

    monkeypatch.setattr(module, "_pair_distances", counted)
    kwargs = dict(solver=solver, num_points=65, pairs_per_call=4, threads=1, checkpoint=path)
    interrupt = True
    with pytest.raises(KeyboardInterrupt):
        jg.pairwise_distances(POINCARE, pts, **kwargs)
    assert calls == [4, 4] and path.exists()
    interrupt, calls[:] = False, []
    resumed = jg.pairwise_distances(POINCARE, pts, **kwargs)
    assert calls == [4, 4]  # not the 4 pairs of the first call again; 2 and 2 padding
    off = ~np.eye(5, dtype=bool)
    np.testing.assert_allclose(np.asarray(resumed)[off], np.asarray(expected)[off], rtol=1e-3)
    fresh = jg.pairwise_distances(POINCARE, pts, solver=solver, num_points=65, pairs_per_call=3)
    np.testing.assert_allclose(resumed, fresh, rtol=1e-12)
    traced = jax.jit(lambda p: jg.pairwise_distances(POINCARE, p, solver=solver, num_points=65))
    np.testing.assert_allclose(traced(pts), fresh, rtol=1e-9)

    with pytest.raises(ValueError, match="d.npz belongs to another matrix"):
        jg.pairwise_distances(POINCARE, pts + 0.1, **kwargs)
    with np.load(path) as saved:
        damaged = dict(saved)
    damaged["lengths"] = damaged["lengths"] * 1.01
    with open(path, "wb") as file:
        np.savez(file, **damaged)
    with pytest.raises(ValueError, match="d.npz is damaged"):
        jg.pairwise_distances(POINCARE, pts, **kwargs)


def test_pairwise_distances_on_threads_are_the_same_matrix(monkeypatch):
    """Calls on several threads at once (the default on CPU: one per core) give exactly
    the matrix of one thread; every call has the same size (the last padded), so one
    program, compiled by a call of padding only, serves them all; a failure in a call
    is raised, not lost."""
    import jaxgeo._geodesic._distance as module

    pts = jnp.array([[0.0, 1.0], [1.0, 2.0], [-0.5, 0.5], [0.3, 1.5], [2.0, 0.8], [1.0, 0.7]])
    kwargs = dict(solver=jg.EnergyNewton(), num_points=33, pairs_per_call=4, return_results=True)
    alone, alone_results = jg.pairwise_distances(POINCARE, pts, threads=1, **kwargs)
    calls, real = [], module._pair_distances

    def counted(metric, pairs, inits, valid, *args):
        calls.append((pairs.shape[0], int(valid.sum())))
        if fail and len(calls) == 3:
            raise RuntimeError("a call failed")
        return real(metric, pairs, inits, valid, *args)

    monkeypatch.setattr(module, "_pair_distances", counted)
    fail = False
    together, results = jg.pairwise_distances(POINCARE, pts, threads=3, **kwargs)
    np.testing.assert_array_equal(together, alone)
    np.testing.assert_array_equal(jg.result_name(results), jg.result_name(alone_results))
    # A call of padding only compiles first; then the 15 pairs in calls of 4 (the last
    # with 3 pairs and 1 padding), on the threads in any order.
    assert calls[0] == (4, 0)
    assert sorted(calls[1:]) == [(4, 3), (4, 4), (4, 4), (4, 4)]
    fail, calls[:] = True, []
    with pytest.raises(RuntimeError, match="a call failed"):
        jg.pairwise_distances(POINCARE, pts, threads=3, **kwargs)
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        jg.pairwise_distances(POINCARE, pts, threads=0)


def test_pairwise_distances_say_why_a_pair_failed(tmp_path):
    """`return_results=True`: the `RESULTS` of every pair beside its distance (NaN where
    failed), kept in the checkpoint and through a resumed call; a point outside the
    half-plane fails every pair it is in, and only those."""
    pts = jnp.array([[0.0, 1.0], [1.0, 1.0], [0.0, -1.0], [2.0, 2.0]])
    kwargs = dict(solver=jg.EnergyNewton(), num_points=33, return_results=True)
    distances, results = jg.pairwise_distances(POINCARE, pts, **kwargs)
    names = jg.result_name(results)
    failed = np.zeros((4, 4), bool)
    failed[2], failed[:, 2], failed[2, 2] = True, True, False
    np.testing.assert_array_equal(names == "successful", ~failed)
    np.testing.assert_array_equal(np.isnan(np.asarray(distances)), failed)
    path = tmp_path / "d.npz"
    jg.pairwise_distances(POINCARE, pts, pairs_per_call=2, checkpoint=path, **kwargs)
    _, resumed = jg.pairwise_distances(POINCARE, pts, pairs_per_call=2, checkpoint=path, **kwargs)
    np.testing.assert_array_equal(jg.result_name(resumed), names)
    _, rectangular = jg.pairwise_distances(POINCARE, pts[:2], pts[1:3], **kwargs)
    assert jg.result_name(rectangular)[1, 1] != "successful"


@pytest.mark.slow
def test_exp_of_log_and_symmetry_on_stein():
    metric = stein_gaussian(0.8)
    x0, x1 = jnp.array([-1.5, 0.5]), jnp.array([1.0, -0.5])
    forward = jg.log_map(metric, x0, x1, solver=jg.Shooting())
    backward = jg.log_map(metric, x1, x0, solver=jg.Shooting())
    np.testing.assert_allclose(forward.length, backward.length, rtol=1e-8)
    # exp(log(x1)) = x1 (a short geodesic: single shooting is well conditioned here)
    np.testing.assert_allclose(jg.exp_map(metric, x0, forward.vs[0]), x1, atol=1e-7)
    # shooting and energy-descent lengths agree where the geodesic is unique
    bvp = jg.geodesic_bvp(metric, x0, x1, num_points=257)
    np.testing.assert_allclose(bvp.length, forward.length, rtol=1e-5)


@pytest.mark.slow
def test_distance_methods_agree():
    metric = stein_gaussian(0.8)
    x0, x1 = jnp.array([-4.0, -2.0]), jnp.array([4.0, -2.0])
    shooting = jg.distance(metric, x0, x1, solver=jg.Shooting())
    energy = jg.distance(metric, x0, x1)
    np.testing.assert_allclose(energy, shooting, rtol=1e-6)
    np.testing.assert_allclose(
        jg.distance(POINCARE, jnp.array([-1.0, 1.0]), jnp.array([1.0, 1.0])),
        poincare_distance(jnp.array([-1.0, 1.0]), jnp.array([1.0, 1.0])),
        rtol=1e-6,
    )
    # (As users run it: the tests' runtime type checker would raise first.)
    previous = jaxtyping.config.jaxtyping_disable
    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        with pytest.raises(ValueError, match="solver must be a jaxgeo.AbstractBoundarySolver"):
            jg.distance(metric, x0, x1, solver="spline")
    finally:
        jaxtyping.config.update("jaxtyping_disable", previous)


@pytest.mark.slow
def test_log_map_between_components_fails():
    # I / x_2^2 on both half-planes: the line x_2 = 0 is infinitely far away, so no
    # geodesic joins (0, 1) and (0, -1).
    sol = jg.log_map(POINCARE, jnp.array([0.0, 1.0]), jnp.array([0.0, -1.0]), throw=False)
    assert sol.result != jg.RESULTS.successful


@pytest.mark.slow
def test_default_distance_on_part2_matches_shooting():
    metric = stein_gaussian(0.8)
    x0, x1 = jnp.array([-4.0, -2.0]), jnp.array([4.0, -2.0])
    exact = jg.log_map(metric, x0, x1, solver=jg.Shooting())
    default = jg.log_map(metric, x0, x1)
    np.testing.assert_allclose(default.length, exact.length, rtol=1e-7)
    np.testing.assert_allclose(default.vs[0], exact.vs[0], rtol=1e-6)
    # The points: up to 1.6e-5 where the geodesic's Euclidean speed is highest (about 27,
    # for a chord of 8), measured.
    np.testing.assert_allclose(default.xs, exact.xs, atol=3e-5)


# --- bounded work: no input makes a call hang ------------------------------------------

# The metric is NaN on the strip |x_1| < 1/2: no curve joins the two sides.
SPLIT = jg.MatrixMetric(
    lambda x: jnp.eye(2, dtype=x.dtype) * jnp.where(jnp.abs(x[0]) < 0.5, jnp.nan, 1.0)
)
LEFT, RIGHT = jnp.array([-1.0, 0.0]), jnp.array([1.0, 0.0])


@pytest.mark.slow
@pytest.mark.parametrize("solver", [None, jg.Shooting()], ids=["default", "shooting"])
def test_no_geodesic_across_a_nan_region_fails_quickly(solver):
    sol = jg.log_map(SPLIT, LEFT, RIGHT, solver=solver, throw=False)
    assert sol.result != jg.RESULTS.successful
    assert np.isnan(jg.distance(SPLIT, LEFT, RIGHT, solver=solver, throw=False))
    with pytest.raises(Exception):
        jg.distance(SPLIT, LEFT, RIGHT, solver=solver)
    sol = jg.geodesic_bvp(SPLIT, LEFT, RIGHT, solver=solver, throw=False)
    assert sol.result != jg.RESULTS.successful


@pytest.mark.slow
def test_shooting_with_a_tiny_budget_fails_quickly():
    metric = stein_gaussian(0.8)
    x0, x1 = jnp.array([-4.0, -2.0]), jnp.array([4.0, -2.0])
    sol = jg.geodesic_bvp(metric, x0, x1, solver=jg.Shooting(), max_steps=1, throw=False)
    assert sol.result != jg.RESULTS.successful
    assert int(sol.stats["num_steps"]) <= 1
