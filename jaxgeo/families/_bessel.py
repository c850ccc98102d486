r"""The modified Bessel function of the first kind, as the von Mises–Fisher family needs it.

`log_bessel_ratio_normaliser(nu, s)` is $f_\nu(s) = \log I_\nu(\kappa) - \nu\log\kappa$
with $s = \kappa^2$: smooth in $s$ (also at $\kappa = 0$, where $f_\nu = -\log(2^\nu
\Gamma(\nu + 1))$), and differentiable in $s$ to any order. It is the log-partition of the
von Mises–Fisher family up to a constant, and $A_d(\kappa) = I_{d/2}(\kappa) /
I_{d/2-1}(\kappa) = \kappa\,e^{f_{\nu+1} - f_\nu}$.

Three evaluations, joined where each pair agrees to round-off:

- the power series $I_\nu(\kappa)/\kappa^\nu = 2^{-\nu}\sum_k (\kappa^2/4)^k /
  (k!\,\Gamma(k + \nu + 1))$, a polynomial in $s$ (Horner, `POLYNOMIAL_TERMS` terms)
  for $\kappa <$ `POLYNOMIAL_MAX_KAPPA`, so that every derivative in $s$ is exact at
  $s = 0$;
- the same series summed in log space over `SERIES_TERMS` terms (no overflow) for
  $\kappa <$ `SERIES_MAX_KAPPA` (its terms peak at $k \approx \kappa/2$ and have decayed
  below $10^{-30}$ of the sum by the last term there);
- Debye's uniform asymptotic expansion (Abramowitz & Stegun 9.7.7) with four correction
  terms, written in $r = \sqrt{\nu^2 + \kappa^2}$ so that it holds at $\nu = 0$ too:
  $\log I_\nu(\kappa) \approx r + \nu\log\frac{\kappa}{\nu + r} - \frac12\log(2\pi r)
  + \log\bigl(1 + \sum_{k=1}^4 u_k(\nu / r) / \nu^k\bigr)$, whose error is
  $O(r^{-5})$: below $10^{-12}$ beyond `SERIES_MAX_KAPPA`.
"""

import math

import jax.numpy as jnp
import jax.scipy.special as jss


# The polynomial's terms peak near e^κ / κ (no overflow in float32 below κ ≈ 80); its
# term ratio (κ/2)² / (k (k + ν)) is below 1/40 from k = 64 on at κ = 20.
POLYNOMIAL_MAX_KAPPA = 20.0
POLYNOMIAL_TERMS = 96
# Where the series hands over to the asymptotic expansion: the expansion's first omitted
# term is about 0.23 / r^5 (its value at ν = 0), 7e-13 at r = 200.
SERIES_MAX_KAPPA = 200.0
# Enough terms for κ up to SERIES_MAX_KAPPA: the term ratio (κ/2)² / (k (k + ν)) is below
# 1/4 from k = 200 on, so the last 56 terms fall by more than 4^56.
SERIES_TERMS = 256

# Debye's polynomials u_k(t) / ν^k with t = ν / r, as coefficients of ν^(2j) / r^(k + 2j).
_DEBYE = (
    (3.0 / 24, -5.0 / 24),
    (81.0 / 1152, -462.0 / 1152, 385.0 / 1152),
    (30375.0 / 414720, -369603.0 / 414720, 765765.0 / 414720, -425425.0 / 414720),
    (
        4465125.0 / 39813120,
        -94121676.0 / 39813120,
        349922430.0 / 39813120,
        -446185740.0 / 39813120,
        185910725.0 / 39813120,
    ),
)


def _polynomial(nu: float, s):
    coefficients = [
        math.exp(-math.lgamma(k + 1) - math.lgamma(k + nu + 1)) for k in range(POLYNOMIAL_TERMS)
    ]
    value = jnp.zeros_like(s)
    for c in reversed(coefficients):
        value = value * (s / 4) + c
    return jnp.log(value) - nu * math.log(2.0)


def _series(nu: float, s):
    k = jnp.arange(SERIES_TERMS, dtype=s.dtype)
    terms = jss.xlogy(k, s / 4) - jss.gammaln(k + 1) - jss.gammaln(k + nu + 1)
    return jss.logsumexp(terms) - nu * math.log(2.0)


def _debye(nu: float, s):
    r = jnp.sqrt(nu**2 + s)
    correction = 0.0
    for k, coefficients in enumerate(_DEBYE, start=1):
        correction += sum(c * nu ** (2 * j) / r ** (k + 2 * j) for j, c in enumerate(coefficients))
    return r - nu * jnp.log(nu + r) - 0.5 * jnp.log(2 * jnp.pi * r) + jnp.log1p(correction)


def log_bessel_ratio_normaliser(nu: float, s):
    r"""$f_\nu(s) = \log I_\nu(\sqrt s) - \frac{\nu}{2}\log s$ for $s = \kappa^2 \ge 0$;
    `nu` $\ge 0$ a Python number, `s` a scalar array."""
    polynomial, series = s < POLYNOMIAL_MAX_KAPPA**2, s < SERIES_MAX_KAPPA**2
    # Each branch sees only inputs where it is accurate, so none makes NaN gradients.
    low, high = POLYNOMIAL_MAX_KAPPA**2, SERIES_MAX_KAPPA**2
    return jnp.where(
        polynomial,
        _polynomial(nu, jnp.where(polynomial, s, 0.0)),
        jnp.where(
            series,
            _series(nu, jnp.clip(s, low, high)),
            _debye(nu, jnp.where(series, high, s)),
        ),
    )
