from __future__ import annotations

import csv
import hashlib
import json
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, select, update

from outreach import agent_actions, store
from outreach.clock import FixedClock
from outreach.errors import DataFileError, NotFoundError, OutreachError
from outreach.housekeeping import housekeeping
from outreach.importing.account_rows import ImportDefaults
from outreach.payments import import_payments, record_payment
from tests.conftest import collector_as_started
from tests.test_import_accounts import row, run_import, write_csv


@pytest.fixture
def accounts(engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock) -> Engine:
    path = write_csv(
        tmp_path / "accounts.csv",
        [
            row("A-1", balance="100.00"),
            row("A-2", balance="40.00"),
            row("Y-1", balance="500", currency="JPY"),
        ],
    )
    run_import(engine, path, defaults, clock)
    return engine


def account(engine: Engine, reference: str) -> dict[str, object]:
    with engine.connect() as connection:
        found = connection.execute(
            select(store.accounts).where(store.accounts.c.reference == reference)
        ).one()
    return dict(found._mapping)


def test_record_reduces_the_balance(accounts: Engine, clock: FixedClock) -> None:
    recorded, balance, status = record_payment(accounts, clock, "A-1", "25.50")
    assert (recorded, balance, status) == (True, 7450, "active")
    # Without a payment id, each call is a payment of its own.
    assert record_payment(accounts, clock, "A-1", "25.50")[1] == 4900


def test_record_with_payment_id_is_idempotent(accounts: Engine, clock: FixedClock) -> None:
    assert record_payment(accounts, clock, "A-1", "10", payment_id="P-9")[0] is True
    assert record_payment(accounts, clock, "A-1", "10", payment_id="P-9") == (False, 9000, "active")


def test_one_payment_id_recorded_twice_at_once_is_recorded_once(
    accounts: Engine, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retried request: the second arrives while the first has read the payments recorded
    and not yet stored its own. It is answered "already recorded", as it is a moment later,
    not refused by the database's unique key."""
    from outreach import payments

    answers: dict[str, object] = {}

    def record(who: str) -> None:
        try:
            answers[who] = record_payment(accounts, clock, "A-1", "10", payment_id="P-9")
        except Exception as exc:
            answers[who] = exc

    other = threading.Thread(target=record, args=("second",))
    real = payments._recorded

    def recorded(*args: Any) -> Any:
        found = real(*args)
        if not other.is_alive() and "second" not in answers:
            other.start()  # the second starts once the first has read
            other.join(1)  # and waits for the first, if it has to
        return found

    monkeypatch.setattr(payments, "_recorded", recorded)
    record("first")
    other.join(30)
    assert answers == {"first": (True, 9000, "active"), "second": (False, 9000, "active")}


def test_paid_in_full_closes_the_account_and_keeps_promises(
    accounts: Engine, clock: FixedClock
) -> None:
    with accounts.begin() as connection:
        account_id = account(accounts, "A-2")["id"]
        connection.execute(
            insert(store.promises_to_pay).values(
                account_id=account_id, amount_minor=4000, currency="USD", due_on=date(2026, 11, 10),
                status="pending", created_by="agent", created_at=clock.now(),
            )
        )  # fmt: skip
    assert record_payment(accounts, clock, "A-2", "40.00") == (True, 0, "paid")
    closed = account(accounts, "A-2")
    assert (closed["next_contact_at"], closed["closed_at"]) == (None, clock.now())
    with accounts.connect() as connection:
        assert connection.execute(select(store.promises_to_pay.c.status)).scalar() == "kept"


def test_record_refuses_what_it_cannot_apply(accounts: Engine, clock: FixedClock) -> None:
    with pytest.raises(NotFoundError, match="no account with reference 'NOPE'"):
        record_payment(accounts, clock, "NOPE", "1")
    with pytest.raises(OutreachError, match="does not match"):
        record_payment(accounts, clock, "A-1", "1", currency="EUR")
    with pytest.raises(OutreachError, match="more than 0 decimal places for JPY"):
        record_payment(accounts, clock, "Y-1", "1.5")
    assert account(accounts, "A-1")["balance_minor"] == 10000


def test_import_is_idempotent_and_reports_bad_rows(
    accounts: Engine, tmp_path: Path, clock: FixedClock
) -> None:
    path = tmp_path / "payments.csv"
    path.write_text(
        "reference,amount,currency,paid_on,payment_id\n"
        "A-1,10.00,USD,2026-11-01,\n"
        "A-1,10.00,USD,2026-11-01,\n"  # the same payment twice in one day: both count
        "A-2,40.00,,2026-11-01,TX-1\n"
        "NOPE,5.00,USD,,\n"
        "A-1,1.001,USD,,\n"
        "Y-1,100,EUR,,\n"
        "Y-1,100,,2026-11-31,\n",
        encoding="utf-8",
    )
    rejects = tmp_path / "rejects.csv"
    first = import_payments(accounts, path, "csv", clock, rejects_path=rejects)
    assert (first.recorded, first.rejected, first.accounts_paid_off) == (3, 4, 1)
    assert sorted(p.row for p in first.problems) == [5, 6, 7, 8]
    messages = " | ".join(str(p) for p in first.problems)
    assert "no account with reference 'NOPE'" in messages
    assert "EUR does not match" in messages
    assert "is not a calendar date" in messages
    assert account(accounts, "A-1")["balance_minor"] == 8000
    assert account(accounts, "A-2")["status"] == "paid"
    second = import_payments(accounts, path, "csv", clock)
    assert (second.recorded, second.already_recorded) == (0, 3)
    assert account(accounts, "A-1")["balance_minor"] == 8000
    assert rejects.read_text(encoding="utf-8").count("\n") == 5


def test_payments_recorded_at_the_same_time_all_count(accounts: Engine, clock: FixedClock) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def pay(_: int) -> None:
        for _attempt in range(20):  # SQLite may say "locked" under contention: retry
            try:
                record_payment(accounts, clock, "A-1", "1.00")
                return
            except Exception as exc:
                if "locked" not in str(exc):
                    raise
        raise AssertionError("could not record a payment")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(pay, range(20)))
    assert account(accounts, "A-1")["balance_minor"] == 10000 - 20 * 100


