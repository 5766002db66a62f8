"""Topics: the named lists (`news`, `events`...) a subscriber can be in."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from sqlalchemy import delete, func, select
from sqlmodel import Session

from mailer.errors import NotFound, StoreError
from mailer.store.models import Send, SendStatus, Subscriber, SubscriberStatus, SubscriberTopic, Topic

TOPIC_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# Sends that will still select their audience, so their topics must keep existing.
OPEN_SENDS = (SendStatus.draft, SendStatus.scheduled, SendStatus.sending, SendStatus.paused)


# What readers see of a topic, per language (`Topic.label_in`, `Topic.description_in`).
TOPIC_TEXTS = ("label", "label_cy", "description", "description_cy")


def add_topic(session: Session, *, name: str, description: str = "", label: str = "", label_cy: str = "",
              description_cy: str = "") -> Topic:
    if not TOPIC_NAME.match(name):
        raise StoreError(f"topic name {name!r} must be lower-case letters, digits, '-' or '_' (at most 64)")
    if session.scalar(select(Topic).where(Topic.name == name)) is not None:
        raise StoreError(f"topic {name!r} already exists")
    topic = Topic(name=name)
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


def remove_topic(session: Session, *, name: str) -> None:
    """Remove a topic and its memberships; refused while an unfinished send still targets it."""
    topic = resolve_topics(session, [name])[0]
    for send in session.scalars(select(Send).where(Send.status.in_(OPEN_SENDS))):
        if name in send.topics.split(","):
            raise StoreError(f"topic {name!r} is used by send {send.id} ({send.status}); finish or cancel it first")
    session.execute(delete(SubscriberTopic).where(SubscriberTopic.topic_id == topic.id))
    session.delete(topic)
    session.flush()


def list_topics(session: Session) -> list[tuple[Topic, int]]:
    """Every topic with its number of active subscribers, by name."""
    active = (
        select(SubscriberTopic.topic_id, func.count().label("n"))
        .join(Subscriber, Subscriber.id == SubscriberTopic.subscriber_id)
        .where(Subscriber.status == SubscriberStatus.active)
        .group_by(SubscriberTopic.topic_id)
        .subquery()
    )
    rows = session.execute(
        select(Topic, func.coalesce(active.c.n, 0)).outerjoin(active, active.c.topic_id == Topic.id).order_by(Topic.name)
    )
    return [(topic, count) for topic, count in rows]


def resolve_topics(session: Session, names: Iterable[str]) -> list[Topic]:
    """The topics named, in order; `NotFound` naming every unknown one."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return []
    found = {topic.name: topic for topic in session.scalars(select(Topic).where(Topic.name.in_(wanted)))}
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
        .join(Topic, Topic.id == SubscriberTopic.topic_id)
        .where(SubscriberTopic.subscriber_id.in_(subscriber_ids))
        .order_by(Topic.name)
    )
    names: dict[int, list[str]] = {}
    for subscriber_id, name in session.execute(query):
        names.setdefault(subscriber_id, []).append(name)
    return names


def topic_names(session: Session, subscriber_id: int) -> list[str]:
    query = (
        select(Topic.name)
        .join(SubscriberTopic, SubscriberTopic.topic_id == Topic.id)
        .where(SubscriberTopic.subscriber_id == subscriber_id)
        .order_by(Topic.name)
    )
    return list(session.scalars(query))
