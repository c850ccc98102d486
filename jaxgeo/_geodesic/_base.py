import abc
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from equinox import AbstractVar
from jaxtyping import Array, Bool, Float, Int

from .._curve import curve_energy, curve_length, segment_sq_norm
from .._custom_types import Curve, Point, Scalar
from .._metric._base import AbstractMetric
from .._numerics import POLYLINE_TOL, safe_sqrt
from .._solution import GeodesicSolution, RESULTS
from ._levels import (
    Buffer,
    constant,
    differentiable_levels,
    LevelEnergy,
    MIN_RULE_RATIO,
    MIN_SPEED_RATIO,
    refine_levels,
    RefinedLevels,
    resample,
)


# A level's solve, `solve(xs, n, budget) -> (xs, steps, converged, failed)`.
LevelSolve = Callable[
    [Buffer, Int[Array, ""], Int[Array, ""]],
    tuple[Buffer, Int[Array, ""], Bool[Array, ""], Bool[Array, ""]],
]


class BoundaryProblem(eqx.Module):
    r"""A geodesic boundary-value problem, as [`jaxgeo.geodesic_bvp`][] hands it to an
    [`jaxgeo.AbstractBoundarySolver`][].

    **Fields:**

    - `metric`: the [`jaxgeo.AbstractMetric`][].
    - `x0`, `x1`: the endpoints, shape `(D,)`.
    - `init`: the initial polyline, shape `(N + 1, D)`, on the uniform grid
      $t_i = i/N$, with `init[0] == x0` and `init[-1] == x1`.
    - `max_steps`: the iteration budget of the solve.
    - `energy`: the segment-energy rule of the discrete energy, `"midpoint"` or
      `"secant"` (see [`jaxgeo.curve_energy`][]).
    """

    metric: AbstractMetric
    x0: Point
    x1: Point
    init: Curve
    max_steps: int = eqx.field(static=True)
    energy: str = eqx.field(static=True, default="midpoint")

    @property
    def num_points(self) -> int:
        return self.init.shape[0]

    def curve_energy(self, xs: Curve) -> Scalar:
        """[`jaxgeo.curve_energy`][] of `xs` in the problem's segment rule."""
        return curve_energy(self.metric, xs, energy=self.energy)

    def curve_length(self, xs: Curve) -> Scalar:
        """[`jaxgeo.curve_length`][] of `xs` in the problem's segment rule."""
        return curve_length(self.metric, xs, energy=self.energy)


class AbstractBoundarySolver(eqx.Module):
    """A method for the geodesic boundary-value problem: find the curve of least energy
    between two points. Solvers hold configuration only (tolerances among it);
    [`jaxgeo.geodesic_bvp`][] is the entry point."""

    @abc.abstractmethod
    def geodesic(self, problem: BoundaryProblem) -> GeodesicSolution:
        """Solve `problem`: the [`jaxgeo.GeodesicSolution`][] that
        [`jaxgeo.geodesic_bvp`][] returns (before its `throw`), sampled at the times of
        `problem.init`. Its `stats` hold at least `num_steps` and `max_steps`."""


