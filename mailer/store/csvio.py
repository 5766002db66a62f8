"""CSV import and export of subscribers, both streamed in batches.

Import reads the columns `email, name, language, topics, status, source, consent`
and an export's dates (header names in any case, UTF-8 with or without BOM,
comma or semicolon), and also the exports of Mailchimp and listmonk (see
`_layout`). It decides the file's unknown topics once, before writing anything,
then every line: added, updated, unchanged or rejected, with the reason. It
writes in the caller's transaction and never commits: the caller commits, or
rolls back for a dry run, so an import is all or nothing.

Export writes what import reads, so export then import into an empty database
gives the same subscribers: status, language, topics, name, source, consent
wording and dates. Cells that a spreadsheet would run as a formula get a
leading `'` on export, and import takes exactly that `'` off again.

A status of unsubscribed, bounced or complained is honoured: such a row is
never made active, and a subscriber it names is stopped. `suppress=True` reads
a bare list of addresses that must never be mailed.
"""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Table, insert, select
from sqlmodel import Session, SQLModel, col

from mailer.errors import StoreError
from mailer.store.models import (
    Event,
    EventKind,
    ForgottenAddress,
    Language,
    Subscriber,
    SubscriberStatus,
    SubscriberTopic,
    Topic,
    utcnow,
)
from mailer.store.subscribers import (
    REMEMBERED,
    SOURCE_LENGTH,
    STOPPED,
    clean_name,
    clean_text,
    forgotten_hash,
    mark_bounced,
    mark_complained,
    normalise_email,
    parse_language,
    resubscribe,
    unsubscribe,
    update_preferences,
)
from mailer.store.topics import TOPIC_NAME, add_topic, default_topics, topics_by_subscriber

IMPORT_COLUMNS = ("email", "name", "language", "topics", "status", "source", "consent")
DATE_COLUMNS = ("created_at", "confirmed_at", "status_changed_at")
EXPORT_COLUMNS = (*IMPORT_COLUMNS, *DATE_COLUMNS)
BATCH = 1000
# A header wider than this is refused before any line is read (Mailchimp's widest exports have about 40).
MAX_COLUMNS = 200
TOPIC_SEPARATORS = re.compile(r"[\s,;|]+")
# OWASP's advice against CSV injection: a cell a spreadsheet would run as a formula gets a leading `'`.
# A cell that starts with `'` gets one too, so that import can take exactly one off and stay exact.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
GUARD = "'"
GUARDED = frozenset((*FORMULA_STARTS, GUARD))

# Status words, ours and other tools': Mailchimp (subscribed, cleaned) and listmonk
# (enabled, disabled, blocklisted; unconfirmed and confirmed for list subscriptions).
STATUS_WORDS = {
    "active": SubscriberStatus.active, "subscribed": SubscriberStatus.active,
    "enabled": SubscriberStatus.active, "confirmed": SubscriberStatus.active,
    "pending": SubscriberStatus.pending, "unconfirmed": SubscriberStatus.pending,
    "unsubscribed": SubscriberStatus.unsubscribed, "blocklisted": SubscriberStatus.unsubscribed,
    "blacklisted": SubscriberStatus.unsubscribed, "disabled": SubscriberStatus.unsubscribed,
    "bounced": SubscriberStatus.bounced, "cleaned": SubscriberStatus.bounced,
    "complained": SubscriberStatus.complained,
}
# Other tools' column names (lower case) for ours; `unsub_time` and `clean_time` say a Mailchimp row's status.
MAILCHIMP_COLUMNS = {"email address": "email", "first name": "first_name", "last name": "last_name",
                     "unsub_time": "unsub_time", "clean_time": "clean_time"}
LISTMONK_COLUMNS = {"email": "email", "name": "name", "status": "status"}
EMAIL_HEADERS = ("email", "email address", "e-mail")


class CsvError(StoreError):
    """The file as a whole cannot be imported (encoding, header, unknown topics); nothing was written."""


