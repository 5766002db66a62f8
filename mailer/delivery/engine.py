"""The deliver loop: claim a batch, build each message, send it, commit what the server said.

One thread (the caller's) claims batches and builds messages into a small
queue; `smtp_connections` threads each own one connection, take messages from
the queue, wait for the rate limiter, send, and commit the outcome before
taking the next. Building overlaps the network waits of the senders.

A delivery becomes `sent` only in a commit made after the server accepted and
before that connection carries anything else, so a crash at any point leaves
at most one message per connection accepted but unrecorded (see docs/delivery.md).
"""

from __future__ import annotations

import queue as queues
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, Engine, update
from sqlalchemy.exc import OperationalError

from mailer.bounces.policy import record_refusals
from mailer.config import Settings
from mailer.delivery import journal, queue
from mailer.delivery.dkim import DkimSigner, signer_for
from mailer.delivery.lease import LEASE, new_owner, release_lease, renew_lease, take_lease
from mailer.delivery.message import MessageBuilder, Recipient, wire_address
from mailer.delivery.queue import Claimed, Outcome
from mailer.delivery.ratelimit import HOUR, RateLimiter
from mailer.delivery.report import Progress, SendReport, status_counts, summarise
from mailer.delivery.sends import rendered_variants, send_tag, start
from mailer.delivery.transport import open_transport
from mailer.errors import ConnectionFailure, PermanentFailure, TemporaryFailure, TransportError
from mailer.store.db import make_engine, new_session, require_current
from mailer.store.models import DeliveryStatus, Send, SendKind, SendStatus, utcnow

BACKOFF = (timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1), timedelta(hours=4), timedelta(hours=8))
BATCH = 500
HOUSEKEEPING = 10.0  # seconds between lease and claim renewals
# How long after its last renewal a run may go on sending: less than the lease (and
# the claims), so a process held up past it (suspended, frozen VM) stops rather than
# send what another process may have taken over meanwhile.
TRUSTED = LEASE.total_seconds() - 2 * HOUSEKEEPING
PROGRESS = 0.2  # seconds between progress callbacks

ProgressCallback = Callable[[Progress], object]


def deliver(settings: Settings, send_id: int, *, stop: threading.Event | None = None,
            on_progress: ProgressCallback | None = None) -> SendReport:
    """Send (or resume) a send: take its lease, take its audience if not yet done, deliver what is due.

    Returns when nothing is due: deferred retries may remain (the send stays
    `sending` and the report says when the next is due). Resumable at any point.
    """
    signer = signer_for(settings)  # a bad key is refused before anything changes
    engine = make_engine(settings.database_url)
    try:
        require_current(engine)
        owner = new_owner()
        with new_session(engine) as session:
            previous = take_lease(session, send_id=send_id, owner=owner)
            try:
                send = start(session, send_id=send_id)
            except BaseException:
                release_lease(session, send_id=send_id, owner=owner)
                raise
        try:
            journal.reconcile(engine, send_id)
            with engine.connect() as conn:
                queue.release_dead(conn, send_id=send_id, also=previous)
            run = Run(settings, engine, send, owner, signer=signer, stop=stop, on_progress=on_progress, leased=True)
            run.run()
        finally:
            with new_session(engine) as session:
                release_lease(session, send_id=send_id, owner=owner)
        return run.report()
    finally:
        engine.dispose()


_limiters: dict[tuple[str, str, float, int], RateLimiter] = {}
_limiters_lock = threading.Lock()


def limiter_for(settings: Settings, engine: Engine) -> RateLimiter:
    """The process's one limiter for this database and server: sends that run side by side
    (the scheduler runs several) share it, so together they keep to the limits. Its hourly
    window starts from the database's record of the last hour, so a restart does not reset it."""
    key = (settings.database_url, settings.smtp_host, settings.rate_per_second, settings.rate_per_hour)
    with _limiters_lock:
        if key not in _limiters:
            recent: list[float] = []
            if settings.rate_per_hour:
                now, clock = utcnow(), time.monotonic()
                with engine.connect() as conn:
                    sent = queue.sent_since(conn, now - timedelta(seconds=HOUR), settings.rate_per_hour)
                recent = [clock - (now - at).total_seconds() for at in sent]
            _limiters[key] = RateLimiter(per_second=settings.rate_per_second, per_hour=settings.rate_per_hour,
                                         sent_recently=recent)
        return _limiters[key]


@dataclass(slots=True)
class Job:
    claimed: Claimed
    sender: str
    address: str
    message_id: str
    data: bytes


