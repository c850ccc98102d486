import jax
import jax.numpy as jnp

from .._checks import check_levels
from .._numerics import LENGTH_LEVEL_TOL, LENGTH_TOL, LEVEL_TOL
from .._solution import GeodesicSolution, RESULTS
from ._base import AbstractBoundarySolver, AbstractPolylineSolver, BoundaryProblem
from ._default import default_polyline_solver
from ._levels import constant, extrapolated_curve, ROUND_OFF_ULPS
from ._newton import EnergyNewton
from ._polish import polish_velocity


# The polish may move the extrapolated velocity by at most this many times its error
# estimate: a longer Newton step has left this geodesic's neighbourhood (another
# geodesic, or an estimate that does not bound the error), and is not taken.
POLISH_TRUST = 10.0


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
    $\log_{x_0}(x_1)$, polished by shooting: see `polish`), cubic Hermite interpolated
    between the coarse level's times, with the extrapolated `length`; `energy` is
    $\frac12 L^2$. `stats`: `num_steps` (of all levels), `max_steps` (their joint
    budget), `num_segments` (the finest level's $2N$), `error_estimate` (absolute, of
    the length) and the last two levels' lengths `coarse_length` and `fine_length`.
    Reports `RESULTS.unresolved_curve` when `max_segments` is reached before the
    tolerance (the estimate is in `stats`), and
    the failure of a level that refining cannot mend (a non-finite energy, a diverged
    solve, the budget spent). The default solver of [`jaxgeo.distance`][],
    [`jaxgeo.log_map`][] and [`jaxgeo.pairwise_distances`][].

    **Arguments:**

    - `solver`: the polyline solver, with its tolerances (default: as in
      [`jaxgeo.geodesic_bvp`][], with tolerances 1e-10 in float64 where the velocity is
      resolved: the log map's velocity carries $N$ times the error of the points; where
      only the length is, Newton's levels stop at 1e-4: the length's error is the square
      of the points').
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
    - `polish`: polish the resolved initial velocity by single shooting (default: where
      `resolve_velocity`), so that the geodesic ODE from it ends at $x_1$: Newton's
      steps on $\exp_{x_0}(v_0) = x_1$, the exponential map integrated as
      [`jaxgeo.exp_map`][] integrates it, with its Jacobian (variational equations).
      Geodesic flows can amplify an error in $v_0$ by orders of magnitude: on the
      README's Stein metric the extrapolated $v_0$ is $1.3 \times 10^{-7}$ relative
      from the exact one (within its estimate), and the ODE from it misses $x_1$ by
      1.6e-4 of the chord; polished, by 3e-11. `vs[0]` is then the polished velocity
      (its derivatives the extrapolated one's), `stats["residual"]` its end point's
      miss $|\exp_{x_0}(v_0) - x_1|$ (Euclidean; within `atol + rtol * |x1 - x0|`)
      and `stats["polish_num_steps"]` the integrations (two or three). Where the
      polish fails (the miss stays above that, or Newton leaves the extrapolated
      velocity by more than ten times its error estimate) `vs[0]` is the extrapolated
      velocity, `stats["residual"]` its miss, and the result
      `RESULTS.inexact_log_map`. `stats["velocity_error_estimate"]` is the
      extrapolated velocity's (a bound for the polished one, which is usually far
      more accurate). Costs one more ODE program (about a plain
      [`jaxgeo.exp_map`][]'s compile time) and two or three integrations.
    """

    solver: AbstractPolylineSolver | None = None
    rtol: float | None = None
    atol: float | None = None
    min_segments: int = 16
    max_segments: int = 2048
    resolve_velocity: bool = True
    polish: bool | None = None

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
            # error: stop the levels tightly (Newton: a step more; L-BFGS on the 64-D
            # digits Stein metric of W7: 0.15 s, where 1e-6 left the log map 2e-5 off).
            # The length alone is stationary: Newton's levels stop at 1e-4.
            solver = default_polyline_solver(problem.x0.shape[0])
            if self.resolve_velocity:
                tol = LEVEL_TOL(dtype)
                solver = type(solver)(rtol=tol, atol=tol)
            elif isinstance(solver, EnergyNewton):  # quadratic convergence
                tol = LENGTH_LEVEL_TOL(dtype)
                solver = EnergyNewton(rtol=tol, atol=tol)
        rtol, atol = self._tolerances(dtype)
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
        sol = GeodesicSolution(
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
        return self.polished(problem, sol) if self.polishes else sol

    @property
    def polishes(self) -> bool:
        """Whether `vs[0]` is polished by shooting (`polish`, default `resolve_velocity`)."""
        return self.resolve_velocity if self.polish is None else self.polish

    def _tolerances(self, dtype) -> tuple[float, float]:
        rtol = LENGTH_TOL(dtype) if self.rtol is None else self.rtol
        return rtol, 0.0 if self.atol is None else self.atol

    def polished(self, problem: BoundaryProblem, sol: GeodesicSolution) -> GeodesicSolution:
        """`sol` (this solver's, unpolished) with `vs[0]` polished by single shooting
        (`polish_velocity`) where it succeeded: the polished velocity if the flow from
        it ends within `atol + rtol * |x1 - x0|` of `x1` and it lies within
        `POLISH_TRUST` times the velocity's error estimate of the extrapolated one,
        else the extrapolated velocity and `RESULTS.inexact_log_map`. Derivatives are
        the extrapolated velocity's (the correction, like Romberg's next column of the
        length, is of higher order). (`jaxgeo.Shortest` polishes only the geodesic it
        picks.)"""
        x0, x1 = constant(problem.x0), constant(problem.x1)
        dtype = x0.dtype
        rtol, atol = self._tolerances(dtype)
        v0 = jax.lax.stop_gradient(sol.vs[0])
        succeeded = sol.result == RESULTS.successful
        noise = ROUND_OFF_ULPS * jnp.finfo(dtype).eps * jnp.max(jnp.abs(x0) + jnp.abs(x1))
        target = atol + rtol * jnp.linalg.norm(x1 - x0) + noise
        polish = polish_velocity(constant(problem.metric), x0, x1, v0, target, succeeded)
        trusted = jnp.linalg.norm(polish.v0 - v0) <= POLISH_TRUST * (
            sol.stats["velocity_error_estimate"] + noise
        )
        accepted = succeeded & polish.converged & trusted
        correction = jax.lax.stop_gradient(jnp.where(accepted, polish.v0 - v0, 0))
        residual = jnp.where(accepted, polish.residual, polish.initial_residual)
        return GeodesicSolution(
            ts=sol.ts,
            xs=sol.xs,
            vs=sol.vs.at[0].add(correction),
            length=sol.length,
            energy=sol.energy,
            result=RESULTS.where(succeeded & ~accepted, RESULTS.inexact_log_map, sol.result),
            stats=dict(
                sol.stats,
                residual=jnp.where(succeeded, residual, jnp.nan),
                polish_num_steps=polish.num_steps,
            ),
        )
