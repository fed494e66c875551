"""Rule sets: which compliance rules apply to whom, as data.

A rule set is a YAML file of **profiles**; each profile names the jurisdiction it covers
(``US``, ``US-MA``, ``US-NY-NYC``, or ``*`` for house policy everywhere) and lists rules.
A rule has a reason code from the catalog, a citation, the collector types it binds
(first-party creditors, third-party agencies) and the channels it concerns, optional
effective dates, and the parameters of its kind. The package ships
``rulesets/default.yaml``; an operator's file (the ``compliance_rules_file`` setting)
replaces profiles by id and adds new ones. Loading names the file, the profile, the rule
and the field of every mistake.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, time
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from outreach.config_files import read_config_text
from outreach.errors import ConfigError

Channel = Literal["sms", "email", "voice"]
Collector = Literal["first_party", "third_party"]
CHANNELS: tuple[Channel, ...] = ("sms", "email", "voice")
COLLECTOR_TYPES: tuple[Collector, ...] = ("first_party", "third_party")
HOLD_EVENTS = (
    "cease", "attorney", "dispute", "bankruptcy", "workplace_prohibited",
    "workplace_inconvenient",
)  # fmt: skip
PHONE_KINDS = ("mobile", "landline", "work", "unknown")
EMAIL_KINDS = ("personal", "work", "unknown")
EVERYWHERE = "*"


class _Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str = Field(pattern=r"^[A-Z][A-Z0-9_]{1,63}$")
    citation: str = Field(min_length=1)
    collectors: tuple[Collector, ...] = COLLECTOR_TYPES
    channels: tuple[Channel, ...] = CHANNELS
    effective_from: date | None = None
    effective_until: date | None = None  # the last day it applies
    note: str | None = None

    def in_force(self, on: date) -> bool:
        if self.effective_from is not None and on < self.effective_from:
            return False
        return self.effective_until is None or on <= self.effective_until


class WindowRule(_Rule):
    """Contact only within these local hours, in every candidate zone."""

    kind: Literal["window"]
    start: time
    end: time
    # Variants of the code that say why several zones were intersected.
    multi_zone_code: str | None = None
    unknown_location_code: str | None = None

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, end: time, info: Any) -> time:
        start = info.data.get("start")
        if start is not None and end <= start:
            raise ValueError("must be later than start")
        return end


class RestrictedDaysRule(_Rule):
    """No contact on Sundays and/or public holidays where the debtor is."""

    kind: Literal["restricted_days"]
    sundays: bool = False
    holidays: bool = False  # the jurisdiction's public holidays (the holidays package)


class DesignatedTimesRule(_Rule):
    """The times the debtor said are inconvenient are off limits."""

    kind: Literal["designated_times"]


class CountRuleSpec(_Rule):
    """At most ``limit`` outbound contacts in any ``days`` local dates."""

    kind: Literal["count"]
    limit: int = Field(ge=1, le=1000)
    days: int = Field(ge=1, le=366)
    per: Literal["debt", "debtor", "address"] = "debt"
    # Only contacts to addresses of these kinds count, and only such contacts are limited.
    address_kinds: tuple[str, ...] | None = None
    automated_only: bool = False
    excluded_outcomes: tuple[str, ...] = ("busy", "not_in_service")


class GapRuleSpec(_Rule):
    """At least ``minutes`` between two outbound contacts on ``channels`` to one address:
    calls in quick succession can rebut Reg F's presumption of compliance (comment
    14(b)(2)(i)-2: "two unanswered telephone calls to the same telephone number within five
    minutes")."""

    kind: Literal["min_gap"]
    minutes: int = Field(ge=1, le=1440)


class ConversationRuleSpec(_Rule):
    """No contact for ``days`` dates from a telephone conversation about the debt."""

    kind: Literal["after_conversation"]
    days: int = Field(default=7, ge=1, le=366)


class OptOutRule(_Rule):
    """An opted-out address is blocked on that channel until the debtor opts back in."""

    kind: Literal["opt_out"]


class ProhibitedMediumRule(_Rule):
    """A medium the debtor asked us not to use is blocked on every address."""

    kind: Literal["prohibited_medium"]


