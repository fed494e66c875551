"""What-if scenarios: a JSON file describing a debtor and a proposed contact.

Compliance officers write these to ask the engine a question and to keep regression
suites (docs/compliance.md has the format). The reader is strict: an unknown field, a
naive time or an unknown time zone is an error that names where it is.
"""

from __future__ import annotations

import json
from datetime import datetime, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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
from outreach.compliance.windows import WEEKDAYS, InconvenientTime
from outreach.errors import OutreachError

Channel = Literal["sms", "email", "voice"]


class ScenarioError(OutreachError):
    """A scenario file cannot be read as a scenario."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("needs a UTC offset, e.g. 2025-06-03T10:30:00-04:00")
    return value


def _zone(value: str | None) -> str | None:
    if value is not None and value not in available_timezones():
        raise ValueError(f"{value!r} is not an IANA time zone such as America/Chicago")
    return value


class _Jurisdiction(_Strict):
    country: str = Field(pattern=r"^[A-Z]{2}$")
    state: str | None = Field(default=None, pattern=r"^[A-Z0-9]{1,3}$")
    city: str | None = Field(default=None, pattern=r"^[A-Z0-9]{1,3}$")

    def code(self) -> str:
        return "-".join(part for part in (self.country, self.state, self.city) if part)


class _Collector(_Strict):
    type: Literal["first_party", "third_party"]


class _Phone(_Strict):
    number: str = Field(pattern=r"^\+[1-9]\d{6,14}$")
    type: Literal["mobile", "landline", "work"] | None = None
    timezone: str | None = None
    consent: bool = False  # to automated texts and calls alike
    sms_consent: bool = False  # to automated texts only
    voice_consent: bool = False  # to automated calls only

    _check_zone = field_validator("timezone")(_zone)


class _Email(_Strict):
    address: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    type: Literal["personal", "work"] | None = None
    consent: bool = False
    # The debtor has emailed the collector from it (``Email.used_by_debtor``).
    used_by_debtor: bool = False


class _Inconvenient(_Strict):
    days: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] = WEEKDAYS  # type: ignore[assignment]
    start: time
    end: time


class _Debtor(_Strict):
    timezone: str | None = None
    other_timezones: tuple[str, ...] = ()
    phones: tuple[_Phone, ...] = ()
    emails: tuple[_Email, ...] = ()
    inconvenient_times: tuple[_Inconvenient, ...] = ()
    represented_by_attorney: bool = False

    _check_zone = field_validator("timezone")(_zone)

    @field_validator("other_timezones")
    @classmethod
    def _check_zones(cls, zones: tuple[str, ...]) -> tuple[str, ...]:
        for zone in zones:
            _zone(zone)
        return zones


class _Past(_Strict):
    at: datetime
    channel: Channel
    direction: Literal["outbound", "inbound"]
    to: str | None = None
    debts: tuple[str, ...] = Field(min_length=1)
    outcome: Literal[OUTCOMES]  # type: ignore[valid-type]
    automated: bool = False

    _check_at = field_validator("at")(_aware)


class _Event(_Strict):
    at: datetime
    kind: Literal[EVENT_KINDS]  # type: ignore[valid-type]
    channel: Channel | None = None
    address: str | None = None
    debts: tuple[str, ...] = ()
    # Recorded on another of the debtor's accounts (``Event.elsewhere``).
    elsewhere: bool = False

    _check_at = field_validator("at")(_aware)


class _Contact(_Strict):
    channel: Channel
    to: str = Field(min_length=1)
    debts: tuple[str, ...] = Field(min_length=1)
    automated: bool = True
    # An agent's answer to what the debtor wrote then (see ``Contact.responding_to``).
    responding_to: datetime | None = None

    @field_validator("responding_to")
    @classmethod
    def _aware_or_none(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _aware(value)


class Scenario(_Strict):
    now: datetime
    jurisdiction: _Jurisdiction
    collector: _Collector
    debtor: _Debtor = _Debtor()
    history: tuple[_Past, ...] = ()
    events: tuple[_Event, ...] = ()
    contact: _Contact

    _check_now = field_validator("now")(_aware)

    def situation(self) -> Situation:
        debtor = self.debtor
        return Situation(
            now=self.now,
            jurisdiction=self.jurisdiction.code(),
            collector=self.collector.type,
            debtor=Debtor(
                timezone=debtor.timezone,
                other_timezones=debtor.other_timezones,
                phones=tuple(
                    Phone(
                        p.number,
                        p.type or "unknown",
                        p.timezone,
                        p.consent,
                        p.sms_consent,
                        p.voice_consent,
                    )
                    for p in debtor.phones
                ),
                emails=tuple(
                    Email(e.address.lower(), e.type or "unknown", e.consent, e.used_by_debtor)
                    for e in debtor.emails
                ),
                inconvenient_times=tuple(
                    InconvenientTime(i.start, i.end, tuple(i.days))
                    for i in debtor.inconvenient_times
                ),
                represented_by_attorney=debtor.represented_by_attorney,
            ),
            contact=Contact(
                self.contact.channel,
                self.contact.to.lower() if self.contact.channel == "email" else self.contact.to,
                self.contact.debts,
                self.contact.automated,
                self.contact.responding_to,
            ),
            history=tuple(
                PastContact(
                    h.at,
                    h.channel,
                    h.direction,
                    h.debts,
                    h.outcome,
                    _address(h.channel, h.to),
                    h.automated,
                )
                for h in self.history
            ),
            events=tuple(
                Event(e.at, e.kind, e.channel, _address(e.channel, e.address), e.debts, e.elsewhere)
                for e in self.events
            ),
        )


def _address(channel: str | None, address: str | None) -> str | None:
    """Email addresses in lower case, as the debtor's and the contact's are, so that an
    opt-out or a message from "Pat@Example.net" concerns pat@example.net. An event without
    a channel may still name an email address."""
    if address is not None and (channel == "email" or (channel is None and "@" in address)):
        return address.lower()
    return address


def read_scenario(path: Path) -> Scenario:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot be read ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: not valid JSON ({exc})") from None
    return parse_scenario(raw, str(path))


def parse_scenario(raw: object, source: str = "scenario") -> Scenario:
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        problems = [_describe(error) for error in exc.errors()]
        raise ScenarioError(f"{source}: " + "; ".join(problems)) from None


def _describe(error: object) -> str:
    assert isinstance(error, dict)
    where = ""
    for part in error["loc"]:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    if error["type"] == "extra_forbidden":
        return f"unknown field {where}"
    if error["type"] == "missing":
        return f"{where} is required"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def scenario_of(asked: Situation) -> dict[str, Any]:
    """The scenario document for a situation: what a stored decision was asked, in the
    format ``outreach compliance check`` reads back."""
    # Built with plain literals and optional keys set afterwards: every planned contact
    # stores one, and dict unions cost a third of it.
    country, _, rest = asked.jurisdiction.partition("-")
    state, _, city = rest.partition("-")
    jurisdiction = {"country": country}
    if state:
        jurisdiction["state"] = state
    if city:
        jurisdiction["city"] = city
    debtor = asked.debtor
    contact = asked.contact
    return {
        "now": _iso(asked.now),
        "jurisdiction": jurisdiction,
        "collector": {"type": asked.collector},
        "debtor": {
            "timezone": debtor.timezone,
            "other_timezones": list(debtor.other_timezones),
            "phones": [_phone(p) for p in debtor.phones],
            "emails": [_email(e) for e in debtor.emails],
            "inconvenient_times": [
                {"days": list(i.days), "start": f"{i.start:%H:%M}", "end": f"{i.end:%H:%M}"}
                for i in debtor.inconvenient_times
            ],
            "represented_by_attorney": debtor.represented_by_attorney,
        },
        "history": [
            {
                "at": c.at.isoformat(),
                "channel": c.channel,
                "direction": c.direction,
                "to": c.to,
                "debts": list(c.debts),
                "outcome": c.outcome,
                "automated": c.automated,
            }
            for c in asked.history
        ],
        "events": [
            {
                "at": e.at.isoformat(),
                "kind": e.kind,
                "channel": e.channel,
                "address": e.address,
                "debts": list(e.debts),
                **({"elsewhere": True} if e.elsewhere else {}),
            }
            for e in asked.events
        ],
        "contact": {
            "channel": contact.channel,
            "to": contact.to,
            "debts": list(contact.debts),
            "automated": contact.automated,
            **(
                {"responding_to": contact.responding_to.isoformat()}
                if contact.responding_to is not None
                else {}
            ),
        },
    }


_PHONE_KINDS = frozenset({"mobile", "landline", "work"})
_EMAIL_KINDS = frozenset({"personal", "work"})


def _phone(phone: Phone) -> dict[str, Any]:
    document: dict[str, Any] = {
        "number": phone.number,
        "timezone": phone.timezone,
        "consent": phone.consent,
    }
    if phone.sms_consent:
        document["sms_consent"] = True
    if phone.voice_consent:
        document["voice_consent"] = True
    if phone.kind in _PHONE_KINDS:
        document["type"] = phone.kind
    return document


def _email(email: Email) -> dict[str, Any]:
    document: dict[str, Any] = {"address": email.address, "consent": email.consent}
    if email.used_by_debtor:
        document["used_by_debtor"] = True
    if email.kind in _EMAIL_KINDS:
        document["type"] = email.kind
    return document


_last_now: tuple[datetime, str] | None = None


def _iso(now: datetime) -> str:
    """``now.isoformat()``, remembered for the instant a whole batch is planned at."""
    global _last_now
    last = _last_now
    if last is not None and last[0] is now:
        return last[1]
    text = now.isoformat()
    _last_now = (now, text)
    return text
