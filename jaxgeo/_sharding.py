"""Batches split over devices: one code path for one CPU, several GPUs or a TPU slice."""

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import PyTree


def sharded_map(
    fn: Callable[[PyTree], PyTree],
    batch: PyTree,
    *,
    devices: Sequence[jax.Device] | None = None,
    chunk_size: int | None = None,
) -> PyTree:
    """`fn` mapped over the leading axis of every leaf of `batch`.

    The batch is split evenly over `devices` (default: all of `jax.devices()`, which
    after `jax.distributed.initialize()` spans every host) with `jax.shard_map` on a 1-D
    `Mesh`; it is padded to whole chunks on every device with copies of its last
    element, which are dropped from the result. On each device `fn` is vmapped over
    `chunk_size` elements at a time (`lax.map`), so memory stays bounded and each chunk's
    solver loops stop when that chunk has converged; `chunk_size=None` vmaps the whole
    local batch. One device means no sharding.
    """
    leaves = jtu.tree_leaves(batch)
    if not leaves:
        raise ValueError("sharded_map: the batch has no array leaves")
    size = jnp.shape(leaves[0])[0]
    if any(jnp.shape(leaf)[:1] != (size,) for leaf in leaves):
        raise ValueError(
            "sharded_map: every leaf of the batch needs the same leading size, got shapes "
            f"{[jnp.shape(leaf) for leaf in leaves]}"
        )
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"sharded_map: chunk_size must be a positive integer, got {chunk_size!r}")

    devices = jax.devices() if devices is None else list(devices)
    # Pad to whole chunks on every device with copies of the last element (dropped
    # from the result): `lax.map` would trace a ragged remainder a second time, which
    # doubles the compile time of a solver.
    per_device = -(-size // len(devices))
    if chunk_size is not None:
        chunk_size = max(1, min(chunk_size, per_device))
        per_device = -(-per_device // chunk_size) * chunk_size
    padding = per_device * len(devices) - size
    batch = jtu.tree_map(lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], padding, axis=0)]), batch)

    def local(block):
        if chunk_size is None:
            return jax.vmap(fn)(block)
        if chunk_size == 1:  # one element at a time: no vmap, so no batched loops
            return jax.lax.map(fn, block)
        return jax.lax.map(fn, block, batch_size=chunk_size)

    if len(devices) == 1:
        out = local(batch)
    else:
        mesh = jax.sharding.Mesh(np.asarray(devices), ("batch",))
        spec = jax.sharding.PartitionSpec("batch")
        out = jax.shard_map(local, mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False)(batch)
    return jtu.tree_map(lambda a: a[:size], out)


def map_solves(fn: Callable[[PyTree], PyTree], batch: PyTree) -> PyTree:
    """`fn` over the leading axis of `batch` on the default device, as the solves of a
    batch are run there: one at a time on the CPU (`lax.map`: each solve's loops stop
    when it has converged, where under `vmap` every solve of the batch runs until the
    slowest has, at its resolution), all at once (`vmap`) on accelerators."""
    if jax.default_backend() == "cpu":
        return jax.lax.map(fn, batch)
    return jax.vmap(fn)(batch)


def is_traced(tree: PyTree) -> bool:
    """Whether any leaf of `tree` is a tracer (the call is under `jax.jit`, `vmap`, ...):
    then its work cannot be split into calls on threads."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jtu.tree_leaves(tree))


def default_threads(devices: Sequence[jax.Device] | None) -> int:
    """One thread per core available to the process on one CPU device (a call of a
    `lax.map` over pairs keeps one core busy), else 1."""
    devices = jax.devices() if devices is None else list(devices)
    if devices[0].platform != "cpu" or len(devices) > 1:
        return 1
    cores = (
        os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    )
    return max(1, len(cores))


class Calls(NamedTuple):
    """Items solved `size` at a time by one compiled program, `threads` calls at once."""

    size: int
    threads: int

    def each(self, solve, batch: tuple[np.ndarray, ...]):
        """`(start, stop, outputs)` of `solve(*chunk, valid)` on consecutive chunks of
        the leading axis of `batch`, in order, outputs as NumPy arrays. Every call has
        `size` items (the last is padded with copies of its last item, `valid` false):
        one program for all. With several `threads` (JAX releases the GIL while a
        program runs), a call of padding only compiles the program first (its solves
        are skipped), so that no thread waits while another solves the first call."""
        total = len(batch[0])

        def call(start, padding_only=False):
            stop = min(start + self.size, total)
            pad = self.size - (stop - start)
            chunk = tuple(
                np.concatenate([a[start:stop], np.repeat(a[stop - 1 : stop], pad, 0)])
                for a in batch
            )
            valid = jnp.arange(self.size) < (0 if padding_only else stop - start)
            outputs = solve(*(jnp.asarray(c) for c in chunk), valid)
            return start, stop, tuple(np.asarray(o)[: stop - start] for o in outputs)

        starts = range(0, total, self.size)
        if self.threads == 1 or len(starts) <= 1:
            yield from map(call, starts)
            return
        call(0, padding_only=True)
        pool = ThreadPoolExecutor(self.threads, thread_name_prefix="jaxgeo-calls")
        try:
            yield from pool.map(call, starts)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def run(self, solve, batch: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        """All of `each`'s outputs, concatenated."""
        parts = [outputs for _, _, outputs in self.each(solve, batch)]
        return tuple(np.concatenate(column) for column in zip(*parts))


def unless_padding(solve):
    """`solve(*item)` for a `(valid, *item)` batch element; NaN (and code 0) for the
    padding of a call (`valid` false), which a `lax.map` (one pair at a time) skips."""

    def one(batch):
        valid, *item = batch
        shapes = jax.eval_shape(solve, *item)
        padding = jtu.tree_map(
            lambda s: jnp.full(
                s.shape, jnp.nan if jnp.issubdtype(s.dtype, jnp.inexact) else 0, s.dtype
            ),
            shapes,
        )
        return jax.lax.cond(valid, lambda: solve(*item), lambda: padding)

    return one
