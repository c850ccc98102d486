"""Bad input across the public API, as one table: each case must end in a clear error
naming the problem (`error`), a failed `result` or NaN naming the cause (`failed`), or
the right answer (`value`) — never a silent wrong value, a hang or an error from deep
inside JAX. Checkpoint corruption, the training loop's and the samplers' bad input are
cases too; the cases that compile a solver in a slow way are marked slow."""

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
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
