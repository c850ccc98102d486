from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp

from .._checks import check_point
from .._custom_types import MetricMatrix, Point
from ._base import AbstractMetric


# G - G^T may differ from zero by round-off: a symmetric product J^T J computed in
# floating point need not be exactly symmetric.
SYMMETRY_ULPS = 1e4


class MatrixMetric(AbstractMetric):
    """A metric given by any user function `fn: x -> G(x)`.

    `fn` must return a symmetric positive-definite `(D, D)` matrix for a point of
    shape `(D,)`; the shape is checked at trace time, symmetry when the matrix is
    computed (`eqx.error_if`, also under `jit`), and the matrix takes the point's
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
        g = jnp.asarray(g, x.dtype)
        # Only the symmetric part enters the quadratic form; the rest would make the
        # geodesic equation (and solves with G) disagree with it.
        asymmetry = jnp.max(jnp.abs(g - g.T))
        tolerance = SYMMETRY_ULPS * jnp.finfo(g.dtype).eps * jnp.max(jnp.abs(g))
        return eqx.error_if(
            g,
            asymmetry > tolerance,
            "MatrixMetric: fn returned a non-symmetric matrix; a metric is symmetric "
            "(use (G + G.T) / 2 if only the quadratic form is meant)",
        )
