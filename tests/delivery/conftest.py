"""Fixtures for delivery tests: settings pointing at the test SMTP server, and sends made quickly."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from mailer.config import Settings
from mailer.store.db import new_session
from mailer.store.models import Send, Topic
from mailer.store.subscribers import add_subscriber
from tests.delivery.helpers import content


@pytest.fixture(autouse=True)
def steady_links(monkeypatch: pytest.MonkeyPatch) -> None:
    """Signed links carry the time they were made; hold it still so a link made by the test
    matches the one in a message built a moment earlier, even across a second boundary."""
    monkeypatch.setattr("itsdangerous.timed.TimestampSigner.get_timestamp", lambda self: 1_790_000_000)


@pytest.fixture
def smtp_settings(settings: Settings, smtp_server) -> Settings:  # type: ignore[no-untyped-def]
    return settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": smtp_server.port,
                                       "smtp_security": "none", "smtp_timeout": 5.0})


@pytest.fixture
def make_send(engine) -> Callable[..., int]:  # type: ignore[no-untyped-def]
    """`make_send([(email, name, language), ...])`: active subscribers and a draft send to them all."""

    def make(recipients: Sequence[tuple[str, str, str]], *, languages: Sequence[str] = ("en", "cy", "both")) -> int:
        with new_session(engine) as session:
            for email, name, language in recipients:
                add_subscriber(session, email=email, name=name, language=language)
            send = Send(issue_slug="test-issue", title="Network news", content=content(languages))
            session.add(send)
            session.commit()
            return send.id

    return make


@pytest.fixture
def news(engine) -> None:  # type: ignore[no-untyped-def]
    """Three active subscribers of topic "news" (Welsh, English with a name full of specials, both
    languages without a name) and one subscriber of no topic."""
    with new_session(engine) as session:
        session.add(Topic(name="news"))
        session.commit()
        add_subscriber(session, email="sian@example.com", name="Siân Jones", language="cy", topics=["news"])
        add_subscriber(session, email="tom@example.com", name="Tom \"Tiny\" O'Neill, Jr.", topics=["news"])
        add_subscriber(session, email="dwy@example.com", name="", language="both", topics=["news"])
        add_subscriber(session, email="elsewhere@example.com", name="Not news")
        session.commit()
