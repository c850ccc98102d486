r"""Distribution families on their parameter coordinates, for information geometry.

A family is a stateless Equinox module; its *parameters* `eta` are a 1-D array, a point
of the statistical manifold (coordinates as in DESIGN.md: Normal (μ, σ); MultivariateNormal
(μ, lower triangle of the Cholesky factor of Σ, row by row); Bernoulli p;
Categorical the first K−1 probabilities; Beta (α, β); Dirichlet α; Exponential rate;
Poisson rate; Gamma (shape k, rate β); VonMises (μ, κ)). Every family has

- `log_prob(eta, x)`, `sample(eta, key, shape=())`;
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

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.scipy.special as jss
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from ._custom_types import Scalar


Params = Float[Array, " params"]
Fisher = Float[Array, "params params"]


def _softplus_inverse(y):
    return y + jnp.log(-jnp.expm1(-y))


def _error_if_invalid(eta: Params, ok: Bool[Array, ""], message: str) -> Params:
    return eqx.error_if(eta, ~ok, message)


class AbstractFamily(eqx.Module):
    """A parametric family of distributions; see the module docstring."""

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
    def fisher(self, eta: Params) -> Fisher:
        """The Fisher information matrix $I(\\eta)$ (closed form)."""

    @abc.abstractmethod
    def kl(self, eta_p: Params, eta_q: Params) -> Scalar:
        """$\\mathrm{KL}(p_{\\eta_p} \\,\\|\\, p_{\\eta_q})$ (closed form)."""

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
        return _error_if_invalid(eta, self.valid(eta), self._constraint_message())

    def _constraint_message(self) -> str:
        return f"{type(self).__name__}: invalid parameters ({self.__doc__.splitlines()[0]})"

    def log_prob(self, eta: Params, x) -> Scalar:
        """$\\log p_\\eta(x)$; an error if `eta` is invalid or `x` outside the support."""
        eta = self.check(eta)
        x = jnp.asarray(x)
        x = eqx.error_if(
            x, ~self.in_support(x), f"{type(self).__name__}: observation outside the support"
        )
        return self._log_prob(eta, x)

    def fisher_inner(self, eta: Params, u: Params, v: Params) -> Scalar:
        """$u^\\top I(\\eta) v$ (block-wise, without the full matrix, for products)."""
        return jnp.dot(u, self.fisher(eta) @ v)


def kl_monte_carlo(
    family: AbstractFamily, eta_p: Params, eta_q: Params, key: PRNGKeyArray, num_samples: int
) -> Scalar:
    r"""$\mathrm{KL}(p \,\|\, q) \approx \frac1n\sum_i \log p(x_i) - \log q(x_i)$,
    $x_i \sim p$: the fallback for families without a closed form (unbiased, standard
    error $O(n^{-1/2})$)."""
    xs = family.sample(eta_p, key, (num_samples,))
    return jnp.mean(jax.vmap(lambda x: family.log_prob(eta_p, x) - family.log_prob(eta_q, x))(xs))


class _PositiveFamily(AbstractFamily):
    """A family whose parameters are all positive: softplus to and from unconstrained
    coordinates."""

    def valid(self, eta):
        return jnp.all(eta > 0)

    def constrain(self, u):
        return jax.nn.softplus(u)

    def unconstrain(self, eta):
        return _softplus_inverse(eta)


class Normal(AbstractFamily):
    """Univariate Normal, parameters (μ, σ) with σ > 0 the standard deviation."""

    @property
    def num_params(self) -> int:
        return 2

    def valid(self, eta):
        return jnp.isfinite(eta).all() & (eta[1] > 0)

    def in_support(self, x):
        return jnp.isfinite(x).all()

    def _log_prob(self, eta, x):
        mu, sigma = eta
        return -0.5 * ((x - mu) / sigma) ** 2 - jnp.log(sigma) - 0.5 * np.log(2 * np.pi)

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
        return jnp.stack([u[0], jax.nn.softplus(u[1])])

    def unconstrain(self, eta):
        return jnp.stack([eta[0], _softplus_inverse(eta[1])])


class MultivariateNormal(AbstractFamily):
    """Multivariate Normal on R^D, parameters (μ, vech L): the mean, then the lower
    triangle of the Cholesky factor L of Σ = L Lᵀ row by row, with diag L > 0."""

    dim: int = eqx.field(static=True)

    def __check_init__(self):
        if not isinstance(self.dim, int) or self.dim < 1:
            raise ValueError(f"MultivariateNormal needs dim >= 1, got {self.dim!r}")

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
        rows, cols = np.tril_indices(self.dim)
        return jnp.concatenate([mean, jnp.linalg.cholesky(cov)[rows, cols]])

    def _diag(self, eta):
        return jnp.diag(self.mean_cholesky(eta)[1])

    def valid(self, eta):
        return jnp.isfinite(eta).all() & jnp.all(self._diag(eta) > 0)

    def in_support(self, x):
        return jnp.isfinite(x).all()

    def _whiten(self, chol, x):
        return jax.scipy.linalg.solve_triangular(chol, x, lower=True)

    def _log_prob(self, eta, x):
        mu, chol = self.mean_cholesky(eta)
        if x.shape != (self.dim,):
            raise ValueError(f"MultivariateNormal({self.dim}): observation of shape {x.shape}")
        w = self._whiten(chol, x - mu)
        log_det = jnp.sum(jnp.log(jnp.diag(chol)))
        return -0.5 * jnp.dot(w, w) - log_det - 0.5 * self.dim * np.log(2 * np.pi)

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
        return self._map_diag(eta, _softplus_inverse)


class Bernoulli(AbstractFamily):
    """Bernoulli, parameter p ∈ (0, 1), the probability of 1."""

    @property
    def num_params(self) -> int:
        return 1

    def valid(self, eta):
        return (eta[0] > 0) & (eta[0] < 1)

    def in_support(self, x):
        return (x == 0) | (x == 1)

    def _log_prob(self, eta, x):
        p = eta[0]
        return x * jnp.log(p) + (1 - x) * jnp.log1p(-p)

    def sample(self, eta, key, shape=()):
        eta = self.check(eta)
        return jax.random.bernoulli(key, eta[0], shape).astype(eta.dtype)

    def fisher(self, eta):
        p = self.check(eta)[0]
        return jnp.reshape(1 / (p * (1 - p)), (1, 1))

    def kl(self, eta_p, eta_q):
        p, q = self.check(eta_p)[0], self.check(eta_q)[0]
        return p * jnp.log(p / q) + (1 - p) * jnp.log((1 - p) / (1 - q))

    def constrain(self, u):
        return jax.nn.sigmoid(u)

    def unconstrain(self, eta):
        return jnp.log(eta) - jnp.log1p(-eta)


class Categorical(AbstractFamily):
    """Categorical over K classes, parameters the first K−1 probabilities (positive,
    summing to less than 1; the last is one minus their sum)."""

    num_classes: int = eqx.field(static=True)

    def __check_init__(self):
        if not isinstance(self.num_classes, int) or self.num_classes < 2:
            raise ValueError(f"Categorical needs num_classes >= 2, got {self.num_classes!r}")

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


class Beta(_PositiveFamily):
    """Beta on (0, 1), parameters (α, β), both positive."""

    @property
    def num_params(self) -> int:
        return 2

    def in_support(self, x):
        return (x > 0) & (x < 1)

    def _log_prob(self, eta, x):
        a, b = eta
        return (a - 1) * jnp.log(x) + (b - 1) * jnp.log1p(-x) - jss.betaln(a, b)

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


class Dirichlet(_PositiveFamily):
    """Dirichlet on the (K−1)-simplex, parameters α ∈ (0, ∞)^K."""

    num_classes: int = eqx.field(static=True)

    @property
    def num_params(self) -> int:
        return self.num_classes

    def in_support(self, x):
        return jnp.all(x > 0) & (jnp.abs(jnp.sum(x) - 1) < 1e-6)

    def _log_prob(self, eta, x):
        log_beta = jnp.sum(jss.gammaln(eta)) - jss.gammaln(jnp.sum(eta))
        return jnp.sum((eta - 1) * jnp.log(x)) - log_beta

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


class Exponential(_PositiveFamily):
    """Exponential on [0, ∞), parameter the rate λ > 0."""

    @property
    def num_params(self) -> int:
        return 1

    def in_support(self, x):
        return x >= 0

    def _log_prob(self, eta, x):
        return jnp.log(eta[0]) - eta[0] * x

    def sample(self, eta, key, shape=()):
        eta = self.check(eta)
        return jax.random.exponential(key, shape, eta.dtype) / eta[0]

    def fisher(self, eta):
        return jnp.reshape(1 / self.check(eta)[0] ** 2, (1, 1))

    def kl(self, eta_p, eta_q):
        a, b = self.check(eta_p)[0], self.check(eta_q)[0]
        return jnp.log(a / b) + b / a - 1


class Poisson(_PositiveFamily):
    """Poisson on {0, 1, 2, ...}, parameter the rate λ > 0."""

    @property
    def num_params(self) -> int:
        return 1

    def in_support(self, x):
        return (x >= 0) & (x == jnp.round(x))

    def _log_prob(self, eta, x):
        return x * jnp.log(eta[0]) - eta[0] - jss.gammaln(x + 1)

    def sample(self, eta, key, shape=()):
        eta = self.check(eta)
        return jax.random.poisson(key, eta[0], shape).astype(eta.dtype)

    def fisher(self, eta):
        return jnp.reshape(1 / self.check(eta)[0], (1, 1))

    def kl(self, eta_p, eta_q):
        a, b = self.check(eta_p)[0], self.check(eta_q)[0]
        return a * jnp.log(a / b) - a + b


class Gamma(_PositiveFamily):
    """Gamma on (0, ∞), parameters (shape k, rate β), both positive."""

    @property
    def num_params(self) -> int:
        return 2

    def in_support(self, x):
        return x > 0

    def _log_prob(self, eta, x):
        k, rate = eta
        return k * jnp.log(rate) - jss.gammaln(k) + (k - 1) * jnp.log(x) - rate * x

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


def _log_i0(kappa):
    return jnp.log(jss.i0e(kappa)) + kappa


def _bessel_ratio(kappa):
    """A(κ) = I₁(κ)/I₀(κ)."""
    return jss.i1e(kappa) / jss.i0e(kappa)


class VonMises(AbstractFamily):
    """von Mises on the circle, parameters (mean direction μ, concentration κ ≥ 0)."""

    @property
    def num_params(self) -> int:
        return 2

    def valid(self, eta):
        return jnp.isfinite(eta).all() & (eta[1] >= 0)

    def in_support(self, x):
        return jnp.isfinite(x)

    def _log_prob(self, eta, x):
        mu, kappa = eta
        return kappa * jnp.cos(x - mu) - np.log(2 * np.pi) - _log_i0(kappa)

    def sample(self, eta, key, shape=()):
        """Best and Fisher's (1979) rejection sampler, one `while_loop` per sample."""
        eta = self.check(eta)
        mu, kappa = eta
        keys = jax.random.split(key, int(np.prod(shape, dtype=int)))
        samples = jax.vmap(lambda k: _von_mises_one(k, kappa, eta.dtype))(keys)
        return (mu + samples).reshape(shape)

    def fisher(self, eta):
        kappa = self.check(eta)[1]
        a = _bessel_ratio(kappa)
        # A(κ)/κ → 1/2 − κ²/16 as κ → 0 (A'(0) = 1/2); a series avoids 0/0 there.
        small = kappa < 1e-3
        a_over_kappa = jnp.where(small, 0.5 - kappa**2 / 16, a / jnp.where(small, 1, kappa))
        a_prime = 1 - a_over_kappa - a**2
        return jnp.diag(jnp.stack([kappa * a, a_prime]))

    def kl(self, eta_p, eta_q):
        (mp, kp), (mq, kq) = self.check(eta_p), self.check(eta_q)
        return _log_i0(kq) - _log_i0(kp) + _bessel_ratio(kp) * (kp - kq * jnp.cos(mp - mq))

    def constrain(self, u):
        return jnp.stack([u[0], jax.nn.softplus(u[1])])

    def unconstrain(self, eta):
        return jnp.stack([eta[0], _softplus_inverse(eta[1])])


