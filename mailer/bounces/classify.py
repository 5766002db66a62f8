"""What a message in the bounce mailbox says: a permanent failure, a temporary one, a complaint, or nothing.

Readers are tried from the most to the least structured:

1. feedback reports: ARF (RFC 5965) of type abuse or fraud is a complaint, one
   per `Original-Rcpt-To`; `opt-out` asks to unsubscribe; Microsoft JMRP reports
   (the original message with `X-HmXmrOriginalRecipient`) are complaints;
2. the JSON notices of Amazon SES, Postmark, Mailgun and SendGrid (`providers`);
3. RFC 3464 delivery status notifications, field by field, per recipient block;
4. for a message that looks like a failure notice and is no auto-reply, the
   human-readable notice (`notice`), then flufl.bounce's detectors.

Every failure is judged by the rule table (`rules`): permanent only on positive
evidence that the address is bad. Text is decoded leniently (it is only
searched), and damage is held against a report only when nothing in it could be
read. The signed return paths and the Message-IDs of ours found anywhere in the
message say which delivery a report is about (`policy` checks them); addresses
the report gives are kept only when they are valid and are not the list's own.
"""

from __future__ import annotations

import email
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email import errors
from email.message import Message
from email.utils import getaddresses, parseaddr
from functools import cached_property

from flufl.bounce import all_failures

from mailer.bounces import notice, providers
from mailer.bounces.rules import COMPLAINT, Failure, delayed, evidence_lines, failed
from mailer.bounces.unsubscribe import is_unsubscribe_address
from mailer.bounces.verp import deliveries_in, is_return_path, message_ids_in
from mailer.config import Settings
from mailer.store.models import BounceKind

__all__ = ["Classification", "Failure", "MalformedMessage", "classify", "MAX_MESSAGE_BYTES", "TOO_BIG"]

# Real bounces are small; a returned newsletter is ~100 KB. Bigger ones are not read.
MAX_MESSAGE_BYTES = 5 * 1024 * 1024
TOO_BIG = f"larger than {MAX_MESSAGE_BYTES // 2**20} MiB"

SEVERITY = (BounceKind.complaint, BounceKind.permanent, BounceKind.temporary)  # most serious first
# Feedback types that mean "this reader called it spam"; not-spam, virus, auth-failure... are not complaints.
COMPLAINT_TYPES = {"abuse", "fraud"}
OPT_OUT_TYPES = {"opt-out", "optout", "unsubscribe"}
# Parts that carry (a copy of) the message that bounced rather than the report.
RETURNED_TYPES = {"message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers"}
STATUS_TYPES = {"message/delivery-status", "message/global-delivery-status"}
BROKEN_MIME = (
    errors.NoBoundaryInMultipartDefect,
    errors.StartBoundaryNotFoundDefect,
    errors.MultipartInvariantViolationDefect,
)
# A valid addr-spec as reports give it: no spaces or brackets, a local part that is no pipe
# command or path, and a dotted domain with an alphabetic top level.
ADDR_SPEC = re.compile(r"[^\s@<>()\[\],;:\"|/\\][^\s@<>()\[\],;:\"\\]*@(?:[^\W_](?:[\w-]*[^\W_])?\.)+[^\W\d_]{2,63}")
REPORTERS = {"postmaster", "mailer-daemon", "mailerdaemon", "mail-daemon", "abuse", "hostmaster", "root",
             "noreply", "no-reply", "donotreply", "do-not-reply"}
RECIPIENT_FIELDS = ("Original-Recipient", "Final-Recipient", "X-Actual-Recipient")


class MalformedMessage(ValueError):
    """Too big, or too broken to read anything from: left in the mailbox for a person to look at."""


