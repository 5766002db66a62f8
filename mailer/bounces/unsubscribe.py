"""Unsubscribe by email: the signed mailto address of `List-Unsubscribe`, and the requests sent to it.

Every message offers `mailto:unsubscribe+<subscriber>-<send>-<signature>@<sender domain>`
beside the one-click link. The signature (the VERP kind: lower-case hex, so a
mail system that changes the case of local parts does no harm) makes the
address work for that reader only, so a message sent to it is their request,
whoever's mailbox it comes from; a plain `unsubscribe@` or a forged token
changes nothing. The same mailbox readers as bounces (`mailer bounces process`,
the runner) read these requests: the mail server must deliver
`unsubscribe+anything@<sender domain>` into the bounce mailbox too.

Only the headers the receiving server and the reader's mail program wrote are
searched (To, Cc, Delivered-To, X-Original-To, Envelope-To...): a bounce of a
newsletter carries the token inside the returned copy, and that is no request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32

from mailer.bounces.verp import signature, signed_by_any_key
from mailer.config import Settings

LOCAL_PART = "unsubscribe"
HEADERS = ("To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "X-Delivered-To", "Original-Recipient")
ADDRESS = re.compile(r"(?<![\w.+-])unsubscribe(?:\+([0-9a-z-]*))?@", re.IGNORECASE)
TAG = re.compile(r"(\d+)-(\d+)-([0-9a-f]+)")


@dataclass(frozen=True)
class Request:
    """A message sent to the unsubscribe address; `subscriber_id` is None when its token is missing or forged."""

    subscriber_id: int | None
    send_id: int | None = None


def _subject(subscriber_id: int, send_id: int) -> str:
    return f"unsubscribe:{subscriber_id}:{send_id}"


def unsubscribe_tag(settings: Settings, subscriber_id: int, send_id: int | None) -> str:
    """The per-recipient part of the address: `<subscriber>-<send or 0>-<signature>`."""
    send = send_id or 0
    return f"{subscriber_id}-{send}-{signature(settings.secret_key, _subject(subscriber_id, send))}"


def unsubscribe_address(settings: Settings, subscriber_id: int | None, send_id: int | None = None) -> str:
    """Where a reader writes to stop the newsletter: signed for them, or plain for a test copy (no subscriber)."""
    if subscriber_id is None:
        return f"{LOCAL_PART}@{settings.sender_domain}"
    return f"{LOCAL_PART}+{unsubscribe_tag(settings, subscriber_id, send_id)}@{settings.sender_domain}"


def is_unsubscribe_address(settings: Settings, address: str) -> bool:
    """Whether an address is this list's unsubscribe address, plain or with any tag."""
    local, _, domain = address.lower().rpartition("@")
    return (local == LOCAL_PART or local.startswith(LOCAL_PART + "+")) and domain == settings.sender_domain.lower()


def read_tag(settings: Settings, tag: str) -> Request:
    """Who a tag names; a Request without a subscriber when it is not validly signed."""
    found = TAG.fullmatch(tag.lower())
    if found is None:
        return Request(None)
    subscriber_id, send_id = int(found.group(1)), int(found.group(2))
    if not signed_by_any_key(settings, _subject(subscriber_id, send_id), found.group(3)):
        return Request(None)
    return Request(subscriber_id, send_id or None)


def request_in(settings: Settings, data: bytes) -> Request | None:
    """The unsubscribe request a raw message is, or None when it was not sent to the unsubscribe address."""
    head = data.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    if b"unsubscribe" not in head.lower():
        return None
    headers = BytesHeaderParser(policy=compat32).parsebytes(head)
    tags = [
        found.group(1) or ""
        for name in HEADERS
        for value in headers.get_all(name, [])
        for found in ADDRESS.finditer(str(value))
    ]
    if not tags:
        return None
    requests = [read_tag(settings, tag) for tag in tags]
    return next((request for request in requests if request.subscriber_id is not None), Request(None))
