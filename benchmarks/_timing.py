import time

import jax
import numpy as np


def timed(fn, *args, repeats: int):
    """`(output, compile seconds, median seconds of `repeats` calls after the first)`."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return out, compile_s, float(np.median(times))
