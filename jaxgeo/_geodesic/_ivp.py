import diffrax as dfx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from .._checks import point_pair
from .._custom_types import Input, Point, Tangent
from .._functional import geodesic_acceleration
from .._metric._base import AbstractMetric, defined_at
from .._numerics import ODE_MIN_STEP, ODE_TOL
from .._solution import GeodesicSolution, raise_outside_jit, RESULTS


def geodesic_vector_field(t, state, metric):
    r"""The geodesic equation as a first-order system, $(\dot x, \dot v) = (v,
    -\Gamma(v, v))$, in diffrax's `(t, y, args)` form with the metric as `args`."""
    del t
    x, v = state
    return v, geodesic_acceleration(metric, x, v)


def geodesic_flow(
    metric: AbstractMetric,
    x0: Point,
    v0: Tangent,
    t1,
    solver: dfx.AbstractSolver,
    stepsize_controller: dfx.AbstractStepSizeController,
    saveat: dfx.SaveAt,
    max_steps: int,
    adjoint: dfx.AbstractAdjoint,
    dt0: float | None = None,
) -> dfx.Solution:
    """The geodesic flow from `(x0, v0)` over $[0, t_1]$: `diffrax.diffeqsolve` of
    `geodesic_vector_field`, never throwing (callers report `sol.result`)."""
    return dfx.diffeqsolve(
        dfx.ODETerm(geodesic_vector_field),
        solver,
        t0=0.0,
        t1=t1,
        dt0=dt0,
        y0=(x0, v0),
        args=metric,
        saveat=saveat,
        stepsize_controller=stepsize_controller,
        max_steps=max_steps,
        adjoint=adjoint,
        throw=False,
    )


def ode_controller(dtype, t1, rtol: float | None, atol: float | None) -> dfx.PIDController:
    """The default step-size controller of the geodesic flow and the ODEs along it: PID
    at `rtol`, `atol` (default `ODE_TOL` of the dtype), with a step size that may not
    collapse below `ODE_MIN_STEP` of the time span (it fails instead, see
    `flow_result`)."""
    tol = ODE_TOL(dtype)
    return dfx.PIDController(
        rtol=tol if rtol is None else rtol,
        atol=tol if atol is None else atol,
        dtmin=ODE_MIN_STEP * jnp.abs(t1),
        force_dtmin=False,
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


@raise_outside_jit
def geodesic_ivp(
    metric: AbstractMetric,
    x0: Input,
    v0: Input,
    t1: float = 1.0,
    *,
    solver: dfx.AbstractSolver = dfx.Tsit5(),
    rtol: float | None = None,
    atol: float | None = None,
    stepsize_controller: dfx.AbstractStepSizeController | None = None,
    saveat: dfx.SaveAt | None = None,
    num_points: int = 65,
    dt0: float | None = None,
    max_steps: int = 4096,
    adjoint: dfx.AbstractAdjoint = dfx.RecursiveCheckpointAdjoint(),
    throw: bool = True,
) -> GeodesicSolution:
    r"""The geodesic from `x0` with initial velocity `v0`, for $t \in [0, t_1]$: the
    solution of $\ddot x = -\Gamma(\dot x, \dot x)$ (matrix-free, see
    [`jaxgeo.geodesic_acceleration`][]) integrated by diffrax.

    **Main arguments:**

    - `metric`: any [`jaxgeo.AbstractMetric`][].
    - `x0`, `v0`: the initial point and velocity, shape `(D,)`.
    - `t1`: the final time.

    **Other arguments:**

    - `solver`: a diffrax ODE solver (default `Tsit5`).
    - `rtol`, `atol`: tolerances of the default `PIDController`: 1e-10 in float64,
      1e-6 in float32.
    - `stepsize_controller`: overrides the default adaptive controller.
    - `saveat`: where to save; default `num_points` equally spaced times.
    - `max_steps`, `dt0`, `adjoint`: as in `diffrax.diffeqsolve`.
    - `throw`: raise if the integration fails; under `jax.vmap` use `throw=False` and
      inspect `result`.

    **Returns:** a [`jaxgeo.GeodesicSolution`][]; `length` and `energy` are those of
    the exact geodesic, $t_1\|v_0\|$ and $\frac{t_1}{2}\|v_0\|^2$; `stats` holds the
    number of steps and `speed_drift`, the largest relative change of the speed
    $\|\dot x\|_{G(x)}$ along the saved points (zero for an exact geodesic).
    """
    del throw  # raised outside the compiled program (`raise_outside_jit`)
    x0, v0 = point_pair(x0, v0, ("x0", "v0"), "geodesic_ivp")
    dtype = x0.dtype
    if stepsize_controller is None:
        stepsize_controller = ode_controller(dtype, t1, rtol, atol)
    if saveat is None:
        saveat = dfx.SaveAt(ts=jnp.linspace(0, t1, num_points, dtype=dtype))
    sol = geodesic_flow(
        metric, x0, v0, t1, solver, stepsize_controller, saveat, max_steps, adjoint, dt0
    )
    xs, vs = sol.ys
    speed0 = metric.norm(x0, v0)
    speeds = jax.vmap(metric.norm)(xs, vs)
    result = flow_result(sol, metric, x0, (x0, v0), xs)
    drift = jnp.max(jnp.abs(speeds - speed0)) / jnp.where(speed0 > 0, speed0, 1)
    out = GeodesicSolution(
        ts=sol.ts,
        xs=xs,
        vs=vs,
        # Over [0, t1] or, backwards in time, [t1, 0]: a length is never negative.
        length=jnp.abs(t1) * speed0,
        energy=0.5 * jnp.abs(t1) * speed0**2,
        result=result,
        stats=dict(
            num_steps=sol.stats["num_steps"],
            max_steps=max_steps,
            speed_drift=jax.lax.stop_gradient(drift),
        ),
    )
    return out


def exp_map(metric: AbstractMetric, x0: Input, v0: Input, **kwargs) -> Point:
    r"""The exponential map $\exp_{x_0}(v_0)$: the point reached at $t = 1$ by the
    geodesic from `x0` with initial velocity `v0`. Keyword arguments go to
    [`jaxgeo.geodesic_ivp`][]. With `throw=False` (e.g. under `jax.vmap`) a failed
    integration gives NaN: use [`jaxgeo.geodesic_ivp`][] for its `result`."""
    kwargs.setdefault("saveat", dfx.SaveAt(t1=True))
    sol = geodesic_ivp(metric, x0, v0, 1.0, **kwargs)
    return jnp.where(sol.result == RESULTS.successful, sol.xs[-1], jnp.nan)
