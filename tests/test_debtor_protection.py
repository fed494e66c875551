"""What protects the debtor once they have said no, on every backend: what an opt-in may
not lift, email addresses in any case, the unsubscribe mailbox, replies from another
address, text the database cannot store, and senders who are not the account's."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine

from outreach.compliance.engine import evaluate
from outreach.compliance.rules import load_ruleset
from outreach.compliance_store import inbox_messages, load_debtors, situation
from outreach.events import apply_events
from outreach.providers.base import EventType
from outreach.store import accounts, suppressions
from tests.conftest import NOW
from tests.eventdata import EMAIL, add_account, event, inbound, rows

RULES = load_ruleset()


def verdict(engine: Engine, account_id: int, channel: str, address: str) -> tuple[str, list[str]]:
    """The engine's answer now for a contact of the account."""
    with engine.connect() as connection:
        (row,) = [a for a in rows(engine, accounts) if a.id == account_id]
        record = load_debtors(connection, [row], NOW, 30, "US")[account_id]
    decision = evaluate(situation(record, channel, address, NOW), RULES)
    return decision.verdict, decision.codes


def sendgrid(event_type: EventType, at: Any, **values: Any) -> Any:
    return event(event_type, provider="sendgrid_email", kind="event_webhook", at=at,
                 to_address=EMAIL.lower(), **values)  # fmt: skip


def test_a_resubscribe_never_lifts_a_spam_complaint(engine: Engine) -> None:
    account_id = add_account(engine)
    earlier, later = NOW - timedelta(days=2), NOW - timedelta(days=1)
    complaint = sendgrid(EventType.COMPLAINED, earlier, suppression="complaint")
    apply_events(engine, [complaint], earlier)
    apply_events(engine, [sendgrid(EventType.OPTED_IN, later)], later)
    assert [(s.reason, s.lifted_at) for s in rows(engine, suppressions)] == [("complaint", None)]
    assert verdict(engine, account_id, "email", EMAIL.lower())[0] == "block"


def test_text_with_a_nul_is_stored_without_it_and_acted_on(engine: Engine) -> None:
    add_account(engine)
    text = inbound("Please stop texting me\x00 I dispute this", key="nul\x00-1")
    mail = event(EventType.REPLIED, provider="sendgrid_email", kind="inbound",
                 from_address=EMAIL.lower(), to_address="billing@reply.example.com",
                 subject="Re\x00: balance", body="Please stop emailing me\x00, I dispute this.",
                 raw_status="in\x00bound")  # fmt: skip
    apply_events(engine, [text, mail], NOW)
    assert sorted(s.reason for s in rows(engine, suppressions)) == ["stop", "unsubscribe"]
    stored = [(m.subject, m.body) for m in rows(engine, inbox_messages, direction="inbound")]
    assert stored == [
        (None, "Please stop texting me I dispute this"),
        ("Re: balance", "Please stop emailing me, I dispute this."),
    ]
