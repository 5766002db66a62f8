"""One-off transactional emails (subscription confirmations, warnings to editors).

Rare and never personalised in bulk, so the standard library builds them: speed
does not matter here, and its encoding and header checks are well tried.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from mailer.config import Settings
from mailer.delivery.dkim import signer_for
from mailer.delivery.message import mailbox, wire_address
from mailer.delivery.transport import open_transport
from mailer.errors import PermanentFailure, SendError


def build_notice(settings: Settings, *, to: str, subject: str, text: str, html: str | None = None,
                 language: str | None = None) -> EmailMessage:
    """The message in `language` (default: the list's), unsigned; `SendError` for an unusable address or subject.

    The address in `to` goes through the same check as every bulk message
    (`wire_address`): its domain in IDNA form, its local part plain ASCII. The
    header then holds the very address RCPT TO names, never an RFC 2047 encoded
    word, which has no place inside an address.
    """
    message = EmailMessage(policy=SMTP)
    try:
        message["To"] = to
        (recipient,) = message["To"].addresses  # exactly one
        address = wire_address(recipient.addr_spec)
        del message["To"]
        message["From"] = mailbox(settings.text("sender_name", language or settings.default_language), settings.sender_address)
        message["To"] = mailbox(recipient.display_name, address)
        message["Subject"] = subject
    except (ValueError, IndexError) as exc:  # CR/LF in a value, or not one address
        raise SendError(f"a notice goes to exactly one email address, not {to!r}: {exc}") from None
    except PermanentFailure as exc:
        raise SendError(f"cannot send a notice: {exc}") from None
    message["Date"] = format_datetime(datetime.now(UTC))  # "+0000", not the obsolete "GMT" (RFC 5322 4.3)
    message["Message-ID"] = make_msgid(domain=settings.sender_domain)
    if settings.reply_to:
        message["Reply-To"] = settings.reply_to
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: asks for no out-of-office replies
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message


def send_notice(settings: Settings, *, to: str, subject: str, text: str, html: str | None = None,
                language: str | None = None) -> str:
    """Send one email now through the configured transport; returns the server's reply.

    Raises `TransportError` (temporary or permanent) when it is not accepted.
    """
    message = build_notice(settings, to=to, subject=subject, text=text, html=html, language=language)
    data = message.as_bytes()
    signer = signer_for(settings)
    if signer:
        data = signer.sign(data)
    address = message["To"].addresses[0].addr_spec
    transport = open_transport(settings)
    try:
        return str(transport.send(settings.return_path or settings.sender_address, address, data))
    finally:
        transport.close()
