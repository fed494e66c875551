"""The plan benchmark's naive baseline does the planner's work: over the same accounts it
writes the same attempts, cadence steps, decisions and next contact times as
``Planner.tick``, so that the ratio between the two compares like with like."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete, func, select, update

from bench import plan_orm_loop
from outreach import store
from outreach.clock import FixedClock
from outreach.compliance_store import attempts, decisions
from outreach.importing.account_rows import ImportDefaults
from outreach.store import cadence_steps
from tests.conftest import NOW
from tests.test_import_accounts import row
from tests.test_planner import (
    World,
    add_row,
    event,
    make_settings,
    publish_templates,
    set_account,
    suppress,
)

WRITTEN = (attempts, cadence_steps, decisions)


@pytest.fixture
def world(engine: Engine, tmp_path: Path, clock: FixedClock, defaults: ImportDefaults) -> World:
    publish_templates(engine, clock)
    return World(engine, make_settings(engine, tmp_path), clock, tmp_path, defaults)


def written(world: World) -> dict[str, Any]:
    """What a plan left: its rows without their ids, and the accounts' next contacts."""
    found: dict[str, Any] = {}
    with world.engine.connect() as connection:
        for table in WRITTEN:
            kept = [c for c in table.c if c.name not in ("id", "attempt_id")]
            found[table.name] = sorted(map(tuple, connection.execute(select(*kept))), key=repr)
        found["account"] = sorted(
            connection.execute(
                select(
                    store.accounts.c.id,
                    store.accounts.c.next_contact_at,
                    store.accounts.c.acquired_by,
                )
            )
        )
    return found


def test_the_orm_loop_writes_what_the_planner_writes(world: World) -> None:
    ids = world.load(
        row("PLAIN"),
        row("STOPPED-SMS", phone="(617) 555-0102"),
        row("NO-CONTACT", phone="", email=""),
        row("DISPUTED", phone="(617) 555-0103"),
        row("PROMISED", phone="(617) 555-0104"),
        row("PAID", phone="(617) 555-0105"),
        row("PAUSED", phone="(617) 555-0106"),
        row("SPANISH", phone="(617) 555-0107", locale="es_US"),
        row("PRE-DUE", phone="(617) 555-0108", due_date="2026-11-05"),
        row("STEP-TAKEN", phone="(617) 555-0109"),
    )
    suppress(world.engine, "sms", "+16175550102", "stop", NOW - timedelta(days=2))
    event(world.engine, ids["DISPUTED"], "dispute", NOW - timedelta(days=1))
    add_row(world.engine, store.promises_to_pay, account_id=ids["PROMISED"], amount_minor=12050,
            currency="USD", due_on=date(2026, 11, 6), status="pending", created_by="agent",
            created_at=NOW - timedelta(days=1))  # fmt: skip
    set_account(world.engine, ids["PAID"], balance_minor=0)
    # overdue-10d was dealt with: the next step is not due yet.
    add_row(world.engine, cadence_steps, account_id=ids["STEP-TAKEN"], step_key="overdue-10d",
            outcome="queued", at=NOW - timedelta(days=1))  # fmt: skip
    set_account(world.engine, ids["PAUSED"], paused_until=NOW + timedelta(days=3))
    outcomes, report, by_loop, by_planner = loop_then_planner(world)

    assert outcomes == report == Counter(queued=4, blocked=1, stopped=3, idle=1)
    assert by_planner == by_loop
    assert len(by_loop["attempt"]) == 4 and len(by_loop["decision"]) >= 7


def texted(world: World, account_id: int, number: str, *ago: timedelta) -> None:
    """Texts delivered to ``number`` about ``account_id``, ``ago`` before NOW."""
    for i, before in enumerate(ago):
        at = NOW - before
        add_row(world.engine, attempts, account_id=account_id, idempotency_key=f"{account_id}:{i}",
                step_key=f"earlier-{i}", channel="sms", to_address=number, template_name="x",
                tone="firm", locale="en", body="x", status="delivered", automated=True,
                created_at=at, updated_at=at, sent_at=at)  # fmt: skip


