"""The providers' transport against real sockets on 127.0.0.1.

What matters is *when* a failure happened: before the request left (safe to send again) or
after (the provider may have it). Each case makes a small server that fails one way, and
is met both through httpx's client (``client.post``) and the providers' own short way to
the connection pool (``post_bytes``).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from outreach.channels import SmsChannel
from outreach.clock import FixedClock
from outreach.config import Settings
from outreach.errors import ChannelError
from outreach.providers.base import EventType, OutboundMessage
from outreach.providers.failures import transport_failure
from outreach.providers.transport import Timeouts, make_http_client, post_bytes
from outreach.providers.twilio_sms import TwilioSms
from tests.providers.conftest import load_json

pytestmark = pytest.mark.anyio

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ),
        0,
    )
    return head, await reader.readexactly(length)


def answer(status: str, body: bytes, *headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers, "", ""]
    return "\r\n".join(lines).encode() + body


Post = Callable[[httpx.AsyncClient, str], Awaitable[httpx.Response]]
POSTS: dict[str, Post] = {
    "client.post": lambda client, url: client.post(url, content=b"a"),
    "post_bytes": lambda client, url: post_bytes(client, url, b"a", {}),
}


@pytest.fixture(params=sorted(POSTS))
def post(request: pytest.FixtureRequest) -> Post:
    return POSTS[request.param]


def header_fields(head: bytes) -> list[tuple[str, str]]:
    """Every header line, repeats included, in a comparable order."""
    lines = head.decode("latin-1").split("\r\n")[1:]
    fields = (line.split(":", 1) for line in lines if line)
    return sorted((name.strip().lower(), value.strip()) for name, value in fields)


async def test_the_short_way_sends_what_httpx_would() -> None:
    seen: list[tuple[bytes, bytes]] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.write(answer("201 Created", b'{"sid": "SM1"}', "Content-Type: application/json"))
        await writer.drain()
        writer.close()

    form = b"To=%2B16175550199&Body=Hello+there"
    headers = {"Authorization": "Basic abc", "Content-Type": "application/x-www-form-urlencoded"}
    answers: list[Any] = []
    async with serve(record) as base:
        async with make_http_client() as ours:
            answers.append(await post_bytes(ours, f"{base}/x?y=1", form, headers))
        async with make_http_client(transport=httpx.AsyncHTTPTransport()) as plain:
            answers.append(await post_bytes(plain, f"{base}/x?y=1", form, headers))
    assert [(a.status_code, a.json()) for a in answers] == [(201, {"sid": "SM1"})] * 2
    (short_head, short_body), (httpx_head, httpx_body) = seen
    assert short_body == httpx_body == form
    assert short_head.split(b"\r\n")[0] == httpx_head.split(b"\r\n")[0] == b"POST /x?y=1 HTTP/1.1"
    assert header_fields(short_head) == header_fields(httpx_head)


async def test_provider_bodies_are_encoded_as_httpx_would(
    settings: Settings, clock: FixedClock
) -> None:
    seen: list[tuple[bytes, bytes]] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        created = json.dumps(load_json("rest/twilio_message_created.json")).encode()
        writer.write(answer("201 Created", created, "Content-Type: application/json"))
        await writer.drain()
        writer.close()

    text = "Zoë, 100% due: café & co. ¿Preguntas? Reply STOP"
    async with serve(record) as base, make_http_client() as client:
        provider = TwilioSms(
            settings.model_copy(update={"twilio_api_base_url": base}), client, clock, SmsChannel()
        )
        await provider.send(OutboundMessage(7, "k", "sms", "+16175550199", text))
    ((head, body),) = seen
    form = parse_qsl(body.decode(), keep_blank_values=True)
    assert ("Body", text) in form
    # httpx's own form encoding of the same fields gives the same bytes.
    assert httpx.Request("POST", base, data=dict(form)).content == body
    fields = header_fields(head)
    assert ("content-type", "application/x-www-form-urlencoded") in fields
    assert ("content-length", str(len(body))) in fields
    assert len({name for name, _ in fields}) == len(fields)  # no header twice


async def test_a_created_message_through_a_local_stand_in(
    settings: Settings, clock: FixedClock
) -> None:
    seen: list[bytes] = []

    async def twilio(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, body = await read_request(reader)
        seen.append(head + body)
        created = gzip.compress(json.dumps(load_json("rest/twilio_message_created.json")).encode())
        writer.write(
            answer(
                "201 CREATED", created, "Content-Type: application/json", "Content-Encoding: gzip"
            )
        )
        await writer.drain()
        writer.close()

    async with serve(twilio) as base, make_http_client() as client:
        provider = TwilioSms(
            settings.model_copy(update={"twilio_api_base_url": base}), client, clock, SmsChannel()
        )
        result = await provider.send(OutboundMessage(7, "k", "sms", "+16175550199", "Hello"))
    assert (result.provider_message_id, result.status) == (
        "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        EventType.QUEUED,
    )
    (request,) = seen
    assert request.startswith(b"POST /2010-04-01/Accounts/AC")
    assert b"Body=Hello" in request and b"authorization: basic " in request.lower()


async def test_connection_refused_never_left(post: Post) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with make_http_client() as client:
        with pytest.raises(httpx.ConnectError) as raised:
            await post(client, f"http://127.0.0.1:{port}/x")
    failure = transport_failure("p", raised.value)
    assert failure.retryable and not failure.ambiguous


async def test_a_connection_closed_after_the_request_is_ambiguous(post: Post) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.close()

    async with serve(hang_up) as base, make_http_client() as client:
        with pytest.raises(httpx.TransportError) as raised:
            await post(client, f"{base}/x")
    assert isinstance(raised.value, httpx.RemoteProtocolError | httpx.ReadError)
    failure = transport_failure("p", raised.value)
    assert failure.ambiguous and not failure.retryable


async def test_no_answer_in_time_is_ambiguous(post: Post) -> None:
    release = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await release.wait()
        writer.close()

    async with serve(silent) as base, make_http_client(timeouts=Timeouts(read=0.2)) as client:
        with pytest.raises(httpx.ReadTimeout) as raised:
            await post(client, f"{base}/x")
        release.set()
    assert transport_failure("p", raised.value).ambiguous


async def test_connections_are_pooled_and_shared(post: Post) -> None:
    connections = 0

    async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while True:
                await read_request(reader)
                writer.write(answer("200 OK", b"{}", "Content-Type: application/json"))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async with serve(keep_alive) as base, make_http_client() as client:
        for _ in range(5):
            assert (await post(client, f"{base}/x")).json() == {}
    assert connections == 1


async def test_a_twilio_send_through_the_real_transport_classifies_a_hang_up(
    settings: Settings, clock: FixedClock
) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.close()

    async with serve(hang_up) as base, make_http_client() as client:
        provider = TwilioSms(
            settings.model_copy(update={"twilio_api_base_url": base}), client, clock, SmsChannel()
        )
        with pytest.raises(ChannelError) as raised:
            await provider.send(OutboundMessage(7, "k", "sms", "+16175550199", "Hello"))
    assert raised.value.ambiguous


@pytest.mark.parametrize(
    "wire",
    [
        answer("201 Created", b'{"sid": "SM1"}', "Content-Type: application/json"),
        answer(
            "201 Created",
            gzip.compress(b'{"sid": "SM2"}'),
            "Content-Type: application/json",
            "Content-Encoding: gzip",
        ),
        answer("202 Accepted", b"", "X-Message-Id: abc123"),
        answer("429 Too Many Requests", b'{"code": 20429}', "Retry-After: 7", "Set-Cookie: a=1"),
    ],
)
async def test_the_short_way_reads_an_answer_as_httpx_does(wire: bytes) -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await read_request(reader)
                writer.write(wire)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async with serve(reply) as base, make_http_client() as client:
        short = await post_bytes(client, f"{base}/x", b"a", {})
        full = await client.post(f"{base}/x", content=b"a")
    assert (short.status_code, short.is_success, short.content) == (
        full.status_code,
        full.is_success,
        full.content,
    )
    assert list(short.headers.multi_items()) == list(full.headers.multi_items())
    if full.content:
        assert short.json() == full.json()
