"""Timing, markdown tables, the command line, JAX's compilation cache and the XLA flags
this jaxlib accepts, shared by the benchmarks, the experiments and the tests
(`experiments._common` imports them from here: they need neither jaxgeo nor
matplotlib, so a benchmark that imports them stays light, while the experiments' own
helpers, which train models and draw figures, stay out of the benchmarks)."""

import argparse
import json
import os
import subprocess
import sys
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


# Which XLA flags this jaxlib accepts, as found by `accepted_xla_flags`: inherited by the
# processes started from here (pytest-xdist workers, notebook kernels), which then skip the probe.
XLA_FLAGS_PROBED_VARIABLE = "JAXGEO_XLA_FLAGS_PROBED"
_PROBE = "import jax; jax.devices('cpu')"


def _probe_xla_flags(flags: list[str]) -> str | None:
    """None if a fresh Python starts JAX's CPU backend with exactly `flags` in XLA_FLAGS,
    else the last line it printed (XLA's `Unknown flag in XLA_FLAGS: ...`)."""
    env = dict(os.environ, XLA_FLAGS=" ".join(flags), JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=300
    )
    if out.returncode == 0:
        return None
    lines = (out.stderr or out.stdout).strip().splitlines()
    # XLA's log lines start with a severity, a time and the source line, up to "] ".
    return lines[-1].split("] ", 1)[-1] if lines else f"exit status {out.returncode}"


def accepted_xla_flags(flags) -> dict[str, str | None]:
    """For each of `flags` (as written in XLA_FLAGS, `--name=value`): None if this
    process's jaxlib accepts it, else why not. XLA does not raise on a flag it does not
    know: it ends the whole process when its backend starts (`Unknown flag in XLA_FLAGS`,
    jaxlib 0.12 on `--xla_cpu_use_fusion_emitters`), and a flag's name can stay in the
    binary after the flag is gone, so each is tried in a child process that starts JAX's
    CPU backend: all at once, then one by one only if that fails. The test suite's check
    took 1.5 s with jaxlib 0.10 (one child) and 1.7 s with jaxlib 0.12 (three children:
    it refuses one flag) on a busy 2-core CPU. The answers are kept in
    `$JAXGEO_XLA_FLAGS_PROBED` for this jaxlib, so the processes this one starts (test
    workers, notebook kernels) reuse them."""
    import jaxlib

    flags = list(dict.fromkeys(flags))
    key = f"{jaxlib.__version__} {os.path.dirname(jaxlib.__file__)}"
    try:
        cached = json.loads(os.environ.get(XLA_FLAGS_PROBED_VARIABLE, ""))
    except ValueError:
        cached = {}
    known = cached.get("flags", {}) if cached.get("jaxlib") == key else {}
    missing = [flag for flag in flags if flag not in known]
    if missing:
        together = _probe_xla_flags(missing)
        if together is None or len(missing) == 1:
            known.update(dict.fromkeys(missing, together))
        else:
            known.update({flag: _probe_xla_flags([flag]) for flag in missing})
        os.environ[XLA_FLAGS_PROBED_VARIABLE] = json.dumps(dict(jaxlib=key, flags=known))
    return {flag: known[flag] for flag in flags}


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
