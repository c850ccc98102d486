"""Bad input across the public API, as one table: each case must end in a clear error
naming the problem (`error`), a failed `result` or NaN naming the cause (`failed`), or
the right answer (`value`) — never a silent wrong value, a hang or an error from deep
inside JAX. Checkpoint corruption, the training loop's and the samplers' bad input are
cases too; the cases that compile a solver in a slow way are marked slow."""

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial
from typing import Any, Literal

import jax
import jax.numpy as jnp
import jaxtyping
import numpy as np
import optax
import pytest

import jaxgeo as jg

from .helpers import poincare, poincare_semicircle_geodesic, stein_gaussian


@dataclass(frozen=True)
class Case:
    """`call()` and what it must end in: `error` (an exception whose message matches
    `match`), `failed` (a `RESULTS` equal to `result`, or an array of NaNs) or `value`
    (`call()` returns True: the right answer)."""

    call: Callable[[], Any]
    outcome: Literal["error", "failed", "value"]
    match: str = ""
    result: Any = None
    slow: bool = False


EYE = jnp.eye(2)
X0, X1 = jnp.array([-1.0, 0.0]), jnp.array([1.0, 0.5])
ONES = jnp.ones(2)
EUCLID = jg.Euclidean(2)
R = jg.RESULTS
# The metric is NaN on the strip |x_0| < 1/2: no geodesic crosses it.
NAN_STRIP = jg.MatrixMetric(
    lambda x: jnp.eye(2, dtype=x.dtype) * jnp.where(jnp.abs(x[0]) < 0.5, jnp.nan, 1.0)
)
LEFT, RIGHT = jnp.array([-1.0, 0.0]), jnp.array([1.0, 0.0])
NOT_SYMMETRIC = jg.MatrixMetric(lambda x: jnp.array([[1.0, 0.5], [0.0, 1.0]], x.dtype))
NAN_PAIR = (
    jnp.array([[-1.0, 0.0], [jnp.nan, 0.0], [0.5, 0.5]]),
    jnp.array([[1.0, 0.5], [1.0, 0.5], [-0.5, 1.0]]),
)


def bvp(metric, x0, x1, **kwargs):
    return jg.geodesic_bvp(metric, x0, x1, **kwargs)


def bvp_result(metric, x0, x1, **kwargs):
    return jg.geodesic_bvp(metric, x0, x1, throw=False, **kwargs).result


def ivp_result(metric, x0, v0, **kwargs):
    return jg.geodesic_ivp(metric, x0, v0, throw=False, **kwargs).result


def fit(data=None, model=None, loss=None, **kwargs):
    kwargs = dict(
        dict(optimizer=optax.adam(1e-3), num_steps=10, batch_size=8, key=jax.random.key(0)),
        **kwargs,
    )
    data = jg.data.part2_gaussian(100, 0) if data is None else data
    model = jg.nn.MLPScore(2, width=8, depth=1, key=jax.random.key(0)) if model is None else model
    loss = partial(jg.train.denoising_score_matching, sigma=0.2) if loss is None else loss
    return jg.train.fit(loss, model, data, **kwargs)


def traced_damping(damping):
    score = jg.scores.gaussian(jnp.zeros(2), EYE)
    solve = jax.jit(lambda d: bvp_result(jg.SteinMetric(score, d), X0, X1))
    return solve(damping)


def batch_with_a_nan_pair(solve) -> bool:
    """The good pairs of a batch with one NaN pair are solved and right; the bad one
    fails alone."""
    lengths = np.asarray(solve(*NAN_PAIR))
    good = [jg.distance(stein_gaussian(), a, b) for a, b in zip(*NAN_PAIR) if np.isfinite(a).all()]
    expected = np.asarray(solve(NAN_PAIR[0][::2], NAN_PAIR[1][::2]))
    return (
        bool(np.isnan(lengths[1]) or lengths[1] == 0)
        and np.allclose(lengths[::2], expected, rtol=1e-10)
        and np.allclose(expected, good, rtol=1e-4)
    )


def vmapped_bvp_lengths(x0s, x1s):
    def one(a, b):
        sol = jg.geodesic_bvp(stein_gaussian(), a, b, throw=False)
        return jnp.where(sol.result == R.successful, sol.length, jnp.nan)

    return jax.vmap(one)(x0s, x1s)


def batch_lengths(x0s, x1s):
    sol = jg.geodesic_bvp_batch(stein_gaussian(), x0s, x1s)
    return jnp.where(sol.result == R.successful, sol.length, jnp.nan)


def nan_point_in_graph():
    """The graph over the points has a NaN node: its row and column are NaN, every other
    entry is the distance from the straight line (unique geodesics)."""
    xs = jax.random.uniform(jax.random.key(0), (12, 2), minval=-2, maxval=2).at[3].set(jnp.nan)
    d = jg.pairwise_distances(stein_gaussian(), xs)
    line = jg.pairwise_distances(stein_gaussian(), xs, init="line")
    nan = jnp.zeros(12, bool).at[3].set(True)
    off = ~nan[:, None] & ~nan[None]
    same = jnp.allclose(d[off], line[off], rtol=1e-6)
    return bool(jnp.all(jnp.isnan(d[3, jnp.arange(12) != 3])) & same)


def pairwise_diagonal(x0s, x1s):
    return jnp.diagonal(jg.pairwise_distances(stein_gaussian(), x0s, x1s))


def jtj(x):
    jac = jnp.array([[0.1, 0.7], [0.3, 0.2], [1e3, 1.0 / 3]])
    return (jac * (1 + x[0])).T @ (jac / (1 + x[0]))


def vanishing_metric():
    return jg.MatrixMetric(lambda x: x[0] ** 2 * jnp.eye(2, dtype=x.dtype))


def sampler_init(sampler, logdensity, metric, position):
    return sampler(logdensity, metric, 0.1).init(position)


def rmhmc(logdensity, metric, step_size):
    return jg.sampling.rmhmc(logdensity, metric, step_size, 3)


def gaussian_logdensity(x):
    return -0.5 * jnp.sum(x**2)


EYES = jnp.stack([EYE] * 3)


