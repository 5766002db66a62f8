"""/subscribe and /confirm/<token>: double opt-in, one answer for every address, abuse limits."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mailer.store import subscribers
from mailer.store.models import Subscriber, SubscriberStatus, utcnow
from mailer.store.topics import topic_names
from tests.web.helpers import events, form_action, form_token, fresh, link_in, main_text, outbox, same_origin


def _subscribe(client, settings, *, ip: str = "203.0.113.7", **fields):
    page = client.get("/subscribe").text
    data = {"csrf": form_token(page), "email": "new@example.org", "consent": "yes", **fields}
    return client.post(form_action(page), data=data, headers={**same_origin(settings), "x-test-ip": ip})


@pytest.fixture
def client(app, settings):
    """Requests from a chosen client address (`x-test-ip`), as uvicorn would set from the connection."""
    from fastapi.testclient import TestClient

    class ClientAddress:
        def __init__(self, inner):
            self.inner = inner

        async def __call__(self, scope, receive, send):
            if scope["type"] == "http":
                ip = dict(scope["headers"]).get(b"x-test-ip", b"198.51.100.1").decode()
                scope = {**scope, "client": (ip, 40000)}
            await self.inner(scope, receive, send)

    with TestClient(ClientAddress(app), base_url=settings.base_url, follow_redirects=False) as test_client:
        yield test_client


def _by_email(db, email: str) -> Subscriber | None:
    db.expire_all()
    return subscribers.get_by_email(db, email=email)


def test_form_shows_fields_consent_and_a_hidden_honeypot(client, topics):
    page = client.get("/subscribe")
    assert page.status_code == 200
    for label in ('for="email"', 'for="name"', 'for="consent"', 'for="topic-events"'):
        assert label in page.text
    assert "I can unsubscribe at any time" in page.text
    assert 'class="hp" aria-hidden="true"' in page.text and 'tabindex="-1"' in page.text


def test_double_opt_in(client, settings, db, topics):
    response = _subscribe(client, settings, email="New@Example.org", name="Nia", topics=["events"])
    assert response.status_code == 200 and "Check your email" in response.text
    nia = _by_email(db, "new@example.org")
    assert nia is not None and nia.status == SubscriberStatus.pending
    assert (nia.name, topic_names(db, nia.id)) == ("", [])  # the request waits apart until confirmed

    (message,) = outbox(settings)
    assert message["To"] == "New@example.org" and "Confirm your subscription" in message["Subject"]
    link = link_in(message, "/confirm/")
    page = client.get(link)  # what a link scanner does: nothing changes
    assert page.status_code == 200 and fresh(db, nia).status == SubscriberStatus.pending

    done = client.post(link, data={"csrf": form_token(page.text)}, headers=same_origin(settings))
    assert done.status_code == 200 and "You are subscribed" in done.text
    nia = fresh(db, nia)
    assert (nia.status, nia.name, nia.source) == (SubscriberStatus.active, "Nia", "web")
    assert "I can unsubscribe at any time" in nia.consent_text and topic_names(db, nia.id) == ["events"]
    assert events(db, nia)[-1] == ("confirmed", "link")
    assert "You are subscribed" in client.get(link).text  # following it again is harmless


def test_the_answer_is_the_same_whoever_the_address_belongs_to(client, settings, db, person):
    person("active@example.org")
    old = person("left@example.org")
    subscribers.unsubscribe(db, subscriber_id=old.id, channel="web")
    db.commit()
    db.get(Subscriber, old.id).status_changed_at = utcnow() - timedelta(days=30)
    db.commit()
    answers = {main_text(_subscribe(client, settings, email=email).text)
               for email in ("unknown@example.org", "active@example.org", "left@example.org", "unknown@example.org")}
    assert len(answers) == 1
    sent = {message["To"]: message for message in outbox(settings)}
    assert "already get" in sent["active@example.org"]["Subject"]  # told, with a preferences link, nothing changed
    assert "/p/" in link_in(sent["active@example.org"], "/p/")
    assert _by_email(db, "active@example.org").status == SubscriberStatus.active
    assert _by_email(db, "left@example.org").status == SubscriberStatus.unsubscribed  # until their link is followed


def test_honeypot_gets_the_same_answer_and_nothing_happens(client, settings, db):
    response = _subscribe(client, settings, website="http://spam.example")
    assert response.status_code == 200 and "Check your email" in response.text
    assert _by_email(db, "new@example.org") is None and outbox(settings) == []


@pytest.mark.parametrize("fields,message", [
    ({"consent": ""}, "Tick the box to say you agree."),
    ({"email": "nobody"}, "Enter an email address like name@example.org."),
    ({"email": ""}, "Enter an email address like name@example.org."),
    ({"topics": ["nope"]}, "Choose from the topics listed."),
])
def test_missing_or_bad_fields_are_named(fields, message, client, settings, db):
    response = _subscribe(client, settings, **fields)
    assert response.status_code == 400 and message in response.text
    assert outbox(settings) == []


def test_per_ip_limit(client, settings):
    for number in range(10):
        assert _subscribe(client, settings, email=f"r{number}@example.org").status_code == 200
    refused = _subscribe(client, settings, email="r10@example.org")
    assert refused.status_code == 429 and refused.headers["retry-after"] == "3600"
    assert _subscribe(client, settings, email="r11@example.org", ip="203.0.113.99").status_code == 200


def test_per_address_limit_caps_the_emails_not_the_answer(client, settings):
    for number in range(5):
        response = _subscribe(client, settings, email="again@example.org", ip=f"203.0.113.{number}")
        assert response.status_code == 200 and "Check your email" in response.text
    assert len(outbox(settings)) == 3


@pytest.mark.parametrize("stop", ["unsubscribed", "complained"])
def test_recently_stopped_address_is_mailed_only_when_it_asks_again(stop, client, settings, db, person):
    ann = person()
    if stop == "unsubscribed":
        subscribers.unsubscribe(db, subscriber_id=ann.id, channel="one-click")
    else:
        subscribers.mark_complained(db, subscriber_id=ann.id, detail="abuse report")
    db.commit()
    first = _subscribe(client, settings, email="ann@example.org")
    assert "Check your email" in first.text
    assert outbox(settings) == [] and fresh(db, ann).status == stop

    _subscribe(client, settings, email="ann@example.org", ip="203.0.113.50")  # the person, trying again
    (message,) = outbox(settings)
    link = link_in(message, "/confirm/")
    assert fresh(db, ann).status == stop  # asking changes nothing; the link does
    page = client.get(link)
    client.post(link, data={"csrf": form_token(page.text)}, headers=same_origin(settings))
    assert fresh(db, ann).status == SubscriberStatus.active


@pytest.mark.parametrize("stop", ["unsubscribe", "mark_bounced", "mark_complained"])
def test_a_stranger_cannot_undo_an_unsubscribe(stop, client, settings, db, person, topics, tmp_path):
    """Finding 3: the form overwrote a stopped subscriber and set them pending; the next import confirmed them."""
    from mailer.store.csvio import import_csv

    ann = person(name="Ann", language="cy", topics=["publications"], consent_text="in person")
    getattr(subscribers, stop)(db, subscriber_id=ann.id, **({"channel": "web"} if stop == "unsubscribe" else {"detail": "x"}))
    db.get(Subscriber, ann.id).status_changed_at = utcnow() - timedelta(days=30)
    db.commit()
    before = fresh(db, ann)
    kept = (before.status, before.name, before.language, before.source, before.consent_text)
    _subscribe(client, settings, email="ann@example.org", name="Stranger", language="en", topics=["events"])
    after = fresh(db, ann)
    assert (after.status, after.name, after.language, after.source, after.consent_text) == kept
    assert topic_names(db, ann.id) == ["publications"]

    routine = tmp_path / "members.csv"
    routine.write_text("email,name\nann@example.org,Ann\n")
    import_csv(db, path=routine)  # the next routine import
    db.commit()
    assert fresh(db, ann).status == kept[0]


def test_the_form_offers_public_topics_with_the_default_ones_ticked(client, settings, db):
    """Finding 4: a web subscriber who ticked nothing was in no topic; an internal topic was on every page."""
    from mailer.store.topics import add_topic

    add_topic(db, name="news", description="Monthly news", default=True)
    add_topic(db, name="events", description="Events and gatherings")
    add_topic(db, name="load-test", description="Load test", public=False)
    db.commit()
    page = client.get("/subscribe").text
    assert 'id="topic-news" checked disabled' in page and 'value="events"' in page
    assert "load-test" not in page and "Load test" not in page
    assert page.index("topic-news") < page.index("topic-events")  # what everyone gets first
    refused = _subscribe(client, settings, email="x@example.org", topics=["load-test"])
    assert refused.status_code == 400 and "Choose from the topics listed." in refused.text

    _subscribe(client, settings, email="nia@example.org")  # nothing ticked
    (message,) = outbox(settings)
    link = link_in(message, "/confirm/")
    client.post(link, data={"csrf": form_token(client.get(link).text)}, headers=same_origin(settings))
    nia = _by_email(db, "nia@example.org")
    assert (nia.status, topic_names(db, nia.id)) == (SubscriberStatus.active, ["news"])


def test_an_old_confirmation_link_does_not_bring_back_someone_who_left(client, settings, db):
    _subscribe(client, settings)
    link = link_in(outbox(settings)[0], "/confirm/")
    nia = _by_email(db, "new@example.org")
    subscribers.unsubscribe(db, subscriber_id=nia.id, channel="web")
    db.commit()
    page = client.get(link)
    assert page.status_code == 400 and "This link is not valid" in page.text


def test_a_forged_confirmation_changes_nothing(client, settings, db):
    _subscribe(client, settings)
    link = link_in(outbox(settings)[0], "/confirm/")
    response = client.post(link, data={}, headers={"origin": "https://evil.example.net"})
    assert response.status_code == 400
    assert _by_email(db, "new@example.org").status == SubscriberStatus.pending


def test_welsh_form_and_welsh_confirmation_email(client, settings, db):
    page = client.get("/subscribe", headers={"accept-language": "cy-GB,cy;q=0.9,en;q=0.5"})
    assert '<html lang="cy">' in page.text and "Tanysgrifio" in page.text
    client.post(form_action(page.text), data={"csrf": form_token(page.text), "email": "nia@example.org",
                                               "consent": "yes"}, headers=same_origin(settings))
    (message,) = outbox(settings)
    assert message["Subject"].startswith("Cadarnhewch eich tanysgrifiad")
    assert "mae’n debyg" in message.get_body(("plain",)).get_content()


def test_a_name_from_the_form_is_cleaned_as_everywhere_else(client, settings, db):
    """Finding 2: names are cleaned on every way in (here the form; CSV and `subscribers add` in tests/store)."""
    _subscribe(client, settings, email="nia@example.org", name="Nia\r\n  Jones\x00\u202e " + "x" * 300)
    (message,) = outbox(settings)
    link = link_in(message, "/confirm/")
    client.post(link, data={"csrf": form_token(client.get(link).text)}, headers=same_origin(settings))
    name = _by_email(db, "nia@example.org").name
    assert name.startswith("Nia Jones x") and len(name) == 200


def test_each_confirmation_link_applies_its_own_request(client, settings, db, topics):
    """A later request by a stranger (same address, their name and topics) must not ride on the reader's own link."""
    _subscribe(client, settings, email="nia@example.org", name="Nia", topics=["events"])
    _subscribe(client, settings, ip="198.51.100.9", email="nia@example.org", name="Stranger", topics=["publications"])
    own, strangers = (link_in(message, "/confirm/") for message in outbox(settings))
    assert own != strangers

    client.post(own, data={"csrf": form_token(client.get(own).text)}, headers=same_origin(settings))
    nia = subscribers.get_by_email(db, email="nia@example.org")
    db.refresh(nia)
    assert (nia.status, nia.name) == ("active", "Nia")
    assert topic_names(db, nia.id) == ["events"]
    assert subscribers.open_request(db, subscriber_id=nia.id) is None  # the stranger's request went with it

    page = client.get(strangers)
    assert "Stranger" not in page.text and 'name="csrf"' not in page.text  # nothing left to confirm
    db.refresh(nia)
    assert nia.name == "Nia" and topic_names(db, nia.id) == ["events"]
