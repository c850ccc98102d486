"""Curvature, geodesic sprays and shooting of the Stein metric.

    python -m experiments.curvature

writes under figures/curvature/:
  scalar_curvature.png  (a) scalar curvature of the Stein metric of the rho = 0.8 Gaussian
                            and of a 3-component mixture, geodesics drawn over it
  spray.png             (b) exp-map geodesics from one point in 24 directions
  shooting_vs_energy.png (c) the shooting geodesic (log map) and the energy-minimising
                            polyline between the same points, lengths printed
"""

from pathlib import Path

import jax


jax.config.update("jax_enable_x64", True)

import diffrax as dfx
import equinox as eqx
import jax.numpy as jnp
import matplotlib


matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import SymLogNorm

import jaxgeo as jg

from ._common import (
    draw_polyline,
    output_dir,
    result_text,
    run,
    save_figure,
)
from ._figures import FAILED_STYLE, failures_entry, plane_axes, solved_curve, START_GOAL


LIM = (-5.0, 5.0)


def gaussian_metric() -> tuple[jg.SteinMetric, object]:
    score = jg.scores.gaussian(jnp.zeros(2), jnp.array([[1.0, 0.8], [0.8, 1.0]]))
    return jg.SteinMetric(score), score.log_prob


def mixture_metric() -> tuple[jg.SteinMetric, object]:
    score = jg.scores.gmm(
        jnp.array([0.4, 0.35, 0.25]),
        jnp.array([[-2.0, -1.0], [2.0, 1.5], [1.0, -2.5]]),
        jnp.array([[[0.8, 0.3], [0.3, 0.6]], [[0.5, -0.2], [-0.2, 0.9]], [[0.4, 0.0], [0.0, 0.4]]]),
    )
    return jg.SteinMetric(score), score.log_prob


@eqx.filter_jit
def curvature_grid(metric, points):
    return jax.vmap(lambda x: jg.scalar_curvature(metric, x))(points)


def plot_curvature(path: Path, grid: int, pairs: list) -> list[dict]:
    xs, ys = np.meshgrid(np.linspace(*LIM, grid), np.linspace(*LIM, grid))
    points = jnp.asarray(np.stack([xs.ravel(), ys.ravel()], -1))
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.8))
    rows = []
    for ax, (name, (metric, log_prob)) in zip(
        axes,
        [("Gaussian, rho = 0.8", gaussian_metric()), ("3-component mixture", mixture_metric())],
    ):
        s = np.asarray(curvature_grid(metric, points)).reshape(grid, grid)
        bound = float(np.nanpercentile(np.abs(s), 99))
        mesh = ax.pcolormesh(
            xs, ys, s, cmap="RdBu_r", shading="auto", norm=SymLogNorm(1e-2, vmin=-bound, vmax=bound)
        )
        fig.colorbar(mesh, ax=ax, shrink=0.85, label="scalar curvature S")
        ax.contour(
            xs,
            ys,
            np.exp(np.asarray(jax.vmap(log_prob)(points))).reshape(grid, grid),
            levels=5,
            colors="k",
            linewidths=0.6,
        )
        ax.plot([], [], color="k", lw=0.6, label="density p(x), contours")
        for k, (x0, x1) in enumerate(pairs):
            sol = jg.geodesic_bvp(metric, jnp.asarray(x0), jnp.asarray(x1), throw=False)
            solved_curve(ax, sol, "geodesics" if k == 0 else None, color="gold", lw=1.8)
            rows.append(
                dict(
                    metric=name,
                    x0=x0,
                    x1=x1,
                    length=float(sol.length),
                    result=result_text(sol.result),
                )
            )
        ax.set(title=f"Stein metric, {name}: S(x) (symlog)", xlim=LIM, ylim=LIM, aspect="equal")
        plane_axes(ax, loc="upper right", fontsize=7)
        rows.append(dict(metric=name, s_min=float(np.min(s)), s_max=float(np.max(s))))
    save_figure(fig, path, dpi=110)
    return rows


