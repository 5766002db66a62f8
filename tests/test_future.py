"""The suite again with the clock a year and a bit ahead, so no test depends on today's date."""

import os
import subprocess
import sys

import pytest

from tests.fixtures.settings import ROOT
from tests.fixtures.waiting import PATIENCE


@pytest.mark.slow
@pytest.mark.timeout(15 * PATIENCE)
def test_the_suite_passes_with_the_clock_moved_ahead() -> None:
    # Slow and browser tests start other processes or a browser, whose clocks the move cannot reach.
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow and not browser", "tests"]
    result = subprocess.run(command, cwd=ROOT, env={**os.environ, "MAILER_TEST_DAYS_AHEAD": "400"},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
