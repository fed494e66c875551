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

from bench import import_accounts


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    machine = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if args.quick:
        results = import_accounts.main(rows=5_000, big_rows=0, sample=500)
    else:
        results = import_accounts.main()
    report = {"machine": machine, "import": results}
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
