"""The plan stage against SQLite and PostgreSQL, on a fixed clock.

The accounts are imported as an operator would import them (Massachusetts, Boston phone,
consent to texts and email) and the template files are published into the database. At
``NOW`` (Monday 2026-11-02 15:00 UTC, 10:00 in Boston: daylight saving time ended the day
before, so Boston is UTC-5) an account due on 2026-10-15 is 18 days overdue: the standard
cadence's steps up to overdue-10d have fallen due, and overdue-10d (sms, falling back to
email) is the one to send. Its next step, overdue-21d, falls due at midnight in Boston on
2026-11-05, which is 05:00 UTC.
"""

from __future__ import annotations

import logging
import multiprocessing
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from alembic import command
from sqlalchemy import ColumnElement, Engine, Table, delete, func, insert, select, update
from sqlalchemy.exc import OperationalError

from outreach import heap, store, written_facts
from outreach import housekeeping as housekeeping_module
from outreach import plan_account as plan_account_module
from outreach import planner as planner_module
from outreach.cadence_changes import cadence_digest, cadence_versions
from outreach.clock import FixedClock
from outreach.compliance.frequency import CLOCK_SKEW
from outreach.compliance.rules import load_ruleset
from outreach.compliance_store import attempts, decisions
from outreach.config import Settings
from outreach.db import alembic_config, upgrade
from outreach.housekeeping import housekeeping
from outreach.importing.account_rows import ImportDefaults
from outreach.importing.accounts import ImportHooks
from outreach.inbox import clear_flag
from outreach.leases import claim_due_accounts
from outreach.plan_account import AccountPlan
from outreach.plan_processes import process_count
from outreach.planner import Planner
from outreach.providers.base import IDENTITY_CHECK
from outreach.providers.twilio_voice import call_language
from outreach.rendering import limits
from outreach.rendering.context import MessageFacts, call_opt_out_texts, load_company
from outreach.rendering.sms import sms_length
from outreach.returned_steps import due_now
from outreach.store import cadence_steps
from outreach.template_store import retire, sync_templates, versions
from outreach.written_facts import local_day, provider_events
from tests.conftest import NOW, REPO
from tests.test_import_accounts import HEADER, row, run_import, write_csv

WORKER = "worker-1"
# overdue-21d, the step after overdue-10d: 2026-11-05 00:00 in Boston (EST, UTC-5).
NEXT_STEP_AT = datetime(2026, 11, 5, 5, 0, tzinfo=UTC)


def make_settings(engine: Engine, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        database_url=engine.url.render_as_string(hide_password=False),
        schedules_dir=REPO / "schedules",
        templates_dir=REPO / "templates",
        channels_dir=REPO / "channels",
        outbox_path=tmp_path / "outbox.jsonl",
    )


def publish_templates(engine: Engine, clock: FixedClock) -> None:
    report = sync_templates(
        engine,
        REPO / "templates",
        load_company(REPO / "templates"),
        clock,
        author="tests",
        publish=True,
    )
    assert report.refused == []


def import_accounts(
    engine: Engine,
    tmp_path: Path,
    defaults: ImportDefaults,
    clock: FixedClock,
    rows: list[dict[str, str]],
) -> dict[str, int]:
    """Import ``rows``; the account ids by reference."""
    summary = run_import(engine, write_csv(tmp_path / "accounts.csv", rows), defaults, clock)
    assert summary.rejected == 0
    with engine.connect() as connection:
        return {
            r.reference: r.id
            for r in connection.execute(select(store.accounts.c.reference, store.accounts.c.id))
        }


def rows_of(engine: Engine, table: Table, *where: ColumnElement[bool]) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(select(table).where(*where).order_by(table.c.id)))


def account(engine: Engine, account_id: int) -> Any:
    [found] = rows_of(engine, store.accounts, store.accounts.c.id == account_id)
    return found


def set_account(engine: Engine, account_id: int, **values: Any) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(store.accounts).where(store.accounts.c.id == account_id).values(**values)
        )


def add_row(engine: Engine, table: Table, **values: Any) -> int:
    """The row inserted; its id."""
    with engine.begin() as connection:
        key = connection.execute(insert(table).values(**values)).inserted_primary_key
    return int(key[0]) if key else 0


def suppress(engine: Engine, channel: str, address: str, reason: str, at: datetime) -> None:
    add_row(engine, store.suppressions, channel=channel, address=address, reason=reason,
            source="test", created_at=at)  # fmt: skip


def event(engine: Engine, account_id: int, kind: str, at: datetime, **values: Any) -> None:
    add_row(engine, store.compliance_events, account_id=account_id, kind=kind, occurred_at=at,
            source="test", **values)  # fmt: skip


def codes(decision: Any) -> list[str]:
    return [reason["code"] for reason in decision.reasons]


@dataclass
class World:
    engine: Engine
    settings: Settings
    clock: FixedClock
    tmp_path: Path
    defaults: ImportDefaults

    def load(self, *rows: dict[str, str]) -> dict[str, int]:
        return import_accounts(self.engine, self.tmp_path, self.defaults, self.clock, list(rows))

    def planner(self, worker: str = WORKER, **options: Any) -> Planner:
        options.setdefault("processes", 1)  # plan processes have tests of their own
        return Planner(self.engine, self.settings, self.clock, worker, **options)


@pytest.fixture
def world(engine: Engine, tmp_path: Path, clock: FixedClock, defaults: ImportDefaults) -> World:
    publish_templates(engine, clock)
    return World(engine, make_settings(engine, tmp_path), clock, tmp_path, defaults)


def test_only_due_active_unpaused_unleased_accounts_are_claimed(world: World) -> None:
    ids = world.load(*(row(ref) for ref in (
        "DUE", "LATER", "NEVER", "PAID", "CLOSED", "PAUSED", "PAUSE-OVER", "LEASED",
        "LEASE-OVER",
    )))  # fmt: skip
    now = world.clock.now()
    set_account(world.engine, ids["LATER"], next_contact_at=now + timedelta(seconds=1))
    set_account(world.engine, ids["NEVER"], next_contact_at=None)
    set_account(world.engine, ids["PAID"], status="paid")
    set_account(world.engine, ids["CLOSED"], status="closed")
    set_account(world.engine, ids["PAUSED"], paused_until=now + timedelta(days=3))
    set_account(world.engine, ids["PAUSE-OVER"], paused_until=now)
    set_account(world.engine, ids["LEASED"], acquired_by="worker-2",
                acquired_until=now + timedelta(minutes=5))  # fmt: skip
    set_account(world.engine, ids["LEASE-OVER"], acquired_by="worker-2",
                acquired_until=now - timedelta(seconds=1))  # fmt: skip

    report = world.planner().tick()

    # A pause whose end has come still holds until housekeeping ends it (a reply still
    # open may keep the account paused), and then the account is planned.
    claimed = {ids["DUE"], ids["LEASE-OVER"]}
    assert (report.claimed, dict(report.outcomes)) == (2, {"queued": 2})
    assert account(world.engine, ids["PAUSE-OVER"]).paused_until == now
    assert housekeeping(world.engine, now).pauses_ended == 1
    assert world.planner().tick().claimed == 1
    claimed.add(ids["PAUSE-OVER"])
    assert {a.account_id for a in rows_of(world.engine, attempts)} == claimed
    assert {d.account_id for d in rows_of(world.engine, decisions)} == claimed
    for account_id in claimed:
        planned = account(world.engine, account_id)
        assert (planned.acquired_by, planned.acquired_until) == (None, None)
        assert planned.next_contact_at == NEXT_STEP_AT
    leased = account(world.engine, ids["LEASED"])
    assert (leased.acquired_by, leased.next_contact_at) == ("worker-2", now)
    assert account(world.engine, ids["PAID"]).next_contact_at == now
    assert account(world.engine, ids["LATER"]).next_contact_at == now + timedelta(seconds=1)


def test_the_due_step_is_rendered_and_queued_on_its_channel(world: World) -> None:
    ids = world.load(row("A-1"), row("A-2", due_date="2026-10-30"))
    report = world.planner().tick()
    assert dict(report.outcomes) == {"queued": 2}

    sms, email = rows_of(world.engine, attempts)
    [sms_point] = rows_of(
        world.engine,
        store.contact_points,
        store.contact_points.c.account_id == ids["A-1"],
        store.contact_points.c.channel == "sms",
    )
    [sms_version] = rows_of(
        world.engine,
        versions,
        versions.c.channel == "sms",
        versions.c.name == "overdue",
        versions.c.tone == "firm",
        versions.c.locale == "",
    )
    assert sms.account_id == ids["A-1"]
    assert sms.idempotency_key == f"{ids['A-1']}:overdue-10d:sms"
    assert (sms.step_key, sms.channel, sms.to_address) == ("overdue-10d", "sms", "+16175550101")
    assert (sms.template_name, sms.tone, sms.locale) == ("overdue", "firm", "en")
    assert sms.template_version_id == sms_version.id
    assert sms.contact_point_id == sms_point.id
    assert sms.body == (
        "Debtor, your Northwind Utilities balance of $120.50 is 18 days past due. Please pay "
        "today or set up a plan: https://pay.northwind.example.com/A-1 Questions? Call "
        "(800) 555-0199. Reply STOP to opt out."
    )
    assert (sms.subject, sms.body_html) == (None, None)
    assert (sms.status, sms.tries, sms.next_try_at, sms.automated) == ("queued", 0, NOW, True)
    assert (sms.acquired_by, sms.provider_message_id) == (None, None)

    # Due 2026-10-30: overdue-3d (email) fell due at midnight in Boston on 2026-11-02.
    assert email.idempotency_key == f"{ids['A-2']}:overdue-3d:email"
    assert (email.channel, email.to_address, email.tone) == ("email", "a-2@example.com",
                                                             "friendly")  # fmt: skip
    assert email.subject == "Your Northwind Utilities balance of $120.50 is past due"
    assert "due on October 30, 2026, has not been paid yet" in email.body
    assert "http://127.0.0.1:8000/u/" in email.body  # the signed unsubscribe link
    assert email.body_html is not None and "<strong>$120.50</strong>" in email.body_html

    steps = rows_of(world.engine, cadence_steps, cadence_steps.c.account_id == ids["A-1"])
    assert [(s.step_key, s.outcome, s.reason, s.at) for s in steps] == [
        ("reminder-7d", "skipped", "expired: not sent within 6 days of falling due", NOW),
        ("reminder-1d", "skipped", "expired: not sent within 1 days of falling due", NOW),
        ("due-today", "skipped", "expired: not sent within 2 days of falling due", NOW),
        ("overdue-3d", "skipped", "missed: a later step was already due", NOW),
        ("overdue-10d", "queued", None, NOW),
    ]
    [decision] = rows_of(world.engine, decisions, decisions.c.account_id == ids["A-1"])
    assert (decision.stage, decision.step_key, decision.channel, decision.address) == (
        "plan", "overdue-10d", "sms", "+16175550101",
    )  # fmt: skip
    assert (decision.verdict, decision.not_before, decision.decided_at) == ("allow", None, NOW)
    assert codes(decision) == ["OK"]
    assert decision.attempt_id is None
    assert decision.ruleset_version.startswith("2026.12")
    assert decision.input_snapshot is not None
    assert "MA_HOURS:pass" in decision.rules_evaluated
    assert account(world.engine, ids["A-1"]).next_contact_at == NEXT_STEP_AT
    # overdue-10d of an account due 2026-10-30: 2026-11-09 00:00 in Boston.
    assert account(world.engine, ids["A-2"]).next_contact_at == datetime(2026, 11, 9, 5, 0,
                                                                        tzinfo=UTC)  # fmt: skip


