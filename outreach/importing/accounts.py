"""``outreach accounts import``: a file of accounts, streamed into the database in batches."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, insert, update

from outreach import store
from outreach.clock import Clock
from outreach.importing.account_rows import (
    KNOWN_COLUMNS,
    REQUIRED_COLUMNS,
    AccountRecord,
    ImportDefaults,
    RowRejected,
    parse_account_row,
)
from outreach.importing.account_store import AccountUpserter, BatchOutcome
from outreach.importing.reader import FileFormat, RawRow, open_rows
from outreach.importing.rejects import RejectsWriter


@dataclass(frozen=True)
class RowProblem:
    row: int
    errors: list[str]

    def __str__(self) -> str:
        return f"row {self.row}: {'; '.join(self.errors)}"


@dataclass
class ImportSummary:
    source: str
    dry_run: bool
    run_id: int | None = None
    rows_read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_closed: int = 0
    rejected: int = 0
    unknown_columns: list[str] = field(default_factory=list)
    # The first problems, for display and tests; every one goes to on_problem and --rejects.
    problems: list[RowProblem] = field(default_factory=list)

    MAX_KEPT_PROBLEMS = 1000

    def add(self, outcome: BatchOutcome) -> None:
        self.created += outcome.created
        self.updated += outcome.updated
        self.unchanged += outcome.unchanged
        self.kept_closed += outcome.kept_closed


@dataclass
class ImportHooks:
    """Where the importer reports as it goes (the CLI prints; tests collect)."""

    on_problem: Callable[[RowProblem], None] = lambda problem: None
    on_progress: Callable[[int, int], None] = lambda done, total: None  # bytes


def import_accounts(
    engine: Engine,
    path: Path,
    file_format: FileFormat,
    defaults: ImportDefaults,
    clock: Clock,
    *,
    batch_size: int = 1000,
    dry_run: bool = False,
    rejects_path: Path | None = None,
    hooks: ImportHooks | None = None,
) -> ImportSummary:
    """Import a CSV or JSON Lines file; see ``import_account_rows`` for what happens to rows."""
    hooks = hooks or ImportHooks()
    with open_rows(path, file_format, required=REQUIRED_COLUMNS, known=KNOWN_COLUMNS) as rows:
        rejects = RejectsWriter(rejects_path, file_format, rows.columns) if rejects_path else None

        def progress() -> None:
            hooks.on_progress(rows.bytes_read(), rows.bytes_total)

        try:
            summary = import_account_rows(
                engine, rows, str(path), defaults, clock,
                batch_size=batch_size, dry_run=dry_run, rejects=rejects,
                hooks=ImportHooks(hooks.on_problem, lambda _done, _total: progress()),
            )  # fmt: skip
        finally:
            if rejects is not None:
                rejects.close()
        summary.unknown_columns = sorted(rows.unknown_columns)
    return summary


def import_account_rows(
    engine: Engine,
    rows: Iterable[RawRow],
    source: str,
    defaults: ImportDefaults,
    clock: Clock,
    *,
    batch_size: int = 1000,
    dry_run: bool = False,
    rejects: RejectsWriter | None = None,
    hooks: ImportHooks | None = None,
) -> ImportSummary:
    """Validate every row, upsert the good ones in batches, report and keep the bad ones.

    Each batch commits on its own: an interrupted import keeps what it landed, and running
    it again picks up the rest without changing what is already there.
    """
    summary = ImportSummary(source=source, dry_run=dry_run)
    run = _Run(summary, rejects, hooks or ImportHooks())
    with engine.connect() as connection:
        summary.run_id = _start_run(connection, source, clock.now(), dry_run)
        upserter = AccountUpserter(connection, clock.now(), dry_run=dry_run)
        connection.commit()
        batch: list[AccountRecord] = []
        raws: dict[int, RawRow] = {}
        for raw in rows:
            summary.rows_read += 1
            if raw.error is not None:
                run.reject(raw, [raw.error])
                continue
            try:
                batch.append(parse_account_row(raw.number, raw.values, defaults))
            except RowRejected as exc:
                run.reject(raw, exc.errors)
                continue
            raws[raw.number] = raw
            if len(batch) >= batch_size:
                run.land(upserter, batch, raws)
        run.land(upserter, batch, raws)
        upserter.close()
        _finish_run(connection, summary, clock)
        connection.commit()
    return summary


class _Run:
    """The bookkeeping of one import: rejects go out as they are found, batches land."""

    def __init__(self, summary: ImportSummary, rejects: RejectsWriter | None, hooks: ImportHooks):
        self.summary = summary
        self.rejects = rejects
        self.hooks = hooks

    def reject(self, raw: RawRow, errors: list[str]) -> None:
        problem = RowProblem(raw.number, errors)
        self.summary.rejected += 1
        if len(self.summary.problems) < self.summary.MAX_KEPT_PROBLEMS:
            self.summary.problems.append(problem)
        if self.rejects is not None:
            self.rejects.write(raw.number, raw.values, errors)
        self.hooks.on_problem(problem)

    def land(
        self, upserter: AccountUpserter, batch: list[AccountRecord], raws: dict[int, RawRow]
    ) -> None:
        outcome = upserter.apply(batch)
        self.summary.add(outcome)
        for record, first_row in outcome.duplicates:
            message = f"reference {record.reference!r} already appears at row {first_row}"
            self.reject(raws[record.row], [message])
        upserter.connection.commit()
        batch.clear()
        raws.clear()
        self.hooks.on_progress(0, 0)


def _start_run(connection: Connection, source: str, now: datetime, dry_run: bool) -> int:
    result = connection.execute(
        insert(store.import_runs).returning(store.import_runs.c.id),
        {"kind": "accounts", "source": source[:500], "dry_run": dry_run, "started_at": now},
    )
    return int(result.scalar_one())


def _finish_run(connection: Connection, summary: ImportSummary, clock: Clock) -> None:
    connection.execute(
        update(store.import_runs)
        .where(store.import_runs.c.id == summary.run_id)
        .values(
            finished_at=clock.now(),
            rows_read=summary.rows_read,
            created=summary.created,
            updated=summary.updated,
            unchanged=summary.unchanged,
            rejected=summary.rejected,
        )
    )
