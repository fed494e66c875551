"""One set of rate limits for all of a daemon's dispatch processes.

A sender's rate is the provider's limit on that sender, whichever process sends. So the
daemon's ``RateLimiter`` stays the only one: ``LimiterService`` serves it on a Unix socket
(in a private temporary directory, behind an authentication key), and each dispatch
process's ``RemoteLimiter`` reserves its slots there, a batch at a time: one round trip
per batch of a few hundred messages, not one per message.

A reply's waits are counted from the moment the daemon reserved them, and the process
that asked starts waiting a little later (its batch's writes come first), so a slot is
used at its time or late. A process that fell behind may then send in the same moment as
another's slot that came on time: a short burst over the rate, which a provider queues
(Twilio does for a number's excess) or refuses with a 429 that is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import threading
from collections.abc import Sequence
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener

from outreach.ratelimit import RateLimiter


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
        with connection:
            while True:
                try:
                    senders, max_wait = connection.recv()
                    connection.send(self.limiter.reserve_many(senders, max_wait))
                except (EOFError, OSError):  # the process closed its end, or ended
                    return

    def close(self) -> None:
        self._closed.set()
        # Closing a listening socket does not wake a thread blocked in accept(): a last
        # connection does (a bare one: its failed handshake ends the wait at once).
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as wake:
            wake.connect(self.address)
        self._acceptor.join(timeout=5)
        self._listener.close()


class RemoteLimiter:
    """A dispatch process's view of the daemon's limits."""

    def __init__(self, address: str, authkey: bytes) -> None:
        self._connection = Client(address, family="AF_UNIX", authkey=authkey)

    def reserve_many(
        self, senders: Sequence[tuple[str, str]], max_wait: float | None = None
    ) -> list[float | None]:
        if not senders:
            return []
        self._connection.send((list(senders), max_wait))
        waits: list[float | None] = self._connection.recv()
        return waits

    async def wait(self, seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds)

    def close(self) -> None:
        self._connection.close()
