r"""Second-stage training of decoders given fixed latent codes: the calibrated variance of
*Latent Space Oddity* (Arvanitidis, Hansen, Hauberg 2018) and the extrapolating decoder
of distribution parameters, both with RBFs at k-means centres of the codes."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import optax
from jax.typing import ArrayLike
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import check_same_length
from ..families import VonMisesFisher
from ..families._base import AbstractFamily, softplus_inverse
from ..nn._decoders import (
    CalibratedGaussianDecoder,
    ExtrapolatingDecoder,
    rbf_features,
    RBFPrecision,
)
from ..nn._pose import check_poses, PoseDecoder
from ._fit import fit, FitResult


def _rbf_centres(codes, num_centres: int, bandwidth_scale: float, seed: int, name: str):
    r"""k-means centres of `codes` (scikit-learn) and bandwidths
    $\lambda_k = \frac12 (a\,\bar d_k)^{-2}$, $\bar d_k$ the mean distance of cluster
    k's codes to its centre, a = `bandwidth_scale` (Latent Space Oddity, Sec. 4)."""
    from sklearn.cluster import KMeans

    codes = np.asarray(codes, np.float64)
    if codes.ndim != 2 or not np.all(np.isfinite(codes)):
        raise ValueError(f"{name}: codes must be a finite (n, latent) array, got {codes.shape}")
    kmeans = KMeans(num_centres, n_init=4, random_state=seed).fit(codes)
    centres = kmeans.cluster_centers_
    spread = np.array(
        [
            np.mean(np.linalg.norm(codes[kmeans.labels_ == k] - centres[k], axis=1))
            for k in range(num_centres)
        ]
    )
    spread = np.maximum(spread, 1e-3 * np.mean(spread))
    return jnp.asarray(centres), jnp.asarray(0.5 / (bandwidth_scale * spread) ** 2)


def rbf_precision(
    codes: Float[ArrayLike, "n latent"],
    data_dim: int,
    *,
    num_centres: int = 32,
    bandwidth_scale: float = 1.0,
    floor: float = 1e-2,
    seed: int = 0,
) -> RBFPrecision:
    r"""An untrained [`jaxgeo.nn.RBFPrecision`][] for the latent `codes`: centres by
    k-means (scikit-learn), bandwidths
    $\lambda_k = \frac12 (a\,\bar d_k)^{-2}$ with $\bar d_k$ the mean distance of the
    codes of cluster $k$ to its centre and $a$ = `bandwidth_scale` (Latent Space Oddity,
    Sec. 4), precision floor $\zeta$ = `floor`."""
    centres, bandwidths = _rbf_centres(codes, num_centres, bandwidth_scale, seed, "rbf_precision")
    return RBFPrecision(
        centres=centres,
        bandwidths=bandwidths,
        raw_weights=jnp.zeros((data_dim, num_centres)),
        floor=floor,
    )


def extrapolating_decoder(
    params_fn: Callable,
    family: AbstractFamily,
    codes: Float[ArrayLike, "n latent"],
    far: Float[ArrayLike, " params"],
    *,
    num_centres: int = 32,
    bandwidth_scale: float = 1.0,
    switch: float | None = None,
    seed: int = 0,
) -> ExtrapolatingDecoder:
    r"""A [`jaxgeo.nn.ExtrapolatingDecoder`][] of `family` around `params_fn`, falling
    back to the parameters `far` away from the latent `codes` (RBF centres and bandwidths as in
    [`jaxgeo.train.rbf_precision`][]). The weight of `params_fn` is only about 0.5–0.9
    on the codes (more with a larger `bandwidth_scale`, at the price of a wider reach), so
    train or fine-tune `params_fn` *through* the blend with [`jaxgeo.train.fit`][],
    freezing `centres`, `bandwidths` and `far`. `switch`: a positive sharpness for the
    decoder's sharp switch to `far` at one bandwidth unit from the nearest centre
    instead of the soft blend (see [`jaxgeo.nn.ExtrapolatingDecoder`][]); the codes then
    have weight about 1, except beyond the centres' reach (more `num_centres`, or a
    smaller `bandwidth_scale`, widens it)."""
    far = jnp.asarray(far)
    if far.shape != (family.num_params,) or not bool(family.valid(far)):
        raise ValueError(
            f"extrapolating_decoder: far must be valid parameters of {type(family).__name__} "
            f"(shape ({family.num_params},), {family.constraint}), got shape {far.shape}"
        )
    centres, bandwidths = _rbf_centres(
        codes, num_centres, bandwidth_scale, seed, "extrapolating_decoder"
    )
    far = far.astype(centres.dtype)
    return ExtrapolatingDecoder(params_fn, family, centres, bandwidths, far, switch)


