"""Fixtures for the scheduler: an issue file, subscribers, settings aimed at the test SMTP server,
a tick-driven runner, and `mailer ...` run in-process."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlmodel import Session, select

from mailer.cli import main
from mailer.cli.common import console
from mailer.cli.common import settings as cli_settings
from mailer.config import Settings
from mailer.delivery.sends import create_send
from mailer.schedule.runner import Runner
from mailer.store.db import new_session
from mailer.store.models import Delivery, Send, SendStatus, utcnow
from mailer.store.subscribers import add_subscriber
from mailer.store.topics import add_topic
from tests.fixtures.waiting import PATIENCE

ISSUE = """\
title: "Network News: {month}"
date: {date}
topics: [news]
sections:
  - heading: "The network is launched"
    body: "Thank you to every member who wrote a letter."
"""


def write_issue(folder: Path, day: datetime, name: str | None = None) -> Path:
    """A small valid issue dated `day`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name or f'{day:%Y-%m}'}.yaml"
    path.write_text(ISSUE.format(month=f"{day:%B %Y}", date=f"{day:%Y-%m-%d}"), encoding="utf-8")
    return path


@pytest.fixture
def issue_file(workdir: Path) -> Path:
    return write_issue(workdir / "issues", datetime(2026, 12, 1))


@pytest.fixture
def subscribers(session: Session) -> list[str]:
    """Twelve active subscribers of topic `news`."""
    add_topic(session, name="news")
    emails = [f"reader{n:02d}@example.org" for n in range(12)]
    for email in emails:
        add_subscriber(session, email=email, name=email.split("@")[0], topics=["news"])
    session.commit()
    return emails


@pytest.fixture
def smtp_settings(settings: Settings, smtp_server) -> Settings:
    return settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": smtp_server.port, "smtp_security": "none"})


@pytest.fixture
def runners(smtp_settings: Settings, engine) -> Iterator[Callable[..., Runner]]:
    """Make runners driven by `tick(now)`; each is closed (its deliveries waited for) at the end."""
    made: list[Runner] = []

    def make(settings: Settings | None = None, **options: Any) -> Runner:
        runner = Runner(settings or smtp_settings, engine=engine, **options)
        made.append(runner)
        return runner

    yield make
    for runner in made:
        runner.stop.set()
        runner.close()


@pytest.fixture
def scheduled(session: Session, smtp_settings: Settings, issue_file: Path) -> Callable[[datetime], Send]:
    """Create a scheduled send directly (any time, even past), as `mailer schedule` would."""

    def make(at: datetime) -> Send:
        return create_send(session, settings=smtp_settings, issue_path=issue_file, scheduled_at=at)

    return make


def tick(runner: Runner, now: datetime) -> None:
    """One pass of the runner at `now`, waiting for the deliveries it started."""
    for future in runner.tick(now):
        future.result(timeout=PATIENCE)


def run_until_sent(runner: Runner, send_id: int, *, timeout: float) -> Send:
    """`mailer run` (without the pages) until the send has gone out or `timeout` seconds pass."""
    def sent() -> bool:
        with new_session(runner.engine) as session:
            send = session.get(Send, send_id)
            return send is not None and send.status not in (SendStatus.scheduled, SendStatus.sending)

    runner.run(until=sent, timeout=timeout)
    with new_session(runner.engine) as session:
        send = session.get(Send, send_id)
    assert send is not None
    return send


def status(session: Session, send_id: int) -> str:
    send = session.get(Send, send_id, populate_existing=True)
    assert send is not None
    return str(send.status)


def delivered(session: Session, send_id: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in session.exec(select(Delivery).where(Delivery.send_id == send_id)):
        counts[row.status] = counts.get(row.status, 0) + 1
    return counts


def soon(minutes: float = 60) -> datetime:
    return utcnow() + timedelta(minutes=minutes)


def env_for(settings: Settings) -> dict[str, str]:
    """MAILER_* variables that reproduce `settings` in another process (or a CliRunner)."""
    values = settings.model_dump(exclude_defaults=True)
    return {f"MAILER_{key.upper()}": value if isinstance(value, str) else json.dumps(value) for key, value in values.items()}


@pytest.fixture
def cli(smtp_settings: Settings, engine, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run `mailer ...` in-process against this test's database and SMTP server."""
    monkeypatch.setattr(console, "_width", 200)
    env = env_for(smtp_settings)

    def run(*args: str) -> Result:
        cli_settings.cache_clear()
        try:
            return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
        finally:
            cli_settings.cache_clear()

    return run


@pytest.fixture
def subprocess_env(smtp_settings: Settings) -> dict[str, str]:
    """The environment for a real `mailer run` process on this test's database and SMTP server."""
    return {**os.environ, **env_for(smtp_settings), "PYTHONUNBUFFERED": "1"}
