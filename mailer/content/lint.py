"""`mailer issue lint`: things a valid issue may still get wrong, each one an editor can act on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mailer.config import Settings, config_path
from mailer.content import images, markdown
from mailer.content.build import sample_values
from mailer.content.personalise import Personaliser
from mailer.content.render import render_issue
from mailer.content.schema import Issue, Localized
from mailer.content.translation import out_of_date_warnings
from mailer.content.urls import is_relative
from mailer.errors import Problem
from mailer.i18n import LANGUAGE_NAMES, other_language
from mailer.publiclinks import base_url_problem

if TYPE_CHECKING:
    from mailer.store.models import Topic

GMAIL_CLIP_BYTES = 102 * 1024
MAX_SUBJECT = 70
VAGUE_LINK_TEXTS = {"click here", "click", "here", "this link", "link", "read more", "more", "cliciwch yma", "cliciwch", "yma"}


def lint_issue(issue: Issue, settings: Settings) -> list[Problem]:
    """Warnings for a valid issue, in file order, then the size of each rendered variant."""
    image_warnings, images_ok = _image_warnings(issue)
    warnings = _field_warnings(issue) + image_warnings
    warnings.sort(key=lambda problem: (problem.line, problem.column))
    unusable_links = base_url_problem(settings.base_url)  # a setting, not the issue, but it breaks every link
    # An issue whose images cannot be read cannot be rendered to be measured; the warnings above say why.
    return (warnings + (size_warnings(issue, settings) if images_ok else [])
            + ([issue.problem((), unusable_links)] if unusable_links else []))


def _image_warnings(issue: Issue) -> tuple[list[Problem], bool]:
    """Local images that are missing, unreadable or heavy even once resized; and whether all can be used."""
    prepared, warnings = images.collect(issue)
    for image in images.local_images(issue):
        ready = prepared.get(image.src)
        if ready and len(ready.data) > images.HEAVY_BYTES:
            warnings.append(issue.problem(image.loc, f"image {image.src!r} is {len(ready.data) // 1024} KB even resized "
                                          f"for email; crop it or save it as JPEG (under {images.HEAVY_BYTES // 1024} KB "
                                          f"loads quickly on a phone)", image.line_offset))
    return warnings, len(prepared) == len({image.src for image in images.local_images(issue)})


def _field_warnings(issue: Issue) -> list[Problem]:
    warnings = []
    if issue.preheader is None:
        warnings.append(issue.problem(("preheader",), "no preheader: mail programs show the first words of the email instead"))
    for language in issue.languages:
        subject = (issue.subject or issue.title).get(language) or ""
        if len(subject) > MAX_SUBJECT:
            field = "subject" if issue.subject else "title"
            warnings.append(issue.problem((field, language) if _own(issue, field, language) else (field,),
                                          f"the subject is {len(subject)} characters; phones show about 40, keep it under {MAX_SUBJECT}"))
    for section_index, section in enumerate(issue.sections):
        if section.image and section.image.alt is None:  # `alt: ""` says the image is decoration
            warnings.append(issue.problem(("sections", section_index, "image"), "image without alt text: say what it shows for readers who cannot see it"))
    return warnings + _text_warnings(issue)


def _text_warnings(issue: Issue) -> list[Problem]:
    """Each text and address as written in each language: addresses, links, images, link texts, translations."""
    warnings = []
    for loc, value in issue.localized():
        warnings.extend(_translation_warnings(issue, loc, value))
        for language in value.given or issue.languages[:1]:
            text = value.get(language) or ""
            where = (*loc, language) if language in value.given else loc
            if value.is_address:
                messages = _address_warnings(text, image=value.kind == "image")
                warnings.extend(issue.problem(where, message) for message in messages)
            elif value.kind == "markdown":
                for link in markdown.links(text):
                    for message in _address_warnings(link.url, image=link.image):
                        warnings.append(issue.problem(where, f"link {link.url!r}: {message}", link.line_offset))
                    if link.image and not link.text.strip():
                        warnings.append(issue.problem(where, f"image {link.url!r} without alt text: write ![what it shows](address)", link.line_offset))
                    elif not link.image and _vague(link.text):
                        warnings.append(issue.problem(where, f"link text {link.text!r} says nothing on its own; name where the link goes", link.line_offset))
            elif loc[-1] in ("label", "title") and _vague(text):
                warnings.append(issue.problem(where, f"link text {text!r} says nothing on its own; name where the link goes"))
    return warnings + out_of_date_warnings(issue)


def _own(issue: Issue, field: str, language: str) -> bool:
    value = getattr(issue, field)
    return isinstance(value, Localized) and language in value.given


def _vague(text: str) -> bool:
    return text.strip().strip(".!:").lower() in VAGUE_LINK_TEXTS


def _address_warnings(url: str, image: bool = False) -> list[str]:
    if url.lower().startswith("http://"):
        return ["http:// link: use https:// (readers' mail programs warn about insecure links)"]
    if is_relative(url) and not image:  # an image without a scheme is a file beside the issue
        return ["relative link: it cannot work in an email; write the full https:// address"]
    return []


def _translation_warnings(issue: Issue, loc: tuple[str | int, ...], value: Localized) -> list[Problem]:
    warnings = []
    for language in value.given:
        if language not in issue.languages:
            warnings.append(issue.problem((*loc, language), f"has {LANGUAGE_NAMES[language]} text, but `languages` does not list {language}: it is never sent"))
    if not value.is_address and {"en", "cy"} <= set(issue.languages) and value.en and value.cy \
            and value.en.strip().casefold() == value.cy.strip().casefold():
        warnings.append(issue.problem((*loc, "cy"), "untranslated: the Welsh text is the same as the English"))
    return warnings


def list_text_warnings(settings: Settings, topics: Sequence[Topic] | None) -> list[str]:
    """The list's own texts readers see (settings, topics) that lack a language the list is sent in."""
    languages = settings.languages if len(settings.languages) > 1 else []
    form = ", ".join(f'{language} = "..."' for language in languages)
    warnings = []
    for name in dict.fromkeys(name for language in languages for name in settings.missing_texts(language)):
        value = getattr(settings, name)
        what = ("one text for every language" if isinstance(value, str) else
                f"no {' and '.join(LANGUAGE_NAMES[code] for code in languages if code not in value)} text")
        warnings.append(f"{_setting_at(name)}: {name}: {what}; give each language its own: {name} = {{{form}}}")
    for topic in topics or ():
        for language in languages:
            warnings.extend(f"topic {topic.name}: no {LANGUAGE_NAMES[language]} {field}; add it with: "
                            f'mailer topics edit {topic.name} --{field}{"" if language == "en" else "-" + language} "..."'
                            for field in _missing_topic_texts(topic, language))
    return warnings


