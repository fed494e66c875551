"""An attempt held for review (``unknown``) records who settled it, when, and their note.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import outreach.db_types

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE on both databases, as in 0017.
def upgrade() -> None:
    op.add_column("attempt", sa.Column("reviewed_by", sa.String(length=64), nullable=True))
    op.add_column(
        "attempt",
        sa.Column("reviewed_at", outreach.db_types.UTCDateTime(timezone=True), nullable=True),
    )
    op.add_column("attempt", sa.Column("review_note", sa.String(length=500), nullable=True))


def downgrade() -> None:
    op.drop_column("attempt", "review_note")
    op.drop_column("attempt", "reviewed_at")
    op.drop_column("attempt", "reviewed_by")
