"""Payments: recorded one by one or imported from a file; a balance paid in full closes the
account for outreach and keeps its pending promises to pay."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path, PurePath
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    insert,
    select,
    update,
)

from outreach import store
from outreach.clock import Clock
from outreach.errors import DataFileError, NotFoundError, OutreachError
from outreach.importing.fields import (
    FieldError,
    format_minor,
    parse_amount,
    parse_currency,
    parse_date,
    required_text,
    text_of,
    unstorable,
)
from outreach.importing.reader import FileFormat, RawRow, open_rows
from outreach.importing.rejects import (
    Rejections,
    RejectsWriter,
    RowProblem,
    refuse_rejects_over_input,
)
from outreach.models import AccountStatus, PromiseStatus
from outreach.promise_days import debtor_today, made_on
from outreach.store import hold_writes, lock_accounts, unindexed

PAYMENT_REQUIRED = frozenset({"reference", "amount"})
# ``row_key``: written by a rejects file for each row without a payment_id (see _identify).
ROW_KEY = "row_key"
# ``source_file``: written beside it, the name of the file the row was first read from, so a
# row corrected there is told from an equal row of another month's file (``_another_file``).
SOURCE_FILE = "source_file"
PAYMENT_COLUMNS = PAYMENT_REQUIRED | {
    "currency", "paid_on", "payment_id", ROW_KEY, SOURCE_FILE, "row", "errors"
}  # fmt: skip
_READ_COLUMNS = ("reference", "amount", "currency", "paid_on", "payment_id", ROW_KEY, SOURCE_FILE)

# How many rows of each content this import has seen so far (see _identify); a temporary
# table lives and dies with the connection, so memory stays flat whatever the file's size.
_OCCURRENCES = Table(
    "payment_import_occurrence",
    MetaData(),
    Column("digest", String(64), primary_key=True),
    Column("seen", Integer(), nullable=False),
    prefixes=["TEMPORARY"],
)


@dataclass(frozen=True)
class PaymentRecord:
    row: int
    reference: str
    amount: str  # checked against the account's currency once the account is known
    currency: str | None  # None: the account's currency
    paid_on: date | None  # None: the debtor's today when it is recorded
    external_id: str | None
    dedupe_key: str
    # Where the key came from, for a conflict's message: payment_id, row_key or the row.
    key_column: str = "payment_id"
    # A row_key's row given a payment_id in a rejects file: the payment_id's key, for the
    # rows that name the payment by it.
    id_key: str | None = None
    # A row_key's row: the name of the file it was first read from, where the rejects file
    # kept it (None in one written before it did).
    source_file: str | None = None


@dataclass
class PaymentSummary:
    rows_read: int = 0
    recorded: int = 0
    already_recorded: int = 0
    accounts_paid_off: int = 0
    rejected: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    unknown_columns: list[str] = field(default_factory=list)


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
    nothing (the answer then says ``recorded=False``), and recording it again with another
    amount or date is refused.
    """
    with engine.connect() as connection:
        account = _accounts(connection, [reference]).get(reference)
        if account is None:
            raise NotFoundError(f"no account with reference {reference!r}")
        try:
            payment_id = _payment_id(payment_id or "")
            if paid_on is not None:  # the range a file's paid_on is held to
                parse_date("paid_on", paid_on.isoformat())
        except FieldError as exc:
            raise OutreachError(str(exc)) from None
        key = _key(reference, payment_id) if payment_id else f"manual:{uuid.uuid4().hex}"
        currency_code = currency.upper() if currency else None
        record = PaymentRecord(0, reference, amount, currency_code, paid_on, payment_id, key)
        summary = PaymentSummary()
        problems: list[str] = []
        _apply(connection, [record], clock.now(), source, summary,
               lambda _record, message, keyed=True: problems.append(message))  # fmt: skip
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
    on one day both count, and a second import of the file adds neither; one equal to a
    payment recorded from a file of another name is rejected, not taken for it unnoticed
    (``_another_file``). A file with a date or an id under another name is refused
    (``_misnamed``). A rejected row
    without a ``payment_id`` goes to the rejects file with that identity as its ``row_key``,
    so the row corrected there is recorded once, as the row it corrects.
    """
    summary = PaymentSummary()
    refuse_rejects_over_input(rejects_path, path)
    with open_rows(path, file_format, required=PAYMENT_REQUIRED, known=PAYMENT_COLUMNS) as rows:
        misnamed = _misnamed(rows.columns)
        if misnamed:
            raise DataFileError(
                f"{path}: column {misnamed.column} {misnamed.message}. Nothing was imported."
            )
        # As for balances: in a ';' file a comma may be a decimal mark (12,50) as well as a
        # thousands separator (12,500).
        grouping = rows.delimiter != ";"
        rejects = (
            RejectsWriter(
                rejects_path,
                file_format,
                rows.columns,
                delimiter=rows.delimiter,
                added=[ROW_KEY, SOURCE_FILE],
            )
            if rejects_path
            else None
        )
        rejections = Rejections(rejects, on_problem)
        try:
            with engine.connect() as connection:
                _OCCURRENCES.create(connection, checkfirst=True)
                connection.execute(delete(_OCCURRENCES))
                batch: list[RawRow] = []
                for raw in rows:
                    summary.rows_read += 1
                    batch.append(raw)
                    if len(batch) >= batch_size:
                        _land(connection, batch, clock.now(), str(path), grouping, summary,
                              rejections)  # fmt: skip
                _land(connection, batch, clock.now(), str(path), grouping, summary, rejections)
                _OCCURRENCES.drop(connection, checkfirst=True)
                connection.commit()
        finally:
            if rejects is not None:
                rejects.close()
        summary.unknown_columns = sorted(rows.unknown_columns)
    summary.rejected, summary.problems = rejections.count, rejections.kept
    return summary


# Columns under another name that a file may mean for a known one: read as unknown, the
# payment would be dated the day of the import (breaking a promise kept in time) or
# identified by its cells instead of its id. Any column whose words say a date is taken for
# the payment's (Date Received, Settlement Date, DatePaid...), except another thing's date
# (due_date, invoice_date, created_at...); an id only when it says the payment's or the
# transaction's. Words are matched whole: paid_by, days_late, mandate_id, batch_id are
# ignored like any unknown column.
_DATE_WORDS = frozenset(["date", "dated", "day", "datetime"])
_PAID_WHEN = frozenset(["on", "at"])
# Words that go with "date" in one-word headers (a CSV's "DateReceived" reads datereceived).
_DATE_COMPANIONS = frozenset(["payment", "pay", "paid", "transaction", "trans", "txn",
                              "receipt", "received", "posting", "posted", "booking", "value",
                              "deposit", "settlement", "settled", "effective", "time"])  # fmt: skip
_IDENTIFIED = frozenset(["payment", "pay", "transaction", "trans", "txn", "receipt"])
_NUMBERED = frozenset(["id", "number", "no", "num", "nr"])
_ANOTHER_THINGS = frozenset(["invoice", "account", "customer", "debtor", "client", "order",
                             "reference", "ref", "contact", "due", "issue", "issued",
                             "created", "updated", "birth", "statement", "service",
                             "billing", "bill"])  # fmt: skip
_ONE_WORD_IDS = frozenset(w + n for w in _IDENTIFIED for n in _NUMBERED)


def _words(name: str) -> list[str]:
    """``name``'s words, lower case: split at anything not a letter or digit and where a
    lower-case letter meets a capital (a JSON key's paymentId)."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name)
    return [word for word in re.split(r"[^a-z0-9]+", spaced.lower()) if word]


def _one_word_date(word: str) -> bool:
    """datepaid, datereceived, paymentdate, paymentdatetime, paidon: a date run together
    with a word that goes with it (never mandate or candidate)."""
    word = word.removesuffix("time")
    if word in ("paidon", "paidat"):
        return True
    for part in ("date", "day"):
        if word.startswith(part) and word[len(part) :] in _DATE_COMPANIONS:
            return True
        if word.endswith(part) and word[: -len(part)] in _DATE_COMPANIONS:
            return True
    return False


def _says_payment_date(words: list[str]) -> bool:
    """date, paid_at, Paid Date, Date Received, Settlement Date...: never days_late or
    paid_by."""
    if not _DATE_WORDS.isdisjoint(words):
        return True
    if "paid" in words and not _PAID_WHEN.isdisjoint(words):
        return True
    return len(words) == 1 and _one_word_date(words[0])


def _says_payment_id(words: list[str]) -> bool:
    """id, txn, Transaction ID, Transaction Number, Trans No, PaymentID, receipt_id...:
    never batch_id or mandate_id."""
    if words in (["id"], ["txn"]) or (len(words) == 1 and words[0] in _ONE_WORD_IDS):
        return True
    return not _NUMBERED.isdisjoint(words) and not _IDENTIFIED.isdisjoint(words)


def _misnamed(columns: Collection[str]) -> FieldError | None:
    """The first column that says the payment's date or id under another name than
    ``paid_on`` or ``payment_id``, where there is no column of that name, with what to do."""
    for name in columns:
        if not name or name in PAYMENT_COLUMNS:
            continue
        words = _words(name)
        if not _ANOTHER_THINGS.isdisjoint(words):
            continue
        if "paid_on" not in columns and _says_payment_date(words):
            return FieldError(
                name,
                "looks like the day of the payment, which is read from a column named "
                "paid_on (without it every payment is dated the day it is imported): "
                "rename the column paid_on, or remove it",
            )
        if "payment_id" not in columns and _says_payment_id(words):
            return FieldError(
                name,
                "looks like the payment's id, which is read from a column named payment_id "
                "(without it a payment is known by its cells only): rename the column "
                "payment_id, or remove it",
            )
    return None


def _land(
    connection: Connection,
    batch: list[RawRow],
    now: datetime,
    source: str,
    grouping: bool,
    summary: PaymentSummary,
    rejections: Rejections,
) -> None:
    """Identify, check and record one batch of rows; the rejected ones are reported in the
    order of the file, each row without a payment_id with its ``row_key``."""
    if not batch:
        return
    digests = [_identify(raw) for raw in batch]
    occurrences = _count(connection, digests)
    rejected: list[tuple[RawRow, str]] = []
    records: list[PaymentRecord] = []
    raws: dict[int, RawRow] = {}
    for raw, digest, occurrence in zip(batch, digests, occurrences, strict=True):
        row_key = _row_key(digest, occurrence) if digest is not None else None
        if row_key is not None:
            name = PurePath(source).name
            raw = replace(raw, values={**raw.values, ROW_KEY: row_key, SOURCE_FILE: name})
        if raw.error is not None:
            rejected.append((raw, raw.error))
            continue
        try:
            record = _parse_payment(raw, row_key)
        except FieldError as exc:
            rejected.append((raw, str(exc)))
            continue
        records.append(record)
        raws[record.row] = raw

    def reject(record: PaymentRecord, message: str, keyed: bool = True) -> None:
        raw = raws[record.row]
        if not keyed:
            # Its row_key is the payment it was taken for: corrected in a rejects file under
            # it, the row would be that payment again.
            values = {k: v for k, v in raw.values.items() if k not in (ROW_KEY, SOURCE_FILE)}
            raw = replace(raw, values=values)
        rejected.append((raw, message))

    _apply(connection, records, now, source, summary, reject, grouping=grouping)
    connection.commit()
    for raw, message in sorted(rejected, key=lambda pair: pair[0].number):
        rejections.reject(raw, [message])
    batch.clear()


def _identify(raw: RawRow) -> bytes | None:
    """The digest of a row without a payment_id or row_key: its cells as written (an empty
    ``paid_on`` stays empty, so the same file imported on another day gives the same key)."""
    values = raw.values
    if _ROW_KEY.fullmatch(text_of(values.get(ROW_KEY))):
        return None  # a row from a rejects file keeps its identity
    if raw.text is not None:
        # Not read at all: written to a rejects file as it was, with no room for a key. Its
        # lines, corrected, are recognised by their cells there.
        return None
    if raw.error is not None:
        # A row that could not be read has a key too, for its corrected version; never
        # the key of a readable row.
        written = json.dumps(values, sort_keys=True, default=str, ensure_ascii=False)
        return hashlib.sha256(f"unreadable\x1f{written}".encode("utf-8", "replace")).digest()
    if text_of(values.get("payment_id")) or text_of(values.get(ROW_KEY)):
        return None
    reference = text_of(values.get("reference"))
    amount = text_of(values.get("amount"))
    currency = text_of(values.get("currency")).upper() or None
    paid_on = text_of(values.get("paid_on"))
    content = f"{reference}\x1f{amount}\x1f{currency}\x1f{paid_on}"
    return hashlib.sha256(content.encode("utf-8", "replace")).digest()


def _row_key(digest: bytes, occurrence: int) -> str:
    """A row's identity: its digest and how many rows with the same came before it."""
    return hashlib.sha256(digest + str(occurrence).encode()).hexdigest()


def _count(connection: Connection, digests: list[bytes | None]) -> list[int]:
    """The occurrence of each digest in the file so far (1 for the first), counted in the
    temporary table across batches; 0 where there is no digest."""
    wanted = {digest.hex() for digest in digests if digest is not None}
    if not wanted:
        return [0] * len(digests)
    table = _OCCURRENCES
    before: dict[str, int] = {
        row.digest: row.seen
        for row in connection.execute(
            select(table.c.digest, table.c.seen).where(table.c.digest.in_(sorted(wanted)))
        )
    }
    seen = dict(before)
    occurrences: list[int] = []
    for digest in digests:
        if digest is None:
            occurrences.append(0)
            continue
        seen[digest.hex()] = seen.get(digest.hex(), 0) + 1
        occurrences.append(seen[digest.hex()])
    new = [{"digest": d, "seen": n} for d, n in seen.items() if d not in before]
    if new:
        connection.execute(insert(table), new)
    more = [{"b_digest": d, "b_seen": n} for d, n in seen.items() if d in before]
    if more:
        connection.execute(
            update(table).where(table.c.digest == bindparam("b_digest"))
            .values(seen=bindparam("b_seen")),
            more,
        )  # fmt: skip
    return occurrences


def _parse_payment(raw: RawRow, row_key: str | None) -> PaymentRecord:
    """``row_key``: the row's own identity when it has neither payment_id nor row_key."""
    values = raw.values
    # A JSON line's keys are its own (a CSV's header was checked before any row was read).
    misnamed = _misnamed(values.keys())
    if misnamed:
        raise misnamed
    for column in _READ_COLUMNS:
        problem = unstorable(values.get(column))
        if problem:
            raise FieldError(column, problem)
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
    carried = text_of(values.get(ROW_KEY))
    # Only with the row_key it was written beside: the file that row_key is a row of.
    source_file = text_of(values.get(SOURCE_FILE)) or None
    id_key = None
    if external_id and _ROW_KEY.fullmatch(carried):
        # Given a payment_id while corrected: recorded under the row_key, which its own
        # file's row has, with the payment_id, by which other files name the payment.
        key, column, id_key = "row:" + carried, ROW_KEY, _key(reference, external_id)
    elif external_id:
        key, column = _key(reference, external_id), "payment_id"
    elif row_key is not None:
        key, column = "row:" + row_key, ""
    else:
        # A row from a rejects file: the identity of the row it corrects, never that of
        # another row of the file it came from.
        if not _ROW_KEY.fullmatch(carried):
            raise FieldError(
                ROW_KEY, f"{carried[:80]!r} is not a key a rejects file wrote; keep it as it was"
            )
        key, column = "row:" + carried, ROW_KEY
    return PaymentRecord(
        raw.number, reference, amount_text, currency, paid_on, external_id, key, column, id_key,
        source_file if column == ROW_KEY else None,
    )  # fmt: skip


_ROW_KEY = re.compile(r"[0-9a-f]{64}")


MAX_PAYMENT_ID = 128


def _payment_id(text: str) -> str | None:
    if len(text) > MAX_PAYMENT_ID:
        # Never cut: two long ids sharing their first characters would collide.
        raise FieldError("payment_id", f"is longer than {MAX_PAYMENT_ID} characters")
    return text or None


def _key(reference: str, external_id: str) -> str:
    return "id:" + hashlib.sha256(f"{reference}\x1f{external_id}".encode()).hexdigest()


def _latest_today(now: datetime) -> date:
    """The date where the day comes first (UTC+14): no payment is dated later."""
    return (now + timedelta(hours=14)).astimezone(UTC).date()


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
    *,
    grouping: bool = True,
) -> None:
    if not records:
        return
    # The accounts are locked, in the order of their ids as every writer of several
    # accounts locks them, before the payments already recorded are read: the same payment
    # recorded twice at once (a retried request, two imports of one file) is then found
    # recorded by the second, and answered as it would be after the first, not refused by
    # the database's unique key. SQLite: its one writer's lock, taken first.
    hold_writes(connection)
    accounts = _accounts(connection, {r.reference for r in records})
    lock_accounts(connection, [account["id"] for account in accounts.values()])
    payments = store.payments
    known = _recorded(connection, records)
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
            amount_minor = parse_amount(
                "amount", record.amount, account["currency"], grouping=grouping
            )
        except FieldError as exc:
            reject(record, str(exc))
            continue
        if amount_minor == 0:
            reject(record, "amount: a payment of zero records nothing")
            continue
        stored_source = _stored_source(source, record)
        paid = _Recorded(
            record.reference, amount_minor, account["currency"], record.paid_on, stored_source
        )
        if record.dedupe_key in known:
            earlier = known[record.dedupe_key].source
            if _another_file(earlier, _read_from(record, source)):
                reject(record, _taken_for(record, earlier), keyed=False)
                continue
            conflict = _conflict(record, known[record.dedupe_key], paid)
            if conflict:
                reject(record, conflict)
            else:
                summary.already_recorded += 1
            continue
        if record.id_key in known:
            # Recorded by another row: this one's own file, imported again, would record
            # its row a second time.
            reject(
                record,
                f"payment_id: {record.external_id!r} is already recorded by another row; "
                "leave this row out, or import it without the payment_id",
            )
            continue
        if record.paid_on is not None and record.paid_on > _latest_today(now):
            # A payment is recorded once made: a later date is a typo or a payment scheduled,
            # and would keep a promise before the money came.
            reject(record, f"paid_on: {record.paid_on} has not come yet anywhere")
            continue
        paid_on = record.paid_on or debtor_today(account["timezone"], now)
        known[record.dedupe_key] = replace(paid, paid_on=paid_on)
        if record.id_key is not None:
            known[record.id_key] = known[record.dedupe_key]
        rows.append(
            {
                "account_id": account["id"],
                "amount_minor": amount_minor,
                "currency": account["currency"],
                # Without a date, the debtor's today (``promise_days``): a payment made on
                # the evening a promise is due keeps it wherever the debtor is.
                "paid_on": paid_on,
                "dedupe_key": record.dedupe_key,
                "external_id": record.external_id,
                "source": stored_source,
                "created_at": now,
            }
        )
        paid_by_account[account["id"]] = paid_by_account.get(account["id"], 0) + amount_minor
    if not rows:
        return
    connection.execute(insert(payments), rows)
    summary.recorded += len(rows)
    _reduce_balances(connection, paid_by_account, now, summary)


