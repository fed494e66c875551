"""The plan stage: claim due accounts in batches, decide, render, queue.

Each batch is one claim (a lease on the accounts), one read per table for everything the
batch needs, the pure planning of the accounts (``plan_accounts``), and one write per table:
attempts under their unique idempotency key, the cadence steps dealt with, every decision
taken, and each account's next contact time with its lease released. Running the same tick
twice queues nothing new: the step is recorded and the attempt's key exists.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, case, delete, exists, select, update
from sqlalchemy.engine import Dialect

from outreach import heap
from outreach.bulk import BulkStatement, PreparedRows
from outreach.cadence import StepRecord, load_cadences
from outreach.cadence_changes import cadence_digest, cadence_versions
from outreach.clock import Clock
from outreach.compliance.rules import RuleSet, load_ruleset
from outreach.compliance_store import attempts, decisions_to_store, load_debtors
from outreach.config import Settings
from outreach.db import begin_redoable
from outreach.inbox import HANDOFF
from outreach.leases import StopFlag, claim_due_accounts
from outreach.models import PromiseStatus, StepOutcome
from outreach.plan_account import (
    RECHECK,
    AccountPlan,
    Toolkit,
    plan_accounts,
    short_first_texts,
)
from outreach.plan_processes import PlanProcesses, process_count
from outreach.rendering.context import load_company
from outreach.rendering.render import Renderer
from outreach.store import (
    accounts,
    among,
    cadence_steps,
    ignoring_duplicates,
    promises_to_pay,
    unindexed,
)
from outreach.template_store import published
from outreach.written_facts import contacted

log = logging.getLogger("outreach.planner")


@dataclass
class PlanReport:
    claimed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    processes: int = 1  # how many processes planned this tick

    def add(self, other: PlanReport) -> None:
        self.claimed += other.claimed
        self.outcomes.update(other.outcomes)
        self.errors += other.errors

    def summary(self) -> str:
        parts = [f"claimed {self.claimed}"]
        if self.processes > 1:
            parts[0] += f" in {self.processes} processes"
        parts += [f"{name} {self.outcomes[name]}" for name in _OUTCOMES if self.outcomes[name]]
        return ", ".join(parts)


# In the order a tick's log line names them.
_OUTCOMES = (
    "queued", "deferred", "blocked", "stopped", "idle", "finished", "handed_off",
    "cadence_changed", "error",
)  # fmt: skip


class Planner:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        clock: Clock,
        worker: str,
        *,
        batch_size: int = 1000,
        lease: timedelta = timedelta(minutes=10),
        rules: RuleSet | None = None,
        processes: int | None = None,
        stop: StopFlag | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.worker = worker
        self.batch_size = batch_size
        self.lease = lease
        self.rules = rules or load_ruleset(settings.compliance_rules_file)
        self.cadences = load_cadences(settings.schedules_dir)
        self.digests = {name: cadence_digest(cadence) for name, cadence in self.cadences.items()}
        self.company = load_company(settings.templates_dir)
        self.processes = processes if processes is not None else process_count(settings)
        self.stop: StopFlag = stop or threading.Event()
        self._pool: PlanProcesses | None = None
        self._kit: Toolkit | None = None
        self._kit_versions: dict[str, int] = {}
        # The templates whose first texts wait for the footer, said once (``_say_waiting``).
        self._short_said: set[str] = set()

    def tick(self, max_accounts: int | None = None, *, quiet: bool = False) -> PlanReport:
        """Plan every account due now (up to ``max_accounts``), batch by batch, until
        ``stop`` is set. A backlog (a full first batch with more to come) is shared with
        helper processes while this one goes on planning."""
        report = PlanReport()
        limit = max_accounts if max_accounts is not None else 1_000_000_000
        helpers: list[Future[PlanReport]] = []
        shared = False  # helpers asked for this tick
        now = self.clock.now()
        rows: Sequence[Any] = []
        if not self.stop.is_set():
            with self.engine.begin() as connection:
                rows = self._claim(connection, now, min(self.batch_size, limit))
        while rows:
            in_hand = report.claimed + len(rows)
            backlog = len(rows) == self.batch_size and in_hand < limit
            if backlog and self.processes > 1 and not shared and limit - in_hand > self.batch_size:
                shared = True
                share, extra = divmod(limit - in_hand, self.processes)
                try:
                    helpers = self._start_helpers(share if max_accounts is not None else None)
                    limit = in_hand + share + extra
                except Exception as error:  # no processes to spare: this one plans it all
                    log.error("plan: could not start plan processes: %r", error)
                    self.close()  # the next backlog tries afresh
            wanted = min(self.batch_size, limit - in_hand) if backlog else 0
            with heap.paused():
                done, rows, now = self._plan_batch(rows, now, wanted)
            report.add(done)
        for helper in helpers:
            try:
                theirs = helper.result()
            except Exception as error:
                # What the helper held is freed when its leases end.
                broken = isinstance(error, BrokenProcessPool)
                if broken and self.stop.is_set():  # it left on the same SIGTERM as the daemon
                    log.info("plan: a plan process ended with the stop")
                else:
                    log.error("plan: a plan process failed: %r", error)
                if broken:  # the next backlog starts new ones
                    self.close()
                continue
            report.add(theirs)
            report.processes += 1 if theirs.claimed else 0
        if report.claimed and not quiet:
            log.info("plan: %s", report.summary())
        return report

    def _claim(self, connection: Connection, now: datetime, count: int) -> Sequence[Any]:
        return claim_due_accounts(connection, self.worker, now, now + self.lease, count)

    def request_stop(self) -> None:
        """Claim no more batches; those in hand are finished."""
        if isinstance(self.stop, threading.Event):
            self.stop.set()
        if self._pool is not None:
            self._pool.stop.set()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def _start_helpers(self, limit: int | None) -> list[Future[PlanReport]]:
        try:
            return self._processes().start(self.clock, limit)
        except BrokenProcessPool:
            # A helper died since the last backlog (killed, out of memory): start afresh.
            self.close()
            return self._processes().start(self.clock, limit)

    def _processes(self) -> PlanProcesses:
        if self._pool is None:
            # The processes open the database this planner writes to, which is not always
            # the settings' (``outreach simulate`` plans a scratch copy).
            url = self.engine.url.render_as_string(hide_password=False)
            settings = self.settings.model_copy(update={"database_url": url})
            self._pool = PlanProcesses(
                settings, self.worker, self.processes - 1, self.batch_size, self.lease
            )
            if self.stop.is_set():  # a stop requested while the pool was being made
                self._pool.stop.set()
        return self._pool

    def plan_batch(self, rows: Sequence[Any], now: datetime) -> PlanReport:
        """Plan and write one claimed batch."""
        return self._plan_batch(rows, now, 0)[0]

    def _plan_batch(
        self, rows: Sequence[Any], now: datetime, then_claim: int
    ) -> tuple[PlanReport, Sequence[Any], datetime]:
        """Plan and write one claimed batch; with ``then_claim``, claim the next batch in
        the same transaction as the writes (and return it with its ``now``): on SQLite
        every write transaction waits for the one writer's lock, so a batch waits once
        instead of twice. The commit does not wait for the disk: a batch a crash loses is
        planned again (``begin_redoable``)."""
        ids = [row.id for row in rows]
        with self.engine.connect() as connection:
            kit = self.toolkit(connection)
            records = load_debtors(
                connection,
                rows,
                now,
                self.rules.lookback_days,
                self.settings.default_region,
                rules=self.rules,
            )
            taken = _steps_taken(connection, ids)
            promising = _pending_promises(connection, ids)
            reached = contacted(connection, ids)
            outdated = _outdated(connection, self.digests)
        plans = plan_accounts(
            [
                (row, records[row.id], taken.get(row.id, []), row.id in promising,
                 row.id not in reached)
                for row in rows
            ],
            kit,
            now,
        )  # fmt: skip
        if outdated:
            _leave_to_current_files(rows, plans, outdated, now)
        following: Sequence[Any] = []
        # Made ready before the transaction: on SQLite the other plan processes wait for
        # its writer lock while it is held.
        writes = plan_writes(self.engine.dialect, rows, plans, self.worker, now)
        with begin_redoable(self.engine) as connection:
            for write in writes:
                write.run(connection)
            if then_claim and not self.stop.is_set():
                now = self.clock.now()
                following = self._claim(connection, now, then_claim)
        report = PlanReport(claimed=len(rows))
        problems: Counter[str] = Counter()
        short: set[str] = set()
        for row, plan in zip(rows, plans, strict=True):
            report.outcomes[plan.outcome] += 1
            if plan.outcome == "error":
                report.errors.append(f"{row.reference}: {plan.detail}")
                problems[plan.detail] += 1
                if plan.short_disclosure:
                    short.add(plan.detail)
        for detail, count in problems.most_common():
            self._say_waiting(detail, count, short_disclosure=detail in short)
        heap.settle()  # what the first batch loaded stays; see outreach.heap
        return report, following, now

    def _say_waiting(self, detail: str, count: int, *, short_disclosure: bool) -> None:
        """Log the accounts of a batch that wait for the same reason.

        First texts held back for an old SMS footer wait until it is published again,
        which after an upgrade may be days: the daemon's start-up warning names the footer
        and the command, so each template's is said here once a process (an operator sees
        which templates it holds back, not a line a batch) and later batches' counts are
        at DEBUG."""
        if not short_disclosure:
            log.warning("plan: %d account(s) wait: %s", count, detail)
        elif detail in self._short_said:
            log.debug("plan: %d more account(s) wait: %s", count, detail)
        else:
            self._short_said.add(detail)
            log.warning(
                "plan: %d account(s) wait: %s (said once: later batches' counts are at DEBUG)",
                count,
                detail,
            )

    def short_first_texts(self) -> list[str]:
        """The published SMS templates whose debt collector's first text is held back for
        want of the whole disclosure (``plan_account.short_first_texts``)."""
        with self.engine.connect() as connection:
            kit = self.toolkit(connection)
        return short_first_texts(kit.renderer, kit.company, kit.version_ids)

    def toolkit(self, connection: Connection) -> Toolkit:
        """The tools for this tick; templates are re-read when a version was published."""
        templates = published(connection)
        if self._kit is None or templates.version_ids != self._kit_versions:
            self._kit = Toolkit(
                cadences=self.cadences,
                rules=self.rules,
                company=self.company,
                renderer=Renderer(templates.sources),
                version_ids=templates.version_ids,
                public_base_url=self.settings.public_base_url,
                secret_key=self.settings.secret_key.get_secret_value(),
            )
            self._kit_versions = templates.version_ids
        return self._kit


_NEW_ATTEMPTS = BulkStatement(lambda dialect: ignoring_duplicates(attempts, dialect))
_NEW_STEPS = BulkStatement(lambda dialect: ignoring_duplicates(cadence_steps, dialect))
# The next contact time is the plan's, unless the account was asked to be looked at again
# while it was being planned (``returned_steps.due_now``: a step given back, a promise
# broken, a pause ended), from facts the plan did not see: that request stands.
_WHEN = accounts.c.next_contact_at.type
_NEXT_CONTACT = BulkStatement(
    lambda _: (
        update(accounts)
        .where(
            accounts.c.id == bindparam("account_id"), accounts.c.acquired_by == bindparam("worker")
        )
        .values(
            next_contact_at=case(
                (
                    accounts.c.next_contact_at > bindparam("claimed_at", type_=_WHEN),
                    accounts.c.next_contact_at,
                ),
                else_=bindparam("next_at", type_=_WHEN),
            ),
            acquired_by=None,
            acquired_until=None,
            updated_at=bindparam("now"),
        )
    )
)


# Skipped steps a plan recorded for an account that was asked to be looked at again while
# it was being planned (a step given back lets go of the skips after it: one recorded from
# the history read before would stand behind the step, and it would never be offered
# again). Only for plans that queued nothing: a step queued supersedes one given back. The
# next look, at once, records them again from what is stored then.
_STALE_SKIPS = BulkStatement(
    lambda _: delete(cadence_steps).where(
        cadence_steps.c.account_id == bindparam("account_id"),
        cadence_steps.c.outcome == StepOutcome.SKIPPED,
        cadence_steps.c.at == bindparam("now", type_=cadence_steps.c.at.type),
        # Run after the next contact times: an account marked due kept its own time,
        # later than when it was claimed, instead of taking the plan's.
        exists().where(
            accounts.c.id == bindparam("account_id"),
            accounts.c.next_contact_at > bindparam("claimed_at", type_=_WHEN),
            accounts.c.next_contact_at.is_distinct_from(bindparam("next_at", type_=_WHEN)),
        ),
    )
)


# The accounts whose cadence handed them to the agents, once: the hand-off is pending, and
# flagged for the agents unless a flag is on already (every other flag is more serious: the
# hand-off's follows when it is cleared, ``inbox.clear_flag``).
_UNFLAGGED = accounts.c.flag.is_(None)
_HANDED_OFF = BulkStatement(
    lambda _: (
        update(accounts)
        .where(accounts.c.id == bindparam("account_id"), accounts.c.handoff.is_(None))
        .values(
            handoff="pending",
            flag=case((_UNFLAGGED, HANDOFF), else_=accounts.c.flag),
            flagged_at=case((_UNFLAGGED, bindparam("now")), else_=accounts.c.flagged_at),
            updated_at=bindparam("now"),
        )
    )
)


def plan_writes(
    dialect: Dialect,
    rows: Sequence[Any],
    plans: Sequence[AccountPlan],
    worker: str,
    now: datetime,
) -> list[PreparedRows]:
    """One statement per table for the whole batch, its rows' parameters made ready (run
    each in the batch's transaction)."""
    return [
        _NEW_ATTEMPTS.prepare(dialect, [p.attempt for p in plans if p.attempt is not None]),
        _NEW_STEPS.prepare(dialect, [step for p in plans for step in p.steps]),
        decisions_to_store(dialect, [d for p in plans for d in p.decisions]),
        _NEXT_CONTACT.prepare(
            dialect,
            [
                {
                    "account_id": row.id,
                    "claimed_at": row.next_contact_at,
                    "next_at": plan.next_contact_at,
                    "worker": worker,
                    "now": now,
                }
                # In the order of the accounts' ids, the order of their locks everywhere
                # (``store.lock_accounts``).
                for row, plan in sorted(zip(rows, plans, strict=True), key=_by_account_id)
            ],
        ),
        _HANDED_OFF.prepare(
            dialect,
            [
                {"account_id": row.id, "now": now}
                for row, plan in sorted(zip(rows, plans, strict=True), key=_by_account_id)
                if plan.handoff_at is not None
            ],
        ),
        # After the next contact times, which lock the accounts: a step given back
        # meanwhile has marked its account due by then, or waits for this commit.
        _STALE_SKIPS.prepare(
            dialect,
            [
                {
                    "account_id": row.id,
                    "now": now,
                    "claimed_at": row.next_contact_at,
                    "next_at": plan.next_contact_at,
                }
                for row, plan in zip(rows, plans, strict=True)
                if plan.attempt is None and plan.steps
            ],
        ),
    ]


