"""Every table, in one module. Times are stored in UTC, naive (SQLite has no zones).

Status values are plain strings held in `StrEnum`s so that they read the same in
the database, the CLI and the code.

Time fields are annotated `NaiveDatetime` (a bare `datetime` makes SQLModel use a
timezone-aware column that refuses naive values), and enum fields get a plain
`String` column (not a PostgreSQL ENUM type), so a new status needs no type change.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Protocol

from pydantic import NaiveDatetime
from sqlalchemy import Boolean, Column, Index, LargeBinary, String, Text, UniqueConstraint, false, true
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """Now in UTC, without tzinfo: the form every time column uses."""
    return datetime.now(UTC).replace(tzinfo=None)


class Stored(Protocol):
    """A row of the store. SQLModel types ids `int | None`: None only until the row is first saved."""

    @property
    def id(self) -> int | None: ...


def stored_id(row: Stored) -> int:
    """The id of a row read from the database or saved (flushed) to it, which always has one."""
    assert row.id is not None, f"{type(row).__name__} not saved yet"
    return row.id


class SubscriberStatus(StrEnum):
    pending = "pending"
    active = "active"
    unsubscribed = "unsubscribed"
    bounced = "bounced"
    complained = "complained"


class Language(StrEnum):
    en = "en"
    cy = "cy"
    both = "both"


class EventKind(StrEnum):
    subscribed = "subscribed"
    confirmed = "confirmed"
    unsubscribed = "unsubscribed"
    resubscribed = "resubscribed"
    preferences = "preferences"
    email_changed = "email_changed"
    bounced = "bounced"
    soft_bounce = "soft_bounce"
    complained = "complained"
    imported = "imported"
    forgotten = "forgotten"


class SendStatus(StrEnum):
    draft = "draft"
    scheduled = "scheduled"
    sending = "sending"
    paused = "paused"
    finished = "finished"
    cancelled = "cancelled"
    failed = "failed"
    missed = "missed"


class SendKind(StrEnum):
    issue = "issue"  # an issue to an audience, started once
    welcome = "welcome"  # the welcome email: open while current, one reader added at each confirmation


class DeliveryStatus(StrEnum):
    queued = "queued"
    sent = "sent"
    deferred = "deferred"
    failed = "failed"
    skipped = "skipped"


class BounceKind(StrEnum):
    permanent = "permanent"
    temporary = "temporary"
    complaint = "complaint"


class Topic(SQLModel, table=True):
    """A named list. `name` is for editors; readers see `label` and `description` in their language."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True)
    description: str = ""
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    # New subscribers join the default topics, from any channel (form, `subscribers add`, import).
    is_default: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    # Only public topics are offered on the subscribe and preferences pages.
    public: bool = Field(default=True, sa_column_kwargs={"server_default": true()})
    # What readers see, per language: the English (or only) text, and the Welsh one.
    label: str = Field(default="", max_length=200)
    label_cy: str = Field(default="", max_length=200)
    description_cy: str = ""

    def label_in(self, language: str) -> str:
        """The topic's name for readers of `language`: its own label, else the English one, else the
        description (what the pages showed before topics had labels), else `name`."""
        return self._in("label", language) or self._in("description", language) or self.name

    def description_in(self, language: str) -> str:
        return self._in("description", language)

    def _in(self, field: str, language: str) -> str:
        return (getattr(self, f"{field}_{language}", "") if language != "en" else "") or getattr(self, field)


class SubscriberTopic(SQLModel, table=True):
    subscriber_id: int = Field(foreign_key="subscriber.id", primary_key=True, ondelete="CASCADE")
    topic_id: int = Field(foreign_key="topic.id", primary_key=True, ondelete="CASCADE")


class Subscriber(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    # As normalised by email-validator; `email_key` (lower case) is what must be unique.
    email: str = Field(max_length=320)
    email_key: str = Field(max_length=320, unique=True)
    name: str = Field(default="", max_length=200)
    language: Language = Field(default=Language.en, sa_type=String(8))
    status: SubscriberStatus = Field(default=SubscriberStatus.pending, sa_type=String(16), index=True)
    source: str = Field(default="", max_length=64)
    consent_text: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    confirmed_at: NaiveDatetime | None = None
    status_changed_at: NaiveDatetime = Field(default_factory=utcnow)


class SubscribeRequest(SQLModel, table=True):
    """What someone asked for on the subscribe form, kept apart until the emailed link confirms it.

    A request changes nothing about the subscriber it names: `confirm` applies the one its
    link names. Each request has its own link, so a stranger's later request for the same
    address never rides on the reader's own.
    """

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True, ondelete="CASCADE")
    name: str = Field(default="", max_length=200)
    language: Language = Field(default=Language.en, sa_type=String(8))
    topics: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))  # comma-separated
    source: str = Field(default="", max_length=64)
    consent_text: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    created_at: NaiveDatetime = Field(default_factory=utcnow)


class Event(SQLModel, table=True):
    """Append-only history. After `forget`, rows keep only non-personal facts."""

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int | None = Field(default=None, foreign_key="subscriber.id", index=True, ondelete="SET NULL")
    kind: EventKind = Field(sa_type=String(32))
    channel: str = Field(default="", max_length=32)
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    send_id: int | None = Field(default=None, foreign_key="send.id", ondelete="SET NULL")
    created_at: NaiveDatetime = Field(default_factory=utcnow, index=True)


