"""What a cadence message was written from, as a digest checked again before it leaves.

A message is rendered when it is planned, and may wait before it leaves: a rate limit's
queue, a deferral to the next morning, a provider's outage. Meanwhile a payment can lower
the balance, or the debtor's day can turn, and "$120.50" or "due tomorrow" would no longer
be true. The plan stage stores a digest of the account's facts the text was written from
(reference, name, balance, currency, due date, locale, collector type) and of the debtor's
local date; the dispatcher works it out again from the account as it is then, and a
message whose facts have changed is not sent: its step goes back to the planner, which
writes it afresh.
"""

from __future__ import annotations

from datetime import date, datetime
from hashlib import blake2b
from typing import Any
from zoneinfo import ZoneInfo

from outreach.compliance.rules import RuleSet

# The account columns the digest reads.
FACT_COLUMNS = ("reference", "name", "balance_minor", "currency", "due_date", "locale",
                "collector_type", "timezone")  # fmt: skip
OUT_OF_DATE = "out of date: the account changed since the message was written"


def facts_digest(account: Any, day: date) -> str:
    """A digest of what a message to ``account``, written on the debtor's ``day``, states."""
    text = "\x1f".join(
        (
            account.reference,
            account.name,
            str(account.balance_minor),
            account.currency,
            account.due_date.isoformat(),
            account.locale,
            account.collector_type,
            day.isoformat(),
        )
    )
    return blake2b(text.encode(), digest_size=8).hexdigest()


def home_zone(rules: RuleSet, jurisdiction: str) -> str:
    """The zone an account without one of its own counts its days in: its state's first,
    else its country's first."""
    zones = rules.region_zones(jurisdiction) or rules.all_zones(jurisdiction.split("-")[0])
    return zones[0] if zones else "UTC"


def account_zone(account: Any, rules: RuleSet, jurisdiction: str) -> str:
    """The zone the account's days are counted in."""
    return str(account.timezone or home_zone(rules, jurisdiction))


def local_day(account: Any, rules: RuleSet, jurisdiction: str, now: datetime) -> date:
    """The account's date at ``now``, in its zone or its home's."""
    return now.astimezone(ZoneInfo(account_zone(account, rules, jurisdiction))).date()


def still_true(
    account: Any, written: str, rules: RuleSet, jurisdiction: str, now: datetime
) -> bool:
    """Whether a message whose digest is ``written`` still states what ``account`` is."""
    return facts_digest(account, local_day(account, rules, jurisdiction, now)) == written
