"""VERP return paths: the envelope sender of each message names its delivery.

`bounces+<delivery id>-<signature>@domain` lets a bounce be matched to its
delivery even when the bounce message itself is unhelpful; the signature means
nobody can forge a bounce for someone else's address. The signature is
lower-case hex, not itsdangerous' base64, because some mail systems change the
case of local parts on the way back.
"""

from __future__ import annotations

import hashlib
import hmac

from mailer.config import Settings

LOCAL_PART = "bounces"
SIGNATURE_LENGTH = 16


def _signature(key: str, delivery_id: int) -> str:
    digest = hmac.new(key.encode(), f"verp:{delivery_id}".encode(), hashlib.sha256).hexdigest()
    return digest[:SIGNATURE_LENGTH]


def _domain(settings: Settings) -> str:
    return settings.return_path.rpartition("@")[2] if settings.return_path else settings.sender_domain


def return_path_for(settings: Settings, delivery_id: int) -> str:
    return f"{LOCAL_PART}+{delivery_id}-{_signature(settings.secret_key, delivery_id)}@{_domain(settings)}"


def delivery_for(settings: Settings, address: str) -> int | None:
    """The delivery id a bounce address names, or None when it is not one of ours or is forged."""
    local = address.strip().strip("<>").rpartition("@")[0].lower()
    prefix, plus, tag = local.partition("+")
    number, dash, signature = tag.partition("-")
    if not (plus and dash and prefix == LOCAL_PART and number.isdigit()):
        return None
    delivery_id = int(number)
    for key in (settings.secret_key, *settings.old_secret_keys):
        if hmac.compare_digest(signature, _signature(key, delivery_id)):
            return delivery_id
    return None
