"""Run the benchmarks: ``make bench`` or ``python -m bench [--quick]``.

Each benchmark runs against its naive baseline in the same run and reports the ratio; a run
whose own checks fail (work left undone, rows lost) exits with an error and writes nothing.
Results are printed and written to bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
from collections.abc import Iterator
from pathlib import Path

from bench import dispatch, dispatch_transport, import_accounts, plan, webhooks
from bench.checks import BenchmarkFailed


def main() -> None:
    try:
        run()
    except BenchmarkFailed as error:  # no figures written for work that was not done
        sys.exit(f"python -m bench: failed: {error}")


def run() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--only",
        choices=["import", "transport", "plan", "dispatch", "webhooks"],
        help="run one benchmark instead of all",
    )
    args = parser.parse_args()
    machine = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    out = Path(__file__).parent / "results"
    latest = out / "latest.json"
    report: dict[str, object] = {}
    if args.only and latest.exists():  # keep the other benchmark's last figures
        report = json.loads(latest.read_text(encoding="utf-8"))
    report["machine"] = machine
    if args.only in (None, "import"):
        if args.quick:
            report["import"] = import_accounts.main(rows=5_000, big_rows=0, sample=500)
        else:
            report["import"] = import_accounts.main()
    if args.only in (None, "transport"):
        if args.quick:
            report["transport"] = dispatch_transport.main(requests=300, twilio_requests=100)
        else:
            report["transport"] = dispatch_transport.main()
    if args.only in (None, "plan"):
        with _postgres() as url:
            if args.quick:
                report["plan"] = plan.main(accounts=5_000, sample=200, postgres_url=url)
            else:
                report["plan"] = plan.main(postgres_url=url)
    if args.only in (None, "dispatch"):
        if args.quick:
            report["dispatch"] = dispatch.main(messages=2_000, baseline=100)
        else:
            report["dispatch"] = dispatch.main()
    if args.only in (None, "webhooks"):
        with _postgres(durable=True) as url:
            if args.quick:
                report["webhooks"] = webhooks.main(
                    closed_requests=2_000, open_seconds=2, postgres_url=url
                )
            else:
                report["webhooks"] = webhooks.main(postgres_url=url)
    out.mkdir(exist_ok=True)
    latest.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(json.dumps(report, indent=2))


@contextlib.contextmanager
def _postgres(*, durable: bool = False) -> Iterator[str | None]:
    """A throwaway PostgreSQL cluster from Debian's binaries, if they are installed;
    ``durable``: commits flushed to disk (fsync, synchronous_commit)."""
    from tests.pgcluster import ThrowawayPostgres, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        yield None
        return
    cluster = ThrowawayPostgres(bin_dir, durable=durable).start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
