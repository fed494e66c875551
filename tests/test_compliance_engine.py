"""The compliance engine as a whole: ``evaluate(situation, ruleset)`` against the packaged
rule set, one table per rule.

Every expected instant is written out by hand from the rule text and a calendar (June 2025
starts on a Sunday; US daylight saving ran from 2025-03-09 to 2025-11-02), never computed
by the code under test. The lower layers (window arithmetic, frequency counting) have their
own tests; these check that the rule set, the scope (collector type and jurisdiction), the
blocks and the timing are joined into the right ``Decision``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from outreach.compliance.decision import Decision
from outreach.compliance.engine import evaluate
from outreach.compliance.facts import Contact, Debtor, Email, Event, Phone, Situation
from outreach.compliance.frequency import CLOCK_SKEW, PastContact
from outreach.compliance.rules import RuleSet, load_ruleset
from outreach.compliance.windows import InconvenientTime
from outreach.compliance.zones import keeps_a_clock_of
from outreach.errors import ConfigError

RULES = load_ruleset()

NY = "America/New_York"
CHICAGO = "America/Chicago"
DENVER = "America/Denver"
PHOENIX = "America/Phoenix"
LA = "America/Los_Angeles"
ANCHORAGE = "America/Anchorage"
HONOLULU = "Pacific/Honolulu"

# The debtor's numbers (New Jersey area code 201; their zone is recorded on each phone).
MOBILE = "+12015550101"
LANDLINE = "+12015550102"
WORK = "+12015550103"
OTHER_MOBILE = "+12015550104"
UNKNOWN_LINE = "+12015550105"
# Numbers whose zone is left to the area code.
NYC_MOBILE = "+12125550101"  # Manhattan: Eastern
DENVER_LANDLINE = "+13035550101"  # Denver: Mountain
LA_MOBILE = "+13105550101"  # Los Angeles: Pacific
HONOLULU_MOBILE = "+18085550101"  # Hawaii
PHOENIX_MOBILE = "+16025550101"  # Arizona
# Area codes whose state spans two zones, and whose exchanges phonenumbers places in one
# zone each (Gary, Indiana is on Central time; its 219 numbers are given Eastern).
GARY_MOBILE = "+12194551234"  # Indiana: Indianapolis and Chicago
PANHANDLE_MOBILE = "+18502001234"  # Florida: New York and Chicago
INDIANAPOLIS = "America/Indiana/Indianapolis"
LOUISVILLE = "America/Kentucky/Louisville"  # keeps Kentucky's Eastern time
EL_PASO_MOBILE = "+19155551234"  # Texas, Mountain time
INDIANAPOLIS_MOBILE = "+13175551234"  # Indiana, Eastern time
LOUISVILLE_MOBILE = "+15025551234"  # Kentucky, Eastern time
TOLL_FREE = "+18005550199"  # says nothing about where the debtor is
UK_MOBILE = "+447700900123"  # a British mobile: no zone from the number
EMAIL = "pat@example.net"
OTHER_EMAIL = "pat.other@example.org"
WORK_EMAIL = "pat@employer.example"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")

MULTI_TZ = "REGF_TIME_OUTSIDE_WINDOW_MULTI_TZ"
ALL_US = "REGF_TIME_LOCATION_UNKNOWN_ALL_US_ZONES"
WINDOW = "REGF_TIME_OUTSIDE_WINDOW"
DESIGNATED = "REGF_CONSUMER_DESIGNATED_INCONVENIENT_TIME"
CALL_CAP = "REGF_7IN7_CALL_CAP"
POST_CONVERSATION = "REGF_7IN7_POST_CONVERSATION"
ALLOW: tuple[str, None, list[str]] = ("allow", None, ["OK"])
CASE = ("asked", "verdict", "not_before", "codes")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def local(zone: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone))  # type: ignore[misc]


def ny(*args: int) -> datetime:
    return local(NY, *args)


def standard_phones(zone: str | None, consent: bool = True) -> tuple[Phone, ...]:
    return (
        Phone(MOBILE, "mobile", zone, consent),
        Phone(LANDLINE, "landline", zone, consent),
        Phone(WORK, "work", zone, consent),
        Phone(OTHER_MOBILE, "mobile", zone, consent),
        Phone(UNKNOWN_LINE, "unknown", zone, consent),
    )


STANDARD_EMAILS = (
    Email(EMAIL, "personal"),
    Email(OTHER_EMAIL, "personal"),
    Email(WORK_EMAIL, "work"),
)


def debtor(
    zone: str | None = NY,
    *,
    other: Sequence[str] = (),
    phones: tuple[Phone, ...] | None = None,
    emails: tuple[Email, ...] = STANDARD_EMAILS,
    inconvenient: Sequence[InconvenientTime] = (),
    attorney: bool = False,
    consent: bool = True,
) -> Debtor:
    """A debtor whose phones carry their own zone (so one zone unless the test adds more)."""
    return Debtor(
        timezone=zone,
        other_timezones=tuple(other),
        phones=standard_phones(zone, consent) if phones is None else phones,
        emails=emails,
        inconvenient_times=tuple(inconvenient),
        represented_by_attorney=attorney,
    )


def resident(zone: str, number: str) -> Debtor:
    """A debtor of the state ``number`` belongs to, living in ``zone`` (a number of another
    state would make that state's zones candidates too)."""
    return debtor(zone, phones=(Phone(number, "mobile", zone, True),))


def situation(
    now: datetime,
    *,
    channel: str = "voice",
    to: str | None = None,
    debts: Sequence[str] = ("D1",),
    automated: bool = False,
    jurisdiction: str = "US-NJ",
    collector: str = "third_party",
    who: Debtor | None = None,
    history: Iterable[PastContact] = (),
    events: Iterable[Event] = (),
) -> Situation:
    """A manual call about debt D1 to the debtor's mobile, by an agency, in New Jersey."""
    if to is None:
        to = EMAIL if channel == "email" else MOBILE
    return Situation(
        now=now,
        jurisdiction=jurisdiction,
        collector=collector,
        debtor=debtor() if who is None else who,
        contact=Contact(channel, to, tuple(debts), automated),
        history=tuple(history),
        events=tuple(events),
    )


def call(
    at: datetime,
    outcome: str = "no_answer",
    *,
    to: str = MOBILE,
    debts: Sequence[str] = ("D1",),
    direction: str = "outbound",
    channel: str = "voice",
    automated: bool = False,
) -> PastContact:
    return PastContact(at, channel, direction, tuple(debts), outcome, to, automated)


def text(at: datetime, outcome: str = "delivered", **kw: Any) -> PastContact:
    return call(at, outcome, channel="sms", **kw)


def mail(at: datetime, outcome: str = "delivered", **kw: Any) -> PastContact:
    return call(at, outcome, channel="email", **{"to": EMAIL, **kw})


def event(
    at: datetime,
    kind: str,
    *,
    channel: str | None = None,
    address: str | None = None,
    debts: Sequence[str] = (),
    elsewhere: bool = False,
) -> Event:
    return Event(at, kind, channel, address, tuple(debts), elsewhere)


def daily_calls(
    days: Iterable[int], zone: str = NY, hour: int = 10, **kw: Any
) -> list[PastContact]:
    """One call on each of these June 2025 dates, at ``hour`` local time."""
    return [call(local(zone, 2025, 6, day, hour), **kw) for day in days]


def case(
    name: str,
    asked: Situation,
    verdict: str,
    not_before: datetime | None,
    codes: list[str],
) -> Any:
    return pytest.param(asked, verdict, not_before, codes, id=name)


def allowed(name: str, asked: Situation) -> Any:
    return case(name, asked, *ALLOW)


def check(
    asked: Situation,
    verdict: str,
    not_before: datetime | None,
    codes: list[str],
    rules: RuleSet = RULES,
) -> Decision:
    decision = evaluate(asked, rules)
    assert (decision.verdict, decision.not_before, decision.codes) == (verdict, not_before, codes)
    if verdict == "defer":
        assert decision.not_before is not None and decision.not_before.tzinfo is UTC
    return decision


def outcomes(decision: Decision) -> dict[str, str]:
    return {c.code: c.outcome for c in decision.checks}


# --- contact windows ---------------------------------------------------------------------

UK_PHONE = Phone(UK_MOBILE, "mobile", None, True)
ONLY_TOLL_FREE = (Phone(TOLL_FREE, "mobile", None, True),)
NOWHERE = debtor(None, phones=ONLY_TOLL_FREE, emails=())
ET_PT = debtor(LA, phones=(Phone(NYC_MOBILE, "mobile", None, True),))
ET_MT = debtor(
    None,
    phones=(
        Phone(NYC_MOBILE, "mobile", None, True),
        Phone(DENVER_LANDLINE, "landline", None, True),
    ),
)


def nowhere(now: datetime, jurisdiction: str = "US") -> Situation:
    return situation(now, to=TOLL_FREE, jurisdiction=jurisdiction, who=NOWHERE)


WINDOW_CASES = [
    case("0759-edt-waits-for-0800", situation(ny(2025, 6, 3, 7, 59)),
         "defer", utc(2025, 6, 3, 12), [WINDOW]),
    allowed("0800-edt-is-open", situation(ny(2025, 6, 3, 8))),
    allowed("205959-edt-is-open", situation(ny(2025, 6, 3, 20, 59, 59))),
    case("2100-edt-waits-for-next-morning", situation(ny(2025, 6, 3, 21)),
         "defer", utc(2025, 6, 4, 12), [WINDOW]),
    case("winter-0700-est-waits-for-0800-est", situation(ny(2025, 1, 7, 7)),
         "defer", utc(2025, 1, 7, 13), [WINDOW]),
    case("texts-too", situation(ny(2025, 6, 3, 6, 30), channel="sms"),
         "defer", utc(2025, 6, 3, 12), [WINDOW]),
    case("emails-too", situation(ny(2025, 6, 3, 22), channel="email"),
         "defer", utc(2025, 6, 4, 12), [WINDOW]),
    case("honolulu-0700-hst", situation(
        local(HONOLULU, 2025, 6, 3, 7), jurisdiction="US-HI", to=HONOLULU_MOBILE,
        who=resident(HONOLULU, HONOLULU_MOBILE)),
        "defer", utc(2025, 6, 3, 18), [WINDOW]),
    case("phoenix-keeps-mst-in-july", situation(
        utc(2025, 7, 1, 14, 59), jurisdiction="US-AZ", to=PHOENIX_MOBILE,
        who=resident(PHOENIX, PHOENIX_MOBILE)),
        "defer", utc(2025, 7, 1, 15), [WINDOW]),
    # Reg F comment 6(b)(1)(i)-1: Eastern mobile, Pacific address: 11:00-21:00 ET.
    case("regf-example-et-pt-opens-1100-et", situation(
        ny(2025, 6, 3, 10, 30), to=NYC_MOBILE, jurisdiction="US-CA", who=ET_PT),
        "defer", utc(2025, 6, 3, 15), [MULTI_TZ]),
    allowed("regf-example-et-pt-open-at-2059-et", situation(
        ny(2025, 6, 3, 20, 59), to=NYC_MOBILE, jurisdiction="US-CA", who=ET_PT)),
    case("regf-example-et-pt-closes-2100-et", situation(
        ny(2025, 6, 3, 21), to=NYC_MOBILE, jurisdiction="US-CA", who=ET_PT),
        "defer", utc(2025, 6, 4, 15), [MULTI_TZ]),
    # Eastern mobile, Mountain landline: 10:00-21:00 ET.
    case("regf-example-et-mt-opens-1000-et", situation(
        ny(2025, 6, 3, 9), to=NYC_MOBILE, jurisdiction="US", who=ET_MT),
        "defer", utc(2025, 6, 3, 14), [MULTI_TZ]),
    allowed("regf-example-et-mt-open-at-1000-et", situation(
        ny(2025, 6, 3, 10), to=NYC_MOBILE, jurisdiction="US", who=ET_MT)),
    case("regf-example-et-mt-closes-2100-et", situation(
        ny(2025, 6, 3, 21), to=NYC_MOBILE, jurisdiction="US", who=ET_MT),
        "defer", utc(2025, 6, 4, 14), [MULTI_TZ]),
    # No location at all: every US zone; summer 14:00-21:00 EDT, winter 13:00-21:00 EST.
    case("all-us-zones-summer-opens-1400-edt", nowhere(utc(2025, 6, 3, 12)),
         "defer", utc(2025, 6, 3, 18), [ALL_US]),
    allowed("all-us-zones-summer-open-at-1400-edt", nowhere(utc(2025, 6, 3, 18))),
    allowed("all-us-zones-summer-open-at-2059-edt", nowhere(utc(2025, 6, 4, 0, 59))),
    case("all-us-zones-summer-closes-2100-edt", nowhere(utc(2025, 6, 4, 1)),
         "defer", utc(2025, 6, 4, 18), [ALL_US]),
    case("all-us-zones-winter-opens-1300-est", nowhere(utc(2025, 1, 7, 12)),
         "defer", utc(2025, 1, 7, 18), [ALL_US]),
    allowed("all-us-zones-winter-open-at-2059-est", nowhere(utc(2025, 1, 8, 1, 59))),
    case("all-us-zones-winter-closes-2100-est", nowhere(utc(2025, 1, 8, 2)),
         "defer", utc(2025, 1, 8, 18), [ALL_US]),
    # The state is known, the zone is not: every zone of the state (Arizona: Phoenix and
    # the Navajo Nation on Denver time; in summer 08:00 MST to 21:00 MDT).
    case("state-us-az-summer-opens-0800-mst", nowhere(utc(2025, 6, 3, 14, 30), "US-AZ"),
         "defer", utc(2025, 6, 3, 15), [MULTI_TZ]),
    allowed("state-us-az-summer-open-at-2059-mdt", nowhere(utc(2025, 6, 4, 2, 59), "US-AZ")),
    case("state-us-az-summer-closes-2100-mdt", nowhere(utc(2025, 6, 4, 3), "US-AZ"),
         "defer", utc(2025, 6, 4, 15), [MULTI_TZ]),
    case("state-us-az-winter-opens-0800-mst", nowhere(utc(2025, 1, 7, 14, 30), "US-AZ"),
         "defer", utc(2025, 1, 7, 15), [MULTI_TZ]),
    allowed("state-us-az-winter-open-at-2030-mst", nowhere(utc(2025, 1, 8, 3, 30), "US-AZ")),
    case("state-us-tx-opens-0800-mdt", nowhere(utc(2025, 6, 3, 13, 30), "US-TX"),
         "defer", utc(2025, 6, 3, 14), [MULTI_TZ]),
    case("state-us-ca-one-zone", nowhere(utc(2025, 6, 3, 14), "US-CA"),
         "defer", utc(2025, 6, 3, 15), [WINDOW]),
    # The state's zone and a phone's area code together.
    case("state-zone-and-denver-area-code", situation(
        ny(2025, 6, 3, 9, 30), to=DENVER_LANDLINE,
        who=debtor(None, phones=(Phone(DENVER_LANDLINE, "landline", None, True),))),
        "defer", utc(2025, 6, 3, 14), [MULTI_TZ]),
    # The account names no state: every zone of the state a number belongs to, whatever
    # zone the number itself was given (comment 6(b)(1)(i)-1, ambiguous information).
    case("no-state-indiana-number-0730-cdt-waits", situation(
        ny(2025, 6, 3, 8, 30), channel="sms", to=GARY_MOBILE, jurisdiction="US",
        who=debtor(None, phones=(Phone(GARY_MOBILE, "mobile", None, True),))),
        "defer", utc(2025, 6, 3, 13), [MULTI_TZ]),
    case("no-state-indiana-number-with-eastern-recorded-0730-cdt-waits", situation(
        ny(2025, 6, 3, 8, 30), to=GARY_MOBILE, jurisdiction="US",
        who=debtor(None, phones=(Phone(GARY_MOBILE, "mobile", NY, True),))),
        "defer", utc(2025, 6, 3, 13), [MULTI_TZ]),
    case("no-state-florida-number-2130-edt-waits", situation(
        local(CHICAGO, 2025, 6, 3, 20, 30), channel="sms", to=PANHANDLE_MOBILE,
        jurisdiction="US",
        who=debtor(None, phones=(Phone(PANHANDLE_MOBILE, "mobile", CHICAGO, True),))),
        "defer", utc(2025, 6, 4, 13), [MULTI_TZ]),
    case("no-state-but-an-address-zone-indiana-number", situation(
        local(CHICAGO, 2025, 6, 3, 7, 30), to=GARY_MOBILE, jurisdiction="US",
        who=debtor(NY, phones=(Phone(GARY_MOBILE, "mobile", NY, True),))),
        "defer", utc(2025, 6, 3, 13), [MULTI_TZ]),
    # The account names a state, and a number of another state: that state's every zone
    # too (Gary, Indiana is on Central time; Florida's panhandle too).
    case("ny-account-indiana-number-0730-cdt-waits", situation(
        ny(2025, 6, 3, 8, 30), channel="sms", to=GARY_MOBILE, jurisdiction="US-NY",
        who=debtor(NY, phones=(Phone(GARY_MOBILE, "mobile", None, True),))),
        "defer", utc(2025, 6, 3, 13), [MULTI_TZ]),
    case("tx-account-florida-number-2130-edt-waits", situation(
        local(CHICAGO, 2025, 6, 3, 20, 30), channel="sms", to=PANHANDLE_MOBILE,
        jurisdiction="US-TX",
        who=debtor(CHICAGO, phones=(Phone(PANHANDLE_MOBILE, "mobile", CHICAGO, True),))),
        "defer", utc(2025, 6, 4, 13), [MULTI_TZ]),
    # A number of the account's own state adds nothing: the account's zone is where in
    # the state the debtor lives (El Paso, on Mountain time; Indianapolis and Louisville,
    # on Eastern time, the latter under a zone name the state's list does not give).
    allowed("el-paso-account-and-number-2030-mdt", situation(
        local(DENVER, 2025, 6, 3, 20, 30), channel="sms", to=EL_PASO_MOBILE,
        jurisdiction="US-TX",
        who=debtor(DENVER, phones=(Phone(EL_PASO_MOBILE, "mobile", None, True),)))),
    allowed("indianapolis-account-and-number-0800-edt", situation(
        local(INDIANAPOLIS, 2025, 6, 3, 8), channel="sms", to=INDIANAPOLIS_MOBILE,
        jurisdiction="US-IN",
        who=debtor(INDIANAPOLIS, phones=(Phone(INDIANAPOLIS_MOBILE, "mobile", None, True),)))),
    allowed("louisville-account-and-number-0800-edt", situation(
        local(LOUISVILLE, 2025, 6, 3, 8), channel="sms", to=LOUISVILLE_MOBILE,
        jurisdiction="US-KY",
        who=debtor(LOUISVILLE, phones=(Phone(LOUISVILLE_MOBILE, "mobile", None, True),)))),
    # The account's zone is none of its state's: the state's zones are weighed too.
    case("ny-account-pacific-zone-2030-pdt-waits", situation(
        local(LA, 2025, 6, 3, 20, 30), channel="sms", to=LA_MOBILE, jurisdiction="US-NY",
        who=debtor(LA, phones=(Phone(LA_MOBILE, "mobile", None, True),))),
        "defer", utc(2025, 6, 4, 15), [MULTI_TZ]),
    allowed("ny-account-pacific-zone-1100-edt", situation(
        local(LA, 2025, 6, 3, 8), to=LA_MOBILE, jurisdiction="US-NY",
        who=debtor(LA, phones=(Phone(LA_MOBILE, "mobile", None, True),)))),
    case("other-location-signal-denver", situation(
        ny(2025, 6, 3, 9, 30), who=debtor(NY, other=[DENVER])),
        "defer", utc(2025, 6, 3, 14), [MULTI_TZ]),
    # New York, London and Sydney share no hour: blocked, and the window says so (the
    # debtor designated no inconvenient time).
    case("zones-that-share-no-hour", situation(
        ny(2025, 6, 3, 12), who=debtor(NY, other=["Europe/London", "Australia/Sydney"])),
        "block", None, [WINDOW]),
    # A zone recorded on the phone wins over its area code's (a Florida panhandle number
    # given Eastern time, in Florida)...
    allowed("recorded-phone-zone-beats-area-code", situation(
        ny(2025, 6, 3, 8, 30), to=PANHANDLE_MOBILE, jurisdiction="US-FL",
        who=debtor(NY, phones=(Phone(PANHANDLE_MOBILE, "mobile", NY, True),)))),
    # ...but not over its state's zones where that is another state than the account's.
    case("recorded-phone-zone-and-its-states-zones", situation(
        ny(2025, 6, 3, 8, 30), to=LA_MOBILE,
        who=debtor(NY, phones=(Phone(LA_MOBILE, "mobile", NY, True),))),
        "defer", utc(2025, 6, 3, 15), [MULTI_TZ]),
]  # fmt: skip


@pytest.mark.parametrize(CASE, WINDOW_CASES)
def test_contact_windows(
    asked: Situation, verdict: str, not_before: datetime | None, codes: list[str]
) -> None:
    check(asked, verdict, not_before, codes)


def test_the_candidate_zones_are_reported_with_their_source() -> None:
    decision = evaluate(
        situation(ny(2025, 6, 3, 10, 30), to=NYC_MOBILE, jurisdiction="US-CA", who=ET_PT), RULES
    )
    assert decision.zones == (
        (LA, "address"),
        (NY, f"phone {NYC_MOBILE} (area code)"),
        (NY, f"state US-NY of phone {NYC_MOBILE}"),
    )
    indiana = debtor(None, phones=(Phone(GARY_MOBILE, "mobile", None, True),))
    split = evaluate(situation(ny(2025, 6, 3, 12), to=GARY_MOBILE, jurisdiction="US",
                               who=indiana), RULES)  # fmt: skip
    assert split.zones == (
        (NY, f"phone {GARY_MOBILE} (area code)"),
        (INDIANAPOLIS, f"state US-IN of phone {GARY_MOBILE}"),
        (CHICAGO, f"state US-IN of phone {GARY_MOBILE}"),
    )
    assert split.jurisdictions == ("US", "US-IN")
    # A number of another state than the account's, and an address zone outside it.
    elsewhere = debtor(LA, phones=(Phone(GARY_MOBILE, "mobile", None, True),))
    both = evaluate(situation(ny(2025, 6, 3, 12), to=GARY_MOBILE, jurisdiction="US-NY",
                              who=elsewhere), RULES)  # fmt: skip
    assert both.zones == (
        (LA, "address"),
        (NY, "state US-NY"),
        (NY, f"phone {GARY_MOBILE} (area code)"),
        (INDIANAPOLIS, f"state US-IN of phone {GARY_MOBILE}"),
        (CHICAGO, f"state US-IN of phone {GARY_MOBILE}"),
    )
    assert both.jurisdictions == ("US-NY",)  # the account's state alone gives the rules
    unknown = evaluate(nowhere(utc(2025, 6, 3, 12)), RULES)
    assert [zone for zone, _ in unknown.zones] == [
        NY, CHICAGO, DENVER, PHOENIX, LA, ANCHORAGE, HONOLULU,
    ]  # fmt: skip
    assert {source for _, source in unknown.zones} == {"no location known: every zone"}


@pytest.mark.parametrize(
    ("zone", "state_zones", "kept"),
    [
        (DENVER, (CHICAGO, DENVER), True),  # named in the state's list
        (LOUISVILLE, (NY, CHICAGO), True),  # Kentucky's Eastern time under another name
        ("US/Eastern", (NY,), True),
        (LA, (NY,), False),
        (PHOENIX, (DENVER,), False),  # Mountain time without daylight saving
        ("America/Havana", (NY,), False),  # Eastern offsets, changing at other instants
    ],
)
def test_a_zone_is_the_states_if_it_keeps_one_of_its_clocks(
    zone: str, state_zones: tuple[str, ...], kept: bool
) -> None:
    assert keeps_a_clock_of(zone, state_zones) is kept


# --- designated inconvenient times -------------------------------------------------------

OFFICE_HOURS = InconvenientTime(time(9), time(17), WEEKDAYS)
NIGHTS = InconvenientTime(time(20), time(10))  # every day, past midnight
FRIDAY_NIGHT = InconvenientTime(time(22), time(9), ("fri",))  # Friday 22:00 to Saturday 09:00
MORNINGS = InconvenientTime(time(8), time(10))
ALWAYS = InconvenientTime(time(0), time(0))  # all day, every day
LA_OFFICE = debtor(LA, inconvenient=[OFFICE_HOURS])
# Lives in Los Angeles, Eastern mobile: the designation is read in Los Angeles.
LA_OFFICE_NY_PHONE = debtor(
    LA, phones=(Phone(NYC_MOBILE, "mobile", None, True),), inconvenient=[OFFICE_HOURS]
)
# Zone unknown (Eastern and Pacific phones): the designation is read in both.
UNKNOWN_OFFICE = debtor(
    None,
    phones=(Phone(NYC_MOBILE, "mobile", None, True), Phone(LA_MOBILE, "mobile", None, True)),
    inconvenient=[OFFICE_HOURS],
)

DESIGNATED_CASES = [
    # Tuesday 10:30 in Los Angeles, inside "weekdays 09:00-17:00": until 17:00 PDT.
    case("weekday-office-hours", situation(
        local(LA, 2025, 6, 3, 10, 30), jurisdiction="US-CA", who=LA_OFFICE),
        "defer", utc(2025, 6, 4, 0), [DESIGNATED]),
    allowed("designation-ends-at-1700", situation(
        local(LA, 2025, 6, 3, 17), jurisdiction="US-CA", who=LA_OFFICE)),
    allowed("not-on-saturday", situation(
        local(LA, 2025, 6, 7, 10, 30), jurisdiction="US-CA", who=LA_OFFICE)),
    # 20:00-10:00 every day: 08:30 is inside the part after midnight.
    case("past-midnight-morning-part", situation(
        ny(2025, 6, 3, 8, 30), who=debtor(inconvenient=[NIGHTS])),
        "defer", utc(2025, 6, 3, 14), [DESIGNATED]),
    case("past-midnight-evening-part", situation(
        ny(2025, 6, 3, 20, 30), who=debtor(inconvenient=[NIGHTS])),
        "defer", utc(2025, 6, 4, 14), [DESIGNATED]),
    # Friday 22:00 to 09:00 belongs to Friday: Saturday 08:30 is inside, Sunday's is not.
    case("past-midnight-belongs-to-the-day-it-starts", situation(
        ny(2025, 6, 7, 8, 30), who=debtor(inconvenient=[FRIDAY_NIGHT])),
        "defer", utc(2025, 6, 7, 13), [DESIGNATED]),
    allowed("past-midnight-not-the-next-night", situation(
        ny(2025, 6, 8, 8, 30), who=debtor(inconvenient=[FRIDAY_NIGHT]))),
    # The window opens at 08:00 and the designation holds it shut until 10:00: both named.
    case("window-then-designation", situation(
        ny(2025, 6, 3, 7), who=debtor(inconvenient=[MORNINGS])),
        "defer", utc(2025, 6, 3, 14), [WINDOW, DESIGNATED]),
    # Read in the debtor's own zone: 11:30 ET is 08:30 PT, before the Pacific 09:00.
    allowed("read-in-the-debtors-own-zone", situation(
        utc(2025, 6, 3, 15, 30), to=NYC_MOBILE, jurisdiction="US-CA", who=LA_OFFICE_NY_PHONE)),
    # 12:00 ET is 09:00 PT: until 17:00 PT, which is 20:00 ET, inside the Eastern window.
    case("own-zone-until-1700-pt", situation(
        utc(2025, 6, 3, 16), to=NYC_MOBILE, jurisdiction="US-CA", who=LA_OFFICE_NY_PHONE),
        "defer", utc(2025, 6, 4, 0), [DESIGNATED]),
    # Own zone unknown: read in every candidate zone. 09:00-17:00 ET and PT together leave
    # 20:00-21:00 ET (17:00-18:00 PT) of the window.
    case("unknown-own-zone-reads-every-zone", situation(
        utc(2025, 6, 3, 15, 30), to=NYC_MOBILE, jurisdiction="US", who=UNKNOWN_OFFICE),
        "defer", utc(2025, 6, 4, 0), [DESIGNATED]),
    case("nothing-open-blocks", situation(ny(2025, 6, 3, 12), who=debtor(inconvenient=[ALWAYS])),
         "block", None, [DESIGNATED]),
    # A creditor: the house rule, read the same way.
    case("first-party-house-rule", situation(
        ny(2025, 6, 3, 10, 30), collector="first_party", who=debtor(inconvenient=[OFFICE_HOURS])),
        "defer", utc(2025, 6, 3, 21), ["POLICY_DESIGNATED_INCONVENIENT_TIME"]),
]  # fmt: skip


@pytest.mark.parametrize(CASE, DESIGNATED_CASES)
def test_designated_inconvenient_times(
    asked: Situation, verdict: str, not_before: datetime | None, codes: list[str]
) -> None:
    check(asked, verdict, not_before, codes)


# --- Reg F 7-in-7 ------------------------------------------------------------------------

SAT_AFTERNOON = ny(2025, 6, 7, 15)  # seven dates June 1-7 end today
SEVEN = daily_calls(range(1, 8))  # June 1-7, 10:00 ET, about D1

CALL_CAP_CASES = [
    # June 1 leaves the seven dates on June 8: midnight ET, then the window's 08:00 EDT.
    case("seventh-call-in-seven-dates-waits", situation(SAT_AFTERNOON, history=SEVEN),
         "defer", utc(2025, 6, 8, 12), [CALL_CAP]),
    allowed("six-calls-allow-a-seventh", situation(SAT_AFTERNOON, history=SEVEN[1:])),
    allowed("next-morning-june-1-has-left", situation(ny(2025, 6, 8, 8), history=SEVEN)),
    allowed("per-debt-another-debt-is-free", situation(SAT_AFTERNOON, debts=["D2"], history=SEVEN)),
    case("a-contact-about-two-debts-waits-for-the-full-one", situation(
        SAT_AFTERNOON, debts=["D1", "D2"], history=SEVEN),
        "defer", utc(2025, 6, 8, 12), [CALL_CAP]),
    # 14 calls this week, 7 about each debt: a third debt may still be called.
    allowed("several-debts-multiply-capacity", situation(
        SAT_AFTERNOON, debts=["D3"],
        history=SEVEN + daily_calls(range(1, 8), hour=11, debts=["D2"]))),
    case("one-call-about-two-debts-counts-for-each", situation(
        SAT_AFTERNOON, debts=["D2"], history=daily_calls(range(1, 8), debts=["D1", "D2"])),
        "defer", utc(2025, 6, 8, 12), [CALL_CAP]),
    allowed("busy-and-not-in-service-do-not-count", situation(SAT_AFTERNOON, history=[
        call(ny(2025, 6, 1, 10), "busy"),
        *daily_calls(range(2, 8)),
        call(ny(2025, 6, 7, 12), "not_in_service"),
        call(ny(2025, 6, 7, 13), "busy"),
    ])),
    case("voicemail-and-limited-content-messages-count", situation(SAT_AFTERNOON, history=[
        *daily_calls(range(1, 4), outcome="voicemail"),
        *daily_calls(range(4, 6), outcome="limited_content_message"),
        *daily_calls(range(6, 8)),
    ]), "defer", utc(2025, 6, 8, 12), [CALL_CAP]),
    case("calls-to-every-number-add-up", situation(SAT_AFTERNOON, to=LANDLINE, history=[
        call(ny(2025, 6, day, 10), to=(MOBILE, LANDLINE, WORK)[day % 3]) for day in range(1, 8)
    ]), "defer", utc(2025, 6, 8, 12), [CALL_CAP]),
    allowed("inbound-calls-do-not-count", situation(SAT_AFTERNOON, history=[
        *daily_calls(range(2, 8)),
        call(ny(2025, 6, 1, 10), "voicemail", direction="inbound"),
        call(ny(2025, 6, 7, 11), "no_answer", direction="inbound"),
    ])),
    allowed("texts-and-emails-are-not-calls", situation(SAT_AFTERNOON, history=[
        *daily_calls(range(2, 8)),
        text(ny(2025, 6, 1, 10)),
        mail(ny(2025, 6, 7, 9)),
    ])),
    # 23:30 EDT on June 1 is June 2 in UTC: the local date decides, so on June 8 the seven
    # dates June 2-8 hold six calls.
    allowed("local-dates-not-utc-dates", situation(
        ny(2025, 6, 8, 8), history=[call(utc(2025, 6, 2, 3, 30)), *daily_calls(range(2, 8))])),
    # Eastern and Pacific: 01:30 EDT June 2 is 22:30 PDT June 1. In Eastern dates June 2-8
    # hold seven calls, in Pacific dates six: the Eastern answer (June 9) wins, and the
    # window then waits for 08:00 PDT.
    case("every-candidate-zone-counts", situation(
        ny(2025, 6, 8, 15), who=debtor(NY, other=[LA]),
        history=[call(utc(2025, 6, 2, 5, 30)), *daily_calls(range(3, 9), hour=12)]),
        "defer", utc(2025, 6, 9, 15), [CALL_CAP]),
    allowed("does-not-bind-a-creditor", situation(
        SAT_AFTERNOON, collector="first_party", history=SEVEN)),
    allowed("does-not-concern-texts", situation(SAT_AFTERNOON, channel="sms", history=SEVEN)),
]  # fmt: skip


@pytest.mark.parametrize(CASE, CALL_CAP_CASES)
def test_regf_seven_calls_in_seven_days(
    asked: Situation, verdict: str, not_before: datetime | None, codes: list[str]
) -> None:
    check(asked, verdict, not_before, codes)


# A conversation on Tuesday June 3 at 16:00 ET about D1: June 3 is day one, June 10 free.
TALKED = call(ny(2025, 6, 3, 16), "conversation")
TALKED_IN = event(ny(2025, 6, 3, 16), "conversation", debts=["D1"])

POST_CONVERSATION_CASES = [
    case("outbound-conversation-bars-seven-dates", situation(ny(2025, 6, 9, 20), history=[TALKED]),
         "defer", utc(2025, 6, 10, 12), [POST_CONVERSATION]),
    case("bar-from-the-next-morning", situation(ny(2025, 6, 4, 9), history=[TALKED]),
         "defer", utc(2025, 6, 10, 12), [POST_CONVERSATION]),
    case("same-day-after-the-conversation", situation(ny(2025, 6, 3, 17), history=[TALKED]),
         "defer", utc(2025, 6, 10, 12), [POST_CONVERSATION]),
    allowed("eighth-date-is-free", situation(ny(2025, 6, 10, 8), history=[TALKED])),
    case("inbound-conversation-event", situation(ny(2025, 6, 9, 20), events=[TALKED_IN]),
         "defer", utc(2025, 6, 10, 12), [POST_CONVERSATION]),
    case("inbound-conversation-in-history", situation(
        ny(2025, 6, 9, 20),
        history=[call(ny(2025, 6, 3, 16), "conversation", direction="inbound")]),
        "defer", utc(2025, 6, 10, 12), [POST_CONVERSATION]),
    case("event-without-debts-bars-the-contacts-debts", situation(
        ny(2025, 6, 5, 12), debts=["D7"], events=[event(ny(2025, 6, 3, 16), "conversation")]),
        "defer", utc(2025, 6, 10, 12), [POST_CONVERSATION]),
    allowed("conversation-about-another-debt", situation(
        ny(2025, 6, 5, 12), events=[event(ny(2025, 6, 3, 16), "conversation", debts=["D2"])])),
    allowed("texts-are-not-barred", situation(ny(2025, 6, 5, 12), channel="sms", history=[TALKED])),
    # 23:30 EDT is still June 3; 00:30 EDT June 4 starts a day later.
    case("late-evening-is-the-same-date", situation(
        ny(2025, 6, 9, 12), history=[call(ny(2025, 6, 3, 23, 30), "conversation")]),
        "defer", utc(2025, 6, 10, 12), [POST_CONVERSATION]),
    case("after-midnight-is-the-next-date", situation(
        ny(2025, 6, 10, 12), history=[call(ny(2025, 6, 4, 0, 30), "conversation")]),
        "defer", utc(2025, 6, 11, 12), [POST_CONVERSATION]),
    # 01:00 EDT June 4 is 22:00 PDT June 3: the Eastern date bars one day longer, and the
    # window then waits for 08:00 PDT.
    case("every-candidate-zone", situation(
        utc(2025, 6, 10, 18), who=debtor(NY, other=[LA]),
        history=[call(utc(2025, 6, 4, 5), "conversation")]),
        "defer", utc(2025, 6, 11, 15), [POST_CONVERSATION]),
    allowed("does-not-bind-a-creditor", situation(
        ny(2025, 6, 5, 12), collector="first_party", history=[TALKED])),
]  # fmt: skip


@pytest.mark.parametrize(CASE, POST_CONVERSATION_CASES)
def test_regf_no_call_within_seven_days_of_a_conversation(
    asked: Situation, verdict: str, not_before: datetime | None, codes: list[str]
) -> None:
    check(asked, verdict, not_before, codes)


# --- state caps ----------------------------------------------------------------------------

MA_2_7 = "MA_2_PER_7_DAYS_PER_DEBT"
MA_2_30 = "MA_2_PER_30_DAYS_NON_RESIDENCE"
THU_JUNE_5 = ny(2025, 6, 5, 10)


def ma(now: datetime, **kw: Any) -> Situation:
    return situation(now, jurisdiction="US-MA", **kw)


MASSACHUSETTS_CASES = [
    # Calls on June 2 and 4: June 2 leaves the seven dates on June 9, 08:00 EDT.
    case("two-calls-in-seven-days", ma(THU_JUNE_5, history=daily_calls([2, 4])),
         "defer", utc(2025, 6, 9, 12), [MA_2_7]),
    case("binds-creditors-too", ma(
        THU_JUNE_5, collector="first_party", history=daily_calls([2, 4])),
        "defer", utc(2025, 6, 9, 12), [MA_2_7]),
    case("a-call-and-a-text-count-together", ma(
        THU_JUNE_5, channel="sms", history=[call(ny(2025, 6, 2, 10)), text(ny(2025, 6, 4, 10))]),
        "defer", utc(2025, 6, 9, 12), [MA_2_7]),
    case("residence-and-mobile-add-up", ma(
        THU_JUNE_5, to=LANDLINE,
        history=[call(ny(2025, 6, 2, 10), to=LANDLINE), call(ny(2025, 6, 4, 10))]),
        "defer", utc(2025, 6, 9, 12), [MA_2_7]),
    case("every-initiated-attempt-counts-even-busy", ma(
        THU_JUNE_5, history=daily_calls([2, 4], outcome="busy")),
        "defer", utc(2025, 6, 9, 12), [MA_2_7]),
    allowed("per-debt", ma(THU_JUNE_5, debts=["D2"], history=daily_calls([2, 4]))),
    allowed("one-in-seven-days", ma(THU_JUNE_5, history=daily_calls([4]))),
    allowed("june-2-has-left-on-june-9", ma(ny(2025, 6, 9, 8), history=daily_calls([2, 4]))),
    allowed("inbound-calls-do-not-count", ma(
        THU_JUNE_5, history=daily_calls([2, 4], direction="inbound"))),
    allowed("emails-are-not-concerned", ma(THU_JUNE_5, channel="email", history=[
        mail(ny(2025, 6, 2, 10)), mail(ny(2025, 6, 4, 10))])),
    # Work numbers: two in 30 dates. Calls June 2 and 10: June 2 leaves on July 2.
    case("work-number-two-in-thirty-days", ma(
        ny(2025, 6, 20, 10), to=WORK, history=daily_calls([2, 10], to=WORK)),
        "defer", utc(2025, 7, 2, 12), [MA_2_30]),
    allowed("work-calls-do-not-count-for-personal-lines", ma(
        THU_JUNE_5, history=daily_calls([2, 4], to=WORK))),
    allowed("personal-calls-do-not-count-for-work", ma(
        THU_JUNE_5, to=WORK, history=daily_calls([2, 4]))),
    # Hours: the agency sees Reg F's window and Massachusetts', the creditor only the latter.
    case("hours-for-an-agency", ma(ny(2025, 6, 3, 7)),
         "defer", utc(2025, 6, 3, 12), [WINDOW, "MA_HOURS"]),
    case("hours-for-a-creditor", ma(ny(2025, 6, 3, 7), collector="first_party"),
         "defer", utc(2025, 6, 3, 12), ["MA_HOURS"]),
]  # fmt: skip


@pytest.mark.parametrize(CASE, MASSACHUSETTS_CASES)
def test_massachusetts(
    asked: Situation, verdict: str, not_before: datetime | None, codes: list[str]
) -> None:
    check(asked, verdict, not_before, codes)


WA_3 = "WA_3_PER_WEEK"
WA_WORK = "WA_WORKPLACE_1_PER_WEEK"
SEATTLE = debtor(LA)
WA_THURSDAY = local(LA, 2025, 6, 5, 10)


def wa(now: datetime, **kw: Any) -> Situation:
    return situation(now, jurisdiction="US-WA", who=SEATTLE, **kw)


def la(*args: int) -> datetime:
    return local(LA, *args)


WASHINGTON_CASES = [
    # A call, a text and an email (about three debts) on June 2-4: the fourth waits until
    # June 2 leaves the week, June 9 at 08:00 PDT.
    case("three-communications-a-week-any-channel", wa(WA_THURSDAY, debts=["D4"], history=[
        call(la(2025, 6, 2, 10)),
        text(la(2025, 6, 3, 10), debts=["D2"]),
        mail(la(2025, 6, 4, 10), debts=["D3"]),
    ]), "defer", utc(2025, 6, 9, 15), [WA_3]),
    case("texts-too", wa(WA_THURSDAY, channel="sms", history=daily_calls([2, 3, 4], LA)),
         "defer", utc(2025, 6, 9, 15), [WA_3]),
    case("busy-counts", wa(WA_THURSDAY, history=daily_calls([2, 3, 4], LA, outcome="busy")),
         "defer", utc(2025, 6, 9, 15), [WA_3]),
    allowed("two-a-week", wa(WA_THURSDAY, history=daily_calls([3, 4], LA))),
    allowed("inbound-does-not-count", wa(
        WA_THURSDAY, history=daily_calls([2, 3, 4], LA, direction="inbound"))),
    allowed("does-not-bind-a-creditor", wa(
        WA_THURSDAY, collector="first_party", history=daily_calls([2, 3, 4], LA))),
    # Workplace: once a week. A work call on June 3: the next from June 10, 08:00 PDT.
    case("workplace-once-a-week", wa(WA_THURSDAY, to=WORK, history=daily_calls([3], LA, to=WORK)),
         "defer", utc(2025, 6, 10, 15), [WA_WORK]),
    allowed("workplace-call-leaves-the-mobile-free", wa(
        WA_THURSDAY, history=daily_calls([3], LA, to=WORK))),
    allowed("mobile-call-leaves-the-workplace-free", wa(
        WA_THURSDAY, to=WORK, history=daily_calls([3], LA))),
]  # fmt: skip


@pytest.mark.parametrize(CASE, WASHINGTON_CASES)
def test_washington(
    asked: Situation, verdict: str, not_before: datetime | None, codes: list[str]
) -> None:
    check(asked, verdict, not_before, codes)


# --- house caps ----------------------------------------------------------------------------

SMS_CAP = "POLICY_SMS_DAILY_CAP"
EMAIL_CAP = "POLICY_EMAIL_WEEKLY_CAP"
TUE_AFTERNOON = ny(2025, 6, 3, 15)

HOUSE_CAP_CASES = [
    # Two texts today: the third tomorrow at 08:00 EDT.
    case("two-texts-a-day", situation(TUE_AFTERNOON, channel="sms", history=[
        text(ny(2025, 6, 3, 9)), text(ny(2025, 6, 3, 10))]),
        "defer", utc(2025, 6, 4, 12), [SMS_CAP]),
    case("failed-texts-count", situation(TUE_AFTERNOON, channel="sms", history=[
        text(ny(2025, 6, 3, 9), "failed"), text(ny(2025, 6, 3, 10))]),
        "defer", utc(2025, 6, 4, 12), [SMS_CAP]),
    case("per-debtor-every-number-and-debt", situation(TUE_AFTERNOON, channel="sms", debts=["D3"],
        history=[text(ny(2025, 6, 3, 9), debts=["D2"]), text(ny(2025, 6, 3, 10), to=OTHER_MOBILE)]),
        "defer", utc(2025, 6, 4, 12), [SMS_CAP]),
    case("creditors-too", situation(TUE_AFTERNOON, channel="sms", collector="first_party",
        history=[text(ny(2025, 6, 3, 9)), text(ny(2025, 6, 3, 10))]),
        "defer", utc(2025, 6, 4, 12), [SMS_CAP]),
    allowed("yesterdays-text-is-another-day", situation(TUE_AFTERNOON, channel="sms", history=[
        text(ny(2025, 6, 2, 20)), text(ny(2025, 6, 3, 10))])),
    allowed("inbound-texts-do-not-count", situation(TUE_AFTERNOON, channel="sms", history=[
        text(ny(2025, 6, 3, 9), direction="inbound"), text(ny(2025, 6, 3, 10))])),
    # Emails June 1-5: five in seven dates; June 1 leaves on June 8, 08:00 EDT.
    case("five-emails-a-week", situation(ny(2025, 6, 5, 15), channel="email", history=[
        mail(ny(2025, 6, day, 10)) for day in range(1, 6)]),
        "defer", utc(2025, 6, 8, 12), [EMAIL_CAP]),
    allowed("four-emails-a-week", situation(ny(2025, 6, 5, 15), channel="email", history=[
        mail(ny(2025, 6, day, 10)) for day in range(2, 6)])),
]  # fmt: skip


@pytest.mark.parametrize(CASE, HOUSE_CAP_CASES)
def test_house_caps(
    asked: Situation, verdict: str, not_before: datetime | None, codes: list[str]
) -> None:
    check(asked, verdict, not_before, codes)


# --- TCPA ----------------------------------------------------------------------------------

NO_CONSENT = debtor(consent=False)
NOON = ny(2025, 6, 3, 12)
TCPA = "TCPA_NO_PRIOR_EXPRESS_CONSENT"
REVOKED = "TCPA_CONSENT_REVOKED"
JUNE_1 = ny(2025, 6, 1, 9)
JUNE_2 = ny(2025, 6, 2, 9)


def robo(channel: str = "sms", **kw: Any) -> Situation:
    """An automated text or call at noon."""
    return situation(NOON, channel=channel, automated=True, **{"who": NO_CONSENT, **kw})


TCPA_CONSENT_CASES = [
    case("automated-text-to-a-mobile", robo(), "block", None, [TCPA]),
    case("prerecorded-call-to-a-mobile", robo("voice"), "block", None, [TCPA]),
    case("unknown-line-may-be-a-mobile", robo("voice", to=UNKNOWN_LINE), "block", None, [TCPA]),
    case("creditors-too", robo(collector="first_party"), "block", None, [TCPA]),
    allowed("landline-needs-no-consent", robo("voice", to=LANDLINE)),
    # A text reaches only a line that takes texts: the landline label does not exempt it.
    case("automated-text-to-a-number-marked-landline", robo(to=LANDLINE), "block", None, [TCPA]),
    case("revoked-texts-to-a-number-marked-landline", robo(to=LANDLINE, who=debtor(consent=True),
        events=[event(JUNE_1, "consent_revoked", channel="sms", address=LANDLINE)]),
        "block", None, [REVOKED]),
    allowed("manual-call-needs-no-consent", situation(NOON, who=NO_CONSENT)),
    allowed("recorded-consent", robo(who=debtor(consent=True))),
    case("revoked", robo(who=debtor(consent=True), events=[
        event(JUNE_1, "consent_revoked", channel="sms", address=MOBILE)]),
        "block", None, [REVOKED]),
    case("revoke-all-without-channel-or-address", robo("voice", who=debtor(consent=True), events=[
        event(JUNE_1, "consent_revoked")]),
        "block", None, [REVOKED]),
    allowed("revocation-elsewhere", robo(who=debtor(consent=True), events=[
        event(JUNE_1, "consent_revoked", channel="sms", address=OTHER_MOBILE)])),
    allowed("consent-again-after-revocation", robo(who=debtor(consent=True), events=[
        event(JUNE_1, "consent_revoked"),
        event(JUNE_2, "consent", channel="sms", address=MOBILE)])),
    case("revocation-after-consent", robo(events=[
        event(JUNE_1, "consent", channel="sms", address=MOBILE),
        event(JUNE_2, "consent_revoked")]),
        "block", None, [REVOKED]),
    allowed("consent-event", robo(events=[
        event(JUNE_1, "consent", channel="sms", address=MOBILE)])),
    case("consent-for-another-number", robo(events=[
        event(JUNE_1, "consent", channel="sms", address=OTHER_MOBILE)]),
        "block", None, [TCPA]),
    case("consent-to-calls-is-not-to-texts", robo(events=[
        event(JUNE_1, "consent", channel="voice", address=MOBILE)]),
        "block", None, [TCPA]),
    # START from the number (CTIA C-7) is the debtor's consent to texts there.
    allowed("opt-in-is-consent", robo(events=[
        event(JUNE_1, "opt_in", channel="sms", address=MOBILE)])),
    # Recorded already, stamped by a clock ahead of ours: it counts (fail closed)...
    case("a-revocation-stamped-ahead-of-now-counts", robo(who=debtor(consent=True), events=[
        event(ny(2025, 6, 3, 13), "consent_revoked")]),
        "block", None, [REVOKED]),
    # ...while what lifts a restriction counts from its time on, order kept by time.
    case("a-consent-stamped-ahead-of-now-is-not-yet", robo(events=[
        event(ny(2025, 6, 3, 13), "consent", channel="sms", address=MOBILE)]),
        "block", None, [TCPA]),
    case("work-number-may-be-a-mobile", robo(to=WORK), "block", None, [TCPA]),
    case("prerecorded-call-to-a-work-number", robo("voice", to=WORK), "block", None, [TCPA]),
    allowed("work-number-with-consent", robo(to=WORK, who=debtor(consent=True))),
    # "Stop calling me" revokes consent to calls on every number, whoever collects.
    case("prohibited-medium-revokes-consent", robo("voice", who=debtor(consent=True), events=[
        event(JUNE_1, "prohibited_medium", channel="voice")]),
        "block", None, ["REGF_PROHIBITED_MEDIUM", REVOKED]),
    case("prohibited-medium-revokes-a-creditors-consent", robo(
        "voice", to=OTHER_MOBILE, collector="first_party", who=debtor(consent=True),
        events=[event(JUNE_1, "prohibited_medium", channel="voice")]),
        "block", None, ["POLICY_DO_NOT_CALL", REVOKED]),
    allowed("prohibited-calls-leave-texts-alone", robo(who=debtor(consent=True), events=[
        event(JUNE_1, "prohibited_medium", channel="voice")])),
    allowed("allowing-the-medium-again-restores-consent", robo(
        "voice", collector="first_party", who=debtor(consent=True), events=[
            event(JUNE_1, "prohibited_medium", channel="voice"),
            event(JUNE_2, "opt_in", channel="voice")])),
    # Revoke-all: consent revoked for a number's texts is revoked for its robocalls too...
    case("a-revocation-of-texts-covers-calls", robo("voice", who=debtor(consent=True), events=[
        event(JUNE_1, "consent_revoked", channel="sms", address=MOBILE)]),
        "block", None, [REVOKED]),
    # ...until consent to texts is given again, which restores what held before, no more.
    allowed("consent-to-texts-again-gives-calls-back", robo("voice", who=debtor(consent=True),
        events=[event(JUNE_1, "consent_revoked", channel="sms", address=MOBILE),
                event(JUNE_2, "consent", channel="sms", address=MOBILE)])),
    case("consent-to-texts-is-no-consent-to-calls", robo("voice", events=[
        event(JUNE_1, "consent_revoked", channel="sms", address=MOBILE),
        event(JUNE_2, "consent", channel="sms", address=MOBILE)]),
        "block", None, [TCPA]),
    # A STOP's reach on calls is the START's to give back, not a consent to texts.
    case("consent-to-texts-does-not-lift-a-stop-on-calls", robo("voice", who=debtor(
        consent=True), events=[event(JUNE_1, "opt_out", channel="sms", address=MOBILE),
                               event(JUNE_2, "consent", channel="sms", address=MOBILE)]),
        "block", None, [REVOKED]),
    # Revoked on another of the debtor's accounts: a consent here does not lift it...
    case("revoked-elsewhere-is-not-lifted-here", robo("voice", who=debtor(consent=True),
        events=[event(JUNE_1, "consent_revoked", elsewhere=True),
                event(JUNE_2, "consent", channel="voice", address=MOBILE)]),
        "block", None, [REVOKED]),
    case("revoked-elsewhere-for-texts-holds-for-calls", robo("voice", who=debtor(consent=True),
        events=[event(JUNE_1, "consent_revoked", channel="sms", address=MOBILE, elsewhere=True),
                event(JUNE_2, "consent", channel="voice", address=MOBILE)]),
        "block", None, [REVOKED]),
    # ...nor about what it does not cover; and the number's own START still counts.
    allowed("revoked-elsewhere-leaves-other-numbers", robo("voice", to=OTHER_MOBILE, events=[
        event(JUNE_1, "consent_revoked", address=MOBILE, elsewhere=True),
        event(JUNE_2, "consent")])),
    allowed("a-start-after-a-revocation-elsewhere", robo(who=debtor(consent=True), events=[
        event(JUNE_1, "consent_revoked", elsewhere=True),
        event(JUNE_2, "opt_in", channel="sms", address=MOBILE)])),
    # An opt-in to calls lifts a do-not-call request: it is no consent to robocalls.
    case("an-opt-in-to-calls-is-no-consent", robo("voice", events=[
        event(JUNE_1, "opt_in", channel="voice", address=MOBILE)]),
        "block", None, [TCPA]),
    case("an-opt-in-to-calls-after-a-revocation-elsewhere", robo("voice", who=debtor(
        consent=True), events=[event(JUNE_1, "consent_revoked", elsewhere=True),
                               event(JUNE_2, "opt_in", channel="voice", address=MOBILE)]),
        "block", None, [REVOKED]),
    # "Don't robocall me", recorded without a number, covers robotexts too...
    case("a-revocation-of-calls-covers-texts", robo(who=debtor(consent=True), events=[
        event(JUNE_1, "consent_revoked", channel="voice")]),
        "block", None, [REVOKED]),
    allowed("consent-to-calls-again-gives-texts-back", robo(who=debtor(consent=True), events=[
        event(JUNE_1, "consent_revoked", channel="voice"),
        event(JUNE_2, "consent", channel="voice")])),
    # ...and the medium allowed again gives back only what the medium took.
    case("allowing-the-medium-leaves-a-later-revocation", robo(who=debtor(consent=True),
        events=[event(JUNE_1, "prohibited_medium", channel="sms"),
                event(JUNE_2, "consent_revoked", channel="voice", address=MOBILE),
                event(ny(2025, 6, 2, 10), "opt_in", channel="sms")]),
        "block", None, [REVOKED]),
    allowed("each-lift-gives-back-its-own", robo("voice", who=debtor(consent=True), events=[
        event(JUNE_1, "opt_out", channel="sms", address=MOBILE),
        event(JUNE_2, "prohibited_medium", channel="voice"),
        event(ny(2025, 6, 2, 10), "opt_in", channel="sms", address=MOBILE),
        event(ny(2025, 6, 2, 11), "opt_in", channel="voice")])),
]  # fmt: skip


SCOPES = [(channel, address) for channel in (None, "sms", "voice") for address in (None, MOBILE)]


@pytest.mark.parametrize("revoked", SCOPES, ids=str)
@pytest.mark.parametrize("given", SCOPES, ids=str)
def test_a_revocation_shared_stops_only_when_it_is_lifted_where_recorded(
    revoked: tuple[str | None, str | None], given: tuple[str | None, str | None]
) -> None:
    """What the store takes for a revocation lifted (and so no longer shared with the
    debtor's other accounts) must be lifted for every contact it covers on its own
    account, as the engine reads it: the store never frees more than the engine does."""
    from outreach.compliance_store import _lifts

    events = [event(JUNE_1, "consent_revoked", channel=revoked[0], address=revoked[1]),
              event(JUNE_2, "consent", channel=given[0], address=given[1])]  # fmt: skip
    if not _lifts(events[1], events[0]):
        return
    for channel in ("sms", "voice"):
        for to in (MOBILE, OTHER_MOBILE):
            asked = robo(channel, to=to, who=debtor(consent=True), events=events)
            assert REVOKED not in evaluate(asked, RULES).codes, (channel, to)


@pytest.mark.parametrize(CASE, TCPA_CONSENT_CASES)
def test_tcpa_consent(
    asked: Situation, verdict: str, not_before: datetime | None, codes: list[str]
) -> None:
    check(asked, verdict, not_before, codes)


def test_a_missing_consent_names_what_records_it_on_the_channel_contacted() -> None:
    # Consent to texts is no consent to prerecorded calls: the reason says which consent
    # lifts it, in the import's own column names (there is no `consent` column).
    texts_only = debtor(phones=(Phone(MOBILE, "mobile", NY, False, sms_consent=True),))
    called = evaluate(robo("voice", who=texts_only), RULES)
    [reason] = [r for r in called.reasons if r.code == TCPA]
    assert reason.lifted_by == (
        "recorded consent to voice contact at this number: a consent event for voice, or "
        "the import's voice_consent (phone2_voice_consent for the second number)"
    )
    texted = evaluate(robo("sms"), RULES)
    [reason] = [r for r in texted.reasons if r.code == TCPA]
    assert "for sms, or the import's sms_consent (phone2_sms_consent" in (reason.lifted_by or "")
    emailed = evaluate(new_york(NOON, who=debtor(consent=False)), RULES)
    [reason] = [r for r in emailed.reasons if r.code == DFS]
    assert "consent event for email, or the import's email_consent" in (reason.lifted_by or "")


PRERECORDED_CAP = "TCPA_EXEMPT_PRERECORDED_CAP_3_PER_30D"
THREE_ROBOCALLS = [call(ny(2025, 6, day, 10), to=LANDLINE, automated=True) for day in (1, 10, 20)]


def to_landline(**kw: Any) -> Situation:
    return situation(ny(2025, 6, 25, 10), to=LANDLINE, **{"automated": True, **kw})


PRERECORDED_CASES = [
    # June 1, 10 and 20: June 1 leaves the thirty dates on July 1, 08:00 EDT.
    case("three-prerecorded-calls-in-thirty-days", to_landline(history=THREE_ROBOCALLS),
         "defer", utc(2025, 7, 1, 12), [PRERECORDED_CAP]),
    case("creditors-too", to_landline(collector="first_party", history=THREE_ROBOCALLS),
         "defer", utc(2025, 7, 1, 12), [PRERECORDED_CAP]),
    allowed("a-manual-call-is-not-capped", to_landline(automated=False, history=THREE_ROBOCALLS)),
    allowed("manual-calls-do-not-count", to_landline(history=[
        call(ny(2025, 6, day, 10), to=LANDLINE) for day in (1, 10, 20)])),
    allowed("per-line", to_landline(history=[
        call(ny(2025, 6, day, 10), to=WORK, automated=True) for day in (1, 10, 20)])),
    allowed("two-in-thirty-days", to_landline(history=THREE_ROBOCALLS[1:])),
]  # fmt: skip


@pytest.mark.parametrize(CASE, PRERECORDED_CASES)
def test_tcpa_prerecorded_calls_to_a_residential_line(
    asked: Situation, verdict: str, not_before: datetime | None, codes: list[str]
) -> None:
    check(asked, verdict, not_before, codes)


# --- opt-outs and prohibited media -------------------------------------------------------

STOP = event(JUNE_1, "opt_out", channel="sms", address=MOBILE)
START = event(JUNE_2, "opt_in", channel="sms", address=MOBILE)
UNSUBSCRIBED = event(JUNE_1, "opt_out", channel="email", address=EMAIL)
SMS_OPT_OUT = ["CARRIER_STOP_KEYWORD", "REGF_ELECTRONIC_OPT_OUT_ADDRESS"]

OPT_OUT_CASES = [
    case("stop-blocks-texts-to-that-number", situation(NOON, channel="sms", events=[STOP]),
         "block", None, SMS_OPT_OUT),
    allowed("another-number-still-allowed", situation(
        NOON, channel="sms", to=OTHER_MOBILE, events=[STOP])),
    allowed("calls-to-that-number-still-allowed", situation(NOON, events=[STOP])),
    allowed("opt-in-lifts-it", situation(NOON, channel="sms", events=[STOP, START])),
    case("an-earlier-opt-in-does-not", situation(NOON, channel="sms", events=[
        event(JUNE_1, "opt_in", channel="sms", address=MOBILE),
        event(JUNE_2, "opt_out", channel="sms", address=MOBILE)]),
        "block", None, SMS_OPT_OUT),
    case("creditor-carrier-stop-only", situation(
        NOON, channel="sms", collector="first_party", events=[STOP]),
        "block", None, ["CARRIER_STOP_KEYWORD"]),
    case("unsubscribe-blocks-that-address", situation(NOON, channel="email", events=[UNSUBSCRIBED]),
         "block", None, ["EMAIL_UNSUBSCRIBED", "REGF_ELECTRONIC_OPT_OUT_ADDRESS"]),
    allowed("another-address-still-allowed", situation(
        NOON, channel="email", to=OTHER_EMAIL, events=[UNSUBSCRIBED])),
    case("do-not-call", situation(NOON, events=[
        event(JUNE_1, "opt_out", channel="voice", address=MOBILE)]),
        "block", None, ["POLICY_DO_NOT_CALL"]),
    # A STOP stored by a process whose clock runs ahead of ours counts at once.
    case("an-opt-out-stamped-ahead-of-now-counts", situation(NOON, channel="sms", events=[
        event(ny(2025, 6, 3, 12, 1), "opt_out", channel="sms", address=MOBILE)]),
        "block", None, SMS_OPT_OUT),
    case("an-opt-in-stamped-ahead-of-now-is-not-yet", situation(NOON, channel="sms", events=[
        STOP, event(ny(2025, 6, 3, 12, 1), "opt_in", channel="sms", address=MOBILE)]),
        "block", None, SMS_OPT_OUT),
    case("an-opt-out-ahead-of-now-after-an-opt-in", situation(NOON, channel="sms", events=[
        STOP, START, event(ny(2025, 6, 3, 12, 1), "opt_out", channel="sms", address=MOBILE)]),
        "block", None, SMS_OPT_OUT),
]  # fmt: skip


@pytest.mark.parametrize(CASE, OPT_OUT_CASES)
def test_opt_out_per_address_and_channel(
    asked: Situation, verdict: str, not_before: datetime | None, codes: list[str]
) -> None:
    check(asked, verdict, not_before, codes)


NO_EMAIL = event(JUNE_1, "prohibited_medium", channel="email")

PROHIBITED_MEDIUM_CASES = [
    case("every-email-address", situation(NOON, channel="email", events=[NO_EMAIL]),
         "block", None, ["REGF_PROHIBITED_MEDIUM"]),
    case("another-email-address-too", situation(
        NOON, channel="email", to=OTHER_EMAIL, events=[NO_EMAIL]),
        "block", None, ["REGF_PROHIBITED_MEDIUM"]),
    allowed("texts-still-allowed", situation(NOON, channel="sms", events=[NO_EMAIL])),
    allowed("opt-in-to-the-medium-lifts-it", situation(NOON, channel="email", events=[
        NO_EMAIL, event(JUNE_2, "opt_in", channel="email")])),
    case("opt-in-of-one-address-does-not-lift-the-medium", situation(
        NOON, channel="email", events=[
            NO_EMAIL, event(JUNE_2, "opt_in", channel="email", address=EMAIL)]),
        "block", None, ["REGF_PROHIBITED_MEDIUM"]),
    case("no-calls-at-all", situation(NOON, to=LANDLINE, events=[
        event(JUNE_1, "prohibited_medium", channel="voice")]),
        "block", None, ["REGF_PROHIBITED_MEDIUM"]),
    # Reg F 1006.14(h) binds debt collectors; the house applies it to creditors too.
    case("creditors-email", situation(
        NOON, channel="email", collector="first_party", events=[NO_EMAIL]),
        "block", None, ["EMAIL_UNSUBSCRIBED"]),
    case("creditors-calls", situation(NOON, to=LANDLINE, collector="first_party", events=[
        event(JUNE_1, "prohibited_medium", channel="voice")]),
        "block", None, ["POLICY_DO_NOT_CALL"]),
    case("creditors-automated-texts", situation(
        NOON, channel="sms", automated=True, collector="first_party", events=[
            event(JUNE_1, "prohibited_medium", channel="sms")]),
        "block", None, ["CARRIER_STOP_KEYWORD", "TCPA_CONSENT_REVOKED"]),
    allowed("creditors-other-media-allowed", situation(
        NOON, channel="sms", collector="first_party", events=[NO_EMAIL])),
]  # fmt: skip


@pytest.mark.parametrize(CASE, PROHIBITED_MEDIUM_CASES)
def test_prohibited_medium(
    asked: Situation, verdict: str, not_before: datetime | None, codes: list[str]
) -> None:
    check(asked, verdict, not_before, codes)


# --- holds ---------------------------------------------------------------------------------


def held(*kinds: str, **kw: Any) -> list[Event]:
    """These events in this order, an hour apart from June 1, 09:00 ET."""
    return [event(JUNE_1 + timedelta(hours=i), kind, **kw) for i, kind in enumerate(kinds)]


HOLD_CASES = [
    case("cease-blocks-calls", situation(NOON, events=held("cease")),
         "block", None, ["REGF_CEASE_COMMUNICATION"]),
    case("cease-blocks-texts", situation(NOON, channel="sms", events=held("cease")),
         "block", None, ["REGF_CEASE_COMMUNICATION"]),
    case("cease-blocks-email", situation(NOON, channel="email", events=held("cease")),
         "block", None, ["REGF_CEASE_COMMUNICATION"]),
    allowed("cease-withdrawn", situation(NOON, events=held("cease", "cease_withdrawn"))),
    case("ceased-again", situation(NOON, events=held("cease", "cease_withdrawn", "cease")),
         "block", None, ["REGF_CEASE_COMMUNICATION"]),
    case("attorney-flag", situation(NOON, who=debtor(attorney=True)),
         "block", None, ["REGF_REPRESENTED_BY_ATTORNEY"]),
    case("attorney-event", situation(NOON, events=held("attorney")),
         "block", None, ["REGF_REPRESENTED_BY_ATTORNEY"]),
    allowed("attorney-withdrawn", situation(NOON, events=held("attorney", "attorney_withdrawn"))),
    # The flag is the account's standing state: an event does not clear it.
    case("attorney-flag-stands", situation(
        NOON, who=debtor(attorney=True), events=held("attorney_withdrawn")),
        "block", None, ["REGF_REPRESENTED_BY_ATTORNEY"]),
    case("dispute", situation(NOON, events=held("dispute")),
         "block", None, ["REGF_DISPUTE_CEASE_COLLECTION"]),
    allowed("dispute-resolved", situation(NOON, events=held("dispute", "dispute_resolved"))),
    case("bankruptcy", situation(NOON, events=held("bankruptcy")),
         "block", None, ["BANKRUPTCY_AUTOMATIC_STAY"]),
    allowed("bankruptcy-closed", situation(NOON, events=held("bankruptcy", "bankruptcy_closed"))),
    case("every-hold-named", situation(NOON, events=held("dispute", "cease", "bankruptcy")),
         "block", None,
         ["BANKRUPTCY_AUTOMATIC_STAY", "REGF_CEASE_COMMUNICATION",
          "REGF_DISPUTE_CEASE_COLLECTION"]),
    case("a-cease-stamped-ahead-of-now-counts", situation(
        NOON, events=[event(ny(2025, 6, 3, 13), "cease")]),
        "block", None, ["REGF_CEASE_COMMUNICATION"]),
    case("a-withdrawal-stamped-ahead-of-now-is-not-yet", situation(NOON, events=[
        *held("cease"), event(ny(2025, 6, 3, 13), "cease_withdrawn")]),
        "block", None, ["REGF_CEASE_COMMUNICATION"]),
    # Creditors: the house's holds; in California, Rosenthal's (the house stands back).
    case("creditor-cease", situation(NOON, collector="first_party", events=held("cease")),
         "block", None, ["POLICY_CEASE_REQUESTED"]),
    case("creditor-attorney", situation(NOON, collector="first_party", events=held("attorney")),
         "block", None, ["POLICY_REPRESENTED_BY_ATTORNEY"]),
    case("creditor-dispute", situation(NOON, collector="first_party", events=held("dispute")),
         "block", None, ["POLICY_DISPUTE_HOLD"]),
    case("creditor-bankruptcy", situation(NOON, collector="first_party", events=held("bankruptcy")),
         "block", None, ["BANKRUPTCY_AUTOMATIC_STAY"]),
    case("california-creditor-cease", situation(
        local(LA, 2025, 6, 3, 12), jurisdiction="US-CA", collector="first_party",
        who=debtor(LA), events=held("cease")),
        "block", None, ["CA_ROSENTHAL_CEASE"]),
    case("california-creditor-attorney", situation(
        local(LA, 2025, 6, 3, 12), jurisdiction="US-CA", collector="first_party",
        who=debtor(LA, attorney=True)),
        "block", None, ["CA_ROSENTHAL_ATTORNEY"]),
    # Events that name debts hold only those debts.
    case("cease-of-this-debt", situation(NOON, events=held("cease", debts=["D1"])),
         "block", None, ["REGF_CEASE_COMMUNICATION"]),
    allowed("cease-of-another-debt", situation(
        NOON, debts=["D2"], events=held("cease", debts=["D1"]))),
    case("contact-about-a-held-debt-and-another", situation(
        NOON, debts=["D1", "D2"], events=held("cease", debts=["D1"])),
        "block", None, ["REGF_CEASE_COMMUNICATION"]),
    allowed("withdrawn-for-one-debt", situation(NOON, events=[
        *held("cease"), event(JUNE_2, "cease_withdrawn", debts=["D1"])])),
    case("withdrawn-for-one-debt-others-stay-held", situation(NOON, debts=["D2"], events=[
        *held("cease"), event(JUNE_2, "cease_withdrawn", debts=["D1"])]),
        "block", None, ["REGF_CEASE_COMMUNICATION"]),
    # A contact about D1 and D2 concerns D2, whose hold was never lifted.
    case("withdrawn-for-one-of-the-contacts-debts", situation(NOON, debts=["D1", "D2"], events=[
        *held("cease"), event(JUNE_2, "cease_withdrawn", debts=["D1"])]),
        "block", None, ["REGF_CEASE_COMMUNICATION"]),
    case("withdrawal-of-another-debt-lifts-nothing", situation(NOON, debts=["D1", "D2"], events=[
        event(JUNE_1, "dispute", debts=["D2"]), event(JUNE_2, "dispute_resolved", debts=["D1"])]),
        "block", None, ["REGF_DISPUTE_CEASE_COLLECTION"]),
    allowed("withdrawn-for-every-debt", situation(NOON, debts=["D1", "D2"], events=[
        event(JUNE_1, "bankruptcy", debts=["D1"]), event(JUNE_2, "bankruptcy_closed")])),
]  # fmt: skip


@pytest.mark.parametrize(CASE, HOLD_CASES)
def test_holds(
    asked: Situation, verdict: str, not_before: datetime | None, codes: list[str]
) -> None:
    check(asked, verdict, not_before, codes)


# --- email: employer addresses, New York consent -----------------------------------------

EMPLOYER = "REGF_EMPLOYER_EMAIL"
DFS = "NY_DFS_EMAIL_CONSENT_REQUIRED"
NYC = "NYC_ELECTRONIC_CONSENT_REQUIRED"


def email_to(to: str = WORK_EMAIL, **kw: Any) -> Situation:
    return situation(NOON, channel="email", to=to, **kw)


EMPLOYER_EMAIL_CASES = [
    case("work-address-without-consent", email_to(), "block", None, [EMPLOYER]),
    allowed("personal-address", email_to(EMAIL)),
    allowed("recorded-consent", email_to(who=debtor(emails=(Email(WORK_EMAIL, "work", True),)))),
    allowed("consent-event", email_to(events=[
        event(JUNE_1, "consent", channel="email", address=WORK_EMAIL)])),
    allowed("the-debtor-wrote-from-it", email_to(history=[
        mail(JUNE_1, to=WORK_EMAIL, direction="inbound")])),
    case("the-debtor-wrote-from-another-address", email_to(history=[
        mail(JUNE_1, to=EMAIL, direction="inbound")]),
        "block", None, [EMPLOYER]),
    case("we-wrote-to-it", email_to(history=[mail(JUNE_1, to=WORK_EMAIL)]),
         "block", None, [EMPLOYER]),
    allowed("not-a-rule-for-creditors", email_to(collector="first_party")),
]  # fmt: skip


@pytest.mark.parametrize(CASE, EMPLOYER_EMAIL_CASES)
def test_employer_email(
    asked: Situation, verdict: str, not_before: datetime | None, codes: list[str]
) -> None:
    check(asked, verdict, not_before, codes)


BEFORE_NYC_RULES = ny(2026, 8, 31, 12)
NYC_RULES_IN_FORCE = ny(2026, 9, 1, 12)
EMAIL_CONSENT = debtor(emails=(Email(EMAIL, "personal", True),))


def new_york(now: datetime, channel: str = "email", city: bool = False, **kw: Any) -> Situation:
    jurisdiction = "US-NY-NYC" if city else "US-NY"
    return situation(now, channel=channel, jurisdiction=jurisdiction, **kw)


NEW_YORK_CASES = [
    case("dfs-agency-email-needs-consent", new_york(NOON), "block", None, [DFS]),
    allowed("dfs-recorded-consent", new_york(NOON, who=EMAIL_CONSENT)),
    allowed("dfs-consent-event", new_york(NOON, events=[
        event(JUNE_1, "consent", channel="email", address=EMAIL)])),
    allowed("dfs-does-not-bind-creditors", new_york(NOON, collector="first_party")),
    allowed("dfs-is-about-email-only", new_york(NOON, "sms")),
    case("nyc-agency-email-from-2026-09-01", new_york(NYC_RULES_IN_FORCE, city=True),
         "block", None, [DFS, NYC]),
    case("nyc-agency-email-before-2026-09-01-dfs-only", new_york(BEFORE_NYC_RULES, city=True),
         "block", None, [DFS]),
    case("nyc-creditor-email-from-2026-09-01", new_york(
        NYC_RULES_IN_FORCE, city=True, collector="first_party"),
        "block", None, [NYC]),
    allowed("nyc-creditor-email-before-2026-09-01", new_york(
        BEFORE_NYC_RULES, city=True, collector="first_party")),
    case("nyc-creditor-text-from-2026-09-01", new_york(
        NYC_RULES_IN_FORCE, "sms", city=True, collector="first_party", who=NO_CONSENT),
        "block", None, [NYC]),
    allowed("nyc-creditor-text-with-consent", new_york(
        NYC_RULES_IN_FORCE, "sms", city=True, collector="first_party")),
    allowed("nyc-creditor-text-before-2026-09-01", new_york(
        BEFORE_NYC_RULES, "sms", city=True, collector="first_party", who=NO_CONSENT)),
    allowed("nyc-calls-are-not-electronic", new_york(
        NYC_RULES_IN_FORCE, "voice", city=True, collector="first_party", who=NO_CONSENT)),
    allowed("nyc-agency-email-with-consent", new_york(
        NYC_RULES_IN_FORCE, city=True, who=EMAIL_CONSENT)),
]  # fmt: skip


@pytest.mark.parametrize(CASE, NEW_YORK_CASES)
def test_new_york_consent(
    asked: Situation, verdict: str, not_before: datetime | None, codes: list[str]
) -> None:
    check(asked, verdict, not_before, codes)


NY_EMPLOYER = "NY_DFS_EMPLOYER_EMAIL"
WORK_EMAIL_CONSENT = debtor(emails=(Email(WORK_EMAIL, "work", True),))
WROTE_FROM_WORK = [mail(JUNE_1, to=WORK_EMAIL, direction="inbound")]

NEW_YORK_EMPLOYER_EMAIL_CASES = [
    # 23 NYCRR 1.6: no email to an address the employer provided, whatever the debtor
    # consented to; unlike Reg F's rule, it has no exception.
    case("dfs-work-address-with-consent", new_york(
        NOON, to=WORK_EMAIL, who=WORK_EMAIL_CONSENT),
        "block", None, [NY_EMPLOYER]),
    case("dfs-work-address-the-debtor-wrote-from", new_york(
        NOON, to=WORK_EMAIL, who=WORK_EMAIL_CONSENT, history=WROTE_FROM_WORK),
        "block", None, [NY_EMPLOYER]),
    case("dfs-work-address-without-consent", new_york(NOON, to=WORK_EMAIL),
         "block", None, [EMPLOYER, DFS, NY_EMPLOYER]),
    case("dfs-in-new-york-city-too", new_york(
        NYC_RULES_IN_FORCE, city=True, to=WORK_EMAIL, who=WORK_EMAIL_CONSENT),
        "block", None, [NY_EMPLOYER]),
    allowed("dfs-does-not-bind-creditors-at-work", new_york(
        NOON, to=WORK_EMAIL, collector="first_party")),
    allowed("dfs-texts-to-a-work-number", new_york(NOON, "sms", to=WORK)),
    allowed("outside-new-york-consent-lifts-reg-f", email_to(who=WORK_EMAIL_CONSENT)),
]  # fmt: skip


@pytest.mark.parametrize(CASE, NEW_YORK_EMPLOYER_EMAIL_CASES)
def test_new_york_never_emails_an_employer_provided_address(
    asked: Situation, verdict: str, not_before: datetime | None, codes: list[str]
) -> None:
    decision = check(asked, verdict, not_before, codes)
    if verdict == "block":
        [reason] = [r for r in decision.reasons if r.code == NY_EMPLOYER]
        assert reason.citation.startswith("23 NYCRR 1.6")
        assert "consent" not in (reason.lifted_by or "")


# A rule's effective dates are the debtor's local dates: the NYC rules start at midnight
# in New York, not at midnight UTC (20:00 EDT the day before).
NYC_EVE = ny(2026, 8, 31, 20)  # 00:00 UTC on September 1
NYC_FIRST_MINUTES = ny(2026, 9, 1, 0, 30)

EFFECTIVE_FROM_CASES = [
    allowed("nyc-rules-not-yet-at-2000-edt-the-day-before", new_york(
        NYC_EVE, city=True, collector="first_party")),
    case("nyc-rules-from-new-york-midnight", new_york(
        NYC_FIRST_MINUTES, city=True, collector="first_party"),
        "block", None, [NYC]),
    # In force if it is in force where the debtor may be, in any candidate zone: at 00:30
    # EDT it is still August 31 in Los Angeles, but already September 1 in New York.
    case("nyc-rules-in-any-candidate-zone", new_york(
        NYC_FIRST_MINUTES, city=True, collector="first_party", who=debtor(NY, other=[LA])),
        "block", None, [NYC]),
]  # fmt: skip


@pytest.mark.parametrize(CASE, EFFECTIVE_FROM_CASES)
def test_a_rule_comes_into_force_on_the_debtors_local_date(
    asked: Situation, verdict: str, not_before: datetime | None, codes: list[str]
) -> None:
    check(asked, verdict, not_before, codes)


NYC_UNTIL_2026 = f"""\
version: "ops-4"
profiles:
  - id: US-NY-NYC
    name: New York City, rules that end with 2026
    jurisdiction: US-NY-NYC
    rules:
      - code: {NYC}
        kind: consent
        channels: [sms, email]
        effective_until: 2026-12-31
        citation: 6 RCNY 5-77
"""

EFFECTIVE_UNTIL_CASES = [
    # 20:00 EST on December 31 is 01:00 UTC on January 1: the last day still runs.
    case("in-force-all-of-its-last-day", new_york(
        ny(2026, 12, 31, 20), city=True, collector="first_party"),
        "block", None, [NYC]),
    allowed("over-the-next-local-morning", new_york(
        ny(2027, 1, 1, 8), city=True, collector="first_party")),
    # 01:00 EST on January 1 is 22:00 PST on December 31: in force for a debtor who may be
    # in Los Angeles (the stricter reading)...
    case("in-force-while-any-candidate-zone-is-on-its-last-day", new_york(
        ny(2027, 1, 1, 1), city=True, collector="first_party", who=debtor(NY, other=[LA])),
        "block", None, [NYC]),
    # ... and over once it is January 1 there too; the window waits for 08:00 PST.
    case("over-once-every-candidate-zone-is-past-it", new_york(
        ny(2027, 1, 1, 3, 30), city=True, collector="first_party", who=debtor(NY, other=[LA])),
        "defer", utc(2027, 1, 1, 16), ["POLICY_TIME_OUTSIDE_WINDOW"]),
]  # fmt: skip


@pytest.mark.parametrize(CASE, EFFECTIVE_UNTIL_CASES)
def test_a_rule_is_in_force_until_the_end_of_its_last_local_date(
    tmp_path: Path, asked: Situation, verdict: str, not_before: datetime | None, codes: list[str]
) -> None:
    check(asked, verdict, not_before, codes, load_ruleset(write(tmp_path, NYC_UNTIL_2026)))


# --- who collects --------------------------------------------------------------------------

EARLY = ny(2025, 6, 3, 7)
LA_EARLY = local(LA, 2025, 6, 3, 7)

COLLECTOR_CASES = [
    case("agency-reg-f-window", situation(EARLY), "defer", utc(2025, 6, 3, 12), [WINDOW]),
    case("creditor-house-window", situation(EARLY, collector="first_party"),
         "defer", utc(2025, 6, 3, 12), ["POLICY_TIME_OUTSIDE_WINDOW"]),
    case("creditor-in-california-rosenthal-not-the-house", situation(
        LA_EARLY, collector="first_party", jurisdiction="US-CA", who=debtor(LA)),
        "defer", utc(2025, 6, 3, 15), ["CA_ROSENTHAL_TIME"]),
    case("agency-in-california-reg-f", situation(
        LA_EARLY, jurisdiction="US-CA", to=LA_MOBILE, who=resident(LA, LA_MOBILE)),
        "defer", utc(2025, 6, 3, 15), [WINDOW]),
    case("creditor-in-texas-house-window", situation(
        local(CHICAGO, 2025, 6, 3, 7), collector="first_party", jurisdiction="US-TX",
        who=debtor(CHICAGO)),
        "defer", utc(2025, 6, 3, 13), ["POLICY_TIME_OUTSIDE_WINDOW"]),
    # The house window has no variant codes: several zones, or none known, same code.
    case("creditor-eastern-mobile-pacific-address", situation(
        ny(2025, 6, 3, 10, 30), to=NYC_MOBILE, collector="first_party", jurisdiction="US-OR",
        who=ET_PT),
        "defer", utc(2025, 6, 3, 15), ["POLICY_TIME_OUTSIDE_WINDOW"]),
    case("creditor-no-location-all-us-zones", situation(
        utc(2025, 6, 3, 12), to=TOLL_FREE, collector="first_party", jurisdiction="US",
        who=NOWHERE),
        "defer", utc(2025, 6, 3, 18), ["POLICY_TIME_OUTSIDE_WINDOW"]),
    # Outside the US the house window still applies to a creditor, in the debtor's zone...
    case("creditor-in-great-britain", situation(
        local("Europe/London", 2025, 6, 3, 7), to=UK_MOBILE, collector="first_party",
        jurisdiction="GB", who=debtor("Europe/London", phones=(UK_PHONE,))),
        "defer", utc(2025, 6, 3, 7), ["POLICY_TIME_OUTSIDE_WINDOW"]),
    # ...and with no zone known there is no country-wide fallback: blocked until one is.
    case("creditor-in-great-britain-zone-unknown", situation(
        utc(2025, 6, 3, 12), channel="sms", to=UK_MOBILE, collector="first_party",
        jurisdiction="GB", who=debtor(None, phones=(UK_PHONE,))),
        "block", None, ["POLICY_LOCATION_UNKNOWN"]),
    allowed("creditor-seven-calls-in-seven-days", situation(
        SAT_AFTERNOON, collector="first_party", history=SEVEN)),
]  # fmt: skip


@pytest.mark.parametrize(CASE, COLLECTOR_CASES)
def test_who_collects(
    asked: Situation, verdict: str, not_before: datetime | None, codes: list[str]
) -> None:
    check(asked, verdict, not_before, codes)


@pytest.mark.parametrize(
    ("asked", "present", "absent"),
    [
        pytest.param(
            situation(SAT_AFTERNOON, collector="first_party", history=SEVEN),
            {"POLICY_TIME_OUTSIDE_WINDOW", "POLICY_DESIGNATED_INCONVENIENT_TIME"},
            {CALL_CAP, POST_CONVERSATION, WINDOW, DESIGNATED, "REGF_CEASE_COMMUNICATION"},
            id="creditor-house-rules-no-reg-f",
        ),
        pytest.param(
            situation(SAT_AFTERNOON, history=SEVEN),
            {CALL_CAP, POST_CONVERSATION, WINDOW, DESIGNATED, "REGF_CEASE_COMMUNICATION"},
            {"POLICY_TIME_OUTSIDE_WINDOW", "POLICY_CEASE_REQUESTED"},
            id="agency-reg-f-no-house-window",
        ),
        pytest.param(
            situation(LA_EARLY, collector="first_party", jurisdiction="US-CA", who=debtor(LA)),
            {"CA_ROSENTHAL_TIME", "CA_ROSENTHAL_CEASE", "POLICY_DISPUTE_HOLD"},
            {"POLICY_TIME_OUTSIDE_WINDOW", "POLICY_CEASE_REQUESTED", WINDOW},
            id="california-creditor-law-replaces-the-house",
        ),
        pytest.param(
            situation(EARLY, collector="first_party", jurisdiction="US-MA"),
            {"MA_HOURS", MA_2_7},
            {"POLICY_TIME_OUTSIDE_WINDOW", WINDOW},
            id="massachusetts-creditor",
        ),
        pytest.param(
            situation(WA_THURSDAY, collector="first_party", jurisdiction="US-WA", who=SEATTLE),
            {"POLICY_TIME_OUTSIDE_WINDOW"},
            {WA_3, WA_WORK},
            id="washington-binds-agencies-only",
        ),
    ],
)
def test_rules_in_scope(asked: Situation, present: set[str], absent: set[str]) -> None:
    evaluated = set(outcomes(evaluate(asked, RULES)))
    assert present <= evaluated
    assert not absent & evaluated


# --- combinations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "jurisdiction", "eight_am"),
    [
        (NY, "US-NJ", utc(2025, 6, 8, 12)),
        (CHICAGO, "US-IL", utc(2025, 6, 8, 13)),
        (DENVER, "US-CO", utc(2025, 6, 8, 14)),
        (PHOENIX, "US-AZ", utc(2025, 6, 8, 15)),
        (LA, "US-CA", utc(2025, 6, 8, 15)),
        (ANCHORAGE, "US-AK", utc(2025, 6, 8, 16)),
        (HONOLULU, "US-HI", utc(2025, 6, 8, 18)),
    ],
)
def test_a_cap_moves_to_a_date_and_the_window_to_its_0800(
    zone: str, jurisdiction: str, eight_am: datetime
) -> None:
    """Seven calls June 1-7: June 8 is allowed from local midnight, which is outside the
    window, so the answer is 08:00 local on June 8 (a Sunday), in each zone."""
    # A number of the debtor's own state (one of another state would weigh its zones).
    number = {"US-HI": HONOLULU_MOBILE, "US-AZ": PHOENIX_MOBILE, "US-CA": LA_MOBILE}.get(
        jurisdiction, MOBILE
    )
    who = debtor(zone) if number == MOBILE else resident(zone, number)
    calls = daily_calls(range(1, 8), zone, to=number)
    asked = situation(
        local(zone, 2025, 6, 7, 15), jurisdiction=jurisdiction, to=number, who=who, history=calls
    )
    check(asked, "defer", eight_am, [CALL_CAP])
    texts = [text(local(zone, 2025, 6, 7, h), to=number) for h in (9, 10)]
    asked = situation(
        local(zone, 2025, 6, 7, 15),
        channel="sms",
        to=number,
        jurisdiction=jurisdiction,
        who=who,
        history=texts,
    )
    check(asked, "defer", eight_am, [SMS_CAP])


