"""One set of rate limits for all of a daemon's dispatch processes, and their sends in flight.

A sender's rate is the provider's limit on that sender, whichever process sends. So the
daemon's ``RateLimiter`` stays the only one: ``LimiterService`` serves it on a Unix socket
(in a private temporary directory, behind an authentication key), and each dispatch
process's ``RemoteLimiter`` reserves its slots there, a batch at a time: one round trip
per batch of a few hundred messages, not one per message. Sends held up behind the
concurrency limit take new slots together too, off the event loop
(``Dispatcher._slot_again``): the daemon's answer waits for its busy interpreter, up to a
few milliseconds, which one round trip per send would add to every message.

A reply's waits are counted from the moment the daemon reserved them, and the process
that asked starts waiting a little later (its batch's writes come first), so a slot is
used at its time or late. A process that fell behind may then send in the same moment as
another's slot that came on time: a short burst over the rate, which a provider queues
(Twilio does for a number's excess) or refuses with a 429 that is retried.

The same connection tells the daemon which sends each process has in flight (see
``outreach.leases.hold_sends``), so that its housekeeping leaves exactly those alone, as it
does its own. A process's sends stop counting as in flight when it says so, or when its
connection ends: a process that died (killed, out of memory) leaves none behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import threading
from collections.abc import Sequence
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener

from outreach.leases import hold_sends, release_sends
from outreach.ratelimit import RateLimiter

log = logging.getLogger("outreach.shared_ratelimit")

# What a process asks, first in each message: rate-limit slots (answered with their waits),
# sends it now has in flight (answered once heard, before any of them leaves), or sends it
# no longer has (not answered).
RESERVE, HOLD, RELEASE = "reserve", "hold", "release"


class LimiterService:
    """Serves ``limiter`` to other processes, each connection on a thread of its own."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter
        self.authkey = secrets.token_bytes(32)
        # family AF_UNIX without an address: a fresh socket in a directory only we can read.
        self._listener = Listener(family="AF_UNIX", authkey=self.authkey)
        self.address: str = self._listener.address
        self._closed = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, name="rate-limits", daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while True:
            try:
                connection = self._listener.accept()
            except (OSError, EOFError, AuthenticationError):  # closed, or a failed handshake
                if self._closed.is_set():
                    return
                continue
            if self._closed.is_set():  # the wake-up call from ``close``
                connection.close()
                return
            threading.Thread(
                target=self._serve, args=(connection,), name="rate-limits", daemon=True
            ).start()

    def _serve(self, connection: Connection) -> None:
        held: dict[str, set[int]] = {}  # this process's sends in flight, by lease name
        try:
            with connection:
                while True:
                    try:
                        kind, *rest = connection.recv()
                        if kind == RESERVE:
                            senders, max_wait = rest
                            connection.send(self.limiter.reserve_many(senders, max_wait))
                        elif kind == HOLD:
                            worker, ids = rest
                            held.setdefault(worker, set()).update(ids)
                            hold_sends(worker, ids)
                            connection.send(True)
                        elif kind == RELEASE:
                            worker, ids = rest
                            held.get(worker, set()).difference_update(ids)
                            release_sends(worker, ids)
                    except (EOFError, OSError):  # the process closed its end, or ended
                        return
        finally:
            for worker, ids in held.items():
                release_sends(worker, ids)

    def close(self) -> None:
        self._closed.set()
        # Closing a listening socket does not wake a thread blocked in accept(): a last
        # connection does (a bare one: its failed handshake ends the wait at once).
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as wake:
            wake.connect(self.address)
        self._acceptor.join(timeout=5)
        self._listener.close()


class RemoteLimiter:
    """A dispatch process's view of the daemon's limits, and its line to the daemon."""

    def __init__(self, address: str, authkey: bytes) -> None:
        self._connection = Client(address, family="AF_UNIX", authkey=authkey)
        # Held across each question and its answer: sends are told from any thread.
        self._lock = threading.Lock()

    def reserve_many(
        self, senders: Sequence[tuple[str, str]], max_wait: float | None = None
    ) -> list[float | None]:
        if not senders:
            return []
        with self._lock:
            self._connection.send((RESERVE, list(senders), max_wait))
            waits: list[float | None] = self._connection.recv()
        return waits

    def report_sends(self, holding: bool, worker: str, ids: list[int]) -> None:
        """Tells the daemon that ``worker``'s sends ``ids`` are in flight (``holding``) or
        no longer are; a hold returns once the daemon has it. A daemon that cannot be told
        is gone: the batch goes on, and the process leaves after it."""
        try:
            with self._lock:
                self._connection.send((HOLD if holding else RELEASE, worker, ids))
                if holding:
                    self._connection.recv()
        except (EOFError, OSError) as exc:
            log.warning("dispatch: could not tell the daemon about %d send(s): %r", len(ids), exc)

    async def wait(self, seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds)

    def close(self) -> None:
        self._connection.close()
