"""Sends: an issue frozen for an audience, its queue of deliveries, and its status.

The rendered issue is frozen in `Send.content` when the send is created (so a
broken issue is caught at once and later edits do not change it), as JSON of
`Rendered.to_dict()` per variant ("en", "cy", "both"). The audience is taken
when the send starts (`enqueue`), so people who join before then get it.

A welcome send (`SendKind.welcome`, see `delivery.welcome`) is open from its
creation: `sending`, started, its audience added one reader at a time as each
confirms; it does not finish when its queue is empty, only when a newer welcome
replaces it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy import exists, func, insert, literal, select
from sqlmodel import Session, col

from mailer.config import Settings
from mailer.content import RENDER_LANGUAGES, Issue, Rendered, load_issue, render_issue
from mailer.delivery import lifecycle
from mailer.errors import NotFound, SendError
from mailer.store.models import Delivery, DeliveryStatus, Send, SendKind, SendStatus, Subscriber, Topic, utcnow
from mailer.store.subscribers import audience_query


def create_send(session: Session, *, settings: Settings, issue_path: Path | str, topics: Sequence[str] = (),
                languages: Sequence[str] = (), scheduled_at: datetime | None = None,
                kind: SendKind = SendKind.issue) -> Send:
    """Render every variant of the issue now and freeze it; status `scheduled` when a time is given, else `draft`.

    `topics` default to the issue's own; `languages` limit the audience to subscribers of those languages.
    A welcome send is made open (`sending`, started, nobody queued yet) and its audience is whoever
    `enqueue` is given.
    """
    issue_path = Path(issue_path)
    issue = load_issue(issue_path)
    welcome = kind == SendKind.welcome
    topics = [] if welcome else list(topics or issue.topics)
    check_audience(session, topics, languages)
    content, title = freeze(settings, issue)
    status = SendStatus.sending if welcome else SendStatus.scheduled if scheduled_at else SendStatus.draft
    send = Send(
        issue_slug=issue.slug,
        issue_path=str(issue_path),
        kind=kind,
        title=title,
        status=status,
        started_at=utcnow() if welcome else None,
        topics=",".join(topics),
        languages=",".join(languages),
        content=content,
        content_hash=hashlib.sha256(content).hexdigest(),
        scheduled_at=scheduled_at,
        issue_date=issue.date,
        titles=archive_titles(issue),
    )
    session.add(send)
    session.commit()
    session.refresh(send)
    return send


def refresh_content(session: Session, *, settings: Settings, send_id: int) -> Send:
    """Re-render a send that has not started from its issue file (after the editor fixed something)."""
    send = get_send(session, send_id=send_id)
    if send.started_at is not None:
        raise SendError(f"send {send_id} has started; its content can no longer change")
    issue = load_issue(Path(send.issue_path))
    content, title = freeze(settings, issue)
    send.content, send.title = content, title
    send.issue_date, send.titles = issue.date, archive_titles(issue)
    send.content_hash = hashlib.sha256(content).hexdigest()
    session.add(send)
    session.commit()
    session.refresh(send)
    return send


def render_variants(settings: Settings, issue: Issue) -> dict[str, Rendered]:
    """Every variant of the issue, its first language first: each language it is written in, and
    "both" when there are two (subscribers who chose both get one bilingual email)."""
    variants = list(issue.languages) + (["both"] if len(issue.languages) > 1 else [])
    return {variant: render_issue(issue, settings, variant) for variant in variants}


def freeze(settings: Settings, issue: Issue) -> tuple[bytes, str]:
    """The JSON of every rendered variant and the send's title."""
    rendered = render_variants(settings, issue)
    content = json.dumps({variant: r.to_dict() for variant, r in rendered.items()}, ensure_ascii=False)
    return content.encode("utf-8"), next(iter(rendered.values())).subject


def archive_titles(issue: Issue) -> str:
    """The issue's title in each of its languages (JSON), for the archive and the feeds."""
    return json.dumps({language: issue.title.get(language) for language in issue.languages}, ensure_ascii=False)


def check_audience(session: Session, topics: Sequence[str], languages: Sequence[str]) -> None:
    """Refuse unknown languages and topics by name (an empty audience would not say why)."""
    unknown = [language for language in languages if language not in RENDER_LANGUAGES]
    if unknown:
        raise SendError(f"unknown language {', '.join(unknown)}; use {', '.join(RENDER_LANGUAGES)}")
    known = set(session.execute(select(col(Topic.name)).where(col(Topic.name).in_(list(topics)))).scalars())
    missing = [topic for topic in topics if topic not in known]
    if missing:
        raise SendError(f"no topic named {', '.join(missing)} (see `mailer topics list`)")


