"""The compliance engine: ``evaluate(situation, ruleset) -> Decision``.

The order follows the catalog: scope (which profiles and rules bind this collector for
this debtor's jurisdictions), hard blocks (holds, prohibited medium, opt-out, consent,
employer email), then frequency and the time windows, which give ``not_before``. Every
rule that applies is evaluated and recorded, not only the one that fires. Pure: no
database, no clock, no network.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from outreach.compliance.decision import OK, Check, Decision, Reason, Verdict
from outreach.compliance.facts import Situation
from outreach.compliance.rules import (
    EVERYWHERE,
    ConversationRuleSpec,
    CountRuleSpec,
    DesignatedTimesRule,
    GapRuleSpec,
    HoldRule,
    Profile,
    ProhibitedMediumRule,
    RestrictedDaysRule,
    Rule,
    RuleSet,
    WindowRule,
)
from outreach.compliance.status import StatusRule, applies, check_status
from outreach.compliance.timing import TimingRule, first_open, frequency_applies
from outreach.compliance.zones import Candidates, candidate_zones, jurisdiction_of_number

_TIMING = (
    WindowRule, RestrictedDaysRule, DesignatedTimesRule, CountRuleSpec, ConversationRuleSpec,
    GapRuleSpec,
)  # fmt: skip
LOCATION_UNKNOWN = "POLICY_LOCATION_UNKNOWN"


def evaluate(situation: Situation, ruleset: RuleSet) -> Decision:
    if situation.now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    jurisdictions = candidate_jurisdictions(situation)
    candidates = _candidates(situation, ruleset)
    day = situation.now.astimezone(UTC).date()
    plan = _plan(ruleset, tuple(jurisdictions), situation.collector, day, situation.contact.channel)
    if plan is None:  # a rule's effective dates begin or end within a day of the UTC date
        plan = _plan_on(
            ruleset,
            tuple(jurisdictions),
            situation.collector,
            _local_dates(situation.now, candidates.zones, day),
            situation.contact.channel,
        )
    status_rules, timing_candidates, house = plan
    checks: list[Check] = []
    blocks: list[Reason] = []
    for profile, status_rule in status_rules:
        if not applies(status_rule, situation):
            checks.append(Check(status_rule.code, "skip", profile.id))
            continue
        found = check_status(status_rule, situation)
        checks.append(Check(status_rule.code, "block" if found else "pass", profile.id))
        if found is not None:
            blocks.append(found)
    timing_rules: list[tuple[Profile, TimingRule]] = []
    for profile, timing_rule in timing_candidates:
        if isinstance(timing_rule, CountRuleSpec | ConversationRuleSpec) and not frequency_applies(
            timing_rule, situation
        ):
            checks.append(Check(timing_rule.code, "skip", profile.id))
        else:
            timing_rules.append((profile, timing_rule))

    zones = candidates.signals  # each a (zone, source) named tuple
    if timing_rules and not candidates.zones:
        blocks.append(
            Reason(
                LOCATION_UNKNOWN,
                "House policy: contact windows need the debtor's time zone",
                "block",
                f"nothing tells where the debtor is and the rules for {situation.country} "
                "name no zones to fall back on",
                lifted_by="the debtor's time zone recorded on the account or a phone",
            )
        )
        checks.extend(Check(rule.code, "skip", profile.id) for profile, rule in timing_rules)
        timing_rules = []
    timing = first_open(
        situation, candidates, jurisdictions, [rule for _, rule in timing_rules], house
    )
    checks.extend(
        Check(rule.code, timing.outcomes.get(rule.code, "pass"), profile.id)
        for profile, rule in timing_rules
    )

    def decide(verdict: Verdict, not_before: datetime | None, reasons: list[Reason]) -> Decision:
        return Decision(
            verdict, not_before, tuple(reasons), tuple(checks), ruleset.version, zones,
            tuple(jurisdictions),
        )  # fmt: skip

    timing_blocks = [r for r in timing.reasons if r.effect == "block"]
    if blocks or timing_blocks:
        return decide("block", None, blocks + timing_blocks)
    assert timing.not_before is not None
    if timing.not_before > situation.now:
        return decide("defer", timing.not_before.astimezone(UTC), timing.reasons)
    # An exception that let it through is said (the one response in a designated time).
    return decide("allow", None, [OK, *(r for r in timing.reasons if r.effect == "pass")])


def zone_signals(situation: Situation, ruleset: RuleSet) -> tuple[tuple[str, str], ...]:
    """Where the debtor may be, each zone with its source: a decision's ``zones``."""
    return _candidates(situation, ruleset).signals


def _candidates(situation: Situation, ruleset: RuleSet) -> Candidates:
    return candidate_zones(
        situation.debtor,
        ruleset.all_zones(situation.country),
        (situation.jurisdiction, ruleset.region_zones(situation.jurisdiction)),
        # The number's own zone is its exchange's, and phonenumbers names one zone for most
        # exchanges of an area code that spans two (219, 850...): the state's every zone,
        # whether or not the account names a state of its own.
        {number: (s, ruleset.region_zones(s)) for number, s in _phone_states(situation)},
    )


def candidate_jurisdictions(situation: Situation) -> list[str]:
    """The debtor's jurisdiction; where only the country is known, every state a phone's area
    code points to as well (the catalog: run the most restrictive candidate). A state on the
    account is where the debtor is known to live: its rules alone apply."""
    if "-" in situation.jurisdiction:
        return [situation.jurisdiction]
    found = [situation.jurisdiction, *(state for _, state in _phone_states(situation))]
    return list(dict.fromkeys(found))


