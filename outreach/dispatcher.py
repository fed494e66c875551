"""The dispatch stage: claim queued attempts, check compliance again, send, record.

At most once: an attempt is marked ``sending`` (and committed) before its request leaves.
If the answer is lost (a read timeout, a reset, the process dying), the provider may have
accepted it, so the attempt becomes ``unknown`` for review and is never sent again on its
own. Only what the provider refused, or what never left, is retried, with backoff.

Compliance is asked again at the moment of sending: a STOP, a payment or a closing window
since planning wins. Sends run concurrently through the async providers, each sender
within its rate limit.

Sending is CPU work too (the recheck, building and reading each request), so a backlog is
shared with helper dispatch processes (``outreach.dispatch_processes``) as the plan stage
shares its own; they reserve their rate-limit slots from this dispatcher's limiter.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Connection, Engine, bindparam, case, literal, select, update

from outreach import heap
from outreach.bulk import BulkStatement
from outreach.clock import Clock
from outreach.compliance.engine import evaluate
from outreach.compliance.rules import RuleSet, load_ruleset
from outreach.compliance_store import (
    DebtorRecord,
    attempts,
    decision_row,
    load_debtors,
    situation,
    store_decisions,
)
from outreach.config import Settings
from outreach.errors import ChannelError
from outreach.leases import StopFlag, claim_queued_attempts
from outreach.models import AccountStatus, AttemptStatus
from outreach.providers.base import OutboundMessage, Provider, SendResult
from outreach.providers.outbox import Outbox
from outreach.ratelimit import RateLimiter
from outreach.store import (
    accounts,
    among,
    columns_of,
    contact_points,
    named_rows,
    suppressions,
)

if TYPE_CHECKING:
    from outreach.dispatch_processes import DispatchProcesses

log = logging.getLogger("outreach.dispatcher")

MAX_TRIES = 8
# How long a send may take before its attempt is presumed lost (then: unknown).
SEND_LEASE = timedelta(minutes=2)
# A message waits at most this long (seconds) in the process for its sender's rate limit;
# beyond that it stays queued and is looked at again after RATE_WAIT.
RATE_HORIZON = 20.0
RATE_WAIT = timedelta(seconds=10)
# What the recheck reads of an account: what compliance and ``_account_closed`` use, and
# no more (every date read is a conversion).
RECHECK_ACCOUNT_COLUMNS = ("id", "reference", "timezone", "jurisdiction", "collector_type",
                           "status", "paused_until")  # fmt: skip


class SlotReserver(Protocol):
    """Per-sender rate limits: a ``RateLimiter``, or a dispatch process's remote view of
    its daemon's."""

    def reserve_many(
        self, senders: Sequence[tuple[str, str]], max_wait: float | None = None
    ) -> list[float | None]: ...

    async def wait(self, seconds: float) -> None: ...


@dataclass
class DispatchReport:
    claimed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    processes: int = 1  # how many processes sent this tick

    def add(self, other: DispatchReport) -> None:
        self.claimed += other.claimed
        self.outcomes.update(other.outcomes)

    def summary(self) -> str:
        names = ("sent", "deferred", "blocked", "cancelled", "rate_limited", "retry", "failed",
                 "unknown", "requeued")  # fmt: skip
        parts = [f"claimed {self.claimed}"]
        if self.processes > 1:
            parts[0] += f" in {self.processes} processes"
        parts += [f"{name} {self.outcomes[name]}" for name in names if self.outcomes[name]]
        return ", ".join(parts)


@dataclass(frozen=True)
class Outcome:
    attempt: Any
    result: SendResult | None = None
    error: ChannelError | None = None
    unsent: bool = False  # the daemon stopped before the request left


def backoff(tries: int) -> timedelta:
    """30 s, 1 min, 2 min... capped at an hour."""
    return timedelta(seconds=min(30 * 2 ** max(tries - 1, 0), 3600))


