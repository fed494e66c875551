"""Alembic environment: runs against the engine handed over by ``outreach.db.upgrade``.

From the command line (``alembic -c outreach/migrations/alembic.ini revision
--autogenerate``) it builds the engine from the same Settings as the application.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine
from sqlmodel import SQLModel

import outreach.models  # noqa: F401  (registers every table on the metadata)
from outreach.config import Settings
from outreach.db import make_engine

config = context.config
target_metadata = SQLModel.metadata


def run_migrations() -> None:
    engine = config.attributes.get("engine")
    if not isinstance(engine, Engine):
        engine = make_engine(Settings())
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            # SQLite cannot ALTER most things in place; batch mode copies the table.
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            # Each migration commits on its own, so that alembic_version always names the
            # last one committed: a migration that commits part of its work early (an
            # index built CONCURRENTLY) leaves no earlier migration half-recorded.
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations()
