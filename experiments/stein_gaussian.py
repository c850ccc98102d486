"""Part II of *The geometry of data* (Perone, 2024): the Stein-score metric of a 2-D
Gaussian, its geodesics by energy descent, and the energy landscape.

    python -m experiments.stein_gaussian

writes under figures/stein_gaussian/:
  score_fields.png        (a) Stein score fields for several means and covariances
  metric_transform.png    (b) unit-circle vectors under s s^T and (s s^T + I)^-1, s = (2, 2)
  geodesic_rho*.png/.gif  (c) geodesic for rho = 0, 0.8, 0.95 (still) and Adam's descent (GIF)
  geodesics.png           (c) the three geodesics side by side
  energy_landscape.png    (d) energy density of the displacement (1, 0), straight path on top
  table.md                (e) lengths, energies, steps and results
"""

from pathlib import Path

import jax


jax.config.update("jax_enable_x64", True)

import equinox as eqx
import jax.numpy as jnp
import matplotlib


matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import jaxgeo as jg

from ._common import dict_table, output_dir, run, save_figure, wall_time, write_table
from ._figures import plane_axes, solved_curve


X0 = jnp.array([-4.0, -2.0])
X1 = jnp.array([4.0, -2.0])
LIM = (-5.0, 5.0)
RHOS = (0.0, 0.8, 0.95)


def gaussian(rho: float, mean=(0.0, 0.0)) -> eqx.Module:
    return jg.scores.gaussian(jnp.asarray(mean), jnp.array([[1.0, rho], [rho, 1.0]]))


def plot_score_fields(path: Path, grid: int) -> None:
    cases = [
        ((0.0, 0.0), [[1.0, 0.0], [0.0, 1.0]], "standard"),
        ((1.5, -1.0), [[1.0, 0.0], [0.0, 1.0]], "shifted mean"),
        ((0.0, 0.0), [[2.0, 0.0], [0.0, 0.4]], "diagonal"),
        ((0.0, 0.0), [[1.0, 0.8], [0.8, 1.0]], r"$\rho = 0.8$"),
        ((-1.0, 1.0), [[1.0, -0.6], [-0.6, 1.0]], r"$\rho = -0.6$, shifted"),
        ((0.0, 0.0), [[1.0, 0.95], [0.95, 1.0]], r"$\rho = 0.95$"),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(12, 8))
    for ax, (mean, cov, title) in zip(axes.flat, cases):
        score = jg.scores.gaussian(jnp.asarray(mean), jnp.asarray(cov))
        jg.plot.density(ax, score.log_prob, LIM, LIM, num=grid)
        jg.plot.score_field(ax, score, LIM, LIM, num=15)
        ax.set(title=f"{title}: mean {mean}", aspect="equal")
        plane_axes(ax, legend=False)
    fig.suptitle(r"Stein score $s(x) = \nabla_x \log p(x) = -\Sigma^{-1}(x - \mu)$")
    save_figure(fig, path, dpi=110)


def plot_metric_transform(path: Path) -> None:
    s = np.array([2.0, 2.0])
    outer = np.outer(s, s)
    metric = np.linalg.inv(outer + np.eye(2))
    parallel = s / np.linalg.norm(s)
    orthogonal = np.array([-parallel[1], parallel[0]])
    fig, axes = plt.subplots(2, 2, figsize=(9, 9))
    for row, (t, name) in enumerate(
        [(outer, r"$T = s s^\top$"), (metric, r"$T = (s s^\top + I)^{-1}$")]
    ):
        for col, (p, case) in enumerate(
            [(parallel, "P parallel to s"), (orthogonal, "P orthogonal to s")]
        ):
            ax = axes[row, col]
            jg.plot.linear_map_circle(ax, t)
            tp = t @ p
            ax.quiver(0, 0, *p, angles="xy", scale_units="xy", scale=1, color="k", width=0.012)
            ax.quiver(
                0, 0, *tp, angles="xy", scale_units="xy", scale=1, color="tab:blue", width=0.012
            )
            ax.plot(
                *np.stack([-3 * parallel, 3 * parallel]).T, "g--", lw=1, label="score direction"
            )
            lim = 1.3 * max(1.0, np.abs(t @ np.array([parallel, orthogonal]).T).max())
            ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="$v_1$", ylabel="$v_2$")
            ax.set_title(f"{name}, {case}\n|P| = 1, |TP| = {np.linalg.norm(tp):.3f}")
            ax.legend(loc="lower right", fontsize=8)
    fig.suptitle("Unit-circle vectors P (grey) and TP (red), s = (2, 2)")
    save_figure(fig, path, dpi=110)


def draw_background(ax, rho: float, grid: int, ellipses: bool = True) -> jg.SteinMetric:
    score = gaussian(rho)
    metric = jg.SteinMetric(score)
    jg.plot.density(ax, score.log_prob, LIM, LIM, num=grid, alpha=0.8)
    if ellipses:
        pts = np.stack(np.meshgrid(np.linspace(-4, 4, 7), np.linspace(-4, 4, 7)), -1).reshape(-1, 2)
        jg.plot.metric_ellipses(ax, metric, pts, radius=0.45, normalise=True, color="0.35", lw=0.6)
    ax.set(xlim=LIM, ylim=LIM, aspect="equal")
    return metric


