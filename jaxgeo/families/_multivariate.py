"""Families of multivariate distributions: MultivariateNormal, Categorical, Dirichlet (on
their parameter coordinates; see `jaxgeo.families`)."""

import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.special as jss
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._checks import as_int, check_integer
from .._linalg import cholesky, solve_triangular
from ._base import AbstractFamily, AbstractPositiveFamily, Params, softplus_inverse


class MultivariateNormal(AbstractFamily):
    """Multivariate Normal on R^D, parameters (μ, vech L): the mean, then the lower
    triangle of the Cholesky factor L of Σ = L Lᵀ row by row, with diag L > 0."""

    constraint: ClassVar[str] = "finite (μ, vech L) with diag L > 0"
    support: ClassVar[str] = "finite vectors of R^D"
    dim: int = eqx.field(static=True, converter=as_int)

    def __check_init__(self):
        check_integer(self.dim, "MultivariateNormal: dim")

    @property
    def num_params(self) -> int:
        return self.dim + self.dim * (self.dim + 1) // 2

    def mean_cholesky(self, eta: Params) -> tuple[Float[Array, " D"], Float[Array, "D D"]]:
        """The mean μ and the Cholesky factor L of the covariance."""
        rows, cols = np.tril_indices(self.dim)
        chol = jnp.zeros((self.dim, self.dim), eta.dtype).at[rows, cols].set(eta[self.dim :])
        return eta[: self.dim], chol

    def params(self, mean: ArrayLike, cov: ArrayLike) -> Params:
        """The parameters of N(mean, cov)."""
        mean, cov = jnp.asarray(mean), jnp.asarray(cov)
        if mean.shape != (self.dim,) or cov.shape != (self.dim, self.dim):
            raise ValueError(
                f"MultivariateNormal({self.dim}) needs a mean of shape ({self.dim},) and a "
                f"covariance of shape ({self.dim}, {self.dim}), got {mean.shape}, {cov.shape}"
            )
        asymmetry = jnp.max(jnp.abs(cov - cov.T)) > 1e3 * jnp.finfo(cov.dtype).eps * jnp.max(
            jnp.abs(cov)
        )
        cov = eqx.error_if(
            cov, asymmetry, f"MultivariateNormal({self.dim}).params: cov must be symmetric"
        )
        chol = cholesky(cov)
        chol = eqx.error_if(
            chol,
            ~jnp.all(jnp.isfinite(chol)),
            f"MultivariateNormal({self.dim}).params: cov must be positive definite (finite, "
            "with positive eigenvalues); its Cholesky factorisation failed",
        )
        rows, cols = np.tril_indices(self.dim)
        return jnp.concatenate([mean, chol[rows, cols]])

    def _diag(self, eta):
        return jnp.diag(self.mean_cholesky(eta)[1])

    def valid(self, eta):
        return jnp.isfinite(eta).all() & jnp.all(self._diag(eta) > 0)

    def in_support(self, x):
        return jnp.isfinite(x).all()

    def _whiten(self, chol, x):
        return solve_triangular(chol, x, lower=True)

    def _log_prob(self, eta, x):
        mu, chol = self.mean_cholesky(eta)
        if x.shape != (self.dim,):
            raise ValueError(f"MultivariateNormal({self.dim}): observation of shape {x.shape}")
        w = self._whiten(chol, x - mu)
        log_det = jnp.sum(jnp.log(jnp.diag(chol)))
        return -0.5 * jnp.dot(w, w) - log_det - 0.5 * self.dim * math.log(2 * math.pi)

    def mean(self, eta):
        return self.check(eta)[: self.dim]

    def sample(self, eta, key, shape=()):
        eta = self.check(eta)
        mu, chol = self.mean_cholesky(eta)
        eps = jax.random.normal(key, shape + (self.dim,), eta.dtype)
        return jnp.expand_dims(mu, range(len(shape))) + eps @ chol.T

    def _directions(self, chol, u):
        r"""$L^{-1}\delta\mu$ and the symmetric $S = A + A^\top$, $A = L^{-1}\delta L$, for a
        tangent u: then $u^\top I v = (L^{-1}\delta\mu_u)\cdot(L^{-1}\delta\mu_v) +
        \tfrac12 \operatorname{tr}(S_u S_v)$ (as $\Sigma^{-1}\delta\Sigma = L^{-\top} S
        L^\top$)."""
        d_mu, d_chol = self.mean_cholesky(u)
        a = self._whiten(chol, d_chol)
        return self._whiten(chol, d_mu), a + a.T

    def fisher_inner(self, eta, u, v):
        chol = self.mean_cholesky(self.check(eta))[1]
        (mu_u, s_u), (mu_v, s_v) = self._directions(chol, u), self._directions(chol, v)
        return jnp.dot(mu_u, mu_v) + 0.5 * jnp.sum(s_u * s_v)

    def fisher(self, eta):
        chol = self.mean_cholesky(self.check(eta))[1]
        basis = jnp.eye(self.num_params, dtype=eta.dtype)
        mu, s = jax.vmap(lambda u: self._directions(chol, u))(basis)
        return mu @ mu.T + 0.5 * jnp.einsum("iab,jab->ij", s, s)

    def kl(self, eta_p, eta_q):
        (mp, lp), (mq, lq) = (self.mean_cholesky(self.check(e)) for e in (eta_p, eta_q))
        w = self._whiten(lq, mq - mp)
        trace = jnp.sum(self._whiten(lq, lp) ** 2)
        log_det = jnp.sum(jnp.log(jnp.diag(lq))) - jnp.sum(jnp.log(jnp.diag(lp)))
        return 0.5 * (trace + jnp.dot(w, w) - self.dim) + log_det

    def _map_diag(self, eta, fn):
        index = self.dim + np.cumsum(np.arange(1, self.dim + 1)) - 1  # the diagonal of L
        return eta.at[index].set(fn(eta[index]))

    def constrain(self, u):
        return self._map_diag(u, jax.nn.softplus)

    def unconstrain(self, eta):
        return self._map_diag(eta, softplus_inverse)


