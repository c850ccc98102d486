"""Derivatives of the segment energies of a discrete curve, for Newton's method and the
implicit function theorem."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._curve import segment_sq_norm
from .._custom_types import Curve, Scalar
from .._metric._base import AbstractMetric


SegmentGradients = Float[Array, "segments twice_dim"]
SegmentHessians = Float[Array, "segments twice_dim twice_dim"]


def segment_derivatives(
    metric: AbstractMetric, xs: Curve, energy: str, scale: int | Scalar | None = None
) -> tuple[Float[Array, " segments"], SegmentGradients, SegmentHessians]:
    r"""Value, gradient and Hessian of each segment energy $e(a, b) = \frac s2$
    `segment_sq_norm(metric, a, b, energy)` w.r.t. its two endpoints $(a, b)$, in one
    forward-over-reverse pass; the scale $s$ is the curve's number of segments $N$
    (default: those of `xs`; a traced $N$ where `xs` is a chunk of a longer curve)."""
    if scale is None:
        scale = xs.shape[0] - 1
    if energy == "midpoint":
        return _midpoint_segment_derivatives(metric, xs, scale)
    dim = xs.shape[1]

    def segment(ab):
        return 0.5 * scale * segment_sq_norm(metric, ab[:dim], ab[dim:], energy)

    def gradient(ab):
        value, grad = jax.value_and_grad(segment)(ab)
        return grad, (value, grad)

    ab = jnp.concatenate([xs[:-1], xs[1:]], axis=1)
    hessians, (values, grads) = jax.vmap(jax.jacfwd(gradient, has_aux=True))(ab)
    return values, grads, hessians


def _midpoint_segment_derivatives(
    metric: AbstractMetric, xs: Curve, scale: int | Scalar
) -> tuple[Float[Array, " segments"], SegmentGradients, SegmentHessians]:
    r"""As `segment_derivatives` for the midpoint rule
    $e = \frac s2 \langle \Delta, \Delta\rangle_{G(m)}$, through its variables
    $m = \frac{a + b}2$, $\Delta = b - a$: the metric is differentiated along the $D$
    directions of $m$ only ($e$ is quadratic in $\Delta$, with
    $\partial_\Delta^2 e = s G(m)$ free of derivatives of the metric), not along all
    $2D$ of $(a, b)$. With $\partial_a = \frac12\partial_m - \partial_\Delta$ and
    $\partial_b = \frac12\partial_m + \partial_\Delta$."""

    def segment(m, delta):
        return 0.5 * scale * metric.sq_norm(m, delta)

    def gradients(m, delta):
        value, grads = jax.value_and_grad(segment, argnums=(0, 1))(m, delta)
        return grads, (value, *grads)

    def derivatives(m, delta):
        (h_mm, h_dm), (value, g_m, g_d) = jax.jacfwd(gradients, has_aux=True)(m, delta)
        g = metric.matrix(m)
        h_dd = 0.5 * scale * (g + g.T)
        cross, skew = 0.5 * (h_dm.T + h_dm), 0.5 * (h_dm.T - h_dm)
        h_aa = 0.25 * h_mm - cross + h_dd
        h_ab = 0.25 * h_mm + skew - h_dd
        h_bb = 0.25 * h_mm + cross + h_dd
        hessian = jnp.block([[h_aa, h_ab], [h_ab.T, h_bb]])
        return value, jnp.concatenate([0.5 * g_m - g_d, 0.5 * g_m + g_d]), hessian

    return jax.vmap(derivatives)(0.5 * (xs[:-1] + xs[1:]), xs[1:] - xs[:-1])
