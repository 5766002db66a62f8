import pytest

from mailer.bounces.classify import MAX_MESSAGE_BYTES, Classification, Failure, MalformedMessage, classify
from mailer.store.models import BounceKind

from .conftest import corpus, huge_bounce

# file -> (kind, the failing address the report gives, a piece of its diagnostic, deliveries its return paths name)
CORPUS_CASES = {
    "postfix-user-unknown.eml": (BounceKind.permanent, "rhys.jones@example.net", "550 5.1.1", (1,)),
    "exim-user-unknown.eml": (BounceKind.permanent, "megan.morgan@cardiff.example.org", "550 5.1.1", (2,)),
    "m365-recipient-not-found.eml": (BounceKind.permanent, "d.evans@council.example.gov.uk", "550 5.1.10 RESOLVER.ADR.RecipientNotFound", (3,)),
    "postfix-mailbox-full-delayed.eml": (BounceKind.temporary, "sian.price@example.com", "452 4.2.2", (4,)),
    "arf-complaint.eml": (BounceKind.complaint, "gareth.hughes@example.com", "Feedback-Type: abuse", (5,)),
    "gmail-no-such-user.eml": (BounceKind.permanent, "owen.thomas@example.net", "550-5.1.1 The email account", ()),
}


@pytest.mark.parametrize("name", sorted(CORPUS_CASES))
def test_corpus_bounces_are_classified(settings, name):
    kind, address, diagnostic, deliveries = CORPUS_CASES[name]
    result = classify(settings, corpus(name))
    assert result.kind == kind
    assert [failure.address for failure in result.failures] == [address]
    assert diagnostic in result.failures[0].diagnostic
    assert result.delivery_ids == deliveries
    assert result.message_id.startswith("<") and result.message_id.endswith(">")


def test_out_of_office_is_not_a_bounce(settings):
    result = classify(settings, corpus("out-of-office.eml"))
    assert result.kind is None and result.failures == ()
    assert result.delivery_ids == (6,)  # auto-replies go to the return path too; that alone is not a bounce


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("malformed-mime.eml", "broken MIME structure"),
        ("wrong-charset.eml", "not valid utf-8"),
        ("unknown-charset.eml", "unknown charset 'x-legacy-wales-8'"),
    ],
)
def test_malformed_messages_are_refused_with_the_reason(settings, name, reason):
    with pytest.raises(MalformedMessage, match=reason):
        classify(settings, corpus(name))


def test_huge_messages_are_refused_unread(settings):
    data = huge_bounce()
    assert len(data) > MAX_MESSAGE_BYTES
    with pytest.raises(MalformedMessage, match="larger than 5 MiB"):
        classify(settings, data)


def dsn(action: str, status: str, diagnostic: str) -> bytes:
    """A minimal RFC 3464 report for one recipient."""
    return f"""From: MAILER-DAEMON@mail.example.org
To: news@example.org
Subject: Delivery Status Notification
Message-ID: <dsn-test@mail.example.org>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: text/plain

Delivery report.

--b
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.example.org

Final-Recipient: rfc822; someone@example.net
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {diagnostic}

--b--
""".encode()


@pytest.mark.parametrize(
    ("action", "status", "diagnostic", "kind"),
    [
        ("failed", "5.1.1", "550 5.1.1 User unknown", BounceKind.permanent),
        ("failed", "5.2.1", "550 5.2.1 Mailbox disabled", BounceKind.permanent),
        ("failed", "5.1.2", "550 5.1.2 Host unknown", BounceKind.permanent),
        # The MTA gave up, but on a temporary condition:
        ("failed", "4.4.7", "421 4.4.7 Delivery time expired", BounceKind.temporary),
        # RFC 5321: treat 552 as temporary; a full mailbox is the mailbox's state, not a dead address.
        ("failed", "5.2.2", "552 5.2.2 Mailbox full", BounceKind.temporary),
        ("failed", "5.3.4", "552 5.3.4 Message too big", BounceKind.temporary),
        # A spam block or DMARC refusal faults the sender; it must not unsubscribe good addresses wholesale.
        ("failed", "5.7.1", "550 5.7.1 Message rejected as spam", BounceKind.temporary),
        ("delayed", "4.2.2", "452 4.2.2 Mailbox full", BounceKind.temporary),
        ("delivered", "2.0.0", "250 2.0.0 OK", None),
        ("relayed", "2.0.0", "250 2.0.0 OK", None),
    ],
)
def test_dsn_status_decides_the_kind(settings, action, status, diagnostic, kind):
    assert classify(settings, dsn(action, status, diagnostic)).kind == kind


def test_feedback_reports_that_are_not_complaints_are_not_bounces(settings):
    data = corpus("arf-complaint.eml").replace(b"Feedback-Type: abuse", b"Feedback-Type: not-spam")
    assert classify(settings, data).kind is None


def test_complaint_without_original_rcpt_to_uses_the_returned_message(settings):
    data = corpus("arf-complaint.eml").replace(b"Original-Rcpt-To: <gareth.hughes@example.com>\n", b"")
    assert [failure.address for failure in classify(settings, data).failures] == ["gareth.hughes@example.com"]


def test_message_without_message_id_is_keyed_by_its_bytes(settings):
    data = corpus("postfix-user-unknown.eml").replace(b"Message-Id: <20250304100211.4TQ3mX1yZPz9sW@mail.example.org>\n", b"")
    first, second = classify(settings, data), classify(settings, data)
    assert first.message_id.startswith("sha256:") and first.message_id == second.message_id


def test_forged_return_path_names_no_delivery(settings):
    data = corpus("postfix-user-unknown.eml").replace(b"f2f0d3e824d9998c", b"0000000000000000")
    result = classify(settings, data)
    assert result.kind == BounceKind.permanent and result.delivery_ids == ()


def test_a_report_naming_one_recipient_twice_is_one_bounce_of_the_worst_kind():
    delayed = Failure("Sian.Price@example.com", BounceKind.temporary, "4.2.2 mailbox full")
    failed = Failure("sian.price@example.com", BounceKind.permanent, "5.1.1 no such user")
    other = Failure("rhys.jones@example.net", BounceKind.temporary, "4.4.1 no answer")
    report = Classification(message_id="<twice@example.org>", failures=(delayed, other, failed), delivery_ids=())
    assert report.worst_per_address() == [failed, other]
