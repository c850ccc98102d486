"""The shortest of several geodesics: one solve from each of several initial curves."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Float

from .._custom_types import Curve, Point
from .._solution import GeodesicSolution, RESULTS
from ._base import AbstractBoundarySolver, BoundaryProblem
from ._levels import resample
from ._richardson import Richardson


InitialCurve = Callable[[Point, Point, int], Float[Array, "points dim"]]


class Shortest(AbstractBoundarySolver):
    r"""The shortest of several geodesics between the same two points: `solver` run
    from each initial curve of `inits`, the successful solution of least length
    kept. On learned metrics two points are often joined by several geodesics, and the
    one a local solver finds depends on where it starts: the straight line, a path
    through the data ([`jaxgeo.knn_graph`][]), an earlier geodesic.

    Usable wherever a boundary solver is ([`jaxgeo.distance`][], [`jaxgeo.log_map`][],
    [`jaxgeo.pairwise_distances`][], `geodesic_solver=` of
    [`jaxgeo.stats.KarcherMean`][], [`jaxgeo.stats.NewtonMean`][] and
    [`jaxgeo.stats.k_means`][]; k-medoids on
    `pairwise_distances`). The candidates are solved one after another (`lax.map`: one
    trace of `solver`), so a call costs about as many solves as there are candidates.

    **Arguments:**

    - `inits`: the candidates, each `None` (the problem's own initial curve: the
      straight line, or the `init=` of the call, e.g. an earlier geodesic) or a callable
      `(x0, x1, num_points) -> curve` of any number of points, resampled to the
      problem's (linearly in its parameter); a [`jaxgeo.GeodesicGraph`][] is one (its
      shortest path through the graph). Default: `(None,)`.
    - `solver`: the boundary solver of every candidate (default
      [`jaxgeo.Richardson`][]`()`).

    `stats`: the chosen solution's, with `candidate` (its index in `inits`) and
    `candidate_lengths` (every candidate's length; `inf` where its solve failed). Where
    every candidate failed, the first candidate's solution (and failure) is returned.
    """

    inits: tuple[InitialCurve | None, ...] = (None,)
    solver: AbstractBoundarySolver | None = None

    def __check_init__(self):
        if not isinstance(self.inits, tuple) or not self.inits:
            raise ValueError(f"Shortest: inits must be a non-empty tuple, got {self.inits!r}")
        for init in self.inits:
            if init is not None and not callable(init):
                raise ValueError(
                    "Shortest: every candidate in inits must be None or a callable "
                    f"(x0, x1, num_points) -> curve, got {type(init).__name__}"
                )
        if self.solver is not None and not isinstance(self.solver, AbstractBoundarySolver):
            raise ValueError(
                "Shortest: solver must be a jaxgeo.AbstractBoundarySolver, got "
                f"{type(self.solver).__name__}"
            )

    def geodesic(self, problem: BoundaryProblem) -> GeodesicSolution:
        solver = Richardson() if self.solver is None else self.solver
        inits = jnp.stack([self._initial_curve(init, problem) for init in self.inits])

        def solve(init: Curve) -> GeodesicSolution:
            return solver.geodesic(eqx.tree_at(lambda p: p.init, problem, init))

        sols = jax.lax.map(solve, inits)
        lengths = jnp.where(sols.result == RESULTS.successful, sols.length, jnp.inf)
        best = jnp.argmin(lengths)
        sol = jtu.tree_map(lambda leaf: leaf[best], sols)
        return eqx.tree_at(
            lambda s: s.stats,
            sol,
            dict(sol.stats, candidate=best, candidate_lengths=lengths),
        )

    @staticmethod
    def _initial_curve(init: InitialCurve | None, problem: BoundaryProblem) -> Curve:
        if init is None:
            return problem.init
        curve = jnp.asarray(init(problem.x0, problem.x1, problem.num_points), problem.init.dtype)
        if curve.ndim != 2 or curve.shape[1] != problem.x0.shape[0] or curve.shape[0] < 2:
            raise ValueError(
                f"Shortest: a candidate returned a curve of shape {curve.shape}, expected "
                f"(points, {problem.x0.shape[0]})"
            )
        curve = resample(curve, problem.num_points - 1, problem.num_points)
        return curve.at[0].set(problem.x0).at[-1].set(problem.x1)
