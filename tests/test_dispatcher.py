"""The dispatch stage against SQLite and PostgreSQL, on a fixed clock, with the outbox.

Attempts are planned by the real planner (see tests/test_planner.py for the accounts and
the instants: at ``NOW``, 10:00 in Boston, account A-1 is due a text on overdue-10d and an
account due on 2026-10-30 an email on overdue-3d). Failure modes come from small fake
providers that keep the provider contract: they answer a ``SendResult`` or raise the
``ChannelError`` a real adapter raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import threading
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.exc import OperationalError

from outreach import agent_actions, compliance_store, heap, replies, store
from outreach import dispatcher as dispatcher_module
from outreach.cadence import load_cadences
from outreach.channels import OutboxSimulation, RateLimit, RateLimits
from outreach.clock import FixedClock
from outreach.compliance.alike import AlikeDecisions
from outreach.compliance.engine import evaluate
from outreach.compliance.rules import RuleSet, load_ruleset
from outreach.compliance.scenario import parse_scenario
from outreach.compliance_store import attempts, decisions, inbox_messages, load_debtors
from outreach.dispatcher import MAX_TRIES, SEND_LEASE, Dispatcher, _note_address
from outreach.errors import ChannelError, WebhookRejected
from outreach.events import Incoming, apply_batch, apply_events
from outreach.housekeeping import housekeeping
from outreach.importing.account_rows import ImportDefaults
from outreach.leases import claim_queued_attempts, hold_sends, release_sends
from outreach.payments import record_payment
from outreach.providers.base import (
    Channel,
    EventType,
    OutboundMessage,
    Provider,
    ProviderEvent,
    SendResult,
    WebhookRequest,
)
from outreach.providers.outbox import Outbox
from outreach.ratelimit import RateLimiter
from outreach.store import cadence_steps
from outreach.written_facts import NOT_CONTACTED, OUT_OF_DATE
from tests.conftest import NOW
from tests.eventdata import PHONE, add_account, add_attempt, inbound
from tests.query_plans import statements_run
from tests.test_import_accounts import row
from tests.test_planner import (
    FULL,
    SHORT,
    SUIT_THREAT,
    WORKER,
    World,
    account,
    codes,
    earlier_message,
    event,
    load_barred,
    make_settings,
    place_with_collector,
    publish_templates,
    rows_of,
    set_account,
    suppress,
    texted,
    threaten_suit,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def world(engine: Engine, tmp_path: Path, clock: FixedClock, defaults: ImportDefaults) -> World:
    publish_templates(engine, clock)
    return World(engine, make_settings(engine, tmp_path), clock, tmp_path, defaults)


def planned(world: World, *rows: dict[str, str]) -> dict[str, int]:
    """Import and plan ``rows``; each is due one queued attempt. Account ids by reference."""
    ids = world.load(*rows)
    assert dict(world.planner().tick().outcomes) == {"queued": len(rows)}
    return ids


def outboxes(world: World, **simulations: OutboxSimulation) -> dict[str, Provider]:
    channels: tuple[Channel, ...] = ("sms", "email", "voice")
    return {
        channel: Outbox(world.settings, world.clock, channel, simulations.get(channel))
        for channel in channels
    }


def dispatcher(
    world: World,
    providers: dict[str, Provider] | None = None,
    limiter: RateLimiter | None = None,
    worker: str = WORKER,
) -> Dispatcher:
    return Dispatcher(
        world.engine,
        world.settings,
        world.clock,
        worker,
        providers if providers is not None else outboxes(world),
        limiter or RateLimiter({}),  # no limits unless the test is about them
    )


def outbox_lines(world: World) -> list[dict[str, Any]]:
    path = world.settings.outbox_path
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def the_attempt(world: World) -> Any:
    [only] = rows_of(world.engine, attempts)
    return only


def steps_taken(world: World, account_id: int) -> list[str]:
    """The cadence steps recorded as dealt with for the account."""
    return [s.step_key for s in rows_of(world.engine, cadence_steps,
                                        cadence_steps.c.account_id == account_id)]  # fmt: skip


def set_attempt(world: World, **values: Any) -> None:
    with world.engine.begin() as connection:
        connection.execute(update(attempts).values(**values))


class FakeProvider(Provider):
    """Answers each send with the next scripted outcome: an exception to raise, or None to
    take the message. Out of script, it takes every message."""

    name: ClassVar[str] = "fake"
    webhook_paths: ClassVar[dict[str, str]] = {}

    def __init__(self, channel: Channel, script: Sequence[BaseException | None] = ()) -> None:
        self.channel = channel
        self.script = list(script)
        self.sent: list[OutboundMessage] = []

    def sender(self, message: OutboundMessage) -> str:
        return f"fake-{message.channel}"

    async def send(self, message: OutboundMessage) -> SendResult:
        self.sent.append(message)
        outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise outcome
        return SendResult(self.name, f"FK{len(self.sent)}", EventType.QUEUED, self.sender(message))

    def verify(self, request: WebhookRequest) -> None:
        raise WebhookRejected("the fake provider takes no webhooks")

    def parse(self, request: WebhookRequest) -> list[ProviderEvent]:
        return []


class FailingProvider(FakeProvider):
    """Refuses every message with the same error."""

    def __init__(self, channel: Channel, error: BaseException) -> None:
        super().__init__(channel)
        self.error = error

    async def send(self, message: OutboundMessage) -> SendResult:
        self.sent.append(message)
        raise self.error


class HangingProvider(FakeProvider):
    """Takes the request and never answers: the process dies while it waits."""

    def __init__(self, channel: Channel) -> None:
        super().__init__(channel)
        self.started = asyncio.Event()

    async def send(self, message: OutboundMessage) -> SendResult:
        self.sent.append(message)
        self.started.set()
        await asyncio.Event().wait()
        raise AssertionError("never answered")


def fake_sms(world: World, provider: FakeProvider) -> dict[str, Provider]:
    return {**outboxes(world), "sms": provider}


class FakeTime:
    """The rate limiter's clock: waits are counted, never slept."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await asyncio.sleep(0)  # the other sends run meanwhile, as with a real sleep


def sms_limiter(time: FakeTime, per_second: float) -> RateLimiter:
    limits = RateLimits(default=RateLimit(per_second=per_second, burst=1))
    return RateLimiter({"sms": limits}, monotonic=time.monotonic, sleep=time.sleep)


# --- sending once ------------------------------------------------------------------------


async def test_queued_attempts_are_sent_once(world: World) -> None:
    ids = planned(world, row("A-1"), row("A-2", due_date="2026-10-30"))
    send = dispatcher(world)
    report = await send.tick()
    assert (report.claimed, dict(report.outcomes)) == (2, {"sent": 2})

    lines = {line["idempotency_key"]: line for line in outbox_lines(world)}
    assert set(lines) == {f"{ids['A-1']}:overdue-10d:sms", f"{ids['A-2']}:overdue-3d:email"}
    for attempt in rows_of(world.engine, attempts):
        line = lines[attempt.idempotency_key]
        assert (attempt.status, attempt.provider, attempt.sent_at) == ("sent", "outbox", NOW)
        assert attempt.provider_message_id == line["message_id"]
        assert (line["attempt_id"], line["to"], line["body"]) == (
            attempt.id, attempt.to_address, attempt.body,
        )  # fmt: skip
        assert (attempt.tries, attempt.acquired_by, attempt.acquired_until) == (1, None, None)
        assert (attempt.error_code, attempt.error_message) == (None, None)
    checked = rows_of(world.engine, decisions, decisions.c.stage == "dispatch")
    assert sorted((d.attempt_id, d.verdict) for d in checked) == [
        (a.id, "allow") for a in rows_of(world.engine, attempts)
    ]

    assert (await send.tick()).claimed == 0
    world.clock.advance(timedelta(days=1))
    assert (await dispatcher(world, worker="worker-2").tick()).claimed == 0
    assert len(outbox_lines(world)) == 2