def solve_geodesic(rho: float, num_points: int) -> dict:
    metric = jg.SteinMetric(gaussian(rho))
    sol, seconds = wall_time(
        lambda: jg.geodesic_bvp(metric, X0, X1, num_points=num_points, throw=False)
    )
    line = jg.straight_line(X0, X1, num_points)
    return dict(
        rho=rho,
        sol=sol,
        length=float(sol.length),
        line_length=float(jg.curve_length(metric, line)),
        energy=float(sol.energy),
        steps=int(sol.stats["num_steps"]),
        ratio=float(sol.stats["constant_speed_ratio"]),
        result="success" if sol.result == jg.RESULTS.successful else jg.result_name(sol.result),
        seconds=seconds,
    )


def plot_geodesic(path: Path, row: dict, grid: int, ax=None) -> None:
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(6, 6))
    draw_background(ax, row["rho"], grid)
    line = np.stack([np.asarray(X0), np.asarray(X1)])
    ax.plot(*line.T, "r-", lw=1.5, label=f"straight line, L = {row['line_length']:.3f}")
    label = f"geodesic, L = {row['length']:.3f}"
    solved_curve(ax, row["sol"], label, color="tab:blue", marker="o", ms=2.5, lw=1.5)
    ax.set_title(
        rf"Stein metric $(s s^\top + I)^{{-1}}$, $\rho = {row['rho']}$"
        "\n(ellipses: unit balls of g, rescaled)"
    )
    plane_axes(ax, loc="upper left", fontsize=8)
    if own:
        save_figure(fig, path, dpi=110)


def animate_descent(path: Path, rho: float, grid: int, num_steps: int, save_every: int) -> float:
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    metric = draw_background(ax, rho, grid, ellipses=False)
    ax.plot(*np.stack([np.asarray(X0), np.asarray(X1)]).T, "r-", lw=1.2)
    curves, energies = jg.energy_descent_trace(
        metric, X0, X1, num_points=60, num_steps=num_steps, save_every=save_every
    )
    labels = [
        rf"$\rho = {rho}$, Adam step {i * save_every}, E = {float(e):.3f}"
        for i, e in enumerate(energies)
    ]
    jg.plot.animate_curves(fig, ax, curves, str(path), labels=labels, fps=15)
    plt.close(fig)
    return float(energies[-1])


def plot_energy_landscape(path: Path, grid: int) -> None:
    fig, axes = plt.subplots(1, len(RHOS), figsize=(5 * len(RHOS), 4.6))
    for ax, rho in zip(axes, RHOS):
        metric = jg.SteinMetric(gaussian(rho))
        mesh = jg.plot.energy_landscape(ax, metric, (1.0, 0.0), LIM, LIM, num=grid)
        fig.colorbar(mesh, ax=ax, shrink=0.85, label=r"$\langle d, d\rangle_{g(x)}$")
        ax.plot(*np.stack([np.asarray(X0), np.asarray(X1)]).T, "w-", lw=2)
        ax.set(
            title=rf"$\langle d, d\rangle_{{g(x)}}$, $d = (1, 0)$, $\rho = {rho}$", aspect="equal"
        )
        plane_axes(ax, legend=False)
    save_figure(fig, path, dpi=110)


def format_table(rows: list[dict]) -> list[str]:
    return dict_table(
        "rho | geodesic length | straight-line length | energy | L^2/2E | steps | result",
        "{rho} | {length:.6f} | {line_length:.6f} | {energy:.6f} | {ratio:.8f} | {steps} "
        "| {result}",
        rows,
    )


def main(
    *, seed: int = 0, out_dir: str | Path = "figures/stein_gaussian", smoke: bool = False
) -> list[dict]:
    """Make every figure of Part II and print the table; return its rows.

    `seed` is unused (everything here is deterministic) and kept for the common
    experiment signature; `smoke=True` shrinks grids and animations for tests."""
    del seed
    out = output_dir(out_dir)
    grid = 40 if smoke else 160
    num_steps, save_every = (40, 20) if smoke else (3000, 100)

    plot_score_fields(out / "score_fields.png", grid)
    plot_metric_transform(out / "metric_transform.png")
    rows = [solve_geodesic(rho, num_points=60) for rho in RHOS]
    fig, axes = plt.subplots(1, len(rows), figsize=(6 * len(rows), 6))
    for ax, row in zip(axes, rows):
        tag = f"rho{row['rho']}"
        plot_geodesic(out / f"geodesic_{tag}.png", row, grid)
        plot_geodesic(out / "geodesics.png", row, grid, ax=ax)
        row["adam_energy"] = animate_descent(
            out / f"geodesic_{tag}.gif", row["rho"], grid, num_steps, save_every
        )
    save_figure(fig, out / "geodesics.png", dpi=110)
    plot_energy_landscape(out / "energy_landscape.png", grid)

    print(f"Stein metric (s s^T + I)^-1, geodesic from {X0.tolist()} to {X1.tolist()}, 60 points")
    write_table(out, format_table(rows))
    for r in rows:
        print(
            f"rho={r['rho']}: solve {r['seconds'] * 1e3:.1f} ms (incl. compile); "
            f"Adam ({num_steps} steps) energy {r['adam_energy']:.6f} vs solver {r['energy']:.6f}"
        )
    print(f"figures written to {out}/")
    return rows


if __name__ == "__main__":
    run(main, __doc__, "figures/stein_gaussian")
