"""Sequences whose latent geodesics follow evolution (after Detlefsen, Hauberg, Boomsma,
Nat. Commun. 2022), on a simulated protein-like family with a known phylogeny: sequences
of length 60 over 20 letters evolve down a random binary tree from a root sequence
(site-specific rates, so some sites are conserved); a VAE with a Categorical decoder per
position is trained on the leaves, its decoder made to turn uniform away from the codes
(`jg.train.extrapolating_decoder`), and for many pairs of leaves the latent geodesic
distance under the pulled-back Fisher-Rao metric (KL energy) and the straight latent
distance are compared with the tree's (patristic) distance.

    python -m experiments.sequence_evolution

writes under figures/sequence_evolution/:
  latent.png   (seed 0) the leaves' codes coloured by clade, the tree's edges between the
               codes of the simulated ancestral sequences, a few geodesics and lines
  table.md     per seed: the Spearman correlation of each latent distance with the
               patristic distance over the pairs, and how many geodesics were solved
Trained models are checkpointed under <out-dir>/checkpoints/ (a rerun resumes them).
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
from scipy.stats import spearmanr

import jaxgeo as jg

from ._common import (
    checkpointing,
    dict_table,
    latent_box,
    output_dir,
    run,
    save_figure,
    write_table,
)


LENGTH = 60
LETTERS = 20
MEAN_BRANCH = 0.12  # expected substitutions per site (at rate 1) along one branch
RATE_SHAPE = 0.5  # Gamma shape of the site rates: many conserved, a few fast sites


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


def train(leaves, seed: int, out: Path, smoke: bool):
    """Stage 1: the VAE by the ELBO. Stage 2: the extrapolating decoder (uniform letters
    far from the codes), the network fine-tuned through the blend."""
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
        batch_size=64,
        key=key_fit,
        **checkpointing(num_steps, 100, out / "checkpoints" / f"vae_{seed}"),
    ).model
    codes = jax.vmap(vae.encode)(data)
    family = jg.families.Product(jg.families.Categorical(LETTERS), LENGTH)
    params = eqx.Partial(lambda decoder, z: decoder.probs(z)[:, :-1].reshape(-1), vae.decoder)
    uniform = jnp.full(LENGTH * (LETTERS - 1), 1 / LETTERS)
    decoder = jg.train.extrapolating_decoder(
        params, codes, uniform, num_centres=8 if smoke else 24, bandwidth_scale=1.5
    )
    num_steps = 100 if smoke else 2000
    decoder = jg.train.fit_extrapolating_decoder(
        decoder,
        family,
        codes,
        jnp.asarray(leaves),
        key=key_ext,
        num_steps=num_steps,
        batch_size=64,
        **checkpointing(num_steps, 100, out / "checkpoints" / f"extrapolating_{seed}"),
    ).model
    return vae, decoder, family, codes


def one_seed(seed: int, out: Path, smoke: bool) -> dict:
    rng = np.random.default_rng(seed)
    tree = Tree(24 if smoke else 128, rng)
    sequences = evolve(tree, rng)
    vae, decoder, family, codes = train(sequences[tree.leaves], seed, out, smoke)
    metric = jg.PullbackFisherRaoMetric(decoder, family)

    num_pairs = 12 if smoke else 300
    n = len(tree.leaves)
    first = rng.integers(n, size=num_pairs)
    second = (first + rng.integers(1, n, size=num_pairs)) % n
    patristic = np.array(
        [tree.patristic(tree.leaves[i], tree.leaves[j]) for i, j in zip(first, second)]
    )
    z0, z1 = codes[first], codes[second]
    solve = partial(jg.geodesic_bvp_batch, metric, energy="secant", num_points=16 if smoke else 32)
    sols = solve(z0, z1)
    solved = np.asarray(sols.result == jg.RESULTS.successful)
    geodesic = np.asarray(sols.length)
    euclidean = np.asarray(jnp.linalg.norm(z1 - z0, axis=1))
    return dict(
        seed=seed,
        tree=tree,
        sequences=sequences,
        vae=vae,
        codes=codes,
        metric=metric,
        solved=solved,
        rho_geodesic=spearmanr(geodesic[solved], patristic[solved]).statistic,
        rho_euclidean=spearmanr(euclidean[solved], patristic[solved]).statistic,
        rho_euclidean_all=spearmanr(euclidean, patristic).statistic,
        pairs=(z0, z1),
        geodesics=sols.xs,
    )


def main(
    *, seed: int = 0, out_dir: str | Path = "figures/sequence_evolution", smoke: bool = False
) -> dict:
    """Simulate, train and measure for each seed; print and return the table."""
    out = output_dir(out_dir)
    runs = [one_seed(seed + s, out, smoke) for s in range(1 if smoke else 3)]
    rows = [
        dict(
            seed=r["seed"],
            solved=f"{r['solved'].sum()}/{len(r['solved'])}",
            geodesic=r["rho_geodesic"],
            euclidean=r["rho_euclidean"],
            euclidean_all=r["rho_euclidean_all"],
        )
        for r in runs
    ]
    lines = dict_table(
        "seed | geodesics solved | Spearman: geodesic (KL) vs patristic | "
        "Spearman: Euclidean latent vs patristic (same pairs) | Euclidean, all pairs",
        "{seed} | {solved} | {geodesic:.3f} | {euclidean:.3f} | {euclidean_all:.3f}",
        rows,
    )
    mean_geo = np.mean([r["rho_geodesic"] for r in runs])
    mean_euc = np.mean([r["rho_euclidean"] for r in runs])
    lines.append("")
    lines.append(f"mean over seeds: geodesic {mean_geo:.3f}, Euclidean {mean_euc:.3f}")
    write_table(out, lines)

    # latent.png, the first seed
    r = runs[0]
    tree, codes = r["tree"], np.asarray(r["codes"])
    ancestors = np.asarray(jax.vmap(r["vae"].encode)(jnp.asarray(r["sequences"])))
    fig, ax = plt.subplots(figsize=(7.5, 7))
    for i in range(1, len(tree.parent)):
        ax.plot(*ancestors[[tree.parent[i], i]].T, color="0.75", lw=0.8, zorder=1)
    leaf_clades = tree.clade[tree.leaves]
    ax.scatter(*codes.T, c=leaf_clades, cmap="tab10", vmin=0, vmax=9, s=18, zorder=3)
    ax.scatter(*ancestors[0], marker="*", s=150, color="k", zorder=4, label="root")
    z0, z1 = r["pairs"]
    for k in range(6):
        ax.plot(
            *np.asarray(r["geodesics"][k]).T, "r-", lw=1.5, label="geodesic" if k == 0 else None
        )
        line = np.stack([z0[k], z1[k]])
        ax.plot(*line.T, "k--", lw=1, label="straight line" if k == 0 else None)
    xlim, ylim = latent_box(jnp.asarray(np.concatenate([codes, ancestors])), 0.3)
    ax.set(
        title="leaves by clade, the tree through the ancestors' codes, geodesics (KL)",
        xlim=xlim,
        ylim=ylim,
        aspect="equal",
    )
    ax.legend(loc="lower right", fontsize=8)
    save_figure(fig, out / "latent.png")
    return dict(rows=rows, mean_geodesic=mean_geo, mean_euclidean=mean_euc)


if __name__ == "__main__":
    run(main, __doc__, "figures/sequence_evolution")