def ladder_with_a_repeated_vertex(maps: str) -> bool:
    """The pole ladder along a geodesic of the Poincaré half-plane (a semicircle) with a
    vertex repeated, as solvers can return: the repetition changes nothing (it was a
    36 % norm drift, and 2,500x for a long vector on the sphere), and with exact maps
    the norm is kept."""
    xs, _ = poincare_semicircle_geodesic(0.0, 2.0, 0.6, 2.2, 5)
    repeated = jnp.concatenate([xs[:3], xs[2:]])
    w0 = jnp.array([3.0, 2.0])
    once = jg.stats.ladder_transport(poincare, xs, w0, maps=maps)
    twice = jg.stats.ladder_transport(poincare, repeated, w0, maps=maps)
    drift = float(twice.stats["norm_drift"])
    return (
        bool(twice.result == R.successful)
        and drift <= float(once.stats["norm_drift"]) + 1e-12
        and (maps != "exact" or drift < 1e-6)
        and bool(jnp.allclose(twice.ws[-1], once.ws[-1], rtol=1e-9))
    )


RANK_ONE = jg.PullbackMetric(lambda z: jnp.stack([z[0], z[0]]))
VON_MISES = jg.FisherRaoMetric(jg.families.VonMises())
# Mean directions 0.1 and 2 pi - 0.1 (kappa = 2): 6.08 apart one way round, 0.2 the other.
VON_MISES_PAIR = (jnp.array([0.1, 2.0]), jnp.array([2 * np.pi - 0.1, 2.0]))
# A metric that is infinite on the line x_1 = 0 (the Poincaré half-plane's boundary).
POINCARE_AT_BOUNDARY = jnp.array([0.0, 0.0])


def von_mises_wrapped_is_the_short_way() -> bool:
    """After `VonMises.wrap`, the distance goes the short way round: that of the same
    pair turned by -0.1 (the metric does not depend on mu) and no longer than the
    chart's straight line (0.2 sqrt(kappa A(kappa)))."""
    a, b = VON_MISES_PAIR
    wrapped = jg.families.VonMises().wrap(b, a)
    turned = jg.distance(VON_MISES, a - jnp.array([0.1, 0.0]), wrapped - jnp.array([0.1, 0.0]))
    short = jg.distance(VON_MISES, a, wrapped)
    line = 0.2 * jnp.sqrt(VON_MISES.matrix(a)[0, 0])
    return (
        bool(jnp.allclose(wrapped, jnp.array([-0.1, 2.0]), atol=1e-12))
        and bool(jnp.allclose(short, turned, rtol=1e-6))
        and float(line) * 0.99 < float(short) <= float(line)
    )


