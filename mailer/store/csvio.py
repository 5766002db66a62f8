"""CSV import and export of subscribers, both streamed in batches.

Import reads the columns `email, name, language, topics` (header names in any
case, UTF-8 with or without BOM, comma or semicolon) and decides every line:
added, updated, unchanged or rejected, with the reason. It writes in the
caller's transaction and never commits: the caller commits, or rolls back for a
dry run, so an import is all or nothing. Export writes what import reads, plus
status, source and dates (UTC), so an export can be imported again unchanged.
"""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import insert, select
from sqlmodel import Session

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
    STOPPED,
    confirm,
    forgotten_hash,
    normalise_email,
    parse_language,
    resubscribe,
    update_preferences,
)
from mailer.store.topics import topics_by_subscriber

IMPORT_COLUMNS = ("email", "name", "language", "topics")
EXPORT_COLUMNS = (*IMPORT_COLUMNS, "status", "source", "created_at", "confirmed_at", "status_changed_at")
BATCH = 1000
TOPIC_SEPARATORS = re.compile(r"[\s,;|]+")


class CsvError(StoreError):
    """The file as a whole cannot be imported (encoding, header); nothing was written."""


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

    def __str__(self) -> str:
        return ", ".join(f"{self.counts[outcome]} {outcome}" for outcome in Outcome)


@dataclass(slots=True)
class _Row:
    line: int
    email: str
    key: str
    name: str
    language: Language | None
    topics: list[str]


def split_topics(text: str) -> list[str]:
    """Topic names from one cell: separated by spaces, commas, semicolons or bars."""
    return list(dict.fromkeys(name for name in TOPIC_SEPARATORS.split(text.strip().lower()) if name))


def import_csv(
    session: Session,
    *,
    path: Path,
    default_language: Language | str = Language.en,
    resubscribe: bool = False,
    consent_text: str = "",
    salts: Sequence[str] = (),
    on_line: Callable[[LineResult], None] | None = None,
) -> ImportReport:
    """Import `path` into the session's transaction, calling `on_line` for every line in order.

    Never re-activates someone unsubscribed, bounced or complained unless
    `resubscribe`; refuses addresses erased on request (checked with `salts`,
    the current and old secret keys).
    """
    _check_utf8(path)
    importer = _Importer(session, path=path, default_language=parse_language(default_language),
                         resubscribe=resubscribe, consent_text=consent_text, salts=salts, on_line=on_line)
    with path.open(encoding="utf-8-sig", newline="") as file:
        header = file.readline()
        delimiter = ";" if header.count(";") > header.count(",") else ","
        file.seek(0)
        # strict: a quote left open is an error, not the rest of the file swallowed into one cell
        reader = csv.reader(file, delimiter=delimiter, strict=True)
        line = 0
        try:
            columns = _columns(path, next(reader, None))
            line = reader.line_num
            for cells in reader:
                first_line, line = line + 1, reader.line_num
                if any(cell.strip() for cell in cells):
                    importer.take(first_line, columns, cells)
        except csv.Error as exc:
            raise CsvError(f"{path}:{line + 1}: {exc} (check the quotes in this record). Nothing was imported.") from None
    importer.flush()
    return importer.report


def export_csv(session: Session, out: TextIO) -> int:
    """Write every subscriber (but the forgotten) to `out`; returns how many. Memory stays flat."""
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    query = (
        select(Subscriber.id, Subscriber.email, Subscriber.name, Subscriber.language, Subscriber.status,
               Subscriber.source, Subscriber.created_at, Subscriber.confirmed_at, Subscriber.status_changed_at)
        .where(REMEMBERED)
        .order_by(Subscriber.id)
        .execution_options(yield_per=BATCH)
    )
    count = 0
    for part in session.execute(query).partitions():
        topics = topics_by_subscriber(session, [r.id for r in part])
        writer.writerows(
            (r.email, r.name, r.language, " ".join(topics.get(r.id, [])), r.status, r.source,
             _date(r.created_at), _date(r.confirmed_at), _date(r.status_changed_at))
            for r in part
        )
        count += len(part)
    return count


