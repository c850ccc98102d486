"""Sequences whose latent geodesics follow evolution (Detlefsen, Hauberg, Boomsma,
"Learning meaningful representations of protein sequences", Nat. Commun. 2022), on
simulated protein-like families with a known phylogeny: sequences of length 100 over 20
letters evolve down a random binary tree (2,000 leaves) from a root sequence
(site-specific Gamma rates, so some sites are conserved); a VAE with a Categorical
decoder per position is trained on the leaves, its decoder made to turn uniform away
from the codes (`jg.train.extrapolating_decoder`) in two ways, compared: a soft blend of
64 RBFs, and, as in the paper, a sharp switch by the distance to the nearest of 256
centres; for 300 pairs of leaves per seed, under each decoder and each of two curve
energies (the KL divergences of consecutive decoded distributions, their pulled-back
Fisher-Rao metric; and the paper's, the squared Euclidean distances of consecutive
decoded letter probabilities), the length of the pair's shortest path through a k-NN
graph of the codes (a graph search, as the paper's; global rather than local) and, for
the soft blend, the geodesic refined from that path (the sharp switch's geodesics are
too stiff to solve at this scale), and the straight latent distance are correlated
(Spearman and Pearson) with the tree's distances: the true (simulated) tree's, and a
tree estimated from the sequences by neighbour joining on Poisson-corrected distances,
as the paper had to. The ceiling: the Hamming distances of the sequences themselves. Over
10 seeds (families), the paired difference of each distance - Euclidean with a 95 %
bootstrap interval per seed (pairs resampled) and over the seeds (seeds resampled).
Ablation of the family's size: the first 3 seeds once more with 500 sequences.

    python -m experiments.sequence_evolution

writes under figures/sequence_evolution/:
  latent.png   (seed 0) a panel per decoder: the leaves' codes by clade over its
               confidence (the mean over positions of the most likely letter's
               probability), the tree's edges between the codes of the simulated
               ancestral sequences, and 20 of the pairs' geodesics (soft blend) or
               graph paths (sharp switch) of both energies (solid) and straight
               lines (dashed)
  scatter.png  (seed 0) each graph-path, geodesic and the straight latent distance of
               every pair against its distance in the true tree (the pairs solved in
               every geometry)
  table.md     per seed: Spearman and Pearson of each distance with the true and the
               estimated tree's distances, the paired difference of each graph-path
               and geodesic distance - Euclidean with its interval; over the seeds:
               the mean difference with its interval, and the answer in a sentence;
               the ablation's differences beside those of the same seeds with the
               full family
Trained models are checkpointed under <out-dir>/checkpoints/ (a rerun resumes them), and
every family's row but the first's under <out-dir>/checkpoints/rows/ (a rerun reads it
while the library's and this file's source are unchanged).
"""

from functools import partial
from pathlib import Path

import equinox as eqx
import jax


jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp
import matplotlib


matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import optax
from matplotlib.collections import LineCollection
from scipy.stats import rankdata

import jaxgeo as jg

from ._common import (
    checkpointing,
    latent_box,
    output_dir,
    run,
    save_figure,
    source_digest,
    stored,
    wall_time,
    write_table,
)


