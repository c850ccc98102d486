"""Geodesic motion skills (Beik-Mohammadi, Hauberg, Arvanitidis, Neumann, Rozo 2021), on
simulated demonstrations with a known ground truth: end-effector poses (p, q) in
R^3 x S^3, a VAE whose decoder is a Gaussian for positions and a von Mises-Fisher for
unit quaternions (`jg.nn.PoseDecoder`), calibrated so that positions turn uncertain and
orientations uniform away from the data; latent geodesics between start and goal poses,
decoded into motions, against the straight latent line.

    python -m experiments.motion_skills

writes under figures/motion_skills/:
  latent.png   the latent codes of the demonstrations over log sqrt(det G) of the
               expected metric, with the geodesics (expected metric; pulled-back
               Fisher-Rao metric with the KL energy) and the straight lines
  paths.png    the demonstrations in 3-D and the decoded motions, with orientation frames
  table.md     per start/goal pair and curve: its length under the expected metric, how
               far its decoded positions and orientations stray from the demonstrations,
               and the decoded sigma and kappa along it
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

from ._common import (
    checkpointing,
    dict_table,
    latent_box,
    magnification,
    output_dir,
    result_text,
    run,
    save_figure,
    write_table,
)


NUM_DEMOS = 6
POSITION_NOISE = 0.01  # metres
ORIENTATION_NOISE = 0.03  # radians


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
    precision and concentration as RBF networks of the codes (network frozen)."""
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
        num_steps=num_steps,
        **checkpointing(num_steps, 100, out / "checkpoints" / "calibration"),
    )
    return vae, decoder, codes, result.losses


# --- evaluation


def result_name(result, k: int) -> str:
    """`result_text` of element `k` of a batched result."""
    return result_text(jax.tree.map(lambda v: v[k], result))


def stray(decoder, demos_flat, zs):
    """Per latent point: the distance of the decoded position to the nearest demonstrated
    position (m), and the angle of the decoded orientation to that pose's (degrees)."""

    def one(z):
        pose = decoder.mean(z)
        d = jnp.linalg.norm(demos_flat[:, :3] - pose[None, :3], axis=1)
        i = jnp.argmin(d)
        return d[i], jnp.degrees(orientation_angle(pose[3:], demos_flat[i, 3:]))

    return jax.vmap(one)(zs)


