"""``outreach simulate``: the daemon's own plan and dispatch stages on a jumping clock, in
a scratch copy of the accounts, forecasting who gets which step on which channel and when,
and what is deferred or blocked and why. Nothing is sent and the real database is only
read.

The world is test_planner's: at ``NOW`` (Monday 2026-11-02 15:00 UTC, 10:00 in Boston) an
account due on 2026-10-15 has overdue-10d due (sms, falling back to email); its next step,
overdue-21d, falls due at midnight in Boston on 2026-11-05, when no one may be contacted:
it waits for 08:00.
"""

from __future__ import annotations

import csv
import os
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update

from outreach import agent_actions
from outreach import simulate as simulate_module
from outreach.cadence_changes import look_again_at_changed
from outreach.clock import FixedClock
from outreach.compliance_store import attempts, decisions
from outreach.db import make_engine, upgrade
from outreach.events import apply_events
from outreach.importing.account_rows import ImportDefaults
from outreach.simulate import (
    ForecastRow,
    RestDayCalls,
    references_like,
    rest_day_calls,
    simulate,
)
from outreach.store import accounts, cadence_steps
from tests.conftest import NOW, REPO
from tests.eventdata import inbound
from tests.test_cli import outreach
from tests.test_import_accounts import row
from tests.test_planner import (
    World,
    add_row,
    event,
    make_settings,
    publish_templates,
    set_account,
    suppress,
    texted,
)


def world_of(engine: Engine, tmp_path: Path, clock: FixedClock, defaults: ImportDefaults) -> World:
    publish_templates(engine, clock)
    return World(engine, make_settings(engine, tmp_path), clock, tmp_path, defaults)


def contacts(rows: list[ForecastRow]) -> list[ForecastRow]:
    """The rows of contacts sent, deferred or blocked: not the steps dropped."""
    return [r for r in rows if r.outcome != "skipped"]


def counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as connection:
        return (
            connection.execute(select(func.count()).select_from(attempts)).scalar_one(),
            connection.execute(select(func.count()).select_from(decisions)).scalar_one(),
        )


def test_the_forecast_names_each_contact_its_local_time_and_each_wait(
    engine: Engine, tmp_path: Path, clock: FixedClock, defaults: ImportDefaults
) -> None:
    world = world_of(engine, tmp_path, clock, defaults)
    world.load(row("A-1", voice_consent="true"), row("STOPPED", phone="(617) 555-0102"))
    suppress(engine, "sms", "+16175550102", "stop", NOW - timedelta(days=2))
    rows = simulate(engine, world.settings, NOW, 4)

    boston = "America/New_York"
    window = f"MA_HOURS: it is 00:00 in {boston}; contact is allowed 08:00-21:00 local in {boston}"

    # Starting ten days late, overdue-10d is sent and the steps before it are dropped.
    def skipped(step: str, why: str) -> ForecastRow:
        return ForecastRow("2026-11-02", "10:00", boston, "A-1", step, "", "skipped", why)

    assert [r for r in rows if r.account == "A-1"] == [
        ForecastRow("2026-11-02", "10:00", boston, "A-1", "overdue-10d", "sms", "sent", ""),
        skipped("reminder-7d", "expired: not sent within 6 days of falling due"),
        skipped("reminder-1d", "expired: not sent within 1 days of falling due"),
        skipped("due-today", "expired: not sent within 2 days of falling due"),
        skipped("overdue-3d", "missed: a later step was already due"),
        ForecastRow("2026-11-05", "00:00", boston, "A-1", "overdue-21d", "voice", "deferred",
                    window),
        ForecastRow("2026-11-05", "08:00", boston, "A-1", "overdue-21d", "voice", "sent", ""),
    ]  # fmt: skip
    first_day = [(r.channel, r.outcome, r.detail) for r in contacts(rows)
                 if r.account == "STOPPED" and r.day == "2026-11-02"]  # fmt: skip
    # Blocked on sms by the STOP, the step falls back to email.
    assert sorted(first_day) == [
        ("email", "sent", ""),
        ("sms", "blocked", "CARRIER_STOP_KEYWORD: +16175550102 opted out of sms on 2026-10-31"),
    ]
    # Nothing was sent, and the real database was only read.
    assert counts(engine) == (0, 0)
    assert not (tmp_path / "outbox.jsonl").exists()
    assert not world.settings.outbox_path.exists()


