"""A cadence message keeps a digest of the account's facts it was written from (balance,
due date, name, the debtor's day...), so that the dispatcher can tell, before it leaves,
whether it still states what is true. Attempts written before have none and are not
checked.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE on both databases (SQLite has dropped columns since 3.35): a batch
# copy of the table would reflect its foreign keys' tables, whose expression indexes
# SQLAlchemy cannot reflect.
def upgrade() -> None:
    op.add_column("attempt", sa.Column("facts_digest", sa.String(length=16), nullable=True))


def downgrade() -> None:
    op.drop_column("attempt", "facts_digest")
