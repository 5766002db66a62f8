"""The issue as editors write it: pydantic models, also published as JSON Schema.

Every text field is either one string for every language or a mapping with one
text per language (`{en: ..., cy: ...}`); it is validated into a `Localized`.
A validator that finds problems raises them with the language key and the line
inside the text they concern, so `loader` can point the editor at the exact line.
Given the issue's languages as validation context (`{"languages": [...]}`), each
text also reports the languages it lacks, so one pass finds every problem.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    PrivateAttr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from mailer.content import markdown
from mailer.content.urls import url_problem
from mailer.errors import Problem
from mailer.i18n import LANGUAGE_NAMES, LANGUAGES

if TYPE_CHECKING:  # the loader imports this module
    from mailer.content.loader import Locator

Language = Literal["en", "cy"]


@dataclass(frozen=True)
class Localized:
    """A text or address: `common` to every language, or one per language."""

    common: str | None = None
    en: str | None = None
    cy: str | None = None
    kind: Literal["text", "markdown", "url", "image"] = "text"

    def get(self, language: str) -> str | None:
        return getattr(self, language) or self.common

    @property
    def given(self) -> tuple[str, ...]:
        """The languages with a text of their own."""
        return tuple(language for language in LANGUAGES if getattr(self, language) is not None)

    @property
    def is_address(self) -> bool:
        return self.kind in ("url", "image")


def _invalid(problems: list[tuple[str, int, str]]) -> PydanticCustomError:
    """One validation error carrying every (language key, line offset, message) found."""
    return PydanticCustomError("mailer", "{summary}", {"summary": problems[0][2], "problems": problems})


def _as_texts(value: Any) -> dict[str, str]:
    """{"": text} for one text, {lang: text} for a per-language mapping; raises otherwise."""
    if isinstance(value, str):
        if not value.strip():
            raise _invalid([("", 0, "is empty")])
        return {"": value}
    if isinstance(value, dict) and value:
        problems = []
        for key, text in value.items():
            if key not in LANGUAGES:
                problems.append((str(key), 0, f"unknown language {key!r}: use {' or '.join(LANGUAGES)}"))
            elif not isinstance(text, str) or not text.strip():
                problems.append((key, 0, f"the {key} text must be non-empty text{_yaml_hint(text)}"))
        if problems:
            raise _invalid(problems)
        return dict(value)
    if isinstance(value, dict):
        raise _invalid([("", 0, "is an empty mapping; give the text, or {en: ..., cy: ...}")])
    raise _invalid([("", 0, f"expected text, or one text per language like {{en: ..., cy: ...}}{_yaml_hint(value)}")])


def _yaml_hint(value: Any) -> str:
    if isinstance(value, bool):
        return " (YAML reads yes/no/true/false as a yes-or-no value: put the text in quotes)"
    if isinstance(value, (int, float)):
        return " (YAML reads this as a number: put it in quotes)"
    if isinstance(value, (dt.date, dt.datetime)):
        return " (YAML reads this as a date: put it in quotes)"
    if value is None:
        return " (it is empty)"
    return ""


def _localized(kind: Literal["text", "markdown", "url", "image"], empty: bool = False) -> PlainValidator:
    """A validator of one field; `empty`: `""` is a meaningful value (an image's alt text: decorative)."""

    def validate(value: Any, info: ValidationInfo) -> Localized:
        if isinstance(value, Localized):
            return value
        if empty and value == "":
            return Localized(common="", kind=kind)
        texts = _as_texts(value)
        problems = _missing_languages(texts, kind, (info.context or {}).get("languages") or ())
        for key, text in texts.items():
            if kind in ("url", "image"):
                problem = url_problem(text.strip(), image=kind == "image")
                if problem:
                    problems.append((key, 0, problem))
                texts[key] = text.strip()
            elif kind == "markdown":
                problems.extend((key, offset, message) for offset, message in markdown.link_problems(text))
        if problems:
            raise _invalid(problems)
        return Localized(common=texts.pop("", None), kind=kind, **texts)

    return PlainValidator(validate)


def _missing_languages(texts: dict[str, str], kind: str, languages: Any) -> list[tuple[str, int, str]]:
    """The issue's languages this field has no text for: a bilingual issue needs every text in both."""
    if "" in texts:
        if len(languages) > 1 and kind not in ("url", "image"):  # one address may serve both languages; one text not
            return [("", 0, "missing the Welsh text (cy:): give both, as {en: ..., cy: ...}")]
        return []
    what = "address" if kind in ("url", "image") else "text"
    return [("", 0, f"missing the {LANGUAGE_NAMES[language]} {what} ({language}:)")
            for language in languages if language not in texts]


def _json_schema(item: dict[str, Any], description: str) -> WithJsonSchema:
    per_language = {"type": "object", "properties": {language: item for language in LANGUAGES},
                    "additionalProperties": False, "minProperties": 1}
    return WithJsonSchema({"anyOf": [item, per_language], "description": description})


Text = Annotated[Localized, _localized("text"),
                 _json_schema({"type": "string", "minLength": 1}, "Text, or one text per language: {en: ..., cy: ...}")]
Markdown = Annotated[Localized, _localized("markdown"),
                     _json_schema({"type": "string", "minLength": 1}, "Markdown, or Markdown per language: {en: ..., cy: ...}")]
Url = Annotated[Localized, _localized("url"),
                _json_schema({"type": "string", "pattern": "^(https?://|mailto:)"}, "https:, http: or mailto: address, or one per language")]
ImageUrl = Annotated[Localized, _localized("image"),
                     _json_schema({"type": "string", "pattern": "^(https?://|[^:]+$)"},
                                  "https: address of an image, or the path of a file beside the issue; or one per language")]
AltText = Annotated[Localized, _localized("text", empty=True),
                    _json_schema({"type": "string"}, 'What the image shows; "" for a decorative image')]
Topic = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="lower-case topic name")]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Image(Model):
    src: ImageUrl
    alt: AltText | None = Field(default=None, description='What the image shows, for readers who cannot see it; "" when it is only decoration.')
    href: Url | None = Field(default=None, description="Makes the image a link.")


