"""The batched writer: requests that arrive together share one transaction, each learns
its own result, and one bad event fails only its own request."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from sqlalchemy import Engine

from outreach.clock import FixedClock
from outreach.events import EventPolicy, EventResult, provider_events
from outreach.providers.base import EventType, ProviderEvent
from outreach.web.writer import EventWriter, WriterBusy
from tests.conftest import NOW
from tests.eventdata import add_account, add_attempt, count, event


def _writer(engine: Engine, **options: int) -> EventWriter:
    return EventWriter(engine, FixedClock(NOW), EventPolicy(), **options)


def _events(n: int) -> list[list[ProviderEvent]]:
    return [[event(EventType.DELIVERED, provider_message_id=f"SM{i}")] for i in range(n)]


async def _submit_together(
    writer: EventWriter, jobs: list[list[ProviderEvent]]
) -> list[list[EventResult] | BaseException]:
    try:
        return await asyncio.gather(
            *(writer.submit(events) for events in jobs), return_exceptions=True
        )
    finally:
        await writer.stop()


def test_requests_that_arrive_together_share_one_transaction(engine: Engine) -> None:
    writer = _writer(engine)
    jobs = _events(20)
    jobs[3] = jobs[3] + jobs[3]  # a repeat within one request
    results = asyncio.run(_submit_together(writer, jobs))
    assert writer.batches == 1
    assert [len(r) for r in results if isinstance(r, list)] == [1, 1, 1, 2] + [1] * 16
    assert [r.stored for r in results[3]] == [True, False]  # type: ignore[union-attr]
    assert count(engine, provider_events) == 20


def test_a_batch_holds_at_most_batch_size_events(engine: Engine) -> None:
    writer = _writer(engine, batch_size=2)
    asyncio.run(_submit_together(writer, _events(5)))
    assert writer.batches == 3
    assert count(engine, provider_events) == 5


def test_a_bad_event_fails_only_its_own_request(engine: Engine) -> None:
    add_attempt(engine, add_account(engine), message_id="SM1")
    jobs = _events(3)
    bad = replace(jobs[1][0], payload={"unstorable": object()})
    results = asyncio.run(_submit_together(_writer(engine), [jobs[0], [bad], jobs[2]]))
    assert isinstance(results[1], Exception)
    assert [type(r) for r in (results[0], results[2])] == [list, list]
    assert count(engine, provider_events) == 2


def test_too_many_waiting_events_are_refused_at_once(engine: Engine) -> None:
    writer = _writer(engine, max_waiting=3)

    async def overload() -> None:
        try:
            await writer.submit([event(EventType.SENT, key=str(n)) for n in range(4)])
        finally:
            await writer.stop()

    with pytest.raises(WriterBusy):
        asyncio.run(overload())
    assert count(engine, provider_events) == 0


def test_nothing_to_write_needs_no_transaction(engine: Engine) -> None:
    writer = _writer(engine)
    assert asyncio.run(_submit_together(writer, [[]])) == [[]]
    assert writer.batches == 0
