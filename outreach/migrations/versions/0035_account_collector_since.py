"""When a debt collector took an account over from its creditor: ``account.collector_since``,
set by the import that turns an account's collector type from ``first_party`` to
``third_party``. The creditor's messages before then are not the collector's
communications: the collector's first one carries the whole disclosure. Empty for every
account at first: an account imported as a debt collector's holds the collector's
messages only.

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import outreach.db_types

revision: str = "0035"
down_revision: str | None = "0034"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE on both databases, as in 0017.
    op.add_column(
        "account",
        sa.Column("collector_since", outreach.db_types.UTCDateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("account", "collector_since")
