"""A step the cadence chose is never lost: deferred, given back or superseded, it is
offered again or a later step goes out, and the account is looked at when the next step
falls due even while a deferral waits."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from outreach import agent_actions
from outreach import planner as planner_module
from outreach.cadence import load_cadences
from outreach.clock import FixedClock
from outreach.compliance_store import attempts
from outreach.importing.account_rows import ImportDefaults
from outreach.returned_steps import give_back_steps
from outreach.simulate import simulate
from outreach.store import cadence_steps
from tests.conftest import NOW, REPO
from tests.test_import_accounts import row
from tests.test_planner import World, account, add_row, rows_of, set_account, texted
from tests.test_simulate import world_of


def test_a_step_deferred_beside_a_later_one_that_does_not_apply_is_sent(
    engine: Engine, tmp_path: Path, clock: FixedClock, defaults: ImportDefaults
) -> None:
    # $30 owed: overdue-21d (at least $50) never applies. Just after Boston's midnight on
    # the 5th both overdue-10d and overdue-21d are due; overdue-10d, the latest that
    # applies, waits for 08:00. Had overdue-21d been recorded meanwhile, it would stand
    # after overdue-10d in the history, and overdue-10d would never be offered again.
    world = world_of(engine, tmp_path, clock, defaults)
    ids = world.load(row("P-1", balance="30.00", timezone="America/New_York"))
    world.clock.set(datetime(2026, 11, 5, 5, 30, tzinfo=UTC))  # 00:30 in Boston
    planner = world.planner()
    assert dict(planner.tick().outcomes) == {"deferred": 1}
    world.clock.set(account(engine, ids["P-1"]).next_contact_at)
    assert dict(planner.tick().outcomes) == {"queued": 1}
    assert [a.step_key for a in rows_of(engine, attempts)] == ["overdue-10d"]
    # Once overdue-10d is dealt with, overdue-21d is recorded as skipped, after it.
    world.clock.set(world.clock.now() + timedelta(hours=1))
    set_account(engine, ids["P-1"], next_contact_at=world.clock.now())
    planner.tick()
    recorded = [(s.step_key, s.outcome, s.reason) for s in rows_of(engine, cadence_steps)]
    assert recorded[-2:] == [
        ("overdue-10d", "queued", None),
        ("overdue-21d", "skipped", "conditions not met"),
    ]


def test_a_promise_breaking_as_a_step_that_does_not_apply_falls_due_lets_the_earlier_go(
    engine: Engine, tmp_path: Path, clock: FixedClock, defaults: ImportDefaults
) -> None:
    # The promise for the 4th breaks at Boston's midnight, when overdue-21d (which needs
    # $50) falls due too: overdue-10d goes out at 08:00.
    world = world_of(engine, tmp_path, clock, defaults)
    world.load(row("P-1", balance="30.00", timezone="America/New_York"))
    with engine.begin() as connection:
        promising = agent_actions.account_by_reference(connection, "P-1")
        agent_actions.promise(connection, promising, 3000, date(2026, 11, 4), "ana", NOW)
    rows = simulate(engine, world.settings, NOW, 6)
    assert [(r.day, r.local_time, r.step) for r in rows if r.outcome == "sent"] == [
        ("2026-11-05", "08:00", "overdue-10d")
    ]


def test_a_step_given_back_beside_a_later_one_that_does_not_apply_is_offered_again(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults
) -> None:
    # At 20:59:59.5 in Boston both overdue-10d and overdue-21d (which needs $50) are due:
    # overdue-10d is queued, deferred at sending to 08:00, when its "days past due" is out
    # of date: cancelled, its step given back, and written afresh.
    start = datetime(2026, 11, 6, 1, 59, 59, 500000, tzinfo=UTC)
    world = world_of(engine, tmp_path, FixedClock(start), defaults)
    world.load(row("A-1", balance="30.00"))
    rows = simulate(engine, world.settings, start, 2)
    assert [(r.day, r.local_time, r.step, r.outcome) for r in rows if r.step == "overdue-10d"] == [
        ("2026-11-05", "20:59", "overdue-10d", "deferred"),
        ("2026-11-06", "08:00", "overdue-10d", "sent"),
    ]


def test_a_long_deferral_does_not_hold_back_the_next_step(
    engine: Engine, tmp_path: Path, clock: FixedClock, defaults: ImportDefaults
) -> None:
    # Texts are capped in Massachusetts (two a week for a debt) until the 8th: reminder-1d
    # (a text) waits for then. overdue-3d (an email) falls due at Boston's midnight on the
    # 7th: the account is looked at then, and overdue-3d supersedes the text.
    world = world_of(engine, tmp_path, clock, defaults)
    ids = world.load(row("A-1", due_date="2026-11-04"))
    texted(world, ids["A-1"], timedelta(days=1), timedelta(hours=2))
    add_row(engine, cadence_steps, account_id=ids["A-1"], step_key="reminder-7d",
            outcome="queued", at=NOW - timedelta(hours=2))  # fmt: skip
    world.clock.set(datetime(2026, 11, 3, 13, 0, tzinfo=UTC))  # 08:00 in Boston
    planner = World(engine, world.settings, world.clock, tmp_path, defaults).planner()
    assert dict(planner.tick().outcomes) == {"deferred": 1}
    # Looked at as each step falls due (due-today on the 4th, a text too, then overdue-3d)
    # rather than only when a text may go again.
    looks: list[datetime] = []
    earlier = len(rows_of(engine, attempts))
    while len(rows_of(engine, attempts)) == earlier and len(looks) < 10:
        world.clock.set(account(engine, ids["A-1"]).next_contact_at)
        looks.append(world.clock.now())
        planner.tick()
    queued = [(a.step_key, a.channel) for a in rows_of(engine, attempts)][earlier:]
    assert queued == [("overdue-3d", "email")]
    assert looks[-1] == datetime(2026, 11, 7, 13, 0, tzinfo=UTC)  # 08:00 in Boston


def test_a_step_given_back_after_a_later_one_was_skipped_meanwhile_is_offered_again(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults
) -> None:
    # overdue-10d is queued at 20:59:59.5 in Boston on the 4th and deferred at sending to
    # 08:00; at midnight overdue-21d (which needs $50) falls due and is recorded as
    # skipped; at 08:00 the text is out of date, cancelled and given back. The skipped
    # record after it goes too, so overdue-10d is written afresh and sent.
    start = datetime(2026, 11, 5, 1, 59, 59, 500000, tzinfo=UTC)
    world = world_of(engine, tmp_path, FixedClock(start), defaults)
    world.load(row("A-1", balance="30.00"))
    rows = simulate(engine, world.settings, start, 2)
    assert [(r.day, r.local_time, r.step) for r in rows if r.outcome == "sent"] == [
        ("2026-11-05", "08:00", "overdue-10d")
    ]


def _world_with_cadences(
    engine: Engine,
    tmp_path: Path,
    clock: FixedClock,
    defaults: ImportDefaults,
    files: dict[str, str],
) -> World:
    """A world whose schedules/ holds ``files`` (name: YAML) and nothing else."""
    schedules = tmp_path / "schedules"
    schedules.mkdir()
    for name, text in files.items():
        (schedules / name).write_text(text)
    base = world_of(engine, tmp_path, clock, defaults)
    settings = base.settings.model_copy(update={"schedules_dir": schedules})
    return World(engine, settings, base.clock, tmp_path, defaults)


TWO_TEXTS_A_DAY_APART = """\
description: two texts, the second a day after the first
stop_when: [paid]
steps:
  - key: a
    anchor: due_date+0d
    channel: sms
    template: overdue
    tone: firm
  - key: b
    anchor: after_previous+1d
    channel: sms
    template: overdue
    tone: firm
