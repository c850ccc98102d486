"""The benchmark suite: jaxgeo against stochman 0.3.0 and geomstats 2.8.0 on the same
workloads (`benchmarks.problems`), measured in one run.

    pip install -e '.[bench]'          # the peers (torch 2.13.0 CPU, stochman, geomstats)
    python -m benchmarks [--repeats 5] [--no-peers] [--smoke] [--compilation-cache]

Writes `benchmarks/RESULTS.md` (median of `--repeats` runs after a warm-up, compile time
separate, the ratio peer time / jaxgeo time per workload, and the accuracy each reached)
and the scaling plots `figures/benchmarks/scaling.png`. Compile times are measured with
no persistent compilation cache unless `--compilation-cache` asks for jaxgeo's. Peers
that are not installed are reported as such. A full run with the peers takes about 25
minutes on 2 CPU cores, most of it geomstats; `--smoke` runs tiny sizes of jaxgeo's
side only (seconds, for the tests).
"""

import argparse
import datetime
import os
import platform
import subprocess
import time
from pathlib import Path

import jax
import jaxlib


jax.config.update("jax_enable_x64", True)

import numpy as np

import jaxgeo as jg

from . import fisher_rao, learned, problems, statistics, workloads
from .peers import geomstats_peer, stochman_peer
from .report import cell, enable_compilation_cache, markdown_table


PEERS = (stochman_peer, geomstats_peer)


def _rel(value, reference) -> float:
    return abs(float(value) - float(reference)) / abs(float(reference))


def _ms(seconds) -> str:
    return cell(None if seconds is None else 1e3 * seconds)


def _run_ms(row: dict) -> str:
    """A row's run time in ms, or why its call failed."""
    return f"failed: {row['failed']}" if "failed" in row else _ms(row["run_s"])


class Report:
    """Markdown lines, echoed to stdout as they are added."""

    def __init__(self):
        self.lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    def table(self, header: list[str], rows: list[list]) -> None:
        for line in markdown_table(header, rows):
            self(line)
        self()


def _peer_rows(peer, workload: str, *args) -> list[dict]:
    """A peer's rows for one workload, an `error` row if it raised."""
    try:
        out = getattr(peer, workload)(*args)
    except Exception as error:  # a peer's failure is a result, not a crash
        out = dict(setting="(all)", error=f"{type(error).__name__}: {error}")
    rows = out if isinstance(out, list) else [out]
    for row in list(rows):
        if "converged" in row:  # stochman's W3 geodesic: the converged setting, nested
            rows.append(row.pop("converged"))
    return rows


def section_w1(report: Report, repeats: int, peers, smoke: bool) -> None:
    refs = workloads.w1_references(smoke)
    ours = workloads.w1(repeats, problems.NUM_POINTS, smoke)
    report("## W1: one geodesic, Stein metric (ρ = 0.8), (−4, −2) → (4, −2), 64 points\n")
    report(
        f"True (ODE) length {refs['true']:.10f} (multiple shooting, tolerance 1e-12); "
        f"converged 64-point midpoint-rule length {refs['discrete']:.10f}. A 64-point "
        "polyline is short of the true length by its discretisation error (7e-5); "
        "`distance` removes it. The peers' left-point energy rules (stochman; geomstats' "
        "path straightening) are biased by about 0.4 %.\n"
    )
    rows = []
    for r in ours:
        rows.append(
            [
                "jaxgeo",
                r["setting"],
                r["compile_s"],
                _ms(r["time_s"]),
                f"{r['length']:.10f}",
                _rel(r["length"], refs["true"]),
                _rel(r["length"], refs["discrete"]) if "64-point" in r["setting"] else None,
                "",
            ]
        )
    for peer in peers:
        for r in _peer_rows(peer, "w1", repeats):
            if "error" in r:
                rows.append(
                    [peer.NAME, r["setting"], None, "failed", r["error"][:80], None, None, ""]
                )
                continue
            error = _rel(r["length"], refs["true"])
            # The fastest jaxgeo method at equal or better accuracy.
            match = [o for o in ours if _rel(o["length"], refs["true"]) <= error]
            base = min(match, key=lambda o: o["time_s"]) if match else None
            ratio = (
                f"{r['time_s'] / base['time_s']:.0f}× (vs {base['setting'].split(' (')[0]})"
                if base
                else "–"
            )
            rows.append(
                [
                    peer.NAME,
                    r["setting"] + (f"; {r['note']}" if r.get("note") else ""),
                    None,
                    _ms(r["time_s"]),
                    f"{r['length']:.7f}",
                    error,
                    None,
                    ratio,
                ]
            )
    report.table(
        [
            "library",
            "setting",
            "compile (s)",
            "time (ms)",
            "length",
            "rel. error vs true length",
            "rel. error vs converged 64-point",
            "peer time / jaxgeo time (equal or better accuracy)",
        ],
        rows,
    )


