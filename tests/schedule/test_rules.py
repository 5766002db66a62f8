"""Recurring rules: the WHEN syntax, keeping them in APScheduler's job store, and what a firing does."""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from mailer.delivery.sends import create_send, set_status, start
from mailer.errors import MailerError, ScheduleError
from mailer.schedule import rules
from mailer.schedule import runner as runner_module
from mailer.schedule.jobstore import PERSISTENT, paused_scheduler
from mailer.store.models import Send, SendStatus, utcnow
from tests.fixtures.waiting import PATIENCE

from .conftest import status, write_issue

NOW = datetime(2026, 11, 21, 12, 0)


def sends(session) -> list[Send]:
    return list(session.exec(select(Send)))


@pytest.mark.parametrize(("when", "fields"), [
    ("first tue 09:00", {"day": "1st tue", "hour": 9, "minute": 0}),
    ("First Tuesday of each month at 09:00", {"day": "1st tue", "hour": 9, "minute": 0}),
    ("every 2nd wednesday 7:05", {"day": "2nd wed", "hour": 7, "minute": 5}),
    ("last fri 17:30", {"day": "last fri", "hour": 17, "minute": 30}),
    ("day 1 09:00", {"day": "1", "hour": 9, "minute": 0}),
    ("last day of the month at 16:00", {"day": "last", "hour": 16, "minute": 0}),
])
def test_when_syntax(when, fields):
    assert rules.cron_fields(when) == fields


@pytest.mark.parametrize(("when", "message"), [
    ("tue 09:00", "not a monthly rule"),
    ("first tue", "give one time of day like 09:00"),
    ("first tue 25:00", "give one time of day like 09:00"),
    ("first tue 09:00 10:00", "give one time of day like 09:00"),
    ("day 31 09:00", "must be 1 to 28"),
    ("first blursday 09:00", "not a monthly rule"),
])
def test_bad_rules_say_what_is_wrong(when, message):
    with pytest.raises(ScheduleError, match=message):
        rules.cron_fields(when)


def test_a_rule_in_the_hour_the_clocks_change_is_refused():
    with pytest.raises(ScheduleError, match=r"a rule at 01:30 would meet a clock change: 2027-03-28 01:30 in Europe/London does not exist"):
        rules.check_time_of_day(1, 30, "Europe/London", today=date(2026, 11, 21))
    rules.check_time_of_day(9, 0, "Europe/London", today=date(2026, 11, 21))
    rules.check_time_of_day(1, 30, "UTC", today=date(2026, 11, 21))


def rule_for(workdir, **changes) -> rules.Rule:
    fields = {"name": "monthly", "when": "first tue 09:00", "tz": "Europe/London",
              "issues_dir": str(workdir / "issues"), "notify": ("editor@example.org",)}
    return rules.Rule(**(fields | changes))


def test_rules_are_kept_in_the_job_store_with_their_next_run(settings, engine, workdir, issue_file):
    first = rules.add_rule(settings, engine, rule_for(workdir), now=NOW)
    assert first.short == "2026-12-01 09:00 GMT"
    with pytest.raises(ScheduleError, match="a rule named 'monthly' exists already"):
        rules.add_rule(settings, engine, rule_for(workdir), now=NOW)
    rules.add_rule(settings, engine, rule_for(workdir, name="summer", when="first tue 09:00", tz="UTC"), now=NOW)
    found = rules.list_rules(settings, engine)
    assert [(rule.name, upcoming.short) for rule, upcoming in found] == [("monthly", "2026-12-01 09:00 GMT"),
                                                                       ("summer", "2026-12-01 09:00 UTC")]
    assert found[0][0] == rule_for(workdir)
    rules.remove_rule(settings, engine, "monthly")
    assert [rule.name for rule, _ in rules.list_rules(settings, engine)] == ["summer"]
    with pytest.raises(ScheduleError, match="no rule named 'monthly'"):
        rules.remove_rule(settings, engine, "monthly")


def test_a_rule_needs_a_real_folder_and_someone_to_warn(settings, engine, workdir):
    with pytest.raises(ScheduleError, match="no such folder of issues"):
        rules.add_rule(settings, engine, rule_for(workdir, issues_dir=str(workdir / "nowhere")), now=NOW)
    (workdir / "issues").mkdir()
    with pytest.raises(ScheduleError, match="at least one --notify"):
        rules.add_rule(settings, engine, rule_for(workdir, notify=()), now=NOW)


def test_firing_sends_the_issue_dated_this_month(runners, smtp_settings, engine, workdir, subscribers, session,
                                                  smtp_server, monkeypatch):
    today = datetime.now(ZoneInfo("Europe/London"))
    write_issue(workdir / "issues", today, name="this-month")
    write_issue(workdir / "issues", today + timedelta(days=40), name="next-month")
    runner = runners()
    monkeypatch.setattr(runner_module, "_current", runner)
    runner_module.fire_rule(**asdict(rule_for(workdir)))  # as APScheduler calls it, with the stored arguments
    runner.close()
    [send] = sends(session)
    assert send.issue_slug == "this-month" and status(session, send.id) == "finished"
    assert sorted(smtp_server.recipients()) == subscribers


