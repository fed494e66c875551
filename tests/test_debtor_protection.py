"""What protects the debtor once they have said no, on every backend: what an opt-in may
not lift, email addresses in any case, the unsubscribe mailbox, replies from another
address, text the database cannot store, and senders who are not the account's."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, func, insert, literal, select

from outreach.compliance.engine import evaluate
from outreach.compliance.rules import load_ruleset
from outreach.compliance_store import inbox_messages, load_debtors, situation
from outreach.config import Settings
from outreach.db import alembic_config, current_revision, head_revision, upgrade
from outreach.events import EventPolicy, apply_events
from outreach.inbox import open_replies
from outreach.opt_outs import ledger_address
from outreach.providers.base import EventType, ProviderEvent, dedupe_key
from outreach.store import accounts, compliance_events, suppressions
from tests.conftest import NOW, REPO
from tests.eventdata import (
    EMAIL,
    OTHER_PHONE,
    PHONE,
    add_account,
    add_attempt,
    event,
    inbound,
    rows,
)

RULES = load_ruleset()


def verdict(engine: Engine, account_id: int, channel: str, address: str) -> tuple[str, list[str]]:
    """The engine's answer now for a contact of the account."""
    with engine.connect() as connection:
        (row,) = [a for a in rows(engine, accounts) if a.id == account_id]
        record = load_debtors(connection, [row], NOW, 30, "US", rules=RULES)[account_id]
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


def test_an_unsubscribe_covers_every_spelling_of_the_address(engine: Engine) -> None:
    # One mailbox, spelled differently by two imports.
    first = add_account(engine, "R-1", email="Pat.Doe@example.com")
    second = add_account(engine, "R-2", phone=OTHER_PHONE, email="pat.doe@example.com")
    link = event(EventType.UNSUBSCRIBED, provider="outreach", kind="unsubscribe_link",
                 to_address="Pat.Doe@example.com", suppression="unsubscribe")  # fmt: skip
    apply_events(engine, [link], NOW)
    (suppression,) = rows(engine, suppressions)
    assert suppression.address == "pat.doe@example.com"
    opted_out = {e.account_id for e in rows(engine, compliance_events, kind="opt_out")}
    assert opted_out == {first, second}
    # Each account decided on its own, as in a batch without the other.
    assert verdict(engine, second, "email", "pat.doe@example.com")[0] == "block"
    assert verdict(engine, first, "email", "pat.doe@example.com")[0] == "block"


def test_an_opt_in_lifts_the_unsubscribe_in_any_case(engine: Engine) -> None:
    account_id = add_account(engine)
    unsubscribe = sendgrid(EventType.UNSUBSCRIBED, NOW, suppression="unsubscribe")
    apply_events(engine, [unsubscribe], NOW)
    later = NOW + timedelta(minutes=1)
    resubscribe = event(EventType.OPTED_IN, provider="sendgrid_email", kind="event_webhook",
                        at=later, to_address="PAT.DOE@EXAMPLE.COM")  # fmt: skip
    apply_events(engine, [resubscribe], later)
    assert [s.lifted_at for s in rows(engine, suppressions)] == [later]
    assert account_id


def test_the_migration_lower_cases_email_suppressions(engine: Engine) -> None:
    command.downgrade(alembic_config(engine), "0006")
    with engine.begin() as connection:
        connection.execute(
            insert(suppressions),
            [{"channel": channel, "address": address, "reason": "unsubscribe",
              "source": "test", "created_at": NOW}
             for channel, address in (("email", "Pat.Doe@Example.com"),
                                      ("email", "pat.doe@example.com"), ("sms", PHONE))],
        )  # fmt: skip
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert [(s.channel, s.address) for s in rows(engine, suppressions)] == [
        ("email", "pat.doe@example.com"),
        ("email", "pat.doe@example.com"),
        ("sms", PHONE),
    ]


# Email addresses whose lower case SQL's lower() does not spell as Python's: SQLite folds
# ASCII letters only, PostgreSQL's a final sigma as any other.
BEYOND_ASCII = ("ÉLODIE@EXAMPLE.COM", "ΟΔΟΣ@EXAMPLE.COM")


def _suppress(engine: Engine, *addresses: str) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(suppressions),
            [{"channel": "email", "address": address, "reason": "unsubscribe",
              "source": "test", "created_at": NOW} for address in addresses],
        )  # fmt: skip


def _opted_out_everywhere(engine: Engine) -> None:
    """Each debtor of ``BEYOND_ASCII``, whose contact point spells the mailbox in yet
    another case, is blocked on email by their opt-out."""
    for n, address in enumerate(BEYOND_ASCII):
        spelled = address.split("@")[0].title() + "@Example.com"
        account_id = add_account(engine, f"R-{n}", phone=None, email=spelled)
        assert verdict(engine, account_id, "email", spelled.lower()) == (
            "block", ["EMAIL_UNSUBSCRIBED"],
        ), address  # fmt: skip


