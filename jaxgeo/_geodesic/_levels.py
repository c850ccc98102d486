r"""Discrete geodesics refined level by level: $N_0, 2N_0, 4N_0, \dots$ segments, each
level started from the previous one with its midpoints inserted, until the
Richardson-extrapolated length is resolved to the tolerance (see
[`jaxgeo.Richardson`][]).

Every level lives in one buffer of `max_segments + 1` points: the first $N + 1$ are the
level's polyline, the rest copies of $x_1$ (zero-length segments that are never
evaluated). The segments are evaluated a chunk at a time in loops whose trip count is the
level's $N$, so a level costs what its $N$ costs, and all levels run one compiled program
that stays correct under `jax.vmap` (a vmapped batch runs to its slowest pair).
"""

from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PyTree

from .._curve import segment_sq_norm
from .._custom_types import Curve, Point, Scalar
from .._linalg import block_tridiagonal_solve
from .._metric._base import AbstractMetric
from .._numerics import safe_sqrt
from .._solution import RESULTS
from ._segments import segment_derivatives


Buffer = Float[Array, "max_points dim"]

# A converged discrete geodesic has nearly constant speed, L^2 / 2E -> 1; far below it
# (segments too long for how fast the metric varies) the midpoint rule is unreliable.
MIN_SPEED_RATIO = 0.5
# Nor may the midpoint rule's length differ from the segment end points' by more than 2x.
MIN_RULE_RATIO = 0.5


class RefinedLevels(NamedTuple):
    """The last two levels of a refinement: polylines (`Buffer`s) with $n$ and
    `num_segments` ($2n$) segments, their lengths in the energy's rule, the
    extrapolated `length` (or the fine length where the last two levels were not both
    resolved: `extrapolated` false), its `error_estimate` and that of the initial
    velocity `velocity_error_estimate` (absolute; Euclidean norm), the `result` and
    the solver steps taken."""

    coarse: Buffer
    fine: Buffer
    num_segments: Int[Array, ""]
    coarse_length: Scalar
    fine_length: Scalar
    length: Scalar
    extrapolated: Bool[Array, ""]
    error_estimate: Scalar
    velocity_error_estimate: Scalar
    result: RESULTS
    num_steps: Int[Array, ""]


