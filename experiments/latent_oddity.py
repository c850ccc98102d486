"""Latent Space Oddity (Arvanitidis, Hansen, Hauberg, ICLR 2018) on scikit-learn's digits:
a VAE with a 2-D latent space, its calibrated decoder variance, and geodesics under the
expected pullback metric.

    python -m experiments.latent_oddity

writes under figures/latent_oddity/:
  magnification.png  (a) latent codes coloured by digit over log sqrt(det G(z)), for the
                         mean decoder's pullback J_mu^T J_mu and for the expected metric
                         with the calibrated variance
  geodesics.png      (b) geodesics between codes of the same and of different digits,
                         with the straight lines, over the expected metric
  decoded.png        (c) the 8x8 images decoded along a geodesic and along the line
  table.md           (d) lengths, and how far each curve strays from the training codes
Trained models are checkpointed under <out-dir>/checkpoints/ (a rerun resumes them).
"""

from functools import partial
from pathlib import Path

import jax


jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp
import matplotlib


matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import jaxgeo as jg

from ._common import (
    checkpointing,
    dict_table,
    digit_strip_figure,
    latent_box,
    latent_geodesics,
    magnification,
    output_dir,
    pick_pairs,
    run,
    save_figure,
    train_digit_vae,
    write_table,
)
from ._figures import plane_axes


PAIRS = [(0, 0), (3, 3), (0, 1), (4, 9), (2, 7), (6, 8)]  # digit labels of the end points


def train(seed: int, out: Path, smoke: bool):
    """Stage 1: the VAE by the ELBO. Stage 2: the calibrated variance (mean frozen)."""
    images, labels = jg.data.digits()
    data = jnp.asarray(images)
    vae, codes, losses, key_cal = train_digit_vae(
        data,
        jg.nn.GaussianDecoder,
        seed=seed,
        num_steps=20_000,
        smoke=smoke,
        checkpoint_dir=out / "checkpoints" / "vae",
    )
    num_steps = 200 if smoke else 3000
    decoder = jg.train.calibrate_variance(
        vae.decoder.mean,
        codes,
        data,
        key=key_cal,
        num_centres=16 if smoke else 64,
        num_steps=num_steps,
        **checkpointing(num_steps, 100, out / "checkpoints" / "calibration"),
    ).model
    return vae, decoder, codes, images, labels, losses


def nearest_code_distance(codes):
    def distance(z):
        return jnp.sqrt(jnp.min(jnp.sum((codes - z[None, :]) ** 2, axis=1)))

    return jax.jit(jax.vmap(distance))


def main(
    *, seed: int = 0, out_dir: str | Path = "figures/latent_oddity", smoke: bool = False
) -> dict:
    """Train, calibrate, draw; print and return the table."""
    out = output_dir(out_dir)
    vae, decoder, codes, images, labels, losses = train(seed, out, smoke)
    expected = decoder.expected_metric()
    deterministic = vae.decoder.pullback_metric()
    margin = 1.5
    xlim, ylim = latent_box(codes, margin)
    grid = 40 if smoke else 120

    # (a) magnification factors
    fig, axes = plt.subplots(1, 2, figsize=(13, 6))
    for ax, metric, title in [
        (axes[0], deterministic, r"mean decoder: $J_\mu^\top J_\mu$"),
        (axes[1], expected, r"calibrated: $J_\mu^\top J_\mu + J_\sigma^\top J_\sigma$"),
    ]:
        magnification(fig, ax, metric, xlim, ylim, num=grid)
        points = ax.scatter(*np.asarray(codes).T, c=labels, cmap="tab10", s=4)
        ax.legend(*points.legend_elements(), title="digit", loc="upper left", fontsize=7, ncol=2)
        ax.set(title=title, xlim=xlim, ylim=ylim, aspect="equal")
        plane_axes(ax, latent=True, legend=False)
    save_figure(fig, out / "magnification.png")

    # (b) geodesics between codes, and (d) the table
    distance_to_data = nearest_code_distance(codes)
    # The data region: within the 99th percentile of the codes' nearest-neighbour distances.
    d = np.sqrt(((np.asarray(codes)[:, None] - np.asarray(codes)[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    threshold = float(np.quantile(d.min(1), 0.99))
    # 32 points leave the 4-9 geodesic of the smoke run unresolved (its midpoint-rule
    # length is 0.4 of the length at the segments' ends, and 32% short).
    num_points = 64
    solve = jax.jit(
        jax.vmap(partial(jg.geodesic_bvp, expected, num_points=num_points, throw=False))
    )
    z0, z1 = pick_pairs(codes, labels, PAIRS, seed)
    sols = solve(z0, z1)
    lines = jax.vmap(lambda a, b: jg.straight_line(a, b, num_points))(z0, z1)
    line_lengths = jax.vmap(lambda c: jg.curve_length(expected, c))(lines)
    names = jg.result_name(sols.result)
    rows = []
    for k, (a, b) in enumerate(PAIRS):
        off_geo = float(jnp.mean(distance_to_data(sols.xs[k]) > threshold))
        off_line = float(jnp.mean(distance_to_data(lines[k]) > threshold))
        rows.append(
            dict(
                digits=f"{a}-{b}",
                result="success" if names[k] == "successful" else names[k],
                geodesic=float(sols.length[k]),
                line=float(line_lengths[k]),
                off_data_geodesic=off_geo,
                off_data_line=off_line,
            )
        )
    fig, ax = plt.subplots(figsize=(7, 6.5))
    latent_geodesics(
        fig,
        ax,
        expected,
        codes,
        labels,
        sols.xs,
        lines,
        lw=2.5,
        title="geodesics (solid) and straight lines (dotted), expected metric",
        results=sols.result,
        xlim=xlim,
        ylim=ylim,
        num=grid,
    )
    save_figure(fig, out / "geodesics.png")

    # (c) decoded images along one geodesic and its straight line (digits 4 -> 9)
    k = PAIRS.index((4, 9))
    digit_strip_figure(
        out / "decoded.png",
        [("geodesic", sols.xs[k]), ("line", lines[k])],
        num=10,
        decode=decoder.mean,
        title="decoded along the geodesic and the straight line (4 -> 9)",
        height=3.1,
    )

    sigma_near = float(jnp.median(jax.vmap(lambda z: jnp.mean(decoder.std(z)))(codes)))
    far = jnp.asarray(np.asarray(codes.max(0)) + margin + 3.0)
    sigma_far = float(jnp.mean(decoder.std(far)))
    table = dict_table(
        "digits | result | geodesic length | straight-line length | off-data points: geodesic "
        "| off-data points: line",
        "{digits} | {result} | {geodesic:.3f} | {line:.3f} | {off_data_geodesic:.0%} "
        "| {off_data_line:.0%}",
        rows,
    )
    table += [
        "",
        f"final ELBO (mean of the last 500 steps): {-float(np.mean(losses[-500:])):.2f}; "
        f"off-data = farther from every training code than {threshold:.3f} (99th "
        f"percentile of nearest-code distances)",
        f"calibrated sigma: median over the codes {sigma_near:.3f}, at {np.round(far, 2)} "
        f"{sigma_far:.3f} (ratio {sigma_far / sigma_near:.0f})",
    ]
    write_table(out, table)
    print(f"figures written to {out}/")
    return dict(rows=rows, sigma_near=sigma_near, sigma_far=sigma_far, threshold=threshold)


if __name__ == "__main__":
    run(main, __doc__, "figures/latent_oddity")
