"""Checking the fields people type into the subscribe and preferences forms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Form

from mailer.config import Settings
from mailer.delivery.message import wire_address
from mailer.errors import PermanentFailure
from mailer.store.subscribers import InvalidEmail, clean_name, normalise_email

__all__ = ["clean_name"]  # the store's, so a name is cleaned the same whichever way it comes in

EMAIL_LENGTH = 320

# A form field, empty when missing: a missing field is a problem named on the page, never a 422.
FormText = Annotated[str, Form()]
FormList = Annotated[list[str], Form()]
# What a form shows as chosen, by field: the typed values again after a problem, or the subscriber's.
Chosen = dict[str, str | list[str]]


def normalised_email(value: str) -> str | None:
    """The address as the store normalises it, or None when it is not a valid address."""
    if len(value) > EMAIL_LENGTH:
        return None
    try:
        return normalise_email(value)[0]
    except InvalidEmail:
        return None


def sendable(address: str) -> bool:
    """Whether notices can reach `address`: the same rule as bulk sends (IDNA domain, ASCII local part).

    A local part such as `ñoño@` needs SMTPUTF8, which the sender does not use; better
    to say so on the form than to answer "check your email" and never send it.
    """
    try:
        wire_address(address)
    except PermanentFailure:
        return False
    return True


def offered_languages(settings: Settings) -> list[str]:
    """The email languages a subscriber may choose: none when the list has one, else each and "both"."""
    return [*settings.languages, "both"] if len(settings.languages) > 1 else []


def problems(_: Callable[..., str], *, address: str | None, language: str, offered: list[str], topics: list[str],
             known_topics: set[str]) -> dict[str, str]:
    """What is wrong with the fields the subscribe and preferences forms share, by field, in the page's language.

    `address` is the typed address through `normalised_email` (None when it is not valid).
    """
    errors = {}
    if address is None:
        errors["email"] = _("Enter an email address like name@example.org.")
    elif not sendable(address):
        errors["email"] = _("We cannot send email to an address with letters such as é or ü before the @. "
                            "Please use another address.")
    if offered and language not in offered:
        errors["language"] = _("Choose one of the languages offered.")
    if not set(topics) <= known_topics:
        errors["topics"] = _("Choose from the topics listed.")
    return errors
