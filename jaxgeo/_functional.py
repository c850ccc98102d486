r"""Pure single-point kernels of Riemannian geometry, by automatic differentiation.

Conventions: $\Gamma^k_{ij} = \frac12 g^{kl}(\partial_i g_{jl} + \partial_j g_{il}
- \partial_l g_{ij})$, $R^l{}_{ijk} = \partial_i \Gamma^l_{jk} - \partial_j \Gamma^l_{ik}
+ \Gamma^l_{im}\Gamma^m_{jk} - \Gamma^l_{jm}\Gamma^m_{ik}$, $R_{jk} = R^i{}_{ijk}$,
$S = g^{jk} R_{jk}$; in 2-D the Gaussian curvature is $S/2$ (the unit sphere has
$S = 2$, the Poincaré half-plane $S = -2$).

Outside a metric's domain the kernels return NaN, not an error (they are meant to be
vmapped over grids that may cross its edge): where $G(x)$ or its derivatives are NaN or
infinite (e.g. the Poincaré half-plane's $I / x_2^2$ at $x_2 = 0$, a
[`jaxgeo.FisherRaoMetric`][] outside its family's parameters, such as a negative scale,
whose matrix is NaN there) or $G(x)$ is singular. `jnp.isfinite(metric.matrix(x))`
tells which points are outside.
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._checks import check_point
from ._custom_types import Christoffel, MetricMatrix, Point, Scalar, Tangent
from ._metric._base import AbstractMetric
from ._numerics import HIGHEST


Riemann = Float[Array, "dim dim dim dim"]


def christoffel(metric: AbstractMetric, x: Point) -> Christoffel:
    r"""Christoffel symbols of the second kind, `gamma[k, i, j]` $= \Gamma^k_{ij}(x)$,
    from `jax.jacfwd` of `metric.matrix`. Builds a `(D, D, D)` tensor: small `D` only;
    for geodesics use the matrix-free [`jaxgeo.geodesic_acceleration`][]."""
    check_point(x)
    # dg[j, l, i] = d_i g_jl
    dg = jax.jacfwd(metric.matrix)(x)
    lowered = 0.5 * (
        jnp.einsum("jli->lij", dg) + jnp.einsum("ilj->lij", dg) - jnp.einsum("ijl->lij", dg)
    )
    return jnp.einsum("kl,lij->kij", metric.inverse_matrix(x), lowered, precision=HIGHEST)


def geodesic_acceleration(metric: AbstractMetric, x: Point, v: Tangent) -> Tangent:
    r"""The geodesic acceleration $\ddot x = -\Gamma(\dot x, \dot x)$, matrix-free.

    `metric.geodesic_acceleration(x, v)`: by default from the Euler–Lagrange equation of
    $\mathcal L(x, v) = \frac12\langle v, v\rangle_{G(x)}$,
    $G a = \nabla_x \mathcal L - D_x[G(x) v]\,v$ (two autodiff passes through
    `metric.inner` and one `metric.solve`; no `(D, D, D)` tensor), or the metric's
    closed form (e.g. [`jaxgeo.SteinMetric`][] with `conservative=True`)."""
    check_point(x)
    return metric.geodesic_acceleration(x, v)


def christoffel_contraction(metric: AbstractMetric, x: Point, u: Tangent, w: Tangent) -> Tangent:
    r"""$-\Gamma_x(u, w)$, matrix-free: the geodesic acceleration $a(v) = -\Gamma(v, v)$
    is quadratic in $v$, so its derivative at $u$ along $w$ is $-2\Gamma(u, w)$ (one
    JVP of [`jaxgeo.geodesic_acceleration`][]); the right-hand side of parallel
    transport, $\dot w = -\Gamma(\dot c, w)$."""
    _, tangent = jax.jvp(lambda v: geodesic_acceleration(metric, x, v), (u,), (w,))
    return 0.5 * tangent


def riemann_tensor(metric: AbstractMetric, x: Point) -> Riemann:
    r"""The Riemann curvature tensor `R[l, i, j, k]` $= R^l{}_{ijk}(x)$ (module
    docstring for the convention), by `jax.jacfwd` of the Christoffel symbols."""
    gamma = christoffel(metric, x)
    # dgamma[l, j, k, i] = d_i Gamma^l_jk
    dgamma = jax.jacfwd(lambda y: christoffel(metric, y))(x)
    derivative = jnp.einsum("ljki->lijk", dgamma) - jnp.einsum("likj->lijk", dgamma)
    product = jnp.einsum("lim,mjk->lijk", gamma, gamma, precision=HIGHEST) - jnp.einsum(
        "ljm,mik->lijk", gamma, gamma, precision=HIGHEST
    )
    return derivative + product


def ricci_tensor(metric: AbstractMetric, x: Point) -> MetricMatrix:
    r"""The Ricci tensor $R_{jk} = R^i{}_{ijk}$."""
    return jnp.einsum("iijk->jk", riemann_tensor(metric, x))


def scalar_curvature(metric: AbstractMetric, x: Point) -> Scalar:
    r"""The scalar curvature $S = g^{jk} R_{jk}$.

    NaN, not an error, outside the metric's domain (as every kernel here, to be vmapped
    over grids that may cross its edge): where $G(x)$ or its derivatives are NaN or
    infinite (e.g. $I / x_2^2$ at $x_2 = 0$; a [`jaxgeo.FisherRaoMetric`][] outside its
    family's parameters, such as a negative scale) or $G(x)$ is singular.
    `jnp.all(jnp.isfinite(metric.matrix(x)))` tells which points are outside."""
    return jnp.sum(metric.inverse_matrix(x) * ricci_tensor(metric, x))


def gaussian_curvature(metric: AbstractMetric, x: Point) -> Scalar:
    r"""The Gaussian curvature $K = S / 2$ of a 2-D metric."""
    if jnp.shape(x) != (2,):
        raise ValueError(
            f"gaussian_curvature is for 2-D metrics, got a point of shape {jnp.shape(x)}"
        )
    return 0.5 * scalar_curvature(metric, x)
