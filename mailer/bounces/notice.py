"""Reading a failure notice written for people: the text MAILER-DAEMON sends when it writes no DSN.

qmail, DragonFly's dma, OpenSMTPD, Lotus Notes and Domino, classic Exim and
sendmail, Yahoo, Zoho and Office 365 text NDRs all say the same thing in their
own words: a failed address beside a reply code, an enhanced status code or a
phrase ("550 5.1.1", "#5.1.1", "no mailbox here by that name"). So rather than
one parser per MTA, the notice (the human-readable text, up to where the
returned copy of the message begins) is searched for addresses that have
such evidence within a few lines; each becomes a failure judged by the rule
table. Only messages that look like failure notices are read this way, never
auto-replies: an out-of-office reply mentions addresses and "no longer" too.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from email.header import decode_header, make_header
from email.message import Message

from mailer.bounces.rules import FAILURE_CODE, Failure, evidence_lines, failed

# Where the copy of the bounced message begins in a notice that carries it inline.
RETURNED_START = re.compile(
    r"^.*(?:below (?:this|the next) line is a copy of the (?:message|mail header)|this is a copy of the message"
    r"|original message (?:follows|headers)|-+ ?original message ?-+|message headers follow"
    r"|below is a copy of the original message|unsent message follows|no message was collected"
    r"|-+ ?(?:start of )?returned (?:message|mail) ?-+|returned mail follows|mensaje original adjunto"
    r"|content-type: message/rfc822|here is your returned mail|original message is attached|message text follows"
    r"|header of the original message)"
    r"|\n\n(?=(?:received|return-path|dkim-signature|x-received|arc-seal): )"
    r"|^(?=return-path: <|received: from |dkim-signature: v=)",
    re.IGNORECASE | re.MULTILINE,
)
ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
DAEMON_NAMES = re.compile(
    r"mailer-?daemon|mail-daemon|postmaster|mail delivery|delivery (?:subsystem|system)|mail administrator"
    r"|system administrator|mail system|mdaemon|returned mail|mailsystem", re.IGNORECASE)
BOUNCE_SUBJECT = re.compile(
    r"undeliver|not (?:be )?delivered|delivery (?:status|fail|notification|problem|report|error|has failed|incomplete)"
    r"|returned mail|returned to sender|mail delivery|failure notice|non-?delivery|nondeliverable|could not be delivered"
    r"|failed delivery|delivery_failure|bounced?\b|mail system error|delayed mail|warning: could not send|mail failure"
    r"|message not delivered|unzustellbar|nicht zustellbar|non remis|non recapitabile|no se puede entregar|onbestelbaar"
    r"|heb ei danfon|mail could not", re.IGNORECASE)
AUTO_REPLY_SUBJECT = re.compile(
    r"^\s*(?:re:\s*)?(?:auto(?:matic)?[- ]?(?:reply|response|antwort)|auto:|out of (?:the )?office|autoreply|abwesen"
    r"|absence|vacation|r[ée]ponse automatique|respuesta autom[aá]tica|risposta automatica|ateb awtomatig|allan o'r swyddfa)",
    re.IGNORECASE)
MESSAGE_ID_LINE = re.compile(r"message[- ]?id\b|\bmsgid\b", re.IGNORECASE)
WINDOW_BEFORE, WINDOW_AFTER = 3, 8  # lines around an address that may hold its evidence


def text_of(part: Message) -> str:
    """The text of a part, decoded leniently: it is only searched, so a wrong byte is not worth refusing the report."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):  # a multipart whose structure is broken: its body is one string
        payload = str(part.get_payload()).encode("latin-1", errors="replace")
    charset = part.get_content_charset() or "us-ascii"
    try:
        text = payload.decode(charset, errors="replace")
    except LookupError:  # a charset Python does not know: the ASCII in it is what matters
        text = payload.decode("utf-8", errors="replace")
    if part.get_content_type() == "text/html":
        text = html_to_text(text)
    return text.replace("\r\n", "\n")


def html_to_text(text: str) -> str:
    text = re.sub(r"(?is)<(script|style|head)\b.*?</\1>", " ", text)
    text = re.sub(r"(?i)<(?:br|/p|/div|/tr|/li|/h\d)\b[^>]*>", "\n", text)
    return html.unescape(re.sub(r"<[^>]*>", " ", text))


