"""An agent's answer to a debtor's reply, on SQLite and PostgreSQL: compliance decides it
now (allow, defer, block, each stored), the answer template wraps the words, and the
dispatcher sends it through the outbox, once, even while the cadence is paused."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sqlite3
import threading
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import DBAPIError

from outreach import agent_actions as actions
from outreach import answers
from outreach.answers import (
    MAX_ANSWER_CHARS,
    Answered,
    AnsweredMeanwhile,
    AnswerKit,
    answer_reply,
    seen_answers,
)
from outreach.clock import FixedClock
from outreach.compliance.rules import load_ruleset
from outreach.compliance_store import attempts, decisions, designated_times, inbox_messages
from outreach.config import Settings
from outreach.dispatcher import Dispatcher
from outreach.errors import NotFoundError
from outreach.events import EventPolicy, apply_events
from outreach.inbox import thread
from outreach.models import Role
from outreach.providers.base import EventType
from outreach.providers.outbox import Outbox
from outreach.ratelimit import RateLimiter
from outreach.rendering.context import SAMPLE_ACCOUNTS, answer_variables, load_company
from outreach.rendering.render import Renderer
from outreach.replies import REPLY_PAUSE_REASON
from outreach.store import accounts, contact_points
from outreach.template_store import published
from outreach.users import users
from tests.conftest import NOW, REPO
from tests.eventdata import EMAIL, PHONE, add_account, event, inbound
from tests.test_planner import FULL, SHORT, add_row, make_settings, publish_templates
from tests.web.ui_support import add_user

KEY = "k" * 24


@pytest.fixture
def settings(engine: Engine, tmp_path: Path, clock: FixedClock) -> Settings:
    publish_templates(engine, clock)
    return make_settings(engine, tmp_path)


@pytest.fixture
def agent_id(engine: Engine) -> int:
    add_user(engine, "ana", Role.AGENT)
    with engine.connect() as connection:
        return int(connection.execute(select(users.c.id)).scalar_one())


def kit(engine: Engine, settings: Settings, *, segments: int = 3) -> AnswerKit:
    with engine.connect() as connection:
        templates = published(connection)
    return AnswerKit(
        rules=load_ruleset(None),
        company=load_company(REPO / "templates"),
        renderer=Renderer(templates.sources),
        version_ids=dict(templates.version_ids),
        public_base_url="https://pay.example.com",
        secret_key="answer-test-secret-key-0123456789",
        default_region="US",
        max_sms_segments=segments,
    )


def sms_reply(engine: Engine, text: str = "Can I pay on Friday?", *, key: str = "r1") -> int:
    apply_events(engine, [inbound(text, key=key, at=NOW)], NOW)
    with engine.connect() as connection:
        return int(
            connection.execute(
                select(inbox_messages.c.id).order_by(inbox_messages.c.id.desc()).limit(1)
            ).scalar_one()
        )


def email_reply(engine: Engine, account_id: int, subject: str = "My bill") -> int:
    with engine.begin() as connection:
        return int(
            connection.execute(
                insert(inbox_messages)
                .values(
                    account_id=account_id, direction="inbound", channel="email",
                    from_address=EMAIL.upper(), to_address="billing@example.com",
                    subject=subject, body="Is this right?", status="open", received_at=NOW,
                )
                .returning(inbox_messages.c.id)
            ).scalar_one()
        )  # fmt: skip


def answer(
    engine: Engine,
    settings: Settings,
    message_id: int,
    words: str = "Yes, Friday is fine. Thank you!",
    *,
    user: int,
    reference: str = "R-1",
    at: datetime = NOW,
    form_key: str = KEY,
    **options: Any,
) -> Any:
    with engine.begin() as connection:
        account = actions.account_by_reference(connection, reference)
        return answer_reply(
            connection, account, message_id, words, form_key, user, kit(engine, settings),
            at, **options,
        )  # fmt: skip


def retire_phone(engine: Engine) -> None:
    """The debtor's number is no longer an active contact point for texts."""
    with engine.begin() as connection:
        connection.execute(
            update(contact_points)
            .where(contact_points.c.address == PHONE, contact_points.c.channel == "sms")
            .values(status="invalid")
        )


def rows(engine: Engine, table: Any) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(select(table).order_by(table.c.id)))


def text_to_two_accounts(engine: Engine) -> tuple[int, int, int, int]:
    """Accounts R-A and R-B with the same phone (one debtor's two debts, or two people
    sharing a number), and one text from it, stored on each: (R-A, R-B, the text on R-A,
    the text on R-B)."""
    a = add_account(engine, "R-A")
    b = add_account(engine, "R-B")
    apply_events(engine, [inbound("Can I pay on Friday?", key="r1", at=NOW)], NOW)
    [on_a, on_b] = rows(engine, inbox_messages)
    assert (on_a.account_id, on_b.account_id) == (a, b)
    assert on_a.provider_event_id == on_b.provider_event_id
    return a, b, on_a.id, on_b.id


def pauses(engine: Engine) -> list[tuple[Any, ...]]:
    """Each account's pause: (reason, until, when it is due next), by account id."""
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                select(accounts.c.pause_reason, accounts.c.paused_until,
                       accounts.c.next_contact_at).order_by(accounts.c.id)
            )
        ]  # fmt: skip


def dispatch(engine: Engine, settings: Settings, at: datetime) -> dict[str, int]:
    clock = FixedClock(at)
    providers: dict[str, Any] = {
        channel: Outbox(settings, clock, channel) for channel in ("sms", "email", "voice")
    }
    sender = Dispatcher(engine, settings, clock, "w1", providers, RateLimiter({}))
    try:
        return dict(asyncio.run(sender.tick()).outcomes)
    finally:
        sender.close()


