"""The deliver loop: claim a batch, build each message, send it, record what the server said.

Three kinds of thread work one send in one process:
- the caller's thread claims batches and builds messages into a small queue;
- `smtp_connections` sending threads each own one connection to the server and one to
  the database (both taken before the first message, so a shortage fails before anything
  is sent). Before each message a sender checks that it may still send: no stop request
  (Ctrl-C, SIGTERM), the send still `sending` in the database (not paused or cancelled from
  elsewhere), its lease recently renewed. So after a stop or a pause each connection
  carries at most the message it already had on the wire. It then waits for the rate
  limiter, sends, and records the outcome before taking the next;
- a clock thread, whatever the queue does: progress five times a second (`PROGRESS`), outcomes
  to the database twice a second (`journal.FLUSH`), and every `HOUSEKEEPING` seconds the
  lease and the claims renewed.

A delivery becomes `sent` only in a record made after the server accepted and before
that connection carries anything else, so a crash at any point leaves at most one
message per connection accepted but unrecorded (see docs/delivery.md).

A recipient whose message cannot be built (a bug met by their data) is recorded `failed`
with the error and the send carries on; only `BROKEN_IN_A_ROW` such failures in a row
pause it, and those stay queued, since the fault is then not the recipients'. Such a pause
(or one after `max_connection_errors` connection errors in a row) says when the runner resumes
the send (`Send.resume_at`): the fault may well have passed by then.
"""

from __future__ import annotations

import logging
import queue as queues
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from mailer.bounces.policy import record_refusals
from mailer.config import Settings
from mailer.delivery import journal, lifecycle, queue
from mailer.delivery.dkim import DkimSigner, signer_for
from mailer.delivery.lease import LEASE, release_lease, renew_lease, take_lease
from mailer.delivery.message import MessageBuilder, Recipient, wire_address
from mailer.delivery.owners import new_owner
from mailer.delivery.queue import Claimed, Outcome
from mailer.delivery.ratelimit import HOUR, RateLimiter
from mailer.delivery.report import Progress, SendReport, status_counts, summarise
from mailer.delivery.sends import rendered_variants, send_tag, start
from mailer.delivery.transport import Reply, open_transport, tidy
from mailer.errors import ConnectionFailure, PermanentFailure, SendInterrupted, TemporaryFailure, TransportError
from mailer.store.db import make_engine, new_session, require_current
from mailer.store.models import DeliveryStatus, Send, SendKind, SendStatus, stored_id, utcnow

log = logging.getLogger(__name__)

BACKOFF = (timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1), timedelta(hours=4), timedelta(hours=8))
BATCH = 500
TICK = 0.1  # seconds between the clock thread's looks at what is due
PROGRESS = 0.2  # seconds between progress callbacks
HOUSEKEEPING = 10.0  # seconds between lease and claim renewals
# How long after its last renewal a run may go on sending: less than the lease (and
# the claims), so a process held up past it (suspended, frozen VM) stops rather than
# send what another process may have taken over meanwhile.
TRUSTED = LEASE.total_seconds() - 2 * HOUSEKEEPING
BROKEN_IN_A_ROW = 10  # messages in a row that cannot be built: the fault is not the recipients'
LONGEST_FAULT_WAIT = timedelta(hours=4)  # the doubled wait before the runner resumes a send paused after faults
SPARE_CONNECTIONS = 2  # database connections beyond one per sender: the builder's, and the clock's
# Errors of the database or the disk (a full disk is an OSError; a short journal write too):
# the send stays `sending`, resumable, and the scheduler tries again.
FAULTS = (DBAPIError, PoolTimeout, OSError)

ProgressCallback = Callable[[Progress], object]


def open_database(settings: Settings) -> Engine:
    """An engine whose pool holds every connection a run of these settings takes at once."""
    return make_engine(settings.database_url, pool_size=settings.smtp_connections + SPARE_CONNECTIONS)


def fault_message(error: BaseException, send_id: int) -> str:
    """One line for a database or disk error that stopped a send."""
    reason = error.orig if isinstance(error, DBAPIError) else error
    words = " ".join(str(reason).split("(Background on this error at")[0].split())
    return (f"database or disk error: {words or type(reason).__name__}; "
            f"the send stays resumable with `mailer sends resume {send_id}`")


