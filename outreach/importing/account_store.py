"""Upserting validated account records, a batch at a time, by external reference.

Each batch costs a handful of statements whatever its size: one read of the accounts and
one of their contact points, then bulk inserts and bulk updates of what differs. Rows that
match the database exactly write nothing, so importing the same file twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)

from outreach import store
from outreach.clock import Clock
from outreach.compliance.frequency import CLOCK_SKEW
from outreach.importing.account_rows import AccountRecord, ContactRecord
from outreach.importing.fields import FieldError
from outreach.models import AccountStatus, CollectorType, ComplianceEventKind, ContactStatus

# References seen so far in this run; a temporary table lives and dies with the connection.
_SEEN = Table(
    "import_seen_reference",
    MetaData(),
    Column("reference", String(64), primary_key=True),
    Column("row_number", Integer(), nullable=False),
    prefixes=["TEMPORARY"],
)
# How many rejected references wait in memory before they are written to _SEEN.
_PENDING_AT_MOST = 1000


@dataclass
class BatchOutcome:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    # Paid or closed accounts whose figures changed: updated, but not reopened for outreach.
    kept_closed: int = 0
    # (record, row number where the reference first appeared in this file)
    duplicates: list[tuple[AccountRecord, int]] = field(default_factory=list)
    # (record, reason): rows refused once their account was read (a balance that does not
    # fit the account's own currency)
    refused: list[tuple[AccountRecord, str]] = field(default_factory=list)


class AccountUpserter:
    """Applies batches of records on one connection; commits are the caller's.

    References already seen in this run are kept in a temporary table, so a reference
    repeated anywhere in the file is caught without holding every reference in memory.
    """

    def __init__(
        self,
        connection: Connection,
        now: datetime,
        *,
        dry_run: bool = False,
        region_zones: Callable[[str], tuple[str, ...]] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.connection = connection
        self.now = now
        self.clock = clock
        # When the batch's accounts were locked (``_existing_accounts``): a debt collector
        # takes an account over then, not when the import began.
        self.locked_at = now
        self.dry_run = dry_run
        self.region_zones = region_zones
        # References of rows rejected since they were last written to _SEEN, with their row
        # numbers: a later row with the same reference is a repeat all the same.
        self._rejected: dict[str, int] = {}
        _SEEN.create(connection, checkfirst=True)
        connection.execute(delete(_SEEN))

    def note_rejected(self, reference: str, row: int) -> None:
        """A row with this reference was rejected: it still comes first in the file."""
        self._rejected.setdefault(reference, row)
        # Written out as they come, not held until the next good batch: memory and every
        # statement stay the same size however many rows a file has rejected.
        if len(self._rejected) >= _PENDING_AT_MOST:
            self._flush_rejected()

    def _flush_rejected(self) -> None:
        pending, self._rejected = self._rejected, {}
        if not pending:
            return
        # A reference already there came at an earlier row: rows are noted in file order,
        # and a batch lands before the rows after it are read.
        there = set(
            self.connection.execute(
                select(_SEEN.c.reference).where(_SEEN.c.reference.in_(list(pending)))
            ).scalars()
        )
        firsts = [{"reference": r, "row_number": n} for r, n in pending.items() if r not in there]
        if firsts:
            self.connection.execute(insert(_SEEN), firsts)

    def close(self) -> None:
        _SEEN.drop(self.connection, checkfirst=True)

    def apply(self, records: list[AccountRecord]) -> BatchOutcome:
        outcome = BatchOutcome()
        fresh = self._drop_duplicates(records, outcome)
        if not fresh:
            return outcome
        existing = self._existing_accounts([r.reference for r in fresh])
        fresh = self._resolve(fresh, existing, outcome)
        if not fresh:
            return outcome
        new_records = [r for r in fresh if r.reference not in existing]
        old_records = [r for r in fresh if r.reference in existing]
        ids = self._insert_accounts(new_records)
        outcome.created = len(new_records)
        account_updates = self._account_updates(old_records, existing, outcome)
        contact_changed = self._sync_contacts(fresh, {**ids, **_ids(existing)}, set(ids.values()))
        for record in old_records:
            row = existing[record.reference]
            changed = record.reference in account_updates or row["id"] in contact_changed
            if not changed:
                outcome.unchanged += 1
            elif row["status"] != AccountStatus.ACTIVE and record.reference in account_updates:
                outcome.kept_closed += 1
                outcome.updated += 1
            else:
                outcome.updated += 1
        if account_updates and not self.dry_run:
            self._update_accounts(list(account_updates.values()))
            paid_off = [
                change["b_id"]
                for reference, change in account_updates.items()
                if change["status"] == AccountStatus.PAID
                and existing[reference]["status"] == AccountStatus.ACTIVE
            ]
            # Paid off as by a payment: the account's pending promises are kept.
            store.keep_promises_of_paid_off(self.connection, paid_off, self.now)
        return outcome

    def _resolve(
        self,
        records: list[AccountRecord],
        existing: dict[str, dict[str, Any]],
        outcome: BatchOutcome,
    ) -> list[AccountRecord]:
        """Each record completed with what its account has where the file is silent: the
        balance read in the account's own currency, the zone checked against its state."""
        resolved: list[AccountRecord] = []
        for record in records:
            row = existing.get(record.reference)
            if row is not None:
                record = record.in_state(row["jurisdiction"], self.region_zones)
            try:
                resolved.append(record.in_currency(row["currency"] if row else record.currency))
            except FieldError as exc:
                outcome.refused.append((record, str(exc)))
        return resolved

    # --- duplicates -------------------------------------------------------------------

    def _drop_duplicates(
        self, records: list[AccountRecord], outcome: BatchOutcome
    ) -> list[AccountRecord]:
        # Rejected rows come first where they stand in the file, and land nowhere.
        self._flush_rejected()
        references = list(dict.fromkeys(record.reference for record in records))
        result = self.connection.execute(
            select(_SEEN.c.reference, _SEEN.c.row_number).where(_SEEN.c.reference.in_(references))
        )
        seen_before: dict[str, int] = dict(result.all())
        first_row: dict[str, int] = {}
        fresh: list[AccountRecord] = []
        for record in records:
            # The earliest row of this reference before this one: of this batch, or seen
            # before it (a rejected row noted there may come after this one).
            rows = (first_row.get(record.reference), seen_before.get(record.reference))
            earlier = min((row for row in rows if row is not None and row < record.row), default=0)
            if earlier:
                outcome.duplicates.append((record, earlier))
            else:
                first_row[record.reference] = record.row
                fresh.append(record)
        firsts = [
            {"reference": reference, "row_number": row}
            for reference, row in first_row.items()
            if reference not in seen_before
        ]
        if firsts:
            self.connection.execute(insert(_SEEN), firsts)
        earlier_now = [
            {"b_reference": reference, "b_row": row}
            for reference, row in first_row.items()
            if reference in seen_before
        ]
        if earlier_now:
            self.connection.execute(
                update(_SEEN)
                .where(_SEEN.c.reference == bindparam("b_reference"))
                .values(row_number=bindparam("b_row")),
                earlier_now,
            )
        outcome.duplicates.sort(key=lambda pair: pair[0].row)
        return fresh

    # --- accounts ---------------------------------------------------------------------

    def _existing_accounts(self, references: list[str]) -> dict[str, dict[str, Any]]:
        table = store.accounts
        columns = [
            table.c.id, table.c.reference, table.c.status, table.c.next_contact_at,
            table.c.closed_at, table.c.imported_balance_minor, table.c.handoff,
            table.c.collector_since, *_owned_columns(),
        ]  # fmt: skip
        query = select(*columns).where(table.c.reference.in_(references))
        if not self.dry_run:
            # The accounts are read locked, and what the batch writes is worked out from
            # what they hold then: a payment, a planner's next contact or a contact point
            # marked wrong meanwhile would otherwise be written over with what was read
            # before it (READ COMMITTED). In the order of their ids, FOR NO KEY UPDATE, as
            # every writer of several accounts locks them (``store.lock_accounts``); on
            # SQLite, which ignores FOR UPDATE, the one writer's lock is taken first.
            store.hold_writes(self.connection)
            _one_import_batch_at_a_time(self.connection)
            query = query.order_by(table.c.id).with_for_update(key_share=True)
        result = self.connection.execute(query)
        found = {row.reference: dict(row._mapping) for row in result}
        if self.clock is not None:
            self.locked_at = self.clock.now()
        return found

    def _insert_accounts(self, records: list[AccountRecord]) -> dict[str, int]:
        if not records:
            return {}
        rows = []
        for record in records:
            paid = record.balance_minor == 0
            rows.append(
                {
                    "reference": record.reference,
                    **record.account_values(),
                    "imported_balance_minor": record.balance_minor,
                    "status": AccountStatus.PAID if paid else AccountStatus.ACTIVE,
                    # A new account is considered at the next plan tick, which works out
                    # the step due (or none) from its cadence.
                    "next_contact_at": None if paid else self.now,
                    "closed_at": self.now if paid else None,
                    "created_at": self.now,
                    "updated_at": self.now,
                }
            )
        if self.dry_run:
            # Negative placeholders: nothing is written, but contact diffs still line up.
            return {record.reference: -index - 1 for index, record in enumerate(records)}
        table = store.accounts
        result = self.connection.execute(
            insert(table).returning(table.c.id, table.c.reference, sort_by_parameter_order=True),
            rows,
        )
        return {row.reference: row.id for row in result}

    def _account_updates(
        self,
        records: list[AccountRecord],
        existing: dict[str, dict[str, Any]],
        outcome: BatchOutcome,
    ) -> dict[str, dict[str, Any]]:
        updates: dict[str, dict[str, Any]] = {}
        for record in records:
            row = existing[record.reference]
            given = record.given_values()
            figure = given.pop("balance_minor")
            changed = {key: value for key, value in given.items() if row[key] != value}
            # Compared with the last imported figure, not the current balance: payments
            # recorded since then lower the balance, and the same file again must not undo them.
            balance_changed = figure != row["imported_balance_minor"]
            if not changed and not balance_changed:
                continue
            change: dict[str, Any] = {
                "b_id": row["id"],
                **{column.name: row[column.name] for column in _owned_columns()},
                **changed,
                "imported_balance_minor": figure,
                "status": row["status"],
                "next_contact_at": row["next_contact_at"],
                "closed_at": row["closed_at"],
                "collector_since": _collector_since(row, changed, self.locked_at),
                "updated_at": self.now,
            }
            if balance_changed:
                change["balance_minor"] = figure
            if row["status"] == AccountStatus.ACTIVE:
                if balance_changed and figure == 0:
                    change.update(
                        status=AccountStatus.PAID, closed_at=self.now, next_contact_at=None
                    )
                elif row["handoff"] is None and (
                    balance_changed or not _RECONSIDERED.isdisjoint(changed)
                ):
                    # A different step may be due, or the same one at another time, or one
                    # for an account whose old cadence had finished: reconsidered at the
                    # next tick, which works it out afresh. One handed off to the agents
                    # is theirs: no cadence contacts it again.
                    change["next_contact_at"] = self.now
            updates[record.reference] = change
        return updates

    def _update_accounts(self, changes: list[dict[str, Any]]) -> None:
        table = store.accounts
        columns = [
            *(c.name for c in _owned_columns()),
            "imported_balance_minor",
            "status",
            "next_contact_at",
            "closed_at",
            "collector_since",
            "updated_at",
        ]
        statement = (
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values({name: bindparam(name) for name in columns})
        )
        self.connection.execute(statement, changes)

    # --- contact points ---------------------------------------------------------------

    def _sync_contacts(
        self, records: list[AccountRecord], ids: dict[str, int], new_ids: set[int]
    ) -> set[int]:
        """Bring each account's contact points in line with its row; return changed account ids."""
        table = store.contact_points
        old_ids = [ids[r.reference] for r in records if ids[r.reference] not in new_ids]
        current: dict[int, dict[tuple[str, str], dict[str, Any]]] = {}
        if old_ids:
            query = select(table).where(table.c.account_id.in_(old_ids))
            if not self.dry_run:
                # Locked too, after their accounts (as the dispatcher and the webhooks lock
                # accounts before marking their numbers): a number a provider or an agent
                # marked wrong meanwhile is read as marked, and stays so.
                query = query.order_by(table.c.id).with_for_update(key_share=True)
            result = self.connection.execute(query)
            for found in result:
                mapping = dict(found._mapping)
                current.setdefault(found.account_id, {})[(found.channel, found.address)] = mapping
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        changed: set[int] = set()
        for record in records:
            account_id = ids[record.reference]
            have = current.get(account_id, {})
            wanted = {(c.channel, c.address): c for c in record.contacts}
            for key, contact in wanted.items():
                if key not in have:
                    inserts.append(self._new_contact(account_id, contact, record))
                    changed.add(account_id)
                    continue
                update_row = self._contact_update(have[key], contact, record, events)
                if update_row is not None:
                    updates.append(update_row)
                    changed.add(account_id)
            for key, row in have.items():
                if key in wanted:
                    continue
                changes: dict[str, Any] = {}
                managed = record.manages(row["channel"], row["priority"])
                if managed and row["status"] == ContactStatus.ACTIVE:
                    # Gone from the source system: kept for the history, no longer used.
                    changes["status"] = ContactStatus.SUPERSEDED
                if row["consent"] and record.revokes(row["channel"], row["priority"]):
                    # Withdrawn by a row that names no address for it: whatever the point's
                    # status, so that it does not come back with its consent later.
                    changes.update(self._consent_change(row, False, record, events))
                if changes:
                    updates.append({**_contact_params(row), "b_id": row["id"], **changes,
                                    "updated_at": self.now})  # fmt: skip
                    changed.add(account_id)
        if not self.dry_run:
            if inserts:
                self.connection.execute(insert(table), inserts)
            if updates:
                params = ["kind", "priority", "timezone", "consent", "consent_source",
                          "consent_at", "status", "updated_at"]  # fmt: skip
                self.connection.execute(
                    update(table)
                    .where(table.c.id == bindparam("b_id"))
                    .values({name: bindparam(name) for name in params}),
                    updates,
                )
            if events:
                self.connection.execute(insert(store.compliance_events), events)
        return changed

    def _new_contact(
        self, account_id: int, contact: ContactRecord, record: AccountRecord
    ) -> dict[str, Any]:
        return {
            "account_id": account_id,
            "channel": contact.channel,
            "address": contact.address,
            "kind": contact.kind,
            "priority": contact.priority,
            "timezone": contact.timezone,
            "consent": contact.consent,
            "consent_source": record.consent_source if contact.consent else None,
            "consent_at": record.consent_at if contact.consent else None,
            "status": ContactStatus.ACTIVE,
            "created_at": self.now,
            "updated_at": self.now,
        }

    def _contact_update(
        self,
        row: dict[str, Any],
        contact: ContactRecord,
        record: AccountRecord,
        events: list[dict[str, Any]],
    ) -> dict[str, Any] | None:
        params = _contact_params(row)
        params.update(priority=contact.priority, timezone=contact.timezone)
        if contact.kind_given:
            params["kind"] = contact.kind
        if row["status"] == ContactStatus.SUPERSEDED:
            params["status"] = ContactStatus.ACTIVE
        # A number marked invalid or wrong by a provider or an agent stays so: the source
        # system does not know better than the debtor who said "wrong number".
        if contact.consent_given and contact.consent != row["consent"]:
            params.update(self._consent_change(row, contact.consent, record, events))
        if params == _contact_params(row):
            return None
        return {**params, "b_id": row["id"], "updated_at": self.now}

    def _consent_change(
        self,
        row: dict[str, Any],
        consent: bool,
        record: AccountRecord,
        events: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """The contact point's consent columns set to ``consent``, and the compliance event
        that records the change."""
        change = {
            "consent": consent,
            "consent_source": record.consent_source,
            "consent_at": record.consent_at if consent else self.now,
        }
        kind = ComplianceEventKind.CONSENT if consent else ComplianceEventKind.CONSENT_REVOKED
        events.append(
            {
                "account_id": row["account_id"],
                "kind": kind,
                "channel": row["channel"],
                "address": row["address"],
                "occurred_at": change["consent_at"],
                "source": record.consent_source,
                "note": f"import row {record.row}",
            }
        )
        return change


# The account's columns planning reads besides its balance: which cadence, when its steps
# fall due (the date, and the zone of its days, or its state's), and which steps apply.
_RECONSIDERED = frozenset(("cadence", "due_date", "timezone", "jurisdiction", "locale", "currency"))


def _collector_since(
    row: dict[str, Any], changed: dict[str, Any], now: datetime
) -> datetime | None:
    """When the account's debt collector took it over, after a row's ``changed`` columns:
    when the row turns a creditor's account into a debt collector's (``now``: when the
    account was locked for the change, and a moment after, for a clock of another process
    running ahead: a message of the creditor's written before the change must not count as
    the collector's, while one more whole disclosure harms nobody); none once the creditor
    has it back (all its messages are then the creditor's own); else as it was."""
    if "collector_type" not in changed:
        kept: datetime | None = row["collector_since"]
        return kept
    if changed["collector_type"] == CollectorType.THIRD_PARTY:
        return now + CLOCK_SKEW
    return None


def _contact_params(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("kind", "priority", "timezone", "consent", "consent_source", "consent_at", "status")
    return {key: row[key] for key in keys}


# The advisory lock of account imports (PostgreSQL): "impt" in ASCII.
_IMPORT_LOCK = 0x696D7074


def _one_import_batch_at_a_time(connection: Connection) -> None:
    """PostgreSQL: wait for another import's batch to commit before reading the accounts.

    Two imports sharing a new reference would both read it as missing and both insert it,
    and the second would fail on the unique reference. Locked, the second reads the account
    the first created and updates it. The lock is the transaction's, held for one batch: it
    goes with the batch's commit or rollback, and two long imports take turns batch by
    batch instead of one waiting for the whole of the other. Taken before any account is
    locked, it never waits in a circle with a writer locking accounts. SQLite: the one
    writer's lock (``hold_writes``) already does this."""
    if connection.dialect.name == "postgresql":
        connection.execute(select(func.pg_advisory_xact_lock(_IMPORT_LOCK)))


def _owned_columns() -> list[Any]:
    table = store.accounts
    names = ("name", "balance_minor", "currency", "due_date", "timezone", "jurisdiction",
             "locale", "cadence", "collector_type", "servicer_account_no",
             "time_barred_on")  # fmt: skip
    return [table.c[name] for name in names]


def _ids(existing: dict[str, dict[str, Any]]) -> dict[str, int]:
    return {reference: row["id"] for reference, row in existing.items()}
