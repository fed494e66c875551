"""Where the debtor may be: candidate time zones and jurisdictions, each with its source.

Comment 6(b)(1)(i)-1: with conflicting or ambiguous location information, contact only at
times convenient in *every* place the debtor might be. The candidates are the address's
zone (and the state's every zone when the address's is unknown or keeps none of the
state's clocks), each phone's zone (as recorded, or inferred from its number) and every zone
of the state its number belongs to (where that is another state than the account's), and any
other signal; with none at all, every zone of the country (the rule set's ``all_zones``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo, available_timezones

import phonenumbers
from phonenumbers import timezone as phone_timezones

from outreach.compliance.area_code_states import AREA_CODE_STATES, EXCHANGE_STATES
from outreach.compliance.area_codes import state_of, subdivision_of_place
from outreach.compliance.facts import Debtor
from outreach.records import quick_init

# A number that maps to more zones than this is not geographic (toll-free, some mobiles in
# countries with one plan): it says nothing about where the debtor is.
MAX_ZONES_PER_NUMBER = 4


class ZoneSignal(NamedTuple):
    """A named tuple, so that a decision's ``zones`` (zone, source) pairs are these as they
    are; and one is built for every phone of every decision."""

    zone: str
    source: str  # "address", "phone +12125550101 (area code)", "all US zones"...


@quick_init
@dataclass(frozen=True)
class Candidates:
    signals: tuple[ZoneSignal, ...]
    location_unknown: bool  # no signal at all: the country's every zone

    @property
    def zones(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.zone for s in self.signals))


Region = tuple[str, tuple[str, ...]]  # a state and its zones: ("US-IN", (...))


def candidate_zones(
    debtor: Debtor,
    country_zones: tuple[str, ...],
    region: Region = ("", ()),
    phone_regions: Mapping[str, Region] | None = None,
) -> Candidates:
    """``region`` is the debtor's state and its zones: where the address's own zone is
    unknown, or keeps the clock of none of the state's zones (an account in New York with
    a Pacific zone), every zone of the state is a candidate. ``phone_regions`` gives, by
    number, the state a phone's number belongs to and its zones, each a candidate too: the
    number's own zone is one exchange's, and a state's area code may span two zones."""
    signals: list[ZoneSignal] = []
    if debtor.timezone:
        signals.append(ZoneSignal(debtor.timezone, "address"))
    if not debtor.timezone or not keeps_a_clock_of(debtor.timezone, region[1]):
        signals.extend(ZoneSignal(zone, f"state {region[0]}") for zone in region[1])
    signals.extend(ZoneSignal(zone, "other location signal") for zone in debtor.other_timezones)
    for phone in debtor.phones:
        if phone.timezone:
            signals.append(ZoneSignal(phone.timezone, f"phone {phone.number} (recorded)"))
        else:
            for zone in zones_of_number(phone.number):
                signals.append(ZoneSignal(zone, f"phone {phone.number} (area code)"))
        state, zones = (phone_regions or {}).get(phone.number, ("", ()))
        signals.extend(ZoneSignal(zone, f"state {state} of phone {phone.number}") for zone in zones)
    if signals:
        return Candidates(tuple(signals), location_unknown=False)
    return Candidates(
        tuple(ZoneSignal(zone, "no location known: every zone") for zone in country_zones),
        location_unknown=True,
    )


# The span over which two zones must keep the same clock to count as one (the rule set's
# decisions are for these years; zoneinfo carries each zone's last rule on past its data).
SAME_CLOCK_FROM = datetime(2020, 1, 1, tzinfo=UTC)
SAME_CLOCK_UNTIL = datetime(2040, 1, 1, tzinfo=UTC)
# Between two samples a zone changes its offset once at most (twice a year, months apart).
SAMPLE_STEP = timedelta(days=7)


@lru_cache(maxsize=4096)
def keeps_a_clock_of(zone: str, zones: tuple[str, ...]) -> bool:
    """Whether ``zone`` is one of ``zones`` or keeps the same clock as one of them (a
    state's list names one zone per clock: Louisville's America/Kentucky/Louisville keeps
    Kentucky's Eastern time, as US/Eastern does New York's). Asked for every decision, so
    kept by (zone, state's zones), a few hundred pairs at most."""
    return zone in zones or any(_same_clock(zone, other) for other in zones)


def _same_clock(first: str, second: str) -> bool:
    """The two zones' UTC offsets agree from 2020 to 2040: at every weekly sample, and
    where they change, at the same instant."""
    a, b = ZoneInfo(first), ZoneInfo(second)
    at = SAME_CLOCK_FROM
    while at < SAME_CLOCK_UNTIL:
        after = at + SAMPLE_STEP
        if _offset(a, at) != _offset(b, at):
            return False
        if _offset(a, at) != _offset(a, after) and _change(a, at, after) != _change(b, at, after):
            return False  # a change of one only shows as a difference at the next sample
        at = after
    return True


def _offset(zone: ZoneInfo, at: datetime) -> timedelta | None:
    return at.astimezone(zone).utcoffset()


def _change(zone: ZoneInfo, start: datetime, end: datetime) -> datetime:
    """The instant, to the second, at which the zone's offset changes between the two."""
    before = _offset(zone, start)
    while end - start > timedelta(seconds=1):
        middle = start + (end - start) / 2
        if _offset(zone, middle) == before:
            start = middle
        else:
            end = middle
    return end.replace(microsecond=0)


# Numbers are looked up again on every plan and send; a book has one or two a debtor, so
# the answers are kept for the most recent numbers only (a million would take ~200 MB).
NUMBERS_KEPT = 65_536


@lru_cache(maxsize=NUMBERS_KEPT)
def zones_of_number(number: str) -> tuple[str, ...]:
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return ()
    known = _known_zones()
    zones = tuple(z for z in phone_timezones.time_zones_for_number(parsed) if z in known)
    return zones if len(zones) <= MAX_ZONES_PER_NUMBER else ()


@cache
def _known_zones() -> set[str]:
    """The zones this machine's tz database has (``available_timezones`` reads the disk
    each time: about 18 ms)."""
    return available_timezones()


@lru_cache(maxsize=NUMBERS_KEPT)
def jurisdiction_of_number(number: str) -> str | None:
    """The ISO 3166-2 subdivision a geographic number's area code belongs to, if any: from
    the table made of phonenumbers' geocoder for North American numbers (``area_codes``),
    from the geocoder itself for others."""
    if len(number) == 12 and number.startswith("+1") and number[2:].isdigit():
        # A North American number as stored (E.164, checked when it was imported): its area
        # code and exchange are where they stand, and parsing it would cost more (about
        # 50 us) than the rest of its planning's look at its phone.
        return state_of(number[2:], AREA_CODE_STATES, EXCHANGE_STATES)
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    country = phonenumbers.region_code_for_number(parsed)
    if not country:
        return None
    if parsed.country_code == 1:
        return state_of(str(parsed.national_number), AREA_CODE_STATES, EXCHANGE_STATES)
    # The geocoder's place names take about 100 MB: loaded only for a number beyond North
    # America.
    from phonenumbers import geocoder

    place = geocoder.description_for_number(parsed, "en")
    return subdivision_of_place(place, country) if place else None
