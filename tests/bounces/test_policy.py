import logging
import mailbox

import pytest
from sqlmodel import select

from mailer.bounces import ProcessReport, process_mailbox
from mailer.bounces.classify import MAX_MESSAGE_BYTES
from mailer.bounces.mailbox import open_mailbox
from mailer.bounces.policy import process_message
from mailer.errors import BounceError
from mailer.store.models import Bounce, BounceKind, Event, EventKind, Subscriber, SubscriberStatus

from .conftest import CORPUS, corpus, deliver, huge_bounce, remaining

NOT_HANDLED = ["out-of-office.eml", "broken-unreadable.eml"]
EXPECTED_STATUS = {
    "rhys.jones@example.net": SubscriberStatus.bounced,
    "megan.morgan@cardiff.example.org": SubscriberStatus.bounced,
    "dafydd.evans@old-council.example.org": SubscriberStatus.bounced,  # matched by the return path alone
    "sian.price@example.com": SubscriberStatus.active,  # one soft bounce is not enough
    "gareth.hughes@example.com": SubscriberStatus.complained,
    "eleri.wyn@example.co.uk": SubscriberStatus.active,  # out of office
    "owen.thomas@example.net": SubscriberStatus.bounced,  # matched by our Message-ID in the returned copy
    "nia.roberts@example.org": SubscriberStatus.bounced,  # broken MIME, readable all the same
    "sian.lewis@example.cymru": SubscriberStatus.bounced,  # bytes not in the declared charset: read leniently
    "ifan.davies@legacy.example.net": SubscriberStatus.bounced,  # an unknown charset: read leniently
}


def statuses(session) -> dict[str, SubscriberStatus]:
    return {s.email: s.status for s in session.exec(select(Subscriber).execution_options(populate_existing=True))}


@pytest.fixture
def full_maildir(maildir):
    deliver(maildir, *(path.read_bytes() for path in sorted(CORPUS.glob("*.eml"))), huge_bounce())
    return maildir


def test_corpus_marks_each_subscriber_and_moves_only_handled_bounces(settings, engine, mailing, full_maildir, session, caplog):
    caplog.set_level(logging.WARNING, logger="mailer.bounces")
    report = process_mailbox(settings, str(full_maildir), engine=engine)

    assert (report.permanent, report.temporary, report.complaints, report.unmatched, report.unverified) == (7, 1, 1, 0, 0)
    assert (report.ignored, report.duplicates, len(report.skipped)) == (1, 0, 2)
    assert sorted(reason for _, reason in report.skipped) == [
        "broken MIME structure (StartBoundaryNotFoundDefect, MultipartInvariantViolationDefect) and nothing readable",
        "larger than 5 MiB",
    ]
    assert sum("left in place" in record.getMessage() for record in caplog.records) == 2
    assert statuses(session) == EXPECTED_STATUS
    assert sorted(report.changes) == sorted(
        (email, str(status)) for email, status in EXPECTED_STATUS.items() if status != SubscriberStatus.active
    )

    left = remaining(full_maildir)
    assert sorted(left) == sorted([corpus(name) for name in NOT_HANDLED] + [huge_bounce()])
    assert len(remaining(full_maildir, "handled")) == 9


