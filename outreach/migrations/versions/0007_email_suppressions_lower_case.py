"""Email suppressions keyed by the lower-cased address, so that one mailbox is one entry
whatever case an import or a provider spelled it in. The suppression table has no unique
constraint on the address, so rows that now spell the same address are kept as they are
(each keeps the event that caused it).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    suppression = sa.table("suppression", sa.column("channel"), sa.column("address"))
    op.execute(
        suppression.update()
        .where(
            suppression.c.channel == "email",
            suppression.c.address != sa.func.lower(suppression.c.address),
        )
        .values(address=sa.func.lower(suppression.c.address))
    )


def downgrade() -> None:
    # The original spelling is not kept; lower-cased addresses stay valid for every reader.
    pass