def _outdated(connection: Connection, digests: dict[str, str]) -> frozenset[str]:
    """The cadences whose steps differ in this planner's files from those the daemon started
    last recorded (``cadence_version``, a row a cadence): the files of a daemon not yet
    restarted in a rolling deploy. A cadence not recorded is not outdated."""
    recorded = connection.execute(select(cadence_versions.c.name, cadence_versions.c.digest))
    return frozenset(name for name, digest in recorded if digests.get(name, digest) != digest)


def _leave_to_current_files(
    rows: Sequence[Any], plans: Sequence[AccountPlan], outdated: frozenset[str], now: datetime
) -> None:
    """Plans that would finish an account, or hand it off, on an outdated cadence look at
    it again later instead: the daemon with the new files made the accounts its cadence had
    finished with due once (``cadence_changes``), and one finished again here would never
    have a step added to the cadence. Whichever daemon claims it then plans it."""
    for row, plan in zip(rows, plans, strict=True):
        # A finished plan with a time (its hand-off's) is looked at again then anyway.
        ending = plan.outcome in ("finished", "handed_off") and plan.next_contact_at is None
        if ending and row.cadence in outdated:
            plan.outcome, plan.next_contact_at = "cadence_changed", now + RECHECK
            plan.handoff_at, plan.decisions = None, []  # not handed off: no flag, no decision


def _by_account_id(pair: tuple[Any, AccountPlan]) -> int:
    return int(pair[0].id)


def _steps_taken(connection: Connection, ids: Sequence[int]) -> dict[int, list[StepRecord]]:
    taken: dict[int, list[StepRecord]] = defaultdict(list)
    rows = connection.execute(
        select(cadence_steps.c.account_id, cadence_steps.c.step_key, cadence_steps.c.at).where(
            among(connection, cadence_steps.c.account_id, ids)
        )
    )
    for account_id, step_key, at in rows:
        taken[account_id].append(StepRecord(step_key, at))
    return taken


def _pending_promises(connection: Connection, ids: Sequence[int]) -> set[int]:
    return set(
        connection.execute(
            select(promises_to_pay.c.account_id).where(
                among(connection, promises_to_pay.c.account_id, ids),
                unindexed(promises_to_pay.c.status) == PromiseStatus.PENDING,
            )
        ).scalars()
    )
