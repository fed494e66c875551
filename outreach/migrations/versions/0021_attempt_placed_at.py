"""When an attempt's latest send was marked sending: ``attempt.placed_at``. The caps count
a placed message from then, not from when it was planned (a message may wait hours or
days for its window or a provider). Attempts already placed without a time of sending take
the time they last changed: for one held for review, when it was held, which is after it
left (or, for a send still in flight, its batch's start, seconds before its slot).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import outreach.db_types

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PLACED_WITHOUT_TIME = (
    "UPDATE attempt SET placed_at = updated_at WHERE sent_at IS NULL "
    "AND status IN ('sending', 'sent', 'delivered', 'undelivered', 'failed', 'unknown')"
)


def upgrade() -> None:
    # Plain ALTER TABLE on both databases, as in 0017.
    op.add_column(
        "attempt",
        sa.Column("placed_at", outreach.db_types.UTCDateTime(timezone=True), nullable=True),
    )
    op.execute(_PLACED_WITHOUT_TIME)


def downgrade() -> None:
    op.drop_column("attempt", "placed_at")
