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
    (F.VonMisesFisher(3), [0.5, -1.0, 2.0]),
    (F.VonMisesFisher(4), [0.3, 0.2, -0.4, 1.5]),
    (F.Binomial(8), [0.3]),
    (F.Geometric(), [0.4]),
    (
        F.Joint((F.Product(F.Normal(), 2), F.VonMisesFisher(3))),
        [0.1, 0.5, -0.2, 2.0, 1.0, 0.5, -1.5],
    ),
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


def _sample_mean(family, xs):
    """The sample analogue of `family.mean`: the one-hot mean of labels, the circular
    mean of angles, else the plain mean."""
    if isinstance(family, F.Categorical):
        return jnp.mean(jax.nn.one_hot(xs, family.num_classes), axis=0)
    if isinstance(family, F.VonMises):
        return jnp.arctan2(jnp.mean(jnp.sin(xs)), jnp.mean(jnp.cos(xs)))
    return jnp.mean(xs, axis=0)


@pytest.mark.parametrize("family, eta", CASES, ids=lambda c: type(c).__name__)
def test_means_match_samples(family, eta):
    eta = jnp.asarray(eta)
    mean = family.mean(eta)
    if isinstance(family, F.Joint):  # the components' means, concatenated
        parts = jnp.split(eta, np.cumsum([f.num_params for f in family.families])[:-1])
        expected = jnp.concatenate([jnp.ravel(f.mean(e)) for f, e in zip(family.families, parts)])
        np.testing.assert_array_equal(mean, expected)
        return
    xs = family.sample(eta, jax.random.key(1), (40_000,))
    assert mean.shape == _sample_mean(family, xs[:1]).shape
    # within 5 standard errors (of the plain mean; the circular mean of the von Mises
    # case is concentrated enough for the same bound to hold)
    error = jnp.std(xs.reshape(40_000, -1), axis=0).max() / np.sqrt(40_000)
    np.testing.assert_allclose(_sample_mean(family, xs), mean, atol=float(5 * error) + 1e-12)
    with pytest.raises(Exception, match="invalid parameters"):
        family.mean(jnp.full_like(eta, jnp.nan))


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
        # (the default tolerance of distance: 1e-6; shooting is far tighter)
        np.testing.assert_allclose(
            length(hand), closed_form, rtol=1e-6 if solve == "distance" else 1e-7
        )


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


def test_von_mises_fisher_log_normaliser_against_scipy():
    """log I_ν(κ) − ν log κ (the log-partition up to a constant) for ν = d/2 − 1 across
    the power series, the log-space series and Debye's expansion: 1e-12 relative."""
    from scipy.special import ive

    for dim in (2, 3, 4, 5, 16, 64, 201):
        family = F.VonMisesFisher(dim)
        nu = dim / 2 - 1
        kappas = np.logspace(-4, 5, 91)
        got = jax.vmap(lambda k: family.log_partition(jnp.zeros(dim).at[0].set(k)))(kappas)
        scaled = ive(nu, kappas)
        finite = scaled > 1e-300  # scipy underflows for large ν at small κ
        assert finite.sum() >= 45
        expected = dim / 2 * np.log(2 * np.pi) + np.log(scaled[finite]) + kappas[finite]
        expected -= nu * np.log(kappas[finite])
        np.testing.assert_allclose(got[finite], expected, rtol=1e-12, atol=1e-12)


