"""A promise to pay records the random key of the agent's form that recorded it
(``promise_to_pay.form_key``), unique per account: the same form sent twice (a double
click, a form sent again after its answer was lost) records one promise, also when both
arrive at once. Promises recorded before have none.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = "ux_promise_to_pay_form_key"


def upgrade() -> None:
    # Plain ALTER TABLE on both databases, as in 0017; the column is NULL in every row, and
    # NULLs are never equal to each other under a unique index.
    op.add_column("promise_to_pay", sa.Column("form_key", sa.String(length=64), nullable=True))
    # A plain CREATE INDEX: promises are a few per account at most.
    op.create_index(_NAME, "promise_to_pay", ["account_id", "form_key"], unique=True)


def downgrade() -> None:
    op.drop_index(_NAME, table_name="promise_to_pay")
    op.drop_column("promise_to_pay", "form_key")
