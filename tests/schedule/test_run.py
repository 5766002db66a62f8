"""The runner for real: APScheduler waking it on time, the runner lease, and `mailer run` as a
process stopped with SIGTERM and raced by a second one, checked at a real SMTP server."""

from __future__ import annotations

import mailbox
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from mailer.errors import ScheduleError
from mailer.schedule import rules
from mailer.schedule.jobstore import PERSISTENT, paused_scheduler
from mailer.store.models import utcnow
from tests.fixtures.settings import ROOT
from tests.fixtures.smtp import free_port
from tests.fixtures.waiting import PATIENCE, wait_for

from .conftest import delivered, run_until_sent, status, tick
from .test_rules import rule_for

CORPUS = ROOT / "tests" / "bounces" / "corpus"


def test_run_fires_a_send_at_its_time_not_at_the_next_tick(runners, scheduled, subscribers, session, smtp_server):
    send = scheduled(utcnow() + timedelta(seconds=2))
    runner = runners(tick_seconds=3600)  # only the first tick runs: the date job must do the firing
    fired = run_until_sent(runner, send.id, timeout=PATIENCE)
    assert fired.status == "finished"
    # Never early, and long before the next tick; how soon after its time depends on how busy the machine is.
    assert timedelta(0) <= fired.started_at - fired.scheduled_at < timedelta(seconds=PATIENCE)
    assert sorted(smtp_server.recipients()) == subscribers


def test_a_second_runner_refuses_plainly_while_the_first_runs(runners):
    first, second = runners(owner="host-a:1"), runners(owner="host-b:2")
    thread = threading.Thread(target=first.run, kwargs={"timeout": PATIENCE})
    thread.start()
    try:
        wait_for(lambda: first.scheduler is not None and first.scheduler.running, "the first runner to start")
        with pytest.raises(ScheduleError, match=r"another runner \(host-a:1\) is already running against this database"):
            second.run(timeout=1)
    finally:
        first.stop.set()
        thread.join(10)
    runners(owner="host-b:3").run(timeout=0.1)  # once the first has stopped, a new one may start