def section_w2(report: Report, repeats: int, peers, smoke: bool) -> np.ndarray:
    pairs = problems.w2_pairs(8 if smoke else 256)
    num_points = 16 if smoke else problems.NUM_POINTS
    refs = workloads.w2_references(pairs, smoke)
    ours = workloads.w2(pairs, repeats, num_points)
    report(f"## W2: {len(pairs)} geodesics, endpoints uniform in [−4, 4]² (numpy seed 0)\n")
    report(
        "Errors are relative to the true lengths (`pairwise_distances`, multiple "
        "shooting), over the pairs each implementation solved.\n"
    )

    def errors(lengths):
        ok = np.isfinite(lengths) & np.isfinite(refs)
        e = np.abs(lengths[ok] - refs[ok]) / refs[ok]
        return (float(np.median(e)), float(np.max(e)), int(ok.sum())) if ok.any() else (None,) * 3

    rows, best = [], max(len(pairs) / r["time_s"] for r in ours)
    for r in ours:
        med, worst, _ = errors(r["lengths"])
        rows.append(
            [
                "jaxgeo",
                r["setting"],
                r["compile_s"],
                f"{r['time_s']:.3f}",
                f"{len(pairs) / r['time_s']:.0f}",
                f"{r['successful']}/{len(pairs)}",
                med,
                worst,
                f"steps median {r['steps'][0]:.0f}, max {r['steps'][1]}" if r["steps"][1] else "",
            ]
        )
    for peer in peers:
        for r in _peer_rows(peer, "w2", pairs, repeats):
            if "error" in r:
                rows.append(
                    [peer.NAME, r["setting"], None, "failed", "–", "–", None, None, r["error"][:80]]
                )
                continue
            med, worst, solved = errors(np.asarray(r["lengths"], float))
            rate = len(pairs) / r["time_s"]
            timed_note = f"timed on {r['num_pairs_timed']} pairs" if "num_pairs_timed" in r else ""
            rows.append(
                [
                    peer.NAME,
                    r["setting"],
                    None,
                    f"{r['time_s']:.3f}",
                    f"{rate:.2g}",
                    f"{solved}/{len(pairs)} finite",
                    med,
                    worst,
                    "; ".join(
                        filter(
                            None,
                            [f"jaxgeo {best / rate:.0f}× the rate", timed_note, r.get("note", "")],
                        )
                    ),
                ]
            )
    report.table(
        [
            "library",
            "setting",
            "compile (s)",
            f"time for {len(pairs)} (s)",
            "geodesics / s",
            "successful",
            "median rel. error",
            "max rel. error",
            "notes",
        ],
        rows,
    )
    return pairs


