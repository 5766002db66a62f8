"""A pause after faults in a row says when the runner may resume the send (`Send.resume_at`), whatever the
fault; the migration adds that to the sends a database already holds, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, text
from sqlmodel import select

from mailer.config import Settings
from mailer.delivery.engine import BROKEN_IN_A_ROW, deliver
from mailer.delivery.message import MessageBuilder, Recipient
from mailer.store.db import _config, make_engine, new_session, upgrade
from mailer.store.models import Send, utcnow
from tests.delivery.helpers import people
from tests.fixtures.postgres import fresh_database


def test_messages_that_cannot_be_built_pause_the_send_until_the_runner_tries_again(
        settings: Settings, make_send: Callable[..., int], engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: MessageBuilder, recipient: Recipient) -> bytes:
        raise RuntimeError(f"a bug met by {recipient.email}")

    monkeypatch.setattr(MessageBuilder, "build", broken)
    send_id = make_send(people(BROKEN_IN_A_ROW))
    before = utcnow()
    report = deliver(settings.model_copy(update={"fault_resume_minutes": 30}), send_id)
    after = utcnow()
    assert report.status == "paused" and report.paused_by_fault
    assert report.resume_at is not None
    assert before + timedelta(minutes=30) <= report.resume_at <= after + timedelta(minutes=30)
    assert f"; resumes automatically at {report.resume_at:%Y-%m-%d %H:%M} UTC" in str(report)  # the runner's log line
    with new_session(engine) as session:
        send = session.get(Send, send_id)
        assert send is not None and send.resume_at == report.resume_at and send.fault_pauses == 1


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def old_database(request: pytest.FixtureRequest, workdir: Path) -> Iterator[Engine]:
    """An empty database of either kind, migrated to nothing yet."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{workdir / 'old.db'}")
        yield engine
        engine.dispose()
        return
    with fresh_database("mailer_resume", migrated=False) as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


def test_the_migration_gives_sends_already_there_no_automatic_resume(old_database: Engine) -> None:
    with old_database.begin() as connection:
        command.upgrade(_config(connection), "d3l1c0de0012")
        connection.execute(text("INSERT INTO send (issue_slug, issue_path, kind, title, status, topics, languages, content,"
                                " content_hash, created_at, lease_owner, note, titles, published) VALUES ('s', '', 'issue',"
                                " 't', 'paused', '', '', :content, '', '2026-12-01', '', 'paused after 5 connection errors"
                                " in a row', '', true)"), {"content": b"{}"})
    upgrade(old_database)  # as `mailer db upgrade` does
    with new_session(old_database) as session:
        (send,) = session.exec(select(Send)).all()
    assert (send.status, send.resume_at, send.fault_pauses) == ("paused", None, 0)  # a person resumes it, as before
