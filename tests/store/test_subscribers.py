"""The service layer: every status change is written with its event, and addresses are one per person."""

from __future__ import annotations

from datetime import timedelta

import pytest
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, update
from sqlmodel import Session

from mailer.errors import NotFound
from mailer.store import subscribers as service
from mailer.store.models import (
    Bounce,
    BounceKind,
    Delivery,
    Event,
    ForgottenAddress,
    Send,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from mailer.store.topics import topic_names


def events(session: Session, subscriber_id: int) -> list[tuple[str, str]]:
    query = select(Event.kind, Event.channel).where(Event.subscriber_id == subscriber_id).order_by(Event.id)
    return [(kind, channel) for kind, channel in session.execute(query)]


def add(session: Session, email: str = "Gwen@Example.ORG", **kwargs) -> Subscriber:
    subscriber = service.add_subscriber(session, email=email, **kwargs)
    session.commit()
    return subscriber


def test_add_normalises_the_address_and_keeps_welsh_names_exactly(session, topics):
    subscriber = add(session, name="Gwenllïan ap Rhys", language="cy", topics=["news"])
    session.expire_all()
    stored = session.get(Subscriber, subscriber.id)
    assert (stored.email, stored.email_key) == ("Gwen@example.org", "gwen@example.org")
    assert stored.name == "Gwenllïan ap Rhys"
    assert (stored.status, stored.language) == (SubscriberStatus.active, "cy")
    assert stored.confirmed_at is not None
    assert topic_names(session, stored.id) == ["news"]
    assert events(session, stored.id) == [("subscribed", "cli")]


def test_an_address_is_unique_whatever_its_case(session):
    add(session)
    with pytest.raises(service.AlreadySubscribed, match="already a subscriber"):
        service.add_subscriber(session, email="  gwen@EXAMPLE.org ")


@pytest.mark.parametrize("email", ["gwen", "gwen@", "gwen@@example.org", "gwen@example", ""])
def test_invalid_addresses_are_refused_with_the_reason(session, email):
    with pytest.raises(service.InvalidEmail, match="not a valid email address"):
        service.add_subscriber(session, email=email)


LONG_DOMAIN = ".".join(["b" * 63] * 3) + ".org"  # 195 characters
ADDRESSES = [
    "Person1@Example1.ORG", "a.b+c_d@example.org", " gwen@EXAMPLE.org ", "o'brien@example.ie", "x{y}|z~@example.org",
    "Postmaster@Example.org", "INFO@example.org",  # mailbox names email-validator lower-cases
    "gwen@bücher.example", "gwen@BÜCHER.example", "gwen@xn--bcher-kva.example", "gwen@example.cymru",
    "siân@example.org", '"gwen"@example.org', '"gw en"@example.org', "Gwen <gwen@example.org>", "gwen@[192.0.2.1]",
    "gwen@example", "gwen@localhost", "gwen@example.test", "gwen@x.local", "gwen@example.123", "gwen@-example.org",
    "gwen@example-.org", "gwen@exa_mple.org", "gwen@example..org", "gwen@.example.org", "gwen@example.org.",
    ".gwen@example.org", "gwen.@example.org", "gw..en@example.org", "gwen@example.org>", "gwen@exa mple.org",
    "gwen@exa<mple.org", "a@b@example.org", "@example.org", "gwen@", "", "   ",
    "a" * 58 + "@" + LONG_DOMAIN, "a" * 59 + "@" + LONG_DOMAIN,  # 254 characters, the most allowed, and 255
    "a" * 232 + "@bücher.example", "a" * 233 + "@bücher.example",  # too long only in IDNA ASCII form
]


@pytest.mark.parametrize("email", ADDRESSES)
def test_normalise_email_gives_exactly_what_email_validator_gives(email):
    """The short path for plain addresses (domain checked once per domain) agrees with email-validator, twice over."""
    try:
        expected = validate_email(email.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        for _ in range(2):
            with pytest.raises(service.InvalidEmail, match="not a valid email address"):
                service.normalise_email(email)
    else:
        for _ in range(2):
            assert service.normalise_email(email) == (expected, expected.lower())


def test_unknown_topic_and_language_are_refused(session, topics):
    with pytest.raises(NotFound, match="unknown topic 'sport'.*known: events, news"):
        service.add_subscriber(session, email="a@example.org", topics=["sport"])
    with pytest.raises(service.StoreError, match="unknown language 'fr'"):
        service.add_subscriber(session, email="a@example.org", language="fr")


def test_get_by_email_ignores_case_and_bad_input(session):
    subscriber = add(session)
    assert service.get_by_email(session, email="GWEN@example.org").id == subscriber.id
    assert service.get_by_email(session, email="nobody@example.org") is None
    assert service.get_by_email(session, email="not an address") is None


def test_subscribe_pending_then_confirm(session, topics):
    subscriber = service.subscribe_pending(
        session, email="dafydd@example.org", name="Dafydd", language="cy", topics=["events"],
        source="web", consent_text="Yes, send me the newsletter",
    )
    session.commit()
    assert subscriber.status == SubscriberStatus.pending
    assert subscriber.confirmed_at is None
    service.confirm(session, subscriber_id=subscriber.id)
    service.confirm(session, subscriber_id=subscriber.id)  # a second click changes nothing
    session.commit()
    assert subscriber.status == SubscriberStatus.active
    assert subscriber.consent_text == "Yes, send me the newsletter"
    assert events(session, subscriber.id) == [("subscribed", "web"), ("confirmed", "link")]


def test_the_form_never_rewrites_an_active_subscriber(session, topics):
    subscriber = add(session, name="Gwen", topics=["news"])
    again = service.subscribe_pending(
        session, email="gwen@example.org", name="Someone else", language="en", topics=["events"], source="web", consent_text="",
    )
    assert again.id == subscriber.id
    assert (again.status, again.name) == (SubscriberStatus.active, "Gwen")
    assert topic_names(session, subscriber.id) == ["news"]


@pytest.mark.parametrize("stop", ["unsubscribe", "mark_bounced", "mark_complained"])
def test_a_subscribe_request_changes_nothing_until_its_link_is_confirmed(session, topics, stop):
    """Finding 3: posting someone's address to the form rewrote a stopped subscriber and made them pending."""
    subscriber = add(session, name="Gwen", topics=["news"])
    kwargs = {"channel": "link"} if stop == "unsubscribe" else {"detail": "550"}
    getattr(service, stop)(session, subscriber_id=subscriber.id, **kwargs)
    stopped = subscriber.status
    before = (subscriber.name, subscriber.language, subscriber.source, subscriber.consent_text, subscriber.status_changed_at)
    service.subscribe_pending(
        session, email=subscriber.email, name="A stranger", language="cy", topics=["events"], source="web", consent_text="ok",
    )
    session.commit()
    session.refresh(subscriber)
    assert subscriber.status == stopped
    assert (subscriber.name, subscriber.language, subscriber.source, subscriber.consent_text, subscriber.status_changed_at) == before
    assert topic_names(session, subscriber.id) == ["news"]
    request = service.open_request(session, subscriber_id=subscriber.id)
    assert (request.name, request.language, request.topics, request.consent_text) == ("A stranger", "cy", "events", "ok")

    service.confirm(session, subscriber_id=subscriber.id)  # only the emailed link applies it
    session.commit()
    assert (subscriber.status, subscriber.name, subscriber.language, subscriber.consent_text) == ("active", "A stranger", "cy", "ok")
    assert topic_names(session, subscriber.id) == ["events"]
    assert service.open_request(session, subscriber_id=subscriber.id) is None
    assert [kind for kind, _ in events(session, subscriber.id)][-2:] == ["subscribed", "confirmed"]


def test_a_new_address_from_the_form_is_pending_with_nothing_but_the_address(session, topics):
    subscriber = service.subscribe_pending(
        session, email="new@example.org", name="New", language="cy", topics=["events"], source="web", consent_text="ok",
    )
    session.commit()
    assert (subscriber.status, subscriber.name, subscriber.consent_text) == ("pending", "", "")
    assert topic_names(session, subscriber.id) == []
    service.confirm(session, subscriber_id=subscriber.id)
    assert (subscriber.status, subscriber.name, subscriber.language, subscriber.source) == ("active", "New", "cy", "web")
    assert topic_names(session, subscriber.id) == ["events"]


def test_unsubscribing_drops_a_waiting_request(session, topics):
    subscriber = add(session)
    service.unsubscribe(session, subscriber_id=subscriber.id, channel="link")
    service.subscribe_pending(session, email=subscriber.email, name="X", language="en", topics=[], source="web", consent_text="")
    service.unsubscribe(session, subscriber_id=subscriber.id, channel="link")
    service.confirm(session, subscriber_id=subscriber.id)
    assert subscriber.status == SubscriberStatus.unsubscribed


def test_an_old_confirm_link_never_reactivates(session):
    subscriber = add(session)
    service.unsubscribe(session, subscriber_id=subscriber.id, channel="link")
    service.confirm(session, subscriber_id=subscriber.id)
    assert subscriber.status == SubscriberStatus.unsubscribed


def test_unsubscribe_records_its_channel_once_and_resubscribe_undoes_it(session):
    subscriber = add(session)
    session.add(send := Send(issue_slug="2024-05", content=b"{}"))
    session.commit()
    service.unsubscribe(session, subscriber_id=subscriber.id, channel="one-click", send_id=send.id)
    service.unsubscribe(session, subscriber_id=subscriber.id, channel="link")
    session.commit()
    assert subscriber.status == SubscriberStatus.unsubscribed
    event = session.scalars(select(Event).where(Event.kind == "unsubscribed")).one()
    assert (event.channel, event.send_id) == ("one-click", send.id)
    service.resubscribe(session, subscriber_id=subscriber.id, channel="cli")
    session.commit()
    assert subscriber.status == SubscriberStatus.active
    assert events(session, subscriber.id)[-1] == ("resubscribed", "cli")


def test_status_is_read_fresh_not_cached(engine, session):
    """An unsubscribe from another session (the web page) is seen by a session already open (the sender)."""
    subscriber = add(session)
    from mailer.store.db import new_session

    with new_session(engine) as web:
        service.unsubscribe(web, subscriber_id=subscriber.id, channel="link")
        web.commit()
    assert service.get_subscriber(session, subscriber_id=subscriber.id).status == SubscriberStatus.unsubscribed


def test_update_preferences_writes_what_changed_without_personal_data(session, topics):
    subscriber = add(session, name="Gwen", topics=["news"])
    service.update_preferences(session, subscriber_id=subscriber.id, name="Gwenllïan", language="cy", topics=["events"])
    session.commit()
    assert (subscriber.name, subscriber.language) == ("Gwenllïan", "cy")
    assert topic_names(session, subscriber.id) == ["events"]
    detail = session.scalars(select(Event.detail).where(Event.kind == "preferences")).one()
    assert detail == "name changed; language en -> cy; +events; -news"
    service.update_preferences(session, subscriber_id=subscriber.id, name="Gwenllïan")  # no change, no event
    assert session.scalar(select(Event.id).where(Event.kind == "preferences").offset(1)) is None


def test_change_email(session):
    subscriber = add(session)
    other = add(session, email="other@example.org")
    with pytest.raises(service.AlreadySubscribed):
        service.change_email(session, subscriber_id=subscriber.id, new_email="OTHER@example.org")
    service.change_email(session, subscriber_id=subscriber.id, new_email="gwen@newmail.example")
    session.commit()
    assert subscriber.email_key == "gwen@newmail.example"
    assert events(session, subscriber.id)[-1] == ("email_changed", "")
    assert other.email_key == "other@example.org"


def test_bounce_and_complaint_stop_mail_and_are_recorded(session):
    bounced, complained = add(session, email="b@example.org"), add(session, email="c@example.org")
    service.mark_bounced(session, subscriber_id=bounced.id, detail="550 5.1.1 no such user")
    service.mark_complained(session, subscriber_id=complained.id, detail="abuse report")
    session.commit()
    assert (bounced.status, complained.status) == (SubscriberStatus.bounced, SubscriberStatus.complained)
    assert events(session, bounced.id)[-1] == ("bounced", "")
    # An unsubscribed address that bounces stays unsubscribed; the fact is kept.
    left = add(session, email="left@example.org")
    service.unsubscribe(session, subscriber_id=left.id, channel="cli")
    service.mark_bounced(session, subscriber_id=left.id, detail="550")
    assert left.status == SubscriberStatus.unsubscribed
    assert events(session, left.id)[-1] == ("bounced", "")


@pytest.mark.parametrize("stop", ["mark_bounced", "mark_complained"])
def test_unsubscribing_a_bounced_or_complained_subscriber_keeps_that_status(session, stop):
    """Finding 3: the unsubscribe link turned a complaint into a plain unsubscribe, which --resubscribe undoes."""
    subscriber = add(session)
    getattr(service, stop)(session, subscriber_id=subscriber.id, detail="550")
    status = subscriber.status
    for channel in ("link", "one-click", "web"):
        service.unsubscribe(session, subscriber_id=subscriber.id, channel=channel)
    session.commit()
    assert subscriber.status == status
    assert events(session, subscriber.id)[-3:] == [("unsubscribed", "link"), ("unsubscribed", "one-click"), ("unsubscribed", "web")]


def test_soft_bounces_mark_bounced_at_the_limit_within_the_window(session):
    subscriber = add(session)
    # Active since long ago, so the window (not the status change) bounds the count.
    session.execute(update(Subscriber).values(status_changed_at=utcnow() - timedelta(days=400)))
    old = Event(subscriber_id=subscriber.id, kind="soft_bounce", created_at=utcnow() - timedelta(days=40))
    session.add(old)
    session.commit()
    marks = [
        service.record_soft_bounce(session, subscriber_id=subscriber.id, detail="452 mailbox full", limit=3, window_days=30)
        for _ in range(3)
    ]
    assert marks == [False, False, True]
    assert service.get_subscriber(session, subscriber_id=subscriber.id).status == SubscriberStatus.bounced
    detail = session.scalars(select(Event.detail).where(Event.kind == "bounced")).one()
    assert detail.startswith("3 soft bounces within 30 days")


def test_soft_bounces_before_resubscribing_do_not_count(session):
    subscriber = add(session)
    for _ in range(3):
        service.record_soft_bounce(session, subscriber_id=subscriber.id, detail="452", limit=3, window_days=30)
    assert subscriber.status == SubscriberStatus.bounced
    # Resubscribing a moment later starts the count afresh.
    session.execute(update(Event).values(created_at=utcnow() - timedelta(seconds=5)))
    service.resubscribe(session, subscriber_id=subscriber.id)
    assert service.record_soft_bounce(session, subscriber_id=subscriber.id, detail="452", limit=3, window_days=30) is False
    assert subscriber.status == SubscriberStatus.active


def test_forget_erases_personal_data_and_keeps_a_salted_hash(session, topics):
    subscriber = add(session, name="Gwenllïan ap Rhys", topics=["news"], consent_text="signed up at the Eisteddfod")
    send = Send(issue_slug="2024-05", content=b"{}")
    session.add(send)
    session.flush()
    delivery = Delivery(send_id=send.id, subscriber_id=subscriber.id, email=subscriber.email, reply="550 <gwen@example.org> unknown")
    session.add(delivery)
    session.flush()
    session.add(Bounce(kind=BounceKind.permanent, subscriber_id=subscriber.id, delivery_id=delivery.id,
                       address="gwen@example.org", diagnostic="550 5.1.1 <Gwen@example.org>: unknown user"))
    service.mark_bounced(session, subscriber_id=subscriber.id, detail="550 <gwen@example.org> unknown", send_id=send.id)
    session.commit()

    forgotten = service.forget(session, email="GWEN@example.org", salt="salt-0123456789abcdef")
    session.commit()
    session.expire_all()

    stored = session.get(Subscriber, subscriber.id)
    assert forgotten.id == subscriber.id
    assert (stored.email, stored.email_key) == (f"forgotten-{stored.id}@invalid",) * 2
    assert (stored.name, stored.consent_text, stored.status) == ("", "", SubscriberStatus.unsubscribed)
    assert topic_names(session, stored.id) == []
    everything = " ".join(
        [*session.scalars(select(Event.detail)), *session.scalars(select(Bounce.address)),
         *session.scalars(select(Bounce.diagnostic)), *session.scalars(select(Delivery.email)),
         *session.scalars(select(Delivery.reply))]
    ).lower()
    assert "gwen" not in everything
    # Non-personal facts stay: what happened, when, through which send.
    assert [kind for kind, _ in events(session, stored.id)] == ["subscribed", "bounced", "unsubscribed", "forgotten"]
    expected = service.forgotten_hash("gwen@example.org", "salt-0123456789abcdef")
    assert session.scalars(select(ForgottenAddress.address_hash)).all() == [expected]
    assert service.is_forgotten(session, email_key="gwen@example.org", salts=["old-salt", "salt-0123456789abcdef"])
    assert service.get_by_email(session, email="gwen@example.org") is None


def test_forget_an_unknown_address_still_blocks_it_and_forgetting_twice_is_harmless(session):
    assert service.forget(session, email="stranger@example.org", salt="s" * 20) is None
    assert service.forget(session, email="stranger@example.org", salt="s" * 20) is None
    session.commit()
    assert len(session.scalars(select(ForgottenAddress)).all()) == 1
    with pytest.raises(service.ForgottenEmail, match="erased on request"):
        service.add_subscriber(session, email="Stranger@example.org", salts=["s" * 20])


def test_audience_query_streams_active_subscribers_in_topics_and_languages(session, topics):
    news_en = add(session, email="a@example.org", topics=["news"])
    both_cy = add(session, email="b@example.org", topics=["news", "events"], language="cy")
    events_en = add(session, email="c@example.org", topics=["events"])
    gone = add(session, email="d@example.org", topics=["news"])
    service.unsubscribe(session, subscriber_id=gone.id, channel="cli")
    add(session, email="e@example.org")  # in no topic
    session.commit()

    def ids(**kwargs) -> list[int]:
        return [row.id for row in session.execute(service.audience_query(**kwargs)).yield_per(2)]

    assert ids(topics=["news"]) == [news_en.id, both_cy.id]
    assert ids(topics=["news", "events"]) == [news_en.id, both_cy.id, events_en.id]
    assert ids(topics=["news"], languages=["cy"]) == [both_cy.id]
    assert len(ids()) == 4
    row = session.execute(service.audience_query(topics=["events"], languages=["cy"])).one()
    assert tuple(row) == (both_cy.id, "b@example.org", "", "cy")


def test_missing_subscriber_is_not_found(session):
    with pytest.raises(NotFound, match="no subscriber with id 999"):
        service.unsubscribe(session, subscriber_id=999, channel="cli")
