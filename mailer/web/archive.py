"""/archive: past issues as sent, their web versions, and an Atom feed.

The web version is the frozen HTML of the send with every personal
placeholder given a neutral value, so nobody's name or links show. It is the
email's own HTML, inline styles and all, so it gets its own CSP: styles
allowed, still no script, no forms, no framing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from babel.dates import format_date
from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, Response
from feedgen.feed import FeedGenerator
from sqlalchemy import or_, select
from sqlalchemy.orm import defer
from sqlmodel import Session
from starlette.exceptions import HTTPException

from mailer import i18n
from mailer.content import Personaliser
from mailer.delivery.sends import rendered_variants
from mailer.store.models import Send, SendStatus
from mailer.tokens import archive_url
from mailer.web.context import DB, web

router = APIRouter()

EMAIL_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; font-src https: data:; "
             "form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
PUBLIC = {"cache-control": "public, max-age=300"}
FEED_ENTRIES = 20
SendId = Annotated[int, Path(ge=1, le=2**62)]  # anything else is no such page (and no integer overflow)


def _finished(db: Session, limit: int | None = None) -> list[Send]:
    """Finished sends, newest first, without their (large) frozen content."""
    query = (select(Send).options(defer(Send.content)).where(Send.status == SendStatus.finished)
             .order_by(Send.finished_at.desc(), Send.id.desc()).limit(limit))
    return list(db.scalars(query))


@router.get("/archive")
def index(request: Request, db: DB) -> Response:
    ctx = web(request)
    language = ctx.pages.language(request)
    issues = [{"url": f"/archive/{send.id}", "title": send.title or send.issue_slug,
               "date": format_date(send.finished_at, format="long", locale=i18n.LOCALES[language]) if send.finished_at else ""}
              for send in _finished(db)]
    return ctx.pages.render(request, language, "archive.html", {"issues": issues}, headers=PUBLIC)


@router.get("/archive/feed.atom")
def feed(request: Request, db: DB) -> Response:
    settings = web(request).settings
    generator = FeedGenerator()
    generator.id(f"{settings.base_url}/archive")
    generator.title(settings.list_name)
    generator.author({"name": settings.sender_name})
    generator.link(href=f"{settings.base_url}/archive", rel="alternate")
    generator.link(href=f"{settings.base_url}/archive/feed.atom", rel="self")
    generator.language(settings.default_language)
    sends = _finished(db, FEED_ENTRIES)
    generator.updated(_utc(sends[0].finished_at) if sends else None)
    for send in reversed(sends):  # feedgen puts the last added first
        entry = generator.add_entry()
        entry.id(archive_url(settings, send.id))
        entry.title(send.title or send.issue_slug)
        entry.link(href=archive_url(settings, send.id))
        entry.updated(_utc(send.finished_at or send.created_at))
        variants = rendered_variants(send)
        summary = (variants.get(settings.default_language) or next(iter(variants.values()))).preheader
        if summary:
            entry.summary(summary)
    return Response(generator.atom_str(pretty=True), media_type="application/atom+xml", headers=PUBLIC)


@router.get("/archive/{send_id}")
def issue(send_id: SendId, request: Request, db: DB) -> Response:
    ctx = web(request)
    send = db.scalar(select(Send).where(Send.id == send_id, or_(Send.started_at.is_not(None),
                                                                  Send.status == SendStatus.finished)))
    if send is None:  # drafts and scheduled sends are not public yet
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
        "web_url": archive_url(ctx.settings, send.id),
    }
    html = Personaliser(variants[language]).html(neutral)
    return HTMLResponse(html, headers={"content-security-policy": EMAIL_CSP, **PUBLIC})


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC)  # stored naive in UTC; feedgen wants it aware
