import equinox as eqx
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

import jaxgeo as jg

from .helpers import tree_allclose


_settings = settings(max_examples=25, deadline=None)
# A few sizes from 1 to 64 (each new size recompiles every operation).
_dims = st.sampled_from([1, 2, 3, 10, 64])


def _random_spd(rng: np.random.Generator, dim: int) -> np.ndarray:
    a = rng.standard_normal((dim, dim))
    return a @ a.T / dim + 0.5 * np.eye(dim)


def _random_score(kind: str, rng: np.random.Generator, dim: int):
    if kind == "gaussian":
        return jg.scores.gaussian(rng.standard_normal(dim), _random_spd(rng, dim))
    a = jnp.asarray(rng.standard_normal((dim, dim)))
    b = jnp.asarray(rng.standard_normal(dim))
    return lambda x: a @ x + b


def _random_point_and_tangents(rng: np.random.Generator, dim: int):
    x, u, v, w = (jnp.asarray(rng.standard_normal(dim)) for _ in range(4))
    return x, u, v, w


def _assert_fast_equals_default(metric, x, u, v, w, *, scale):
    """Every closed-form override equals the default derived from `metric.matrix`.

    `scale` is the size of the metric's largest eigenvalue, so that absolute
    tolerances follow the magnitude of the quantities compared."""
    default = jg.AbstractMetric
    uv = float(jnp.linalg.norm(u) * jnp.linalg.norm(v))
    np.testing.assert_allclose(
        metric.inner(x, u, v), default.inner(metric, x, u, v), rtol=1e-9, atol=1e-11 * scale * uv
    )
    np.testing.assert_allclose(
        metric.norm(x, u), default.norm(metric, x, u), rtol=1e-9, atol=1e-11
    )
    inverse = default.inverse_matrix(metric, x)
    inv_scale = float(jnp.max(jnp.abs(inverse)))
    np.testing.assert_allclose(
        metric.solve(x, w),
        default.solve(metric, x, w),
        rtol=1e-8,
        atol=1e-10 * inv_scale * float(jnp.linalg.norm(w)),
    )
    np.testing.assert_allclose(
        metric.inverse_matrix(x), inverse, rtol=1e-8, atol=1e-10 * inv_scale
    )
    np.testing.assert_allclose(metric.log_det(x), default.log_det(metric, x), rtol=1e-9, atol=1e-9)
    # The inverse is an inverse.
    np.testing.assert_allclose(
        metric.matrix(x) @ metric.inverse_matrix(x), jnp.eye(x.shape[0]), atol=1e-8
    )


@_settings
@given(
    dim=_dims,
    damping=st.floats(1e-2, 10.0),
    seed=st.integers(0, 2**32 - 1),
    kind=st.sampled_from(["gaussian", "affine"]),
)
def test_stein_sherman_morrison(dim, damping, seed, kind):
    rng = np.random.default_rng(seed)
    score = _random_score(kind, rng, dim)
    metric = jg.SteinMetric(score, damping=damping)
    x, u, v, w = _random_point_and_tangents(rng, dim)
    s = score(x)
    expected = jnp.linalg.inv(jnp.outer(s, s) + damping * jnp.eye(dim))
    np.testing.assert_allclose(metric.matrix(x), expected, rtol=1e-8, atol=1e-10 / damping)
    np.testing.assert_allclose(metric.inverse_matrix(x), jnp.outer(s, s) + damping * jnp.eye(dim))
    np.testing.assert_allclose(
        metric.log_det(x), -jnp.linalg.slogdet(jnp.outer(s, s) + damping * jnp.eye(dim))[1]
    )
    _assert_fast_equals_default(metric, x, u, v, w, scale=1 / damping)


@_settings
@given(
    dim=_dims,
    damping=st.floats(1e-2, 10.0),
    seed=st.integers(0, 2**32 - 1),
    kind=st.sampled_from(["gaussian", "affine"]),
)
def test_stein_diagonal(dim, damping, seed, kind):
    rng = np.random.default_rng(seed)
    score = _random_score(kind, rng, dim)
    metric = jg.SteinMetric(score, damping=damping, diagonal=True)
    x, u, v, w = _random_point_and_tangents(rng, dim)
    s = score(x)
    diag = (1 - s**2 / (damping + jnp.dot(s, s))) / damping
    np.testing.assert_allclose(metric.matrix(x), jnp.diag(diag), rtol=1e-10, atol=1e-14 / damping)
    # The diagonal of the full Stein metric.
    full = jg.SteinMetric(score, damping=damping)
    np.testing.assert_allclose(jnp.diagonal(metric.matrix(x)), jnp.diagonal(full.matrix(x)))
    _assert_fast_equals_default(metric, x, u, v, w, scale=1 / damping)


