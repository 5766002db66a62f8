"""Alembic environment, run in-process by `mailer.store.db` with an open connection.

There is no alembic.ini: `mailer db upgrade` applies the migrations, and a new
one is written from the models with `mailer.store.db.new_revision(engine, message)`.
"""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from mailer.store import models  # noqa: F401  (registers the tables)
from mailer.store.db import include_object

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    include_object=include_object,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
