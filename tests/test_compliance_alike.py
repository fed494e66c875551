"""Debtors alike share the engine's answer: ``AlikeDecisions.evaluate`` answers exactly as
``evaluate`` does, for random situations and for copies of them with every address and
debt reference renamed (the copies a batch of the plan stage is full of)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outreach.compliance.alike import AlikeDecisions, alike_key, question
from outreach.compliance.engine import evaluate
from outreach.compliance.facts import (
    EVENT_KINDS,
    OUTCOMES,
    Contact,
    Debtor,
    Email,
    Event,
    Phone,
    Situation,
)
from outreach.compliance.frequency import PastContact
from outreach.compliance.rules import load_ruleset
from outreach.compliance.windows import InconvenientTime

RULES = load_ruleset()
ZONES = ["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"]
# New Jersey, Manhattan, Denver, Los Angeles, Chicago, toll-free: the area code tells the
# zone and the state (toll-free tells neither).
NUMBERS = [
    "+12015550101",
    "+12125550102",
    "+13035550103",
    "+13105550104",
    "+13125550105",
    "+18005550106",
]
EMAILS = ["pat@example.net", "pat@employer.example", "sam@example.org"]
DEBTS = ["D1", "D2"]
CHANNELS = ["sms", "voice", "email"]
NOW = datetime(2026, 3, 9, 18, 0, tzinfo=UTC)


@st.composite
def plain_situations(draw: st.DrawFn) -> Situation:
    """A debtor as the plan stage mostly sees one: a phone and an email with consent, in a
    known zone, nothing in the way; any one fact changed may change the answer."""
    number = draw(st.sampled_from(NUMBERS[:5]))
    email = draw(st.sampled_from(EMAILS))
    channel = draw(st.sampled_from(CHANNELS))
    return Situation(
        now=NOW + timedelta(hours=draw(st.sampled_from([0, 1, 2, 3]))),
        jurisdiction=draw(st.sampled_from(["US", "US-NJ"])),
        collector=draw(st.sampled_from(["first_party", "third_party"])),
        debtor=Debtor(
            timezone="America/New_York",
            phones=(Phone(number, "mobile", draw(st.none() | st.just("America/New_York")), True),),
            emails=(Email(email, "personal", True),),
        ),
        contact=Contact(channel, email if channel == "email" else number, ("D1",)),
    )


@st.composite
def situations(draw: st.DrawFn) -> Situation:
    zone = st.none() | st.sampled_from(ZONES)
    phones = draw(st.lists(st.sampled_from(NUMBERS), max_size=2, unique=True))
    emails = draw(st.lists(st.sampled_from(EMAILS), max_size=2, unique=True))
    addresses = phones + emails + ["+12015559999", "stranger@example.com"]
    debts = st.lists(st.sampled_from(DEBTS), min_size=1, max_size=2, unique=True).map(tuple)
    debtor = Debtor(
        timezone=draw(zone),
        other_timezones=tuple(draw(st.lists(st.sampled_from(ZONES), max_size=1))),
        phones=tuple(
            Phone(
                number,
                draw(st.sampled_from(["mobile", "landline", "work", "unknown"])),
                draw(zone),
                draw(st.booleans()),
                draw(st.booleans()),
                draw(st.booleans()),
            )
            for number in phones
        ),
        emails=tuple(
            Email(
                address,
                draw(st.sampled_from(["personal", "work", "unknown"])),
                draw(st.booleans()),
                draw(st.booleans()),
            )
            for address in emails
        ),
        inconvenient_times=tuple(
            draw(st.lists(st.just(InconvenientTime(time(17), time(20), ("mon",))), max_size=1))
        ),
        represented_by_attorney=draw(st.booleans()),
    )
    now = NOW + timedelta(hours=draw(st.integers(min_value=0, max_value=30)))
    history = tuple(
        PastContact(
            now - timedelta(hours=draw(st.integers(min_value=1, max_value=24 * 10))),
            draw(st.sampled_from(CHANNELS)),
            draw(st.sampled_from(["outbound", "inbound"])),
            draw(debts),
            draw(st.sampled_from(OUTCOMES)),
            draw(st.none() | st.sampled_from(addresses)),
            draw(st.booleans()),
        )
        for _ in range(draw(st.sampled_from([0, 0, 1, 2, 4])))
    )
    events = tuple(
        Event(
            now - timedelta(days=draw(st.integers(min_value=0, max_value=20)), minutes=1),
            draw(st.sampled_from(EVENT_KINDS)),
            draw(st.none() | st.sampled_from(CHANNELS)),
            draw(st.none() | st.sampled_from(addresses)),
            draw(st.just(()) | debts),
        )
        for _ in range(draw(st.sampled_from([0, 0, 0, 1, 3])))  # most hold or bar something
    )
    own = phones + emails
    return Situation(
        now=now,
        jurisdiction=draw(st.sampled_from(["US", "US-NJ", "US-NY-NYC", "US-CA", "US-MA"])),
        collector=draw(st.sampled_from(["first_party", "third_party"])),
        debtor=debtor,
        contact=Contact(
            draw(st.sampled_from(CHANNELS)),
            draw(st.sampled_from(own if own and draw(st.integers(0, 3)) else addresses)),
            draw(debts),
            draw(st.sampled_from([True, True, False])),
        ),
        history=history,
        events=events,
    )


def renamed(situation: Situation, suffix: int) -> Situation:
    """The same situation for another debtor: every phone number keeps its area code and
    exchange (so its zones and state) but not its line; every email address and debt
    reference is another."""

    def address(text: str | None) -> str | None:
        if not text:
            return text
        if text.startswith("+"):
            return f"{text[:-4]}{(int(text[-4:]) + suffix * 10) % 10_000:04d}"
        local, _, domain = text.partition("@")
        return f"{local}{suffix}@{domain}"

    def debts(names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(f"{name}-{suffix}" for name in names)

    debtor = situation.debtor
    return replace(
        situation,
        debtor=replace(
            debtor,
            phones=tuple(replace(p, number=address(p.number) or "") for p in debtor.phones),
            emails=tuple(replace(e, address=address(e.address) or "") for e in debtor.emails),
        ),
        contact=replace(
            situation.contact,
            to=address(situation.contact.to) or "",
            debts=debts(situation.contact.debts),
        ),
        history=tuple(
            replace(c, to=address(c.to), debts=debts(c.debts)) for c in situation.history
        ),
        events=tuple(
            replace(e, address=address(e.address), debts=debts(e.debts)) for e in situation.events
        ),
    )


@settings(max_examples=400, deadline=None)
@given(situation=situations())
def test_every_answer_is_the_engines_own(situation: Situation) -> None:
    alike = AlikeDecisions(RULES)
    first, second = renamed(situation, 1), renamed(situation, 2)
    for asked in (situation, first, second):
        assert alike.evaluate(asked) == evaluate(asked, RULES)
    names: dict[str, int] = {}
    assert alike_key(situation, names) == alike_key(first, {}) == alike_key(second, {})
    # Shared unless the answer quotes an address or a reference.
    reasons = evaluate(situation, RULES).reasons
    words = " ".join(f"{r.detail} {r.citation} {r.lifted_by}" for r in reasons)
    quoted = any(name in words for name in names)
    assert alike.shared == (0 if quoted else 2)


@settings(max_examples=300, deadline=None)
@given(
    situation=plain_situations() | situations(),
    seconds=st.sampled_from([0, 1, 59, 3600, 3 * 3600 + 1, 86_400]),
    zone=st.sampled_from(ZONES),
)
def test_a_question_asked_again_later_gets_the_engines_own_answer(
    situation: Situation, seconds: int, zone: str
) -> None:
    """The send-time check asks each message's question again at the latest instant it may
    leave, keyed from the first asking and with the first answer's zones: the answers are
    the engine's own at that instant, whether shared with a debtor alike or not, at any
    offset."""
    at = (situation.now + timedelta(seconds=seconds)).astimezone(ZoneInfo(zone))
    expected = evaluate(replace(situation, now=at), RULES)
    fresh, warmed = AlikeDecisions(RULES), AlikeDecisions(RULES)
    # ``warmed`` has answered a debtor alike at both instants: its answers are shared.
    other = renamed(situation, 1)
    warmed.evaluate(other)
    warmed.evaluate(replace(other, now=at))
    for alike in (fresh, warmed):
        first = question(situation)
        earlier = alike.answer(first)
        assert earlier == evaluate(situation, RULES)
        later = first.later(at)
        assert later.situation == replace(situation, now=at)
        assert later.key == alike_key(later.situation, {})
        assert alike.answer(later, zones=earlier.zones) == expected


def at_offsets_of(situation: Situation, zone: str) -> Situation:
    """The same instants written at ``zone``'s offsets: equal datetimes to Python, but the
    engine reads local dates and times from them (an event's date in a hold's words)."""
    where = ZoneInfo(zone)
    return replace(
        situation,
        now=situation.now.astimezone(where),
        history=tuple(replace(c, at=c.at.astimezone(where)) for c in situation.history),
        events=tuple(replace(e, at=e.at.astimezone(where)) for e in situation.events),
    )


@settings(max_examples=300, deadline=None)
@given(situation=situations(), zone=st.sampled_from(ZONES))
def test_the_same_instants_at_other_offsets_get_the_engines_own_answers(
    situation: Situation, zone: str
) -> None:
    alike = AlikeDecisions(RULES)
    for asked in (situation, at_offsets_of(renamed(situation, 1), zone)):
        assert alike.evaluate(asked) == evaluate(asked, RULES)


def test_the_repeated_hour_of_a_fall_back_is_two_instants() -> None:
    """01:30 happens twice in New York on 2025-11-02; Python compares the two as equal.
    With now between them, a dispute raised at the first has begun, one at the second not."""
    new_york = ZoneInfo("America/New_York")
    first = datetime(2025, 11, 2, 1, 30, tzinfo=new_york)
    second = datetime(2025, 11, 2, 1, 30, fold=1, tzinfo=new_york)
    assert first == second and first.astimezone(UTC) != second.astimezone(UTC)
    now = datetime(2025, 11, 2, 6, 0, tzinfo=UTC)
    asked = [
        replace(debtor_at(number, "pat@example.net"), now=now, events=(Event(at, "dispute"),))
        for number, at in (("+12015550001", first), ("+12015550002", second))
    ]
    alike = AlikeDecisions(RULES)
    answers = [alike.evaluate(one) for one in asked]
    assert answers == [evaluate(one, RULES) for one in asked]
    assert alike.shared == 0


def nudge(draw: st.DrawFn, situation: Situation) -> Situation:
    """The situation with one fact changed: the memo must not take one for the other."""
    debtor, contact = situation.debtor, situation.contact
    some = st.sampled_from
    choices: list[Callable[[], Situation]] = [
        lambda: replace(situation, collector=draw(some(["first_party", "third_party"]))),
        lambda: replace(situation, jurisdiction=draw(some(["US", "US-NJ", "US-CA"]))),
        lambda: replace(situation, now=situation.now + timedelta(hours=draw(some([1, 5, 13])))),
        lambda: replace(situation, contact=replace(contact, channel=draw(some(CHANNELS)))),
        lambda: replace(situation, contact=replace(contact, automated=not contact.automated)),
        lambda: replace(situation, contact=replace(contact, debts=("D2",))),
        lambda: replace(situation, contact=replace(contact, to=draw(some(NUMBERS + EMAILS)))),
        lambda: replace(
            situation,
            debtor=replace(debtor, represented_by_attorney=not debtor.represented_by_attorney),
        ),
        lambda: replace(situation, debtor=replace(debtor, timezone=draw(some([None, *ZONES])))),
        lambda: replace(situation, debtor=replace(debtor, inconvenient_times=())),
    ]
    if contact.to:
        recent = situation.now - timedelta(hours=draw(st.sampled_from([1, 30, 200])))
        to = draw(st.sampled_from([contact.to, "+12015559999", "other@example.com"]))
        choices += [
            lambda: replace(
                situation,
                history=(
                    *situation.history,
                    PastContact(
                        recent,
                        draw(st.sampled_from([contact.channel, *CHANNELS])),
                        draw(st.sampled_from(["outbound", "inbound"])),
                        draw(st.sampled_from([contact.debts, ("D2",)])),
                        draw(st.sampled_from(OUTCOMES)),
                        draw(st.sampled_from([to, None])),
                        draw(st.booleans()),
                    ),
                ),
            ),
            lambda: replace(
                situation,
                events=(
                    *situation.events,
                    Event(
                        recent,
                        draw(st.sampled_from(EVENT_KINDS)),
                        draw(st.sampled_from([contact.channel, None, *CHANNELS])),
                        draw(st.sampled_from([to, None])),
                        draw(st.sampled_from([(), contact.debts, ("D2",)])),
                    ),
                ),
            ),
        ]
    if debtor.phones:
        index = draw(st.integers(min_value=0, max_value=len(debtor.phones) - 1))
        phone = debtor.phones[index]

        def phone_as(changed: Phone) -> Situation:
            phones = list(debtor.phones)
            phones[index] = changed
            return replace(situation, debtor=replace(debtor, phones=tuple(phones)))

        choices += [
            lambda: phone_as(replace(phone, consent=not phone.consent)),
            lambda: phone_as(replace(phone, sms_consent=not phone.sms_consent)),
            lambda: phone_as(replace(phone, voice_consent=not phone.voice_consent)),
            lambda: phone_as(replace(phone, kind=draw(some(["mobile", "landline", "work"])))),
            lambda: phone_as(replace(phone, timezone=draw(some([None, *ZONES])))),
            lambda: phone_as(replace(phone, number=draw(some(NUMBERS)))),
        ]
    if debtor.emails:
        email = debtor.emails[0]
        choices += [
            lambda: replace(
                situation,
                debtor=replace(
                    debtor,
                    emails=(replace(email, consent=not email.consent), *debtor.emails[1:]),
                ),
            ),
            lambda: replace(
                situation,
                debtor=replace(debtor, emails=(replace(email, kind="work"), *debtor.emails[1:])),
            ),
            lambda: replace(
                situation,
                debtor=replace(
                    debtor,
                    emails=(
                        replace(email, used_by_debtor=not email.used_by_debtor),
                        *debtor.emails[1:],
                    ),
                ),
            ),
        ]

    def first_changed(name: str, **changes: Any) -> Situation:
        """The situation with its first past contact or event changed."""
        first, *rest = getattr(situation, name)
        return replace(situation, **{name: (replace(first, **changes), *rest)})

    if situation.history:
        past = situation.history[0]
        choices += [
            lambda: first_changed("history", to=draw(st.none() | some(NUMBERS + EMAILS))),
            lambda: first_changed("history", debts=("D2",)),
            lambda: first_changed("history", outcome=draw(some(OUTCOMES))),
            lambda: first_changed("history", automated=not past.automated),
            lambda: first_changed("history", channel=draw(some(CHANNELS))),
        ]
    if situation.events:
        choices += [
            lambda: first_changed("events", address=draw(st.none() | some(NUMBERS + EMAILS))),
            lambda: first_changed("events", debts=("D1",)),
            lambda: first_changed("events", kind=draw(some(EVENT_KINDS))),
            lambda: first_changed("events", channel=draw(some(CHANNELS))),
        ]
    return draw(st.sampled_from(choices))()


@settings(max_examples=1500, deadline=None)
@given(situation=plain_situations() | situations(), data=st.data())
def test_situations_one_fact_apart_get_their_own_answers(
    situation: Situation, data: st.DataObject
) -> None:
    if data.draw(st.booleans()):  # a plain debtor with something in their past, often
        situation = nudge(data.draw, situation)
    other = nudge(data.draw, situation)
    alike = AlikeDecisions(RULES)
    for asked in (situation, renamed(other, 1), other, renamed(situation, 2)):
        assert alike.evaluate(asked) == evaluate(asked, RULES)


def debtor_at(number: str, email: str, *, opted_out: bool = False) -> Situation:
    events = (Event(NOW - timedelta(days=1), "opt_out", "sms", number),) if opted_out else ()
    return Situation(
        now=NOW,
        jurisdiction="US-NJ",
        collector="first_party",
        debtor=Debtor(
            timezone="America/New_York",
            phones=(Phone(number, "mobile", None, True),),
            emails=(Email(email, "personal", True),),
        ),
        contact=Contact("sms", number, (email.split("@")[0].upper(),)),
        events=events,
    )


def test_a_batch_of_debtors_alike_is_decided_once() -> None:
    alike = AlikeDecisions(RULES)
    batch = [debtor_at(f"+1201555{i:04d}", f"b-{i}@example.com") for i in range(50)]
    answers = [alike.evaluate(asked) for asked in batch]
    assert alike.shared == 49
    assert {a.verdict for a in answers} == {"allow"}
    # Each answer's zones name the debtor's own phone, as the engine's do.
    assert answers[7].zones == evaluate(batch[7], RULES).zones
    assert answers[7].zones[-1] == ("America/New_York", "phone +12015550007 (area code)")


def test_an_answer_quoting_an_address_is_not_shared() -> None:
    alike = AlikeDecisions(RULES)
    one = alike.evaluate(debtor_at("+12015550001", "a@example.com", opted_out=True))
    other = alike.evaluate(debtor_at("+12015550002", "b@example.com", opted_out=True))
    assert alike.shared == 0
    assert one.verdict == other.verdict == "block"
    assert "+12015550001" in one.reasons[0].detail
    assert "+12015550002" in other.reasons[0].detail


def test_numbers_in_other_places_are_not_alike() -> None:
    """Same everything but the area code: New Jersey (Eastern) and Los Angeles (Pacific)
    phones put the debtor in different zones, so the answers are worked out apart."""
    alike = AlikeDecisions(RULES)
    east = alike.evaluate(debtor_at("+12015550001", "a@example.com"))
    west = alike.evaluate(debtor_at("+13105550001", "a@example.com"))
    assert alike.shared == 0
    assert {z for z, _ in east.zones} == {"America/New_York"}
    assert {z for z, _ in west.zones} == {"America/New_York", "America/Los_Angeles"}


@pytest.mark.parametrize("jurisdiction", ["US", "US-IL"])
def test_numbers_of_states_split_between_zones_are_not_alike(jurisdiction: str) -> None:
    """Accounts naming no state or Illinois, each number recorded on Central time: a
    Chicago number puts the debtor in Illinois (Central), a Gary one in Indiana (Eastern and
    Central) whatever the account's state, so at 20:30 Central (21:30 in Indianapolis) one
    is open and the other waits."""

    def texted(number: str) -> Situation:
        return Situation(
            now=datetime(2026, 6, 2, 1, 30, tzinfo=UTC),
            jurisdiction=jurisdiction,
            collector="third_party",
            debtor=Debtor(phones=(Phone(number, "mobile", "America/Chicago", True),)),
            contact=Contact("sms", number, ("D1",)),
        )

    alike = AlikeDecisions(RULES)
    chicago = alike.evaluate(texted("+13125550101"))
    gary = alike.evaluate(texted("+12194551234"))
    assert alike.shared == 0
    assert chicago.verdict == "allow"
    assert gary.verdict == "defer"
    assert gary == evaluate(texted("+12194551234"), RULES)


LANDLINE = "+12015550001"


def called(
    to: str | None, debts: tuple[str, ...], outcome: str, hours_ago: int, automated: bool = True
) -> PastContact:
    return PastContact(
        NOW - timedelta(hours=hours_ago), "voice", "outbound", debts, outcome, to, automated
    )


def landline_debtor(
    history: tuple[PastContact, ...] = (), events: tuple[Event, ...] = ()
) -> Situation:
    return Situation(
        now=NOW,
        jurisdiction="US-NJ",
        collector="third_party",
        debtor=Debtor(
            timezone="America/New_York",
            phones=(Phone(LANDLINE, "landline", None, True),),
            emails=(Email("a@example.com", "personal", True),),
        ),
        contact=Contact("voice", LANDLINE, ("D1",), automated=True),
        history=history,
        events=events,
    )


# Pairs that differ only in which address or debt a past contact or an event concerns, or
# in a call's outcome: the engine answers each pair differently.
ONE_FACT_APART = {
    "prerecorded calls to this line or another": (
        landline_debtor(tuple(called(LANDLINE, ("D9",), "voicemail", 24 * d) for d in (2, 9, 16))),
        landline_debtor(
            tuple(called("+12015559999", ("D9",), "voicemail", 24 * d) for d in (2, 9, 16))
        ),
    ),
    "prerecorded calls or a person's": (
        landline_debtor(tuple(called(LANDLINE, ("D9",), "voicemail", 24 * d) for d in (2, 9, 16))),
        landline_debtor(
            tuple(called(LANDLINE, ("D9",), "voicemail", 24 * d, False) for d in (2, 9, 16))
        ),
    ),
    "calls about this debt or another": (
        landline_debtor(tuple(called(None, ("D1",), "no_answer", 2 + d) for d in range(7))),
        landline_debtor(tuple(called(None, ("D2",), "no_answer", 2 + d) for d in range(7))),
    ),
    "a conversation or no answer": (
        landline_debtor((called(None, ("D1",), "conversation", 30),)),
        landline_debtor((called(None, ("D1",), "no_answer", 30),)),
    ),
    "a dispute of this debt or another": (
        landline_debtor(events=(Event(NOW - timedelta(days=1), "dispute", None, None, ("D1",)),)),
        landline_debtor(events=(Event(NOW - timedelta(days=1), "dispute", None, None, ("D2",)),)),
    ),
    "an opt-out from another line or this one": (
        landline_debtor(
            events=(Event(NOW - timedelta(days=1), "opt_out", "voice", "+12015559999"),)
        ),
        landline_debtor(events=(Event(NOW - timedelta(days=1), "opt_out", "voice", LANDLINE),)),
    ),
}


@pytest.mark.parametrize("pair", ONE_FACT_APART.values(), ids=list(ONE_FACT_APART))
def test_one_fact_apart_is_not_alike(pair: tuple[Situation, Situation]) -> None:
    one, other = pair
    assert evaluate(one, RULES).codes != evaluate(other, RULES).codes
    alike = AlikeDecisions(RULES)
    for asked in (one, other, renamed(one, 1), renamed(other, 2)):
        assert alike.evaluate(asked) == evaluate(asked, RULES)
