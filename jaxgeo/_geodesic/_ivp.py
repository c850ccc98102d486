import diffrax as dfx
import jax
import jax.numpy as jnp

from .._checks import point_pair
from .._custom_types import Input, Point
from .._metric._base import AbstractMetric
from .._solution import GeodesicSolution, raise_outside_jit, RESULTS
from ._flow import flow_result, geodesic_vector_field, integrate, ode_controller


DEFAULT_SAVED_TIMES = 65


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
    saveat: dfx.SaveAt | None = None,
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

    - `solver`: a diffrax ODE solver (default `Tsit5`). An adaptive one (with an error
      estimate) runs at `rtol`, `atol`; a fixed-step one (e.g. `diffrax.Euler`,
      `diffrax.SemiImplicitEuler`) takes steps of `dt0`, which it then needs.
    - `rtol`, `atol`: the tolerances of the adaptive step size (a `PIDController`
      whose step may not collapse below 1e-10 of the time span: the flow fails
      instead): 1e-10 in float64, 1e-6 in float32.
    - `saveat`: where to save; default 65 equally spaced times, `t = 0` and `t1`
      included (e.g. `diffrax.SaveAt(ts=jnp.linspace(0, t1, 201))` for more,
      `diffrax.SaveAt(t1=True)` for the end point only).
    - `dt0`: the first step (adaptive solvers; default: chosen by diffrax) or every
      step (fixed-step solvers).
    - `max_steps`, `adjoint`: as in `diffrax.diffeqsolve`.
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
    if isinstance(solver, dfx.AbstractAdaptiveSolver):
        controller = ode_controller(dtype, t1, rtol, atol)
    elif dt0 is None:
        raise ValueError(
            f"geodesic_ivp: {type(solver).__name__} has no error estimate, so it takes fixed "
            "steps: pass their size as dt0"
        )
    else:
        controller = dfx.ConstantStepSize()
    if saveat is None:
        saveat = dfx.SaveAt(ts=jnp.linspace(0, t1, DEFAULT_SAVED_TIMES, dtype=dtype))
    sol = integrate(
        geodesic_vector_field,
        (x0, v0),
        t1,
        metric,
        controller=controller,
        saveat=saveat,
        max_steps=max_steps,
        solver=solver,
        adjoint=adjoint,
        dt0=dt0,
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
