"""``outreach compliance`` as an operator and a compliance officer use it."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from outreach import store
from outreach.compliance.engine import evaluate
from outreach.compliance.rules import load_ruleset
from outreach.compliance_store import decision_row, load_debtors, situation, store_decisions
from tests.test_cli import outreach
from tests.test_compliance_scenario import EXAMPLE
from tests.test_import_accounts import HEADER, row, write_csv


def write_json(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def with_accounts(env: dict[str, str], tmp_path: Path) -> None:
    assert outreach("init", env=env, cwd=tmp_path).returncode == 0
    path = write_csv(
        tmp_path / "a.csv", [row("MA-1", phone="(617) 555-0101", timezone="America/New_York")]
    )
    assert outreach("accounts", "import", str(path), env=env, cwd=tmp_path).returncode == 0


def test_check_prints_the_decision_as_json(env: dict[str, str], tmp_path: Path) -> None:
    scenario = write_json(tmp_path / "example.json", EXAMPLE)
    result = outreach("compliance", "check", str(scenario), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["decision"] == "defer"
    assert answer["not_before"] == "2025-06-03T15:00:00Z"
    assert [r["code"] for r in answer["reasons"]] == ["REGF_TIME_OUTSIDE_WINDOW_MULTI_TZ"]
    assert {"code": "REGF_7IN7_CALL_CAP", "outcome": "pass", "profile": "US"} in answer[
        "rules_evaluated"
    ]


def test_check_names_unknown_fields_and_exits_2(env: dict[str, str], tmp_path: Path) -> None:
    broken = json.loads(json.dumps(EXAMPLE))
    broken["debtor"]["phones"][0]["colour"] = "blue"
    broken["contact"]["urgent"] = True
    scenario = write_json(tmp_path / "broken.json", broken)
    result = outreach("compliance", "check", str(scenario), env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown field debtor.phones[0].colour" in result.stderr
    assert "unknown field contact.urgent" in result.stderr
    assert "Traceback" not in result.stderr


def test_explain_record_and_designate(env: dict[str, str], tmp_path: Path) -> None:
    with_accounts(env, tmp_path)
    # Monday 2026-11-02 07:30 in Boston: before the window opens.
    early = "2026-11-02T07:30:00-05:00"
    result = outreach("compliance", "explain", "--account", "MA-1", "--at", early,
                      env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "jurisdiction US-MA" in result.stdout
    assert "America/New_York (address)" in result.stdout
    assert "sms to +16175550101: DEFERRED until 2026-11-02 13:00 UTC" in result.stdout
    assert "MA_HOURS: it is 07:30 in America/New_York" in result.stdout

    outreach("compliance", "designate", "--account", "MA-1", "--days", "mon-fri",
             "--from", "08:00", "--to", "12:00", env=env, cwd=tmp_path)  # fmt: skip
    result = outreach("compliance", "explain", "--account", "MA-1", "--channel", "email",
                      "--at", early, "--json", env=env, cwd=tmp_path)  # fmt: skip
    [email] = json.loads(result.stdout)
    assert email["decision"] == "defer"
    assert email["not_before"] == "2026-11-02T17:00:00Z"  # noon in Boston
    assert [r["code"] for r in email["reasons"]] == [
        "MA_HOURS",
        "POLICY_DESIGNATED_INCONVENIENT_TIME",
    ]

    listed = outreach("compliance", "designations", "--account", "MA-1", env=env, cwd=tmp_path)
    assert "mon,tue,wed,thu,fri" in listed.stdout
    outreach("compliance", "designations", "--account", "MA-1", "--withdraw", "1",
             env=env, cwd=tmp_path)  # fmt: skip
    again = outreach("compliance", "designations", "--account", "MA-1", "--withdraw", "1",
                     env=env, cwd=tmp_path)  # fmt: skip
    assert again.returncode == 2 and "no designation 1 in force" in again.stderr

    recorded = outreach("compliance", "record", "--account", "MA-1", "--kind", "cease",
                        "--at", "2026-11-01T12:00:00Z", "--source", "letter",
                        env=env, cwd=tmp_path)  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr
    result = outreach("compliance", "explain", "--account", "MA-1", "--channel", "voice",
                      "--at", "2026-11-02T12:00:00-05:00", env=env, cwd=tmp_path)  # fmt: skip
    assert "voice to +16175550101: BLOCKED" in result.stdout
    assert "POLICY_CEASE_REQUESTED" in result.stdout
    assert "Lifted by the debtor withdrawing the cease request" in result.stdout

    bad = outreach("compliance", "record", "--account", "MA-1", "--kind", "angry",
                   env=env, cwd=tmp_path)  # fmt: skip
    assert bad.returncode == 2 and "--kind 'angry'" in bad.stderr
    vague = outreach("compliance", "record", "--account", "MA-1", "--kind", "opt_out",
                     env=env, cwd=tmp_path)  # fmt: skip
    assert vague.returncode == 2 and "--kind opt_out needs --channel, --address" in vague.stderr
    no_medium = outreach("compliance", "record", "--account", "MA-1", "--kind",
                         "prohibited_medium", env=env, cwd=tmp_path)  # fmt: skip
    assert no_medium.returncode == 2 and "needs --channel" in no_medium.stderr
    # An opt-out of an address without a channel holds on every channel.
    outreach("compliance", "record", "--account", "MA-1", "--kind", "cease_withdrawn",
             "--at", "2026-11-01T13:00:00Z", env=env, cwd=tmp_path)  # fmt: skip
    outreach("compliance", "record", "--account", "MA-1", "--kind", "opt_out", "--address",
             "+16175550101", "--at", "2026-11-01T14:00:00Z", env=env, cwd=tmp_path)  # fmt: skip
    result = outreach("compliance", "explain", "--account", "MA-1", "--at",
                      "2026-11-02T12:00:00-05:00", env=env, cwd=tmp_path)  # fmt: skip
    assert "sms to +16175550101: BLOCKED" in result.stdout
    assert "voice to +16175550101: BLOCKED" in result.stdout
    missing = outreach("compliance", "explain", "--account", "NOPE", env=env, cwd=tmp_path)
    assert missing.returncode == 2 and "no account with reference 'NOPE'" in missing.stderr


def test_explain_an_account_naming_no_state(env: dict[str, str], tmp_path: Path) -> None:
    """Its number's state gives every zone of the state, each named with its source (the
    import records the one zone phonenumbers gives a Gary, Indiana number: Eastern, where
    Gary keeps Central time); and a text to a number marked home needs consent."""
    assert outreach("init", env=env, cwd=tmp_path).returncode == 0
    path = write_csv(
        tmp_path / "a.csv",
        [row("IN-1", phone="(219) 455-1234", jurisdiction="US", sms_consent="false",
             phone_type="home")],
        [*HEADER, "phone_type"],
    )  # fmt: skip
    assert outreach("accounts", "import", str(path), env=env, cwd=tmp_path).returncode == 0
    # Tuesday 2026-11-03 07:30 in Gary (08:30 in New York): before the window opens.
    result = outreach("compliance", "explain", "--account", "IN-1", "--at",
                      "2026-11-03T07:30:00-06:00", env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "America/New_York (phone +12194551234 (recorded))" in result.stdout
    assert "America/Chicago (state US-IN of phone +12194551234)" in result.stdout
    assert "sms to +12194551234: BLOCKED" in result.stdout
    assert "TCPA_NO_PRIOR_EXPRESS_CONSENT" in result.stdout
    assert "voice to +12194551234: DEFERRED until 2026-11-03 14:00 UTC" in result.stdout


def test_what_a_debtor_said_of_an_address_holds_wherever_it_is_used(
    env: dict[str, str], tmp_path: Path, engine: Engine
) -> None:
    """An opt-out recorded by an operator binds the number as the debtor's STOP would: in
    the suppression ledger, and on every account using it; an opt-in lifts it there."""
    assert outreach("init", env=env, cwd=tmp_path).returncode == 0
    path = write_csv(tmp_path / "a.csv", [
        row("MA-1", phone="(617) 555-0101", timezone="America/New_York"),
        row("MA-2", phone="+16175550101", timezone="America/New_York",
            email="other@example.com"),
        row("MA-3", phone="+16175550103", timezone="America/New_York",
            email="Pat.Doe@example.com"),
    ])  # fmt: skip
    assert outreach("accounts", "import", str(path), env=env, cwd=tmp_path).returncode == 0

    def explained(reference: str, channel: str) -> str:
        result = outreach("compliance", "explain", "--account", reference, "--channel", channel,
                          "--at", "2026-11-02T12:00:00-05:00", env=env, cwd=tmp_path)  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout

    def blocked(reference: str, channel: str) -> bool:
        return "BLOCKED" in explained(reference, channel)

    def rows(table: Any) -> list[Any]:
        with engine.connect() as connection:
            return list(connection.execute(select(table).order_by(table.c.id)))

    def events_of(kind: str) -> list[Any]:
        return [e for e in rows(store.compliance_events) if e.kind == kind]

    assert "TCPA_CONSENT_REVOKED" not in explained("MA-2", "voice")

    said = outreach("compliance", "record", "--account", "MA-1", "--kind", "opt_out",
                    "--channel", "sms", "--address", "(617) 555-0101", "--at",
                    "2026-11-01T14:00:00Z", "--source", "call with the debtor",
                    env=env, cwd=tmp_path)  # fmt: skip
    assert said.returncode == 0, said.stderr
    assert "+16175550101 is also used by MA-2" in said.stdout
    assert (blocked("MA-1", "sms"), blocked("MA-2", "sms"), blocked("MA-3", "sms")) == (
        True, True, False,
    )  # fmt: skip
    assert "TCPA_CONSENT_REVOKED" in explained("MA-2", "voice")  # revoke-all
    assert [(s.channel, s.address, s.reason, s.lifted_at) for s in rows(store.suppressions)] == [
        ("sms", "+16175550101", "stop", None)
    ]
    assert sorted((e.account_id, e.source) for e in events_of("opt_out")) == [
        (1, "call with the debtor"), (2, "call with the debtor"),
    ]  # fmt: skip

    # The debtor's START, told to an agent on the other account, lifts it for both: in the
    # ledger, and on each account the opt-out was recorded on.
    again = outreach("compliance", "record", "--account", "MA-2", "--kind", "opt_in",
                     "--channel", "sms", "--address", "+16175550101", "--at",
                     "2026-11-01T15:00:00Z", env=env, cwd=tmp_path)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert (blocked("MA-1", "sms"), blocked("MA-2", "sms")) == (False, False)
    lifted = datetime(2026, 11, 1, 15, 0, tzinfo=UTC)
    assert [s.lifted_at for s in rows(store.suppressions)] == [lifted]
    assert sorted(e.account_id for e in events_of("opt_in")) == [1, 2]

    # A mailbox, in any case: its unsubscribe, on the account whose mailbox it is.
    mailbox = outreach("compliance", "record", "--account", "MA-1", "--kind", "opt_out",
                       "--address", "MA-1@Example.COM", env=env, cwd=tmp_path)  # fmt: skip
    assert mailbox.returncode == 0, mailbox.stderr
    assert ("email", "ma-1@example.com", "unsubscribe") in [
        (s.channel, s.address, s.reason) for s in rows(store.suppressions)
    ]
    assert blocked("MA-1", "email") and not blocked("MA-2", "email")
    # Explained as the planner decides: a mailbox stored with capitals is the same mailbox.
    assert not blocked("MA-3", "email")
    outreach("compliance", "record", "--account", "MA-3", "--kind", "opt_out", "--address",
             "pat.doe@EXAMPLE.com", env=env, cwd=tmp_path)  # fmt: skip
    assert blocked("MA-3", "email")

    # A complaint is not the debtor's to lift: the opt-in is refused, nothing is written.
    with engine.begin() as connection:
        connection.execute(store.suppressions.insert().values(
            channel="email", address="other@example.com", reason="complaint", source="test",
            created_at=lifted))  # fmt: skip
    refused = outreach("compliance", "record", "--account", "MA-2", "--kind", "opt_in",
                       "--channel", "email", "--address", "Other@example.com",
                       env=env, cwd=tmp_path)  # fmt: skip
    assert refused.returncode == 2 and "held by a complaint" in refused.stderr
    assert sorted(e.account_id for e in events_of("opt_in")) == [1, 2]

    # A consent revoked is recorded on its account, its number spelled as the import spells
    # it, and holds for the person's other account (revoke-all), not for a stranger's.
    revoked = outreach("compliance", "record", "--account", "MA-1", "--kind",
                       "consent_revoked", "--address", "+1 617 555 0101", "--at",
                       "2026-11-01T16:00:00Z", env=env, cwd=tmp_path)  # fmt: skip
    assert revoked.returncode == 0, revoked.stderr
    assert (
        "holds on their other account(s) and every account using +16175550101 (MA-2) too"
        in revoked.stdout
    )
    assert [(e.account_id, e.address) for e in events_of("consent_revoked")] == [
        (1, "+16175550101")
    ]
    assert "TCPA_CONSENT_REVOKED" in explained("MA-1", "voice")
    assert "TCPA_CONSENT_REVOKED" in explained("MA-2", "voice")
    assert "TCPA_CONSENT_REVOKED" not in explained("MA-3", "voice")
    # Consent given again on the other account does not lift it where it was recorded,
    # and the operator is told where it holds; given there as widely, it ends for both.
    given = outreach("compliance", "record", "--account", "MA-2", "--kind", "consent",
                     "--channel", "voice", "--address", "+16175550101", "--at",
                     "2026-11-01T17:00:00Z", env=env, cwd=tmp_path)  # fmt: skip
    assert given.returncode == 0, given.stderr
    held = "MA-1: consent_revoked of 2026-11-01 16:00 (+16175550101)"
    assert "Still in force for the debtor" in given.stdout and held in given.stdout
    assert "TCPA_CONSENT_REVOKED" in explained("MA-2", "voice")
    assert "on the account the revocation was recorded on" in explained("MA-2", "voice")
    assert "Held from other accounts" in explained("MA-2", "voice")
    assert held in explained("MA-2", "voice")
    assert "Held from other accounts" not in explained("MA-3", "voice")
    # Dated before the revocation, a consent on MA-1 lifts nothing, and is told why.
    backdated = outreach("compliance", "record", "--account", "MA-1", "--kind", "consent",
                         "--address", "+16175550101", "--at", "2026-11-01T15:00:00Z",
                         env=env, cwd=tmp_path)  # fmt: skip
    assert backdated.returncode == 0, backdated.stderr
    assert f"{held} (recorded after this --at)" in backdated.stdout
    assert "(recorded after this --at)" not in given.stdout
    narrower = outreach("compliance", "record", "--account", "MA-1", "--kind", "consent",
                        "--channel", "voice", "--address", "+16175550101", "--at",
                        "2026-11-01T17:00:00Z", env=env, cwd=tmp_path)  # fmt: skip
    assert narrower.returncode == 0, narrower.stderr
    # The number's texts and calls were revoked; consent to calls gives MA-1 its calls
    # back and leaves the revocation in force for the person: MA-2 may do neither, and the
    # operator is told that the revocation still holds.
    assert held in narrower.stdout
    assert "TCPA_CONSENT_REVOKED" not in explained("MA-1", "voice")
    assert "TCPA_CONSENT_REVOKED" in explained("MA-1", "sms")
    assert "TCPA_CONSENT_REVOKED" in explained("MA-2", "voice")
    assert "TCPA_CONSENT_REVOKED" in explained("MA-2", "sms")
    whole = outreach("compliance", "record", "--account", "MA-1", "--kind", "consent",
                     "--address", "+16175550101", "--at", "2026-11-01T17:30:00Z",
                     env=env, cwd=tmp_path)  # fmt: skip
    assert whole.returncode == 0, whole.stderr
    assert "Still in force" not in whole.stdout
    for reference, channel in itertools.product(("MA-1", "MA-2"), ("sms", "voice")):
        assert "TCPA_CONSENT_REVOKED" not in explained(reference, channel), (reference, channel)
    # A revocation dated before a consent that lifts it is not in force: nothing to share.
    late = outreach("compliance", "record", "--account", "MA-1", "--kind", "consent_revoked",
                    "--address", "+16175550101", "--at", "2026-11-01T17:15:00Z",
                    env=env, cwd=tmp_path)  # fmt: skip
    assert late.returncode == 0, late.stderr
    assert "holds on their other account(s)" not in late.stdout

    # A consent is recorded on an account whose number it names, not on a stranger's.
    stranger = outreach("compliance", "record", "--account", "MA-3", "--kind",
                        "consent_revoked", "--address", "+16175550101",
                        env=env, cwd=tmp_path)  # fmt: skip
    assert stranger.returncode == 2
    assert "--address +16175550101 is not one of MA-3's addresses" in stranger.stderr
    assert "TCPA_CONSENT_REVOKED" not in explained("MA-3", "voice")

    wrong = outreach("compliance", "record", "--account", "MA-1", "--kind", "opt_out",
                     "--channel", "email", "--address", "+16175550101",
                     env=env, cwd=tmp_path)  # fmt: skip
    assert wrong.returncode == 2
    assert "--address +16175550101 is not an address on --channel email" in wrong.stderr
    garbled = outreach("compliance", "record", "--account", "MA-1", "--kind", "opt_out",
                       "--address", "617", env=env, cwd=tmp_path)  # fmt: skip
    assert garbled.returncode == 2 and "--address: '617' is not a" in garbled.stderr
    # A word dated ahead would outrank a STOP sent before then.
    ahead = outreach("compliance", "record", "--account", "MA-1", "--kind", "opt_in",
                     "--channel", "sms", "--address", "+16175550101", "--at",
                     "2099-01-01T00:00:00Z", env=env, cwd=tmp_path)  # fmt: skip
    assert ahead.returncode == 2 and "is later than now" in ahead.stderr


def test_stored_decisions_list_and_replay(
    env: dict[str, str], tmp_path: Path, engine: Engine
) -> None:
    with_accounts(env, tmp_path)
    rules = load_ruleset()
    now = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)  # 07:00 in Boston
    with engine.begin() as connection:
        account = connection.execute(select(store.accounts)).one()
        record = load_debtors(connection, [account], now, rules.lookback_days, "US", rules=rules)[
            account.id
        ]
        asked = situation(record, "sms", "+16175550101", now)
        decision = evaluate(asked, rules)
        row_ = decision_row(account.id, decision, asked, stage="plan", decided_at=now)
        store_decisions(connection, [row_])
    listed = outreach("compliance", "decisions", "--account", "MA-1", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "defer" in listed.stdout and "MA_HOURS" in listed.stdout

    snapshot = outreach("compliance", "snapshot", "1", env=env, cwd=tmp_path)
    case = write_json(tmp_path / "case.json", json.loads(snapshot.stdout))
    replayed = json.loads(outreach("compliance", "check", str(case), env=env, cwd=tmp_path).stdout)
    assert replayed["decision"] == "defer"
    assert replayed["not_before"] == "2026-11-02T13:00:00Z"


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("--on", "2026/12/01", "--on '2026/12/01': not a date (YYYY-MM-DD)"),
        ("--collector", "third-party", "--collector 'third-party': use first_party or third_party"),
        ("--collector", "agency", "--collector 'agency': use first_party or third_party"),
        ("--jurisdiction", "US-XX", "--jurisdiction 'US-XX': not a country or an ISO 3166-2"),
        ("--jurisdiction", "Massachusetts", "--jurisdiction 'Massachusetts': not a country"),
        ("--jurisdiction", "US-NY-N.Y.C", "a city is one code, as US-NY-NYC"),
        ("--jurisdiction", "US-NY-", "--jurisdiction 'US-NY-': an empty part"),
    ],
)
def test_rules_refuse_what_they_cannot_answer_for(
    env: dict[str, str], tmp_path: Path, option: str, value: str, said: str
) -> None:
    # Each would have been a traceback or an empty table, read as "no rule applies".
    result = outreach("compliance", "rules", option, value, env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stdout[-300:]
    assert said in result.stderr
    assert "Traceback" not in result.stderr and not result.stdout


def test_rules_for_a_city_on_a_date(env: dict[str, str], tmp_path: Path) -> None:
    listed = outreach("compliance", "rules", "--jurisdiction", "us-ny-nyc", "--on", "2026-12-01",
                      env=env, cwd=tmp_path)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert "US-NY-NYC" in listed.stdout and "REGF_7IN7_CALL_CAP" in listed.stdout


def test_rules_and_a_broken_override_file(env: dict[str, str], tmp_path: Path) -> None:
    listed = outreach("compliance", "rules", "--jurisdiction", "US-MA", "--collector",
                      "first_party", env=env, cwd=tmp_path)  # fmt: skip
    assert "MA_2_PER_7_DAYS_PER_DEBT" in listed.stdout
    assert "REGF_7IN7_CALL_CAP" not in listed.stdout  # Reg F does not bind creditors

    override = tmp_path / "rules.yaml"
    override.write_text(
        'version: "x1"\nprofiles:\n  - id: US-CT\n    name: Connecticut\n'
        "    jurisdiction: US-CT\n    rules:\n      - code: CT_CAP\n        kind: count\n"
        "        limit: 0\n        days: 7\n        citation: memo\n",
        encoding="utf-8",
    )
    env["COMPLIANCE_RULES_FILE"] = str(override)
    config = outreach("config", env=env, cwd=tmp_path)
    assert "COMPLIANCE_RULES_FILE" in config.stdout
    assert "profile US-CT, rule 1 (CT_CAP), limit" in config.stdout
    scenario = write_json(tmp_path / "example.json", EXAMPLE)
    result = outreach("compliance", "check", str(scenario), env=env, cwd=tmp_path)
    assert result.returncode == 2 and "profile US-CT" in result.stderr
