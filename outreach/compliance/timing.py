"""When to contact: contact windows, designated times, restricted days and frequency caps,
joined into the first instant every one of them allows.

Each kind moves the candidate instant forward: frequency to the start of a local date,
the windows to their next opening. Moving for one can break another (a frequency date
opens at midnight, outside the window; a window opening can fall on a new local date in
another zone), so the search repeats until one instant satisfies all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import holidays

from outreach.compliance.decision import Outcome, Reason, iso
from outreach.compliance.facts import Situation
from outreach.compliance.frequency import (
    CLOCK_SKEW,
    ConversationRule,
    CountRule,
    PastContact,
    Proposed,
    check_frequency,
)
from outreach.compliance.rules import (
    ConversationRuleSpec,
    CountRuleSpec,
    DesignatedTimesRule,
    GapRuleSpec,
    RestrictedDaysRule,
    WindowRule,
)
from outreach.compliance.windows import WEEKDAYS, InconvenientTime, LocalWindow, first_allowed
from outreach.compliance.zones import Candidates

TimingRule = (
    WindowRule
    | RestrictedDaysRule
    | DesignatedTimesRule
    | CountRuleSpec
    | ConversationRuleSpec
    | GapRuleSpec
)
WHOLE_DAY = LocalWindow(time(0), time.max)
ONE_RESPONSE = "REGF_ONE_RESPONSE_TO_CONSUMER_INITIATED"
# Each round moves the instant forward; a handful settles every real case.
MAX_ROUNDS = 12


@dataclass
class Timing:
    """The first allowed instant (None: nothing within the search), and each rule's part."""

    not_before: datetime | None
    reasons: list[Reason] = field(default_factory=list)
    outcomes: dict[str, Outcome] = field(default_factory=dict)


def first_open(
    situation: Situation,
    candidates: Candidates,
    jurisdictions: Sequence[str],
    rules: Sequence[TimingRule],
    house: Collection[str] = frozenset(),
) -> Timing:
    """``house``: the codes of the house policy's rules among ``rules`` (an operator's
    choice, where the others are a law's)."""
    designated_rules = [r for r in rules if isinstance(r, DesignatedTimesRule)]
    until = _one_response_until(situation, candidates.zones, designated_rules)
    if until is not None:
        # The one response to a debtor who wrote at a time they designated inconvenient:
        # that time does not hold it back, every other rule still does; if those hold it
        # past the time the debtor wrote in, it is a message like any other.
        timing = _first_open(
            situation, candidates, jurisdictions, rules, house, waive_designated=True
        )
        blocked = any(reason.effect == "block" for reason in timing.reasons)
        if not blocked and timing.not_before is not None and timing.not_before < until:
            timing.reasons.append(_one_response_reason(situation, designated_rules[0], until))
            return timing
    return _first_open(situation, candidates, jurisdictions, rules, house)


# How long after the debtor wrote the one response may come, at most, when the time they
# designated has no end within the search (every hour of every day).
ONE_RESPONSE_LIMIT = timedelta(days=1)


def _one_response_until(
    situation: Situation, zones: Sequence[str], designated_rules: Sequence[DesignatedTimesRule]
) -> datetime | None:
    """Until when the contact may answer inside a designated time (comment 6(b)(1)-2):
    it answers a message the debtor sent through the same medium during a time they had
    designated inconvenient, and it is sent before that time ends. None otherwise."""
    received = situation.contact.responding_to
    designated = situation.debtor.inconvenient_times
    if received is None or not designated_rules or not designated or received > situation.now:
        return None
    zone = situation.debtor.timezone
    if not in_designated(received, designated, zone, zones):
        return None
    ends = first_allowed(received, zones, WHOLE_DAY, designated=designated, designated_zone=zone)
    until = min(ends or received + ONE_RESPONSE_LIMIT, received + ONE_RESPONSE_LIMIT)
    return until if situation.now < until else None


