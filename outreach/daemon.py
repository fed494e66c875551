"""``outreach run``: the background service.

APScheduler (3.x, ``AsyncIOScheduler``, memory job store) is the metronome: it ticks the
plan stage, the dispatch stage and housekeeping at their intervals, each job coalesced
and never overlapping itself. It holds no work: the database says what is due, and leases
let several daemons share one PostgreSQL database. The web app (health, webhooks) runs in
the same event loop unless told not to. Each daemon keeps a row in the registry of
daemons (``outreach.daemon_registry``) from its start to its stop, seen at each
housekeeping tick, and warns when another plans with other files or another version.

SIGTERM and SIGINT stop the claiming of new work, in ``run --once`` too; the batch in
flight finishes (or what has not left yet is put back in the queue) within a timeout, and
the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import uvicorn
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import Engine, select

from outreach import event_loop
from outreach.cadence_changes import look_again_at_changed, unknown_steps, warn_of_unknown_steps
from outreach.clock import Clock, SystemClock
from outreach.compliance.rules import load_ruleset
from outreach.config import Settings
from outreach.daemon_registry import Registration
from outreach.dispatcher import Dispatcher, DispatchReport
from outreach.errors import ConfigError
from outreach.events import EventPolicy, apply_events
from outreach.housekeeping import housekeeping
from outreach.listening import listening_socket
from outreach.plan_account import SMS_FOOTER
from outreach.plan_processes import process_count
from outreach.planner import Planner, PlanReport
from outreach.providers.base import Provider
from outreach.providers.outbox import Outbox
from outreach.providers.registry import build_providers
from outreach.providers.transport import make_http_client
from outreach.ratelimit import RateLimiter
from outreach.rendering.context import ANSWER_TEMPLATE, ANSWER_TONE
from outreach.store import accounts
from outreach.web.app import create_app

log = logging.getLogger("outreach.daemon")


@dataclass(frozen=True)
class RunOptions:
    plan_every: float = 60.0  # seconds
    dispatch_every: float = 5.0
    housekeeping_every: float = 30.0
    web: bool = True
    host: str = "127.0.0.1"
    port: int = 8000
    stop_timeout: float = 30.0


def worker_name() -> str:
    # Host and pid alone repeat: a container's daemon is PID 1 on the same hostname after a
    # restart, and housekeeping would take the sends its previous run lost for this run's
    # sends in flight, leaving them ``sending`` for ever. A token makes each start its own.
    # 30 characters of the host leave room for a helper's "/dispatch<pid>" within the
    # 64 characters of a lease name (longer names are cut with a hash: lease_name).
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{secrets.token_hex(4)}"


class Daemon:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        clock: Clock,
        options: RunOptions,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self.options = options
        self.worker = worker_name()
        rules = load_ruleset(settings.compliance_rules_file)
        self.planner = Planner(engine, settings, clock, self.worker, rules=rules)
        self.client = make_http_client(transport)
        self.providers: dict[str, Provider] = build_providers(settings, self.client, clock)
        self.dispatcher = Dispatcher(
            engine,
            settings,
            clock,
            self.worker,
            self.providers,
            RateLimiter.from_channels(settings.channels_dir),
            rules=rules,
            # Helper processes build their providers from the settings: not around an
            # injected transport.
            processes=process_count(settings, settings.dispatch_processes)
            if transport is None
            else 1,
        )
        self.event_policy = EventPolicy.from_settings(settings)
        # Computed now, as the files above were read: the daemon plans with these.
        self.registration = Registration(
            engine, clock, self.worker, settings, options.housekeeping_every
        )
        self._stop = asyncio.Event()
        self._running: set[asyncio.Task[Any]] = set()

    # --- the jobs ------------------------------------------------------------------------

    async def plan(self) -> PlanReport:
        # Planning is database and CPU work: off the loop, so sends and webhooks go on.
        return await asyncio.to_thread(self.planner.tick)

    async def dispatch(self) -> DispatchReport:
        return await self.dispatcher.tick()

    def housekeeping(self) -> None:
        helpers = self.dispatcher.helper_names()
        housekeeping(self.engine, self.clock.now(), self.worker, helpers=helpers,
                     reply_pause=timedelta(days=self.settings.reply_pause_days))  # fmt: skip

    async def housekeep(self) -> None:
        await asyncio.to_thread(self.housekeeping)
        await self.apply_outbox_events()

    async def refresh_registry(self) -> None:
        # A job of its own, at housekeeping's interval: a live daemon stays seen however
        # long a housekeeping tick takes, and whether or not it fails.
        await asyncio.to_thread(self.registration.refresh)

    async def apply_outbox_events(self) -> int:
        """The outbox's simulated deliveries and replies go through the same path as a
        provider's webhooks."""
        now = self.clock.now()
        events = [
            event
            for provider in {id(p): p for p in self.providers.values()}.values()
            if isinstance(provider, Outbox)
            for event in provider.due_events(now)
        ]
        if events:
            await asyncio.to_thread(apply_events, self.engine, events, now, self.event_policy)
        return len(events)

    # --- running -------------------------------------------------------------------------

    async def run_once(self) -> tuple[PlanReport, DispatchReport]:
        """One housekeeping, plan and dispatch tick; the sends are awaited.

        SIGTERM and SIGINT stop it as they stop the daemon: no new work is claimed, and the
        tick in flight gets ``stop_timeout`` to finish or put back what has not left."""
        reports = _Reports()
        with self._stopping_on_signals():
            try:
                await self._register()
                tick = asyncio.create_task(self._once(reports))
                stopped = asyncio.create_task(self._stop.wait())
                await asyncio.wait({tick, stopped}, return_when=asyncio.FIRST_COMPLETED)
                stopped.cancel()
                if not tick.done():
                    done, _ = await asyncio.wait({tick}, timeout=self.options.stop_timeout)
                    if not done:
                        tick.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await tick
                        log.warning(
                            "the tick still running after %gs was cancelled; what it had "
                            "marked sending is held for review by the next housekeeping",
                            self.options.stop_timeout,
                        )
                if not tick.cancelled():
                    tick.result()  # a failure in the tick is the command's failure
                return reports.planned, reports.sent
            finally:
                await asyncio.to_thread(self.registration.unregister)
                await asyncio.to_thread(self.close_processes)
                await self.client.aclose()
                if self._stop.is_set():
                    log.info("outreach stopped")

    async def _once(self, reports: _Reports) -> None:
        """The stages of ``run_once``, each skipped once a stop is requested; each stage's
        report is kept as it finishes, so a cancelled tick still reports the earlier ones."""
        await asyncio.to_thread(self.housekeeping)
        if not self._stop.is_set():
            reports.planned = await self.plan()
        if not self._stop.is_set():
            reports.sent = await self.dispatch()
        await self.apply_outbox_events()

    @contextlib.contextmanager
    def _stopping_on_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        handled: list[signal.Signals] = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(signum, self.request_stop, signum)
            except (NotImplementedError, RuntimeError, ValueError):
                # Not the main thread, or no signals (Windows): stopped only by request.
                continue
            handled.append(signum)
        try:
            yield
        finally:
            for signum in handled:
                loop.remove_signal_handler(signum)

    async def serve(self) -> None:
        try:
            # Bound before anything starts: a port in use stops it at once, cleanly.
            sockets = (
                [listening_socket(self.options.host, self.options.port, daemon=True)]
                if self.options.web
                else []
            )
        except ConfigError:
            await self.client.aclose()
            raise
        with self._stopping_on_signals():
            await self._register()
            try:
                await self._serve(sockets)
            finally:
                await asyncio.to_thread(self.registration.unregister)

    async def _register(self) -> None:
        try:
            await asyncio.to_thread(self.registration.register)
        except Exception:
            # The registry only informs: the work goes on, and the next housekeeping tick
            # registers again (``run --once`` then goes unlisted).
            log.exception("registering in the daemon registry failed")
        try:
            await asyncio.to_thread(self.check_cadences)
        except Exception:
            # Planning goes on as it did; the next start tries again.
            log.exception("checking the cadences against the database failed")
        try:
            await asyncio.to_thread(self.check_first_texts)
        except Exception:
            log.exception("checking the published SMS templates' first texts failed")

    def check_cadences(self) -> None:
        """Warn of steps the database remembers that the files no longer name (renamed
        steps are sent again), and make the accounts a changed cadence had finished with
        due once (``outreach.cadence_changes``)."""
        cadences = self.planner.cadences
        looked = look_again_at_changed(self.engine, cadences, self.clock.now())
        for name, count in looked.items():
            log.info("cadence %s changed: %d finished account(s) looked at again", name, count)
        # Only a changed cadence can have lost a key: the whole history is not read at
        # every start (``outreach cadences check`` reads it for every cadence).
        changed = {name: cadences[name] for name in looked}
        with self.engine.connect() as connection:
            found = unknown_steps(connection, changed)
        for warning in warn_of_unknown_steps(found, str(self.settings.schedules_dir)):
            log.warning("%s", warning)

    def check_first_texts(self) -> None:
        """Warn, once at start-up, of an SMS footer published before first contacts were
        told apart (after an upgrade): a debt collector's first texts wait until it is
        published again, and planning says so only once a template. Said only where a
        debt collector's account may be contacted: a creditor's own texts never wait."""
        if not self._collects_for_others():
            return
        # Agents' answers are refused in the inbox rather than held back: not listed.
        answers = f"/{ANSWER_TEMPLATE}.{ANSWER_TONE}."
        short = [path for path in self.planner.short_first_texts() if answers not in path]
        if short:
            log.warning(
                "templates: the published SMS footer (%s) gives a debt collector's first "
                "text only the short disclosure: first texts from %s wait until it is "
                "published again: run `outreach templates sync` and then `outreach "
                "templates publish %s` (`sync --publish` would also publish every other "
                "changed template file)",
                SMS_FOOTER,
                ", ".join(short),
                SMS_FOOTER,
            )

    def _collects_for_others(self) -> bool:
        with self.engine.connect() as connection:
            found = connection.execute(
                select(accounts.c.id)
                .where(accounts.c.collector_type == "third_party", accounts.c.status == "active")
                .limit(1)
            ).first()
        return found is not None

    async def _serve(self, sockets: list[socket.socket]) -> None:
        scheduler = AsyncIOScheduler(
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
        )
        jobs: list[tuple[str, Callable[[], Awaitable[Any]], float]] = [
            ("housekeeping", self.housekeep, self.options.housekeeping_every),
            ("registry", self.refresh_registry, self.options.housekeeping_every),
            ("plan", self.plan, self.options.plan_every),
            ("dispatch", self.dispatch, self.options.dispatch_every),
        ]
        for name, job, every in jobs:
            scheduler.add_job(
                self._tracked(name, job),
                "interval",
                seconds=every,
                id=name,
                # The scheduler keeps real time even when the daemon's clock is scaled.
                next_run_time=SystemClock().now(),
            )
        server = self._web_server() if self.options.web else None
        web_task = asyncio.create_task(server.serve(sockets)) if server is not None else None
        scheduler.start()
        where = f" and the web app on http://{self.options.host}:{self.options.port}"
        log.info(
            "outreach running as %s: plan every %gs, dispatch every %gs%s",
            self.worker,
            self.options.plan_every,
            self.options.dispatch_every,
            where if server is not None else "",
        )
        await self._stop.wait()
        # Pause first: shutting the scheduler down would cancel the ticks in flight.
        scheduler.pause()
        await self._finish_in_flight()
        scheduler.shutdown(wait=False)
        if server is not None and web_task is not None:
            server.should_exit = True
            await web_task
        await asyncio.to_thread(self.close_processes)
        await self.client.aclose()
        log.info("outreach stopped")

    def close_processes(self) -> None:
        self.planner.close()
        self.dispatcher.close()

    def request_stop(self, signum: int | None = None) -> None:
        if not self._stop.is_set():
            name = signal.Signals(signum).name if signum is not None else "a request"
            log.info("stopping on %s: no new work is claimed", name)
        self.dispatcher.request_stop()
        self.planner.request_stop()
        self._stop.set()

    async def _finish_in_flight(self) -> None:
        if not self._running:
            return
        _, pending = await asyncio.wait(self._running, timeout=self.options.stop_timeout)
        for task in pending:
            task.cancel()
        if pending:
            log.warning(
                "%d tick(s) still running after %gs were cancelled; what they had marked "
                "sending is held for review by the next housekeeping",
                len(pending),
                self.options.stop_timeout,
            )

    def _tracked(self, name: str, job: Callable[[], Awaitable[Any]]) -> Callable[[], Any]:
        async def run() -> None:
            if self._stop.is_set():
                return
            task = asyncio.current_task()
            assert task is not None
            self._running.add(task)
            try:
                await job()
            except Exception:
                # One failed tick must not stop the service; the next tick tries again.
                log.exception("%s tick failed", name)
            finally:
                self._running.discard(task)

        return run

    def _web_server(self) -> uvicorn.Server:
        config = uvicorn.Config(
            # The app shares the daemon's clock and HTTP client; its lifespan starts and
            # drains the webhook writer.
            create_app(self.settings, self.engine, clock=self.clock, http_client=self.client),
            host=self.options.host,
            port=self.options.port,
            forwarded_allow_ips=self.settings.forwarded_allow_ips,
            log_level=self.settings.log_level.lower(),
            # A line per request would bury the ticks' lines: only at DEBUG.
            access_log=self.settings.log_level == "DEBUG",
            lifespan="on",
        )
        return _Server(config)


@dataclass
class _Reports:
    planned: PlanReport = field(default_factory=PlanReport)
    sent: DispatchReport = field(default_factory=DispatchReport)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def serve_web(settings: Settings, engine: Engine, host: str, port: int) -> None:
    """``outreach web``: the web app alone; SIGTERM and SIGINT stop it, and it exits 0."""
    sockets = [listening_socket(host, port, daemon=False)]
    config = uvicorn.Config(
        create_app(settings, engine),
        host=host,
        port=port,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        log_level=settings.log_level.lower(),
    )
    event_loop.run(_WebAlone(config).serve(sockets))


class _WebAlone(uvicorn.Server):
    """uvicorn whose stop on SIGTERM is a clean exit, as on SIGINT: it does not raise the
    signal again once shut down (a service manager's stop is not a failure)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {
            signum: signal.signal(signum, self.handle_exit)
            for signum in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