def test_a_message_deferred_past_midnight_is_written_afresh_and_forecast_at_opening(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults
) -> None:
    """Planned seconds before the window closes and deferred at sending: by morning its
    "days past due" is a day short, so it is written afresh, and goes at 08:00 as the
    daemon would send it, not a day later."""
    start = datetime(2026, 11, 3, 1, 59, 59, 500000, tzinfo=UTC)  # 20:59:59.5 in Boston
    world = world_of(engine, tmp_path, FixedClock(start), defaults)
    world.load(row("A-1"))
    rows = contacts(simulate(engine, world.settings, start, 2))
    assert [(r.day, r.local_time, r.step, r.outcome) for r in rows] == [
        ("2026-11-02", "20:59", "overdue-10d", "deferred"),
        ("2026-11-03", "08:00", "overdue-10d", "sent"),
    ]


def test_a_pattern_and_a_span_choose_what_is_forecast(
    engine: Engine, tmp_path: Path, clock: FixedClock, defaults: ImportDefaults
) -> None:
    world = world_of(engine, tmp_path, clock, defaults)
    world.load(row("A-1"), row("B-1", phone="(617) 555-0102"))
    rows = simulate(engine, world.settings, NOW, 2, "A-*")
    assert {r.account for r in rows} == {"A-1"}
    assert [(r.day, r.step, r.outcome) for r in contacts(rows)] == [
        ("2026-11-02", "overdue-10d", "sent")
    ]


def test_an_account_a_live_daemon_holds_is_forecast_as_free(
    engine: Engine, tmp_path: Path, clock: FixedClock, defaults: ImportDefaults
) -> None:
    """As the copy is made a live daemon is planning A-1 (a plan lease) and sending B-1's
    queued text (a dispatch lease): no one holds them in the copy, and both texts are
    forecast at once, not once the leases have run out."""
    world = world_of(engine, tmp_path, clock, defaults)
    world.load(row("B-1", phone="(617) 555-0102"))
    world.planner().tick()  # B-1's text, queued
    ids = world.load(row("A-1"))
    lease = {"acquired_by": "web-1:4121:abcd", "acquired_until": NOW + timedelta(minutes=10)}
    set_account(engine, ids["A-1"], **lease)
    with engine.begin() as connection:
        connection.execute(update(attempts).values(**lease))
    rows = contacts(simulate(engine, world.settings, NOW, 2))
    assert [(r.day, r.local_time, r.account, r.outcome) for r in rows] == [
        ("2026-11-02", "10:00", "A-1", "sent"),
        ("2026-11-02", "10:00", "B-1", "sent"),
    ]


def test_the_accounts_pattern_has_one_wildcard_and_heeds_case_on_either_database(
    engine: Engine, tmp_path: Path, clock: FixedClock, defaults: ImportDefaults
) -> None:
    """--accounts 'INV_1*' forecasts INV_10, not INV-10 nor inv_11: "*" is the only
    wildcard, and case counts on SQLite as on PostgreSQL."""
    world = world_of(engine, tmp_path, clock, defaults)
    world.load(row("INV_10"), row("INV-10", phone="(617) 555-0102"),
               row("inv_11", phone="(617) 555-0103"))  # fmt: skip
    rows = simulate(engine, world.settings, NOW, 1, "INV_1*")
    assert {r.account for r in rows} == {"INV_10"}

    others = ["50%OFF", "50XOFF", "a\\b", "a\\\\b", "[x]1", "x1", "Q?1", "Q11", "ABC"]
    world.load(*(row(ref, phone=f"(617) 555-02{n:02}", email=f"o{n}@example.com")
                 for n, ref in enumerate(others)))  # fmt: skip

    def matching(pattern: str) -> set[str]:
        with engine.connect() as connection:
            chosen = select(accounts.c.reference).where(references_like(connection, pattern))
            return set(connection.execute(chosen).scalars())

    assert matching("50%*") == {"50%OFF"}
    assert matching("a\\*") == {"a\\b", "a\\\\b"}
    assert matching("a\\b") == {"a\\b"}
    assert matching("[x]*") == {"[x]1"}
    assert matching("Q?1") == {"Q?1"}
    assert matching("*b*") == {"a\\b", "a\\\\b"}  # not ABC
    assert matching("abc") == set() and matching("ABC") == {"ABC"}
    assert matching("*") == {"INV_10", "INV-10", "inv_11", *others}


