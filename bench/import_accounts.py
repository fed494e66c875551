"""Account import: the batched importer against a naive row-at-a-time loop, same run.

The naive baseline is what an import written without care looks like, and it does less
than the importer: it parses a row's balance, due date and phone only (no email, time zone,
currency, state, consent or reference checks), skips a row that fails them without
reporting it (no rejects file) though it counts it as a row done, looks the account up
through the ORM, inserts it with one SMS contact point (no email or voice, no consent) or
updates its balance, commits, next row. It runs on a sample and is compared per row read.
The batched import runs on the whole file in a child process, so its peak memory
(ru_maxrss) is its own; the 1,000,000-row run shows whether memory stays flat. The run
fails unless every good row landed, every bad row was reported and a second import of the
same file changed nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.accounts_file import write_accounts_file
from bench.checks import require

# What the run checks of the batched import; a check that fails fails the run.
CHECKS = ("every_good_row_landed", "every_bad_row_reported", "second_import_changed_nothing")

CHILD = """
import json, resource, sys, time
from datetime import UTC, datetime
from pathlib import Path
from outreach.clock import SystemClock
from outreach.config import Settings
from outreach.db import make_engine, upgrade
from outreach.importing.account_rows import ImportDefaults
from outreach.importing.accounts import import_accounts

path, url, rejects = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
engine = make_engine(Settings(database_url=url))
upgrade(engine)
clock = SystemClock()
defaults = ImportDefaults("US", "en_US", "USD", "standard", "first_party", "bench",
                          clock.now(), frozenset({"standard"}))
started = time.perf_counter()
summary = import_accounts(engine, path, "csv", defaults, clock, rejects_path=rejects)
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "created": summary.created, "updated": summary.updated,
                  "unchanged": summary.unchanged, "rejected": summary.rejected,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_child(path: Path, url: str, rejects: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), url, str(rejects)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def naive_rows_per_second(path: Path, url: str, sample: int) -> float:
    """Row at a time through the ORM, a commit per row: the baseline (which validates and
    writes less than the importer: see the module's docstring). Rows per second, every
    row read counted, a row it skipped included."""
    import csv

    from sqlmodel import Session, select

    from outreach.clock import SystemClock
    from outreach.config import Settings
    from outreach.db import make_engine, upgrade
    from outreach.importing.fields import FieldError, parse_amount, parse_date, parse_phone
    from outreach.models import Account, ContactPoint

    engine = make_engine(Settings(database_url=url))
    upgrade(engine)
    clock = SystemClock()
    started = time.perf_counter()
    done = 0
    with path.open(encoding="utf-8") as handle, Session(engine) as session:
        for values in csv.DictReader(handle):
            if done >= sample:
                break
            done += 1
            try:
                balance = parse_amount("balance", values["balance"], "USD")
                due = parse_date("due_date", values["due_date"])
                phone = parse_phone("phone", values["phone"], "US")
            except FieldError:
                continue
            now = clock.now()
            account = session.exec(
                select(Account).where(Account.reference == values["reference"])
            ).first()
            if account is None:
                account = Account(
                    reference=values["reference"], name=values["name"], balance_minor=balance,
                    imported_balance_minor=balance, currency="USD", due_date=due,
                    locale="en_US", cadence="standard", created_at=now, updated_at=now,
                )  # fmt: skip
                session.add(account)
                session.flush()
                session.add(
                    ContactPoint(
                        account_id=account.id,
                        channel="sms",
                        address=phone.e164,
                        created_at=now,
                        updated_at=now,
                    )
                )
            else:
                account.balance_minor = account.imported_balance_minor = balance
            session.commit()
    return done / (time.perf_counter() - started)


def main(rows: int = 100_000, big_rows: int = 1_000_000, sample: int = 2_000) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="outreach-bench-import-"))
    report: dict[str, Any] = {}
    path = work / "accounts.csv"
    expected = write_accounts_file(path, rows=rows, bad_share=0.05, seed=1)
    url = f"sqlite:///{work / 'bench.db'}"
    first = run_child(path, url, work / "rejects.csv")
    second = run_child(path, url, work / "rejects2.csv")
    rejected_rows = sum(1 for _ in (work / "rejects.csv").open(encoding="utf-8")) - 1
    report["import_100k"] = {
        "rows": rows,
        "good": expected.good,
        "bad": expected.bad,
        "first": first,
        "second": second,
        "every_good_row_landed": first["created"] == expected.good,
        "every_bad_row_reported": first["rejected"] == expected.bad == rejected_rows,
        "second_import_changed_nothing": (second["created"], second["updated"]) == (0, 0)
        and second["unchanged"] == expected.good,
        "rows_per_second": rows / first["seconds"],
    }
    failed = [name for name in CHECKS if not report["import_100k"][name]]
    require(
        not failed,
        f"import: {', '.join(failed)} failed (first import {first}, second {second}, "
        f"expected {expected.good} good and {expected.bad} bad rows, {rejected_rows} in the "
        "rejects file)",
    )
    naive = naive_rows_per_second(path, f"sqlite:///{work / 'naive.db'}", sample)
    report["naive_rows_per_second"] = naive
    report["ratio_vs_naive"] = report["import_100k"]["rows_per_second"] / naive
    if big_rows:
        big = work / "big.csv"
        write_accounts_file(big, rows=big_rows, bad_share=0.05, seed=2)
        big_run = run_child(big, f"sqlite:///{work / 'big.db'}", work / "big-rejects.csv")
        report["import_1m"] = {
            **big_run,
            "rows": big_rows,
            "rows_per_second": big_rows / big_run["seconds"],
        }
        big.unlink()
    path.unlink()
    return report


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
