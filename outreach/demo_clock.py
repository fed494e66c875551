"""Prints the instant the demo's clock starts at: 09:00 US Eastern on the next weekday.

At that hour contact windows are open in the Eastern zone and open one by one westward as
the scaled clock runs, which is what the demo is meant to show.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from outreach.clock import SystemClock

EASTERN = ZoneInfo("America/New_York")


def demo_start(now: datetime) -> datetime:
    day = now.astimezone(EASTERN).date() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime.combine(day, time(9), tzinfo=EASTERN).astimezone(UTC)


if __name__ == "__main__":
    print(demo_start(SystemClock().now()).isoformat())
