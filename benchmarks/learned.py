"""Time to result on learned metrics (W6, W7; jaxgeo's side). Run within
`python -m benchmarks` (with stochman on W6), or alone:

    python -m benchmarks.learned [--repeats 3] [--smoke] [--compilation-cache]

W6, the Stein metric of a score network on a 2-D ring. Data: 5,000 points at radius
2 + N(0, 0.2^2), uniform in angle (seed 0). Score: `jg.nn.MLPScore(2, width=64,
depth=2)` trained by denoising score matching (sigma = 0.1, Adam 1e-3, 3,000 steps of
256, seed 1); metric `SteinMetric(score, damping=1)`. Pairs: a quarter of the ring,
(2, 0) -> (0, 2), for the single calls; 30 data points (seed 2) for
`pairwise_distances` (the 435 pairs i < j, end to end: compile and solve);
`knn_graph` on 500 data points.

W7, dimension. (a) The digits (64-D, scikit-learn's `load_digits` in [0, 1]): an
`MLPScore(64, width=128, depth=2)` trained by denoising score matching (sigma = 0.1,
Adam 1e-3, 2,000 steps of 128, seed 1), its Stein metric (damping 1), between the
images 0 and 10. (b) The 784-D pullback `J^T J` of the W3 decoder 2 -> 64 -> 64 -> 784
(`benchmarks.problems`), float64, between `W3_Z0` and `W3_Z1`.

For each call, the compile time (the first call: tracing, compilation and one run, in
this process with no persistent cache) and the median of `--repeats` further calls;
for lengths, the error relative to a reference: the Richardson-extrapolated geodesic
with 512 segments at tolerance 1e-12 (W6, checked against 32-segment multiple shooting
at 1e-12) or 256 segments (W7, checked against 128).
"""

import functools
import time

import equinox as eqx
import jax


jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp
import numpy as np
import optax

import jaxgeo as jg

from . import problems
from .report import (
    command_line,
    enable_compilation_cache,
    extrapolated_length,
    markdown_table,
    timed,
)
from .workloads import w3_decoder


TIGHT = jg.EnergyNewton(rtol=1e-12, atol=1e-12)


def ring(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0, 2 * np.pi, n)
    radius = 2.0 + 0.2 * rng.normal(size=n)
    return np.stack([radius * np.cos(theta), radius * np.sin(theta)], axis=1)