class Outcome(StrEnum):
    added = "added"
    updated = "updated"
    unchanged = "unchanged"
    rejected = "rejected"


@dataclass(frozen=True, slots=True)
class LineResult:
    line: int
    email: str
    outcome: Outcome
    reason: str = ""


@dataclass
class ImportReport:
    counts: Counter[Outcome] = field(default_factory=Counter)
    created_topics: list[str] = field(default_factory=list)
    read_past: list[str] = field(default_factory=list)  # the file's columns that were not read
    kind: str = "mailer"  # what the file is: mailer (our columns), Mailchimp export, listmonk export, suppression list

    def __str__(self) -> str:
        return ", ".join(f"{self.counts[outcome]} {outcome}" for outcome in Outcome)


@dataclass(frozen=True, slots=True)
class _Layout:
    """What each cell of a record is: one of our column names, or None (read past)."""

    columns: list[str | None]
    kind: str
    read_past: list[str]

    def has(self, name: str) -> bool:
        return name in self.columns


# A suppression list: the first cell of each line is an address; the first line may be a header.
SUPPRESSION_LIST = _Layout(["email"], "suppression list", [])


@dataclass(slots=True)
class _Row:
    line: int
    email: str
    key: str
    name: str
    language: Language | None
    topics: list[str]
    status: SubscriberStatus | None
    source: str | None  # None: the file has no such column
    consent: str | None
    dates: dict[str, datetime | None]


def split_topics(text: str) -> list[str]:
    """Topic names from one cell: separated by spaces, commas, semicolons or bars."""
    return list(dict.fromkeys(name for name in TOPIC_SEPARATORS.split(text.strip().lower()) if name))


def guard(cell: str) -> str:
    """A cell as export writes it: `'` before a formula-like start (or a `'`), so a spreadsheet shows it as text."""
    return GUARD + cell if cell[:1] in GUARDED else cell


def unguard(cell: str) -> str:
    """A cell as import reads it: exactly the `'` that `guard` added is taken off."""
    return cell[1:] if cell[:1] == GUARD and cell[1:2] in GUARDED and len(cell) > 1 else cell


def import_csv(
    session: Session,
    *,
    path: Path,
    default_language: Language | str = Language.en,
    resubscribe: bool = False,
    create_topics: bool = False,
    suppress: bool = False,
    consent_text: str = "",
    salts: Sequence[str] = (),
    on_line: Callable[[LineResult], None] | None = None,
) -> ImportReport:
    """Import `path` into the session's transaction, calling `on_line` for every line in order.

    A row's `status` is honoured: unsubscribed, bounced and complained rows are
    never made active (a subscriber they name is stopped); `resubscribe`
    re-activates people who stopped only for rows without such a status. A
    pending subscriber is never confirmed by an import. Topics the file names
    that do not exist are refused all together before anything is written,
    unless `create_topics`. With `suppress`, the file is a bare list of
    addresses (one a line, an `email` header optional) that must never be
    mailed. Addresses erased on request are refused (checked with `salts`, the
    current and old secret keys).
    """
    _check_utf8(path)
    records = _records(path)
    first_line, header = next(records, (1, []))
    layout = SUPPRESSION_LIST if suppress else _layout(path, header)
    created = _decide_topics(session, path, layout, create=create_topics) if layout.has("topics") else []
    importer = _Importer(session, path=path, layout=layout, default_language=parse_language(default_language),
                         resubscribe=resubscribe, suppress=suppress, consent_text=consent_text, salts=salts,
                         on_line=on_line)
    importer.report.created_topics = created
    if suppress and header and header[0].strip().lower() not in EMAIL_HEADERS:
        importer.take(first_line, header)  # a bare list: its first line is an address too
    for line, cells in records:
        importer.take(line, cells)
    importer.flush()
    return importer.report


