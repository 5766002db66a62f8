"""Subscriber services: the one way anyone changes a subscriber, each change written with its `Event`.

The CLI, the web pages, the sender and the bounce reader all come through here,
so a status change is recorded the same way whoever makes it. Every function
takes a `Session` and keyword arguments, flushes, and leaves the commit to the
caller: a web request, a bounce or a whole CSV import is then one transaction.
Nothing is cached, so the delivery engine, which re-reads the status before each
message, sees an unsubscribe at once, even in the middle of a send.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Sequence
from datetime import timedelta
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, DOT_ATOM_TEXT, EMAIL_MAX_LENGTH
from sqlalchemy import delete, func
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import Select

from mailer.errors import NotFound, StoreError
from mailer.store.models import (
    Bounce,
    Delivery,
    Event,
    EventKind,
    ForgottenAddress,
    Language,
    Subscriber,
    SubscribeRequest,
    SubscriberStatus,
    SubscriberTopic,
    Topic,
    stored_id,
    utcnow,
)
from mailer.store.topics import default_topics, resolve_topics, topic_names

# Statuses a subscriber leaves only by asking again (`resubscribe`, or the subscribe form).
STOPPED = (SubscriberStatus.unsubscribed, SubscriberStatus.bounced, SubscriberStatus.complained)
# `forget` blanks an address to forgotten-<id>@invalid, which no valid address can be (no dot in the domain).
FORGOTTEN_SUFFIX = "@invalid"
# Subscribers `forget` has not blanked: listings and exports leave the blanked rows out.
REMEMBERED = ~col(Subscriber.email_key).endswith(FORGOTTEN_SUFFIX)
# A stop that unsubscribing must not hide: the address bounced, or its owner called the mail spam.
HARD_STOPS = (SubscriberStatus.bounced, SubscriberStatus.complained)
NAME_LENGTH = 200
SOURCE_LENGTH = 64
# How long a subscribe request is kept for its link: longer than any sensible `confirm_token_days`.
REQUEST_LIFETIME = timedelta(days=30)
_WHITESPACE = re.compile(r"\s+")
_JOINERS = {"\u200c", "\u200d"}  # zero-width (non-)joiners belong to how some names and emoji are written


class InvalidEmail(StoreError):
    """An address email-validator refuses; the message says why."""


class AlreadySubscribed(StoreError):
    """The address (compared case-insensitively) already belongs to a subscriber."""


class ForgottenEmail(StoreError):
    """The address was erased on request and must not come back by accident."""


def normalise_email(email: str) -> tuple[str, str]:
    """The address as email-validator normalises it, and its lower-case key (what must be unique)."""
    email = email.strip()
    normalised = _plain_address(email)
    if normalised is None:
        try:
            normalised = validate_email(email, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise InvalidEmail(f"{email!r} is not a valid email address: {exc}") from None
    return normalised, normalised.lower()


def _plain_address(email: str) -> str | None:
    """What email-validator makes of a plain address, its domain checked once per domain; else None.

    Most of email-validator's time goes on the domain (IDNA checks) and a list
    has few domains, so this makes a CSV import about 1.7 times as fast. Only
    the common shape is taken: an ASCII dot-atom local part, which
    email-validator keeps as it is. The result is then email-validator's own
    (same domain form, same length limit; a test compares the two). Anything
    else, valid or not, goes through email-validator whole.
    """
    local, _, domain = email.rpartition("@")
    if not DOT_ATOM_TEXT.match(local) or local.lower() in CASE_INSENSITIVE_MAILBOX_NAMES:
        return None
    forms = _domain_forms(domain)
    if forms is None or len(local) + 1 + max(len(form.encode()) for form in (domain, *forms)) > EMAIL_MAX_LENGTH:
        return None
    return f"{local}@{forms[0]}"


@lru_cache(maxsize=10_000)
def _domain_forms(domain: str) -> tuple[str, str] | None:
    """The domain as email-validator normalises it, and in IDNA ASCII; None unless it is a valid domain name."""
    probe = f"x@{domain}"
    try:
        checked = validate_email(probe, check_deliverability=False)
    except EmailNotValidError:
        return None
    if checked.original != probe or checked.display_name is not None:  # `domain` was not read as one domain name
        return None
    return checked.domain, checked.ascii_domain


def clean_text(value: str, limit: int | None = None) -> str:
    """One line of text from outside, made safe to store and to put in a header.

    Every run of whitespace (line breaks and tabs included) becomes one space,
    control and invisible formatting characters (NUL, bidirectional overrides...)
    are removed, and the result is cut to `limit` characters.
    """
    if value.isprintable() and "  " not in value:  # the usual name: only the ends and the length to see to
        kept = value
    else:
        spaced = _WHITESPACE.sub(" ", value)
        kept = "".join(ch for ch in spaced if ch in _JOINERS or unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))
        kept = _WHITESPACE.sub(" ", kept)  # a character removed between two spaces leaves them side by side
    return kept.strip()[:limit].strip() if limit else kept.strip()


def clean_name(value: str) -> str:
    """A subscriber's name as stored, whichever way it came in (form, CSV, command line): see `clean_text`."""
    return clean_text(value, NAME_LENGTH)


