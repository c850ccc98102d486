"""Families of univariate distributions: Normal, Bernoulli, Binomial, Geometric, Beta,
Exponential, Poisson, Gamma (on their parameter coordinates; see `jaxgeo.families`)."""

import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.special as jss

from .._checks import as_int
from ._base import (
    AbstractFamily,
    AbstractPositiveFamily,
    constrain_real_positive,
    unconstrain_real_positive,
)


class Normal(AbstractFamily):
    """Univariate Normal, parameters (μ, σ) with σ > 0 the standard deviation."""

    constraint: ClassVar[str] = "finite (μ, σ) with σ > 0"
    support: ClassVar[str] = "finite real numbers"

    @property
    def num_params(self) -> int:
        return 2

    def valid(self, eta):
        return jnp.isfinite(eta).all() & (eta[1] > 0)

    def in_support(self, x):
        return jnp.isfinite(x).all()

    def _log_prob(self, eta, x):
        mu, sigma = eta
        return -0.5 * ((x - mu) / sigma) ** 2 - jnp.log(sigma) - 0.5 * math.log(2 * math.pi)

    def mean(self, eta):
        return self.check(eta)[0]

    def sample(self, eta, key, shape=()):
        eta = self.check(eta)
        return eta[0] + eta[1] * jax.random.normal(key, shape, eta.dtype)

    def fisher(self, eta):
        sigma = self.check(eta)[1]
        return jnp.diag(jnp.stack([1 / sigma**2, 2 / sigma**2]))

    def kl(self, eta_p, eta_q):
        (mp, sp), (mq, sq) = self.check(eta_p), self.check(eta_q)
        return jnp.log(sq / sp) + (sp**2 + (mp - mq) ** 2) / (2 * sq**2) - 0.5

    def constrain(self, u):
        return constrain_real_positive(u)

    def unconstrain(self, eta):
        return unconstrain_real_positive(eta)


class AbstractProbabilityFamily(AbstractFamily):
    """A family with one parameter, a probability p ∈ (0, 1): sigmoid to and from
    unconstrained coordinates."""

    @property
    def num_params(self) -> int:
        return 1

    def valid(self, eta):
        return (eta[0] > 0) & (eta[0] < 1)

    def constrain(self, u):
        return jax.nn.sigmoid(u)

    def unconstrain(self, eta):
        return jnp.log(eta) - jnp.log1p(-eta)


class Bernoulli(AbstractProbabilityFamily):
    """Bernoulli, parameter p ∈ (0, 1), the probability of 1."""

    constraint: ClassVar[str] = "p ∈ (0, 1)"
    support: ClassVar[str] = "{0, 1}"

    def in_support(self, x):
        return (x == 0) | (x == 1)

    def _log_prob(self, eta, x):
        p = eta[0]
        return x * jnp.log(p) + (1 - x) * jnp.log1p(-p)

    def mean(self, eta):
        return self.check(eta)[0]

    def sample(self, eta, key, shape=()):
        eta = self.check(eta)
        return jax.random.bernoulli(key, eta[0], shape).astype(eta.dtype)

    def fisher(self, eta):
        p = self.check(eta)[0]
        return jnp.reshape(1 / (p * (1 - p)), (1, 1))

    def kl(self, eta_p, eta_q):
        p, q = self.check(eta_p)[0], self.check(eta_q)[0]
        return p * jnp.log(p / q) + (1 - p) * jnp.log((1 - p) / (1 - q))


class Binomial(AbstractProbabilityFamily):
    r"""Binomial on {0, 1, ..., n} with the number of trials $n$ = `num_trials` fixed,
    parameter the success probability p ∈ (0, 1): the sum of $n$ Bernoulli(p), so its
    Fisher information $n / (p(1 - p))$ and KL divergence are $n$ times theirs.

    **Arguments:** `num_trials`, an integer $n \ge 1$.
    """

    num_trials: int = eqx.field(static=True, converter=as_int)
    constraint: ClassVar[str] = "p ∈ (0, 1)"
    support: ClassVar[str] = "the integers 0, 1, ..., num_trials"

    def __check_init__(self):
        n = self.num_trials  # (a NumPy integer is an int by now: the field's converter)
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(
                f"Binomial: num_trials must be an integer >= 1 (the number of trials), got {n!r}"
            )

    def in_support(self, x):
        return (x >= 0) & (x <= self.num_trials) & (x == jnp.round(x))

    def _log_prob(self, eta, x):
        n, p = self.num_trials, eta[0]
        log_choose = jss.gammaln(n + 1.0) - jss.gammaln(x + 1) - jss.gammaln(n - x + 1)
        return log_choose + jss.xlogy(x, p) + jss.xlog1py(n - x, -p)

    def mean(self, eta):
        return self.num_trials * self.check(eta)[0]

    def sample(self, eta, key, shape=()):
        eta = self.check(eta)
        return jax.random.binomial(key, self.num_trials, eta[0], shape, eta.dtype)

    def fisher(self, eta):
        p = self.check(eta)[0]
        return jnp.reshape(self.num_trials / (p * (1 - p)), (1, 1))

    def kl(self, eta_p, eta_q):
        p, q = self.check(eta_p)[0], self.check(eta_q)[0]
        return self.num_trials * (p * jnp.log(p / q) + (1 - p) * jnp.log((1 - p) / (1 - q)))


