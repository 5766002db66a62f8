"""The delivery queue in the database: claiming batches and recording what the server said.

A process claims a batch by writing its owner id into `claimed_by` and a claim
expiry into `next_attempt_at` (for a claimed row that column means "nobody
else may try it before"). Claims are renewed while the process runs, so a row
in the hands of a process that died becomes claimable again when its claim
lapses. On PostgreSQL the claim skips rows locked by another worker's claim
(`FOR UPDATE SKIP LOCKED`); SQLite has one writer, so its claims are serial anyway.

Each outcome is recorded before the next message goes out on that connection (see
`journal`): that is what makes a send exactly once across crashes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Connection, and_, bindparam, func, or_, select, update
from sqlmodel import col

from mailer.delivery.owners import owner_is_dead
from mailer.store.models import Delivery, DeliveryStatus, Subscriber, SubscriberStatus

CLAIM = timedelta(minutes=2)
WAITING = (DeliveryStatus.queued, DeliveryStatus.deferred)


@dataclass(slots=True)
class Claimed:
    """A delivery in this process's hands, with the subscriber's current address and name."""

    id: int
    subscriber_id: int | None
    email: str
    name: str
    language: str
    attempts: int
    first_attempt_at: datetime | None
    deferred: bool  # claimed as a due retry rather than from the queue


@dataclass(slots=True)
class Outcome:
    """What became of one delivery, to be committed."""

    delivery_id: int
    status: DeliveryStatus
    reply: str
    at: datetime
    code: int | None = None  # the server's reply code, when it answered
    email: str = ""
    message_id: str = ""
    next_attempt_at: datetime | None = None


def due(now: datetime) -> ColumnElement[bool]:
    """Waiting, and either never tried, due for a retry, or claimed by a process whose claim lapsed."""
    return and_(col(Delivery.status).in_(WAITING),
                or_(col(Delivery.next_attempt_at).is_(None), col(Delivery.next_attempt_at) <= now))


def claim(conn: Connection, *, send_id: int, owner: str, limit: int,
          now: datetime) -> tuple[list[Claimed], list[Claimed]]:
    """Claim up to `limit` due deliveries, in id order. Those whose subscriber is no longer
    active (or was forgotten) are marked skipped at once and returned second."""
    candidates = (
        select(col(Delivery.id)).where(col(Delivery.send_id) == send_id, due(now)).limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = conn.execute(
        update(Delivery).where(col(Delivery.id).in_(candidates.scalar_subquery()))
        .values(claimed_by=owner, next_attempt_at=now + CLAIM)
        .returning(col(Delivery.id), col(Delivery.subscriber_id), col(Delivery.email), col(Delivery.language),
                   col(Delivery.attempts), col(Delivery.first_attempt_at), col(Delivery.status))
    ).all()
    subscribers = {
        row.id: row for row in conn.execute(
            select(col(Subscriber.id), col(Subscriber.email), col(Subscriber.name))
            .where(col(Subscriber.id).in_([row.subscriber_id for row in rows if row.subscriber_id is not None]),
                   col(Subscriber.status) == SubscriberStatus.active)
        )
    }
    claimed: list[Claimed] = []
    gone: list[Claimed] = []
    for row in sorted(rows, key=lambda row: row.id):
        subscriber = subscribers.get(row.subscriber_id)
        (claimed if subscriber else gone).append(Claimed(
            row.id, row.subscriber_id, subscriber.email if subscriber else row.email,
            subscriber.name if subscriber else "", row.language, row.attempts, row.first_attempt_at,
            row.status == DeliveryStatus.deferred))
    if gone:
        conn.execute(update(Delivery).where(col(Delivery.id).in_([c.id for c in gone])).values(
            status=DeliveryStatus.skipped, reply="subscriber no longer active", claimed_by="", next_attempt_at=None))
    conn.commit()
    return claimed, gone


_RECORD = (
    update(Delivery).where(col(Delivery.id) == bindparam("delivery_id"))
    .values(status=bindparam("status"), reply=bindparam("reply"), reply_code=bindparam("code"),
            attempts=Delivery.attempts + 1,
            first_attempt_at=func.coalesce(Delivery.first_attempt_at, bindparam("at")),
            next_attempt_at=bindparam("next_attempt_at"), claimed_by="")
)
_RECORD_SENT = _RECORD.values(sent_at=bindparam("at"), email=bindparam("email"), message_id=bindparam("message_id"))


def _params(outcome: Outcome) -> dict[str, object]:
    params: dict[str, object] = {
        "delivery_id": outcome.delivery_id, "status": outcome.status.value, "reply": outcome.reply[:1000],
        "code": outcome.code, "at": outcome.at, "next_attempt_at": outcome.next_attempt_at}
    if outcome.status is DeliveryStatus.sent:
        params.update(email=outcome.email, message_id=outcome.message_id)
    return params


def record(conn: Connection, outcome: Outcome) -> None:
    """Commit one outcome."""
    conn.execute(_RECORD_SENT if outcome.status is DeliveryStatus.sent else _RECORD, _params(outcome))
    conn.commit()


def record_many(conn: Connection, outcomes: Iterable[Outcome]) -> None:
    """Commit many outcomes in one transaction."""
    sent: list[dict[str, object]] = []
    other: list[dict[str, object]] = []
    for outcome in outcomes:
        (sent if outcome.status is DeliveryStatus.sent else other).append(_params(outcome))
    if sent:
        conn.execute(_RECORD_SENT, sent)
    if other:
        conn.execute(_RECORD, other)
    conn.commit()


def renew(conn: Connection, *, ids: Collection[int], owner: str, now: datetime) -> None:
    """Extend this process's claims on `ids` (those still waiting)."""
    for chunk in _chunks(list(ids), 500):
        conn.execute(update(Delivery).where(col(Delivery.id).in_(chunk), col(Delivery.claimed_by) == owner,
                                            col(Delivery.status).in_(WAITING))
                     .values(next_attempt_at=now + CLAIM))
    conn.commit()


