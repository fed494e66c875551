"""Student loans' servicer account numbers in one spelling: in capitals, without spaces,
hyphens or dots, as the import now stores them, so that numbers written differently for
one loan link its accounts.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As outreach.importing.account_rows.servicer_number spelled it when this was written.
_SEPARATORS = str.maketrans("", "", " -.\u00a0")


def upgrade() -> None:
    connection = op.get_bind()
    found = connection.execute(
        sa.text("SELECT id, servicer_account_no FROM account WHERE servicer_account_no IS NOT NULL")
    ).all()
    # A number whose capitals would not fit (a "ß" is "SS") is left as it was.
    spelled = [(ident, number, number.translate(_SEPARATORS).upper()) for ident, number in found]
    changed = [
        {"id": ident, "number": new or None}
        for ident, number, new in spelled
        if new != number and len(new) <= 64
    ]
    if changed:
        connection.execute(
            sa.text("UPDATE account SET servicer_account_no = :number WHERE id = :id"), changed
        )


def downgrade() -> None:
    """The spellings written before are not kept: nothing to undo."""
