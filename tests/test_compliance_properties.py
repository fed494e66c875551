"""Properties of the engine's decisions over random candidate zones, instants (2025-2027,
with daylight-saving transition days drawn often) and contact histories, and a greedy
dialer that calls whenever the engine allows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outreach.compliance import timing
from outreach.compliance.decision import Decision
from outreach.compliance.engine import evaluate
from outreach.compliance.facts import Contact, Debtor, Email, Phone, Situation
from outreach.compliance.frequency import PastContact
from outreach.compliance.rules import ConversationRuleSpec, CountRuleSpec, load_ruleset

RULES = load_ruleset()
US_ZONES = [
    "America/New_York", "America/Chicago", "America/Denver", "America/Phoenix",
    "America/Los_Angeles", "America/Anchorage", "Pacific/Honolulu",
]  # fmt: skip
OTHER_ZONES = ["America/Puerto_Rico", "Europe/London", "Australia/Sydney"]
# Non-geographic (NANP 500) numbers: no state of their own, whose zones would be candidates.
MOBILE = "+15005550101"
LANDLINE = "+15005550102"
EMAIL = "pat@example.net"
OPEN, CLOSE = time(8), time(21)
WINDOW_CODES = {"REGF_TIME_OUTSIDE_WINDOW", "POLICY_TIME_OUTSIDE_WINDOW"}

# Daylight-saving transition dates, from the rules of each place (second Sunday of March and
# first of November in the US; last Sunday of March and October in the UK; first Sunday of
# April and October in New South Wales).
US_CHANGES = [
    date(2025, 3, 9), date(2025, 11, 2), date(2026, 3, 8),
    date(2026, 11, 1), date(2027, 3, 14), date(2027, 11, 7),
]  # fmt: skip
UK_CHANGES = [
    date(2025, 3, 30), date(2025, 10, 26), date(2026, 3, 29),
    date(2026, 10, 25), date(2027, 3, 28), date(2027, 10, 31),
]  # fmt: skip
NSW_CHANGES = [
    date(2025, 4, 6), date(2025, 10, 5), date(2026, 4, 5),
    date(2026, 10, 4), date(2027, 4, 4), date(2027, 10, 3),
]  # fmt: skip
CHANGE_DAYS = {
    **dict.fromkeys(US_ZONES, US_CHANGES),  # Phoenix and Honolulu keep standard time
    "America/Puerto_Rico": US_CHANGES,
    "Europe/London": UK_CHANGES,
    "Australia/Sydney": NSW_CHANGES,
}
OBSERVES_DST = [
    "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles",
    "America/Anchorage", "Europe/London", "Australia/Sydney",
]  # fmt: skip


def test_the_transition_days_are_right() -> None:
    """The hand-written dates are the days each zone's offset changes (and only those)."""
    for zone in OBSERVES_DST:
        tz = ZoneInfo(zone)
        for day in CHANGE_DAYS[zone]:
            before = datetime.combine(day, time(0), tz).utcoffset()
            after = datetime.combine(day + timedelta(days=1), time(0), tz).utcoffset()
            assert before != after, (zone, day)
    for zone in ("America/Phoenix", "Pacific/Honolulu"):
        tz = ZoneInfo(zone)
        offsets = {datetime.combine(day, time(12), tz).utcoffset() for day in US_CHANGES}
        assert len(offsets) == 1


@st.composite
def day_of_change(draw: st.DrawFn, zones: Sequence[str] = tuple(CHANGE_DAYS)) -> datetime:
    """An instant on a transition day, anywhere in that zone's local day."""
    zone = draw(st.sampled_from(zones))
    tz = ZoneInfo(zone)
    day = draw(st.sampled_from(CHANGE_DAYS[zone]))
    start = datetime.combine(day, time(0), tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tz).astimezone(UTC)
    seconds = draw(st.integers(min_value=0, max_value=int((end - start).total_seconds()) - 1))
    return start + timedelta(seconds=seconds)