def _date(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


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


def _columns(path: Path, header: list[str] | None) -> list[str]:
    """Header names, lower-cased; a clear error for a missing email column or an unknown one."""
    if header is None:
        raise CsvError(f"{path}: the file is empty; it needs a header line such as: email,name,language,topics")
    columns = [name.strip().lower() for name in header]
    unknown = [name for name in columns if name and name not in EXPORT_COLUMNS]
    if unknown:
        raise CsvError(
            f"{path}:1: unknown column {', '.join(repr(name) for name in unknown)} "
            f"(known: {', '.join(IMPORT_COLUMNS)}; an export's {', '.join(EXPORT_COLUMNS[4:])} are read past). "
            "Nothing was imported."
        )
    repeated = sorted({name for name in columns if name and columns.count(name) > 1})
    if repeated:
        raise CsvError(f"{path}:1: column {', '.join(repr(name) for name in repeated)} appears twice. Nothing was imported.")
    if "email" not in columns:
        raise CsvError(f"{path}:1: no 'email' column (found: {', '.join(filter(None, columns)) or 'none'}). Nothing was imported.")
    return columns


class _Importer:
    """Decides lines a batch at a time, so each batch costs two look-ups and three bulk inserts."""

    def __init__(self, session: Session, *, path: Path, default_language: Language, resubscribe: bool,
                 consent_text: str, salts: Sequence[str], on_line: Callable[[LineResult], None] | None) -> None:
        self.session, self.path, self.default_language = session, path, default_language
        self.resubscribe, self.consent_text, self.salts = resubscribe, consent_text, salts
        self.on_line = on_line
        self.topic_ids: dict[str, int] = dict(session.execute(select(Topic.name, Topic.id)).all())
        self.topic_names = {topic_id: name for name, topic_id in self.topic_ids.items()}
        self.forgotten = set(session.scalars(select(ForgottenAddress.address_hash)))
        self.first_line: dict[str, int] = {}  # address key -> line it first appeared on
        self.batch: list[_Row | LineResult] = []
        self.report = ImportReport()

    def take(self, line: int, columns: list[str], cells: list[str]) -> None:
        self.batch.append(self._parse(line, columns, cells))
        if len(self.batch) >= BATCH:
            self.flush()

    def _parse(self, line: int, columns: list[str], cells: list[str]) -> _Row | LineResult:
        values = {name: cell.strip() for name, cell in zip(columns, cells, strict=False) if name}
        email = values.get("email", "")
        if len(cells) > len(columns):
            return LineResult(line, email, Outcome.rejected, f"{len(cells)} cells but the header has {len(columns)} columns")
        try:
            if not email:
                raise StoreError("no email address")
            email, key = normalise_email(email)
            language = parse_language(values["language"]) if values.get("language") else None
            topics = split_topics(values.get("topics", ""))
        except StoreError as exc:
            return LineResult(line, email, Outcome.rejected, str(exc))
        unknown = [name for name in topics if name not in self.topic_ids]
        if unknown:
            names = ", ".join(repr(name) for name in unknown)
            return LineResult(line, email, Outcome.rejected, f"unknown topic {names} (add it with `mailer topics add`)")
        first = self.first_line.setdefault(key, line)
        if first != line:
            return LineResult(line, email, Outcome.rejected, f"duplicate of line {first}")
        return _Row(line, email, key, values.get("name", ""), language, topics)

    def flush(self) -> None:
        rows = [item for item in self.batch if isinstance(item, _Row)]
        existing = self._existing([row.key for row in rows])
        decided: list[LineResult] = [item for item in self.batch if isinstance(item, LineResult)]
        new: list[_Row] = []
        for row in rows:
            if row.key in existing:
                decided.append(self._update(row, *existing[row.key]))
            elif any(forgotten_hash(row.key, salt) in self.forgotten for salt in self.salts):
                decided.append(LineResult(row.line, row.email, Outcome.rejected, "forgotten (erased on request)"))
            else:
                new.append(row)
                decided.append(LineResult(row.line, row.email, Outcome.added))
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
                select(Subscriber.id, Subscriber.email_key, Subscriber.name, Subscriber.language, Subscriber.status)
                .where(Subscriber.email_key.in_(keys))
            )
        }
        topics: dict[int, set[int]] = defaultdict(set)
        ids = [row.id for row in found.values()]
        if ids:
            links = select(SubscriberTopic.subscriber_id, SubscriberTopic.topic_id).where(SubscriberTopic.subscriber_id.in_(ids))
            for subscriber_id, topic_id in self.session.execute(links):
                topics[subscriber_id].add(topic_id)
        return {key: (row, topics[row.id]) for key, row in found.items()}

    def _update(self, row: _Row, current: Any, topic_ids: set[int]) -> LineResult:
        """An address already subscribed: add topics, change name or language, through the services."""
        if current.status in STOPPED and not self.resubscribe:
            reason = f"{current.status}; not re-activated without --resubscribe"
            return LineResult(row.line, row.email, Outcome.unchanged, reason)
        changes = []
        if current.status in STOPPED:
            resubscribe(self.session, subscriber_id=current.id, channel="import")
            changes.append(f"re-activated (was {current.status})")
        elif current.status == SubscriberStatus.pending:
            confirm(self.session, subscriber_id=current.id, channel="import")
            changes.append("confirmed (was pending)")
        name = row.name if row.name and row.name != current.name else None
        language = row.language if row.language and row.language != current.language else None
        added = [topic for topic in row.topics if self.topic_ids[topic] not in topic_ids]
        if name or language or added:
            topics = [self.topic_names[topic_id] for topic_id in topic_ids] + added if added else None
            update_preferences(self.session, subscriber_id=current.id, name=name, language=language,
                               topics=topics, channel="import")
            changes += ["name"] * bool(name) + [f"language {current.language} -> {language}"] * bool(language)
            changes += [f"+{topic}" for topic in added]
        if not changes:
            return LineResult(row.line, row.email, Outcome.unchanged)
        return LineResult(row.line, row.email, Outcome.updated, ", ".join(changes))

    def _insert(self, rows: list[_Row]) -> None:
        """New subscribers, their topics and their `imported` events, in three bulk inserts."""
        if not rows:
            return
        now, detail = utcnow(), f"from {self.path.name}"
        ids = dict(
            self.session.execute(
                insert(Subscriber.__table__).returning(Subscriber.email_key, Subscriber.id),
                [
                    {"email": row.email, "email_key": row.key, "name": row.name,
                     "language": row.language or self.default_language, "status": SubscriberStatus.active,
                     "source": "import", "consent_text": self.consent_text,
                     "created_at": now, "confirmed_at": now, "status_changed_at": now}
                    for row in rows
                ],
            ).all()
        )
        links = [{"subscriber_id": ids[row.key], "topic_id": self.topic_ids[topic]} for row in rows for topic in row.topics]
        if links:
            self.session.execute(insert(SubscriberTopic.__table__), links)
        self.session.execute(
            insert(Event.__table__),
            [{"subscriber_id": ids[row.key], "kind": EventKind.imported, "channel": "import",
              "detail": detail, "send_id": None, "created_at": now} for row in rows],
        )

