"""`mailer send`, `mailer sends ...`, `mailer dkim keygen`, run as a user would (CliRunner)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result
from sqlmodel import select

from mailer.cli import main
from mailer.cli.common import console
from mailer.cli.common import settings as cli_settings
from mailer.config import Settings
from mailer.store.db import new_session
from mailer.store.models import Delivery, Send, Topic
from mailer.store.subscribers import add_subscriber
from tests.delivery.helpers import SAMPLE_ISSUE, env_for
from tests.fixtures.smtp import free_port


@pytest.fixture
def cli(smtp_settings: Settings, engine, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(console, "_width", 200)
    def run(*args: str, input: str | None = None, **changes: object) -> Result:
        """`mailer ARGS` with the test's settings, and `changes` to them."""
        env = env_for(smtp_settings.model_copy(update={"languages": ["en", "cy"], **changes}))
        cli_settings.cache_clear()
        try:
            return CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)
        finally:
            cli_settings.cache_clear()

    return run


def test_send_asks_first_then_sends_and_reports(cli, news, smtp_server, engine) -> None:  # type: ignore[no-untyped-def]
    declined = cli("send", str(SAMPLE_ISSUE), input="n\n")
    assert declined.exit_code == 1 and "Send it to 3 subscribers now?" in declined.output
    assert "Aborted" in declined.output and not smtp_server.messages
    with new_session(engine) as session:
        assert not session.exec(select(Send)).all()

    smtp_server.rules["tom@example.com"] = "550 5.1.1 No such user"
    result = cli("send", str(SAMPLE_ISSUE), input="y\n")
    assert result.exit_code == 0, result.output
    assert sorted(smtp_server.recipients()) == ["dwy@example.com", "sian@example.com"]
    assert "finished" in result.output and "Send 1" in result.output and "No such user" in result.output
    subjects = {r.rcpt_tos[0]: r.message["Subject"] for r in smtp_server.messages}
    assert subjects["sian@example.com"].startswith("Rhwydwaith")
    assert " / " in subjects["dwy@example.com"]

    shown = cli("sends", "show", "1")
    assert shown.exit_code == 0 and "finished" in shown.output and re.search(r"^cy\s+\d", shown.output, re.M)
    assert "tom@example.com" in shown.output and "550 5.1.1 No such user" in shown.output
    assert "Bounces: 1 permanent, 0 temporary, 0 complaint" in shown.output  # the refusal counts as a bounce
    listed = cli("sends", "list")
    assert "A co-production network for Wales" in listed.output and "finished" in listed.output


def test_send_refuses_an_issue_sent_before_unless_again(cli, news, smtp_server, engine) -> None:  # type: ignore[no-untyped-def]
    """Finding 1: a second `mailer send ... --yes` sent every subscriber a second copy without a word."""
    first = cli("send", str(SAMPLE_ISSUE), "--yes")
    assert first.exit_code == 0, first.output
    with new_session(engine) as session:
        started = session.exec(select(Send)).one().started_at
    when = f"{started.replace(tzinfo=UTC).astimezone(ZoneInfo('Europe/London')):%Y-%m-%d %H:%M %Z}"
    said = f"issue {SAMPLE_ISSUE.stem} was sent as send 1 on {when} to 3 subscribers"

    twice = cli("send", str(SAMPLE_ISSUE), "--yes")
    assert (twice.exit_code, twice.output) == (1, f"Error: {said}; add --again to send it again\n")
    assert len(smtp_server.messages) == 3

    declined = cli("send", str(SAMPLE_ISSUE), "--again", input="n\n")
    assert f"{said}. Send it again to 3 subscribers now? [y/N]" in declined.output
    assert len(smtp_server.messages) == 3
    again = cli("send", str(SAMPLE_ISSUE), "--again", "--yes")
    assert again.exit_code == 0 and f"Note: {said}." in again.output
    assert len(smtp_server.messages) == 6


