"""The deliver loop against a real SMTP server and a real SQLite file: every delivery's final state,
and exactly one message per recipient at the server, whatever the server answers."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import select

from mailer.bounces.policy import record_refusals
from mailer.config import Settings
from mailer.delivery import journal
from mailer.delivery.engine import deliver
from mailer.delivery.lease import take_lease
from mailer.delivery.owners import new_owner
from mailer.delivery.sends import enqueue, get_send, set_status, start
from mailer.errors import SendError
from mailer.store.db import new_session
from mailer.store.models import Bounce, Delivery, DeliveryStatus, Send, SendStatus, Subscriber, utcnow
from mailer.store.subscribers import forget, get_by_email, unsubscribe
from tests.delivery.helpers import deliveries, ended_owner, people
from tests.fixtures.smtp import free_port


def statuses(engine, send_id: int) -> Counter[str]:  # type: ignore[no-untyped-def]
    return Counter(str(d.status) for d in deliveries(engine, send_id).values())


def send_status(engine, send_id: int) -> SendStatus:  # type: ignore[no-untyped-def]
    with new_session(engine) as session:
        return get_send(session, send_id=send_id).status


def make_due(engine, send_id: int) -> None:  # type: ignore[no-untyped-def]
    """Pretend the retry time has come."""
    with new_session(engine) as session:
        session.execute(update(Delivery).where(Delivery.send_id == send_id, Delivery.status == "deferred")
                        .values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        session.commit()


def test_every_subscriber_gets_exactly_one_message(smtp_settings, smtp_server, make_send, engine) -> None:  # type: ignore[no-untyped-def]
    recipients = people(30)
    send_id = make_send(recipients)
    progress = []
    report = deliver(smtp_settings, send_id, on_progress=progress.append)

    assert sorted(smtp_server.recipients()) == sorted(email for email, _, _ in recipients)
    assert report.status == "finished" and report.counts["sent"] == 30 and report.sent_now == 30
    assert report.by_language == {"cy": {"sent": 8}, "en": {"sent": 22}}
    assert progress[-1].counts["sent"] == 30 and progress[-1].counts["queued"] == 0
    rows = deliveries(engine, send_id)
    assert all(d.status == "sent" and d.reply.startswith("250") and d.sent_at and d.attempts == 1 for d in rows.values())
    # Each message names its delivery in the envelope (VERP) and in its Message-ID.
    for received in smtp_server.messages:
        delivery = rows[received.rcpt_tos[0]]
        assert received.mail_from.startswith(f"bounces+{delivery.id}-")
        assert received.message["Message-ID"] == delivery.message_id
    welsh = next(r for r in smtp_server.messages if r.rcpt_tos == ["reader0@example.com"])
    assert welsh.message["Subject"].startswith("Newyddion")
    with new_session(engine) as session:
        send = get_send(session, send_id=send_id)
        assert send.finished_at and send.started_at and not send.lease_owner
    assert not list((Path(f"{engine.url.database}.sendlog")).glob("*.log"))  # journal folded in and removed


def test_refusals_drops_and_retries(smtp_settings, smtp_server, make_send, engine) -> None:  # type: ignore[no-untyped-def]
    recipients = people(12)
    send_id = make_send(recipients)
    smtp_server.rules.update({"reader1@example.com": "550 5.1.1 No such user",
                              "reader2@example.com": "451 4.3.0 Greylisted, try later",
                              "reader3@example.com": "421 4.7.0 Too many connections"})
    smtp_server.drop_on.add("reader4@example.com")

    report = deliver(smtp_settings, send_id)
    rows = deliveries(engine, send_id)
    assert rows["reader1@example.com"].status == "failed" and "No such user" in rows["reader1@example.com"].reply
    for email in ("reader2@example.com", "reader3@example.com", "reader4@example.com"):
        row = rows[email]
        assert row.status == "deferred" and row.attempts == 1 and not row.claimed_by
        assert timedelta(minutes=4) < row.next_attempt_at - utcnow() <= timedelta(minutes=5)
    assert "Greylisted" in rows["reader2@example.com"].reply
    assert report.status == "sending" and report.counts == {"queued": 0, "sent": 8, "deferred": 3, "failed": 1,
                                                            "skipped": 0}
    assert report.next_retry_at == rows["reader2@example.com"].next_attempt_at or report.next_retry_at
    assert report.failures == [("reader1@example.com", rows["reader1@example.com"].reply)]
    assert "next retry at" in str(report)

    # Nothing is due yet: a resume sends nothing.
    assert deliver(smtp_settings, send_id).sent_now == 0

    # The server recovers; the retries go out, once each; the refused address is never retried.
    smtp_server.rules.clear()
    smtp_server.drop_on.clear()
    make_due(engine, send_id)
    report = deliver(smtp_settings, send_id)
    assert report.status == "finished" and report.counts["sent"] == 11 and report.counts["failed"] == 1
    assert sorted(smtp_server.recipients()) == sorted(e for e, _, _ in recipients if e != "reader1@example.com")
    assert deliveries(engine, send_id)["reader2@example.com"].attempts == 2


def test_an_address_refused_outright_is_marked_bounced(smtp_settings, smtp_server, make_send, engine) -> None:  # type: ignore[no-untyped-def]
    send_id = make_send(people(3))
    smtp_server.rules.update({"reader1@example.com": "550 5.1.1 No such user",
                              "reader2@example.com": "554 5.7.1 Message rejected as spam"})
    deliver(smtp_settings, send_id)
    with new_session(engine) as session:
        assert record_refusals(session, smtp_settings, send_id=send_id).permanent == 0  # recorded once only
        assert get_by_email(session, email="reader1@example.com").status == "bounced"
        # A spam block faults the message, not the address: counted, not yet bounced.
        assert get_by_email(session, email="reader2@example.com").status == "active"
        kinds = sorted((b.address, b.kind) for b in session.exec(select(Bounce)).all())
    assert kinds == [("reader1@example.com", "permanent"), ("reader2@example.com", "temporary")]


def test_temporary_failures_give_up_at_the_deadline(smtp_settings, smtp_server, make_send, engine) -> None:  # type: ignore[no-untyped-def]
    send_id = make_send(people(2))
    smtp_server.rules["reader1@example.com"] = "452 4.2.2 Mailbox full"
    deliver(smtp_settings, send_id)
    with new_session(engine) as session:  # the first attempt was two days ago
        session.execute(update(Delivery).where(Delivery.email == "reader1@example.com")
                        .values(first_attempt_at=utcnow() - timedelta(hours=47, minutes=58)))
        session.commit()
    make_due(engine, send_id)
    report = deliver(smtp_settings, send_id)
    row = deliveries(engine, send_id)["reader1@example.com"]
    assert row.status == "failed" and row.reply.startswith("gave up after 2 attempts: 452")
    assert report.status == "finished"


def test_unsubscribed_and_forgotten_during_a_send_are_skipped(smtp_settings, smtp_server, make_send, engine) -> None:  # type: ignore[no-untyped-def]
    send_id = make_send(people(5))
    with new_session(engine) as session:
        start(session, send_id=send_id)  # the audience is taken
        unsubscribe(session, subscriber_id=get_by_email(session, email="reader1@example.com").id, channel="link")
        forget(session, email="reader2@example.com", salt="salt")
        session.commit()
    report = deliver(smtp_settings, send_id)
    assert sorted(smtp_server.recipients()) == ["reader0@example.com", "reader3@example.com", "reader4@example.com"]
    assert report.counts["skipped"] == 2 and report.status == "finished"


def test_audience_is_taken_when_the_send_starts(smtp_settings, smtp_server, make_send, engine) -> None:  # type: ignore[no-untyped-def]
    from mailer.store.subscribers import add_subscriber

    send_id = make_send(people(2))
    with new_session(engine) as session:
        add_subscriber(session, email="late@example.com", name="Late")
        session.commit()
    deliver(smtp_settings, send_id)
    assert "late@example.com" in smtp_server.recipients()
    with new_session(engine) as session:  # and only once: enqueue is idempotent
        assert enqueue(session, send_id=send_id) == 0


def test_pauses_after_consecutive_connection_errors_then_resumes(smtp_settings, smtp_server, make_send, engine) -> None:  # type: ignore[no-untyped-def]
    recipients = people(20)
    send_id = make_send(recipients)
    down = smtp_settings.model_copy(update={"smtp_port": free_port(), "max_connection_errors": 3})
    report = deliver(down, send_id)
    assert report.status == "paused" and "3 connection errors in a row" in report.note
    assert statuses(engine, send_id) == {"deferred": 3, "queued": 17}
    assert all(not d.claimed_by for d in deliveries(engine, send_id).values())

    report = deliver(smtp_settings, send_id)  # resuming a paused send
    assert report.status == "sending" and report.counts["sent"] == 17
    make_due(engine, send_id)
    assert deliver(smtp_settings, send_id).status == "finished"
    assert sorted(smtp_server.recipients()) == sorted(e for e, _, _ in recipients)


def test_stop_finishes_the_message_in_hand_and_resumes_exactly_once(smtp_settings, smtp_server, make_send, engine,  # type: ignore[no-untyped-def]
                                                                    monkeypatch) -> None:
    import mailer.delivery.engine as engine_module

    monkeypatch.setattr(engine_module, "PROGRESS", 0.01)
    recipients = people(40)
    send_id = make_send(recipients)
    stop = threading.Event()
    settings = smtp_settings.model_copy(update={"rate_per_second": 100.0})
    report = deliver(settings, send_id, stop=stop,
                     on_progress=lambda p: stop.set() if p.counts["sent"] >= 5 else None)
    sent = len(smtp_server.recipients())
    assert 5 <= sent < 40 and report.status == "sending" and report.note.startswith("stopped")
    rows = deliveries(engine, send_id)
    assert sum(d.status == "sent" for d in rows.values()) == sent
    assert all(not d.claimed_by and d.next_attempt_at is None for d in rows.values() if d.status == "queued")

    assert deliver(smtp_settings, send_id).status == "finished"
    assert sorted(smtp_server.recipients()) == sorted(e for e, _, _ in recipients)


def test_several_connections_share_the_work(smtp_settings, smtp_server, make_send, engine) -> None:  # type: ignore[no-untyped-def]
    recipients = people(60)
    send_id = make_send(recipients)
    smtp_server.rules["reader7@example.com"] = "550 5.1.1 No such user"
    report = deliver(smtp_settings.model_copy(update={"smtp_connections": 3}), send_id)
    assert smtp_server.handler.connections == 3
    assert sorted(smtp_server.recipients()) == sorted(e for e, _, _ in recipients if e != "reader7@example.com")
    assert report.counts["sent"] == 59 and report.counts["failed"] == 1


def test_a_second_sender_is_refused_while_the_first_lives(smtp_settings, make_send, engine) -> None:  # type: ignore[no-untyped-def]
    send_id = make_send(people(2))
    with new_session(engine) as session:
        take_lease(session, send_id=send_id, owner=new_owner())  # this (live) process holds it
    with pytest.raises(SendError, match="being sent by another process"):
        deliver(smtp_settings, send_id)


def test_a_dead_senders_lease_claims_and_journal_are_taken_over(smtp_settings, smtp_server, make_send, engine) -> None:  # type: ignore[no-untyped-def]
    recipients = people(6)
    send_id = make_send(recipients)
    dead = ended_owner()
    with new_session(engine) as session:
        start(session, send_id=send_id)
        session.execute(update(Send).where(Send.id == send_id)
                        .values(lease_owner=dead, lease_expires_at=utcnow() + timedelta(minutes=1)))
        session.execute(update(Delivery).where(Delivery.send_id == send_id)
                        .values(claimed_by=dead, next_attempt_at=utcnow() + timedelta(minutes=2)))
        session.commit()
        accepted = session.exec(select(Delivery).where(Delivery.email == "reader0@example.com")).one()
    # The dead run had reader0's message accepted and journalled, but not yet in the database.
    folder = journal.journal_folder(engine)
    folder.mkdir()
    (folder / f"send-{send_id}-{dead}.log").write_bytes(journal.journal_line(journal.Outcome(
        accepted.id, DeliveryStatus.sent, "250 OK queued as 1", utcnow(), email="reader0@example.com",
        message_id="<x@example.org>")) + b"12\t2026-")  # and died writing the next line

    report = deliver(smtp_settings, send_id)
    assert report.status == "finished" and report.counts["sent"] == 6
    assert sorted(smtp_server.recipients()) == sorted(e for e, _, _ in recipients if e != "reader0@example.com")
    assert deliveries(engine, send_id)["reader0@example.com"].reply == "250 OK queued as 1"
    assert not list(folder.iterdir())


def test_finished_and_cancelled_sends_are_refused(smtp_settings, make_send, engine) -> None:  # type: ignore[no-untyped-def]
    send_id = make_send(people(1))
    deliver(smtp_settings, send_id)
    with pytest.raises(SendError, match="finished"):
        deliver(smtp_settings, send_id)
    other = make_send([("x@example.com", "", "en")])
    with new_session(engine) as session:
        set_status(session, send_id=other, status=SendStatus.cancelled)
    with pytest.raises(SendError, match="cancelled"):
        deliver(smtp_settings, other)
    with new_session(engine) as session:
        assert not get_send(session, send_id=other).lease_owner


def test_pausing_from_elsewhere_stops_a_running_send(smtp_settings, smtp_server, make_send, engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import mailer.delivery.engine as engine_module

    monkeypatch.setattr(engine_module, "HOUSEKEEPING", 0.05)
    send_id = make_send(people(30))
    settings = smtp_settings.model_copy(update={"rate_per_second": 20.0})
    paused = []

    def pause_once(progress) -> None:  # type: ignore[no-untyped-def]
        if progress.counts["sent"] >= 3 and not paused:
            with new_session(engine) as session:
                paused.append(set_status(session, send_id=send_id, status=SendStatus.paused))

    report = deliver(settings, send_id, on_progress=pause_once)
    assert report.status == "paused" and 3 <= report.counts["sent"] < 30
    assert len(smtp_server.recipients()) == report.counts["sent"]


def test_outbox_is_the_default_transport(settings: Settings, make_send, engine) -> None:  # type: ignore[no-untyped-def]
    send_id = make_send(people(3))
    report = deliver(settings, send_id)
    assert report.status == "finished"
    assert sorted(p.name for p in Path(settings.outbox_dir).iterdir()) == ["000001.eml", "000002.eml", "000003.eml"]


def test_an_unusable_address_fails_without_stopping_the_send(smtp_settings, smtp_server, make_send, engine) -> None:  # type: ignore[no-untyped-def]
    send_id = make_send(people(2))
    with new_session(engine) as session:  # an address the store accepted but SMTP cannot carry without SMTPUTF8
        session.execute(update(Subscriber).where(Subscriber.email == "reader1@example.com")
                        .values(email="rhian.ŵ@example.com"))
        session.commit()
    report = deliver(smtp_settings, send_id)
    assert report.status == "finished" and report.counts["failed"] == 1
    assert "SMTPUTF8" in report.failures[0][1] or "plain ASCII" in report.failures[0][1]
    assert smtp_server.recipients() == ["reader0@example.com"]


def broken_for(monkeypatch, emails) -> None:  # type: ignore[no-untyped-def]
    """Building the message of any of `emails` raises, as a bug met by their data would."""
    from mailer.delivery.message import MessageBuilder

    build = MessageBuilder.build

    def broken(self, recipient):  # type: ignore[no-untyped-def]
        if emails is all or recipient.email in emails:
            raise RuntimeError(f"a bug met by {recipient.email}")
        return build(self, recipient)

    monkeypatch.setattr(MessageBuilder, "build", broken)


def test_a_recipient_whose_message_raises_is_recorded_failed_and_the_send_carries_on(  # type: ignore[no-untyped-def]
        smtp_settings, smtp_server, make_send, engine, monkeypatch) -> None:
    recipients = people(10)
    send_id = make_send(recipients)
    broken_for(monkeypatch, {"reader5@example.com", "reader9@example.com"})  # the last one too
    report = deliver(smtp_settings, send_id)
    assert report.status == "finished" and report.counts["sent"] == 8 and report.counts["failed"] == 2
    rows = deliveries(engine, send_id)
    assert rows["reader5@example.com"].reply == ("not sent: the message could not be built: "
                                                 "RuntimeError: a bug met by reader5@example.com")
    assert rows["reader5@example.com"].reply_code is None
    assert sorted(smtp_server.recipients()) == sorted(e for e, _, _ in recipients if e not in (
        "reader5@example.com", "reader9@example.com"))


def test_messages_that_keep_failing_to_build_pause_the_send_and_stay_queued(  # type: ignore[no-untyped-def]
        smtp_settings, smtp_server, make_send, engine, monkeypatch) -> None:
    from mailer.delivery.engine import BROKEN_IN_A_ROW

    recipients = people(BROKEN_IN_A_ROW + 15)
    send_id = make_send(recipients)
    broken_for(monkeypatch, all)  # a bug every message meets: not the recipients' fault
    report = deliver(smtp_settings, send_id)
    assert report.status == "paused" and report.paused_by_fault
    assert f"{BROKEN_IN_A_ROW} messages in a row could not be built" in report.note
    assert statuses(engine, send_id) == {"queued": BROKEN_IN_A_ROW + 15}  # nobody failed for it
    assert all(not d.claimed_by for d in deliveries(engine, send_id).values())

    monkeypatch.undo()  # the bug fixed
    assert deliver(smtp_settings, send_id).status == "finished"
    assert sorted(smtp_server.recipients()) == sorted(e for e, _, _ in recipients)


def test_a_bug_outside_one_recipient_fails_the_send_and_resume_finishes_it(  # type: ignore[no-untyped-def]
        smtp_settings, smtp_server, make_send, engine, monkeypatch) -> None:
    from mailer.delivery import queue

    recipients = people(10)
    send_id = make_send(recipients)
    claim = queue.claim
    calls = []

    def broken_claim(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("a bug")
        return claim(*args, **kwargs)

    monkeypatch.setattr(queue, "claim", broken_claim)
    monkeypatch.setattr("mailer.delivery.engine.BATCH", 4)
    with pytest.raises(RuntimeError, match="a bug"):
        deliver(smtp_settings, send_id)
    with new_session(engine) as session:
        send = get_send(session, send_id=send_id)
        assert send.status == "failed" and send.note == "stopped by an error: RuntimeError: a bug"
        assert not send.lease_owner
    assert 0 < len(smtp_server.recipients()) == statuses(engine, send_id)["sent"] <= 4  # those claimed before the bug
    assert all(not d.claimed_by for d in deliveries(engine, send_id).values())

    monkeypatch.undo()
    assert deliver(smtp_settings, send_id).status == "finished"
    assert sorted(smtp_server.recipients()) == sorted(e for e, _, _ in recipients)


def test_a_run_held_up_past_its_lease_sends_no_more(smtp_settings, smtp_server, make_send, engine,  # type: ignore[no-untyped-def]
                                                    monkeypatch) -> None:
    # As if the machine slept through the lease: renewals stop, the trusted time runs out, the run stops
    # before another process (which could now take the send over) and this one both send a message.
    import mailer.delivery.engine as engine_module

    trusted = engine_module.TRUSTED
    monkeypatch.setattr(engine_module, "HOUSEKEEPING", 3600.0)
    monkeypatch.setattr(engine_module, "TRUSTED", 0.5)
    recipients = people(30)
    send_id = make_send(recipients)
    report = deliver(smtp_settings.model_copy(update={"rate_per_second": 20.0}), send_id)  # 30 take 1.5 s
    assert report.status == "sending" and "held up longer than the lease" in report.note
    assert len(smtp_server.recipients()) == report.counts["sent"] < 30

    monkeypatch.setattr(engine_module, "TRUSTED", trusted)
    assert deliver(smtp_settings, send_id).status == "finished"
    assert sorted(smtp_server.recipients()) == sorted(e for e, _, _ in recipients)


def test_sends_running_side_by_side_share_the_rate_limit(smtp_settings, smtp_server, make_send, engine) -> None:  # type: ignore[no-untyped-def]
    # The scheduler runs several sends in one process (say this month's issue and last month's retries):
    # together they must keep to the provider's limit. 10 messages at 5 a second take at least 1.8 s
    # (less the first message's connection time); each send on its own limiter would take 0.8 s.
    first, second = make_send(people(5)), make_send([])  # both to the same five
    settings = smtp_settings.model_copy(update={"rate_per_second": 5.0})
    threads = [threading.Thread(target=deliver, args=(settings, send_id)) for send_id in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with new_session(engine) as session:
        times = sorted(session.exec(select(Delivery.sent_at)).all())
    assert len(times) == len(smtp_server.recipients()) == 10
    assert (times[-1] - times[0]).total_seconds() >= 1.4