class Geometric(AbstractProbabilityFamily):
    r"""Geometric on {1, 2, ...}, the number of Bernoulli(p) trials up to and including the
    first success, parameter p ∈ (0, 1): $p(x) = (1 - p)^{x - 1} p$, mean $1/p$, Fisher
    information $1 / (p^2 (1 - p))$."""

    constraint: ClassVar[str] = "p ∈ (0, 1)"
    support: ClassVar[str] = "the integers 1, 2, ..."

    def in_support(self, x):
        return (x >= 1) & (x == jnp.round(x))

    def _log_prob(self, eta, x):
        p = eta[0]
        return (x - 1) * jnp.log1p(-p) + jnp.log(p)

    def mean(self, eta):
        return 1 / self.check(eta)[0]

    def sample(self, eta, key, shape=()):
        eta = self.check(eta)
        return jax.random.geometric(key, eta[0], shape).astype(eta.dtype)

    def fisher(self, eta):
        p = self.check(eta)[0]
        return jnp.reshape(1 / (p**2 * (1 - p)), (1, 1))

    def kl(self, eta_p, eta_q):
        p, q = self.check(eta_p)[0], self.check(eta_q)[0]
        # E_p[x − 1] = (1 − p) / p
        return jnp.log(p / q) + (1 - p) / p * jnp.log((1 - p) / (1 - q))


class Beta(AbstractPositiveFamily):
    """Beta on (0, 1), parameters (α, β), both positive."""

    constraint: ClassVar[str] = "α > 0 and β > 0"
    support: ClassVar[str] = "the open interval (0, 1)"

    @property
    def num_params(self) -> int:
        return 2

    def in_support(self, x):
        return (x > 0) & (x < 1)

    def _log_prob(self, eta, x):
        a, b = eta
        return (a - 1) * jnp.log(x) + (b - 1) * jnp.log1p(-x) - jss.betaln(a, b)

    def mean(self, eta):
        a, b = self.check(eta)
        return a / (a + b)

    def sample(self, eta, key, shape=()):
        eta = self.check(eta)
        return jax.random.beta(key, eta[0], eta[1], shape, eta.dtype)

    def fisher(self, eta):
        a, b = self.check(eta)
        t = jss.polygamma(1, a + b)
        return jnp.array([[jss.polygamma(1, a) - t, -t], [-t, jss.polygamma(1, b) - t]])

    def kl(self, eta_p, eta_q):
        (a1, b1), (a2, b2) = self.check(eta_p), self.check(eta_q)
        return (
            jss.betaln(a2, b2)
            - jss.betaln(a1, b1)
            + (a1 - a2) * jss.digamma(a1)
            + (b1 - b2) * jss.digamma(b1)
            + (a2 - a1 + b2 - b1) * jss.digamma(a1 + b1)
        )


class Exponential(AbstractPositiveFamily):
    """Exponential on [0, ∞), parameter the rate λ > 0."""

    constraint: ClassVar[str] = "a rate λ > 0"
    support: ClassVar[str] = "[0, ∞)"

    @property
    def num_params(self) -> int:
        return 1

    def in_support(self, x):
        return x >= 0

    def _log_prob(self, eta, x):
        return jnp.log(eta[0]) - eta[0] * x

    def mean(self, eta):
        return 1 / self.check(eta)[0]

    def sample(self, eta, key, shape=()):
        eta = self.check(eta)
        return jax.random.exponential(key, shape, eta.dtype) / eta[0]

    def fisher(self, eta):
        return jnp.reshape(1 / self.check(eta)[0] ** 2, (1, 1))

    def kl(self, eta_p, eta_q):
        a, b = self.check(eta_p)[0], self.check(eta_q)[0]
        return jnp.log(a / b) + b / a - 1


class Poisson(AbstractPositiveFamily):
    """Poisson on {0, 1, 2, ...}, parameter the rate λ > 0."""

    constraint: ClassVar[str] = "a rate λ > 0"
    support: ClassVar[str] = "the integers 0, 1, 2, ..."

    @property
    def num_params(self) -> int:
        return 1

    def in_support(self, x):
        return (x >= 0) & (x == jnp.round(x))

    def _log_prob(self, eta, x):
        return x * jnp.log(eta[0]) - eta[0] - jss.gammaln(x + 1)

    def mean(self, eta):
        return self.check(eta)[0]

    def sample(self, eta, key, shape=()):
        eta = self.check(eta)
        return jax.random.poisson(key, eta[0], shape).astype(eta.dtype)

    def fisher(self, eta):
        return jnp.reshape(1 / self.check(eta)[0], (1, 1))

    def kl(self, eta_p, eta_q):
        a, b = self.check(eta_p)[0], self.check(eta_q)[0]
        return a * jnp.log(a / b) - a + b


class Gamma(AbstractPositiveFamily):
    """Gamma on (0, ∞), parameters (shape k, rate β), both positive."""

    constraint: ClassVar[str] = "shape k > 0 and rate β > 0"
    support: ClassVar[str] = "(0, ∞)"

    @property
    def num_params(self) -> int:
        return 2

    def in_support(self, x):
        return x > 0

    def _log_prob(self, eta, x):
        k, rate = eta
        return k * jnp.log(rate) - jss.gammaln(k) + (k - 1) * jnp.log(x) - rate * x

    def mean(self, eta):
        k, rate = self.check(eta)
        return k / rate

    def sample(self, eta, key, shape=()):
        eta = self.check(eta)
        return jax.random.gamma(key, eta[0], shape, eta.dtype) / eta[1]

    def fisher(self, eta):
        k, rate = self.check(eta)
        return jnp.array([[jss.polygamma(1, k), -1 / rate], [-1 / rate, k / rate**2]])

    def kl(self, eta_p, eta_q):
        (kp, bp), (kq, bq) = self.check(eta_p), self.check(eta_q)
        return (
            (kp - kq) * jss.digamma(kp)
            - jss.gammaln(kp)
            + jss.gammaln(kq)
            + kq * (jnp.log(bp) - jnp.log(bq))
            + kp * (bq - bp) / bp
        )
