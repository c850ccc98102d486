r"""Discrete curves: energy and length of a polyline $c_0, \dots, c_N$ by the midpoint rule.

With $\Delta_i = c_{i+1} - c_i$ and midpoints $m_i = (c_i + c_{i+1})/2$ on the uniform
grid $t_i = i/N$,

$$E = \frac{N}{2}\sum_i \langle \Delta_i, \Delta_i \rangle_{G(m_i)}, \qquad
  L = \sum_i \|\Delta_i\|_{G(m_i)},$$

and $L^2 \le 2E$ with equality exactly for a constant-speed curve.
"""

import jax.numpy as jnp
from jaxtyping import Array, Float

from ._custom_types import Curve, Input, Point, Scalar
from ._metric._base import AbstractMetric, safe_sqrt
from ._metric._secant import SecantRule


def _check_curve(xs: Input, where: str) -> Curve:
    xs = jnp.asarray(xs)
    if jnp.ndim(xs) != 2 or jnp.shape(xs)[0] < 2:
        raise ValueError(
            f"{where}: expected a curve of shape (num_points, dim) with num_points >= 2, "
            f"got shape {jnp.shape(xs)}"
        )
    return xs


def segment_sq_norms(metric: AbstractMetric, xs: Input) -> Float[Array, " segments"]:
    r"""`metric.segment_sq_norm` of each segment: by default the midpoint rule
    $\langle \Delta_i, \Delta_i \rangle_{G(m_i)}$."""
    return metric.curve_sq_norms(_check_curve(xs, "segment_sq_norms"))


def with_energy_rule(metric: AbstractMetric, energy: str, where: str) -> AbstractMetric:
    """`metric`, or `metric` with the secant segment energy (`energy="secant"`)."""
    if energy == "secant":
        return SecantRule(metric)
    if energy != "midpoint":
        raise ValueError(f"{where}: energy must be 'midpoint' or 'secant', got {energy!r}")
    return metric


def curve_energy(metric: AbstractMetric, xs: Input, *, energy: str = "midpoint") -> Scalar:
    r"""Energy $E = \frac{N}{2}\sum_i \langle\Delta_i,\Delta_i\rangle_{G(m_i)}$ of a polyline
    `xs` of shape `(N + 1, D)`, parametrised uniformly on $[0, 1]$. With
    `energy="secant"` the metric's Jacobian-free `secant_sq_norm` replaces the midpoint
    rule (e.g. $|f(c_{i+1}) - f(c_i)|^2$ for a pullback)."""
    metric = with_energy_rule(metric, energy, "curve_energy")
    xs = _check_curve(xs, "curve_energy")
    num_segments = xs.shape[0] - 1
    return 0.5 * num_segments * jnp.sum(segment_sq_norms(metric, xs))


def curve_length(metric: AbstractMetric, xs: Input, *, energy: str = "midpoint") -> Scalar:
    r"""Length $L = \sum_i \|\Delta_i\|_{G(m_i)}$ of a polyline `xs` of shape `(N + 1, D)`
    (`energy` as in [`jaxgeo.curve_energy`][])."""
    metric = with_energy_rule(metric, energy, "curve_length")
    xs = _check_curve(xs, "curve_length")
    return jnp.sum(safe_sqrt(segment_sq_norms(metric, xs)))


def curve_velocities(xs: Input) -> Curve:
    """Velocities $dc/dt$ at the points of a polyline on the uniform grid $t_i = i/N$,
    by second-order finite differences (one-sided at the ends)."""
    xs = _check_curve(xs, "curve_velocities")
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