def test_a_closed_window_moves_next_contact_to_when_it_opens(world: World) -> None:
    early = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)  # 07:00 in Boston
    opens = datetime(2026, 11, 2, 13, 0, tzinfo=UTC)  # 08:00 in Boston
    world.clock.set(early)
    ids = world.load(row("A-1"))
    report = world.planner().tick()

    assert dict(report.outcomes) == {"deferred": 1}
    assert rows_of(world.engine, attempts) == []
    assert account(world.engine, ids["A-1"]).next_contact_at == opens
    [decision] = rows_of(world.engine, decisions)
    assert (decision.verdict, decision.channel, decision.not_before) == ("defer", "sms", opens)
    assert codes(decision) == ["MA_HOURS"]
    # The missed steps are settled; the due one waits for its window, not another channel.
    steps = rows_of(world.engine, cadence_steps)
    assert [(s.step_key, s.outcome) for s in steps] == [
        ("reminder-7d", "skipped"), ("reminder-1d", "skipped"), ("due-today", "skipped"),
        ("overdue-3d", "skipped"),
    ]  # fmt: skip

    world.clock.set(opens - timedelta(seconds=1))
    assert world.planner().tick().claimed == 0
    world.clock.set(opens)
    assert dict(world.planner().tick().outcomes) == {"queued": 1}
    [queued] = rows_of(world.engine, attempts)
    assert (queued.channel, queued.step_key, queued.next_try_at) == ("sms", "overdue-10d", opens)


@pytest.mark.parametrize(
    ("blocker", "code"),
    [("stop", "CARRIER_STOP_KEYWORD"), ("no_consent", "TCPA_NO_PRIOR_EXPRESS_CONSENT")],
)
def test_a_block_on_the_primary_channel_falls_back_to_the_next(
    world: World, blocker: str, code: str
) -> None:
    if blocker == "no_consent":
        ids = world.load(row("A-1", sms_consent="false"))
    else:
        ids = world.load(row("A-1"))
        suppress(world.engine, "sms", "+16175550101", "stop", NOW - timedelta(days=1))
    report = world.planner().tick()

    assert dict(report.outcomes) == {"queued": 1}
    [attempt] = rows_of(world.engine, attempts)
    assert attempt.idempotency_key == f"{ids['A-1']}:overdue-10d:email"
    assert (attempt.channel, attempt.to_address) == ("email", "a-1@example.com")
    assert attempt.subject == "Action needed: $120.50 is 18 days past due"
    sms, email = rows_of(world.engine, decisions)
    assert (sms.channel, sms.verdict, codes(sms)) == ("sms", "block", [code])
    assert (email.channel, email.verdict, codes(email)) == ("email", "allow", ["OK"])
    [step] = rows_of(world.engine, cadence_steps, cadence_steps.c.step_key == "overdue-10d")
    assert (step.outcome, step.reason) == ("queued", None)


def test_an_automated_text_to_a_number_marked_home_needs_consent(world: World) -> None:
    """A text reaches only a line that takes texts: the import's "home" is no landline to
    it, so without consent to texts the step goes by email."""
    path = write_csv(world.tmp_path / "home.csv",
                     [row("A-1", sms_consent="false", phone_type="home")],
                     [*HEADER, "phone_type"])  # fmt: skip
    assert run_import(world.engine, path, world.defaults, world.clock).rejected == 0
    assert dict(world.planner().tick().outcomes) == {"queued": 1}
    [attempt] = rows_of(world.engine, attempts)
    assert (attempt.channel, attempt.to_address) == ("email", "a-1@example.com")
    sms, email = rows_of(world.engine, decisions)
    assert (sms.channel, sms.verdict, codes(sms)) == (
        "sms", "block", ["TCPA_NO_PRIOR_EXPRESS_CONSENT"],
    )  # fmt: skip
    assert (email.channel, email.verdict) == ("email", "allow")


def test_an_account_naming_no_state_waits_for_every_zone_of_its_numbers_state(
    world: World,
) -> None:
    """Gary, Indiana keeps Central time; the import records the one zone phonenumbers gives
    its 219 number, Eastern. The account names no state, so Indiana's every zone counts:
    at 08:30 in New York (07:30 in Gary) the text waits for 08:00 in Gary."""
    early = datetime(2026, 11, 2, 13, 30, tzinfo=UTC)
    opens = datetime(2026, 11, 2, 14, 0, tzinfo=UTC)
    world.clock.set(early)
    ids = world.load(row("IN-1", phone="(219) 455-1234", jurisdiction="US"))
    assert dict(world.planner().tick().outcomes) == {"deferred": 1}
    assert rows_of(world.engine, attempts) == []
    assert account(world.engine, ids["IN-1"]).next_contact_at == opens
    [decision] = rows_of(world.engine, decisions)
    assert (decision.verdict, decision.channel, decision.not_before) == ("defer", "sms", opens)


@pytest.mark.parametrize("blocker", ["stop", "no_consent"])
def test_a_block_on_the_first_number_texts_the_second(world: World, blocker: str) -> None:
    """A STOP from the first number, or no consent to it, leaves the second: the text goes
    there (the step's preferred channel), not to the email after it."""
    first = "false" if blocker == "no_consent" else "true"
    header = [*HEADER, "phone2", "phone2_sms_consent"]
    second = {"phone2": "(617) 555-0199", "phone2_sms_consent": "true"}
    path = write_csv(world.tmp_path / "two.csv", [row("A-1", sms_consent=first, **second),
                                                  row("A-2", sms_consent="false",
                                                      phone="(617) 555-0102",
                                                      phone2="(617) 555-0198")],
                     header)  # fmt: skip
    assert run_import(world.engine, path, world.defaults, world.clock).rejected == 0
    if blocker == "stop":
        suppress(world.engine, "sms", "+16175550101", "stop", NOW - timedelta(days=1))
    assert dict(world.planner().tick().outcomes) == {"queued": 2}
    texted, emailed = rows_of(world.engine, attempts)
    assert (texted.channel, texted.to_address) == ("sms", "+16175550199")
    assert (emailed.channel, emailed.to_address) == ("email", "a-2@example.com")
    asked = [(d.address, d.verdict) for d in rows_of(world.engine, decisions)
             if d.account_id == texted.account_id]  # fmt: skip
    assert asked == [("+16175550101", "block"), ("+16175550199", "allow")]
    # Blocked on both numbers, A-2's reason names the code once.
    skipped = [d for d in rows_of(world.engine, decisions) if d.account_id == emailed.account_id]
    assert [(d.channel, d.verdict) for d in skipped] == [
        ("sms", "block"),
        ("sms", "block"),
        ("email", "allow"),
    ]


def test_a_step_blocked_on_two_numbers_names_each_numbers_reasons(world: World) -> None:
    header = [*HEADER, "phone2", "phone2_sms_consent"]
    path = write_csv(world.tmp_path / "two.csv",
                     [row("A-1", email="", phone2="(617) 555-0199", phone2_sms_consent="true")],
                     header)  # fmt: skip
    assert run_import(world.engine, path, world.defaults, world.clock).rejected == 0
    suppress(world.engine, "sms", "+16175550101", "stop", NOW - timedelta(days=1))
    suppress(world.engine, "sms", "+16175550199", "stop", NOW - timedelta(days=1))
    assert dict(world.planner().tick().outcomes) == {"blocked": 1}
    [step] = rows_of(world.engine, cadence_steps, cadence_steps.c.step_key == "overdue-10d")
    assert step.reason == (
        "blocked on every channel (sms: +16175550101 CARRIER_STOP_KEYWORD, "
        "+16175550199 CARRIER_STOP_KEYWORD; email: no address)"
    )


def test_blocked_on_every_channel_the_step_is_skipped_with_the_reasons(world: World) -> None:
    ids = world.load(row("A-1"), row("NOWHERE", phone="", email=""))
    suppress(world.engine, "sms", "+16175550101", "stop", NOW - timedelta(days=2))
    suppress(world.engine, "email", "a-1@example.com", "unsubscribe", NOW - timedelta(days=1))
    report = world.planner().tick()

    assert dict(report.outcomes) == {"blocked": 2}
    assert rows_of(world.engine, attempts) == []
    skipped = {
        s.account_id: s.reason
        for s in rows_of(world.engine, cadence_steps, cadence_steps.c.step_key == "overdue-10d")
    }
    assert skipped == {
        ids["A-1"]: "blocked on every channel (sms: CARRIER_STOP_KEYWORD; email: "
        "EMAIL_UNSUBSCRIBED)",
        ids["NOWHERE"]: "blocked on every channel (sms: no address; email: no address)",
    }
    assert {(d.account_id, d.channel, d.verdict) for d in rows_of(world.engine, decisions)} == {
        (ids["A-1"], "sms", "block"),
        (ids["A-1"], "email", "block"),
    }
    # The cadence moves on to its next step.
    assert account(world.engine, ids["A-1"]).next_contact_at == NEXT_STEP_AT
    assert account(world.engine, ids["NOWHERE"]).next_contact_at == NEXT_STEP_AT


