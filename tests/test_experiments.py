"""Smoke runs of the experiments: they run end to end and write their files."""

from pathlib import Path

import numpy as np
import pytest

import experiments.stein_gaussian as stein_gaussian


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


@pytest.mark.slow
def test_curvature_smoke(tmp_path):
    import experiments.curvature as curvature

    out = curvature.main(seed=0, out_dir=tmp_path, smoke=True)
    for name in ["scalar_curvature.png", "spray.png", "shooting_vs_energy.png"]:
        assert (tmp_path / name).stat().st_size > 1000, name
    assert out["spray"]["successful"] == out["spray"]["total"] == 24
    assert out["spray"]["max_speed_drift"] < 1e-6
    shooting = out["shooting"]
    assert shooting["residual"] < 1e-8
    # The 64-point polyline is O(1/N^2) short of the shot geodesic.
    assert 0 < shooting["shooting"] - shooting["energy"] < 1e-3


@pytest.mark.slow
def test_learned_score_smoke(tmp_path):
    import experiments.learned_score as learned_score

    out = learned_score.main(seed=0, out_dir=tmp_path, smoke=True)
    for name in ["score_fields.png", "geodesics.png", "moons_ensemble.png", "digits.png"]:
        assert (tmp_path / name).stat().st_size > 1000, name
    assert "| gaussian |" in (tmp_path / "table.md").read_text()
    assert all(row["result"] == "success" for row in out["two_d"]["rows"])
    assert out["moons"]["members"] == 8 and out["moons"]["mean_result"] == "success"
    assert out["digits"]["result"] == "success"
    # The trained models were checkpointed (a rerun resumes them).
    assert (tmp_path / "checkpoints" / "gaussian" / "checkpoint.json").exists()


@pytest.mark.slow
def test_latent_oddity_smoke(tmp_path):
    import experiments.latent_oddity as latent_oddity

    out = latent_oddity.main(seed=0, out_dir=tmp_path, smoke=True)
    for name in ["magnification.png", "geodesics.png", "decoded.png"]:
        assert (tmp_path / name).stat().st_size > 1000, name
    assert len(out["rows"]) == len(latent_oddity.PAIRS)
    assert all(row["result"] == "success" for row in out["rows"])
    # Geodesics are no longer than the straight lines under the same metric.
    assert all(row["geodesic"] <= row["line"] * (1 + 1e-6) for row in out["rows"])
    assert out["sigma_far"] >= 10 * out["sigma_near"]


@pytest.mark.slow
def test_information_geometry_smoke(tmp_path):
    import experiments.information_geometry as information_geometry

    out = information_geometry.main(seed=0, out_dir=tmp_path, smoke=True)
    for name in ["normal.png", "toy.png", "digits.png", "fisher.png", "table.md"]:
        assert (tmp_path / name).stat().st_size > 500, name
    for row in out["normal"]:  # default jg.distance against the closed form
        assert row["solved"] and row["rel_error"] < 1e-6, row
    for row in out["toy"]:  # KL-energy geodesics solve and beat the straight line
        assert row["kl_solved"] and row["kl_length"] <= row["line_length"] * (1 + 1e-6), row
    for row in out["digits"]:
        assert row["solved"] and row["geodesic"] <= row["line"] * (1 + 1e-6), row
    early, trained = out["spectra"]
    assert trained["accuracy"] > early["accuracy"]
    assert (tmp_path / "checkpoints" / "digits-vae" / "checkpoint.json").exists()


@pytest.mark.slow
def test_riemannian_sampling_smoke(tmp_path):
    import experiments.riemannian_sampling as riemannian_sampling

    out = riemannian_sampling.main(seed=0, out_dir=tmp_path, smoke=True)
    assert (tmp_path / "chains.png").stat().st_size > 1000
    assert len(out["rows"]) == 18
    for row in out["rows"]:
        assert 0.3 < row["acceptance"] < 0.97, row  # the warm-up reached its target
        assert row["ess"] > 0 and np.isfinite(row["ess_per_second"]), row


