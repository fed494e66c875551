"""An index on compliance events' addresses: a revoked consent that names a number holds on
every account using the number, which the planner finds by the number.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = "ix_compliance_event_address"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.create_index(_NAME, "compliance_event", ["address"])
        return
    # Built CONCURRENTLY, outside the migration's transaction, as 0012 builds its index: a
    # plain CREATE INDEX blocks every write to the table (imports, replies) while it is
    # read. One left invalid by a failed concurrent build is built again.
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
            op.drop_index(_NAME, table_name="compliance_event", postgresql_concurrently=True)
        op.create_index(_NAME, "compliance_event", ["address"], postgresql_concurrently=True)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.drop_index(_NAME, table_name="compliance_event")
        return
    with op.get_context().autocommit_block():
        op.drop_index(_NAME, table_name="compliance_event", postgresql_concurrently=True)
