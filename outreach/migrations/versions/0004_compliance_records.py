"""What compliance needs to know: call outcomes, automated or not, designated times.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import outreach.db_types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("attempt") as batch_op:
        batch_op.add_column(sa.Column("outcome", sa.String(length=32), nullable=True))
        # Existing attempts were all planned by the daemon.
        batch_op.add_column(
            sa.Column("automated", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    with op.batch_alter_table("attempt") as batch_op:
        batch_op.alter_column("automated", server_default=None)

    op.create_table(
        "designated_time",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("days", sa.String(length=27), nullable=False),
        sa.Column("start_local", sa.Time(), nullable=False),
        sa.Column("end_local", sa.Time(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("created_at", outreach.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", outreach.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["account.id"], name=op.f("fk_designated_time_account_id_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_designated_time")),
    )
    with op.batch_alter_table("designated_time") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_designated_time_account_id"), ["account_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("designated_time") as batch_op:
        batch_op.drop_index(batch_op.f("ix_designated_time_account_id"))
    op.drop_table("designated_time")
    with op.batch_alter_table("attempt") as batch_op:
        batch_op.drop_column("automated")
        batch_op.drop_column("outcome")
