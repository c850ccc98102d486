"""Pullback and expected pullback metrics against closed forms and dense references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgeo as jg


def sphere_embedding(z):
    theta, phi = z
    return jnp.array([jnp.sin(theta) * jnp.cos(phi), jnp.sin(theta) * jnp.sin(phi), jnp.cos(theta)])


def saddle_embedding(z):
    u, v = z
    return jnp.array([u, v, u**2 - v**2])


SPHERE = jg.PullbackMetric(sphere_embedding)
SADDLE = jg.PullbackMetric(saddle_embedding)


def decoder(dim_in, dim_out, seed):
    rng = np.random.default_rng(seed)
    w1 = jnp.asarray(rng.normal(size=(16, dim_in)))
    w2 = jnp.asarray(rng.normal(size=(dim_out, 16)) / 4)
    return lambda z: w2 @ jnp.tanh(w1 @ z + 0.1)


def test_closed_form_matrices():
    z = jnp.array([0.7, 0.3])
    np.testing.assert_allclose(
        SPHERE.matrix(z), jnp.diag(jnp.array([1, jnp.sin(0.7) ** 2])), atol=1e-15
    )
    u, v = 0.4, -0.9
    expected = jnp.array([[1 + 4 * u**2, -4 * u * v], [-4 * u * v, 1 + 4 * v**2]])
    np.testing.assert_allclose(SADDLE.matrix(jnp.array([u, v])), expected, rtol=1e-14)


@pytest.mark.parametrize(
    "metric, z, curvature",
    [
        (SPHERE, jnp.array([0.7, 0.3]), 1.0),
        (SPHERE, jnp.array([2.0, -1.0]), 1.0),
        (SADDLE, jnp.array([0.0, 0.0]), -4.0),
        # K = -4 / (1 + 4u^2 + 4v^2)^2 for the graph of u^2 - v^2
        (SADDLE, jnp.array([0.3, 0.2]), -4 / (1 + 4 * 0.09 + 4 * 0.04) ** 2),
    ],
)
def test_gaussian_curvature_by_pullback(metric, z, curvature):
    np.testing.assert_allclose(jg.gaussian_curvature(metric, z), curvature, rtol=1e-10)


@pytest.mark.slow
def test_sphere_great_circle_distance_by_pullback():
    z0, z1 = jnp.array([0.8, 0.2]), jnp.array([1.9, 2.1])
    expected = jnp.arccos(jnp.dot(sphere_embedding(z0), sphere_embedding(z1)))
    sol = jg.log_map(SPHERE, z0, z1, solver=jg.Shooting())
    assert sol.result == jg.RESULTS.successful
    np.testing.assert_allclose(sol.length, expected, rtol=1e-8)
    np.testing.assert_allclose(jg.distance(SPHERE, z0, z1), expected, rtol=1e-6)


@pytest.mark.parametrize("with_base", [False, True])
def test_matrix_free_inner_and_solve_match_dense(with_base):
    dim_in, dim_out = 5, 40
    f = decoder(dim_in, dim_out, 0)
    base = None
    if with_base:
        a = np.random.default_rng(1).normal(size=(dim_out, dim_out))
        spd = jnp.asarray(a @ a.T / dim_out + np.eye(dim_out))
        base = jg.MatrixMetric(lambda y: spd * (1 + jnp.sum(y**2)))
    dense = jg.PullbackMetric(f, base)
    cg = jg.PullbackMetric(f, base, dense_max_dim=0)
    rng = np.random.default_rng(2)
    z, u, v, w = (jnp.asarray(rng.normal(size=dim_in)) for _ in range(4))
    g = dense.matrix(z)
    np.testing.assert_allclose(dense.inner(z, u, v), u @ g @ v, rtol=1e-12)
    np.testing.assert_allclose(dense.sq_norm(z, u), u @ g @ u, rtol=1e-12)
    np.testing.assert_allclose(dense.solve(z, w), jnp.linalg.solve(g, w), rtol=1e-9)
    np.testing.assert_allclose(jax.jit(cg.solve)(z, w), jnp.linalg.solve(g, w), rtol=1e-8)
    np.testing.assert_allclose(
        jg.geodesic_acceleration(cg, z, u), jg.geodesic_acceleration(dense, z, u), rtol=1e-7
    )


def test_expected_pullback_is_pullback_of_mean_and_std_and_mc_average():
    mean = decoder(2, 30, 3)
    scale = decoder(2, 30, 4)

    def std(z):
        return jax.nn.softplus(scale(z))

    metric = jg.ExpectedPullbackMetric(mean, std)
    z = jnp.array([0.3, -0.5])
    stacked = jg.PullbackMetric(lambda y: jnp.concatenate([mean(y), std(y)]))
    np.testing.assert_allclose(metric.matrix(z), stacked.matrix(z), rtol=1e-13)
    j_mu, j_sigma = jax.jacfwd(mean)(z), jax.jacfwd(std)(z)
    np.testing.assert_allclose(metric.matrix(z), j_mu.T @ j_mu + j_sigma.T @ j_sigma, rtol=1e-12)
    # Monte Carlo: f = mu + eps * sigma has J_f = J_mu + diag(eps) J_sigma.
    eps = jax.random.normal(jax.random.key(0), (20_000, 30))
    jf = j_mu[None] + eps[:, :, None] * j_sigma[None]
    samples = jnp.einsum("nki,nkj->nij", jf, jf)
    mc, mc_err = samples.mean(0), samples.std(0) / np.sqrt(eps.shape[0])
    assert np.all(np.abs(mc - metric.matrix(z)) < 5 * mc_err + 1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match="1-D array"):
        jg.PullbackMetric(lambda z: jnp.outer(z, z)).matrix(jnp.ones(2))
    f = decoder(2, 10, 0)
    with pytest.raises(ValueError, match=r"shape \(3,\).*latent dimension"):
        jg.PullbackMetric(f).matrix(jnp.ones(3))
    with pytest.raises(ValueError, match="single point"):
        jg.geodesic_bvp(SPHERE, jnp.ones((3, 2)), jnp.ones((3, 2)))
    with pytest.raises(ValueError, match="same shape"):
        jg.geodesic_bvp(SPHERE, jnp.ones(2), jnp.ones(3))
    with pytest.raises(ValueError, match="one shape"):
        jg.ExpectedPullbackMetric(lambda z: z, lambda z: jnp.ones(3)).matrix(jnp.ones(2))


@pytest.mark.slow
def test_secant_energy_agrees_with_metric_energy_as_n_grows():
    f = decoder(2, 30, 5)
    metric = jg.PullbackMetric(f)

    def arc(n):
        t = jnp.linspace(0, 1, n + 1)
        return jnp.stack([jnp.cos(2 * t) - 0.5, jnp.sin(2 * t) * 0.8], axis=1)

    gaps = []
    for n in (8, 32, 128):
        xs = arc(n)
        midpoint = jg.curve_energy(metric, xs)
        decoded = jax.vmap(f)(xs)
        secant = 0.5 * n * jnp.sum((decoded[1:] - decoded[:-1]) ** 2)
        np.testing.assert_allclose(jg.curve_energy(metric, xs, energy="secant"), secant)
        gaps.append(float(jnp.abs(secant - midpoint) / midpoint))
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-3, gaps
    x0, x1 = jnp.array([-0.5, 0.0]), jnp.array([0.5, 0.8])
    secant = jg.geodesic_bvp(metric, x0, x1, num_points=32, energy="secant")
    midpoint = jg.geodesic_bvp(metric, x0, x1, num_points=32)
    assert secant.result == jg.RESULTS.successful
    np.testing.assert_allclose(secant.xs[0], x0, atol=1e-12)
    np.testing.assert_allclose(secant.xs[-1], x1, atol=1e-12)
    np.testing.assert_allclose(secant.length, midpoint.length, rtol=1e-2)
    with pytest.raises(ValueError, match="no secant"):
        jg.geodesic_bvp(jg.Euclidean(2), x0, x1, energy="secant")
    with pytest.raises(ValueError, match="energy must be"):
        jg.geodesic_bvp(metric, x0, x1, energy="kl")


def test_secant_curve_norms_decode_once_and_match_segments():
    """The curve-level secant energy (one decoder pass over the points) equals the
    per-segment `secant_sq_norm`, with and without a base metric and for the
    pulled-back Fisher–Rao metric; each point is decoded once."""
    xs = jnp.stack([jnp.linspace(-0.5, 0.5, 9), jnp.linspace(0.1, 0.7, 9)], axis=1)
    f = decoder(2, 6, 3)
    calls = []

    def counted(z):
        calls.append(z.shape)
        return f(z)

    bernoulli = jg.families.Product(jg.families.Bernoulli(), 6)
    metrics = [
        jg.PullbackMetric(f),
        jg.PullbackMetric(f, base=jg.MatrixMetric(lambda y: jnp.diag(1 + y**2))),
        jg.PullbackFisherRaoMetric(lambda z: jax.nn.sigmoid(f(z)), bernoulli),
    ]
    for metric in metrics:
        segments = jax.vmap(metric.secant_sq_norm)(xs[:-1], xs[1:])
        np.testing.assert_allclose(metric.secant_curve_sq_norms(xs), segments, rtol=1e-12)
    jax.make_jaxpr(lambda c: jg.curve_energy(jg.PullbackMetric(counted), c, energy="secant"))(xs)
    # One shape check (eval_shape), one pass vmapped over the 9 points; decoding per
    # segment traced it three times.
    assert len(calls) == 2
