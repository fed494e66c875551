"""Cadences: loading and validating schedules/*.yaml, and which step is due when.

Times in the expectations are written out by hand: a ``due_date`` step falls due at the
start of its day in the account's time zone (America/New_York here, which leaves summer
time on 2026-11-01, so the offset is -04:00 before that and -05:00 after).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from outreach.cadence import (
    STOP_CONDITIONS,
    AccountFacts,
    Anchor,
    Cadence,
    Conditions,
    Handoff,
    NextAction,
    Step,
    StepRecord,
    action_key,
    load_cadence,
    load_cadences,
    next_action,
    parse_cadence,
)
from outreach.errors import CadenceError
from outreach.rendering.environment import TemplateKey, read_template_files
from tests.conftest import REPO

NEW_YORK = ZoneInfo("America/New_York")
DUE = date(2026, 10, 31)


@cache
def _template_paths() -> frozenset[str]:
    return frozenset(read_template_files(REPO / "templates"))


def template_exists(channel: str, name: str, tone: str) -> bool:
    return TemplateKey(channel, name, tone).path in _template_paths()


@cache
def shipped() -> dict[str, Cadence]:
    return load_cadences(REPO / "schedules", template_exists)


def standard() -> Cadence:
    return shipped()["standard"]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def facts(**overrides: Any) -> AccountFacts:
    values: dict[str, Any] = {
        "due_date": DUE,
        "balance": Decimal("500.00"),
        "status": "active",
        "locale": "en_US",
        "timezone": "America/New_York",
    }
    values.update(overrides)
    return AccountFacts(**values)


def keys(steps: tuple[tuple[Step, str], ...]) -> list[tuple[str, str]]:
    return [(step.key, reason) for step, reason in steps]


def records_until(
    cadence: Cadence, last_key: str, at: Callable[[Step], datetime]
) -> list[StepRecord]:
    """A history in which every step up to ``last_key`` was sent at ``at(step)``."""
    history = []
    for step in cadence.steps:
        history.append(StepRecord(step.key, at(step)))
        if step.key == last_key:
            return history
    raise AssertionError(f"no step {last_key}")


def at_due_time(step: Step) -> datetime:
    """When a due_date step fell due on the standard cadence for DUE, plus ten hours."""
    assert step.anchor.base == "due_date"
    return datetime.combine(DUE + timedelta(days=step.anchor.days), time(10), tzinfo=NEW_YORK)


# --- loading the shipped cadences --------------------------------------------------------


def test_shipped_cadences_load_with_every_template_present() -> None:
    cadences = shipped()
    assert set(cadences) == {"standard", "pre-due"}
    main = cadences["standard"]
    assert [s.key for s in main.steps] == [
        "reminder-7d",
        "reminder-1d",
        "due-today",
        "overdue-3d",
        "overdue-10d",
        "overdue-21d",
        "overdue-30d",
        "final-notice",
        "final-call",
    ]
    assert main.stop_when == STOP_CONDITIONS
    assert main.handoff == Handoff("agents", 7)
    assert main.steps[0] == Step(
        "reminder-7d", Anchor("due_date", -7), "email", ("sms",), "reminder", "friendly",
        expires_after=6,
    )  # fmt: skip
    assert main.step("overdue-21d").channels == ("voice", "sms", "email")
    assert main.step("overdue-21d").conditions == Conditions(min_balance=Decimal("50.00"))
    assert main.step("final-call").anchor == Anchor("after_previous", 15)
    assert main.step("final-call").conditions.min_balance == Decimal("100.00")
    # The tone escalates and never softens again.
    order = ["friendly", "firm", "final"]
    tones = [order.index(s.tone) for s in main.steps]
    assert tones == sorted(tones)

    pre_due = cadences["pre-due"]
    assert [str(s.anchor) for s in pre_due.steps] == ["due_date-7d", "due_date-1d", "due_date+0d"]
    assert pre_due.handoff is None


def test_loading_reports_every_file_with_a_missing_template() -> None:
    with pytest.raises(CadenceError) as caught:
        load_cadences(REPO / "schedules", lambda channel, name, tone: False)
    message = str(caught.value)
    assert "pre-due.yaml: step 1 (reminder-7d): template email/reminder.friendly.j2" in message
    assert "standard.yaml: step 9 (final-call): template voice/final-notice.final.j2" in message


def test_loading_names_the_broken_file(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(
        "steps:\n  - {key: a, anchor: due_date+0d, channel: sms, template: due, tone: friendly}\n",
        encoding="utf-8",
    )
    (tmp_path / "bad.yaml").write_text("steps: [unclosed\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a cadence", encoding="utf-8")
    with pytest.raises(CadenceError, match=r"bad\.yaml: not valid YAML") as caught:
        load_cadences(tmp_path, template_exists)
    assert "good.yaml" not in str(caught.value)
    (tmp_path / "bad.yaml").unlink()
    assert set(load_cadences(tmp_path, template_exists)) == {"good"}


def test_a_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    (tmp_path / "latin.yaml").write_bytes(
        b'description: "Rappel \xe9ch\xe9ance"\nsteps:\n'
        b"  - {key: a, anchor: due_date+0d, channel: sms, template: due, tone: friendly}\n"
    )
    with pytest.raises(CadenceError, match=r"latin\.yaml: not UTF-8 \(line 1\)"):
        load_cadences(tmp_path, template_exists)


def test_a_missing_cadence_file_is_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "gone.yaml"
    with pytest.raises(CadenceError) as caught:
        load_cadence(path, template_exists)
    assert str(caught.value) == f"{path}: cannot be read (No such file or directory)"


def test_an_unreadable_cadence_file_is_one_line_naming_it(tmp_path: Path) -> None:
    (tmp_path / "folder.yaml").mkdir()  # read as a file, it cannot be (even by root)
    with pytest.raises(CadenceError) as caught:
        load_cadences(tmp_path, template_exists)
    assert str(caught.value) == f"{tmp_path / 'folder.yaml'}: cannot be read (Is a directory)"


def test_two_files_for_one_cadence_are_refused_naming_both(tmp_path: Path) -> None:
    step = "  - {key: a, anchor: due_date+0d, channel: sms, template: due, tone: friendly}\n"
    (tmp_path / "standard.yaml").write_text(f"steps:\n{step}", encoding="utf-8")
    (tmp_path / "standard.yml").write_text(f"steps:\n{step}", encoding="utf-8")
    (tmp_path / "other.yaml").write_text(f"steps:\n{step}", encoding="utf-8")
    with pytest.raises(CadenceError) as caught:
        load_cadences(tmp_path, template_exists)
    assert str(caught.value) == (
        f"{tmp_path / 'standard.yaml'} and {tmp_path / 'standard.yml'}: two files for the "
        "cadence 'standard': keep one"
    )


# --- validation --------------------------------------------------------------------------


def _raw_step(key: str, anchor: str, **fields: Any) -> dict[str, Any]:
    step: dict[str, Any] = {"key": key, "anchor": anchor, "channel": "sms"}
    step.update({"template": "overdue", "tone": "firm"}, **fields)
    return step


VALID: dict[str, Any] = {
    "description": "two steps",
    "stop_when": ["paid", "disputed"],
    "steps": [
        _raw_step("reminder-1d", "due_date-1d", template="reminder", tone="friendly"),
        _raw_step("overdue-10d", "due_date+10d", fallback=["email"]),
    ],
}


def test_a_valid_cadence_parses_into_plain_values() -> None:
    cadence = parse_cadence("x", VALID, "x.yaml", template_exists)
    assert cadence == Cadence(
        "x",
        "two steps",
        (
            Step("reminder-1d", Anchor("due_date", -1), "sms", (), "reminder", "friendly"),
            Step("overdue-10d", Anchor("due_date", 10), "sms", ("email",), "overdue", "firm"),
        ),
        ("paid", "disputed"),
    )


def _set_step(index: int, **fields: Any) -> Callable[[dict[str, Any]], None]:
    def change(raw: dict[str, Any]) -> None:
        raw["steps"][index].update(fields)

    return change


def _set(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda raw: raw.update(fields)


MISTAKES: list[tuple[str, Callable[[dict[str, Any]], None], str | None, str]] = [
    ("unknown channel", _set_step(1, channel="fax"), "step 2 (overdue-10d)",
     "unknown channel 'fax' (known: sms, email, voice)"),
    ("unknown fallback channel", _set_step(1, fallback=["email", "pigeon"]),
     "step 2 (overdue-10d)", "unknown channel 'pigeon'"),
    ("missing template", _set_step(1, template="overdue-typo"), "step 2 (overdue-10d)",
     "template sms/overdue-typo.firm.j2 does not exist"),
    ("missing template for a fallback", _set_step(1, tone="friendly", fallback=["voice"]),
     "step 2 (overdue-10d)", "template voice/overdue.friendly.j2 does not exist"),
    ("duplicate key", _set_step(1, key="reminder-1d"), "step 2 (reminder-1d)",
     "duplicate key 'reminder-1d'"),
    ("after_previous first", _set_step(0, anchor="after_previous+3d"), "step 1 (reminder-1d)",
     "the first step cannot be anchored after_previous"),
    ("anchors out of order", _set_step(1, anchor="due_date-3d"), "step 2 (overdue-10d)",
     "anchors out of order"),
    ("anchors on the same day", _set_step(1, anchor="due_date-1d"), "step 2 (overdue-10d)",
     "anchors out of order"),
    ("bad anchor syntax", _set_step(1, anchor="due+10"), "step 2 (overdue-10d)",
     "anchor 'due+10' must look like due_date-7d"),
    ("anchor in weeks", _set_step(1, anchor="due_date+2w"), "step 2 (overdue-10d)",
     "anchor 'due_date+2w' must look like"),
    ("after_previous without days", _set_step(1, anchor="after_previous+0d"),
     "step 2 (overdue-10d)", "after_previous needs a positive number of days"),
    ("unknown tone", _set_step(1, tone="angry"), "step 2 (overdue-10d)",
     "unknown tone 'angry' (known: friendly, firm, final)"),
    ("unknown step field", _set_step(1, colour="red"), "step 2 (overdue-10d)",
     "unknown field(s) colour"),
    ("unknown when condition", _set_step(1, when={"max_balance": 5}), "step 2 (overdue-10d)",
     "when: unknown condition(s) max_balance"),
    ("unknown locale", _set_step(1, when={"locales": ["xx-Nowhere"]}), "step 2 (overdue-10d)",
     "when.locales: 'xx-Nowhere' is not a known language or locale (es, es_US)"),
    ("unknown status", _set_step(1, when={"statuses": ["overdue"]}), "step 2 (overdue-10d)",
     "when.statuses: unknown status(es) 'overdue' (one of active, closed, paid)"),
    *((f"min_balance {amount!r}", _set_step(1, when={"min_balance": amount}),
       "step 2 (overdue-10d)", f"when.min_balance: {amount!r} is not an amount of 0 or more")
      for amount in ("NaN", "sNaN", float("nan"), "Infinity", "-Inf", "-5.00")),
    ("expires_after 0d", _set_step(1, expires_after="0d"), "step 2 (overdue-10d)",
     "expires_after '0d': at least 1d"),
    ("a due_date step before an after_previous step's soonest day",
     _set(steps=[_raw_step("a", "due_date+10d"), _raw_step("b", "after_previous+30d"),
                 _raw_step("c", "due_date+20d")]),
     "step 3 (c)", "anchor due_date+20d is not after step b's soonest day, due_date+40d: "
     "anchors out of order"),
    ("unknown cadence field", _set(colour="red"), None, "unknown field(s) colour"),
    ("unknown stop condition", _set(stop_when=["paid", "bankrupt"]), None,
     "stop_when: unknown condition 'bankrupt'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mistake", "step_label", "reason"),
    [pytest.param(change, label, reason, id=name) for name, change, label, reason in MISTAKES],
)
def test_each_mistake_names_the_file_the_step_and_the_reason(
    mistake: Callable[[dict[str, Any]], None], step_label: str | None, reason: str
) -> None:
    raw = copy.deepcopy(VALID)
    mistake(raw)
    with pytest.raises(CadenceError) as caught:
        parse_cadence("x", raw, "x.yaml", template_exists)
    lines = str(caught.value).splitlines()
    matching = [line for line in lines if reason in line]
    assert matching, f"{reason!r} not in {lines}"
    prefix = f"x.yaml: {step_label}: " if step_label else "x.yaml: "
    assert matching[0].startswith(prefix), f"{matching[0]!r} does not start with {prefix!r}"
    assert all(line.startswith("x.yaml: ") for line in lines)


def test_several_mistakes_are_reported_at_once() -> None:
    raw = copy.deepcopy(VALID)
    raw["stop_when"] = ["paid", "bankrupt"]
    raw["steps"][0]["channel"] = "fax"
    raw["steps"][1]["tone"] = "angry"
    raw["steps"].append(_raw_step("overdue-10d", "due_date+20d", template="nope"))
    with pytest.raises(CadenceError) as caught:
        parse_cadence("x", raw, "x.yaml", template_exists)
    lines = str(caught.value).splitlines()
    assert lines == [
        "x.yaml: stop_when: unknown condition 'bankrupt' "
        "(known: paid, disputed, promise_pending, cease_requested)",
        "x.yaml: step 1 (reminder-1d): unknown channel 'fax' (known: sms, email, voice)",
        "x.yaml: step 2 (overdue-10d): unknown tone 'angry' (known: friendly, firm, final)",
        "x.yaml: step 3 (overdue-10d): template sms/nope.firm.j2 does not exist",
        "x.yaml: step 3 (overdue-10d): duplicate key 'overdue-10d'",
    ]


def test_a_cadence_without_steps_is_refused() -> None:
    with pytest.raises(CadenceError, match=r"^x\.yaml: steps: a cadence needs"):
        parse_cadence("x", {"steps": []}, "x.yaml", template_exists)
    with pytest.raises(CadenceError, match=r"^x\.yaml: expected a mapping"):
        parse_cadence("x", ["not", "a", "mapping"], "x.yaml", template_exists)


# --- which step is due -------------------------------------------------------------------


def test_before_the_first_step_nothing_is_due() -> None:
    action = next_action(standard(), facts(), [], utc(2026, 10, 20, 15, 0))
    first_due = datetime(2026, 10, 24, 0, 0, tzinfo=NEW_YORK)
    assert first_due.isoformat() == "2026-10-24T00:00:00-04:00"
    assert action == NextAction(due=None, skipped=(), next_at=first_due)
    assert action.next_at == utc(2026, 10, 24, 4, 0)


def test_the_first_step_falls_due_at_the_start_of_the_local_day() -> None:
    start = utc(2026, 10, 24, 4, 0)  # midnight in New York
    just_before = next_action(standard(), facts(), [], start - timedelta(microseconds=1))
    assert just_before.due is None
    action = next_action(standard(), facts(), [], start)
    assert action.due is not None and action.due.key == "reminder-7d"
    assert action.skipped == ()
    assert action.next_at == datetime(2026, 10, 30, tzinfo=NEW_YORK)
    # The same instant is still the 23rd in Los Angeles: nothing due there yet.
    west = next_action(standard(), facts(timezone="America/Los_Angeles"), [], start)
    assert west.due is None
    assert west.next_at == utc(2026, 10, 24, 7, 0)


def test_steps_after_the_clock_change_use_the_winter_offset() -> None:
    history = records_until(standard(), "due-today", at_due_time)
    action = next_action(standard(), facts(), history, utc(2026, 11, 1, 12, 0))
    assert action.due is None
    assert action.next_at is not None
    assert action.next_at.isoformat() == "2026-11-03T00:00:00-05:00"


def test_a_late_start_sends_only_the_latest_due_step() -> None:
    action = next_action(standard(), facts(), [], utc(2026, 11, 12, 15, 0))
    assert action.due is not None and action.due.key == "overdue-10d"
    missed = "missed: a later step was already due"
    # Reminders that would say "due soon" or "due today" expire rather than go out late.
    assert keys(action.skipped) == [
        ("reminder-7d", "expired: not sent within 6 days of falling due"),
        ("reminder-1d", "expired: not sent within 1 days of falling due"),
        ("due-today", "expired: not sent within 2 days of falling due"),
        ("overdue-3d", missed),
    ]
    assert action.next_at == datetime(2026, 11, 21, tzinfo=NEW_YORK)
    assert not action.finished


def test_only_steps_after_the_last_recorded_one_are_considered() -> None:
    history = records_until(standard(), "overdue-3d", at_due_time)
    action = next_action(standard(), facts(), history, utc(2026, 11, 12, 15, 0))
    assert action.due is not None and action.due.key == "overdue-10d"
    assert action.skipped == ()
    # A history that is out of order (a step recorded after a later one) does not bring
    # the earlier steps back.
    action = next_action(
        standard(), facts(), [StepRecord("overdue-3d", utc(2026, 11, 3, 15, 0))], utc(2026, 11, 4)
    )
    assert action.due is None
    assert action.next_at == datetime(2026, 11, 10, tzinfo=NEW_YORK)


def test_after_previous_counts_from_when_the_previous_step_was_recorded() -> None:
    history = records_until(standard(), "overdue-30d", at_due_time)
    # final-notice (due_date+45d) was sent a day late, at 09:30 UTC on 2026-12-16.
    sent = utc(2026, 12, 16, 9, 30)
    history.append(StepRecord("final-notice", sent))
    waiting = next_action(standard(), facts(), history, utc(2026, 12, 31, 9, 29))
    assert waiting.due is None
    assert waiting.next_at == utc(2026, 12, 31, 9, 30)
    due = next_action(standard(), facts(), history, utc(2026, 12, 31, 9, 30))
    assert due.due is not None and due.due.key == "final-call"
    assert due.next_at is None and not due.finished


def test_after_previous_in_a_late_start_counts_from_now() -> None:
    history = records_until(standard(), "overdue-30d", at_due_time)
    now = utc(2027, 1, 20, 15, 0)  # 81 days after the due date: final-notice is overdue
    action = next_action(standard(), facts(), history, now)
    assert action.due is not None and action.due.key == "final-notice"
    assert action.skipped == ()
    assert action.next_at == now + timedelta(days=15)


def test_a_step_whose_conditions_fail_is_skipped_for_the_earlier_one() -> None:
    # overdue-21d needs a balance of 50.00; 40.00 falls short.
    action = next_action(standard(), facts(balance=Decimal("40.00")), [], utc(2026, 11, 22, 15))
    assert action.due is not None and action.due.key == "overdue-10d"
    skipped = dict(keys(action.skipped))
    assert skipped["overdue-3d"] == "missed: a later step was already due"
    # overdue-21d, after the chosen step, is recorded with it once it is dealt with: now,
    # it would stand after overdue-10d, which, deferred or given back, would be lost.
    assert list(skipped) == ["reminder-7d", "reminder-1d", "due-today", "overdue-3d"]
    assert keys(action.after) == [("overdue-21d", "conditions not met")]
    assert action.next_at == datetime(2026, 11, 30, tzinfo=NEW_YORK)
    assert action.superseded_at == datetime(2026, 11, 30, tzinfo=NEW_YORK)  # due_date+30d
    # With enough balance, overdue-21d itself is sent.
    rich = next_action(standard(), facts(balance=Decimal("50.00")), [], utc(2026, 11, 22, 15))
    assert rich.due is not None and rich.due.key == "overdue-21d"


def test_a_step_alone_whose_conditions_fail_is_skipped_without_sending() -> None:
    history = records_until(standard(), "overdue-10d", at_due_time)
    action = next_action(standard(), facts(balance=Decimal("40")), history, utc(2026, 11, 22))
    assert action.due is None
    assert keys(action.skipped) == [("overdue-21d", "conditions not met")]
    assert action.next_at == datetime(2026, 11, 30, tzinfo=NEW_YORK)
    assert not action.finished


def test_a_due_date_step_after_an_after_previous_step_s_soonest_day_is_accepted() -> None:
    raw = {"steps": [_raw_step("a", "due_date+10d"), _raw_step("b", "after_previous+30d"),
                     _raw_step("c", "due_date+41d")]}  # fmt: skip
    assert [s.key for s in parse_cadence("x", raw, "x.yaml", template_exists).steps] == [
        "a",
        "b",
        "c",
    ]


def _drive(cadence: Cadence, account: AccountFacts, start: datetime) -> list[tuple[str, Any]]:
    """Look at the account as the planner does: each step due queued, with the steps
    after it that do not apply; the next look when the next step falls due."""
    history: list[StepRecord] = []
    now, log = start, []
    for _ in range(6):
        action = next_action(cadence, account, history, now)
        history += [StepRecord(step.key, now) for step, _ in action.skipped]
        if action.due is not None:
            history.append(StepRecord(action.due.key, now))
            history += [StepRecord(step.key, now) for step, _ in action.after]
            log.append((action.due.key, now))
        if action.finished:
            log.append(("handoff", action.handoff_at))
            break
        now = action.next_at or now + timedelta(days=1)
    return log


def test_a_step_after_one_that_does_not_apply_counts_from_when_that_one_was_skipped() -> None:
    raw = {"handoff": {"to": "agents", "after_days": 7},
           "steps": [_raw_step("a", "due_date+0d"),
                     _raw_step("b", "due_date+5d", when={"min_balance": "1000"}),
                     _raw_step("c", "after_previous+7d")]}  # fmt: skip
    cadence = parse_cadence("x", raw, "x.yaml", template_exists)
    start = datetime.combine(DUE + timedelta(days=6), time(10), tzinfo=NEW_YORK)
    # a is sent on day 6, b skipped with it (it does not apply), c seven days after.
    assert _drive(cadence, facts(balance=Decimal("500")), start) == [
        ("a", start), ("c", start + timedelta(days=7)), ("handoff", start + timedelta(days=14)),
    ]  # fmt: skip


def test_the_hand_off_counts_from_the_last_step_when_those_after_it_do_not_apply() -> None:
    raw = {"handoff": {"to": "agents", "after_days": 7},
           "steps": [_raw_step("a", "due_date+0d"),
                     _raw_step("b", "due_date+5d", when={"min_balance": "1000"})]}  # fmt: skip
    cadence = parse_cadence("x", raw, "x.yaml", template_exists)
    start = datetime.combine(DUE + timedelta(days=6), time(10), tzinfo=NEW_YORK)
    assert _drive(cadence, facts(balance=Decimal("500")), start) == [
        ("a", start), ("handoff", start + timedelta(days=7)),
    ]  # fmt: skip


@pytest.mark.parametrize("written", ["es-US", "es_us", " es_US", "ES-us"])
def test_a_locale_condition_is_read_as_the_import_spells_locales(written: str) -> None:
    language = {"steps": [_raw_step("a", "due_date+10d", when={"locales": ["iw", "ES"]})]}
    assert parse_cadence("x", language, "x.yaml", template_exists).steps[0].conditions.locales == (
        "he",
        "es",
    )
    raw = {"steps": [_raw_step("a", "due_date+10d", when={"locales": [written]})]}
    cadence = parse_cadence("x", raw, "x.yaml", template_exists)
    assert cadence.steps[0].conditions.locales == ("es_US",)
    now = utc(2026, 11, 12, 15)
    action = next_action(cadence, facts(locale="es_US"), [], now)
    assert action.due is not None and action.due.key == "a"


def test_status_and_locale_conditions() -> None:
    raw = copy.deepcopy(VALID)
    raw["steps"][1]["when"] = {"statuses": ["active"], "locales": ["es"]}
    cadence = parse_cadence("x", raw, "x.yaml", template_exists)
    now = utc(2026, 11, 12, 15)
    spanish = next_action(cadence, facts(locale="es_US"), [], now)
    assert spanish.due is not None and spanish.due.key == "overdue-10d"
    english = next_action(cadence, facts(), [], now)
    assert english.due is not None and english.due.key == "reminder-1d"
    assert keys(english.skipped) == []
    assert keys(english.after) == [("overdue-10d", "conditions not met")]
    on_hold = next_action(cadence, facts(locale="es_MX", status="hold"), [], now)
    assert on_hold.due is not None and on_hold.due.key == "reminder-1d"


def test_finishing_hands_the_account_to_the_agents() -> None:
    history = records_until(standard(), "final-notice", at_due_time)
    history.append(StepRecord("final-call", utc(2026, 12, 31, 14, 0)))
    action = next_action(standard(), facts(), history, utc(2027, 1, 2, 12, 0))
    assert action == NextAction(
        due=None, skipped=(), next_at=None, finished=True, handoff_at=utc(2027, 1, 7, 14, 0)
    )


def test_a_last_step_skipped_for_its_conditions_finishes_at_once() -> None:
    history = records_until(standard(), "final-notice", at_due_time)
    now = utc(2027, 1, 5, 12, 0)  # final-call (balance >= 100) is due; balance is 60
    action = next_action(standard(), facts(balance=Decimal("60")), history, now)
    assert action.due is None
    assert keys(action.skipped) == [("final-call", "conditions not met")]
    assert action.finished
    assert action.handoff_at == now + timedelta(days=7)


def test_a_cadence_without_handoff_finishes_without_one() -> None:
    pre_due = shipped()["pre-due"]
    history = [StepRecord(s.key, utc(2026, 10, 31, 15)) for s in pre_due.steps]
    action = next_action(pre_due, facts(), history, utc(2027, 3, 1))
    assert action.finished
    assert action.handoff_at is None
    assert action.due is None


STOPS: list[tuple[str, dict[str, Any], str]] = [
    ("paid status", {"status": "paid"}, "paid"),
    ("closed status", {"status": "closed"}, "paid"),
    ("zero balance", {"balance": Decimal("0.00")}, "paid"),
    ("credit balance", {"balance": Decimal("-5")}, "paid"),
    ("disputed", {"disputed": True}, "disputed"),
    ("promise pending", {"promise_pending": True}, "promise_pending"),
    ("cease requested", {"cease_requested": True}, "cease_requested"),
]


@pytest.mark.parametrize(
    ("overrides", "stopped"),
    [pytest.param(overrides, stopped, id=name) for name, overrides, stopped in STOPS],
)
def test_each_stop_condition_stops_the_cadence(overrides: dict[str, Any], stopped: str) -> None:
    now = utc(2026, 11, 12, 15, 0)
    assert next_action(standard(), facts(), [], now).due is not None  # without it, a step is due
    action = next_action(standard(), facts(**overrides), [], now)
    assert action == NextAction(due=None, skipped=(), next_at=None, stopped=stopped)


def test_a_stop_condition_the_cadence_does_not_name_does_not_stop_it() -> None:
    cadence = parse_cadence("x", VALID, "x.yaml", template_exists)  # stop_when: paid, disputed
    now = utc(2026, 11, 12, 15, 0)
    action = next_action(cadence, facts(promise_pending=True, cease_requested=True), [], now)
    assert action.stopped is None
    assert action.due is not None and action.due.key == "overdue-10d"
    assert next_action(cadence, facts(disputed=True), [], now).stopped == "disputed"


# --- properties --------------------------------------------------------------------------

ZONES = st.sampled_from(
    ["America/New_York", "America/Los_Angeles", "Europe/Madrid", "Asia/Tokyo", "UTC",
     "Australia/Lord_Howe", "America/Santiago"]
)  # fmt: skip
DUE_DATES = st.dates(date(2000, 1, 1), date(2036, 12, 31))
BALANCES = st.sampled_from([Decimal("20.00"), Decimal("75.00"), Decimal("100.00"), Decimal("900")])
LOCALES = st.sampled_from(["en_US", "es_US", "es_MX"])


@cache
def mixed() -> Cadence:
    """A cadence that mixes after_previous steps and conditions into the due_date ones."""
    raw = {
        "steps": [
            _raw_step("a", "due_date-3d", template="reminder", tone="friendly"),
            _raw_step("b", "after_previous+2d", template="reminder", tone="friendly",
                      when={"min_balance": "100"}),
            _raw_step("c", "due_date+5d", template="overdue", tone="friendly"),
            _raw_step("d", "after_previous+1d", when={"locales": ["es"]}),
            _raw_step("e", "due_date+30d", when={"min_balance": 50}),
            _raw_step("f", "after_previous+10d", template="final-notice", tone="final"),
        ],
    }  # fmt: skip
    return parse_cadence("mixed", raw, "mixed.yaml", template_exists)


CADENCES = st.sampled_from(["standard", "pre-due", "mixed"]).map(
    lambda name: mixed() if name == "mixed" else shipped()[name]
)


def local(day: date, hours: int, zone: ZoneInfo) -> datetime:
    """``hours`` after the start of ``day`` on the wall clock of ``zone``."""
    return datetime.combine(day, time(0), tzinfo=zone) + timedelta(hours=hours)


@st.composite
def histories(draw: st.DrawFn, cadence: Cadence, due: date, zone: ZoneInfo) -> list[StepRecord]:
    """A prefix of the cadence's steps, recorded at increasing local times."""
    count = draw(st.integers(0, len(cadence.steps)))
    offsets = sorted(
        draw(st.lists(st.integers(-10 * 24, 150 * 24), min_size=count, max_size=count))
    )
    return [
        StepRecord(step.key, local(due, hours, zone))
        for step, hours in zip(cadence.steps, offsets, strict=False)
    ]