def section_w3(report: Report, repeats: int, peers, smoke: bool) -> list[dict]:
    dims = (8, 16) if smoke else problems.W3_DIMS
    report("## W3: pullback metric of an MLP decoder 2 → 64 → 64 → D (tanh), float32\n")
    report(
        "One curve energy and its gradient w.r.t. the 64 curve points. The floor is one "
        "forward and one backward pass of the decoder over the 64 points. Energies are "
        "in the convention N/2 Σ|f(c_{i+1}) − f(c_i)|² (stochman's ×2 removed); "
        "'energy error' is relative to a float64 NumPy evaluation of that sum.\n"
    )
    rows, all_ours = [], []
    for dim in dims:
        ours = workloads.w3_energy(dim, repeats)
        all_ours += ours
        floor = ours[0]["time_s"]
        reference = problems.w3_secant_energy(problems.w3_curve(), problems.decoder_weights(dim))
        fd = next(r for r in ours if r["setting"].startswith("finite"))
        for r in ours:
            err = (
                _rel(r["energy"], reference) if "energy" in r and "secant" in r["setting"] else None
            )
            rows.append(
                [
                    dim,
                    "jaxgeo",
                    r["setting"],
                    _ms(r["time_s"]),
                    f"{r['time_s'] / floor:.2f}",
                    err,
                    "",
                ]
            )
        for peer in peers:
            for r in _peer_rows(peer, "w3_energy", dim, repeats):
                if "error" in r:
                    rows.append(
                        [dim, peer.NAME, r["setting"], "failed", "–", None, r["error"][:80]]
                    )
                    continue
                energy = r["energy"] / r.get("energy_factor", 1.0)
                rows.append(
                    [
                        dim,
                        peer.NAME,
                        r["setting"],
                        _ms(r["time_s"]),
                        f"{r['time_s'] / floor:.2f}",
                        _rel(energy, reference),
                        f"{r['time_s'] / fd['time_s']:.1f}× jaxgeo's finite-difference time",
                    ]
                )
    report.table(
        ["D", "library", "path", "time (ms)", "time / floor", "energy error", "peer / jaxgeo"],
        rows,
    )

    if smoke:
        return all_ours
    report(
        f"### One geodesic at D = {problems.W3_GEODESIC_DIM}, {problems.W3_Z0} → {problems.W3_Z1}\n"
    )
    ours = workloads.w3_geodesic(repeats)
    best = min(r["length"] for r in ours)
    rows = [
        [
            "jaxgeo",
            r["setting"],
            r["compile_s"],
            _ms(r["time_s"]),
            f"{r['length']:.6f}",
            f"{r['steps']} Newton steps",
        ]
        for r in ours
    ]
    fastest = ours[0]["time_s"]
    for peer in peers:
        for r in _peer_rows(peer, "w3_geodesic", repeats):
            if "error" in r:
                rows.append([peer.NAME, r["setting"], None, "failed", "–", r["error"][:80]])
                continue
            rows.append(
                [
                    peer.NAME,
                    r["setting"],
                    None,
                    _ms(r["time_s"]),
                    f"{r['length']:.6f}",
                    f"{r['time_s'] / fastest:.0f}× jaxgeo's secant time; {r.get('note', '')}",
                ]
            )
    report(
        f"Secant length Σ|f(c_{{i+1}}) − f(c_i)| of each returned curve (shortest: {best:.6f}).\n"
    )
    report.table(["library", "setting", "compile (s)", "time (ms)", "secant length", "notes"], rows)
    return all_ours


def section_w4(report: Report, repeats: int, peers) -> None:
    ref = workloads.w4_reference()
    ours = workloads.w4(repeats)
    report("## W4: exp map of the W1 metric from (−4, −2), v0 = (1, 0.5), t1 = 1 (float64)\n")
    report(f"Reference end point {np.round(ref, 10).tolist()} (Dopri8, tolerances 1e-13).\n")
    rows = []
    for r in ours:
        err = float(np.max(np.abs(r["endpoint"] - ref)))
        rows.append(["jaxgeo", r["setting"], r["compile_s"], _ms(r["time_s"]), err, ""])
    for peer in peers:
        for r in _peer_rows(peer, "w4", repeats):
            if "error" in r:
                rows.append([peer.NAME, r["setting"], None, "failed", None, r["error"][:100]])
                continue
            err = float(np.max(np.abs(np.asarray(r["endpoint"]) - ref)))
            rows.append(
                [
                    peer.NAME,
                    r["setting"],
                    None,
                    _ms(r["time_s"]),
                    err,
                    f"{r['time_s'] / ours[0]['time_s']:.0f}× jaxgeo's time",
                ]
            )
    report.table(
        ["library", "setting", "compile (s)", "time (ms)", "end-point error (max abs)", "notes"],
        rows,
    )


def section_w5(report: Report, repeats: int, with_peers: bool) -> None:
    report("## W5: Fisher–Rao distances (float64)\n")
    report(
        "From `python -m benchmarks.fisher_rao` (its docstring has the details); geomstats "
        "runs there in a subprocess with its NumPy backend, which its closed-form "
        "Normal and Categorical distances use.\n"
    )
    rows = fisher_rao.main(repeats, "numpy" if with_peers else None)
    report.table(
        [
            "case",
            "jaxgeo method",
            "run (ms)",
            "rel. error",
            "geomstats (ms)",
            "geomstats rel. error",
            "geomstats / jaxgeo time",
        ],
        [
            [
                r["case"],
                r["method"],
                r.get("run_ms"),
                r.get("error"),
                r["gs_ms"],
                r["gs_error"],
                r["gs_ms"] / r["run_ms"] if "run_ms" in r else None,
            ]
            for r in rows
        ],
    )


