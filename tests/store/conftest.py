"""Store tests run twice: on a SQLite file and on a real PostgreSQL server (skipped if none answers).

PostgreSQL gets one database of its own per test run (created from the
migrations, dropped at the end) and is emptied before each test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text
from sqlmodel import Session, SQLModel

from mailer.cli import main
from mailer.cli.common import console
from mailer.cli.common import settings as cli_settings
from mailer.config import Settings
from mailer.store.db import make_engine
from mailer.store.models import Topic
from tests.fixtures.postgres import fresh_database


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database on the test server, at the newest migration, dropped after the run."""
    with fresh_database("mailer_store") as url:
        yield url


def _empty(url: str) -> None:
    engine = make_engine(url)
    tables = ", ".join(f'"{table.name}"' for table in SQLModel.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, workdir: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{workdir / 'mailer.db'}"
    url = request.getfixturevalue("postgres_url")
    _empty(url)
    return url


@pytest.fixture
def settings(settings: Settings, database_url: str) -> Settings:
    """The shared settings, on this run's database (so the shared `engine` fixture follows it)."""
    return settings.model_copy(update={"database_url": database_url})


@pytest.fixture
def topics(session: Session) -> list[str]:
    """Two topics most tests need."""
    session.add_all([Topic(name="news", description="Monthly news"), Topic(name="events", description="What's on")])
    session.commit()
    return ["news", "events"]


@pytest.fixture
def cli(settings: Settings, engine, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run `mailer ...` in-process against this test's (upgraded) database, as a user would."""
    monkeypatch.setattr(console, "_width", 160)  # tables wide enough that no address is folded
    env = {"MAILER_SECRET_KEY": settings.secret_key, "MAILER_DATABASE_URL": settings.database_url}

    def run(*args: str, input: str | None = None) -> Result:
        cli_settings.cache_clear()
        result = CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)
        cli_settings.cache_clear()
        return result

    return run
