"""The instant of the debtor's message an agent's answer responds to: a debtor who writes
at a time they designated inconvenient may get one answer at that time, through the same
medium (Reg F comment 6(b)(1)-2), and the dispatcher checks the answer again when it
leaves. Null for every other attempt.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import outreach.db_types

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE on both databases (SQLite has had DROP COLUMN since 3.35): no copy of
# the attempt table, which may hold millions of rows.
def upgrade() -> None:
    op.add_column(
        "attempt",
        sa.Column("responding_to", outreach.db_types.UTCDateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("attempt", "responding_to")
