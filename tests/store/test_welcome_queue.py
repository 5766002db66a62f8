"""The welcome queue on both databases: one delivery row per reader, however often asked, delivered once."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from mailer.delivery import welcome
from mailer.store.models import Delivery, Send, SendKind, SendStatus
from mailer.store.subscribers import add_subscriber

WELCOME = Path(__file__).resolve().parents[2] / "issues" / "welcome.yaml"


def test_a_reader_is_queued_once_and_delivered_once(settings, engine, session, workdir):
    welcoming = settings.model_copy(update={"welcome_issue": str(WELCOME), "languages": ["en", "cy"]})
    send_id = welcome.prepare(welcoming, engine)
    assert welcome.prepare(welcoming, engine) == send_id  # the same open welcome send
    nia = add_subscriber(session, email="nia@example.org", language="cy")
    assert welcome.add_reader(session, send_id=send_id, subscriber_id=nia.id)
    assert not welcome.add_reader(session, send_id=send_id, subscriber_id=nia.id)
    report = welcome.deliver_queued(welcoming, engine, send_id)
    assert report is not None and report.counts["sent"] == 1
    assert welcome.deliver_queued(welcoming, engine, send_id) is None  # nothing more to do
    assert not welcome.add_reader(session, send_id=send_id, subscriber_id=nia.id)
    assert len(list((workdir / "outbox").glob("*.eml"))) == 1
    session.expire_all()
    send = session.get(Send, send_id)
    assert (send.kind, send.status) == (SendKind.welcome, SendStatus.sending)
    assert session.scalars(select(Delivery.language)).all() == ["cy"]
    assert welcome.prepare(settings, engine) is None  # no welcome issue set: nothing


def test_a_paused_welcome_keeps_new_readers_waiting_until_a_person_resumes_it(settings, engine, session, workdir):
    """`mailer sends pause` on the welcome send holds every welcome: no new welcome send goes round it,
    and a confirmation does not resume it."""
    from mailer.delivery.sends import set_status

    welcoming = settings.model_copy(update={"welcome_issue": str(WELCOME)})
    send_id = welcome.prepare(welcoming, engine)
    set_status(session, send_id=send_id, status=SendStatus.paused, note="held by the editor")
    assert welcome.prepare(welcoming, engine) == send_id  # the paused send, not a new one
    nia = add_subscriber(session, email="nia@example.org")
    assert welcome.add_reader(session, send_id=send_id, subscriber_id=nia.id)
    assert welcome.deliver_queued(welcoming, engine, send_id) is None
    session.expire_all()
    assert session.get(Send, send_id).status == SendStatus.paused
    assert not list((workdir / "outbox").glob("*.eml"))
    set_status(session, send_id=send_id, status=SendStatus.sending)  # `mailer sends resume`
    assert welcome.deliver_queued(welcoming, engine, send_id).counts["sent"] == 1
