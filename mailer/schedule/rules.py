"""Recurring rules: "on the first Tuesday of each month at 09:00, send this month's issue if it is
ready, otherwise warn the editors".

A rule lives only in APScheduler's job store, as a cron trigger plus plain arguments: keeping
triggers across restarts is what that store is for. Firing never sends an issue twice: an issue
that already has a send (in any status: scheduled, sent, failed, cancelled, ...) is left to the people who made it.
A firing the runner was down for, beyond the grace period, sends nothing and warns the editors.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine

from mailer.config import Settings
from mailer.content import load_issue
from mailer.delivery.notices import send_notice
from mailer.delivery.once import earlier_send
from mailer.delivery.sends import create_send
from mailer.errors import IssueError, MailerError, ScheduleError
from mailer.schedule.jobstore import PERSISTENT, paused_scheduler
from mailer.schedule.times import Moment, check_wall_time, lateness, zone
from mailer.store.db import new_session
from mailer.store.models import SendStatus
from mailer.store.subscribers import normalise_email

log = logging.getLogger("mailer.schedule")

JOB_PREFIX = "rule:"
FIRE = "mailer.schedule.runner:fire_rule"
EXAMPLES = '"first tue 09:00", "last fri 17:30", "day 1 09:00" or "last day 16:00"'
ORDINALS = {"first": "1st", "second": "2nd", "third": "3rd", "fourth": "4th", "fifth": "5th", "last": "last"}
ORDINALS |= {value: value for value in ORDINALS.values()}
WEEKDAYS = {name[:3]: name[:3] for name in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}
WEEKDAYS |= {name: name[:3] for name in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}
FILLER = {"every", "each", "of", "the", "month", "at", "on"}
TIME_OF_DAY = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,59}")


@dataclass(frozen=True)
class Rule:
    """What a rule does when it fires; stored as the job's keyword arguments, so plain values only."""

    name: str
    when: str
    tz: str
    issues_dir: str
    notify: tuple[str, ...]
    topics: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()


def cron_fields(when: str) -> dict[str, str | int]:
    """CronTrigger fields for `first tue 09:00` and friends; `ScheduleError` naming the problem."""
    words = [word for word in when.lower().replace(",", " ").split() if word not in FILLER]
    times = [word for word in words if ":" in word]
    clock = TIME_OF_DAY.fullmatch(times[0]) if len(times) == 1 else None
    if clock is None:
        raise ScheduleError(f"{when!r}: give one time of day like 09:00 (for example {EXAMPLES})")
    rest = [word for word in words if ":" not in word]
    match rest:
        case [ordinal, weekday] if ordinal in ORDINALS and weekday in WEEKDAYS:
            day = f"{ORDINALS[ordinal]} {WEEKDAYS[weekday]}"
        case ["last", "day"]:
            day = "last"
        case ["day", number] if number.isdigit() and 1 <= int(number) <= 28:
            day = str(int(number))
        case ["day", _]:
            raise ScheduleError(f"{when!r}: day of the month must be 1 to 28 (every month has it); use \"last day\" for the end")
        case _:
            raise ScheduleError(f"{when!r}: not a monthly rule; write it like {EXAMPLES}")
    return {"day": day, "hour": int(clock[1]), "minute": int(clock[2])}


def check_time_of_day(hour: int, minute: int, tz_name: str, *, today: date) -> None:
    """Refuse a time of day that the clocks skip or repeat on some day of the coming two years."""
    tz = zone(tz_name)
    for offset in range(2 * 366):
        try:
            check_wall_time(datetime.combine(today + timedelta(days=offset), time(hour, minute)), tz)
        except ScheduleError as exc:
            raise ScheduleError(f"a rule at {hour:02d}:{minute:02d} would meet a clock change: {exc}") from None


def trigger(rule: Rule) -> CronTrigger:
    return CronTrigger(**cron_fields(rule.when), timezone=zone(rule.tz))


def add_rule(settings: Settings, engine: Engine, rule: Rule, *, now: datetime) -> Moment:
    """Check and store a rule; returns its first firing."""
    if not NAME.fullmatch(rule.name):
        raise ScheduleError(f"rule name {rule.name!r}: use letters, digits, - and _ (up to 60)")
    if not rule.notify:
        raise ScheduleError("a rule needs at least one --notify address, to warn when the issue is not ready")
    for address in rule.notify:
        normalise_email(address)  # refuses a mistyped address now, not on the day the warning is due
    if not Path(rule.issues_dir).is_dir():
        raise ScheduleError(f"{rule.issues_dir}: no such folder of issues")
    fields = cron_fields(rule.when)
    check_time_of_day(int(fields["hour"]), int(fields["minute"]), rule.tz, today=now.date())
    cron = trigger(rule)
    first = cron.get_next_fire_time(None, now.replace(tzinfo=UTC))  # from the caller's clock, not the machine's
    with paused_scheduler(settings, engine) as scheduler:
        try:
            job = scheduler.add_job(FIRE, cron, kwargs=asdict(rule), id=JOB_PREFIX + rule.name,
                                    name=f"rule {rule.name}", jobstore=PERSISTENT, next_run_time=first)
        except ConflictingIdError:
            raise ScheduleError(f"a rule named {rule.name!r} exists already; remove it first") from None
        return _moment(job.next_run_time, rule.tz)


