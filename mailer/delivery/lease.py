"""The lease that gives one process a send.

A lease (Send.lease_owner, lease_expires_at) names its owner (`owners.new_owner`) and
is renewed while its process runs; it lapses when not renewed, and at once when its
owner is certainly dead (a process of this kernel and PID namespace that has ended),
so a send killed with SIGKILL resumes immediately rather than a minute later. A
process in another container or on another machine is never judged dead: its lease
runs out instead.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col

from mailer.delivery.owners import owner_is_dead
from mailer.delivery.sends import get_send
from mailer.errors import SendError
from mailer.store.models import Send, utcnow

LEASE = timedelta(seconds=60)


def take_lease(session: Session, *, send_id: int, owner: str, now: datetime | None = None) -> str:
    """Make `owner` the only process sending the send; returns the previous (lapsed or dead) owner, or "".

    Refuses with a clear message when another live process holds it.
    """
    now = now or utcnow()
    send = get_send(session, send_id=send_id)
    session.refresh(send)
    previous = send.lease_owner
    held = previous and previous != owner and send.lease_expires_at and send.lease_expires_at > now
    if held and not owner_is_dead(previous):
        raise SendError(f"send {send_id} is being sent by another process ({previous}, lease until "
                        f"{send.lease_expires_at:%H:%M:%S} UTC); wait for it, or stop it with `mailer sends pause {send_id}`")
    taken = session.exec(
        update(Send).where(col(Send.id) == send_id, col(Send.lease_owner) == previous)
        .values(lease_owner=owner, lease_expires_at=now + LEASE)
    ).rowcount
    session.commit()
    if not taken:
        raise SendError(f"send {send_id} was just taken by another process")
    return previous if previous != owner else ""


def renew_lease(session: Session, *, send_id: int, owner: str) -> Send | None:
    """Extend the lease; returns the send (to notice a pause or cancel), or None when the lease was lost."""
    renewed = session.exec(
        update(Send).where(col(Send.id) == send_id, col(Send.lease_owner) == owner)
        .values(lease_expires_at=utcnow() + LEASE)
    ).rowcount
    session.commit()
    if not renewed:
        return None
    send = session.get(Send, send_id)
    if send is not None:
        session.refresh(send)
    return send


def release_lease(session: Session, *, send_id: int, owner: str) -> None:
    session.execute(update(Send).where(col(Send.id) == send_id, col(Send.lease_owner) == owner)
                    .values(lease_owner="", lease_expires_at=None))
    session.commit()
