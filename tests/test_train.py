"""Score networks, score-matching losses and the training loop (checkpoints, resume)."""

import shutil
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgeo as jg

from .helpers import tree_allclose


SIGMA = jnp.array([[1.0, 0.8], [0.8, 1.0]])


class Linear(eqx.Module):
    """s(x) = A x: the exact family of Gaussian scores."""

    a: jax.Array

    def __call__(self, x):
        return self.a @ x


def gaussian_data(n=4000, seed=0):
    return jnp.asarray(jg.data.part2_gaussian(n, seed))


def small_mlp(key, **kwargs):
    return jg.nn.MLPScore(2, width=16, depth=2, key=key, **kwargs)


def test_denoising_score_matching_recovers_the_smoothed_gaussian_score():
    # For Gaussian data the DSM minimiser over linear scores is -(Sigma + sigma^2 I)^-1.
    sigma = 0.5
    result = jg.train.fit(
        partial(jg.train.denoising_score_matching, sigma=sigma),
        Linear(jnp.zeros((2, 2))),
        gaussian_data(),
        optimizer=optax.adam(1e-2),
        num_steps=1500,
        batch_size=512,
        key=jax.random.key(0),
    )
    expected = -jnp.linalg.inv(SIGMA + sigma**2 * jnp.eye(2))
    np.testing.assert_allclose(result.model.a, expected, atol=0.08)
    assert result.losses.shape == (1500,)
    assert result.losses[-100:].mean() < result.losses[:10].mean()


def test_sliced_score_matching_closed_form_and_minimiser():
    # At the true score s = -Sigma^-1 x the SSM loss is E[tr J] + E|s|^2 / 2 = -tr(Sigma^-1)/2.
    data = gaussian_data(20_000)
    true = Linear(-jnp.linalg.inv(SIGMA))
    loss = jg.train.sliced_score_matching(true, data, jax.random.key(1), num_projections=4)
    np.testing.assert_allclose(loss, -0.5 * jnp.trace(jnp.linalg.inv(SIGMA)), rtol=0.05)
    result = jg.train.fit(
        partial(jg.train.sliced_score_matching, num_projections=2),
        Linear(-jnp.eye(2)),
        data,
        optimizer=optax.adam(1e-2),
        num_steps=1500,
        batch_size=512,
        key=jax.random.key(2),
    )
    np.testing.assert_allclose(result.model.a, true.a, atol=0.5)


@pytest.mark.slow
def test_noise_conditional_score_learns_two_levels():
    sigmas = jg.train.noise_levels(1.0, 0.1, 4)
    model = jg.nn.NoiseConditionalScore(2, width=32, depth=2, key=jax.random.key(3))
    result = jg.train.fit(
        partial(jg.train.multiscale_denoising_score_matching, sigmas=sigmas),
        model,
        gaussian_data(),
        optimizer=optax.adam(optax.cosine_decay_schedule(3e-3, 2000)),
        num_steps=2000,
        batch_size=512,
        key=jax.random.key(4),
    )
    xs = gaussian_data(200, seed=9)
    for sigma in (1.0, 0.1):
        learned = jax.vmap(result.model.at(sigma))(xs)
        true = xs @ -jnp.linalg.inv(SIGMA + sigma**2 * jnp.eye(2))
        error = jnp.linalg.norm(learned - true) / jnp.linalg.norm(true)
        assert float(error) < 0.25, (sigma, float(error))


def test_resume_gives_identical_parameters(tmp_path):
    kwargs = dict(
        optimizer=optax.adam(3e-3),
        batch_size=64,
        key=jax.random.key(5),
        steps_per_chunk=25,
        checkpoint_every=50,
    )
    loss = partial(jg.train.denoising_score_matching, sigma=0.2)
    data = gaussian_data(1000)
    model = small_mlp(jax.random.key(6))
    straight = jg.train.fit(
        loss, model, data, num_steps=200, checkpoint_dir=tmp_path / "a", **kwargs
    )
    # An "interrupted" run: 100 steps, then the same call with the full budget resumes.
    first = jg.train.fit(loss, model, data, num_steps=100, checkpoint_dir=tmp_path / "b", **kwargs)
    assert first.resumed_from == 0
    resumed = jg.train.fit(
        loss, model, data, num_steps=200, checkpoint_dir=tmp_path / "b", **kwargs
    )
    assert resumed.resumed_from == 100
    # Only the committed checkpoint and the one before it (the fallback) are kept.
    names = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert names == [
        "checkpoint.json",
        "losses-150.npy",
        "losses-200.npy",
        "state-150.eqx",
        "state-200.eqx",
    ]
    assert tree_allclose(resumed.model, straight.model, rtol=0, atol=0)
    np.testing.assert_array_equal(resumed.losses, straight.losses)
    # Same seed, same result, with or without checkpoints and whatever the chunking.
    again = jg.train.fit(loss, model, data, num_steps=200, **dict(kwargs, steps_per_chunk=40))
    assert tree_allclose(again.model, straight.model, rtol=0, atol=0)


