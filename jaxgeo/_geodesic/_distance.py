from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._custom_types import Input, Scalar
from .._metric._base import AbstractMetric
from .._sharding import sharded_map
from .._solution import GeodesicSolution, RESULTS
from ._base import AbstractBoundarySolver
from ._bvp import default_chunk_size, geodesic_bvp
from ._richardson import Richardson


def log_map(
    metric: AbstractMetric,
    x0: Input,
    x1: Input,
    *,
    solver: AbstractBoundarySolver | None = None,
    num_points: int = 129,
    init: Input | None = None,
    max_steps: int = 4096,
    throw: bool = True,
) -> GeodesicSolution:
    r"""The logarithmic map $\log_{x_0}(x_1)$: the initial velocity `sol.vs[0]` of the
    geodesic from `x0` (at $t = 0$) to `x1` (at $t = 1$), with its `length`.

    [`jaxgeo.geodesic_bvp`][] with a fourth-order default solver at the resolution
    the pair needs, [`jaxgeo.Richardson`][]: discrete geodesics with 16, 32, 64, ...
    segments, extrapolated until the length's estimated error is below 1e-6 relative
    in float64 (`sol.stats["error_estimate"]`, `sol.stats["num_segments"]`), or
    `RESULTS.unresolved_curve` at `Richardson(max_segments=...)`. Measured: 5e-8
    relative on the Part II geodesic (128 segments), 2e-10 on a Poincaré pair (64).
    `num_points` is the number of points of the returned curve (points and velocities
    there are extrapolated, and Hermite interpolated between the levels' points), not
    its resolution. For the exact ODE geodesic (1e-10) pass
    `solver=jaxgeo.Shooting()`. The initial polyline
    (`init`, default the straight line) selects *which* geodesic is found. Differentiable
    in `x0`, `x1` and the metric's parameters. Other arguments as in
    [`jaxgeo.geodesic_bvp`][].

    **Returns:** a [`jaxgeo.GeodesicSolution`][]: `vs[0]` is the log map, `length`
    $= \|\log_{x_0}(x_1)\|_{G(x_0)}$ the geodesic distance.
    """
    solver = Richardson() if solver is None else solver
    return geodesic_bvp(
        metric,
        x0,
        x1,
        solver=solver,
        num_points=num_points,
        init=init,
        max_steps=max_steps,
        throw=throw,
    )


def distance(
    metric: AbstractMetric,
    x0: Input,
    x1: Input,
    *,
    solver: AbstractBoundarySolver | None = None,
    num_points: int = 129,
    max_steps: int = 4096,
    throw: bool = True,
) -> Scalar:
    r"""The geodesic distance between `x0` and `x1`: the `length` of
    [`jaxgeo.log_map`][]'s geodesic, found by `solver`.

    - Default, [`jaxgeo.Richardson`][]: the extrapolated lengths of energy-minimising
      polylines, refined until the estimated error is below 1e-6 relative in float64;
      no ODE solves (see [`jaxgeo.log_map`][]).
    - [`jaxgeo.Shooting`][]: the exact geodesic of the ODE, accurate to the ODE
      tolerances (about 1e-10 relative in float64), at many times the cost.
    - A polyline solver ([`jaxgeo.EnergyNewton`][], [`jaxgeo.EnergyDescent`][]): the
      polyline's midpoint-rule length, $O(1/N^2)$ short.

    Under `jax.vmap` pass `throw=False`; a failed solve then gives NaN.
    """
    if solver is None:
        solver = Richardson(resolve_velocity=False)  # the length only
    sol = log_map(
        metric, x0, x1, solver=solver, num_points=num_points, max_steps=max_steps, throw=throw
    )
    return jnp.where(sol.result == RESULTS.successful, sol.length, jnp.nan)


def pairwise_distances(
    metric: AbstractMetric,
    xs: Input,
    ys: Input | None = None,
    *,
    solver: AbstractBoundarySolver | None = None,
    num_points: int = 129,
    max_steps: int = 4096,
    chunk_size: int | None = None,
    devices: Sequence[jax.Device] | None = None,
) -> Float[Array, "n m"]:
    """Geodesic distances between every `xs[i]` and `ys[j]`, shape `(n, m)`, by
    [`jaxgeo.distance`][] (`solver`, `num_points`, `max_steps` go there). Without `ys`,
    the symmetric matrix of distances within `xs`: only the $n(n-1)/2$ pairs $i < j$
    are solved, and the diagonal is zero.

    The pairs are split evenly over `devices` (default: all of `jax.devices()`; one
    device means no sharding) with `jax.shard_map`; each device solves its pairs
    `chunk_size` at a time (vmapped within a chunk, `lax.map` over chunks) to bound
    memory; the default is as in [`jaxgeo.geodesic_bvp_batch`][]. One compiled program
    per metric structure and number of pairs. A pair whose solve fails gives NaN."""
    xs = jnp.asarray(xs)
    symmetric = ys is None
    ys = xs if symmetric else jnp.asarray(ys)
    if xs.ndim != 2 or ys.ndim != 2 or xs.shape[1] != ys.shape[1]:
        raise ValueError(
            f"pairwise_distances: expected xs (n, D) and ys (m, D), got {xs.shape} and {ys.shape}"
        )
    n, m = xs.shape[0], ys.shape[0]
    if symmetric:
        rows, cols = np.triu_indices(n, k=1)
    else:
        rows, cols = np.repeat(np.arange(n), m), np.tile(np.arange(m), n)
    pairs = jnp.stack([xs[rows], ys[cols]], axis=1)  # (pairs, 2, D)

    if len(rows) == 0:
        return jnp.zeros((n, m), xs.dtype)
    lengths = _pair_distances(
        metric,
        pairs,
        devices,
        default_chunk_size(chunk_size, devices),
        dict(solver=solver, num_points=num_points, max_steps=max_steps),
    )
    out = jnp.zeros((n, m), lengths.dtype).at[rows, cols].set(lengths)
    return out + out.T if symmetric else out


@eqx.filter_jit  # one trace per metric structure and number of pairs, not one per call
def _pair_distances(metric, pairs, devices, chunk_size, kwargs) -> Float[Array, " pairs"]:
    def one(pair):
        return distance(metric, pair[0], pair[1], throw=False, **kwargs)

    return sharded_map(one, pairs, devices=devices, chunk_size=chunk_size)
