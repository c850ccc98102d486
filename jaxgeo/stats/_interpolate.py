r"""Geodesic interpolation and extrapolation between two points."""

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import check_value, point_pair
from .._custom_types import Input
from .._geodesic._distance import log_map
from .._geodesic._ivp import geodesic_ivp
from .._metric._base import AbstractMetric
from .._numerics import LENGTH_TOL
from .._solution import GeodesicSolution, raise_outside_jit, RESULTS
from ._frechet import first_failure


class Interpolation(eqx.Module):
    r"""Points along the geodesic through two points, as
    [`jaxgeo.stats.interpolate`][] returns them.

    **Attributes:**

    - `ts`: the times, shape `(T,)`: 0 at `x0`, 1 at `x1`.
    - `xs`: the points $\gamma(t)$, shape `(T, D)`.
    - `geodesic`: the [`jaxgeo.GeodesicSolution`][] of the log map between the two
      points.
    - `error_estimate`: the distance at $t = 1/2$ between the geodesic integrated from
      `x0` and the one integrated from `x1`, relative to the length: the error of the
      points inside $[0, 1]$ (beyond, it grows with $|t|$ as the exp map amplifies it).
    - `result`: a [`jaxgeo.RESULTS`][]: the log map's, or the first failed
      integration's, or `RESULTS.inexact_interpolation` when `error_estimate` is above
      the log map's tolerance (its solver's `rtol`; by default 1e-6 in float64).
    """

    ts: Float[Array, " times"]
    xs: Float[Array, "times dim"]
    geodesic: GeodesicSolution
    error_estimate: Float[Array, ""]
    result: RESULTS


def interpolate(
    metric: AbstractMetric,
    x0: Input,
    x1: Input,
    ts: Input,
    *,
    throw: bool = True,
    **log_map_kwargs,
) -> Interpolation:
    r"""The points $\gamma(t)$ at the times `ts` of the geodesic with
    $\gamma(0) = $ `x0`, $\gamma(1) = $ `x1`: interpolation for $t \in [0, 1]$,
    extrapolation beyond (either side). The log map [`jaxgeo.log_map`][] gives the
    geodesic's velocities $v_0$ at `x0` and $v_1$ at `x1` (keyword arguments go there:
    `num_points`, `solver`, `init` to select among competing geodesics); each point is
    one [`jaxgeo.exp_map`][] integration from the nearer end,
    $\gamma(t) = \exp_{x_0}(t v_0)$ for $t \le 1/2$ and
    $\exp_{x_1}((t - 1) v_1)$ above, so the points lie on the exact geodesic ODE and
    $\gamma(1) = x_1$ exactly. (An exp map can amplify the log map's error a
    thousandfold over a long geodesic; over half of it, far less.) The two halves meet
    at $t = 1/2$ to within `error_estimate`; above the tolerance the result says so
    (tighten the log map: `solver=jaxgeo.Shooting()`). For a decoder's pullback
    metric, decode `xs` (`jax.vmap(decoder.mean)(interp.xs)`) for the images along the
    geodesic.

    **Returns:** a [`jaxgeo.stats.Interpolation`][].
    """
    x0, x1 = point_pair(x0, x1, ("x0", "x1"), "interpolate")
    ts = jnp.asarray(ts, x0.dtype)
    if ts.ndim != 1 or not ts.size:
        raise ValueError(
            f"interpolate: ts must be 1-D with at least one time, got shape {ts.shape}"
        )
    check_value(ts, jnp.isfinite, "interpolate: the times ts must be finite (got NaN or inf)")
    return _interpolate(metric, x0, x1, ts, log_map_kwargs, throw=throw)


@raise_outside_jit
def _interpolate(metric, x0, x1, ts, log_map_kwargs, throw=True) -> Interpolation:
    del throw
    geodesic = log_map(metric, x0, x1, throw=False, **log_map_kwargs)
    v0, v1 = geodesic.vs[0], geodesic.vs[-1]

    def point(start, velocity):
        sol = geodesic_ivp(metric, start, velocity, saveat=dfx.SaveAt(t1=True), throw=False)
        return sol.xs[-1], sol.result

    from_x0 = ts <= 0.5
    starts = jnp.where(from_x0[:, None], x0[None], x1[None])
    velocities = jnp.where(from_x0[:, None], ts[:, None] * v0[None], (ts - 1)[:, None] * v1[None])
    # The midpoint from both ends, integrated with the points (one vmapped batch).
    starts = jnp.concatenate([starts, jnp.stack([x0, x1])])
    velocities = jnp.concatenate([velocities, jnp.stack([v0 / 2, -v1 / 2])])
    xs, results = jax.vmap(point)(starts, velocities)
    xs, (middle0, middle1) = xs[: ts.size], xs[ts.size :]
    error = metric.norm((middle0 + middle1) / 2, middle1 - middle0) / geodesic.length
    result = RESULTS.where(
        geodesic.result == RESULTS.successful, first_failure(results), geodesic.result
    )
    tol = getattr(log_map_kwargs.get("solver"), "rtol", None) or LENGTH_TOL(x0.dtype)
    inexact = (result == RESULTS.successful) & ~(error <= tol)
    result = RESULTS.where(inexact, RESULTS.inexact_interpolation, result)
    return Interpolation(ts=ts, xs=xs, geodesic=geodesic, error_estimate=error, result=result)
