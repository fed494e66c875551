"""Each cadence's steps as a daemon last started with them: ``cadence_version``. A step
added to a cadence reached no account the cadence had finished with (they had no next
contact time); a daemon starting with changed steps now makes them due once, and the
planner sends what has become due or finishes them again. Empty at first: the first start
records the cadences as they are.

Revision ID: 0032
Revises: 0030
Create Date: 2026-12-09
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import outreach.db_types

revision: str = "0032"
down_revision: str | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cadence_version",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("seen_at", outreach.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_cadence_version")),
    )


def downgrade() -> None:
    op.drop_table("cadence_version")