def fault_resume_at(settings: Settings, *, earlier_pauses: int, now: datetime) -> datetime | None:
    """When the runner resumes a send this run pauses after faults: `fault_resume_minutes` from now, doubled
    for each such pause in a row before (the fault outlasted those resumes) up to 4 hours, or never (0)."""
    if not settings.fault_resume_minutes:
        return None
    wait = timedelta(minutes=settings.fault_resume_minutes)
    longest = max(wait, LONGEST_FAULT_WAIT)
    for _ in range(earlier_pauses):
        wait = min(2 * wait, longest)
    return now + wait


def deliver(settings: Settings, send_id: int, *, stop: threading.Event | None = None,
            on_progress: ProgressCallback | None = None, expected: SendStatus | None = None) -> SendReport:
    """Send (or resume) a send: take its lease, take its audience if not yet done, deliver what is due.

    `expected`: the status the caller found the send in (see `sends.start`); a send changed
    since, say paused by a person, is refused with `SendError` and left as it is.

    Returns when nothing is due: deferred retries may remain (the send stays
    `sending` and the report says when the next is due). Resumable at any point.
    A database or disk error ends it with `SendInterrupted`, one line.
    """
    signer = signer_for(settings)  # a bad key is refused before anything changes
    engine = open_database(settings)
    try:
        require_current(engine)
        owner = new_owner()
        with new_session(engine) as session:
            previous = take_lease(session, send_id=send_id, owner=owner)
            try:
                send = start(session, send_id=send_id, expected=expected)
            except BaseException:
                _quietly(release_lease, session, send_id=send_id, owner=owner)
                raise
        try:
            journal.reconcile(engine, send_id)
            with engine.connect() as conn:
                queue.release_dead(conn, send_id=send_id, also=previous)
            run = Run(settings, engine, send, owner, signer=signer, stop=stop, on_progress=on_progress, leased=True)
            run.run()
        except BaseException:
            with new_session(engine) as session:
                _quietly(release_lease, session, send_id=send_id, owner=owner)  # the first error is the one to tell
            raise
        with new_session(engine) as session:
            release_lease(session, send_id=send_id, owner=owner)
        return run.report()
    except FAULTS as exc:
        raise SendInterrupted(fault_message(exc, send_id)) from exc
    finally:
        engine.dispose()


def _quietly(action: Callable[..., object], *args: object, **kwargs: object) -> None:
    """Clean up after an error without hiding it behind a second one (the database may be what failed)."""
    try:
        action(*args, **kwargs)
    except Exception:  # logged; the first error is the one raised
        log.debug("while stopping after an error", exc_info=True)


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

    @property
    def key(self) -> str:
        """The message's name for good (the outbox names its file so): its delivery."""
        return f"{self.claimed.id:06d}"