def outbox(settings: Settings) -> list[dict[str, Any]]:
    path = settings.outbox_path
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_an_sms_answer_is_queued_recorded_and_sent_once(
    engine: Engine, settings: Settings, agent_id: int
) -> None:
    account_id = add_account(engine)
    reply = sms_reply(engine)
    done = answer(engine, settings, reply, user=agent_id)
    assert done.outcome == "queued" and done.send_at == NOW
    [attempt] = rows(engine, attempts)
    assert attempt.channel == "sms" and attempt.to_address == PHONE
    assert attempt.automated is False and attempt.step_key == "answer"
    assert attempt.template_name == "answer" and attempt.template_version_id is not None
    assert attempt.body.startswith("Yes, Friday is fine. Thank you!")
    assert "Reply STOP" in attempt.body
    [decision] = [d for d in rows(engine, decisions) if d.stage == "answer"]
    assert decision.verdict == "allow" and decision.attempt_id == attempt.id
    thread = rows(engine, inbox_messages)
    assert thread[0].status == "handled" and thread[0].handled_by == agent_id
    assert (thread[1].direction, thread[1].attempt_id, thread[1].body) == (
        "outbound",
        attempt.id,
        "Yes, Friday is fine. Thank you!",
    )
    # The reply paused the cadence; handling the last reply ended that pause. An agent's
    # own pause does not hold the answer back either.
    with engine.begin() as connection:
        account = actions.account_by_reference(connection, "R-1")
        actions.pause(connection, account, 7, "talking it through", NOW)
    assert dispatch(engine, settings, NOW) == {"sent": 1}
    [sent] = outbox(settings)
    assert sent["to"] == PHONE and sent["body"] == attempt.body
    assert dispatch(engine, settings, NOW + timedelta(minutes=5)) == {}
    assert len(outbox(settings)) == 1
    with engine.connect() as connection:
        paused = connection.execute(
            select(accounts.c.paused_until).where(accounts.c.id == account_id)
        ).scalar_one()
    assert paused is not None and paused > NOW


@pytest.mark.parametrize(
    ("earlier", "disclosure"),
    [
        pytest.param(None, FULL, id="the debtor wrote first"),
        pytest.param("delivered", SHORT, id="after a text delivered"),
        pytest.param("unknown", FULL, id="after a text that may have left"),
    ],
)
def test_a_debt_collectors_answer_is_its_first_communication_unless_one_reached_the_debtor(
    engine: Engine, settings: Settings, agent_id: int, earlier: str | None, disclosure: str
) -> None:
    """The debtor's own message is not the collector's: the first answer to a debtor no
    message has reached carries the whole disclosure (Reg F 1006.18(e)(1))."""
    account_id = add_account(engine)
    with engine.begin() as connection:
        connection.execute(
            update(accounts).where(accounts.c.id == account_id).values(collector_type="third_party")
        )
    if earlier is not None:
        at = NOW - timedelta(days=2)
        add_row(engine, attempts, account_id=account_id, idempotency_key="earlier",
                step_key="manual", channel="sms", to_address=PHONE, template_name="x",
                tone="firm", locale="en", body="x", status=earlier, automated=False,
                created_at=at, updated_at=at, sent_at=at)  # fmt: skip
    reply = sms_reply(engine)
    assert answer(engine, settings, reply, user=agent_id).outcome == "queued"
    [queued] = [a for a in rows(engine, attempts) if a.step_key == "answer"]
    assert queued.body == f"Yes, Friday is fine. Thank you! {disclosure} Reply STOP to opt out."


def test_the_same_form_sent_twice_queues_one_answer(
    engine: Engine, settings: Settings, agent_id: int
) -> None:
    add_account(engine)
    reply = sms_reply(engine)
    assert answer(engine, settings, reply, user=agent_id).outcome == "queued"
    again = answer(engine, settings, reply, user=agent_id)
    assert again.outcome == "duplicate" and "already queued" in again.describe()
    other = answer(engine, settings, reply, "And one more thing.", user=agent_id,
                   form_key="z" * 24)  # fmt: skip
    assert other.outcome == "queued"
    assert len(rows(engine, attempts)) == 2


def test_outside_the_contact_window_the_answer_waits_for_it(
    engine: Engine, settings: Settings, agent_id: int
) -> None:
    add_account(engine)
    reply = sms_reply(engine)
    late = datetime(2026, 11, 3, 3, 0, tzinfo=UTC)  # 22:00 in Boston
    done = answer(engine, settings, reply, user=agent_id, at=late)
    opens = datetime(2026, 11, 3, 13, 0, tzinfo=UTC)  # 08:00 in Boston
    assert done.outcome == "deferred" and done.send_at == opens
    assert "MA_HOURS" in done.describe()  # Massachusetts: no contact 21:00 to 08:00
    [attempt] = rows(engine, attempts)
    assert attempt.status == "queued" and attempt.next_try_at == opens
    assert dispatch(engine, settings, late) == {}
    assert dispatch(engine, settings, opens) == {"sent": 1}


def test_an_opted_out_number_is_not_answered_and_the_decision_is_kept(
    engine: Engine, settings: Settings, agent_id: int
) -> None:
    add_account(engine)
    reply = sms_reply(engine)
    apply_events(engine, [inbound("STOP", key="stop", at=NOW)], NOW)
    done = answer(engine, settings, reply, user=agent_id, at=NOW + timedelta(minutes=1))
    assert done.outcome == "blocked"
    assert "Compliance does not allow an answer by sms" in done.describe()
    assert rows(engine, attempts) == []
    [decision] = [d for d in rows(engine, decisions) if d.stage == "answer"]
    assert decision.verdict == "block" and decision.attempt_id is None
    thread = rows(engine, inbox_messages)
    assert all(m.direction == "inbound" for m in thread)
    assert thread[0].status == "open"  # still the agent's to handle


def test_a_text_asking_not_to_be_called_or_texted_is_not_answered_by_text(
    engine: Engine, settings: Settings, agent_id: int
) -> None:
    """Texts are the second medium the debtor listed: the answer is blocked, not sent."""
    add_account(engine)
    sms_reply(engine, "Don't call or text me")
    [reply] = [m.id for m in rows(engine, inbox_messages) if m.direction == "inbound"]
    done = answer(engine, settings, reply, "Understood. One question first...", user=agent_id)
    assert done.outcome == "blocked"
    assert dispatch(engine, settings, NOW) == {} and outbox(settings) == []


def test_an_email_asking_in_its_subject_to_stop_emailing_is_not_answered_by_email(
    engine: Engine, settings: Settings, agent_id: int
) -> None:
    """Its body is empty: the request is in the subject, and the answer is blocked."""
    add_account(engine)
    mail = event(EventType.REPLIED, provider="sendgrid_email", kind="inbound",
                 from_address=EMAIL.lower(), to_address="billing@example.com",
                 subject="Please stop emailing me", body="")  # fmt: skip
    apply_events(engine, [mail], NOW)
    [reply] = [m.id for m in rows(engine, inbox_messages) if m.direction == "inbound"]
    assert answer(engine, settings, reply, "Noted, thank you.", user=agent_id).outcome == "blocked"
    assert dispatch(engine, settings, NOW) == {} and outbox(settings) == []


