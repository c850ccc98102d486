"""Learned scores: the Stein metric of score networks trained by score matching, the
Bayesian (ensemble) Stein metric, and geodesics between digit images.

    python -m experiments.learned_score

writes under figures/learned_score/:
  score_fields.png   (a) learned vs analytic score fields, rho = 0.8 Gaussian and a mixture
  geodesics.png      (b) geodesics under the learned and the analytic Stein metrics
  moons_ensemble.png (c) two moons: member geodesics of an 8-model ensemble and the
                         geodesic of the averaged (Bayesian) metric
  digits.png         (d) a geodesic between two digit images under the Stein metric of a
                         noise-conditional score model, next to the straight line
  table.md           lengths (learned vs analytic), training times
Trained models are checkpointed under <out-dir>/checkpoints/: a rerun resumes them.
"""

from functools import partial
from pathlib import Path

import jax


jax.config.update("jax_enable_x64", True)

import equinox as eqx
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
    digit_strip_figure,
    output_dir,
    run,
    save_figure,
    wall_time,
    write_table,
)
from ._figures import FAILED_STYLE, failures_entry, plane_axes, solved_curve


LIM = (-5.0, 5.0)
PAIRS = {
    "gaussian": [((-4.0, -2.0), (4.0, -2.0)), ((-2.0, -1.0), (1.5, 2.0))],
    "mixture": [
        ((-4.0, -2.0), (4.0, -2.0)),
        ((-2.0, -1.0), (1.5, 2.0)),
        ((-3.5, 3.0), (3.5, -3.5)),
    ],
}


def train_noise_conditional(data, *, key, num_steps, sigma_min, width, checkpoint_dir):
    """A noise-conditional score model by multi-level denoising score matching."""
    data = jnp.asarray(data)
    key_model, key_fit = jax.random.split(key)
    model = jg.nn.NoiseConditionalScore(
        data.shape[1],
        width=width,
        depth=3,
        shift=data.mean(0),
        scale=data.std(0) + 1e-3,
        key=key_model,
    )
    sigmas = jg.train.noise_levels(1.0, sigma_min, 10)
    result, seconds = wall_time(
        lambda: jg.train.fit(
            partial(jg.train.multiscale_denoising_score_matching, sigmas=sigmas),
            model,
            data,
            optimizer=optax.adam(optax.cosine_decay_schedule(2e-3, num_steps)),
            num_steps=num_steps,
            batch_size=512,
            key=key_fit,
            **checkpointing(num_steps, 250, checkpoint_dir),
        )
    )
    return result.model.at(sigma_min), seconds


