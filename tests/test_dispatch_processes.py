"""A dispatch backlog shared with helper processes, against a fake Twilio over real HTTP.

The helpers are real spawned processes with their own HTTP clients, so the provider they
talk to is a real server: a FastAPI app under uvicorn on 127.0.0.1 that answers each
Messages POST with Twilio's documented 201 body and records what it was sent and when.
Attempts are planned by the real planner on the ``engine`` fixture's database (accounts due
on 2026-10-15 are due a text, those due on 2026-10-30 an email; see tests/test_planner.py).
"""

from __future__ import annotations

import asyncio
import base64
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from multiprocessing import AuthenticationError
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import SecretStr
from sqlalchemy import Engine

from outreach import daemon as daemon_module
from outreach import store
from outreach.channels import RateLimit, RateLimits
from outreach.clock import FixedClock
from outreach.compliance_store import attempts
from outreach.config import Settings
from outreach.daemon import Daemon, RunOptions
from outreach.dispatch_processes import helper_name as dispatch_helper_name
from outreach.dispatcher import Dispatcher
from outreach.helper_process import LEASE_NAME_LENGTH, lease_name
from outreach.housekeeping import housekeeping
from outreach.importing.account_rows import ImportDefaults
from outreach.leases import claim_due_accounts, claim_queued_attempts, sends_in_flight
from outreach.plan_processes import helper_name as plan_helper_name
from outreach.providers.registry import build_providers
from outreach.providers.transport import make_http_client
from outreach.ratelimit import RateLimiter
from outreach.shared_ratelimit import LimiterService, RemoteLimiter
from tests.providers.conftest import ACCOUNT_SID, AUTH_TOKEN, load_json
from tests.providers.test_ratelimit import FakeTime
from tests.test_dispatcher import outbox_lines
from tests.test_helper_process import alive
from tests.test_import_accounts import row
from tests.test_planner import WORKER, World, make_settings, publish_templates, rows_of
from tests.web.conftest import serving

pytestmark = pytest.mark.anyio

FROM = "+16175550100"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def world(engine: Engine, tmp_path: Path, clock: FixedClock, defaults: ImportDefaults) -> World:
    publish_templates(engine, clock)
    return World(engine, make_settings(engine, tmp_path), clock, tmp_path, defaults)


