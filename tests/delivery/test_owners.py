"""Who owns a lease, and when an owner is certainly dead: only a process of this kernel and PID
namespace whose PID is gone (or taken by a newer process). Other PID namespaces are real ones,
made with `unshare --pid --fork` where the machine allows it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from datetime import timedelta

import pytest

from mailer.delivery.lease import take_lease
from mailer.delivery.owners import new_owner, owner_is_dead
from mailer.errors import SendError
from mailer.schedule import lease as runner_lease
from mailer.store.db import new_session
from mailer.store.models import utcnow
from tests.delivery.helpers import SAMPLE_ISSUE, ended_owner, env_for, people
from tests.fixtures.waiting import PATIENCE, wait_for


def in_other_pid_namespace(*command: str, **options) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    """Run `command` in a new PID namespace (as a container on this host would), or skip saying why not."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) on this machine")
    probe = subprocess.run(["unshare", "--pid", "--fork", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"this machine does not allow new PID namespaces: {probe.stderr.strip()}")
    return subprocess.run(["unshare", "--pid", "--fork", *command], capture_output=True, text=True,
                          timeout=PATIENCE, **options)


def replaced(owner: str, index: int, value: str) -> str:
    parts = owner.split(":")
    parts[index] = value
    return ":".join(parts)


def test_a_live_process_is_not_dead_and_an_ended_one_is() -> None:
    assert not owner_is_dead(new_owner())
    assert owner_is_dead(ended_owner())


def test_a_pid_taken_over_by_a_newer_process_is_dead() -> None:
    # Our own PID with another start time: the process that held this id has ended and its PID
    # was given to this one (common in containers, where PIDs are small).
    assert owner_is_dead(replaced(new_owner(), 4, "1"))


@pytest.mark.parametrize("index, value, what", [
    (0, "elsewhere", "another host"),
    (2, "000000000000", "another boot of this host, or a machine with the same name"),
    (3, "4026530000", "another PID namespace"),
])
def test_an_owner_that_is_not_ours_is_never_judged_dead(index: int, value: str, what: str) -> None:
    assert not owner_is_dead(replaced(ended_owner(), index, value)), what


def test_an_owner_id_in_the_older_form_waits_for_its_lease() -> None:
    assert not owner_is_dead(f"{os.uname().nodename}:999999:ab12cd34")


def test_a_process_in_another_pid_namespace_does_not_judge_us_dead() -> None:
    # Our PID means nothing in a new namespace: there, `kill(pid, 0)` says no such process.
    verdict = in_other_pid_namespace(sys.executable, "-c",
                                     f"from mailer.delivery.owners import owner_is_dead; print(owner_is_dead({new_owner()!r}))")
    assert verdict.returncode == 0, verdict.stderr
    assert verdict.stdout.strip() == "False"


def test_we_do_not_judge_an_owner_in_another_pid_namespace_dead() -> None:
    made = in_other_pid_namespace(sys.executable, "-c", "from mailer.delivery.owners import new_owner; print(new_owner())")
    assert made.returncode == 0, made.stderr
    owner = made.stdout.strip()
    assert owner.split(":")[1] == "1" or owner.split(":")[1].isdigit()  # its own PID numbers
    assert not owner_is_dead(owner)  # ended, but nothing here can tell: its lease runs out instead


def test_a_send_lease_held_in_another_pid_namespace_is_waited_for(make_send, engine) -> None:  # type: ignore[no-untyped-def]
    made = in_other_pid_namespace(sys.executable, "-c", "from mailer.delivery.owners import new_owner; print(new_owner())")
    send_id = make_send(people(1))
    with new_session(engine) as session:
        take_lease(session, send_id=send_id, owner=made.stdout.strip())
        with pytest.raises(SendError, match="being sent by another process"):
            take_lease(session, send_id=send_id, owner=new_owner())
        # A minute later the lease has run out, and the send may be taken over.
        take_lease(session, send_id=send_id, owner=new_owner(), now=utcnow() + timedelta(seconds=61))


@pytest.mark.parametrize("holder, taken", [("ended", True), ("alive", False), ("elsewhere", False)])
def test_the_runner_lease_of_a_dead_runner_is_taken_at_once(session, holder: str, taken: bool) -> None:  # type: ignore[no-untyped-def]
    owner = {"ended": ended_owner(), "alive": new_owner(), "elsewhere": replaced(ended_owner(), 3, "4026530000")}[holder]
    runner_lease.acquire(session, owner=owner, now=utcnow())
    if taken:  # not 60 seconds later: the service manager's first restart (RestartSec=30) must succeed
        runner_lease.acquire(session, owner=new_owner(), now=utcnow())
    else:
        with pytest.raises(Exception, match="another runner"):
            runner_lease.acquire(session, owner=new_owner(), now=utcnow())


@pytest.mark.slow
def test_a_resume_in_another_pid_namespace_does_not_take_over_a_live_send(  # type: ignore[no-untyped-def]
        smtp_settings, smtp_server, engine, workdir) -> None:
    from mailer.store.models import Topic
    from mailer.store.subscribers import add_subscriber

    with new_session(engine) as session:
        session.add(Topic(name="news"))
        session.commit()
        for n in range(60):
            add_subscriber(session, email=f"reader{n}@example.com", name="Reader", topics=["news"])
        session.commit()
    smtp_server.handler.delay = 0.3  # 60 messages take 18 s: longer than the second process takes to start
    env = {**os.environ, **env_for(smtp_settings)}
    mailer = [sys.executable, "-m", "mailer"]
    first = subprocess.Popen([*mailer, "send", str(SAMPLE_ISSUE), "--yes"], env=env, cwd=workdir, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: len(smtp_server.messages) >= 3 or first.poll() is not None, "the first send to get going")
        second = in_other_pid_namespace(*mailer, "sends", "resume", "1", env=env, cwd=workdir)
        output, _ = first.communicate(timeout=PATIENCE)
    finally:
        first.kill()
    assert second.returncode == 1 and "being sent by another process" in second.stdout + second.stderr
    assert first.returncode == 0, output
    assert Counter(smtp_server.recipients()) == Counter({f"reader{n}@example.com": 1 for n in range(60)})
