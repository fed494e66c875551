"""Room for "_partials" in template_version.channel: partials are versioned too.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from outreach.errors import OutreachError

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
    # The channel of 8 characters cannot hold "_partials": refused rather than deleting
    # what the template editor saved (PostgreSQL would refuse the narrower column anyway).
    wide = (
        op.get_bind()
        .execute(sa.text("SELECT DISTINCT channel FROM template_version WHERE length(channel) > 8"))
        .scalars()
        .all()
    )
    if wide:
        raise OutreachError(
            "cannot go below schema 0003: template versions are saved for "
            f"{', '.join(sorted(wide))}, which the narrower template_version.channel of"
            " schema 0002 cannot hold; if they are to go, delete the template_version rows"
            " of those channels first"
        )
    with op.batch_alter_table("template_version") as batch_op:
        batch_op.alter_column(
            "channel", existing_type=sa.String(length=16), type_=sa.String(length=8),
            existing_nullable=False,
        )  # fmt: skip