class HoldRule(_Rule):
    """A status (cease, attorney, dispute, bankruptcy, an employer's prohibition, the
    workplace the debtor said is inconvenient) blocks collection contact; with
    ``address_kinds``, contact to those kinds of address only."""

    kind: Literal["hold"]
    event: Literal[
        "cease", "attorney", "dispute", "bankruptcy", "workplace_prohibited",
        "workplace_inconvenient",
    ]  # fmt: skip
    address_kinds: tuple[str, ...] | None = None  # None: every kind


class ConsentRule(_Rule):
    """Contact needs recorded consent: for automated calls and texts to mobiles (TCPA), or
    for any electronic message where a jurisdiction requires it."""

    kind: Literal["consent"]
    address_kinds: tuple[str, ...] | None = None  # None: every kind
    automated_only: bool = False
    revoked_code: str | None = None


class EmployerEmailRule(_Rule):
    """No email to an address the employer provided (a ``work`` address), without the
    debtor's consent; with ``exceptions: false``, none even with it (23 NYCRR 1.6)."""

    kind: Literal["employer_email"]
    # Reg F 1006.22(f)(3)'s: the debtor's prior consent, or an email from them sent from it.
    exceptions: bool = True


Rule = Annotated[
    WindowRule
    | RestrictedDaysRule
    | DesignatedTimesRule
    | CountRuleSpec
    | ConversationRuleSpec
    | GapRuleSpec
    | OptOutRule
    | ProhibitedMediumRule
    | HoldRule
    | ConsentRule
    | EmployerEmailRule,
    Field(discriminator="kind"),
]


class Profile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=64)
    name: str
    jurisdiction: str = Field(pattern=r"^(\*|[A-Z]{2}(-[A-Z0-9]{1,3}){0,2})$")
    # Where the debtor's location is unknown, contact only at times open in all these zones.
    all_zones: tuple[str, ...] = ()
    # The zones of each region (state), for a debtor whose state is known but not their zone.
    region_zones: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    rules: tuple[Rule, ...] = ()

    @field_validator("all_zones", "region_zones")
    @classmethod
    def _known_zones(cls, value: Any) -> Any:
        zones = [z for group in value.values() for z in group] if isinstance(value, dict) else value
        unknown = sorted(set(zones) - available_timezones())
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not an IANA time zone")
        return value

    def covers(self, jurisdiction: str) -> bool:
        """``US`` covers ``US``, ``US-MA`` and ``US-NY-NYC``; ``*`` covers everything."""
        return self.jurisdiction == EVERYWHERE or (
            jurisdiction == self.jurisdiction or jurisdiction.startswith(self.jurisdiction + "-")
        )


class _RuleSetFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = Field(min_length=1, max_length=32)
    profiles: tuple[Profile, ...]


@dataclass(frozen=True, eq=False)
class RuleSet:
    version: str
    profiles: tuple[Profile, ...]
    sources: tuple[str, ...]

    def profiles_for(self, jurisdictions: Sequence[str]) -> list[Profile]:
        return [p for p in self.profiles if any(p.covers(j) for j in jurisdictions)]

    def rules_for(
        self, jurisdictions: Sequence[str], collector: str, on: date | Sequence[date]
    ) -> list[tuple[Profile, Rule]]:
        """The rules binding this collector there, in force on the date (on any of the
        dates, where the debtor's candidate zones are on different dates)."""
        days = (on,) if isinstance(on, date) else on
        return [
            (profile, rule)
            for profile in self.profiles_for(jurisdictions)
            for rule in profile.rules
            if collector in rule.collectors and any(rule.in_force(day) for day in days)
        ]

    @cached_property
    def memo(self) -> dict[Any, Any]:
        """Answers worked out from this rule set (it never changes once loaded)."""
        return {}

    def all_zones(self, country: str) -> tuple[str, ...]:
        found: tuple[str, ...] | None = self.memo.get(("all_zones", country))
        if found is None:
            found = self.memo[("all_zones", country)] = next(
                (p.all_zones for p in self.profiles if p.jurisdiction == country and p.all_zones),
                (),
            )
        return found

    def region_zones(self, jurisdiction: str) -> tuple[str, ...]:
        """The zones of the state a jurisdiction names (``US-NY-NYC`` is in ``US-NY``)."""
        found: tuple[str, ...] | None = self.memo.get(("region_zones", jurisdiction))
        if found is None:
            region = "-".join(jurisdiction.split("-")[:2])
            found = self.memo[("region_zones", jurisdiction)] = next(
                (p.region_zones[region] for p in self.profiles if region in p.region_zones), ()
            )
        return found

    @cached_property
    def lookback_days(self) -> int:
        """How far back contact history matters to any rule."""
        return max(
            (
                rule.days
                for profile in self.profiles
                for rule in profile.rules
                if isinstance(rule, CountRuleSpec | ConversationRuleSpec)
            ),
            default=7,
        )

    @cached_property
    def codes(self) -> frozenset[str]:
        return frozenset(rule.code for profile in self.profiles for rule in profile.rules)