class Dispatcher:
    """``processes`` above 1 lets a backlog be shared with helper processes, which build
    their providers from the settings again: only for providers ``build_providers`` made
    (the daemon's), and only on the channels no outbox carries (the outbox keeps its
    simulated events in this process). ``channels`` limits what this dispatcher claims."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        clock: Clock,
        worker: str,
        providers: Mapping[str, Provider],
        limiter: SlotReserver,
        *,
        batch_size: int = 500,
        concurrency: int = 100,
        lease: timedelta = timedelta(minutes=5),
        rules: RuleSet | None = None,
        processes: int = 1,
        channels: Collection[str] | None = None,
        stop: StopFlag | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.worker = worker
        self.providers = providers
        self.limiter = limiter
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.lease = lease
        self.rules = rules or load_ruleset(settings.compliance_rules_file)
        self.processes = processes
        self.channels = channels
        self.stop: StopFlag = stop or threading.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._pool: DispatchProcesses | None = None

    @property
    def stopping(self) -> bool:
        return self.stop.is_set()

    def request_stop(self) -> None:
        """Claim no more; what has not left yet goes back to the queue."""
        if isinstance(self.stop, threading.Event):
            self.stop.set()
        if self._pool is not None:
            self._pool.stop.set()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def helper_names(self) -> list[str]:
        """The lease names of this dispatcher's live helper processes."""
        return self._pool.live_names() if self._pool is not None else []

    async def tick(self, max_attempts: int | None = None, *, quiet: bool = False) -> DispatchReport:
        """Send what is due now (up to ``max_attempts``), batch by batch, until ``stopping``.
        A backlog (a full first batch with more to come) is shared with helper processes
        while this one goes on sending."""
        report = DispatchReport()
        limit = max_attempts if max_attempts is not None else 1_000_000_000
        helpers: list[Future[DispatchReport]] = []
        try:
            while report.claimed < limit and not self.stopping:
                now = self.clock.now()
                size = min(self.batch_size, limit - report.claimed)
                with self.engine.begin() as connection:
                    rows = claim_queued_attempts(
                        connection, self.worker, now, now + self.lease, size, self.channels
                    )
                if not rows:
                    break
                report.add(await self.dispatch_batch(rows))
                if len(rows) < size:
                    break
                if not helpers and limit - report.claimed > self.batch_size and self._shareable():
                    share, extra = divmod(limit - report.claimed, self.processes)
                    helpers = await self._start_helpers(share if max_attempts is not None else None)
                    limit = report.claimed + share + extra
        except Exception:
            await self._collect(helpers, report)  # what they sent is reported all the same
            raise
        await self._collect(helpers, report)
        if report.claimed and not quiet:
            log.info("dispatch: %s", report.summary())
        return report

    async def _start_helpers(self, limit: int | None) -> list[Future[DispatchReport]]:
        try:
            return self._processes().start(self.clock, limit)
        except BrokenProcessPool:
            # A helper died since the last backlog (killed, out of memory): start afresh.
            await asyncio.to_thread(self.close)
            return self._processes().start(self.clock, limit)

    async def _collect(
        self, helpers: Sequence[Future[DispatchReport]], report: DispatchReport
    ) -> None:
        """The helpers' reports, added to ``report``. A failed helper is logged: what it
        held is freed when its leases end, and what it had marked ``sending`` is held for
        review by housekeeping, as after any crash. A pool that lost a process is closed
        (off the event loop: closing waits for the others) and the next backlog starts a
        new one."""
        results = await asyncio.gather(
            *(asyncio.wrap_future(h) for h in helpers), return_exceptions=True
        )
        broken = False
        for theirs in results:
            if isinstance(theirs, BaseException):
                lost = isinstance(theirs, BrokenProcessPool)
                broken |= lost
                if lost and self.stopping:  # it left on the same SIGTERM as the daemon
                    log.info("dispatch: a dispatch process ended with the stop")
                else:
                    log.error("dispatch: a dispatch process failed: %r", theirs)
                continue
            report.add(theirs)
            report.processes += 1 if theirs.claimed else 0
        if broken:
            await asyncio.to_thread(self.close)

    def _shareable(self) -> list[str]:
        """The channels helper processes may send on."""
        if self.processes < 2:
            return []
        return [name for name, p in self.providers.items() if not isinstance(p, Outbox)]

    def _processes(self) -> DispatchProcesses:
        if self._pool is None:
            from outreach.dispatch_processes import DispatchProcesses
            from outreach.shared_ratelimit import LimiterService

            assert isinstance(self.limiter, RateLimiter), "only a daemon's limiter is shared"
            url = self.engine.url.render_as_string(hide_password=False)
            self._pool = DispatchProcesses(
                self.settings.model_copy(update={"database_url": url}),
                self.worker,
                self.processes - 1,
                self._shareable(),
                LimiterService(self.limiter),
                batch_size=self.batch_size,
                concurrency=self.concurrency,
                lease=self.lease,
            )
            if self.stopping:
                self._pool.stop.set()
        return self._pool

    async def dispatch_batch(self, rows: Sequence[Any]) -> DispatchReport:
        report = DispatchReport(claimed=len(rows))
        now = self.clock.now()
        with self.engine.begin() as connection:
            ready = self._recheck(connection, rows, now, report)
        outcomes = await asyncio.gather(*(self._send(*one) for one in ready))
        with self.engine.begin() as connection:
            self._record(connection, outcomes, report)
        heap.settle()  # what the first batch loaded stays; see outreach.heap
        return report

    def _recheck(
        self, connection: Connection, rows: Sequence[Any], now: datetime, report: DispatchReport
    ) -> list[tuple[Any, OutboundMessage, float]]:
        """Compliance at the moment of sending; marks the allowed ones ``sending``, each with
        its message and the seconds to wait for its sender's rate-limit slot."""
        account_rows = {
            row.id: row
            for row in named_rows(
                connection.execute(
                    select(*columns_of(accounts, RECHECK_ACCOUNT_COLUMNS)).where(
                        among(connection, accounts.c.id, {r.account_id for r in rows})
                    )
                )
            )
        }
        records = load_debtors(
            connection,
            list(account_rows.values()),
            now,
            self.rules.lookback_days,
            self.settings.default_region,
        )
        decisions: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        allowed: list[Any] = []
        for row in rows:
            account = account_rows[row.account_id]
            why_not = _account_closed(account, now) or _address_unused(records[account.id], row)
            if why_not is not None:
                changes.append(_change(row, AttemptStatus.CANCELLED, now, error=why_not))
                report.outcomes["cancelled"] += 1
                continue
            asked = situation(
                records[account.id], row.channel, row.to_address, now, automated=row.automated
            )
            decision = evaluate(asked, self.rules)
            decisions.append(
                decision_row(
                    account.id,
                    decision,
                    asked,
                    stage="dispatch",
                    decided_at=now,
                    step_key=row.step_key,
                    attempt_id=row.id,
                )
            )
            if decision.verdict == "allow":
                allowed.append(row)
            elif decision.verdict == "defer":
                changes.append(
                    _change(row, AttemptStatus.QUEUED, now, next_try_at=decision.not_before)
                )
                report.outcomes["deferred"] += 1
            else:
                changes.append(
                    _change(row, AttemptStatus.CANCELLED, now, error=",".join(decision.codes))
                )
                report.outcomes["blocked"] += 1
        messages = [_message(row) for row in allowed]
        waits = self.limiter.reserve_many(
            [(m.channel, self.providers[m.channel].sender(m)) for m in messages], RATE_HORIZON
        )
        ready: list[tuple[Any, OutboundMessage, float]] = []
        for row, message, wait in zip(allowed, messages, waits, strict=True):
            if wait is None:  # the sender's rate is spent for now: a later tick sends it
                changes.append(_change(row, AttemptStatus.QUEUED, now, next_try_at=now + RATE_WAIT))
                report.outcomes["rate_limited"] += 1
            else:
                ready.append((row, message, wait))
        store_decisions(connection, decisions)
        _apply_changes(connection, changes, self.worker)
        # Committed with the batch before any request leaves: a crash from here on leaves
        # these as ``sending``, which housekeeping turns into ``unknown``.
        _MARK_SENDING.execute(
            connection,
            [
                {"attempt_id": row.id, "lease_end": now + SEND_LEASE + timedelta(seconds=wait),
                 "now": now}
                for row, _, wait in ready
            ],
        )  # fmt: skip
        return ready

    async def _send(self, row: Any, message: OutboundMessage, wait: float) -> Outcome:
        provider = self.providers[row.channel]
        await self._pause(wait)  # outside the slots: a slow sender holds none
        if self.stopping:
            # Not sent: safe to put back in the queue for the next daemon.
            return Outcome(row, unsent=True)
        async with self._slots:
            if self.stopping:  # stopped while waiting for a slot: it has not left either
                return Outcome(row, unsent=True)
            try:
                return Outcome(row, result=await provider.send(message))
            except ChannelError as exc:
                return Outcome(row, error=exc)
            except Exception as exc:  # whatever it was, the request may have left
                log.exception("dispatch: attempt %s: unexpected error while sending", row.id)
                return Outcome(
                    row,
                    error=ChannelError(
                        f"unexpected {type(exc).__name__} while sending",
                        provider=provider.name,
                        ambiguous=True,
                    ),
                )

    async def _pause(self, seconds: float) -> None:
        """Wait for a rate-limit slot, but not past a stop request."""
        while seconds > 0 and not self.stopping:
            step = min(seconds, 0.25)
            await self.limiter.wait(step)
            seconds -= step

    def _record(
        self, connection: Connection, outcomes: Sequence[Outcome], report: DispatchReport
    ) -> None:
        now = self.clock.now()
        changes: list[dict[str, Any]] = []
        unsent = [outcome.attempt.id for outcome in outcomes if outcome.unsent]
        if unsent:
            # What never left is not a try: it goes back as it was, due at once, instead of
            # counting towards MAX_TRIES (a daemon stopped often enough would fail a message
            # it never sent) and waiting out a backoff meant for a provider's refusal.
            connection.execute(
                update(attempts)
                .where(attempts.c.id.in_(unsent), attempts.c.acquired_by == self.worker)
                .values(tries=attempts.c.tries - 1)
            )
        for outcome in outcomes:
            row, error = outcome.attempt, outcome.error
            if outcome.unsent:
                change = _change(row, AttemptStatus.QUEUED, now, error=row.error_message)
                change["new_error_code"] = row.error_code
                changes.append(change)
                report.outcomes["requeued"] += 1
                continue
            if outcome.result is not None:
                result = outcome.result
                changes.append(
                    _change(row, AttemptStatus.SENT, now, provider=result.provider,
                            provider_message_id=result.provider_message_id, sent_at=now)
                )  # fmt: skip
                report.outcomes["sent"] += 1
                continue
            assert error is not None
            tries = row.tries + 1
            if error.ambiguous:
                changes.append(_failed(row, AttemptStatus.UNKNOWN, now, error))
                report.outcomes["unknown"] += 1
                log.warning("dispatch: attempt %s held for review: %s", row.id, error)
            elif error.retryable and tries < MAX_TRIES:
                wait = max(backoff(tries), timedelta(seconds=error.retry_after or 0))
                changes.append(
                    _failed(row, AttemptStatus.QUEUED, now, error, next_try_at=now + wait)
                )
                report.outcomes["retry"] += 1
            else:
                changes.append(_failed(row, AttemptStatus.FAILED, now, error))
                report.outcomes["failed"] += 1
                _note_address(connection, row, error, now)
        _apply_changes(connection, changes, self.worker)