def chunk_map(
    fn: Callable[[Curve], PyTree],
    xs: Buffer,
    num_segments: Int[Array, ""],
    chunk: int,
    init: PyTree,
) -> PyTree:
    """`fn` on the polyline's segments `chunk` at a time (`fn` takes `chunk + 1`
    consecutive points and returns arrays with `chunk` rows), written into the rows of
    `init` (one per segment of the buffer); rows of segments `>= num_segments` keep
    their `init` values. The loop runs `num_segments // chunk` times."""

    def body(c, out):
        start = c * chunk
        values = fn(jax.lax.dynamic_slice_in_dim(xs, start, chunk + 1))
        return jtu.tree_map(
            lambda o, v: jax.lax.dynamic_update_slice_in_dim(o, v.astype(o.dtype), start, 0),
            out,
            values,
        )

    return jax.lax.fori_loop(0, num_segments // chunk, body, init)


def cubic_refine(xs: Buffer, n: Int[Array, ""]) -> Buffer:
    r"""The level's polyline (`n` segments) at twice the resolution, the new midpoints
    by cubic interpolation, $(-x_{k-1} + 9x_k + 9x_{k+1} - x_{k+2})/16$ (quadratic in
    the first and last segments): $O(h^4)$ from a smooth curve, where linear midpoints
    are $O(h^2)$ off."""
    i = jnp.arange(xs.shape[0])
    k = jnp.minimum(i // 2, jnp.maximum(n - 1, 0))
    at = lambda j: xs[jnp.clip(j, 0, xs.shape[0] - 1)]  # noqa: E731
    interior = (-at(k - 1) + 9 * at(k) + 9 * at(k + 1) - at(k + 2)) / 16
    first = (3 * at(k) + 6 * at(k + 1) - at(k + 2)) / 8
    last = (-at(k - 1) + 6 * at(k) + 3 * at(k + 1)) / 8
    mid = jnp.where((k == 0)[:, None], first, jnp.where((k == n - 1)[:, None], last, interior))
    mid = jnp.where((n == 1), 0.5 * (at(k) + at(k + 1)), mid)
    odd = (i % 2 == 1)[:, None]
    refined = jnp.where(odd, mid, xs[i // 2])
    return jnp.where((i > 2 * n)[:, None], xs[-1][None], refined)


def predict_next(xs: Buffer, prev: Buffer, n: Int[Array, ""]) -> Buffer:
    r"""A start for the level with $2n$ segments from the solutions with $n$ (`xs`) and
    $n/2$ (`prev`) segments: the discrete geodesics' points differ by $C h^2$ plus
    higher orders, so $x_{2n} pprox x_n - (x_{n/2} - x_n)/4$ at the coarse times
    (the difference interpolated linearly to the times $x_{n/2}$ lacks), then
    `cubic_refine`: $O(h^4)$ from the solution, where refining $x_n$ alone is $O(h^2)$
    off, so the level takes fewer Newton steps."""
    i = jnp.arange(xs.shape[0])
    half = n // 2
    gap = prev[jnp.minimum(i, half)] - xs[jnp.minimum(2 * i, n)]  # at the even times
    lo, hi = jnp.minimum(i // 2, half), jnp.minimum((i + 1) // 2, half)
    gap = 0.5 * (gap[lo] + gap[hi])
    corrected = xs - jnp.where((i < n)[:, None] & (i > 0)[:, None], gap, 0) / 4
    return cubic_refine(corrected, n)


def resample(init: Curve, num_segments: int | Int[Array, ""], size: int) -> Buffer:
    """The polyline `init` (on a uniform grid) at `num_segments + 1` uniform times, by
    linear interpolation, padded with its last point to `size` points."""
    ts = jnp.minimum(jnp.arange(size), num_segments) / num_segments * (init.shape[0] - 1)
    i = jnp.clip(jnp.floor(ts).astype(int), 0, init.shape[0] - 2)
    s = (ts - i.astype(ts.dtype))[:, None].astype(init.dtype)
    return (1 - s) * init[i] + s * init[i + 1]


def with_ends(xs: Buffer, x0: Point, x1: Point, num_segments: Int[Array, ""]) -> Buffer:
    """The buffer with `x0` first and `x1` from point `num_segments` on."""
    beyond = jnp.arange(xs.shape[0]) >= num_segments
    return jnp.where(beyond[:, None], x1[None], xs.at[0].set(x0))


class RuleDisagreement(NamedTuple):
    r"""How a level's midpoint-rule segment norms $\|\Delta_i\|_{G(m_i)}$ disagree with
    their end-point-rule norms $e_i$: the largest $|\log(\|\Delta_i\|_{G(m_i)} / e_i)|$
    of one segment, and the share of the length in disagreement,
    $\sum_i |\|\Delta_i\|_{G(m_i)} - e_i| / L$."""

    worst: Scalar
    share: Scalar


class LevelEnergy(eqx.Module):
    """The discrete energy of a level's polyline, evaluated on its segments only."""

    metric: AbstractMetric
    energy: str = eqx.field(static=True)
    chunk: int = eqx.field(static=True)

    def sq_norms(self, pts: Curve) -> Float[Array, " chunk"]:
        return jax.vmap(lambda a, b: segment_sq_norm(self.metric, a, b, self.energy))(
            pts[:-1], pts[1:]
        )

    def value(self, xs: Buffer, n: Int[Array, ""]) -> Scalar:
        r"""$E = \frac n2 \sum_{i < n} |c_{i+1} - c_i|^2_G$."""
        q = chunk_map(self.sq_norms, xs, n, self.chunk, jnp.zeros(xs.shape[0] - 1, xs.dtype))
        return 0.5 * n.astype(xs.dtype) * jnp.sum(q)

    def lengths(
        self, xs: Buffer, n: Int[Array, ""]
    ) -> tuple[Scalar, Scalar, Scalar, RuleDisagreement]:
        r"""The length, the energy, the (midpoint rule) length by the segments' end
        points, and how the two rules disagree (`RuleDisagreement`)."""

        def pieces(pts):
            deltas = pts[1:] - pts[:-1]
            ends = 0.5 * (
                jax.vmap(self.metric.norm)(pts[:-1], deltas)
                + jax.vmap(self.metric.norm)(pts[1:], deltas)
            )
            q = self.sq_norms(pts)
            norm = safe_sqrt(q)
            worst = jnp.abs(jnp.log(norm / ends))
            return q, ends, jnp.where(ends > 0, worst, 0), jnp.abs(norm - ends)

        zeros = jnp.zeros(xs.shape[0] - 1, xs.dtype)
        q, ends, worst, gaps = chunk_map(pieces, xs, n, self.chunk, (zeros,) * 4)
        energy = 0.5 * n.astype(xs.dtype) * jnp.sum(q)
        length = jnp.sum(safe_sqrt(q))
        share = jnp.sum(gaps) / jnp.where(length > 0, length, 1)
        return length, energy, jnp.sum(ends), RuleDisagreement(jnp.max(worst), share)

    def initial_velocity(self, xs: Buffer, n: Int[Array, ""]) -> Point:
        """The level's discrete-momentum velocity at $x_0$ (see `node_velocities`)."""
        return node_velocities(self.metric, self.energy, xs, n, jnp.zeros(1, int))[0]

    def segment_derivatives(self, xs: Buffer, n: Int[Array, ""]):
        """Each active segment's energy gradient `(segments, 2D)` and Hessian
        `(segments, 2D, 2D)` w.r.t. its two end points (zero beyond the level's `n`)."""
        size, dim = xs.shape[0] - 1, xs.shape[1]
        scale = n.astype(xs.dtype)
        init = (
            jnp.zeros(size, xs.dtype),
            jnp.zeros((size, 2 * dim), xs.dtype),
            jnp.zeros((size, 2 * dim, 2 * dim), xs.dtype),
        )
        _, g, h = chunk_map(
            lambda pts: segment_derivatives(self.metric, pts, self.energy, scale),
            xs,
            n,
            self.chunk,
            init,
        )
        return g, h

    def derivatives(self, xs: Buffer, n: Int[Array, ""]):
        """Gradient, block-tridiagonal Hessian and coupling mask w.r.t. the interior
        points (`max_segments - 1` of them; the inactive ones have zero gradient and
        identity blocks)."""
        return assemble_masked(*self.segment_derivatives(xs, n), n)


def assemble_masked(g, h, n):
    """The interior points' gradient and block-tridiagonal Hessian from the segments'
    (rows beyond the level's `n` segments masked out: identity blocks, zero gradient)."""
    dim = g.shape[-1] // 2
    point = jnp.arange(1, g.shape[0])
    active = point <= n - 1
    couples = point[:-1] + 1 <= n - 1
    eye = jnp.eye(dim, dtype=g.dtype)
    grad = jnp.where(active[:, None], g[:-1, dim:] + g[1:, :dim], 0)
    diag = jnp.where(active[:, None, None], h[:-1, dim:, dim:] + h[1:, :dim, :dim], eye)
    upper = jnp.where(couples[:, None, None], h[1:-1, :dim, dim:], 0)
    return grad, diag, upper, couples


class _Chain(NamedTuple):
    """Romberg bookkeeping over consecutive resolved levels, of the length and the
    initial velocity together (`values[..., 0]` is the length, the rest $v_0$)."""

    count: Int[Array, ""]  # consecutive resolved levels up to this one
    uniform: Int[Array, ""]  # of them, consecutive levels of near-constant speed
    values: Float[Array, "2 q"]  # level k - 1, level k
    extrapolated: Float[Array, "2 q"]  # R_{k-1}, R_k
    length: Scalar  # the length returned: R_k, or R_k + (R_k - R_{k-1}) / 15
    estimate: Scalar  # of the length (absolute)
    velocity_estimate: Scalar  # of v_0 (Euclidean norm, absolute)


# In the asymptotic regime the h^2 differences of the lengths fall by 4 per level; there
# the error of R_k is |R_k - R_{k-1}| / 15. The velocity's estimate doubles it for
# safety; the length returned is the next Romberg column, R_k + (R_k - R_{k-1}) / 15,
# whose error is below R_k's (measured on a learned ring metric, an MLP score, 40 pairs
# against multiple shooting: R_k's errors fall by 16-20 per level there, so the
# estimate |R_k - R_{k-1}| / 15 bounds R_k's error and the next column's by 2x or more).
ASYMPTOTIC_RATIO = (3.0, 5.5)
# The three levels of a ratio must also be of near-constant speed, L^2 / 2E at least
# this: a ratio of 3.35 between 16, 32 and 64 segments (speed ratios 0.87, 0.95, 1.0)
# on the learned ring metric was no asymptotic regime, and the length returned at
# rtol=1e-3 was 1.1e-2 off (its estimate 8.5e-4).
ASYMPTOTIC_SPEED = 0.99
VELOCITY_SAFETY = 2.0
# Converging lengths change by 4x less per level (2x or more before the asymptotic
# regime from 64 segments on, measured on 2 + sin(40 x_0)); a ratio below this at
# MAX_STALLS levels in a row from STALL_LEVEL * min_segments segments on (0.97-0.99 for
# a curve through a place at infinite distance, measured) ends the refinement.
STALL_RATIO = 1.1
STALL_LEVEL = 16
MAX_STALLS = 2
# The next level starts from this one (else afresh from the initial curve) where no
# segment's midpoint-rule and end-point-rule norms differ by more than 25 % (|log| of
# their ratio), or where the share of the length in disagreement is at most
# RULE_DISAGREEMENT_SHARE and at most RULE_DISAGREEMENT_DECAY times the previous level's.
# A curve resolving a sharp feature of the metric has one segment far off (2.4x) on a
# share that falls about fourfold a level (O(h^2)): it continues, and its fine levels take
# a few Newton steps instead of restarting from the straight line. A segment that jumps
# where the metric is small (the midpoint rule's artefact) keeps its share as the levels
# refine it, converging at first order to a curve shorter than the geodesic: it starts
# afresh. (Measurements: CHANGELOG, Performance.)
SEGMENT_RULE_DISAGREEMENT = float(np.log(1.25))
RULE_DISAGREEMENT_SHARE = 0.1
RULE_DISAGREEMENT_DECAY = 0.5
# The error estimate is at least this many ulps of the length (its round-off).
ROUND_OFF_ULPS = 64


def romberg_update(
    chain: _Chain, values: Float[Array, " q"], resolved: Bool[Array, ""], uniform: Bool[Array, ""]
) -> _Chain:
    r"""Add a level's length $L_k$ and initial velocity ($2\times$ the previous level's
    segments; `uniform`: of near-constant speed): $R_k = (4 q_k - q_{k-1})/3$ (the
    $O(h^2)$ term cancelled) and, from the third resolved level on, the error estimates:
    $|R_k - R_{k-1}|$, or, where the ratio of the last two length differences is near 4
    and the three levels are uniform (the asymptotic regime, where $R$'s error is
    $O(h^4)$), $\frac{1}{15}|R_k - R_{k-1}|$ for the length, which is then
    $R_k + \frac{1}{15}(R_k - R_{k-1})$ (the $O(h^4)$ term cancelled too), and
    $\frac{2}{15}|R_k - R_{k-1}|$ for the velocity $R_k$. An unresolved level restarts
    the chain."""
    prev, last = chain.values
    count = jnp.where(resolved, chain.count + 1, 0)
    uniform_count = jnp.where(resolved & uniform, chain.uniform + 1, 0)
    extrapolated = (4 * values - last) / 3
    ratio = (last[0] - prev[0]) / (values[0] - last[0])
    asymptotic = (ratio >= ASYMPTOTIC_RATIO[0]) & (ratio <= ASYMPTOTIC_RATIO[1])
    asymptotic &= uniform_count >= 3
    change = extrapolated - chain.extrapolated[1]
    known = count >= 3
    current = jnp.where(count >= 2, extrapolated, values)
    second = known & asymptotic  # the next Romberg column of the length
    return _Chain(
        count=count,
        uniform=uniform_count,
        values=jnp.stack([last, values]),
        extrapolated=jnp.stack([chain.extrapolated[1], current]),
        length=jnp.where(second, current[0] + change[0] / 15, current[0]),
        estimate=jnp.where(known, jnp.where(asymptotic, 1 / 15, 1.0) * jnp.abs(change[0]), jnp.inf),
        velocity_estimate=jnp.where(
            known,
            jnp.where(asymptotic, VELOCITY_SAFETY / 15, 1.0) * jnp.linalg.norm(change[1:]),
            jnp.inf,
        ),
    )


class _Refinement(NamedTuple):
    xs: Buffer  # the current level's polyline (its start, then its solution)
    prev: Buffer  # the previous level's solution
    n: Int[Array, ""]
    chain: _Chain
    num_steps: Int[Array, ""]
    result: RESULTS
    done: Bool[Array, ""]
    history: Float[Array, "2"]  # the last two levels' lengths, resolved or not
    stalls: Int[Array, ""]  # consecutive levels whose length did not converge
    smooth: Bool[Array, ""]  # the last level converged with segments that agree
    share: Scalar  # its share of the length where the segment rules disagree


def refine_levels(
    level_energy: LevelEnergy,
    solve_level: Callable[[Buffer, Int[Array, ""], Int[Array, ""]], tuple],
    init: Buffer,
    min_segments: int,
    max_steps: int,
    tolerances: tuple[float, float],
    solver_rtol: float,
    resolve_velocity: bool,
) -> RefinedLevels:
    """The refinement loop: solve a level (`solve_level(xs, n, budget)` returns the
    solved buffer, steps taken, converged, diverged), measure it, extrapolate, and stop
    when the estimate is within `tolerances` `(rtol, atol)`, at the last level (the
    buffer's size), on a failure that refining cannot mend (the energy not finite; a
    level whose solve diverged is followed by one started afresh from `init`), when the
    lengths stop converging (`STALL_RATIO`) or when the budget of Newton steps is spent
    (with `resolve_velocity`, the initial velocity's estimate must be within the
    tolerances too). The estimate is at
    least the noise of the lengths: their round-off and the second-order effect of the
    level solves' tolerance `solver_rtol` (relative)."""
    rtol, atol = tolerances
    max_segments = init.shape[0] - 1
    dtype = init.dtype
    noise = ROUND_OFF_ULPS * jnp.finfo(dtype).eps + solver_rtol**2
    first = init[: min_segments + 1]
    # The velocities are discrete momenta, N G Delta: the level solves' stopping error
    # in the points (solver_rtol, relative to the chord here) grows N-fold in them. (A
    # loose solver's error there is far below that bound and not counted.)
    momentum_noise = solver_rtol if solver_rtol <= 1e-8 else 0.0
    chord = jnp.linalg.norm(init[-1] - init[0])
    # The round-off of the end points' coordinates, as a length: below it the estimate
    # cannot fall (e.g. two points that coincide to round-off, a zero-length geodesic).
    coordinates = jnp.abs(init[0]) + jnp.abs(init[-1])
    coordinate_noise = (
        ROUND_OFF_ULPS * jnp.finfo(dtype).eps * level_energy.metric.norm(init[0], coordinates)
    )
    # End points that coincide to round-off: the first level is the answer.
    coincident = level_energy.metric.norm(init[0], init[-1] - init[0]) <= coordinate_noise

    def level(state: _Refinement) -> _Refinement:
        xs, steps, converged, diverged = solve_level(state.xs, state.n, max_steps - state.num_steps)
        length, energy, ends, disagreement = level_energy.lengths(xs, state.n)
        resolved = converged & (length**2 >= MIN_SPEED_RATIO * 2 * energy)
        # A level whose segments still disagree between the midpoint and end-point
        # rules may be a discretisation artefact (a long segment whose midpoint sits
        # where the metric is small: shorter than any curve, and converging at first
        # order as the levels refine it): the next level starts afresh from `init`
        # (see SEGMENT_RULE_DISAGREEMENT).
        smooth = converged
        if level_energy.energy == "midpoint":
            resolved &= (length >= MIN_RULE_RATIO * ends) & (ends >= MIN_RULE_RATIO * length)
            share = disagreement.share
            smooth &= (disagreement.worst <= SEGMENT_RULE_DISAGREEMENT) | (
                (share <= RULE_DISAGREEMENT_SHARE)
                & (share <= RULE_DISAGREEMENT_DECAY * state.share)
            )
        else:
            share = state.share
        velocity = level_energy.initial_velocity(xs, state.n)
        uniform = length**2 >= ASYMPTOTIC_SPEED * 2 * energy
        chain = romberg_update(
            state.chain, jnp.concatenate([length[None], velocity]), resolved, uniform
        )
        speed = jnp.linalg.norm(chain.extrapolated[1, 1:])
        chain = chain._replace(
            estimate=jnp.maximum(chain.estimate, noise * jnp.abs(length)),
            velocity_estimate=jnp.maximum(
                chain.velocity_estimate, noise * speed + momentum_noise * state.n * chord
            ),
        )
        accurate = chain.estimate <= atol + rtol * jnp.abs(chain.length) + coordinate_noise
        velocity_noise = ROUND_OFF_ULPS * jnp.finfo(dtype).eps * jnp.max(coordinates)
        if resolve_velocity:
            accurate &= chain.velocity_estimate <= atol + rtol * speed + velocity_noise
        accurate |= coincident
        chain = chain._replace(  # (their error: the round-off of the coordinates)
            estimate=jnp.where(coincident, coordinate_noise, chain.estimate),
            velocity_estimate=jnp.where(coincident, velocity_noise, chain.velocity_estimate),
        )
        finite = jnp.isfinite(energy)
        num_steps = state.num_steps + steps
        result = RESULTS.where(accurate, RESULTS.successful, RESULTS.unresolved_curve)
        result = RESULTS.where(
            ~accurate & (num_steps >= max_steps), RESULTS.nonlinear_max_steps_reached, result
        )
        result = RESULTS.where(diverged, RESULTS.nonlinear_divergence, result)
        # A converged level whose velocity G^-1 p is NaN: the metric is singular there
        # (e.g. of rank 1); finer levels will not mend it.
        singular = converged & ~jnp.all(jnp.isfinite(velocity)) if resolve_velocity else False
        result = RESULTS.where(singular, RESULTS.singular_metric, result)
        result = RESULTS.where(finite, result, RESULTS.nonfinite_energy)
        # Lengths that keep growing by about as much at every level (a curve that cannot
        # be resolved, e.g. through a place at infinite distance) end the refinement.
        ratio = (state.history[1] - state.history[0]) / (length - state.history[1])
        stalling = (ratio > 0) & (ratio < STALL_RATIO) & (state.n >= STALL_LEVEL * min_segments)
        stalls = jnp.where(stalling, state.stalls + 1, 0)
        # A level that diverged (a coarse level from a poor initial curve: on the learned
        # ring metric, 16 segments across the ring's hole) is not smooth: the next level
        # starts afresh from `init`; divergence fails the solve at the last level only.
        done = accurate | ~finite | (num_steps >= max_steps) | singular
        done |= (state.n >= max_segments) | (stalls >= MAX_STALLS)
        # This level continued the previous one (which is in `state.prev`): the pair
        # predicts the next level's solution to O(h^4).
        chained = smooth & state.smooth
        return _Refinement(
            xs=jnp.where(
                done,
                xs,
                jnp.where(
                    smooth,
                    jnp.where(
                        chained, predict_next(xs, state.prev, state.n), cubic_refine(xs, state.n)
                    ),
                    resample(first, 2 * state.n, init.shape[0]),
                ),
            ),
            prev=jnp.where(done, state.prev, xs),
            n=jnp.where(done, state.n, 2 * state.n),
            chain=chain,
            num_steps=num_steps,
            result=result,
            done=done,
            history=jnp.stack([state.history[1], length]),
            stalls=stalls,
            smooth=smooth,
            share=share,
        )

    nan = jnp.array(jnp.nan, dtype)
    start = _Refinement(
        xs=init,
        prev=init,
        n=jnp.array(min_segments),
        chain=_Chain(
            count=jnp.array(0),
            uniform=jnp.array(0),
            values=jnp.full((2, 1 + init.shape[1]), nan),
            extrapolated=jnp.full((2, 1 + init.shape[1]), nan),
            length=nan,
            estimate=jnp.array(jnp.inf, dtype),
            velocity_estimate=jnp.array(jnp.inf, dtype),
        ),
        num_steps=jnp.array(0),
        result=RESULTS.successful,
        done=jnp.array(False),
        history=jnp.stack([nan, nan]),
        stalls=jnp.array(0),
        smooth=jnp.array(False),
        share=jnp.array(jnp.inf, dtype),
    )
    end = jax.lax.while_loop(lambda s: ~s.done, level, start)
    return RefinedLevels(
        coarse=end.prev,
        fine=end.xs,
        num_segments=end.n,
        coarse_length=end.chain.values[0, 0],
        fine_length=end.chain.values[1, 0],
        length=end.chain.length,
        extrapolated=end.chain.count >= 2,
        error_estimate=jnp.asarray(end.chain.estimate, dtype),
        velocity_error_estimate=jnp.asarray(end.chain.velocity_estimate, dtype),
        result=end.result,
        num_steps=end.num_steps,
    )


def masked_energy(metric: AbstractMetric, rule: str, xs: Buffer, n: Int[Array, ""]) -> Scalar:
    """The level's energy evaluated on every segment of the buffer, those beyond `n`
    masked: static shapes, for derivatives (the implicit function theorem)."""
    q = jax.vmap(lambda a, b: segment_sq_norm(metric, a, b, rule))(xs[:-1], xs[1:])
    active = jnp.arange(q.shape[0]) < n
    return 0.5 * n.astype(xs.dtype) * jnp.sum(jnp.where(active, q, 0))


def masked_length(metric: AbstractMetric, rule: str, xs: Buffer, n: Int[Array, ""]) -> Scalar:
    """The level's length, as `masked_energy`."""
    q = jax.vmap(lambda a, b: segment_sq_norm(metric, a, b, rule))(xs[:-1], xs[1:])
    active = jnp.arange(q.shape[0]) < n
    return jnp.sum(jnp.where(active, safe_sqrt(jnp.where(active, q, 0)), 0))


def node_velocities(
    metric: AbstractMetric, rule: str, xs: Buffer, n: Int[Array, ""], nodes: Int[Array, " k"]
) -> Float[Array, "k dim"]:
    r"""The discrete-momentum velocities $v_i = G(c_i)^{-1} p_i$ at the level's points
    `nodes` ($p_i = -\partial_a e(c_i, c_{i+1})$, and $\partial_b e(c_{n-1}, c_n)$ at
    the end; see `discrete_velocities`)."""
    scale = n.astype(xs.dtype)

    def one(i):
        seg = jnp.minimum(i, n - 1)
        ga, gb = jax.grad(
            lambda a, b: 0.5 * scale * segment_sq_norm(metric, a, b, rule), argnums=(0, 1)
        )(xs[seg], xs[seg + 1])
        return metric.solve(xs[i], jnp.where(i < n, -ga, gb))

    return jax.vmap(one)(nodes)


def extrapolated_curve(
    metric: AbstractMetric,
    rule: str,
    coarse: Buffer,
    fine: Buffer,
    num_segments: Int[Array, ""],
    num_points: int,
) -> tuple[Curve, Curve]:
    r"""Points and velocities at `num_points` uniform times from the last two levels
    ($n$ and $2n$ = `num_segments` segments): at the coarse level's times, the
    extrapolations $(4 q_{2n} - q_n)/3$ of both; in between, cubic Hermite
    interpolation of them ($O(h^4)$, as the extrapolation)."""
    n = num_segments // 2
    j = jnp.arange(num_points)
    out_segments = num_points - 1
    i0 = jnp.minimum((j * n) // out_segments, n - 1)
    s = ((j * n) - i0 * out_segments).astype(coarse.dtype) / out_segments
    nodes = jnp.concatenate([i0, i0 + 1])

    def at_nodes(buffer, scale, level_n):
        return buffer[scale * nodes], node_velocities(metric, rule, buffer, level_n, scale * nodes)

    xc, vc = at_nodes(coarse, 1, n)
    xf, vf = at_nodes(fine, 2, num_segments)
    x, v = (4 * xf - xc) / 3, (4 * vf - vc) / 3
    x_a, x_b = x[:num_points], x[num_points:]
    v_a, v_b = v[:num_points], v[num_points:]
    h = 1 / n.astype(coarse.dtype)
    s = s[:, None]
    h00, h10, h01, h11 = (
        2 * s**3 - 3 * s**2 + 1,
        s**3 - 2 * s**2 + s,
        -2 * s**3 + 3 * s**2,
        s**3 - s**2,
    )
    d00, d10, d01, d11 = 6 * s**2 - 6 * s, 3 * s**2 - 4 * s + 1, -6 * s**2 + 6 * s, 3 * s**2 - 2 * s
    points = h00 * x_a + h10 * h * v_a + h01 * x_b + h11 * h * v_b
    velocities = (d00 * x_a + d01 * x_b) / h + d10 * v_a + d11 * v_b
    return points, velocities


@eqx.filter_custom_jvp
def level_solution(params, xs, length, n, rule):
    """A solved level (buffer `xs` with `n` segments, its `length`), given its metric and
    end points `params`; differentiated by the implicit function theorem."""
    del params, n, rule
    return xs, length


@level_solution.def_jvp
def level_solution_jvp(primals, tangents):
    r"""At the discrete geodesic $y^*$ (zero interior gradient $g(y, p) = 0$, with
    $p$ the metric and end points), $\mathrm dy^* = -H^{-1} \partial_p g\,\mathrm dp$
    with $H$ the block-tridiagonal energy Hessian (static shapes: the whole buffer, the
    segments beyond the level masked), and the length's tangent along
    $(\mathrm dp, \mathrm dy^*)$. Linear in the tangents, so reverse mode transposes it."""
    params, xs, length, n, rule = primals
    dynamic, static = eqx.partition(params, eqx.is_inexact_array)
    t_dynamic = dense_tangents(dynamic, tangents[0])
    size, dim = xs.shape[0] - 1, xs.shape[1]

    def curve(dynamic, interior):
        metric, x0, x1 = eqx.combine(dynamic, static)
        return metric, with_ends(xs.at[1:size].set(interior), x0, x1, n)

    def gradient(dynamic):
        metric, ys = curve(dynamic, xs[1:size])
        return jax.grad(lambda y: masked_energy(metric, rule, y, n))(ys)[1:size]

    _, d_gradient = jax.jvp(gradient, (dynamic,), (t_dynamic,))
    metric = eqx.combine(dynamic, static)[0]
    _, g, h = segment_derivatives(metric, xs, rule, n.astype(xs.dtype))
    _, diag, upper, _ = assemble_masked(g, h, n)
    active = (jnp.arange(1, size) <= n - 1)[:, None]
    d_interior = block_tridiagonal_solve(
        jax.lax.stop_gradient(diag), jax.lax.stop_gradient(upper), -jnp.where(active, d_gradient, 0)
    )
    _, t_ends = curve(t_dynamic, jnp.zeros((size - 1, dim), xs.dtype))
    d_xs = t_ends.at[1:size].set(jnp.where(active, d_interior, t_ends[1:size]))

    def level_length(dynamic, ys):
        return masked_length(eqx.combine(dynamic, static)[0], rule, ys, n)

    _, d_length = jax.jvp(level_length, (dynamic, xs), (t_dynamic, d_xs))
    return (xs, length), (d_xs, d_length)


def constant(tree: PyTree) -> PyTree:
    """`tree` with no gradient through its arrays."""
    return jtu.tree_map(lambda a: jax.lax.stop_gradient(a) if eqx.is_array(a) else a, tree)


def differentiable_levels(params: PyTree, levels: RefinedLevels, rule: str) -> RefinedLevels:
    """The last two levels of a refinement computed on constants, differentiable again
    in `params` (metric, x0, x1) by the implicit function theorem (`level_solution`)."""
    n = levels.num_segments
    coarse, coarse_length = level_solution(
        params, levels.coarse, levels.coarse_length, n // 2, rule
    )
    fine, fine_length = level_solution(params, levels.fine, levels.fine_length, n, rule)
    return levels._replace(
        coarse=coarse, fine=fine, coarse_length=coarse_length, fine_length=fine_length
    )


def dense_tangents(dynamic: PyTree, tangents: PyTree) -> PyTree:
    """The tangents of `filter_custom_jvp` arguments (`None` where not differentiated)
    with zeros in place of `None` at every array of `dynamic`."""
    return jtu.tree_map(
        lambda p, t: None if p is None else (jnp.zeros_like(p) if t is None else t),
        dynamic,
        tangents,
        is_leaf=lambda x: x is None,
    )
