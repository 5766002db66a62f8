"""`mailer schedule ...` as an editor types it."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import update
from sqlmodel import select

from mailer.store.models import Send, SendStatus

from .conftest import status

NEXT_YEAR = date.today().year + 1


def last_sunday(year: int, month: int) -> date:
    day = date(year, month + 1, 1) - timedelta(days=1)
    return day - timedelta(days=(day.weekday() + 1) % 7)


def test_schedule_prints_the_moment_in_local_time_and_utc(cli, issue_file, subscribers, session):
    result = cli("schedule", str(issue_file), "--at", f"{NEXT_YEAR}-07-01 09:00", "--topic", "news")
    assert result.exit_code == 0, result.output
    assert "Scheduled send 1: Network News: December 2026" in result.output
    assert f"09:00 BST (Europe/London) = {NEXT_YEAR}-07-01 08:00 UTC" in result.output
    assert "content frozen now, version" in result.output and "mailer schedule refresh 1" in result.output
    assert "no `mailer run` is running" in result.output
    send = session.get(Send, 1)
    assert send.status == SendStatus.scheduled and send.scheduled_at == datetime(NEXT_YEAR, 7, 1, 8, 0) and send.topics == "news"


def test_schedule_with_another_time_zone(cli, issue_file, subscribers):
    result = cli("schedule", str(issue_file), "--at", f"{NEXT_YEAR}-07-01 09:00", "--tz", "America/New_York")
    assert result.exit_code == 0, result.output
    assert f"09:00 EDT (America/New_York) = {NEXT_YEAR}-07-01 13:00 UTC" in result.output


def test_times_in_the_past_or_that_the_clocks_skip_or_repeat_get_clear_errors(cli, issue_file, subscribers, session):
    gap = last_sunday(NEXT_YEAR, 3)
    fold = last_sunday(NEXT_YEAR, 10)
    cases = {
        "2020-01-01 09:00": "is in the past; it is now",
        f"{gap} 01:30": f"Error: {gap} 01:30 in Europe/London does not exist: the clocks go forward 1 hour that night",
        f"{fold} 01:30": f"Error: {fold} 01:30 in Europe/London happens twice: the clocks go back 1 hour that night",
        "next tuesday": "is not a date and time like '2026-12-01 09:00'",
    }
    for at, message in cases.items():
        result = cli("schedule", str(issue_file), "--at", at)
        assert result.exit_code == 1 and message in result.output, result.output
        assert "Traceback" not in result.output
    assert session.exec(select(Send)).all() == []


def test_a_broken_issue_is_caught_when_scheduling(cli, workdir, subscribers, session):
    broken = workdir / "issues" / "broken.yaml"
    broken.parent.mkdir(exist_ok=True)
    broken.write_text("title: December\ndate: 2026-12-01\nsections:\n  - button: {label: Go, url: 'javascript:alert(1)'}\n")
    result = cli("schedule", str(broken), "--at", f"{NEXT_YEAR}-07-01 09:00")
    assert result.exit_code == 1 and "broken.yaml:4" in result.output, result.output
    assert session.exec(select(Send)).all() == []


def test_list_cancel_move(cli, issue_file, subscribers, session):
    cli("schedule", str(issue_file), "--at", f"{NEXT_YEAR}-07-01 09:00")
    twice = cli("schedule", str(issue_file), "--at", f"{NEXT_YEAR}-02-01 09:00")
    assert twice.exit_code == 1 and "issue 2026-12 is scheduled as send 1 for" in twice.output and "--again" in twice.output
    assert cli("schedule", str(issue_file), "--at", f"{NEXT_YEAR}-02-01 09:00", "--again").exit_code == 0
    session.execute(update(Send).where(Send.id == 1).values(status=SendStatus.missed, note="missed: due ..., the runner came 7 h 0 min late"))
    session.commit()
    listed = cli("schedule", "list").output
    assert f"{NEXT_YEAR}-02-01 09:00 GMT" in listed and "missed" in listed and "the runner came 7 h 0 min late" in listed
    assert listed.index(f"{NEXT_YEAR}-02-01 09:00 GMT") < listed.index("missed")  # upcoming first

    moved = cli("schedule", "move", "1", "--at", f"{NEXT_YEAR}-08-03 10:00")
    assert moved.exit_code == 0 and f"Send 1 now goes at {date(NEXT_YEAR, 8, 3):%A} 3 August {NEXT_YEAR} 10:00 BST" in moved.output, moved.output
    assert status(session, 1) == "scheduled"

    assert cli("schedule", "cancel", "2").exit_code == 0
    again = cli("schedule", "cancel", "2")
    assert again.exit_code == 1 and "send 2 is cancelled; only scheduled or missed sends can be cancelled" in again.output
    assert cli("schedule", "move", "9", "--at", f"{NEXT_YEAR}-08-03 10:00").output.startswith("Error: no send 9")
    assert f"{NEXT_YEAR}-02-01" not in cli("schedule", "list").output


def test_refresh_rebuilds_from_the_edited_issue_and_shows_the_version(cli, issue_file, subscribers, session):
    cli("schedule", str(issue_file), "--at", f"{NEXT_YEAR}-07-01 09:00")
    unchanged = cli("schedule", "refresh", "1")
    assert "the issue has not changed" in unchanged.output, unchanged.output
    before = session.get(Send, 1).content_hash
    issue_file.write_text(issue_file.read_text().replace("Network News: December 2026", "Network News: Christmas"))
    refreshed = cli("schedule", "refresh", "1")
    after = session.get(Send, 1, populate_existing=True)
    assert f"version {before[:8]} -> {after.content_hash[:8]} will go" in refreshed.output, refreshed.output
    assert after.title == "Network News: Christmas"
    assert after.content_hash[:8] in cli("schedule", "list").output


def test_recurring_rules_from_the_command_line(cli, issue_file):
    added = cli("schedule", "recurring", "add", "first tue 09:00", "--name", "monthly", "--notify", "editor@example.org",
                "--topic", "news")
    assert added.exit_code == 0, added.output
    assert "Rule monthly: first tue 09:00 (Europe/London); first run Tuesday" in added.output
    listed = cli("schedule", "list").output
    assert "monthly" in listed and "editor@example.org" in listed
    assert "monthly: first tue 09:00 (Europe/London), next" in cli("schedule", "recurring", "list").output
    refused = cli("schedule", "recurring", "add", "last sun 01:30", "--name", "night", "--notify", "editor@example.org")
    assert refused.exit_code == 1 and "would meet a clock change" in refused.output
    assert cli("schedule", "recurring", "remove", "monthly").exit_code == 0
    assert cli("schedule", "recurring", "list").output.strip() == "No recurring rules."


def test_group_help_and_unknown_commands(cli):
    assert "ISSUE --at WHEN" in cli("schedule", "--help").output
    unknown = cli("schedule", "lsit")
    assert unknown.exit_code == 2 and "No such command 'lsit'" in unknown.output
    missing = cli("schedule", "issues/nope.yaml", "--at", "2030-01-01 09:00")
    assert missing.exit_code == 2 and "does not exist" in missing.output
    assert cli("schedule", "list").output.strip().endswith("Nothing scheduled.")