def without_returned_copy(text: str) -> str:
    """The notice up to where an inline copy of the bounced message begins."""
    found = RETURNED_START.search(text)
    return text[: found.start()] if found else text


def header_text(message: Message, name: str) -> str:
    """A header's value as text, whatever odd encoding it came in."""
    value = message.get(name)
    if value is None:
        return ""
    try:
        return " ".join(str(make_header(decode_header(str(value)))).split())
    except (ValueError, LookupError, UnicodeError):
        return " ".join(str(value).split())


def from_a_mail_system(message: Message) -> bool:
    """From MAILER-DAEMON, postmaster, "Mail Delivery System"... or with no address at all."""
    sender = header_text(message, "From")
    return bool(DAEMON_NAMES.search(sender)) or "@" not in sender


def is_auto_reply(message: Message) -> bool:
    """An out-of-office or other automatic answer from a person's mailbox (RFC 3834), not a mail system."""
    subject = header_text(message, "Subject")
    if AUTO_REPLY_SUBJECT.search(subject):
        return True
    marked = (
        header_text(message, "Auto-Submitted").lower().startswith("auto-replied")
        or any(message.get(name) for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponse"))
        or header_text(message, "Precedence").lower() == "auto_reply"
        or header_text(message, "X-Apple-Action").lower() == "vacation"
    )
    return marked and not from_a_mail_system(message) and not BOUNCE_SUBJECT.search(subject)


def looks_like_failure_notice(message: Message) -> bool:
    """Written by a mail system about a failed or delayed delivery (as far as its headers tell)."""
    if is_auto_reply(message):
        return False
    return (
        from_a_mail_system(message)
        or bool(BOUNCE_SUBJECT.search(header_text(message, "Subject")))
        or message.get("X-Failed-Recipients") is not None
        or message.get_content_type() == "multipart/report"
    )


def summary(lines: list[str], telling: set[int]) -> str:
    """The diagnostic to show: the lines that carry a code, or else those with the words of a rule,
    or else the first few."""
    chosen = [line for line in lines if FAILURE_CODE.search(line)]
    chosen = chosen or [lines[number] for number in sorted(telling) if lines[number].strip()]
    chosen = chosen or [line for line in lines if line.strip()][:3]
    return " ".join(" ".join(chosen).split())[:500]


def reply_lines(lines: list[str]) -> list[str]:
    """The receiving server's answer in a notice: each line with a code and the lines that continue it
    (up to a blank line, or three more), as a folded SMTP reply runs on."""
    chosen: list[int] = []
    for number, line in enumerate(lines):
        if FAILURE_CODE.search(line):
            for follower in range(number, min(number + 4, len(lines))):
                if follower > number and not lines[follower].strip():
                    break
                if follower not in chosen:
                    chosen.append(follower)
    return [lines[number] for number in chosen]


def read_notice(text: str, accept: Callable[[str], str], named: list[str]) -> list[Failure]:
    """The failures a notice reports: each address with evidence near it (and every address in `named`,
    the X-Failed-Recipients header); one failure without an address when the evidence names nobody."""
    lines = text.split("\n")
    telling = evidence_lines(lines)
    if not telling and not named:
        return []
    mentions: dict[str, int] = {}
    for number, line in enumerate(lines):
        if MESSAGE_ID_LINE.search(line):  # "Message-ID: <...@...>" looks like an address and is none
            continue
        for found in ADDRESS.finditer(line):
            address = accept(found.group())
            if address and address.lower() not in mentions:
                mentions[address.lower()] = number
    near = {address: range(max(0, at - WINDOW_BEFORE), min(len(lines), at + WINDOW_AFTER)) for address, at in mentions.items()}
    recipients = [address for address, window in near.items() if telling.intersection(window)]
    recipients += [address for address in (accept(name).lower() for name in named) if address and address not in recipients]
    if len(recipients) <= 1:
        return [failed(recipients[0] if recipients else "", summary(lines, telling), reply_lines(lines), [text])]
    failures = []
    for address in recipients:
        span = near.get(address, range(len(lines)))
        window = lines[span.start:span.stop]
        telling_here = {number - span.start for number in telling if number in span}
        failures.append(failed(address, summary(window, telling_here), reply_lines(window), ["\n".join(window)]))
    return failures
