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
import time
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Connection, Engine, bindparam, case, func, literal, select, update

from outreach import heap
from outreach.bulk import BulkStatement
from outreach.cadence import Cadence, load_cadences
from outreach.clock import Clock
from outreach.compliance.alike import AlikeDecisions, Question, question
from outreach.compliance.decision import Decision
from outreach.compliance.engine import evaluate
from outreach.compliance.facts import Situation
from outreach.compliance.frequency import PastContact
from outreach.compliance.rules import RuleSet, load_ruleset
from outreach.compliance_store import (
    DebtorRecord,
    attempts,
    decision_row,
    hold_debtors_of,
    load_debtors,
    situation,
    store_decisions,
)
from outreach.config import Settings
from outreach.errors import ChannelError, OutreachError
from outreach.events import stored_text
from outreach.leases import StopFlag, claim_queued_attempts, hold_sends, release_sends
from outreach.models import AccountStatus, AttemptStatus, PromiseStatus
from outreach.opt_outs import hold_addresses, ledger_address, suppress_address
from outreach.providers.base import OutboundMessage, Provider, SendResult
from outreach.providers.outbox import Outbox
from outreach.ratelimit import RateLimiter
from outreach.records import quick_init
from outreach.rendering.context import Company, load_company
from outreach.rendering.suit_threat import said_names
from outreach.replies import reply_holds
from outreach.returned_steps import give_back_steps
from outreach.store import (
    accounts,
    among,
    columns_of,
    contact_points,
    lock_accounts,
    named_rows,
    promises_to_pay,
    unindexed,
)
from outreach.written_facts import (
    FACT_COLUMNS,
    NOT_CONTACTED,
    OUT_OF_DATE,
    contacted,
    suit_threat,
    time_barred,
    written_as,
    written_day,
)

if TYPE_CHECKING:
    from outreach.dispatch_processes import DispatchProcesses

log = logging.getLogger("outreach.dispatcher")

# Refusals that count (a 503 is an outage and does not; see ``_outage``).
MAX_TRIES = 8
# How long a send may take before its attempt is presumed lost (then: unknown). A batch in
# flight renews it every quarter of it, so only a daemon that stopped loses its sends.
SEND_LEASE = timedelta(minutes=2)
# A send does not start with less lease than this left: its answer may take a connect
# and a read timeout to come back, and it must come back before the lease ends.
LEASE_MARGIN = timedelta(seconds=30)
# How often (real seconds) a batch in flight records its outcomes and looks at its lease.
KEEP_EVERY = 0.25
# A message whose send starts this long after its compliance check is checked again,
# with what is stored then (a STOP, a payment, a hold since).
RECHECK_AFTER = timedelta(seconds=0.5)
# A check holds for a message leaving up to this long after the instant it was made for
# (the batch's decision, plus the message's rate-limit wait): compliance must allow it at
# both ends. A message that has not left by then goes back to the queue.
SEND_GRACE = timedelta(seconds=1)
# A message waits at most this long (seconds) in the process for its sender's rate limit;
# beyond that it stays queued and is looked at again after RATE_WAIT.
RATE_HORIZON = 20.0
RATE_WAIT = timedelta(seconds=10)
# What the recheck reads of an account: what compliance and ``_account_closed`` use, and
# the facts a message was written from (``written_facts``); no more (every date read is a
# conversion).
RECHECK_ACCOUNT_COLUMNS = ("id", "jurisdiction", "status", "paused_until", "cadence",
                           *FACT_COLUMNS)  # fmt: skip


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


PROMISE_HOLD = "a promise to pay is pending"


@dataclass(frozen=True)
class Outcome:
    attempt: Any
    result: SendResult | None = None
    error: ChannelError | None = None
    unsent: bool = False  # the request never left (a stop, a recheck, a lost lease)
    # For an unsent attempt: what becomes of it (None: back in the queue as it was), the
    # decision that held it back, and how the report counts it.
    change: dict[str, Any] | None = None
    decision: dict[str, Any] | None = None
    counted: str = "requeued"
    next_try_at: datetime | None = None
    gives_back: bool = False  # cancelled by a hold on its account: its step is offered again


@dataclass
class _Ready:
    """A message allowed to leave, once its rate-limit slot has come."""

    row: Any
    message: OutboundMessage
    sender: str
    wait: float  # seconds to its rate-limit slot
    checked_at: datetime  # when compliance was last asked
    leave_by: datetime  # the latest instant that check holds for
    placed_at: datetime | None = None  # when it was marked ``sending``


# How often a provider's refusal of our credentials or settings is logged, in seconds.
REFUSAL_TOLD_EVERY = 600.0
# Between the tries of a batch's last flush, while the database refuses its outcomes.
LAST_FLUSH_PAUSES = (0.5, 1.0, 2.0, 4.0)


@dataclass
class _Flight:
    """A batch being sent: its lease and what is still to record."""

    lease_end: datetime
    renewed_at: datetime
    ids: set[int]  # marked sending, outcome not recorded yet
    done: list[Outcome] = field(default_factory=list)
    lost: set[int] = field(default_factory=set)  # taken by another daemon meanwhile
    failure: Exception | None = None
    # Channels whose provider refused our credentials or settings during the batch.
    refused: dict[str, ChannelError] = field(default_factory=dict)


