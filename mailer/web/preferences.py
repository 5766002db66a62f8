"""/p/<token>: name, language and topics; /email/<token>: a new address, confirmed from its own mailbox.

A new address is not taken on the preferences page itself: a confirmation goes
to the new address and the change happens only when its link is followed, so
a typo (or someone else's address) never takes over the subscription. The old
address is then told, with a link that takes the change back (`/email/<token>/undo`).

Both links are made for one version of the subscriber's address (how many times
it has changed): once it changes, by the link or in any other way, they are
dead. So each works once, and an undone change cannot be made again with the
same link. How often a change may be asked for is limited (`PageLimits`). A link
from an email carries its send: a change made through it is counted on that issue.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from babel.dates import format_date
from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import Response
from sqlalchemy import func
from sqlmodel import Session, select

from mailer import i18n
from mailer.errors import StoreError
from mailer.store import subscribers
from mailer.store.models import Event, EventKind, Subscriber, stored_id, utcnow
from mailer.store.topics import public_topics, topic_names
from mailer.tokens import UNDO_EMAIL_DAYS, Purpose, change_email_url, undo_email_url, unsubscribe_url
from mailer.web import emails, links
from mailer.web.clients import client_key
from mailer.web.context import DB, web
from mailer.web.forms import (
    EMAIL_LENGTH,
    Chosen,
    FormList,
    FormText,
    clean_name,
    normalised_email,
    offered_languages,
    problems,
)
from mailer.web.ratelimit import Refused

router = APIRouter()


@router.get("/p/{token}")
def page(token: str, request: Request, db: DB) -> Response:
    subscriber, send_id = links.reader(db, web(request).settings, Purpose.preferences, token)
    chosen: Chosen = {"name": subscriber.name, "email": subscriber.email, "language": subscriber.language,
                      "topics": topic_names(db, stored_id(subscriber), public_only=True)}
    return _render(request, db, subscriber, send_id, chosen)


@router.post("/p/{token}")
def save(token: str, request: Request, db: DB, background: BackgroundTasks,
         name: FormText = "", email: FormText = "", language: FormText = "",
         topics: FormList = [], csrf: FormText = "") -> Response:  # noqa: B006 (FastAPI copies it)
    ctx = web(request)
    subscriber, send_id = links.reader(db, ctx.settings, Purpose.preferences, token)
    subscriber_id = stored_id(subscriber)
    name = clean_name(name)
    chosen: Chosen = {"name": name, "email": email.strip()[:EMAIL_LENGTH], "language": language, "topics": topics}
    if not ctx.forms.accepts(request, csrf, "preferences", subscriber_id):
        return _render(request, db, subscriber, send_id, chosen, retry=True)
    page_language = ctx.pages.language(request, subscriber.language)
    offered = offered_languages(ctx.settings)
    new_email = normalised_email(email)
    errors = problems(ctx.pages.gettext(page_language), address=new_email, language=language, offered=offered,
                      topics=topics, known_topics={topic.name for topic in public_topics(db)})
    if errors or new_email is None:
        return _render(request, db, subscriber, send_id, chosen, errors=errors)
    # The address is not saved here: a new one waits for its own confirmation.
    changing = new_email.lower() != subscriber.email_key
    undoable_until = _undoable_until(db, subscriber_id) if changing else None
    if undoable_until is not None:
        _ = ctx.pages.gettext(page_language)
        until = format_date(undoable_until, format="long", locale=i18n.LOCALES[page_language])
        errors = {"email": _("Your address changed recently and your old address can still take that change back, "
                             "so it cannot be changed again here until %(date)s.", date=until)}
        return _render(request, db, subscriber, send_id, chosen, errors=errors, status=409)
    version = _address_version(db, subscriber_id)
    refused = ctx.guard.change_request(client=client_key(request), subscriber_id=subscriber_id,
                                       address_version=version, address=new_email) if changing else None
    if refused not in (None, Refused.waiting):
        _ = ctx.pages.gettext(page_language)
        errors = {"email": _("Too many address changes were asked for. Please try again tomorrow.")}
        return _render(request, db, subscriber, send_id, chosen, errors=errors, status=429)
    subscribers.update_preferences(db, subscriber_id=subscriber_id, name=name,
                                   language=language if offered else None, topics=list(dict.fromkeys(topics)),
                                   channel="web", public_only=True, send_id=send_id)
    db.commit()
    if changing and refused is None:
        background.add_task(emails.send, ctx, to=new_email, language=subscriber.language,
                            template="email/change_email.txt", old_email=subscriber.email,
                            link=change_email_url(ctx.settings, subscriber_id, version, new_email))
    chosen["email"] = subscriber.email
    return _render(request, db, subscriber, send_id, chosen, saved=True, email_sent_to=new_email if changing else None,
                   already_sent=refused is Refused.waiting)


@router.get("/email/{token}")
def email_page(token: str, request: Request, db: DB) -> Response:
    subscriber, new_email = _change(db, request, Purpose.change_email, token)
    return _render_change(request, subscriber, "email_change.html", new_email)


@router.post("/email/{token}")
def email_change(token: str, request: Request, db: DB, background: BackgroundTasks, csrf: FormText = "") -> Response:
    ctx = web(request)
    subscriber, new_email = _change(db, request, Purpose.change_email, token)
    subscriber_id = stored_id(subscriber)
    if not ctx.forms.accepts(request, csrf, "email", subscriber_id):
        return _render_change(request, subscriber, "email_change.html", new_email, retry=True)
    old_email = subscriber.email
    response = _move(db, request, subscriber, new_email)
    if response.status_code == 200:  # tell the old address, with the way back
        undo = undo_email_url(ctx.settings, subscriber_id, _address_version(db, subscriber_id), old_email)
        background.add_task(emails.send, ctx, to=old_email, language=subscriber.language,
                            template="email/email_changed.txt", new_email=new_email, link=undo,
                            undo_days=UNDO_EMAIL_DAYS)
    return response


@router.get("/email/{token}/undo")
def undo_page(token: str, request: Request, db: DB) -> Response:
    subscriber, old_email = _change(db, request, Purpose.undo_email, token)
    return _render_change(request, subscriber, "email_undo.html", old_email, form="undo-email")


@router.post("/email/{token}/undo")
def undo(token: str, request: Request, db: DB, csrf: FormText = "") -> Response:
    ctx = web(request)
    subscriber, old_email = _change(db, request, Purpose.undo_email, token)
    if not ctx.forms.accepts(request, csrf, "undo-email", stored_id(subscriber)):
        return _render_change(request, subscriber, "email_undo.html", old_email, retry=True, form="undo-email")
    return _move(db, request, subscriber, old_email)


def _address_version(db: Session, subscriber_id: int) -> int:
    """How many times the subscriber's address has changed: the version a change or undo link is made for."""
    return db.scalar(select(func.count()).select_from(Event).where(
        Event.subscriber_id == subscriber_id, Event.kind == EventKind.email_changed)) or 0


