"""Distribution families, Fisher–Rao metrics and the Fisher information of models."""

import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgeo as jg


F = jg.families
CASES = [
    (F.Normal(), [0.3, 1.5]),
    (F.Bernoulli(), [0.3]),
    (F.Categorical(3), [0.2, 0.3]),
    (F.Beta(), [2.0, 3.0]),
    (F.Dirichlet(3), [1.5, 2.0, 3.0]),
    (F.Exponential(), [2.0]),
    (F.Poisson(), [3.0]),
    (F.Gamma(), [2.0, 3.0]),
    (F.VonMises(), [0.5, 2.0]),
    (F.Product(F.Bernoulli(), 3), [0.2, 0.5, 0.9]),
    (F.MultivariateNormal(2), [0.3, -0.5, 1.2, 0.4, 0.8]),
]


@eqx.filter_jit
def fisher_checks(family, eta, key):
    """Closed-form Fisher and KL against autodiff and Monte Carlo, in one compiled call."""
    key_x, key_kl = jax.random.split(key)
    xs = family.sample(eta, key_x, (40_000,))
    scores = jax.vmap(jax.grad(family.log_prob), in_axes=(None, 0))(eta, xs)
    outer = scores[:, :, None] * scores[:, None, :]
    hess = jax.vmap(jax.hessian(family.log_prob), in_axes=(None, 0))(eta, xs)
    other = family.constrain(family.unconstrain(eta) + 0.3)
    return dict(
        fisher=family.fisher(eta),
        kl_hessian=jax.hessian(lambda e: family.kl(eta, e))(eta),
        outer=outer.mean(0),
        outer_err=outer.std(0) / np.sqrt(xs.shape[0]),
        neg_hessian=-hess.mean(0),
        hessian_err=hess.std(0) / np.sqrt(xs.shape[0]),
        kl=family.kl(eta, other),
        kl_mc=F.kl_monte_carlo(family, eta, other, key_kl, 40_000),
        roundtrip=family.constrain(family.unconstrain(eta)),
    )


@pytest.mark.parametrize("family, eta", CASES, ids=lambda c: type(c).__name__)
def test_fisher_closed_forms(family, eta):
    eta = jnp.asarray(eta)
    r = fisher_checks(family, eta, jax.random.key(0))
    fisher = r["fisher"]
    # the Hessian of KL(p_eta || p_eta') at eta' = eta
    np.testing.assert_allclose(r["kl_hessian"], fisher, rtol=1e-8, atol=1e-10)
    # Monte Carlo: E[score score^T] and -E[Hessian of log p], within 5 standard errors
    assert np.all(np.abs(r["outer"] - fisher) <= 5 * r["outer_err"] + 1e-9)
    assert np.all(np.abs(r["neg_hessian"] - fisher) <= 5 * r["hessian_err"] + 1e-9)
    np.testing.assert_allclose(r["kl_mc"], r["kl"], rtol=0.05, atol=2e-3)
    np.testing.assert_allclose(r["roundtrip"], eta, rtol=1e-10)


def fisher_rao_distance(family, a, b):
    metric = jg.FisherRaoMetric(family)
    return jg.distance(metric, jnp.asarray(a), jnp.asarray(b))


@pytest.mark.slow
@pytest.mark.parametrize(
    "family, a, b, expected",
    [
        # Normal (mu, sigma): sqrt(2) * the hyperbolic distance of (mu / sqrt 2, sigma)
        (
            F.Normal(),
            [0.0, 1.0],
            [1.0, 2.0],
            np.sqrt(2) * np.arccosh(1 + (0.5 + 1.0) / (2 * 1.0 * 2.0)),
        ),
        (F.Bernoulli(), [0.2], [0.7], 2 * np.arccos(np.sqrt(0.14) + np.sqrt(0.24))),
        (
            F.Categorical(3),
            [0.2, 0.3],
            [0.6, 0.2],
            2 * np.arccos(np.sqrt(0.2 * 0.6) + np.sqrt(0.3 * 0.2) + np.sqrt(0.5 * 0.2)),
        ),
        (F.Exponential(), [0.5], [3.0], abs(np.log(0.5 / 3.0))),
        (F.Poisson(), [1.0], [4.0], 2 * abs(np.sqrt(1.0) - np.sqrt(4.0))),
    ],
    ids=["normal", "bernoulli", "categorical", "exponential", "poisson"],
)
def test_fisher_rao_distances_closed_forms(family, a, b, expected):
    np.testing.assert_allclose(fisher_rao_distance(family, a, b), expected, rtol=1e-5)


