"""An index on contact points' lower-cased addresses: inbound email and opt-outs find the
accounts using an email address without regard to case, which the plain address index
cannot serve.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_contact_point_address_lower",
        "contact_point",
        ["channel", sa.func.lower(sa.column("address"))],
    )


def downgrade() -> None:
    op.drop_index("ix_contact_point_address_lower", table_name="contact_point")
