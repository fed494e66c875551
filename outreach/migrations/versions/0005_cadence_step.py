"""Where each account is in its cadence (the steps already dealt with), and the voicemail
text of a call attempt.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import outreach.db_types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("attempt") as batch_op:
        batch_op.add_column(sa.Column("voicemail", sa.Text(), nullable=True))
    op.create_table(
        "cadence_step",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("step_key", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("at", outreach.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["account.id"], name=op.f("fk_cadence_step_account_id_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cadence_step")),
        sa.UniqueConstraint(
            "account_id", "step_key", name=op.f("uq_cadence_step_account_id_step_key")
        ),
    )


def downgrade() -> None:
    op.drop_table("cadence_step")
    with op.batch_alter_table("attempt") as batch_op:
        batch_op.drop_column("voicemail")
