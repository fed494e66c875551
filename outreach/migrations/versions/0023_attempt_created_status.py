"""An index on ``attempt (created_at, status)``: the start page counts the day's messages
by status, which otherwise reads every attempt there is.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_attempt_created_status", "attempt", ["created_at", "status"])


def downgrade() -> None:
    op.drop_index("ix_attempt_created_status", table_name="attempt")
