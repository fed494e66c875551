"""HTTP/1.1 keep-alive connections to the providers, on asyncio with httptools' parser.

A dispatch tick makes one POST a message, and the client's CPU a request is what decides how
fast messages leave (the machine is shared with the database work of the same tick).
aiohttp's request machinery took about 190 µs of CPU a request here; an asyncio protocol
handing the bytes to httptools' C parser (llhttp, as aiohttp's own parser and uvicorn use)
takes about 55 (docs/performance.md). A connection carries one request at a time (no
pipelining): a request is written whole, its answer read whole.

What matters beyond speed is *when* a failure happened, which decides whether a message may
be sent again: a failure before the request was written (no connection, no free connection
in time, TLS refused) raises ``ConnectError``/``ConnectTimeout``/``PoolTimeout``; one after
raises ``ReadTimeout``/``ReadError``/``RemoteProtocolError``, since the provider may have the
request.
"""

from __future__ import annotations

import asyncio
import select
import ssl
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple, cast
from urllib.parse import urlsplit

import httptools
import httpx


class Answer(NamedTuple):
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    content: bytes


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int
    # The Host header's value: the port only when it is not the scheme's own, as httpx writes.
    authority: str


class Target(NamedTuple):
    origin: Origin
    path: str


@lru_cache(maxsize=256)
def target_of(url: str) -> Target:
    """Where a URL's requests go, worked out once: providers post to a few URLs only."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise httpx.UnsupportedProtocol(f"a URL this client cannot use: {url!r}")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise httpx.UnsupportedProtocol(f"a URL with an invalid port: {url!r}") from exc
    host = ascii_host(parts.hostname)
    if host is None:
        raise httpx.UnsupportedProtocol(f"a URL with an invalid host: {url!r}")
    shown = f"[{host}]" if ":" in host else host
    default = (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
    authority = shown if default else f"{shown}:{port}"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(Origin(scheme, host, port, authority), path)


def ascii_host(host: str) -> str | None:
    """The host as it is looked up and sent in ``Host`` (an international name in its
    IDNA form, as httpx sends it), or None if it cannot be: an empty or too long label."""
    if ":" in host:  # an IPv6 address, which urlsplit has already checked
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return None


def host_is_valid(host: str) -> bool:
    """Whether a host name (or address) can be looked up: no empty label, none too long."""
    return ascii_host(host) is not None


class _Lost(Exception):
    """The connection closed (or its answer could not be read) after the request left."""

    def __init__(self, message: str, *, answer_started: bool) -> None:
        super().__init__(message)
        self.answer_started = answer_started


class Connection(asyncio.Protocol):
    """One keep-alive connection; ``request`` writes a request and waits for its answer."""

    def __init__(self, loop: asyncio.AbstractEventLoop, origin: Origin) -> None:
        self._loop = loop
        self.origin = origin
        self._fd = -1
        self._eof = False
        # Set once the answer to the request in flight is complete: a message beginning
        # after it, in the same read, was sent to no request of ours.
        self._answered = False
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[Answer] | None = None
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._headers_done = False
        self._started = False
        self.closed = False
        self.idle_since = 0.0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        self._fd = sock.fileno() if sock is not None else -1

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            # Bytes nobody asked for (a server's 408 on an idle connection): the connection
            # can no longer be trusted to frame the next answer.
            self.close()
            return
        self._started = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(_Lost(f"the answer could not be read ({exc})", answer_started=True))
            self.close()

    def eof_received(self) -> bool:
        self._eof = True
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is None or self._waiter.done():
            return
        if self._headers_done and not self._framed() and self._closed_cleanly(exc):
            # An answer without a length runs until the connection closes (RFC 9112 6.3).
            self._complete()
            return
        detail = f": {exc}" if exc else ""
        self._fail(
            _Lost(f"the connection closed before the answer{detail}", answer_started=self._started)
        )

    # httptools' callbacks

    def on_message_begin(self) -> None:
        if self._answered:  # more than the answer came: the framing cannot be trusted
            self.close()

    def on_status(self, status: bytes) -> None:
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if not 100 <= self._parser.get_status_code() < 200:
            self._complete()
            return
        # An interim answer (100 Continue, 103 Early Hints): the real one follows.
        self._reason, self._headers, self._body, self._headers_done = b"", [], [], False

    # requests

    def request(self, data: bytes) -> asyncio.Future[Answer]:
        assert self._transport is not None and self._waiter is None
        self._waiter = self._loop.create_future()
        self._started = self._answered = False
        self._transport.write(data)
        return self._waiter

    def usable(self, now: float, keepalive_expiry: float) -> bool:
        transport = self._transport
        return (
            not self.closed
            and transport is not None
            and not transport.is_closing()
            and now - self.idle_since < keepalive_expiry
            and not self._readable()
        )

    def _readable(self) -> bool:
        """Whether the socket holds something unread: the server's close, a reset or a
        408, which the event loop has not handled yet when it was busy (the dispatch
        stage's database work runs on it). An idle connection with anything to read
        cannot carry a request."""
        if self._fd < 0:
            return True
        poll = select.poll()
        poll.register(self._fd, select.POLLIN)
        return bool(poll.poll(0))

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    def _closed_cleanly(self, exc: Exception | None) -> bool:
        """An answer without a length is whole only if the server closed the connection
        itself, on plain TCP: a reset may cut it anywhere, and over TLS a close without
        its close_notify cannot be told from a cut (RFC 9112 9.8)."""
        return exc is None and self._eof and self.origin.scheme == "http"

    def _framed(self) -> bool:
        return any(
            name.lower() in (b"content-length", b"transfer-encoding") for name, _ in self._headers
        )

    def _complete(self) -> None:
        waiter, self._waiter = self._waiter, None
        self._answered = True
        answer = Answer(
            self._parser.get_status_code(), self._reason, self._headers, b"".join(self._body)
        )
        if not self._parser.should_keep_alive():
            self.close()
        self._reason, self._headers, self._body, self._headers_done = b"", [], [], False
        if waiter is not None and not waiter.done():
            waiter.set_result(answer)

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


class ConnectionPool:
    """Keep-alive connections per origin, at most ``limit`` open at once.

    Bound to the event loop it was first used in. Idle connections are taken newest first
    (the oldest are the likeliest to have been closed by the server) and dropped after
    ``keepalive_expiry`` seconds.
    """

    def __init__(
        self, *, limit: int, keepalive_expiry: float, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._limit = limit
        self._keepalive_expiry = keepalive_expiry
        self._idle: dict[Origin, list[Connection]] = {}
        self._busy: set[Connection] = set()
        self._permits: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # The system's trusted certificates unless told otherwise (tests trust their own CA).
        self._ssl = ssl_context
        self.closed = False

    async def exchange(
        self,
        url: str,
        data: bytes,
        *,
        connect: float | None,
        pool: float | None,
        read: float | None,
        request: httpx.Request | None,
    ) -> Answer:
        """Send ``data`` (a whole request) to ``url``'s origin and read the answer."""
        origin = target_of(url).origin
        permits = self._bound()
        if permits.locked():
            try:
                async with asyncio.timeout(pool):
                    await permits.acquire()
            except TimeoutError:
                raise httpx.PoolTimeout("no free connection in time", request=request) from None
        else:
            await permits.acquire()  # free: returns at once
        try:
            connection = self._idle_connection(origin) or await self._connect(
                origin, connect, request
            )
            return await self._ask(connection, data, read, request)
        finally:
            permits.release()

    async def aclose(self) -> None:
        self.closed = True
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
        for connection in self._busy:  # their requests end with the connection's close
            connection.close()
        # Let the transports' closing callbacks run before the loop may be closed.
        await asyncio.sleep(0)

    def _bound(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._permits is None or self._loop is not loop:
            self._idle.clear()  # connections of another loop cannot be used in this one
            self._permits, self._loop = asyncio.Semaphore(self._limit), loop
        return self._permits

    def _idle_connection(self, origin: Origin) -> Connection | None:
        connections = self._idle.get(origin)
        now = time.monotonic()
        while connections:
            connection = connections.pop()
            if connection.usable(now, self._keepalive_expiry):
                return connection
            connection.close()
        return None

    async def _connect(
        self, origin: Origin, timeout: float | None, request: httpx.Request | None
    ) -> Connection:
        loop = asyncio.get_running_loop()
        secure = origin.scheme == "https"
        try:
            async with asyncio.timeout(timeout):
                _, connection = await loop.create_connection(
                    lambda: Connection(loop, origin),
                    origin.host,
                    origin.port,
                    ssl=self._ssl_context() if secure else None,
                    server_hostname=origin.host if secure else None,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout("connect timed out", request=request) from None
        except (OSError, UnicodeError) as exc:  # refused, unreachable, no such host, TLS
            name = type(exc).__name__
            raise httpx.ConnectError(f"could not connect ({name}: {exc})", request=request) from exc
        return connection

    async def _ask(
        self, connection: Connection, data: bytes, read: float | None, request: httpx.Request | None
    ) -> Answer:
        waiter = connection.request(data)
        self._busy.add(connection)
        timer = None
        if read is not None:
            timer = asyncio.get_running_loop().call_later(read, _time_out, waiter)
        try:
            answer = await waiter
        except _Lost as exc:
            kind = httpx.ReadError if exc.answer_started else httpx.RemoteProtocolError
            raise kind(str(exc), request=request) from None
        except TimeoutError:
            connection.close()
            raise httpx.ReadTimeout("no answer in time", request=request) from None
        except BaseException:  # cancelled mid-answer: the connection's framing is unknown
            connection.close()
            raise
        finally:
            self._busy.discard(connection)
            if timer is not None:
                timer.cancel()
        if self.closed:
            connection.close()
        elif not connection.closed:
            connection.idle_since = time.monotonic()
            self._idle.setdefault(connection.origin, []).append(connection)
        return answer

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl


def _time_out(waiter: asyncio.Future[Answer]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())
