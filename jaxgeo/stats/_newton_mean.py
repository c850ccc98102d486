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

$D + 1$ block-tridiagonal solves per curve: $O(n N D^4)$ a step, and convergence is
locally quadratic. Levenberg–Marquardt damping (the diagonal of the Euclidean energy's
Hessian) makes it global. The levels $N_0, 2N_0, \dots$ start from the previous one's
solution; their means are extrapolated (Romberg, $O(h^4)$) until the estimated error
is below the tolerance.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from .._curve import curve_energy, curve_length
from .._custom_types import Point, Scalar
from .._geodesic._base import refine
from .._geodesic._levels import resample
from .._geodesic._segments import segment_derivatives
from .._linalg import block_tridiagonal_solve
from .._metric._base import AbstractMetric
from .._sharding import map_solves
from .._solution import RESULTS


Curves = Float[Array, "n points dim"]

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
    curves: Curves  # (n, N + 1, D): the mean first, the points last
    value: Scalar
    damping: Scalar
    growth: Scalar
    num_steps: Int[Array, ""]
    converged: Bool[Array, ""]
    diverged: Bool[Array, ""]
    grad_norms: Float[Array, " steps"]  # the gradient's max-norm before every step


def _weighted_energy(metric: AbstractMetric, curves: Curves, weights) -> Scalar:
    return weights @ jax.vmap(lambda c: curve_energy(metric, c))(curves)


def _curve_derivatives(metric: AbstractMetric, curve):
    """Gradient and block-tridiagonal Hessian of $E_N$ w.r.t. all the curve's points:
    `(grad (N+1, D), diag (N+1, D, D), upper (N, D, D))`."""
    dim = curve.shape[1]
    _, g, h = segment_derivatives(metric, curve, "midpoint")
    zeros = jnp.zeros_like(curve)
    grad = zeros.at[:-1].add(g[:, :dim]).at[1:].add(g[:, dim:])
    diag = jnp.zeros(curve.shape + (dim,), curve.dtype)
    diag = diag.at[:-1].add(h[:, :dim, :dim]).at[1:].add(h[:, dim:, dim:])
    return grad, diag, h[:, :dim, dim:]


def _newton_direction(metric, curves, weights, damping):
    """The damped Newton step on all the curves `(n, N + 1, D)` (zero at their fixed
    ends), the gradient's max-norm and the predicted decrease, by the Schur complement on
    the mean. Each curve's rows are divided by its weight (the same step; a curve of
    weight zero still follows the mean as a geodesic)."""
    n, num_points, dim = curves.shape
    num_segments = num_points - 1
    eye = jnp.eye(dim, dtype=curves.dtype)
    grad, diag, upper = jax.vmap(lambda c: _curve_derivatives(metric, c))(curves)
    # Damping: mu times the diagonal of the Euclidean energy's Hessian (weighted).
    interior_damping = 2 * num_segments * damping * eye

    def eliminate(args):
        g, d, u = args  # one curve's
        a_diag, a_upper = d[1:-1] + interior_damping[None], u[1:-1]
        coupling = u[0]  # B_i: the mean (rows) and the first interior point (columns)
        rhs = [g[1:-1]] + [
            jnp.zeros_like(g[1:-1]).at[0].set(coupling[k]) for k in range(dim)
        ]  # A z = g, A Z[:, :, k] = e_1 B^T[:, k]
        solves = [block_tridiagonal_solve(a_diag, a_upper, r) for r in rhs]
        return solves[0], jnp.stack(solves[1:], axis=-1)

    z, zs = map_solves(eliminate, (grad, diag, upper))
    total = jnp.sum(weights)
    schur = (
        jnp.einsum("i,iab->ab", weights, diag[:, 0])
        + num_segments * damping * total * eye
        - jnp.einsum("i,iab,ibc->ac", weights, upper[:, 0], zs[:, 0])
    )
    grad_mean = weights @ grad[:, 0]
    rhs = -grad_mean + jnp.einsum("i,iab,ib->a", weights, upper[:, 0], z[:, 0])
    delta_mean = jnp.linalg.solve(schur, rhs)
    delta_interior = -z - jnp.einsum("ipab,b->ipa", zs, delta_mean)
    step = jnp.concatenate(
        [
            jnp.broadcast_to(delta_mean, (n, 1, dim)),
            delta_interior,
            jnp.zeros((n, 1, dim), curves.dtype),
        ],
        axis=1,
    )
    grad_interior = weights[:, None, None] * grad[:, 1:-1]
    linear = jnp.sum(grad_interior * delta_interior) + grad_mean @ delta_mean
    damped = (
        num_segments
        * damping
        * (
            2 * jnp.sum(weights[:, None, None] * delta_interior**2)
            + total * delta_mean @ delta_mean
        )
    )
    predicted = 0.5 * (-linear + damped)
    grad_norm = jnp.maximum(jnp.max(jnp.abs(grad_interior)), jnp.max(jnp.abs(grad_mean)))
    return step, grad_norm, predicted


