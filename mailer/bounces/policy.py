"""Act on what the bounce mailbox says, through the store's subscriber services.

A permanent failure marks the subscriber bounced at once; temporary failures
are counted, and `bounce_soft_limit` of them within `bounce_soft_window_days`
mark them bounced; a complaint marks them complained, which stops all mail; an
ARF opt-out report and a message to a reader's signed unsubscribe address
unsubscribe them.

Only a report about a delivery of ours changes anyone: one that carries its
validly signed return path (VERP) or the Message-ID this system gave it. It
then changes that delivery's subscriber only, whatever addresses it names (a
reader's mail is often forwarded). Anything else, such as a hand-written
"bounce" from MAILER-DAEMON@attacker.example naming ten subscribers, is
recorded as unverified and changes nobody.

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

from sqlalchemy import Engine, exists
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from mailer.bounces.classify import MAX_MESSAGE_BYTES, TOO_BIG, Classification, Failure, MalformedMessage, classify
from mailer.bounces.mailbox import Mailbox, display_name, open_mailbox
from mailer.bounces.rules import failed
from mailer.bounces.unsubscribe import Request, request_in
from mailer.config import Settings
from mailer.errors import BounceError
from mailer.store import subscribers
from mailer.store.db import make_engine, new_session, require_current
from mailer.store.models import Bounce, BounceKind, Delivery, DeliveryStatus, Subscriber, SubscriberStatus, stored_id

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())  # `mailer bounces process` prints skipped messages itself; `mailer run` sets up logging


@dataclass
class ProcessReport:
    """What one pass over the mailbox did."""

    mailbox: str
    permanent: int = 0
    temporary: int = 0
    complaints: int = 0
    unmatched: int = 0  # about a delivery of ours whose subscriber is gone (recorded all the same)
    unverified: int = 0  # naming no delivery of ours: recorded, nobody changed
    unsubscribed: int = 0  # unsubscribe requests by mail and ARF opt-out reports acted on
    ignored: int = 0  # not bounces (and unsubscribe mails without a valid token): left in the mailbox
    duplicates: int = 0  # recorded already (by an earlier run, or another reader just now): only moved
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (message, why): left in the mailbox
    changes: list[tuple[str, str]] = field(default_factory=list)  # (address, new status)

    def __str__(self) -> str:
        return (
            f"{self.mailbox}: {self.permanent} permanent, {self.temporary} temporary, {self.complaints} complaints"
            f" ({self.unverified} unverified, changing nobody; {self.unmatched} naming nobody on the list);"
            f" {self.unsubscribed} unsubscribe requests; {self.duplicates} already recorded;"
            f" left in place: {self.ignored} not bounces, {len(self.skipped)} skipped."
        )

    @property
    def eventful(self) -> bool:
        """Whether the pass recorded, moved or skipped anything (what the runner logs)."""
        return bool(self.permanent or self.temporary or self.complaints or self.unsubscribed or self.duplicates
                    or self.skipped)

    def add(self, bounces: Sequence[Bounce], changes: Sequence[tuple[str, str]]) -> None:
        """Count what one message recorded, once it is committed."""
        for bounce in bounces:
            if bounce.kind == BounceKind.permanent:
                self.permanent += 1
            elif bounce.kind == BounceKind.temporary:
                self.temporary += 1
            else:
                self.complaints += 1
            if not bounce.verified:
                self.unverified += 1
            elif bounce.subscriber_id is None:
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
        found = request_in(settings, data) or classify(settings, data)  # an unsubscribe request, else maybe a report
    except MalformedMessage as exc:
        _skip(report, key, str(exc))
        return
    except Exception as exc:  # a message we cannot read must not stop the others; the traceback goes to the log
        log.exception("bounce mailbox %s: error reading message %s", report.mailbox, key)
        _skip(report, key, f"could not be read: {exc!r}")
        return
    if isinstance(found, Request):
        if found.subscriber_id is None:
            log.warning("bounce mailbox %s: message %s to the unsubscribe address has no valid token: left in place",
                        report.mailbox, key)
            report.ignored += 1
            return
        with new_session(engine) as session:
            _unsubscribe(session, report, found.subscriber_id, send_id=found.send_id, channel="email")
            session.commit()
    elif found.opt_out:
        with new_session(engine) as session:
            delivery = _verified_delivery(session, settings, found)
            if delivery is None or delivery.subscriber_id is None:
                report.ignored += 1
                return
            _unsubscribe(session, report, delivery.subscriber_id, send_id=delivery.send_id, channel="feedback-report")
            session.commit()
    elif found.kind is None:
        report.ignored += 1
        return
    else:
        with new_session(engine) as session:
            try:
                bounces, changes = record(session, settings, found)
                session.commit()
            except IntegrityError:
                session.rollback()
                if not already_recorded(session, found.message_id):
                    raise
                report.duplicates += 1
            else:
                report.add(bounces, changes)
    box.move_to_handled(key)


def _unsubscribe(session: Session, report: ProcessReport, subscriber_id: int, *, send_id: int | None, channel: str) -> None:
    """A reader's own request (their signed token, or their provider's opt-out report): unsubscribe them.

    Someone who bounced or complained keeps that status, which says more; their
    history records the request all the same, and the report counts only changes.
    """
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.status == SubscriberStatus.unsubscribed:
        return
    before = subscriber.status
    subscribers.unsubscribe(session, subscriber_id=subscriber_id, channel=channel, send_id=send_id)
    if subscriber.status != before:
        report.unsubscribed += 1
        report.changes.append((subscriber.email, str(subscriber.status)))


def _skip(report: ProcessReport, key: str, reason: str) -> None:
    log.warning("bounce mailbox %s: skipped message %s, left in place: %s", report.mailbox, key, reason)
    report.skipped.append((key, reason))


def already_recorded(session: Session, message_id: str) -> bool:
    return session.scalar(select(Bounce.id).where(Bounce.message_id == message_id).limit(1)) is not None


def record(session: Session, settings: Settings, classification: Classification) -> tuple[list[Bounce], list[tuple[str, str]]]:
    """Store the bounce rows of one message and apply the policy to the subscriber they are about (no commit).

    Returns the rows and the status changes (address, new status). `IntegrityError` when
    the report is recorded already.
    """
    bounces: list[Bounce] = []
    changes: list[tuple[str, str]] = []
    delivery = _verified_delivery(session, settings, classification)
    targets: list[tuple[Failure, Delivery | None]]
    if delivery is None:  # naming no delivery of ours: kept for the report, acted on never
        targets = [(failure, None) for failure in classification.worst_per_address()]
    else:
        targets = [(classification.worst(), delivery)]
    for failure, target in targets:
        bounce = Bounce(
            kind=failure.kind,
            subscriber_id=target.subscriber_id if target else None,
            delivery_id=target.id if target else None,
            send_id=target.send_id if target else None,
            address=target.email if target else failure.address,
            diagnostic=failure.diagnostic,
            message_id=classification.message_id,
            rule=failure.rule,
            code=failure.code,
            verified=target is not None,
        )
        session.add(bounce)
        bounces.append(bounce)
        if bounce.subscriber_id is None:
            continue
        subscriber = session.get(Subscriber, bounce.subscriber_id)
        if subscriber is None:
            continue
        before = subscriber.status
        _apply(session, settings, bounce, bounce.subscriber_id)
        if subscriber.status != before:
            changes.append((subscriber.email, str(subscriber.status)))
    session.flush()
    return bounces, changes


def _verified_delivery(session: Session, settings: Settings, classification: Classification) -> Delivery | None:
    """The delivery a report is about: named by a validly signed return path, or by the Message-ID this
    system gave it. None when the report carries neither (it may be forged)."""
    for delivery_id in classification.delivery_ids:
        delivery = session.get(Delivery, delivery_id)
        if delivery is not None:
            return delivery
    if classification.message_ids:
        return session.scalars(
            select(Delivery).where(col(Delivery.message_id).in_(classification.message_ids)).order_by(col(Delivery.id)).limit(1)
        ).first()
    return None


def record_refusals(session: Session, settings: Settings, *, send_id: int) -> ProcessReport:
    """Treat the addresses a server refused while sending (a 5xx reply to RCPT or DATA) as bounces.

    The same rule table applies as to a bounce message: "550 5.1.1 no such user"
    marks the subscriber bounced at once, while a 5.7.x spam block or a refusal
    of the sender only counts as a temporary failure. Each refused delivery is
    recorded once, even when several processes finish the same send at once (no commit).
    """
    report = ProcessReport(mailbox=f"send {send_id}")
    refused = session.scalars(
        select(Delivery).where(
            Delivery.send_id == send_id,
            Delivery.status == DeliveryStatus.failed,
            col(Delivery.reply_code).between(500, 599),  # as every transport reports it
            ~exists().where(col(Bounce.delivery_id) == Delivery.id),
        )
    ).all()
    for delivery in refused:
        delivery_id = stored_id(delivery)
        refusal = Classification(
            message_id=f"refused-at-send:{delivery_id}",
            failures=(failed(delivery.email, delivery.reply, [delivery.reply]),),
            delivery_ids=(delivery_id,),
        )
        try:
            with session.begin_nested():
                report.add(*record(session, settings, refusal))
        except IntegrityError:  # another process finishing this send recorded it first
            continue
    return report


def _apply(session: Session, settings: Settings, bounce: Bounce, subscriber_id: int) -> None:
    detail = describe(bounce)
    if bounce.kind == BounceKind.permanent:
        subscribers.mark_bounced(session, subscriber_id=subscriber_id, detail=detail, send_id=bounce.send_id)
    elif bounce.kind == BounceKind.temporary:
        subscribers.record_soft_bounce(
            session, subscriber_id=subscriber_id, detail=detail, send_id=bounce.send_id,
            limit=settings.bounce_soft_limit, window_days=settings.bounce_soft_window_days,
        )
    else:
        subscribers.mark_complained(session, subscriber_id=subscriber_id, detail=detail, send_id=bounce.send_id)


def describe(bounce: Bounce) -> str:
    """What the history says about a bounce: the rule, the code, the report, the server's words."""
    code = f", code {bounce.code}" if bounce.code else ""
    return f"rule {bounce.rule or 'none'}{code}, report {bounce.message_id}: {bounce.diagnostic or 'no diagnostic given'}"
