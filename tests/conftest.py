"""Shared test configuration: the hypothesis profiles of the fuzz tests and their case counter.

``ci`` (the default) is derandomized and has no deadline, so CI runs the same cases every time on a
noisy machine; ``large`` runs ten times the cases with fresh randomness, by hand:
``IMPLICITBIAS_HYPOTHESIS_PROFILE=large python -m pytest tests/test_fuzz_*.py``. The number of fuzzed
calls is printed at the end of the session.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

from _fuzz import COUNTS

PROFILE = os.environ.get("IMPLICITBIAS_HYPOTHESIS_PROFILE", "ci")
_COMMON = dict(deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=25, derandomize=True, **_COMMON)
settings.register_profile("large", max_examples=250, derandomize=False, **_COMMON)
settings.load_profile(PROFILE)


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # pytest hook signature
    if COUNTS["calls"]:
        terminalreporter.write_line(
            f"fuzzed calls ({PROFILE} profile): {COUNTS['calls']}, of which {COUNTS['rejected']} were rejected with "
            f"ValueError/TypeError naming the argument and {COUNTS['calls'] - COUNTS['rejected']} returned a "
            "checked result")
