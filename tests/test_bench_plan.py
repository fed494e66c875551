"""The plan benchmark reports a rate only over accounts planned: a run in which a plan
process failed (logged by the planner, its share left due) fails instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import plan
from bench.checks import BenchmarkFailed

# A helper plan process that claimed its first batch and died (killed, out of memory).
BROKEN_HELPER = """
from concurrent.futures import Future
from outreach.planner import Planner
def _broken_helpers(self, limit):
    with self.engine.begin() as connection:
        self._claim(connection, self.clock.now(), self.batch_size)
    failed = Future()
    failed.set_exception(RuntimeError("helper died"))
    return [failed]
Planner._start_helpers = _broken_helpers
"""


def test_a_plan_run_that_left_accounts_unplanned_fails(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkFailed, match=r"300 of the 400 accounts loaded were planned"):
        plan.run(f"sqlite:///{tmp_path}/b.db", 400, 100, 2, prelude=BROKEN_HELPER)


def test_a_plan_run_reports_its_rate_over_the_accounts_planned(tmp_path: Path) -> None:
    result = plan.run(f"sqlite:///{tmp_path}/b.db", 50, 10, 1)
    assert result["planned"] == sum(result["outcomes"].values()) == result["accounts"] == 50