def parse_language(value: str) -> Language:
    try:
        return Language(value.strip().lower())
    except ValueError:
        raise StoreError(f"unknown language {value!r} (use {', '.join(Language)})") from None


def forgotten_hash(email_key: str, salt: str) -> str:
    """HMAC-SHA256 of the address key: recognisable again with the salt, unreadable without it."""
    return hmac.new(salt.encode(), email_key.encode(), hashlib.sha256).hexdigest()


def is_forgotten(session: Session, *, email_key: str, salts: Sequence[str]) -> bool:
    """Whether the address was erased; `salts` are the current and old secret keys."""
    hashes = [forgotten_hash(email_key, salt) for salt in salts]
    return session.scalar(select(ForgottenAddress.id).where(col(ForgottenAddress.address_hash).in_(hashes))) is not None


def get_subscriber(session: Session, *, subscriber_id: int) -> Subscriber:
    subscriber = session.get(Subscriber, subscriber_id, populate_existing=True)
    if subscriber is None:
        raise NotFound(f"no subscriber with id {subscriber_id}")
    return subscriber


def get_by_email(session: Session, *, email: str) -> Subscriber | None:
    """The subscriber with this address in any case, or None (also for an invalid address)."""
    try:
        _, key = normalise_email(email)
    except InvalidEmail:
        return None
    return session.scalar(select(Subscriber).where(Subscriber.email_key == key).execution_options(populate_existing=True))


def require_by_email(session: Session, *, email: str) -> Subscriber:
    subscriber = get_by_email(session, email=email)
    if subscriber is None:
        raise NotFound(f"no subscriber with address {email.strip()!r}")
    return subscriber


def add_subscriber(
    session: Session,
    *,
    email: str,
    name: str = "",
    language: Language | str = Language.en,
    topics: Sequence[str] = (),
    source: str = "cli",
    consent_text: str = "",
    salts: Sequence[str] = (),
) -> Subscriber:
    """Add an active subscriber whose consent the caller already has (an editor, an import).

    They join the default topics as well as `topics`. `salts` (the secret keys)
    turn on the check against erased addresses.
    """
    email, key = normalise_email(email)
    existing = session.scalar(select(Subscriber).where(Subscriber.email_key == key))
    if existing is not None:
        raise AlreadySubscribed(f"{email} is already a subscriber ({existing.status})")
    if salts and is_forgotten(session, email_key=key, salts=salts):
        raise ForgottenEmail(f"{email} was forgotten (erased on request); they can subscribe again themselves")
    language, wanted = parse_language(language), resolve_topics(session, topics)
    now = utcnow()
    subscriber = Subscriber(
        email=email, email_key=key, name=clean_name(name), language=language,
        status=SubscriberStatus.active, source=clean_text(source, SOURCE_LENGTH), consent_text=clean_text(consent_text),
        created_at=now, confirmed_at=now, status_changed_at=now,
    )
    session.add(subscriber)
    session.flush()
    _link_topics(session, stored_id(subscriber), _with_defaults(session, wanted))
    _record(session, subscriber, EventKind.subscribed, channel=subscriber.source)
    return subscriber


