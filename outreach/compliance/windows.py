"""Contact windows: when, in every zone the debtor may be in, contact is allowed.

Reg F 1006.6(b)(1)(i) makes 08:00-21:00 local time the default convenient hours; where the
debtor may be in several zones (an address in one, a phone's area code in another), only
times convenient in all of them are (comment 6(b)(1)(i)-1). Times the debtor said are
inconvenient, and days a jurisdiction restricts, are taken out as well.

The computation works on intervals of UTC instants: each zone's allowed hours are turned
into UTC intervals day by day with zoneinfo, so daylight-saving changes fall where they
really are; the zones' intervals are intersected and the designated times subtracted. The
first instant of the result at or after ``now`` is ``not_before``. Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from outreach.records import quick_init

Interval = tuple[datetime, datetime]  # [start, end) in UTC

# How far ahead to look for an allowed instant before giving up.
SEARCH_DAYS = 21
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class LocalWindow:
    """Allowed local hours, ``[start, end)``: 08:00 up to, not including, 21:00."""

    start: time = time(8)
    end: time = time(21)


@quick_init
@dataclass(frozen=True)
class InconvenientTime:
    """A debtor-designated inconvenient time: these local hours on these weekdays."""

    start: time
    end: time
    days: tuple[str, ...] = WEEKDAYS  # mon..sun; all by default


def first_allowed(
    now: datetime,
    zones: Sequence[str],
    window: LocalWindow,
    *,
    designated: Sequence[InconvenientTime] = (),
    designated_zone: str | None = None,
    restricted_day: Callable[[str, date], bool] | None = None,
    search_days: int = SEARCH_DAYS,
) -> datetime | None:
    """The first instant at or after ``now`` allowed in every zone, or None within the search.

    ``designated`` times are read in ``designated_zone`` (the debtor's own zone; by default
    each candidate zone, which is the stricter reading). ``restricted_day(zone, day)`` says
    whether a local date is closed (Sundays or holidays where a jurisdiction restricts them).
    """
    if not zones:
        raise ValueError("at least one candidate zone is needed")
    now = now.astimezone(UTC)
    first_day = now - timedelta(days=1)  # zones behind UTC are still on the previous date
    allowed = allowed_intervals(zones[0], first_day, search_days + 2, window, restricted_day)
    for zone in zones[1:]:
        allowed = intersect(
            allowed, allowed_intervals(zone, first_day, search_days + 2, window, restricted_day)
        )
    if designated:
        for zone in [designated_zone] if designated_zone else zones:
            blocked = designated_intervals(zone, first_day, search_days + 2, designated)
            allowed = subtract(allowed, blocked)
    horizon = now + timedelta(days=search_days)
    for start, end in allowed:
        if end > now and start < horizon:
            return max(start, now)
    return None


def allowed_intervals(
    zone_name: str,
    around: datetime,
    days: int,
    window: LocalWindow,
    restricted_day: Callable[[str, date], bool] | None = None,
) -> list[Interval]:
    """The zone's allowed hours as UTC intervals, for ``days`` local dates from ``around``."""
    zone = ZoneInfo(zone_name)
    first = around.astimezone(zone).date()
    intervals = []
    for offset in range(days + 1):
        day = first + timedelta(days=offset)
        if restricted_day is not None and restricted_day(zone_name, day):
            continue
        intervals.append((_instant(day, window.start, zone), _instant(day, window.end, zone)))
    return [(s, e) for s, e in intervals if s < e]


def designated_intervals(
    zone_name: str, around: datetime, days: int, designated: Iterable[InconvenientTime]
) -> list[Interval]:
    zone = ZoneInfo(zone_name)
    first = around.astimezone(zone).date()
    blocked: list[Interval] = []
    for offset in range(days + 1):
        day = first + timedelta(days=offset)
        weekday = WEEKDAYS[day.weekday()]
        for item in designated:
            if weekday not in item.days:
                continue
            start = _instant(day, item.start, zone)
            # An end at or before the start runs past midnight ("22:00 to 09:00").
            end_day = day if item.end > item.start else day + timedelta(days=1)
            blocked.append((start, _instant(end_day, item.end, zone)))
    return normalize(blocked)


def _instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """A local wall-clock time as a UTC instant.

    A time that does not exist (skipped by a spring-forward change) is read with the offset
    before the change, which lands just after the gap; a repeated time (fall back) is read
    as its first occurrence (fold 0). US changes happen at 02:00, away from 08:00 and 21:00.
    """
    local = datetime.combine(day, at, tzinfo=zone)
    return local.astimezone(UTC)


def normalize(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, merged, without empty intervals."""
    merged: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[0] < i[1]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def intersect(left: Sequence[Interval], right: Sequence[Interval]) -> list[Interval]:
    a, b = normalize(left), normalize(right)
    result: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            result.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return result


def subtract(allowed: Sequence[Interval], blocked: Sequence[Interval]) -> list[Interval]:
    result: list[Interval] = []
    cuts = normalize(blocked)
    for start, end in normalize(allowed):
        cursor = start
        for cut_start, cut_end in cuts:
            if cut_end <= cursor or cut_start >= end:
                continue
            if cut_start > cursor:
                result.append((cursor, cut_start))
            cursor = max(cursor, cut_end)
            if cursor >= end:
                break
        if cursor < end:
            result.append((cursor, end))
    return result
