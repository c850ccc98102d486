import jax
import jax.numpy as jnp
import jaxtyping
import pytest

import jaxgeo as jg

from .helpers import stein_gaussian


@pytest.fixture(autouse=True, params=["typechecked", "unchecked"])
def typechecking(request):
    """Run every test twice: with the runtime type checking that pyproject's `addopts`
    switches on for the tests (jaxtyping + beartype on `jaxgeo`), and without it, which
    is what users get. The library's `ValueError`s must reach the user in both."""
    previous = jaxtyping.config.jaxtyping_disable
    jaxtyping.config.update("jaxtyping_disable", request.param == "unchecked")
    try:
        yield
    finally:
        jaxtyping.config.update("jaxtyping_disable", previous)


def test_endpoints_of_different_dimension():
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        jg.geodesic_bvp(jg.Euclidean(2), jnp.zeros(2), jnp.ones(3))


def test_score_of_wrong_shape():
    metric = jg.SteinMetric(lambda x: x[:1])
    x = jnp.array([1.0, 2.0])
    for call in (
        lambda: metric.matrix(x),
        lambda: metric.inner(x, x, x),
        lambda: metric.solve(x, x),
        lambda: jg.MongeMetric(lambda x: x[:1]).inner(x, x, x),
        lambda: jg.geodesic_bvp(metric, x, 2 * x, num_points=8),
    ):
        with pytest.raises(ValueError, match=r"score returned shape \(1,\)"):
            call()


def test_matrix_metric_not_square():
    metric = jg.MatrixMetric(lambda x: jnp.ones((2, 3)))
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        metric.matrix(jnp.zeros(2))
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        jg.geodesic_bvp(metric, jnp.zeros(2), jnp.ones(2), num_points=8)


def test_matrix_metric_not_symmetric():
    # Before: accepted, and exp_map followed another equation than the quadratic form's.
    metric = jg.MatrixMetric(lambda x: jnp.array([[1.0, 0.5], [0.0, 1.0]], x.dtype))
    with pytest.raises(Exception, match="non-symmetric"):
        metric.matrix(jnp.zeros(2))
    with pytest.raises(Exception, match="non-symmetric"):
        jg.exp_map(metric, jnp.zeros(2), jnp.ones(2))
    # Round-off asymmetry of a product J^T J is accepted.
    jac = jnp.array([[0.1, 0.7], [0.3, 0.2], [1e3, 1.0 / 3]])
    jg.MatrixMetric(lambda x: (jac * (1 + x[0])).T @ (jac / (1 + x[0]))).matrix(jnp.ones(2))


@pytest.mark.parametrize("bad", [jnp.nan, jnp.inf])
@pytest.mark.parametrize("which", ["x0", "x1"])
def test_non_finite_endpoints(bad, which):
    metric = stein_gaussian()
    x0, x1 = jnp.array([-1.0, 0.0]), jnp.array([1.0, 0.5])
    if which == "x0":
        x0 = x0.at[0].set(bad)
    else:
        x1 = x1.at[1].set(bad)
    # A runtime check (`eqx.error_if`): the values are only known inside `jit`.
    with pytest.raises(Exception, match="must be finite.*NaN"):
        jg.geodesic_bvp(metric, x0, x1, num_points=8)


@pytest.mark.parametrize("damping", [0, 0.0, -1.0, jnp.array(-0.5)])
def test_stein_damping_must_be_positive(damping):
    score = jg.scores.gaussian(jnp.zeros(2), jnp.eye(2))
    with pytest.raises(ValueError, match="damping > 0"):
        jg.SteinMetric(score, damping=damping)


def test_traced_non_positive_damping_fails():
    # Under jit the damping is not known at construction: the metric is NaN, so the
    # solve fails (before: success, length 0 and energy -3e157).
    score = jg.scores.gaussian(jnp.zeros(2), jnp.eye(2))
    x0, x1 = jnp.array([-1.0, 0.0]), jnp.array([1.0, 0.5])

    @jax.jit
    def solve(damping):
        return jg.geodesic_bvp(jg.SteinMetric(score, damping), x0, x1, throw=False)

    assert solve(-1.0).result == jg.RESULTS.undefined_endpoint
    assert solve(0.0).result == jg.RESULTS.undefined_endpoint
    assert solve(0.5).result == jg.RESULTS.successful


@pytest.mark.parametrize("num_points", [1, 0, -3])
def test_num_points_too_small(num_points):
    with pytest.raises(ValueError, match="num_points"):
        jg.geodesic_bvp(jg.Euclidean(2), jnp.zeros(2), jnp.ones(2), num_points=num_points)


