r"""Manifold MALA driven by any jaxgeo metric, in blackjax's style.

Simplified manifold MALA (Girolami and Calderhead 2011): from $x$, propose

$$x' = \mu(x) + \epsilon\, L(x)\,\xi, \quad \mu(x) = x + \tfrac{\epsilon^2}{2}
G(x)^{-1}\nabla\log\pi(x), \quad L L^\top = G^{-1}, \quad \xi \sim N(0, I),$$

i.e. $x' \sim N(\mu(x), \epsilon^2 G(x)^{-1})$, and accept with the Metropolis–Hastings
ratio $\pi(x')q(x \mid x') / \pi(x)q(x' \mid x)$, where
$\log q(x' \mid x) = -\frac{1}{2\epsilon^2}|x' - \mu(x)|^2_{G(x)} + \frac12\log\det G(x)
- D\log\epsilon + \mathrm{const}$. With `full_drift=True` the drift is that of the
Langevin diffusion whose invariant density (w.r.t. Lebesgue measure) is $\pi$,
$\mu(x) = x + \frac{\epsilon^2}{2}\big(G^{-1}\nabla\log\pi + \nabla\cdot G^{-1}\big)$,
$(\nabla\cdot G^{-1})_i = \sum_j \partial_j (G^{-1})_{ij}$ (Xifara et al. 2014; the
drift of Girolami and Calderhead's MMALA differs, and is right only for densities w.r.t.
the Riemannian volume). A Jacobian
of the cometric: small $D$. The metric enters only through `solve`, `inner`, `log_det`
and `inverse_sqrt_apply` (closed forms for the Stein and Monge metrics).

[`jaxgeo.sampling.mmala`][] returns a `blackjax.SamplingAlgorithm` (`init(position)`,
`step(key, state)`): compose with `jax.lax.scan`, `jax.vmap` over chains and
`blackjax.diagnostics`.
"""

from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from .._checks import check_point, check_positive
from .._custom_types import Point, Scalar
from .._metric._base import AbstractMetric


LogDensity = Callable[[Point], Scalar]


class MMALAState(NamedTuple):
    """The chain's position, with its log-density and gradient (reused next step)."""

    position: Point
    logdensity: Scalar
    logdensity_grad: Point


class MMALAInfo(NamedTuple):
    """`acceptance_rate`: the MH acceptance probability of this step's proposal;
    `is_accepted`; `proposal`: the proposed point."""

    acceptance_rate: Scalar
    is_accepted: Bool[Array, ""]
    proposal: Point


def _divergence_drift(metric: AbstractMetric, x: Point) -> Point:
    r"""$\frac12 (\nabla\cdot G^{-1})_i = \frac12\sum_j \partial_j (G^{-1})_{ij}$."""
    jac = jax.jacfwd(metric.inverse_matrix)(x)  # [i, k, j] = d (G^-1)_ik / d x_j
    return 0.5 * jnp.trace(jac, axis1=1, axis2=2)


def _proposal_mean(metric, x, grad, step_size, full_drift: bool) -> Point:
    mean = x + 0.5 * step_size**2 * metric.solve(x, grad)
    if full_drift:
        mean = mean + step_size**2 * _divergence_drift(metric, x)
    return mean


def _log_proposal(metric, x, mean, to, step_size) -> Scalar:
    """log q(to | x) up to the constant shared by both directions."""
    d = to - mean
    dim = x.shape[0]
    return (
        -0.5 * metric.inner(x, d, d) / step_size**2
        + 0.5 * metric.log_det(x)
        - dim * jnp.log(step_size)
    )


def check_start(metric: AbstractMetric, position, logdensity, where: str):
    """`logdensity`, with an error (also under `jit`) unless it is finite and the
    metric is positive definite at the start `position` (a chain started there would
    never move)."""
    logdensity = eqx.error_if(
        logdensity,
        ~jnp.isfinite(logdensity),
        f"{where}: the log-density is not finite at the start point",
    )
    return eqx.error_if(
        logdensity,
        ~jnp.isfinite(metric.log_det(position)),
        f"{where}: the metric is not positive definite at the start point",
    )


def mmala(
    logdensity_fn: LogDensity,
    metric: AbstractMetric,
    step_size: float | Float[ArrayLike, ""],
    *,
    full_drift: bool = False,
):
    """Manifold MALA with the position-dependent `metric` (see the module docstring).

    `logdensity_fn` must return -inf (or NaN) outside the target's support, not raise: a
    proposal may leave it and is then rejected. (For distribution parameters, sample in
    unconstrained coordinates, or mask `family.log_prob` with `family.valid`.)

    **Returns:** a `blackjax.SamplingAlgorithm`: `init(position) -> MMALAState` (an error,
    also under `jit`, if the log-density is not finite or the metric not positive definite
    at `position`) and `step(key, state) -> (MMALAState, MMALAInfo)`.

    **Raises:** `ValueError` if `step_size <= 0`.
    """
    import blackjax

    check_positive(step_size, "mmala: the step size")

    def init(position: ArrayLike) -> MMALAState:
        position = jnp.asarray(position)
        check_point(position, "mmala: position")
        logdensity, grad = jax.value_and_grad(logdensity_fn)(position)
        return MMALAState(position, check_start(metric, position, logdensity, "mmala"), grad)

    def step(key: PRNGKeyArray, state: MMALAState) -> tuple[MMALAState, MMALAInfo]:
        eps = jnp.asarray(step_size, state.position.dtype)
        eps = eqx.error_if(eps, ~(eps > 0), "mmala: the step size must be > 0")
        x = state.position
        key_noise, key_accept = jax.random.split(key)
        mean = _proposal_mean(metric, x, state.logdensity_grad, eps, full_drift)
        noise = jax.random.normal(key_noise, x.shape, x.dtype)
        proposal = mean + eps * metric.inverse_sqrt_apply(x, noise)
        logdensity, grad = jax.value_and_grad(logdensity_fn)(proposal)
        back_mean = _proposal_mean(metric, proposal, grad, eps, full_drift)
        log_ratio = (
            logdensity
            - state.logdensity
            + _log_proposal(metric, proposal, back_mean, x, eps)
            - _log_proposal(metric, x, mean, proposal, eps)
        )
        log_ratio = jnp.where(jnp.isnan(log_ratio), -jnp.inf, log_ratio)
        accept = jnp.log(jax.random.uniform(key_accept, (), x.dtype)) < log_ratio
        new = MMALAState(proposal, logdensity, grad)
        state = jax.tree_util.tree_map(lambda a, b: jnp.where(accept, a, b), new, state)
        info = MMALAInfo(jnp.minimum(1.0, jnp.exp(log_ratio)), accept, proposal)
        return state, info

    return blackjax.base.SamplingAlgorithm(init, step)