def _shift(action: NextAction, days: int) -> NextAction:
    def move(moment: datetime | None) -> datetime | None:
        return None if moment is None else moment + timedelta(days=days)

    return NextAction(
        action.due,
        action.skipped,
        move(action.next_at),
        action.stopped,
        action.finished,
        move(action.handoff_at),
        action.after,
        move(action.superseded_at),
    )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    cadence=CADENCES,
    due=DUE_DATES,
    zone_name=ZONES,
    balance=BALANCES,
    locale=LOCALES,
    now_hours=st.integers(-20 * 24, 200 * 24),
    shift=st.integers(-3000, 3000),
)
def test_the_step_due_is_a_function_of_the_dates_alone(
    data: st.DataObject,
    cadence: Cadence,
    due: date,
    zone_name: str,
    balance: Decimal,
    locale: str,
    now_hours: int,
    shift: int,
) -> None:
    """Moving the due date, ``now`` and the history by the same number of whole days (on
    the account's wall clock) moves the answer by those days and changes nothing else."""
    zone = ZoneInfo(zone_name)
    history = data.draw(histories(cadence, due, zone))
    account = facts(due_date=due, balance=balance, locale=locale, timezone=zone_name)
    now = local(due, now_hours, zone)
    action = next_action(cadence, account, history, now)
    assert next_action(cadence, account, list(history), now) == action

    moved = [StepRecord(r.key, r.at + timedelta(days=shift)) for r in history]
    moved_account = facts(
        due_date=due + timedelta(days=shift), balance=balance, locale=locale, timezone=zone_name
    )
    moved_action = next_action(cadence, moved_account, moved, now + timedelta(days=shift))
    assert (moved_action.due and moved_action.due.key) == (action.due and action.due.key)
    assert moved_action == _shift(action, shift)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    cadence=CADENCES,
    due=DUE_DATES,
    zone_name=ZONES,
    balance=BALANCES,
    locale=LOCALES,
    start_days=st.integers(-20, 10),
    start_hour=st.integers(0, 23),
    walk=st.lists(st.integers(0, 200 * 24), max_size=60).map(sorted),
)
def test_the_sequence_never_goes_back(
    cadence: Cadence,
    due: date,
    zone_name: str,
    balance: Decimal,
    locale: str,
    start_days: int,
    start_hour: int,
    walk: list[int],
) -> None:
    """Walk ``now`` forward over 200 days, recording each answer as the planner does."""
    zone = ZoneInfo(zone_name)
    account = facts(due_date=due, balance=balance, locale=locale, timezone=zone_name)
    start = local(due + timedelta(days=start_days), start_hour, zone)
    index = {step.key: i for i, step in enumerate(cadence.steps)}
    history: list[StepRecord] = []
    finished = False
    for hours in [0, *walk, 200 * 24]:
        now = start + timedelta(hours=hours)
        action = next_action(cadence, account, history, now)
        assert action.stopped is None
        if finished:
            assert action.finished and action.due is None and action.skipped == ()
        finished = action.finished
        dealt_with = [step for step, _ in action.skipped]
        if action.due is not None:  # queued, with the steps after it that do not apply
            dealt_with.append(action.due)
            assert action.due.key not in [step.key for step in dealt_with[:-1]]
            dealt_with += [step for step, _ in action.after]
        else:
            assert action.after == ()
        last = max((index[r.key] for r in history), default=-1)
        for step in sorted(dealt_with, key=lambda s: index[s.key]):
            assert index[step.key] > last, f"{step.key} comes before {history[-1].key}"
            history.append(StepRecord(step.key, now))
    recorded = [index[r.key] for r in history]
    assert recorded == sorted(set(recorded)), "a step recorded twice or out of order"
    assert recorded == list(range(len(recorded))), "a step passed over without a record"
    times = [r.at for r in history]
    assert times == sorted(times)


