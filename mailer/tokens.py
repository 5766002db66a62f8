"""Signed tokens for every link in an email, one purpose (salt) per kind of link.

Unsubscribe and preference tokens never expire: an unsubscribe link must work
years later. Confirmation tokens expire. Old secret keys keep old links valid
after the key is rotated.

The unsubscribe and preferences links of an email carry the send it belongs to
(`[subscriber_id, send_id]`), so what a reader does with them is counted on that
issue; links made outside a send (pages, test copies) and links in emails sent
before this carry the subscriber id alone. A counted link (`link_counts`) names
a send and one of its links, never a reader.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from typing import Any

from itsdangerous import BadData, URLSafeTimedSerializer

from mailer.config import Settings
from mailer.errors import TokenError


class Purpose(StrEnum):
    unsubscribe = "unsubscribe"
    preferences = "preferences"
    confirm = "confirm"          # double opt-in
    change_email = "change-email"
    undo_email = "undo-email"    # sent to the old address when it was changed
    bounce = "bounce"            # VERP return path
    link = "link"                # a counted link: [send_id, position]


EXPIRES = {Purpose.confirm, Purpose.change_email}
UNDO_EMAIL_DAYS = 30  # how long the old address can take a change back


def _serializer(settings: Settings, purpose: Purpose) -> URLSafeTimedSerializer:
    # itsdangerous signs with the last key and accepts any of them.
    return _serializer_for((*settings.old_secret_keys, settings.secret_key), purpose)


@lru_cache(maxsize=32)
def _serializer_for(keys: tuple[str, ...], purpose: Purpose) -> URLSafeTimedSerializer:
    """Built once per keys and purpose: building one costs a third of signing, and every message signs two links."""
    return URLSafeTimedSerializer(list(keys), salt=f"mailer.{purpose}")


def make_token(settings: Settings, purpose: Purpose, payload: Any) -> str:
    return _serializer(settings, purpose).dumps(payload)


def read_token(settings: Settings, purpose: Purpose, token: str) -> Any:
    """The payload of a valid token; `TokenError` for anything forged, damaged or expired."""
    max_age = settings.confirm_token_days * 86400 if purpose in EXPIRES else None
    if purpose == Purpose.undo_email:
        max_age = UNDO_EMAIL_DAYS * 86400
    try:
        return _serializer(settings, purpose).loads(token, max_age=max_age)
    except BadData:
        raise TokenError("this link is not valid") from None


def reader_payload(subscriber_id: int, send_id: int | None) -> int | list[int]:
    """What an unsubscribe or preferences link carries: the subscriber, and the send when it came in one."""
    return subscriber_id if send_id is None else [subscriber_id, send_id]


def unsubscribe_url(settings: Settings, subscriber_id: int, send_id: int | None = None) -> str:
    return f"{settings.base_url}/u/{make_token(settings, Purpose.unsubscribe, reader_payload(subscriber_id, send_id))}"


def preferences_url(settings: Settings, subscriber_id: int, send_id: int | None = None) -> str:
    return f"{settings.base_url}/p/{make_token(settings, Purpose.preferences, reader_payload(subscriber_id, send_id))}"


def confirm_url(settings: Settings, subscriber_id: int, request_id: int) -> str:
    """The link that confirms one subscribe request (`subscribers.confirm` applies that one and no other)."""
    return f"{settings.base_url}/confirm/{make_token(settings, Purpose.confirm, [subscriber_id, request_id])}"


def change_email_url(settings: Settings, subscriber_id: int, version: int, new_email: str) -> str:
    """The link, sent to `new_email`, that moves the subscriber there.

    `version` is how many times the subscriber's address has changed so far: the
    link works only while the address is still the one it changes from, so once.
    """
    token = make_token(settings, Purpose.change_email, [subscriber_id, version, new_email])
    return f"{settings.base_url}/email/{token}"


def undo_email_url(settings: Settings, subscriber_id: int, version: int, old_email: str) -> str:
    """The link, sent to `old_email` after a change (`version` counts it), that moves the subscriber back."""
    token = make_token(settings, Purpose.undo_email, [subscriber_id, version, old_email])
    return f"{settings.base_url}/email/{token}/undo"


def counted_link_url(settings: Settings, send_id: int, position: int) -> str:
    """The same for every reader of the send: it counts a visit, and says nothing of who."""
    return f"{settings.base_url}/l/{make_token(settings, Purpose.link, [send_id, position])}"


def archive_url(settings: Settings, send_id: int) -> str:
    return f"{settings.base_url}/archive/{send_id}"
