"""The HTTP transport: httpx's API over aiohttp's connection pool.

Providers speak httpx (``httpx.AsyncClient``), which respx can stand in for in tests. Under
load, httpx's own pool is slow (encode/httpx#3215); aiohttp's is not, so the client built
here hands each request to an aiohttp session (see docs/performance.md for the figures).

Failures are mapped onto httpx's exceptions by *when* they happened, because that decides
whether a message may be sent again: ``ConnectError``/``ConnectTimeout``/``PoolTimeout``
mean the request never left; ``ReadTimeout``/``ReadError``/``RemoteProtocolError`` mean it
left and no answer came back, so the provider may have accepted it. (httpx-aiohttp maps a
server disconnect after the request was written to ``ConnectTimeout``, which would make an
ambiguous send look safe to repeat; hence this small transport of our own.)

The providers' own sends (``post_bytes``) skip httpx's request and client machinery when
the client is ours: building an ``httpx.Request`` and running ``AsyncClient.send`` cost
about as much CPU as aiohttp's whole exchange, and a dispatch tick makes one per message.
The bytes and headers sent are the same either way; a client around any other transport
(a respx router in tests) goes through ``AsyncClient.post``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx

from outreach import __version__


@dataclass(frozen=True)
class Timeouts:
    """Seconds. ``connect`` and ``pool`` pass before a request leaves; ``read`` after."""

    connect: float = 5.0
    read: float = 20.0
    pool: float = 10.0


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport that sends through one pooled aiohttp session.

    The session is created on first use, inside the running event loop, and closed by
    ``aclose`` (``AsyncClient.aclose``). Bodies are read whole: provider answers are small.
    """

    def __init__(self, *, max_connections: int = 100, keepalive_expiry: float = 15.0) -> None:
        self._max_connections = max_connections
        # Shorter than the providers' own idle timeouts, so that a pooled connection is
        # rarely closed under us mid-request (which would make the send ambiguous).
        self._keepalive_expiry = keepalive_expiry
        self._session: aiohttp.ClientSession | None = None

    def _session_for_loop(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, keepalive_timeout=self._keepalive_expiry
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # httpx decodes Content-Encoding itself, and keeps no cookies for us.
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        return await self.exchange(
            request.method,
            str(request.url),
            _headers(request.headers),
            body,
            request.extensions.get("timeout", {}),
            request,
        )

    async def exchange(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes,
        timeout: Mapping[str, float | None],
        request: httpx.Request | None = None,
    ) -> httpx.Response:
        """One request and its whole answer; ``timeout`` as ``httpx.Timeout.as_dict()``."""
        session = self._session_for_loop()
        connect, pool = timeout.get("connect"), timeout.get("pool")
        client_timeout = aiohttp.ClientTimeout(
            total=None,
            # aiohttp's "connect" covers the wait for a pooled connection and a new one.
            connect=None if connect is None and pool is None else (connect or 0) + (pool or 0),
            sock_connect=connect,
            sock_read=timeout.get("read"),
        )
        try:
            async with session.request(
                method,
                url,
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=client_timeout,
            ) as answer:
                content = await answer.read()
                extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
                if answer.reason:
                    extensions["reason_phrase"] = answer.reason.encode("latin-1", "replace")
                return httpx.Response(
                    answer.status,
                    headers=list(answer.raw_headers),
                    content=content,
                    request=request,
                    extensions=extensions,
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _as_httpx(exc, request) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _headers(headers: httpx.Headers) -> list[tuple[str, str]]:
    """``headers.multi_items()``, without working the encoding out again for each name and
    each value, as it does (it showed in the dispatch profile)."""
    encoding = headers.encoding
    return [(name.decode(encoding), value.decode(encoding)) for name, value in headers.raw]


def _as_httpx(exc: BaseException, request: httpx.Request | None) -> httpx.TransportError:
    """The httpx exception that says when ``exc`` happened (see the module docstring)."""
    name = type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(f"connect timed out ({name})", request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(f"could not connect ({name})", request=request)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(f"invalid URL ({name})", request=request)
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientOSError):
        return httpx.ReadError(f"connection failed after sending ({name})", request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(f"no valid answer ({name})", request=request)
    # A socket read timeout, or any timeout whose phase is unknown: treat as after sending.
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return httpx.ReadTimeout(f"no answer in time ({name})", request=request)
    return httpx.ReadError(f"connection failed ({name})", request=request)


class ProviderClient(httpx.AsyncClient):
    """httpx's client, knowing the aiohttp transport it was built around (if it was)."""

    def __init__(self, transport: httpx.AsyncBaseTransport, **options: Any) -> None:
        super().__init__(transport=transport, **options)
        self.aiohttp = transport if isinstance(transport, AiohttpTransport) else None


def make_http_client(
    transport: httpx.AsyncBaseTransport | None = None,
    timeouts: Timeouts | None = None,
) -> httpx.AsyncClient:
    """The one client providers share; tests pass a respx router as ``transport``."""
    limits = timeouts or Timeouts()
    return ProviderClient(
        transport if transport is not None else AiohttpTransport(),
        timeout=httpx.Timeout(
            connect=limits.connect, read=limits.read, write=limits.read, pool=limits.pool
        ),
        follow_redirects=False,
        headers={"User-Agent": f"outreach/{__version__}"},
    )


async def post_bytes(
    client: httpx.AsyncClient, url: str, content: bytes, headers: Mapping[str, str]
) -> httpx.Response:
    """POST ``content`` with the client's own headers and timeouts, and ``headers``; the
    answer read whole. Raises httpx's exceptions, as ``client.post`` would."""
    if client.is_closed:  # as httpx says it: a closed client sends nothing
        raise RuntimeError("Cannot send a request, as the client has been closed.")
    if isinstance(client, ProviderClient) and client.aiohttp is not None:
        own = {name.lower() for name in headers}
        merged = [(n, v) for n, v in _headers(client.headers) if n.lower() not in own]
        merged += headers.items()
        return await client.aiohttp.exchange("POST", url, merged, content, client.timeout.as_dict())
    return await client.post(url, content=content, headers=headers)