async def test_debtors_alike_share_the_send_time_answer_and_each_keeps_their_own(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alike debtors in one batch share the engine's answer at the send-time check; each
    stored decision is still exactly what the engine says of that debtor alone."""
    planned(world, *(row(f"A-{i}", phone=f"+1617555{i:04d}") for i in range(6)))
    world.clock.advance(timedelta(minutes=1))
    suppress(world.engine, "sms", "+16175550003", "stop", NOW + timedelta(seconds=30))
    made: list[AlikeDecisions] = []

    class Recorded(AlikeDecisions):
        def __init__(self, ruleset: RuleSet) -> None:
            super().__init__(ruleset)
            made.append(self)

    monkeypatch.setattr(dispatcher_module, "AlikeDecisions", Recorded)
    report = await dispatcher(world).tick()
    assert dict(report.outcomes) == {"sent": 5, "blocked": 1}
    assert sum(decide.shared for decide in made) >= 4  # the allowed ones, after the first
    rules = load_ruleset(world.settings.compliance_rules_file)
    checked = rows_of(world.engine, decisions, decisions.c.stage == "dispatch")
    by_attempt = {a.id: a for a in rows_of(world.engine, attempts)}
    assert sorted(d.attempt_id for d in checked) == sorted(by_attempt)
    for decision in checked:
        asked = parse_scenario(decision.input_snapshot).situation()
        answer = evaluate(asked, rules)
        assert decision.address == asked.contact.to == by_attempt[decision.attempt_id].to_address
        assert (decision.verdict, decision.not_before, decision.reasons) == (
            answer.verdict, answer.not_before, [reason.as_json() for reason in answer.reasons],
        )  # fmt: skip
    blocked = [d for d in checked if d.verdict == "block"]
    assert [d.address for d in blocked] == ["+16175550003"]


class CallbackThenTimeout(FakeProvider):
    """Creates the message, whose status callback is stored at once, then never answers
    the request in time."""

    def __init__(self, world: World, sid: str) -> None:
        super().__init__("sms")
        self.world, self.sid = world, sid

    async def send(self, message: OutboundMessage) -> SendResult:
        self.sent.append(message)
        now = self.world.clock.now()
        callback = ProviderEvent(
            provider="twilio_sms", kind="message_status", event_type=EventType.SENT,
            dedupe_key=f"twilio_sms:status:{self.sid}:sent", occurred_at=now,
            payload={"MessageSid": self.sid, "MessageStatus": "sent"},
            provider_message_id=self.sid, attempt_id=message.attempt_id, to_address=message.to,
            raw_status="sent",
        )  # fmt: skip
        apply_events(self.world.engine, [callback], now)
        raise ChannelError("no answer (ReadTimeout)", provider="twilio_sms", ambiguous=True)


async def test_a_send_without_an_answer_keeps_what_its_callback_said(world: World) -> None:
    """The provider's callback came before the answer that never came: its word (sent)
    and its message id stay, for the operator to reconcile with."""
    planned(world, row("A-1"))
    sid = "SM" + "b" * 32
    await dispatcher(world, fake_sms(world, CallbackThenTimeout(world, sid))).tick()
    attempt = the_attempt(world)
    assert (attempt.status, attempt.provider_message_id) == ("sent", sid)


async def test_outbox_events_mark_delivery_and_bring_replies_to_the_inbox(world: World) -> None:
    ids = planned(world, row("A-1"), row("A-2", due_date="2026-10-30"))
    providers = outboxes(
        world,
        sms=OutboxSimulation(delivery_delay_seconds=5, reply_rate=0),
        email=OutboxSimulation(delivery_delay_seconds=5, reply_rate=1),
    )
    await dispatcher(world, providers).tick()

    def due(at: datetime) -> list[ProviderEvent]:
        return [e for p in providers.values() if isinstance(p, Outbox) for e in p.due_events(at)]

    delivered_at = NOW + timedelta(seconds=5)
    events = due(delivered_at)
    assert sorted(e.event_type for e in events) == ["delivered", "delivered", "sent", "sent"]
    assert apply_events(world.engine, events, delivered_at).stored == 4
    assert {a.status for a in rows_of(world.engine, attempts)} == {"delivered"}
    assert rows_of(world.engine, inbox_messages) == []
    # The same events again (a provider retrying its webhook) change nothing.
    assert apply_events(world.engine, events, delivered_at).duplicates == 4

    replied_at = NOW + timedelta(seconds=15)  # three delivery delays after sending
    [reply] = due(replied_at)
    assert (reply.event_type, reply.from_address) == ("replied", "a-2@example.com")
    apply_events(world.engine, [reply], replied_at)
    [message] = rows_of(world.engine, inbox_messages)
    assert (message.account_id, message.channel, message.direction, message.status) == (
        ids["A-2"], "email", "inbound", "open",
    )  # fmt: skip
    assert (message.from_address, message.body) == ("a-2@example.com", reply.body)
    assert account(world.engine, ids["A-2"]).paused_until == replied_at + timedelta(days=14)
    assert account(world.engine, ids["A-1"]).paused_until is None


# --- compliance again at the moment of sending -------------------------------------------


@pytest.mark.parametrize("how", ["suppression", "opt_out_event"])
async def test_a_stop_after_planning_cancels_the_attempt(world: World, how: str) -> None:
    ids = planned(world, row("A-1"))
    world.clock.advance(timedelta(minutes=1))
    stopped_at = NOW + timedelta(seconds=30)
    if how == "suppression":
        suppress(world.engine, "sms", "+16175550101", "stop", stopped_at)
    else:
        event(world.engine, ids["A-1"], "opt_out", stopped_at, channel="sms",
              address="+16175550101")  # fmt: skip
    report = await dispatcher(world).tick()

    assert dict(report.outcomes) == {"blocked": 1}
    attempt = the_attempt(world)
    assert (attempt.status, attempt.error_message, attempt.tries) == (
        "cancelled", "CARRIER_STOP_KEYWORD", 0,
    )  # fmt: skip
    assert (attempt.acquired_by, attempt.sent_at) == (None, None)
    assert outbox_lines(world) == []
    [decision] = rows_of(world.engine, decisions, decisions.c.stage == "dispatch")
    assert (decision.attempt_id, decision.verdict, codes(decision)) == (
        attempt.id, "block", ["CARRIER_STOP_KEYWORD"],
    )  # fmt: skip
    assert decision.decided_at == NOW + timedelta(minutes=1)


# One person with accounts in Boston and Los Angeles (a phone and a mailbox shared), at 08:05
# in Boston, 05:05 in Los Angeles: neither is contacted until 08:00 in Los Angeles.
BOTH_AWAKE = datetime(2026, 11, 2, 16, 0, tzinfo=UTC)
BOSTON_EARLY = datetime(2026, 11, 2, 13, 5, tzinfo=UTC)
BOSTON = row("MA-1", email="pat@example.com")
LOS_ANGELES = row("CA-1", jurisdiction="US-CA", timezone="America/Los_Angeles",
                  email="pat@example.com")  # fmt: skip


def weighed_zones(decision: Any) -> list[str]:
    return list(decision.input_snapshot["debtor"]["other_timezones"])


async def test_the_planner_weighs_where_the_persons_other_accounts_say_they_live(
    world: World,
) -> None:
    world.clock.set(BOSTON_EARLY)
    ids = world.load(BOSTON, LOS_ANGELES)
    assert dict(world.planner().tick().outcomes) == {"deferred": 2}
    assert rows_of(world.engine, attempts) == []
    [boston] = rows_of(world.engine, decisions, decisions.c.account_id == ids["MA-1"])
    assert (boston.verdict, boston.not_before) == ("defer", BOTH_AWAKE)
    assert weighed_zones(boston) == ["America/Los_Angeles"]


async def test_the_send_time_check_weighs_where_the_persons_other_accounts_say_they_live(
    world: World,
) -> None:
    """MA-1's text was queued before CA-1 was imported: the check before sending finds the
    person in Los Angeles too, and the text waits."""
    world.clock.set(BOSTON_EARLY)
    planned(world, BOSTON)
    world.load(LOS_ANGELES)
    provider = FakeProvider("sms")
    assert dict((await dispatcher(world, fake_sms(world, provider)).tick()).outcomes) == {
        "deferred": 1
    }
    assert provider.sent == []
    attempt = the_attempt(world)
    assert (attempt.status, attempt.next_try_at) == ("queued", BOTH_AWAKE)
    [decision] = rows_of(world.engine, decisions, decisions.c.stage == "dispatch")
    assert (decision.verdict, decision.not_before) == ("defer", BOTH_AWAKE)
    assert weighed_zones(decision) == ["America/Los_Angeles"]


async def test_a_window_closing_before_sending_defers_the_attempt(world: World) -> None:
    planned(world, row("A-1"))
    late = datetime(2026, 11, 3, 2, 30, tzinfo=UTC)  # 21:30 on 2026-11-02 in Boston
    opens = datetime(2026, 11, 3, 13, 0, tzinfo=UTC)  # 08:00 on 2026-11-03 in Boston
    world.clock.set(late)
    send = dispatcher(world)
    assert dict((await send.tick()).outcomes) == {"deferred": 1}
    attempt = the_attempt(world)
    assert (attempt.status, attempt.next_try_at, attempt.tries) == ("queued", opens, 0)
    assert attempt.acquired_by is None
    [decision] = rows_of(world.engine, decisions, decisions.c.stage == "dispatch")
    assert (decision.verdict, decision.not_before, codes(decision)) == ("defer", opens,
                                                                        ["MA_HOURS"])  # fmt: skip
    assert outbox_lines(world) == []

    world.clock.set(opens - timedelta(seconds=1))
    assert (await send.tick()).claimed == 0
    world.clock.set(opens)
    # Written yesterday, it would say "N days past due" a day short: written afresh.
    assert dict((await send.tick()).outcomes) == {"cancelled": 1}
    assert dict(world.planner().tick().outcomes) == {"queued": 1}
    assert dict((await send.tick()).outcomes) == {"sent": 1}
    [sent] = rows_of(world.engine, attempts, attempts.c.status == "sent")
    assert (sent.sent_at, sent.created_at) == (opens, opens)


def test_a_message_checked_again_at_its_latest_instant_is_out_of_date_past_midnight(
    world: World,
) -> None:
    """The check at the latest instant a message may leave (its rate-limit wait and the
    grace) says what a check at that instant says: up to date until the debtor's midnight,
    out of date ("N days past due" a day short) from it, without going through the digest
    again while the day is the same."""
    ids = planned(world, row("A-1"))
    send = dispatcher(world)
    attempt = the_attempt(world)
    boston = ZoneInfo("America/New_York")
    day = NOW.astimezone(boston).date() + timedelta(days=1)
    midnight = datetime(day.year, day.month, day.day, tzinfo=boston)
    checked = midnight - timedelta(seconds=5)
    with world.engine.connect() as connection:
        accounts, records, _, reached = send._debtors(connection, {ids["A-1"]}, checked)
    account, record = accounts[ids["A-1"]], records[ids["A-1"]]
    assert send._out_of_date(account, record, attempt, checked, reached) is None
    for seconds, expected in ((0, None), (4, None), (5, OUT_OF_DATE), (25, OUT_OF_DATE)):
        at = checked + timedelta(seconds=seconds)
        assert send._out_of_date(account, record, attempt, at, reached) == expected
        later = send._out_of_date_later(account, record, attempt, checked, at, reached)
        assert later == expected, seconds


async def test_a_message_whose_balance_changed_since_planning_is_written_afresh(
    world: World,
) -> None:
    """A partial payment between planning and sending: the queued text states the old
    balance, so it is not sent; its step goes back and is written with the new one."""
    ids = planned(world, row("A-1"))
    old = the_attempt(world)
    assert "$120.50" in old.body
    assert record_payment(world.engine, world.clock, "A-1", "20.00")[0]
    assert dict((await dispatcher(world).tick()).outcomes) == {"cancelled": 1}
    cancelled = the_attempt(world)
    assert (cancelled.id, cancelled.status) == (old.id, "cancelled")
    assert cancelled.error_message == OUT_OF_DATE
    assert outbox_lines(world) == []
    assert dict(world.planner().tick().outcomes) == {"queued": 1}
    [fresh] = rows_of(world.engine, attempts, attempts.c.status == "queued")
    assert (fresh.step_key, fresh.idempotency_key) == (old.step_key, old.idempotency_key)
    assert "$100.50" in fresh.body and "$120.50" not in fresh.body
    assert dict((await dispatcher(world).tick()).outcomes) == {"sent": 1}
    [line] = outbox_lines(world)
    assert "$100.50" in line["body"]
    assert old.step_key in steps_taken(world, ids["A-1"])


def settle_earlier(world: World, status: str, outcome: str | None) -> None:
    with world.engine.begin() as connection:
        connection.execute(
            update(attempts)
            .where(attempts.c.step_key == "manual")
            .values(status=status, outcome=outcome)
        )


async def test_a_text_written_as_a_later_one_waits_for_an_earlier_that_reached_the_debtor(
    world: World,
) -> None:
    """Written with the short disclosure after a text the provider had taken, which then
    came back undelivered: nothing has reached the debtor, so it would be the first
    communication without the whole disclosure. It is written afresh as the first."""
    ids = world.load(row("A-1"))
    set_account(world.engine, ids["A-1"], collector_type="third_party")
    earlier_message(world.engine, ids["A-1"], "sms", "sent")
    assert dict(world.planner().tick().outcomes) == {"queued": 1}
    later = rows_of(world.engine, attempts, attempts.c.status == "queued")[0]
    assert SHORT in later.body and FULL not in later.body
    settle_earlier(world, "undelivered", "failed")
    assert dict((await dispatcher(world).tick()).outcomes) == {"cancelled": 1}
    [cancelled] = rows_of(world.engine, attempts, attempts.c.id == later.id)
    assert (cancelled.status, cancelled.error_message) == ("cancelled", NOT_CONTACTED)
    assert outbox_lines(world) == []
    assert dict(world.planner().tick().outcomes) == {"queued": 1}
    [fresh] = rows_of(world.engine, attempts, attempts.c.status == "queued")
    assert fresh.step_key == later.step_key and FULL in fresh.body
    assert dict((await dispatcher(world).tick()).outcomes) == {"sent": 1}
    [line] = outbox_lines(world)
    assert FULL in line["body"] and SHORT not in line["body"]


async def test_a_creditors_text_queued_before_it_placed_the_debt_goes_as_the_collectors_first(
    world: World,
) -> None:
    """The creditor had texted the debtor, and its next text was queued when it placed the
    debt with a debt collector: the queued text is the creditor's (its collector type is
    among the facts it was written from), so it is not sent; written afresh, it is the
    collector's first communication, with the whole disclosure."""
    ids = world.load(row("A-1"))  # the creditor's
    earlier_message(world.engine, ids["A-1"], "sms", "delivered", "delivered")
    assert dict(world.planner().tick().outcomes) == {"queued": 1}
    creditors = rows_of(world.engine, attempts, attempts.c.status == "queued")[0]
    assert FULL not in creditors.body and SHORT not in creditors.body
    place_with_collector(world, "A-1")
    assert dict((await dispatcher(world).tick()).outcomes) == {"cancelled": 1}
    [cancelled] = rows_of(world.engine, attempts, attempts.c.id == creditors.id)
    assert (cancelled.status, cancelled.error_message) == ("cancelled", OUT_OF_DATE)
    assert dict(world.planner().tick().outcomes) == {"queued": 1}
    [fresh] = rows_of(world.engine, attempts, attempts.c.status == "queued")
    assert fresh.step_key == creditors.step_key and FULL in fresh.body
    assert dict((await dispatcher(world).tick()).outcomes) == {"sent": 1}
    [line] = outbox_lines(world)
    assert FULL in line["body"] and SHORT not in line["body"]


