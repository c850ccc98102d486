r"""The Fréchet mean by Newton's method on the mean and all its discrete geodesics at
once, refined level by level and extrapolated.

At $N$ segments per curve the unknowns are the mean $m$ and the interior points $Y_i$
of the polylines $c_i = (m, Y_i, x_i)$; they minimise $\Phi = \sum_i w_i E_N(c_i)$, the
weighted discrete energies (at the minimum every $c_i$ is a discrete geodesic with
$E_N = \frac12 L_i^2$, so $m$ is the mean of the discrete distances). The Hessian is an
arrowhead: $n$ block-tridiagonal blocks $A_i$ (the curves' interiors) coupled only
through the $D \times D$ mean block $C$, by one block $B_i$ each (the mean's segment).
A Newton step eliminates the curves (a Schur complement):

$$\Big(C - \sum_i B_i A_i^{-1} B_i^\top\Big)\,\delta m = -g_m + \sum_i B_i A_i^{-1} g_i,
\qquad \delta Y_i = -A_i^{-1}(g_i + B_i^\top \delta m),$$

one block-tridiagonal factorisation per curve with $D + 1$ right-hand sides:
$O(n N D^3)$ a step, and convergence is locally quadratic. Levenberg–Marquardt
damping (the diagonal of the Euclidean energy's Hessian) makes it global. The levels
$N_0, 2N_0, \dots$ start from the previous one's solution; their means are
extrapolated (Romberg, $O(h^4)$) until the estimated error is below the tolerance.
Every level lives in one buffer of `max_segments + 1` points per curve and is
evaluated on its own segments only (`jaxgeo._geodesic._levels`), so all levels are one
compiled program, traced once.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from .._custom_types import Point, Scalar
from .._geodesic._levels import assemble_masked, Buffer, cubic_refine, LevelEnergy, resample
from .._linalg import active_block_tridiagonal_solve, solve
from .._metric._base import AbstractMetric
from .._solution import RESULTS


Curves = Float[Array, "n max_points dim"]  # one `Buffer` per curve

# Damping (Nielsen's update): after an accepted step mu *= max(MIN_SHRINK,
# 1 - (2 gain - 1)^3); after a rejected one mu *= growth, and growth doubles with each
# rejection in a row. Above MAX_DAMPING the solve has diverged. A damped step converges
# linearly, at rate ~ mu: the damping falls by up to 10x a step (Nielsen's 3x, on the
# Poincare mean of 8 points, left the levels after the first converging tenfold a step).
INITIAL_DAMPING = 1e-3
MIN_SHRINK = 0.1
MAX_DAMPING = 1e12
# The levels' means: consecutive differences falling by about 4 (asymptotic, O(h^2))
# make |R_k - R_{k-1}| / 15 the error of R_k, doubled for safety.
ASYMPTOTIC_RATIO = (3.0, 5.5)
ESTIMATE_SAFETY = 2.0


class _Newton(NamedTuple):
    mean: Point
    curves: Curves  # the mean first, the point from `size` on
    value: Scalar
    damping: Scalar
    growth: Scalar
    num_steps: Int[Array, ""]
    converged: Bool[Array, ""]
    diverged: Bool[Array, ""]
    grad_norms: Float[Array, " steps"]  # the gradient's max-norm before every step


def _weighted_energy(level: LevelEnergy, curves: Curves, size, weights) -> Scalar:
    return weights @ jax.vmap(lambda c: level.value(c, size))(curves)


def _eliminate(diag, upper, rhs, size):
    """One curve's $A^{-1} [g, e_1 B^\top]$: one factorisation, $D + 1$ columns."""
    return active_block_tridiagonal_solve(diag, upper, rhs, size - 1)


