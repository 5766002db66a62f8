"""Rendering the pages in the reader's language.

The language of a page is, in order: `?lang=` (the switch link on every page),
the subscriber's own choice, the browser's Accept-Language, the list default.
One Jinja environment per language, with that language's catalogue installed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from mailer import i18n
from mailer.config import Settings

LANGUAGES = i18n.LANGUAGES


class Pages:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        loader = jinja2.FileSystemLoader(settings.templates_path / "web")
        self._environments = {language: self._environment(loader, language) for language in LANGUAGES}

    def _environment(self, loader: jinja2.BaseLoader, language: str) -> jinja2.Environment:
        env = jinja2.Environment(loader=loader, autoescape=jinja2.select_autoescape(["html"]),
                                 undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        env.policies["ext.i18n.trimmed"] = True  # a {% trans %} block's msgid is its text on one line
        i18n.install(env, language)
        env.globals.update(settings=self.settings, lang=language, list_name=self.settings.text("list_name", language),
                           postal_address=self.settings.text("postal_address", language))
        return env

    def language(self, request: Request, preferred: str | None = None) -> str:
        asked = request.query_params.get("lang")
        if asked in LANGUAGES:
            return asked
        if preferred == "both":
            preferred = self.settings.bilingual_first
        if preferred in LANGUAGES:
            return preferred
        for tag in _accepted(request.headers.get("accept-language", "")):
            if tag in LANGUAGES:
                return tag
        return self.settings.default_language

    def gettext(self, language: str) -> Callable[..., str]:
        """The `_` of `language` for text made in Python (form errors), formatting like the templates' `_`."""
        translate = i18n.translations(language).gettext

        def _(message: str, **variables: Any) -> str:
            return translate(message) % variables if variables else translate(message)
        return _

    def email(self, language: str, name: str, **context: Any) -> tuple[str, str]:
        """Subject and text of a confirmation email; for "both", the two languages one after the other."""
        if language not in LANGUAGES:
            first = self.settings.bilingual_first
            parts = [self.email(first, name, **context), self.email(i18n.other_language(first), name, **context)]
            return " / ".join(subject for subject, _ in parts), "\n\n* * *\n\n".join(text for _, text in parts)
        module = self._environments[language].get_template(name).make_module(context)
        subject = vars(module)["subject"]  # the template's `{% set subject %}`, exported as a module attribute
        return str(subject).strip(), str(module).strip() + "\n"

    def fragment(self, language: str, name: str, context: Mapping[str, Any]) -> str:
        """A template rendered outside any request (the form snippet for other websites)."""
        return self._environments[language].get_template(name).render(context)

    @staticmethod
    def path_of(request: Request) -> str:
        """This page's path, to link to from the page: %-encoded, and never starting with `//`,
        which a browser would read as another site (`//evil.example/x` becomes `/evil.example/x`)."""
        return "/" + quote(request.scope["path"]).lstrip("/")

    def render(self, request: Request, language: str, name: str, context: Mapping[str, Any] | None = None,
               *, status: int = 200, headers: Mapping[str, str] | None = None) -> HTMLResponse:
        other = i18n.other_language(language)
        here = self.path_of(request)
        html = self._environments[language].get_template(name).render(
            {**(context or {}), "request": request, "other_lang": other, "switch_url": f"{here}?lang={other}",
             "here": f"{here}?lang={language}"})
        return HTMLResponse(html, status_code=status, headers={"content-language": language, **(headers or {})})


def _accepted(header: str) -> list[str]:
    """Primary language tags of an Accept-Language header, most wanted first."""
    weighted = []
    for position, item in enumerate(header.split(",")[:20]):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        weighted.append((-quality, position, tag.split("-")[0].lower()))
    return [tag for quality, _, tag in sorted(weighted) if quality < 0]
