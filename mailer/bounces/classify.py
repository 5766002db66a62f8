"""What a message in the bounce mailbox says: a permanent failure, a temporary one, a complaint, or nothing.

Standard reports are read field by field: an ARF feedback report (RFC 5965)
is a complaint; an RFC 3464 delivery status notification gives each
recipient's Action, Status and Diagnostic-Code. Anything else goes to
flufl.bounce, Mailman's collection of detectors for the odd formats real MTAs
send. What none of them recognises (out-of-office replies, people answering
the newsletter) is not a bounce. The signed return path found anywhere in the
message names the delivery, whatever the report says about addresses.

Only the reporting MTA's own parts are checked for damage; the returned copy of
our message is often cut short on purpose and is not held against the report.
"""

from __future__ import annotations

import codecs
import email
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email import errors
from email.message import Message
from email.utils import getaddresses

from flufl.bounce import all_failures

from mailer.bounces.verp import deliveries_in
from mailer.config import Settings
from mailer.store.models import BounceKind

# Real bounces are small; a returned newsletter is ~100 KB. Bigger ones are not read.
MAX_MESSAGE_BYTES = 5 * 1024 * 1024
TOO_BIG = f"larger than {MAX_MESSAGE_BYTES // 2**20} MiB"

SEVERITY = (BounceKind.complaint, BounceKind.permanent, BounceKind.temporary)  # most serious first
# Feedback types that mean "this reader called it spam"; not-spam, virus, auth-failure... are not complaints.
COMPLAINT_TYPES = {"abuse", "fraud"}
# Parts that carry (a copy of) the message that bounced rather than the report.
RETURNED_TYPES = {"message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers"}
BROKEN_MIME = (
    errors.NoBoundaryInMultipartDefect,
    errors.StartBoundaryNotFoundDefect,
    errors.MultipartInvariantViolationDefect,
    errors.InvalidMultipartContentTransferEncodingDefect,
)
# RFC 3463 status subject.detail codes that fault the message or the sender, not the address:
# mailbox full, message too big, and every security or policy refusal (spam blocks, DMARC).
NOT_ABOUT_THE_ADDRESS = {("2", "2"), ("2", "3"), ("3", "4")}
ENHANCED_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?!\d)")
REPLY_CODE = re.compile(r"(?<![\d.])([245]\d\d)(?=[\s-])")
REPLY_LINE = re.compile(r"(?<![\d.:])[45]\d\d[ -].*")


class MalformedMessage(ValueError):
    """Too broken to trust: left in the mailbox for a person to look at."""


@dataclass(frozen=True)
class Failure:
    """One recipient a report names. `address` is empty when the report does not say."""

    address: str
    kind: BounceKind
    diagnostic: str


@dataclass(frozen=True)
class Classification:
    """What one message says. No failures means it is not a bounce."""

    message_id: str  # the report's Message-ID, or a hash of its bytes: what makes processing it twice harmless
    failures: tuple[Failure, ...]
    delivery_ids: tuple[int, ...]  # deliveries named by signed return paths in the message

    @property
    def kind(self) -> BounceKind | None:
        """The most serious kind reported, or None for not a bounce."""
        kinds = {failure.kind for failure in self.failures}
        return next((kind for kind in SEVERITY if kind in kinds), None)

    def worst_per_address(self) -> list[Failure]:
        """The most serious failure for each address: a report may name one recipient twice,
        and one report is one bounce per address."""
        worst: dict[str, Failure] = {}
        for failure in sorted(self.failures, key=lambda failure: SEVERITY.index(failure.kind), reverse=True):
            worst[failure.address.lower()] = failure
        return list(worst.values())


def classify(settings: Settings, data: bytes) -> Classification:
    """Read one raw message; `MalformedMessage` when it is too big or too broken to trust."""
    message = parse(data)
    return Classification(
        message_id=_message_key(message, data),
        failures=tuple(_failures(message)),
        delivery_ids=tuple(deliveries_in(settings, data.decode("latin-1"))),
    )


