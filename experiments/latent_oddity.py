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
import optax

import jaxgeo as jg

from ._cli import run


PAIRS = [(0, 0), (3, 3), (0, 1), (4, 9), (2, 7), (6, 8)]  # digit labels of the end points


def train(seed: int, out: Path, smoke: bool):
    """Stage 1: the VAE by the ELBO. Stage 2: the calibrated variance (mean frozen)."""
    images, labels = jg.data.digits()
    data = jnp.asarray(images)
    key_enc, key_dec, key_fit, key_cal = jax.random.split(jax.random.key(seed), 4)
    width = 64 if smoke else 128
    vae = jg.nn.VAE(
        jg.nn.Encoder(64, 2, width=width, depth=2, key=key_enc),
        jg.nn.GaussianDecoder(2, 64, width=width, depth=2, key=key_dec),
    )
    num_steps = 400 if smoke else 20_000
    result = jg.train.fit(
        jg.train.elbo_loss,
        vae,
        data,
        optimizer=optax.adam(optax.cosine_decay_schedule(2e-3, num_steps, alpha=0.05)),
        num_steps=num_steps,
        batch_size=128,
        key=key_fit,
        chunk_size=200,
        checkpoint_every=1000 if num_steps % 1000 == 0 else 200,
        checkpoint_dir=out / "checkpoints" / "vae",
    )
    vae = result.model
    codes = jax.vmap(vae.encode)(data)
    decoder = jg.train.calibrate_variance(
        vae.decoder.mean,
        codes,
        data,
        key=key_cal,
        num_centres=16 if smoke else 64,
        num_steps=200 if smoke else 3000,
        chunk_size=100,
        checkpoint_every=100 if smoke else 1000,
        checkpoint_dir=out / "checkpoints" / "calibration",
    )
    return vae, decoder, codes, images, labels, result.losses


def nearest_code_distance(codes):
    def distance(z):
        return jnp.sqrt(jnp.min(jnp.sum((codes - z[None, :]) ** 2, axis=1)))

    return jax.jit(jax.vmap(distance))