@pytest.mark.slow
def test_solver_steps_outside_the_domain_are_rejected_not_raised():
    """Newton's trial steps leave the Beta domain on this pair; the metric is NaN there
    (the step is rejected) instead of raising. The reference is a 32-segment shooting
    solve at tolerance 1e-12, equal to a 512-segment energy solve to 2e-12."""
    metric = jg.FisherRaoMetric(F.Beta())
    a, b = jnp.array([2.0, 3.0]), jnp.array([5.0, 1.0])
    np.testing.assert_allclose(
        jg.distance(metric, a, b, solver=jg.Shooting()), 2.166661127236599, rtol=1e-8
    )
    assert np.isnan(metric.matrix(jnp.array([-1.0, 2.0]))).all()
    assert np.isnan(metric.inner(jnp.array([1.0, -2.0]), jnp.ones(2), jnp.ones(2)))
    assert np.isnan(metric.secant_sq_norm(a, jnp.array([0.0, 1.0])))
    assert np.isfinite(jax.grad(lambda e: metric.inner(e, e, e))(a)).all()


def _hand_written_beta(x):
    """The Beta Fisher information written by hand, as a user would: trigamma entries,
    no domain (finite but indefinite outside it)."""
    return jnp.diag(jax.scipy.special.polygamma(1, x)) - jax.scipy.special.polygamma(1, x.sum())


def _hand_written_categorical(p):
    """The Fisher information of Categorical(3) in (p_1, p_2), written by hand:
    indefinite outside the simplex."""
    return jnp.diag(1 / p) + 1 / (1 - jnp.sum(p))


HAND_WRITTEN = {
    "Beta": (_hand_written_beta, F.Beta(), [0.3, 0.4], [8.0, 5.0]),
    "Categorical": (_hand_written_categorical, F.Categorical(3), [0.005, 0.9], [0.9, 0.005]),
}


def test_matrix_metric_is_nan_where_not_semidefinite():
    """The mechanism that keeps solvers in a hand-written metric's domain (the solves
    themselves are the slow test below): NaN where the matrix is indefinite, the matrix
    itself where it is positive definite or only semidefinite (a vanishing metric)."""
    hand = jg.MatrixMetric(_hand_written_categorical)
    inside, outside = jnp.array([0.2, 0.3]), jnp.array([0.7, 0.6])
    np.testing.assert_allclose(hand.matrix(inside), _hand_written_categorical(inside))
    assert np.isnan(hand.matrix(outside)).all()
    assert np.isnan(hand.norm(outside, jnp.ones(2)))
    vanishing = jg.MatrixMetric(lambda x: x[0] ** 2 * jnp.eye(2, dtype=x.dtype))
    np.testing.assert_array_equal(vanishing.matrix(jnp.array([0.0, 1.0])), jnp.zeros((2, 2)))
    grad = jax.grad(lambda x: hand.sq_norm(x, jnp.ones(2)))(inside)
    assert np.isfinite(grad).all()