def rendered_variants(send: Send) -> dict[str, Rendered]:
    """The frozen content of a send, by variant."""
    return {variant: Rendered.from_dict(data) for variant, data in json.loads(send.content).items()}


def send_tag(settings: Settings, send: Send) -> str:
    """A short tag unique to this send in this database, stable across runs (for Message-IDs)."""
    key = f"send:{send.id}:{send.created_at.isoformat()}".encode()
    return hmac.new(settings.secret_key.encode(), key, hashlib.sha256).hexdigest()[:10]


def get_send(session: Session, *, send_id: int) -> Send:
    send = session.get(Send, send_id)
    if send is None:
        raise NotFound(f"no send with id {send_id} (see `mailer sends list`)")
    return send


def audience_size(session: Session, *, topics: Sequence[str] = (), languages: Sequence[str] = ()) -> int:
    """How many subscribers a send with these topics and languages would go to now."""
    query = audience_query(topics=topics, languages=languages).order_by(None).subquery()
    return session.scalars(select(func.count()).select_from(query)).one()


def audience_of(send: Send) -> dict[str, list[str]]:
    """The topics and languages a send is for (stored comma-separated), as `audience_query` takes them."""
    return {"topics": _split(send.topics), "languages": _split(send.languages)}


def enqueue(session: Session, *, send_id: int, subscriber_ids: Sequence[int] | None = None) -> int:
    """Write one queued delivery per subscriber in the audience, in one INSERT ... SELECT.

    `subscriber_ids` narrows the audience to those subscribers (a welcome send's new reader).
    Idempotent: a subscriber already queued for this send is not added again.
    Returns the number of rows added. Commits (with whatever the session holds).
    """
    send = get_send(session, send_id=send_id)
    query = audience_query(**audience_of(send)).order_by(None)
    if subscriber_ids is not None:
        query = query.where(col(Subscriber.id).in_(list(subscriber_ids)))
    audience = query.subquery()
    already = exists().where(col(Delivery.send_id) == send_id, col(Delivery.subscriber_id) == audience.c.id)
    rows = select(
        literal(send_id), audience.c.id, audience.c.email, audience.c.language,
        literal(DeliveryStatus.queued.value), literal(0), literal(""), literal(""), literal(""),
    ).where(~already)
    columns = ["send_id", "subscriber_id", "email", "language", "status", "attempts", "reply", "message_id",
               "claimed_by"]
    # Counted from RETURNING: an INSERT's rowcount is -1 on PostgreSQL (psycopg, SQLAlchemy 2.1).
    added = len(session.execute(insert(Delivery).from_select(columns, rows).returning(col(Delivery.id))).all())
    session.commit()
    return added


def start(session: Session, *, send_id: int, expected: SendStatus | None = None) -> Send:
    """Mark a send `sending`, taking its audience the first time. Refuses finished and cancelled sends.

    `expected`: the status a process found the send in before deciding to deliver it (the runner,
    the welcome pages); a send in another status by now, such as one a person paused since, is
    refused and left as it is, so only a person's resume moves a person's pause on.
    """
    send = get_send(session, send_id=send_id)
    session.refresh(send)
    if expected is not None and send.status != expected:
        raise SendError(f"send {send_id} is {send.status} now; left as it is")
    lifecycle.check(send_id, send.status, SendStatus.sending)
    values: lifecycle.Times = {}
    if send.started_at is None:
        enqueue(session, send_id=send_id)
        values["started_at"] = utcnow()
    # A person resuming a paused (or failed) send starts the waits between automatic resumes afresh;
    # the runner moves a send it resumes to `sending` before delivering it, keeping the count.
    if send.status != SendStatus.sending:
        values["fault_pauses"] = 0
    still = () if expected is None else (col(Send.status) == expected,)
    lifecycle.move(session, send_id=send_id, to=SendStatus.sending, note="", when=still, **values)
    session.commit()
    session.refresh(send)
    return send


def set_status(session: Session, *, send_id: int, status: SendStatus, note: str = "") -> Send:
    """Move a send along `lifecycle.MOVES` (pause, cancel, ...), and commit.

    A process sending it checks the status before each message, so at most the messages
    in flight go out after this returns. `finished` is for closing a replaced welcome send
    whose queue is empty (`delivery.welcome`).
    """
    finished: lifecycle.Times = {"finished_at": utcnow()} if status == SendStatus.finished else {}
    lifecycle.move(session, send_id=send_id, to=status, note=note, **finished)
    session.commit()
    send = get_send(session, send_id=send_id)
    session.refresh(send)
    return send


def list_sends(session: Session, *, limit: int = 50) -> list[Send]:
    return list(session.execute(select(Send).order_by(col(Send.id).desc()).limit(limit)).scalars())


def _split(value: str) -> list[str]:
    return [part for part in value.split(",") if part]
