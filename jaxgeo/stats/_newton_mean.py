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

from .._custom_types import ScalarLike
from .._geodesic._levels import assemble_masked, Buffer, cubic_refine, LevelEnergy, resample
from .._geodesic._newton import REDAMP_FACTOR, REDAMP_FLOOR
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


class _Derivatives(NamedTuple):
    """Every curve's energy derivatives at its points, as a Newton step uses them."""

    grad: Float[Array, "n interior dim"]  # the interior points' gradients
    diag: Float[Array, "n interior dim dim"]  # their block-tridiagonal Hessians
    upper: Float[Array, "n couplings dim dim"]
    grad_mean: Float[Array, "n dim"]  # each curve's gradient in its first point (the mean)
    mean_block: Float[Array, "n dim dim"]  # and Hessian block
    coupling: Float[Array, "n dim dim"]  # the mean's and point 1's block


class _Newton(NamedTuple):
    means: Float[Array, "k dim"]
    curves: Curves  # each from its cluster's mean (first) to its point (from `size` on)
    value: Float[Array, " k"]  # each cluster's weighted energy
    damping: Float[Array, " k"]
    growth: Float[Array, " k"]
    shifts: Float[Array, " n"]  # each curve's extra damping (where its Hessian is indefinite)
    num_steps: Int[Array, ""]
    converged: Bool[Array, " k"]
    diverged: Bool[Array, " k"]
    grad_norms: Float[Array, "steps k"]  # the gradient's max-norm before every step
    derivatives: _Derivatives
    fresh: Bool[Array, ""]  # whether `derivatives` are at `curves` (else recomputed)


def _by_cluster(values, labels, num_clusters):
    """Sums over every cluster's curves: `(n, ...)` to `(k, ...)`."""
    return jax.ops.segment_sum(values, labels, num_segments=num_clusters)


def _cluster_max(values, labels, num_clusters):
    """Every cluster's maximum of the per-curve `values` (-inf for an empty one)."""
    return jax.ops.segment_max(values, labels, num_segments=num_clusters)


def _cluster_energies(level: LevelEnergy, curves: Curves, size, weights, labels, num_clusters):
    energies = jax.vmap(lambda c: level.value(c, size))(curves)
    return _by_cluster(weights * energies, labels, num_clusters)


def _eliminate(diag, upper, rhs, size):
    """One curve's $A^{-1} [g, e_1 B^\top]$: one factorisation, $D + 1$ columns."""
    return active_block_tridiagonal_solve(diag, upper, rhs, size - 1)


def _derivatives(level: LevelEnergy, curves: Curves, size) -> _Derivatives:
    dim = curves.shape[2]
    g, h = jax.vmap(lambda c: level.segment_derivatives(c, size))(curves)
    grad, diag, upper, _ = jax.vmap(assemble_masked, (0, 0, None))(g, h, size)
    return _Derivatives(grad, diag, upper, g[:, 0, :dim], h[:, 0, :dim, :dim], h[:, 0, :dim, dim:])


