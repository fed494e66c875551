"""Generated account files for the import benchmark and tests: streamed to disk, with a
known share of bad rows whose row numbers are returned for checking."""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

HEADER = [
    "reference", "name", "balance", "currency", "due_date", "phone", "email", "timezone",
    "jurisdiction", "locale", "sms_consent", "voice_consent", "email_consent", "cadence",
]  # fmt: skip
AREAS = (("617", "US-MA"), ("212", "US-NY"), ("312", "US-IL"), ("415", "US-CA"),
         ("303", "US-CO"), ("206", "US-WA"), ("305", "US-FL"), ("713", "US-TX"))  # fmt: skip
# Each fault is a column and a value the importer must refuse.
FAULTS = (
    ("balance", "12.345"),
    ("balance", "-5.00"),
    ("phone", "555-12"),
    ("due_date", "2026-02-30"),
    ("email", "nobody@"),
    ("timezone", "Mars/Olympus"),
    ("currency", "XYZ"),
    ("jurisdiction", "US-ZZ"),
    ("sms_consent", "maybe"),
    ("reference", ""),
)


@dataclass
class Expected:
    good: int = 0
    bad: int = 0
    bad_rows: list[int] = field(default_factory=list)


def write_accounts_file(path: Path, *, rows: int, bad_share: float, seed: int = 1) -> Expected:
    rng = random.Random(seed)
    expected = Expected()
    start = date(2026, 7, 1)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for index in range(rows):
            area, state = AREAS[index % len(AREAS)]
            serial = index // len(AREAS)
            # Exchanges 200-999 and lines 0000-9999: unique, valid North American numbers.
            exchange = 200 + (serial // 10_000) % 800
            values = {
                "reference": f"GEN-{index:08d}",
                "name": f"Debtor {index}",
                "balance": f"{rng.randint(1_000, 500_000) / 100:.2f}",
                "currency": "USD",
                "due_date": (start + timedelta(days=rng.randint(0, 150))).isoformat(),
                "phone": f"+1{area}{exchange}{serial % 10_000:04d}",
                "email": f"debtor{index}@example.com",
                "timezone": "",
                "jurisdiction": state,
                "locale": "en_US",
                "sms_consent": "true" if rng.random() < 0.8 else "false",
                "voice_consent": "false",
                "email_consent": "true",
                "cadence": "standard",
            }
            if rng.random() < bad_share:
                column, value = rng.choice(FAULTS)
                values[column] = value
                expected.bad += 1
                expected.bad_rows.append(index + 2)  # the header is row 1
            else:
                expected.good += 1
            writer.writerow([values[name] for name in HEADER])
    return expected
