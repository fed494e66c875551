"""Room for "_partials" in template_version.channel: partials are versioned too.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("template_version") as batch_op:
        batch_op.alter_column(
            "channel", existing_type=sa.String(length=8), type_=sa.String(length=16),
            existing_nullable=False,
        )  # fmt: skip


def downgrade() -> None:
    with op.batch_alter_table("template_version") as batch_op:
        batch_op.alter_column(
            "channel", existing_type=sa.String(length=16), type_=sa.String(length=8),
            existing_nullable=False,
        )  # fmt: skip
