"""Hand-offs to the agents: ``account.handoff``, ``pending`` once the account's cadence has
handed it to the agents (a reply's flag may stand over the hand-off's meanwhile), ``seen``
once an agent has cleared the hand-off's flag. Accounts whose cadence finished before hand-offs were carried out are looked at
again: the planner left them with no next contact time, so none would ever be handed off.
Planned once more, each is handed off (its hand-off has come), waits for its hand-off, or
finishes again (a cadence without one); the cadence sends nothing it has dealt with.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE on both databases, as in 0017.
    op.add_column(
        "account",
        sa.Column("handoff", sa.String(length=8), nullable=True),
    )
    # Due since they last changed (a time stored as the application stores it): only an
    # active account with no next contact time is one whose cadence finished.
    op.execute(
        "UPDATE account SET next_contact_at = updated_at"
        " WHERE status = 'active' AND next_contact_at IS NULL"
    )


def downgrade() -> None:
    # Which accounts were looked at again is not kept: nothing more to undo.
    op.drop_column("account", "handoff")
