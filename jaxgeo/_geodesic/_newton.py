from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, Bool, Int, PyTree

from .._custom_types import Curve, Point, Scalar
from .._linalg import (
    active_block_tridiagonal_solve,
    block_tridiagonal_solve,
    Blocks,
    Points,
    UpperBlocks,
)
from .._metric._base import AbstractMetric
from .._solution import RESULTS
from ._base import (
    AbstractPolylineSolver,
    BoundaryProblem,
    LevelSolve,
    TerminateOnState,
)
from ._levels import Buffer, LevelEnergy
from ._segments import segment_derivatives, SegmentHessians


def _with_ends(interior: Points, x0: Point, x1: Point) -> Curve:
    return jnp.concatenate([x0[None], interior, x1[None]])


def _energy(interior: Points, problem: BoundaryProblem) -> Scalar:
    """The discrete energy of the polyline with these interior points."""
    return problem.curve_energy(_with_ends(interior, problem.x0, problem.x1))


def _assemble(h: SegmentHessians) -> tuple[Blocks, UpperBlocks]:
    """The interior points' block-tridiagonal Hessian from the segment Hessians."""
    dim = h.shape[-1] // 2
    return h[:-1, dim:, dim:] + h[1:, :dim, :dim], h[1:-1, :dim, dim:]


def energy_derivatives(
    metric: AbstractMetric, xs: Curve, energy: str = "midpoint"
) -> tuple[Scalar, Points, Blocks, UpperBlocks]:
    r"""The discrete energy with its gradient and block-tridiagonal Hessian w.r.t. the
    interior points of `xs`.

    $E = \sum_i e(c_i, c_{i+1})$ with $e(a, b) = \frac N2$ the segment's squared length
    under the rule `energy` (by default the midpoint rule
    $\frac N2 \langle b - a, b - a \rangle_{G((a+b)/2)}$), so the Hessian
    couples only neighbours: each segment's $2D \times 2D$ Hessian (by forward-over-
    reverse autodiff) contributes to two diagonal blocks and one off-diagonal block.
    Returns `(energy, grad, diag, upper)` with shapes `()`, `(n, D)`, `(n, D, D)` and
    `(n - 1, D, D)`; `upper[j]` couples interior points `j`, `j + 1`.
    """
    dim = xs.shape[1]
    e, g, h = segment_derivatives(metric, xs, energy)
    return (jnp.sum(e), g[:-1, dim:] + g[1:, :dim], *_assemble(h))


def _derivatives(problem: BoundaryProblem, interior: Points):
    """`energy_derivatives` of `_energy` w.r.t. the interior points."""
    xs = _with_ends(interior, problem.x0, problem.x1)
    return energy_derivatives(problem.metric, xs, problem.energy)


def _laplacian_norm(num_segments: Scalar, step: Points) -> Scalar:
    r"""$\delta^\top (N L \otimes I) \delta$: the Euclidean energy Hessian's quadratic form."""
    padded = jnp.pad(step, ((1, 1), (0, 0)))
    return num_segments * jnp.sum((padded[1:] - padded[:-1]) ** 2)


# Levenberg–Marquardt damping (Nielsen, "Damping parameter in Marquardt's method",
# IMM-REP-1999-05): after an accepted step mu *= max(1/3, 1 - (2 gain - 1)^3); after a
# rejected one mu *= growth, and growth doubles with each rejection in a row.
NIELSEN_MIN_SHRINK = 1 / 3
NIELSEN_GROWTH = 2.0
# Re-damping within a step where the damped Hessian is indefinite: tenfold, from at
# least this value (below it a tenfold increase would not change the factorisation).
REDAMP_FACTOR = 10.0
REDAMP_FLOOR = 1e-6
# The energy change counts as round-off noise below this many ulps of the energy
# (the energy sums O(N) terms, each with a few ulps of error).
NOISE_ULPS = 64
# A rejected Newton-like step below the tolerances ends the solve when its energy change
# is below this many ulps of the energy: noise of an energy with cancellation (the KL
# divergences of a secant energy: 1e-13 relative), not a real increase.
FLOOR_ULPS = 1e6


