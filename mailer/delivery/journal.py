"""Recording outcomes so that a crash can never cause a second copy (beyond the one in flight).

Two recorders behind one interface, chosen by the database:

- SQLite: `JournalRecorder`. Each acceptance is appended to a journal file
  beside the database with one `write()` (about a microsecond; it survives
  SIGKILL because it is in the kernel's page cache), and outcomes reach the
  database in batches twice a second. A run that starts on a send first folds
  any journal left by a dead run into the database. Measured: a commit per
  message cost 70-300 microseconds and halved throughput.
- PostgreSQL: `CommitRecorder`. One commit per message. Workers on several
  machines share a send, so nothing may live only on one machine's disk; the
  round trip is paid per connection, and more workers buy it back.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, Engine, bindparam, func, text, update

from mailer.delivery import queue
from mailer.delivery.queue import Outcome
from mailer.store.models import Delivery, DeliveryStatus

FLUSH = 0.5  # seconds between batched database writes (and journal fsyncs)


class Recorder(Protocol):
    def record(self, outcome: Outcome) -> None:
        """Called by a sending thread as soon as the server answered; on return a `sent` outcome survives a crash."""
        ...

    def flush(self) -> None:
        """Write what is recorded to the database (called twice a second by the feeding thread)."""
        ...

    def close(self) -> None: ...


def recorder_for(engine: Engine, send_id: int, owner: str) -> Recorder:
    folder = journal_folder(engine)
    return JournalRecorder(engine, folder / f"send-{send_id}-{owner}.log") if folder else CommitRecorder(engine)


def journal_folder(engine: Engine) -> Path | None:
    """`<database file>.sendlog/` for a SQLite file; None for other databases."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return Path(f"{database}.sendlog")


class CommitRecorder:
    """Commits each outcome on the sending thread's own connection."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.local = threading.local()
        self.connections: list[Connection] = []
        self.lock = threading.Lock()

    def record(self, outcome: Outcome) -> None:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = self.engine.connect()
            with self.lock:
                self.connections.append(conn)
        queue.record(conn, outcome)

    def flush(self) -> None:
        """Nothing waits: every outcome is committed when recorded."""

    def close(self) -> None:
        for conn in self.connections:
            conn.close()


class JournalRecorder:
    """Appends acceptances to a journal file at once; writes outcomes to the database in batches."""

    def __init__(self, engine: Engine, path: Path) -> None:
        self.engine = engine
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.lock = threading.Lock()
        self.pending: list[Outcome] = []

    def record(self, outcome: Outcome) -> None:
        if outcome.status is DeliveryStatus.sent:
            os.write(self.fd, journal_line(outcome))  # one write() with O_APPEND: whole lines, even across threads
        with self.lock:
            self.pending.append(outcome)

    def flush(self) -> None:
        with self.lock:
            outcomes, self.pending = self.pending, []
        if not outcomes:
            return
        os.fsync(self.fd)  # a power loss costs at most the last half second
        try:
            with self.engine.connect() as conn:
                queue.record_many(conn, outcomes)
        except BaseException:
            with self.lock:  # keep them for the next try; the journal keeps the acceptances anyway
                self.pending[:0] = outcomes
            raise

    def close(self) -> None:
        """Flush, make the database durable, then drop the journal it no longer needs."""
        self.flush()
        os.close(self.fd)
        with self.engine.connect() as conn:
            conn.execute(text("PRAGMA wal_checkpoint(FULL)"))
        self.path.unlink(missing_ok=True)


def journal_line(outcome: Outcome) -> bytes:
    reply = " ".join(outcome.reply.split())
    return (f"{outcome.delivery_id}\t{outcome.at.isoformat()}\t{outcome.email}\t{outcome.message_id}\t{reply}\n"
            .encode())


def read_journal(path: Path) -> Iterator[dict[str, object]]:
    """The acceptances in a journal; a torn last line (the process died mid-write) is ignored."""
    for line in path.read_bytes().decode("utf-8", "replace").split("\n"):
        fields = line.split("\t")
        if len(fields) != 5 or not fields[0].isdigit():
            continue
        yield {"delivery_id": int(fields[0]), "at": datetime.fromisoformat(fields[1]), "email": fields[2],
               "message_id": fields[3], "reply": fields[4]}


_RECONCILE = (
    update(Delivery).where(Delivery.id == bindparam("delivery_id"), Delivery.status != DeliveryStatus.sent)
    .values(status=DeliveryStatus.sent, sent_at=bindparam("at"), email=bindparam("email"),
            message_id=bindparam("message_id"), reply=bindparam("reply"), attempts=Delivery.attempts + 1,
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
