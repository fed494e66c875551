"""The import benchmark runs end to end at a small size: its checks hold, and its naive
baseline writes accounts the schema accepts (a NOT NULL column it left unset would fail it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import import_accounts
from bench.accounts_file import Expected
from bench.checks import BenchmarkFailed


def test_the_import_benchmark_runs_and_its_checks_hold() -> None:
    report = import_accounts.main(rows=400, big_rows=0, sample=60)
    checked = report["import_100k"]
    assert checked["every_good_row_landed"] and checked["every_bad_row_reported"]
    assert checked["second_import_changed_nothing"]
    assert report["naive_rows_per_second"] > 0


def test_an_import_run_whose_checks_fail_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    write = import_accounts.write_accounts_file

    def last_row_lost(path: Path, **options: Any) -> Expected:
        expected = write(path, **options)
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        path.write_text("".join(lines[:-1]), encoding="utf-8")  # the file lost its last row
        return expected

    monkeypatch.setattr(import_accounts, "write_accounts_file", last_row_lost)
    # The row lost is a good one: it did not land, and the second import left one row less.
    failed = "import: every_good_row_landed, second_import_changed_nothing failed"
    with pytest.raises(BenchmarkFailed, match=failed):
        import_accounts.main(rows=100, big_rows=0, sample=10)