class _NewtonState(eqx.Module):
    f: Scalar  # the energy at the current points
    damping: Scalar
    growth: Scalar
    terminate: Bool[Array, ""]
    result: optx.RESULTS


class _BlockNewtonMinimiser(TerminateOnState, optx.AbstractMinimiser):
    """Levenberg–Marquardt-damped Newton on the discrete curve energy; for use by
    `EnergyNewton` only (`args` is the [`jaxgeo.BoundaryProblem`][])."""

    rtol: float
    atol: float
    norm: Callable[[PyTree], Scalar] = optx.max_norm
    initial_damping: float = 1e-3
    max_damping: float = 1e12

    def init(self, fn, y, args, options, f_struct, aux_struct, tags):
        del fn, options, aux_struct, tags
        return _NewtonState(
            f=_energy(y, args),
            damping=jnp.array(self.initial_damping, f_struct.dtype),
            growth=jnp.array(NIELSEN_GROWTH, f_struct.dtype),
            terminate=jnp.array(False),
            result=optx.RESULTS.successful,
        )

    def step(self, fn, y, args, options, state, tags):
        del fn, options, tags
        # The derivatives at the current points, here only (not also in `init`), so
        # that the compiled program holds one copy of the Hessian's computation; after a
        # rejected step they are recomputed, at the price of one pass.
        _, grad, hess_diag, hess_upper = _derivatives(args, y)
        coupling = jnp.ones(hess_upper.shape[0], bool)

        def solve(diag, upper, rhs):
            return block_tridiagonal_solve(diag, upper, rhs)

        step = damped_newton_step(
            y,
            state.f,
            state.damping,
            state.growth,
            (grad, hess_diag, hess_upper, coupling),
            solve,
            lambda trial: _energy(trial, args),
            y.shape[0] + 1,
            (self.rtol, self.atol, self.max_damping),
            self.norm,
        )
        new_state = _NewtonState(
            f=step.f,
            damping=step.damping,
            growth=step.growth,
            terminate=step.converged | step.diverged,
            result=optx.RESULTS.where(
                step.diverged, optx.RESULTS.nonlinear_divergence, optx.RESULTS.successful
            ),
        )
        return step.y, new_state, None


class NewtonStep(NamedTuple):
    """The outcome of `damped_newton_step`: the points and energy after it (unchanged
    where the step was rejected), the updated damping and its growth, and whether the
    solve has converged or diverged."""

    y: Points
    f: Scalar
    damping: Scalar
    growth: Scalar
    converged: Bool[Array, ""]
    diverged: Bool[Array, ""]