@pytest.mark.parametrize(("status", "said"), [
    ("cancelled", None),
    ("scheduled", "issue n is scheduled as send 1 for 2100-01-01 09:00 GMT; move or cancel it (`mailer schedule list`), or "),
    ("missed", "issue n was scheduled as send 1 for 2100-01-01 09:00 GMT and missed; move or cancel it"),
    ("draft", "issue n has send 1, created 2099-12-01 10:00 GMT and not started; continue it with `mailer send --resume 1`"),
    ("paused", "issue n is paused as send 1 after 0 of 0 subscribers (started 2099-12-01 10:00 GMT); continue it with"),
    ("failed", "issue n failed as send 1 on 2099-12-01 10:00 GMT after reaching 0 subscribers; add --again"),
])
def test_every_send_but_a_cancelled_one_counts(smtp_settings, engine, status, said) -> None:  # type: ignore[no-untyped-def]
    from mailer.delivery.once import check_repeat
    from mailer.errors import SendError

    with new_session(engine) as session:
        session.add(Send(issue_slug="n", status=status, content=b"{}", created_at=datetime(2099, 12, 1, 10, 0),
                         scheduled_at=datetime(2100, 1, 1, 9, 0)))
        session.commit()
        if said is None:
            assert check_repeat(session, settings=smtp_settings, slug="n", again=False) is None
            return
        with pytest.raises(SendError) as refused:
            check_repeat(session, settings=smtp_settings, slug="n", again=False)
        assert str(refused.value).startswith(said) and str(refused.value).endswith("add --again to send it again")
        assert said.startswith(check_repeat(session, settings=smtp_settings, slug="n", again=True))


def test_one_subscriber_is_not_plural(cli, engine) -> None:  # type: ignore[no-untyped-def]
    with new_session(engine) as session:
        session.add(Topic(name="news"))
        session.commit()
        add_subscriber(session, email="unig@example.com", name="Unig", topics=["news"])
        session.commit()
    declined = cli("send", str(SAMPLE_ISSUE), input="n\n")
    assert "1 subscriber (" in declined.output and "Send it to 1 subscriber now?" in declined.output


def test_topic_and_language_choose_the_audience(cli, news, smtp_server) -> None:  # type: ignore[no-untyped-def]
    result = cli("send", str(SAMPLE_ISSUE), "--language", "cy", "--yes")
    assert result.exit_code == 0, result.output
    assert smtp_server.recipients() == ["sian@example.com"]
    two = cli("send", str(SAMPLE_ISSUE), "--topic", "news", "--language", "both", "--language", "cy", "--yes", "--again")
    assert two.exit_code == 0 and sorted(smtp_server.recipients()) == ["dwy@example.com", "sian@example.com",
                                                                       "sian@example.com"]
    unknown = cli("send", str(SAMPLE_ISSUE), "--topic", "nonesuch", "--yes", "--again")
    assert unknown.exit_code == 1 and "no topic named nonesuch" in unknown.output


