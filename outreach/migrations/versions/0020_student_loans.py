"""Student loans serviced under one account number when obtained are one debt: the
account's ``servicer_account_no``, indexed where it is set.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("account", sa.Column("servicer_account_no", sa.String(length=64), nullable=True))
    op.create_index(
        "ix_account_servicer_account_no",
        "account",
        ["servicer_account_no"],
        sqlite_where=sa.text("servicer_account_no IS NOT NULL"),
        postgresql_where=sa.text("servicer_account_no IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_account_servicer_account_no", table_name="account")
    op.drop_column("account", "servicer_account_no")
