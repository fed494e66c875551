"""Applying provider events on every backend: stored once, status forward only, unknown
messages kept, call outcomes, and what status events say about an address."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy import event as sqlalchemy_event

from outreach.clock import FixedClock
from outreach.compliance.rules import load_ruleset
from outreach.compliance_store import load_debtors
from outreach.config import Settings
from outreach.events import EventPolicy, Incoming, apply_batch, apply_events, provider_events
from outreach.providers.base import IDENTITY_CHECK, EventType, ProviderEvent
from outreach.providers.outbox import Outbox
from outreach.store import accounts, compliance_events, contact_points, suppressions
from tests.conftest import NOW, REPO
from tests.eventdata import (
    EMAIL,
    PHONE,
    add_account,
    add_attempt,
    attempt,
    count,
    event,
    rows,
)
from tests.query_plans import statements_run


def test_status_only_moves_forward_and_a_late_sent_changes_nothing(engine: Engine) -> None:
    attempt_id = add_attempt(engine, add_account(engine))
    delivered = event(EventType.DELIVERED, provider_message_id="SM0001", outcome="delivered")
    late_sent = event(EventType.SENT, provider_message_id="SM0001")
    apply_events(engine, [delivered], NOW)
    apply_events(engine, [late_sent], NOW + timedelta(seconds=1))
    row = attempt(engine, attempt_id)
    assert (row.status, row.outcome) == ("delivered", "delivered")
    assert count(engine, provider_events) == 2


def test_the_same_event_twice_is_stored_once_in_one_batch_and_across_batches(
    engine: Engine,
) -> None:
    add_attempt(engine, add_account(engine))
    delivered = event(EventType.DELIVERED, provider_message_id="SM0001", key="SM0001:delivered")
    first = apply_events(engine, [delivered, delivered], NOW)
    second = apply_events(engine, [delivered], NOW)
    assert [r.stored for r in first.results] == [True, False]
    assert (second.stored, second.duplicates) == (0, 1)
    assert count(engine, provider_events) == 1


def test_a_retried_request_is_known_by_its_token_even_with_another_key(engine: Engine) -> None:
    add_attempt(engine, add_account(engine))
    once = event(EventType.DELIVERED, provider_message_id="SM0001", key="a")
    again = event(EventType.DELIVERED, provider_message_id="SM0001", key="b")
    with engine.begin() as connection:
        first = apply_batch(connection, [Incoming(once, "token-1")], NOW)
    with engine.begin() as connection:
        retried = apply_batch(connection, [Incoming(again, "token-1")], NOW)
    with engine.begin() as connection:
        other = apply_batch(connection, [Incoming(again, "token-2")], NOW)
    assert [first[0].stored, retried[0].stored, other[0].stored] == [True, False, True]
    stored = rows(engine, provider_events)
    assert [row.request_token for row in stored] == ["token-1", "token-2"]


def test_a_repeated_receipt_looks_up_no_answer(engine: Engine) -> None:
    """Only what a debtor wrote is ever answered: a repeated delivery receipt (most of the
    duplicates a provider sends) costs no lookup of an earlier answer."""
    add_attempt(engine, add_account(engine))
    delivered = event(EventType.DELIVERED, provider_message_id="SM0001", key="d")
    apply_events(engine, [delivered], NOW)
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    sqlalchemy_event.listen(engine, "before_cursor_execute", seen)
    try:
        with engine.begin() as connection:
            again = apply_batch(connection, [Incoming(delivered, "token-9")], NOW)
    finally:
        sqlalchemy_event.remove(engine, "before_cursor_execute", seen)
    assert [(r.stored, r.answer) for r in again] == [(False, None)]
    assert not [s for s in statements if "answer" in s and s.lstrip().startswith("SELECT")]


def test_an_event_for_an_unknown_message_is_kept(engine: Engine) -> None:
    result = apply_events(engine, [event(EventType.DELIVERED, provider_message_id="SMnone")], NOW)
    assert result.stored == 1
    (row,) = rows(engine, provider_events)
    assert (row.attempt_id, row.account_id, row.provider_message_id) == (None, None, "SMnone")
    assert row.payload == {"test": row.payload["test"]}


def test_events_find_their_attempt_by_our_id_or_the_providers(engine: Engine) -> None:
    account_id = add_account(engine)
    by_id = add_attempt(engine, account_id, message_id=None, status="sending")
    by_message = add_attempt(engine, account_id, message_id="SM0002")
    apply_events(
        engine,
        [
            event(EventType.SENT, attempt_id=by_id, provider_message_id="SM0001"),
            event(EventType.DELIVERED, provider_message_id="SM0002"),
        ],
        NOW,
    )
    assert (attempt(engine, by_id).status, attempt(engine, by_id).provider_message_id) == (
        "sent",
        "SM0001",
    )
    assert attempt(engine, by_message).status == "delivered"
    assert {row.account_id for row in rows(engine, provider_events)} == {account_id}


def test_unknown_attempts_are_resolved_by_the_providers_word(engine: Engine) -> None:
    attempt_id = add_attempt(engine, add_account(engine), status="unknown")
    apply_events(engine, [event(EventType.SENT, provider_message_id="SM0001")], NOW)
    assert attempt(engine, attempt_id).status == "sent"


def test_call_outcomes_reach_the_compliance_history(engine: Engine) -> None:
    account_id = add_account(engine)
    spoke = add_attempt(engine, account_id, channel="voice", message_id="CA01")
    missed = add_attempt(engine, account_id, channel="voice", message_id="CA02")
    apply_events(
        engine,
        [
            event(EventType.ANSWERED_HUMAN, provider="twilio_voice", kind="twiml",
                  provider_message_id="CA01"),
            event(EventType.COMPLETED, provider="twilio_voice", kind="call_status",
                  provider_message_id="CA01", outcome="conversation"),
            event(EventType.NO_ANSWER, provider="twilio_voice", kind="call_status",
                  provider_message_id="CA02", outcome="no_answer"),
        ],
        NOW,
    )  # fmt: skip
    assert (attempt(engine, spoke).status, attempt(engine, spoke).outcome) == (
        "delivered",
        "conversation",
    )
    assert (attempt(engine, missed).status, attempt(engine, missed).outcome) == (
        "undelivered",
        "no_answer",
    )
    with engine.connect() as connection:
        row = connection.execute(select(accounts).where(accounts.c.id == account_id)).one()
        record = load_debtors(
            connection, [row], NOW, load_ruleset().lookback_days, "US", rules=load_ruleset()
        )
    outcomes = sorted(contact.outcome for contact in record[account_id].history)
    assert outcomes == ["conversation", "no_answer"]


def test_failed_status_keeps_its_error_code(engine: Engine) -> None:
    attempt_id = add_attempt(engine, add_account(engine))
    apply_events(
        engine,
        [event(EventType.UNDELIVERED, provider_message_id="SM0001", error_code="30007")],
        NOW,
    )
    assert (attempt(engine, attempt_id).status, attempt(engine, attempt_id).error_code) == (
        "undelivered",
        "30007",
    )


def test_error_21610_suppresses_the_number_and_cites_the_event(engine: Engine) -> None:
    account_id = add_account(engine)
    add_attempt(engine, account_id)
    apply_events(
        engine,
        [event(EventType.FAILED, provider_message_id="SM0001", to_address=PHONE,
               error_code="21610", suppression="stop", raw_status="failed")],
        NOW,
    )  # fmt: skip
    (suppression,) = rows(engine, suppressions)
    (stored,) = rows(engine, provider_events)
    assert (suppression.channel, suppression.address, suppression.reason) == ("sms", PHONE, "stop")
    assert suppression.provider_event_id == stored.id
    assert [e.kind for e in rows(engine, compliance_events, account_id=account_id)] == ["opt_out"]


def test_email_events_suppress_the_address_for_what_they_say(engine: Engine) -> None:
    account_id = add_account(engine)
    ids = {
        name: add_attempt(engine, account_id, channel="email", to=EMAIL, message_id=f"sg-{name}")
        for name in ("bounce", "blocked", "spam", "unsub", "group", "dropped")
    }
    apply_events(
        engine,
        [
            event(EventType.BOUNCED, provider="sendgrid_email", kind="event_webhook",
                  provider_message_id="sg-bounce", to_address=EMAIL.lower(),
                  suppression="bounce", contact_status="invalid"),
            event(EventType.UNDELIVERED, provider="sendgrid_email", kind="event_webhook",
                  provider_message_id="sg-blocked", to_address=EMAIL.lower()),
            event(EventType.COMPLAINED, provider="sendgrid_email", kind="event_webhook",
                  provider_message_id="sg-spam", to_address=EMAIL.lower(),
                  suppression="complaint"),
            event(EventType.UNSUBSCRIBED, provider="sendgrid_email", kind="event_webhook",
                  attempt_id=ids["unsub"], to_address=EMAIL.lower(), suppression="unsubscribe"),
            event(EventType.DROPPED, provider="sendgrid_email", kind="event_webhook",
                  provider_message_id="sg-dropped", to_address=EMAIL.lower(),
                  suppression="invalid"),
        ],
        NOW,
    )  # fmt: skip
    found = {(row.address, row.reason) for row in rows(engine, suppressions)}
    # The ledger spells email addresses in lower case, whatever case they came in.
    mailbox = EMAIL.lower()
    assert found == {(mailbox, "bounce"), (mailbox, "complaint"), (mailbox, "unsubscribe"),
                     (mailbox, "invalid")}  # fmt: skip
    (email_point,) = rows(engine, contact_points, channel="email")
    assert email_point.status == "invalid"
    kinds = sorted(e.kind for e in rows(engine, compliance_events, account_id=account_id))
    assert kinds == ["opt_out", "opt_out"]  # the complaint and the unsubscribe


def test_a_bounce_locks_the_accounts_before_marking_their_address(engine: Engine) -> None:
    """Accounts before their contact points, as an import locks them: the other order would
    wait in a circle with an import of the account (PostgreSQL; SQLite has one writer)."""
    account_id = add_account(engine)
    add_attempt(engine, account_id, channel="email", to=EMAIL, message_id="sg-bounce")
    with statements_run(engine) as seen:
        apply_events(
            engine,
            [event(EventType.BOUNCED, provider="sendgrid_email", kind="event_webhook",
                   provider_message_id="sg-bounce", to_address=EMAIL.lower(),
                   suppression="bounce", contact_status="invalid")],
            NOW,
        )  # fmt: skip
    (email_point,) = rows(engine, contact_points, channel="email")
    assert email_point.status == "invalid"
    if engine.dialect.name == "postgresql":
        statements = [statement for statement, _ in seen]
        locked = [i for i, s in enumerate(statements)
                  if "FROM account " in s and "FOR NO KEY UPDATE" in s]  # fmt: skip
        marked = [i for i, s in enumerate(statements) if s.startswith("UPDATE contact_point")]
        assert locked and marked and locked[0] < marked[0], statements


def test_an_opt_in_lifts_the_unsubscribe_but_not_a_bounce(engine: Engine) -> None:
    account_id = add_account(engine)
    add_attempt(engine, account_id, channel="email", to=EMAIL, message_id="sg-1")
    common: dict[str, Any] = {
        "provider": "sendgrid_email", "kind": "event_webhook", "to_address": EMAIL,
    }  # fmt: skip
    apply_events(
        engine,
        [
            event(EventType.UNSUBSCRIBED, suppression="unsubscribe", **common),
            event(EventType.BOUNCED, suppression="bounce", **common),
        ],
        NOW,
    )
    later = NOW + timedelta(hours=1)
    apply_events(engine, [event(EventType.OPTED_IN, at=later, **common)], later)
    state = {row.reason: row.lifted_at for row in rows(engine, suppressions)}
    assert state == {"unsubscribe": NOW + timedelta(hours=1), "bounce": None}
    kinds = [e.kind for e in rows(engine, compliance_events, account_id=account_id)]
    assert kinds == ["opt_out", "opt_in"]


def test_a_one_click_unsubscribe_names_only_the_attempt(engine: Engine) -> None:
    account_id = add_account(engine)
    attempt_id = add_attempt(engine, account_id, channel="email", to=EMAIL, message_id="sg-1")
    apply_events(
        engine,
        [event(EventType.UNSUBSCRIBED, provider="sendgrid_email", kind="unsubscribe",
               attempt_id=attempt_id, suppression="unsubscribe", raw_status="one-click")],
        NOW,
    )  # fmt: skip
    (suppression,) = rows(engine, suppressions)
    assert (suppression.channel, suppression.address) == ("email", EMAIL.lower())
    assert suppression.source == "sendgrid_email unsubscribe one-click"


def _one_click(attempt_id: int, at: datetime) -> ProviderEvent:
    """A one-click unsubscribe POSTed at ``at``, as the SendGrid provider reads it."""
    return event(EventType.UNSUBSCRIBED, provider="sendgrid_email", kind="unsubscribe",
                 key=f"one-click:{attempt_id}:{at.isoformat()}", at=at, channel="email",
                 attempt_id=attempt_id, suppression="unsubscribe",
                 raw_status="one-click")  # fmt: skip


def _resubscribe(attempt_id: int, at: datetime) -> ProviderEvent:
    """The debtor's opt-in made at ``at`` (a reply that is only START), reaching us late."""
    return event(EventType.OPTED_IN, provider="sendgrid_email", kind="event_webhook",
                 key="ev-resub", channel="email", attempt_id=attempt_id,
                 provider_message_id="sg-1", to_address=EMAIL.lower(), at=at)  # fmt: skip


