"""Matplotlib figures for 2-D geometry: score fields, densities, metric ellipses,
curves, energy landscapes and animations of optimisation histories."""

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PyTree

from .._custom_types import Point, Scalar, Tangent
from .._metric._base import AbstractMetric


Bounds = tuple[float, float]


def _grid(xlim: Bounds, ylim: Bounds, num: int) -> tuple[np.ndarray, np.ndarray, Array]:
    xs, ys = np.meshgrid(np.linspace(*xlim, num), np.linspace(*ylim, num))
    points = jnp.asarray(np.stack([xs.ravel(), ys.ravel()], axis=-1))
    return xs, ys, points


@eqx.filter_jit
def _map_points(fn: Callable[[Point], PyTree], points: Array) -> PyTree:
    return jax.vmap(fn)(points)


def _grid_values(fn: Callable[[Point], Array], xlim: Bounds, ylim: Bounds, num: int):
    xs, ys, points = _grid(xlim, ylim, num)
    values = np.asarray(_map_points(fn, points))
    return xs, ys, values.reshape(num, num, *values.shape[1:])


def density(
    ax,
    log_prob: Callable[[Point], Scalar],
    xlim: Bounds = (-5, 5),
    ylim: Bounds = (-5, 5),
    *,
    num: int = 200,
    cmap: str = "Blues",
    **kwargs,
):
    r"""Filled contours of the density $p(x) = \exp\log p(x)$ on a 2-D grid."""
    xs, ys, logp = _grid_values(log_prob, xlim, ylim, num)
    return ax.contourf(xs, ys, np.exp(logp), levels=kwargs.pop("levels", 12), cmap=cmap, **kwargs)


def score_field(
    ax,
    score: Callable[[Point], Tangent],
    xlim: Bounds = (-5, 5),
    ylim: Bounds = (-5, 5),
    *,
    num: int = 17,
    normalise: bool = True,
    **kwargs,
):
    r"""Quiver plot of the score field $s(x) = \nabla_x \log p(x)$; arrows are
    normalised to unit length (colour = magnitude) unless `normalise=False`."""
    xs, ys, s = _grid_values(score, xlim, ylim, num)
    magnitude = np.linalg.norm(s, axis=-1)
    if normalise:
        s = s / np.maximum(magnitude, 1e-12)[..., None]
    kwargs.setdefault("cmap", "viridis")
    return ax.quiver(xs, ys, s[..., 0], s[..., 1], magnitude, **kwargs)


def magnification_factor(
    ax,
    metric: AbstractMetric,
    xlim: Bounds = (-5, 5),
    ylim: Bounds = (-5, 5),
    *,
    num: int = 100,
    log: bool = True,
    cmap: str = "magma_r",
    **kwargs,
):
    r"""The magnification factor $\sqrt{\det G(z)}$ of a 2-D metric as a colour map
    (its logarithm if `log`): how much the metric inflates areas. For a decoder's
    pullback it is large where the decoder changes fast (or, with a calibrated variance,
    away from the data). Returns the `pcolormesh`."""
    xs, ys, log_det = _grid_values(metric.log_det, xlim, ylim, num)
    values = 0.5 * log_det if log else np.exp(0.5 * log_det)
    kwargs.setdefault("shading", "auto")
    return ax.pcolormesh(xs, ys, values, cmap=cmap, **kwargs)


def metric_ellipses(
    ax,
    metric: AbstractMetric,
    points: Float[ArrayLike, "n 2"],
    *,
    radius: float = 0.3,
    normalise: bool = False,
    num_vertices: int = 64,
    **kwargs,
):
    r"""Draw the indicatrix $\{x + v : \langle v, v\rangle_{G(x)} = r^2\}$ at each point:
    an ellipse with semi-axes $r/\sqrt{\lambda_i}$ along the eigenvectors of $G(x)$.
    Long axes are cheap directions. With `normalise=True` each ellipse is scaled so
    that its longest semi-axis is `radius` (shape and orientation only)."""
    points = jnp.asarray(points)
    eigvals, eigvecs = _map_points(lambda x: jnp.linalg.eigh(metric.matrix(x)), points)
    semi_axes = 1 / jnp.sqrt(eigvals)
    if normalise:
        semi_axes = semi_axes / jnp.max(semi_axes, axis=-1, keepdims=True)
    angles = jnp.linspace(0, 2 * jnp.pi, num_vertices, dtype=eigvecs.dtype)
    circle = jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=-1)
    # v = r V diag(lambda^-1/2) u for u on the unit circle
    vs = jnp.einsum("nij,nj,kj->nki", eigvecs, radius * semi_axes, circle)
    outlines = np.asarray(points[:, None, :] + vs)
    kwargs.setdefault("color", "k")
    kwargs.setdefault("lw", 0.8)
    return [ax.plot(o[:, 0], o[:, 1], **kwargs)[0] for o in outlines]