async def test_a_creditors_text_written_as_a_later_one_goes_as_written(world: World) -> None:
    """A creditor's own text carries no disclosure, first or later: the same words either
    way, so nothing is cancelled and written again."""
    ids = world.load(row("A-1"))  # first party
    earlier_message(world.engine, ids["A-1"], "sms", "sent")
    assert dict(world.planner().tick().outcomes) == {"queued": 1}
    later = rows_of(world.engine, attempts, attempts.c.status == "queued")[0]
    settle_earlier(world, "undelivered", "failed")
    assert dict((await dispatcher(world).tick()).outcomes) == {"sent": 1}
    [line] = outbox_lines(world)
    assert line["body"] == later.body


async def test_a_text_written_as_the_first_is_sent_after_an_earlier_one_reached_the_debtor(
    world: World,
) -> None:
    """Its whole disclosure says all a later text must: it goes as written."""
    ids = world.load(row("A-1"))
    set_account(world.engine, ids["A-1"], collector_type="third_party")
    earlier_message(world.engine, ids["A-1"], "sms", "unknown")
    assert dict(world.planner().tick().outcomes) == {"queued": 1}
    first = rows_of(world.engine, attempts, attempts.c.status == "queued")[0]
    assert FULL in first.body
    settle_earlier(world, "delivered", "delivered")
    assert dict((await dispatcher(world).tick()).outcomes) == {"sent": 1}
    [line] = outbox_lines(world)
    assert line["body"] == first.body


async def test_a_message_whose_facts_still_hold_is_sent_as_written(world: World) -> None:
    """What the message does not state (a pause that has ended, the time of day, another
    column) changes nothing: it goes as planned."""
    planned(world, row("A-1"))
    with world.engine.begin() as connection:
        connection.execute(update(store.accounts).values(pause_reason="checked", updated_at=NOW))
    world.clock.set(NOW + timedelta(hours=1))
    assert dict((await dispatcher(world).tick()).outcomes) == {"sent": 1}


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ("paid", "account paid"),
        ("paused", "account paused"),
        ("promise", "a promise to pay is pending"),
    ],
)
async def test_a_paid_paused_or_promising_account_cancels_the_attempt(
    world: World, change: str, why: str
) -> None:
    ids = planned(world, row("A-1"))
    if change == "paid":
        assert record_payment(world.engine, world.clock, "A-1", "120.50")[2] == "paid"
    elif change == "paused":
        set_account(world.engine, ids["A-1"], paused_until=NOW + timedelta(days=14))
    else:  # an agent records a promise after the message was planned
        with world.engine.begin() as connection:
            promising = agent_actions.account_by_reference(connection, "A-1")
            agent_actions.promise(connection, promising, 5000, date(2026, 11, 6), "ana", NOW)
    step = the_attempt(world).step_key
    assert dict((await dispatcher(world).tick()).outcomes) == {"cancelled": 1}
    attempt = the_attempt(world)
    assert (attempt.status, attempt.error_message, attempt.acquired_by) == ("cancelled", why,
                                                                          None)  # fmt: skip
    assert outbox_lines(world) == []
    # Never sent, so never dealt with: the step goes back to the cadence, its key freed.
    assert step not in steps_taken(world, ids["A-1"])
    assert attempt.idempotency_key == f"{ids['A-1']}:{step}:sms:withdrawn:{attempt.id}"
    # An active account is looked at again (a paused one once its pause ends).
    looked_at = None if change == "paid" else NOW
    assert account(world.engine, ids["A-1"]).next_contact_at == looked_at


@pytest.mark.parametrize(("reference", "channel", "status"), [
    ("A-1", "sms", "wrong_number"),  # someone else answers there: a text would disclose the debt
    ("A-2", "email", "invalid"),  # an earlier email to it bounced
])  # fmt: skip
async def test_an_address_no_longer_usable_cancels_the_attempt(
    world: World, reference: str, channel: str, status: str
) -> None:
    # Consent to calls too: the number keeps its consent through the voice point.
    ids = planned(world, row("A-1", voice_consent="true"), row("A-2", due_date="2026-10-30"))
    with world.engine.begin() as connection:
        connection.execute(
            update(store.contact_points)
            .where(
                store.contact_points.c.account_id == ids[reference],
                store.contact_points.c.channel == channel,
            )
            .values(status=status)
        )
    report = await dispatcher(world).tick()

    assert dict(report.outcomes) == {"cancelled": 1, "sent": 1}
    [cancelled] = rows_of(world.engine, attempts, attempts.c.account_id == ids[reference])
    assert (cancelled.channel, cancelled.status, cancelled.tries) == (channel, "cancelled", 0)
    assert cancelled.error_message == f"{channel} address no longer in use"
    assert [line["channel"] for line in outbox_lines(world)] == [
        "email" if channel == "sms" else "sms"
    ]


# --- when the provider does not take it --------------------------------------------------


async def test_a_retryable_refusal_is_retried_with_backoff(world: World) -> None:
    planned(world, row("A-1"))
    provider = FakeProvider("sms", [
        ChannelError("too many requests", provider="fake", retryable=True, status_code=429),
        ChannelError("service unavailable", provider="fake", retryable=True, status_code=503),
    ])  # fmt: skip
    send = dispatcher(world, fake_sms(world, provider))

    assert dict((await send.tick()).outcomes) == {"retry": 1}
    attempt = the_attempt(world)
    # Throttling and unavailability are not refusals of the message: no try is used up.
    assert (attempt.status, attempt.tries, attempt.next_try_at) == (
        "queued", 0, NOW + timedelta(seconds=30),
    )  # fmt: skip
    assert (attempt.error_code, attempt.error_message) == ("429", "too many requests")
    assert attempt.acquired_by is None

    world.clock.set(NOW + timedelta(seconds=29))
    assert (await send.tick()).claimed == 0
    world.clock.set(NOW + timedelta(seconds=30))
    assert dict((await send.tick()).outcomes) == {"retry": 1}
    attempt = the_attempt(world)
    assert (attempt.tries, attempt.next_try_at, attempt.error_code) == (
        0, NOW + timedelta(seconds=90), "503",
    )  # fmt: skip

    world.clock.set(NOW + timedelta(seconds=90))
    assert dict((await send.tick()).outcomes) == {"sent": 1}
    attempt = the_attempt(world)
    assert (attempt.status, attempt.tries, attempt.provider_message_id) == ("sent", 1, "FK3")
    assert (attempt.error_code, attempt.error_message) == (None, None)
    assert [m.idempotency_key for m in provider.sent] == [attempt.idempotency_key] * 3


