"""The welcome email: an issue file (`welcome_issue`) sent once to each new reader, in their language.

It goes through the delivery engine like any issue (rate limits, retries, DKIM, the
exactly-once queue), as a welcome send (`SendKind.welcome`): one send per version of
the welcome file, open while it is the current one, its audience added one reader at
a time. A reader is added in the same transaction that makes them active (the
confirmation, or `mailer subscribers add --welcome`), so a welcome is never lost nor
doubled: a second click on the link finds them active already, a reader who was ever
welcomed is not welcomed again, and the database refuses a second delivery row for
one reader of one send. What is queued is delivered at once in the background, and
otherwise by the runner, which resumes any send with queued deliveries (after a
restart, too).

The welcome send is replaced by a new one when the file is edited (its content
differs); the old one finishes when nothing of it is waiting. When no welcome issue
is set, nothing is sent.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, exists
from sqlmodel import Session, col, select

from mailer.config import Settings
from mailer.content import load_issue
from mailer.delivery.sends import create_send, enqueue, freeze, set_status
from mailer.errors import MailerError, SendError
from mailer.store.db import new_session
from mailer.store.models import (
    Delivery,
    DeliveryStatus,
    Send,
    SendKind,
    SendStatus,
    Subscriber,
    SubscriberStatus,
    stored_id,
)

if TYPE_CHECKING:
    from mailer.delivery.report import SendReport

log = logging.getLogger("mailer.welcome")

RETRY_SECONDS = 5.0  # while another process holds the welcome send's lease
RETRIES = 36  # three minutes: past the lease of a process that died holding it


def open_sends(session: Session) -> list[Send]:
    """The welcome sends still open (sending, or paused by a person or after faults), newest first."""
    return list(session.scalars(select(Send)
                                .where(col(Send.kind) == SendKind.welcome,
                                       col(Send.status).in_([SendStatus.sending, SendStatus.paused]))
                                .order_by(col(Send.id).desc())))


def current_send(session: Session, settings: Settings) -> Send | None:
    """The open welcome send for the welcome issue as its file is now; None when no welcome issue is set.

    Made (rendered and frozen) the first time, and again when the file was edited
    into something different (older welcome sends then finish once nothing of
    theirs waits). A paused one holds every welcome, edited or not, until it is
    resumed. `IssueError` or `MailerError` when the file cannot be used.
    """
    if not settings.welcome_issue:
        return None
    path = Path(settings.welcome_issue)
    latest = next(iter(open_sends(session)), None)
    if latest is not None and latest.status == SendStatus.paused:
        return latest
    if latest is None or latest.issue_path != str(path) or _edited_since(path, latest):
        content, _ = freeze(settings, load_issue(path))
        if latest is None or latest.issue_path != str(path) or hashlib.sha256(content).hexdigest() != latest.content_hash:
            latest = create_send(session, settings=settings, issue_path=path, kind=SendKind.welcome)
    _close_replaced(session, keep=stored_id(latest))
    return latest


def _edited_since(path: Path, send: Send) -> bool:
    try:
        edited = datetime.fromtimestamp(path.stat().st_mtime, UTC).replace(tzinfo=None)
    except OSError:
        return True  # gone or unreadable: loading it says what is wrong
    return edited >= send.created_at


def _close_replaced(session: Session, *, keep: int) -> None:
    for send in open_sends(session):
        send_id = stored_id(send)
        waiting = session.scalar(select(exists().where(
            col(Delivery.send_id) == send_id,
            col(Delivery.status).in_([DeliveryStatus.queued, DeliveryStatus.deferred]))))
        if send_id != keep and send.status == SendStatus.sending and not waiting:
            set_status(session, send_id=send_id, status=SendStatus.finished, note=f"replaced by welcome send {keep}")


def prepare(settings: Settings, engine: Engine) -> int | None:
    """The id of the welcome send a reader confirming now is added to, or None (no welcome issue set).

    Called before the confirmation's own transaction (it may render and commit a new
    welcome send). A welcome file broken by an edit does not stop anyone joining: the
    welcome as it was before is used, and the problem logged.
    """
    with new_session(engine) as session:
        try:
            send = current_send(session, settings)
        except MailerError as exc:
            session.rollback()
            fallback = next(iter(open_sends(session)), None)
            log.error("welcome issue %s cannot be used (%s); %s", settings.welcome_issue, exc,
                      f"using welcome send {fallback.id} as it was" if fallback else "no welcome is sent")
            return fallback.id if fallback else None
        return send.id if send else None


def welcomed(session: Session, *, subscriber_id: int) -> bool:
    """Whether the subscriber was ever queued a welcome (of any version)."""
    return bool(session.scalar(select(exists().where(
        col(Delivery.subscriber_id) == subscriber_id, col(Delivery.send_id) == col(Send.id),
        col(Send.kind) == SendKind.welcome))))


def add_reader(session: Session, *, send_id: int | None, subscriber_id: int) -> bool:
    """Queue the welcome for a subscriber who is active and was never welcomed; True when queued.

    Commits, together with whatever the session holds: call it right after the change
    that made them active, so both are kept or neither.
    """
    if send_id is None or welcomed(session, subscriber_id=subscriber_id):
        return False
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.status != SubscriberStatus.active:
        return False
    return enqueue(session, send_id=send_id, subscriber_ids=[subscriber_id]) > 0


def deliver_queued(settings: Settings, engine: Engine, send_id: int) -> SendReport | None:
    """Deliver what the welcome send has queued. While another process holds it, wait and try again:
    it may have made its last pass before this reader was queued. None when nothing is left to do."""
    from mailer.delivery.engine import deliver  # the pages load this module; the engine only when a welcome goes

    for _ in range(RETRIES):
        if not _queued(engine, send_id):
            return None  # delivered by another process, paused (it waits for a resume) or cancelled
        try:
            return deliver(settings, send_id, expected=SendStatus.sending)  # a person's pause since stands
        except SendError as exc:
            log.info("welcome send %s: %s; trying again in %g s", send_id, exc, RETRY_SECONDS)
            time.sleep(RETRY_SECONDS)
    log.warning("welcome send %s stayed busy; the runner delivers what it has queued", send_id)
    return None


def _queued(engine: Engine, send_id: int) -> bool:
    """Whether the send is still open with a delivery never tried."""
    with new_session(engine) as session:
        return bool(session.scalar(select(exists().where(
            col(Send.id) == send_id, col(Send.status) == SendStatus.sending,
            col(Delivery.send_id) == col(Send.id), col(Delivery.status) == DeliveryStatus.queued))))


def deliver_in_background(settings: Settings, engine: Engine, send_id: int) -> None:
    """After the confirmation page has gone: nothing here may fail the request, and the queue keeps the welcome."""
    try:
        report = deliver_queued(settings, engine, send_id)
        if report is not None:
            log.info("welcome: %s", report)
    except Exception:  # the welcome stays queued; the runner (or the next confirmation) delivers it
        log.exception("welcome send %s not delivered now; it stays queued", send_id)
