"""The public archive: which sends it shows, one entry per issue, and withdrawing an issue from it.

A send is public while it is `published` (the default; `mailer sends unpublish` clears it) and
its status says it went out or is going out: cancelled and failed sends, drafts and scheduled
ones are not. The index and the feeds list each issue once, by the newest finished send of it,
dated by the issue's own `date:` (not the day it was sent), titled in the reader's language.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date

from sqlalchemy import update
from sqlalchemy.orm import defer
from sqlmodel import Session, col, select

from mailer.errors import NotFound
from mailer.store.models import Send, SendKind, SendStatus

# Statuses of a send whose web version is public (while `published`): it started and was not given up.
PUBLIC_STATUSES = (SendStatus.sending, SendStatus.paused, SendStatus.finished)


@dataclass(frozen=True)
class ArchivedIssue:
    """One issue as the archive lists it: its newest finished, published send."""

    send_id: int
    slug: str
    date: date
    titles: dict[str, str]  # by language the issue is written in; empty for sends made before titles were kept
    fallback_title: str

    def title(self, language: str) -> str:
        return self.titles.get(language) or self.fallback_title

    def written_in(self, language: str) -> bool:
        return not self.titles or language in self.titles

    def title_language(self, language: str) -> str | None:
        """The language of `title(language)` when known."""
        if language in self.titles:
            return language
        return next(iter(self.titles), None)


def public_send(session: Session, send_id: int) -> Send | None:
    """The send whose web version `/archive/ID` shows, or None when it is not public."""
    return session.scalar(select(Send).where(Send.id == send_id, Send.published, col(Send.started_at).is_not(None),
                                             col(Send.status).in_(PUBLIC_STATUSES)))


def archived_issues(session: Session, *, language: str | None = None, limit: int | None = None) -> list[ArchivedIssue]:
    """Each published issue once, newest issue date first; only those written in `language` when given.
    Welcome emails (replaced welcome sends finish too) are not issues."""
    # SQLModel types `Send.content` as bytes, but on the class it is the column attribute `defer` takes.
    without_content = defer(Send.content)  # type: ignore[arg-type]
    query = (select(Send).options(without_content)
             .where(Send.published, Send.status == SendStatus.finished, Send.kind == SendKind.issue)
             .order_by(col(Send.finished_at).desc(), col(Send.id).desc()))
    newest: dict[str, Send] = {}
    for send in session.scalars(query):
        newest.setdefault(send.issue_slug, send)
    issues = [_archived(send) for send in newest.values()]
    issues = [issue for issue in issues if language is None or issue.written_in(language)]
    issues.sort(key=lambda issue: (issue.date, issue.send_id), reverse=True)
    return issues[:limit]


def _archived(send: Send) -> ArchivedIssue:
    assert send.id is not None and send.finished_at is not None
    return ArchivedIssue(send_id=send.id, slug=send.issue_slug, date=send.issue_date or send.finished_at.date(),
                         titles=json.loads(send.titles) if send.titles else {},
                         fallback_title=send.title or send.issue_slug)


def set_published(session: Session, *, send_id: int, published: bool) -> list[int]:
    """Publish or withdraw the issue of send `send_id`: every send of that issue, so no older send
    of it takes its place in the archive. Returns the ids of those sends; the caller commits."""
    send = session.get(Send, send_id)
    if send is None:
        raise NotFound(f"no send with id {send_id} (see `mailer sends list`)")
    ids = list(session.scalars(select(Send.id).where(Send.issue_slug == send.issue_slug).order_by(col(Send.id))))
    session.execute(update(Send).where(col(Send.id).in_(ids)).values(published=published))
    return ids
