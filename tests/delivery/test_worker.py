"""Several senders on one send with PostgreSQL: disjoint claims, and two `mailer worker` processes exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import insert, text
from sqlmodel import SQLModel

from mailer.delivery import queue
from mailer.delivery.sends import start
from mailer.store.db import make_engine, new_session
from mailer.store.models import Send, SendStatus, Subscriber, utcnow
from tests.delivery.helpers import content, deliveries, env_for
from tests.fixtures.postgres import fresh_database

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def postgres_database() -> Iterator[str]:
    with fresh_database("mailer_delivery") as url:
        yield url


@pytest.fixture
def pg(postgres_database: str):  # type: ignore[no-untyped-def]
    engine = make_engine(postgres_database)
    tables = ", ".join(f'"{table.name}"' for table in SQLModel.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield engine
    engine.dispose()


def started_send(engine, count: int) -> int:  # type: ignore[no-untyped-def]
    """`count` active subscribers and a send to them, started (queued, status `sending`)."""
    now = utcnow()
    with new_session(engine) as session:
        session.execute(insert(Subscriber), [
            {"email": f"reader{n}@example.com", "email_key": f"reader{n}@example.com", "name": f"Reader {n}",
             "language": "en", "status": "active", "source": "test", "consent_text": "", "created_at": now,
             "status_changed_at": now} for n in range(count)])
        send = Send(issue_slug="test", title="Network news", content=content())
        session.add(send)
        session.commit()
        start(session, send_id=send.id)
        return send.id


def test_concurrent_claims_never_overlap(pg) -> None:  # type: ignore[no-untyped-def]
    send_id = started_send(pg, 400)
    claimed: list[list[int]] = []
    barrier = threading.Barrier(4)

    def claimer(n: int) -> None:
        mine: list[int] = []
        with pg.connect() as conn:
            barrier.wait()
            while True:
                batch, _ = queue.claim(conn, send_id=send_id, owner=f"test:{n}", limit=37, now=utcnow())
                if not batch:
                    break
                mine.extend(c.id for c in batch)
        claimed.append(mine)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [delivery_id for mine in claimed for delivery_id in mine]
    assert len(everything) == len(set(everything)) == 400
    assert sum(1 for mine in claimed if mine) > 1


@pytest.mark.slow
def test_two_workers_send_one_send_exactly_once(pg, postgres_database, smtp_settings, smtp_server, workdir) -> None:  # type: ignore[no-untyped-def]
    count = 1500
    send_id = started_send(pg, count)
    env = {**os.environ, **env_for(smtp_settings.model_copy(update={"database_url": postgres_database}))}
    command = [sys.executable, "-m", "mailer", "worker", "--send", str(send_id), "--once"]
    workers = [subprocess.Popen(command, env=env, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True) for _ in range(2)]
    outputs = [worker.communicate(timeout=120)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs

    received = Counter(smtp_server.recipients())
    assert len(received) == count and set(received.values()) == {1}
    assert {d.status for d in deliveries(pg, send_id).values()} == {"sent"}
    with new_session(pg) as session:
        assert session.get(Send, send_id).status == SendStatus.finished
    sent = [int(output.rsplit("Worker done: ", 1)[1].split()[0]) for output in outputs]
    assert sum(sent) == count


def test_deliver_on_postgresql_commits_each_outcome(pg, postgres_database, smtp_settings, smtp_server) -> None:  # type: ignore[no-untyped-def]
    from mailer.delivery.engine import deliver

    send_id = started_send(pg, 50)
    smtp_server.rules["reader3@example.com"] = "451 4.3.0 Try later"
    settings = smtp_settings.model_copy(update={"database_url": postgres_database, "smtp_connections": 2})
    report = deliver(settings, send_id)
    assert report.counts["sent"] == 49 and report.counts["deferred"] == 1 and report.status == "sending"
    assert len(smtp_server.recipients()) == 49


def largest_allowed_connections() -> int:
    from mailer.config import Settings

    return next(rule.le for rule in Settings.model_fields["smtp_connections"].metadata if hasattr(rule, "le"))


def test_the_largest_allowed_number_of_connections_sends_exactly_once_on_postgresql(  # type: ignore[no-untyped-def]
        pg, postgres_database, smtp_settings, smtp_server) -> None:
    from mailer.delivery.engine import deliver

    connections = largest_allowed_connections()
    send_id = started_send(pg, 10 * connections)
    settings = smtp_settings.model_copy(update={"database_url": postgres_database, "smtp_connections": connections})
    report = deliver(settings, send_id)
    assert report.status == "finished" and report.counts["sent"] == 10 * connections
    assert Counter(smtp_server.recipients()) == Counter({f"reader{n}@example.com": 1 for n in range(10 * connections)})
    assert smtp_server.handler.connections == connections
    with new_session(pg) as session:
        assert not session.get(Send, send_id).lease_owner


def test_too_few_database_connections_fail_before_anything_is_sent(pg, postgres_database, smtp_settings,  # type: ignore[no-untyped-def]
                                                                    smtp_server, monkeypatch) -> None:
    from sqlalchemy import create_engine

    from mailer.delivery import engine as engine_module
    from mailer.errors import SendInterrupted

    # As if the pool were sized for fewer senders than the settings ask for.
    monkeypatch.setattr(engine_module, "open_database", lambda settings: create_engine(
        settings.database_url, pool_size=3, max_overflow=0, pool_timeout=1))
    send_id = started_send(pg, 50)
    settings = smtp_settings.model_copy(update={"database_url": postgres_database, "smtp_connections": 8})
    with pytest.raises(SendInterrupted, match="database or disk error: QueuePool limit .*; the send stays resumable"):
        engine_module.deliver(settings, send_id)
    assert smtp_server.messages == []
    with new_session(pg) as session:
        send = session.get(Send, send_id)
        assert send.status == SendStatus.sending and not send.lease_owner
    assert {d.status for d in deliveries(pg, send_id).values()} == {"queued"}
    assert all(not d.claimed_by for d in deliveries(pg, send_id).values())


def test_a_worker_passes_over_a_send_deleted_after_it_looked_for_work(pg, postgres_database, smtp_settings,  # type: ignore[no-untyped-def]
                                                                      smtp_server) -> None:
    from mailer.delivery.worker import run_worker

    first = started_send(pg, 3)
    with new_session(pg) as session:  # a second send to the same readers
        second = Send(issue_slug="other", title="Other news", content=content())
        session.add(second)
        session.commit()
        start(session, send_id=second.id)

    def delete_second(report) -> None:  # type: ignore[no-untyped-def]
        if report.send_id == first:  # the worker listed both sends before it ran this one
            with pg.begin() as connection:
                connection.execute(text("DELETE FROM send WHERE id = :id"), {"id": second.id})

    settings = smtp_settings.model_copy(update={"database_url": postgres_database})
    assert run_worker(settings, once=True, on_report=delete_second) == 3
    assert sorted(smtp_server.recipients()) == [f"reader{n}@example.com" for n in range(3)]
