"""Webhook throughput: signed Twilio status callbacks, stored durably, from a load
generator against a real server on 127.0.0.1.

Three servers (``bench.webhook_server``), each in its own process, take the same kind of
traffic in the same run: the product (``batched``: one writer, many events per
transaction, each request answered after its own commit), the baseline (``per_request``:
one transaction per request), and the endpoint without the database (``bare``). Every
request is a distinct delivery receipt (``sent`` or ``delivered`` for one of the queued
attempts), signed with X-Twilio-Signature for the public URL and carrying its own
I-Twilio-Idempotency-Token, as Twilio sends them.

Two loads, from an aiohttp client in this process:

- closed loop: ``concurrency`` connections, each sending its next request as soon as the
  last is answered: the most the server takes;
- open loop: requests at a fixed ``rate`` whether or not the earlier ones are answered
  (as a campaign's receipts arrive), each latency measured from when it was due, so a
  server that falls behind is charged for the queue it builds.

Afterwards the rows stored are counted: every acknowledged request must have its row, and
the run fails unless the rows stored are as many as the requests answered 200. The rates are
over the requests answered 200.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from pydantic import SecretStr
from sqlalchemy import Engine, func, insert, select
from twilio.request_validator import RequestValidator

from bench.checks import require
from outreach.compliance_store import attempts
from outreach.config import Settings
from outreach.db import make_engine, upgrade
from outreach.events import provider_events
from outreach.store import accounts

PUBLIC = "https://outreach.example.com"
PATH = "/webhooks/twilio_sms/status"
ACCOUNT_SID = "AC" + "d" * 32
AUTH_TOKEN = "bench-auth-token-3e1f"  # noqa: S105 (a made-up token for a local server)
REPO = Path(__file__).resolve().parent.parent
# (mode, uvicorn stack): the three servers on the product's stack, and the product again
# on uvicorn's pure-Python parser and asyncio's loop.
MODES = (("bare", "auto"), ("per_request", "auto"), ("batched", "auto"), ("batched", "h11"))


@dataclass(frozen=True)
class Signed:
    path: str
    body: bytes
    headers: dict[str, str]


@dataclass
class Load:
    sent: int
    seconds: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def pct(p: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000, 1)

        return {
            "requests": self.sent,
            "acknowledged": self.statuses.get("200", 0),
            "other_answers": {k: v for k, v in self.statuses.items() if k != "200"},
            "seconds": round(self.seconds, 2),
            # Over the requests answered 200: a 503 (too many events wait to be stored), a
            # timeout or a broken connection is not a request served.
            "per_second": round(self.statuses.get("200", 0) / self.seconds),
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "max_ms": round(ordered[-1] * 1000, 1),
        }


def bench_settings(database_url: str) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,
        secret_key=SecretStr("bench-secret-key-8c2d"),
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=SecretStr(AUTH_TOKEN),
        twilio_from_number="+16175550100",
        public_base_url=PUBLIC,
        channels_dir=REPO / "channels",
    )


def _environment(settings: Settings) -> dict[str, str]:
    """The settings as the server process reads them."""
    values = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "SENDGRID_"))}
    values.update(
        DATABASE_URL=settings.database_url,
        SECRET_KEY=settings.secret_key.get_secret_value(),
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_FROM_NUMBER="+16175550100",
        PUBLIC_BASE_URL=PUBLIC,
        CHANNELS_DIR=str(REPO / "channels"),
        OUTBOX_PATH=str(Path(tempfile.gettempdir()) / "outreach-bench-outbox.jsonl"),
    )
    return values


def prepare(engine: Engine, count: int, now: datetime) -> list[int]:
    """``count`` sent SMS attempts, 50 per account; their ids."""
    upgrade(engine)
    with engine.begin() as connection:
        owners = connection.execute(
            insert(accounts).returning(accounts.c.id),
            [
                {"reference": f"W-{n:07d}", "name": "Bench Debtor", "balance_minor": 10_000,
                 "imported_balance_minor": 10_000, "currency": "USD",
                 "due_date": now.date() - timedelta(days=10), "status": "active",
                 "timezone": "America/New_York", "jurisdiction": "US-NY", "locale": "en_US",
                 "cadence": "standard", "collector_type": "first_party",
                 "created_at": now, "updated_at": now}
                for n in range(count // 50 + 1)
            ],
        ).scalars().all()  # fmt: skip
        rows = [
            {"account_id": owners[n // 50], "idempotency_key": f"bench:{n}", "step_key": "bench",
             "channel": "sms", "to_address": f"+1212555{n % 10_000:04d}",
             "template_name": "overdue", "tone": "friendly", "locale": "en_US",
             "body": "Your balance is due. Reply STOP to opt out.", "status": "sent",
             "provider": "twilio_sms", "provider_message_id": f"SM{n:032d}", "tries": 1,
             "automated": True, "created_at": now, "updated_at": now, "sent_at": now}
            for n in range(count)
        ]  # fmt: skip
        ids: list[int] = []
        for start in range(0, len(rows), 5_000):
            chunk = rows[start : start + 5_000]
            ids += connection.execute(insert(attempts).returning(attempts.c.id), chunk).scalars()
    return ids


def signed_requests(attempt_ids: Sequence[int], first_message: int) -> list[Signed]:
    """Two receipts per attempt, ``sent`` then ``delivered``, each signed as Twilio does."""
    validator = RequestValidator(AUTH_TOKEN)
    signed = []
    for offset, attempt_id in enumerate(attempt_ids):
        sid = f"SM{first_message + offset:032d}"
        for status in ("sent", "delivered"):
            params = {
                "SmsSid": sid, "SmsStatus": status, "MessageStatus": status,
                "To": f"+1212555{(first_message + offset) % 10_000:04d}",
                "MessagingServiceSid": "MG" + "e" * 32, "MessageSid": sid,
                "AccountSid": ACCOUNT_SID, "From": "+16175550100", "ApiVersion": "2010-04-01",
            }  # fmt: skip
            path = f"{PATH}?attempt_id={attempt_id}"
            signature = validator.compute_signature(PUBLIC + path, params)
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
                "I-Twilio-Idempotency-Token": f"{sid}-{status}",
            }
            signed.append(Signed(path, urlencode(params).encode(), headers))
    return signed


async def _one(
    session: aiohttp.ClientSession, base: str, request: Signed, due: float, load: Load
) -> None:
    try:
        async with session.post(base + request.path, data=request.body,
                                headers=request.headers) as response:  # fmt: skip
            await response.read()
            load.statuses[str(response.status)] += 1
    except (aiohttp.ClientError, TimeoutError) as exc:
        load.statuses[type(exc).__name__] += 1
    load.latencies.append(time.perf_counter() - due)


async def closed_loop(base: str, requests: Sequence[Signed], concurrency: int) -> Load:
    load = Load(len(requests))
    queue = iter(requests)
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            for request in queue:
                await _one(session, base, request, time.perf_counter(), load)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        load.seconds = time.perf_counter() - started
    return load


async def open_loop(base: str, requests: Sequence[Signed], rate: float) -> Load:
    load = Load(len(requests))
    connector = aiohttp.TCPConnector(limit=512)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        tasks = []
        for n, request in enumerate(requests):
            due = started + n / rate
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(_one(session, base, request, due, load)))
        await asyncio.gather(*tasks)
        load.seconds = time.perf_counter() - started
    return load


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stored(engine: Engine) -> int:
    with engine.connect() as connection:
        query = select(func.count()).select_from(provider_events)
        return int(connection.execute(query).scalar_one())


def run_mode(
    mode: str,
    stack: str,
    settings: Settings,
    engine: Engine,
    closed: Sequence[Signed],
    opened: Sequence[Signed],
    concurrency: int,
    rate: float,
) -> dict[str, Any]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.webhook_server", mode, stack],
        stdout=subprocess.PIPE, text=True, env=_environment(settings), cwd=REPO,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        base = f"http://127.0.0.1:{int(process.stdout.readline())}"
        before = _stored(engine)
        warm = asyncio.run(closed_loop(base, closed[: len(closed) // 20], concurrency))
        cpu = _cpu_seconds(process.pid)
        most = asyncio.run(closed_loop(base, closed[len(closed) // 20 :], concurrency))
        closed_cpu = _cpu_seconds(process.pid) - cpu
        cpu = _cpu_seconds(process.pid)
        steady = asyncio.run(open_loop(base, opened, rate))
        open_cpu = _cpu_seconds(process.pid) - cpu
    finally:
        process.terminate()
        process.wait()
    stored = _stored(engine) - before
    acknowledged = sum(load.statuses.get("200", 0) for load in (warm, most, steady))
    # The rows are counted, not matched to their requests: only equal counts show that every
    # request answered 200 has its row (more rows than answers would hide one missing).
    require(
        mode == "bare" or stored == acknowledged,
        f"webhooks: the {mode} server ({stack}) answered {acknowledged:,} requests 200 "
        f"and stored {stored:,} rows",
    )
    return {
        "closed_loop": most.report() | {"server_cpu_share": _share(closed_cpu, most.seconds)},
        "open_loop": steady.report() | {"server_cpu_share": _share(open_cpu, steady.seconds)},
        "acknowledged": acknowledged,
        "rows_stored": stored if mode != "bare" else None,
        "lost": (acknowledged - stored) if mode != "bare" else None,
    }


def _share(cpu: float, seconds: float) -> float:
    """The server's CPU time as a share of the whole machine over the run."""
    return round(cpu / seconds / (os.cpu_count() or 1), 2)


