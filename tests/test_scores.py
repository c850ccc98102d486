import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy as jsp
import numpy as np
import pytest

import jaxgeo as jg


_MEAN = jnp.array([0.5, -1.0, 2.0])
_COV = jnp.array([[2.0, 0.3, -0.4], [0.3, 1.0, 0.2], [-0.4, 0.2, 0.7]])

_WEIGHTS = jnp.array([0.2, 0.5, 0.3])
_MEANS = jnp.array([[-2.0, 0.0], [1.0, 1.0], [0.5, -1.5]])
_COVS = jnp.array(
    [
        [[1.0, 0.0], [0.0, 1.0]],
        [[0.5, 0.2], [0.2, 0.8]],
        [[2.0, -0.6], [-0.6, 0.4]],
    ]
)


def _gaussian_log_density(x):
    return jsp.stats.multivariate_normal.logpdf(x, _MEAN, _COV)


def _gmm_log_density(x):
    # Unnormalised weights on purpose: the score must not depend on their sum.
    logs = jnp.stack([jsp.stats.multivariate_normal.logpdf(x, m, c) for m, c in zip(_MEANS, _COVS)])
    return jsp.special.logsumexp(logs, b=_WEIGHTS)


# Test computations run under one `jit` each: op-by-op eager mode compiles every
# primitive separately, which dominates the runtime on CPU.


def test_gaussian(getkey):
    score = jg.scores.gaussian(_MEAN, _COV)
    xs = 2 * jax.random.normal(getkey(), (5, 3))

    @jax.jit
    def compute(xs):
        return dict(
            score=jax.vmap(score)(xs),
            grad=jax.vmap(jax.grad(_gaussian_log_density))(xs),
            closed_form=-jnp.linalg.solve(_COV, (xs - _MEAN[None]).T).T,
            log_prob=jax.vmap(score.log_prob)(xs),
            log_density=jax.vmap(_gaussian_log_density)(xs),
            at_mean=score(_MEAN),
        )

    out = compute(xs)
    assert out["score"].shape == (5, 3)
    np.testing.assert_allclose(out["score"], out["grad"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out["score"], out["closed_form"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out["log_prob"], out["log_density"], rtol=1e-12)
    # The score vanishes at the mean.
    np.testing.assert_allclose(out["at_mean"], 0, atol=1e-15)


def test_gaussian_accepts_numpy():
    score = jg.scores.gaussian(np.array([0.0, 1.0]), np.array([[2.0, 0.0], [0.0, 0.5]]))
    np.testing.assert_allclose(score(jnp.array([1.0, 0.0])), jnp.array([-0.5, 2.0]), rtol=1e-14)


@pytest.mark.parametrize("scale", [1.0, 10.0])
def test_gmm(getkey, scale):
    # `scale` multiplies the weights: the score is invariant to their normalisation.
    score = jg.scores.gmm(scale * _WEIGHTS, _MEANS, _COVS)
    xs = 2 * jax.random.normal(getkey(), (8, 2))

    @eqx.filter_jit
    def compute(score, xs):
        return (
            jax.vmap(score)(xs),
            jax.vmap(jax.grad(_gmm_log_density))(xs),
            jax.vmap(score.log_prob)(xs),
            jax.vmap(_gmm_log_density)(xs),
        )

    s, grad, log_prob, log_density = compute(score, xs)
    np.testing.assert_allclose(s, grad, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(log_prob, log_density - jnp.log(jnp.sum(_WEIGHTS)), rtol=1e-12)


def test_gmm_single_component_is_gaussian(getkey):
    gmm = jg.scores.gmm(jnp.ones(1), _MEAN[None], _COV[None])
    gauss = jg.scores.gaussian(_MEAN, _COV)
    xs = jax.random.normal(getkey(), (4, 3))
    np.testing.assert_allclose(
        eqx.filter_jit(jax.vmap(gmm))(xs), eqx.filter_jit(jax.vmap(gauss))(xs), rtol=1e-12
    )


def test_from_log_density(getkey):
    def log_p(x):
        # Unnormalised, non-Gaussian.
        return -jnp.sum(x**4) / 4 + jnp.sin(x[0]) * x[1]

    score = jg.scores.from_log_density(log_p)
    x = jax.random.normal(getkey(), (2,))
    s = score(x)
    expected = jnp.array([-(x[0] ** 3) + jnp.cos(x[0]) * x[1], -(x[1] ** 3) + jnp.sin(x[0])])
    np.testing.assert_allclose(s, jax.grad(log_p)(x), rtol=1e-14)
    np.testing.assert_allclose(s, expected, rtol=1e-12)


def _all_scores():
    return {
        "gaussian": jg.scores.gaussian(_MEAN[:2], _COV[:2, :2]),
        "gmm": jg.scores.gmm(_WEIGHTS, _MEANS, _COVS),
        "from_log_density": jg.scores.from_log_density(_gmm_log_density),
    }


@pytest.mark.parametrize("name", list(_all_scores()))
def test_vmap_and_jit(name, getkey):
    score = _all_scores()[name]
    xs = jax.random.normal(getkey(), (2, 2))
    # The eager single-point calls are the reference.
    looped = jnp.stack([score(x) for x in xs])
    assert looped.shape == (2, 2)
    np.testing.assert_allclose(eqx.filter_jit(jax.vmap(score))(xs), looped, rtol=1e-12, atol=1e-14)
    # jit with the score's parameters as traced inputs (scores are pytrees).
    jitted = eqx.filter_jit(lambda sc, x: sc(x))
    np.testing.assert_allclose(jitted(score, xs[0]), looped[0], rtol=1e-12, atol=1e-14)


def test_gaussian_score_is_differentiable_in_its_parameters():
    # d/dmean of s(x) = -inv(cov)(x - mean) is inv(cov).
    x = jnp.array([0.3, 0.1, -0.2])
    jac = jax.jacfwd(lambda m: jg.scores.gaussian(m, _COV)(x))(_MEAN)
    np.testing.assert_allclose(jac, jnp.linalg.inv(_COV), rtol=1e-10)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_dtype_preserved(dtype):
    x = jnp.array([0.3, -0.4], dtype)
    gauss = jg.scores.gaussian(_MEAN[:2].astype(dtype), _COV[:2, :2].astype(dtype))
    gmm = jg.scores.gmm(_WEIGHTS.astype(dtype), _MEANS.astype(dtype), _COVS.astype(dtype))
    out = eqx.filter_jit(lambda g, m, x: (g(x), m(x), g.log_prob(x), m.log_prob(x)))(gauss, gmm, x)
    assert [o.dtype for o in out] == [dtype] * 4
