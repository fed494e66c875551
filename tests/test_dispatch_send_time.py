"""The send path under time: compliance holds when each message leaves (not only when its
batch was checked), attempts of one account in one batch count each other, a live batch
keeps its lease, a sender's rate holds behind the concurrency limit, an outage delays and
never drops. Some of these run on real time for a few seconds."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import OperationalError

from outreach import compliance_store
from outreach.channels import RateLimit, RateLimits, load_sms
from outreach.clock import FixedClock, ScaledClock
from outreach.compliance_store import attempts
from outreach.dispatcher import Dispatcher, DispatchReport, SlotReserver, _outage
from outreach.events import apply_events
from outreach.housekeeping import housekeeping
from outreach.importing.account_rows import ImportDefaults
from outreach.payments import record_payment
from outreach.providers.base import EventType, OutboundMessage, ProviderEvent, SendResult
from outreach.providers.failures import transport_failure
from outreach.providers.transport import make_http_client
from outreach.providers.twilio_sms import TwilioSms
from outreach.ratelimit import RateLimiter
from outreach.store import accounts
from outreach.written_facts import OUT_OF_DATE, facts_digest
from tests.conftest import REPO
from tests.test_dispatcher import (
    FakeProvider,
    dispatcher,
    fake_sms,
    planned,
    the_attempt,
)
from tests.test_dispatcher import world as world
from tests.test_import_accounts import row
from tests.test_planner import WORKER, World, make_settings, publish_templates, rows_of, suppress

pytestmark = pytest.mark.anyio

NOV_3 = date(2026, 11, 3)
WINDOW_END = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)  # 21:00 on 2026-11-02 in Boston


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class RunningClock:
    """Real time passing from ``start``."""

    def __init__(self, start: datetime) -> None:
        self.start, self.origin = start, time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.origin)


class Recording(FakeProvider):
    def __init__(self, clock: RunningClock) -> None:
        super().__init__("sms")
        self.clock = clock
        self.at: list[tuple[str, datetime]] = []

    async def send(self, message: OutboundMessage) -> SendResult:
        self.at.append((message.to, self.clock.now()))
        return await super().send(message)


def one_a_second() -> RateLimiter:
    return RateLimiter({"sms": RateLimits(default=RateLimit(per_second=1, burst=1))})


# --- compliance when the message leaves --------------------------------------------------


async def test_no_text_leaves_after_the_window_closes(world: World) -> None:
    planned(world, *(row(f"A-{i}", phone=f"+1617555010{i}") for i in range(1, 6)))
    clock = RunningClock(WINDOW_END - timedelta(seconds=2.5))  # 20:59:57.5 in Boston
    world.clock = clock  # type: ignore[assignment]
    provider = Recording(clock)
    report = await dispatcher(world, fake_sms(world, provider), one_a_second()).tick()
    assert provider.at, "the first text leaves in time"
    assert [at for _, at in provider.at if at >= WINDOW_END] == []
    assert report.outcomes["sent"] == len(provider.at)
    assert report.outcomes["deferred"] == 5 - len(provider.at)
    tomorrow = datetime(2026, 11, 3, 13, tzinfo=UTC)  # 08:00 in Boston
    waiting = [a for a in rows_of(world.engine, attempts) if a.status == "queued"]
    assert {(a.next_try_at, a.tries, a.acquired_by) for a in waiting} == {(tomorrow, 0, None)}


async def test_a_stop_stored_while_a_text_waits_for_its_slot_wins(world: World) -> None:
    planned(world, *(row(f"A-{i}", phone=f"+1617555010{i}") for i in range(1, 4)))
    clock = RunningClock(world.clock.now())
    world.clock = clock  # type: ignore[assignment]
    provider = Recording(clock)

    async def stop_arrives() -> None:
        await asyncio.sleep(0.5)
        suppress(world.engine, "sms", "+16175550103", "stop", clock.now())

    arrival = asyncio.create_task(stop_arrives())
    report = await dispatcher(world, fake_sms(world, provider), one_a_second()).tick()
    await arrival
    assert [to for to, _ in provider.at] == ["+16175550101", "+16175550102"]
    assert dict(report.outcomes) == {"sent": 2, "blocked": 1}
    stopped = [a for a in rows_of(world.engine, attempts) if a.to_address == "+16175550103"]
    assert [(a.status, a.tries, a.error_message) for a in stopped] == [
        ("cancelled", 0, "CARRIER_STOP_KEYWORD")
    ]


async def test_the_check_of_a_text_that_waited_for_its_slot_holds_no_debtor(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check again before a waited text leaves runs on the send loop's thread and
    writes nothing: it takes none of the debtors' locks (a writer holding them would stop
    every send in flight). Only the batch's check, which marks what it sends, holds them."""
    planned(world, *(row(f"A-{i}", phone=f"+1617555010{i}") for i in range(1, 4)))
    clock = RunningClock(world.clock.now())
    world.clock = clock  # type: ignore[assignment]
    held: list[set[int]] = []
    hold = compliance_store.hold_debtors

    def recorded(connection: Any, ids: Any) -> None:
        held.append(set(ids))
        hold(connection, ids)

    monkeypatch.setattr(compliance_store, "hold_debtors", recorded)
    provider = Recording(clock)
    report = await dispatcher(world, fake_sms(world, provider), one_a_second()).tick()
    assert dict(report.outcomes) == {"sent": 3}
    assert len(held) == 1 and len(held[0]) == 3  # the batch's check, once