COMBINATION_CASES = [
    # Eastern and Pacific: June 8 opens at 08:00 PDT (11:00 EDT).
    case("cap-in-two-zones-waits-for-the-later-0800", situation(
        SAT_AFTERNOON, who=debtor(NY, other=[LA]), history=SEVEN),
        "defer", utc(2025, 6, 8, 15), [CALL_CAP]),
    # 21:30 on June 7: the window and the cap both point to June 8, 08:00 EDT.
    case("window-and-cap-agree", situation(ny(2025, 6, 7, 21, 30), history=SEVEN),
         "defer", utc(2025, 6, 8, 12), [WINDOW, CALL_CAP]),
    # The cap moves to June 8, and the debtor's mornings to 10:00.
    case("cap-then-designated-morning", situation(
        SAT_AFTERNOON, who=debtor(inconvenient=[MORNINGS]), history=SEVEN),
        "defer", utc(2025, 6, 8, 14), [CALL_CAP, DESIGNATED]),
    # A conversation on June 3 bars until June 10; Massachusetts's two calls (June 2 and the
    # conversation's on June 3) only until June 9: the later one wins.
    case("the-later-of-two-bars", situation(
        ny(2025, 6, 5, 15), jurisdiction="US-MA",
        history=[call(ny(2025, 6, 2, 10)), call(ny(2025, 6, 3, 16), "conversation")]),
        "defer", utc(2025, 6, 10, 12), [POST_CONVERSATION, MA_2_7]),
    # A block wins over every deferral.
    case("block-wins-over-defer", situation(EARLY, history=SEVEN, events=held("cease")),
         "block", None, ["REGF_CEASE_COMMUNICATION"]),
    case("every-block-is-named", situation(
        EARLY, channel="sms", automated=True, who=NO_CONSENT, events=[STOP, *held("dispute")]),
        "block", None, ["CARRIER_STOP_KEYWORD", "REGF_DISPUTE_CEASE_COLLECTION",
                        "REGF_ELECTRONIC_OPT_OUT_ADDRESS", TCPA]),
]  # fmt: skip


