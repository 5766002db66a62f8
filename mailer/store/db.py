"""Engines, sessions and the schema's version.

SQLite gets WAL, foreign keys and a busy timeout on every connection. The schema
is changed only by the Alembic migrations shipped in `mailer/store/migrations`,
run in-process (no alembic.ini), so an installed package can upgrade itself.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, event, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session, SQLModel, create_engine

from mailer.errors import ConfigError, DatabaseOutOfDate, StoreError
from mailer.store import models  # noqa: F401  (registers the tables)

MIGRATIONS = Path(__file__).with_name("migrations")
# Tables in the same database that the models do not own: APScheduler's job store.
FOREIGN_TABLES = {"apscheduler_jobs"}
# One difference `drift` finds, as Alembic words it: ("add_table", table), ("remove_column", schema, table,
# column)... or, for the changes to one column, a list of such tuples.
Difference = tuple[Any, ...] | list[tuple[Any, ...]]


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """An engine for `url`, with SQLite set up for one writer and many readers.

    `pool_size`: connections the pool keeps for use at once (a send holds one per SMTP
    connection, and more: `mailer.delivery.engine.open_database`), with ten more on demand.
    """
    try:
        if url.startswith("sqlite"):
            in_memory = make_url(url).database in (None, "", ":memory:")  # one shared connection, no pool to size
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                                   **({} if in_memory else {"pool_size": pool_size}))
            _create_private(engine.url.database)
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        return create_engine(url, pool_pre_ping=True, pool_size=pool_size)
    except (ArgumentError, ImportError) as exc:  # not a URL, or a database whose driver is not installed
        raise ConfigError(
            f"database_url: cannot use it ({exc}); write sqlite:///mailer.db or postgresql+psycopg://user@host/name"
        ) from None


def _create_private(database: str | None) -> None:
    """Create a missing SQLite file readable by its owner only: it holds every subscriber's address.

    SQLite would create it with the umask's permissions (usually 0644) and gives
    its -wal and -shm files the same permissions as the database file.
    """
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:  # it exists, or its folder does not: opening it reports the latter plainly
        pass


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Leave tables the models do not own (and their indexes) out of migrations and drift checks."""
    table = obj.name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table not in FOREIGN_TABLES


def _config(connection: Any = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=1)
def head_revision() -> str | None:
    """The revision the code expects: the newest migration shipped."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def _known_revisions() -> set[str]:
    return {script.revision for script in ScriptDirectory.from_config(_config()).walk_revisions()}


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for an empty database).

    Being the first thing every command asks the database, it is also where an
    unreachable server or an unreadable file becomes one plain `StoreError`.
    """
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except DBAPIError as exc:
        reason = " ".join(line.strip() for line in str(exc.orig).splitlines())
        raise StoreError(f"cannot open the database {engine.url.render_as_string(hide_password=True)}: {reason}") from None


def upgrade(engine: Engine) -> None:
    """Apply every migration the database has not had yet (creating the SQLite file if missing)."""
    _refuse_newer(current_revision(engine))
    with engine.connect() as connection:
        sqlite = engine.dialect.name == "sqlite"
        if sqlite:  # a batch migration rebuilds a table and drops the old one: that must not cascade
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")  # (only takes effect outside a transaction)
            connection.commit()
        try:
            with connection.begin():
                command.upgrade(_config(connection), "head")
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


def require_current(engine: Engine) -> None:
    """Refuse to work on a database whose schema is not the one this code was written for."""
    current = current_revision(engine)
    if current != head_revision():
        _refuse_newer(current)
        raise DatabaseOutOfDate("database is not up to date: run `mailer db upgrade`")


def _refuse_newer(current: str | None) -> None:
    """A revision this code does not ship was written by a newer mailer: downgrading is not ours to do."""
    if current is not None and current not in _known_revisions():
        raise DatabaseOutOfDate(f"database is at revision {current}, newer than this mailer knows: upgrade mailer")


def drift(engine: Engine) -> list[Difference]:
    """Differences between the database and the models (empty when the migrations match the code)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_object": include_object, "compare_type": True})
        differences: list[Difference] = compare_metadata(context, SQLModel.metadata)  # typed Any by Alembic
        return differences


def new_revision(engine: Engine, message: str) -> None:
    """Write a migration from the difference between `engine`'s database (at head) and the models.

    For developers changing `models.py`; read the generated file over before committing it.
    """
    with engine.begin() as connection:
        command.revision(_config(connection), message=message, autogenerate=True)


def new_session(engine: Engine) -> Session:
    return Session(engine, expire_on_commit=False)