class Categorical(AbstractFamily):
    """Categorical over K classes, parameters the first K−1 probabilities (positive,
    summing to less than 1; the last is one minus their sum)."""

    constraint: ClassVar[str] = "K−1 positive probabilities summing to less than 1"
    support: ClassVar[str] = "the integers 0, 1, ..., K−1"
    num_classes: int = eqx.field(static=True, converter=as_int)

    def __check_init__(self):
        check_integer(self.num_classes, "Categorical: num_classes", minimum=2)

    @property
    def num_params(self) -> int:
        return self.num_classes - 1

    def probs(self, eta: Params) -> Float[Array, " classes"]:
        return jnp.concatenate([eta, 1 - jnp.sum(eta, keepdims=True)])

    def valid(self, eta):
        return jnp.all(self.probs(eta) > 0)

    def in_support(self, x):
        return (x == jnp.round(x)) & (x >= 0) & (x < self.num_classes)

    def _log_prob(self, eta, x):
        return jnp.log(self.probs(eta))[x.astype(int)]

    def mean(self, eta):
        return self.probs(self.check(eta))

    def sample(self, eta, key, shape=()):
        eta = self.check(eta)
        return jax.random.categorical(key, jnp.log(self.probs(eta)), shape=shape)

    def fisher(self, eta):
        pi = self.probs(self.check(eta))
        return jnp.diag(1 / pi[:-1]) + 1 / pi[-1]

    def kl(self, eta_p, eta_q):
        p, q = self.probs(self.check(eta_p)), self.probs(self.check(eta_q))
        return jnp.sum(p * (jnp.log(p) - jnp.log(q)))

    def constrain(self, u):
        return jax.nn.softmax(jnp.concatenate([u, jnp.zeros(1, u.dtype)]))[:-1]

    def unconstrain(self, eta):
        p = self.probs(eta)
        return jnp.log(p[:-1]) - jnp.log(p[-1])


class Dirichlet(AbstractPositiveFamily):
    """Dirichlet on the (K−1)-simplex, parameters α ∈ (0, ∞)^K."""

    constraint: ClassVar[str] = "every α_k > 0"
    support: ClassVar[str] = "positive vectors summing to 1 (to 1e-6)"
    num_classes: int = eqx.field(static=True, converter=as_int)

    def __check_init__(self):
        check_integer(self.num_classes, "Dirichlet: num_classes", minimum=2)

    @property
    def num_params(self) -> int:
        return self.num_classes

    def in_support(self, x):
        return jnp.all(x > 0) & (jnp.abs(jnp.sum(x) - 1) < 1e-6)

    def _log_prob(self, eta, x):
        log_beta = jnp.sum(jss.gammaln(eta)) - jss.gammaln(jnp.sum(eta))
        return jnp.sum((eta - 1) * jnp.log(x)) - log_beta

    def mean(self, eta):
        alpha = self.check(eta)
        return alpha / jnp.sum(alpha)

    def sample(self, eta, key, shape=()):
        eta = self.check(eta)
        return jax.random.dirichlet(key, eta, shape, eta.dtype)

    def fisher(self, eta):
        alpha = self.check(eta)
        return jnp.diag(jss.polygamma(1, alpha)) - jss.polygamma(1, jnp.sum(alpha))

    def kl(self, eta_p, eta_q):
        a, b = self.check(eta_p), self.check(eta_q)
        a0, b0 = jnp.sum(a), jnp.sum(b)
        return (
            jss.gammaln(a0)
            - jnp.sum(jss.gammaln(a))
            - jss.gammaln(b0)
            + jnp.sum(jss.gammaln(b))
            + jnp.sum((a - b) * (jss.digamma(a) - jss.digamma(a0)))
        )
