r"""The modified Bessel function of the first kind, as the von Mises–Fisher family needs it.

`scalars(nu, s)` gives, at $s = \kappa^2 \ge 0$, the three scalars of the family with
$\nu = d/2 - 1$: $f_\nu(s) = \log I_\nu(\kappa) - \nu\log\kappa$ (the log-partition up to
a constant; smooth in $s$, $-\log(2^\nu\Gamma(\nu + 1))$ at $\kappa = 0$),
$A/\kappa = 2f'$ and $A' = 2f' + 4sf''$, with $A = I_{\nu+1}(\kappa)/I_\nu(\kappa)$. Their
derivatives of every order follow from the recurrences of $A$ (a custom JVP), so a
derivative costs one more evaluation of the three, not automatic differentiation through
what follows.

Two evaluations, joined where both are accurate to round-off:

- the power series $I_\nu(\kappa)/\kappa^\nu = 2^{-\nu}\sum_k c_k x^k$,
  $c_k = 1/(k!\,\Gamma(k + \nu + 1))$, $x = \kappa^2/4$, summed in log space over
  `SERIES_TERMS` terms for $\kappa <$ `SERIES_MAX_KAPPA` (its terms peak at
  $k \approx \kappa/2$ and have decayed below $10^{-30}$ of the sum by the last term
  there); with $P = \sum_k c_k x^k$, $f' = P'/(4P)$ and
  $A' = \frac12 P'/P + x\,(P''/P - (P'/P)^2)$, each ratio a log-space sum, exact at
  $x = 0$; for $x \ge 1$, $A' = (\mathrm{Var}_w[k] - \frac12\mathbb{E}_w[k])/x$ with
  the weights $w_k \propto c_k x^k$ (less cancellation at large $x$);
- Debye's uniform asymptotic expansion (Abramowitz & Stegun 9.7.7) with four correction
  terms, written in $r = \sqrt{\nu^2 + \kappa^2}$ so that it holds at $\nu = 0$ too:
  $\log I_\nu(\kappa) \approx r + \nu\log\frac{\kappa}{\nu + r} - \frac12\log(2\pi r)
  + \log(1 + S)$, $S = \sum_{k=1}^4 u_k(\nu / r) / \nu^k$ a polynomial in $1/r$, whose
  error is $O(r^{-5})$: below $10^{-12}$ beyond `SERIES_MAX_KAPPA`. Its derivative,
  $A = \kappa/(\nu + r) - \kappa/(2r^2) + \kappa S_r/(r(1 + S))$, is differentiated once
  more (forward mode) for $A'$.
"""

import math
from functools import partial

import jax
import jax.numpy as jnp
import jax.scipy.special as jss
import numpy as np


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


def _series(nu: float, s):
    r"""$(f, A/\kappa, A')$ from the power series, for $s <$ `SERIES_MAX_KAPPA`²."""
    k = np.arange(SERIES_TERMS)
    log_c = -np.array([math.lgamma(j + 1) + math.lgamma(j + nu + 1) for j in k])
    x = s / 4

    def log_sum(shift: int, weights: np.ndarray):
        """log Σ_{k ≥ shift} w_k c_k x^(k − shift): P, P' and P'' in log space."""
        terms = log_c[shift:] + np.log(weights[shift:])
        return jss.logsumexp(
            terms.astype(s.dtype) + jss.xlogy((k[shift:] - shift).astype(s.dtype), x)
        )

    log_p = log_sum(0, np.ones(SERIES_TERMS))
    p1 = jnp.exp(log_sum(1, np.maximum(k, 1.0)) - log_p)  # P'/P
    p2 = jnp.exp(log_sum(2, np.maximum(k * (k - 1.0), 1.0)) - log_p)  # P''/P
    # A' = (Var_w[k] − E_w[k]/2)/x with weights w_k ∝ c_k x^k: the variance in two passes
    # cancels far less than x (P''/P − (P'/P)²) at large x; that form serves x < 1.
    kf = k.astype(s.dtype)
    w = jnp.exp(log_c.astype(s.dtype) + jss.xlogy(kf, x) - log_p)
    m1 = jnp.sum(w * kf)
    spread = (jnp.sum(w * (kf - m1) ** 2) - m1 / 2) / jnp.where(x < 1, 1, x)
    slope = jnp.where(x < 1, p1 / 2 + x * (p2 - p1**2), spread)
    return log_p - nu * math.log(2.0), p1 / 2, slope


