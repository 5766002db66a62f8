"""Per-recipient fields, filled in after the expensive rendering.

A rendered issue carries placeholders such as `__MAILER_NAME__`: plain letters and
underscores, so Jinja, MJML and premailer pass them through untouched (premailer
would URL-encode `{{ name }}` in an href). The `Personaliser` splits each part once
at the placeholders; a recipient then costs one join. Values are inserted as data,
never parsed again: a name like `{{ 7*7 }}` or `<script>` stays text.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailer.content.render import Rendered

PLACEHOLDER_FIELDS = ("name", "email", "unsubscribe_url", "preferences_url", "web_url")
FALLBACK_NAMES = {"en": "friend", "cy": "gyfaill"}  # "Dear friend," / "Annwyl gyfaill,"
_PLACEHOLDER = re.compile("__MAILER_(" + "|".join(field.upper() for field in PLACEHOLDER_FIELDS) + ")__")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def placeholder(field: str) -> str:
    """The marker written into the rendered issue where `field` goes, e.g. `__MAILER_NAME__`."""
    if field not in PLACEHOLDER_FIELDS:
        raise ValueError(f"unknown placeholder field {field!r}; expected one of {', '.join(PLACEHOLDER_FIELDS)}")
    return f"__MAILER_{field.upper()}__"


def greeting_name(name: str | None, language: str, *, first: str = "cy") -> str:
    """The subscriber's name, or a friendly word when there is none ("friend", "gyfaill").

    A bilingual email (`language="both"`) has one name field for both greetings, so it
    takes the word of the language shown first (`settings.bilingual_first`).
    """
    name = _CONTROL.sub(" ", name or "").strip()
    if name:
        return name
    return FALLBACK_NAMES.get(first if language == "both" else language, FALLBACK_NAMES["en"])


class Template:
    """One text split at its placeholders: literal parts at even indices, fields at odd ones."""

    __slots__ = ("parts", "slots", "fields")

    def __init__(self, text: str):
        pieces = _PLACEHOLDER.split(text)
        self.parts = pieces
        self.slots = tuple((index, pieces[index].lower()) for index in range(1, len(pieces), 2))
        self.fields = frozenset(field for _, field in self.slots)

    def fill(self, values: Mapping[str, str], convert: Callable[[str], str]) -> str:
        if not self.slots:
            return self.parts[0]
        return "".join(self.pieces(values, convert))

    def pieces(self, values: Mapping[str, str], convert: Callable[[str], str]) -> list[str]:
        """`parts` with each field replaced by its converted value; `fill` joins them."""
        converted = {field: convert(_value(values, field)) for field in self.fields}
        parts = self.parts.copy()
        for index, field in self.slots:
            parts[index] = converted[field]
        return parts


def _value(values: Mapping[str, str], field: str) -> str:
    try:
        return values[field]
    except KeyError:
        raise KeyError(f"no value for placeholder {field!r} (give all of: {', '.join(PLACEHOLDER_FIELDS)})") from None


def _html_value(value: str) -> str:
    return html.escape(value, quote=True)


def _text_value(value: str) -> str:
    return value


def _header_value(value: str) -> str:
    # A subject is a header: no line breaks, whatever a subscriber typed as their name.
    return _CONTROL.sub(" ", value)


class Personaliser:
    """A rendered issue compiled for fast per-recipient filling."""

    def __init__(self, rendered: Rendered):
        self.rendered = rendered
        self._html = Template(rendered.html)
        self._text = Template(rendered.text)
        self._subject = Template(rendered.subject)

    @property
    def fields(self) -> frozenset[str]:
        """The placeholder fields this issue uses."""
        return self._html.fields | self._text.fields | self._subject.fields

    def html(self, values: Mapping[str, str]) -> str:
        """The HTML part with every value HTML-escaped."""
        return self._html.fill(values, _html_value)

    def text(self, values: Mapping[str, str]) -> str:
        return self._text.fill(values, _text_value)

    def html_pieces(self, values: Mapping[str, str]) -> list[str]:
        """The HTML split at its placeholders: literal parts at even indices, escaped values at odd ones.

        For a caller that encodes the literal parts once per send (the delivery engine's message builder).
        """
        return self._html.pieces(values, _html_value)

    def text_pieces(self, values: Mapping[str, str]) -> list[str]:
        """Like `html_pieces`, for the plain text."""
        return self._text.pieces(values, _text_value)

    def subject(self, values: Mapping[str, str]) -> str:
        return self._subject.fill(values, _header_value)
