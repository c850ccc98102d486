r"""Training: score-matching losses and one `fit` loop with checkpoints and resume.

A loss is any function `loss_fn(model, batch, key) -> scalar`; bind hyperparameters
with `functools.partial`, e.g. `partial(denoising_score_matching, sigma=0.1)`.
"""

import hashlib
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import optax
from jax.typing import ArrayLike
from jaxtyping import Array, Float, PRNGKeyArray, PyTree


logger = logging.getLogger("jaxgeo.train")

Batch = PyTree[Array]
Loss = Callable[[Any, Batch, PRNGKeyArray], Float[Array, ""]]


# --- score-matching losses -------------------------------------------------------------


def denoising_score_matching(
    model: Callable, batch: Float[Array, "batch dim"], key: PRNGKeyArray, *, sigma: float
) -> Float[Array, ""]:
    r"""Denoising score matching at one noise level (Vincent 2011):
    $\frac12\mathbb{E}\,|\sigma s_\theta(x + \sigma\varepsilon) + \varepsilon|^2$,
    the $\sigma^2$-weighted regression onto the score $-\varepsilon/\sigma$ of the
    Gaussian kernel. Its minimiser is the score of the data smoothed by
    $N(0, \sigma^2 I)$, which tends to the data score as $\sigma \to 0$."""
    eps = jax.random.normal(key, batch.shape, batch.dtype)
    scores = jax.vmap(model)(batch + sigma * eps)
    return 0.5 * jnp.mean(jnp.sum((sigma * scores + eps) ** 2, axis=-1))


def noise_levels(sigma_max: float, sigma_min: float, num: int) -> Float[Array, " num"]:
    """A geometric sequence of `num` noise levels from `sigma_max` down to `sigma_min`."""
    return jnp.geomspace(sigma_max, sigma_min, num)


def multiscale_denoising_score_matching(
    model: Callable,
    batch: Float[Array, "batch dim"],
    key: PRNGKeyArray,
    *,
    sigmas: Float[Array, " levels"],
) -> Float[Array, ""]:
    r"""Denoising score matching over noise levels (Song & Ermon 2019) for a
    noise-conditional model `model(x, sigma)`: each example gets a level drawn
    uniformly from `sigmas`, and the loss is
    $\frac12\mathbb{E}\,|\sigma s_\theta(x + \sigma\varepsilon, \sigma) + \varepsilon|^2$
    (the $\lambda(\sigma) = \sigma^2$ weighting)."""
    key_level, key_noise = jax.random.split(key)
    sigmas = jnp.asarray(sigmas, batch.dtype)
    sigma = jax.random.choice(key_level, sigmas, (batch.shape[0],))
    eps = jax.random.normal(key_noise, batch.shape, batch.dtype)
    scores = jax.vmap(model)(batch + sigma[:, None] * eps, sigma)
    return 0.5 * jnp.mean(jnp.sum((sigma[:, None] * scores + eps) ** 2, axis=-1))


def sliced_score_matching(
    model: Callable,
    batch: Float[Array, "batch dim"],
    key: PRNGKeyArray,
    *,
    num_projections: int = 1,
) -> Float[Array, ""]:
    r"""Sliced score matching with variance reduction (Song et al. 2019):
    $\mathbb{E}_{x, v}\big[v^\top J_{s_\theta}(x)\, v\big] + \frac12\mathbb{E}_x|s_\theta(x)|^2$
    with Gaussian projections $v$, one Jacobian–vector product per projection. It
    matches the score of the data itself (no smoothing), up to a constant."""
    vs = jax.random.normal(key, (num_projections,) + batch.shape, batch.dtype)

    def per_example(x, v):
        s, jvp = jax.linearize(model, x)
        return jnp.mean(jax.vmap(lambda u: jnp.dot(u, jvp(u)))(v)) + 0.5 * jnp.dot(s, s)

    return jnp.mean(jax.vmap(per_example, in_axes=(0, 1))(batch, vs))


def ensemble_loss(loss_fn: Loss) -> Loss:
    """The loss of a stacked ensemble (a model built with `eqx.filter_vmap`): the sum of
    the members' losses on the same batch, each with its own key. Summing makes each
    member's gradient its own loss's gradient, so with an element-wise optimiser (Adam,
    SGD) training the stack is training each member: one program, not a Python loop."""

    def loss(models, batch, key):
        num_members = jtu.tree_leaves(eqx.filter(models, eqx.is_array))[0].shape[0]
        keys = jax.random.split(key, num_members)
        member_loss = eqx.filter_vmap(loss_fn, in_axes=(eqx.if_array(0), None, 0))
        return jnp.sum(member_loss(models, batch, keys))

    return loss


