"""Payments: recorded one by one or imported from a file; a balance paid in full closes the
account for outreach and keeps its pending promises to pay."""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, select, update

from outreach import store
from outreach.clock import Clock
from outreach.errors import NotFoundError, OutreachError
from outreach.importing.fields import (
    FieldError,
    parse_amount,
    parse_currency,
    parse_date,
    required_text,
    text_of,
)
from outreach.importing.reader import FileFormat, RawRow, open_rows
from outreach.importing.rejects import Rejections, RejectsWriter, RowProblem
from outreach.models import AccountStatus, PromiseStatus
from outreach.promise_days import debtor_today, made_on
from outreach.store import lock_accounts, unindexed

PAYMENT_REQUIRED = frozenset({"reference", "amount"})
PAYMENT_COLUMNS = PAYMENT_REQUIRED | {"currency", "paid_on", "payment_id", "row", "errors"}


@dataclass(frozen=True)
class PaymentRecord:
    row: int
    reference: str
    amount: str  # checked against the account's currency once the account is known
    currency: str | None  # None: the account's currency
    paid_on: date | None  # None: the debtor's today when it is recorded
    external_id: str | None
    dedupe_key: str


@dataclass
class PaymentSummary:
    rows_read: int = 0
    recorded: int = 0
    already_recorded: int = 0
    accounts_paid_off: int = 0
    rejected: int = 0
    problems: list[RowProblem] = field(default_factory=list)


def record_payment(
    engine: Engine,
    clock: Clock,
    reference: str,
    amount: str,
    *,
    paid_on: date | None = None,
    currency: str | None = None,
    payment_id: str | None = None,
    source: str = "manual",
) -> tuple[bool, int, str]:
    """Record one payment; returns (recorded, balance after, account status).

    Without ``payment_id`` each call is a new payment; with one, recording it again does
    nothing (the answer then says ``recorded=False``).
    """
    with engine.connect() as connection:
        account = _accounts(connection, [reference]).get(reference)
        if account is None:
            raise NotFoundError(f"no account with reference {reference!r}")
        try:
            payment_id = _payment_id(payment_id or "")
        except FieldError as exc:
            raise OutreachError(str(exc)) from None
        key = _key(reference, payment_id) if payment_id else f"manual:{uuid.uuid4().hex}"
        currency_code = currency.upper() if currency else None
        record = PaymentRecord(0, reference, amount, currency_code, paid_on, payment_id, key)
        summary = PaymentSummary()
        problems: list[str] = []
        _apply(connection, [record], clock.now(), source, summary,
               lambda _record, message: problems.append(message))  # fmt: skip
        if problems:
            raise OutreachError(problems[0])
        connection.commit()
        after = _accounts(connection, [reference])[reference]
    return summary.recorded == 1, int(after["balance_minor"]), str(after["status"])


def import_payments(
    engine: Engine,
    path: Path,
    file_format: FileFormat,
    clock: Clock,
    *,
    batch_size: int = 1000,
    rejects_path: Path | None = None,
    on_problem: Callable[[RowProblem], None] | None = None,
) -> PaymentSummary:
    """Import payments; re-importing the same file records nothing twice.

    A row with a ``payment_id`` is identified by it. A row without one is identified by its
    content and by how many identical rows came before it in the file, so two equal payments
    on one day both count, and a second import of the file adds neither.
    """
    summary = PaymentSummary()
    occurrences: Counter[bytes] = Counter()
    with open_rows(path, file_format, required=PAYMENT_REQUIRED, known=PAYMENT_COLUMNS) as rows:
        rejects = RejectsWriter(rejects_path, file_format, rows.columns) if rejects_path else None

        rejections = Rejections(rejects, on_problem)
        reject = rejections.reject

        try:
            with engine.connect() as connection:
                batch: list[tuple[RawRow, PaymentRecord]] = []
                for raw in rows:
                    summary.rows_read += 1
                    if raw.error is not None:
                        reject(raw, [raw.error])
                        continue
                    try:
                        record = _parse_payment(raw, occurrences)
                    except FieldError as exc:
                        reject(raw, [str(exc)])
                        continue
                    batch.append((raw, record))
                    if len(batch) >= batch_size:
                        _land(connection, batch, clock.now(), str(path), summary, reject)
                _land(connection, batch, clock.now(), str(path), summary, reject)
        finally:
            if rejects is not None:
                rejects.close()
    summary.rejected, summary.problems = rejections.count, rejections.kept
    return summary


