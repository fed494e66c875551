"""An index on account references in byte order (PostgreSQL's "C" collation): agents find
an account by a reference's beginning, a range compared in byte order. The unique index on
the reference follows the database's collation, so under a language locale (en_US.UTF-8,
C.UTF-8, an ICU locale) it cannot answer that range, and each search read the whole
account table. SQLite compares in byte order already: its unique index serves.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # Built CONCURRENTLY, outside the migration's transaction: a plain CREATE INDEX blocks
    # every write to the account table (plans, imports, payments) while a large table is
    # read. The build commits before this migration is recorded, so an upgrade stopped in
    # between finds the index there on its next run (kept), and a concurrent build that
    # failed (cancelled, a deadlock) leaves it behind marked invalid (built again).
    with op.get_context().autocommit_block():
        valid = (
            op.get_bind()
            .execute(
                sa.text(
                    "SELECT pg_index.indisvalid FROM pg_index"
                    " JOIN pg_class ON pg_class.oid = pg_index.indexrelid"
                    " WHERE pg_class.relname = 'ix_account_reference_c'"
                )
            )
            .scalar()
        )
        if valid:
            return
        if valid is not None:
            op.drop_index(
                "ix_account_reference_c", table_name="account", postgresql_concurrently=True
            )
        op.create_index(
            "ix_account_reference_c",
            "account",
            [sa.text('reference COLLATE "C"')],
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.drop_index(
                "ix_account_reference_c", table_name="account", postgresql_concurrently=True
            )