def _message(row: Any) -> OutboundMessage:
    return OutboundMessage(
        attempt_id=row.id,
        idempotency_key=row.idempotency_key,
        channel=row.channel,
        to=row.to_address,
        body=row.body,
        subject=row.subject,
        html=row.body_html,
        voicemail=row.voicemail,
        template=row.template_name,
        tone=row.tone,
        locale=row.locale,
    )


def _address_unused(record: DebtorRecord, row: Any) -> str | None:
    """A planned message whose address stopped being an active contact point since planning
    (a bounce, a number reported wrong) is not sent: compliance alone would let an email
    through, or a text on the consent the number's voice point still carries."""
    if not row.automated:
        return None
    active = {address.lower() for address, _ in record.addresses(row.channel)}
    return None if row.to_address.lower() in active else f"{row.channel} address no longer in use"


def _account_closed(account: Any, now: datetime) -> str | None:
    if account.status != AccountStatus.ACTIVE:
        return f"account {account.status}"
    if account.paused_until is not None and account.paused_until > now:
        return "account paused"
    return None


_CHANGE_KEYS = ("status", "next_try_at", "provider", "provider_message_id", "sent_at",
                "error_code", "error_message")  # fmt: skip


def _change(
    row: Any, status: str, now: datetime, *, error: str | None = None, **values: Any
) -> dict[str, Any]:
    """New values for one attempt; what is not given keeps its value."""
    change = {key: getattr(row, key) for key in _CHANGE_KEYS}
    change.update(status=status, error_code=None, error_message=error, **values)
    # Bound names must differ from the column names an UPDATE sets.
    bound = {f"new_{key}": value for key, value in change.items()}
    return bound | {"attempt_id": row.id, "new_updated_at": now}


