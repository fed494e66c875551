"""Webhooks and replies: the provider's request token on events (a retried webhook is
stored once), the message a reply answers, and an account's flag for an agent.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import outreach.db_types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("provider_event") as batch_op:
        batch_op.add_column(sa.Column("request_token", sa.String(length=128), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_provider_event_provider_request_token"), ["provider", "request_token"]
        )
    with op.batch_alter_table("inbox_message") as batch_op:
        batch_op.add_column(sa.Column("attempt_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_inbox_message_attempt_id_attempt"), "attempt", ["attempt_id"], ["id"]
        )
    with op.batch_alter_table("account") as batch_op:
        batch_op.add_column(sa.Column("flag", sa.String(length=24), nullable=True))
        batch_op.add_column(
            sa.Column("flagged_at", outreach.db_types.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("account") as batch_op:
        batch_op.drop_column("flagged_at")
        batch_op.drop_column("flag")
    with op.batch_alter_table("inbox_message") as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_inbox_message_attempt_id_attempt"), type_="foreignkey"
        )
        batch_op.drop_column("attempt_id")
    with op.batch_alter_table("provider_event") as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_provider_event_provider_request_token"), type_="unique"
        )
        batch_op.drop_column("request_token")
