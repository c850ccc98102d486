"""Products of independent families: copies of one family, or different families (see
`jaxgeo.families`)."""

import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import as_int, check_integer
from ._base import AbstractFamily


class Product(AbstractFamily):
    """`size` independent copies of `family` (e.g. one per output dimension of a
    decoder): parameters concatenated (`size × P`), log-probabilities and KLs summed,
    Fisher information block-diagonal (`fisher_inner` never builds the full matrix)."""

    constraint: ClassVar[str] = "valid parameters of the component family in every block"
    support: ClassVar[str] = "that of the component family, in every block"
    family: AbstractFamily
    size: int = eqx.field(static=True, converter=as_int)

    def __check_init__(self):
        if not isinstance(self.family, AbstractFamily):
            raise ValueError(
                f"Product: family must be a jaxgeo.families family, got {type(self.family)}"
            )
        check_integer(self.size, "Product: size (the number of copies)")

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

    def mean(self, eta):
        """Each copy's mean, shape `(size,)` + the component's."""
        return jax.vmap(self.family.mean)(self._split(self.check(eta)))

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


class Joint(AbstractFamily):
    """Independent components of different families, e.g. a Normal per position
    coordinate and a von Mises–Fisher orientation: parameters concatenated in the order
    of `families`, observations concatenated flat (each component's observation
    flattened), log-probabilities and KLs summed, Fisher information block-diagonal.

    **Arguments:** `families`, a non-empty tuple of families (a
    [`jaxgeo.families.Product`][] counts as one).
    """

    constraint: ClassVar[str] = "valid parameters of every component family"
    support: ClassVar[str] = "that of every component family"
    families: tuple[AbstractFamily, ...]

    def __check_init__(self):
        if not isinstance(self.families, tuple) or not self.families:
            raise ValueError("Joint: families must be a non-empty tuple of families")
        for i, family in enumerate(self.families):
            if not isinstance(family, AbstractFamily):
                raise ValueError(
                    f"Joint: families[{i}] must be a jaxgeo.families family, got "
                    f"{type(family).__name__} (a class? instantiate it, e.g. Normal())"
                )

    @property
    def num_params(self) -> int:
        return sum(f.num_params for f in self.families)

    def event_shapes(self) -> tuple[tuple[int, ...], ...]:
        """The shape of one observation of each component."""
        return tuple(
            jax.eval_shape(lambda f=f: f.sample(jnp.ones(f.num_params), jax.random.key(0))).shape
            for f in self.families
        )

    def _split(self, a, sizes):
        return jnp.split(a, np.cumsum(sizes)[:-1], axis=-1)

    def _params(self, eta):
        return self._split(eta, [f.num_params for f in self.families])

    def _observations(self, x):
        shapes = self.event_shapes()
        pieces = self._split(x, [math.prod(s) for s in shapes])
        return [p.reshape(p.shape[:-1] + s) for p, s in zip(pieces, shapes)]

    def valid(self, eta):
        return jnp.all(jnp.stack([f.valid(e) for f, e in zip(self.families, self._params(eta))]))

    def in_support(self, x):
        size = sum(math.prod(s) for s in self.event_shapes())
        if jnp.shape(x) != (size,):
            raise ValueError(f"Joint: an observation has shape ({size},), got {jnp.shape(x)}")
        pieces = self._observations(x)
        return jnp.all(jnp.stack([f.in_support(p) for f, p in zip(self.families, pieces)]))

    def _log_prob(self, eta, x):
        parts = zip(self.families, self._params(eta), self._observations(x))
        return sum(f._log_prob(e, p) for f, e, p in parts)

    def mean(self, eta):
        """The components' means, flattened and concatenated (as an observation)."""
        parts = zip(self.families, self._params(self.check(eta)))
        return jnp.concatenate([jnp.reshape(f.mean(e), -1) for f, e in parts])

    def sample(self, eta, key, shape=()):
        eta = self.check(eta)
        keys = jax.random.split(key, len(self.families))
        parts = [
            f.sample(e, k, shape).reshape(*shape, -1)
            for f, e, k in zip(self.families, self._params(eta), keys)
        ]
        return jnp.concatenate(parts, axis=-1)

    def fisher(self, eta):
        blocks = [f.fisher(e) for f, e in zip(self.families, self._params(self.check(eta)))]
        return jax.scipy.linalg.block_diag(*blocks)

    def fisher_inner(self, eta, u, v):
        parts = zip(self.families, self._params(self.check(eta)), self._params(u), self._params(v))
        return sum(f.fisher_inner(e, a, b) for f, e, a, b in parts)

    def kl(self, eta_p, eta_q):
        p, q = self._params(self.check(eta_p)), self._params(self.check(eta_q))
        return sum(f.kl(a, b) for f, a, b in zip(self.families, p, q))

    def constrain(self, u):
        return jnp.concatenate([f.constrain(a) for f, a in zip(self.families, self._params(u))])

    def unconstrain(self, eta):
        parts = zip(self.families, self._params(eta))
        return jnp.concatenate([f.unconstrain(a) for f, a in parts])
