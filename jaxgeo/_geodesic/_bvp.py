from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from .._checks import check_integer, point_pair
from .._curve import check_energy_rule, straight_line
from .._custom_types import Input
from .._metric._base import AbstractMetric, defined_at
from .._sharding import Calls, default_threads, is_traced, sharded_map, unless_padding
from .._solution import GeodesicSolution, raise_outside_jit, RESULTS
from ._base import AbstractBoundarySolver, BoundaryProblem
from ._default import default_polyline_solver


# Pairs solved together per device on CPU. With one CPU device, one at a time: a solve
# already vectorises over its polyline, so vmapping pairs gains nothing, while a vmapped
# chunk's loops run until its slowest pair has converged. Measured (the Stein metric
# of the rho = 0.8 Gaussian): one at a time 3,400 geodesics/s and 3.1 s compile, chunks of 16
# 1,770/s and 3.7 s; a learned ring metric (an MLP score), a 30 x 30
# `pairwise_distances`: 7.7 s against 9.4 s after compiling. With several host devices
# (`--xla_force_host_platform_device_count`), each loop iteration costs far more, and
# chunks of 16 win: two devices, the Gaussian, one at a time 1,070/s, chunks of 4 1,470/s, of 16
# 4,670/s, of 64 3,050/s.
CPU_CHUNK_SIZE = 1
CPU_MULTI_DEVICE_CHUNK_SIZE = 16
# Pairs per compiled call of a batch (or of `pairwise_distances`) on one CPU device:
# small calls, so that the threads share the pairs evenly (the 276 pairs of 24 points: 9
# calls) and a progress bar moves (a learned metric's pair takes 10-200 ms); a call's
# overhead is far below a pair's.
CPU_PAIRS_PER_CALL = 32


def default_chunk_size(chunk_size: int | None, devices: Sequence[jax.Device] | None) -> int | None:
    """`chunk_size`, else on CPU `CPU_CHUNK_SIZE` (one device) or
    `CPU_MULTI_DEVICE_CHUNK_SIZE` (several), and all of a device's pairs at once (`None`)
    on accelerators."""
    devices = jax.devices() if devices is None else list(devices)
    if chunk_size is None and devices[0].platform == "cpu":
        return CPU_CHUNK_SIZE if len(devices) == 1 else CPU_MULTI_DEVICE_CHUNK_SIZE
    return chunk_size


def boundary_problem(
    metric: AbstractMetric,
    x0: Input,
    x1: Input,
    *,
    num_points: int,
    init: Input | None,
    max_steps: int,
    energy: str,
    where: str,
) -> BoundaryProblem:
    """Validate the arguments of a boundary-value entry point (trace-time shapes) and
    build its [`jaxgeo.BoundaryProblem`][]."""
    x0, x1 = point_pair(x0, x1, ("x0", "x1"), where)
    check_energy_rule(metric, energy, where)
    check_integer(num_points, f"{where}: num_points", minimum=2)
    check_integer(max_steps, f"{where}: max_steps", minimum=0)
    if init is None:
        init = straight_line(x0, x1, num_points)
    else:
        init = jnp.asarray(init, x0.dtype)
        if init.shape != (num_points, x0.shape[0]):
            raise ValueError(
                f"{where}: init has shape {init.shape}, expected "
                f"(num_points, dim) = {(num_points, x0.shape[0])}"
            )
        init = init.at[0].set(x0).at[-1].set(x1)
    return BoundaryProblem(metric, x0, x1, init, max_steps=max_steps, energy=energy)


