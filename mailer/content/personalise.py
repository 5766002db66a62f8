"""Per-recipient fields, filled in after the expensive rendering.

A rendered issue carries placeholders such as `__MAILER_EMAIL__`: plain letters and
underscores, so Jinja, MJML and premailer pass them through untouched (premailer
would URL-encode `{{ name }}` in an href). The `Personaliser` splits each part once
at the placeholders; a recipient then costs one join. Values are inserted as data,
never parsed again: a name like `{{ 7*7 }}` or `<script>` stays text.

Two kinds of marker need a little more than a lookup, still without parsing anything:
- the name in each language block is marked with its language (`__MAILER_NAME_CY__`), so
  a reader without a name is greeted "Annwyl gyfaill," and "Dear friend," in one email;
- `__MAILER_IF_EMAIL__ ... __MAILER_ENDIF__` keeps what it holds only when the address is
  given: the web version has no recipient, so it leaves "...with the address ." out.
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
_FIELD = "|".join(field.upper() for field in PLACEHOLDER_FIELDS)
_MARKER = re.compile(
    f"__MAILER_IF_(?P<if>{_FIELD})__(?P<content>.*?)__MAILER_ENDIF__"
    f"|__MAILER_(?:NAME_(?P<name_lang>{'|'.join(language.upper() for language in FALLBACK_NAMES)})|(?P<field>{_FIELD}))__",
    re.DOTALL,
)
_ROOT_LANG = re.compile(r'<html\b[^>]*?\slang="(\w+)"')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")

Convert = Callable[[str], str]


def placeholder(field: str, language: str | None = None) -> str:
    """The marker written into the rendered issue where `field` goes, e.g. `__MAILER_EMAIL__`.

    `placeholder("name", "cy")` is the name in a Welsh block: it falls back to the Welsh word.
    """
    if field not in PLACEHOLDER_FIELDS:
        raise ValueError(f"unknown placeholder field {field!r}; expected one of {', '.join(PLACEHOLDER_FIELDS)}")
    if language is None:
        return f"__MAILER_{field.upper()}__"
    if field != "name" or language not in FALLBACK_NAMES:
        raise ValueError(f"only the name has a placeholder per language ({', '.join(FALLBACK_NAMES)}), not {field!r} in {language!r}")
    return f"__MAILER_NAME_{language.upper()}__"


def optional(content: str, field: str) -> str:
    """`content` marked to be kept only for a recipient whose `field` is not empty.

    What it holds becomes one per-recipient value, so it should not span lines (the delivery
    engine turns line breaks into CRLF in the literal parts only).
    """
    placeholder(field)  # refuses an unknown field
    return f"__MAILER_IF_{field.upper()}__{content}__MAILER_ENDIF__"


def greeting_name(name: str | None, language: str, *, first: str = "cy") -> str:
    """The subscriber's name on one line, or a friendly word when there is none ("friend", "gyfaill").

    A bilingual email (`language="both"`) gets the name alone, possibly empty: the `Personaliser`
    then greets each language block in its own words. Callers may as well pass the bare name;
    `first` is only accepted so that callers written for one word per email keep working.
    """
    name = _one_line(name or "")
    if name or language == "both":
        return name
    return FALLBACK_NAMES.get(language, FALLBACK_NAMES["en"])


def _one_line(value: str) -> str:
    return _CONTROL.sub(" ", value).strip()


class Template:
    """One text split at its markers: literal parts at even indices, per-recipient values at odd ones.

    Each slot has a key: a field (`email`), the name in a language (`name_cy`; an unmarked name is
    in `language`, the document's), or the number of an optional section in `sections`.
    """

    __slots__ = ("parts", "slots", "plain", "names", "sections", "fields")

    def __init__(self, text: str, language: str = "en"):
        self.parts: list[str] = []
        self.sections: dict[int, tuple[str, Template]] = {}
        slots: list[tuple[int, str | int]] = []
        start = 0
        for match in _MARKER.finditer(text):
            self.parts.append(text[start:match.start()])
            key: str | int
            if match["if"]:
                key = len(self.sections)
                self.sections[key] = (match["if"].lower(), Template(match["content"], language))
            elif match["name_lang"] or match["field"] == "NAME":
                key = f"name_{(match['name_lang'] or language).lower()}"
            else:
                key = match["field"].lower()
            slots.append((len(self.parts), key))
            self.parts.append("")  # the slot's value goes here
            start = match.end()
        self.parts.append(text[start:])
        self.slots = tuple(slots)
        keys = {key for _, key in slots if isinstance(key, str)}
        self.names = tuple((key, key.removeprefix("name_")) for key in keys if key.startswith("name_"))
        self.plain = tuple(key for key in keys if not key.startswith("name_"))
        fields = set(self.plain) | ({"name"} if self.names else set())
        for field, section in self.sections.values():
            fields |= {field} | section.fields
        self.fields = frozenset(fields)

    def fill(self, values: Mapping[str, str], convert: Convert) -> str:
        if not self.slots:
            return self.parts[0]
        return "".join(self.pieces(values, convert))

    def pieces(self, values: Mapping[str, str], convert: Convert) -> list[str]:
        """`parts` with each slot replaced by its converted value; `fill` joins them."""
        try:
            converted: dict[str | int, str] = {key: convert(values[key]) for key in self.plain}
            if self.names:  # the name, or the word of each slot's language
                name = _one_line(values["name"])
                for key, language in self.names:
                    converted[key] = convert(name or FALLBACK_NAMES[language])
        except KeyError as missing:
            raise _no_value(missing.args[0]) from None
        for number, (field, section) in self.sections.items():
            if field not in values:
                raise _no_value(field)
            converted[number] = section.fill(values, convert) if values[field].strip() else ""
        parts = self.parts.copy()
        for index, key in self.slots:
            parts[index] = converted[key]
        return parts


def _no_value(field: str) -> KeyError:
    return KeyError(f"no value for placeholder {field!r} (give all of: {', '.join(PLACEHOLDER_FIELDS)})")


def _html_value(value: str) -> str:
    return html.escape(value, quote=True)


def _text_value(value: str) -> str:
    return value


def _header_value(value: str) -> str:
    # A subject is a header: no line breaks, whatever a subscriber typed as their name.
    return _CONTROL.sub(" ", value)


def _document_language(rendered: Rendered) -> str:
    """The language an unmarked name falls back to: the email's, or for a bilingual one the first."""
    if rendered.language in FALLBACK_NAMES:
        return rendered.language
    found = _ROOT_LANG.search(rendered.html)
    return found.group(1) if found and found.group(1) in FALLBACK_NAMES else "en"


class Personaliser:
    """A rendered issue compiled for fast per-recipient filling."""

    def __init__(self, rendered: Rendered):
        self.rendered = rendered
        language = _document_language(rendered)
        self._html = Template(rendered.html, language)
        self._text = Template(rendered.text, language)
        self._subject = Template(rendered.subject, language)

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