LENGTH = 100
LETTERS = 20
MEAN_BRANCH = 0.12  # expected substitutions per site (at rate 1) along one branch
RATE_SHAPE = 0.5  # Gamma shape of the site rates: many conserved, a few fast sites
NUM_LEAVES = 2000
NUM_PAIRS = 300  # per seed
NUM_SEEDS = 10
BOOTSTRAP = 2000  # resamples of the pairs (per seed) and of the seeds
# The decoders' fall-back to uniform letters away from the codes: the soft blend of 64
# RBFs, and (as in the paper) a sharp switch by the distance to the nearest of 256
# centres, of sharpness 10 (its transition about a tenth of a bandwidth unit wide).
DECODERS = {"blend": "soft blend", "switch": "sharp switch"}
# The curve energies compared under each decoder: the KL divergences of consecutive
# decoded distributions (their pulled-back Fisher-Rao metric), and the paper's, the
# squared Euclidean distances of consecutive decoded letter probabilities,
# sum_t |p(c_{t+1}) - p(c_t)|^2 (the Euclidean metric of the probabilities pulled back).
ENERGIES = {"kl": "KL", "probabilities": "probabilities"}
# Each energy's metric, by the decoder's method that builds it.
ENERGY_METRICS = {"kl": "fisher_rao_metric", "probabilities": "pullback_metric"}
GEOMETRIES = {
    f"{decoder}_{energy}": f"{ENERGIES[energy]}, {DECODERS[decoder]}"
    for decoder in DECODERS
    for energy in ENERGIES
}
# Each geometry's distance of a pair: the length of its shortest path through the k-NN
# graph of the codes (edges: the metric's length of the straight segment between two
# codes; as the paper measured, by a graph search), and for the decoders in
# GEODESIC_DECODERS also the geodesic that Newton's method refines from that path. The
# sharp switch's geodesics are left out: they are stiff at 2,000 sequences (seed 0: 7 of
# 64 KL geodesics solved within 512 Newton steps, median 380), so its 300 pairs take
# hours a seed, where its graph paths take a minute.
GEODESIC_DECODERS = ("blend",)
SOLVED = [key for key in GEOMETRIES if key.split("_")[0] in GEODESIC_DECODERS]
MEASURES = {
    **{f"path_{key}": f"graph path ({title})" for key, title in GEOMETRIES.items()},
    **{f"geodesic_{key}": f"geodesic ({GEOMETRIES[key]})" for key in SOLVED},
}
# Ablation over the family's size: the first ABLATION_SEEDS seeds once more with each of
# ABLATION_LEAVES sequences (the paper's family filled its latent space with tens of
# thousands; fewer sequences leave more of it to the decoder's fall-back).
ABLATION_LEAVES = (500,)
ABLATION_SEEDS = 3
SWITCH_CENTRES = 256
SWITCH_SHARPNESS = 10.0


class Tree:
    """A random binary tree by a Yule process: `parent[i]` (−1 for the root),
    `branch[i]` (the length of the edge above node i), `leaves`, `clade[i]` (which of
    the four subtrees below the root's grandchildren holds node i; −1 above them)."""

    def __init__(self, num_leaves: int, rng: np.random.Generator):
        parent, branch, leaves = [-1], [0.0], [0]
        while len(leaves) < num_leaves:
            node = leaves.pop(rng.integers(len(leaves)))
            for _ in range(2):
                parent.append(node)
                branch.append(rng.exponential(MEAN_BRANCH))
                leaves.append(len(parent) - 1)
        self.parent, self.branch = np.array(parent), np.array(branch)
        self.leaves = np.array(sorted(leaves))
        self.depth = np.zeros(len(parent))
        for i in range(1, len(parent)):  # parents come before their children
            self.depth[i] = self.depth[parent[i]] + branch[i]
        children = [np.flatnonzero(self.parent == i) for i in range(len(parent))]
        grandchildren = [g for c in children[0] for g in children[c]]
        self.clade = np.full(len(parent), -1)
        for label, top in enumerate(grandchildren):
            stack = [top]
            while stack:
                i = stack.pop()
                self.clade[i] = label
                stack.extend(children[i])

    def ancestors(self, i: int) -> list[int]:
        path = [i]
        while self.parent[path[-1]] >= 0:
            path.append(self.parent[path[-1]])
        return path

    def patristic(self, i: int, j: int) -> float:
        """The length of the path between nodes i and j."""
        common = set(self.ancestors(i))
        lca = next(a for a in self.ancestors(j) if a in common)
        return self.depth[i] + self.depth[j] - 2 * self.depth[lca]


def evolve(tree: Tree, rng: np.random.Generator) -> np.ndarray:
    """Sequences of every node, shape (nodes, LENGTH), by the F81 substitution model: along
    an edge of length b a site of rate r is replaced with probability 1 − exp(−r b) by a
    letter drawn from the stationary frequencies (a Dirichlet draw)."""
    frequencies = rng.dirichlet(np.ones(LETTERS))
    rates = rng.gamma(RATE_SHAPE, 1 / RATE_SHAPE, LENGTH)
    sequences = np.zeros((len(tree.parent), LENGTH), int)
    sequences[0] = rng.choice(LETTERS, LENGTH, p=frequencies)
    for i in range(1, len(tree.parent)):
        sequence = sequences[tree.parent[i]].copy()
        change = rng.random(LENGTH) < -np.expm1(-rates * tree.branch[i])
        sequence[change] = rng.choice(LETTERS, change.sum(), p=frequencies)
        sequences[i] = sequence
    return sequences


