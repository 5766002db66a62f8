"""Reading single messages: DSNs, notices for people, feedback reports, provider notices, and the parser bugs
the measurement found (each reproduced here with a message written for this test)."""

import json

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
    # Damage outside the part that is read is not held against a report (issue 14: 17 of 591 were skipped):
    "malformed-mime.eml": (BounceKind.permanent, "nia.roberts@example.org", "550 5.1.1", (8,)),  # boundary never appears
    "wrong-charset.eml": (BounceKind.permanent, "sian.lewis@example.cymru", "550 5.1.1", (9,)),  # Latin-1 bytes, says UTF-8
    "unknown-charset.eml": (BounceKind.permanent, "ifan.davies@legacy.example.net", "550 5.1.1", (10,)),  # x-legacy-wales-8
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


def test_the_returned_copy_names_the_delivery_by_its_message_id(settings):
    """The Gmail-style bounce went to the plain sender address: only our Message-ID in it says which delivery."""
    assert classify(settings, corpus("gmail-no-such-user.eml")).message_ids == ("<174108252901.1.7@example.org>",)


def test_out_of_office_is_not_a_bounce(settings):
    result = classify(settings, corpus("out-of-office.eml"))
    assert result.kind is None and result.failures == ()
    assert result.delivery_ids == (6,)  # auto-replies go to the return path too; that alone is not a bounce


def test_a_broken_message_with_nothing_readable_is_refused(settings):
    with pytest.raises(MalformedMessage, match=r"broken MIME structure \(StartBoundaryNotFoundDefect"):
        classify(settings, corpus("broken-unreadable.eml"))


def test_huge_messages_are_refused_unread(settings):
    data = huge_bounce()
    assert len(data) > MAX_MESSAGE_BYTES
    with pytest.raises(MalformedMessage, match="larger than 5 MiB"):
        classify(settings, data)


def dsn(action: str, status: str, diagnostic: str, notice: str = "Delivery report.", recipient_blocks: str | None = None) -> bytes:
    """A minimal RFC 3464 report for one recipient."""
    action_line = f"Action: {action}\n" if action else ""
    status_line = f"Status: {status}\n" if status else ""
    blocks = recipient_blocks if recipient_blocks is not None else (
        f"Final-Recipient: rfc822; someone@example.net\n{action_line}{status_line}Diagnostic-Code: smtp; {diagnostic}\n")
    return f"""From: MAILER-DAEMON@mail.example.org
To: news@example.org
Subject: Delivery Status Notification
Message-ID: <dsn-test@mail.example.org>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: text/plain

{notice}

--b
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.example.org

{blocks}
--b--
""".encode()


