"""The import benchmark runs end to end at a small size: its checks hold, and its naive
baseline writes accounts the schema accepts (a NOT NULL column it left unset would fail it)."""

from __future__ import annotations

from bench import import_accounts


def test_the_import_benchmark_runs_and_its_checks_hold() -> None:
    report = import_accounts.main(rows=400, big_rows=0, sample=60)
    checked = report["import_100k"]
    assert checked["every_good_row_landed"] and checked["every_bad_row_reported"]
    assert checked["second_import_changed_nothing"]
    assert report["naive_rows_per_second"] > 0
