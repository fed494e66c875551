"""``outreach simulate``: forecast the coming days with the daemon's own code.

The accounts (all, or those whose reference matches a pattern) and everything the rules
look at are copied into a scratch SQLite database; the plan and dispatch stages then run
there on a clock that jumps from one due instant to the next, with the outbox as the only
provider (deliveries simulated, no replies, no rate-limit waits). Nothing is sent and the
real database is only read. The forecast lists which account gets which step on which
channel at what local time, which contacts were deferred or blocked, and which steps
were dropped, and why.
"""

from __future__ import annotations

import asyncio
import csv
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Connection, Engine, Table, func, insert, select
from sqlmodel import SQLModel

from outreach.cadence_changes import look_again_at_changed
from outreach.channels import OutboxSimulation
from outreach.clock import FixedClock
from outreach.compliance.rules import load_ruleset
from outreach.compliance.timing import public_holidays
from outreach.compliance_store import accounts_read_with, attempts, decisions
from outreach.config import Settings
from outreach.db import make_engine, upgrade
from outreach.dispatcher import Dispatcher
from outreach.events import EventPolicy, apply_events
from outreach.housekeeping import housekeeping
from outreach.importing.cells import spreadsheet_safe
from outreach.models import AccountStatus, AttemptStatus, PromiseStatus, StepOutcome
from outreach.planner import Planner
from outreach.promise_days import breaks_at
from outreach.providers.base import Provider
from outreach.providers.outbox import Outbox
from outreach.ratelimit import RateLimiter
from outreach.store import accounts, among, cadence_steps, promises_to_pay
from outreach.written_facts import home_zone

COPY_CHUNK = 5_000
# Tables that hang off an account, copied for the accounts simulated.
_PER_ACCOUNT = (
    "contact_point",
    "compliance_event",
    "designated_time",
    "promise_to_pay",
    "payment",
    "attempt",
    "cadence_step",
    "inbox_message",
)


@dataclass(frozen=True)
class ForecastRow:
    day: str  # the account's local date
    local_time: str
    zone: str
    account: str
    step: str
    channel: str
    outcome: str  # sent, deferred, blocked, skipped
    detail: str  # the reasons of a deferral, a block or a skipped step


def simulate(
    source: Engine,
    settings: Settings,
    start: datetime,
    days: int,
    pattern: str | None = None,
) -> list[ForecastRow]:
    with tempfile.TemporaryDirectory(prefix="outreach-simulate-") as folder:
        scratch_settings = settings.model_copy(
            update={
                "database_url": f"sqlite:///{folder}/scratch.db",
                "outbox_path": Path(folder) / "outbox.jsonl",
            }
        )
        scratch = make_engine(scratch_settings)
        upgrade(scratch)
        matching = copy_accounts(source, scratch, pattern)
        # The others copied are planned too, as the daemon would plan them, but not shown.
        shown = set(matching) if pattern else None
        end = start + timedelta(days=days)
        try:
            return asyncio.run(_run(scratch, scratch_settings, start, end, shown))
        finally:
            scratch.dispose()


def references_like(connection: Connection, pattern: str) -> ColumnElement[bool]:
    """The accounts whose reference matches ``pattern``: ``*`` stands for any characters
    (none included), every other character for itself, case included, on either database.
    A pattern that begins with a fixed part is answered by an index on the reference."""
    parts = pattern.split("*")
    if connection.dialect.name == "sqlite":
        # SQLite's LIKE ignores ASCII case; its GLOB does not, and its "?" and "[" are
        # made literal by a bracket. The unique index (byte order) answers a fixed start.
        glob = "*".join(part.replace("[", "[[]").replace("?", "[?]") for part in parts)
        return accounts.c.reference.op("GLOB", is_comparison=True)(glob)
    # PostgreSQL's LIKE heeds case; its index in the C collation answers a fixed start.
    like = "%".join(
        part.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") for part in parts
    )
    return accounts.c.reference.collate("C").like(like, escape="\\")


