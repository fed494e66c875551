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
    # Lower-cased in Python, as the ledger spells them (``opt_outs.ledger_address``): SQL's
    # lower() folds ASCII letters only on SQLite ("ÉLODIE@..." would be "Élodie@...", which
    # no lookup finds), and differs from Python's on a few letters on PostgreSQL.
    connection = op.get_bind()
    found = connection.execute(
        sa.text("SELECT id, address FROM suppression WHERE channel = 'email'")
    ).all()
    # An address whose lower case would not fit (a dotted capital I is two letters) is
    # left as it was.
    changed = [
        {"id": ident, "address": address.lower()}
        for ident, address in found
        if address.lower() != address and len(address.lower()) <= 320
    ]
    if changed:
        connection.execute(
            sa.text("UPDATE suppression SET address = :address WHERE id = :id"), changed
        )


def downgrade() -> None:
    # The original spelling is not kept; lower-cased addresses stay valid for every reader.
    pass