async def test_a_provider_that_cannot_be_reached_is_told_in_the_log_now_and_then(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    planned(world, row("A-1"))
    refused = ChannelError("the request never reached the provider (ConnectError)",
                           provider="fake", retryable=True, code="ConnectError")  # fmt: skip
    send = dispatcher(world, fake_sms(world, FailingProvider("sms", refused)))
    with caplog.at_level(logging.WARNING, logger="outreach.dispatcher"):
        assert dict((await send.tick()).outcomes) == {"retry": 1}
        world.clock.set(the_attempt(world).next_try_at)
        assert dict((await send.tick()).outcomes) == {"retry": 1}
    told = [r.getMessage() for r in caplog.records if "could not be reached" in r.getMessage()]
    # Once, not at every tick: it lasts, and the next word comes ten minutes later.
    assert told == [
        "dispatch: fake could not be reached or asked us to wait (the request never reached "
        "the provider (ConnectError)); 1 message(s) wait and are tried again after 30 s, then "
        "longer, at most hourly"
    ]
    assert the_attempt(world).tries == 0


def unavailable() -> ChannelError:
    return ChannelError("service unavailable", provider="fake", retryable=True, status_code=503)


async def test_an_outage_backs_off_longer_each_time_through_looks_that_are_not_tries(
    world: World,
) -> None:
    planned(world, row("A-1"))
    time = FakeTime()
    stopping: list[Dispatcher] = []

    async def sleep(seconds: float) -> None:  # a SIGTERM comes while the text waits
        for which in stopping:
            which.request_stop()
        await time.sleep(seconds)

    limits = RateLimits(default=RateLimit(per_second=1, burst=1))
    limiter = RateLimiter({"sms": limits}, monotonic=time.monotonic, sleep=sleep)
    provider = FakeProvider("sms", [unavailable()] * 4)
    send = dispatcher(world, fake_sms(world, provider), limiter)
    waits: list[float] = []

    async def look(outcome: str, by: Dispatcher = send) -> None:
        assert dict((await by.tick()).outcomes) == {outcome: 1}
        wait = the_attempt(world).next_try_at - world.clock.now()
        waits.append(wait.total_seconds())
        world.clock.advance(wait)
        time.now += 60  # the sender's rate comes back meanwhile

    await look("retry")
    await look("retry")
    limiter.reserve_many([("sms", "fake-sms")] * 30)  # a backlog spent the sender's rate
    await look("rate_limited")
    await look("retry")
    limiter.reserve_many([("sms", "fake-sms")])  # the text waits a second for its slot...
    stopping.append(dispatcher(world, fake_sms(world, provider), limiter))
    await look("requeued", stopping[0])  # ... and a stop puts it back unsent
    await look("retry")
    # Neither the rate spent nor the stop was a try: the outage's waits go on doubling.
    assert waits == [30, 60, 10, 120, 0, 240]
    attempt = the_attempt(world)
    assert (attempt.status, attempt.tries, attempt.outages) == ("queued", 0, 4)
    assert dict((await send.tick()).outcomes) == {"sent": 1}
    attempt = the_attempt(world)
    assert (attempt.status, attempt.tries, attempt.outages) == ("sent", 1, 0)
    assert len(provider.sent) == 5


async def test_a_long_outage_is_tried_hourly_and_a_try_starts_its_backoff_again(
    world: World,
) -> None:
    planned(world, row("A-1"))
    refused = ChannelError("queue full", provider="fake", retryable=True, status_code=400,
                           code="21611")  # fmt: skip
    provider = FakeProvider("sms", [*[unavailable()] * 9, refused, unavailable()])
    send = dispatcher(world, fake_sms(world, provider))
    waits = []
    for _ in range(11):
        assert dict((await send.tick()).outcomes) == {"retry": 1}
        next_try_at = the_attempt(world).next_try_at
        waits.append((next_try_at - world.clock.now()).total_seconds())
        world.clock.set(next_try_at)
    # The refusal of the message itself was a try (its own backoff): the outage after it
    # is waited out from 30 s again.
    assert waits == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 30, 30]
    attempt = the_attempt(world)
    assert (attempt.tries, attempt.outages, attempt.error_code) == (1, 1, "503")


@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [(300.0, 300), (5.0, 30), (86_400.0 * 3, 86_400), (99_999_999_999_999.0, 86_400),
     (float("inf"), 86_400)],
)  # fmt: skip
async def test_the_providers_retry_after_is_honoured(
    world: World, retry_after: float, wait: int
) -> None:
    planned(world, row("A-1"))
    error = ChannelError("slow down", provider="fake", retryable=True, retry_after=retry_after)
    await dispatcher(world, fake_sms(world, FakeProvider("sms", [error]))).tick()
    assert the_attempt(world).next_try_at == NOW + timedelta(seconds=wait)


async def test_a_message_refused_every_time_fails_after_max_tries(world: World) -> None:
    planned(world, row("A-1"))
    # A refusal of this message that may pass (Twilio's 21611, its queue for the number is
    # full), unlike an outage, counts as a try.
    provider = FailingProvider(
        "sms",
        ChannelError("queue full", provider="fake", retryable=True, status_code=400, code="21611"),
    )
    send = dispatcher(world, fake_sms(world, provider))
    waits = []
    for _ in range(MAX_TRIES - 1):
        assert dict((await send.tick()).outcomes) == {"retry": 1}
        next_try_at = the_attempt(world).next_try_at
        waits.append((next_try_at - world.clock.now()).total_seconds())
        world.clock.set(next_try_at)
    assert waits == [30, 60, 120, 240, 480, 960, 1920]
    assert dict((await send.tick()).outcomes) == {"failed": 1}
    attempt = the_attempt(world)
    assert (attempt.status, attempt.tries, attempt.error_code) == ("failed", 8, "21611")
    world.clock.advance(timedelta(days=1))
    assert (await send.tick()).claimed == 0
    assert len(provider.sent) == MAX_TRIES == 8


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (ChannelError("read timeout", provider="fake", ambiguous=True), "read timeout"),
        (RuntimeError("connection reset"), "unexpected RuntimeError while sending"),
    ],
)
async def test_a_send_that_may_have_gone_is_held_as_unknown_and_never_resent(
    world: World, error: BaseException, message: str
) -> None:
    planned(world, row("A-1"))
    provider = FailingProvider("sms", error)
    send = dispatcher(world, fake_sms(world, provider))
    assert dict((await send.tick()).outcomes) == {"unknown": 1}
    attempt = the_attempt(world)
    assert (attempt.status, attempt.tries, attempt.error_message) == ("unknown", 1, message)
    assert (attempt.acquired_by, attempt.sent_at) == (None, None)
    assert attempt.provider == "fake"  # the review page names whose console to search

    world.clock.advance(timedelta(days=1))
    assert housekeeping(world.engine, world.clock.now(), "worker-2").lost_sends == 0
    assert (await send.tick()).claimed == 0
    assert (await dispatcher(world, worker="worker-2").tick()).claimed == 0
    assert len(provider.sent) == 1
    assert the_attempt(world).status == "unknown"


@pytest.mark.parametrize("says", ["opted_out", "cannot_receive", "nothing"])
async def test_a_final_refusal_fails_the_attempt_and_notes_the_address(
    world: World, says: str
) -> None:
    # B-1 shares A-1's number and is looked at an hour later.
    ids = world.load(row("A-1"), row("B-1"))
    set_account(world.engine, ids["B-1"], next_contact_at=NOW + timedelta(hours=1))
    assert dict(world.planner().tick().outcomes) == {"queued": 1}
    error = {
        "opted_out": ChannelError("the recipient opted out", provider="fake", code="21610",
                                  status_code=400, suppression="stop"),
        "cannot_receive": ChannelError("not a mobile number", provider="fake", code="21614",
                                       status_code=400, contact_status="invalid"),
        "nothing": ChannelError("message body is invalid", provider="fake", code="21602",
                                status_code=400),
    }[says]  # fmt: skip
    with statements_run(world.engine) as seen:
        await dispatcher(world, fake_sms(world, FailingProvider("sms", error))).tick()
    if says == "cannot_receive" and world.engine.dialect.name == "postgresql":
        # The account is locked before its number is marked, as an import locks them (the
        # other order would wait in a circle with an import of the account).
        statements = [statement for statement, _ in seen]
        locked = [i for i, s in enumerate(statements)
                  if "FROM account " in s and "FOR NO KEY UPDATE" in s]  # fmt: skip
        marked = [i for i, s in enumerate(statements) if s.startswith("UPDATE contact_point")]
        assert locked and marked and locked[0] < marked[0], statements

    attempt = the_attempt(world)
    assert (attempt.status, attempt.tries, attempt.error_code) == ("failed", 1, error.code)
    assert attempt.error_message == str(error)
    suppressions = rows_of(world.engine, store.suppressions)
    points = {
        p.channel: p.status
        for p in rows_of(
            world.engine, store.contact_points, store.contact_points.c.account_id == ids["A-1"]
        )
    }
    opt_outs = [
        (e.account_id, e.channel, e.address, e.source)
        for e in rows_of(world.engine, store.compliance_events)
        if e.kind == "opt_out"
    ]
    if says == "opted_out":
        [noted] = suppressions
        assert (noted.channel, noted.address, noted.reason) == ("sms", "+16175550101", "stop")
        assert noted.source == f"fake refused attempt {attempt.id} (21610)"
        # Every account with the number shows the debtor's opt-out, as a status callback's
        # 21610 would record it.
        assert sorted(opt_outs) == [
            (ids[reference], "sms", "+16175550101", noted.source) for reference in ("A-1", "B-1")
        ]
    else:
        assert (suppressions, opt_outs) == ([], [])
    assert points == {
        "sms": "invalid" if says == "cannot_receive" else "active",
        "voice": "active",
        "email": "active",
    }
    if says == "cannot_receive":
        # The point is A-1's own: planning no longer sees the number on sms.
        with world.engine.connect() as connection:
            [record] = load_debtors(
                connection, [account(world.engine, ids["A-1"])], NOW, 30, "US", rules=load_ruleset()
            ).values()
        assert (record.addresses("sms"), len(record.addresses("voice"))) == ([], 1)
        return
    # An opt-out covers the number on every account: B-1's text falls back to email.
    world.clock.set(NOW + timedelta(hours=1))
    assert dict(world.planner().tick().outcomes) == {"queued": 1}
    [planned_for_b] = rows_of(world.engine, attempts, attempts.c.account_id == ids["B-1"])
    assert planned_for_b.channel == ("email" if says == "opted_out" else "sms")


# --- leases, crashes, rate limits and stopping --------------------------------------------


async def test_a_lease_on_an_attempt_is_respected_until_it_runs_out(world: World) -> None:
    planned(world, row("A-1"))
    lease = timedelta(minutes=5)
    with world.engine.begin() as connection:
        [taken] = claim_queued_attempts(connection, "worker-2", NOW, NOW + lease, 10)
    assert taken.acquired_by == "worker-2"
    send = dispatcher(world)
    world.clock.set(NOW + lease)
    assert (await send.tick()).claimed == 0
    world.clock.set(NOW + lease + timedelta(seconds=1))
    assert dict((await send.tick()).outcomes) == {"sent": 1}
    assert len(outbox_lines(world)) == 1