@raise_outside_jit
def geodesic_bvp(
    metric: AbstractMetric,
    x0: Input,
    x1: Input,
    *,
    num_points: int = 64,
    solver: AbstractBoundarySolver | None = None,
    init: Input | None = None,
    max_steps: int = 4096,
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
    - `solver`: an [`jaxgeo.AbstractBoundarySolver`][], holding its tolerances.
      Default: [`jaxgeo.EnergyNewton`][] (damped Newton with the block-tridiagonal
      Hessian) for `D <= 8`, else [`jaxgeo.EnergyDescent`][] (L-BFGS in
      preconditioned coordinates); or [`jaxgeo.Shooting`][] (the exact ODE geodesic),
      or [`jaxgeo.Richardson`][] (extrapolated length).
    - `init`: an initial curve of shape `(num_points, D)`; its endpoints are replaced
      by `x0` and `x1`. Default: the straight line.
    - `max_steps`: the iteration budget.
    - `energy`: the discrete energy: `"midpoint"` (default, the metric at segment
      midpoints) or `"secant"`, the Jacobian-free `secant_sq_norm` of an
      [`jaxgeo.AbstractSecantMetric`][] (e.g.
      $N\sum_i |f(c_{i+1}) - f(c_i)|^2 / 2$ for a [`jaxgeo.PullbackMetric`][]: decoder
      passes only, for very large $D$). Length and energy are reported in the same rule.
    - `throw`: raise if the solve fails. Under `jax.vmap` use `throw=False` and
      inspect `result`.

    **Returns:** a [`jaxgeo.GeodesicSolution`][].

    **Raises:** `ValueError` for malformed input (shapes, `num_points < 2`); with
    `throw=True`, a runtime error for a failed solve, non-finite endpoints
    (`RESULTS.nonfinite_arguments`) and endpoints where the metric is NaN, outside its
    domain (`RESULTS.undefined_endpoint`), among them.
    """
    del throw  # raised outside the compiled program (`raise_outside_jit`)
    problem = boundary_problem(
        metric,
        x0,
        x1,
        num_points=num_points,
        init=init,
        max_steps=max_steps,
        energy=energy,
        where="geodesic_bvp",
    )
    if solver is None:
        solver = default_polyline_solver(problem.x0.shape[0])
    elif not isinstance(solver, AbstractBoundarySolver):
        raise ValueError(
            "geodesic_bvp: solver must be a jaxgeo.AbstractBoundarySolver (e.g. "
            f"jaxgeo.EnergyNewton()), got {type(solver).__name__}"
        )
    sol = solver.geodesic(problem)
    defined = defined_at(metric, problem.x0) & defined_at(metric, problem.x1)
    result = RESULTS.where(defined, sol.result, RESULTS.undefined_endpoint)
    finite = jnp.all(jnp.isfinite(problem.x0)) & jnp.all(jnp.isfinite(problem.x1))
    result = RESULTS.where(finite, result, RESULTS.nonfinite_arguments)
    return eqx.tree_at(lambda s: s.result, sol, result)


def geodesic_bvp_batch(
    metric: AbstractMetric,
    x0s: Input,
    x1s: Input,
    *,
    init: Input | None = None,
    devices: Sequence[jax.Device] | None = None,
    chunk_size: int | None = None,
    threads: int | None = None,
    **kwargs,
) -> GeodesicSolution:
    r"""[`jaxgeo.geodesic_bvp`][] for every pair `x0s[i]` → `x1s[i]`, the batch split
    over devices, or over the cores of one CPU.

    Each pair is solved with `throw=False`: inspect `result` (batched) per pair. The
    batch is sharded evenly over `devices` (default: all of `jax.devices()`; after
    `jax.distributed.initialize()`, every host's) with `jax.shard_map`, and on each
    device vmapped over `chunk_size` pairs at a time. Under `vmap` a chunk's solver
    loop runs until its slowest pair has converged; on one CPU device the default is one
    pair at a time (a solve is already vectorised along its polyline there, and pairs
    then stop when they converge: 1.9x the throughput of chunks of 16 on a 2-D Gaussian's
    Stein metric), on several host devices chunks of 16 (there each loop
    iteration costs more); on GPU and TPU it is all of a device's pairs at once.

    On one CPU device, with concrete (not traced) arguments, the pairs are solved in
    calls of `CPU_PAIRS_PER_CALL` (32) pairs, `threads` calls at once (default: one per
    core available to the process; JAX releases the GIL while a program runs, and one
    call keeps one core busy), as [`jaxgeo.pairwise_distances`][] does; the results are
    those of one call, to round-off. Under `jax.jit` or `vmap`, on several devices or on
    accelerators, all pairs are one call. One compiled program per metric structure and
    call size.

    **Arguments:** `x0s`, `x1s` of shape `(B, D)`; `init` (optional) initial curves of
    shape `(B, num_points, D)`, e.g. `jax.vmap` of [`jaxgeo.graph_geodesic`][];
    `threads` (a positive integer); `kwargs` go to [`jaxgeo.geodesic_bvp`][]
    (`num_points`, `solver`, `max_steps`, `energy`).

    **Returns:** a [`jaxgeo.GeodesicSolution`][] whose fields have a leading batch axis.
    """
    x0s, x1s = jnp.asarray(x0s), jnp.asarray(x1s)
    if x0s.ndim != 2 or x0s.shape != x1s.shape:
        raise ValueError(
            f"geodesic_bvp_batch: expected x0s and x1s of one shape (B, D), got {x0s.shape} "
            f"and {x1s.shape}"
        )
    if "throw" in kwargs:
        raise ValueError("geodesic_bvp_batch: solves never throw; inspect `result` per pair")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"geodesic_bvp_batch: threads must be a positive integer, got {threads!r}")
    batch = (x0s, x1s) if init is None else (x0s, x1s, jnp.asarray(init))
    chunk_size = default_chunk_size(chunk_size, devices)
    threads = default_threads(devices) if threads is None else threads
    if is_traced((metric, batch)) or threads == 1 or x0s.shape[0] <= CPU_PAIRS_PER_CALL:
        return _solve_batch(metric, batch, None, devices, chunk_size, kwargs)

    structure = []  # (the solution's pytree structure, from the first call)

    def solve(*chunk):
        *pairs, valid = chunk
        sol = _solve_batch(metric, tuple(pairs), valid, devices, chunk_size, kwargs)
        leaves, treedef = jtu.tree_flatten(sol)
        structure[:] = [treedef]
        return leaves

    calls = Calls(CPU_PAIRS_PER_CALL, threads)
    leaves = calls.run(solve, tuple(np.asarray(b) for b in batch))
    return jtu.tree_unflatten(structure[0], [jnp.asarray(leaf) for leaf in leaves])


@eqx.filter_jit  # one trace per metric structure and batch shape, not one per call
def _solve_batch(metric, batch, valid, devices, chunk_size, kwargs) -> GeodesicSolution:
    """The pairs of `batch` (`(x0s, x1s)` or `(x0s, x1s, inits)`); where `valid` is
    given, the pairs it marks false are padding, not solved (one pair at a time)."""

    def one(x0, x1, start=None):
        return geodesic_bvp(metric, x0, x1, init=start, throw=False, **kwargs)

    if valid is None:
        return sharded_map(lambda pair: one(*pair), batch, devices=devices, chunk_size=chunk_size)
    return sharded_map(unless_padding(one), (valid, *batch), devices=devices, chunk_size=chunk_size)
