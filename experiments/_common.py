"""What the experiments share: the command line, the output folder, saving figures and
tables, training the digit VAEs, and the figures of a latent space and of digit images
along curves. Timing, markdown tables and the command-line parser come from
`benchmarks.report`, which the benchmarks use too."""

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import jaxgeo as jg
from benchmarks.report import (
    command_line,
    enable_compilation_cache,
    markdown_table,
    timed as timed,
    wall_time as wall_time,
)

from ._figures import FAILED_STYLE, failures_entry, plane_axes


LOG_DET_LABEL = r"$\log\sqrt{\det G(z)}$"


def run(main: Callable, doc: str, out_dir: str) -> None:
    """The command line shared by every experiment: `--seed`, `--out-dir`, `--smoke`.
    JAX's persistent compilation cache is on (see `benchmarks.report`), so a second run
    loads the compiled solvers instead of compiling them again."""
    print(f"JAX compilation cache: {enable_compilation_cache()}")
    main(**command_line(doc, seed=0, out_dir=out_dir, smoke=False))


def result_text(result) -> str:
    """`success`, or the short name of a failed `jg.RESULTS` (`jg.result_name`)."""
    if result == jg.RESULTS.successful:
        return "success"
    return jg.result_name(result)


def output_dir(out_dir: str | Path) -> Path:
    """`out_dir` as a `Path`, created if missing."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


def save_figure(fig, path: Path, *, dpi: int = 100, tight: bool = True) -> None:
    """Lay out (unless `tight=False`), write and close `fig`; the saved area holds every
    artist (multi-line titles were clipped at the top edge before)."""
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def dict_table(header: str, row: str, rows: Iterable[dict]) -> list[str]:
    """The lines of a markdown table: `header` names the columns and `row` is the
    `str.format` template of each of the dicts `rows`, both with their columns separated
    by " | "."""
    cells = row.split(" | ")
    return markdown_table(header.split(" | "), [[c.format(**r) for c in cells] for r in rows])


def write_table(out: Path, lines: Sequence[str]) -> None:
    """Write `lines` to `out/table.md` and print them."""
    text = "\n".join(lines)
    (out / "table.md").write_text(text + "\n")
    print(text)


def checkpointing(num_steps: int, steps_per_chunk: int, checkpoint_dir: Path, every=1000):
    """`jg.train.fit` keywords for a run in chunks of `steps_per_chunk` steps that saves
    a checkpoint every `every` steps (every chunk if `every` does not divide `num_steps`)."""
    return dict(
        steps_per_chunk=steps_per_chunk,
        checkpoint_every=every if num_steps % every == 0 else steps_per_chunk,
        checkpoint_dir=checkpoint_dir,
    )


def source_digest(*modules: Path) -> str:
    """A digest of the library's source files and of `modules` (the experiment's): a
    stored result is reused only while this is unchanged."""
    digest = hashlib.sha256()
    for path in sorted(Path(jg.__file__).parent.rglob("*.py")) + sorted(modules):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def stored(path: Path, digest: str, compute: Callable[[], dict]) -> tuple[dict, bool]:
    """`compute()` (a dict of JSON values), written to `path` with `digest`; or, where
    `path` holds a value stored under the same digest, that value (so an interrupted long
    run keeps what it finished). Returns the value and whether it was read."""
    if path.exists():
        record = json.loads(path.read_text())
        if record["digest"] == digest:
            return record["value"], True
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".tmp").write_text(json.dumps(dict(digest=digest, value=value)))
    path.with_suffix(".tmp").replace(path)  # (a run killed while writing leaves no half file)
    return value, False


def train_digit_vae(data, decoder: type, *, seed: int, num_steps: int, smoke: bool, checkpoint_dir):
    """The first stage of the digit VAEs: a VAE with a 2-D latent space, an MLP encoder
    and a `decoder` (a `jg.nn` decoder class) of width 128 (64 when `smoke`), trained
    on the 64-pixel `data` by the ELBO (Adam, cosine decay from 2e-3, batches of 128;
    400 steps when `smoke`). Returns the VAE, the codes of `data`, the losses and the key
    of the caller's second stage."""
    key_enc, key_dec, key_fit, key_next = jax.random.split(jax.random.key(seed), 4)
    width = 64 if smoke else 128
    vae = jg.nn.VAE(
        jg.nn.Encoder(64, 2, width=width, depth=2, key=key_enc),
        decoder(2, 64, width=width, depth=2, key=key_dec),
    )
    num_steps = 400 if smoke else num_steps
    result = jg.train.fit(
        jg.train.elbo_loss,
        vae,
        data,
        optimizer=optax.adam(optax.cosine_decay_schedule(2e-3, num_steps, alpha=0.05)),
        num_steps=num_steps,
        batch_size=128,
        key=key_fit,
        **checkpointing(num_steps, 200, checkpoint_dir),
    )
    vae = result.model
    return vae, jax.vmap(vae.encode)(data), result.losses, key_next