def _piecewise_linear_length(metric, curve: np.ndarray, pieces: int = 32) -> float:
    """The length of the piecewise-linear curve through `curve`'s points, each segment
    cut into `pieces` (an upper bound on the distance, up to O(1/pieces^2)); a 64-point
    midpoint rule can undercut the distance where the metric varies within a segment."""
    t = np.linspace(0.0, 1.0, pieces, endpoint=False)
    starts, steps = curve[:-1, None], (curve[1:] - curve[:-1])[:, None]
    points = (starts + t[None, :, None] * steps).reshape(-1, curve.shape[1])
    return float(jg.curve_length(metric, np.concatenate([points, curve[-1:]])))


def section_w6(report: Report, repeats: int, peers) -> None:
    report("## W6: a learned metric, the Stein metric of an `MLPScore` on a 2-D ring\n")
    out = learned.w6(repeats)
    report(
        "`jg.nn.MLPScore(2, width=64, depth=2)` trained in the benchmark (denoising score "
        "matching, 3,000 steps, seed 1) on 5,000 ring points; `SteinMetric(score, "
        "damping=1)`. Single calls: (2, 0) → (0, 2), a quarter of the ring; reference "
        f"length {out['reference']:.12f} (512-segment Richardson at tolerance 1e-12; "
        f"32-segment multiple shooting at 1e-12 differs by {out['shooting_gap']:.1e}). "
        "Compile = the first call (trace, compile, one run) with no persistent cache. "
        "Peers: the same network, weights copied into torch, the Stein metric written in "
        "torch; the length of their 64-point curve measured as a piecewise-linear curve "
        "with every segment cut in 32.\n"
    )
    rows = [["jaxgeo", r["call"], r["compile_s"], _run_ms(r), r["error"], ""] for r in out["rows"]]
    bvp = next(r for r in out["rows"] if r["call"].startswith("geodesic_bvp"))
    score_weights = learned.score_weights(out["score"])
    metric = jg.SteinMetric(out["score"], damping=1.0)
    a, b = out["pair"]
    for peer in peers:
        if not hasattr(peer, "w6"):
            continue
        for r in _peer_rows(peer, "w6", *score_weights, 1.0, np.asarray(a), np.asarray(b), repeats):
            if "error" in r:
                rows.append([peer.NAME, r["setting"], None, "failed", r["error"][:80], ""])
                continue
            length = _piecewise_linear_length(metric, np.asarray(r["curve"], np.float64))
            rows.append(
                [
                    peer.NAME,
                    f"{r['setting']}; {r['note']}; length {length:.7f}",
                    None,
                    _ms(r["time_s"]),
                    _rel(length, out["reference"]),
                    f"{r['time_s'] / bvp['run_s']:.0f}× (vs geodesic_bvp, default)",
                ]
            )
    report.table(
        ["library", "call / setting", "compile (s)", "time (ms)", "rel. error", "peer / jaxgeo"],
        rows,
    )


def section_w7(report: Report, repeats: int) -> None:
    report("## W7: dimension: a 64-D learned score (digits) and a 784-D decoder pullback\n")
    rows = learned.w7(repeats)
    gaps = {r["case"]: r["reference_gap"] for r in rows}
    report(
        "(a) `MLPScore(64, width=128, depth=2)` trained on scikit-learn's digits (2,000 "
        "steps, seed 1), its Stein metric (damping 1), images 0 → 10. (b) The W3 decoder "
        "2 → 64 → 64 → 784 in float64, `PullbackMetric` (JᵀJ), W3_Z0 → W3_Z1. Reference: "
        "256-segment Richardson at tolerance 1e-12 (its change from 128 segments: "
        + "; ".join(f"{case}: {gap:.1e}" for case, gap in gaps.items())
        + "). Above D = 8 the default polyline solver is L-BFGS (`EnergyDescent`); "
        "`EnergyNewton` with its dense (D, D) Hessian blocks is shown for comparison.\n"
    )
    report.table(
        ["case", "call", "compile (s)", "time (ms)", "rel. error"],
        [[r["case"], r["call"], r["compile_s"], _run_ms(r), r["error"]] for r in rows],
    )


