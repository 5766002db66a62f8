"""What bounced: counts per kind, the addresses affected, the rule and code each was judged by and the
raw diagnostics, for one send or all; and, for one subscriber, the report that removed them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from mailer.errors import NotFound
from mailer.store.models import Bounce, BounceKind, Event, EventKind, Send, Subscriber, SubscriberStatus


@dataclass(frozen=True)
class BounceLine:
    received_at: datetime
    kind: BounceKind
    address: str
    status: str  # the subscriber's status now ("" when the bounce named nobody we know)
    send_id: int | None
    diagnostic: str
    rule: str = ""
    code: str = ""
    verified: bool = True  # False: the report named no delivery of ours, so it changed nobody


@dataclass(frozen=True)
class BounceReport:
    send_id: int | None
    counts: dict[str, int]
    lines: list[BounceLine]  # newest first


def bounce_counts(session: Session, send_id: int) -> dict[str, int]:
    """Bounces recorded for one send, per kind (every kind present, zero when none): for `mailer sends show`."""
    counts = dict.fromkeys(map(str, BounceKind), 0)
    query = select(col(Bounce.kind), func.count()).where(Bounce.send_id == send_id).group_by(Bounce.kind)
    counts.update({str(kind): number for kind, number in session.execute(query)})
    return counts


def bounce_report(session: Session, *, send_id: int | None = None) -> BounceReport:
    """Every bounce recorded (for one send when `send_id` is given), newest first."""
    if send_id is not None and session.get(Send, send_id) is None:
        raise NotFound(f"no send with id {send_id}")
    query = (
        select(Bounce, col(Subscriber.status))
        .outerjoin(Subscriber, col(Subscriber.id) == Bounce.subscriber_id)
        .order_by(col(Bounce.received_at).desc(), col(Bounce.id).desc())
    )
    if send_id is not None:
        query = query.where(Bounce.send_id == send_id)
    lines = [
        BounceLine(bounce.received_at, BounceKind(bounce.kind), bounce.address, str(status or ""), bounce.send_id,
                   bounce.diagnostic, bounce.rule, bounce.code, bounce.verified)
        for bounce, status in session.execute(query)
    ]
    counts = dict.fromkeys(map(str, BounceKind), 0)
    for line in lines:
        counts[str(line.kind)] += 1
    return BounceReport(send_id, counts, lines)


def removed_by(session: Session, subscriber_id: int) -> str | None:
    """Why the bounce reader stopped mailing someone (the report, the code and the rule), for
    `mailer subscribers show`; None when it did not."""
    event = session.scalars(
        select(Event)
        .where(Event.subscriber_id == subscriber_id, col(Event.kind).in_([EventKind.bounced, EventKind.complained]))
        .order_by(col(Event.created_at).desc(), col(Event.id).desc())
        .limit(1)
    ).first()
    subscriber = session.get(Subscriber, subscriber_id)
    if event is None or subscriber is None or subscriber.status not in (SubscriberStatus.bounced, SubscriberStatus.complained):
        return None
    return event.detail
