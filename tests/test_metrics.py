import equinox as eqx
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pytest
from hypothesis import given, settings

import jaxgeo as jg

from .helpers import tree_allclose


_settings = settings(max_examples=25, deadline=None)
# A few sizes from 1 to 64. Every test computation is one `filter_jit` call (op-by-op
# eager mode compiles each primitive separately, which is slow on CPU); hyperparameters
# are arrays and the affine score a `Partial`, so examples of one size share a compile.
# For the same reason each test uses one kind of score: a Gaussian score (a true
# gradient) or an affine map with a non-symmetric Jacobian (like a learned score).
_dims = st.sampled_from([1, 3, 64])
_seeds = st.integers(0, 2**32 - 1)


def _random_spd(rng: np.random.Generator, dim: int) -> np.ndarray:
    a = rng.standard_normal((dim, dim))
    return a @ a.T / dim + 0.5 * np.eye(dim)


def _affine(a, b, x):
    return a @ x + b


def _random_score(kind: str, rng: np.random.Generator, dim: int):
    if kind == "gaussian":
        return jg.scores.gaussian(rng.standard_normal(dim), _random_spd(rng, dim))
    a = jnp.asarray(rng.standard_normal((dim, dim)))
    b = jnp.asarray(rng.standard_normal(dim))
    return jtu.Partial(_affine, a, b)


def _random_vectors(rng: np.random.Generator, dim: int):
    # x far from the mean sometimes, so that |s| ranges from small to large.
    x = jnp.asarray(rng.standard_normal(dim) * rng.choice([0.1, 1.0, 10.0]))
    return (x,) + tuple(jnp.asarray(rng.standard_normal(dim)) for _ in range(3))


@eqx.filter_jit
def _fast_and_default(metric, x, u, v, w):
    """Each closed-form override and the default derived from `metric.matrix`."""
    default = jg.AbstractMetric
    return dict(
        matrix=metric.matrix(x),
        inner=(metric.inner(x, u, v), default.inner(metric, x, u, v)),
        sq_norm=(metric.sq_norm(x, u), default.inner(metric, x, u, u)),
        norm=(metric.norm(x, u), default.norm(metric, x, u)),
        solve=(metric.solve(x, w), default.solve(metric, x, w)),
        inverse_matrix=(metric.inverse_matrix(x), default.inverse_matrix(metric, x)),
        log_det=(metric.log_det(x), default.log_det(metric, x)),
    )


def _assert_fast_equals_default(out, u, v, w):
    """`out` from `_fast_and_default`; tolerances follow the size of the metric."""
    scale = float(jnp.max(jnp.abs(out["matrix"])))
    inv_scale = float(jnp.max(jnp.abs(out["inverse_matrix"][1])))
    uv = float(jnp.linalg.norm(u) * jnp.linalg.norm(v))
    np.testing.assert_allclose(*out["inner"], rtol=1e-9, atol=1e-11 * scale * uv)
    uu = float(jnp.dot(u, u))
    np.testing.assert_allclose(*out["sq_norm"], rtol=1e-9, atol=1e-11 * scale * uu)
    np.testing.assert_allclose(*out["norm"], rtol=1e-9, atol=1e-11 * np.sqrt(scale))
    atol_solve = 1e-10 * inv_scale * float(jnp.linalg.norm(w))
    np.testing.assert_allclose(*out["solve"], rtol=1e-8, atol=atol_solve)
    np.testing.assert_allclose(*out["inverse_matrix"], rtol=1e-8, atol=1e-10 * inv_scale)
    np.testing.assert_allclose(*out["log_det"], rtol=1e-9, atol=1e-9)
    # The inverse is an inverse.
    dim = u.shape[0]
    np.testing.assert_allclose(
        out["matrix"] @ out["inverse_matrix"][0], np.eye(dim), atol=1e-9 * scale * inv_scale
    )


