"""Where the debtor may be: candidate time zones and jurisdictions, each with its source.

Comment 6(b)(1)(i)-1: with conflicting or ambiguous location information, contact only at
times convenient in *every* place the debtor might be. The candidates are the address's
zone, each phone's zone (as recorded, or inferred from its number) and, where the account
names no state, every zone of the state its number belongs to, and any other signal; with
none at all, every zone of the country (the rule set's ``all_zones``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import NamedTuple
from zoneinfo import available_timezones

import phonenumbers
import pycountry
from phonenumbers import timezone as phone_timezones

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
    unknown, every zone of the state is a candidate. ``phone_regions`` gives, by number,
    the state a phone's number belongs to and its zones, each a candidate too: the
    number's own zone is one exchange's, and a state's area code may span two zones."""
    signals: list[ZoneSignal] = []
    if debtor.timezone:
        signals.append(ZoneSignal(debtor.timezone, "address"))
    else:
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


# Numbers are looked up again on every plan and send; a book has one or two a debtor, so
# the answers are kept for the most recent numbers only (a million would take ~200 MB).
NUMBERS_KEPT = 65_536


@lru_cache(maxsize=NUMBERS_KEPT)
def zones_of_number(number: str) -> tuple[str, ...]:
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return ()
    known = available_timezones()
    zones = tuple(z for z in phone_timezones.time_zones_for_number(parsed) if z in known)
    return zones if len(zones) <= MAX_ZONES_PER_NUMBER else ()


@lru_cache(maxsize=NUMBERS_KEPT)
def jurisdiction_of_number(number: str) -> str | None:
    """The ISO 3166-2 subdivision a geographic number's area code belongs to, if any."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    # The geocoder's place names take about 100 MB: loaded only when a state is looked up.
    from phonenumbers import geocoder

    country = phonenumbers.region_code_for_number(parsed)
    place = geocoder.description_for_number(parsed, "en")
    if not country or not place:
        return None
    names = _subdivisions(country)
    # "New York, NY" or "Massachusetts" or "Washington State".
    tail = place.rsplit(",", 1)[-1].strip()
    for candidate in (tail, tail.removesuffix(" State"), place.removesuffix(" State")):
        code = names.get(candidate.casefold())
        if code:
            return code
    return None


@cache
def _subdivisions(country: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for sub in pycountry.subdivisions.get(country_code=country) or ():  # type: ignore[no-untyped-call]
        found[sub.name.casefold()] = sub.code
        found[sub.code.split("-", 1)[1].casefold()] = sub.code
    return found
