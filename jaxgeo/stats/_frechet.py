r"""The weighted Fréchet (Karcher) mean $\bar x = \arg\min_m F(m)$,
$F(m) = \frac12 \sum_i w_i\, d(m, x_i)^2$ (weights normalised to sum to one), on any
metric."""

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, PyTree

from .._checks import check_integer, check_levels, check_value
from .._curve import curve_energy, straight_line
from .._custom_types import Input, Point, Scalar
from .._geodesic._base import AbstractBoundarySolver, BoundaryProblem, polyline_solution
from .._geodesic._distance import log_map
from .._geodesic._energy import parametrisation
from .._geodesic._ivp import exp_map
from .._metric._base import AbstractMetric
from .._numerics import LEVEL_TOL, MEAN_TOL, POLYLINE_TOL
from .._sharding import map_solves
from .._solution import GeodesicSolution, raise_outside_jit, RESULTS
from ._newton_mean import newton_mean_levels, no_corrections


class FrechetMean(eqx.Module):
    r"""A weighted Fréchet mean, as [`jaxgeo.stats.frechet_mean`][] returns it.

    **Attributes:**

    - `mean`: the mean $\bar x$, shape `(D,)`.
    - `variance`: $\sum_i w_i\, d(\bar x, x_i)^2$ (normalised weights).
    - `geodesics`: the geodesics from the mean to every point, a batched
      [`jaxgeo.GeodesicSolution`][] (leading axis: the points); `geodesics.vs[:, 0]` are
      the log maps $\log_{\bar x}(x_i)$, `geodesics.length` the distances.
    - `result`: a [`jaxgeo.RESULTS`][]; `RESULTS.successful` if the iteration
      converged and every geodesic was solved.
    - `stats`: the solver's (`num_steps`, iterations, rejected ones included;
      `max_steps`; [`jaxgeo.stats.NewtonMean`][] adds `num_segments`, `error_estimate`
      and `grad_norms`) and `grad_norm`, the norm
      $\|\sum_i w_i \log_{\bar x}(x_i)\|_{G(\bar x)}$ of the Riemannian gradient of
      $-F$ at the mean (zero at a mean).
    """

    mean: Point
    variance: Scalar
    geodesics: GeodesicSolution
    result: RESULTS
    stats: dict[str, Any]


def initial_curves(curves, xs, init, num_points):
    """Initial polylines `(n, num_points, D)` from the initial mean to every point
    (default: straight lines)."""
    if curves is None:
        return jax.vmap(lambda x: straight_line(init, x, num_points))(xs)
    curves = jnp.asarray(curves, xs.dtype)
    expected = (xs.shape[0], num_points, xs.shape[1])
    if curves.shape != expected:
        raise ValueError(
            f"frechet_mean: init_curves must have shape (n, num_points, D) = {expected}, "
            f"got {curves.shape}"
        )
    return curves


def _check_inputs(xs, weights, init):
    xs = jnp.asarray(xs)
    if xs.ndim != 2 or xs.shape[0] == 0 or xs.shape[1] == 0:
        raise ValueError(f"frechet_mean: expected points xs of shape (n, D), got {xs.shape}")
    if not jnp.issubdtype(xs.dtype, jnp.floating):
        raise ValueError(f"frechet_mean: xs must have a floating dtype, got {xs.dtype}")
    n = xs.shape[0]
    if weights is None:
        weights = jnp.ones(n, xs.dtype)
    weights = jnp.asarray(weights, xs.dtype)
    if weights.shape != (n,):
        raise ValueError(
            f"frechet_mean: weights must have shape ({n},), one per point, got {weights.shape}"
        )
    check_value(
        weights,
        lambda w: jnp.all(w >= 0) & (jnp.sum(w) > 0) & jnp.all(jnp.isfinite(w)),
        "frechet_mean: the weights must be finite, non-negative and not all zero",
    )
    if init is None:
        init = weights @ xs / jnp.sum(weights)  # the Euclidean weighted mean
    init = jnp.asarray(init, xs.dtype)
    if init.shape != xs.shape[1:]:
        raise ValueError(f"frechet_mean: init must have shape {xs.shape[1:]}, got {init.shape}")
    return xs, weights, init


