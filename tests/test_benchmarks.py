"""The benchmark suite runs end to end in its smoke mode (tiny sizes, no peers)."""

import numpy as np
import pytest

from benchmarks.__main__ import main


def _cells(lines, prefix):
    row = next(line for line in lines if line.startswith(prefix))
    return [c.strip() for c in row.strip("|").split("|")]


@pytest.mark.slow
def test_benchmark_smoke(tmp_path):
    out = tmp_path / "RESULTS.md"
    lines = main(repeats=1, smoke=True, out=out, figures=tmp_path / "figures")
    text = out.read_text()
    for section in ("## W1", "## W2", "## W3", "## W4", "## Scaling"):
        assert section in text
    assert (tmp_path / "figures" / "scaling.png").stat().st_size > 10_000
    # W1: the default solve is within 1e-5 of the converged 64-point length.
    w1 = _cells(lines, "| jaxgeo | geodesic_bvp, default")
    assert float(w1[6]) < 1e-5
    # W2: every pair solved.
    w2 = _cells(lines, "| jaxgeo | geodesic_bvp_batch, default")
    assert w2[5] == "8/8"
    # W3: the secant energy agrees with NumPy's; W4: the end point to 1e-9.
    w3 = _cells(lines, "| 16 | jaxgeo | finite differences")
    assert float(w3[5]) < 1e-5
    w4 = _cells(lines, "| jaxgeo | exp_map")
    assert float(w4[4]) < 1e-9


@pytest.mark.slow
def test_learned_metric_benchmark_smoke():
    from benchmarks.learned import main as learned

    out = learned(repeats=1, smoke=True)
    rows = {row["call"].split(",")[0]: row for row in out["w6"]}
    # The default distance and log map reach the reference (512-segment extrapolation,
    # checked against multiple shooting) to 1e-6 on the learned metric.
    assert rows["distance"]["error"] < 1e-6
    assert rows["log_map"]["error"] < 1e-6
    assert rows["geodesic_bvp"]["error"] < 1e-3
    pairwise = rows["pairwise_distances"]
    assert pairwise["finite"] == pairwise["entries"]
    # W7: both cases solved, the default distance within 1e-4 of the reference even at
    # the smoke sizes (a barely trained score, a 16-D decoder).
    for case in {row["case"] for row in out["w7"]}:
        distance = next(
            r for r in out["w7"] if r["case"] == case and r["call"].startswith("distance")
        )
        assert distance["error"] < 1e-4, case


@pytest.mark.slow
def test_statistics_benchmark_smoke():
    from benchmarks.peers import geomstats_peer
    from benchmarks.statistics import main as statistics

    out = statistics(repeats=1, smoke=True)
    ours = {key: [r for r in rows if r["library"] == "jaxgeo"] for key, rows in out.items()}
    for row in ours["matrices"]:
        if "failed" in row:  # the distance matrices: every entry solved, and accurate
            assert row["failed"] == 0, row
            if "50-D" not in row["call"]:  # (no reference solve there)
                assert row["error"] < 1e-3, row
    assert sum("50-D" in row["call"] for row in ours["matrices"]) == 2
    for row in ours["means"]:
        if row["problem"].startswith("(d)"):  # (the digit VAE's: measured, not met)
            assert np.isfinite(row["error"]) and row["run_s"] > 0, row
            continue
        assert row["result"] == "successful", row
        tolerance = 1e-5 if row["solver"].startswith("EnergyMean") else 1e-7
        assert row["error"] < tolerance, row
    problems = {row["problem"] for row in ours["means"]}
    assert {p.split(",")[0] for p in problems} == {
        "(a) Poincaré",
        "(b) Gaussian rho = 0.95 Stein",
        "(c) learned ring",
        "(d) digit VAE",
    }
    # geomstats, where installed ([bench]): every peer row ran on the same metric and
    # either finished or was stopped at the smoke's time limit; on its closed-form
    # half-plane its default FrechetMean finishes, and at a tight tolerance is exact.
    peers = {key: [r for r in rows if r["library"] != "jaxgeo"] for key, rows in out.items()}
    k_means = [r for r in ours["matrices"] if r["call"].startswith("k_means")]
    assert [r["call"].split(",")[1] for r in k_means] == [" 8 points", " 24 points"]
    assert all("(successful)" in r["call"] for r in k_means), k_means
    assert len(peers["matrices"]) == 4  # k-medoids twice, k-means twice
    if geomstats_peer.unavailable() is not None:
        assert all(r["note"].startswith("not run") for r in peers["matrices"] + peers["means"])
        return
    ran = [r for r in peers["means"] if not r["note"].startswith("not run")]
    assert len(ran) == 8  # two settings on each of the four spaces
    assert len(peers["means"]) == 9  # and the digit problem, not run
    for row in peers["matrices"]:
        assert row["seconds"] is not None or "TimeLimit" in row["note"], row
    for row in ran:
        assert row["run_s"] is not None or "TimeLimit" in row["note"], row
        assert row["matrix_error"] < 1e-12, row
    closed_form = [r for r in peers["means"] if "closed-form" in r["solver"]]
    assert [r["result"] for r in closed_form] == ["successful"] * 2
    assert closed_form[0]["error"] < 1e-2 and closed_form[1]["error"] < 1e-6
    medoids = next(r for r in peers["matrices"] if "closed-form" in r["call"])
    assert medoids["seconds"] is not None, medoids


def test_a_failed_jaxgeo_call_is_a_row_not_a_crash():
    """A jaxgeo call that fails (here: a metric undefined everywhere) is reported in its
    table row with the reason, and the suite goes on."""
    import jax.numpy as jnp

    import jaxgeo as jg
    from benchmarks.learned import _row, table

    undefined = jg.MatrixMetric(lambda x: jnp.full((2, 2), jnp.nan, x.dtype))
    row = _row("distance", lambda: jg.distance(undefined, jnp.zeros(2), jnp.ones(2)), 1, 1.0)
    assert row["run_s"] is None and row["failed"]
    assert table([row])[0][2].startswith("failed: ")
