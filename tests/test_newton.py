"""The second-order boundary solver: its linear algebra against dense references, and
its solutions against first-order descent."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgeo as jg
from jaxgeo._geodesic._newton import energy_derivatives
from jaxgeo._linalg import active_block_tridiagonal_solve, block_tridiagonal_solve

from .helpers import poincare, poincare_distance


def _dense(diag, upper):
    n, d = diag.shape[0], diag.shape[1]
    h = np.zeros((n * d, n * d))
    for j in range(n):
        h[j * d : (j + 1) * d, j * d : (j + 1) * d] = diag[j]
    for j in range(n - 1):
        h[j * d : (j + 1) * d, (j + 1) * d : (j + 2) * d] = upper[j]
        h[(j + 1) * d : (j + 2) * d, j * d : (j + 1) * d] = upper[j].T
    return h


@pytest.mark.parametrize(
    "dim,n",
    [
        (1, 9),
        (2, 9),
        (3, 9),
        (4, 9),
        (5, 9),
        (8, 9),
        (2, 1),
        (2, 2),
        (2, 62),
        (5, 33),
        (3, 131),
        (6, 70),
    ],
)
@pytest.mark.parametrize("sequential_max", [None, 4], ids=["default", "reduction"])
def test_block_tridiagonal_solve_matches_dense(dim, n, sequential_max):
    # Cyclic reduction: odd and even sizes, one and two levels, a single block, and the
    # LAPACK path (D > 4).
    rng = np.random.default_rng(dim + 100 * n)
    a = rng.normal(size=(n, dim, dim))
    diag = a @ a.transpose(0, 2, 1) + 3 * dim * np.eye(dim)
    upper = rng.normal(size=(n - 1, dim, dim))
    rhs = rng.normal(size=(n, dim))
    h = _dense(diag, upper)
    assert np.all(np.linalg.eigvalsh(h) > 0)
    solve = jax.jit(functools.partial(block_tridiagonal_solve, sequential_max=sequential_max))
    x = solve(jnp.asarray(diag), jnp.asarray(upper), jnp.asarray(rhs))
    np.testing.assert_allclose(np.asarray(x).ravel(), np.linalg.solve(h, rhs.ravel()), rtol=1e-10)


@pytest.mark.parametrize("dim,columns", [(2, None), (2, 3), (5, None)])
def test_active_block_tridiagonal_solve_matches_dense_on_its_leading_blocks(dim, columns):
    # Counts below, at and across the chunks the loops unroll (8 blocks for D <= 4),
    # a single block, and the whole buffer; the rows beyond are zero whatever they hold.
    n = 20
    rng = np.random.default_rng(dim)
    a = rng.normal(size=(n, dim, dim))
    diag = a @ a.transpose(0, 2, 1) + 3 * dim * np.eye(dim)
    upper = rng.normal(size=(n - 1, dim, dim))
    rhs = rng.normal(size=(n, dim) + (() if columns is None else (columns,)))
    solve = jax.jit(active_block_tridiagonal_solve)
    for active in (1, 2, 8, 9, 16, 17, n):
        h = _dense(diag[:active], upper[: active - 1])
        x = np.asarray(solve(jnp.asarray(diag), jnp.asarray(upper), jnp.asarray(rhs), active))
        expected = np.linalg.solve(h, rhs[:active].reshape(active * dim, -1))
        np.testing.assert_allclose(x[:active].reshape(active * dim, -1), expected, rtol=1e-10)
        np.testing.assert_array_equal(x[active:], 0)


@pytest.mark.parametrize("sequential_max", [None, 4], ids=["default", "reduction"])
def test_block_tridiagonal_solve_flags_indefinite(sequential_max):
    solve = jax.jit(functools.partial(block_tridiagonal_solve, sequential_max=sequential_max))
    diag = -jnp.ones((4, 2, 2)) * jnp.eye(2)[None]
    x = solve(diag, jnp.zeros((3, 2, 2)), jnp.ones((4, 2)))
    assert not jnp.all(jnp.isfinite(x))
    # Positive-definite diagonal blocks, indefinite matrix: the coupling decides.
    for n in (7, 8, 33):
        eye = jnp.broadcast_to(jnp.eye(2), (n, 2, 2))
        x = solve(eye, 0.9 * eye[1:], jnp.ones((n, 2)))
        assert not jnp.all(jnp.isfinite(x)), n
        x = solve(eye, 0.4 * eye[1:], jnp.ones((n, 2)))
        assert jnp.all(jnp.isfinite(x)), n


def _mlp_stein_3d():
    return jg.SteinMetric(jg.nn.MLPScore(3, key=jax.random.key(0), width=16, depth=2), 0.5)


def _sphere_pullback():
    def embed(z):
        return jnp.stack(
            [jnp.cos(z[0]) * jnp.cos(z[1]), jnp.cos(z[0]) * jnp.sin(z[1]), jnp.sin(z[0])]
        )

    return jg.PullbackMetric(embed)


def _stein_08():
    return jg.SteinMetric(jg.scores.gaussian(jnp.zeros(2), jnp.array([[1.0, 0.8], [0.8, 1.0]])))


_T = jnp.linspace(0, 3, 12)
_PART2_CURVE = jnp.stack([jnp.linspace(-4.0, 4.0, 12), -2.0 + jnp.sin(_T)], -1)
_CURVE_3D = jnp.stack([jnp.linspace(-1.0, 1.0, 12), 0.3 * jnp.sin(_T), 0.2 * jnp.cos(_T)], -1)

# The midpoint rule's derivatives through (midpoint, difference), and the generic
# forward-over-reverse pass of the secant rule: (metric, curve, rule).
ENERGY_CASES = {
    "stein-midpoint": (_stein_08, _PART2_CURVE, "midpoint"),
    "mlp-stein-3d-midpoint": (_mlp_stein_3d, _CURVE_3D, "midpoint"),
    "pullback-secant": (_sphere_pullback, _CURVE_3D[:, :2], "secant"),
}


@pytest.mark.parametrize("case", ENERGY_CASES)
def test_energy_derivatives_match_autodiff(case):
    make, xs, rule = ENERGY_CASES[case]
    metric = make()
    value, grad, diag, upper = eqx.filter_jit(energy_derivatives)(metric, xs, rule)

    def energy(interior):
        return jg.curve_energy(metric, xs.at[1:-1].set(interior), energy=rule)

    size = xs[1:-1].size
    np.testing.assert_allclose(value, energy(xs[1:-1]), rtol=1e-13)
    np.testing.assert_allclose(grad, jax.jit(jax.grad(energy))(xs[1:-1]), rtol=1e-10, atol=1e-12)
    full = jax.jit(jax.hessian(energy))(xs[1:-1]).reshape(size, size)
    # 1e-10 on the Part II curve as before; relative to the Hessian's scale elsewhere.
    atol = min(1e-10, 1e-12 * np.max(np.abs(full)))
    np.testing.assert_allclose(_dense(np.asarray(diag), np.asarray(upper)), full, atol=atol)


@pytest.mark.parametrize("rho", [0.0, 0.8, 0.95])
def test_newton_matches_descent_and_converges_fast(rho):
    cov = jnp.array([[1.0, rho], [rho, 1.0]])
    metric = jg.SteinMetric(jg.scores.gaussian(jnp.zeros(2), cov))
    x0, x1 = jnp.array([-4.0, -2.0]), jnp.array([4.0, -2.0])
    newton = jg.geodesic_bvp(metric, x0, x1, solver=jg.EnergyNewton(rtol=1e-10, atol=1e-10))
    descent = jg.geodesic_bvp(metric, x0, x1, solver=jg.EnergyDescent(), max_steps=20_000)
    assert newton.result == jg.RESULTS.successful
    assert descent.result == jg.RESULTS.successful
    # Same local geodesic; Newton's energy is at least as low and its gradient ~0.
    assert float(newton.energy) <= float(descent.energy) + 1e-12
    assert abs(float(newton.length - descent.length)) < 1e-6 * float(newton.length)
    assert float(newton.stats["grad_norm"]) < 1e-8
    assert int(newton.stats["num_steps"]) < 100


def test_default_solver_is_newton_for_small_dim():
    from jaxgeo._geodesic._default import default_polyline_solver as default_solver, NEWTON_MAX_DIM

    assert isinstance(default_solver(2), jg.EnergyNewton)
    assert isinstance(default_solver(NEWTON_MAX_DIM), jg.EnergyNewton)
    assert isinstance(default_solver(NEWTON_MAX_DIM + 1), jg.EnergyDescent)


@pytest.mark.slow
def test_newton_gradient_matches_finite_differences():
    x0, x1 = jnp.array([-4.0, -2.0]), jnp.array([4.0, -2.0])

    def length(rho):
        cov = jnp.array([[1.0, rho], [rho, 1.0]])
        metric = jg.SteinMetric(jg.scores.gaussian(jnp.zeros(2), cov))
        sol = jg.geodesic_bvp(metric, x0, x1, solver=jg.EnergyNewton(rtol=1e-12, atol=1e-12))
        return sol.length

    h = 1e-5
    fd = (length(0.8 + h) - length(0.8 - h)) / (2 * h)
    np.testing.assert_allclose(jax.grad(length)(0.8), fd, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["poincare", "normal"])
def test_newton_agrees_with_descent_and_shooting_on_closed_forms(case):
    """The second-order solver, first-order descent and the ODE by shooting meet the
    closed-form distance: the Poincaré half-plane and Fisher–Rao of Normal(mu, sigma)."""
    if case == "poincare":
        metric, x0, x1 = poincare, jnp.array([-1.0, 1.0]), jnp.array([1.5, 0.4])
        expected = float(poincare_distance(x0, x1))
    else:
        metric = jg.FisherRaoMetric(jg.families.Normal())
        x0, x1 = jnp.array([-1.0, 0.3]), jnp.array([1.5, 1.5])
        expected = float(
            np.sqrt(2)
            * poincare_distance(
                x0 / jnp.array([np.sqrt(2), 1.0]), x1 / jnp.array([np.sqrt(2), 1.0])
            )
        )
    kw = dict(num_points=33, max_steps=50_000)
    tol = dict(rtol=1e-12, atol=1e-12)
    newton = jg.geodesic_bvp(metric, x0, x1, solver=jg.EnergyNewton(**tol), **kw)
    descent = jg.geodesic_bvp(metric, x0, x1, solver=jg.EnergyDescent(**tol), **kw)
    assert int(newton.stats["num_steps"]) <= 30
    np.testing.assert_allclose(newton.length, descent.length, rtol=1e-9)
    np.testing.assert_allclose(newton.xs, descent.xs, atol=1e-6)
    for init_solver in (jg.EnergyNewton(), jg.EnergyDescent()):
        shooting = jg.geodesic_bvp(metric, x0, x1, solver=jg.Shooting(init_solver=init_solver))
        np.testing.assert_allclose(shooting.length, expected, rtol=1e-8)
    # The polyline's length approaches the closed form at second order.
    np.testing.assert_allclose(newton.length, expected, rtol=2e-3)


def _noisy_euclidean(x):
    r"""The Euclidean metric times $1 + 10^{-11}\sin(10^9 x_0 x_1)$, the factor without
    a derivative: an energy whose round-off is far above NOISE_ULPS (as in a secant
    energy of KL divergences), with exact derivatives."""
    noise = jax.lax.stop_gradient(1e-11 * jnp.sin(1e9 * x[0] * x[1]))
    return jnp.eye(2) * (1 + noise)


def test_newton_converges_at_the_round_off_floor_of_a_noisy_energy():
    """At the floor, where the energy change of a step is noise, Newton reports success
    (it used to reject the steps until the damping passed its cap: "diverged")."""
    x0, x1 = jnp.array([0.0, 0.0]), jnp.array([1.0, 0.5])
    ts = jnp.linspace(0, 1, 33)[:, None]
    line = x0[None] + ts * (x1 - x0)[None]
    init = line + 0.3 * jnp.sin(jnp.pi * ts) * jnp.array([[1.0, -1.0]])
    sol = jg.geodesic_bvp(
        jg.MatrixMetric(_noisy_euclidean),
        x0,
        x1,
        num_points=33,
        init=init,
        solver=jg.EnergyNewton(),
        throw=False,
    )
    assert sol.result == jg.RESULTS.successful
    np.testing.assert_allclose(sol.xs, line, atol=1e-6)
    assert int(sol.stats["num_steps"]) < 20