# --- the training loop ---------------------------------------------------------------


class FitResult(eqx.Module):
    """What [`jaxgeo.train.fit`][] returns: the trained `model`, the loss of every step
    (`losses`, shape `(num_steps,)`, including steps restored from a checkpoint) and
    `resumed_from`, the step the run resumed from (0 for a fresh run)."""

    model: Any
    losses: np.ndarray
    resumed_from: int


def _check_data(data: PyTree[ArrayLike]) -> None:
    leaves = jtu.tree_leaves(data)
    if not leaves:
        raise ValueError("fit: data is empty")
    sizes = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in leaves}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(
            "fit: every data array needs the same leading (example) axis, got shapes "
            f"{[np.shape(leaf) for leaf in leaves]}"
        )
    for leaf in leaves:
        arr = np.asarray(leaf)
        if np.issubdtype(arr.dtype, np.inexact) and not np.all(np.isfinite(arr)):
            bad = int(np.sum(~np.isfinite(arr)))
            raise ValueError(
                f"fit: the data contain {bad} NaN or infinite values (array of shape "
                f"{arr.shape}); clean them before training"
            )


def _fingerprint(tree) -> str:
    """A hash of the paths, shapes and dtypes of a pytree's array leaves: stable across
    processes (unlike a treedef's text, which shows function addresses)."""
    leaves = jtu.tree_flatten_with_path(eqx.filter(tree, eqx.is_array))[0]
    text = str([(jtu.keystr(path), leaf.shape, str(leaf.dtype)) for path, leaf in leaves])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _data_hash(data) -> str:
    digest = hashlib.sha256()
    for leaf in jtu.tree_leaves(data):
        arr = np.ascontiguousarray(leaf)
        digest.update(str((arr.shape, arr.dtype)).encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()[:16]


def _key_data(key: PRNGKeyArray) -> Array:
    """The raw bits of a key (typed `jax.random.key` or legacy `PRNGKey`)."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return jnp.asarray(key)


def _save(directory: Path, model, opt_state, step: int, key, losses, meta: dict) -> None:
    """Atomic: the state and losses go to files named by the step, then
    `checkpoint.json`, which names them, is replaced in one `os.replace` (the commit).
    A crash at any point leaves the previous checkpoint complete and in use."""
    directory.mkdir(parents=True, exist_ok=True)
    state, losses_file = f"state-{step}.eqx", f"losses-{step}.npy"
    eqx.tree_serialise_leaves(
        directory / state, (model, opt_state, jnp.asarray(step), _key_data(key))
    )
    np.save(directory / losses_file, np.asarray(losses))
    previous = _committed(directory)
    info = dict(meta, step=step, state=state, losses=losses_file)
    (directory / "checkpoint.json.tmp").write_text(json.dumps(info, indent=1))
    os.replace(directory / "checkpoint.json.tmp", directory / "checkpoint.json")
    for name in previous - {state, losses_file}:
        (directory / name).unlink(missing_ok=True)


def _committed(directory: Path) -> set[str]:
    path = directory / "checkpoint.json"
    if not path.exists():
        return set()
    info = json.loads(path.read_text())
    return {info["state"], info["losses"]}


def _load(directory: Path, model, opt_state, key, meta: dict):
    info = json.loads((directory / "checkpoint.json").read_text())
    if info.get("fingerprint") != meta["fingerprint"]:
        raise ValueError(
            f"fit: the checkpoint in {directory} was written for a different model or "
            f"optimiser (structure {info.get('fingerprint')}, this run's "
            f"{meta['fingerprint']}); use another checkpoint_dir or delete it. "
            "Nothing was overwritten."
        )
    if info.get("data") != meta["data"]:
        raise ValueError(
            f"fit: the checkpoint in {directory} was written for different data; use "
            "another checkpoint_dir or delete it. Nothing was overwritten."
        )
    if info.get("step", 0) > meta["num_steps"]:
        raise ValueError(
            f"fit: the checkpoint in {directory} is at step {info['step']}, beyond this "
            f"run's num_steps = {meta['num_steps']}"
        )
    if info.get("key") != meta["key"]:
        raise ValueError(
            f"fit: the checkpoint in {directory} was written with a different key "
            "(seed); resuming it would not reproduce this run. Nothing was overwritten."
        )
    if info.get("batch_size") != meta["batch_size"]:
        raise ValueError(
            f"fit: the checkpoint in {directory} was written with batch_size "
            f"{info.get('batch_size')}, this run uses {meta['batch_size']}; resuming would "
            "not reproduce an uninterrupted run. Nothing was overwritten."
        )
    model, opt_state, step, _ = eqx.tree_deserialise_leaves(
        directory / info["state"], (model, opt_state, jnp.asarray(0), _key_data(key))
    )
    losses = np.load(directory / info["losses"])
    if int(step) != info["step"] or losses.shape[0] < int(step):
        raise ValueError(f"fit: the checkpoint in {directory} is inconsistent; delete it")
    return model, opt_state, int(step), losses


def fit(
    loss_fn: Loss,
    model,
    data: PyTree[ArrayLike],
    *,
    optimizer: optax.GradientTransformation,
    num_steps: int,
    batch_size: int,
    key: PRNGKeyArray,
    chunk_size: int = 100,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 1000,
    progress: bool | None = None,
    trainable=eqx.is_inexact_array,
) -> FitResult:
    r"""Minimise `loss_fn(model, batch, key)` with an optax optimiser.

    Steps run in compiled chunks of `chunk_size` (a `lax.scan`); between chunks the
    progress bar (tqdm) and the log (`logging.getLogger("jaxgeo.train")`) are updated.
    Step $k$ draws its mini-batch (with replacement) and its loss key from
    `jax.random.fold_in(key, k)`: the run is a function of `key` alone, whatever the
    chunking, so a run resumed from a checkpoint ends with exactly the parameters of
    an uninterrupted one. The compiled chunk is cached on the loss function, the
    optimiser and the model's architecture: pass the *same* `loss_fn` and `optimizer`
    objects to repeated calls (e.g. one model after another) to compile once.

    **Arguments:**

    - `loss_fn`: e.g. `partial(jg.train.denoising_score_matching, sigma=0.1)`; for an
      ensemble stacked with `eqx.filter_vmap`, wrap it in
      [`jaxgeo.train.ensemble_loss`][].
    - `model`: an Equinox module; its `trainable` leaves are trained.
    - `data`: an array of examples `(n, ...)`, or a pytree of such arrays.
    - `optimizer`, `num_steps`, `batch_size`, `key`.
    - `chunk_size`: steps per compiled chunk.
    - `checkpoint_dir`: where to write checkpoints (model, optimiser state, step, key
      and the losses so far) every `checkpoint_every` steps (a multiple of
      `chunk_size`) and at the end. If it holds a checkpoint of this run, training
      resumes from it; a checkpoint of another architecture or seed is an error, and
      is never overwritten.
    - `progress`: show a progress bar; default: only on a terminal.
    - `trainable`: an Equinox filter (function or pytree of bools) choosing the
      trained leaves; the rest is frozen. Default: every inexact array.

    **Returns:** a [`jaxgeo.train.FitResult`][].
    """
    if num_steps < 0 or batch_size < 1 or chunk_size < 1:
        raise ValueError(
            f"fit: need num_steps >= 0, batch_size >= 1, chunk_size >= 1, got "
            f"{num_steps}, {batch_size}, {chunk_size}"
        )
    if checkpoint_dir is not None and (checkpoint_every < 1 or checkpoint_every % chunk_size):
        raise ValueError(
            f"fit: checkpoint_every ({checkpoint_every}) must be a positive multiple of "
            f"chunk_size ({chunk_size})"
        )
    _check_data(data)
    data = jtu.tree_map(jnp.asarray, data)
    params, static = eqx.partition(model, trainable)

    def loss_of(p, batch, k):
        return loss_fn(eqx.combine(p, static), batch, k)

    # Trace once with one batch: shape errors surface here, with the data's shapes.
    try:
        batch, loss_key = _batch_at(data, key, 0, batch_size)
        out = eqx.filter_eval_shape(loss_of, params, batch, loss_key)
    except (ValueError, TypeError) as error:
        shapes = jtu.tree_map(lambda a: a.shape, data)
        raise ValueError(
            f"fit: the loss failed on a batch of the data (data shapes {shapes}, batch "
            f"size {batch_size}): {error}"
        ) from error
    if out.shape != ():
        raise ValueError(f"fit: loss_fn must return a scalar, got shape {out.shape}")

    opt_state = optimizer.init(params)
    step, losses, resumed_from = 0, np.zeros(0), 0
    meta = dict(
        fingerprint=_fingerprint((params, opt_state)),
        key=np.asarray(_key_data(key)).ravel().tolist(),
        data=_data_hash(data),
        num_steps=num_steps,
        batch_size=batch_size,
    )
    directory = None if checkpoint_dir is None else Path(checkpoint_dir)
    if directory is not None and _committed(directory):
        params, opt_state, step, losses = _load(directory, params, opt_state, key, meta)
        resumed_from = step
        logger.info("resumed from %s at step %d", directory, step)

    history = [losses[:step]]
    bar = _progress_bar(num_steps, step, progress)
    try:
        while step < num_steps:
            length = min(chunk_size, num_steps - step)
            params, opt_state, values = _run_chunk(
                loss_fn,
                optimizer,
                static,
                params,
                opt_state,
                data,
                key,
                jnp.asarray(step),
                length,
                batch_size,
            )
            values = np.asarray(values)
            step += length
            history.append(values)
            if not np.all(np.isfinite(values)):
                raise FloatingPointError(
                    f"fit: the loss became non-finite by step {step}; the last checkpoint "
                    "was kept (lower the learning rate or check the data)"
                )
            bar.update(length)
            bar.set_postfix(loss=f"{values.mean():.4g}")
            logger.info("step %d loss %.6g", step, values.mean())
            if directory is not None and (step % checkpoint_every == 0 or step == num_steps):
                _save(directory, params, opt_state, step, key, np.concatenate(history), meta)
    finally:
        bar.close()
    return FitResult(eqx.combine(params, static), np.concatenate(history), resumed_from)


def _batch_at(data, key, step, batch_size: int):
    """Step `step`'s mini-batch (drawn with replacement) and loss key: a function of
    `key` and `step` alone."""
    key_batch, key_loss = jax.random.split(jax.random.fold_in(key, step))
    num_examples = jtu.tree_leaves(data)[0].shape[0]
    index = jax.random.randint(key_batch, (batch_size,), 0, num_examples)
    return jtu.tree_map(lambda a: a[index], data), key_loss


@eqx.filter_jit
def _run_chunk(
    loss_fn, optimizer, static, params, opt_state, data, key, start, length: int, batch_size: int
):
    """`length` optimiser steps from step `start` in one `lax.scan`. At module level,
    so that repeated `fit` calls with the same loss, optimiser and architecture reuse
    one compiled program."""

    def loss_of(p, batch, k):
        return loss_fn(eqx.combine(p, static), batch, k)

    def one_step(carry, step):
        p, o = carry
        batch, k = _batch_at(data, key, step, batch_size)
        value, grads = eqx.filter_value_and_grad(loss_of)(p, batch, k)
        updates, o = optimizer.update(grads, o, p)
        return (eqx.apply_updates(p, updates), o), value

    (params, opt_state), values = jax.lax.scan(
        one_step, (params, opt_state), start + jnp.arange(length)
    )
    return params, opt_state, values


def _progress_bar(total: int, initial: int, progress: bool | None):
    from tqdm.auto import tqdm

    disable = (not sys.stderr.isatty()) if progress is None else not progress
    return tqdm(total=total, initial=initial, disable=disable, unit="step", desc="fit")


# --- variational autoencoders ------------------------------------------------------------


def elbo_loss(vae, batch: Float[Array, "batch dim"], key: PRNGKeyArray) -> Float[Array, ""]:
    """The negative mean ELBO of a batch under a [`jaxgeo.nn.VAE`][] (one
    reparametrised sample per example)."""
    keys = jax.random.split(key, batch.shape[0])
    return -jnp.mean(jax.vmap(vae.elbo)(batch, keys))


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
):
    r"""An untrained [`jaxgeo.nn.RBFPrecision`][] for the latent `codes`: centres by
    k-means (scikit-learn), bandwidths
    $\lambda_k = \frac12 (a\,\bar d_k)^{-2}$ with $\bar d_k$ the mean distance of the
    codes of cluster $k$ to its centre and $a$ = `bandwidth_scale` (Latent Space Oddity,
    Sec. 4), precision floor $\zeta$ = `floor`."""
    from ._vae import RBFPrecision

    centres, bandwidths = _rbf_centres(codes, num_centres, bandwidth_scale, seed, "rbf_precision")
    return RBFPrecision(
        centres=centres,
        bandwidths=bandwidths,
        raw_weights=jnp.zeros((data_dim, num_centres)),
        floor=floor,
    )


def extrapolating_decoder(
    params_fn: Callable,
    codes: Float[ArrayLike, "n latent"],
    far: Float[ArrayLike, " params"],
    *,
    num_centres: int = 32,
    bandwidth_scale: float = 1.0,
    seed: int = 0,
):
    r"""A [`jaxgeo.nn.ExtrapolatingDecoder`][] around `params_fn`, falling back to the
    parameters `far` away from the latent `codes` (RBF centres and bandwidths as in
    [`jaxgeo.train.rbf_precision`][]). The weight of `params_fn` is only about 0.5–0.9
    on the codes (more with a larger `bandwidth_scale`, at the price of a wider reach), so
    train or fine-tune `params_fn` *through* the blend with [`jaxgeo.train.fit`][],
    freezing `centres`, `bandwidths` and `far`."""
    from ._vae import ExtrapolatingDecoder

    centres, bandwidths = _rbf_centres(
        codes, num_centres, bandwidth_scale, seed, "extrapolating_decoder"
    )
    return ExtrapolatingDecoder(params_fn, centres, bandwidths, jnp.asarray(far, centres.dtype))


def fit_extrapolating_decoder(
    decoder,
    family,
    codes: Float[ArrayLike, "n latent"],
    data: ArrayLike,
    *,
    key: PRNGKeyArray,
    num_steps: int,
    batch_size: int = 128,
    optimizer: optax.GradientTransformation | None = None,
    **fit_kwargs,
):
    r"""Maximum likelihood of `data` given their latent `codes` under a
    [`jaxgeo.nn.ExtrapolatingDecoder`][] of `family` parameters, training only
    `decoder.params_fn` (the blend's `centres`, `bandwidths` and `far` stay fixed).
    Keyword arguments go to [`jaxgeo.train.fit`][] (e.g. `checkpoint_dir`). Returns the
    [`jaxgeo.train.FitResult`][]."""
    codes, data = jnp.asarray(codes), jnp.asarray(data)
    if codes.shape[0] != data.shape[0]:
        raise ValueError(
            f"fit_extrapolating_decoder: codes {codes.shape} and data {data.shape} differ in length"
        )
    if not jtu.tree_leaves(eqx.filter(decoder.params_fn, eqx.is_inexact_array)):
        raise ValueError(
            "fit_extrapolating_decoder: decoder.params_fn holds no parameters to train (a "
            "plain lambda hides them): pass a Module or eqx.Partial, e.g. "
            "eqx.Partial(lambda net, z: family.constrain(net(z)), net)"
        )
    trainable = jtu.tree_map(lambda _: False, decoder)
    trainable = eqx.tree_at(
        lambda d: d.params_fn, trainable, jtu.tree_map(eqx.is_inexact_array, decoder.params_fn)
    )

    return _fit_given_codes(
        lambda model, z, x: family.log_prob(model(z), x),
        decoder,
        codes,
        data,
        trainable=trainable,
        optimizer=optax.adam(1e-3) if optimizer is None else optimizer,
        num_steps=num_steps,
        batch_size=batch_size,
        key=key,
        **fit_kwargs,
    )


def _fit_given_codes(log_likelihood, decoder, codes, data, **fit_kwargs) -> FitResult:
    """[`jaxgeo.train.fit`][] of the mean negative `log_likelihood(decoder, z, x)` of
    `data` given their fixed latent `codes`."""

    def loss(model, batch, key):
        del key
        z, x = batch
        return -jnp.mean(jax.vmap(lambda z, x: log_likelihood(model, z, x))(z, x))

    return fit(loss, decoder, (codes, data), **fit_kwargs)


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
):
    r"""Second-stage training of the calibrated variance (Latent Space Oddity): with the
    decoder mean `mean_fn` frozen, fit the RBF precision $\beta(z)$ (centres from
    k-means of `codes`) by maximum likelihood of `data` given their `codes`. Returns a
    [`jaxgeo.nn.CalibratedGaussianDecoder`][]; its `metric()` is the expected pullback.
    Keyword arguments go to [`jaxgeo.train.fit`][] (e.g. `checkpoint_dir`)."""
    from ._vae import CalibratedGaussianDecoder

    codes, data = jnp.asarray(codes), jnp.asarray(data)
    if codes.shape[0] != data.shape[0]:
        raise ValueError(
            f"calibrate_variance: codes {codes.shape} and data {data.shape} differ in length"
        )
    precision = rbf_precision(
        codes,
        data.shape[1],
        num_centres=num_centres,
        bandwidth_scale=bandwidth_scale,
        floor=floor,
        seed=int(jax.random.randint(key, (), 0, 2**30)),
    )
    decoder = CalibratedGaussianDecoder(mean_fn, precision)
    trainable = jtu.tree_map(lambda _: False, decoder)
    trainable = eqx.tree_at(lambda d: d.precision.raw_weights, trainable, True)

    result = _fit_given_codes(
        lambda model, z, x: model.log_prob(x, z),
        decoder,
        codes,
        data,
        trainable=trainable,
        optimizer=optax.adam(1e-2) if optimizer is None else optimizer,
        num_steps=num_steps,
        batch_size=batch_size,
        key=key,
        **fit_kwargs,
    )
    return result.model