@quick_init
@dataclass(frozen=True)
class _Decided:
    verdict: str
    not_before: datetime | None
    codes: Sequence[str]
    at: datetime
    # What ``stored`` is made from: made only for the decisions that are stored (an allowed
    # message's check at its latest instant is not, unless it holds the message back).
    account_id: int
    decision: Decision
    asked: Situation
    row: Any
    now: datetime
    keyed: Question | None = None  # the question as a batch's ``AlikeDecisions`` keyed it

    @cached_property
    def stored(self) -> dict[str, Any]:
        return decision_row(
            self.account_id, self.decision, self.asked, stage="dispatch", decided_at=self.now,
            step_key=self.row.step_key, attempt_id=self.row.id,
        )  # fmt: skip

    @property
    def counted(self) -> str:
        return "blocked" if self.verdict == "block" else "deferred"

    def change(self, row: Any, now: datetime) -> dict[str, Any]:
        if self.verdict == "defer":
            return _change(row, AttemptStatus.QUEUED, now, next_try_at=self.not_before)
        if self.at > now:
            # Blocked only at a later instant than now: asked again then, not cancelled.
            return _change(row, AttemptStatus.QUEUED, now, next_try_at=self.at)
        return _change(row, AttemptStatus.CANCELLED, now, error=",".join(self.codes))


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
        # When each provider's refusal of our credentials or settings was last logged.
        self._refusals_told: dict[str, float] = {}
        self._checks: list[tuple[_Ready, asyncio.Future[Outcome | None]]] = []
        # Sends held up behind others, waiting for a new rate-limit slot (``_slot_again``).
        self._slot_requests: list[tuple[tuple[str, str], asyncio.Future[float | None]]] = []
        self._reserving: asyncio.Task[None] | None = None
        self._pool: DispatchProcesses | None = None
        self._cadences: Mapping[str, Cadence] | None = None  # read when first needed
        # The company file as last read, with its stamp (``_company_file``).
        self._company: tuple[tuple[int, int], Company] | None = None

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
        flight = _Flight(now + SEND_LEASE, now, {item.row.id for item in ready})
        hold_sends(self.worker, flight.ids)
        tasks = [asyncio.ensure_future(self._send_and_keep(item, flight)) for item in ready]
        keeper = asyncio.ensure_future(self._keep(flight, report))
        try:
            await asyncio.gather(*tasks)
        finally:
            keeper.cancel()
            for task in tasks:
                task.cancel()
            # Whatever is not recorded by now is no longer in flight: housekeeping holds
            # it for review once its lease ends.
            release_sends(self.worker, flight.ids)
        await self._flush_last(flight, report)
        if flight.failure is not None:
            raise flight.failure
        heap.settle()  # what the first batch loaded stays; see outreach.heap
        return report

    async def _send_and_keep(self, item: _Ready, flight: _Flight) -> None:
        outcome = await self._send(item, flight)
        flight.done.append(outcome)  # the list of the moment: flushes replace it

    async def _keep(self, flight: _Flight, report: DispatchReport) -> None:
        """While a batch is in flight: record outcomes as they come, and renew the lease
        of what is still being sent, so that no housekeeping takes it for lost."""
        while True:
            await asyncio.sleep(KEEP_EVERY)
            self._flush(flight, report)
            now = self.clock.now()
            if now >= flight.renewed_at + SEND_LEASE / 4 and flight.ids:
                self._renew(flight, now)

    def _renew(self, flight: _Flight, now: datetime) -> None:
        until = now + SEND_LEASE + timedelta(seconds=RATE_HORIZON)
        try:
            with self.engine.begin() as connection:
                kept = set(
                    connection.execute(
                        update(attempts)
                        .where(
                            attempts.c.id.in_(sorted(flight.ids)),
                            attempts.c.acquired_by == self.worker,
                        )
                        .values(acquired_until=until)
                        .returning(attempts.c.id)
                    ).scalars()
                )
        except Exception:  # the lease is not renewed: sends stop when it runs short
            log.exception("dispatch: could not renew the lease of %d send(s)", len(flight.ids))
            return
        flight.lease_end, flight.renewed_at = until, now
        lost = flight.ids - kept
        if lost:
            flight.lost |= lost
            log.error("dispatch: attempt(s) %s were taken from this daemon while in flight; "
                      "what has not left is not sent", sorted(lost))  # fmt: skip

    def _flush(self, flight: _Flight, report: DispatchReport) -> None:
        """Record the outcomes that came since the last flush. If the database refuses,
        they are kept for the next flush (the keeper tries again every quarter of a
        second), and meanwhile no request leaves (``_send``): what the provider has been
        sent must be recorded before more is sent."""
        if not flight.done:
            return
        outcomes, flight.done = flight.done, []
        recorded = DispatchReport()  # counted once the outcomes are stored
        try:
            with self.engine.begin() as connection:
                self._record(connection, outcomes, recorded, again=flight.failure is not None)
        except Exception as exc:
            flight.done = outcomes + flight.done
            if flight.failure is None:
                log.warning(
                    "dispatch: %d outcome(s) could not be recorded (%s: %s); no more is sent "
                    "until they are", len(outcomes), type(exc).__name__, exc,
                )  # fmt: skip
            flight.failure = exc
            return
        if flight.failure is not None:
            log.info("dispatch: the outcomes held back are recorded; sending goes on")
        flight.failure = None
        report.add(recorded)
        ids = {outcome.attempt.id for outcome in outcomes}
        flight.ids -= ids
        release_sends(self.worker, ids)

    async def _flush_last(self, flight: _Flight, report: DispatchReport) -> None:
        """The batch's last flush, tried a few times while the database refuses. What is
        still not recorded stays ``sending`` and, out of flight, is held for review."""
        for pause in LAST_FLUSH_PAUSES:
            self._flush(flight, report)
            if flight.failure is None:
                return
            await asyncio.sleep(pause)
        self._flush(flight, report)

    def _recheck(
        self, connection: Connection, rows: Sequence[Any], now: datetime, report: DispatchReport
    ) -> list[_Ready]:
        """Compliance at the moment of sending; marks the allowed ones ``sending``, each with
        its message and the seconds to wait for its sender's rate-limit slot.

        A message is allowed when compliance allows it now and at the latest instant it
        may leave (its rate-limit wait and ``SEND_GRACE`` from now). Attempts of one debtor
        (accounts sharing a number or a mailbox) or to one address are decided in turn, each
        counting the ones allowed before it.

        The batch's attempts, then its debtors (``hold_debtors``), are held from before
        their history is read until the ``sending`` marks are committed: another batch for
        the same person (a dispatch process's, another daemon's) decides before or after
        this one, counting what it sends."""
        # Only the attempts this worker still holds, locked for the rest of the transaction
        # (on SQLite, the writer's lock taken): one whose lease ran out (a stalled process)
        # may have been claimed, and even sent, by another worker since. No rate-limit slot
        # goes to it, and nothing is written for it.
        still = _still_ours(connection, [row.id for row in rows], self.worker)
        _left_to_others({row.id for row in rows} - still)
        rows = [row for row in rows if row.id in still]
        account_rows, records, held, reached = self._debtors(
            connection, {r.account_id for r in rows}, now, hold=True
        )
        decisions: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        withdrawn: list[Any] = []
        ready: list[_Ready] = []
        # The batch's accounts by address, and by person: accounts that share a number or a
        # mailbox are one debtor, whose caps count what each of them is sent.
        to_address: dict[str, set[int]] = {}
        for row in rows:
            to_address.setdefault(_address_key(row), set()).add(row.account_id)
        person = _people(records)
        members: dict[int, set[int]] = {}
        for account_id, one in person.items():
            members.setdefault(one, set()).add(account_id)
        # Debtors alike (same place, consents, history...) share the engine's answer, as
        # in the plan stage: a batch's messages were mostly planned together.
        alike = AlikeDecisions(self.rules)
        for turn in _turns(rows, person):
            allowed: list[tuple[Any, _Decided]] = []
            for row in turn:
                account = account_rows[row.account_id]
                record = records[account.id]
                why_not = (
                    _account_closed(account, row, now, held)
                    or _address_unused(record, row)
                    or self._out_of_date(account, record, row, now, reached)
                )
                if why_not is not None:
                    changes.append(_change(row, AttemptStatus.CANCELLED, now, error=why_not))
                    if self._gives_back(account, why_not):
                        withdrawn.append(row)
                    report.outcomes["cancelled"] += 1
                    continue
                decided = self._decide(record, row, now, now, alike)
                if decided.verdict == "allow":
                    allowed.append((row, decided))
                    continue
                decisions.append(decided.stored)
                changes.append(decided.change(row, now))
                report.outcomes[decided.counted] += 1
            messages = [_message(row, account_rows[row.account_id].name) for row, _ in allowed]
            senders = [self.providers[m.channel].sender(m) for m in messages]
            waits = self.limiter.reserve_many(
                [(m.channel, sender) for m, sender in zip(messages, senders, strict=True)],
                RATE_HORIZON,
            )
            for (row, decided), message, sender, wait in zip(
                allowed, messages, senders, waits, strict=True
            ):
                if wait is None:  # the sender's rate is spent for now: a later tick sends it
                    # Nothing stored: it is decided again, and stored, when it goes (a
                    # backlog behind a slow number would store a decision at every look).
                    changes.append(
                        _change(row, AttemptStatus.QUEUED, now, next_try_at=now + RATE_WAIT)
                    )
                    report.outcomes["rate_limited"] += 1
                    continue
                record = records[row.account_id]
                leave_by = now + timedelta(seconds=wait) + SEND_GRACE
                account = account_rows[row.account_id]
                stale = self._out_of_date_later(account, record, row, now, leave_by, reached)
                if stale is not None:
                    # The debtor's midnight passes before it would leave: "N days past
                    # due" would be a day short. Written afresh, as at the check above.
                    changes.append(_change(row, AttemptStatus.CANCELLED, now, error=stale))
                    withdrawn.append(row)
                    report.outcomes["cancelled"] += 1
                    continue
                later = self._decide_later(decided, leave_by, alike)
                if later.verdict != "allow":  # e.g. the window closes before it would leave
                    decisions.append(later.stored)
                    changes.append(later.change(row, now))
                    report.outcomes[later.counted] += 1
                    continue
                decisions.append(decided.stored)
                ready.append(_Ready(row, message, sender, wait, now, leave_by))
                # It counts in the history of the attempts decided after it.
                contact = PastContact(
                    at=now, channel=row.channel, direction="outbound", debts=(record.debt,),
                    outcome="no_answer", to=_address_key(row), automated=row.automated,
                )  # fmt: skip
                debtor = members[person[row.account_id]]
                for account_id in to_address[_address_key(row)] | debtor:
                    other = records[account_id]
                    records[account_id] = replace(other, history=(*other.history, contact))
        store_decisions(connection, decisions)
        if withdrawn:
            give_back_steps(connection, withdrawn, now, self.worker, self._steps_of())
        _apply_changes(connection, changes, self.worker)
        # Committed with the batch before any request leaves: a crash from here on leaves
        # these as ``sending``, which housekeeping turns into ``unknown``. The lease runs
        # from the clock of the moment: a process that stalled while deciding must not mark
        # a send whose lease is over already (another daemon's housekeeping would take it
        # for lost before it is put back); its sends, checked for an instant long past, do
        # not leave (``_send``) and go back to the queue.
        marked = self.clock.now()
        # Placed from the moment it is marked: it leaves then or within its send's lease, and
        # a contact dated ahead of a check (its rate-limit slot) would not count in its caps.
        for item in ready:
            item.placed_at = marked
        _MARK_SENDING.execute(
            connection,
            [
                {"attempt_id": item.row.id, "placed": marked,
                 "lease_end": marked + SEND_LEASE + timedelta(seconds=item.wait), "now": now,
                 "asked": self.providers[item.row.channel].name}
                for item in ready
            ],
        )  # fmt: skip
        return ready

    def _debtors(
        self, connection: Connection, account_ids: set[int], at: datetime, *, hold: bool = False
    ) -> tuple[dict[int, Any], dict[int, DebtorRecord], dict[int, str], set[int]]:
        """The accounts (what the send-time check reads of them), what compliance knows
        of each as of ``at``, why a cadence is held beyond what its account's columns
        say: a pending promise to pay the cadence stops for (recorded since the message was
        planned, say), or a reply still open when an agent's pause ran out (housekeeping is
        about to hand the account over to the reply pause), and the accounts whose debtor
        has had a message already (``written_facts.contacted``).

        With ``hold`` (the check that marks what it sends), the debtors are held until the
        transaction ends (``compliance_store.hold_debtors_of``) before anything is read: a
        pause, a payment, a reply, a zone or a number changed while this waited for them
        is decided on as it is now."""
        if hold:
            hold_debtors_of(connection, sorted(account_ids))
        account_rows = self._account_rows(connection, account_ids)
        records = load_debtors(
            connection,
            list(account_rows.values()),
            at,
            self.rules.lookback_days,
            self.settings.default_region,
            rules=self.rules,
        )
        promising = connection.execute(
            select(promises_to_pay.c.account_id).where(
                among(connection, promises_to_pay.c.account_id, list(account_rows)),
                unindexed(promises_to_pay.c.status) == PromiseStatus.PENDING,
            )
        ).scalars()
        held = {
            account_id: PROMISE_HOLD for account_id in promising
            if self._stops_for_promise(account_rows[account_id].cadence)
        }  # fmt: skip
        # Paused accounts between their pause's end and the housekeeping that ends it:
        # rarely any, and then one query.
        lapsed = [
            row.id for row in account_rows.values()
            if row.paused_until is not None and row.paused_until <= at
        ]  # fmt: skip
        reply_pause = timedelta(days=self.settings.reply_pause_days)
        for account_id in reply_holds(connection, lapsed, at, reply_pause):
            held[account_id] = "account paused"
        return account_rows, records, held, contacted(connection, list(account_rows))

    def _out_of_date(
        self, account: Any, record: DebtorRecord, row: Any, now: datetime, reached: set[int]
    ) -> str | None:
        """Why a cadence message may no longer state what is true: the account's facts,
        or the debtor's day, have changed since it was written, or it was written as a
        later message and nothing has reached the debtor before (``reached``: the accounts
        whose debtor has had one). A message without a digest (an agent's answer, or one
        written before digests were kept): why its words may not go now
        (``_barred_threat``)."""
        if row.facts_digest is None:
            return self._barred_threat(account, record, row, now)
        first = written_as(account, row.facts_digest, self.rules, record.jurisdiction, now)
        if first is None:
            return OUT_OF_DATE
        if not first and account.id not in reached and _disclosure_shortens(account, row):
            return NOT_CONTACTED  # its short disclosure would be the debtor's first
        return None

    def _out_of_date_later(
        self,
        account: Any,
        record: DebtorRecord,
        row: Any,
        checked: datetime,
        at: datetime,
        reached: set[int],
    ) -> str | None:
        """``_out_of_date`` at ``at`` for a message found up to date at ``checked``: the
        same answer while the debtor's day, and whether the debt is time-barred, are the
        same (only they enter the digest with time). Without a digest: the check of its
        words, if the debt became time-barred in between (``_barred_threat``)."""
        if row.facts_digest is None:
            if account.time_barred_on is None:
                return None
            if time_barred(account, self.rules, record.jurisdiction, checked):
                return None  # its words were read at ``checked``
            return self._barred_threat(account, record, row, at)
        now_read = written_day(account, self.rules, record.jurisdiction, at)
        if now_read == written_day(account, self.rules, record.jurisdiction, checked):
            return None
        return self._out_of_date(account, record, row, at, reached)

    def _barred_threat(
        self, account: Any, record: DebtorRecord, row: Any, at: datetime
    ) -> str | None:
        """Why a message without a digest may not leave at ``at``: the debt is time-barred
        by then and its words threaten suit (Reg F 1006.26(b)). Written before the day came
        (an answer deferred to the morning, say), it was not checked for that; it cannot be
        written again, so it is cancelled. A debt with no such day costs one test."""
        if account.time_barred_on is None:
            return None
        if not time_barred(account, self.rules, record.jurisdiction, at):
            return None
        # The names and notices the render check reads; none if the company file cannot
        # be read (every word counts).
        company = self._company_file()
        notices = company.time_barred_notices if company is not None else ()
        return suit_threat(row, said_names(account.name, company), notices)

    def _company_file(self) -> Company | None:
        """The company (``templates/company.yaml``): its names, which a message may hold
        without threatening anyone, and the notices on time-barred debts its counsel
        approved. Read again when the file changes (the web app, which writes answers,
        reads it for each one); a failed read is not kept: None this time, and the file is
        read again at the next check."""
        path = self.settings.templates_dir / "company.yaml"
        try:
            stamp: tuple[int, int] | None = (path.stat().st_mtime_ns, path.stat().st_size)
        except OSError:
            stamp = None
        if self._company is not None and stamp is not None and self._company[0] == stamp:
            return self._company[1]
        try:
            company = load_company(self.settings.templates_dir)
        except (OutreachError, OSError, ValueError) as exc:
            log.warning("dispatch: company names and notices not read (%s)", exc)
            return None
        if stamp is not None:
            self._company = (stamp, company)
        return company

    def _gives_back(self, account: Any, why_not: str) -> bool:
        """Whether a cancelled message's step goes back to the cadence. Not when only this
        process holds it back: a promise held for a cadence it cannot read (or reads
        otherwise than the planner) would be planned again at once, and cancelled again."""
        if why_not != PROMISE_HOLD:
            return True
        return self._cadences is not None and account.cadence in self._cadences

    def _stops_for_promise(self, cadence: str) -> bool:
        """Whether ``cadence`` stops while a promise to pay is pending; yes for a cadence
        this process does not know (the safe side: a message held, not one too many)."""
        known = self._known_cadences().get(cadence)
        return known is None or "promise_pending" in known.stop_when

    def _known_cadences(self) -> Mapping[str, Cadence]:
        if self._cadences is None:
            try:
                self._cadences = load_cadences(self.settings.schedules_dir)
            except OutreachError as exc:
                log.warning("dispatch: cadences not read (%s): promises hold every message", exc)
                self._cadences = {}
        return self._cadences

    def _steps_of(self) -> dict[str, list[str]]:
        """Each cadence's step keys in order, for the steps given back."""
        return {
            name: [step.key for step in cadence.steps]
            for name, cadence in self._known_cadences().items()
        }

    def _decide(
        self,
        record: DebtorRecord,
        row: Any,
        at: datetime,
        now: datetime,
        alike: AlikeDecisions | None = None,
    ) -> _Decided:
        """Compliance for ``row`` as if it left at ``at``; stored as decided ``now``.
        ``alike``: a batch's answers shared between debtors alike."""
        asked = situation(record, row.channel, row.to_address, at, automated=row.automated,
                          responding_to=row.responding_to)  # fmt: skip
        if alike is None:
            decision, keyed = evaluate(asked, self.rules), None
        else:
            keyed = question(asked)
            decision = alike.answer(keyed)
        return _Decided(decision.verdict, decision.not_before, decision.codes, at,
                        record.account_id, decision, asked, row, now, keyed)  # fmt: skip

    def _decide_later(self, decided: _Decided, at: datetime, alike: AlikeDecisions) -> _Decided:
        """``decided``'s question asked again as if the message left at ``at``: the debtor
        is not gone through again, and the zones are the same."""
        assert decided.keyed is not None, "decided with the batch's answers"
        keyed = decided.keyed.later(at)
        decision = alike.answer(keyed, zones=decided.decision.zones)
        return _Decided(decision.verdict, decision.not_before, decision.codes, at,
                        decided.account_id, decision, keyed.situation, decided.row,
                        decided.now, keyed)  # fmt: skip

    async def _send(self, item: _Ready, flight: _Flight) -> Outcome:
        row, message = item.row, item.message
        provider = self.providers[row.channel]
        await self._pause(item.wait)  # outside the slots: a slow sender holds none
        if self.stopping:
            # Not sent: safe to put back in the queue for the next daemon.
            return Outcome(row, unsent=True)
        held_up = self._slots.locked()
        async with self._slots:
            if self.stopping:  # stopped while waiting for a slot: it has not left either
                return Outcome(row, unsent=True)
            if held_up:
                # Its rate-limit slot passed while it waited behind other requests: using
                # it now would send together with the others held up. It takes a new one.
                wait = await self._slot_again(row.channel, item.sender)
                if self.stopping:  # stopped while it asked: it has not left
                    return Outcome(row, unsent=True)
                if wait is None:
                    return Outcome(row, unsent=True, counted="rate_limited",
                                   next_try_at=self.clock.now() + RATE_WAIT)  # fmt: skip
                await self._pause(wait)
                if self.stopping:
                    return Outcome(row, unsent=True)
            if self.clock.now() - item.checked_at > RECHECK_AFTER:
                # It waited: what was decided for it may no longer hold (a STOP since, a
                # window closing before it leaves). Asked again, with what is stored now.
                refused = await self._check_again(item)
                if refused is not None:
                    return refused
            now = self.clock.now()
            if flight.failure is not None:
                # Outcomes are not being recorded: nothing more leaves until they are.
                return Outcome(row, unsent=True)
            settings_refused = flight.refused.get(row.channel)
            if settings_refused is not None:
                # The provider refused our credentials or settings for another message of
                # this batch: it would refuse this one alike. It waits with the others.
                return Outcome(row, error=settings_refused)
            if row.id in flight.lost or now >= flight.lease_end - LEASE_MARGIN:
                # Its lease is gone, or too short for an answer to come back within it:
                # another daemon may take it for lost. It is not sent.
                return Outcome(row, unsent=True)
            if now > item.leave_by:  # it would leave after the instant it was checked for
                return Outcome(row, unsent=True)
            try:
                return Outcome(row, result=await provider.send(message))
            except ChannelError as exc:
                if exc.outage:
                    flight.refused[row.channel] = exc
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

    async def _slot_again(self, channel: str, sender: str) -> float | None:
        """A new rate-limit slot for a send held up behind others (seconds to wait, or
        None: the sender's rate is spent). The sends that ask in the same turn of the event
        loop are reserved together; a dispatch process asks its daemon off the event loop,
        and the sends held up meanwhile are asked for together next: one round trip for
        many, where one each would keep the process waiting on its daemon."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[float | None] = loop.create_future()
        self._slot_requests.append(((channel, sender), future))
        reserving = self._reserving
        # A task of an event loop that closed (a dispatcher reused in a new loop) is over.
        if reserving is None or reserving.done() or reserving.get_loop() is not loop:
            self._reserving = asyncio.ensure_future(self._reserve_requested())
        return await future

    async def _reserve_requested(self) -> None:
        """Serves ``_slot_again``'s requests until none is left. A send cancelled before
        its question leaves (its batch ended) takes no slot; a limiter that cannot answer (a
        dispatch process that lost its daemon) gives none, and those sends go back to the
        queue as if the rate were spent."""
        requests: list[tuple[tuple[str, str], asyncio.Future[float | None]]] = []
        loop = asyncio.get_running_loop()
        try:
            while True:
                # Not for a send cancelled meanwhile, nor one of an event loop that closed.
                requests = [
                    (sender, future)
                    for sender, future in self._slot_requests
                    if not future.done() and future.get_loop() is loop
                ]
                self._slot_requests = []
                if not requests:
                    return
                senders = [sender for sender, _ in requests]
                waits: list[float | None]
                try:
                    if isinstance(self.limiter, RateLimiter):  # this process's own: at once
                        waits = self.limiter.reserve_many(senders, RATE_HORIZON)
                    else:
                        waits = await asyncio.to_thread(
                            self.limiter.reserve_many, senders, RATE_HORIZON
                        )
                    if len(waits) != len(senders):
                        raise ValueError(f"{len(waits)} slots for {len(senders)} sends")
                except Exception as exc:
                    log.warning("dispatch: no rate-limit slots for %d send(s) held up (%r); "
                                "they go back to the queue", len(requests), exc)  # fmt: skip
                    waits = [None] * len(requests)
                for (_, future), wait in zip(requests, waits, strict=True):
                    if not future.done():  # not if its send was cancelled meanwhile
                        future.set_result(wait)
        finally:
            # Whatever ends this task (the event loop closing), no send waits on it.
            for _, future in [*requests, *self._slot_requests]:
                future.cancel()
            self._slot_requests = []

    async def _pause(self, seconds: float) -> None:
        """Wait for a rate-limit slot, but not past a stop request."""
        while seconds > 0 and not self.stopping:
            step = min(seconds, 0.25)
            await self.limiter.wait(step)
            seconds -= step

    async def _check_again(self, item: _Ready) -> Outcome | None:
        """Compliance again for a message that waited, just before it leaves: None if it
        may go (until ``item.leave_by``), else what becomes of it. The messages that ask in
        the same turn of the event loop are checked together, one read for all."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome | None] = loop.create_future()
        if not self._checks:
            loop.call_soon(self._run_checks)
        self._checks.append((item, future))
        try:
            return await future
        except Exception:
            log.exception("dispatch: attempt %s: could not check it again", item.row.id)
            return Outcome(item.row, unsent=True)

    def _run_checks(self) -> None:
        checks, self._checks = self._checks, []
        at = self.clock.now()
        try:
            with self.engine.connect() as connection:
                found = self._check_waited(connection, [item for item, _ in checks], at)
        except Exception as exc:
            for _, future in checks:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), outcome in zip(checks, found, strict=True):
            if not future.done():
                future.set_result(outcome)

    def _account_rows(self, connection: Connection, account_ids: set[int]) -> dict[int, Any]:
        return {
            row.id: row
            for row in named_rows(
                connection.execute(
                    select(*columns_of(accounts, RECHECK_ACCOUNT_COLUMNS)).where(
                        among(connection, accounts.c.id, account_ids)
                    )
                )
            )
        }

    def _check_waited(
        self, connection: Connection, items: Sequence[_Ready], at: datetime
    ) -> list[Outcome | None]:
        account_rows, records, held, reached = self._debtors(
            connection, {item.row.account_id for item in items}, at
        )
        found: list[Outcome | None] = []
        for item in items:
            row = item.row
            record = _without_itself(records[row.account_id], row, item.placed_at)
            account = account_rows[row.account_id]
            why_not = (
                _account_closed(account, row, at, held)
                or _address_unused(record, row)
                # A payment recorded, or the debtor's midnight passed, while it waited.
                or self._out_of_date(account, record, row, at + SEND_GRACE, reached)
            )
            if why_not is not None:
                change = _change(row, AttemptStatus.CANCELLED, at, error=why_not)
                back = self._gives_back(account, why_not)
                found.append(
                    Outcome(row, unsent=True, change=change, counted="cancelled", gives_back=back)
                )
                continue
            leave_by = at + SEND_GRACE
            decided = self._decide(record, row, at, at)
            if decided.verdict == "allow":
                decided = self._decide(record, row, leave_by, at)
            if decided.verdict != "allow":
                found.append(
                    Outcome(row, unsent=True, change=decided.change(row, at),
                            decision=decided.stored, counted=decided.counted)
                )  # fmt: skip
                continue
            item.checked_at, item.leave_by = at, leave_by
            found.append(None)
        return found

    def _record(
        self,
        connection: Connection,
        outcomes: Sequence[Outcome],
        report: DispatchReport,
        *,
        again: bool = False,
    ) -> None:
        now = self.clock.now()
        changes: list[dict[str, Any]] = []
        refusing: dict[str, str] = {}  # why each provider refuses our account or settings
        # Providers that could not be reached or asked us to wait: the last error, and how
        # many messages it held back.
        waiting: dict[str, tuple[str, int]] = {}
        # Messages a provider refused that may pass later (each try counted): the last
        # reason, and how many. A wrong sending number can look like this (Twilio's 21606).
        tried_again: dict[str, tuple[str, int]] = {}
        held = self._check_held(connection, outcomes, again)
        # Only what this daemon holds: a decision, a suppression or a step given back for
        # an attempt another has taken would be recorded twice.
        outcomes = [outcome for outcome in outcomes if outcome.attempt.id in held]
        # The addresses a refusal may suppress (21610, unsubscribed), locked all at once
        # as a webhook batch locks them. A batch takes its attempts, then its addresses,
        # then its accounts; so does this: the attempts are locked above (``_check_held``),
        # the accounts only below (``give_back_steps``). Taken one by one, or before the
        # attempts, a batch holding one of these attempts and asking for one of these
        # addresses would wait in a circle with this.
        refused = [(o.attempt.channel, o.attempt.to_address) for o in outcomes
                   if o.error is not None and o.error.suppression]  # fmt: skip
        if refused:
            hold_addresses(connection, refused)
        # Accounts before their contact points, as every writer of both takes them (an
        # import locks its batch's accounts, then their points): a refusal that marks a
        # number (``_note_address``) and a step given back lock their accounts first, all
        # at once in id order.
        marking = {o.attempt.account_id for o in outcomes
                   if o.error is not None and o.error.contact_status}  # fmt: skip
        if marking:
            lock_accounts(connection, marking | {o.attempt.account_id for o in outcomes
                                                 if o.gives_back})  # fmt: skip
        decided = [outcome.decision for outcome in outcomes if outcome.decision is not None]
        if decided:
            store_decisions(connection, decided)
        # What never left, or never reached the provider, is not a try.
        not_tried = [
            outcome.attempt.id
            for outcome in outcomes
            if outcome.unsent or (outcome.error is not None and _outage(outcome.error))
        ]
        if not_tried:
            # What never left goes back as it was instead of counting towards MAX_TRIES (a
            # daemon stopped often enough would fail a message it never sent); an outage
            # delays a message, it never uses up its tries.
            connection.execute(
                update(attempts)
                .where(attempts.c.id.in_(not_tried), attempts.c.acquired_by == self.worker)
                .values(tries=attempts.c.tries - 1)
            )
        for outcome in outcomes:
            row, error = outcome.attempt, outcome.error
            if outcome.unsent:
                if outcome.change is not None:
                    changes.append(outcome.change)
                else:  # as it was, due at once (or after RATE_WAIT for a rate spent)
                    change = _change(row, AttemptStatus.QUEUED, now, error=row.error_message,
                                     next_try_at=outcome.next_try_at or now)  # fmt: skip
                    change["new_error_code"] = row.error_code
                    changes.append(change)
                report.outcomes[outcome.counted] += 1
                continue
            if outcome.result is not None:
                result = outcome.result
                changes.append(
                    _change(row, AttemptStatus.SENT, now, provider=result.provider,
                            provider_message_id=result.provider_message_id, sent_at=now,
                            outages=0)
                )  # fmt: skip
                report.outcomes["sent"] += 1
                continue
            assert error is not None
            tries = row.tries + 1
            if error.ambiguous:
                changes.append(_failed(row, AttemptStatus.UNKNOWN, now, error))
                report.outcomes["unknown"] += 1
                log.warning("dispatch: attempt %s held for review (outreach attempts held): %s",
                            row.id, error)  # fmt: skip
            elif error.retryable and _outage(error):
                if error.outage:
                    refusing[error.provider] = str(error)
                else:
                    held_back = waiting.get(error.provider, ("", 0))[1] + 1
                    waiting[error.provider] = (str(error), held_back)
                wait = max(_outage_wait(row), timedelta(seconds=error.retry_after or 0))
                changes.append(
                    _failed(row, AttemptStatus.QUEUED, now, error, next_try_at=now + wait,
                            outages=row.outages + 1)
                )  # fmt: skip
                report.outcomes["retry"] += 1
            elif error.retryable and tries < MAX_TRIES:
                count = tried_again.get(error.provider, ("", 0))[1] + 1
                tried_again[error.provider] = (str(error), count)
                wait = max(backoff(tries), timedelta(seconds=error.retry_after or 0))
                changes.append(
                    _failed(row, AttemptStatus.QUEUED, now, error, next_try_at=now + wait)
                )
                report.outcomes["retry"] += 1
            else:
                changes.append(_failed(row, AttemptStatus.FAILED, now, error))
                report.outcomes["failed"] += 1
                _note_address(connection, row, error, now)
        if returned := [o.attempt for o in outcomes if o.gives_back]:
            give_back_steps(connection, returned, now, self.worker, self._steps_of())
        _apply_changes(connection, changes, self.worker)
        for provider, why in refusing.items():
            if self._time_to_tell(provider):
                log.error("dispatch: %s; the messages wait and are tried again, at most "
                          "hourly", why)  # fmt: skip
        for provider, (why, count) in waiting.items():
            if self._time_to_tell(f"{provider} waiting"):
                log.warning("dispatch: %s could not be reached or asked us to wait (%s); %d "
                            "message(s) wait and are tried again after 30 s, then longer, at "
                            "most hourly", provider, why, count)  # fmt: skip
        for provider, (why, count) in tried_again.items():
            if self._time_to_tell(f"{provider} refusing"):
                log.warning("dispatch: %d message(s) refused (%s); each is tried again, and "
                            "fails after %d tries", count, why, MAX_TRIES)  # fmt: skip

    def _time_to_tell(self, about: str) -> bool:
        """Whether a lasting trouble is told again (once every ``REFUSAL_TOLD_EVERY``
        seconds, not at every tick)."""
        told = self._refusals_told.get(about)
        if told is not None and time.monotonic() - told < REFUSAL_TOLD_EVERY:
            return False
        self._refusals_told[about] = time.monotonic()
        return True

    def _check_held(
        self, connection: Connection, outcomes: Sequence[Outcome], again: bool
    ) -> set[int]:
        """The attempts of ``outcomes`` this daemon still holds. An outcome for one it no
        longer holds (another daemon's housekeeping took it for lost) cannot be recorded:
        said loudly, with what the provider answered, so that the attempt held for review
        can be settled. ``again``: an earlier try to record these failed, and may have
        committed without saying so (a connection lost at COMMIT): an attempt no longer
        held may be one it recorded."""
        ids = [outcome.attempt.id for outcome in outcomes]
        mine = (
            select(attempts.c.id)
            .where(attempts.c.id.in_(ids), attempts.c.acquired_by == self.worker)
            .order_by(attempts.c.id)
        )
        if connection.dialect.name == "postgresql":
            # Locked now, in id order as a webhook batch locks them, before any address or
            # account: see ``_record``.
            mine = mine.with_for_update()
        held = set(connection.execute(mine).scalars())
        for outcome in outcomes:
            if outcome.attempt.id in held:
                continue
            what = (
                f"sent as {outcome.result.provider} {outcome.result.provider_message_id}"
                if outcome.result is not None
                else f"not sent ({outcome.error})"
                if outcome.error is not None
                else "not sent"
            )
            log.log(
                logging.WARNING if again else logging.ERROR,
                "dispatch: attempt %s is no longer held by this daemon; its outcome is not "
                "recorded%s: %s", outcome.attempt.id,
                " (the earlier try to record it may have)" if again else "", what,
            )  # fmt: skip
        return held


