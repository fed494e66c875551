"""The web app's state between requests, in the database instead of one process's memory:
failed sign-ins (and those being checked) by name, for the sign-in throttle, and the
email HTML the template editor rendered for its preview frame. Every web process sharing
the database (several machines on one PostgreSQL) sees the same, and a restart forgets
nothing. Both start empty: what the processes held before is not carried over.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import outreach.db_types

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sign_in_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name_key", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("at", outreach.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sign_in_attempt")),
    )
    with op.batch_alter_table("sign_in_attempt") as batch_op:
        batch_op.create_index(batch_op.f("ix_sign_in_attempt_at"), ["at"], unique=False)
        batch_op.create_index("ix_sign_in_attempt_name_key_at", ["name_key", "at"], unique=False)

    op.create_table(
        "html_preview",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", outreach.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name=op.f("fk_html_preview_user_id_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_html_preview")),
        sa.UniqueConstraint("token", name=op.f("uq_html_preview_token")),
    )
    with op.batch_alter_table("html_preview") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_html_preview_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_html_preview_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("html_preview") as batch_op:
        batch_op.drop_index(batch_op.f("ix_html_preview_user_id"))
        batch_op.drop_index(batch_op.f("ix_html_preview_created_at"))
    op.drop_table("html_preview")
    with op.batch_alter_table("sign_in_attempt") as batch_op:
        batch_op.drop_index("ix_sign_in_attempt_name_key_at")
        batch_op.drop_index(batch_op.f("ix_sign_in_attempt_at"))
    op.drop_table("sign_in_attempt")