@pytest.mark.parametrize(
    ("action", "status", "diagnostic", "kind", "rule"),
    [
        # Positive evidence that the address is bad:
        ("failed", "5.1.1", "550 5.1.1 User unknown", BounceKind.permanent, "no-such-user"),
        ("failed", "5.1.2", "550 5.1.2 Host unknown", BounceKind.permanent, "no-such-domain"),
        ("failed", "5.1.10", "556 5.1.10 Recipient address has null MX", BounceKind.permanent, "no-such-domain"),
        ("failed", "5.1.6", "551 5.1.6 User has moved", BounceKind.permanent, "moved"),
        ("failed", "5.2.1", "550 5.2.1 Mailbox disabled", BounceKind.permanent, "disabled"),
        ("failed", "5.0.0", "550 5.0.0 <someone@example.net>: no such user here", BounceKind.permanent, "no-such-user"),
        # X.0.0 is no information, and the most specific code decides: here the server's own 5.1.1.
        ("failed", "5.0.0", "550 5.1.1 Recipient address rejected", BounceKind.permanent, "no-such-user"),
        # The MTA gave up, but on a temporary condition:
        ("failed", "4.4.7", "421 4.4.7 Delivery time expired", BounceKind.temporary, "expired"),
        ("failed", "5.0.0", "retry timeout exceeded", BounceKind.temporary, "expired"),
        # Full mailboxes and sizes (552: RFC 5321 says temporary), with or without a code:
        ("failed", "5.2.2", "552 5.2.2 Mailbox full", BounceKind.temporary, "mailbox-full"),
        ("failed", "5.0.0", "550 user is over quota", BounceKind.temporary, "mailbox-full"),
        ("failed", "5.3.4", "552 5.3.4 Message too big", BounceKind.temporary, "content"),
        ("failed", "5.6.1", "554 5.6.1 Media not supported", BounceKind.temporary, "content"),
        # Faults of the sender, its IP, its authentication, or a policy: never the address.
        ("failed", "5.7.1", "550 5.7.1 Message rejected as spam", BounceKind.temporary, "blocked"),
        ("failed", "5.1.1", "550 5.7.1 IP address blacklisted", BounceKind.temporary, "blocked"),
        ("failed", "5.0.0", "550 IP address blacklisted", BounceKind.temporary, "blocked"),
        ("failed", "5.1.7", "553 5.1.7 Bad sender address syntax", BounceKind.temporary, "sender-refused"),
        ("failed", "5.1.8", "553 5.1.8 Sender domain does not exist", BounceKind.temporary, "sender-refused"),
        ("failed", "5.1.1", "550 5.1.1 <bounces@example.org>: Sender address rejected: undeliverable", BounceKind.temporary,
         "sender-refused"),
        ("failed", "5.7.26", "550 5.7.26 Unauthenticated email is not accepted due to DMARC policy", BounceKind.temporary,
         "authentication"),
        # Routing codes say nothing about the address, unless the words do:
        ("failed", "5.4.1", "550 5.4.1 No answer from host", BounceKind.temporary, "network"),
        ("failed", "5.4.6", "554 5.4.6 Routing loop detected", BounceKind.temporary, "system"),
        ("failed", "5.4.4", "Host or domain name not found. Name service error for name=x.example type=A: Host not found",
         BounceKind.permanent, "no-such-domain"),
        ("failed", "5.0.0", "550 Service unavailable", BounceKind.temporary, "no-evidence"),
        ("failed", "5.3.0", "553 5.3.0 <someone@example.net>... Addressee unknown", BounceKind.permanent, "no-such-user"),
        ("failed", "5.7.0", "554 5.7.0 Message rejected", BounceKind.temporary, "policy"),
        ("failed", "5.0.0", "550 Requested action not taken", BounceKind.temporary, "no-evidence"),
        ("delayed", "4.2.2", "452 4.2.2 Mailbox full", BounceKind.temporary, "delayed"),
        ("delayed", "5.1.1", "550 5.1.1 User unknown", BounceKind.temporary, "delayed"),  # a delay is never final
        ("delivered", "2.0.0", "250 2.0.0 OK", None, None),
        ("relayed", "2.0.0", "250 2.0.0 OK", None, None),
        ("expanded", "2.0.0", "250 2.0.0 OK", None, None),
        # Parser bug: "Action: failure" (not "failed") ended as "not a bounce".
        ("failure", "5.1.1", "550 5.1.1 mailbox does not exist", BounceKind.permanent, "no-such-user"),
        # No Action at all: the Status class says what happened.
        ("", "5.1.1", "550 5.1.1 User unknown", BounceKind.permanent, "no-such-user"),
        ("", "4.4.1", "421 4.4.1 No answer", BounceKind.temporary, "delayed"),
    ],
)
def test_only_evidence_about_the_address_makes_a_dsn_permanent(settings, action, status, diagnostic, kind, rule):
    result = classify(settings, dsn(action, status, diagnostic))
    assert result.kind == kind
    if rule:
        assert result.failures[0].rule == rule


def test_the_human_readable_part_is_evidence_too(settings):
    """Postfix puts "in reply to MAIL FROM command" only in the notice; the DSN says just 5.1.1."""
    notice = ("<someone@example.net>: host mx.example.net[192.0.2.1] said: 550 5.1.1\n"
              "    <bounces@example.org>: Recipient address rejected (in reply to MAIL FROM command)")
    result = classify(settings, dsn("failed", "5.1.1", "550 5.1.1 rejected", notice))
    assert (result.kind, result.failures[0].rule) == (BounceKind.temporary, "sender-refused")


def test_two_recipient_blocks_without_a_blank_line_are_two_recipients(settings):
    blocks = ("Final-Recipient: rfc822; anwen@example.org\nAction: failed\nStatus: 5.1.1\n"
              "Final-Recipient: rfc822; bronwen@example.org\nAction: delayed\nStatus: 4.2.2\n"
              "Diagnostic-Code: smtp; 452 4.2.2 mailbox full\n")
    result = classify(settings, dsn("", "", "", recipient_blocks=blocks))
    assert [(failure.address, failure.kind) for failure in result.failures] == [
        ("anwen@example.org", BounceKind.permanent), ("bronwen@example.org", BounceKind.temporary)]


