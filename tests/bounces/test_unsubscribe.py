"""Unsubscribe by email: the signed mailto address in List-Unsubscribe, and the mailbox readers acting on it."""

from __future__ import annotations

from email import message_from_bytes

from sqlmodel import select

from mailer.bounces import process_mailbox
from mailer.bounces.unsubscribe import Request, read_tag, request_in, unsubscribe_address
from mailer.delivery.engine import deliver
from mailer.delivery.sends import create_send
from mailer.store.db import new_session
from mailer.store.models import Bounce, Event, EventKind, Subscriber, SubscriberStatus
from mailer.store.subscribers import add_subscriber
from mailer.store.topics import add_topic
from tests.fixtures.settings import ROOT

from .conftest import corpus, remaining
from .conftest import deliver as deliver_to_maildir


def request(to: str, sender: str = "Rhys Jones <rhys.jones@example.net>", extra: str = "") -> bytes:
    """What a mail program sends when a reader uses the mailto of List-Unsubscribe."""
    return (f"From: {sender}\nTo: <{to}>\nSubject: unsubscribe\nMessage-ID: <unsub-{abs(hash(to))}@example.net>\n"
            f"Date: Wed, 05 Mar 2025 09:00:00 +0000\n{extra}MIME-Version: 1.0\nContent-Type: text/plain\n\nunsubscribe\n").encode()


def test_the_address_is_signed_per_reader_and_send(settings):
    address = unsubscribe_address(settings, 42, 7)
    local, _, domain = address.partition("@")
    assert domain == "example.org" and local.startswith("unsubscribe+42-7-")
    assert read_tag(settings, local.partition("+")[2]) == Request(42, 7)
    assert read_tag(settings, local.partition("+")[2].upper()) == Request(42, 7)  # some systems change the case
    assert unsubscribe_address(settings, 42, None).startswith("unsubscribe+42-0-")
    assert unsubscribe_address(settings, None) == "unsubscribe@example.org"  # a test copy: nobody to unsubscribe


def test_forged_or_altered_tags_name_nobody(settings):
    tag = unsubscribe_address(settings, 42, 7).partition("+")[2].partition("@")[0]
    subscriber, send, signature = tag.split("-")
    for forged in (f"43-{send}-{signature}", f"{subscriber}-8-{signature}", f"{subscriber}-{send}-{'0' * 16}", "42", ""):
        assert read_tag(settings, forged) == Request(None)
    rotated = settings.model_copy(update={"secret_key": "a-new-key-0123456789abcdef", "old_secret_keys": [settings.secret_key]})
    assert read_tag(rotated, tag) == Request(42, 7)  # old messages keep working after a key rotation


def test_only_the_envelope_and_address_headers_count(settings):
    address = unsubscribe_address(settings, 3, 1)
    assert request_in(settings, request(address)) == Request(3, 1)
    assert request_in(settings, request("news@example.org", extra=f"Delivered-To: {address}\n")) == Request(3, 1)
    assert request_in(settings, request("unsubscribe@example.org")) == Request(None)  # no token
    # A bounce of a newsletter carries the token in the returned copy's List-Unsubscribe: no request.
    assert request_in(settings, corpus("postfix-user-unknown.eml")) is None


def test_process_unsubscribes_on_a_valid_token_and_nobody_on_a_forged_one(settings, engine, mailing, maildir, session):
    rhys, megan = mailing["rhys.jones@example.net"], mailing["megan.morgan@cardiff.example.org"]
    valid = request(unsubscribe_address(settings, rhys, 1))
    forged = request(unsubscribe_address(settings, megan, 1).replace("unsubscribe+", "unsubscribe+1"),
                     sender="Mallory <mallory@attacker.example>")
    plain = request("unsubscribe@example.org", sender="Mallory <mallory@attacker.example>")
    deliver_to_maildir(maildir, valid, forged, plain)

    report = process_mailbox(settings, str(maildir), engine=engine)
    assert (report.unsubscribed, report.ignored, report.changes) == (1, 2, [("rhys.jones@example.net", "unsubscribed")])
    assert report.eventful  # the runner logs the pass
    statuses = {s.id: s.status for s in session.exec(select(Subscriber).execution_options(populate_existing=True))}
    assert statuses[rhys] == SubscriberStatus.unsubscribed
    assert all(status == SubscriberStatus.active for id_, status in statuses.items() if id_ != rhys)
    event = session.exec(select(Event).where(Event.subscriber_id == rhys, Event.kind == EventKind.unsubscribed)).one()
    assert (event.channel, event.send_id) == ("email", 1)
    assert session.exec(select(Bounce)).all() == []  # a request is no bounce
    assert sorted(remaining(maildir)) == sorted([forged, plain])  # left for a person to look at
    assert remaining(maildir, "handled") == [valid]

    deliver_to_maildir(maildir, valid)  # sent twice: still one change
    again = process_mailbox(settings, str(maildir), engine=engine)
    assert again.changes == [] and not again.eventful


