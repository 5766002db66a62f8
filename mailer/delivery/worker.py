"""`mailer worker`: extra sending processes for PostgreSQL, on this machine or others.

A worker takes no lease. It joins any send that is `sending` (started by
`mailer send` or the scheduler), claims batches with `FOR UPDATE SKIP LOCKED`
so no two processes ever hold the same delivery, and commits each outcome as
it happens, so a worker whose machine disappears leaves nothing unrecorded but
the message in flight. Rate limits apply per process: give each worker its
share of the provider's limit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import exists, select
from sqlmodel import Session, col

from mailer.config import Settings
from mailer.delivery import queue
from mailer.delivery.dkim import signer_for
from mailer.delivery.engine import FAULTS, Run, fault_message, open_database
from mailer.delivery.owners import new_owner
from mailer.delivery.report import SendReport
from mailer.errors import SendError, SendInterrupted
from mailer.store.db import new_session, require_current
from mailer.store.models import Delivery, Send, SendStatus, utcnow

log = logging.getLogger(__name__)
POLL = 5.0  # seconds between looks for work when there is none


def run_worker(settings: Settings, *, send_id: int | None = None, once: bool = False,
               stop: threading.Event | None = None, on_report: Callable[[SendReport], object] | None = None) -> int:
    """Work on sending sends until stopped (or, with `once`, until nothing is due); returns messages sent."""
    signer = signer_for(settings)
    engine = open_database(settings)
    if engine.dialect.name != "postgresql":
        engine.dispose()
        raise SendError("`mailer worker` needs PostgreSQL; with SQLite one process sends (`mailer send`, `mailer run`)")
    stop = stop or threading.Event()
    owner = new_owner()
    sent = 0
    try:
        require_current(engine)
        while not stop.is_set():
            with new_session(engine) as session:
                due = _sends_with_work(session, send_id)
            for due_id in due:
                if stop.is_set():
                    break
                with new_session(engine) as session:
                    send = session.get(Send, due_id)
                if send is None:
                    continue  # deleted since it was listed
                with engine.connect() as conn:
                    queue.release_dead(conn, send_id=due_id)
                run = Run(settings, engine, send, owner, signer=signer, stop=stop)
                try:
                    run.run()
                except FAULTS as exc:
                    raise SendInterrupted(fault_message(exc, due_id)) from exc
                sent += run.sent_now
                report = run.report()
                log.info("%s (worker %s)", report, owner)
                if on_report:
                    on_report(report)
            if once and not due:
                break
            if not due:
                stop.wait(POLL)
    finally:
        engine.dispose()
    return sent


def _sends_with_work(session: Session, send_id: int | None) -> list[int]:
    """Sends being sent that have deliveries due now (queued, or deferred and due, not claimed by a live process)."""
    query = select(col(Send.id)).where(col(Send.status) == SendStatus.sending, exists().where(
        col(Delivery.send_id) == col(Send.id), queue.due(utcnow())))
    if send_id is not None:
        query = query.where(col(Send.id) == send_id)
    return [found for found in session.execute(query.order_by(col(Send.id))).scalars() if found is not None]