def _one_response_reason(
    situation: Situation, rule: DesignatedTimesRule, until: datetime
) -> Reason:
    received = situation.contact.responding_to
    assert received is not None
    return Reason(
        ONE_RESPONSE,
        f"{rule.citation}; comment 6(b)(1)-2 (one response to a consumer-initiated communication)",
        "pass",
        f"the debtor wrote by {situation.contact.channel} at {iso(received)}, in a time they "
        f"designated inconvenient: one answer by the same medium may go until {iso(until)}",
    )


def _first_open(
    situation: Situation,
    candidates: Candidates,
    jurisdictions: Sequence[str],
    rules: Sequence[TimingRule],
    house: Collection[str],
    *,
    waive_designated: bool = False,
) -> Timing:
    zones = candidates.zones
    windows = [r for r in rules if isinstance(r, WindowRule)]
    designated_rules = [r for r in rules if isinstance(r, DesignatedTimesRule)]
    designated = (
        situation.debtor.inconvenient_times if designated_rules and not waive_designated else ()
    )
    # Nothing open is blamed on the designated-times rule only when the debtor designated
    # something; otherwise the zones share no hour and the window rule is the cause.
    blamed = designated_rules if designated else []
    designated_zone = situation.debtor.timezone
    restricted_rules = [r for r in rules if isinstance(r, RestrictedDaysRule)]
    restricted = _restricted_days(restricted_rules, jurisdictions) if restricted_rules else None
    frequency = [
        r for r in rules if isinstance(r, CountRuleSpec | ConversationRuleSpec | GapRuleSpec)
    ]
    combined = (
        LocalWindow(max(w.start for w in windows), min(w.end for w in windows))
        if windows
        else WHOLE_DAY
    )
    history, stamped = _history(situation)
    timing = Timing(None, outcomes={rule.code: "pass" for rule in rules})

    def note(rule_code: str, reason: Reason) -> None:
        # Outcomes are kept under the rule's own code; the reason may name a variant.
        if timing.outcomes.get(rule_code) in (None, "pass"):
            timing.reasons.append(reason)
        timing.outcomes[rule_code] = reason.effect

    at: datetime = situation.now
    for _ in range(MAX_ROUNDS):
        for window_rule in windows:
            if not open_at(at, zones, LocalWindow(window_rule.start, window_rule.end)):
                note(window_rule.code, _window_reason(window_rule, at, candidates))
        if designated and in_designated(at, designated, designated_zone, zones):
            rule = designated_rules[0]
            opens = first_allowed(
                at, zones, WHOLE_DAY, designated=designated, designated_zone=designated_zone
            )
            note(rule.code, _designated_reason(rule, at, opens))
        if restricted is not None and not open_at(at, zones, WHOLE_DAY, restricted):
            for restricted_rule in restricted_rules:
                opens = first_allowed(at, zones, WHOLE_DAY, restricted_day=restricted)
                note(restricted_rule.code, _restricted_reason(restricted_rule, opens))
        earliest = at
        for frequency_rule in frequency:
            found = _frequency(frequency_rule, situation, history, stamped, at, zones)
            if found is not None:
                note(frequency_rule.code, found)
                assert found.not_before is not None
                earliest = max(earliest, found.not_before)
        if earliest == at and _open_now(
            at, zones, combined, restricted, designated, designated_zone
        ):
            timing.not_before = at  # the common case: no interval arithmetic needed
            return timing
        opens = first_allowed(
            earliest,
            zones,
            combined,
            designated=designated,
            designated_zone=designated_zone,
            restricted_day=restricted,
        )
        if opens is None:
            return _nothing_open(timing, windows, blamed, house)
        if opens == at:
            timing.not_before = at
            return timing
        # The jump may pass over instants the window alone would open: say what closed them.
        if designated and opens > earliest:
            without = first_allowed(earliest, zones, combined, restricted_day=restricted)
            if without is None or opens > without:
                note(designated_rules[0].code, _designated_reason(designated_rules[0], at, opens))
        if restricted is not None and opens > earliest:
            without = first_allowed(
                earliest, zones, combined, designated=designated, designated_zone=designated_zone
            )
            if without is None or opens > without:
                for restricted_rule in restricted_rules:
                    note(restricted_rule.code, _restricted_reason(restricted_rule, opens))
        at = opens
    return _nothing_open(timing, windows, blamed, house)


