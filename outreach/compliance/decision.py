"""The engine's answer: a verdict, the earliest allowed instant, and every reason.

A decision is a value (never a bare boolean): ``allow``; ``defer`` with ``not_before``, the
first instant every rule allows; or ``block`` until an event lifts it (each reason says
which). ``checks`` lists every rule evaluated with its outcome, so the record shows what
passed as well as what failed (the catalog's section 7).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from outreach.records import quick_init

Verdict = Literal["allow", "defer", "block"]
Outcome = Literal["pass", "defer", "block", "skip"]


@quick_init
@dataclass(frozen=True)
class Reason:
    code: str
    citation: str
    effect: Outcome
    detail: str  # plain words: what the engine saw
    not_before: datetime | None = None  # defer: the earliest instant this rule allows
    lifted_by: str | None = None  # block: what would lift it

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "code": self.code,
            "effect": self.effect,
            "detail": self.detail,
            "citation": self.citation,
        }
        if self.not_before is not None:
            data["not_before"] = iso(self.not_before)
        if self.lifted_by is not None:
            data["lifted_by"] = self.lifted_by
        return data


class Check(NamedTuple):
    """One rule evaluated: ``pass``, ``defer``, ``block`` or ``skip`` (does not concern it).

    A named tuple, not a frozen dataclass: every decision makes about ten, and a tuple is
    built several times faster."""

    code: str
    outcome: Outcome
    profile: str

    def as_json(self) -> dict[str, str]:
        return {"code": self.code, "outcome": self.outcome, "profile": self.profile}


OK = Reason("OK", "", "pass", "every rule that applies allows this contact now")


@quick_init
@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    not_before: datetime | None
    reasons: tuple[Reason, ...]
    checks: tuple[Check, ...]
    ruleset_version: str
    zones: tuple[tuple[str, str], ...] = ()  # (zone, source)
    jurisdictions: tuple[str, ...] = field(default=())

    @property
    def allowed(self) -> bool:
        return self.verdict == "allow"

    @property
    def codes(self) -> list[str]:
        return [reason.code for reason in self.reasons]

    def as_json(self) -> dict[str, Any]:
        return {
            "decision": self.verdict,
            "not_before": iso(self.not_before) if self.not_before else None,
            "reasons": [reason.as_json() for reason in self.reasons],
            "rules_evaluated": [check.as_json() for check in self.checks],
            "zones": [{"zone": zone, "source": source} for zone, source in self.zones],
            "jurisdictions": list(self.jurisdictions),
            "ruleset_version": self.ruleset_version,
        }


def iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")
