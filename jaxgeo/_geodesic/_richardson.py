import jax.numpy as jnp

from .._solution import GeodesicSolution, RESULTS
from ._base import AbstractBoundarySolver, AbstractPolylineSolver, BoundaryProblem
from ._default import default_polyline_solver


# The extrapolation assumes the asymptotic regime: halving the segments changes the
# length by O(h^2), a small fraction of it (1e-4 on the Part II geodesic at N = 128).
# A larger change means the coarse polyline was not resolved.
MAX_LENGTH_CHANGE = 0.1


def _extrapolate(fine, coarse):
    """$(4 f - c)/3$: cancels the $O(h^2)$ term of an error expansion in even powers of
    $h$ (with $f$ computed at $h/2$)."""
    return (4 * fine - coarse) / 3


class Richardson(AbstractBoundarySolver):
    r"""The geodesic to fourth order from two discrete geodesics, by Richardson
    extrapolation: the problem's polyline with $N$ segments, then the same with every
    segment halved (started from the first solution, so it takes a few steps), both
    solved by `solver` (its `geodesic_refined`; [`jaxgeo.EnergyNewton`][] runs the two
    levels as one compiled program). The discrete geodesic of the symmetric midpoint rule has an
    error expansion in even powers of $h = 1/N$, in its points, its discrete-momentum
    velocities and its length; $(4 q_{2N} - q_N)/3$ cancels the $O(h^2)$ term of each,
    leaving $O(h^4)$, with no ODE solve: on the Part II geodesic, length 5e-8 relative at
    $N = 64$ and 3e-9 at $N = 128$ (the default of [`jaxgeo.distance`][]); on a trained
    score network's ring (W6 of `python -m benchmarks`), 8e-6 and 5e-7.

    The solution lives on the problem's $N + 1$ times: extrapolated points, velocities
    (`vs[0]` is the log map $\log_{x_0}(x_1)$) and `length`; `energy` is
    $\frac12 L^2$, the energy of the constant-speed geodesic. `stats`: `num_steps` of
    both solves together, `max_steps`, and the two polylines' lengths `coarse_length`
    and `fine_length`. Fails if either solve fails, and reports
    `RESULTS.unresolved_curve` if the two lengths differ by more than 10 % (far from
    the asymptotic regime the extrapolation assumes). The default solver of
    [`jaxgeo.distance`][], [`jaxgeo.log_map`][] and [`jaxgeo.pairwise_distances`][].

    **Arguments:**

    - `solver`: the polyline solver, with its tolerances (default: as in
      [`jaxgeo.geodesic_bvp`][]).
    """

    solver: AbstractPolylineSolver | None = None

    def geodesic(self, problem: BoundaryProblem) -> GeodesicSolution:
        solver = self.solver
        if solver is None:
            solver = default_polyline_solver(problem.x0.shape[0])
        coarse, fine = solver.geodesic_refined(problem)
        length = _extrapolate(fine.length, coarse.length)
        result = RESULTS.where(coarse.result == RESULTS.successful, fine.result, coarse.result)
        asymptotic = jnp.abs(fine.length - coarse.length) <= MAX_LENGTH_CHANGE * fine.length
        result = RESULTS.where(
            (result == RESULTS.successful) & ~asymptotic, RESULTS.unresolved_curve, result
        )
        return GeodesicSolution(
            ts=coarse.ts,
            xs=_extrapolate(fine.xs[::2], coarse.xs),
            vs=_extrapolate(fine.vs[::2], coarse.vs),
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
