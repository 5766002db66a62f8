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


def _signature(key: str, delivery_id: int) -> str:
    digest = hmac.new(key.encode(), f"verp:{delivery_id}".encode(), hashlib.sha256).hexdigest()
    return digest[:SIGNATURE_LENGTH]


def _local_part(settings: Settings) -> str:
    local = settings.return_path.rpartition("@")[0] if settings.return_path else ""
    return (local or LOCAL_PART).lower()


def _domain(settings: Settings) -> str:
    return settings.return_path.rpartition("@")[2] if settings.return_path else settings.sender_domain


def return_path_for(settings: Settings, delivery_id: int) -> str:
    signature = _signature(settings.secret_key, delivery_id)
    return f"{_local_part(settings)}+{delivery_id}-{signature}@{_domain(settings)}"


def delivery_for(settings: Settings, address: str) -> int | None:
    """The delivery id a bounce address names, or None when it is not one of ours or is forged."""
    local = address.strip().strip("<>").rpartition("@")[0].lower()
    prefix, plus, tag = local.rpartition("+")
    number, dash, signature = tag.partition("-")
    if not (plus and dash and prefix == _local_part(settings) and number.isdigit()):
        return None
    delivery_id = int(number)
    for key in (settings.secret_key, *settings.old_secret_keys):
        if hmac.compare_digest(signature, _signature(key, delivery_id)):
            return delivery_id
    return None


def deliveries_in(settings: Settings, text: str) -> list[int]:
    """Every delivery named by a validly signed return path anywhere in `text`, in order, once each.

    Bounces carry the return path in many places (To, Delivered-To,
    Envelope-To, the returned message's Return-Path, an ARF report's
    Original-Mail-From); searching the whole text finds it wherever it is.
    """
    pattern = re.compile(rf"{re.escape(_local_part(settings))}\+\d+-[0-9a-f]+@", re.IGNORECASE)
    found: list[int] = []
    for match in pattern.finditer(text):
        delivery_id = delivery_for(settings, match.group())
        if delivery_id is not None and delivery_id not in found:
            found.append(delivery_id)
    return found
