"""What the schedule commands do: plan, move, cancel and refresh scheduled sends.

The Send row is the truth (status `scheduled`, `scheduled_at` in UTC): these functions change
only it, and the runner picks the change up within seconds. A scheduled send carries the issue
as it was when scheduled (rendered and frozen by the delivery service, so a broken issue is
caught today); `refresh_send` re-renders it from the file after an edit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sqlmodel import Session, col, select

from mailer.config import Settings
from mailer.delivery import lifecycle
from mailer.delivery.once import check_repeat
from mailer.delivery.sends import create_send, refresh_content, set_status
from mailer.errors import NotFound, SendError
from mailer.schedule import lease
from mailer.schedule.times import Moment, resolve, zone
from mailer.store.models import RunnerLease, Send, SendStatus, stored_id, utcnow

CHANGEABLE = (SendStatus.scheduled, SendStatus.missed)
SHOWN = (SendStatus.scheduled, SendStatus.missed, SendStatus.sending, SendStatus.paused)


def schedule_send(session: Session, *, settings: Settings, issue_path: Path, when: datetime, tz: str | None = None,
                  topics: Sequence[str] = (), languages: Sequence[str] = (), again: bool = False,
                  now: datetime | None = None) -> tuple[Send, Moment]:
    """Check the time, build and freeze the issue now, and create the send in status `scheduled`.

    `when` is a wall time in `tz` (default: settings.timezone) or an aware datetime. An issue
    already scheduled or sent is refused unless `again`: typing the command twice must not
    send it twice.
    """
    at = resolve(when, zone(tz or settings.timezone), now=now or utcnow())
    check_repeat(session, settings=settings, slug=Path(issue_path).stem, again=again)
    send = create_send(session, settings=settings, issue_path=issue_path, topics=topics, languages=languages, scheduled_at=at.utc)
    return send, at


def move_send(session: Session, *, settings: Settings, send_id: int, when: datetime, tz: str | None = None,
              now: datetime | None = None) -> Moment:
    """Give a scheduled (or missed) send a new time."""
    send = _changeable(session, send_id, "moved")
    at = resolve(when, zone(tz or settings.timezone), now=now or utcnow())
    _reschedule(session, send, at.utc)
    return at


def cancel_send(session: Session, *, send_id: int) -> Send:
    """Cancel a scheduled (or missed) send; a send already going out is paused or cancelled with `mailer sends`."""
    _changeable(session, send_id, "cancelled")
    return set_status(session, send_id=send_id, status=SendStatus.cancelled)


def refresh_send(session: Session, *, settings: Settings, send_id: int) -> tuple[str, str]:
    """Re-render a scheduled send from its issue file; returns the old and new content versions."""
    old = _changeable(session, send_id, "refreshed").content_hash
    return old, refresh_content(session, settings=settings, send_id=send_id).content_hash


def planned(session: Session) -> list[Send]:
    """Sends a scheduler cares about: scheduled (soonest first), missed, and going out now."""
    sends = session.exec(select(Send).where(col(Send.status).in_(SHOWN))).all()
    return sorted(sends, key=lambda send: (SHOWN.index(send.status), send.scheduled_at or datetime.max, send.id))


def runner(session: Session) -> RunnerLease | None:
    """The live `mailer run`, if any: a schedule with no runner never fires."""
    return lease.holder(session, now=utcnow())


def _changeable(session: Session, send_id: int, verb: str) -> Send:
    send = session.get(Send, send_id, populate_existing=True)
    if send is None:
        raise NotFound(f"no send {send_id} (see `mailer schedule list`)")
    if send.status not in CHANGEABLE:
        raise SendError(f"send {send_id} is {send.status}; only scheduled or missed sends can be {verb}")
    return send


def _reschedule(session: Session, send: Send, at: datetime) -> None:
    """Give a send a new time, only if the runner has not started it (nor anyone moved it) meanwhile."""
    moved = lifecycle.change(session, send_id=stored_id(send), to=SendStatus.scheduled, from_=(send.status,), note="",
                             when=(col(Send.scheduled_at) == send.scheduled_at,), scheduled_at=at)
    session.commit()
    if not moved:
        raise SendError(f"send {send.id} changed meanwhile (the runner may have started it); see `mailer schedule list`")
    session.refresh(send)
