"""The HTTP transport: httpx's API over a pool of keep-alive connections of our own.

Providers speak httpx (``httpx.AsyncClient``), which respx can stand in for in tests. Under
load, httpx's own pool is slow (encode/httpx#3215), and aiohttp's request machinery took
over three times the CPU a request of an asyncio protocol with httptools' parser
(``http_pool.py``; docs/performance.md has the figures), so the client built here hands
each request to that pool.

Failures are raised as httpx's exceptions by *when* they happened, because that decides
whether a message may be sent again: ``ConnectError``/``ConnectTimeout``/``PoolTimeout``
mean the request never left; ``ReadTimeout``/``ReadError``/``RemoteProtocolError`` mean it
left and no answer came back, so the provider may have accepted it.

The providers' own sends (``post_bytes``) skip httpx's request and client machinery when
the client is ours: building an ``httpx.Request`` and running ``AsyncClient.send`` cost
about as much CPU as the whole exchange, and a dispatch tick makes one per message. The
bytes and headers sent are the same either way; a client around any other transport (a
respx router in tests) goes through ``AsyncClient.post``.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from outreach import __version__
from outreach.providers.http_pool import Answer, ConnectionPool, target_of

# Methods whose request states its body's length even when it is empty, as httpx does.
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
# Headers the transport writes itself, from the URL and the body it sends.
_FRAMING = frozenset({"host", "content-length", "transfer-encoding"})


class HttpAnswer(Protocol):
    """What providers read of an HTTP answer: names that ``httpx.Response`` has, and
    ``Answered`` too."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> httpx.Headers: ...

    @property
    def content(self) -> bytes: ...

    @property
    def is_success(self) -> bool: ...

    def json(self, **kwargs: Any) -> Any: ...


class Answered:
    """An answer read whole, as the providers' own POSTs get it from the pool: building an
    ``httpx.Response`` (its stream, its decoders, its read) cost about 20 µs a message."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: httpx.Headers, content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def json(self, **kwargs: Any) -> Any:
        return json.loads(self.content, **kwargs)


@dataclass(frozen=True)
class Timeouts:
    """Seconds. ``connect`` and ``pool`` pass before a request leaves; ``read`` after."""

    connect: float = 5.0
    read: float = 20.0
    pool: float = 10.0


class PooledTransport(httpx.AsyncBaseTransport):
    """An httpx transport that sends through one pool of keep-alive connections.

    The pool binds to the event loop it is first used in; ``aclose``
    (``AsyncClient.aclose``) closes its connections. Bodies are read whole: provider
    answers are small.
    """

    def __init__(
        self,
        *,
        max_connections: int = 100,
        keepalive_expiry: float = 15.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        # Shorter than the providers' own idle timeouts, so that a pooled connection is
        # rarely closed under us mid-request (which would make the send ambiguous).
        self._pool = ConnectionPool(
            limit=max_connections, keepalive_expiry=keepalive_expiry, ssl_context=ssl_context
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        answer = await self.ask(
            request.method,
            str(request.url),
            _headers(request.headers),
            body,
            request.extensions.get("timeout", {}),
            request,
        )
        return _response(answer, request)

    async def ask(
        self,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        timeout: Mapping[str, float | None],
        request: httpx.Request | None = None,
    ) -> Answer:
        """One request and its whole answer as the pool read it; ``timeout`` as
        ``httpx.Timeout.as_dict()``."""
        if method == "HEAD":  # an answer to HEAD has a length and no body: not framed here
            raise httpx.UnsupportedProtocol("HEAD requests are not supported", request=request)
        return await self._pool.exchange(
            url,
            request_bytes(method, url, headers, body),
            connect=timeout.get("connect"),
            pool=timeout.get("pool"),
            read=timeout.get("read"),
            request=request,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


def request_bytes(method: str, url: str, headers: Sequence[tuple[str, str]], body: bytes) -> bytes:
    """The request as it goes on the wire: ``Host`` from the URL, the body's length, the
    other headers as given. A header that would break the framing is refused before
    anything leaves."""
    target = target_of(url)
    lines = [f"{method} {target.path} HTTP/1.1", f"Host: {target.origin.authority}"]
    for name, value in headers:
        if name.lower() in _FRAMING:
            continue
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise httpx.LocalProtocolError(f"a header that cannot be sent: {name!r}")
        lines.append(f"{name}: {value}")
    if body or method in _WITH_BODY:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode() + body


def _response(answer: Answer, request: httpx.Request | None) -> httpx.Response:
    extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
    if answer.reason:
        extensions["reason_phrase"] = answer.reason
    return httpx.Response(
        answer.status,
        headers=answer.headers,
        content=answer.content,
        request=request,
        extensions=extensions,
    )


def _answered(answer: Answer) -> HttpAnswer:
    """The answer for a provider; one whose body is encoded (gzip...) goes through httpx,
    which decodes it."""
    for name, value in answer.headers:
        if name.lower() == b"content-encoding" and value.strip().lower() != b"identity":
            return _response(answer, None)
    return Answered(answer.status, httpx.Headers(answer.headers), answer.content)


def _headers(headers: httpx.Headers) -> list[tuple[str, str]]:
    """``headers.multi_items()``, without working the encoding out again for each name and
    each value, as it does (it showed in the dispatch profile)."""
    encoding = headers.encoding
    return [(name.decode(encoding), value.decode(encoding)) for name, value in headers.raw]


class ProviderClient(httpx.AsyncClient):
    """httpx's client, knowing the pooled transport it was built around (if it was)."""

    def __init__(self, transport: httpx.AsyncBaseTransport, **options: Any) -> None:
        super().__init__(transport=transport, **options)
        self.pooled = transport if isinstance(transport, PooledTransport) else None


def make_http_client(
    transport: httpx.AsyncBaseTransport | None = None,
    timeouts: Timeouts | None = None,
) -> httpx.AsyncClient:
    """The one client providers share; tests pass a respx router as ``transport``."""
    limits = timeouts or Timeouts()
    return ProviderClient(
        transport if transport is not None else PooledTransport(),
        timeout=httpx.Timeout(
            connect=limits.connect, read=limits.read, write=limits.read, pool=limits.pool
        ),
        follow_redirects=False,
        headers={"User-Agent": f"outreach/{__version__}"},
    )


async def post_bytes(
    client: httpx.AsyncClient, url: str, content: bytes, headers: Mapping[str, str]
) -> HttpAnswer:
    """POST ``content`` with the client's own headers and timeouts, and ``headers``; the
    answer read whole. Raises httpx's exceptions, as ``client.post`` would."""
    if client.is_closed:  # as httpx says it: a closed client sends nothing
        raise RuntimeError("Cannot send a request, as the client has been closed.")
    if isinstance(client, ProviderClient) and client.pooled is not None:
        own = {name.lower() for name in headers}
        merged = [(n, v) for n, v in _headers(client.headers) if n.lower() not in own]
        merged += headers.items()
        answer = await client.pooled.ask("POST", url, merged, content, client.timeout.as_dict())
        return _answered(answer)
    return await client.post(url, content=content, headers=headers)