def _newton_direction(level: LevelEnergy, curves: Curves, size, weights, damping):
    """The damped Newton step on all the curves (zero at their fixed ends and beyond
    their `size` segments), the gradient's max-norm and the predicted decrease, by the
    Schur complement on the mean. Each curve's rows are divided by its weight (the same
    step; a curve of weight zero still follows the mean as a geodesic)."""
    n, _, dim = curves.shape
    dtype = curves.dtype
    num_segments = size.astype(dtype)
    eye = jnp.eye(dim, dtype=dtype)
    g, h = jax.vmap(lambda c: level.segment_derivatives(c, size))(curves)
    grad, diag, upper, _ = jax.vmap(assemble_masked, (0, 0, None))(g, h, size)
    grad_mean, mean_block, coupling = g[:, 0, :dim], h[:, 0, :dim, :dim], h[:, 0, :dim, dim:]
    # Damping: mu times the diagonal of the Euclidean energy's Hessian (weighted).
    a_diag = diag + (2 * num_segments * damping * eye)[None, None]
    # A_i [z_i, Z_i] = [g_i, e_1 B_i^T]: B_i couples the mean (rows) and point 1 (columns)
    rhs = jnp.concatenate(
        [grad[..., None], jnp.zeros_like(diag).at[:, 0].set(jnp.swapaxes(coupling, 1, 2))],
        axis=-1,
    )
    # (vmapped: every curve has the same number of segments, so no solve waits on another)
    solved = jax.vmap(_eliminate, (0, 0, 0, None))(a_diag, upper, rhs, size)
    z, zs = solved[..., 0], solved[..., 1:]
    total = jnp.sum(weights)
    schur = (
        jnp.einsum("i,iab->ab", weights, mean_block)
        + num_segments * damping * total * eye
        - jnp.einsum("i,iab,ibc->ac", weights, coupling, zs[:, 0])
    )
    weighted_grad_mean = weights @ grad_mean
    rhs_mean = -weighted_grad_mean + jnp.einsum("i,iab,ib->a", weights, coupling, z[:, 0])
    delta_mean = solve(schur, rhs_mean)
    delta_interior = -z - jnp.einsum("ipab,b->ipa", zs, delta_mean)
    step = jnp.concatenate(
        [
            jnp.broadcast_to(delta_mean, (n, 1, dim)),
            delta_interior,
            jnp.zeros((n, 1, dim), dtype),
        ],
        axis=1,
    )
    grad_interior = weights[:, None, None] * grad
    linear = jnp.sum(grad_interior * delta_interior) + weighted_grad_mean @ delta_mean
    damped = (
        num_segments
        * damping
        * (
            2 * jnp.sum(weights[:, None, None] * delta_interior**2)
            + total * delta_mean @ delta_mean
        )
    )
    predicted = 0.5 * (-linear + damped)
    grad_norm = jnp.maximum(jnp.max(jnp.abs(grad_interior)), jnp.max(jnp.abs(weighted_grad_mean)))
    return step, grad_norm, predicted


