r"""Variational autoencoders: an amortised Gaussian encoder and the evidence lower bound
with any decoder ([`jaxgeo.nn.AbstractDecoder`][])."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, Real

from .._checks import check_integer, check_labels, check_point
from .._custom_types import Scalar
from ._decoders import AbstractDecoder


Latent = Float[Array, " latent"]


class Encoder(eqx.Module):
    r"""Amortised Gaussian posterior $q(z \mid x) = N(\mu(x), \mathrm{diag}\,\sigma(x)^2)$.

    With `num_classes`, the inputs are integer class labels in `[0, num_classes)` of
    shape `(data_dim,)` (the data of a [`jaxgeo.nn.CategoricalDecoder`][], e.g.
    sequences over an alphabet), one-hot encoded before the MLP; a float dtype or a
    label outside the range is an error (under `jit`, by `eqx.error_if`). Otherwise the
    inputs are real vectors of shape `(data_dim,)`.
    """

    mlp: eqx.nn.MLP
    latent_dim: int = eqx.field(static=True)
    data_dim: int = eqx.field(static=True)
    num_classes: int | None = eqx.field(static=True)

    def __init__(
        self,
        data_dim: int,
        latent_dim: int,
        *,
        width: int,
        depth: int,
        key,
        num_classes: int | None = None,
    ):
        check_integer(data_dim, "Encoder: data_dim")
        check_integer(latent_dim, "Encoder: latent_dim")
        if num_classes is not None:
            check_integer(num_classes, "Encoder: num_classes", minimum=2)
            num_classes = int(num_classes)
        data_dim, latent_dim = int(data_dim), int(latent_dim)
        inputs = data_dim if num_classes is None else data_dim * num_classes
        self.mlp = eqx.nn.MLP(inputs, 2 * latent_dim, width, depth, jax.nn.tanh, key=key)
        self.latent_dim, self.data_dim, self.num_classes = latent_dim, data_dim, num_classes

    def __call__(self, x: Real[Array, " data"]) -> tuple[Latent, Latent]:
        if self.num_classes is None:
            check_point(x, "Encoder input", self.data_dim)
        else:
            where = f"Encoder(num_classes={self.num_classes}) input"
            x = check_labels(x, self.num_classes, (self.data_dim,), where)
            x = jax.nn.one_hot(x, self.num_classes, dtype=self.mlp.layers[0].weight.dtype)
            x = x.reshape(-1)
        out = self.mlp(x)
        return out[: self.latent_dim], jax.nn.softplus(out[self.latent_dim :]) + 1e-4


class VAE(eqx.Module):
    r"""A variational autoencoder: an [`jaxgeo.nn.Encoder`][] and any
    [`jaxgeo.nn.AbstractDecoder`][]. `elbo(x, key)` is the single-sample reparametrised
    evidence lower bound $\mathbb{E}_q[\log p(x \mid z)] - \mathrm{KL}(q(z \mid x)
    \,\|\, N(0, I))$ for one example."""

    encoder: Encoder
    decoder: AbstractDecoder

    def elbo(self, x: Array, key: PRNGKeyArray) -> Scalar:
        x = jnp.asarray(x)
        if self.encoder.num_classes is None:
            x = x.astype(float)  # (integer data, e.g. binary, are fine too)
        mu, std = self.encoder(x)
        z = mu + std * jax.random.normal(key, mu.shape, mu.dtype)
        kl = 0.5 * jnp.sum(mu**2 + std**2 - 1 - 2 * jnp.log(std))
        return self.decoder.log_prob(x, z) - kl

    def encode(self, x: Real[Array, " data"]) -> Latent:
        r"""The posterior mean $\mu(x)$: the code of `x`."""
        return self.encoder(x)[0]
