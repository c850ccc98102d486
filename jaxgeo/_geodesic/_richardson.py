import jax.numpy as jnp
from jaxtyping import Array, Float

from .._custom_types import Curve
from .._solution import GeodesicSolution, RESULTS
from ._base import AbstractBoundarySolver, AbstractPolylineSolver, BoundaryProblem
from ._default import default_polyline_solver


def refine(xs: Curve) -> Float[Array, "refined dim"]:
    """The polyline with the midpoint of every segment inserted: `(N + 1, D)` →
    `(2N + 1, D)`, on the uniform grid again."""
    midpoints = 0.5 * (xs[:-1] + xs[1:])
    interleaved = jnp.stack([xs[:-1], midpoints], axis=1).reshape(-1, xs.shape[1])
    return jnp.concatenate([interleaved, xs[-1:]])


class Richardson(AbstractBoundarySolver):
    r"""Richardson extrapolation of polyline lengths: the discrete geodesics with $N$
    and $2N$ segments (the problem's polyline, and the same with every segment halved)
    are solved by `solver`, and the length is $(4L_{2N} - L_N)/3$, which cancels the
    $O(1/N^2)$ error of the midpoint rule. No ODE solves; about 1e-6 relative at
    $N = 64$ on smooth metrics.

    The solution is the finer polyline, with the extrapolated `length` and `energy`
    $= \frac12 L^2$ (the energy of the constant-speed geodesic). `stats`: `num_steps`
    (both solves together), `max_steps`, and the two polyline lengths `coarse_length`
    and `fine_length`. Fails if either solve fails.

    **Arguments:**

    - `solver`: the polyline solver (default: as in [`jaxgeo.geodesic_bvp`][]).
    """

    solver: AbstractPolylineSolver | None = None

    def geodesic(self, problem: BoundaryProblem) -> GeodesicSolution:
        solver = self.solver
        if solver is None:
            solver = default_polyline_solver(problem.x0.shape[0])
        coarse = solver.geodesic(problem)
        fine = solver.geodesic(
            BoundaryProblem(
                problem.metric,
                problem.x0,
                problem.x1,
                refine(problem.init),
                max_steps=problem.max_steps,
                energy=problem.energy,
            )
        )
        length = (4 * fine.length - coarse.length) / 3
        result = RESULTS.where(coarse.result == RESULTS.successful, fine.result, coarse.result)
        return GeodesicSolution(
            ts=fine.ts,
            xs=fine.xs,
            vs=fine.vs,
            length=length,
            energy=0.5 * length**2,
            result=result,
            stats=dict(
                num_steps=coarse.stats["num_steps"] + fine.stats["num_steps"],
                max_steps=problem.max_steps,
                coarse_length=coarse.length,
                fine_length=fine.length,
            ),
        )