def _recorded(connection: Connection, records: list[PaymentRecord]) -> dict[str, _Recorded]:
    """The payments already recorded under the records' keys, by key."""
    payments, accounts = store.payments, store.accounts
    keys = [r.dedupe_key for r in records] + [r.id_key for r in records if r.id_key]
    columns = (payments.c.dedupe_key, accounts.c.reference, payments.c.external_id,
               payments.c.amount_minor, payments.c.currency, payments.c.paid_on,
               payments.c.source)  # fmt: skip
    found = list(
        connection.execute(
            select(*columns)
            .join(accounts, accounts.c.id == payments.c.account_id)
            .where(payments.c.dedupe_key.in_(keys))
        )
    )
    ids = {r.external_id for r in records if r.external_id}
    if ids:
        # A row corrected in a rejects file and given a payment_id there is recorded under
        # its row_key: a row naming its payment_id is that payment too.
        found += connection.execute(
            select(*columns)
            .join(accounts, accounts.c.id == payments.c.account_id)
            .where(
                accounts.c.reference.in_({r.reference for r in records if r.external_id}),
                payments.c.external_id.in_(ids),
                payments.c.dedupe_key.startswith("row:"),
            )
        ).all()
    known: dict[str, _Recorded] = {}
    for row in found:
        recorded = _Recorded(row.reference, row.amount_minor, row.currency, row.paid_on, row.source)
        known[row.dedupe_key] = recorded
        if row.external_id is not None and row.dedupe_key.startswith("row:"):
            known.setdefault(_key(row.reference, row.external_id), recorded)
    return known