def test_an_email_answer_keeps_the_thread_and_escapes_the_words(
    engine: Engine, settings: Settings, agent_id: int
) -> None:
    account_id = add_account(engine)
    reply = email_reply(engine, account_id)
    words = 'We got it <b>thanks</b> {{ 7 * 7 }}\n\nSee you "soon".'
    assert answer(engine, settings, reply, words, user=agent_id).outcome == "queued"
    [attempt] = rows(engine, attempts)
    assert attempt.channel == "email" and attempt.to_address == EMAIL.lower()
    assert attempt.subject == "Re: My bill"
    assert "{{ 7 * 7 }}" in attempt.body and "49" not in attempt.body
    assert attempt.body_html is not None
    assert "&lt;b&gt;thanks&lt;/b&gt;" in attempt.body_html and "<b>" not in attempt.body_html
    assert "https://pay.example.com/u/" in attempt.body
    assert "https://pay.example.com/u/" in attempt.body_html
    assert dispatch(engine, settings, NOW) == {"sent": 1}


def test_a_spanish_account_is_answered_in_spanish(
    engine: Engine, settings: Settings, agent_id: int
) -> None:
    account_id = add_account(engine)
    with engine.begin() as connection:
        connection.execute(update(accounts).values(locale="es_US"))
    reply = email_reply(engine, account_id, subject="Re: Mi cuenta")
    answer(engine, settings, reply, "Gracias.", user=agent_id)
    [attempt] = rows(engine, attempts)
    assert attempt.subject == "Re: Mi cuenta" and attempt.body.startswith("Hola Pat:")
    assert attempt.locale == "es"


def test_an_answer_in_the_english_default_records_english_whatever_the_accounts_locale(
    engine: Engine, settings: Settings, agent_id: int
) -> None:
    account_id = add_account(engine)
    with engine.begin() as connection:
        connection.execute(update(accounts).values(locale="fr_FR"))  # no French variant
    reply = email_reply(engine, account_id)
    answer(engine, settings, reply, "Thanks.", user=agent_id)
    [attempt] = rows(engine, attempts)
    assert attempt.body.startswith("Hi Pat") and attempt.locale == "en"


@pytest.mark.parametrize(
    ("words", "form_key", "reason"),
    [
        ("   \n ", KEY, "write the answer first"),
        ("x" * (MAX_ANSWER_CHARS + 1), KEY, f"at most {MAX_ANSWER_CHARS} characters"),
        ("Hello", "short", "the answer form is out of date"),
        ("Hello", "bad key with spaces!!", "the answer form is out of date"),
        ("word " * 120, KEY, "would be 5 segments.*the limit is 3 segments"),
        ("Hello\x00there", KEY, "a NUL character"),
    ],
)
def test_input_that_cannot_be_sent_is_refused_and_writes_nothing(
    engine: Engine, settings: Settings, agent_id: int, words: str, form_key: str, reason: str
) -> None:
    add_account(engine)
    reply = sms_reply(engine)
    with pytest.raises(actions.ActionRefused, match=reason):
        answer(engine, settings, reply, words, user=agent_id, form_key=form_key)
    assert rows(engine, attempts) == []
    assert [d for d in rows(engine, decisions) if d.stage == "answer"] == []
    assert rows(engine, inbox_messages)[0].status == "open"


def test_only_the_debtors_own_active_address_is_answered(
    engine: Engine, settings: Settings, agent_id: int
) -> None:
    add_account(engine)
    add_account(engine, "R-2", phone="+16175550199", email="other@example.com")
    reply = sms_reply(engine)
    with pytest.raises(NotFoundError):  # a message of another account
        answer(engine, settings, reply, user=agent_id, reference="R-2")
    retire_phone(engine)
    with pytest.raises(actions.ActionRefused, match="not one of the account's active sms"):
        answer(engine, settings, reply, user=agent_id)
    assert rows(engine, attempts) == []


def test_our_own_messages_and_closed_accounts_are_not_answered(
    engine: Engine, settings: Settings, agent_id: int
) -> None:
    add_account(engine)
    reply = sms_reply(engine)
    answer(engine, settings, reply, user=agent_id)
    ours = rows(engine, inbox_messages)[-1]
    assert ours.direction == "outbound"
    with pytest.raises(actions.ActionRefused, match="one of ours"):
        answer(engine, settings, ours.id, user=agent_id, form_key="y" * 24)
    with engine.begin() as connection:
        connection.execute(update(accounts).values(status="closed"))
    with pytest.raises(actions.ActionRefused, match="the account is closed"):
        answer(engine, settings, reply, user=agent_id, form_key="y" * 24)


def test_a_paid_account_may_still_be_answered(
    engine: Engine, settings: Settings, agent_id: int
) -> None:
    add_account(engine)
    reply = sms_reply(engine, "I paid it all yesterday")
    with engine.begin() as connection:
        connection.execute(update(accounts).values(status="paid"))
    assert answer(engine, settings, reply, "Received, thank you!", user=agent_id).outcome == (
        "queued"
    )
    assert dispatch(engine, settings, NOW) == {"sent": 1}


def test_a_missing_answer_template_is_named(
    engine: Engine, settings: Settings, agent_id: int
) -> None:
    add_account(engine)
    reply = sms_reply(engine)
    from outreach.template_store import versions

    with engine.begin() as connection:
        connection.execute(versions.delete().where(versions.c.name == "answer"))
    with pytest.raises(actions.ActionRefused, match="publishes the sms answer template"):
        answer(engine, settings, reply, user=agent_id)


def test_an_answer_the_template_would_cut_is_refused(
    engine: Engine, settings: Settings, agent_id: int
) -> None:
    """A template that cuts long answers passes lint's short samples; the answer that it
    would cut is refused before it is queued, its words kept by the page."""
    add_account(engine)
    reply = sms_reply(engine)
    from outreach.template_store import versions

    cutting = "{{ answer[:40] }}\n{%- include '_partials/sms_footer.j2' %}"
    with engine.begin() as connection:
        connection.execute(
            versions.update()
            .where(versions.c.channel == "sms", versions.c.name == "answer")
            .values(content=cutting)
        )
    short = "Friday is fine."
    assert answer(engine, settings, reply, short, user=agent_id).outcome == "queued"
    long = "Friday is fine, and the late fee will be waived as we agreed on the phone."
    with pytest.raises(actions.ActionRefused, match="does not show the whole answer in its text"):
        answer(engine, settings, reply, long, user=agent_id, form_key="z" * 24)
    assert len(rows(engine, attempts)) == 1


