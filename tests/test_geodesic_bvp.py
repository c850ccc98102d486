import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgeo as jg

from .helpers import (
    poincare,
    poincare_distance,
    poincare_partial,
    poincare_semicircle_geodesic,
    stein_gaussian,
    straight_line,
)


SUCCESS = jg.RESULTS.successful

# The Part II case: the Stein metric of the rho = 0.8 Gaussian.
STEIN_X0 = jnp.array([-4.0, -2.0])
STEIN_X1 = jnp.array([4.0, -2.0])

POINCARE_X0 = jnp.array([-1.0, 1.0])
POINCARE_X1 = jnp.array([1.0, 1.0])


# The default solver (EnergyNewton for D <= 8) and L-BFGS energy descent.
SOLVERS = {"default": None, "lbfgs": jg.EnergyDescent()}
solvers = pytest.mark.parametrize("solver", list(SOLVERS.values()), ids=list(SOLVERS))


def _successful(sol) -> bool:
    return bool(jnp.all(sol.result == SUCCESS))


def test_euclidean_straight_line():
    x0, x1 = jnp.array([1.0, -2.0, 0.5]), jnp.array([-3.0, 0.5, 2.0])
    sol = jg.geodesic_bvp(jg.Euclidean(3), x0, x1, num_points=16)
    assert sol.result == SUCCESS
    assert sol.xs.shape == (16, 3)
    assert float(jnp.max(jnp.abs(sol.xs - straight_line(x0, x1, 16)))) < 1e-8
    dist = float(jnp.linalg.norm(x1 - x0))
    np.testing.assert_allclose(sol.length, dist, rtol=1e-10)
    np.testing.assert_allclose(sol.energy, dist**2 / 2, rtol=1e-10)
    np.testing.assert_allclose(sol.ts, jnp.linspace(0, 1, 16), rtol=1e-15)
    np.testing.assert_allclose(sol.vs, jnp.broadcast_to(x1 - x0, (16, 3)), atol=1e-7)
    np.testing.assert_allclose(sol.stats["constant_speed_ratio"], 1, atol=1e-12)
    assert sol.stats["grad_norm"] < 1e-6
    assert sol.stats["max_steps"] == 4096
    assert 0 <= int(sol.stats["num_steps"]) <= 4096


# `poincare` is the plain-lambda MatrixMetric from the docstring; `poincare_partial`
# wraps the same function in `jax.tree_util.Partial`.
@pytest.mark.parametrize("metric", [poincare, poincare_partial], ids=["lambda", "partial"])
def test_poincare(metric):
    sol = jg.geodesic_bvp(metric, POINCARE_X0, POINCARE_X1, num_points=65)
    assert sol.result == SUCCESS
    expected = float(poincare_distance(POINCARE_X0, POINCARE_X1))
    # Measured: error 2.3e-5 at 64 points, decreasing ~4x per doubling.
    assert abs(float(sol.length) - expected) < 1e-4
    np.testing.assert_allclose(sol.stats["constant_speed_ratio"], 1, atol=1e-4)
    # The geodesic is an arc of the circle through both points centred on the x-axis:
    # here centred at (0, 0) with radius sqrt(2).
    np.testing.assert_allclose(jnp.linalg.norm(sol.xs, axis=1), np.sqrt(2), atol=2e-4)
    np.testing.assert_allclose(sol.xs[:, 0], -sol.xs[::-1, 0], atol=1e-5)  # symmetric


def test_poincare_second_order_in_num_points():
    """Length, points and (discrete-momentum) velocities of the discrete geodesic
    converge at second order to the semicircle's."""
    expected = float(poincare_distance(POINCARE_X0, POINCARE_X1))
    errors, point_errors, velocity_errors = [], [], []
    for num_points in (17, 33, 65):  # 16, 32, 64 segments
        sol = jg.geodesic_bvp(poincare_partial, POINCARE_X0, POINCARE_X1, num_points=num_points)
        assert sol.result == SUCCESS
        errors.append(abs(float(sol.length) - expected))
        xs, _ = poincare_semicircle_geodesic(0.0, np.sqrt(2), 3 * np.pi / 4, np.pi / 4, num_points)
        vs = jax.vmap(jax.jacfwd(lambda t: _semicircle_at(t)))(sol.ts)
        point_errors.append(float(jnp.max(jnp.abs(sol.xs - xs))))
        velocity_errors.append(float(jnp.max(jnp.abs(sol.vs - vs))))
    for errs in (errors, point_errors, velocity_errors):
        ratios = np.array(errs[:-1]) / np.array(errs[1:])
        assert np.all((ratios > 3.5) & (ratios < 4.5)), (errs, ratios)