def test_the_orm_loop_reads_what_the_planner_reads_of_a_debtors_other_accounts(
    world: World,
) -> None:
    # Each pair is one person's two accounts; the first of each pair is not due, so only
    # the reading of the debtor's other accounts tells the loop what it holds.
    ids = world.load(
        row("CAPPED-A"),  # one mobile, (617) 555-0101: texted twice today about CAPPED-A
        row("CAPPED-B"),
        row("BANKRUPT-A", phone="(617) 555-0130"),  # in bankruptcy: a stay for the person
        row("BANKRUPT-B", phone="(617) 555-0130"),
        row("REVOKED-A", phone="(617) 555-0150"),  # consent to texts revoked for the number
        row("REVOKED-B", phone="(617) 555-0150"),
        row("LOAN-A", phone="(617) 555-0141"),  # student loans serviced under one number:
        row("LOAN-B", phone="(617) 555-0142"),  # one debt, its two texts this week counted
    )
    texted(world, ids["CAPPED-A"], "+16175550101", timedelta(hours=2), timedelta(hours=1))
    event(world.engine, ids["BANKRUPT-A"], "bankruptcy", NOW - timedelta(days=1))
    event(world.engine, ids["REVOKED-A"], "consent_revoked", NOW - timedelta(days=1),
          channel="sms", address="+16175550150")  # fmt: skip
    set_account(world.engine, ids["LOAN-A"], servicer_account_no="LN88")
    set_account(world.engine, ids["LOAN-B"], servicer_account_no="LN88")
    texted(world, ids["LOAN-A"], "+16175550141", timedelta(days=3), timedelta(days=2))
    for reference in ("CAPPED-A", "BANKRUPT-A", "REVOKED-A", "LOAN-A"):
        set_account(world.engine, ids[reference], next_contact_at=None)

    outcomes, report, by_loop, by_planner = loop_then_planner(world)

    assert outcomes == report and sum(report.values()) == 4
    assert by_planner == by_loop
    held = {row[0]: row for row in by_loop["account"]}
    assert all(held[ids[ref]][1] is None for ref in ("CAPPED-A", "BANKRUPT-A", "LOAN-A"))
    sms = {(d.account_id, d.verdict) for d in _decisions(world) if d.channel == "sms"}
    # What only the other account holds kept each second account from being texted.
    for reference in ("CAPPED-B", "BANKRUPT-B", "REVOKED-B", "LOAN-B"):
        assert (ids[reference], "allow") not in sms, reference


def _decisions(world: World) -> list[Any]:
    with world.engine.connect() as connection:
        return list(connection.execute(select(decisions)))


def loop_then_planner(
    world: World,
) -> tuple[Counter[str], Counter[str], dict[str, Any], dict[str, Any]]:
    """The naive loop's outcomes and rows, then (its rows taken away, the accounts due again)
    the planner's: the outcomes of each and what each left."""
    with world.engine.connect() as connection:
        before = list(
            connection.execute(select(store.accounts.c.id, store.accounts.c.next_contact_at))
        )
        first_new = {t.name: connection.scalar(select(func.max(t.c.id))) or 0 for t in WRITTEN}

    planner = world.planner()
    outcomes = plan_orm_loop.run(world.engine, planner, NOW, 100)
    by_loop = written(world)
    with world.engine.begin() as connection:
        for table in WRITTEN:
            connection.execute(delete(table).where(table.c.id > first_new[table.name]))
        for account_id, next_at in before:
            connection.execute(
                update(store.accounts)
                .where(store.accounts.c.id == account_id)
                .values(next_contact_at=next_at)
            )
    report = world.planner().tick()
    planner.close()
    return outcomes, report.outcomes, by_loop, written(world)
