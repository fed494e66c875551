"""The day from which the operator says an account's debt is time-barred:
``account.time_barred_on`` (the import's ``time_barred_on`` column). Empty for every account
at first: no debt is taken for time-barred until an import says so.

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-10
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0033"
down_revision: str | None = "0032"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE on both databases, as in 0017.
    op.add_column("account", sa.Column("time_barred_on", sa.Date(), nullable=True))


def downgrade() -> None:
    op.drop_column("account", "time_barred_on")