def release(conn: Connection, *, ids: Collection[int], owner: str) -> None:
    """Give back claimed deliveries that were not sent, so they are due again at once."""
    for chunk in _chunks(list(ids), 500):
        conn.execute(update(Delivery).where(col(Delivery.id).in_(chunk), col(Delivery.claimed_by) == owner,
                                            col(Delivery.status).in_(WAITING))
                     .values(claimed_by="", next_attempt_at=None))
    conn.commit()


def release_dead(conn: Connection, *, send_id: int, also: str = "") -> None:
    """Give back the claims of processes on this machine that have ended (and of `also`, a lapsed lease owner)."""
    owners = conn.execute(
        select(col(Delivery.claimed_by)).distinct()
        .where(col(Delivery.send_id) == send_id, col(Delivery.status).in_(WAITING), col(Delivery.claimed_by) != "")
    ).scalars().all()
    dead = [owner for owner in owners if owner == also or owner_is_dead(owner)]
    if dead:
        conn.execute(update(Delivery).where(col(Delivery.send_id) == send_id, col(Delivery.status).in_(WAITING),
                                            col(Delivery.claimed_by).in_(dead))
                     .values(claimed_by="", next_attempt_at=None))
    conn.commit()


def next_retry(conn: Connection, *, send_id: int) -> datetime | None:
    """When the earliest deferred delivery is due, or None."""
    return conn.execute(select(func.min(col(Delivery.next_attempt_at))).where(
        col(Delivery.send_id) == send_id, col(Delivery.status) == DeliveryStatus.deferred)).scalar_one()


def waiting(conn: Connection, *, send_id: int) -> int:
    """How many deliveries are still queued or deferred."""
    return conn.execute(select(func.count()).where(col(Delivery.send_id) == send_id,
                                                    col(Delivery.status).in_(WAITING))).scalar_one()


def sent_since(conn: Connection, since: datetime, limit: int) -> list[datetime]:
    """When the latest messages (of any send) went out, newest `limit` after `since`: seeds the hourly limit."""
    sent = conn.execute(select(col(Delivery.sent_at)).where(col(Delivery.sent_at) > since)
                        .order_by(col(Delivery.sent_at).desc()).limit(limit)).scalars()
    return [at for at in sent if at is not None]  # all of them: a NULL is never after `since`


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