def section_w8(report: Report, repeats: int, peers) -> None:
    report("## W8: statistics of data sets on the learned ring metric\n")
    out = statistics.main(repeats, no_peers=geomstats_peer not in peers)
    matrices, means = statistics.tables(out)
    report(
        "The W6 network and metric. Distance matrices of ring points (seed 2), end to end "
        "(compile included), with the time a 1,000-point matrix would take at the same rate "
        "and the largest relative error of 10 sampled entries against the 512-segment "
        "reference (tolerance 1e-12). k-medoids (k = 10) on that matrix and on a 1,000-point "
        "Euclidean matrix; k-means (k = 2) of 60 and of 1,000 ring points, compile included. "
        "Higher dimensions: the score-Jacobian metric (damping 1) of an `MLPScore(50, "
        "width=128, depth=3)` trained on a 50-D Swiss roll (`benchmarks.learned`), one "
        "`distance` (compile, then run) and a 20-point matrix end to end. "
        "geomstats (`benchmarks.statistics`' "
        "docstring has the details): `RiemannianKMedoids` and `RiemannianKMeans` at their "
        "defaults on the same points, the learned metric written in its backend with the "
        "network's weights and its default geodesic solvers (`RiemannianKMedoids` computes "
        "its own distance matrix, so its time is compared with jaxgeo's matrix + k-medoids); "
        f"a peer row still running after {statistics.PEER_SECONDS:g} s is stopped. Ratios: "
        "jaxgeo's time / geomstats' (< 1: jaxgeo is faster).\n"
    )
    report.table(*matrices)
    report(
        "Fréchet means (`jg.stats.frechet_mean(solver=...)`): error = the metric norm at "
        "the exact (a) or converged (b, c: `NewtonMean(rtol=1e-9, max_segments=1024)`) "
        "mean of the difference. geomstats' `FrechetMean()` at its defaults on the same "
        "problems: (a) on its own `PoincareHalfSpace(2)` (closed-form exp and log; also at "
        "a tight tolerance) and on the matrix I / y² equipped on `Euclidean(2)`; (b), (c) "
        "on the Stein metrics written in its backend (metric matrices checked against "
        "jaxgeo's in the notes), with its default shooting and with `LogODESolver`; its "
        "ratio is against the fastest jaxgeo solver at an equal or smaller error (run "
        "time; first call in brackets). For comparison, GEORCE-FM measured by issue 29 on "
        "this machine (its authors' code, 64 segments, later calls, loaded): (a) 3 ms at "
        "1e-2, (b) 83 ms, (c) 5.4 s.\n"
    )
    report.table(*means)


def section_devices(report: Report, repeats: int) -> None:
    num_pairs = 256
    out = workloads.device_scaling(num_pairs, repeats)
    report(f"## Devices: W2 ({num_pairs} pairs) sharded over 1, 2 and 4 host devices\n")
    if "error" in out:
        report(f"Failed: {out['error']}\n")
        return
    base = out[1]["time_s"]
    same = all(
        np.allclose(out[c]["lengths"], out[1]["lengths"], rtol=1e-12, equal_nan=True) for c in out
    )
    report(
        "`XLA_FLAGS=--xla_force_host_platform_device_count=4` on this machine's "
        f"{os.cpu_count()} cores; lengths equal to the 1-device ones: {same}.\n"
    )
    report.table(
        ["devices", f"time for {num_pairs} (s)", "geodesics / s", "speed-up"],
        [
            [
                c,
                f"{out[c]['time_s']:.3f}",
                f"{num_pairs / out[c]['time_s']:.0f}",
                f"{base / out[c]['time_s']:.2f}",
            ]
            for c in sorted(out)
        ],
    )