def first_failure(results: RESULTS, counts=None) -> RESULTS:
    """The first failed result of a batch of results (among those where `counts`, a
    boolean mask, is true), or `successful`."""
    failed = results != RESULTS.successful
    if counts is not None:
        failed = failed & counts
    first = jax.tree.map(lambda r: r[jnp.argmax(failed)], results)
    return RESULTS.where(jnp.any(failed), first, RESULTS.successful)


def _gradient(weights, geodesics: GeodesicSolution) -> Array:
    r"""$\sum_i w_i \log_m x_i$: minus the Riemannian gradient of $F$ at the mean $m$
    that the `geodesics` start from."""
    return weights @ geodesics.vs[:, 0]


class _KarcherState(eqx.Module):
    mean: Point
    geodesics: GeodesicSolution
    objective: Scalar  # F = 1/2 sum w d^2
    step_size: Scalar
    num_steps: Array
    done: Array


def _karcher_mean(metric, xs, weights, init, init_curves, num_points, max_steps, rtol, solver):
    r"""Riemannian gradient descent $m \leftarrow \exp_m(\tau \sum_i w_i \log_m x_i)$
    ($-\sum_i w_i \log_m x_i$ is the Riemannian gradient of $F$): $\tau = 1$ is the
    Karcher step, exact on flat spaces; a step that does not lower $F$ is retried with
    half the step size (curved spaces, far from the mean), and an accepted one doubles
    it back towards 1. The log maps of a step start from the previous geodesics, moved
    to the new mean: a few solver iterations each instead of a solve from the straight
    line (on the digit VAE's metric of `experiments.manifold_statistics`, 2-11 Newton
    steps per log map; a Karcher step 1-5 s instead of about 15 s)."""

    def logs_at(m, inits):
        def one(x, init):
            return log_map(
                metric, m, x, solver=solver, num_points=num_points, init=init, throw=False
            )

        sols = map_solves(lambda pair: one(*pair), (xs, inits))
        ok = jnp.all(sols.result == RESULTS.successful)
        objective = 0.5 * jnp.sum(weights * sols.length**2)
        return sols, jnp.where(ok, objective, jnp.nan)

    def moved(geodesics, m):
        """The previous geodesics as initial polylines from the new mean `m`: each
        shifted by $(1 - t)(m - m_{old})$, so a step costs a few solver iterations."""
        ts = jnp.linspace(0.0, 1.0, num_points, dtype=xs.dtype)
        shift = (1 - ts)[None, :, None] * (m[None, None] - geodesics.xs[:, :1])
        return geodesics.xs + shift

    def converged(mean, geodesics, objective):
        return metric.norm(mean, _gradient(weights, geodesics)) <= rtol * jnp.sqrt(2 * objective)

    sols, objective = logs_at(init, init_curves)
    state = _KarcherState(
        mean=init,
        geodesics=sols,
        objective=objective,
        step_size=jnp.asarray(1.0, xs.dtype),
        num_steps=jnp.array(0),
        done=converged(init, sols, objective) | ~jnp.isfinite(objective),
    )

    def body(state):
        gradient = _gradient(weights, state.geodesics)
        move = state.step_size * gradient
        trial = exp_map(metric, state.mean, move, throw=False)
        sols, objective = logs_at(trial, moved(state.geodesics, trial))
        accept = jnp.isfinite(objective) & (objective <= state.objective)
        # The floor of the log maps' accuracy: a finite trial, a move shorter than the
        # tolerance that does not lower F, from a gradient within sqrt(rtol) of zero
        # (its error, that of the log maps, keeps F from falling further).
        scale = jnp.sqrt(2 * state.objective)
        at_floor = (
            ~accept
            & jnp.isfinite(objective)
            & (metric.norm(state.mean, move) <= rtol * scale)
            & (metric.norm(state.mean, gradient) <= jnp.sqrt(rtol) * scale)
        )

        def keep(new, old):
            return jax.tree.map(lambda a, b: jnp.where(accept, a, b), new, old)

        mean, geodesics, objective = keep(
            (trial, sols, objective), (state.mean, state.geodesics, state.objective)
        )
        step_size = jnp.where(accept, jnp.minimum(2 * state.step_size, 1.0), 0.5 * state.step_size)
        return _KarcherState(
            mean=mean,
            geodesics=geodesics,
            objective=objective,
            step_size=step_size,
            num_steps=state.num_steps + 1,
            done=(accept & converged(mean, geodesics, objective)) | at_floor,
        )

    state = jax.lax.while_loop(lambda s: ~s.done & (s.num_steps < max_steps), body, state)
    geodesic_result = first_failure(state.geodesics.result)
    result = RESULTS.where(
        geodesic_result == RESULTS.successful,
        RESULTS.where(state.done, RESULTS.successful, RESULTS.max_steps_reached),
        geodesic_result,
    )
    return state.mean, state.geodesics, result, state.num_steps