def test_postfix_order_final_then_original_recipient_is_one_block(settings):
    blocks = ("Final-Recipient: rfc822; anwen@example.org\nOriginal-Recipient: rfc822;anwen@example.org\n"
              "Action: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\n")
    result = classify(settings, dsn("", "", "", recipient_blocks=blocks))
    assert [failure.address for failure in result.failures] == ["anwen@example.org"]


def test_a_delivery_status_part_without_recipient_blocks_falls_back_to_the_notice(settings):
    notice = "   ----- The following addresses had permanent fatal errors -----\n<dyfan@example.org>\n    (reason: 550 5.1.1 User unknown)"
    result = classify(settings, dsn("", "", "", notice, recipient_blocks="Arrival-Date: Tue, 4 Mar 2025 10:02:09 +0000\n"))
    assert [(failure.address, failure.kind) for failure in result.failures] == [("dyfan@example.org", BounceKind.permanent)]


def text_bounce(body: str, sender: str = "Mail Delivery System <MAILER-DAEMON@mx.example.org>",
                subject: str = "Mail delivery failed", headers: str = "") -> bytes:
    return (f"From: {sender}\nTo: news@example.org\nSubject: {subject}\nMessage-ID: <text-bounce@mx.example.org>\n{headers}"
            f"MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n{body}").encode()


def test_a_pipe_command_or_a_bare_host_is_no_address(settings):
    body = ('   ----- The following addresses had permanent fatal errors -----\n"|/usr/bin/procmail -f-"\n'
            "    (reason: 550 5.1.1 Unknown user)\n@mx.example.org\n<ffraid@example.org>... User unknown\n")
    result = classify(settings, text_bounce(body, subject="Returned mail: see transcript for details"))
    assert [failure.address for failure in result.failures] == ["ffraid@example.org"]
    assert result.kind == BounceKind.permanent


def test_no_reply_code_is_read_from_inside_a_message_id_or_a_phone_number(settings):
    body = ("Your message to <emyr@example.org> could not be delivered right now.\n"
            "Message-Id: <CAB437-4BDB-11EF@mx.example.org>\nOur help desk: 480-624-2500.\nThe mailbox is over quota.\n")
    result = classify(settings, text_bounce(body))
    assert [(failure.address, failure.kind, failure.code) for failure in result.failures] == [
        ("emyr@example.org", BounceKind.temporary, "")]


def test_the_lists_own_addresses_and_message_ids_are_never_failed_recipients(settings):
    """Zoho's notice names the sender and a Message-ID beside the failed address."""
    body = ("This message was created automatically by mail delivery software.\n\n"
            "sioned@example.org Invalid Address, ERROR_CODE :550, ERROR_CODE :5.1.1 <sioned@example.org>... User Unknown\n\n"
            "Sender: news@example.org\nReturn path: bounces+7-0123456789abcdef@example.org\n"
            "Message-ID: <17410.zoho@mx.zoho.example>\n")
    result = classify(settings, text_bounce(body))
    assert [failure.address for failure in result.failures] == ["sioned@example.org"]


def test_auto_replies_with_alarming_words_are_left_alone(settings):
    body = "I no longer work here: this mailbox does not exist after March. Write to enquiries@example.gov.uk."
    message = text_bounce(body, sender="Eleri Wyn <eleri@example.gov.uk>", subject="Automatic reply: March news",
                          headers="Auto-Submitted: auto-replied\n")
    assert classify(settings, message).kind is None


def test_a_failure_notice_without_an_address_is_still_a_failure(settings):
    """The delivery is then named by the return path or our Message-ID, not by the notice."""
    result = classify(settings, text_bounce("user not found\n\nOriginal message follows.\n\nTo: someone@example.net\n"))
    assert [(failure.address, failure.kind) for failure in result.failures] == [("", BounceKind.permanent)]


def feedback(feedback_type: str, fields: str = "Original-Rcpt-To: <gareth@example.com>\n") -> bytes:
    return (corpus("arf-complaint.eml")
            .replace(b"Feedback-Type: abuse", f"Feedback-Type: {feedback_type}".encode())
            .replace(b"Original-Rcpt-To: <gareth.hughes@example.com>\n", fields.encode()))


def test_feedback_reports_that_are_not_complaints_are_not_bounces(settings):
    for feedback_type in ("not-spam", "auth-failure", "virus", "other"):
        assert classify(settings, feedback(feedback_type)).kind is None


def test_every_original_rcpt_to_of_a_complaint_is_read(settings):
    result = classify(settings, feedback("fraud", "Original-Rcpt-To: <aled@example.org>\nOriginal-Rcpt-To: <aled@forward.example>\n"))
    assert [(failure.address, failure.kind) for failure in result.failures] == [
        ("aled@example.org", BounceKind.complaint), ("aled@forward.example", BounceKind.complaint)]