@_settings
@given(dim=_dims, damping=st.floats(1e-2, 10.0), seed=_seeds)
def test_stein_sherman_morrison(dim, damping, seed):
    rng = np.random.default_rng(seed)
    score = _random_score("gaussian", rng, dim)
    metric = jg.SteinMetric(score, damping=jnp.asarray(damping))
    x, u, v, w = _random_vectors(rng, dim)
    out = _fast_and_default(metric, x, u, v, w)
    s = np.asarray(score(x))
    inverse = np.outer(s, s) + damping * np.eye(dim)
    np.testing.assert_allclose(
        out["matrix"], np.linalg.inv(inverse), rtol=1e-8, atol=1e-10 / damping
    )
    np.testing.assert_allclose(out["inverse_matrix"][0], inverse, rtol=1e-12)
    np.testing.assert_allclose(out["log_det"][0], -np.linalg.slogdet(inverse)[1], rtol=1e-10)
    _assert_fast_equals_default(out, u, v, w)


@_settings
@given(dim=_dims, damping=st.floats(1e-2, 10.0), seed=_seeds)
def test_stein_diagonal(dim, damping, seed):
    rng = np.random.default_rng(seed)
    score = _random_score("affine", rng, dim)
    metric = jg.SteinMetric(score, damping=jnp.asarray(damping), diagonal=True)
    x, u, v, w = _random_vectors(rng, dim)
    out = _fast_and_default(metric, x, u, v, w)
    s = np.asarray(score(x))
    diag = (1 - s**2 / (damping + np.dot(s, s))) / damping
    np.testing.assert_allclose(out["matrix"], np.diag(diag), rtol=1e-10, atol=1e-14 / damping)
    # It is the diagonal of the full Stein metric.
    full = jg.SteinMetric(score, damping=jnp.asarray(damping))
    full_matrix = _fast_and_default(full, x, u, v, w)["matrix"]
    np.testing.assert_allclose(np.diagonal(out["matrix"]), np.diagonal(full_matrix), rtol=1e-10)
    _assert_fast_equals_default(out, u, v, w)


@_settings
@given(dim=_dims, alpha=st.floats(1e-2, 10.0), seed=_seeds)
def test_monge(dim, alpha, seed):
    rng = np.random.default_rng(seed)
    score = _random_score("gaussian", rng, dim)
    metric = jg.MongeMetric(score, alpha=jnp.asarray(alpha))
    x, u, v, w = _random_vectors(rng, dim)
    out = _fast_and_default(metric, x, u, v, w)
    s = np.asarray(score(x))
    expected = np.eye(dim) + alpha**2 * np.outer(s, s)
    np.testing.assert_allclose(out["matrix"], expected, rtol=1e-12)
    np.testing.assert_allclose(out["log_det"][0], np.linalg.slogdet(expected)[1], rtol=1e-9)
    _assert_fast_equals_default(out, u, v, w)


@_settings
@given(dim=_dims, seed=_seeds)
def test_euclidean(dim, seed):
    rng = np.random.default_rng(seed)
    metric = jg.Euclidean(dim)
    x, u, v, w = _random_vectors(rng, dim)
    out = _fast_and_default(metric, x, u, v, w)
    np.testing.assert_array_equal(out["matrix"], np.eye(dim))
    np.testing.assert_allclose(out["inner"][0], np.dot(u, v), rtol=1e-12, atol=1e-12 * dim)
    np.testing.assert_array_equal(out["solve"][0], w)
    assert out["log_det"][0] == 0
    _assert_fast_equals_default(out, u, v, w)


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


@eqx.filter_jit
def _ensemble_quantities(ensemble, members, x, u, v):
    return dict(
        matrix=ensemble.matrix(x),
        inner=ensemble.inner(x, u, v),
        sq_norm=ensemble.sq_norm(x, u),
        solve=ensemble.solve(x, u),
        log_det=ensemble.log_det(x),
        member_matrices=jnp.stack([m.matrix(x) for m in members]),
        member_inners=jnp.stack([m.inner(x, u, v) for m in members]),
        members_back=jnp.stack([ensemble.member(i).matrix(x) for i in range(len(members))]),
    )