def start_runner(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "mailer", "run", "--no-web"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_sigterm_mid_send_finishes_the_message_in_flight_then_resume_sends_the_rest_exactly_once(
        runners, scheduled, subscribers, session, smtp_server, subprocess_env):
    send = scheduled(utcnow())
    smtp_server.handler.delay = 0.2  # a slow server: 12 messages take over 2 s
    process = start_runner(subprocess_env)
    try:
        wait_for(lambda: len(smtp_server.messages) >= 3, "three messages")
        process.send_signal(signal.SIGTERM)
        asked = time.monotonic()
        output, _ = process.communicate(timeout=PATIENCE)
    finally:
        process.kill()
    assert process.returncode == 0, output
    assert "stopped" in output
    first_run = len(smtp_server.messages)
    assert 3 <= first_run < len(subscribers), output
    assert sum(1 for received in smtp_server.messages if received.at > asked) <= 1  # the one on the wire
    counts = delivered(session, send.id)
    assert counts == {"sent": first_run, "queued": len(subscribers) - first_run}  # every acceptance recorded
    assert status(session, send.id) == "sending"

    tick(runners(), utcnow())  # the next runner resumes it
    assert status(session, send.id) == "finished"
    assert Counter(smtp_server.recipients()) == Counter({email: 1 for email in subscribers})


@pytest.mark.slow
def test_two_runner_processes_started_together_send_each_message_once(scheduled, subscribers, session, smtp_server, subprocess_env):
    send = scheduled(utcnow())
    processes = [start_runner({**subprocess_env, "MAILER_RATE_PER_SECOND": "20"}) for _ in range(2)]
    try:
        wait_for(lambda: status(session, send.id) == "finished" and any(p.poll() is not None for p in processes),
                 "the send to finish and the second runner to give up")
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        outputs = [process.communicate(timeout=PATIENCE)[0] for process in processes]
    finally:
        for process in processes:
            process.kill()
    codes = sorted(process.returncode for process in processes)
    assert codes == [0, 1], outputs
    refused = outputs[[process.returncode for process in processes].index(1)]
    assert "another runner" in refused and "is already running against this database" in refused
    assert "Traceback" not in refused
    assert Counter(smtp_server.recipients()) == Counter({email: 1 for email in subscribers})


@pytest.mark.slow
def test_a_runner_killed_with_sigkill_is_replaced_at_once(session, subprocess_env):
    # The shipped unit restarts `mailer run` 30 s after it dies; the lease runs for 60 s. A runner of
    # this machine and PID namespace that has ended is known dead, so the restart is not refused.
    first = start_runner(subprocess_env)
    second = None
    try:
        wait_for(lambda: runner_lease_owner(session) is not None, "the first runner to take the lease")
        killed = runner_lease_owner(session)
        first.kill()
        first.wait()
        second = start_runner(subprocess_env)
        wait_for(lambda: second.poll() is not None or runner_lease_owner(session) not in (None, killed),
                 "the second runner to take the lease or give up")
        assert second.poll() is None, second.communicate()[0]
        second.send_signal(signal.SIGTERM)
        output, _ = second.communicate(timeout=PATIENCE)
    finally:
        for process in (first, second):
            if process is not None:
                process.kill()
    assert second.returncode == 0 and "another runner" not in output, output


def runner_lease_owner(session) -> str | None:
    from mailer.schedule import lease

    holder = lease.holder(session, now=utcnow())
    return None if holder is None else holder.owner


def test_run_serves_the_subscriber_pages_alongside(runners, smtp_settings):
    runner = runners(settings=smtp_settings.model_copy(update={"web_port": free_port()}))
    pages: list[int] = []

    def fetched() -> bool:
        pages.append(httpx.get(f"http://127.0.0.1:{runner.settings.web_port}/subscribe").status_code)
        return True

    runner.run(web=True, until=fetched, timeout=PATIENCE)
    assert pages == [200]


def test_run_reads_the_bounce_mailbox_when_one_is_set(runners, smtp_settings, workdir):
    maildir = workdir / "Maildir"
    box = mailbox.Maildir(maildir, create=True)
    box.add((CORPUS / "postfix-user-unknown.eml").read_bytes())
    box.close()
    runner = runners(settings=smtp_settings.model_copy(update={"bounce_mailbox": str(maildir)}))

    def handled() -> bool:
        box = mailbox.Maildir(maildir, create=False)
        try:
            return "handled" in box.list_folders() and len(box.get_folder("handled")) == 1
        except FileNotFoundError:  # the runner is creating the folder right now
            return False

    runner.run(until=handled, timeout=PATIENCE)
    assert handled()


def add_rule_due(settings, engine, workdir, *, minutes_ago: float) -> datetime:
    """A rule added by `mailer schedule recurring add` (another process) and already due."""
    rules.add_rule(settings, engine, rule_for(workdir), now=utcnow())
    due = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=minutes_ago)
    with paused_scheduler(settings, engine) as scheduler:
        scheduler.modify_job(rules.JOB_PREFIX + "monthly", jobstore=PERSISTENT, next_run_time=due)
    return due


def start_in_thread(runner) -> threading.Thread:
    """Start `runner.run` and return once its first tick is over (a later tick would wake its scheduler)."""
    ticked = threading.Event()
    first_tick = runner.tick

    def tick(*args, **kwargs):
        try:
            return first_tick(*args, **kwargs)
        finally:
            ticked.set()

    runner.tick = tick
    thread = threading.Thread(target=runner.run, kwargs={"timeout": PATIENCE})
    thread.start()
    wait_for(lambda: ticked.is_set() and runner.scheduler is not None and runner.scheduler.running, "the runner's first tick")
    return thread


def test_a_rule_added_while_the_runner_runs_fires(runners, smtp_settings, engine, workdir, issue_file, smtp_server):
    runner = runners(tick_seconds=0.5)
    thread = start_in_thread(runner)
    try:
        add_rule_due(smtp_settings, engine, workdir, minutes_ago=1)
        wait_for(lambda: bool(smtp_server.messages), "the warning")  # no December issue in November: the editor is warned
    finally:
        runner.stop.set()
        thread.join(20)
    assert smtp_server.recipients() == ["editor@example.org"]


def test_a_rule_due_as_the_runner_stops_is_left_for_the_next_runner(runners, smtp_settings, engine, workdir, issue_file):
    runner = runners(tick_seconds=3600)  # the first tick only: nothing wakes its scheduler again
    thread = start_in_thread(runner)
    due = add_rule_due(smtp_settings, engine, workdir, minutes_ago=1)
    runner.stop.set()
    thread.join(20)
    [(_, upcoming)] = rules.list_rules(smtp_settings, engine)
    assert upcoming.utc == due.replace(tzinfo=None)  # not moved on to next month unrun
