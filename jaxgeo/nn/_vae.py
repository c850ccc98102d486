r"""Variational autoencoders: an amortised Gaussian encoder and the evidence lower bound
with any decoder of `jaxgeo.nn` (or any module with a `log_prob(x, z)`)."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, Real

from .._checks import check_input
from .._custom_types import Scalar


Latent = Float[Array, " latent"]


class Encoder(eqx.Module):
    r"""Amortised Gaussian posterior $q(z \mid x) = N(\mu(x), \mathrm{diag}\,\sigma(x)^2)$.

    With `num_classes`, the inputs are integer class labels of shape `(data_dim,)` (the
    data of a [`jaxgeo.nn.CategoricalDecoder`][], e.g. sequences over an alphabet), one-hot
    encoded before the MLP; otherwise real vectors of shape `(data_dim,)`.
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
        inputs = data_dim if num_classes is None else data_dim * num_classes
        self.mlp = eqx.nn.MLP(inputs, 2 * latent_dim, width, depth, jax.nn.tanh, key=key)
        self.latent_dim, self.data_dim, self.num_classes = latent_dim, data_dim, num_classes

    def __call__(self, x: Real[Array, " data"]) -> tuple[Latent, Latent]:
        if self.num_classes is None:
            check_input(x, self.data_dim, "Encoder input")
        else:
            if jnp.shape(x) != (self.data_dim,):
                raise ValueError(
                    f"Encoder input: expected {self.data_dim} class labels, got shape "
                    f"{jnp.shape(x)}"
                )
            x = jax.nn.one_hot(
                x.astype(int), self.num_classes, dtype=self.mlp.layers[0].weight.dtype
            )
            x = x.reshape(-1)
        out = self.mlp(x)
        return out[: self.latent_dim], jax.nn.softplus(out[self.latent_dim :]) + 1e-4


class VAE(eqx.Module):
    r"""A variational autoencoder: an [`jaxgeo.nn.Encoder`][] and any decoder with a
    `log_prob(x, z)`. `elbo(x, key)` is the single-sample reparametrised evidence lower
    bound $\mathbb{E}_q[\log p(x \mid z)] - \mathrm{KL}(q(z \mid x) \,\|\, N(0, I))$
    for one example."""

    encoder: Encoder
    decoder: eqx.Module

    def elbo(self, x: Array, key: PRNGKeyArray) -> Scalar:
        mu, std = self.encoder(jnp.asarray(x, float))  # integer labels are fine too
        z = mu + std * jax.random.normal(key, mu.shape, mu.dtype)
        kl = 0.5 * jnp.sum(mu**2 + std**2 - 1 - 2 * jnp.log(std))
        return self.decoder.log_prob(x, z) - kl

    def encode(self, x: Real[Array, " data"]) -> Latent:
        """The posterior mean $\\mu(x)$: the code of `x`."""
        return self.encoder(x)[0]