def main(
    *, seed: int = 0, out_dir: str | Path = "figures/motion_skills", smoke: bool = False
) -> dict:
    """Simulate, train, solve, draw; print and return the table."""
    out = output_dir(out_dir)
    demos = demonstrations(seed, 40 if smoke else 100)
    poses = jnp.asarray(demos.reshape(-1, 7))
    vae, decoder, codes, losses = train(poses, seed, out, smoke)
    codes_by_demo = codes.reshape(NUM_DEMOS, -1, 2)
    expected = decoder.expected_metric()
    fisher_rao = decoder.fisher_rao_metric()

    # Pairs of a start code and a goal code: along one route, and across the two (where
    # the straight line passes the obstacle, through a region without demonstrations).
    pairs = [(0, 2), (5, 3), (0, 5), (4, 1)][: 2 if smoke else 4]
    z0 = jnp.stack([codes_by_demo[i, 0] for i, _ in pairs])
    z1 = jnp.stack([codes_by_demo[j, -1] for _, j in pairs])
    num_points = 24 if smoke else 64
    line = jax.vmap(lambda a, b: jg.straight_line(a, b, num_points))(z0, z1)
    kl = jax.jit(
        jax.vmap(
            partial(
                jg.geodesic_bvp, fisher_rao, num_points=num_points, energy="secant", throw=False
            )
        )
    )(z0, z1)
    # The expected metric spans six orders of magnitude across the latent space (its
    # J_kappa and J_sigma terms): from the straight line, with the midpoint rule, Newton
    # ran out of steps or left unresolved polylines on every pair in a first run. So its
    # discrete energy is the pullback's secant one, sum |f(z_k+1) - f(z_k)|^2 of the
    # concatenated maps, started from the Fisher-Rao geodesic.
    expected_geodesic = jax.jit(
        jax.vmap(
            lambda a, b, init: jg.geodesic_bvp(
                expected, a, b, num_points=num_points, init=init, energy="secant", throw=False
            )
        )
    )(z0, z1, kl.xs)
    curves = {
        "line": line,
        "geodesic (expected)": expected_geodesic,
        "geodesic (Fisher-Rao, KL)": kl,
    }
    outcome = {
        name: None if name == "line" else [result_name(c.result, k) for k in range(len(pairs))]
        for name, c in curves.items()
    }
    curves = {name: (c if name == "line" else c.xs) for name, c in curves.items()}

    demos_flat = poses
    rows = []
    for k, (i, j) in enumerate(pairs):
        for name, xs in curves.items():
            position_error, angle_error = stray(decoder, demos_flat, xs[k])
            rows.append(
                dict(
                    pair=f"start {i} -> goal {j}",
                    curve=name,
                    result="-" if outcome[name] is None else outcome[name][k],
                    length=float(jg.curve_length(expected, xs[k], energy="secant")),
                    kl_length=float(jg.curve_length(fisher_rao, xs[k], energy="secant")),
                    position=100 * float(position_error.mean()),
                    position_max=100 * float(position_error.max()),
                    angle=float(angle_error.mean()),
                    sigma=100 * float(jnp.mean(jax.vmap(decoder.position_std)(xs[k]))),
                    kappa_min=float(jnp.min(jax.vmap(decoder.kappa)(xs[k]))),
                )
            )
    lines = dict_table(
        "pair | curve | result | length (expected, secant) | length (KL) | to demos, mean (cm) | "
        "to demos, max (cm) | orientation error (deg) | decoded sigma (cm) | min decoded kappa",
        "{pair} | {curve} | {result} | {length:.3f} | {kl_length:.2f} | {position:.2f} | "
        "{position_max:.2f} | "
        "{angle:.1f} | {sigma:.2f} | {kappa_min:.1f}",
        rows,
    )
    write_table(out, lines)

    # latent.png
    xlim, ylim = latent_box(codes, 1.0)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    magnification(fig, ax, expected, xlim, ylim, num=30 if smoke else 100, clip=True)
    colours = plt.cm.viridis(np.linspace(0, 1, NUM_DEMOS))
    for d in range(NUM_DEMOS):
        ax.plot(*np.asarray(codes_by_demo[d]).T, ".", ms=3, color=colours[d])
    styles = {"line": "w--", "geodesic (expected)": "r-", "geodesic (Fisher-Rao, KL)": "m-"}
    for name, xs in curves.items():
        for k in range(len(pairs)):
            ax.plot(*np.asarray(xs[k]).T, styles[name], lw=1.5, label=name if k == 0 else None)
    ax.legend(loc="lower right", fontsize=8)
    ax.set(title="latent codes of the demonstrations, geodesics and lines", xlim=xlim, ylim=ylim)
    save_figure(fig, out / "latent.png")

    # paths.png
    fig = plt.figure(figsize=(12, 5.5))
    for panel, name in enumerate(["line", "geodesic (expected)", "geodesic (Fisher-Rao, KL)"]):
        ax = fig.add_subplot(1, 3, panel + 1, projection="3d")
        for d in range(NUM_DEMOS):
            ax.plot(*demos[d, :, :3].T, color="0.7", lw=1)
        for k in range(len(pairs)):
            decoded = np.asarray(jax.vmap(decoder.mean)(curves[name][k]))
            ax.plot(*decoded[:, :3].T, lw=2)
            for pose in decoded[:: max(1, num_points // 6)]:
                frame = rotation_matrix(pose[3:]) * 0.04
                for axis, colour in zip(frame.T, "rgb"):
                    ax.plot(*np.stack([pose[:3], pose[:3] + axis]).T, color=colour, lw=1)
        ax.set(title=f"decoded: {name}", xlabel="x", ylabel="y", zlabel="z")
        ax.view_init(elev=20, azim=-60)
    save_figure(fig, out / "paths.png")
    return dict(rows=rows, losses=np.asarray(losses))


if __name__ == "__main__":
    run(main, __doc__, "figures/motion_skills")