@st.composite
def stopped_accounts(draw: st.DrawFn, zone_name: str, due: date) -> tuple[AccountFacts, set[str]]:
    """An account for which at least one stop condition holds, and the ones that do."""
    reason = draw(
        st.sampled_from(
            ["paid", "closed", "zero", "credit", "disputed", "promise_pending", "cease_requested"]
        )
    )
    status = {"paid": "paid", "closed": "closed"}.get(reason) or draw(
        st.sampled_from(["active", "paid", "closed"])
    )
    balance = {"zero": Decimal(0), "credit": Decimal("-0.01")}.get(reason)
    if balance is None:
        balance = draw(BALANCES)
    account = facts(
        due_date=due,
        balance=balance,
        status=status,
        timezone=zone_name,
        disputed=reason == "disputed" or draw(st.booleans()),
        promise_pending=reason == "promise_pending" or draw(st.booleans()),
        cease_requested=reason == "cease_requested" or draw(st.booleans()),
    )
    holding = {
        name
        for name, holds in (
            ("paid", account.status in ("paid", "closed") or account.balance <= 0),
            ("disputed", account.disputed),
            ("promise_pending", account.promise_pending),
            ("cease_requested", account.cease_requested),
        )
        if holds
    }
    return account, holding


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    cadence=CADENCES,
    due=DUE_DATES,
    zone_name=ZONES,
    now_hours=st.integers(-30 * 24, 400 * 24),
)
def test_any_stop_condition_stops_whatever_the_dates_and_history(
    data: st.DataObject, cadence: Cadence, due: date, zone_name: str, now_hours: int
) -> None:
    zone = ZoneInfo(zone_name)
    account, holding = data.draw(stopped_accounts(zone_name, due))
    history = data.draw(histories(cadence, due, zone))
    action = next_action(cadence, account, history, local(due, now_hours, zone))
    assert action.due is None
    assert action.skipped == ()
    assert action.stopped in holding
    assert not action.finished and action.next_at is None