def test_rows_without_date_or_id_are_not_recounted_on_another_day(
    accounts: Engine, tmp_path: Path, clock: FixedClock
) -> None:
    from datetime import timedelta

    path = tmp_path / "p.csv"
    path.write_text(
        "reference,amount,currency,paid_on,payment_id\nA-1,40.00,,,\n", encoding="utf-8"
    )
    assert import_payments(accounts, path, "csv", clock).recorded == 1
    clock.advance(timedelta(days=1))
    assert import_payments(accounts, path, "csv", clock).already_recorded == 1
    assert account(accounts, "A-1")["balance_minor"] == 6000


def test_a_row_without_payment_id_keeps_the_key_earlier_imports_recorded(
    accounts: Engine, tmp_path: Path, clock: FixedClock
) -> None:
    """Its cells as written and its occurrence in the file, as always: a file imported
    before rejects files had row keys is still recognised."""
    path = tmp_path / "p.csv"
    path.write_text("reference,amount,currency,paid_on\nA-1,40.00,,\nA-1,40.00,,\n", "utf-8")
    assert import_payments(accounts, path, "csv", clock).recorded == 2
    content = hashlib.sha256(b"A-1\x1f40.00\x1fNone\x1f").digest()
    expected = {
        "row:" + hashlib.sha256(content + occurrence).hexdigest() for occurrence in (b"1", b"2")
    }
    with accounts.connect() as connection:
        assert set(connection.execute(select(store.payments.c.dedupe_key)).scalars()) == expected


def test_payment_ids_are_never_cut(accounts: Engine, tmp_path: Path, clock: FixedClock) -> None:
    with pytest.raises(OutreachError, match="longer than 128"):
        record_payment(accounts, clock, "A-1", "1", payment_id="x" * 200)
    path = tmp_path / "p.csv"
    path.write_text(f"reference,amount,payment_id\nA-1,1.00,{'y' * 129}\n", encoding="utf-8")
    summary = import_payments(accounts, path, "csv", clock)
    assert (summary.recorded, summary.rejected) == (0, 1)


def test_a_semicolon_file_refuses_an_amount_with_a_comma_as_ambiguous(
    accounts: Engine, tmp_path: Path, clock: FixedClock
) -> None:
    """As for balances: in a ';' file, 1,250 may be one thousand two hundred and fifty or
    one and a quarter. A comma file and a payment recorded by hand still take 1,250.00."""
    path = tmp_path / "eu-payments.csv"
    path.write_text(
        "reference;amount;paid_on\nA-1;1,250;2026-11-01\nA-1;12.50;2026-11-01\n", encoding="utf-8"
    )
    rejects = tmp_path / "eu-rejects.csv"
    summary = import_payments(accounts, path, "csv", clock, rejects_path=rejects)
    assert (summary.recorded, summary.rejected) == (1, 1)
    assert "'1,250' is ambiguous in a ';'-separated file" in str(summary.problems[0])
    assert account(accounts, "A-1")["balance_minor"] == 8750
    # Its rejects file is ';'-separated too: imported as it is, the amount is refused again.
    assert rejects.read_text(encoding="utf-8").startswith("reference;amount;paid_on;row_key;")
    again = import_payments(accounts, rejects, "csv", clock)
    assert (again.recorded, again.rejected) == (0, 1)
    assert account(accounts, "A-1")["balance_minor"] == 8750
    path = tmp_path / "payments.csv"
    path.write_text('reference,amount,paid_on\nY-1,"1,250",2026-11-01\n', encoding="utf-8")
    assert import_payments(accounts, path, "csv", clock).recorded == 1
    assert record_payment(accounts, clock, "Y-1", "1,000")[1] == 500 - 1250 - 1000


def test_a_nul_or_half_a_surrogate_pair_rejects_its_row_and_the_others_land(
    accounts: Engine, tmp_path: Path, clock: FixedClock
) -> None:
    """PostgreSQL stores neither in text: the row is rejected with its reason, on every
    database, instead of failing the batch it is in."""
    path = tmp_path / "p.csv"
    path.write_text(
        "reference,amount,paid_on,payment_id\n"
        "A-1,1.00,2026-11-01,TX-1\n"
        "A-1,2.00,2026-11-01,TX\x002\n"
        "A-\x001,4.00,2026-11-01,\n"
        "A-1,8.00,2026-11-01,TX-3\n",
        encoding="utf-8",
    )
    summary = import_payments(accounts, path, "csv", clock)
    assert (summary.recorded, summary.rejected) == (2, 2)
    assert [str(p) for p in summary.problems] == [
        "row 3: payment_id: contains a NUL character",
        "row 4: reference: contains a NUL character",
    ]
    assert account(accounts, "A-1")["balance_minor"] == 10000 - 900
    lines = tmp_path / "p.jsonl"
    lines.write_text(
        '{"reference": "A-2", "amount": "1.00", "payment_id": "TX-\\ud800"}\n'
        '{"reference": "A-2", "amount": "2.00", "payment_id": "TX-5"}\n',
        encoding="utf-8",
    )
    rejects = tmp_path / "r.jsonl"
    summary = import_payments(accounts, lines, "jsonl", clock, rejects_path=rejects)
    assert (summary.recorded, summary.rejected) == (1, 1)
    assert "payment_id: contains half of a surrogate pair" in str(summary.problems[0])
    # Written escaped, as JSON may spell it: read back, it is the row as it came.
    written = json.loads(rejects.read_text("utf-8"))
    assert (written["payment_id"], written["row"]) == ("TX-\ud800", 1)


