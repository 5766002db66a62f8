"""/p/<token>: name, language, topics saved with a message; a new address only once confirmed from its mailbox."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from mailer.store.models import Language, SubscriberStatus
from mailer.store.topics import topic_names
from mailer.tokens import preferences_url
from mailer.web import create_app
from tests.web.helpers import events, form_action, form_token, fresh, link_in, main_text, outbox, same_origin


@pytest.fixture
def bilingual(settings, engine):
    """A list that sends in English and Welsh, so subscribers choose a language."""
    both = settings.model_copy(update={"languages": ["en", "cy"]})
    with TestClient(create_app(both, engine=engine), base_url=settings.base_url) as client:
        yield client


def _save(client, settings, subscriber, **fields):
    page = client.get(preferences_url(settings, subscriber.id)).text
    data = {"csrf": form_token(page), "name": subscriber.name, "email": subscriber.email, **fields}
    return client.post(form_action(page), data=data, headers=same_origin(settings))


def test_page_shows_name_address_and_topics(client, settings, person, topics):
    ann = person(name="Ann Jones", topics=["events"])
    page = client.get(preferences_url(settings, ann.id))
    assert page.status_code == 200
    assert 'value="Ann Jones"' in page.text and 'value="ann@example.org"' in page.text
    assert 'value="events" checked' in page.text and 'value="publications">' in page.text
    assert 'name="language"' not in page.text  # a one-language list has nothing to choose


def test_saving_name_language_and_topics(bilingual, settings, db, person, topics):
    ann = person(name="Ann", topics=["events"])
    saved = _save(bilingual, settings, ann, name="Ann Jones", language="both", topics=["publications"])
    assert saved.status_code == 200
    assert "Your changes are saved." in saved.text
    ann = fresh(db, ann)
    assert (ann.name, ann.language) == ("Ann Jones", Language.both)
    assert topic_names(db, ann.id) == ["publications"]
    assert events(db, ann)[-1] == ("preferences", "web")
    assert 'value="both" checked' in saved.text


def test_a_language_is_not_stored_on_a_one_language_list(client, settings, db, person):
    ann = person()
    assert _save(client, settings, ann, language="cy").status_code == 200
    assert fresh(db, ann).language == Language.en


@pytest.mark.parametrize("fields,message", [
    ({"email": "not an address"}, "Enter an email address"),
    ({"email": ""}, "Enter an email address"),
    ({"topics": ["no-such-topic"]}, "Choose from the topics listed."),
])
def test_bad_fields_are_named_and_nothing_is_saved(fields, message, client, settings, db, person, topics):
    ann = person(name="Ann")
    response = _save(client, settings, ann, name="Changed", **fields)
    assert response.status_code == 400
    assert message in response.text and "Nothing is saved yet" in response.text
    assert fresh(db, ann).name == "Ann"


def test_bad_language_is_named(bilingual, settings, db, person):
    ann = person()
    response = _save(bilingual, settings, ann, language="fr")
    assert response.status_code == 400 and "Choose one of the languages offered." in response.text


def test_new_address_changes_only_when_confirmed_from_it(client, settings, db, person):
    ann = person()
    saved = _save(client, settings, ann, email="Ann.New@Example.org")
    assert "We have sent a link to Ann.New@example.org" in saved.text
    assert fresh(db, ann).email == "ann@example.org"
    (message,) = outbox(settings)
    assert message["To"] == "Ann.New@example.org"
    link = link_in(message, "/email/")

    page = client.get(link)  # a scanner following the link changes nothing
    assert page.status_code == 200 and "Ann.New@example.org" in page.text
    assert fresh(db, ann).email == "ann@example.org"

    done = client.post(link, data={"csrf": form_token(page.text)}, headers=same_origin(settings))
    assert done.status_code == 200 and "Your address is changed" in done.text
    assert fresh(db, ann).email == "Ann.New@example.org"
    assert events(db, ann)[-1][0] == "email_changed"


def test_new_address_already_used_by_someone_else(client, settings, db, person):
    ann, bob = person(), person("bob@example.org")
    _save(client, settings, ann, email="bob@example.org")
    link = link_in(outbox(settings)[0], "/email/")
    page = client.get(link)
    done = client.post(link, data={"csrf": form_token(page.text)}, headers=same_origin(settings))
    assert done.status_code == 409 and "already subscribed" in done.text
    assert fresh(db, ann).email == "ann@example.org" and fresh(db, bob).email == "bob@example.org"


def test_unsubscribed_reader_is_told_and_offered_a_way_back(client, settings, db, person):
    from mailer.store import subscribers

    ann = person()
    subscribers.unsubscribe(db, subscriber_id=ann.id, channel="cli")
    db.commit()
    page = client.get(preferences_url(settings, ann.id))
    assert "You are not subscribed at the moment" in page.text and f"{settings.base_url}/u/" in page.text
    assert fresh(db, ann).status == SubscriberStatus.unsubscribed


def test_a_forged_save_changes_nothing(client, settings, db, person):
    ann = person(name="Ann")
    response = client.post(preferences_url(settings, ann.id), data={"name": "Mallory", "email": ann.email},
                           headers={"origin": "https://evil.example.net"})
    assert response.status_code == 400 and "Nothing has changed" in main_text(response.text)
    assert fresh(db, ann).name == "Ann"


def test_only_public_topics_are_shown_and_private_memberships_stay(client, settings, db, person, topics):
    """Finding 4: an internal "load test" topic appeared on every reader's preferences page."""
    from mailer.store.topics import add_topic

    add_topic(db, name="load-test", description="Load test", public=False)
    db.commit()
    ann = person(topics=["events", "load-test"])
    page = client.get(preferences_url(settings, ann.id)).text
    assert "load-test" not in page and "Load test" not in page
    assert 'value="events" checked' in page
    _save(client, settings, ann, topics=["publications"])
    assert topic_names(db, ann.id) == ["load-test", "publications"]
    refused = _save(client, settings, ann, topics=["load-test"])
    assert refused.status_code == 400 and "Choose from the topics listed." in refused.text
