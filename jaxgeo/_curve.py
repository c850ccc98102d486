r"""Discrete curves: energy and length of a polyline $c_0, \dots, c_N$ by the midpoint rule.

With $\Delta_i = c_{i+1} - c_i$ and midpoints $m_i = (c_i + c_{i+1})/2$ on the uniform
grid $t_i = i/N$,

$$E = \frac{N}{2}\sum_i \langle \Delta_i, \Delta_i \rangle_{G(m_i)}, \qquad
  L = \sum_i \|\Delta_i\|_{G(m_i)},$$

and $L^2 \le 2E$ with equality exactly for a constant-speed curve.
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._checks import check_curve
from ._custom_types import Curve, Input, Point, Scalar
from ._metric._base import AbstractMetric, AbstractSecantMetric
from ._numerics import safe_sqrt


ENERGY_RULES = ("midpoint", "secant")


def check_energy_rule(metric: AbstractMetric, energy: str, where: str) -> None:
    """Raise unless `energy` names a segment-energy rule that `metric` offers."""
    if energy not in ENERGY_RULES:
        raise ValueError(f"{where}: energy must be one of {ENERGY_RULES}, got {energy!r}")
    if energy == "secant" and not isinstance(metric, AbstractSecantMetric):
        raise ValueError(
            f"{where}: {type(metric).__name__} has no secant (Jacobian-free) segment "
            'energy (only subclasses of jaxgeo.AbstractSecantMetric do); use energy="midpoint"'
        )


def segment_sq_norm(metric: AbstractMetric, a: Point, b: Point, energy: str = "midpoint") -> Scalar:
    """The squared length of the segment from `a` to `b` under the rule `energy`:
    `metric.midpoint_sq_norm` (midpoint) or `metric.secant_sq_norm`."""
    if energy == "secant":
        return metric.secant_sq_norm(a, b)
    return metric.midpoint_sq_norm(a, b)


def segment_sq_norms(
    metric: AbstractMetric, xs: Input, energy: str = "midpoint"
) -> Float[Array, " segments"]:
    r"""The squared length of each segment of the polyline `xs` under the rule `energy`:
    by default the midpoint rule $\langle \Delta_i, \Delta_i \rangle_{G(m_i)}$."""
    check_energy_rule(metric, energy, "segment_sq_norms")
    xs = check_curve(xs, "segment_sq_norms")
    if energy == "secant":
        return metric.secant_curve_sq_norms(xs)
    return jax.vmap(metric.midpoint_sq_norm)(xs[:-1], xs[1:])


def curve_energy(metric: AbstractMetric, xs: Input, *, energy: str = "midpoint") -> Scalar:
    r"""Energy $E = \frac{N}{2}\sum_i \langle\Delta_i,\Delta_i\rangle_{G(m_i)}$ of a polyline
    `xs` of shape `(N + 1, D)`, parametrised uniformly on $[0, 1]$. With
    `energy="secant"` the metric's Jacobian-free `secant_sq_norm` replaces the midpoint
    rule (e.g. $|f(c_{i+1}) - f(c_i)|^2$ for a pullback; see
    [`jaxgeo.AbstractSecantMetric`][])."""
    xs = check_curve(xs, "curve_energy")
    num_segments = xs.shape[0] - 1
    return 0.5 * num_segments * jnp.sum(segment_sq_norms(metric, xs, energy))


def curve_length(metric: AbstractMetric, xs: Input, *, energy: str = "midpoint") -> Scalar:
    r"""Length $L = \sum_i \|\Delta_i\|_{G(m_i)}$ of a polyline `xs` of shape `(N + 1, D)`
    (`energy` as in [`jaxgeo.curve_energy`][])."""
    xs = check_curve(xs, "curve_length")
    return jnp.sum(safe_sqrt(segment_sq_norms(metric, xs, energy)))


def curve_velocities(xs: Input) -> Curve:
    """Velocities $dc/dt$ at the points of a polyline on the uniform grid $t_i = i/N$,
    by second-order finite differences (one-sided at the ends)."""
    xs = check_curve(xs, "curve_velocities")
    n = xs.shape[0] - 1
    if n == 1:
        return jnp.broadcast_to(n * (xs[1] - xs[0]), xs.shape)
    central = 0.5 * n * (xs[2:] - xs[:-2])
    start = 0.5 * n * (-3 * xs[0] + 4 * xs[1] - xs[2])
    end = 0.5 * n * (3 * xs[-1] - 4 * xs[-2] + xs[-3])
    return jnp.concatenate([start[None], central, end[None]])


def straight_line(x0: Point, x1: Point, num_points: int) -> Curve:
    """The polyline of `num_points` equally spaced points from `x0` to `x1`."""
    ts = jnp.linspace(0, 1, num_points, dtype=jnp.result_type(x0, x1))
    return x0[None, :] + ts[:, None] * (x1 - x0)[None, :]