def newton_level(
    metric: AbstractMetric,
    weights: Float[Array, " n"],
    curves: Curves,
    max_steps: int,
    rtol: float,
    atol: float,
    damping: Scalar,
) -> _Newton:
    """Newton's method on one level: the mean (`curves[:, 0]`, the same in every curve)
    and the interiors of the `curves`, from the `damping` given, to the tolerances on
    the step and the value."""
    value = _weighted_energy(metric, curves, weights)
    dtype = curves.dtype

    def step(state: _Newton) -> _Newton:
        delta, grad_norm, predicted = _newton_direction(
            metric, state.curves, weights, state.damping
        )
        trial = state.curves + delta
        new_value = _weighted_energy(metric, trial, weights)
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


def resample_curves(curves: Curves, num_segments: int) -> Float[Array, "n new_points dim"]:
    """The polylines at `num_segments + 1` uniform times (linear interpolation)."""
    return jax.vmap(lambda c: resample(c, num_segments, num_segments + 1))(curves)


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
    init_curves: Curves,
    *,
    num_points: int,
    min_segments: int,
    max_segments: int,
    max_steps: int,
    rtol: float,
    newton_tol: float,
) -> MeanLevels:
    r"""The levels `min_segments`, twice as many, ... up to `max_segments`, each solved
    by `newton_level` (at most `max_steps` steps) from the previous one refined; the
    means extrapolated, $R_k = (4 m_k - m_{k-1})/3$, until the estimated error of $R_k$
    ($|R_k - R_{k-1}|$, or $rac2{15}$ of it where the levels are asymptotic) is within
    `rtol` times the root mean square distance $\sqrt{2F}$, in the metric's norm at the
    mean. Later levels are skipped (`lax.cond`: each level is compiled once, with its
    static size)."""
    dtype = xs.dtype
    sizes = [min_segments * 2**k for k in range((max_segments // min_segments).bit_length())]
    curves = resample_curves(init_curves.at[:, 0].set(init).at[:, -1].set(xs), sizes[0])
    nan = jnp.array(jnp.nan, dtype)
    carry = dict(
        done=jnp.array(False),
        means=jnp.full((2, xs.shape[1]), nan),  # the last two levels' means
        extrapolated=jnp.full((2, xs.shape[1]), nan),  # R_{k-1}, R_k
        out=resample_curves(curves, num_points - 1),
        estimate=jnp.array(jnp.inf, dtype),
        result=RESULTS.successful,
        num_steps=jnp.array(0),
        num_segments=jnp.array(sizes[0]),
        count=jnp.array(0),
        damping=jnp.asarray(INITIAL_DAMPING, dtype),
    )
    grad_norms = []
    for index, size in enumerate(sizes):
        last = index == len(sizes) - 1

        def solve(carry, curves=curves, size=size, last=last):
            level = newton_level(
                metric, weights, curves, max_steps, newton_tol, newton_tol, carry["damping"]
            )
            count = jnp.where(level.converged, carry["count"] + 1, 0)
            prev_mean, last_mean = carry["means"]
            extrapolated = jnp.where(count >= 2, (4 * level.mean - last_mean) / 3, level.mean)
            change = extrapolated - carry["extrapolated"][1]
            ratio = jnp.linalg.norm(last_mean - prev_mean) / jnp.linalg.norm(level.mean - last_mean)
            asymptotic = (ratio >= ASYMPTOTIC_RATIO[0]) & (ratio <= ASYMPTOTIC_RATIO[1])
            factor = jnp.where(asymptotic, ESTIMATE_SAFETY / 15, 1.0)
            scale = jnp.sqrt(
                weights @ jax.vmap(lambda c: curve_length(metric, c))(level.curves) ** 2
            )
            estimate = jnp.where(count >= 3, factor * metric.norm(level.mean, change), jnp.inf)
            # (at least the round-off of the mean: a mean on a point has scale zero)
            floor = 64 * jnp.finfo(dtype).eps * (scale + metric.norm(level.mean, level.mean))
            accurate = estimate <= rtol * scale + floor
            failure = RESULTS.where(
                level.diverged, RESULTS.nonlinear_divergence, RESULTS.nonlinear_max_steps_reached
            )
            result = RESULTS.where(accurate, RESULTS.successful, RESULTS.unresolved_curve)
            new = dict(
                done=accurate | ~level.converged | last,
                means=jnp.stack([last_mean, level.mean]),
                extrapolated=jnp.stack([carry["extrapolated"][1], extrapolated]),
                out=resample_curves(level.curves, num_points - 1),
                estimate=estimate,
                result=RESULTS.where(level.converged, result, failure),
                num_steps=carry["num_steps"] + level.num_steps,
                num_segments=jnp.array(size),
                count=count,
                # the next level starts as lightly damped as this one ended
                damping=jnp.maximum(level.damping, jnp.finfo(dtype).eps),
            )
            return new, level.curves, level.grad_norms

        def skip(carry, curves=curves):
            return carry, curves, jnp.full(max_steps, jnp.nan, dtype)

        carry, solved, norms = jax.lax.cond(carry["done"], skip, solve, carry)
        grad_norms.append(norms)
        if not last:
            curves = jax.vmap(refine)(solved)  # every segment halved
    return MeanLevels(
        mean=carry["extrapolated"][1],
        curves=carry["out"],
        error_estimate=carry["estimate"],
        result=carry["result"],
        num_steps=carry["num_steps"],
        num_segments=carry["num_segments"],
        grad_norms=jnp.stack(grad_norms),
    )