async def test_a_send_lost_in_a_crash_becomes_unknown_and_is_never_resent(world: World) -> None:
    planned(world, row("A-1"))
    provider = HangingProvider("sms")
    tick = asyncio.create_task(dispatcher(world, fake_sms(world, provider)).tick())
    await provider.started.wait()
    after = NOW + SEND_LEASE + timedelta(seconds=1)
    # A worker's own send in flight is never lost, whatever its lease says.
    assert housekeeping(world.engine, after, WORKER).lost_sends == 0
    tick.cancel()  # the process dies while the provider has the request
    with pytest.raises(asyncio.CancelledError):
        await tick

    lost = the_attempt(world)
    assert (lost.status, lost.tries, lost.acquired_by) == ("sending", 1, WORKER)
    assert lost.acquired_until == NOW + SEND_LEASE
    # Not before the send's lease ends.
    assert housekeeping(world.engine, NOW + timedelta(minutes=1), "worker-2").lost_sends == 0
    assert housekeeping(world.engine, NOW + timedelta(minutes=1), WORKER).lost_sends == 0
    assert the_attempt(world).status == "sending"
    # Nor a send a live dispatch process reported in flight; a dead one's is held, as is one
    # held by no one.
    helper = f"{WORKER}/dispatch4242"
    set_attempt(world, acquired_by=helper)
    hold_sends(helper, [lost.id])
    assert housekeeping(world.engine, after, WORKER, helpers=[helper]).lost_sends == 0
    release_sends(helper, [lost.id])
    assert housekeeping(world.engine, after, WORKER).lost_sends == 1
    set_attempt(world, status="sending", acquired_by=None, acquired_until=NOW + SEND_LEASE)
    assert housekeeping(world.engine, after, WORKER, helpers=[helper]).lost_sends == 1
    set_attempt(world, status="sending", acquired_by=WORKER, acquired_until=NOW + SEND_LEASE)

    assert housekeeping(world.engine, after, "worker-2").lost_sends == 1
    held = the_attempt(world)
    assert (held.status, held.acquired_by, held.acquired_until) == ("unknown", None, None)
    assert "held for review" in (held.error_message or "")
    assert held.provider == "fake"  # named from the moment it was marked sending
    world.clock.set(after)
    assert (await dispatcher(world, worker="worker-2").tick()).claimed == 0
    assert outbox_lines(world) == []
    assert len(provider.sent) == 1


async def test_a_send_lost_hours_after_planning_counts_from_when_it_left(
    world: World,
) -> None:
    """Planned at ten, held back by an outage until one, lost in a crash as it left: the
    caps count the call from one, when it may have reached the debtor."""
    ids = planned(world, row("A-1"))
    left = NOW + timedelta(hours=3)
    world.clock.set(left)
    provider = HangingProvider("sms")
    tick = asyncio.create_task(dispatcher(world, fake_sms(world, provider)).tick())
    await provider.started.wait()
    tick.cancel()
    with pytest.raises(asyncio.CancelledError):
        await tick
    assert housekeeping(world.engine, left + SEND_LEASE * 2, "worker-2").lost_sends == 1
    held = the_attempt(world)
    assert (held.status, held.created_at, held.placed_at, held.sent_at) == (
        "unknown", NOW, left, None,
    )  # fmt: skip
    with world.engine.connect() as connection:
        [record] = load_debtors(
            connection,
            [account(world.engine, ids["A-1"])],
            left + SEND_LEASE * 2,
            30,
            "US",
            rules=load_ruleset(),
        ).values()
    assert [(c.at, c.channel) for c in record.history] == [(left, "sms")]


async def test_a_senders_rate_limit_spaces_sends_and_leaves_the_excess_queued(
    world: World,
) -> None:
    planned(world, *(row(f"A-{i}", phone=f"+1617555010{i}") for i in range(1, 5)))
    time = FakeTime()
    # One text every 10 s from the outbox's sender: slots at 0, 10, 20 and 30 s; the last
    # is beyond the 20 s a message may wait in the process.
    send = dispatcher(world, limiter=sms_limiter(time, per_second=0.1))
    report = await send.tick()

    assert dict(report.outcomes) == {"sent": 3, "rate_limited": 1}
    assert sum(time.slept) == pytest.approx(10 + 20)
    # The one left queued stores no decision until it goes: a backlog behind a slow number
    # would otherwise store one at every look.
    assert [
        d.attempt_id for d in rows_of(world.engine, decisions, decisions.c.stage == "dispatch")
    ] == [a.id for a in rows_of(world.engine, attempts)[:3]]
    *sent, waiting = rows_of(world.engine, attempts)
    assert [a.status for a in sent] == ["sent"] * 3
    # Each counts for the caps from when it was marked, never from a moment ahead.
    assert [a.placed_at for a in sent] == [NOW] * 3
    assert (waiting.status, waiting.tries, waiting.acquired_by) == ("queued", 0, None)
    assert waiting.next_try_at == NOW + timedelta(seconds=10)
    assert sorted(line["attempt_id"] for line in outbox_lines(world)) == [a.id for a in sent]

    time.now += 30
    world.clock.advance(timedelta(seconds=10))
    assert dict((await send.tick()).outcomes) == {"sent": 1}
    assert len(outbox_lines(world)) == 4
    assert len(rows_of(world.engine, decisions, decisions.c.stage == "dispatch")) == 4


async def test_an_outbox_that_cannot_write_delays_and_never_fails_the_message(
    world: World,
) -> None:
    # OUTBOX_PATH a directory (or a full disk, or no permission) for a while: the message
    # waits, never failed and never counting a try, and goes once the path is writable.
    planned(world, row("A-1"))
    world.settings.outbox_path.mkdir(parents=True)
    send = dispatcher(world, outboxes(world))
    for _ in range(MAX_TRIES + 2):
        assert dict((await send.tick()).outcomes) == {"retry": 1}
        attempt = the_attempt(world)
        assert (attempt.status, attempt.tries) == ("queued", 0), attempt.error_message
        world.clock.set(attempt.next_try_at + timedelta(seconds=1))
    assert "check OUTBOX_PATH" in the_attempt(world).error_message
    world.settings.outbox_path.rmdir()
    assert dict((await send.tick()).outcomes) == {"sent": 1}


