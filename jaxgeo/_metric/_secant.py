from jaxtyping import Array, Float

from .._custom_types import Curve, MetricMatrix, Point, Scalar, Tangent
from ._base import AbstractMetric


class SecantRule(AbstractMetric):
    """`metric` with its discrete curve energy taken from `metric.secant_sq_norm`
    (e.g. `|f(b) - f(a)|^2` for a pullback: no Jacobians). Everything else is
    `metric`'s. Built by `geodesic_bvp(..., energy="secant")`."""

    metric: AbstractMetric

    def matrix(self, x: Point) -> MetricMatrix:
        return self.metric.matrix(x)

    def inner(self, x: Point, u: Tangent, v: Tangent) -> Scalar:
        return self.metric.inner(x, u, v)

    def sq_norm(self, x: Point, v: Tangent) -> Scalar:
        return self.metric.sq_norm(x, v)

    def solve(self, x: Point, w: Tangent) -> Tangent:
        return self.metric.solve(x, w)

    def inverse_matrix(self, x: Point) -> MetricMatrix:
        return self.metric.inverse_matrix(x)

    def log_det(self, x: Point) -> Scalar:
        return self.metric.log_det(x)

    def inverse_sqrt_apply(self, x: Point, v: Tangent) -> Tangent:
        return self.metric.inverse_sqrt_apply(x, v)

    def geodesic_acceleration(self, x: Point, v: Tangent) -> Tangent:
        return self.metric.geodesic_acceleration(x, v)

    def segment_sq_norm(self, a: Point, b: Point) -> Scalar:
        return self.metric.secant_sq_norm(a, b)

    def curve_sq_norms(self, xs: Curve) -> Float[Array, " segments"]:
        return self.metric.secant_curve_sq_norms(xs)
