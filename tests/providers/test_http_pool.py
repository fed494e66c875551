"""The providers' connection pool against real sockets on 127.0.0.1: framing, reuse, limits.

``test_transport.py`` holds *when* a failure happened (before or after the request left);
these hold that answers are read whole however they arrive, and that a connection is only
used again when it can carry another request.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

import httpx
import pytest
import trustme

from outreach.providers.http_pool import target_of
from outreach.providers.transport import PooledTransport, Timeouts, make_http_client, post_bytes

pytestmark = pytest.mark.anyio

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serve(
    handler: Handler, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[str, list[int]]]:
    """A server on a free port, and the list of its connections (one entry each)."""
    connections: list[int] = []

    async def counted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(len(connections))
        try:
            await handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(counted, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}", connections
    finally:
        server.close()
        await server.wait_closed()


@contextmanager
def serve_from_a_thread(handler: Handler) -> Iterator[tuple[str, list[int]]]:
    """A server in a thread and event loop of its own, as a provider is: it goes on (closes
    idle connections, answers 408) while the client's event loop is busy."""
    started = threading.Event()
    connections: list[int] = []
    port: list[int] = []
    stop: list[asyncio.Event] = []
    loops: list[asyncio.AbstractEventLoop] = []

    async def run() -> None:
        stop.append(asyncio.Event())
        loops.append(asyncio.get_running_loop())
        async with serve(handler) as (base, counted):
            port.append(int(base.rsplit(":", 1)[1]))
            started.set()
            await stop[0].wait()
        connections.extend(counted)

    thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield f"http://127.0.0.1:{port[0]}", connections
    finally:
        loops[0].call_soon_threadsafe(stop[0].set)
        thread.join(10)


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a reset (RST), not the orderly close (FIN) that ``abort`` makes."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n")
         if line.lower().startswith(b"content-length")),
        0,
    )  # fmt: skip
    return head + await reader.readexactly(length)


async def send_slowly(writer: asyncio.StreamWriter, data: bytes) -> None:
    """One byte at a time, so that the answer reaches the client in many pieces."""
    for index in range(len(data)):
        writer.write(data[index : index + 1])
        await writer.drain()
        if index % 7 == 0:
            await asyncio.sleep(0)


CHUNKED = (
    b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
    b'7\r\n{"sid":\r\n9\r\n "SM123"}\r\n0\r\n\r\n'
)


def post(client: httpx.AsyncClient, url: str) -> Awaitable[httpx.Response]:
    return post_bytes(client, url, b"To=%2B16175550199", {"Content-Type": "text/plain"})


async def test_an_answer_arriving_a_byte_at_a_time_in_chunks_is_read_whole() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            await send_slowly(writer, CHUNKED)

    async with serve(chunked) as (base, connections), make_http_client() as client:
        answers = [await post(client, f"{base}/x") for _ in range(2)]
        through_httpx = await client.post(f"{base}/x", content=b"a")
    assert [(a.status_code, a.json()) for a in answers] == [(201, {"sid": "SM123"})] * 2
    assert (through_httpx.reason_phrase, through_httpx.json()) == ("Created", {"sid": "SM123"})
    assert len(connections) == 1  # the chunked answers kept the connection usable


async def test_an_answer_without_a_length_runs_until_the_connection_closes() -> None:
    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"ok": true}')
        await writer.drain()

    async with serve(until_close) as (base, connections), make_http_client() as client:
        answers = [await post(client, f"{base}/x") for _ in range(2)]
    assert [a.json() for a in answers] == [{"ok": True}] * 2
    assert len(connections) == 2


