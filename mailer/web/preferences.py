"""/p/<token>: name, language and topics; /email/<token>: a new address, confirmed from its own mailbox.

A new address is not taken on the preferences page itself: a confirmation goes
to the new address and the change happens only when its link is followed, so
a typo (or someone else's address) never takes over the subscription. A link
from an email carries its send: a change made through it is counted on that issue.
"""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlmodel import Session

from mailer.errors import StoreError
from mailer.store import subscribers
from mailer.store.models import Subscriber, Topic
from mailer.store.topics import topic_names
from mailer.tokens import Purpose, change_email_url, unsubscribe_url
from mailer.web import emails, links
from mailer.web.context import DB, web
from mailer.web.forms import EMAIL_LENGTH, FormList, FormText, clean_name, normalised_email, offered_languages, problems

router = APIRouter()


@router.get("/p/{token}")
def page(token: str, request: Request, db: DB) -> Response:
    subscriber, send_id = links.reader(db, web(request).settings, Purpose.preferences, token)
    chosen = {"name": subscriber.name, "email": subscriber.email, "language": subscriber.language,
              "topics": topic_names(db, subscriber.id)}
    return _render(request, db, subscriber, send_id, chosen)


@router.post("/p/{token}")
def save(token: str, request: Request, db: DB, background: BackgroundTasks,
         name: FormText = "", email: FormText = "", language: FormText = "",
         topics: FormList = [], csrf: FormText = "") -> Response:  # noqa: B006 (FastAPI copies it)
    ctx = web(request)
    subscriber, send_id = links.reader(db, ctx.settings, Purpose.preferences, token)
    chosen = {"name": clean_name(name), "email": email.strip()[:EMAIL_LENGTH], "language": language,
              "topics": topics}
    if not ctx.forms.accepts(request, csrf, "preferences", subscriber.id):
        return _render(request, db, subscriber, send_id, chosen, retry=True)
    page_language = ctx.pages.language(request, subscriber.language)
    offered = offered_languages(ctx.settings)
    new_email = normalised_email(email)
    errors = problems(ctx.pages.gettext(page_language), address=new_email, language=language, offered=offered,
                      topics=topics, known_topics=set(db.scalars(select(Topic.name))))
    if errors or new_email is None:
        return _render(request, db, subscriber, send_id, chosen, errors=errors)
    subscribers.update_preferences(db, subscriber_id=subscriber.id, name=chosen["name"],
                                   language=language if offered else None, topics=list(dict.fromkeys(topics)),
                                   channel="web", send_id=send_id)
    db.commit()
    # The address is not saved here: a new one waits for its own confirmation.
    changing = new_email.lower() != subscriber.email_key
    if changing:
        background.add_task(emails.send, ctx, to=new_email, language=subscriber.language,
                            template="email/change_email.txt", old_email=subscriber.email,
                            link=change_email_url(ctx.settings, subscriber.id, new_email))
    chosen["email"] = subscriber.email
    return _render(request, db, subscriber, send_id, chosen, saved=True,
                   email_sent_to=new_email if changing else None)


@router.get("/email/{token}")
def email_page(token: str, request: Request, db: DB) -> Response:
    subscriber, new_email = _change(db, request, token)
    return _render_change(request, subscriber, "email_change.html", new_email)


@router.post("/email/{token}")
def email_change(token: str, request: Request, db: DB, csrf: FormText = "") -> Response:
    ctx = web(request)
    subscriber, new_email = _change(db, request, token)
    if not ctx.forms.accepts(request, csrf, "email", subscriber.id):
        return _render_change(request, subscriber, "email_change.html", new_email, retry=True)
    try:
        subscribers.change_email(db, subscriber_id=subscriber.id, new_email=new_email)
    except StoreError:  # someone else has subscribed with that address since
        db.rollback()
        return _render_change(request, subscriber, "email_taken.html", new_email, status=409)
    db.commit()
    return _render_change(request, subscriber, "email_changed.html", new_email)


def _change(db: Session, request: Request, token: str) -> tuple[Subscriber, str]:
    """The subscriber and the new address a change-email link carries."""
    payload = links.payload(web(request).settings, Purpose.change_email, token)
    if not (isinstance(payload, list) and len(payload) == 2 and isinstance(payload[1], str)):
        raise links.InvalidLink
    return links.by_id(db, payload[0]), payload[1]


def _render(request: Request, db: Session, subscriber: Subscriber, send_id: int | None, chosen: dict, *,
            retry: bool = False,
            errors: dict[str, str] | None = None, saved: bool = False, email_sent_to: str | None = None) -> Response:
    ctx = web(request)
    context = {
        "subscriber": subscriber, "chosen": chosen, "errors": errors or {}, "retry": retry, "saved": saved,
        "email_sent_to": email_sent_to, "csrf": ctx.forms.make("preferences", subscriber.id),
        "topics": list(db.scalars(select(Topic).order_by(Topic.name))),
        "languages": offered_languages(ctx.settings),
        "unsubscribe_url": unsubscribe_url(ctx.settings, subscriber.id, send_id),
    }
    status = 400 if retry or errors else 200
    return ctx.pages.render(request, ctx.pages.language(request, subscriber.language), "preferences.html", context,
                            status=status)


def _render_change(request: Request, subscriber: Subscriber, template: str, new_email: str, *,
                   retry: bool = False, status: int = 200) -> Response:
    ctx = web(request)
    context = {"subscriber": subscriber, "new_email": new_email, "retry": retry,
               "csrf": ctx.forms.make("email", subscriber.id)}
    return ctx.pages.render(request, ctx.pages.language(request, subscriber.language), template, context,
                            status=400 if retry else status)