@_settings
@given(
    dim=_dims,
    alpha=st.floats(1e-2, 10.0),
    seed=st.integers(0, 2**32 - 1),
    kind=st.sampled_from(["gaussian", "affine"]),
)
def test_monge(dim, alpha, seed, kind):
    rng = np.random.default_rng(seed)
    score = _random_score(kind, rng, dim)
    metric = jg.MongeMetric(score, alpha=alpha)
    x, u, v, w = _random_point_and_tangents(rng, dim)
    s = score(x)
    expected = jnp.eye(dim) + alpha**2 * jnp.outer(s, s)
    np.testing.assert_allclose(metric.matrix(x), expected, rtol=1e-12)
    np.testing.assert_allclose(metric.log_det(x), jnp.linalg.slogdet(expected)[1], rtol=1e-9)
    _assert_fast_equals_default(metric, x, u, v, w, scale=float(1 + alpha**2 * jnp.dot(s, s)))


@_settings
@given(dim=_dims, seed=st.integers(0, 2**32 - 1))
def test_euclidean(dim, seed):
    rng = np.random.default_rng(seed)
    metric = jg.Euclidean(dim)
    x, u, v, w = _random_point_and_tangents(rng, dim)
    np.testing.assert_array_equal(metric.matrix(x), jnp.eye(dim))
    np.testing.assert_allclose(metric.inner(x, u, v), jnp.dot(u, v), rtol=1e-14)
    np.testing.assert_array_equal(metric.solve(x, w), w)
    assert metric.log_det(x) == 0
    _assert_fast_equals_default(metric, x, u, v, w, scale=1.0)


def test_stein_metric_shrinks_along_score():
    # G s = s / (lam + |s|^2): moving along the score is cheap; orthogonal to it costs 1/lam.
    score = jg.scores.gaussian(jnp.zeros(3), jnp.diag(jnp.array([1.0, 2.0, 0.5])))
    metric = jg.SteinMetric(score, damping=0.5)
    x = jnp.array([1.0, -2.0, 0.3])
    s = score(x)
    np.testing.assert_allclose(metric.matrix(x) @ s, s / (0.5 + jnp.dot(s, s)), rtol=1e-12)
    orth = jnp.cross(s, jnp.array([0.0, 0.0, 1.0]))
    np.testing.assert_allclose(metric.inner(x, orth, orth), jnp.dot(orth, orth) / 0.5, rtol=1e-12)


# --- EnsembleMetric --------------------------------------------------------------------

_MEAN = jnp.array([0.3, -0.2])
_COVS = jnp.array(
    [
        [[1.0, 0.0], [0.0, 1.0]],
        [[1.0, 0.8], [0.8, 1.0]],
        [[2.0, 0.0], [0.0, 0.5]],
        [[1.5, -0.3], [-0.3, 0.7]],
    ]
)


def _members():
    return [jg.SteinMetric(jg.scores.gaussian(_MEAN, cov)) for cov in _COVS]


def _ensemble_from_list():
    return jg.EnsembleMetric(_members())


def _ensemble_from_vmap():
    stacked = eqx.filter_vmap(lambda c: jg.SteinMetric(jg.scores.gaussian(_MEAN, c)))(_COVS)
    return jg.EnsembleMetric(stacked)


@pytest.mark.parametrize("build", [_ensemble_from_list, _ensemble_from_vmap])
def test_ensemble(build, getkey):
    ensemble = build()
    members = _members()
    assert ensemble.num_members == 4
    x, u, v = (jax.random.normal(getkey(), (2,)) for _ in range(3))
    matrices = jnp.stack([m.matrix(x) for m in members])
    mean_matrix = jnp.mean(matrices, axis=0)
    np.testing.assert_allclose(ensemble.matrix(x), mean_matrix, rtol=1e-12)
    # The members really differ, so the mean is not trivially one of them.
    assert float(jnp.max(jnp.abs(matrices[1] - matrices[0]))) > 0.1
    inners = jnp.array([m.inner(x, u, v) for m in members])
    np.testing.assert_allclose(ensemble.inner(x, u, v), jnp.mean(inners), rtol=1e-12)
    np.testing.assert_allclose(ensemble.inner(x, u, v), u @ mean_matrix @ v, rtol=1e-10)
    np.testing.assert_allclose(
        ensemble.solve(x, u), jnp.linalg.solve(mean_matrix, u), rtol=1e-9, atol=1e-12
    )
    np.testing.assert_allclose(
        ensemble.log_det(x), jnp.linalg.slogdet(mean_matrix)[1], rtol=1e-10, atol=1e-12
    )
    for i, member in enumerate(members):
        assert tree_allclose(ensemble.member(i), member, rtol=0, atol=0)
        np.testing.assert_allclose(ensemble.member(i).matrix(x), member.matrix(x), rtol=1e-14)