def _message(row: Any, debtor_name: str) -> OutboundMessage:
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
        debtor_name=debtor_name,
    )


def _people(records: Mapping[int, DebtorRecord]) -> dict[int, int]:
    """Each account's debtor, as one of its accounts' ids: accounts that share a number or a
    mailbox (their active contact points), or that are one debt (student loans serviced
    under one number), are one person."""
    parent = {account_id: account_id for account_id in records}

    def root(account_id: int) -> int:
        while parent[account_id] != account_id:
            parent[account_id] = account_id = parent[parent[account_id]]
        return account_id

    first: dict[tuple[str, str], int] = {}
    for account_id, record in records.items():
        shared = [("address", address) for _, address, _ in record.points]
        if record.debt != record.reference:
            shared.append(("debt", record.debt))
        for key in shared:
            other = first.setdefault(key, account_id)
            if other != account_id:
                parent[root(account_id)] = root(other)
    return {account_id: root(account_id) for account_id in parent}


def _turns(rows: Sequence[Any], person: Mapping[int, int]) -> list[list[Any]]:
    """``rows`` in turns: each attempt comes a turn after the last one before it for the
    same debtor (``person``: account id to debtor) or the same address, so that it is
    decided knowing what they did."""
    turns: list[list[Any]] = []
    last: dict[tuple[str, Any], int] = {}
    for row in rows:
        debtor = person.get(row.account_id, row.account_id)
        keys = (("debtor", debtor), ("address", _address_key(row)))
        turn = max(last.get(key, -1) for key in keys) + 1
        for key in keys:
            last[key] = turn
        if turn == len(turns):
            turns.append([])
        turns[turn].append(row)
    return turns


