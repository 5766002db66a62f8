"""An issue goes to its readers once: the check `mailer send`, `mailer schedule` and the demo share.

An issue is known by its slug (its file name). Every earlier send of it counts
but a cancelled one: a finished send was read, one going out or paused will
finish, a scheduled or missed one is still planned, and a draft or failed one
may have mailed some readers already. A second send takes `--again`.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from mailer.config import Settings
from mailer.delivery.report import status_counts
from mailer.errors import SendError
from mailer.store.models import Send, SendStatus, stored_id

COUNTED = tuple(status for status in SendStatus if status != SendStatus.cancelled)


def earlier_send(session: Session, slug: str, statuses: Collection[SendStatus] = COUNTED) -> Send | None:
    """The latest send of the issue in one of `statuses` (by default those that count: all but cancelled), or None."""
    query = (select(Send).where(col(Send.issue_slug) == slug, col(Send.status).in_(list(statuses)))
             .order_by(col(Send.id).desc()))
    return session.exec(query).first()


def describe(session: Session, settings: Settings, send: Send) -> str:
    """What became of a send, in the editor's words: which issue, which send, when, to how many."""
    counts = status_counts(session, send_id=stored_id(send))
    sent, total = counts["sent"], sum(counts.values())

    def when(value: datetime | None) -> str:  # as `schedule list` shows times: 2026-12-02 09:00 GMT
        return f"{value.replace(tzinfo=UTC).astimezone(ZoneInfo(settings.timezone)):%Y-%m-%d %H:%M %Z}" if value else "?"

    def people(n: int) -> str:
        return f"{n} subscriber{'s' * (n != 1)}"

    start = send.started_at or send.created_at
    name = f"issue {send.issue_slug}"
    return {
        SendStatus.finished: f"{name} was sent as send {send.id} on {when(start)} to {people(sent)}",
        SendStatus.sending: f"{name} is being sent as send {send.id} since {when(start)} ({sent} of {people(total)} so far)",
        SendStatus.paused: f"{name} is paused as send {send.id} after {sent} of {people(total)} (started {when(start)})",
        SendStatus.failed: f"{name} failed as send {send.id} on {when(start)} after reaching {people(sent)}",
        SendStatus.scheduled: f"{name} is scheduled as send {send.id} for {when(send.scheduled_at)}",
        SendStatus.missed: f"{name} was scheduled as send {send.id} for {when(send.scheduled_at)} and missed",
        SendStatus.draft: f"{name} has send {send.id}, created {when(send.created_at)} and not started",
    }[send.status]


def check_repeat(session: Session, *, settings: Settings, slug: str, again: bool) -> str | None:
    """None if the issue was never sent; else its earlier send described, or a refusal unless `again`."""
    earlier = earlier_send(session, slug)
    if earlier is None:
        return None
    text = describe(session, settings, earlier)
    if again:
        return text
    if earlier.status in (SendStatus.scheduled, SendStatus.missed):
        hint = "move or cancel it (`mailer schedule list`), or "
    elif earlier.status in (SendStatus.draft, SendStatus.sending, SendStatus.paused):
        hint = f"continue it with `mailer send --resume {earlier.id}`, or "
    else:
        hint = ""
    raise SendError(f"{text}; {hint}add --again to send it again")