def test_a_pattern_forecasts_its_accounts_with_the_same_debtors_others_counted(
    engine: Engine, tmp_path: Path, clock: FixedClock, defaults: ImportDefaults
) -> None:
    """One person, two debts, one mobile: two texts about A-1 today spend the house cap of
    two texts a day for the debtor, and the daemon defers B-1's text to tomorrow. The
    forecast of B-1 alone ('B-*') says so too, and shows B-1 only."""
    world = world_of(engine, tmp_path, clock, defaults)
    ids = world.load(row("A-1"), row("B-1"))
    texted(world, ids["A-1"], timedelta(hours=2), timedelta(hours=1))
    set_account(engine, ids["A-1"], next_contact_at=None)

    def seen(rows: list[ForecastRow]) -> list[tuple[str, str, str, str, str, str]]:
        return [(r.account, r.day, r.local_time, r.step, r.channel, r.outcome) for r in rows]

    whole = [r for r in simulate(engine, world.settings, NOW, 1) if r.account == "B-1"]
    alone = simulate(engine, world.settings, NOW, 1, "B-*")
    assert seen(whole)[0] == ("B-1", "2026-11-02", "10:00", "overdue-10d", "sms", "deferred")
    assert "POLICY_SMS_DAILY_CAP" in whole[0].detail
    assert seen(alone) == seen(whole)


def test_a_pattern_forecasts_its_accounts_with_a_numbers_revoked_consent_counted(
    engine: Engine, tmp_path: Path, clock: FixedClock, defaults: ImportDefaults
) -> None:
    """Consent to automated texts was revoked for B-1's mobile on X-1, which no longer
    uses it (so X-1 is not B-1's debtor): the revocation holds for the number, and the
    forecast of B-1 alone reads it as the daemon does."""
    world = world_of(engine, tmp_path, clock, defaults)
    ids = world.load(row("X-1", phone="(617) 555-0109"), row("B-1"))
    event(engine, ids["X-1"], "consent_revoked", NOW - timedelta(days=1), channel="sms",
          address="+16175550101")  # fmt: skip
    whole = [r for r in simulate(engine, world.settings, NOW, 1) if r.account == "B-1"]
    alone = simulate(engine, world.settings, NOW, 1, "B-*")
    assert ("sms", "blocked") in {(r.channel, r.outcome) for r in whole}
    assert alone == whole


