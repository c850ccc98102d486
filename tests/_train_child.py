"""A training run for `test_train.py::test_sigkill_at_any_moment_resumes_bit_identically`,
run as a subprocess: `python -m tests._train_child DIRECTORY [--pause]`. With `--pause`
it writes a marker file before each checkpoint, just before its commit (`os.replace`)
and after it, and pauses there, so that the test can kill it at each moment."""

import json
import os
import sys
import time
from functools import partial
from pathlib import Path

import jax
import optax

import jaxgeo as jg
from jaxgeo.train import _fit


PAUSE_S = 0.5


def main(directory: Path, pause: bool) -> None:
    if pause:
        save, replace = _fit.save_checkpoint, os.replace

        def marked(name: str) -> None:
            (directory.parent / f"{directory.name}.{name}").touch()
            time.sleep(PAUSE_S)

        def paused_save(directory_, model, opt_state, step, *args):
            marked(f"before-{step}")
            save(directory_, model, opt_state, step, *args)
            marked(f"after-{step}")

        def paused_replace(source, target):
            marked(f"replacing-{json.loads(Path(source).read_text())['step']}")
            replace(source, target)

        _fit.save_checkpoint = paused_save
        os.replace = paused_replace
    data = jg.data.part2_gaussian(500, 0)
    model = jg.nn.MLPScore(2, width=16, depth=2, key=jax.random.key(0))
    result = jg.train.fit(
        partial(jg.train.denoising_score_matching, sigma=0.2),
        model,
        data,
        optimizer=optax.adam(1e-3),
        num_steps=60,
        batch_size=16,
        key=jax.random.key(1),
        steps_per_chunk=10,
        checkpoint_every=10,
        checkpoint_dir=directory,
    )
    print(f"resumed_from={result.resumed_from}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), "--pause" in sys.argv[2:])
