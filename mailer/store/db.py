"""Engines and sessions. SQLite gets WAL, foreign keys and a busy timeout on every connection."""

from __future__ import annotations

from sqlalchemy import Engine, event
from sqlmodel import Session, SQLModel, create_engine

from mailer.store import models  # noqa: F401  (registers the tables)


def make_engine(url: str) -> Engine:
    """An engine for `url`, with SQLite set up for one writer and many readers."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def upgrade(engine: Engine) -> None:
    """Bring the schema up to date. (To be replaced by Alembic migrations.)"""
    SQLModel.metadata.create_all(engine)


def new_session(engine: Engine) -> Session:
    return Session(engine, expire_on_commit=False)