def _newton_direction(derivatives: _Derivatives, size, weights, labels, damping, shifts):
    """The damped Newton step on all the curves (zero at their fixed ends and beyond
    their `size` segments), every cluster's gradient max-norm and predicted decrease,
    and whether every curve's damped Hessian factorised, by the Schur complement on
    every cluster's mean (`damping`: one per cluster; the clusters are independent
    problems; `shifts`: one curve's more, where its own Hessian is indefinite -- a
    geodesic past a conjugate point -- so that one curve does not damp its cluster).
    Each curve's rows are divided by its weight (the same step; a curve of weight zero
    still follows its mean as a geodesic)."""
    grad, diag, upper, grad_mean, mean_block, coupling = derivatives
    n, _, dim = grad.shape
    k = damping.shape[0]
    dtype = grad.dtype
    num_segments = size.astype(dtype)
    eye = jnp.eye(dim, dtype=dtype)
    mu = damping[labels]  # (each curve's cluster's damping)
    curve_mu = mu + shifts
    # Damping: mu times the diagonal of the Euclidean energy's Hessian (weighted).
    a_diag = diag + (2 * num_segments * curve_mu)[:, None, None, None] * eye[None, None]
    # A_i [z_i, Z_i] = [g_i, e_1 B_i^T]: B_i couples the mean (rows) and point 1 (columns)
    rhs = jnp.concatenate(
        [grad[..., None], jnp.zeros_like(diag).at[:, 0].set(jnp.swapaxes(coupling, 1, 2))],
        axis=-1,
    )
    # (vmapped: every curve has the same number of segments, so no solve waits on another)
    solved = jax.vmap(_eliminate, (0, 0, 0, None))(a_diag, upper, rhs, size)
    z, zs = solved[..., 0], solved[..., 1:]
    factorised = jnp.all(jnp.isfinite(solved), axis=(1, 2, 3))
    total = _by_cluster(weights, labels, k)
    empty = total == 0
    schur = _by_cluster(
        weights[:, None, None]
        * (
            mean_block
            + (num_segments * mu)[:, None, None] * eye[None]
            - jnp.einsum("iab,ibc->iac", coupling, zs[:, 0])
        ),
        labels,
        k,
    )
    weighted_grad_mean = _by_cluster(weights[:, None] * grad_mean, labels, k)
    rhs_mean = -weighted_grad_mean + _by_cluster(
        weights[:, None] * jnp.einsum("iab,ib->ia", coupling, z[:, 0]), labels, k
    )
    # (an empty cluster keeps its mean)
    schur = jnp.where(empty[:, None, None], eye[None], schur)
    delta_means = jax.vmap(solve)(schur, jnp.where(empty[:, None], 0, rhs_mean))
    delta_mean = delta_means[labels]
    delta_interior = -z - jnp.einsum("ipab,ib->ipa", zs, delta_mean)
    step = jnp.concatenate(
        [delta_mean[:, None], delta_interior, jnp.zeros((n, 1, dim), dtype)], axis=1
    )
    grad_interior = weights[:, None, None] * grad
    linear = _by_cluster(jnp.sum(grad_interior * delta_interior, axis=(1, 2)), labels, k) + jnp.sum(
        weighted_grad_mean * delta_means, axis=1
    )
    damped = num_segments * (
        damping * total * jnp.sum(delta_means**2, axis=1)
        + 2 * _by_cluster(weights * curve_mu * jnp.sum(delta_interior**2, axis=(1, 2)), labels, k)
    )
    predicted = 0.5 * (-linear + damped)
    grad_norm = jnp.maximum(
        _cluster_max(jnp.max(jnp.abs(grad_interior), axis=(1, 2)), labels, k),
        jnp.max(jnp.abs(weighted_grad_mean), axis=1),
    )
    return step, delta_means, grad_norm, predicted, factorised


