from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_point
from .._custom_types import MetricMatrix, Point
from .._linalg import cholesky
from ._base import AbstractMetric


# G - G^T may differ from zero by round-off: a symmetric product J^T J computed in
# floating point need not be exactly symmetric.
SYMMETRY_ULPS = 1e4


def _check_symmetric(g: np.ndarray, where: str) -> None:
    """Raise if the concrete matrix `g` is finite and not symmetric."""
    if not np.all(np.isfinite(g)):
        return  # outside the metric's domain: the solvers see NaN and reject
    tolerance = SYMMETRY_ULPS * np.finfo(g.dtype).eps * np.max(np.abs(g))
    if np.max(np.abs(g - g.T)) > tolerance:
        raise ValueError(
            f"MatrixMetric: fn returned a non-symmetric matrix {where}; a metric is "
            "symmetric (use (G + G.T) / 2 if only the quadratic form is meant)"
        )


# A matrix counts as positive semidefinite if it has a Cholesky factor after a shift by
# this many ulps of its largest entry (round-off in G's eigenvalues), plus the smallest
# normal number (so that G = 0 itself, where a metric vanishes, is accepted).
SEMIDEFINITE_ULPS = 1e4


def _nan_unless_semidefinite(g: MetricMatrix) -> MetricMatrix:
    """`g`, or NaN where it is not positive semidefinite (up to round-off): a trial
    point of a solver there sees a non-finite energy and is rejected. No derivative
    flows through the test."""
    test = jax.lax.stop_gradient(g)
    info = jnp.finfo(g.dtype)
    shift = SEMIDEFINITE_ULPS * info.eps * jnp.max(jnp.abs(test)) + info.tiny
    factor = cholesky(test + shift * jnp.eye(g.shape[0], dtype=g.dtype))
    return jnp.where(jnp.all(jnp.isfinite(factor)), g, jnp.nan)


class MatrixMetric(AbstractMetric):
    """A metric given by any user function `fn: x -> G(x)`.

    `fn` must return a symmetric positive-definite `(D, D)` matrix for a point of
    shape `(D,)`; the shape is checked at trace time, and the matrix takes the point's
    dtype. Where `fn`'s matrix is not positive semidefinite (beyond round-off) the
    metric is NaN, as outside a domain: `fn` knows nothing of its domain (e.g. a Fisher
    information written by hand is indefinite for invalid parameters), and the solvers
    reject trial points where the metric is NaN, so they stay inside it.

    Symmetry is checked on the matrix itself when it is computed eagerly, and
    under `jit`/`vmap` at trace time on a probe point (where `fn` can be evaluated
    there: a non-symmetric `fn` would make the geodesic equation and solves with $G$
    disagree with the quadratic form, which sees only the symmetric part). Use an
    `eqx.Module` (or `jax.tree_util.Partial`) for `fn` when it holds parameters you
    want to differentiate.

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
        if isinstance(g, jax.core.Tracer):
            self._check_symmetric_at_probe(x.shape[0], x.dtype)
        else:
            _check_symmetric(np.asarray(g), f"at {np.asarray(x)}")
        return _nan_unless_semidefinite(g)

    def _check_symmetric_at_probe(self, dim: int, dtype) -> None:
        """At trace time: `fn` at a fixed probe point, evaluated now (skipped where `fn`
        depends on traced values, e.g. parameters under `jit`)."""
        probe = np.linspace(0.5, 1.5, dim).astype(dtype)
        try:
            with jax.ensure_compile_time_eval():
                g = np.asarray(jnp.asarray(self.fn(jnp.asarray(probe)), dtype))
        except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
            return
        _check_symmetric(g, f"at the probe point {probe}")