def test_a_complained_reader_stays_complained(settings, engine, mailing, maildir, session):
    deliver_to_maildir(maildir, corpus("arf-complaint.eml"))
    process_mailbox(settings, str(maildir), engine=engine)
    gareth = mailing["gareth.hughes@example.com"]
    deliver_to_maildir(maildir, request(unsubscribe_address(settings, gareth, 1)))
    assert process_mailbox(settings, str(maildir), engine=engine).changes == []
    assert session.get(Subscriber, gareth, populate_existing=True).status == SubscriberStatus.complained


def test_a_bounced_reader_stays_bounced_and_the_request_is_in_their_history(settings, engine, mailing, maildir, session):
    deliver_to_maildir(maildir, corpus("postfix-user-unknown.eml"))
    process_mailbox(settings, str(maildir), engine=engine)
    rhys = mailing["rhys.jones@example.net"]
    deliver_to_maildir(maildir, request(unsubscribe_address(settings, rhys, 1)))
    report = process_mailbox(settings, str(maildir), engine=engine)
    assert (report.unsubscribed, report.changes) == (0, [])  # nothing changed, so nothing reported as changed
    assert session.get(Subscriber, rhys, populate_existing=True).status == SubscriberStatus.bounced
    event = session.exec(select(Event).where(Event.subscriber_id == rhys, Event.kind == EventKind.unsubscribed)).one()
    assert (event.channel, event.detail) == ("email", "stays bounced")


def test_an_arf_opt_out_report_unsubscribes_the_delivery_it_names(settings, engine, mailing, maildir, session):
    opt_out = corpus("arf-complaint.eml").replace(b"Feedback-Type: abuse", b"Feedback-Type: opt-out")
    deliver_to_maildir(maildir, opt_out)
    report = process_mailbox(settings, str(maildir), engine=engine)
    assert (report.unsubscribed, report.complaints) == (1, 0)
    gareth = mailing["gareth.hughes@example.com"]
    assert session.get(Subscriber, gareth, populate_existing=True).status == SubscriberStatus.unsubscribed
    event = session.exec(select(Event).where(Event.subscriber_id == gareth, Event.kind == EventKind.unsubscribed)).one()
    assert event.channel == "feedback-report"


def test_a_reader_of_a_real_send_unsubscribes_by_writing_to_the_mailto(settings, engine, smtp_server, maildir, cli):
    """The acceptance test: the mailto a real message advertises, written to, read by `mailer bounces process`."""
    settings = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": smtp_server.port, "smtp_security": "none"})
    with new_session(engine) as session:
        add_topic(session, name="news")
        for email in ("stays@example.org", "leaves@example.org"):
            add_subscriber(session, email=email, topics=["news"])
        session.commit()
        send = create_send(session, settings=settings, issue_path=ROOT / "issues" / "2026-12-network-launch.yaml")
    deliver(settings, send.id)
    received = next(message for message in smtp_server.messages if message.rcpt_tos == ["leaves@example.org"])
    header = message_from_bytes(received.data)["List-Unsubscribe"]
    mailto = header.split("<mailto:")[1].split("?")[0]
    assert mailto.startswith("unsubscribe+")

    deliver_to_maildir(maildir, request(mailto, sender="Leaves <leaves@example.org>"),
                       request(mailto.replace("unsubscribe+", "unsubscribe+9"), sender="Mallory <m@attacker.example>"))
    result = cli("bounces", "process", "--mailbox", str(maildir))
    assert result.exit_code == 0, result.output
    assert "1 unsubscribe requests" in result.output and "leaves@example.org: now unsubscribed" in result.output
    with new_session(engine) as session:
        statuses = dict(session.exec(select(Subscriber.email, Subscriber.status)).all())
        event = session.exec(select(Event).where(Event.kind == EventKind.unsubscribed)).one()
    assert statuses == {"stays@example.org": "active", "leaves@example.org": "unsubscribed"}
    assert (event.channel, event.send_id) == ("email", send.id)
