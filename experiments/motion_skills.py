"""Geodesic motion skills (Beik-Mohammadi, Hauberg, Arvanitidis, Neumann, Rozo 2021), on
simulated demonstrations with a known ground truth: end-effector poses (p, q) in
R^3 x S^3 around an obstacle, a VAE whose decoder is a Gaussian for positions and a von
Mises-Fisher for unit quaternions (`jg.nn.PoseDecoder`), calibrated so that positions turn
uncertain and orientations uniform away from the data (the calibration is printed
against the maximum-likelihood sigma and kappa, on training and held-out poses); latent
geodesics between start and goal poses, decoded into motions, against the straight
latent line.

The expected metric J_mu_p'J_mu_p + J_sigma_p'J_sigma_p + J_mu_r'J_mu_r +
J_kappa'J_kappa adds m^2, m^2, quaternion and kappa^2 terms; summed as they are, the
kappa term (kappa ~ 1e4) rules. Its unit-free form divides each term by its median
|J_t|_F^2 over the training codes (`PoseDecoder.expected_metric(codes)`; the four
scales are printed). Both are solved from the straight line, as is the pulled-back
Fisher-Rao metric (KL energy).

    python -m experiments.motion_skills

writes under figures/motion_skills/:
  latent.png   per kind of curve (line, expected unit-free, expected raw units,
               Fisher-Rao), the latent codes of the demonstrations over the decoded
               position sigma, the four start (o) / goal (*) pairs, failed solves dashed
               and named FAILED with their result
  paths.png    top: the demonstrations, the obstacle and the decoded motions in 3-D (in
               metres), with orientation frames, dotted where the decoded sigma exceeds
               5 cm; bottom: the decoded sigma along each curve
  table.md     per start/goal pair and curve: the solver's result and Newton steps, its
               length under the unit-free expected metric (also with each segment
               subdivided 16x: what the secant energy's chords skip), the raw-unit
               expected metric and KL, how far its decoded positions and orientations
               stray from the demonstrations, the decoded sigma and kappa along it, and
               its clearance from the obstacle
Trained models are checkpointed under <out-dir>/checkpoints/ (a rerun resumes them).
"""

from functools import partial
from pathlib import Path

import jax


jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp
import matplotlib


matplotlib.use("Agg")
import equinox as eqx
import matplotlib.pyplot as plt
import numpy as np
import optax
from matplotlib import patheffects
from matplotlib.colors import LogNorm

import jaxgeo as jg

from ._common import (
    checkpointing,
    dict_table,
    latent_box,
    output_dir,
    result_text,
    run,
    save_figure,
    wall_time,
    write_table,
)


NUM_DEMOS = 6
POSITION_NOISE = 0.01  # metres
ORIENTATION_NOISE = 0.03  # radians
# The obstacle the demonstrations go around: a solid vertical cylinder standing on the
# table (z = 0) between start and goal, 5-9 cm clear of every demonstration.
OBSTACLE_CENTRE = (0.4, 0.0)  # m (x, y)
OBSTACLE_RADIUS = 0.08  # m
OBSTACLE_TOP = 0.45  # m


# --- quaternions (w, x, y, z), unit norm


def quaternion_product(a, b):
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ]
    )


def axis_angle(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    return np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * axis])


def slerp(a, b, t):
    """Spherical linear interpolation from `a` to `b` (the shorter way) at times `t`."""
    if np.dot(a, b) < 0:
        b = -b
    theta = np.arccos(np.clip(np.dot(a, b), -1, 1))
    t = np.asarray(t)[:, None]
    if theta < 1e-8:
        return np.repeat(a[None], len(t), 0)
    return (np.sin((1 - t) * theta) * a + np.sin(t * theta) * b) / np.sin(theta)


def rotation_matrix(q):
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def orientation_angle(q1, q2):
    """The rotation angle between two unit quaternions, q and -q identified (radians)."""
    return 2 * jnp.arccos(jnp.clip(jnp.abs(jnp.sum(q1 * q2, axis=-1)), 0, 1))


# --- the demonstrations


