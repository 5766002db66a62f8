"""An issue resolved for one language: the plain values the templates and the text part read.

Choosing the language's text, rendering Markdown to safe HTML and to plain text,
and formatting dates (Babel) happen here once, so the HTML and the plain-text
renderings cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from babel.dates import format_date, format_datetime, format_time
from markupsafe import Markup

from mailer.config import Settings
from mailer.content import markdown
from mailer.content.images import COLUMN_WIDTH, MediaImage
from mailer.content.personalise import PLACEHOLDER_FIELDS, if_given, placeholder
from mailer.content.schema import Event, Image, Issue, Localized
from mailer.i18n import LOCALES, translations

# Links to the subscriber pages and the web version; the pages speak the language `?lang=` names.
PAGE_LINKS = ("unsubscribe_url", "preferences_url", "web_url")


@dataclass(frozen=True)
class Prose:
    """Markdown rendered both ways."""

    html: Markup
    text: str


@dataclass(frozen=True)
class ImageView:
    src: str
    alt: str
    href: str | None
    width: int | None = None  # set for a local image narrower than the column, which is never enlarged


@dataclass(frozen=True)
class LinkView:
    title: str
    url: str
    note: str | None


@dataclass(frozen=True)
class ButtonView:
    label: str
    url: str


@dataclass(frozen=True)
class EventView:
    when: str
    place: str


@dataclass(frozen=True)
class SectionView:
    heading: str | None
    body: Prose | None
    image: ImageView | None
    event: EventView | None
    links: list[LinkView]
    button: ButtonView | None


@dataclass(frozen=True)
class IssueView:
    lang: str
    title: str
    subject: str
    preheader: str
    date: str
    greeting: str  # "Dear <name>," with its fallback, or "" for none
    intro: Prose | None
    sections: list[SectionView]
    sign_off: Prose | None
    list_name: str
    postal_address: str
    placeholders: dict[str, str]
    anchor: str  # id at the top of this language's block, where a bilingual email's language note links


def issue_view(issue: Issue, settings: Settings, language: str, media: Mapping[str, MediaImage] | None = None) -> IssueView:
    """`issue` in `language`; `media` holds its local images by address as written (`images.publish`)."""
    media = media or {}

    def text(value: Localized | None) -> str | None:
        return value.get(language) if value is not None else None

    def markdown_image(src: str) -> dict[str, str]:
        # Every image gets a width for Outlook; one from elsewhere, of unknown size, fills the column as `image:` does.
        local = media.get(src)
        if local is None:
            return {"width": str(COLUMN_WIDTH)}
        width, height = local.shown()
        return {"src": local.url(settings), "width": str(width), "height": str(height)}

    def prose(value: Localized | None) -> Prose | None:
        source = text(value)
        return Prose(markdown.to_html(source, markdown_image), markdown.to_text(source)) if source else None

    def image_view(image: Image) -> ImageView:
        src = text(image.src) or ""
        local = media.get(src)
        narrow = local.width if local and local.width < COLUMN_WIDTH else None
        return ImageView(local.url(settings) if local else src, text(image.alt) or "", text(image.href), narrow)

    sections = []
    for section in issue.sections:
        sections.append(SectionView(
            heading=text(section.heading),
            body=prose(section.body),
            image=image_view(section.image) if section.image else None,
            event=EventView(event_time(section.event, language), text(section.event.place) or "") if section.event else None,
            links=[LinkView(text(link.title) or "", text(link.url) or "", text(link.note)) for link in section.links],
            button=ButtonView(text(section.button.label) or "", text(section.button.url) or "") if section.button else None,
        ))
    title = text(issue.title) or ""
    return IssueView(
        lang=language,
        title=title,
        subject=text(issue.subject) or title,
        preheader=text(issue.preheader) or "",
        date=format_date(issue.date, "long", locale=LOCALES[language]),
        greeting=greeting(language) if issue.greeting else "",
        intro=prose(issue.intro),
        sections=sections,
        sign_off=prose(issue.sign_off),
        list_name=settings.text("list_name", language),
        postal_address=settings.text("postal_address", language),
        placeholders=_placeholders(language),
        anchor=f"mailer-{language}",
    )


def greeting(language: str) -> str:
    """"Dear <name>," in `language`, or "Dear reader," for a reader whose name we do not have
    ("Dear friend," costs 2.7 points in SpamAssassin: DEAR_FRIEND)."""
    _ = translations(language).gettext
    return if_given(_("Dear %(name)s,") % {"name": placeholder("name")}, "name", otherwise=_("Dear reader,"))


def _placeholders(language: str) -> dict[str, str]:
    """The per-recipient markers, with the links to our own pages asking for this block's language:
    whoever reads the English half of a bilingual email gets English pages, whatever they chose."""
    markers = {field: placeholder(field) for field in PLACEHOLDER_FIELDS}
    for field in PAGE_LINKS:
        markers[field] += f"?lang={language}"
    return markers


def event_time(event: Event, language: str) -> str:
    """`Tuesday 12 January 2027, 10:00–15:00` in the reader's language."""
    locale = LOCALES[language]
    starts = format_datetime(event.starts, "EEEE d MMMM y, HH:mm", locale=locale)
    if event.ends is None:
        return starts
    if event.ends.date() == event.starts.date():
        return f"{starts}–{format_time(event.ends, 'HH:mm', locale=locale)}"
    return f"{starts} – {format_datetime(event.ends, 'EEEE d MMMM y, HH:mm', locale=locale)}"