def test_the_migration_lower_cases_email_suppressions_as_the_ledger_does(engine: Engine) -> None:
    """Every letter, as Python lower-cases it (``ledger_address``): SQL's lower() left
    SQLite's "ÉLODIE@EXAMPLE.COM" as "Élodie@example.com", which no lookup finds, and the
    debtor who had unsubscribed could be emailed again."""
    command.downgrade(alembic_config(engine), "0006")
    _suppress(engine, *BEYOND_ASCII)
    upgrade(engine)
    stored = [s.address for s in rows(engine, suppressions)]
    assert stored == [ledger_address("email", address) for address in BEYOND_ASCII]
    assert stored == ["élodie@example.com", "οδος@example.com"]
    _opted_out_everywhere(engine)


def test_suppressions_lower_cased_by_sql_are_spelled_as_the_ledger_does(engine: Engine) -> None:
    """A database past 0007 holds what its SQL lower() made of the addresses: SQLite's
    "Élodie@example.com", PostgreSQL's "οδοσ@..." for "ΟΔΟΣ@..." (Python: "οδος@...").
    0029 spells them as the ledger does; a "σ", which may also have been typed so, is kept
    beside its copy. No row is lost, two that spell one mailbox included."""
    command.downgrade(alembic_config(engine), "0028")
    with engine.connect() as connection:
        left = [
            connection.execute(select(func.lower(literal(a)))).scalar_one() for a in BEYOND_ASCII
        ]
    assert left != [a.lower() for a in BEYOND_ASCII]  # what the ledger does not find
    _suppress(engine, *left, "élodie@example.com")
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    stored = [s.address for s in rows(engine, suppressions)]
    if engine.dialect.name == "sqlite":
        assert stored == ["élodie@example.com", "οδος@example.com", "élodie@example.com"]
    else:
        assert stored == ["élodie@example.com", "οδοσ@example.com", "élodie@example.com",
                          "οδος@example.com"]  # fmt: skip
    _opted_out_everywhere(engine)


MAILTO = "unsubscribe@reply.example.com"


def reply_to(attempt_id: int) -> str:
    return f"billing+{attempt_id}@reply.example.com"


MAIL_CLIENT = "This message was automatically generated by Gmail."


def inbound_mail(body: str, *, sender: str, to: str, subject: str, **values: Any) -> Any:
    """An inbound email as SendGrid's Inbound Parse gives it (not a keyword by its first
    line), with the envelope's recipient in the payload."""
    return ProviderEvent(
        provider="sendgrid_email", kind="inbound", event_type=EventType.REPLIED,
        dedupe_key=dedupe_key("sendgrid_email", "inbound", sender, to, subject, body),
        occurred_at=NOW,
        payload={"envelope": json.dumps({"to": [to]})}, from_address=sender, to_address=to,
        subject=subject, body=body, raw_status="inbound", **values,
    )  # fmt: skip


def test_mail_to_the_unsubscribe_mailbox_unsubscribes_the_sender(engine: Engine) -> None:
    account_id = add_account(engine)
    policy = EventPolicy(unsubscribe_mailboxes=frozenset({MAILTO}))
    mail = inbound_mail(MAIL_CLIENT, sender=EMAIL.lower(), to=MAILTO, subject="Remove")
    apply_events(engine, [mail], NOW, policy)
    assert [(s.address, s.reason) for s in rows(engine, suppressions)] == [
        (EMAIL.lower(), "unsubscribe")
    ]
    assert verdict(engine, account_id, "email", EMAIL.lower())[0] == "block"
    # An instruction, not a conversation: no inbox message, no pause.
    assert rows(engine, inbox_messages) == []
    (row,) = rows(engine, accounts)
    assert row.paused_until is None


def test_the_subject_unsubscribe_unsubscribes_whatever_the_body(engine: Engine) -> None:
    add_account(engine)
    mail = inbound_mail(MAIL_CLIENT, sender=EMAIL.lower(), to=MAILTO, subject="unsubscribe")
    apply_events(engine, [mail], NOW)  # no mailbox configured: the subject says it
    assert [s.reason for s in rows(engine, suppressions)] == ["unsubscribe"]


def test_mail_to_the_mailbox_that_says_more_reaches_an_agent(engine: Engine) -> None:
    account_id = add_account(engine)
    policy = EventPolicy(unsubscribe_mailboxes=frozenset({MAILTO}))
    mail = inbound_mail("I dispute this debt.", sender=EMAIL.lower(), to=MAILTO, subject="x")
    apply_events(engine, [mail], NOW, policy)
    assert [s.reason for s in rows(engine, suppressions)] == ["unsubscribe"]
    (reply,) = rows(engine, inbox_messages)
    assert (reply.account_id, reply.intent) == (account_id, "dispute")