def _undoable_until(db: Session, subscriber_id: int) -> datetime | None:
    """Until when the last address change can still be undone from the old address; None when it no longer can.

    Until then the page makes no further change: a second one would make the old address's undo link
    stale (links are bound to the address version) and send the next one to whoever made the change.
    """
    last = db.scalar(select(func.max(Event.created_at)).where(
        Event.subscriber_id == subscriber_id, Event.kind == EventKind.email_changed))
    if last is None:
        return None
    until = last + timedelta(days=UNDO_EMAIL_DAYS)
    return until if until > utcnow() else None


def _change(db: Session, request: Request, purpose: Purpose, token: str) -> tuple[Subscriber, str]:
    """The subscriber and the address a change or undo link moves them to, while the link is still good."""
    payload = links.payload(web(request).settings, purpose, token)
    if not (isinstance(payload, list) and len(payload) == 3 and type(payload[1]) is int
            and isinstance(payload[2], str)):
        raise links.InvalidLink
    subscriber = links.by_id(db, payload[0])
    if payload[1] != _address_version(db, stored_id(subscriber)):  # the address has changed since: used, or undone
        raise links.InvalidLink
    return subscriber, payload[2]


def _move(db: Session, request: Request, subscriber: Subscriber, address: str) -> Response:
    """Change the address, or say why not (someone else has subscribed with it since)."""
    try:
        subscribers.change_email(db, subscriber_id=stored_id(subscriber), new_email=address)
    except StoreError:
        db.rollback()
        return _render_change(request, subscriber, "email_taken.html", address, status=409)
    db.commit()
    return _render_change(request, subscriber, "email_changed.html", address)


def _render(request: Request, db: Session, subscriber: Subscriber, send_id: int | None, chosen: Chosen, *,
            retry: bool = False, errors: dict[str, str] | None = None, saved: bool = False,
            email_sent_to: str | None = None, already_sent: bool = False, status: int | None = None) -> Response:
    ctx = web(request)
    subscriber_id = stored_id(subscriber)
    context = {
        "subscriber": subscriber, "chosen": chosen, "errors": errors or {}, "retry": retry, "saved": saved,
        "email_sent_to": email_sent_to, "already_sent": already_sent,
        "csrf": ctx.forms.make("preferences", subscriber_id),
        "topics": public_topics(db),
        "languages": offered_languages(ctx.settings),
        "unsubscribe_url": unsubscribe_url(ctx.settings, subscriber_id, send_id),
    }
    status = status or (400 if retry or errors else 200)
    return ctx.pages.render(request, ctx.pages.language(request, subscriber.language), "preferences.html", context,
                            status=status)


def _render_change(request: Request, subscriber: Subscriber, template: str, new_email: str, *,
                   retry: bool = False, status: int = 200, form: str = "email") -> Response:
    """A page about moving `subscriber` to `new_email` (on the undo pages, back to the old address)."""
    ctx = web(request)
    context = {"subscriber": subscriber, "new_email": new_email, "retry": retry,
               "csrf": ctx.forms.make(form, stored_id(subscriber))}
    return ctx.pages.render(request, ctx.pages.language(request, subscriber.language), template, context,
                            status=400 if retry else status)
