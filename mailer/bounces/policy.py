"""Act on what the bounce mailbox says, through the store's subscriber services.

A permanent failure marks the subscriber bounced at once; temporary failures
are counted, and `bounce_soft_limit` of them within `bounce_soft_window_days`
mark them bounced; a complaint marks them complained, which stops all mail.

Each message is one transaction: its Bounce rows and the status changes (each
an Event carrying the diagnostic and the report's Message-ID) are committed
together, and only then is the message moved to the handled folder. A unique
index on (Message-ID, address) makes the database refuse a report recorded
already: such a message is only moved, so a crash between the two steps, a
second run or two readers of one mailbox at once never count a bounce twice.
Messages that are not bounces are left alone; broken or oversized ones are
logged and left in place for a person to look at. Nothing in one message can
stop the run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine, exists, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from mailer.bounces.classify import (
    MAX_MESSAGE_BYTES,
    TOO_BIG,
    Classification,
    Failure,
    MalformedMessage,
    classify,
    failure_kind,
)
from mailer.bounces.mailbox import Mailbox, display_name, open_mailbox
from mailer.config import Settings
from mailer.errors import BounceError
from mailer.store import subscribers
from mailer.store.db import make_engine, new_session, require_current
from mailer.store.models import Bounce, BounceKind, Delivery, DeliveryStatus, Subscriber

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())  # `mailer bounces process` prints skipped messages itself; `mailer run` sets up logging


@dataclass
class ProcessReport:
    """What one pass over the mailbox did."""

    mailbox: str
    permanent: int = 0
    temporary: int = 0
    complaints: int = 0
    unmatched: int = 0  # bounces naming no subscriber we know (recorded all the same)
    ignored: int = 0  # not bounces: left in the mailbox
    duplicates: int = 0  # recorded already (by an earlier run, or another reader just now): only moved
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (message, why): left in the mailbox
    changes: list[tuple[str, str]] = field(default_factory=list)  # (address, new status)

    def __str__(self) -> str:
        return (
            f"{self.mailbox}: {self.permanent} permanent, {self.temporary} temporary, {self.complaints} complaints"
            f" ({self.unmatched} naming nobody on the list); {self.duplicates} already recorded;"
            f" left in place: {self.ignored} not bounces, {len(self.skipped)} skipped."
        )

    def add(self, bounces: Sequence[Bounce], changes: Sequence[tuple[str, str]]) -> None:
        """Count what one message recorded, once it is committed."""
        for bounce in bounces:
            if bounce.kind == BounceKind.permanent:
                self.permanent += 1
            elif bounce.kind == BounceKind.temporary:
                self.temporary += 1
            else:
                self.complaints += 1
            if bounce.subscriber_id is None:
                self.unmatched += 1
        self.changes.extend(changes)


def process_mailbox(settings: Settings, mailbox: str | None = None, *, engine: Engine | None = None) -> ProcessReport:
    """Read every message in the mailbox (default: `settings.bounce_mailbox`) and act on the bounces."""
    spec = mailbox or settings.bounce_mailbox
    if not spec:
        raise BounceError("no bounce mailbox: pass --mailbox, or set bounce_mailbox in mailer.toml")
    own_engine = engine is None
    if engine is None:
        engine = make_engine(settings.database_url)
        require_current(engine)
    try:
        with open_mailbox(spec) as box:
            report = ProcessReport(mailbox=display_name(spec))
            for key, data in box.messages(MAX_MESSAGE_BYTES):
                process_message(settings, engine, box, key, data, report)
    finally:
        if own_engine:
            engine.dispose()
    return report


def process_message(settings: Settings, engine: Engine, box: Mailbox, key: str, data: bytes | None, report: ProcessReport) -> None:
    """Classify one message of `box`, record it (one transaction) and move it to the handled folder."""
    if data is None:
        _skip(report, key, TOO_BIG)
        return
    try:
        classification = classify(settings, data)
    except MalformedMessage as exc:
        _skip(report, key, str(exc))
        return
    except Exception as exc:  # a message we cannot read must not stop the others; the traceback goes to the log
        log.exception("bounce mailbox %s: error reading message %s", report.mailbox, key)
        _skip(report, key, f"could not be read: {exc!r}")
        return
    if classification.kind is None:
        report.ignored += 1
        return
    with new_session(engine) as session:
        try:
            bounces, changes = record(session, settings, classification)
            session.commit()
        except IntegrityError:
            session.rollback()
            if not already_recorded(session, classification.message_id):
                raise
            report.duplicates += 1
        else:
            report.add(bounces, changes)
    box.move_to_handled(key)


def _skip(report: ProcessReport, key: str, reason: str) -> None:
    log.warning("bounce mailbox %s: skipped message %s, left in place: %s", report.mailbox, key, reason)
    report.skipped.append((key, reason))


def already_recorded(session: Session, message_id: str) -> bool:
    return session.scalar(select(Bounce.id).where(Bounce.message_id == message_id).limit(1)) is not None


def record(session: Session, settings: Settings, classification: Classification) -> tuple[list[Bounce], list[tuple[str, str]]]:
    """Store the bounce rows of one message and apply the policy to the subscribers they name (no commit).

    Returns the rows and the status changes (address, new status). `IntegrityError` when
    the report is recorded already.
    """
    bounces: list[Bounce] = []
    changes: list[tuple[str, str]] = []
    for failure, delivery, subscriber in _targets(session, classification):
        bounce = Bounce(
            kind=failure.kind,
            subscriber_id=subscriber.id if subscriber else None,
            delivery_id=delivery.id if delivery else None,
            send_id=delivery.send_id if delivery else None,
            address=delivery.email if delivery else failure.address,
            diagnostic=failure.diagnostic,
            message_id=classification.message_id,
        )
        session.add(bounce)
        bounces.append(bounce)
        if subscriber is None:
            continue
        before = subscriber.status
        _apply(session, settings, bounce, subscriber.id)
        if subscriber.status != before:
            changes.append((subscriber.email, str(subscriber.status)))
    session.flush()
    return bounces, changes


def record_refusals(session: Session, settings: Settings, *, send_id: int) -> ProcessReport:
    """Treat the addresses a server refused while sending (a 5xx reply to RCPT or DATA) as bounces.

    The same policy as for a bounce message applies: "550 5.1.1 no such user" marks
    the subscriber bounced at once, while a 5.7.x spam block only counts as a
    temporary failure. Each refused delivery is recorded once, even when several
    processes finish the same send at once (no commit).
    """
    report = ProcessReport(mailbox=f"send {send_id}")
    refused = session.scalars(
        select(Delivery).where(
            Delivery.send_id == send_id,
            Delivery.status == DeliveryStatus.failed,
            Delivery.reply_code.between(500, 599),  # as every transport reports it
            ~exists().where(Bounce.delivery_id == Delivery.id),
        )
    ).all()
    for delivery in refused:
        kind = failure_kind(failed=True, status="", diagnostic=delivery.reply)
        refusal = Classification(
            message_id=f"refused-at-send:{delivery.id}",
            failures=(Failure(delivery.email, kind, delivery.reply),),
            delivery_ids=(delivery.id,),
        )
        try:
            with session.begin_nested():
                report.add(*record(session, settings, refusal))
        except IntegrityError:  # another process finishing this send recorded it first
            continue
    return report


def _targets(session: Session, classification: Classification) -> list[tuple[Failure, Delivery | None, Subscriber | None]]:
    """Who each failure is about: the delivery its signed return path names, else the address the report gives.

    One delivery is one recipient, so a return path makes one target, with the
    report's most serious failure (the report may name a forwarding address).
    """
    for delivery_id in classification.delivery_ids:
        delivery = session.get(Delivery, delivery_id)
        if delivery is not None:
            failure = next(f for f in classification.failures if f.kind == classification.kind)
            subscriber = session.get(Subscriber, delivery.subscriber_id) if delivery.subscriber_id else None
            return [(failure, delivery, subscriber)]
    return [
        (failure, None, subscribers.get_by_email(session, email=failure.address) if failure.address else None)
        for failure in classification.worst_per_address()
    ]


def _apply(session: Session, settings: Settings, bounce: Bounce, subscriber_id: int) -> None:
    detail = f"{bounce.diagnostic or 'no diagnostic given'} (report {bounce.message_id})"
    if bounce.kind == BounceKind.permanent:
        subscribers.mark_bounced(session, subscriber_id=subscriber_id, detail=detail, send_id=bounce.send_id)
    elif bounce.kind == BounceKind.temporary:
        subscribers.record_soft_bounce(
            session, subscriber_id=subscriber_id, detail=detail, send_id=bounce.send_id,
            limit=settings.bounce_soft_limit, window_days=settings.bounce_soft_window_days,
        )
    else:
        subscribers.mark_complained(session, subscriber_id=subscriber_id, detail=detail, send_id=bounce.send_id)
