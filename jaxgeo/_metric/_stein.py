from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import call_score, check_point, check_value
from .._custom_types import MetricMatrix, Point, Scalar, ScalarLike, Tangent
from ._base import AbstractMetric


class SteinMetric(AbstractMetric):
    r"""The Stein-score metric of the data manifold (Perone, *The geometry of data* II).

    $$G(x) = (s s^\top + \lambda I)^{-1}
           = \frac{1}{\lambda}\Big(I - \frac{s s^\top}{\lambda + |s|^2}\Big),
      \qquad s = \nabla_x \log p(x).$$

    Moving along the score (toward the data) is cheap, so geodesics bend into regions
    of high density. `inner`, `solve`, `inverse_matrix` and `log_det` use the
    Sherman–Morrison closed forms: $O(D)$, no `(D, D)` matrix is built.

    With `diagonal=True` the metric is the diagonal of the above,
    $G_{ii} = (1 - s_i^2/(\lambda + |s|^2))/\lambda$.

    **Arguments:**

    - `score`: a function $x \mapsto s(x)$ from `(D,)` to `(D,)`: analytic
      (`jg.scores.*`) or learned. Use an `eqx.Module` to differentiate its parameters.
    - `damping`: $\lambda > 0$. Small values make the contraction along $s$ stronger.
    - `diagonal`: use the diagonal approximation.
    - `conservative`: declare that the score is a true gradient $\nabla_x \log p$ (its
      Jacobian $H$ is symmetric: the analytic `jg.scores.*`, or a network's
      `jax.grad`). Geodesic accelerations then use the closed form below, built from
      two Jacobian–vector products of the score (forward mode only). A free-form
      learned score is *not* conservative: leave this `False` for it, or the
      geodesic equation will be wrong.

    With $a = s\cdot v$, $c = \lambda + |s|^2$ and $H$ symmetric, the Euler–Lagrange
    equation gives $\ddot x = (\lambda I + s s^\top) w$,
    $$\lambda w = \frac{a^2}{c^2} H s
      + s\Big(\frac{v^\top H v}{c} - \frac{2a\, s^\top H v}{c^2}\Big).$$
    """

    score: Callable[[Point], Tangent]
    damping: ScalarLike = 1.0
    diagonal: bool = eqx.field(static=True, default=False)
    conservative: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        check_value(
            self.damping,
            lambda d: d > 0,
            f"SteinMetric needs damping > 0, got {self.damping!r}",
        )

    @property
    def _damping(self):
        # A traced damping is not checked at construction: where it is not positive
        # the metric is NaN, so that solvers report a non-finite energy, not success.
        return jnp.where(self.damping > 0, self.damping, jnp.nan)

    def _score(self, x: Point) -> Tangent:
        check_point(x)
        return call_score(self.score, x)

    def _diagonal(self, s: Tangent) -> Tangent:
        lam = self._damping
        return (1 - s**2 / (lam + jnp.dot(s, s))) / lam

    def matrix(self, x: Point) -> MetricMatrix:
        s = self._score(x)
        if self.diagonal:
            return jnp.diag(self._diagonal(s))
        lam = self._damping
        eye = jnp.eye(x.shape[0], dtype=x.dtype)
        return (eye - jnp.outer(s, s) / (lam + jnp.dot(s, s))) / lam

    def inner(self, x: Point, u: Tangent, v: Tangent) -> Scalar:
        s = self._score(x)
        if self.diagonal:
            return jnp.sum(self._diagonal(s) * u * v)
        lam = self._damping
        return (jnp.dot(u, v) - jnp.dot(s, u) * jnp.dot(s, v) / (lam + jnp.dot(s, s))) / lam

    def solve(self, x: Point, w: Tangent) -> Tangent:
        s = self._score(x)
        if self.diagonal:
            return w / self._diagonal(s)
        return self._damping * w + s * jnp.dot(s, w)

    def inverse_matrix(self, x: Point) -> MetricMatrix:
        s = self._score(x)
        if self.diagonal:
            return jnp.diag(1 / self._diagonal(s))
        eye = jnp.eye(x.shape[0], dtype=x.dtype)
        return self._damping * eye + jnp.outer(s, s)

    def inverse_sqrt_apply(self, x: Point, v: Tangent) -> Tangent:
        r"""The symmetric root $(\lambda I + s s^\top)^{1/2} v = \sqrt\lambda\, v +
        (\sqrt{\lambda + |s|^2} - \sqrt\lambda)\,\hat s \hat s^\top v$."""
        s = self._score(x)
        if self.diagonal:
            return v / jnp.sqrt(self._diagonal(s))
        lam = self._damping
        sq = jnp.dot(s, s)
        # (sqrt(lam + |s|^2) - sqrt(lam)) / |s|^2, without 0/0 at s = 0
        coef = 1 / (jnp.sqrt(lam + sq) + jnp.sqrt(lam))
        return jnp.sqrt(lam) * v + coef * s * jnp.dot(s, v)

    def log_det(self, x: Point) -> Scalar:
        s = self._score(x)
        if self.diagonal:
            return jnp.sum(jnp.log(self._diagonal(s)))
        lam = self._damping
        dim = x.shape[0]
        return -(dim - 1) * jnp.log(lam) - jnp.log(lam + jnp.dot(s, s))

    def geodesic_acceleration(self, x: Point, v: Tangent) -> Tangent:
        if self.diagonal or not self.conservative:
            return super().geodesic_acceleration(x, v)
        check_point(x)
        s, hessian_vp = jax.linearize(lambda y: call_score(self.score, y), x)
        hv, hs = hessian_vp(v), hessian_vp(s)
        lam = self._damping
        a, c = jnp.dot(s, v), lam + jnp.dot(s, s)
        w = ((a / c) ** 2 * hs + s * (jnp.dot(v, hv) / c - 2 * a * jnp.dot(s, hv) / c**2)) / lam
        return lam * w + s * jnp.dot(s, w)