class Run:
    """One process working one send until nothing is due, it is told to stop, or the server keeps failing."""

    def __init__(self, settings: Settings, engine: Engine, send: Send, owner: str, *, signer: DkimSigner | None,
                 stop: threading.Event | None = None, on_progress: ProgressCallback | None = None,
                 leased: bool = False) -> None:
        self.settings = settings
        self.engine = engine
        self.send_id = send.id
        self.owner = owner
        self.stop = stop
        self.on_progress = on_progress
        self.leased = leased
        self.stays_open = send.kind == SendKind.welcome  # waits, open, for the next reader to confirm
        self.builder = MessageBuilder(settings, rendered_variants(send), send_id=send.id,
                                      send_tag=send_tag(settings, send), signer=signer)
        self.limiter = limiter_for(settings, engine)
        self.recorder = journal.recorder_for(engine, send.id, owner)
        rate = min(settings.rate_per_second or BATCH, settings.rate_per_hour / HOUR if settings.rate_per_hour else BATCH)
        self.batch = max(1, min(BATCH, int(rate * 30)))  # about 30 s of sending, so skips stay fresh
        self.jobs: queues.Queue[Job | None] = queues.Queue(maxsize=2 * settings.smtp_connections)
        self.lock = threading.Lock()
        self.in_flight: set[int] = set()
        self.halted = threading.Event()
        self.note = ""
        self.pause = False
        self.errors: list[BaseException] = []
        self.connection_errors = 0
        self.counts: Counter[str] = Counter()
        self.sent_now = 0
        self.timings: Counter[str] = Counter()
        self.started = time.monotonic()
        self._last_progress = 0.0
        self._last_flush = self._last_renewal = time.monotonic()
        self.trusted_until = time.time() + TRUSTED  # wall clock: it runs on while the machine sleeps
        with new_session(engine) as session:
            self.counts.update(status_counts(session, send_id=send.id))

    # --- the feeding thread (the caller's) ------------------------------------------------

    def run(self) -> None:
        senders = [threading.Thread(target=self._send_loop, name=f"mailer-send-{n}", daemon=True)
                   for n in range(self.settings.smtp_connections)]
        for thread in senders:
            thread.start()
        try:
            with self.engine.connect() as conn:
                self._feed(conn)
        except BaseException as exc:
            self.errors.append(exc)
            self._halt("stopped by an error")
        finally:
            self._finish(senders)
        if self.errors:
            raise self.errors[0]

    def _feed(self, conn: Connection) -> None:
        while not self.halted.is_set():
            self._housekeeping()
            started = time.perf_counter()
            batch, skipped = queue.claim(conn, send_id=self.send_id, owner=self.owner, limit=self.batch, now=utcnow())
            self.timings["claim"] += time.perf_counter() - started
            if not batch and not skipped:
                return
            with self.lock:
                self.in_flight.update(claimed.id for claimed in batch)
                for claimed in skipped:
                    self._count(claimed, DeliveryStatus.skipped)
            for claimed in batch:
                if self.halted.is_set():
                    return
                started = time.perf_counter()
                try:
                    job = self._job(claimed)
                except PermanentFailure as exc:  # an address we must not send to
                    self._done(claimed, Outcome(claimed.id, DeliveryStatus.failed, str(exc), utcnow()), None)
                    continue
                self.timings["build"] += time.perf_counter() - started
                self._put(job)

    def _job(self, claimed: Claimed) -> Job:
        address = wire_address(claimed.email)
        recipient = Recipient(email=address, name=claimed.name, language=claimed.language,
                              subscriber_id=claimed.subscriber_id, delivery_id=claimed.id)
        return Job(claimed, self.builder.envelope_sender(recipient), address, self.builder.message_id(recipient),
                   self.builder.build(recipient))

    def _put(self, job: Job | None) -> None:
        while True:
            try:
                self.jobs.put(job, timeout=PROGRESS)
                return
            except queues.Full:
                self._housekeeping()
                if job is not None and self.halted.is_set():
                    return

    def _housekeeping(self) -> None:
        """Progress, outcomes to the database, and every few seconds: renew the lease and claims,
        and notice a pause or cancel."""
        now = time.monotonic()
        if self.stop is not None and self.stop.is_set():
            self._halt("stopped; resume to continue")
        if self.on_progress and now - self._last_progress >= PROGRESS:
            self._last_progress = now
            self.on_progress(self.progress())
        if now - self._last_flush >= journal.FLUSH:
            self._last_flush = now
            started = time.perf_counter()
            self.recorder.flush()
            self.timings["database"] += time.perf_counter() - started
        if now - self._last_renewal < HOUSEKEEPING:
            return
        self._last_renewal = now
        renewing = time.time()
        with new_session(self.engine) as session:
            if self.leased:
                send = renew_lease(session, send_id=self.send_id, owner=self.owner)
            else:
                send = session.get(Send, self.send_id)
            if send is None:
                self._halt("another process took over this send")
            elif send.status != SendStatus.sending:
                self._halt(f"send was {send.status} meanwhile")
        with self.lock:
            ids = list(self.in_flight)
        with self.engine.connect() as conn:
            queue.renew(conn, ids=ids, owner=self.owner, now=utcnow())
        self.trusted_until = renewing + TRUSTED

    def _halt(self, note: str, *, pause: bool = False) -> None:
        with self.lock:
            if not self.halted.is_set():
                self.note, self.pause = note, pause
                self.halted.set()

    def _finish(self, senders: list[threading.Thread]) -> None:
        """Let the senders finish the message in hand, then give back every claim not sent."""
        if self.halted.is_set():
            while True:
                try:
                    self.jobs.get_nowait()
                except queues.Empty:
                    break
        for _ in senders:
            self._put(None)
        for thread in senders:
            while thread.is_alive():
                thread.join(PROGRESS)
                self._housekeeping()
        self.recorder.close()
        with self.engine.connect() as conn:
            queue.release(conn, ids=self.in_flight, owner=self.owner)
            if ending := self._ending(conn):
                conn.execute(update(Send).where(Send.id == self.send_id, Send.status == SendStatus.sending)
                             .values(**ending))
            conn.commit()
        with new_session(self.engine) as session:  # addresses refused outright stop getting mail, like bounces
            record_refusals(session, self.settings, send_id=self.send_id)
            session.commit()
        if self.on_progress:
            self.on_progress(self.progress())

    def _ending(self, conn: Connection) -> dict[str, object]:
        """How the send's row changes now this run is over (it stays `sending` when nothing is said)."""
        if self.pause:
            return {"status": SendStatus.paused, "note": self.note}
        if self.errors and isinstance(self.errors[0], Exception):  # not Ctrl-C
            # A bug fails the send (retrying would only repeat it); database trouble passes,
            # so the send stays `sending` and the scheduler tries again.
            error = self.errors[0]
            status = SendStatus.sending if isinstance(error, OperationalError) else SendStatus.failed
            return {"status": status, "note": f"stopped by an error: {type(error).__name__}: {error}"[:500]}
        if not self.errors and not self.stays_open and queue.waiting(conn, send_id=self.send_id) == 0:
            return {"status": SendStatus.finished, "finished_at": utcnow(), "note": ""}
        return {}

    # --- the sending threads -----------------------------------------------------------------

    def _send_loop(self) -> None:
        transport = open_transport(self.settings)
        timings: Counter[str] = Counter()
        try:
            while (job := self.jobs.get()) is not None:
                if self.halted.is_set() or not self.limiter.acquire(self.halted):
                    continue  # left claimed; given back at the end
                if time.time() > self.trusted_until:
                    self._halt("held up longer than the lease allows (suspended?); resume to continue")
                    continue
                started = time.perf_counter()
                try:
                    reply, error = transport.send(job.sender, job.address, job.data), None
                except TransportError as exc:
                    reply, error = str(exc), exc
                sent = time.perf_counter()
                self._done(job.claimed, self._outcome(job, reply, error), error)
                timings["smtp"] += sent - started
                timings["record"] += time.perf_counter() - sent
        except BaseException as exc:
            self.errors.append(exc)
            self._halt("stopped by an error")
        finally:
            transport.close()
            with self.lock:
                self.timings.update(timings)

    def _outcome(self, job: Job, reply: str, error: TransportError | None) -> Outcome:
        now = utcnow()
        claimed = job.claimed
        if error is None:
            return Outcome(claimed.id, DeliveryStatus.sent, reply, now, email=job.address, message_id=job.message_id)
        if not isinstance(error, TemporaryFailure):
            return Outcome(claimed.id, DeliveryStatus.failed, reply, now)
        attempts = claimed.attempts + 1
        retry_at = now + BACKOFF[min(attempts, len(BACKOFF)) - 1]
        deadline = (claimed.first_attempt_at or now) + timedelta(hours=self.settings.retry_deadline_hours)
        if retry_at > deadline:
            return Outcome(claimed.id, DeliveryStatus.failed, f"gave up after {attempts} attempts: {reply}", now)
        return Outcome(claimed.id, DeliveryStatus.deferred, reply, now, next_attempt_at=retry_at)

    def _done(self, claimed: Claimed, outcome: Outcome, error: TransportError | None) -> None:
        self.recorder.record(outcome)
        with self.lock:
            self.in_flight.discard(claimed.id)
            self._count(claimed, outcome.status)
            self.sent_now += outcome.status is DeliveryStatus.sent
            self.connection_errors = self.connection_errors + 1 if isinstance(error, ConnectionFailure) else 0
            failing = self.connection_errors >= self.settings.max_connection_errors
        if failing:
            self._halt(f"paused after {self.connection_errors} connection errors in a row; last: {error}", pause=True)

    def _count(self, claimed: Claimed, status: DeliveryStatus) -> None:
        """Move one delivery between the progress counts (the lock is held)."""
        self.counts["deferred" if claimed.deferred else "queued"] -= 1
        self.counts[status.value] += 1

    # --- reporting --------------------------------------------------------------------------

    def progress(self) -> Progress:
        with self.lock:
            counts = dict(self.counts)
        return Progress(total=sum(counts.values()), counts=counts, sent_now=self.sent_now,
                        elapsed=time.monotonic() - self.started)

    def report(self) -> SendReport:
        with new_session(self.engine) as session:
            report = summarise(session, send_id=self.send_id)
        report.sent_now, report.elapsed = self.sent_now, time.monotonic() - self.started
        report.timings = dict(self.timings)
        if self.note and not report.note:
            report.note = self.note
        return report

