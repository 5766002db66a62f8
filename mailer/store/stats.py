"""Counts that tell an editor how the list is doing: by status, topic and language, and month by month."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlmodel import Session

from mailer.store.models import Event, EventKind, Subscriber, SubscriberStatus, utcnow
from mailer.store.topics import list_topics

LEAVING = (EventKind.unsubscribed, EventKind.bounced, EventKind.complained)


@dataclass(frozen=True)
class Month:
    month: str  # YYYY-MM
    joined: int  # became active (confirmed, added or imported)
    left: int  # unsubscribed, bounced or complained

    @property
    def net(self) -> int:
        return self.joined - self.left


@dataclass(frozen=True)
class Stats:
    by_status: dict[str, int]
    by_topic: dict[str, int]  # active subscribers per topic
    by_language: dict[str, int]  # active subscribers per language
    growth: list[Month]  # oldest first, the current month last


def list_stats(session: Session, *, months: int = 12) -> Stats:
    by_status = {status.value: 0 for status in SubscriberStatus}
    by_status.update(session.execute(select(Subscriber.status, func.count()).group_by(Subscriber.status)).all())
    by_language = dict(
        session.execute(
            select(Subscriber.language, func.count())
            .where(Subscriber.status == SubscriberStatus.active)
            .group_by(Subscriber.language)
            .order_by(Subscriber.language)
        ).all()
    )
    by_topic = {topic.name: count for topic, count in list_topics(session)}
    return Stats(by_status, by_topic, by_language, _growth(session, months))


def _growth(session: Session, months: int) -> list[Month]:
    """Joins and leaves per calendar month (UTC), counted in Python so it reads the same on every database."""
    labels = _last_months(utcnow(), months)
    start = datetime.strptime(labels[0], "%Y-%m")
    joined = Counter(
        f"{moment:%Y-%m}"
        for moment in session.scalars(
            select(Subscriber.confirmed_at).where(Subscriber.confirmed_at >= start).execution_options(yield_per=5000)
        )
    )
    left = Counter(
        f"{moment:%Y-%m}"
        for moment in session.scalars(
            select(Event.created_at).where(Event.kind.in_(LEAVING), Event.created_at >= start).execution_options(yield_per=5000)
        )
    )
    return [Month(label, joined[label], left[label]) for label in labels]


def _last_months(now: datetime, count: int) -> list[str]:
    year, month = now.year, now.month
    labels = []
    for _ in range(count):
        labels.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return labels[::-1]