def test_bounce_rows_and_events_carry_the_evidence(settings, engine, mailing, maildir, session):
    deliver(maildir, corpus("postfix-user-unknown.eml"), corpus("m365-recipient-not-found.eml"), corpus("gmail-no-such-user.eml"))
    process_mailbox(settings, str(maildir), engine=engine)

    rows = {row.address: row for row in session.exec(select(Bounce))}
    rhys = rows["rhys.jones@example.net"]
    assert (rhys.kind, rhys.delivery_id, rhys.send_id, rhys.subscriber_id) == (BounceKind.permanent, 1, 1, mailing[rhys.address])
    assert rhys.message_id == "<20250304100211.4TQ3mX1yZPz9sW@mail.example.org>"
    assert "550 5.1.1" in rhys.diagnostic
    dafydd = rows["dafydd.evans@old-council.example.org"]  # the address we sent to, not the forwarding target
    assert dafydd.delivery_id == 3 and "d.evans@council.example.gov.uk" in dafydd.diagnostic
    owen = rows["owen.thomas@example.net"]  # no return path: the Message-ID of the returned copy names the delivery
    assert (owen.delivery_id, owen.send_id, owen.subscriber_id, owen.verified) == (7, 1, mailing[owen.address], True)
    assert (rhys.rule, rhys.code, rhys.verified) == ("no-such-user", "5.1.1", True)

    event = session.exec(select(Event).where(Event.subscriber_id == mailing[rhys.address], Event.kind == EventKind.bounced)).one()
    assert "550 5.1.1" in event.detail and rhys.message_id in event.detail and event.send_id == 1
    assert event.detail.startswith("rule no-such-user, code 5.1.1, report <20250304100211.4TQ3mX1yZPz9sW@mail.example.org>: ")


def test_running_again_counts_nothing_twice(settings, engine, mailing, full_maildir, session):
    process_mailbox(settings, str(full_maildir), engine=engine)
    rows = len(session.exec(select(Bounce)).all())
    events = len(session.exec(select(Event)).all())

    again = process_mailbox(settings, str(full_maildir), engine=engine)
    assert (again.permanent, again.temporary, again.complaints, again.duplicates) == (0, 0, 0, 0)

    # A crash after the commit but before the move leaves a handled bounce in the mailbox: it is only moved.
    deliver(full_maildir, corpus("postfix-mailbox-full-delayed.eml"))
    third = process_mailbox(settings, str(full_maildir), engine=engine)
    assert (third.temporary, third.duplicates) == (0, 1)
    assert len(session.exec(select(Bounce)).all()) == rows
    assert len(session.exec(select(Event)).all()) == events
    assert corpus("postfix-mailbox-full-delayed.eml") not in remaining(full_maildir)


def read_late(settings, engine, spec: str) -> tuple[ProcessReport, ProcessReport]:
    """Two readers of one mailbox at once: the second has read every message when the first
    records and moves them, then acts on what it read."""
    with open_mailbox(spec) as late:
        listed = list(late.messages(MAX_MESSAGE_BYTES))
        first = process_mailbox(settings, spec, engine=engine)
        second = ProcessReport(mailbox="second reader")
        for key, data in listed:
            process_message(settings, engine, late, key, data, second)
    return first, second


def test_two_readers_of_one_maildir_at_once_count_each_bounce_once(settings, engine, mailing, maildir, session):
    deliver(maildir, corpus("postfix-user-unknown.eml"), corpus("postfix-mailbox-full-delayed.eml"))
    first, second = read_late(settings, engine, str(maildir))
    assert (first.permanent, first.temporary, first.duplicates) == (1, 1, 0)
    assert (second.permanent, second.temporary, second.duplicates, second.changes) == (0, 0, 2, [])
    assert len(session.exec(select(Bounce)).all()) == 2
    sian = mailing["sian.price@example.com"]
    assert len(session.exec(select(Event).where(Event.subscriber_id == sian, Event.kind == EventKind.soft_bounce)).all()) == 1
    assert remaining(maildir) == [] and len(remaining(maildir, "handled")) == 2


def test_two_readers_of_one_imap_folder_at_once_count_each_bounce_once(settings, engine, mailing, imap_server, session):
    imap_server.append(corpus("postfix-user-unknown.eml"), corpus("arf-complaint.eml"))
    first, second = read_late(settings, engine, imap_server.url())
    assert (first.permanent, first.complaints, second.duplicates) == (1, 1, 2)
    assert len(session.exec(select(Bounce)).all()) == 2
    assert imap_server.messages("INBOX") == [] and len(imap_server.messages("Handled")) == 2