@pytest.mark.parametrize(
    ("condition", "code"),
    [
        ("dispute", "CADENCE_STOPPED_DISPUTED"),
        ("cease", "CADENCE_STOPPED_CEASE_REQUESTED"),
        ("promise", "CADENCE_STOPPED_PROMISE_PENDING"),
        ("nothing_owed", "CADENCE_STOPPED_PAID"),
    ],
)
def test_a_stop_condition_stops_the_cadence_with_a_decision(
    world: World, condition: str, code: str
) -> None:
    ids = world.load(row("A-1"))
    account_id = ids["A-1"]
    yesterday = NOW - timedelta(days=1)
    if condition in ("dispute", "cease"):
        event(world.engine, account_id, condition, yesterday)
    elif condition == "promise":
        add_row(world.engine, store.promises_to_pay, account_id=account_id, amount_minor=12050,
                currency="USD", due_on=date(2026, 11, 6), status="pending", created_by="agent",
                created_at=yesterday)  # fmt: skip
    else:
        set_account(world.engine, account_id, balance_minor=0)
    report = world.planner().tick()

    assert dict(report.outcomes) == {"stopped": 1}
    assert rows_of(world.engine, attempts) == []
    assert rows_of(world.engine, cadence_steps) == []
    [decision] = rows_of(world.engine, decisions)
    assert (decision.stage, decision.channel, decision.verdict) == ("plan", "none", "block")
    assert (decision.ruleset_version, codes(decision)) == ("cadence", [code])
    # Looked at again a day later.
    assert account(world.engine, account_id).next_contact_at == NOW + timedelta(days=1)


def test_a_resolved_dispute_lets_the_cadence_resume(world: World) -> None:
    ids = world.load(row("A-1"))
    event(world.engine, ids["A-1"], "dispute", NOW - timedelta(days=1))
    assert dict(world.planner().tick().outcomes) == {"stopped": 1}
    event(world.engine, ids["A-1"], "dispute_resolved", NOW + timedelta(hours=2))
    world.clock.advance(timedelta(days=1))
    assert dict(world.planner().tick().outcomes) == {"queued": 1}
    [attempt] = rows_of(world.engine, attempts)
    assert (attempt.step_key, attempt.channel) == ("overdue-10d", "sms")


def test_a_template_failing_for_one_debtor_leaves_the_others_planned(world: World) -> None:
    templates = world.tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    sms = templates / "sms" / "overdue.firm.j2"
    # 'Pat D.': every lint sample has two words in its name, so lint lets this through.
    greeting = "{{ debtor.first_name }} {{ debtor.name.split()[1][:1] }}."
    sms.write_text(sms.read_text().replace("{{ debtor.first_name }}", greeting, 1))
    published = sync_templates(world.engine, templates, load_company(templates), world.clock,
                               author="tests", publish=True)  # fmt: skip
    assert published.refused == []
    ids = world.load(
        row("A-1", name="Pat Doe"),
        row("A-2", name="Cher", phone="(617) 555-0102"),
        row("A-3", name="Sam Roe", phone="(617) 555-0103"),
    )
    report = world.planner().tick()

    assert dict(report.outcomes) == {"queued": 2, "error": 1}
    [error] = report.errors
    assert error.startswith("A-2: sms/overdue.firm.j2 line ") and "UndefinedError" in error
    assert {a.account_id for a in rows_of(world.engine, attempts)} == {ids["A-1"], ids["A-3"]}
    # The template is the marketer's to fix: the account is looked at again within the hour.
    assert account(world.engine, ids["A-2"]).next_contact_at == NOW + timedelta(hours=1)


def test_a_render_stopped_by_its_clock_alone_is_tried_again_soon(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A machine stalled past a render's one-second bound (swapping, a long collector
    pause) is not the template's fault: the account is looked at again in five minutes,
    not in the hour a marketer's fix takes. (The render's clock here moves a second at
    each look; the text the step prefers is refused, so the email, which calls filters,
    is rendered.)"""
    ids = world.load(row("A-1", sms_consent="false"))
    ticks = iter(range(10**6))
    monkeypatch.setattr(limits, "monotonic", lambda: float(next(ticks)))
    report = world.planner().tick()
    assert dict(report.outcomes) == {"error": 1}
    assert "took more than 1 second to render" in report.errors[0]
    assert account(world.engine, ids["A-1"]).next_contact_at == NOW + timedelta(minutes=5)


def test_a_message_never_carries_another_accounts_data(world: World) -> None:
    """A partial imported without context holds a namespace a template writes to: the
    daemon keeps its templates from one account to the next, the namespace must not."""
    templates = world.tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    (templates / "_partials" / "state.j2").write_text('{% set ns = namespace(last="") %}')
    sms = templates / "sms" / "overdue.firm.j2"
    sms.write_text(
        '{% import "_partials/state.j2" as st %}{% set box = st.ns %}'
        "{% if box.last %}[{{ box.last }}] {% endif %}{% set box.last = reference ~ ' ' ~ amount %}"
        + sms.read_text()
    )
    published = sync_templates(world.engine, templates, load_company(templates), world.clock,
                               author="mallory", publish=True)  # fmt: skip
    assert published.refused == []
    world.load(
        row("A-1", name="Alice Secretname", phone="(617) 555-0121"),
        row("B-2", name="Bob Other", phone="(617) 555-0122"),
    )
    assert dict(world.planner().tick().outcomes) == {"queued": 2}
    world.load(row("C-3", name="Carol Third", phone="(617) 555-0123"))
    assert dict(world.planner().tick().outcomes) == {"queued": 1}  # a tick later, same renderer

    bodies = {a.body.split(",")[0]: a.body for a in rows_of(world.engine, attempts)}
    assert set(bodies) == {"Alice", "Bob", "Carol"}
    assert not any(body.startswith("[") for body in bodies.values())
    assert "A-1" not in bodies["Bob"] + bodies["Carol"]


def test_debtors_in_locales_without_a_variant_are_texted_in_english(world: World) -> None:
    """Babel knows no English of Brazil or Mexico ('en_BR', 'en_MX'): the English message
    is written in English without a territory, and the batch goes ahead."""
    ids = world.load(
        row("BR-1", locale="pt_BR", phone="(617) 555-0111"),
        row("MX-1", locale="es_MX", due_date="2026-11-02", phone="(617) 555-0113"),
        row("US-1", phone="(617) 555-0112"),
    )
    report = world.planner().tick()

    assert dict(report.outcomes) == {"queued": 3}
    by_account = {a.account_id: a for a in rows_of(world.engine, attempts)}
    brazil, mexico = by_account[ids["BR-1"]], by_account[ids["MX-1"]]
    assert brazil.template_name == "overdue"
    assert brazil.body.startswith("Debtor, your Northwind Utilities balance of $120.50 is 18 days")
    assert mexico.template_name == "due"
    assert mexico.body.startswith("Hi Debtor, your Northwind Utilities payment of $120.50 is due")


def test_a_euro_debtors_text_is_gsm7_and_the_email_keeps_babels_spaces(world: World) -> None:
    """Babel writes 1.234,56 € with no-break spaces, which GSM-7 lacks: the text would go
    out in UCS-2 at twice the segments. The email keeps them."""
    ids = world.load(
        row("DE-1", locale="de_DE", currency="EUR", balance="1234.56"),
        row("DE-2", locale="de_DE", currency="EUR", balance="1234.56", due_date="2026-10-30"),
    )
    assert dict(world.planner().tick().outcomes) == {"queued": 2}

    by_account = {a.account_id: a for a in rows_of(world.engine, attempts)}
    sms, email = by_account[ids["DE-1"]], by_account[ids["DE-2"]]
    assert (sms.channel, email.channel) == ("sms", "email")
    assert "balance of 1.234,56 € is 18 days past due" in sms.body
    assert sms_length(sms.body).encoding == "GSM-7"
    assert "1.234,56\xa0€" in email.body


def test_an_english_call_to_a_mexican_debtor_is_recorded_and_placed_in_english(
    world: World,
) -> None:
    """The attempt's locale is the language its message is written in: the voice channel
    speaks it and offers its opt-out in it."""
    ids = world.load(row("MX-1", locale="es_MX", due_date="2026-10-12",
                         voice_consent="true", phone="(617) 555-0113"))  # fmt: skip
    world.planner().tick()
    [attempt] = [a for a in rows_of(world.engine, attempts) if a.account_id == ids["MX-1"]]
    assert attempt.channel == "voice" and attempt.template_name == "overdue"
    assert "balance" in attempt.body  # the English default variant
    offer = call_opt_out_texts(load_company(REPO / "templates"), call_language(attempt.locale))
    assert (attempt.locale, offer.offer) == ("en", "To stop these calls, press 9 or say stop.")


def test_a_retired_template_is_no_longer_rendered(world: World) -> None:
    planner = world.planner()
    with world.engine.connect() as connection:
        before = planner.toolkit(connection).renderer
    retire(world.engine, "sms/overdue.firm.j2")
    with world.engine.connect() as connection:
        after = planner.toolkit(connection).renderer
    assert after is not before
    assert after.lookup("sms/overdue.firm.j2") is None
    assert before.lookup("sms/overdue.firm.j2") is not None


def test_an_unexpected_failure_for_one_account_leaves_the_others_planned(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_context = plan_account_module.build_context

    def failing_for_a2(facts: MessageFacts, *args: Any) -> dict[str, Any]:
        if facts.reference == "A-2":
            raise LookupError("no such thing")
        return build_context(facts, *args)

    monkeypatch.setattr(plan_account_module, "build_context", failing_for_a2)
    ids = world.load(
        row("A-1"), row("A-2", phone="(617) 555-0102"), row("A-3", phone="(617) 555-0103")
    )
    report = world.planner().tick()

    assert dict(report.outcomes) == {"queued": 2, "error": 1}
    assert report.errors == ["A-2: sms/overdue.firm: LookupError: no such thing"]
    assert {a.account_id for a in rows_of(world.engine, attempts)} == {ids["A-1"], ids["A-3"]}
    # Like a template error: looked at again within the hour, its step not skipped.
    assert account(world.engine, ids["A-2"]).next_contact_at == NOW + timedelta(hours=1)
    steps = rows_of(world.engine, cadence_steps, cadence_steps.c.account_id == ids["A-2"])
    assert "overdue-10d" not in {step.step_key for step in steps}


def test_a_californian_with_a_new_york_mobile_is_not_texted_before_8_pacific(
    world: World,
) -> None:
    # 10:00 in New York is 07:00 in Los Angeles: the debtor's state and the phone's area
    # code both count, so the text waits for 08:00 Pacific (11:00 Eastern, 16:00 UTC).
    world.clock.set(datetime(2026, 11, 2, 15, 0, tzinfo=UTC))
    world.load(row("CA-1", phone="(212) 555-0101", jurisdiction="US-CA"))
    report = world.planner().tick()

    assert dict(report.outcomes) == {"deferred": 1}
    assert rows_of(world.engine, attempts) == []
    [decision] = rows_of(world.engine, decisions)
    assert decision.verdict == "defer"
    assert decision.not_before == datetime(2026, 11, 2, 16, 0, tzinfo=UTC)


def texted(world: World, account_id: int, *ago: timedelta) -> None:
    """Texts delivered to A-1's number from ``account_id``, ``ago`` before NOW."""
    for i, before in enumerate(ago):
        at = NOW - before
        add_row(world.engine, attempts, account_id=account_id, idempotency_key=f"{account_id}:{i}",
                step_key=f"earlier-{i}", channel="sms", to_address="+16175550101",
                template_name="x", tone="firm", locale="en", body="x", status="delivered",
                automated=True, created_at=at, updated_at=at, sent_at=at)  # fmt: skip


