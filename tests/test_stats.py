"""Statistics on any metric (`jg.stats`) against closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgeo as jg

from .helpers import poincare, poincare_distance


def _point_reflection_at_i(z):
    r"""The geodesic symmetry of the Poincaré half-plane at $i = (0, 1)$:
    $z \mapsto -1/z$, an isometry fixing $i$ that reverses every geodesic through it."""
    return jnp.array([-z[0], z[1]]) / jnp.sum(z**2)  # -1/z = -conj(z) / |z|^2


# Two pairs of points swapped by the symmetry at (0, 1): their Fréchet mean is (0, 1).
POINCARE_CENTRE = jnp.array([0.0, 1.0])
POINCARE_POINTS = jnp.stack(
    [
        p
        for z in (jnp.array([0.5, 2.0]), jnp.array([-1.2, 0.7]))
        for p in (z, _point_reflection_at_i(z))
    ]
)


def _sphere(z):
    theta, phi = z
    return jnp.array([jnp.sin(theta) * jnp.cos(phi), jnp.sin(theta) * jnp.sin(phi), jnp.cos(theta)])


SPHERE = jg.PullbackMetric(_sphere)


def test_euclidean_mean_is_the_weighted_arithmetic_mean():
    xs = jnp.array([[0.0, 1.0], [2.0, -1.0], [4.0, 3.0]])
    weights = jnp.array([1.0, 2.0, 1.0])
    mean = jg.stats.frechet_mean(jg.Euclidean(2), xs, weights, init=jnp.array([5.0, 5.0]))
    assert mean.result == jg.RESULTS.successful
    np.testing.assert_allclose(mean.mean, weights @ xs / 4, rtol=1e-10)
    np.testing.assert_allclose(
        mean.variance,
        weights @ jnp.sum((xs - (weights @ xs / 4)[None]) ** 2, axis=1) / 4,
        rtol=1e-10,
    )
    # The Karcher step is exact on a flat space: one step from any start.
    assert int(mean.stats["num_steps"]) == 1


@pytest.mark.parametrize("method", ["karcher", "energy"])
def test_poincare_mean_of_symmetric_points_is_the_centre(method):
    mean = jg.stats.frechet_mean(poincare, POINCARE_POINTS, method=method)
    assert mean.result == jg.RESULTS.successful
    # (The energy mean's polylines are O(1/N^2) off: the midpoint rule is not symmetric
    # under the isometry, which is not linear in the coordinates.)
    np.testing.assert_allclose(
        mean.mean, POINCARE_CENTRE, atol=1e-6 if method == "karcher" else 1e-4
    )
    distances = jax.vmap(poincare_distance, in_axes=(None, 0))(POINCARE_CENTRE, POINCARE_POINTS)
    rtol = 1e-6 if method == "karcher" else 1e-3  # (polylines: O(1/N^2) short)
    np.testing.assert_allclose(mean.geodesics.length, distances, rtol=rtol)
    np.testing.assert_allclose(mean.variance, jnp.mean(distances**2), rtol=2 * rtol)
    # The geodesics start at the mean and end at the points.
    np.testing.assert_allclose(mean.geodesics.xs[:, -1], POINCARE_POINTS, atol=1e-12)


@pytest.mark.slow
def test_karcher_and_energy_means_agree_and_weights_move_the_mean():
    """On points with no symmetry the two algorithms meet as the polylines are refined
    (the energy mean is O(1/N^2) off), and all the weight on one point puts the mean
    there."""
    xs = jnp.array([[0.3, 1.5], [-1.0, 0.6], [1.4, 0.4], [0.2, 3.0]])
    karcher = jg.stats.frechet_mean(poincare, xs)
    errors = []
    for n in (33, 65):
        energy = jg.stats.frechet_mean(poincare, xs, method="energy", num_points=n)
        assert energy.result == jg.RESULTS.successful
        errors.append(float(jnp.max(jnp.abs(energy.mean - karcher.mean))))
    assert errors[1] < 1e-3
    assert 3 < errors[0] / errors[1] < 5  # second order
    # The Riemannian gradient vanishes at the mean.
    assert float(karcher.stats["grad_norm"]) < 1e-7 * float(jnp.sqrt(karcher.variance))
    weights = jnp.array([0.0, 0.0, 1.0, 0.0])
    corner = jg.stats.frechet_mean(poincare, xs, weights)
    np.testing.assert_allclose(corner.mean, xs[2], atol=1e-6)


@pytest.mark.slow
def test_sphere_mean_of_symmetric_points_is_the_centre():
    """On the sphere (pullback of its embedding, spherical coordinates): points
    exp_c(±v_k) about a centre c on the equator have c as their mean."""
    centre = jnp.array([jnp.pi / 2, 0.3])
    velocities = jnp.array([[0.4, 0.1], [-0.2, 0.5]])
    xs = jax.vmap(lambda v: jg.exp_map(SPHERE, centre, v))(
        jnp.concatenate([velocities, -velocities])
    )
    mean = jg.stats.frechet_mean(SPHERE, xs)
    assert mean.result == jg.RESULTS.successful
    np.testing.assert_allclose(mean.mean, centre, atol=1e-6)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="weights must be finite, non-negative"):
        jg.stats.frechet_mean(poincare, POINCARE_POINTS, jnp.array([1.0, -1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"weights must have shape \(4,\)"):
        jg.stats.frechet_mean(poincare, POINCARE_POINTS, jnp.ones(3))
    with pytest.raises(ValueError, match=r"expected points xs of shape \(n, D\)"):
        jg.stats.frechet_mean(poincare, POINCARE_POINTS[0])
    with pytest.raises(ValueError, match="method must be one of"):
        jg.stats.frechet_mean(poincare, POINCARE_POINTS, method="median")


@pytest.mark.slow
def test_a_budget_too_small_fails():
    mean = jg.stats.frechet_mean(
        poincare, POINCARE_POINTS, init=jnp.array([2.0, 3.0]), max_steps=1, throw=False
    )
    assert mean.result == jg.RESULTS.max_steps_reached
    with pytest.raises(Exception, match="maximum number of solver steps"):
        jg.stats.frechet_mean(poincare, POINCARE_POINTS, init=jnp.array([2.0, 3.0]), max_steps=1)


def _orthonormal(x, w):
    """Components of w in the orthonormal frame (e_theta, e_phi / sin theta)."""
    return jnp.array([w[0], jnp.sin(x[0]) * w[1]])


def _latitude_circle(colatitude, t):
    return jnp.stack([colatitude, 2 * jnp.pi * t])


@pytest.mark.parametrize("colatitude", [0.6, 1.1])
def test_holonomy_of_a_latitude_circle(colatitude):
    """Transport once around the circle of colatitude theta rotates a vector by
    2 pi cos(theta) (the enclosed solid angle is 2 pi (1 - cos theta)), preserving
    its norm."""

    # (A Partial holding the colatitude as an array: one compiled program for both.)
    circle = jax.tree_util.Partial(_latitude_circle, jnp.asarray(colatitude))
    w0 = jnp.array([1.0, 0.0])
    transport = jg.stats.transport_along(SPHERE, circle, w0)
    assert transport.result == jg.RESULTS.successful
    end = _orthonormal(transport.xs[-1], transport.ws[-1])
    angle = 2 * jnp.pi * jnp.cos(colatitude)
    # (Clockwise in the frame (e_theta, e_phi / sin theta): e_theta points south.)
    np.testing.assert_allclose(end, jnp.array([jnp.cos(angle), -jnp.sin(angle)]), atol=1e-8)
    assert float(transport.stats["norm_drift"]) < 1e-9


def test_transport_along_geodesics_preserves_inner_products_and_returns():
    """Along the equator (a great circle) the components stay constant; along any
    geodesic the transported vector keeps its norm and its angle with the velocity,
    and transport there and back is the identity."""
    equator = jg.stats.parallel_transport(
        SPHERE, jnp.array([jnp.pi / 2, 0.3]), jnp.array([0.0, 1.0]), jnp.array([1.0, 0.5])
    )
    assert equator.result == jg.RESULTS.successful
    np.testing.assert_allclose(
        equator.ws, jnp.broadcast_to(jnp.array([1.0, 0.5]), (65, 2)), atol=1e-9
    )

    x0, v0, w0 = jnp.array([0.8, 0.2]), jnp.array([0.9, 1.3]), jnp.array([-0.4, 0.7])
    there = jg.stats.parallel_transport(SPHERE, x0, v0, w0)
    geodesic = jg.geodesic_ivp(SPHERE, x0, v0)
    inner = jax.vmap(SPHERE.inner)(there.xs, there.ws, geodesic.vs)
    np.testing.assert_allclose(inner, SPHERE.inner(x0, w0, v0), rtol=1e-8)
    assert float(there.stats["norm_drift"]) < 1e-8
    back = jg.stats.parallel_transport(SPHERE, there.xs[-1], -geodesic.vs[-1], there.ws[-1])
    np.testing.assert_allclose(back.xs[-1], x0, atol=1e-8)
    np.testing.assert_allclose(back.ws[-1], w0, atol=1e-8)