@pytest.mark.parametrize("subject", ["Unsubscribe", "x"])
def test_mail_to_the_mailbox_that_names_calls_and_texts_stops_them_and_email(
    engine: Engine, subject: str
) -> None:
    """The mail unsubscribes its sender whatever else it asks, and the calls and texts it
    names are not used at all: read as the subject's unsubscribe alone, it left calls and
    texts going on; read as its words alone, it left the email going on."""
    account_id = add_account(engine)
    policy = EventPolicy(unsubscribe_mailboxes=frozenset({MAILTO}))
    mail = inbound_mail("Also stop calling and texting me", sender=EMAIL.lower(), to=MAILTO,
                        subject=subject)  # fmt: skip
    apply_events(engine, [mail], NOW, policy)
    assert [(s.address, s.reason) for s in rows(engine, suppressions)] == [
        (EMAIL.lower(), "unsubscribe")
    ]
    recorded = sorted(
        (e.kind, e.channel or "", e.address or "") for e in rows(engine, compliance_events)
    )
    assert recorded == [
        ("consent_revoked", "voice", ""), ("opt_out", "email", EMAIL),
        ("prohibited_medium", "sms", ""), ("prohibited_medium", "voice", ""),
    ]  # fmt: skip
    for channel, address in (("email", EMAIL.lower()), ("sms", PHONE), ("voice", PHONE)):
        assert verdict(engine, account_id, channel, address)[0] == "block"


def test_an_unsubscribe_reply_from_another_address_covers_the_address_we_mailed(
    engine: Engine,
) -> None:
    account_id = add_account(engine, email="old@example.com")
    mailed = add_attempt(engine, account_id, channel="email", to="old@example.com")
    reply = inbound_mail("Unsubscribe", sender="new@example.org", attempt_id=mailed,
                         to=reply_to(mailed), subject="Re: balance")  # fmt: skip
    apply_events(engine, [reply], NOW)
    found = sorted((s.address, s.reason) for s in rows(engine, suppressions))
    assert found == [("new@example.org", "unsubscribe"), ("old@example.com", "unsubscribe")]
    assert verdict(engine, account_id, "email", "old@example.com")[0] == "block"


def test_the_mailto_naming_our_message_covers_the_address_we_mailed(engine: Engine) -> None:
    account_id = add_account(engine, email="old@example.com")
    mailed = add_attempt(engine, account_id, channel="email", to="old@example.com")
    mail = inbound_mail(MAIL_CLIENT, sender="relay@example.net", attempt_id=mailed,
                        to=f"unsubscribe+{mailed}@reply.example.com", subject="Stop")  # fmt: skip
    apply_events(engine, [mail], NOW, EventPolicy(unsubscribe_mailboxes=frozenset({MAILTO})))
    found = sorted(s.address for s in rows(engine, suppressions))
    assert found == ["old@example.com", "relay@example.net"]


def test_a_sender_the_account_does_not_have_cannot_hold_or_pause_it(engine: Engine) -> None:
    victim = add_account(engine)
    mailed = add_attempt(engine, victim, channel="email", to=EMAIL, message_id="sg-1")
    words = "I dispute this debt. My attorney will contact you. Stop calling me."
    mail = inbound_mail(words, sender="mallory@evil.example", attempt_id=mailed,
                        to=reply_to(mailed), subject="Re: balance")  # fmt: skip
    apply_events(engine, [mail], NOW)
    assert rows(engine, compliance_events) == []
    (row,) = rows(engine, accounts)
    assert (row.paused_until, row.flag) == (None, None)
    # Kept for an agent under no account, naming the message it claims to answer.
    (reply,) = rows(engine, inbox_messages)
    assert (reply.account_id, reply.attempt_id, reply.from_address) == (
        None, mailed, "mallory@evil.example",
    )  # fmt: skip
    with engine.connect() as connection:
        (item,) = open_replies(connection)
    assert item.unverified_sender and item.attempt_id == mailed


def test_an_unverified_sender_may_still_unsubscribe(engine: Engine) -> None:
    victim = add_account(engine)
    mailed = add_attempt(engine, victim, channel="email", to=EMAIL, message_id="sg-1")
    mail = inbound_mail("Please unsubscribe me", sender="other@example.org", attempt_id=mailed,
                        to=reply_to(mailed), subject="Re: balance")  # fmt: skip
    apply_events(engine, [mail], NOW)
    found = sorted(s.address for s in rows(engine, suppressions))
    assert found == ["other@example.org", EMAIL.lower()]  # suppressing is the safe side
    (row,) = rows(engine, accounts)
    assert row.paused_until is None


def test_the_account_s_own_address_in_any_case_is_verified(engine: Engine) -> None:
    account_id = add_account(engine)
    mailed = add_attempt(engine, account_id, channel="email", to=EMAIL, message_id="sg-1")
    mail = inbound_mail("I dispute this debt", sender="PAT.DOE@EXAMPLE.COM", attempt_id=mailed,
                        to=reply_to(mailed), subject="Re: balance")  # fmt: skip
    apply_events(engine, [mail], NOW)
    assert [e.kind for e in rows(engine, compliance_events)] == ["dispute"]
    (reply,) = rows(engine, inbox_messages)
    assert (reply.account_id, reply.attempt_id) == (account_id, mailed)


def test_the_policy_knows_the_unsubscribe_mailbox() -> None:
    settings = Settings(_env_file=None, channels_dir=REPO / "channels")
    assert EventPolicy.from_settings(settings).unsubscribe_mailboxes == frozenset({MAILTO})
