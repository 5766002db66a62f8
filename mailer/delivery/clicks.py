"""Counted links (`link_counts = true`): how often each link of an issue was followed, in total.

Each web link of the issue goes through `base_url/l/<token>`. The token names the
send and the link's position among the send's own links, and nothing else: every
reader gets the same address, so a visit says nothing about who made it. The
redirect goes only to the link at that position in the send's frozen content, so
`/l/` can never send anyone anywhere else (no open redirect), and a forged token
is refused by its signature. Only totals per link are stored. There is no open
tracking (no pixel, no per-reader address) with or without this setting.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
import threading
from collections.abc import Mapping

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from mailer.config import Settings
from mailer.content import Rendered
from mailer.delivery.sends import get_send
from mailer.store.models import LinkCount, Send
from mailer.tokens import counted_link_url

_HREF = re.compile(r'href="(https?://[^"]+)"', re.IGNORECASE)


def own_links(variants: Mapping[str, Rendered]) -> list[str]:
    """The send's web links in order of first appearance across its variants: what a position refers to.

    Only literal http(s) links count; the personal links (unsubscribe, preferences, web
    version) are placeholders when this runs and stay as they are.
    """
    found: dict[str, None] = {}
    for rendered in variants.values():
        for match in _HREF.finditer(rendered.html):
            found.setdefault(html.unescape(match.group(1)), None)
    return list(found)


def with_counted_links(settings: Settings, send_id: int, variants: Mapping[str, Rendered]) -> dict[str, Rendered]:
    """The variants with each of their own links, in the HTML and the text part, going through /l/."""
    links = own_links(variants)
    if not links:
        return dict(variants)
    counted = {url: counted_link_url(settings, send_id, position) for position, url in enumerate(links)}
    # In the text part a link stands alone or in brackets: match whole addresses, the longest first.
    in_text = re.compile(r"(?<![^\s(<\[])(" + "|".join(re.escape(url) for url in sorted(links, key=len, reverse=True))
                         + r")(?=[\s)>\].,;:!?]|$)")
    return {
        variant: dataclasses.replace(
            rendered,
            html=_HREF.sub(lambda match: f'href="{counted[html.unescape(match.group(1))]}"', rendered.html),
            text=in_text.sub(lambda match: counted[match.group(1)], rendered.text),
        )
        for variant, rendered in variants.items()
    }


def target(session: Session, *, send_id: int, position: int) -> str | None:
    """Where a counted link leads: the send's own link at `position`; None for anything else."""
    row = session.execute(select(col(Send.content_hash), col(Send.started_at)).where(col(Send.id) == send_id)).first()
    if row is None or row.started_at is None:  # a draft's links are not public yet
        return None
    links = _links_of(session, send_id, row.content_hash)
    return links[position] if 0 <= position < len(links) else None


def _links_of(session: Session, send_id: int, content_hash: str) -> list[str]:
    """The send's own links, worked out once per process: a started send's content never changes."""
    key = (send_id, content_hash)
    with _LOCK:
        links = _LINKS.get(key)
    if links is None:
        content = session.execute(select(col(Send.content)).where(col(Send.id) == send_id)).scalar_one()
        links = own_links({name: Rendered.from_dict(data) for name, data in json.loads(content).items()})
        with _LOCK:
            while len(_LINKS) >= 64:
                _LINKS.pop(next(iter(_LINKS)))
            _LINKS[key] = links
    return links


_LINKS: dict[tuple[int, str], list[str]] = {}
_LOCK = threading.Lock()


def record_visit(session: Session, *, send_id: int, position: int, url: str) -> None:
    """Add one to the link's total (no commit). Safe when two visits come at once."""
    increment = (update(LinkCount).where(col(LinkCount.send_id) == send_id, col(LinkCount.position) == position)
                 .values(clicks=LinkCount.clicks + 1))
    if session.exec(increment).rowcount:
        return
    try:
        with session.begin_nested():
            session.add(LinkCount(send_id=send_id, position=position, url=url, clicks=1))
    except IntegrityError:  # the first visit of another request made the row meanwhile
        session.execute(increment)


def link_totals(session: Session, *, send_id: int) -> list[tuple[int, str, int]]:
    """(position from 1, link, times followed) for every link of the send, zeros included."""
    send = get_send(session, send_id=send_id)
    counts = dict(session.execute(select(col(LinkCount.position), col(LinkCount.clicks))
                                  .where(col(LinkCount.send_id) == send_id)).all())
    links = _links_of(session, send_id, send.content_hash)
    return [(position + 1, url, counts.get(position, 0)) for position, url in enumerate(links)]