def demonstrations(seed: int, num_times: int) -> np.ndarray:
    """`NUM_DEMOS` demonstrations of one reaching skill, shape (demos, times, 7): from a
    start around (0.4, -0.3, 0.2) to a goal around (0.4, 0.3, 0.2) around an obstacle
    between them, half of them passing it on the left and half on the right (a swing of
    15-19 cm, a height of 25-31 cm); the orientation turns from a start to a goal
    orientation through an intermediate one tilted to the side of the route (slerp in two
    halves). Positions get N(0, 1 cm) noise, orientations a random rotation of 0.03 rad.
    Nothing was demonstrated through the obstacle."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, num_times)
    start_q = axis_angle([0, 1, 0], np.pi)  # gripper pointing down
    goal_q = quaternion_product(axis_angle([0, 0, 1], np.pi / 2), start_q)
    halfway = slerp(start_q, goal_q, [0.5])[0]
    demos = []
    for k in range(NUM_DEMOS):
        side, rank = (-1, k) if k < NUM_DEMOS // 2 else (1, k - NUM_DEMOS // 2)
        start = np.array([0.4, -0.3, 0.2]) + rng.normal(0, 0.01, 3)
        goal = np.array([0.4, 0.3, 0.2]) + rng.normal(0, 0.01, 3)
        bump = np.sin(np.pi * t)[:, None]
        offset = np.array([side * (0.15 + 0.02 * rank), 0.0, 0.25 + 0.03 * rank])
        positions = start + t[:, None] * (goal - start) + bump * offset
        positions += rng.normal(0, POSITION_NOISE, positions.shape)
        middle = quaternion_product(axis_angle([1, 0, 0], side * (0.4 + 0.05 * rank)), halfway)
        half = num_times // 2
        first = slerp(start_q, middle, np.linspace(0, 1, half))
        second = slerp(middle, goal_q, np.linspace(0, 1, num_times - half + 1))[1:]
        orientations = np.concatenate([first, second])
        noise = [axis_angle(rng.normal(size=3), ORIENTATION_NOISE) for _ in range(num_times)]
        orientations = np.array([quaternion_product(n, q) for n, q in zip(noise, orientations)])
        # q and −q are one rotation: flip every quaternion into the start's hemisphere.
        orientations *= np.sign(orientations @ start_q)[:, None]
        demos.append(np.concatenate([positions, orientations], axis=1))
    return np.stack(demos)


# --- training


def train(poses, seed: int, out: Path, smoke: bool):
    """Stage 1: a VAE (2-D latent space) by the ELBO. Stage 2: the decoder's position
    precision and concentration as RBF networks of the codes (network frozen), each RBF
    twice as wide as its k-means cluster's spread (`bandwidth_scale=2`). At 1x (seed 0)
    the fitted kappa rippled between the 24 centres (4,000 to 19,000 over the codes,
    10-90 %), the unit-free expected metric with it, and its geodesics zigzagged along the
    ripples (total turning 41-47 rad per curve, against 11-16 at 2x); the 2x fields also
    fit better (18.50 against 18.29 nats per training pose) and still leave the ring's
    interior uncertain (the straight lines cross decoded sigmas of 0.24-4 m)."""
    key_enc, key_dec, key_fit, key_cal = jax.random.split(jax.random.key(seed), 4)
    width = 32 if smoke else 64
    vae = jg.nn.VAE(
        jg.nn.Encoder(7, 2, width=width, depth=2, key=key_enc),
        jg.nn.PoseDecoder(2, width=width, depth=2, key=key_dec),
    )
    num_steps = 300 if smoke else 12_000
    result = jg.train.fit(
        jg.train.elbo_loss,
        vae,
        poses,
        optimizer=optax.adam(optax.cosine_decay_schedule(3e-3, num_steps, alpha=0.05)),
        num_steps=num_steps,
        batch_size=128,
        key=key_fit,
        **checkpointing(num_steps, 100, out / "checkpoints" / "vae"),
    )
    vae = result.model
    codes = jax.vmap(vae.encode)(poses)
    num_steps = 200 if smoke else 3000
    decoder = jg.train.calibrate_pose_decoder(
        vae.decoder,
        codes,
        poses,
        key=key_cal,
        num_centres=8 if smoke else 24,
        bandwidth_scale=2.0,
        num_steps=num_steps,
        **checkpointing(num_steps, 100, out / "checkpoints" / "calibration"),
    ).model
    return vae, decoder, codes, result.losses


# --- evaluation


def result_name(result, k: int) -> str:
    """`result_text` of element `k` of a batched result."""
    return result_text(jax.tree.map(lambda v: v[k], result))


def obstacle_clearance(positions):
    """Signed distance (m) of positions, shape (..., 3), to the solid obstacle cylinder
    (negative inside)."""
    positions = np.asarray(positions)
    radial = np.hypot(*(positions[..., :2] - np.asarray(OBSTACLE_CENTRE)).T).T
    height = positions[..., 2]
    outside = np.hypot(
        np.maximum(radial - OBSTACLE_RADIUS, 0), np.maximum(height - OBSTACLE_TOP, 0)
    )
    inside = -np.minimum(OBSTACLE_RADIUS - radial, OBSTACLE_TOP - height)
    return np.where((radial < OBSTACLE_RADIUS) & (height < OBSTACLE_TOP), inside, outside)


def subdivided(xs, times: int):
    """The polyline `xs` with each segment cut into `times` equal straight pieces: its
    secant length then shows what the solver's chords skipped."""
    t = jnp.linspace(0, 1, times, endpoint=False)[:, None, None]
    pieces = xs[:-1][None] * (1 - t) + xs[1:][None] * t  # (times, segments, d)
    return jnp.concatenate([jnp.swapaxes(pieces, 0, 1).reshape(-1, xs.shape[1]), xs[-1:]])


