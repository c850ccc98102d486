"""Batches over devices: `geodesic_bvp_batch` and `pairwise_distances` give the same
results sharded over several (host) devices as on one, and as a loop over pairs."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgeo as jg
from jaxgeo._sharding import sharded_map

from .helpers import require_xla_flags


def _stein():
    return jg.SteinMetric(jg.scores.gaussian(jnp.zeros(2), jnp.array([[1.0, 0.8], [0.8, 1.0]])))


@pytest.mark.slow
def test_geodesic_bvp_batch_equals_loop():
    m = _stein()
    pairs = jnp.asarray(np.random.default_rng(0).uniform(-4, 4, size=(5, 2, 2)))
    inits = jax.vmap(lambda p: jg.straight_line(p[0], p[1], 16) + 0.01)(pairs)
    for init in (None, inits):
        for chunk_size in (None, 1, 2):  # vmap all, one at a time, chunks
            batch = jg.geodesic_bvp_batch(
                m, pairs[:, 0], pairs[:, 1], init=init, num_points=16, chunk_size=chunk_size
            )
            assert batch.xs.shape == (5, 16, 2)
            assert bool(jnp.all(batch.result == jg.RESULTS.successful))
            for i in range(5):
                one = jg.geodesic_bvp(
                    m,
                    pairs[i, 0],
                    pairs[i, 1],
                    num_points=16,
                    init=None if init is None else init[i],
                )
                np.testing.assert_allclose(batch.xs[i], one.xs, rtol=1e-10, atol=1e-10)
                np.testing.assert_allclose(batch.length[i], one.length, rtol=1e-12)


@pytest.mark.slow
def test_batched_entry_points_compile_once_per_structure():
    # New points of the same shapes reuse the compiled programs: nothing is compiled again.
    compiles = []

    def record(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    jax.monitoring.register_event_duration_secs_listener(record)
    metric = jg.MatrixMetric(lambda x: jnp.eye(2, dtype=x.dtype) * (1 + x[0] ** 2))
    points = jnp.asarray(np.random.default_rng(1).normal(size=(5, 2)))
    moved, reversed_ = points + 0.5, points[::-1]
    try:
        for call in (
            lambda xs: jg.pairwise_distances(metric, xs, num_points=9),
            lambda xs: jg.geodesic_bvp_batch(metric, xs, reversed_, num_points=9).length,
        ):
            first = call(points)
            count = len(compiles)
            second = call(moved)
            assert len(compiles) == count
            assert np.all(np.isfinite(first)) and np.all(np.isfinite(second))
    finally:
        jax.monitoring.unregister_event_duration_listener(record)


def test_geodesic_bvp_batch_on_threads_is_one_call(monkeypatch):
    """On one CPU device the pairs are solved in calls of `CPU_PAIRS_PER_CALL` on
    several threads, after a call of padding only has compiled the program: the solution
    is one call's, every leaf (to round-off: the calls' program skips padding, so XLA
    fuses it otherwise); traced arguments (under `jax.jit`) are one call."""
    import jaxgeo._geodesic._bvp as module

    metric = jg.MatrixMetric(lambda x: jnp.eye(2, dtype=x.dtype) * (1 + x[0] ** 2))
    pairs = jnp.asarray(np.random.default_rng(2).normal(size=(10, 2, 2)))
    alone = jg.geodesic_bvp_batch(metric, pairs[:, 0], pairs[:, 1], num_points=9, threads=1)
    monkeypatch.setattr(module, "CPU_PAIRS_PER_CALL", 4)
    calls, real = [], module._solve_batch

    def counted(metric, batch, valid, *args):
        calls.append((batch[0].shape[0], None if valid is None else int(valid.sum())))
        return real(metric, batch, valid, *args)

    monkeypatch.setattr(module, "_solve_batch", counted)
    together = jg.geodesic_bvp_batch(metric, pairs[:, 0], pairs[:, 1], num_points=9, threads=3)
    assert calls[0] == (4, 0) and sorted(calls[1:]) == [(4, 2), (4, 4), (4, 4)]
    assert jax.tree.structure(together) == jax.tree.structure(alone)
    for a, b in zip(jax.tree.leaves(together), jax.tree.leaves(alone)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    assert bool(jnp.all(together.result == jg.RESULTS.successful))
    calls[:] = []
    jitted = jax.jit(
        lambda a, b: jg.geodesic_bvp_batch(metric, a, b, num_points=9, threads=3).length
    )
    np.testing.assert_allclose(jitted(pairs[:, 0], pairs[:, 1]), alone.length, rtol=1e-12)
    assert calls == [(10, None)]
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        jg.geodesic_bvp_batch(metric, pairs[:, 0], pairs[:, 1], threads=0)


def test_batch_bad_input():
    m = _stein()
    with pytest.raises(ValueError, match=r"one shape \(B, D\), got \(3, 2\) and \(2, 2\)"):
        jg.geodesic_bvp_batch(m, jnp.zeros((3, 2)), jnp.ones((2, 2)))
    with pytest.raises(ValueError, match="never throw"):
        jg.geodesic_bvp_batch(m, jnp.zeros((3, 2)), jnp.ones((3, 2)), throw=True)
    with pytest.raises(ValueError, match="same leading size"):
        sharded_map(lambda p: p[0], (jnp.zeros(3), jnp.zeros(2)))
    with pytest.raises(ValueError, match="chunk_size"):
        sharded_map(lambda p: p, jnp.zeros(3), chunk_size=0)


SHARDED_SCRIPT = """
import jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_enable_x64", True)
import jaxgeo as jg
assert len(jax.devices()) == 4, jax.devices()
m = jg.SteinMetric(jg.scores.gaussian(jnp.zeros(2), jnp.array([[1.0, 0.8], [0.8, 1.0]])))
pairs = jnp.asarray(np.random.default_rng(0).uniform(-4, 4, size=(10, 2, 2)))  # 10 = 4k + 2
for devices in (jax.devices(), jax.devices()[:3]):
    sharded = jg.geodesic_bvp_batch(m, pairs[:, 0], pairs[:, 1], num_points=16, chunk_size=2,
                                    devices=devices)
    single = jg.geodesic_bvp_batch(m, pairs[:, 0], pairs[:, 1], num_points=16, chunk_size=2,
                                   devices=jax.devices()[:1])
    assert bool(jnp.all(sharded.result == jg.RESULTS.successful))
    np.testing.assert_allclose(sharded.xs, single.xs, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(sharded.stats["num_steps"], single.stats["num_steps"])
poincare = jg.MatrixMetric(lambda x: jnp.eye(2) / x[1] ** 2)
xs = jnp.array([[0.0, 1.0], [1.0, 2.0], [-0.5, 0.5]])
ys = xs[:2]
sharded = jg.pairwise_distances(poincare, xs, ys, solver=jg.Richardson())
single = jg.pairwise_distances(
    poincare, xs, ys, solver=jg.Richardson(), devices=jax.devices()[:1]
)
sq = ((xs[:, None] - ys[None]) ** 2).sum(-1)
expected = np.arccosh(1 + sq / (2 * xs[:, None, 1] * ys[None, :, 1]))
np.testing.assert_allclose(sharded, single, rtol=1e-12, atol=1e-12)
np.testing.assert_allclose(sharded, expected, rtol=1e-6, atol=1e-8)
print("ok", sharded.shape)
"""


@pytest.mark.slow
def test_sharded_over_four_host_devices_equals_one_device():
    require_xla_flags("--xla_force_host_platform_device_count=4")
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4"
    env = dict(os.environ, XLA_FLAGS=flags.strip())
    out = subprocess.run(
        [sys.executable, "-c", SHARDED_SCRIPT], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ok (3, 2)" in out.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    """A real multi-process run: two processes on localhost with two CPU devices each
    (`jax.distributed.initialize`, gloo collectives) solve one sharded batch and one
    distance matrix over the four global devices; the gathered results equal this
    process's single-device run."""
    from ._distributed_child import problem, solve

    require_xla_flags("--xla_force_host_platform_device_count=2")
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2"
    env = dict(os.environ, XLA_FLAGS=flags.strip())
    port = _free_port()
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests._distributed_child",
                str(i),
                "2",
                str(port),
                str(tmp_path / f"p{i}"),
            ],
            cwd=Path(__file__).parent.parent,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    try:
        logs = [child.communicate(timeout=300)[0] for child in children]
    finally:
        for child in children:
            child.kill()
    for child, log in zip(children, logs):
        assert child.returncode == 0, log[-3000:]

    batch, distances = solve(*problem())
    assert len(jax.devices()) == 1
    for i in range(2):
        out = np.load(tmp_path / f"p{i}.npz")
        assert (out["process_index"], out["process_count"]) == (i, 2)
        assert (out["global_devices"], out["local_devices"], out["batch_devices"]) == (4, 2, 4)
        assert np.all(out["result"] == batch.result._value)
        assert np.all(batch.result == jg.RESULTS.successful)
        np.testing.assert_allclose(out["xs"], batch.xs, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(out["length"], batch.length, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(out["distances"], distances, rtol=1e-12, atol=1e-12)
    assert np.all(np.isfinite(distances)) and np.all(distances[np.triu_indices(7, 1)] > 0)