@pytest.mark.parametrize(
    "case,solve",
    [
        pytest.param("Beta", "newton", marks=pytest.mark.slow),
        pytest.param("Categorical", "descent", marks=pytest.mark.slow),
        pytest.param("Categorical", "distance", marks=pytest.mark.slow),
        pytest.param("Categorical", "shooting", marks=pytest.mark.slow),
    ],
)
def test_solvers_stay_in_the_domain_of_a_hand_written_metric(case, solve):
    """Issue 16: trial points leave the domain, where a hand-written Fisher matrix is
    finite but indefinite. MatrixMetric is NaN there, as FisherRaoMetric is outside its
    domain, so every solver rejects them and both routes give the same geodesic.
    Before: on Beta (0.3, 0.4) -> (8, 5) Newton "diverged" (length 2.6e11) and the
    distance was NaN; on the Categorical pair L-BFGS was "unresolved" (length 2e4)."""
    fn, family, a, b = HAND_WRITTEN[case]
    a, b = jnp.array(a), jnp.array(b)
    hand = jg.MatrixMetric(fn)
    assert np.isnan(hand.matrix(-a)).all()

    def length(metric):
        if solve == "distance":
            return jg.distance(metric, a, b)
        solver = dict(newton=None, descent=jg.EnergyDescent(), shooting=jg.Shooting())[solve]
        sol = jg.geodesic_bvp(metric, a, b, solver=solver, max_steps=20_000)
        assert sol.result == jg.RESULTS.successful
        return sol.length

    np.testing.assert_allclose(length(hand), length(jg.FisherRaoMetric(family)), rtol=1e-8)
    if case == "Categorical" and solve in ("distance", "shooting"):
        p, q = jnp.append(a, 1 - a.sum()), jnp.append(b, 1 - b.sum())
        closed_form = 2 * jnp.arccos(jnp.sum(jnp.sqrt(p * q)))
        np.testing.assert_allclose(length(hand), closed_form, rtol=1e-7)


@pytest.mark.slow
def test_multivariate_normal_equal_means_distance():
    """sqrt(1/2 sum log^2 eig(S1^-1 S2)) (Atkinson and Mitchell): equal means stay equal
    along the geodesic of the full five-dimensional manifold."""
    family = F.MultivariateNormal(2)
    mean = jnp.array([0.5, -1.0])
    cov1, cov2 = jnp.array([[1.0, 0.3], [0.3, 0.5]]), jnp.array([[2.0, -0.4], [-0.4, 1.0]])
    eigs = np.linalg.eigvals(np.linalg.solve(cov1, cov2)).real
    expected = np.sqrt(0.5 * np.sum(np.log(eigs) ** 2))
    a, b = family.params(mean, cov1), family.params(mean, cov2)
    np.testing.assert_allclose(fisher_rao_distance(family, a, b), expected, rtol=1e-5)


@pytest.mark.slow
def test_normal_manifold_curvature_and_kl_energy():
    metric = jg.FisherRaoMetric(F.Normal())
    for eta in ([0.0, 1.0], [2.0, 0.3]):
        np.testing.assert_allclose(
            jg.gaussian_curvature(metric, jnp.asarray(eta)), -0.5, rtol=1e-10
        )
    # KL energy and metric energy of the same curve agree as the discretisation is refined.
    gaps = []
    for n in (8, 32, 128):
        t = jnp.linspace(0, 1, n + 1)
        curve = jnp.stack([2 * t - 1, 1 + jnp.sin(3 * t)], axis=1)
        midpoint = jg.curve_energy(metric, curve)
        kl = jg.curve_energy(metric, curve, energy="secant")
        gaps.append(float(abs(kl - midpoint) / midpoint))
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-3, gaps


@pytest.mark.slow
def test_pullback_fisher_rao_and_kl_energy_geodesic():
    family = F.Product(F.Bernoulli(), 5)
    w = jnp.asarray(np.random.default_rng(0).normal(size=(5, 2)))

    def decoder(z):
        return family.constrain(w @ z)

    metric = jg.PullbackFisherRaoMetric(decoder, family)
    z = jnp.array([0.3, -0.2])
    jac = jax.jacfwd(decoder)(z)
    np.testing.assert_allclose(metric.matrix(z), jac.T @ family.fisher(decoder(z)) @ jac)
    u, v = jnp.array([1.0, 0.5]), jnp.array([-0.2, 0.7])
    np.testing.assert_allclose(metric.inner(z, u, v), u @ metric.matrix(z) @ v, rtol=1e-12)
    x0, x1 = jnp.array([-1.0, 0.5]), jnp.array([1.0, -0.5])
    kl = jg.geodesic_bvp(metric, x0, x1, num_points=32, energy="secant")
    fr = jg.geodesic_bvp(metric, x0, x1, num_points=32)
    assert kl.result == fr.result == jg.RESULTS.successful
    np.testing.assert_allclose(kl.length, fr.length, rtol=1e-2)
    assert float(jnp.max(jnp.abs(kl.xs - fr.xs))) < 0.05


