"""Score-training throughput.

    python -m benchmarks.score_training

Examples per second of denoising score matching with `jg.train.fit` (Adam, batch 256,
float32) for the MLP score model (width 128, depth 3) on 2-D data (two moons) and on
the 64-D digits: one model; an ensemble of 8 trained at once (stacked with
`eqx.filter_vmap`, one compiled program); and 8 models trained one after another.
Times exclude compilation (a first short run compiles every program).
"""

from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import jaxgeo as jg

from .report import command_line, table_header, table_row, timed, wall_time


BATCH = 256
OPTIMIZER = optax.adam(1e-3)


def make(dim, data):
    def build(key):
        return jg.nn.MLPScore(
            dim, width=128, depth=3, shift=data.mean(0), scale=data.std(0) + 1e-3, key=key
        )

    return build


def train(loss, model, data, num_steps):
    """The trained model's arrays after `num_steps` steps of `fit`, in one compiled chunk."""
    result = jg.train.fit(
        loss,
        model,
        data,
        optimizer=OPTIMIZER,
        batch_size=BATCH,
        key=jax.random.key(0),
        num_steps=num_steps,
        steps_per_chunk=num_steps,
    )
    return eqx.filter(result.model, eqx.is_array)


def throughput(loss, model, data, num_steps) -> float:
    """Examples per second of `fit` after a compiling warm-up run."""
    _, _, seconds = timed(train, loss, model, data, num_steps, repeats=1)
    return num_steps * BATCH / seconds


def main(num_steps: int = 2000, members: int = 8) -> None:
    loss = partial(jg.train.denoising_score_matching, sigma=0.1)
    sets = {
        "two moons (D = 2)": jnp.asarray(jg.data.two_moons(2000), jnp.float32),
        "digits (D = 64)": jnp.asarray(jg.data.digits()[0], jnp.float32),
    }
    header = [
        "data",
        "single model (ex/s)",
        f"{members} at once (total ex/s)",
        f"{members} one after another (total ex/s)",
        "speed-up",
    ]
    print("\n".join(table_header(header)))
    for name, data in sets.items():
        build = make(data.shape[1], data)
        keys = jax.random.split(jax.random.key(1), members)
        single = throughput(loss, build(keys[0]), data, num_steps)
        stacked = eqx.filter_vmap(build)(keys)
        at_once = members * throughput(jg.train.ensemble_loss(loss), stacked, data, num_steps)
        # The same loss and optimiser objects: one compiled program serves every member
        # (it was compiled by the single-model run above), so no warm-up here.
        _, seconds = wall_time(lambda: [train(loss, build(key), data, num_steps) for key in keys])
        sequential = members * num_steps * BATCH / seconds
        print(
            table_row(
                [
                    name,
                    f"{single:,.0f}",
                    f"{at_once:,.0f}",
                    f"{sequential:,.0f}",
                    f"{at_once / sequential:.2f}x",
                ]
            )
        )


if __name__ == "__main__":
    main(**command_line(__doc__, num_steps=2000, members=8))
