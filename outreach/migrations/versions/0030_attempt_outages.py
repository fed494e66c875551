"""How many provider outages an attempt has waited out since it was last tried:
``attempt.outages``. The dispatcher doubled each outage's wait from the last one, which it
read from the attempt's error and the time between its last change and its next try; a
look that was not a try (a sender's rate spent, a stop putting it back) changed both, and
a long outage was tried again every 30 s instead of backing off to an hour. Attempts
written before start at 0: one waiting out an outage now waits 30 s at its next, then
longer.

The database keeps the default of 0, unlike 0009's: dropping it would copy the table on
SQLite (see 0017), and a writer that does not know the column yet still writes a valid
attempt.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0030"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE on both databases, as in 0017.
def upgrade() -> None:
    op.add_column("attempt", sa.Column("outages", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("attempt", "outages")
