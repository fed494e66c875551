"""Cadences: the files in ``schedules/`` that say when to contact an account, and how.

Loading validates a file into plain values and names the file, the step and the reason
for every mistake. ``next_action`` is pure: given a cadence, the facts about an account,
the steps already taken and ``now``, it says which step is due, which missed steps to
record as skipped, and when the next step will fall due.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import yaml
from babel import Locale, UnknownLocaleError

from outreach.config_files import read_config_text
from outreach.errors import CadenceError, ConfigError
from outreach.models import AccountStatus
from outreach.records import quick_init

CADENCE_SUFFIXES = (".yaml", ".yml")
CHANNELS = ("sms", "email", "voice")
TONES = ("friendly", "firm", "final")
STOP_CONDITIONS = ("paid", "disputed", "promise_pending", "cease_requested")
_ANCHOR = re.compile(r"^(due_date|after_previous)\s*([+-])\s*(\d{1,4})d$")
_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class Anchor:
    base: Literal["due_date", "after_previous"]
    days: int  # signed

    def __str__(self) -> str:
        return f"{self.base}{self.days:+d}d"


@dataclass(frozen=True)
class Conditions:
    min_balance: Decimal | None = None  # in the account's currency units
    statuses: tuple[str, ...] = ()
    locales: tuple[str, ...] = ()  # languages ("es") or locales ("es_US")


@dataclass(frozen=True)
class Step:
    key: str
    anchor: Anchor
    channel: str
    fallback: tuple[str, ...]
    template: str
    tone: str
    conditions: Conditions = Conditions()
    # Days after falling due that the step may still be sent; None: no limit. A reminder
    # saying "due tomorrow" must not go out a week late.
    expires_after: int | None = None

    @property
    def channels(self) -> tuple[str, ...]:
        """The channel, then its fallbacks, in the order to try them."""
        return (self.channel, *self.fallback)


@dataclass(frozen=True)
class Handoff:
    to: str
    after_days: int


@dataclass(frozen=True)
class Cadence:
    name: str
    description: str
    steps: tuple[Step, ...]
    stop_when: tuple[str, ...]
    handoff: Handoff | None = None

    def step(self, key: str) -> Step:
        return next(s for s in self.steps if s.key == key)

    @cached_property
    def min_balances(self) -> tuple[Decimal, ...]:
        """The distinct minimum balances the steps' conditions name."""
        return tuple(sorted({s.conditions.min_balance for s in self.steps
                             if s.conditions.min_balance is not None}))  # fmt: skip


# --- loading -----------------------------------------------------------------------------


def cadence_names(schedules_dir: Path) -> frozenset[str]:
    """The cadences an account may name: one per file in ``schedules_dir``, by file stem."""
    if not schedules_dir.is_dir():
        return frozenset()
    return frozenset(
        path.stem for path in schedules_dir.iterdir() if path.suffix in CADENCE_SUFFIXES
    )


def load_cadences(
    schedules_dir: Path, template_exists: Callable[[str, str, str], bool] | None = None
) -> dict[str, Cadence]:
    """Every cadence in ``schedules_dir``; all mistakes in all files are reported at once."""
    cadences: dict[str, Cadence] = {}
    problems: list[str] = []
    paths = sorted(schedules_dir.iterdir()) if schedules_dir.is_dir() else []
    paths = [path for path in paths if path.suffix in CADENCE_SUFFIXES]
    for name in sorted({path.stem for path in paths}):
        same = [path for path in paths if path.stem == name]
        if len(same) > 1:
            # Which one an account's cadence means is a guess either way: neither is taken.
            problems.append(f"{' and '.join(map(str, same))}: two files for the cadence "
                            f"{name!r}: keep one")  # fmt: skip
            continue
        try:
            cadences[name] = load_cadence(same[0], template_exists)
        except CadenceError as exc:
            problems.append(str(exc))
    if problems:
        raise CadenceError("\n".join(problems))
    if not cadences:
        raise CadenceError(f"{schedules_dir}: no cadence files (*.yaml)")
    return cadences