def _decoder_log_prob(decoder, z, x):
    return decoder.log_prob(x, z)


def _fit_part_given_codes(
    decoder, part: Callable, codes, data, log_likelihood: Callable = _decoder_log_prob, **fit_kwargs
) -> FitResult:
    """[`jaxgeo.train.fit`][] of the mean negative `log_likelihood(decoder, z, x)`
    (default: the decoder's `log_prob(x, z)`) of `data` given their fixed latent
    `codes`, training only the arrays of `part(decoder)` (the rest of the decoder is
    frozen)."""
    trainable = jtu.tree_map(lambda _: False, decoder)
    trainable = eqx.tree_at(part, trainable, jtu.tree_map(eqx.is_inexact_array, part(decoder)))

    def loss(model, batch, key):
        del key
        z, x = batch
        return -jnp.mean(jax.vmap(lambda z, x: log_likelihood(model, z, x))(z, x))

    return fit(loss, decoder, (codes, data), trainable=trainable, **fit_kwargs)


def fit_extrapolating_decoder(
    decoder: ExtrapolatingDecoder,
    codes: Float[ArrayLike, "n latent"],
    data: ArrayLike,
    *,
    key: PRNGKeyArray,
    num_steps: int,
    batch_size: int = 128,
    optimizer: optax.GradientTransformation | None = None,
    **fit_kwargs,
) -> FitResult:
    r"""Maximum likelihood of `data` given their latent `codes` under a
    [`jaxgeo.nn.ExtrapolatingDecoder`][], training only
    `decoder.params_fn` (the blend's `centres`, `bandwidths` and `far` stay fixed).
    Keyword arguments go to [`jaxgeo.train.fit`][] (e.g. `checkpoint_dir`). Returns the
    [`jaxgeo.train.FitResult`][]."""
    codes, data = jnp.asarray(codes), jnp.asarray(data)
    check_same_length(codes, data, ("codes", "data"), "fit_extrapolating_decoder")
    if not jtu.tree_leaves(eqx.filter(decoder.params_fn, eqx.is_inexact_array)):
        raise ValueError(
            "fit_extrapolating_decoder: decoder.params_fn holds no parameters to train (a "
            "plain lambda hides them): pass a Module or eqx.Partial, e.g. "
            "eqx.Partial(lambda net, z: family.constrain(net(z)), net)"
        )
    optimizer = optax.adam(1e-3) if optimizer is None else optimizer
    fit_kwargs.update(optimizer=optimizer, num_steps=num_steps, batch_size=batch_size, key=key)
    return _fit_part_given_codes(decoder, lambda d: d.params_fn, codes, data, **fit_kwargs)


def calibrate_variance(
    mean_fn: Callable,
    codes: Float[ArrayLike, "n latent"],
    data: Float[ArrayLike, "m dim"],
    *,
    key: PRNGKeyArray,
    num_centres: int = 32,
    bandwidth_scale: float = 1.0,
    floor: float = 1e-2,
    num_steps: int = 2000,
    batch_size: int = 256,
    optimizer: optax.GradientTransformation | None = None,
    **fit_kwargs,
) -> FitResult:
    r"""Second-stage training of the calibrated variance (Latent Space Oddity): with the
    decoder mean `mean_fn` frozen, fit the RBF precision $\beta(z)$ (centres from
    k-means of `codes`) by maximum likelihood of `data` given their `codes`. Returns the
    [`jaxgeo.train.FitResult`][], whose `model` is a
    [`jaxgeo.nn.CalibratedGaussianDecoder`][] (its `expected_metric()` is the expected
    pullback). Keyword arguments go to [`jaxgeo.train.fit`][] (e.g. `checkpoint_dir`)."""
    codes, data = jnp.asarray(codes), jnp.asarray(data)
    check_same_length(codes, data, ("codes", "data"), "calibrate_variance")
    precision = rbf_precision(
        codes,
        data.shape[1],
        num_centres=num_centres,
        bandwidth_scale=bandwidth_scale,
        floor=floor,
        seed=int(jax.random.randint(key, (), 0, 2**30)),
    )
    optimizer = optax.adam(1e-2) if optimizer is None else optimizer
    fit_kwargs.update(optimizer=optimizer, num_steps=num_steps, batch_size=batch_size, key=key)
    decoder = CalibratedGaussianDecoder(mean_fn, precision)
    return _fit_part_given_codes(
        decoder, lambda d: d.precision.raw_weights, codes, data, **fit_kwargs
    )