def newton_level(
    level: LevelEnergy,
    weights: Float[Array, " n"],
    curves: Curves,
    size: Int[Array, ""],
    max_steps: int,
    rtol: float,
    atol: float,
    damping: Scalar,
) -> _Newton:
    """Newton's method on one level of `size` segments: the mean (`curves[:, 0]`, the
    same in every curve) and the curves' interiors, from the `damping` given, to the
    tolerances on the step and the value."""
    value = _weighted_energy(level, curves, size, weights)
    dtype = curves.dtype

    def step(state: _Newton) -> _Newton:
        delta, grad_norm, predicted = _newton_direction(
            level, state.curves, size, weights, state.damping
        )
        trial = state.curves + delta
        new_value = _weighted_energy(level, trial, size, weights)
        actual = state.value - new_value
        finite = jnp.isfinite(new_value) & jnp.all(jnp.isfinite(delta))
        gain = actual / jnp.where(predicted > 0, predicted, jnp.inf)
        noise = 64 * jnp.finfo(dtype).eps * jnp.abs(state.value)
        # At the round-off floor (or where only curves of weight zero move) the gain is
        # noise: the step is accepted as a full Newton step.
        at_floor = (jnp.abs(actual) <= noise) & (predicted <= noise)
        gain = jnp.where(at_floor, 1.0, gain)
        accept = finite & ((gain > 0) | at_floor)
        shrink = jnp.maximum(MIN_SHRINK, 1 - (2 * jnp.clip(gain, 0, 1) - 1) ** 3)
        damping = jnp.where(accept, state.damping * shrink, state.damping * state.growth)
        small = jnp.max(jnp.abs(delta) / (atol + rtol * jnp.abs(state.curves))) < 1
        converged = accept & small & (jnp.abs(actual) <= atol + rtol * jnp.abs(state.value))
        return _Newton(
            mean=jnp.where(accept, trial[0, 0], state.mean),
            curves=jnp.where(accept, trial, state.curves),
            value=jnp.where(accept, new_value, state.value),
            damping=damping,
            growth=jnp.where(accept, 2.0, 2 * state.growth).astype(dtype),
            num_steps=state.num_steps + 1,
            converged=converged,
            diverged=~converged & (damping > MAX_DAMPING),
            grad_norms=state.grad_norms.at[state.num_steps].set(grad_norm),
        )

    start = _Newton(
        mean=curves[0, 0],
        curves=curves,
        value=value,
        damping=jnp.asarray(damping, dtype),
        growth=jnp.asarray(2.0, dtype),
        num_steps=jnp.array(0),
        converged=jnp.array(False),
        diverged=~jnp.isfinite(value),
        grad_norms=jnp.full(max_steps, jnp.nan, dtype),
    )
    return jax.lax.while_loop(
        lambda s: ~s.converged & ~s.diverged & (s.num_steps < max_steps), step, start
    )


def _points(curve: Buffer, size: Int[Array, ""], num_points: int) -> Float[Array, "p dim"]:
    """A level's polyline (`size` segments of the buffer) at `num_points` uniform times."""
    ts = jnp.linspace(0, 1, num_points, dtype=curve.dtype) * size.astype(curve.dtype)
    i = jnp.clip(jnp.floor(ts).astype(int), 0, size - 1)
    s = (ts - i.astype(ts.dtype))[:, None]
    return (1 - s) * curve[i] + s * curve[i + 1]


class MeanLevels(NamedTuple):
    mean: Point  # extrapolated
    curves: Curves  # the last solved level's polylines, at `num_points` uniform times
    error_estimate: Scalar  # of the mean, in the metric's norm at the mean
    result: RESULTS
    num_steps: Int[Array, ""]
    num_segments: Int[Array, ""]
    grad_norms: Float[Array, "levels steps"]  # per level, before every Newton step


