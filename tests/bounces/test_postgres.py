"""PostgreSQL, where several processes finish one send at once (`mailer worker`): each refusal counts once."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import update
from sqlmodel import select

from mailer.bounces.policy import record_refusals
from mailer.store.db import new_session
from mailer.store.models import Bounce, Delivery, DeliveryStatus, Event, EventKind
from tests.fixtures.postgres import fresh_database

from .conftest import PEOPLE

pytestmark = pytest.mark.postgres


@pytest.fixture
def settings(settings) -> Iterator:
    with fresh_database("mailer_bounces", migrated=False) as url:
        yield settings.model_copy(update={"database_url": url})


def test_two_processes_recording_the_same_refusals_at_once_count_each_once(settings, engine, mailing):
    with new_session(engine) as session:
        session.execute(update(Delivery).where(Delivery.id == 4)
                        .values(status=DeliveryStatus.failed, reply="452 4.2.2 Mailbox full", reply_code=452))  # not a refusal
        session.execute(update(Delivery).where(Delivery.id.in_([1, 2]))  # type: ignore[attr-defined]
                        .values(status=DeliveryStatus.failed, reply="554 5.7.1 Message rejected as spam", reply_code=554))
        session.commit()
    first, second = new_session(engine), new_session(engine)
    reports = []
    # The first has recorded them but not committed when the second looks: the second waits, then finds them taken.
    assert record_refusals(first, settings, send_id=1).temporary == 2
    racer = threading.Thread(target=lambda: reports.append(record_refusals(second, settings, send_id=1)))
    racer.start()
    racer.join(0.5)
    assert racer.is_alive()  # held by the unique index until the first commits
    first.commit()
    racer.join(10)
    second.commit()
    assert reports[0].temporary == 0
    with new_session(engine) as session:
        assert len(session.exec(select(Bounce)).all()) == 2
        soft = session.exec(select(Event).where(Event.kind == EventKind.soft_bounce)).all()
        assert sorted(event.subscriber_id for event in soft) == sorted(mailing[PEOPLE[n]] for n in (1, 2))
    first.close()
    second.close()