@dataclass
class FakeTwilio:
    """What the fake Twilio was sent: each message's form, and when it arrived. Once
    ``answer_up_to`` messages have come, the next ones are answered only when ``go`` is
    set (their sends stay in flight until then)."""

    forms: list[dict[str, str]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    answer_up_to: int | None = None
    go: threading.Event = field(default_factory=threading.Event)

    def attempt_ids(self) -> Counter[int]:
        return Counter(
            int(parse_qs(urlsplit(form["StatusCallback"]).query)["attempt_id"][0])
            for form in self.forms
        )


def fake_twilio_app(seen: FakeTwilio) -> FastAPI:
    app = FastAPI()
    created = load_json("rest/twilio_message_created.json")
    credentials = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()

    @app.post("/2010-04-01/Accounts/{sid}/Messages.json")
    async def messages(sid: str, request: Request) -> Response:
        if request.headers.get("authorization") != f"Basic {credentials}":
            return JSONResponse(
                {"code": 20003, "message": "Authenticate", "more_info":
                 "https://www.twilio.com/docs/errors/20003", "status": 401},
                status_code=401,
            )  # fmt: skip
        form = {key: str(value) for key, value in (await request.form()).items()}
        seen.forms.append(form)
        seen.arrivals.append(time.monotonic())
        if seen.answer_up_to is not None and len(seen.forms) > seen.answer_up_to:
            while not seen.go.is_set():
                await asyncio.sleep(0.01)
        message_sid = f"SM{len(seen.forms):032x}"
        path = f"/2010-04-01/Accounts/{sid}/Messages/{message_sid}"
        body = created | {
            "account_sid": sid, "sid": message_sid, "to": form["To"], "from": form["From"],
            "body": form["Body"], "uri": f"{path}.json",
            "subresource_uris": {"media": f"{path}/Media.json"},
        }  # fmt: skip
        return JSONResponse(body, status_code=201)

    return app


@pytest.fixture
def twilio() -> Iterator[tuple[FakeTwilio, str]]:
    seen = FakeTwilio()
    with serving(fake_twilio_app(seen)) as server:
        yield seen, server.base


def twilio_settings(world: World, base_url: str, per_second: float = 10_000) -> Settings:
    channels = world.tmp_path / "channels"
    channels.mkdir(exist_ok=True)
    (channels / "sms.yaml").write_text(
        f"rate_limits:\n  default:\n    per_second: {per_second}\n    burst: 1\n", encoding="utf-8"
    )
    return world.settings.model_copy(
        update={
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": SecretStr(AUTH_TOKEN),
            "twilio_from_number": FROM,
            "twilio_api_base_url": base_url,
            "public_base_url": "https://outreach.example.com",
            "channels_dir": channels,
        }
    )


def built_as_the_daemon_builds_it(
    world: World, settings: Settings, client: httpx.AsyncClient, *, batch_size: int = 4
) -> Dispatcher:
    """Providers from the settings, the channels' rate limits, helper processes allowed."""
    return Dispatcher(
        world.engine, settings, world.clock, WORKER,
        build_providers(settings, client, world.clock),
        RateLimiter.from_channels(settings.channels_dir), batch_size=batch_size, processes=2,
    )  # fmt: skip


@pytest.fixture
async def daemon_dispatcher(
    world: World, twilio: tuple[FakeTwilio, str]
) -> AsyncIterator[Dispatcher]:
    """The dispatcher as the daemon builds it (providers from the settings, Twilio for texts
    and calls, the outbox for email), with a helper process: batches of 4."""
    settings = twilio_settings(world, twilio[1], per_second=20)
    async with make_http_client() as client:
        dispatcher = built_as_the_daemon_builds_it(world, settings, client)
        try:
            yield dispatcher
        finally:
            await asyncio.to_thread(dispatcher.close)


def plan(world: World, texts: int, emails: int = 0) -> None:
    world.load(
        *(row(f"T-{i:03d}", phone=f"+1617555{i:04d}") for i in range(texts)),
        *(row(f"E-{i:03d}", phone=f"+1508555{i:04d}", due_date="2026-10-30")
          for i in range(emails)),
    )  # fmt: skip
    assert dict(world.planner().tick().outcomes) == {"queued": texts + emails}


async def test_a_backlog_is_shared_with_dispatch_processes_each_message_sent_once(
    world: World, twilio: tuple[FakeTwilio, str], daemon_dispatcher: Dispatcher
) -> None:
    seen, _ = twilio
    plan(world, texts=36, emails=6)
    first = await daemon_dispatcher.tick(max_attempts=24)
    rest = await daemon_dispatcher.tick()
    assert first.claimed == 24
    assert first.processes == 2  # the helper took its share
    assert rest.claimed == 18
    assert first.outcomes + rest.outcomes == Counter(sent=42)

    found = rows_of(world.engine, attempts)
    texts = [a for a in found if a.channel == "sms"]
    assert len(texts) == 36
    # Each text reached Twilio exactly once, and its message SID was recorded.
    assert seen.attempt_ids() == Counter({a.id: 1 for a in texts})
    assert {a.provider for a in texts} == {"twilio_sms"}
    assert len({a.provider_message_id for a in texts}) == 36
    # The helper worked only on texts; the emails went through the daemon's own outbox.
    assert sorted(line["attempt_id"] for line in outbox_lines(world)) == sorted(
        a.id for a in found if a.channel == "email"
    )
    assert all(a.status == "sent" and a.acquired_by is None for a in found)
    assert all(a.acquired_by is None for a in rows_of(world.engine, store.accounts))


async def test_a_senders_rate_holds_across_dispatch_processes(
    world: World, twilio: tuple[FakeTwilio, str], daemon_dispatcher: Dispatcher
) -> None:
    seen, _ = twilio
    plan(world, texts=52)
    assert (await daemon_dispatcher.tick(max_attempts=12)).processes == 2  # the helper is up
    seen.arrivals.clear()
    report = await daemon_dispatcher.tick(max_attempts=40)
    assert (report.claimed, report.processes, dict(report.outcomes)) == (40, 2, {"sent": 40})
    # One number at 20 a second, burst 1: 40 texts span at least 39 intervals, whichever
    # process sent them (each with a limiter of its own, they would take half as long).
    # A slot is used late, never early; the first request's own latency is allowed for.
    span = max(seen.arrivals) - min(seen.arrivals)
    assert span >= 39 / 20 - 0.1


async def test_a_stop_reaches_the_dispatch_processes_and_nothing_more_is_claimed(
    world: World, daemon_dispatcher: Dispatcher
) -> None:
    plan(world, texts=16)
    assert (await daemon_dispatcher.tick(max_attempts=12)).processes == 2
    pool = daemon_dispatcher._pool
    assert pool is not None
    daemon_dispatcher.request_stop()
    assert pool.stop.is_set()
    assert (await daemon_dispatcher.tick()).claimed == 0
    assert Counter(a.status for a in rows_of(world.engine, attempts)) == {"sent": 12, "queued": 4}


async def test_a_dispatch_process_that_died_is_replaced_and_nothing_is_sent_twice(
    world: World, twilio: tuple[FakeTwilio, str], daemon_dispatcher: Dispatcher
) -> None:
    seen, _ = twilio
    plan(world, texts=24)
    assert (await daemon_dispatcher.tick(max_attempts=12)).processes == 2
    for child in multiprocessing.active_children():  # the helper, killed while idle
        child.kill()
        child.join()
    # The dead helper is noticed when its pool is next used: on starting it (then a new
    # one starts) or on its answer (then this process sends the rest). Either way every
    # text goes once, and the backlog after that has a helper again.
    await daemon_dispatcher.tick()
    world.load(*(row(f"N-{i:03d}", phone=f"+1508555{i:04d}") for i in range(12)))
    assert dict(world.planner().tick().outcomes) == {"queued": 12}
    assert (await daemon_dispatcher.tick()).processes == 2
    assert seen.attempt_ids() == Counter({a.id: 1 for a in rows_of(world.engine, attempts)})
    assert len(seen.forms) == 36


async def test_the_outbox_and_small_ticks_are_dispatched_in_one_process(
    world: World, twilio: tuple[FakeTwilio, str]
) -> None:
    plan(world, texts=6)
    async with make_http_client() as client:
        # The outbox carries every channel: its simulated events live in this process.
        outboxes = built_as_the_daemon_builds_it(world, world.settings, client, batch_size=2)
        report = await outboxes.tick(max_attempts=4)
        assert (report.claimed, report.processes, outboxes._pool) == (4, 1, None)
        # Twilio carries texts, but what is due fits one batch.
        settings = twilio_settings(world, twilio[1])
        small = built_as_the_daemon_builds_it(world, settings, client)
        report = await small.tick()
        assert (report.claimed, report.processes, small._pool) == (2, 1, None)


async def test_a_daemon_with_an_injected_transport_dispatches_in_one_process(
    world: World, twilio: tuple[FakeTwilio, str]
) -> None:
    settings = twilio_settings(world, twilio[1]).model_copy(update={"dispatch_processes": 4})
    assert Daemon(settings, world.engine, world.clock, RunOptions()).dispatcher.processes == 4
    stand_in = httpx.MockTransport(lambda request: httpx.Response(503))
    injected = Daemon(settings, world.engine, world.clock, RunOptions(), transport=stand_in)
    assert injected.dispatcher.processes == 1


def helper_holds(world: World, dispatcher: Dispatcher) -> list[int]:
    """The attempts a live helper of ``dispatcher`` holds a lease on."""
    names = set(dispatcher.helper_names())
    return [a.id for a in rows_of(world.engine, attempts) if a.acquired_by in names]


async def test_a_stop_while_a_helper_waits_for_its_rate_puts_back_what_has_not_left(
    world: World, twilio: tuple[FakeTwilio, str]
) -> None:
    seen, base_url = twilio
    plan(world, texts=40)  # forty seconds' worth: the helper starts long before they are sent
    settings = twilio_settings(world, base_url, per_second=1)
    async with make_http_client() as client:
        dispatcher = built_as_the_daemon_builds_it(world, settings, client)
        try:
            tick = asyncio.create_task(dispatcher.tick())
            # One a second from one number: both processes hold texts waiting for a slot once
            # the helper has claimed its share (starting it can take seconds on a busy
            # machine, and a stop before then leaves it nothing to claim).
            deadline = time.monotonic() + 60
            while not any(helper_holds(world, dispatcher)):
                assert not tick.done() and time.monotonic() < deadline, "the helper claimed none"
                await asyncio.sleep(0.05)
            dispatcher.request_stop()
            report = await tick
        finally:
            await asyncio.to_thread(dispatcher.close)
    assert report.processes == 2
    found = rows_of(world.engine, attempts)
    sent = [a for a in found if a.status == "sent"]
    back = [a for a in found if a.status == "queued"]
    assert len(sent) + len(back) == 40 and len(back) >= 2
    assert len(seen.forms) == len(sent)  # nothing left that is not recorded as sent
    # What never left (put back, or never claimed) is as it was: not a try, no lease.
    assert all(a.tries == 0 and a.acquired_by is None for a in back)
    assert 0 < report.outcomes["requeued"] <= len(back)


async def test_a_helper_ignores_sigint_and_leaves_on_sigterm(
    world: World, daemon_dispatcher: Dispatcher
) -> None:
    plan(world, texts=16)
    assert (await daemon_dispatcher.tick(max_attempts=12)).processes == 2
    [helper] = multiprocessing.active_children()
    pid = helper.pid or 0
    os.kill(pid, signal.SIGINT)  # a terminal's Ctrl-C: the daemon decides
    time.sleep(1)
    assert alive(pid)
    os.kill(pid, signal.SIGTERM)  # idle: it leaves at once
    # The pool reaps its own processes, so the exit is seen in /proc, not in an exit code.
    deadline = time.monotonic() + 10
    while alive(pid):
        assert time.monotonic() < deadline, "the helper stayed after SIGTERM"
        time.sleep(0.05)
    # The next backlog has a helper again, and sends the rest once.
    assert dict((await daemon_dispatcher.tick()).outcomes) == {"sent": 4}


@contextmanager
def a_helpers_outcomes_cannot_be_recorded(engine: Engine) -> Iterator[None]:
    """In the block, recording that a dispatch process's text was sent fails, as when the
    database fails at that moment; the daemon's own outcomes are recorded."""
    failed = "the database failed"
    if engine.dialect.name == "sqlite":
        when = "NEW.status = 'sent' AND instr(OLD.acquired_by, '/dispatch') > 0"
        create = [
            f"CREATE TRIGGER outcome_fails BEFORE UPDATE ON attempt WHEN {when} "
            f"BEGIN SELECT RAISE(ABORT, '{failed}'); END"
        ]
        drop = ["DROP TRIGGER IF EXISTS outcome_fails"]
    else:
        when = "NEW.status = 'sent' AND strpos(OLD.acquired_by, '/dispatch') > 0"
        create = [
            "CREATE FUNCTION outcome_fails() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{failed}'; END $$",
            f"CREATE TRIGGER outcome_fails BEFORE UPDATE ON attempt FOR EACH ROW WHEN ({when}) "
            "EXECUTE FUNCTION outcome_fails()",
        ]
        drop = ["DROP TRIGGER IF EXISTS outcome_fails ON attempt",
                "DROP FUNCTION IF EXISTS outcome_fails()"]  # fmt: skip
    with engine.begin() as connection:
        for statement in create:
            connection.exec_driver_sql(statement)
    try:
        yield
    finally:
        with engine.begin() as connection:
            for statement in drop:
                connection.exec_driver_sql(statement)


async def test_a_helpers_sends_are_left_alone_only_while_in_flight(
    world: World, twilio: tuple[FakeTwilio, str], daemon_dispatcher: Dispatcher
) -> None:
    seen, _ = twilio
    plan(world, texts=24)
    # The daemon sends 8, its helper 4 whose outcomes cannot be recorded: they stay sending.
    with a_helpers_outcomes_cannot_be_recorded(world.engine):
        await daemon_dispatcher.tick(max_attempts=12)
    stuck = [a for a in rows_of(world.engine, attempts) if a.status == "sending"]
    assert len(stuck) == 4 and len(seen.forms) == 12
    [helper] = {a.acquired_by for a in stuck}
    assert helper in daemon_dispatcher.helper_names()  # the helper lives on

    # The next backlog: the first batch is answered, then both processes' sends (4 each)
    # wait at Twilio while housekeeping runs long after every lease has ended.
    seen.answer_up_to = 16
    tick = asyncio.create_task(daemon_dispatcher.tick(max_attempts=12))
    try:
        deadline = time.monotonic() + 30
        while len(seen.forms) < 24:
            assert time.monotonic() < deadline, "the sends did not reach Twilio"
            await asyncio.sleep(0.02)
        in_flight = {a.id for a in rows_of(world.engine, attempts) if a.status == "sending"}
        in_flight -= {a.id for a in stuck}
        assert {a.acquired_by for a in rows_of(world.engine, attempts) if a.id in in_flight} == {
            WORKER, helper,
        }  # fmt: skip
        after = world.clock.now() + timedelta(hours=1)
        held = await asyncio.to_thread(
            housekeeping, world.engine, after, WORKER, helpers=daemon_dispatcher.helper_names()
        )
    finally:
        seen.go.set()
    report = await tick

    # The helper's attempts whose outcome was lost are held for review, the helper alive;
    # the sends in flight, the helper's as the daemon's, are not.
    assert held.lost_sends == 4
    assert dict(report.outcomes) == {"sent": 12} and report.processes == 2
    found = {a.id: a for a in rows_of(world.engine, attempts)}
    assert {found[a.id].status for a in stuck} == {"unknown"}
    assert all(found[a.id].acquired_by is None for a in stuck)
    assert {found[i].status for i in in_flight} == {"sent"}
    assert Counter(a.status for a in found.values()) == {"sent": 20, "unknown": 4}
    assert seen.attempt_ids() == Counter(dict.fromkeys(found, 1))


def test_a_processs_sends_count_in_flight_until_it_says_so_or_its_connection_ends() -> None:
    service = LimiterService(RateLimiter({}))
    try:
        one, two = (RemoteLimiter(service.address, service.authkey) for _ in range(2))
        one.report_sends(True, "d/dispatch1", [1, 2, 3])
        assert sends_in_flight("d/dispatch1") == {1, 2, 3}  # known once the hold returns
        two.report_sends(True, "d/dispatch2", [4])
        one.report_sends(False, "d/dispatch1", [2])
        one.reserve_many([("sms", "a")])  # answered after what was said before it
        assert sends_in_flight("d/dispatch1") == {1, 3}
        one.close()  # the process ended (or died) with sends it had not released
        deadline = time.monotonic() + 5
        while sends_in_flight("d/dispatch1"):
            assert time.monotonic() < deadline, "a closed connection's sends stayed in flight"
            time.sleep(0.02)
        assert sends_in_flight("d/dispatch2") == {4}
        two.close()
    finally:
        service.close()


def test_closing_the_limiter_service_ends_its_thread() -> None:
    before = {t for t in threading.enumerate() if t.name == "rate-limits"}
    service = LimiterService(RateLimiter({}))
    remote = RemoteLimiter(service.address, service.authkey)
    assert remote.reserve_many([("sms", "a")]) == [0.0]
    remote.close()
    service.close()
    deadline = time.monotonic() + 5
    while {t for t in threading.enumerate() if t.name == "rate-limits"} - before:
        assert time.monotonic() < deadline, "a rate-limits thread outlived its service"
        time.sleep(0.02)


def test_processes_reserve_from_one_limiter_and_a_stranger_is_refused() -> None:
    time_ = FakeTime()
    limiter = RateLimiter(
        {"sms": RateLimits(default=RateLimit(per_second=1, burst=1))},
        monotonic=time_.monotonic,
        sleep=time_.sleep,
    )
    service = LimiterService(limiter)
    try:
        one, two = (RemoteLimiter(service.address, service.authkey) for _ in range(2))
        assert one.reserve_many([("sms", "a"), ("sms", "a")], None) == [0, 1]
        assert two.reserve_many([("sms", "a"), ("sms", "b")], None) == [2, 0]
        assert limiter.reserve("sms", "a") == 3  # the daemon's own sends share the same slots
        assert one.reserve_many([("sms", "a")], 2.5) == [None]  # too far off: left queued
        assert one.reserve_many([], None) == []
        with pytest.raises(AuthenticationError):
            RemoteLimiter(service.address, b"not the key")
        one.close()
        two.close()
    finally:
        service.close()


# --- lease names ----------------------------------------------------------------------------

LONG_HOST = "app-07.collections.eu-west-1.corp.example.com"
MAX_PID = 4_194_304  # Linux's pid_max ceiling: seven digits


def long_worker(monkeypatch: pytest.MonkeyPatch, host: str = LONG_HOST) -> str:
    monkeypatch.setattr(daemon_module.socket, "gethostname", lambda: host)
    monkeypatch.setattr(daemon_module.os, "getpid", lambda: MAX_PID)
    return daemon_module.worker_name()


def test_a_daemons_helpers_have_names_that_fit_without_cutting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = long_worker(monkeypatch)
    for helper in (dispatch_helper_name(worker, MAX_PID), plan_helper_name(worker, MAX_PID)):
        assert len(helper) <= LEASE_NAME_LENGTH
        assert helper.startswith(worker + "/")


def test_a_lease_name_too_long_is_cut_with_a_hash_that_keeps_it_unique() -> None:
    worker = "w" * 70
    names = {
        dispatch_helper_name(worker, 1),
        dispatch_helper_name(worker, 2),
        dispatch_helper_name(worker[:-1] + "x", 1),
        plan_helper_name(worker, 1),
    }
    assert len(names) == 4
    assert all(len(name) <= LEASE_NAME_LENGTH for name in names)
    # The helper and its daemon's housekeeping work the name out apart: the same each time.
    assert dispatch_helper_name(worker, 1) == dispatch_helper_name(worker, 1)
    assert dispatch_helper_name(worker, 1).endswith("/dispatch1")
    assert dispatch_helper_name("short", 7) == "short/dispatch7"
    assert len(lease_name("w", "/" + "s" * 80)) == LEASE_NAME_LENGTH


def test_the_columns_hold_a_lease_name_of_the_longest_length() -> None:
    assert attempts.c.acquired_by.type.length == LEASE_NAME_LENGTH
    assert store.accounts.c.acquired_by.type.length == LEASE_NAME_LENGTH


@pytest.mark.parametrize("cut", [False, True])
async def test_helpers_of_a_daemon_on_a_long_host_name_can_claim(
    world: World, monkeypatch: pytest.MonkeyPatch, cut: bool
) -> None:
    plan(world, texts=1)
    world.load(row("A-2", due_date="2026-10-30"))  # due, not planned yet
    worker = "w" * 70 if cut else long_worker(monkeypatch)
    dispatcher_name = dispatch_helper_name(worker, MAX_PID)
    planner_name = plan_helper_name(worker, MAX_PID)
    now = world.clock.now()
    until = now + timedelta(minutes=5)
    with world.engine.begin() as connection:
        assert len(claim_queued_attempts(connection, dispatcher_name, now, until, 10)) == 1
        assert len(claim_due_accounts(connection, planner_name, now, until, 10)) == 1
    [stored] = rows_of(world.engine, attempts)
    assert stored.acquired_by == dispatcher_name
    assert planner_name in {a.acquired_by for a in rows_of(world.engine, store.accounts)}
