"""Information geometry (Part I; *Pulling back information geometry*, Arvanitidis et al.
2022): Fisher–Rao geodesics of distribution families, pulled back through decoders of
distribution parameters, against the black-box KL energy; and the Fisher information of a
classifier against the empirical Fisher.

    python -m experiments.information_geometry

writes under figures/information_geometry/:
  normal.png      (a) Fisher–Rao geodesics between univariate Normals in the (mu, sigma)
                      half-plane, and the densities along one geodesic and along the line
  toy.png         (b) 2-D latent models decoding to Bernoulli, Beta and Dirichlet
                      parameters, fitted to synthetic data on an arc: pulled-back
                      Fisher–Rao geodesics, KL-energy geodesics and straight lines over
                      log sqrt(det G(z))
  digits.png      (c) a Bernoulli-decoder VAE on binarised digits: geodesics in the latent
                      space, and the images decoded along one geodesic and its line
  fisher.png      (d) spectra of the Fisher information and of the empirical Fisher of a
                      small classifier on digits, early in training and trained
  table.md        the key numbers
Trained models are checkpointed under <out-dir>/checkpoints/ (a rerun resumes them).
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
import optax

import jaxgeo as jg

from ._common import (
    checkpointing,
    dict_table,
    digit_strips,
    latent_box,
    latent_geodesics,
    magnification,
    output_dir,
    pick_pairs,
    result_text,
    run,
    save_figure,
    train_digit_vae,
    write_table,
)
from ._figures import plane_axes, solved_curve, START_GOAL


F = jg.families


# --- (a) univariate Normals ---------------------------------------------------------------

NORMAL_PAIRS = [([-2.0, 0.5], [2.0, 0.5]), ([-1.0, 0.3], [1.5, 1.5]), ([0.0, 0.3], [0.0, 2.0])]


def normal_distance(a, b):
    """Closed form: sqrt(2) times the hyperbolic distance of (mu / sqrt 2, sigma)."""
    (m1, s1), (m2, s2) = a, b
    return np.sqrt(2) * np.arccosh(1 + ((m1 - m2) ** 2 / 2 + (s1 - s2) ** 2) / (2 * s1 * s2))


def normal_geodesics(out: Path, num_points: int) -> list[dict]:
    metric = jg.FisherRaoMetric(F.Normal())
    z0 = jnp.array([a for a, _ in NORMAL_PAIRS])
    z1 = jnp.array([b for _, b in NORMAL_PAIRS])
    sols = jax.vmap(lambda a, b: jg.geodesic_bvp(metric, a, b, num_points=num_points))(z0, z1)
    distances = jax.vmap(lambda a, b: jg.distance(metric, a, b))(z0, z1)
    solved = np.asarray(sols.result == jg.RESULTS.successful)
    rows = []
    for k, (a, b) in enumerate(NORMAL_PAIRS):
        exact = normal_distance(a, b)
        rows.append(
            dict(
                pair=f"N({a[0]:g}, {a[1]:g}²) - N({b[0]:g}, {b[1]:g}²)",
                solved=bool(solved[k]),
                distance=float(distances[k]),
                exact=exact,
                rel_error=abs(float(distances[k]) - exact) / exact,
                line=float(jg.curve_length(metric, jg.straight_line(z0[k], z1[k], num_points))),
            )
        )

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    ax = axes[0]
    mu, sigma = np.meshgrid(np.linspace(-2.4, 2.4, 9), np.linspace(0.4, 2.2, 5))
    points = jnp.asarray(np.stack([mu.ravel(), sigma.ravel()], axis=1))
    jg.plot.metric_ellipses(ax, metric, points, radius=0.12, color="0.6")
    for k in range(len(NORMAL_PAIRS)):
        jg.plot.curve(ax, sols.xs[k], color=f"C{k}", lw=2)
        ax.plot(*np.asarray(jnp.stack([z0[k], z1[k]])).T, color=f"C{k}", ls=":", lw=1)
    ax.set(xlabel=r"$\mu$", ylabel=r"$\sigma$", title="Fisher–Rao geodesics (solid), lines")
    ax.legend(handles=START_GOAL, loc="upper left", fontsize=8)
    grid = np.linspace(-4, 4, 400)
    shown = np.linspace(0, num_points - 1, 9).round().astype(int)
    colours = plt.cm.viridis(np.linspace(0, 1, len(shown)))
    line = np.asarray(jg.straight_line(z0[0], z1[0], num_points))
    for ax, curve, name in [
        (axes[1], np.asarray(sols.xs[0]), "along the geodesic"),
        (axes[2], line, "along the straight line"),
    ]:
        for colour, (mu, sigma) in zip(colours, curve[shown]):
            density = np.exp(-0.5 * ((grid - mu) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
            ax.plot(grid, density, color=colour)
        ax.set(xlabel="x", ylabel="density", title=f"{rows[0]['pair']}: {name}", ylim=(0, 1.0))
    save_figure(fig, out / "normal.png")
    return rows


# --- (b) the toy experiment of Pulling back information geometry --------------------------


def arc_codes(key, num: int):
    """Latent codes on a noisy arc with a gap on the left (angles in ±0.6π)."""
    k1, k2 = jax.random.split(key)
    theta = jax.random.uniform(k1, (num,), minval=-0.6 * jnp.pi, maxval=0.6 * jnp.pi)
    radius = 1 + 0.05 * jax.random.normal(k2, (num,))
    return radius[:, None] * jnp.stack([jnp.cos(theta), jnp.sin(theta)], axis=1)


TOY_FAMILIES = [
    # name, title, family, the maximally uncertain parameters far from the data
    ("bernoulli", "Bernoulli (16 pixels)", F.Product(F.Bernoulli(), 16), 0.5),
    ("beta", "Beta (8 dimensions)", F.Product(F.Beta(), 8), 1.0),
    ("dirichlet", "Dirichlet (5 categories)", F.Dirichlet(5), 1.0),
]


def clip_to_support(family, xs):
    """Keep samples strictly inside (0, 1) / the open simplex (float rounding)."""
    if isinstance(family, F.Dirichlet):
        xs = jnp.clip(xs, 1e-9, None)
        return xs / jnp.sum(xs, axis=-1, keepdims=True)
    if isinstance(family, F.Product) and isinstance(family.family, F.Beta):
        return jnp.clip(xs, 1e-9, 1 - 1e-9)
    return xs


def toy_data(family, key, num: int):
    """Codes on the arc and one observation per code from a smooth random parameter map
    eta*(z) = family.constrain(A tanh(B z + c))."""
    k_codes, k_a, k_b, k_c, k_x = jax.random.split(key, 5)
    codes = arc_codes(k_codes, num)
    a = 2.5 * jax.random.normal(k_a, (family.num_params, 8))
    b, c = 0.7 * jax.random.normal(k_b, (8, 2)), jax.random.normal(k_c, (8,))
    etas = jax.vmap(lambda z: family.constrain(a @ jnp.tanh(b @ z + c)))(codes)
    keys = jax.random.split(k_x, num)
    xs = jax.vmap(lambda e, k: family.sample(e, k))(etas, keys)
    return codes, clip_to_support(family, xs)


def fit_decoder(family, far, codes, xs, *, key, num_steps, checkpoint_dir):
    """Maximum likelihood of an MLP decoder through the extrapolating blend."""
    k_net, k_fit = jax.random.split(key)
    net = eqx.nn.MLP(2, family.num_params, 64, 2, activation=jnp.tanh, key=k_net)
    params_fn = eqx.Partial(lambda net, z: family.constrain(net(z)), net)
    far = jnp.full(family.num_params, far)
    decoder = jg.train.extrapolating_decoder(
        params_fn, family, codes, far, num_centres=24, bandwidth_scale=2.0
    )
    result = jg.train.fit_extrapolating_decoder(
        decoder,
        codes,
        xs,
        key=k_fit,
        num_steps=num_steps,
        optimizer=optax.adam(optax.cosine_decay_schedule(3e-3, num_steps, alpha=0.05)),
        **checkpointing(num_steps, 100, checkpoint_dir, every=500),
    )
    return result.model, float(np.mean(result.losses[-100:]))


def toy_geodesics(decoder, z0, z1, num_points: int) -> dict:
    """The pulled-back Fisher–Rao geodesic by the (symmetrised) KL energy, the geodesic
    of the midpoint-rule energy started from it, and the straight line; lengths by the
    KL rule (a consistent discretisation of the Fisher–Rao length, second order)."""
    metric = decoder.fisher_rao_metric()
    kl = jg.geodesic_bvp(metric, z0, z1, num_points=num_points, energy="secant", throw=False)
    mid = jg.geodesic_bvp(metric, z0, z1, num_points=num_points, init=kl.xs, throw=False)
    line = jg.straight_line(z0, z1, num_points)

    def length(curve):
        return float(jg.curve_length(metric, curve, energy="secant"))

    return dict(
        metric=metric,
        kl=kl,
        mid=mid,
        line=line,
        kl_solved=bool(kl.result == jg.RESULTS.successful),
        mid_solved=bool(mid.result == jg.RESULTS.successful),
        mid_unresolved=bool(mid.result == jg.RESULTS.unresolved_curve),
        kl_length=length(kl.xs),
        mid_length=length(mid.xs),
        line_length=length(line),
        kl_speed=float(kl.stats["constant_speed_ratio"]),
        mid_speed=float(mid.stats["constant_speed_ratio"]),
        mid_vs_kl=float(jnp.max(jnp.linalg.norm(mid.xs - kl.xs, axis=1))),
    )


def toy_experiment(out: Path, seed: int, smoke: bool, num_points: int) -> list[dict]:
    z0 = jnp.array([np.cos(0.55 * np.pi), np.sin(0.55 * np.pi)])
    z1 = jnp.array([np.cos(0.55 * np.pi), -np.sin(0.55 * np.pi)])
    lim = (-1.9, 1.9)
    fig, axes = plt.subplots(1, len(TOY_FAMILIES), figsize=(6 * len(TOY_FAMILIES), 5.4))
    rows = []
    for k, (ax, (name, title, family, far)) in enumerate(zip(axes, TOY_FAMILIES)):
        key = jax.random.fold_in(jax.random.key(seed), k)
        codes, xs = toy_data(family, key, 300 if smoke else 600)
        decoder, nll = fit_decoder(
            family,
            far,
            codes,
            xs,
            key=key,
            num_steps=200 if smoke else 4000,
            checkpoint_dir=out / "checkpoints" / f"toy-{name}",
        )
        r = toy_geodesics(decoder, z0, z1, num_points)
        magnification(fig, ax, r["metric"], lim, lim, num=40 if smoke else 100, clip=True)
        ax.scatter(*np.asarray(codes).T, s=3, c="tab:green", alpha=0.5, label="codes (data)")
        solved_curve(ax, r["kl"], "geodesic (KL energy)", color="w", lw=2.5)
        mid = f"midpoint-rule energy: {result_text(r['mid'].result)}"
        jg.plot.curve(ax, r["mid"].xs, color="tab:cyan", lw=1.2, ls="--", label=mid)
        ax.plot(*np.asarray(r["line"]).T, color="w", ls=":", lw=1.2, label="straight line")
        ax.set(title=title, xlim=lim, ylim=lim, aspect="equal")
        # (below the panel: inside, it hid the goal; grey, or the white curves vanish)
        plane_axes(ax, latent=True, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
        ax.get_legend().get_frame().set_facecolor("0.6")
        rows.append(
            dict(
                family=title,
                nll=nll,
                **{k: v for k, v in r.items() if k not in ("metric", "mid", "kl", "line")},
            )
        )
    save_figure(fig, out / "toy.png")
    return rows


# --- (c) a Bernoulli VAE on binarised digits ----------------------------------------------

DIGIT_PAIRS = [(0, 0), (0, 1), (4, 9), (2, 7), (6, 8)]


def digits_vae(out: Path, seed: int, smoke: bool, num_points: int) -> list[dict]:
    images, labels = jg.data.digits()
    data = jnp.asarray(images > 0.5, jnp.float64)
    vae, codes, _, key_tune = train_digit_vae(
        data,
        jg.nn.BernoulliDecoder,
        seed=seed,
        num_steps=10_000,
        smoke=smoke,
        checkpoint_dir=out / "checkpoints" / "digits-vae",
    )
    # Second stage: the decoder, with the encoder's codes fixed, through the blend to p = 1/2.
    decoder = jg.train.extrapolating_decoder(
        vae.decoder.params,  # (the probabilities of the family's Bernoullis)
        vae.decoder.family,
        codes,
        jnp.full(64, 0.5),
        num_centres=16 if smoke else 48,
        bandwidth_scale=2.0,
    )
    tune_steps = 200 if smoke else 3000
    decoder = jg.train.fit_extrapolating_decoder(
        decoder,
        codes,
        data,
        key=key_tune,
        num_steps=tune_steps,
        **checkpointing(tune_steps, 100, out / "checkpoints" / "digits-decoder"),
    ).model
    metric = decoder.fisher_rao_metric()

    z0, z1 = pick_pairs(codes, labels, DIGIT_PAIRS, seed)
    # The KL energy: robust where G nearly vanishes (see toy_geodesics).
    solve = eqx.filter_jit(
        jax.vmap(
            lambda a, b: jg.geodesic_bvp(
                metric, a, b, num_points=num_points, energy="secant", throw=False
            )
        )
    )
    sols = solve(z0, z1)
    lines = jax.vmap(lambda a, b: jg.straight_line(a, b, num_points))(z0, z1)
    line_lengths = jax.vmap(lambda c: jg.curve_length(metric, c, energy="secant"))(lines)
    solved = np.asarray(sols.result == jg.RESULTS.successful)
    rows = [
        dict(
            digits=f"{a}-{b}",
            solved=bool(solved[k]),
            geodesic=float(sols.length[k]),
            line=float(line_lengths[k]),
        )
        for k, (a, b) in enumerate(DIGIT_PAIRS)
    ]

    xlim, ylim = latent_box(codes, margin=1.0)
    fig = plt.figure(figsize=(15, 6.5))
    latent_geodesics(
        fig,
        fig.add_subplot(1, 2, 1),
        metric,
        codes,
        labels,
        sols.xs,
        lines,
        lw=2.2,
        title="pulled-back Fisher–Rao geodesics (solid), lines (dotted)",
        results=sols.result,
        xlim=xlim,
        ylim=ylim,
        num=40 if smoke else 110,
        clip=True,
    )
    # The images in two rows of ten at the right of a 4 x 20 grid.
    strips = [[fig.add_subplot(4, 20, 20 * (r + 1) + 11 + c) for c in range(10)] for r in range(2)]
    k = DIGIT_PAIRS.index((4, 9))
    curves = [("geodesic", sols.xs[k]), ("line", lines[k])]
    digit_strips(strips, curves, num=10, decode=decoder.mean, fontsize=8)
    fig.text(0.72, 0.78, "pixel probabilities decoded along 4 -> 9", ha="center")
    save_figure(fig, out / "digits.png", tight=False)
    return rows


# --- (d) Fisher information of a classifier vs the empirical Fisher -----------------------


def classifier_spectra(out: Path, seed: int, smoke: bool) -> list[dict]:
    images, labels = jg.data.digits()
    n = 300 if smoke else 1000
    xs, ys = jnp.asarray(images[:n]), jnp.asarray(labels[:n])
    family = F.Categorical(10)
    net = eqx.nn.MLP(64, 9, 16, 1, activation=jnp.tanh, key=jax.random.key(seed))

    def predictive(net, x):  # logits of classes 0-8 against class 9
        return family.constrain(net(x))

    def loss(net, batch, key):
        del key
        x, y = batch
        return -jnp.mean(jax.vmap(lambda x, y: family.log_prob(predictive(net, x), y))(x, y))

    stages, previous = [], 0
    optimizer = optax.adam(1e-2)
    for steps in [20, 200] if smoke else [20, 2000]:
        net = jg.train.fit(
            loss,
            net,
            (xs, ys),
            optimizer=optimizer,
            num_steps=steps - previous,
            batch_size=128,
            key=jax.random.key(seed + steps),
            steps_per_chunk=steps - previous,
            progress=False,
        ).model
        previous = steps
        params, static = eqx.partition(net, eqx.is_inexact_array)

        def model(p, x):
            return predictive(eqx.combine(p, static), x)

        true = jg.fisher_information(model, family, params, xs)
        empirical = jg.empirical_fisher(model, family, params, xs, ys)
        probs = jax.vmap(lambda x: family.probs(model(params, x)))(xs)
        stages.append(
            dict(
                steps=steps,
                accuracy=float(jnp.mean(jnp.argmax(probs, axis=1) == ys)),
                true=np.linalg.eigvalsh(np.asarray(true))[::-1],
                empirical=np.linalg.eigvalsh(np.asarray(empirical))[::-1],
                cosine=float(
                    jnp.sum(true * empirical) / (jnp.linalg.norm(true) * jnp.linalg.norm(empirical))
                ),
            )
        )

    fig, axes = plt.subplots(1, len(stages), figsize=(6 * len(stages), 4.4), sharey=True)
    for ax, st in zip(axes, stages):
        for key, style in [("true", "-"), ("empirical", "--")]:
            eig = np.clip(st[key], 1e-16, None)
            ax.semilogy(np.arange(1, eig.size + 1), eig, style, label=f"{key} Fisher")
        ax.set(
            xlabel="index",
            ylabel="eigenvalue",
            xscale="log",
            title=f"{st['steps']} steps, accuracy {st['accuracy']:.2f}, cosine {st['cosine']:.2f}",
        )
        ax.legend()
    save_figure(fig, out / "fisher.png")
    return [
        dict(
            steps=st["steps"],
            accuracy=st["accuracy"],
            cosine=st["cosine"],
            true_top=float(st["true"][0]),
            empirical_top=float(st["empirical"][0]),
            true_trace=float(np.sum(st["true"])),
            empirical_trace=float(np.sum(st["empirical"])),
        )
        for st in stages
    ]


def result_name(row: dict) -> str:
    if not row["mid_speed"] == row["mid_speed"]:  # NaN: L = E = 0 under the midpoint rule
        return "zero energy"
    if row["mid_solved"]:
        return "success"
    return "unresolved" if row["mid_unresolved"] else "failed"


def main(
    *, seed: int = 0, out_dir: str | Path = "figures/information_geometry", smoke: bool = False
) -> dict:
    """Run (a)-(d); print and return the key numbers."""
    out = output_dir(out_dir)
    num_points = 32 if smoke else 64
    normal = normal_geodesics(out, num_points)
    toy = toy_experiment(out, seed, smoke, num_points)
    digits = digits_vae(out, seed, smoke, num_points)
    spectra = classifier_spectra(out, seed, smoke)

    sections = [  # title, header, row template, rows
        (
            "(a) Fisher–Rao distances between Normals (jg.distance, default settings)",
            "pair | distance | closed form | rel. error | straight-line length",
            "{pair} | {distance:.8f} | {exact:.8f} | {rel_error:.1e} | {line:.4f}",
            normal,
        ),
        (
            "(b) toy decoders: pulled-back Fisher–Rao lengths (KL rule)",
            "family | NLL | geodesic (KL energy): solved, length, L^2/2E "
            "| midpoint-rule geodesic: result, length, L^2/2E | straight line",
            "{family} | {nll:.3f} | {kl_solved}, {kl_length:.3f}, {kl_speed:.3f} "
            "| {result}, {mid_length:.3f}, {mid_speed:.3f} | {line_length:.3f}",
            [dict(r, result=result_name(r)) for r in toy],
        ),
        (
            "(c) Bernoulli VAE on binarised digits: pulled-back Fisher–Rao lengths (KL rule)",
            "digits | solved | geodesic | straight line",
            "{digits} | {solved} | {geodesic:.3f} | {line:.3f}",
            digits,
        ),
        (
            "(d) small classifier on digits: Fisher information vs empirical Fisher",
            "steps | accuracy | top eigenvalue: true | empirical | trace: true | empirical "
            "| cosine",
            "{steps} | {accuracy:.3f} | {true_top:.4g} | {empirical_top:.4g} | {true_trace:.4g} "
            "| {empirical_trace:.4g} | {cosine:.3f}",
            spectra,
        ),
    ]
    table = []
    for title, header, row, rows in sections:
        table += ["", title, "", *dict_table(header, row, rows)]
    write_table(out, table[1:])
    print(f"figures written to {out}/")
    return dict(normal=normal, toy=toy, digits=digits, spectra=spectra)


if __name__ == "__main__":
    run(main, __doc__, "figures/information_geometry")
