"""Christoffel symbols, matrix-free geodesic acceleration and curvature against closed
forms (sphere by pullback, Poincaré half-plane, saddle surface) and each other."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgeo as jg


def _sphere_embedding(q):
    theta, phi = q
    return jnp.array([jnp.sin(theta) * jnp.cos(phi), jnp.sin(theta) * jnp.sin(phi), jnp.cos(theta)])


def _pullback(f):
    def matrix(q):
        jac = jax.jacfwd(f)(q)
        return jac.T @ jac

    return jg.MatrixMetric(matrix)


SPHERE = _pullback(_sphere_embedding)
POINCARE = jg.MatrixMetric(lambda x: jnp.eye(2) / x[1] ** 2)
SADDLE = _pullback(lambda q: jnp.array([q[0], q[1], q[0] ** 2 - q[1] ** 2]))


def test_sphere_christoffel_closed_form():
    theta, phi = 0.7, 0.3
    gamma = jg.christoffel(SPHERE, jnp.array([theta, phi]))
    expected = np.zeros((2, 2, 2))
    expected[0, 1, 1] = -np.sin(theta) * np.cos(theta)
    expected[1, 0, 1] = expected[1, 1, 0] = np.cos(theta) / np.sin(theta)
    np.testing.assert_allclose(gamma, expected, atol=1e-12)


def test_poincare_christoffel_closed_form():
    x = jnp.array([0.3, 1.7])
    gamma = jg.christoffel(POINCARE, x)
    y = 1.7
    expected = np.zeros((2, 2, 2))
    expected[0, 0, 1] = expected[0, 1, 0] = -1 / y
    expected[1, 0, 0] = 1 / y
    expected[1, 1, 1] = -1 / y
    np.testing.assert_allclose(gamma, expected, atol=1e-12)


@pytest.mark.parametrize(
    "metric, x, curvature",
    [
        (SPHERE, jnp.array([0.7, 0.3]), lambda x: 1.0),
        (SPHERE, jnp.array([2.1, -1.0]), lambda x: 1.0),
        (POINCARE, jnp.array([0.3, 1.7]), lambda x: -1.0),
        (POINCARE, jnp.array([-2.0, 0.2]), lambda x: -1.0),
        # z = u^2 - v^2: K = -4 / (1 + 4u^2 + 4v^2)^2
        (SADDLE, jnp.array([0.3, -0.5]), lambda x: -4 / (1 + 4 * x[0] ** 2 + 4 * x[1] ** 2) ** 2),
        (SADDLE, jnp.array([0.0, 0.0]), lambda x: -4.0),
    ],
)
def test_gaussian_curvature_closed_forms(metric, x, curvature):
    k = jg.gaussian_curvature(metric, x)
    np.testing.assert_allclose(k, curvature(x), rtol=1e-10)
    np.testing.assert_allclose(jg.scalar_curvature(metric, x), 2 * curvature(x), rtol=1e-10)


def test_curvature_float32_and_jit_vmap():
    xs = jnp.array([[0.7, 0.3], [1.2, 2.0], [2.5, -0.4]])
    curvature = jax.vmap(lambda x: jg.gaussian_curvature(SPHERE, x))
    k64 = jax.jit(curvature)(xs)
    k32 = jax.jit(curvature)(xs.astype(jnp.float32))
    k_eager = jnp.stack([jg.gaussian_curvature(SPHERE, x) for x in xs[:1]])
    assert k32.dtype == jnp.float32
    np.testing.assert_allclose(k64, 1.0, rtol=1e-10)
    np.testing.assert_allclose(k_eager, k64[:1], rtol=1e-12)
    np.testing.assert_allclose(k32, 1.0, rtol=1e-3)


def test_riemann_symmetries_and_ricci_3d():
    # A 3-D Stein metric: check the algebraic symmetries of the Riemann tensor.
    cov = jnp.array([[1.0, 0.3, 0.1], [0.3, 1.5, -0.2], [0.1, -0.2, 0.8]])
    metric = jg.SteinMetric(jg.scores.gaussian(jnp.zeros(3), cov))
    x = jnp.array([0.4, -1.0, 0.7])
    riem = jg.riemann_tensor(metric, x)
    np.testing.assert_allclose(riem, -jnp.swapaxes(riem, 1, 2), atol=1e-12)
    lowered = jnp.einsum("ml,lijk->mijk", metric.matrix(x), riem)
    # R_lijk = R_jkli (pair symmetry) and first Bianchi identity
    np.testing.assert_allclose(lowered, jnp.einsum("lijk->jkli", lowered), atol=1e-10)
    bianchi = riem + jnp.einsum("lijk->ljki", riem) + jnp.einsum("lijk->lkij", riem)
    np.testing.assert_allclose(bianchi, 0.0, atol=1e-10)
    ricci = jg.ricci_tensor(metric, x)
    np.testing.assert_allclose(ricci, ricci.T, atol=1e-10)


@pytest.mark.parametrize(
    "metric, x",
    [
        (SPHERE, jnp.array([0.7, 0.3])),
        (POINCARE, jnp.array([0.3, 1.7])),
        (
            jg.SteinMetric(jg.scores.gaussian(jnp.zeros(3), jnp.eye(3) + 0.5)),
            jnp.array([0.3, -1.0, 2.0]),
        ),
        (
            jg.SteinMetric(jg.scores.gaussian(jnp.zeros(3), jnp.eye(3)), diagonal=True),
            jnp.array([1.0, 0.2, -0.5]),
        ),
        (
            jg.MongeMetric(jg.scores.gaussian(jnp.zeros(2), jnp.eye(2)), alpha=0.7),
            jnp.array([1.0, -2.0]),
        ),
    ],
)
def test_geodesic_acceleration_matches_christoffel(metric, x):
    v = 0.3 * jnp.arange(1.0, x.shape[0] + 1)
    expected = -jnp.einsum("kij,i,j->k", jg.christoffel(metric, x), v, v)
    np.testing.assert_allclose(
        jg.geodesic_acceleration(metric, x, v), expected, rtol=1e-10, atol=1e-12
    )


def test_christoffel_matches_finite_differences():
    x = jnp.array([0.7, 0.3])
    eps = 1e-6
    dg = jnp.stack(
        [(SPHERE.matrix(x + eps * e) - SPHERE.matrix(x - eps * e)) / (2 * eps) for e in jnp.eye(2)],
        axis=-1,
    )
    lowered = 0.5 * (
        jnp.einsum("jli->lij", dg) + jnp.einsum("ilj->lij", dg) - jnp.einsum("ijl->lij", dg)
    )
    expected = jnp.einsum("kl,lij->kij", jnp.linalg.inv(SPHERE.matrix(x)), lowered)
    np.testing.assert_allclose(jg.christoffel(SPHERE, x), expected, atol=1e-8)


@pytest.mark.parametrize("dim", [2, 5, 16])
def test_geodesic_acceleration_random_metrics(dim):
    rng = np.random.default_rng(dim)
    w = jnp.asarray(rng.normal(size=(dim * dim, dim)) / np.sqrt(dim))
    b = jnp.asarray(rng.normal(size=dim * dim))

    def matrix(x):
        a = jnp.tanh(w @ x + b).reshape(dim, dim)
        return a @ a.T + jnp.eye(dim)

    metric = jg.MatrixMetric(matrix)
    x = jnp.asarray(rng.normal(size=dim))
    v = jnp.asarray(rng.normal(size=dim))
    free = eqx.filter_jit(jg.geodesic_acceleration)(metric, x, v)
    full = eqx.filter_jit(lambda m, x, v: -jnp.einsum("kij,i,j->k", jg.christoffel(m, x), v, v))(
        metric, x, v
    )
    np.testing.assert_allclose(free, full, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("dim", [2, 16])
def test_conservative_stein_acceleration_closed_form(dim):
    rng = np.random.default_rng(dim)
    a = rng.normal(size=(dim, dim))
    cov = jnp.asarray(a @ a.T / dim + 0.5 * np.eye(dim))
    gmm = jg.scores.gmm(
        jnp.array([0.3, 0.7]), jnp.asarray(rng.normal(size=(2, dim))), jnp.stack([cov, 2 * cov])
    )
    x = jnp.asarray(rng.normal(size=dim))
    v = jnp.asarray(rng.normal(size=dim))
    for score in [jg.scores.gaussian(jnp.zeros(dim), cov), gmm]:
        generic = jg.SteinMetric(score, damping=0.3)
        closed = jg.SteinMetric(score, damping=0.3, conservative=True)
        expected = jg.geodesic_acceleration(generic, x, v)
        np.testing.assert_allclose(
            jax.jit(jg.geodesic_acceleration)(closed, x, v), expected, rtol=1e-10, atol=1e-12
        )


def test_conservative_flag_is_wrong_for_a_rotational_score():
    # s(x) = A x with A not symmetric is no gradient: the closed form, which assumes a
    # symmetric Jacobian, then differs from the true geodesic equation.
    a = jnp.array([[-1.0, 0.8], [-0.2, -1.0]])
    x, v = jnp.array([0.5, -1.0]), jnp.array([1.0, 0.3])
    true = jg.geodesic_acceleration(jg.SteinMetric(lambda y: a @ y), x, v)
    expected = -jnp.einsum("kij,i,j->k", jg.christoffel(jg.SteinMetric(lambda y: a @ y), x), v, v)
    np.testing.assert_allclose(true, expected, rtol=1e-10)
    wrong = jg.geodesic_acceleration(jg.SteinMetric(lambda y: a @ y, conservative=True), x, v)
    assert float(jnp.max(jnp.abs(wrong - true))) > 1e-2