def two_d_cases(seed: int, out: Path, smoke: bool) -> dict:
    """(a) and (b): learned vs analytic scores and geodesic lengths."""
    num_steps, size = (500, 4000) if smoke else (6000, 20_000)
    cases = {
        "gaussian": (jg.data.part2_gaussian(size, seed), jg.data.part2_score()),
        "mixture": (jg.data.gaussian_mixture(size, seed), jg.data.mixture_score()),
    }
    learned, rows, train_times = {}, [], {}
    for i, (name, (data, true)) in enumerate(cases.items()):
        learned[name], train_times[name] = train_noise_conditional(
            data,
            key=jax.random.key(seed * 100 + i),
            num_steps=num_steps,
            sigma_min=0.05,
            width=128,
            checkpoint_dir=out / "checkpoints" / name,
        )
        for a, b in PAIRS[name]:
            a, b = jnp.array(a), jnp.array(b)
            exact = jg.distance(jg.SteinMetric(true), a, b)
            approx = jg.geodesic_bvp(jg.SteinMetric(learned[name]), a, b, throw=False)
            rows.append(
                dict(
                    case=name,
                    x0=tuple(a.tolist()),
                    x1=tuple(b.tolist()),
                    analytic=float(exact),
                    learned=float(approx.length),
                    relative=float(approx.length / exact - 1),
                    result="success" if approx.result == jg.RESULTS.successful else "failed",
                )
            )

    fig, axes = plt.subplots(2, 2, figsize=(10, 10))
    for row, (name, (data, true)) in zip(axes, cases.items()):
        for ax, score, title in [(row[0], true, "analytic"), (row[1], learned[name], "learned")]:
            jg.plot.density(ax, true.log_prob, LIM, LIM, num=120)
            ax.scatter(*np.asarray(data[:400]).T, s=2, c="k", alpha=0.3, label="data")
            jg.plot.score_field(ax, score, LIM, LIM, num=15)
            ax.set(title=f"{name}: {title} score", aspect="equal", xlim=LIM, ylim=LIM)
            plane_axes(ax, legend=False)
    save_figure(fig, out / "score_fields.png")

    fig, axes = plt.subplots(1, 2, figsize=(12, 6))
    for ax, (name, (data, true)) in zip(axes, cases.items()):
        jg.plot.density(ax, true.log_prob, LIM, LIM, num=120)
        for k, (a, b) in enumerate(PAIRS[name]):
            a, b = jnp.array(a), jnp.array(b)
            exact = jg.geodesic_bvp(jg.SteinMetric(true), a, b)
            approx = jg.geodesic_bvp(jg.SteinMetric(learned[name]), a, b, throw=False)
            jg.plot.curve(
                ax, exact.xs, color="tab:blue", lw=2, label="analytic" if k == 0 else None
            )
            solved_curve(
                ax, approx, "learned" if k == 0 else None, color="tab:orange", lw=2, ls="--"
            )
        ax.set(title=f"{name}: Stein geodesics", aspect="equal", xlim=LIM, ylim=LIM)
        plane_axes(ax, loc="upper left")
    save_figure(fig, out / "geodesics.png")
    return dict(rows=rows, train_times=train_times)


def moons_ensemble(seed: int, out: Path, smoke: bool, num_members: int = 8) -> dict:
    """(c): an ensemble trained as one program, its member geodesics and the Bayesian one."""
    data = jnp.asarray(jg.data.two_moons(2000, noise=0.08, seed=seed))
    keys = jax.random.split(jax.random.key(seed + 7), num_members)
    shift, scale = data.mean(0), data.std(0)

    def make(key):
        return jg.nn.MLPScore(2, width=64, depth=3, shift=shift, scale=scale, key=key)

    models = eqx.filter_vmap(make)(keys)
    num_steps = 300 if smoke else 3000
    result, seconds = wall_time(
        lambda: jg.train.fit(
            jg.train.ensemble_loss(partial(jg.train.denoising_score_matching, sigma=0.1)),
            models,
            data,
            optimizer=optax.adam(optax.cosine_decay_schedule(2e-3, num_steps)),
            num_steps=num_steps,
            batch_size=256,
            key=jax.random.key(seed + 8),
            **checkpointing(num_steps, 100, out / "checkpoints" / "moons"),
        )
    )
    metric = jg.EnsembleMetric(eqx.filter_vmap(jg.SteinMetric)(result.model))
    x0, x1 = jnp.array([-1.0, 0.1]), jnp.array([1.0, 0.1])
    members, mean = jg.ensemble_geodesics(metric, x0, x1)
    lim_x, lim_y = (-2.5, 3.0), (-3.0, 1.6)
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.scatter(*np.asarray(data).T, s=3, c="k", alpha=0.25, label="data")
    ok = members.result == jg.RESULTS.successful
    for k in range(num_members):
        style = dict(color="tab:orange", lw=1, alpha=0.7) if ok[k] else FAILED_STYLE
        ax.plot(*np.asarray(members.xs[k]).T, **style)
    ax.plot([], [], color="tab:orange", label=f"member geodesics ({int(ok.sum())} solved)")
    failures_entry(ax, np.asarray(ok), "member geodesics")
    solved_curve(ax, mean, "Bayesian (averaged) metric", color="tab:purple", lw=3)
    ax.plot(*np.stack([x0, x1]).T, "k:", label="straight line")
    ax.set(title="two moons: ensemble Stein geodesics", xlim=lim_x, ylim=lim_y, aspect="equal")
    plane_axes(ax, loc="lower right")
    save_figure(fig, out / "moons_ensemble.png")
    spread = float(jnp.max(jnp.linalg.norm(members.xs - mean.xs[None], axis=-1)))
    return dict(
        members_successful=int(ok.sum()),
        members=num_members,
        mean_result="success" if mean.result == jg.RESULTS.successful else "failed",
        member_lengths=[float(v) for v in members.length],
        mean_length=float(mean.length),
        max_spread=spread,
        train_seconds=seconds,
        final_loss=float(result.losses[-100:].mean()),
    )


