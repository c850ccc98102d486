"""The XLA flags the tests set are checked against the running jaxlib, not guessed from
its version: XLA ends the whole process on a flag it does not know."""

import os

import pytest

from benchmarks.report import accepted_xla_flags

from .conftest import PROBE_SECONDS, REFUSED_XLA_FLAGS, SPEED_XLA_FLAGS, TEST_XLA_FLAGS
from .helpers import require_xla_flags


UNKNOWN = "--xla_jaxgeo_no_such_flag=1"


def test_unknown_flag_is_refused_with_xlas_reason():
    why = accepted_xla_flags([UNKNOWN])[UNKNOWN]
    assert why is not None and "Unknown flag" in why, why


def test_only_accepted_speed_flags_are_set():
    accepted = accepted_xla_flags(SPEED_XLA_FLAGS)  # answered from the session's probe
    assert TEST_XLA_FLAGS.split() == [flag for flag in SPEED_XLA_FLAGS if accepted[flag] is None]
    assert set(REFUSED_XLA_FLAGS) == {flag for flag, why in accepted.items() if why}
    assert os.environ["XLA_FLAGS"].startswith(TEST_XLA_FLAGS)
    # Every jaxlib the suite is tested with (0.10 and 0.12) knows this one.
    assert accepted["--xla_backend_optimization_level=0"] is None


def test_xdist_workers_reuse_the_sessions_answer():
    """Only pytest's main process starts the child processes (about 0.5-1.2 s each);
    its workers inherit the answer through the environment."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        pytest.skip("run without pytest-xdist workers (-n 0)")
    assert PROBE_SECONDS < 0.1, PROBE_SECONDS


def test_a_needed_flag_that_is_unknown_fails_the_test_clearly():
    with pytest.raises(pytest.fail.Exception, match="does not accept the XLA flags"):
        require_xla_flags(UNKNOWN)