def stray(decoder, demos_flat, zs):
    """Per latent point: the distance of the decoded position to the nearest demonstrated
    position (m), and the angle of the decoded orientation to that pose's (degrees)."""

    def one(z):
        pose = decoder.mean(z)
        d = jnp.linalg.norm(demos_flat[:, :3] - pose[None, :3], axis=1)
        i = jnp.argmin(d)
        return d[i], jnp.degrees(orientation_angle(pose[3:], demos_flat[i, 3:]))

    return jax.vmap(one)(zs)


def calibration_check(decoder, codes, poses) -> dict:
    """The calibrated noise against its maximum-likelihood constants on `poses` (their
    `codes`): median decoded sigma (cm) and kappa over the codes, the ML values, the mean
    log-likelihood per pose, and what the best constant rescaling of kappa would add to it
    (0 when kappa is calibrated; 1.5 nats with the capped kappa of an earlier version)."""
    std, kappa = jg.train.pose_noise_mle(decoder, codes, poses)

    def log_likelihood(factor):
        scaled = eqx.tree_at(
            lambda d: d.concentration, decoder, lambda z: factor * decoder.kappa(z)
        )
        return jnp.mean(jax.vmap(scaled.log_prob)(poses, codes))

    factors = jnp.geomspace(1 / 8, 8, 97)
    values = jax.vmap(log_likelihood)(factors)
    best = int(jnp.argmax(values))
    return dict(
        sigma=100 * np.median(np.asarray(jax.vmap(decoder.position_std)(codes)), 0),
        sigma_ml=100 * np.asarray(std),
        kappa=float(jnp.median(jax.vmap(decoder.kappa)(codes))),
        kappa_ml=float(kappa),
        log_likelihood=float(log_likelihood(1.0)),
        best_factor=float(factors[best]),
        best_gain=float(values[best] - log_likelihood(1.0)),
    )


def print_calibration(name: str, check: dict) -> None:
    sigma = ", ".join(f"{v:.2f}" for v in check["sigma"])
    sigma_ml = ", ".join(f"{v:.2f}" for v in check["sigma_ml"])
    print(
        f"calibration, {name}: decoded sigma (median, cm) {sigma} vs ML {sigma_ml}; decoded "
        f"kappa (median) {check['kappa']:,.0f} vs ML {check['kappa_ml']:,.0f}; "
        f"log-likelihood {check['log_likelihood']:.2f} nats per pose, best constant kappa "
        f"factor {check['best_factor']:.2f} ({max(check['best_gain'], 0.0):+.3f} nats)"
    )