def test_an_answer_that_threatens_suit_on_a_time_barred_debt_is_refused(
    engine: Engine, settings: Settings
) -> None:
    """Reg F 1006.26(b): the agent's words are read as the debtor would get them."""
    threat = "Pay by Friday or we will take you to court."
    barred = replace(SAMPLE_ACCOUNTS[1], time_barred=True, extra=answer_variables(threat))
    with pytest.raises(
        actions.ActionRefused, match=r"time-barred.*'take you to court' in its text"
    ):
        answers._rendered("sms", barred, threat, kit(engine, settings), NOW.date())
    _, rendered = answers._rendered(
        "sms", replace(barred, time_barred=False), threat, kit(engine, settings), NOW.date()
    )
    assert threat in rendered.text


def test_an_answer_to_an_address_reported_wrong_since_is_not_sent(
    engine: Engine, settings: Settings, agent_id: int
) -> None:
    add_account(engine)
    reply = sms_reply(engine)
    answer(engine, settings, reply, user=agent_id)
    retire_phone(engine)
    assert dispatch(engine, settings, NOW) == {"cancelled": 1}
    assert outbox(settings) == []
    [attempt] = rows(engine, attempts)
    assert attempt.status == "cancelled" and attempt.error_message == "sms address no longer in use"


def test_only_the_answer_shows_its_delivery_in_the_conversation(
    engine: Engine, settings: Settings, agent_id: int
) -> None:
    """The debtor's replies, and the automatic texts that answered HELP or STOP, name the
    message they replied to: not theirs to show its delivery."""
    account_id = add_account(engine)
    reply = sms_reply(engine)
    answer(engine, settings, reply, user=agent_id)
    assert dispatch(engine, settings, NOW) == {"sent": 1}
    later = NOW + timedelta(minutes=10)
    # Outreach answers HELP itself where the provider does not.
    policy = EventPolicy(keyword_answering_providers=frozenset())
    [sent] = rows(engine, attempts)
    help_asked = inbound("HELP", key="help", at=later, provider_message_id=sent.provider_message_id)
    apply_events(engine, [help_asked], later, policy)
    with engine.connect() as connection:
        shown = [(m.direction, m.body[:20], m.delivery) for m in thread(connection, account_id)]
    answered = [row for row in shown if row[2] is not None]
    assert answered == [("outbound", "Yes, Friday is fine.", "sent")]
    assert [d for d, _, _ in shown] == ["inbound", "outbound", "outbound"]  # and the HELP text


def test_an_answer_counts_and_waits_for_the_caps_like_any_message(
    engine: Engine, settings: Settings, agent_id: int
) -> None:
    """Massachusetts: two calls or texts a week for each debt. After two texts this week,
    a text answer waits for the cap, and the page says until when and why."""
    account_id = add_account(engine)
    for i, days in enumerate((3, 2)):
        at = NOW - timedelta(days=days)
        add_row(engine, attempts, account_id=account_id, idempotency_key=f"{account_id}:{i}",
                step_key=f"earlier-{i}", channel="sms", to_address=PHONE, template_name="x",
                tone="firm", locale="en", body="x", status="delivered", automated=True,
                created_at=at, updated_at=at, sent_at=at)  # fmt: skip
    reply = sms_reply(engine)
    done = answer(engine, settings, reply, user=agent_id)
    assert done.outcome == "deferred" and done.send_at is not None
    assert done.send_at > NOW + timedelta(days=3)  # when the first text leaves the week
    assert "MA_2_PER_7_DAYS_PER_DEBT" in done.describe()


def test_a_debtor_who_writes_in_a_designated_time_gets_one_answer_then(
    engine: Engine, settings: Settings, agent_id: int
) -> None:
    """Reg F comment 6(b)(1)-2: the debtor said Mondays 09:00-17:00 are inconvenient, then
    texts at 10:00 on a Monday. One answer by text may go at once (and passes the check at
    sending); a second waits for 17:00 like any message."""
    account_id = add_account(engine)
    add_row(engine, designated_times, account_id=account_id, days="mon", start_local=time(9),
            end_local=time(17), source="by phone", created_at=NOW - timedelta(days=7))  # fmt: skip
    reply = sms_reply(engine)
    first = answer(engine, settings, reply, user=agent_id, at=NOW + timedelta(minutes=5))
    assert first.outcome == "queued"
    [decision] = [d for d in rows(engine, decisions) if d.stage == "answer"]
    assert [r["code"] for r in decision.reasons] == [
        "OK",
        "REGF_ONE_RESPONSE_TO_CONSUMER_INITIATED",
    ]
    assert dispatch(engine, settings, NOW + timedelta(minutes=6)) == {"sent": 1}
    second = answer(engine, settings, reply, "One more thing.", user=agent_id,
                    at=NOW + timedelta(minutes=10), form_key="z" * 24)  # fmt: skip
    assert second.outcome == "deferred"
    assert second.send_at == datetime(2026, 11, 2, 22, 0, tzinfo=UTC)  # 17:00 in Boston
    assert "DESIGNATED_INCONVENIENT_TIME" in second.describe()


def test_a_form_has_seen_the_answers_to_its_own_reply_only(
    engine: Engine, settings: Settings, agent_id: int
) -> None:
    """Two replies on one account, both forms opened before any answer: answering one
    reply leaves the other's form as it was; a second answer to the same reply from a
    form opened before the first is refused, with who answered and when."""
    account_id = add_account(engine)
    text = sms_reply(engine)
    mail = email_reply(engine, account_id)
    with engine.connect() as connection:
        opened = seen_answers(connection, account_id)
    assert (opened.form_value(text), opened.form_value(mail)) == (f"{text}:0", f"{mail}:0")
    first = answer(engine, settings, text, user=agent_id, seen=opened.newest(text))
    assert first.outcome == "queued"
    other = answer(engine, settings, mail, "Yes, it is.", user=agent_id, form_key="m" * 24,
                   seen=opened.newest(mail))  # fmt: skip
    assert other.outcome == "queued"
    with pytest.raises(AnsweredMeanwhile, match=r"ana answered this reply at 2026-11-02 15:00"):
        answer(engine, settings, text, "Me too.", user=agent_id, form_key="t" * 24,
               seen=opened.newest(text))  # fmt: skip
    [to_text, to_mail] = rows(engine, attempts)
    with engine.connect() as connection:
        now_seen = seen_answers(connection, account_id)
    assert (now_seen.newest(text), now_seen.newest(mail)) == (to_text.id, to_mail.id)
    # Opened after the first answer, the text's form may answer again, deliberately.
    again = answer(engine, settings, text, "One more thing.", user=agent_id,
                   form_key="t" * 24, seen=now_seen.newest(text))  # fmt: skip
    assert again.outcome == "queued"


