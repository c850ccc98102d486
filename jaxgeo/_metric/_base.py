import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from .._custom_types import Curve, MetricMatrix, Point, Scalar, Tangent
from .._linalg import cholesky, solve_triangular, spd_solve
from .._numerics import HIGHEST, safe_sqrt


# Methods no metric overrides: Newton's derivatives of the midpoint rule go through
# `sq_norm` (`_geodesic/_segments.py`), so an overridden rule would be solved wrongly.
FINAL_METRIC_METHODS = ("norm", "midpoint_sq_norm")


class AbstractMetric(eqx.Module):
    r"""A Riemannian metric $G(x)$ on coordinates $x \in \mathbb{R}^D$.

    Subclasses implement one method, `matrix(x)`; everything else is derived from it.
    All methods act on a single point: batch with `jax.vmap`.

    Where its structure allows, a subclass overrides derived methods with closed forms
    or matrix-free versions. These, and only these, are overridable (every override is
    tested against the derived default): `inner`, `sq_norm`, `solve`,
    `inverse_matrix`, `inverse_sqrt_apply`, `log_det` and `geodesic_acceleration`.
    `norm` and `midpoint_sq_norm` are final (overriding them is a `TypeError`: the
    solvers differentiate the midpoint rule through `sq_norm`). Metrics with a
    Jacobian-free segment energy subclass [`jaxgeo.AbstractSecantMetric`][].

    Metrics are Equinox modules, hence pytrees: a metric holding a score network is
    differentiable in the network's parameters and can be vmapped over an ensemble.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in FINAL_METRIC_METHODS:
            if name in vars(cls):
                raise TypeError(
                    f"{cls.__name__} overrides {name}, which is final: override sq_norm "
                    "(or inner) instead, which it is derived from"
                )

    @abc.abstractmethod
    def matrix(self, x: Point) -> MetricMatrix:
        """The metric tensor $G(x)$, shape `(D, D)`, symmetric positive definite."""

    def inner(self, x: Point, u: Tangent, v: Tangent) -> Scalar:
        r"""The inner product $\langle u, v \rangle_{G(x)} = u^\top G(x) v$."""
        return jnp.dot(u, jnp.dot(self.matrix(x), v, precision=HIGHEST))

    def sq_norm(self, x: Point, v: Tangent) -> Scalar:
        r"""$\langle v, v \rangle_{G(x)}$: `inner(x, v, v)`, overridden where the square
        is cheaper than a general inner product (one Jacobian-vector product, not two)."""
        return self.inner(x, v, v)

    def norm(self, x: Point, v: Tangent) -> Scalar:
        r"""The norm $\|v\|_{G(x)} = \sqrt{\langle v, v \rangle_{G(x)}}$."""
        return safe_sqrt(self.sq_norm(x, v))

    def solve(self, x: Point, w: Tangent) -> Tangent:
        """$G(x)^{-1} w$ (raising an index), by a Cholesky solve.

        Where $G(x)$ is not positive definite (or not finite) the result is NaN, which
        solvers report through their `result`. (Not lineax: its forward-mode rule raises
        on non-finite input even with `throw=False`, which would crash a shooting solve
        that strays outside the metric's domain.)
        """
        g = self.matrix(x)
        dtype = jnp.result_type(g, w)
        return spd_solve(g.astype(dtype), w.astype(dtype))

    def inverse_matrix(self, x: Point) -> MetricMatrix:
        """The inverse metric (cometric) $G(x)^{-1}$, shape `(D, D)`."""
        eye = jnp.eye(x.shape[-1], dtype=x.dtype)
        return jax.vmap(lambda e: self.solve(x, e), out_axes=1)(eye)

    def inverse_sqrt_apply(self, x: Point, v: Tangent) -> Tangent:
        r"""$L v$ for a square root $L$ of the cometric, $L L^\top = G(x)^{-1}$: maps
        standard normal noise to $N(0, G^{-1})$ (Riemannian samplers). Here
        $L = C^{-\top}$ with $G = C C^\top$ (Cholesky); NaN where $G$ is not positive
        definite."""
        chol = cholesky(self.matrix(x))
        return solve_triangular(chol.T, v, lower=False)

    def log_det(self, x: Point) -> Scalar:
        r"""$\log\det G(x)$, from the Cholesky factor."""
        chol = cholesky(self.matrix(x))
        return 2 * jnp.sum(jnp.log(jnp.diagonal(chol)))

    def midpoint_sq_norm(self, a: Point, b: Point) -> Scalar:
        r"""The squared length of the short segment from `a` to `b` used by discrete
        curve energies: the midpoint rule $\langle b - a, b - a\rangle_{G((a+b)/2)}$."""
        return self.sq_norm(0.5 * (a + b), b - a)

    def geodesic_acceleration(self, x: Point, v: Tangent) -> Tangent:
        r"""The geodesic acceleration $-\Gamma(v, v)$ at `x`, matrix-free.

        From the Lagrangian $\mathcal L(x, v) = \frac12\langle v, v\rangle_{G(x)}$, the
        Euler–Lagrange equation gives $G a = \nabla_x \mathcal L - D_x[G(x) v]\,v$ with
        $G(x) v = \nabla_v \mathcal L$: two autodiff passes through `inner` and one
        `solve`. No `(D, D)` matrix or `(D, D, D)` tensor is formed unless `inner` or
        `solve` form them. Metrics with a cheaper closed form override this."""

        def lagrangian(y, w):
            return 0.5 * self.sq_norm(y, w)

        grad_x = jax.grad(lagrangian, argnums=0)(x, v)
        _, d_momentum = jax.jvp(lambda y: jax.grad(lagrangian, argnums=1)(y, v), (x,), (v,))
        return self.solve(x, grad_x - d_momentum)


class AbstractSecantMetric(AbstractMetric):
    r"""A metric with a Jacobian-free (secant) segment energy: a value that agrees with
    the midpoint rule `midpoint_sq_norm(a, b)` to second order in $b - a$ but needs no
    derivatives, e.g. $|f(b) - f(a)|^2$ for a pullback through $f$, or a symmetrised KL
    divergence for a Fisher–Rao metric. Selected by `energy="secant"` in
    [`jaxgeo.geodesic_bvp`][] and [`jaxgeo.curve_energy`][]; only metrics of this type
    offer it."""

    @abc.abstractmethod
    def secant_sq_norm(self, a: Point, b: Point) -> Scalar:
        """The secant squared length of the segment from `a` to `b`."""

    def secant_curve_sq_norms(self, xs: Curve) -> Float[Array, " segments"]:
        """`secant_sq_norm` of every segment of the polyline `xs` (`(N + 1, D)` →
        `(N,)`). Overridable where a whole curve is cheaper (a pullback decodes each
        point once, not twice)."""
        return jax.vmap(self.secant_sq_norm)(xs[:-1], xs[1:])


def defined_at(metric: AbstractMetric, x: Point) -> Bool[Array, ""]:
    """Whether the metric is finite at `x` (its norm of a fixed vector): false outside
    its domain, where metrics are NaN so that solvers reject trial steps there."""
    ones = jnp.ones_like(x)
    return jnp.isfinite(metric.inner(x, ones, ones))