def _energy_mean(metric, xs, weights, init, init_curves, num_points, max_steps, rtol):
    r"""One minimisation, no ODE solves: the centre $m$ and the interior points of the
    polylines from $m$ to every $x_i$ together, minimising $\sum_i w_i E(c_i)$ (L-BFGS;
    each polyline in the preconditioned coordinates of [`jaxgeo.EnergyDescent`][]). At
    the minimum every $c_i$ is a discrete geodesic, with $E(c_i) = \frac12 L_i^2$, so
    $m$ minimises $\frac12\sum_i w_i L_i^2$: the Fréchet mean of the discrete
    distances, $O(1/N^2)$ from the exact one (second order is tested)."""
    to_curve, from_curve = parametrisation(num_points, xs.dtype, True)

    def curves(y):
        centre, offsets = y
        return jax.vmap(lambda z, x: to_curve(z, centre, x))(offsets, xs)

    def objective(y, args):
        del args
        energies = jax.vmap(lambda c: curve_energy(metric, c))(curves(y))
        return jnp.sum(weights * energies)

    # (the curves' ends: the initial mean and the points)
    ends = init_curves.at[:, 0].set(init).at[:, -1].set(xs)
    y0 = (init, jax.vmap(from_curve)(ends))
    sol = optx.minimise(
        objective, optx.LBFGS(rtol=rtol, atol=rtol), y0, max_steps=max_steps, throw=False
    )
    mean = sol.value[0]

    def solution(curve):
        problem = BoundaryProblem(metric, mean, curve[-1], curve, max_steps=max_steps)
        return polyline_solution(
            problem, curve, RESULTS.promote(sol.result), sol.stats["num_steps"]
        )

    geodesics = jax.vmap(solution)(curves(sol.value))
    result = first_failure(geodesics.result)
    return mean, geodesics, result, sol.stats["num_steps"]


class AbstractMeanSolver(eqx.Module):
    """A method for the Fréchet mean: [`jaxgeo.stats.NewtonMean`][] (the default),
    [`jaxgeo.stats.KarcherMean`][] or [`jaxgeo.stats.EnergyMean`][]. Solvers hold
    configuration only; [`jaxgeo.stats.frechet_mean`][] is the entry point."""

    @abc.abstractmethod
    def solve(
        self, metric: AbstractMetric, xs, weights, init, init_curves, num_points: int
    ) -> tuple[Point, GeodesicSolution, RESULTS, dict[str, Any]]:
        """The mean, the geodesics from it to every point, the result and `stats`
        (at least `num_steps` and `max_steps`)."""

    @abc.abstractmethod
    def cluster_means(
        self,
        metric: AbstractMetric,
        xs,
        labels,
        centres,
        curves,
        num_points: int,
        coarse,
        state: PyTree = None,
    ) -> tuple[Array, Array, Array, RESULTS, Array, PyTree]:
        """The Fréchet means of the clusters of `xs` (`labels`: every point's cluster,
        equal weights), from the `centres` (shape `(k, D)`; an empty cluster keeps its
        own) and the polylines `curves` from every point's centre to it (shape
        `(n, num_points, D)`); `coarse` (traced): the clusters may still change, so the
        square root of the tolerance will do; `state`: what the previous call returned
        (first `cluster_state`). Returns the means, the polylines from every point's new
        mean to it and their lengths (to the tolerance), one result and one error
        estimate (NaN if the solver gives none) per cluster, and the state for the
        next call."""

    def cluster_state(self, xs: Array, num_clusters: int) -> PyTree:
        """The `state` of the first `cluster_means` call of an iteration such as
        [`jaxgeo.stats.k_means`][]'s: none, by default."""
        del xs, num_clusters
        return None


