"""Timing, markdown tables, the command line and JAX's compilation cache, shared by the
benchmarks, the experiments and the tests (`experiments._common` imports them from here:
they need neither jaxgeo nor matplotlib, so a benchmark that imports them stays light,
while the experiments' own helpers, which train models and draw figures, stay out of
the benchmarks)."""

import argparse
import os
import time
from pathlib import Path

import jax
import numpy as np


# Where `enable_compilation_cache` keeps compiled programs, unless told otherwise.
CACHE_VARIABLE = "JAXGEO_COMPILATION_CACHE"
DEFAULT_CACHE = Path.home() / ".cache" / "jaxgeo" / "xla"
# Programs that compile faster than this are not written to the cache (JAX's default
# is 1 s; most of jaxgeo's solvers take 2-10 s on a 2-core CPU, their helpers less).
CACHE_MIN_COMPILE_SECONDS = 0.5


def enable_compilation_cache(directory: str | Path | None = None) -> Path:
    """Turn on JAX's persistent compilation cache in this process and in the processes it
    starts (notebook kernels, through the environment): a program compiled once is then
    loaded from disk by every later process. `directory` defaults to
    `$JAXGEO_COMPILATION_CACHE`, else `~/.cache/jaxgeo/xla`. Only our scripts and tests
    call this; the library never turns the cache on in a user's process."""
    path = Path(directory or os.environ.get(CACHE_VARIABLE) or DEFAULT_CACHE)
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", CACHE_MIN_COMPILE_SECONDS)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(path)
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = str(CACHE_MIN_COMPILE_SECONDS)
    return path


def extrapolated_length(metric, a, b, solver, segments: int, **kwargs) -> float:
    """A reference length: `jaxgeo.Richardson` extrapolation of the discrete geodesics
    with `segments // 2` and `segments` segments (fixed levels: the tolerance 0 is never
    met, so the solve reports `unresolved_curve`, and the two finest levels are used)."""
    import jaxgeo as jg

    richardson = jg.Richardson(solver, rtol=0.0, min_segments=segments // 4, max_segments=segments)
    sol = jg.log_map(metric, a, b, solver=richardson, throw=False, **kwargs)
    if int(sol.stats["num_segments"]) != segments:
        raise RuntimeError(f"reference: the levels stopped at {sol.stats['num_segments']}")
    return float(sol.length)


def wall_time(fn, *args):
    """`(output, seconds)` of one call of `fn(*args)`, until its output is ready."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - start


def timed(fn, *args, repeats: int):
    """`(output, compile seconds, median seconds)`: the first call of `fn(*args)` is the
    compile time (tracing, compilation and one run), then the median of `repeats` further
    calls, each waited for with `jax.block_until_ready`."""
    out, compile_s = wall_time(fn, *args)
    times = []
    for _ in range(repeats):
        out, seconds = wall_time(fn, *args)
        times.append(seconds)
    return out, compile_s, float(np.median(times))


def cell(x, digits: int = 3) -> str:
    """A table cell: strings as they are, floats to `digits` significant digits, `–` for
    None and non-finite floats."""
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def table_row(cells) -> str:
    """One markdown table row; cells that are not strings go through `cell`."""
    return "| " + " | ".join(c if isinstance(c, str) else cell(c) for c in cells) + " |"


def table_header(header) -> list[str]:
    """The header row and the separator of a markdown table."""
    return [table_row(header), "|" + "---|" * len(header)]


def markdown_table(header, rows) -> list[str]:
    """The lines of a markdown table (see `table_row` for the cells)."""
    return table_header(header) + [table_row(row) for row in rows]


def command_line(doc: str, **defaults) -> dict:
    """Parse the command line into `main`'s keyword arguments: one option `--name`
    (underscores become hyphens) per keyword default, of the default's type; a `False`
    default makes a flag and a tuple default takes one or more values. The description
    is the first line of `doc`."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    for name, default in defaults.items():
        option = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            if default:
                raise ValueError(f"command_line: {option} is a flag, its default is False")
            parser.add_argument(option, action="store_true")
        elif isinstance(default, tuple):
            parser.add_argument(option, type=type(default[0]), nargs="+", default=default)
        else:
            parser.add_argument(option, type=type(default), default=default)
    args = vars(parser.parse_args())
    return {k: tuple(v) if isinstance(defaults[k], tuple) else v for k, v in args.items()}