def test_batched_endpoints_ask_for_vmap():
    with pytest.raises(ValueError, match=r"\(3, 2\).*vmap"):
        jg.geodesic_bvp(jg.Euclidean(2), jnp.zeros((3, 2)), jnp.ones((3, 2)))
    # Metric methods carry jaxtyping shape annotations (the typed core API): under
    # runtime type checking the checker names the offending shape first.
    expected = ValueError if jaxtyping.config.jaxtyping_disable else (ValueError, TypeError)
    with pytest.raises(expected, match=r"\(3, 2\).*vmap|f64\[3,2\]"):
        stein_gaussian().matrix(jnp.zeros((3, 2)))


@pytest.mark.parametrize("shape", [(7, 2), (8, 3), (8,)])
def test_init_of_wrong_shape(shape):
    with pytest.raises(ValueError, match=r"init has shape .*\(8, 2\)"):
        jg.geodesic_bvp(
            jg.Euclidean(2), jnp.zeros(2), jnp.ones(2), num_points=8, init=jnp.zeros(shape)
        )


def test_integer_endpoints():
    with pytest.raises(ValueError, match="floating"):
        jg.geodesic_bvp(jg.Euclidean(2), jnp.zeros(2, int), jnp.ones(2, int))


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision_endpoints(dtype):
    # Before: a crash inside lax.while_loop about its carry types.
    with pytest.raises(ValueError, match="float32 or float64"):
        jg.geodesic_bvp(jg.Euclidean(2), jnp.zeros(2, dtype), jnp.ones(2, dtype))
    with pytest.raises(ValueError, match="float32 or float64"):
        jg.exp_map(jg.Euclidean(2), jnp.zeros(2, dtype), jnp.ones(2, dtype))


def test_euclidean_wrong_dimension():
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        jg.Euclidean(2).inner(jnp.zeros(3), jnp.zeros(3), jnp.zeros(3))
    with pytest.raises(ValueError):
        jg.Euclidean(0)


def test_bad_gaussian():
    with pytest.raises(ValueError, match=r"\(2,\).*\(3, 3\)"):
        jg.scores.gaussian(jnp.zeros(2), jnp.eye(3))
    with pytest.raises(ValueError, match="positive definite"):
        jg.scores.gaussian(jnp.zeros(2), -jnp.eye(2))
    with pytest.raises(ValueError, match="positive definite"):
        jg.scores.gaussian(jnp.zeros(2), jnp.array([[1.0, 0.5], [0.0, 1.0]]))


def test_bad_gmm():
    eyes = jnp.stack([jnp.eye(2)] * 3)
    with pytest.raises(ValueError, match=r"weights \(2,\), means \(3, 2\)"):
        jg.scores.gmm(jnp.ones(2), jnp.zeros((3, 2)), eyes)
    with pytest.raises(ValueError, match=">= 0"):
        jg.scores.gmm(jnp.array([1.0, -1.0, 1.0]), jnp.zeros((3, 2)), eyes)
    with pytest.raises(ValueError, match="weights are all zero"):  # NaN scores before
        jg.scores.gmm(jnp.zeros(3), jnp.zeros((3, 2)), eyes)


def test_log_density_must_be_scalar():
    with pytest.raises(ValueError, match="scalar"):
        jg.scores.from_log_density(lambda x: x)(jnp.zeros(2))


@pytest.mark.parametrize("shape", [(1, 2), (5,)])
def test_curve_of_wrong_shape(shape):
    with pytest.raises(ValueError, match="num_points >= 2"):
        jg.curve_length(jg.Euclidean(2), jnp.zeros(shape))


def test_points_without_coordinates():
    metric = jg.MatrixMetric(lambda x: jnp.eye(x.shape[0], dtype=x.dtype))
    with pytest.raises(ValueError, match="at least one coordinate"):
        jg.geodesic_bvp(metric, jnp.zeros(0), jnp.zeros(0))


def test_ivp_backwards_in_time_has_a_positive_length():
    sol = jg.geodesic_ivp(jg.Euclidean(2), jnp.zeros(2), jnp.array([3.0, 4.0]), t1=-1.0)
    assert sol.result == jg.RESULTS.successful
    assert jnp.allclose(sol.xs[-1], jnp.array([-3.0, -4.0]))
    assert jnp.allclose(sol.length, 5.0) and jnp.allclose(sol.energy, 12.5)


def test_endpoint_outside_the_metric_domain_is_named():
    # sigma = -1 at the end point: before, "A linear solver returned non-finite output".
    metric = jg.FisherRaoMetric(jg.families.Normal())
    inside, outside = jnp.array([0.0, 1.0]), jnp.array([1.0, -1.0])
    sol = jg.log_map(metric, inside, outside, throw=False)
    assert sol.result == jg.RESULTS.undefined_endpoint
    with pytest.raises(Exception, match="not defined at an endpoint"):
        jg.distance(metric, outside, inside)
    sol = jg.geodesic_ivp(metric, outside, jnp.array([0.1, 0.1]), throw=False)
    assert sol.result == jg.RESULTS.undefined_endpoint
