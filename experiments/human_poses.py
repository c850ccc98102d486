"""Human poses on a torus (Pulling back information geometry, Arvanitidis et al. 2022, the
slides' last application): a simulated planar figure with eight joint angles performs
three motions (walking, waving, arm circles); a VAE whose decoder is a product of von
Mises distributions, one per angle, decoded in natural parameters
eta_j = kappa_j (cos mu_j, sin mu_j) (smooth across the angles' wrap at +-pi) and
blended towards eta = 0 (the uniform distribution) away from the codes, so that the
decoded concentration is calibrated: high on the data, near zero away from it. The
pulled-back Fisher-Rao metric's geodesics (KL energy, started from paths through a k-NN
graph of the codes) against straight latent lines, decoded into stick figures.

    python -m experiments.human_poses

writes under figures/human_poses/:
  latent.png  the codes of the three motions over log10 of the decoded concentration
              (mean over the joints), with every start (o) / goal (*) pair's geodesic
              (solid; a failed solve dotted, named FAILED with its result) and straight
              line (dashed)
  poses.png   per pair, the decoded poses along the geodesic (top) and the line
              (bottom), left limbs blue and right red, grey where the decoded
              concentration is below KAPPA_CONFIDENT (the decoder does not know the
              pose there)
  table.md    per pair and curve: the solver's result, the KL length, how far the
              decoded poses stray from the demonstrated ones (radians over the eight
              angles, the largest and the mean along the curve), and the decoded
              concentration along it (its smallest mean over the joints)
Trained models are checkpointed under <out-dir>/checkpoints/ (a rerun resumes them).
"""

from collections.abc import Callable
from functools import partial
from pathlib import Path

import jax


jax.config.update("jax_enable_x64", True)

import equinox as eqx
import jax.numpy as jnp
import jax.scipy.special as jss
import jax.tree_util as jtu
import matplotlib


matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import optax

import jaxgeo as jg

from ._common import (
    checkpointing,
    dict_table,
    output_dir,
    result_text,
    run,
    save_figure,
    wall_time,
    write_table,
)


JOINTS = (
    "left hip",
    "left knee",
    "right hip",
    "right knee",
    "left shoulder",
    "left elbow",
    "right shoulder",
    "right elbow",
)
MOTIONS = ("walk", "wave", "arm circles")
# Limb lengths (m) and the figure's fixed points: the pelvis at the origin, the
# shoulders and the neck above it.
THIGH, SHIN, UPPER_ARM, FOREARM = 0.45, 0.45, 0.3, 0.28
SHOULDER, NECK = np.array([0.0, 0.5]), np.array([0.0, 0.55])
# The demonstrations' noise: von Mises with this concentration on every angle (about
# 0.06 rad).
NOISE_KAPPA = 300.0
# A decoded concentration below this (mean over the joints, about 0.3 rad) is a pose
# the decoder does not know: drawn grey.
KAPPA_CONFIDENT = 10.0
# The decoder's network outputs natural parameters in units of this: kappa ~ 1e2 on
# the data, where a tanh network's outputs are O(1).
NATURAL_SCALE = 100.0
BANDWIDTH_SCALE = 1.0


def joint_angles(motion: str, phase: np.ndarray) -> np.ndarray:
    """The eight angles (radians; hips and shoulders from hanging straight down, knees
    and elbows relative to their parent limb) of `motion` at `phase` (shape `(n,)`);
    shape `(n, 8)`. Arm circles turn both shoulders all the way round: those angles wrap
    at +-pi."""
    s, c = np.sin(phase), np.cos(phase)
    zero = np.zeros_like(phase)
    if motion == "walk":
        hips = (0.45 * s, -0.45 * s)
        knees = (-0.35 * (1 - np.cos(phase - 0.6)), -0.35 * (1 - np.cos(phase + np.pi - 0.6)))
        angles = [hips[0], knees[0], hips[1], knees[1], -0.35 * s, zero + 0.3, 0.35 * s, zero + 0.3]
    elif motion == "wave":
        angles = [
            zero + 0.05,
            zero,
            zero - 0.05,
            zero,
            zero + 0.1,
            zero + 0.1,
            zero - 2.6,
            -0.6 - 0.45 * s,
        ]
    elif motion == "arm circles":  # (a windmill: the arms half a turn apart)
        angles = [
            zero + 0.15,
            zero,
            zero - 0.15,
            zero,
            phase,
            zero + 0.1 * c,
            phase + np.pi,
            zero - 0.1 * c,
        ]
    else:
        raise ValueError(f"unknown motion {motion!r}")
    return np.stack(angles, axis=1)


