"""A send's status: every change goes through here, and only along the moves `MOVES` lists.

    draft ─────────┬──> sending ──> finished
    scheduled ─────┤      │ ^
      │  ^  (move) │      │ └──── paused, failed   (resumed)
      v  │         │      ├─────> paused   (by hand, or by the engine after faults in a row)
    missed ────────┘      └─────> failed   (a bug; nothing lost, resumed by hand)
    any of draft, scheduled, missed, sending, paused, failed ──> cancelled

`finished` and `cancelled` are final. `sending -> sending` is a resume (after a crash, or
of deferred retries). The engine's pause carries `resume_at`, when the runner resumes the send
(`paused -> sending`); every change clears it unless the change sets it, so a person's pause,
resume or cancel takes over, and `paused -> paused` is a person holding a send the engine paused.
Each change is one conditional UPDATE on the status it was read in,
so a change made meanwhile by another process (a pause typed while the engine finishes
the send) is never overwritten: the later writer is told, or finds nothing to do.
Like the store's services these functions never commit: the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import TypedDict, Unpack

from sqlalchemy import ColumnElement, Connection, CursorResult, select, update
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col

from mailer.errors import NotFound, SendError
from mailer.store.models import Send, SendStatus

S = SendStatus
MOVES: dict[SendStatus, frozenset[SendStatus]] = {
    S.draft: frozenset({S.sending, S.cancelled}),
    S.scheduled: frozenset({S.scheduled, S.sending, S.missed, S.cancelled}),
    S.missed: frozenset({S.scheduled, S.sending, S.cancelled}),
    S.sending: frozenset({S.sending, S.paused, S.finished, S.failed, S.cancelled}),
    S.paused: frozenset({S.sending, S.paused, S.cancelled}),
    S.failed: frozenset({S.sending, S.cancelled}),
    S.finished: frozenset(),
    S.cancelled: frozenset(),
}
VERBS = {S.sending: "sent", S.scheduled: "scheduled", S.missed: "marked missed", S.paused: "paused",
         S.finished: "marked finished", S.failed: "marked failed", S.cancelled: "cancelled", S.draft: "made a draft"}


def sources(to: SendStatus) -> frozenset[SendStatus]:
    """The statuses a send may move to `to` from."""
    return frozenset(status for status, targets in MOVES.items() if to in targets)


def check(send_id: int, current: SendStatus, to: SendStatus) -> None:
    """Refuse, naming the send's status, a move the table does not list."""
    if to not in MOVES[current]:
        raise SendError(f"send {send_id} is {current}; it cannot be {VERBS[to]}")


def status_of(db: Session | Connection, send_id: int) -> SendStatus:
    """The send's status as the database has it now."""
    status = db.execute(select(col(Send.status)).where(col(Send.id) == send_id)).scalar_one_or_none()
    if status is None:
        raise NotFound(f"no send with id {send_id} (see `mailer sends list`)")
    return SendStatus(status)


class StatusReader:
    """Reads one send's status again and again, cheaply: the engine reads it before every message.

    The statement is compiled once and run on the driver's own cursor: 15 µs a read against
    150 µs through SQLAlchemy's `Connection` (SQLite, measured), which at a thousand messages a
    second is the difference between 2 % and 15 % of the time. `conn` must commit each statement
    by itself (AUTOCOMMIT), so each read sees the latest change.
    """

    def __init__(self, conn: Connection, send_id: int) -> None:
        query = select(col(Send.status)).where(col(Send.id) == send_id)
        self.sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        self.driver_error = conn.dialect.loaded_dbapi.Error
        driver_connection = conn.connection.dbapi_connection
        assert driver_connection is not None  # None only once the connection is given back or invalidated
        self.cursor = driver_connection.cursor()

    def __call__(self) -> SendStatus | None:
        try:
            self.cursor.execute(self.sql)
            row = self.cursor.fetchone()
        except self.driver_error as exc:  # as SQLAlchemy would have raised it
            raise DBAPIError.instance(self.sql, None, exc, self.driver_error) from exc
        return SendStatus(row[0]) if row else None


class Times(TypedDict, total=False):
    """The times (and the count of pauses after faults) a move may set with the status."""

    started_at: datetime
    finished_at: datetime
    scheduled_at: datetime
    resume_at: datetime | None
    fault_pauses: int


def move(db: Session | Connection, *, send_id: int, to: SendStatus, note: str = "",
         when: Collection[ColumnElement[bool]] = (), **values: Unpack[Times]) -> SendStatus:
    """Move a send to `to` from the status it has now, if the table allows it; returns the old status.

    Refuses, naming the send's status, a move the table does not list, and a send whose status
    (or anything in `when`) changed between the read and the write.
    """
    current = status_of(db, send_id)
    check(send_id, current, to)
    if not change(db, send_id=send_id, to=to, from_=(current,), note=note, when=when, **values):
        raise SendError(f"send {send_id} changed meanwhile; look again with `mailer sends show {send_id}`")
    return current


def change(db: Session | Connection, *, send_id: int, to: SendStatus, from_: Collection[SendStatus],
           note: str | None = None, when: Collection[ColumnElement[bool]] = (), **values: Unpack[Times]) -> bool:
    """Move a send to `to` only if it is now in one of `from_` (and `when` holds); False if it is not.

    For processes that must not overwrite a change made meanwhile, such as the engine ending a
    run on a send somebody paused. Every status in `from_` must be one the table moves to `to`.
    """
    unlisted = set(from_) - sources(to)
    if unlisted:
        raise ValueError(f"no such move: {', '.join(sorted(unlisted))} -> {to}")
    fields: dict[str, object] = {**values, "status": to}
    if note is not None:
        fields["note"] = note
    fields.setdefault("resume_at", None)  # an automatic resume belongs to the pause that set it
    result = db.execute(update(Send).where(col(Send.id) == send_id, col(Send.status).in_(list(from_)), *when)
                        .values(**fields))
    assert isinstance(result, CursorResult)  # an UPDATE's, though a session types it `Result`
    return bool(result.rowcount)
