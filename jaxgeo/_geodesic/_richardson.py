import jax
import jax.numpy as jnp

from .._checks import check_levels
from .._numerics import LENGTH_LEVEL_TOL, LENGTH_TOL, LEVEL_TOL
from .._solution import GeodesicSolution
from ._base import AbstractBoundarySolver, AbstractPolylineSolver, BoundaryProblem
from ._default import length_polyline_solver, velocity_polyline_solver
from ._levels import extrapolated_curve


class Richardson(AbstractBoundarySolver):
    r"""The geodesic to fourth order, at the resolution each pair needs: discrete
    geodesics with $N_0, 2N_0, 4N_0, \dots$ segments (each level started from the
    previous one with its midpoints inserted, so it takes a few steps), extrapolated
    until the length's estimated error is below the tolerance.

    The discrete geodesic of the symmetric midpoint rule has an error expansion in even
    powers of $h = 1/N$, in its points, its discrete-momentum velocities and its length
    $L_N$; $R_N = (4 L_{2N} - L_N)/3$ cancels the $O(h^2)$ term, leaving $O(h^4)$, with
    no ODE solve. The error of $R$ is estimated from consecutive levels,
    $|R_{2N} - R_N|$, or where the length differences fall by about 4 per level (the
    asymptotic regime) $|R_{2N} - R_N|/15$, the error of $R_{2N}$, for the length, which
    is then extrapolated once more, $R_{2N} + (R_{2N} - R_N)/15$ (Romberg's next
    column, more accurate still), and twice that for the velocity
    $R_{2N}$; the refinement stops at the first level whose estimate is
    within `atol + rtol * length` (and, by default, the log map's within
    `atol + rtol * |vs[0]|`). Easy pairs stop at $N = 64$ (from the default
    $N_0 = 16$); a metric that varies on a small scale refines up to
    `max_segments`. With [`jaxgeo.EnergyNewton`][] (the default up to `D = 8`) all
    levels run in one compiled loop whose work is proportional to each level's $N$,
    also under `jax.vmap`.

    The solution lives on the problem's `num_points` uniform times: the extrapolated
    points and velocities of the last two levels (`vs[0]` is the log map
    $\log_{x_0}(x_1)$), cubic Hermite interpolated between the coarse level's times,
    with the extrapolated `length`; `energy` is $\frac12 L^2$. `stats`: `num_steps`
    (of all levels), `max_steps` (their joint budget), `num_segments` (the finest
    level's $2N$), `error_estimate` (absolute, of the length) and the last two levels'
    lengths `coarse_length` and `fine_length`. Reports `RESULTS.unresolved_curve` when
    `max_segments` is reached before the tolerance (the estimate is in `stats`), and
    the failure of a level that refining cannot mend (a non-finite energy, a diverged
    solve, the budget spent). The default solver of [`jaxgeo.distance`][],
    [`jaxgeo.log_map`][] and [`jaxgeo.pairwise_distances`][].

    **Arguments:**

    - `solver`: the polyline solver, with its tolerances (default: as in
      [`jaxgeo.geodesic_bvp`][], with tolerances 1e-10 in float64 where the velocity is
      resolved, and then [`jaxgeo.EnergyNewton`][] up to `D = 64`: the log map's
      velocity carries $N$ times the error of the points, and L-BFGS converges to such
      tolerances slowly; where only the length is, Newton's levels stop at 1e-4: the
      length's error is the square of the points'; above `D = 8` each level is then
      solved by L-BFGS, and finished by Newton where L-BFGS has not converged in 256
      steps: on a learned 50-D metric, 5 of 190 pairs took L-BFGS thousands of steps
      a level and ran out of the budget).
    - `rtol`, `atol`: the tolerance on the length's estimated error; default 1e-6 in
      float64 and 1e-4 in float32 (relative), and 0 (absolute).
    - `min_segments`: the first level's segments $N_0$ (a power of two, at least 4).
    - `max_segments`: the finest level allowed (a power of two times $N_0$).
    - `resolve_velocity`: also refine until the initial velocity (the log map
      $\log_{x_0}(x_1)$ = `vs[0]`) has its estimated error within the tolerance,
      relative to its Euclidean norm (default; `stats["velocity_error_estimate"]`).
      [`jaxgeo.distance`][] and [`jaxgeo.pairwise_distances`][] resolve the length
      only, by default: the velocity at an end point can need finer levels than the
      length (on $(2 + \sin 40 x_0)^2 I$ over 19 periods, more than 2,048 segments).
    """

    solver: AbstractPolylineSolver | None = None
    rtol: float | None = None
    atol: float | None = None
    min_segments: int = 16
    max_segments: int = 2048
    resolve_velocity: bool = True

    def __check_init__(self):
        if self.solver is not None and not isinstance(self.solver, AbstractPolylineSolver):
            name = type(self.solver).__name__
            raise ValueError(
                "Richardson refines polyline solvers (jaxgeo.EnergyNewton, "
                f"jaxgeo.EnergyDescent); {name} is not one: pass solver={name}(...) "
                "directly (e.g. to distance, log_map or geodesic_bvp)"
            )
        check_levels("Richardson", self.min_segments, self.max_segments, smallest=4)

    def geodesic(self, problem: BoundaryProblem) -> GeodesicSolution:
        dtype = problem.init.dtype
        solver = self.solver
        if solver is None:
            # The velocities (discrete momenta N G Delta) carry N times the points'
            # error: stop the levels tightly (Newton: a step more; L-BFGS on a 64-D
            # digits Stein metric: 0.15 s, where 1e-6 left the log map 2e-5 off).
            # The length alone is stationary: Newton's levels stop at 1e-4.
            dim = problem.x0.shape[0]
            if self.resolve_velocity:
                solver = velocity_polyline_solver(dim, LEVEL_TOL(dtype))
            else:
                solver = length_polyline_solver(dim, LENGTH_LEVEL_TOL(dtype))
        rtol = LENGTH_TOL(dtype) if self.rtol is None else self.rtol
        atol = 0.0 if self.atol is None else self.atol
        levels = solver.refined_levels(
            problem, self.min_segments, self.max_segments, (rtol, atol), self.resolve_velocity
        )
        fourth_order = jnp.where(
            levels.extrapolated,
            (4 * levels.fine_length - levels.coarse_length) / 3,
            levels.fine_length,
        )
        # Romberg's next column adds an O(h^4) correction; its derivative (as small) is
        # left out: the derivatives are those of R (the levels' implicit functions).
        length = fourth_order + jax.lax.stop_gradient(levels.length - fourth_order)
        xs, vs = extrapolated_curve(
            problem.metric,
            problem.energy,
            levels.coarse,
            levels.fine,
            levels.num_segments,
            problem.num_points,
        )
        return GeodesicSolution(
            ts=jnp.linspace(0, 1, problem.num_points, dtype=dtype),
            xs=xs,
            vs=vs,
            length=length,
            energy=0.5 * length**2,
            result=levels.result,
            stats=dict(
                num_steps=levels.num_steps,
                max_steps=problem.max_steps,
                num_segments=levels.num_segments,
                error_estimate=levels.error_estimate,
                velocity_error_estimate=levels.velocity_error_estimate,
                coarse_length=levels.coarse_length,
                fine_length=levels.fine_length,
            ),
        )
