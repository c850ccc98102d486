r"""Parallel transport of tangent vectors, by the transport equation
$\dot w = -\Gamma_{c(t)}(\dot c, w)$ integrated with diffrax."""

from collections.abc import Callable
from typing import Any

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import point_pair
from .._custom_types import Input, Point, Tangent
from .._functional import geodesic_acceleration
from .._geodesic._ivp import flow_result, ode_controller
from .._metric._base import AbstractMetric
from .._solution import raise_outside_jit, RESULTS


class Transport(eqx.Module):
    r"""A tangent vector transported along a curve.

    **Attributes:**

    - `ts`: the saved times, shape `(T,)`.
    - `xs`: the curve's points $c(t)$ there, shape `(T, D)`.
    - `ws`: the transported vectors $w(t) \in T_{c(t)}M$, shape `(T, D)`.
    - `result`: a [`jaxgeo.RESULTS`][]; `RESULTS.successful` if the integration
      succeeded.
    - `stats`: `num_steps`, `max_steps` and `norm_drift`, the largest relative change
      of $\|w\|_{G(c)}$ along the saved points (zero for exact transport, which is an
      isometry).
    """

    ts: Float[Array, " times"]
    xs: Float[Array, "times dim"]
    ws: Float[Array, "times dim"]
    result: RESULTS
    stats: dict[str, Any]


def christoffel_contraction(metric: AbstractMetric, x: Point, u: Tangent, w: Tangent) -> Tangent:
    r"""$-\Gamma_x(u, w)$, matrix-free: the geodesic acceleration $a(v) = -\Gamma(v, v)$
    is quadratic in $v$, so its derivative at $u$ along $w$ is $-2\Gamma(u, w)$ (one
    JVP of [`jaxgeo.geodesic_acceleration`][])."""
    _, tangent = jax.jvp(lambda v: geodesic_acceleration(metric, x, v), (u,), (w,))
    return 0.5 * tangent


def _solve(field, y0, t1, args, dtype, num_points, rtol, atol, max_steps) -> dfx.Solution:
    return dfx.diffeqsolve(
        dfx.ODETerm(field),
        dfx.Tsit5(),
        t0=0.0,
        t1=t1,
        dt0=None,
        y0=y0,
        args=args,
        saveat=dfx.SaveAt(ts=jnp.linspace(0, t1, num_points, dtype=dtype)),
        stepsize_controller=ode_controller(dtype, t1, rtol, atol),
        max_steps=max_steps,
        throw=False,
    )


def _transport(metric, sol, xs, ws, arguments) -> Transport:
    r"""The solution, its result by `flow_result` (from `xs[0]`, the initial
    `arguments`) and the drift of $\|w\|_{G(c)}$."""
    norms = jax.vmap(metric.norm)(xs, ws)
    return Transport(
        ts=sol.ts,
        xs=xs,
        ws=ws,
        result=flow_result(sol, metric, xs[0], arguments, (xs, ws)),
        stats=dict(
            num_steps=sol.stats["num_steps"],
            max_steps=sol.stats["max_steps"],
            norm_drift=jnp.max(jnp.abs(norms - norms[0])) / jnp.where(norms[0] > 0, norms[0], 1),
        ),
    )


@raise_outside_jit
def parallel_transport(
    metric: AbstractMetric,
    x0: Input,
    v0: Input,
    w0: Input,
    t1: float = 1.0,
    *,
    num_points: int = 65,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 4096,
    throw: bool = True,
) -> Transport:
    r"""Parallel transport of `w0` $\in T_{x_0}M$ along the geodesic from `x0` with
    initial velocity `v0` (the curve of [`jaxgeo.exp_map`][]; `v0` from
    [`jaxgeo.log_map`][] for the geodesic to a point), for $t \in [0, t_1]$: the
    geodesic and transport equations $\ddot x = -\Gamma(\dot x, \dot x)$,
    $\dot w = -\Gamma(\dot x, w)$ integrated together (Tsit5, tolerances as in
    [`jaxgeo.geodesic_ivp`][], `num_points` saved times). `ws[-1]` is the transported
    vector at the end point.

    **Returns:** a [`jaxgeo.stats.Transport`][].
    """
    del throw  # (raised outside the compiled program by `raise_outside_jit`)
    x0, v0 = point_pair(x0, v0, ("x0", "v0"), "parallel_transport")
    x0, w0 = point_pair(x0, w0, ("x0", "w0"), "parallel_transport")

    def field(t, y, metric):
        del t
        x, v, w = y
        return (
            v,
            geodesic_acceleration(metric, x, v),
            christoffel_contraction(metric, x, v, w),
        )

    sol = _solve(field, (x0, v0, w0), t1, metric, x0.dtype, num_points, rtol, atol, max_steps)
    xs, _, ws = sol.ys
    return _transport(metric, sol, xs, ws, (x0, v0, w0))


def transport_along(
    metric: AbstractMetric,
    curve: Callable[[Array], Point],
    w0: Input,
    t1: float = 1.0,
    *,
    num_points: int = 65,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 4096,
    throw: bool = True,
) -> Transport:
    r"""Parallel transport of `w0` $\in T_{c(0)}M$ along any smooth curve
    `curve`: $t \mapsto c(t)$, $t \in [0, t_1]$ (a differentiable JAX function; its
    velocity by a JVP): $\dot w = -\Gamma_{c(t)}(\dot c(t), w)$, integrated as in
    [`jaxgeo.stats.parallel_transport`][]. Around a closed curve, `ws[-1]` against
    `w0` is the holonomy. Pass `curve` as an `eqx.Module` (or
    `jax.tree_util.Partial`) to differentiate through its parameters.

    **Returns:** a [`jaxgeo.stats.Transport`][].
    """
    w0 = jnp.asarray(w0)
    x0 = curve(jnp.zeros((), w0.dtype if jnp.issubdtype(w0.dtype, jnp.floating) else float))
    x0, w0 = point_pair(x0, w0, ("curve(0)", "w0"), "transport_along")
    return _transport_along(
        metric,
        curve,
        w0,
        t1,
        num_points=num_points,
        rtol=rtol,
        atol=atol,
        max_steps=max_steps,
        throw=throw,
    )


@raise_outside_jit
def _transport_along(
    metric, curve, w0, t1, *, num_points, rtol, atol, max_steps, throw=True
) -> Transport:
    del throw
    dtype = w0.dtype

    def field(t, w, args):
        metric, curve = args
        x, velocity = jax.jvp(curve, (t.astype(dtype),), (jnp.ones((), dtype),))
        return christoffel_contraction(metric, x, velocity, w)

    sol = _solve(field, w0, t1, (metric, curve), dtype, num_points, rtol, atol, max_steps)
    xs = jax.vmap(curve)(sol.ts.astype(dtype))
    return _transport(metric, sol, xs, sol.ys, (w0,))
