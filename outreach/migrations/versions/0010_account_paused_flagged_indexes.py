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


def upgrade() -> None:
    for name, column in (("ix_account_paused", "paused_until"), ("ix_account_flagged", "flag")):
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(name, "account", [column], sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    op.drop_index("ix_account_flagged", table_name="account")
    op.drop_index("ix_account_paused", table_name="account")
