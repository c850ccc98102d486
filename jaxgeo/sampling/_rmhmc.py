"""Riemannian-manifold HMC with a jaxgeo metric as the mass matrix (blackjax's RMHMC)."""

import jax.numpy as jnp
from jaxtyping import ArrayLike, Float

from .._checks import check_point, check_positive
from .._metric._base import AbstractMetric
from ._mmala import check_start, LogDensity


def rmhmc(
    logdensity_fn: LogDensity,
    metric: AbstractMetric,
    step_size: float | Float[ArrayLike, ""],
    num_integration_steps: int,
    **kwargs,
):
    """Riemannian-manifold HMC with `metric` as the position-dependent mass matrix:
    blackjax's `rmhmc` (implicit-midpoint integrator for the non-separable Hamiltonian)
    with `mass_matrix = metric.matrix`. Keyword arguments go to `blackjax.rmhmc`.

    Its `init(position)` is an error (also under `jit`) if the log-density is not
    finite or the metric not positive definite at `position`: the chain would never
    move."""
    import blackjax

    check_positive(step_size, "rmhmc: the step size")
    algorithm = blackjax.rmhmc(
        logdensity_fn, step_size, metric.matrix, num_integration_steps, **kwargs
    )

    def init(position: ArrayLike):
        position = jnp.asarray(position)
        check_point(position, "rmhmc: position")
        state = algorithm.init(position)
        return state._replace(logdensity=check_start(metric, position, state.logdensity, "rmhmc"))

    return blackjax.base.SamplingAlgorithm(init, algorithm.step)