"""


def test_a_deferral_is_not_looked_at_again_for_a_step_that_cannot_fall_due_before_it(
    engine: Engine, tmp_path: Path, clock: FixedClock, defaults: ImportDefaults
) -> None:
    # b counts from a: it cannot supersede a, so a deferred by Massachusetts' cap (two
    # texts a week) until the 8th is looked at again then, not every day.
    world = _world_with_cadences(
        engine, tmp_path, clock, defaults, {"standard.yaml": TWO_TEXTS_A_DAY_APART}
    )
    ids = world.load(row("A-1", due_date="2026-11-03"))
    texted(world, ids["A-1"], timedelta(days=1), timedelta(hours=2))
    world.clock.set(datetime(2026, 11, 3, 13, 0, tzinfo=UTC))  # 08:00 in Boston
    planner = world.planner()
    assert dict(planner.tick().outcomes) == {"deferred": 1}
    assert account(engine, ids["A-1"]).next_contact_at == datetime(2026, 11, 8, 13, tzinfo=UTC)


def _give_back(
    engine: Engine, step_key: str, now: datetime, steps_of: dict[str, list[str]] | None = None
) -> None:
    """What the dispatcher does when it cancels the step's message before it leaves."""
    with engine.begin() as connection:
        connection.execute(
            update(attempts)
            .where(attempts.c.step_key == step_key)
            .values(acquired_by="dispatcher", acquired_until=now + timedelta(minutes=5))
        )
        [attempt] = connection.execute(select(attempts).where(attempts.c.step_key == step_key))
        give_back_steps(connection, [attempt], now, "dispatcher", steps_of)
        connection.execute(
            update(attempts)
            .where(attempts.c.id == attempt.id)
            .values(status="cancelled", acquired_by=None, acquired_until=None)
        )