def train(leaves, seed: int, out: Path, smoke: bool, suffix: str = ""):
    """Stage 1: the VAE by the ELBO. Stage 2: the extrapolating decoders (uniform letters
    far from the codes; `DECODERS`), each network fine-tuned through its fall-back."""
    key_enc, key_dec, key_fit, key_ext = jax.random.split(jax.random.key(seed), 4)
    width = 64 if smoke else 128
    vae = jg.nn.VAE(
        jg.nn.Encoder(LENGTH, 2, width=width, depth=2, key=key_enc, num_classes=LETTERS),
        jg.nn.CategoricalDecoder(2, LENGTH, LETTERS, width=width, depth=2, key=key_dec),
    )
    num_steps = 300 if smoke else 6000
    data = jnp.asarray(leaves)  # (integer class labels)
    vae = jg.train.fit(
        jg.train.elbo_loss,
        vae,
        data,
        optimizer=optax.adam(optax.cosine_decay_schedule(2e-3, num_steps, alpha=0.05)),
        num_steps=num_steps,
        batch_size=128,
        key=key_fit,
        **checkpointing(num_steps, 100, out / "checkpoints" / f"vae_{seed}{suffix}"),
    ).model
    codes = jax.vmap(vae.encode)(data)
    # (the VAE's categorical decoder's parameters, blended or switched to uniform letters)
    uniform = jnp.full(LENGTH * (LETTERS - 1), 1 / LETTERS)
    fall_backs = dict(
        blend=dict(num_centres=8 if smoke else 64),
        switch=dict(num_centres=8 if smoke else SWITCH_CENTRES, switch=SWITCH_SHARPNESS),
    )
    num_steps = 100 if smoke else 2000
    decoders = {}
    for name, options in fall_backs.items():
        decoder = jg.train.extrapolating_decoder(
            vae.decoder.params, vae.decoder.family, codes, uniform, bandwidth_scale=1.5, **options
        )
        # (the blend's checkpoints keep their name from before the switch was added)
        tag = "extrapolating" if name == "blend" else f"extrapolating_{name}"
        decoders[name] = jg.train.fit_extrapolating_decoder(
            decoder,
            codes,
            jnp.asarray(leaves),
            key=key_ext,
            num_steps=num_steps,
            batch_size=64,
            **checkpointing(num_steps, 100, out / "checkpoints" / f"{tag}_{seed}{suffix}"),
        ).model
    return vae, decoders, codes


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The fraction of sites at which the sequences differ (rows of `a` and `b`)."""
    return np.mean(a != b, axis=-1)


def poisson_corrected(p: np.ndarray) -> np.ndarray:
    r"""Substitutions per site from the fraction $p$ of differing sites, for 20 letters:
    $-\frac{19}{20}\log(1 - \frac{20}{19} p)$ (saturated pairs capped at 5)."""
    q = 1 - LETTERS / (LETTERS - 1) * p
    return np.where(
        q > np.exp(-5 * LETTERS / (LETTERS - 1)),
        -(LETTERS - 1) / LETTERS * np.log(np.maximum(q, 1e-300)),
        5.0,
    )


def neighbour_joining(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Saitou and Nei's neighbour joining of the distance matrix `d` (n x n): an unrooted
    binary tree as `(edges, lengths)`, edges between node indices (the n leaves are
    0..n-1, the joined nodes n, n+1, ...), negative branch lengths set to 0. The matrix
    is kept compact (the joined pair's rows replaced by the new node's): O(n^3) in all."""
    d = np.array(d, float)
    names = list(range(len(d)))
    edges, lengths = [], []
    next_node = len(d)
    while len(names) > 2:
        m = len(names)
        r = d.sum(axis=1)
        q = (m - 2) * d - r[:, None] - r[None, :]
        np.fill_diagonal(q, np.inf)
        i, j = np.unravel_index(np.argmin(q), q.shape)
        i, j = min(i, j), max(i, j)
        to_i = 0.5 * d[i, j] + (r[i] - r[j]) / (2 * (m - 2))
        to_j = d[i, j] - to_i
        new = 0.5 * (d[i] + d[j] - d[i, j])
        edges += [(names[i], next_node), (names[j], next_node)]
        lengths += [max(to_i, 0.0), max(to_j, 0.0)]
        # row i becomes the new node; row j is dropped (the last row moved into it)
        d[i], d[:, i] = new, new
        d[i, i] = 0.0
        names[i] = next_node
        last = m - 1
        if j != last:
            d[j], d[:, j] = d[last], d[:, last]
            d[j, j] = 0.0
            names[j] = names[last]
        d = d[:last, :last]
        names.pop()
        next_node += 1
    edges.append((names[0], names[1]))
    lengths.append(max(d[0, 1], 0.0))
    return np.array(edges), np.array(lengths)