# --- figures


PAIR_COLOURS = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
SIGMA_LIMITS = (0.7, 1500.0)  # cm, the colour and y range of every sigma plot
SIGMA_DOTTED = 0.05  # m: decoded paths drawn dotted where the decoded sigma exceeds this
OUTLINE = [patheffects.withStroke(linewidth=3.2, foreground="w")]


def curve_label(pair: str, outcome: str | None) -> str:
    return pair if outcome in (None, "success") else f"{pair}: FAILED ({outcome})"


def failed_count(outcome) -> str:
    """' (n of m FAILED)' for a list of results, '' when all succeeded (or a line)."""
    failed = 0 if outcome is None else sum(r != "success" for r in outcome)
    return f" ({failed} of {len(outcome)} FAILED)" if failed else ""


def curve_style(k: int, result: str | None, name: str) -> dict:
    """Pair k's colour; a line dotted, a failed solve dashed and faint."""
    if result not in (None, "success"):
        return dict(color=PAIR_COLOURS[k], ls="--", alpha=0.75)
    return dict(color=PAIR_COLOURS[k], ls=":" if name == "line" else "-")


def decoded_sigma(decoder, zs):
    """The decoded position sigma's largest axis (m) at latent points `zs`, shape (..., 2)."""
    flat = jnp.reshape(zs, (-1, 2))
    sigma = jnp.max(jax.vmap(decoder.position_std)(flat), axis=1)
    return np.asarray(sigma).reshape(np.shape(zs)[:-1])


def latent_figure(path, decoder, curves, outcome, codes_by_demo, pairs, *, xlim, ylim, num):
    """One panel per kind of curve over the decoded sigma (the uncertainty the expected
    metric's sigma term turns into length): codes by route, start (o) and goal (*) of
    each pair, failed solves dashed and named."""
    grid = np.stack(np.meshgrid(np.linspace(*xlim, num), np.linspace(*ylim, num)), axis=-1)
    sigma = 100 * decoded_sigma(decoder, jnp.asarray(grid))
    fig, axes = plt.subplots(2, 2, figsize=(13, 11.5))
    for ax, (name, xs) in zip(axes.flat, curves.items()):
        mesh = ax.pcolormesh(
            grid[..., 0],
            grid[..., 1],
            sigma,
            cmap="Greys",
            norm=LogNorm(*SIGMA_LIMITS),
            shading="auto",
        )
        fig.colorbar(mesh, ax=ax, label="decoded position sigma, largest axis (cm)")
        for d in range(NUM_DEMOS):
            route = d < NUM_DEMOS // 2
            ax.plot(
                *np.asarray(codes_by_demo[d]).T,
                ".",
                ms=2.5,
                color="tab:purple" if route else "tab:olive",
                label=(
                    ("codes, demos 0-2 (left route)" if route else "codes, demos 3-5 (right route)")
                    if d in (0, NUM_DEMOS // 2)
                    else None
                ),
            )
        for k, (i, j) in enumerate(pairs):
            result = None if outcome[name] is None else outcome[name][k]
            ax.plot(
                *np.asarray(xs[k]).T,
                lw=2,
                path_effects=OUTLINE,
                label=curve_label(f"{i} -> {j}", result),
                **curve_style(k, result, name),
            )
            start, goal = np.asarray(xs[k][0]), np.asarray(xs[k][-1])
            ax.plot(*start, "o", ms=8, mfc=PAIR_COLOURS[k], mec="k")
            ax.plot(*goal, "*", ms=13, mfc=PAIR_COLOURS[k], mec="k")
        ax.plot([], [], "o", ms=8, mfc="w", mec="k", ls="", label="start (demo i's first pose)")
        ax.plot([], [], "*", ms=13, mfc="w", mec="k", ls="", label="goal (demo j's last pose)")
        # pairs in the panel's empty top-left corner; codes and markers once, below
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles[2:-2], labels[2:-2], loc="upper left", fontsize=7.5, framealpha=0.9)
        ax.set(
            title=name + failed_count(outcome[name]),
            xlim=xlim,
            ylim=ylim,
            xlabel="latent $z_1$ (no unit)",
            ylabel="latent $z_2$ (no unit)",
        )
    fig.legend(
        handles[:2] + handles[-2:],
        labels[:2] + labels[-2:],
        loc="lower center",
        ncol=4,
        fontsize=9,
        bbox_to_anchor=(0.5, -0.03),
    )
    fig.suptitle(
        "latent codes of the demonstrations and the curves from start i to goal j, over the "
        "decoded position sigma"
    )
    save_figure(fig, path)