def _semicircle_at(t):
    """The constant-speed semicircle geodesic from POINCARE_X0 to POINCARE_X1 at time t."""
    s0, s1 = np.log(np.tan(3 * np.pi / 8)), np.log(np.tan(np.pi / 8))
    theta = 2 * jnp.arctan(jnp.exp(s0 + t * (s1 - s0)))
    return np.sqrt(2) * jnp.stack([jnp.cos(theta), jnp.sin(theta)])


@solvers
def test_stein_gaussian(solver):
    metric = stein_gaussian(rho=0.8)
    sol = jg.geodesic_bvp(metric, STEIN_X0, STEIN_X1, num_points=64, solver=solver)
    assert sol.result == SUCCESS
    line = straight_line(STEIN_X0, STEIN_X1, 64)
    line_length = float(jg.curve_length(metric, line))
    # Measured: geodesic 4.200, straight line 5.516.
    assert float(sol.length) < 0.85 * line_length
    assert 4.0 < float(sol.length) < 4.4
    # The geodesic bends toward the density (toward the origin).
    midpoint = 0.5 * (sol.xs[31] + sol.xs[32])
    assert float(jnp.linalg.norm(midpoint)) < 0.5 * float(jnp.linalg.norm(line[31] + line[32]) / 2)
    np.testing.assert_allclose(sol.stats["constant_speed_ratio"], 1, atol=1e-4)
    # The endpoints are exact.
    np.testing.assert_array_equal(sol.xs[0], STEIN_X0)
    np.testing.assert_array_equal(sol.xs[-1], STEIN_X1)
    # The solution's length and energy are those of its curve.
    np.testing.assert_allclose(sol.length, jg.curve_length(metric, sol.xs), rtol=1e-12)
    np.testing.assert_allclose(sol.energy, jg.curve_energy(metric, sol.xs), rtol=1e-12)


# --- transformations ------------------------------------------------------------------


def _bvp16(metric, x0, x1):
    return jg.geodesic_bvp(metric, x0, x1, num_points=16, throw=False)


def test_vmap_equals_loop(getkey):
    metric = stein_gaussian(rho=0.8)
    x0s = jax.random.uniform(getkey(), (16, 2), minval=-3, maxval=3)
    x1s = jax.random.uniform(getkey(), (16, 2), minval=-3, maxval=3)
    batched = jax.vmap(lambda a, b: _bvp16(metric, a, b))(x0s, x1s)
    assert batched.xs.shape == (16, 16, 2)
    assert _successful(batched)
    for i in range(16):
        single = _bvp16(metric, x0s[i], x1s[i])
        assert single.result == SUCCESS
        np.testing.assert_allclose(batched.xs[i], single.xs, atol=1e-6)
        np.testing.assert_allclose(batched.length[i], single.length, atol=1e-6)


def test_jit_equals_eager_and_no_retrace():
    metric = stein_gaussian(rho=0.8)
    x0, x1 = jnp.array([-2.0, 1.0]), jnp.array([2.5, -0.5])
    eager = _bvp16(metric, x0, x1)
    jitted_fn = jax.jit(eqx.debug.assert_max_traces(_bvp16, max_traces=1))
    jitted = jitted_fn(metric, x0, x1)
    assert eager.result == SUCCESS
    assert jitted.result == SUCCESS
    np.testing.assert_allclose(jitted.xs, eager.xs, atol=1e-10)
    np.testing.assert_allclose(jitted.length, eager.length, rtol=1e-10)
    # New endpoints and a new covariance (same shapes): no retrace.
    other = jitted_fn(stein_gaussian(rho=0.5), x1, x0)
    assert other.result == SUCCESS
    assert float(jnp.max(jnp.abs(other.xs[::-1] - eager.xs))) > 1e-3


# --- autodiff -------------------------------------------------------------------------

# Tighter than the default 1e-6 so that finite differences of the solved length are
# not dominated by the solver tolerance.
_TOL = 1e-7