class EdgeTree:
    """Path lengths in a tree given by its edges (rooted at its last node)."""

    def __init__(self, edges: np.ndarray, lengths: np.ndarray):
        num_nodes = int(edges.max()) + 1
        adjacent = [[] for _ in range(num_nodes)]
        for (a, b), length in zip(edges, lengths):
            adjacent[a].append((b, length))
            adjacent[b].append((a, length))
        self.parent = np.full(num_nodes, -1)
        self.depth = np.zeros(num_nodes)  # path length from the root
        self.level = np.zeros(num_nodes, int)
        root = num_nodes - 1
        seen, stack = {root}, [root]
        while stack:
            node = stack.pop()
            for other, length in adjacent[node]:
                if other not in seen:
                    seen.add(other)
                    self.parent[other] = node
                    self.depth[other] = self.depth[node] + length
                    self.level[other] = self.level[node] + 1
                    stack.append(other)

    def distance(self, i: int, j: int) -> float:
        a, b = i, j
        while self.level[a] > self.level[b]:
            a = self.parent[a]
        while self.level[b] > self.level[a]:
            b = self.parent[b]
        while a != b:
            a, b = self.parent[a], self.parent[b]
        return self.depth[i] + self.depth[j] - 2 * self.depth[a]


def _pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson's correlation of `x` with `y` along the last axis."""
    x = x - x.mean(axis=-1, keepdims=True)
    y = y - y.mean(axis=-1, keepdims=True)
    return np.sum(x * y, axis=-1) / np.sqrt(np.sum(x**2, axis=-1) * np.sum(y**2, axis=-1))