def test_a_text_two_accounts_share_answered_from_one_is_answered_for_the_other(
    engine: Engine, settings: Settings, agent_id: int
) -> None:
    """One text from a number two accounts have is stored on each. Two agents open the two
    pages and answer it: the second is refused and told who answered it from which
    account, and the debtor gets one text. The other account's page then shows that answer,
    and its form, having seen it, may answer again, deliberately."""
    _, b, on_a, on_b = text_to_two_accounts(engine)
    with engine.connect() as connection:
        seen_b = seen_answers(connection, b)
    assert seen_b.form_value(on_b) == f"{on_b}:0"
    first = answer(engine, settings, on_a, "Yes, Friday is fine.", user=agent_id,
                   reference="R-A", seen=0)  # fmt: skip
    assert first.outcome == "queued"
    with pytest.raises(AnsweredMeanwhile, match=r"ana answered this reply from R-A at 2026-11-02"):
        answer(engine, settings, on_b, "Friday works.", user=agent_id, reference="R-B",
               form_key="z" * 24, seen=seen_b.newest(on_b))  # fmt: skip
    assert dispatch(engine, settings, NOW + timedelta(minutes=1)) == {"sent": 1}
    assert len(outbox(settings)) == 1
    [to_a] = rows(engine, attempts)
    with engine.connect() as connection:
        reopened = seen_answers(connection, b)
    assert reopened.newest(on_b) == to_a.id
    assert [(c.reference, c.status) for c in reopened.copies_of(on_b)] == [("R-A", "handled")]
    [shown] = reopened.answered_elsewhere(on_b)
    assert (shown.reference, shown.by, shown.words, shown.delivery) == (
        "R-A", "ana", "Yes, Friday is fine.", "sent",
    )  # fmt: skip
    again = answer(engine, settings, on_b, "Friday works.", user=agent_id, reference="R-B",
                   form_key="z" * 24, seen=reopened.newest(on_b))  # fmt: skip
    assert again.outcome == "queued"


def test_a_text_two_accounts_share_gets_one_answer_in_its_designated_time(
    engine: Engine, settings: Settings, agent_id: int
) -> None:
    """Reg F comment 6(b)(1)-2 allows one answer to the debtor's message in a time they
    designated inconvenient: the message's copy on each account does not make it two."""
    for account_id in text_to_two_accounts(engine)[:2]:
        add_row(engine, designated_times, account_id=account_id, days="mon",
                start_local=time(9), end_local=time(17), source="by phone",
                created_at=NOW - timedelta(days=7))  # fmt: skip
    [on_a, on_b] = [m.id for m in rows(engine, inbox_messages)]
    at = NOW + timedelta(minutes=5)  # 10:05 on a Monday in Boston
    first = answer(engine, settings, on_a, user=agent_id, reference="R-A", at=at)
    assert first.outcome == "queued"
    second = answer(engine, settings, on_b, "Friday works.", user=agent_id, reference="R-B",
                    at=at, form_key="z" * 24)  # fmt: skip
    assert second.outcome == "deferred"
    assert second.send_at == datetime(2026, 11, 2, 22, 0, tzinfo=UTC)  # 17:00 in Boston
    assert "DESIGNATED_INCONVENIENT_TIME" in second.describe()
    assert dispatch(engine, settings, at + timedelta(minutes=1)) == {"sent": 1}


def test_answering_a_texts_copy_handles_every_copy_and_ends_their_reply_pauses(
    engine: Engine, settings: Settings, agent_id: int
) -> None:
    """The debtor was answered, whichever account's page it was answered from: no copy
    stays open for another agent to answer again, and no account stays paused for it.
    Unticked, "and mark the reply handled" leaves every copy open."""
    _, _, on_a, on_b = text_to_two_accounts(engine)
    paused = pauses(engine)
    assert [(reason, until > NOW) for reason, until, _ in paused] == [
        (REPLY_PAUSE_REASON, True),
    ] * 2  # fmt: skip
    answer(engine, settings, on_b, user=agent_id, reference="R-B", mark_handled=False)
    assert [m.status for m in rows(engine, inbox_messages) if m.direction == "inbound"] == [
        "open", "open",
    ]  # fmt: skip
    assert pauses(engine) == paused
    later = NOW + timedelta(hours=1)
    answer(engine, settings, on_a, "And Friday it is.", user=agent_id, reference="R-A",
           at=later, form_key="z" * 24)  # fmt: skip
    copies = [m for m in rows(engine, inbox_messages) if m.direction == "inbound"]
    assert [(m.id, m.status, m.handled_by, m.handled_at) for m in copies] == [
        (on_a, "handled", agent_id, later), (on_b, "handled", agent_id, later),
    ]  # fmt: skip
    assert pauses(engine) == [(None, None, later)] * 2


def test_two_agents_answering_two_accounts_copies_at_once_queue_one(
    engine: Engine, settings: Settings, agent_id: int
) -> None:
    """Two agents send at the same instant, each from the page of one of the two accounts
    that have the debtor's number: one answer is queued, the other agent is told of it
    (the copies are locked in one order: neither waits for the other in a circle)."""
    a, b, on_a, on_b = text_to_two_accounts(engine)
    kit_now = kit(engine, settings)
    start = threading.Barrier(2, timeout=30)
    outcomes: list[BaseException | Answered] = []

    def send(reference: str, reply: int, words: str, form_key: str) -> None:
        try:
            start.wait()
            with engine.begin() as connection:
                account = actions.account_by_reference(connection, reference)
                outcomes.append(answer_reply(connection, account, reply, words, form_key,
                                             agent_id, kit_now, NOW, seen=0))  # fmt: skip
        except BaseException as exc:
            outcomes.append(exc)

    agents = [
        threading.Thread(target=send, args=("R-A", on_a, "Answer 1.", "1" * 24)),
        threading.Thread(target=send, args=("R-B", on_b, "Answer 2.", "2" * 24)),
    ]
    for thread_ in agents:
        thread_.start()
    for thread_ in agents:
        thread_.join(timeout=60)
    assert not any(thread_.is_alive() for thread_ in agents)
    queued = [o for o in outcomes if isinstance(o, Answered)]
    refused = [o for o in outcomes if isinstance(o, AnsweredMeanwhile)]
    assert len(queued) == 1 and len(refused) == 1, outcomes
    [attempt] = rows(engine, attempts)
    assert attempt.account_id in (a, b)
    assert [m.status for m in rows(engine, inbox_messages) if m.direction == "inbound"] == [
        "handled", "handled",
    ]  # fmt: skip


