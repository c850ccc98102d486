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
from .._solution import GeodesicSolution, raise_outside_jit, RESULTS
from ._frechet import first_failure


class Interpolation(eqx.Module):
    r"""Points along the geodesic through two points, as
    [`jaxgeo.stats.interpolate`][] returns them.

    **Attributes:**

    - `ts`: the times, shape `(T,)`: 0 at `x0`, 1 at `x1`.
    - `xs`: the points $\gamma(t) = \exp_{x_0}(t \log_{x_0} x_1)$, shape `(T, D)`.
    - `geodesic`: the [`jaxgeo.GeodesicSolution`][] of the log map between the two
      points.
    - `result`: a [`jaxgeo.RESULTS`][]: the log map's, or the first failed
      integration's.
    """

    ts: Float[Array, " times"]
    xs: Float[Array, "times dim"]
    geodesic: GeodesicSolution
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
    r"""The points $\gamma(t) = \exp_{x_0}(t\, \log_{x_0} x_1)$ at the times `ts` of the
    geodesic with $\gamma(0) = $ `x0`, $\gamma(1) = $ `x1`: interpolation for
    $t \in [0, 1]$, extrapolation beyond (either side). The log map is
    [`jaxgeo.log_map`][] (keyword arguments go there: `num_points`, `solver`, `init`
    to select among competing geodesics), each point one [`jaxgeo.exp_map`][]
    integration, so the points lie on the exact geodesic ODE from `x0`. For a
    decoder's pullback metric, decode `xs` (`jax.vmap(decoder)(interp.xs)`) for the
    images along the geodesic.

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
    v0 = geodesic.vs[0]

    def point(t):
        sol = geodesic_ivp(metric, x0, t * v0, saveat=dfx.SaveAt(t1=True), throw=False)
        return sol.xs[-1], sol.result

    xs, results = jax.vmap(point)(ts)
    result = RESULTS.where(
        geodesic.result == RESULTS.successful, first_failure(results), geodesic.result
    )
    return Interpolation(ts=ts, xs=xs, geodesic=geodesic, result=result)
