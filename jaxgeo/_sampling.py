r"""Riemannian-manifold samplers driven by any jaxgeo metric, in blackjax's style.

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
`blackjax.diagnostics`. [`jaxgeo.sampling.rmhmc`][] adapts a metric to blackjax's RMHMC
(`mass_matrix_fn = metric.matrix`); [`jaxgeo.sampling.step_size_warmup`][] tunes a step
size by dual averaging (blackjax's) toward a target acceptance rate.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray

from ._checks import check_point
from ._custom_types import Point, Scalar
from ._metric import AbstractMetric


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


def _check_step_size(step_size, name: str = "mmala") -> None:
    """A clear error for a concrete step size <= 0 (traced ones are checked at run time)."""
    if isinstance(step_size, int | float | np.floating | np.integer) and not step_size > 0:
        raise ValueError(f"{name}: the step size must be > 0, got {step_size!r}")


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

    _check_step_size(step_size)

    def init(position: ArrayLike) -> MMALAState:
        position = jnp.asarray(position)
        check_point(position, "mmala: position")
        logdensity, grad = jax.value_and_grad(logdensity_fn)(position)
        logdensity = eqx.error_if(
            logdensity,
            ~jnp.isfinite(logdensity),
            "mmala: the log-density is not finite at the start point",
        )
        logdensity = eqx.error_if(
            logdensity,
            ~jnp.isfinite(metric.log_det(position)),
            "mmala: the metric is not positive definite at the start point",
        )
        return MMALAState(position, logdensity, grad)

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


def rmhmc(
    logdensity_fn: LogDensity,
    metric: AbstractMetric,
    step_size: float | Float[ArrayLike, ""],
    num_integration_steps: int,
    **kwargs,
):
    """Riemannian-manifold HMC with `metric` as the position-dependent mass matrix:
    blackjax's `rmhmc` (implicit-midpoint integrator for the non-separable Hamiltonian)
    with `mass_matrix = metric.matrix`. Keyword arguments go to `blackjax.rmhmc`."""
    import blackjax

    _check_step_size(step_size, "rmhmc")
    return blackjax.rmhmc(logdensity_fn, step_size, metric.matrix, num_integration_steps, **kwargs)


class WarmupResult(NamedTuple):
    """`state` after warm-up, the tuned `step_size`, and the per-step
    `acceptance_rate` and `step_sizes` of the warm-up."""

    state: Any
    step_size: Scalar
    acceptance_rate: Float[Array, " steps"]
    step_sizes: Float[Array, " steps"]


def step_size_warmup(
    key: PRNGKeyArray,
    make_algorithm: Callable[[Scalar], Any],
    position: ArrayLike,
    *,
    num_steps: int = 1000,
    target_acceptance: float = 0.574,
    initial_step_size: float = 1.0,
) -> WarmupResult:
    """Tune a step size by dual averaging (blackjax's, Hoffman and Gelman 2014) so that
    the mean acceptance rate approaches `target_acceptance`, running the chain
    meanwhile. `make_algorithm(step_size)` builds the sampler, e.g.
    `lambda eps: mmala(logdensity_fn, metric, eps)` (target 0.574, optimal for
    MALA-type proposals, Roberts and Rosenthal 1998) or
    `lambda eps: rmhmc(logdensity_fn, metric, eps, 5)` (target about 0.8). Returns the
    final state and the averaged step size."""
    import blackjax

    if not 0 < target_acceptance < 1:
        raise ValueError(f"step_size_warmup: target_acceptance in (0, 1), got {target_acceptance}")
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"step_size_warmup: num_steps must be an integer >= 1, got {num_steps!r}")
    _check_step_size(initial_step_size, "step_size_warmup")
    da_init, da_update, da_final = blackjax.adaptation.step_size.dual_averaging_adaptation(
        target_acceptance
    )
    state = make_algorithm(initial_step_size).init(position)

    def one_step(carry, key):
        state, da_state = carry
        eps = jnp.exp(da_state.log_step_size)
        state, info = make_algorithm(eps).step(key, state)
        da_state = da_update(da_state, info.acceptance_rate)
        return (state, da_state), (info.acceptance_rate, eps)

    keys = jax.random.split(key, num_steps)
    (state, da_state), (rates, sizes) = jax.lax.scan(
        one_step, (state, da_init(initial_step_size)), keys
    )
    return WarmupResult(state, da_final(da_state), rates, sizes)


def sample_chain(key: PRNGKeyArray, algorithm, state, num_samples: int) -> tuple[Array, Any]:
    """Run `algorithm.step` `num_samples` times from `state` in one `lax.scan`; return
    the positions `(num_samples, D)` and the stacked infos."""

    def one_step(state, key):
        state, info = algorithm.step(key, state)
        return state, (state.position, info)

    _, (positions, infos) = jax.lax.scan(one_step, state, jax.random.split(key, num_samples))
    return positions, infos