def test_soft_bounces_mark_bounced_at_the_limit(settings, engine, mailing, maildir, session):
    warning = corpus("postfix-mailbox-full-delayed.eml")
    sian = mailing["sian.price@example.com"]
    for number in range(1, 4):
        deliver(maildir, warning.replace(b"4TQ40q2KxWz9sY1@mail", f"4TQ40q2KxWz9sY{number}@mail".encode()))
        process_mailbox(settings, str(maildir), engine=engine)
        expected = SubscriberStatus.bounced if number == settings.bounce_soft_limit else SubscriberStatus.active
        assert session.get(Subscriber, sian, populate_existing=True).status == expected
    kinds = session.exec(select(Event.kind).where(Event.subscriber_id == sian).order_by(Event.id)).all()
    assert kinds == [EventKind.subscribed, EventKind.soft_bounce, EventKind.soft_bounce, EventKind.soft_bounce, EventKind.bounced]


def test_a_bounce_about_a_delivery_whose_subscriber_is_gone_is_recorded_and_moved(settings, engine, mailing, maildir, session):
    from mailer.store.models import Delivery

    session.get(Delivery, 1).subscriber_id = None  # the subscriber was deleted since
    session.commit()
    deliver(maildir, corpus("postfix-user-unknown.eml"))
    report = process_mailbox(settings, str(maildir), engine=engine)
    assert (report.permanent, report.unmatched, report.unverified, report.changes) == (1, 1, 0, [])
    row = session.exec(select(Bounce)).one()
    assert (row.address, row.subscriber_id, row.delivery_id) == ("rhys.jones@example.net", None, 1)
    assert remaining(maildir) == []


def test_complaint_from_someone_who_already_left_is_still_recorded(settings, engine, mailing, maildir, session):
    from mailer.store.subscribers import unsubscribe

    gareth = mailing["gareth.hughes@example.com"]
    unsubscribe(session, subscriber_id=gareth, channel="link")
    session.commit()
    deliver(maildir, corpus("arf-complaint.eml"))
    process_mailbox(settings, str(maildir), engine=engine)
    assert session.get(Subscriber, gareth, populate_existing=True).status == SubscriberStatus.complained


def test_imap_mailbox_is_processed_and_handled_messages_moved(settings, engine, mailing, imap_server, session):
    imap_server.append(corpus("postfix-user-unknown.eml"), corpus("out-of-office.eml"), corpus("broken-unreadable.eml"))
    report = process_mailbox(settings, imap_server.url(query="handled=Bounces%20done"), engine=engine)
    assert (report.permanent, report.ignored, len(report.skipped)) == (1, 1, 1)
    assert "p@ss" not in report.mailbox and "***" in report.mailbox
    assert len(imap_server.messages("INBOX")) == 2
    assert len(imap_server.messages("Bounces done")) == 1
    assert statuses(session)["rhys.jones@example.net"] == SubscriberStatus.bounced


def test_no_mailbox_is_a_clear_error(settings, engine):
    with pytest.raises(BounceError, match="no bounce mailbox: pass --mailbox, or set bounce_mailbox"):
        process_mailbox(settings, engine=engine)


def test_default_mailbox_comes_from_settings(settings, engine, mailing, maildir, session):
    deliver(maildir, corpus("exim-user-unknown.eml"))
    report = process_mailbox(settings.model_copy(update={"bounce_mailbox": str(maildir)}))  # its own engine, as the runner calls it
    assert report.permanent == 1
    assert statuses(session)["megan.morgan@cardiff.example.org"] == SubscriberStatus.bounced


def test_mbox_mailbox_keeps_only_what_was_not_handled(settings, engine, mailing, workdir, session):
    path = workdir / "bounces.mbox"
    box = mailbox.mbox(path)
    for name in ("exim-user-unknown.eml", "out-of-office.eml", "arf-complaint.eml"):
        box.add(corpus(name))
    box.close()
    report = process_mailbox(settings, str(path), engine=engine)
    assert (report.permanent, report.complaints, report.ignored) == (1, 1, 1)
    assert [message["Subject"] for message in mailbox.mbox(path)] == [
        "=?utf-8?q?Ateb_awtomatig_/_Automatic_reply:_All_in_this_Together:_March_2025?="
    ]
    assert len(mailbox.mbox(workdir / "bounces.mbox.handled")) == 2