@pytest.mark.parametrize(CASE, COMBINATION_CASES)
def test_combinations(
    asked: Situation, verdict: str, not_before: datetime | None, codes: list[str]
) -> None:
    check(asked, verdict, not_before, codes)


def test_rules_evaluated_lists_pass_skip_defer_and_block() -> None:
    # A manual call at 07:00 ET under a cease: the TCPA rules do not concern it (skip), the
    # window defers, the cease blocks, the rest pass.
    decision = evaluate(situation(EARLY, events=held("cease")), RULES)
    assert decision.verdict == "block"
    found = outcomes(decision)
    assert found == {
        "BANKRUPTCY_AUTOMATIC_STAY": "pass",
        "POLICY_DO_NOT_CALL": "pass",
        "REGF_CEASE_COMMUNICATION": "block",
        "REGF_REPRESENTED_BY_ATTORNEY": "pass",
        "REGF_DISPUTE_CEASE_COLLECTION": "pass",
        "REGF_PROHIBITED_MEDIUM": "pass",
        TCPA: "skip",
        PRERECORDED_CAP: "skip",
        WINDOW: "defer",
        DESIGNATED: "pass",
        CALL_CAP: "pass",
        POST_CONVERSATION: "pass",
        "POLICY_RAPID_SUCCESSION_REBUTTAL_RISK": "pass",
        "POLICY_DAILY_CAP_REBUTTAL_RISK": "pass",
        "REGF_WORKPLACE_PROHIBITED": "skip",  # a mobile, not a work number
        "REGF_INCONVENIENT_PLACE": "skip",
    }
    record = decision.as_json()
    assert record["decision"] == "block" and record["not_before"] is None
    assert {c["outcome"] for c in record["rules_evaluated"]} == {"pass", "skip", "defer", "block"}
    assert {c["profile"] for c in record["rules_evaluated"]} == {"house", "US"}
    [reason] = record["reasons"]
    assert reason["code"] == "REGF_CEASE_COMMUNICATION"
    assert "cease_withdrawn" in reason["lifted_by"]
    assert record["ruleset_version"] == RULES.version
    assert record["jurisdictions"] == ["US-NJ"]