CASES: dict[str, Case] = {
    # --- shapes and dtypes of points (trace time) -----------------------------------
    "endpoints of different dimension": Case(
        lambda: bvp(EUCLID, jnp.zeros(2), jnp.ones(3)), "error", r"\(2,\).*\(3,\)"
    ),
    "batched endpoints": Case(
        lambda: bvp(EUCLID, jnp.zeros((3, 2)), jnp.ones((3, 2))), "error", r"\(3, 2\).*vmap"
    ),
    "point without coordinates": Case(
        lambda: bvp(jg.MatrixMetric(lambda x: jnp.eye(0)), jnp.zeros(0), jnp.zeros(0)),
        "error",
        "at least one coordinate",
    ),
    "scalar endpoint": Case(lambda: bvp(EUCLID, jnp.array(0.0), ONES), "error", "x0"),
    "integer endpoints": Case(
        lambda: bvp(EUCLID, jnp.zeros(2, int), jnp.ones(2, int)), "error", "floating"
    ),
    "complex endpoints": Case(
        lambda: bvp(EUCLID, jnp.zeros(2, complex), jnp.ones(2, complex)), "error", "floating"
    ),
    "float16 endpoints": Case(
        lambda: bvp(EUCLID, jnp.zeros(2, jnp.float16), jnp.ones(2, jnp.float16)),
        "error",
        "float32 or float64",
    ),
    "bfloat16 exp_map": Case(
        lambda: jg.exp_map(EUCLID, jnp.zeros(2, jnp.bfloat16), jnp.ones(2, jnp.bfloat16)),
        "error",
        "float32 or float64",
    ),
    "exp_map velocity of another dimension": Case(
        lambda: jg.exp_map(EUCLID, jnp.zeros(2), jnp.ones(3)), "error", r"\(2,\).*\(3,\)"
    ),
    "num_points 1": Case(lambda: bvp(EUCLID, X0, X1, num_points=1), "error", "num_points"),
    "num_points 0": Case(lambda: bvp(EUCLID, X0, X1, num_points=0), "error", "num_points"),
    "num_points -3": Case(lambda: bvp(EUCLID, X0, X1, num_points=-3), "error", "num_points"),
    "init with too few points": Case(
        lambda: bvp(EUCLID, X0, X1, num_points=8, init=jnp.zeros((7, 2))),
        "error",
        r"init has shape .*\(8, 2\)",
    ),
    "init of another dimension": Case(
        lambda: bvp(EUCLID, X0, X1, num_points=8, init=jnp.zeros((8, 3))),
        "error",
        r"init has shape .*\(8, 2\)",
    ),
    "init of one dimension": Case(
        lambda: bvp(EUCLID, X0, X1, num_points=8, init=jnp.zeros(8)),
        "error",
        r"init has shape .*\(8, 2\)",
    ),
    "curve of one point": Case(
        lambda: jg.curve_length(EUCLID, jnp.zeros((1, 2))), "error", "num_points >= 2"
    ),
    "curve without a point axis": Case(
        lambda: jg.curve_length(EUCLID, jnp.zeros(5)), "error", "num_points >= 2"
    ),
    "solver that is not a solver": Case(
        lambda: bvp(EUCLID, X0, X1, solver=optax.adam(1e-3)), "error", "AbstractBoundarySolver"
    ),
    "Shooting with no segments": Case(lambda: jg.Shooting(num_segments=0), "error", "num_segments"),
    # --- metrics --------------------------------------------------------------------
    "Euclidean point of another dimension": Case(
        lambda: EUCLID.inner(jnp.zeros(3), jnp.zeros(3), jnp.zeros(3)),
        "error",
        r"\(3,\).*\(2,\)",
    ),
    "Euclidean of dimension 0": Case(lambda: jg.Euclidean(0), "error", "dim"),
    "score of the wrong shape, matrix": Case(
        lambda: jg.SteinMetric(lambda x: x[:1]).matrix(ONES), "error", r"returned shape \(1,\)"
    ),
    "score of the wrong shape, solve": Case(
        lambda: jg.SteinMetric(lambda x: x[:1]).solve(ONES, ONES),
        "error",
        r"returned shape \(1,\)",
    ),
    "score of the wrong shape, Monge": Case(
        lambda: jg.MongeMetric(lambda x: x[:1]).inner(ONES, ONES, ONES),
        "error",
        r"returned shape \(1,\)",
    ),
    "score of the wrong shape, geodesic_bvp": Case(
        lambda: bvp(jg.SteinMetric(lambda x: x[:1]), X0, X1, num_points=8),
        "error",
        r"returned shape \(1,\)",
    ),
    "MatrixMetric not square": Case(
        lambda: bvp(jg.MatrixMetric(lambda x: jnp.ones((2, 3))), X0, X1, num_points=8),
        "error",
        r"\(2, 3\)",
    ),
    "MatrixMetric with the round-off asymmetry of J^T J": Case(
        lambda: bool(jnp.all(jnp.isfinite(jg.MatrixMetric(jtj).matrix(ONES)))), "value"
    ),
    "MatrixMetric not symmetric": Case(
        lambda: NOT_SYMMETRIC.matrix(ONES), "error", "non-symmetric matrix at"
    ),
    "MatrixMetric not symmetric, exp_map": Case(
        lambda: jg.exp_map(NOT_SYMMETRIC, X0, ONES), "error", "non-symmetric matrix at the probe"
    ),
    "MatrixMetric not symmetric, under jit": Case(
        lambda: jax.jit(lambda a: bvp_result(NOT_SYMMETRIC, a, X1))(X0),
        "error",
        "non-symmetric matrix at the probe",
    ),
    "damping 0": Case(
        lambda: jg.SteinMetric(jg.scores.gaussian(jnp.zeros(2), EYE), damping=0),
        "error",
        "damping > 0",
    ),
    "damping -1": Case(
        lambda: jg.SteinMetric(jg.scores.gaussian(jnp.zeros(2), EYE), damping=-1.0),
        "error",
        "damping > 0",
    ),
    "damping -0.5, an array": Case(
        lambda: jg.SteinMetric(jg.scores.gaussian(jnp.zeros(2), EYE), damping=jnp.array(-0.5)),
        "error",
        "damping > 0",
    ),
    "traced damping -1 under jit": Case(
        lambda: traced_damping(-1.0), "failed", result=R.undefined_endpoint
    ),
    "traced damping 0 under jit": Case(
        lambda: traced_damping(0.0), "failed", result=R.undefined_endpoint
    ),
    # --- scores and families --------------------------------------------------------
    "gaussian mean and covariance of other sizes": Case(
        lambda: jg.scores.gaussian(jnp.zeros(2), jnp.eye(3)), "error", r"\(2,\).*\(3, 3\)"
    ),
    "gaussian covariance negative definite": Case(
        lambda: jg.scores.gaussian(jnp.zeros(2), -EYE), "error", "positive definite"
    ),
    "gaussian covariance not symmetric": Case(
        lambda: jg.scores.gaussian(jnp.zeros(2), jnp.array([[1.0, 0.5], [0.0, 1.0]])),
        "error",
        "positive definite",
    ),
    "gmm of mismatched shapes": Case(
        lambda: jg.scores.gmm(jnp.ones(2), jnp.zeros((3, 2)), EYES),
        "error",
        r"weights \(2,\), means \(3, 2\)",
    ),
    "gmm negative weight": Case(
        lambda: jg.scores.gmm(jnp.array([1.0, -1.0, 1.0]), jnp.zeros((3, 2)), EYES),
        "error",
        ">= 0",
    ),
    "gmm all weights zero": Case(
        lambda: jg.scores.gmm(jnp.zeros(3), jnp.zeros((3, 2)), EYES), "error", "all zero"
    ),
    "log-density not scalar": Case(
        lambda: jg.scores.from_log_density(lambda x: x)(jnp.zeros(2)), "error", "scalar"
    ),
    "Normal with negative scale": Case(
        lambda: jg.families.Normal().check(jnp.array([0.0, -1.0])), "error", "σ > 0"
    ),
    "Normal with three parameters": Case(
        lambda: jg.families.Normal().check(jnp.zeros(3)), "error", "2 parameters"
    ),
    "MultivariateNormal indefinite covariance": Case(
        lambda: jg.families.MultivariateNormal(2).params(
            jnp.zeros(2), jnp.array([[1.0, 2.0], [2.0, 1.0]])
        ),
        "error",
        "positive definite",
    ),
    "Dirichlet with a negative concentration": Case(
        lambda: jg.families.Dirichlet(3).check(jnp.array([1.0, -1.0, 2.0])), "error", "α_k > 0"
    ),
    "Beta observation outside the support": Case(
        lambda: jg.families.Beta().log_prob(jnp.array([2.0, 2.0]), 1.5), "error", "support"
    ),
    # --- solver outcomes --------------------------------------------------------------
    "NaN start point": Case(
        lambda: bvp(stein_gaussian(), X0.at[0].set(jnp.nan), X1, num_points=8),
        "error",
        "must be finite.*NaN",
    ),
    "inf start point": Case(
        lambda: bvp(stein_gaussian(), X0.at[1].set(jnp.inf), X1, num_points=8),
        "error",
        "must be finite.*NaN or inf",
    ),
    "NaN end point": Case(
        lambda: bvp_result(stein_gaussian(), X0, X1.at[0].set(jnp.nan), num_points=8),
        "failed",
        result=R.nonfinite_arguments,
    ),
    "inf end point": Case(
        lambda: bvp_result(stein_gaussian(), X0, X1.at[1].set(jnp.inf), num_points=8),
        "failed",
        result=R.nonfinite_arguments,
    ),
    "NaN start of an IVP": Case(
        lambda: ivp_result(EUCLID, X0.at[0].set(jnp.nan), ONES),
        "failed",
        result=R.nonfinite_arguments,
    ),
    "equal endpoints": Case(lambda: float(bvp(stein_gaussian(), X0, X0).length) == 0, "value"),
    "IVP backwards in time": Case(
        lambda: bool(
            jnp.allclose(
                jg.geodesic_ivp(EUCLID, jnp.zeros(2), jnp.array([3.0, 4.0]), -1.0).length, 5
            )
        ),
        "value",
    ),
    "EnergyNewton budget of one step": Case(
        lambda: bvp_result(
            stein_gaussian(), jnp.array([-4.0, -2.0]), jnp.array([4.0, -2.0]), max_steps=1
        ),
        "failed",
        result=R.nonlinear_max_steps_reached,
    ),
    "exp_map budget of three steps, throw=False": Case(
        lambda: jg.exp_map(
            jg.MatrixMetric(lambda x: jnp.eye(2) / x[1] ** 2),
            jnp.array([0.0, 1.0]),
            jnp.array([0.0, 5.0]),
            max_steps=3,
            throw=False,
        ),
        "failed",
    ),
    "end point outside a Fisher–Rao domain": Case(
        lambda: bvp_result(
            jg.FisherRaoMetric(jg.families.Normal()), jnp.array([0.0, 1.0]), jnp.array([1.0, -1.0])
        ),
        "failed",
        result=R.undefined_endpoint,
    ),
    "IVP start outside a Fisher–Rao domain": Case(
        lambda: ivp_result(jg.FisherRaoMetric(jg.families.Normal()), jnp.array([0.0, -1.0]), ONES),
        "failed",
        result=R.undefined_endpoint,
    ),
    # Before: "The maximum number of solver steps was reached. Try increasing max_steps",
    # after all 4096 steps.
    "IVP into a NaN strip": Case(
        lambda: ivp_result(NAN_STRIP, LEFT, jnp.array([2.0, 0.3])),
        "failed",
        result=R.flow_breakdown,
    ),
    "IVP where the score turns NaN": Case(
        lambda: ivp_result(
            jg.SteinMetric(lambda x: jnp.where(x[0] > 0.5, jnp.nan, -x)),
            LEFT,
            jnp.array([2.0, 0.3]),
        ),
        "failed",
        result=R.flow_breakdown,
    ),
    "exp_map into a NaN strip": Case(
        lambda: jg.exp_map(NAN_STRIP, LEFT, jnp.array([2.0, 0.3])),
        "error",
        "flow broke down.*will not help",
    ),
    "IVP under an indefinite metric": Case(
        lambda: ivp_result(
            jg.MatrixMetric(lambda x: jnp.diag(jnp.array([1.0, -1.0])) * (1 + x[0] ** 2)),
            LEFT,
            ONES,
        ),
        "failed",
        result=R.undefined_endpoint,
    ),
    "IVP with a huge velocity": Case(
        lambda: ivp_result(stein_gaussian(), LEFT, jnp.array([2e7, 3e6])),
        "failed",
        result=R.flow_breakdown,
    ),
    "log_map across a NaN strip": Case(
        lambda: jg.log_map(NAN_STRIP, LEFT, RIGHT, throw=False).result != R.successful,
        "value",
        slow=True,
    ),
    "distance across a NaN strip": Case(
        lambda: jg.distance(NAN_STRIP, LEFT, RIGHT, throw=False), "failed", slow=True
    ),
    "Shooting across a NaN strip": Case(
        lambda: bvp_result(NAN_STRIP, LEFT, RIGHT, solver=jg.Shooting()),
        "failed",
        result=R.nonlinear_divergence,
        slow=True,
    ),
    "Shooting budget of one step": Case(
        lambda: bvp_result(
            stein_gaussian(),
            jnp.array([-4.0, -2.0]),
            jnp.array([4.0, -2.0]),
            solver=jg.Shooting(),
            max_steps=1,
        ),
        "failed",
        result=R.nonlinear_max_steps_reached,
        slow=True,
    ),
    "a segment across a zero of the metric": Case(
        lambda: bvp_result(vanishing_metric(), LEFT, RIGHT),
        "failed",
        result=R.unresolved_curve,
        slow=True,
    ),
    "distance across a zero of the metric": Case(
        lambda: jg.distance(vanishing_metric(), LEFT, RIGHT, throw=False), "failed", slow=True
    ),
    "vmapped batch with a NaN pair": Case(
        lambda: batch_with_a_nan_pair(vmapped_bvp_lengths), "value", slow=True
    ),
    "geodesic_bvp_batch with a NaN pair": Case(
        lambda: batch_with_a_nan_pair(batch_lengths), "value", slow=True
    ),
    "pairwise_distances with a NaN point": Case(
        lambda: batch_with_a_nan_pair(pairwise_diagonal), "value", slow=True
    ),
    "pairwise_distances with an unknown init": Case(
        lambda: jg.pairwise_distances(EUCLID, jnp.stack([X0, X1]), init="graphs"),
        "error",
        # (or the type checker's report, in the typechecked run)
        'init must be "graph", "line" or a jaxgeo.GeodesicGraph|parameter \'init\'',
    ),
    "pairwise_distances with a graph of another dimension": Case(
        lambda: jg.pairwise_distances(
            EUCLID, jnp.stack([X0, X1]), init=jg.knn_graph(jg.Euclidean(3), jnp.eye(3), k=1)
        ),
        "error",
        "graph over nodes of shape",
    ),
    "pairwise_distances of 12 points, one NaN, from their graph": Case(
        lambda: nan_point_in_graph(), "value", slow=True
    ),
    # --- samplers ---------------------------------------------------------------------
    "mmala step size 0": Case(
        lambda: jg.sampling.mmala(gaussian_logdensity, EUCLID, 0.0),
        "error",
        "step size must be > 0",
    ),
    "mmala step size -0.1": Case(
        lambda: jg.sampling.mmala(gaussian_logdensity, EUCLID, -0.1),
        "error",
        "step size must be > 0",
    ),
    "rmhmc step size 0": Case(
        lambda: rmhmc(gaussian_logdensity, EUCLID, 0.0), "error", "step size must be > 0"
    ),
    "mmala start where the log-density is -inf": Case(
        lambda: sampler_init(jg.sampling.mmala, lambda x: jnp.log(x[0]), EUCLID, LEFT),
        "error",
        "log-density is not finite at the start",
    ),
    "mmala start under a negative definite metric": Case(
        lambda: sampler_init(
            jg.sampling.mmala, gaussian_logdensity, jg.MatrixMetric(lambda x: -EYE), X0
        ),
        "error",
        "not positive definite at the start",
    ),
    "rmhmc start where the log-density is -inf": Case(
        lambda: sampler_init(rmhmc, lambda x: jnp.log(x[0]), EUCLID, LEFT),
        "error",
        "log-density is not finite at the start",
    ),
    "rmhmc start under a negative definite metric": Case(
        lambda: sampler_init(rmhmc, gaussian_logdensity, jg.MatrixMetric(lambda x: -EYE), X0),
        "error",
        "not positive definite at the start",
    ),
    "mmala batched start": Case(
        lambda: sampler_init(jg.sampling.mmala, gaussian_logdensity, EUCLID, jnp.zeros((2, 2))),
        "error",
        "position",
    ),
    # --- training ---------------------------------------------------------------------
    "fit with NaN data": Case(
        lambda: fit(
            data=np.where(np.arange(100)[:, None] == 3, np.nan, jg.data.part2_gaussian(100, 0))
        ),
        "error",
        "NaN",
    ),
    "fit with data of the wrong width": Case(
        lambda: fit(data=np.ones((100, 3))), "error", r"data shapes \(100, 3\).*\(2,\)"
    ),
    "fit with num_steps -1": Case(lambda: fit(num_steps=-1), "error", "num_steps >= 0"),
    "fit with batch_size 0": Case(lambda: fit(batch_size=0), "error", "batch_size >= 1"),
    "fit with checkpoint_every not a multiple": Case(
        lambda: fit(checkpoint_dir="unused", steps_per_chunk=3), "error", "positive multiple"
    ),
    "fit with a loss that is not scalar": Case(
        lambda: fit(loss=lambda model, batch, key: jax.vmap(model)(batch)),
        "error",
        "must return a scalar",
    ),
    # issue 30: transport, families, geodesic messages --------------------------------
    "ladder_transport along a repeated vertex": Case(
        lambda: ladder_with_a_repeated_vertex("exact"), "value"
    ),
    "ladder_transport with expansions along a repeated vertex": Case(
        lambda: ladder_with_a_repeated_vertex("expansion"), "value"
    ),
    "ladder_transport maps of another name": Case(
        lambda: jg.stats.ladder_transport(EUCLID, jnp.stack([X0, X1]), ONES, maps="cubic"),
        "error",
        r"maps must be one of \('exact', 'expansion'\)",
    ),
    "ladder_transport budget of one step": Case(
        lambda: (
            jg.stats.ladder_transport(
                poincare, jnp.array([[0.0, 1.0], [1.0, 2.0]]), ONES, max_steps=1, throw=False
            ).result
        ),
        "failed",
        result=R.nonlinear_max_steps_reached,
    ),
    "log_map on a pullback of rank 1": Case(
        lambda: jg.log_map(RANK_ONE, jnp.zeros(2), ONES, throw=False).result,
        "failed",
        result=R.singular_metric,
    ),
    "log_map on a pullback of rank 1, throw": Case(
        lambda: jg.log_map(RANK_ONE, jnp.zeros(2), ONES),
        "error",
        r"metric is singular.*vs\[0\] is the log map",
    ),
    "geodesic_bvp on a pullback of rank 1": Case(
        lambda: bvp_result(RANK_ONE, jnp.zeros(2), ONES),
        "failed",
        result=R.singular_metric,
    ),
    "distance on a pullback of rank 1 (the length only)": Case(
        lambda: bool(jnp.allclose(jg.distance(RANK_ONE, jnp.zeros(2), ONES), np.sqrt(2.0))),
        "value",
    ),
    "scalar_curvature where the metric is infinite": Case(
        lambda: jg.scalar_curvature(poincare, POINCARE_AT_BOUNDARY), "failed"
    ),
    "scalar_curvature of a Fisher–Rao metric outside its domain": Case(
        lambda: jg.scalar_curvature(
            jg.FisherRaoMetric(jg.families.Normal()), jnp.array([0.0, -1.0])
        ),
        "failed",
    ),
    "Fisher–Rao matrix outside its domain": Case(
        lambda: jg.FisherRaoMetric(jg.families.Normal()).matrix(jnp.array([0.0, -1.0])),
        "failed",
    ),
    "VonMises distance the long way round": Case(
        lambda: jg.distance(VON_MISES, *VON_MISES_PAIR),
        "error",
        r"mean directions differ by more than pi.*VonMises\.wrap",
    ),
    "VonMises distance the long way round, throw=False": Case(
        lambda: jg.distance(VON_MISES, *VON_MISES_PAIR, throw=False), "failed"
    ),
    "VonMises distance wrapped the short way round": Case(
        von_mises_wrapped_is_the_short_way, "value"
    ),
    "VonMises.wrap of a point of three parameters": Case(
        lambda: jg.families.VonMises().wrap(jnp.zeros(3), jnp.zeros(2)),
        "error",
        r"shape \(2,\) \(μ, κ\), got \(3,\)",
    ),
    "Richardson of Shooting": Case(
        lambda: jg.distance(EUCLID, X0, X1, solver=jg.Richardson(jg.Shooting())),
        "error",
        # (Under runtime type checking, the field's annotation is checked first.)
        r"Richardson refines polyline solvers \(jaxgeo.EnergyNewton.*Shooting is not one: "
        r"pass solver=Shooting\(...\) directly|solver.*\n.*Shooting.*\n.*AbstractPolylineSolver",
    ),
    "a budget that ran out names the entry point's max_steps": Case(
        lambda: bvp(stein_gaussian(), X0, X1, num_points=8, max_steps=1),
        "error",
        r"budget of Newton or descent steps ran out.*geodesic_bvp\(max_steps=\.\.\.\)",
    ),
}