def draw_obstacle(ax):
    theta, height = np.meshgrid(np.linspace(0, 2 * np.pi, 40), np.linspace(0, OBSTACLE_TOP, 2))
    x = OBSTACLE_CENTRE[0] + OBSTACLE_RADIUS * np.cos(theta)
    y = OBSTACLE_CENTRE[1] + OBSTACLE_RADIUS * np.sin(theta)
    ax.plot_surface(x, y, height, color="0.3", alpha=0.35, linewidth=0)


def paths_figure(path, decoder, demos, curves, outcome, pairs, *, num_points):
    """Top: decoded motions in 3-D (demonstrations grey, obstacle dark grey, orientation
    frames), dotted where the decoded sigma exceeds SIGMA_DOTTED, failed solves dashed
    and named. Bottom: the decoded sigma along each curve (one log scale for all)."""
    names = list(curves)
    fig = plt.figure(figsize=(5 * len(names), 10))
    bottoms = []
    for panel, name in enumerate(names):
        ax = fig.add_subplot(2, len(names), panel + 1, projection="3d")
        bottom = fig.add_subplot(
            2, len(names), len(names) + panel + 1, sharey=bottoms[0] if bottoms else None
        )
        bottoms.append(bottom)
        for d in range(NUM_DEMOS):
            ax.plot(
                *demos[d, :, :3].T, color="0.75", lw=0.8, label="demonstrations" if d == 0 else None
            )
        draw_obstacle(ax)
        for k, (i, j) in enumerate(pairs):
            xs = curves[name][k]
            decoded = np.asarray(jax.vmap(decoder.mean)(xs))
            sigma = decoded_sigma(decoder, xs)
            result = None if outcome[name] is None else outcome[name][k]
            style = curve_style(k, result, name)
            label = curve_label(f"{i} -> {j}", result)
            sure = np.where(sigma <= SIGMA_DOTTED, 1.0, np.nan)[:, None]
            # where the decoder is sure: solid (a failed solve: dashed); elsewhere dotted
            sure_style = style | dict(ls="--" if style["ls"] == "--" else "-")
            ax.plot(*(decoded[:, :3] * sure).T, lw=2, label=label, **sure_style)
            ax.plot(*decoded[:, :3].T, color=style["color"], lw=1.2, ls=":")
            ax.plot(*decoded[0, :3], "o", ms=6, mfc=PAIR_COLOURS[k], mec="k")
            ax.plot(*decoded[-1, :3], "*", ms=10, mfc=PAIR_COLOURS[k], mec="k")
            for pose in decoded[:: max(1, num_points // 6)]:
                frame = rotation_matrix(pose[3:]) * 0.035
                for axis, c in zip(frame.T, ["#d62728", "#2ca02c", "#1f77b4"]):
                    ax.plot(*np.stack([pose[:3], pose[:3] + axis]).T, color=c, lw=0.8)
            t = np.linspace(0, 1, len(sigma))
            bottom.semilogy(t, 100 * sigma, lw=2, label=label, **style)
        ax.plot([], [], color="0.3", lw=6, alpha=0.35, label="obstacle")
        ax.plot(
            [], [], color="k", lw=1.2, ls=":", label=f"decoded sigma > {100 * SIGMA_DOTTED:.0f} cm"
        )
        ax.set(
            title=f"decoded: {name}" + failed_count(outcome[name]),
            xlabel="x (m)",
            ylabel="y (m)",
            zlabel="z (m)",
            xlim=(0.1, 0.7),
            ylim=(-0.4, 0.4),
            zlim=(0.0, 0.6),
        )
        ax.view_init(elev=22, azim=-50)
        ax.legend(loc="upper left", fontsize=7)
        bottom.axhline(
            100 * SIGMA_DOTTED, color="k", lw=0.8, ls=":", label=f"{100 * SIGMA_DOTTED:.0f} cm"
        )
        bottom.set(
            xlabel="curve parameter t (start 0, goal 1)",
            ylabel="decoded position sigma, largest axis (cm)",
            title=f"decoded sigma along: {name}",
            ylim=SIGMA_LIMITS,
        )
        bottom.grid(True, which="major", alpha=0.3)
        bottom.legend(fontsize=7, loc="upper left")
    fig.suptitle(
        "decoded motions (start o, goal *; orientation frames: gripper x red, y green, z blue) "
        "and the decoder's uncertainty along them",
        y=1.02,
    )
    save_figure(fig, path)


def main(
    *, seed: int = 0, out_dir: str | Path = "figures/motion_skills", smoke: bool = False
) -> dict:
    """Simulate, train, solve, draw; print and return the table."""
    out = output_dir(out_dir)
    num_times = 40 if smoke else 100
    demos = demonstrations(seed, num_times)
    poses = jnp.asarray(demos.reshape(-1, 7))
    vae, decoder, codes, losses = train(poses, seed, out, smoke)
    # The calibration against the maximum-likelihood noise, on the training poses and on
    # held-out demonstrations of the same skill (encoded by the trained encoder).
    held_out = jnp.asarray(demonstrations(seed + 1000, num_times).reshape(-1, 7))
    calibration = {
        "training poses": calibration_check(decoder, codes, poses),
        "held-out poses": calibration_check(decoder, jax.vmap(vae.encode)(held_out), held_out),
    }
    for name, check in calibration.items():
        print_calibration(name, check)
    codes_by_demo = codes.reshape(NUM_DEMOS, -1, 2)
    # The expected metric's four terms (m^2, m^2, quaternion, kappa^2 per latent unit^2)
    # each divided by its median magnitude on the codes: unit-free (see
    # PoseDecoder.expected_metric). The raw sum is kept for comparison.
    scales = decoder.expected_metric_scales(codes)
    print(
        "expected metric: median |J_t|_F^2 on the codes, t = mu_p, sigma_p, mu_r, kappa_r: "
        + ", ".join(f"{float(v):.3g}" for v in scales)
    )
    unit_free = decoder.expected_metric(codes)
    raw = decoder.expected_metric()
    fisher_rao = decoder.fisher_rao_metric()

    # Pairs of a start code and a goal code: along one route, and across the two. Their
    # straight latent lines cross the ring's interior, which holds no demonstration: the
    # decoded mean stays near the demonstrations (and 1-9 cm clear of the obstacle), but
    # the decoded sigma there rises to 0.5-4 m; that is the lines' failure.
    pairs = [(0, 2), (5, 3), (0, 5), (4, 1)][: 2 if smoke else 4]
    z0 = jnp.stack([codes_by_demo[i, 0] for i, _ in pairs])
    z1 = jnp.stack([codes_by_demo[j, -1] for _, j in pairs])
    # 256 points: with 64, single chords of the secant energy spanned up to 0.6 latent
    # units, and the curves' lengths with each segment subdivided 16x exceeded their
    # secant lengths by up to 32 %.
    num_points = 24 if smoke else 256
    line = jax.vmap(lambda a, b: jg.straight_line(a, b, num_points))(z0, z1)
    # Every geodesic starts from the straight line. The expected metrics and the
    # Fisher-Rao metric vary over orders of magnitude across the latent space, so each uses
    # a secant energy: the KL energy for Fisher-Rao, sum |f(z_k+1) - f(z_k)|^2 of the
    # concatenated maps for the expected metrics (the midpoint rule leaves polylines
    # unresolved there).
    solve = {
        name: jax.jit(
            jax.vmap(
                partial(
                    jg.geodesic_bvp, metric, num_points=num_points, energy="secant", throw=False
                )
            )
        )
        for name, metric in [
            ("geodesic (expected, unit-free)", unit_free),
            ("geodesic (expected, raw units)", raw),
            ("geodesic (Fisher-Rao, KL)", fisher_rao),
        ]
    }
    solutions = {}
    for name, fn in solve.items():
        solutions[name], seconds = wall_time(fn, z0, z1)
        print(f"{name}: {seconds:.1f} s for {len(pairs)} pairs (compilation included)")
    curves = {"line": line} | {name: sol.xs for name, sol in solutions.items()}
    outcome = {"line": None} | {
        name: [result_name(sol.result, k) for k in range(len(pairs))]
        for name, sol in solutions.items()
    }
    steps = {name: np.asarray(sol.stats["num_steps"]) for name, sol in solutions.items()}

    demos_flat = poses
    rows = []
    for k, (i, j) in enumerate(pairs):
        for name, xs in curves.items():
            position_error, angle_error = stray(decoder, demos_flat, xs[k])
            sigma = jnp.max(jax.vmap(decoder.position_std)(xs[k]), axis=1)
            decoded = np.asarray(jax.vmap(decoder.position_mean)(xs[k]))
            rows.append(
                dict(
                    pair=f"start {i} -> goal {j}",
                    curve=name,
                    result="-" if outcome[name] is None else outcome[name][k],
                    steps="-" if name not in steps else str(int(steps[name][k])),
                    length=float(jg.curve_length(unit_free, xs[k], energy="secant")),
                    fine_length=float(
                        jg.curve_length(unit_free, subdivided(xs[k], 16), energy="secant")
                    ),
                    raw_length=float(jg.curve_length(raw, xs[k], energy="secant")),
                    kl_length=float(jg.curve_length(fisher_rao, xs[k], energy="secant")),
                    position=100 * float(position_error.mean()),
                    position_max=100 * float(position_error.max()),
                    angle=float(angle_error.mean()),
                    sigma=100 * float(jnp.mean(sigma)),
                    sigma_max=100 * float(jnp.max(sigma)),
                    kappa_min=float(jnp.min(jax.vmap(decoder.kappa)(xs[k]))),
                    clearance=100 * float(obstacle_clearance(decoded).min()),
                )
            )
    lines = dict_table(
        "pair | curve | result | Newton steps | length (expected, unit-free) | "
        "same, segments subdivided 16x | "
        "length (expected, raw units) | length (KL) | to demos, mean (cm) | "
        "to demos, max (cm) | orientation error (deg) | decoded sigma, mean (cm) | "
        "decoded sigma, max (cm) | min decoded kappa | obstacle clearance, min (cm)",
        "{pair} | {curve} | {result} | {steps} | {length:.2f} | {fine_length:.2f} | "
        "{raw_length:.1f} | "
        "{kl_length:.2f} | {position:.2f} | {position_max:.2f} | {angle:.1f} | {sigma:.2f} | "
        "{sigma_max:.1f} | {kappa_min:.1f} | {clearance:.1f}",
        rows,
    )
    write_table(out, lines)

    xlim, ylim = latent_box(codes, 1.0)
    latent_figure(
        out / "latent.png",
        decoder,
        curves,
        outcome,
        codes_by_demo,
        pairs,
        xlim=xlim,
        ylim=ylim,
        num=30 if smoke else 100,
    )
    paths_figure(out / "paths.png", decoder, demos, curves, outcome, pairs, num_points=num_points)
    return dict(
        rows=rows, losses=np.asarray(losses), calibration=calibration, scales=np.asarray(scales)
    )


if __name__ == "__main__":
    run(main, __doc__, "figures/motion_skills")
