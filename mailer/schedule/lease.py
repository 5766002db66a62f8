"""The runner lease: one `mailer run` per database, so a second one started by mistake says so and stops.

This is a courtesy, not the guard: the delivery engine's per-send lease is what keeps
two processes from sending one send. The lease is a row renewed while the runner lives;
a runner that dies stops renewing it, and after `LEASE_SECONDS` another may take over,
or at once when the holder is certainly dead (a process of this kernel and PID namespace
that has ended, judged as for a send's lease by `mailer.delivery.owners`): so a runner
killed with SIGKILL is replaced by the service manager's first restart.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from mailer.delivery.owners import new_owner, owner_is_dead
from mailer.errors import ScheduleError
from mailer.store.models import RunnerLease

NAME = "runner"
LEASE_SECONDS = 60.0  # renewed every LEASE_SECONDS / 3


def default_owner() -> str:
    """Starts `host:pid` (what an operator needs to find the other runner), then who exactly it is."""
    return new_owner()


def acquire(session: Session, *, owner: str, now: datetime) -> None:
    """Take the lease, or raise `ScheduleError` naming the runner that holds it."""
    if _claim(session, owner=owner, now=now):
        return
    try:
        session.add(RunnerLease(name=NAME, owner=owner, acquired_at=now, expires_at=_expiry(now)))
        session.commit()
        return
    except IntegrityError:  # the row exists: someone else holds it, or just took it
        session.rollback()
    holder = session.get(RunnerLease, NAME, populate_existing=True)
    if holder is not None and owner_is_dead(holder.owner) and _claim(session, owner=owner, now=now, dead=holder.owner):
        return
    if holder is None or not _claim(session, owner=owner, now=now):
        since = f" since {holder.acquired_at:%Y-%m-%d %H:%M:%S} UTC" if holder else ""
        who = holder.owner if holder else "another process"
        raise ScheduleError(
            f"another runner ({who}) is already running against this database{since}; "
            f"stop it first, or wait {LEASE_SECONDS:.0f} seconds if it died"
        )


def renew(session: Session, *, owner: str, now: datetime) -> bool:
    """Extend the lease; False if it was lost (expired and taken by another runner)."""
    return _claim(session, owner=owner, now=now, only_mine=True)


def release(session: Session, *, owner: str) -> None:
    session.execute(delete(RunnerLease).where(col(RunnerLease.name) == NAME, col(RunnerLease.owner) == owner))
    session.commit()


def holder(session: Session, *, now: datetime) -> RunnerLease | None:
    """The live lease, if a runner is running."""
    lease = session.get(RunnerLease, NAME, populate_existing=True)
    return lease if lease and lease.expires_at > now else None


def _claim(session: Session, *, owner: str, now: datetime, only_mine: bool = False, dead: str = "") -> bool:
    """One conditional UPDATE, so two runners racing cannot both win. `dead`: a holder known to have ended."""
    if only_mine:
        free = col(RunnerLease.owner) == owner
    else:
        free = or_(col(RunnerLease.owner) == owner, col(RunnerLease.expires_at) <= now,
                   *([col(RunnerLease.owner) == dead] if dead else []))
    values: dict[str, object] = {"owner": owner, "expires_at": _expiry(now)}
    if not only_mine:
        values["acquired_at"] = now
    result = session.exec(update(RunnerLease).where(col(RunnerLease.name) == NAME, free).values(**values))
    session.commit()
    return result.rowcount == 1


def _expiry(now: datetime) -> datetime:
    return now + timedelta(seconds=LEASE_SECONDS)
