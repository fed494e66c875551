"""A compliance event an agent recorded from a form keeps the form's random key
(``compliance_event.form_key``), unique per account, as a promise's does (0027): the same
dispute or contact-at-work form sent twice (a double click, a form sent again after its
answer was lost) records one event, also when both arrive at once. Events recorded before,
and those recorded otherwise (replies, imports, the command line), have none.

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-11
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0034"
down_revision: str | None = "0033"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = "ux_compliance_event_form_key"
_TABLE = "compliance_event"
# Partial: only the few events an agent's form recorded are in it, not the table's millions.
_WHERE = "form_key IS NOT NULL"


def upgrade() -> None:
    # Plain ALTER TABLE on both databases, as in 0017; the column is NULL in every row. On
    # PostgreSQL it is committed before the index is built: an upgrade stopped during the
    # build finds it there when run again.
    if not _has_form_key():
        op.add_column(_TABLE, sa.Column("form_key", sa.String(length=64), nullable=True))
    if op.get_bind().dialect.name != "postgresql":
        op.create_index(
            _NAME, _TABLE, ["account_id", "form_key"], unique=True, sqlite_where=sa.text(_WHERE)
        )
        return
    # Built CONCURRENTLY, outside the migration's transaction, as 0024 builds its index on
    # the same table: a plain CREATE INDEX blocks every write to it (imports, replies) while
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
            op.drop_index(_NAME, table_name=_TABLE, postgresql_concurrently=True)
        op.create_index(
            _NAME,
            _TABLE,
            ["account_id", "form_key"],
            unique=True,
            postgresql_where=sa.text(_WHERE),
            postgresql_concurrently=True,
        )


def _has_form_key() -> bool:
    return "form_key" in {
        column["name"] for column in sa.inspect(op.get_bind()).get_columns(_TABLE)
    }


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.drop_index(_NAME, table_name=_TABLE)
    else:
        with op.get_context().autocommit_block():
            op.drop_index(_NAME, table_name=_TABLE, postgresql_concurrently=True)
    op.drop_column(_TABLE, "form_key")