def main(
    *, seed: int = 0, out_dir: str | Path = "figures/latent_oddity", smoke: bool = False
) -> dict:
    """Train, calibrate, draw; print and return the table."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vae, decoder, codes, images, labels, losses = train(seed, out, smoke)
    expected = decoder.metric()
    deterministic = jg.PullbackMetric(vae.decoder.mean)
    margin = 1.5
    lo, hi = np.asarray(codes.min(0)) - margin, np.asarray(codes.max(0)) + margin
    xlim, ylim = (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1]))
    grid = 40 if smoke else 120

    # (a) magnification factors
    fig, axes = plt.subplots(1, 2, figsize=(13, 6))
    for ax, metric, title in [
        (axes[0], deterministic, r"mean decoder: $J_\mu^\top J_\mu$"),
        (axes[1], expected, r"calibrated: $J_\mu^\top J_\mu + J_\sigma^\top J_\sigma$"),
    ]:
        mesh = jg.plot.magnification_factor(ax, metric, xlim, ylim, num=grid)
        fig.colorbar(mesh, ax=ax, label=r"$\log\sqrt{\det G(z)}$")
        ax.scatter(*np.asarray(codes).T, c=labels, cmap="tab10", s=4)
        ax.set(title=title, xlim=xlim, ylim=ylim, aspect="equal")
    fig.tight_layout()
    fig.savefig(out / "magnification.png", dpi=100)
    plt.close(fig)

    # (b) geodesics between codes, and (d) the table
    rng = np.random.default_rng(seed)
    distance_to_data = nearest_code_distance(codes)
    # The data region: within the 99th percentile of the codes' nearest-neighbour distances.
    d = np.sqrt(((np.asarray(codes)[:, None] - np.asarray(codes)[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    threshold = float(np.quantile(d.min(1), 0.99))
    num_points = 32 if smoke else 64
    solve = jax.jit(
        jax.vmap(partial(jg.geodesic_bvp, expected, num_points=num_points, throw=False))
    )
    ends = []
    for a, b in PAIRS:
        i = rng.choice(np.flatnonzero(labels == a))
        j = rng.choice(np.flatnonzero((labels == b) & (np.arange(len(labels)) != i)))
        ends.append((i, j))
    z0 = codes[jnp.array([i for i, _ in ends])]
    z1 = codes[jnp.array([j for _, j in ends])]
    sols = solve(z0, z1)
    lines = jax.vmap(lambda a, b: jg.straight_line(a, b, num_points))(z0, z1)
    line_lengths = jax.vmap(lambda c: jg.curve_length(expected, c))(lines)
    solved = np.asarray(sols.result == jg.RESULTS.successful)
    rows = []
    for k, (a, b) in enumerate(PAIRS):
        off_geo = float(jnp.mean(distance_to_data(sols.xs[k]) > threshold))
        off_line = float(jnp.mean(distance_to_data(lines[k]) > threshold))
        rows.append(
            dict(
                digits=f"{a}-{b}",
                result="success" if solved[k] else "failed",
                geodesic=float(sols.length[k]),
                line=float(line_lengths[k]),
                off_data_geodesic=off_geo,
                off_data_line=off_line,
            )
        )
    fig, ax = plt.subplots(figsize=(7, 6.5))
    mesh = jg.plot.magnification_factor(ax, expected, xlim, ylim, num=grid)
    fig.colorbar(mesh, ax=ax, label=r"$\log\sqrt{\det G(z)}$")
    ax.scatter(*np.asarray(codes).T, c=labels, cmap="tab10", s=3, alpha=0.6)
    for k in range(len(PAIRS)):
        jg.plot.curve(ax, sols.xs[k], color="w", lw=2.5)
        ax.plot(*np.asarray(lines[k]).T, color="w", ls=":", lw=1.2)
    ax.set(
        title="geodesics (solid) and straight lines (dotted), expected metric",
        xlim=xlim,
        ylim=ylim,
        aspect="equal",
    )
    fig.tight_layout()
    fig.savefig(out / "geodesics.png", dpi=100)
    plt.close(fig)

    # (c) decoded images along one geodesic and its straight line (digits 4 -> 9)
    k = PAIRS.index((4, 9))
    shown = np.linspace(0, num_points - 1, 10).round().astype(int)
    fig, axes = plt.subplots(2, len(shown), figsize=(1.3 * len(shown), 3.1))
    for row, curve, name in [(axes[0], sols.xs[k], "geodesic"), (axes[1], lines[k], "line")]:
        decoded = jax.vmap(decoder.mean)(curve[shown])
        for ax, image in zip(row, np.asarray(decoded)):
            ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            ax.set(xticks=[], yticks=[])
        row[0].set_ylabel(name)
    fig.suptitle("decoded along the geodesic and the straight line (4 -> 9)")
    fig.tight_layout()
    fig.savefig(out / "decoded.png", dpi=100)
    plt.close(fig)

    sigma_near = float(jnp.median(jax.vmap(lambda z: jnp.mean(decoder.std(z)))(codes)))
    far = jnp.asarray(hi + 3.0)
    sigma_far = float(jnp.mean(decoder.std(far)))
    table = [
        "| digits | result | geodesic length | straight-line length | off-data points: geodesic "
        "| off-data points: line |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        table.append(
            f"| {r['digits']} | {r['result']} | {r['geodesic']:.3f} | {r['line']:.3f} "
            f"| {100 * r['off_data_geodesic']:.0f}% | {100 * r['off_data_line']:.0f}% |"
        )
    table += [
        "",
        f"final ELBO (mean of the last 500 steps): {-float(np.mean(losses[-500:])):.2f}; "
        f"off-data = farther from every training code than {threshold:.3f} (99th "
        f"percentile of nearest-code distances)",
        f"calibrated sigma: median over the codes {sigma_near:.3f}, at {np.round(far, 2)} "
        f"{sigma_far:.3f} (ratio {sigma_far / sigma_near:.0f})",
    ]
    (out / "table.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))
    print(f"figures written to {out}/")
    return dict(rows=rows, sigma_near=sigma_near, sigma_far=sigma_far, threshold=threshold)


if __name__ == "__main__":
    run(main, __doc__, "figures/latent_oddity")
