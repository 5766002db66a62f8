"""Sends the engine paused after faults in a row are resumed by the runner once `fault_resume_minutes`
have passed (doubling while the fault lasts); a person's pause, resume or cancel takes that over.

The faults are real: an outbox folder that cannot be made (a file stands in its way; root can
write anywhere, so permissions would not do) and an SMTP server that is not there yet.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import update
from sqlmodel import Session

from mailer.cli import main
from mailer.cli.common import console
from mailer.cli.common import settings as cli_settings
from mailer.config import Settings
from mailer.delivery.engine import deliver
from mailer.delivery.sends import create_send, set_status, start
from mailer.schedule.runner import Runner
from mailer.schedule.times import Moment
from mailer.store.models import Delivery, DeliveryStatus, Send, SendStatus, utcnow
from tests.fixtures.smtp import SMTPServer

from .conftest import env_for, tick

FIRST_WAIT = timedelta(minutes=15)  # the default fault_resume_minutes


@pytest.fixture
def blocked_outbox(settings: Settings, workdir: Path) -> Settings:
    """Outbox settings whose folder cannot be made: a file stands where it should be."""
    (workdir / "outbox").write_text("a file where the outbox folder should be")
    return settings.model_copy(update={"max_connection_errors": 3})


def fetch(session: Session, send_id: int) -> Send:
    send = session.get(Send, send_id, populate_existing=True)
    assert send is not None
    return send


def paused_by_fault(session: Session, settings: Settings, issue_file: Path) -> Send:
    """A send to every subscriber that the engine paused after faults, as `mailer send` leaves it."""
    send = create_send(session, settings=settings, issue_path=issue_file)
    assert send.id is not None
    report = deliver(settings, send.id)
    assert report.status == "paused" and report.paused_by_fault, report
    return fetch(session, send.id)


def retries_fall_due(session: Session, send_id: int) -> None:
    """What the minutes before an automatic resume do: the deferred deliveries' first retry falls due."""
    session.execute(update(Delivery).where(Delivery.send_id == send_id, Delivery.status == DeliveryStatus.deferred)
                    .values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    session.commit()


def outbox_recipients(folder: Path) -> Counter[str]:
    return Counter(str(message_from_bytes(path.read_bytes())["Delivered-To"]) for path in folder.glob("*.eml"))


def waits(send: Send, before: datetime, after: datetime) -> tuple[timedelta, timedelta]:
    """The back-off the send was given, as bounds (the engine read the clock between `before` and `after`)."""
    assert send.resume_at is not None, send.note
    return send.resume_at - after, send.resume_at - before


def test_a_send_paused_by_an_unwritable_outbox_is_resumed_by_the_runner_when_its_time_comes(
        runners: Callable[..., Runner], blocked_outbox: Settings, session: Session, issue_file: Path,
        subscribers: list[str], workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    before = utcnow()
    paused = paused_by_fault(session, blocked_outbox, issue_file)
    after = utcnow()
    assert "3 connection errors in a row; last: cannot write to outbox" in paused.note
    assert paused.resume_at is not None and before + FIRST_WAIT <= paused.resume_at <= after + FIRST_WAIT
    runner = runners(settings=blocked_outbox)

    tick(runner, paused.resume_at - timedelta(seconds=1))  # not yet
    assert fetch(session, paused.id).status == SendStatus.paused

    (workdir / "outbox").unlink()  # the fault is gone
    retries_fall_due(session, paused.id)
    with caplog.at_level(logging.INFO, logger="mailer.schedule"):
        tick(runner, paused.resume_at)
    resumed = fetch(session, paused.id)
    assert resumed.status == SendStatus.finished and resumed.resume_at is None
    assert f"send {paused.id} (Network News: December 2026) resumed automatically after: paused after 3 " in caplog.text
    assert outbox_recipients(workdir / "outbox") == Counter({email: 1 for email in subscribers})


def test_the_wait_doubles_while_the_fault_lasts_up_to_four_hours_and_a_person_s_resume_starts_it_again(
        runners: Callable[..., Runner], blocked_outbox: Settings, session: Session, issue_file: Path,
        subscribers: list[str]) -> None:
    settings = blocked_outbox.model_copy(update={"max_connection_errors": 1, "fault_resume_minutes": 70})
    runner = runners(settings=settings)
    before = utcnow()
    send = paused_by_fault(session, settings, issue_file)
    seen = [waits(send, before, utcnow())]
    for _ in range(3):  # the runner resumes it; the outbox is still blocked, so it pauses again
        assert send.resume_at is not None
        before = utcnow()
        tick(runner, send.resume_at)
        send = fetch(session, send.id)
        assert send.status == SendStatus.paused
        seen.append(waits(send, before, utcnow()))
    for (shortest, longest), minutes in zip(seen, (70, 140, 240, 240), strict=True):
        assert shortest <= timedelta(minutes=minutes) <= longest

    before = utcnow()
    assert deliver(settings, send.id).status == "paused"  # what `mailer sends resume` does: a person tried
    shortest, longest = waits(fetch(session, send.id), before, utcnow())
    assert shortest <= timedelta(minutes=70) <= longest


def test_a_run_that_got_messages_through_starts_the_waits_afresh(
        smtp_settings: Settings, smtp_server: SMTPServer, session: Session, issue_file: Path,
        subscribers: list[str]) -> None:
    """The fault went away (readers got the issue) before another came: the next wait is the first again."""
    settings = smtp_settings.model_copy(update={"max_connection_errors": 3})
    smtp_server.drop_on.update(subscribers[-3:])  # the last three: the connection dropped each time
    send = create_send(session, settings=settings, issue_path=issue_file)
    assert send.id is not None
    start(session, send_id=send.id)  # as the runner resumes one: `sending`, keeping the count
    session.execute(update(Send).where(Send.id == send.id).values(fault_pauses=3))  # three pauses in a row before
    session.commit()
    before = utcnow()
    report = deliver(settings, send.id)
    assert report.paused_by_fault and report.sent_now == len(subscribers) - 3
    send = fetch(session, send.id)
    shortest, longest = waits(send, before, utcnow())
    assert shortest <= FIRST_WAIT <= longest and send.fault_pauses == 1


def test_a_person_s_pause_is_never_resumed_by_the_runner(runners: Callable[..., Runner], blocked_outbox: Settings,
                                                        session: Session, issue_file: Path, subscribers: list[str],
                                                        workdir: Path) -> None:
    by_fault = paused_by_fault(session, blocked_outbox, issue_file)
    by_hand = create_send(session, settings=blocked_outbox, issue_path=issue_file)
    resume_at = by_fault.resume_at
    assert resume_at is not None and by_hand.id is not None
    start(session, send_id=by_hand.id)
    for send_id in (by_fault.id, by_hand.id):  # a person pauses a send going out, or holds one paused after faults
        assert set_status(session, send_id=send_id, status=SendStatus.paused, note="paused by hand").resume_at is None
    (workdir / "outbox").unlink()
    retries_fall_due(session, by_fault.id)
    runner = runners(settings=blocked_outbox)
    assert runner.tick(resume_at + timedelta(days=2)) == []
    assert {fetch(session, send.id).status for send in (by_fault, by_hand)} == {SendStatus.paused}
    assert not (workdir / "outbox").exists()


def test_a_paused_send_another_live_process_holds_is_left_alone(runners: Callable[..., Runner],
                                                               blocked_outbox: Settings, session: Session,
                                                               issue_file: Path, subscribers: list[str]) -> None:
    send = paused_by_fault(session, blocked_outbox, issue_file)
    assert send.resume_at is not None
    session.execute(update(Send).where(Send.id == send.id).values(  # as in the moment before it gives it back
        lease_owner=f"elsewhere:{os.getpid()}:x", lease_expires_at=send.resume_at + timedelta(seconds=50)))
    session.commit()
    assert runners(settings=blocked_outbox).tick(send.resume_at) == []
    assert fetch(session, send.id).status == SendStatus.paused


def test_no_automatic_resume_when_the_setting_is_zero(runners: Callable[..., Runner], blocked_outbox: Settings,
                                                      session: Session, issue_file: Path, subscribers: list[str]) -> None:
    settings = blocked_outbox.model_copy(update={"fault_resume_minutes": 0})
    send = paused_by_fault(session, settings, issue_file)
    assert send.resume_at is None
    assert runners(settings=settings).tick(utcnow() + timedelta(days=2)) == []
    assert fetch(session, send.id).status == SendStatus.paused


# --- as a person sees it: an SMTP server that is not there yet ---------------------------------


@pytest.fixture
def server_down(smtp_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SMTPServer, Settings]]:
    """An SMTP server not started yet (connections to its port are refused), and settings aimed at it."""
    monkeypatch.setattr(console, "_width", 200)
    server = SMTPServer()
    yield server, smtp_settings.model_copy(update={"smtp_port": server.port, "max_connection_errors": 2})
    server.controller.stop(no_assert=True)


def mailer(settings: Settings, *args: str) -> Result:
    """`mailer ARGS` in-process with `settings`."""
    cli_settings.cache_clear()
    try:
        return CliRunner().invoke(main, list(args), env=env_for(settings), catch_exceptions=False)
    finally:
        cli_settings.cache_clear()


def test_mailer_send_says_when_the_runner_resumes_and_the_runner_does(
        runners: Callable[..., Runner], server_down: tuple[SMTPServer, Settings], session: Session, issue_file: Path,
        subscribers: list[str]) -> None:
    server, settings = server_down
    sent = mailer(settings, "send", str(issue_file), "--yes")
    send = fetch(session, 1)
    assert send.resume_at is not None
    at = Moment(send.resume_at, ZoneInfo("Europe/London")).short  # the settings' time zone
    assert sent.exit_code == 1
    assert "paused after 2 connection errors in a row" in sent.output
    assert (f"send 1 is paused; `mailer run` resumes it at {at}, or resume it now with `mailer sends resume 1`"
            in sent.output)
    shown = mailer(settings, "sends", "show", "1")
    assert "paused (paused after 2 connection errors in a row; last: " in shown.output
    assert f"; resumes automatically at {at})" in shown.output
    assert f"Send 1 resumes automatically at {at}." in mailer(settings, "sends", "list").output

    server.start()  # the server is back
    retries_fall_due(session, 1)
    tick(runners(settings=settings), send.resume_at)
    assert fetch(session, 1).status == SendStatus.finished
    assert Counter(server.recipients()) == Counter({email: 1 for email in subscribers})
    assert "resumes" not in mailer(settings, "sends", "show", "1").output


@pytest.mark.parametrize("command", ["pause", "cancel"])
def test_a_person_s_pause_or_cancel_takes_over_from_the_runner(
        runners: Callable[..., Runner], server_down: tuple[SMTPServer, Settings], session: Session, issue_file: Path,
        subscribers: list[str], command: str) -> None:
    server, settings = server_down
    assert mailer(settings, "send", str(issue_file), "--yes").exit_code == 1
    resume_at = fetch(session, 1).resume_at
    assert resume_at is not None
    done = mailer(settings, "sends", command, "1")
    assert done.exit_code == 0, done.output
    assert fetch(session, 1).resume_at is None
    server.start()
    retries_fall_due(session, 1)
    assert runners(settings=settings).tick(resume_at + timedelta(days=1)) == []
    assert fetch(session, 1).status == ("paused" if command == "pause" else "cancelled")
    assert server.messages == []


def test_a_person_s_resume_clears_the_automatic_one(server_down: tuple[SMTPServer, Settings], session: Session,
                                                    issue_file: Path, subscribers: list[str]) -> None:
    server, settings = server_down
    assert mailer(settings, "send", str(issue_file), "--yes").exit_code == 1
    server.start()
    retries_fall_due(session, 1)
    resumed = mailer(settings, "sends", "resume", "1")
    assert resumed.exit_code == 0, resumed.output
    send = fetch(session, 1)
    assert send.status == SendStatus.finished and send.resume_at is None
    assert Counter(server.recipients()) == Counter({email: 1 for email in subscribers})
