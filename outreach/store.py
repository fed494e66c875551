"""Core table handles and the queries several stages share.

Bulk paths (imports, the planner) use SQLAlchemy Core on these tables: one statement per
batch instead of one ORM object per row.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Connection, Insert, Row, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import SQLModel

from outreach.errors import NotFoundError
from outreach.models import (
    Account,
    ComplianceEvent,
    ContactPoint,
    ImportRun,
    Payment,
    PromiseToPay,
    Suppression,
)


def table_of(model: type[SQLModel]) -> Table:
    return cast(Table, model.__table__)  # type: ignore[attr-defined]


accounts = table_of(Account)
contact_points = table_of(ContactPoint)
compliance_events = table_of(ComplianceEvent)
import_runs = table_of(ImportRun)
payments = table_of(Payment)
promises_to_pay = table_of(PromiseToPay)
suppressions = table_of(Suppression)


def account_by_reference(connection: Connection, reference: str) -> Row[tuple[object, ...]]:
    """The account row with this reference; NotFoundError names it when there is none."""
    row = connection.execute(select(accounts).where(accounts.c.reference == reference)).first()
    if row is None:
        raise NotFoundError(f"no account with reference {reference!r}")
    return row


def insert_ignoring_duplicates(connection: Connection, table: Table) -> Insert:
    """An INSERT that skips rows whose unique key exists (a re-run, a repeated webhook)."""
    return ignoring_duplicates(table, connection.dialect.name)


def ignoring_duplicates(table: Table, dialect_name: str) -> Insert:
    if dialect_name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()
