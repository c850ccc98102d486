"""Score-training throughput.

    python -m benchmarks.score_training

Examples per second of denoising score matching with `jg.train.fit` (Adam, batch 256,
float32) for the MLP score model (width 128, depth 3) on 2-D data (two moons) and on
the 64-D digits: one model; an ensemble of 8 trained at once (stacked with
`eqx.filter_vmap`, one compiled program); and 8 models trained one after another.
Times exclude compilation (a first short run compiles every program).
"""

import argparse
import time
from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import jaxgeo as jg


BATCH = 256
OPTIMIZER = optax.adam(1e-3)


def make(dim, data):
    def build(key):
        return jg.nn.MLPScore(
            dim, width=128, depth=3, shift=data.mean(0), scale=data.std(0) + 1e-3, key=key
        )

    return build


def throughput(loss, model, data, num_steps) -> float:
    """Examples per second of `fit` after a compiling warm-up run."""
    kwargs = dict(optimizer=OPTIMIZER, batch_size=BATCH, key=jax.random.key(0))
    jg.train.fit(loss, model, data, num_steps=num_steps, chunk_size=num_steps, **kwargs)
    start = time.perf_counter()
    result = jg.train.fit(loss, model, data, num_steps=num_steps, chunk_size=num_steps, **kwargs)
    jax.block_until_ready(eqx.filter(result.model, eqx.is_array))
    return num_steps * BATCH / (time.perf_counter() - start)


def main(num_steps: int = 2000, members: int = 8) -> None:
    loss = partial(jg.train.denoising_score_matching, sigma=0.1)
    sets = {
        "two moons (D = 2)": jnp.asarray(jg.data.two_moons(2000), jnp.float32),
        "digits (D = 64)": jnp.asarray(jg.data.digits()[0], jnp.float32),
    }
    print(
        f"| data | single model (ex/s) | {members} at once (total ex/s) "
        f"| {members} one after another (total ex/s) | speed-up |"
    )
    print("|---|---|---|---|---|")
    for name, data in sets.items():
        build = make(data.shape[1], data)
        keys = jax.random.split(jax.random.key(1), members)
        single = throughput(loss, build(keys[0]), data, num_steps)
        stacked = eqx.filter_vmap(build)(keys)
        at_once = members * throughput(jg.train.ensemble_loss(loss), stacked, data, num_steps)
        # The same loss and optimiser objects: one compiled program serves every member
        # (it was compiled by the single-model run above).
        optimizer = OPTIMIZER
        start = time.perf_counter()
        for key in keys:
            jg.train.fit(
                loss,
                build(key),
                data,
                optimizer=optimizer,
                batch_size=BATCH,
                key=jax.random.key(0),
                num_steps=num_steps,
                chunk_size=num_steps,
            )
        sequential = members * num_steps * BATCH / (time.perf_counter() - start)
        print(
            f"| {name} | {single:,.0f} | {at_once:,.0f} | {sequential:,.0f} "
            f"| {at_once / sequential:.2f}x |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-steps", type=int, default=2000)
    parser.add_argument("--members", type=int, default=8)
    args = parser.parse_args()
    main(args.num_steps, args.members)