def _correct(rejects: Path, **cells: str) -> None:
    """The operator corrects the first row of a rejects file, keeping its other columns."""
    with rejects.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows[0].update(cells)
    with rejects.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_a_row_corrected_in_the_rejects_file_is_recorded_once(
    accounts: Engine, tmp_path: Path, clock: FixedClock
) -> None:
    """Two payments of 50.00 on one day, the second with a typo in its reference. Corrected
    in the rejects file, it is the payment it was meant to be, not a repeat of the first;
    importing the corrected file again, or the first file, records nothing twice."""
    path = tmp_path / "p.csv"
    path.write_text(
        "reference,amount,paid_on\nA-1,50.00,2026-11-01\nA-l,50.00,2026-11-01\n", encoding="utf-8"
    )
    rejects = tmp_path / "rejects.csv"
    first = import_payments(accounts, path, "csv", clock, rejects_path=rejects)
    assert (first.recorded, first.rejected) == (1, 1)
    _correct(rejects, reference="A-1")
    second = import_payments(accounts, rejects, "csv", clock)
    assert (second.recorded, second.already_recorded, second.rejected) == (1, 0, 0)
    again = import_payments(accounts, rejects, "csv", clock)
    assert (again.recorded, again.already_recorded) == (0, 1)
    original = import_payments(accounts, path, "csv", clock)
    assert (original.recorded, original.already_recorded, original.rejected) == (0, 1, 1)
    assert account(accounts, "A-1")["balance_minor"] == 0


def test_a_row_retried_from_the_rejects_file_and_from_its_own_file_counts_once(
    accounts: Engine,
    tmp_path: Path,
    defaults: ImportDefaults,
    clock: FixedClock,
) -> None:
    """Every rejected row without a payment_id has a row_key, the same on every import of
    its file, whatever the reason: a row with a cell too many, a payment for an account
    not imported yet, a date that is not one. Retried as it was or corrected, it is that
    row: importing its file again does not count it twice, and the row with a cell too
    many, corrected, is not taken for the equal row before it."""
    path = tmp_path / "p.csv"
    path.write_text(
        "reference,amount,paid_on\n"
        "A-1,10.00,2026-11-01\n"
        "A-1,10.00,2026-11-01,oops\n"  # a cell too many
        "N-1,10.00,2026-11-01\n"  # no such account yet
        "A-1,10.00,2026-13-01\n",  # no such month
        encoding="utf-8",
    )
    rejects = tmp_path / "rejects.csv"
    first = import_payments(accounts, path, "csv", clock, rejects_path=rejects)
    assert (first.recorded, first.rejected) == (1, 3)
    with rejects.open(encoding="utf-8", newline="") as handle:
        keys = {int(r["row"]): r["row_key"] for r in csv.DictReader(handle)}
    assert sorted(keys) == [3, 4, 5]
    assert all(len(key) == 64 for key in keys.values()) and len(set(keys.values())) == 3
    import_payments(accounts, path, "csv", clock, rejects_path=tmp_path / "again.csv")
    assert (tmp_path / "again.csv").read_text("utf-8") == rejects.read_text("utf-8")
    run_import(accounts, write_csv(tmp_path / "n.csv", [row("N-1", balance="100.00")]),
               defaults, clock)  # fmt: skip
    corrected = tmp_path / "corrected.csv"
    corrected.write_text(
        "reference,amount,paid_on,row_key\n"
        f"A-1,10.00,2026-11-01,{keys[3]}\n"
        f"N-1,10.00,2026-11-01,{keys[4]}\n"
        f"A-1,10.00,2026-10-31,{keys[5]}\n",
        encoding="utf-8",
    )
    retried = import_payments(accounts, corrected, "csv", clock)
    assert (retried.recorded, retried.already_recorded, retried.rejected) == (3, 0, 0)
    again = import_payments(accounts, corrected, "csv", clock)
    assert (again.recorded, again.already_recorded) == (0, 3)
    original = import_payments(accounts, path, "csv", clock)
    assert (original.recorded, original.already_recorded, original.rejected) == (0, 2, 2)
    assert account(accounts, "A-1")["balance_minor"] == 7000
    assert account(accounts, "N-1")["balance_minor"] == 9000


