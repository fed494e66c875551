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
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_account_reference_c", "account", [sa.text('reference COLLATE "C"')])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_account_reference_c", table_name="account")
