"""A send's status has one owner (`mailer.delivery.lifecycle`): the moves its table lists, and no others;
and the server's reply code kept in a column of its own, however the transport reports it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from mailer.bounces.policy import record_refusals
from mailer.delivery import lifecycle
from mailer.delivery.engine import deliver
from mailer.delivery.sends import set_status, start
from mailer.errors import SendError
from mailer.store.db import make_engine, new_session, upgrade
from mailer.store.models import Delivery, Send, SendStatus, Subscriber, utcnow
from tests.delivery.helpers import deliveries, people
from tests.fixtures.smtp import free_port

S = SendStatus


def test_finished_and_cancelled_are_final_and_every_status_has_its_moves() -> None:
    assert set(lifecycle.MOVES) == set(SendStatus)
    assert lifecycle.MOVES[S.finished] == lifecycle.MOVES[S.cancelled] == frozenset()
    assert lifecycle.sources(S.sending) == {S.draft, S.scheduled, S.missed, S.sending, S.paused, S.failed}
    assert lifecycle.sources(S.paused) == {S.sending, S.paused}
    assert lifecycle.sources(S.missed) == {S.scheduled}


@pytest.mark.parametrize("now, to, refusal", [
    (S.finished, S.sending, "send 1 is finished; it cannot be sent"),
    (S.cancelled, S.paused, "send 1 is cancelled; it cannot be paused"),
    (S.draft, S.paused, "send 1 is draft; it cannot be paused"),
    (S.failed, S.paused, "send 1 is failed; it cannot be paused"),
    (S.draft, S.finished, "send 1 is draft; it cannot be marked finished"),
    (S.sending, S.missed, "send 1 is sending; it cannot be marked missed"),
])
def test_a_move_the_table_does_not_list_is_refused(make_send, engine, now, to, refusal) -> None:  # type: ignore[no-untyped-def]
    send_id = make_send(people(1))
    with new_session(engine) as session:
        session.execute(update(Send).where(Send.id == send_id).values(status=now))
        session.commit()
        with pytest.raises(SendError, match=refusal):
            lifecycle.move(session, send_id=send_id, to=to)
        assert session.get(Send, send_id, populate_existing=True).status == now


def test_a_conditional_change_never_overwrites_a_change_made_meanwhile(make_send, engine) -> None:  # type: ignore[no-untyped-def]
    send_id = make_send(people(1))
    with new_session(engine) as session:
        start(session, send_id=send_id)
        set_status(session, send_id=send_id, status=S.paused, note="paused by hand")  # a person, meanwhile
        # The engine finishing its run moves the send on only from `sending`.
        assert not lifecycle.change(session, send_id=send_id, to=S.finished, from_=(S.sending,))
        assert session.get(Send, send_id, populate_existing=True).status == S.paused
        with pytest.raises(ValueError, match="no such move: finished -> sending"):
            lifecycle.change(session, send_id=send_id, to=S.sending, from_=(S.finished,))


def test_a_process_resuming_what_it_found_sending_leaves_a_person_s_pause_made_since(settings, make_send,
                                                                                   engine) -> None:  # type: ignore[no-untyped-def]
    """The runner and the welcome pages look at a send, then deliver it: a pause typed in between stands."""
    send_id = make_send(people(2))
    with new_session(engine) as session:
        start(session, send_id=send_id)  # the runner finds it `sending` (a crash left it so)
        set_status(session, send_id=send_id, status=S.paused, note="paused by hand")  # a person, meanwhile
    with pytest.raises(SendError, match=f"send {send_id} is paused now; left as it is"):
        deliver(settings, send_id, expected=S.sending)
    with new_session(engine) as session:
        send = session.get(Send, send_id)
        assert send is not None and (send.status, send.note, send.lease_owner) == (S.paused, "paused by hand", "")
    assert {d.status for d in deliveries(engine, send_id).values()} == {"queued"}
    assert not list(Path(settings.outbox_dir).glob("*.eml"))


def test_the_reply_code_is_kept_whatever_the_server_said(smtp_settings, smtp_server, make_send, engine) -> None:  # type: ignore[no-untyped-def]
    send_id = make_send(people(4))
    smtp_server.rules.update({"reader1@example.com": "550 5.1.1 No such user",
                              "reader2@example.com": "451 4.3.0 Greylisted"})
    smtp_server.drop_on.add("reader3@example.com")
    deliver(smtp_settings, send_id)
    codes = {email: (d.status, d.reply_code) for email, d in deliveries(engine, send_id).items()}
    assert codes == {"reader0@example.com": ("sent", 250), "reader1@example.com": ("failed", 550),
                     "reader2@example.com": ("deferred", 451), "reader3@example.com": ("deferred", None)}


def test_the_outbox_reports_its_code_as_smtp_does(settings, make_send, engine) -> None:  # type: ignore[no-untyped-def]
    send_id = make_send(people(1))
    deliver(settings, send_id)
    (row,) = deliveries(engine, send_id).values()
    assert (row.status, row.reply_code) == ("sent", 250)
    assert row.reply == f"250 written to {Path(settings.outbox_dir) / '000001.eml'}"


def test_a_server_that_cannot_be_reached_leaves_no_code(smtp_settings, make_send, engine) -> None:  # type: ignore[no-untyped-def]
    send_id = make_send(people(1))
    deliver(smtp_settings.model_copy(update={"smtp_port": free_port()}), send_id)
    (row,) = deliveries(engine, send_id).values()
    assert row.status == "deferred" and row.reply_code is None


def test_refusals_are_found_by_their_code_not_by_parsing_the_reply(settings, make_send, engine) -> None:  # type: ignore[no-untyped-def]
    send_id = make_send(people(3))
    with new_session(engine) as session:
        start(session, send_id=send_id)
        replies = {"reader0@example.com": ("Recipient address rejected: no such user", 550),  # worded its own way
                   "reader1@example.com": ("550 looks like a refusal, but nothing answered", None),
                   "reader2@example.com": ("gave up after 5 attempts: 452 4.2.2 Mailbox full", 452)}
        for email, (reply, code) in replies.items():
            session.execute(update(Delivery).where(Delivery.email == email).values(
                status="failed", reply=reply, reply_code=code, first_attempt_at=utcnow()))
        session.commit()
        report = record_refusals(session, settings, send_id=send_id)
        session.commit()
        bounced = {row.email for row in session.execute(select(Subscriber.email).where(Subscriber.status == "bounced"))}
    assert report.permanent == 1 and bounced == {"reader0@example.com"}


def test_the_migration_fills_the_code_from_the_replies_recorded_before(workdir) -> None:  # type: ignore[no-untyped-def]
    from alembic import command

    from mailer.store.db import _config

    engine = make_engine(f"sqlite:///{workdir / 'old.db'}")
    with engine.begin() as connection:
        command.upgrade(_config(connection), "81be1aa90c95")
        connection.execute(text("INSERT INTO send (id, issue_slug, issue_path, title, status, topics, languages, content,"
                                " content_hash, created_at, lease_owner, note) VALUES (1, 's', '', 't', 'finished', '',"
                                " '', x'7b7d', '', '2026-12-01', '', '')"))
        for n, reply in enumerate(["250 2.0.0 Accepted", "550 5.1.1 No such user", "gave up after 5 attempts: 452 x",
                                   "", "421 4.7.0 Too many", "5xx odd"]):
            connection.execute(text("INSERT INTO delivery (send_id, email, language, status, attempts, reply, "
                                    "message_id, claimed_by) VALUES (1, :email, 'en', 'failed', 1, :reply, '', '')"),
                               {"email": f"r{n}@example.com", "reply": reply})
    upgrade(engine)  # as `mailer db upgrade` does: the rows survive the migrations that rebuild tables
    with engine.connect() as connection:
        codes = connection.execute(text("SELECT reply_code FROM delivery ORDER BY id")).scalars().all()
    engine.dispose()
    assert codes == [250, 550, None, None, 421, None]
