"""ScoreJacobianMetric, Flax interop and the data module."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgeo as jg
from jaxgeo.scores._flax import LinenScore


@pytest.mark.slow
def test_score_jacobian_metric_closed_form_and_matrix_free():
    cov = jnp.array([[1.0, 0.8], [0.8, 1.0]])
    precision = jnp.linalg.inv(cov)
    metric = jg.ScoreJacobianMetric(jg.scores.gaussian(jnp.zeros(2), cov), damping=0.5)
    x, u, v = jnp.array([0.3, -1.0]), jnp.array([1.0, 2.0]), jnp.array([-0.5, 0.25])
    expected = 0.5 * jnp.eye(2) + precision.T @ precision  # J_s = -Sigma^-1
    np.testing.assert_allclose(metric.matrix(x), expected, rtol=1e-12)
    np.testing.assert_allclose(metric.inner(x, u, v), u @ expected @ v, rtol=1e-12)
    np.testing.assert_allclose(metric.sq_norm(x, u), u @ expected @ u, rtol=1e-12)
    # Conjugate gradients on lambda I + J^T J against the dense solve, for a nonlinear score.
    score = jg.scores.gmm(
        jnp.array([0.5, 0.5]),
        jnp.array([[-1.0, 0.0, 0.5], [1.0, 0.5, 0.0]]),
        jnp.stack([jnp.eye(3), 0.5 * jnp.eye(3) + 0.2]),
    )
    dense = jg.ScoreJacobianMetric(score, damping=0.1)
    cg = jg.ScoreJacobianMetric(score, damping=0.1, dense_max_dim=0)
    y, w = jnp.array([0.2, -0.4, 0.9]), jnp.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(cg.solve(y, w), jnp.linalg.solve(dense.matrix(y), w), rtol=1e-8)
    with pytest.raises(ValueError, match="damping"):
        jg.ScoreJacobianMetric(score, damping=0.0)


@pytest.mark.slow
def test_flax_nnx_and_linen_scores():
    from flax import linen, nnx

    class NNXMLP(nnx.Module):
        def __init__(self, rngs):
            # float64 parameters for float64 inputs: Flax defaults to float32, which
            # strict dtype promotion rejects.
            self.hidden = nnx.Linear(2, 16, param_dtype=jnp.float64, rngs=rngs)
            self.out = nnx.Linear(16, 2, param_dtype=jnp.float64, rngs=rngs)

        def __call__(self, x):
            return self.out(jnp.tanh(self.hidden(x)))

    class LinenMLP(linen.Module):
        @linen.compact
        def __call__(self, x):
            hidden = linen.Dense(16, param_dtype=jnp.float64)
            return linen.Dense(2, param_dtype=jnp.float64)(jnp.tanh(hidden(x)))

    x0, x1 = jnp.array([-1.0, 0.5]), jnp.array([1.0, -0.5])
    nnx_model = NNXMLP(nnx.Rngs(0))
    linen_model = LinenMLP()
    variables = linen_model.init(jax.random.key(0), x0)
    for score, direct in [
        (jg.scores.from_flax(nnx_model), nnx_model),
        (jg.scores.from_flax(linen_model, variables), lambda x: linen_model.apply(variables, x)),
    ]:
        np.testing.assert_allclose(eqx.filter_jit(score)(x0), direct(x0), rtol=1e-12)
        metric = jg.SteinMetric(score)
        sol = jg.geodesic_bvp(metric, x0, x1, num_points=16)
        assert sol.result == jg.RESULTS.successful
        if isinstance(score, LinenScore):
            continue
        # Gradients reach the Flax parameters.
        grads = jax.grad(lambda m: jg.geodesic_bvp(m, x0, x1, num_points=16).length)(metric)
        leaves = jax.tree_util.tree_leaves(grads)
        assert leaves and all(np.all(np.isfinite(leaf)) for leaf in leaves)
        assert any(float(jnp.max(jnp.abs(leaf))) > 0 for leaf in leaves)
    with pytest.raises(ValueError, match="variables"):
        jg.scores.from_flax(linen_model)
    with pytest.raises(TypeError, match="flax"):
        jg.scores.from_flax(lambda x: x)


def test_data_sets():
    for make in (
        jg.data.part2_gaussian,
        jg.data.gaussian_mixture,
        jg.data.two_moons,
        jg.data.circles,
        jg.data.spiral,
    ):
        a, b = make(300, seed=1), make(300, seed=1)
        assert a.shape == (300, 2) and a.dtype == np.float64
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, make(300, seed=2))
    samples = jg.data.part2_gaussian(20_000)
    np.testing.assert_allclose(np.cov(samples.T), jg.data.PART2_COVARIANCE, atol=0.05)
    np.testing.assert_allclose(jg.data.part2_score()(jnp.array([1.0, 0.0]))[0], -1 / 0.36)
    mixture = jg.data.gaussian_mixture(20_000)
    np.testing.assert_allclose(
        mixture.mean(0), jg.data.MIXTURE_WEIGHTS @ jg.data.MIXTURE_MEANS, atol=0.05
    )
    images, labels = jg.data.digits()
    assert images.shape == (1797, 64) and labels.shape == (1797,)
    assert images.min() == 0.0 and images.max() == 1.0
    with pytest.raises(ValueError, match="positive integer"):
        jg.data.two_moons(0)
