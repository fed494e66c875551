"""Giving a cadence step back when its message is cancelled before it leaves.

The plan stage records each step it queues, so that the cadence moves on. When the
dispatcher then cancels the message for something about the account that can change (a
pause or a promise to pay since planning, a reply still open as a pause ran out, a
balance paid, an address no longer in use), the step was not dealt with: its record is
removed and its idempotency key freed, so that the planner offers it again, to the
account as it is then. Once the hold ends, the step goes out (rendered afresh, with the
balance of that day), or is skipped as missed if a later step has fallen due meanwhile.

A message that compliance blocks at send time keeps its step: that is a decision on the
step itself, stored with its reasons.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, select, update

from outreach.compliance_store import attempts
from outreach.models import AccountStatus, StepOutcome
from outreach.store import accounts, cadence_steps, lock_accounts, unindexed


def returnable(row: Any) -> bool:
    """Whether a cancelled attempt gives its step back: a cadence message, not an answer."""
    return bool(row.automated) and bool(row.step_key)


def give_back_steps(
    connection: Connection,
    rows: Sequence[Any],
    now: datetime,
    worker: str,
    steps_of: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """The cadence steps of these attempts, which ``worker`` is cancelling in this
    transaction, are offered again. Called before the cancellation is written: only the
    attempts ``worker`` still holds are cancelled by it (another daemon may have taken one
    whose lease ran out, and decided otherwise). ``steps_of``: each cadence's step keys in
    order, where known (see ``_unrecord_after``)."""
    rows = [row for row in rows if returnable(row)]
    if not rows:
        return
    held = set(
        connection.execute(
            select(attempts.c.id).where(
                attempts.c.id.in_([row.id for row in rows]), attempts.c.acquired_by == worker
            )
        ).scalars()
    )
    rows = [row for row in rows if row.id in held]
    if not rows:
        return
    # The cancelled attempt stays, for the record, under a key of its own.
    connection.execute(
        update(attempts)
        .where(attempts.c.id == bindparam("attempt_id"))
        .values(idempotency_key=bindparam("withdrawn_key")),
        [
            {"attempt_id": row.id,
             "withdrawn_key": f"{row.idempotency_key}:withdrawn:{row.id}"[:200]}
            for row in rows
        ],
    )  # fmt: skip
    # The accounts first: a planner writing a plan for one of them meanwhile has written it
    # all (its skipped steps seen and let go below) or waits, and then sees the account
    # due (``planner``'s clean-up of stale skips).
    lock_accounts(connection, sorted({row.account_id for row in rows}))
    _unrecord_after(connection, rows, steps_of or {})
    connection.execute(
        delete(cadence_steps).where(
            cadence_steps.c.account_id == bindparam("account"),
            cadence_steps.c.step_key == bindparam("step"),
            cadence_steps.c.outcome == StepOutcome.QUEUED,
        ),
        [{"account": row.account_id, "step": row.step_key} for row in rows],
    )
    due_now(connection, {row.account_id for row in rows}, now)


def _unrecord_after(
    connection: Connection, rows: Sequence[Any], steps_of: Mapping[str, Sequence[str]]
) -> None:
    """The steps recorded as skipped after each step given back (those after it that did
    not apply, recorded with it or at a look while its message waited) are let go too:
    the cadence only offers steps after the last one recorded, so the step would
    otherwise be lost behind them. They are recorded again once it is dealt with. Not
    when a later step was queued meanwhile: that one supersedes it. Where the account's
    cadence is known, only its steps after the one given back go, and none if that step
    is not one of its own (the account moved to another cadence: its records stand)."""
    for row in rows:
        cadence = connection.execute(
            select(accounts.c.cadence).where(accounts.c.id == row.account_id)
        ).scalar()
        keys = steps_of.get(str(cadence))
        if keys is not None and row.step_key not in keys:
            continue
        recorded = connection.execute(
            select(cadence_steps.c.id, cadence_steps.c.step_key, cadence_steps.c.outcome)
            .where(cadence_steps.c.account_id == row.account_id)
            .order_by(cadence_steps.c.id)
        ).all()
        given = next(
            (
                r.id
                for r in recorded
                if r.step_key == row.step_key and r.outcome == StepOutcome.QUEUED
            ),
            None,
        )
        if given is None:
            continue
        later = [r for r in recorded if r.id > given]
        if any(r.outcome == StepOutcome.QUEUED for r in later):
            continue
        if keys is not None:
            after = set(keys[keys.index(row.step_key) + 1 :])
            later = [r for r in later if r.step_key in after]
        if later:
            connection.execute(
                delete(cadence_steps).where(cadence_steps.c.id.in_([r.id for r in later]))
            )


def due_now(connection: Connection, ids: Collection[int], now: datetime) -> None:
    """Active accounts among ``ids`` are looked at on the next plan tick (a paused one once
    its pause has ended).

    An account a planner holds (its lease running or run out: a planner past its lease
    still writes its plan if no other has claimed the account) is due already, but its
    plan was made from what it read before this change; it is marked due at ``now``, later
    than when it was claimed, and the planner, seeing that, leaves this time in place of
    its own. The accounts are locked in the planner's order first (``lock_accounts``)."""
    if not ids:
        return
    listed = sorted(ids)
    lock_accounts(connection, listed)
    connection.execute(
        update(accounts)
        .where(
            and_(
                accounts.c.id.in_(listed),
                unindexed(accounts.c.status) == AccountStatus.ACTIVE,
                accounts.c.next_contact_at.is_(None)
                | (accounts.c.next_contact_at > now)
                | accounts.c.acquired_by.is_not(None),
            )
        )
        .values(next_contact_at=now, updated_at=now)
    )
