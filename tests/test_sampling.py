"""Riemannian-manifold samplers: invariance, proposal densities, closed forms, errors."""

from functools import partial

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import jaxgeo as jg


COV = jnp.array([[1.0, 0.8], [0.8, 1.0]])
MEAN = jnp.array([1.0, -0.5])


def gaussian_logdensity(x):
    d = x - MEAN
    return -0.5 * d @ jnp.linalg.solve(COV, d)


def gaussian_score():
    return jg.scores.gaussian(MEAN, COV)


def run_chains(algorithm, key, num_chains, num_samples, burn_in, start):
    """`num_chains` chains vmapped, each a `lax.scan`; burn-in dropped."""

    def one_chain(key, x0):
        state = algorithm.init(x0)
        positions, infos = jg.sampling.sample_chain(key, algorithm, state, num_samples + burn_in)
        return positions[burn_in:], infos.acceptance_rate[burn_in:]

    keys = jax.random.split(key, num_chains)
    starts = start[None, :] + 0.1 * jax.random.normal(jax.random.key(99), (num_chains, 2))
    return jax.jit(jax.vmap(one_chain))(keys, starts)


def check_invariance(samples):
    """Means and covariances within Monte-Carlo error (standard errors from blackjax's
    effective sample size), and a KS test on each marginal of the thinned chains."""
    ess = np.asarray(blackjax.diagnostics.effective_sample_size(samples))
    flat = np.asarray(samples).reshape(-1, 2)
    n = flat.shape[0]
    assert n >= 20_000
    sd = np.sqrt(np.diag(np.asarray(COV)))
    assert np.all(np.abs(flat.mean(0) - np.asarray(MEAN)) < 5 * sd / np.sqrt(ess)), ess
    cov = np.cov(flat.T)
    # var(sample covariance) ~ (S_ii S_jj + S_ij^2) / n_eff
    c = np.asarray(COV)
    se = np.sqrt((np.outer(np.diag(c), np.diag(c)) + c**2) / ess.min())
    assert np.all(np.abs(cov - c) < 5 * se), (cov, ess)
    thin = int(np.ceil(samples.shape[0] * samples.shape[1] / ess.min()))
    thinned = np.asarray(samples)[:, ::thin].reshape(-1, 2)
    for i in range(2):
        # The normal's CDF as a function: scipy 1.18 (Python 3.13's) fails on
        # `kstest(x, "norm", args=(loc, scale))` (it passes loc and scale to `ndtr`).
        normal = scipy.stats.norm(float(MEAN[i]), sd[i])
        p = scipy.stats.kstest(thinned[:, i], normal.cdf).pvalue
        assert p > 0.01, (i, p, thin)


SLOW_SAMPLERS = ("mala", "mmala-monge", "mmala-full-drift")
SAMPLERS = {
    "mala": lambda: jg.sampling.mmala(gaussian_logdensity, jg.Euclidean(2), 0.9),
    "mmala-stein": lambda: jg.sampling.mmala(
        gaussian_logdensity, jg.SteinMetric(gaussian_score(), damping=1.0), 0.5
    ),
    "mmala-monge": lambda: jg.sampling.mmala(
        gaussian_logdensity, jg.MongeMetric(gaussian_score(), alpha=1.0), 0.8
    ),
    "mmala-full-drift": lambda: jg.sampling.mmala(
        gaussian_logdensity,
        jg.SteinMetric(gaussian_score(), damping=1.0),
        0.3,
        full_drift=True,
    ),
}


# One variant in the default run; the others (and RMHMC) in the slow step.
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.slow) if name in SLOW_SAMPLERS else name
        for name in SAMPLERS
    ],
)
def test_mmala_leaves_the_target_invariant(name):
    samples, rates = run_chains(SAMPLERS[name](), jax.random.key(1), 8, 2500, 500, MEAN)
    assert 0.2 < float(rates.mean()) < 0.99
    check_invariance(samples)


@pytest.mark.slow
def test_rmhmc_leaves_the_target_invariant():
    metric = jg.SteinMetric(gaussian_score(), damping=1.0)
    algorithm = jg.sampling.rmhmc(gaussian_logdensity, metric, 0.15, 5)
    samples, rates = run_chains(algorithm, jax.random.key(2), 8, 2500, 200, MEAN)
    assert float(rates.mean()) > 0.5
    check_invariance(samples)


@pytest.mark.slow
def test_position_dependent_metric_matches_the_exact_density():
    """1-D, pi(x) ~ exp(-x^4/4 - x^2/2) with its own Stein metric (strongly position
    dependent): a wrong proposal density (log det, inner product or noise scale) biases
    the chain; the histogram must match the exact density (KS on the thinned chain)."""

    def logdensity(x):
        return -0.25 * x[0] ** 4 - 0.5 * x[0] ** 2

    metric = jg.SteinMetric(jg.scores.from_log_density(logdensity), damping=0.3)
    for full_drift in (False, True):
        algorithm = jg.sampling.mmala(logdensity, metric, 0.6, full_drift=full_drift)

        def one_chain(key):
            state = algorithm.init(jnp.zeros(1))
            return jg.sampling.sample_chain(key, algorithm, state, 6000)

        positions, infos = jax.jit(jax.vmap(one_chain))(jax.random.split(jax.random.key(3), 8))
        samples = np.asarray(positions[:, 500:, 0])
        ess = float(jnp.squeeze(blackjax.diagnostics.effective_sample_size(samples)))
        thin = int(np.ceil(samples.size / ess))
        grid = np.linspace(-5, 5, 20001)
        density = np.exp(-0.25 * grid**4 - 0.5 * grid**2)
        cdf = np.cumsum(density)
        cdf /= cdf[-1]
        p = scipy.stats.kstest(samples[:, ::thin].ravel(), lambda x: np.interp(x, grid, cdf))
        assert p.pvalue > 0.01, (full_drift, p, thin)
        assert 0.3 < float(infos.acceptance_rate.mean()) < 0.99


