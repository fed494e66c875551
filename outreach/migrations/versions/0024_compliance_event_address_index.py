"""An index on compliance events' addresses: a revoked consent that names a number holds on
every account using the number, which the planner finds by the number.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_compliance_event_address", "compliance_event", ["address"])


def downgrade() -> None:
    op.drop_index("ix_compliance_event_address", table_name="compliance_event")
