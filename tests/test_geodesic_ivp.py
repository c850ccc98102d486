"""The initial-value side: geodesic ODE integration and the exponential map."""

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgeo as jg


POINCARE = jg.MatrixMetric(lambda x: jnp.eye(2, dtype=x.dtype) / x[1] ** 2)


def test_poincare_vertical_geodesic():
    # x(t) = (0, exp(t)) is the unit-speed geodesic through (0, 1) with v0 = (0, 1).
    sol = jg.geodesic_ivp(POINCARE, jnp.array([0.0, 1.0]), jnp.array([0.0, 1.0]), t1=1.5)
    assert sol.result == jg.RESULTS.successful
    np.testing.assert_allclose(sol.xs[:, 1], jnp.exp(sol.ts), rtol=1e-8)
    np.testing.assert_allclose(sol.xs[:, 0], 0.0, atol=1e-10)
    np.testing.assert_allclose(sol.length, 1.5)
    assert float(sol.stats["speed_drift"]) < 1e-8


def test_poincare_semicircle_geodesic():
    # Geodesic from (-1, 1)... along the unit-radius circle centred at (0, 0):
    # x(t) = (tanh t, sech t) with unit speed, starting at (0, 1) with v0 = (1, 0).
    sol = jg.geodesic_ivp(POINCARE, jnp.array([0.0, 1.0]), jnp.array([1.0, 0.0]), t1=2.0)
    np.testing.assert_allclose(sol.xs[:, 0], jnp.tanh(sol.ts), atol=1e-8)
    np.testing.assert_allclose(sol.xs[:, 1], 1 / jnp.cosh(sol.ts), atol=1e-8)


def test_exp_map_matches_bvp_endpoint_and_vmap():
    x0 = jnp.array([0.0, 1.0])
    v0s = jnp.array([[1.0, 0.0], [0.3, -0.2], [-0.5, 0.8]])
    ends = jax.vmap(lambda v: jg.exp_map(POINCARE, x0, v))(v0s)
    loop = jnp.stack([jg.exp_map(POINCARE, x0, v) for v in v0s])
    np.testing.assert_allclose(ends, loop, rtol=1e-12)
    # Geodesic distance equals the speed (t1 = 1): arccosh form of the half-plane.
    dist = jnp.arccosh(1 + jnp.sum((ends - x0[None]) ** 2, -1) / (2 * x0[1] * ends[:, 1]))
    np.testing.assert_allclose(dist, jnp.linalg.norm(v0s, axis=-1) / x0[1], rtol=1e-8)


def test_ivp_reports_failure():
    x0, v0 = jnp.array([0.0, 1.0]), jnp.array([0.0, 1.0])
    sol = jg.geodesic_ivp(POINCARE, x0, v0, t1=5.0, max_steps=3, throw=False)
    assert sol.result == jg.RESULTS.max_steps_reached
    # exp_map's point is NaN where the integration failed (it was 27 units off before).
    assert jnp.all(jnp.isnan(jg.exp_map(POINCARE, x0, 5 * v0, max_steps=3, throw=False)))
    assert jnp.all(jnp.isfinite(jg.exp_map(POINCARE, x0, 5 * v0, throw=False)))


def test_ivp_float32_and_custom_solver():
    x0, v0 = jnp.array([0.0, 1.0], jnp.float32), jnp.array([0.3, 0.4], jnp.float32)
    sol = jg.geodesic_ivp(POINCARE, x0, v0)
    assert sol.xs.dtype == jnp.float32
    ref = jg.geodesic_ivp(POINCARE, x0.astype(float), v0.astype(float), solver=dfx.Dopri8())
    np.testing.assert_allclose(sol.xs[-1], ref.xs[-1], rtol=1e-5)


def test_fixed_step_solvers_take_steps_of_dt0():
    """A solver without an error estimate integrates with constant steps of `dt0`,
    first order for Euler (the error halves with the step), and needs `dt0`."""
    x0, v0 = jnp.array([0.0, 1.0]), jnp.array([0.0, 1.0])
    errors = []
    for dt0 in (1e-2, 5e-3):
        sol = jg.geodesic_ivp(POINCARE, x0, v0, solver=dfx.Euler(), dt0=dt0)
        assert sol.result == jg.RESULTS.successful
        assert int(sol.stats["num_steps"]) == round(1 / dt0)
        errors.append(float(jnp.abs(sol.xs[-1, 1] - jnp.e)))
    np.testing.assert_allclose(errors[0] / errors[1], 2.0, rtol=0.05)
    with pytest.raises(ValueError, match="Euler has no error estimate.*dt0"):
        jg.geodesic_ivp(POINCARE, x0, v0, solver=dfx.Euler())


def test_speed_conserved_on_stein_metric():
    metric = jg.SteinMetric(jg.scores.gaussian(jnp.zeros(2), jnp.array([[1.0, 0.8], [0.8, 1.0]])))
    sol = jg.geodesic_ivp(metric, jnp.array([-4.0, -2.0]), jnp.array([1.0, 0.5]))
    assert sol.result == jg.RESULTS.successful
    speeds = jax.vmap(metric.norm)(sol.xs, sol.vs)
    np.testing.assert_allclose(speeds, speeds[0], rtol=1e-8)


@pytest.mark.slow
def test_exp_map_gradient_matches_finite_differences():
    x0 = jnp.array([0.3, 1.2])
    v0 = jnp.array([0.7, -0.4])
    jac = jax.jacfwd(lambda v: jg.exp_map(POINCARE, x0, v, adjoint=dfx.ForwardMode()))(v0)
    eps = 1e-6
    fd = jnp.stack(
        [
            (jg.exp_map(POINCARE, x0, v0 + eps * e) - jg.exp_map(POINCARE, x0, v0 - eps * e))
            / (2 * eps)
            for e in jnp.eye(2)
        ],
        axis=1,
    )
    np.testing.assert_allclose(jac, fd, rtol=1e-6, atol=1e-8)
    grad = jax.grad(lambda v: jg.exp_map(POINCARE, x0, v)[0])(v0)
    np.testing.assert_allclose(grad, fd[0], rtol=1e-6, atol=1e-8)


def test_indefinite_metric_is_reported():
    # det G < 0 in the lower half of the plane: a failed result or a clear error,
    # never silent NaNs.
    metric = jg.MatrixMetric(lambda x: jnp.diag(jnp.array([1.0, x[1]])))
    sol = jg.geodesic_ivp(metric, jnp.array([0.0, 0.5]), jnp.array([0.0, -2.0]), throw=False)
    assert sol.result != jg.RESULTS.successful
