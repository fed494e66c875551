"""Keep the last imported balance beside the balance, so that payments survive re-imports.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("account") as batch_op:
        batch_op.add_column(sa.Column("imported_balance_minor", sa.BigInteger(), nullable=True))
    # Existing accounts: the balance stands for the figure last imported.
    op.execute("UPDATE account SET imported_balance_minor = balance_minor")
    with op.batch_alter_table("account") as batch_op:
        batch_op.alter_column(
            "imported_balance_minor", existing_type=sa.BigInteger(), nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("account") as batch_op:
        batch_op.drop_column("imported_balance_minor")