def curve(ax, xs: Float[ArrayLike, "points 2"], *, endpoints: bool = True, **kwargs):
    """Plot a polyline; mark its endpoints (green start, yellow end) if asked."""
    xs = np.asarray(xs)
    (line,) = ax.plot(xs[:, 0], xs[:, 1], **kwargs)
    if endpoints:
        ax.scatter(*xs[0], c="limegreen", edgecolors="k", s=60, zorder=5)
        ax.scatter(*xs[-1], c="gold", edgecolors="k", s=60, zorder=5)
    return line


def energy_landscape(
    ax,
    metric: AbstractMetric,
    displacement: tuple[float, float] | Float[ArrayLike, " 2"] = (1.0, 0.0),
    xlim: Bounds = (-5, 5),
    ylim: Bounds = (-5, 5),
    *,
    num: int = 200,
    cmap: str = "RdBu_r",
    **kwargs,
):
    r"""Heat map of the energy density $\langle d, d\rangle_{G(x)}$ of a fixed
    displacement $d$ at every point (the energy landscape of `experiments.stein_gaussian`)."""
    d = jnp.asarray(displacement, dtype=float)
    xs, ys, e = _grid_values(lambda x: metric.inner(x, d, d), xlim, ylim, num)
    return ax.pcolormesh(xs, ys, e, cmap=cmap, shading="auto", **kwargs)


def linear_map_circle(ax, matrix: Float[ArrayLike, "2 2"], *, num: int = 16, **kwargs):
    """Unit-circle vectors $P$ and their images $TP$ under a 2x2 matrix $T$."""
    t = np.asarray(matrix)
    angles = np.linspace(0, 2 * np.pi, num, endpoint=False)
    ps = np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    tps = ps @ t.T
    fine = np.linspace(0, 2 * np.pi, 200)
    circle = np.stack([np.cos(fine), np.sin(fine)], axis=-1)
    ax.plot(*circle.T, color="0.7", lw=1)
    ax.plot(*(circle @ t.T).T, color="tab:red", lw=1)
    zeros = np.zeros(num)
    ax.quiver(zeros, zeros, *ps.T, angles="xy", scale_units="xy", scale=1, color="0.6")
    ax.quiver(zeros, zeros, *tps.T, angles="xy", scale_units="xy", scale=1, color="tab:red")
    ax.set_aspect("equal")


def animate(
    fig,
    update: Callable[[int], Sequence],
    num_frames: int,
    path: str,
    *,
    fps: int = 12,
    dpi: int = 80,
) -> str:
    """Write an animation to a GIF with matplotlib's Pillow writer (no ffmpeg needed).

    `update(i)` redraws frame `i` on `fig` and returns the changed artists."""
    from matplotlib.animation import FuncAnimation, PillowWriter

    anim = FuncAnimation(fig, update, frames=num_frames, blit=False)
    anim.save(path, writer=PillowWriter(fps=fps), dpi=dpi)
    return path


def animate_curves(
    fig,
    ax,
    curves: Float[ArrayLike, "frames points 2"],
    path: str,
    *,
    labels: Sequence[str] | None = None,
    fps: int = 12,
    **kwargs,
) -> str:
    """Animate an optimisation history of curves (e.g. from
    [`jaxgeo.energy_descent_trace`][]) over whatever `ax` already shows."""
    curves = np.asarray(curves)
    kwargs.setdefault("color", "tab:blue")
    kwargs.setdefault("marker", "o")
    kwargs.setdefault("ms", 2.5)
    line = curve(ax, curves[0], **kwargs)
    title = ax.set_title(labels[0] if labels else "")

    def update(i):
        line.set_data(curves[i, :, 0], curves[i, :, 1])
        if labels:
            title.set_text(labels[i])
        return line, title

    return animate(fig, update, len(curves), path, fps=fps)