def remove_rule(settings: Settings, engine: Engine, name: str) -> None:
    with paused_scheduler(settings, engine) as scheduler:
        try:
            scheduler.remove_job(JOB_PREFIX + name, jobstore=PERSISTENT)
        except JobLookupError:
            raise ScheduleError(f"no rule named {name!r} (see `mailer schedule recurring list`)") from None


def list_rules(settings: Settings, engine: Engine) -> list[tuple[Rule, Moment | None]]:
    """Every rule with its next firing."""
    with paused_scheduler(settings, engine) as scheduler:
        jobs = [job for job in scheduler.get_jobs(jobstore=PERSISTENT) if job.id.startswith(JOB_PREFIX)]
    found = [(Rule(**job.kwargs), job.next_run_time) for job in jobs]
    return sorted(((rule, _moment(at, rule.tz) if at else None) for rule, at in found), key=lambda pair: pair[0].name)


def _moment(aware: datetime, tz_name: str) -> Moment:
    return Moment(aware.astimezone(UTC).replace(tzinfo=None), zone(tz_name))


def fire(settings: Settings, engine: Engine, rule: Rule, *, now: datetime) -> int | None:
    """Do what the rule says for the month of `now`: the id of a send to start now, or None
    (the editors were warned, or the issue already has a send)."""
    month = now.replace(tzinfo=UTC).astimezone(zone(rule.tz)).date()
    label = f"{month:%B %Y}"
    found, problems = issues_dated(Path(rule.issues_dir), month)
    if len(found) != 1:
        reason = (f"no issue in {rule.issues_dir} is dated {label}" if not found
                  else f"{len(found)} issues are dated {label}: {', '.join(map(str, found))}")
        _warn(settings, rule, label, reason, problems)
        return None
    path = found[0]
    with new_session(engine) as session:
        # Any status, even cancelled: a failed send may have mailed some readers, and a draft,
        # missed or cancelled one is a person's to decide on.
        earlier = earlier_send(session, path.stem, statuses=tuple(SendStatus))
        if earlier is not None:
            log.info("rule %s: %s already has send %s (%s); nothing to do", rule.name, path, earlier.id, earlier.status)
            return None
        try:
            send = create_send(session, settings=settings, issue_path=path, topics=rule.topics, languages=rule.languages, scheduled_at=now)
        except MailerError as exc:
            _warn(settings, rule, label, f"{path} cannot be sent as it is", [str(exc)])
            return None
    log.info("rule %s: scheduled %s now as send %s", rule.name, path, send.id)
    return send.id


def warn_missed(settings: Settings, rule: Rule, *, due: datetime, now: datetime) -> None:
    """Warn the editors that the runner was down when the rule was due, for longer than the grace period."""
    moment = Moment(due, zone(rule.tz))
    reason = (f"the runner was not running when the rule was due ({moment.short}) and came back "
              f"{lateness(now - due)} late, beyond the grace period, so nothing was sent")
    _warn(settings, rule, f"{moment.local:%B %Y}", reason, [])


def issues_dated(folder: Path, month: date) -> tuple[list[Path], list[str]]:
    """The valid issues in `folder` dated in `month`, and the problems of the files that do not load."""
    found, problems = [], []
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        try:
            issue = load_issue(path)
        except IssueError as exc:
            problems.append(str(exc))
            continue
        if (issue.date.year, issue.date.month) == (month.year, month.month):
            found.append(path)
    return found, problems


def _warn(settings: Settings, rule: Rule, label: str, reason: str, problems: list[str]) -> None:
    """Email every editor named in the rule; a failure to warn is logged, never raised into the runner."""
    log.warning("rule %s: %s; warning %s", rule.name, reason, ", ".join(rule.notify))
    text = "\n".join([
        f"The rule {rule.name!r} ({rule.when}, {rule.tz}) did not send the {label} issue of {settings.text('list_name', 'en')}:",
        f"{reason}.", "",
        *([*problems, ""] if problems else []),
        "To send it after all: `mailer send ISSUE`, or `mailer schedule ISSUE --at ...` for later.",
    ])
    for address in rule.notify:
        try:
            send_notice(settings, to=address, subject=f"{settings.text('list_name', 'en')}: the {label} issue was not sent", text=text)
        except MailerError as exc:
            log.error("rule %s: could not warn %s: %s", rule.name, address, exc)