def _land(
    connection: Connection,
    batch: list[tuple[RawRow, PaymentRecord]],
    now: datetime,
    source: str,
    summary: PaymentSummary,
    reject: Any,
) -> None:
    raws = {record.row: raw for raw, record in batch}
    _apply(
        connection,
        [record for _, record in batch],
        now,
        source,
        summary,
        lambda record, message: reject(raws[record.row], [message]),
    )
    connection.commit()
    batch.clear()


def _parse_payment(raw: RawRow, occurrences: Counter[bytes]) -> PaymentRecord:
    values = raw.values
    reference = required_text("reference", values.get("reference"), 64)
    currency = text_of(values.get("currency")).upper() or None
    if currency is not None:
        currency = parse_currency("currency", currency, currency)
    amount_text = text_of(values.get("amount"))
    if not amount_text:
        raise FieldError("amount", "is required")
    given = text_of(values.get("paid_on"))
    paid_on = parse_date("paid_on", values["paid_on"]) if given else None
    external_id = _payment_id(text_of(values.get("payment_id")))
    if external_id:
        key = _key(reference, external_id)
    else:
        # The cell as written, not the date it defaults to: the same file imported on
        # another day must give the same key.
        paid_on_cell = text_of(values.get("paid_on"))
        content = f"{reference}\x1f{amount_text}\x1f{currency}\x1f{paid_on_cell}".encode()
        digest = hashlib.sha256(content).digest()
        occurrences[digest] += 1
        key = "row:" + hashlib.sha256(digest + str(occurrences[digest]).encode()).hexdigest()
    return PaymentRecord(raw.number, reference, amount_text, currency, paid_on, external_id, key)


MAX_PAYMENT_ID = 128


def _payment_id(text: str) -> str | None:
    if len(text) > MAX_PAYMENT_ID:
        # Never cut: two long ids sharing their first characters would collide.
        raise FieldError("payment_id", f"is longer than {MAX_PAYMENT_ID} characters")
    return text or None


def _key(reference: str, external_id: str) -> str:
    return "id:" + hashlib.sha256(f"{reference}\x1f{external_id}".encode()).hexdigest()


def _accounts(connection: Connection, references: Iterable[str]) -> dict[str, dict[str, Any]]:
    table = store.accounts
    result = connection.execute(
        select(table.c.id, table.c.reference, table.c.currency, table.c.balance_minor,
               table.c.status, table.c.timezone).where(table.c.reference.in_(list(references)))
    )  # fmt: skip
    return {row.reference: dict(row._mapping) for row in result}


def _apply(
    connection: Connection,
    records: list[PaymentRecord],
    now: datetime,
    source: str,
    summary: PaymentSummary,
    reject: Any,
) -> None:
    if not records:
        return
    accounts = _accounts(connection, {r.reference for r in records})
    known_keys = set(
        connection.execute(
            select(store.payments.c.dedupe_key).where(
                store.payments.c.dedupe_key.in_([r.dedupe_key for r in records])
            )
        ).scalars()
    )
    rows: list[dict[str, Any]] = []
    paid_by_account: dict[int, int] = {}
    for record in records:
        account = accounts.get(record.reference)
        if account is None:
            reject(record, f"reference: no account with reference {record.reference!r}")
            continue
        if record.currency and record.currency != account["currency"]:
            reject(
                record,
                f"currency: {record.currency} does not match the account's {account['currency']}",
            )
            continue
        try:
            amount_minor = parse_amount("amount", record.amount, account["currency"])
        except FieldError as exc:
            reject(record, str(exc))
            continue
        if amount_minor == 0:
            reject(record, "amount: a payment of zero records nothing")
            continue
        if record.dedupe_key in known_keys:
            summary.already_recorded += 1
            continue
        known_keys.add(record.dedupe_key)
        rows.append(
            {
                "account_id": account["id"],
                "amount_minor": amount_minor,
                "currency": account["currency"],
                # Without a date, the debtor's today (``promise_days``): a payment made on
                # the evening a promise is due keeps it wherever the debtor is.
                "paid_on": record.paid_on or debtor_today(account["timezone"], now),
                "dedupe_key": record.dedupe_key,
                "external_id": record.external_id,
                "source": source[:200],
                "created_at": now,
            }
        )
        paid_by_account[account["id"]] = paid_by_account.get(account["id"], 0) + amount_minor
    if not rows:
        return
    connection.execute(insert(store.payments), rows)
    summary.recorded += len(rows)
    _reduce_balances(connection, paid_by_account, now, summary)