def test_complaint_without_original_rcpt_to_uses_the_returned_message(settings):
    result = classify(settings, feedback("abuse", ""))
    assert [failure.address for failure in result.failures] == ["gareth.hughes@example.com"]


def test_an_opt_out_report_asks_to_unsubscribe(settings):
    result = classify(settings, feedback("opt-out"))
    assert result.opt_out and result.kind is None


def test_a_microsoft_jmrp_report_is_a_complaint(settings):
    data = b"""From: staff@hotmail.example
To: news@example.org
Subject: complaint about message from 203.0.113.10
Message-ID: <jmrp-1@hotmail.example>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="J"

--J
Content-Type: text/plain

This is an email abuse report for an email message received from IP 203.0.113.10.

--J
Content-Type: message/rfc822

X-HmXmrOriginalRecipient: <gethin@hotmail.example>
From: Network News <news@example.org>
To: recipient@redacted.example
Message-ID: <174108252901.1.5@example.org>

Dear reader,
--J--
"""
    result = classify(settings, data)
    assert [(failure.address, failure.kind) for failure in result.failures] == [("gethin@hotmail.example", BounceKind.complaint)]
    assert result.message_ids == ("<174108252901.1.5@example.org>",)


def notice(payload: object, sender: str = "AWS Notifications <no-reply@sns.amazonaws.example>") -> bytes:
    return (f"From: {sender}\nTo: news@example.org\nSubject: AWS Notification Message\nMessage-ID: <n-1@sns.example>\n"
            f"MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n\n{json.dumps(payload, indent=2)}\n\n--\n"
            "If you wish to stop receiving notifications from this topic, please click the link below.\n").encode()


def test_an_amazon_ses_delivery_notice_is_not_a_bounce(settings):
    delivery = {"notificationType": "Delivery", "delivery": {"recipients": ["fflur@example.com"], "smtpResponse": "250 2.6.0 Message received"},
                "mail": {"source": "news@example.org", "destination": ["fflur@example.com"]}}
    assert classify(settings, notice({"Type": "Notification", "TopicArn": "arn:aws:sns:eu-west-2:1:b", "Message": json.dumps(delivery)})).kind is None


def test_an_amazon_ses_permanent_bounce_is_judged_by_its_diagnostic(settings):
    def bounce(status: str, diagnostic: str) -> bytes:
        return notice({"notificationType": "Bounce", "bounce": {"bounceType": "Permanent", "bounceSubType": "General", "bouncedRecipients": [
            {"emailAddress": "afan@example.com", "action": "failed", "status": status, "diagnosticCode": diagnostic}]}})

    assert classify(settings, bounce("5.1.1", "smtp; 550 5.1.1 user unknown")).kind == BounceKind.permanent
    assert classify(settings, bounce("5.7.1", "smtp; 550 5.7.1 rejected as spam")).kind == BounceKind.temporary


def test_json_that_is_no_known_notice_is_not_read_as_one(settings):
    message = notice({"event": "meeting", "title": "Repair café"}, sender="Eleri <eleri@example.org>")
    assert classify(settings, message).kind is None


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
    assert report.worst() == failed


def test_no_damage_to_any_message_raises_anything_but_malformed(settings):
    """Bounces come from anywhere: cut, spliced and garbled copies of the corpus never stop the reader."""
    import random

    from .conftest import CORPUS

    files = sorted(CORPUS.rglob("*.eml"))
    chance = random.Random(14)
    splices = [b"\n\n", b"--", b"Content-Type: multipart/mixed; boundary=x\n", b"charset=x-weird\n", b"=?utf-8?b?////?=",
               b'{"notificationType":"Bounce","bounce":{"bouncedRecipients":[{"emailAddress":5}]}}',
               b"Final-Recipient: rfc822;\nAction: failed\n", b'[{"event":"bounce","email":null}]', b"\xff\xfe\x00"]
    for _ in range(300):
        data = bytearray(chance.choice(files).read_bytes())
        for _ in range(chance.randint(1, 6)):
            at = chance.randrange(len(data) or 1)
            choice = chance.random()
            if choice < 0.3:
                del data[at:at + chance.randint(1, 60)]
            elif choice < 0.7:
                data[at:at] = chance.choice(splices)
            else:
                del data[at:]
        try:
            classify(settings, bytes(data))
        except MalformedMessage:
            pass
