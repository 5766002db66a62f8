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
    subscriber_id, send_id = _subscriber_and_id(payload(settings, purpose, token))
    # A send of this database (a token outlives a restored or replaced database, never the key).
    if send_id is not None and session.get(Send, send_id) is None:
        send_id = None
    return by_id(session, subscriber_id), send_id


def confirmation(session: Session, settings: Settings, token: str) -> tuple[Subscriber, int | None]:
    """The subscriber a confirmation link was made for, and the subscribe request it confirms
    (None for a link older than requests: its payload is the subscriber id alone)."""
    subscriber_id, request_id = _subscriber_and_id(payload(settings, Purpose.confirm, token))
    return by_id(session, subscriber_id), request_id


def _subscriber_and_id(found: Any) -> tuple[Any, int | None]:
    """A payload of `[subscriber id, another id]`, or of the subscriber id alone."""
    if isinstance(found, list) and len(found) == 2:
        subscriber_id, other = found
        return subscriber_id, other if _is_id(other) else None
    return found, None


def _is_id(value: Any) -> bool:
    # Only our own key signs these, but a payload is still checked for what an id can be (not a bool, fits 64 bits).
    return type(value) is int and 0 < value < 2**63


def by_id(session: Session, subscriber_id: Any) -> Subscriber:
    """The subscriber named inside a valid token, unless since deleted or forgotten."""
    found = session.get(Subscriber, subscriber_id) if _is_id(subscriber_id) else None
    # `forget` keeps the row, blanked, so old links could still reach it: they must not.
    if found is None or found.email_key.endswith(FORGOTTEN_SUFFIX):
        raise InvalidLink
    return found
