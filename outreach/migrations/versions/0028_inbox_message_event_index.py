"""An index on the inbox's provider events: a message from an address several accounts
have is stored once per account, every copy naming the same event, and answering or
handling one of them finds the others by it.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = "ix_inbox_message_event"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.create_index(_NAME, "inbox_message", ["provider_event_id"])
        return
    # Built CONCURRENTLY, outside the migration's transaction, as 0024 builds its index: a
    # plain CREATE INDEX would hold back every reply that comes in while it is read. One
    # left invalid by a failed concurrent build is built again.
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
            op.drop_index(_NAME, table_name="inbox_message", postgresql_concurrently=True)
        op.create_index(_NAME, "inbox_message", ["provider_event_id"], postgresql_concurrently=True)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.drop_index(_NAME, table_name="inbox_message")
        return
    with op.get_context().autocommit_block():
        op.drop_index(_NAME, table_name="inbox_message", postgresql_concurrently=True)
