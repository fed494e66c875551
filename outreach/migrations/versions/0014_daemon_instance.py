"""The registry of running daemons: each ``outreach run`` keeps a row with its host, process,
start, when it was last seen, its version and the digest of the configuration it plans
with (cadences, channels, compliance rules), so that daemons sharing a database, and the
operator (``outreach daemons``), see when two of them plan with different files. It starts
empty: each running daemon registers at its next start.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import outreach.db_types

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "daemon_instance",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", outreach.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("seen_at", outreach.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("config_digest", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_daemon_instance")),
        sa.UniqueConstraint("worker", name=op.f("uq_daemon_instance_worker")),
    )


def downgrade() -> None:
    op.drop_table("daemon_instance")