def _flip_bytes(path, start, count=64):
    data = bytearray(path.read_bytes())
    data[start : start + count] = bytes(b ^ 0xFF for b in data[start : start + count])
    path.write_bytes(bytes(data))


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_state(step):
    return lambda d: _flip_bytes(
        d / f"state-{step}.eqx", (d / f"state-{step}.eqx").stat().st_size // 2
    )


# Damage to the newest checkpoint's files: training falls back to the one before it.
FALLBACKS = {
    # 64 bytes flipped inside the state (same size): parameters silently wrong before.
    "state bytes flipped": _flip_state(20),
    # The losses' payload overwritten (the header intact).
    "losses payload overwritten": lambda d: _flip_bytes(d / "losses-20.npy", 200, 16),
    "state truncated": lambda d: _truncate(d / "state-20.eqx"),
    "state missing": lambda d: (d / "state-20.eqx").unlink(),
}
# Damage with no intact checkpoint left: an error naming the file, nothing overwritten.
REFUSALS = {
    "both states flipped": (lambda d: (_flip_state(20)(d), _flip_state(10)(d)), "corrupted"),
    "checkpoint.json not JSON": (
        lambda d: (d / "checkpoint.json").write_text('{"step": 20 "state"'),
        "damaged: not JSON",
    ),
    "checkpoint.json without fields": (
        lambda d: (d / "checkpoint.json").write_text("[]"),
        "damaged: fields missing",
    ),
}


def test_damaged_checkpoints_fall_back_or_are_refused_and_kept(tmp_path):
    """A checkpoint whose files changed after they were committed (checked by SHA-256)
    is passed over, with a warning, for the one before it, and training ends with the
    parameters of an undamaged run; with no intact checkpoint left, or an unreadable
    `checkpoint.json`, it is an error that names the file, and nothing is overwritten."""
    loss = partial(jg.train.denoising_score_matching, sigma=0.2)
    kwargs = dict(
        optimizer=optax.adam(1e-3),
        num_steps=20,
        batch_size=8,
        key=jax.random.key(0),
        steps_per_chunk=10,
        checkpoint_every=10,
    )
    data, model = gaussian_data(100), small_mlp(jax.random.key(0))
    good = tmp_path / "good"
    straight = jg.train.fit(loss, model, data, checkpoint_dir=good, **kwargs)
    assert jg.train.fit(loss, model, data, checkpoint_dir=good, **kwargs).resumed_from == 20
    for k, (name, damage) in enumerate(FALLBACKS.items()):
        directory = tmp_path / f"fallback{k}"
        shutil.copytree(good, directory)
        damage(directory)
        with pytest.warns(UserWarning, match="damaged; resuming from the earlier one at step 10"):
            fit = jg.train.fit(loss, model, data, checkpoint_dir=directory, **kwargs)
        assert fit.resumed_from == 10, name
        assert tree_allclose(fit.model, straight.model, rtol=0, atol=0), name
        np.testing.assert_array_equal(fit.losses, straight.losses)
    for k, (name, (damage, message)) in enumerate(REFUSALS.items()):
        directory = tmp_path / f"refusal{k}"
        shutil.copytree(good, directory)
        damage(directory)
        before = {p.name: p.read_bytes() for p in directory.iterdir()}
        with pytest.raises(ValueError, match=message):
            jg.train.fit(loss, model, data, checkpoint_dir=directory, **kwargs)
        assert {p.name: p.read_bytes() for p in directory.iterdir()} == before, name
    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(ValueError, match="existing file, not a directory"):
        jg.train.fit(loss, model, data, checkpoint_dir=tmp_path / "a-file", **kwargs)