def _nothing_open(
    timing: Timing,
    windows: Sequence[WindowRule],
    designated: Sequence[DesignatedTimesRule],
    house: Collection[str],
) -> Timing:
    """No instant in the search allows contact: designated times (or a very narrow window)
    leave nothing open. That is a block until the designations change; or the rule set's
    windows share no hour, a block until the rule set changes."""
    if windows and max(w.start for w in windows) >= min(w.end for w in windows):
        return _windows_apart(timing, windows, house)
    rule: WindowRule | DesignatedTimesRule | None = (designated or windows or [None])[0]
    if rule is not None:
        reason = Reason(
            rule.code,
            rule.citation,
            "block",
            "no time in the next three weeks is open in every zone the debtor may be in",
            lifted_by="a change to the debtor's designated inconvenient times or location",
        )
        timing.reasons = [r for r in timing.reasons if r.citation != rule.citation] + [reason]
        timing.outcomes[rule.code] = "block"
    timing.not_before = None
    return timing


def _windows_apart(timing: Timing, windows: Sequence[WindowRule], house: Collection[str]) -> Timing:
    """The windows that apply share no hour (a house window of 06:00-07:30 beside Reg F's
    08:00-21:00): nothing is ever open, whatever the debtor does. Blamed are the windows
    that empty the intersection: the house's that share no hour with the laws' (an
    operator's choice, where a law's hours are not), else those with the latest start and
    the earliest end; every other window passes."""
    laws = [w for w in windows if w.code not in house]
    ours = [w for w in windows if w.code in house]
    blamed = _bounds(windows)
    if laws and ours and max(w.start for w in laws) < min(w.end for w in laws):
        start, end = max(w.start for w in laws), min(w.end for w in laws)
        blamed = [w for w in ours if w.start >= end or w.end <= start] or _bounds(ours)
    apart = ", ".join(f"{w.code} {w.start:%H:%M}-{w.end:%H:%M}" for w in windows)
    codes = {c for w in windows for c in (w.code, w.multi_zone_code, w.unknown_location_code)}
    timing.reasons = [r for r in timing.reasons if r.code not in codes]
    for window in windows:
        timing.outcomes[window.code] = "pass"
    for window in blamed:
        timing.reasons.append(
            Reason(
                window.code,
                window.citation,
                "block",
                f"the rule set's contact windows share no hour ({apart}): nothing may be "
                "sent at any time, a configuration problem",
                lifted_by="a change to the rule set (COMPLIANCE_RULES_FILE) so that its "
                "windows share an hour",
            )
        )
        timing.outcomes[window.code] = "block"
    timing.not_before = None
    return timing


def _bounds(windows: Sequence[WindowRule]) -> list[WindowRule]:
    """The windows that open latest or close earliest."""
    start, end = max(w.start for w in windows), min(w.end for w in windows)
    return [w for w in windows if w.start == start or w.end == end]


def _open_now(
    at: datetime,
    zones: Sequence[str],
    window: LocalWindow,
    restricted: Callable[[str, date], bool] | None,
    designated: Sequence[InconvenientTime],
    designated_zone: str | None,
) -> bool:
    return open_at(at, zones, window, restricted) and not (
        designated and in_designated(at, designated, designated_zone, zones)
    )


def open_at(
    at: datetime,
    zones: Sequence[str],
    window: LocalWindow,
    restricted: Callable[[str, date], bool] | None = None,
) -> bool:
    """Whether ``at`` is inside ``window`` (and on an open date) in every zone."""
    for name in zones:
        local = at.astimezone(ZoneInfo(name))
        if not window.start <= local.time() < window.end:
            return False
        if restricted is not None and restricted(name, local.date()):
            return False
    return True


