r"""Training losses: score matching (denoising at one or several noise levels, sliced),
stacked ensembles, and the VAE's evidence lower bound.

A loss is any function `loss_fn(model, batch, key) -> scalar`; bind hyperparameters
with `functools.partial`, e.g. `partial(denoising_score_matching, sigma=0.1)`.
"""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Float, PRNGKeyArray, PyTree, Real


Batch = PyTree[Array]
Loss = Callable[[Any, Batch, PRNGKeyArray], Float[Array, ""]]


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


def elbo_loss(vae, batch: Real[Array, "batch dim"], key: PRNGKeyArray) -> Float[Array, ""]:
    """The negative mean ELBO of a batch under a [`jaxgeo.nn.VAE`][] (one
    reparametrised sample per example; integer class labels for a VAE of labels)."""
    keys = jax.random.split(key, batch.shape[0])
    return -jnp.mean(jax.vmap(vae.elbo)(batch, keys))
