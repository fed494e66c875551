"""A sign-in attempt keeps a hash of the client's address, so that failures over many
names from one address can hold that address back. Attempts recorded before have none
and count for their name only.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE on both databases, as in 0017.
def upgrade() -> None:
    op.add_column("sign_in_attempt", sa.Column("address_key", sa.String(length=64), nullable=True))
    op.create_index("ix_sign_in_attempt_address_key_at", "sign_in_attempt", ["address_key", "at"])


def downgrade() -> None:
    op.drop_index("ix_sign_in_attempt_address_key_at", table_name="sign_in_attempt")
    op.drop_column("sign_in_attempt", "address_key")
