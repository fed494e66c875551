"""Deciding once for debtors alike: ``AlikeDecisions.evaluate`` answers as ``evaluate`` does.

A batch of the plan stage asks the engine the same question for many debtors that differ
only in their addresses and account references: same place, same kind of collector, same
channel, same consents, no contact lately. The engine never looks inside an address or a
reference except to compare it with another, to find a phone number's zones and state, and
to quote it in a reason's words. So the question is keyed with each address and reference
replaced by the order in which it first appears (which keeps every comparison's answer) and
each phone number by its zones and state, and the answer is shared within the key. An answer
whose reasons quote an address or a reference is not shared, and the zones an answer lists
(each naming its source, a phone number included) are always the debtor's own.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, tzinfo

from outreach.compliance.decision import Decision
from outreach.compliance.engine import evaluate, zone_signals
from outreach.compliance.facts import Situation
from outreach.compliance.rules import RuleSet
from outreach.compliance.windows import InconvenientTime
from outreach.compliance.zones import jurisdiction_of_number, zones_of_number


class AlikeDecisions:
    """``evaluate`` over many situations with the same ``now`` (one batch), each answer
    the same as ``evaluate``'s own."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self.shared = 0  # answers taken from a debtor alike, for the tests and a profile
        self._known: dict[Hashable, Decision] = {}

    def evaluate(self, situation: Situation) -> Decision:
        return self.answer(question(situation))

    def answer(self, asked: Question, zones: tuple[tuple[str, str], ...] | None = None) -> Decision:
        """``evaluate``'s answer to ``asked``. ``zones``: the debtor's, when known already
        (the same debtor's question at another instant: zones do not depend on the time)."""
        known = self._known.get(asked.key)
        if known is not None:
            self.shared += 1
            if zones is None:
                zones = zone_signals(asked.situation, self.ruleset)
            return Decision(
                known.verdict, known.not_before, known.reasons, known.checks,
                known.ruleset_version, zones, known.jurisdictions,
            )  # fmt: skip
        decision = evaluate(asked.situation, self.ruleset)
        if not _quotes(decision, asked.names):
            self._known[asked.key] = decision
        return decision


@dataclass(frozen=True, slots=True)
class Question:
    """A situation with its key: the same question at another instant (``later``) is keyed
    without going through the debtor again."""

    situation: Situation
    key: tuple[Hashable, ...]
    names: dict[str, int]

    def later(self, at: datetime) -> Question:
        """The same question as if asked at ``at``."""
        # The instant is the key's first part, and nothing else in the key depends on it.
        return Question(replace(self.situation, now=at), (_instant(at), *self.key[1:]), self.names)


def question(situation: Situation) -> Question:
    names: dict[str, int] = {}
    return Question(situation, alike_key(situation, names), names)


def alike_key(situation: Situation, names: dict[str, int]) -> tuple[Hashable, ...]:
    """The situation with every address and reference replaced by its order of first
    appearance (recorded in ``names``) and every phone number by what the engine derives
    from it. Situations with equal keys get equal decisions, but for quoted names."""

    def name(text: str | None) -> str | int | None:
        if not text:
            return text  # None and "" stand for themselves
        return names.setdefault(text, len(names))

    def each(texts: Iterable[str]) -> tuple[str | int | None, ...]:
        return tuple([name(text) for text in texts])

    contact = situation.contact
    debtor = situation.debtor
    return (
        _instant(situation.now),  # first: ``Question.later`` replaces it
        situation.jurisdiction,
        situation.collector,
        contact.channel,
        name(contact.to),
        each(contact.debts),
        contact.automated,
        None if contact.responding_to is None else _instant(contact.responding_to),
        debtor.timezone,
        debtor.other_timezones,
        tuple([_hours(times) for times in debtor.inconvenient_times]),
        debtor.represented_by_attorney,
        tuple(
            [
                (
                    name(phone.number),
                    phone.kind,
                    phone.timezone,
                    phone.consent,
                    phone.sms_consent,
                    phone.voice_consent,
                    None if phone.timezone else zones_of_number(phone.number),
                    # Its state's zones count whatever the account's state (its rules too
                    # where the account names none).
                    jurisdiction_of_number(phone.number),
                )
                for phone in debtor.phones
            ]
        ),
        tuple(
            [
                (name(email.address), email.kind, email.consent, email.used_by_debtor)
                for email in debtor.emails
            ]
        ),
        tuple(
            [
                (
                    _instant(c.at),
                    c.channel,
                    c.direction,
                    each(c.debts),
                    c.outcome,
                    name(c.to),
                    c.automated,
                )
                for c in situation.history
            ]
        ),
        tuple(
            [
                (_instant(e.at), e.kind, e.channel, name(e.address), each(e.debts), e.elsewhere)
                for e in situation.events
            ]
        ),
    )


def _instant(at: datetime) -> tuple[datetime, timedelta | None, tzinfo | None]:
    """A datetime as the engine sees it. Aware datetimes compare equal (and hash alike)
    when they are the same instant at different offsets, and at the same wall time in the
    repeated hour of a fall-back (``fold`` is ignored); the engine reads their local dates
    and times, so the offset and zone are part of the key."""
    return (at, at.utcoffset(), at.tzinfo)


def _hours(times: InconvenientTime) -> Hashable:
    # A time's ``fold`` is ignored by equality too.
    return (times, times.start.fold, times.end.fold)


def _quotes(decision: Decision, names: dict[str, int]) -> bool:
    """Whether the decision's reasons quote any of the situation's addresses or references
    (an opt-out names the address it came from, for instance)."""
    if not names:
        return False
    words = "\n".join(
        f"{reason.detail}\n{reason.citation}\n{reason.lifted_by or ''}"
        for reason in decision.reasons
    )
    return any(text in words for text in names)