def _one_cluster_at_a_time(solver, metric, xs, labels, centres, curves, num_points):
    """`cluster_means` by one `solve` per cluster, over all the points (those of the
    other clusters with weight zero, from straight lines), always to the solver's
    tolerance."""
    k = centres.shape[0]
    members = labels[None] == jnp.arange(k)[:, None]  # (k, n)
    empty = ~jnp.any(members, axis=1)

    def one(args):
        centre, is_member = args
        # (an empty cluster: all the points, a mean that is then dropped)
        weights = (is_member | ~jnp.any(is_member)).astype(xs.dtype)
        lines = initial_curves(None, xs, centre, num_points)
        inits = jnp.where(is_member[:, None, None], curves, lines)
        mean, geodesics, result, _ = solver.solve(
            metric, xs, weights / jnp.sum(weights), centre, inits, num_points
        )
        return mean, geodesics.xs, geodesics.length, result

    means, all_curves, lengths, results = map_solves(one, (centres, members))
    means = jnp.where(empty[:, None], centres, means)
    own = labels, jnp.arange(xs.shape[0])
    return means, all_curves[own], lengths[own], results, jnp.full(k, jnp.nan, xs.dtype)


class NewtonMean(AbstractMeanSolver):
    r"""Newton's method on the mean and the discrete geodesics to all the points at
    once, refined level by level and extrapolated.

    At $N$ segments per polyline, the mean $m$ and the polylines' interior points
    minimise $\sum_i w_i E_N(c_i)$, whose Hessian is an arrowhead (each polyline's
    block-tridiagonal Hessian, coupled to the others only through the mean's
    $D \times D$ block): a Newton step eliminates the polylines by a Schur complement on
    the mean, $O(n N D^3)$, and converges quadratically near the mean
    (`stats["grad_norms"]`). Levenberg–Marquardt damping makes it global. Levels of
    `min_segments`, twice as many, ... up to `max_segments` segments each start from
    the previous one (a level that does not converge, e.g. too coarse for long curves on
    a learned metric, is followed by the next started afresh from the initial curves);
    their means are extrapolated (Romberg, fourth order) until the estimated error is
    within `rtol` $\sqrt{2F}$ (in the metric's norm at the mean;
    `stats["error_estimate"]`), else `RESULTS.unresolved_curve`. The geodesics from the
    mean are then [`jaxgeo.log_map`][]s started from the last level's polylines
    (`geodesic_solver`, default [`jaxgeo.Richardson`][]). All levels share one
    buffer of `max_segments + 1` points per polyline and are evaluated on their own
    segments only: one compiled program, whatever the number of levels.

    **Arguments:**

    - `rtol`: the mean's tolerance, relative to $\sqrt{2F}$ (default 1e-7 in float64,
      1e-4 in float32).
    - `min_segments`, `max_segments`: the first and the finest level (powers of two,
      `max_segments` at least 4 `min_segments`: three levels give the first estimate).
    - `max_steps`: Newton steps per level.
    - `geodesic_solver`: the boundary solver of the final log maps, e.g.
      [`jaxgeo.Shortest`][].

    `stats`: `num_steps` (all levels), `max_steps`, `num_segments` (the last level's),
    `error_estimate` (absolute, in the metric's norm at the mean) and `grad_norms`
    (levels x steps: the max-norm of the energy's gradient before every Newton step,
    NaN after a level's last).
    """

    rtol: float | None = None
    min_segments: int = 16
    max_segments: int = 1024
    max_steps: int = 64
    geodesic_solver: AbstractBoundarySolver | None = None

    def __check_init__(self):
        check_levels("NewtonMean", self.min_segments, self.max_segments, smallest=2)
        check_integer(self.max_steps, "NewtonMean: max_steps", minimum=1)

    def solve(self, metric, xs, weights, init, init_curves, num_points):
        rtol = MEAN_TOL(xs.dtype) if self.rtol is None else self.rtol
        levels = newton_mean_levels(
            metric,
            xs,
            weights,
            jnp.zeros(xs.shape[0], int),
            init[None],
            init_curves,
            num_points=num_points,
            min_segments=self.min_segments,
            max_segments=self.max_segments,
            max_steps=self.max_steps,
            rtol=rtol,
            newton_tol=LEVEL_TOL(xs.dtype),
        )

        mean = levels.means[0]

        def one(pair):
            x, curve = pair
            return log_map(
                metric,
                mean,
                x,
                solver=self.geodesic_solver,
                num_points=num_points,
                init=curve,
                throw=False,
            )

        geodesics = map_solves(one, (xs, levels.curves))
        level_result = first_failure(levels.results)
        result = RESULTS.where(
            level_result == RESULTS.successful, first_failure(geodesics.result), level_result
        )
        stats = dict(
            num_steps=levels.num_steps,
            max_steps=self.max_steps,
            num_segments=levels.num_segments,
            error_estimate=levels.error_estimates[0],
            grad_norms=levels.grad_norms[..., 0],
        )
        return mean, geodesics, result, stats

    def cluster_state(self, xs, num_clusters):
        return no_corrections(xs.shape[0], num_clusters, xs.shape[1], xs.dtype, self.min_segments)

    def cluster_means(self, metric, xs, labels, centres, curves, num_points, coarse, state=None):
        k = centres.shape[0]
        rtol = MEAN_TOL(xs.dtype) if self.rtol is None else self.rtol
        counts = jnp.zeros(k, xs.dtype).at[labels].add(1)
        levels = newton_mean_levels(
            metric,
            xs,
            1 / counts[labels],
            labels,
            centres,
            curves,
            num_points=num_points,
            min_segments=self.min_segments,
            max_segments=self.max_segments,
            max_steps=self.max_steps,
            rtol=jnp.where(coarse, rtol**0.5, rtol),
            # (coarse: Newton stops a step earlier, after a step of sqrt(tol), which in
            # its quadratic regime leaves an error near tol, far below sqrt(rtol))
            newton_tol=jnp.where(coarse, LEVEL_TOL(xs.dtype) ** 0.5, LEVEL_TOL(xs.dtype)),
            # coarse, after a ladder: its first level alone, with the ladder's Romberg
            # corrections (1,000 learned-ring points, k = 2: a coarse iteration 3.4 s ->
            # 0.8 s, the same labels)
            corrections=state,
            single=coarse,
        )
        return (
            levels.means,
            levels.curves,
            levels.lengths,
            levels.results,
            levels.error_estimates,
            levels.corrections,
        )


