"""What every command module shares: settings and database sessions, made once per run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING

from rich.console import Console

from mailer.config import Settings, load_settings

if TYPE_CHECKING:  # the store is imported only by commands that use it
    from sqlalchemy import Engine
    from sqlmodel import Session

console = Console(highlight=False)


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The settings for this command run (a command runs in its own process)."""
    return load_settings()


def open_store() -> Engine:
    """An engine on the configured database, refused (`DatabaseOutOfDate`) if its schema is behind."""
    from mailer.store.db import make_engine, require_current

    engine = make_engine(settings().database_url)
    require_current(engine)
    return engine


@contextmanager
def session() -> Iterator[Session]:
    """A session on the configured, up-to-date database; the caller commits."""
    from mailer.store.db import new_session

    engine = open_store()
    try:
        with new_session(engine) as db_session:
            yield db_session
    finally:
        engine.dispose()