class MongeMetric(AbstractMetric):
    r"""The Monge metric $G(x) = I + \alpha^2 s s^\top$ (Hartmann, Girolami, Klami 2022).

    The opposite convention to [`jaxgeo.SteinMetric`][]: moving along the score is
    *expensive*, which penalises motion off the data manifold. Closed forms:
    $G^{-1} = I - \alpha^2 s s^\top / (1 + \alpha^2 |s|^2)$,
    $\log\det G = \log(1 + \alpha^2 |s|^2)$.
    """

    score: Callable[[Point], Tangent]
    alpha: ScalarLike = 1.0

    def _score(self, x: Point) -> Tangent:
        check_point(x)
        return call_score(self.score, x)

    def matrix(self, x: Point) -> MetricMatrix:
        s = self._score(x)
        eye = jnp.eye(x.shape[0], dtype=x.dtype)
        return eye + self.alpha**2 * jnp.outer(s, s)

    def inner(self, x: Point, u: Tangent, v: Tangent) -> Scalar:
        s = self._score(x)
        return jnp.dot(u, v) + self.alpha**2 * jnp.dot(s, u) * jnp.dot(s, v)

    def solve(self, x: Point, w: Tangent) -> Tangent:
        s = self._score(x)
        a2 = self.alpha**2
        return w - a2 * s * jnp.dot(s, w) / (1 + a2 * jnp.dot(s, s))

    def inverse_matrix(self, x: Point) -> MetricMatrix:
        s = self._score(x)
        a2 = self.alpha**2
        eye = jnp.eye(x.shape[0], dtype=x.dtype)
        return eye - a2 * jnp.outer(s, s) / (1 + a2 * jnp.dot(s, s))

    def inverse_sqrt_apply(self, x: Point, v: Tangent) -> Tangent:
        r"""The symmetric root $G^{-1/2} v = v + (1/\sqrt{1 + \alpha^2 |s|^2} - 1)\,
        \hat s \hat s^\top v$."""
        s = self._score(x)
        a2 = self.alpha**2
        root = jnp.sqrt(1 + a2 * jnp.dot(s, s))
        # (1/root - 1) / |s|^2 = -a2 / (root (1 + root)), without 0/0 at s = 0
        return v - a2 / (root * (1 + root)) * s * jnp.dot(s, v)

    def log_det(self, x: Point) -> Scalar:
        s = self._score(x)
        return jnp.log1p(self.alpha**2 * jnp.dot(s, s))