def subscribe_pending(
    session: Session, *, email: str, name: str, language: Language | str, topics: Sequence[str], source: str, consent_text: str
) -> Subscriber:
    """Someone asked to subscribe (the web form): keep the request apart until the emailed link confirms it.

    Anyone can post anyone's address, so nothing about an existing subscriber
    changes here: not their status (an unsubscribed, bounced or complained
    person stays so), name, language, topics or consent. The request (what was
    asked, the consent wording, when) waits in its own table, and `confirm`
    applies the one its link names: a later request, perhaps a stranger's,
    never rides on an earlier link. Requests older than `REQUEST_LIFETIME` are
    dropped. A new address becomes a `pending` subscriber with nothing but the
    address. An active subscriber is returned unchanged and gets no request.
    `topics` must be public ones; `open_request` finds the request just made.
    """
    email, key = normalise_email(email)
    language = parse_language(language)
    wanted = resolve_topics(session, topics, public_only=True)
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email_key == key))
    if subscriber is not None and subscriber.status == SubscriberStatus.active:
        return subscriber
    source = clean_text(source, SOURCE_LENGTH)
    if subscriber is None:
        subscriber = Subscriber(email=email, email_key=key)
        session.add(subscriber)
        session.flush()
        _record(session, subscriber, EventKind.subscribed, channel=source)
    else:
        _record(session, subscriber, EventKind.subscribed, channel=source,
                detail=f"asked to subscribe again; stays {subscriber.status} until confirmed")
    subscriber_id = stored_id(subscriber)
    now = utcnow()
    session.execute(delete(SubscribeRequest).where(col(SubscribeRequest.subscriber_id) == subscriber_id,
                                                   col(SubscribeRequest.created_at) < now - REQUEST_LIFETIME))
    session.add(SubscribeRequest(subscriber_id=subscriber_id, name=clean_name(name), language=language,
                                 topics=",".join(topic.name for topic in wanted), source=source,
                                 consent_text=clean_text(consent_text), created_at=now))
    session.flush()
    return subscriber


def open_request(session: Session, *, subscriber_id: int, request_id: int | None = None) -> SubscribeRequest | None:
    """The subscribe request `request_id` of this subscriber if it still waits, or (without an id) the newest."""
    query = select(SubscribeRequest).where(SubscribeRequest.subscriber_id == subscriber_id)
    query = query.where(SubscribeRequest.id == request_id) if request_id is not None else query.order_by(col(SubscribeRequest.id).desc())
    return session.scalars(query.limit(1).execution_options(populate_existing=True)).first()


def confirm(session: Session, *, subscriber_id: int, request_id: int | None = None, channel: str = "link") -> Subscriber:
    """A confirmation link was followed: apply the request it was sent for and make the subscriber active.

    The request's name, language, topics (with the default topics; private
    memberships are kept), source and consent wording replace the subscriber's,
    and every other waiting request of the subscriber is dropped with it. Without
    a waiting request (the link was used, or `request_id` is None and none waits),
    only a pending subscriber becomes active: an old link never re-activates
    anyone who stopped since.
    """
    subscriber = get_subscriber(session, subscriber_id=subscriber_id)
    request = open_request(session, subscriber_id=subscriber_id, request_id=request_id)
    if request is None and subscriber.status != SubscriberStatus.pending:
        return subscriber
    if request is not None:
        subscriber.name, subscriber.language = request.name, request.language
        subscriber.source, subscriber.consent_text = request.source, request.consent_text
        # A topic removed or made private since the request was made is left out.
        asked = [name for name in request.topics.split(",") if name]
        wanted = list(session.scalars(select(Topic).where(col(Topic.name).in_(asked), Topic.public))) if asked else []
        session.execute(delete(SubscriberTopic).where(
            col(SubscriberTopic.subscriber_id) == subscriber_id,
            col(SubscriberTopic.topic_id).in_(select(Topic.id).where(Topic.public)),
        ))
        _link_topics(session, subscriber_id, _with_defaults(session, wanted))
        session.execute(delete(SubscribeRequest).where(col(SubscribeRequest.subscriber_id) == subscriber_id))
    subscriber.confirmed_at = utcnow()
    if subscriber.status != SubscriberStatus.active:
        _change_status(session, subscriber, SubscriberStatus.active, EventKind.confirmed, channel=channel)
    else:
        _record(session, subscriber, EventKind.confirmed, channel=channel)
    session.flush()
    return subscriber


