"""Welsh readers meet Welsh: the list's name, its postal address and the topics, on every page and notice."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from mailer.config import Settings
from mailer.store.topics import add_topic
from mailer.web import create_app
from tests.web.helpers import form_action, form_token, main_text, outbox, same_origin

NAMES = {"en": "Network News", "cy": "Newyddion y Rhwydwaith"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={
        "languages": ["en", "cy"], "list_name": NAMES,
        "postal_address": {"en": "1 Example Street, Cardiff", "cy": "1 Stryd Enghraifft, Caerdydd"},
    })


@pytest.fixture
def client(settings, engine):
    with TestClient(create_app(settings, engine=engine), base_url=settings.base_url, follow_redirects=False) as client:
        yield client


@pytest.fixture
def topics(db):
    add_topic(db, name="events", label="Events", label_cy="Digwyddiadau",
              description="Gatherings and workshops near you", description_cy="Cyfarfodydd a gweithdai yn agos atoch")
    add_topic(db, name="reports", description="New reports and papers")  # no Welsh yet: English shows
    db.commit()


def test_welsh_pages_name_the_list_and_the_topics_in_welsh(client, topics):
    welsh = client.get("/subscribe?lang=cy").text
    assert "Newyddion y Rhwydwaith" in welsh and "Network News" not in welsh
    assert "1 Stryd Enghraifft, Caerdydd" in welsh
    assert "Digwyddiadau" in welsh and "Cyfarfodydd a gweithdai yn agos atoch" in welsh
    assert "Gatherings and workshops" not in welsh and ">Events<" not in welsh
    assert 'aria-describedby="topic-events-hint"' in welsh
    assert "New reports and papers" in welsh  # a topic without Welsh falls back to its English text

    english = client.get("/subscribe?lang=en").text
    assert "Network News" in english and "Newyddion y Rhwydwaith" not in english
    assert ">Events<" in english and "Gatherings and workshops near you" in english


def test_welsh_confirmation_email_and_consent_name_the_list_in_welsh(client, settings, db, topics):
    page = client.get("/subscribe?lang=cy").text
    consent = "Anfonwch Newyddion y Rhwydwaith ataf"
    assert consent in page
    client.post(form_action(page), data={"csrf": form_token(page), "email": "nia@example.org", "consent": "yes",
                                         "language": "cy"}, headers=same_origin(settings))
    (message,) = outbox(settings)
    body = message.get_body(("plain",)).get_content()
    assert "Newyddion y Rhwydwaith" in message["Subject"] and "Newyddion y Rhwydwaith" in body
    assert "Network News" not in message["Subject"] + body


def test_one_name_for_every_language_still_works(client, settings, engine):
    plain = settings.model_copy(update={"list_name": "Network News", "postal_address": "Cardiff"})
    with TestClient(create_app(plain, engine=engine), base_url=settings.base_url) as english_only:
        assert "Network News" in main_text(english_only.get("/subscribe?lang=cy").text)