# --- issue 30: statistics, estimators and models ----------------------------------------
# Distance matrices that are not distance matrices, estimators used before `fit` or
# given data scikit-learn's `check_array` refuses, a tangent PCA about another point,
# NumPy integers as counts, class labels outside their range, non-unit quaternions.
LINE = jnp.abs(jnp.arange(6.0)[:, None] - jnp.arange(6.0)[None])  # distances on a line
POINTS = np.random.default_rng(0).normal(size=(12, 2))
LABELS = np.arange(12) % 3
NAN_POINTS = np.where((np.arange(12) == 3)[:, None], np.nan, POINTS)
STATS = jg.stats
MEAN_POINTS = jnp.array([[0.0, 1.0], [0.5, 1.5], [-0.3, 0.8], [0.2, 2.0]])
CLASS_LABELS = jnp.array([0, 3, 1])
ENCODER = jg.nn.Encoder(3, 2, width=8, depth=1, key=jax.random.key(0), num_classes=4)
CATEGORICAL = jg.nn.CategoricalDecoder(2, 3, 4, width=8, depth=1, key=jax.random.key(1))
POSE_DECODER = jg.nn.PoseDecoder(2, width=8, depth=1, key=jax.random.key(0))
POSE = jnp.array([0.1, 0.2, 0.3, 0.0, 0.0, 0.0, 1.0])
POSES = jnp.tile(POSE, (20, 1))
CODES = jax.random.normal(jax.random.key(2), (20, 2))


