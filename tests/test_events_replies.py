"""What the debtor writes, applied on every backend: keywords, requests to stop, answers,
the inbox, pauses, holds and flags."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, update
from sqlalchemy import event as sqlalchemy_event

from outreach.cli.compliance import _about_an_address
from outreach.compliance_store import inbox_messages
from outreach.events import EventPolicy, Incoming, apply_batch, apply_events, provider_events
from outreach.opt_outs import _lock_key
from outreach.providers.base import EventType
from outreach.replies import REPLY_PAUSE_REASON
from outreach.store import accounts, compliance_events, contact_points, suppressions
from tests.conftest import NOW
from tests.eventdata import (
    EMAIL,
    OTHER_PHONE,
    PHONE,
    account,
    add_account,
    add_attempt,
    event,
    inbound,
    rows,
)

WE_ANSWER = EventPolicy(keyword_answering_providers=frozenset())
TWILIO_ANSWERS = EventPolicy()


def answers(engine: Engine, *texts: str, policy: EventPolicy = WE_ANSWER) -> list[str | None]:
    """Apply inbound texts one by one, a second apart; what outreach answered to each."""
    said = []
    for n, text in enumerate(texts):
        at = NOW + timedelta(seconds=n)
        result = apply_events(engine, [inbound(text, key=f"m{n}", at=at)], at, policy)
        said.append(result.results[0].answer)
    return said


def test_stop_suppresses_the_number_on_every_account_and_is_confirmed_once(
    engine: Engine,
) -> None:
    first, second = add_account(engine, "R-1"), add_account(engine, "R-2")
    said = answers(engine, "STOP", "stop.")
    assert said == [WE_ANSWER.replies.opt_out_confirmation, None]
    (suppression,) = rows(engine, suppressions)
    assert (suppression.channel, suppression.address, suppression.reason) == ("sms", PHONE, "stop")
    assert suppression.provider_event_id is not None
    for account_id in (first, second):
        kinds = [e.kind for e in rows(engine, compliance_events, account_id=account_id)]
        assert kinds == ["opt_out", "opt_out"]
    # Keywords are instructions, not conversation: only outreach's answers are in the inbox.
    thread = rows(engine, inbox_messages)
    assert {(m.direction, m.status, m.intent) for m in thread} == {
        ("outbound", "handled", "opt_out")
    }
    assert {m.body for m in thread} == {WE_ANSWER.replies.opt_out_confirmation}
    assert account(engine, first).paused_until is None


def test_a_retried_request_gets_the_answer_its_first_copy_got(engine: Engine) -> None:
    """A provider retries what it got no answer to, so the first answer never reached the
    debtor: the retry carries it, whether known by its key, by its token or in one batch,
    and the opt-out is recorded once."""
    add_account(engine)
    confirmation = TWILIO_ANSWERS.replies.opt_out_confirmation
    stop = inbound("please stop texting me", key="SM1")
    retried_elsewhere = inbound("please stop texting me", key="SM1-other-key")
    with engine.begin() as connection:
        first = apply_batch(connection, [Incoming(stop, "tok-1")], NOW, TWILIO_ANSWERS)
    with engine.begin() as connection:
        by_key = apply_batch(connection, [Incoming(stop, "tok-2")], NOW, TWILIO_ANSWERS)
    with engine.begin() as connection:
        by_token = apply_batch(
            connection, [Incoming(retried_elsewhere, "tok-1")], NOW, TWILIO_ANSWERS
        )
    results = [*first, *by_key, *by_token]
    assert [(r.stored, r.answer) for r in results] == [
        (True, confirmation), (False, confirmation), (False, confirmation)
    ]  # fmt: skip
    assert len(rows(engine, suppressions)) == 1
    assert len(rows(engine, inbox_messages, direction="outbound")) == 1
    assert [row.answer for row in rows(engine, provider_events)] == [confirmation]


def test_copies_in_one_batch_share_the_answer_and_a_new_message_gets_none(
    engine: Engine,
) -> None:
    add_account(engine)
    confirmation = TWILIO_ANSWERS.replies.opt_out_confirmation
    stop, later = inbound("no more texts", key="SM1"), inbound("no more texts!", key="SM2")
    result = apply_events(engine, [stop, stop, later], NOW, TWILIO_ANSWERS)
    assert [(r.stored, r.answer) for r in result.results] == [
        (True, confirmation), (False, confirmation), (True, None)
    ]  # fmt: skip
    again = apply_events(engine, [later], NOW, TWILIO_ANSWERS)
    assert [(r.stored, r.answer) for r in again.results] == [(False, None)]


def test_twilio_answers_its_own_keywords_so_outreach_stays_silent(engine: Engine) -> None:
    add_account(engine)
    assert answers(engine, "STOP", "START", "HELP", policy=TWILIO_ANSWERS) == [None] * 3
    assert rows(engine, inbox_messages) == []
    assert rows(engine, suppressions)[0].lifted_at == NOW + timedelta(seconds=1)


@pytest.mark.parametrize(
    "text", ["please stop texting me", "Stop please", "STOP. I paid", "no more texts"]
)
def test_a_request_to_stop_in_words_is_an_opt_out_the_provider_did_not_answer(
    engine: Engine, text: str
) -> None:
    account_id = add_account(engine)
    assert answers(engine, text, policy=TWILIO_ANSWERS) == [
        TWILIO_ANSWERS.replies.opt_out_confirmation
    ]
    assert [s.reason for s in rows(engine, suppressions)] == ["stop"]
    (reply,) = rows(engine, inbox_messages, direction="inbound")
    assert (reply.account_id, reply.body, reply.status) == (account_id, text, "open")
    # Words that name the medium ask that it not be used at all (1006.14(h)): every number
    # on it, not only this one. A bare stop is about this number.
    prohibited = [
        (e.channel, e.address)
        for e in rows(engine, compliance_events, account_id=account_id)
        if e.kind == "prohibited_medium"
    ]
    assert prohibited == ([("sms", None)] if "text" in text else [])


@pytest.mark.parametrize(
    "text",
    [
        "No more", "No más", "NO MORE PLEASE", "Basta", "UNSUB", "Remove", "S.T.O.P",
        "Remove from your list", "Remove number", "Unsub from this", "Stopp", "Detente",
    ],
)  # fmt: skip
def test_a_short_stop_twilio_does_not_know_suppresses_the_number_and_is_confirmed(
    engine: Engine, text: str
) -> None:
    account_id = add_account(engine)
    assert answers(engine, text, policy=TWILIO_ANSWERS) == [
        TWILIO_ANSWERS.replies.opt_out_confirmation
    ]
    assert [(s.address, s.reason) for s in rows(engine, suppressions)] == [(PHONE, "stop")]
    assert [e.kind for e in rows(engine, compliance_events, account_id=account_id)] == ["opt_out"]


@pytest.mark.parametrize(
    "text",
    [
        "I can pay $50 a month, no more.", "I can pay 50. No more.",
        "Puedo pagar 50 al mes, no más.", "Ahora no más", "Remove it please",
    ],
)  # fmt: skip
def test_a_payment_offer_ending_in_no_more_is_not_a_stop(engine: Engine, text: str) -> None:
    add_account(engine)
    assert answers(engine, text) == [None]
    assert rows(engine, suppressions) == []


def test_a_request_about_another_medium_prohibits_that_medium(engine: Engine) -> None:
    account_id = add_account(engine)
    assert answers(engine, "Please stop calling me") == [None]
    assert rows(engine, suppressions) == []
    # No call at all (1006.14(h)); and, revoke-all, no robocall or robotext to the number
    # it came from (held by the number: compliance.md).
    recorded = rows(engine, compliance_events, account_id=account_id)
    assert [(e.kind, e.channel, e.address) for e in recorded] == [
        ("prohibited_medium", "voice", None), ("consent_revoked", None, PHONE),
    ]  # fmt: skip


@pytest.mark.parametrize("text", ["Don't call or text me", "No calls or texts please"])
def test_a_text_that_lists_calls_and_texts_stops_both(engine: Engine, text: str) -> None:
    """Texts are listed after calls: the number it came from is suppressed and confirmed,
    and neither medium is used again (it was read as about calls only, and texts went on)."""
    account_id = add_account(engine)
    assert answers(engine, text) == [WE_ANSWER.replies.opt_out_confirmation]
    assert [(s.channel, s.reason) for s in rows(engine, suppressions)] == [("sms", "stop")]
    recorded = rows(engine, compliance_events, account_id=account_id)
    assert sorted(e.channel for e in recorded if e.kind == "prohibited_medium") == [
        "sms", "voice",
    ]  # fmt: skip


@pytest.mark.parametrize("text", ["Don't send me any more texts", "I don't want any more texts"])
def test_asking_not_to_be_sent_texts_suppresses_the_number(engine: Engine, text: str) -> None:
    add_account(engine)
    assert answers(engine, text) == [WE_ANSWER.replies.opt_out_confirmation]
    assert [(s.channel, s.reason) for s in rows(engine, suppressions)] == [("sms", "stop")]


@pytest.mark.parametrize("text", ["Please don't call me at work", "No me llamen al trabajo"])
def test_a_request_not_to_be_contacted_at_work_holds_work_addresses_only(
    engine: Engine, text: str
) -> None:
    """Work is then a place known to be inconvenient: the event holds contact at work
    numbers and mailboxes (the engine's hold), and the number it came from stays open."""
    first, second = add_account(engine, "R-1"), add_account(engine, "R-2")
    assert answers(engine, text) == [None]
    assert rows(engine, suppressions) == []
    (reply, _) = rows(engine, inbox_messages, direction="inbound")
    assert (reply.intent, reply.status) == ("not_at_work", "open")
    for account_id in (first, second):
        (held,) = rows(engine, compliance_events, account_id=account_id)
        assert (held.kind, held.channel, held.address) == ("workplace_inconvenient", None, None)
        assert held.source.startswith("sms reply, inbox message ")
        # The agent reads it before anything more is sent (the reply pause).
        assert account(engine, account_id).pause_reason == REPLY_PAUSE_REASON
        assert account(engine, account_id).flag is None


def test_stop_emailing_me_by_email_prohibits_every_email_address(engine: Engine) -> None:
    account_id = add_account(engine)
    mail = event(EventType.REPLIED, provider="sendgrid_email", kind="inbound",
                 from_address=EMAIL, body="Stop emailing me.")  # fmt: skip
    apply_events(engine, [mail], NOW, WE_ANSWER)
    kinds = {(e.kind, e.channel, e.address) for e in rows(engine, compliance_events)}
    assert ("prohibited_medium", "email", None) in kinds
    assert [(s.channel, s.reason) for s in rows(engine, suppressions)] == [("email", "unsubscribe")]
    assert {e.account_id for e in rows(engine, compliance_events)} == {account_id}


def test_start_lifts_the_stop_and_is_confirmed(engine: Engine) -> None:
    account_id = add_account(engine)
    said = answers(engine, "STOP", "Unstop")
    assert said == [WE_ANSWER.replies.opt_out_confirmation, WE_ANSWER.replies.opt_in_confirmation]
    assert rows(engine, suppressions)[0].lifted_at == NOW + timedelta(seconds=1)
    kinds = [e.kind for e in rows(engine, compliance_events, account_id=account_id)]
    assert kinds == ["opt_out", "opt_in"]


def test_start_after_a_request_not_to_text_at_all_allows_texts_again(engine: Engine) -> None:
    account_id = add_account(engine)
    assert answers(engine, "please stop texting me", "START") == [
        WE_ANSWER.replies.opt_out_confirmation, WE_ANSWER.replies.opt_in_confirmation
    ]  # fmt: skip
    said = [(e.kind, e.channel, e.address)
            for e in rows(engine, compliance_events, account_id=account_id)]  # fmt: skip
    assert said == [
        ("prohibited_medium", "sms", None), ("consent_revoked", None, PHONE),
        ("opt_out", "sms", PHONE), ("opt_in", "sms", PHONE), ("opt_in", "sms", None),
    ]  # fmt: skip
    # A START with no such request allows only its own number again.
    other = add_account(engine, "R-2", phone=OTHER_PHONE)
    apply_events(engine, [inbound("START", sender=OTHER_PHONE, key="s2")], NOW, WE_ANSWER)
    assert [(e.kind, e.address) for e in rows(engine, compliance_events, account_id=other)] == [
        ("opt_in", OTHER_PHONE)
    ]


def test_a_bare_yes_with_nothing_to_undo_is_a_reply(engine: Engine) -> None:
    account_id = add_account(engine)
    assert answers(engine, "Yes") == [None]
    assert rows(engine, compliance_events) == []
    (reply,) = rows(engine, inbox_messages)
    assert (reply.account_id, reply.intent) == (account_id, "other")


def test_help_gets_the_configured_help_text_every_time(engine: Engine) -> None:
    add_account(engine)
    assert answers(engine, "HELP", "info") == [WE_ANSWER.replies.help] * 2
    assert rows(engine, suppressions) == []


def test_a_stop_and_a_start_in_one_batch_apply_in_the_order_they_happened(
    engine: Engine,
) -> None:
    add_account(engine)
    stop = inbound("STOP", key="a", at=NOW)
    start = inbound("START", key="b", at=NOW + timedelta(seconds=1))
    apply_events(engine, [start, stop], NOW + timedelta(seconds=2), WE_ANSWER)
    assert rows(engine, suppressions)[0].lifted_at == NOW + timedelta(seconds=1)


def test_a_reply_reaches_the_inbox_classified_and_pauses_the_cadence(engine: Engine) -> None:
    account_id = add_account(engine)
    policy = EventPolicy(reply_pause=timedelta(days=5))
    apply_events(engine, [inbound("I already paid this last week")], NOW, policy)
    (reply,) = rows(engine, inbox_messages)
    assert (reply.account_id, reply.intent, reply.direction, reply.status) == (
        account_id, "paid", "inbound", "open",
    )  # fmt: skip
    assert reply.provider_event_id is not None
    paused = account(engine, account_id)
    assert (paused.paused_until, paused.pause_reason) == (
        NOW + timedelta(days=5),
        REPLY_PAUSE_REASON,
    )
    assert paused.flag is None


def test_a_reply_never_shortens_a_longer_pause(engine: Engine) -> None:
    account_id = add_account(engine)
    with engine.begin() as connection:
        connection.execute(
            update(accounts)
            .where(accounts.c.id == account_id)
            .values(paused_until=NOW + timedelta(days=60), pause_reason="agent")
        )
    apply_events(engine, [inbound("Who is this?")], NOW)
    assert account(engine, account_id).paused_until == NOW + timedelta(days=60)


@pytest.mark.parametrize(
    ("text", "kinds", "flag"),
    [
        ("This is not my debt", ["dispute"], "dispute"),
        ("My attorney will contact you, stop contacting me", ["attorney", "cease"], "attorney"),
        ("Cease all communication", ["cease"], "cease"),
    ],
)
def test_hold_statements_block_by_compliance_event_and_flag_the_account(
    engine: Engine, text: str, kinds: list[str], flag: str
) -> None:
    account_id = add_account(engine)
    apply_events(engine, [inbound(text)], NOW)
    (reply,) = rows(engine, inbox_messages, direction="inbound")
    recorded = rows(engine, compliance_events, account_id=account_id)
    holds = [e for e in recorded if e.kind in ("attorney", "cease", "dispute")]
    assert [e.kind for e in holds] == kinds
    assert {e.source for e in holds} == {f"sms reply, inbox message {reply.id}"}
    assert account(engine, account_id).flag == flag


def test_saying_one_is_not_disputing_records_no_hold(engine: Engine) -> None:
    """A dispute blocks every contact, the agent's answer too: a debtor asking for a plan
    "not disputing the debt" is left free to be answered."""
    account_id = add_account(engine)
    apply_events(engine, [inbound("I'm not disputing the debt, can I set up a payment plan?")],
                 NOW)  # fmt: skip
    (reply,) = rows(engine, inbox_messages, direction="inbound")
    assert reply.intent == "payment_plan"
    assert rows(engine, compliance_events, account_id=account_id) == []
    assert account(engine, account_id).flag is None


def test_a_later_reply_never_hides_a_worse_flag(engine: Engine) -> None:
    account_id = add_account(engine)
    apply_events(engine, [inbound("I have a lawyer", key="a")], NOW)
    apply_events(engine, [inbound("wrong number", key="b")], NOW)
    assert account(engine, account_id).flag == "attorney"


def test_wrong_number_marks_the_phones_contact_points(engine: Engine) -> None:
    account_id = add_account(engine)
    apply_events(engine, [inbound("Wrong number, I don't know this person")], NOW)
    statuses = {
        row.channel: row.status for row in rows(engine, contact_points, account_id=account_id)
    }
    assert statuses == {"sms": "wrong_number", "voice": "wrong_number", "email": "active"}
    assert account(engine, account_id).flag == "wrong_number"


def test_an_unknown_sender_is_kept_under_no_account(engine: Engine) -> None:
    add_account(engine)
    apply_events(engine, [inbound("Can you call me?", sender=OTHER_PHONE)], NOW)
    (reply,) = rows(engine, inbox_messages)
    assert (reply.account_id, reply.from_address, reply.intent) == (None, OTHER_PHONE, "call_me")


def test_an_email_reply_is_matched_by_its_attempt_and_read_without_the_quote(
    engine: Engine,
) -> None:
    account_id = add_account(engine)
    attempt_id = add_attempt(engine, account_id, channel="email", to=EMAIL, message_id="sg-1")
    body = (
        "Can I set up a payment plan?\n\nOn Mon, Nov 2, 2026, Northwind wrote:\n"
        "> This is a communication from a debt collector. To unsubscribe, click here."
    )
    result = apply_events(
        engine,
        [event(EventType.REPLIED, provider="sendgrid_email", kind="inbound",
               attempt_id=attempt_id, from_address=EMAIL.lower(), body=body,
               subject="Re: Your balance")],
        NOW,
    )  # fmt: skip
    assert result.results[0].answer is None
    (reply,) = rows(engine, inbox_messages)
    assert (reply.account_id, reply.attempt_id, reply.intent, reply.channel) == (
        account_id, attempt_id, "payment_plan", "email",
    )  # fmt: skip
    assert (reply.from_address, reply.subject, reply.body) == (EMAIL, "Re: Your balance", body)
    assert rows(engine, suppressions) == []


def test_an_email_asking_to_unsubscribe_suppresses_the_address(engine: Engine) -> None:
    account_id = add_account(engine)
    apply_events(
        engine,
        [event(EventType.REPLIED, provider="sendgrid_email", kind="inbound",
               from_address=EMAIL, body="Please remove me from your list")],
        NOW,
    )  # fmt: skip
    (suppression,) = rows(engine, suppressions)
    assert (suppression.channel, suppression.address, suppression.reason) == (
        "email",
        EMAIL.lower(),
        "unsubscribe",
    )
    assert rows(engine, inbox_messages)[0].account_id == account_id


def _mail(subject: str, body: str = "", **values: Any) -> Any:
    return event(EventType.REPLIED, provider="sendgrid_email", kind="inbound",
                 from_address=EMAIL.lower(), to_address="billing@example.com",
                 subject=subject, body=body, key=f"mail:{subject}:{body}", **values)  # fmt: skip


@pytest.mark.parametrize("subject", ["Please stop emailing me", "RE: Fwd: stop emailing me"])
def test_a_stop_in_an_emails_subject_suppresses_the_address(engine: Engine, subject: str) -> None:
    """Some debtors write their words in the subject and nothing below: read as intent
    "other", the address stayed open and an agent could answer it by email."""
    account_id = add_account(engine)
    apply_events(engine, [_mail(subject)], NOW, WE_ANSWER)
    assert [r.intent for r in rows(engine, inbox_messages)] == ["opt_out"]
    assert [(s.channel, s.reason) for s in rows(engine, suppressions)] == [("email", "unsubscribe")]
    kinds = {(e.kind, e.channel) for e in rows(engine, compliance_events, account_id=account_id)}
    assert ("prohibited_medium", "email") in kinds


def test_a_dispute_in_an_emails_subject_is_recorded(engine: Engine) -> None:
    """The body only points at an attachment; the dispute is in the subject."""
    account_id = add_account(engine)
    apply_events(engine, [_mail("I dispute this debt", "See the attached letter.")], NOW)
    (reply,) = rows(engine, inbox_messages)
    assert (reply.intent, reply.subject) == ("dispute", "I dispute this debt")
    recorded = rows(engine, compliance_events, account_id=account_id)
    assert [e.kind for e in recorded] == ["dispute"]
    assert account(engine, account_id).flag == "dispute"


@pytest.mark.parametrize(
    "prefix", ["RE: ", "Re: Fwd: ", "回复: ", "Odp: ", "YNT: ", "[EXTERNAL] RE: ", "Απ: "]
)
def test_the_subject_of_our_cadence_email_replied_to_is_not_read_as_the_debtors_words(
    engine: Engine, prefix: str
) -> None:
    """A reply keeps the subject it answers, under whatever prefix the debtor's mail client
    or server puts before it: our notice's words ("validation" reads as a dispute) are not
    what the debtor says. Only the text counts."""
    account_id = add_account(engine)
    ours = "Debt validation notice"
    attempt_id = add_attempt(engine, account_id, channel="email", to=EMAIL, message_id="sg-1",
                             subject=ours)  # fmt: skip
    reply = _mail(prefix + ours, "Thanks, I'll pay Friday", attempt_id=attempt_id)
    apply_events(engine, [reply], NOW)
    (inbox,) = rows(engine, inbox_messages)
    assert inbox.intent == "payment_plan"
    assert rows(engine, compliance_events, account_id=account_id) == []


def test_the_subject_of_an_agents_answer_replied_to_is_read(engine: Engine) -> None:
    """An agent's answer repeats the debtor's own subject ("Re: I dispute this debt"): a
    reply under it may still say it, so it is read (a hold an agent releases costs less
    than a dispute missed)."""
    account_id = add_account(engine)
    attempt_id = add_attempt(engine, account_id, channel="email", to=EMAIL, message_id="sg-1",
                             subject="Re: I dispute this debt", automated=False)  # fmt: skip
    reply = _mail("RE: Re: I dispute this debt", "Thanks", attempt_id=attempt_id)
    apply_events(engine, [reply], NOW)
    recorded = rows(engine, compliance_events, account_id=account_id)
    assert [e.kind for e in recorded] == ["dispute"]


def test_a_stop_in_a_new_emails_subject_is_read_though_we_once_sent_it(engine: Engine) -> None:
    """An agent once answered an email titled "Stop texting me"; a new email, replying to
    nothing of ours, with that subject and no text asks again (after a START, say): a
    subject is left out only as the subject of the cadence email it replies to."""
    account_id = add_account(engine)
    add_attempt(engine, account_id, channel="email", to=EMAIL, message_id="sg-9",
                subject="Re: Stop texting me", automated=False)  # fmt: skip
    add_attempt(engine, account_id, channel="email", to=EMAIL, message_id="sg-10",
                subject="Stop texting me")  # fmt: skip
    apply_events(engine, [_mail("Stop texting me")], NOW)
    kinds = {(e.kind, e.channel) for e in rows(engine, compliance_events, account_id=account_id)}
    assert ("prohibited_medium", "sms") in kinds


def test_a_subject_is_read_without_looking_up_the_accounts_subjects(engine: Engine) -> None:
    """Whether a subject is ours is told from the email replied to, read with the event:
    an inbound email costs no query over every subject the account was ever sent."""
    account_id = add_account(engine)
    attempt_id = add_attempt(engine, account_id, channel="email", to=EMAIL, message_id="sg-1",
                             subject="Your balance")  # fmt: skip
    statements: list[str] = []

    def seen(_c: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    sqlalchemy_event.listen(engine, "before_cursor_execute", seen)
    try:
        apply_events(engine, [_mail("RE: Your balance", "I will pay Friday",
                                    attempt_id=attempt_id)], NOW)  # fmt: skip
    finally:
        sqlalchemy_event.remove(engine, "before_cursor_execute", seen)
    subjects = [s for s in statements if "attempt.subject" in s and s.startswith("SELECT")]
    assert len(subjects) == 1 and "provider_message_id IN" in subjects[0]  # the event's own
    assert rows(engine, inbox_messages)[0].intent == "payment_plan"


def test_the_outbox_demo_reply_gets_an_answer_recorded(engine: Engine) -> None:
    account_id = add_account(engine)
    attempt_id = add_attempt(engine, account_id, message_id="OB1")
    reply = event(EventType.OPTED_OUT, provider="outbox", kind="reply", attempt_id=attempt_id,
                  provider_message_id="OB1", from_address=PHONE, to_address="outbox-sms",
                  body="STOP", suppression="stop")  # fmt: skip
    result = apply_events(engine, [reply], NOW)
    assert result.results[0].answer == EventPolicy().replies.opt_out_confirmation
    (answer,) = rows(engine, inbox_messages)
    assert (answer.direction, answer.account_id, answer.to_address, answer.from_address) == (
        "outbound", account_id, PHONE, "outbox-sms",
    )  # fmt: skip


def test_two_batches_of_replies_in_opposite_orders_do_not_deadlock(engine: Engine) -> None:
    """Two batches (two web workers, or a poll and a webhook) each hold replies from two
    debtors, in opposite orders of time: each batch locks its writers' accounts at once,
    in the order of their ids, so one waits for the other instead of both waiting in a
    circle (which PostgreSQL would end by failing one)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks: PostgreSQL (SQLite has one writer)")
    add_account(engine, "R-A", phone=PHONE, email="a@example.com")
    add_account(engine, "R-B", phone=OTHER_PHONE, email="b@example.com")
    locked = {"one": threading.Event(), "two": threading.Event()}
    names: dict[int, str] = {}
    failed: dict[str, str] = {}

    def after_first_lock(_c: Any, _cursor: Any, statement: str, *_: Any) -> None:
        name = names.get(threading.get_ident())
        if name and "FOR NO KEY UPDATE" in statement and not locked[name].is_set():
            locked[name].set()  # then give the other batch its chance to lock
            locked["two" if name == "one" else "one"].wait(3)

    def batch(name: str, said: list[tuple[str, str]]) -> None:
        names[threading.get_ident()] = name
        events = [inbound(text, sender=sender, key=f"{name}:{n}", at=NOW + timedelta(seconds=n))
                  for n, (sender, text) in enumerate(said)]  # fmt: skip
        try:
            apply_events(engine, events, NOW + timedelta(seconds=5), WE_ANSWER)
        except Exception as exc:  # reported below
            failed[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"

    sqlalchemy_event.listen(engine, "after_cursor_execute", after_first_lock)
    try:
        batches = [
            threading.Thread(target=batch, args=("one", [(OTHER_PHONE, "can I pay next week?"),
                                                        (PHONE, "who is this?")])),
            threading.Thread(target=batch, args=("two", [(PHONE, "I will pay friday"),
                                                        (OTHER_PHONE, "call me later")])),
        ]  # fmt: skip
        for thread in batches:
            thread.start()
        for thread in batches:
            thread.join(60)
    finally:
        sqlalchemy_event.remove(engine, "after_cursor_execute", after_first_lock)
    assert failed == {}
    assert len(rows(engine, inbox_messages, direction="inbound")) == 4


def test_two_stops_written_at_once_are_confirmed_once(engine: Engine) -> None:
    """Two web processes each write a "please stop texting me" from a number no account
    has, at the same moment: the number is suppressed once and confirmed once, by the first
    to commit (the second waits for it, then finds the number opted out)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer: the second batch waits for the first to commit")
    applied, second_done = threading.Event(), threading.Event()
    said: dict[str, list[str | None]] = {}
    failed: dict[str, str] = {}

    def write(name: str, sid: str) -> None:
        stop = inbound("please stop texting me", sender="+16175550199", key=f"in:{sid}")
        try:
            with engine.begin() as connection:
                if name == "second":
                    applied.wait(5)
                results = apply_batch(connection, [Incoming(stop, sid)], NOW, WE_ANSWER)
                said[name] = [result.answer for result in results]
                if name == "first":  # its transaction stays open while the second writes
                    applied.set()
                    second_done.wait(2)
        except Exception as exc:  # reported below
            failed[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        finally:
            applied.set()
            if name == "second":
                second_done.set()

    writers = [threading.Thread(target=write, args=(name, sid))
               for name, sid in (("first", "SM1"), ("second", "SM2"))]  # fmt: skip
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(60)
    assert failed == {}
    assert said == {"first": [WE_ANSWER.replies.opt_out_confirmation], "second": [None]}
    suppressed = [(s.address, s.reason) for s in rows(engine, suppressions)]
    assert suppressed == [("+16175550199", "stop")]


def test_an_operators_opt_out_of_a_number_and_a_batch_from_it_do_not_deadlock(
    engine: Engine,
) -> None:
    """`compliance record --kind opt_out --address PHONE` suppresses the number on texts and
    calls; a webhook batch with a 9 pressed in a call to it and a STOP texted from it
    suppresses the same two. Each takes both locks at once, in the same order (the batch's
    voice first, for this number), so one waits for the other instead of both waiting in a
    circle while the operator's holds texts and asks for calls."""
    if engine.dialect.name != "postgresql":
        pytest.skip("advisory locks: PostgreSQL (SQLite has one writer)")
    assert _lock_key("voice", PHONE) < _lock_key("sms", PHONE)  # the batch's order
    account_id = add_account(engine)
    call = add_attempt(engine, account_id, channel="voice", to=PHONE, message_id="CA1")
    pressed_9 = event(EventType.OPTED_OUT, provider="twilio_voice", kind="call_status",
                      key="gather:CA1", attempt_id=call, provider_message_id="CA1",
                      to_address=PHONE, suppression="stop")  # fmt: skip
    text_stop = inbound("STOP", sender=PHONE, key="SM-stop", at=NOW + timedelta(seconds=1))
    names: dict[int, str] = {}
    operator_holds, batch_asked = threading.Event(), threading.Event()
    failed: dict[str, str] = {}

    def before(_c: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if names.get(threading.get_ident()) == "batch" and "pg_advisory_xact_lock" in statement:
            operator_holds.wait(5)  # the operator's first lock is taken first

    def after(_c: Any, _cursor: Any, statement: str, *_: Any) -> None:
        name = names.get(threading.get_ident())
        if "pg_advisory_xact_lock" not in statement:
            return
        if name == "operator" and not operator_holds.is_set():
            operator_holds.set()  # give the batch its chance to lock before the next
            batch_asked.wait(1)
            time.sleep(0.5)
        elif name == "batch":
            batch_asked.set()

    def operator() -> None:
        names[threading.get_ident()] = "operator"
        try:
            with engine.begin() as connection:
                _about_an_address(connection, account_id, "opt_out", ("sms", "voice"), PHONE,
                                  NOW, "phone call with an agent", None)  # fmt: skip
        except Exception as exc:  # reported below
            failed["operator"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        finally:
            operator_holds.set()

    def batch() -> None:
        names[threading.get_ident()] = "batch"
        try:
            with engine.begin() as connection:
                apply_batch(connection, [Incoming(pressed_9), Incoming(text_stop)],
                            NOW + timedelta(seconds=2), WE_ANSWER)  # fmt: skip
        except Exception as exc:  # reported below
            failed["batch"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        finally:
            batch_asked.set()

    sqlalchemy_event.listen(engine, "before_cursor_execute", before)
    sqlalchemy_event.listen(engine, "after_cursor_execute", after)
    try:
        threads = [threading.Thread(target=operator), threading.Thread(target=batch)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        sqlalchemy_event.remove(engine, "before_cursor_execute", before)
        sqlalchemy_event.remove(engine, "after_cursor_execute", after)
    assert failed == {}
    active = sorted((s.channel, s.reason) for s in rows(engine, suppressions) if not s.lifted_at)
    assert active == [("sms", "stop"), ("voice", "stop")]
