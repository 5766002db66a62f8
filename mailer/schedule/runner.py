"""The runner behind `mailer run`: starts scheduled sends on time, resumes interrupted ones, stops cleanly.

The Send rows are the truth; APScheduler only wakes the runner at the right second. Each
`tick` (every few seconds, and at start):
1. starts every scheduled send that is due, or marks it `missed` when it is more than the
   grace period late (never sent days late without a person deciding so);
2. resumes sends left `sending` (after a crash, or when deferred retries fall due), and sends
   the engine paused after faults in a row once their `resume_at` has come (a person's pause
   has none), whose delivery lease has run out or whose lease holder was a process on this
   machine that died;
3. rebuilds APScheduler's date jobs from the future scheduled sends, so a send created,
   moved or cancelled by a command is picked up without a restart, and wakes APScheduler
   so that it also sees the rules added or removed by commands.
A recurring rule that APScheduler finds more than the grace period late is not run; the
runner emails that rule's editors instead (`rules.warn_missed`), from its main thread.
`tick(now)` takes the clock as an argument, so tests never wait for real minutes. `run()`
ticks from its own thread every `tick_seconds`; APScheduler's threads only fire jobs.

Sends run in a small thread pool, each through `mailer.delivery.engine.deliver` with the
runner's stop event: on SIGTERM the message in flight is finished and the rest stays queued.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import ColumnElement, Engine, exists, or_, select
from sqlmodel import Session, col

from mailer.bounces import process_mailbox
from mailer.config import Settings
from mailer.delivery import lifecycle
from mailer.delivery.engine import deliver
from mailer.delivery.owners import owner_is_dead
from mailer.delivery.sends import audience_of, audience_size
from mailer.errors import MailerError, ScheduleError
from mailer.schedule import lease, rules
from mailer.schedule.jobstore import INTERNAL, PERSISTENT, grace, make_scheduler
from mailer.schedule.times import Moment, lateness, zone
from mailer.store.db import make_engine, new_session
from mailer.store.models import Delivery, DeliveryStatus, Send, SendStatus, stored_id, utcnow

log = logging.getLogger("mailer.schedule")

SEND_JOB_PREFIX = "send:"
FIRE_SEND = "mailer.schedule.runner:fire_send"
BOUNCE_MINUTES = 10
_current: Runner | None = None  # the running runner of this process, for jobs stored by reference


def fire_send(send_id: int) -> None:
    """Job kept in the database: start one scheduled send, on the second."""
    _runner().start_send(send_id)


def fire_rule(**fields: Any) -> None:
    """Job kept in the database: one firing of a recurring rule."""
    runner = _runner()
    now = utcnow()
    send_id = rules.fire(runner.settings, runner.engine, rules.Rule(**fields), now=now)
    if send_id is not None:
        runner.start_send(send_id, now=now)


def _runner() -> Runner:
    if _current is None:
        raise RuntimeError("a scheduled job ran outside `mailer run`")
    return _current


class Runner:
    """One per process. Drive it with `tick(now)` (tests) or `run()` (the real thing)."""

    def __init__(self, settings: Settings, *, engine: Engine | None = None, owner: str | None = None,
                 tick_seconds: float = 15.0, workers: int = 4):
        self.settings = settings
        self.engine = engine or make_engine(settings.database_url)
        self.owner = owner or lease.default_owner()
        self.tick_seconds = tick_seconds
        self.grace = grace(settings)
        self.tz = zone(settings.timezone)
        self.stop = threading.Event()
        self.scheduler: BackgroundScheduler | None = None
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="send")
        self._running: dict[int, Future[None]] = {}
        self._lock = threading.RLock()
        self._missed_rules: queue.SimpleQueue[tuple[str, datetime]] = queue.SimpleQueue()  # (job id, when it was due)

    # --- deciding what to do, for any clock ---------------------------------------------

    def tick(self, now: datetime | None = None) -> list[Future[None]]:
        """One pass over the sends (see the module docstring); returns the deliveries it launched."""
        now = now or utcnow()
        with new_session(self.engine) as session:
            due = [send_id for send_id in session.scalars(
                select(col(Send.id)).where(col(Send.status) == SendStatus.scheduled, col(Send.scheduled_at) <= now)
                .order_by(col(Send.scheduled_at))
            ) if send_id is not None]
            stalled = _unheld(session, now, *_resumable(now))
            paused = _unheld(session, now, col(Send.status) == SendStatus.paused, col(Send.resume_at) <= now)
        launched = [future for send_id in due if (future := self.start_send(send_id, now=now))]
        launched += [future for send_id in stalled if (future := self._launch(send_id, SendStatus.sending, now))]
        launched += [future for send_id in paused if (future := self._launch(send_id, SendStatus.paused, now))]
        if self.scheduler is not None:
            self._sync_jobs(now)
            self.scheduler.wakeup()  # it sleeps until the next job it knows of: notice rules added by commands since
        return launched

    def start_send(self, send_id: int, *, now: datetime | None = None) -> Future[None] | None:
        """Start one scheduled send if it is due, or mark it missed if it is beyond the grace period."""
        now = now or utcnow()
        with new_session(self.engine) as session:
            send = session.get(Send, send_id)
            if send is None or send.status != SendStatus.scheduled or send.scheduled_at is None or send.scheduled_at > now:
                return None  # started, cancelled or moved meanwhile
            if now - send.scheduled_at > self.grace:
                self._mark_missed(session, send, due=send.scheduled_at, now=now)
                return None
        return self._launch(send_id, SendStatus.scheduled, now)

    def _mark_missed(self, session: Session, send: Send, *, due: datetime, now: datetime) -> None:
        note = (f"missed: due {Moment(due, self.tz).short}, the runner came {lateness(now - due)} late "
                f"(grace {self.settings.schedule_grace_hours:g} h)")
        marked = lifecycle.change(session, send_id=stored_id(send), to=SendStatus.missed, from_=(SendStatus.scheduled,),
                                  note=note, when=(col(Send.scheduled_at) == due,))
        session.commit()
        if marked:
            log.warning("send %s (%s) %s; not sending it. To send it after all: mailer schedule move %s --at ...",
                        send.id, send.title, note, send.id)

    # --- doing it -------------------------------------------------------------------------

    def _launch(self, send_id: int, expected: SendStatus, now: datetime) -> Future[None] | None:
        """Deliver in the pool unless this process is already delivering that send."""
        with self._lock:
            if self.stop.is_set() or send_id in self._running:
                return None
            future = self._pool.submit(self._deliver, send_id, expected, now)
            self._running[send_id] = future
            future.add_done_callback(lambda _: self._forget(send_id))
        return future

    def _forget(self, send_id: int) -> None:
        with self._lock:
            self._running.pop(send_id, None)

    def _deliver(self, send_id: int, expected: SendStatus, now: datetime) -> None:
        with new_session(self.engine) as session:
            send = session.get(Send, send_id)
            if send is None or send.status != expected:
                return  # another thread or runner got there first
            if expected == SendStatus.scheduled:
                audience = audience_size(session, **audience_of(send))
                log.info("starting send %s (%s) to %s recipient%s", send.id, send.title, audience, "" if audience == 1 else "s")
            elif expected == SendStatus.paused:
                if not self._resume_after_fault(session, send_id, now):
                    return
                expected = SendStatus.sending  # as it has just moved it
            else:
                log.info("resuming send %s (%s)", send.id, send.title)
        try:
            log.info("%s", deliver(self.settings, send_id, stop=self.stop, expected=expected))
        except MailerError as exc:
            log.warning("send %s (%s) not sent now: %s", send.id, send.title, exc)
        except Exception:  # a bug must not take the runner down; the send stays resumable
            log.exception("send %s (%s): unexpected error; it stays resumable", send.id, send.title)

    def _resume_after_fault(self, session: Session, send_id: int, now: datetime) -> bool:
        """Move a send the engine paused after faults back to `sending`, unless a person paused,
        resumed or cancelled it since the tick (each clears its `resume_at`); False if so."""
        send = session.get_one(Send, send_id)
        note = f"resumed automatically after: {send.note}"
        resumed = lifecycle.change(session, send_id=send_id, to=SendStatus.sending, from_=(SendStatus.paused,),
                                   note=note, when=(col(Send.resume_at) <= now,))
        session.commit()
        if resumed:
            log.info("send %s (%s) %s", send_id, send.title, note)
        return resumed

    # --- keeping APScheduler's jobs in step with the Send rows ----------------------------

    def _sync_jobs(self, now: datetime) -> None:
        assert self.scheduler is not None
        with new_session(self.engine) as session:
            wanted = {
                f"{SEND_JOB_PREFIX}{send_id}": (send_id, title, at.replace(tzinfo=UTC))
                for send_id, title, at in session.execute(
                    select(col(Send.id), col(Send.title), col(Send.scheduled_at))
                    .where(col(Send.status) == SendStatus.scheduled, col(Send.scheduled_at) > now))
            }
        jobs = {job.id: job for job in self.scheduler.get_jobs(jobstore=PERSISTENT) if job.id.startswith(SEND_JOB_PREFIX)}
        for job_id in jobs.keys() - wanted.keys():
            self.scheduler.remove_job(job_id, jobstore=PERSISTENT)
        for job_id, (send_id, title, run_date) in wanted.items():
            job = jobs.get(job_id)
            if job is None:
                self.scheduler.add_job(FIRE_SEND, "date", run_date=run_date, args=[send_id], id=job_id,
                                       name=f"send {send_id} ({title})", jobstore=PERSISTENT)
            elif job.trigger.run_date != run_date:
                self.scheduler.reschedule_job(job_id, jobstore=PERSISTENT, trigger="date", run_date=run_date)

    # --- running for real -----------------------------------------------------------------

    def run(self, *, web: bool = False, until: Callable[[], bool] | None = None, timeout: float | None = None) -> None:
        """Work until `stop` is set (SIGTERM), `until()` turns true or `timeout` seconds pass.

        Holds the runner lease throughout: a second runner on the same database refuses to start.
        """
        global _current
        with new_session(self.engine) as session:
            lease.acquire(session, owner=self.owner, now=utcnow())
        scheduler: BackgroundScheduler | None = None
        web_server: _WebServer | None = None
        try:
            _current = self
            scheduler = self.scheduler = make_scheduler(self.settings, self.engine)
            scheduler.add_listener(self._note_missed, EVENT_JOB_MISSED)
            if self.settings.bounce_mailbox:
                scheduler.add_job(self._process_bounces, "interval", minutes=BOUNCE_MINUTES, id="bounces", name="bounces",
                                  jobstore=INTERNAL, next_run_time=datetime.now(UTC))
            web_server = _WebServer(self.settings, self.engine) if web else None
            scheduler.start()
            log.info("runner %s started: time zone %s, grace period %g h%s", self.owner, self.tz.key,
                     self.settings.schedule_grace_hours, f", pages on {web_server.url}" if web_server else "")
            self._loop(until, timeout)
        finally:
            self.stop.set()
            if scheduler is not None and scheduler.running:
                # APScheduler 3 looks at the due jobs once more as it stops, and moves them on
                # unrun; without the job store it cannot, and the next runner finds them due.
                scheduler.remove_jobstore(PERSISTENT, shutdown=False)
                scheduler.shutdown(wait=True)  # waits for jobs firing now
            self.close()
            if web_server is not None:
                web_server.stop()
            _current = None
            with new_session(self.engine) as session:
                lease.release(session, owner=self.owner)
            log.info("runner %s stopped", self.owner)

    def close(self) -> None:
        """Wait for every send in progress (each finishes its message in flight once `stop` is set)."""
        self._pool.shutdown(wait=True)

    def _loop(self, until: Callable[[], bool] | None, timeout: float | None) -> None:
        """Tick and renew the lease from this (the main) thread; APScheduler's threads only fire jobs.

        Ticking here, not as a scheduler job, keeps job-store changes out of the scheduler's own
        threads, where they would deadlock with its shutdown.
        """
        started = next_tick = next_renewal = time.monotonic()
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= next_tick:
                next_tick = now + self.tick_seconds
                try:
                    self.tick()
                except Exception:  # a database hiccup must not stop the runner; the next tick retries
                    log.exception("tick failed; retrying in %g s", self.tick_seconds)
            self._warn_missed_rules()
            if now >= next_renewal:
                next_renewal = now + lease.LEASE_SECONDS / 3
                if not self._renew_lease():
                    return
            if (until is not None and until()) or (timeout is not None and now - started >= timeout):
                return
            self.stop.wait(0.2)

    def _note_missed(self, event: JobExecutionEvent) -> None:
        """APScheduler's thread: it skipped a job as too late. Missed sends are the tick's business
        (their Send rows say so); a missed rule is handed to the main thread to warn its editors."""
        if event.job_id.startswith(rules.JOB_PREFIX):
            self._missed_rules.put((event.job_id, event.scheduled_run_time))

    def _warn_missed_rules(self) -> None:
        """Main thread: warn the editors of each rule firing APScheduler skipped."""
        assert self.scheduler is not None
        while not self._missed_rules.empty():
            job_id, due = self._missed_rules.get()
            try:
                job = self.scheduler.get_job(job_id, jobstore=PERSISTENT)
                if job is not None:  # unless removed meanwhile
                    rules.warn_missed(self.settings, rules.Rule(**job.kwargs),
                                      due=due.astimezone(UTC).replace(tzinfo=None), now=utcnow())
            except Exception:  # a database hiccup must not stop the runner
                log.exception("could not warn the editors of missed rule %s", job_id)

    def _renew_lease(self) -> bool:
        """False when another runner has taken the lease (this one was stalled past its expiry)."""
        try:
            with new_session(self.engine) as session:
                if lease.renew(session, owner=self.owner, now=utcnow()):
                    return True
        except Exception:  # the lease has time left; the next renewal retries
            log.exception("could not renew the runner lease")
            return True
        log.error("runner %s lost its lease to another runner; stopping", self.owner)
        return False

    def _process_bounces(self) -> None:
        """Periodic job: read the bounce mailbox, logging only when it held something."""
        try:
            report = process_mailbox(self.settings, engine=self.engine)
        except MailerError as exc:
            log.error("bounces: %s", exc)
            return
        if report.eventful:
            log.info("bounces: %s", report)


def _unheld(session: Session, now: datetime, *conditions: ColumnElement[bool]) -> list[int]:
    """The sends meeting `conditions` that no live process holds: no lease, a lapsed one, or a dead holder's."""
    rows = session.execute(select(col(Send.id), col(Send.lease_owner), col(Send.lease_expires_at))
                           .where(*conditions).order_by(col(Send.id)))
    return [send_id for send_id, owner, until in rows
            if not owner or until is None or until <= now or owner_is_dead(owner)]


def _resumable(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """Conditions for a send left `sending` with work due now (its lease is checked by the caller).

    Two EXISTS rather than one with OR, so each is answered from the (send_id, status) index.
    """
    queued = exists().where(col(Delivery.send_id) == col(Send.id), col(Delivery.status) == DeliveryStatus.queued)
    retry_due = exists().where(col(Delivery.send_id) == col(Send.id), col(Delivery.status) == DeliveryStatus.deferred,
                               col(Delivery.next_attempt_at) <= now)
    return col(Send.status) == SendStatus.sending, or_(queued, retry_due)


class _WebServer:
    """The subscriber pages served by uvicorn in a thread of the runner."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        import uvicorn

        from mailer.web.server import server_config

        self.url = f"http://{settings.web_host}:{settings.web_port}"
        self.server = uvicorn.Server(server_config(settings, engine=engine))
        self.thread = threading.Thread(target=self.server.run, name="web", daemon=True)
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise ScheduleError(f"cannot serve the web pages on {settings.web_host}:{settings.web_port} "
                                    "(is the port in use?); use --no-web if `mailer serve` runs them")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