def medoids_under_jit(distances):
    return jax.jit(jg.stats.k_medoids, static_argnums=1)(distances, 2)


def medoids_failed_pairs() -> bool:
    failed = LINE.at[0, 5].set(jnp.nan).at[5, 0].set(jnp.nan)
    clustering = STATS.k_medoids(failed, 2)
    return clustering.result == R.successful and int(clustering.stats["num_failed_pairs"]) == 1


def unfitted(estimator, method: str):
    return getattr(estimator(EUCLID), method)(POINTS)


@cache
def means():
    """The mean of MEAN_POINTS, of other points, of fewer, and with other weights."""
    mean = partial(jg.stats.frechet_mean, EUCLID, num_points=9)
    return dict(
        right=mean(MEAN_POINTS),
        other=mean(MEAN_POINTS + jnp.array([[1.0, 0.2]])),
        fewer=mean(MEAN_POINTS[:3]),
        weighted=mean(MEAN_POINTS, jnp.array([1.0, 2.0, 3.0, 4.0])),
    )


def pca_about(which: str, jit: bool = False):
    def pca(xs, mean):
        return STATS.tangent_pca(EUCLID, xs, mean=mean).explained_variance

    return (jax.jit(pca) if jit else pca)(MEAN_POINTS, means()[which])