def correlations(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(Spearman, Pearson) of `x` with `y` along the last axis (rows: resamples);
    Spearman's is Pearson's of the ranks, ties given their mean rank."""
    return np.stack([_pearson(rankdata(x, axis=-1), rankdata(y, axis=-1)), _pearson(x, y)])


def paired_difference(geodesic, euclidean, tree) -> np.ndarray:
    """Spearman's and Pearson's correlation with `tree` of `geodesic` minus that of
    `euclidean` (along the last axis)."""
    return correlations(geodesic, tree) - correlations(euclidean, tree)


def paired_differences(geodesic, euclidean, tree, rng) -> list[tuple[float, float, float]]:
    """`paired_difference` of the pairs, Spearman's and Pearson's, each with its 95 %
    interval by resampling the pairs."""
    k = rng.integers(len(tree), size=(BOOTSTRAP, len(tree)))
    # (a resample of equal values has no correlation)
    k = k[np.all([np.ptp(v[k], axis=1) > 0 for v in (geodesic, euclidean, tree)], axis=0)]
    draws = paired_difference(geodesic[k], euclidean[k], tree[k])
    lo, hi = np.percentile(draws, [2.5, 97.5], axis=1)
    diff = paired_difference(geodesic, euclidean, tree)
    return [(float(d), float(a), float(b)) for d, a, b in zip(diff, lo, hi)]


def decoder_confidence(decoder, zs):
    """The mean over positions of the most likely letter's probability (1/20: uniform)."""
    probs = jax.vmap(decoder.params)(zs).reshape(len(zs), LENGTH, LETTERS - 1)
    last = 1 - jnp.sum(probs, axis=-1, keepdims=True)
    return jnp.mean(jnp.max(jnp.concatenate([probs, last], axis=-1), axis=-1), axis=-1)


def solve_pairs(metric, z0s, z1s, inits) -> jg.GeodesicSolution:
    """Each pair's geodesic under `metric` (the secant energy), started from `inits`
    (its path through the k-NN graph of the codes)."""
    return jg.geodesic_bvp_batch(
        metric, z0s, z1s, init=inits, energy="secant", num_points=inits.shape[1]
    )


def pair_paths(metric, codes, z0s, z1s, num_points: int):
    """Each pair's shortest path through the k-NN graph of the codes under `metric`
    (`num_points` points, equally spaced in arc length) and its length."""
    graph = jg.knn_graph(metric, codes, k=8)
    return graph_paths(graph, z0s, z1s, num_points)


@eqx.filter_jit
def graph_paths(graph, z0s, z1s, num_points: int):
    """Each pair's path through `graph` (`jg.graph_geodesic`) and its length: the graph's
    shortest-path length, or the straight segment's (midpoint rule, `num_points - 1`
    pieces) where that is shorter, as `graph_geodesic` chooses."""

    def one(a, b):
        nodes, ends = graph.connect(b)
        distances, _ = graph.shortest_paths(*graph.connect(a))
        line = jnp.linspace(0, 1, num_points)[:, None] * (b - a)[None] + a[None]
        length = jnp.minimum(jnp.min(distances[nodes] + ends), jg.curve_length(graph.metric, line))
        return jg.graph_geodesic(graph, a, b, num_points=num_points), length

    return jax.vmap(one)(z0s, z1s)


def one_seed(seed: int, out: Path, smoke: bool, num_leaves: int | None = None) -> dict:
    """One family (`num_leaves` sequences; default `NUM_LEAVES`, 80 in a smoke run):
    simulate, train, solve the pairs' geodesics and correlate."""
    rng = np.random.default_rng(seed)
    default = 80 if smoke else NUM_LEAVES
    num_leaves = default if num_leaves is None else num_leaves
    tree = Tree(num_leaves, rng)
    sequences = evolve(tree, rng)
    leaves = sequences[tree.leaves]
    suffix = "" if num_leaves == default else f"_{num_leaves}_leaves"
    vae, decoders, codes = train(leaves, seed, out, smoke, suffix)

    num_pairs = 12 if smoke else NUM_PAIRS
    n = len(tree.leaves)
    first = rng.integers(n, size=num_pairs)
    second = (first + rng.integers(1, n, size=num_pairs)) % n
    true_tree = np.array(
        [tree.patristic(tree.leaves[i], tree.leaves[j]) for i, j in zip(first, second)]
    )
    # the tree a biologist would have: neighbour joining on the leaves' corrected distances
    observed = hamming(leaves[:, None], leaves[None])
    edges, lengths = neighbour_joining(poisson_corrected(observed))
    estimated = EdgeTree(edges, lengths)
    estimated_tree = np.array([estimated.distance(i, j) for i, j in zip(first, second)])

    z0, z1 = codes[first], codes[second]
    num_points = 16 if smoke else 32
    distances = dict(
        euclidean=np.asarray(jnp.linalg.norm(z1 - z0, axis=1)),
        hamming=observed[first, second],
    )
    curves, solved = {}, np.ones(num_pairs, bool)
    row = dict(seed=seed, pairs=num_pairs, leaves=num_leaves)
    for name, decoder in decoders.items():
        for energy in ENERGIES:
            metric = getattr(decoder, ENERGY_METRICS[energy])()
            key = f"{name}_{energy}"
            (paths, lengths), seconds = wall_time(pair_paths, metric, codes, z0, z1, num_points)
            curves[key], distances[f"path_{key}"] = paths, np.asarray(lengths)
            solved &= np.isfinite(distances[f"path_{key}"])
            print(f"  {key}: graph paths ({seconds:.0f} s)", flush=True)
            if name not in GEODESIC_DECODERS:
                continue
            sols, seconds = wall_time(solve_pairs, metric, z0, z1, paths)
            ok = np.asarray(sols.result == jg.RESULTS.successful)
            print(f"  {key}: {ok.sum()}/{num_pairs} geodesics solved ({seconds:.0f} s)", flush=True)
            row[f"solved_{key}"] = int(ok.sum())
            solved &= ok
            curves[key] = sols.xs
            distances[f"geodesic_{key}"] = np.asarray(sols.length)
    # (all distances correlated on the pairs whose geodesics solved in every geometry)
    row["solved"] = int(solved.sum())
    for tree_name, target in (("true", true_tree), ("estimated", estimated_tree)):
        for name, values in distances.items():
            row[f"{name}_{tree_name}"] = tuple(
                map(float, correlations(values[solved], target[solved]))
            )
        for name in MEASURES:
            differences = paired_differences(
                distances[name][solved],
                distances["euclidean"][solved],
                target[solved],
                rng,
            )
            for statistic, difference in zip(("spearman", "pearson"), differences):
                row[f"difference_{name}_{statistic}_{tree_name}"] = difference
    return dict(
        row=row,
        tree=tree,
        sequences=sequences,
        vae=vae,
        decoders=decoders,
        codes=codes,
        pairs=(z0, z1),
        curves=curves,
        distances=distances,
        true_tree=true_tree,
        solved=solved,
    )


def seed_interval(values: list[float], rng) -> tuple[float, float, float]:
    """The mean of `values` (one per seed) and its 95 % bootstrap interval (seeds
    resampled)."""
    values = np.asarray(values)
    draws = [np.mean(rng.choice(values, len(values))) for _ in range(BOOTSTRAP)]
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return float(values.mean()), float(lo), float(hi)


def answer(
    measure: str, statistic: str, tree: str, mean: float, lo: float, hi: float, seeds: int
) -> str:
    what = MEASURES[measure].split(" (")[0]
    if lo > 0:
        verdict = f"the {what} distances correlate better than the straight latent ones"
    elif hi < 0:
        verdict = f"the straight latent distances correlate better than the {what} ones"
    else:
        verdict = f"no difference between {what} and straight latent distances is resolved"
    resampled = "seeds" if seeds > 1 else "pairs"
    return (
        f"{statistic} with the {tree} tree, {MEASURES[measure]} - Euclidean over "
        f"{seeds} seed(s) "
        f"({resampled} resampled): "
        f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]: {verdict}."
    )


