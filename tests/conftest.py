"""Shared test configuration: the hypothesis profiles of the fuzz tests and their case counter.

``ci`` (the default) is derandomized and has no deadline, so CI runs the same cases every time on a
noisy machine; ``large`` runs ten times the cases with fresh randomness, by hand:
``IMPLICITBIAS_HYPOTHESIS_PROFILE=large python -m pytest tests/test_fuzz_*.py``. The number of fuzzed
calls is printed at the end of the session.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from _fuzz import COUNTS

PROFILE = os.environ.get("IMPLICITBIAS_HYPOTHESIS_PROFILE", "ci")
_COMMON = dict(deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=50, derandomize=True, database=None, **_COMMON)
settings.register_profile("large", max_examples=500, derandomize=False, **_COMMON)
settings.load_profile(PROFILE)


GOLDEN_REPORT: list[str] = []


@pytest.fixture
def golden_report() -> list[str]:
    """Where tests/test_golden.py notes which rule each replay was held to (printed at the end)."""
    return GOLDEN_REPORT


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # pytest hook signature
    for line in GOLDEN_REPORT:
        terminalreporter.write_line(f"golden replay {line}")
    if COUNTS["calls"]:
        terminalreporter.write_line(
            f"fuzzed calls ({PROFILE} profile): {COUNTS['calls']}, of which {COUNTS['rejected']} were rejected with "
            f"ValueError/TypeError naming the argument and {COUNTS['calls'] - COUNTS['rejected']} returned a "
            "checked result")


def expected_isa_variants() -> set[str]:
    """The ISA variants this build should have installed: those listed in ``IMPLICITBIAS_EXPECT_ISA``
    (comma-separated; CI sets it), else all of them once any one is installed (a variants build
    makes both; a missing one means a build step failed silently), else none (a portable-only build)."""
    import implicitbias as ib

    listed = os.environ.get("IMPLICITBIAS_EXPECT_ISA", "").strip()
    if listed:
        return {v.strip() for v in listed.split(",") if v.strip()}
    return {"x86-64-v3", "x86-64-v4"} if set(ib.build_info()["cores_installed"]) - {"baseline"} else set()


@pytest.fixture
def openmp():
    """For tests that compare thread counts: with OpenMP absent they would pass trivially, so they
    skip, naming the reason; with ``IMPLICITBIAS_EXPECT_OPENMP=1`` (CI) a missing OpenMP fails."""
    import implicitbias as ib

    if ib.build_info()["openmp"]:
        return
    if os.environ.get("IMPLICITBIAS_EXPECT_OPENMP") == "1":
        pytest.fail("IMPLICITBIAS_EXPECT_OPENMP=1 but the core was built without OpenMP")
    pytest.skip("the core was built without OpenMP: one thread only, thread counts cannot differ")