def pick_pairs(codes, labels, pairs: Sequence[tuple[int, int]], seed: int):
    """For each pair of digit labels `(a, b)`, the codes of a random example of `a` and
    of another of `b`: the start points `z0` and end points `z1`."""
    rng = np.random.default_rng(seed)
    ends = []
    for a, b in pairs:
        i = rng.choice(np.flatnonzero(labels == a))
        j = rng.choice(np.flatnonzero((labels == b) & (np.arange(len(labels)) != i)))
        ends.append((i, j))
    z0 = codes[jnp.array([i for i, _ in ends])]
    z1 = codes[jnp.array([j for _, j in ends])]
    return z0, z1


def latent_box(codes, margin: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """`(xlim, ylim)`: the codes' bounding box, widened by `margin` on every side."""
    lo, hi = np.asarray(codes.min(0)) - margin, np.asarray(codes.max(0)) + margin
    return (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1]))


def clip_colours(mesh, span: float = 15.0):
    """Show the top `span` of log sqrt(det G): far from the data G vanishes and its
    logarithm would take the whole colour scale."""
    top = float(np.nanmax(mesh.get_array()))
    mesh.set_clim(top - span, top)


def magnification(fig, ax, metric, xlim, ylim, *, num: int, clip: bool = False):
    """log sqrt(det G) over the box, with its colour bar (`clip`: `clip_colours`)."""
    mesh = jg.plot.magnification_factor(ax, metric, xlim, ylim, num=num)
    if clip:
        clip_colours(mesh)
    fig.colorbar(mesh, ax=ax, label=LOG_DET_LABEL)
    return mesh


def latent_geodesics(
    fig, ax, metric, codes, labels, geodesics, lines, *, lw, title, results=None, **box
):
    """Codes coloured by digit over log sqrt(det G) (`box`: `magnification`'s `xlim`,
    `ylim`, `num` and `clip`), geodesics (white, width `lw`; where `results` says a solve
    failed, dashed red and named) and straight lines (dotted), with legends of the
    digits and of the curves."""
    magnification(fig, ax, metric, **box)
    points = ax.scatter(*np.asarray(codes).T, c=labels, cmap="tab10", s=3, alpha=0.6)
    solved = np.ones(len(geodesics), bool)
    if results is not None:
        solved = np.asarray(results == jg.RESULTS.successful)
    for geodesic, line, ok in zip(geodesics, lines, solved):
        jg.plot.curve(ax, geodesic, **(dict(color="w", lw=lw) if ok else FAILED_STYLE))
        ax.plot(*np.asarray(line).T, color="w", ls=":", lw=1.2)
    # (both legends below the panel: inside, they hid the codes and the curves' ends)
    digits = ax.legend(
        *points.legend_elements(),
        title="digit",
        loc="upper left",
        bbox_to_anchor=(0, -0.1),
        fontsize=7,
        ncol=5,
    )
    ax.add_artist(digits)
    ax.plot([], [], color="w", lw=lw, label="geodesic")
    ax.plot([], [], color="w", ls=":", lw=1.2, label="straight line")
    failures_entry(ax, solved, "geodesics")
    plane_axes(ax, latent=True, loc="upper right", bbox_to_anchor=(1, -0.1), fontsize=7)
    ax.get_legend().get_frame().set_facecolor("0.6")  # (white curves on a white frame)
    ax.set(title=title, xlim=box["xlim"], ylim=box["ylim"], aspect="equal")


def digit_strips(axes, curves, *, num: int, decode: Callable | None = None, **label):
    """Row `r` of `axes` shows the 8x8 images at `num` evenly spaced points of the curve
    `curves[r] = (name, curve)`, decoded by `decode` (None: the points are the images),
    with `name` as its label (`label`: keywords of `set_ylabel`)."""
    for row, (name, curve) in zip(axes, curves):
        shown = np.linspace(0, len(curve) - 1, num).round().astype(int)
        images = curve[shown] if decode is None else jax.vmap(decode)(curve[shown])
        for ax, image in zip(row, np.asarray(images)):
            ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            ax.set(xticks=[], yticks=[])
        row[0].set_ylabel(name, **label)


def digit_strip_figure(path: Path, curves, *, num: int, title: str, height: float, decode=None):
    """A figure of `digit_strips`, one row per curve, titled `title`."""
    fig, axes = plt.subplots(len(curves), num, figsize=(1.3 * num, height))
    digit_strips(axes, curves, num=num, decode=decode)
    fig.suptitle(title)
    save_figure(fig, path)


def draw_polyline(ax, xs, *, lw: float, label: str) -> None:
    """A discrete geodesic with its points marked."""
    jg.plot.curve(ax, xs, color="tab:blue", marker="o", ms=2.5, lw=lw, label=label)