async def test_a_partial_payment_while_a_text_waits_for_its_slot_wins(world: World) -> None:
    # A-3's text waits about two seconds for its slot; a partial payment recorded meanwhile
    # makes its balance untrue: it is written afresh, never sent with the old figures.
    planned(world, *(row(f"A-{i}", phone=f"+1617555010{i}") for i in range(1, 4)))
    clock = RunningClock(world.clock.now())
    world.clock = clock  # type: ignore[assignment]
    provider = Recording(clock)

    async def payment_arrives() -> None:
        await asyncio.sleep(0.5)
        record_payment(world.engine, clock, "A-3", "20.00")

    arrival = asyncio.create_task(payment_arrives())
    report = await dispatcher(world, fake_sms(world, provider), one_a_second()).tick()
    await arrival
    assert [to for to, _ in provider.at] == ["+16175550101", "+16175550102"]
    assert dict(report.outcomes) == {"sent": 2, "cancelled": 1}
    [third] = [a for a in rows_of(world.engine, attempts) if a.to_address == "+16175550103"]
    assert (third.status, third.error_message) == ("cancelled", OUT_OF_DATE)


async def test_a_mistyped_provider_base_url_delays_and_never_fails_the_queue(
    world: World,
) -> None:
    # A base URL without its scheme (a typo that slipped past the settings' check, or a
    # URL the transport cannot use): every message would be refused alike, so none is failed
    # and none counts a try; they wait for the operator's fix.
    planned(world, row("A-1"))
    settings = world.settings.model_copy(update={
        "secret_key": SecretStr("test-secret-key-a1b2c3d4e5"),
        "twilio_account_sid": "AC" + "c" * 32,
        "twilio_auth_token": SecretStr("test-auth-token"),
        "twilio_from_number": "+16175550100",
        "twilio_api_base_url": "api.twilio.com",  # model_copy does not validate
        "public_base_url": "https://outreach.example.com",
    })  # fmt: skip
    client = make_http_client()  # the production transport: nothing is reached
    sms = TwilioSms(settings, client, world.clock, load_sms(REPO / "channels"))
    try:
        await dispatcher(world, fake_sms(world, sms)).tick()  # type: ignore[arg-type]
    finally:
        await client.aclose()
    [attempt] = rows_of(world.engine, attempts)
    assert (attempt.status, attempt.tries) == ("queued", 0), attempt.error_message
    assert "check the provider's base URL setting" in attempt.error_message


