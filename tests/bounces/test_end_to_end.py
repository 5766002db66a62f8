"""A send, a bounce after acceptance, and the next send: the whole loop, with the real delivery engine.

The local SMTP server accepts every recipient, as a relay does; the relay's
later failure to deliver is the DSN built here the way Postfix builds it,
addressed to the message's envelope sender (its VERP return path) and put
into a Maildir as the local MTA would.
"""

from __future__ import annotations

from email import message_from_bytes
from email.utils import format_datetime

from sqlmodel import select

from mailer.bounces import process_mailbox
from mailer.bounces.report import bounce_counts
from mailer.bounces.verp import delivery_for
from mailer.delivery.engine import deliver
from mailer.delivery.sends import create_send
from mailer.store.db import new_session
from mailer.store.models import Bounce, BounceKind, Delivery, Subscriber, SubscriberStatus, utcnow
from mailer.store.subscribers import add_subscriber
from mailer.store.topics import add_topic
from tests.fixtures.settings import ROOT

from .conftest import deliver as deliver_to_maildir
from .conftest import remaining

ISSUE = ROOT / "issues" / "2026-12-network-launch.yaml"
GONE = "gone.away@example.net"


def postfix_dsn(envelope_sender: str, recipient: str, original: bytes, diagnostic: str) -> bytes:
    """The bounce Postfix writes when the next hop refuses a message it had accepted."""
    headers = original.split(b"\r\n\r\n", 1)[0].replace(b"\r\n", b"\n").decode()
    status = diagnostic.split()[1]
    return f"""Return-Path: <>
Delivered-To: {envelope_sender}
Date: {format_datetime(utcnow().astimezone())}
From: MAILER-DAEMON@relay.example.org (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {envelope_sender}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="E2E.1/relay.example.org"
Message-Id: <e2e-dsn-{recipient}@relay.example.org>

This is a MIME-encapsulated message.

--E2E.1/relay.example.org
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host relay.example.org.

<{recipient}>: host mx.example.net[192.0.2.25] said: {diagnostic} (in reply
    to RCPT TO command)

--E2E.1/relay.example.org
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; relay.example.org
X-Postfix-Sender: rfc822; {envelope_sender}

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: failed
Status: {status}
Remote-MTA: dns; mx.example.net
Diagnostic-Code: smtp; {diagnostic}

--E2E.1/relay.example.org
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

{headers}

--E2E.1/relay.example.org--
""".encode()


def test_bounce_after_acceptance_marks_the_subscriber_and_the_next_send_skips_them(settings, engine, smtp_server, maildir):
    settings = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": smtp_server.port, "smtp_security": "none"})
    with new_session(engine) as session:
        add_topic(session, name="news")
        for email in ("stays@example.org", GONE):
            add_subscriber(session, email=email, topics=["news"])
        session.commit()
        first = create_send(session, settings=settings, issue_path=ISSUE)
    deliver(settings, first.id)
    assert sorted(smtp_server.recipients()) == sorted(["stays@example.org", GONE])  # accepted, as a relay would

    accepted = next(received for received in smtp_server.messages if received.rcpt_tos == [GONE])
    delivery_id = delivery_for(settings, accepted.mail_from)
    assert delivery_id is not None  # the envelope sender is the signed VERP return path
    dsn = postfix_dsn(accepted.mail_from, GONE, accepted.data, "550 5.1.1 <gone.away@example.net>: User unknown")
    deliver_to_maildir(maildir, dsn)

    report = process_mailbox(settings, str(maildir), engine=engine)
    assert (report.permanent, report.changes) == (1, [(GONE, "bounced")])
    assert remaining(maildir) == [] and len(remaining(maildir, "handled")) == 1

    with new_session(engine) as session:
        gone = session.exec(select(Subscriber).where(Subscriber.email == GONE)).one()
        assert gone.status == SubscriberStatus.bounced
        bounce = session.exec(select(Bounce)).one()
        assert (bounce.kind, bounce.delivery_id, bounce.send_id, bounce.subscriber_id) == (
            BounceKind.permanent, delivery_id, first.id, gone.id)
        assert message_from_bytes(accepted.data)["Message-ID"] == session.get(Delivery, delivery_id).message_id
        assert bounce_counts(session, first.id) == {"permanent": 1, "temporary": 0, "complaint": 0}
        second = create_send(session, settings=settings, issue_path=ISSUE)

    smtp_server.messages.clear()
    deliver(settings, second.id)
    assert smtp_server.recipients() == ["stays@example.org"]
    with new_session(engine) as session:
        assert session.exec(select(Delivery.email).where(Delivery.send_id == second.id)).all() == ["stays@example.org"]
