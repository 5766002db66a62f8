"""/subscribe and /confirm/<token>: double opt-in.

The form answers the same page whatever the address (unknown, pending, active,
unsubscribed): everything that depends on the address, including whether an
email is sent at all, happens after the response has gone. What was asked is
kept as a request apart from the subscriber (`subscribers.subscribe_pending`),
so a stranger posting someone's address changes nothing about them; the request
is applied only when the emailed link is followed and its button pressed (a
GET changes nothing, as link scanners follow links). The form offers the public
topics; the default ones are shown ticked and fixed, as every new subscriber gets them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from mailer.config import Settings
from mailer.delivery import welcome
from mailer.errors import MailerError
from mailer.store import subscribers
from mailer.store.db import new_session
from mailer.store.models import Subscriber, SubscribeRequest, SubscriberStatus, stored_id, utcnow
from mailer.store.topics import public_topics
from mailer.tokens import confirm_url, preferences_url
from mailer.web import emails, links
from mailer.web.clients import client_key
from mailer.web.context import DB, Web, web
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

log = logging.getLogger("mailer.web")
router = APIRouter()

RECENT_STOP = timedelta(days=1)


@router.get("/subscribe")
def form(request: Request, db: DB) -> Response:
    return _form(request, db, {"email": "", "name": "", "language": "", "topics": []})


@router.post("/subscribe")
def post(request: Request, db: DB, background: BackgroundTasks,
         email: FormText = "", name: FormText = "", language: FormText = "",
         topics: FormList = [], consent: FormText = "",  # noqa: B006 (FastAPI copies it)
         website: FormText = "", csrf: FormText = "") -> Response:
    ctx = web(request)
    page_language = ctx.pages.language(request)
    name = clean_name(name)
    chosen: Chosen = {"email": email.strip()[:EMAIL_LENGTH], "name": name, "language": language, "topics": topics}
    site = ctx.forms.listed_origin(request)  # a form on one of the organisation's own websites
    if site is None and not ctx.forms.accepts(request, csrf, "subscribe"):
        return _form(request, db, chosen, retry=True)
    if not ctx.guard.per_client.hit(client_key(request)):
        return ctx.pages.render(request, page_language, "too_many.html", status=429, headers={"retry-after": "3600"})
    if website:  # the honeypot, invisible to people: a bot filled it in; it learns nothing
        return _sent(request, site)
    _ = ctx.pages.gettext(page_language)
    address = normalised_email(email)
    offered = offered_languages(ctx.settings)
    errors = problems(_, address=address, language=language, offered=offered,
                      topics=topics, known_topics={topic.name for topic in public_topics(db)})
    if not consent:
        errors["consent"] = _("Tick the box to say you agree.")
    if errors or address is None:
        return _form(request, db, chosen, errors=errors)
    if not offered:
        language = page_language if page_language in ctx.settings.languages else ctx.settings.default_language
    consent = consent_text(_, ctx.settings, page_language) + (f" (form on {site})" if site else "")
    background.add_task(request_confirmation, ctx, email=address, name=name, language=language,
                        topics=list(dict.fromkeys(topics)), consent_text=consent, page_language=page_language)
    return _sent(request, site)


def _sent(request: Request, site: str | None) -> Response:
    """"Check your email": our page in the reader's language, or the website's own `thanks_url`."""
    ctx = web(request)
    if site and ctx.settings.thanks_url:
        return RedirectResponse(ctx.settings.thanks_url, status_code=303)
    return ctx.pages.render(request, ctx.pages.language(request), "subscribe_sent.html")


def consent_text(_: Callable[..., str], settings: Settings, language: str) -> str:
    """The wording beside the consent box, stored with the subscriber as shown."""
    return _("Send me %(list)s by email. I can unsubscribe at any time with the link in every email.",
             list=settings.text("list_name", language))


def request_confirmation(ctx: Web, *, email: str, name: str, language: str, topics: list[str],
                         consent_text: str, page_language: str) -> None:
    """After the response: decide whether to email, record the pending subscriber, send the link.

    `email` is normalised; its lower case (the store's `email_key`) is what the hold on a recent leaver
    counts, and the email limits count its mailbox and its domain (`PageLimits.may_email`).
    """
    try:
        with new_session(ctx.engine) as db:
            existing = subscribers.get_by_email(db, email=email)
            key = email.lower()
            if existing is not None and _recently_stopped(existing) and ctx.guard.first_ask(key):
                return  # held: mailed only if the same address asks again within a day
            if not ctx.guard.may_email(email):
                return
            asked: SubscribeRequest | None = None
            if existing is not None and existing.status == SubscriberStatus.active:
                target = existing
            else:
                target = subscribers.subscribe_pending(db, email=email, name=name, language=language, topics=topics,
                                                       source="web", consent_text=consent_text)
                asked = subscribers.open_request(db, subscriber_id=stored_id(target))
                db.commit()
            if asked is None:  # active; also when added as active since `existing` was read (no request is made then)
                template, link = "email/already_subscribed.txt", preferences_url(ctx.settings, stored_id(target))
            else:
                template, link = "email/confirm.txt", confirm_url(ctx.settings, stored_id(target), stored_id(asked))
            to = target.email
        emails.send(ctx, to=to, language=page_language, template=template, link=link)
    except MailerError as exc:  # e.g. a topic removed while the form was open
        log.warning("subscribe request not completed: %s", exc)


def _recently_stopped(subscriber: Subscriber) -> bool:
    if subscriber.status == SubscriberStatus.complained:
        return True
    return subscriber.status == SubscriberStatus.unsubscribed and subscriber.status_changed_at > utcnow() - RECENT_STOP


@router.get("/confirm/{token}")
def confirm_page(token: str, request: Request, db: DB) -> Response:
    subscriber, request_id = links.confirmation(db, web(request).settings, token)
    return _confirmation(request, db, subscriber, request_id)


@router.post("/confirm/{token}")
def confirm(token: str, request: Request, db: DB, background: BackgroundTasks, csrf: FormText = "") -> Response:
    ctx = web(request)
    subscriber, request_id = links.confirmation(db, ctx.settings, token)
    subscriber_id = stored_id(subscriber)
    if not ctx.forms.accepts(request, csrf, "confirm", subscriber_id):
        return _confirmation(request, db, subscriber, request_id, retry=True)
    first_use = _waiting(db, subscriber, request_id)
    joining = first_use and subscriber.status != SubscriberStatus.active
    welcome_send = welcome.prepare(ctx.settings, ctx.engine) if joining else None
    subscribers.confirm(db, subscriber_id=subscriber_id, request_id=request_id)
    welcoming = welcome.add_reader(db, send_id=welcome_send, subscriber_id=subscriber_id)  # kept with the confirmation
    db.commit()
    if welcoming and welcome_send is not None:  # queued only into a welcome send
        background.add_task(welcome.deliver_in_background, ctx.settings, ctx.engine, welcome_send)
    return _confirmation(request, db, subscriber, request_id, first_use=first_use, welcoming=welcoming)


def _waiting(db: Session, subscriber: Subscriber, request_id: int | None) -> bool:
    """Whether the link still has a use: its subscribe request waits (or the subscriber is still pending)."""
    return (subscriber.status == SubscriberStatus.pending
            or subscribers.open_request(db, subscriber_id=stored_id(subscriber), request_id=request_id) is not None)


def _confirmation(request: Request, db: Session, subscriber: Subscriber, request_id: int | None, *, retry: bool = False,
                  first_use: bool = False, welcoming: bool = False) -> Response:
    """The button while a request waits, the welcome once active; for anyone else the link has no use left.

    The welcome links to the preferences page (a link that never expires) only on the
    confirmation itself: whoever opens the link again later (a forwarded email, a
    shared computer) gets no such key. It says a welcome email is coming when one was queued.
    """
    ctx = web(request)
    if _waiting(db, subscriber, request_id):
        template = "confirm.html"
    elif subscriber.status == SubscriberStatus.active:
        template = "confirmed.html"
    else:
        raise links.InvalidLink
    subscriber_id = stored_id(subscriber)
    context = {"subscriber": subscriber, "retry": retry, "welcoming": welcoming,
               "csrf": ctx.forms.make("confirm", subscriber_id),
               "preferences_url": preferences_url(ctx.settings, subscriber_id) if first_use else None}
    waiting = subscribers.open_request(db, subscriber_id=subscriber_id, request_id=request_id)  # in the language they chose
    language = ctx.pages.language(request, waiting.language if waiting else subscriber.language)
    return ctx.pages.render(request, language, template, context, status=400 if retry else 200)


def _form(request: Request, db: Session, chosen: Chosen, *, retry: bool = False,
          errors: dict[str, str] | None = None) -> Response:
    ctx = web(request)
    language = ctx.pages.language(request)
    offered = sorted(public_topics(db), key=lambda topic: (not topic.is_default, topic.name))
    context = {"chosen": chosen, "errors": errors or {}, "retry": retry, "csrf": ctx.forms.make("subscribe"),
               "topics": offered, "included": [topic.name for topic in offered if topic.is_default],
               "languages": offered_languages(ctx.settings),
               "consent_text": consent_text(ctx.pages.gettext(language), ctx.settings, language)}
    return ctx.pages.render(request, language, "subscribe.html", context, status=400 if retry or errors else 200)
