"""Signed tokens for every link in an email, one purpose (salt) per kind of link.

Unsubscribe and preference tokens never expire: an unsubscribe link must work
years later. Confirmation tokens expire. Old secret keys keep old links valid
after the key is rotated.
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


def unsubscribe_url(settings: Settings, subscriber_id: int) -> str:
    return f"{settings.base_url}/u/{make_token(settings, Purpose.unsubscribe, subscriber_id)}"


def preferences_url(settings: Settings, subscriber_id: int) -> str:
    return f"{settings.base_url}/p/{make_token(settings, Purpose.preferences, subscriber_id)}"


def confirm_url(settings: Settings, subscriber_id: int) -> str:
    return f"{settings.base_url}/confirm/{make_token(settings, Purpose.confirm, subscriber_id)}"


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


def archive_url(settings: Settings, send_id: int) -> str:
    return f"{settings.base_url}/archive/{send_id}"