def plot_spray(path: Path, grid: int, num_directions: int, length: float) -> dict:
    metric, log_prob = gaussian_metric()
    x0 = jnp.array([-2.5, 1.0])
    angles = jnp.linspace(0, 2 * jnp.pi, num_directions, endpoint=False)
    directions = jnp.stack([jnp.cos(angles), jnp.sin(angles)], -1)
    # Unit Riemannian speed times `length`: every geodesic has the same length.
    v0s = length * directions / jax.vmap(lambda d: metric.norm(x0, d))(directions)[:, None]
    saveat = dfx.SaveAt(ts=jnp.linspace(0.0, 1.0, 201))
    sols = jax.vmap(
        lambda v: jg.geodesic_ivp(metric, x0, v, saveat=saveat, max_steps=16384, throw=False)
    )(v0s)
    fig, ax = plt.subplots(figsize=(6.5, 6.5))
    jg.plot.density(ax, log_prob, LIM, LIM, num=grid)
    ok = np.asarray(sols.result == jg.RESULTS.successful)
    for xs, good in zip(np.asarray(sols.xs), ok):
        style = dict(color="tab:orange", lw=1.2) if good else FAILED_STYLE
        ax.plot(xs[:, 0], xs[:, 1], **style)
    ax.scatter(*np.asarray(x0), c="limegreen", edgecolors="k", s=60, zorder=5)
    ax.plot([], [], color="tab:orange", lw=1.2, label=f"geodesics ({int(ok.sum())} solved)")
    failures_entry(ax, ok, "geodesics")
    ax.set(
        xlim=LIM,
        ylim=LIM,
        aspect="equal",
        title=f"{num_directions} geodesics of length {length} from {x0.tolist()}\n"
        "(exp map, equal Riemannian speed; blue: the density)",
    )
    plane_axes(ax, markers=START_GOAL[:1], loc="lower right", fontsize=8)
    save_figure(fig, path, dpi=110)
    drift = float(jnp.max(sols.stats["speed_drift"]))
    return dict(successful=int(ok.sum()), total=num_directions, max_speed_drift=drift)


def plot_shooting(path: Path, grid: int) -> dict:
    metric, log_prob = gaussian_metric()
    x0, x1 = jnp.array([-4.0, -2.0]), jnp.array([4.0, -2.0])
    bvp = jg.geodesic_bvp(metric, x0, x1)
    shooting = jg.Shooting(num_segments=8)
    shot = jg.geodesic_bvp(metric, x0, x1, num_points=257, solver=shooting)
    fig, ax = plt.subplots(figsize=(6.5, 6.5))
    jg.plot.density(ax, log_prob, LIM, LIM, num=grid)
    jg.plot.curve(
        ax, shot.xs, color="tab:orange", lw=3, label=f"shooting, L = {float(shot.length):.6f}"
    )
    draw_polyline(ax, bvp.xs, lw=1, label=f"energy polyline (64 pts), L = {float(bvp.length):.6f}")
    ax.scatter(
        *np.asarray(shot.xs[:-1:32]).T,
        marker="s",
        c="tab:orange",
        edgecolors="k",
        s=25,
        zorder=6,
        label="shooting nodes",
    )
    ax.set(xlim=LIM, ylim=LIM, aspect="equal", title="Part II geodesic: shooting vs energy descent")
    plane_axes(ax, loc="upper left", fontsize=8)
    save_figure(fig, path, dpi=110)
    return dict(
        shooting=float(shot.length),
        energy=float(bvp.length),
        residual=float(shot.stats["residual"]),
    )


def main(*, seed: int = 0, out_dir: str | Path = "figures/curvature", smoke: bool = False) -> dict:
    """Make the curvature, spray and shooting figures; print and return their numbers.
    `seed` is unused (deterministic); `smoke=True` uses coarse grids."""
    del seed
    out = output_dir(out_dir)
    grid = 30 if smoke else 150
    pairs = [((-4.0, -2.0), (4.0, -2.0)), ((-3.5, 3.0), (3.5, -3.5))]
    curvature = plot_curvature(out / "scalar_curvature.png", grid, pairs)
    spray = plot_spray(out / "spray.png", grid, 24, 1.0)
    shooting = plot_shooting(out / "shooting_vs_energy.png", grid)
    for row in curvature:
        print(row)
    print(f"spray: {spray}")
    print(
        f"Part II geodesic length: shooting {shooting['shooting']:.8f} (residual "
        f"{shooting['residual']:.1e}), energy polyline (64 points) {shooting['energy']:.8f}"
    )
    print(f"figures written to {out}/")
    return dict(curvature=curvature, spray=spray, shooting=shooting)


if __name__ == "__main__":
    run(main, __doc__, "figures/curvature")