def _address_key(row: Any) -> str:
    """The attempt's address as compliance compares it (email without case)."""
    return ledger_address(row.channel, row.to_address)


def _without_itself(record: DebtorRecord, row: Any, placed_at: datetime | None) -> DebtorRecord:
    """``record`` without ``row``'s own attempt, read back as ``sending`` (a placed contact
    dated ``placed_at``): a message must not count against its own caps."""
    # The debt tells it from a contact through the debtor's other account (the same
    # number, planned in the same batch), which does count.
    own = ("outbound", placed_at or row.created_at, row.channel, _address_key(row),
           (record.debt,))  # fmt: skip
    for index, past in enumerate(record.history):
        if (past.direction, past.at, past.channel, past.to, past.debts) == own:
            history = record.history[:index] + record.history[index + 1 :]
            return replace(record, history=history)
    return record


# Transport failures before the request left (as ``providers.failures`` names them).
_NEVER_LEFT = frozenset({"ConnectError", "ConnectTimeout", "PoolTimeout", "ProxyError"})


def _outage(error: ChannelError) -> bool:
    """The provider could not be reached, asked us to slow down or come back later, or
    refused our account or settings (``ChannelError.outage``): the message did not count
    as tried. It is retried, however long that lasts; compliance is asked again when it is
    finally sent."""
    if error.outage:
        return True
    if error.status_code is not None:
        return error.status_code in (429, 503)
    return error.retryable and error.code in _NEVER_LEFT