class KarcherMean(AbstractMeanSolver):
    r"""Riemannian gradient descent $m \leftarrow \exp_m(\tau\sum_i w_i \log_m x_i)$ with
    [`jaxgeo.log_map`][] (warm-started from the previous step's geodesics) and
    [`jaxgeo.exp_map`][]; the step $\tau$ starts at 1 (exact in one step on flat
    spaces), halves when $F$ does not decrease and doubles back after a success. Stops
    when $\|\sum_i w_i\log_m x_i\|_{G(m)} \le$ `rtol` $\sqrt{2F}$, or when a step
    shorter than that fails to lower $F$ while the gradient is below
    $\sqrt{\text{rtol}}\sqrt{2F}$ (the floor of the log maps' accuracy). Converges
    linearly (slowly on flat, anisotropic objectives).

    **Arguments:** `rtol` (default 1e-7 in float64, 1e-4 in float32), `max_steps`
    (Karcher steps, each a batch of log maps and an exp map), `geodesic_solver` (of
    the log maps, default [`jaxgeo.Richardson`][]; e.g. [`jaxgeo.Shortest`][]).
    """

    rtol: float | None = None
    max_steps: int = 64
    geodesic_solver: AbstractBoundarySolver | None = None

    def __check_init__(self):
        check_integer(self.max_steps, "KarcherMean: max_steps", minimum=0)

    def solve(self, metric, xs, weights, init, init_curves, num_points):
        rtol = MEAN_TOL(xs.dtype) if self.rtol is None else self.rtol
        mean, geodesics, result, num_steps = _karcher_mean(
            metric,
            xs,
            weights,
            init,
            init_curves,
            num_points,
            self.max_steps,
            rtol,
            self.geodesic_solver,
        )
        return mean, geodesics, result, dict(num_steps=num_steps, max_steps=self.max_steps)

    def cluster_means(self, metric, xs, labels, centres, curves, num_points, coarse, state=None):
        del coarse
        means = _one_cluster_at_a_time(self, metric, xs, labels, centres, curves, num_points)
        return *means, state


