"""Frequency: how many contacts a rolling run of local calendar days may hold.

Reg F 1006.14(b)(2) presumes a collector complies if it places no more than seven calls
within seven consecutive days about a particular debt, and none within seven days after a
telephone conversation about it; state overlays (Massachusetts 2 calls or texts per 7 days
per debt, Washington 3 communications a week) and the operator's policy caps (SMS per day,
email per week) have the same shape. All are data: a ``CountRule`` or a
``ConversationRule``.

Days are calendar dates where the debtor is: a contact on local date D falls in the
windows D-(days-1)..D. Where the debtor may be in several zones, every zone is computed and
the latest ``not_before`` wins (the catalog's "most restrictive"). Only contacts made by
``now`` count: what a contact stamped ahead of the decision means is the caller's to say
(``timing._history`` counts one stamped within ``CLOCK_SKEW`` of it as made then, and
leaves out one stamped further ahead). Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from outreach.records import quick_init

# Calls that never connected do not count (comment 14(b)(3)(ii)-1).
NOT_CONNECTED = frozenset({"busy", "not_in_service"})
# How far ahead of a decision's ``now`` a contact may be stamped and still be taken as made
# by then: another process's clock may run a little ahead of ours, and a contact it
# recorded has happened. A stamp further ahead is bad data (a year mistyped, a clock set
# wrong) and is left out: counted at its stamp it would bar contact until then, and taken
# as made ``now`` it would count against every day the search tries.
CLOCK_SKEW = timedelta(minutes=5)


@quick_init
@dataclass(frozen=True)
class PastContact:
    at: datetime
    channel: str  # sms, email, voice
    direction: str  # outbound, inbound
    debts: tuple[str, ...]
    outcome: str  # no_answer, voicemail, limited_content_message, conversation, busy, ...
    to: str | None = None
    automated: bool = False  # prerecorded voice or an automated text


@dataclass(frozen=True)
class CountRule:
    """At most ``limit`` outbound contacts on ``channels`` in any ``days`` local dates."""

    code: str  # the catalog's reason code, e.g. REGF_7IN7_CALL_CAP
    citation: str
    channels: frozenset[str]
    limit: int
    days: int
    per_debt: bool = True  # count per particular debt, or for the debtor as a whole
    excluded_outcomes: frozenset[str] = NOT_CONNECTED


@dataclass(frozen=True)
class ConversationRule:
    """No contact on ``channels`` for ``days`` dates from a conversation about the debt
    (the conversation's date is the first day)."""

    code: str  # REGF_7IN7_POST_CONVERSATION
    citation: str
    channels: frozenset[str]
    days: int = 7


FrequencyRule = CountRule | ConversationRule


@dataclass(frozen=True)
class FrequencyFinding:
    code: str
    citation: str
    not_before: datetime  # the start of the first local date the contact is allowed
    detail: str


@dataclass(frozen=True)
class Proposed:
    channel: str
    debts: tuple[str, ...]


@dataclass
class FrequencyResult:
    findings: list[FrequencyFinding] = field(default_factory=list)
    evaluated: list[str] = field(default_factory=list)

    @property
    def not_before(self) -> datetime | None:
        return max((f.not_before for f in self.findings), default=None)


def check_frequency(
    proposed: Proposed,
    history: Sequence[PastContact],
    now: datetime,
    zones: Sequence[str],
    rules: Sequence[FrequencyRule],
) -> FrequencyResult:
    """Every rule for the proposed contact's channel, each with the latest ``not_before``
    over the candidate zones (and debts) when it is not met."""
    result = FrequencyResult()
    for rule in rules:
        if proposed.channel not in rule.channels:
            continue
        result.evaluated.append(rule.code)
        if isinstance(rule, CountRule):
            finding = _count(rule, proposed, history, now, zones)
        else:
            finding = _after_conversation(rule, proposed, history, now, zones)
        if finding is not None:
            result.findings.append(finding)
    return result


def _count(
    rule: CountRule,
    proposed: Proposed,
    history: Sequence[PastContact],
    now: datetime,
    zones: Sequence[str],
) -> FrequencyFinding | None:
    counted = [
        c
        for c in history
        if c.direction == "outbound"
        and c.channel in rule.channels
        and c.outcome not in rule.excluded_outcomes
        and c.at <= now
    ]
    # One contact about several debts counts toward each (comment 14(b)(4)-1.i).
    groups: list[tuple[str, list[PastContact]]]
    if rule.per_debt:
        groups = [(debt, [c for c in counted if debt in c.debts]) for debt in proposed.debts]
    else:
        groups = [("", counted)]
    worst: FrequencyFinding | None = None
    for debt, contacts in groups:
        for zone_name in zones:
            zone = ZoneInfo(zone_name)
            today = now.astimezone(zone).date()
            dates = sorted(c.at.astimezone(zone).date() for c in contacts)
            allowed_on = _first_date_under_limit(dates, today, rule.days, rule.limit)
            if allowed_on == today:
                continue
            finding = FrequencyFinding(
                rule.code,
                rule.citation,
                _start_of(allowed_on, zone),
                f"{rule.limit} {'/'.join(sorted(rule.channels))} contact(s) already in "
                f"{rule.days} days{f' about debt {debt}' if debt else ''} ({zone_name} dates)",
            )
            if worst is None or finding.not_before > worst.not_before:
                worst = finding
    return worst


def _first_date_under_limit(dates: list[date], today: date, days: int, limit: int) -> date:
    """The first local date from ``today`` on which one more contact keeps every window of
    ``days`` dates at ``limit`` or fewer. Only past contacts exist, so the window ending on
    the candidate date is the fullest one that contains it."""
    candidate = today
    while True:
        first = candidate - timedelta(days=days - 1)
        if sum(1 for d in dates if first <= d <= candidate) + 1 <= limit:
            return candidate
        candidate += timedelta(days=1)


def _after_conversation(
    rule: ConversationRule,
    proposed: Proposed,
    history: Sequence[PastContact],
    now: datetime,
    zones: Sequence[str],
) -> FrequencyFinding | None:
    # Inbound or outbound: a conversation the debtor started also starts the bar.
    conversations = [
        c
        for c in history
        if c.channel == "voice"
        and c.outcome == "conversation"
        and c.at <= now
        and set(c.debts) & set(proposed.debts)
    ]
    worst: FrequencyFinding | None = None
    for zone_name in zones:
        zone = ZoneInfo(zone_name)
        today = now.astimezone(zone).date()
        for conversation in conversations:
            spoke_on = conversation.at.astimezone(zone).date()
            allowed_on = spoke_on + timedelta(days=rule.days)
            if allowed_on <= today:
                continue
            finding = FrequencyFinding(
                rule.code,
                rule.citation,
                _start_of(allowed_on, zone),
                f"a telephone conversation on {spoke_on.isoformat()} about "
                f"{', '.join(sorted(set(conversation.debts) & set(proposed.debts)))} "
                f"bars calls for {rule.days} days ({zone_name} dates)",
            )
            if worst is None or finding.not_before > worst.not_before:
                worst = finding
    return worst


def _start_of(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)
