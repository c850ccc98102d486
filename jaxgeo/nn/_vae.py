r"""Variational autoencoders: an amortised Gaussian encoder and the evidence lower bound
with any decoder of `jaxgeo.nn` (or any module with a `log_prob(x, z)`)."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import check_input
from .._custom_types import Point, Scalar


Latent = Float[Array, " latent"]


class Encoder(eqx.Module):
    r"""Amortised Gaussian posterior $q(z \mid x) = N(\mu(x), \mathrm{diag}\,\sigma(x)^2)$."""

    mlp: eqx.nn.MLP
    latent_dim: int = eqx.field(static=True)
    data_dim: int = eqx.field(static=True)

    def __init__(self, data_dim: int, latent_dim: int, *, width: int, depth: int, key):
        self.mlp = eqx.nn.MLP(data_dim, 2 * latent_dim, width, depth, jax.nn.tanh, key=key)
        self.latent_dim, self.data_dim = latent_dim, data_dim

    def __call__(self, x: Point) -> tuple[Latent, Latent]:
        check_input(x, self.data_dim, "Encoder input")
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

    def encode(self, x: Point) -> Latent:
        """The posterior mean $\\mu(x)$: the code of `x`."""
        return self.encoder(x)[0]
