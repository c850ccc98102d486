"""Running samplers: step-size warm-up by dual averaging, and chains in one `lax.scan`."""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import check_integer, check_positive
from .._custom_types import Scalar


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
    check_integer(num_steps, "step_size_warmup: num_steps")
    check_positive(initial_step_size, "step_size_warmup: the initial step size")
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
