"""Numerical conventions shared by the whole package, defined once: matmul precision,
dtype-dependent tolerances and a square root safe to differentiate at zero."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


# Metric, Jacobian and Christoffel contractions: the default matmul precision of GPUs and
# TPUs (bfloat16 passes) is not enough for curvature or for Newton's Hessians.
HIGHEST = jax.lax.Precision.HIGHEST


class Tolerance(NamedTuple):
    """A default tolerance by precision: `double` in float64, `single` in float32 and
    lower, where double-precision targets are below the round-off noise."""

    double: float
    single: float

    def __call__(self, dtype) -> float:
        return self.double if jnp.finfo(dtype).bits >= 64 else self.single


# Polyline (energy) solvers: the discrete geodesic is O(1/N^2) from the true one, so
# stopping at 1e-6 in float64 costs nothing in accuracy; float32 energies are noisy at 1e-5.
POLYLINE_TOL = Tolerance(1e-6, 1e-4)
# Lengths of geodesics (`Richardson`, the default of distances and log maps): the
# estimated error of the extrapolated length, relative.
LENGTH_TOL = Tolerance(1e-6, 1e-4)
# Newton's stopping tolerance on the levels of `Richardson`: the discrete-momentum
# velocities carry N times the error of the points (measured on the Poincare half-plane:
# log map 1.5e-7 off at 1e-6, 6e-10 at 1e-9, for one more Newton step).
LEVEL_TOL = Tolerance(1e-10, 1e-4)
# Newton's stopping tolerance on the levels of `Richardson` where only the length is
# resolved: a level's length is stationary, its error the square of the points' (and
# Newton's last step leaves the points far closer than its size). On a learned ring
# metric (an MLP score; 1,770 pairs): 27 s against 37 s at 1e-6, the same errors against
# multiple shooting (max 7e-8).
LENGTH_LEVEL_TOL = Tolerance(1e-4, 1e-4)
# Adaptive geodesic ODE integration (exp maps): tight enough that the end point is
# accurate to ~1e-9 in float64 (measured against closed forms on the sphere and the
# Poincaré half-plane); float32 round-off sits near 1e-7.
ODE_TOL = Tolerance(1e-10, 1e-6)
# The smallest step of a geodesic flow, relative to its duration: below it (a flow that
# runs into a singularity, a region where the metric is NaN or not positive definite,
# keeps rejecting or shrinking its steps) the integration stops and reports failure
# instead of spending its budget. No feasible solve needs it: 1e10 steps would.
ODE_MIN_STEP = 1e-10
# Fréchet means (`NewtonMean`, `KarcherMean`): the mean's estimated error, or the
# Riemannian gradient, relative to the root mean square distance sqrt(2F).
MEAN_TOL = Tolerance(1e-7, 1e-4)
# Multiple shooting's Newton iteration, on the end-point and join mismatches.
SHOOTING_TOL = Tolerance(1e-10, 1e-5)
# Conjugate gradients on (J^T G J) u = w: near machine precision, as a direct solve would be.
CG_TOL = Tolerance(1e-12, 1e-6)


def safe_sqrt(q: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
    """`sqrt(max(q, 0))` with a zero (not NaN) gradient at `q = 0`; NaN stays NaN (a
    norm where the metric is undefined is not zero)."""
    positive = q > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, q, 1)), jnp.where(q <= 0, 0, q))