def wrap(angles):
    """Angles in (-pi, pi]."""
    return np.pi - np.mod(np.pi - angles, 2 * np.pi)


def demonstrations(seed: int, per_motion: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`per_motion` noisy poses of every motion at uniform random phases: the angles
    `(n, 8)` (wrapped), the motion of each, and its phase."""
    rng = np.random.default_rng(seed)
    angles, labels, phases = [], [], []
    for m, motion in enumerate(MOTIONS):
        phase = rng.uniform(0, 2 * np.pi, per_motion)
        clean = joint_angles(motion, phase)
        angles.append(wrap(clean + rng.vonmises(0.0, NOISE_KAPPA, clean.shape)))
        labels.append(np.full(per_motion, m))
        phases.append(phase)
    return np.concatenate(angles), np.concatenate(labels), np.concatenate(phases)


def features(angles):
    """(cos, sin) of every angle: the VAE's data, continuous on the torus."""
    return jnp.concatenate([jnp.cos(angles), jnp.sin(angles)], axis=-1)


def skeleton(angles) -> dict[str, np.ndarray]:
    """The figure's limbs as polylines (forward kinematics): two legs and two arms, each
    `(3, 2)` points, and the torso."""
    angles = np.asarray(angles)

    def down(theta):
        return np.array([np.sin(theta), -np.cos(theta)])

    def limb(origin, first, second, upper, lower):
        middle = origin + upper * down(first)
        return np.stack([origin, middle, middle + lower * down(first + second)])

    hip_l, knee_l, hip_r, knee_r, sh_l, el_l, sh_r, el_r = angles
    pelvis = np.zeros(2)
    return {
        "torso": np.stack([pelvis, NECK]),
        "left leg": limb(pelvis, hip_l, knee_l, THIGH, SHIN),
        "right leg": limb(pelvis, hip_r, knee_r, THIGH, SHIN),
        "left arm": limb(SHOULDER, sh_l, el_l, UPPER_ARM, FOREARM),
        "right arm": limb(SHOULDER, sh_r, el_r, UPPER_ARM, FOREARM),
    }


def _log_i0(kappa):
    return jnp.log(jss.i0e(kappa)) + kappa


class _Scaled(eqx.Module):
    """`scale * mlp(z)`."""

    mlp: eqx.nn.MLP
    scale: float = eqx.field(static=True)

    def __call__(self, z):
        return self.scale * self.mlp(z)


class TorusDecoder(jg.nn.AbstractDecoder):
    r"""$p(\theta \mid z) = \prod_j \mathrm{vM}(\theta_j;\ \mu_j(z), \kappa_j(z))$ over
    the joint angles, from natural parameters
    $\eta_j(z) = \kappa_j(\cos\mu_j, \sin\mu_j)$ = `natural(z)`, shape `(2J,)`, angle
    by angle (the parameters of `Product(VonMisesFisher(2), J)`): smooth in $z$ across
    the angles' wrap. Its data are the angles' features $(\cos\theta, \sin\theta)$,
    shape `(2J,)` (first the J cosines, then the J sines)."""

    natural: Callable
    num_angles: int = eqx.field(static=True)
    latent_dim: int = eqx.field(static=True)

    def _natural(self, z):
        r"""`natural(z)` as `(J, 2)`: each angle's $\kappa(\cos\mu, \sin\mu)$."""
        return self.natural(z).reshape(self.num_angles, 2)

    @property
    def family(self) -> jg.families.Product:
        return jg.families.Product(jg.families.VonMises(), self.num_angles)

    def params(self, z):
        r"""The family's parameters $(\mu_1, \kappa_1, \dots, \mu_J, \kappa_J)$."""
        a, b = self._natural(z).T
        return jnp.stack([jnp.arctan2(b, a), jnp.hypot(a, b)], axis=1).reshape(-1)

    def mean(self, z):
        """The mean angles $\\mu(z)$, shape `(J,)` (the family's mean; the data are their
        features): `pullback_metric()` is the pullback of the flat torus of angles."""
        return self.params(z)[0::2]

    def concentration(self, z):
        """The concentrations $\\kappa(z)$."""
        return self.params(z)[1::2]

    def log_prob(self, x, z):
        r"""$\sum_j \eta_j \cdot (\cos\theta_j, \sin\theta_j) - \log 2\pi I_0(|\eta_j|)$
        for the features `x` $= (\cos\theta, \sin\theta)$."""
        eta = self._natural(z)
        features = x.reshape(2, self.num_angles).T
        kappa = jnp.linalg.norm(eta, axis=1)
        return (
            jnp.sum(eta * features)
            - jnp.sum(_log_i0(kappa))
            - self.num_angles * jnp.log(2 * jnp.pi)
        )


def train(data, seed: int, out: Path, smoke: bool):
    """Stage 1: the VAE (2-D latent space) by the ELBO. Stage 2: the decoder's natural
    parameters blended towards zero (the uniform distribution) away from the codes
    (`jg.train.extrapolating_decoder`, RBFs twice their clusters' spread), its network
    fine-tuned through the blend by maximum likelihood given the fixed codes."""
    key_enc, key_dec, key_fit, key_cal = jax.random.split(jax.random.key(seed), 4)
    width = 32 if smoke else 64
    num_angles = len(JOINTS)
    net = _Scaled(eqx.nn.MLP(2, 2 * num_angles, width, 2, jax.nn.tanh, key=key_dec), NATURAL_SCALE)
    vae = jg.nn.VAE(
        jg.nn.Encoder(2 * num_angles, 2, width=width, depth=2, key=key_enc),
        TorusDecoder(net, num_angles, latent_dim=2),
    )
    num_steps = 300 if smoke else 8000
    result = jg.train.fit(
        jg.train.elbo_loss,
        vae,
        data,
        optimizer=optax.adam(optax.cosine_decay_schedule(3e-3, num_steps, alpha=0.05)),
        num_steps=num_steps,
        batch_size=128,
        key=key_fit,
        **checkpointing(num_steps, 100, out / "checkpoints" / "torus_vae"),
    )
    vae = result.model
    codes = jax.vmap(vae.encode)(data)
    blend = jg.train.extrapolating_decoder(
        vae.decoder.natural,
        jg.families.Product(jg.families.VonMisesFisher(2), num_angles),
        codes,
        jnp.zeros(2 * num_angles),
        num_centres=8 if smoke else 32,
        bandwidth_scale=BANDWIDTH_SCALE,
        seed=seed,
    )
    decoder = TorusDecoder(blend.params, num_angles, latent_dim=2)
    trainable = jtu.tree_map(lambda _: False, decoder)
    trainable = eqx.tree_at(
        lambda d: d.natural.__self__.params_fn,
        trainable,
        jtu.tree_map(eqx.is_inexact_array, decoder.natural.__self__.params_fn),
    )

    def loss(model, batch, key):
        del key
        z, x = batch
        return -jnp.mean(jax.vmap(model.log_prob)(x, z))

    num_steps = 200 if smoke else 3000
    calibrated = jg.train.fit(
        loss,
        decoder,
        (codes, data),
        optimizer=optax.adam(optax.cosine_decay_schedule(1e-3, num_steps, alpha=0.1)),
        num_steps=num_steps,
        batch_size=128,
        key=key_cal,
        trainable=trainable,
        **checkpointing(num_steps, 100, out / "checkpoints" / "torus_calibration"),
    )
    return vae, calibrated.model, codes


def circular_gap(a, b):
    """The Euclidean norm of the angle differences, each wrapped to (-pi, pi]."""
    d = jnp.mod(a - b + jnp.pi, 2 * jnp.pi) - jnp.pi
    return jnp.sqrt(jnp.sum(d**2, axis=-1))


def stray(decoder, angles, zs) -> tuple[float, float]:
    """The largest and the mean, along the curve `zs`, of the decoded mean pose's
    distance (radians, over all the angles) to the nearest demonstrated pose."""
    decoded = jax.vmap(decoder.mean)(zs)
    nearest = jax.vmap(lambda m: jnp.min(circular_gap(m[None], angles)))(decoded)
    return float(jnp.max(nearest)), float(jnp.mean(nearest))


def mean_kappa(decoder, zs):
    return jnp.mean(jax.vmap(decoder.concentration)(zs), axis=-1)


def latent_figure(path, decoder, codes, labels, curves, outcome, pairs, *, num) -> None:
    lo, hi = np.min(np.asarray(codes), 0), np.max(np.asarray(codes), 0)
    pad = 0.25 * (hi - lo)
    gx, gy = np.meshgrid(*(np.linspace(lo[i] - pad[i], hi[i] + pad[i], num) for i in range(2)))
    grid = jnp.stack([gx.ravel(), gy.ravel()], axis=1)
    kappa = np.asarray(jax.jit(partial(mean_kappa, decoder))(grid)).reshape(gx.shape)
    fig, ax = plt.subplots(figsize=(10, 6))
    mesh = ax.pcolormesh(gx, gy, np.log10(np.maximum(kappa, 1e-3)), cmap="Greys", shading="auto")
    fig.colorbar(
        mesh, ax=ax, shrink=0.8, label=r"$\log_{10}$ decoded concentration $\bar\kappa(z)$"
    )
    for m, motion in enumerate(MOTIONS):
        chosen = np.asarray(labels) == m
        ax.scatter(*np.asarray(codes)[chosen].T, s=6, color=f"C{m}", label=motion, zorder=2)
    for k, (z0, z1) in enumerate(pairs):
        colour = f"C{k + 3}"
        geodesic = np.asarray(curves["geodesic"][k])
        failed = outcome[k] != "success"
        ax.plot(
            *geodesic.T,
            color=colour,
            lw=2,
            ls=":" if failed else "-",
            label=f"pair {k}: geodesic" + (f" FAILED ({outcome[k]})" if failed else ""),
            zorder=3,
        )
        ax.plot(*np.asarray(curves["line"][k]).T, color=colour, lw=1.2, ls="--", zorder=3)
        ax.plot(*np.asarray(z0), "o", color=colour, ms=8, mec="k", zorder=4)
        ax.plot(*np.asarray(z1), "*", color=colour, ms=13, mec="k", zorder=4)
    ax.plot([], [], "k--", lw=1.2, label="straight lines (dashed)")
    ax.plot([], [], "ko", label="start")
    ax.plot([], [], "k*", ms=10, label="goal")
    ax.set(xlabel="latent $z_1$", ylabel="latent $z_2$", aspect="equal")
    ax.set_title("human poses: KL geodesics (pulled-back Fisher–Rao)\nand straight latent lines")
    ax.legend(loc="upper left", bbox_to_anchor=(1.3, 1.0), fontsize=8)
    save_figure(fig, path)


LIMB_COLOURS = {"torso": "k", "left": "C0", "right": "C3"}


def poses_figure(path, decoder, curves, pairs, *, per_curve: int) -> None:
    names = list(curves)
    rows = [(k, name) for k in range(len(pairs)) for name in names]
    fig, axes = plt.subplots(
        len(rows), per_curve, figsize=(1.3 * per_curve, 1.6 * len(rows)), squeeze=False
    )
    for row, (k, name) in zip(axes, rows):
        xs = np.asarray(curves[name][k])
        picks = np.linspace(0, len(xs) - 1, per_curve).round().astype(int)
        angles = np.asarray(jax.vmap(decoder.mean)(jnp.asarray(xs[picks])))
        kappa = np.asarray(mean_kappa(decoder, jnp.asarray(xs[picks])))
        for ax, pose, conf in zip(row, angles, kappa):
            known = conf >= KAPPA_CONFIDENT
            for limb, points in skeleton(pose).items():
                colour = LIMB_COLOURS[limb.split()[0]] if known else "0.75"
                ax.plot(*points.T, color=colour, lw=2 if limb == "torso" else 1.5)
            ax.plot(*NECK, "o", color="k" if known else "0.75", ms=5)
            ax.set(xlim=(-0.9, 0.9), ylim=(-1.0, 1.2), aspect="equal", xticks=[], yticks=[])
            ax.set_xlabel(rf"$\bar\kappa$ = {conf:.0f}", fontsize=7)
        row[0].set_ylabel(f"pair {k}\n{name}", fontsize=8)
    fig.suptitle(
        "decoded mean poses along each curve, start to goal (left limbs blue, right red; "
        f"grey: decoded concentration below {KAPPA_CONFIDENT:g})",
        fontsize=10,
    )
    save_figure(fig, path)


def main(
    *, seed: int = 0, out_dir: str | Path = "figures/human_poses", smoke: bool = False
) -> dict:
    """Simulate, train, solve, draw; print and return the table."""
    out = output_dir(out_dir)
    angles, labels, phases = demonstrations(seed, 40 if smoke else 300)
    angles = jnp.asarray(angles)
    data = features(angles)
    (vae, decoder, codes), seconds = wall_time(train, data, seed, out, smoke)
    print(f"training: {seconds:.0f} s")
    # The decoder's likelihood in natural parameters is the family's in (mu, kappa).
    check = jax.vmap(
        lambda x, t, z: decoder.log_prob(x, z) - decoder.family.log_prob(decoder.params(z), t)
    )(data[:8], angles[:8], codes[:8])
    assert float(jnp.max(jnp.abs(check))) < 1e-8, check
    on_data = np.asarray(mean_kappa(decoder, codes))
    print(
        f"decoded concentration on the codes: median {np.median(on_data):.0f}, 5 % "
        f"{np.percentile(on_data, 5):.0f} (the demonstrations' noise: {NOISE_KAPPA:g})"
    )
    metric = decoder.fisher_rao_metric()

    # Pairs of codes: across motions, and halfway round the arm circles (whose codes
    # form a loop: its straight line cuts across it).
    def code(motion: str, phase: float):
        m = MOTIONS.index(motion)
        candidates = np.flatnonzero(np.asarray(labels) == m)
        gap = np.abs(np.angle(np.exp(1j * (phases[candidates] - phase))))
        return codes[candidates[np.argmin(gap)]]

    pairs = [
        (code("walk", 0.0), code("wave", 0.0)),
        (code("arm circles", 0.5 * np.pi), code("arm circles", 1.5 * np.pi)),
        (code("walk", 0.5 * np.pi), code("arm circles", np.pi)),
        (code("wave", np.pi), code("arm circles", 0.0)),
    ][: 2 if smoke else 4]
    z0 = jnp.stack([a for a, _ in pairs])
    z1 = jnp.stack([b for _, b in pairs])
    num_points = 32 if smoke else 128
    graph = jg.knn_graph(metric, codes, k=8)
    inits = jax.vmap(lambda a, b: jg.graph_geodesic(graph, a, b, num_points=num_points))(z0, z1)
    solve = jax.jit(
        jax.vmap(
            lambda a, b, init: jg.geodesic_bvp(
                metric, a, b, init=init, num_points=num_points, energy="secant", throw=False
            )
        )
    )
    solutions, seconds = wall_time(solve, z0, z1, inits)
    print(f"geodesics: {seconds:.1f} s for {len(pairs)} pairs (compilation included)")
    outcome = [
        result_text(jax.tree.map(lambda v, k=k: v[k], solutions.result)) for k in range(len(pairs))
    ]
    curves = {
        "geodesic": solutions.xs,
        "line": jax.vmap(lambda a, b: jg.straight_line(a, b, num_points))(z0, z1),
    }
    rows = []
    for k in range(len(pairs)):
        for name, xs in curves.items():
            largest, mean = stray(decoder, angles, xs[k])
            kappa = mean_kappa(decoder, xs[k])
            rows.append(
                dict(
                    pair=k,
                    curve=name,
                    result=outcome[k] if name == "geodesic" else "-",
                    steps=int(solutions.stats["num_steps"][k]) if name == "geodesic" else "-",
                    length=float(jg.curve_length(metric, xs[k], energy="secant")),
                    stray_max=largest,
                    stray_mean=mean,
                    kappa_min=float(jnp.min(kappa)),
                )
            )
    latent_figure(
        out / "latent.png", decoder, codes, labels, curves, outcome, pairs, num=40 if smoke else 120
    )
    poses_figure(out / "poses.png", decoder, curves, pairs, per_curve=7)
    write_table(
        out,
        dict_table(
            "pair | curve | result | Newton steps | KL length | stray, largest (rad) | "
            "stray, mean (rad) | smallest decoded concentration",
            "{pair} | {curve} | {result} | {steps} | {length:.4g} | {stray_max:.3f} | "
            "{stray_mean:.3f} | {kappa_min:.3g}",
            rows,
        ),
    )
    print(f"figures written to {out}/")
    return dict(rows=rows, kappa_on_data=float(np.median(on_data)))


if __name__ == "__main__":
    run(main, __doc__, "figures/human_poses")