def test_an_answer_still_being_committed_is_not_missed_by_a_page_opened_meanwhile(
    backend: str, engine: Engine, settings: Settings, agent_id: int
) -> None:
    """PostgreSQL: the answer to reply B takes its attempt id, then an answer to reply A
    takes a larger one and commits first; a page opened then shows A's answer, not B's.
    Its form for B still sees B's answer once committed: what a form has seen is its own
    reply's newest answer, not the account's newest attempt."""
    if backend == "sqlite":
        pytest.skip("SQLite writes one transaction at a time: no answer commits meanwhile")
    account_id = add_account(engine)
    reply_a = sms_reply(engine)
    reply_b = email_reply(engine, account_id)
    kit_now = kit(engine, settings)
    written, go_on = threading.Event(), threading.Event()
    failed: list[BaseException] = []

    def slow_answer_to_b() -> None:
        try:
            with engine.begin() as connection:
                account = actions.account_by_reference(connection, "R-1")
                answer_reply(connection, account, reply_b, "About your bill.", "b" * 24,
                             agent_id, kit_now, NOW, mark_handled=False, seen=0)  # fmt: skip
                written.set()
                assert go_on.wait(30)
        except BaseException as exc:
            failed.append(exc)
            written.set()

    slow = threading.Thread(target=slow_answer_to_b)
    slow.start()
    assert written.wait(30) and not failed
    to_a = answer(engine, settings, reply_a, user=agent_id, form_key="a" * 24,
                  mark_handled=False)  # fmt: skip
    assert to_a.outcome == "queued"
    with engine.connect() as connection:
        opened = seen_answers(connection, account_id)
    go_on.set()
    slow.join(timeout=30)
    assert not slow.is_alive() and not failed
    [answer_a] = [a for a in rows(engine, attempts) if a.channel == "sms"]
    [answer_b] = [a for a in rows(engine, attempts) if a.channel == "email"]
    assert answer_b.id < answer_a.id  # the account's newest attempt hid B's answer
    assert opened.newest(reply_a) == answer_a.id and opened.newest(reply_b) == 0
    with pytest.raises(AnsweredMeanwhile, match="answered this reply"):
        answer(engine, settings, reply_b, "Your bill is right.", user=agent_id,
               form_key="c" * 24, seen=opened.newest(reply_b))  # fmt: skip
    assert len(rows(engine, attempts)) == 2


def test_two_answers_to_one_reply_started_at_once_queue_one(
    engine: Engine, settings: Settings, agent_id: int
) -> None:
    """Two agents send at the same instant from forms opened together: exactly one answer
    is queued, the other agent is told of it."""
    account_id = add_account(engine)
    reply = sms_reply(engine)
    with engine.connect() as connection:
        seen = seen_answers(connection, account_id).newest(reply)
    kit_now = kit(engine, settings)
    start = threading.Barrier(2, timeout=30)
    outcomes: list[BaseException | Answered] = []

    def send(words: str, form_key: str) -> None:
        try:
            start.wait()
            with engine.begin() as connection:
                account = actions.account_by_reference(connection, "R-1")
                outcomes.append(answer_reply(connection, account, reply, words, form_key,
                                             agent_id, kit_now, NOW, seen=seen))  # fmt: skip
        except BaseException as exc:
            outcomes.append(exc)

    agents = [threading.Thread(target=send, args=(f"Answer {n}.", str(n) * 24)) for n in (1, 2)]
    for thread_ in agents:
        thread_.start()
    for thread_ in agents:
        thread_.join(timeout=60)
    assert not any(thread_.is_alive() for thread_ in agents)
    queued = [o for o in outcomes if isinstance(o, Answered)]
    refused = [o for o in outcomes if isinstance(o, AnsweredMeanwhile)]
    assert len(queued) == 1 and len(refused) == 1, outcomes
    assert queued[0].outcome == "queued"
    assert len(rows(engine, attempts)) == 1


def test_two_agents_answering_at_once_are_checked_one_after_the_other(
    engine: Engine, settings: Settings, agent_id: int
) -> None:
    """The second waits for the first to commit, then sees its answer: on PostgreSQL the
    answer locks the reply's row first; SQLite has no row locks, and the answer takes the
    database's write lock first."""
    account_id = add_account(engine)
    reply = sms_reply(engine)
    with engine.connect() as connection:
        seen = seen_answers(connection, account_id).newest(reply)
    kit_now = kit(engine, settings)
    first_in = threading.Event()
    outcome: list[BaseException | Answered] = []

    def second() -> None:
        first_in.wait()
        try:
            with engine.begin() as connection:
                account = actions.account_by_reference(connection, "R-1")
                outcome.append(answer_reply(connection, account, reply, "Me too.", "b" * 24,
                                            agent_id, kit_now, NOW, seen=seen))  # fmt: skip
        except BaseException as exc:
            outcome.append(exc)

    other = threading.Thread(target=second)
    other.start()
    with engine.begin() as connection:
        account = actions.account_by_reference(connection, "R-1")
        answer_reply(connection, account, reply, "Friday is fine.", "a" * 24, agent_id,
                     kit_now, NOW, seen=seen)  # fmt: skip
        first_in.set()
        other.join(timeout=0.5)
        assert other.is_alive()  # waiting for this transaction
    other.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], AnsweredMeanwhile)
    assert len(rows(engine, attempts)) == 1


def reply_locked(engine: Engine, reply: int) -> bool:
    """Whether a transaction holds the lock ``answer_reply`` takes on the reply, asked
    without waiting: on SQLite the database's write lock, on PostgreSQL the reply's row."""
    if engine.dialect.name == "sqlite":
        assert engine.url.database
        probe = sqlite3.connect(engine.url.database, timeout=0)
        try:
            probe.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            return True
        finally:
            probe.rollback()
            probe.close()
        return False
    try:
        with engine.begin() as other:
            other.execute(
                select(inbox_messages.c.id)
                .where(inbox_messages.c.id == reply)
                .with_for_update(nowait=True)
            ).all()
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != "55P03":  # lock_not_available
            raise
        return True
    return False


