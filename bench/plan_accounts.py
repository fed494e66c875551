"""Accounts for the plan benchmark, written straight into a database.

Each account is due now, owes a varied amount, falls at a varied point of the standard
cadence (so that different steps, channels and templates are used), lives in one of the
lower-48 zones, and has a mobile phone (SMS and voice points, with consent) and an email.
Numbers and mailboxes are the debtor's own, except that one account in ten is the previous
account's debtor's second debt, with the same phone and mailbox.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert

from outreach.store import accounts, contact_points

ZONES = (
    ("America/New_York", "US-NY", "212"),
    ("America/Chicago", "US-IL", "312"),
    ("America/Denver", "US-CO", "303"),
    ("America/Los_Angeles", "US-CA", "415"),
    ("America/New_York", "US-GA", "404"),
    ("America/Chicago", "US-TX", "512"),
)
CHUNK = 10_000


def _accounts(count: int, now: datetime, seed: int) -> Iterator[dict[str, Any]]:
    chance = random.Random(seed)
    for i in range(count):
        zone, state, _ = ZONES[i % len(ZONES)]
        yield {
            "reference": f"B-{i:08d}",
            "name": f"Debtor Number{i}",
            "balance_minor": chance.randint(1_000, 500_000),
            "imported_balance_minor": 0,
            "currency": "USD",
            "due_date": now.date() - timedelta(days=chance.choice((-7, -1, 0, 3, 10, 21, 30))),
            "status": "active",
            "timezone": zone,
            "jurisdiction": state,
            "locale": "es_US" if i % 10 == 0 else "en_US",
            "cadence": "standard",
            "collector_type": "third_party" if i % 3 == 0 else "first_party",
            "next_contact_at": now - timedelta(hours=1),
            "created_at": now,
            "updated_at": now,
        }


def load_accounts(engine: Engine, count: int, now: datetime, seed: int = 11) -> None:
    """``count`` due accounts with their contact points, in chunks."""
    rows = _accounts(count, now, seed)
    next_id = 1
    while True:
        chunk = [row for _, row in zip(range(CHUNK), rows, strict=False)]
        if not chunk:
            return
        with engine.begin() as connection:
            for row in chunk:
                row["imported_balance_minor"] = row["balance_minor"]
            connection.execute(insert(accounts), chunk)
            points = []
            for offset, row in enumerate(chunk):
                account_id = next_id + offset
                # One account in ten is a second debt of the previous account's debtor: the
                # same phone and mailbox, so compliance counts their contacts together.
                owner = account_id - 1 if account_id % 10 == 0 else account_id
                area = ZONES[(owner - 1) % len(ZONES)][2]
                phone = f"+1{area}{200 + owner // 10_000 % 800:03d}{owner % 10_000:04d}"
                for channel, address in (
                    ("sms", phone),
                    ("voice", phone),
                    ("email", f"debtor{owner}@example.com"),
                ):
                    points.append(_point(account_id, channel, address, zone=row["timezone"],
                                         now=now))  # fmt: skip
            connection.execute(insert(contact_points), points)
        next_id += len(chunk)


def _point(
    account_id: int, channel: str, address: str, *, zone: str, now: datetime
) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "channel": channel,
        "address": address,
        "kind": "personal" if channel == "email" else "mobile",
        "priority": 0,
        "timezone": None if channel == "email" else zone,
        "consent": True,
        "consent_source": "benchmark",
        "consent_at": now,
        "status": "active",
        "created_at": now,
        "updated_at": now,
    }


def weekday_afternoon(today: date) -> datetime:
    """18:00 UTC on a Wednesday: contact windows are open from New York to Los Angeles."""
    from datetime import UTC, time

    day = today + timedelta(days=(2 - today.weekday()) % 7)
    return datetime.combine(day, time(18), tzinfo=UTC)
