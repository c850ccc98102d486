import functools
import warnings
from collections.abc import Callable
from typing import Any

import diffrax as dfx
import equinox as eqx
import jax
import numpy as np
from jaxtyping import Array, Float

from ._custom_types import Curve, Scalar


# Every message names the cause and, where one helps, the knob that fixes it, written as
# `callable(keyword=...)` with a callable of jaxgeo's public API (tests/test_results.py
# checks that each such keyword is a parameter of its callable). The messages that
# diffrax, optimistix and lineax define for these names are replaced: theirs point to
# knobs (`diffeqsolve`, `lineax.linear_solve`, GMRES restarts) that a jaxgeo user never
# reaches. (Redefining an inherited name warns; the warning is expected here.)
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Enumeration has duplicate incompatible values")

    class RESULTS(dfx.RESULTS):  # pyright: ignore
        """Why a solve ended: `RESULTS.successful` or a failure with its message
        (`RESULTS[result]`; [`jaxgeo.result_name`][] gives its short name, e.g.
        `"unresolved_curve"`, for a table).

        Extends `diffrax.RESULTS` and `optimistix.RESULTS` (e.g. `max_steps_reached`,
        `nonlinear_max_steps_reached`), with messages that name jaxgeo's knobs."""

        max_steps_reached = (
            "The iteration budget ran out before convergence (stats['num_steps'] reached "
            "stats['max_steps']). Raise the budget of the call that reported it: "
            "geodesic_ivp(max_steps=...) (the ODE's steps, also exp_map's; or loosen "
            "geodesic_ivp(rtol=...)), parallel_transport(max_steps=...), "
            "transport_along(max_steps=...), k_means(max_steps=...) or "
            "k_medoids(max_steps=...) (their iterations: the clustering so far is "
            "returned), or the mean's solver, KarcherMean(max_steps=...) as "
            "frechet_mean(solver=...)."
        )
        nonlinear_max_steps_reached = (
            "The solver's budget of Newton or descent steps ran out before it converged "
            "(stats['num_steps'] reached stats['max_steps']). Raise it: "
            "geodesic_bvp(max_steps=...), log_map(max_steps=...), distance(max_steps=...) "
            "or pairwise_distances(max_steps=...) (with Richardson, the default, the "
            "steps of all its levels together), Shooting(max_steps=...) (its Newton "
            "steps, also capped by the entry point's max_steps), "
            "ladder_transport(max_steps=...), EnergyMean(max_steps=...) or "
            "NewtonMean(max_steps=...) as frechet_mean(solver=...). A solve that runs "
            "out at any budget may have no solution (e.g. end points that no curve "
            "inside the metric's domain joins)."
        )
        nonlinear_divergence = (
            "The solver diverged: its Newton steps grew instead of shrinking, or its "
            "curve left the metric's domain (NaN), or Shooting's curve still misses x1 "
            "(stats['residual']). The initial curve is usually too far from a geodesic: "
            "start nearer with geodesic_bvp(init=...) or log_map(init=...) (e.g. a "
            "graph_geodesic through the data), use more shooting segments, "
            "Shooting(num_segments=...), or the polyline solvers of Richardson (the "
            "default of log_map and distance), which are more robust than shooting."
        )
        nonfinite = (
            "The solver's iterate became NaN or infinite: the metric or its derivatives "
            "are undefined at a trial point (outside the metric's domain). Start from a "
            "curve inside the domain: geodesic_bvp(init=...), log_map(init=...)."
        )
        dt_min_reached = (
            "The geodesic ODE's step size fell to its minimum: the metric or its "
            "derivatives are NaN, infinite or singular just ahead of the curve "
            "(reported as flow_breakdown by geodesic_ivp)."
        )
        max_steps_rejected = (
            "The geodesic ODE rejected too many steps in a row: the metric varies too "
            "fast or is undefined just ahead of the curve (a diffrax step-size "
            "controller that stores rejected steps ran out of room for them)."
        )
        event_occurred = "The geodesic ODE stopped at an event (not a failure)."
        internal_error = (
            "An internal error of the ODE solver (diffrax): a bug; please report it "
            "with a small example."
        )
        singular = (
            "A linear solve met a singular or non-finite system: the metric (or the "
            "discrete energy's Hessian) is singular or NaN at a point of the curve "
            "(e.g. a rank-deficient PullbackMetric, or a point outside the metric's "
            "domain). Make the metric positive definite there, or start from another "
            "curve, geodesic_bvp(init=...)."
        )
        breakdown = (
            "An iterative linear solve (conjugate gradients on the metric) broke down: "
            "the metric is not positive definite at a point of the curve."
        )
        stagnation = (
            "An iterative linear solve (conjugate gradients on the metric) stagnated: "
            "the metric is nearly singular at a point of the curve."
        )
        conlim = (
            "A linear solve's condition number exceeded its limit: the metric is nearly "
            "singular at a point of the curve."
        )
        nonfinite_input = (
            "A linear solve received NaN or infinite input: the metric or the curve is "
            "NaN at a point (outside the metric's domain, or NaN end points)."
        )
        nonfinite_arguments = (
            "The arguments must be finite (got NaN or inf): the endpoints x0 and x1, or "
            "the initial point x0 and velocity v0."
        )
        nonfinite_energy = (
            "The curve's energy (or a transported vector) became NaN or infinite: the "
            "metric is undefined (NaN or infinite) somewhere along the curve though "
            "defined at both end points, so the curve crosses a region outside the "
            "metric's domain: a score that is NaN there, a MatrixMetric that is not "
            "positive semidefinite there, or distribution parameters outside a "
            "FisherRaoMetric's family (e.g. VonMises end points whose mean directions "
            "differ by more than pi: in the (mu, kappa) chart no geodesic joins them "
            "that way round, it would cross kappa = 0; wrap mu into (mu0 - pi, mu0 + pi] "
            "first, VonMises.wrap). If the domain is not convex, start from a curve "
            "inside it: geodesic_bvp(init=...), log_map(init=...)."
        )
        undefined_endpoint = (
            "The metric is not defined at an endpoint (NaN or infinite there; a "
            "MatrixMetric is NaN where its matrix is not positive semidefinite): x0 or "
            "x1 lies outside the metric's domain (e.g. invalid distribution parameters "
            "of a FisherRaoMetric, such as a negative scale, or a point where the score "
            "is NaN), or the metric itself is invalid (e.g. a traced SteinMetric "
            "damping <= 0)."
        )
        flow_breakdown = (
            "The geodesic flow broke down: its step size collapsed (below 1e-10 of the "
            "time span) or most of its steps were rejected, so the metric or its "
            "derivatives are NaN, infinite, singular or not positive definite just "
            "ahead of the curve, or the velocity is far too large for the metric. "
            "Increasing max_steps will not help."
        )
        nonfinite_distances = (
            "A point is at an infinite or undefined (NaN) distance from every cluster "
            "centre: the geodesic distance solves to it failed (see why with "
            "log_map(throw=...) set to False, and its result), or the distance matrix "
            "given to k_medoids has NaN or infinite entries (pairwise_distances gives "
            "NaN for a pair whose solve failed)."
        )
        unresolved_curve = (
            "The discrete geodesic is not resolved: far from constant speed "
            "(constant_speed_ratio L^2 / 2E < 1/2 in stats), or its midpoint-rule length "
            "differs from the length at the segments' ends by more than 2x "
            "(endpoint_rule_ratio in stats: a segment may jump across a region where the "
            "metric nearly vanishes); or, from Richardson (the default of distance, "
            "log_map and pairwise_distances), the extrapolated length's estimated error "
            "(error_estimate in stats) is still above the tolerance at max_segments. The "
            "segments are too long for how fast the metric varies: pass "
            "Richardson(max_segments=...) as distance(solver=...), log_map(solver=...), "
            "pairwise_distances(solver=...), k_means(geodesic_solver=...) or "
            "KarcherMean(geodesic_solver=...); raise NewtonMean(max_segments=...) for "
            "frechet_mean; or geodesic_bvp(num_points=...) for a polyline solver; or "
            "loosen the tolerance, Richardson(rtol=...)."
        )
        inexact_interpolation = (
            "stats.interpolate's points are less accurate than the tolerance: the "
            "geodesic integrated from x0 and the one integrated from x1 (exp maps of "
            "the log map's velocities) miss each other at t = 1/2 by more than 1e-6 "
            "of the length (Interpolation.error_estimate): the exp map amplifies the "
            "log map's error. Tighten the log map: interpolate(..., "
            "solver=jaxgeo.Shooting()) (the exact ODE geodesic) or "
            "solver=jaxgeo.Richardson(rtol=...)."
        )
        longer_than_a_path = (
            "pairwise_distances: this pair's geodesic is longer than a path through other "
            "points of the matrix (d_ij > d_ik + d_kj by more than 10 times the length "
            "tolerance), so its solve stopped at a longer local geodesic, and solving "
            "again from that path (repair=True) found none shorter. Start the pairs "
            "elsewhere: pairwise_distances(init=...) (e.g. 'graph'), or solve from "
            "several curves, pairwise_distances(solver=...) with jaxgeo.Shortest; or "
            "tighten the tolerance, Richardson(rtol=...), if the excess is small."
        )
        singular_metric = (
            "The metric is singular (not invertible) on the geodesic: its length is "
            "finite, but the velocities G^-1 p (sol.vs; vs[0] is the log map) are NaN "
            "or infinite, e.g. a PullbackMetric of a map whose Jacobian has rank below "
            "the dimension (z -> (z0, z0)), whose geodesics and log map are not unique. "
            "Refining will not help: make the metric positive definite (e.g. add a "
            "small multiple of the identity), or use distance, which needs the length "
            "only, with its default solver."
        )


def result_name(result: RESULTS) -> str | np.ndarray:
    """The short name of a [`jaxgeo.RESULTS`][] (e.g. `"successful"`,
    `"unresolved_curve"`), for a failing experiment's table: one string, or for a
    batch of results (from `jax.vmap`) a NumPy array of them, of the batch's shape.
    The message is `jaxgeo.RESULTS[result]`. Concrete results only (not under `jit`).
    """
    if not isinstance(result, RESULTS):
        raise TypeError(f"result_name: expected a jaxgeo.RESULTS, got {type(result).__name__}")
    value = result._value  # (equinox's enumeration item: the index of its name)
    if isinstance(value, jax.core.Tracer):
        raise ValueError(
            "result_name: the result is traced (under jax.jit or jax.vmap); return it "
            "from the transformed function and name it outside"
        )
    names = {int(item._value): name for name, item in RESULTS._name_to_item.items()}
    value = np.asarray(value)
    if value.ndim == 0:
        return names[int(value)]
    return np.vectorize(names.__getitem__, otypes=[object])(value).astype(str)


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
