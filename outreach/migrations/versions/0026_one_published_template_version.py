"""At most one published version per template, held by a unique index over the published
rows: two publishes of one template at once could leave two published, and the daemon
would send either. Where that already happened, the highest version stays published and
the others are retired (which of them was sent last is not recorded).

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = "ux_template_version_published"
_PUBLISHED = "status = 'published'"


def upgrade() -> None:
    op.execute(
        "UPDATE template_version SET status = 'retired'"
        " WHERE status = 'published' AND EXISTS ("
        " SELECT 1 FROM template_version AS newer"
        " WHERE newer.channel = template_version.channel"
        " AND newer.name = template_version.name"
        " AND newer.tone = template_version.tone"
        " AND newer.locale = template_version.locale"
        " AND newer.status = 'published' AND newer.version > template_version.version)"
    )
    # A plain CREATE INDEX on both databases: the table holds a few versions of a few
    # hundred templates at most, read in an instant (0024 builds concurrently for a big one).
    op.create_index(
        _NAME,
        "template_version",
        ["channel", "name", "tone", "locale"],
        unique=True,
        sqlite_where=sa.text(_PUBLISHED),
        postgresql_where=sa.text(_PUBLISHED),
    )


def downgrade() -> None:
    op.drop_index(_NAME, table_name="template_version")
