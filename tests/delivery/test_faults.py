"""Disk faults under a send: a journal write the full disk cuts short, an outbox that cannot be written,
the outbox after kill -9 (exactly once: each delivery one file), and the temporary files kills leave."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from mailer.delivery import journal, queue
from mailer.delivery.engine import deliver
from mailer.errors import SendInterrupted
from mailer.store.db import new_session
from mailer.store.models import Send, Topic
from mailer.store.subscribers import add_subscriber
from tests.delivery.helpers import SAMPLE_ISSUE, deliveries, ended_owner, env_for, people
from tests.fixtures.waiting import PATIENCE, wait_for


def test_a_full_disk_stops_each_sender_before_its_next_message(smtp_settings, smtp_server, make_send, engine,  # type: ignore[no-untyped-def]
                                                               monkeypatch) -> None:
    # The disk fills after five acceptances: the journal gets only part of each line from then on,
    # and the database cannot be written either. Each sender stops before its next message, so at
    # most the one message per connection whose record was lost goes again on resume.
    connections = 2
    recipients = people(40)
    send_id = make_send(recipients)
    smtp_server.handler.delay = 0.05
    write, written, full_at = os.write, [], []

    def filling_disk(fd: int, data: bytes) -> int:
        if not os.readlink(f"/proc/self/fd/{fd}").endswith(".log"):
            return write(fd, data)
        written.append(data)
        if len(written) <= 5:
            return write(fd, data)
        if not full_at:
            full_at.append(time.monotonic())
        return write(fd, data[: len(data) // 2])

    def database_full(*args, **kwargs):  # type: ignore[no-untyped-def]
        if full_at:
            raise OperationalError("UPDATE delivery ...", {}, Exception("database or disk is full"))
        return record_many(*args, **kwargs)

    record_many = queue.record_many
    monkeypatch.setattr(os, "write", filling_disk)
    monkeypatch.setattr(queue, "record_many", database_full)
    settings = smtp_settings.model_copy(update={"smtp_connections": connections})
    with pytest.raises(SendInterrupted, match=r"database or disk error: .*cannot write the send journal .*: the disk "
                                              r"took \d+ of \d+ bytes \(full\?\); the send stays resumable"):
        deliver(settings, send_id)
    assert sum(1 for received in smtp_server.messages if received.at > full_at[0]) <= connections
    folder = journal.journal_folder(engine)
    (kept,) = folder.glob("*.log")  # the journal stays for the next run, whole lines only
    assert kept.read_bytes().endswith(b"\n") and len(list(journal.read_journal(kept))) == 5

    monkeypatch.undo()  # room on the disk again
    smtp_server.handler.delay = 0
    assert deliver(smtp_settings, send_id).status == "finished"
    received = Counter(smtp_server.recipients())
    assert set(received) == {email for email, _, _ in recipients}
    assert sum(n - 1 for n in received.values()) <= connections


def test_an_unwritable_outbox_pauses_the_send(settings, make_send, engine, workdir: Path) -> None:  # type: ignore[no-untyped-def]
    (workdir / "outbox").write_text("a file where the outbox folder should be")
    send_id = make_send(people(10))
    report = deliver(settings.model_copy(update={"max_connection_errors": 3}), send_id)
    assert report.status == "paused" and report.paused_by_fault
    assert "3 connection errors in a row; last: cannot write to outbox" in report.note
    assert Counter(d.status for d in deliveries(engine, send_id).values()) == {"deferred": 3, "queued": 7}

    (workdir / "outbox").unlink()  # fixed
    assert deliver(settings, send_id).counts["sent"] == 7


def test_a_resume_removes_the_temporary_files_killed_runs_left(settings, make_send, engine) -> None:  # type: ignore[no-untyped-def]
    outbox = Path(settings.outbox_dir)
    outbox.mkdir()
    stale = outbox / f".tmp.{ended_owner().rpartition(':')[0]}.139871234"
    stale.write_bytes(b"Return-Path: <x>\r\nhalf a mess")
    assert deliver(settings, make_send(people(2))).status == "finished"
    assert sorted(p.name for p in outbox.iterdir()) == ["000001.eml", "000002.eml"]


@pytest.mark.slow
def test_the_outbox_holds_each_delivery_once_across_twenty_random_kills(settings, engine, workdir: Path) -> None:  # type: ignore[no-untyped-def]
    count, kills = 300, 20
    with new_session(engine) as session:
        session.add(Topic(name="news"))
        session.commit()
        for n in range(count):
            add_subscriber(session, email=f"reader{n}@example.com", name=f"Reader {n}", topics=["news"])
        session.commit()
    outbox = Path(settings.outbox_dir)
    env = {**os.environ, **env_for(settings.model_copy(update={"rate_per_second": 100.0}))}
    chance = random.Random(20)

    def files() -> list[Path]:
        return sorted(outbox.glob("*.eml")) if outbox.is_dir() else []

    for kill in range(kills):
        command = ["send", str(SAMPLE_ISSUE), "--yes"] if kill == 0 else ["sends", "resume", "1"]
        before = len(files())
        process = subprocess.Popen([sys.executable, "-m", "mailer", *command], env=env, cwd=workdir,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        wait_for(lambda before=before, process=process: len(files()) > before or process.poll() is not None,
                 "a message written")
        time.sleep(chance.uniform(0, 0.1))
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert len(files()) < count, f"the send finished before kill {kill + 1}: make it slower"
    finished = subprocess.run([sys.executable, "-m", "mailer", "sends", "resume", "1"], env=env, cwd=workdir,
                              capture_output=True, text=True, timeout=PATIENCE)
    assert finished.returncode == 0, finished.stdout + finished.stderr

    rows = deliveries(engine, 1)
    assert {d.status for d in rows.values()} == {"sent"}
    assert [p.name for p in files()] == [f"{d.id:06d}.eml" for d in sorted(rows.values(), key=lambda d: d.id)]
    recipients = Counter(message_from_bytes(p.read_bytes(), policy=policy.default)["Delivered-To"] for p in files())
    assert recipients == Counter({f"reader{n}@example.com": 1 for n in range(count)})  # 0 duplicates, 0 losses
    assert not list(outbox.glob(".tmp.*"))  # what the kills left was cleaned up
    with new_session(engine) as session:
        assert session.get(Send, 1).status == "finished"
