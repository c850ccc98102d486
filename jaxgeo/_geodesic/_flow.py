r"""The geodesic flow: the geodesic equation as a first-order system, and the one
`diffrax.diffeqsolve` call that integrates it and the ODEs carried along it
([`jaxgeo.geodesic_ivp`][], the segments of [`jaxgeo.Shooting`][], the transports of
`jaxgeo.stats`), with its step-size controller and the result of an integration."""

from collections.abc import Callable
from typing import Any

import diffrax as dfx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, PyTree

from .._custom_types import Point
from .._functional import geodesic_acceleration
from .._metric._base import AbstractMetric, defined_at
from .._numerics import ODE_MIN_STEP, ODE_TOL
from .._solution import RESULTS


def geodesic_vector_field(t, state, metric):
    r"""The geodesic equation as a first-order system, $(\dot x, \dot v) = (v,
    -\Gamma(v, v))$, in diffrax's `(t, y, args)` form with the metric as `args`."""
    del t
    x, v = state
    return v, geodesic_acceleration(metric, x, v)


def ode_controller(
    dtype,
    t1,
    rtol: float | None = None,
    atol: float | None = None,
    norm: Callable[[PyTree], Array] = optx.rms_norm,
) -> dfx.PIDController:
    """The step-size controller of the geodesic flow and the ODEs along it: PID at
    `rtol`, `atol` (default `ODE_TOL` of the dtype) in `norm`, with a step size that may
    not collapse below `ODE_MIN_STEP` of the time span: the integration fails instead
    (`flow_result` names it; `Shooting` sees the non-finite states it leaves)."""
    tol = ODE_TOL(dtype)
    return dfx.PIDController(
        rtol=tol if rtol is None else rtol,
        atol=tol if atol is None else atol,
        dtmin=ODE_MIN_STEP * jnp.abs(t1),
        force_dtmin=False,
        norm=norm,
    )


def integrate(
    field: Callable[[Any, PyTree, Any], PyTree],
    y0: PyTree,
    t1,
    args: Any,
    *,
    controller: dfx.AbstractStepSizeController,
    saveat: dfx.SaveAt,
    max_steps: int,
    solver: dfx.AbstractSolver = dfx.Tsit5(),
    adjoint: dfx.AbstractAdjoint = dfx.RecursiveCheckpointAdjoint(),
    dt0: float | None = None,
) -> dfx.Solution:
    r"""$\dot y = f(t, y, \text{args})$ from $y(0) = y_0$ over $[0, t_1]$ by
    `diffrax.diffeqsolve`, never throwing (callers report `flow_result`)."""
    return dfx.diffeqsolve(
        dfx.ODETerm(field),
        solver,
        t0=0.0,
        t1=t1,
        dt0=dt0,
        y0=y0,
        args=args,
        saveat=saveat,
        stepsize_controller=controller,
        max_steps=max_steps,
        adjoint=adjoint,
        throw=False,
    )


def flow_result(sol: dfx.Solution, metric: AbstractMetric, x0: Point, arguments, states) -> RESULTS:
    """The result of an integration from `x0` (the `arguments` it started from, the
    saved `states`): diffrax's, with a step size that collapsed or a budget spent
    mostly (2/3) on rejected steps reported as a breakdown of the flow (not a budget
    too small), non-finite states, a metric undefined at `x0`, and non-finite
    arguments named."""
    result = RESULTS.promote(sol.result)
    num_rejected = sol.stats["num_rejected_steps"]
    rejected = (num_rejected > 2 * sol.stats["num_accepted_steps"]) & (num_rejected >= 16)
    breakdown = (result == RESULTS.dt_min_reached) | (
        (result == RESULTS.max_steps_reached) & rejected
    )
    result = RESULTS.where(breakdown, RESULTS.flow_breakdown, result)
    result = RESULTS.where(
        (result == RESULTS.successful) & ~_all_finite(states), RESULTS.nonfinite_energy, result
    )
    result = RESULTS.where(defined_at(metric, x0), result, RESULTS.undefined_endpoint)
    return RESULTS.where(_all_finite(arguments), result, RESULTS.nonfinite_arguments)


def _all_finite(tree) -> Array:
    return jnp.all(jnp.array([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]))