def newton_mean_levels(
    metric: AbstractMetric,
    xs: Float[Array, "n dim"],
    weights: Float[Array, " n"],
    init: Point,
    init_curves: Float[Array, "n points dim"],
    *,
    num_points: int,
    min_segments: int,
    max_segments: int,
    max_steps: int,
    rtol: float,
    newton_tol: float,
) -> MeanLevels:
    r"""The levels `min_segments`, twice as many, ... up to `max_segments`, each solved
    by `newton_level` (at most `max_steps` steps) from the previous one refined
    (`cubic_refine`); the means extrapolated, $R_k = (4 m_k - m_{k-1})/3$, until the
    estimated error of $R_k$ ($|R_k - R_{k-1}|$, or $\frac2{15}$ of it where the levels
    are asymptotic) is within `rtol` times the root mean square distance $\sqrt{2F}$, in
    the metric's norm at the mean. One `while_loop` over the levels: the level's size
    is traced, so the program is traced and compiled once."""
    dtype = xs.dtype
    num_levels = (max_segments // min_segments).bit_length()
    level = LevelEnergy(metric, "midpoint", min_segments)
    ends = init_curves.at[:, 0].set(init).at[:, -1].set(xs)
    curves = jax.vmap(lambda c: resample(c, min_segments, max_segments + 1))(ends)
    nan = jnp.array(jnp.nan, dtype)
    start = dict(
        index=jnp.array(0),
        size=jnp.array(min_segments),
        curves=curves,  # the next level's start
        solved=curves,  # the last level solved, of `num_segments`
        done=jnp.array(False),
        means=jnp.full((2, xs.shape[1]), nan),  # the last two levels' means
        extrapolated=jnp.full((2, xs.shape[1]), nan),  # R_{k-1}, R_k
        estimate=jnp.array(jnp.inf, dtype),
        result=RESULTS.successful,
        num_steps=jnp.array(0),
        num_segments=jnp.array(min_segments),
        count=jnp.array(0),
        damping=jnp.asarray(INITIAL_DAMPING, dtype),
        grad_norms=jnp.full((num_levels, max_steps), nan),
    )

    def solve_level(carry):
        size = carry["size"]
        solved = newton_level(
            level,
            weights,
            carry["curves"],
            size,
            max_steps,
            newton_tol,
            newton_tol,
            carry["damping"],
        )
        count = jnp.where(solved.converged, carry["count"] + 1, 0)
        prev_mean, last_mean = carry["means"]
        extrapolated = jnp.where(count >= 2, (4 * solved.mean - last_mean) / 3, solved.mean)
        change = extrapolated - carry["extrapolated"][1]
        ratio = jnp.linalg.norm(last_mean - prev_mean) / jnp.linalg.norm(solved.mean - last_mean)
        asymptotic = (ratio >= ASYMPTOTIC_RATIO[0]) & (ratio <= ASYMPTOTIC_RATIO[1])
        factor = jnp.where(asymptotic, ESTIMATE_SAFETY / 15, 1.0)
        lengths = jax.vmap(lambda c: level.lengths(c, size)[0])(solved.curves)
        scale = jnp.sqrt(weights @ lengths**2)
        estimate = jnp.where(count >= 3, factor * metric.norm(solved.mean, change), jnp.inf)
        # (at least the round-off of the mean: a mean on a point has scale zero)
        floor = 64 * jnp.finfo(dtype).eps * (scale + metric.norm(solved.mean, solved.mean))
        accurate = estimate <= rtol * scale + floor
        failure = RESULTS.where(
            solved.diverged, RESULTS.nonlinear_divergence, RESULTS.nonlinear_max_steps_reached
        )
        result = RESULTS.where(accurate, RESULTS.successful, RESULTS.unresolved_curve)
        last = carry["index"] == num_levels - 1
        # A level that did not converge (too coarse for the metric: long segments make
        # the discrete energy rough) is followed by the next, started afresh from the
        # initial curves; it fails the solve at the last level only.
        refined = jax.vmap(cubic_refine, (0, None))(solved.curves, size)
        afresh = jax.vmap(lambda c: resample(c, 2 * size, max_segments + 1))(ends)
        return dict(
            index=carry["index"] + 1,
            size=2 * size,
            curves=jnp.where(solved.converged, refined, afresh),
            solved=solved.curves,
            done=accurate | last,
            means=jnp.stack([last_mean, solved.mean]),
            extrapolated=jnp.stack([carry["extrapolated"][1], extrapolated]),
            estimate=estimate,
            result=RESULTS.where(solved.converged, result, failure),
            num_steps=carry["num_steps"] + solved.num_steps,
            num_segments=size,
            count=count,
            # the next level starts as lightly damped as this one ended
            damping=jnp.where(
                solved.converged,
                jnp.maximum(solved.damping, jnp.finfo(dtype).eps),
                INITIAL_DAMPING,
            ),
            grad_norms=carry["grad_norms"].at[carry["index"]].set(solved.grad_norms),
        )

    carry = jax.lax.while_loop(lambda c: ~c["done"], solve_level, start)
    out = jax.vmap(_points, (0, None, None))(carry["solved"], carry["num_segments"], num_points)
    return MeanLevels(
        mean=carry["extrapolated"][1],
        curves=out,
        error_estimate=carry["estimate"],
        result=carry["result"],
        num_steps=carry["num_steps"],
        num_segments=carry["num_segments"],
        grad_norms=carry["grad_norms"],
    )