def _phone_states(situation: Situation) -> list[tuple[str, str]]:
    """Each phone number with the state of its country its area code belongs to, where that
    is not the account's own state (whose zones the account's state and zone stand for)."""
    own = "-".join(situation.jurisdiction.split("-")[:2])  # US-NY-NYC is in US-NY
    found = []
    for phone in situation.debtor.phones:
        state = jurisdiction_of_number(phone.number)
        if state and state != own and state.startswith(situation.country + "-"):
            found.append((phone.number, state))
    return found


# The status rules, the timing rules, and the codes of the house policy's among them.
Plan = tuple[list[tuple[Profile, StatusRule]], list[tuple[Profile, TimingRule]], frozenset[str]]
ONE_DAY = timedelta(days=1)


def _plan(
    ruleset: RuleSet, jurisdictions: tuple[str, ...], collector: str, day: date, channel: str
) -> Plan | None:
    """The rules for this kind of contact on this UTC date, split into status and timing
    rules; None when a rule's effective dates begin or end within a day of it, so that the
    debtor's local dates decide (every zone's date is within a day of UTC's). The daemon
    asks the same few questions for every account of a batch: the answer is kept."""
    key = ("plan", jurisdictions, collector, day, channel)
    found: Plan | Literal[False] | None = ruleset.memo.get(key)
    if found is None:
        near = (day - ONE_DAY, day, day + ONE_DAY)
        rules = ruleset.rules_for(jurisdictions, collector, near)
        changing = any(not all(rule.in_force(d) for d in near) for _, rule in rules)
        found = False if changing else _split(rules, channel)
        _remember(ruleset, key, found)
    return None if found is False else found


def _plan_on(
    ruleset: RuleSet,
    jurisdictions: tuple[str, ...],
    collector: str,
    days: tuple[date, ...],
    channel: str,
) -> Plan:
    """The rules for this kind of contact in force on any of these local dates: where the
    debtor may be in zones on different dates, the stricter reading (more rules apply)."""
    key = ("plan_on", jurisdictions, collector, days, channel)
    found: Plan | None = ruleset.memo.get(key)
    if found is None:
        found = _split(ruleset.rules_for(jurisdictions, collector, days), channel)
        _remember(ruleset, key, found)
    return found


def _local_dates(now: datetime, zones: Sequence[str], day: date) -> tuple[date, ...]:
    """The dates it is in the candidate zones; with none known, every date it is anywhere."""
    if not zones:
        return (day - ONE_DAY, day, day + ONE_DAY)
    return tuple(sorted({now.astimezone(ZoneInfo(zone)).date() for zone in zones}))


def _split(rules: Sequence[tuple[Profile, Rule]], channel: str) -> Plan:
    status: list[tuple[Profile, StatusRule]] = []
    timing: list[tuple[Profile, TimingRule]] = []
    for profile, rule in _applicable(rules, channel):
        if isinstance(rule, _TIMING):
            timing.append((profile, rule))
        else:
            status.append((profile, rule))
    house = frozenset(rule.code for profile, rule in timing if profile.jurisdiction == EVERYWHERE)
    return (status, timing, house)


def _remember(ruleset: RuleSet, key: tuple[object, ...], value: object) -> None:
    if len(ruleset.memo) > 10_000:  # a long-running daemon sees a new date every day
        ruleset.memo.clear()
    ruleset.memo[key] = value


def _applicable(rules: Sequence[tuple[Profile, Rule]], channel: str) -> list[tuple[Profile, Rule]]:
    """The rules for this channel. A house-policy rule (profile ``*``) stands back where a
    law's rule of the same kind is at least as strict, so one fact gives one reason; a
    stricter house rule (a narrower window) applies beside the law's, and the strictest
    binds (the catalog's section 5: "take the strictest window")."""
    for_channel = [(p, r) for p, r in rules if channel in r.channels]
    laws = [r for p, r in for_channel if p.jurisdiction != EVERYWHERE]
    return [
        (p, r)
        for p, r in for_channel
        if p.jurisdiction != EVERYWHERE
        or not _yields(r)
        or not any(_covers(law, r) for law in laws)
    ]


def _covers(law: Rule, house: Rule) -> bool:
    """Whether the law's rule restricts at least what the house rule of its kind does: a
    window no wider (it opens no earlier and closes no later, in the same candidate zones
    every day), a hold on the same event for at least the same kinds of address."""
    if law.kind != house.kind:
        return False
    if isinstance(house, WindowRule):
        assert isinstance(law, WindowRule)
        return law.start >= house.start and law.end <= house.end
    if isinstance(house, HoldRule):
        assert isinstance(law, HoldRule)
        return law.event == house.event and (
            law.address_kinds is None
            or (
                house.address_kinds is not None
                and set(house.address_kinds) <= set(law.address_kinds)
            )
        )
    return True  # designated times and a prohibited medium (of the channel) have no extent


def _yields(rule: Rule) -> bool:
    """House rules that restate a law (windows, designated times, holds, prohibited media)
    yield to it; caps and opt-out ledgers are the house's own and always apply."""
    return isinstance(rule, WindowRule | DesignatedTimesRule | HoldRule | ProhibitedMediumRule)
