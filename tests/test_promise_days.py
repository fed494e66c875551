"""A promise's day, in the debtor's own days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from outreach.promise_days import breaks_at, day_ended, debtor_today, made_on

NINTH = date(2026, 11, 9)


@pytest.mark.parametrize(
    ("timezone", "ends"),
    [
        ("America/Los_Angeles", datetime(2026, 11, 10, 8, 0, tzinfo=UTC)),
        ("America/New_York", datetime(2026, 11, 10, 5, 0, tzinfo=UTC)),
        ("Asia/Tokyo", datetime(2026, 11, 9, 15, 0, tzinfo=UTC)),
        # No zone, or one that does not exist: once the day has ended everywhere (UTC-12).
        (None, datetime(2026, 11, 10, 12, 0, tzinfo=UTC)),
        ("Mars/Olympus_Mons", datetime(2026, 11, 10, 12, 0, tzinfo=UTC)),
    ],
)
def test_a_promised_day_ends_where_the_debtor_is(timezone: str | None, ends: datetime) -> None:
    assert breaks_at(NINTH, timezone) == ends
    assert not day_ended(NINTH, timezone, ends - timedelta(minutes=1))
    assert day_ended(NINTH, timezone, ends)


def test_the_earliest_promise_day_is_a_day_not_ended_there() -> None:
    # 02:00 UTC on the 10th: still the 9th in Boston, already the 10th in Tokyo.
    at = datetime(2026, 11, 10, 2, 0, tzinfo=UTC)
    assert debtor_today("America/New_York", at) == NINTH
    assert debtor_today("Asia/Tokyo", at) == date(2026, 11, 10)
    assert debtor_today(None, at) == NINTH
    for timezone in ("America/New_York", "Asia/Tokyo", None):
        assert not day_ended(debtor_today(timezone, at), timezone, at)


def test_a_promise_is_made_on_the_debtors_day() -> None:
    at = datetime(2026, 11, 10, 2, 0, tzinfo=UTC)
    assert made_on(at, "America/New_York") == NINTH
    assert made_on(at, None) == NINTH  # the day that ends last