async def test_attempts_of_one_account_in_one_batch_count_each_other(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults
) -> None:
    evening = datetime(2026, 11, 3, 1, 59, 50, tzinfo=UTC)  # 20:59:50 in Boston
    clock = FixedClock(evening)
    publish_templates(engine, clock)
    world = World(engine, make_settings(engine, tmp_path), clock, tmp_path, defaults)
    ids = world.load(row("MA-1", due_date="2026-11-03"))  # Massachusetts: 2 texts in 7 days
    sent = datetime(2026, 10, 30, 15, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(insert(attempts).values(
            account_id=ids["MA-1"], idempotency_key="earlier", step_key="manual", channel="sms",
            to_address="+16175550101", template_name="x", tone="firm", locale="en", body="x",
            status="delivered", automated=True, created_at=sent, updated_at=sent, sent_at=sent,
        ))  # fmt: skip
    assert dict(world.planner().tick().outcomes) == {"queued": 1}
    clock.set(evening + timedelta(seconds=10))  # 21:00: deferred to 08:00
    assert dict((await dispatcher(world).tick()).outcomes) == {"deferred": 1}
    clock.set(datetime(2026, 11, 3, 13, tzinfo=UTC))  # 08:00: the next step is due too
    world.planner().tick()
    # Both stating today's facts (the deferred one would otherwise be written afresh, as
    # written yesterday), so that one batch decides both; later messages, as the text
    # before them was delivered.
    with engine.begin() as connection:
        account = connection.execute(select(accounts).where(accounts.c.id == ids["MA-1"])).one()
        digest = facts_digest(account, NOV_3, first_contact=False)
        connection.execute(update(attempts).values(facts_digest=digest))
    report = await dispatcher(world).tick()
    assert dict(report.outcomes) == {"sent": 1, "deferred": 1}
    texts = [a for a in rows_of(engine, attempts) if a.sent_at is not None]
    assert len(texts) == 2


# --- a live batch keeps its lease --------------------------------------------------------


class Slow(FakeProvider):
    def __init__(self, seconds: float) -> None:
        super().__init__("sms")
        self.seconds = seconds

    async def send(self, message: OutboundMessage) -> SendResult:
        await asyncio.sleep(self.seconds)
        return await super().send(message)


async def test_a_live_daemons_slow_batch_is_not_taken_for_lost(world: World) -> None:
    # 500 sends, 100 at a time, 25 s each on a clock 20 times faster than real time: the
    # batch takes longer than a send's lease, and another daemon's housekeeping runs.
    speed = 20.0
    planned(world, *(row(f"A-{i}", phone=f"+1617{5550000 + i}") for i in range(500)))
    world.clock = ScaledClock(world.clock.now(), speed)  # type: ignore[assignment]
    provider = Slow(25 / speed)
    send = dispatcher(world, fake_sms(world, provider), worker="daemon-A")
    held = Counter[str]()

    async def other_daemons_housekeeping() -> None:
        while True:
            await asyncio.sleep(30 / speed)
            held["lost"] += housekeeping(world.engine, world.clock.now(), "daemon-B").lost_sends

    other = asyncio.create_task(other_daemons_housekeeping())
    report = await send.tick(max_attempts=500)
    assert held["lost"] == 0
    # On this clock a check holds for 50 ms of real time (SEND_GRACE): a send resumed a
    # little late goes back to the queue rather than leave on a lapsed check, and is sent
    # by the next tick. None is taken for lost or held for review.
    assert set(report.outcomes) <= {"sent", "requeued"}
    while report.outcomes["requeued"]:
        report = await send.tick(max_attempts=500)
        assert set(report.outcomes) <= {"sent", "requeued"}
    other.cancel()
    assert held["lost"] == 0
    assert Counter(a.status for a in rows_of(world.engine, attempts)) == {"sent": 500}
    assert len(provider.sent) == 500


async def test_a_send_whose_outcome_could_not_be_recorded_is_held_by_its_own_daemon(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database refuses the outcome for as long as the batch tries to record it
    (a failing over database: a refusal that passes is recorded at a later flush)."""
    planned(world, row("A-1"))
    provider = FakeProvider("sms")
    send = dispatcher(world, fake_sms(world, provider))

    def failing(self: Dispatcher, *args: object, **options: object) -> None:
        raise OperationalError("UPDATE attempt", {}, Exception("connection closed"))

    monkeypatch.setattr(Dispatcher, "_record", failing)
    monkeypatch.setattr("outreach.dispatcher.LAST_FLUSH_PAUSES", (0.01, 0.01))
    with pytest.raises(OperationalError):
        await send.tick()
    assert len(provider.sent) == 1
    world.clock.advance(timedelta(minutes=30))
    assert housekeeping(world.engine, world.clock.now(), WORKER).lost_sends == 1
    attempt = the_attempt(world)
    assert (attempt.status, attempt.acquired_by) == ("unknown", None)


# --- a sender's rate ---------------------------------------------------------------------


class StallThenFlush(FakeProvider):
    def __init__(self) -> None:
        super().__init__("sms")
        self.started: list[float] = []
        self.release = asyncio.Event()

    async def send(self, message: OutboundMessage) -> SendResult:
        self.started.append(time.monotonic())
        if len(self.started) <= 4:
            await self.release.wait()
        return await super().send(message)


async def held_up_tick(
    world: World, limiter: SlotReserver, release_after: float
) -> tuple[DispatchReport, StallThenFlush]:
    """Twelve texts sent four at a time, the first four stalled for ``release_after``
    seconds: the other eight are held up behind them."""
    planned(world, *(row(f"A-{i}", phone=f"+1617{5550000 + i}") for i in range(12)))
    provider = StallThenFlush()
    send = Dispatcher(world.engine, world.settings, world.clock, WORKER,
                      fake_sms(world, provider), limiter, concurrency=4)  # fmt: skip

    async def flush() -> None:
        await asyncio.sleep(release_after)
        provider.release.set()

    flusher = asyncio.create_task(flush())
    report = await send.tick()
    await flusher
    return report, provider


async def test_a_senders_rate_holds_when_requests_were_held_up(world: World) -> None:
    limiter = RateLimiter({"sms": RateLimits(default=RateLimit(per_second=10, burst=1))})
    report, provider = await held_up_tick(world, limiter, 1.0)
    assert dict(report.outcomes) == {"sent": 12}
    gaps = [b - a for a, b in zip(provider.started, provider.started[1:], strict=False)]
    # One every 100 ms, give or take the event loop's timer jitter.
    assert min(gaps) > 0.09, gaps


class DaemonsLimiter:
    """A dispatch process's view of its daemon's limiter: each question a round trip that
    takes a while, counted; after ``answers`` questions, the daemon is gone."""

    def __init__(self, limiter: RateLimiter, answers: int | None = None) -> None:
        self.limiter = limiter
        self.answers = answers
        self.asked: list[list[str]] = []  # the senders of each round trip

    def reserve_many(
        self, senders: Sequence[tuple[str, str]], max_wait: float | None = None
    ) -> list[float | None]:
        time.sleep(0.02)
        if self.answers is not None and len(self.asked) >= self.answers:
            raise EOFError("the daemon is gone")
        self.asked.append([sender for _, sender in senders])
        return self.limiter.reserve_many(senders, max_wait)

    async def wait(self, seconds: float) -> None:
        await self.limiter.wait(seconds)


async def test_sends_held_up_in_a_dispatch_process_ask_their_daemon_together(
    world: World,
) -> None:
    limits = RateLimits(default=RateLimit(per_second=10, burst=1))
    remote = DaemonsLimiter(RateLimiter({"sms": limits}))
    report, provider = await held_up_tick(world, remote, 1.0)
    assert dict(report.outcomes) == {"sent": 12}
    # The batch's slots in one question; then the eight sends held up behind the four
    # stalled ones take new slots in fewer questions than sends (the four let through
    # at once ask together): one round trip each would hold the process up for each.
    first, *again = [len(senders) for senders in remote.asked]
    assert (first, sum(again)) == (12, 8)
    assert len(again) < 8, remote.asked
    # The rate holds all the same: the eight held up span at least seven intervals of
    # 100 ms (a send may be late, never early; some leeway for a late first one).
    held_up = provider.started[4:]
    assert held_up[-1] - held_up[0] > 0.6, provider.started


async def test_a_send_cancelled_while_its_slot_is_asked_for_takes_none(world: World) -> None:
    remote = DaemonsLimiter(RateLimiter({"sms": RateLimits(default=RateLimit(per_second=100))}))
    send = Dispatcher(world.engine, world.settings, world.clock, WORKER, {}, remote)
    first = [asyncio.ensure_future(send._slot_again("sms", f"+1{n}")) for n in range(2)]
    await asyncio.sleep(0.005)  # their question is on its way
    later = asyncio.ensure_future(send._slot_again("sms", "+13"))
    await asyncio.sleep(0)
    for task in (*first, later):  # the batch ends
        task.cancel()
    await asyncio.gather(*first, later, return_exceptions=True)
    assert send._reserving is not None
    await send._reserving  # the question on its way comes back, and nothing more is asked
    assert remote.asked == [["+10", "+11"]]  # the one asked for after they ended: none


def test_a_dispatcher_used_again_in_a_new_event_loop_asks_for_slots_afresh(
    world: World,
) -> None:
    """An event loop closed while a question was on its way (its task never finished):
    the next loop's sends are not left waiting on that task."""
    remote = DaemonsLimiter(RateLimiter({"sms": RateLimits(default=RateLimit(per_second=100))}))
    send = Dispatcher(world.engine, world.settings, world.clock, WORKER, {}, remote)
    first = asyncio.new_event_loop()
    with pytest.raises(TimeoutError):
        first.run_until_complete(asyncio.wait_for(send._slot_again("sms", "+10"), 0.005))
    first.close()

    async def again() -> float | None:
        return await asyncio.wait_for(send._slot_again("sms", "+11"), 5)

    assert asyncio.run(again()) == 0.0
    # The first loop's question may land after this one: its thread outlived its loop.
    assert ["+11"] in remote.asked


async def test_held_up_sends_go_back_to_the_queue_when_the_daemon_cannot_answer(
    world: World,
) -> None:
    limits = RateLimits(default=RateLimit(per_second=100, burst=100))
    remote = DaemonsLimiter(RateLimiter({"sms": limits}), answers=1)  # the batch's only
    report, provider = await held_up_tick(world, remote, 0.5)
    assert dict(report.outcomes) == {"sent": 4, "rate_limited": 8}
    found = rows_of(world.engine, attempts)
    assert Counter(a.status for a in found) == {"sent": 4, "queued": 8}
    back = [a for a in found if a.status == "queued"]
    assert all(a.tries == 0 and a.acquired_by is None for a in back)
    assert len(provider.sent) == 4


# --- what the provider says --------------------------------------------------------------


class FailedBeforeRecorded(FakeProvider):
    def __init__(self, world: World) -> None:
        super().__init__("sms")
        self.world = world

    async def send(self, message: OutboundMessage) -> SendResult:
        result = await super().send(message)
        failed = ProviderEvent(
            provider="twilio_sms", kind="message_status", event_type=EventType.FAILED,
            dedupe_key=f"twilio_sms:status:{result.provider_message_id}:failed",
            occurred_at=self.world.clock.now(), payload={"ErrorCode": "30006"},
            provider_message_id=result.provider_message_id, attempt_id=message.attempt_id,
            raw_status="failed", error_code="30006", outcome="failed",
        )  # fmt: skip
        apply_events(self.world.engine, [failed], self.world.clock.now())
        return result


async def test_an_early_failure_callback_keeps_its_error_code(world: World) -> None:
    planned(world, row("A-1"))
    await dispatcher(world, fake_sms(world, FailedBeforeRecorded(world))).tick()
    attempt = the_attempt(world)
    assert (attempt.status, attempt.outcome, attempt.error_code) == ("failed", "failed", "30006")
    assert attempt.provider_message_id == "FK1"


ACCOUNT_SID = "AC" + "c" * 32
MESSAGES = f"https://twilio.test/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


def twilio(world: World, router: respx.MockRouter) -> TwilioSms:
    settings = world.settings.model_copy(
        update={
            "secret_key": SecretStr("test-secret-key-a1b2c3d4e5"),
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": SecretStr("test-auth-token"),
            "twilio_from_number": "+16175550100",
            "twilio_api_base_url": "https://twilio.test",
            "public_base_url": "https://outreach.example.com",
        }
    )
    client = make_http_client(transport=httpx.MockTransport(router.handler))
    return TwilioSms(settings, client, world.clock, load_sms(REPO / "channels"))


@pytest.mark.parametrize("failure", ["refused", "throttled"])
async def test_a_provider_outage_of_an_hour_delays_the_message(world: World, failure: str) -> None:
    planned(world, row("A-1"))
    router = respx.MockRouter(assert_all_called=False, assert_all_mocked=True)
    down = (
        httpx.ConnectError("connection refused")
        if failure == "refused"
        else httpx.Response(429, json={"code": 20429, "message": "Too Many Requests"})
    )
    route = router.post(MESSAGES).mock(side_effect=down)
    send = dispatcher(world, fake_sms(world, twilio(world, router)))  # type: ignore[arg-type]
    start = world.clock.now()
    while world.clock.now() - start < timedelta(minutes=65):
        await send.tick()
        attempt = the_attempt(world)
        assert (attempt.status, attempt.tries) == ("queued", 0), attempt.error_message
        world.clock.set(max(attempt.next_try_at, world.clock.now() + timedelta(seconds=5)))
    # Tried again less and less often, up to once an hour.
    assert 5 <= route.call_count <= 10
    route.mock(return_value=httpx.Response(201, json={"sid": "SM" + "a" * 32, "status": "queued"}))
    await send.tick()
    assert (the_attempt(world).status, the_attempt(world).tries) == ("sent", 1)


def test_the_failures_that_never_left_are_the_transports() -> None:
    for exc in (httpx.ConnectError("x"), httpx.ConnectTimeout("x"), httpx.PoolTimeout("x")):
        error = transport_failure("twilio_sms", exc)
        assert error.retryable and error.code is not None
        assert _outage(error)
    assert not _outage(transport_failure("twilio_sms", httpx.ReadTimeout("x")))


@pytest.mark.parametrize("loan", [False, True], ids=["debt", "student-loan"])
async def test_a_text_that_waited_for_its_slot_does_not_count_against_itself(
    world: World, loan: bool
) -> None:
    """Massachusetts: 2 texts per 7 days per debt. A-3 had one text two days ago: the one
    queued now is its second, and allowed. It waits for its rate-limit slot, so it is
    checked again just before it leaves, its own attempt (now ``sending``) read back from
    the database: it must not count against itself, whether its debt is its own or its
    student loans' (a servicer account number)."""
    ids = planned(world, *(row(f"A-{i}", phone=f"+1617555010{i}") for i in range(1, 4)))
    if loan:
        with world.engine.begin() as connection:
            connection.execute(update(accounts).where(accounts.c.id == ids["A-3"])
                               .values(servicer_account_no="LN-3"))  # fmt: skip
    earlier = world.clock.now() - timedelta(days=2)
    with world.engine.begin() as connection:
        connection.execute(insert(attempts).values(
            account_id=ids["A-3"], idempotency_key="earlier", step_key="earlier",
            channel="sms", to_address="+16175550103", template_name="reminder",
            tone="friendly", locale="en", body="text", status="delivered", tries=1,
            automated=True, created_at=earlier, updated_at=earlier, sent_at=earlier))  # fmt: skip
    clock = RunningClock(world.clock.now())
    world.clock = clock  # type: ignore[assignment]
    provider = Recording(clock)
    report = await dispatcher(world, fake_sms(world, provider), one_a_second()).tick()
    assert dict(report.outcomes) == {"sent": 3}