def latent_figure(path: Path, r: dict, *, num_curves: int, num: int) -> None:
    """One panel per decoder: the codes by clade over its confidence, the tree through
    the ancestors' codes, and `num_curves` of the pairs' geodesics and straight lines."""
    tree, codes = r["tree"], np.asarray(r["codes"])
    ancestors = np.asarray(jax.vmap(r["vae"].encode)(jnp.asarray(r["sequences"])))
    xlim, ylim = latent_box(jnp.asarray(np.concatenate([codes, ancestors])), 0.3)
    gx, gy = np.meshgrid(np.linspace(*xlim, num), np.linspace(*ylim, num))
    grid = jnp.stack([gx.ravel(), gy.ravel()], axis=1)
    fig, axes = plt.subplots(
        1, len(DECODERS), figsize=(8.5 * len(DECODERS), 7.5), layout="constrained"
    )
    z0, z1 = (np.asarray(z) for z in r["pairs"])
    shown = np.flatnonzero(r["solved"])[:num_curves]
    children = np.arange(1, len(tree.parent))
    edges = np.stack([ancestors[tree.parent[children]], ancestors[children]], axis=1)
    for ax, (name, title) in zip(axes, DECODERS.items()):
        confidence = jax.jit(partial(decoder_confidence, r["decoders"][name]))(grid)
        mesh = ax.pcolormesh(
            gx,
            gy,
            np.asarray(confidence).reshape(gx.shape),
            cmap="Greys",
            shading="auto",
            vmin=1 / LETTERS,
            vmax=1,
        )
        ax.add_collection(LineCollection(edges, colors="tab:olive", lw=0.4, alpha=0.6, zorder=1))
        leaf_clades = tree.clade[tree.leaves]
        for clade in range(4):
            chosen = leaf_clades == clade
            ax.scatter(
                *codes[chosen].T, s=5, color=f"C{clade}", zorder=3, label=f"clade {clade + 1}"
            )
        ax.scatter(*ancestors[0], marker="*", s=120, color="k", zorder=5, label="root")
        kind = "geodesics" if name in GEODESIC_DECODERS else "graph paths"
        for n, k in enumerate(shown):
            for energy, colour in zip(ENERGIES, ("tab:red", "tab:blue")):
                ax.plot(
                    *np.asarray(r["curves"][f"{name}_{energy}"][k]).T,
                    color=colour,
                    lw=1.2,
                    zorder=4,
                    label=f"{kind} ({ENERGIES[energy]})" if n == 0 else None,
                )
            ax.plot(
                *np.stack([z0[k], z1[k]]).T,
                color="k",
                ls="--",
                lw=0.8,
                zorder=4,
                label="straight lines" if n == 0 else None,
            )
        ax.plot([], [], color="tab:olive", lw=0.8, label="tree through the ancestors' codes")
        ax.set(
            title=f"seed {r['row']['seed']}, {title}: {len(codes)} leaves, {len(shown)} pairs' "
            f"{kind}",
            xlabel="latent $z_1$",
            ylabel="latent $z_2$",
            xlim=xlim,
            ylim=ylim,
            aspect="equal",
        )
    fig.colorbar(mesh, ax=axes, shrink=0.8, label="decoder confidence: mean top-letter probability")
    axes[0].legend(loc="lower left", fontsize=8, markerscale=1.5)
    save_figure(fig, path, tight=False)  # (constrained layout: the shared colour bar)