def _outage_wait(row: Any) -> timedelta:
    """30 s, then twice as long for each outage the attempt has waited out since it was
    last tried (``outages``), at most an hour: a long outage is tried hourly, not every
    30 s. Counted, not read from its last wait: a look that is not a try (a sender's rate
    spent, a stop) changes when it was last changed and when it is due, and keeps the
    count."""
    return backoff(min(row.outages, 8) + 1)


def _disclosure_shortens(account: Any, row: Any) -> bool:
    """Whether a message written as a later one says less than the first would: a debt
    collector's text (the short disclosure). Any other is the same text either way."""
    return bool(account.collector_type == "third_party" and row.channel == "sms")


def _address_unused(record: DebtorRecord, row: Any) -> str | None:
    """A queued message whose address stopped being an active contact point since it was
    queued (a bounce, a number reported wrong) is not sent: compliance alone would let an
    email through, or a text on the consent the number's voice point still carries. An
    agent's answer too goes only to an active contact point."""
    active = {address.lower() for address, _ in record.addresses(row.channel)}
    return None if row.to_address.lower() in active else f"{row.channel} address no longer in use"


def _account_closed(account: Any, row: Any, now: datetime, held: Mapping[int, str]) -> str | None:
    """Why the account takes no message now (``held``: see ``Dispatcher._debtors``). An
    agent's own answer (not automated) is held back only by a closed account: a pause, a
    promise to pay or a paid balance stops the cadence, not a conversation (compliance
    still decides it)."""
    if not row.automated:
        return "account closed" if account.status == AccountStatus.CLOSED else None
    if account.status != AccountStatus.ACTIVE:
        return f"account {account.status}"
    if account.paused_until is not None and account.paused_until > now:
        return "account paused"
    return held.get(account.id)


