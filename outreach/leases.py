"""Claiming work with a lease, so that several daemons can share one database.

A claim marks rows with the worker's name and a lease end in one ``UPDATE ... RETURNING``
whose candidates are chosen once, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (two daemons never
claim the same row; neither waits for the other). SQLite has one writer at a time, so the
same statement is safe there without the locking clause. A worker that dies leaves its
lease to expire; the rows are then free to claim again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Connection, Table, and_, or_, select, update

from outreach.compliance_store import attempts
from outreach.models import AccountStatus, AttemptStatus
from outreach.store import accounts, named_rows


class StopFlag(Protocol):
    """Tells a claiming loop to claim no more (a ``threading.Event``, or a process's)."""

    def is_set(self) -> bool: ...


# What planning reads of a claimed account (the cadence, compliance and the message), and
# no more: every date returned is a conversion, and an account row has seven of them.
PLANNED_ACCOUNT_COLUMNS = (
    "id", "reference", "name", "balance_minor", "currency", "due_date", "status", "timezone",
    "jurisdiction", "locale", "cadence", "collector_type", "next_contact_at", "acquired_by",
    "time_barred_on",
)  # fmt: skip


def claim_due_accounts(
    connection: Connection, worker: str, now: datetime, until: datetime, limit: int
) -> Sequence[Any]:
    """Active, unpaused accounts whose next contact has come, leased to ``worker``: the
    ``PLANNED_ACCOUNT_COLUMNS`` of each.

    A pause counts until housekeeping ends it, whatever its end says: housekeeping decides
    whether the account comes back or a reply still open keeps it paused."""
    return _claim(
        connection, accounts, worker, now, until, limit,
        (
            accounts.c.status == AccountStatus.ACTIVE,
            accounts.c.next_contact_at <= now,
            accounts.c.paused_until.is_(None),
        ),
        (accounts.c.next_contact_at, accounts.c.id),
        [accounts.c[name] for name in PLANNED_ACCOUNT_COLUMNS],
    )  # fmt: skip


def claim_queued_attempts(
    connection: Connection,
    worker: str,
    now: datetime,
    until: datetime,
    limit: int,
    channels: Collection[str] | None = None,
) -> Sequence[Any]:
    """Queued attempts whose time has come (on ``channels`` only, if given), leased to
    ``worker``."""
    wanted: tuple[ColumnElement[bool], ...] = (
        attempts.c.status == AttemptStatus.QUEUED,
        or_(attempts.c.next_try_at.is_(None), attempts.c.next_try_at <= now),
    )
    if channels is not None:
        wanted += (attempts.c.channel.in_(sorted(channels)),)
    return _claim(
        connection, attempts, worker, now, until, limit, wanted,
        (attempts.c.next_try_at, attempts.c.id), list(attempts.c),
    )  # fmt: skip


def _claim(
    connection: Connection,
    table: Table,
    worker: str,
    now: datetime,
    until: datetime,
    limit: int,
    wanted: tuple[ColumnElement[bool], ...],
    order: tuple[ColumnElement[Any], ...],
    returning: Sequence[ColumnElement[Any]],
) -> Sequence[Any]:
    """Lease up to ``limit`` rows that match ``wanted`` and no live lease holds."""
    free = or_(table.c.acquired_until.is_(None), table.c.acquired_until < now)
    # The candidates are a materialized WITH query, which PostgreSQL evaluates exactly
    # once. As an ``IN (SELECT ...)`` it may be planned as the inner side of a nested
    # loop and run again for each row, skipping the rows the statement has just
    # claimed, so that one claim takes every due row (PostgreSQL bug #15715).
    candidates = (
        select(table.c.id)
        .where(*wanted, free)
        .order_by(*order)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("candidates")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    statement = (
        update(table)
        .where(table.c.id.in_(select(candidates.c.id)), free)
        .values(acquired_by=worker, acquired_until=until)
        .returning(*returning)
    )
    # RETURNING gives no order; the batch is worked oldest first, a missing value first.
    names = [column.name for column in order]
    rows = named_rows(connection.execute(statement))
    try:
        return sorted(rows, key=attrgetter(*names))  # the usual case: no value is missing
    except TypeError:  # None beside a value
        return sorted(
            rows,
            key=lambda row: tuple((getattr(row, n) is not None, getattr(row, n)) for n in names),
        )


def release_accounts(connection: Connection, worker: str, ids: Sequence[int]) -> None:
    if ids:
        connection.execute(
            update(accounts)
            .where(and_(accounts.c.id.in_(ids), accounts.c.acquired_by == worker))
            .values(acquired_by=None, acquired_until=None)
        )


# The attempts each worker of this process is sending right now (marked ``sending``, their
# outcome not recorded yet). Housekeeping runs on another thread and leaves exactly these
# of its own worker's alone: a send whose outcome could not be recorded is no longer here,
# so it is held for review once its lease ends, as after a crash. In a daemon, its dispatch
# processes' sends are here too, under their names, for as long as each process is
# connected to it (see ``outreach.shared_ratelimit``).
_in_flight: dict[str, set[int]] = {}
_in_flight_lock = threading.Lock()

# (holding, worker, ids): a dispatch process tells its daemon of its own sends through it.
SendsReporter = Callable[[bool, str, list[int]], None]
_reporter: SendsReporter | None = None


def report_sends_to(reporter: SendsReporter | None) -> None:
    """Every later ``hold_sends`` and ``release_sends`` of this process is also told to
    ``reporter`` (a hold before it returns, so before any of those requests leaves)."""
    global _reporter
    _reporter = reporter


def hold_sends(worker: str, ids: Iterable[int]) -> None:
    listed = list(ids)
    with _in_flight_lock:
        _in_flight.setdefault(worker, set()).update(listed)
    if _reporter is not None and listed:
        _reporter(True, worker, listed)


def release_sends(worker: str, ids: Iterable[int]) -> None:
    listed = list(ids)
    with _in_flight_lock:
        held = _in_flight.get(worker)
        if held is not None:
            held.difference_update(listed)
            if not held:
                del _in_flight[worker]
    if _reporter is not None and listed:
        _reporter(False, worker, listed)


def sends_in_flight(worker: str) -> frozenset[int]:
    with _in_flight_lock:
        return frozenset(_in_flight.get(worker, ()))