class AbstractPolylineSolver(AbstractBoundarySolver):
    r"""A solver that minimises the discrete energy of a polyline over its interior
    points. Subclasses implement `minimise` and `level_solver` (how the levels of
    `refined_levels` are solved: `geodesic_levels(self, ...)` solves each by
    `geodesic`); the solution (`geodesic`) is the minimising polyline with its length
    and energy in the problem's segment rule.

    `stats` of the solution: `num_steps`, `max_steps`, `grad_norm` (the largest
    component of the final energy gradient w.r.t. the interior points) and
    `constant_speed_ratio` $L^2 / 2E$, which tends to 1 at convergence (equality in
    Cauchy–Schwarz); below 1/2 the solve reports `RESULTS.unresolved_curve`. Under the
    midpoint rule also `endpoint_rule_ratio`, the length over the length with each
    segment's norm taken at its two ends (averaged): it tends to 1 as the curve is
    resolved; outside $[1/2, 2]$ (a segment jumping across a zero of the metric, which
    the midpoint rule does not see) the solve reports `RESULTS.unresolved_curve`.
    """

    rtol: AbstractVar[float | None]
    atol: AbstractVar[float | None]

    @abc.abstractmethod
    def minimise(
        self, problem: BoundaryProblem, rtol: float, atol: float
    ) -> tuple[Curve, RESULTS, Int[Array, ""]]:
        """Minimise the discrete energy from `problem.init` (which has at least three
        points) to the tolerances: the polyline (endpoints included), the result and
        the number of steps taken."""

    def tolerances(self, dtype) -> tuple[float, float]:
        """`(rtol, atol)`: the solver's, or `POLYLINE_TOL` of the dtype where `None`."""
        default = POLYLINE_TOL(dtype)
        return (
            default if self.rtol is None else self.rtol,
            default if self.atol is None else self.atol,
        )

    @abc.abstractmethod
    def level_solver(
        self, problem: BoundaryProblem, level_energy: LevelEnergy, sizes: tuple[int, ...]
    ) -> LevelSolve:
        """How `refined_levels` solves one level of `problem` (its arrays constants:
        `refined_levels` differentiates at the end): `solve(xs, n, budget)` returns the
        buffer `xs` with its first `n` segments solved (`n` one of the levels' `sizes`,
        `min_segments`, twice as many, ... `max_segments`), the steps taken, and whether
        the solve converged and whether it failed beyond what refining mends. `budget`
        is the steps left to the whole refinement, which `refined_levels` counts:
        [`jaxgeo.EnergyNewton`][] runs all levels in one loop that stops there, while
        `geodesic_levels` solves each level by `geodesic` with `problem.max_steps`."""

    def refined_levels(
        self,
        problem: BoundaryProblem,
        min_segments: int,
        max_segments: int,
        tolerances: tuple[float, float],
        resolve_velocity: bool = True,
    ) -> RefinedLevels:
        """The discrete geodesics with `min_segments`, twice as many, ... up to
        `max_segments`, each started from the previous one refined, until the
        extrapolated length is within `tolerances` (for [`jaxgeo.Richardson`][]), each
        level solved by `level_solver` with the steps of all levels counted against
        `problem.max_steps`."""
        params = (problem.metric, problem.x0, problem.x1)
        fixed = constant(problem)  # differentiated at the end
        level_energy = LevelEnergy(fixed.metric, problem.energy, min_segments)
        num_levels = (max_segments // min_segments).bit_length()
        sizes = tuple(min_segments * 2**k for k in range(num_levels))
        levels = refine_levels(
            level_energy,
            self.level_solver(fixed, level_energy, sizes),
            resample(fixed.init, min_segments, max_segments + 1),
            min_segments,
            problem.max_steps,
            tolerances,
            self.tolerances(problem.init.dtype)[0],
            resolve_velocity,
        )
        return differentiable_levels(params, levels, problem.energy)

    def geodesic(self, problem: BoundaryProblem) -> GeodesicSolution:
        if problem.num_points == 2:
            xs, result, num_steps = problem.init, RESULTS.successful, jnp.array(0)
        else:
            rtol, atol = self.tolerances(problem.init.dtype)
            xs, result, num_steps = self.minimise(problem, rtol, atol)
        return polyline_solution(problem, xs, result, num_steps)


def geodesic_levels(
    solver: AbstractPolylineSolver, problem: BoundaryProblem, sizes: tuple[int, ...]
) -> LevelSolve:
    """A `level_solver` for any polyline solver: each level solved by `solver.geodesic`
    on its own grid (a compiled branch per level, chosen by `lax.switch`; under
    `jax.vmap` every branch runs at every level), with `problem.max_steps` per level
    (`refine_levels` counts the steps of all levels against it)."""

    def branch(size):
        def solve(xs):
            sol = solver.geodesic(eqx.tree_at(lambda p: p.init, problem, xs[: size + 1]))
            # (A singular metric leaves the length resolvable: `refine_levels`
            # checks the velocity where it is needed.)
            converged = (sol.result == RESULTS.successful) | (sol.result == RESULTS.singular_metric)
            failed = ~converged & (sol.result != RESULTS.unresolved_curve)
            hard = failed & (sol.result != RESULTS.nonlinear_max_steps_reached)
            return (xs.at[: size + 1].set(sol.xs), sol.stats["num_steps"], converged, hard)

        return solve

    def solve_level(xs, n, budget):
        del budget  # each level has the problem's budget; refine_levels counts them
        index = sum((n > size).astype(int) for size in sizes[:-1])
        return jax.lax.switch(index, [branch(size) for size in sizes], xs)

    return solve_level


class TerminateOnState:
    """optimistix's `terminate` and `postprocess` for our own iterative solvers, whose
    `step` decides when to stop: the state's `terminate` and `result`, and the iterate
    as the solution."""

    def terminate(self, fn, y, args, options, state, tags):
        del fn, y, args, options, tags
        return state.terminate, state.result

    def postprocess(self, fn, y, aux, args, options, state, tags, result):
        del fn, args, options, state, tags, result
        return y, aux, {}


def segment_gradients(
    problem: BoundaryProblem, xs: Curve
) -> tuple[
    Float[Array, " segments"], tuple[Float[Array, "segments dim"], Float[Array, "segments dim"]]
]:
    r"""The segment energies $e(c_k, c_{k+1})$ with $e(a, b) = \frac N2$
    `segment_sq_norm(a, b)` (the problem's rule), shape `(N,)`, and their gradients
    $(\partial_a e, \partial_b e)$ w.r.t. the two ends, each of shape `(N, D)`, in one
    pass. The gradients give both the energy's gradient at the interior points,
    $\partial_b e(c_{k-1}, c_k) + \partial_a e(c_k, c_{k+1})$, and the discrete momenta
    (`discrete_velocities`)."""
    num_segments = xs.shape[0] - 1

    def segment(a, b):
        return 0.5 * num_segments * segment_sq_norm(problem.metric, a, b, problem.energy)

    return jax.vmap(jax.value_and_grad(segment, argnums=(0, 1)))(xs[:-1], xs[1:])


def discrete_velocities(
    problem: BoundaryProblem,
    xs: Curve,
    gradients: tuple[Float[Array, "segments dim"], Float[Array, "segments dim"]],
) -> Curve:
    r"""The velocities at the points of a discrete geodesic `xs`, from its discrete
    momenta, given the `segment_gradients` of `xs`: with the segment energies $e(a, b)$
    of the problem's rule (the midpoint rule
    $e(a, b) = \frac N2 \langle b - a, b - a\rangle_{G((a+b)/2)}$ is a discrete
    Lagrangian $h\,\mathcal L(\frac{a+b}2, \frac{b-a}h)$, $h = 1/N$), the discrete
    Legendre transform gives $p_k = -\partial_a e(c_k, c_{k+1})$ and
    $p_N = \partial_b e(c_{N-1}, c_N)$ (Marsden & West, *Discrete mechanics and
    variational integrators*, 2001), and $v_k = G(c_k)^{-1} p_k$. The rule is symmetric,
    so the error is $O(1/N^2)$ with an expansion in even powers of $1/N$ (which
    [`jaxgeo.Richardson`][] cancels); finite differences of the points are far worse
    at the ends, where the geodesic's Euclidean speed changes fastest."""
    starts, ends = gradients
    momenta = jnp.concatenate([-starts, ends[-1:]])
    return jax.vmap(problem.metric.solve)(xs, momenta)


def polyline_solution(
    problem: BoundaryProblem, xs: Curve, result: RESULTS, num_steps: Int[Array, ""]
) -> GeodesicSolution:
    """A polyline on the uniform grid as a [`jaxgeo.GeodesicSolution`][], with the
    convergence diagnostics `grad_norm` and `constant_speed_ratio` in `stats`."""
    num_segments = xs.shape[0] - 1
    energies, gradients = segment_gradients(problem, xs)
    energy = jnp.sum(energies)
    length = jnp.sum(safe_sqrt(2 * energies / num_segments))
    starts, ends = gradients
    grad_norm = jnp.max(jnp.abs(ends[:-1] + starts[1:]), initial=0.0)
    speed_ratio = length**2 / (2 * energy)
    stats = dict(
        num_steps=num_steps,
        max_steps=problem.max_steps,
        grad_norm=jax.lax.stop_gradient(grad_norm),
        constant_speed_ratio=speed_ratio,
    )
    # (Zero energy is not flagged: where the metric vanishes, zero may be the true
    # distance.)
    unresolved = (energy > 0) & (speed_ratio < MIN_SPEED_RATIO)
    if problem.energy == "midpoint":
        # The midpoint rule sees the metric at the segments' midpoints only: a segment
        # that jumps across a zero of the metric is free. The lengths by the segments'
        # end points then disagree (on a resolved curve they agree to O(1/N^2)).
        deltas = xs[1:] - xs[:-1]
        at_ends = jax.vmap(problem.metric.norm)(
            jnp.concatenate([xs[:-1], xs[1:]]), jnp.concatenate([deltas, deltas])
        )
        ends_length = 0.5 * jnp.sum(at_ends)
        stats.update(endpoint_rule_ratio=length / ends_length)
        unresolved |= (length < MIN_RULE_RATIO * ends_length) | (
            ends_length < MIN_RULE_RATIO * length
        )
    result = RESULTS.where(
        (result == RESULTS.successful) & unresolved, RESULTS.unresolved_curve, result
    )
    vs = discrete_velocities(problem, xs, gradients)
    # A finite energy with NaN velocities G^-1 p: the metric is singular on the curve.
    result = RESULTS.where(
        (result == RESULTS.successful) & ~jnp.all(jnp.isfinite(vs)),
        RESULTS.singular_metric,
        result,
    )
    return GeodesicSolution(
        ts=jnp.linspace(0, 1, xs.shape[0], dtype=xs.dtype),
        xs=xs,
        vs=vs,
        length=length,
        energy=energy,
        result=RESULTS.where(jnp.isfinite(energy), result, RESULTS.nonfinite_energy),
        stats=stats,
    )


def sine_basis(num_points: int, dtype) -> np.ndarray:
    r"""Preconditioned coordinates for the interior points of a polyline.

    The discrete Dirichlet Laplacian $\mathrm{tridiag}(-1, 2, -1)$ on the $n =$
    `num_points - 2` interior points has eigenvectors
    $\phi_k(i) = \sqrt{2/(n+1)}\sin(\pi i k/(n+1))$ and eigenvalues
    $\mu_k = 2 - 2\cos(\pi k/(n+1))$. With interior offsets $w = B z$ from the straight
    line and $B = \Phi\,\mathrm{diag}(N\mu)^{-1/2}$, the Euclidean energy of the curve is
    $E_0 + \tfrac12|z|^2$: descent in $z$ is descent preconditioned by the inverse
    Laplacian (a Sobolev gradient), and is as well conditioned as the metric itself.
    """
    n = num_points - 2
    k = np.arange(1, n + 1)
    phi = np.sqrt(2 / (n + 1)) * np.sin(np.pi * np.outer(k, k) / (n + 1))
    mu = 2 - 2 * np.cos(np.pi * k / (n + 1))
    return (phi / np.sqrt((num_points - 1) * mu)).astype(dtype)
