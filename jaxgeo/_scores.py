"""Analytic Stein scores $s(x) = \\nabla_x \\log p(x)$ as Equinox modules."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy as jsp
from jaxtyping import Array, ArrayLike, Float

from ._checks import check_point, check_value
from ._custom_types import Point, Scalar, Tangent


def _check_gaussian(mean: Array, cov: Array, where: str) -> None:
    if mean.ndim != 1 or cov.shape != (mean.shape[0], mean.shape[0]):
        raise ValueError(
            f"{where}: mean must have shape (D,) and cov shape (D, D); got mean "
            f"{mean.shape} and cov {cov.shape}"
        )
    check_value(
        jnp.linalg.cholesky(cov),
        lambda chol: jnp.isfinite(chol) & jnp.allclose(cov, cov.T),
        f"{where}: cov must be symmetric positive definite",
    )


def _gaussian_log_prob(x: Point, mean: Array, chol: Array) -> Scalar:
    z = jsp.linalg.solve_triangular(chol, x - mean, lower=True)
    dim = mean.shape[0]
    log_norm = jnp.sum(jnp.log(jnp.diagonal(chol))) + 0.5 * dim * jnp.log(2 * jnp.pi)
    return -0.5 * jnp.dot(z, z) - log_norm


class GaussianScore(eqx.Module):
    r"""Score of $\mathcal{N}(\mu, \Sigma)$: $s(x) = -\Sigma^{-1}(x - \mu)$."""

    mean: Float[Array, " dim"]
    cov: Float[Array, "dim dim"]

    def __check_init__(self):
        _check_gaussian(self.mean, self.cov, "scores.gaussian")

    def log_prob(self, x: Point) -> Scalar:
        check_point(x, dim=self.mean.shape[0])
        return _gaussian_log_prob(x, self.mean, jnp.linalg.cholesky(self.cov))

    def __call__(self, x: Point) -> Tangent:
        check_point(x, dim=self.mean.shape[0])
        chol = jsp.linalg.cho_factor(self.cov, lower=True)
        return -jsp.linalg.cho_solve(chol, x - self.mean)


class GMMScore(eqx.Module):
    r"""Score of a Gaussian mixture $\sum_k w_k \mathcal{N}(\mu_k, \Sigma_k)$,
    by `jax.grad` of its log-density."""

    weights: Float[Array, " components"]
    means: Float[Array, "components dim"]
    covs: Float[Array, "components dim dim"]

    def __check_init__(self):
        k = self.weights.shape[0] if self.weights.ndim == 1 else None
        if (
            k is None
            or self.means.ndim != 2
            or self.means.shape[0] != k
            or self.covs.shape != (k, self.means.shape[1], self.means.shape[1])
        ):
            raise ValueError(
                "scores.gmm: expected weights (K,), means (K, D), covs (K, D, D); got "
                f"weights {self.weights.shape}, means {self.means.shape}, covs "
                f"{self.covs.shape}"
            )
        check_value(self.weights, lambda w: w >= 0, "scores.gmm: weights must be >= 0")
        for mean, cov in zip(self.means, self.covs):
            _check_gaussian(mean, cov, "scores.gmm")

    def log_prob(self, x: Point) -> Scalar:
        check_point(x, dim=self.means.shape[1])
        chols = jnp.linalg.cholesky(self.covs)
        logs = jax.vmap(_gaussian_log_prob, in_axes=(None, 0, 0))(x, self.means, chols)
        log_w = jnp.log(self.weights / jnp.sum(self.weights))
        return jsp.special.logsumexp(logs + log_w)

    def __call__(self, x: Point) -> Tangent:
        return jax.grad(self.log_prob)(x)


class LogDensityScore(eqx.Module):
    r"""Score of an (unnormalised) log-density: $s(x) = \nabla_x \log p(x)$ by `jax.grad`.

    A score built this way is a true gradient (its Jacobian is symmetric)."""

    log_prob: Callable[[Point], Scalar]

    def __call__(self, x: Point) -> Tangent:
        check_point(x)
        value = jax.eval_shape(self.log_prob, x)
        if value.shape != ():
            raise ValueError(
                f"scores.from_log_density: log_p must return a scalar, got shape {value.shape}"
            )
        return jax.grad(self.log_prob)(x)


def gaussian(mean: Float[ArrayLike, " dim"], cov: Float[ArrayLike, "dim dim"]) -> GaussianScore:
    r"""The score of $\mathcal{N}(\mu, \Sigma)$, $s(x) = -\Sigma^{-1}(x - \mu)$."""
    return GaussianScore(jnp.asarray(mean), jnp.asarray(cov))


def gmm(
    weights: Float[ArrayLike, " components"],
    means: Float[ArrayLike, "components dim"],
    covs: Float[ArrayLike, "components dim dim"],
) -> GMMScore:
    """The score of a Gaussian mixture (weights are normalised)."""
    return GMMScore(jnp.asarray(weights), jnp.asarray(means), jnp.asarray(covs))


def from_log_density(log_p: Callable[[Point], Scalar]) -> LogDensityScore:
    """The score $\\nabla_x \\log p(x)$ of a scalar log-density function."""
    return LogDensityScore(log_p)