class ForgottenAddress(SQLModel, table=True):
    """Salted hash of an erased address, so it is never imported again by accident."""

    id: int | None = Field(default=None, primary_key=True)
    address_hash: str = Field(max_length=128, unique=True)
    created_at: NaiveDatetime = Field(default_factory=utcnow)


class Send(SQLModel, table=True):
    """One issue going to one audience. `content` freezes what was rendered at creation."""

    id: int | None = Field(default=None, primary_key=True)
    issue_slug: str = Field(max_length=200)
    issue_path: str = Field(default="", max_length=1000)
    kind: SendKind = Field(default=SendKind.issue, sa_type=String(16),
                           sa_column_kwargs={"server_default": SendKind.issue.value})
    title: str = Field(default="", max_length=500)
    status: SendStatus = Field(default=SendStatus.draft, sa_type=String(16), index=True)
    topics: str = Field(default="", max_length=1000)  # comma-separated; empty = every active subscriber
    languages: str = Field(default="", max_length=64)  # comma-separated; empty = all
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # JSON of rendered variants
    content_hash: str = Field(default="", max_length=64)
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    scheduled_at: NaiveDatetime | None = None
    started_at: NaiveDatetime | None = None
    finished_at: NaiveDatetime | None = None
    # Lease: which process is sending it, until when. Keeps two runners from sending one send.
    lease_owner: str = Field(default="", max_length=128)
    lease_expires_at: NaiveDatetime | None = None
    # A pause after faults in a row (the server down, the outbox unwritable): when the runner resumes it
    # (None: only a person does), and how many such pauses came in a row, each doubling the wait.
    resume_at: NaiveDatetime | None = None
    fault_pauses: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    note: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    # The archive: the issue's `date:` and its title per language (JSON), and whether the send is public
    # there (`mailer sends unpublish` withdraws it; a flag beside the status, which says how sending went).
    issue_date: date | None = None
    titles: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    published: bool = Field(default=True, sa_column=Column(Boolean, nullable=False, server_default=true()))


class Delivery(SQLModel, table=True):
    """The queue: one row per recipient of a send, moved on only after the server answered."""

    __table_args__ = (
        UniqueConstraint("send_id", "subscriber_id"),
        Index("ix_delivery_send_status", "send_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    send_id: int = Field(foreign_key="send.id", ondelete="CASCADE")
    subscriber_id: int | None = Field(default=None, foreign_key="subscriber.id", ondelete="SET NULL")
    email: str = Field(max_length=320)
    language: Language = Field(default=Language.en, sa_type=String(8))
    status: DeliveryStatus = Field(default=DeliveryStatus.queued, sa_type=String(16))
    attempts: int = 0
    next_attempt_at: NaiveDatetime | None = None
    first_attempt_at: NaiveDatetime | None = None
    sent_at: NaiveDatetime | None = None
    reply: str = Field(default="", max_length=1000)
    reply_code: int | None = None  # the server's SMTP code (250, 451, 550...); None when there was no reply
    message_id: str = Field(default="", max_length=255, index=True)  # a bounce carrying it is about this delivery
    claimed_by: str = Field(default="", max_length=128)


class Bounce(SQLModel, table=True):
    """A bounce or complaint matched to a delivery (when possible) and a subscriber."""

    # One row per report and address: a report read twice (two readers of one mailbox, or a
    # crash before the move) is refused by the database rather than counted again.
    __table_args__ = (Index("ix_bounce_message_id_address", "message_id", "address", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    kind: BounceKind = Field(sa_type=String(16))
    subscriber_id: int | None = Field(default=None, foreign_key="subscriber.id", index=True, ondelete="SET NULL")
    delivery_id: int | None = Field(default=None, foreign_key="delivery.id", ondelete="SET NULL")
    send_id: int | None = Field(default=None, foreign_key="send.id", index=True, ondelete="SET NULL")
    address: str = Field(default="", max_length=320)
    diagnostic: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    message_id: str = Field(default="", max_length=255)
    received_at: NaiveDatetime = Field(default_factory=utcnow)
    rule: str = Field(default="", max_length=64)  # the entry of the rule table that decided (mailer/bounces/rules.py)
    code: str = Field(default="", max_length=16)  # the status or reply code it rests on
    # False: the report named no delivery of ours (no signed return path, no Message-ID we sent): nobody was changed.
    verified: bool = Field(default=True, sa_column_kwargs={"server_default": true()})


class LinkCount(SQLModel, table=True):
    """How often each link of a send was followed (`link_counts`): totals only, never who."""

    send_id: int = Field(foreign_key="send.id", primary_key=True, ondelete="CASCADE")
    position: int = Field(primary_key=True)  # the link's place among the send's own links (`delivery.clicks`)
    url: str = Field(sa_column=Column(Text, nullable=False))
    clicks: int = 0


class RunnerLease(SQLModel, table=True):
    """Which `mailer run` process owns the scheduler, until when: a second runner refuses plainly."""

    name: str = Field(primary_key=True, max_length=64)
    owner: str = Field(default="", max_length=128)
    acquired_at: NaiveDatetime = Field(default_factory=utcnow)
    expires_at: NaiveDatetime = Field(default_factory=utcnow)