def test_a_row_given_a_payment_id_in_the_rejects_file_is_recognised_by_either(
    accounts: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """A row rejected for an account not imported yet, retried from the rejects file with
    the payment_id the operator found for it: its own file names it by its row_key, other
    files by its payment_id, and neither records it again."""
    path = tmp_path / "p.csv"
    path.write_text("reference,amount,paid_on\nN-1,10.00,2026-11-01\n", encoding="utf-8")
    rejects = tmp_path / "r.csv"
    assert import_payments(accounts, path, "csv", clock, rejects_path=rejects).rejected == 1
    run_import(accounts, write_csv(tmp_path / "n.csv", [row("N-1", balance="100.00")]),
               defaults, clock)  # fmt: skip
    _correct(rejects, payment_id="TX-9")
    assert import_payments(accounts, rejects, "csv", clock).recorded == 1
    original = import_payments(accounts, path, "csv", clock)
    assert (original.recorded, original.already_recorded) == (0, 1)
    bank = tmp_path / "bank.csv"
    bank.write_text(
        "reference,amount,paid_on,payment_id\nN-1,10.00,2026-11-01,TX-9\n"
        "N-1,12.00,2026-11-01,TX-9\n",
        encoding="utf-8",
    )
    by_id = import_payments(accounts, bank, "csv", clock)
    assert (by_id.recorded, by_id.already_recorded, by_id.rejected) == (0, 1, 1)
    assert "'TX-9' is already recorded with amount 10.00, not 12.00" in str(by_id.problems[0])
    assert record_payment(accounts, clock, "N-1", "10.00", payment_id="TX-9")[0] is False
    assert account(accounts, "N-1")["balance_minor"] == 9000


def test_a_rejects_row_given_a_payment_id_another_row_recorded_is_refused(
    accounts: Engine, tmp_path: Path, clock: FixedClock
) -> None:
    """Recorded already by another row, the payment cannot be this row's too: its own file
    imported again would record the row, known there only by its row_key."""
    record_payment(accounts, clock, "A-1", "10.00", payment_id="TX-7")
    path = tmp_path / "p.csv"
    path.write_text("reference,amount,paid_on\nA-1,10.00,2026-13-01\n", encoding="utf-8")
    rejects = tmp_path / "r.csv"
    assert import_payments(accounts, path, "csv", clock, rejects_path=rejects).rejected == 1
    _correct(rejects, paid_on="2026-11-01", payment_id="TX-7")
    summary = import_payments(accounts, rejects, "csv", clock)
    assert (summary.recorded, summary.rejected) == (0, 1)
    assert "payment_id: 'TX-7' is already recorded by another row" in str(summary.problems[0])
    assert account(accounts, "A-1")["balance_minor"] == 9000


def test_a_json_line_that_cannot_be_read_is_written_to_the_rejects_file_as_it_was(
    accounts: Engine, tmp_path: Path, clock: FixedClock
) -> None:
    path = tmp_path / "p.jsonl"
    broken = '{"reference": "A-1", "amount": "5.00", "paid_on": "2026-11-01"'
    path.write_text(broken + "\n" + '{"reference": "A-1", "amount": "1.00"}\n', encoding="utf-8")
    rejects = tmp_path / "r.jsonl"
    summary = import_payments(accounts, path, "jsonl", clock, rejects_path=rejects)
    assert (summary.recorded, summary.rejected) == (1, 1)
    assert rejects.read_text("utf-8") == broken + "\n"
    rejects.write_text(broken + "}\n", encoding="utf-8")
    assert import_payments(accounts, rejects, "jsonl", clock).recorded == 1
    assert import_payments(accounts, path, "jsonl", clock).recorded == 0
    assert account(accounts, "A-1")["balance_minor"] == 10000 - 600


def test_every_line_a_quote_left_open_swallowed_is_a_row_of_the_rejects_file(
    accounts: Engine, tmp_path: Path, clock: FixedClock
) -> None:
    """Past the size of a cell the reader gives up on the record: each line it swallowed
    is written as a row of its own, to be imported once the quote is corrected."""
    path = tmp_path / "p.csv"
    lines = ["reference,amount,paid_on,payment_id", '"A-1,1.00,2026-11-01,']
    lines += [f"A-1,{i}.00,2026-11-01,P{i}-" + "x" * 60 for i in range(1, 3000)]
    lines += ["A-2,2.00,2026-11-01,"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rejects = tmp_path / "r.csv"
    summary = import_payments(accounts, path, "csv", clock, rejects_path=rejects)
    # The lines after the swallowed ones are read as usual.
    assert (summary.rejected, summary.recorded) == (1, summary.rows_read - 1)
    assert summary.problems[0].row == 2
    with rejects.open(encoding="utf-8", newline="") as handle:
        got = list(csv.DictReader(handle))
    assert [r["row"] for r in got] == ["2"] * len(got)
    swallowed = int(str(summary.problems[0]).split(" to line ")[1].split(" ")[0]) - 1
    assert len(got) == swallowed and got[0]["reference"] == '"A-1'
    assert [r["payment_id"] for r in got[1:3]] == ["P1-" + "x" * 60, "P2-" + "x" * 60]
    assert {r["row_key"] for r in got} == {""}


def test_a_quote_left_open_to_the_end_of_a_payments_file_is_rejected_not_recorded(
    accounts: Engine, tmp_path: Path, clock: FixedClock
) -> None:
    path = tmp_path / "p.csv"
    path.write_text(
        "reference,amount,paid_on,payment_id\n"
        "A-1,1.00,2026-11-01,P1\n"
        'A-1,2.00,2026-11-01,"P2\n'
        "A-2,3.00,2026-11-01,P3\n",
        encoding="utf-8",
    )
    summary = import_payments(accounts, path, "csv", clock)
    assert (summary.recorded, summary.rejected) == (1, 1)
    assert "quote left open: it runs from line 3 to the end of the file" in str(summary.problems[0])
    assert account(accounts, "A-2")["balance_minor"] == 4000


def test_a_rejects_file_that_is_the_payments_file_itself_is_refused(
    accounts: Engine, tmp_path: Path, clock: FixedClock
) -> None:
    path = tmp_path / "p.csv"
    path.write_text("reference,amount\nA-1,oops\nA-2,1.00\n", encoding="utf-8")
    with pytest.raises(DataFileError, match="it is the file being imported"):
        import_payments(accounts, path, "csv", clock, rejects_path=path)
    assert path.read_text("utf-8") == "reference,amount\nA-1,oops\nA-2,1.00\n"
    assert account(accounts, "A-2")["balance_minor"] == 4000


def test_a_paid_on_out_of_range_rejects_its_row_not_the_import(
    accounts: Engine, tmp_path: Path, clock: FixedClock
) -> None:
    path = tmp_path / "p.csv"
    path.write_text(
        "reference,amount,paid_on\nA-1,1.00,0001-01-01\nA-1,2.00,9999-12-31\nA-1,4.00,2026-11-01\n",
        encoding="utf-8",
    )
    summary = import_payments(accounts, path, "csv", clock)
    assert (summary.recorded, summary.rejected) == (1, 2)
    assert str(summary.problems[0]) == (
        "row 2: paid_on: '0001-01-01' is out of range (years 1900 to 2199)"
    )
    with pytest.raises(OutreachError, match="paid_on: '9999-12-31' is out of range"):
        record_payment(accounts, clock, "A-1", "1.00", paid_on=date(9999, 12, 31))


def test_a_row_key_not_written_by_a_rejects_file_is_refused(
    accounts: Engine, tmp_path: Path, clock: FixedClock
) -> None:
    path = tmp_path / "p.csv"
    path.write_text("reference,amount,row_key\nA-1,1.00,123\n", encoding="utf-8")
    summary = import_payments(accounts, path, "csv", clock)
    assert (summary.recorded, summary.rejected) == (0, 1)
    assert "row_key: '123' is not a key a rejects file wrote" in str(summary.problems[0])


def test_a_payment_id_repeated_with_another_amount_or_date_is_rejected_naming_both(
    accounts: Engine, tmp_path: Path, clock: FixedClock
) -> None:
    """The same payment_id again is the same payment: recorded already when it says the
    same, with or without its date, and refused when it says something else."""
    path = tmp_path / "p.csv"
    path.write_text(
        "reference,amount,paid_on,payment_id\n"
        "A-1,50.00,2026-11-01,TX-1\n"
        "A-1,75.00,2026-11-02,TX-1\n"
        "A-1,50.00,,TX-1\n"
        "A-1,50.00,2026-11-03,TX-1\n",
        encoding="utf-8",
    )
    summary = import_payments(accounts, path, "csv", clock, batch_size=2)
    assert (summary.recorded, summary.already_recorded, summary.rejected) == (1, 1, 2)
    assert [str(p) for p in summary.problems] == [
        "row 3: payment_id: 'TX-1' is already recorded with amount 50.00, not 75.00 "
        "and paid_on 2026-11-01, not 2026-11-02",
        "row 5: payment_id: 'TX-1' is already recorded with paid_on 2026-11-01, not 2026-11-03",
    ]
    assert account(accounts, "A-1")["balance_minor"] == 5000
    with pytest.raises(OutreachError, match=r"'TX-1' is already recorded with amount 50\.00"):
        record_payment(accounts, clock, "A-1", "5.00", payment_id="TX-1")
    assert record_payment(accounts, clock, "A-1", "50", payment_id="TX-1")[0] is False


def test_memory_of_a_payments_import_stays_flat_whatever_the_size_of_the_file(
    accounts: Engine, tmp_path: Path, clock: FixedClock
) -> None:
    """Rows without a payment_id are counted in the database, not in memory: five times
    the rows, every one of a different content, take no more memory. (Keeping one digest
    a row in memory would take about 130 bytes each: 2.6 MB for the 20,000 more.)"""
    import tracemalloc

    def peak(rows: int, day: str) -> int:
        path = tmp_path / f"p{rows}.csv"
        with path.open("w", encoding="utf-8") as handle:
            handle.write("reference,amount,paid_on\n")
            for i in range(rows):  # half recorded, half rejected: both paths
                handle.write(f"{'A-1' if i % 2 else 'NOPE'},{i + 1}.00,{day}\n")
        tracemalloc.start()
        try:
            summary = import_payments(accounts, path, "csv", clock)
            used = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert (summary.rows_read, summary.recorded, summary.rejected) == (
            rows, rows // 2, rows // 2,
        )  # fmt: skip
        return used

    with collector_as_started():
        small, big = peak(5_000, "2026-11-01"), peak(25_000, "2026-11-02")
    assert big - small < 1_000_000, f"{small:,} bytes at most for 5,000 rows, {big:,} for 25,000"


def _promise(engine: Engine, reference: str, amount: int, due_on: date, made: datetime) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(store.promises_to_pay).values(
                account_id=account(engine, reference)["id"], amount_minor=amount,
                currency="USD", due_on=due_on, status="pending", created_by="agent",
                created_at=made,
            )
        )  # fmt: skip


def _promises(engine: Engine) -> list[tuple[date, str]]:
    with engine.connect() as connection:
        found = connection.execute(
            select(store.promises_to_pay.c.due_on, store.promises_to_pay.c.status).order_by(
                store.promises_to_pay.c.due_on
            )
        )
        return [(row.due_on, row.status) for row in found]


def test_a_promise_paid_before_its_day_is_kept_not_broken(
    accounts: Engine, clock: FixedClock
) -> None:
    """100.00 promised by the 9th on a 100.00 balance... of which 25.00 by the 5th and
    25.00 by the 9th: each payment counts toward one promise, in the order of their days.
    A promise paid in part stays pending, and breaks once its day has ended unpaid."""
    made = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
    _promise(accounts, "A-1", 2500, date(2026, 11, 5), made)
    _promise(accounts, "A-1", 2500, date(2026, 11, 9), made)
    clock.set(datetime(2026, 11, 4, 15, 0, tzinfo=UTC))
    record_payment(accounts, clock, "A-1", "30.00", paid_on=date(2026, 11, 4))
    assert _promises(accounts) == [(date(2026, 11, 5), "kept"), (date(2026, 11, 9), "pending")]
    clock.set(datetime(2026, 11, 6, 15, 0, tzinfo=UTC))
    record_payment(accounts, clock, "A-1", "10.00", paid_on=date(2026, 11, 6))
    assert _promises(accounts)[1] == (date(2026, 11, 9), "pending")  # 5.00 + 10.00 of 25.00
    assert account(accounts, "A-1")["balance_minor"] == 6000
    assert housekeeping(accounts, datetime(2026, 11, 10, 15, 0, tzinfo=UTC)).broken_promises == 1
    assert _promises(accounts)[1] == (date(2026, 11, 9), "broken")
    # The rest, paid on the 9th and recorded a day late: the promise was kept after all.
    clock.set(datetime(2026, 11, 10, 15, 0, tzinfo=UTC))
    record_payment(accounts, clock, "A-1", "10.00", paid_on=date(2026, 11, 9))
    assert _promises(accounts) == [(date(2026, 11, 5), "kept"), (date(2026, 11, 9), "kept")]


def test_a_payment_before_the_promise_or_after_its_day_does_not_keep_it(
    accounts: Engine, clock: FixedClock
) -> None:
    record_payment(accounts, clock, "A-1", "20.00", paid_on=date(2026, 11, 1))
    _promise(accounts, "A-1", 2000, date(2026, 11, 5), datetime(2026, 11, 2, 15, tzinfo=UTC))
    clock.set(datetime(2026, 11, 6, 15, 0, tzinfo=UTC))
    record_payment(accounts, clock, "A-1", "20.00", paid_on=date(2026, 11, 6))
    assert _promises(accounts) == [(date(2026, 11, 5), "pending")]


def test_a_payoff_while_housekeeping_breaks_the_promise_does_not_deadlock(
    accounts: Engine, clock: FixedClock
) -> None:
    """The payment locks the account before the promise, as housekeeping now does: one
    waits for the other, and the promise ends kept (the payment's day was in time)."""
    if accounts.dialect.name != "postgresql":
        pytest.skip("row locks: PostgreSQL (SQLite has one writer)")
    _promise(accounts, "A-2", 4000, date(2026, 11, 3), datetime(2026, 11, 2, 15, tzinfo=UTC))
    later = datetime(2026, 11, 4, 12, 0, tzinfo=UTC)  # the 3rd has ended in Boston
    clock.set(later)
    go = threading.Event()
    payer = threading.current_thread()
    failed: dict[str, str] = {}

    def hold_on(_c: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if threading.current_thread() is payer and statement.startswith("UPDATE promise_to_pay"):
            go.set()  # the account is locked by the payment: housekeeping starts now
            time.sleep(1.5)

    def keep_house() -> None:
        go.wait(10)
        try:
            housekeeping(accounts, later)
        except Exception as exc:
            failed["housekeeping"] = f"{type(exc).__name__}: {exc}"

    event.listen(accounts, "before_cursor_execute", hold_on)
    try:
        other = threading.Thread(target=keep_house)
        other.start()
        try:
            record_payment(accounts, clock, "A-2", "40.00", paid_on=date(2026, 11, 3))
        except Exception as exc:
            failed["payment"] = f"{type(exc).__name__}: {exc}"
        other.join(30)
    finally:
        event.remove(accounts, "before_cursor_execute", hold_on)
    assert failed == {}
    assert _promises(accounts) == [(date(2026, 11, 3), "kept")]


def test_a_payment_without_a_date_is_made_on_the_debtors_day(
    accounts: Engine, clock: FixedClock
) -> None:
    """Paid in full at 20:30 in Boston on the day promised, recorded at once without a
    date: it is the 5th there (the 6th in UTC), and the promise is kept."""
    _promise(accounts, "A-1", 4000, date(2026, 11, 5), datetime(2026, 11, 2, 15, tzinfo=UTC))
    clock.set(datetime(2026, 11, 6, 1, 30, tzinfo=UTC))
    record_payment(accounts, clock, "A-1", "40.00")
    with accounts.connect() as connection:
        paid_on = connection.execute(select(store.payments.c.paid_on)).scalar_one()
    assert paid_on == date(2026, 11, 5)
    assert housekeeping(accounts, datetime(2026, 11, 6, 5, 1, tzinfo=UTC)).broken_promises == 0
    assert _promises(accounts) == [(date(2026, 11, 5), "kept")]


def test_a_payment_counts_toward_one_promise_even_one_made_later(
    accounts: Engine, clock: FixedClock
) -> None:
    """30.00 promised by the 10th, paid on the 4th: kept. That day a second promise, 30.00
    by the 6th; 1.00 paid on the 6th does not keep it with the payment the first took."""
    _promise(accounts, "A-1", 3000, date(2026, 11, 10), datetime(2026, 11, 2, 15, tzinfo=UTC))
    clock.set(datetime(2026, 11, 4, 15, 0, tzinfo=UTC))
    record_payment(accounts, clock, "A-1", "30.00", paid_on=date(2026, 11, 4))
    assert _promises(accounts) == [(date(2026, 11, 10), "kept")]
    _promise(accounts, "A-1", 3000, date(2026, 11, 6), datetime(2026, 11, 4, 18, tzinfo=UTC))
    clock.set(datetime(2026, 11, 6, 15, 0, tzinfo=UTC))
    record_payment(accounts, clock, "A-1", "1.00", paid_on=date(2026, 11, 6))
    assert _promises(accounts) == [(date(2026, 11, 6), "pending"), (date(2026, 11, 10), "kept")]


def test_a_payment_recorded_before_the_promise_on_its_day_does_not_keep_it(
    accounts: Engine, clock: FixedClock
) -> None:
    """On the phone: the debtor pays 40.00 now and promises 40.00 more by the 9th. The
    payment recorded before the promise is not toward it; one recorded after, that day,
    is."""
    clock.set(datetime(2026, 11, 2, 14, tzinfo=UTC))
    record_payment(accounts, clock, "A-1", "40.00", paid_on=date(2026, 11, 2))
    _promise(accounts, "A-1", 4000, date(2026, 11, 9), datetime(2026, 11, 2, 15, tzinfo=UTC))
    clock.set(datetime(2026, 11, 3, 14, tzinfo=UTC))
    record_payment(accounts, clock, "A-1", "1.00", paid_on=date(2026, 11, 3))
    assert _promises(accounts) == [(date(2026, 11, 9), "pending")]
    clock.set(datetime(2026, 11, 3, 15, tzinfo=UTC))
    record_payment(accounts, clock, "A-1", "39.00", paid_on=date(2026, 11, 2))
    assert _promises(accounts) == [(date(2026, 11, 9), "kept")]


def test_a_promise_without_a_zone_for_its_earliest_day_can_be_kept(
    accounts: Engine, clock: FixedClock
) -> None:
    """Without a time zone, the debtor's day is the one that ends last: at 11:00 UTC on
    the 6th a promise may be for the 5th, and a payment on the 5th keeps it."""
    with accounts.begin() as connection:
        connection.execute(
            update(store.accounts).where(store.accounts.c.reference == "A-1").values(timezone=None)
        )
    made = datetime(2026, 11, 6, 11, 0, tzinfo=UTC)
    with accounts.begin() as connection:
        ref = agent_actions.account_by_reference(connection, "A-1")
        assert agent_actions.earliest_promise_day(ref, made) == date(2026, 11, 5)
        agent_actions.promise(connection, ref, 4000, date(2026, 11, 5), "agent", made)
    clock.set(made + timedelta(minutes=10))
    record_payment(accounts, clock, "A-1", "40.00", paid_on=date(2026, 11, 5))
    assert _promises(accounts) == [(date(2026, 11, 5), "kept")]


def test_a_payment_dated_after_today_everywhere_is_rejected(
    accounts: Engine, tmp_path: Path, clock: FixedClock
) -> None:
    """A date no place has reached is a typo or a payment only scheduled: recorded, it
    would keep a promise before the money came. The next day is allowed where it has come
    somewhere (Kiribati's day begins fourteen hours before UTC's)."""
    today = clock.now().date()
    tomorrow, later = today + timedelta(days=1), today + timedelta(days=2)
    path = tmp_path / "p.csv"
    path.write_text(
        f"reference,amount,paid_on\nA-1,1.00,{later}\nA-1,2.00,{tomorrow}\n", encoding="utf-8"
    )
    summary = import_payments(accounts, path, "csv", clock)
    assert (summary.recorded, summary.rejected) == (1, 1)
    assert str(summary.problems[0]) == f"row 2: paid_on: {later} has not come yet anywhere"
    with pytest.raises(OutreachError, match=f"paid_on: {later} has not come yet anywhere"):
        record_payment(accounts, clock, "A-1", "1.00", paid_on=later)


def test_a_row_equal_to_one_another_file_recorded_is_refused_not_dropped(
    accounts: Engine, tmp_path: Path, clock: FixedClock
) -> None:
    """A monthly instalment of 40.00, without payment_id or date, in next month's file is
    known by its cells as last month's row: it is refused with the file it was taken for,
    and goes to the rejects file without a row_key (corrected there, it is a new row)."""
    november = tmp_path / "payments-2026-11.csv"
    november.write_text("reference,amount,currency,paid_on\nA-1,40.00,,\n", encoding="utf-8")
    assert import_payments(accounts, november, "csv", clock).recorded == 1
    december = tmp_path / "payments-2026-12.csv"
    december.write_text(
        "reference,amount,currency,paid_on\nA-1,40.00,,\nA-1,40.00,,\n", encoding="utf-8"
    )
    rejects = tmp_path / "rejects.csv"
    clock.advance(timedelta(days=30))
    summary = import_payments(accounts, december, "csv", clock, rejects_path=rejects)
    assert (summary.recorded, summary.already_recorded, summary.rejected) == (1, 0, 1)
    assert str(summary.problems[0]) == (
        "row 2: payment_id: none given, and a payment of the same cells (reference A-1, "
        "amount 40.00, paid_on none) was recorded from payments-2026-11.csv; a row without "
        "payment_id is known by its cells, so this one would be taken for that payment and "
        "not recorded. If it is another payment (an instalment of the same amount), give it "
        "a payment_id, or a paid_on if that tells it apart, and import this file again"
    )
    with rejects.open(encoding="utf-8", newline="") as handle:
        written = list(csv.DictReader(handle))
    assert [(r["row"], r["row_key"]) for r in written] == [("2", "")]
    assert account(accounts, "A-1")["balance_minor"] == 2000
    _correct(rejects, payment_id="BANK-12-1")
    assert import_payments(accounts, rejects, "csv", clock).recorded == 1
    assert account(accounts, "A-1")["balance_minor"] == -2000


def test_a_file_imported_again_from_another_folder_is_the_same_file(
    accounts: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """Over-correction guard: the same file, moved to an archive, or named by another
    path, records nothing twice and refuses nothing; nor does a row its rejects file
    recorded under its row_key (its account imported since), when its own file is imported
    again."""
    path = tmp_path / "payments-2026-11.csv"
    path.write_text(
        "reference,amount,paid_on\nA-1,40.00,\nN-1,10.00,2026-11-01\n", encoding="utf-8"
    )
    rejects = tmp_path / "rejects.csv"
    assert import_payments(accounts, path, "csv", clock, rejects_path=rejects).recorded == 1
    run_import(accounts, write_csv(tmp_path / "n.csv", [row("N-1", balance="100.00")]),
               defaults, clock)  # fmt: skip
    assert import_payments(accounts, rejects, "csv", clock).recorded == 1
    archive = tmp_path / "archive"
    archive.mkdir()
    moved = path.rename(archive / path.name)
    for again in (moved, archive / ".." / "archive" / path.name):
        summary = import_payments(accounts, again, "csv", clock)
        assert (summary.recorded, summary.already_recorded, summary.rejected) == (0, 2, 0)
    assert account(accounts, "A-1")["balance_minor"] == 6000


def test_each_months_rejects_file_keeps_its_own_instalment(
    accounts: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """November's and December's bank files both reject B-1,40.00 (its account not imported
    yet), under the same row_key. Their rejects files keep the name of the file each row came
    from, so December's, imported after November's, is refused naming November's file, not
    counted as already recorded; emptied of its row_key and given a payment_id, it counts.
    Each month's own file imported again records nothing twice; December's refuses its row
    again (the payment recorded from it has its own id now), naming November's."""
    rejects: dict[str, Path] = {}
    for month in ("11", "12"):
        path = tmp_path / f"payments-2026-{month}.csv"
        path.write_text("reference,amount\nB-1,40.00\n", encoding="utf-8")
        rejects[month] = tmp_path / f"rejects-{month}.csv"
        assert import_payments(accounts, path, "csv", clock, rejects_path=rejects[month]).rejected
    with rejects["12"].open(encoding="utf-8", newline="") as handle:
        written = list(csv.DictReader(handle))
    assert written[0]["source_file"] == "payments-2026-12.csv"
    run_import(accounts, write_csv(tmp_path / "b.csv", [row("B-1", balance="200.00")]),
               defaults, clock)  # fmt: skip
    assert import_payments(accounts, rejects["11"], "csv", clock).recorded == 1
    summary = import_payments(accounts, rejects["12"], "csv", clock)
    assert (summary.recorded, summary.already_recorded, summary.rejected) == (0, 0, 1)
    assert str(summary.problems[0]) == (
        "row 2: row_key: the row this one corrects, of payments-2026-12.csv, has the same "
        "cells (reference B-1, amount 40.00, paid_on none) as a payment recorded from "
        "payments-2026-11.csv, and so the same row_key: this one would be taken for that "
        "payment and not recorded. If it is another payment (an instalment of the same "
        "amount), empty its row_key and give it a payment_id, or a paid_on if that tells it "
        "apart, and import it again"
    )
    assert account(accounts, "B-1")["balance_minor"] == 16000
    _correct(rejects["12"], row_key="", payment_id="BANK-12-7")
    assert import_payments(accounts, rejects["12"], "csv", clock).recorded == 1
    assert account(accounts, "B-1")["balance_minor"] == 12000
    november = import_payments(accounts, tmp_path / "payments-2026-11.csv", "csv", clock)
    assert (november.recorded, november.already_recorded, november.rejected) == (0, 1, 0)
    december = import_payments(accounts, tmp_path / "payments-2026-12.csv", "csv", clock)
    assert (december.recorded, december.rejected) == (0, 1)
    assert "was recorded from payments-2026-11.csv" in str(december.problems[0])
    assert account(accounts, "B-1")["balance_minor"] == 12000
    with accounts.connect() as connection:
        sources = connection.execute(select(store.payments.c.source)).scalars().all()
    assert sorted(sources) == [
        f"{rejects['11']} (row_key of payments-2026-11.csv)",
        str(rejects["12"]),
    ]


def test_a_rejects_file_written_without_source_file_is_read_as_before(
    accounts: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """Over-correction guard: a rejects file without source_file (written before it had the
    column) is recorded as before, and its own file, or an equal row of another file,
    imported again is counted as already recorded: its file is not known."""
    path = tmp_path / "payments-2026-11.csv"
    path.write_text("reference,amount\nN-1,10.00\n", encoding="utf-8")
    rejects = tmp_path / "rejects.csv"
    assert import_payments(accounts, path, "csv", clock, rejects_path=rejects).rejected == 1
    with rejects.open(encoding="utf-8", newline="") as handle:
        old = [{k: v for k, v in r.items() if k != "source_file"} for r in csv.DictReader(handle)]
    with rejects.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(old[0]))
        writer.writeheader()
        writer.writerows(old)
    run_import(accounts, write_csv(tmp_path / "n.csv", [row("N-1", balance="100.00")]),
               defaults, clock)  # fmt: skip
    assert import_payments(accounts, rejects, "csv", clock).recorded == 1
    other = tmp_path / "payments-2026-12.csv"
    other.write_text("reference,amount\nN-1,10.00\n", encoding="utf-8")
    for again in (path, other, rejects):
        summary = import_payments(accounts, again, "csv", clock)
        assert (summary.recorded, summary.already_recorded, summary.rejected) == (0, 1, 0)
    with accounts.connect() as connection:
        sources = connection.execute(select(store.payments.c.source)).scalars().all()
    assert sources == [f"{rejects} (row_key)"]


def test_a_payments_file_with_a_date_or_id_under_another_name_is_refused_whole(
    accounts: Engine, tmp_path: Path, clock: FixedClock
) -> None:
    """Read as unknown, a "Paid Date" column would date the payment the day it is imported,
    breaking a promise kept in time; a "Transaction ID" would be no id at all."""
    for header, name, known in [
        ("reference,amount,Paid Date", "paid_date", "paid_on"),
        ("reference,amount,payment_date,payment_id", "payment_date", "paid_on"),
        ("reference,amount,paid_on,Transaction ID", "transaction_id", "payment_id"),
        ("reference,amount,paid_on,PaymentID", "paymentid", "payment_id"),
        ("reference,amount,value_date", "value_date", "paid_on"),
        ("reference,amount,Date", "date", "paid_on"),
        ("reference,amount,paid_on,txn", "txn", "payment_id"),
        ("reference,amount,paid_on,ID", "id", "payment_id"),
        ("reference,amount,paid_on,receipt_id", "receipt_id", "payment_id"),
        ("reference,amount,Date Received", "date_received", "paid_on"),
        ("reference,amount,Settlement Date", "settlement_date", "paid_on"),
        ("reference,amount,Effective Date", "effective_date", "paid_on"),
        ("reference,amount,DatePaid", "datepaid", "paid_on"),
        ("reference,amount,PaymentDateTime", "paymentdatetime", "paid_on"),
        ("reference,amount,paid_on,Transaction Number", "transaction_number", "payment_id"),
        ("reference,amount,paid_on,Trans ID", "trans_id", "payment_id"),
    ]:
        path = tmp_path / "payments.csv"
        path.write_text(f"{header}\nA-1,40.00,2026-10-01\n", encoding="utf-8")
        with pytest.raises(DataFileError, match=f"column {name} looks like") as refused:
            import_payments(accounts, path, "csv", clock)
        assert f"rename the column {known}, or remove it. Nothing was imported." in str(
            refused.value
        )
    lines = tmp_path / "payments.jsonl"
    lines.write_text(
        '{"reference": "A-1", "amount": "1.00", "payment_date": "2026-10-01"}\n'
        '{"reference": "A-1", "amount": "2.00", "paid_on": "2026-10-01", "payment_date": "x"}\n',
        encoding="utf-8",
    )
    summary = import_payments(accounts, lines, "jsonl", clock)
    assert (summary.recorded, summary.rejected) == (1, 1)
    assert str(summary.problems[0]).startswith("row 1: payment_date: looks like the day of")
    assert summary.unknown_columns == ["payment_date"]
    with accounts.connect() as connection:
        assert connection.execute(select(store.payments.c.amount_minor)).scalars().all() == [200]


def test_another_things_date_or_id_in_a_payments_file_is_ignored_not_refused(
    accounts: Engine, tmp_path: Path, clock: FixedClock
) -> None:
    # Billing exports carry the invoice's id and due date beside the payment's cells.
    path = tmp_path / "payments.csv"
    path.write_text(
        "reference,amount,invoice_id,due_date,customer_id\nA-1,40.00,INV-9,2026-09-01,C-3\n",
        encoding="utf-8",
    )
    summary = import_payments(accounts, path, "csv", clock)
    assert (summary.recorded, summary.rejected) == (1, 0)
    assert summary.unknown_columns == ["customer_id", "due_date", "invoice_id"]


def test_a_payments_file_with_other_words_around_paid_date_or_id_is_ignored_not_refused(
    accounts: Engine, tmp_path: Path, clock: FixedClock
) -> None:
    """Only a name that says the payment's own date or id is refused: "date" inside
    "mandate" or "candidate", "paid" with "by" or "via", an id of a batch, a loan or a
    merchant are other things, ignored and named like any unknown column."""
    others = ["paid_by", "paid_via", "paid", "days_late", "candidate", "mandate_id",
              "transaction_type", "batch_id", "loan_id", "user_id", "merchant_id", "is_valid",
              "payment_due_date"]  # fmt: skip
    path = tmp_path / "payments.csv"
    path.write_text(
        f"reference,amount,{','.join(others)}\nA-1,40.00{',x' * len(others)}\n",
        encoding="utf-8",
    )
    summary = import_payments(accounts, path, "csv", clock)
    assert (summary.recorded, summary.rejected) == (1, 0)
    assert summary.unknown_columns == sorted(others)


def test_a_payments_file_names_the_columns_it_ignores(
    accounts: Engine, tmp_path: Path, clock: FixedClock
) -> None:
    path = tmp_path / "payments.csv"
    path.write_text(
        "reference,amount,paid_on,payment_id,Paid Date,Note\nA-1,40.00,2026-10-01,T-1,x,y\n",
        encoding="utf-8",
    )
    summary = import_payments(accounts, path, "csv", clock)
    assert (summary.recorded, summary.unknown_columns) == (1, ["note", "paid_date"])