def digits_geodesic(seed: int, out: Path, smoke: bool) -> dict:
    """(d): a geodesic between two digits in pixel space (64-D)."""
    images, labels = jg.data.digits()
    sigma = 0.1
    score, seconds = train_noise_conditional(
        images,
        key=jax.random.key(seed + 11),
        num_steps=250 if smoke else 4000,
        sigma_min=sigma,
        width=256,
        checkpoint_dir=out / "checkpoints" / "digits",
    )
    a = jnp.asarray(images[np.flatnonzero(labels == 1)[0]])
    b = jnp.asarray(images[np.flatnonzero(labels == 7)[0]])
    num_points = 9 if smoke else 17
    metric = jg.SteinMetric(score, damping=1.0)
    sol = jg.geodesic_bvp(metric, a, b, num_points=num_points, throw=False)
    line = jg.straight_line(a, b, num_points)
    digit_strip_figure(
        out / "digits.png",
        [("geodesic", sol.xs), ("straight line", line)],
        num=9,
        title="digits 1 -> 7 under the Stein metric of a noise-conditional score (sigma = 0.1)",
        height=3.2,
    )
    # How far each curve strays from the data: distance to the nearest training image.
    data = jnp.asarray(images)

    def nearest(x):
        return jnp.sqrt(jnp.min(jnp.sum((data - x[None, :]) ** 2, axis=1)))

    return dict(
        result="success" if sol.result == jg.RESULTS.successful else str(sol.result),
        length=float(sol.length),
        line_length=float(jg.curve_length(metric, line)),
        geodesic_max_nearest=float(jnp.max(jax.vmap(nearest)(sol.xs))),
        line_max_nearest=float(jnp.max(jax.vmap(nearest)(line))),
        train_seconds=seconds,
    )


def main(
    *, seed: int = 0, out_dir: str | Path = "figures/learned_score", smoke: bool = False
) -> dict:
    """Make the learned-score figures; print and return their numbers."""
    out = output_dir(out_dir)
    two_d = two_d_cases(seed, out, smoke)
    moons = moons_ensemble(seed, out, smoke)
    digits = digits_geodesic(seed, out, smoke)
    lines = dict_table(
        "case | x0 | x1 | analytic length | learned length | relative | result",
        "{case} | {x0} | {x1} | {analytic:.4f} | {learned:.4f} | {relative:+.1%} | {result}",
        two_d["rows"],
    )
    lines += [
        "",
        f"training (s): {', '.join(f'{k} {v:.1f}' for k, v in two_d['train_times'].items())}, "
        f"moons ensemble of {moons['members']} {moons['train_seconds']:.1f}, "
        f"digits {digits['train_seconds']:.1f}",
        f"moons: {moons['members_successful']}/{moons['members']} member geodesics solved, "
        f"Bayesian geodesic {moons['mean_result']}, length {moons['mean_length']:.4f}, member "
        f"lengths {min(moons['member_lengths']):.4f}-{max(moons['member_lengths']):.4f}, "
        f"largest member-to-mean distance {moons['max_spread']:.3f}",
        f"digits 1 -> 7: geodesic {digits['result']}, Stein length {digits['length']:.4f} vs "
        f"straight line {digits['line_length']:.4f}; largest distance to the nearest training "
        f"image: geodesic {digits['geodesic_max_nearest']:.3f}, "
        f"line {digits['line_max_nearest']:.3f}",
    ]
    write_table(out, lines)
    print(f"figures written to {out}/")
    return dict(two_d=two_d, moons=moons, digits=digits)


if __name__ == "__main__":
    run(main, __doc__, "figures/learned_score")
