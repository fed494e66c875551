"""Scenario files: the strict reader, the regression suite in ``compliance_scenarios/``
(each ``NAME.json`` with its ``NAME.expected.json``) run in process and through the real
``outreach compliance check``, and ``scenario_of`` round trips."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from outreach.compliance.decision import Decision
from outreach.compliance.engine import evaluate
from outreach.compliance.rules import load_ruleset
from outreach.compliance.scenario import (
    ScenarioError,
    parse_scenario,
    read_scenario,
    scenario_of,
)

RULES = load_ruleset()
SCENARIOS = Path(__file__).parent / "compliance_scenarios"
NAMES = sorted(
    path.name.removesuffix(".json")
    for path in SCENARIOS.glob("*.json")
    if not path.name.endswith(".expected.json")
)
OUTREACH = Path(sys.executable).with_name("outreach")

EXAMPLE: dict[str, Any] = {
    "now": "2025-06-03T10:30:00-04:00",
    "jurisdiction": {"country": "US", "state": "CA"},
    "collector": {"type": "third_party"},
    "debtor": {
        "timezone": "America/Los_Angeles",
        "phones": [{"number": "+12125550101", "type": "mobile", "timezone": None, "consent": True}],
        "emails": [{"address": "pat@example.net", "type": "personal"}],
        "inconvenient_times": [
            {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}
        ],
        "represented_by_attorney": False,
    },
    "history": [
        {"at": "2025-06-02T10:00:00-04:00", "channel": "voice", "direction": "outbound",
         "to": "+12125550101", "debts": ["D1"], "outcome": "no_answer"}
    ],
    "events": [
        {"at": "2025-06-01T09:00:00-04:00", "kind": "opt_out", "channel": "sms",
         "address": "+12125550101"}
    ],
    "contact": {"channel": "voice", "to": "+12125550101", "debts": ["D1"], "automated": False},
}  # fmt: skip


def example(**changes: Any) -> dict[str, Any]:
    """The example with values replaced at dotted paths ("debtor.phones.0.colour")."""
    doc = copy.deepcopy(EXAMPLE)
    for path, value in changes.items():
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return doc


def summary(decision: Decision) -> dict[str, Any]:
    record = decision.as_json()
    return {
        "decision": record["decision"],
        "not_before": record["not_before"],
        "codes": [reason["code"] for reason in record["reasons"]],
    }


def expected(name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        (SCENARIOS / f"{name}.expected.json").read_text(encoding="utf-8")
    )
    return found


# --- the reader ----------------------------------------------------------------------------


def test_the_documented_example() -> None:
    scenario = parse_scenario(EXAMPLE)
    asked = scenario.situation()
    assert asked.now == datetime(2025, 6, 3, 14, 30, tzinfo=UTC)
    assert asked.jurisdiction == "US-CA"
    assert asked.collector == "third_party"
    assert asked.debtor.timezone == "America/Los_Angeles"
    assert asked.debtor.phones[0].timezone is None  # inferred from the number
    assert asked.debtor.emails[0].kind == "personal"
    assert asked.contact.automated is False
    decision = evaluate(asked, RULES)
    assert summary(decision) == {
        "decision": "defer",
        "not_before": "2025-06-03T15:00:00Z",
        "codes": ["REGF_TIME_OUTSIDE_WINDOW_MULTI_TZ"],
    }


def test_defaults_and_extensions() -> None:
    doc = example(
        **{
            "jurisdiction.city": "NYC",
            "jurisdiction.state": "NY",
            "debtor.other_timezones": ["America/Denver"],
            "history.0.automated": True,
            "events.0.debts": ["D1"],
        }
    )
    doc["debtor"]["phones"][0].pop("type")
    doc["debtor"]["inconvenient_times"][0].pop("days")
    doc["contact"].pop("automated")
    asked = parse_scenario(doc).situation()
    assert asked.jurisdiction == "US-NY-NYC"
    assert asked.debtor.other_timezones == ("America/Denver",)
    assert asked.debtor.phones[0].kind == "unknown"
    assert asked.debtor.inconvenient_times[0].days == (
        "mon", "tue", "wed", "thu", "fri", "sat", "sun",
    )  # fmt: skip
    assert asked.history[0].automated is True
    assert asked.events[0].debts == ("D1",)
    assert asked.contact.automated is True  # the default: automated
    for kind in ("cease_withdrawn", "attorney_withdrawn", "bankruptcy_closed"):
        parse_scenario(example(**{"events.0.kind": kind}))
    minimal = {
        "now": "2025-06-03T10:30:00Z",
        "jurisdiction": {"country": "US"},
        "collector": {"type": "first_party"},
        "contact": {"channel": "email", "to": "Pat@Example.net", "debts": ["D1"]},
    }
    asked = parse_scenario(minimal).situation()
    assert asked.debtor.timezone is None and asked.history == () and asked.events == ()
    assert asked.contact.to == "pat@example.net"


def test_a_phones_consent_is_per_channel_and_an_older_single_consent_covers_both() -> None:
    """A stored decision's scenario from before consent was kept per channel has one
    ``consent``: consent to texts and calls alike, as it was read then. One written since
    says which channel's consent is recorded, and consent to texts is no consent to a
    prerecorded call (nor consent to calls to an automated text)."""
    robocall = {"contact.automated": True, "events": []}

    def codes(**phone: bool) -> list[str]:
        doc = example(**robocall)
        doc["debtor"]["phones"][0].pop("consent")
        doc["debtor"]["phones"][0].update(phone)
        return evaluate(parse_scenario(doc).situation(), RULES).codes

    tcpa = "TCPA_NO_PRIOR_EXPRESS_CONSENT"
    assert tcpa not in codes(consent=True)
    assert tcpa in codes(sms_consent=True)
    assert tcpa not in codes(voice_consent=True)
    doc = example(**robocall, **{"contact.channel": "sms"})
    doc["debtor"]["phones"][0].update(consent=False, voice_consent=True)
    assert tcpa in evaluate(parse_scenario(doc).situation(), RULES).codes
    # Written back as it was read.
    asked = parse_scenario(doc).situation()
    assert scenario_of(asked)["debtor"]["phones"] == [
        {"number": "+12125550101", "type": "mobile", "timezone": None, "consent": False,
         "voice_consent": True}
    ]  # fmt: skip
    assert parse_scenario(scenario_of(asked)).situation() == asked


@pytest.mark.parametrize(
    ("path", "where"),
    [
        ("colour", "colour"),
        ("jurisdiction.colour", "jurisdiction.colour"),
        ("collector.colour", "collector.colour"),
        ("debtor.colour", "debtor.colour"),
        ("debtor.phones.0.colour", "debtor.phones[0].colour"),
        ("debtor.emails.0.colour", "debtor.emails[0].colour"),
        ("debtor.inconvenient_times.0.colour", "debtor.inconvenient_times[0].colour"),
        ("history.0.colour", "history[0].colour"),
        ("events.0.colour", "events[0].colour"),
        ("contact.colour", "contact.colour"),
    ],
)
def test_unknown_fields_are_named_by_their_path(path: str, where: str) -> None:
    with pytest.raises(ScenarioError) as raised:
        parse_scenario(example(**{path: "red"}), "case.json")
    assert str(raised.value) == f"case.json: unknown field {where}"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("now", "2025-06-03T10:30:00", "now: needs a UTC offset"),
        ("history.0.at", "2025-06-02T10:00:00", "history[0].at: needs a UTC offset"),
        ("events.0.at", "2025-06-01T09:00:00", "events[0].at: needs a UTC offset"),
        ("debtor.timezone", "America/Las_Vegas", "debtor.timezone: 'America/Las_Vegas' is not an"),
        ("debtor.phones.0.timezone", "EST5", "debtor.phones[0].timezone: 'EST5' is not an IANA"),
        ("debtor.other_timezones", ["Mars/Base"], "debtor.other_timezones: 'Mars/Base' is not"),
        ("events.0.kind", "unsubscribe", "events[0].kind: Input should be 'opt_out'"),
        ("history.0.outcome", "answered", "history[0].outcome: Input should be 'no_answer'"),
        ("history.0.channel", "fax", "history[0].channel: Input should be 'sms', 'email' or"),
        ("history.0.direction", "sideways", "history[0].direction: Input should be 'outbound'"),
        ("events.0.channel", "fax", "events[0].channel: Input should be 'sms', 'email' or"),
        ("contact.channel", "fax", "contact.channel: Input should be 'sms', 'email' or 'voice'"),
        ("collector.type", "debt_buyer", "collector.type: Input should be 'first_party' or"),
        ("debtor.phones.0.type", "pager", "debtor.phones[0].type: Input should be 'mobile'"),
        ("debtor.phones.0.number", "212-555-0101", "debtor.phones[0].number: String should match"),
        ("contact.debts", [], "contact.debts: Tuple should have at least 1 item"),
        ("jurisdiction.country", "USA", "jurisdiction.country: String should match"),
        ("debtor.inconvenient_times.0.days", ["monday"], "inconvenient_times[0].days[0]: Input"),
    ],
)  # fmt: skip
def test_bad_values_are_named(path: str, value: Any, message: str) -> None:
    with pytest.raises(ScenarioError) as raised:
        parse_scenario(example(**{path: value}), "case.json")
    assert str(raised.value).startswith("case.json: ")
    assert message in str(raised.value)


def test_every_problem_is_reported_and_missing_fields_named() -> None:
    doc = example(**{"now": "2025-06-03T10:30:00", "debtor.phones.0.colour": "red"})
    del doc["contact"]
    with pytest.raises(ScenarioError) as raised:
        parse_scenario(doc, "case.json")
    problems = str(raised.value).removeprefix("case.json: ").split("; ")
    assert sorted(problems) == sorted(
        [
            "now: needs a UTC offset, e.g. 2025-06-03T10:30:00-04:00",
            "unknown field debtor.phones[0].colour",
            "contact is required",
        ]
    )
    with pytest.raises(ScenarioError, match="scenario: Input should be a valid dictionary"):
        parse_scenario([EXAMPLE])


def test_files_that_are_not_scenarios(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"now": ', encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"broken\.json: not valid JSON"):
        read_scenario(broken)
    with pytest.raises(ScenarioError, match=r"missing\.json: cannot be read"):
        read_scenario(tmp_path / "missing.json")
    latin = tmp_path / "latin.json"
    latin.write_bytes('{"now": "é"}'.encode("latin-1"))
    with pytest.raises(ScenarioError, match=r"latin\.json: not valid JSON"):
        read_scenario(latin)


def test_email_addresses_match_in_any_case() -> None:
    """Addresses are compared in lower case everywhere, not only on the debtor and the
    contact: an opt-out recorded as "Pat@Example.NET" binds pat@example.net, and a message
    the debtor sent from "Pat@Employer.example" lets us answer there."""
    base = {
        "now": "2025-06-03T12:00:00-04:00",
        "jurisdiction": {"country": "US", "state": "NJ"},
        "collector": {"type": "third_party"},
        "debtor": {
            "timezone": "America/New_York",
            "emails": [
                {"address": "pat@example.net", "type": "personal"},
                {"address": "PAT@employer.example", "type": "work"},
            ],
        },
        "contact": {"channel": "email", "to": "pat@example.net", "debts": ["D1"]},
    }
    opted_out = copy.deepcopy(base) | {
        "events": [
            {"at": "2025-06-01T09:00:00-04:00", "kind": "opt_out", "channel": "email",
             "address": "Pat@Example.NET"},
        ]
    }  # fmt: skip
    decision = evaluate(parse_scenario(opted_out).situation(), RULES)
    assert decision.codes == ["EMAIL_UNSUBSCRIBED", "REGF_ELECTRONIC_OPT_OUT_ADDRESS"]

    consented = copy.deepcopy(base) | {
        "events": [
            {"at": "2025-06-01T09:00:00-04:00", "kind": "consent",
             "address": "Pat@Employer.Example"},
        ]
    }  # fmt: skip
    consented["contact"]["to"] = "pat@employer.example"
    assert evaluate(parse_scenario(consented).situation(), RULES).verdict == "allow"

    wrote = copy.deepcopy(base) | {
        "history": [
            {"at": "2025-06-02T09:00:00-04:00", "channel": "email", "direction": "inbound",
             "to": "Pat@Employer.example", "debts": ["D1"], "outcome": "delivered"},
        ]
    }  # fmt: skip
    wrote["contact"]["to"] = "Pat@EMPLOYER.example"
    assert evaluate(parse_scenario(wrote).situation(), RULES).verdict == "allow"
    del wrote["history"]
    assert evaluate(parse_scenario(wrote).situation(), RULES).codes == ["REGF_EMPLOYER_EMAIL"]
    # Phone numbers are left as they are.
    texted = parse_scenario(
        base | {"events": [{"at": "2025-06-01T09:00:00-04:00", "kind": "opt_out",
                            "channel": "sms", "address": "+12015550101"}]}
    ).situation()  # fmt: skip
    assert texted.events[0].address == "+12015550101"


# --- the regression suite ------------------------------------------------------------------


def test_the_suite_is_complete() -> None:
    assert len(NAMES) >= 15
    for name in NAMES:
        assert (SCENARIOS / f"{name}.expected.json").is_file(), name
    orphans = {
        p.name.removesuffix(".expected.json") for p in SCENARIOS.glob("*.expected.json")
    } - set(NAMES)
    assert not orphans
    verdicts = {expected(name)["decision"] for name in NAMES}
    assert verdicts == {"allow", "defer", "block"}


def test_a_changed_decision_comes_with_a_new_ruleset_version() -> None:
    """Stored decisions name the rule set's version so that a replay that decides otherwise
    can say why: the expected decisions here may change only with the version (in
    ``outreach/compliance/rulesets/default.yaml``), and ``RULESET`` records both."""
    digest = hashlib.sha256()
    for path in sorted(SCENARIOS.glob("*.expected.json")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    recorded = dict(line.split(" ", 1) for line in
                    (SCENARIOS / "RULESET").read_text(encoding="utf-8").splitlines())  # fmt: skip
    advice = (
        "the expected decisions or the rule set's version changed: give the rule set a new "
        "version if any decision changed, then write both in tests/compliance_scenarios/RULESET"
    )
    assert recorded == {
        "ruleset_version": RULES.version,
        "expected_sha256": digest.hexdigest(),
    }, advice


@pytest.mark.parametrize("name", NAMES)
def test_scenario_in_process(name: str) -> None:
    decision = evaluate(read_scenario(SCENARIOS / f"{name}.json").situation(), RULES)
    assert summary(decision) == expected(name)


@pytest.fixture(scope="module")
def command_line(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every scenario through ``outreach compliance check``, a few processes at a time, in
    an empty directory with no .env, no operator rules and no provider credentials."""
    assert OUTREACH.is_file(), OUTREACH
    cwd = tmp_path_factory.mktemp("cli")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TWILIO_", "SENDGRID_", "COMPLIANCE_", "DATABASE_", "OUTREACH_"))
    }
    env.update(DATABASE_URL=f"sqlite:///{cwd / 'unused.db'}", COLUMNS="200")
    waiting = list(NAMES)
    running: dict[str, subprocess.Popen[str]] = {}
    results: dict[str, Any] = {}
    while waiting or running:
        while waiting and len(running) < max(2, os.cpu_count() or 2):
            name = waiting.pop(0)
            running[name] = subprocess.Popen(
                [str(OUTREACH), "compliance", "check", str(SCENARIOS / f"{name}.json")],
                cwd=cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        name = next(iter(running))
        process = running.pop(name)
        stdout, stderr = process.communicate(timeout=300)
        results[name] = (process.returncode, stdout, stderr)
    return results


@pytest.mark.parametrize("name", NAMES)
def test_scenario_on_the_command_line(command_line: dict[str, Any], name: str) -> None:
    returncode, stdout, stderr = command_line[name]
    assert (returncode, stderr) == (0, "")
    answer = json.loads(stdout)
    codes = [reason["code"] for reason in answer["reasons"]]
    assert {
        "decision": answer["decision"],
        "not_before": answer["not_before"],
        "codes": codes,
    } == expected(name)
    assert answer["ruleset_version"] == RULES.version
    assert answer["rules_evaluated"] and answer["zones"]


def test_the_command_line_names_a_bad_scenario(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(example(**{"debtor.phones.0.colour": "red"})), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPLIANCE_", "DATABASE_"))}
    result = subprocess.run(
        [str(OUTREACH), "compliance", "check", str(path)],
        cwd=tmp_path, env=env | {"COLUMNS": "200"}, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "unknown field debtor.phones[0].colour" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", NAMES)
def test_scenario_of_round_trips(name: str) -> None:
    asked = read_scenario(SCENARIOS / f"{name}.json").situation()
    document = json.loads(json.dumps(scenario_of(asked)))
    again = parse_scenario(document, "round trip").situation()
    assert again == asked
    assert summary(evaluate(again, RULES)) == summary(evaluate(asked, RULES)) == expected(name)
    assert scenario_of(again) == document


def test_the_command_line_reads_the_operators_rules(tmp_path: Path) -> None:
    """COMPLIANCE_RULES_FILE adds a restricted_days rule: the night before Thanksgiving
    (Thursday 2025-11-27) waits until Friday 08:00 EST."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        'version: "ops-1"\n'
        "profiles:\n"
        "  - id: ops-days\n"
        "    name: No contact on Sundays or public holidays\n"
        "    jurisdiction: US\n"
        "    rules:\n"
        "      - code: POLICY_SUNDAYS_AND_HOLIDAYS\n"
        "        kind: restricted_days\n"
        "        sundays: true\n"
        "        holidays: true\n"
        "        citation: Operator policy 7\n",
        encoding="utf-8",
    )
    path = tmp_path / "thanksgiving.json"
    doc = example(now="2025-11-26T21:30:00-05:00", **{"jurisdiction.state": "NJ"})
    doc["debtor"] = {"timezone": "America/New_York"}
    doc["events"] = doc["history"] = []
    path.write_text(json.dumps(doc), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPLIANCE_", "DATABASE_"))}
    result = subprocess.run(
        [str(OUTREACH), "compliance", "check", str(path)],
        cwd=tmp_path, env=env | {"COLUMNS": "200", "COMPLIANCE_RULES_FILE": str(rules)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["decision"] == "defer"
    assert answer["not_before"] == "2025-11-28T13:00:00Z"
    assert [r["code"] for r in answer["reasons"]] == [
        "REGF_TIME_OUTSIDE_WINDOW",
        "POLICY_SUNDAYS_AND_HOLIDAYS",
    ]
    assert answer["ruleset_version"].startswith("2026.12.2+ops-1.")