def swiss_roll_50(n: int = 5000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The 50-D Swiss roll of issue 30's recipe and its coordinates `(t, h)`: t uniform
    in [1.5 pi, 4.5 pi], h in [0, 10]; the 3-D roll (t cos t, h, t sin t) / 5 in 50-D
    along a random orthonormal frame, plus 0.3 sin(h / 5) along a fourth frame direction
    and N(0, 0.01^2) noise in every coordinate."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(1.5 * np.pi, 4.5 * np.pi, n)
    h = rng.uniform(0.0, 10.0, n)
    frame, _ = np.linalg.qr(rng.normal(size=(50, 4)))
    roll = np.stack([t * np.cos(t), h, t * np.sin(t)], axis=1) / 5
    data = roll @ frame[:, :3].T + 0.3 * np.sin(h / 5)[:, None] * frame[:, 3]
    return data + 0.01 * rng.normal(size=data.shape), np.stack([t, h], axis=1)


def swiss_roll_score(num_steps: int) -> tuple[jg.nn.MLPScore, np.ndarray, np.ndarray]:
    """`MLPScore(50, width=128, depth=3)` by denoising score matching (sigma 0.05, Adam
    with cosine decay from 2e-3) on `swiss_roll_50()`; the data and their `(t, h)`."""
    data, coordinates = swiss_roll_50()
    score = _trained_score(
        data,
        num_steps,
        256,
        sigma=0.05,
        optimizer=optax.adam(optax.cosine_decay_schedule(2e-3, num_steps)),
        width=128,
        depth=3,
        shift=data.mean(0),
        scale=data.std(0),
    )
    return score, data, coordinates


def _trained_score(
    data: np.ndarray,
    num_steps: int,
    batch_size: int,
    sigma: float = 0.1,
    optimizer: optax.GradientTransformation | None = None,
    **architecture,
):
    model = jg.nn.MLPScore(data.shape[1], key=jax.random.key(0), **architecture)
    fit = jg.train.fit(
        functools.partial(jg.train.denoising_score_matching, sigma=sigma),
        model,
        jnp.asarray(data),
        optimizer=optax.adam(1e-3) if optimizer is None else optimizer,
        num_steps=num_steps,
        batch_size=batch_size,
        key=jax.random.key(1),
        steps_per_chunk=min(num_steps, 1000),
    )
    return fit.model


def ring_score(num_steps: int) -> tuple[jg.nn.MLPScore, np.ndarray]:
    """The W6 score network and its training data."""
    data = ring(5000)
    score = _trained_score(data, num_steps, 256, width=64, depth=2, scale=data.std(0))
    return score, data


def score_weights(score: jg.nn.MLPScore) -> tuple[list, np.ndarray, np.ndarray]:
    """An `MLPScore`'s layers `(W, b)`, shift and scale as NumPy, for a peer to copy."""
    layers = [(np.asarray(layer.weight), np.asarray(layer.bias)) for layer in score.mlp.layers]
    return layers, np.asarray(score.standardise.shift), np.asarray(score.standardise.scale)


def _reference(metric, a, b, num_points: int) -> float:
    return extrapolated_length(metric, a, b, TIGHT, 2 * (num_points - 1))


def _row(name: str, call, repeats: int, reference: float | None) -> dict:
    """A call's timings and error, or its failure (a result, not a crash)."""
    try:
        value, compile_s, run_s = timed(call, repeats=repeats)
    except eqx.EquinoxRuntimeError as failure:
        reason = str(failure).split(".")[0].splitlines()[-1]
        return dict(call=name, compile_s=None, run_s=None, error=None, failed=reason)
    error = None if reference is None else abs(float(value) - reference) / reference
    return dict(call=name, compile_s=compile_s, run_s=run_s, error=error)


def _length_calls(metric, a, b) -> dict:
    return {
        "geodesic_bvp, default (64-point polyline)": lambda: jg.geodesic_bvp(metric, a, b).length,
        "distance, default (Richardson)": lambda: jg.distance(metric, a, b),
        "log_map, default (Richardson)": lambda: jg.log_map(metric, a, b).length,
    }


def w6(repeats: int = 3, smoke: bool = False) -> dict:
    """W6: the rows (call, compile_s, run_s, error), the reference length and its gap to
    multiple shooting (`None` in a smoke run), the score network and the pair."""
    start = time.perf_counter()
    score, data = ring_score(200 if smoke else 3000)
    print(f"W6: trained the score in {time.perf_counter() - start:.1f} s", flush=True)
    metric = jg.SteinMetric(score, damping=1.0)
    a, b = jnp.array([2.0, 0.0]), jnp.array([0.0, 2.0])
    reference = _reference(metric, a, b, 513)
    gap = None  # the reference checked against multiple shooting (a 20 s compile)
    if not smoke:
        shooting = jg.Shooting(num_segments=32, rtol=1e-12, atol=1e-12, init_solver=TIGHT)
        shot = jg.distance(metric, a, b, solver=shooting, num_points=257)
        gap = abs(float(shot) - reference) / reference
        print(f"W6: reference length {reference:.12f} (multiple shooting differs by {gap:.1e})")
    lengths = _length_calls(metric, a, b)
    if not smoke:  # multiple shooting compiles for tens of seconds
        lengths["distance(solver=Shooting())"] = lambda: jg.distance(
            metric, a, b, solver=jg.Shooting()
        )
    others = {
        "exp_map, v0 = (0, 1)": lambda: jg.exp_map(metric, a, jnp.array([0.0, 1.0])),
        "knn_graph, 500 samples, k = 8": lambda: jg.knn_graph(metric, data[:500]).lengths,
    }
    rows = [_row(name, call, repeats, reference) for name, call in lengths.items()]
    rows += [_row(name, call, repeats, None) for name, call in others.items()]
    points = jnp.asarray(ring(5000, seed=2)[: 6 if smoke else 30])
    start = time.perf_counter()
    matrix = jax.block_until_ready(jg.pairwise_distances(metric, points))
    seconds = time.perf_counter() - start
    solved = int(np.isfinite(np.asarray(matrix)).sum())
    rows.append(
        dict(
            call=f"pairwise_distances, {len(points)} points ({solved}/{matrix.size} finite), "
            "end to end",
            compile_s=None,
            run_s=seconds,
            error=None,
            finite=solved,
            entries=matrix.size,
        )
    )
    return dict(rows=rows, reference=reference, shooting_gap=gap, score=score, pair=(a, b))


def w7(repeats: int = 3, smoke: bool = False) -> list[dict]:
    """W7: rows (case, call, compile_s, run_s, error) for the 64-D digits Stein metric
    and the 784-D decoder pullback, each with its reference and the reference's own
    change from half its segments (`reference_gap`)."""
    images, _ = jg.data.digits()
    start = time.perf_counter()
    score = _trained_score(
        images,
        100 if smoke else 2000,
        128,
        width=128,
        depth=2,
        shift=images.mean(0),
        scale=images.std(0) + 0.05,
    )
    print(f"W7: trained the digits score in {time.perf_counter() - start:.1f} s", flush=True)
    decoder_dim = 16 if smoke else 784
    cases = {
        "digits, 64-D Stein metric of an MLPScore": (
            jg.SteinMetric(score, damping=1.0),
            jnp.asarray(images[0]),
            jnp.asarray(images[10]),
        ),
        f"{decoder_dim}-D decoder pullback (latent 2-D)": (
            jg.PullbackMetric(w3_decoder(decoder_dim, jnp.float64)),
            jnp.asarray(problems.W3_Z0),
            jnp.asarray(problems.W3_Z1),
        ),
    }
    rows = []
    for case, (metric, a, b) in cases.items():
        fine, coarse = (65, 33) if smoke else (257, 129)
        reference = _reference(metric, a, b, fine)
        gap = abs(_reference(metric, a, b, coarse) - reference) / reference
        print(f"W7 {case}: reference length {reference:.12f} (half the segments: {gap:.1e})")
        calls = _length_calls(metric, a, b)
        if a.shape[0] > 8 and not smoke:  # the default there is L-BFGS: Newton for comparison
            calls["geodesic_bvp(solver=EnergyNewton())"] = lambda: (
                jg.geodesic_bvp(metric, a, b, solver=jg.EnergyNewton()).length
            )
        for name, call in calls.items():
            rows.append(dict(case=case, reference_gap=gap, **_row(name, call, repeats, reference)))
    return rows


def table(rows: list[dict]) -> list[list[str]]:
    return [
        [
            *([r["case"]] if "case" in r else []),
            r["call"],
            "–" if r["compile_s"] is None else f"{r['compile_s']:.2f}",
            f"failed: {r['failed']}" if "failed" in r else f"{1e3 * r['run_s']:.1f}",
            "–" if r["error"] is None else f"{r['error']:.1e}",
        ]
        for r in rows
    ]


def main(repeats: int = 3, smoke: bool = False, compilation_cache: bool = False) -> dict:
    """Both workloads' tables; `compilation_cache` loads compiled programs from jaxgeo's
    persistent cache (then the compile column times loading, not compiling)."""
    if compilation_cache:
        enable_compilation_cache()
    rows6 = w6(repeats, smoke)["rows"]
    header = ["call", "compile (s)", "run (ms)", "rel. error"]
    print("\n".join(markdown_table(header, table(rows6))))
    rows7 = w7(repeats, smoke)
    print("\n".join(markdown_table(["case", *header], table(rows7))))
    return dict(w6=rows6, w7=rows7)


if __name__ == "__main__":
    main(**command_line(__doc__, repeats=3, smoke=False, compilation_cache=False))
