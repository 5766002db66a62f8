"""Export, then import into an empty database: the migration path and the restore path (issue 11, finding 2).

An unsubscribed reader came back active. Now every subscriber's status,
language, topics, name, source, consent wording and dates come back exactly,
on SQLite and on PostgreSQL, through the commands a user runs.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select
from sqlmodel import Session

from mailer.cli import main
from mailer.cli.common import settings as cli_settings
from mailer.config import Settings
from mailer.store.db import make_engine, new_session, upgrade
from mailer.store.models import Subscriber, SubscriberStatus, SubscriberTopic, Topic
from mailer.store.topics import topics_by_subscriber
from tests.fixtures.postgres import fresh_database

ROWS = 1200
NAMES = ["Gwenllïan ap Rhys", "Dafydd ŵŷ", "=HYPERLINK(\"http://x.example\",\"y\")", "+44 29 2000 0000", "-dash",
         "@handle", "'quoted", "Siân, Llŷr", 'Rhys "Bach" Jones', "", "x" * 200]
SOURCES = ["web", "cli", "import", "suppress", "mailchimp"]
CONSENTS = ["", "Send me the newsletter by email. I can unsubscribe at any time.", "=1+1", "imported from a 'list'"]


@pytest.fixture
def empty_url(database_url: str, workdir: Path) -> Iterator[str]:
    """A second, empty database of the same kind as the test's."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{workdir / 'restored.db'}"
        return
    with fresh_database("mailer_restore") as url:
        yield url


def fill(session: Session) -> None:
    """ROWS subscribers in every status, language and mix of topics, with awkward names."""
    rng = random.Random(11)
    topics = [Topic(name=name) for name in ("news", "events", "walks", "load-test")]
    session.add_all(topics)
    session.flush()
    start = datetime(2024, 1, 1, 9, 30, 15)
    for i in range(ROWS):
        status = rng.choice(list(SubscriberStatus))
        created = start + timedelta(hours=i)
        subscriber = Subscriber(
            email=f"Person{i}@example{i % 7}.org", email_key=f"person{i}@example{i % 7}.org",
            name=rng.choice(NAMES), language=rng.choice(["en", "cy", "both"]), status=status,
            source=rng.choice(SOURCES), consent_text=rng.choice(CONSENTS), created_at=created,
            confirmed_at=None if status == SubscriberStatus.pending else created + timedelta(minutes=5),
            status_changed_at=created + timedelta(days=3),
        )
        session.add(subscriber)
        session.flush()
        session.add_all(SubscriberTopic(subscriber_id=subscriber.id, topic_id=topic.id)
                        for topic in rng.sample(topics, rng.randint(0, 3)))
    session.commit()


def snapshot(engine: Engine) -> dict[str, tuple]:
    """Everything a restore must give back, by address."""
    with new_session(engine) as session:
        people = list(session.scalars(select(Subscriber)))
        topics = topics_by_subscriber(session, [person.id for person in people])
        return {person.email: (person.name, person.language, person.status, person.source, person.consent_text,
                               tuple(topics.get(person.id, [])), person.created_at, person.confirmed_at,
                               person.status_changed_at) for person in people}


def mailer(settings: Settings, url: str, *args: str) -> str:
    cli_settings.cache_clear()
    env = {"MAILER_SECRET_KEY": settings.secret_key, "MAILER_DATABASE_URL": url}
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    cli_settings.cache_clear()
    assert result.exit_code == 0, result.output
    return result.output


def test_export_then_import_into_an_empty_database_gives_the_same_list(settings, engine, session, empty_url, workdir):
    fill(session)
    export = workdir / "export.csv"
    mailer(settings, settings.database_url, "subscribers", "export", str(export))
    target = make_engine(empty_url)
    upgrade(target)
    try:
        refused = CliRunner().invoke(main, ["subscribers", "import", str(export)],
                                     env={"MAILER_SECRET_KEY": settings.secret_key, "MAILER_DATABASE_URL": empty_url})
        assert refused.exit_code == 1 and "unknown topic 'events'" in refused.output and "--create-topics" in refused.output
        output = mailer(settings, empty_url, "subscribers", "import", str(export), "--create-topics", "-q")
        assert output.endswith(f"Created topics events, load-test, news, walks.\n{ROWS} added, 0 updated, 0 unchanged, 0 rejected.\n")
        before, after = snapshot(engine), snapshot(target)
        assert len(before) == ROWS
        assert {status for row in before.values() for status in [row[2]]} == set(SubscriberStatus)
        assert after == before
    finally:
        target.dispose()