def in_designated(
    at: datetime,
    designated: Sequence[InconvenientTime],
    designated_zone: str | None,
    zones: Sequence[str],
) -> bool:
    for name in [designated_zone] if designated_zone else zones:
        local = at.astimezone(ZoneInfo(name))
        today, yesterday = WEEKDAYS[local.weekday()], WEEKDAYS[(local.weekday() - 1) % 7]
        clock = local.time()
        for item in designated:
            if item.end > item.start:
                if today in item.days and item.start <= clock < item.end:
                    return True
            elif (today in item.days and clock >= item.start) or (
                yesterday in item.days and clock < item.end
            ):
                return True
    return False


def _window_reason(rule: WindowRule, at: datetime, candidates: Candidates) -> Reason:
    zones = candidates.zones
    code = rule.code
    if candidates.location_unknown and rule.unknown_location_code:
        code = rule.unknown_location_code
    elif len(zones) > 1 and rule.multi_zone_code:
        code = rule.multi_zone_code
    closed = [
        f"{at.astimezone(ZoneInfo(z)).strftime('%H:%M')} in {z}"
        for z in zones
        if not rule.start <= at.astimezone(ZoneInfo(z)).time() < rule.end
    ]
    where = (
        "every US zone (no location known)" if candidates.location_unknown else (", ".join(zones))
    )
    opens = first_allowed(at, zones, LocalWindow(rule.start, rule.end))
    return Reason(
        code,
        rule.citation,
        "defer",
        f"it is {', '.join(closed)}; contact is allowed {rule.start:%H:%M}-{rule.end:%H:%M} "
        f"local in {where}",
        not_before=opens,
    )


def _designated_reason(rule: DesignatedTimesRule, at: datetime, opens: datetime | None) -> Reason:
    return Reason(
        rule.code,
        rule.citation,
        "defer",
        "the debtor said this time is inconvenient",
        not_before=opens,
    )


def _restricted_reason(rule: RestrictedDaysRule, opens: datetime | None) -> Reason:
    days = " and ".join(
        word for word, on in (("Sundays", rule.sundays), ("public holidays", rule.holidays)) if on
    )
    return Reason(
        rule.code,
        rule.citation,
        "defer",
        f"no contact on {days} where the debtor is",
        not_before=opens,
    )


def _restricted_days(
    rules: Sequence[RestrictedDaysRule], jurisdictions: Sequence[str]
) -> Callable[[str, date], bool]:
    sundays = any(r.sundays for r in rules)
    use_holidays = any(r.holidays for r in rules)
    places = tuple(dict.fromkeys(jurisdictions))

    def restricted(zone: str, day: date) -> bool:
        if sundays and day.weekday() == 6:
            return True
        return use_holidays and any(day in public_holidays(place, day.year) for place in places)

    return restricted


@cache
def public_holidays(jurisdiction: str, year: int) -> holidays.HolidayBase:
    """The public holidays of ``jurisdiction`` (``US``, ``US-NY``...) in ``year`` (none
    where the holidays package knows none)."""
    country, _, rest = jurisdiction.partition("-")
    subdivision = rest.split("-", 1)[0] or None
    covered = holidays.list_supported_countries()
    if country not in covered:
        return holidays.HolidayBase()  # no holidays known: none restrict the day
    if subdivision not in covered[country]:
        subdivision = None  # a subdivision the package does not know: the country's
    return holidays.country_holidays(country, subdiv=subdivision, years=year)


def _history(situation: Situation) -> tuple[list[PastContact], list[PastContact]]:
    """Past contacts, with inbound conversations from the events (they start the 7-day bar):
    as the caps and bars count them, and as stamped (for the gap between calls). Computed
    once, against the situation's own ``now``, not each instant the search tries. A contact
    stamped a moment after ``now`` (within ``CLOCK_SKEW``: another process's clock may run
    ahead) has happened: the caps and bars count it as made at ``now``, the safe side, and
    the gap runs from its stamp. One stamped further ahead is bad data and left out."""
    now = situation.now
    latest = now + CLOCK_SKEW
    stamped = [c for c in situation.history if c.at <= latest]
    stamped += [
        PastContact(
            e.at, "voice", "inbound", e.debts or situation.contact.debts, "conversation", e.address
        )
        for e in situation.events
        if e.kind == "conversation" and e.at <= latest
    ]
    if all(c.at <= now for c in stamped):
        return stamped, stamped
    as_of_now = [c if c.at <= now else replace(c, at=now) for c in stamped]
    return as_of_now, stamped


