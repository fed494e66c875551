"""Contact windows: hand-computed cases from Reg F's examples, daylight-saving days, and
properties over random instants and zone sets."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outreach.compliance.windows import (
    InconvenientTime,
    LocalWindow,
    first_allowed,
    intersect,
    subtract,
)

WINDOW = LocalWindow()
US_ZONES = [
    "America/New_York", "America/Chicago", "America/Denver", "America/Phoenix",
    "America/Los_Angeles", "America/Anchorage", "Pacific/Honolulu",
]  # fmt: skip


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("now", "zones", "expected"),
    [
        # Reg F comment 6(b)(1)(i)-1: Eastern mobile, Pacific address: from 11:00 ET.
        (utc(2025, 6, 3, 12), ["America/New_York", "America/Los_Angeles"], utc(2025, 6, 3, 15)),
        # Eastern mobile, Mountain landline: from 10:00 ET.
        (utc(2025, 6, 3, 12), ["America/New_York", "America/Denver"], utc(2025, 6, 3, 14)),
        # ...until 21:00 ET: at 20:59 ET still allowed, at 21:00 ET the next day at 10:00 ET.
        (utc(2025, 6, 4, 0, 59), ["America/New_York", "America/Denver"], utc(2025, 6, 4, 0, 59)),
        (utc(2025, 6, 4, 1), ["America/New_York", "America/Denver"], utc(2025, 6, 4, 14)),
        # No location: all US zones, in summer 14:00-21:00 EDT.
        (utc(2025, 6, 3, 12), US_ZONES, utc(2025, 6, 3, 18)),
        # ...and in winter 13:00-21:00 EST.
        (utc(2025, 1, 7, 12), US_ZONES, utc(2025, 1, 7, 18)),
        # Arizona keeps MST all year: 08:00 MST is 15:00Z in summer and in winter.
        (utc(2025, 7, 1, 13), ["America/Phoenix"], utc(2025, 7, 1, 15)),
        # Spring forward in New York (2025-03-09): 08:00 EDT is 12:00Z, not 13:00Z.
        (utc(2025, 3, 9, 5), ["America/New_York"], utc(2025, 3, 9, 12)),
        # Fall back (2025-11-02): 08:00 EST is 13:00Z.
        (utc(2025, 11, 2, 5), ["America/New_York"], utc(2025, 11, 2, 13)),
        # Europe changes on another day (2025-03-30): Berlin 08:00 CEST is 06:00Z.
        (utc(2025, 3, 30, 0), ["Europe/Berlin"], utc(2025, 3, 30, 6)),
        # Across a month: 21:30 in Honolulu on 31 January, next 08:00 HST.
        (utc(2025, 2, 1, 7, 30), ["Pacific/Honolulu"], utc(2025, 2, 1, 18)),
    ],
)
def test_first_allowed_instant(now: datetime, zones: list[str], expected: datetime) -> None:
    assert first_allowed(now, zones, WINDOW) == expected


def test_designated_inconvenient_times_are_honoured() -> None:
    working_hours = InconvenientTime(time(9), time(17), ("mon", "tue", "wed", "thu", "fri"))
    # Tuesday 10:30 in Los Angeles: inconvenient until 17:00 PT.
    now = utc(2025, 6, 3, 17, 30)
    found = first_allowed(
        now, ["America/Los_Angeles"], WINDOW, designated=[working_hours],
        designated_zone="America/Los_Angeles",
    )  # fmt: skip
    assert found == utc(2025, 6, 4, 0)  # 17:00 PDT
    # On Saturday the designation does not apply.
    saturday = utc(2025, 6, 7, 17, 30)
    assert (
        first_allowed(saturday, ["America/Los_Angeles"], WINDOW, designated=[working_hours])
        == saturday
    )


def test_a_designation_over_midnight_and_restricted_days() -> None:
    nights = InconvenientTime(time(20), time(10))  # "don't call me 8 pm to 10 am"
    now = utc(2025, 6, 3, 12)  # 08:00 ET
    assert first_allowed(now, ["America/New_York"], WINDOW, designated=[nights]) == utc(
        2025, 6, 3, 14
    )

    def sundays(_zone: str, day: date) -> bool:
        return day.weekday() == 6

    saturday_night = utc(2025, 6, 8, 1, 30)  # Saturday 21:30 ET
    assert first_allowed(saturday_night, ["America/New_York"], WINDOW, restricted_day=sundays) == (
        utc(2025, 6, 9, 12)  # Monday 08:00 ET
    )


def test_nothing_allowed_within_the_search_is_none() -> None:
    always = InconvenientTime(time(0), time(0))  # all day, every day
    assert first_allowed(utc(2025, 6, 3), ["America/New_York"], WINDOW, designated=[always]) is None


def test_interval_helpers() -> None:
    a = [(utc(2025, 1, 1, 8), utc(2025, 1, 1, 12)), (utc(2025, 1, 1, 14), utc(2025, 1, 1, 18))]
    b = [(utc(2025, 1, 1, 10), utc(2025, 1, 1, 15))]
    assert intersect(a, b) == [
        (utc(2025, 1, 1, 10), utc(2025, 1, 1, 12)),
        (utc(2025, 1, 1, 14), utc(2025, 1, 1, 15)),
    ]
    assert subtract(a, b) == [
        (utc(2025, 1, 1, 8), utc(2025, 1, 1, 10)),
        (utc(2025, 1, 1, 15), utc(2025, 1, 1, 18)),
    ]


ZONES = st.lists(
    st.sampled_from([*US_ZONES, "America/Puerto_Rico", "Europe/London", "Australia/Sydney"]),
    min_size=1, max_size=4, unique=True,
)  # fmt: skip
INSTANTS = st.datetimes(
    min_value=datetime(2024, 1, 1),  # noqa: DTZ001 (hypothesis bounds are naive)
    max_value=datetime(2027, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)


def _inside_window(at: datetime, zone: str) -> bool:
    local = at.astimezone(ZoneInfo(zone)).time()
    return WINDOW.start <= local < WINDOW.end


@settings(max_examples=300, deadline=None)
@given(now=INSTANTS, zones=ZONES)
def test_the_answer_is_inside_the_window_in_every_zone(now: datetime, zones: list[str]) -> None:
    found = first_allowed(now, zones, WINDOW)
    if found is None:  # zones far apart (Sydney and Honolulu) may share no hour at all
        return
    assert found >= now
    assert all(_inside_window(found, zone) for zone in zones)


@settings(max_examples=300, deadline=None)
@given(now=INSTANTS, zones=ZONES)
def test_not_before_is_not_deferred_again(now: datetime, zones: list[str]) -> None:
    found = first_allowed(now, zones, WINDOW)
    if found is None:
        return
    assert first_allowed(found, zones, WINDOW) == found


@settings(max_examples=200, deadline=None)
@given(now=INSTANTS, zones=ZONES, step=st.integers(min_value=1, max_value=600))
def test_no_earlier_instant_was_allowed(now: datetime, zones: list[str], step: int) -> None:
    """Sampled every ``step`` minutes between now and the answer: nothing was open before."""
    found = first_allowed(now, zones, WINDOW)
    if found is None:
        return
    probe = now
    while probe < found:
        assert not all(_inside_window(probe, zone) for zone in zones)
        probe += timedelta(minutes=step)


def test_an_unknown_subdivision_has_its_countrys_holidays_an_uncovered_country_none() -> None:
    from datetime import date as day

    from outreach.compliance.timing import public_holidays

    assert day(2026, 7, 4) in public_holidays("US-XX", 2026)  # the country's Independence Day
    assert day(2026, 7, 4) in public_holidays("US-MA", 2026)
    assert len(public_holidays("ZZ", 2026)) == 0
