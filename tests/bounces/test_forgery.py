"""Forged reports: a bounce or complaint that names no delivery of ours changes nobody, and says so."""

from __future__ import annotations

from sqlmodel import select

from mailer.bounces import process_mailbox
from mailer.bounces.report import bounce_report
from mailer.store.models import Bounce, BounceKind, Event, Subscriber, SubscriberStatus

from .conftest import PEOPLE, corpus, deliver, message_id, remaining


def forged_bounce(victims: list[str]) -> bytes:
    """A hand-written "bounce" naming subscribers, from anyone's server: no return path of ours, no Message-ID we sent."""
    lines = "\n".join(f"<{victim}>: host mx.example.net[192.0.2.9] said: 550 5.1.1 User unknown" for victim in victims)
    return f"""From: MAILER-DAEMON@attacker.example (Mail Delivery System)
To: news@example.org
Subject: Undelivered Mail Returned to Sender
Message-ID: <forged-{len(victims)}@attacker.example>
MIME-Version: 1.0
Content-Type: text/plain

This is the mail system at host attacker.example.

{lines}
""".encode()


def forged_complaint(victim: str) -> bytes:
    return (corpus("arf-complaint.eml")
            .replace(b"bounces+5-c758681ac3011f56@example.org", b"news@example.org")  # no signed return path
            .replace(b"<174108252901.1.5@example.org>", b"<made-up.1@example.org>")  # no Message-ID we sent
            .replace(b"gareth.hughes@example.com", victim.encode())
            .replace(b"<fbl-20250305081530-77421@feedback.example-mail.com>", b"<forged-fbl@attacker.example>"))


def statuses(session) -> dict[str, SubscriberStatus]:
    return {s.email: s.status for s in session.exec(select(Subscriber).execution_options(populate_existing=True))}


def test_hand_written_reports_from_an_attacker_change_nobody(settings, engine, mailing, maildir, session):
    everyone = list(PEOPLE.values())
    deliver(maildir, forged_bounce(everyone), forged_complaint("rhys.jones@example.net"))
    report = process_mailbox(settings, str(maildir), engine=engine)

    assert (report.permanent, report.complaints, report.unverified, report.changes) == (10, 1, 11, [])
    assert set(statuses(session).values()) == {SubscriberStatus.active}
    assert session.exec(select(Event).where(Event.kind != "subscribed")).all() == []
    rows = session.exec(select(Bounce)).all()
    assert len(rows) == 11 and not any(row.verified or row.subscriber_id or row.delivery_id for row in rows)
    assert remaining(maildir) == []  # recorded, so a second run does not count them again

    lines = bounce_report(session).lines
    assert len(lines) == 11 and not any(line.verified for line in lines)


def test_the_report_lists_unverified_reports_as_such(cli, settings, engine, mailing, maildir):
    deliver(maildir, forged_bounce(["rhys.jones@example.net"]))
    assert "1 unverified, changing nobody" in cli("bounces", "process", "--mailbox", str(maildir)).output
    output = cli("bounces", "report").output
    assert "rhys.jones@example.net  (unverified: names no delivery of ours, nobody changed)  rule no-such-user 5.1.1" in output


def test_a_signature_forged_for_a_real_delivery_is_unverified(settings, engine, mailing, maildir, session):
    data = corpus("postfix-user-unknown.eml").replace(b"f2f0d3e824d9998c", b"0000000000000000")
    data = data.replace(message_id(1).encode(), b"<made-up.2@example.org>")
    deliver(maildir, data)
    report = process_mailbox(settings, str(maildir), engine=engine)
    assert (report.permanent, report.unverified, report.changes) == (1, 1, [])
    assert statuses(session)["rhys.jones@example.net"] == SubscriberStatus.active


def test_a_valid_return_path_of_a_delivery_that_does_not_exist_is_unverified(settings, engine, mailing, maildir, session):
    from mailer.bounces.verp import return_path_for

    data = corpus("postfix-user-unknown.eml").replace(b"bounces+1-f2f0d3e824d9998c@example.org", return_path_for(settings, 999).encode())
    deliver(maildir, data.replace(message_id(1).encode(), b"<made-up.3@example.org>"))
    assert process_mailbox(settings, str(maildir), engine=engine).unverified == 1
    assert statuses(session)["rhys.jones@example.net"] == SubscriberStatus.active


def test_a_verified_report_changes_only_its_deliverys_subscriber(settings, engine, mailing, maildir, session):
    """Owen's own return path cannot be used to remove Rhys: the delivery decides who, not the text."""
    data = corpus("exim-user-unknown.eml").replace(b"megan.morgan@cardiff.example.org", b"rhys.jones@example.net")
    deliver(maildir, data)
    report = process_mailbox(settings, str(maildir), engine=engine)
    assert report.changes == [("megan.morgan@cardiff.example.org", "bounced")]
    assert statuses(session)["rhys.jones@example.net"] == SubscriberStatus.active


def test_a_report_verified_by_message_id_alone_is_acted_on(settings, engine, mailing, maildir, session):
    deliver(maildir, corpus("gmail-no-such-user.eml"))  # to the plain sender address; its returned copy names delivery 7
    report = process_mailbox(settings, str(maildir), engine=engine)
    assert (report.permanent, report.unverified) == (1, 0)
    row = session.exec(select(Bounce)).one()
    assert (row.kind, row.delivery_id, row.verified) == (BounceKind.permanent, 7, True)
    assert statuses(session)["owen.thomas@example.net"] == SubscriberStatus.bounced


def test_a_reader_cannot_make_another_readers_message_id_from_their_own(settings, engine, mailing, maildir, session):
    """Rhys holds his own copy of the send; changing the delivery number in its Message-ID must not name Owen's."""
    from mailer.delivery.message import MessageBuilder, Recipient
    from mailer.store.models import Delivery
    from tests.delivery.helpers import rendered

    builder = MessageBuilder(settings, {"en": rendered("en")}, send_id=1, send_tag="abc123")
    sent = {number: builder.message_id(Recipient(email=email, delivery_id=number)) for number, email in PEOPLE.items()}
    for delivery in session.exec(select(Delivery)):
        delivery.message_id = sent[delivery.id]
    session.commit()
    rhys_own = sent[1]
    guessed = rhys_own.replace("<1.", "<7.", 1)
    deliver(maildir, corpus("gmail-no-such-user.eml").replace(message_id(7).encode(), guessed.encode()))

    report = process_mailbox(settings, str(maildir), engine=engine)
    assert (report.permanent, report.unverified, report.changes) == (1, 1, [])
    assert statuses(session)["owen.thomas@example.net"] == SubscriberStatus.active