def bench_database(
    label: str,
    database_url: str,
    closed_requests: int,
    open_seconds: float,
    rate: float,
    concurrency: int,
) -> dict[str, Any]:
    settings = bench_settings(database_url)
    engine = make_engine(settings)
    per_mode = closed_requests + int(open_seconds * rate)
    now = datetime.now(UTC)
    ids = prepare(engine, per_mode // 2 * len(MODES), now)
    results: dict[str, Any] = {"database": label}
    for index, (mode, stack) in enumerate(MODES):
        first = index * (per_mode // 2)
        requests = signed_requests(ids[first : first + per_mode // 2], first)
        name = mode if stack == "auto" else f"{mode}_{stack}"
        results[name] = run_mode(
            mode, stack, settings, engine, requests[:closed_requests],
            requests[closed_requests:], concurrency, rate,
        )  # fmt: skip
    engine.dispose()
    batched, baseline = results["batched"], results["per_request"]
    results["ratio_closed_loop"] = round(
        batched["closed_loop"]["per_second"] / baseline["closed_loop"]["per_second"], 2
    )
    return results


def main(
    closed_requests: int = 20_000,
    open_seconds: float = 20.0,
    rate: float = 1_000.0,
    concurrency: int = 64,
    postgres_url: str | None = None,
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "rate": rate,
        "concurrency": concurrency,
        "server": "uvicorn, one process, " + _stack() + " (batched_h11: h11 and asyncio)",
    }
    with tempfile.TemporaryDirectory() as folder:
        report["sqlite"] = bench_database(
            "SQLite, WAL, synchronous=FULL", f"sqlite:///{folder}/webhooks.db",
            closed_requests, open_seconds, rate, concurrency,
        )  # fmt: skip
    if postgres_url:
        report["postgresql"] = bench_database(
            "PostgreSQL, fsync and synchronous_commit on", postgres_url,
            closed_requests, open_seconds, rate, concurrency,
        )  # fmt: skip
    return report


def _stack() -> str:
    try:
        import httptools  # noqa: F401
        import uvloop  # noqa: F401
    except ImportError:
        return "h11 and asyncio"
    return "httptools and uvloop"
