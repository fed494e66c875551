"""The dispatch benchmark reports a rate only over messages sent: a run in which a queued
message was not sent fails instead."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, select, update

from bench import dispatch
from bench.checks import BenchmarkFailed
from outreach.compliance_store import attempts


def test_a_dispatch_run_that_left_a_message_unsent_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    queue = dispatch.queue_attempts

    def one_held_back(engine: Engine, now: datetime) -> int:
        queued = queue(engine, now)
        with engine.begin() as connection:  # not due in this run: never sent
            first = connection.execute(select(attempts.c.id).limit(1)).scalar_one()
            connection.execute(
                update(attempts)
                .where(attempts.c.id == first)
                .values(next_try_at=now + timedelta(days=1))
            )
        return queued

    monkeypatch.setattr(dispatch, "queue_attempts", one_held_back)
    with pytest.raises(BenchmarkFailed, match=r"19 of the 20 messages queued were sent"):
        dispatch.main(messages=20, baseline=5)