def _missing_topic_texts(topic: Topic, language: str) -> list[str]:
    """"label" when readers of `language` see another language's label (or the bare name), "description" likewise."""
    def text(field: str, code: str) -> str:
        value: str = getattr(topic, field if code == "en" else f"{field}_{code}")
        return value

    other = other_language(language)
    described = text("description", "en") or text("description", "cy")
    missing = []
    if not text("label", language) and (text("label", other) or not described):
        missing.append("label")
    if not text("description", language) and text("description", other):
        missing.append("description")
    return missing


def _setting_at(name: str) -> str:
    """`mailer.toml:LINE` of a setting, or just the file when it is not written there."""
    path = config_path()
    try:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.split("=")[0].strip() == name:
                return f"{path}:{number}"
    except (OSError, UnicodeDecodeError):
        pass
    return str(path)


def size_warnings(issue: Issue, settings: Settings) -> list[Problem]:
    """Gmail clips an email whose HTML is over 102 KB, hiding the rest, footer included."""
    warnings = []
    variants = [*issue.languages, "both"] if len(issue.languages) > 1 else issue.languages
    for language in variants:
        rendered = render_issue(issue, settings, language)
        size = len(Personaliser(rendered).html(sample_values(settings, language)).encode("utf-8"))
        if size > GMAIL_CLIP_BYTES:
            warnings.append(issue.problem((), f"the {language} email's HTML is {size / 1024:.0f} KB; Gmail clips emails over "
                                              f"{GMAIL_CLIP_BYTES // 1024} KB (shorten it, or move content to the web)"))
    return warnings