def test_von_mises_fisher_concentration_mle_inverts_the_mean_resultant_length():
    """On S² the gap 1 − A(κ) = 1/κ − (coth κ − 1) is closed form without cancellation:
    the maximum-likelihood κ from it is exact (1e-10, or eps·κ) from 1e-3 to 1e8, with no
    cap at large κ (small κ: A's Laurent series); on S³ (quaternions) it inverts the
    family's own A; g ≥ 1 (no preferred direction) gives κ = 0."""
    family = F.VonMisesFisher(3)
    kappas = np.logspace(-3, 8, 45)
    coth_minus_one = 2 * np.exp(-2 * kappas) / -np.expm1(-2 * kappas)
    a_small = kappas / 3 - kappas**3 / 45 + 2 * kappas**5 / 945
    gaps = np.where(kappas < 0.1, 1 - a_small, 1 / kappas - coth_minus_one)
    got = jax.vmap(family.concentration_mle)(jnp.asarray(gaps))
    # 1e-10, or eps·κ where 1 − A, formed from A, loses digits (1e-8 at κ = 1e8)
    assert np.all(np.abs(got / kappas - 1) <= 1e-10 + 2e-16 * kappas)

    quaternions = F.VonMisesFisher(4)
    for kappa in (0.01, 1.0, 30.0, 1500.0, 9300.0, 1e5):
        gap = 1 - quaternions.mean_resultant_length(jnp.zeros(4).at[0].set(kappa))
        np.testing.assert_allclose(quaternions.concentration_mle(gap), kappa, rtol=1e-8)
    assert quaternions.concentration_mle(jnp.array(1.0)) == 0
    assert quaternions.concentration_mle(jnp.array(1.5)) == 0
    # float32: the gap's own round-off (1e-7 of 1e-4) is all that is lost
    np.testing.assert_allclose(
        quaternions.concentration_mle(jnp.array(1.5 / 9300, jnp.float32)), 9300, rtol=1e-3
    )


def test_von_mises_fisher_closed_forms_on_the_two_sphere():
    """On S²: ψ = log(4π sinh κ / κ), A = coth κ − 1/κ, A' = 1/κ² − 1/sinh² κ; the uniform
    distribution at η = 0 (Fisher I/3, density 1/(4π))."""
    family = F.VonMisesFisher(3)
    direction = jnp.array([2.0, -1.0, 2.0]) / 3
    for kappa in (1e-3, 0.5, 5.0, 150.0, 250.0, 1e3, 1e5):
        eta = kappa * direction
        fisher = family.fisher(eta)
        if kappa < 0.1:  # Laurent series: the closed forms cancel there
            a = kappa / 3 - kappa**3 / 45 + 2 * kappa**5 / 945
            a_prime = 1 / 3 - kappa**2 / 15 + 2 * kappa**4 / 189
        else:
            a = 1 / np.tanh(kappa) - 1 / kappa
            a_prime = 1 / kappa**2 - (1 / np.sinh(kappa) ** 2 if kappa < 300 else 0.0)
        log_sinh = kappa + np.log1p(-np.exp(-2 * kappa)) - np.log(2)
        np.testing.assert_allclose(
            family.log_partition(eta), np.log(4 * np.pi) + log_sinh - np.log(kappa), rtol=1e-13
        )
        np.testing.assert_allclose(family.mean_resultant_length(eta), a, rtol=1e-11)
        np.testing.assert_allclose(family.mean(eta), a * direction, rtol=1e-11)
        # rtol: Debye's truncation at 250
        np.testing.assert_allclose(direction @ fisher @ direction, a_prime, rtol=1e-9)
        across = jnp.array([1.0, 2.0, 0.0]) / np.sqrt(5)
        np.testing.assert_allclose(across @ fisher @ across, a / kappa, rtol=1e-11)
    np.testing.assert_allclose(family.fisher(jnp.zeros(3)), np.eye(3) / 3, rtol=1e-14)
    np.testing.assert_allclose(
        family.log_prob(jnp.zeros(3), direction), -np.log(4 * np.pi), rtol=1e-14
    )
    # The Fisher information is the Hessian of the log-partition, also at η = 0, and its
    # own derivative (by the custom JVP of the Bessel scalars) matches finite differences.
    for eta in (jnp.zeros(3), 0.7 * direction, 40.0 * direction, 400.0 * direction):
        np.testing.assert_allclose(
            family.fisher(eta), jax.hessian(family.log_partition)(eta), rtol=1e-9, atol=1e-15
        )
        tangent = jnp.array([0.3, -0.2, 0.5])
        h = 1e-4 * (1 + jnp.linalg.norm(eta))
        finite = (family.fisher(eta + h * tangent) - family.fisher(eta - h * tangent)) / (2 * h)
        derivative = jax.jvp(family.fisher, (eta,), (tangent,))[1]
        np.testing.assert_allclose(derivative, finite, rtol=1e-6, atol=1e-12)