def section_scaling(report: Report, repeats: int, smoke: bool, w3_rows, figure: Path) -> None:
    points = workloads.scaling_points(repeats, (8, 16) if smoke else (16, 32, 64, 128, 256))
    batch = workloads.scaling_batch(repeats, (4, 8) if smoke else (16, 64, 256, 1024))
    report("## Scaling\n")
    report.table(
        ["curve points N", "W1 one solve (ms)"],
        [[r["num_points"], _ms(r["time_s"])] for r in points],
    )
    report.table(
        ["pairs B", "W2 time (s)", "geodesics / s"],
        [[r["batch"], f"{r['time_s']:.3f}", f"{r['batch'] / r['time_s']:.0f}"] for r in batch],
    )
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    axes[0].loglog([r["num_points"] for r in points], [1e3 * r["time_s"] for r in points], "o-")
    axes[0].set(xlabel="curve points N", ylabel="ms", title="W1: one geodesic vs N")
    for setting in dict.fromkeys(r["setting"] for r in w3_rows):
        sel = [r for r in w3_rows if r["setting"] == setting]
        axes[1].loglog(
            [r["dim"] for r in sel],
            [1e3 * r["time_s"] for r in sel],
            "o-",
            label=setting.split(" (")[0],
        )
    axes[1].set(xlabel="data dimension D", ylabel="ms", title="W3: energy + gradient vs D")
    axes[1].legend(fontsize=7)
    axes[2].loglog([r["batch"] for r in batch], [r["batch"] / r["time_s"] for r in batch], "o-")
    axes[2].set(xlabel="pairs B", ylabel="geodesics / s", title="W2: throughput vs batch")
    ticks = (
        [r["num_points"] for r in points],
        sorted({r["dim"] for r in w3_rows}),
        [r["batch"] for r in batch],
    )
    for ax, values in zip(axes, ticks):
        ax.set_xticks(values, [str(v) for v in values])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    fig.tight_layout()
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=120)
    plt.close(fig)
    report(f"Plots: `{figure}` (time vs N, vs D, vs batch size).\n")


def main(
    *,
    repeats: int = 5,
    peers: bool = True,
    smoke: bool = False,
    out: Path = Path(__file__).parent / "RESULTS.md",
    figures: Path = Path("figures/benchmarks"),
) -> list[str]:
    start = time.perf_counter()
    available = []
    report = Report()
    report("# jaxgeo benchmarks\n")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
    ).stdout.strip()
    report(
        f"`python -m benchmarks{' --smoke' if smoke else ''}` at commit {commit or 'unknown'} "
        f"on {datetime.date.today()}: "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{jax.devices()[0].platform}; Python {platform.python_version()}, "
        f"jaxgeo {jg.__version__}, jax {jax.__version__}, jaxlib {jaxlib.__version__}. "
        f"Medians of {repeats} runs after a warm-up (compile time separate); float64 "
        "unless stated.\n"
    )
    for peer in PEERS if peers and not smoke else ():
        reason = peer.unavailable()
        report(f"- {peer.NAME}: {'not run: ' + reason if reason else 'run in this process'}")
        if reason is None:
            available.append(peer)
    report()
    # Between sections, drop the compiled programs: each keeps memory mappings, and a
    # long process runs out of them (vm.max_map_count), when XLA crashes.
    section_w1(report, repeats, available, smoke)
    jax.clear_caches()
    section_w2(report, repeats, available, smoke)
    jax.clear_caches()
    w3_rows = section_w3(report, repeats, available, smoke)
    jax.clear_caches()
    section_w4(report, repeats, available)
    jax.clear_caches()
    if not smoke:  # W6 and W7 train networks: their smoke test is benchmarks.learned's
        section_w5(report, repeats, bool(available))
        jax.clear_caches()
        section_w6(report, repeats, available)
        jax.clear_caches()
        section_w7(report, repeats)
        jax.clear_caches()
        section_w8(report, repeats, available)
        jax.clear_caches()
    if not smoke:  # a subprocess with 4 host devices: tested in tests/test_sharding.py
        section_devices(report, repeats)
    section_scaling(report, repeats, smoke, w3_rows, figures / "scaling.png")
    report(f"Total benchmark time {time.perf_counter() - start:.0f} s.")
    out.write_text("\n".join(report.lines) + "\n")
    return report.lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-peers", action="store_true", help="jaxgeo only")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, jaxgeo only")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "RESULTS.md")
    parser.add_argument(
        "--compilation-cache",
        action="store_true",
        help="load compiled programs from jaxgeo's persistent cache (the compile columns "
        "then time loading them, not compiling)",
    )
    args = parser.parse_args()
    if args.compilation_cache:
        enable_compilation_cache()
    main(repeats=args.repeats, peers=not args.no_peers, smoke=args.smoke, out=args.out)
