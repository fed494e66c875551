"""What the engine is told: the debtor, their history and events, and the proposed contact.

These are plain values; the scenario reader (``scenario.py``) and the database loader
(``outreach.compliance_store``) both build them. Every instant is aware.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from outreach.compliance.frequency import PastContact
from outreach.compliance.windows import InconvenientTime
from outreach.records import quick_init

EVENT_KINDS = (
    "opt_out",
    "opt_in",
    "prohibited_medium",
    "consent",
    "consent_revoked",
    "cease",
    "cease_withdrawn",
    "dispute",
    "dispute_resolved",
    "attorney",
    "attorney_withdrawn",
    "bankruptcy",
    "bankruptcy_closed",
    "conversation",
    "workplace_prohibited",
    "workplace_allowed",
    "workplace_inconvenient",
    "workplace_convenient",
)
OUTCOMES = (
    "no_answer",
    "voicemail",
    "limited_content_message",
    "conversation",
    "busy",
    "not_in_service",
    "delivered",
    "failed",
)
# Events that restrict contact (the others lift a restriction, or are a conversation).
RESTRICTING = frozenset(
    {"opt_out", "prohibited_medium", "consent_revoked", "cease", "dispute", "attorney",
     "bankruptcy", "workplace_prohibited", "workplace_inconvenient"}
)  # fmt: skip
# The event that lifts each hold.
LIFTED_BY = {
    "cease": "cease_withdrawn",
    "attorney": "attorney_withdrawn",
    "dispute": "dispute_resolved",
    "bankruptcy": "bankruptcy_closed",
    "workplace_prohibited": "workplace_allowed",
    "workplace_inconvenient": "workplace_convenient",
}


@quick_init
@dataclass(frozen=True)
class Phone:
    number: str  # E.164
    kind: str = "unknown"  # mobile, landline, work, unknown
    timezone: str | None = None  # None: inferred from the number
    consent: bool = False  # recorded consent to automated calls and texts, both
    # Recorded consent to one channel's automated contact only (the import's sms_consent
    # and voice_consent each): consent to texts is no consent to prerecorded calls.
    sms_consent: bool = False
    voice_consent: bool = False

    def consents_to(self, channel: str) -> bool:
        """Whether consent to automated contact on ``channel`` (sms, voice) is recorded."""
        if self.consent:
            return True
        return self.sms_consent if channel == "sms" else self.voice_consent


@quick_init
@dataclass(frozen=True)
class Email:
    address: str
    kind: str = "unknown"  # personal, work, unknown
    consent: bool = False  # the debtor's consent to email at this address
    # The debtor has emailed the collector from this address, at any time (a work address
    # so used may be emailed: Reg F 1006.22(f)(3)); ``history`` holds only the recent past.
    used_by_debtor: bool = False


@quick_init
@dataclass(frozen=True)
class Debtor:
    timezone: str | None = None  # where the debtor lives (address), if known
    other_timezones: tuple[str, ...] = ()  # any other location signal
    phones: tuple[Phone, ...] = ()
    emails: tuple[Email, ...] = ()
    inconvenient_times: tuple[InconvenientTime, ...] = ()
    represented_by_attorney: bool = False

    def address_kind(self, channel: str, address: str) -> str:
        if channel == "email":
            return next((e.kind for e in self.emails if e.address == address), "unknown")
        return next((p.kind for p in self.phones if p.number == address), "unknown")

    def wrote_from(self, address: str) -> bool:
        """Whether the debtor has emailed the collector from ``address`` (``Email``)."""
        return any(e.used_by_debtor for e in self.emails if e.address == address)

    def recorded_consent(self, channel: str, address: str) -> bool:
        if channel == "email":
            return any(e.consent for e in self.emails if e.address == address)
        return any(p.consents_to(channel) for p in self.phones if p.number == address)


@quick_init
@dataclass(frozen=True)
class Event:
    """Something the debtor said or that happened to them (an opt-out, a dispute...)."""

    at: datetime
    kind: str
    channel: str | None = None
    address: str | None = None
    debts: tuple[str, ...] = ()  # empty: every debt
    # Recorded on another of the debtor's accounts, and in force there: what is about the
    # person holds on each of their accounts (``compliance_store.PERSON_RESTRICTIONS``).
    elsewhere: bool = False


@quick_init
@dataclass(frozen=True)
class Contact:
    """The contact the engine is asked about."""

    channel: str
    to: str
    debts: tuple[str, ...]
    automated: bool = True
    # An answer to a message the debtor sent then, through this same medium: the one
    # response a debtor who writes at a time they designated inconvenient may get at that
    # time (comment 6(b)(1)-2). None for anything else, a second answer included.
    responding_to: datetime | None = None


@quick_init
@dataclass(frozen=True)
class Situation:
    now: datetime
    jurisdiction: str  # ISO 3166-2 with an optional city (US-NY-NYC); a country alone (US)
    collector: str  # first_party, third_party
    debtor: Debtor
    contact: Contact
    history: tuple[PastContact, ...] = ()
    events: tuple[Event, ...] = field(default=())

    @property
    def country(self) -> str:
        return self.jurisdiction.split("-", 1)[0]
