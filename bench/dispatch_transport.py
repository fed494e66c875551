"""Dispatch transport: sending SMS through our transport against its baselines, same run.

A fake Twilio (an aiohttp server in a child process, on 127.0.0.1) answers every Messages
POST with the documented 201 body. The same ``TwilioSms.send`` runs over:

- ours: ``make_http_client()``, httpx's API over the pool of ``http_pool.py``;
- plain httpx: ``httpx.AsyncClient``'s own transport (encode/httpx#3215 is about it);

and aiohttp's own ``ClientSession`` posts the same form bytes directly, without the
provider around them (which favours it: building the form and reading the answer into a
result are left out), as the transport before ours did;

at several concurrency levels, and the official ``twilio`` client sends one by one (it is
synchronous), pointed at the same server. Each figure is requests per second; the ratios
compare ours with each baseline.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any, NamedTuple

import httpx
import orjson
from pydantic import SecretStr

from outreach.channels import SmsChannel
from outreach.clock import FixedClock
from outreach.config import Settings
from outreach.providers.base import OutboundMessage
from outreach.providers.form_encoding import encode_form
from outreach.providers.transport import make_http_client
from outreach.providers.twilio_common import FORM
from outreach.providers.twilio_sms import TwilioSms

ACCOUNT_SID = "AC" + "b" * 32
CREATED = {
    "account_sid": ACCOUNT_SID, "api_version": "2010-04-01", "body": "Your balance is due.",
    "date_created": "Thu, 24 Aug 2023 05:01:45 +0000", "date_sent": None,
    "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000", "direction": "outbound-api",
    "error_code": None, "error_message": None, "from": "+16175550100",
    "messaging_service_sid": None, "num_media": "0", "num_segments": "1", "price": None,
    "price_unit": None, "sid": "SM" + "a" * 32, "status": "queued", "subresource_uris": {},
    "to": "+16175550199", "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/SM{'a' * 32}.json",
}  # fmt: skip

SERVER = """
import json, sys
from aiohttp import web
created = json.loads(sys.argv[1])
async def messages(request):
    await request.read()
    return web.json_response(created, status=201)
app = web.Application()
app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", messages)
async def main():
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)
    import asyncio
    await asyncio.Event().wait()
import asyncio
asyncio.run(main())
"""


def start_server() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, json.dumps(CREATED)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    port = int(process.stdout.readline())
    return process, f"http://127.0.0.1:{port}"


class Measured(NamedTuple):
    per_second: float
    cpu_us: float  # this process's CPU a request, in microseconds


def bench_settings(base_url: str) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=SecretStr("bench-auth-token"),
        twilio_from_number="+16175550100",
        twilio_api_base_url=base_url,
        public_base_url="https://outreach.example.com",
    )


async def send_concurrently(
    client: httpx.AsyncClient, settings: Settings, requests: int, concurrency: int
) -> Measured:
    """Requests per second for ``requests`` sends, at most ``concurrency`` at a time, and
    this process's CPU a request (the server is another process)."""
    clock = FixedClock(datetime(2026, 1, 1, tzinfo=UTC))
    provider = TwilioSms(settings, client, clock, SmsChannel())
    gate = asyncio.Semaphore(concurrency)

    async def one(number: int) -> str:
        async with gate:
            message = OutboundMessage(number, f"k{number}", "sms", "+16175550199", "Hello")
            return (await provider.send(message)).provider_message_id

    await asyncio.gather(*(one(n) for n in range(min(concurrency, requests))))  # warm the pool
    started, cpu = time.perf_counter(), time.process_time()
    ids = await asyncio.gather(*(one(n) for n in range(requests)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert len(ids) == requests and all(ids)
    return Measured(requests / elapsed, cpu / requests * 1e6)


async def transport_rates(
    settings: Settings, requests: int, concurrency: int
) -> dict[str, Measured]:
    async with make_http_client() as ours:
        ours_rate = await send_concurrently(ours, settings, requests, concurrency)
    async with make_http_client(transport=httpx.AsyncHTTPTransport()) as plain:
        plain_rate = await send_concurrently(plain, settings, requests, concurrency)
    aiohttp_rate = await aiohttp_session_rate(settings, requests, concurrency)
    return {"ours": ours_rate, "plain_httpx": plain_rate, "aiohttp_session": aiohttp_rate}


async def aiohttp_session_rate(settings: Settings, requests: int, concurrency: int) -> Measured:
    """Requests per second for the same POSTs through an aiohttp session of its own."""
    import aiohttp

    url = f"{settings.twilio_api_base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    token = base64.b64encode(f"{ACCOUNT_SID}:bench-auth-token".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "Content-Type": FORM}
    body = encode_form({"To": "+16175550199", "Body": "Hello", "From": "+16175550100"}).encode()
    gate = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:

        async def one(_: int) -> str:
            async with gate, session.post(url, data=body, headers=headers) as answer:
                return str(orjson.loads(await answer.read())["sid"])

        await asyncio.gather(*(one(n) for n in range(min(concurrency, requests))))
        started, cpu = time.perf_counter(), time.process_time()
        ids = await asyncio.gather(*(one(n) for n in range(requests)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert len(ids) == requests and all(ids)
    return Measured(requests / elapsed, cpu / requests * 1e6)


def twilio_client_rate(base_url: str, requests: int) -> float:
    """The official client, one message at a time (it is synchronous)."""
    from twilio.rest import Client

    logging.getLogger("twilio").setLevel(logging.WARNING)  # it logs each request at INFO
    client = Client(ACCOUNT_SID, "bench-auth-token")
    client.api.base_url = base_url
    client.messages.create(to="+16175550199", from_="+16175550100", body="warm-up")
    started = time.perf_counter()
    for number in range(requests):
        created = client.messages.create(to="+16175550199", from_="+16175550100", body=f"{number}")
        assert created.sid
    return requests / (time.perf_counter() - started)


def main(
    requests: int = 3_000, concurrency: tuple[int, ...] = (50, 200), twilio_requests: int = 500
) -> dict[str, Any]:
    process, base_url = start_server()
    try:
        settings = bench_settings(base_url)
        levels: dict[str, Any] = {}
        for level in concurrency:
            rates = asyncio.run(transport_rates(settings, requests, level))
            levels[str(level)] = {
                **{name: measured.per_second for name, measured in rates.items()},
                **{f"{name}_cpu_us": measured.cpu_us for name, measured in rates.items()},
                "ratio_vs_plain_httpx": rates["ours"].per_second / rates["plain_httpx"].per_second,
                "ratio_vs_aiohttp_session": (
                    rates["ours"].per_second / rates["aiohttp_session"].per_second
                ),
            }
        twilio_rate = twilio_client_rate(base_url, twilio_requests)
    finally:
        process.terminate()
        process.wait()
    best = max(level["ours"] for level in levels.values())
    return {
        "requests_per_level": requests,
        "by_concurrency": levels,
        "twilio_client_one_by_one": twilio_rate,
        "ratio_vs_twilio_client": best / twilio_rate,
    }


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    result = main(requests=300, twilio_requests=100) if quick else main()
    print(json.dumps(result, indent=2))