def _codes_and_poses(decoder: PoseDecoder, codes, poses, where: str):
    """`codes` `(n, latent_dim)` and `poses` `(n, 7)` (unit quaternions) as arrays, or a
    `ValueError` naming `where`."""
    codes, poses = jnp.asarray(codes), jnp.asarray(poses)
    if poses.ndim != 2:
        raise ValueError(f"{where}: expected poses of shape (n, 7), got shape {poses.shape}")
    poses = check_poses(poses, where)
    if codes.ndim != 2 or codes.shape[1] != decoder.latent_dim:
        raise ValueError(
            f"{where}: expected codes of shape (n, {decoder.latent_dim}) (the decoder's "
            f"latent_dim), got shape {codes.shape}"
        )
    check_same_length(codes, poses, ("codes", "poses"), where)
    return codes, poses


def pose_noise_mle(
    decoder: PoseDecoder,
    codes: Float[ArrayLike, "n latent"],
    poses: Float[ArrayLike, "n 7"],
) -> tuple[Float[Array, "3"], Float[Array, ""]]:
    r"""The maximum-likelihood noise of `poses` about the means a
    [`jaxgeo.nn.PoseDecoder`][] decodes from their `codes`, constant over the codes:
    the position standard deviations $\hat\sigma_i = (\frac1n \sum_j
    (p_{ji} - \mu_{p,i}(z_j))^2)^{1/2}$ (about the decoded mean, not the residuals'
    own mean), shape `(3,)`, and the von Mises–Fisher concentration $\hat\kappa$ of the
    quaternions about the decoded directions
    ([`jaxgeo.families.VonMisesFisher.concentration_mle`][] of the mean gap
    $\frac1n\sum_j \frac12 |q_j/|q_j| - \mu_r(z_j)|^2 = 1 - \bar R$, free of
    cancellation), a scalar. The starting point of
    [`jaxgeo.train.calibrate_pose_decoder`][], and the reference to check a calibration
    against on held-out poses."""
    where = "pose_noise_mle"
    codes, poses = _codes_and_poses(decoder, codes, poses, where)
    position, direction = jax.vmap(decoder.position_and_direction)(codes)
    std = jnp.sqrt(jnp.mean(jnp.square(poses[:, :3] - position), axis=0))
    q = poses[:, 3:] / jnp.linalg.norm(poses[:, 3:], axis=1, keepdims=True)
    gap = jnp.mean(0.5 * jnp.sum(jnp.square(q - direction), axis=1))
    return std, VonMisesFisher(4).concentration_mle(gap)


