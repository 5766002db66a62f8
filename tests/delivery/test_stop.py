"""Stop means stop: against a slow SMTP server, a stop request (Ctrl-C, SIGTERM, `mailer sends pause`)
lets at most one more message per connection through, progress and outcomes keep coming while the
senders keep up, and the lease is renewed however long a batch takes.

Counts are taken at the server (`Received.at`, when it accepted each message). Only the latencies the
product promises (progress twice a second, outcomes in the database within a second) are checked
against the clock, with the slack named where it is used.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from mailer.delivery.engine import deliver
from mailer.delivery.sends import set_status
from mailer.store.db import new_session
from mailer.store.models import Delivery, SendStatus
from tests.delivery.helpers import SAMPLE_ISSUE, deliveries, env_for, people
from tests.fixtures.waiting import PATIENCE, wait_for

SLOW = 0.1  # seconds the server takes per message: about 10 a second on one connection
SLACK = 5  # a promised latency is checked at five times its value: a busy machine stalls threads


class Background:
    """`deliver` in a thread, as `mailer send` runs it beside the terminal."""

    def __init__(self, settings, send_id: int, **options) -> None:  # type: ignore[no-untyped-def]
        self.report = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(settings, send_id), kwargs=options)
        self.thread.start()

    def _run(self, settings, send_id: int, **options) -> None:  # type: ignore[no-untyped-def]
        try:
            self.report = deliver(settings, send_id, **options)
        except BaseException as exc:  # handed to the test
            self.error = exc

    def join(self):  # type: ignore[no-untyped-def]
        self.thread.join(PATIENCE)
        assert not self.thread.is_alive(), "deliver did not return"
        if self.error:
            raise self.error
        return self.report


def accepted_after(smtp_server, moment: float) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for received in smtp_server.messages if received.at > moment)


def sent_in_database(engine, send_id: int) -> int:  # type: ignore[no-untyped-def]
    with new_session(engine) as session:
        return session.execute(select(func.count()).where(Delivery.send_id == send_id,
                                                          Delivery.status == "sent")).scalar_one()


@pytest.mark.parametrize("connections", [1, 3])
def test_a_stop_request_lets_at_most_one_more_message_per_connection_through(  # type: ignore[no-untyped-def]
        smtp_settings, smtp_server, make_send, engine, connections) -> None:
    smtp_server.handler.delay = SLOW
    send_id = make_send(people(80))
    stop = threading.Event()
    run = Background(smtp_settings.model_copy(update={"smtp_connections": connections}), send_id, stop=stop)
    wait_for(lambda: len(smtp_server.messages) >= 5, "five messages")
    stop.set()
    asked = time.monotonic()
    report = run.join()

    assert accepted_after(smtp_server, asked) <= connections
    assert report.status == "sending" and report.note.startswith("stopped")
    assert sent_in_database(engine, send_id) == len(smtp_server.messages) < 80


@pytest.mark.parametrize("connections", [1, 3])
def test_a_pause_from_elsewhere_lets_at_most_one_more_message_per_connection_through(  # type: ignore[no-untyped-def]
        smtp_settings, smtp_server, make_send, engine, connections) -> None:
    smtp_server.handler.delay = SLOW
    send_id = make_send(people(80))
    run = Background(smtp_settings.model_copy(update={"smtp_connections": connections}), send_id)
    wait_for(lambda: len(smtp_server.messages) >= 5, "five messages")
    with new_session(engine) as session:
        set_status(session, send_id=send_id, status=SendStatus.paused, note="paused by hand")
    asked = time.monotonic()
    report = run.join()

    assert accepted_after(smtp_server, asked) <= connections
    assert report.status == "paused" and not report.paused_by_fault
    assert sent_in_database(engine, send_id) == len(smtp_server.messages) < 80


def test_progress_and_outcomes_keep_coming_while_the_senders_keep_up(smtp_settings, smtp_server, make_send,  # type: ignore[no-untyped-def]
                                                                      engine) -> None:
    # The senders never fall behind the builder here, so nothing waits on the queue: progress and the
    # database must still be kept up to date by the clock, twice a second.
    smtp_server.handler.delay = SLOW
    count = 50
    send_id = make_send(people(count))
    reported: list[float] = []
    samples: list[tuple[float, int]] = []  # (when, sent in the database)
    run = Background(smtp_settings, send_id, on_progress=lambda _: reported.append(time.monotonic()))
    started = time.monotonic()
    while run.thread.is_alive():
        samples.append((time.monotonic(), sent_in_database(engine, send_id)))
        time.sleep(0.02)
    assert run.join().status == "finished"

    gaps = [later - earlier for earlier, later in zip([started, *reported], reported, strict=False)]
    assert max(gaps) <= 0.5 * SLACK, f"progress went {max(gaps):.1f} s without an update"
    accepted = sorted(received.at for received in smtp_server.messages)
    # How long the oldest acceptance not yet in the database had been waiting, at each sample.
    lags = [when - accepted[recorded] for when, recorded in samples if recorded < count and accepted[recorded] < when]
    assert max(lags, default=0) <= 1.0 * SLACK, f"an acceptance took {max(lags):.1f} s to reach the database"
    print(f"longest without progress: {max(gaps):.2f} s; longest from acceptance to database: {max(lags, default=0):.2f} s")


def test_the_lease_is_renewed_however_long_a_batch_takes(smtp_settings, smtp_server, make_send, engine,  # type: ignore[no-untyped-def]
                                                         monkeypatch) -> None:
    import mailer.delivery.engine as engine_module

    # A lease renewed every 0.2 s and trusted for 1 s; one batch of 30 messages takes 3 s.
    monkeypatch.setattr(engine_module, "HOUSEKEEPING", 0.2)
    monkeypatch.setattr(engine_module, "TRUSTED", 1.0)
    smtp_server.handler.delay = SLOW
    send_id = make_send(people(30))
    report = deliver(smtp_settings, send_id)
    assert report.status == "finished" and "held up" not in report.note
    assert len(smtp_server.messages) == 30


# --- `mailer send` as a process ------------------------------------------------------------------

CONNECTIONS = 2


def start_send(smtp_settings, workdir, *args: str) -> subprocess.Popen[str]:  # type: ignore[no-untyped-def]
    settings = smtp_settings.model_copy(update={"smtp_connections": CONNECTIONS})
    return subprocess.Popen([sys.executable, "-m", "mailer", *args], env={**os.environ, **env_for(settings)},
                            cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture
def audience(engine) -> list[str]:  # type: ignore[no-untyped-def]
    from mailer.store.models import Topic
    from mailer.store.subscribers import add_subscriber

    emails = [f"reader{n}@example.com" for n in range(80)]
    with new_session(engine) as session:
        session.add(Topic(name="news"))
        session.commit()
        for email in emails:
            add_subscriber(session, email=email, name="Reader", topics=["news"])
        session.commit()
    return emails


def finish_and_check(smtp_settings, smtp_server, engine, workdir, audience) -> None:  # type: ignore[no-untyped-def]
    smtp_server.handler.delay = 0
    resumed = start_send(smtp_settings, workdir, "sends", "resume", "1")
    output, _ = resumed.communicate(timeout=PATIENCE)
    assert resumed.returncode == 0, output
    assert Counter(smtp_server.recipients()) == Counter({email: 1 for email in audience})
    assert {d.status for d in deliveries(engine, 1).values()} == {"sent"}


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_mailer_send_after_the_messages_in_flight(  # type: ignore[no-untyped-def]
        smtp_settings, smtp_server, engine, workdir, audience, signum) -> None:
    smtp_server.handler.delay = SLOW
    process = start_send(smtp_settings, workdir, "send", str(SAMPLE_ISSUE), "--yes")
    try:
        wait_for(lambda: len(smtp_server.messages) >= 5 or process.poll() is not None, "five messages")
        process.send_signal(signum)
        asked = time.monotonic()
        output, _ = process.communicate(timeout=PATIENCE)
    finally:
        process.kill()
    assert accepted_after(smtp_server, asked) <= CONNECTIONS, output
    assert process.returncode == 1 and "mailer sends resume 1" in output, output
    assert "Traceback" not in output
    assert sent_in_database(engine, 1) == len(smtp_server.messages) < len(audience)
    finish_and_check(smtp_settings, smtp_server, engine, workdir, audience)


@pytest.mark.slow
def test_a_pause_ends_mailer_send_with_success_and_says_how_to_resume(  # type: ignore[no-untyped-def]
        smtp_server, smtp_settings, engine, workdir, audience) -> None:
    smtp_server.handler.delay = 3 * SLOW  # the send lasts longer than `mailer sends pause` takes to start
    process = start_send(smtp_settings, workdir, "send", str(SAMPLE_ISSUE), "--yes")
    try:
        wait_for(lambda: len(smtp_server.messages) >= 5 or process.poll() is not None, "five messages")
        paused = start_send(smtp_settings, workdir, "sends", "pause", "1")
        said, _ = paused.communicate(timeout=PATIENCE)
        assert paused.returncode == 0, said
        asked = time.monotonic()
        output, _ = process.communicate(timeout=PATIENCE)
    finally:
        process.kill()
    assert accepted_after(smtp_server, asked) <= CONNECTIONS, output
    assert process.returncode == 0, output
    assert "paused; resume with `mailer sends resume 1`" in " ".join(output.split())
    finish_and_check(smtp_settings, smtp_server, engine, workdir, audience)
