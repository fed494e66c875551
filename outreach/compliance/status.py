"""Whether to contact at all: holds, opt-outs, prohibited media, consent, employer email.

Each check reads the debtor's events in time order (the latest event about a thing wins:
an opt-in after an opt-out lifts it) and returns a blocking ``Reason`` or None.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from outreach.compliance.decision import Reason
from outreach.compliance.facts import LIFTED_BY, RESTRICTING, Event, Situation
from outreach.compliance.rules import (
    ConsentRule,
    EmployerEmailRule,
    HoldRule,
    OptOutRule,
    ProhibitedMediumRule,
)

StatusRule = HoldRule | OptOutRule | ProhibitedMediumRule | ConsentRule | EmployerEmailRule

_HOLD_WORDS = {
    "cease": "the debtor asked in writing that communication stop",
    "attorney": "the debtor is represented by an attorney about this debt",
    "dispute": "the debtor disputed the debt and it has not been verified",
    "bankruptcy": "the debtor is in bankruptcy",
    "workplace_prohibited": "the debtor's employer prohibits them from receiving such "
    "communication at work",
    "workplace_inconvenient": "the debtor said contact at work is inconvenient",
}
_LIFT_WORDS = {
    "cease": "the debtor withdrawing the cease request (event cease_withdrawn)",
    "attorney": "the attorney consenting to direct contact or not answering in reasonable "
    "time (event attorney_withdrawn)",
    "dispute": "verification sent to the debtor (event dispute_resolved)",
    "bankruptcy": "the stay lifted by the court or the case dismissed (event bankruptcy_closed)",
    "workplace_prohibited": "the debtor saying their employer allows it (event workplace_allowed)",
    "workplace_inconvenient": "the debtor agreeing to contact at work again (event "
    "workplace_convenient)",
}


def check_status(rule: StatusRule, situation: Situation) -> Reason | None:
    if isinstance(rule, HoldRule):
        return _hold(rule, situation)
    if isinstance(rule, OptOutRule):
        return _opt_out(rule, situation)
    if isinstance(rule, ProhibitedMediumRule):
        return _prohibited_medium(rule, situation)
    if isinstance(rule, ConsentRule):
        return _consent(rule, situation)
    return _employer_email(rule, situation)


def applies(rule: StatusRule, situation: Situation) -> bool:
    """Whether the rule concerns this contact at all (else it is skipped)."""
    contact = situation.contact
    if isinstance(rule, HoldRule) and rule.address_kinds is not None:
        return situation.debtor.address_kind(contact.channel, contact.to) in rule.address_kinds
    if isinstance(rule, ConsentRule):
        if rule.automated_only and not contact.automated:
            return False
        kind = situation.debtor.address_kind(contact.channel, contact.to)
        return rule.address_kinds is None or kind in rule.address_kinds
    return True


def counts(event: Event, now: datetime) -> bool:
    """Whether an event is in force at ``now``: one that restricts contact counts as soon
    as it is recorded, even stamped a moment ahead of ``now`` (another process's clock may
    run ahead: fail closed); one that lifts a restriction counts from its time on."""
    return event.at <= now or event.kind in RESTRICTING


PHONE_CHANNELS = ("sms", "voice")


def _past(situation: Situation) -> list[Event]:
    if not situation.events:
        return []
    now = situation.now
    return sorted((e for e in situation.events if counts(e, now)), key=lambda e: e.at)


def _latest(events: Iterable[Event]) -> Event | None:
    last = None
    for event in events:
        last = event
    return last


def latest_hold(
    events: Iterable[Event], kind: str, debts: Iterable[str], now: datetime
) -> Event | None:
    """The event that put a hold (cease, attorney, dispute, bankruptcy) on these debts, if
    the hold is still on: the latest of it and its lifting event is the hold itself."""
    relevant = [
        e
        for e in sorted(events, key=lambda e: e.at)
        if counts(e, now) and e.kind in (kind, LIFTED_BY[kind])
    ]
    # Each debt on its own: an event naming some debts lifts (or puts) the hold on those
    # only, so a contact about several debts stays held while any one of them is.
    for debt in tuple(debts) or ("",):
        latest = _latest(e for e in relevant if not e.debts or debt in e.debts)
        if latest is not None and latest.kind == kind:
            return latest
    return None


def _hold(rule: HoldRule, situation: Situation) -> Reason | None:
    latest = (
        latest_hold(situation.events, rule.event, situation.contact.debts, situation.now)
        if situation.events
        else None
    )
    active = latest is not None
    if rule.event == "attorney" and situation.debtor.represented_by_attorney:
        active = True
    if not active:
        return None
    since = f" since {latest.at.date().isoformat()}" if latest else ""
    return Reason(
        rule.code,
        rule.citation,
        "block",
        f"{_HOLD_WORDS[rule.event]}{since}",
        lifted_by=_LIFT_WORDS[rule.event],
    )


def _opt_out(rule: OptOutRule, situation: Situation) -> Reason | None:
    contact = situation.contact
    past = [
        e
        for e in _past(situation)
        if e.kind in ("opt_out", "opt_in") and e.channel in (None, contact.channel)
    ]
    # The address's own opt-out, lifted only by its own opt-in on the channel; and one
    # recorded without an address (every address: the safe reading), lifted only by an
    # opt-in without one. An opt-out without a channel holds on every channel.
    own = _latest(
        e for e in past
        if e.address == contact.to and (e.kind == "opt_out" or e.channel == contact.channel)
    )  # fmt: skip
    every = _latest(
        e for e in past
        if e.address is None and (e.kind == "opt_out" or e.channel == contact.channel)
    )  # fmt: skip
    opted_out = [e for e in (own, every) if e is not None and e.kind == "opt_out"]
    if not opted_out:
        return None
    latest = max(opted_out, key=lambda e: e.at)
    return Reason(
        rule.code,
        rule.citation,
        "block",
        f"{contact.to} opted out of {contact.channel} on {latest.at.date().isoformat()}",
        lifted_by=f"the debtor opting back in from {contact.to} (START, or an opt_in event)",
    )


def _prohibited_medium(rule: ProhibitedMediumRule, situation: Situation) -> Reason | None:
    channel = situation.contact.channel
    latest = _latest(
        e
        for e in _past(situation)
        if e.channel == channel
        and (e.kind == "prohibited_medium" or (e.kind == "opt_in" and e.address is None))
    )
    if latest is None or latest.kind != "prohibited_medium":
        return None
    return Reason(
        rule.code,
        rule.citation,
        "block",
        f"the debtor asked not to be contacted by {channel} at all "
        f"({latest.at.date().isoformat()}); every {channel} address is blocked",
        lifted_by=f"the debtor allowing {channel} again (an opt_in event without an address)",
    )


class ConsentState(NamedTuple):
    consented: bool
    revoked: bool
    # Revoked on another of the debtor's accounts (``Event.elsewhere``), where it is lifted.
    elsewhere: bool = False


def consent_state(situation: Situation) -> ConsentState:
    """Whether the contact's address has consent on its channel, and whether it was revoked.

    Recorded consent is the starting point; consent and revocation events (an address-less
    or channel-less one covers every address or channel), and a START from that number
    (an opt-in to its texts, CTIA C-7), change it in time order. A prohibited medium ("stop
    calling me") revokes consent on every address of that medium, whoever collects (47 CFR
    64.1200(a)(10): revocation by any reasonable means) until the opt-in that allows the
    medium again. A number's opt-out on one phone channel (STOP to a text, a do-not-call
    request), and a revoked consent to one phone channel, revoke consent to automated
    contact on the other too, until their own lift there (the opt-in, the consent): a
    revocation in reply to one kind of robocall or robotext covers all of them from that
    caller (64.1200(a)(10), the FCC's "revoke-all"), and a START to texts is no consent to
    prerecorded calls. A revocation recorded on another of the debtor's accounts
    (``Event.elsewhere``) is lifted there: no consent recorded on this account after it
    gives back what it covers, though the number's own START still does.
    """
    contact = situation.contact
    # What consent and revocation on this channel said last; then what still blocks on
    # top of it until its own lift: a prohibited medium, and the other phone channel's
    # opt-out or revocation (by kind).
    consented = situation.debtor.recorded_consent(contact.channel, contact.to)
    revoked = pinned = prohibited = False
    other_pending: set[str] = set()
    phone = contact.channel in PHONE_CHANNELS
    for event in _past(situation):
        if event.address not in (None, contact.to):
            continue
        kind = event.kind
        if kind == "consent" and pinned:
            continue  # the revocation it would lift holds for the person
        if phone and event.channel in PHONE_CHANNELS and event.channel != contact.channel:
            # A number's word on the other phone channel speaks for the number (T-6, T-9):
            # a consent or revocation (to any number, or to this one), and this number's
            # opt-out or opt-in.
            if kind in _REVOCATIONS and (kind == "consent_revoked" or event.address):
                other_pending.add(kind)
                pinned = pinned or (kind == "consent_revoked" and event.elsewhere)
            elif kind in _OTHER_LIFTS and (kind == "consent" or event.address):
                other_pending.discard(_OTHER_LIFTS[kind])
            continue
        if event.channel not in (None, contact.channel):
            continue
        if kind == "consent" or (kind == "opt_in" and event.address and event.channel == "sms"):
            consented, revoked, prohibited = True, False, False
            other_pending.clear()
        elif kind == "consent_revoked":
            consented, revoked, prohibited = False, True, False
            other_pending.clear()
            pinned = pinned or event.elsewhere
        elif kind == "prohibited_medium":
            prohibited = True
        elif kind == "opt_in" and not event.address:
            prohibited = False
    blocked = prohibited or bool(other_pending)
    revoked = revoked or blocked
    return ConsentState(consented and not blocked, revoked, pinned and revoked)


# What revokes on the other phone channel, by the lift there that gives it back.
_OTHER_LIFTS = {"opt_in": "opt_out", "consent": "consent_revoked"}
_REVOCATIONS = frozenset(_OTHER_LIFTS.values())


def _consent(rule: ConsentRule, situation: Situation) -> Reason | None:
    consented, revoked, elsewhere = consent_state(situation)
    if consented:
        return None
    contact = situation.contact
    what = "automated " if rule.automated_only else ""
    if revoked:
        return Reason(
            rule.revoked_code or rule.code,
            rule.citation,
            "block",
            f"the debtor revoked consent to {what}{contact.channel} contact at {contact.to}"
            + (
                " (recorded on another account: the debtor's, or one using this number)"
                if elsewhere
                else ""
            ),
            lifted_by="the debtor giving consent again (a consent event"
            + (", on the account the revocation was recorded on)" if elsewhere else ")"),
        )
    kind = situation.debtor.address_kind(contact.channel, contact.to)
    return Reason(
        rule.code,
        rule.citation,
        "block",
        f"no recorded consent for {what}{contact.channel} contact at {contact.to} ({kind} line)"
        if contact.channel != "email"
        else f"no recorded consent to email {contact.to}",
        lifted_by=_consent_lifted_by(contact.channel),
    )


def _consent_lifted_by(channel: str) -> str:
    """What records the consent a contact on ``channel`` lacks: consent to texts is no
    consent to prerecorded calls, nor the reverse, so each names its own."""
    if channel == "email":
        return (
            "recorded consent to email this address: a consent event for email, or the "
            "import's email_consent"
        )
    return (
        f"recorded consent to {channel} contact at this number: a consent event for {channel}, "
        f"or the import's {channel}_consent (phone2_{channel}_consent for the second number)"
    )


def _employer_email(rule: EmployerEmailRule, situation: Situation) -> Reason | None:
    contact = situation.contact
    if situation.debtor.address_kind("email", contact.to) != "work":
        return None
    if not rule.exceptions:
        return Reason(
            rule.code,
            rule.citation,
            "block",
            f"{contact.to} is a work address: no email to an address the employer provided, "
            "whatever the debtor consented to or wrote from",
            lifted_by="nothing while it is a work address: email an address the debtor "
            "provided themselves",
        )
    consented = consent_state(situation).consented
    wrote_from_it = situation.debtor.wrote_from(contact.to) or any(
        c.channel == "email" and c.direction == "inbound" and c.to == contact.to
        for c in situation.history
        if c.at <= situation.now
    )
    if consented or wrote_from_it:
        return None
    return Reason(
        rule.code,
        rule.citation,
        "block",
        f"{contact.to} is a work address and the debtor has not consented to it or written from it",
        lifted_by="the debtor's consent to this address, or an email from the debtor sent from it",
    )