@pytest.mark.parametrize(
    "metric",
    [
        jg.SteinMetric(jg.scores.gaussian(MEAN, COV), damping=0.5),
        jg.SteinMetric(jg.scores.gaussian(MEAN, COV), damping=0.5, diagonal=True),
        jg.MongeMetric(jg.scores.gaussian(MEAN, COV), alpha=0.7),
    ],
    ids=["stein", "stein-diagonal", "monge"],
)
def test_closed_form_inverse_sqrt_equals_the_cholesky_route(metric):
    x = jnp.array([0.3, -1.2])
    eye = jnp.eye(2)
    closed = jax.vmap(lambda e: metric.inverse_sqrt_apply(x, e), out_axes=1)(eye)
    cholesky = jax.vmap(lambda e: jg.AbstractMetric.inverse_sqrt_apply(metric, x, e), out_axes=1)(
        eye
    )
    inverse = metric.inverse_matrix(x)
    # Both are square roots of the cometric (they differ by a rotation) ...
    np.testing.assert_allclose(closed @ closed.T, inverse, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cholesky @ cholesky.T, inverse, rtol=1e-12, atol=1e-12)
    # ... so the same noise has the same distribution; the closed form is the symmetric one.
    np.testing.assert_allclose(closed, closed.T, atol=1e-12)
    at_zero = metric.inverse_sqrt_apply(MEAN, jnp.array([1.0, 2.0]))  # score 0: no 0/0
    assert np.isfinite(at_zero).all()


@pytest.mark.slow
def test_vmap_over_chains_equals_a_loop():
    algorithm = SAMPLERS["mmala-stein"]()
    keys = jax.random.split(jax.random.key(4), 16)
    starts = jax.random.normal(jax.random.key(5), (16, 2))

    def chain(key, x0):
        return jg.sampling.sample_chain(key, algorithm, algorithm.init(x0), 50)[0]

    batched = jax.jit(jax.vmap(chain))(keys, starts)
    looped = jnp.stack([jax.jit(chain)(k, x) for k, x in zip(keys, starts)])
    np.testing.assert_allclose(batched, looped, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_warmup_reaches_the_target_acceptance():
    metric = jg.SteinMetric(gaussian_score(), damping=1.0)
    keys = jax.random.split(jax.random.key(6), 4)
    result = jax.jit(
        jax.vmap(
            lambda k: jg.sampling.step_size_warmup(
                k,
                lambda eps: jg.sampling.mmala(gaussian_logdensity, metric, eps),
                MEAN,
                num_steps=1500,
                initial_step_size=2.0,
            )
        )
    )(keys)
    assert np.all(np.asarray(result.step_size) < 2.0)
    # the tuned step size gives about the target acceptance on fresh chains
    algorithm = jg.sampling.mmala(gaussian_logdensity, metric, float(result.step_size.mean()))
    _, rates = run_chains(algorithm, jax.random.key(7), 4, 2000, 0, MEAN)
    assert abs(float(rates.mean()) - 0.574) < 0.08


def test_bad_input():
    metric = jg.SteinMetric(gaussian_score())
    for bad in (0.0, -0.1):
        with pytest.raises(ValueError, match="step size must be > 0"):
            jg.sampling.mmala(gaussian_logdensity, metric, bad)
    with pytest.raises(ValueError, match="step size must be > 0"):
        jg.sampling.rmhmc(gaussian_logdensity, metric, 0.0, 3)
    with pytest.raises(ValueError, match="num_steps"):
        jg.sampling.step_size_warmup(
            jax.random.key(0),
            lambda eps: jg.sampling.mmala(gaussian_logdensity, metric, eps),
            MEAN,
            num_steps=0,
        )
    # A start where the chain cannot move: mmala and rmhmc (which before ran 100 steps
    # without moving) refuse it.
    not_pd = jg.MatrixMetric(lambda x: -jnp.eye(2))
    for sampler in (jg.sampling.mmala, partial(jg.sampling.rmhmc, num_integration_steps=3)):
        with pytest.raises(Exception, match="log-density is not finite at the start"):
            sampler(lambda x: jnp.log(x[0]), jg.Euclidean(2), 0.1).init(jnp.array([-1.0, 0.0]))
        with pytest.raises(Exception, match="not positive definite at the start"):
            sampler(gaussian_logdensity, not_pd, 0.1).init(jnp.zeros(2))
    with pytest.raises(ValueError, match="position"):
        jg.sampling.mmala(gaussian_logdensity, metric, 0.1).init(jnp.zeros((2, 2)))