@pytest.mark.slow
def test_manifold_statistics_smoke(tmp_path):
    import experiments.manifold_statistics as manifold_statistics

    out = manifold_statistics.main(seed=0, out_dir=tmp_path, smoke=True)
    for name in [
        "clusters.png",
        "geodesics.png",
        "means.png",
        "principal.png",
        "transport.png",
        "table.md",
    ]:
        assert (tmp_path / name).stat().st_size > 500, name
    # Two pairs of each data set under each metric; a curve is at least its chord.
    assert len(out["geodesics"]) == 2 * 2 * len(manifold_statistics.METRICS)
    for row in out["geodesics"]:
        if row["result"] == "success":
            assert row["euclidean"] >= row["chord"] * (1 - 1e-9), row
    # Every data set and method scored, with an ARI in [-1, 1].
    assert len(out["clusters"]) == len(manifold_statistics.DATASETS) * (
        len(manifold_statistics.METRICS) + 1
    )
    assert all(-1 <= row["ari_mean"] <= 1 for row in out["clusters"])
    assert len(out["rows"]) == 2
    # Every class has a mean (the smoke run's 8 Karcher steps may not converge) with a
    # finite variance: Newton's, or the fallback's where Newton's did not solve.
    for row in out["rows"]:
        assert np.isfinite(row["variance"]) and row["newton_steps"] > 0, row
        newton_solved = row["newton"] == "success"
        assert row["solver"] == ("Newton" if newton_solved else "energy + Karcher"), row
        assert (row["fallback_steps"] == 0) == newton_solved, row
        if newton_solved:
            assert row["result"] == "success", row
    # The transport is reported as a success only between means that solved (the smoke
    # run's 8 Karcher steps leave some unsolved: then it says which); parallel transport
    # is an isometry: the ODE keeps the norm.
    solved = {row["digit"]: row["result"] == "success" for row in out["rows"]}
    a, b = out["pair"]
    unsolved = [str(c) for c in (a, b) if not solved[c]]
    if unsolved:
        expected = f"failed: the mean of {' and '.join(unsolved)} did not solve"
        assert out["transport"]["result"] == expected
    else:
        assert out["transport"]["result"] == "success"
    assert out["transport"]["norm_drift"] < 1e-6
    assert abs(out["transport"]["cos_transported"]) <= 1 + 1e-9
    np.testing.assert_allclose(sum(out["explained"]), 1.0, rtol=1e-9)


@pytest.mark.slow
def test_motion_skills_smoke(tmp_path):
    import experiments.motion_skills as motion_skills

    out = motion_skills.main(seed=0, out_dir=tmp_path, smoke=True)
    for name in ["latent.png", "paths.png"]:
        assert (tmp_path / name).stat().st_size > 1000, name
    assert "length (KL)" in (tmp_path / "table.md").read_text()
    kl = [r for r in out["rows"] if r["curve"] == "geodesic (Fisher-Rao, KL)"]
    assert len(kl) == 2 and all(r["result"] == "success" for r in kl)
    unit_free = [r for r in out["rows"] if r["curve"] == "geodesic (expected, unit-free)"]
    assert len(unit_free) == 2 and all(np.isfinite(r["fine_length"]) for r in unit_free)
    assert out["scales"].shape == (4,) and np.all(out["scales"] > 0)
    for check in out["calibration"].values():
        assert check["kappa"] > 0 and check["kappa_ml"] > 0 and check["best_gain"] >= -1e-9
    assert all(np.isfinite(r["kl_length"]) and r["kl_length"] > 0 for r in out["rows"])
    # the simulated demonstrations: unit quaternions in one hemisphere
    demos = motion_skills.demonstrations(0, 10)
    np.testing.assert_allclose(np.linalg.norm(demos[..., 3:], axis=-1), 1.0, rtol=1e-12)
    assert np.all(demos[..., 3:] @ motion_skills.axis_angle([0, 1, 0], np.pi) >= 0)


