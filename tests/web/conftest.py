"""The app on a real SQLite file, driven in-process with FastAPI's TestClient; emails land in the outbox folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from mailer.config import Settings
from mailer.store import subscribers
from mailer.store.models import Subscriber
from mailer.store.topics import add_topic
from mailer.web import create_app


@pytest.fixture
def app(settings: Settings, engine: Engine):
    return create_app(settings, engine=engine)


@pytest.fixture
def client(app, settings: Settings) -> Iterator[TestClient]:
    with TestClient(app, base_url=settings.base_url, follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture
def db(session: Session) -> Session:
    """The shared `session`, by the name the web tests use."""
    return session


@pytest.fixture
def person(db: Session) -> Callable[..., Subscriber]:
    """Adds an active subscriber (committed): person("ann@example.org", name="Ann", topics=["events"])."""

    def add(email: str = "ann@example.org", **details: object) -> Subscriber:
        subscriber = subscribers.add_subscriber(db, email=email, **details)  # type: ignore[arg-type]
        db.commit()
        return subscriber

    return add


@pytest.fixture
def topics(db: Session) -> list[str]:
    names = ["events", "publications"]
    add_topic(db, name="events", description="Events and gatherings")
    add_topic(db, name="publications", description="New reports and papers")
    db.commit()
    return names
