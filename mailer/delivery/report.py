"""What a send came to: counts per status and language, failures with the server's words, timings."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlmodel import Session, col

from mailer.delivery import queue
from mailer.delivery.sends import get_send
from mailer.store.models import Delivery, DeliveryStatus


@dataclass
class Progress:
    """A snapshot while sending, for progress bars."""

    total: int
    counts: dict[str, int]
    sent_now: int  # by this process, this run
    elapsed: float

    @property
    def done(self) -> int:
        return sum(n for status, n in self.counts.items() if status not in ("queued", "deferred"))

    @property
    def rate(self) -> float:
        return self.sent_now / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def seconds_left(self) -> float | None:
        queued = self.counts.get("queued", 0)
        return queued / self.rate if self.rate > 0 else None


@dataclass
class SendReport:
    send_id: int
    title: str
    status: str
    note: str
    counts: dict[str, int]
    by_language: dict[str, dict[str, int]]
    failures: list[tuple[str, str]]  # (address, reply), the first few
    started_at: datetime | None
    finished_at: datetime | None
    next_retry_at: datetime | None
    sent_now: int = 0
    elapsed: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds spent per stage, this run
    paused_by_fault: bool = False  # this run paused the send (faults in a row), not a person
    resume_at: datetime | None = None  # paused after faults: when the runner resumes it

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def rate(self) -> float:
        return self.sent_now / self.elapsed if self.elapsed > 0 else 0.0

    def __str__(self) -> str:
        counts = ", ".join(f"{n} {status}" for status, n in self.counts.items() if n) or "no recipients"
        line = f"send {self.send_id}: {self.status}; {counts}"
        if self.sent_now:
            line += f" (this run: {self.sent_now} sent in {self.elapsed:.1f} s, {self.rate:.0f}/s)"
        if self.next_retry_at and self.status == "sending":
            line += f"; next retry at {self.next_retry_at:%Y-%m-%d %H:%M} UTC"
        if self.note:
            line += f"; {self.note}"
        if self.resume_at:
            line += f"; resumes automatically at {self.resume_at:%Y-%m-%d %H:%M} UTC"
        return line


def status_counts(session: Session, *, send_id: int) -> dict[str, int]:
    """Deliveries per status, every status present (zeros included), in queue order."""
    rows = session.execute(select(col(Delivery.status), func.count()).where(col(Delivery.send_id) == send_id)
                           .group_by(col(Delivery.status))).all()
    found = {str(status): n for status, n in rows}
    return {status.value: found.get(status.value, 0) for status in DeliveryStatus}


def summarise(session: Session, *, send_id: int, failures: int = 20) -> SendReport:
    send = get_send(session, send_id=send_id)
    session.refresh(send)
    by_language: dict[str, dict[str, int]] = defaultdict(dict)
    for language, status, n in session.execute(
        select(col(Delivery.language), col(Delivery.status), func.count()).where(col(Delivery.send_id) == send_id)
        .group_by(col(Delivery.language), col(Delivery.status))
    ):
        by_language[str(language)][str(status)] = n
    failed = session.execute(
        select(col(Delivery.email), col(Delivery.reply)).where(col(Delivery.send_id) == send_id,
                                                               col(Delivery.status) == DeliveryStatus.failed)
        .order_by(col(Delivery.id)).limit(failures)
    ).all()
    return SendReport(
        send_id=send_id, title=send.title, status=str(send.status), note=send.note,
        counts=status_counts(session, send_id=send_id), by_language=dict(by_language),
        failures=[(email, reply) for email, reply in failed],
        started_at=send.started_at, finished_at=send.finished_at,
        next_retry_at=queue.next_retry(session.connection(), send_id=send_id), resume_at=send.resume_at,
    )
