"""The area codes' states, made of phonenumbers' geocoder, and read without it."""

from __future__ import annotations

import subprocess
import sys

import phonenumbers
import pytest

from outreach.compliance import area_codes
from outreach.compliance.area_code_states import AREA_CODE_STATES, EXCHANGE_STATES
from outreach.compliance.zones import jurisdiction_of_number
from tests.conftest import REPO


def test_the_table_is_the_installed_geocoders() -> None:
    """After an upgrade of phonenumbers, `python -m outreach.compliance.area_codes` writes
    the table again."""
    assert area_codes.build() == (AREA_CODE_STATES, EXCHANGE_STATES)


def _geocoded(number: str) -> str | None:
    """The state the geocoder's own place for ``number`` names."""
    from phonenumbers import geocoder

    parsed = phonenumbers.parse(number, None)
    country = phonenumbers.region_code_for_number(parsed)
    place = geocoder.description_for_number(parsed, "en")
    return area_codes.subdivision_of_place(place, country) if country and place else None


def test_every_exchange_the_geocoder_places_in_a_state_is_in_that_state() -> None:
    from phonenumbers.geodata import GEOCODE_DATA

    numbers = ["+" + (prefix + "2345678")[:11] for prefix in GEOCODE_DATA
               if prefix.startswith("1") and len(prefix) >= 4]  # fmt: skip
    placed = [(number, _geocoded(number)) for number in numbers]
    wrong = [(n, s, jurisdiction_of_number(n)) for n, s in placed
             if s is not None and jurisdiction_of_number(n) != s]  # fmt: skip
    assert len(placed) > 30_000
    assert wrong == []


@pytest.mark.parametrize(
    ("number", "state"),
    [
        ("+12194551234", "US-IN"),  # Gary, on Central time: Indiana's zones are both
        ("+18502001234", "US-FL"),  # the panhandle, on Central time
        ("+13105550100", "US-CA"),
        ("+12016312345", "US-NY"),  # an exchange of a New Jersey area code placed in New York
        ("+12015550100", "US-NJ"),
        ("+12042345678", "CA-MB"),
        ("+18002345678", None),  # toll-free
    ],
)
def test_a_numbers_state(number: str, state: str | None) -> None:
    assert jurisdiction_of_number(number) == state


@pytest.mark.parametrize("number", ["+442079460000", "+525512345678", "+61293744000"])
def test_a_number_beyond_north_america_is_placed_by_the_geocoder(number: str) -> None:
    assert jurisdiction_of_number(number) == _geocoded(number)


def test_a_north_american_numbers_state_is_read_without_the_geocoder() -> None:
    """The geocoder's tables take about 100 MB in each process that loads them: a plan or
    dispatch process reading North American numbers does not."""
    code = (
        "import sys\n"
        "from outreach.compliance.zones import jurisdiction_of_number\n"
        "assert jurisdiction_of_number('+12194551234') == 'US-IN'\n"
        "print('phonenumbers.geocoder' in sys.modules, 'phonenumbers.geodata' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, check=True)  # fmt: skip
    assert done.stdout.split() == ["False", "False"]
