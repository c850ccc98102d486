"""Batches split over devices: one code path for one CPU, several GPUs or a TPU slice."""

from collections.abc import Callable, Sequence

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