def scatter_figure(path: Path, r: dict) -> None:
    solved, target = r["solved"], r["true_tree"]
    labels = dict(MEASURES, euclidean="straight latent (Euclidean)")
    rows = -(-len(labels) // 3)
    fig, axes = plt.subplots(rows, 3, figsize=(15, 4.3 * rows), squeeze=False)
    for ax in axes.flat[len(labels) :]:
        ax.set_axis_off()
    for ax, (name, label) in zip(axes.flat, labels.items()):
        values = r["distances"][name]
        rho, pearson = r["row"][f"{name}_true"]
        ax.scatter(target[solved], values[solved], s=8, alpha=0.6)
        ax.set(
            xlabel="distance in the true tree (substitutions per site)",
            ylabel=f"{label} distance",
            title=f"{label}:\nSpearman {rho:.3f}, Pearson {pearson:.3f}",
        )
    fig.suptitle(f"seed {r['row']['seed']}: {int(solved.sum())} pairs of leaves")
    save_figure(fig, path)


def difference_headers(template: str) -> str:
    """Table headers of the paired differences, `template` filled with each measure's
    title and statistic."""
    return " | ".join(
        template.format(title, statistic)
        for title in MEASURES.values()
        for statistic in ("Spearman", "Pearson")
    )


def _report(r: dict, took: str) -> None:
    """Print a seed's correlations with the true tree (`took`: its time, or "stored")."""
    print(
        f"seed {r['seed']}, {r['leaves']} sequences ({took}): {r['solved']}/"
        f"{r['pairs']} pairs (solved in every geometry); Spearman / Pearson with the true "
        "tree: "
        + ", ".join(
            f"{title} {r[f'{name}_true'][0]:.3f} / {r[f'{name}_true'][1]:.3f}"
            for name, title in MEASURES.items()
        )
        + f", Euclidean {r['euclidean_true'][0]:.3f} / {r['euclidean_true'][1]:.3f}, "
        f"Hamming {r['hamming_true'][0]:.3f} / {r['hamming_true'][1]:.3f}",
        flush=True,
    )
    jax.clear_caches()  # (one program per seed's metric: keep the mappings bounded)


def main(
    *, seed: int = 0, out_dir: str | Path = "figures/sequence_evolution", smoke: bool = False
) -> dict:
    """Simulate, train and measure for each seed; print and return the table."""
    out = output_dir(out_dir)
    digest = source_digest(Path(__file__))
    seeds = range(seed, seed + (1 if smoke else NUM_SEEDS))
    families = [(s, None) for s in seeds] + [
        (s, n)
        for n in ((60,) if smoke else ABLATION_LEAVES)
        for s in range(seed, seed + (1 if smoke else ABLATION_SEEDS))
    ]
    # (the first family's figures need its models and curves: always computed; the other
    # families' rows are stored, so a rerun of an interrupted run starts where it stopped)
    first, seconds = wall_time(one_seed, seed, out, smoke)
    _report(first["row"], f"{seconds:.0f} s")
    rows, ablation = [first["row"]], []
    for s, num_leaves in families[1:]:
        name = f"{s}_{'smoke' if smoke else 'full'}_{num_leaves or 'default'}"
        (row, read), seconds = wall_time(
            stored,
            out / "checkpoints" / "rows" / f"{name}.json",
            digest,
            lambda: one_seed(s, out, smoke, num_leaves)["row"],
        )
        _report(row, "stored" if read else f"{seconds:.0f} s")
        (rows if num_leaves is None else ablation).append(row)

    def pair(v):
        return f"{v[0]:.3f} / {v[1]:.3f}"

    def interval(v):
        return f"{v[0]:+.3f} [{v[1]:+.3f}, {v[2]:+.3f}]"

    lines = []
    for tree_name in ("true", "estimated"):
        lines += [
            f"Correlations with the {tree_name} tree's distances (Spearman / Pearson), and the "
            "paired difference of each distance - Euclidean with its 95 % interval (pairs "
            "resampled)",
            "",
            f"| seed | geodesics solved ({', '.join(GEOMETRIES[g] for g in SOLVED)}; all) | "
            + " | ".join(MEASURES.values())
            + " | Euclidean latent | Hamming (ceiling) | "
            + difference_headers("difference ({}), {}")
            + " |",
            "|---" * (4 + 3 * len(MEASURES)) + "|",
        ]
        lines += [
            f"| {r['seed']} | "
            + ", ".join(str(r[f"solved_{name}"]) for name in SOLVED)
            + f"; {r['solved']}/{r['pairs']} | "
            + " | ".join(pair(r[f"{name}_{tree_name}"]) for name in MEASURES)
            + f" | {pair(r[f'euclidean_{tree_name}'])} | {pair(r[f'hamming_{tree_name}'])} | "
            + " | ".join(
                interval(r[f"difference_{name}_{statistic}_{tree_name}"])
                for name in MEASURES
                for statistic in ("spearman", "pearson")
            )
            + " |"
            for r in rows
        ]
        lines.append("")
    rng = np.random.default_rng(seed)

    def over_seeds(group: list[dict], key: str) -> tuple[float, float, float]:
        # (one seed: its own interval, the pairs resampled)
        return seed_interval([r[key][0] for r in group], rng) if len(group) > 1 else group[0][key]

    summary = {}
    for name in MEASURES:
        for tree_name in ("true", "estimated"):
            for statistic in ("Spearman", "Pearson"):
                key = f"difference_{name}_{statistic.lower()}_{tree_name}"
                summary[key] = over_seeds(rows, key)
                lines.append(answer(name, statistic, tree_name, *summary[key], len(rows)))
    # the ablation's seeds, beside the same seeds with the full family
    ablation_seeds = {r["seed"] for r in ablation}
    groups = [[r for r in rows if r["seed"] in ablation_seeds]]
    groups += [
        [r for r in ablation if r["leaves"] == n] for n in sorted({r["leaves"] for r in ablation})
    ]
    lines += [
        "",
        "Ablation, the family's size: the paired difference of each distance - Euclidean with the "
        "true tree (mean over the seeds with its 95 % interval, seeds resampled; one seed: "
        "pairs resampled), the same seeds with each number of sequences",
        "",
        "| sequences | seeds | pairs solved | " + difference_headers("{}, {}") + " |",
        "|---" * (3 + 2 * len(MEASURES)) + "|",
    ]
    for group in groups:
        lines.append(
            f"| {group[0]['leaves']} | {', '.join(str(r['seed']) for r in group)} | "
            f"{sum(r['solved'] for r in group)}/{sum(r['pairs'] for r in group)} | "
            + " | ".join(
                interval(over_seeds(group, f"difference_{name}_{statistic}_true"))
                for name in MEASURES
                for statistic in ("spearman", "pearson")
            )
            + " |"
        )
    write_table(out, lines)
    latent_figure(out / "latent.png", first, num_curves=20, num=40 if smoke else 150)
    scatter_figure(out / "scatter.png", first)
    return dict(rows=rows, summary=summary, ablation=ablation)


if __name__ == "__main__":
    run(main, __doc__, "figures/sequence_evolution")
