"""The dispatch stage, end to end, against a local fake Twilio over HTTP.

Queued SMS attempts for due accounts are dispatched by the real ``Dispatcher``: claim with a
lease, compliance at the moment of sending, ``sending`` committed before the requests
leave, concurrent sends through ``TwilioSms`` and the shared transport, results recorded;
the backlog shared with dispatch processes, one per core, as the daemon does.
The fake server (an aiohttp process on 127.0.0.1) answers with Twilio's documented 201 body;
its CPU time is reported, since both processes share the machine's cores. The baseline is
the official ``twilio`` client sending one message at a time to the same server, in the
same run, just before and just after the dispatcher (the ratio takes their mean).

The rate is over the messages sent, and the run fails unless every message queued was sent.
"""

from __future__ import annotations

import asyncio
import os
import resource
import tempfile
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, insert, select

from bench.checks import require
from bench.dispatch_transport import bench_settings, start_server, twilio_client_rate
from bench.plan_accounts import load_accounts, weekday_afternoon
from outreach import event_loop
from outreach.channels import load_sms
from outreach.clock import FixedClock
from outreach.compliance_store import attempts
from outreach.db import make_engine, upgrade
from outreach.dispatcher import Dispatcher
from outreach.providers.transport import make_http_client
from outreach.providers.twilio_sms import TwilioSms
from outreach.ratelimit import RateLimiter
from outreach.store import accounts, columns_of, contact_points
from outreach.written_facts import FACT_COLUMNS, facts_digest

# The bench sends from one number as fast as the server answers.
UNLIMITED = """rate_limits:
  default:
    per_second: 10000
    burst: 10000
"""


BODY = "Your balance is due. Reply STOP to opt out."
# As the daemon runs by default (DISPATCH_PROCESSES=0): one dispatch process per core.
PROCESSES = os.cpu_count() or 1


def queue_attempts(engine: Engine, now: datetime) -> int:
    """An SMS attempt queued for every account, as the planner leaves them: each with the
    digest of the facts it was written from, which the dispatcher checks again."""
    with engine.begin() as connection:
        points = connection.execute(
            select(contact_points.c.account_id, contact_points.c.address, contact_points.c.id,
                   *columns_of(accounts, FACT_COLUMNS))
            .join(accounts, accounts.c.id == contact_points.c.account_id)
            .where(contact_points.c.channel == "sms")
            .order_by(contact_points.c.account_id)
        ).all()  # fmt: skip
        rows = [
            {"account_id": p.account_id, "contact_point_id": p.id,
             "idempotency_key": f"{p.account_id}:bench:sms", "step_key": "bench",
             "channel": "sms", "to_address": p.address, "template_name": "overdue",
             "tone": "friendly", "locale": "en", "body": BODY, "status": "queued",
             "facts_digest": facts_digest(p, now.astimezone(ZoneInfo(p.timezone)).date(),
                                         first_contact=True),
             "automated": True, "tries": 0, "next_try_at": now, "created_at": now,
             "updated_at": now}
            for p in points
        ]  # fmt: skip
        for start in range(0, len(rows), 10_000):
            connection.execute(insert(attempts), rows[start : start + 10_000])
    return len(rows)


def _own_cpu_seconds() -> float:
    """This process's CPU time and that of its children that ended (the helpers)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _dispatch(engine: Engine, base_url: str, channels: Path, now: datetime) -> Any:
    settings = bench_settings(base_url).model_copy(update={"channels_dir": channels})
    clock = FixedClock(now)
    async with make_http_client() as client:
        provider = TwilioSms(settings, client, clock, load_sms(channels))
        dispatcher = Dispatcher(
            engine, settings, clock, "bench", {"sms": provider},
            # The daemon's batch size and concurrency: its own defaults.
            RateLimiter.from_channels(channels), processes=PROCESSES,
        )  # fmt: skip
        try:
            return await dispatcher.tick()
        finally:
            await asyncio.to_thread(dispatcher.close)


def main(messages: int = 100_000, baseline: int = 1_000) -> dict[str, Any]:
    now = weekday_afternoon(date(2026, 11, 22))
    process, base_url = start_server()
    try:
        with tempfile.TemporaryDirectory() as folder:
            channels = Path(folder) / "channels"
            channels.mkdir()
            (channels / "sms.yaml").write_text(UNLIMITED, encoding="utf-8")
            engine = make_engine(bench_settings(base_url).model_copy(
                update={"database_url": f"sqlite:///{folder}/dispatch.db"}))  # fmt: skip
            upgrade(engine)
            load_accounts(engine, messages, now)
            queued = queue_attempts(engine, now)
            # The official client runs just before and just after the dispatcher, and the
            # ratio takes the mean of the two: this shared VM's speed drifts by a tenth or
            # more within minutes, and one side measured at a different moment would carry
            # that drift into the ratio.
            before = twilio_client_rate(base_url, baseline)
            server_cpu = _cpu_seconds(process.pid)
            own_cpu = _own_cpu_seconds()
            started = time.perf_counter()
            report = event_loop.run(_dispatch(engine, base_url, channels, now))
            seconds = time.perf_counter() - started
            server_cpu = _cpu_seconds(process.pid) - server_cpu
            dispatch_cpu = _own_cpu_seconds() - own_cpu
            after = twilio_client_rate(base_url, baseline)
            with engine.connect() as connection:
                sent = connection.execute(
                    select(func.count()).where(attempts.c.status == "sent")
                ).scalar_one()
            engine.dispose()
    finally:
        process.terminate()
        process.wait()
    require(
        sent == queued,
        f"dispatch: {sent:,} of the {queued:,} messages queued were sent "
        f"(outcomes {dict(report.outcomes)})",
    )
    rate = sent / seconds
    official = (before + after) / 2
    return {
        "messages": queued,
        "sent": sent,
        "outcomes": dict(report.outcomes),
        "processes": report.processes,
        "seconds": round(seconds, 2),
        "per_second": round(rate),
        "fake_server_cpu_share": round(server_cpu / seconds / (os.cpu_count() or 1), 2),
        # The daemon's process and its helpers (reaped by the time the tick returns).
        "dispatch_cpu_us_per_message": round(dispatch_cpu / sent * 1e6),
        "official_twilio_client_one_by_one_per_second": round(official),
        "official_before_and_after": [round(before), round(after)],
        "ratio": round(rate / official, 2),
    }