class EnergyMean(AbstractMeanSolver):
    r"""One minimisation, no ODE solves: the centre and all the discrete geodesics to
    the points (`num_points` per polyline) minimised together by L-BFGS: the mean of
    the discrete distances, $O(1/N^2)$ from the exact one.

    **Arguments:** `rtol` (default: the polyline tolerance), `max_steps` (L-BFGS
    steps)."""

    rtol: float | None = None
    max_steps: int = 4096

    def __check_init__(self):
        check_integer(self.max_steps, "EnergyMean: max_steps", minimum=0)

    def solve(self, metric, xs, weights, init, init_curves, num_points):
        rtol = POLYLINE_TOL(xs.dtype) if self.rtol is None else self.rtol
        mean, geodesics, result, num_steps = _energy_mean(
            metric, xs, weights, init, init_curves, num_points, self.max_steps, rtol
        )
        return mean, geodesics, result, dict(num_steps=num_steps, max_steps=self.max_steps)

    def cluster_means(self, metric, xs, labels, centres, curves, num_points, coarse, state=None):
        del coarse
        means = _one_cluster_at_a_time(self, metric, xs, labels, centres, curves, num_points)
        return *means, state


def frechet_mean(
    metric: AbstractMetric,
    xs: Input,
    weights: Input | None = None,
    *,
    solver: AbstractMeanSolver | None = None,
    init: Input | None = None,
    init_curves: Input | None = None,
    num_points: int = 129,
    throw: bool = True,
) -> FrechetMean:
    r"""The weighted Fréchet (Karcher) mean of the points `xs` under `metric`: the
    minimiser of $F(m) = \frac12\sum_i w_i\, d(m, x_i)^2$ (the weights normalised to sum
    to one; default equal), a local one found from `init` (default: the Euclidean
    weighted mean of the points), by `solver`:

    - [`jaxgeo.stats.NewtonMean`][] (default): Newton's method on the mean and all the
      discrete geodesics at once (quadratic convergence), refined and extrapolated
      until the mean's estimated error is below 1e-7 $\sqrt{2F}$ (float64);
    - [`jaxgeo.stats.KarcherMean`][]: Riemannian gradient descent with log and exp
      maps;
    - [`jaxgeo.stats.EnergyMean`][]: one L-BFGS minimisation, $O(1/N^2)$.

    `init_curves`, shape `(n, num_points, D)`: the initial polylines from `init` to every
    point (default: straight lines), e.g. from [`jaxgeo.graph_geodesic`][] where several
    geodesics join two points, or the `geodesics.xs` of an earlier mean; they select
    which geodesics (and so which local mean) are found. `num_points`: the points of
    the returned geodesics (and of `EnergyMean`'s polylines). Under `jax.vmap` pass
    `throw=False` and check `result`.

    **Returns:** a [`jaxgeo.stats.FrechetMean`][].
    """
    if solver is None:
        solver = NewtonMean()
    elif not isinstance(solver, AbstractMeanSolver):
        raise ValueError(
            "frechet_mean: solver must be a jaxgeo.stats.AbstractMeanSolver (NewtonMean(), "
            f"KarcherMean(), EnergyMean()), got {type(solver).__name__}"
        )
    if num_points < 3:
        raise ValueError(f"frechet_mean: num_points must be at least 3, got {num_points}")
    xs, weights, init = _check_inputs(xs, weights, init)
    init_curves = initial_curves(init_curves, xs, init, num_points)
    return _frechet_mean(
        metric,
        xs,
        weights / jnp.sum(weights),
        init,
        init_curves,
        solver,
        num_points=num_points,
        throw=throw,
    )


@raise_outside_jit
def _frechet_mean(
    metric, xs, weights, init, init_curves, solver, *, num_points, throw=True
) -> FrechetMean:
    del throw  # (raised outside the compiled program by `raise_outside_jit`)
    mean, geodesics, result, stats = solver.solve(
        metric, xs, weights, init, init_curves, num_points
    )
    grad = _gradient(weights, geodesics)
    variance = jnp.sum(weights * geodesics.length**2)
    # (Traced weights that are invalid make the objective NaN.)
    result = RESULTS.where(
        jnp.isfinite(variance) | (result != RESULTS.successful),
        result,
        RESULTS.nonfinite_arguments,
    )
    return FrechetMean(
        mean=mean,
        variance=variance,
        geodesics=geodesics,
        result=result,
        stats=dict(stats, grad_norm=metric.norm(mean, grad)),
    )