def _failed(
    row: Any, status: str, now: datetime, error: ChannelError, **values: Any
) -> dict[str, Any]:
    change = _change(row, status, now, error=str(error)[:500], **values)
    change["new_error_code"] = error.code or (str(error.status_code) if error.status_code else None)
    return change


_MARK_SENDING = BulkStatement(
    lambda _: (
        update(attempts)
        .where(attempts.c.id == bindparam("attempt_id"))
        .values(
            status=AttemptStatus.SENDING,
            tries=attempts.c.tries + 1,
            acquired_until=bindparam("lease_end"),
            updated_at=bindparam("now"),
        )
    )
)
_CHANGE = BulkStatement(
    lambda _: (
        update(attempts)
        .where(
            attempts.c.id == bindparam("attempt_id"), attempts.c.acquired_by == bindparam("worker")
        )
        .values(
            **{
                key: bindparam(f"new_{key}")
                for key in (*_CHANGE_KEYS, "updated_at")
                if key != "status"
            },
            # A webhook may have moved the attempt on (delivered) before its send is
            # recorded: a status past queued and sending is the provider's word and stays.
            status=case(
                (
                    # Plain comparisons: an IN list cannot be used with executemany.
                    (attempts.c.status == literal(AttemptStatus.QUEUED.value))
                    | (attempts.c.status == literal(AttemptStatus.SENDING.value)),
                    bindparam("new_status"),
                ),
                else_=attempts.c.status,
            ),
            acquired_by=None,
            acquired_until=None,
        )
    )
)


def _apply_changes(connection: Connection, changes: Sequence[dict[str, Any]], worker: str) -> None:
    _CHANGE.execute(connection, [change | {"worker": worker} for change in changes])


def _note_address(connection: Connection, row: Any, error: ChannelError, now: datetime) -> None:
    """A refusal that says something about the address (an opt-out, a number that cannot
    receive) is recorded, so no later attempt is planned for it."""
    if error.suppression:
        connection.execute(
            suppressions.insert().values(
                channel=row.channel, address=row.to_address, reason=error.suppression,
                source=f"{error.provider} refused attempt {row.id} ({error.code})"[:500],
                created_at=now,
            )
        )  # fmt: skip
    if error.contact_status:
        connection.execute(
            update(contact_points)
            .where(
                contact_points.c.account_id == row.account_id,
                contact_points.c.channel == row.channel,
                contact_points.c.address == row.to_address,
            )
            .values(status=error.contact_status, updated_at=now)
        )