def newton_level(
    level: LevelEnergy,
    weights: Float[Array, " n"],
    labels: Int[Array, " n"],
    means: Float[Array, "k dim"],
    curves: Curves,
    size: Int[Array, ""],
    max_steps: int,
    rtol: ScalarLike,
    atol: ScalarLike,
    damping: Float[Array, " k"],
) -> _Newton:
    """Newton's method on one level of `size` segments: every cluster's mean (`means`,
    the first point of its curves; an empty cluster's too) and the curves' interiors,
    from the `damping` given, to the tolerances on the step and the value. The clusters
    are separate problems solved in one loop: each has its own damping and acceptance,
    and stops moving once it has converged (or diverged); the loop ends when all have."""
    num_clusters = damping.shape[0]
    dtype = curves.dtype

    def energies(curves):
        return _cluster_energies(level, curves, size, weights, labels, num_clusters)

    def finite_by_cluster(direction):
        delta, delta_means = direction[:2]
        finite_curve = jnp.all(jnp.isfinite(delta), axis=(1, 2))
        return (_by_cluster((~finite_curve).astype(int), labels, num_clusters) == 0) & jnp.all(
            jnp.isfinite(delta_means), axis=1
        )

    def step(state: _Newton) -> _Newton:
        active = ~state.converged & ~state.diverged
        # (after a step that no cluster accepted, the curves and so their derivatives
        # are those of the last step)
        derivatives = jax.lax.cond(
            state.fresh,
            lambda: state.derivatives,
            lambda: _derivatives(level, state.curves, size),
        )

        def redamp(damping, shifts, direction):
            """More damping where the damped Hessian is indefinite (NaN from the
            Cholesky factorisations): a curve's own (`shifts`, where its block did not
            factorise), else its cluster's (the mean's Schur complement)."""
            factorised = direction[-1]
            curve_bad = active[labels] & ~factorised
            cluster_bad = active & ~finite_by_cluster(direction)
            cluster_bad &= _by_cluster(curve_bad.astype(int), labels, num_clusters) == 0
            total = damping[labels] + shifts
            shifts = jnp.where(
                curve_bad & (total < MAX_DAMPING),
                jnp.maximum(REDAMP_FACTOR * total, REDAMP_FLOOR) - damping[labels],
                shifts,
            )
            cluster_bad &= damping < MAX_DAMPING
            damping = jnp.where(
                cluster_bad, jnp.maximum(REDAMP_FACTOR * damping, REDAMP_FLOOR), damping
            )
            more = jnp.any(curve_bad & (total < MAX_DAMPING)) | jnp.any(cluster_bad)
            return damping, shifts, more

        def attempt(carry):
            damping, shifts, _, _ = carry
            # Damp more within this step where the Hessian is indefinite: a
            # factorisation is much cheaper than a rejected step. (Where nothing needs
            # more damping, `redamp` leaves both as they were: the direction's.)
            direction = _newton_direction(derivatives, size, weights, labels, damping, shifts)
            damping, shifts, more = redamp(damping, shifts, direction)
            return damping, shifts, direction, more

        shapes = jax.eval_shape(
            lambda d, s: _newton_direction(derivatives, size, weights, labels, d, s),
            state.damping,
            state.shifts,
        )
        nothing = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)
        # (a curve's shift is relaxed tenfold a step, as the damping after a good step)
        relaxed = state.shifts / REDAMP_FACTOR
        relaxed = jnp.where(relaxed < REDAMP_FLOOR, 0, relaxed)
        damped, shifts, direction, _ = jax.lax.while_loop(
            lambda carry: carry[3], attempt, (state.damping, relaxed, nothing, jnp.array(True))
        )
        delta, delta_means, grad_norm, predicted, _ = direction
        trial = state.curves + delta
        new_value = energies(trial)
        actual = state.value - new_value
        finite = jnp.isfinite(new_value) & finite_by_cluster(direction)
        gain = actual / jnp.where(predicted > 0, predicted, jnp.inf)
        noise = 64 * jnp.finfo(dtype).eps * jnp.abs(state.value)
        # At the round-off floor (or where only curves of weight zero move) the gain is
        # noise: the step is accepted as a full Newton step.
        at_floor = (jnp.abs(actual) <= noise) & (predicted <= noise)
        gain = jnp.where(at_floor, 1.0, gain)
        accept = active & finite & ((gain > 0) | at_floor)
        shrink = jnp.maximum(MIN_SHRINK, 1 - (2 * jnp.clip(gain, 0, 1) - 1) ** 3)
        damping = jnp.where(
            active,
            jnp.where(accept, damped * shrink, jnp.maximum(damped * state.growth, REDAMP_FLOOR)),
            state.damping,
        )
        scaled = jnp.abs(delta) / (atol + rtol * jnp.abs(state.curves))
        small = _cluster_max(jnp.max(scaled, axis=(1, 2)), labels, num_clusters) < 1
        converged = accept & small & (jnp.abs(actual) <= atol + rtol * jnp.abs(state.value))
        take = accept[labels][:, None, None]
        return _Newton(
            means=jnp.where(accept[:, None], state.means + delta_means, state.means),
            curves=jnp.where(take, trial, state.curves),
            value=jnp.where(accept, new_value, state.value),
            damping=damping,
            growth=jnp.where(active, jnp.where(accept, 2.0, 2 * state.growth), state.growth).astype(
                dtype
            ),
            shifts=shifts,
            num_steps=state.num_steps + 1,
            converged=state.converged | converged,
            diverged=state.diverged | (active & ~converged & (damping > MAX_DAMPING)),
            grad_norms=state.grad_norms.at[state.num_steps].set(
                jnp.where(active, grad_norm, jnp.nan)
            ),
            derivatives=derivatives,
            fresh=~jnp.any(accept),
        )

    value = energies(curves)
    start = _Newton(
        means=means,
        curves=curves,
        value=value,
        damping=jnp.asarray(damping, dtype),
        growth=jnp.full(num_clusters, 2.0, dtype),
        shifts=jnp.zeros(curves.shape[0], dtype),
        num_steps=jnp.array(0),
        converged=jnp.zeros(num_clusters, bool),
        diverged=~jnp.isfinite(value),
        grad_norms=jnp.full((max_steps, num_clusters), jnp.nan, dtype),
        derivatives=jax.tree.map(
            lambda a: jnp.zeros(a.shape, a.dtype),
            jax.eval_shape(lambda c: _derivatives(level, c, size), curves),
        ),
        fresh=jnp.array(False),
    )
    return jax.lax.while_loop(
        lambda s: jnp.any(~s.converged & ~s.diverged) & (s.num_steps < max_steps), step, start
    )


