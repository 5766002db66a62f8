"""Topics: the named lists (`news`, `events`...) a subscriber can be in.

Two flags say how a topic meets people: a *default* topic is joined by every new
subscriber, whatever way they come in (so "every issue of the newsletter comes to
you" is true of the issues aimed at it); only a *public* topic is offered on the
subscribe and preferences pages (an internal topic such as a test list is not).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from mailer.errors import NotFound, StoreError
from mailer.store.models import Send, SendStatus, Subscriber, SubscriberStatus, SubscriberTopic, Topic

TOPIC_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# Sends that will still select their audience, so their topics must keep existing.
OPEN_SENDS = (SendStatus.draft, SendStatus.scheduled, SendStatus.sending, SendStatus.paused)


# What readers see of a topic, per language (`Topic.label_in`, `Topic.description_in`).
TOPIC_TEXTS = ("label", "label_cy", "description", "description_cy")


def add_topic(session: Session, *, name: str, description: str = "", label: str = "", label_cy: str = "",
              description_cy: str = "", default: bool = False, public: bool = True) -> Topic:
    if not TOPIC_NAME.match(name):
        raise StoreError(f"topic name {name!r} must be lower-case letters, digits, '-' or '_' (at most 64)")
    if session.scalar(select(Topic).where(Topic.name == name)) is not None:
        raise StoreError(f"topic {name!r} already exists")
    _check_flags(name, default=default, public=public)
    topic = Topic(name=name, is_default=default, public=public)
    set_topic_texts(session, topic=topic, label=label, label_cy=label_cy, description=description,
                    description_cy=description_cy)
    return topic


def edit_topic(session: Session, *, name: str, **texts: str | None) -> Topic:
    """Change what readers see of a topic (`TOPIC_TEXTS`; None leaves a text as it is, "" empties it)."""
    topic = resolve_topics(session, [name])[0]
    set_topic_texts(session, topic=topic, **texts)
    return topic


def set_topic_texts(session: Session, *, topic: Topic, **texts: str | None) -> None:
    for field, text in texts.items():
        if field not in TOPIC_TEXTS:
            raise TypeError(f"a topic has no text {field!r}")
        if text is not None:
            text = " ".join(text.split())
            if len(text) > 200:
                raise StoreError(f"topic {topic.name!r}: the {field.replace('_', ' ')} is {len(text)} characters; at most 200")
            setattr(topic, field, text)
    session.add(topic)
    session.flush()


def set_flags(session: Session, *, name: str, default: bool | None = None, public: bool | None = None) -> Topic:
    """Change a topic's flags (None leaves one as it is). Existing memberships stay as they are."""
    topic = resolve_topics(session, [name])[0]
    default = topic.is_default if default is None else default
    public = topic.public if public is None else public
    _check_flags(name, default=default, public=public)
    topic.is_default, topic.public = default, public
    session.flush()
    return topic


def _check_flags(name: str, *, default: bool, public: bool) -> None:
    if default and not public:
        raise StoreError(f"topic {name!r} cannot be both default and private: readers could not see or leave it")


def default_topics(session: Session) -> list[Topic]:
    """The topics every new subscriber joins."""
    return list(session.scalars(select(Topic).where(Topic.is_default).order_by(Topic.name)))


def public_topics(session: Session) -> list[Topic]:
    """The topics the subscribe and preferences pages offer, by name."""
    return list(session.scalars(select(Topic).where(Topic.public).order_by(Topic.name)))


def remove_topic(session: Session, *, name: str) -> None:
    """Remove a topic and its memberships; refused while an unfinished send still targets it."""
    topic = resolve_topics(session, [name])[0]
    for send in session.scalars(select(Send).where(col(Send.status).in_(OPEN_SENDS))):
        if name in send.topics.split(","):
            raise StoreError(f"topic {name!r} is used by send {send.id} ({send.status}); finish or cancel it first")
    session.execute(delete(SubscriberTopic).where(col(SubscriberTopic.topic_id) == topic.id))
    session.delete(topic)
    session.flush()


def list_topics(session: Session) -> list[tuple[Topic, int]]:
    """Every topic with its number of active subscribers, by name."""
    active = (
        select(SubscriberTopic.topic_id, func.count().label("n"))
        .join(Subscriber, col(Subscriber.id) == SubscriberTopic.subscriber_id)
        .where(Subscriber.status == SubscriberStatus.active)
        .group_by(col(SubscriberTopic.topic_id))
        .subquery()
    )
    rows = session.execute(
        select(Topic, func.coalesce(active.c.n, 0)).outerjoin(active, active.c.topic_id == Topic.id).order_by(Topic.name)
    )
    return [(topic, count) for topic, count in rows]


def resolve_topics(session: Session, names: Iterable[str], *, public_only: bool = False) -> list[Topic]:
    """The topics named, in order; `NotFound` naming every unknown one (with `public_only`, a private one too)."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return []
    query = select(Topic).where(col(Topic.name).in_(wanted))
    if public_only:
        query = query.where(Topic.public)
    found = {topic.name: topic for topic in session.scalars(query)}
    unknown = [name for name in wanted if name not in found]
    if unknown:
        known = ", ".join(session.scalars(select(Topic.name).order_by(Topic.name))) or "none yet"
        names = ", ".join(repr(name) for name in unknown)
        raise NotFound(f"unknown topic {names} (known: {known}; add one with `mailer topics add NAME`)")
    return [found[name] for name in wanted]


def topics_by_subscriber(session: Session, subscriber_ids: Sequence[int]) -> dict[int, list[str]]:
    """The topic names (sorted) of many subscribers in one query: a table or an export page at a time."""
    query = (
        select(SubscriberTopic.subscriber_id, Topic.name)
        .join(Topic, col(Topic.id) == SubscriberTopic.topic_id)
        .where(col(SubscriberTopic.subscriber_id).in_(subscriber_ids))
        .order_by(Topic.name)
    )
    names: dict[int, list[str]] = {}
    for subscriber_id, name in session.execute(query):
        names.setdefault(subscriber_id, []).append(name)
    return names


def topic_names(session: Session, subscriber_id: int, *, public_only: bool = False) -> list[str]:
    query = (
        select(Topic.name)
        .join(SubscriberTopic, col(SubscriberTopic.topic_id) == Topic.id)
        .where(SubscriberTopic.subscriber_id == subscriber_id)
        .order_by(Topic.name)
    )
    if public_only:
        query = query.where(Topic.public)
    return list(session.scalars(query))
