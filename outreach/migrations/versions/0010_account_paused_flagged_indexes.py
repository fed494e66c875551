"""Partial indexes on the few paused and flagged accounts: housekeeping looks for pauses
that have ended on every run, and the start page counts paused and flagged accounts;
without them each read the whole account table (about 0.1 s a million accounts, inside
housekeeping's write transaction on SQLite).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_INDEXES = (("ix_account_paused", "paused_until"), ("ix_account_flagged", "flag"))


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for name, column in _INDEXES:
            where = sa.text(f"{column} IS NOT NULL")
            op.create_index(name, "account", [column], sqlite_where=where)
        return
    # Built CONCURRENTLY, outside the migration's transaction, as 0012 builds its index: a
    # plain CREATE INDEX blocks every write to account (imports, the daemons' leases) while
    # it is read. One left invalid by a failed concurrent build is built again.
    with op.get_context().autocommit_block():
        for name, column in _INDEXES:
            valid = (
                op.get_bind()
                .execute(
                    sa.text(
                        "SELECT pg_index.indisvalid FROM pg_index"
                        " JOIN pg_class ON pg_class.oid = pg_index.indexrelid"
                        " WHERE pg_class.relname = :name"
                    ),
                    {"name": name},
                )
                .scalar()
            )
            if valid:
                continue
            if valid is not None:
                op.drop_index(name, table_name="account", postgresql_concurrently=True)
            op.create_index(
                name,
                "account",
                [column],
                postgresql_where=sa.text(f"{column} IS NOT NULL"),
                postgresql_concurrently=True,
            )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for name, _ in reversed(_INDEXES):
            op.drop_index(name, table_name="account")
        return
    with op.get_context().autocommit_block():
        for name, _ in reversed(_INDEXES):
            op.drop_index(name, table_name="account", postgresql_concurrently=True)