@pytest.mark.parametrize("together", [False, True], ids=["other-not-due", "same-batch"])
def test_caps_per_debtor_count_the_debtors_other_accounts(world: World, together: bool) -> None:
    # Two debts of one person, one mobile: the texts about A-1 today count toward the
    # house cap of two texts a day for the debtor, when B-1 is planned.
    ids = world.load(row("A-1"), row("B-1"))
    texted(world, ids["A-1"], timedelta(hours=2), timedelta(hours=1))
    if not together:
        set_account(world.engine, ids["A-1"], next_contact_at=None)
    report = world.planner().tick()

    assert report.outcomes["deferred"] == 1 + together
    assert rows_of(world.engine, attempts, attempts.c.status == "queued") == []
    [decision] = rows_of(
        world.engine, decisions, decisions.c.account_id == ids["B-1"], decisions.c.channel == "sms"
    )
    assert codes(decision) == ["POLICY_SMS_DAILY_CAP"]
    history = decision.input_snapshot["history"]
    assert {(c["debts"][0], c["to"]) for c in history} == {("A-1", "+16175550101")}


def test_caps_per_debt_leave_the_debtors_other_debts_alone(world: World) -> None:
    # Massachusetts: two calls or texts in seven days for each debt. A-1 had its two; B-1,
    # the same person's other debt on the same number, may still be texted.
    ids = world.load(row("A-1"), row("B-1"))
    texted(world, ids["A-1"], timedelta(days=3), timedelta(days=2))
    report = world.planner().tick()

    assert dict(report.outcomes) == {"deferred": 1, "queued": 1}
    [queued] = rows_of(world.engine, attempts, attempts.c.status == "queued")
    assert (queued.account_id, queued.channel) == (ids["B-1"], "sms")
    [held] = rows_of(world.engine, decisions, decisions.c.account_id == ids["A-1"])
    assert codes(held) == ["MA_2_PER_7_DAYS_PER_DEBT"]


def test_the_same_tick_twice_queues_nothing_new(world: World) -> None:
    ids = world.load(row("A-1"))
    planner = world.planner()
    assert dict(planner.tick().outcomes) == {"queued": 1}
    assert planner.tick().claimed == 0
    [first] = rows_of(world.engine, attempts)

    # Due again at once (an operator's reset): the step is recorded, so nothing is due.
    set_account(world.engine, ids["A-1"], next_contact_at=NOW)
    again = planner.tick()
    assert (again.claimed, dict(again.outcomes)) == (1, {"idle": 1})
    assert account(world.engine, ids["A-1"]).next_contact_at == NEXT_STEP_AT

    # Even with the cadence's memory gone, the attempt's key keeps the message unique.
    with world.engine.begin() as connection:
        connection.execute(delete(cadence_steps))
    set_account(world.engine, ids["A-1"], next_contact_at=NOW)
    assert dict(planner.tick().outcomes) == {"queued": 1}
    assert [tuple(a) for a in rows_of(world.engine, attempts)] == [tuple(first)]
    steps = rows_of(world.engine, cadence_steps, cadence_steps.c.step_key == "overdue-10d")
    assert len(steps) == 1


def test_one_batch_planned_twice_writes_its_rows_once(world: World) -> None:
    world.load(row("A-1"), row("A-2", phone="+16175550102"))
    planner = world.planner()
    now = world.clock.now()
    with world.engine.begin() as connection:
        claimed = claim_due_accounts(connection, WORKER, now, now + timedelta(minutes=10), 10)
    planner.plan_batch(claimed, now)
    planner.plan_batch(claimed, now)
    assert len(rows_of(world.engine, attempts)) == 2
    with world.engine.connect() as connection:
        per_step = connection.execute(select(func.count()).select_from(cadence_steps)).scalar_one()
    assert per_step == 10  # five steps for each account, each once


def test_batches_and_a_cap_on_accounts_per_tick(world: World) -> None:
    world.load(*(row(f"A-{i}", phone=f"+1617555010{i}") for i in range(5)))
    planner = world.planner(batch_size=2)
    first = planner.tick(max_accounts=3)
    assert (first.claimed, dict(first.outcomes)) == (3, {"queued": 3})
    rest = planner.tick()
    assert (rest.claimed, dict(rest.outcomes)) == (2, {"queued": 2})
    assert planner.tick().claimed == 0
    assert len(rows_of(world.engine, attempts)) == 5


def test_a_backlog_is_shared_with_plan_processes_each_account_once(world: World) -> None:
    world.load(*(row(f"A-{i:02d}", phone=f"+161755501{i:02d}") for i in range(40)))
    planner = world.planner(batch_size=4, processes=3)
    try:
        first = planner.tick(max_accounts=20)
        rest = planner.tick()
    finally:
        planner.close()
    assert (first.claimed, dict(first.outcomes)) == (20, {"queued": 20})
    assert first.processes > 1  # the backlog was shared
    assert (rest.claimed, dict(rest.outcomes)) == (20, {"queued": 20})
    queued = rows_of(world.engine, attempts)
    assert len(queued) == 40
    assert len({a.account_id for a in queued}) == 40
    assert all(a.acquired_by is None for a in rows_of(world.engine, store.accounts))


def test_a_plan_process_that_died_is_replaced_and_no_account_is_planned_twice(
    world: World,
) -> None:
    world.load(*(row(f"A-{i:02d}", phone=f"+161755503{i:02d}") for i in range(30)))
    planner = world.planner(batch_size=4, processes=2)
    try:
        assert planner.tick(max_accounts=12).processes == 2
        for child in multiprocessing.active_children():  # the helper, killed while idle
            child.kill()
            child.join()
        # Noticed on starting the pool again (a new one starts) or on its answer (this
        # process plans the rest); either way each account once.
        planner.tick()
        world.load(*(row(f"B-{i:02d}", phone=f"+150855503{i:02d}") for i in range(12)))
        assert planner.tick().processes == 2
    finally:
        planner.close()
    queued = rows_of(world.engine, attempts)
    assert len(queued) == 42
    assert len({a.account_id for a in queued}) == 42


def test_a_stop_reaches_the_plan_processes_and_nothing_more_is_claimed(world: World) -> None:
    world.load(*(row(f"A-{i:02d}", phone=f"+161755502{i:02d}") for i in range(12)))
    planner = world.planner(batch_size=2, processes=2)
    try:
        assert planner.tick(max_accounts=6).claimed == 6  # the helper process has started
        assert planner._pool is not None
        planner.request_stop()
        assert planner._pool.stop.is_set()
        assert planner.tick().claimed == 0
    finally:
        planner.close()
    assert len(rows_of(world.engine, attempts)) == 6  # the other six wait for the next daemon


def test_a_stop_requested_before_the_plan_processes_are_made_reaches_them(world: World) -> None:
    planner = world.planner(batch_size=2, processes=2)
    try:
        planner.request_stop()  # a SIGTERM while the pool is being made: none to tell yet
        assert planner._processes().stop.is_set()
    finally:
        planner.close()


