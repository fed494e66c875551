"""The batched event writer: many webhook requests, one transaction, each answered after
its own commit.

Delivery receipts arrive in bursts. Committing each request on its own costs a
transaction per event and, on SQLite, a wait for the one write lock; here requests hand
their events to a queue and wait. One writer takes everything queued (up to
``batch_size`` events), applies it in one transaction on its own thread, and only then
tells each request how its events went, so nothing is acknowledged before it is stored.
No timer: while a batch commits, the next one gathers, so batches grow with the load and
a lone request is written at once.

A batch that fails is written again one request at a time, so that one bad event costs
only its own request (which answers 503 and is retried by the provider).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import Engine

from outreach.clock import Clock
from outreach.events import EventPolicy, EventResult, Incoming, apply_batch
from outreach.providers.base import ProviderEvent

log = logging.getLogger("outreach.web.writer")


class WriterBusy(Exception):
    """Too many events wait already; the provider should retry later."""


@dataclass
class _Job:
    items: list[Incoming]
    done: asyncio.Future[list[EventResult]] = field(repr=False)


class EventWriter:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        policy: EventPolicy,
        *,
        batch_size: int = 500,
        max_waiting: int = 20_000,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.policy = policy
        self.batch_size = batch_size
        self.max_waiting = max_waiting
        self.batches = 0  # transactions committed (for tests and the benchmark)
        self._queue: asyncio.Queue[_Job] | None = None
        self._waiting = 0
        self._task: asyncio.Task[None] | None = None
        # One thread: the writes are serial anyway, and SQLite wants one writer.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="event-writer")

    async def submit(
        self, events: Sequence[ProviderEvent], request_token: str | None = None
    ) -> list[EventResult]:
        """Store and apply ``events``; returns once they are committed (or raises)."""
        if not events:
            return []
        if self._waiting + len(events) > self.max_waiting:
            raise WriterBusy(f"{self._waiting} events wait to be written")
        queue = self._start()
        job = _Job(
            [Incoming(event, request_token) for event in events],
            asyncio.get_running_loop().create_future(),
        )
        self._waiting += len(job.items)
        queue.put_nowait(job)
        return await asyncio.shield(job.done)

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        if self._task is not None and self._queue is not None:
            await self._queue.join()
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._thread.shutdown(wait=True)

    def _start(self) -> asyncio.Queue[_Job]:
        # Started on first use, in the serving loop: the app may run without a lifespan.
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(self._queue))
        return self._queue

    async def _run(self, queue: asyncio.Queue[_Job]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await queue.get()]
            size = len(jobs[0].items)
            while size < self.batch_size and not queue.empty():
                jobs.append(queue.get_nowait())
                size += len(jobs[-1].items)
            try:
                outcomes = await loop.run_in_executor(self._thread, self._write, jobs)
            except BaseException as exc:  # the loop is stopping: nobody waits in vain
                outcomes = [exc] * len(jobs)
                raise
            finally:
                for job, outcome in zip(jobs, outcomes, strict=True):
                    self._waiting -= len(job.items)
                    if not job.done.done():
                        if isinstance(outcome, BaseException):
                            job.done.set_exception(outcome)
                        else:
                            job.done.set_result(outcome)
                    queue.task_done()

    def _write(self, jobs: list[_Job]) -> list[list[EventResult] | BaseException]:
        """All jobs in one transaction; after a failure, each job in its own."""
        try:
            results = self._transaction([item for job in jobs for item in job.items])
        except Exception as exc:
            if len(jobs) == 1:
                log.error("webhook events could not be stored: %s", _describe(exc))
                return [exc]
        else:
            self.batches += 1
            split: list[list[EventResult] | BaseException] = []
            for job in jobs:
                split.append(results[: len(job.items)])
                results = results[len(job.items) :]
            return split
        outcomes: list[list[EventResult] | BaseException] = []
        for job in jobs:
            try:
                outcomes.append(self._transaction(job.items))
                self.batches += 1
            except Exception as exc:
                log.error("webhook events could not be stored: %s", _describe(exc))
                outcomes.append(exc)
        return outcomes

    def _transaction(self, items: list[Incoming]) -> list[EventResult]:
        with self.engine.begin() as connection:
            return apply_batch(connection, items, self.clock.now(), self.policy)


def _describe(exc: BaseException) -> str:
    # The engine hides bound values (debtors' data) from its errors; the first line is
    # enough to tell what went wrong.
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
