"""From a signed link to the subscriber it names, or one plain refusal.

Forged, truncated, tampered, expired, or naming a subscriber who was since
forgotten: all give the same `InvalidLink`, so the answer reveals nothing.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from mailer.config import Settings
from mailer.errors import TokenError
from mailer.store.models import Send, Subscriber
from mailer.store.subscribers import FORGOTTEN_SUFFIX
from mailer.tokens import Purpose, read_token

MAX_TOKEN_LENGTH = 512  # real ones are under 100 characters


class InvalidLink(Exception):
    """Answered with the "this link is not valid" page."""


def payload(settings: Settings, purpose: Purpose, token: str) -> Any:
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidLink
    try:
        return read_token(settings, purpose, token)
    except TokenError:
        raise InvalidLink from None


def subscriber(session: Session, settings: Settings, purpose: Purpose, token: str) -> Subscriber:
    """The subscriber a link was made for (the payload of these tokens is the subscriber id)."""
    return by_id(session, payload(settings, purpose, token))


def reader(session: Session, settings: Settings, purpose: Purpose, token: str) -> tuple[Subscriber, int | None]:
    """The subscriber an unsubscribe or preferences link was made for, and the send it came in (None when
    the link came from a page, or from an email older than send attribution: its payload is the id alone)."""
    found = payload(settings, purpose, token)
    if isinstance(found, list) and len(found) == 2:
        subscriber_id, send_id = found
        # A send of this database (a token outlives a restored or replaced database, never the key).
        if not (type(send_id) is int and 0 < send_id < 2**63 and session.get(Send, send_id) is not None):
            send_id = None
        return by_id(session, subscriber_id), send_id
    return by_id(session, found), None


def by_id(session: Session, subscriber_id: Any) -> Subscriber:
    """The subscriber named inside a valid token, unless since deleted or forgotten."""
    # Only our own key signs these, but a payload is still checked for what an id can be (not a bool, fits 64 bits).
    valid_id = type(subscriber_id) is int and 0 < subscriber_id < 2**63
    found = session.get(Subscriber, subscriber_id) if valid_id else None
    # `forget` keeps the row, blanked, so old links could still reach it: they must not.
    if found is None or found.email_key.endswith(FORGOTTEN_SUFFIX):
        raise InvalidLink
    return found
