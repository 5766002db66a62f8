"""Rendering an issue, once per language: Jinja -> MJML -> HTML -> inlined CSS, plus plain text.

This is the expensive step (about a hundred milliseconds); it runs once per issue
and language, never per recipient. Nothing here touches the network: MJML gets
no web fonts, premailer may not fetch, and templates may not use `@import` or
external stylesheets.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError, TemplateSyntaxError
from markupsafe import Markup

from mailer.config import Settings
from mailer.content import images
from mailer.content.personalise import if_given
from mailer.content.schema import Issue
from mailer.content.text import render_text
from mailer.content.view import IssueView, issue_view
from mailer.errors import IssueError, RenderError
from mailer.i18n import LANGUAGE_NAMES, install, other_language

RENDER_LANGUAGES = ("en", "cy", "both")
LAYOUT = "layout.mjml.j2"
BLOCK = "issue.mjml.j2"
LANGUAGE_NOTE = "language_note.mjml.j2"
_LANG_CLASS = re.compile(r'class="mailer-lang-(en|cy)"')
_NETWORK_CSS = re.compile(r"@import|<link\b[^>]*stylesheet", re.IGNORECASE)
# MJML's own reset rules belong in <head> (MJML never inlines them); inlined, they add ~15 % to every email.
_MJML_RESET = '<style type="text/css">\n#outlook a'


@dataclass(frozen=True)
class Rendered:
    """One language variant of an issue, with placeholders where each recipient's values go."""

    language: str
    subject: str
    preheader: str
    html: str
    text: str
    mjml: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rendered:
        return cls(**{field.name: data[field.name] for field in fields(cls)})


def render_issue(issue: Issue, settings: Settings, language: str = "en") -> Rendered:
    """Render `issue` in "en", "cy" or "both" (one email, `settings.bilingual_first` first).

    Local images are published on the way (`images.publish`): an issue that renders can be sent.
    """
    languages = variant_languages(issue, settings, language)
    media = images.publish(issue, settings)  # local images, resized and written to media_dir
    views = [issue_view(issue, settings, lang, media) for lang in languages]
    mjml_source = render_mjml(views, settings.templates_path)
    html = _mark_languages(inline_css(mjml_to_html(mjml_source)))
    html = images.set_heights(html, {image.url(settings): image for image in media.values()})
    return Rendered(
        language=language,
        subject=" / ".join(view.subject for view in views),
        preheader=joined_preheader(views),
        html=html,
        text=render_text(views),
        mjml=mjml_source,
    )


def variant_languages(issue: Issue, settings: Settings, language: str) -> list[str]:
    """The languages shown in a variant, in order; refuses languages the issue is not written in."""
    if language not in RENDER_LANGUAGES:
        raise ValueError(f"unknown language {language!r}; expected one of {', '.join(RENDER_LANGUAGES)}")
    if language == "both":
        first = settings.bilingual_first
        wanted = [first, other_language(first)]
    else:
        wanted = [language]
    missing = [lang for lang in wanted if lang not in issue.languages]
    if missing:
        names = " and ".join(LANGUAGE_NAMES[lang] for lang in missing)
        declared = ", ".join(issue.languages)
        raise IssueError([issue.problem(("languages",), f"the issue is not written in {names} (languages: {declared})")])
    return wanted


def render_mjml(views: list[IssueView], templates: Path) -> str:
    """The MJML document: one block per language, with a note pointing to the second one."""
    first = views[0].lang
    blocks = []
    if len(views) > 1:
        blocks.append(_render(templates, views[1].lang, LANGUAGE_NOTE, {"lang": views[1].lang, "anchor": views[1].anchor}))
    blocks.extend(_render(templates, view.lang, BLOCK, vars(view)) for view in views)
    return _render(templates, first, LAYOUT, {
        "lang": first,
        "title": views[0].title,  # <title> and the aria-label MJML makes of it hold no markup to mark a second language
        "preheader": joined_preheader(views),
        "blocks": [Markup(block) for block in blocks],
    })


def joined_preheader(views: list[IssueView]) -> str:
    """The preview text inboxes show after the subject: every language's, first language first."""
    return " / ".join(view.preheader for view in views if view.preheader)


def mjml_to_html(source: str) -> str:
    import mjml  # imported here, as premailer is below: only commands that render pay for them

    try:
        # fonts={}: without it mjml-python links Google Fonts, which premailer would fetch.
        return mjml.mjml2html(source, fonts={})
    except ValueError as exc:
        raise RenderError(f"MJML could not be rendered: {exc}") from None


def inline_css(html: str) -> str:
    """Move CSS into style attributes, keeping @media rules (and their !important) in <style>."""
    import cssutils
    from premailer import Premailer

    if _NETWORK_CSS.search(html):
        raise RenderError("templates may not use CSS @import, <link> stylesheets or mj-font: emails load nothing from the network")
    cssutils.log.setLevel(logging.CRITICAL)  # premailer's CSS parser warns about every MJML hack
    inlined: str = Premailer(
        html.replace(_MJML_RESET, _MJML_RESET.replace("<style", '<style data-premailer="ignore"'), 1),
        allow_network=False,
        strip_important=False,  # MJML's responsive columns need !important inside @media
        keep_style_tags=False,
        remove_classes=False,
        disable_link_rewrites=True,
        disable_validation=True,
        # Keep MJML's width="544" on images: Outlook for Windows sizes images by the attribute and ignores CSS.
        disable_basic_attributes=["width", "height"],
        cssutils_logging_level=logging.CRITICAL,
    ).transform(pretty_print=False)
    return inlined if inlined.lstrip().lower().startswith("<!doctype") else "<!doctype html>\n" + inlined


def _mark_languages(html: str) -> str:
    """`lang` on every language block, so screen readers switch voice (MJML drops unknown attributes)."""
    return _LANG_CLASS.sub(r'class="mailer-lang-\1" lang="\1"', html)


def _render(templates: Path, language: str, name: str, context: dict[str, Any]) -> str:
    try:
        return environment(str(templates), language).get_template(name).render(context)
    except TemplateSyntaxError as exc:
        raise RenderError(f"{exc.filename or name}:{exc.lineno}: template error: {exc.message}") from None
    except TemplateError as exc:
        raise RenderError(f"{name}: template error: {exc.message}") from None


@lru_cache(maxsize=16)
def environment(templates: str, language: str) -> Environment:
    """The Jinja environment of `templates/email` speaking `language` (reloads changed templates)."""
    env = Environment(
        loader=FileSystemLoader(Path(templates) / "email"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    install(env, language)
    # {% filter if_given("email") %}...{% endfilter %}: left out for a recipient without an address.
    env.filters["if_given"] = lambda content, field: Markup(if_given(content, field))
    return env
