"""The plan stage, end to end: claim, cadence, compliance, render, store.

The batched planner (``Planner.tick``, 1,000 accounts a batch: one claim, one read per
table, one write per table; a backlog shared with helper plan processes, one per core)
runs over every due account in a child process of its own, so that its peak memory is its
own: ru_maxrss for that process, and VmHWM for each plan process (a spawned process's
ru_maxrss would count the parent pages it held between fork and exec).

Two baselines run on a sample in the same run, each compared per account:

- the naive loop (``bench.plan_orm_loop``): the plan stage written the textbook way, one
  account at a time through the ORM with a query per table and a commit per account, the
  planning itself done by the product's code;
- one at a time: the product's planner with batches of one in one process (a claim, one
  read per table, one write per table and a commit per account). The batched run plans in
  one process per core, so the ratio to it is what batching and the other cores gain
  together, not batching alone.

Each run counts the accounts it planned, and the run fails unless every account loaded was
planned (a plan process that fails is logged and its share left due; a rate over every
account would count them): the rates are over the accounts planned.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.checks import BenchmarkFailed

CHILD = """
import json, multiprocessing, resource, sys, time
from datetime import date
from pathlib import Path
from outreach.clock import FixedClock
from outreach.config import Settings
from outreach.db import make_engine, upgrade
from outreach.planner import Planner
from outreach.rendering.context import load_company
from outreach.template_store import sync_templates
from bench.plan_accounts import load_accounts, weekday_afternoon

url, count, batch, repo = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
processes = int(sys.argv[5])
settings = Settings(database_url=url, templates_dir=repo / "templates",
                    schedules_dir=repo / "schedules", channels_dir=repo / "channels")
engine = make_engine(settings)
upgrade(engine)
now = weekday_afternoon(date(2026, 11, 22))
clock = FixedClock(now)
sync_templates(engine, settings.templates_dir, load_company(settings.templates_dir), clock,
               author="bench", publish=True)
started = time.perf_counter()
load_accounts(engine, count, now)
loaded = time.perf_counter() - started
planner = Planner(engine, settings, clock, "bench", batch_size=batch, processes=processes)
started = time.perf_counter()
report = planner.tick()
seconds = time.perf_counter() - started
def high_water_mb(pid):
    # VmHWM, not ru_maxrss: a spawned process's ru_maxrss counts the parent's pages it held
    # for an instant between fork and exec.
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0
children = [high_water_mb(child.pid) for child in multiprocessing.active_children()]
planner.close()
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
each = max(children, default=0.0)
planned = sum(report.outcomes.values())
if planned != count or report.claimed != count:
    sys.exit(f"plan: {planned:,} of the {count:,} accounts loaded were planned "
             f"({report.claimed:,} claimed): a plan process failed or stopped")
print(json.dumps({
    "accounts": count, "planned": planned, "batch_size": batch, "processes": processes,
    "seconds": round(seconds, 2), "per_second": round(planned / seconds),
    "load_seconds": round(loaded, 1), "outcomes": dict(report.outcomes),
    "claimed": report.claimed, "peak_rss_mb": round(own, 1),
    "plan_process_peak_rss_mb": round(each, 1),
    "plan_processes_seen": len(children),
    "peak_rss_total_mb": round(own + sum(children), 1),
}))
"""


def run(url: str, count: int, batch: int, processes: int, *, prelude: str = "") -> dict[str, Any]:
    """The planner over ``count`` accounts in a child process; ``prelude``: code the child
    runs first (a test breaks a plan process with it)."""
    repo = Path(__file__).resolve().parent.parent
    code = prelude + CHILD
    return _child([sys.executable, "-c", code, url, str(count), str(batch), str(repo),
                   str(processes)], repo)  # fmt: skip


def run_orm_loop(url: str, count: int) -> dict[str, Any]:
    repo = Path(__file__).resolve().parent.parent
    return _child([sys.executable, "-m", "bench.plan_orm_loop", url, str(count), str(repo)], repo)


def _child(command: list[str], repo: Path) -> dict[str, Any]:
    """Run a benchmark's child process; its one JSON line. A child that exits with an error
    (a check of its own failed) fails the run with its last words."""
    done = subprocess.run(command, capture_output=True, text=True, cwd=repo, check=False)
    if done.returncode != 0:
        said = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise BenchmarkFailed(f"a plan benchmark process exited with {done.returncode}:\n{said}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(
    accounts: int = 1_000_000, sample: int = 1_000, postgres_url: str | None = None
) -> dict[str, Any]:
    processes = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as folder:
        batched = run(f"sqlite:///{folder}/batched.db", accounts, 1000, processes)
        loop = run_orm_loop(f"sqlite:///{folder}/loop.db", sample)
        naive = run(f"sqlite:///{folder}/naive.db", sample, 1, 1)
    report: dict[str, Any] = {
        "sqlite": {"batched": batched, "naive_orm_loop": loop, "naive_one_at_a_time": naive},
        "ratio_vs_orm_loop": round(batched["per_second"] / loop["per_second"], 1),
        "ratio_vs_one_at_a_time": round(batched["per_second"] / naive["per_second"], 1),
    }
    if postgres_url:
        report["postgresql"] = run(postgres_url, min(accounts, 200_000), 1000, processes)
    print(
        f"plan: {batched['per_second']:,} accounts/s batched over {accounts:,} "
        f"({batched['peak_rss_mb']} MB peak) vs {loop['per_second']:,}/s in the naive ORM "
        f"loop: {report['ratio_vs_orm_loop']}x; {naive['per_second']:,}/s one at a time in one "
        f"process: "
        f"{report['ratio_vs_one_at_a_time']}x",
        file=sys.stderr,
    )
    return report