@dataclass(frozen=True)
class Classification:
    """What one message says. No failures (and no opt-out) means it is not a bounce."""

    message_id: str  # the report's Message-ID, or a hash of its bytes: what makes processing it twice harmless
    failures: tuple[Failure, ...]
    delivery_ids: tuple[int, ...]  # deliveries named by signed return paths in the message
    message_ids: tuple[str, ...] = ()  # Message-IDs this system could have written, found in the message
    opt_out: bool = False  # an ARF opt-out report: the reader asks to be unsubscribed

    @property
    def kind(self) -> BounceKind | None:
        """The most serious kind reported, or None for not a bounce."""
        kinds = {failure.kind for failure in self.failures}
        return next((kind for kind in SEVERITY if kind in kinds), None)

    def worst(self) -> Failure:
        """The most serious failure (a report about one delivery is one bounce of that delivery)."""
        return min(self.failures, key=lambda failure: SEVERITY.index(failure.kind))

    def worst_per_address(self) -> list[Failure]:
        """The most serious failure for each address: a report may name one recipient twice,
        and one report is one bounce per address."""
        worst: dict[str, Failure] = {}
        for failure in sorted(self.failures, key=lambda failure: SEVERITY.index(failure.kind), reverse=True):
            worst[failure.address.lower()] = failure
        return list(worst.values())