async def test_connection_close_or_http_1_0_is_not_used_again() -> None:
    heads = [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
    ]

    async def keeps_the_socket_open(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        # Says it will close, and does not: the client must not use it again.
        while heads:
            await read_request(reader)
            writer.write(heads.pop(0))
            await writer.drain()

    async with serve(keeps_the_socket_open) as (base, connections), make_http_client() as client:
        for _ in range(3):
            assert (await post(client, f"{base}/x")).json() == {}
    assert len(connections) == 3


async def test_a_connection_the_server_closed_while_idle_is_not_used() -> None:
    async def one_answer_each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        # closed without saying so: the client learns it from the socket

    async with serve(one_answer_each) as (base, connections), make_http_client() as client:
        for _ in range(3):
            assert (await post(client, f"{base}/x")).json() == {}
            await asyncio.sleep(0.05)  # the close reaches the client's event loop
    assert len(connections) == 3


async def test_an_interim_answer_is_passed_over() -> None:
    async def continues(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nX-Message-Id: abc\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with serve(continues) as (base, _), make_http_client() as client:
        answer = await post(client, f"{base}/x")
    assert (answer.status_code, answer.headers["x-message-id"]) == (202, "abc")


async def test_garbage_instead_of_an_answer_is_ambiguous() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()
        await reader.read()

    async with serve(garbage) as (base, _), make_http_client() as client:
        with pytest.raises(httpx.ReadError):  # the request left: never sent again on its own
            await post(client, f"{base}/x")


async def test_at_most_the_limit_of_connections_and_a_pool_timeout_before_anything_leaves() -> None:
    release = asyncio.Event()
    requests = 0

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        while True:
            await read_request(reader)
            requests += 1
            await release.wait()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()

    transport = PooledTransport(max_connections=2)
    limited = make_http_client(transport, Timeouts(pool=0.3))
    async with serve(slow) as (base, connections), limited as client:
        waiting = [asyncio.create_task(post(client, f"{base}/x")) for _ in range(5)]
        await asyncio.wait(waiting, timeout=2)  # the three beyond the limit give up at 0.3 s
        assert len(connections) == 2 and requests == 2
        timed_out = [t for t in waiting if t.done() and t.exception() is not None]
        assert len(timed_out) == 3
        assert all(isinstance(t.exception(), httpx.PoolTimeout) for t in timed_out)
        release.set()
        assert [(await t).json() for t in waiting if t not in timed_out] == [{}, {}]
    assert requests == 2  # the three that timed out never reached the server


async def test_an_idle_connection_past_its_expiry_is_not_used() -> None:
    async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()

    expiring = make_http_client(PooledTransport(keepalive_expiry=0.0))
    async with serve(keep_alive) as (base, connections), expiring as client:
        for _ in range(2):
            assert (await post(client, f"{base}/x")).json() == {}
    assert len(connections) == 2


async def test_a_request_cancelled_while_waiting_leaves_its_connection_unused() -> None:
    answered = 0

    async def second_is_quick(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        while True:
            await read_request(reader)
            if answered == 0:
                answered += 1
                await asyncio.sleep(0.3)  # the first request's caller gives up meanwhile
            writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{"n": 2}\n')
            await writer.drain()

    async with serve(second_is_quick) as (base, connections), make_http_client() as client:
        first = asyncio.create_task(post(client, f"{base}/x"))
        await asyncio.sleep(0.1)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        # Not the first request's late answer, read as this one's.
        assert (await post(client, f"{base}/x")).json() == {"n": 2}
    assert len(connections) == 2


async def test_a_header_that_would_break_the_request_is_refused_before_anything_leaves() -> None:
    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.read())

    seen: list[bytes] = []
    async with serve(record) as (base, _), make_http_client() as client:
        with pytest.raises(httpx.LocalProtocolError):
            await post_bytes(client, f"{base}/x", b"", {"X-Note": "a\r\nAuthorization: x"})
    assert seen == []


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


async def test_https_to_a_trusted_certificate(authority: trustme.CA) -> None:
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(served)
    trusted = ssl.create_default_context()
    authority.configure_trust(trusted)

    async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()

    async with serve(keep_alive, served) as (base, connections):
        async with make_http_client(PooledTransport(ssl_context=trusted)) as client:
            answers = [await post(client, f"{base}/x") for _ in range(2)]
        # The system's trust store does not know this authority: refused before sending.
        async with make_http_client() as default_trust:
            with pytest.raises(httpx.ConnectError, match="SSL"):
                await post(default_trust, f"{base}/x")
    assert [a.status_code for a in answers] == [201, 201]
    # One connection for the two answers; the refused handshake never reached the handler.
    assert len(connections) == 1


@pytest.mark.parametrize(
    ("url", "host_header", "path"),
    [
        ("https://api.twilio.com/2010-04-01/x.json", "api.twilio.com", "/2010-04-01/x.json"),
        ("http://127.0.0.1:8080/a?b=c&d=", "127.0.0.1:8080", "/a?b=c&d="),
        ("https://[::1]:8443", "[::1]:8443", "/"),
        ("HTTP://Example.com:80/", "example.com", "/"),
        ("https://bücher.example:8443/x", "xn--bcher-kva.example:8443", "/x"),
    ],
)
def test_where_a_url_goes(url: str, host_header: str, path: str) -> None:
    target = target_of(url)
    assert (target.origin.authority, target.path) == (host_header, path)


@pytest.mark.parametrize(
    "url", ["api.twilio.com/x", "ftp://example.com/", "http://:80/", "https://a..example.com/"]
)
def test_a_url_it_cannot_use_is_refused(url: str) -> None:
    with pytest.raises(httpx.UnsupportedProtocol):
        target_of(url)


IDLE_ENDINGS = {
    "close": b"",
    "reset": None,
    "408": b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
}


@pytest.mark.parametrize("ending", sorted(IDLE_ENDINGS))
async def test_a_connection_ended_while_the_event_loop_was_busy_is_not_used(ending: str) -> None:
    # The server ends an idle connection (its keep-alive timeout) while the client's event
    # loop is busy with a tick's database work and cannot see it: the next request must go
    # on a new connection, not meet the close (held for review) or the 408 (as its answer).
    seen: list[bytes] = []

    async def one_answer_then_idle_end(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        seen.append(await read_request(reader))
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        await asyncio.sleep(0.05)
        last = IDLE_ENDINGS[ending]
        if last is None:
            reset(writer)
        elif last:
            writer.write(last)
            await writer.drain()

    with serve_from_a_thread(one_answer_then_idle_end) as (base, connections):
        async with make_http_client() as client:
            first = await post(client, f"{base}/x")
            time.sleep(0.3)  # the busy event loop: the server's ending arrives meanwhile
            second = await post(client, f"{base}/x")
    assert (first.status_code, second.status_code) == (201, 201)
    assert (len(seen), len(connections)) == (2, 2)


async def test_an_answer_followed_by_another_in_the_same_read_closes_the_connection() -> None:
    async def answers_twice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
            b'HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n{"la'
        )
        await writer.drain()
        await read_request(reader)  # if the connection were used again
        writer.write(b'te":1}\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{"n": 2}')
        await writer.drain()

    async def own_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{"n": 2}')
        await writer.drain()

    handlers = [answers_twice, own_answer]

    async def in_turn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await handlers.pop(0)(reader, writer)

    async with serve(in_turn) as (base, connections), make_http_client() as client:
        assert (await post(client, f"{base}/x")).json() == {}
        assert (await post(client, f"{base}/x")).json() == {"n": 2}
    assert len(connections) == 2


async def test_an_answer_without_a_length_cut_by_a_reset_is_not_taken_whole() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"sid": "SM1')
        await writer.drain()
        await asyncio.sleep(0.05)
        reset(writer)

    async with serve(cut) as (base, _), make_http_client() as client:
        with pytest.raises(httpx.ReadError):  # it left: held for review
            await post(client, f"{base}/x")


async def test_closing_the_client_closes_the_connections_in_use() -> None:
    closed_by_client = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if await reader.read() == b"":
            closed_by_client.set()

    async with serve(slow) as (base, _):
        client = make_http_client()
        sending = asyncio.create_task(post(client, f"{base}/x"))
        await asyncio.sleep(0.1)
        await client.aclose()
        with pytest.raises(httpx.RemoteProtocolError):  # it left: held for review
            await sending
        await asyncio.wait_for(closed_by_client.wait(), 5)


@pytest.mark.parametrize("url", ["https://api..twilio.com/x", f"https://{'a' * 64}.com/x"])
async def test_a_host_that_cannot_be_looked_up_never_leaves(url: str) -> None:
    async with make_http_client() as client:
        with pytest.raises(httpx.UnsupportedProtocol):
            await post(client, url)
