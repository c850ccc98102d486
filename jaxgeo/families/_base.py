r"""Distribution families on their parameter coordinates, for information geometry.

A family is a stateless Equinox module; its *parameters* `eta` are a 1-D array, a point
of the statistical manifold (coordinates as in DESIGN.md: Normal (μ, σ); MultivariateNormal
(μ, lower triangle of the Cholesky factor of Σ, row by row); Bernoulli p;
Categorical the first K−1 probabilities; Beta (α, β); Dirichlet α; Exponential rate;
Poisson rate; Gamma (shape k, rate β); VonMises (μ, κ); VonMisesFisher the natural
parameter κμ; Binomial p; Geometric p). Every family has

- `log_prob(eta, x)`, `sample(eta, key, shape=())`, `mean(eta)` (the mean of `x`; the
  class probabilities of a label, the mean direction of an angle);
- `fisher(eta)`: the closed-form Fisher information $I(\eta) = \mathbb{E}[\nabla_\eta
  \log p\,\nabla_\eta \log p^\top]$, shape `(P, P)`;
- `kl(eta_p, eta_q)`: the closed-form $\mathrm{KL}(p \,\|\, q)$ (and
  [`jaxgeo.families.kl_monte_carlo`][] for families without one);
- `check(eta)`: the parameter constraints, as a clear error (`eqx.error_if`, so also
  under `jit`); `log_prob` also checks that `x` is in the support;
- `constrain(u)` / `unconstrain(eta)`: maps from and to unconstrained coordinates
  (softplus for positivity, sigmoid/softmax for probabilities), for decoders.
"""

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from .._checks import check_integer
from .._custom_types import Scalar


Params = Float[Array, " params"]
Fisher = Float[Array, "params params"]


def softplus_inverse(y):
    """The inverse of `jax.nn.softplus`, for `y > 0`."""
    return y + jnp.log(-jnp.expm1(-y))


def constrain_real_positive(u: Params) -> Params:
    """Unconstrained `u` to a (real, positive) pair of parameters, e.g. (μ, σ)."""
    return jnp.stack([u[0], jax.nn.softplus(u[1])])


def unconstrain_real_positive(eta: Params) -> Params:
    """The inverse of `constrain_real_positive`."""
    return jnp.stack([eta[0], softplus_inverse(eta[1])])


class AbstractFamily(eqx.Module):
    """A parametric family of distributions; see the module docstring.

    A subclass states its parameter constraints in words as the class variable
    `constraint` (used in error messages), e.g. `constraint = "(μ, σ) with σ > 0"`, and
    may state its support as `support`, e.g. `support = "{0, 1}"`.
    """

    constraint: eqx.AbstractClassVar[str]
    # The support in words, for error messages (families of this package override it).
    support: ClassVar[str] = "the family's support"

    @property
    @abc.abstractmethod
    def num_params(self) -> int:
        """The number of parameters P."""

    @abc.abstractmethod
    def valid(self, eta: Params) -> Bool[Array, ""]:
        """Whether `eta` satisfies the parameter constraints."""

    @abc.abstractmethod
    def _log_prob(self, eta: Params, x) -> Scalar: ...

    @abc.abstractmethod
    def in_support(self, x) -> Bool[Array, ""]:
        """Whether the observation `x` is in the support."""

    @abc.abstractmethod
    def sample(self, eta: Params, key: PRNGKeyArray, shape: tuple[int, ...] = ()) -> Array:
        """Samples of shape `shape + event_shape`."""

    @abc.abstractmethod
    def mean(self, eta: Params) -> Array:
        r"""The mean $\mathbb{E}_\eta[x]$, of the shape of an observation (a unit
        vector's, von Mises–Fisher, lies inside the ball); a label's (Categorical) is
        its class probabilities, the mean of its one-hot code, and an angle's (von
        Mises) the mean direction $\mu$."""

    @abc.abstractmethod
    def fisher(self, eta: Params) -> Fisher:
        r"""The Fisher information matrix $I(\eta)$ (closed form)."""

    @abc.abstractmethod
    def kl(self, eta_p: Params, eta_q: Params) -> Scalar:
        r"""$\mathrm{KL}(p_{\eta_p} \,\|\, p_{\eta_q})$ (closed form)."""

    @abc.abstractmethod
    def constrain(self, u: Params) -> Params:
        """Unconstrained coordinates (e.g. a decoder's output) to parameters."""

    @abc.abstractmethod
    def unconstrain(self, eta: Params) -> Params:
        """The inverse of `constrain`."""

    def check(self, eta: Params) -> Params:
        """`eta`, with an error (also under `jit`) if it violates the constraints."""
        eta = jnp.asarray(eta)
        if eta.shape != (self.num_params,):
            raise ValueError(
                f"{type(self).__name__} has {self.num_params} parameters, got an array of "
                f"shape {eta.shape}"
            )
        message = f"{type(self).__name__}: invalid parameters (needs {self.constraint})"
        return eqx.error_if(eta, ~self.valid(eta), message)

    def log_prob(self, eta: Params, x) -> Scalar:
        r"""$\log p_\eta(x)$; an error if `eta` is invalid or `x` outside the support."""
        eta = self.check(eta)
        x = jnp.asarray(x)
        x = eqx.error_if(
            x,
            ~self.in_support(x),
            f"{type(self).__name__}: observation outside the support ({self.support})",
        )
        return self._log_prob(eta, x)

    def fisher_inner(self, eta: Params, u: Params, v: Params) -> Scalar:
        r"""$u^\top I(\eta) v$ (block-wise, without the full matrix, for products)."""
        return jnp.dot(u, self.fisher(eta) @ v)


class AbstractPositiveFamily(AbstractFamily):
    """A family whose parameters are all positive: softplus to and from unconstrained
    coordinates."""

    def valid(self, eta):
        return jnp.all(eta > 0)

    def constrain(self, u):
        return jax.nn.softplus(u)

    def unconstrain(self, eta):
        return softplus_inverse(eta)


def kl_monte_carlo(
    family: AbstractFamily, eta_p: Params, eta_q: Params, key: PRNGKeyArray, num_samples: int
) -> Scalar:
    r"""$\mathrm{KL}(p \,\|\, q) \approx \frac1n\sum_i \log p(x_i) - \log q(x_i)$,
    $x_i \sim p$: the fallback for families without a closed form (unbiased, standard
    error $O(n^{-1/2})$)."""
    check_integer(num_samples, "kl_monte_carlo: num_samples")
    xs = family.sample(eta_p, key, (num_samples,))
    return jnp.mean(jax.vmap(lambda x: family.log_prob(eta_p, x) - family.log_prob(eta_q, x))(xs))