def load_cadence(
    path: Path, template_exists: Callable[[str, str, str], bool] | None = None
) -> Cadence:
    try:
        raw = yaml.safe_load(read_config_text(path))
    except yaml.YAMLError as exc:
        raise CadenceError(f"{path}: not valid YAML ({exc})") from None
    except ConfigError as exc:  # not UTF-8, or not readable: named as every config file is
        raise CadenceError(str(exc)) from None
    except FileNotFoundError as exc:  # listed, then moved or deleted before it was read
        raise CadenceError(f"{path}: cannot be read ({exc.strerror})") from None
    return parse_cadence(path.stem, raw, str(path), template_exists)


def parse_cadence(
    name: str,
    raw: Any,
    source: str,
    template_exists: Callable[[str, str, str], bool] | None = None,
) -> Cadence:
    """Validate a cadence's data; ``template_exists(channel, template, tone)`` checks names."""
    problems: list[str] = []
    if not isinstance(raw, dict):
        raise CadenceError(f"{source}: expected a mapping with 'steps'")
    unknown = sorted(set(raw) - {"description", "steps", "stop_when", "handoff"})
    if unknown:
        problems.append(f"unknown field(s) {', '.join(unknown)}")
    stop_when = _string_list(raw.get("stop_when", list(STOP_CONDITIONS)), "stop_when", problems)
    for condition in stop_when:
        if condition not in STOP_CONDITIONS:
            problems.append(f"stop_when: unknown condition {condition!r} "
                            f"(known: {', '.join(STOP_CONDITIONS)})")  # fmt: skip
    handoff = _handoff(raw.get("handoff"), problems)
    raw_steps = raw.get("steps")
    steps: list[Step] = []
    if not isinstance(raw_steps, list) or not raw_steps:
        problems.append("steps: a cadence needs a list of at least one step")
        raw_steps = []
    seen: set[str] = set()
    for index, raw_step in enumerate(raw_steps):
        label = f"step {index + 1}"
        if isinstance(raw_step, dict) and isinstance(raw_step.get("key"), str):
            label += f" ({raw_step['key']})"
        step_problems: list[str] = []
        step = _step(raw_step, step_problems, template_exists)
        if step is not None:
            if step.key in seen:
                step_problems.append(f"duplicate key {step.key!r}")
            seen.add(step.key)
            if index == 0 and step.anchor.base == "after_previous":
                step_problems.append("the first step cannot be anchored after_previous")
            steps.append(step)
        problems += [f"{label}: {problem}" for problem in step_problems]
    problems += _order_problems(steps)
    if problems:
        raise CadenceError("\n".join(f"{source}: {problem}" for problem in problems))
    return Cadence(name, str(raw.get("description", "")), tuple(steps), tuple(stop_when), handoff)