def test_a_deferral_names_its_instant_and_reason() -> None:
    decision = evaluate(situation(SAT_AFTERNOON, history=SEVEN), RULES)
    record = decision.as_json()
    assert record["not_before"] == "2025-06-08T12:00:00Z"
    [reason] = record["reasons"]
    assert reason["effect"] == "defer"
    assert reason["citation"].startswith("12 CFR 1006.14(b)(2)(i)(A)")
    assert "about debt D1" in reason["detail"]


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        evaluate(situation(datetime(2025, 6, 3, 12)), RULES)  # noqa: DTZ001


# --- an operator's rules: restricted days, and the loader -------------------------------

RESTRICTED = "POLICY_SUNDAYS_AND_HOLIDAYS"
SUNDAYS_AND_HOLIDAYS = f"""\
version: "ops-1"
profiles:
  - id: ops-days
    name: No contact on Sundays or public holidays
    jurisdiction: US
    rules:
      - code: {RESTRICTED}
        kind: restricted_days
        sundays: true
        holidays: true
        citation: Operator policy 7
"""


def write(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def restricted_days(tmp_path: Path) -> RuleSet:
    return load_ruleset(write(tmp_path, SUNDAYS_AND_HOLIDAYS))


RESTRICTED_DAY_CASES = [
    # Saturday June 7, 21:30: Sunday is closed, so Monday June 9, 08:00 EDT.
    case("saturday-night-waits-past-sunday", situation(ny(2025, 6, 7, 21, 30)),
         "defer", utc(2025, 6, 9, 12), [WINDOW, RESTRICTED]),
    case("sunday-morning", situation(ny(2025, 6, 8, 10)),
         "defer", utc(2025, 6, 9, 12), [RESTRICTED]),
    allowed("saturday-is-open", situation(ny(2025, 6, 7, 10))),
    # Thanksgiving, Thursday 2025-11-27: Wednesday night waits until Friday 08:00 EST.
    case("thanksgiving-eve", situation(ny(2025, 11, 26, 21, 30)),
         "defer", utc(2025, 11, 28, 13), [WINDOW, RESTRICTED]),
    case("thanksgiving-day", situation(ny(2025, 11, 27, 10)),
         "defer", utc(2025, 11, 28, 13), [RESTRICTED]),
    allowed("friday-after-thanksgiving-in-new-jersey", situation(ny(2025, 11, 28, 10))),
    # California also keeps the day after Thanksgiving: Saturday 08:00 PST.
    case("california-day-after-thanksgiving", situation(
        local(LA, 2025, 11, 26, 21, 30), jurisdiction="US-CA", to=LA_MOBILE,
        who=resident(LA, LA_MOBILE)),
        "defer", utc(2025, 11, 29, 16), [WINDOW, RESTRICTED]),
    # Independence Day, Friday 2025-07-04: Saturday 08:00 EDT.
    case("independence-day", situation(ny(2025, 7, 4, 12)),
         "defer", utc(2025, 7, 5, 12), [RESTRICTED]),
    # A cap that moves to a Sunday moves on to Monday: both named.
    case("cap-lands-on-a-sunday", situation(SAT_AFTERNOON, history=SEVEN),
         "defer", utc(2025, 6, 9, 12), [CALL_CAP, RESTRICTED]),
]  # fmt: skip


@pytest.mark.parametrize(CASE, RESTRICTED_DAY_CASES)
def test_restricted_days_from_an_override_file(
    restricted_days: RuleSet,
    asked: Situation,
    verdict: str,
    not_before: datetime | None,
    codes: list[str],
) -> None:
    check(asked, verdict, not_before, codes, restricted_days)


def test_the_packaged_rules_restrict_no_day() -> None:
    check(situation(ny(2025, 11, 27, 10)), *ALLOW)
    check(situation(ny(2025, 6, 8, 10)), *ALLOW)


def test_an_override_adds_profiles_and_changes_the_version(restricted_days: RuleSet) -> None:
    assert RULES.version == "2026.12.2"
    assert restricted_days.version.startswith("2026.12.2+ops-1.")
    digest = restricted_days.version.rsplit(".", 1)[1]
    assert re.fullmatch(r"[0-9a-f]{8}", digest)
    assert [p.id for p in restricted_days.profiles] == [*(p.id for p in RULES.profiles), "ops-days"]
    assert restricted_days.sources[-1].endswith("rules.yaml")
    decision = evaluate(situation(ny(2025, 6, 8, 10)), restricted_days)
    assert decision.ruleset_version == restricted_days.version
    assert {"profile": "ops-days", "code": RESTRICTED, "outcome": "defer"} in decision.as_json()[
        "rules_evaluated"
    ]


def test_a_different_override_gives_a_different_version(tmp_path: Path) -> None:
    one = load_ruleset(write(tmp_path, SUNDAYS_AND_HOLIDAYS, "a.yaml"))
    two = load_ruleset(write(tmp_path, SUNDAYS_AND_HOLIDAYS.replace("sundays: true", ""), "b.yaml"))
    assert one.version != two.version
    assert one.version.split(".")[:2] == two.version.split(".")[:2]


def test_an_override_replaces_a_profile_by_id(tmp_path: Path) -> None:
    no_washington_caps = """\
version: "ops-2"
profiles:
  - id: US-WA
    name: Washington, caps reviewed by counsel
    jurisdiction: US-WA
    rules:
      - code: WA_5_PER_WEEK
        kind: count
        collectors: [third_party]
        per: debtor
        limit: 5
        days: 7
        citation: Counsel memo
"""
    rules = load_ruleset(write(tmp_path, no_washington_caps))
    assert [p.id for p in rules.profiles] == [p.id for p in RULES.profiles]
    asked = wa(WA_THURSDAY, history=daily_calls([2, 3, 4], LA))
    check(asked, "defer", utc(2025, 6, 9, 15), [WA_3])
    decision = check(asked, *ALLOW, rules=rules)
    assert outcomes(decision)["WA_5_PER_WEEK"] == "pass"
    assert WA_3 not in outcomes(decision)


HOUSE_WINDOW = "POLICY_TIME_OUTSIDE_WINDOW"


def house_window(start: str, end: str) -> str:
    """docs/compliance.md's override: the house policy with its own window."""
    return f"""\
version: "acme-3"
profiles:
  - id: house
    name: Acme house policy
    jurisdiction: "*"
    rules:
      - code: {HOUSE_WINDOW}
        kind: window
        start: "{start}"
        end: "{end}"
        citation: Acme policy 4.2
"""


HOUSE_WINDOW_CASES = [
    # 09:00-20:00 is stricter than Reg F's and Massachusetts' 08:00-21:00: both apply, and
    # the house's binds at 08:30 and 20:30.
    ("09:00", "20:00", case("agency-0830-waits-for-the-house-0900", situation(
        ny(2025, 6, 3, 8, 30)), "defer", utc(2025, 6, 3, 13), [HOUSE_WINDOW])),
    ("09:00", "20:00", case("agency-2030-waits-for-the-next-house-0900", situation(
        ny(2025, 6, 3, 20, 30)), "defer", utc(2025, 6, 4, 13), [HOUSE_WINDOW])),
    ("09:00", "20:00", case("agency-0730-both-windows-closed", situation(
        ny(2025, 6, 3, 7, 30)), "defer", utc(2025, 6, 3, 13), [HOUSE_WINDOW, WINDOW])),
    ("09:00", "20:00", allowed("agency-0900-both-open", situation(ny(2025, 6, 3, 9)))),
    ("09:00", "20:00", case("massachusetts-creditor-0830", situation(
        ny(2025, 6, 3, 8, 30), jurisdiction="US-MA", collector="first_party"),
        "defer", utc(2025, 6, 3, 13), [HOUSE_WINDOW])),
    ("09:00", "20:00", case("massachusetts-agency-0830", situation(
        ny(2025, 6, 3, 8, 30), jurisdiction="US-MA"),
        "defer", utc(2025, 6, 3, 13), [HOUSE_WINDOW])),
    ("09:00", "20:00", case("california-creditor-2030-rosenthal-is-wider", situation(
        local(LA, 2025, 6, 3, 20, 30), jurisdiction="US-CA", collector="first_party",
        to=LA_MOBILE, who=resident(LA, LA_MOBILE)),
        "defer", utc(2025, 6, 4, 16), [HOUSE_WINDOW])),
    # Neither holds the other (07:00-20:00 against 08:00-21:00): both apply, each binding
    # at its own end.
    ("07:00", "20:00", case("overlapping-0730-the-law-binds", situation(
        ny(2025, 6, 3, 7, 30)), "defer", utc(2025, 6, 3, 12), [WINDOW])),
    ("07:00", "20:00", case("overlapping-2030-the-house-binds", situation(
        ny(2025, 6, 3, 20, 30)), "defer", utc(2025, 6, 4, 12), [HOUSE_WINDOW])),
    # A wider house window adds nothing where a law's window applies: it stands back...
    ("07:00", "22:00", case("wider-house-stands-back", situation(
        ny(2025, 6, 3, 7, 30)), "defer", utc(2025, 6, 3, 12), [WINDOW])),
    # ... and binds where none does (a creditor outside California and Massachusetts).
    ("07:00", "22:00", allowed("wider-house-binds-a-creditor", situation(
        ny(2025, 6, 3, 7, 30), collector="first_party"))),
]  # fmt: skip


@pytest.mark.parametrize(
    ("start", "end", *CASE),
    [
        pytest.param(start, end, *param.values, id=param.id)
        for start, end, param in HOUSE_WINDOW_CASES
    ],
)
def test_a_stricter_house_window_binds_beside_the_laws(
    tmp_path: Path,
    start: str,
    end: str,
    asked: Situation,
    verdict: str,
    not_before: datetime | None,
    codes: list[str],
) -> None:
    rules = load_ruleset(write(tmp_path, house_window(start, end)))
    check(asked, verdict, not_before, codes, rules)


def test_the_record_says_which_window_deferred_and_which_stood_back(tmp_path: Path) -> None:
    stricter = load_ruleset(write(tmp_path, house_window("09:00", "20:00"), "stricter.yaml"))
    found = outcomes(evaluate(situation(ny(2025, 6, 3, 8, 30)), stricter))
    assert (found[HOUSE_WINDOW], found[WINDOW]) == ("defer", "pass")
    wider = load_ruleset(write(tmp_path, house_window("07:00", "22:00"), "wider.yaml"))
    found = outcomes(evaluate(situation(ny(2025, 6, 3, 7, 30)), wider))
    assert found[WINDOW] == "defer"
    assert HOUSE_WINDOW not in found


def test_a_house_window_sharing_no_hour_with_the_laws_is_blamed_as_the_rule_sets_fault(
    tmp_path: Path,
) -> None:
    # A house window of 06:00-07:30 beside Reg F's 08:00-21:00: nothing is ever open. At
    # 08:30, Reg F's window is open and at 22:00 both are closed: either way the house's
    # window is the one blamed, Reg F's passes, and the reason says the rule set is at
    # fault, not the debtor's designated times, whether they designated any or not; and
    # whether the house's window comes before Reg F's in the rule set or after it (a
    # profile of its own, added after the packaged ones).
    apart = house_window("06:00", "07:30")
    added = apart.replace("id: house", "id: acme-hours")
    designated = debtor(inconvenient=[InconvenientTime(time(12), time(13))])
    for rules, asked in itertools.product(
        [load_ruleset(write(tmp_path, text, name)) for text, name in
         [(apart, "replaced.yaml"), (added, "added.yaml")]],
        [situation(ny(2025, 6, 3, 8, 30)),
         situation(ny(2025, 6, 3, 22)),
         situation(ny(2025, 6, 3, 8, 30), who=designated),
         situation(ny(2025, 6, 3, 8, 30), who=debtor(other=["America/Chicago"]))],
    ):  # fmt: skip
        decision = check(asked, "block", None, [HOUSE_WINDOW], rules)
        assert outcomes(decision)[HOUSE_WINDOW] == "block"
        assert outcomes(decision)[WINDOW] == "pass"
        [reason] = decision.reasons
        assert "share no hour" in reason.detail and "configuration" in reason.detail
        assert "designated" not in (reason.lifted_by or "")
        assert "rule set" in (reason.lifted_by or "")


def test_law_windows_sharing_no_hour_blame_the_latest_start_and_the_earliest_end(
    tmp_path: Path,
) -> None:
    # An operator's profile for New Jersey is read as a law's: with Reg F's, the window
    # opening latest and the one closing earliest are blamed.
    state = """\
version: "acme-9"
profiles:
  - id: nj-hours
    name: New Jersey hours
    jurisdiction: US-NJ
    rules:
      - code: NJ_EARLY_HOURS
        kind: window
        start: "06:00"
        end: "07:30"
        citation: Acme reading of NJ
"""
    rules = load_ruleset(write(tmp_path, state))
    decision = check(situation(ny(2025, 6, 3, 8, 30)), "block", None,
                     [WINDOW, "NJ_EARLY_HOURS"], rules)  # fmt: skip
    assert {r.effect for r in decision.reasons} == {"block"}


def test_a_house_hold_wider_than_the_laws_binds_beside_it(tmp_path: Path) -> None:
    # The house holds every address once the employer prohibits contact at work; Reg F's
    # rule holds work addresses only, so it does not stand in for the house's.
    wider = """\
version: "acme-4"
profiles:
  - id: house
    name: Acme house policy
    jurisdiction: "*"
    rules:
      - code: POLICY_WORKPLACE_PROHIBITED
        kind: hold
        event: workplace_prohibited
        citation: Acme policy 5.1
"""
    rules = load_ruleset(write(tmp_path, wider))
    prohibited = held("workplace_prohibited")
    check(situation(NOON, events=prohibited), "block", None, ["POLICY_WORKPLACE_PROHIBITED"], rules)
    check(
        situation(NOON, to=WORK, events=prohibited),
        "block",
        None,
        ["POLICY_WORKPLACE_PROHIBITED", "REGF_WORKPLACE_PROHIBITED"],
        rules,
    )
    check(situation(NOON, events=prohibited), *ALLOW)


PROFILE = """\
version: "ops-3"
profiles:
  - id: ops-bad
    name: A profile with a mistake
    jurisdiction: US
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("version: [unclosed\n", "not valid YAML", id="bad-yaml"),
        pytest.param(
            PROFILE + "    rules:\n      - {code: POLICY_X, kind: count, limit: 2, days: 7,"
            " colour: red, citation: c}\n",
            "profile ops-bad, rule 1 (POLICY_X), colour: Extra inputs are not permitted",
            id="unknown-rule-field",
        ),
        pytest.param(
            PROFILE + "    colour: red\n",
            "profile ops-bad, colour: Extra inputs are not permitted",
            id="unknown-profile-field",
        ),
        pytest.param(
            PROFILE + "    all_zones: [America/New_York, Mars/Base]\n",
            "profile ops-bad, all_zones: Value error, 'Mars/Base' is not an IANA time zone",
            id="bad-zone",
        ),
        pytest.param(
            PROFILE + "    region_zones: {US-NJ: [America/New_Yrok]}\n",
            "profile ops-bad, region_zones: Value error, 'America/New_Yrok' is not an IANA",
            id="bad-region-zone",
        ),
        pytest.param(
            PROFILE + "    rules:\n      - {code: POLICY_W, kind: window, start: '21:00',"
            " end: '08:00', citation: c}\n",
            "profile ops-bad, rule 1 (POLICY_W), end: Value error, must be later than start",
            id="window-ends-before-it-starts",
        ),
        pytest.param(
            PROFILE + "    rules:\n      - {code: POLICY_OK, kind: opt_out, citation: c}\n"
            "      - {code: POLICY_W, kind: count, limit: 0, days: 7, citation: c}\n",
            "profile ops-bad, rule 2 (POLICY_W), limit: Input should be greater than or equal to 1",
            id="limit-out-of-range",
        ),
        pytest.param(
            PROFILE + "    rules:\n      - {code: POLICY_W, kind: curfew, citation: c}\n",
            "profile ops-bad, rule 1 (POLICY_W), Input tag 'curfew' found using 'kind'",
            id="unknown-kind",
        ),
        pytest.param(
            PROFILE + PROFILE.split("profiles:\n", 1)[1],
            "profile id 'ops-bad' is used twice",
            id="duplicate-profile-id",
        ),
        pytest.param(
            'version: "v"\nprofiles:\n  - name: Nameless\n    jurisdiction: US\n',
            "profile 1, id: Field required",
            id="profile-without-id",
        ),
    ],
)
def test_mistakes_in_an_override_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_ruleset(path)
    assert str(raised.value).startswith(f"{path}: ")
    assert message in str(raised.value)


def test_an_unreadable_override_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot be read"):
        load_ruleset(tmp_path / "missing.yaml")


RAPID = "POLICY_RAPID_SUCCESSION_REBUTTAL_RISK"
DAILY = "POLICY_DAILY_CAP_REBUTTAL_RISK"

REBUTTAL_CASES = [
    # Comment 14(b)(2)(i)-2: calls in quick succession to one number, or many in a day, can
    # rebut the presumption of compliance. An hour between calls to one number...
    case("a-call-ten-minutes-after-another", situation(
        ny(2025, 6, 4, 10, 10), history=[call(ny(2025, 6, 4, 10))]),
        "defer", utc(2025, 6, 4, 15), [RAPID]),
    allowed("an-hour-after", situation(ny(2025, 6, 4, 11), history=[call(ny(2025, 6, 4, 10))])),
    allowed("another-number-at-once", situation(
        ny(2025, 6, 4, 10, 10), to=OTHER_MOBILE, history=[call(ny(2025, 6, 4, 10))])),
    allowed("a-text-at-once", situation(
        ny(2025, 6, 4, 10, 10), channel="sms", to=MOBILE, history=[call(ny(2025, 6, 4, 10))])),
    # ... and three a day to one number (busy signals not counted); the next local day opens.
    case("a-fourth-call-to-one-number-in-a-day", situation(
        ny(2025, 6, 4, 16), debts=("D2",),
        history=[call(ny(2025, 6, 4, h), debts=("D1",)) for h in (9, 11, 13)]),
        "defer", utc(2025, 6, 5, 12), [DAILY]),
    allowed("busy-signals-do-not-count", situation(
        ny(2025, 6, 4, 16), history=[call(ny(2025, 6, 4, h), "busy") for h in (9, 11, 13)])),
    allowed("a-fourth-call-to-another-number", situation(
        ny(2025, 6, 4, 16), to=OTHER_MOBILE,
        history=[call(ny(2025, 6, 4, h)) for h in (9, 11, 13)])),
]  # fmt: skip


@pytest.mark.parametrize(CASE, REBUTTAL_CASES)
def test_calls_that_could_rebut_the_presumption_of_compliance_wait(
    asked: Situation, verdict: str, not_before: datetime | None, codes: list[str]
) -> None:
    check(asked, verdict, not_before, codes)


WORKPLACE_CASES = [
    # 1006.6(b)(3): an employer that prohibits it: no contact at work, by phone or email.
    case("a-work-number-after-the-employers-prohibition", situation(
        NOON, to=WORK, events=held("workplace_prohibited")),
        "block", None, ["REGF_WORKPLACE_PROHIBITED"]),
    case("a-work-email-too", situation(
        NOON, channel="email", to=WORK_EMAIL, events=held("workplace_prohibited")),
        "block", None, ["REGF_WORKPLACE_PROHIBITED", "REGF_EMPLOYER_EMAIL"]),
    allowed("the-mobile-is-not-the-workplace", situation(
        NOON, events=held("workplace_prohibited"))),
    allowed("lifted-when-the-employer-allows-it", situation(
        NOON, to=WORK, events=held("workplace_prohibited", "workplace_allowed"))),
    # A creditor is held back by the house rule that restates it.
    case("a-creditor-too", situation(
        NOON, to=WORK, collector="first_party", events=held("workplace_prohibited")),
        "block", None, ["POLICY_WORKPLACE_PROHIBITED"]),
    # 1006.6(b)(1)(ii): the debtor said contact at work is inconvenient ("don't call me at
    # work"): no contact at work either, whatever the employer allows.
    case("a-work-number-the-debtor-said-is-inconvenient", situation(
        NOON, to=WORK, events=held("workplace_inconvenient")),
        "block", None, ["REGF_INCONVENIENT_PLACE"]),
    case("a-work-email-the-debtor-said-is-inconvenient", situation(
        NOON, channel="email", to=WORK_EMAIL, events=held("workplace_inconvenient")),
        "block", None, ["REGF_INCONVENIENT_PLACE", "REGF_EMPLOYER_EMAIL"]),
    allowed("the-mobile-stays-open", situation(
        NOON, events=held("workplace_inconvenient"))),
    case("the-employers-leave-does-not-lift-the-debtors-word", situation(
        NOON, to=WORK, events=held("workplace_inconvenient", "workplace_allowed")),
        "block", None, ["REGF_INCONVENIENT_PLACE"]),
    # Stamped a moment ahead (another writer's clock): a restriction holds at once.
    case("the-debtors-word-holds-at-once", situation(
        NOON, to=WORK, events=[event(NOON + timedelta(minutes=2), "workplace_inconvenient")]),
        "block", None, ["REGF_INCONVENIENT_PLACE"]),
    allowed("lifted-when-the-debtor-agrees-again", situation(
        NOON, to=WORK, events=held("workplace_inconvenient", "workplace_convenient"))),
    case("a-creditor-inconvenienced-too", situation(
        NOON, to=WORK, collector="first_party", events=held("workplace_inconvenient")),
        "block", None, ["POLICY_INCONVENIENT_PLACE"]),
]  # fmt: skip


@pytest.mark.parametrize(CASE, WORKPLACE_CASES)
def test_no_contact_at_work_when_the_employer_prohibits_it_or_the_debtor_asks(
    asked: Situation, verdict: str, not_before: datetime | None, codes: list[str]
) -> None:
    check(asked, verdict, not_before, codes)


OPT_OUT_SCOPE_CASES = [
    # A START from one number lifts that number's STOP, not another's...
    case("a-start-from-another-number", situation(
        NOON, channel="sms", to=OTHER_MOBILE, events=[
            event(JUNE_1, "opt_out", channel="sms", address=OTHER_MOBILE),
            event(JUNE_2, "opt_in", channel="sms", address=MOBILE)]),
        "block", None, ["CARRIER_STOP_KEYWORD", "REGF_ELECTRONIC_OPT_OUT_ADDRESS"]),
    # ... an opt-in without an address (a medium allowed again) lifts no number's STOP...
    case("a-medium-allowed-again", situation(
        NOON, channel="sms", events=[STOP, event(JUNE_2, "opt_in", channel="sms")]),
        "block", None, ["CARRIER_STOP_KEYWORD", "REGF_ELECTRONIC_OPT_OUT_ADDRESS"]),
    # ... nor does an opt-in without a channel.
    case("an-opt-in-without-a-channel", situation(
        NOON, channel="sms", events=[STOP, event(JUNE_2, "opt_in", address=MOBILE)]),
        "block", None, ["CARRIER_STOP_KEYWORD", "REGF_ELECTRONIC_OPT_OUT_ADDRESS"]),
    # An opt-out without a channel holds on every channel; without an address, for every
    # address, until an opt-in without one.
    case("an-opt-out-without-a-channel", situation(
        NOON, channel="sms", events=[event(JUNE_1, "opt_out", address=MOBILE)]),
        "block", None, ["CARRIER_STOP_KEYWORD", "REGF_ELECTRONIC_OPT_OUT_ADDRESS"]),
    case("an-opt-out-without-an-address", situation(
        NOON, channel="sms", to=OTHER_MOBILE, events=[event(JUNE_1, "opt_out", channel="sms")]),
        "block", None, ["CARRIER_STOP_KEYWORD", "REGF_ELECTRONIC_OPT_OUT_ADDRESS"]),
    allowed("lifted-by-an-opt-in-without-one", situation(
        NOON, channel="sms", to=OTHER_MOBILE, events=[
            event(JUNE_1, "opt_out", channel="sms"), event(JUNE_2, "opt_in", channel="sms")])),
    allowed("start-lifts-its-own-stop", situation(NOON, channel="sms", events=[STOP, START])),
]  # fmt: skip


@pytest.mark.parametrize(CASE, OPT_OUT_SCOPE_CASES)
def test_an_opt_out_is_lifted_only_by_an_opt_in_about_the_same_thing(
    asked: Situation, verdict: str, not_before: datetime | None, codes: list[str]
) -> None:
    check(asked, verdict, not_before, codes)


def test_a_call_stamped_a_moment_ahead_still_holds_the_next_one_back() -> None:
    # Another process's clock runs 30 s ahead: its call counts, on the safe side.
    asked = situation(ny(2025, 6, 4, 10), history=[call(ny(2025, 6, 4, 10, 0, 30))])
    check(asked, "defer", utc(2025, 6, 4, 15, 0, 30), [RAPID])


def test_contacts_stamped_a_moment_ahead_count_toward_the_caps_and_bars() -> None:
    # Six calls on June 1-6 and a seventh to the landline stamped 2 s after the check:
    # the eighth call in seven days, to the mobile, waits for June 8.
    ahead = SAT_AFTERNOON + timedelta(seconds=2)
    calls = [*daily_calls(range(1, 7), to=LANDLINE), call(ahead, to=LANDLINE)]
    check(situation(SAT_AFTERNOON, history=calls), "defer", utc(2025, 6, 8, 12), [CALL_CAP])
    # A conversation recorded (by a webhook) 2 s after the check bars calls from today.
    talked = [event(NOON + timedelta(seconds=2), "conversation")]
    check(situation(NOON, events=talked), "defer", utc(2025, 6, 10, 12), [POST_CONVERSATION])


def test_a_conversation_a_moment_ahead_of_midnight_starts_the_bar_on_the_checks_date() -> None:
    # Checked at 23:59:59 (June 3), a conversation stamped 2 s later, past midnight: June 3
    # is day one, taken once against the check's own instant and not each instant the
    # search tries, so calls wait for June 10, not June 11.
    now = ny(2025, 6, 3, 23, 59, 59)
    talked = [event(now + timedelta(seconds=2), "conversation")]
    codes = ["REGF_TIME_OUTSIDE_WINDOW", POST_CONVERSATION]  # and 23:59 is after 21:00
    check(situation(now, events=talked), "defer", utc(2025, 6, 10, 12), codes)


def test_contacts_stamped_far_ahead_are_bad_data_and_hold_nothing_back() -> None:
    # A conversation stamped 2027 (a mistyped year): counted as made at each instant the
    # search tried, it barred calls for ever, blamed on Reg F's window. Beyond the clock
    # skew allowed (CLOCK_SKEW), a stamp ahead is left out.
    check(situation(NOON, events=[event(ny(2027, 1, 1, 12), "conversation")]), *ALLOW)
    calls = [call(ny(2027, 1, day, 12), to=LANDLINE) for day in range(1, 8)]
    for now in (NOON, NOON + timedelta(days=30)):
        check(situation(now, history=calls), *ALLOW)
    # Nor does the gap between calls run from such a stamp.
    check(situation(NOON, history=[call(NOON + timedelta(days=400))]), *ALLOW)


def test_only_a_stamp_within_the_clock_skew_counts_as_made_now() -> None:
    # Seven calls asked about at NOON, in the hours after it (a past instant asked again,
    # `compliance explain --at`): not yet made then, they count for nothing.
    later = [call(NOON + timedelta(days=2, hours=h), to=LANDLINE) for h in range(7)]
    check(situation(NOON, history=later), *ALLOW)
    # At the edge of the allowance a stamp still counts; a second beyond it, not.
    edge = NOON + CLOCK_SKEW
    check(situation(NOON, history=[call(edge)]), "defer", utc(2025, 6, 3, 17, 5), [RAPID])
    check(situation(NOON, history=[call(edge + timedelta(seconds=1))]), *ALLOW)