def _reduce_balances(
    connection: Connection,
    paid_by_account: dict[int, int],
    now: datetime,
    summary: PaymentSummary,
) -> None:
    # The subtraction happens in the database, so payments recorded at the same time by
    # two processes both count. The accounts are locked first, in the order of their ids,
    # as every writer of several accounts locks them (housekeeping breaking promises too).
    table = store.accounts
    lock_accounts(connection, paid_by_account)
    connection.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(balance_minor=table.c.balance_minor - bindparam("paid"), updated_at=now),
        [{"b_id": ident, "paid": paid} for ident, paid in sorted(paid_by_account.items())],
    )
    # Below zero is a credit, kept as it is; zero or below closes an active account.
    paid_off = list(
        connection.execute(
            update(table)
            .where(
                table.c.id.in_(list(paid_by_account)),
                table.c.balance_minor <= 0,
                unindexed(table.c.status) == AccountStatus.ACTIVE,
            )
            .values(status=AccountStatus.PAID, closed_at=now, next_contact_at=None)
            .returning(table.c.id)
        ).scalars()
    )
    if paid_off:
        promises = store.promises_to_pay
        connection.execute(
            update(promises)
            .where(
                promises.c.account_id.in_(paid_off),
                unindexed(promises.c.status) == PromiseStatus.PENDING,
            )
            .values(status=PromiseStatus.KEPT, resolved_at=now)
        )
        summary.accounts_paid_off += len(paid_off)
    _keep_promises(connection, sorted(paid_by_account), now)


def _keep_promises(connection: Connection, account_ids: list[int], now: datetime) -> None:
    """Mark kept each promise the accounts' payments cover: payments made from the debtor's
    day it was made (on that day, recorded after it) through its day, adding up to its
    amount. Each payment counts toward one promise: those already kept take theirs first,
    then the others, the earliest due first. A promise already broken is kept after all
    when a payment made in time is recorded late."""
    promises, payments = store.promises_to_pay, store.payments
    # Read through the accounts' index, not the one on status (every pending promise).
    made = unindexed(promises.c.status).in_(
        (PromiseStatus.PENDING, PromiseStatus.BROKEN, PromiseStatus.KEPT)
    )
    found = connection.execute(
        select(promises.c.id, promises.c.account_id, promises.c.amount_minor, promises.c.due_on,
               promises.c.created_at, promises.c.status, store.accounts.c.timezone)
        .join(store.accounts, store.accounts.c.id == promises.c.account_id)
        .where(promises.c.account_id.in_(account_ids), made)
        .order_by(promises.c.account_id, promises.c.due_on, promises.c.id)
    ).all()  # fmt: skip
    if not any(row.status != PromiseStatus.KEPT for row in found):
        return
    paid: dict[int, list[_Unspent]] = {}
    for row in connection.execute(
        select(payments.c.account_id, payments.c.paid_on, payments.c.created_at,
               payments.c.amount_minor)
        .where(payments.c.account_id.in_(account_ids), payments.c.amount_minor > 0)
        .order_by(payments.c.account_id, payments.c.paid_on, payments.c.id)
    ):  # fmt: skip
        paid.setdefault(row.account_id, []).append(
            _Unspent(row.paid_on, row.created_at, row.amount_minor)
        )
    # Those kept already take their payments first: a payment counts toward one promise.
    for promise in found:
        if promise.status == PromiseStatus.KEPT:
            _covered(promise, paid.get(promise.account_id, []))
    kept = [
        promise.id
        for promise in found
        if promise.status != PromiseStatus.KEPT
        and _covered(promise, paid.get(promise.account_id, []))
    ]
    if kept:
        connection.execute(
            update(promises)
            .where(
                promises.c.id.in_(kept),
                unindexed(promises.c.status).in_((PromiseStatus.PENDING, PromiseStatus.BROKEN)),
            )
            .values(status=PromiseStatus.KEPT, resolved_at=now)
        )


@dataclass
class _Unspent:
    """A payment, and how much of it no promise has taken yet."""

    paid_on: date
    recorded_at: datetime
    left: int


def _covered(promise: Any, payments: list[_Unspent]) -> bool:
    """Take from ``payments`` (in the order they were made) what counts toward ``promise``,
    up to its amount; whether they covered it."""
    since = made_on(promise.created_at, promise.timezone)
    owed = promise.amount_minor
    for payment in payments:
        if owed <= 0:
            break
        in_time = since < payment.paid_on <= promise.due_on or (
            payment.paid_on == since <= promise.due_on and payment.recorded_at >= promise.created_at
        )
        if in_time and payment.left > 0:
            taken = min(owed, payment.left)
            payment.left -= taken
            owed -= taken
    return bool(owed <= 0)