def damped_newton_step(
    y: Points,
    f: Scalar,
    damping: Scalar,
    growth: Scalar,
    derivatives: tuple[Points, Blocks, UpperBlocks, Bool[Array, " couplings"]],
    solve: Callable[[Blocks, UpperBlocks, Points], Points],
    objective: Callable[[Points], Scalar],
    num_segments: Int[Array, ""] | int,
    tolerances: tuple[float, float, float],
    norm: Callable[[PyTree], Scalar] = optx.max_norm,
) -> NewtonStep:
    r"""One Levenberg–Marquardt-damped Newton step on a discrete curve energy: the
    gradient and block-tridiagonal Hessian at `y` (`derivatives`, with a mask of the
    couplings the damping acts on), a block-tridiagonal `solve`, the energy `objective`
    at the trial points, and `tolerances` `(rtol, atol, max_damping)`. Shared by
    `EnergyNewton` and the refinement levels of [`jaxgeo.Richardson`][]."""
    rtol, atol, max_damping = tolerances
    grad, hess_diag, hess_upper, coupling = derivatives
    eye = jnp.eye(y.shape[1], dtype=y.dtype)
    num_segments = jnp.asarray(num_segments).astype(y.dtype)
    coupling = jnp.where(coupling[:, None, None], eye, 0)

    def damped_solve(damping):
        # Damp with mu * (the Euclidean energy's Hessian N L (x) I): large mu gives
        # a short preconditioned-gradient step, mu -> 0 the Newton step.
        mu = damping * num_segments
        return solve(hess_diag + 2 * mu * eye[None], hess_upper - mu * coupling, -grad)

    def attempt(carry):
        damping, _, tried = carry
        damping = jnp.where(tried, jnp.maximum(REDAMP_FACTOR * damping, REDAMP_FLOOR), damping)
        return damping, damped_solve(damping), jnp.array(True)

    # Where the damped Hessian is indefinite (NaN from the block Cholesky), damp
    # more within this step: a factorisation is much cheaper than a rejected step.
    # (One loop, so the solve is traced once.)
    damping, delta, _ = jax.lax.while_loop(
        lambda c: ~c[2] | (~jnp.all(jnp.isfinite(c[1])) & (c[0] < max_damping)),
        attempt,
        (damping, jnp.zeros_like(y), jnp.array(False)),
    )
    trial = y + delta
    new_f = objective(trial)
    predicted = 0.5 * (-jnp.sum(grad * delta) + damping * _laplacian_norm(num_segments, delta))
    actual = f - new_f
    finite = jnp.isfinite(new_f) & jnp.all(jnp.isfinite(delta))
    gain = actual / jnp.where(predicted > 0, predicted, jnp.inf)
    # At the round-off floor the energy change is noise: a lightly damped step
    # whose predicted and actual changes are both at that level is accepted.
    noise = NOISE_ULPS * jnp.finfo(y.dtype).eps * jnp.abs(f)
    at_floor = (damping <= 1) & (predicted <= noise) & (jnp.abs(actual) <= noise)
    accept = finite & ((gain > 0) | at_floor)
    newton_like = damping <= 1
    # Nielsen's update of the damping.
    damping = jnp.where(
        accept,
        damping * jnp.maximum(NIELSEN_MIN_SHRINK, 1 - (2 * jnp.clip(gain, 0, 1) - 1) ** 3),
        damping * growth,
    )
    small_step = norm(jnp.abs(delta) / (atol + rtol * jnp.abs(y))) < 1
    # A lightly damped (Newton-like) step below both tolerances ends the solve even
    # when it is rejected, if its energy change is below FLOOR_ULPS: the energy's
    # round-off (e.g. the cancellation in a secant energy of KL divergences)
    # exceeds NOISE_ULPS, so the gain is noise, and rejecting it over and over
    # would only grow the damping to "diverged".
    floor = FLOOR_ULPS * jnp.finfo(y.dtype).eps * jnp.abs(f)
    converged = (
        (accept | (newton_like & (jnp.abs(actual) <= floor)))
        & finite
        & small_step
        & (jnp.abs(actual) < atol + rtol * jnp.abs(f))
    )
    return NewtonStep(
        y=jnp.where(accept, trial, y),
        f=jnp.where(accept, new_f, f),
        damping=damping,
        growth=jnp.where(accept, NIELSEN_GROWTH, 2 * growth).astype(growth.dtype),
        converged=converged,
        diverged=~converged & (damping > max_damping),
    )


