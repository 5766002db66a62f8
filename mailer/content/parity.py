"""`mailer issue lint --parity`: the English and the Welsh versions of an issue say the same things.

Validation already makes every field of a bilingual issue exist in both languages. Parity
looks further: a text given in one language only (in an issue that is not yet bilingual),
Markdown whose versions differ in links, images or subheadings, and a block in one language
linking to the other language's page where the issue gives a page in its own language
(`url: {en: .../proposal, cy: .../cy/cynnig}` elsewhere, or the same link in a Markdown text).
"""

from __future__ import annotations

from collections import Counter

from mailer.content import markdown
from mailer.content.schema import Issue, Localized
from mailer.errors import Problem
from mailer.i18n import LANGUAGE_NAMES, LANGUAGES

Loc = tuple[str | int, ...]


def parity_problems(issue: Issue) -> list[Problem]:
    """What differs between the language versions, in file order; nothing for a one-language issue."""
    values = list(issue.localized())
    if len(issue.languages) < 2 and not any(len(value.given) > 1 for _, value in values):
        return []
    pages = _pages(values)
    problems = []
    for loc, value in values:
        problems.extend(_one_sided(issue, loc, value))
        if value.kind == "markdown" and value.en and value.cy:
            problems.extend(_markdown_differences(issue, loc, value.en, value.cy))
        problems.extend(_wrong_language_pages(issue, loc, value, pages))
    return sorted(problems, key=lambda problem: (problem.line, problem.column))


def _one_sided(issue: Issue, loc: Loc, value: Localized) -> list[Problem]:
    if value.common is not None or len(value.given) != 1:
        return []
    (given,) = value.given
    missing = next(language for language in LANGUAGES if language != given)
    return [issue.problem((*loc, given), f"has {LANGUAGE_NAMES[given]} but no {LANGUAGE_NAMES[missing]} ({missing}:)")]


def _shape(text: str) -> Counter[str]:
    """How many links, images and subheadings a Markdown text has."""
    found = markdown.links(text)
    return Counter(links=sum(not link.image for link in found), images=sum(link.image for link in found),
                   subheadings=markdown.heading_count(text))


def _markdown_differences(issue: Issue, loc: Loc, english: str, welsh: str) -> list[Problem]:
    en, cy = _shape(english), _shape(welsh)
    return [issue.problem((*loc, "cy"), f"the English has {en[what]} {_noun(what, en[what])}, the Welsh {cy[what]}")
            for what in ("links", "images", "subheadings") if en[what] != cy[what]]


def _noun(what: str, count: int) -> str:
    return what if count != 1 else what[:-1]


def _pages(values: list[tuple[Loc, Localized]]) -> dict[str, dict[str, str]]:
    """For each language, the pages the issue gives in the other one: {language: {other's url: own url}}."""
    pages: dict[str, dict[str, str]] = {language: {} for language in LANGUAGES}
    for _loc, value in values:
        pairs: list[tuple[str, str]] = []
        if value.kind == "url" and value.en and value.cy:
            pairs.append((value.en, value.cy))
        elif value.kind == "markdown" and value.en and value.cy:
            en, cy = markdown.links(value.en), markdown.links(value.cy)
            if len(en) == len(cy):
                pairs.extend((a.url, b.url) for a, b in zip(en, cy, strict=True) if not a.image and not b.image)
        for en_url, cy_url in pairs:
            if en_url != cy_url:
                pages["cy"].setdefault(en_url, cy_url)
                pages["en"].setdefault(cy_url, en_url)
    return pages


def _wrong_language_pages(issue: Issue, loc: Loc, value: Localized, pages: dict[str, dict[str, str]]) -> list[Problem]:
    """A block in one language linking to the other's page where the issue gives one in its own."""
    problems = []
    for language in issue.languages:
        own = pages[language]
        text = value.get(language)
        if not text or not own:
            continue
        where = (*loc, language) if language in value.given else loc
        if value.kind == "url":
            urls = [(text, 0)]
        elif value.kind == "markdown":
            urls = [(link.url, link.line_offset) for link in markdown.links(text) if not link.image]
        else:
            continue
        other = next(code for code in LANGUAGES if code != language)
        for url, offset in urls:
            if url in own:
                problems.append(issue.problem(where, f"the {LANGUAGE_NAMES[language]} links to {url}, the "
                                                     f"{LANGUAGE_NAMES[other]} page; the issue gives the "
                                                     f"{LANGUAGE_NAMES[language]} one, {own[url]}", offset))
    return problems
