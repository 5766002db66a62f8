"""Recording outcomes so that a crash can never cause a second copy (beyond the one in flight).

Two recorders behind one interface, chosen by the database:

- SQLite: `JournalRecorder`. Each acceptance is appended to a journal file
  beside the database with one `write()` (about a microsecond; it survives
  SIGKILL because it is in the kernel's page cache), and outcomes reach the
  database in batches twice a second. A run that starts on a send first folds
  any journal left by a dead run into the database. Measured: a commit per
  message cost 70-300 microseconds and halved throughput. A write the disk
  cuts short (full) is taken back and raises `JournalError`, so the sending
  thread stops before its next message.
- PostgreSQL: `CommitRecorder`. One commit per message, on the sending thread's
  own connection. Workers on several machines share a send, so nothing may live
  only on one machine's disk; the round trip is paid per connection, and more
  workers buy it back.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, Engine, bindparam, func, text, update
from sqlmodel import col

from mailer.delivery import queue
from mailer.delivery.queue import Outcome
from mailer.store.models import Delivery, DeliveryStatus

FLUSH = 0.5  # seconds between batched database writes (and journal fsyncs)


class JournalError(OSError):
    """An acceptance could not be written to the journal (the disk is full or failing)."""


class Recorder(Protocol):
    def record(self, outcome: Outcome, conn: Connection) -> None:
        """Called by a sending thread, on its own connection, as soon as the server answered;
        on return a `sent` outcome survives a crash. Raises when it cannot promise that."""
        ...

    def flush(self) -> None:
        """Write what is recorded to the database (called twice a second by the feeding thread)."""
        ...

    def close(self) -> None: ...


def recorder_for(engine: Engine, send_id: int, owner: str) -> Recorder:
    folder = journal_folder(engine)
    return JournalRecorder(engine, folder / f"send-{send_id}-{owner}.log") if folder else CommitRecorder()


def journal_folder(engine: Engine) -> Path | None:
    """`<database file>.sendlog/` for a SQLite file; None for other databases."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return Path(f"{database}.sendlog")


class CommitRecorder:
    """Commits each outcome on the sending thread's own connection."""

    def record(self, outcome: Outcome, conn: Connection) -> None:
        queue.record(conn, outcome)

    def flush(self) -> None:
        """Nothing waits: every outcome is committed when recorded."""

    def close(self) -> None:
        """Nothing held."""


class JournalRecorder:
    """Appends acceptances to a journal file at once; writes outcomes to the database in batches."""

    def __init__(self, engine: Engine, path: Path) -> None:
        self.engine = engine
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.lock = threading.Lock()
        self.pending: list[Outcome] = []

    def record(self, outcome: Outcome, conn: Connection) -> None:
        with self.lock:
            self.pending.append(outcome)  # kept for the database even when the journal fails
            if outcome.status is DeliveryStatus.sent:
                self._append(journal_line(outcome))

    def _append(self, line: bytes) -> None:
        """One whole line or nothing (the lock is held, so no other thread writes meanwhile)."""
        size = os.fstat(self.fd).st_size
        try:
            written = os.write(self.fd, line)
        except OSError as exc:
            os.ftruncate(self.fd, size)
            raise JournalError(exc.errno, f"cannot write the send journal {self.path}: {exc.strerror}") from exc
        if written != len(line):  # a full disk takes part of it: take that back
            os.ftruncate(self.fd, size)
            raise JournalError(f"cannot write the send journal {self.path}: the disk took {written} of "
                               f"{len(line)} bytes (full?)")

    def flush(self) -> None:
        with self.lock:
            outcomes, self.pending = self.pending, []
        if not outcomes:
            return
        try:
            os.fsync(self.fd)  # a power loss costs at most the last half second
            with self.engine.connect() as conn:
                queue.record_many(conn, outcomes)
        except BaseException:
            with self.lock:  # keep them for the next try; the journal keeps the acceptances anyway
                self.pending[:0] = outcomes
            raise

    def close(self) -> None:
        """Flush, make the database durable, then drop the journal it no longer needs.

        When that fails the journal stays, and the next run on the send folds it in.
        """
        try:
            self.flush()
            with self.engine.connect() as conn:
                conn.execute(text("PRAGMA wal_checkpoint(FULL)"))
        finally:
            os.close(self.fd)
        self.path.unlink(missing_ok=True)


def journal_line(outcome: Outcome) -> bytes:
    """`id, time, address, Message-ID, reply code, reply`, tab-separated."""
    reply = " ".join(outcome.reply.split())
    code = "" if outcome.code is None else str(outcome.code)
    return (f"{outcome.delivery_id}\t{outcome.at.isoformat()}\t{outcome.email}\t{outcome.message_id}\t{code}\t"
            f"{reply}\n").encode()


def read_journal(path: Path) -> Iterator[dict[str, object]]:
    """The acceptances in a journal; a torn last line (the process died mid-write) is ignored.

    Lines of five fields (no reply code) were written before the code had a column.
    """
    for line in path.read_bytes().decode("utf-8", "replace").split("\n"):
        fields = line.split("\t")
        if len(fields) == 5:
            fields.insert(4, fields[4][:3])
        if len(fields) != 6 or not fields[0].isdigit():
            continue
        yield {"delivery_id": int(fields[0]), "at": datetime.fromisoformat(fields[1]), "email": fields[2],
               "message_id": fields[3], "code": int(fields[4]) if fields[4].isdigit() else None,
               "reply": fields[5]}


_RECONCILE = (
    update(Delivery).where(col(Delivery.id) == bindparam("delivery_id"), col(Delivery.status) != DeliveryStatus.sent)
    .values(status=DeliveryStatus.sent, sent_at=bindparam("at"), email=bindparam("email"),
            message_id=bindparam("message_id"), reply=bindparam("reply"), reply_code=bindparam("code"),
            attempts=Delivery.attempts + 1,
            first_attempt_at=func.coalesce(Delivery.first_attempt_at, bindparam("at")), next_attempt_at=None,
            claimed_by="")
)


def reconcile(engine: Engine, send_id: int) -> int:
    """Fold the journals that dead runs left for a send into the database; returns the deliveries marked sent.

    Only call it while holding the send's lease: then no live process writes those files.
    """
    folder = journal_folder(engine)
    if folder is None or not folder.is_dir():
        return 0
    marked = 0
    for path in sorted(folder.glob(f"send-{send_id}-*.log")):
        rows = list(read_journal(path))
        if rows:
            with engine.connect() as conn:
                marked += conn.execute(_RECONCILE, rows).rowcount
                conn.commit()
        path.unlink()
    return marked
