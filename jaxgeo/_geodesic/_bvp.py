import equinox as eqx
import jax.numpy as jnp

from .._checks import finite_pair
from .._curve import straight_line, with_energy_rule
from .._custom_types import Input
from .._metric._base import AbstractMetric
from .._solution import GeodesicSolution, RESULTS
from ._base import AbstractBoundarySolver
from ._energy import EnergyDescent
from ._newton import EnergyNewton


NEWTON_MAX_DIM = 64  # above this, (D, D) Hessian blocks cost more than L-BFGS iterations


def default_tolerance(dtype) -> float:
    """1e-6 in float64; 1e-4 in lower precision, where 1e-6 is below the noise."""
    return 1e-6 if jnp.finfo(dtype).bits >= 64 else 1e-4


@eqx.filter_jit
def geodesic_bvp(
    metric: AbstractMetric,
    x0: Input,
    x1: Input,
    *,
    num_points: int = 64,
    solver: AbstractBoundarySolver | None = None,
    init: Input | None = None,
    max_steps: int = 4096,
    rtol: float | None = None,
    atol: float | None = None,
    energy: str = "midpoint",
    throw: bool = True,
) -> GeodesicSolution:
    r"""The geodesic from `x0` to `x1`.

    By default, the polyline of least discrete energy: the curve is discretised as
    `num_points` points on the uniform grid $t_i = i/N$, $N$ = `num_points - 1`,
    endpoints fixed, and its energy (midpoint rule) is minimised by `solver`. The
    whole solve is one compiled loop that stops on the tolerances. It acts on one pair
    of points: batch with `jax.vmap` (and `throw=False`), and differentiate with
    `jax.grad` (through the implicit function theorem at the minimum).

    With `solver=jaxgeo.Shooting()` the energy polyline is refined by multiple
    shooting into the exact geodesic of the ODE, sampled at the same times, with exact
    length and velocities.

    **Main arguments:**

    - `metric`: any [`jaxgeo.AbstractMetric`][].
    - `x0`, `x1`: the endpoints, shape `(D,)`.

    **Other arguments:**

    - `num_points`: number of curve points including both endpoints ($\ge 2$).
    - `solver`: an [`jaxgeo.AbstractBoundarySolver`][]. Default: [`jaxgeo.EnergyNewton`][]
      (damped Newton with the block-tridiagonal Hessian) for `D <= 64`, else
      [`jaxgeo.EnergyDescent`][] (L-BFGS in preconditioned coordinates); or
      [`jaxgeo.Shooting`][].
    - `init`: an initial curve of shape `(num_points, D)`; its endpoints are replaced
      by `x0` and `x1`. Default: the straight line.
    - `max_steps`: the iteration budget.
    - `rtol`, `atol`: the solver's stopping tolerances; default 1e-6 in float64 and
      1e-4 in float32.
    - `energy`: the discrete energy: `"midpoint"` (default, the metric at segment
      midpoints) or `"secant"`, the metric's Jacobian-free `secant_sq_norm` (e.g.
      $N\sum_i |f(c_{i+1}) - f(c_i)|^2 / 2$ for a [`jaxgeo.PullbackMetric`][]: decoder
      passes only, for very large $D$). Length and energy are reported in the same rule.
    - `throw`: raise if the solve fails. Under `jax.vmap` use `throw=False` and
      inspect `result`.

    **Returns:** a [`jaxgeo.GeodesicSolution`][].

    **Raises:** `ValueError` for malformed input (shapes, `num_points < 2`); a
    runtime error for non-finite endpoints, and, with `throw=True`, for a failed solve.
    """
    x0, x1 = finite_pair(x0, x1, ("x0", "x1"), "geodesic_bvp")
    metric = with_energy_rule(metric, energy, "geodesic_bvp")
    if not isinstance(num_points, int) or num_points < 2:
        raise ValueError(f"geodesic_bvp: num_points must be an integer >= 2, got {num_points!r}")
    dtype = x0.dtype
    if init is None:
        init = straight_line(x0, x1, num_points)
    else:
        init = jnp.asarray(init, dtype)
        if init.shape != (num_points, x0.shape[0]):
            raise ValueError(
                f"geodesic_bvp: init has shape {init.shape}, expected "
                f"(num_points, dim) = {(num_points, x0.shape[0])}"
            )
        init = init.at[0].set(x0).at[-1].set(x1)
    rtol = default_tolerance(dtype) if rtol is None else rtol
    atol = default_tolerance(dtype) if atol is None else atol

    if solver is None:
        solver = default_solver(x0.shape[0])
    sol = solver.geodesic(metric, x0, x1, init, max_steps=max_steps, rtol=rtol, atol=atol)
    if throw:
        sol = sol.result.error_if(sol, sol.result != RESULTS.successful)
    return sol


def default_solver(dim: int) -> AbstractBoundarySolver:
    """[`jaxgeo.EnergyNewton`][] up to `NEWTON_MAX_DIM`, else [`jaxgeo.EnergyDescent`][]."""
    return EnergyNewton() if dim <= NEWTON_MAX_DIM else EnergyDescent()