def _unsubscribes(engine: Engine) -> list[tuple[datetime, datetime | None]]:
    return [(s.created_at, s.lifted_at) for s in rows(engine, suppressions)]


def test_a_second_one_click_after_a_resubscribe_in_the_same_batch_unsubscribes(
    engine: Engine,
) -> None:
    """Click, opt in, click again: the opt-in and the second click reach one batch
    (the writer gathers what arrives while it commits), each applied in the order of its
    time, and a retry of the click in it adds nothing. The last word is the unsubscribe."""
    account_id = add_account(engine)
    mail = add_attempt(engine, account_id, channel="email", to=EMAIL, message_id="sg-1")
    apply_events(engine, [_one_click(mail, NOW)], NOW)
    resubscribed, clicked = NOW + timedelta(minutes=1), NOW + timedelta(minutes=2)
    resubscribe = _resubscribe(mail, resubscribed)
    retried = clicked + timedelta(seconds=20)
    batch = [_one_click(mail, clicked), resubscribe, _one_click(mail, retried)]
    assert apply_events(engine, batch, retried).stored == 3
    assert _unsubscribes(engine) == [(NOW, resubscribed), (clicked, None)]


def test_an_opt_in_made_before_a_second_one_click_and_applied_after_it_lifts_nothing(
    engine: Engine,
) -> None:
    account_id = add_account(engine)
    mail = add_attempt(engine, account_id, channel="email", to=EMAIL, message_id="sg-1")
    resubscribed, clicked = NOW + timedelta(minutes=1), NOW + timedelta(minutes=2)
    apply_events(engine, [_one_click(mail, NOW)], NOW)
    apply_events(engine, [_one_click(mail, clicked)], clicked)
    resubscribe = _resubscribe(mail, resubscribed)
    apply_events(engine, [resubscribe], clicked + timedelta(minutes=1))
    assert _unsubscribes(engine) == [(NOW, None)]
    history = sorted((e.occurred_at, e.kind) for e in rows(engine, compliance_events))
    assert history == [(NOW, "opt_out"), (resubscribed, "opt_in"), (clicked, "opt_out")]


