"""Smoke runs of the experiments: they run end to end and write their files."""

import experiments.stein_gaussian as stein_gaussian
import jaxgeo as jg


def test_stein_gaussian_smoke(tmp_path, capsys):
    rows = stein_gaussian.main(seed=0, out_dir=tmp_path, smoke=True)
    expected = [
        "score_fields.png",
        "metric_transform.png",
        "geodesics.png",
        "energy_landscape.png",
        "table.md",
    ]
    expected += [
        f"geodesic_rho{rho}.{ext}" for rho in stein_gaussian.RHOS for ext in ("png", "gif")
    ]
    for name in expected:
        assert (tmp_path / name).stat().st_size > 1000 or name == "table.md", name
    assert (tmp_path / "table.md").read_text().count("success") == 3
    for row in rows:
        assert row["result"] == "success"
        assert row["length"] < row["line_length"]
        assert abs(row["ratio"] - 1) < 1e-3
    assert "geodesic length" in capsys.readouterr().out
    assert jg.RESULTS.successful is not None