ALIKE_BALANCES = st.sampled_from(
    [Decimal("-5"), Decimal(0), Decimal("0.01"), Decimal("49.99"), Decimal(50), Decimal("75"),
     Decimal("99.99"), Decimal(100), Decimal("900"), Decimal("123456.78")]
)  # fmt: skip


@st.composite
def alike_accounts(draw: st.DrawFn, due: date, zone_name: str) -> AccountFacts:
    """Accounts that often agree on all but their amounts, so that keys often match."""
    return facts(
        due_date=due + timedelta(days=draw(st.sampled_from([0, 0, 0, 3]))),
        balance=draw(ALIKE_BALANCES),
        status=draw(st.sampled_from(["active", "active", "paid"])),
        locale=draw(LOCALES),
        timezone=zone_name,
        disputed=draw(st.booleans()) and draw(st.booleans()),
        promise_pending=draw(st.booleans()) and draw(st.booleans()),
        cease_requested=draw(st.booleans()) and draw(st.booleans()),
    )


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    cadence=CADENCES,
    due=DUE_DATES,
    zone_name=ZONES,
    now_hours=st.integers(-20 * 24, 200 * 24),
)
def test_accounts_with_the_same_action_key_get_the_same_action(
    data: st.DataObject, cadence: Cadence, due: date, zone_name: str, now_hours: int
) -> None:
    """The plan stage gives accounts with equal keys one answer: the key must hold all
    that ``next_action`` reads."""
    zone = ZoneInfo(zone_name)
    history = data.draw(histories(cadence, due, zone))
    first, second = (
        data.draw(alike_accounts(due, zone_name)),
        data.draw(alike_accounts(due, zone_name)),
    )
    now = local(due, now_hours, zone)
    if action_key(cadence, first, history, now) == action_key(cadence, second, history, now):
        assert next_action(cadence, first, history, now) == next_action(
            cadence, second, history, now
        )