def test_the_answer_is_rendered_and_checked_before_the_reply_is_locked(
    engine: Engine, settings: Settings, agent_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checking that an email shows the whole answer may take a while: meanwhile the
    daemon and the webhooks write (on SQLite the lock is the database's), and another
    agent's answer to another reply goes ahead."""
    account_id = add_account(engine)
    reply = email_reply(engine, account_id)
    locked_while: list[str] = []
    render, check = Renderer.render_key, answers.check_answer_shown

    def rendering(renderer: Renderer, *args: Any) -> Any:
        locked_while.extend(["rendering"] if reply_locked(engine, reply) else [])
        return render(renderer, *args)

    def checking(*args: Any) -> Any:
        locked_while.extend(["checking"] if reply_locked(engine, reply) else [])
        return check(*args)

    monkeypatch.setattr(Renderer, "render_key", rendering)
    monkeypatch.setattr(answers, "check_answer_shown", checking)
    assert answer(engine, settings, reply, user=agent_id).outcome == "queued"
    assert locked_while == []
    [attempt] = rows(engine, attempts)
    assert attempt.body.startswith("Hi Pat,") and "Yes, Friday is fine." in attempt.body_html
    # The probe sees the lock when it is held.
    with engine.begin() as connection:
        assert answers._locked_reply(connection, reply)[0] is not None
        assert reply_locked(engine, reply)
    assert not reply_locked(engine, reply)


def test_an_answer_rendered_before_the_lock_is_rendered_again_if_the_account_changed(
    engine: Engine, settings: Settings, agent_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The debtor's name changes while the answer renders, before the reply is locked:
    the answer queued greets them by the new one."""
    account_id = add_account(engine)
    reply = email_reply(engine, account_id)
    greeted: list[str] = []
    render = Renderer.render_key

    def rendering(renderer: Renderer, key: Any, context: Any) -> Any:
        greeted.append(context["debtor"].first_name)
        if len(greeted) == 1:
            with engine.begin() as connection:
                connection.execute(update(accounts).values(name="Robin Smith"))
        return render(renderer, key, context)

    monkeypatch.setattr(Renderer, "render_key", rendering)
    assert answer(engine, settings, reply, user=agent_id).outcome == "queued"
    assert greeted == ["Pat", "Robin"]
    [attempt] = rows(engine, attempts)
    assert attempt.body.startswith("Hi Robin,")


def test_an_answer_whose_html_cannot_be_checked_is_refused(
    engine: Engine, settings: Settings, agent_id: int
) -> None:
    """Past so many @media conditions the answer's HTML is not checked, and not sent."""
    account_id = add_account(engine)
    reply = email_reply(engine, account_id)
    from outreach.template_store import versions

    css = "".join(f"@media (max-width: {300 + n}px) {{ p {{ color: #333 }} }}" for n in range(40))
    with engine.begin() as connection:
        for version in connection.execute(
            select(versions.c.id, versions.c.content).where(
                versions.c.channel == "email", versions.c.name == "answer"
            )
        ).all():
            content = re.sub(
                r"\{% call email\.layout\(.*?\) %\}", rf"\g<0><style>{css}</style>", version.content
            )
            assert content != version.content
            connection.execute(
                versions.update().where(versions.c.id == version.id).values(content=content)
            )
    with pytest.raises(
        actions.ActionRefused, match=r"too many @media blocks to check: 40 \(at most 32\)"
    ):
        answer(engine, settings, reply, user=agent_id)
    assert rows(engine, attempts) == []


def test_an_answer_threatening_suit_on_a_time_barred_debt_is_refused_and_writes_nothing(
    engine: Engine, settings: Settings, agent_id: int
) -> None:
    """Reg F 1006.26(b): from the day the operator gave (today, in Boston), no answer may
    threaten suit; the same words to a debt barred only from tomorrow are queued."""
    account_id = add_account(engine)
    with engine.begin() as connection:
        connection.execute(update(accounts).values(time_barred_on=NOW.date()))
    reply = sms_reply(engine)
    words = "Pay by Friday or we will file a lawsuit."
    with pytest.raises(actions.ActionRefused) as refused:
        answer(engine, settings, reply, words, user=agent_id)
    assert str(refused.value).startswith("the debt is time-barred, and the answer threatens")
    assert "REGF_TIME_BARRED_SUIT_THREAT" in str(refused.value)
    assert rows(engine, attempts) == []
    assert [d for d in rows(engine, decisions) if d.stage == "answer"] == []
    assert rows(engine, inbox_messages)[0].status == "open"
    # Words without a threat go to the time-barred debt's debtor as any answer does.
    assert answer(engine, settings, reply, user=agent_id).outcome == "queued"
    with engine.begin() as connection:
        connection.execute(update(attempts).values(status="cancelled"))
        tomorrow = NOW.date() + timedelta(days=1)
        connection.execute(
            update(accounts).where(accounts.c.id == account_id).values(time_barred_on=tomorrow)
        )
    done = answer(engine, settings, reply, words, user=agent_id, form_key="j" * 24)
    assert done.outcome == "queued"


def test_an_answer_queued_before_its_debt_became_time_barred_is_not_sent_if_it_threatens_suit(
    engine: Engine, settings: Settings, agent_id: int
) -> None:
    """Two answers written at 22:00 in Boston wait for the morning; overnight an import
    says the debt is time-barred from today. The text threatening suit is cancelled, not
    sent (Reg F 1006.26(b)), and says why; the email without a threat, greeting a debtor
    named Sue Lien, goes."""
    account_id = add_account(engine)
    with engine.begin() as connection:
        connection.execute(update(accounts).values(name="Sue Lien"))
    late = datetime(2026, 11, 3, 3, 0, tzinfo=UTC)  # 22:00 in Boston: deferred to 08:00
    threat = "Pay by Friday or we will file a lawsuit."
    text = answer(engine, settings, sms_reply(engine), threat, user=agent_id, at=late)
    greeting = "Thank you, Sue. Friday is fine."
    mail = answer(engine, settings, email_reply(engine, account_id), greeting, user=agent_id,
                  at=late, form_key="m" * 24)  # fmt: skip
    assert (text.outcome, mail.outcome) == ("deferred", "deferred")
    with engine.begin() as connection:
        connection.execute(update(accounts).values(time_barred_on=date(2026, 11, 3)))
    opens = datetime(2026, 11, 3, 13, 0, tzinfo=UTC)
    assert dispatch(engine, settings, opens) == {"cancelled": 1, "sent": 1}
    [sent] = outbox(settings)
    assert sent["to"] == EMAIL.lower() and greeting in sent["body"]
    cancelled, gone = rows(engine, attempts)
    assert (cancelled.channel, cancelled.status, gone.status) == ("sms", "cancelled", "sent")
    assert cancelled.error_message == (
        "REGF_TIME_BARRED_SUIT_THREAT: the debt is time-barred, and the text threatens legal "
        "action ('lawsuit'), which Reg F 1006.26(b) forbids"
    )
    # The conversation shows the answer as cancelled; nothing is planned in its place.
    with engine.connect() as connection:
        shown = [m for m in thread(connection, account_id) if m.direction == "outbound"]
    assert [(m.channel, m.delivery) for m in shown] == [("sms", "cancelled"), ("email", "sent")]
    assert dispatch(engine, settings, opens + timedelta(minutes=5)) == {}
    assert len(rows(engine, attempts)) == 2


# Words of New York's notice on time-barred debts (23 NYCRR 1.3), which speak of suit.
NOTICE = (
    "If a creditor sues you to collect on this debt, you may be able to prevent the creditor "
    "from obtaining a judgment against you."
)


def test_an_answer_quoting_an_approved_notice_goes_to_a_time_barred_debt(
    engine: Engine, settings: Settings, agent_id: int, tmp_path: Path
) -> None:
    """The check before sending reads the notices counsel approved in company.yaml as the
    render check does: an answer on a time-barred debt quoting one verbatim is queued and
    sent, where the same words without the list are refused."""
    add_account(engine)
    with engine.begin() as connection:
        connection.execute(update(accounts).values(time_barred_on=NOW.date()))
    templates = tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    company_file = templates / "company.yaml"
    listed = f"time_barred_notices:\n  - {json.dumps(NOTICE)}\n"
    company_file.write_text(company_file.read_text() + listed)
    words = f"About your question: {NOTICE}"
    reply = sms_reply(engine)
    with pytest.raises(actions.ActionRefused, match="time-barred"):
        answer(engine, settings, reply, words, user=agent_id)
    listing = replace(kit(engine, settings), company=load_company(templates))
    with engine.begin() as connection:
        account = actions.account_by_reference(connection, "R-1")
        done = answer_reply(connection, account, reply, words, KEY, agent_id, listing, NOW)
    assert done.outcome == "queued"
    listed_settings = settings.model_copy(update={"templates_dir": templates})
    assert dispatch(engine, listed_settings, NOW) == {"sent": 1}
    [sent] = outbox(settings)
    assert NOTICE in " ".join(sent["body"].split())


def test_a_time_barred_debtors_own_subject_asking_about_suit_does_not_stop_the_answer(
    engine: Engine, settings: Settings, agent_id: int
) -> None:
    """ "Re: Are you going to sue me?" would be the debtor's words, which the agent cannot
    edit: on a time-barred debt the answer takes the template's own subject and goes; on
    another debt it keeps the debtor's."""
    account_id = add_account(engine)
    with engine.begin() as connection:
        connection.execute(update(accounts).values(time_barred_on=NOW.date()))
    asked = email_reply(engine, account_id, "Are you going to sue me?")
    words = "No. You can pay what you owe at your own pace."
    assert answer(engine, settings, asked, words, user=agent_id).outcome == "queued"
    with engine.begin() as connection:
        connection.execute(update(accounts).values(time_barred_on=None))
    again = email_reply(engine, account_id, "Are you going to sue me?")
    assert answer(engine, settings, again, words, user=agent_id, form_key="m" * 24).outcome == (
        "queued"
    )
    subjects = [attempt.subject for attempt in rows(engine, attempts)]
    assert subjects == ["Your message to Northwind Utilities", "Re: Are you going to sue me?"]


def test_a_running_dispatcher_reads_a_notice_counsel_adds_and_a_mended_company_file(
    engine: Engine, settings: Settings, agent_id: int, tmp_path: Path
) -> None:
    """The web app reads company.yaml for each answer; a dispatcher that has run for a while
    reads it again once it changes: an answer quoting a notice counsel has just listed, or
    sent after a moment when the file could not be read, goes."""
    add_account(engine)
    with engine.begin() as connection:
        connection.execute(update(accounts).values(time_barred_on=NOW.date()))
    templates = tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    company_file = templates / "company.yaml"
    shipped = company_file.read_text()
    company_file.write_text(shipped.replace("texts:", "textz:"))  # caught mid-edit
    listed = settings.model_copy(update={"templates_dir": templates})
    assert answer(engine, listed, sms_reply(engine), user=agent_id).outcome == "queued"
    clock = FixedClock(NOW)
    providers: dict[str, Any] = {
        channel: Outbox(settings, clock, channel) for channel in ("sms", "email", "voice")
    }
    sender = Dispatcher(engine, listed, clock, "w1", providers, RateLimiter({}))
    try:
        assert dict(asyncio.run(sender.tick()).outcomes) == {"sent": 1}
        company_file.write_text(shipped + f"time_barred_notices:\n  - {json.dumps(NOTICE)}\n")
        listing = replace(kit(engine, settings), company=load_company(templates))
        later = NOW + timedelta(minutes=10)
        with engine.begin() as connection:
            account = actions.account_by_reference(connection, "R-1")
            reply = sms_reply(engine, "What happens now?", key="r2")
            words = f"About your question: {NOTICE}"
            done = answer_reply(connection, account, reply, words, "q" * 24, agent_id, listing,
                                later)  # fmt: skip
        assert done.outcome == "queued"
        sender.clock = clock = FixedClock(later)
        assert dict(asyncio.run(sender.tick()).outcomes) == {"sent": 1}
    finally:
        sender.close()


def test_an_answer_checked_before_the_debtors_midnight_is_caught_at_its_latest_instant(
    engine: Engine, settings: Settings, agent_id: int
) -> None:
    """Found fit to go five seconds before the day the debt is time-barred from: at the
    latest instant it may leave (its rate-limit wait and the grace), that day has come, and
    the answer threatening suit does not leave."""
    account_id = add_account(engine)
    barred_on = date(2026, 11, 3)
    with engine.begin() as connection:
        connection.execute(update(accounts).values(time_barred_on=barred_on))
    threat = "Pay by Friday or we will take you to court."
    assert answer(engine, settings, sms_reply(engine), threat, user=agent_id).outcome == "queued"
    [attempt] = rows(engine, attempts)
    midnight = datetime(2026, 11, 3, tzinfo=ZoneInfo("America/New_York"))
    checked = midnight - timedelta(seconds=5)
    send = Dispatcher(engine, settings, FixedClock(checked), "w1", {}, RateLimiter({}))
    with engine.connect() as connection:
        found, records, _, reached = send._debtors(connection, {account_id}, checked)
    account, record = found[account_id], records[account_id]
    assert send._out_of_date(account, record, attempt, checked, reached) is None
    for seconds in (0, 4, 5, 25):
        at = checked + timedelta(seconds=seconds)
        now = send._out_of_date(account, record, attempt, at, reached)
        later = send._out_of_date_later(account, record, attempt, checked, at, reached)
        assert now == later, seconds
        assert (later is not None) == (seconds >= 5), seconds
        assert later is None or "('take you to court')" in later
