r"""The log map's initial velocity polished by single shooting: Newton's method on
$\exp_{x_0}(v) = x_1$ from the extrapolated velocity of [`jaxgeo.Richardson`][], with
the exponential map integrated exactly as [`jaxgeo.exp_map`][] integrates it.

Why: geodesic flows of data metrics amplify errors in $v_0$ by orders of magnitude. On
the README's Stein metric ($\rho = 0.8$, $(-4, -2) \to (4, -2)$) the flow's Jacobian
$\partial x(1) / \partial v_0$ has singular values $1.2 \times 10^4$ and $0.21$:
Richardson's velocity, $1.3 \times 10^{-7}$ relative from the exact one (within its
estimate), ends $1.3 \times 10^{-3}$ from $x_1$ (1.6e-4 of the chord), and a velocity
that the ODE carries to $x_1$ within 1e-6 of the chord would need to be right to about
$10^{-11}$, far below what the discrete levels resolve. Newton's steps with the flow's
Jacobian (variational equations, integrated with the flow) solve exactly the
ill-conditioned part: from a velocity this close, one step, and one more integration to
measure it.
"""

from typing import NamedTuple

import diffrax as dfx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, Bool, Float, Int

from .._custom_types import Point, Scalar, Tangent
from .._linalg import solve
from .._metric._base import AbstractMetric
from ._ivp import geodesic_vector_field, ode_controller


# Integrations of the flow (each with its Jacobian) at most: the first measures the
# extrapolated velocity, each further one a Newton step (quadratic convergence from
# 1e-7 relative: one step, two at most).
POLISH_MAX_STEPS = 4
# Newton stops once the end point's miss is this far within the target (so that the
# velocity is well inside it, not at its edge).
POLISH_STOP = 1e-2
# ODE steps of one integration, as `jaxgeo.exp_map`'s default.
POLISH_MAX_ODE_STEPS = 4096


class Polish(NamedTuple):
    """The polished velocity `v0` (the best integrated: the smallest miss), its miss
    `residual` $|\\exp_{x_0}(v_0) - x_1|$ (Euclidean), the miss of the velocity it
    started from `initial_residual`, the integrations run `num_steps`, and `converged`
    (`residual` within the target)."""

    v0: Tangent
    residual: Scalar
    initial_residual: Scalar
    num_steps: Int[Array, ""]
    converged: Bool[Array, ""]


def _flow_norm(error) -> Scalar:
    """The step-size controller's norm on the flow's `(x, v)` only, so that the
    augmented ODE takes exactly the steps of `jaxgeo.exp_map`."""
    return optx.rms_norm(error[:2])


def _variational_field(t, state, metric):
    r"""The geodesic vector field $f(x, v)$ with the variational equations of the
    Jacobian $(\partial x, \partial v) / \partial v_0$: one JVP of $f$ per column."""
    x, v, jx, jv = state
    field, linear = jax.linearize(lambda x, v: geodesic_vector_field(t, (x, v), metric), x, v)
    djx, djv = jax.vmap(linear, in_axes=1, out_axes=1)(jx, jv)
    return (*field, djx, djv)


def flow_and_jacobian(
    metric: AbstractMetric, x0: Point, v0: Tangent
) -> tuple[Point, Float[Array, "dim dim"], Bool[Array, ""]]:
    r"""$\exp_{x_0}(v_0)$, its Jacobian in $v_0$, and whether the integration
    succeeded: Tsit5 with `jaxgeo.exp_map`'s controller (its tolerances, minimal step
    and budget; the error measured on the flow alone), so the end point is
    `exp_map`'s. A plain loop, never differentiated."""
    dim = x0.shape[0]
    dtype = x0.dtype
    zeros = jnp.zeros((dim, dim), dtype)
    sol = dfx.diffeqsolve(
        dfx.ODETerm(_variational_field),
        dfx.Tsit5(),
        t0=jnp.zeros((), dtype),
        t1=jnp.ones((), dtype),
        dt0=None,
        y0=(x0, v0, zeros, jnp.eye(dim, dtype=dtype)),
        args=metric,
        saveat=dfx.SaveAt(t1=True),
        stepsize_controller=ode_controller(dtype, 1.0, None, None, norm=_flow_norm),
        max_steps=POLISH_MAX_ODE_STEPS,
        adjoint=dfx.ForwardMode(),
        throw=False,
    )
    x1, _, jacobian, _ = (y[-1].astype(dtype) for y in sol.ys)
    ok = (sol.result == dfx.RESULTS.successful) & jnp.all(jnp.isfinite(x1))
    return x1, jacobian, ok


def polish_velocity(
    metric: AbstractMetric,
    x0: Point,
    x1: Point,
    v0: Tangent,
    target: Scalar,
    run: Bool[Array, ""],
) -> Polish:
    r"""Newton's method on $\exp_{x_0}(v) = x_1$ from `v0`, until the miss is within
    `POLISH_STOP * target`, the miss stops shrinking, an integration fails, or after
    `POLISH_MAX_STEPS` integrations (none unless `run`). Every iterate is measured
    before it is kept: the result is the one that missed least. Call it on constants
    (no derivatives through it)."""
    dtype = v0.dtype
    inf = jnp.array(jnp.inf, dtype)

    def step(carry):
        v, best_v, best, initial, previous, k, _ = carry
        end, jacobian, ok = flow_and_jacobian(metric, x0, v)
        miss = end - x1
        residual = jnp.where(ok, jnp.linalg.norm(miss), inf)
        better = residual < best
        best_v = jnp.where(better, v, best_v)
        best = jnp.where(better, residual, best)
        initial = jnp.where(k == 0, residual, initial)
        delta = solve(jacobian, miss)
        done = (residual <= POLISH_STOP * target) | ~(residual < previous)
        done |= ~jnp.all(jnp.isfinite(delta)) | (k + 1 >= POLISH_MAX_STEPS)
        return v - jnp.where(done, 0, delta), best_v, best, initial, residual, k + 1, done

    init = (v0, v0, inf, inf, inf, jnp.array(0), ~run)
    _, v, residual, initial, _, num_steps, _ = jax.lax.while_loop(lambda c: ~c[-1], step, init)
    return Polish(
        v0=v,
        residual=residual,
        initial_residual=initial,
        num_steps=num_steps,
        converged=residual <= target,
    )