def unsubscribe(session: Session, *, subscriber_id: int, channel: str, send_id: int | None = None) -> Subscriber:
    """Stop all mail. `channel` says how they asked: link, one-click, reply, cli, import...

    A bounced or complained subscriber keeps that status (it says more, and an
    unsubscribed one could be re-imported with `--resubscribe`); the request is
    recorded all the same. A waiting subscribe request is dropped.
    """
    subscriber = get_subscriber(session, subscriber_id=subscriber_id)
    session.execute(delete(SubscribeRequest).where(col(SubscribeRequest.subscriber_id) == subscriber_id))
    if subscriber.status in HARD_STOPS:
        _record(session, subscriber, EventKind.unsubscribed, channel=channel, send_id=send_id,
                detail=f"stays {subscriber.status}")
        session.flush()
    elif subscriber.status != SubscriberStatus.unsubscribed:
        _change_status(session, subscriber, SubscriberStatus.unsubscribed, EventKind.unsubscribed, channel=channel, send_id=send_id)
    return subscriber


def resubscribe(session: Session, *, subscriber_id: int, channel: str = "cli") -> Subscriber:
    """Make active again someone who stopped (only on their own request or an editor's decision)."""
    subscriber = get_subscriber(session, subscriber_id=subscriber_id)
    if subscriber.status != SubscriberStatus.active:
        subscriber.confirmed_at = subscriber.confirmed_at or utcnow()
        _change_status(session, subscriber, SubscriberStatus.active, EventKind.resubscribed, channel=channel)
    return subscriber


def update_preferences(
    session: Session,
    *,
    subscriber_id: int,
    name: str | None = None,
    language: Language | str | None = None,
    topics: Sequence[str] | None = None,
    channel: str = "web",
    public_only: bool = False,
    send_id: int | None = None,
) -> Subscriber:
    """Change what is given (None leaves it); the event says what changed, without personal data.

    `topics` replaces the subscriber's topics; with `public_only` (the pages) it
    may name only public topics and replaces only those, so private memberships stay.
    `send_id`: the send whose preferences link was used, so the change is counted on that issue.
    """
    subscriber = get_subscriber(session, subscriber_id=subscriber_id)
    changes = []
    name = clean_name(name) if name is not None else None
    if name is not None and name != subscriber.name:
        subscriber.name = name
        changes.append("name changed")
    language = parse_language(language) if language is not None else None
    if language is not None and language != subscriber.language:
        changes.append(f"language {subscriber.language} -> {language}")
        subscriber.language = language
    if topics is not None:
        wanted = {topic.name: topic for topic in resolve_topics(session, topics, public_only=public_only)}
        current = set(topic_names(session, subscriber_id, public_only=public_only))
        added, removed = sorted(wanted.keys() - current), sorted(current - wanted.keys())
        if removed:
            session.execute(
                delete(SubscriberTopic).where(
                    col(SubscriberTopic.subscriber_id) == subscriber_id,
                    col(SubscriberTopic.topic_id).in_(select(Topic.id).where(col(Topic.name).in_(removed))),
                )
            )
        _link_topics(session, subscriber_id, [wanted[name] for name in added])
        changes += [f"+{name}" for name in added] + [f"-{name}" for name in removed]
    if changes:
        _record(session, subscriber, EventKind.preferences, channel=channel, detail="; ".join(changes), send_id=send_id)
    session.flush()
    return subscriber


