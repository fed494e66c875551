"""``outreach accounts import``: a file of accounts, streamed into the database in batches."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

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
    reference_of,
)
from outreach.importing.account_store import AccountUpserter, BatchOutcome
from outreach.importing.reader import FileFormat, RawRow, open_rows
from outreach.importing.rejects import (
    Rejections,
    RejectsWriter,
    RowProblem,
    refuse_rejects_over_input,
)


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

    def add(self, outcome: BatchOutcome) -> None:
        self.created += outcome.created
        self.updated += outcome.updated
        self.unchanged += outcome.unchanged
        self.kept_closed += outcome.kept_closed


@dataclass
class ImportHooks:
    """Where the importer reports as it goes (the CLI prints; tests collect)."""

    on_problem: Callable[[RowProblem], None] = lambda problem: None
    # After each batch lands: bytes read so far and the file's size (files only).
    on_progress: Callable[[int, int], None] = lambda done, total: None


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
    refuse_rejects_over_input(rejects_path, path)
    with open_rows(path, file_format, required=REQUIRED_COLUMNS, known=KNOWN_COLUMNS) as rows:
        if rows.delimiter == ";":
            defaults = replace(defaults, amount_grouping=False)
        rejects = (
            RejectsWriter(rejects_path, file_format, rows.columns, delimiter=rows.delimiter)
            if rejects_path
            else None
        )

        def progress(_done: int, _total: int) -> None:
            hooks.on_progress(rows.bytes_read(), rows.bytes_total)

        try:
            summary = import_account_rows(
                engine, rows, str(path), defaults, clock,
                batch_size=batch_size, dry_run=dry_run, rejects=rejects,
                hooks=ImportHooks(hooks.on_problem, progress),
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
    hooks = hooks or ImportHooks()
    rejections = Rejections(rejects, hooks.on_problem)
    with engine.connect() as connection:
        summary.run_id = _start_run(connection, source, clock.now(), dry_run)
        upserter = AccountUpserter(
            connection, clock.now(), dry_run=dry_run, region_zones=defaults.region_zones,
            clock=clock,
        )  # fmt: skip
        connection.commit()
        batch: list[AccountRecord] = []
        raws: dict[int, RawRow] = {}
        for raw in rows:
            summary.rows_read += 1
            try:
                if raw.error is not None:
                    raise RowRejected([raw.error])
                batch.append(parse_account_row(raw.number, raw.values, defaults))
            except RowRejected as exc:
                rejections.reject(raw, exc.errors)
                # The first row with a reference wins even when rejected: a later one with
                # the same reference is a repeat, not a replacement.
                reference = reference_of(raw.values)
                if reference is not None:
                    upserter.note_rejected(reference, raw.number)
                continue
            raws[raw.number] = raw
            if len(batch) >= batch_size:
                _land(upserter, batch, raws, summary, rejections)
                hooks.on_progress(summary.rows_read, 0)
        _land(upserter, batch, raws, summary, rejections)
        upserter.close()
        summary.rejected, summary.problems = rejections.count, rejections.kept
        _finish_run(connection, summary, clock)
        connection.commit()
    return summary


def _land(
    upserter: AccountUpserter,
    batch: list[AccountRecord],
    raws: dict[int, RawRow],
    summary: ImportSummary,
    rejections: Rejections,
) -> None:
    outcome = upserter.apply(batch)
    summary.add(outcome)
    refusals = [(record, [message]) for record, message in outcome.refused]
    for record, first_row in outcome.duplicates:
        message = f"reference {record.reference!r} already appears at row {first_row}"
        refusals.append((record, [message]))
    for record, errors in sorted(refusals, key=lambda refusal: refusal[0].row):
        rejections.reject(raws[record.row], errors)
    # The run's counts so far land with the batch: an import stopped half-way (Ctrl-C, a
    # crash) is recorded with what it changed, its end left empty.
    summary.rejected = rejections.count
    _count_run(upserter.connection, summary)
    upserter.connection.commit()
    batch.clear()
    raws.clear()


def _start_run(connection: Connection, source: str, now: datetime, dry_run: bool) -> int:
    result = connection.execute(
        insert(store.import_runs).returning(store.import_runs.c.id),
        {"kind": "accounts", "source": source[:500], "dry_run": dry_run, "started_at": now},
    )
    return int(result.scalar_one())


def _finish_run(connection: Connection, summary: ImportSummary, clock: Clock) -> None:
    _count_run(connection, summary, finished_at=clock.now())


def _count_run(connection: Connection, summary: ImportSummary, **more: Any) -> None:
    connection.execute(
        update(store.import_runs)
        .where(store.import_runs.c.id == summary.run_id)
        .values(
            rows_read=summary.rows_read,
            created=summary.created,
            updated=summary.updated,
            unchanged=summary.unchanged,
            rejected=summary.rejected,
            **more,
        )
    )