def test_the_copy_is_one_snapshot_of_a_database_a_daemon_writes_to(
    engine: Engine,
    tmp_path: Path,
    clock: FixedClock,
    defaults: ImportDefaults,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A daemon commits a step and its attempt once the copy has read the accounts: the
    copy holds neither, as the database was when the copy began."""
    world = world_of(engine, tmp_path, clock, defaults)
    ids = world.load(row("A-1"))
    copy = simulate_module._copy

    def copy_then_commit(reading: Any, writing: Any, table: Any, *rest: Any) -> None:
        copy(reading, writing, table, *rest)
        if table.name == "account":
            texted(world, ids["A-1"], timedelta(hours=1))
            add_row(engine, cadence_steps, account_id=ids["A-1"], step_key="earlier-0",
                    outcome="queued", at=NOW - timedelta(hours=1))  # fmt: skip

    monkeypatch.setattr(simulate_module, "_copy", copy_then_commit)
    scratch_settings = world.settings.model_copy(
        update={"database_url": f"sqlite:///{tmp_path}/scratch.db"}
    )
    scratch = make_engine(scratch_settings)
    try:
        upgrade(scratch)
        assert simulate_module.copy_accounts(engine, scratch, "A-*") == [ids["A-1"]]
        assert (counts(engine)[0], counts(scratch)[0]) == (1, 0)
        with scratch.connect() as connection:
            steps = connection.execute(select(func.count()).select_from(cadence_steps))
            assert steps.scalar_one() == 0
    finally:
        scratch.dispose()


def test_a_forecast_from_a_past_day_lists_only_what_it_sends_itself(
    engine: Engine, tmp_path: Path, clock: FixedClock, defaults: ImportDefaults
) -> None:
    """A forecast from yesterday spans the text really sent to A-1 an hour ago: it is the
    copy's history, not the forecast's, and is not listed as sent by it."""
    world = world_of(engine, tmp_path, clock, defaults)
    ids = world.load(row("A-1"), row("B-1", phone="(617) 555-0102"))
    texted(world, ids["A-1"], timedelta(hours=1))
    set_account(engine, ids["A-1"], next_contact_at=None)
    rows = contacts(simulate(engine, world.settings, NOW - timedelta(days=1), 2))
    assert [(r.day, r.local_time, r.account, r.step, r.outcome) for r in rows] == [
        ("2026-11-02", "10:00", "B-1", "overdue-10d", "sent"),
    ]


def test_a_step_dropped_in_the_span_is_forecast_as_skipped_with_its_reason(
    engine: Engine, tmp_path: Path, clock: FixedClock, defaults: ImportDefaults
) -> None:
    """Due on 2026-11-04: two texts in the last day, reminder-7d recorded, so
    Massachusetts' two texts in seven days defer reminder-1d (sms) past the days of the
    steps after it. reminder-1d is never sent, and the forecast says it was dropped and
    why; reminder-7d, copied as recorded before the forecast ran, is not listed."""
    world = world_of(engine, tmp_path, clock, defaults)
    ids = world.load(row("A-1", due_date="2026-11-04"))
    texted(world, ids["A-1"], timedelta(days=1), timedelta(hours=2))
    add_row(engine, cadence_steps, account_id=ids["A-1"], step_key="reminder-7d",
            outcome="skipped", reason="missed", at=NOW - timedelta(hours=2))  # fmt: skip
    set_account(engine, ids["A-1"], next_contact_at=datetime(2026, 11, 3, 5, tzinfo=UTC))
    rows = simulate(engine, world.settings, NOW - timedelta(days=1), 9)
    dropped = {r.step: (r.channel, r.detail) for r in rows if r.outcome == "skipped"}
    assert "reminder-7d" not in dropped
    channel, detail = dropped["reminder-1d"]
    assert channel == "" and detail.startswith(("expired: ", "missed: "))
    assert not any(r.step == "reminder-1d" and r.outcome == "sent" for r in rows)


def test_a_step_added_to_a_cadence_is_forecast_for_the_accounts_it_had_finished_with(
    engine: Engine, tmp_path: Path, clock: FixedClock, defaults: ImportDefaults
) -> None:
    """A forecast with edited files starts as a daemon starting with them would: pre-due
    had finished with the account; the step added to it is forecast, once."""
    world = world_of(engine, tmp_path, clock, defaults)
    world.load(row("A-1", cadence="pre-due"))
    daemon_files = world.planner()
    look_again_at_changed(engine, daemon_files.cadences, NOW)  # as the daemons started
    assert dict(daemon_files.tick().outcomes) == {"finished": 1}
    schedules = tmp_path / "schedules"
    shutil.copytree(REPO / "schedules", schedules)
    with (schedules / "pre-due.yaml").open("a", encoding="utf-8") as file:
        file.write("  - key: overdue-10d\n    anchor: due_date+10d\n    channel: sms\n"
                   "    template: overdue\n    tone: firm\n")  # fmt: skip
    edited = world.settings.model_copy(update={"schedules_dir": schedules})
    rows = contacts(simulate(engine, edited, NOW + timedelta(hours=1), 3))
    assert [(r.account, r.step, r.outcome) for r in rows] == [("A-1", "overdue-10d", "sent")]
    # With the files the daemons have, nothing: the account stays finished.
    assert contacts(simulate(engine, world.settings, NOW + timedelta(hours=1), 3)) == []


def test_the_cli_prints_the_days_and_writes_the_csv(
    engine: Engine, env: dict[str, str], tmp_path: Path, clock: FixedClock,
    defaults: ImportDefaults,
) -> None:  # fmt: skip
    world = world_of(engine, tmp_path, clock, defaults)
    env.update(TEMPLATES_DIR=str(REPO / "templates"), CHANNELS_DIR=str(REPO / "channels"),
               OUTBOX_PATH=str(tmp_path / "outbox.jsonl"))  # fmt: skip
    world.load(
        row("A-1", voice_consent="true"), row("=EVIL", phone="(617) 555-0102")
    )  # a reference, not a formula
    result = outreach("simulate", "--from", "2026-11-02T15:00:00+00:00", "--days", "4",
                      "--csv", "forecast.csv", env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2026-11-05" in result.stdout and "Forecast written to forecast.csv" in result.stdout
    with (tmp_path / "forecast.csv").open(encoding="utf-8") as handle:
        written = list(csv.DictReader(handle))
    assert list(written[0]) == list(ForecastRow.__dataclass_fields__)
    assert {r["account"] for r in written} == {"A-1", "'=EVIL"}  # no formula for a spreadsheet
    assert {
        (r["day"], r["local_time"], r["outcome"]) for r in written if r["account"] == "A-1"
    } == {
        ("2026-11-02", "10:00", "sent"),
        ("2026-11-02", "10:00", "skipped"),
        ("2026-11-05", "00:00", "deferred"),
        ("2026-11-05", "08:00", "sent"),
    }
    assert counts(engine) == (0, 0)
    assert not (tmp_path / "outbox.jsonl").exists()

    # Mistakes are said at once, each naming its option; a pattern that matches nothing too.
    bad_day = outreach("simulate", "--from", "2026-13-01", env=env, cwd=tmp_path)
    assert bad_day.returncode == 2
    assert "--from '2026-13-01' is not a date (YYYY-MM-DD)" in bad_day.stderr
    no_folder = outreach("simulate", "--from", "2026-11-02", "--csv", "nowhere/f.csv",
                         env=env, cwd=tmp_path)  # fmt: skip
    assert no_folder.returncode == 2 and "the folder nowhere does not exist" in no_folder.stderr
    assert "Traceback" not in no_folder.stderr + bad_day.stderr
    nothing = outreach("simulate", "--from", "2026-11-02", "--accounts", "NOPE*",
                       env=env, cwd=tmp_path)  # fmt: skip
    assert nothing.returncode == 2
    assert "no account's reference matches 'NOPE*': nothing to forecast" in nothing.stderr


def test_a_csv_that_cannot_be_written_is_refused_before_the_forecast(
    env: dict[str, str], tmp_path: Path, engine: Engine
) -> None:
    # Refused after the whole forecast had run and printed, a large one taking minutes.
    env.update(TEMPLATES_DIR=str(REPO / "templates"), CHANNELS_DIR=str(REPO / "channels"))
    (tmp_path / "dir.csv").mkdir()
    a_folder = outreach("simulate", "--from", "2026-11-02", "--csv", "dir.csv",
                        env=env, cwd=tmp_path)  # fmt: skip
    assert a_folder.returncode == 2 and "--csv dir.csv: it is a folder" in a_folder.stderr
    assert not a_folder.stdout
    # Through a link to a file not yet there, the check leaves the link and no file behind.
    (tmp_path / "link.csv").symlink_to(tmp_path / "dir.csv" / "forecast.csv")
    linked = outreach("simulate", "--from", "2026-11-02", "--days", "1", "--csv", "link.csv",
                      "--accounts", "NOPE*", env=env, cwd=tmp_path)  # fmt: skip
    assert linked.returncode == 2 and "nothing to forecast" in linked.stderr
    assert (tmp_path / "link.csv").is_symlink()
    assert not (tmp_path / "dir.csv" / "forecast.csv").exists()
    if os.geteuid() != 0:  # root writes whatever the permissions say
        (tmp_path / "locked").mkdir(mode=0o555)
        locked = outreach("simulate", "--from", "2026-11-02", "--csv", "locked/f.csv",
                          env=env, cwd=tmp_path)  # fmt: skip
        assert locked.returncode == 2 and not locked.stdout
        assert "--csv locked/f.csv: cannot write it (Permission denied)" in locked.stderr
        assert not (tmp_path / "locked/f.csv").exists()


def test_an_account_without_a_zone_of_its_own_is_shown_in_its_states(
    engine: Engine, tmp_path: Path, clock: FixedClock, defaults: ImportDefaults
) -> None:
    # A Californian with a New York mobile: the text waits for 08:00 Pacific, 11:00 in
    # New York, and the forecast says so in the debtor's state's time.
    world = world_of(engine, tmp_path, clock, defaults)
    world.load(row("CA-1", phone="(212) 555-0101", jurisdiction="US-CA"))
    rows = contacts(simulate(engine, world.settings, NOW, 1))
    assert [(r.day, r.local_time, r.zone, r.channel, r.outcome) for r in rows] == [
        ("2026-11-02", "07:00", "America/Los_Angeles", "sms", "deferred"),
        ("2026-11-02", "08:00", "America/Los_Angeles", "sms", "sent"),
    ]


def test_a_pause_ending_and_a_promise_broken_on_the_way_are_forecast(
    engine: Engine, tmp_path: Path, clock: FixedClock, defaults: ImportDefaults
) -> None:
    """Housekeeping runs in the simulation too: the clock stops when a pause ends and
    when a promise's day has ended where the debtor is, and the cadence resumes then."""
    world = world_of(engine, tmp_path, clock, defaults)
    ids = world.load(row("PAUSED"), row("PROMISED", phone="(617) 555-0102"))
    set_account(engine, ids["PAUSED"], paused_until=NOW + timedelta(days=2))
    with engine.begin() as connection:
        promising = agent_actions.account_by_reference(connection, "PROMISED")
        agent_actions.promise(connection, promising, 5000, date(2026, 11, 3), "ana", NOW)
    rows = simulate(engine, world.settings, NOW, 3)
    first = {
        r.account: (r.day, r.local_time, r.step, r.outcome)
        for r in reversed(rows)
        if r.outcome == "sent"
    }
    assert first == {
        "PAUSED": ("2026-11-04", "10:00", "overdue-10d", "sent"),  # 15:00 UTC, the pause's end
        # Not on the day promised: once it has ended in Boston, when the window opens.
        "PROMISED": ("2026-11-04", "08:00", "overdue-10d", "sent"),
    }


def test_a_book_with_history_and_replies_is_copied_whole(
    engine: Engine, tmp_path: Path, clock: FixedClock, defaults: ImportDefaults
) -> None:
    """Attempts name their template version and replies their provider event: the scratch
    copy holds what they point at, or leaves what no forecast reads empty."""
    world = world_of(engine, tmp_path, clock, defaults)
    world.load(row("A-1"))
    world.planner().tick()  # an attempt rendered from a published version
    apply_events(engine, [inbound("Who is this?", sender="+16175550101", at=NOW)], NOW)
    # A STOP from another debtor's number: its suppression names the provider's event.
    apply_events(engine, [inbound("STOP", sender="+16175550199", at=NOW)], NOW)
    rows = simulate(engine, world.settings, NOW + timedelta(hours=1), 2)
    # It ran on the copy; the debtor's reply paused the cadence there too.
    assert [r for r in rows if r.outcome == "sent"] == []
    assert counts(engine)[0] == 1  # and the real database was only read


def test_calls_concentrated_on_sundays_or_holidays_are_named(
    engine: Engine, tmp_path: Path, clock: FixedClock, defaults: ImportDefaults
) -> None:
    """Comment 14(b)(2)(i)-2: concentrating calls on Sundays or holidays can rebut the
    presumption of compliance. The forecast names the accounts whose calls fall at least
    half on such days (two at least), by the debtor's date and jurisdiction."""
    world = world_of(engine, tmp_path, clock, defaults)
    world.load(
        row("A-1"),
        row("B-1", phone="(617) 555-0102"),
        row("C-1", phone="(617) 555-0103"),
        row("D-1", phone="(617) 555-0104"),
        row("E-1", phone="(617) 555-0105"),
        row("F-1", phone="(617) 555-0106"),
    )

    def calls(account: str, *days: str, channel: str = "voice") -> list[ForecastRow]:
        return [ForecastRow(day, "10:00", "America/New_York", account, "s", channel, "sent", "")
                for day in days]  # fmt: skip

    rows = [
        # Sunday 11-01 and Veterans Day (Wednesday 11-11), of three calls.
        *calls("A-1", "2026-11-01", "2026-11-03", "2026-11-11"),
        *calls("B-1", "2026-11-01", "2026-11-03", "2026-11-04"),  # one Sunday only
        *calls("C-1", "2026-11-01", "2026-11-08", "2026-11-03", "2026-11-04", "2026-11-05"),
        *calls("D-1", "2026-11-01", "2026-11-08", channel="sms"),  # texts: not calls
        # Sunday 04-19 and Patriots' Day (Massachusetts only), half of four calls.
        *calls("E-1", "2026-04-19", "2026-04-20", "2026-04-21", "2026-04-22"),
        *calls("F-1", "2026-11-01"),  # one call is no pattern
        ForecastRow("2026-11-08", "10:00", "UTC", "B-1", "s", "voice", "deferred", "x"),
    ]
    found = rest_day_calls(engine, rows, "US")
    assert [(c.account, c.on_rest_days, c.calls) for c in found] == [
        ("A-1", 2, 3),
        ("E-1", 2, 4),
    ]
    assert rest_day_calls(engine, [], "US") == []


def test_the_cli_refuses_a_forecast_outside_the_years_imports_accept(
    env: dict[str, str], tmp_path: Path
) -> None:
    assert outreach("init", env=env, cwd=tmp_path).returncode == 0
    for given, said in [
        (["--from", "9999-12-31"], "--from '9999-12-31' is out of range (years 1900 to 2199)"),
        (["--from", "0001-01-01T00:00:00+14:00"], "--from '0001-01-01T00:00:00+14:00' is out"),
        (["--from", "2199-12-30", "--days", "3"],
         "--from '2199-12-30' with --days 3 runs past 2199 (years 1900 to 2199)"),
    ]:  # fmt: skip
        result = outreach("simulate", *given, env=env, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert said in result.stderr
        assert "Traceback" not in result.stderr


def test_the_cli_warns_of_calls_on_rest_days(capsys: pytest.CaptureFixture[str]) -> None:
    from outreach.cli import _warn_of_rest_day_calls

    _warn_of_rest_day_calls([])
    assert capsys.readouterr().out == ""
    _warn_of_rest_day_calls([RestDayCalls(f"A-{n}", 2, 3) for n in range(12)])
    said = capsys.readouterr().out
    assert "calls concentrate on Sundays or public holidays for 12 account(s)" in said
    assert "A-0 (2 of 3)" in said and "and 2 more" in said and "restricted_days" in said