def classify(settings: Settings, data: bytes) -> Classification:
    """Read one raw message; `MalformedMessage` when it is too big or nothing in its broken structure can be read."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise MalformedMessage(TOO_BIG)
    message = email.message_from_bytes(data)  # compat32 Message: what flufl.bounce's detectors expect
    failures, opt_out = Reader(settings, message).read()
    return Classification(
        message_id=_message_key(message, data),
        failures=tuple(failures),
        delivery_ids=tuple(deliveries_in(settings, data)),
        message_ids=tuple(message_ids_in(settings, data)),
        opt_out=opt_out,
    )


class Reader:
    """One message read in the order of the module's docstring."""

    def __init__(self, settings: Settings, message: Message) -> None:
        self.settings = settings
        self.message = message
        self.parts = [(part, part.get_content_type()) for part in own_parts(message)]
        self.texts: dict[int, str] = {}
        self.own = {address.lower() for address in (settings.sender_address, parseaddr(settings.reply_to)[1],
                                                    settings.return_path) if address}
        self.ids = {value.strip("<>").lower() for name in ("Message-ID", "In-Reply-To", "References")
                    for value in str(message.get(name, "")).split()}

    def read(self) -> tuple[list[Failure], bool]:
        if any(kind == "message/disposition-notification" for _, kind in self.parts):
            return [], False  # a read receipt (RFC 8098)
        feedback = self.feedback()
        if feedback is not None:
            return feedback
        for part, kind in self.parts:
            if kind.startswith("text/") and kind not in RETURNED_TYPES or kind == "application/json":
                data = providers.json_in(self.text_of(part))
                if data is not None and (found := providers.read_notices(data, self.accept)) is not None:
                    return found, False
        statuses = [part for part, kind in self.parts if kind in STATUS_TYPES]
        if statuses:
            found = self.dsn(fields_text(part) for part in statuses)
            if found is not None:
                return found, False
        if not notice.looks_like_failure_notice(self.message):
            return [], False
        text = self.notice_text
        inline = self.dsn([text]) if "final-recipient:" in text.lower() else None  # DSN fields pasted into the text
        found = inline or notice.read_notice(text, self.accept, self.failed_recipients_header()) or self.flufl(text)
        if not found and self.broken():
            raise MalformedMessage(f"broken MIME structure ({', '.join(self.broken())}) and nothing readable")
        return found, False

    # ---- addresses -------------------------------------------------------------------------

    def accept(self, value: str) -> str:
        """The address in `value` if it may be a failed recipient: a valid addr-spec that is not the
        list's own (sender, reply-to, return path, any VERP or unsubscribe address), no reporting
        system's (postmaster, MAILER-DAEMON) and no Message-ID of the report; '' otherwise."""
        address = value.strip().strip("<>").strip().rstrip(".")
        if not ADDR_SPEC.fullmatch(address) or len(address) > 254:
            return ""
        lowered = address.lower()
        local = lowered.rpartition("@")[0]
        if lowered in self.own or lowered in self.ids or local.split("+")[0] in REPORTERS:
            return ""
        if is_unsubscribe_address(self.settings, address) or is_return_path(self.settings, address):
            return ""
        return address

    def first_accepted(self, values: list[str]) -> str:
        for value in values:
            _, semicolon, rest = value.partition(";")
            for _, address in getaddresses([rest if semicolon else value]):
                if accepted := self.accept(address):
                    return accepted
        return ""

    def failed_recipients_header(self) -> list[str]:
        return [address for _, address in getaddresses(self.message.get_all("X-Failed-Recipients", []))]

    # ---- feedback reports ------------------------------------------------------------------

    def feedback(self) -> tuple[list[Failure], bool] | None:
        """An ARF report, a Microsoft JMRP report or an AOL-style scomp report; None when it is none of them."""
        returned = self.returned_headers()
        report = next((part for part, kind in self.parts if kind == "message/feedback-report"), None)
        if report is None and self.message.get_param("report-type", "", header="content-type") == "feedback-report":
            report = next((part for part, kind in self.parts if kind.startswith("text/")
                           and "feedback-type:" in self.text_of(part).lower()), None)
        if report is not None:
            blocks = dsn_blocks(fields_text(report))
            fields = blocks[0] if blocks else {}
            kind = fields.get("feedback-type", [""])[0].lower()
            addresses = [self.accept(value.partition(";")[2] or value)
                         for name in ("original-rcpt-to", "removal-recipient") for value in fields.get(name, [])]
            addresses = [address for address in addresses if address] or [self.returned_recipient(returned)]
            if kind in OPT_OUT_TYPES:
                return [], True
            if kind not in COMPLAINT_TYPES:
                return [], False
            names = ("feedback-type", "user-agent", "source-ip", "arrival-date")
            diagnostic = "; ".join(f"{name.title()}: {fields[name][0]}" for name in names if fields.get(name))
            return [Failure(address, BounceKind.complaint, diagnostic, COMPLAINT.name) for address in addresses], False
        jmrp = self.message.get("X-HmXmrOriginalRecipient") or (returned.get("X-HmXmrOriginalRecipient") if returned else None)
        if jmrp is not None or "scomp" in str(self.message.get("X-Loop", "")).lower():
            address = self.first_accepted([str(jmrp)]) if jmrp else self.returned_recipient(returned)
            source = "Microsoft JMRP report" if jmrp is not None else "scomp complaint report"
            return [Failure(address, BounceKind.complaint, source, COMPLAINT.name)], False
        return None

    def returned_headers(self) -> Message | None:
        """The headers of the returned copy of our message, when the report carries one."""
        for part, kind in self.parts:
            if kind in RETURNED_TYPES:
                payload = part.get_payload()
                if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                    return payload[0]
                return email.message_from_string(str(payload))
        return None

    def returned_recipient(self, returned: Message | None) -> str:
        if returned is None:
            return ""
        return self.first_accepted([str(returned.get("X-HmXmrOriginalRecipient", "")), str(returned.get("To", ""))])

    # ---- delivery status notifications -----------------------------------------------------

    def dsn(self, texts: Iterator[str] | list[str]) -> list[Failure] | None:
        """Each recipient block that reports a failure or a delay; None when there are no recipient blocks."""
        blocks = [block for text in texts for block in dsn_blocks(text)
                  if any(name.lower() in block for name in RECIPIENT_FIELDS)]
        if not blocks:
            return None
        reported = [(block, action) for block in blocks if (action := _action(block))]
        text = self.notice_text if reported else ""
        failures = []
        for block, action in reported:
            address = self.first_accepted([value for name in RECIPIENT_FIELDS for value in block.get(name.lower(), [])])
            status = _first(block, "status")
            code = _first(block, "diagnostic-code")
            about = text if len(reported) == 1 else _lines_about(text, address)
            if not code:  # the notice says more than a bare status
                lines = about.split("\n")
                code = notice.summary(lines, evidence_lines(lines))
            diagnostic = code if status and status in code else f"{status} {code}".strip()
            judged = failed if action == "failed" else delayed
            failures.append(judged(address, diagnostic, [code, status], [about]))
        return failures

    # ---- notices for people ----------------------------------------------------------------

    @cached_property
    def notice_text(self) -> str:
        """The human-readable report: its plain text parts (or HTML ones when there is no plain text),
        up to where an inline copy of the bounced message begins."""
        texts = [(part, kind) for part, kind in self.parts if kind.startswith(("text/", "multipart/"))
                 and kind not in RETURNED_TYPES and not isinstance(part.get_payload(), list)]
        plain = [part for part, kind in texts if kind != "text/html"] or [part for part, _ in texts]
        return notice.without_returned_copy("\n".join(self.text_of(part) for part in plain))

    def text_of(self, part: Message) -> str:
        """A part's text, decoded once however often it is asked for."""
        if id(part) not in self.texts:
            self.texts[id(part)] = notice.text_of(part)
        return self.texts[id(part)]

    def flufl(self, text: str) -> list[Failure]:
        """flufl.bounce's detectors, for the formats the notice reader found no address in."""
        try:
            temporary, permanent = all_failures(self.message)
        except Exception:  # noqa: BLE001 - its heuristics can trip over odd messages: then it knows nothing
            return []
        lines = text.split("\n")
        diagnostic = notice.summary(lines, evidence_lines(lines))
        found = []
        for raw, final in [(address, False) for address in sorted(temporary)] + [(address, True) for address in sorted(permanent)]:
            address = self.accept(raw.decode("ascii", errors="replace"))
            if address:
                judged = failed if final else delayed
                found.append(judged(address, diagnostic, notice.reply_lines(lines), [text]))
        return found

    def broken(self) -> list[str]:
        return [type(defect).__name__ for part, _ in self.parts for defect in part.defects if isinstance(defect, BROKEN_MIME)]


