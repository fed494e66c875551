"""Claiming work with a lease, so that several daemons can share one database.

A claim marks rows with the worker's name and a lease end in one ``UPDATE ... RETURNING``
whose candidates are chosen ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (two daemons never
claim the same row; neither waits for the other). SQLite has one writer at a time, so the
same statement is safe there without the locking clause. A worker that dies leaves its
lease to expire; the rows are then free to claim again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, or_, select, update

from outreach.compliance_store import attempts
from outreach.models import AccountStatus, AttemptStatus
from outreach.store import accounts


def claim_due_accounts(
    connection: Connection, worker: str, now: datetime, until: datetime, limit: int
) -> Sequence[Row[Any]]:
    """Active, unpaused accounts whose next contact has come, leased to ``worker``."""
    free = or_(accounts.c.acquired_until.is_(None), accounts.c.acquired_until < now)
    due = (
        select(accounts.c.id)
        .where(
            accounts.c.status == AccountStatus.ACTIVE,
            accounts.c.next_contact_at <= now,
            or_(accounts.c.paused_until.is_(None), accounts.c.paused_until <= now),
            free,
        )
        .order_by(accounts.c.next_contact_at, accounts.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    statement = (
        update(accounts)
        .where(accounts.c.id.in_(due.scalar_subquery()), free)
        .values(acquired_by=worker, acquired_until=until)
        .returning(*accounts.c)
    )
    return connection.execute(statement).all()


def claim_queued_attempts(
    connection: Connection, worker: str, now: datetime, until: datetime, limit: int
) -> Sequence[Row[Any]]:
    """Queued attempts whose time has come, leased to ``worker``."""
    free = or_(attempts.c.acquired_until.is_(None), attempts.c.acquired_until < now)
    ready = (
        select(attempts.c.id)
        .where(
            attempts.c.status == AttemptStatus.QUEUED,
            or_(attempts.c.next_try_at.is_(None), attempts.c.next_try_at <= now),
            free,
        )
        .order_by(attempts.c.next_try_at, attempts.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    statement = (
        update(attempts)
        .where(attempts.c.id.in_(ready.scalar_subquery()), free)
        .values(acquired_by=worker, acquired_until=until)
        .returning(*attempts.c)
    )
    return connection.execute(statement).all()


def release_accounts(connection: Connection, worker: str, ids: Sequence[int]) -> None:
    if ids:
        connection.execute(
            update(accounts)
            .where(and_(accounts.c.id.in_(ids), accounts.c.acquired_by == worker))
            .values(acquired_by=None, acquired_until=None)
        )