def change_email(session: Session, *, subscriber_id: int, new_email: str) -> Subscriber:
    """Move a subscriber to a new address (confirmed by the caller); refused if someone else has it."""
    subscriber = get_subscriber(session, subscriber_id=subscriber_id)
    email, key = normalise_email(new_email)
    if key != subscriber.email_key:
        if session.scalar(select(Subscriber.id).where(Subscriber.email_key == key)) is not None:
            raise AlreadySubscribed(f"{email} is already a subscriber")
        _record(session, subscriber, EventKind.email_changed)
    subscriber.email, subscriber.email_key = email, key
    session.flush()
    return subscriber


def mark_bounced(session: Session, *, subscriber_id: int, detail: str, send_id: int | None = None) -> Subscriber:
    """A permanent failure: stop mailing an active or pending address. The event is kept either way."""
    subscriber = get_subscriber(session, subscriber_id=subscriber_id)
    if subscriber.status in (SubscriberStatus.active, SubscriberStatus.pending):
        _change_status(session, subscriber, SubscriberStatus.bounced, EventKind.bounced, detail=detail, send_id=send_id)
    else:
        _record(session, subscriber, EventKind.bounced, detail=detail, send_id=send_id)
    return subscriber


def record_soft_bounce(
    session: Session, *, subscriber_id: int, detail: str, send_id: int | None = None, limit: int, window_days: int
) -> bool:
    """Record a temporary failure; True when it is the `limit`-th within `window_days` and the address is now bounced.

    Only soft bounces since the subscriber last became active count, so a
    re-subscribed address starts afresh.
    """
    subscriber = get_subscriber(session, subscriber_id=subscriber_id)
    _record(session, subscriber, EventKind.soft_bounce, detail=detail, send_id=send_id)
    if subscriber.status != SubscriberStatus.active:
        return False
    since = max(utcnow() - timedelta(days=window_days), subscriber.status_changed_at)
    count = session.scalars(
        select(func.count(col(Event.id))).where(
            Event.subscriber_id == subscriber_id, Event.kind == EventKind.soft_bounce, Event.created_at >= since
        )
    ).one()
    if count < limit:
        return False
    mark_bounced(session, subscriber_id=subscriber_id, detail=f"{count} soft bounces within {window_days} days; last: {detail}", send_id=send_id)
    return True


def mark_complained(session: Session, *, subscriber_id: int, detail: str, send_id: int | None = None) -> Subscriber:
    """A spam complaint: never mail them again unless they ask. The event is kept either way."""
    subscriber = get_subscriber(session, subscriber_id=subscriber_id)
    if subscriber.status != SubscriberStatus.complained:
        _change_status(session, subscriber, SubscriberStatus.complained, EventKind.complained, detail=detail, send_id=send_id)
    else:
        _record(session, subscriber, EventKind.complained, detail=detail, send_id=send_id)
    return subscriber