def _points(curve: Buffer, size: Int[Array, ""], num_points: int) -> Float[Array, "p dim"]:
    """A level's polyline (`size` segments of the buffer) at `num_points` uniform times."""
    ts = jnp.linspace(0, 1, num_points, dtype=curve.dtype) * size.astype(curve.dtype)
    i = jnp.clip(jnp.floor(ts).astype(int), 0, size - 1)
    s = (ts - i.astype(ts.dtype))[:, None]
    return (1 - s) * curve[i] + s * curve[i + 1]


_each_where = jax.vmap(RESULTS.where, (0, None, None))  # one result per cluster


class Corrections(NamedTuple):
    r"""What Romberg's extrapolation added to a level's solution (the first of a ladder),
    carried to later solves on that level alone (`newton_mean_levels(single=True)`):
    the means' $R - m_N$ and the lengths' relative $R/L_N - 1$, for the `labels` they
    were solved with (a point since moved to another cluster takes its new cluster's
    average); `valid` once a ladder of levels was extrapolated for every cluster."""

    valid: Bool[Array, ""]
    size: Int[Array, ""]  # the level N
    labels: Int[Array, " n"]
    means: Float[Array, "k dim"]
    lengths: Float[Array, " n"]


def no_corrections(num_points: int, num_clusters: int, dim: int, dtype, size: int) -> Corrections:
    """`Corrections` before any ladder: not valid."""
    return Corrections(
        valid=jnp.array(False),
        size=jnp.array(size),
        labels=jnp.zeros(num_points, int),
        means=jnp.zeros((num_clusters, dim), dtype),
        lengths=jnp.zeros(num_points, dtype),
    )


def _carried_lengths(corrections: Corrections, labels, num_clusters):
    """Every point's relative length correction; a point whose cluster changed since
    takes its new cluster's average over the points that stayed (0 if none)."""
    stayed = labels == corrections.labels
    total = _by_cluster(jnp.where(stayed, corrections.lengths, 0), labels, num_clusters)
    count = _by_cluster(stayed.astype(total.dtype), labels, num_clusters)
    average = total / jnp.maximum(count, 1)
    return jnp.where(stayed, corrections.lengths, average[labels])


class MeanLevels(NamedTuple):
    means: Float[Array, "k dim"]  # extrapolated
    curves: Curves  # the last solved level's polylines, at `num_points` uniform times
    lengths: Float[Array, " n"]  # theirs, extrapolated from the last two levels
    error_estimates: Float[Array, " k"]  # of the means, in the metric's norm at each
    results: RESULTS  # one per cluster
    num_steps: Int[Array, ""]
    num_segments: Int[Array, ""]
    grad_norms: Float[Array, "levels steps k"]  # per level, before every Newton step
    corrections: Corrections  # of this ladder (or those it was given, if `single`)