@pytest.mark.slow
def test_fisher_information_of_a_classifier():
    images, labels = jg.data.digits()
    xs, ys = jnp.asarray(images[:200, :8]), jnp.asarray(labels[:200] % 3)
    family = F.Categorical(3)
    key = jax.random.key(0)
    params = {"w": 0.3 * jax.random.normal(key, (2, 8)), "b": jnp.zeros(2)}

    def predictive(p, x):
        return family.constrain(p["w"] @ x + p["b"])

    exact = jg.fisher_information(predictive, family, params, xs)
    assert exact.shape == (18, 18)
    mc = jg.fisher_information(
        predictive, family, params, xs, key=jax.random.key(1), num_samples=200
    )
    np.testing.assert_allclose(mc, exact, atol=0.05 * float(jnp.max(jnp.abs(exact))))
    empirical = jg.empirical_fisher(predictive, family, params, xs, ys)
    assert float(jnp.max(jnp.abs(empirical - exact))) > 1e-3  # not the same thing
    vector = jax.tree_util.tree_map(jnp.ones_like, params)
    fvp = jg.fisher_vector_product(predictive, family, params, xs, vector, ys=ys)
    flat_fvp = jax.flatten_util.ravel_pytree(fvp)[0]
    np.testing.assert_allclose(flat_fvp, empirical @ jnp.ones(18), rtol=1e-10)


def test_bad_parameters_and_observations():
    cases = [
        (lambda: F.Exponential().log_prob(jnp.array([-1.0]), 1.0), "invalid parameters"),
        (lambda: F.Categorical(3).fisher(jnp.array([0.7, 0.6])), "invalid parameters"),
        (lambda: F.VonMises().kl(jnp.array([0.0, -1.0]), jnp.array([0.0, 1.0])), "invalid"),
        (lambda: F.Poisson().log_prob(jnp.array([2.0]), 1.5), "outside the support"),
        (lambda: F.Beta().log_prob(jnp.array([2.0, 2.0]), 1.2), "outside the support"),
        (lambda: F.Bernoulli().log_prob(jnp.array([0.5]), 2.0), "outside the support"),
    ]
    for fn, message in cases:
        with pytest.raises(Exception, match=message):
            fn()
    with pytest.raises(ValueError, match="2 parameters"):
        F.Normal().fisher(jnp.ones(3))
    with pytest.raises(ValueError, match="num_classes"):
        F.Categorical(1)
    mvn = F.MultivariateNormal(2)
    with pytest.raises(Exception, match="invalid parameters"):
        mvn.log_prob(jnp.array([0.0, 0.0, -1.0, 0.0, 1.0]), jnp.zeros(2))
    with pytest.raises(ValueError, match=r"\(3,\)"):
        mvn.log_prob(mvn.params(jnp.zeros(2), jnp.eye(2)), jnp.zeros(3))
    with pytest.raises(ValueError, match=r"covariance of shape \(2, 2\)"):
        mvn.params(jnp.zeros(2), jnp.eye(3))
    # An indefinite or non-symmetric covariance: an error, also under jit (was NaN).
    for cov, message in [
        ([[1.0, 2.0], [2.0, 1.0]], "positive definite"),
        ([[1.0, 0.5], [0.0, 1.0]], "symmetric"),
    ]:
        with pytest.raises(Exception, match=message):
            mvn.params(jnp.zeros(2), jnp.array(cov))
        with pytest.raises(Exception, match=message):
            jax.jit(mvn.params)(jnp.zeros(2), jnp.array(cov))
    np.testing.assert_allclose(
        mvn.params(jnp.zeros(2), jnp.array([[4.0, 2.0], [2.0, 2.0]])), [0, 0, 2, 1, 1]
    )


def test_dirichlet_validates_num_classes():
    assert F.Dirichlet(2).num_params == 2
    for bad in (1, 0, -3):
        with pytest.raises(ValueError, match="Dirichlet: num_classes must be an integer >= 2"):
            F.Dirichlet(bad)
    # Not an integer: a ValueError from the check, or a TypeError first where runtime
    # type checking is on (as in this test suite).
    for bad in (2.0, "3", None):
        with pytest.raises((ValueError, TypeError), match="num_classes"):
            F.Dirichlet(bad)
