"""How many passwords a web process checks at once.

Each check holds Argon2id's 64 MiB for a moment, and anyone may ask for one (a sign-in
for a name never seen costs a full check, so that the answer does not say which names
exist). Without a bound, a burst of sign-ins takes the server's memory and the threads
that serve every other page. So a few checks run at once, a few more wait for their turn,
and beyond that a sign-in is answered at once that the server is busy; it is not counted
against the name, since its password was not checked.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

RUNNING = 2
WAITING = 8
WAIT_SECONDS = 10.0


class SignInSlots:
    def __init__(
        self, running: int = RUNNING, waiting: int = WAITING, wait: float = WAIT_SECONDS
    ) -> None:
        self._running = threading.BoundedSemaphore(running)
        self._admitted = threading.BoundedSemaphore(running + waiting)
        self._wait = wait

    @contextmanager
    def slot(self) -> Iterator[bool]:
        """True while this thread may check a password; False (at once, or after the
        wait) when the server is busy checking others."""
        if not self._admitted.acquire(blocking=False):
            yield False
            return
        try:
            if not self._running.acquire(timeout=self._wait):
                yield False
                return
            try:
                yield True
            finally:
                self._running.release()
        finally:
            self._admitted.release()