def _action(block: dict[str, list[str]]) -> str:
    """"failed", "delayed" or "" (delivered, relayed, expanded) for one DSN recipient block."""
    action = _first(block, "action").lower()
    if action.startswith(("fail", "error", "bounce", "undeliver", "reject")):
        return "failed"
    if action.startswith("delay"):
        return "delayed"
    if action:
        return ""
    status = _first(block, "status")
    return {"2": "", "4": "delayed"}.get(status[:1], "failed")


def _first(block: dict[str, list[str]], name: str) -> str:
    values = block.get(name)
    return values[0] if values else ""


def _lines_about(text: str, address: str) -> str:
    """The lines of a notice near mentions of one address (when a report names several)."""
    if not address:
        return ""
    lines = text.split("\n")
    near = {index for number, line in enumerate(lines) if address.lower() in line.lower()
            for index in range(number, min(number + 4, len(lines)))}
    return "\n".join(lines[index] for index in sorted(near))


def own_parts(part: Message) -> Iterator[Message]:
    """The part and its descendants, without looking inside message/* parts (the returned message, the report fields)."""
    yield part
    children = part.get_payload()
    if part.get_content_maintype() == "multipart" and isinstance(children, list):
        for child in children:
            if isinstance(child, Message):
                yield from own_parts(child)


def fields_text(part: Message) -> str:
    """The text of a message/delivery-status or message/feedback-report part, however the parser held it."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return "\n\n".join("\n".join(f"{name}: {value}" for name, value in block.items())
                           for block in payload if isinstance(block, Message))
    return notice.text_of(part)


def dsn_blocks(text: str) -> list[dict[str, list[str]]]:
    """Header-style field blocks (lower-case name -> values). A new block starts at a blank line, and
    also where a recipient field repeats without one (two recipient blocks run together)."""
    blocks: list[dict[str, list[str]]] = []
    block: dict[str, list[str]] = {}
    last = ""
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if block:
                blocks.append(block)
            block, last = {}, ""
            continue
        if line[0] in " \t" and last:
            block[last][-1] += " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        if not colon or " " in name.strip():
            continue
        name = name.strip().lower()
        if name in ("original-recipient", "final-recipient") and (name in block or "action" in block or "status" in block):
            blocks.append(block)
            block = {}
        block.setdefault(name, []).append(" ".join(value.split()))
        last = name
    if block:
        blocks.append(block)
    return blocks


def _message_key(message: Message, data: bytes) -> str:
    message_id = " ".join(str(message.get("Message-ID", "")).split())
    if message_id and len(message_id) <= 255:
        return message_id
    return "sha256:" + hashlib.sha256(data).hexdigest()
