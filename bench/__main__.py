"""Run the benchmarks: ``make bench`` or ``python -m bench [--quick]``.

Each benchmark runs against its naive baseline in the same run and reports the ratio.
Results are printed and written to bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

from bench import dispatch_transport, import_accounts


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--only", choices=["import", "transport"], help="run one benchmark instead of all"
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
    out.mkdir(exist_ok=True)
    latest.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
