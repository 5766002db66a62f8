"""Local times, and the nights the clocks change in Europe/London."""

from __future__ import annotations

from datetime import datetime

import pytest

from mailer.errors import ScheduleError
from mailer.schedule.times import moment, parse_wall_time

NOW = datetime(2026, 11, 21, 12, 0)  # naive UTC


def test_winter_time_is_utc_and_summer_time_is_an_hour_ahead():
    winter = moment("2026-12-01 09:00", "Europe/London", now=NOW)
    summer = moment("2027-06-01 09:00", "Europe/London", now=NOW)
    assert winter.utc == datetime(2026, 12, 1, 9, 0)
    assert summer.utc == datetime(2027, 6, 1, 8, 0)
    assert str(winter) == "Tuesday 1 December 2026 09:00 GMT (Europe/London) = 2026-12-01 09:00 UTC"
    assert summer.short == "2027-06-01 09:00 BST"


@pytest.mark.parametrize("text", ["2027-03-28 01:00", "2027-03-28 01:30", "2027-03-28 01:59"])
def test_spring_forward_gap_is_refused(text):
    with pytest.raises(ScheduleError, match=r"does not exist: the clocks go forward 1 hour that night.*for example 02:"):
        moment(text, "Europe/London", now=NOW)


@pytest.mark.parametrize("text", ["2026-10-25 01:00", "2026-10-25 01:30", "2027-10-31 01:00", "2027-10-31 01:59"])
def test_fall_back_hour_is_refused_as_ambiguous(text):
    with pytest.raises(ScheduleError, match=r"happens twice: the clocks go back 1 hour.*BST is .* UTC, .* GMT is .* UTC"):
        moment(text, "Europe/London", now=datetime(2026, 1, 1))


def test_times_around_the_changes_are_exact():
    assert moment("2027-03-28 00:59", "Europe/London", now=NOW).utc == datetime(2027, 3, 28, 0, 59)
    assert moment("2027-03-28 02:00", "Europe/London", now=NOW).utc == datetime(2027, 3, 28, 1, 0)
    assert moment("2027-10-31 00:59", "Europe/London", now=NOW).utc == datetime(2027, 10, 30, 23, 59)
    assert moment("2027-10-31 02:00", "Europe/London", now=NOW).utc == datetime(2027, 10, 31, 2, 0)


def test_the_ambiguous_hour_can_be_given_in_utc():
    assert moment("2027-10-31 01:30", "UTC", now=NOW).utc == datetime(2027, 10, 31, 1, 30)


def test_past_times_are_refused_with_the_time_now():
    with pytest.raises(ScheduleError, match=r"2026-11-01 09:00 GMT \(Europe/London\) is in the past; it is now 2026-11-21 12:00 GMT"):
        moment("2026-11-01 09:00", "Europe/London", now=NOW)


@pytest.mark.parametrize("text", ["2026-13-01 09:00", "1 Dec 09:00", "2026-12-01", "2026-12-01 25:00", "2026-12-01 09:00+01:00"])
def test_bad_formats_name_the_expected_form(text):
    with pytest.raises(ScheduleError, match="is not a date and time like '2026-12-01 09:00'"):
        parse_wall_time(text)


def test_seconds_and_t_separator_are_accepted():
    assert parse_wall_time("2026-12-01T09:00:30") == datetime(2026, 12, 1, 9, 0, 30)


def test_unknown_zone_is_named():
    with pytest.raises(ScheduleError, match="unknown time zone 'Europe/Lndon'"):
        moment("2026-12-01 09:00", "Europe/Lndon", now=NOW)
