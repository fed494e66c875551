"""What a daemon checks at its start about the cadence files against what the database
holds: the steps it remembers that the files no longer name, and the cadences whose steps
changed since a daemon last started.

A step is known by its key alone: the history of an account (``cadence_step``) and the
idempotency key of its messages name it. A step renamed in its file is a new step to every
account, and is sent again to those that had it; the keys recorded for a cadence's active
accounts that its file does not name are reported, with how many accounts have each.

An account whose cadence has finished (no hand-off, or not yet one) has no next contact
time and is not planned again; a step added to its cadence would never reach it. When a
cadence's steps, stop conditions or hand-off change, its finished, active accounts not
handed off are made due once: the planner sends what has become due, or finishes them again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, delete, func, select, update

from outreach import store
from outreach.cadence import Cadence
from outreach.models import AccountStatus, CadenceVersion

log = logging.getLogger(__name__)

cadence_versions = store.table_of(CadenceVersion)


@dataclass(frozen=True)
class UnknownStep:
    """A step key recorded for active accounts of ``cadence`` that its file does not name."""

    cadence: str
    key: str
    accounts: int


def unknown_steps(connection: Connection, cadences: Mapping[str, Cadence]) -> list[UnknownStep]:
    """The step keys recorded for each cadence's active accounts that its file does not name
    (a renamed step's old key, or one kept from a cadence an account was moved from). It
    reads every account's history: a daemon asks it only of the cadences that changed."""
    if not cadences:
        return []
    accounts, steps = store.accounts, store.cadence_steps
    rows = connection.execute(
        select(accounts.c.cadence, steps.c.step_key, func.count())
        .select_from(steps.join(accounts, accounts.c.id == steps.c.account_id))
        .where(
            accounts.c.status == AccountStatus.ACTIVE,
            accounts.c.cadence.in_(sorted(cadences)),
        )
        .group_by(accounts.c.cadence, steps.c.step_key)
        .order_by(accounts.c.cadence, steps.c.step_key)
    )
    return [
        UnknownStep(name, key, count)
        for name, key, count in rows
        if name in cadences and key not in {step.key for step in cadences[name].steps}
    ]


def warn_of_unknown_steps(found: list[UnknownStep], schedules: str) -> list[str]:
    """One warning a cadence, naming its keys and how many accounts have each."""
    by_cadence: dict[str, list[UnknownStep]] = {}
    for unknown in found:
        by_cadence.setdefault(unknown.cadence, []).append(unknown)
    return [
        f"cadence {name}: steps recorded for its active accounts are not in {schedules}: "
        + ", ".join(
            f"{u.key} ({u.accounts} account{'s' if u.accounts != 1 else ''})" for u in listed
        )
        + ". A step is known by its key: one renamed is sent again to the accounts that had "
        "it; give it back its key (see docs/cadences.md)"
        for name, listed in by_cadence.items()
    ]


def cadence_digest(cadence: Cadence) -> str:
    """SHA-256 (hex) of what decides whether a finished account has anything left: the
    steps, the stop conditions and the hand-off (not the description, nor comments)."""
    decisive = repr((cadence.steps, cadence.stop_when, cadence.handoff))
    return hashlib.sha256(decisive.encode()).hexdigest()


def look_again_at_changed(
    engine: Engine, cadences: Mapping[str, Cadence], now: datetime
) -> dict[str, int]:
    """Make the finished accounts of each cadence whose steps changed since a daemon last
    started due now, and remember the cadences as they are; how many accounts, by cadence.
    A cadence not seen before is remembered only: nothing says what it was."""
    digests = {name: cadence_digest(cadence) for name, cadence in cadences.items()}
    looked: dict[str, int] = {}
    with engine.begin() as connection:
        store.hold_writes(connection)  # SQLite: two daemons starting do this one at a time
        seen = dict(
            connection.execute(
                select(cadence_versions.c.name, cadence_versions.c.digest).with_for_update()
            ).all()
        )
        for name, digest in sorted(digests.items()):
            if name in seen and seen[name] != digest:
                looked[name] = _make_finished_due(connection, name, now)
        fresh = [name for name in digests if seen.get(name) != digests[name]]
        if fresh:
            connection.execute(delete(cadence_versions).where(cadence_versions.c.name.in_(fresh)))
            # Another daemon starting at the same time may have written the same rows.
            connection.execute(
                store.ignoring_duplicates(cadence_versions, connection.dialect.name),
                [{"name": name, "digest": digests[name], "seen_at": now} for name in fresh],
            )
    return looked


def _make_finished_due(connection: Connection, name: str, now: datetime) -> int:
    accounts = store.accounts
    finished = (
        accounts.c.cadence == name,
        accounts.c.status == AccountStatus.ACTIVE,
        accounts.c.next_contact_at.is_(None),
        # Handed off: the agents' now; the cadence has nothing more to say to it.
        accounts.c.handoff.is_(None),
    )
    ids = list(connection.execute(select(accounts.c.id).where(*finished)).scalars())
    if not ids:
        return 0
    store.lock_accounts(connection, ids)  # in the one order every writer of several takes
    result = connection.execute(
        update(accounts)
        .where(store.among(connection, accounts.c.id, ids), *finished)
        .values(next_contact_at=now)
    )
    return int(result.rowcount)