def test_a_payload_with_a_nul_character_is_stored(engine: Engine) -> None:
    broken = event(EventType.DELIVERED, provider_message_id="SMx")
    nul = replace(broken, payload={"Body": "a\x00b", "n": [1, "\x00"]})
    apply_events(engine, [nul], NOW)
    (row,) = rows(engine, provider_events)
    assert row.payload == {"Body": "ab", "n": [1, ""]}


def test_half_of_a_surrogate_pair_in_an_unsubscribe_is_stored_replaced_and_applied(
    engine: Engine,
) -> None:
    """JSON may spell half of a surrogate pair (an emoji cut in a subject or a custom
    argument: "\\ud83d"), and json.loads reads it as it is: PostgreSQL's JSONB refuses
    it, and psycopg cannot send it to a text column. Each half is stored as U+FFFD, NUL
    characters go from the keys too, and the unsubscribe in the batch is applied instead
    of the batch failing on every retry."""
    account_id = add_account(engine)
    mail = add_attempt(engine, account_id, channel="email", to=EMAIL, message_id="sg-1")
    unsubscribe = event(EventType.UNSUBSCRIBED, provider="sendgrid_email", kind="event_webhook",
                        attempt_id=mail, to_address=EMAIL.lower(),
                        suppression="unsubscribe")  # fmt: skip
    broken = replace(
        unsubscribe,
        raw_status="unsubscribe\udc00",
        payload={"event": "unsubscribe", "subject": "Hi \ud83d", "\ud83dk\x00": ["\ude00"]},
    )
    apply_events(engine, [broken], NOW)
    assert [row.reason for row in rows(engine, suppressions)] == ["unsubscribe"]
    (row,) = rows(engine, provider_events)
    assert row.payload == {"event": "unsubscribe", "subject": "Hi \ufffd", "\ufffdk": ["\ufffd"]}
    assert row.raw_status == "unsubscribe\ufffd"


