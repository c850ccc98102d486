"""Dense solves of small systems (`jaxgeo._linalg`): values against NumPy, derivatives
against LAPACK's, and no batched LAPACK call on the CPU in the library's programs — on
jaxlib 0.10 several independent batched LAPACK calls in one program can freeze
XLA:CPU's thread pool for good (issue 30). The freezes themselves are slow tests run in
a subprocess with a timeout."""

import collections
import re
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgeo as jg
from jaxgeo._linalg import cho_solve, cholesky, solve, solve_triangular, spd_solve


def _spd(rng, dim):
    m = rng.normal(size=(dim, dim))
    return jnp.asarray(m @ m.T + dim * np.eye(dim))


@pytest.mark.parametrize("dim", [1, 3, 4, 5, 9])
def test_dense_solves_match_numpy(dim):
    rng = np.random.default_rng(dim)
    a, g = _spd(rng, dim), jnp.asarray(rng.normal(size=(dim, dim)))
    b, bs = jnp.asarray(rng.normal(size=dim)), jnp.asarray(rng.normal(size=(dim, 3)))
    low = jnp.asarray(np.linalg.cholesky(a))
    np.testing.assert_allclose(cholesky(a), low, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cho_solve(low, bs), np.linalg.solve(a, bs), rtol=1e-10)
    np.testing.assert_allclose(spd_solve(a, b), np.linalg.solve(a, b), rtol=1e-10)
    np.testing.assert_allclose(solve(g, bs), np.linalg.solve(g, bs), rtol=1e-8)
    upper = jnp.triu(g) + dim * jnp.eye(dim)
    np.testing.assert_allclose(
        solve_triangular(upper, b, lower=False), np.linalg.solve(upper, b), rtol=1e-10
    )
    batched = jax.jit(jax.vmap(solve))(jnp.stack([g, g.T]), jnp.stack([b, b]))
    np.testing.assert_allclose(batched[1], np.linalg.solve(g.T, b), rtol=1e-8)


def test_dense_solves_pivot_and_flag_indefinite():
    permutation = jnp.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])  # zero diagonal
    b = jnp.arange(3.0)
    np.testing.assert_allclose(solve(permutation, b), permutation.T @ b)
    assert np.isnan(jnp.diagonal(cholesky(-jnp.eye(6)))).all()
    assert np.isnan(spd_solve(jnp.diag(jnp.array([1.0, -1.0])), jnp.ones(2))).any()


@pytest.mark.parametrize("dim", [2, 6])
def test_dense_solve_derivatives_match_lapack(dim):
    rng = np.random.default_rng(10 + dim)
    a, b = _spd(rng, dim), jnp.asarray(rng.normal(size=dim))
    g = jnp.asarray(rng.normal(size=(dim, dim))) + dim * jnp.eye(dim)

    def loss(fn):
        return lambda a, b: jnp.sum(jnp.sin(fn(a, b)))

    for ours, theirs in [(spd_solve, jnp.linalg.solve), (solve, jnp.linalg.solve)]:
        matrix = a if ours is spd_solve else g
        for derivative in (jax.grad, jax.jacfwd):
            got = derivative(loss(ours), (0, 1))(matrix, b)
            want = derivative(loss(theirs), (0, 1))(matrix, b)
            for x, y in zip(got, want):
                np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12)
    log_det = lambda a: 2 * jnp.sum(jnp.log(jnp.diagonal(cholesky(a))))  # noqa: E731
    np.testing.assert_allclose(jax.grad(log_det)(a), np.linalg.inv(a), rtol=1e-9)


def _lapack_calls(fn, *args) -> collections.Counter:
    text = jax.jit(fn).lower(*args).as_text()
    return collections.Counter(re.findall(r"lapack_[a-z]+", text))


@pytest.fixture(scope="module")
def score_6d():
    return jg.nn.MLPScore(6, width=16, depth=2, key=jax.random.key(0))


def test_batched_solves_build_no_lapack_call_on_cpu(score_6d):
    """The programs behind the freezes of issue 30 (a score-Jacobian metric's distance
    and log map, a pullback's batched log maps) hold no LAPACK call."""
    xs = jax.random.normal(jax.random.key(1), (2, 6))
    jacobian_metric = jg.ScoreJacobianMetric(score_6d, damping=1.0)

    def embed(z):
        return jnp.concatenate([z, jnp.sin(z)])

    programs = {
        "distance": lambda a, b: jg.distance(jacobian_metric, a, b, throw=False),
        "log_map": lambda a, b: jg.log_map(jacobian_metric, a, b, throw=False).vs,
        "shooting": lambda a, b: (
            jg.log_map(jacobian_metric, a, b, solver=jg.Shooting(), throw=False).vs
        ),
        "pullback": lambda a, b: jax.vmap(
            lambda x: jg.log_map(jg.PullbackMetric(embed), a, x, throw=False).vs
        )(jnp.stack([b, 2 * b])),
    }
    lapack = lambda a, b: jnp.linalg.cholesky(jnp.outer(a, a) + jnp.eye(6)) @ b  # noqa: E731
    assert _lapack_calls(lapack, xs[0], xs[1])  # the test sees LAPACK calls
    for name, program in programs.items():
        assert _lapack_calls(program, xs[0], xs[1]) == collections.Counter(), name


@pytest.mark.slow
def test_frechet_mean_builds_no_lapack_call_on_cpu(score_6d):
    """As above for the mean of issue 30's third freeze (slow: 15 s to trace)."""

    def gram(x):
        s = score_6d(x)
        return jnp.eye(6) - jnp.outer(s, s) / (1 + s @ s)

    xs = jax.random.normal(jax.random.key(1), (4, 6))
    mean = lambda xs: jg.stats.frechet_mean(jg.MatrixMetric(gram), xs, throw=False).mean  # noqa: E731
    assert _lapack_calls(mean, xs) == collections.Counter()


_FREEZE_50D = """
import jax, jaxgeo as jg
jax.config.update("jax_enable_x64", True)
score = jg.nn.MLPScore(50, width=128, depth=3, key=jax.random.key(0))
x0, x1 = (jax.random.normal(jax.random.key(i), (50,)) for i in (1, 2))
metric = jg.ScoreJacobianMetric(score, damping=1.0)
for _ in range(2):
    print(jg.log_map(metric, x0, x1, throw=False).result == jg.RESULTS.successful)
"""

_FREEZE_KMEANS = """
import jax, jax.numpy as jnp, jaxgeo as jg
jax.config.update("jax_enable_x64", True)
def sphere(z):  # inverse stereographic projection
    s = z @ z
    return jnp.concatenate([2 * z, (s - 1)[None]]) / (1 + s)
key = jax.random.key(0)
centres = jax.random.normal(key, (5, 2))
zs = (centres[:, None] + 0.1 * jax.random.normal(jax.random.key(1), (5, 20, 2))).reshape(-1, 2)
model = jg.stats.GeodesicKMeans(jg.PullbackMetric(sphere), n_clusters=5, random_state=0)
print(model.fit(zs).predict(zs).shape)
"""


@pytest.mark.slow
@pytest.mark.parametrize("script", [_FREEZE_50D, _FREEZE_KMEANS], ids=["50d", "kmeans"])
def test_batched_solves_do_not_freeze(script):
    """The two freezes of issue 30, each in a fresh process that must finish."""
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