def copy_accounts(source: Engine, scratch: Engine, pattern: str | None) -> list[int]:
    """The matching accounts and what hangs off them; templates and suppressions whole.
    With a pattern, the accounts the rules read for the matching ones come too (the same
    debtor's other accounts, those where a number's consent was revoked), with their
    histories: caps per debtor, a bankruptcy or a revocation count as the daemon counts
    them. The ids of the matching accounts."""
    tables = SQLModel.metadata.tables
    chosen = select(accounts.c.id)
    with _snapshot(source) as reading, scratch.begin() as writing:
        if pattern:
            chosen = chosen.where(references_like(reading, pattern))
        matching = list(reading.execute(chosen).scalars())
        ids = matching
        if pattern and matching:
            ids = sorted({*matching, *accounts_read_with(reading, matching)})
        # Templates first: attempts name the version they were rendered from.
        for name in _WHOLE:
            _copy(reading, writing, tables[name], None, [])
        _copy(reading, writing, accounts, accounts.c.id.in_, ids)
        for name in _PER_ACCOUNT:
            table = tables[name]
            _copy(reading, writing, table, table.c.account_id.in_, ids)
    return matching


@contextmanager
def _snapshot(source: Engine) -> Iterator[Connection]:
    """A connection whose reads all see one committed state of ``source``: a daemon
    committing meanwhile (a step with its attempt, say) is seen whole or not at all."""
    with source.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if not sqlite:
            connection = connection.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        with connection.begin():
            if sqlite:
                # The driver begins a transaction only before a write: each read would see
                # the latest commit. One begun here reads one snapshot of the log.
                connection.exec_driver_sql("BEGIN")
            yield connection


# Tables the scratch copy holds (those whole, then the accounts and what hangs off them).
# The cadences as the daemons last started with them come too: a forecast with edited
# files starts as a daemon starting with them would (``cadence_changes``).
_WHOLE = ("template_version", "suppression", "cadence_version")
_COPIED = frozenset({*_WHOLE, "account", *_PER_ACCOUNT})
# The leases of a live daemon planning an account or sending an attempt: freed in the copy,
# where no one holds them, or the scratch stages would wait them out and a step would be
# forecast late.
_LEASES = ("acquired_by", "acquired_until")


def _not_copied(table: Table) -> tuple[str, ...]:
    """The columns of ``table`` that point at what the scratch copy does not hold (the
    providers' raw events, the users): left empty there, as nothing in a forecast reads
    them."""
    return tuple(
        sorted(
            {key.parent.name for key in table.foreign_keys if key.column.table.name not in _COPIED}
        )
    )


def _copy(
    reading: Connection, writing: Connection, table: Table, where: Any, ids: list[int]
) -> None:
    chunks: Iterator[list[int] | None] = (
        (ids[i : i + COPY_CHUNK] for i in range(0, len(ids), COPY_CHUNK)) if where else iter([None])
    )
    for chunk in chunks:
        query = select(table) if chunk is None else select(table).where(where(chunk))
        rows = [dict(row._mapping) for row in reading.execute(query)]
        emptied = dict.fromkeys(
            (*_not_copied(table), *(name for name in _LEASES if name in table.c))
        )
        for row in rows:
            row.update(emptied)
        if rows:
            writing.execute(insert(table), rows)


async def _run(
    engine: Engine, settings: Settings, start: datetime, end: datetime, shown: set[int] | None
) -> list[ForecastRow]:
    clock = FixedClock(start)
    rules = load_ruleset(settings.compliance_rules_file)
    planner = Planner(engine, settings, clock, "simulate", rules=rules)
    # A cadence changed in these files makes the accounts it had finished with due, as at
    # a daemon's start: a step added is forecast for them.
    look_again_at_changed(engine, planner.cadences, start)
    outboxes: dict[str, Provider] = {
        channel: Outbox(settings, clock, channel, OutboxSimulation(reply_rate=0))
        for channel in ("sms", "email", "voice")
    }
    dispatcher = Dispatcher(
        engine, settings, clock, "simulate", outboxes, RateLimiter({}), rules=rules
    )
    policy = EventPolicy.from_settings(settings)
    reply_pause = timedelta(days=settings.reply_pause_days)
    copied = _copied_history(engine, start, end)
    try:
        while clock.now() < end:
            # Pauses that end and promises that break on the way change what is sent.
            housekeeping(engine, clock.now(), "simulate", reply_pause=reply_pause)
            await asyncio.to_thread(planner.tick)
            report = await dispatcher.tick()
            if report.outcomes.get("cancelled"):
                # A message cancelled before it left may have given its step back (to be
                # written afresh, say, once the debtor's day has turned): the daemon's next
                # ticks, seconds later, plan and send it again; here, at the same instant.
                await asyncio.to_thread(planner.tick)
                await dispatcher.tick()
            events = [
                e
                for box in outboxes.values()
                if isinstance(box, Outbox)
                for e in box.due_events(clock.now())
            ]
            if events:
                apply_events(engine, events, clock.now(), policy)
            clock.set(min(_next_instant(engine, clock.now()), end))
    finally:
        planner.close()

    def home(jurisdiction: str | None) -> str:
        return home_zone(rules, jurisdiction or settings.default_region)

    return forecast(engine, start, end, home, shown, copied)