def test_firing_twice_sends_once(smtp_settings, engine, workdir, issue_file, subscribers, session):
    december = datetime(2026, 12, 1, 9, 0)
    assert rules.fire(smtp_settings, engine, rule_for(workdir), now=december) is not None
    assert rules.fire(smtp_settings, engine, rule_for(workdir), now=december) is None
    assert len(sends(session)) == 1


@pytest.mark.parametrize("status", [SendStatus.draft, SendStatus.failed])
def test_firing_leaves_an_issue_with_a_draft_or_failed_send_alone(smtp_settings, engine, workdir, issue_file,
                                                                  subscribers, session, status):
    """A failed send may have mailed some readers already, a draft is a person's: a rule must not send it again."""
    earlier = create_send(session, settings=smtp_settings, issue_path=issue_file)
    if status == SendStatus.failed:
        start(session, send_id=earlier.id)
        set_status(session, send_id=earlier.id, status=SendStatus.failed, note="a bug, after some readers had it")
    assert rules.fire(smtp_settings, engine, rule_for(workdir), now=datetime(2026, 12, 1, 9, 0)) is None
    assert [send.id for send in sends(session)] == [earlier.id]


def test_no_issue_this_month_warns_the_editors(smtp_settings, engine, workdir, subscribers, session, smtp_server):
    write_issue(workdir / "issues", datetime(2026, 10, 6))
    broken = workdir / "issues" / "2026-12.yaml"
    broken.write_text("title: December\ndate: 2026-12-01\nsections: []\n", encoding="utf-8")
    rule = rule_for(workdir, notify=("editor@example.org", "deputy@example.org"))
    assert rules.fire(smtp_settings, engine, rule, now=datetime(2026, 12, 1, 9, 0)) is None
    assert sends(session) == []
    assert sorted(smtp_server.recipients()) == ["deputy@example.org", "editor@example.org"]
    warning = smtp_server.messages[0].message
    assert warning["Subject"] == "Newsletter: the December 2026 issue was not sent"
    body = warning.get_content()
    assert f"no issue in {workdir / 'issues'} is dated December 2026" in body
    assert "2026-12.yaml:3" in body and "sections" in body  # the broken file's problem, located


def test_two_issues_in_one_month_are_not_guessed_between(smtp_settings, engine, workdir, issue_file, subscribers, session, smtp_server):
    write_issue(workdir / "issues", datetime(2026, 12, 15), name="2026-12-extra")
    assert rules.fire(smtp_settings, engine, rule_for(workdir), now=NOW.replace(month=12, day=1)) is None
    assert "2 issues are dated December 2026" in smtp_server.messages[0].message.get_content()


def test_a_mistyped_editor_address_is_refused(settings, engine, workdir, issue_file):
    with pytest.raises(MailerError, match="'editor@example' is not a valid email address"):
        rules.add_rule(settings, engine, rule_for(workdir, notify=("editor@example",)), now=NOW)


def test_a_rule_the_runner_was_down_for_beyond_the_grace_period_warns_the_editors(runners, smtp_settings, engine, workdir,
                                                                                  issue_file, subscribers, session, smtp_server):
    settings = smtp_settings.model_copy(update={"schedule_grace_hours": 1})
    rules.add_rule(settings, engine, rule_for(workdir), now=utcnow())
    due = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)
    with paused_scheduler(settings, engine) as scheduler:  # as if the runner had been down since then
        scheduler.modify_job(rules.JOB_PREFIX + "monthly", jobstore=PERSISTENT, next_run_time=due)
    [(_, overdue)] = rules.list_rules(settings, engine)  # looking (`mailer schedule list`) leaves it to the runner
    assert overdue.utc == due.replace(tzinfo=None)
    runners(settings=settings).run(until=lambda: bool(smtp_server.messages), timeout=PATIENCE)

    assert smtp_server.recipients() == ["editor@example.org"] and sends(session) == []
    warning = smtp_server.messages[0].message
    assert warning["Subject"] == f"Newsletter: the {due.astimezone(ZoneInfo('Europe/London')):%B %Y} issue was not sent"
    assert "the runner was not running when the rule was due" in warning.get_content()
    # The runner's own scheduler measures the lateness on the real clock: minutes may pass on a busy machine.
    assert re.search(r"came back 3 h \d+ min late, beyond the grace period, so nothing was sent", warning.get_content())
    [(_, upcoming)] = rules.list_rules(settings, engine)
    assert upcoming.utc > utcnow()  # and it fires again next month
