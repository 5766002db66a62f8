"""/l/<token>: a counted link (`link_counts`): add one to the link's total and go to it.

The token names a send and one of its own links, never a reader. Only that link can
be the destination, so this is not an open redirect; anything forged or unknown gets
the "link not valid" page.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from mailer.delivery import clicks
from mailer.tokens import Purpose
from mailer.web import links
from mailer.web.context import DB, web

router = APIRouter()


@router.get("/l/{token}")
def follow(token: str, request: Request, db: DB) -> Response:
    found = links.payload(web(request).settings, Purpose.link, token)
    if not (isinstance(found, list) and len(found) == 2 and all(type(n) is int and 0 <= n < 2**62 for n in found)):
        raise links.InvalidLink
    send_id, position = found
    url = clicks.target(db, send_id=send_id, position=position)
    if url is None:
        raise links.InvalidLink
    clicks.record_visit(db, send_id=send_id, position=position, url=url)
    db.commit()
    return RedirectResponse(url, status_code=302)