@dataclass(frozen=True)
class _Recorded:
    """What identifies a payment besides its key: to tell a repeat from a conflict."""

    reference: str
    amount_minor: int
    currency: str
    paid_on: date | None  # None: not given (the repeat of a row without a date)
    source: str | None = None  # where it was recorded from (``_stored_source``)


# Marks the source of a row recorded under the row_key of a rejects file written before
# rejects files kept the name of the file the row came from: of that file, unknown.
_CORRECTED = " (row_key)"
# Marks the source of a row recorded under a row_key, naming the file the row came from.
_CORRECTED_FROM = re.compile(r" \(row_key of (.+)\)\Z")


def _stored_source(source: str, record: PaymentRecord) -> str:
    """``source`` as stored (200 characters at most), with the name of the file a row
    corrected in a rejects file came from: a long path loses its start, never the file's
    name, by which a later import tells its own rows from another file's."""
    stored = source
    if record.key_column == ROW_KEY:
        stored += f" (row_key of {record.source_file})" if record.source_file else _CORRECTED
    return stored if len(stored) <= 200 else "…" + stored[-199:]


def _read_from(record: PaymentRecord, source: str) -> str | None:
    """The name of the file ``record``'s row was first read from: ``source`` for a row known
    by its cells, the rejects file's ``source_file`` for a row_key's row; None where
    unknown (a payment_id's row, whose id says which payment it is)."""
    if record.key_column == "":
        return PurePath(source).name
    return record.source_file if record.key_column == ROW_KEY else None


