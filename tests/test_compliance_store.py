"""What the engine is told about an account, read from the database on every backend, and
the decisions stored with a replayable input."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, insert, select, update

from outreach import store
from outreach.clock import FixedClock
from outreach.compliance.engine import evaluate
from outreach.compliance.frequency import CLOCK_SKEW
from outreach.compliance.rules import load_ruleset
from outreach.compliance.scenario import parse_scenario
from outreach.compliance_store import (
    DebtorRecord,
    Lift,
    attempts,
    decision_row,
    decisions,
    designated_times,
    held_elsewhere,
    held_from_elsewhere,
    inbox_messages,
    load_debtors,
    situation,
    store_decisions,
)
from outreach.db import alembic_config, current_revision, head_revision, upgrade
from outreach.events import apply_events
from outreach.importing.account_rows import ImportDefaults
from outreach.providers.base import EventType
from tests.eventdata import PHONE, event, inbound
from tests.query_plans import plan_of, statements_run
from tests.test_import_accounts import HEADER, row, run_import, write_csv

# Monday 2026-11-02, 10:00 in Boston.
NOW = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
RULES = load_ruleset()
REVOKED = "TCPA_CONSENT_REVOKED"


@pytest.fixture
def accounts(engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock) -> Engine:
    path = write_csv(
        tmp_path / "a.csv",
        [row("MA-1"), row("CA-1", jurisdiction="US-CA", phone="(310) 555-0123", timezone="")],
    )
    run_import(engine, path, defaults, clock)
    return engine


def account_id(engine: Engine, reference: str) -> int:
    # Its id alone: the migrations' tests read it on an older schema.
    with engine.connect() as connection:
        return int(
            connection.execute(
                select(store.accounts.c.id).where(store.accounts.c.reference == reference)
            ).scalar_one()
        )


def add_attempt(
    engine: Engine, reference: str, at: datetime, status: str = "delivered", **values: Any
) -> None:
    ident = account_id(engine, reference)
    base = {
        "account_id": ident,
        "idempotency_key": f"{reference}:{at.isoformat()}:{values.get('channel', 'sms')}",
        "step_key": "s",
        "channel": "sms",
        "to_address": "+16175550101",
        "template_name": "reminder",
        "tone": "friendly",
        "locale": "en_US",
        "body": "text",
        "status": status,
        "tries": 1,
        "automated": True,
        "created_at": at,
        "updated_at": at,
        "sent_at": at,
    }
    with engine.begin() as connection:
        connection.execute(insert(attempts).values(**(base | values)))


def load(engine: Engine, *references: str, now: datetime = NOW) -> dict[str, DebtorRecord]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(store.accounts).where(store.accounts.c.reference.in_(references))
        ).all()
        found = load_debtors(connection, rows, now, RULES.lookback_days, "US", rules=RULES)
    return {record.reference: record for record in found.values()}


def test_accounts_become_debtors_with_their_phones_emails_and_zones(accounts: Engine) -> None:
    records = load(accounts, "MA-1", "CA-1")
    ma, ca = records["MA-1"], records["CA-1"]
    assert (ma.jurisdiction, ma.collector) == ("US-MA", "first_party")
    assert ma.debtor.timezone == "America/New_York"  # from the phone's single zone
    assert [p.number for p in ma.debtor.phones] == ["+16175550101"]
    # sms consent recorded, voice not: each channel's consent is its own.
    phone = ma.debtor.phones[0]
    assert (phone.consent, phone.sms_consent, phone.voice_consent) == (False, True, False)
    assert [(e.address, e.consent) for e in ma.debtor.emails] == [("ma-1@example.com", True)]
    assert ca.debtor.timezone == "America/Los_Angeles"
    assert ca.history == () and ca.events == ()


def test_a_texan_without_a_zone_is_not_called_before_eight_in_el_paso(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """A Texas account imported without a timezone, with a Dallas number: where in the
    state the debtor lives is unknown, so Mountain time (El Paso) is a candidate beside the
    number's Central time (comment 6(b)(1)(i)-1), and a call at 08:30 Central (07:30
    Mountain) waits until 08:00 Mountain. The decision names the state's zones, not an
    address."""
    path = write_csv(
        tmp_path / "a.csv",
        [row("TX-1", jurisdiction="US-TX", phone="(214) 555-0101", collector_type="third_party")],
        [*HEADER, "collector_type"],
    )
    run_import(engine, path, defaults, clock)
    record = load(engine, "TX-1")["TX-1"]
    assert record.debtor.timezone is None
    at = datetime(2026, 11, 2, 14, 30, tzinfo=UTC)  # 08:30 CST, 07:30 MST
    decision = evaluate(situation(record, "voice", "+12145550101", at, automated=False), RULES)
    assert decision.verdict == "defer", decision.codes
    assert decision.not_before == datetime(2026, 11, 2, 15, 0, tzinfo=UTC)  # 08:00 MST
    assert ("America/Denver", "state US-TX") in decision.zones
    assert all(source != "address" for _, source in decision.zones)


@pytest.mark.parametrize(
    ("sms", "voice", "consented"),
    [("true", "false", {"sms"}), ("false", "true", {"voice"}), ("true", "true", {"sms", "voice"})],
)
def test_consent_to_texts_is_no_consent_to_robocalls(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock,
    sms: str, voice: str, consented: set[str],
) -> None:  # fmt: skip
    """The import's sms_consent and voice_consent are each their channel's (docs/import.md):
    a debtor who agreed to automated texts only gets no prerecorded call, and one who agreed
    to calls only no automated text. The stored decision replays with the same facts."""
    path = write_csv(
        tmp_path / "a.csv",
        [row("MA-9", phone_type="mobile", sms_consent=sms, voice_consent=voice)],
        [*HEADER, "phone_type"],
    )
    run_import(engine, path, defaults, clock)
    record = load(engine, "MA-9")["MA-9"]
    for channel in ("sms", "voice"):
        asked = situation(record, channel, "+16175550101", NOW, automated=True)
        decision = evaluate(asked, RULES)
        blocked = "TCPA_NO_PRIOR_EXPRESS_CONSENT" in decision.codes
        assert blocked is (channel not in consented), (channel, decision.codes)
        stored = decision_row(record.account_id, decision, asked, stage="plan", decided_at=NOW)
        replayed = parse_scenario(stored["input_snapshot"]).situation()
        assert replayed.debtor == asked.debtor
        assert evaluate(replayed, RULES).codes == decision.codes
    # A call by a person needs no consent.
    manual = situation(record, "voice", "+16175550101", NOW, automated=False)
    assert "TCPA_NO_PRIOR_EXPRESS_CONSENT" not in evaluate(manual, RULES).codes


def test_placed_attempts_count_and_queued_or_old_ones_do_not(accounts: Engine) -> None:
    add_attempt(accounts, "MA-1", NOW - timedelta(days=1), "delivered")
    add_attempt(accounts, "MA-1", NOW - timedelta(days=2), "unknown", channel="voice")
    add_attempt(accounts, "MA-1", NOW - timedelta(days=3), "queued", channel="email")
    add_attempt(accounts, "MA-1", NOW - timedelta(days=4), "cancelled", channel="email")
    add_attempt(accounts, "MA-1", NOW - timedelta(days=60), "delivered", channel="email")
    add_attempt(accounts, "CA-1", NOW - timedelta(days=1), "delivered", to_address="+13105550123")
    history = load(accounts, "MA-1")["MA-1"].history
    assert sorted((c.channel, c.outcome, c.debts) for c in history) == [
        ("sms", "delivered", ("MA-1",)),
        ("voice", "no_answer", ("MA-1",)),
    ]


def test_massachusetts_caps_texts_from_stored_attempts(accounts: Engine) -> None:
    add_attempt(accounts, "MA-1", NOW - timedelta(days=1))
    add_attempt(accounts, "MA-1", NOW - timedelta(days=3))
    record = load(accounts, "MA-1")["MA-1"]
    decision = evaluate(situation(record, "sms", "+16175550101", NOW), RULES)
    assert decision.verdict == "defer"
    assert decision.codes == ["MA_2_PER_7_DAYS_PER_DEBT"]
    # Texts on 10-30 and 11-01: the 7 Boston dates ending 11-06 hold only one. 08:00 EST.
    assert decision.not_before == datetime(2026, 11, 6, 13, 0, tzinfo=UTC)


def test_a_message_counts_from_when_it_left_not_when_it_was_planned(accounts: Engine) -> None:
    """Texts planned ten days ago (an outage, a window, a review held them) that left
    within the week count within the week: Massachusetts's two a week are spent."""
    planned = NOW - timedelta(days=10)
    left = NOW - timedelta(days=1)
    # Its send's answer never came: held for review, counted from when it was marked sending.
    add_attempt(accounts, "MA-1", planned, "unknown", sent_at=None, placed_at=left)
    # Sent: when the provider took it.
    add_attempt(accounts, "MA-1", planned, "delivered", sent_at=NOW - timedelta(days=3),
                placed_at=NOW - timedelta(days=3, minutes=1), idempotency_key="told")  # fmt: skip
    # Marked sending before the time it left was kept: counts from when it was planned.
    add_attempt(accounts, "MA-1", planned, "sending", sent_at=None, channel="voice")
    # Planned before the look-back began, refused when it was sent two days ago.
    add_attempt(accounts, "MA-1", NOW - timedelta(days=RULES.lookback_days + 3), "failed",
                sent_at=None, placed_at=NOW - timedelta(days=2), channel="voice")  # fmt: skip
    record = load(accounts, "MA-1")["MA-1"]
    assert sorted((c.at, c.channel) for c in record.history) == [
        (planned, "voice"),
        (NOW - timedelta(days=3), "sms"),
        (NOW - timedelta(days=2), "voice"),
        (left, "sms"),
    ]
    decision = evaluate(situation(record, "sms", "+16175550101", NOW), RULES)
    assert (decision.verdict, decision.codes) == ("defer", ["MA_2_PER_7_DAYS_PER_DEBT"])
    # Beyond the look-back from when they left, they are not read at all.
    later = left + timedelta(days=RULES.lookback_days + 2)
    assert [c.channel for c in load(accounts, "MA-1", now=later)["MA-1"].history] == []