def _frequency(
    rule: CountRuleSpec | ConversationRuleSpec | GapRuleSpec,
    situation: Situation,
    history: Sequence[PastContact],
    stamped: Sequence[PastContact],
    at: datetime,
    zones: Sequence[str],
) -> Reason | None:
    """``history`` as the caps and bars count it, ``stamped`` as recorded (``_history``)."""
    contact = situation.contact
    if not _anything_to_count(rule, history):
        return None
    if isinstance(rule, GapRuleSpec):
        return _gap(rule, situation, stamped, at)
    checked = _checked(rule)
    if isinstance(rule, CountRuleSpec):
        debtor = situation.debtor
        kinds = rule.address_kinds
        history = [
            c
            for c in history
            if (not rule.automated_only or c.automated)
            and (kinds is None or debtor.address_kind(c.channel, c.to or "") in kinds)
            and (rule.per != "address" or c.to == contact.to)
        ]
    result = check_frequency(
        Proposed(contact.channel, contact.debts), history, at, zones, [checked]
    )
    if not result.findings:
        return None
    finding = result.findings[0]
    return Reason(rule.code, rule.citation, "defer", finding.detail, not_before=finding.not_before)


def _gap(
    rule: GapRuleSpec, situation: Situation, history: Sequence[PastContact], at: datetime
) -> Reason | None:
    """Deferred until ``rule.minutes`` after the last contact on its channels to the same
    address, if that is later than ``at``. A contact stamped after ``at`` counts from its
    stamp (the clock of the process that placed it may run ahead, ``_history``): the safe
    side."""
    to = situation.contact.to
    last = max(
        (
            c.at
            for c in history
            if c.direction == "outbound" and c.channel in rule.channels and c.to == to
        ),
        default=None,
    )
    if last is None or at >= last + timedelta(minutes=rule.minutes):
        return None
    return Reason(
        rule.code,
        rule.citation,
        "defer",
        f"{to} was contacted at {iso(last)}: the next {'/'.join(sorted(rule.channels))} "
        f"contact waits {rule.minutes} minutes",
        not_before=last + timedelta(minutes=rule.minutes),
    )


def _anything_to_count(
    rule: CountRuleSpec | ConversationRuleSpec | GapRuleSpec, history: Sequence[PastContact]
) -> bool:
    """Whether the history holds a contact the rule could count. With none, a cap (whose
    limit is at least 1) and a conversation bar both allow today: the common case of a
    debtor not contacted on this channel lately is answered without date arithmetic."""
    if isinstance(rule, ConversationRuleSpec):
        return any(c.channel == "voice" and c.outcome == "conversation" for c in history)
    return any(c.channel in rule.channels for c in history)


@cache
def _checked(rule: CountRuleSpec | ConversationRuleSpec) -> CountRule | ConversationRule:
    """The frequency module's form of a rule, built once per rule (rules are frozen)."""
    if isinstance(rule, ConversationRuleSpec):
        return ConversationRule(rule.code, rule.citation, frozenset(rule.channels), rule.days)
    return CountRule(
        rule.code,
        rule.citation,
        frozenset(rule.channels),
        rule.limit,
        rule.days,
        per_debt=rule.per == "debt",
        excluded_outcomes=frozenset(rule.excluded_outcomes),
    )


def frequency_applies(rule: CountRuleSpec | ConversationRuleSpec, situation: Situation) -> bool:
    if isinstance(rule, ConversationRuleSpec):
        return True
    contact = situation.contact
    if rule.automated_only and not contact.automated:
        return False
    kind = situation.debtor.address_kind(contact.channel, contact.to)
    return rule.address_kinds is None or kind in rule.address_kinds