@pytest.mark.slow
def test_sequence_evolution_smoke(tmp_path):
    import experiments.sequence_evolution as sequence_evolution

    out = sequence_evolution.main(seed=0, out_dir=tmp_path, smoke=True)
    assert (tmp_path / "latent.png").stat().st_size > 1000
    assert "Spearman" in (tmp_path / "table.md").read_text()
    row = out["rows"][0]
    geometries = [f"{d}_{e}" for d in ("blend", "switch") for e in ("kl", "probabilities")]
    assert set(geometries) == set(sequence_evolution.GEOMETRIES)
    # graph paths in every geometry, geodesics refined from them under the soft blend
    solved = ["blend_kl", "blend_probabilities"]
    measures = [f"path_{g}" for g in geometries] + [f"geodesic_{g}" for g in solved]
    assert set(measures) == set(sequence_evolution.MEASURES)
    assert row["solved"] <= min(row[f"solved_{name}"] for name in solved)
    for tree in ("true", "estimated"):
        for name in measures + ["euclidean", "hamming"]:
            assert all(-1 <= c <= 1 for c in row[f"{name}_{tree}"])
        for name in measures:
            for statistic in ("spearman", "pearson"):
                difference, lo, hi = row[f"difference_{name}_{statistic}_{tree}"]
                assert lo <= hi and -2 <= difference <= 2
    assert "probabilities, sharp switch" in (tmp_path / "table.md").read_text()
    # the ablation of the family's size: the same seed with fewer sequences
    (small,) = out["ablation"]
    assert small["seed"] == row["seed"] and small["leaves"] < row["leaves"]
    assert "Ablation, the family's size" in (tmp_path / "table.md").read_text()
    assert "seed(s)" in (tmp_path / "table.md").read_text()
    # the simulated tree: patristic distances are a metric on the leaves
    rng = np.random.default_rng(0)
    tree = sequence_evolution.Tree(12, rng)
    leaves = tree.leaves
    d = np.array([[tree.patristic(i, j) for j in leaves] for i in leaves])
    np.testing.assert_allclose(d, d.T)
    assert np.all(np.diag(d) == 0) and np.all(d[~np.eye(len(leaves), dtype=bool)] > 0)
    sequences = sequence_evolution.evolve(tree, rng)
    assert sequences.shape == (len(tree.parent), sequence_evolution.LENGTH)
    assert sequences.min() >= 0 and sequences.max() < sequence_evolution.LETTERS
    assert row["solved_blend_kl"] == row["solved_blend_probabilities"] == row["pairs"]
    assert "scatter.png" in {p.name for p in tmp_path.iterdir()}


def test_sequence_evolution_graph_paths_go_round_a_bump():
    """A pair's graph-path length is its shortest path through the codes' k-NN graph, or
    the straight segment's where that is shorter. Codes on the unit circle (64), a bump
    of the metric at its centre (conformal factor 1 + 10 exp(-|x|^2 / 0.01)): across
    the circle, 8 chords of the graph's longest edges (4 steps each: 16 sin(pi / 16)),
    where the line costs about 3.8; between neighbours, their chord."""
    import jax.numpy as jnp

    import experiments.sequence_evolution as sequence_evolution
    import jaxgeo as jg

    metric = jg.MatrixMetric(
        lambda x: (1 + 10 * jnp.exp(-jnp.sum(x**2) / 0.01)) ** 2 * jnp.eye(2, dtype=x.dtype)
    )
    angles = jnp.arange(64.0) * 2 * jnp.pi / 64
    codes = jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=1)
    z0, z1 = codes[jnp.array([32, 0])], codes[jnp.array([0, 1])]
    paths, lengths = sequence_evolution.pair_paths(metric, codes, z0, z1, 33)
    np.testing.assert_allclose(lengths[0], 16 * np.sin(np.pi / 16), rtol=1e-9)
    assert float(jnp.max(jnp.linalg.norm(paths[0], axis=1))) <= 1 + 1e-12  # round the bump
    np.testing.assert_allclose(lengths[1], jnp.linalg.norm(codes[1] - codes[0]), rtol=1e-9)


def test_sequence_evolution_correlations_match_scipy():
    """The vectorised correlations of the bootstrap are scipy's, ties included, row by
    row; the paired differences' intervals hold their estimates."""
    from scipy.stats import pearsonr, spearmanr

    import experiments.sequence_evolution as sequence_evolution

    rng = np.random.default_rng(0)
    x, y = np.round(rng.random((4, 30)), 1), rng.random(30)
    spearman, pearson = sequence_evolution.correlations(x, y)
    np.testing.assert_allclose(spearman, [spearmanr(row, y).statistic for row in x], atol=1e-12)
    np.testing.assert_allclose(pearson, [pearsonr(row, y).statistic for row in x], atol=1e-12)
    euclidean = y + rng.normal(0, 0.5, 30)
    for difference, lo, hi in sequence_evolution.paired_differences(y, euclidean, y, rng):
        assert 0 < lo < difference < hi  # (the tree's own distances correlate perfectly)


def test_stored_results_are_reused_only_under_their_digest(tmp_path):
    """An interrupted long run keeps its finished results: `stored` computes once,
    reads the value back under the same digest, and computes again under another."""
    from experiments._common import source_digest, stored

    calls = []

    def compute():
        calls.append(1)
        return dict(value=len(calls), pair=[0.5, 1.5])

    path = tmp_path / "rows" / "a.json"
    digest = source_digest(Path(__file__))
    assert stored(path, digest, compute) == (dict(value=1, pair=[0.5, 1.5]), False)
    assert stored(path, digest, compute) == (dict(value=1, pair=[0.5, 1.5]), True)
    assert stored(path, "another", compute) == (dict(value=2, pair=[0.5, 1.5]), False)
    assert len(calls) == 2 and not list(tmp_path.rglob("*.tmp"))