@pytest.mark.parametrize("build", [_ensemble_from_list, _ensemble_from_vmap])
def test_ensemble(build, getkey):
    ensemble = build()
    members = _members()
    assert ensemble.num_members == 4
    x, u, v = (jax.random.normal(getkey(), (2,)) for _ in range(3))
    out = _ensemble_quantities(ensemble, members, x, u, v)
    matrices = out["member_matrices"]
    mean_matrix = jnp.mean(matrices, axis=0)
    np.testing.assert_allclose(out["matrix"], mean_matrix, rtol=1e-12)
    # The members really differ, so the mean is not trivially one of them.
    assert float(jnp.max(jnp.abs(matrices[1] - matrices[0]))) > 0.01
    np.testing.assert_allclose(out["inner"], jnp.mean(out["member_inners"]), rtol=1e-12)
    np.testing.assert_allclose(out["inner"], u @ mean_matrix @ v, rtol=1e-10)
    np.testing.assert_allclose(out["sq_norm"], u @ mean_matrix @ u, rtol=1e-10)
    np.testing.assert_allclose(out["solve"], jnp.linalg.solve(mean_matrix, u), rtol=1e-9)
    np.testing.assert_allclose(out["log_det"], jnp.linalg.slogdet(mean_matrix)[1], rtol=1e-10)
    # member(i) gives back member i.
    np.testing.assert_allclose(out["members_back"], matrices, rtol=1e-13)
    for i, member in enumerate(members):
        assert tree_allclose(ensemble.member(i), member, rtol=1e-13, atol=1e-15)


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
        lambda: [
            jg.SteinMetric(jg.scores.gaussian(_MEAN, _COVS[0]), damping=d) for d in (1.0, 2.0)
        ],
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
        # One metric without an ensemble axis.
        lambda: jg.SteinMetric(jg.scores.gaussian(_MEAN, _COVS[0])),
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
    out = eqx.filter_jit(_evaluate)(metric, x, u, v)  # (eager is tested below)
    for key, value in out.items():
        assert value.dtype == dtype, (key, value.dtype)
    # float32 agrees with float64.
    if dtype == jnp.float32:
        out64 = eqx.filter_jit(_evaluate)(
            _metrics(jnp.float64)[name], *(a.astype(jnp.float64) for a in (x, u, v))
        )
        for key in out:
            np.testing.assert_allclose(out[key], out64[key], rtol=1e-5, atol=1e-5, err_msg=key)


@pytest.mark.parametrize("name", list(_metrics(jnp.float64)))
def test_jit_equals_eager(name):
    metric = _metrics(jnp.float64)[name]
    x, u, v = jnp.array([0.4, 1.3]), jnp.array([1.0, -2.0]), jnp.array([0.5, 0.25])
    eager = _evaluate(metric, x, u, v)
    jitted = eqx.filter_jit(_evaluate)(metric, x, u, v)
    for key in eager:
        assert tree_allclose(jitted[key], eager[key], rtol=1e-12, atol=1e-14), key


def test_vmap_over_points(getkey):
    metric = _metrics(jnp.float64)["stein"]
    xs = jax.random.normal(getkey(), (5, 2))
    us = jax.random.normal(getkey(), (5, 2))
    batched = jax.vmap(metric.inner)(xs, us, us)
    looped = jnp.array([metric.inner(x, u, u) for x, u in zip(xs, us)])
    np.testing.assert_allclose(batched, looped, rtol=1e-13)


def test_integer_hyperparameters_accepted():
    # `damping=1` / `alpha=2` are the natural spelling; under PEP 484 an int is a valid
    # `float`. They must mean the same as the floats.
    score = jg.scores.gaussian(_MEAN, _COVS[1])
    x, u = jnp.array([1.0, -0.5]), jnp.array([0.2, 0.7])
    stein = jg.SteinMetric(score, damping=2)
    monge = jg.MongeMetric(score, alpha=2)
    np.testing.assert_allclose(
        stein.inner(x, u, u), jg.SteinMetric(score, damping=2.0).inner(x, u, u), rtol=1e-15
    )
    np.testing.assert_allclose(
        monge.inner(x, u, u), jg.MongeMetric(score, alpha=2.0).inner(x, u, u), rtol=1e-15
    )


@pytest.mark.parametrize("method", ["norm", "midpoint_sq_norm"])
def test_final_methods_cannot_be_overridden(method):
    with pytest.raises(TypeError, match=f"overrides {method}, which is final"):
        type(
            "Custom",
            (jg.AbstractMetric,),
            {"matrix": lambda self, x: jnp.eye(2), method: lambda self, a, b: 0.0},
        )