def _debye_coefficients(nu: float) -> np.ndarray:
    r"""$S = \sum_k u_k(\nu/r)/\nu^k$ as a polynomial in $1/r$: coefficients of
    $r^0, \dots, r^{-12}$."""
    coefficients = np.zeros(13)
    for k, row in enumerate(_DEBYE, start=1):
        for j, c in enumerate(row):
            coefficients[k + 2 * j] += c * nu ** (2 * j)
    return coefficients


def _debye(nu: float, s):
    r"""$(f, A/\kappa, A')$ from Debye's expansion, for $s \ge$ `SERIES_MAX_KAPPA`²."""
    coefficients = _debye_coefficients(nu).astype(s.dtype)
    powers = np.arange(13).astype(s.dtype)

    def correction(r):  # S and dS/dr
        inverse = (1 / r) ** powers
        return jnp.sum(coefficients * inverse), -jnp.sum(coefficients * powers * inverse) / r

    def mean_resultant_length(kappa):  # A(κ)
        r = jnp.sqrt(nu**2 + kappa**2)
        big_s, big_s_r = correction(r)
        return kappa / (nu + r) - kappa / (2 * r**2) + kappa * big_s_r / (r * (1 + big_s))

    kappa = jnp.sqrt(s)
    r = jnp.sqrt(nu**2 + s)
    f = r - nu * jnp.log(nu + r) - 0.5 * jnp.log(2 * jnp.pi * r) + jnp.log1p(correction(r)[0])
    a, a_prime = jax.jvp(mean_resultant_length, (kappa,), (jnp.ones_like(kappa),))
    return f, a / kappa, a_prime


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def scalars(nu: float, s):
    r"""$(f_\nu(s),\ A/\kappa,\ A')$ at $s = \kappa^2 \ge 0$; `nu` $\ge 0$ a Python number,
    `s` a scalar array (see the module docstring)."""
    high = SERIES_MAX_KAPPA**2
    series = s < high
    # Each branch sees only inputs where it is accurate.
    low = _series(nu, jnp.where(series, s, 0.0))
    asymptotic = _debye(nu, jnp.where(series, high, s))
    return tuple(jnp.where(series, a, b) for a, b in zip(low, asymptotic))


def ratio_derivative(nu: float, s, ratio, slope):
    r"""$\frac{d}{ds}\frac{A}{\kappa} = \frac{A' - A/\kappa}{2s}$, which tends to
    $-1/(d^2(d + 2))$ at $s = 0$ ($d = 2\nu + 2$)."""
    d = 2 * nu + 2
    small = s < 1e-8  # below this the quotient loses more than the limit's O(s) error
    return jnp.where(small, -1 / (d**2 * (d + 2)), (slope - ratio) / (2 * jnp.where(small, 1, s)))


@scalars.defjvp
def _scalars_jvp(nu, primals, tangents):
    # f' = (A/κ)/2; d(A/κ)/ds as above; A'' = −2AA' − (2ν + 1)(A' − A/κ)/κ with
    # d/ds = (1/2κ) d/dκ.
    ((s,), (ds,)) = primals, tangents
    f, ratio, slope = scalars(nu, s)
    dratio = ratio_derivative(nu, s, ratio, slope)
    return (f, ratio, slope), (
        0.5 * ratio * ds,
        dratio * ds,
        (-ratio * slope - (2 * nu + 1) * dratio) * ds,
    )


def log_normaliser(nu: float, s):
    r"""$f_\nu(s) = \log I_\nu(\sqrt s) - \frac{\nu}{2}\log s$."""
    return scalars(nu, s)[0]


def ratio(nu: float, s):
    r"""$A(\kappa)/\kappa$."""
    return scalars(nu, s)[1]