_RULES_REMEDY = "fix COMPLIANCE_RULES_FILE or unset it to use the packaged rules"


def load_ruleset(override: Path | None = None) -> RuleSet:
    """The packaged rule set, with the operator's file (if any) laid over it."""
    packaged = resources.files("outreach.compliance").joinpath("rulesets/default.yaml")
    base = _parse(packaged.read_text(encoding="utf-8"), "outreach/compliance/rulesets/default.yaml")
    if override is None:
        return RuleSet(base.version, base.profiles, ("packaged",))
    try:
        text = read_config_text(override)
    except FileNotFoundError as exc:
        raise ConfigError(
            f"compliance rules file {override}: cannot be read ({exc.strerror}); {_RULES_REMEDY}"
        ) from None
    except ConfigError as exc:
        raise ConfigError(f"compliance rules file {exc}; {_RULES_REMEDY}") from None
    extra = _parse(text, str(override))
    replaced = {p.id: p for p in extra.profiles}
    profiles = tuple(replaced.pop(p.id, p) for p in base.profiles) + tuple(replaced.values())
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return RuleSet(
        f"{base.version}+{extra.version}.{digest}", profiles, ("packaged", str(override))
    )


def _parse(text: str, source: str) -> _RuleSetFile:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML ({exc})") from None
    try:
        parsed = _RuleSetFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc, raw)}") from None
    ids = [p.id for p in parsed.profiles]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(f"{source}: profile id {duplicates[0]!r} is used twice")
    return parsed


def _describe(exc: ValidationError, raw: Any) -> str:
    """The first problem, located as 'profile US, rule 3 (REGF_7IN7_CALL_CAP), field: why'."""
    error = exc.errors()[0]
    location = list(error["loc"])
    words: list[str] = []
    if location[:1] == ["profiles"] and len(location) > 1 and isinstance(location[1], int):
        profiles = raw.get("profiles") if isinstance(raw, dict) else None
        profile = profiles[location[1]] if isinstance(profiles, list) else None
        name = profile.get("id") if isinstance(profile, dict) else None
        words.append(f"profile {name or location[1] + 1}")
        location = location[2:]
        if location[:1] == ["rules"] and len(location) > 1 and isinstance(location[1], int):
            rules = profile.get("rules") if isinstance(profile, dict) else None
            rule = rules[location[1]] if isinstance(rules, list) else None
            code = rule.get("code") if isinstance(rule, dict) else None
            words.append(f"rule {location[1] + 1}" + (f" ({code})" if code else ""))
            # A tagged union adds the kind to the path: it is not a field.
            location = [part for part in location[2:] if part not in _KIND_TAGS]
    field = ".".join(str(part) for part in location)
    return ", ".join([*words, f"{field}: {error['msg']}" if field else error["msg"]])


_KIND_TAGS = frozenset(
    {
        "window",
        "restricted_days",
        "designated_times",
        "count",
        "after_conversation",
        "opt_out",
        "prohibited_medium",
        "hold",
        "consent",
        "employer_email",
    }
)