def parse(data: bytes) -> Message:
    """Parse, refusing what is too big, has broken MIME structure, or text in an unknown or wrong charset."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise MalformedMessage(TOO_BIG)
    message = email.message_from_bytes(data)  # compat32 Message: what flufl.bounce's detectors expect
    for part in _own_parts(message):
        broken = [type(defect).__name__ for defect in part.defects if isinstance(defect, BROKEN_MIME)]
        if broken:
            raise MalformedMessage(f"broken MIME structure ({', '.join(broken)})")
        if part.get_content_maintype() == "text" and part.get_content_type() not in RETURNED_TYPES:
            _text(part)
    return message


def _failures(message: Message) -> list[Failure]:
    parts = list(_own_parts(message))
    feedback = [part for part in parts if part.get_content_type() == "message/feedback-report"]
    if feedback:
        fields = _fields(feedback[0])
        return _complaint(message, fields[0]) if fields else []
    statuses = [part for part in parts if part.get_content_type() == "message/delivery-status"]
    if statuses:
        return [failure for part in statuses for failure in _dsn(part)]
    return _heuristic(message, parts)


def _complaint(message: Message, fields: Message) -> list[Failure]:
    """An ARF report: a complaint when its Feedback-Type says the reader called it spam."""
    if _header(fields, "Feedback-Type").lower() not in COMPLAINT_TYPES:
        return []
    address = _address(_header(fields, "Original-Rcpt-To")) or _returned_recipient(message)
    names = ("Feedback-Type", "User-Agent", "Source-IP", "Arrival-Date")
    diagnostic = "; ".join(f"{name}: {_header(fields, name)}" for name in names if _header(fields, name))
    return [Failure(address, BounceKind.complaint, diagnostic)]


def _dsn(part: Message) -> list[Failure]:
    """Each recipient block of a message/delivery-status part that reports a failure or a delay."""
    failures = []
    for block in _fields(part):
        action = _header(block, "Action").lower()
        if not action.startswith(("failed", "error", "delayed")):  # delivered, relayed, expanded
            continue
        recipient = next(
            (value for name in ("Original-Recipient", "Final-Recipient", "X-Actual-Recipient") if (value := _header(block, name))), ""
        )
        status, code = _header(block, "Status"), _header(block, "Diagnostic-Code")
        diagnostic = code if status in code else f"{status} {code}".strip()
        kind = failure_kind(failed=not action.startswith("delayed"), status=status, diagnostic=code)
        failures.append(Failure(_address(recipient), kind, diagnostic))
    return failures


def _heuristic(message: Message, parts: list[Message]) -> list[Failure]:
    """flufl.bounce's detectors for reports in no standard format (classic Exim, qmail, ...)."""
    try:
        temporary, permanent = all_failures(message)
    except Exception as exc:  # its heuristics can trip over odd messages; that is damage, not a bug of ours
        raise MalformedMessage(f"flufl.bounce could not read it: {exc!r}") from exc
    lines = [
        match.group().strip()
        for part in parts
        if part.get_content_type() == "text/plain"
        for match in REPLY_LINE.finditer(_text(part))
    ]
    failures = []
    for raw, failed in [(address, False) for address in sorted(temporary)] + [(address, True) for address in sorted(permanent)]:
        address = raw.decode("ascii")
        diagnostic = next((line for line in lines if address.lower() in line.lower()), lines[0] if lines else "")
        failures.append(Failure(address, failure_kind(failed=failed, status="", diagnostic=diagnostic), diagnostic))
    return failures


def failure_kind(*, failed: bool, status: str, diagnostic: str) -> BounceKind:
    """Permanent only when delivery has given up and the fault is the address's own.

    A 4.x.x status is temporary even under `Action: failed` (an MTA that gave up
    retrying a full mailbox); so are 552 replies (RFC 5321 says to treat them as
    temporary) and the statuses that fault the message or the sender. Counting
    those as soft bounces keeps one spam block at a big provider from marking
    hundreds of good addresses bounced in one run.
    """
    found = ENHANCED_STATUS.search(status) or ENHANCED_STATUS.search(diagnostic)
    reply = REPLY_CODE.search(diagnostic)
    klass, subject, detail = found.groups() if found else ("", "", "")
    if not failed or klass == "4" or (reply and reply.group(1).startswith("4")):
        return BounceKind.temporary
    if (reply and reply.group(1) == "552") or subject == "7" or (subject, detail) in NOT_ABOUT_THE_ADDRESS:
        return BounceKind.temporary
    return BounceKind.permanent


def _own_parts(part: Message) -> Iterator[Message]:
    """The part and its descendants, without looking inside message/* parts (the returned message, the report fields)."""
    yield part
    if part.get_content_maintype() == "multipart" and isinstance(part.get_payload(), list):
        for child in part.get_payload():
            yield from _own_parts(child)


def _fields(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return payload
    return [email.message_from_string(block) for block in re.split(r"\n\s*\n", str(payload)) if block.strip()]


def _text(part: Message) -> str:
    """The decoded text of a part; `MalformedMessage` for an unknown charset or bytes not in it."""
    charset = part.get_content_charset() or "us-ascii"
    try:
        codecs.lookup(charset)
    except LookupError:
        raise MalformedMessage(f"unknown charset {charset!r} in a {part.get_content_type()} part") from None
    payload = part.get_payload(decode=True) or b""
    try:
        return payload.decode(charset)
    except UnicodeDecodeError:
        raise MalformedMessage(f"a {part.get_content_type()} part is not valid {charset}") from None


def _returned_recipient(message: Message) -> str:
    """The To address of the returned copy of our message (an ARF report without Original-Rcpt-To)."""
    for part in _own_parts(message):
        if part.get_content_type() in RETURNED_TYPES:
            payload = part.get_payload()
            headers = payload[0] if isinstance(payload, list) else email.message_from_string(str(payload))
            return _address(_header(headers, "To"))
    return ""


def _header(block: Message, name: str) -> str:
    """A header's value with its folding undone ('' when absent)."""
    return " ".join(str(block.get(name, "")).split())


def _address(value: str) -> str:
    """The address in `rfc822; someone@example.org`, `<someone@example.org>` or `Name <someone@example.org>`."""
    _, semicolon, rest = value.partition(";")
    addresses = getaddresses([rest if semicolon else value])
    return addresses[0][1] if addresses and "@" in addresses[0][1] else ""


def _message_key(message: Message, data: bytes) -> str:
    message_id = _header(message, "Message-ID")
    if message_id and len(message_id) <= 255:
        return message_id
    return "sha256:" + hashlib.sha256(data).hexdigest()