def test_von_mises_fisher_on_the_circle_is_von_mises():
    """dim = 2 with η = κ(cos m, sin m) is VonMises(m, κ): densities, KL, and the Fisher
    information pulled back through (m, κ) ↦ η."""
    vmf, vm = F.VonMisesFisher(2), F.VonMises()

    def natural(p):
        return p[1] * jnp.array([jnp.cos(p[0]), jnp.sin(p[0])])

    for p, q in [
        ((0.7, 3.0), (0.2, 1.5)),
        ((-2.0, 0.05), (3.0, 40.0)),
        ((1.0, 300.0), (1.1, 290.0)),
    ]:
        p, q = jnp.array(p), jnp.array(q)
        for theta in (0.0, 1.3, -2.5):
            x = jnp.array([jnp.cos(theta), jnp.sin(theta)])
            np.testing.assert_allclose(
                vmf.log_prob(natural(p), x), vm.log_prob(p, theta), rtol=1e-12
            )
        np.testing.assert_allclose(vmf.kl(natural(p), natural(q)), vm.kl(p, q), rtol=1e-10)
        jac = jax.jacfwd(natural)(p)
        np.testing.assert_allclose(
            jac.T @ vmf.fisher(natural(p)) @ jac, vm.fisher(p), rtol=1e-10, atol=1e-14
        )


@pytest.mark.slow
@pytest.mark.parametrize("dim", [3, 4])
def test_von_mises_fisher_samples(dim):
    """Wood's sampler: unit vectors whose mean is A_d(κ) μ (within 5 standard errors),
    from the uniform distribution (κ = 0) to κ = 1000, in float64 and float32."""
    family = F.VonMisesFisher(dim)
    mu = jnp.arange(1.0, dim + 1) / jnp.linalg.norm(jnp.arange(1.0, dim + 1))
    for kappa in (0.0, 0.5, 5.0, 1000.0):
        for dtype in (jnp.float64, jnp.float32):
            eta = (kappa * mu).astype(dtype)
            xs = family.sample(eta, jax.random.key(1), (20_000,))
            assert xs.shape == (20_000, dim) and xs.dtype == dtype
            tol = 1e-12 if dtype == jnp.float64 else 1e-5
            np.testing.assert_allclose(jnp.linalg.norm(xs, axis=1), 1.0, atol=tol)
            mean = family.mean(eta.astype(jnp.float64))
            xs = np.asarray(xs, np.float64)
            err = xs.std(0) / np.sqrt(xs.shape[0])
            assert np.all(np.abs(xs.mean(0) - mean) <= 5 * err + 1e-6), (kappa, dtype)


def test_von_mises_fisher_float32():
    """float32 parameters give float32 results within float32 round-off of float64."""
    family = F.VonMisesFisher(4)
    x = jnp.array([0.5, -0.5, 0.5, 0.5])
    for eta in ([0.3, 0.2, -0.4, 1.5], [10.0, 25.0, -4.0, 7.0], [300.0, 0.0, 0.0, 1.0]):
        eta64 = jnp.array(eta)
        eta32 = eta64.astype(jnp.float32)
        other = 1.1 * eta64[::-1]
        for fn, args64 in [
            (family.log_prob, (eta64, x)),
            (family.fisher, (eta64,)),
            (family.kl, (eta64, other)),
        ]:
            got = fn(*(a.astype(jnp.float32) for a in args64))
            assert got.dtype == jnp.float32
            np.testing.assert_allclose(got, fn(*args64), rtol=2e-4, atol=1e-6)
        assert family.sample(eta32, jax.random.key(0)).dtype == jnp.float32


