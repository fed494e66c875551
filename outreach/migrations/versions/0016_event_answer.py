"""A provider event keeps the text it was answered with (an SMS opt-out's confirmation in
TwiML), so that a request the provider retries, because the first answer never reached it,
is answered the same way instead of with nothing.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE on both databases (SQLite has dropped columns since 3.35): a batch
# copy of the table would reflect its foreign keys' tables, whose expression indexes
# SQLAlchemy cannot reflect.
def upgrade() -> None:
    op.add_column("provider_event", sa.Column("answer", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("provider_event", "answer")
