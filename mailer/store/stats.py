"""Counts that tell an editor how the list is doing: by status, topic and language, and month by month.

Month by month: joins (became active: confirmed, added or imported), leaves
(unsubscribed), bounces (reports of hard and soft failures) and complaints, per
calendar month in UTC. Only reports about a delivery of ours count (`Bounce.verified`):
one naming nobody we sent to changed nothing and may be forged. Counts only: `mailer stats` and /admin/stats show them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from mailer.store.models import Bounce, BounceKind, Event, EventKind, Subscriber, SubscriberStatus, utcnow
from mailer.store.topics import list_topics

SERIES = ("joined", "left", "bounces", "complaints")


@dataclass(frozen=True)
class Month:
    month: str  # YYYY-MM
    joined: int  # became active (confirmed, added or imported)
    left: int  # unsubscribed
    bounces: int = 0  # verified bounce reports received, hard and soft
    complaints: int = 0  # verified spam complaints received

    @property
    def net(self) -> int:
        return self.joined - self.left


@dataclass(frozen=True)
class Stats:
    by_status: dict[str, int]
    by_topic: dict[str, int]  # active subscribers per topic
    by_language: dict[str, int]  # active subscribers per language
    growth: list[Month]  # oldest first, the current month last


def list_stats(session: Session, *, months: int = 12, now: datetime | None = None) -> Stats:
    by_status = {status.value: 0 for status in SubscriberStatus}
    by_status.update(session.execute(select(Subscriber.status, func.count()).group_by(col(Subscriber.status))).all())
    by_language: dict[str, int] = dict(
        session.execute(
            select(Subscriber.language, func.count())
            .where(Subscriber.status == SubscriberStatus.active)
            .group_by(col(Subscriber.language))
            .order_by(col(Subscriber.language))
        ).all()
    )
    by_topic = {topic.name: count for topic, count in list_topics(session)}
    return Stats(by_status, by_topic, by_language, history(session, months=months, now=now))


def history(session: Session, *, months: int = 12, now: datetime | None = None) -> list[Month]:
    """Joins, leaves, bounces and complaints per calendar month (UTC), oldest first, the month of `now` last.

    Counted in Python from the moments, so it reads the same on every database.
    """
    labels = _last_months(now or utcnow(), months)
    start = datetime.strptime(labels[0], "%Y-%m")
    failures = (BounceKind.permanent, BounceKind.temporary)
    moments: list[SelectOfScalar[datetime | None] | SelectOfScalar[datetime]] = [
        select(col(Subscriber.confirmed_at)).where(col(Subscriber.confirmed_at) >= start),
        select(Event.created_at).where(Event.kind == EventKind.unsubscribed, Event.created_at >= start),
        select(Bounce.received_at).where(col(Bounce.kind).in_(failures), Bounce.verified, Bounce.received_at >= start),
        select(Bounce.received_at).where(Bounce.kind == BounceKind.complaint, Bounce.verified,
                                         Bounce.received_at >= start),
    ]
    counts = [Counter(f"{moment:%Y-%m}" for moment in session.scalars(query.execution_options(yield_per=5000)))
              for query in moments]
    return [Month(label, *(count[label] for count in counts)) for label in labels]


def _last_months(now: datetime, count: int) -> list[str]:
    year, month = now.year, now.month
    labels = []
    for _ in range(count):
        labels.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return labels[::-1]
