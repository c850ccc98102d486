from collections.abc import Callable

import jax.numpy as jnp

from .._checks import check_point
from .._custom_types import MetricMatrix, Point
from ._base import AbstractMetric


class MatrixMetric(AbstractMetric):
    """A metric given by any user function `fn: x -> G(x)`.

    `fn` must return a symmetric positive-definite `(D, D)` matrix for a point of
    shape `(D,)`; the shape is checked at trace time, and the matrix takes the point's
    dtype. Use an `eqx.Module` (or
    `jax.tree_util.Partial`) for `fn` when it holds parameters you want to differentiate.

    !!! example
        The Poincaré half-plane: `MatrixMetric(lambda x: jnp.eye(2) / x[1] ** 2)`.
    """

    fn: Callable[[Point], MetricMatrix]

    def matrix(self, x: Point) -> MetricMatrix:
        check_point(x)
        g = self.fn(x)
        if jnp.shape(g) != (x.shape[0], x.shape[0]):
            raise ValueError(
                f"MatrixMetric's fn returned shape {jnp.shape(g)} for a point of shape "
                f"{x.shape}; expected a square matrix of shape {(x.shape[0],) * 2}"
            )
        return jnp.asarray(g, x.dtype)
