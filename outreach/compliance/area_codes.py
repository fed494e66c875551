"""The state each North American area code belongs to, for the zones a phone may be in.

phonenumbers' geocoder names the place of every exchange, but its tables take about 100 MB
once loaded: too much to carry in every plan and dispatch process for the one fact needed,
the state of the number's area code (an area code lies in one state or province). The table
in ``area_code_states.py`` is made from the geocoder's own entries for the area codes
(``python -m outreach.compliance.area_codes`` writes it again after phonenumbers is
upgraded; a test checks that it matches the installed geocoder).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import phonenumbers
import pycountry

TABLE = Path(__file__).with_name("area_code_states.py")


def subdivision_of_place(place: str, country: str) -> str | None:
    """The ISO 3166-2 code of a geocoder's place ("New York, NY", "Massachusetts",
    "Washington State") in ``country``, if it names one."""
    names = subdivisions(country)
    tail = place.rsplit(",", 1)[-1].strip()
    for candidate in (tail, tail.removesuffix(" State"), place.removesuffix(" State")):
        code = names.get(candidate.casefold())
        if code:
            return code
    return None


_SUBDIVISIONS: dict[str, dict[str, str]] = {}


def subdivisions(country: str) -> dict[str, str]:
    """A country's subdivisions by name and by code, lower-cased."""
    found = _SUBDIVISIONS.get(country)
    if found is None:
        found = {}
        for sub in pycountry.subdivisions.get(country_code=country) or ():  # type: ignore[no-untyped-call]
            found[sub.name.casefold()] = sub.code
            found[sub.code.split("-", 1)[1].casefold()] = sub.code
        _SUBDIVISIONS[country] = found
    return found


def build() -> tuple[dict[str, str], dict[str, str]]:
    """From the installed geocoder: each area code's state (its own entry's, or where it
    has none the state most of its exchanges name), and the exchanges (or blocks of them)
    whose entry says otherwise than the longest shorter prefix would ("" for a place that
    names no state): 201-631 is New York's, 867 spans three territories."""
    from phonenumbers.geodata import GEOCODE_DATA

    entries: dict[str, str | None] = {}
    for prefix, places in GEOCODE_DATA.items():
        place = places.get("en")
        if prefix.startswith("1") and len(prefix) >= 4 and place:
            country = _country_of(prefix)
            entries[prefix[1:]] = subdivision_of_place(place, country) if country else None
    areas: dict[str, str] = {}
    named: dict[str, Counter[str]] = {}
    for digits, state in entries.items():
        if len(digits) == 3 and state:
            areas[digits] = state
        elif state:
            named.setdefault(digits[:3], Counter())[state] += 1
    for area, counts in named.items():
        areas.setdefault(area, counts.most_common(1)[0][0])
    exceptions: dict[str, str] = {}
    for digits in sorted((d for d in entries if len(d) > 3), key=len):
        if (entries[digits] or "") != (state_of(digits, areas, exceptions) or ""):
            exceptions[digits] = entries[digits] or ""
    return dict(sorted(areas.items())), dict(sorted(exceptions.items()))


def state_of(digits: str, areas: dict[str, str], exceptions: dict[str, str]) -> str | None:
    """The state of a North American number's national ``digits`` (area code first): its
    longest prefix among ``exceptions``, else its area code's."""
    for length in (6, 5, 4):
        found = exceptions.get(digits[:length])
        if found is not None:
            return found or None
    return areas.get(digits[:3])


def _country_of(prefix: str) -> str | None:
    """The country of the numbers under a geocoder prefix (the US, Canada, a Caribbean
    island...): that of a number under it that phonenumbers takes for valid."""
    for tail in ("0000000", "2000000", "5550000", "2345678"):
        number = "+" + (prefix + tail)[:11]
        try:
            parsed = phonenumbers.parse(number, None)
        except phonenumbers.NumberParseException:
            continue
        country = phonenumbers.region_code_for_number(parsed)
        if country:
            return country
    return None


def write(path: Path = TABLE) -> None:
    areas, exceptions = build()
    lines = [
        '"""Each North American area code\'s state, and the exchanges whose state is another:',
        "made by ``outreach.compliance.area_codes`` from phonenumbers' geocoder (do not edit",
        'by hand)."""',
        "",
        "AREA_CODE_STATES: dict[str, str] = {",
        *(f'    "{area}": "{state}",' for area, state in areas.items()),
        "}",
        "EXCHANGE_STATES: dict[str, str] = {",
        *(f'    "{digits}": "{state}",' for digits, state in exceptions.items()),
        "}",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else TABLE)