def test_amounts_share_a_key_unless_a_threshold_parts_them() -> None:
    cadence = shipped()["standard"]  # steps that want 50.00 and 100.00 at least
    assert cadence.min_balances == (Decimal("50.00"), Decimal("100.00"))
    now = datetime(2026, 11, 2, 15, tzinfo=UTC)

    def key(balance: str, **overrides: Any) -> object:
        return action_key(cadence, facts(balance=Decimal(balance), **overrides), [], now)

    assert key("150.00") == key("99999.99")
    assert key("60.00") == key("99.99")
    assert key("49.99") != key("50.00")
    assert key("99.99") != key("100.00")
    assert key("0.00") != key("0.01")  # paid off
    assert key("150.00") != key("150.00", locale="es_US")
    assert key("150.00") != key("150.00", disputed=True)
    history = [StepRecord("reminder-3d", now - timedelta(days=5))]
    assert action_key(cadence, facts(), history, now) != action_key(cadence, facts(), [], now)


def test_an_expired_step_is_skipped_even_when_it_is_the_only_one_due() -> None:
    pre_due = shipped()["pre-due"]
    # Due 2026-10-31; the due-day message may go out until 2026-11-02 00:00 New York time.
    on_time = next_action(pre_due, facts(), records_until(pre_due, "reminder-1d", at_due_time),
                          utc(2026, 11, 2, 3, 59))  # fmt: skip
    assert on_time.due is not None and on_time.due.key == "due-today"
    late = next_action(pre_due, facts(), records_until(pre_due, "reminder-1d", at_due_time),
                       utc(2026, 11, 2, 5, 0))  # fmt: skip
    assert late.due is None and late.finished
    assert keys(late.skipped) == [("due-today", "expired: not sent within 2 days of falling due")]


def test_expires_after_must_be_days() -> None:
    raw = {"steps": [{"key": "a", "anchor": "due_date+0d", "channel": "sms", "template": "due",
                      "tone": "friendly", "expires_after": "two days"}]}  # fmt: skip
    with pytest.raises(CadenceError, match="expires_after 'two days' must be a number of days"):
        parse_cadence("x", raw, "x.yaml")
