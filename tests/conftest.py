import os
import re
import time
from pathlib import Path

import jax
import jax.random as jr
import jaxlib
import pytest

from benchmarks.report import accepted_xla_flags, enable_compilation_cache


# The tests compile far more than they run (72% of the default run was XLA compiling
# for the CPU), so their processes (and the notebook kernels and subprocesses they
# start, which inherit the environment) compile without LLVM's optimisations and, on
# jaxlib 0.10, with XLA's classic CPU emitters: half the compile time, at two to three
# times the run time of a compiled program (measured with jaxlib 0.10 on this suite:
# default run 8:38 -> 4:16, slow step 23:30 -> 11:49). Set before JAX starts its backend;
# flags already in XLA_FLAGS come after, so they win. (Experiments and benchmarks run
# from the command line compile with XLA's defaults; their smoke tests here with these
# flags.) An XLA that does not know a flag ends the process when its backend starts
# (jaxlib 0.12 no longer knows `--xla_cpu_use_fusion_emitters`), so only
# the flags this jaxlib accepts are set, as found by starting JAX with them in a child
# process (`accepted_xla_flags`: once per session, the pytest-xdist workers reuse the
# answer); the others only cost speed, and the header of the run names them.
#
# With JAXGEO_XLA_DEFAULTS=1 no flag is set: CI runs the tests marked `xla_defaults` (the
# closed forms, orders of convergence and finite-difference checks, by their names:
# `XLA_DEFAULTS_TESTS`) once more so, as users compile.
XLA_DEFAULTS = os.environ.get("JAXGEO_XLA_DEFAULTS") == "1"
SPEED_XLA_FLAGS = (
    ()
    if XLA_DEFAULTS
    else ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false")
)
XLA_DEFAULTS_TESTS = re.compile(
    r"closed_form|exact|finite_differences|_order|quadratically|matches_dense|semicircle"
    r"|great_circle|vertical_geodesic|of_symmetric_points"
)
_probe_start = time.perf_counter()
REFUSED_XLA_FLAGS = {
    flag: why for flag, why in accepted_xla_flags(SPEED_XLA_FLAGS).items() if why is not None
}
PROBE_SECONDS = time.perf_counter() - _probe_start
TEST_XLA_FLAGS = " ".join(flag for flag in SPEED_XLA_FLAGS if flag not in REFUSED_XLA_FLAGS)
os.environ["XLA_FLAGS"] = f"{TEST_XLA_FLAGS} {os.environ.get('XLA_FLAGS', '')}".strip()
jax.config.update("jax_enable_x64", True)
# JAX's persistent compilation cache: a later test process (CI's slow step after the
# default run, a rerun, the notebook kernels this session starts) loads what an earlier
# one compiled instead of compiling it again.
enable_compilation_cache()
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")


def pytest_collection_modifyitems(items):
    for item in items:
        if XLA_DEFAULTS_TESTS.search(item.name):
            item.add_marker(pytest.mark.xla_defaults)


def pytest_report_header(config):
    refused = "; ".join(f"{flag} ({why})" for flag, why in REFUSED_XLA_FLAGS.items())
    return [
        f"jax {jax.__version__}, jaxlib {jaxlib.__version__}; test XLA_FLAGS: "
        f"{TEST_XLA_FLAGS or 'none'}; not accepted, left out: {refused or 'none'} "
        f"(flags checked in {PROBE_SECONDS:.2f} s)"
    ]


@pytest.fixture
def getkey():
    """A function returning a fresh key on each call (deterministic per test)."""
    key = jr.key(0)

    def _getkey():
        nonlocal key
        key, subkey = jr.split(key)
        return subkey

    return _getkey


MAPS = Path("/proc/self/maps")


@pytest.fixture(autouse=True)
def _free_compiled_programs():
    """Drop the compiled programs when this process nears the kernel's limit on memory
    mappings (`vm.max_map_count`, 65,530 by default): each program XLA compiles for
    the CPU keeps its own mappings, and past the limit XLA crashes while compiling
    (measured: about 80 new mappings per second of a test session)."""
    yield
    if MAPS.exists() and MAPS.read_bytes().count(b"\n") > 30_000:
        jax.clear_caches()
