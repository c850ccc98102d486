"""Families on the circle: the von Mises distribution and its sampler (on its parameter
coordinates; see `jaxgeo.families`)."""

import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import jax.scipy.special as jss
import numpy as np

from .._custom_types import Input
from ._base import (
    AbstractFamily,
    constrain_real_positive,
    Params,
    unconstrain_real_positive,
)


def _log_i0(kappa):
    return jnp.log(jss.i0e(kappa)) + kappa


def _bessel_ratio(kappa):
    """A(κ) = I₁(κ)/I₀(κ)."""
    return jss.i1e(kappa) / jss.i0e(kappa)


class VonMises(AbstractFamily):
    r"""von Mises on the circle, parameters (mean direction μ, concentration κ ≥ 0).

    μ is any real number, not wrapped: (μ + 2π, κ) is the same distribution as (μ, κ),
    and the Fisher metric $\mathrm{diag}(\kappa A(\kappa), A'(\kappa))$ does not depend
    on μ, so the chart $(\mu, \kappa)$ covers the manifold once per period, and a
    geodesic there goes the way round that the end points' μ say. Near κ = 0 the metric
    is that of the plane in polar coordinates ($\frac12(d\kappa^2 + \kappa^2
    d\mu^2)$, κ the radius and μ the angle), so end points whose μ differ by more than
    π (e.g. 0.1 and 2π − 0.1) have no geodesic in the chart: the shortest curve that way
    round passes through κ = 0 (the uniform distribution) and a solver that refines it
    steps to κ < 0, where the metric is NaN (`RESULTS.nonfinite_energy`). For the
    geodesic the short way round, wrap the second end point's μ to within π of the
    first's, `eta1 = VonMises().wrap(eta1, eta0)`, before [`jaxgeo.distance`][] or
    [`jaxgeo.geodesic_bvp`][].
    """

    constraint: ClassVar[str] = "finite (μ, κ) with κ ≥ 0"
    support: ClassVar[str] = "finite angles"

    @property
    def num_params(self) -> int:
        return 2

    def valid(self, eta):
        return jnp.isfinite(eta).all() & (eta[1] >= 0)

    def in_support(self, x):
        return jnp.isfinite(x)

    def _log_prob(self, eta, x):
        mu, kappa = eta
        return kappa * jnp.cos(x - mu) - math.log(2 * math.pi) - _log_i0(kappa)

    def mean(self, eta):
        return self.check(eta)[0]

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

    def wrap(self, eta: Input, reference: Input) -> Params:
        """`eta` with its mean direction μ moved by a multiple of 2π to within π of
        `reference`'s: μ − μ_ref in (−π, π], κ unchanged (the same distribution). The
        pair (`reference`, `wrap(eta, reference)`) is then joined by the geodesic the
        short way round the circle of means."""
        eta, reference = jnp.asarray(eta), jnp.asarray(reference)
        if eta.shape != (2,) or reference.shape != (2,):
            raise ValueError(
                f"VonMises.wrap: expected eta and reference of shape (2,) (μ, κ), got "
                f"{eta.shape} and {reference.shape}"
            )
        difference = eta[0] - reference[0]
        turns = jnp.ceil((difference - math.pi) / (2 * math.pi))
        return eta.at[0].set(reference[0] + difference - 2 * math.pi * turns)

    def constrain(self, u):
        return constrain_real_positive(u)

    def unconstrain(self, eta):
        return unconstrain_real_positive(eta)


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