def newton_mean_levels(
    metric: AbstractMetric,
    xs: Float[Array, "n dim"],
    weights: Float[Array, " n"],
    labels: Int[Array, " n"],
    inits: Float[Array, "k dim"],
    init_curves: Float[Array, "n points dim"],
    *,
    num_points: int,
    min_segments: int,
    max_segments: int,
    max_steps: int,
    rtol: ScalarLike,
    newton_tol: ScalarLike,
    corrections: Corrections | None = None,
    single: bool | Bool[Array, ""] = False,
) -> MeanLevels:
    r"""The weighted Fréchet means of the `k` clusters of `xs` (`labels`: every point's
    cluster; `weights` normalised within every cluster; `inits`: the initial means, and
    the means of empty clusters), each point's polyline to its own cluster's mean only.
    The levels `min_segments`, twice as many, ... up to `max_segments`, each solved by
    `newton_level` (at most `max_steps` steps) from the previous one refined
    (`cubic_refine`); every cluster's means extrapolated, $R_k = (4 m_k - m_{k-1})/3$,
    until the estimated error of $R_k$ ($|R_k - R_{k-1}|$, or $\frac2{15}$ of it where
    the levels are asymptotic) is within `rtol` times the cluster's root mean square
    distance $\sqrt{2F}$, in the metric's norm at its mean, for every cluster. One
    `while_loop` over the levels: the level's size is traced, so the program is traced
    and compiled once.

    `single` (traced; needs valid `corrections`): one level only, that of the
    `corrections`, which are added to its means and lengths (no error estimate: NaN)
    -- for iterations that need the means to the square root of the tolerance, where
    the corrections change little from one call to the next (k-means). A ladder
    returns its own corrections, relative to its first level (of the chain of converged
    levels it extrapolated; not valid where the clusters' chains start at different
    levels)."""
    dtype = xs.dtype
    num_clusters = inits.shape[0]
    num_levels = (max_segments // min_segments).bit_length()
    if corrections is None:
        corrections = no_corrections(xs.shape[0], num_clusters, xs.shape[1], dtype, min_segments)
    single = jnp.asarray(single) & corrections.valid
    first = jnp.where(single, corrections.size, min_segments)
    level = LevelEnergy(metric, "midpoint", min_segments)
    ends = init_curves.at[:, 0].set(inits[labels]).at[:, -1].set(xs)
    curves = jax.vmap(lambda c: resample(c, first, max_segments + 1))(ends)
    nan = jnp.full((num_clusters, xs.shape[1]), jnp.nan, dtype)
    empty = _by_cluster(weights, labels, num_clusters) == 0
    start = dict(
        index=jnp.round(jnp.log2(first // min_segments)).astype(int),
        size=first,
        curves=curves,  # the next level's start
        starts=inits,  # its means (the curves' first points)
        solved=curves,  # the last level solved, of `num_segments`
        done=jnp.array(False),
        means=jnp.stack([nan, nan]),  # the last two levels' means
        extrapolated=jnp.stack([nan, nan]),  # R_{k-1}, R_k
        estimates=jnp.full(num_clusters, jnp.inf, dtype),
        lengths=jnp.full((2, xs.shape[0]), jnp.nan, dtype),  # the last two levels'
        results=jax.tree.map(lambda r: jnp.full(num_clusters, r), RESULTS.successful),
        num_steps=jnp.array(0),
        num_segments=first,
        counts=jnp.zeros(num_clusters, int),
        # every cluster's first level of its current chain of converged levels
        base_means=nan,
        base_lengths=jnp.full(xs.shape[0], jnp.nan, dtype),
        base_sizes=jnp.full(num_clusters, min_segments),
        damping=jnp.full(num_clusters, INITIAL_DAMPING, dtype),
        grad_norms=jnp.full((num_levels, max_steps, num_clusters), jnp.nan, dtype),
    )

    def solve_level(carry):
        size = carry["size"]
        solved = newton_level(
            level,
            weights,
            labels,
            carry["starts"],
            carry["curves"],
            size,
            max_steps,
            newton_tol,
            newton_tol,
            carry["damping"],
        )
        counts = jnp.where(solved.converged, carry["counts"] + 1, 0)
        started = counts == 1
        prev_means, last_means = carry["means"]
        extrapolated = jnp.where(
            (counts >= 2)[:, None], (4 * solved.means - last_means) / 3, solved.means
        )
        change = extrapolated - carry["extrapolated"][1]
        ratio = jnp.linalg.norm(last_means - prev_means, axis=1) / jnp.linalg.norm(
            solved.means - last_means, axis=1
        )
        asymptotic = (ratio >= ASYMPTOTIC_RATIO[0]) & (ratio <= ASYMPTOTIC_RATIO[1])
        factor = jnp.where(asymptotic, ESTIMATE_SAFETY / 15, 1.0)
        lengths = jax.vmap(lambda c: level.lengths(c, size)[0])(solved.curves)
        scales = jnp.sqrt(_by_cluster(weights * lengths**2, labels, num_clusters))
        norms = jax.vmap(metric.norm)
        estimates = jnp.where(counts >= 3, factor * norms(solved.means, change), jnp.inf)
        # (at least the round-off of the mean: a mean on a point has scale zero)
        floors = 64 * jnp.finfo(dtype).eps * (scales + norms(solved.means, solved.means))
        accurate = (estimates <= rtol * scales + floors) | empty
        failures = _each_where(
            solved.diverged, RESULTS.nonlinear_divergence, RESULTS.nonlinear_max_steps_reached
        )
        results = _each_where(accurate | single, RESULTS.successful, RESULTS.unresolved_curve)
        last = carry["index"] == num_levels - 1
        # A level that did not converge (too coarse for the metric: long segments make
        # the discrete energy rough) is followed by the next, started afresh from the
        # initial curves; it fails the solve at the last level only.
        refined = jax.vmap(cubic_refine, (0, None))(solved.curves, size)
        afresh = jax.vmap(lambda c: resample(c, 2 * size, max_segments + 1))(ends)
        return dict(
            index=carry["index"] + 1,
            size=2 * size,
            curves=jnp.where(solved.converged[labels][:, None, None], refined, afresh),
            starts=jnp.where(solved.converged[:, None], solved.means, inits),
            solved=solved.curves,
            done=jnp.all(accurate) | last | single,
            means=jnp.stack([last_means, solved.means]),
            extrapolated=jnp.stack([carry["extrapolated"][1], extrapolated]),
            estimates=jnp.where(empty, 0, jnp.where(single, jnp.nan, estimates)),
            lengths=jnp.stack([carry["lengths"][1], lengths]),
            results=jax.vmap(RESULTS.where)(solved.converged, results, failures),
            num_steps=carry["num_steps"] + solved.num_steps,
            num_segments=size,
            counts=counts,
            base_means=jnp.where(started[:, None], solved.means, carry["base_means"]),
            base_lengths=jnp.where(started[labels], lengths, carry["base_lengths"]),
            base_sizes=jnp.where(started, size, carry["base_sizes"]),
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
    coarse, fine = carry["lengths"]
    extrapolated = carry["counts"][labels] >= 2
    lengths = jnp.where(extrapolated, (4 * fine - coarse) / 3, fine)
    base = carry["base_lengths"]
    relative = lengths / jnp.where(base > 0, base, 1) - 1
    means = carry["extrapolated"][1]
    carried = jnp.where(single, 1 + _carried_lengths(corrections, labels, num_clusters), 1)
    # (relative to the first level of every cluster's chain, the cheapest; one level for
    # all the clusters)
    sizes = carry["base_sizes"]
    size = jnp.max(jnp.where(empty, 0, sizes))
    ladder = Corrections(
        valid=jnp.all(((carry["counts"] >= 2) & (sizes == size)) | empty)
        & ~jnp.any(jnp.isnan(means)),
        size=jnp.maximum(size, min_segments),
        labels=labels,
        means=jnp.where(empty[:, None], 0, means - carry["base_means"]),
        lengths=jnp.where(extrapolated & (base > 0), relative, 0),
    )
    return MeanLevels(
        means=jnp.where(empty[:, None], inits, means + jnp.where(single, corrections.means, 0)),
        curves=out,
        lengths=lengths * carried,
        error_estimates=carry["estimates"],
        results=carry["results"],
        num_steps=carry["num_steps"],
        num_segments=carry["num_segments"],
        grad_norms=carry["grad_norms"],
        corrections=jax.tree.map(
            lambda given, own: jnp.where(single, given, own), corrections, ladder
        ),
    )