def _next_instant(engine: Engine, now: datetime) -> datetime:
    """The next moment anything is due: an account, a queued attempt; at least a minute on."""
    with engine.connect() as connection:

        def earliest(column: Any, *where: Any) -> Any:
            return connection.execute(select(func.min(column)).where(*where)).scalar()

        active = accounts.c.status == AccountStatus.ACTIVE
        account_due = earliest(accounts.c.next_contact_at, active, accounts.c.next_contact_at > now)
        attempt_due = earliest(
            attempts.c.next_try_at,
            attempts.c.status == AttemptStatus.QUEUED,
            attempts.c.next_try_at > now,
        )
        pause_ends = earliest(accounts.c.paused_until, active, accounts.c.paused_until > now)
        pending = promises_to_pay.c.status == PromiseStatus.PENDING
        promise_day = earliest(promises_to_pay.c.due_on, pending)
        # A promise is broken once its day has ended where the debtor is (housekeeping's
        # rule): the first to break is among the earliest days' (zones differ by a day).
        promised = (
            connection.execute(
                select(promises_to_pay.c.due_on, accounts.c.timezone)
                .join(accounts, accounts.c.id == promises_to_pay.c.account_id)
                .where(pending, promises_to_pay.c.due_on <= promise_day + timedelta(days=2))
            ).all()
            if promise_day is not None
            else []
        )
    promise_broken = min(
        (t for t in (breaks_at(day, zone) for day, zone in promised) if t > now), default=None
    )
    candidates = [
        t for t in (account_due, attempt_due, pause_ends, promise_broken) if t is not None
    ]
    return max(min(candidates, default=now + timedelta(days=1)), now + timedelta(minutes=1))


@dataclass(frozen=True)
class CopiedHistory:
    """What the copy already held in the forecast's span (a span that began in the past):
    the real history, not the forecast's."""

    sent: frozenset[int] = frozenset()  # attempt ids
    # Cadence step rows as (id, step, at): a row the forecast deletes (a step given back
    # lets go of those after it) may have its id handed out again to one it records.
    skipped: frozenset[tuple[int, str, datetime]] = frozenset()


def _copied_history(engine: Engine, start: datetime, end: datetime) -> CopiedHistory:
    with engine.connect() as connection:
        sent = connection.execute(
            select(attempts.c.id).where(attempts.c.sent_at >= start, attempts.c.sent_at < end)
        ).scalars()
        skipped = connection.execute(
            select(cadence_steps.c.id, cadence_steps.c.step_key, cadence_steps.c.at).where(
                *_skipped(start, end)
            )
        )
        return CopiedHistory(frozenset(sent), frozenset(tuple(step) for step in skipped))


def _skipped(start: datetime, end: datetime) -> tuple[ColumnElement[bool], ...]:
    """The steps recorded as skipped in the span."""
    return (
        cadence_steps.c.outcome == StepOutcome.SKIPPED,
        cadence_steps.c.at >= start,
        cadence_steps.c.at < end,
    )