class Run:
    """One process working one send until nothing is due, it is told to stop, or faults keep coming."""

    def __init__(self, settings: Settings, engine: Engine, send: Send, owner: str, *, signer: DkimSigner | None,
                 stop: threading.Event | None = None, on_progress: ProgressCallback | None = None,
                 leased: bool = False) -> None:
        self.settings = settings
        self.engine = engine
        self.send_id = stored_id(send)
        self.owner = owner
        self.stop = stop
        self.on_progress = on_progress
        self.leased = leased
        self.stays_open = send.kind == SendKind.welcome  # waits, open, for the next reader to confirm
        self.builder = MessageBuilder(settings, rendered_variants(send), send_id=send.id,
                                      send_tag=send_tag(settings, send), signer=signer)
        self.limiter = limiter_for(settings, engine)
        self.recorder: journal.Recorder  # opened by `run`, once its connections are taken
        rate = min(settings.rate_per_second or BATCH, settings.rate_per_hour / HOUR if settings.rate_per_hour else BATCH)
        self.batch = max(1, min(BATCH, int(rate * 30)))  # about 30 s of sending, so skips stay fresh
        self.jobs: queues.Queue[Job | None] = queues.Queue(maxsize=2 * settings.smtp_connections)
        self.lock = threading.Lock()
        self.in_flight: set[int] = set()
        self.halted = threading.Event()
        self.clock_stopped = threading.Event()
        self.note = ""
        self.pause = False  # this run pauses the send (faults in a row), as opposed to a person
        self.fault_pauses = send.fault_pauses  # such pauses in a row before this run, none of which got a message out
        self.errors: list[BaseException] = []
        self.connection_errors = 0
        self.broken: list[tuple[Claimed, str]] = []  # recipients whose message could not be built, in a row
        self.counts: Counter[str] = Counter()
        self.sent_now = 0
        self.timings: defaultdict[str, float] = defaultdict(float)
        self.started = time.monotonic()
        self._last_progress = 0.0
        self._last_flush = self._last_renewal = time.monotonic()
        self.trusted_until = time.time() + TRUSTED  # wall clock: it runs on while the machine sleeps
        with new_session(engine) as session:
            self.counts.update(status_counts(session, send_id=self.send_id))

    # --- the feeding thread (the caller's) ------------------------------------------------

    def run(self) -> None:
        tidy(self.settings)
        connections = self._connections(self.settings.smtp_connections + 1)
        try:
            self.recorder = journal.recorder_for(self.engine, self.send_id, self.owner)
        except BaseException:
            for conn in connections:
                conn.close()
            raise
        feeding, sending = connections[0], connections[1:]
        senders = [threading.Thread(target=self._send_loop, args=(conn,), name=f"mailer-send-{n}", daemon=True)
                   for n, conn in enumerate(sending)]
        clock = threading.Thread(target=self._keep_time, name="mailer-clock", daemon=True)
        clock.start()
        for thread in senders:
            thread.start()
        try:
            self._feed(feeding)
        except BaseException as exc:
            self._fail(exc)
        finally:
            self._finish(senders, clock, connections)
        if self.errors:
            raise self.errors[0]

    def _connections(self, count: int) -> list[Connection]:
        """Every database connection the run needs, before anything is sent: a shortage fails here.

        Senders' connections commit each statement by itself: a status read sees the latest
        change, and an outcome recorded on PostgreSQL is one round trip.
        """
        taken: list[Connection] = []
        try:
            for n in range(count):
                conn = self.engine.connect()
                taken.append(conn if n == 0 else conn.execution_options(isolation_level="AUTOCOMMIT"))
        except BaseException:
            for conn in taken:
                conn.close()
            raise
        return taken

    def _feed(self, conn: Connection) -> None:
        while not self.halted.is_set():
            started = time.perf_counter()
            batch, skipped = queue.claim(conn, send_id=self.send_id, owner=self.owner, limit=self.batch, now=utcnow())
            self.timings["claim"] += time.perf_counter() - started
            if not batch and not skipped:
                self._fail_broken(conn)  # a streak too short to pause for: those recipients' own
                return
            with self.lock:
                self.in_flight.update(claimed.id for claimed in batch)
                for claimed in skipped:
                    self._count(claimed, DeliveryStatus.skipped)
            for claimed in batch:
                if self.halted.is_set():
                    return
                job = self._build(claimed, conn)
                if job is not None:
                    self._put(job)

    def _build(self, claimed: Claimed, conn: Connection) -> Job | None:
        """The recipient's message; None when it cannot be sent (recorded, or set aside while errors come in a row)."""
        started = time.perf_counter()
        try:
            address = wire_address(claimed.email)
            recipient = Recipient(email=address, name=claimed.name, language=claimed.language,
                                  subscriber_id=claimed.subscriber_id, delivery_id=claimed.id)
            job = Job(claimed, self.builder.envelope_sender(recipient), address, self.builder.message_id(recipient),
                      self.builder.build(recipient))
        except PermanentFailure as exc:  # an address we must not send to
            self._done(claimed, Outcome(claimed.id, DeliveryStatus.failed, str(exc), utcnow()), None, conn)
            return None
        except Exception as exc:  # a bug met by this recipient's data: set aside, and carry on
            reason = f"{type(exc).__name__}: {exc}"
            log.warning("send %s: the message to delivery %s could not be built: %s", self.send_id, claimed.id, reason)
            log.debug("the error behind it", exc_info=True)
            self.broken.append((claimed, f"not sent: the message could not be built: {reason}"[:1000]))
            if len(self.broken) >= BROKEN_IN_A_ROW:  # not the recipients: leave them queued and pause
                self.broken.clear()
                self._halt(f"paused after {BROKEN_IN_A_ROW} messages in a row could not be built; last: {reason}",
                           pause=True)
            return None
        self._fail_broken(conn)
        self.timings["build"] += time.perf_counter() - started
        return job

    def _fail_broken(self, conn: Connection) -> None:
        """Record the recipients set aside as failed, with their error: the ones after them built fine."""
        broken, self.broken = self.broken, []
        for claimed, reason in broken:
            self._done(claimed, Outcome(claimed.id, DeliveryStatus.failed, reason, utcnow()), None, conn)

    def _put(self, job: Job | None) -> None:
        """Hand a job to the senders; an end marker (None) always goes, a job only while the run goes on."""
        while True:
            try:
                self.jobs.put(job, timeout=TICK)
                return
            except queues.Full:
                if job is not None and self.halted.is_set():
                    return

    def _halt(self, note: str, *, pause: bool = False) -> None:
        with self.lock:
            if not self.halted.is_set():
                self.note, self.pause = note, pause
                self.halted.set()

    def _fail(self, error: BaseException) -> None:
        with self.lock:
            self.errors.append(error)
        what = fault_message(error, self.send_id).partition(";")[0] if isinstance(error, FAULTS) else \
            f"an error: {type(error).__name__}: {error}"
        self._halt(f"stopped by {what}"[:500])

    def _finish(self, senders: list[threading.Thread], clock: threading.Thread, connections: list[Connection]) -> None:
        """Let the senders finish the message in hand, then write down everything and give back every claim not sent."""
        if self.halted.is_set():
            while True:
                try:
                    self.jobs.get_nowait()
                except queues.Empty:
                    break
        for _ in senders:
            self._put(None)
        for thread in senders:
            thread.join()
        self.clock_stopped.set()
        clock.join()
        for conn in connections:
            _quietly(conn.close)
        self._then(self.recorder.close)  # after a failure the journal stays for the next run
        self._then(self._settle)
        self._then(self._record_refusals)
        if self.on_progress:
            self.on_progress(self.progress())

    def _then(self, step: Callable[[], object]) -> None:
        """One step of finishing: the first error of the run is the one raised; later ones are its echoes."""
        try:
            step()
        except Exception as exc:
            if self.errors:
                log.debug("send %s: while finishing after an error", self.send_id, exc_info=True)
            else:
                self._fail(exc)

    def _settle(self) -> None:
        with self.engine.connect() as conn:
            queue.release(conn, ids=self.in_flight, owner=self.owner)
            self._end(conn)
            conn.commit()

    def _end(self, conn: Connection) -> None:
        """Move the send on now this run is over (it stays `sending` when nothing is said).

        Only from `sending`: a pause or cancel made meanwhile by a person stands.
        """
        sending = (SendStatus.sending,)
        if self.pause:  # the runner resumes it at `resume_at`, unless a person takes over first
            in_a_row = 0 if self.sent_now else self.fault_pauses  # messages went out: the last fault had passed
            lifecycle.change(conn, send_id=self.send_id, to=SendStatus.paused, from_=sending, note=self.note,
                             resume_at=fault_resume_at(self.settings, earlier_pauses=in_a_row, now=utcnow()),
                             fault_pauses=in_a_row + 1)
        elif self.errors and isinstance(self.errors[0], Exception):  # not Ctrl-C
            # Database or disk trouble passes, so the send stays `sending` and the scheduler
            # tries again; a bug fails it (retrying would only repeat it).
            to = SendStatus.sending if isinstance(self.errors[0], FAULTS) else SendStatus.failed
            lifecycle.change(conn, send_id=self.send_id, to=to, from_=sending, note=self.note)
        elif not self.errors and not self.stays_open and queue.waiting(conn, send_id=self.send_id) == 0:
            lifecycle.change(conn, send_id=self.send_id, to=SendStatus.finished, from_=sending, note="",
                             finished_at=utcnow())

    def _record_refusals(self) -> None:
        with new_session(self.engine) as session:  # addresses refused outright stop getting mail, like bounces
            record_refusals(session, self.settings, send_id=self.send_id)
            session.commit()

    # --- the clock thread --------------------------------------------------------------------

    def _keep_time(self) -> None:
        while not self.clock_stopped.wait(TICK):
            try:
                self._housekeeping()
            except BaseException as exc:
                self._fail(exc)
                return

    def _housekeeping(self) -> None:
        """Progress five times a second, outcomes to the database twice; every few seconds the lease and claims renewed."""
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
            with self.lock:
                self.timings["database"] += time.perf_counter() - started
        if now - self._last_renewal >= HOUSEKEEPING:
            self._last_renewal = now
            self._renew()

    def _renew(self) -> None:
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

    # --- the sending threads -----------------------------------------------------------------

    def _send_loop(self, conn: Connection) -> None:
        transport = open_transport(self.settings)
        timings: defaultdict[str, float] = defaultdict(float)
        try:
            status = lifecycle.StatusReader(conn, self.send_id)
            while (job := self.jobs.get()) is not None:
                with self.limiter.turn(self.halted) as allowed:
                    if not allowed or not self._may_send(status):
                        continue  # left claimed; given back at the end
                    started = time.perf_counter()
                    try:
                        reply: Reply | TransportError = transport.send(job.sender, job.address, job.data, key=job.key)
                    except TransportError as exc:
                        reply = exc
                sent = time.perf_counter()
                error = reply if isinstance(reply, TransportError) else None
                self._done(job.claimed, self._outcome(job, reply), error, conn)
                timings["smtp"] += sent - started
                timings["record"] += time.perf_counter() - sent
        except BaseException as exc:
            self._fail(exc)
        finally:
            transport.close()
            with self.lock:
                for stage, seconds in timings.items():
                    self.timings[stage] += seconds

    def _may_send(self, status_now: lifecycle.StatusReader) -> bool:
        """Just before a message: no stop asked, the lease trusted, and the send still `sending` in the database.

        Checked by every sender before every message, so a stop or a pause from elsewhere lets
        at most the messages already on the wire through.
        """
        if self.stop is not None and self.stop.is_set():
            self._halt("stopped; resume to continue")
        if self.halted.is_set():
            return False
        if time.time() > self.trusted_until:
            self._halt("held up longer than the lease allows (suspended?); resume to continue")
            return False
        status = status_now()
        if status != SendStatus.sending:
            self._halt(f"send was {status} meanwhile")
            return False
        return True

    def _outcome(self, job: Job, reply: Reply | TransportError) -> Outcome:
        now = utcnow()
        claimed = job.claimed
        if isinstance(reply, Reply):
            return Outcome(claimed.id, DeliveryStatus.sent, str(reply), now, code=reply.code, email=job.address,
                           message_id=job.message_id)
        words, code = str(reply), reply.code
        if not isinstance(reply, TemporaryFailure):
            return Outcome(claimed.id, DeliveryStatus.failed, words, now, code=code)
        attempts = claimed.attempts + 1
        retry_at = now + BACKOFF[min(attempts, len(BACKOFF)) - 1]
        deadline = (claimed.first_attempt_at or now) + timedelta(hours=self.settings.retry_deadline_hours)
        if retry_at > deadline:
            return Outcome(claimed.id, DeliveryStatus.failed, f"gave up after {attempts} attempts: {words}", now,
                           code=code)
        return Outcome(claimed.id, DeliveryStatus.deferred, words, now, code=code, next_attempt_at=retry_at)

    def _done(self, claimed: Claimed, outcome: Outcome, error: TransportError | None, conn: Connection) -> None:
        self.recorder.record(outcome, conn)
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
        report.paused_by_fault = self.pause
        if self.note and not report.note:
            report.note = self.note
        return report