def _step(
    raw: Any, problems: list[str], template_exists: Callable[[str, str, str], bool] | None
) -> Step | None:
    if not isinstance(raw, dict):
        problems.append("expected a mapping with key, anchor, channel, template and tone")
        return None
    allowed = {"key", "anchor", "channel", "fallback", "template", "tone", "when", "expires_after"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        problems.append(f"unknown field(s) {', '.join(unknown)}")
    missing = sorted({"key", "anchor", "channel", "template", "tone"} - set(raw))
    if missing:
        problems.append(f"missing {', '.join(missing)}")
        return None
    key = str(raw["key"])
    if not _KEY.match(key):
        problems.append(f"key {key!r} must be lower-case letters, digits, - or _")
    anchor = _anchor(str(raw["anchor"]), problems)
    channel = str(raw["channel"])
    fallback = tuple(_string_list(raw.get("fallback", []), "fallback", problems))
    for name in (channel, *fallback):
        if name not in CHANNELS:
            problems.append(f"unknown channel {name!r} (known: {', '.join(CHANNELS)})")
    if channel in fallback or len(set(fallback)) != len(fallback):
        problems.append("a channel appears twice among channel and fallback")
    tone = str(raw["tone"])
    if tone not in TONES:
        problems.append(f"unknown tone {tone!r} (known: {', '.join(TONES)})")
    template = str(raw["template"])
    if template_exists is not None and tone in TONES:
        for name in (channel, *fallback):
            if name in CHANNELS and not template_exists(name, template, tone):
                problems.append(f"template {name}/{template}.{tone}.j2 does not exist")
    conditions = _conditions(raw.get("when"), problems)
    expires_after = _days(raw.get("expires_after"), "expires_after", problems)
    if anchor is None:
        return None
    return Step(key, anchor, channel, fallback, template, tone, conditions, expires_after)


def _days(raw: Any, field: str, problems: list[str]) -> int | None:
    if raw is None:
        return None
    match = re.fullmatch(r"(\d{1,4})d", str(raw).strip())
    if not match:
        problems.append(f"{field} {raw!r} must be a number of days such as 2d")
        return None
    days = int(match.group(1))
    if days == 0:
        # Expired the moment it falls due: the step could never be sent.
        problems.append(f"{field} {raw!r}: at least 1d (0d would never let the step be sent)")
        return None
    return days


def _anchor(text: str, problems: list[str]) -> Anchor | None:
    match = _ANCHOR.match(text.strip())
    if not match:
        problems.append(f"anchor {text!r} must look like due_date-7d, due_date+30d or "
                        "after_previous+7d")  # fmt: skip
        return None
    base, sign, days = match.groups()
    value = int(days) * (-1 if sign == "-" else 1)
    if base == "after_previous" and value <= 0:
        problems.append(f"anchor {text!r}: after_previous needs a positive number of days")
    return Anchor("due_date" if base == "due_date" else "after_previous", value)


def _conditions(raw: Any, problems: list[str]) -> Conditions:
    if raw is None:
        return Conditions()
    if not isinstance(raw, dict):
        problems.append("when: expected a mapping (min_balance, statuses, locales)")
        return Conditions()
    unknown = sorted(set(raw) - {"min_balance", "statuses", "locales"})
    if unknown:
        problems.append(f"when: unknown condition(s) {', '.join(unknown)}")
    minimum = None
    if "min_balance" in raw:
        try:
            minimum = Decimal(str(raw["min_balance"]))
        except InvalidOperation:
            problems.append(f"when.min_balance: {raw['min_balance']!r} is not an amount")
        else:
            # NaN cannot be compared with a balance (every plan would fail); a negative
            # or infinite amount is no minimum anyone means.
            if not minimum.is_finite() or minimum < 0:
                problems.append(
                    f"when.min_balance: {raw['min_balance']!r} is not an amount of 0 or more"
                )
                minimum = None
    statuses = _string_list(raw.get("statuses", []), "when.statuses", problems)
    unknown_statuses = [status for status in statuses if status not in _STATUSES]
    if unknown_statuses:
        problems.append(
            f"when.statuses: unknown status(es) {', '.join(map(repr, unknown_statuses))} "
            f"(one of {', '.join(sorted(_STATUSES))})"
        )
    locales = [
        _locale_condition(locale, problems)
        for locale in _string_list(raw.get("locales", []), "when.locales", problems)
    ]
    return Conditions(minimum, tuple(statuses), tuple(locales))


_STATUSES = frozenset(status.value for status in AccountStatus)


def _locale_condition(raw: str, problems: list[str]) -> str:
    """A locale as accounts store it (``es_US``, ``es``), whatever the spelling (``es-US``,
    ``es_us``): one written otherwise would match no debtor, and silently skip the step for
    all of them."""
    cleaned = raw.strip().replace("-", "_")
    try:
        parsed = Locale.parse(cleaned)
    except (ValueError, UnknownLocaleError):
        problems.append(f"when.locales: {raw!r} is not a known language or locale (es, es_US)")
        return raw
    # A language stays a language (babel reads an old code such as "iw" as "he_IL").
    return str(parsed) if "_" in cleaned else parsed.language


def _handoff(raw: Any, problems: list[str]) -> Handoff | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or raw.get("to") != "agents":
        problems.append("handoff: expected 'to: agents' and 'after_days: N'")
        return None
    days = raw.get("after_days", 0)
    if not isinstance(days, int) or days < 0:
        problems.append("handoff.after_days: a whole number of days, 0 or more")
        return None
    return Handoff("agents", days)


def _string_list(raw: Any, field: str, problems: list[str]) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        problems.append(f"{field}: expected a list of names")
        return []
    return list(raw)


def _order_problems(steps: Sequence[Step]) -> list[str]:
    """Steps must not go back in time from one to the next: a due-date anchor is after the
    soonest day of every step before it (an ``after_previous`` step's soonest day counted
    from the soonest of the step before it). A step is only offered once those before it
    have fallen due, so one placed earlier in time than them would wait for them."""
    problems = []
    latest: tuple[str, int] | None = None  # the latest soonest day so far, and whose
    soonest: int | None = None  # the soonest day of the step before, from the due date
    for index, step in enumerate(steps):
        if step.anchor.base != "due_date":
            soonest = None if soonest is None else soonest + step.anchor.days
            if soonest is not None and (latest is None or soonest > latest[1]):
                latest = (f"step {step.key}'s soonest day, due_date{soonest:+d}d", soonest)
            continue
        if latest is not None and step.anchor.days <= latest[1]:
            problems.append(
                f"step {index + 1} ({step.key}): anchor {step.anchor} is not after "
                f"{latest[0]}: anchors out of order"
            )
        soonest = step.anchor.days
        if latest is None or soonest > latest[1]:
            latest = (f"step {step.key}'s due_date{soonest:+d}d", soonest)
    return problems


# --- which step is due -------------------------------------------------------------------


@quick_init
@dataclass(frozen=True)
class AccountFacts:
    """What a cadence looks at. ``balance`` is in currency units (Decimal)."""

    due_date: date
    balance: Decimal
    status: str  # active, paid, closed
    locale: str
    timezone: str  # the zone whose midnight starts the account's days (see docs/cadences.md)
    disputed: bool = False
    promise_pending: bool = False
    cease_requested: bool = False


@quick_init
@dataclass(frozen=True)
class StepRecord:
    """A step already dealt with: sent, or recorded as skipped."""

    key: str
    at: datetime


@quick_init
@dataclass(frozen=True)
class NextAction:
    due: Step | None  # the step to send now, if any
    skipped: tuple[tuple[Step, str], ...]  # missed or inapplicable steps, with the reason
    next_at: datetime | None  # when the step after this one falls due (None: not known yet)
    stopped: str | None = None  # the stop condition that holds
    finished: bool = False  # no steps left
    handoff_at: datetime | None = None  # when the account goes to the agents
    # Steps after the due one, due too but not applicable, with the reason: recorded with
    # it once it is queued or skipped, never while it waits (a deferral, a step given
    # back), or it would stand behind them and never be offered again.
    after: tuple[tuple[Step, str], ...] = ()
    # When the next step falls due on a date of its own (a due_date anchor), superseding
    # the due one if it still waits: a deferral waits no longer than that to look again.
    superseded_at: datetime | None = None


def next_action(
    cadence: Cadence, facts: AccountFacts, history: Sequence[StepRecord], now: datetime
) -> NextAction:
    """The step due at ``now``; a function of the dates and facts alone.

    Only steps after the last one recorded are considered, so the sequence never goes
    back. When several are due at once (a late start, a daemon that was down), only the
    latest applicable one is sent; those before it are returned as skipped, those after
    it (which do not apply) as ``after``, to be recorded once it is dealt with.
    """
    stop = _stop_condition(cadence, facts)
    if stop is not None:
        return NextAction(None, (), None, stopped=stop)
    taken = {record.key: record.at for record in history}
    last_index = max((i for i, s in enumerate(cadence.steps) if s.key in taken), default=-1)
    zone = ZoneInfo(facts.timezone)
    previous_at = taken.get(cadence.steps[last_index].key) if last_index >= 0 else None
    due_now: list[Step] = []
    expired: dict[str, str] = {}
    upcoming: datetime | None = None
    for step in cadence.steps[last_index + 1 :]:
        at = _due_at(step, facts.due_date, zone, previous_at if not due_now else now)
        if at is None or at > now:
            upcoming = at
            break
        due_now.append(step)
        if step.expires_after is not None and now >= at + timedelta(days=step.expires_after):
            expired[step.key] = f"expired: not sent within {step.expires_after} days of falling due"
    if not due_now:
        if last_index == len(cadence.steps) - 1:
            return _finished(cadence, previous_at)
        return NextAction(None, (), upcoming)
    applicable = [s for s in due_now if _applies(s, facts) and s.key not in expired]
    chosen = applicable[-1] if applicable else None
    passed = tuple(
        (step, expired.get(step.key) or (
            "missed: a later step was already due" if _applies(step, facts)
            else "conditions not met"))
        for step in due_now if step is not chosen
    )  # fmt: skip
    following = _following(cadence, due_now[-1])
    next_at = None
    if following is not None:
        next_at = _due_at(following, facts.due_date, zone, now)
    elif chosen is None:
        return _finished(cadence, now, passed)
    if chosen is None:
        return NextAction(None, passed, next_at)
    # The steps after the chosen one (due, not applicable) are recorded with it.
    before = due_now.index(chosen)
    superseded_at = (
        next_at if following is not None and following.anchor.base == "due_date" else None
    )
    return NextAction(
        chosen, passed[:before], next_at, after=passed[before:], superseded_at=superseded_at
    )


def action_key(
    cadence: Cadence, facts: AccountFacts, history: Sequence[StepRecord], now: datetime
) -> Hashable:
    """Everything ``next_action`` reads, so that accounts alike in all of it can share one
    answer (the plan stage asks once per batch for each such group). The balance counts
    only as far as the stop conditions and the steps' minimum balances tell it apart."""
    balance = facts.balance
    return (
        cadence.name, facts.due_date, facts.timezone, facts.status, facts.locale,
        facts.disputed, facts.promise_pending, facts.cease_requested,
        balance <= 0, tuple(balance < limit for limit in cadence.min_balances),
        tuple(history), now,
    )  # fmt: skip


def _stop_condition(cadence: Cadence, facts: AccountFacts) -> str | None:
    holds = {
        "paid": facts.status in ("paid", "closed") or facts.balance <= 0,
        "disputed": facts.disputed,
        "promise_pending": facts.promise_pending,
        "cease_requested": facts.cease_requested,
    }
    return next((c for c in cadence.stop_when if holds[c]), None)


def _due_at(
    step: Step, due_date: date, zone: ZoneInfo, previous_at: datetime | None
) -> datetime | None:
    if step.anchor.base == "due_date":
        day = due_date + timedelta(days=step.anchor.days)
        # The start of that day where the debtor is; compliance then finds the hour.
        return datetime.combine(day, time(0), tzinfo=zone)
    if previous_at is None:
        return None
    return previous_at + timedelta(days=step.anchor.days)


def _applies(step: Step, facts: AccountFacts) -> bool:
    conditions = step.conditions
    if conditions.min_balance is not None and facts.balance < conditions.min_balance:
        return False
    if conditions.statuses and facts.status not in conditions.statuses:
        return False
    if conditions.locales:
        language = facts.locale.split("_")[0]
        if facts.locale not in conditions.locales and language not in conditions.locales:
            return False
    return True


def _following(cadence: Cadence, step: Step) -> Step | None:
    index = cadence.steps.index(step)
    return cadence.steps[index + 1] if index + 1 < len(cadence.steps) else None


def _finished(
    cadence: Cadence, last_at: datetime | None, skipped: tuple[tuple[Step, str], ...] = ()
) -> NextAction:
    handoff_at = None
    if cadence.handoff is not None and last_at is not None:
        handoff_at = last_at + timedelta(days=cadence.handoff.after_days)
    return NextAction(None, skipped, None, finished=True, handoff_at=handoff_at)