def test_binomial_and_geometric():
    """Probabilities that sum to one and means n p and 1/p; Binomial(1) is Bernoulli."""
    p = jnp.array([0.3])
    binomial = F.Binomial(7)
    pmf = jnp.exp(jax.vmap(lambda x: binomial.log_prob(p, x))(jnp.arange(8.0)))
    np.testing.assert_allclose(pmf.sum(), 1.0, rtol=1e-13)
    np.testing.assert_allclose(pmf @ jnp.arange(8.0), 7 * 0.3, rtol=1e-13)
    geometric = F.Geometric()
    xs = jnp.arange(1.0, 400.0)
    pmf = jnp.exp(jax.vmap(lambda x: geometric.log_prob(p, x))(xs))
    np.testing.assert_allclose(pmf.sum(), 1.0, rtol=1e-13)
    np.testing.assert_allclose(pmf @ xs, 1 / 0.3, rtol=1e-12)
    one, bernoulli = F.Binomial(1), F.Bernoulli()
    for x in (0.0, 1.0):
        np.testing.assert_allclose(one.log_prob(p, x), bernoulli.log_prob(p, x), rtol=1e-14)
    np.testing.assert_allclose(one.kl(p, p + 0.2), bernoulli.kl(p, p + 0.2), rtol=1e-14)


def test_new_families_bad_input():
    for make, message in [
        (lambda: F.VonMisesFisher(1), "dim must be an integer >= 2"),
        (lambda: F.Binomial(0), "num_trials must be an integer >= 1"),
    ]:
        with pytest.raises(ValueError, match=message):
            make()
    vmf = F.VonMisesFisher(3)
    cases = [
        (
            lambda: vmf.log_prob(jnp.array([0.0, jnp.nan, 1.0]), jnp.array([0.0, 0.0, 1.0])),
            "invalid parameters",
        ),
        (
            lambda: vmf.log_prob(jnp.array([0.0, 1.0, 1.0]), jnp.array([0.0, 0.0, 2.0])),
            "outside the support",
        ),
        (lambda: F.Binomial(3).log_prob(jnp.array([0.5]), 4.0), "outside the support"),
        (lambda: F.Binomial(3).log_prob(jnp.array([1.5]), 1.0), "invalid parameters"),
        (lambda: F.Geometric().log_prob(jnp.array([0.5]), 0.0), "outside the support"),
        (lambda: F.Geometric().kl(jnp.array([0.5]), jnp.array([1.0])), "invalid parameters"),
    ]
    for fn, message in cases:
        with pytest.raises(Exception, match=message):
            fn()
        with pytest.raises(Exception, match=message):
            jax.jit(fn)()
    with pytest.raises(ValueError, match=r"observation has shape \(3,\)"):
        vmf.log_prob(jnp.ones(3), jnp.ones(4) / 2)
    with pytest.raises(ValueError, match="3 parameters"):
        vmf.fisher(jnp.ones(4))


def test_von_mises_wrap_keeps_the_distribution_within_pi_of_the_reference():
    """`VonMises.wrap` moves mu by whole turns to within (-pi, pi] of the reference's:
    the same density, the same Fisher metric, and pi itself stays (the interval's
    closed end)."""
    vm = F.VonMises()
    reference = jnp.array([0.3, 1.5])
    for mu in (0.3 + jnp.pi, 0.3 - jnp.pi, 7.0, -9.5, 0.3 + 5 * jnp.pi, 0.2):
        eta = jnp.array([mu, 2.0])
        wrapped = vm.wrap(eta, reference)
        difference = float(wrapped[0] - reference[0])
        assert -np.pi < difference <= np.pi + 1e-12, (mu, difference)
        np.testing.assert_allclose(
            (wrapped[0] - mu) / (2 * np.pi), jnp.round((wrapped[0] - mu) / (2 * np.pi)), atol=1e-12
        )
        assert wrapped[1] == eta[1]
        for x in (-1.0, 0.4, 2.5):
            np.testing.assert_allclose(vm.log_prob(wrapped, x), vm.log_prob(eta, x), rtol=1e-12)
    np.testing.assert_allclose(vm.wrap(jnp.array([0.3 + jnp.pi, 2.0]), reference)[0], 0.3 + jnp.pi)