@pytest.mark.parametrize(
    "solver",
    [
        jg.EnergyNewton(rtol=_TOL, atol=_TOL),
        # The implicit-function gradients of multiple shooting, also through the metric.
        pytest.param(jg.Shooting(), marks=pytest.mark.slow),
    ],
    ids=["newton", "shooting"],
)
def test_gradient_matches_finite_differences(solver):
    def _length(cov, damping, x1):
        metric = jg.SteinMetric(jg.scores.gaussian(jnp.zeros(2), cov), damping=damping)
        return jg.geodesic_bvp(metric, STEIN_X0, x1, num_points=32, solver=solver).length

    cov = jnp.array([[1.0, 0.8], [0.8, 1.0]])
    damping = jnp.array(1.0)
    args = (cov, damping, STEIN_X1)
    grads = jax.grad(_length, argnums=(0, 1, 2))(*args)
    h = 1e-4

    def central(perturb):
        return (_length(*perturb(h)) - _length(*perturb(-h))) / (2 * h)

    e00 = jnp.array([[1.0, 0.0], [0.0, 0.0]])
    e01 = jnp.array([[0.0, 1.0], [1.0, 0.0]])  # keep the covariance symmetric
    checks = [
        (grads[0][0, 0], central(lambda d: (cov + d * e00, damping, STEIN_X1))),
        (grads[0][0, 1] + grads[0][1, 0], central(lambda d: (cov + d * e01, damping, STEIN_X1))),
        (grads[1], central(lambda d: (cov, damping + d, STEIN_X1))),
    ]
    for i in range(2):
        e = jnp.zeros(2).at[i].set(1.0)
        checks.append((grads[2][i], central(lambda d: (cov, damping, STEIN_X1 + d * e))))
    for autodiff, finite_difference in checks:
        assert abs(float(finite_difference)) > 1e-2  # not trivially zero
        np.testing.assert_allclose(autodiff, finite_difference, rtol=1e-4)


# --- solvers and results --------------------------------------------------------------


@pytest.mark.parametrize(
    "optimizer, max_steps",
    [
        (optax.adam(1e-2), 4096),
        (optax.sgd(1e-2), 20000),
        (optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2)), 4096),
    ],
    ids=["adam", "sgd", "chain"],
)
def test_optax_solvers(optimizer, max_steps):
    reference = jg.geodesic_bvp(poincare_partial, POINCARE_X0, POINCARE_X1, num_points=32)
    sol = jg.geodesic_bvp(
        poincare_partial,
        POINCARE_X0,
        POINCARE_X1,
        num_points=32,
        solver=jg.EnergyDescent(optimizer=optimizer),
        max_steps=max_steps,
    )
    assert sol.result == SUCCESS
    assert reference.result == SUCCESS
    np.testing.assert_allclose(sol.length, reference.length, atol=1e-6)
    assert float(jnp.max(jnp.abs(sol.xs - reference.xs))) < 1e-3
    assert int(sol.stats["num_steps"]) < max_steps


@solvers
def test_max_steps_reached(solver):
    metric = stein_gaussian(rho=0.8)
    kwargs = dict(num_points=16, max_steps=5, solver=solver)
    sol = jg.geodesic_bvp(metric, STEIN_X0, STEIN_X1, throw=False, **kwargs)
    assert sol.result != SUCCESS
    assert sol.result == jg.RESULTS.nonlinear_max_steps_reached
    assert int(sol.stats["num_steps"]) == 5
    # The (unconverged) curve is still returned, no worse than the initial straight line.
    line_energy = jg.curve_energy(metric, straight_line(STEIN_X0, STEIN_X1, 16))
    assert float(sol.energy) <= float(line_energy)
    if solver is None:  # (one more compile; the check is independent of the solver)
        with pytest.raises(Exception, match=r"budget of Newton .* geodesic_bvp\(max_steps="):
            jg.geodesic_bvp(metric, STEIN_X0, STEIN_X1, throw=True, **kwargs)


def test_init_perturbed_curve(getkey):
    metric = poincare_partial
    reference = jg.geodesic_bvp(metric, POINCARE_X0, POINCARE_X1, num_points=32)
    ts = jnp.linspace(0, 1, 32)[:, None]
    bump = jnp.sin(jnp.pi * ts) * jnp.array([[0.3, 0.8]])
    noise = 0.05 * jax.random.normal(getkey(), (32, 2))
    init = straight_line(POINCARE_X0, POINCARE_X1, 32) + bump + noise
    # Endpoints of `init` are replaced by x0 and x1.
    init = init.at[0].set(jnp.array([5.0, 5.0]))
    sol = jg.geodesic_bvp(metric, POINCARE_X0, POINCARE_X1, num_points=32, init=init)
    assert sol.result == SUCCESS
    np.testing.assert_array_equal(sol.xs[0], POINCARE_X0)
    assert float(jnp.max(jnp.abs(sol.xs - reference.xs))) < 1e-4
    np.testing.assert_allclose(sol.length, reference.length, atol=1e-8)