def test_the_policy_follows_the_settings() -> None:
    settings = Settings(_env_file=None, reply_pause_days=3, channels_dir=REPO / "channels")
    policy = EventPolicy.from_settings(settings)
    assert policy.reply_pause == timedelta(days=3)
    assert policy.keyword_answering_providers == frozenset({"twilio_sms"})
    assert "Reply STOP" in policy.replies.help


def test_the_demos_someone_else_at_the_identity_check_is_a_wrong_party(
    engine: Engine, tmp_path: Path
) -> None:
    """The outbox's simulated "not me" (2) lands as Twilio's does: this account no longer
    texts or calls the number, and is flagged for an agent; another debtor's account at the
    number keeps it. A call's result carries whom the identity check asks for."""
    called, other = add_account(engine, "R-1"), add_account(engine, "R-2")
    with engine.begin() as connection:
        connection.execute(update(accounts).where(accounts.c.id == other).values(name="Sam Roe"))
    call = add_attempt(engine, called, channel="voice", message_id=None)
    settings = Settings(
        _env_file=None,
        channels_dir=REPO / "channels",
        templates_dir=REPO / "templates",
        outbox_path=tmp_path / "outbox.jsonl",
    )
    outbox = Outbox(settings, FixedClock(NOW), "voice")
    payload = {"event": IDENTITY_CHECK, "digits": "2", "attempt_id": call, "channel": "voice",
               "message_id": "OB1", "from": "outbox-voice", "to": PHONE}  # fmt: skip
    request = outbox.signed_request([], "https://outreach.example.com/webhooks/outbox/events")
    request = replace(request, body=json.dumps([payload]).encode())
    (wrong,) = outbox.parse(request)
    (result,) = apply_events(engine, [wrong], NOW).results
    assert result.call is not None and result.call.name == "Pat Doe"
    points = {(p.account_id, p.channel): p.status for p in rows(engine, contact_points)
              if p.address == PHONE}  # fmt: skip
    assert points == {
        (called, "sms"): "wrong_number", (called, "voice"): "wrong_number",
        (other, "sms"): "active", (other, "voice"): "active",
    }  # fmt: skip
    flags = {row.id: row.flag for row in rows(engine, accounts)}
    assert flags == {called: "wrong_number", other: None}
    (stored,) = rows(engine, provider_events)
    assert (stored.kind, stored.raw_status) == ("identity", "keypress 2: not the debtor")
