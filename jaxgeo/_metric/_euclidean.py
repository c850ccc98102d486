import equinox as eqx
import jax.numpy as jnp

from .._checks import check_point
from .._custom_types import MetricMatrix, Point, Scalar, Tangent
from ._base import AbstractMetric


class Euclidean(AbstractMetric):
    r"""The flat metric $G(x) = I$ on $\mathbb{R}^D$."""

    dim: int = eqx.field(static=True)

    def __check_init__(self):
        if not (isinstance(self.dim, int) and self.dim >= 1):
            raise ValueError(f"Euclidean(dim) needs a positive integer dim, got {self.dim!r}")

    def matrix(self, x: Point) -> MetricMatrix:
        check_point(x, dim=self.dim)
        return jnp.eye(self.dim, dtype=x.dtype)

    def inner(self, x: Point, u: Tangent, v: Tangent) -> Scalar:
        check_point(x, dim=self.dim)
        return jnp.dot(u, v)

    def solve(self, x: Point, w: Tangent) -> Tangent:
        check_point(x, dim=self.dim)
        return w

    def inverse_matrix(self, x: Point) -> MetricMatrix:
        return self.matrix(x)

    def log_det(self, x: Point) -> Scalar:
        check_point(x, dim=self.dim)
        return jnp.zeros((), x.dtype)
