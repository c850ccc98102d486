r"""The training loop: [`jaxgeo.train.fit`][] runs compiled chunks of optimiser steps,
with a progress bar, checkpoints and exact resume."""

import logging
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import optax
from jax.typing import ArrayLike
from jaxtyping import PRNGKeyArray, PyTree

from .._checks import check_examples
from .._progress import progress_bar
from ._checkpoint import committed_checkpoints, load_checkpoint, run_meta, save_checkpoint
from ._losses import Loss


logger = logging.getLogger("jaxgeo.train")


class FitResult(eqx.Module):
    """What [`jaxgeo.train.fit`][] returns: the trained `model`, the loss of every step
    (`losses`, shape `(num_steps,)`, including steps restored from a checkpoint) and
    `resumed_from`, the step the run resumed from (0 for a fresh run)."""

    model: Any
    losses: np.ndarray
    resumed_from: int


def default_trainable(model: PyTree) -> PyTree:
    """`fit`'s default filter: every inexact array, except within submodules whose
    class sets `constant = True`."""

    def constant(node) -> bool:
        return getattr(node, "constant", False) is True

    return jtu.tree_map(
        lambda node: not constant(node) and eqx.is_inexact_array(node), model, is_leaf=constant
    )


def fit(
    loss_fn: Loss,
    model,
    data: PyTree[ArrayLike],
    *,
    optimizer: optax.GradientTransformation,
    num_steps: int,
    batch_size: int,
    key: PRNGKeyArray,
    steps_per_chunk: int = 100,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 1000,
    progress: bool | None = None,
    trainable=None,
) -> FitResult:
    r"""Minimise `loss_fn(model, batch, key)` with an optax optimiser.

    Steps run in compiled chunks of `steps_per_chunk` steps (a `lax.scan`); between
    chunks the progress bar (tqdm) and the log (`logging.getLogger("jaxgeo.train")`) are
    updated. Step $k$ draws its mini-batch (with replacement) and its loss key from
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
    - `steps_per_chunk`: optimiser steps per compiled chunk.
    - `checkpoint_dir`: where to write checkpoints (model, optimiser state, step, key
      and the losses so far) every `checkpoint_every` steps (a multiple of
      `steps_per_chunk`) and at the end. If it holds a checkpoint of this run, training
      resumes from it; a checkpoint of another architecture, optimiser configuration
      (hyperparameters), loss (or its `functools.partial` arguments) or seed is an
      error, and is never overwritten. The newest checkpoint and the one before it are
      kept: if the newest's files changed after they were written (SHA-256 recorded in
      `checkpoint.json`), training resumes from the one before, with a warning; if both
      are damaged, or `checkpoint.json` is unreadable, it is an error naming the file.
    - `progress`: show a progress bar; default: only on a terminal.
    - `trainable`: an Equinox filter (function or pytree of bools) choosing the
      trained leaves; the rest is frozen. Default: every inexact array, except those of
      submodules whose class sets `constant = True` (the input standardisation of the
      score networks, e.g. [`jaxgeo.nn.MLPScore`][]: fixed data statistics).

    **Returns:** a [`jaxgeo.train.FitResult`][].
    """
    if num_steps < 0 or batch_size < 1 or steps_per_chunk < 1:
        raise ValueError(
            f"fit: need num_steps >= 0, batch_size >= 1, steps_per_chunk >= 1, got "
            f"{num_steps}, {batch_size}, {steps_per_chunk}"
        )
    if checkpoint_dir is not None and (checkpoint_every < 1 or checkpoint_every % steps_per_chunk):
        raise ValueError(
            f"fit: checkpoint_every ({checkpoint_every}) must be a positive multiple of "
            f"steps_per_chunk ({steps_per_chunk})"
        )
    check_examples(data, "fit")
    data = jtu.tree_map(jnp.asarray, data)
    params, static = eqx.partition(
        model, default_trainable(model) if trainable is None else trainable
    )

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
    meta = run_meta(loss_fn, optimizer, params, opt_state, data, key, num_steps, batch_size)
    directory = None if checkpoint_dir is None else Path(checkpoint_dir)
    if directory is not None and committed_checkpoints(directory):
        params, opt_state, step, losses = load_checkpoint(directory, params, opt_state, key, meta)
        resumed_from = step
        logger.info("resumed from %s at step %d", directory, step)

    history = [losses[:step]]
    bar = progress_bar(num_steps, step, progress, unit="step", desc="fit")
    try:
        while step < num_steps:
            length = min(steps_per_chunk, num_steps - step)
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
                losses = np.concatenate(history)
                save_checkpoint(directory, params, opt_state, step, key, losses, meta)
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
        # optax (0.2.8) computes its bias corrections as `decay**count` with a Python
        # float and an int32 count, which jax_numpy_dtype_promotion="strict" rejects:
        # the optimiser's own arithmetic runs under standard promotion, the loss does not.
        with jax.numpy_dtype_promotion("standard"):
            updates, o = optimizer.update(grads, o, p)
        return (eqx.apply_updates(p, updates), o), value

    (params, opt_state), values = jax.lax.scan(
        one_step, (params, opt_state), start + jnp.arange(length)
    )
    return params, opt_state, values
