"""Products of independent copies of one family (see `jaxgeo.families`)."""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from ._base import AbstractFamily


class Product(AbstractFamily):
    """`size` independent copies of `family` (e.g. one per output dimension of a
    decoder): parameters concatenated (`size × P`), log-probabilities and KLs summed,
    Fisher information block-diagonal (`fisher_inner` never builds the full matrix)."""

    constraint: ClassVar[str] = "valid parameters of the component family in every block"
    family: AbstractFamily
    size: int = eqx.field(static=True)

    @property
    def num_params(self) -> int:
        return self.size * self.family.num_params

    def _split(self, eta):
        return eta.reshape(self.size, self.family.num_params)

    def valid(self, eta):
        return jnp.all(jax.vmap(self.family.valid)(self._split(eta)))

    def in_support(self, x):
        return jnp.all(jax.vmap(self.family.in_support)(x))

    def _log_prob(self, eta, x):
        return jnp.sum(jax.vmap(self.family._log_prob)(self._split(eta), x))

    def sample(self, eta, key, shape=()):
        eta = self.check(eta)
        keys = jax.random.split(key, self.size)
        out = jax.vmap(lambda e, k: self.family.sample(e, k, shape))(self._split(eta), keys)
        return jnp.moveaxis(out, 0, len(shape))  # shape + (size,) + event_shape

    def fisher(self, eta):
        blocks = jax.vmap(self.family.fisher)(self._split(self.check(eta)))
        return jax.scipy.linalg.block_diag(*blocks)

    def fisher_inner(self, eta, u, v):
        blocks = jax.vmap(self.family.fisher)(self._split(self.check(eta)))
        return jnp.einsum("ni,nij,nj->", self._split(u), blocks, self._split(v))

    def kl(self, eta_p, eta_q):
        p, q = self._split(self.check(eta_p)), self._split(self.check(eta_q))
        return jnp.sum(jax.vmap(self.family.kl)(p, q))

    def constrain(self, u):
        return jax.vmap(self.family.constrain)(self._split(u)).reshape(-1)

    def unconstrain(self, eta):
        return jax.vmap(self.family.unconstrain)(self._split(eta)).reshape(-1)
