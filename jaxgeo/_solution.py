import functools
from collections.abc import Callable
from typing import Any

import diffrax as dfx
import equinox as eqx
import jax
from jaxtyping import Array, Float

from ._custom_types import Curve, Scalar


class RESULTS(dfx.RESULTS):  # pyright: ignore
    """Why a geodesic solve ended: `RESULTS.successful` or a failure with its message.

    Extends `diffrax.RESULTS` and `optimistix.RESULTS` (e.g. `max_steps_reached`,
    `nonlinear_max_steps_reached`)."""

    nonfinite_arguments = (
        "The arguments must be finite (got NaN or inf): the endpoints x0 and x1, or the "
        "initial point x0 and velocity v0."
    )
    nonfinite_energy = (
        "The curve energy became NaN or infinite: the metric is undefined somewhere "
        "along the curve (check the score and the damping)."
    )
    undefined_endpoint = (
        "The metric is not defined at an endpoint (NaN or infinite there; a "
        "MatrixMetric is NaN where its matrix is not positive semidefinite): x0 or x1 "
        "lies outside the metric's domain (e.g. invalid distribution parameters of a "
        "FisherRaoMetric, such as a negative scale, or a point where the score is NaN), "
        "or the metric itself is invalid (e.g. a traced SteinMetric damping <= 0)."
    )
    flow_breakdown = (
        "The geodesic flow broke down: its step size collapsed (below 1e-10 of the "
        "time span) or most of its steps were rejected, so the metric or its "
        "derivatives are NaN, infinite, singular or "
        "not positive definite just ahead of the curve, or the velocity is far too "
        "large for the metric. Increasing max_steps will not help."
    )
    nonfinite_distances = (
        "A point is at an infinite or undefined (NaN) distance from every cluster "
        "centre: the geodesic distance solves to it failed."
    )
    unresolved_curve = (
        "The discrete geodesic is not resolved: far from constant speed "
        "(constant_speed_ratio L^2 / 2E < 1/2 in stats), or its midpoint-rule length "
        "differs from the length at the segments' ends by more than 2x "
        "(endpoint_rule_ratio in stats: a segment may jump across a region where the "
        "metric nearly vanishes); or, from jaxgeo.Richardson (the default of distance, "
        "log_map and pairwise_distances), the extrapolated length's estimated error "
        "(error_estimate in stats) is still above the tolerance at max_segments. The "
        "segments are too long for how fast the metric varies: raise "
        "Richardson(max_segments=...), or num_points of geodesic_bvp."
    )


class GeodesicSolution(eqx.Module):
    r"""A geodesic between two points, or from a point and a velocity.

    **Attributes:**

    - `ts`: times $t_i \in [0, 1]$ of the curve points, shape `(N + 1,)`.
    - `xs`: the curve points $c(t_i)$, shape `(N + 1, D)`.
    - `vs`: the velocities $\dot c(t_i)$, shape `(N + 1, D)`.
    - `length`: the Riemannian length $L$ of the curve.
    - `energy`: the energy $E = \frac12\int_0^1 \langle\dot c, \dot c\rangle\,dt$.
    - `result`: a [`jaxgeo.RESULTS`][]; `RESULTS.successful` if the solve converged.
      Under `jax.vmap` use `throw=False` and inspect this per element.
    - `stats`: a dict. Every producer gives `num_steps` (iterations of its outermost
      loop) and `max_steps` (that loop's budget); the other keys are documented by
      each producer: the polyline solvers ([`jaxgeo.AbstractPolylineSolver`][]:
      `grad_norm`, `constant_speed_ratio`), [`jaxgeo.Shooting`][] (`residual`,
      `init_num_steps`), [`jaxgeo.Richardson`][] (`num_segments`, `error_estimate`, `coarse_length`,
      `fine_length`)
      and [`jaxgeo.geodesic_ivp`][] (`speed_drift`).
    """

    ts: Float[Array, " points"]
    xs: Curve
    vs: Curve
    length: Scalar
    energy: Scalar
    result: RESULTS
    stats: dict[str, Any]


def raise_outside_jit(entry_point: Callable[..., Any]):
    """Compile an entry point `fn(..., throw=True) -> solution` (a module with a
    `result`, e.g. a [`jaxgeo.GeodesicSolution`][]) whose body
    ignores `throw` with `eqx.filter_jit`, and raise the failure its `result` names
    (`throw=True`, `eqx.error_if`) after the compiled program: a program that holds a
    host callback is never written to JAX's persistent compilation cache."""
    compiled = eqx.filter_jit(entry_point)

    @functools.wraps(entry_point)
    def raising(*args, throw: bool = True, **kwargs) -> Any:
        sol = compiled(*args, throw=False, **kwargs)
        if not throw:
            return sol
        failed = sol.result != RESULTS.successful
        if isinstance(failed, jax.core.Tracer):  # inside the caller's jit or vmap
            return sol.result.error_if(sol, failed)
        if failed:  # eager: checked here, without a compiled callback (1 ms per call)
            raise eqx.EquinoxRuntimeError(RESULTS[sol.result])
        return sol

    return raising
