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

    assert outcomes == report.outcomes == Counter(queued=4, blocked=1, stopped=3, idle=1)
    assert written(world) == by_loop
    assert len(by_loop["attempt"]) == 4 and len(by_loop["decision"]) >= 7
