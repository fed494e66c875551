"""Email suppressions lower-cased as the ledger spells them (``opt_outs.ledger_address``:
Python's ``lower``), every letter. 0007 lower-cased them with SQL's lower(), which SQLite
applies to ASCII letters only: an opt-out of "ÉLODIE@EXAMPLE.COM" was left as
"Élodie@example.com", which no lookup finds, and the debtor could be emailed again. Each
is now lower-cased in Python.

PostgreSQL's lower() folds every letter, but a capital sigma ending a word as a small
sigma "σ" where Python writes the final form "ς" ("ΟΔΟΣ" is "οδος" to the ledger). A
stored "σ" may also have been typed so, so such a row is kept and a copy of it added under
the ledger's spelling of its capitals: both spellings stay suppressed. (PostgreSQL's lower()
also makes "i" of a dotted capital "İ", which Python makes "i̇": an "i" stored may have been
either, so those are left as they are.)

The suppression table has no unique constraint on the address: rows that now spell the
same mailbox are all kept, each with the event that caused it.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0029"
down_revision: str | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COPIED = ("channel", "reason", "source", "provider_event_id", "created_at", "lifted_at",
           "lifted_reason")  # fmt: skip


def upgrade() -> None:
    connection = op.get_bind()
    found = connection.execute(
        sa.text("SELECT id, address FROM suppression WHERE channel = 'email' ORDER BY id")
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
    if connection.dialect.name != "postgresql":
        return
    copies = [
        {"id": ident, "address": final}
        for ident, address in found
        if (final := _final_sigmas(address)) is not None
    ]
    if copies:
        columns = ", ".join(_COPIED)
        connection.execute(
            sa.text(
                f"INSERT INTO suppression (address, {columns})"  # noqa: S608 (names above)
                f" SELECT :address, {columns} FROM suppression WHERE id = :id"
            ),
            copies,
        )


def _final_sigmas(address: str) -> str | None:
    """``address`` with the final sigmas Python writes for its capitals, where that is all
    that differs from it (None otherwise)."""
    if "σ" not in address:
        return None
    ledger = address.upper().lower()
    if len(ledger) != len(address) or ledger == address:
        return None
    if any(a != b and (a, b) != ("σ", "ς") for a, b in zip(address, ledger, strict=True)):
        return None
    return ledger


def downgrade() -> None:
    """The spellings 0007 left are not kept: lower-cased addresses stay valid for every
    reader, and a copy is one more suppression of the same mailbox."""