def test_a_bad_dkim_key_is_refused_before_a_send_is_made(cli, news, engine, workdir: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("send", str(SAMPLE_ISSUE), "--yes", dkim_selector="news", dkim_private_key=str(workdir / "nokey"))
    assert result.exit_code == 1 and "dkim_private_key: cannot read" in result.output
    with new_session(engine) as session:
        assert not session.exec(select(Send)).all()


def test_a_send_that_pauses_says_so_and_fails(cli, news, smtp_server) -> None:  # type: ignore[no-untyped-def]
    down = cli("send", str(SAMPLE_ISSUE), "--yes", smtp_port=free_port(), max_connection_errors=2,
               fault_resume_minutes=0)  # with a wait, it names the time `mailer run` resumes it (tests/schedule)
    assert down.exit_code == 1 and "2 connection errors in a row" in down.output
    assert "send 1 is paused; fix the cause, then resume with `mailer sends resume 1`" in down.output
    resumed = cli("sends", "resume", "1")
    assert resumed.exit_code == 0 and len(smtp_server.recipients()) == 1  # the one never tried; two wait to retry


@pytest.mark.parametrize("debug", [False, True])
def test_a_database_error_is_one_line_and_the_send_stays_resumable(cli, news, smtp_server, engine,  # type: ignore[no-untyped-def]
                                                                   monkeypatch, debug) -> None:
    from sqlalchemy.exc import OperationalError

    from mailer.delivery import queue

    def full_disk(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OperationalError("UPDATE delivery SET ...", {}, Exception("database or disk is full"))

    monkeypatch.setattr(queue, "record_many", full_disk)
    result = cli(*(["--debug"] if debug else []), "send", str(SAMPLE_ISSUE), "--yes")
    assert result.exit_code == 1
    line = ("Error: database or disk error: database or disk is full; "
            "the send stays resumable with `mailer sends resume 1`")
    assert line in result.output
    assert ("Traceback" in result.output) is debug
    with new_session(engine) as session:
        send = session.get(Send, 1)
        assert send.status == "sending" and send.note.startswith("stopped by database or disk error")
        assert not send.lease_owner

    monkeypatch.undo()  # the disk has room again; the journal kept what the server accepted
    resumed = cli("sends", "resume", "1")
    assert resumed.exit_code == 0 and "finished" in resumed.output
    assert sorted(smtp_server.recipients()) == ["dwy@example.com", "sian@example.com", "tom@example.com"]


def test_test_copies_are_marked_and_record_nothing(cli, news, smtp_server, engine) -> None:  # type: ignore[no-untyped-def]
    result = cli("send", str(SAMPLE_ISSUE), "--test", "editor@example.org", "--test", "sian@example.com")
    assert result.exit_code == 0, result.output
    assert sorted(smtp_server.recipients()) == ["editor@example.org", "sian@example.com"]
    for received in smtp_server.messages:
        assert received.message["Subject"].startswith("[TEST] ")
    sian = next(r for r in smtp_server.messages if r.rcpt_tos == ["sian@example.com"])
    assert "Rhwydwaith" in sian.message["Subject"]  # her language
    with new_session(engine) as session:
        assert not session.exec(select(Send)).all() and not session.exec(select(Delivery)).all()


def test_resume_pause_and_cancel(cli, news, smtp_server, smtp_settings, engine) -> None:  # type: ignore[no-untyped-def]
    from mailer.delivery.sends import create_send, start

    with new_session(engine) as session:
        send = create_send(session, settings=smtp_settings, issue_path=SAMPLE_ISSUE)
        start(session, send_id=send.id)
    paused = cli("sends", "pause", str(send.id))
    assert paused.exit_code == 0 and f"Continue with: mailer sends resume {send.id}" in paused.output
    again = cli("sends", "pause", str(send.id))  # holds it paused: what a person does to a send paused after faults
    assert again.exit_code == 0 and f"Continue with: mailer sends resume {send.id}" in again.output
    resumed = cli("send", "--resume", str(send.id))  # the older spelling of `mailer sends resume`
    assert resumed.exit_code == 0 and "finished" in resumed.output
    assert len(smtp_server.recipients()) == 3
    cancelled = cli("sends", "cancel", str(send.id))
    assert cancelled.exit_code == 1 and "finished" in cancelled.output
    missing = cli("sends", "show", "99")
    assert missing.exit_code == 1 and "no send with id 99" in missing.output


def test_usage_errors(cli) -> None:  # type: ignore[no-untyped-def]
    assert "give an ISSUE" in cli("send").output
    assert "--resume takes no ISSUE" in cli("send", str(SAMPLE_ISSUE), "--resume", "1").output
    assert "takes no --topic" in cli("send", str(SAMPLE_ISSUE), "--test", "a@example.org", "--topic", "news").output
    missing = cli("send", "--resume", "7")
    assert missing.exit_code == 1 and "no send with id 7 (see `mailer sends list`)" in missing.output


def test_dkim_keygen_writes_keys_and_prints_the_record(cli, workdir: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("dkim", "keygen", "--selector", "news2026", "--out", "keys")
    assert result.exit_code == 0, result.output
    assert (workdir / "keys" / "news2026.private").stat().st_mode & 0o777 == 0o600
    record = next(line for line in result.output.splitlines() if "IN TXT" in line)
    assert record.startswith('news2026._domainkey.example.org IN TXT "v=DKIM1; k=rsa; p=MII')
    assert 'dkim_private_key = "keys/news2026.private"' in result.output
    again = cli("dkim", "keygen", "--selector", "news2026", "--out", "keys")
    assert again.exit_code == 1 and "already exists" in again.output


def test_worker_refuses_sqlite(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("worker", "--once")
    assert result.exit_code == 1 and "needs PostgreSQL" in result.output