def test_figures_draw_a_failed_geodesic_apart_and_name_it():
    """A solve that failed is drawn dashed red with its result in the legend; a solved
    one in its own style; the legend names the start and goal markers."""
    import equinox as eqx
    import jax.numpy as jnp
    import matplotlib.pyplot as plt

    import jaxgeo as jg
    from experiments._figures import FAILED_STYLE, plane_axes, solved_curve

    metric = jg.SteinMetric(jg.scores.gaussian(jnp.zeros(2), jnp.eye(2)))
    solved = jg.geodesic_bvp(metric, jnp.array([-2.0, -1.0]), jnp.array([2.0, -1.0]))
    failed = eqx.tree_at(lambda s: s.result, solved, jg.RESULTS.nonlinear_max_steps_reached)
    fig, ax = plt.subplots()
    solved_curve(ax, solved, "geodesic", color="tab:blue")
    solved_curve(ax, failed, "geodesic", color="tab:blue")
    plane_axes(ax)
    good, bad = ax.get_lines()
    assert good.get_color() == "tab:blue" and good.get_linestyle() == "-"
    assert bad.get_color() == FAILED_STYLE["color"] and bad.get_linestyle() == "--"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:2] == ["geodesic", "geodesic FAILED (nonlinear_max_steps_reached)"]
    assert labels[2:] == ["start", "goal"] and ax.get_xlabel() == "$x_1$"
    plt.close(fig)


def test_neighbour_joining_recovers_an_additive_tree():
    """Neighbour joining is exact on the path lengths of a tree (Saitou and Nei): the
    estimated tree's leaf-to-leaf distances are the simulated tree's, and the Poisson
    correction inverts the expected fraction of differing sites."""
    import experiments.sequence_evolution as sequence_evolution

    tree = sequence_evolution.Tree(30, np.random.default_rng(3))
    leaves = tree.leaves
    d = np.array([[tree.patristic(i, j) for j in leaves] for i in leaves])
    estimated = sequence_evolution.EdgeTree(*sequence_evolution.neighbour_joining(d))
    again = np.array([[estimated.distance(i, j) for j in range(30)] for i in range(30)])
    np.testing.assert_allclose(again, d, atol=1e-10)
    t = np.array([0.0, 0.1, 0.5, 1.5])
    letters = sequence_evolution.LETTERS
    expected = (letters - 1) / letters * -np.expm1(-letters / (letters - 1) * t)
    np.testing.assert_allclose(sequence_evolution.poisson_corrected(expected), t, atol=1e-12)


@pytest.mark.slow
def test_human_poses_smoke(tmp_path):
    import experiments.human_poses as human_poses

    out = human_poses.main(seed=0, out_dir=tmp_path, smoke=True)
    for name in ["latent.png", "poses.png"]:
        assert (tmp_path / name).stat().st_size > 1000, name
    assert "| geodesic | success |" in (tmp_path / "table.md").read_text()
    # the decoder is confident on its data, and every geodesic solved and is no longer
    # (in the KL energy's length) than its straight line
    assert out["kappa_on_data"] > human_poses.KAPPA_CONFIDENT
    rows = out["rows"]
    for geodesic, line in zip(rows[0::2], rows[1::2]):
        assert geodesic["curve"] == "geodesic" and geodesic["result"] == "success"
        assert geodesic["length"] <= line["length"] * (1 + 1e-6)


def test_human_poses_angles_wrap_and_figure_kinematics():
    """The demonstrations' angles lie in (-pi, pi] and the arm circles' shoulders take
    every value (they wrap); the stick figure's limbs have their lengths."""
    import experiments.human_poses as human_poses

    angles, labels, _ = human_poses.demonstrations(0, 200)
    assert np.all(angles > -np.pi) and np.all(angles <= np.pi)
    shoulders = angles[labels == human_poses.MOTIONS.index("arm circles"), 4]
    assert shoulders.min() < -3.0 and shoulders.max() > 3.0
    limbs = human_poses.skeleton(angles[0])
    thigh = np.linalg.norm(limbs["left leg"][1] - limbs["left leg"][0])
    forearm = np.linalg.norm(limbs["right arm"][2] - limbs["right arm"][1])
    np.testing.assert_allclose([thigh, forearm], [human_poses.THIGH, human_poses.FOREARM])