class EnergyNewton(AbstractPolylineSolver):
    r"""Damped Newton on the discrete curve energy with its exact block-tridiagonal
    Hessian: each step costs $O(N D^3)$ (one forward-over-reverse pass over the segments
    for the energy's gradient and Hessian, a block-tridiagonal solve and the energy at
    the trial point), and convergence is quadratic near the geodesic, typically in 5–30 steps
    where first-order descent needs hundreds to thousands.

    Global convergence comes from Levenberg–Marquardt damping with the Euclidean energy
    Hessian $N L \otimes I$ (so a heavily damped step is a preconditioned gradient step)
    and Nielsen's gain-ratio update; where the damped Hessian is indefinite the damping
    grows tenfold within the step, and steps that do not lower the energy are rejected.
    Where several geodesics compete, start it from [`jaxgeo.graph_geodesic`][].
    Stops when both the step and the energy change are below `atol + rtol * |value|`.
    Suited to small $D$ (the Hessian costs $D + 1$ passes over the metric per step under
    the midpoint rule, $2D + 1$ under others, and its `(D, D)` blocks are dense); above
    `D = 8` L-BFGS ([`jaxgeo.EnergyDescent`][]) is the default of
    [`jaxgeo.geodesic_bvp`][] (a distance's levels finish with Newton where L-BFGS stalls).

    **Arguments:**

    - `rtol`, `atol`: the stopping tolerances; default 1e-6 in float64 and 1e-4 in
      float32.
    - `initial_damping`: the starting damping $\mu$ (relative to $N L \otimes I$).
    - `adjoint`: how to differentiate through the solve (implicit function theorem).

    `stats`: see [`jaxgeo.AbstractPolylineSolver`][].
    """

    rtol: float | None = None
    atol: float | None = None
    initial_damping: float = 1e-3
    adjoint: optx.AbstractAdjoint = optx.ImplicitAdjoint()

    def minimise(
        self, problem: BoundaryProblem, rtol: float, atol: float
    ) -> tuple[Curve, RESULTS, Int[Array, ""]]:
        minimiser = _BlockNewtonMinimiser(
            rtol=rtol, atol=atol, initial_damping=self.initial_damping
        )
        sol = optx.minimise(
            _energy,
            minimiser,
            problem.init[1:-1],
            args=problem,
            max_steps=problem.max_steps,
            adjoint=self.adjoint,
            throw=False,
        )
        xs = _with_ends(sol.value, problem.x0, problem.x1)
        return xs, RESULTS.promote(sol.result), sol.stats["num_steps"]

    def level_solver(
        self, problem: BoundaryProblem, level_energy: LevelEnergy, sizes: tuple[int, ...]
    ) -> LevelSolve:
        """Every level run by one compiled Newton loop whose work is proportional to the
        level's segments."""
        del sizes
        rtol, atol = self.tolerances(problem.init.dtype)
        x0, x1 = problem.x0, problem.x1
        return lambda xs, n, budget: _newton_level(
            level_energy, x0, x1, xs, n, budget, self, rtol, atol
        )


def _newton_level(
    level_energy: LevelEnergy,
    x0: Point,
    x1: Point,
    xs: Buffer,
    n: Int[Array, ""],
    budget: Int[Array, ""],
    solver: EnergyNewton,
    rtol: float,
    atol: float,
):
    """Damped Newton on one level of a refinement (`n` segments of the buffer `xs`):
    the solved buffer, the steps taken, and whether it converged or diverged."""
    size = xs.shape[0] - 1
    minimiser = _BlockNewtonMinimiser(rtol=rtol, atol=atol, initial_damping=solver.initial_damping)

    def curve(y):
        return _with_ends(y, x0, x1)

    def objective(y):
        return level_energy.value(curve(y), n)

    def solve(diag, upper, rhs):
        return active_block_tridiagonal_solve(diag, upper, rhs, n - 1)

    def step(carry):
        y, f, damping, growth, steps, _, _ = carry
        grad, diag, upper, couples = level_energy.derivatives(curve(y), n)
        out = damped_newton_step(
            y,
            f,
            damping,
            growth,
            (grad, diag, upper, couples),
            solve,
            objective,
            n,
            (rtol, atol, minimiser.max_damping),
            minimiser.norm,
        )
        return out.y, out.f, out.damping, out.growth, steps + 1, out.converged, out.diverged

    def running(carry):
        steps, converged, diverged = carry[-3:]
        return ~converged & ~diverged & (steps < budget)

    y0 = xs[1:size]
    dtype = xs.dtype
    start = (
        y0,
        objective(y0),
        jnp.array(solver.initial_damping, dtype),
        jnp.array(NIELSEN_GROWTH, dtype),
        jnp.array(0),
        jnp.array(False),
        jnp.array(False),
    )
    y, _, _, _, steps, converged, diverged = jax.lax.while_loop(running, step, start)
    return curve(y), steps, converged, diverged