async def test_outcomes_the_database_refused_once_are_recorded_at_the_next_flush(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails once (SQLite busy, a PostgreSQL failover) loses nothing: the sent
    text, the refusal with its opt-out and the request that never left are all recorded
    at the next flush."""
    planned(world, *(row(f"A-{i}", phone=f"+1617555010{i}") for i in range(1, 4)))
    never_left = ChannelError("connection refused", provider="fake", retryable=True)
    refused = ChannelError(
        "opted out", provider="fake", status_code=400, code="21610", suppression="stop"
    )
    provider = FakeProvider("sms", [None, refused, never_left])
    record, calls = Dispatcher._record, [0]

    def once_refused(self: Dispatcher, *args: Any, **options: Any) -> None:
        calls[0] += 1
        if calls[0] == 1:
            raise OperationalError("UPDATE attempt", {}, Exception("database is locked"))
        record(self, *args, **options)

    monkeypatch.setattr(Dispatcher, "_record", once_refused)
    report = await dispatcher(world, fake_sms(world, provider)).tick()
    assert dict(report.outcomes) == {"sent": 1, "failed": 1, "retry": 1}
    assert len(provider.sent) == 3
    assert sorted(a.status for a in rows_of(world.engine, attempts)) == [
        "failed", "queued", "sent",
    ]  # fmt: skip
    assert [s.reason for s in rows_of(world.engine, store.suppressions)] == ["stop"]


async def test_outcomes_a_lost_commit_recorded_are_not_recorded_twice(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The COMMIT reached the database but its answer was lost (a failover): the next
    flush finds the attempts recorded and released, and records nothing again."""
    planned(world, row("A-1"), row("A-2", phone="+16175550102"))
    refused = ChannelError(
        "opted out", provider="fake", status_code=400, code="21610", suppression="stop"
    )
    provider = FakeProvider("sms", [None, refused])
    record, calls = Dispatcher._record, [0]

    def committed_then_lost(self: Dispatcher, connection: Any, *args: Any, **kw: Any) -> None:
        calls[0] += 1
        if calls[0] == 1:
            with self.engine.begin() as other:  # what the COMMIT whose answer was lost did
                record(self, other, *args, **kw)
            raise OperationalError("COMMIT", {}, Exception("server closed the connection"))
        record(self, connection, *args, **kw)

    monkeypatch.setattr(Dispatcher, "_record", committed_then_lost)
    planned_decisions = len(rows_of(world.engine, decisions))
    await dispatcher(world, fake_sms(world, provider)).tick()
    assert [s.reason for s in rows_of(world.engine, store.suppressions)] == ["stop"]
    # One decision each at the send-time check, none again.
    assert len(rows_of(world.engine, decisions)) == planned_decisions + 2
    assert sorted(a.status for a in rows_of(world.engine, attempts)) == ["failed", "sent"]
    assert "the earlier try to record it may have" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_while_outcomes_cannot_be_recorded_nothing_more_is_sent(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database refuses every write: the first text has left, the two waiting for
    their rate-limit slots do not leave after it, and the tick ends with the error (what it
    marked ``sending`` is held for review, as after a crash)."""
    planned(world, *(row(f"A-{i}", phone=f"+1617555010{i}") for i in range(1, 4)))
    provider = FakeProvider("sms")
    refused = asyncio.Event()

    def always_refused(self: Dispatcher, *args: Any, **options: Any) -> None:
        refused.set()
        raise OperationalError("UPDATE attempt", {}, Exception("disk I/O error"))

    time = FakeTime()

    async def waiting_for_a_refusal(seconds: float) -> None:
        await refused.wait()  # the keeper's flush of the first outcome has failed
        await time.sleep(seconds)

    limits = RateLimits(default=RateLimit(per_second=1, burst=1))  # slots at 0, 1 and 2 s
    limiter = RateLimiter({"sms": limits}, monotonic=time.monotonic, sleep=waiting_for_a_refusal)
    monkeypatch.setattr(Dispatcher, "_record", always_refused)
    monkeypatch.setattr("outreach.dispatcher.LAST_FLUSH_PAUSES", (0.01,))
    with pytest.raises(OperationalError):
        await dispatcher(world, fake_sms(world, provider), limiter=limiter).tick()
    assert len(provider.sent) == 1
    assert [a.status for a in rows_of(world.engine, attempts)] == ["sending"] * 3


async def test_stopping_puts_what_has_not_left_back_in_the_queue(world: World) -> None:
    planned(world, *(row(f"A-{i}", phone=f"+1617555010{i}") for i in range(1, 4)))
    # The third text was refused seven times before: one more refusal would fail it.
    third_id = rows_of(world.engine, attempts)[2].id
    with world.engine.begin() as connection:
        connection.execute(
            update(attempts)
            .where(attempts.c.id == third_id)
            .values(tries=MAX_TRIES - 1, error_code="503", error_message="unavailable")
        )
    time = FakeTime()

    async def stop_while_waiting(seconds: float) -> None:
        send.request_stop()  # SIGTERM arrives while two texts wait for their slots
        await time.sleep(seconds)

    limits = RateLimits(default=RateLimit(per_second=1, burst=1))  # slots at 0, 1 and 2 s
    limiter = RateLimiter({"sms": limits}, monotonic=time.monotonic, sleep=stop_while_waiting)
    send = dispatcher(world, limiter=limiter)
    report = await send.tick()

    assert dict(report.outcomes) == {"sent": 1, "requeued": 2}
    first, second, third = rows_of(world.engine, attempts)
    assert (first.status, first.tries) == ("sent", 1)
    # Back in the queue as they were: not a try, due at once, nothing held.
    assert [(a.status, a.tries, a.next_try_at, a.acquired_by) for a in (second, third)] == [
        ("queued", 0, NOW, None), ("queued", MAX_TRIES - 1, NOW, None),
    ]  # fmt: skip
    assert (third.error_code, third.error_message) == ("503", "unavailable")
    assert [line["attempt_id"] for line in outbox_lines(world)] == [first.id]

    # A stopping dispatcher claims nothing more; the next daemon sends the rest.
    assert (await send.tick()).claimed == 0
    time.now += 10
    fresh = dispatcher(world, limiter=sms_limiter(time, per_second=1), worker="worker-2")
    assert dict((await fresh.tick()).outcomes) == {"sent": 2}
    assert [(a.status, a.tries) for a in rows_of(world.engine, attempts)] == [
        ("sent", 1), ("sent", 1), ("sent", MAX_TRIES),
    ]  # fmt: skip
    assert len(outbox_lines(world)) == 3


class FastReceiptProvider(FakeProvider):
    """A provider whose delivery receipt is applied before the send itself is recorded."""

    def __init__(self, channel: Channel, engine: Engine) -> None:
        super().__init__(channel)
        self.engine = engine

    async def send(self, message: OutboundMessage) -> SendResult:
        result = await super().send(message)
        with self.engine.begin() as connection:
            connection.execute(
                update(attempts)
                .where(attempts.c.id == message.attempt_id)
                .values(status="delivered", provider_message_id=result.provider_message_id)
            )
        return result


async def test_a_receipt_that_arrives_before_the_send_is_recorded_is_kept(world: World) -> None:
    planned(world, row("A-1"))
    provider = FastReceiptProvider("sms", world.engine)
    report = await dispatcher(world, fake_sms(world, provider)).tick()
    assert report.outcomes["sent"] == 1
    attempt = the_attempt(world)
    # The provider's later word (delivered) is not lowered to sent by our own record.
    assert (attempt.status, attempt.provider_message_id, attempt.sent_at) == (
        "delivered",
        "FK1",
        world.clock.now(),
    )


async def test_a_dispatched_batch_settles_the_heap(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    planned(world, row("A-1"))
    settled: list[bool] = []
    monkeypatch.setattr(heap, "settle", lambda: settled.append(True) or True)
    assert (await dispatcher(world).tick()).claimed == 1
    assert settled == [True]


def test_an_email_refusal_notes_the_mailbox_lower_cased(world: World) -> None:
    # The suppression ledger spells email addresses lower-cased: found for every account
    # with the mailbox, whatever case each was imported in.
    refused = SimpleNamespace(id=7, account_id=1, channel="email", to_address="Pat.Doe@Example.NET")
    error = ChannelError("unsubscribed", provider="fake", code="unsubscribe", status_code=400,
                         suppression="unsubscribe")  # fmt: skip
    with world.engine.begin() as connection:
        _note_address(connection, refused, error, NOW)
    [noted] = rows_of(world.engine, store.suppressions)
    assert (noted.channel, noted.address) == ("email", "pat.doe@example.net")


def _refused_text(engine: Engine) -> tuple[SimpleNamespace, ChannelError]:
    """A text to PHONE, and Twilio's 21610 for it (the number has texted STOP to ours)."""
    account_id = add_account(engine)
    text = add_attempt(engine, account_id, channel="sms", to=PHONE, message_id="SM9")
    refused = SimpleNamespace(id=text, account_id=account_id, channel="sms", to_address=PHONE)
    error = ChannelError("the recipient opted out", provider="twilio_sms", code="21610",
                         suppression="stop")  # fmt: skip
    return refused, error


def _in_force(engine: Engine) -> list[tuple[str, str, str]]:
    return sorted((s.channel, s.address, s.reason) for s in rows_of(engine, store.suppressions)
                  if s.lifted_at is None)  # fmt: skip


def test_a_refusal_for_a_number_already_opted_out_suppresses_it_no_second_time(
    engine: Engine,
) -> None:
    refused, error = _refused_text(engine)
    apply_events(engine, [inbound("STOP", key="SM-stop")], NOW)
    with engine.begin() as connection:
        _note_address(connection, refused, error, NOW + timedelta(minutes=1))
    assert _in_force(engine) == [("sms", PHONE, "stop")]


def test_a_refusals_suppression_waits_for_a_stop_being_written(engine: Engine) -> None:
    """A STOP from the number is being written (its lock held, its suppression not yet
    committed) when the dispatcher records Twilio's 21610 for a text to it: the dispatcher
    waits for the lock, then finds the number opted out."""
    if engine.dialect.name != "postgresql":
        pytest.skip("advisory locks: PostgreSQL (SQLite has one writer)")
    refused, error = _refused_text(engine)
    done = threading.Event()

    def dispatch() -> None:
        with engine.begin() as connection:
            _note_address(connection, refused, error, NOW)
        done.set()

    with engine.begin() as webhook:
        apply_batch(webhook, [Incoming(inbound("STOP", key="SM-stop"))], NOW)
        thread = threading.Thread(target=dispatch)
        thread.start()
        waited = not done.wait(1)
    thread.join(10)
    assert waited, "the dispatcher suppressed the number without waiting for its lock"
    assert _in_force(engine) == [("sms", PHONE, "stop")]


class _Meeting(Dispatcher):
    """Reads what compliance knows of its batch's debtors, then waits (two seconds at
    most) for the other batch to have read it too: at once, unless the second read waits
    for the first batch's commit."""

    meeting: threading.Barrier

    def _debtors(
        self, connection: Any, account_ids: set[int], at: datetime, *, hold: bool = False
    ) -> Any:
        found = super()._debtors(connection, account_ids, at, hold=hold)
        # Broken when the other read waited for this batch: this one goes on.
        with contextlib.suppress(threading.BrokenBarrierError):
            self.meeting.wait(timeout=2)
        return found


def _one_text_left(world: World, references: Sequence[str]) -> None:
    """A debtor (at most two texts a day) texted an hour ago, with two texts due: two on the
    first of ``references``, or one on each of two accounts that share the number."""
    ids = world.load(*(row(reference) for reference in references))
    earlier = NOW - timedelta(hours=1)
    texts = [("earlier", references[0], "delivered", earlier)]
    due = zip(("one", "two"), [*references, *references], strict=False)
    texts += [(key, reference, "queued", NOW) for key, reference in due]
    with world.engine.begin() as connection:
        for key, reference, status, at in texts:
            connection.execute(
                insert(attempts).values(
                    account_id=ids[reference], idempotency_key=key, step_key=key, channel="sms",
                    to_address="+16175550101", template_name="x", tone="firm", locale="en",
                    body=f"text {key}", status=status, automated=True, created_at=at,
                    updated_at=at, next_try_at=at, sent_at=at if status != "queued" else None,
                )
            )  # fmt: skip


def _claimed_by(world: World, worker: str) -> Sequence[Any]:
    with world.engine.begin() as connection:
        return claim_queued_attempts(connection, worker, NOW, NOW + SEND_LEASE, 1)


@pytest.mark.parametrize("references", [["A-1"], ["A-1", "B-1"]], ids=["one", "two"])
def test_two_batches_decided_at_once_send_a_debtor_no_more_than_the_cap_allows(
    world: World, references: list[str]
) -> None:
    """A daemon and its dispatch process (or two daemons) each claim one of the two texts
    due to a debtor whose cap allows one more, on one account or on two accounts sharing the
    number, and check them at once: the second to decide counts the first's text, and
    defers its own."""
    _one_text_left(world, references)
    meeting = threading.Barrier(2)
    providers: list[FakeProvider] = []
    jobs = []
    for worker in ("daemon-a", "daemon-a/dispatch4242"):
        sms = FakeProvider("sms")
        providers.append(sms)
        send = _Meeting(world.engine, world.settings, world.clock, worker,
                        {**outboxes(world), "sms": sms}, RateLimiter({}))  # fmt: skip
        send.meeting = meeting
        jobs.append((send, _claimed_by(world, worker)))
    outcomes: list[dict[str, int]] = []

    def run(send: Dispatcher, claimed: Sequence[Any]) -> None:
        outcomes.append(dict(asyncio.run(send.dispatch_batch(claimed)).outcomes))

    threads = [threading.Thread(target=run, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes, key=str) == [{"deferred": 1}, {"sent": 1}]
    assert sum(len(sms.sent) for sms in providers) == 1
    statuses = sorted(a.status for a in rows_of(world.engine, attempts) if a.step_key != "earlier")
    assert statuses == ["queued", "sent"]


def test_a_reply_that_pauses_the_account_while_the_check_waits_for_it_wins(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reply holds the account (pausing it) while the dispatcher's check waits for the
    debtor: the check decides on the account as the reply left it, and sends nothing."""
    planned(world, row("A-1"))
    locked, carry_on = threading.Event(), threading.Event()
    pause = replies._pause

    def held_pause(*args: Any) -> Any:
        locked.set()  # the reply holds the account from here (``replies``)
        assert carry_on.wait(30)
        return pause(*args)

    monkeypatch.setattr(replies, "_pause", held_pause)
    now = world.clock.now()
    reply = threading.Thread(
        target=lambda: apply_events(world.engine, [inbound("who is this", key="r1")], now)
    )
    reply.start()
    assert locked.wait(30)
    hold = compliance_store.hold_debtors

    def let_the_reply_go(connection: Any, ids: Any) -> None:
        carry_on.set()  # the check has read the account; it now waits for the reply
        hold(connection, ids)

    monkeypatch.setattr(compliance_store, "hold_debtors", let_the_reply_go)
    if world.engine.dialect.name == "sqlite":
        carry_on.set()  # one writer: the check waits for the reply before reading anything
    report = asyncio.run(dispatcher(world).tick())
    reply.join(30)
    assert not reply.is_alive()
    assert report.outcomes["sent"] == 0 and outbox_lines(world) == []
    with world.engine.connect() as connection:
        assert connection.execute(select(store.accounts.c.paused_until)).scalar_one()


def test_a_zone_changed_while_the_check_waits_for_the_debtor_is_decided_on(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import corrects the debtor's zone to Honolulu (05:00 there) just before the check
    gets the debtor: the check reads the account once held, and the text waits."""
    planned(world, row("A-1"))
    hold = compliance_store.hold_debtors

    def corrected_meanwhile(connection: Any, ids: Any) -> None:
        connection.execute(update(store.accounts).values(timezone="Pacific/Honolulu"))
        hold(connection, ids)

    monkeypatch.setattr(compliance_store, "hold_debtors", corrected_meanwhile)
    report = asyncio.run(dispatcher(world).tick())
    assert dict(report.outcomes) == {"deferred": 1} and outbox_lines(world) == []


@pytest.mark.parametrize("references", [["A-1"], ["A-1", "B-1"]], ids=["one", "two"])
async def test_two_batches_one_after_the_other_send_a_debtor_what_the_cap_allows(
    world: World, references: list[str]
) -> None:
    _one_text_left(world, references)
    sent = 0
    for worker in ("daemon-a", "daemon-a/dispatch4242"):
        sms = FakeProvider("sms")
        await dispatcher(world, fake_sms(world, sms), worker=worker).dispatch_batch(
            _claimed_by(world, worker)
        )
        sent += len(sms.sent)
    assert sent == 1


async def test_at_send_time_a_debtors_other_account_counts_toward_caps_per_debtor(
    world: World,
) -> None:
    # One person, two debts, one mobile, texted once today already: both texts were allowed
    # when planned (two a day), but once the first leaves the second would be the third.
    ids = world.load(row("A-1"), row("B-1"))
    texted(world, ids["A-1"], timedelta(hours=1))
    assert dict(world.planner().tick().outcomes) == {"queued": 2}
    report = await dispatcher(world).tick()

    assert dict(report.outcomes) == {"sent": 1, "deferred": 1}
    sent = {a.account_id: a.status for a in rows_of(world.engine, attempts)
            if a.step_key == "overdue-10d"}  # fmt: skip
    assert sorted(sent.values()) == ["queued", "sent"]
    [held] = [d for d in rows_of(world.engine, decisions, decisions.c.stage == "dispatch")
              if d.verdict == "defer"]  # fmt: skip
    assert codes(held) == ["POLICY_SMS_DAILY_CAP"]


async def test_one_debtors_accounts_on_different_numbers_are_decided_in_turn(
    world: World,
) -> None:
    # One person (one mailbox), two debts, a number each, texted once today already: the
    # two texts of one batch are decided in turn, so only one more goes (two a day).
    ids = world.load(
        row("A-1", email="pat@example.com"),
        row("B-1", phone="(617) 555-0102", email="pat@example.com"),
    )
    texted(world, ids["A-1"], timedelta(hours=1))
    assert dict(world.planner().tick().outcomes) == {"queued": 2}
    report = await dispatcher(world).tick()

    assert dict(report.outcomes) == {"sent": 1, "deferred": 1}
    [held] = [d for d in rows_of(world.engine, decisions, decisions.c.stage == "dispatch")
              if d.verdict == "defer"]  # fmt: skip
    assert codes(held) == ["POLICY_SMS_DAILY_CAP"]


async def test_student_loans_serviced_under_one_number_are_one_debt_at_send_time(
    world: World,
) -> None:
    # Two student loans of one servicer account, nothing else in common (a number and a
    # mailbox each), in Massachusetts (two texts a week per debt), one texted already:
    # one debt, so only one more text goes, whichever batch each is in.
    ids = world.load(row("A-1"), row("B-1", phone="(617) 555-0102"))
    with world.engine.begin() as connection:
        connection.execute(update(store.accounts).values(servicer_account_no="LN-77"))
    texted(world, ids["A-1"], timedelta(days=1))
    outcomes = dict(world.planner().tick().outcomes)
    report = await dispatcher(world).tick()
    held = [d for d in rows_of(world.engine, decisions) if d.verdict == "defer"]
    assert report.outcomes.get("sent") == 1, (outcomes, dict(report.outcomes))
    assert outcomes == {"queued": 2}, outcomes
    assert [codes(d) for d in held] == [["MA_2_PER_7_DAYS_PER_DEBT"]]
    assert "student loans serviced under LN-77" in str(held[0].reasons)


async def test_a_promise_holds_back_a_reminder_before_the_due_date_too(world: World) -> None:
    """As the planner does: ``stop_when`` stops every step of the cadence, reminders too."""
    planned(world, row("P-1", cadence="pre-due", due_date="2026-11-03"))
    assert the_attempt(world).step_key == "reminder-1d"
    with world.engine.begin() as connection:
        account = agent_actions.account_by_reference(connection, "P-1")
        agent_actions.promise(connection, account, 5000, date(2026, 11, 6), "ana", NOW)
    assert dict((await dispatcher(world).tick()).outcomes) == {"cancelled": 1}
    attempt = the_attempt(world)
    assert (attempt.status, attempt.error_message) == ("cancelled", "a promise to pay is pending")


async def test_a_promise_holds_back_only_what_its_cadence_stops_for(world: World) -> None:
    planned(world, row("A-1"))
    with world.engine.begin() as connection:
        account = agent_actions.account_by_reference(connection, "A-1")
        agent_actions.promise(connection, account, 5000, date(2026, 11, 6), "ana", NOW)
    send = dispatcher(world)
    standard = load_cadences(world.settings.schedules_dir)["standard"]
    send._cadences = {"standard": dataclasses.replace(standard, stop_when=("paid", "disputed"))}
    assert dict((await send.tick()).outcomes) == {"sent": 1}


async def test_a_reply_open_when_an_agents_pause_ran_out_holds_the_message(world: World) -> None:
    """Before housekeeping hands the account over to the reply pause, a message queued
    before the agent's pause does not leave while the debtor's reply waits; the planner
    leaves the account alone until housekeeping has decided."""
    ids = planned(world, row("A-1"))
    with world.engine.begin() as connection:
        one = agent_actions.account_by_reference(connection, "A-1")
        agent_actions.pause(connection, one, 1, "call back (ana)", NOW - timedelta(days=2))
    replied = NOW - timedelta(days=1, hours=12)  # during the agent's pause, which it keeps
    apply_events(world.engine, [inbound("I will call you", at=replied)], replied)
    assert dict((await dispatcher(world).tick()).outcomes) == {"cancelled": 1}
    attempt = the_attempt(world)
    assert (attempt.status, attempt.error_message) == ("cancelled", "account paused")
    assert world.planner().tick().claimed == 0  # the pause ran out, housekeeping is to come
    housekeeping(world.engine, NOW, reply_pause=timedelta(days=14))
    assert account(world.engine, ids["A-1"]).paused_until == replied + timedelta(days=14)
    assert world.planner().tick().claimed == 0
    assert outbox_lines(world) == []


@pytest.mark.parametrize("hold", ["pause", "promise"])
async def test_a_step_held_back_goes_out_when_the_hold_ends(world: World, hold: str) -> None:
    ids = planned(world, row("A-1", due_date="2026-11-02"))  # due-today, good for two days
    step = the_attempt(world).step_key
    if hold == "pause":
        set_account(world.engine, ids["A-1"], paused_until=NOW + timedelta(hours=6))
    else:
        with world.engine.begin() as connection:
            promising = agent_actions.account_by_reference(connection, "A-1")
            agent_actions.promise(connection, promising, 5000, NOW.date(), "ana", NOW)
    assert dict((await dispatcher(world).tick()).outcomes) == {"cancelled": 1}
    if hold == "pause":
        world.clock.set(NOW + timedelta(hours=6))
        assert world.planner().tick().claimed == 0  # still paused until housekeeping says
        assert housekeeping(world.engine, world.clock.now()).pauses_ended == 1
    else:
        assert dict(world.planner().tick().outcomes) == {"stopped": 1}
        world.clock.set(NOW + timedelta(days=1))  # the promised day passed unpaid
        assert housekeeping(world.engine, world.clock.now()).broken_promises == 1
    assert dict(world.planner().tick().outcomes) == {"queued": 1}
    again = rows_of(world.engine, attempts, attempts.c.status == "queued")
    assert [(a.step_key, a.idempotency_key) for a in again] == [(step, f"{ids['A-1']}:{step}:sms")]
    assert dict((await dispatcher(world).tick()).outcomes) == {"sent": 1}
    assert step in steps_taken(world, ids["A-1"])


async def test_an_address_gone_since_planning_falls_back_to_the_next_channel(
    world: World,
) -> None:
    ids = planned(world, row("A-1"))
    step = the_attempt(world).step_key
    with world.engine.begin() as connection:
        connection.execute(
            update(store.contact_points)
            .where(
                store.contact_points.c.account_id == ids["A-1"],
                store.contact_points.c.channel == "sms",
            )
            .values(status="wrong_number")
        )
    assert dict((await dispatcher(world).tick()).outcomes) == {"cancelled": 1}
    assert dict(world.planner().tick().outcomes) == {"queued": 1}
    [again] = rows_of(world.engine, attempts, attempts.c.status == "queued")
    assert (again.step_key, again.channel) == (step, "email")
    assert dict((await dispatcher(world).tick()).outcomes) == {"sent": 1}


async def test_a_promise_held_only_for_want_of_the_cadence_keeps_its_step(world: World) -> None:
    """A dispatcher that cannot read the cadence holds the message back on the safe side;
    its step is not given back, or the planner, which reads the cadence otherwise, would
    queue it again on every tick."""
    ids = planned(world, row("A-1"))
    with world.engine.begin() as connection:
        promising = agent_actions.account_by_reference(connection, "A-1")
        agent_actions.promise(connection, promising, 5000, date(2026, 11, 6), "ana", NOW)
    send = dispatcher(world)
    send._cadences = {}  # unreadable in this process: every promise holds
    step = the_attempt(world).step_key
    assert dict((await send.tick()).outcomes) == {"cancelled": 1}
    assert step in steps_taken(world, ids["A-1"])
    assert len(rows_of(world.engine, attempts)) == 1


@pytest.mark.parametrize("jurisdiction", ["US-MA", "US-TX"])  # with caps per week, without
async def test_a_dispatcher_past_its_lease_does_not_send_what_another_has_sent(
    world: World, jurisdiction: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Daemon A claims, then stalls past its lease before its send-time check; B claims the
    attempt and sends it. A, waking up with the rows it claimed, sends nothing, stores no
    decision and leaves B's record as it is."""
    planned(world, row("A-1", jurisdiction=jurisdiction))
    a_provider, b_provider = FakeProvider("sms"), FakeProvider("sms")
    a = dispatcher(world, fake_sms(world, a_provider), worker="worker-A")
    with world.engine.begin() as connection:
        stale = claim_queued_attempts(connection, "worker-A", NOW, NOW + a.lease, 10)
    world.clock.set(NOW + a.lease + timedelta(seconds=1))
    b = dispatcher(world, fake_sms(world, b_provider), worker="worker-B")
    assert dict((await b.tick()).outcomes) == {"sent": 1}
    sent = the_attempt(world)
    with world.engine.connect() as connection:
        decided = connection.execute(select(func.count()).select_from(decisions)).scalar_one()

    report = await a.dispatch_batch(stale)
    assert dict(report.outcomes) == {}
    assert (len(a_provider.sent), len(b_provider.sent)) == (0, 1)
    assert the_attempt(world) == sent
    with world.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(decisions)).scalar_one() == (
            decided
        )
    assert f"attempt(s) [{sent.id}] were claimed by another worker" in caplog.text


async def test_a_dispatcher_past_its_lease_takes_no_rate_limit_slot_for_what_it_lost(
    world: World,
) -> None:
    planned(world, row("A-1"))
    time = FakeTime()
    limiter = sms_limiter(time, per_second=1 / 60)  # a text a minute
    a = dispatcher(world, fake_sms(world, FakeProvider("sms")), limiter, worker="worker-A")
    with world.engine.begin() as connection:
        stale = claim_queued_attempts(connection, "worker-A", NOW, NOW + a.lease, 10)
    world.clock.set(NOW + a.lease + timedelta(seconds=1))
    await dispatcher(world, fake_sms(world, FakeProvider("sms")), worker="worker-B").tick()
    assert dict((await a.dispatch_batch(stale)).outcomes) == {}
    assert limiter.reserve_many([("sms", "fake-sms")], 60) == [0.0]  # the slot is still free


async def test_an_attempt_being_decided_is_not_claimed_by_another_meanwhile(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stalls inside its send-time check, past its lease, and B asks for due attempts
    meanwhile: A's check holds the attempt until it is written (B skips it on PostgreSQL,
    and waits for the writer's lock on SQLite), so B gets nothing while A decides. A, its
    lease over, does not send it either: it goes back to the queue."""
    planned(world, row("A-1"))
    provider = FakeProvider("sms")
    debtors = Dispatcher._debtors
    claimed: list[Sequence[Any]] = []
    while_deciding: list[Sequence[Any]] = []

    def claim() -> None:
        with world.engine.begin() as connection:
            now = world.clock.now()
            claimed.append(claim_queued_attempts(connection, "worker-B", now, now + SEND_LEASE, 10))

    others = threading.Thread(target=claim)

    def claimed_meanwhile(self: Dispatcher, *args: Any, **options: Any) -> Any:
        if others.ident is None:  # the first check (not the one before it leaves)
            world.clock.advance(self.lease + timedelta(seconds=1))
            others.start()
            others.join(0.5)  # PostgreSQL: done, having skipped it; SQLite: still waiting
            while_deciding.extend(claimed)
        return debtors(self, *args, **options)

    monkeypatch.setattr(Dispatcher, "_debtors", claimed_meanwhile)
    report = await dispatcher(world, fake_sms(world, provider), worker="worker-A").tick()
    others.join(10)
    assert not any(while_deciding), while_deciding
    assert (dict(report.outcomes), len(provider.sent)) == ({"requeued": 1}, 0)
    assert the_attempt(world).status == "queued"


async def test_a_dispatcher_that_stalls_while_deciding_puts_its_sends_back(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three minutes lost inside the send-time check (no other daemon claims the row
    meanwhile): the text is not sent on a decision that old, and another daemon's
    housekeeping, running meanwhile, does not take it for lost. It goes back to the
    queue."""
    planned(world, row("A-1"))
    provider = FakeProvider("sms")
    debtors = Dispatcher._debtors

    def stalled(self: Dispatcher, *args: Any, **options: Any) -> Any:
        world.clock.advance(timedelta(minutes=3))
        return debtors(self, *args, **options)

    keep = dispatcher_module.hold_sends

    def while_others_keep_house(worker: str, ids: Any) -> None:
        housekeeping(world.engine, world.clock.now(), "worker-D")
        keep(worker, ids)

    monkeypatch.setattr(Dispatcher, "_debtors", stalled)
    monkeypatch.setattr(dispatcher_module, "hold_sends", while_others_keep_house)
    report = await dispatcher(world, fake_sms(world, provider), worker="worker-A").tick()
    assert dict(report.outcomes) == {"requeued": 1}
    assert (the_attempt(world).status, len(provider.sent)) == ("queued", 0)


async def test_a_dispatcher_past_its_lease_gives_back_no_step(world: World) -> None:
    """Daemon A stalls past its lease; B cancels the message for a cease request (a
    compliance block keeps its step). A, waking up to an account paused meanwhile, changes
    nothing it no longer holds: the step and the key stay as B left them."""
    ids = planned(world, row("A-1"))
    lease = timedelta(minutes=5)
    with world.engine.begin() as connection:
        stale = claim_queued_attempts(connection, "worker-A", NOW, NOW + lease, 10)
    world.clock.set(NOW + lease + timedelta(seconds=1))
    event(world.engine, ids["A-1"], "cease", NOW + timedelta(minutes=1))
    await dispatcher(world, worker="worker-B").tick()
    step = the_attempt(world).step_key
    set_account(world.engine, ids["A-1"], paused_until=NOW + timedelta(days=3))
    await dispatcher(world, worker="worker-A").dispatch_batch(stale)
    attempt = the_attempt(world)
    assert attempt.status == "cancelled" and attempt.error_message != "account paused"
    assert step in steps_taken(world, ids["A-1"])
    assert not attempt.idempotency_key.endswith(f":withdrawn:{attempt.id}")


async def test_a_message_planned_before_its_debt_became_time_barred_is_not_sent_as_written(
    world: World,
) -> None:
    """The text threatening suit was queued while the debt was not time-barred; an import
    then says it is, from today: the text is cancelled, not sent, and written again its
    step is refused (Reg F 1006.26(b)). Nothing reaches the debtor."""
    threaten_suit(world)
    ids = planned(world, row("A-1"))
    old = the_attempt(world)
    assert SUIT_THREAT in old.body
    load_barred(world, row("A-1", time_barred_on=NOW.date().isoformat()))
    assert account(world.engine, ids["A-1"]).time_barred_on == NOW.date()
    assert dict((await dispatcher(world).tick()).outcomes) == {"cancelled": 1}
    cancelled = the_attempt(world)
    assert (cancelled.id, cancelled.status) == (old.id, "cancelled")
    assert cancelled.error_message == OUT_OF_DATE
    report = world.planner().tick()
    assert dict(report.outcomes) == {"error": 1}
    assert "REGF_TIME_BARRED_SUIT_THREAT" in report.errors[0]
    assert [a.status for a in rows_of(world.engine, attempts)] == ["cancelled"]
    assert dict((await dispatcher(world).tick()).outcomes) == {}
    assert outbox_lines(world) == []


async def test_a_message_queued_the_day_before_its_debt_becomes_time_barred_is_written_again(
    world: World,
) -> None:
    """Barred from tomorrow, the text is queued today; still queued on the debtor's
    tomorrow, it is checked again as of then and not sent."""
    threaten_suit(world)
    tomorrow = NOW.date() + timedelta(days=1)
    ids = load_barred(world, row("A-1", time_barred_on=tomorrow.isoformat()))
    assert dict(world.planner().tick().outcomes) == {"queued": 1}
    boston = ZoneInfo("America/New_York")
    # 08:00 in Boston on the day it is barred from: the text's window is open.
    world.clock.set(datetime(tomorrow.year, tomorrow.month, tomorrow.day, 8, tzinfo=boston))
    assert dict((await dispatcher(world).tick()).outcomes) == {"cancelled": 1}
    report = world.planner().tick()
    assert dict(report.outcomes) == {"error": 1}
    assert "REGF_TIME_BARRED_SUIT_THREAT" in report.errors[0]
    assert outbox_lines(world) == []
    assert account(world.engine, ids["A-1"]).time_barred_on == tomorrow


@pytest.mark.parametrize(
    ("phone", "jurisdiction", "timezone", "closed", "opens"),
    [
        # 08:05 in New York is 07:05 in Gary, Indiana (Central), where the mobile may be.
        ("(219) 455-1234", "US-NY", "America/New_York",
         datetime(2026, 11, 2, 13, 5, tzinfo=UTC), datetime(2026, 11, 2, 14, tzinfo=UTC)),
        # 20:30 in Los Angeles is 23:30 in New York, the account's state.
        ("(310) 555-0101", "US-NY", "America/Los_Angeles",
         datetime(2026, 11, 3, 4, 30, tzinfo=UTC), datetime(2026, 11, 3, 16, tzinfo=UTC)),
    ],
)  # fmt: skip
async def test_a_text_waits_for_every_zone_the_debtor_may_be_in(
    world: World, phone: str, jurisdiction: str, timezone: str, closed: datetime, opens: datetime
) -> None:
    """The account's state and zone, and the state of its number, are each a place the
    debtor may be: the text waits until 08:00 in the last of them to open."""
    world.clock.set(closed)
    ids = world.load(row("A-1", phone=phone, jurisdiction=jurisdiction, timezone=timezone))
    assert dict(world.planner().tick().outcomes) == {"deferred": 1}
    provider = FakeProvider("sms")
    await dispatcher(world, fake_sms(world, provider)).tick()
    assert provider.sent == []
    assert account(world.engine, ids["A-1"]).next_contact_at == opens
    world.clock.set(opens)
    assert dict(world.planner().tick().outcomes) == {"queued": 1}
    await dispatcher(world, fake_sms(world, provider)).tick()
    assert len(provider.sent) == 1
