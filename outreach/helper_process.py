"""What the plan and dispatch helper processes share: how they start, and when they leave.

A helper ignores SIGINT: a terminal's Ctrl-C reaches the whole process group, and the
daemon's stop request reaches its helpers through their stop event, so that each finishes
the batch in hand. A helper leaves on its own when it is sent SIGTERM (``kill``, or a
service manager stopping everything) or when the daemon that started it is gone (killed,
crashed): at once when idle, after the batch in hand when working. A dead daemon's
helpers would otherwise wait for work for ever, holding their database connections.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from outreach.leases import StopFlag

# Set on SIGTERM or when the daemon is gone; cleared never.
leaving = threading.Event()
_working = threading.Event()
PARENT_CHECK_SECONDS = 1.0


class _Either:
    def __init__(self, *flags: StopFlag) -> None:
        self.flags = flags

    def is_set(self) -> bool:
        return any(flag.is_set() for flag in self.flags)


def prepare(level: int) -> None:
    """What a helper does first."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _terminated)
    threading.Thread(
        target=_watch_parent, args=(os.getppid(),), name="parent-watch", daemon=True
    ).start()
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


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    _leave()
