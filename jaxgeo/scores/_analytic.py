r"""Analytic Stein scores $s(x) = \nabla_x \log p(x)$: the functions `gaussian`, `gmm`
and `from_log_density`, and the Equinox modules they return (not exported: the
functions are the public form)."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy as jsp
from jaxtyping import Array, Float

from .._checks import check_point, check_value
from .._custom_types import Input, Point, Scalar, Tangent
from .._linalg import cho_solve, cholesky
from .._numerics import HIGHEST


def _check_gaussian(mean: Array, cov: Array, where: str) -> None:
    if mean.ndim != 1 or cov.shape != (mean.shape[0], mean.shape[0]):
        raise ValueError(
            f"{where}: mean must have shape (D,) and cov shape (D, D); got mean "
            f"{mean.shape} and cov {cov.shape}"
        )
    check_value(
        cholesky(cov),
        lambda chol: jnp.isfinite(chol) & jnp.allclose(cov, cov.T),
        f"{where}: cov must be symmetric positive definite",
    )


def _precision_and_log_normaliser(cov: Array) -> tuple[Array, Array]:
    r"""$\Sigma^{-1}$ and $\log((2\pi)^{D/2}|\Sigma|^{1/2})$, from one Cholesky factor."""
    chol = cholesky(cov)
    eye = jnp.eye(cov.shape[-1], dtype=cov.dtype)
    precision = cho_solve(chol, eye)
    precision = 0.5 * (precision + precision.T)
    dim = cov.shape[-1]
    log_norm = jnp.sum(jnp.log(jnp.diagonal(chol))) + 0.5 * dim * jnp.log(2 * jnp.pi)
    return precision, log_norm


def _gaussian_log_prob(x: Point, mean: Array, precision: Array, log_norm: Array) -> Scalar:
    z = x - mean
    return -0.5 * jnp.dot(z, jnp.dot(precision, z, precision=HIGHEST)) - log_norm


class GaussianScore(eqx.Module):
    r"""Score of $\mathcal{N}(\mu, \Sigma)$: $s(x) = -\Sigma^{-1}(x - \mu)$.

    The precision $\Sigma^{-1}$ is computed once, at construction, so a score
    evaluation is one matrix-vector product. Build the module inside a function to
    differentiate with respect to `cov`."""

    mean: Float[Array, " dim"]
    cov: Float[Array, "dim dim"]
    precision: Float[Array, "dim dim"]
    log_normaliser: Float[Array, ""]

    def __init__(self, mean: Input, cov: Input):
        mean, cov = jnp.asarray(mean), jnp.asarray(cov)
        _check_gaussian(mean, cov, "scores.gaussian")
        self.mean, self.cov = mean, cov
        self.precision, self.log_normaliser = _precision_and_log_normaliser(cov)

    def log_prob(self, x: Point) -> Scalar:
        check_point(x, dim=self.mean.shape[0])
        return _gaussian_log_prob(x, self.mean, self.precision, self.log_normaliser)

    def __call__(self, x: Point) -> Tangent:
        check_point(x, dim=self.mean.shape[0])
        return -jnp.dot(self.precision, x - self.mean, precision=HIGHEST)


class GMMScore(eqx.Module):
    r"""Score of a Gaussian mixture $\sum_k w_k \mathcal{N}(\mu_k, \Sigma_k)$,
    by `jax.grad` of its log-density (weights are normalised)."""

    weights: Float[Array, " components"]
    means: Float[Array, "components dim"]
    covs: Float[Array, "components dim dim"]
    precisions: Float[Array, "components dim dim"]
    log_normalisers: Float[Array, " components"]

    def __init__(
        self,
        weights: Input,
        means: Input,
        covs: Input,
    ):
        weights, means, covs = jnp.asarray(weights), jnp.asarray(means), jnp.asarray(covs)
        k = weights.shape[0] if weights.ndim == 1 else None
        if (
            k is None
            or means.ndim != 2
            or means.shape[0] != k
            or covs.shape != (k, means.shape[1], means.shape[1])
        ):
            raise ValueError(
                "scores.gmm: expected weights (K,), means (K, D), covs (K, D, D); got "
                f"weights {weights.shape}, means {means.shape}, covs {covs.shape}"
            )
        check_value(weights, lambda w: w >= 0, "scores.gmm: weights must be >= 0")
        check_value(
            weights,
            lambda w: jnp.sum(w) > 0,
            "scores.gmm: the weights are all zero; at least one component needs weight > 0",
        )
        for mean, cov in zip(means, covs):
            _check_gaussian(mean, cov, "scores.gmm")
        self.weights, self.means, self.covs = weights, means, covs
        self.precisions, self.log_normalisers = jax.vmap(_precision_and_log_normaliser)(covs)

    def log_prob(self, x: Point) -> Scalar:
        check_point(x, dim=self.means.shape[1])
        logs = jax.vmap(_gaussian_log_prob, in_axes=(None, 0, 0, 0))(
            x, self.means, self.precisions, self.log_normalisers
        )
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


def gaussian(mean: Input, cov: Input) -> GaussianScore:
    r"""The score of $\mathcal{N}(\mu, \Sigma)$, $s(x) = -\Sigma^{-1}(x - \mu)$."""
    return GaussianScore(mean, cov)


def gmm(weights: Input, means: Input, covs: Input) -> GMMScore:
    """The score of a Gaussian mixture (weights are normalised)."""
    return GMMScore(weights, means, covs)


def from_log_density(log_p: Callable[[Point], Scalar]) -> LogDensityScore:
    r"""The score $\nabla_x \log p(x)$ of a scalar log-density function."""
    return LogDensityScore(log_p)