def test_ensemble_per_member_damping():
    score = jg.scores.gaussian(_MEAN, _COVS[1])
    dampings = [0.1, 1.0, 3.0]
    members = [jg.SteinMetric(score, damping=jnp.array(d)) for d in dampings]
    ensemble = jg.EnsembleMetric(members)
    x = jnp.array([1.0, -0.5])
    expected = jnp.mean(jnp.stack([m.matrix(x) for m in members]), axis=0)
    np.testing.assert_allclose(ensemble.matrix(x), expected, rtol=1e-12)
    np.testing.assert_allclose(ensemble.member(2).damping, 3.0)


@pytest.mark.parametrize(
    "members",
    [
        # A Python-float field that differs between members.
        lambda: [jg.SteinMetric(jg.scores.gaussian(_MEAN, _COVS[0]), damping=d) for d in (1, 2)],
        # Different metric classes.
        lambda: [
            jg.SteinMetric(jg.scores.gaussian(_MEAN, _COVS[0])),
            jg.MongeMetric(jg.scores.gaussian(_MEAN, _COVS[0])),
        ],
        # Different static configuration.
        lambda: [
            jg.SteinMetric(jg.scores.gaussian(_MEAN, _COVS[0])),
            jg.SteinMetric(jg.scores.gaussian(_MEAN, _COVS[0]), diagonal=True),
        ],
        # Different dimensions.
        lambda: [
            jg.SteinMetric(jg.scores.gaussian(_MEAN, _COVS[0])),
            jg.SteinMetric(jg.scores.gaussian(jnp.zeros(3), jnp.eye(3))),
        ],
        # No members.
        lambda: [],
    ],
)
def test_ensemble_mismatched_members(members):
    with pytest.raises(ValueError):
        jg.EnsembleMetric(members())


# --- dtypes and jit -------------------------------------------------------------------


def _metrics(dtype):
    mean = jnp.array([0.3, -0.2], dtype)
    cov = jnp.array([[1.0, 0.8], [0.8, 1.0]], dtype)
    score = jg.scores.gaussian(mean, cov)
    return {
        "euclidean": jg.Euclidean(2),
        "stein": jg.SteinMetric(score, damping=0.5),
        "stein_diagonal": jg.SteinMetric(score, damping=0.5, diagonal=True),
        "monge": jg.MongeMetric(score, alpha=2.0),
        # Derived defaults (lineax Cholesky solve, Cholesky log-det).
        "matrix": jg.MatrixMetric(lambda x: jnp.eye(2, dtype=x.dtype) / x[1] ** 2),
        "ensemble": jg.EnsembleMetric(
            [jg.SteinMetric(jg.scores.gaussian(mean, c.astype(dtype))) for c in _COVS]
        ),
    }


def _evaluate(metric, x, u, v):
    return dict(
        matrix=metric.matrix(x),
        inner=metric.inner(x, u, v),
        norm=metric.norm(x, u),
        solve=metric.solve(x, u),
        inverse_matrix=metric.inverse_matrix(x),
        log_det=metric.log_det(x),
    )


@pytest.mark.parametrize("name", list(_metrics(jnp.float64)))
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_dtype_preserved(name, dtype):
    metric = _metrics(dtype)[name]
    x = jnp.array([0.4, 1.3], dtype)
    u = jnp.array([1.0, -2.0], dtype)
    v = jnp.array([0.5, 0.25], dtype)
    out = _evaluate(metric, x, u, v)
    for key, value in out.items():
        assert value.dtype == dtype, (key, value.dtype)
    # float32 agrees with float64.
    if dtype == jnp.float32:
        out64 = _evaluate(_metrics(jnp.float64)[name], *(a.astype(jnp.float64) for a in (x, u, v)))
        for key in out:
            np.testing.assert_allclose(out[key], out64[key], rtol=1e-5, atol=1e-5, err_msg=key)


@pytest.mark.parametrize("name", list(_metrics(jnp.float64)))
def test_jit_equals_eager(name):
    metric = _metrics(jnp.float64)[name]
    x, u, v = jnp.array([0.4, 1.3]), jnp.array([1.0, -2.0]), jnp.array([0.5, 0.25])
    eager = _evaluate(metric, x, u, v)
    jitted = eqx.filter_jit(_evaluate)(metric, x, u, v)
    assert tree_allclose(jitted, eager, rtol=1e-12, atol=1e-14)


def test_vmap_over_points(getkey):
    metric = _metrics(jnp.float64)["stein"]
    xs = jax.random.normal(getkey(), (5, 2))
    us = jax.random.normal(getkey(), (5, 2))
    batched = jax.vmap(metric.inner)(xs, us, us)
    looped = jnp.array([metric.inner(x, u, u) for x, u in zip(xs, us)])
    np.testing.assert_allclose(batched, looped, rtol=1e-13)