def export_csv(session: Session, out: TextIO) -> int:
    """Write every subscriber (but the forgotten) to `out`; returns how many. Memory stays flat."""
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    query = (
        select(col(Subscriber.id), col(Subscriber.email), col(Subscriber.name), col(Subscriber.language),
               col(Subscriber.status), col(Subscriber.source), col(Subscriber.consent_text),
               col(Subscriber.created_at), col(Subscriber.confirmed_at), col(Subscriber.status_changed_at))
        .where(REMEMBERED)
        .order_by(col(Subscriber.id))
        .execution_options(yield_per=BATCH)
    )
    count = 0
    for part in session.execute(query).partitions():
        topics = topics_by_subscriber(session, [r.id for r in part])
        # Only the free-text cells can start like a formula: languages, topics, statuses and dates never do.
        writer.writerows(
            (guard(r.email), guard(r.name), r.language, " ".join(topics.get(r.id, [])), r.status, guard(r.source),
             guard(r.consent_text), _date(r.created_at), _date(r.confirmed_at), _date(r.status_changed_at))
            for r in part
        )
        count += len(part)
    return count


def _date(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _parse_date(text: str, column: str) -> datetime | None:
    """An export's date (UTC), or an ISO 8601 date with a zone; empty is None."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise StoreError(f"{column} {text!r} is not a date like 2026-12-01 09:00:00") from None
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _check_utf8(path: Path) -> None:
    """Refuse a file that is not UTF-8 before reading a line of it, naming the first bad line."""
    try:
        file = path.open("rb")
    except OSError as exc:
        raise CsvError(f"{path}: cannot read: {exc.strerror}") from None
    with file:
        for number, raw in enumerate(file, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CsvError(
                    f"{path}:{number}: not UTF-8 (byte 0x{raw[exc.start]:02x}); "
                    "save it as UTF-8 (\"CSV UTF-8\" in a spreadsheet) and import again. Nothing was imported."
                ) from None


def _records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """The header, then every record that is not empty, each with the line it starts on."""
    with path.open(encoding="utf-8-sig", newline="") as file:
        first = file.readline()
        delimiter = ";" if first.count(";") > first.count(",") else ","
        file.seek(0)
        # strict: a quote left open is an error, not the rest of the file swallowed into one cell
        reader = csv.reader(file, delimiter=delimiter, strict=True)
        line = 0
        try:
            for number, cells in enumerate(reader):
                start, line = line + 1, reader.line_num
                if number == 0 or any(cell.strip() for cell in cells):
                    yield start, cells
        except csv.Error as exc:
            raise CsvError(f"{path}:{line + 1}: {exc} (check the quotes in this record). Nothing was imported.") from None


def _layout(path: Path, header: list[str]) -> _Layout:
    """What each column of the file is: ours, a Mailchimp export, or a listmonk export.

    Our own columns must all be known (a typing mistake is an error, not a
    column quietly left out). In another tool's export, the columns we have no
    use for are read past and named in the report.
    """
    if len(header) > MAX_COLUMNS:
        raise CsvError(f"{path}:1: the header has {len(header):,} columns; an import file has at most {MAX_COLUMNS}. "
                       "Nothing was imported.")
    names = [name.strip() for name in header]
    lower = [name.lower() for name in names]
    if not any(lower):
        raise CsvError(f"{path}: the file is empty; it needs a header line such as: email,name,language,topics")
    if "email address" in lower:
        layout = _foreign(names, lower, MAILCHIMP_COLUMNS, "Mailchimp export")
    elif "uuid" in lower and "attributes" in lower:
        layout = _foreign(names, lower, LISTMONK_COLUMNS, "listmonk export")
    else:
        unknown = [name for name, low in zip(names, lower, strict=True) if low and low not in EXPORT_COLUMNS]
        if unknown:
            raise CsvError(
                f"{path}:1: unknown column {', '.join(repr(name) for name in unknown)} "
                f"(known: {', '.join(EXPORT_COLUMNS)}; Mailchimp's and listmonk's exports are recognised too). "
                "Nothing was imported."
            )
        layout = _Layout([low or None for low in lower], "mailer", [])
    repeated = sorted(name for name, n in Counter(filter(None, layout.columns)).items() if n > 1)
    if repeated:
        raise CsvError(f"{path}:1: column {', '.join(repr(name) for name in repeated)} appears twice. Nothing was imported.")
    if not layout.has("email"):
        raise CsvError(f"{path}:1: no 'email' column (found: {', '.join(filter(None, names)) or 'none'}). Nothing was imported.")
    return layout


def _foreign(names: list[str], lower: list[str], mapping: dict[str, str], kind: str) -> _Layout:
    columns = [mapping.get(low) for low in lower]
    return _Layout(columns, kind, [name for name, column in zip(names, columns, strict=True) if column is None and name])


def _decide_topics(session: Session, path: Path, layout: _Layout, *, create: bool) -> list[str]:
    """Read the file's topics column once: create the unknown topics, or refuse the whole file naming them."""
    index = layout.columns.index("topics")
    rows: Counter[str] = Counter()
    records = _records(path)
    next(records)  # the header
    for _line, cells in records:
        if index < len(cells):
            rows.update(split_topics(unguard(cells[index])))
    known = set(session.scalars(select(col(Topic.name))))
    unknown = sorted(name for name in rows if name not in known)

    def counted(names: list[str]) -> str:
        return ", ".join(f"{name!r} ({rows[name]} row{'s' * (rows[name] != 1)})" for name in names)

    invalid = [name for name in unknown if not TOPIC_NAME.match(name)]
    if invalid:  # neither option would help: the file must change
        raise CsvError(f"{path}: topic {counted(invalid)} cannot be a topic name (lower-case letters, digits, '-' or '_'; "
                       "at most 64). Correct the topics column. Nothing was imported.")
    if unknown and not create:
        raise CsvError(f"{path}: unknown topic {counted(unknown)}. Add them with `mailer topics add NAME`, or import with "
                       "--create-topics to create them. Nothing was imported.")
    for name in unknown:
        add_topic(session, name=name)
    return unknown


class _Importer:
    """Decides lines a batch at a time, so each batch costs two look-ups and three bulk inserts."""

    def __init__(self, session: Session, *, path: Path, layout: _Layout, default_language: Language, resubscribe: bool,
                 suppress: bool, consent_text: str, salts: Sequence[str],
                 on_line: Callable[[LineResult], None] | None) -> None:
        self.session, self.path, self.layout, self.default_language = session, path, layout, default_language
        self.resubscribe, self.suppress, self.consent_text, self.salts = resubscribe, suppress, consent_text, salts
        self.on_line = on_line
        self.channel = "suppress" if suppress else "import"
        # A file with both topics and status records a list (an export): its topics are restored as they were.
        # Anyone else new joins the default topics too, as they would from any other way in.
        exact_topics = suppress or (layout.has("topics") and layout.has("status"))
        self.topic_ids: dict[str, int] = dict(session.execute(select(col(Topic.name), col(Topic.id))).all())
        self.topic_names = {topic_id: name for name, topic_id in self.topic_ids.items()}
        self.defaults = [] if exact_topics else [topic.name for topic in default_topics(session)]
        self.date_columns = [column for column in DATE_COLUMNS if layout.has(column)]
        self.forgotten = set(session.scalars(select(col(ForgottenAddress.address_hash))))
        self.first_line: dict[str, int] = {}  # address key -> line it first appeared on
        self.batch: list[_Row | LineResult] = []
        self.report = ImportReport(read_past=layout.read_past, kind=layout.kind)

    def take(self, line: int, cells: list[str]) -> None:
        self.batch.append(self._parse(line, cells))
        if len(self.batch) >= BATCH:
            self.flush()

    def _parse(self, line: int, cells: list[str]) -> _Row | LineResult:
        columns = self.layout.columns
        values = {name: unguard(cell).strip() for name, cell in zip(columns, cells, strict=False) if name}
        email = values.get("email", "")
        if len(cells) > len(columns) and not self.suppress:
            return LineResult(line, email, Outcome.rejected, f"{len(cells)} cells but the header has {len(columns)} columns")
        try:
            if not email:
                raise StoreError("no email address")
            email, key = normalise_email(email)
            language = parse_language(values["language"]) if values.get("language") else None
            status = SubscriberStatus.unsubscribed if self.suppress else _status(values)
            dates = {column: _parse_date(values.get(column, ""), column) for column in self.date_columns}
        except StoreError as exc:
            return LineResult(line, email, Outcome.rejected, str(exc))
        first = self.first_line.setdefault(key, line)
        if first != line:
            return LineResult(line, email, Outcome.rejected, f"duplicate of line {first}")
        name = values.get("name") or " ".join(filter(None, (values.get("first_name"), values.get("last_name"))))
        source = clean_text(values["source"], SOURCE_LENGTH) if "source" in values else None
        consent = clean_text(values["consent"]) if "consent" in values else None
        return _Row(line, email, key, clean_name(name), language, split_topics(values.get("topics", "")), status,
                    source, consent, dates)

    def flush(self) -> None:
        rows = [item for item in self.batch if isinstance(item, _Row)]
        existing = self._existing([row.key for row in rows])
        decided: list[LineResult] = [item for item in self.batch if isinstance(item, LineResult)]
        new: list[_Row] = []
        for row in rows:
            if row.key in existing:
                decided.append(self._update(row, *existing[row.key]))
            elif any(forgotten_hash(row.key, salt) in self.forgotten for salt in self.salts):
                outcome = Outcome.unchanged if self.suppress else Outcome.rejected
                decided.append(LineResult(row.line, row.email, outcome, "forgotten (erased on request)"))
            else:
                new.append(row)
                status = row.status or SubscriberStatus.active
                reason = "" if status == SubscriberStatus.active else f"{status}, never mailed" if status in STOPPED else status
                decided.append(LineResult(row.line, row.email, Outcome.added, reason))
        self._insert(new)
        for result in sorted(decided, key=lambda result: result.line):
            self.report.counts[result.outcome] += 1
            if self.on_line:
                self.on_line(result)
        self.batch = []

    def _existing(self, keys: list[str]) -> dict[str, tuple[Any, set[int]]]:
        """Subscribers already there, by address key, with their topic ids."""
        if not keys:
            return {}
        found = {
            row.email_key: row
            for row in self.session.execute(
                select(col(Subscriber.id), col(Subscriber.email_key), col(Subscriber.name), col(Subscriber.language),
                       col(Subscriber.status))
                .where(col(Subscriber.email_key).in_(keys))
            )
        }
        topics: dict[int, set[int]] = defaultdict(set)
        ids = [row.id for row in found.values()]
        if ids:
            links = (select(col(SubscriberTopic.subscriber_id), col(SubscriberTopic.topic_id))
                     .where(col(SubscriberTopic.subscriber_id).in_(ids)))
            for subscriber_id, topic_id in self.session.execute(links):
                topics[subscriber_id].add(topic_id)
        return {key: (row, topics[row.id]) for key, row in found.items()}

    def _update(self, row: _Row, current: Any, topic_ids: set[int]) -> LineResult:
        """An address already on the list: stop it, add topics, change name or language, through the services."""
        if row.status in STOPPED:
            if current.status in STOPPED:
                return LineResult(row.line, row.email, Outcome.unchanged, f"already {current.status}")
            self._stop(current.id, row.status)
            return LineResult(row.line, row.email, Outcome.updated, f"{row.status} (was {current.status})")
        if current.status == SubscriberStatus.pending:
            reason = "pending; only their own confirmation link confirms them"
            return LineResult(row.line, row.email, Outcome.unchanged, reason)
        changes = []
        if current.status in STOPPED:
            if not self.resubscribe:
                reason = f"{current.status}; not re-activated without --resubscribe"
                return LineResult(row.line, row.email, Outcome.unchanged, reason)
            resubscribe(self.session, subscriber_id=current.id, channel=self.channel)
            changes.append(f"re-activated (was {current.status})")
        name = row.name if row.name and row.name != current.name else None
        language = row.language if row.language and row.language != current.language else None
        added = [topic for topic in row.topics if self.topic_ids[topic] not in topic_ids]
        if name or language or added:
            topics = [self.topic_names[topic_id] for topic_id in topic_ids] + added if added else None
            update_preferences(self.session, subscriber_id=current.id, name=name, language=language,
                               topics=topics, channel=self.channel)
            changes += ["name"] * bool(name) + [f"language {current.language} -> {language}"] * bool(language)
            changes += [f"+{topic}" for topic in added]
        if not changes:
            return LineResult(row.line, row.email, Outcome.unchanged)
        return LineResult(row.line, row.email, Outcome.updated, ", ".join(changes))

    def _stop(self, subscriber_id: int, status: SubscriberStatus) -> None:
        """Stop an active or pending subscriber the file says left, with the event their status calls for."""
        detail = f"from {self.path.name}"
        if status == SubscriberStatus.bounced:
            mark_bounced(self.session, subscriber_id=subscriber_id, detail=detail)
        elif status == SubscriberStatus.complained:
            mark_complained(self.session, subscriber_id=subscriber_id, detail=detail)
        else:
            unsubscribe(self.session, subscriber_id=subscriber_id, channel=self.channel)

    def _insert(self, rows: list[_Row]) -> None:
        """New subscribers, their topics and their `imported` events, in three bulk inserts."""
        if not rows:
            return
        now, detail = utcnow(), f"from {self.path.name}"
        ids: dict[str, int] = dict(
            self.session.execute(
                insert(_table(Subscriber)).returning(col(Subscriber.email_key), col(Subscriber.id)),
                [self._values(row, now) for row in rows],
            ).all()
        )
        # The default topics are for new readers; someone added as stopped (a suppression) joins none.
        links = [{"subscriber_id": ids[row.key], "topic_id": self.topic_ids[topic]} for row in rows
                 for topic in dict.fromkeys((*(() if row.status in STOPPED else self.defaults), *row.topics))]
        if links:
            self.session.execute(insert(_table(SubscriberTopic)), links)
        self.session.execute(
            insert(_table(Event)),
            [{"subscriber_id": ids[row.key], "kind": EventKind.imported, "channel": self.channel,
              "detail": detail if row.status in (None, SubscriberStatus.active) else f"{detail}; {row.status}",
              "send_id": None, "created_at": now} for row in rows],
        )

    def _values(self, row: _Row, now: datetime) -> dict[str, object]:
        """A new subscriber's row: what the file says, else what an import means (active, consented now)."""
        status = row.status or SubscriberStatus.active
        confirmed = row.dates["confirmed_at"] if "confirmed_at" in row.dates else now if status == SubscriberStatus.active else None
        return {
            "email": row.email, "email_key": row.key, "name": row.name,
            "language": row.language or self.default_language, "status": status,
            "source": self.channel if row.source is None else row.source,
            "consent_text": self.consent_text if row.consent is None else row.consent,
            "created_at": row.dates.get("created_at") or now, "confirmed_at": confirmed,
            "status_changed_at": row.dates.get("status_changed_at") or now,
        }


def _table(model: type[SQLModel]) -> Table:
    """A table model's `Table`: the bulk inserts go through it, without the ORM."""
    table: Table = model.__table__  # type: ignore[attr-defined]  # set on every table model, but not declared
    return table


def _status(values: dict[str, str]) -> SubscriberStatus | None:
    """The status a row states: its `status` cell, or Mailchimp's clean and unsubscribe times; None if none."""
    word = values.get("status", "").lower()
    if word:
        if word not in STATUS_WORDS:
            others = [word for word in STATUS_WORDS if word not in set(SubscriberStatus)]
            raise StoreError(f"unknown status {values['status']!r} (use {', '.join(SubscriberStatus)}; "
                             f"also read: {', '.join(others)})")
        return STATUS_WORDS[word]
    if values.get("clean_time"):
        return SubscriberStatus.bounced
    if values.get("unsub_time"):
        return SubscriberStatus.unsubscribed
    return None