def forecast(
    engine: Engine,
    start: datetime,
    end: datetime,
    home: Callable[[str | None], str],
    shown: set[int] | None = None,
    copied: CopiedHistory = CopiedHistory(),
) -> list[ForecastRow]:
    """``home``: the zone of an account without one of its own, from its jurisdiction (the
    zone the planner counts its days in); ``shown``: the accounts to list (all if None);
    ``copied``: what was recorded before the forecast ran, not listed."""
    rows: list[ForecastRow] = []
    with engine.connect() as connection:
        zones = {
            r.id: (r.reference, r.timezone or home(r.jurisdiction))
            for r in connection.execute(select(accounts))
            if shown is None or r.id in shown
        }
        for attempt in connection.execute(
            select(attempts).where(attempts.c.sent_at >= start, attempts.c.sent_at < end)
        ):
            if attempt.account_id not in zones or attempt.id in copied.sent:
                continue
            reference, zone = zones[attempt.account_id]
            rows.append(_row(attempt.sent_at, zone, reference, attempt.step_key, attempt.channel,
                             "sent", ""))  # fmt: skip
        for decision in connection.execute(
            select(decisions).where(
                decisions.c.decided_at >= start,
                decisions.c.decided_at < end,
                decisions.c.verdict != "allow",
            )
        ):
            if decision.account_id not in zones:
                continue
            reference, zone = zones[decision.account_id]
            detail = "; ".join(f"{r['code']}: {r.get('detail', '')}" for r in decision.reasons)
            outcome = "deferred" if decision.verdict == "defer" else "blocked"
            rows.append(_row(decision.decided_at, zone, reference, decision.step_key or "",
                             decision.channel, outcome, detail))  # fmt: skip
        # Steps dropped (expired, missed, conditions not met, blocked on every channel).
        dropped = select(cadence_steps).where(*_skipped(start, end)).order_by(cadence_steps.c.id)
        for step in connection.execute(dropped):
            if step.account_id not in zones or (step.id, step.step_key, step.at) in copied.skipped:
                continue
            reference, zone = zones[step.account_id]
            rows.append(_row(step.at, zone, reference, step.step_key, "", "skipped",
                             step.reason or ""))  # fmt: skip
    return sorted(rows, key=lambda r: (r.day, r.local_time, r.account))


def _row(at: datetime, zone: str | None, account: str, step: str, channel: str, outcome: str,
         detail: str) -> ForecastRow:  # fmt: skip
    name = zone or "UTC"
    local = at.astimezone(ZoneInfo(name))
    return ForecastRow(local.date().isoformat(), local.strftime("%H:%M"), name, account, step,
                       channel, outcome, detail)  # fmt: skip


@dataclass(frozen=True)
class RestDayCalls:
    """An account whose forecast calls fall mostly on Sundays or public holidays where the
    debtor is: a pattern that can rebut Reg F's presumption of compliance (comment
    14(b)(2)(i)-2, "concentrating calls on Sundays or holidays"): two of them at least,
    and at least half of the account's calls."""

    account: str
    on_rest_days: int  # calls on a Sunday or a public holiday, by the debtor's date
    calls: int


# At least this many calls on rest days, and at least this share of the account's calls.
CONCENTRATED_CALLS = 2
CONCENTRATED_SHARE = 0.5


def rest_day_calls(
    source: Engine, rows: Sequence[ForecastRow], default_country: str
) -> list[RestDayCalls]:
    """The accounts whose forecast calls concentrate on Sundays or public holidays (the
    holidays of each account's jurisdiction, or the default country's)."""
    called: dict[str, list[date]] = {}
    for row in rows:
        if row.channel == "voice" and row.outcome == "sent":
            called.setdefault(row.account, []).append(date.fromisoformat(row.day))
    if not called:
        return []
    with source.connect() as connection:
        where = {
            row.reference: row.jurisdiction
            for row in connection.execute(
                select(accounts.c.reference, accounts.c.jurisdiction).where(
                    among(connection, accounts.c.reference, sorted(called))
                )
            )
        }
    found = []
    for account, days in sorted(called.items()):
        place = where.get(account) or default_country
        rest = sum(1 for day in days if _rest_day(day, place))
        if rest >= CONCENTRATED_CALLS and rest >= CONCENTRATED_SHARE * len(days):
            found.append(RestDayCalls(account, rest, len(days)))
    return found


def _rest_day(day: date, jurisdiction: str) -> bool:
    return day.weekday() == 6 or day in public_holidays(jurisdiction, day.year)


def write_csv(rows: list[ForecastRow], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(ForecastRow.__dataclass_fields__)
        for row in rows:
            # An account reference is the importer's text: it may look like a formula.
            writer.writerow(
                [spreadsheet_safe(getattr(row, name)) for name in ForecastRow.__dataclass_fields__]
            )