_CHANGE_KEYS = ("status", "next_try_at", "provider", "provider_message_id", "sent_at",
                "error_code", "error_message", "outages")  # fmt: skip


def _change(
    row: Any, status: str, now: datetime, *, error: str | None = None, **values: Any
) -> dict[str, Any]:
    """New values for one attempt; what is not given keeps its value (its outages too: a
    look that is not a try keeps its backoff)."""
    change = {key: getattr(row, key) for key in _CHANGE_KEYS}
    change.update(status=status, error_code=None, error_message=error, **values)
    # Bound names must differ from the column names an UPDATE sets.
    bound = {f"new_{key}": value for key, value in change.items()}
    return bound | {"attempt_id": row.id, "new_updated_at": now}


# How long a value each bounded column of a change takes. Much of a change is the
# provider's (or a proxy's) to say: a value one character too long would fail the update
# of the whole flush on PostgreSQL, and every message accepted in it would lose its id.
_COLUMN_LENGTHS = {
    f"new_{key}": length
    for key in _CHANGE_KEYS
    if (length := getattr(attempts.c[key].type, "length", None))
}


def _fitted(change: dict[str, Any]) -> dict[str, Any]:
    """``change`` with each text as the database can store it (a NUL or half of a surrogate
    pair in a provider's words would fail the flush on PostgreSQL, as a value too long
    would), then cut to its column's length."""
    cleaned = {key: stored_text(value) for key, value in change.items() if isinstance(value, str)}
    return (change | cleaned) | {
        key: value[:length]
        for key, length in _COLUMN_LENGTHS.items()
        if isinstance(value := cleaned.get(key), str) and len(value) > length
    }


