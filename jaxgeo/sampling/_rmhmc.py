"""Riemannian-manifold HMC with a jaxgeo metric as the mass matrix (blackjax's RMHMC)."""

from jaxtyping import ArrayLike, Float

from .._checks import check_positive
from .._metric._base import AbstractMetric
from ._mmala import LogDensity


def rmhmc(
    logdensity_fn: LogDensity,
    metric: AbstractMetric,
    step_size: float | Float[ArrayLike, ""],
    num_integration_steps: int,
    **kwargs,
):
    """Riemannian-manifold HMC with `metric` as the position-dependent mass matrix:
    blackjax's `rmhmc` (implicit-midpoint integrator for the non-separable Hamiltonian)
    with `mass_matrix = metric.matrix`. Keyword arguments go to `blackjax.rmhmc`."""
    import blackjax

    check_positive(step_size, "rmhmc: the step size")
    return blackjax.rmhmc(logdensity_fn, step_size, metric.matrix, num_integration_steps, **kwargs)