class Button(Model):
    label: Text
    url: Url


class Link(Model):
    title: Text
    url: Url
    note: Text | None = Field(default=None, description="A sentence on what the reader finds there.")


class Event(Model):
    starts: dt.datetime = Field(description="Local time, e.g. 2027-01-12 10:00")
    ends: dt.datetime | None = None
    place: Text

    @model_validator(mode="after")
    def _ends_after_start(self) -> Event:
        if self.ends is not None and self.ends <= self.starts:
            raise ValueError("ends before it starts")
        return self


class Section(Model):
    heading: Text | None = None
    body: Markdown | None = None
    image: Image | None = None
    event: Event | None = None
    links: list[Link] = []
    button: Button | None = None

    @model_validator(mode="after")
    def _has_content(self) -> Section:
        if not (self.heading or self.body or self.image or self.event or self.links):
            raise ValueError("a section needs at least a heading, body, image, event or links")
        return self


class Issue(Model):
    """One newsletter issue. See docs/issues.md for a guided example."""

    title: Text = Field(description="Headline; also the email subject unless `subject` is given.")
    subject: Text | None = None
    date: dt.date
    preheader: Text | None = Field(default=None, description="The line mail programs show after the subject.")
    languages: list[Language] = Field(default=["en"], min_length=1)
    topics: list[Topic] = Field(default=[], description="Send only to subscribers of these topics; empty: everyone.")
    greeting: bool = Field(default=True, description="Open with 'Dear <name>,'.")
    intro: Markdown | None = None
    sections: list[Section] = Field(min_length=1)
    sign_off: Markdown | None = None
    translated: dict[Language, dict[str, str]] = Field(
        default={}, description="Written by `mailer issue translate import`: per language, the field paths of the texts "
                                "translated and a fingerprint of the text each was translated from.")

    _path: Path | None = PrivateAttr(default=None)
    _locator: Locator | None = PrivateAttr(default=None)  # field path -> line and column

    @field_validator("languages")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("lists a language twice")
        return value

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def slug(self) -> str:
        """Short name of the issue: its file name without `.yaml`."""
        return self._path.stem if self._path else self.date.isoformat()

    def problem(self, loc: tuple[str | int, ...], message: str, line_offset: int = 0) -> Problem:
        """A finding about the field at `loc`, located in the file when the issue was loaded from one."""
        if self._locator is not None:
            return self._locator.problem(loc, message, line_offset)
        return Problem(str(self._path or ""), 1, 1, field_path(loc), message)

    def localized(self) -> Iterator[tuple[tuple[str | int, ...], Localized]]:
        """Every text and address of the issue with its field path."""
        yield from _localized_in(self, ())


def _localized_in(value: Any, loc: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], Localized]]:
    if isinstance(value, Localized):
        yield loc, value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _localized_in(getattr(value, name), (*loc, name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _localized_in(item, (*loc, index))


def field_path(loc: tuple[str | int, ...]) -> str:
    """`sections[1].button.url` from ('sections', 1, 'button', 'url')."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


_PATH_PART = re.compile(r"\[(\d+)\]|\.?([A-Za-z_]+)")


def parse_field_path(text: str) -> tuple[str | int, ...] | None:
    """('sections', 1, 'body') from `sections[1].body`; None when `text` is not such a path."""
    parts: list[str | int] = []
    position = 0
    while position < len(text):
        match = _PATH_PART.match(text, position)
        if not match or (match.group(2) is not None and text[position] == "." and not parts):
            return None
        parts.append(int(match.group(1)) if match.group(1) is not None else match.group(2))
        position = match.end()
    return tuple(parts) if parts and field_path(tuple(parts)) == text else None


FIELD_NAMES = sorted({name for model in (Issue, Section, Image, Button, Link, Event) for name in model.model_fields})


def json_schema() -> dict[str, Any]:
    schema = Issue.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "mailer newsletter issue"
    return schema