def _original_file(recorded: str) -> str | None:
    """The name of the file a recorded payment's row was first read from; None for a row
    corrected in a rejects file that did not keep it."""
    if recorded.endswith(_CORRECTED):
        return None
    corrected = _CORRECTED_FROM.search(recorded)
    return corrected.group(1) if corrected else PurePath(recorded).name


def _another_file(recorded: str | None, read_from: str | None) -> bool:
    """Whether a row first read from the file named ``read_from`` matches a payment recorded
    from another file: by name, so the same file imported again from another folder, or by
    another path, or corrected in its rejects file, is the same file."""
    if recorded is None or read_from is None:
        return False
    original = _original_file(recorded)
    return original is not None and original != read_from


def _taken_for(record: PaymentRecord, recorded_from: str | None) -> str:
    """Why a row equal to a payment another file recorded is refused, and what to do."""
    paid_on = record.paid_on.isoformat() if record.paid_on else "none"
    cells = f"(reference {record.reference}, amount {record.amount}, paid_on {paid_on})"
    original = _original_file(recorded_from or "") or ""
    if record.key_column == ROW_KEY:
        return (
            f"row_key: the row this one corrects, of {record.source_file}, has the same cells "
            f"{cells} as a payment recorded from {original}, and so the same row_key: this "
            "one would be taken for that payment and not recorded. If it is another payment "
            "(an instalment of the same amount), empty its row_key and give it a payment_id, "
            "or a paid_on if that tells it apart, and import it again"
        )
    return (
        f"payment_id: none given, and a payment of the same cells {cells} was recorded from "
        f"{original}; a row without payment_id is known by its cells, "
        "so this one would be taken for that payment and not recorded. If it is another "
        "payment (an instalment of the same amount), give it a payment_id, or a paid_on if "
        "that tells it apart, and import this file again"
    )


def _conflict(record: PaymentRecord, there: _Recorded, here: _Recorded) -> str | None:
    """Why a row whose key is already recorded is not that payment again, if it is not."""
    differences = []
    if here.reference != there.reference:
        differences.append(f"account {there.reference}, not {here.reference}")
    if here.amount_minor != there.amount_minor:
        recorded = format_minor(there.amount_minor, there.currency)
        differences.append(
            f"amount {recorded}, not {format_minor(here.amount_minor, here.currency)}"
        )
    if here.paid_on is not None and here.paid_on != there.paid_on:
        differences.append(f"paid_on {there.paid_on}, not {here.paid_on}")
    if not differences:
        return None
    if record.key_column == "payment_id":
        what = f"payment_id: {record.external_id!r} is already recorded"
    elif record.key_column == ROW_KEY:
        what = "row_key: the row this one corrects is already recorded"
    else:
        what = "the row is already recorded, as corrected in a rejects file,"
    return f"{what} with {' and '.join(differences)}"


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
        store.keep_promises_of_paid_off(connection, paid_off, now)
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
