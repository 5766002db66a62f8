"""The fast message builder: every header as the email package reads it, both parts, DKIM, injection."""

from __future__ import annotations

import re
import time
from email import message_from_bytes, policy
from email.utils import parsedate_to_datetime

import dkim
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from dkim.canonicalization import Relaxed

from mailer.bounces.unsubscribe import unsubscribe_address
from mailer.config import Settings
from mailer.content import Personaliser
from mailer.delivery.dkim import DkimSigner, dns_record, generate_key, signer_for
from mailer.delivery.message import MessageBuilder, Recipient, clean, wire_address
from mailer.errors import PermanentFailure
from mailer.tokens import archive_url, preferences_url, unsubscribe_url
from tests.delivery.helpers import rendered

VARIANTS = {language: rendered(language) for language in ("en", "cy", "both")}


@pytest.fixture
def builder(settings: Settings) -> MessageBuilder:
    settings = settings.model_copy(update={"reply_to": "editor@example.org", "list_name": "Network News"})
    return MessageBuilder(settings, VARIANTS, send_id=7, send_tag="abc123")


def parse(data: bytes):  # type: ignore[no-untyped-def]
    return message_from_bytes(data, policy=policy.default)


def test_every_header_and_both_parts(builder: MessageBuilder, settings: Settings) -> None:
    recipient = Recipient(email="sian@example.com", name="Siân Jones", language="cy", subscriber_id=3, delivery_id=42)
    data = builder.build(recipient)
    message = parse(data)

    assert message["From"].addresses[0].display_name == "Network News"
    assert message["From"].addresses[0].addr_spec == "news@example.org"
    assert [a.addr_spec for a in message["To"].addresses] == ["sian@example.com"]
    assert message["To"].addresses[0].display_name == "Siân Jones"
    assert message["Subject"] == "Newyddion y rhwydwaith: Rhagfyr ŵ"
    assert b"Subject: =?utf-8?" in data  # RFC 2047, not raw UTF-8
    assert abs(parsedate_to_datetime(message["Date"]).timestamp() - time.time()) < 5
    assert re.fullmatch(r"<42\.[0-9a-f]{16}@example\.org>", message["Message-ID"])
    assert message["Reply-To"] == "editor@example.org"
    assert message["List-Id"] == "Network News <news.example.org>"
    one_click = unsubscribe_url(settings, 3, 7)  # the links carry the send (7)
    mailto = f"mailto:{unsubscribe_address(settings, 3, 7)}?subject=unsubscribe"
    assert message["List-Unsubscribe"] == f"<{one_click}>, <{mailto}>"
    assert mailto.startswith("mailto:unsubscribe+3-7-")  # signed for this reader and send: mailer.bounces.unsubscribe
    assert one_click.startswith("https://news.example.org/u/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["MIME-Version"] == "1.0"
    assert message.get_content_type() == "multipart/alternative"
    assert "Return-Path" not in message  # the receiving server writes it from the envelope
    assert not message.defects

    text, html = message.iter_parts()
    assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    values = {"name": "Siân Jones", "email": "sian@example.com", "unsubscribe_url": one_click,
              "preferences_url": preferences_url(settings, 3, 7), "web_url": archive_url(settings, 7)}
    personaliser = Personaliser(VARIANTS["cy"])
    assert text.get_content().replace("\r\n", "\n") == personaliser.text(values)
    assert html.get_content().replace("\r\n", "\n") == personaliser.html(values)


def test_wire_format(builder: MessageBuilder) -> None:
    data = builder.build(Recipient(email="a@example.com", name="A" * 150, language="both", subscriber_id=1,
                                   delivery_id=1))
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF only
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    assert data.isascii()  # 7-bit: everything encoded
    body = data.partition(b"\r\n\r\n")[2]
    assert body.endswith(b"--\r\n") and Relaxed.canonicalize_body(body) == body


@pytest.mark.parametrize("name", ["", "A", "Ab", "Abc", "Siân <x> & \"q\"", "Ŵ" * 77, "x" * 200])
@pytest.mark.parametrize("language", ["en", "cy", "both"])
def test_bodies_survive_any_value_length(builder: MessageBuilder, settings: Settings, name: str,
                                         language: str) -> None:
    """The literal parts are pre-encoded for each alignment; every value length must decode exactly."""
    message = parse(builder.build(Recipient(email="r@example.com", name=name, language=language, subscriber_id=12,
                                            delivery_id=5)))
    values = {"name": clean(name), "email": "r@example.com",
              "unsubscribe_url": unsubscribe_url(settings, 12, 7), "preferences_url": preferences_url(settings, 12, 7),
              "web_url": archive_url(settings, 7)}
    text, html = (part.get_content().replace("\r\n", "\n") for part in message.iter_parts())
    personaliser = Personaliser(VARIANTS[language])
    assert (text, html) == (personaliser.text(values), personaliser.html(values))


@pytest.mark.parametrize("name", [
    "Evil\r\nBcc: victim@example.net",
    "Evil\nBcc: victim@example.net",
    "Evil\rBcc: victim@example.net",
    'Quote " and, comma <other@example.net>',
    "Sneaky\u2028Bcc: victim@example.net",
    "Ŵyn\r\nBcc: victim@example.net, <x@y.z>",
    "@example.net, victim@example.net",
    "\\\" <victim@example.net>, \"",
    "=?utf-8?q?Evil=0D=0ABcc=3A_victim=40example=2Enet?=",  # would decode into a line break and an address
    "=?utf-8?q?a=2C_victim=40example=2Enet?=",
])
def test_a_name_can_never_inject_a_header_or_a_recipient(builder: MessageBuilder, name: str) -> None:
    data = builder.build(Recipient(email="reader@example.com", name=name, subscriber_id=1, delivery_id=1))
    message = parse(data)
    assert [a.addr_spec for a in message["To"].addresses] == ["reader@example.com"]
    assert "Bcc" not in message and not message.defects
    header_block = data.partition(b"\r\n\r\n")[0]
    assert not re.search(rb"\r\n(?!\s)(?!(From|To|Subject|Date|Message-ID|Reply-To|List-Id|List-Unsubscribe|"
                         rb"List-Unsubscribe-Post|MIME-Version|Content-Type):)", header_block)
    assert message["To"].addresses[0].display_name == " ".join(name.replace("\u2028", " ").split())


@pytest.mark.parametrize("address", ["a@b>c.org", "a b@example.org", "a@example.org\r\nRCPT TO:<x@y>", "ŵ@example.org",
                                     "a,b@example.org", "<a@example.org>", "a@-bad-.org"])
def test_unsafe_addresses_are_refused(address: str) -> None:
    with pytest.raises(PermanentFailure):
        wire_address(address)


def test_an_international_domain_is_sent_in_idna() -> None:
    assert wire_address("post@bwrdd-iechyd.cymru") == "post@bwrdd-iechyd.cymru"
    assert wire_address("post@caerdydd.ŵales") == "post@caerdydd." + "ŵales".encode("idna").decode()


def test_subject_with_a_placeholder_and_a_test_prefix(settings: Settings) -> None:
    personal = rendered("en")
    personal = type(personal)(**{**personal.to_dict(), "subject": "News for __MAILER_NAME__"})
    builder = MessageBuilder(settings, {"en": personal}, send_id=None, subject_prefix="[TEST] ")
    message = parse(builder.build(Recipient(email="t@example.com", name="Rhodri\r\nBcc: x@y.z")))
    assert message["Subject"] == "[TEST] News for Rhodri Bcc: x@y.z"
    sneaky = "=?utf-8?q?x=0D=0ABcc=3A_x=40y=2Ez?="
    message = parse(builder.build(Recipient(email="t@example.com", name=sneaky)))
    assert message["Subject"] == f"[TEST] News for {sneaky}" and "Bcc" not in message
    assert message["Message-ID"].endswith("@example.org>")
    assert builder.envelope_sender(Recipient(email="t@example.com")) == "news@example.org"


def test_a_reply_to_with_a_welsh_name_is_encoded(settings: Settings) -> None:
    settings = settings.model_copy(update={"reply_to": "Golygydd Ŵyn <golygydd@example.org>"})
    data = MessageBuilder(settings, VARIANTS, send_id=1).build(Recipient(email="r@example.com"))
    assert data.isascii()
    reply_to = parse(data)["Reply-To"].addresses[0]
    assert (reply_to.display_name, reply_to.addr_spec) == ("Golygydd Ŵyn", "golygydd@example.org")


def test_envelope_sender_is_the_verp_address(builder: MessageBuilder) -> None:
    from mailer.bounces.verp import delivery_for

    sender = builder.envelope_sender(Recipient(email="r@example.com", subscriber_id=1, delivery_id=99))
    assert delivery_for(builder.settings, sender) == 99


def test_dkim_signature_verifies_with_dkimpy(settings: Settings, workdir) -> None:  # type: ignore[no-untyped-def]
    private, public, record = generate_key(workdir / "keys", "mail")
    settings = settings.model_copy(update={"dkim_selector": "mail", "dkim_private_key": str(private),
                                           "reply_to": "editor@example.org"})
    builder = MessageBuilder(settings, VARIANTS, send_id=1, signer=signer_for(settings))
    data = builder.build(Recipient(email="r@example.com", name="Siân", language="cy", subscriber_id=1,
                                   delivery_id=1))
    looked_up: list[bytes] = []

    def dns(name: bytes, timeout: int = 5) -> bytes:
        looked_up.append(name)
        return record.encode()

    assert dkim.verify(data, dnsfunc=dns)
    assert looked_up == [b"mail._domainkey.example.org."]
    signature = parse(data)["DKIM-Signature"]
    tags = dict(part.strip().split("=", 1) for part in signature.split(";"))
    signed = {name.strip() for name in tags["h"].split(":")}
    assert {"from", "to", "subject", "date", "message-id", "list-id", "list-unsubscribe", "list-unsubscribe-post",
            "mime-version", "content-type", "reply-to"} <= signed
    assert tags["c"] == "relaxed/relaxed" and tags["d"] == "example.org"
    # Tampering with a signed header or the body breaks it.
    assert not dkim.verify(data.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
                                        b"List-Unsubscribe-Post: List-Unsubscribe=Two-Clicks"), dnsfunc=dns)
    assert not dkim.verify(data[:-40] + b"A" + data[-39:], dnsfunc=dns)
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----")


def test_signing_any_message_matches_dkimpy() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signer = DkimSigner(domain="example.org", selector="s1", private_key=key)
    message = (b"From: A <a@example.org>\r\nTo: b@example.net\r\nSubject:  spaced   out\r\n\tfolded\r\n\r\n"
               b"Body  with   spaces  \r\n\r\n\r\n")
    record = dns_record(key.public_key()).encode()
    assert dkim.verify(signer.sign(message), dnsfunc=lambda name, timeout=5: record)
