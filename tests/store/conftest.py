"""Store tests run twice: on a SQLite file and on a real PostgreSQL server (skipped if none answers).

PostgreSQL gets one database of its own per test run (created from the
migrations, dropped at the end) and is emptied before each test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import make_url, text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, SQLModel, create_engine

from mailer.cli import main
from mailer.cli.common import console
from mailer.cli.common import settings as cli_settings
from mailer.config import Settings
from mailer.store.db import make_engine, new_session, upgrade
from mailer.store.models import Topic

POSTGRES_URL = os.environ.get("MAILER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database on the test server, at the newest migration, dropped after the run."""
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        admin.connect().close()
    except OperationalError as exc:
        pytest.skip(f"PostgreSQL does not answer at {POSTGRES_URL}: {exc.orig}")
    name = f"mailer_store_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


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
def session(engine) -> Iterator[Session]:
    with new_session(engine) as db_session:
        yield db_session


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