def test_a_stop_during_a_batch_finishes_it_and_claims_no_more(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A batch's writes and the next claim share a transaction: a stop that comes while the
    # batch is planned must leave the next batch unclaimed, not claimed and abandoned.
    world.load(*(row(f"A-{i}", phone=f"+1617555010{i}") for i in range(5)))
    planner = world.planner(batch_size=2)
    real = planner_module.plan_accounts

    def plan_then_stop(*args: Any) -> Any:
        planner.request_stop()
        return real(*args)

    monkeypatch.setattr(planner_module, "plan_accounts", plan_then_stop)
    report = planner.tick()
    assert (report.claimed, dict(report.outcomes)) == (2, {"queued": 2})
    assert len(rows_of(world.engine, attempts)) == 2
    assert all(a.acquired_by is None for a in rows_of(world.engine, store.accounts))


def test_plan_processes_that_cannot_start_leave_the_backlog_to_this_one(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.load(*(row(f"A-{i}", phone=f"+1617555010{i}") for i in range(7)))
    planner = world.planner(batch_size=2, processes=2)

    def cannot_start(limit: int | None) -> Any:
        raise OSError("Resource temporarily unavailable")

    monkeypatch.setattr(planner, "_start_helpers", cannot_start)
    report = planner.tick()
    assert (report.claimed, dict(report.outcomes), report.processes) == (7, {"queued": 7}, 1)
    assert all(a.acquired_by is None for a in rows_of(world.engine, store.accounts))


def test_a_small_tick_and_an_in_memory_database_plan_in_one_process(world: World) -> None:
    world.load(*(row(f"A-{i}", phone=f"+1617555010{i}") for i in range(3)))
    planner = world.planner(batch_size=4, processes=2)
    report = planner.tick()
    assert (report.claimed, report.processes) == (3, 1)
    assert planner._pool is None  # nothing was spawned for less than a batch
    memory = world.settings.model_copy(update={"database_url": "sqlite://", "plan_processes": 4})
    assert process_count(memory) == 1
    assert process_count(world.settings.model_copy(update={"plan_processes": 3})) == 3


def test_a_live_lease_is_respected_and_an_expired_one_reclaimed(world: World) -> None:
    ids = world.load(row("A-1"))
    now = world.clock.now()
    lease = timedelta(minutes=10)
    # worker-2 claims the account and dies before planning it.
    with world.engine.begin() as connection:
        [claimed] = claim_due_accounts(connection, "worker-2", now, now + lease, 100)
    assert (claimed.id, claimed.acquired_by) == (ids["A-1"], "worker-2")

    world.clock.advance(lease - timedelta(seconds=1))
    assert world.planner().tick().claimed == 0
    assert rows_of(world.engine, attempts) == []

    world.clock.advance(timedelta(seconds=2))  # the lease ran out a second ago
    report = world.planner().tick()
    assert (report.claimed, dict(report.outcomes)) == (1, {"queued": 1})
    planned = account(world.engine, ids["A-1"])
    assert (planned.acquired_by, planned.acquired_until) == (None, None)
    assert len(rows_of(world.engine, attempts)) == 1


def test_a_plan_does_not_overwrite_an_account_another_worker_holds(world: World) -> None:
    ids = world.load(row("A-1"))
    now = world.clock.now()
    planner = world.planner(lease=timedelta(minutes=1))
    with world.engine.begin() as connection:
        claimed = claim_due_accounts(connection, WORKER, now, now + timedelta(minutes=1), 10)
    # Our lease ran out while planning and worker-2 took the account over.
    set_account(world.engine, ids["A-1"], acquired_by="worker-2",
                acquired_until=now + timedelta(minutes=11))  # fmt: skip
    planner.plan_batch(claimed, now)
    held = account(world.engine, ids["A-1"])
    assert (held.acquired_by, held.next_contact_at) == ("worker-2", now)


def test_a_look_again_asked_while_planning_is_not_overwritten_by_the_plan(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The planner reads a pending promise and stops the cadence for a day; meanwhile
    housekeeping finds the promise broken and asks for the account now. The plan's
    writes land, but the account stays due now, not a day later."""
    ids = world.load(row("A-1"), row("B-2"))
    add_row(world.engine, store.promises_to_pay, account_id=ids["A-1"], amount_minor=12050,
            currency="USD", due_on=(NOW - timedelta(days=2)).date(), status="pending",
            created_by="agent", created_at=NOW - timedelta(days=5))  # fmt: skip
    broken_at = NOW + timedelta(minutes=1)
    plan_accounts = planner_module.plan_accounts

    def meanwhile(*args: Any) -> Any:
        plans = plan_accounts(*args)  # planned from the promise still pending
        assert housekeeping(world.engine, broken_at, "housekeeper").broken_promises == 1
        return plans

    monkeypatch.setattr(planner_module, "plan_accounts", meanwhile)
    report = world.planner().tick()

    assert dict(report.outcomes) == {"stopped": 1, "queued": 1}
    promised, other = account(world.engine, ids["A-1"]), account(world.engine, ids["B-2"])
    assert (promised.next_contact_at, promised.acquired_by) == (broken_at, None)
    assert other.next_contact_at != broken_at and other.acquired_by is None
    # The next tick plans it again, with the promise broken.
    monkeypatch.setattr(planner_module, "plan_accounts", plan_accounts)
    world.clock.set(broken_at)
    assert dict(world.planner().tick().outcomes) == {"queued": 1}


def test_a_look_again_asked_after_the_planners_lease_ran_out_still_stands(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A planner slower than its lease still writes its plan if no other planner claimed
    the account meanwhile: a promise broken in that time is not overwritten either."""
    ids = world.load(row("A-1"))
    add_row(world.engine, store.promises_to_pay, account_id=ids["A-1"], amount_minor=12050,
            currency="USD", due_on=(NOW - timedelta(days=2)).date(), status="pending",
            created_by="agent", created_at=NOW - timedelta(days=5))  # fmt: skip
    broken_at = NOW + timedelta(minutes=11)  # the lease was 10 minutes
    plan_accounts = planner_module.plan_accounts

    def slowly(*args: Any) -> Any:
        plans = plan_accounts(*args)
        assert housekeeping(world.engine, broken_at, "housekeeper").broken_promises == 1
        return plans

    monkeypatch.setattr(planner_module, "plan_accounts", slowly)
    assert dict(world.planner(lease=timedelta(minutes=10)).tick().outcomes) == {"stopped": 1}
    promised = account(world.engine, ids["A-1"])
    assert (promised.next_contact_at, promised.acquired_by) == (broken_at, None)


def test_the_plans_writes_and_a_look_again_lock_accounts_in_one_order(
    world: World,
) -> None:
    """PostgreSQL: the plan's batch writes its accounts in the order of their ids, and a
    look again asked for several accounts locks them in that order too, so the two never
    wait for each other in a circle (a deadlock, which would fail one of them)."""
    if world.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: there is no order of locks")
    ids = world.load(row("A-1"), row("B-2"), row("C-3"))
    first, middle, last = sorted(ids.values())
    # Claimed latest-id first: the claim's order is the accounts' due times.
    for offset, account_id in enumerate((last, middle, first)):
        set_account(world.engine, account_id, next_contact_at=NOW - timedelta(hours=3 - offset))
    with world.engine.begin() as connection:
        claimed = claim_due_accounts(connection, WORKER, NOW, NOW + timedelta(minutes=5), 10)
    assert [r.id for r in claimed] == [last, middle, first]
    plans = [AccountPlan("idle", NOW + timedelta(days=1))] * 3
    writes = planner_module.plan_writes(world.engine.dialect, claimed, plans, WORKER, NOW)
    (next_contact,) = [w for w in writes if w.parameters and "claimed_at" in w.parameters[0]]
    assert [p["account_id"] for p in next_contact.parameters] == [first, middle, last]

    # The look again, while another transaction holds the last account: it has locked the
    # first one already when it waits for the last.
    asked: list[BaseException | None] = []
    with world.engine.connect() as holder:
        holder.begin()
        holder.execute(
            select(store.accounts.c.id).where(store.accounts.c.id == last).with_for_update()
        )

        def look_again() -> None:
            try:
                with world.engine.begin() as connection:
                    due_now(connection, [last, first, middle], NOW)
                asked.append(None)
            except BaseException as error:
                asked.append(error)

        thread = threading.Thread(target=look_again)
        thread.start()
        _wait_for_a_lock_wait(world.engine)
        with (
            pytest.raises(OperationalError, match="could not obtain lock"),
            world.engine.begin() as connection,
        ):
            connection.execute(
                select(store.accounts.c.id)
                .where(store.accounts.c.id == first)
                .with_for_update(nowait=True)
            )
        holder.commit()
    thread.join()
    assert asked == [None]


def _wait_for_a_lock_wait(engine: Engine, sessions: int = 1) -> None:
    """Until ``sessions`` sessions of this database wait for a lock (PostgreSQL)."""
    for _ in range(1000):
        with engine.connect() as connection:
            waiting = connection.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).scalar_one()
        if waiting >= sessions:
            return
        time.sleep(0.01)
    raise AssertionError(f"fewer than {sessions} session(s) waited for a lock")


def test_a_plan_inserting_rows_and_a_look_again_do_not_deadlock(world: World) -> None:
    """PostgreSQL: the rows a plan inserts for its accounts (steps, attempts, decisions)
    take KEY SHARE locks on them, in the order the accounts were claimed; a look again
    locks its accounts as an update does (FOR NO KEY UPDATE), which those do not wait for."""
    if world.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: there is no order of locks")
    ids = world.load(row("A-1"), row("B-2"))
    first, last = sorted(ids.values())
    set_account(world.engine, last, next_contact_at=NOW - timedelta(hours=3))
    set_account(world.engine, first, next_contact_at=NOW - timedelta(hours=2))
    with world.engine.begin() as connection:
        claimed = claim_due_accounts(connection, WORKER, NOW, NOW + timedelta(minutes=5), 10)
    assert [r.id for r in claimed] == [last, first]  # claimed against the order of ids
    plans = [
        AccountPlan("stopped", None, steps=[
            {"account_id": r.id, "step_key": "s1", "outcome": "skipped", "reason": None,
             "at": NOW},
        ])
        for r in claimed
    ]  # fmt: skip
    writes = planner_module.plan_writes(world.engine.dialect, claimed, plans, WORKER, NOW)
    ended: dict[str, BaseException | None] = {}

    def in_thread(name: str, work: Any) -> threading.Thread:
        def run() -> None:
            try:
                with world.engine.begin() as connection:
                    work(connection)
                ended[name] = None
            except BaseException as error:
                ended[name] = error

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    with world.engine.connect() as holder:
        holder.begin()  # holds the first account, so that both below wait in turn
        holder.execute(
            select(store.accounts.c.id).where(store.accounts.c.id == first).with_for_update()
        )
        look = in_thread("look again", lambda c: due_now(c, [first, last], NOW))
        _wait_for_a_lock_wait(world.engine)
        plan = in_thread("plan", lambda c: [write.run(c) for write in writes])
        _wait_for_a_lock_wait(world.engine, 2)
        holder.commit()
    look.join()
    plan.join()
    assert ended == {"look again": None, "plan": None}


def test_housekeeping_reads_the_pauses_it_ends_under_its_lock(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An agent's change to a pause cannot slip in between housekeeping's reading that it
    has ended and its ending it: on SQLite the writer lock is taken before the read, on
    PostgreSQL the paused accounts are locked as they are read."""
    account_id = world.load(row("A-1"))["A-1"]
    set_account(world.engine, account_id, paused_until=NOW - timedelta(hours=1))
    hand_over = housekeeping_module.hand_over_to_reply_pause
    probed: list[str] = []

    def probe(connection: Any, ended: Any, now: datetime, pause: timedelta) -> Any:
        probed.append(_could_an_agent_write(world.engine, account_id))
        return hand_over(connection, ended, now, pause)

    monkeypatch.setattr(housekeeping_module, "hand_over_to_reply_pause", probe)
    assert housekeeping(world.engine, NOW, "housekeeper").pauses_ended == 1
    assert probed == ["it waits"]
    assert _could_an_agent_write(world.engine, account_id) == "it writes"


def _could_an_agent_write(engine: Engine, account_id: int) -> str:
    """Whether another connection could change the account now, without waiting."""
    if engine.dialect.name == "sqlite":
        other = sqlite3.connect(str(engine.url.database), timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            return "it writes"
        except sqlite3.OperationalError:
            return "it waits"
        finally:
            other.close()
    with engine.connect() as connection:
        try:
            connection.execute(
                select(store.accounts.c.id)
                .where(store.accounts.c.id == account_id)
                .with_for_update(nowait=True, key_share=True)
            )
            return "it writes"
        except OperationalError:
            return "it waits"


def test_expired_steps_are_skipped_and_a_spent_cadence_finishes(world: World) -> None:
    # pre-due: reminders at -7 and -1 days and on the due date, each expiring. Due
    # 2026-10-20, every one of them had expired by 2026-11-02.
    ids = world.load(row("P-1", cadence="pre-due", due_date="2026-10-20"))
    report = world.planner().tick()

    assert dict(report.outcomes) == {"finished": 1}
    assert rows_of(world.engine, attempts) == []
    assert rows_of(world.engine, decisions) == []
    steps = rows_of(world.engine, cadence_steps)
    assert [(s.step_key, s.outcome, s.reason) for s in steps] == [
        ("reminder-7d", "skipped", "expired: not sent within 6 days of falling due"),
        ("reminder-1d", "skipped", "expired: not sent within 1 days of falling due"),
        ("due-today", "skipped", "expired: not sent within 2 days of falling due"),
    ]
    assert account(world.engine, ids["P-1"]).next_contact_at is None


def test_an_account_moved_by_an_import_to_another_cadence_is_planned_on_it(
    world: World,
) -> None:
    # pre-due's steps had all expired 18 days after the due date: finished, no hand-off.
    ids = world.load(row("A-1", cadence="pre-due"))
    assert dict(world.planner().tick().outcomes) == {"finished": 1}
    assert account(world.engine, ids["A-1"]).next_contact_at is None
    # The operator moves the overdue customer to the standard cadence: overdue-10d is due,
    # the steps pre-due dealt with are not offered again.
    world.load(row("A-1", cadence="standard"))
    assert dict(world.planner().tick().outcomes) == {"queued": 1}
    assert [a.step_key for a in rows_of(world.engine, attempts)] == ["overdue-10d"]


def test_a_step_deferred_past_its_expiry_is_skipped(world: World) -> None:
    # Due Sunday 2026-11-01, the day daylight saving time ended: due-today fell due at
    # 00:00 EDT (04:00 UTC) and may go out until 2026-11-03 04:00 UTC. overdue-3d falls
    # due on 2026-11-04 at 00:00 EST, 05:00 UTC.
    ids = world.load(row("D-1", due_date="2026-11-01"))
    world.clock.set(datetime(2026, 11, 3, 3, 59, tzinfo=UTC))  # 22:59 in Boston: closed
    assert dict(world.planner().tick().outcomes) == {"deferred": 1}
    # 08:00 in Boston on 2026-11-03 is past the step's expiry: it is skipped, and nothing
    # else is due until overdue-3d.
    opens = datetime(2026, 11, 3, 13, 0, tzinfo=UTC)
    assert account(world.engine, ids["D-1"]).next_contact_at == opens
    world.clock.set(opens)
    assert dict(world.planner().tick().outcomes) == {"idle": 1}
    [step] = rows_of(world.engine, cadence_steps, cadence_steps.c.step_key == "due-today")
    assert (step.outcome, step.reason) == (
        "skipped", "expired: not sent within 2 days of falling due",
    )  # fmt: skip
    assert rows_of(world.engine, attempts) == []
    assert account(world.engine, ids["D-1"]).next_contact_at == datetime(2026, 11, 4, 5, 0,
                                                                        tzinfo=UTC)  # fmt: skip


def test_a_claim_takes_no_more_than_its_limit_whatever_the_join_plan(world: World) -> None:
    """On PostgreSQL an ``IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)`` planned as a
    nested loop runs the sub-select again for each row and skips the rows the statement
    has just updated, so it claimed every due account (PostgreSQL bug #15715, "expected
    behaviour"). Forcing that plan shows the claim keeps to its limit."""
    world.load(*(row(f"A-{i}", phone=f"+1617555010{i}") for i in range(8)))
    now = world.clock.now()
    with world.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            for plan in ("hashjoin", "mergejoin", "material", "hashagg", "sort"):
                connection.exec_driver_sql(f"SET LOCAL enable_{plan} = off")
        claimed = claim_due_accounts(connection, WORKER, now, now + timedelta(minutes=1), 3)
    assert len(claimed) == 3
    held = [a for a in rows_of(world.engine, store.accounts) if a.acquired_by == WORKER]
    assert sorted(a.id for a in held) == sorted(a.id for a in claimed)


def test_a_planned_batch_settles_the_heap(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    settled: list[bool] = []
    monkeypatch.setattr(heap, "settle", lambda: settled.append(True) or True)
    world.load(row("A-1"))
    assert world.planner().tick().claimed == 1
    assert settled == [True]


STANDARD_STEPS = ("reminder-7d", "reminder-1d", "due-today", "overdue-3d", "overdue-10d",
                  "overdue-21d", "overdue-30d", "final-notice", "final-call")  # fmt: skip


def test_a_spent_cadence_hands_the_account_to_the_agents_after_its_days(world: World) -> None:
    """The standard cadence hands off to the agents 7 days after its last step: the account
    is looked at again then, flagged `handoff` for the agents with the reason stored, and
    not flagged again once an agent has cleared it. A more serious flag stands over the
    hand-off's until it is cleared; a reply's flag, later, likewise."""
    ids = world.load(row("DONE"), row("RECENT", phone="(617) 555-0102"),
                     row("DISPUTED", phone="(617) 555-0103"))  # fmt: skip
    now = world.clock.now()
    last = {"DONE": now - timedelta(days=8), "RECENT": now - timedelta(days=2),
            "DISPUTED": now - timedelta(days=8)}  # fmt: skip
    for reference, account_id in ids.items():
        for key in STANDARD_STEPS:
            add_row(world.engine, cadence_steps, account_id=account_id, step_key=key,
                    outcome="sent", reason=None, at=last[reference])  # fmt: skip
    set_account(world.engine, ids["DISPUTED"], flag="dispute", flagged_at=now - timedelta(days=1))
    report = world.planner().tick()
    assert dict(report.outcomes) == {"handed_off": 2, "finished": 1}
    assert report.summary() == "claimed 3, finished 1, handed_off 2"
    done, recent = account(world.engine, ids["DONE"]), account(world.engine, ids["RECENT"])
    assert (done.flag, done.flagged_at, done.next_contact_at) == ("handoff", now, None)
    assert (recent.flag, recent.next_contact_at) == (None, last["RECENT"] + timedelta(days=7))
    # A flag more serious stays as it is, the hand-off pending behind it.
    disputed = account(world.engine, ids["DISPUTED"])
    assert (disputed.flag, disputed.handoff) == ("dispute", "pending")
    with world.engine.begin() as connection:
        clear_flag(connection, ids["DISPUTED"], now)
    assert account(world.engine, ids["DISPUTED"]).flag == "handoff"
    (reason,) = rows_of(world.engine, decisions, decisions.c.account_id == ids["DONE"])[0].reasons
    assert reason["code"] == "CADENCE_HANDED_OFF"
    assert rows_of(world.engine, attempts) == []
    # A reply flags the account over its hand-off; once that flag is cleared, the hand-off's
    # is back, for the agents to clear in turn.
    set_account(world.engine, ids["DONE"], flag="wrong_number", flagged_at=now)
    with world.engine.begin() as connection:
        clear_flag(connection, ids["DONE"], now)
    assert account(world.engine, ids["DONE"]).flag == "handoff"
    # Cleared; the account comes through the planner again (a reply handled): it is not
    # flagged again for the hand-off the agents have seen, nor after a later reply's flag.
    with world.engine.begin() as connection:
        clear_flag(connection, ids["DONE"], now)
    set_account(world.engine, ids["DONE"], next_contact_at=now)
    world.clock.set(now + timedelta(hours=1))
    assert dict(world.planner().tick().outcomes) == {"handed_off": 1}
    done = account(world.engine, ids["DONE"])
    assert (done.flag, done.handoff) == (None, "seen")
    set_account(world.engine, ids["DONE"], flag="dispute", flagged_at=now)
    with world.engine.begin() as connection:
        clear_flag(connection, ids["DONE"], now)
    assert account(world.engine, ids["DONE"]).flag is None
    # RECENT's hand-off comes.
    world.clock.set(last["RECENT"] + timedelta(days=7))
    assert dict(world.planner().tick().outcomes) == {"handed_off": 1}
    assert account(world.engine, ids["RECENT"]).flag == "handoff"


def test_a_planner_whose_cadence_has_since_changed_leaves_its_end_to_the_new_files(
    world: World,
) -> None:
    """In a rolling deploy, a daemon still planning with files a daemon started since has
    changed (``cadence_version``) neither finishes nor hands off an account of that cadence:
    the account is looked at again a day later, by whichever daemon claims it then. A
    cadence recorded as the planner has it ends as ever."""
    ids = world.load(row("DONE"), row("PRE-DUE", cadence="pre-due", phone="(617) 555-0102"))
    now = world.clock.now()
    for key in STANDARD_STEPS:
        add_row(world.engine, cadence_steps, account_id=ids["DONE"], step_key=key,
                outcome="sent", reason=None, at=now - timedelta(days=8))  # fmt: skip
    planner = world.planner()
    digest = {name: cadence_digest(cadence) for name, cadence in planner.cadences.items()}
    with world.engine.begin() as connection:
        connection.execute(insert(cadence_versions), [
            {"name": "standard", "digest": "0" * 64, "seen_at": now},
            {"name": "pre-due", "digest": digest["pre-due"], "seen_at": now},
        ])  # fmt: skip
    assert dict(planner.tick().outcomes) == {"cadence_changed": 1, "finished": 1}
    done = account(world.engine, ids["DONE"])
    assert (done.next_contact_at, done.handoff, done.flag) == (now + timedelta(days=1), None, None)
    assert rows_of(world.engine, decisions, decisions.c.account_id == ids["DONE"]) == []
    assert account(world.engine, ids["PRE-DUE"]).next_contact_at is None
    # A day later, planned by a daemon with the files recorded: handed off.
    with world.engine.begin() as connection:
        connection.execute(update(cadence_versions).values(digest=digest["standard"]))
    world.clock.set(now + timedelta(days=1))
    assert dict(world.planner().tick().outcomes) == {"handed_off": 1}
    assert account(world.engine, ids["DONE"]).flag == "handoff"


def test_a_cadence_finished_before_hand_offs_were_carried_out_is_handed_off(
    world: World,
) -> None:
    """The planner used to leave a finished account with no next contact time: the
    migration makes it due again, and its hand-off is carried out."""
    ids = world.load(row("OLD"))
    now = world.clock.now()
    for key in STANDARD_STEPS:
        add_row(world.engine, cadence_steps, account_id=ids["OLD"], step_key=key,
                outcome="sent", reason=None, at=now - timedelta(days=30))  # fmt: skip
    command.downgrade(alembic_config(world.engine), "0024")
    set_account(world.engine, ids["OLD"], next_contact_at=None, updated_at=now - timedelta(days=29))
    upgrade(world.engine)
    assert account(world.engine, ids["OLD"]).next_contact_at == now - timedelta(days=29)
    assert dict(world.planner().tick().outcomes) == {"handed_off": 1}
    assert account(world.engine, ids["OLD"]).flag == "handoff"


# --- the first communication about a debt ------------------------------------------------

FULL = (
    "This is a communication from a debt collector. This is an attempt to collect a debt and "
    "any information obtained will be used for that purpose."
)
SHORT = "This is a message from a debt collector."


def earlier_message(
    engine: Engine,
    account_id: int,
    channel: str,
    status: str,
    outcome: str | None = None,
    answer: str | None = None,
) -> None:
    """A message of weeks ago (outside the caps' look-back) to the account's debtor; for a
    call, ``answer`` is what its identity check heard and played (``raw_status``)."""
    at = NOW - timedelta(days=20)
    address = "a-1@example.com" if channel == "email" else "+16175550101"
    attempt_id = add_row(
        engine, attempts, account_id=account_id, idempotency_key=f"earlier:{channel}",
        step_key="manual", channel=channel, to_address=address, template_name="x",
        tone="firm", locale="en", body="x", status=status, outcome=outcome, automated=False,
        created_at=at, updated_at=at, sent_at=at,
    )  # fmt: skip
    if answer is not None:
        add_row(engine, provider_events, provider="twilio_voice", kind=IDENTITY_CHECK,
                event_type="answered_human", raw_status=answer, attempt_id=attempt_id,
                account_id=account_id, dedupe_key=f"identity:{attempt_id}", received_at=at,
                payload={})  # fmt: skip


@pytest.mark.parametrize(
    ("earlier", "disclosure"),
    [
        pytest.param(None, FULL, id="nothing before"),
        pytest.param(("sms", "delivered", "delivered"), SHORT, id="a text delivered"),
        pytest.param(("email", "sent", None), SHORT, id="an email sent"),
        pytest.param(
            ("voice", "sent", "conversation", "keypress 1: human"),
            SHORT,
            id="a call the debtor took and heard",
        ),
        # Whoever answered and did not say they were the debtor heard nothing of the debt.
        pytest.param(
            ("voice", "sent", "conversation", "keypress 2: not the debtor"),
            FULL,
            id="a call someone else took",
        ),
        pytest.param(
            ("voice", "sent", "conversation", "no input: voicemail"),
            FULL,
            id="a call a person took without a key",
        ),
        pytest.param(("voice", "sent", "conversation"), FULL, id="a call with no answer heard"),
        # In doubt, or not reached: the next message is the first.
        pytest.param(("sms", "unknown", None), FULL, id="a text that may have left"),
        pytest.param(("sms", "sending", None), FULL, id="a text still leaving"),
        pytest.param(("sms", "undelivered", "failed"), FULL, id="a text undelivered"),
        pytest.param(("email", "failed", "failed"), FULL, id="an email failed"),
        pytest.param(("sms", "cancelled", None), FULL, id="a text cancelled"),
        # A limited-content voicemail is no communication (Reg F 1006.2(j)).
        pytest.param(("voice", "sent", "limited_content_message"), FULL, id="a voicemail"),
        pytest.param(("voice", "sent", "no_answer"), FULL, id="a call not answered"),
    ],
)
def test_a_debt_collectors_first_text_carries_the_whole_disclosure(
    world: World, earlier: tuple[Any, ...] | None, disclosure: str
) -> None:
    """Reg F 1006.18(e)(1): the first communication with the debtor says it is an attempt
    to collect a debt; only a later text may make do with who it is from ((e)(2)). An
    account that arrives overdue is often first texted."""
    ids = world.load(row("A-1"))
    set_account(world.engine, ids["A-1"], collector_type="third_party")
    if earlier is not None:
        earlier_message(world.engine, ids["A-1"], *earlier)
    assert dict(world.planner().tick().outcomes) == {"queued": 1}
    [sms] = rows_of(world.engine, attempts, attempts.c.step_key == "overdue-10d")
    assert sms.channel == "sms"
    assert sms.body.endswith(f"(800) 555-0199. {disclosure} Reply STOP to opt out.")


def test_a_text_read_by_someone_else_is_no_first_contact(world: World) -> None:
    """A text delivered to a number whose reader then said "wrong number" reached a
    stranger: the debtor's first text, to their own number, carries the whole disclosure."""
    ids = world.load(row("A-1"))
    set_account(world.engine, ids["A-1"], collector_type="third_party")
    earlier_message(world.engine, ids["A-1"], "sms", "delivered", "delivered")
    with world.engine.begin() as connection:
        connection.execute(
            update(store.contact_points)
            .where(store.contact_points.c.account_id == ids["A-1"])
            .values(status="wrong_number")
        )
    add_row(world.engine, store.contact_points, account_id=ids["A-1"], channel="sms",
            address="+16175550199", kind="mobile", priority=1, consent=True,
            consent_source="test", consent_at=NOW - timedelta(days=30), status="active",
            created_at=NOW, updated_at=NOW)  # fmt: skip
    assert dict(world.planner().tick().outcomes) == {"queued": 1}
    [sms] = rows_of(world.engine, attempts, attempts.c.status == "queued")
    assert sms.to_address == "+16175550199"
    assert FULL in sms.body and SHORT not in sms.body


def test_a_message_about_another_debt_of_the_same_debtor_is_no_first_contact_for_this_one(
    world: World,
) -> None:
    """Disclosures go by debt: the debtor's other account was texted, this one never."""
    ids = world.load(row("A-1"), row("A-2"))  # one phone number, one person
    set_account(world.engine, ids["A-1"], collector_type="third_party", next_contact_at=None)
    set_account(world.engine, ids["A-2"], collector_type="third_party")
    earlier_message(world.engine, ids["A-1"], "sms", "delivered", "delivered")
    assert dict(world.planner().tick().outcomes) == {"queued": 1}
    [sms] = rows_of(world.engine, attempts, attempts.c.account_id == ids["A-2"])
    assert FULL in sms.body and SHORT not in sms.body


def place_with_collector(world: World, *references: str) -> None:
    """Import ``references`` again as a debt collector's (``third_party``): the creditor
    placed the debts with the collector, whose outreach runs on the same accounts."""
    rows = [row(reference, collector_type="third_party") for reference in references]
    path = write_csv(world.tmp_path / "placed.csv", rows, [*HEADER, "collector_type"])
    assert run_import(world.engine, path, world.defaults, world.clock).updated == len(rows)


def delivered_text(engine: Engine, account_id: int, at: datetime) -> None:
    add_row(engine, attempts, account_id=account_id, idempotency_key=f"text:{account_id}:{at}",
            step_key="manual", channel="sms", to_address="+16175550101", template_name="x",
            tone="firm", locale="en", body="x", status="delivered", outcome="delivered",
            automated=False, created_at=at, updated_at=at, sent_at=at)  # fmt: skip


def test_a_creditors_messages_before_it_placed_the_debt_are_no_contact_of_the_collectors(
    world: World,
) -> None:
    """Once a debt collector took the debt over (``collector_since``), only the messages
    written since count: the creditor's before are not the collector's communications.
    Accounts without a placing count every message, as before."""
    refs = ("PLACED", "REACHED", "COLLECTORS", "CREDITORS", "TAKEN_BACK")
    ids = world.load(*(row(reference) for reference in refs))
    placed = NOW - timedelta(days=10)
    for account_id in ids.values():
        delivered_text(world.engine, account_id, placed - timedelta(seconds=1))
    for reference in ("PLACED", "REACHED"):
        set_account(world.engine, ids[reference], collector_type="third_party",
                    collector_since=placed)  # fmt: skip
    # The collector's own text, at the very instant of the placing.
    delivered_text(world.engine, ids["REACHED"], placed)
    # Imported as the collector's: every message is the collector's.
    set_account(world.engine, ids["COLLECTORS"], collector_type="third_party")
    # The creditor's own account counts its own messages, whatever the time says.
    set_account(world.engine, ids["TAKEN_BACK"], collector_since=placed)
    with world.engine.connect() as connection:
        reached = written_facts.contacted(connection, list(ids.values()))
    assert {reference for reference, i in ids.items() if i in reached} == {
        "REACHED", "COLLECTORS", "CREDITORS", "TAKEN_BACK",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("collectors_text", "disclosure"),
    [
        pytest.param(False, FULL, id="the creditor's text only"),
        pytest.param(True, SHORT, id="a text of the collector's since"),
    ],
)
def test_a_debt_collectors_first_text_after_the_creditor_placed_the_debt_is_the_first(
    world: World, collectors_text: bool, disclosure: str
) -> None:
    """The creditor texted its debtor, then placed the debt with a debt collector (an
    import turns the account into a ``third_party`` one). The creditor's text is no
    communication of the collector's: the collector's first text carries the whole
    disclosure (Reg F 1006.18(e)(1)); once one of its own reached the debtor, a later one
    may carry the short form."""
    ids = world.load(row("A-1"))
    earlier_message(world.engine, ids["A-1"], "sms", "delivered", "delivered")
    placed = NOW - timedelta(days=10)
    world.clock.set(placed)
    place_with_collector(world, "A-1")
    world.clock.set(NOW)
    assert account(world.engine, ids["A-1"]).collector_since == placed + CLOCK_SKEW
    if collectors_text:
        delivered_text(world.engine, ids["A-1"], placed + timedelta(days=1))
    assert dict(world.planner().tick().outcomes) == {"queued": 1}
    [sms] = rows_of(world.engine, attempts, attempts.c.step_key == "overdue-10d")
    assert sms.channel == "sms"
    assert sms.body.endswith(f"(800) 555-0199. {disclosure} Reply STOP to opt out.")


def test_a_creditors_text_written_while_the_import_ran_is_not_the_collectors(
    world: World,
) -> None:
    """An import of many batches takes minutes: a creditor's text written after it began,
    before the batch that placed the debt with the collector, is still the creditor's. The
    collector's first text carries the whole disclosure."""
    ids = world.load(row("OTHER"), row("A-1"))
    world.clock.set(NOW - timedelta(days=10))  # the import begins

    def daemon_meanwhile(_done: int, _total: int) -> None:
        # After the first batch, before A-1's: the creditor's text goes out 5 minutes in.
        if not rows_of(world.engine, attempts, attempts.c.account_id == ids["A-1"]):
            world.clock.advance(timedelta(minutes=5))
            delivered_text(world.engine, ids["A-1"], world.clock.now())

    rows = [row("OTHER", collector_type="third_party"), row("A-1", collector_type="third_party")]
    path = write_csv(world.tmp_path / "placed.csv", rows, [*HEADER, "collector_type"])
    summary = run_import(world.engine, path, world.defaults, world.clock, batch_size=1,
                         hooks=ImportHooks(on_progress=daemon_meanwhile))  # fmt: skip
    assert summary.updated == 2
    world.clock.set(NOW)
    assert dict(world.planner().tick().outcomes) == {"queued": 2}
    [sms] = rows_of(world.engine, attempts, attempts.c.step_key == "overdue-10d",
                    attempts.c.account_id == ids["A-1"])  # fmt: skip
    assert sms.body.endswith(f"(800) 555-0199. {FULL} Reply STOP to opt out.")


def publish_old_footer(engine: Engine) -> None:
    """The SMS footer as published before lint told first contacts apart: every text gets
    the short disclosure."""
    footer = (REPO / "templates" / "_partials" / "sms_footer.j2").read_text(encoding="utf-8")
    old = "{% if disclosure_short %} {{ disclosure_short }}{% endif %} {{ opt_out_text }}\n"
    with engine.begin() as connection:
        changed = connection.execute(
            update(versions).where(versions.c.content == footer).values(content=old)
        )
        assert changed.rowcount == 1


def test_a_first_text_from_a_footer_published_before_first_contacts_waits(world: World) -> None:
    """A footer published before lint told first contacts apart gives every text the short
    disclosure: a debt collector's first text is not queued without the whole of it; the
    account waits, with the reason, for the footer to be published again."""
    publish_old_footer(world.engine)
    ids = world.load(row("A-1"), row("A-2", phone="(617) 555-0102"))
    set_account(world.engine, ids["A-1"], collector_type="third_party")
    report = world.planner().tick()
    assert dict(report.outcomes) == {"queued": 1, "error": 1}
    assert "first text must carry the whole {{ disclosure }}" in report.errors[0]
    [sms] = rows_of(world.engine, attempts)
    assert sms.account_id == ids["A-2"]  # a creditor's own text needs no disclosure


def test_first_texts_waiting_for_the_footer_are_logged_once_a_template_not_once_a_batch(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Until the footer is published again, every batch meets first texts it holds back:
    the planner says so once for the template, warning, and counts later batches at DEBUG
    (the daemon's start-up warning names the footer and the command)."""
    publish_old_footer(world.engine)
    ids = world.load(*(row(f"A-{n}", phone=f"(617) 555-010{n}") for n in range(1, 5)))
    for account_id in ids.values():
        set_account(world.engine, account_id, collector_type="third_party")
    planner = world.planner(batch_size=1)
    caplog.set_level(logging.DEBUG, logger="outreach.planner")
    assert dict(planner.tick(max_accounts=2).outcomes) == {"error": 2}
    assert dict(planner.tick().outcomes) == {"error": 2}  # the next tick: the same template
    said = [r for r in caplog.records if "first text must carry the whole" in r.getMessage()]
    assert [r.levelno for r in said] == [logging.WARNING] + [logging.DEBUG] * 3
    assert "sms/overdue.firm.j2" in said[0].getMessage()


def test_a_template_that_fails_otherwise_is_still_logged_every_batch(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Only the footer's wait is said once: another template fault, which a marketer
    mends, goes on being a warning each batch (a guard against saying too little)."""
    world.load(*(row(f"A-{n}", phone=f"(617) 555-010{n}") for n in range(1, 3)))
    broken = "{{ amount | no_such_filter_at_render }}"
    with world.engine.begin() as connection:
        connection.execute(
            update(versions)
            .where(versions.c.channel == "sms", versions.c.name == "overdue",
                   versions.c.tone == "firm", versions.c.locale == "")
            .values(content=broken)
        )  # fmt: skip
    caplog.set_level(logging.DEBUG, logger="outreach.planner")
    assert dict(world.planner(batch_size=1).tick().outcomes) == {"error": 2}
    said = [r for r in caplog.records if "account(s) wait" in r.getMessage()]
    assert [r.levelno for r in said] == [logging.WARNING] * 2


# A threat of suit, in the text overdue-10d sends (Reg F 1006.26(b) forbids it on a
# time-barred debt).
SUIT_THREAT = "If you do not pay, we will file a lawsuit."


def threaten_suit(world: World) -> None:
    """The published sms/overdue.firm.j2 threatens suit, as a template published before
    lint looked for such threats would: written into its published version, past lint,
    for the check made as each message is rendered is what must stop it."""
    source = (REPO / "templates" / "sms" / "overdue.firm.j2").read_text()
    threatening = source.replace("Questions?", f"{SUIT_THREAT} Questions?", 1)
    assert threatening != source
    with world.engine.begin() as connection:
        connection.execute(
            update(versions)
            .where(versions.c.channel == "sms", versions.c.name == "overdue",
                   versions.c.tone == "firm", versions.c.locale == "",
                   versions.c.status == "published")
            .values(content=threatening)
        )  # fmt: skip


def load_barred(world: World, *rows: dict[str, str]) -> dict[str, int]:
    """Import ``rows`` with their ``time_barred_on`` column; the account ids by reference."""
    header = [*HEADER, "time_barred_on"]
    path = write_csv(world.tmp_path / "barred.csv", list(rows), header)
    assert run_import(world.engine, path, world.defaults, world.clock).rejected == 0
    with world.engine.connect() as connection:
        found = connection.execute(select(store.accounts.c.reference, store.accounts.c.id))
        return {r.reference: r.id for r in found}


def test_a_message_threatening_suit_is_not_queued_for_a_time_barred_debt(world: World) -> None:
    """At NOW it is 2026-11-02 in Boston: A-1 is time-barred from today, A-2 not at all and
    A-3 only from tomorrow. The text threatening suit is refused for A-1 alone."""
    threaten_suit(world)
    ids = load_barred(
        world,
        row("A-1", time_barred_on="2026-11-02"),
        row("A-2", phone="(617) 555-0102", time_barred_on=""),
        row("A-3", phone="(617) 555-0103", time_barred_on="2026-11-03"),
    )
    report = world.planner().tick()

    assert dict(report.outcomes) == {"queued": 2, "error": 1}
    [error] = report.errors
    assert error.startswith("A-1: sms/overdue.firm.j2") and "REGF_TIME_BARRED_SUIT_THREAT" in error
    queued = rows_of(world.engine, attempts)
    assert {a.account_id for a in queued} == {ids["A-2"], ids["A-3"]}
    assert all(SUIT_THREAT in a.body for a in queued)
    # Not sent, and looked at again as any template error is: a marketer mends the text.
    assert account(world.engine, ids["A-1"]).next_contact_at == NOW + timedelta(hours=1)


def test_a_time_barred_debts_message_without_a_threat_is_queued_and_knows_it(
    world: World,
) -> None:
    """Templates see ``time_barred`` (a state's time-barred debt notice rests on it)."""
    templates = world.tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    sms = templates / "sms" / "overdue.firm.j2"
    sms.write_text(sms.read_text().replace(
        "Questions?", "{% if time_barred %}Notice: this debt is time-barred.{% endif %} "
        "Questions?", 1))  # fmt: skip
    published = sync_templates(world.engine, templates, load_company(templates), world.clock,
                               author="tests", publish=True)  # fmt: skip
    assert published.refused == []
    load_barred(
        world,
        row("A-1", time_barred_on="2026-11-02"),
        row("A-2", phone="(617) 555-0102", time_barred_on="2026-11-03"),
    )
    assert dict(world.planner().tick().outcomes) == {"queued": 2}
    barred, not_yet = rows_of(world.engine, attempts)
    assert "Notice: this debt is time-barred." in barred.body
    assert "time-barred" not in not_yet.body


def test_a_debt_is_time_barred_once_its_day_has_come_in_any_zone_the_debtor_may_be_in() -> None:
    """A Tennessean without a zone of their own may be in Central or Eastern time: at 00:30
    in New York (23:30 the day before in Chicago, the state's first zone, which dates
    their messages) the debt barred from that day is taken for barred. One known to live
    in Chicago is not, until Chicago's midnight."""
    rules = load_ruleset(None)
    at = datetime(2026, 11, 3, 5, 30, tzinfo=UTC)
    unknown = SimpleNamespace(time_barred_on=date(2026, 11, 3), timezone=None)
    assert local_day(unknown, rules, "US-TN", at) == date(2026, 11, 2)
    assert written_facts.time_barred(unknown, rules, "US-TN", at)
    chicago = SimpleNamespace(time_barred_on=date(2026, 11, 3), timezone="America/Chicago")
    assert not written_facts.time_barred(chicago, rules, "US-TN", at)
    assert written_facts.time_barred(chicago, rules, "US-TN", at + timedelta(hours=1))
    never = SimpleNamespace(time_barred_on=None, timezone=None)
    assert not written_facts.time_barred(never, rules, "US-TN", at)