def test_a_step_given_back_while_a_planner_records_a_later_skip_is_offered_again(
    engine: Engine,
    tmp_path: Path,
    clock: FixedClock,
    defaults: ImportDefaults,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # overdue-10d is queued on the 2nd and its message still waits at Boston's midnight
    # on the 5th, when the planner looks (overdue-21d, which needs $50, falls due). While
    # that plan is made, from overdue-10d still queued, the dispatcher cancels the message
    # and gives its step back: the plan's skip of overdue-21d must not stand behind it.
    world = world_of(engine, tmp_path, clock, defaults)
    ids = world.load(row("A-1", balance="30.00"))
    planner = world.planner()
    assert dict(planner.tick().outcomes) == {"queued": 1}
    midnight = datetime(2026, 11, 5, 5, 0, tzinfo=UTC)
    world.clock.set(midnight)
    plan_accounts = planner_module.plan_accounts

    def meanwhile(*args: Any) -> Any:
        plans = plan_accounts(*args)
        _give_back(engine, "overdue-10d", midnight + timedelta(seconds=1))
        return plans

    monkeypatch.setattr(planner_module, "plan_accounts", meanwhile)
    assert dict(planner.tick().outcomes) == {"idle": 1}
    monkeypatch.setattr(planner_module, "plan_accounts", plan_accounts)
    assert [s.step_key for s in rows_of(engine, cadence_steps)][-1] == "overdue-3d"
    world.clock.set(account(engine, ids["A-1"]).next_contact_at)
    assert dict(planner.tick().outcomes) == {"deferred": 1}  # overdue-10d, until 08:00
    world.clock.set(account(engine, ids["A-1"]).next_contact_at)
    assert dict(planner.tick().outcomes) == {"queued": 1}
    queued = [a.step_key for a in rows_of(engine, attempts, attempts.c.status == "queued")]
    assert queued == ["overdue-10d"]


def test_a_forecast_from_the_past_lists_the_skip_it_records_afresh(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults
) -> None:
    # The daemon queued overdue-10d at 20:59:59.5 in Boston and recorded overdue-21d as
    # skipped with it. From that instant the forecast defers the text to 08:00, cancels it
    # there (out of date) and gives its step back, letting go of the skip; it then sends
    # overdue-10d and records overdue-21d again, under an id the copy had used.
    start = datetime(2026, 11, 6, 1, 59, 59, 500000, tzinfo=UTC)
    world = world_of(engine, tmp_path, FixedClock(start), defaults)
    world.load(row("A-1", balance="30.00"))
    assert dict(world.planner().tick().outcomes) == {"queued": 1}
    got = [
        (r.day, r.local_time, r.step, r.outcome) for r in simulate(engine, world.settings, start, 2)
    ]
    assert ("2026-11-06", "08:00", "overdue-10d", "sent") in got
    assert ("2026-11-06", "08:00", "overdue-21d", "skipped") in got


LATE = """\
description: a later cadence, keys of its own
stop_when: [paid]
steps:
  - key: late-1
    anchor: due_date+10d
    channel: sms
    template: overdue
    tone: firm
    when:
      min_balance: "50.00"
  - key: late-2
    anchor: after_previous+3d
    channel: sms
    template: overdue
    tone: firm
"""


def test_a_step_of_a_cadence_left_given_back_keeps_the_new_cadences_records(
    engine: Engine, tmp_path: Path, clock: FixedClock, defaults: ImportDefaults
) -> None:
    # overdue-10d (standard) is queued on the 2nd; the account then moves to "late",
    # whose late-1 (needs $50) is skipped on the 2nd, so late-2 falls due on the 5th. On
    # the 4th the old cadence's message is cancelled and its step given back.
    standard = (REPO / "schedules" / "standard.yaml").read_text()
    world = _world_with_cadences(
        engine, tmp_path, clock, defaults, {"standard.yaml": standard, "late.yaml": LATE}
    )
    schedules = world.settings.schedules_dir
    ids = world.load(row("A-1", balance="30.00"))
    assert dict(world.planner().tick().outcomes) == {"queued": 1}
    set_account(engine, ids["A-1"], cadence="late", next_contact_at=clock.now())
    assert dict(world.planner().tick().outcomes) == {"idle": 1}
    late_2_at = account(engine, ids["A-1"]).next_contact_at
    assert late_2_at == clock.now() + timedelta(days=3)
    steps_of = {name: [s.key for s in c.steps] for name, c in load_cadences(schedules).items()}
    fourth = clock.now() + timedelta(days=2)
    _give_back(engine, "overdue-10d", fourth, steps_of)
    world.clock.set(fourth)
    world.planner().tick()
    recorded = [(s.step_key, s.outcome, s.at) for s in rows_of(engine, cadence_steps)]
    assert account(engine, ids["A-1"]).next_contact_at == late_2_at, recorded