def calibrate(codes=CODES, poses=POSES, **kwargs):
    return jg.train.calibrate_pose_decoder(
        POSE_DECODER, codes, poses, key=jax.random.key(0), num_steps=1, batch_size=4, **kwargs
    )


CASES.update(
    {
        # k_medoids: a distance matrix is symmetric, >= 0, with a zero diagonal
        "k_medoids of the upper triangle only": Case(
            lambda: STATS.k_medoids(jnp.triu(LINE), 2), "error", "symmetric.*one triangle"
        ),
        "k_medoids of negative entries": Case(
            lambda: STATS.k_medoids(-LINE, 2), "error", "must be >= 0.*negative"
        ),
        "k_medoids of a similarity matrix": Case(
            lambda: STATS.k_medoids(jnp.exp(-LINE), 2), "error", "diagonal must be zero"
        ),
        "k_medoids of a non-symmetric matrix": Case(
            lambda: STATS.k_medoids(LINE.at[0, 3].set(1.0), 2),
            "error",
            r"symmetric.*distances\[0, 3\] = 1 and distances\[3, 0\] = 3.*symmetrise",
        ),
        "k_medoids with a NaN on the diagonal": Case(
            lambda: STATS.k_medoids(LINE.at[2, 2].set(jnp.nan), 2),
            "error",
            r"diagonal must be zero.*distances\[2, 2\] = nan",
        ),
        "k_medoids of the upper triangle only, under jit": Case(
            lambda: medoids_under_jit(jnp.triu(LINE)), "error", "symmetric.*under jit"
        ),
        "k_medoids of negative entries, under jit": Case(
            lambda: medoids_under_jit(-LINE), "error", "must be >= 0.*under jit"
        ),
        "k_medoids of a non-square matrix": Case(
            lambda: STATS.k_medoids(LINE[:3], 2), "error", r"square distance matrix.*\(3, 6\)"
        ),
        "k_medoids of an empty matrix": Case(
            lambda: STATS.k_medoids(jnp.zeros((0, 0)), 1), "error", "empty"
        ),
        "k_medoids num_clusters 0": Case(
            lambda: STATS.k_medoids(LINE, 0), "error", r"num_clusters must be in \[1, 6\]"
        ),
        "k_medoids num_clusters above the number of points": Case(
            lambda: STATS.k_medoids(LINE, 7), "error", r"num_clusters must be in \[1, 6\]"
        ),
        "k_medoids num_clusters 2.5": Case(
            lambda: STATS.k_medoids(LINE, 2.5),
            "error",
            "an integer.*got 2.5|parameter 'num_clusters'",
        ),
        "k_medoids max_steps -1": Case(
            lambda: STATS.k_medoids(LINE, 2, max_steps=-1), "error", "max_steps"
        ),
        "k_medoids of a boolean matrix": Case(
            lambda: STATS.k_medoids(LINE > 2, 2), "error", "real numbers.*bool"
        ),
        "k_medoids num_clusters a NumPy integer": Case(
            lambda: STATS.k_medoids(LINE, np.int64(2)).result == R.successful, "value"
        ),
        "k_medoids of integer distances": Case(
            lambda: bool(
                jnp.all(
                    STATS.k_medoids(LINE.astype(int), 2).medoids == STATS.k_medoids(LINE, 2).medoids
                )
            ),
            "value",
        ),
        "k_medoids with a failed (NaN) pair counts it": Case(medoids_failed_pairs, "value"),
        "k_medoids with a point no medoid reaches": Case(
            lambda: (
                STATS.k_medoids(
                    jnp.full((3, 3), jnp.nan).at[jnp.diag_indices(3)].set(0.0), 2
                ).result
            ),
            "failed",
            result=R.nonfinite_distances,
        ),
        # nearest_neighbours
        "nearest_neighbours of one query without its batch axis": Case(
            lambda: STATS.nearest_neighbours(EUCLID, POINTS[0], POINTS, 1),
            "error",
            r"queries of shape \(q, D\).*queries\[None\]",
        ),
        "nearest_neighbours num_neighbours 0": Case(
            lambda: STATS.nearest_neighbours(EUCLID, POINTS, POINTS, 0),
            "error",
            r"num_neighbours must be in \[1, 12\]",
        ),
        "nearest_neighbours num_neighbours 2.0": Case(
            lambda: STATS.nearest_neighbours(EUCLID, POINTS, POINTS, 2.0),
            "error",
            "an integer.*got 2.0|parameter 'num_neighbours'",
        ),
        # the scikit-learn estimators
        "GeodesicKMeans.predict before fit": Case(
            lambda: unfitted(STATS.GeodesicKMeans, "predict"), "error", "not fitted yet"
        ),
        "GeodesicKMedoids.predict before fit": Case(
            lambda: unfitted(STATS.GeodesicKMedoids, "predict"), "error", "not fitted yet"
        ),
        "GeodesicPCA.transform before fit": Case(
            lambda: unfitted(STATS.GeodesicPCA, "transform"), "error", "not fitted yet"
        ),
        "GeodesicKNeighborsClassifier.predict before fit": Case(
            lambda: unfitted(STATS.GeodesicKNeighborsClassifier, "predict"),
            "error",
            "not fitted yet",
        ),
        "GeodesicKNeighborsClassifier.fit of 10 points and 8 labels": Case(
            lambda: STATS.GeodesicKNeighborsClassifier(EUCLID).fit(POINTS[:10], LABELS[:8]),
            "error",
            r"inconsistent numbers of samples: \[10, 8\]",
        ),
        "GeodesicKNeighborsClassifier.fit of labels in two columns": Case(
            lambda: STATS.GeodesicKNeighborsClassifier(EUCLID).fit(POINTS, POINTS),
            "error",
            "y should be a 1d array",
        ),
        "GeodesicKNeighborsClassifier with more neighbours than points": Case(
            lambda: STATS.GeodesicKNeighborsClassifier(EUCLID, n_neighbors=13).fit(POINTS, LABELS),
            "error",
            r"n_neighbors=13 must be in \[1, 12\]",
        ),
        "GeodesicKNeighborsClassifier.predict of another number of features": Case(
            lambda: (
                STATS.GeodesicKNeighborsClassifier(EUCLID)
                .fit(POINTS, LABELS)
                .predict(np.ones((2, 3)))
            ),
            "error",
            "X has 3 features, but GeodesicKNeighborsClassifier is expecting 2",
        ),
        "GeodesicKNeighborsClassifier.predict of a NaN query": Case(
            lambda: (
                STATS.GeodesicKNeighborsClassifier(EUCLID).fit(POINTS, LABELS).predict(NAN_POINTS)
            ),
            "error",
            "Input X contains NaN",
        ),
        "GeodesicKMedoids.fit with a NaN sample": Case(
            lambda: STATS.GeodesicKMedoids(EUCLID, 2).fit(NAN_POINTS),
            "error",
            "(?s)Input X contains NaN.*GeodesicKMedoids",
        ),
        "GeodesicKMeans.fit with a NaN sample": Case(
            lambda: STATS.GeodesicKMeans(EUCLID, 2).fit(NAN_POINTS),
            "error",
            "(?s)Input X contains NaN.*GeodesicKMeans",
        ),
        "GeodesicPCA.fit with a NaN sample": Case(
            lambda: STATS.GeodesicPCA(EUCLID).fit(NAN_POINTS),
            "error",
            "(?s)Input X contains NaN.*GeodesicPCA",
        ),
        "GeodesicKMedoids.fit of a 1-D array": Case(
            lambda: STATS.GeodesicKMedoids(EUCLID, 2).fit(POINTS[:, 0]),
            "error",
            "(?s)Expected 2D array.*reshape",
        ),
        "GeodesicKMedoids.fit of no points": Case(
            lambda: STATS.GeodesicKMedoids(EUCLID, 2).fit(np.zeros((0, 2))),
            "error",
            "0 sample",
        ),
        "GeodesicKMedoids with more clusters than points": Case(
            lambda: STATS.GeodesicKMedoids(EUCLID, 13).fit(POINTS),
            "error",
            r"n_clusters=13 must be in \[1, 12\]",
        ),
        "GeodesicKMeans with no clusters": Case(
            lambda: STATS.GeodesicKMeans(EUCLID, 0).fit(POINTS),
            "error",
            r"n_clusters=0 must be in \[1, 12\]",
        ),
        "k_means with a subsample smaller than the clusters": Case(
            lambda: STATS.k_means(EUCLID, POINTS, 3, subsample=2),
            "error",
            r"k_means: subsample must be an integer >= 3, got 2",
        ),
        "GeodesicPCA with more components than features": Case(
            lambda: STATS.GeodesicPCA(EUCLID, n_components=3).fit(POINTS),
            "error",
            r"n_components=3 must be in \[1, 2\]",
        ),
        # tangent_pca about a given mean (checked without another solve)
        "tangent_pca with the mean of other points": Case(
            lambda: pca_about("other"), "error", "not the Fréchet mean.*end at other points"
        ),
        "tangent_pca with the mean of other points, under jit": Case(
            lambda: pca_about("other", jit=True), "error", "end at other points"
        ),
        "tangent_pca with the mean of fewer points": Case(
            lambda: pca_about("fewer"), "error", r"points of shape \(3, 2\).*\(4, 2\)"
        ),
        "tangent_pca with the mean under other weights": Case(
            lambda: pca_about("weighted"), "error", "log maps.*other weights"
        ),
        "tangent_pca with its own mean": Case(
            lambda: bool(jnp.all(jnp.isfinite(pca_about("right")))), "value"
        ),
        "tangent_pca with an array as the mean": Case(
            lambda: STATS.tangent_pca(EUCLID, MEAN_POINTS, mean=MEAN_POINTS[0]),
            "error",
            "mean must be a jaxgeo.stats.FrechetMean|parameter 'mean'",
        ),
        "tangent_pca of points with a NaN": Case(
            lambda: STATS.tangent_pca(EUCLID, MEAN_POINTS.at[2, 0].set(jnp.nan)),
            "error",
            r"must be finite.*xs\[2\]",
        ),
        # interpolate
        "interpolate at no times": Case(
            lambda: STATS.interpolate(EUCLID, X0, X1, jnp.zeros(0)), "error", "at least one time"
        ),
        "interpolate at a NaN time": Case(
            lambda: STATS.interpolate(EUCLID, X0, X1, jnp.array([0.0, jnp.nan])),
            "error",
            "ts must be finite",
        ),
        # families: NumPy integers are integers
        "Binomial of a NumPy integer": Case(
            lambda: (
                jg.families.Binomial(np.int64(5)).num_trials == 5
                and bool(jnp.isfinite(jg.families.Binomial(np.int64(5)).log_prob(ONES[:1] / 2, 2)))
            ),
            "value",
        ),
        "Binomial of 5.5 trials": Case(
            lambda: jg.families.Binomial(5.5), "error", "num_trials must be an integer >= 1"
        ),
        "Binomial of -3 trials": Case(
            lambda: jg.families.Binomial(-3), "error", "num_trials must be an integer >= 1"
        ),
        "Categorical of a NumPy integer": Case(
            lambda: jg.families.Categorical(np.int32(3)).num_params == 2, "value"
        ),
        "Product of no copies": Case(
            lambda: jg.families.Product(jg.families.Normal(), 0), "error", "size"
        ),
        "Product of something not a family": Case(
            lambda: jg.families.Product("normal", 2),
            "error",
            "must be a jaxgeo.families family|parameter 'family'",
        ),
        "Joint of a family class, not an instance": Case(
            lambda: jg.families.Joint((jg.families.Normal(), jg.families.Bernoulli)),
            "error",
            r"families\[1\] must be a jaxgeo.families family.*instantiate|'families'",
        ),
        "Binomial observation above num_trials": Case(
            lambda: jg.families.Binomial(3).log_prob(ONES[:1] / 2, 4.0),
            "error",
            r"outside the support \(the integers 0, 1, ..., num_trials\)",
        ),
        "Categorical observation -1": Case(
            lambda: jg.families.Categorical(3).log_prob(jnp.array([0.2, 0.3]), -1),
            "error",
            r"outside the support \(the integers 0, 1, ..., K−1\)",
        ),
        "kl_monte_carlo of no samples": Case(
            lambda: jg.families.kl_monte_carlo(jg.families.Normal(), X1, X1, jax.random.key(0), 0),
            "error",
            "num_samples",
        ),
        # Encoder(num_classes=) and the categorical VAE
        "Encoder label 5 of 4 classes": Case(
            lambda: ENCODER(CLASS_LABELS.at[1].set(5)),
            "error",
            r"in \[0, 4\).*x\[1\] = 5.*raise num_classes",
        ),
        "Encoder label -1": Case(
            lambda: ENCODER(CLASS_LABELS.at[0].set(-1)), "error", r"in \[0, 4\).*x\[0\] = -1"
        ),
        "Encoder float labels": Case(
            lambda: ENCODER(jnp.array([0.0, 1.7, 2.0])), "error", "integer dtype.*astype"
        ),
        "Encoder label 5 under jit": Case(
            lambda: jax.jit(lambda x: ENCODER(x))(CLASS_LABELS.at[1].set(5)),
            "error",
            r"in \[0, 4\)",
        ),
        "Encoder of 1 class": Case(
            lambda: jg.nn.Encoder(3, 2, width=8, depth=1, key=jax.random.key(0), num_classes=1),
            "error",
            "num_classes must be an integer >= 2",
        ),
        "categorical VAE elbo with label 4": Case(
            lambda: jg.nn.VAE(ENCODER, CATEGORICAL).elbo(
                CLASS_LABELS.at[2].set(4), jax.random.key(0)
            ),
            "error",
            r"in \[0, 4\).*x\[2\] = 4",
        ),
        "CategoricalDecoder.log_prob label 4 under vmap": Case(
            lambda: jax.vmap(CATEGORICAL.log_prob)(
                jnp.stack([CLASS_LABELS, CLASS_LABELS.at[2].set(4)]), jnp.zeros((2, 2))
            ),
            "error",
            r"CategoricalDecoder.*in \[0, 4\)",
        ),
        # PoseDecoder and calibrate_pose_decoder: poses are a position and a unit quaternion
        "PoseDecoder.log_prob of a non-unit quaternion": Case(
            lambda: POSE_DECODER.log_prob(POSE.at[3:].multiply(2.0), jnp.zeros(2)),
            "error",
            "not of unit norm.*norm 2.*normalise the quaternions",
        ),
        "PoseDecoder.log_prob of a non-unit quaternion, under jit": Case(
            lambda: jax.jit(lambda x: POSE_DECODER.log_prob(x, jnp.zeros(2)))(
                POSE.at[3:].multiply(2.0)
            ),
            "error",
            "not of unit norm.*normalise the quaternions",
        ),
        "PoseDecoder.log_prob of a 6-coordinate pose": Case(
            lambda: POSE_DECODER.log_prob(POSE[:6], jnp.zeros(2)),
            "error",
            r"pose has shape \(7,\).*got shape \(6,\)|f64\[6\]",
        ),
        "PoseDecoder initial_std 0": Case(
            lambda: jg.nn.PoseDecoder(2, width=8, depth=1, key=jax.random.key(0), initial_std=0.0),
            "error",
            "initial_std must be > 0",
        ),
        "calibrate_pose_decoder of non-unit quaternions": Case(
            lambda: calibrate(poses=POSES.at[:, 3:].multiply(2.0)),
            "error",
            r"20 quaternions .*not of unit norm.*poses\[0\].*normalise the quaternions",
        ),
        "calibrate_pose_decoder of 6-column poses": Case(
            lambda: calibrate(poses=POSES[:, :6]),
            "error",
            r"7 coordinates, a position \(3\) and a unit quaternion \(4\).*\(20, 6\)|f64\[20,6\]",
        ),
        "calibrate_pose_decoder of codes of another dimension": Case(
            lambda: calibrate(codes=CODES[:, :1]), "error", r"codes of shape \(n, 2\)"
        ),
        "calibrate_pose_decoder with more centres than codes": Case(
            lambda: calibrate(CODES[:5], POSES[:5]), "error", r"num_centres .*\[1, 5\]"
        ),
    }
)


