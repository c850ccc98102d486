"""VAEs, decoders and the calibrated variance of Latent Space Oddity."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgeo as jg


def small_vae(key, decoder="gaussian"):
    k1, k2 = jax.random.split(key)
    make = {
        "gaussian": lambda: jg.nn.GaussianDecoder(2, 64, width=32, depth=1, key=k2),
        "bernoulli": lambda: jg.nn.BernoulliDecoder(2, 64, width=32, depth=1, key=k2),
    }[decoder]
    return jg.nn.VAE(jg.nn.Encoder(64, 2, width=32, depth=1, key=k1), make())


def test_decoder_log_probs_match_closed_forms():
    key = jax.random.key(0)
    z = jnp.array([0.3, -0.7])
    x = jnp.linspace(0, 1, 64)
    gaussian = jg.nn.GaussianDecoder(2, 64, width=8, depth=1, key=key)
    mean, std = gaussian.mean(z), gaussian.std(z)
    expected = jnp.sum(jax.scipy.stats.norm.logpdf(x, mean, std))
    np.testing.assert_allclose(gaussian.log_prob(x, z), expected, rtol=1e-12)
    bernoulli = jg.nn.BernoulliDecoder(2, 64, width=8, depth=1, key=key)
    p = bernoulli.probs(z)
    binary = (x > 0.5).astype(float)
    expected = jnp.sum(binary * jnp.log(p) + (1 - binary) * jnp.log1p(-p))
    np.testing.assert_allclose(bernoulli.log_prob(binary, z), expected, rtol=1e-10)
    categorical = jg.nn.CategoricalDecoder(2, 5, 3, width=8, depth=1, key=key)
    labels = jnp.array([0, 2, 1, 1, 0])
    probs = categorical.probs(z)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-12)
    expected = jnp.sum(jnp.log(probs[jnp.arange(5), labels]))
    np.testing.assert_allclose(categorical.log_prob(labels, z), expected, rtol=1e-12)
    np.testing.assert_allclose(categorical.mean(z), probs, rtol=1e-12)


def test_every_decoder_keeps_the_contract():
    """Each decoder of jg.nn is an AbstractDecoder whose log_prob is its family's at
    params(z), whose mean is the family's mean (a pose decoder's: position and mean
    direction), and whose metrics are those of its maps."""
    key, z = jax.random.key(0), jnp.array([0.3, -0.7])
    gaussian = jg.nn.GaussianDecoder(2, 4, width=8, depth=1, key=key)
    precision = jg.train.rbf_precision(jax.random.normal(key, (20, 2)), 4, num_centres=3)
    calibrated = jg.nn.CalibratedGaussianDecoder(gaussian.mean, precision)
    bernoulli = jg.nn.BernoulliDecoder(2, 4, width=8, depth=1, key=key)
    categorical = jg.nn.CategoricalDecoder(2, 4, 3, width=8, depth=1, key=key)
    family = jg.families.Product(jg.families.Beta(), 2)
    extrapolating = jg.train.extrapolating_decoder(
        lambda z: family.constrain(jnp.concatenate([z, -z])),
        family,
        jax.random.normal(key, (20, 2)),
        jnp.ones(4),
        num_centres=3,
    )
    pose = jg.nn.PoseDecoder(2, width=8, depth=1, key=key)
    observations = [
        (gaussian, jnp.array([0.1, -2.0, 0.5, 3.0])),
        (calibrated, jnp.array([0.1, -2.0, 0.5, 3.0])),
        (bernoulli, jnp.array([0.0, 1.0, 1.0, 0.0])),
        (categorical, jnp.array([0, 2, 1, 1])),
        (extrapolating, jnp.array([0.2, 0.7])),
        (pose, jnp.array([0.1, 0.2, 0.3, 0.5, 0.5, 0.5, 0.5])),
    ]
    for decoder, x in observations:
        assert isinstance(decoder, jg.nn.AbstractDecoder)
        assert decoder.latent_dim == 2
        eta = decoder.params(z)
        assert eta.shape == (decoder.family.num_params,)
        np.testing.assert_allclose(
            decoder.log_prob(x, z), decoder.family.log_prob(eta, x), rtol=1e-10
        )
        if decoder is pose:
            expected = jnp.concatenate([eta[0:6:2], eta[6:] / jnp.linalg.norm(eta[6:])])
        else:
            expected = decoder.family.mean(eta)
        np.testing.assert_allclose(decoder.mean(z), expected, rtol=1e-10)
        jacobian = jax.jacfwd(decoder.mean)(z).reshape(-1, 2)
        np.testing.assert_allclose(
            decoder.pullback_metric().matrix(z), jacobian.T @ jacobian, rtol=1e-9, atol=1e-12
        )
        jacobian = jax.jacfwd(decoder.params)(z)
        np.testing.assert_allclose(
            decoder.fisher_rao_metric().matrix(z),
            jacobian.T @ decoder.family.fisher(eta) @ jacobian,
            rtol=1e-9,
            atol=1e-12,
        )
    with pytest.raises(ValueError, match="far must be valid parameters of Product"):
        jg.train.extrapolating_decoder(
            lambda z: jnp.ones(4),
            family,
            jax.random.normal(key, (20, 2)),
            -jnp.ones(4),
            num_centres=3,
        )


@pytest.mark.slow
def test_vae_trains_and_variance_is_calibrated():
    images = jnp.asarray(jg.data.digits()[0][:400])
    result = jg.train.fit(
        jg.train.elbo_loss,
        small_vae(jax.random.key(1)),
        images,
        optimizer=optax.adam(3e-3),
        num_steps=600,
        batch_size=64,
        key=jax.random.key(2),
        steps_per_chunk=200,
    )
    assert result.losses[-100:].mean() < result.losses[:20].mean() - 20  # the ELBO rises
    vae = result.model
    codes = jax.vmap(vae.encode)(images)
    calibration = jg.train.calibrate_variance(
        vae.decoder.mean, codes, images, key=jax.random.key(3), num_centres=8, num_steps=300
    )
    assert float(np.mean(calibration.losses[-50:])) < float(np.mean(calibration.losses[:50]))
    decoder = calibration.model
    # The mean decoder is frozen: stage 2 did not move it.
    np.testing.assert_array_equal(decoder.mean(codes[0]), vae.decoder.mean(codes[0]))
    near = jnp.median(jax.vmap(lambda z: jnp.mean(decoder.std(z)))(codes))
    far = jnp.mean(decoder.std(codes.max(0) + 5.0))
    assert float(far) >= 10 * float(near), (float(near), float(far))
    # The expected metric is the pullback of [mu, sigma]: J_mu^T J_mu + J_sigma^T J_sigma.
    metric = decoder.expected_metric()
    z = codes[1]
    j_mu, j_sigma = jax.jacfwd(decoder.mean)(z), jax.jacfwd(decoder.std)(z)
    np.testing.assert_allclose(
        metric.matrix(z), j_mu.T @ j_mu + j_sigma.T @ j_sigma, rtol=1e-10, atol=1e-12
    )


def test_bernoulli_vae_elbo_and_bad_input():
    vae = small_vae(jax.random.key(4), "bernoulli")
    images = (jnp.asarray(jg.data.digits()[0][:16]) > 0.5).astype(float)
    loss = jg.train.elbo_loss(vae, images, jax.random.key(5))
    assert jnp.isfinite(loss) and loss > 0
    with pytest.raises(ValueError, match=r"shape \(64,\)"):
        vae.elbo(jnp.ones(10), jax.random.key(0))
    with pytest.raises(ValueError, match="latent point"):
        vae.decoder.probs(jnp.ones(3))
    with pytest.raises(ValueError, match="latent dimension"):
        jg.PullbackMetric(vae.decoder.probs).matrix(jnp.ones(3))
    bad = np.asarray(images).copy()
    bad[3, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        jg.train.fit(
            jg.train.elbo_loss,
            vae,
            bad,
            optimizer=optax.adam(1e-3),
            num_steps=1,
            batch_size=4,
            key=jax.random.key(0),
        )
    with pytest.raises(ValueError, match="differ in length"):
        jg.train.calibrate_variance(
            vae.decoder.mean, jnp.zeros((5, 2)), images, key=jax.random.key(0), num_centres=2
        )


@pytest.mark.slow
def test_extrapolating_decoder():
    family = jg.families.Product(jg.families.Beta(), 3)
    codes = jax.random.normal(jax.random.key(0), (200, 2))
    w = jax.random.normal(jax.random.key(1), (6, 2))

    def params_fn(z):
        return family.constrain(w @ z)

    decoder = jg.train.extrapolating_decoder(
        params_fn, family, codes, jnp.ones(6), num_centres=8, bandwidth_scale=2.0
    )
    weights = jax.vmap(decoder.weight)(codes)
    assert float(jnp.min(weights)) > 0.3 and float(jnp.median(weights)) > 0.5
    far = jnp.array([30.0, -30.0])
    # maximally uncertain: Beta(1, 1), of mean 1/2
    np.testing.assert_allclose(decoder.params(far), jnp.ones(6))
    np.testing.assert_allclose(decoder.mean(far), jnp.full(3, 0.5))
    z = codes[0]
    w0 = decoder.weight(z)
    np.testing.assert_allclose(decoder.params(z), w0 * params_fn(z) + (1 - w0), rtol=1e-12)
    assert bool(family.valid(decoder.params(jnp.array([2.0, 2.0]))))
    x = jnp.array([0.2, 0.5, 0.9])
    np.testing.assert_allclose(decoder.log_prob(x, z), family.log_prob(decoder.params(z), x))
    metric = decoder.fisher_rao_metric()
    assert float(metric.log_det(z)) > float(metric.log_det(jnp.array([5.0, 5.0]))) + 10
    with pytest.raises(ValueError, match=r"\(3,\)"):
        decoder.params(jnp.zeros(3))


def test_extrapolating_decoder_sharp_switch():
    """`switch=s`: w = sigmoid(s (1 - q)), q the smooth minimum of the squared distances
    to the centres in bandwidth units: certain well inside one unit of the nearest
    centre, uniform beyond it, 1/2 at one unit; the soft blend is 1 - exp(-e^-q)."""
    family = jg.families.Product(jg.families.Bernoulli(), 2)
    centres = jnp.array([[0.0, 0.0], [10.0, 0.0]])
    bandwidths = jnp.array([1.0, 4.0])
    far = jnp.full(2, 0.5)
    sharp = jg.nn.ExtrapolatingDecoder(
        lambda z: jnp.full(2, 0.9), family, centres, bandwidths, far, switch=20.0
    )
    soft = jg.nn.ExtrapolatingDecoder(lambda z: jnp.full(2, 0.9), family, centres, bandwidths, far)
    at = lambda r: jnp.array([10.0 + r / 2, 0.0])  # noqa: E731  (q = 4 (r / 2)^2 = r^2)
    np.testing.assert_allclose(sharp.weight(at(1.0)), 0.5, atol=1e-9)
    assert float(sharp.weight(at(0.5))) > 0.999 and float(sharp.weight(at(1.5))) < 1e-5
    np.testing.assert_allclose(soft.weight(at(1.0)), 1 - np.exp(-np.exp(-1.0)), rtol=1e-12)
    np.testing.assert_allclose(sharp.params(jnp.array([50.0, 50.0])), far, atol=1e-12)
    np.testing.assert_allclose(sharp.params(centres[0]), jnp.full(2, 0.9), atol=1e-6)
    built = jg.train.extrapolating_decoder(
        lambda z: jnp.full(2, 0.9),
        family,
        jnp.asarray(np.random.default_rng(0).normal(size=(50, 2))),
        far,
        num_centres=4,
        switch=5.0,
    )
    assert built.switch == 5.0
    with pytest.raises(ValueError, match="switch"):
        jg.nn.ExtrapolatingDecoder(lambda z: far, family, centres, bandwidths, far, switch=0.0)


@pytest.mark.slow
def test_fit_extrapolating_decoder_trains_only_the_network(tmp_path):
    family = jg.families.Product(jg.families.Bernoulli(), 4)
    codes = jax.random.normal(jax.random.key(0), (256, 2))
    truth = jax.random.normal(jax.random.key(1), (4, 2))
    data = jax.random.bernoulli(jax.random.key(2), jax.nn.sigmoid(3 * codes @ truth.T)).astype(
        float
    )
    net = jg.nn.BernoulliDecoder(2, 4, width=16, depth=1, key=jax.random.key(3))
    decoder = jg.train.extrapolating_decoder(
        net.params, family, codes, jnp.full(4, 0.5), num_centres=8
    )
    result = jg.train.fit_extrapolating_decoder(
        decoder, codes, data, key=jax.random.key(4), num_steps=300, progress=False
    )
    assert float(np.mean(result.losses[-50:])) < float(np.mean(result.losses[:50])) - 0.1
    for frozen in ("centres", "bandwidths", "far"):
        np.testing.assert_array_equal(getattr(result.model, frozen), getattr(decoder, frozen))
    with pytest.raises(ValueError, match="differ in length"):
        jg.train.fit_extrapolating_decoder(
            decoder, codes[:10], data, key=jax.random.key(4), num_steps=1
        )
    with pytest.raises(ValueError, match="no parameters to train"):
        hidden = jg.train.extrapolating_decoder(
            lambda z: net.probs(z), family, codes, jnp.full(4, 0.5), num_centres=8
        )
        jg.train.fit_extrapolating_decoder(hidden, codes, data, key=jax.random.key(4), num_steps=1)


def test_pose_decoder_densities_and_metrics():
    """The pose decoder's log-density is a Gaussian plus a von Mises-Fisher; its expected
    metric is the four-term sum J_mu_p'J_mu_p + J_sigma_p'J_sigma_p + J_mu_r'J_mu_r +
    J_kappa'J_kappa and its Fisher-Rao metric J_eta' I(eta) J_eta, both against the dense
    Jacobians."""
    decoder = jg.nn.PoseDecoder(2, width=16, depth=2, key=jax.random.key(0))
    z = jnp.array([0.3, -0.2])
    q = jnp.array([0.5, -0.5, 0.5, 0.5])
    x = jnp.concatenate([jnp.array([0.1, 0.2, 0.3]), q])
    mean, std = decoder.position_mean(z), decoder.position_std(z)
    eta = decoder.kappa(z) * decoder.direction(z)
    expected = jnp.sum(jax.scipy.stats.norm.logpdf(x[:3], mean, std))
    expected += jg.families.VonMisesFisher(4).log_prob(eta, q)
    np.testing.assert_allclose(decoder.log_prob(x, z), expected, rtol=1e-12)
    np.testing.assert_allclose(jnp.linalg.norm(decoder.direction(z)), 1.0, rtol=1e-14)

    maps = (decoder.position_mean, decoder.position_std, decoder.direction, decoder.kappa)
    dense = sum(jax.jacfwd(f)(z).T @ jax.jacfwd(f)(z) for f in maps)
    np.testing.assert_allclose(decoder.expected_metric().matrix(z), dense, rtol=1e-12)
    jac = jax.jacfwd(decoder.params)(z)
    fisher = decoder.family.fisher(decoder.params(z))
    np.testing.assert_allclose(
        decoder.fisher_rao_metric().matrix(z), jac.T @ fisher @ jac, rtol=1e-10, atol=1e-14
    )
    with pytest.raises(ValueError, match="latent point"):
        decoder.params(jnp.zeros(3))

    # Unit-free: each term divided by the median over the codes of |J_t|_F^2 (a sigma_p
    # and a kappa_r that vary with z here; the learned constants have no Jacobian: 1).
    codes = jax.random.normal(jax.random.key(1), (9, 2))
    np.testing.assert_array_equal(decoder.expected_metric_scales(codes)[1::2], 1.0)
    varying = jg.nn.PoseDecoder(
        2,
        width=16,
        depth=2,
        key=jax.random.key(0),
        position_precision=lambda z: 1e4 * (1 + z[0] ** 2) * jnp.ones(3),
        concentration=lambda z: 9e3 * jnp.exp(z[1:]),
    )
    maps = (varying.position_mean, varying.position_std, varying.direction, varying.kappa)
    scales = jnp.stack(
        [jnp.median(jax.vmap(lambda c: jnp.sum(jax.jacfwd(f)(c) ** 2))(codes)) for f in maps]
    )
    np.testing.assert_allclose(varying.expected_metric_scales(codes), scales, rtol=1e-12)
    unit_free = sum(jax.jacfwd(f)(z).T @ jax.jacfwd(f)(z) / s for f, s in zip(maps, scales))
    np.testing.assert_allclose(varying.expected_metric(codes).matrix(z), unit_free, rtol=1e-12)
    with pytest.raises(ValueError, match="codes of shape"):
        decoder.expected_metric(jnp.zeros((4, 3)))


@pytest.mark.slow
def test_calibrated_pose_decoder_matches_the_maximum_likelihood_noise():
    """Poses simulated from a decoder with a known sigma (1 cm) and a large concentration
    (9,000: 0.03 rad): the calibrated sigma and kappa on the codes are within 20 % of the
    maximum-likelihood values of held-out poses (a mean resultant length clipped at 0.999
    caps kappa near 1,500, and Adam's absolute steps could not lift it). The ML estimates
    themselves recover the truth."""
    sigma, kappa = 0.01, 9000.0
    truth = jg.nn.PoseDecoder(
        2,
        width=16,
        depth=2,
        key=jax.random.key(0),
        initial_std=sigma,
        initial_concentration=kappa,
    )

    def simulate(key, n):
        codes = jax.random.normal(key, (n, 2))
        keys = jax.random.split(jax.random.fold_in(key, 1), n)
        return codes, jax.vmap(lambda z, k: truth.family.sample(truth.params(z), k))(codes, keys)

    codes, poses = simulate(jax.random.key(1), 1500)
    held_codes, held_poses = simulate(jax.random.key(2), 1500)
    std_ml, kappa_ml = jg.train.pose_noise_mle(truth, held_codes, held_poses)
    np.testing.assert_allclose(std_ml, sigma, rtol=0.06)
    np.testing.assert_allclose(kappa_ml, kappa, rtol=0.06)

    calibrated = jg.train.calibrate_pose_decoder(
        truth, codes, poses, key=jax.random.key(3), num_centres=8, num_steps=300
    ).model
    kappas = jax.vmap(calibrated.kappa)(codes)[:, 0]
    stds = jax.vmap(calibrated.position_std)(codes)
    # the typical code; at the edges of the cloud of codes the RBF sums fall off (by design)
    np.testing.assert_allclose(jnp.median(kappas), kappa_ml, rtol=0.2)
    np.testing.assert_allclose(jnp.median(stds, axis=0), std_ml, rtol=0.2)

    # Calibrated: no constant factor on kappa improves the held-out log-likelihood by more
    # than 0.02 nats per pose (the capped kappa lost 1.5 nats per pose).
    def held_out_log_likelihood(factor):
        scaled = eqx.tree_at(
            lambda d: d.concentration, calibrated, lambda z: factor * calibrated.kappa(z)
        )
        return jnp.mean(jax.vmap(scaled.log_prob)(held_poses, held_codes))

    factors = jnp.geomspace(0.25, 4.0, 41)
    gains = jax.vmap(held_out_log_likelihood)(factors) - held_out_log_likelihood(1.0)
    assert float(jnp.max(gains)) < 0.02, (factors[jnp.argmax(gains)], jnp.max(gains))


@pytest.mark.slow
def test_calibrated_pose_decoder_and_its_geodesics():
    """Calibration: sure on the codes, uncertain (large sigma, kappa near its floor) far
    from them; geodesics under both metrics succeed (the expected metric with its secant
    energy), and the KL-energy and midpoint Fisher-Rao lengths agree."""
    decoder = jg.nn.PoseDecoder(2, width=16, depth=2, key=jax.random.key(0))
    codes = jax.random.normal(jax.random.key(1), (300, 2))
    poses = jax.vmap(lambda z, k: decoder.family.sample(decoder.params(z), k))(
        codes, jax.random.split(jax.random.key(2), 300)
    )
    calibrated = jg.train.calibrate_pose_decoder(
        decoder, codes, poses, key=jax.random.key(3), num_centres=8, num_steps=300
    ).model
    far = jnp.array([12.0, -12.0])
    assert float(calibrated.kappa(far)[0]) < 0.02 < 1 < float(calibrated.kappa(jnp.zeros(2))[0])
    assert np.all(calibrated.position_std(far) > 5 * calibrated.position_std(jnp.zeros(2)))
    z0, z1 = jnp.array([-1.0, 0.0]), jnp.array([1.0, 0.5])
    metric = calibrated.fisher_rao_metric()
    kl = jg.geodesic_bvp(metric, z0, z1, energy="secant", num_points=32)
    midpoint = jg.geodesic_bvp(metric, z0, z1, num_points=32)
    assert kl.result == midpoint.result == jg.RESULTS.successful
    np.testing.assert_allclose(kl.length, midpoint.length, rtol=2e-3)
    # The expected metric varies over orders of magnitude here (its J_kappa term): with the
    # midpoint rule 32 points leave the polyline unresolved, the pullback's secant energy
    # |f(z_k+1) - f(z_k)|^2 resolves it.
    expected = jg.geodesic_bvp(calibrated.expected_metric(), z0, z1, num_points=32, energy="secant")
    assert expected.result == jg.RESULTS.successful


def test_encoder_of_class_labels():
    """With num_classes the encoder one-hot encodes integer labels: relabelling a
    position changes the code, and a Categorical VAE's ELBO is finite."""
    k1, k2 = jax.random.split(jax.random.key(0))
    encoder = jg.nn.Encoder(5, 2, width=8, depth=1, key=k1, num_classes=4)
    assert encoder.mlp.in_size == 20
    x = jnp.array([0, 3, 1, 2, 2])
    mu, std = encoder(x)
    assert mu.shape == std.shape == (2,)
    one_hot = jax.nn.one_hot(x, 4).reshape(-1)
    np.testing.assert_allclose(encoder.mlp(one_hot)[:2], mu, rtol=1e-14)
    assert not np.allclose(encoder(x.at[0].set(1))[0], mu)
    vae = jg.nn.VAE(encoder, jg.nn.CategoricalDecoder(2, 5, 4, width=8, depth=1, key=k2))
    assert np.isfinite(vae.elbo(x, jax.random.key(1)))
