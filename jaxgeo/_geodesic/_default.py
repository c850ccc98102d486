import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Int

from .._custom_types import Curve
from .._solution import RESULTS
from ._base import AbstractPolylineSolver, BoundaryProblem, geodesic_levels, LevelSolve
from ._energy import EnergyDescent
from ._levels import LevelEnergy
from ._newton import EnergyNewton


# A Newton step differentiates the metric along D + 1 directions at every segment
# (forward-over-reverse; 2D + 1 when the table below was measured, so Newton's times
# there are upper bounds) where an L-BFGS step needs one gradient, and the ratio of
# L-BFGS to Newton iterations grows only slowly with D (about 4-40 measured), so the
# metric's cost cancels and D decides. Measured (64-point geodesics, float64, 2-core
# CPU, run time after compiling, Newton / L-BFGS): the Stein metric of the rho = 0.8
# Gaussian, D = 2: 1.2 / 10.5 ms;
# Stein metrics of trained `MLPScore`s: ring D = 2: 12 / 22 ms, digits PCA D = 4: 28 /
# 18 ms, D = 8: 45 / 44 ms, D = 16: 124 / 108 ms, D = 32: 514 / 178 ms, digits D = 64:
# 1.7 / 0.55 s; Gaussian Stein metrics D = 4: 7 / 4 ms, D = 8: 32 / 57 ms, D = 16:
# 85 / 95 ms, D = 64: 0.99 / 0.79 s. Newton also converges to tight tolerances in few
# steps, so it is kept up to the crossover.
NEWTON_MAX_DIM = 8


def default_polyline_solver(dim: int) -> AbstractPolylineSolver:
    """[`jaxgeo.EnergyNewton`][] up to `NEWTON_MAX_DIM`, else [`jaxgeo.EnergyDescent`][]."""
    return EnergyNewton() if dim <= NEWTON_MAX_DIM else EnergyDescent()


# Where the log map's velocity is resolved, the levels stop at 1e-10 and refine further
# (the velocity needs finer levels than the length): L-BFGS converges linearly to such
# tolerances. On a 64-D Stein metric of a score trained on the digits (images 0 -> 10)
# the default log map with L-BFGS levels spent its 4,096 steps at 64 segments (velocity
# 4.5e-5 off); with Newton levels it resolves at 256 segments in 115 steps. Above this
# dimension the dense (D, D) Hessian blocks cost more than L-BFGS's extra steps.
VELOCITY_NEWTON_MAX_DIM = 64


def velocity_polyline_solver(dim: int, tol: float) -> AbstractPolylineSolver:
    """The levels' solver where the initial velocity is resolved (tolerance `tol`):
    [`jaxgeo.EnergyNewton`][] up to `VELOCITY_NEWTON_MAX_DIM`, else
    [`jaxgeo.EnergyDescent`][]."""
    if dim <= VELOCITY_NEWTON_MAX_DIM:
        return EnergyNewton(rtol=tol, atol=tol)
    return EnergyDescent(rtol=tol, atol=tol)


# Where only the length is resolved, above NEWTON_MAX_DIM: L-BFGS levels, each finished
# by Newton where L-BFGS has not converged in this many steps. On the score-Jacobian
# metric of an MLPScore of a 50-D Swiss roll (20 points, 190 pairs), L-BFGS levels
# converge in 18-30 steps on most pairs, but 5 pairs ran out of the 4,096-step budget
# with levels of 1,300-2,500 steps; Newton levels resolve them in 90-130 steps
# (5-8 s), and Newton on every pair cost 255 s where L-BFGS took 77 s. On the Stein
# metric of an MLPScore of the 64-D digits, L-BFGS levels failed 3 of 4 pairs of images
# (levels of 1,400-2,700 steps); with Newton finishing them all solve, in 7-8 s (a 64-D
# Newton step is dear), and the pair L-BFGS did solve (688-953 steps a level) takes
# 1.4 s where it took 0.6 s.
DESCENT_LEVEL_STEPS = 256


class DescentThenNewton(AbstractPolylineSolver):
    r"""[`jaxgeo.EnergyDescent`][] (L-BFGS) for up to `descent_steps` steps, then, where
    it has not converged, [`jaxgeo.EnergyNewton`][] from where it stopped: L-BFGS's
    cheap steps (one gradient each) on the easy problems, Newton's quadratic
    convergence on the ill-conditioned ones, where L-BFGS crawls. Each part stops at its
    own tolerances; `rtol`, `atol` are the solve's as a whole, the looser of the two
    (they set `refined_levels`' floor on the levels' noise, `rtol**2`). (Not
    exported: [`jaxgeo.Richardson`][]'s levels where only the length is resolved above
    `D = 8`.)"""

    descent: EnergyDescent
    newton: EnergyNewton
    descent_steps: int = eqx.field(static=True, default=DESCENT_LEVEL_STEPS)
    rtol: float | None = None
    atol: float | None = None

    def _capped(self, problem: BoundaryProblem) -> BoundaryProblem:
        return dataclasses.replace(problem, max_steps=min(self.descent_steps, problem.max_steps))

    def minimise(
        self, problem: BoundaryProblem, rtol: float, atol: float
    ) -> tuple[Curve, RESULTS, Int[Array, ""]]:
        """L-BFGS, and Newton (with the steps left) where L-BFGS ran out of its steps;
        each at its own tolerances (`rtol`, `atol` unused)."""
        del rtol, atol
        dtype = problem.init.dtype
        capped = self._capped(problem)
        xs, result, steps = self.descent.minimise(capped, *self.descent.tolerances(dtype))

        def finish(xs):
            started = eqx.tree_at(lambda p: p.init, problem, xs)
            left = dataclasses.replace(
                started, max_steps=max(problem.max_steps - capped.max_steps, 1)
            )
            return self.newton.minimise(left, *self.newton.tolerances(dtype))

        unfinished = result == RESULTS.nonlinear_max_steps_reached
        xs, result, more = jax.lax.cond(
            unfinished, finish, lambda xs: (xs, result, jnp.zeros_like(steps)), xs
        )
        return xs, result, steps + more

    def level_solver(
        self, problem: BoundaryProblem, level_energy: LevelEnergy, sizes: tuple[int, ...]
    ) -> LevelSolve:
        """Each level by L-BFGS (`geodesic_levels`, at most `descent_steps` steps), then,
        wherever it has not converged, by Newton's one-loop level solve from where it
        stopped, with the budget left (none where L-BFGS converged or failed beyond what
        refining mends)."""
        descend = geodesic_levels(self.descent, self._capped(problem), sizes)
        finish = self.newton.level_solver(problem, level_energy, sizes)

        def solve(xs, n, budget):
            xs, steps, converged, failed = descend(xs, n, budget)
            left = jnp.where(converged | failed, 0, jnp.maximum(budget - steps, 0))
            xs, more, finished, diverged = finish(xs, n, left)
            return xs, steps + more, converged | finished, failed | diverged

        return solve


def length_polyline_solver(dim: int, tol: float) -> AbstractPolylineSolver:
    """The levels' solver where only the length is resolved (tolerance `tol`):
    [`jaxgeo.EnergyNewton`][] up to `NEWTON_MAX_DIM`, else `DescentThenNewton`."""
    newton = EnergyNewton(rtol=tol, atol=tol)
    if dim <= NEWTON_MAX_DIM:
        return newton
    # (`tol` is the looser of the two parts' tolerances: L-BFGS's is POLYLINE_TOL.)
    return DescentThenNewton(EnergyDescent(), newton, rtol=tol, atol=tol)
