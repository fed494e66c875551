"""A backlog planned by several processes at once.

Planning is Python work (cadence, compliance, rendering), so one process plans on one core.
When a tick finds more than a batch due, helper processes share the rest with the daemon's
own planner: each is a ``Planner`` with its own connection and its own name for leases,
claiming batches until nothing is due. Leases keep them apart, as they keep several
daemons apart. SQLite takes their writes one at a time (in WAL mode reads go on
meanwhile); PostgreSQL takes them side by side.

They start once, on the first backlog, and stay for the following ticks (see
``outreach.helper_process`` for how they are spawned, and when they leave).
"""

from __future__ import annotations

import os
from datetime import timedelta
from multiprocessing.synchronize import Event
from typing import TYPE_CHECKING

from outreach import helper_process
from outreach.clock import Clock
from outreach.config import Settings

if TYPE_CHECKING:
    from outreach.planner import Planner, PlanReport

_planner: Planner | None = None  # the plan process's own planner


class PlanProcesses(helper_process.HelperPool["PlanReport"]):
    def __init__(
        self, settings: Settings, worker: str, count: int, batch_size: int, lease: timedelta
    ) -> None:
        super().__init__(count, _start, (settings, worker, batch_size, lease), _tick)


def process_count(settings: Settings, wanted: int | None = None) -> int:
    """How many processes the settings ask for (``wanted``, or ``plan_processes``; 0 is
    one per CPU core). An in-memory SQLite database is private to its process, so it is
    worked in that process."""
    if settings.database_url.startswith("sqlite") and (
        ":memory:" in settings.database_url or settings.database_url.rstrip("/") == "sqlite:"
    ):
        return 1
    chosen = settings.plan_processes if wanted is None else wanted
    return chosen or os.cpu_count() or 1


def helper_name(worker: str, pid: int) -> str:
    return helper_process.lease_name(worker, f"/plan{pid}")


def _start(
    settings: Settings, worker: str, batch_size: int, lease: timedelta, stop: Event, level: int
) -> None:
    global _planner
    from outreach.clock import SystemClock
    from outreach.db import make_engine
    from outreach.planner import Planner

    helper_process.prepare(level)
    _planner = Planner(
        make_engine(settings),
        settings,
        SystemClock(),
        helper_name(worker, os.getpid()),
        batch_size=batch_size,
        lease=lease,
        processes=1,
        stop=helper_process.stop_flag(stop),
    )


def _tick(clock: Clock, limit: int | None) -> PlanReport:
    assert _planner is not None, "the plan process was not started"
    _planner.clock = clock
    with helper_process.working():
        return _planner.tick(limit, quiet=True)