def _von_mises_one(key, kappa, dtype, max_attempts: int = 1000):
    kappa = jnp.maximum(kappa, 1e-8)
    root = jnp.sqrt(1 + 4 * kappa**2)
    tau = 1 + root
    # (τ − √(2τ)) / (2κ), rewritten without the cancellation that makes it 0 for small κ
    rho = 2 * kappa * tau / ((root + 1) * (tau + jnp.sqrt(2 * tau)))
    r = (1 + rho**2) / (2 * rho)

    def attempt(state):
        key, _, _, count = state
        key, k1, k2, k3 = jax.random.split(key, 4)
        u1, u2, u3 = (jax.random.uniform(k, (), dtype) for k in (k1, k2, k3))
        z = jnp.cos(jnp.pi * u1)
        f = (1 + r * z) / (r + z)
        c = kappa * (r - f)
        accept = (c * (2 - c) - u2 > 0) | (jnp.log(c / u2) + 1 - c >= 0)
        theta = jnp.sign(u3 - 0.5) * jnp.arccos(jnp.clip(f, -1, 1))
        return key, accept, theta, count + 1

    # The acceptance rate is above 0.65 for every κ; the cap only guards against NaN.
    _, _, theta, _ = jax.lax.while_loop(
        lambda s: ~s[1] & (s[3] < max_attempts),
        attempt,
        (key, jnp.array(False), jnp.zeros((), dtype), jnp.array(0)),
    )
    return theta


class Product(AbstractFamily):
    """`size` independent copies of `family` (e.g. one per output dimension of a
    decoder): parameters concatenated (`size × P`), log-probabilities and KLs summed,
    Fisher information block-diagonal (`fisher_inner` never builds the full matrix)."""

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
