"""One process of the multi-process run of `test_sharding.py::test_two_processes`, run
as `python -m tests._distributed_child PROCESS_ID NUM_PROCESSES PORT OUTPUT`.

Every process joins the cluster at 127.0.0.1:PORT (`jax.distributed.initialize`, CPU
collectives by gloo), makes the same `geodesic_bvp_batch` and `pairwise_distances` calls
on the same inputs over the global device set, gathers the results on every host
(`process_allgather`) and writes them, with what it saw of the cluster, to OUTPUT.npz.
"""

import sys

import jax
import numpy as np
from jax.experimental import multihost_utils

import jaxgeo as jg


def problem():
    """The metric and inputs, identical in every process (and in the single-process run)."""
    metric = jg.SteinMetric(jg.data.part2_score(), 1.0)
    points = np.asarray(jax.random.uniform(jax.random.key(0), (7, 2), minval=-3, maxval=3))
    return metric, points[:6], points[1:], points


def solve(metric, x0s, x1s, points):
    batch = jg.geodesic_bvp_batch(metric, x0s, x1s)
    distances = jg.pairwise_distances(metric, points, num_points=33)
    return batch, distances


def main(process_id: int, num_processes: int, port: int, output: str) -> None:
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}",
        num_processes=num_processes,
        process_id=process_id,
    )
    batch, distances = solve(*problem())
    gather = multihost_utils.process_allgather
    np.savez(
        output,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        global_devices=len(jax.devices()),
        local_devices=len(jax.local_devices()),
        batch_devices=len(batch.xs.sharding.device_set),
        xs=gather(batch.xs, tiled=True),
        length=gather(batch.length, tiled=True),
        result=gather(batch.result._value, tiled=True),
        distances=gather(distances, tiled=True),
    )
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
