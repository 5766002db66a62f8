"""The same runner on PostgreSQL: the APScheduler job store, the runner lease and two runners racing."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest

from mailer.errors import ScheduleError
from mailer.store.models import utcnow
from tests.fixtures.postgres import fresh_database
from tests.fixtures.waiting import PATIENCE, wait_for

from .conftest import run_until_sent, status, tick

pytestmark = pytest.mark.postgres


@pytest.fixture
def settings(settings) -> Iterator:
    """The shared settings on a fresh PostgreSQL database of its own, dropped afterwards."""
    with fresh_database("mailer_schedule", migrated=False) as url:
        yield settings.model_copy(update={"database_url": url})


def test_a_timed_send_fires_through_the_job_store_on_postgresql(runners, scheduled, subscribers, smtp_server):
    send = scheduled(utcnow() + timedelta(seconds=1))
    assert run_until_sent(runners(tick_seconds=3600), send.id, timeout=PATIENCE).status == "finished"
    assert sorted(smtp_server.recipients()) == subscribers


def test_two_runners_racing_on_postgresql_send_once_and_only_one_holds_the_lease(runners, scheduled, subscribers, session, smtp_server):
    at = utcnow() + timedelta(hours=1)
    send = scheduled(at)
    racers = [runners(owner=f"racer-{n}") for n in range(2)]
    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=lambda runner=runner: (barrier.wait(), tick(runner, at))) for runner in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PATIENCE)
    assert status(session, send.id) == "finished"
    assert Counter(smtp_server.recipients()) == Counter({email: 1 for email in subscribers})

    holder = threading.Thread(target=racers[0].run, kwargs={"timeout": PATIENCE})
    holder.start()
    try:
        wait_for(lambda: racers[0].scheduler is not None and racers[0].scheduler.running, "the first runner to start")
        with pytest.raises(ScheduleError, match=r"another runner \(racer-0\)"):
            racers[1].run(timeout=1)
    finally:
        racers[0].stop.set()
        holder.join(PATIENCE)
