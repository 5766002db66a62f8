"""Per-recipient fields, filled in after the expensive rendering.

A rendered issue carries placeholders such as `__MAILER_EMAIL__`: plain letters and
underscores, so Jinja, MJML and premailer pass them through untouched (premailer
would URL-encode `{{ name }}` in an href). The `Personaliser` splits each part once
at the placeholders; a recipient then costs one join. Values are inserted as data,
never parsed again: a name like `{{ 7*7 }}` or `<script>` stays text.

One marker chooses between two texts by whether a value is given:
`__MAILER_IF_NAME__Dear __MAILER_NAME__,__MAILER_ELSE__Dear reader,__MAILER_ENDIF__`.
The templates write both texts, in each language block's own words, so a reader without
a name is greeted "Annwyl ddarllenydd," and "Dear reader," in one email; and the web version,
which has no recipient, leaves out the footer's "...with the address ." The chosen text
is one per-recipient value, so the literal parts around it never depend on the values.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailer.content.render import Rendered

PLACEHOLDER_FIELDS = ("name", "email", "unsubscribe_url", "preferences_url", "web_url")
_FIELD = "|".join(field.upper() for field in PLACEHOLDER_FIELDS)
_MARKER = re.compile(
    f"__MAILER_IF_(?P<if>{_FIELD})__(?P<then>.*?)(?:__MAILER_ELSE__(?P<otherwise>.*?))?__MAILER_ENDIF__"
    f"|__MAILER_(?P<field>{_FIELD})__",
    re.DOTALL,
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")

Convert = Callable[[str], str]


def placeholder(field: str) -> str:
    """The marker written into the rendered issue where `field` goes, e.g. `__MAILER_EMAIL__`."""
    if field not in PLACEHOLDER_FIELDS:
        raise ValueError(f"unknown placeholder field {field!r}; expected one of {', '.join(PLACEHOLDER_FIELDS)}")
    return f"__MAILER_{field.upper()}__"


def if_given(text: str, field: str, otherwise: str = "") -> str:
    """`text` for a recipient whose `field` is not empty, `otherwise` for one whose is.

    Whichever is chosen becomes one per-recipient value, so neither should span lines
    (the delivery engine turns line breaks into CRLF in the literal parts only).
    """
    marker = placeholder(field).removeprefix("__MAILER_")  # refuses an unknown field
    if otherwise:
        return f"__MAILER_IF_{marker}{text}__MAILER_ELSE__{otherwise}__MAILER_ENDIF__"
    return f"__MAILER_IF_{marker}{text}__MAILER_ENDIF__"


def _one_line(value: str) -> str:
    return value if value.isprintable() else _CONTROL.sub(" ", value)


@dataclass(frozen=True)
class _Choice:
    """An `if_given` marker, compiled: `then` when `field` has a value, else `otherwise`."""

    field: str
    then: Template
    otherwise: Template


class Template:
    """One text split at its markers: literal parts at even indices, per-recipient values at odd ones."""

    __slots__ = ("fields", "parts", "slots")

    def __init__(self, text: str):
        self.parts: list[str] = []
        slots: list[str | _Choice] = []
        start = 0
        for match in _MARKER.finditer(text):
            self.parts.append(text[start:match.start()])
            self.parts.append("")  # the slot's value goes here
            if match["if"]:
                slots.append(_Choice(match["if"].lower(), Template(match["then"]), Template(match["otherwise"] or "")))
            else:
                slots.append(match["field"].lower())
            start = match.end()
        self.parts.append(text[start:])
        self.slots = tuple(slots)
        fields: set[str] = set()
        for slot in slots:
            fields |= {slot} if isinstance(slot, str) else {slot.field, *slot.then.fields, *slot.otherwise.fields}
        self.fields: frozenset[str] = frozenset(fields)  # every field the text needs, so each is converted once

    def fill(self, values: Mapping[str, str], convert: Convert) -> str:
        if not self.slots:
            return self.parts[0]
        return "".join(self.pieces(values, convert))

    def pieces(self, values: Mapping[str, str], convert: Convert) -> list[str]:
        """`parts` with each slot replaced by its converted value; `fill` joins them."""
        try:
            converted = {field: convert(values[field]) for field in self.fields}
        except KeyError as missing:
            raise KeyError(f"no value for placeholder {missing.args[0]!r} "
                           f"(give all of: {', '.join(PLACEHOLDER_FIELDS)})") from None
        return self._pieces(values, converted)

    def _pieces(self, values: Mapping[str, str], converted: dict[str, str]) -> list[str]:
        parts = self.parts.copy()
        for index, slot in enumerate(self.slots):
            if isinstance(slot, str):
                parts[2 * index + 1] = converted[slot]
            else:
                chosen = slot.then if values[slot.field].strip() else slot.otherwise
                parts[2 * index + 1] = "".join(chosen._pieces(values, converted))
        return parts


def _html_value(value: str) -> str:
    return html.escape(_one_line(value), quote=True)


class Personaliser:
    """A rendered issue compiled for fast per-recipient filling.

    Every value goes in on one line, whatever a subscriber typed as their name: the
    subject is a header, and the delivery engine writes CRLF only in the literal parts.
    """

    def __init__(self, rendered: Rendered):
        self.rendered = rendered
        self._html = Template(rendered.html)
        self._text = Template(rendered.text)
        self._subject = Template(rendered.subject)

    def html(self, values: Mapping[str, str]) -> str:
        """The HTML part with every value HTML-escaped."""
        return self._html.fill(values, _html_value)

    def text(self, values: Mapping[str, str]) -> str:
        return self._text.fill(values, _one_line)

    def subject(self, values: Mapping[str, str]) -> str:
        return self._subject.fill(values, _one_line)

    def html_pieces(self, values: Mapping[str, str]) -> list[str]:
        """The HTML split at its placeholders: literal parts at even indices, escaped values at odd ones.

        For a caller that encodes the literal parts once per send (the delivery engine's message builder).
        """
        return self._html.pieces(values, _html_value)

    def text_pieces(self, values: Mapping[str, str]) -> list[str]:
        """Like `html_pieces`, for the plain text."""
        return self._text.pieces(values, _one_line)
