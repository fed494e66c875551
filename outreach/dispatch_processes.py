"""A dispatch backlog sent by several processes at once.

Each send costs CPU in the daemon (the compliance recheck, building the request, reading
the answer), so one process sends on one core. When a dispatch tick finds more than a
batch due, helper processes share the rest with the daemon's own dispatcher: each is a
``Dispatcher`` with its own connection, HTTP pool and providers built from the settings,
its own name for leases, and its event loop kept for the following ticks. Leases keep them
apart, as they keep several daemons apart; the rate limits stay the daemon's (see
``outreach.shared_ratelimit``), so a sender's rate holds whichever process sends. Over the
same connection each helper tells the daemon which sends it has in flight, so that the
daemon's housekeeping leaves exactly those alone, as it does its own: a helper's send whose
outcome could not be recorded is held for review once its lease ends, the helper alive or
not.

The helpers send only on channels carried by a real provider: the outbox keeps its
simulated events in the daemon's memory. The daemon's stop request reaches them through
``stop``, and they put back in the queue what has not left, as the daemon does (see
``outreach.helper_process`` for signals and when they leave).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from multiprocessing.synchronize import Event

from outreach import helper_process
from outreach.clock import Clock, SystemClock
from outreach.config import Settings
from outreach.dispatcher import Dispatcher, DispatchReport
from outreach.event_loop import new_event_loop
from outreach.shared_ratelimit import LimiterService


class _TickClock:
    """The clock of the tick at hand: the daemon's, handed over with each tick (a scaled
    or fixed clock in a rehearsal), behind the one object the providers were given."""

    def __init__(self) -> None:
        self.current: Clock = SystemClock()

    def now(self) -> datetime:
        return self.current.now()


class _Helper:
    def __init__(self, dispatcher: Dispatcher, clock: _TickClock) -> None:
        self.dispatcher = dispatcher
        self.clock = clock
        self.loop = new_event_loop()


_helper: _Helper | None = None  # the dispatch process's own dispatcher


class DispatchProcesses(helper_process.HelperPool[DispatchReport]):
    def __init__(
        self,
        settings: Settings,
        worker: str,
        count: int,
        channels: Sequence[str],
        limits: LimiterService,
        *,
        batch_size: int,
        concurrency: int,
        lease: timedelta,
    ) -> None:
        self.worker = worker
        self.limits = limits
        shared = (limits.address, limits.authkey)
        sizes = (batch_size, concurrency, lease)
        super().__init__(count, _start, (settings, worker, tuple(channels), shared, sizes), _tick)

    def live_names(self) -> list[str]:
        """The lease names of the helpers alive now: housekeeping leaves the sends they
        reported in flight alone, and holds the rest of their ``sending`` attempts (and all
        of a dead one's) for review once their lease ends."""
        return [helper_name(self.worker, child.pid) for child in multiprocessing.active_children()]

    def close(self) -> None:
        super().close()
        self.limits.close()


def helper_name(worker: str, pid: int | None) -> str:
    return helper_process.lease_name(worker, f"/dispatch{pid}")


def _start(
    settings: Settings,
    worker: str,
    channels: tuple[str, ...],
    limits: tuple[str, bytes],
    sizes: tuple[int, int, timedelta],
    stop: Event,
    level: int,
) -> None:
    global _helper
    from outreach.db import make_engine
    from outreach.leases import report_sends_to
    from outreach.providers.registry import build_providers
    from outreach.providers.transport import make_http_client
    from outreach.shared_ratelimit import RemoteLimiter

    helper_process.prepare(level)
    clock = _TickClock()
    providers = build_providers(settings, make_http_client(), clock)
    batch_size, concurrency, lease = sizes
    limiter = RemoteLimiter(*limits)
    report_sends_to(limiter.report_sends)
    dispatcher = Dispatcher(
        make_engine(settings),
        settings,
        clock,
        helper_name(worker, os.getpid()),
        {channel: providers[channel] for channel in channels},
        limiter,
        batch_size=batch_size,
        concurrency=concurrency,
        lease=lease,
        channels=channels,
        stop=helper_process.stop_flag(stop),
    )
    _helper = _Helper(dispatcher, clock)


def _tick(clock: Clock, limit: int | None) -> DispatchReport:
    assert _helper is not None, "the dispatch process was not started"
    _helper.clock.current = clock
    with helper_process.working():
        return _helper.loop.run_until_complete(_helper.dispatcher.tick(limit, quiet=True))