def test_a_message_through_another_account_counts_from_when_it_left(
    accounts: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """MA-2 shares MA-1's number: MA-1's text, planned before the look-back began and
    held for review since it left yesterday, is in MA-2's history from yesterday, read
    through the accounts' index."""
    run_import(accounts, write_csv(tmp_path / "b.csv", [row("MA-2")]), defaults, clock)
    add_attempt(accounts, "MA-1", NOW - timedelta(days=RULES.lookback_days + 3), "unknown",
                sent_at=None, placed_at=NOW - timedelta(days=1))  # fmt: skip
    with statements_run(accounts, "FROM attempt") as read:
        history = load(accounts, "MA-2")["MA-2"].history
    assert [(c.at, c.debts) for c in history] == [(NOW - timedelta(days=1), ("MA-1",))]
    _assert_read_by_account(accounts, read)


def test_a_past_instant_asked_about_reads_nothing_made_after_it(
    accounts: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """`outreach compliance explain --at` a past instant: the texts sent, the replies
    received and the texts through the debtor's other account after it were not yet made
    then and are not read, but for a stamp within the clock skew allowed (another process's
    clock ahead), which the engine counts as made at the instant. Read through the
    accounts' index still."""
    run_import(accounts, write_csv(tmp_path / "b.csv", [row("MA-2")]), defaults, clock)
    asked = NOW - timedelta(days=3)
    ahead = asked + CLOCK_SKEW
    for at in (asked - timedelta(days=1), ahead, ahead + timedelta(seconds=1), NOW):
        add_attempt(accounts, "MA-1", at)
        add_attempt(accounts, "MA-2", at, idempotency_key=f"MA-2:{at.isoformat()}")
        with accounts.begin() as connection:
            connection.execute(
                insert(inbox_messages).values(
                    account_id=account_id(accounts, "MA-1"), channel="sms",
                    from_address="+16175550101", to_address="+18005550100", body="ok",
                    direction="inbound", status="open", received_at=at,
                )
            )  # fmt: skip
    with statements_run(accounts, "FROM attempt") as read:
        history = load(accounts, "MA-1", now=asked)["MA-1"].history
    assert sorted((c.at, c.direction, c.debts) for c in history) == [
        (asked - timedelta(days=1), direction, debts)
        for direction, debts in [("inbound", ("MA-1",)), ("outbound", ("MA-1",)),
                                 ("outbound", ("MA-2",))]
    ] + [
        (ahead, direction, debts)
        for direction, debts in [("inbound", ("MA-1",)), ("outbound", ("MA-1",)),
                                 ("outbound", ("MA-2",))]
    ]  # fmt: skip
    _assert_read_by_account(accounts, read)


def test_placed_attempts_are_read_through_the_accounts_index(accounts: Engine) -> None:
    """Not through the dispatch index on status, which would read every placed attempt
    there is for each batch (what SQLite chooses without statistics)."""
    add_attempt(accounts, "MA-1", NOW - timedelta(days=1))
    with statements_run(accounts, "FROM attempt") as read:
        assert len(load(accounts, "MA-1")["MA-1"].history) == 1
    _assert_read_by_account(accounts, read)


def _assert_read_by_account(engine: Engine, read: list[tuple[str, Any]]) -> None:
    assert read
    for statement, parameters in read:
        plan = plan_of(engine, statement, parameters)
        assert "ix_attempt_account_created" in plan and "ix_attempt_dispatch" not in plan


def test_the_migration_dates_placed_attempts_without_a_time_of_sending(
    accounts: Engine,
) -> None:
    """Attempts placed before ``placed_at`` was kept, with no time they were sent, are dated
    when they last changed, which is no earlier than when they left."""
    changed = NOW - timedelta(hours=2)
    command.downgrade(alembic_config(accounts), "0020")
    for status, sent in (("unknown", None), ("failed", None), ("sent", NOW), ("queued", None)):
        add_attempt(accounts, "MA-1", NOW - timedelta(days=1), status, sent_at=sent,
                    updated_at=changed, idempotency_key=status)  # fmt: skip
    upgrade(accounts)
    assert current_revision(accounts) == head_revision()
    with accounts.connect() as connection:
        found = dict(connection.execute(select(attempts.c.status, attempts.c.placed_at)).all())
    assert found == {"unknown": changed, "failed": changed, "sent": None, "queued": None}


@pytest.mark.parametrize("holding", ["manual", "complaint"])
def test_a_start_does_not_outrank_what_it_may_not_lift(accounts: Engine, holding: str) -> None:
    """An operator's suppression (or a spam complaint) three days ago, the debtor's STOP two
    days ago and their START yesterday: the START lifts the STOP, not the other, and the
    number stays held. Once the operator lifts theirs, it may be texted."""
    lifted_at = NOW - timedelta(days=1)
    with accounts.begin() as connection:
        connection.execute(
            insert(store.suppressions),
            [
                {"channel": "sms", "address": "+16175550101", "reason": holding,
                 "source": "ops", "created_at": NOW - timedelta(days=3),
                 "lifted_at": None, "lifted_reason": None},
                {"channel": "sms", "address": "+16175550101", "reason": "stop",
                 "source": "STOP", "created_at": NOW - timedelta(days=2),
                 "lifted_at": lifted_at, "lifted_reason": "START"},
            ],
        )  # fmt: skip

    def verdict() -> str:
        record = load(accounts, "MA-1")["MA-1"]
        return evaluate(situation(record, "sms", "+16175550101", NOW), RULES).verdict

    assert verdict() == "block"
    with accounts.begin() as connection:
        connection.execute(
            store.suppressions.update()
            .where(store.suppressions.c.reason == holding)
            .values(lifted_at=NOW - timedelta(hours=1), lifted_reason="ops")
        )
    assert verdict() == "allow"


def test_suppressions_events_and_designations_reach_the_engine(accounts: Engine) -> None:
    ident = account_id(accounts, "MA-1")
    with accounts.begin() as connection:
        connection.execute(
            insert(store.suppressions),
            [
                {"channel": "sms", "address": "+16175550101", "reason": "stop",
                 "source": "STOP", "created_at": NOW - timedelta(days=6),
                 "lifted_at": None, "lifted_reason": None},
                {"channel": "email", "address": "ma-1@example.com", "reason": "unsubscribe",
                 "source": "one-click", "created_at": NOW - timedelta(days=5),
                 "lifted_at": NOW - timedelta(days=1), "lifted_reason": "resubscribed"},
                {"channel": "email", "address": "ma-1@example.com", "reason": "bounce",
                 "source": "hard bounce", "created_at": NOW - timedelta(days=9),
                 "lifted_at": None, "lifted_reason": None},
            ],
        )  # fmt: skip
        connection.execute(
            insert(store.compliance_events).values(
                account_id=ident, kind="dispute", occurred_at=NOW - timedelta(days=2),
                source="letter",
            )
        )  # fmt: skip
        connection.execute(
            insert(designated_times),
            [
                {"account_id": ident, "days": "mon,tue", "start_local": time(9),
                 "end_local": time(12), "source": "call", "created_at": NOW,
                 "withdrawn_at": None},
                {"account_id": ident, "days": "sun", "start_local": time(9),
                 "end_local": time(12), "source": "call", "created_at": NOW,
                 "withdrawn_at": NOW},
            ],
        )  # fmt: skip
    record = load(accounts, "MA-1")["MA-1"]
    assert [(e.kind, e.channel) for e in record.events] == [
        ("opt_out", "sms"),
        ("opt_out", "email"),
        ("dispute", None),
        ("opt_in", "email"),
    ]
    assert [(d.days, d.start) for d in record.debtor.inconvenient_times] == [
        (("mon", "tue"), time(9))
    ]
    sms = evaluate(situation(record, "sms", "+16175550101", NOW), RULES)
    assert sms.verdict == "block"
    assert set(sms.codes) == {"CARRIER_STOP_KEYWORD", "POLICY_DISPUTE_HOLD"}
    email = evaluate(situation(record, "email", "ma-1@example.com", NOW), RULES)
    assert email.codes == ["POLICY_DISPUTE_HOLD"]


def add_event(engine: Engine, reference: str, kind: str, **values: Any) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(store.compliance_events).values(
                account_id=account_id(engine, reference), kind=kind,
                occurred_at=values.pop("at", NOW - timedelta(days=1)), source="test", **values,
            )
        )  # fmt: skip


@pytest.mark.parametrize("read", [("MA-1", "MA-2"), ("MA-2",)], ids=["together", "alone"])
def test_what_is_about_the_person_holds_on_their_other_debts(
    accounts: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock,
    read: tuple[str, ...],
) -> None:  # fmt: skip
    """MA-2 is the same person's second debt (MA-1's phone and mailbox). A bankruptcy, a
    medium not to use and a designated time recorded on MA-1 hold for MA-2, read with MA-1
    or alone; a dispute, a cease, an attorney and a consent are about MA-1's debt only."""
    run_import(accounts, write_csv(tmp_path / "b.csv", [row("MA-2", email="ma-1@example.com")]),
               defaults, clock)  # fmt: skip
    for kind, values in [
        ("bankruptcy", {}), ("prohibited_medium", {"channel": "email"}),
        ("opt_out", {"channel": "voice", "address": "+16175550101"}),
        ("dispute", {}), ("cease", {}), ("attorney", {}),
        ("consent", {"channel": "voice", "address": "+16175550101"}),
    ]:  # fmt: skip
        add_event(accounts, "MA-1", kind, **values)
    with accounts.begin() as connection:
        connection.execute(insert(designated_times).values(
            account_id=account_id(accounts, "MA-1"), days="mon", start_local=time(9),
            end_local=time(12), source="call", created_at=NOW, withdrawn_at=None))  # fmt: skip
    second = load(accounts, *read)["MA-2"]
    # (MA-1's opt-out of the shared number reaches MA-2 through the suppression ledger, as
    # replies record it; one recorded on MA-1 alone stays MA-1's.)
    assert sorted(e.kind for e in second.events) == ["bankruptcy", "prohibited_medium"]
    assert [(d.days, d.start) for d in second.debtor.inconvenient_times] == [(("mon",), time(9))]
    decision = evaluate(situation(second, "sms", "+16175550101", NOW), RULES)
    assert decision.verdict == "block" and "BANKRUPTCY_AUTOMATIC_STAY" in decision.codes
    # Once the stay is lifted on MA-1, it is lifted for MA-2; the rest still holds.
    add_event(accounts, "MA-1", "bankruptcy_closed", at=NOW - timedelta(hours=1))
    second = load(accounts, *read)["MA-2"]
    email = evaluate(situation(second, "email", "ma-1@example.com", NOW), RULES)
    assert "BANKRUPTCY_AUTOMATIC_STAY" not in email.codes
    assert "REGF_PROHIBITED_MEDIUM" in email.codes or "EMAIL_UNSUBSCRIBED" in email.codes
    # MA-1's own record is unchanged by MA-2 (which has none of its own).
    first = load(accounts, "MA-1", "MA-2")["MA-1"]
    assert sorted(e.kind for e in first.events) == sorted(
        ["bankruptcy", "prohibited_medium", "opt_out", "dispute", "cease", "attorney", "consent",
         "bankruptcy_closed"]
    )  # fmt: skip


def test_inbound_replies_are_history(accounts: Engine) -> None:
    ident = account_id(accounts, "MA-1")
    with accounts.begin() as connection:
        connection.execute(
            insert(inbox_messages).values(
                account_id=ident, channel="email", from_address="ma-1@example.com",
                to_address="billing@example.org", body="I will pay", direction="inbound",
                status="open", received_at=NOW - timedelta(days=1),
            )
        )  # fmt: skip
    history = load(accounts, "MA-1")["MA-1"].history
    assert [(c.direction, c.channel, c.to) for c in history] == [
        ("inbound", "email", "ma-1@example.com")
    ]


def test_a_work_mailbox_the_debtor_wrote_from_long_ago_may_be_emailed(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """Reg F 1006.22(f)(3): a third party may email an employer's address the debtor used
    to write to it, however long ago: beyond the history read for the caps (40 days ago
    here) the account's own inbound mail from the mailbox, in any case, still counts, and
    the decision's stored scenario says so (``used_by_debtor``) and replays alike. Mail from
    another mailbox, or from this one on another account, does not."""
    work = "pat@employer.example"
    path = write_csv(
        tmp_path / "a.csv",
        [row("TP-1", email=work, email_consent="false", collector_type="third_party",
             email_type="work"),
         row("TP-2", phone="(617) 555-0199", email=work, email_consent="false",
             collector_type="third_party", email_type="work")],
        [*HEADER, "collector_type", "email_type"],
    )  # fmt: skip

    def wrote(reference: str, sender: str, days_ago: int) -> None:
        with engine.begin() as connection:
            connection.execute(
                insert(inbox_messages).values(
                    account_id=account_id(engine, reference), channel="email",
                    from_address=sender, to_address="billing@example.org", body="Email me here",
                    direction="inbound", status="open",
                    received_at=NOW - timedelta(days=days_ago),
                )
            )  # fmt: skip

    def blocked(reference: str) -> bool:
        record = load(engine, reference)[reference]
        return "REGF_EMPLOYER_EMAIL" in evaluate(situation(record, "email", work, NOW), RULES).codes

    run_import(engine, path, defaults, clock)
    wrote("TP-1", "pat@example.net", 40)  # the debtor's own mailbox, not the work one
    wrote("TP-2", work, 40)  # another account's mail
    wrote("TP-1", "Pat@Employer.example", -1)  # stamped ahead of now: not yet
    assert blocked("TP-1")
    wrote("TP-1", "Pat@Employer.example", 40)
    record = load(engine, "TP-1")["TP-1"]
    # The history holds neither the mail 40 days ago (before the caps' look-back) nor the
    # one stamped a day ahead of now (beyond the clock skew allowed: not yet received).
    assert record.history == ()
    assert [(e.address, e.used_by_debtor) for e in record.debtor.emails] == [(work, True)]
    asked = situation(record, "email", work, NOW)
    decision = evaluate(asked, RULES)
    assert "REGF_EMPLOYER_EMAIL" not in decision.codes
    stored = decision_row(record.account_id, decision, asked, stage="plan", decided_at=NOW)
    replayed = evaluate(parse_scenario(stored["input_snapshot"]).situation(), RULES)
    assert (replayed.verdict, replayed.codes) == (decision.verdict, decision.codes)


@pytest.mark.parametrize(
    ("work", "sender"),
    [("ΟΔΟΣ@firma.example", "οδοσ@firma.example"), ("İLKE@firma.example", "i̇lke@firma.example")],
)
def test_a_work_mailbox_written_from_is_matched_with_every_letter_folded(
    engine: Engine,
    tmp_path: Path,
    defaults: ImportDefaults,
    clock: FixedClock,
    work: str,
    sender: str,
) -> None:
    """The sender is the account's mailbox as replies are filed under it (every letter
    folded: "ΟΔΟΣ" lower-cased ends in a final sigma, folded in a plain one): the debtor's
    own mail from it counts, and Reg F lets the work address be emailed."""
    path = write_csv(
        tmp_path / "a.csv",
        [row("TP-1", email=work, email_consent="false", collector_type="third_party",
             email_type="work")],
        [*HEADER, "collector_type", "email_type"],
    )  # fmt: skip
    run_import(engine, path, defaults, clock)
    with engine.begin() as connection:
        connection.execute(
            insert(inbox_messages).values(
                account_id=account_id(engine, "TP-1"), channel="email", from_address=sender,
                to_address="billing@example.org", body="Email me here", direction="inbound",
                status="open", received_at=NOW - timedelta(days=60),
            )
        )  # fmt: skip
    record = load(engine, "TP-1")["TP-1"]
    [email] = record.debtor.emails
    assert email.used_by_debtor
    decision = evaluate(situation(record, "email", email.address, NOW), RULES)
    assert "REGF_EMPLOYER_EMAIL" not in decision.codes


def test_a_batch_reads_the_work_mailboxes_written_from_once_and_by_account(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """One statement for the batch's accounts with a work mailbox, through the accounts'
    index; none for a batch without one (the plan's usual batch)."""
    header = [*HEADER, "email_type"]
    rows = [row("W-1", email_type="work"), row("W-2", email_type="work", phone="(617) 555-0102"),
            row("P-1", email_type="personal", phone="(617) 555-0103")]  # fmt: skip
    run_import(engine, write_csv(tmp_path / "a.csv", rows, header), defaults, clock)
    with statements_run(engine, "FROM inbox_message") as read:
        load(engine, "P-1")
    assert len(read) == 1  # the replies of the look-back, no more
    with statements_run(engine, "FROM inbox_message") as read:
        load(engine, "W-1", "W-2", "P-1")
    assert len(read) == 2
    ever = [one for one in read if "received_at >=" not in one[0]]
    assert len(ever) == 1
    plan = plan_of(engine, *ever[0])
    assert "ix_inbox_message_account" in plan and "ix_inbox_message_status" not in plan, plan


def test_stored_decisions_replay_from_their_snapshot(accounts: Engine) -> None:
    add_attempt(accounts, "MA-1", NOW - timedelta(days=1))
    add_attempt(accounts, "MA-1", NOW - timedelta(days=2))
    record = load(accounts, "MA-1")["MA-1"]
    asked = situation(record, "sms", "+16175550101", NOW)
    decision = evaluate(asked, RULES)
    stored = decision_row(
        record.account_id, decision, asked, stage="plan", decided_at=NOW, step_key="s"
    )
    with accounts.begin() as connection:
        store_decisions(connection, [stored])
    with accounts.connect() as connection:
        saved = connection.execute(select(decisions)).one()
    assert (saved.verdict, saved.stage, saved.ruleset_version) == ("defer", "plan", RULES.version)
    assert saved.not_before == decision.not_before
    assert [r["code"] for r in saved.reasons] == ["MA_2_PER_7_DAYS_PER_DEBT"]
    assert "MA_2_PER_7_DAYS_PER_DEBT:defer" in saved.rules_evaluated
    replayed = evaluate(parse_scenario(saved.input_snapshot).situation(), RULES)
    assert (replayed.verdict, replayed.not_before, replayed.codes) == (
        decision.verdict,
        decision.not_before,
        decision.codes,
    )


def test_a_lift_is_not_shared_and_a_wrong_number_joins_no_one(
    accounts: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """MA-2 shares MA-1's phone. A restriction lifted on its own account is not shared;
    one account's lift never frees another's own restriction; a point marked wrong links
    nothing."""
    run_import(accounts, write_csv(tmp_path / "b.csv", [row("MA-2")]), defaults, clock)
    add_event(accounts, "MA-2", "bankruptcy", at=NOW - timedelta(days=3))
    add_event(accounts, "MA-1", "bankruptcy", at=NOW - timedelta(days=2))
    add_event(accounts, "MA-1", "bankruptcy_closed", at=NOW - timedelta(days=1))
    add_event(accounts, "MA-1", "workplace_allowed", at=NOW - timedelta(days=1))
    records = load(accounts, "MA-1", "MA-2")
    # MA-1's stay is over and not shared; MA-2's own stands, and MA-1's close is not MA-2's.
    assert [e.kind for e in records["MA-2"].events] == ["bankruptcy"]
    sms = evaluate(situation(records["MA-2"], "sms", "+16175550101", NOW), RULES)
    assert "BANKRUPTCY_AUTOMATIC_STAY" in sms.codes
    # MA-2's bankruptcy reaches MA-1 (still in force there), after MA-1's own close.
    first = evaluate(situation(records["MA-1"], "sms", "+16175550101", NOW), RULES)
    assert "BANKRUPTCY_AUTOMATIC_STAY" in first.codes
    # Once MA-2's phone is marked a wrong number, the two are not one person.
    with accounts.begin() as connection:
        connection.execute(
            store.contact_points.update()
            .where(store.contact_points.c.account_id == account_id(accounts, "MA-2"))
            .values(status="wrong_number")
        )
    alone = load(accounts, "MA-1")["MA-1"]
    assert [e.kind for e in alone.events] == [
        "bankruptcy",
        "bankruptcy_closed",
        "workplace_allowed",
    ]


def test_a_lift_on_the_other_account_frees_nothing_shared(
    accounts: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """MA-1 asked not to be texted; MA-2 (same phone) once allowed texts again on its own
    account. The medium stays prohibited for the person on both, until MA-1 allows it."""
    run_import(accounts, write_csv(tmp_path / "b.csv", [row("MA-2")]), defaults, clock)
    add_event(accounts, "MA-1", "prohibited_medium", channel="sms", at=NOW - timedelta(days=2))
    add_event(accounts, "MA-2", "opt_in", channel="sms", at=NOW - timedelta(days=1))
    records = load(accounts, "MA-1", "MA-2")
    for reference in ("MA-1", "MA-2"):
        sms = evaluate(situation(records[reference], "sms", "+16175550101", NOW), RULES)
        assert sms.verdict == "block", (reference, sms.codes)
    add_event(accounts, "MA-1", "opt_in", channel="sms", at=NOW - timedelta(hours=1))
    records = load(accounts, "MA-1", "MA-2")
    for reference in ("MA-1", "MA-2"):
        sms = evaluate(situation(records[reference], "sms", "+16175550101", NOW), RULES)
        assert sms.verdict == "allow", (reference, sms.codes)


@pytest.mark.parametrize("read", [("MA-1", "MA-2"), ("MA-2",)], ids=["together", "alone"])
def test_a_revoked_consent_holds_for_the_persons_other_debts(
    accounts: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock,
    read: tuple[str, ...],
) -> None:  # fmt: skip
    """Revoke-all (47 CFR 64.1200(a)(10)): MA-1's debtor revoked consent to automated
    calls and texts; MA-2, their second debt (same phone), may not robocall or robotext them
    either, whatever MA-2's own consent says, until the consent is given again on MA-1 as
    widely as it was revoked. CA-1, a stranger, is untouched."""
    run_import(accounts, write_csv(tmp_path / "b.csv", [row("MA-2")]), defaults, clock)
    phone = "+16175550101"
    add_event(accounts, "MA-1", "consent_revoked", at=NOW - timedelta(days=3))
    add_event(accounts, "MA-2", "consent", channel="sms", address=phone,
              at=NOW - timedelta(days=2))  # fmt: skip

    def revoked(reference: str, channel: str) -> bool:
        record = load(accounts, *read, reference)[reference]
        address = phone if reference != "CA-1" else "+13105550123"
        return REVOKED in evaluate(situation(record, channel, address, NOW), RULES).codes

    assert (revoked("MA-2", "sms"), revoked("MA-2", "voice")) == (True, True)
    assert not revoked("CA-1", "sms")
    # Consent to texts again on MA-1 leaves calls revoked there, and both for the person.
    add_event(accounts, "MA-1", "consent", channel="sms", address=phone,
              at=NOW - timedelta(days=1))  # fmt: skip
    assert (revoked("MA-1", "sms"), revoked("MA-1", "voice")) == (False, True)
    assert (revoked("MA-2", "sms"), revoked("MA-2", "voice")) == (True, True)
    with accounts.connect() as connection:
        assert held_elsewhere(connection, account_id(accounts, "MA-2"),
                              Lift("consent", "voice", phone), NOW) == ["MA-1"]  # fmt: skip
    # Given again as widely on MA-1, it ends for both; MA-2's own earlier consent to texts
    # counts again, and its calls have their recorded consent.
    add_event(accounts, "MA-1", "consent", at=NOW - timedelta(hours=1))
    assert (revoked("MA-2", "sms"), revoked("MA-2", "voice")) == (False, False)
    with accounts.connect() as connection:
        assert held_elsewhere(connection, account_id(accounts, "MA-2"),
                              Lift("consent", "voice", phone), NOW) == []  # fmt: skip


@pytest.mark.parametrize("read", [("MA-1", "MA-2"), ("MA-2",)], ids=["together", "alone"])
def test_what_keeps_a_revocation_in_force_for_the_person(
    accounts: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock,
    read: tuple[str, ...],
) -> None:  # fmt: skip
    """MA-2 shares MA-1's phone. A revocation of the number's texts covers its robocalls
    (revoke-all), on MA-2 too; a narrower revocation does not replace a wider one; a
    consent stamped ahead of now lifts nothing yet; MA-2's own consent is kept for the
    engine to weigh, the shared revocation marked as recorded elsewhere."""
    run_import(accounts, write_csv(tmp_path / "b.csv", [row("MA-2")]), defaults, clock)
    phone = "+16175550101"

    def revoked(channel: str) -> bool:
        record = load(accounts, *read)["MA-2"]
        return REVOKED in evaluate(situation(record, channel, phone, NOW), RULES).codes

    add_event(accounts, "MA-1", "consent_revoked", channel="sms", address=phone,
              at=NOW - timedelta(days=4))  # fmt: skip
    assert (revoked("sms"), revoked("voice")) == (True, True)
    add_event(accounts, "MA-1", "consent", channel="sms", address=phone,
              at=NOW - timedelta(days=3))  # fmt: skip
    assert (revoked("sms"), revoked("voice")) == (False, False)
    # Everything revoked, then the number's texts, then consent to those texts again:
    # the wider revocation stands.
    add_event(accounts, "MA-1", "consent_revoked", at=NOW - timedelta(days=2))
    add_event(accounts, "MA-1", "consent_revoked", channel="sms", address=phone,
              at=NOW - timedelta(days=1, hours=1))  # fmt: skip
    add_event(accounts, "MA-1", "consent", channel="sms", address=phone,
              at=NOW - timedelta(days=1))  # fmt: skip
    assert (revoked("sms"), revoked("voice")) == (True, True)
    # A consent stamped ahead of now (another clock) does not lift it yet.
    add_event(accounts, "MA-1", "consent", at=NOW + timedelta(minutes=5))
    assert (revoked("sms"), revoked("voice")) == (True, True)
    add_event(accounts, "MA-2", "consent", at=NOW - timedelta(hours=2))
    events = load(accounts, *read)["MA-2"].events
    assert [(e.kind, e.elsewhere) for e in events if e.kind.startswith("consent")] == [
        ("consent_revoked", True), ("consent", False)
    ]  # fmt: skip
    assert (revoked("sms"), revoked("voice")) == (True, True)
    add_event(accounts, "MA-1", "consent", at=NOW - timedelta(hours=1))
    assert (revoked("sms"), revoked("voice")) == (False, False)


@pytest.mark.parametrize("read", [("MA-1", "MA-2"), ("MA-2",)], ids=["together", "alone"])
def test_a_numbers_revoked_consent_holds_where_the_number_is_used(
    accounts: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock,
    read: tuple[str, ...],
) -> None:  # fmt: skip
    """MA-1's debtor revoked consent for their number, then MA-1's file moved to a new
    number: MA-1 and MA-2 no longer share an address, yet MA-2 still texts the old number,
    and the revocation still holds there (found by the number, through its index) until
    consent is given again on MA-1. A revocation naming no number is the person's and went
    with the link."""
    run_import(accounts, write_csv(tmp_path / "b.csv", [row("MA-2")]), defaults, clock)
    phone = "+16175550101"
    add_event(accounts, "MA-1", "consent_revoked", channel="sms", address=phone,
              at=NOW - timedelta(days=4))  # fmt: skip
    add_event(accounts, "MA-1", "consent_revoked", channel="email", at=NOW - timedelta(days=4))
    run_import(accounts, write_csv(tmp_path / "a2.csv", [row("MA-1", phone="(617) 555-0199")]),
               defaults, clock)  # fmt: skip

    def revoked(channel: str) -> bool:
        record = load(accounts, *read)["MA-2"]
        assert [p.number for p in record.debtor.phones] == [phone]
        return REVOKED in evaluate(situation(record, channel, phone, NOW), RULES).codes

    with statements_run(accounts, "FROM compliance_event") as ran:
        assert (revoked("sms"), revoked("voice")) == (True, True)
    by_number = "WHERE compliance_event.address"
    by_address = [plan_of(accounts, *one) for one in ran if by_number in one[0]]
    assert by_address and all("ix_compliance_event_address" in plan for plan in by_address)
    events = load(accounts, *read)["MA-2"].events
    assert [(e.kind, e.channel, e.address, e.elsewhere) for e in events] == [
        ("consent_revoked", "sms", phone, True)
    ]
    # MA-2's own consent does not lift it; the operator is told where it is held.
    add_event(accounts, "MA-2", "consent", at=NOW - timedelta(days=3))
    assert revoked("sms")
    with accounts.connect() as connection:
        assert held_elsewhere(connection, account_id(accounts, "MA-2"),
                              Lift("consent"), NOW) == ["MA-1"]  # fmt: skip
        assert held_elsewhere(connection, account_id(accounts, "MA-2"),
                              Lift("bankruptcy_closed"), NOW) == []  # fmt: skip
        held = held_from_elsewhere(connection, account_id(accounts, "MA-2"), NOW)
        assert [(where, row.kind, row.address) for where, row in held] == [
            ("MA-1", "consent_revoked", phone)
        ]
    # Given again on MA-1, for the number, it ends for MA-2 too.
    add_event(accounts, "MA-1", "consent", channel="sms", address=phone,
              at=NOW - timedelta(days=2))  # fmt: skip
    assert (revoked("sms"), revoked("voice")) == (False, False)
    with accounts.connect() as connection:
        assert held_elsewhere(connection, account_id(accounts, "MA-2"),
                              Lift("consent"), NOW) == []  # fmt: skip


def test_stop_calling_me_texted_from_a_number_revokes_its_consent_wherever_it_is_used(
    accounts: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """A text saying "please stop calling me" from MA-1's number: no calls to the debtor at all
    (1006.14(h)), and, revoke-all, no robocall or robotext to the number, held by the
    number: MA-1 moves to a new number, MA-2 comes with the old one and may not robocall or
    robotext it either. A START from the number gives its texts back, not its robocalls."""
    phone = "+16175550101"
    said = NOW - timedelta(days=3)
    apply_events(accounts, [inbound("Please stop calling me", sender=phone, at=said)], said)
    with accounts.connect() as connection:
        recorded = connection.execute(
            select(store.compliance_events.c.kind, store.compliance_events.c.channel,
                   store.compliance_events.c.address).order_by(store.compliance_events.c.kind)
        ).all()  # fmt: skip
    assert [tuple(r) for r in recorded] == [
        ("consent_revoked", None, phone), ("prohibited_medium", "voice", None),
    ]  # fmt: skip
    run_import(accounts, write_csv(tmp_path / "a2.csv", [row("MA-1", phone="(617) 555-0199")]),
               defaults, clock)  # fmt: skip
    run_import(accounts, write_csv(tmp_path / "b.csv", [row("MA-2", voice_consent="true")]),
               defaults, clock)  # fmt: skip

    def revoked(channel: str) -> bool:
        record = load(accounts, "MA-2")["MA-2"]
        return REVOKED in evaluate(situation(record, channel, phone, NOW), RULES).codes

    assert (revoked("sms"), revoked("voice")) == (True, True)
    start = NOW - timedelta(days=1)
    apply_events(accounts, [inbound("START", sender=phone, key="start", at=start)], start)
    assert (revoked("sms"), revoked("voice")) == (False, True)


def test_stop_calling_me_by_email_revokes_robocalls_and_robotexts_not_email(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """A New York City debtor (email there needs consent, 6 RCNY 5-77) writes by email
    "please stop calling me": no calls; revoke-all, no robotexts either, to any number;
    nothing was said about email, which the debtor is using."""
    run_import(engine, write_csv(tmp_path / "ny.csv", [row("NY-1", jurisdiction="US-NY",
               phone="(212) 555-0101", email="pat@example.com")]), defaults, clock)  # fmt: skip
    with engine.begin() as connection:
        connection.execute(update(store.accounts).values(jurisdiction="US-NY-NYC"))

    def codes(channel: str, to: str) -> list[str]:
        record = load(engine, "NY-1")["NY-1"]
        return evaluate(situation(record, channel, to, NOW), RULES).codes

    assert "NYC_ELECTRONIC_CONSENT_REQUIRED" not in codes("email", "pat@example.com")
    said = NOW - timedelta(days=1)
    mail = event(EventType.REPLIED, provider="sendgrid_email", kind="inbound", at=said,
                 from_address="pat@example.com", body="Please stop calling me.")  # fmt: skip
    apply_events(engine, [mail], said)
    assert codes("email", "pat@example.com") == ["OK"]
    assert REVOKED in codes("sms", "+12125550101")
    assert REVOKED in codes("voice", "+12125550101")


def test_a_numbers_start_counts_where_its_revocation_is_held(
    accounts: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """MA-1 recorded the number's revocation and then its START (CTIA C-7: the number's
    own consent to texts again); MA-2, using the number after MA-1 moved, holds both."""
    phone = "+16175550101"
    add_event(accounts, "MA-1", "consent_revoked", channel="sms", address=phone,
              at=NOW - timedelta(days=5))  # fmt: skip
    add_event(accounts, "MA-1", "opt_in", channel="sms", address=phone,
              at=NOW - timedelta(days=4))  # fmt: skip
    run_import(accounts, write_csv(tmp_path / "a2.csv", [row("MA-1", phone="(617) 555-0199")]),
               defaults, clock)  # fmt: skip
    run_import(accounts, write_csv(tmp_path / "b.csv", [row("MA-2")]), defaults, clock)
    record = load(accounts, "MA-2")["MA-2"]
    assert [(e.kind, e.elsewhere) for e in record.events] == [
        ("consent_revoked", True), ("opt_in", False),
    ]  # fmt: skip
    assert REVOKED not in evaluate(situation(record, "sms", phone, NOW), RULES).codes


def test_what_holds_from_elsewhere_is_only_what_bears_on_the_account(
    accounts: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """MA-2 shares MA-1's mailbox, not its number: MA-1's revocation of its number does
    not bear on MA-2, its revocation of everything does."""
    run_import(accounts, write_csv(tmp_path / "b.csv",
               [row("MA-2", email="ma-1@example.com", phone="(617) 555-0177")]),
               defaults, clock)  # fmt: skip
    add_event(accounts, "MA-1", "consent_revoked", channel="sms", address="+16175550101",
              at=NOW - timedelta(days=5))  # fmt: skip
    with accounts.connect() as connection:
        assert held_from_elsewhere(connection, account_id(accounts, "MA-2"), NOW) == []
    add_event(accounts, "MA-1", "consent_revoked", at=NOW - timedelta(days=4))
    with accounts.connect() as connection:
        held = held_from_elsewhere(connection, account_id(accounts, "MA-2"), NOW)
    assert [(where, row.address) for where, row in held] == [("MA-1", None)]


def test_an_own_lift_before_a_shared_restriction_is_kept(
    accounts: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """MA-2's own leave to contact it at work came before MA-1's word that work is
    inconvenient: it is kept in MA-2's record (it lifts nothing later), MA-1's later one
    dropped only where it would end what MA-1 holds."""
    run_import(accounts, write_csv(tmp_path / "b.csv", [row("MA-2")]), defaults, clock)
    add_event(accounts, "MA-2", "workplace_convenient", at=NOW - timedelta(days=3))
    add_event(accounts, "MA-1", "workplace_inconvenient", at=NOW - timedelta(days=2))
    add_event(accounts, "MA-2", "workplace_convenient", at=NOW - timedelta(days=1))
    events = load(accounts, "MA-2")["MA-2"].events
    assert [(e.kind, e.at, e.elsewhere) for e in events] == [
        ("workplace_convenient", NOW - timedelta(days=3), False),
        ("workplace_inconvenient", NOW - timedelta(days=2), True),
    ]


def test_an_opt_out_without_a_channel_of_a_mailbox_in_another_case_holds(
    accounts: Engine,
) -> None:
    add_event(accounts, "MA-1", "opt_out", address="MA-1@Example.com")
    record = load(accounts, "MA-1")["MA-1"]
    email = evaluate(situation(record, "email", "ma-1@example.com", NOW), RULES)
    assert email.verdict == "block" and "EMAIL_UNSUBSCRIBED" in email.codes


def test_the_workplace_the_debtor_said_is_inconvenient_holds_for_the_person(
    accounts: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """MA-1's debtor said not to be contacted at work; MA-2 shares the phone. The request is
    about the person, so MA-2 holds it too, until MA-1's debtor agrees again. The
    employer's leave (another fact) does not lift it."""
    run_import(accounts, write_csv(tmp_path / "b.csv", [row("MA-2")]), defaults, clock)
    add_event(accounts, "MA-1", "workplace_inconvenient", at=NOW - timedelta(days=2))
    add_event(accounts, "MA-2", "workplace_allowed", at=NOW - timedelta(days=1))
    records = load(accounts, "MA-1", "MA-2")
    assert [e.kind for e in records["MA-2"].events] == [
        "workplace_inconvenient",
        "workplace_allowed",
    ]
    # Read alone, MA-1 is outside the batch: its events are read for the person.
    assert [e.kind for e in load(accounts, "MA-2")["MA-2"].events] == [
        "workplace_inconvenient",
        "workplace_allowed",
    ]
    add_event(accounts, "MA-1", "workplace_convenient", at=NOW - timedelta(hours=1))
    records = load(accounts, "MA-1", "MA-2")
    assert [e.kind for e in records["MA-2"].events] == ["workplace_allowed"]
    assert [e.kind for e in load(accounts, "MA-2")["MA-2"].events] == ["workplace_allowed"]


def _held_elsewhere(engine: Engine, reference: str, lift: Lift) -> list[str]:
    with engine.connect() as connection:
        return held_elsewhere(connection, account_id(engine, reference), lift, NOW)


def _loans(engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock) -> None:
    """SL-1 and SL-2: student loans serviced under LN-77 (written two ways), a number and a
    mailbox each; SL-3 is not a student loan. Third-party collection in New Jersey (Reg F's
    caps only)."""
    from tests.test_import_accounts import HEADER

    loan = {"jurisdiction": "US-NJ", "collector_type": "third_party", "voice_consent": "true"}
    rows = [
        row("SL-1", phone="(201) 555-0101", servicer_account_no="LN-77", **loan),
        row("SL-2", phone="(201) 555-0102", servicer_account_no=" ln 77 ", **loan),
        row("SL-3", phone="(201) 555-0103", servicer_account_no="", **loan),
    ]
    path = write_csv(tmp_path / "loans.csv", rows, [*HEADER, "collector_type",
                                                    "servicer_account_no"])  # fmt: skip
    run_import(engine, path, defaults, clock)


def test_the_migration_spells_stored_servicer_numbers_as_the_import_does(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    _loans(engine, tmp_path, defaults, clock)
    command.downgrade(alembic_config(engine), "0021")
    written = {"SL-1": " ln-77", "SL-2": "LN 77", "SL-3": "--"}
    with engine.begin() as connection:
        for reference, number in written.items():
            connection.execute(
                store.accounts.update()
                .where(store.accounts.c.reference == reference)
                .values(servicer_account_no=number)
            )
    upgrade(engine)
    with engine.connect() as connection:
        found = dict(
            connection.execute(
                select(store.accounts.c.reference, store.accounts.c.servicer_account_no)
            ).all()
        )
    assert found == {"SL-1": "LN77", "SL-2": "LN77", "SL-3": None}


@pytest.mark.parametrize("read", [("SL-2",), ("SL-1", "SL-2")], ids=["alone", "together"])
def test_a_conversation_about_one_student_loan_bars_calls_about_the_others(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock,
    read: tuple[str, ...],
) -> None:  # fmt: skip
    """One debt: the conversation recorded on SL-1 yesterday starts the 7-day bar for SL-2,
    not for SL-3; what SL-1 holds about the person is named where an agent lifts it."""
    _loans(engine, tmp_path, defaults, clock)
    add_event(engine, "SL-1", "conversation", channel="voice")
    add_event(engine, "SL-1", "workplace_inconvenient")
    records = load(engine, *read, "SL-3")
    second = evaluate(situation(records["SL-2"], "voice", "+12015550102", NOW,
                                automated=False), RULES)  # fmt: skip
    assert second.codes == ["REGF_7IN7_POST_CONVERSATION"], second.codes
    other = evaluate(situation(records["SL-3"], "voice", "+12015550103", NOW,
                               automated=False), RULES)  # fmt: skip
    assert other.allowed, other.codes
    assert _held_elsewhere(engine, "SL-2", Lift("workplace_convenient")) == ["SL-1"]


def test_student_loans_serviced_under_one_number_are_one_debt(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """Reg F 1006.14(b)(4): the student loans serviced under one account number when
    obtained are one particular debt, so seven calls about one of them in seven days hold
    back a call about another, whatever number each was placed to. A debt that is not one
    of them keeps its own count."""
    _loans(engine, tmp_path, defaults, clock)
    for days in range(7):  # one call a day, today's two hours ago
        add_attempt(engine, "SL-1", NOW - timedelta(days=days, hours=2), "delivered",
                    channel="voice", to_address="+12015550101")  # fmt: skip
        add_attempt(engine, "SL-3", NOW - timedelta(days=days, hours=2), "delivered",
                    channel="voice", to_address="+12015550103")  # fmt: skip
    records = load(engine, "SL-2", "SL-3")
    debt = "student loans serviced under LN77"
    assert records["SL-2"].debt == debt and records["SL-3"].debt == "SL-3"
    assert {c.debts for c in records["SL-2"].history} == {(debt,)}
    call = evaluate(situation(records["SL-2"], "voice", "+12015550102", NOW,
                              automated=False), RULES)  # fmt: skip
    assert call.codes == ["REGF_7IN7_CALL_CAP"], call.codes
    assert debt in call.reasons[0].detail
    # SL-3's own seven calls hold SL-3 back, not SL-2; SL-1's calls are not SL-3's debt.
    own = evaluate(situation(records["SL-3"], "voice", "+12015550103", NOW,
                             automated=False), RULES)  # fmt: skip
    assert own.codes == ["REGF_7IN7_CALL_CAP"]
    assert "debt SL-3" in own.reasons[0].detail


def test_accounts_linked_through_another_are_one_person(
    accounts: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """MA-2 shares MA-1's phone, MA-3 shares MA-2's mailbox only: three debts of one person.
    MA-1's bankruptcy holds for MA-3, read alone or with the others; MA-3's contacts count
    for MA-1's caps per debtor. A wrong number breaks the chain."""
    run_import(accounts, write_csv(tmp_path / "b.csv", [
        row("MA-2", email="pat@example.com"),
        row("MA-3", phone="(617) 555-0133", email="pat@example.com"),
    ]), defaults, clock)  # fmt: skip
    add_event(accounts, "MA-1", "bankruptcy", at=NOW - timedelta(days=1))
    add_attempt(accounts, "MA-3", NOW - timedelta(hours=3), to_address="+16175550133")
    for read in (("MA-3",), ("MA-1", "MA-2", "MA-3"), ("MA-1", "MA-3")):
        records = load(accounts, *read)
        assert [e.kind for e in records["MA-3"].events] == ["bankruptcy"], read
    first = load(accounts, "MA-1")["MA-1"]
    assert [c.debts for c in first.history] == [("MA-3",)]
    with accounts.begin() as connection:
        connection.execute(
            store.contact_points.update()
            .where(store.contact_points.c.account_id == account_id(accounts, "MA-2"),
                   store.contact_points.c.channel != "email")
            .values(status="wrong_number")
        )  # fmt: skip
    assert load(accounts, "MA-3")["MA-3"].events == ()


def test_where_the_persons_other_accounts_say_they_live_is_weighed_on_each(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """MA-1 and MA-2 (Boston) and CA-1 (Los Angeles) share a phone; TX-1, in Texas with no
    zone of its own, shares MA-1's mailbox in another case. One person, who may be in any
    of those places (comment 6(b)(1)(i)-1): each account weighs the zones the others name,
    read alone or together, but for those its own address gives. LONE shares nothing and
    is read as before. At 08:05 in Boston MA-1's text waits for 08:00 in Los Angeles."""
    run_import(engine, write_csv(tmp_path / "a.csv", [
        row("MA-1", email="pat@example.com"),
        row("MA-2"),
        row("CA-1", jurisdiction="US-CA", timezone="America/Los_Angeles"),
        row("TX-1", jurisdiction="US-TX", phone="(214) 555-0199", email="Pat@Example.com"),
        row("LONE", phone="(617) 555-0199"),
    ]), defaults, clock)  # fmt: skip
    east, west = "America/New_York", "America/Los_Angeles"
    texas = {"America/Chicago", "America/Denver"}
    expected = {
        "MA-1": {west, *texas},
        "MA-2": {west, *texas},
        "CA-1": {east, *texas},
        "TX-1": {east, west},
        "LONE": set(),
    }
    together = load(engine, *expected)
    for reference, zones in expected.items():
        alone = load(engine, reference)[reference].debtor
        assert set(alone.other_timezones) == zones, reference
        assert together[reference].debtor.other_timezones == alone.other_timezones, reference
    lone = together["LONE"].debtor
    assert (lone.timezone, lone.other_timezones) == (east, ())

    at = datetime(2026, 11, 2, 13, 5, tzinfo=UTC)  # 08:05 in Boston, 05:05 in Los Angeles
    boston = evaluate(situation(load(engine, "MA-1", now=at)["MA-1"], "sms", PHONE, at), RULES)
    assert (boston.verdict, boston.not_before) == ("defer", datetime(2026, 11, 2, 16, tzinfo=UTC))
    assert (west, "other location signal") in boston.zones
    alone = evaluate(situation(load(engine, "LONE", now=at)["LONE"], "sms", "+16175550199", at),
                     RULES)  # fmt: skip
    assert alone.verdict == "allow", alone.reasons


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Élodie.Durand@example.com", "élodie.durand@example.com"),
        ("élodie.durand@example.com", "ÉLODIE.DURAND@example.com"),
        # More letters beyond ASCII than SQLite's spellings are listed for.
        ("Иван.Петров@example.com", "иван.петров@example.com"),
        # Written alike, with letters the databases' lower() and Python's fold apart.
        ("ΟΔΟΣ@example.com", "ΟΔΟΣ@example.com"),
        ("İpek@example.com", "İpek@example.com"),
    ],
)
def test_a_mailbox_in_another_case_beyond_ascii_links_its_accounts(
    accounts: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock,
    first: str, second: str,
) -> None:  # fmt: skip
    """Two debts whose mailboxes differ only in the case of a letter beyond ASCII are one
    person's, read together or each alone (SQLite's lower() folds ASCII letters only)."""
    run_import(accounts, write_csv(tmp_path / "b.csv", [
        row("MA-2", email=first),
        row("MA-3", phone="(617) 555-0133", email=second),
    ]), defaults, clock)  # fmt: skip
    with accounts.begin() as connection:
        connection.execute(
            store.contact_points.update()
            .where(store.contact_points.c.account_id == account_id(accounts, "MA-2"),
                   store.contact_points.c.channel != "email")
            .values(status="wrong_number")
        )  # fmt: skip
    add_event(accounts, "MA-2", "bankruptcy", at=NOW - timedelta(days=1))
    for read in (("MA-3",), ("MA-2", "MA-3")):
        assert [e.kind for e in load(accounts, *read)["MA-3"].events] == ["bankruptcy"], read
    add_event(accounts, "MA-3", "bankruptcy", at=NOW - timedelta(days=1))
    assert [e.kind for e in load(accounts, "MA-2")["MA-2"].events] == ["bankruptcy"] * 2


def test_mailboxes_beyond_ascii_are_searched_for_a_batch_at_once(
    accounts: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """A batch whose debtors write their mailboxes with an "é" costs the queries an ASCII
    batch does (PostgreSQL: one more, to lower-case them), not one a mailbox."""
    plain = [row(f"A-{i}", phone=f"(617) 555-{1000 + i}", email=f"a{i}@example.com")
             for i in range(30)]  # fmt: skip
    accented = [row(f"E-{i}", phone=f"(617) 556-{1000 + i}", email=f"Élodie{i}@example.com")
                for i in range(30)]  # fmt: skip
    run_import(accounts, write_csv(tmp_path / "b.csv", plain + accented), defaults, clock)

    def queries(references: list[str]) -> int:
        with statements_run(accounts) as seen:
            load(accounts, *references)
        return sum("FROM contact_point" in statement for statement, _ in seen)

    ascii_only = queries([r["reference"] for r in plain])
    assert queries([r["reference"] for r in accented]) == ascii_only


def test_a_switchboard_links_its_accounts_directly_and_no_further(
    accounts: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """MA-F shares a number with MA-G, whose other number is an office line eleven
    accounts share. MA-G's debts are MA-F's person's; the office's other accounts are not
    (their bankruptcy is not MA-F's), whether MA-F is read alone or with one of them. An
    account with the office line is linked to the office's accounts directly, as before."""
    office = [row(f"OF-{n}", phone="(617) 555-0199", email=f"of{n}@example.com")
              for n in range(10)]  # fmt: skip
    run_import(accounts, write_csv(tmp_path / "b.csv", [
        row("MA-F", phone="(617) 555-0155", email="f@example.com"),
        row("MA-G", phone="(617) 555-0155", email="g@example.com"),
        *office,
    ]), defaults, clock)  # fmt: skip
    with accounts.begin() as connection:
        connection.execute(insert(store.contact_points).values(
            account_id=account_id(accounts, "MA-G"), channel="voice", address="+16175550199",
            kind="work", priority=1, consent=True, consent_source="test", consent_at=NOW,
            status="active", created_at=NOW, updated_at=NOW))  # fmt: skip
    add_event(accounts, "OF-3", "bankruptcy")
    add_event(accounts, "MA-G", "prohibited_medium", channel="email")
    for read in (("MA-F",), ("MA-F", "OF-1")):
        records = load(accounts, *read)
        assert [e.kind for e in records["MA-F"].events] == ["prohibited_medium"], read
    # The office line's own accounts are linked to each other (and to MA-G) directly.
    assert sorted(e.kind for e in load(accounts, "OF-1")["OF-1"].events) == [
        "bankruptcy", "prohibited_medium"
    ]  # fmt: skip


def test_another_account_gives_the_zones_the_engine_weighs_for_it(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """MA-1 (Boston) and FL-1 (Miami: America/New_York, a zone of Florida's) share a phone.
    FL-1 is decided on New York's clock alone, and so MA-1 weighs no more of it: not the
    panhandle's Central time, which nothing says the debtor keeps. Both accounts are texted
    at 08:30 in New York."""
    run_import(engine, write_csv(tmp_path / "a.csv", [
        row("MA-1"),
        row("FL-1", jurisdiction="US-FL", timezone="America/New_York"),
    ]), defaults, clock)  # fmt: skip
    at = datetime(2026, 11, 2, 13, 30, tzinfo=UTC)  # 08:30 in New York, 07:30 in Chicago
    found = load(engine, "MA-1", "FL-1", now=at)
    assert found["MA-1"].debtor.other_timezones == ()
    for reference in ("MA-1", "FL-1"):
        decided = evaluate(situation(found[reference], "sms", PHONE, at), RULES)
        assert decided.verdict == "allow", (reference, decided.reasons)


def test_a_switchboards_accounts_do_not_say_where_each_other_lives(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """Eleven accounts across the country give an office line: each is still linked to the
    others directly (their restrictions are shared), but where one of them lives says
    nothing of where another does: no zone is weighed from the office's other accounts, so
    an account in Boston keeps Boston's hours. A phone two accounts share still does."""
    office = [row(f"OF-{n}", phone="(617) 555-0199", email=f"of{n}@example.com",
                  jurisdiction="US-CA", timezone="America/Los_Angeles")
              for n in range(10)]  # fmt: skip
    run_import(engine, write_csv(tmp_path / "b.csv", [
        row("MA-O", phone="(617) 555-0199", email="o@example.com"),
        *office,
        row("MA-P", phone="(617) 555-0155", email="p@example.com"),
        row("CA-P", phone="(617) 555-0155", email="q@example.com", jurisdiction="US-CA",
            timezone="America/Los_Angeles"),
    ]), defaults, clock)  # fmt: skip
    for read in (("MA-O",), ("MA-O", "OF-1")):
        assert load(engine, *read)["MA-O"].debtor.other_timezones == (), read
    assert load(engine, "MA-P")["MA-P"].debtor.other_timezones == ("America/Los_Angeles",)


def test_a_long_chain_is_one_person_from_either_end(
    accounts: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """Five accounts in a chain (each shares one address with the next): one person, the
    same whichever of them is read, alone or with another."""
    chain = [row("CH-1", phone="(617) 555-0161", email="c1@example.com")] + [
        row(f"CH-{n}", phone=f"(617) 555-016{n - (n % 2 == 0)}",
            email=f"c{n - (n % 2)}@example.com")
        for n in range(2, 6)
    ]  # fmt: skip
    run_import(accounts, write_csv(tmp_path / "b.csv", chain), defaults, clock)
    add_event(accounts, "CH-5", "bankruptcy")
    for read in (("CH-1",), ("CH-1", "CH-3"), ("CH-1", "CH-5")):
        assert [e.kind for e in load(accounts, *read)["CH-1"].events] == ["bankruptcy"], read


def test_a_student_loan_links_its_debtor_through_its_servicer_number(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """A-1 shares SL-1's number; SL-1 and SL-2 are loans of one servicer account: SL-2's
    bankruptcy holds for A-1 too, and an agent lifting something on A-1 is told of SL-2."""
    _loans(engine, tmp_path, defaults, clock)
    run_import(engine, write_csv(tmp_path / "a.csv", [row("A-1", phone="(201) 555-0101")]),
               defaults, clock)  # fmt: skip
    add_event(engine, "SL-2", "bankruptcy")
    add_event(engine, "SL-2", "workplace_inconvenient")
    for read in (("A-1",), ("A-1", "SL-1")):
        assert sorted(e.kind for e in load(engine, *read)["A-1"].events) == [
            "bankruptcy", "workplace_inconvenient"
        ], read  # fmt: skip
    assert _held_elsewhere(engine, "A-1", Lift("workplace_convenient")) == ["SL-2"]


def test_a_servicer_number_links_its_loans_however_many_there_are(
    engine: Engine, tmp_path: Path, defaults: ImportDefaults, clock: FixedClock
) -> None:
    """Twelve loans under one servicer number are one debt, not a switchboard: a card that
    shares a number with one of them is the same person as all of them."""
    from tests.test_import_accounts import HEADER

    loans = [row(f"SL-{n}", phone=f"(201) 555-01{n:02d}", servicer_account_no="LN-77")
             for n in range(12)]  # fmt: skip
    card = row("CARD", phone="(201) 555-0100")
    path = write_csv(tmp_path / "loans.csv", [*loans, card], [*HEADER, "servicer_account_no"])
    run_import(engine, path, defaults, clock)
    add_event(engine, "SL-5", "bankruptcy")
    for read in (("CARD",), ("CARD", "SL-0")):
        assert [e.kind for e in load(engine, *read)["CARD"].events] == ["bankruptcy"], read
