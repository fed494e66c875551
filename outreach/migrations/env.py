"""Alembic environment: runs against the engine handed over by ``outreach.db.upgrade``.

From the command line (``alembic -c outreach/migrations/alembic.ini revision
--autogenerate``) it builds the engine from the same Settings as the application.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo
from sqlalchemy import Connection, Engine, event
from sqlmodel import SQLModel

import outreach.models  # noqa: F401  (registers every table on the metadata)
from outreach.config import Settings
from outreach.db import make_engine
from outreach.errors import OutreachError

config = context.config
target_metadata = SQLModel.metadata


def run_migrations() -> None:
    engine = config.attributes.get("engine")
    if not isinstance(engine, Engine):
        engine = make_engine(Settings())
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            _foreign_keys(connection, on=False)
        try:
            if sqlite:
                _transactional_ddl(connection, on=True)
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                # SQLite cannot ALTER most things in place; batch mode copies the table.
                render_as_batch=sqlite,
                compare_type=True,
                # Each migration commits on its own, so that alembic_version always names
                # the last one committed: a migration that commits part of its work early
                # (an index built CONCURRENTLY) leaves no earlier migration half-recorded.
                transaction_per_migration=True,
                on_version_apply=_references_hold if sqlite else None,
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            if sqlite:
                _foreign_keys_back_on(connection)


def _transactional_ddl(connection: Connection, *, on: bool) -> None:
    """SQLite DDL inside the migration's transaction, or (``on=False``) pysqlite's own
    transaction handling back. pysqlite (Python 3.11) opens a transaction only before an
    INSERT, UPDATE or DELETE: a migration's ALTER or CREATE TABLE ran before it would be
    committed at once, and a migration refused afterwards (``_references_hold``) would
    leave it. So, for this connection only, pysqlite opens none (``isolation_level=None``)
    and each transaction SQLAlchemy begins starts with our BEGIN (SQLAlchemy's pysqlite
    recipe). Set between transactions: the pragma that turns foreign keys off ran before,
    outside any."""
    driver = connection.connection.driver_connection
    if on:
        driver.isolation_level = None  # type: ignore[union-attr]
        event.listen(connection, "begin", _begin)
    else:
        if event.contains(connection, "begin", _begin):
            event.remove(connection, "begin", _begin)
        driver.isolation_level = ""  # type: ignore[union-attr]  # pysqlite's default


def _begin(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN")


def _foreign_keys(connection: Connection, *, on: bool) -> None:
    """SQLite's foreign keys on or off for ``connection``. Off while migrating: a batch step
    copies a table and drops the original, which SQLite refuses while another table's rows
    refer to it (Alembic's advice for batch mode). The pragma does nothing inside a
    transaction, so it is set between them, and read back."""
    connection.exec_driver_sql(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
    connection.commit()
    if bool(connection.exec_driver_sql("PRAGMA foreign_keys").scalar()) is not on:
        connection.rollback()
        raise OutreachError(f"SQLite did not turn foreign keys {'on' if on else 'off'}")
    connection.commit()


def _foreign_keys_back_on(connection: Connection) -> None:
    """Foreign keys on again before the connection goes back to the pool; a connection
    left without them is closed instead, never lent to the application."""
    try:
        connection.rollback()  # what a failed migration left open
        _transactional_ddl(connection, on=False)
        _foreign_keys(connection, on=True)
    except BaseException:
        connection.invalidate()
        raise


def _references_hold(
    ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]
) -> None:
    """After each migration, before it commits: every reference still names a row. With
    foreign keys off nothing else checks that; a migration that broke one is refused,
    and its transaction rolled back."""
    assert ctx.connection is not None
    broken = ctx.connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        shown = "; ".join(
            f"{table} row {rowid} refers to a missing {parent} row"
            for table, rowid, parent, _ in broken[:5]
        )
        more = f" (and {len(broken) - 5} more)" if len(broken) > 5 else ""
        done = "migration" if step.is_upgrade else "the downgrade of migration"
        raise OutreachError(
            f"{done} {step.up_revision_id} would leave references to rows that do not exist:"
            f" {shown}{more}; it was not applied (nothing of it was kept)"
        )


run_migrations()