INSTANTS = st.one_of(
    st.datetimes(
        min_value=datetime(2025, 1, 1),  # noqa: DTZ001 (hypothesis bounds are naive)
        max_value=datetime(2027, 12, 31),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    day_of_change(),
)
ZONE_SETS = st.lists(st.sampled_from(US_ZONES + OTHER_ZONES), min_size=1, max_size=4, unique=True)
CHANNELS = st.sampled_from(["voice", "sms", "email"])
COLLECTORS = st.sampled_from(["third_party", "first_party"])
DEBTS = st.sampled_from([("D1",), ("D2",), ("D1", "D2")])
OUTCOMES = ["no_answer", "voicemail", "limited_content_message", "conversation", "busy",
            "not_in_service", "delivered", "failed"]  # fmt: skip


@st.composite
def histories(draw: st.DrawFn, before: datetime) -> list[PastContact]:
    """Up to 25 past contacts in the 30 days before ``before``."""
    found = []
    for _ in range(draw(st.integers(min_value=0, max_value=25))):
        minutes = draw(st.integers(min_value=1, max_value=30 * 24 * 60))
        found.append(
            PastContact(
                before - timedelta(minutes=minutes),
                draw(CHANNELS),
                draw(st.sampled_from(["outbound", "outbound", "inbound"])),
                draw(DEBTS),
                draw(st.sampled_from(OUTCOMES)),
                draw(st.sampled_from([MOBILE, LANDLINE, EMAIL])),
            )
        )
    return found


def asked(
    now: datetime,
    zones: Sequence[str],
    *,
    channel: str = "voice",
    collector: str = "third_party",
    history: Sequence[PastContact] = (),
    debts: tuple[str, ...] = ("D1",),
    to: str | None = None,
) -> Situation:
    """A manual contact with a US debtor of no known state who may be in any of ``zones``
    (the first is the address's; the phones carry it too and belong to no state, so the
    candidates are exactly ``zones``)."""
    home = zones[0]
    debtor = Debtor(
        timezone=home,
        other_timezones=tuple(zones[1:]),
        phones=(Phone(MOBILE, "mobile", home, True), Phone(LANDLINE, "landline", home, True)),
        emails=(Email(EMAIL, "personal"),),
    )
    if to is None:
        to = EMAIL if channel == "email" else MOBILE
    return Situation(
        now=now,
        jurisdiction="US",
        collector=collector,
        debtor=debtor,
        contact=Contact(channel, to, debts, automated=False),
        history=tuple(history),
    )


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def inside(at: datetime, zone: str) -> bool:
    return OPEN <= at.astimezone(ZoneInfo(zone)).time() < CLOSE


def common_hour_ahead(now: datetime, zones: Sequence[str], days: int = 21) -> bool:
    """Whether any quarter hour in the next ``days`` days is inside the window everywhere."""
    probe = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
    return any(
        all(inside(probe + timedelta(minutes=15 * step), z) for z in zones)
        for step in range(1, days * 96)
    )


def assert_inside_everywhere(decision: Decision, now: datetime, zones: Sequence[str]) -> None:
    assert {zone for zone, _ in decision.zones} == set(zones)
    if decision.verdict == "allow":
        assert all(inside(now, zone) for zone in zones), (now, zones)
    elif decision.verdict == "defer":
        assert decision.not_before is not None and decision.not_before > now
        assert all(inside(decision.not_before, zone) for zone in zones), decision.not_before
    else:  # zones too far apart to share an hour (New York, London and Sydney)
        assert set(decision.codes) <= WINDOW_CODES, decision.codes
        assert not common_hour_ahead(now, zones)


@settings(max_examples=200, deadline=None)
@given(now=INSTANTS, zones=ZONE_SETS, channel=CHANNELS, collector=COLLECTORS, data=st.data())
def test_an_allowed_contact_is_inside_0800_2100_in_every_candidate_zone(
    now: datetime, zones: list[str], channel: str, collector: str, data: st.DataObject
) -> None:
    history = data.draw(histories(now))
    situation = asked(now, zones, channel=channel, collector=collector, history=history)
    assert_inside_everywhere(evaluate(situation, RULES), now, zones)


@settings(max_examples=200, deadline=None)
@given(now=INSTANTS, zones=ZONE_SETS, channel=CHANNELS, collector=COLLECTORS)
def test_with_no_history_the_answer_at_not_before_is_allow(
    now: datetime, zones: list[str], channel: str, collector: str
) -> None:
    decision = evaluate(asked(now, zones, channel=channel, collector=collector), RULES)
    if decision.verdict != "defer":
        return
    assert set(decision.codes) <= WINDOW_CODES | {"REGF_TIME_OUTSIDE_WINDOW_MULTI_TZ"}
    assert decision.not_before is not None
    again = evaluate(asked(decision.not_before, zones, channel=channel, collector=collector), RULES)
    assert (again.verdict, again.codes) == ("allow", ["OK"])


@settings(max_examples=150, deadline=None)
@given(now=INSTANTS, zones=ZONE_SETS, channel=CHANNELS, collector=COLLECTORS, data=st.data())
def test_at_not_before_the_window_does_not_defer_again(
    now: datetime, zones: list[str], channel: str, collector: str, data: st.DataObject
) -> None:
    """With a history the caps may defer too; at ``not_before`` every rule is met at once,
    so neither the window nor anything else defers again."""
    history = data.draw(histories(now))
    decision = evaluate(
        asked(now, zones, channel=channel, collector=collector, history=history), RULES
    )
    if decision.verdict != "defer":
        return
    assert decision.not_before is not None
    again = evaluate(
        asked(decision.not_before, zones, channel=channel, collector=collector, history=history),
        RULES,
    )
    window = {c.code: c.outcome for c in again.checks}
    assert all(window[code] == "pass" for code in WINDOW_CODES & set(window))
    assert again.verdict == "allow", again.codes


# Mostly unanswered calls, so that the seven-call cap is reached as well as the bar after
# a conversation.
ATTEMPTS = [
    *["no_answer"] * 6, *["voicemail"] * 3, "limited_content_message", "busy", "busy",
    "not_in_service", "conversation", "inbound conversation",
]  # fmt: skip
STEP = st.tuples(
    st.integers(min_value=1, max_value=8 * 60),  # minutes to the next attempt
    st.sampled_from(ATTEMPTS),
    DEBTS,
    st.sampled_from([MOBILE, LANDLINE]),
)


@settings(max_examples=100, deadline=None)
@given(start=INSTANTS, zones=ZONE_SETS, steps=st.lists(STEP, min_size=40, max_size=80))
def test_a_greedy_dialer_keeps_the_reg_f_presumptions(
    start: datetime,
    zones: list[str],
    steps: list[tuple[int, str, tuple[str, ...], str]],
) -> None:
    """Over three weeks, call whenever the engine allows (at ``not_before`` when it defers),
    with random outcomes and debts; the debtor sometimes calls in and talks. Then: no seven
    local dates in any candidate zone hold more than seven counted calls about a debt, no
    call about a debt falls on the seven dates from a conversation about it, and every call
    is inside the window everywhere."""
    end = start + timedelta(days=21)
    history: list[PastContact] = []
    at = start
    for minutes, what, debts, number in steps:
        if at >= end:
            break
        if what == "inbound conversation":  # the debtor calls; no decision is asked
            history.append(PastContact(at, "voice", "inbound", debts, "conversation", number))
            at += timedelta(minutes=minutes)
            continue
        decision = evaluate(asked(at, zones, history=history, debts=debts, to=number), RULES)
        if decision.verdict == "block":  # zones that share no hour: nothing to dial
            assert set(decision.codes) <= WINDOW_CODES and not common_hour_ahead(at, zones)
            break
        if decision.verdict == "defer":
            assert decision.not_before is not None
            at = decision.not_before
            again = evaluate(asked(at, zones, history=history, debts=debts, to=number), RULES)
            assert again.verdict == "allow", again.codes
        history.append(PastContact(at, "voice", "outbound", debts, what, number))
        at += timedelta(minutes=minutes)

    placed = [c for c in history if c.direction == "outbound"]
    conversations = [c for c in history if c.outcome == "conversation"]
    assert all(inside(c.at, zone) for c in placed for zone in zones)
    for zone in zones:
        tz = ZoneInfo(zone)
        for debt in ("D1", "D2"):
            counted = sorted(
                c.at.astimezone(tz).date()
                for c in placed
                if debt in c.debts and c.outcome not in ("busy", "not_in_service")
            )
            for first in counted:
                in_week = [d for d in counted if first <= d <= first + timedelta(days=6)]
                assert len(in_week) <= 7, (zone, debt, in_week)
            for talk in (c for c in conversations if debt in c.debts):
                spoke_on = talk.at.astimezone(tz).date()
                for later in (c for c in placed if debt in c.debts and c.at > talk.at):
                    assert later.at.astimezone(tz).date() >= spoke_on + timedelta(days=7), (
                        zone, debt, talk.at, later.at,
                    )  # fmt: skip


@pytest.mark.parametrize(
    ("now", "zone", "expected"),
    [
        # New York springs forward 2025-03-09: 00:00 EST is 05:00Z; 08:00 EDT is 12:00Z.
        (utc(2025, 3, 9, 5), "America/New_York", utc(2025, 3, 9, 12)),
        # ...and falls back 2025-11-02: 01:00 EDT is 05:00Z; 08:00 EST is 13:00Z.
        (utc(2025, 11, 2, 5), "America/New_York", utc(2025, 11, 2, 13)),
        # 21:00 EDT on the day it springs forward is 01:00Z on 03-10; then 08:00 EDT.
        (utc(2025, 3, 10, 1), "America/New_York", utc(2025, 3, 10, 12)),
        # Chicago 2025-11-02: 01:00 CDT is 06:00Z; 08:00 CST is 14:00Z.
        (utc(2025, 11, 2, 6), "America/Chicago", utc(2025, 11, 2, 14)),
        # Denver 2026-03-08: 01:00 MST is 08:00Z; 08:00 MDT is 14:00Z.
        (utc(2026, 3, 8, 8), "America/Denver", utc(2026, 3, 8, 14)),
        # Phoenix keeps MST that day: 08:00 MST is 15:00Z.
        (utc(2026, 3, 8, 8), "America/Phoenix", utc(2026, 3, 8, 15)),
        # Los Angeles 2027-11-07: 01:00 PDT is 08:00Z; 08:00 PST is 16:00Z.
        (utc(2027, 11, 7, 8), "America/Los_Angeles", utc(2027, 11, 7, 16)),
        # Anchorage 2025-03-09: 01:00 AKST is 10:00Z; 08:00 AKDT is 16:00Z.
        (utc(2025, 3, 9, 10), "America/Anchorage", utc(2025, 3, 9, 16)),
        # Honolulu keeps HST: 08:00 is 18:00Z on 2027-03-14 as on any day.
        (utc(2027, 3, 14, 10), "Pacific/Honolulu", utc(2027, 3, 14, 18)),
        # London 2025-03-30: 08:00 BST is 07:00Z; 2025-10-26: 08:00 GMT is 08:00Z.
        (utc(2025, 3, 30, 0, 30), "Europe/London", utc(2025, 3, 30, 7)),
        (utc(2025, 10, 26, 0, 30), "Europe/London", utc(2025, 10, 26, 8)),
        # Sydney leaves AEDT 2025-04-06: 08:00 AEST is 22:00Z on 04-05.
        (utc(2025, 4, 5, 14), "Australia/Sydney", utc(2025, 4, 5, 22)),
        # ...and enters it 2025-10-05: 08:00 AEDT is 21:00Z on 10-04.
        (utc(2025, 10, 4, 14), "Australia/Sydney", utc(2025, 10, 4, 21)),
    ],
)  # fmt: skip
def test_the_window_on_transition_days(now: datetime, zone: str, expected: datetime) -> None:
    decision = evaluate(asked(now, [zone]), RULES)
    assert (decision.verdict, decision.not_before) == ("defer", expected)
    assert decision.codes == ["REGF_TIME_OUTSIDE_WINDOW"]


@settings(max_examples=200, deadline=None)
@given(
    now=day_of_change(),
    zone=st.sampled_from([*US_ZONES, "Europe/London", "Australia/Sydney"]),
    channel=CHANNELS,
)
def test_transition_days_open_at_0800_local_in_one_zone(
    now: datetime, zone: str, channel: str
) -> None:
    """On (and around) a transition day, the answer is now if it is 08:00-21:00 local, else
    08:00 local of today (before 08:00) or of tomorrow (from 21:00)."""
    tz = ZoneInfo(zone)
    here = now.astimezone(tz)
    decision = evaluate(asked(now, [zone], channel=channel), RULES)
    if OPEN <= here.time() < CLOSE:
        assert decision.verdict == "allow"
        return
    day = here.date() if here.time() < OPEN else here.date() + timedelta(days=1)
    assert (decision.verdict, decision.not_before) == (
        "defer",
        datetime.combine(day, OPEN, tz).astimezone(UTC),
    )


@settings(max_examples=150, deadline=None)
@given(
    now=day_of_change(["America/New_York", "Europe/London", "Australia/Sydney"]),
    zones=st.lists(st.sampled_from(US_ZONES), min_size=2, max_size=4, unique=True),
)
def test_transition_days_in_several_zones(now: datetime, zones: list[str]) -> None:
    assert_inside_everywhere(evaluate(asked(now, zones), RULES), now, zones)


FREQUENCY_SPECS = [
    rule
    for profile in RULES.profiles
    for rule in profile.rules
    if isinstance(rule, CountRuleSpec | ConversationRuleSpec)
]


@settings(max_examples=300, deadline=None)
@given(
    now=st.datetimes(
        min_value=datetime(2026, 1, 1),  # noqa: DTZ001 (hypothesis takes naive bounds)
        max_value=datetime(2027, 12, 31),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    channel=CHANNELS,
    debts=DEBTS,
    data=st.data(),
)
def test_a_frequency_rule_with_nothing_to_count_answers_as_the_full_count(
    now: datetime, channel: str, debts: tuple[str, ...], data: st.DataObject
) -> None:
    # The shortcut for a history with no contact a rule could count must give the very
    # answer the full count gives, on every rule the shipped rule set has.
    history = data.draw(histories(now))
    situation = asked(now, ["America/New_York"], channel=channel, history=history, debts=debts)
    zones = ("America/New_York", "America/Chicago")
    for spec in FREQUENCY_SPECS:
        fast = timing._frequency(spec, situation, history, history, now, zones)
        shortcut = timing._anything_to_count
        timing._anything_to_count = lambda *_: True  # type: ignore[assignment]
        try:
            full = timing._frequency(spec, situation, history, history, now, zones)
        finally:
            timing._anything_to_count = shortcut
        assert fast == full, spec.code
