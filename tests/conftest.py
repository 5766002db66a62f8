"""Shared fixtures, and the clock moved ahead when MAILER_TEST_DAYS_AHEAD says so.

The suite must pass on any future date. `tests/test_future.py` runs it again in a process whose
clock (datetime.now, time.time, date.today) is that many days ahead: a test that mixes a fixed
date with the real clock fails there, not on the day the calendar catches up with it.
"""

import os
from datetime import UTC, datetime, timedelta

import pytest

pytest_plugins = ["tests.fixtures.settings", "tests.fixtures.smtp"]

DAYS_AHEAD = int(os.environ.get("MAILER_TEST_DAYS_AHEAD", "0"))


def pytest_configure(config: pytest.Config) -> None:
    if DAYS_AHEAD:
        import time_machine

        time_machine.travel(datetime.now(UTC) + timedelta(days=DAYS_AHEAD), tick=True).start()
