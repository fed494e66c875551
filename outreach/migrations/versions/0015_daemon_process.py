"""The registry knows each daemon's process beyond its number: where that pid is meaningful
(the boot and the pid namespace) and when the process started, so that a daemon on the
same machine removes the row of one that was killed as soon as it sees it, rather than
when the row goes stale. Rows written before stay without them and go stale as before.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("daemon_instance") as batch:
        batch.add_column(sa.Column("pid_namespace", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("process_start", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("daemon_instance") as batch:
        batch.drop_column("process_start")
        batch.drop_column("pid_namespace")
