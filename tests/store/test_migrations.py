"""The migrations alone build the schema the models describe, and out-of-date databases are refused."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from mailer.errors import DatabaseOutOfDate
from mailer.store.db import current_revision, drift, head_revision, make_engine, require_current, upgrade


def test_the_migrations_build_exactly_the_models(engine):
    """The `engine` fixture's database was made by `upgrade` (Alembic) only; nothing may differ."""
    assert current_revision(engine) == head_revision()
    assert drift(engine) == []
    require_current(engine)


def test_upgrading_twice_changes_nothing(engine):
    upgrade(engine)
    assert drift(engine) == []


def test_the_scheduler_table_is_not_drift(engine):
    """APScheduler keeps its jobs in the same database; the migrations leave that table alone."""
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE apscheduler_jobs (id VARCHAR(191) PRIMARY KEY, next_run_time FLOAT)"))
        connection.execute(text("CREATE INDEX ix_apscheduler_jobs_next_run_time ON apscheduler_jobs (next_run_time)"))
    try:
        assert drift(engine) == []
    finally:
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE apscheduler_jobs"))


def test_an_empty_database_is_refused_with_what_to_run(workdir):
    engine = make_engine(f"sqlite:///{workdir / 'empty.db'}")
    with pytest.raises(DatabaseOutOfDate, match=r"database is not up to date: run `mailer db upgrade`"):
        require_current(engine)
    engine.dispose()


def test_a_database_at_another_revision_is_refused(engine):
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = 'aaaaaaaaaaaa'"))
        with pytest.raises(DatabaseOutOfDate, match="revision aaaaaaaaaaaa, newer than this mailer knows"):
            require_current(engine)
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM alembic_version"))
        with pytest.raises(DatabaseOutOfDate, match="run `mailer db upgrade`"):
            require_current(engine)
    finally:  # PostgreSQL's database is shared by the whole run
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM alembic_version"))
            connection.execute(text("INSERT INTO alembic_version VALUES (:head)"), {"head": head_revision()})
