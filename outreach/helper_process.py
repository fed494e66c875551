"""What the plan and dispatch helper processes share: how they start, and when they leave.

A helper ignores SIGINT: a terminal's Ctrl-C reaches the whole process group, and the
daemon's stop request reaches its helpers through their stop event, so that each finishes
the batch in hand. A helper leaves on its own when it is sent SIGTERM (``kill``, or a
service manager stopping everything) or when the daemon that started it is gone (killed,
crashed): at once when idle, after the batch in hand when working. A dead daemon's
helpers would otherwise wait for work for ever, holding their database connections.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing.synchronize import Event
from types import FrameType
from typing import Any, Generic, TypeVar

from outreach.clock import Clock
from outreach.leases import StopFlag

Report = TypeVar("Report")

# The length of the ``acquired_by`` columns that hold lease names (account and attempt).
LEASE_NAME_LENGTH = 64
_DIGEST_LENGTH = 12


def lease_name(worker: str, suffix: str) -> str:
    """A helper's name for its leases: its daemon's ``worker`` name and ``suffix``. When that
    is longer than the column, the worker's part is cut and followed by a hash of the whole
    name, so that it still fits, is still unique, and comes out the same in the helper and
    in the daemon that checks which helpers are alive."""
    name = worker + suffix
    if len(name) <= LEASE_NAME_LENGTH:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:_DIGEST_LENGTH]
    keep = LEASE_NAME_LENGTH - _DIGEST_LENGTH - 1 - len(suffix)
    if keep < 0:  # a suffix too long to keep whole: the hash alone tells names apart
        return f"{name[: LEASE_NAME_LENGTH - _DIGEST_LENGTH - 1]}~{digest}"
    return f"{worker[:keep]}~{digest}{suffix}"


# Set on SIGTERM or when the daemon is gone; cleared never.
leaving = threading.Event()
_working = threading.Event()
PARENT_CHECK_SECONDS = 1.0


class HelperPool(Generic[Report]):
    """``count`` helper processes, spawned, not forked (the daemon runs threads, the web
    server's and the event loop's, that a fork would copy in an unknown state). Each runs
    ``start(*args, stop, log_level)`` once, then ``tick(clock, limit)`` for each tick."""

    def __init__(
        self,
        count: int,
        start: Callable[..., None],
        args: tuple[Any, ...],
        tick: Callable[[Clock, int | None], Report],
    ) -> None:
        self.count = count
        self._tick = tick
        context = multiprocessing.get_context("spawn")
        self.stop: Event = context.Event()
        self._pool = ProcessPoolExecutor(
            max_workers=count,
            mp_context=context,
            initializer=start,
            initargs=(*args, self.stop, logging.getLogger().getEffectiveLevel()),
        )

    def start(self, clock: Clock, limit: int | None) -> list[Future[Report]]:
        """Each process works until nothing is due, or ``limit`` items."""
        return [self._pool.submit(self._tick, clock, limit) for _ in range(self.count)]

    def close(self) -> None:
        self.stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)


class _Either:
    def __init__(self, *flags: StopFlag) -> None:
        self.flags = flags

    def is_set(self) -> bool:
        return any(flag.is_set() for flag in self.flags)


def prepare(level: int) -> None:
    """What a helper does first, before it starts any thread."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "sigtimedwait"):
        # The kernel may hand SIGTERM to any thread, and a Python handler runs only when
        # the main thread next runs Python, which an idle helper, blocked waiting for
        # work, does not: so SIGTERM is blocked in every thread (they inherit the mask)
        # and taken by the watch thread.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    else:  # pragma: no cover - macOS: no sigtimedwait
        signal.signal(signal.SIGTERM, _terminated)
    threading.Thread(target=_watch, args=(_daemon_gone(),), name="helper-watch",
                     daemon=True).start()  # fmt: skip
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("sqlalchemy").setLevel(max(logging.WARNING, level))


def stop_flag(daemon_stop: StopFlag) -> StopFlag:
    """The helper's stop: the daemon's request, or its own reason to leave."""
    return _Either(daemon_stop, leaving)


@contextmanager
def working() -> Iterator[None]:
    """Around each tick: a helper that must leave does so once the tick is over."""
    _working.set()
    try:
        yield
    finally:
        _working.clear()
        if leaving.is_set():
            os._exit(0)


def _leave() -> None:
    leaving.set()
    if not _working.is_set():
        os._exit(0)


def _terminated(signum: int, frame: FrameType | None) -> None:
    _leave()


def _daemon_gone() -> Callable[[], bool]:
    """Whether the daemon that started this helper is gone. Read from the pipe the spawn
    hands every child, which ends when the daemon does: a daemon killed while the helper was
    still importing is seen as gone too, where the helper's parent process id, read then,
    would already be another's."""
    parent = multiprocessing.parent_process()
    if parent is None:  # pragma: no cover - not started by multiprocessing
        started_by = os.getppid()
        return lambda: os.getppid() != started_by
    sentinel = parent.sentinel
    return lambda: bool(multiprocessing.connection.wait([sentinel], timeout=0))


def _watch(daemon_gone: Callable[[], bool]) -> None:
    """Leave on SIGTERM, or once the daemon is gone."""
    while not daemon_gone():
        if not hasattr(signal, "sigtimedwait"):  # pragma: no cover - macOS
            time.sleep(PARENT_CHECK_SECONDS)
        elif signal.sigtimedwait({signal.SIGTERM}, PARENT_CHECK_SECONDS) is not None:
            break
    _leave()
