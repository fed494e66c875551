"""The webhook benchmark fails a run in which a request answered 200 has no row stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, select

from bench import webhooks
from bench.checks import BenchmarkFailed
from outreach.events import provider_events


def test_a_webhook_run_that_lost_an_acknowledged_event_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    counted = webhooks._stored
    counts = 0

    def one_row_gone(engine: Engine) -> int:
        nonlocal counts
        counts += 1
        if counts == 2:  # after the server's run: one acknowledged event's row went missing
            with engine.begin() as connection:
                first = select(provider_events.c.id).limit(1).scalar_subquery()
                connection.execute(delete(provider_events).where(provider_events.c.id == first))
        return counted(engine)

    monkeypatch.setattr(webhooks, "_stored", one_row_gone)
    monkeypatch.setattr(webhooks, "MODES", (("batched", "auto"),))
    with pytest.raises(BenchmarkFailed, match=r"answered 40 requests 200 and stored 39 rows"):
        webhooks.bench_database(
            "SQLite", f"sqlite:///{tmp_path}/webhooks.db", closed_requests=30,
            open_seconds=0.2, rate=50, concurrency=4,
        )  # fmt: skip