def test_checkpoints_of_another_run_are_refused_and_kept(tmp_path):
    loss = partial(jg.train.denoising_score_matching, sigma=0.2)
    model = small_mlp(jax.random.key(0))
    kwargs = dict(optimizer=optax.adam(1e-3), num_steps=10, batch_size=8, key=jax.random.key(0))
    data = np.asarray(gaussian_data(100))

    # A checkpoint of another architecture, seed, data, batch size, optimiser
    # hyperparameter or loss keyword: a clear error, and the checkpoint is kept byte for
    # byte.
    def fit_here(model=model, data=data, loss=loss, **changes):
        return jg.train.fit(
            loss,
            model,
            data,
            checkpoint_dir=tmp_path,
            steps_per_chunk=10,
            checkpoint_every=10,
            **dict(kwargs, **changes),
        )

    fit_here()

    def files():
        return {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    before = files()
    wider = jg.nn.MLPScore(2, width=32, depth=2, key=jax.random.key(0))
    with pytest.raises(ValueError, match="different model"):
        fit_here(model=wider)
    with pytest.raises(ValueError, match="different key"):
        fit_here(key=jax.random.key(1))
    with pytest.raises(ValueError, match="different data"):
        fit_here(data=data + 1)
    with pytest.raises(ValueError, match="batch_size"):
        fit_here(batch_size=16)
    with pytest.raises(ValueError, match="different optimiser configuration"):
        fit_here(optimizer=optax.adam(1e-2))
    with pytest.raises(ValueError, match="different loss_fn or loss arguments"):
        fit_here(loss=partial(jg.train.denoising_score_matching, sigma=0.5))
    # The same configuration in new objects is the same run.
    assert fit_here(optimizer=optax.adam(1e-3), loss=partial(loss.func, sigma=0.2)).resumed_from
    assert files() == before


def _train_child(directory, *flags) -> subprocess.Popen:
    root = Path(__file__).parent.parent
    return subprocess.Popen(
        [sys.executable, "-m", "tests._train_child", str(directory), *flags],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_sigkill_at_any_moment_resumes_bit_identically(tmp_path):
    """A training process killed with SIGKILL before its first checkpoint, between two
    checkpoints, and inside a commit (state written, checkpoint.json not yet replaced)
    resumes to the bit-identical final state of an uninterrupted run."""
    reference = tmp_path / "reference"
    child = _train_child(reference)
    assert child.communicate(timeout=300)[0].strip() == "resumed_from=0"
    expected = (reference / "state-60.eqx").read_bytes()
    # The marker at which the process is killed, and the step it then resumes from.
    moments = {"before-10": 0, "after-20": 20, "replacing-30": 20}
    for k, (marker, resumed_from) in enumerate(moments.items()):
        directory = tmp_path / f"killed{k}"
        child = _train_child(directory, "--pause")
        marker_file = tmp_path / f"{directory.name}.{marker}"
        deadline = time.monotonic() + 300
        while not marker_file.exists():
            assert child.poll() is None and time.monotonic() < deadline, marker
            time.sleep(0.01)
        child.kill()  # SIGKILL: no cleanup, no finally blocks
        child.communicate()
        resumed = _train_child(directory)
        assert resumed.communicate(timeout=300)[0].strip() == f"resumed_from={resumed_from}"
        assert (directory / "state-60.eqx").read_bytes() == expected, marker


@pytest.mark.slow
def test_ensemble_trains_as_one_program():
    keys = jax.random.split(jax.random.key(7), 4)
    models = eqx.filter_vmap(small_mlp)(keys)
    loss = jg.train.ensemble_loss(partial(jg.train.denoising_score_matching, sigma=0.2))
    result = jg.train.fit(
        loss,
        models,
        gaussian_data(1000),
        optimizer=optax.adam(3e-3),
        num_steps=300,
        batch_size=128,
        key=jax.random.key(8),
    )
    assert result.losses[-50:].mean() < result.losses[:5].mean()
    metric = jg.EnsembleMetric(eqx.filter_vmap(lambda m: jg.SteinMetric(m))(result.model))
    assert metric.num_members == 4
    x = jnp.array([0.3, -0.2])
    members = jnp.stack([metric.member(i).matrix(x) for i in range(4)])
    np.testing.assert_allclose(metric.matrix(x), members.mean(0), rtol=1e-12)
    assert float(jnp.max(jnp.abs(members[0] - members[1]))) > 1e-4  # members differ
    x0, x1 = jnp.array([-1.0, -1.0]), jnp.array([1.0, 1.2])
    each, mean = jg.ensemble_geodesics(metric, x0, x1, num_points=16)
    assert each.xs.shape == (4, 16, 2) and mean.xs.shape == (16, 2)
    assert bool(jnp.all(each.result == jg.RESULTS.successful))
    assert mean.result == jg.RESULTS.successful
    single = jg.geodesic_bvp(metric.member(2), x0, x1, num_points=16)
    np.testing.assert_allclose(each.xs[2], single.xs, atol=1e-6)


@pytest.mark.slow
def test_energy_score_is_a_gradient_and_conservative_closed_form_applies():
    model = jg.nn.EnergyScore(2, width=16, depth=2, key=jax.random.key(9))
    x, v = jnp.array([0.4, -1.1]), jnp.array([0.7, 0.2])
    jac = jax.jacfwd(model)(x)
    np.testing.assert_allclose(jac, jac.T, atol=1e-12)
    np.testing.assert_allclose(model(x), -jax.grad(model.energy)(x))
    generic = jg.geodesic_acceleration(jg.SteinMetric(model), x, v)
    closed = jg.geodesic_acceleration(jg.SteinMetric(model, conservative=True), x, v)
    np.testing.assert_allclose(closed, generic, rtol=1e-9, atol=1e-12)
    free = jg.nn.MLPScore(2, width=16, depth=2, key=jax.random.key(9))
    jac = jax.jacfwd(free)(x)
    assert float(jnp.max(jnp.abs(jac - jac.T))) > 1e-3  # a free-form score is not
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        free(jnp.ones(3))


@pytest.mark.slow
def test_geodesic_length_gradient_wrt_network_parameters():
    model = jg.nn.MLPScore(2, width=4, depth=1, activation=jnp.tanh, key=jax.random.key(10))
    params, static = eqx.partition(model, eqx.is_inexact_array)
    x0, x1 = jnp.array([-1.0, 0.5]), jnp.array([1.0, -0.5])

    def length(p):
        metric = jg.SteinMetric(eqx.combine(p, static))
        solver = jg.EnergyNewton(rtol=1e-10, atol=1e-10)
        return jg.geodesic_bvp(metric, x0, x1, num_points=16, solver=solver).length

    grads = jax.grad(length)(params)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    gflat = jax.flatten_util.ravel_pytree(grads)[0]
    direction = jax.random.normal(jax.random.key(11), flat.shape)
    eps = 1e-5
    fd = (length(unravel(flat + eps * direction)) - length(unravel(flat - eps * direction))) / (
        2 * eps
    )
    np.testing.assert_allclose(jnp.dot(gflat, direction), fd, rtol=1e-5)


def test_score_standardisation_is_a_constant_the_compiled_program_does_not_see():
    # Networks of other data (another shift and scale) share one compiled program, and
    # fit (its default filter) leaves the statistics exactly as given.
    data = gaussian_data(2000) * 3.0 + 5.0
    model = small_mlp(jax.random.key(0), shift=data.mean(0), scale=data.std(0))
    other = small_mlp(jax.random.key(0), shift=jnp.array([1.0, -2.0]), scale=0.5)
    assert jax.tree.structure(model) == jax.tree.structure(other)
    traces = []

    @eqx.filter_jit
    def score(net, x):
        traces.append(None)
        return net(x)

    x = jnp.array([4.0, 6.0])
    score(model, x), score(other, x)
    assert len(traces) == 1
    np.testing.assert_allclose(
        score(other, x), other.mlp((x - jnp.array([1.0, -2.0])) / 0.5) / 0.5, rtol=1e-12
    )
    result = jg.train.fit(
        partial(jg.train.denoising_score_matching, sigma=0.3),
        model,
        data,
        optimizer=optax.adam(1e-2),
        num_steps=200,
        batch_size=128,
        key=jax.random.key(1),
    )
    assert np.array_equal(result.model.standardise.shift, model.standardise.shift)
    assert np.array_equal(result.model.standardise.scale, model.standardise.scale)
    assert not np.array_equal(result.model.mlp.layers[0].weight, model.mlp.layers[0].weight)
