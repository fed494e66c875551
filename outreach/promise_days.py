"""When a promise to pay is due and when it is broken, in the debtor's own days.

A promise for a day is broken once that day has ended where the debtor is: in the
account's time zone, or, for an account without one, once it has ended everywhere (at
noon UTC the next day, the end of the day in UTC-12). Breaking it resumes outreach, so the
debtor is never contacted on the day they promised to pay, wherever they are; for a debtor
in the Americas a promise without a zone breaks before any contact window opens.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# The day ends last in UTC-12: a zone-less promise waits for that.
_LAST_DAY_END = timedelta(hours=12)


def _zone(timezone: str | None) -> ZoneInfo | None:
    if not timezone:
        return None
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def breaks_at(due_on: date, timezone: str | None) -> datetime:
    """When the day ``due_on`` ends for a debtor in ``timezone`` (None or unknown: when it
    has ended everywhere)."""
    zone = _zone(timezone)
    if zone is None:
        return datetime.combine(due_on + timedelta(days=1), time(), UTC) + _LAST_DAY_END
    return datetime.combine(due_on + timedelta(days=1), time(), zone).astimezone(UTC)


def day_ended(due_on: date, timezone: str | None, now: datetime) -> bool:
    """Whether the day ``due_on`` has ended for a debtor in ``timezone`` at ``now``."""
    return now >= breaks_at(due_on, timezone)


def debtor_today(timezone: str | None, now: datetime) -> date:
    """The debtor's date at ``now``: in their zone, or, without one, the day that ends last
    (UTC-12's), as a promise's day is counted."""
    zone = _zone(timezone)
    if zone is None:
        return (now.astimezone(UTC) - _LAST_DAY_END).date()
    return now.astimezone(zone).date()


def last_day_that_may_have_ended(now: datetime) -> date:
    """No day after this one has ended anywhere at ``now``: a day ends first in UTC+14,
    before it ends in UTC, but never before it has begun there."""
    return now.astimezone(UTC).date()


def made_on(created_at: datetime, timezone: str | None) -> date:
    """The debtor's day on which a promise recorded at ``created_at`` was made: payments
    dated from then on count toward it."""
    return debtor_today(timezone, created_at)
