"""VERP return paths: the envelope sender of each message names its delivery.

`bounces+<delivery id>-<signature>@domain` lets a bounce be matched to its
delivery even when the bounce message itself is unhelpful; the signature means
nobody can forge a bounce for someone else's address. The signature is
lower-case hex, not itsdangerous' base64, because some mail systems change the
case of local parts on the way back.

When `return_path` is set, its local part and domain replace `bounces` and the
sender's domain, so `return_path = "bounce@lists.example.org"` gives
`bounce+<id>-<signature>@lists.example.org`.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from mailer.config import Settings

LOCAL_PART = "bounces"
SIGNATURE_LENGTH = 16


def signature(key: str, subject: str) -> str:
    """Lower-case hex HMAC of `subject`: what signs a return path or an unsubscribe address."""
    return hmac.new(key.encode(), subject.encode(), hashlib.sha256).hexdigest()[:SIGNATURE_LENGTH]


def signed_by_any_key(settings: Settings, subject: str, given: str) -> bool:
    """Whether `given` is the signature of `subject` with the secret key or one of the old keys."""
    return any(hmac.compare_digest(given, signature(key, subject)) for key in (settings.secret_key, *settings.old_secret_keys))


def _signature(key: str, delivery_id: int) -> str:
    return signature(key, f"verp:{delivery_id}")


def _local_part(settings: Settings) -> str:
    local = settings.return_path.rpartition("@")[0] if settings.return_path else ""
    return (local or LOCAL_PART).lower()


def _domain(settings: Settings) -> str:
    return settings.return_path.rpartition("@")[2] if settings.return_path else settings.sender_domain


def return_path_for(settings: Settings, delivery_id: int) -> str:
    return f"{_local_part(settings)}+{delivery_id}-{_signature(settings.secret_key, delivery_id)}@{_domain(settings)}"


def delivery_for(settings: Settings, address: str) -> int | None:
    """The delivery id a bounce address names, or None when it is not one of ours or is forged."""
    local = address.strip().strip("<>").rpartition("@")[0].lower()
    prefix, plus, tag = local.rpartition("+")
    number, dash, given = tag.partition("-")
    if not (plus and dash and prefix == _local_part(settings) and number.isdigit()):
        return None
    delivery_id = int(number)
    return delivery_id if signed_by_any_key(settings, f"verp:{delivery_id}", given) else None


def is_return_path(settings: Settings, address: str) -> bool:
    """Whether an address is this list's return path, plain or with any tag (`bounces+...@domain`)."""
    local, _, domain = address.lower().rpartition("@")
    ours = _local_part(settings)
    return (local == ours or local.startswith(ours + "+")) and domain == _domain(settings).lower()


def deliveries_in(settings: Settings, data: bytes) -> list[int]:
    """Every delivery named by a validly signed return path anywhere in a raw message, in order, once each.

    Bounces carry the return path in many places (To, Delivered-To,
    Envelope-To, the returned message's Return-Path, an ARF report's
    Original-Mail-From); searching the whole message finds it wherever it is.
    Some mail systems change the case of addresses, so the search ignores it.
    """
    lowered = data.lower()
    prefix = f"{_local_part(settings)}+".encode()
    tag = re.compile(rb"\d+-[0-9a-f]+@")
    found: list[int] = []
    start = lowered.find(prefix)
    while start >= 0:
        if match := tag.match(lowered, start + len(prefix)):
            delivery_id = delivery_for(settings, lowered[start:match.end()].decode("ascii"))
            if delivery_id is not None and delivery_id not in found:
                found.append(delivery_id)
        start = lowered.find(prefix, start + 1)
    return found


# What may stand in the id part of a Message-ID (RFC 5322 dot-atom text).
ID_CHARACTERS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.!#$%&'*+/=?^_`{|}~-")
DOMAIN_CONTINUES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")


def message_ids_in(settings: Settings, data: bytes, limit: int = 50) -> list[str]:
    """Every Message-ID this system could have written anywhere in a raw message: `<...@sender domain>`
    whose id starts with a digit, as the delivery's (`<delivery id.send tag@...>`) and test copies' do.

    The candidates are looked up among the deliveries' Message-IDs: a report
    carrying one is about a message this system sent. Brackets are optional
    (JSON notices often drop them); each comes back as `<id>`, once.
    """
    lowered = data.lower()
    at_domain = f"@{settings.sender_domain}".lower().encode()
    found: list[str] = []
    end = lowered.find(at_domain)
    while end >= 0 and len(found) < limit:
        after = end + len(at_domain)
        start = end
        while start > 0 and data[start - 1] in ID_CHARACTERS:
            start -= 1
        if start < end and data[start:start + 1].isdigit() and (after == len(data) or data[after] not in DOMAIN_CONTINUES):
            candidate = "<" + data[start:after].decode("ascii") + ">"
            if candidate not in found:
                found.append(candidate)
        end = lowered.find(at_domain, after)
    return found