def _failed(
    row: Any, status: str, now: datetime, error: ChannelError, **values: Any
) -> dict[str, Any]:
    """A try that failed: its outages start again from none unless ``values`` count one."""
    change = _change(row, status, now, error=_reason(error), **({"outages": 0} | values))
    change["new_provider"] = error.provider or row.provider  # the provider asked
    change["new_error_code"] = error.code or (str(error.status_code) if error.status_code else None)
    return change


def _reason(error: ChannelError) -> str:
    """What the attempt keeps of a refusal: ours, then the provider's own words (which
    the operator needs to fix a setting, and logs never carry: they may quote the
    recipient)."""
    if not error.detail:
        return str(error)
    return f"{error}; the provider said: {error.detail}"


_MARK_SENDING = BulkStatement(
    lambda _: (
        update(attempts)
        .where(attempts.c.id == bindparam("attempt_id"))
        .values(
            status=AttemptStatus.SENDING,
            tries=attempts.c.tries + 1,
            # What the caps count it from, should it never be known to have left (a crash,
            # an answer that never came).
            placed_at=bindparam("placed"),
            # Whom it is sent through: named on the review page if it is held (a crash, an
            # answer that never came), whose console to search.
            provider=bindparam("asked"),
            acquired_until=bindparam("lease_end"),
            updated_at=bindparam("now"),
        )
    )
)
_PROVIDERS_WORD = ("status", "error_code", "error_message")
_KEPT_IF_UNKNOWN = ("provider_message_id", "sent_at")
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
                if key not in _PROVIDERS_WORD and key not in _KEPT_IF_UNKNOWN
            },
            # What a webhook told of the message (its id, when it left) is kept when the
            # send's own outcome does not know it (an answer that never came).
            **{
                key: func.coalesce(
                    bindparam(f"new_{key}", type_=attempts.c[key].type), attempts.c[key]
                )
                for key in _KEPT_IF_UNKNOWN
            },
            # A webhook may have moved the attempt on (delivered, failed with its error
            # code) before its send is recorded: a status past queued and sending is the
            # provider's word, and so are the error that came with it.
            **{
                key: case(
                    (
                        # Plain comparisons: an IN list cannot be used with executemany.
                        (attempts.c.status == literal(AttemptStatus.QUEUED.value))
                        | (attempts.c.status == literal(AttemptStatus.SENDING.value)),
                        bindparam(f"new_{key}"),
                    ),
                    else_=attempts.c[key],
                )
                for key in _PROVIDERS_WORD
            },
            acquired_by=None,
            acquired_until=None,
        )
    )
)


