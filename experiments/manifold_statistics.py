"""Statistics on learned manifolds (`jg.stats`): geodesic clustering under learned score
metrics, Fréchet means and principal geodesics of digits under a VAE's calibrated
pullback metric, and parallel transport of a stroke-thickness direction.

    python -m experiments.manifold_statistics

writes under figures/manifold_statistics/:
  clusters.png   (a) two moons and two noisy rings (seed 0): geodesic k-medoids under the
                     learned Stein, score-Jacobian and Monge metrics, and Euclidean k-means
  geodesics.png  (a) geodesics of those three metrics across each data set's gap and along
                     its data (seed 0)
  means.png      (b) the Fréchet-mean code of every digit class decoded, above the
                     decoded Euclidean mean code
  principal.png  (b) the first principal geodesic of one class decoded (-2 to 2 standard
                     deviations), above the Euclidean first principal line
  transport.png  (c) a thickness direction at one class mean, parallel transported to
                     another class mean, against the same coordinates untransported
  table.md       adjusted Rand index over the seeds; the means' distances to the data;
                 the transport's numbers
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
from sklearn.cluster import KMeans as EuclideanKMeans
from sklearn.datasets import make_circles, make_moons
from sklearn.metrics import adjusted_rand_score

import jaxgeo as jg

from . import latent_oddity
from ._common import (
    checkpointing,
    digit_strip_figure,
    output_dir,
    result_text,
    run,
    save_figure,
    wall_time,
    write_table,
)


DATASETS = {
    "two moons": partial(make_moons, noise=0.08),
    "two rings": partial(make_circles, noise=0.05, factor=0.45),
}
# The noise of denoising score matching: the score learned is that of the data smoothed
# at this scale, whose log-density has curvature up to about 1 / SIGMA^2.
SIGMA = 0.1
METRICS = {
    "Stein": lambda score: jg.SteinMetric(score, 1.0),
    # Damping 1 / SIGMA^2, the scale of the score's Jacobian: with damping 1, J^T J is up
    # to 1e4 times the damping and 294 of 496 geodesics of two moons (seed 0) did not
    # resolve at 257 points (5 min); with 1 / SIGMA^2, none (99 s).
    "score-Jacobian": lambda score: jg.ScoreJacobianMetric(score, 1 / SIGMA**2),
    "Monge": lambda score: jg.MongeMetric(score, 1.0),
}


def train_score(data, *, seed: int, num_steps: int, checkpoint_dir: Path):
    """An `MLPScore` by denoising score matching (noise `SIGMA`) on 2-D `data`."""
    data = jnp.asarray(data)
    model = jg.nn.MLPScore(
        2, width=64, depth=3, shift=data.mean(0), scale=data.std(0), key=jax.random.key(seed)
    )
    result = jg.train.fit(
        partial(jg.train.denoising_score_matching, sigma=SIGMA),
        model,
        data,
        optimizer=optax.adam(optax.cosine_decay_schedule(2e-3, num_steps)),
        num_steps=num_steps,
        batch_size=256,
        key=jax.random.key(seed + 1),
        **checkpointing(num_steps, 250, checkpoint_dir),
    )
    return result.model


def clustering(seeds, out: Path, smoke: bool) -> tuple[list[dict], dict]:
    """(a): for each data set and seed, a score network trained on 2,000 samples, then
    k-medoids (k = 2) on the geodesic distances of fresh labelled points under each
    learned metric, and Euclidean k-means, scored by the adjusted Rand index."""
    num_train, num_points = (1000, 16) if smoke else (2000, 24)
    num_steps = 300 if smoke else 3000
    scores, shown, trained = {}, {}, {}
    for name, make in DATASETS.items():
        for seed in seeds:
            train, _ = make(num_train, random_state=seed)
            xs, truth = make(num_points, random_state=1000 + seed)
            score = train_score(
                train,
                seed=seed,
                num_steps=num_steps,
                checkpoint_dir=out / "checkpoints" / f"{name.replace(' ', '_')}_{seed}",
            )
            euclidean = EuclideanKMeans(2, n_init=10, random_state=seed).fit(xs)
            labels = {"Euclidean k-means": euclidean.labels_}
            failed, seconds = {"Euclidean k-means": 0}, {"Euclidean k-means": 0.0}
            for metric_name, make_metric in METRICS.items():
                method = f"{metric_name} k-medoids"
                # (The default Richardson refines each pair to the resolution it needs,
                # and repairs pairs that stopped at a longer local geodesic.)
                distances, seconds[method] = wall_time(
                    jg.pairwise_distances, make_metric(score), jnp.asarray(xs)
                )
                labels[method] = np.asarray(jg.stats.k_medoids(distances, 2).labels)
                failed[method] = int(np.isnan(np.asarray(distances)).sum() // 2)
            for method, found in labels.items():
                scores.setdefault((name, method), []).append(
                    (adjusted_rand_score(truth, found), failed[method], seconds[method])
                )
            if seed == seeds[0]:
                shown[name] = (train, xs, labels)
                trained[name] = score

    fig, axes = plt.subplots(len(DATASETS), 4, figsize=(16, 4 * len(DATASETS)))
    for row, (name, (train, xs, labels, *_)) in zip(axes, shown.items()):
        for ax, (method, found) in zip(row, labels.items()):
            ax.scatter(*train[:600].T, s=2, c="0.8")
            ax.scatter(*xs.T, c=found, cmap="coolwarm", s=30, edgecolors="k")
            ax.set(title=f"{name}: {method}", aspect="equal", xticks=[], yticks=[])
    save_figure(fig, out / "clusters.png")
    rows = [
        dict(
            data=name,
            method=method,
            ari_mean=float(np.mean([a for a, _, _ in values])),
            ari_std=float(np.std([a for a, _, _ in values])),
            seeds=len(values),
            failed=sum(f for _, f, _ in values),
            seconds=sum(t for _, _, t in values),
        )
        for (name, method), values in scores.items()
    ]
    geodesic_rows = metric_geodesics(shown, trained, out)
    return rows, shown, geodesic_rows


# (a) pairs of points of each data set (seed 0) joined under each learned metric: across
# the gap (the rings' hole, between the moons) and along the data.
GEODESIC_PAIRS = {
    "two moons": (((-1.0, 0.0), (2.0, 0.5)), ((-0.9, 0.45), (0.9, 0.45))),
    "two rings": (((-1.0, 0.0), (1.0, 0.0)), ((1.0, 0.0), (0.0, 1.0))),
}


def metric_geodesics(shown, trained, out: Path) -> list[dict]:
    """`geodesics.png`: for each data set, the geodesics of `GEODESIC_PAIRS` under each
    learned metric (the default log map, from the straight line) over the training data,
    a failed one dashed and named; rows of their lengths, their Euclidean lengths (how
    far they bend) and seconds (compile included)."""
    fig, axes = plt.subplots(1, len(shown), figsize=(6.5 * len(shown), 6), squeeze=False)
    colours = dict(zip(METRICS, ["tab:blue", "tab:orange", "tab:green"]))
    rows = []
    for ax, (name, (train, *_)) in zip(axes[0], shown.items()):
        ax.scatter(*train[:1000].T, s=2, c="0.75", label="training data")
        for k, (a, b) in enumerate(GEODESIC_PAIRS[name]):
            a, b = jnp.array(a), jnp.array(b)
            ax.plot(*jnp.stack([a, b]).T, "o", c="k", ms=6, label="end points" if k == 0 else None)
            for metric_name, make_metric in METRICS.items():
                metric = make_metric(trained[name])
                geodesic, seconds = wall_time(
                    lambda m=metric, a=a, b=b: jg.log_map(m, a, b, throw=False)
                )
                solved = bool(geodesic.result == jg.RESULTS.successful)
                xs = np.asarray(geodesic.xs)
                label = metric_name if k == 0 else None
                if not solved:
                    label = f"{metric_name}: {result_text(geodesic.result)}"
                ax.plot(*xs.T, c=colours[metric_name], ls="-" if solved else "--", label=label)
                rows.append(
                    dict(
                        data=name,
                        pair=f"({a[0]:g}, {a[1]:g}) -> ({b[0]:g}, {b[1]:g})",
                        metric=metric_name,
                        result=result_text(geodesic.result),
                        length=float(geodesic.length),
                        euclidean=float(np.sum(np.linalg.norm(np.diff(xs, axis=0), axis=1))),
                        chord=float(jnp.linalg.norm(b - a)),
                        seconds=seconds,
                    )
                )
        ax.set(title=f"{name}: geodesics of the learned metrics", aspect="equal")
        ax.set(xlabel="$x_1$", ylabel="$x_2$")
        ax.legend(loc="lower left", fontsize=8)
    save_figure(fig, out / "geodesics.png")
    return rows


def _nearest(codes, z):
    return float(jnp.sqrt(jnp.min(jnp.sum((codes - z[None]) ** 2, axis=1))))


def class_mean(metric, graph, points, *, smoke: bool) -> dict:
    """The Fréchet mean of one class's codes.

    1. The Euclidean medoid (on the codes, where the learned metric is tame; the Euclidean
       mean can fall in a gap where the calibrated variance explodes), and the log maps
       from it, started from shortest paths through `graph` (a k-NN graph of all the
       codes: several geodesics join two codes, and straight lines start the solver
       near long ones). A code whose geodesic does not resolve at 129 points sits alone
       behind a wall of decoder variance (its geodesic needs about 1,000 points); it is
       set aside and counted.
    2. `NewtonMean` from the medoid, its curves started from those geodesics, on levels
       of `NEWTON_SEGMENTS` segments: the walls of decoder variance make the coarser
       levels' energies indefinite (on digit 0, one curve's at 128 segments).
    3. Where Newton's iteration does not solve (on digits 1 and 5 it wanders, its
       quadratic model poor for steps of 1e-2; seed 0), the joint energy minimisation
       (`EnergyMean`, 65 points per polyline, from the graph's paths: L-BFGS copes with
       the flat, anisotropic objective), then Karcher steps from there (fourth-order log
       maps) until the Riemannian gradient is below `KARCHER_RTOL` times sqrt(2 F).
    """

    def paths(start, targets, num_points):
        return jax.vmap(lambda x: jg.graph_geodesic(graph, start, x, num_points=num_points))(
            targets
        )

    squared = jnp.sum((points[:, None] - points[None]) ** 2, axis=-1)
    medoid = points[jnp.argmin(jnp.sum(squared, axis=1))]
    logs = jax.vmap(lambda x, c: jg.log_map(metric, medoid, x, init=c, throw=False))(
        points, paths(medoid, points, 129)
    )
    resolved = np.asarray(logs.result == jg.RESULTS.successful)
    kept = points[resolved]
    low, high = NEWTON_SEGMENTS[smoke]
    newton = jg.stats.frechet_mean(
        metric,
        kept,
        init=medoid,
        init_curves=logs.xs[resolved],
        solver=jg.stats.NewtonMean(min_segments=low, max_segments=high, max_steps=32),
        throw=False,
    )
    found = dict(
        kept=kept,
        set_aside=len(points) - len(kept),
        newton_steps=int(newton.stats["num_steps"]),
        newton_result=newton.result,
        fallback_steps=0,
    )
    if newton.result == jg.RESULTS.successful:
        return dict(found, mean=newton, solver="Newton")
    num_points = 33 if smoke else 65
    energy = jg.stats.frechet_mean(
        metric,
        kept,
        solver=jg.stats.EnergyMean(),
        init=medoid,
        init_curves=paths(medoid, kept, num_points),
        num_points=num_points,
        throw=False,
    )
    start = jnp.where(energy.result == jg.RESULTS.successful, energy.mean, medoid)
    mean = jg.stats.frechet_mean(
        metric,
        kept,
        init=start,
        init_curves=paths(start, kept, 129),
        solver=jg.stats.KarcherMean(max_steps=8 if smoke else 64, rtol=KARCHER_RTOL),
        throw=False,
    )
    steps = int(energy.stats["num_steps"]) + int(mean.stats["num_steps"])
    return dict(found, mean=mean, solver="energy + Karcher", fallback_steps=steps)


# NewtonMean's levels (min_segments, max_segments), full run and smoke run.
NEWTON_SEGMENTS = {False: (256, 1024), True: (32, 128)}
# The Karcher steps converge linearly on this metric (gradient descent on a flat,
# anisotropic objective): 1e-5 (relative gradient) in 16 steps for the digit 2, where the
# default 1e-7 took over 64.
KARCHER_RTOL = 1e-5
TRANSPORT_PAIRS = ((1, 7), (3, 8), (5, 6), (0, 6))


def digit_statistics(seed: int, out: Path, smoke: bool) -> dict:
    """(b) and (c): Fréchet means, tangent PCA and parallel transport in the latent space
    of the digit VAE of `latent_oddity` (its calibrated expected pullback metric)."""
    _, decoder, codes, _, labels, _ = latent_oddity.train(seed, out, smoke)
    metric = decoder.expected_metric()
    per_class = 6 if smoke else 16
    rng = np.random.default_rng(seed)
    classes = (3, 8) if smoke else range(10)
    chosen = {c: rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in classes}
    graph = jg.knn_graph(metric, codes, k=8)
    found, seconds_by_class = {}, {}
    for c in classes:
        found[c], seconds_by_class[c] = wall_time(
            partial(class_mean, smoke=smoke), metric, graph, codes[chosen[c]]
        )
    mean_seconds = sum(seconds_by_class.values())
    means = {c: found[c]["mean"] for c in classes}
    solved = {c: bool(means[c].result == jg.RESULTS.successful) for c in classes}
    euclidean = {c: found[c]["kept"].mean(0) for c in classes}
    rows = []
    for c in classes:
        class_codes = codes[labels == c]
        rows.append(
            dict(
                digit=c,
                result=result_text(means[c].result),
                set_aside=found[c]["set_aside"],
                solver=found[c]["solver"],
                newton=result_text(found[c]["newton_result"]),
                newton_steps=found[c]["newton_steps"],
                fallback_steps=found[c]["fallback_steps"],
                seconds=seconds_by_class[c],
                frechet_to_data=_nearest(class_codes, means[c].mean),
                euclidean_to_data=_nearest(class_codes, euclidean[c]),
                variance=float(means[c].variance),
            )
        )
    decode = jax.vmap(decoder.mean)
    fig, axes = plt.subplots(2, len(classes), figsize=(1.3 * len(classes), 3.2), squeeze=False)
    for row, (name, centres) in zip(
        axes,
        [
            ("Fréchet", jnp.stack([means[c].mean for c in classes])),
            ("Euclidean", jnp.stack([euclidean[c] for c in classes])),
        ],
    ):
        for ax, image in zip(row, np.asarray(decode(centres))):
            ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            ax.set(xticks=[], yticks=[])
        row[0].set_ylabel(name)
    for ax, c in zip(axes[0], classes):
        ax.set_title(str(c) if solved[c] else f"{c} (failed)", fontsize=9)
    fig.suptitle(f"decoded class means (up to {per_class} codes per class)")
    save_figure(fig, out / "means.png")

    # (b) the first principal geodesic of one class, and the Euclidean principal line
    digit = 3
    kept = found[digit]["kept"]
    pca = jg.stats.tangent_pca(metric, kept, mean=means[digit])
    ts = jnp.linspace(-2.0, 2.0, 9)
    principal = jg.stats.principal_geodesics(metric, pca, ts)[0]
    centred = kept - euclidean[digit][None]
    values, vectors = jnp.linalg.eigh(centred.T @ centred / len(kept))
    line = euclidean[digit][None] + ts[:, None] * jnp.sqrt(values[-1]) * vectors[:, -1][None]
    digit_strip_figure(
        out / "principal.png",
        [("geodesic", principal), ("PCA line", line)],
        num=9,
        decode=decoder.mean,
        title=f"digit {digit}: the first principal geodesic (top) and the Euclidean PCA line, "
        "-2 to 2 standard deviations",
        height=3.1,
    )

    # (c) a thickness direction at the mean of one class, transported to another: the
    # first pair of TRANSPORT_PAIRS whose means and connecting geodesic solved
    def ink(z):
        return jnp.sum(decoder.mean(z))

    def thickness(z):
        """The unit (in G) direction of steepest increase of the ink: G^-1 grad ink."""
        w = metric.solve(z, jax.grad(ink)(z))
        return w / metric.norm(z, w)

    tried = []
    for a, b in [(a, b) for a, b in TRANSPORT_PAIRS if a in means and b in means]:
        za, zb = means[a].mean, means[b].mean
        geodesic = jg.log_map(metric, za, zb, throw=False)
        tried.append(f"{a}->{b}: " + result_text(geodesic.result))
        if solved[a] and solved[b] and geodesic.result == jg.RESULTS.successful:
            break
    # (no pair of solved means: the last pair tried, reported as failed, with the reason)
    unsolved = [str(c) for c in (a, b) if not solved[c]]
    wa = thickness(za)
    ode = jg.stats.parallel_transport(metric, za, geodesic.vs[0], wa, throw=False)
    ladder = jg.stats.ladder_transport(metric, geodesic.xs, wa)
    # (The exp-map geodesic of the log map's velocity ends at zb to the log map's
    # accuracy: compare there, where the transported vector lives.)
    zb, wb = ode.xs[-1], ode.ws[-1]
    miss = float(jnp.linalg.norm(zb - means[b].mean))
    local = thickness(zb)
    unit_wa = wa / metric.norm(zb, wa)
    slopes = [float(jax.jvp(ink, (z,), (w,))[1]) for z, w in ((za, wa), (zb, wb), (zb, unit_wa))]
    cosines = [float(metric.inner(zb, w, local)) for w in (wb, unit_wa)]
    transported = (geodesic.result == jg.RESULTS.successful) & (ode.result == jg.RESULTS.successful)
    if unsolved:
        outcome = f"failed: the mean of {' and '.join(unsolved)} did not solve"
    elif not transported:
        outcome = "failed: " + (
            f"the geodesic {result_text(geodesic.result)}"
            if geodesic.result != jg.RESULTS.successful
            else f"the transport {result_text(ode.result)}"
        )
    else:
        outcome = "success"
    step = 0.5 * float(geodesic.length) / 4
    offsets = jnp.linspace(-1.0, 1.0, 7) * step
    curves = [
        (
            f"mean {a}:\nthickness\n(ink slope {slopes[0]:.2f})",
            za[None] + offsets[:, None] * wa[None],
        ),
        (
            f"mean {b}:\ntransported\n(ink slope {slopes[1]:.2f},\ncos {cosines[0]:.2f})",
            zb[None] + offsets[:, None] * wb[None],
        ),
        (
            f"mean {b}: same\ncoordinates\n(ink slope {slopes[2]:.2f},\ncos {cosines[1]:.2f})",
            zb[None] + offsets[:, None] * unit_wa[None],
        ),
    ]
    headline = (
        f"the direction that thickens the strokes at the mean {a}, moved to the mean {b}"
        if outcome == "success"
        else f"transport {a} -> {b} {outcome}"
    )
    digit_strip_figure(
        out / "transport.png",
        curves,
        num=7,
        decode=decoder.mean,
        title=f"{headline}: the direction at the mean {b} parallel transported (middle) "
        "and in the same coordinates (bottom);\nink slope: the change of total ink per "
        f"unit length; cos: with the direction that thickens the strokes at the mean {b}",
        height=5.2,
    )
    transport = dict(
        result=outcome,
        norm_drift=float(ode.stats["norm_drift"]),
        endpoint_miss=miss,
        ladder_vs_ode=float(metric.norm(zb, ladder.ws[-1] - wb)),
        cos_transported=cosines[0],
        cos_untransported=cosines[1],
        ink_slope_transported=slopes[1],
        ink_slope_untransported=slopes[2],
        tried=tried,
    )
    return dict(
        rows=rows,
        mean_seconds=mean_seconds,
        explained=np.asarray(pca.explained_variance_ratio).tolist(),
        transport=transport,
        pair=(a, b),
    )


def main(
    *, seed: int = 0, out_dir: str | Path = "figures/manifold_statistics", smoke: bool = False
) -> dict:
    """Run (a), (b) and (c); print and return the numbers."""
    out = output_dir(out_dir)
    seeds = [seed] if smoke else [seed + k for k in range(5)]
    cluster_rows, shown, geodesic_rows = clustering(seeds, out, smoke)
    num_points = len(next(iter(shown.values()))[1])
    cluster_pairs = num_points * (num_points - 1) // 2
    digits = digit_statistics(seed, out, smoke)
    table = [
        f"(a) adjusted Rand index of k = 2 clusterings ({len(seeds)} seeds; mean and "
        f"standard deviation; failed = geodesic distances that did not solve, of "
        f"{len(seeds)} x {cluster_pairs}; seconds = the distances, compile included)",
        "",
        "| data | method | ARI | sd | failed | seconds |",
        "|---|---|---|---|---|---|",
    ]
    table += [
        f"| {r['data']} | {r['method']} | {r['ari_mean']:.3f} | {r['ari_std']:.3f} "
        f"| {r['failed']} | {r['seconds']:.0f} |"
        for r in cluster_rows
    ]
    table += [
        "",
        "(a) geodesics of the learned metrics (seed 0; geodesics.png): length in the metric, "
        "Euclidean length of the curve against the chord (how far it bends), seconds "
        "(the default log map from the straight line, compile included)",
        "",
        "| data | pair | metric | result | length | Euclidean length | chord | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    table += [
        f"| {r['data']} | {r['pair']} | {r['metric']} | {r['result']} | {r['length']:.4g} "
        f"| {r['euclidean']:.3f} | {r['chord']:.3f} | {r['seconds']:.1f} |"
        for r in geodesic_rows
    ]
    table += [
        "",
        "(b) class means of the codes under the expected pullback metric (from the "
        "Euclidean medoid: NewtonMean, else the joint energy minimisation and Karcher "
        "steps): distance of the mean code to the nearest code of its class; set aside = "
        "codes whose geodesic from the medoid did not resolve; seconds = the log maps "
        "from the medoid and the mean (the first class's include compiling)",
        "",
        "| digit | result | solver | set aside | Newton | Newton steps | energy + Karcher "
        "steps | seconds | Fréchet mean | Euclidean mean | Fréchet variance |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    table += [
        f"| {r['digit']} | {r['result']} | {r['solver']} | {r['set_aside']} | {r['newton']} "
        f"| {r['newton_steps']} | {r['fallback_steps']} | {r['seconds']:.1f} "
        f"| {r['frechet_to_data']:.3f} | {r['euclidean_to_data']:.3f} | {r['variance']:.3f} |"
        for r in digits["rows"]
    ]
    t = digits["transport"]
    a, b = digits["pair"]
    table += [
        "",
        f"{len(digits['rows'])} Fréchet means in {digits['mean_seconds']:.1f} s (compile "
        f"included); tangent PCA of digit 3, explained variance ratio "
        f"{np.round(digits['explained'], 3).tolist()}",
        "",
        f"(c) thickness direction transported from the mean {a} to the mean {b} (tried: "
        f"{'; '.join(t['tried'])}): "
        f"{t['result']}, norm drift {t['norm_drift']:.1e}, end point {t['endpoint_miss']:.1e} "
        f"from the mean {b}, ladder vs ODE {t['ladder_vs_ode']:.1e}; "
        f"cosine with the local thickness direction at {b}: transported "
        f"{t['cos_transported']:.3f}, untransported {t['cos_untransported']:.3f}; ink slope "
        f"(per unit length): transported {t['ink_slope_transported']:.3f}, untransported "
        f"{t['ink_slope_untransported']:.3f}",
    ]
    write_table(out, table)
    print(f"figures written to {out}/")
    return dict(clusters=cluster_rows, geodesics=geodesic_rows, **digits)


if __name__ == "__main__":
    run(main, __doc__, "figures/manifold_statistics")