@pytest.fixture(params=["typechecked", "unchecked"])
def typechecking(request):
    """With the runtime type checking that pyproject's `addopts` switches on for the
    tests (jaxtyping + beartype on `jaxgeo`), and without it, which is what users get:
    the library's messages must reach the user in both."""
    previous = jaxtyping.config.jaxtyping_disable
    jaxtyping.config.update("jaxtyping_disable", request.param == "unchecked")
    try:
        yield
    finally:
        jaxtyping.config.update("jaxtyping_disable", previous)


def _params(cases: dict[str, Case]):
    return [
        pytest.param(name, marks=[pytest.mark.slow] if case.slow else [], id=name)
        for name, case in cases.items()
    ]


ERRORS = {name: case for name, case in CASES.items() if case.outcome == "error"}
RESULTS_AND_VALUES = {name: case for name, case in CASES.items() if case.outcome != "error"}


@pytest.mark.parametrize("name", _params(ERRORS))
def test_bad_input_is_a_clear_error(name, typechecking):
    with pytest.raises(Exception, match=CASES[name].match):
        CASES[name].call()


@pytest.mark.parametrize("name", _params(RESULTS_AND_VALUES))
def test_bad_input_fails_by_name_or_is_right(name):
    """(Runtime outcomes: the same compiled programs with or without type checking.)"""
    case = CASES[name]
    out = case.call()
    if case.outcome == "value":
        assert out is True or bool(out), name
    elif isinstance(out, R):
        assert out != R.successful, name
        if case.result is not None:
            assert out == case.result, (name, out)
    else:
        assert jnp.all(jnp.isnan(jnp.asarray(out))), (name, out)


def test_metric_shape_errors_name_the_shape(typechecking):
    # Metric methods carry jaxtyping shape annotations (the typed core API): under
    # runtime type checking the checker names the offending shape first.
    expected = ValueError if jaxtyping.config.jaxtyping_disable else (ValueError, TypeError)
    with pytest.raises(expected, match=r"\(3, 2\).*vmap|f64\[3,2\]"):
        stein_gaussian().matrix(jnp.zeros((3, 2)))


def test_the_table_covers_every_outcome():
    counts = {outcome: 0 for outcome in ("error", "failed", "value")}
    for case in CASES.values():
        counts[case.outcome] += 1
    assert sum(counts.values()) >= 60 and min(counts.values()) > 0, counts