def calibrate_pose_decoder(
    decoder: PoseDecoder,
    codes: Float[ArrayLike, "n latent"],
    poses: Float[ArrayLike, "n 7"],
    *,
    key: PRNGKeyArray,
    num_centres: int = 16,
    bandwidth_scale: float = 1.0,
    position_floor: float = 1e-2,
    concentration_floor: float = 1e-2,
    num_steps: int = 2000,
    batch_size: int = 256,
    optimizer: optax.GradientTransformation | None = None,
    **fit_kwargs,
) -> FitResult:
    r"""Second-stage training of a [`jaxgeo.nn.PoseDecoder`][], as
    [`jaxgeo.train.calibrate_variance`][] does for Gaussian decoders: with the decoder's
    network frozen, its position precision $\sigma_p^{-2}$ and its concentration
    $\kappa_r$ become RBF networks ([`jaxgeo.nn.RBFPrecision`][], centres by k-means of
    `codes`, floors `position_floor` and `concentration_floor`: the position standard
    deviation grows to $\zeta^{-1/2}$ and the orientation turns almost uniform away from
    the data) fitted by maximum likelihood of the `poses` given their `codes`. Keyword
    arguments go to [`jaxgeo.train.fit`][]; returns its [`jaxgeo.train.FitResult`][],
    whose `model` is the calibrated decoder.

    Training starts from the maximum-likelihood constants of
    [`jaxgeo.train.pose_noise_mle`][] (no cap on $\kappa$: the mean resultant length is
    inverted exactly, so a concentration of $10^4$ is reached) and, unless `optimizer`
    is given, takes Adam steps relative to each weight block's RMS (1 % at first, cosine
    decay to 0.1 %): absolute steps of 1e-2 barely move weights of $10^4$.

    `poses`: shape `(n, 7)`, a position and a unit quaternion per row (norm 1 to 1e-3,
    else an error: normalise them); `codes`: shape `(n, decoder.latent_dim)`, finite."""
    where = "calibrate_pose_decoder"
    codes, poses = _codes_and_poses(decoder, codes, poses, where)
    if not np.all(np.isfinite(np.asarray(codes))):
        raise ValueError(f"{where}: codes must be finite (got NaN or inf)")
    if not isinstance(num_centres, int) or not 1 <= num_centres <= len(codes):
        raise ValueError(
            f"{where}: num_centres must be an integer in [1, {len(codes)}] (k-means "
            f"centres of the codes: at most one per code), got {num_centres!r}"
        )
    seed = int(jax.random.randint(key, (), 0, 2**30))
    rbf = dict(num_centres=num_centres, bandwidth_scale=bandwidth_scale, seed=seed)
    # Start the weights where the precision and the concentration on the codes are their
    # maximum-likelihood values for the frozen network (positions: often ~1e4 per m² for
    # centimetre noise; orientations: kappa ~ 1e4 for 0.03 rad): Adam's steps on softplus
    # weights from zero would need tens of thousands of steps to get there.
    std, kappa = pose_noise_mle(decoder, codes, poses)
    decoder = eqx.tree_at(
        lambda d: (d.position_precision, d.concentration),
        decoder,
        (
            _started(rbf_precision(codes, 3, floor=position_floor, **rbf), codes, std**-2),
            _started(rbf_precision(codes, 1, floor=concentration_floor, **rbf), codes, kappa[None]),
        ),
    )
    if optimizer is None:
        # Steps relative to each weight block's size (1 % of its RMS at first, decaying):
        # Adam's absolute steps of 1e-2 cannot move weights of ~1e4 (a precision in m^-2
        # or a concentration), and the RBF sum's variation over the codes must be trained
        # out, not only its mean.
        optimizer = optax.chain(
            optax.adam(optax.cosine_decay_schedule(1e-2, num_steps, alpha=0.1)),
            optax.scale_by_param_block_rms(),
        )
    fit_kwargs.update(optimizer=optimizer, num_steps=num_steps, batch_size=batch_size, key=key)
    return _fit_part_given_codes(
        decoder,
        lambda d: (d.position_precision.raw_weights, d.concentration.raw_weights),
        codes,
        poses,
        # (the poses were checked above: no run-time check, and no host callback, in the
        # training step)
        lambda model, z, x: model.family.log_prob(model.params(z), x),
        **fit_kwargs,
    )


def _started(precision: RBFPrecision, codes, target) -> RBFPrecision:
    """`precision` with equal weights that make its value about `target` (per output) at
    the typical code."""
    features = jax.vmap(lambda z: rbf_features(z, precision.centres, precision.bandwidths))(codes)
    value = jnp.maximum(target - precision.floor, 1e-6) / jnp.mean(jnp.sum(features, axis=1))
    raw = softplus_inverse(value)
    return eqx.tree_at(
        lambda p: p.raw_weights,
        precision,
        jnp.broadcast_to(raw[:, None], precision.raw_weights.shape),
    )
