"""/u/<token>: unsubscribe by link, by the page's button, or by a mail provider's RFC 8058 one-click POST.

A GET never changes anything: link scanners and mail security gateways fetch
every link in a message. Only a POST unsubscribes. A link from an email carries
its send, and the unsubscribe is counted on that issue (`mailer sends show`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import PlainTextResponse, Response

from mailer.store import subscribers
from mailer.store.models import Subscriber, stored_id
from mailer.tokens import Purpose, preferences_url
from mailer.web import links
from mailer.web.context import DB, web
from mailer.web.forms import FormText

router = APIRouter()


@router.get("/u/{token}")
def page(token: str, request: Request, db: DB) -> Response:
    subscriber, send_id = links.reader(db, web(request).settings, Purpose.unsubscribe, token)
    return _render(request, subscriber, send_id, token, "unsubscribe.html")


@router.post("/u/{token}")
def post(token: str, request: Request, db: DB,
         one_click: Annotated[str, Form(alias="List-Unsubscribe")] = "", csrf: FormText = "") -> Response:
    ctx = web(request)
    subscriber, send_id = links.reader(db, ctx.settings, Purpose.unsubscribe, token)
    subscriber_id = stored_id(subscriber)
    if one_click == "One-Click":
        # RFC 8058: the mail provider posts with no cookie, no form token and no Origin;
        # the signed URL is the credential. Answer 200 and never redirect.
        subscribers.unsubscribe(db, subscriber_id=subscriber_id, channel="one-click", send_id=send_id)
        db.commit()
        return PlainTextResponse("Unsubscribed.\n")
    if not ctx.forms.accepts(request, csrf, "unsubscribe", subscriber_id):
        return _render(request, subscriber, send_id, token, "unsubscribe.html", retry=True)
    subscribers.unsubscribe(db, subscriber_id=subscriber_id, channel="web", send_id=send_id)
    db.commit()
    return _render(request, subscriber, send_id, token, "unsubscribed.html")


@router.post("/u/{token}/resubscribe")
def resubscribe(token: str, request: Request, db: DB, csrf: FormText = "") -> Response:
    """The "undo" button on the confirmation page."""
    ctx = web(request)
    subscriber, send_id = links.reader(db, ctx.settings, Purpose.unsubscribe, token)
    subscriber_id = stored_id(subscriber)
    if not ctx.forms.accepts(request, csrf, "resubscribe", subscriber_id):
        return _render(request, subscriber, send_id, token, "unsubscribed.html", retry=True)
    subscribers.resubscribe(db, subscriber_id=subscriber_id, channel="web")
    db.commit()
    return _render(request, subscriber, send_id, token, "resubscribed.html")


def _render(request: Request, subscriber: Subscriber, send_id: int | None, token: str, template: str, *,
            retry: bool = False) -> Response:
    """A page about this subscriber's subscription, with fresh form tokens for its buttons."""
    ctx = web(request)
    language = ctx.pages.language(request, subscriber.language)
    subscriber_id = stored_id(subscriber)
    context = {
        "subscriber": subscriber, "token": token, "retry": retry,
        "unsubscribe_csrf": ctx.forms.make("unsubscribe", subscriber_id),
        "resubscribe_csrf": ctx.forms.make("resubscribe", subscriber_id),
        "preferences_url": preferences_url(ctx.settings, subscriber_id, send_id),
    }
    return ctx.pages.render(request, language, template, context, status=400 if retry else 200)
