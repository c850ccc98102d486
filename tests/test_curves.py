import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgeo as jg

from .helpers import (
    poincare,
    poincare_distance,
    poincare_semicircle_geodesic,
    poincare_vertical_geodesic,
    stein_gaussian,
    straight_line,
)


# Under one `jit` per call (op-by-op eager mode compiles every primitive separately).
_energy = eqx.filter_jit(jg.curve_energy)
_length = eqx.filter_jit(jg.curve_length)


@pytest.mark.parametrize("num_segments", [1, 2, 7, 50])
def test_euclidean_straight_line(num_segments):
    x0, x1 = jnp.array([1.0, -2.0, 0.5]), jnp.array([-3.0, 0.5, 2.0])
    xs = straight_line(x0, x1, num_segments + 1)
    metric = jg.Euclidean(3)
    dist = float(jnp.linalg.norm(x1 - x0))
    np.testing.assert_allclose(_energy(metric, xs), dist**2 / 2, rtol=1e-13)
    np.testing.assert_allclose(_length(metric, xs), dist, rtol=1e-13)


def test_cauchy_schwarz_random_curves(getkey):
    for metric in (jg.Euclidean(2), stein_gaussian(), poincare):
        # Random curves in the upper half-plane (the Poincaré metric needs y > 0).
        curves = jax.random.uniform(getkey(), (8, 9, 2), minval=0.2, maxval=3.0)
        energy, length = eqx.filter_jit(
            jax.vmap(lambda xs: (jg.curve_energy(metric, xs), jg.curve_length(metric, xs)))
        )(curves)
        assert jnp.all(energy > 0)
        assert jnp.all(length**2 <= 2 * energy * (1 + 1e-12))
        # Random curves are far from constant speed.
        assert jnp.all(length**2 < 0.99 * 2 * energy)
    # Three points (two segments).
    xs = jax.random.uniform(getkey(), (3, 2), minval=0.2, maxval=3.0)
    assert _length(poincare, xs) ** 2 <= 2 * _energy(poincare, xs)


def test_cauchy_schwarz_equality_for_uniform_straight_line():
    xs = straight_line(jnp.array([0.3, 1.0]), jnp.array([2.0, -1.5]), 33)
    metric = jg.Euclidean(2)
    np.testing.assert_allclose(_length(metric, xs) ** 2, 2 * _energy(metric, xs), rtol=1e-13)


def test_non_uniform_parametrisation():
    # The same straight segment, traversed with speed ~ t^2: same length, larger energy.
    x0, x1 = jnp.array([0.3, 1.0]), jnp.array([2.0, -1.5])
    ts = jnp.linspace(0, 1, 33) ** 3
    xs = x0[None] + ts[:, None] * (x1 - x0)[None]
    metric = jg.Euclidean(2)
    length, energy = _length(metric, xs), _energy(metric, xs)
    np.testing.assert_allclose(length, jnp.linalg.norm(x1 - x0), rtol=1e-13)
    assert length**2 < 0.7 * 2 * energy


def test_poincare_vertical_geodesic():
    xs, expected = poincare_vertical_geodesic(0.5, 3.0, 2001)
    length, energy = _length(poincare, xs), _energy(poincare, xs)
    assert abs(float(length) - expected) < 1e-6
    np.testing.assert_allclose(length, poincare_distance(xs[0], xs[-1]), atol=1e-6)
    # Constant speed: equality in Cauchy-Schwarz.
    np.testing.assert_allclose(length**2, 2 * energy, rtol=1e-12)


def test_poincare_semicircle_closed_form():
    # The helper's closed form agrees with the arccosh distance formula.
    xs, expected = poincare_semicircle_geodesic(0.3, 2.0, np.pi / 8, 7 * np.pi / 8, 3)
    np.testing.assert_allclose(poincare_distance(xs[0], xs[-1]), expected, rtol=1e-12)


def test_midpoint_rule_is_second_order():
    errors = []
    for num_segments in (16, 32, 64):
        xs, expected = poincare_semicircle_geodesic(
            0.3, 2.0, np.pi / 8, 7 * np.pi / 8, num_segments + 1
        )
        errors.append(abs(float(_length(poincare, xs)) - expected))
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert np.all((ratios > 3.5) & (ratios < 4.5)), (errors, ratios)
    slope = np.polyfit(np.log([16, 32, 64]), np.log(errors), 1)[0]
    assert -2.1 < slope < -1.9, slope


@pytest.mark.parametrize("num_points", [3, 4, 11])
def test_curve_velocities_exact_for_quadratics(num_points):
    a, b, c = jnp.array([1.0, -2.0]), jnp.array([0.5, 3.0]), jnp.array([-4.0, 1.5])
    ts = jnp.linspace(0, 1, num_points)[:, None]
    xs = a[None] + b[None] * ts + c[None] * ts**2
    expected = b[None] + 2 * c[None] * ts
    np.testing.assert_allclose(jg.curve_velocities(xs), expected, rtol=1e-12, atol=1e-12)


def test_curve_velocities_two_points():
    xs = jnp.array([[1.0, 2.0], [3.0, -1.0]])
    np.testing.assert_allclose(jg.curve_velocities(xs), jnp.array([[2.0, -3.0], [2.0, -3.0]]))


def test_energy_gradient_vanishes_on_geodesic():
    # The interior points of a sampled geodesic are (nearly) stationary for the
    # discrete energy; those of a perturbed curve are not.
    xs, _ = poincare_semicircle_geodesic(0.0, 1.0, np.pi / 4, 3 * np.pi / 4, 65)
    grad = eqx.filter_jit(jax.grad(jg.curve_energy, argnums=1))
    g_geodesic = jnp.max(jnp.abs(grad(poincare, xs)[1:-1]))
    perturbed = xs.at[32, 1].add(0.05)
    g_perturbed = jnp.max(jnp.abs(grad(poincare, perturbed)[1:-1]))
    assert g_geodesic < 1e-4
    assert g_perturbed > 100 * g_geodesic
