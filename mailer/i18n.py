"""Message catalogues for fixed text (email footers, web pages), English and Welsh.

English is the source language, so it needs no catalogue. The Welsh catalogue is
every `.po` file in `mailer/locale/cy/LC_MESSAGES/`, merged and compiled in memory
with Babel at first use: no compiled `.mo` files to keep in step with the sources.
"""

from __future__ import annotations

import gettext
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Babel and Jinja are imported when a catalogue is first needed, not by every command
    from babel.messages.catalog import Catalog
    from jinja2 import Environment

LANGUAGES = ("en", "cy")
LANGUAGE_NAMES = {"en": "English", "cy": "Welsh"}
# Babel locale for dates: British English, not Babel's default US English.
LOCALES = {"en": "en_GB", "cy": "cy"}
LOCALE_DIR = Path(__file__).with_name("locale")


def other_language(language: str) -> str:
    """The language a bilingual email or a page's switch pairs with `language`."""
    return "cy" if language == "en" else "en"


def catalogue_files(language: str) -> list[Path]:
    return sorted((LOCALE_DIR / language / "LC_MESSAGES").glob("*.po"))


def load_catalogue(language: str) -> Catalog:
    """Every `.po` file of a language merged into one catalogue."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import read_po

    merged = Catalog(locale=language)
    for path in catalogue_files(language):
        with path.open("rb") as handle:
            for message in read_po(handle, locale=language):
                if message.id:
                    merged[message.id] = message
    return merged


@cache
def translations(language: str) -> gettext.NullTranslations:
    """Translations for `language`; English (the source text) gets the identity."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; expected one of {', '.join(LANGUAGES)}")
    if language == "en":
        return gettext.NullTranslations()
    from babel.messages.mofile import write_mo

    compiled = BytesIO()
    write_mo(compiled, load_catalogue(language))
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def install(env: Environment, language: str) -> None:
    """Give a Jinja environment `_`, `gettext` and `ngettext` in `language` (jinja2.ext.i18n, new style)."""
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
