"""Turning an editor's "2026-12-01 09:00" into one exact moment, refusing what the clocks make doubtful.

Editors think in local wall time; the database stores naive UTC. Around a clock change a
wall time can be missing (spring forward) or happen twice (fall back): both are refused
with a message that says why, rather than guessed, because a guess sends an hour early or late.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailer.errors import ScheduleError

FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S")
EXAMPLE = "2026-12-01 09:00"


def zone(name: str) -> ZoneInfo:
    """The time zone called `name`, or a clear error."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name!r} (examples: Europe/London, UTC)") from None


def parse_wall_time(text: str) -> datetime:
    """A naive wall time from `2026-12-01 09:00` (seconds and a `T` are accepted too)."""
    cleaned = " ".join(text.split())
    for fmt in FORMATS:
        try:
            return datetime.strptime(cleaned, fmt)
        except ValueError:
            continue
    raise ScheduleError(f"{text!r} is not a date and time like {EXAMPLE!r} (local time; the zone goes in --tz)")


def _offset(aware: datetime) -> timedelta:
    return aware.utcoffset() or timedelta()


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} hour{'s' if minutes != 60 else ''}" if minutes % 60 == 0 else f"{minutes} minutes"


def lateness(delta: timedelta) -> str:
    """`7 h 12 min`: how late the runner came, for notes and warnings."""
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def check_wall_time(wall: datetime, tz: ZoneInfo) -> datetime:
    """`wall` as an aware time in `tz`; `ScheduleError` if the clocks skip it or pass it twice."""
    earlier, later = wall.replace(tzinfo=tz, fold=0), wall.replace(tzinfo=tz, fold=1)
    shown = f"{wall:%Y-%m-%d %H:%M} in {tz.key}"
    if earlier.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != wall:
        jump = _offset(later) - _offset(earlier)
        raise ScheduleError(
            f"{shown} does not exist: the clocks go forward {_span(jump)} that night, "
            f"so {wall:%H:%M} is never shown; choose another time (for example {wall + jump:%H:%M})"
        )
    if _offset(earlier) != _offset(later):
        first, second = earlier.astimezone(UTC), later.astimezone(UTC)
        raise ScheduleError(
            f"{shown} happens twice: the clocks go back {_span(_offset(earlier) - _offset(later))} that night "
            f"({wall:%H:%M} {earlier.tzname()} is {first:%H:%M} UTC, {wall:%H:%M} {later.tzname()} is {second:%H:%M} UTC); "
            f"choose another time, or give it in UTC with --tz UTC"
        )
    return earlier


@dataclass(frozen=True)
class Moment:
    """One instant, kept with the zone the editor thinks in."""

    utc: datetime  # naive UTC: the form Send.scheduled_at uses
    tz: ZoneInfo

    @property
    def local(self) -> datetime:
        return self.utc.replace(tzinfo=UTC).astimezone(self.tz)

    @property
    def short(self) -> str:
        """`2026-12-01 09:00 GMT`: for tables and logs."""
        return f"{self.local:%Y-%m-%d %H:%M %Z}"

    def __str__(self) -> str:
        local = self.local
        return f"{local:%A} {local.day} {local:%B %Y %H:%M} {local.tzname()} ({self.tz.key}) = {self.utc:%Y-%m-%d %H:%M} UTC"


def resolve(when: datetime, tz: ZoneInfo, *, now: datetime) -> Moment:
    """The moment meant by `when` (a wall time in `tz`, or an aware time), refused if past or doubtful.

    `now` is naive UTC, passed in so that tests (and the demo) choose the clock.
    """
    aware = when.astimezone(UTC) if when.tzinfo else check_wall_time(when, tz).astimezone(UTC)
    result = Moment(aware.replace(tzinfo=None), tz)
    if result.utc <= now:
        raise ScheduleError(f"{result.short} ({tz.key}) is in the past; it is now {Moment(now, tz).short}")
    return result


def moment(text: str, tz_name: str, *, now: datetime) -> Moment:
    """Parse and check what an editor typed after --at, in the zone given by --tz."""
    return resolve(parse_wall_time(text), zone(tz_name), now=now)
