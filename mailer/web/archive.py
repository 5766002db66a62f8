"""/archive: past issues as sent, their web versions, and an Atom feed per language.

The index and the feeds come from `mailer.store.archive`: each issue once, dated by its
`date:`, titled in the reader's language. `/archive/feed.atom` is the default language's
feed; `/archive/feed.en.atom` and `/archive/feed.cy.atom` list the issues written in that
language (`xml:lang` says which).

The web version is the frozen HTML of the send with every personal
placeholder given a neutral value, so nobody's name or links show. It is the
email's own HTML, inline styles and all, so it gets its own CSP: styles
allowed, still no script, no forms, no framing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time
from typing import Annotated
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from babel.dates import format_date
from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, Response
from feedgen.feed import FeedGenerator
from sqlmodel import Session
from starlette.exceptions import HTTPException

from mailer import i18n
from mailer.config import Settings
from mailer.content import Personaliser
from mailer.delivery.sends import rendered_variants
from mailer.store.archive import ArchivedIssue, archived_issues, public_send
from mailer.store.models import Send
from mailer.tokens import archive_url
from mailer.web.context import DB, web

router = APIRouter()

EMAIL_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; font-src https: data:; "
             "form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
PUBLIC = {"cache-control": "public, max-age=300"}
# The index and a web version speak the browser's language when no `?lang=` says: caches keep each apart.
PUBLIC_PER_LANGUAGE = {**PUBLIC, "vary": "Accept-Language"}
FEED_ENTRIES = 20
SendId = Annotated[int, Path(ge=1, le=2**62)]  # anything else is no such page (and no integer overflow)


def feed_path(language: str) -> str:
    return f"/archive/feed.{language}.atom"


@router.get("/archive")
def index(request: Request, db: DB) -> Response:
    ctx = web(request)
    language = ctx.pages.language(request)
    issues = [{"url": f"/archive/{issue.send_id}?lang={language}", "title": issue.title(language),
               "lang": issue.title_language(language),
               "date": format_date(issue.date, format="long", locale=i18n.LOCALES[language])}
              for issue in archived_issues(db)]
    languages = ctx.settings.languages
    feeds = [{"lang": code, "href": feed_path(code), "title": ctx.settings.text("list_name", code)}
             for code in sorted(languages, key=lambda code: code != language)]  # the page's language first
    return ctx.pages.render(request, language, "archive.html", {"issues": issues, "feeds": feeds},
                            headers=PUBLIC_PER_LANGUAGE)


@router.get("/archive/feed.atom")
def default_feed(request: Request, db: DB) -> Response:
    return _feed(request, db, web(request).settings.default_language)


def _language_feed(language: str) -> Callable[[Request, Session], Response]:
    def feed(request: Request, db: DB) -> Response:
        return _feed(request, db, language)
    return feed


for _code in i18n.LANGUAGES:
    router.add_api_route(feed_path(_code), _language_feed(_code), methods=["GET"])


def _feed(request: Request, db: DB, language: str) -> Response:
    settings = web(request).settings
    list_name = settings.text("list_name", language)
    generator = FeedGenerator()
    generator.id(f"{settings.base_url}{feed_path(language)}")
    generator.title(list_name)
    generator.author({"name": settings.text("sender_name", language)})
    generator.link(href=f"{settings.base_url}/archive?lang={language}", rel="alternate")
    generator.link(href=f"{settings.base_url}{feed_path(language)}", rel="self")
    generator.language(language)  # xml:lang on the feed
    issues = archived_issues(db, language=language, limit=FEED_ENTRIES)
    generator.updated(_issue_time(settings, issues[0]) if issues else None)
    for issue in reversed(issues):  # feedgen puts the last added first
        entry = generator.add_entry()
        entry.id(_entry_id(settings, issue, language))
        entry.title(issue.title(language))
        entry.link(href=f"{archive_url(settings, issue.send_id)}?lang={language}")
        entry.published(_issue_time(settings, issue))
        entry.updated(_issue_time(settings, issue))
        send = db.get(Send, issue.send_id)
        variants = rendered_variants(send) if send else {}
        rendered = variants.get(language) or next(iter(variants.values()), None)
        if rendered and rendered.preheader:
            entry.summary(rendered.preheader)
    return Response(generator.atom_str(pretty=True), media_type="application/atom+xml", headers=PUBLIC)


def _entry_id(settings: Settings, issue: ArchivedIssue, language: str) -> str:
    """A permanent id per issue and language (RFC 4151 tag URI): the same however often the issue is sent."""
    host = urlsplit(settings.base_url).hostname or settings.sender_domain
    return f"tag:{host},{issue.date.isoformat()}:{issue.slug}/{language}"


def _issue_time(settings: Settings, issue: ArchivedIssue) -> datetime:
    """The issue's date, as the start of that day where the list is."""
    return datetime.combine(issue.date, time(), ZoneInfo(settings.timezone)).astimezone(UTC)


@router.get("/archive/{send_id}")
def issue(send_id: SendId, request: Request, db: DB) -> Response:
    ctx = web(request)
    send = public_send(db, send_id)
    if send is None:  # drafts, scheduled, cancelled, failed and withdrawn sends are not public
        raise HTTPException(404)
    variants = rendered_variants(send)
    language = next((candidate for candidate in (request.query_params.get("lang"), ctx.pages.language(request))
                     if candidate in variants), next(iter(variants)))
    neutral = {
        "name": "",  # each language block greets its own way ("Dear reader,")
        "email": "",  # which leaves out the footer's "You subscribed ... with the address ..."
        # A reader of the web version is not the recipient: send them where anyone may subscribe.
        "unsubscribe_url": f"{ctx.settings.base_url}/subscribe",
        "preferences_url": f"{ctx.settings.base_url}/subscribe",
        "web_url": archive_url(ctx.settings, send_id),
    }
    html = Personaliser(variants[language]).html(neutral)
    return HTMLResponse(html, headers={"content-security-policy": EMAIL_CSP, **PUBLIC_PER_LANGUAGE})
