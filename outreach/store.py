"""Core table handles and the queries several stages share.

Bulk paths (imports, the planner) use SQLAlchemy Core on these tables: one statement per
batch instead of one ORM object per row.
"""

from __future__ import annotations

import json
from collections import namedtuple
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    Column,
    ColumnElement,
    Connection,
    Insert,
    Result,
    Row,
    Select,
    String,
    Table,
    any_,
    bindparam,
    delete,
    func,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import SQLModel

from outreach.errors import NotFoundError
from outreach.models import (
    Account,
    CadenceStep,
    ComplianceEvent,
    ContactPoint,
    ImportRun,
    Payment,
    PromiseStatus,
    PromiseToPay,
    Suppression,
)


def table_of(model: type[SQLModel]) -> Table:
    return cast(Table, model.__table__)  # type: ignore[attr-defined]


accounts = table_of(Account)
cadence_steps = table_of(CadenceStep)
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


def columns_of(table: Table, names: Sequence[str]) -> list[Column[Any]]:
    """The named columns of ``table``, to read only what a loop uses (every value read is
    a conversion, dates above all)."""
    return [table.c[name] for name in names]


def unindexed(column: ColumnElement[str]) -> ColumnElement[str]:
    """``column`` in a form no index serves (``column || ''``), for a condition on a status
    beside the ids or accounts a statement is about. SQLite keeps no statistics unless asked,
    and without them it prefers an index on the status (the dispatch queue's, the due
    accounts') to the list of ids, and so reads every row with that status."""
    return column.concat("")


def among(
    connection: Connection, column: ColumnElement[Any], values: Iterable[int | str]
) -> ColumnElement[bool]:
    """``column IN values``, the values bound as one parameter: a JSON array read by
    ``json_each`` on SQLite, an array with ``= ANY`` on PostgreSQL.

    SQLAlchemy's ``in_`` renders one placeholder per value on every execution (its
    "expanding" parameters): for the thousand accounts of a batch, about half a millisecond
    a query before the database sees it, and a batch asks about ten such questions."""
    listed = list(values)
    # Bound as they are, without the column type's processing: a value must already be
    # what the column stores (SQLite's json_each would not match 12 with '12').
    kind = column.type.python_type
    if not all(type(value) is kind for value in listed):
        raise TypeError(f"among: every value must be {kind.__name__} for {column}")
    dialect = connection.dialect.name
    if dialect == "sqlite":
        found: Select[Any] = select(literal_column("value")).select_from(
            func.json_each(bindparam(None, json.dumps(listed), type_=String))
        )
        return column.in_(found.scalar_subquery())
    if dialect == "postgresql":
        return column == any_(bindparam(None, listed, type_=ARRAY(column.type)))
    return column.in_(listed)


def keep_promises_of_paid_off(
    connection: Connection, account_ids: Sequence[int], now: datetime
) -> None:
    """Marks kept the pending promises to pay of accounts just paid off (by a payment or
    by an import's balance of zero): the debt they promised to pay is settled. Called in
    the transaction that closed the accounts, which holds their locks, so housekeeping,
    which locks the accounts before breaking a promise, never breaks one kept here."""
    if not account_ids:
        return
    connection.execute(
        update(promises_to_pay)
        .where(
            promises_to_pay.c.account_id.in_(list(account_ids)),
            unindexed(promises_to_pay.c.status) == PromiseStatus.PENDING,
        )
        .values(status=PromiseStatus.KEPT, resolved_at=now)
    )


def lock_accounts(connection: Connection, ids: Iterable[int]) -> None:
    """Locks the accounts ``ids`` until the transaction ends, in the order of their ids
    (PostgreSQL; SQLite has one writer at a time and nothing to order).

    Every transaction that changes several accounts a planner may be writing (the
    planner's own batch, a step given back, a promise broken, a pause ended) takes their
    locks in this one order: two of them never wait for each other in a circle, which
    PostgreSQL would break by failing one with a deadlock."""
    if connection.dialect.name != "postgresql":
        return
    listed = sorted(set(ids))
    if listed:
        connection.execute(
            select(accounts.c.id)
            .where(among(connection, accounts.c.id, listed))
            .order_by(accounts.c.id)
            # FOR NO KEY UPDATE, as an UPDATE of the account takes: not FOR UPDATE, which
            # would also wait for the KEY SHARE locks that rows inserted for the account
            # (attempts, steps, decisions) take on it, in the plan's own order.
            .with_for_update(key_share=True)
        )


def delete_unheld(
    connection: Connection,
    table: Table,
    ids: Select[tuple[int]],
    returning: Sequence[ColumnElement[Any]] = (),
) -> list[Any]:
    """Deletes the rows of ``table`` whose ids ``ids`` selects, leaving those another
    transaction holds (PostgreSQL) to a later call: a clean-up that never waits for a
    lock, so it cannot deadlock with the work it tidies after. The rows deleted, as
    ``returning`` (none if not asked for)."""
    held_back = ids.with_for_update(skip_locked=True)
    statement = delete(table).where(table.c.id.in_(held_back))
    if not returning:
        connection.execute(statement)
        return []
    return named_rows(connection.execute(statement.returning(*returning)))


def hold_writes(connection: Connection) -> None:
    """SQLite: take the database's one writer lock now, until the transaction ends, so
    that what it reads next no other writer changes before it commits (SQLite ignores FOR
    UPDATE; a transaction takes the lock only at its first write). Nothing on PostgreSQL,
    where the reads lock their rows."""
    if connection.dialect.name == "sqlite":
        connection.execute(update(accounts).where(accounts.c.id == 0).values(id=accounts.c.id))


def folded(connection: Connection, column: ColumnElement[str]) -> ColumnElement[str]:
    """``column`` in a form that ignores case, every letter's and not only ASCII's: the
    ``casefold`` function each SQLite connection has (``outreach.db``), PostgreSQL's
    ``lower`` (which follows the database's locale).

    Fold what it is compared with here too (``folded(connection, literal(text))``), not in
    Python: PostgreSQL's ``lower`` and Python's disagree on a few letters (a final sigma,
    a dotted capital I), so a text folded in Python may not match itself stored."""
    if connection.dialect.name == "sqlite":
        return func.casefold(column, type_=String)
    return func.lower(column)


def named_rows(result: Result[Any]) -> list[Any]:
    """The rows of ``result`` as named tuples with the same field names.

    The hot loops (planning, the dispatch recheck) read a dozen fields of every row: an
    attribute of a SQLAlchemy ``Row`` costs about 300 ns to read, one of a named tuple
    about 30, and the conversion is paid once per row."""
    make = _record_type(tuple(result.keys()))._make
    return [make(row) for row in result.all()]  # all at once: iterating fetches row by row


@cache
def _record_type(fields: tuple[str, ...]) -> Any:
    # No renaming: a column name that is not a Python identifier fails here, loudly.
    return namedtuple("Record", fields)
