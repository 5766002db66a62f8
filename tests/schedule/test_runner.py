"""The runner driven with a controllable clock: `tick(now)` decides, the delivery engine sends
to a real SMTP server on loopback."""

from __future__ import annotations

import os
import threading
from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import update
from sqlmodel import select

from mailer.delivery.sends import start
from mailer.errors import ScheduleError
from mailer.schedule import service
from mailer.store.models import Delivery, DeliveryStatus, Send, utcnow
from tests.delivery.helpers import ended_owner

from .conftest import delivered, soon, status, tick


def test_a_send_fires_at_its_time_and_not_before(runners, scheduled, subscribers, session, smtp_server):
    at = soon(60)
    send = scheduled(at)
    runner = runners()
    tick(runner, at - timedelta(seconds=1))
    assert status(session, send.id) == "scheduled" and smtp_server.messages == []
    tick(runner, at)
    assert status(session, send.id) == "finished"
    assert sorted(smtp_server.recipients()) == subscribers
    tick(runner, at + timedelta(minutes=1))  # nothing due any more
    assert len(smtp_server.messages) == len(subscribers)


def test_runner_back_within_the_grace_period_sends(runners, scheduled, subscribers, session, smtp_server):
    at = soon(60)
    send = scheduled(at)
    tick(runners(), at + timedelta(hours=5, minutes=59))
    assert status(session, send.id) == "finished"
    assert sorted(smtp_server.recipients()) == subscribers


def test_runner_back_beyond_the_grace_period_marks_missed_and_sends_nothing(runners, scheduled, subscribers, session, smtp_server, caplog):
    at = soon(60)
    send = scheduled(at)
    runner = runners()
    tick(runner, at + timedelta(hours=6, minutes=1))
    missed = session.get(Send, send.id, populate_existing=True)
    assert missed.status == "missed"
    assert "the runner came 6 h 1 min late (grace 6 h)" in missed.note
    assert f"mailer schedule move {send.id}" in caplog.text
    tick(runner, at + timedelta(days=3))
    assert smtp_server.messages == [] and delivered(session, send.id) == {}


def test_grace_period_comes_from_the_settings(runners, scheduled, subscribers, session, smtp_settings):
    at = soon(60)
    send = scheduled(at)
    tick(runners(settings=smtp_settings.model_copy(update={"schedule_grace_hours": 0.5})), at + timedelta(minutes=31))
    assert status(session, send.id) == "missed"


def test_a_missed_send_can_be_moved_and_then_goes(runners, scheduled, subscribers, session, smtp_settings, smtp_server):
    at = soon(60)
    send = scheduled(at)
    runner = runners()
    tick(runner, at + timedelta(hours=7))
    later = at + timedelta(hours=8)
    moment = service.move_send(session, settings=smtp_settings, send_id=send.id, when=later,
                               tz="UTC", now=at + timedelta(hours=7))
    assert moment.utc == later and status(session, send.id) == "scheduled"
    tick(runner, later)
    assert status(session, send.id) == "finished" and len(smtp_server.messages) == len(subscribers)


def test_a_cancelled_send_never_goes(runners, scheduled, subscribers, session, smtp_server):
    at = soon(60)
    send = scheduled(at)
    service.cancel_send(session, send_id=send.id)
    tick(runners(), at)
    assert status(session, send.id) == "cancelled" and smtp_server.messages == []


def test_dst_a_send_at_nine_local_after_the_clocks_go_forward_fires_at_eight_utc(runners, session, smtp_settings, issue_file,
                                                                                subscribers, smtp_server):
    send, moment = service.schedule_send(session, settings=smtp_settings, issue_path=issue_file,
                                         when=datetime(2027, 3, 29, 9, 0), now=datetime(2026, 11, 21))
    assert moment.utc == datetime(2027, 3, 29, 8, 0)
    runner = runners()
    tick(runner, datetime(2027, 3, 29, 7, 59))
    assert status(session, send.id) == "scheduled"
    tick(runner, datetime(2027, 3, 29, 8, 0))
    assert status(session, send.id) == "finished"


def test_dst_times_the_clocks_skip_or_repeat_are_refused_before_anything_is_created(session, smtp_settings, issue_file):
    for wall in (datetime(2027, 3, 28, 1, 30), datetime(2026, 10, 25, 1, 30), datetime(2027, 10, 31, 1, 0)):
        with pytest.raises(ScheduleError):
            service.schedule_send(session, settings=smtp_settings, issue_path=issue_file, when=wall, now=datetime(2026, 1, 1))
    assert session.exec(select(Send)).all() == []


def test_two_runners_racing_for_one_send_deliver_it_exactly_once(runners, scheduled, subscribers, session, smtp_server):
    at = soon(60)
    send = scheduled(at)
    first, second = runners(owner="one"), runners(owner="two")
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def race(runner) -> None:
        try:
            start.wait()
            tick(runner, at)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=race, args=(runner,)) for runner in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    tick(first, at + timedelta(minutes=1))  # whichever lost the race finds nothing left to do
    assert status(session, send.id) == "finished"
    assert Counter(smtp_server.recipients()) == Counter({email: 1 for email in subscribers})


def test_deferred_retries_are_resumed_when_due(runners, scheduled, subscribers, session, smtp_server):
    at = soon(60)
    send = scheduled(at)
    smtp_server.rules[subscribers[0]] = "451 4.3.0 Try again later"
    runner = runners()
    tick(runner, at)
    assert status(session, send.id) == "sending"
    assert delivered(session, send.id) == {"sent": 11, "deferred": 1}
    tick(runner, at + timedelta(minutes=1))  # the retry is not due yet
    assert delivered(session, send.id) == {"sent": 11, "deferred": 1}

    del smtp_server.rules[subscribers[0]]
    session.execute(update(Delivery).where(Delivery.send_id == send.id, Delivery.status == DeliveryStatus.deferred)
                    .values(next_attempt_at=utcnow() - timedelta(seconds=1)))  # five minutes pass
    session.commit()
    tick(runner, utcnow())
    assert status(session, send.id) == "finished"
    assert Counter(smtp_server.recipients()) == Counter({email: 1 for email in subscribers})


@pytest.mark.parametrize("lease", ["lapsed", "held by a dead process on this machine"])
def test_a_send_left_sending_by_a_crash_is_resumed(runners, scheduled, subscribers, session, smtp_server, lease):
    send = scheduled(soon(60))
    start(session, send_id=send.id)  # what a crash leaves: started, audience taken, nothing sent yet
    if lease == "lapsed":
        owner, until = "elsewhere:1:x", utcnow() - timedelta(seconds=1)
    else:
        owner, until = ended_owner(), utcnow() + timedelta(seconds=50)
    session.execute(update(Send).where(Send.id == send.id).values(lease_owner=owner, lease_expires_at=until))
    session.commit()
    tick(runners(), utcnow())
    assert status(session, send.id) == "finished"
    assert sorted(smtp_server.recipients()) == subscribers


def test_a_send_another_live_process_is_sending_is_left_alone(runners, scheduled, subscribers, session, smtp_server):
    send = scheduled(soon(60))
    start(session, send_id=send.id)
    session.execute(update(Send).where(Send.id == send.id)
                    .values(lease_owner=f"elsewhere:{os.getpid()}:x", lease_expires_at=utcnow() + timedelta(seconds=50)))
    session.commit()
    assert runners().tick(utcnow()) == []
    assert smtp_server.messages == []