def test_two_points_is_straight_line():
    metric = stein_gaussian(rho=0.8)
    sol = jg.geodesic_bvp(metric, STEIN_X0, STEIN_X1, num_points=2)
    assert sol.result == SUCCESS
    np.testing.assert_array_equal(sol.xs, jnp.stack([STEIN_X0, STEIN_X1]))
    np.testing.assert_allclose(sol.length, jg.curve_length(metric, sol.xs), rtol=1e-14)
    assert int(sol.stats["num_steps"]) == 0


def _check_float32(sol):
    assert sol.result == SUCCESS
    for name in ("ts", "xs", "vs", "length", "energy"):
        assert getattr(sol, name).dtype == jnp.float32, name
    # Measured in float64: 4.19908 at 32 points.
    np.testing.assert_allclose(sol.length, 4.19908, rtol=1e-4)


@solvers
def test_float32_endpoints(solver):
    # x64 is enabled in the tests; float32 inputs must still give a float32 solve.
    metric = stein_gaussian(rho=0.8, dtype=jnp.float32)
    x0, x1 = STEIN_X0.astype(jnp.float32), STEIN_X1.astype(jnp.float32)
    _check_float32(jg.geodesic_bvp(metric, x0, x1, num_points=32, solver=solver))


def test_float32_endpoints_without_x64():
    with jax.enable_x64(False):
        metric = stein_gaussian(rho=0.8, dtype=jnp.float32)
        x0, x1 = STEIN_X0.astype(jnp.float32), STEIN_X1.astype(jnp.float32)
        _check_float32(jg.geodesic_bvp(metric, x0, x1, num_points=32))


def _problem(metric, curve):
    return jg.BoundaryProblem(metric, curve[0], curve[-1], curve, max_steps=10)


@pytest.mark.slow
def test_unresolved_polyline_is_reported():
    """A polyline far from constant speed (L^2 / 2E < 1/2) is reported as
    `unresolved_curve`, not success; a well-resolved one is a success."""
    from jaxgeo._geodesic._base import polyline_solution

    metric = jg.PullbackMetric(lambda z: jnp.exp(-0.5 * jnp.sum(z**2)) * z)
    x0, x1 = jnp.array([-1.0, 0.0]), jnp.array([1.0, 0.0])
    detour = jnp.stack([x0, jnp.array([0.0, 100.0]), x1])
    bunched = jnp.stack([x0, x0 + jnp.array([0.0, 0.01]), x0 + jnp.array([0.0, 0.02]), x1])
    # (inside the unit circle: on it the decoder's radial derivative, and so the metric,
    # is singular, and velocities there are a reported failure, RESULTS.singular_metric)
    line = jg.straight_line(jnp.array([-0.5, 0.2]), jnp.array([0.5, 0.2]), 33)
    results = [
        polyline_solution(_problem(metric, c), c, SUCCESS, jnp.array(1)).result
        for c in (detour, bunched, line)
    ]
    # The detour's midpoints are where the decoder is ~0: midpoint length ~0, but its
    # segments leave x0 and reach x1 where the metric is not small (the curve's true
    # length is about |f(x0)| + |f(x1)| = 1.2).
    assert results[0] == jg.RESULTS.unresolved_curve
    assert results[1] == jg.RESULTS.unresolved_curve  # L^2 / 2E about 1/3
    assert results[2] == SUCCESS
    inside = jnp.array([-0.5, 0.2])
    same = jnp.stack([inside, inside, inside])  # zero energy between equal points is fine
    problem = _problem(metric, same)
    assert polyline_solution(problem, same, SUCCESS, jnp.array(1)).result == SUCCESS


@pytest.mark.slow
def test_a_segment_across_a_zero_of_the_metric_is_reported():
    """G = x_0^2 I from (-1, 0) to (1, 0): every curve crosses x_0 = 0 and the distance
    is 1, but one segment from x0 to x1 with its midpoint on the zero has midpoint-rule
    energy 0. Before: success with length 3e-10, and a distance of -0.33."""
    metric = jg.MatrixMetric(lambda x: x[0] ** 2 * jnp.eye(2, dtype=x.dtype))
    x0, x1 = jnp.array([-1.0, 0.0]), jnp.array([1.0, 0.0])
    sol = jg.geodesic_bvp(metric, x0, x1, throw=False)
    assert sol.result == jg.RESULTS.unresolved_curve
    assert float(sol.stats["endpoint_rule_ratio"]) < 0.5
    assert jnp.isnan(jg.distance(metric, x0, x1, throw=False))
    with pytest.raises(Exception, match="not resolved"):
        jg.distance(metric, x0, x1)
