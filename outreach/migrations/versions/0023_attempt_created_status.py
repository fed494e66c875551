"""An index on ``attempt (created_at, status)``: the start page counts the day's messages
by status, which otherwise reads every attempt there is.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = "ix_attempt_created_status"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.create_index(_NAME, "attempt", ["created_at", "status"])
        return
    # Built CONCURRENTLY, outside the migration's transaction, as 0012 and 0024 build
    # theirs: a plain CREATE INDEX blocks every write to attempt, the largest table, while
    # it is read. One left invalid by a failed concurrent build is built again.
    with op.get_context().autocommit_block():
        valid = (
            op.get_bind()
            .execute(
                sa.text(
                    "SELECT pg_index.indisvalid FROM pg_index"
                    " JOIN pg_class ON pg_class.oid = pg_index.indexrelid"
                    " WHERE pg_class.relname = :name"
                ),
                {"name": _NAME},
            )
            .scalar()
        )
        if valid:
            return
        if valid is not None:
            op.drop_index(_NAME, table_name="attempt", postgresql_concurrently=True)
        op.create_index(_NAME, "attempt", ["created_at", "status"], postgresql_concurrently=True)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.drop_index(_NAME, table_name="attempt")
        return
    with op.get_context().autocommit_block():
        op.drop_index(_NAME, table_name="attempt", postgresql_concurrently=True)