def _left_to_others(lost: set[int]) -> None:
    if lost:
        log.warning(
            "dispatch: attempt(s) %s were claimed by another worker after this one's lease "
            "ran out: left to it, not sent",
            sorted(lost),
        )


def _still_ours(connection: Connection, ids: Sequence[int], worker: str) -> set[int]:
    """Which of the attempts ``ids`` ``worker`` still holds, still queued; locked (on
    SQLite, the writer's lock taken) for the rest of the transaction."""
    if not ids:
        return set()
    held = connection.execute(
        update(attempts)
        .where(
            among(connection, attempts.c.id, ids),
            attempts.c.acquired_by == worker,
            unindexed(attempts.c.status) == AttemptStatus.QUEUED,
        )
        .values(acquired_by=worker)
        .returning(attempts.c.id)
    )
    return set(held.scalars())


def _apply_changes(connection: Connection, changes: Sequence[dict[str, Any]], worker: str) -> None:
    _CHANGE.execute(connection, [_fitted(change) | {"worker": worker} for change in changes])


def _note_address(connection: Connection, row: Any, error: ChannelError, now: datetime) -> None:
    """A refusal that says something about the address (an opt-out, a number that cannot
    receive) is recorded, so no later attempt is planned for it."""
    if error.suppression:
        # Under the address's lock (taken in ``_record``), and not twice: a STOP from the
        # number may have suppressed it meanwhile. As a status callback's refusal would: the
        # debtor's own opt-out (21610) is also an opt-out on every account using the address.
        source = f"{error.provider} refused attempt {row.id} ({error.code})"
        suppress_address(connection, row.channel, row.to_address, error.suppression, now,
                         source, source)  # fmt: skip
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