def forget(session: Session, *, email: str, salt: str) -> Subscriber | None:
    """Erase an address (right to erasure), keeping only a salted hash so it is never imported again.

    The subscriber row stays, blanked (`forgotten-<id>@invalid`, no name, no
    consent text, no topics, unsubscribed), so the history keeps its
    non-personal facts; the address is also wiped from deliveries, bounces and
    event details. Returns the blanked subscriber, or None if the address was
    not a subscriber (its hash is stored all the same).
    """
    email, key = normalise_email(email)
    address_hash = forgotten_hash(key, salt)
    if session.scalar(select(ForgottenAddress.id).where(ForgottenAddress.address_hash == address_hash)) is None:
        session.add(ForgottenAddress(address_hash=address_hash))
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email_key == key))
    _scrub_bounces(session, key=key, subscriber_id=subscriber.id if subscriber else None)
    if subscriber is None:
        session.flush()
        return None
    placeholder = f"forgotten-{subscriber.id}{FORGOTTEN_SUFFIX}"
    addresses = {key, subscriber.email}
    for event in session.scalars(select(Event).where(Event.subscriber_id == subscriber.id)):
        event.detail = _scrub(event.detail, addresses)
    for delivery in session.scalars(select(Delivery).where(Delivery.subscriber_id == subscriber.id)):
        delivery.email, delivery.reply = placeholder, _scrub(delivery.reply, addresses)
    session.execute(delete(SubscriberTopic).where(col(SubscriberTopic.subscriber_id) == subscriber.id))
    session.execute(delete(SubscribeRequest).where(col(SubscribeRequest.subscriber_id) == subscriber.id))
    subscriber.email = subscriber.email_key = placeholder
    subscriber.name = subscriber.consent_text = ""
    if subscriber.status != SubscriberStatus.unsubscribed:
        _change_status(session, subscriber, SubscriberStatus.unsubscribed, EventKind.unsubscribed, channel="forget")
    _record(session, subscriber, EventKind.forgotten, channel="request")
    session.flush()
    return subscriber


def audience_query(
    *, topics: Sequence[str] = (), languages: Sequence[str] = ()
) -> Select[int | None, str, str, Language]:
    """Active subscribers in any of `topics` (everyone active when empty), in id order, to stream.

    Columns: id, email, name, language. Stream it with
    `session.execute(q).yield_per(1000)`, or feed it to `INSERT ... SELECT`.
    """
    query = (
        select(col(Subscriber.id), Subscriber.email, Subscriber.name, col(Subscriber.language))
        .where(Subscriber.status == SubscriberStatus.active)
        .order_by(col(Subscriber.id))
    )
    if topics:
        members = (
            select(SubscriberTopic.subscriber_id)
            .join(Topic, col(Topic.id) == SubscriberTopic.topic_id)
            .where(col(Topic.name).in_(list(topics)))
        )
        query = query.where(col(Subscriber.id).in_(members))
    if languages:
        query = query.where(col(Subscriber.language).in_(list(languages)))
    return query


def _record(
    session: Session, subscriber: Subscriber, kind: EventKind, *, channel: str = "", detail: str = "", send_id: int | None = None
) -> None:
    session.add(Event(subscriber_id=subscriber.id, kind=kind, channel=channel, detail=detail, send_id=send_id))


def _change_status(
    session: Session,
    subscriber: Subscriber,
    status: SubscriberStatus,
    kind: EventKind,
    *,
    channel: str = "",
    detail: str = "",
    send_id: int | None = None,
) -> None:
    subscriber.status, subscriber.status_changed_at = status, utcnow()
    session.flush()
    _record(session, subscriber, kind, channel=channel, detail=detail, send_id=send_id)
    session.flush()


def _with_defaults(session: Session, topics: Sequence[Topic]) -> list[Topic]:
    """`topics` and the default topics, each once: what a new (or newly confirmed) subscriber joins."""
    return list({topic.name: topic for topic in (*default_topics(session), *topics)}.values())


def _link_topics(session: Session, subscriber_id: int, topics: Sequence[Topic]) -> None:
    """Add memberships the subscriber does not have yet (callers remove the others first)."""
    for topic in topics:
        session.merge(SubscriberTopic(subscriber_id=subscriber_id, topic_id=stored_id(topic)))
    session.flush()


def _scrub(text: str, addresses: set[str]) -> str:
    for address in addresses:
        text = re.sub(re.escape(address), "[forgotten]", text, flags=re.IGNORECASE)
    return text


def _scrub_bounces(session: Session, *, key: str, subscriber_id: int | None) -> None:
    """Wipe the address from bounce records, matched by subscriber or by address."""
    matches = func.lower(Bounce.address) == key
    if subscriber_id is not None:
        matches = matches | (col(Bounce.subscriber_id) == subscriber_id)
    for bounce in session.scalars(select(Bounce).where(matches)):
        bounce.address, bounce.diagnostic = "", _scrub(bounce.diagnostic, {key})
