"""The agents' inbox pages on a real server, on SQLite and PostgreSQL: what they show, and
that each action writes what the planner, housekeeping and compliance read."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy import Engine, insert, select

from outreach.compliance.engine import evaluate
from outreach.compliance.rules import load_ruleset
from outreach.compliance_store import inbox_messages, load_debtors, situation
from outreach.events import apply_events
from outreach.housekeeping import housekeeping
from outreach.leases import claim_due_accounts
from outreach.models import Role
from outreach.store import accounts, compliance_events, promises_to_pay
from tests.conftest import NOW
from tests.eventdata import OTHER_PHONE, add_account, inbound
from tests.web.conftest import Server
from tests.web.ui_support import add_user, page_token, sign_in


def _reply(engine: Engine, text: str, *, sender: str = "+16175550101", key: str = "r1") -> int:
    apply_events(engine, [inbound(text, sender=sender, key=key, at=NOW)], NOW)
    with engine.connect() as connection:
        return int(
            connection.execute(
                select(inbox_messages.c.id).order_by(inbox_messages.c.id.desc()).limit(1)
            ).scalar_one()
        )


@pytest.fixture
def agent(server: Server, engine: Engine) -> Iterator[httpx.Client]:
    add_user(engine, "ana", Role.AGENT)
    with sign_in(server.base, "ana") as client:
        yield client


def _account(engine: Engine, reference: str = "R-1") -> object:
    with engine.connect() as connection:
        return connection.execute(select(accounts).where(accounts.c.reference == reference)).one()


def test_the_inbox_lists_open_replies_with_their_accounts(
    agent: httpx.Client, engine: Engine
) -> None:
    add_account(engine)
    _reply(engine, "I paid yesterday", key="a")
    _reply(engine, "Who is this? <script>alert(1)</script>", sender=OTHER_PHONE, key="b")
    page = agent.get("/inbox")
    assert page.status_code == 200
    assert 'href="/inbox/accounts/R-1"' in page.text and "I paid yesterday" in page.text
    assert "unknown sender" in page.text
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    only_unknown = agent.get("/inbox", params={"sender": "unknown"}).text
    assert "I paid yesterday" not in only_unknown and "Who is this?" in only_unknown
    only_paid = agent.get("/inbox", params={"intent": "paid"}).text
    assert "I paid yesterday" in only_paid and "Who is this?" not in only_paid


def test_an_unverified_sender_is_shown_as_such(agent: httpx.Client, engine: Engine) -> None:
    add_account(engine)
    with engine.begin() as connection:
        connection.execute(
            insert(inbox_messages).values(
                account_id=None, attempt_id=None, direction="inbound", channel="email",
                from_address="someone@elsewhere.example", to_address="billing@example.com",
                body="Stop writing to my boss", intent="other", status="open", received_at=NOW,
            )
        )  # fmt: skip
    with engine.connect() as connection:
        message_id = connection.execute(select(inbox_messages.c.id)).scalar_one()
    # It names one of our messages: give it an attempt to answer.
    from tests.eventdata import add_attempt

    attempt_id = add_attempt(engine, add_account(engine, "R-2", phone=None))
    with engine.begin() as connection:
        connection.execute(
            inbox_messages.update()
            .where(inbox_messages.c.id == message_id)
            .values(attempt_id=attempt_id)
        )
    page = agent.get("/inbox").text
    assert "unverified sender" in page
    assert 'href="/inbox/accounts/R-2"' not in page


def test_paging_goes_to_older_replies(agent: httpx.Client, engine: Engine) -> None:
    from outreach.web import inbox_pages

    add_account(engine)
    for n in range(3):
        _reply(engine, f"reply number {n}", key=f"k{n}")
    original = inbox_pages.PAGE_SIZE
    inbox_pages.PAGE_SIZE = 2
    try:
        first = agent.get("/inbox").text
        assert "reply number 2" in first and "reply number 0" not in first
        older = first.split('<a href="/inbox?before=')[1].split('"')[0]
        second = agent.get(f"/inbox?before={older}").text
        assert "reply number 0" in second and "reply number 2" not in second
    finally:
        inbox_pages.PAGE_SIZE = original


def test_the_account_page_shows_the_thread_and_records(agent: httpx.Client, engine: Engine) -> None:
    add_account(engine)
    _reply(engine, "This is not my debt <b>at all</b>")
    page = agent.get("/inbox/accounts/R-1")
    assert page.status_code == 200
    assert "Pat Doe" in page.text and "$120.50" in page.text
    assert "This is not my debt &lt;b&gt;at all&lt;/b&gt;" in page.text
    assert "dispute" in page.text  # the reply's hold, among the compliance events
    assert agent.get("/inbox/accounts/NOPE").status_code == 404


def test_marking_the_last_reply_handled_ends_the_reply_pause(
    agent: httpx.Client, engine: Engine
) -> None:
    add_account(engine)
    message_id = _reply(engine, "Can we talk about a plan?")
    assert _account(engine).paused_until is not None
    token = page_token(agent, "/inbox/accounts/R-1")
    done = agent.post(
        "/inbox/accounts/R-1/handled", data={"csrf_token": token, "message_id": message_id}
    )
    assert done.status_code == 303 and "handled" in agent.get(done.headers["location"]).text
    account = _account(engine)
    assert account.paused_until is None
    with engine.connect() as connection:
        row = connection.execute(select(inbox_messages)).one()
    assert row.status == "handled" and row.handled_by is not None


def test_a_message_of_another_account_is_refused(agent: httpx.Client, engine: Engine) -> None:
    add_account(engine)
    add_account(engine, "R-2", phone="+16175550109", email=None)
    message_id = _reply(engine, "Hello")
    token = page_token(agent, "/inbox/accounts/R-2")
    refused = agent.post(
        "/inbox/accounts/R-2/handled", data={"csrf_token": token, "message_id": message_id}
    )
    assert refused.status_code == 404 and "no message" in refused.text
    with engine.connect() as connection:
        assert connection.execute(select(inbox_messages.c.status)).scalar_one() == "open"


def test_a_pause_stops_the_planner_and_resume_makes_the_account_due(
    agent: httpx.Client, engine: Engine
) -> None:
    add_account(engine)
    token = page_token(agent, "/inbox/accounts/R-1")
    paused = agent.post(
        "/inbox/accounts/R-1/pause",
        data={"csrf_token": token, "days": "10", "reason": "hardship call"},
    )
    assert paused.status_code == 303
    account = _account(engine)
    assert account.pause_reason == "hardship call (ana)"
    with engine.begin() as connection:
        assert claim_due_accounts(connection, "w", NOW, NOW + timedelta(minutes=5), 10) == []
    page = agent.get("/inbox/accounts/R-1").text
    assert "paused until" in page and "Resume outreach" in page
    assert agent.post("/inbox/accounts/R-1/resume", data={"csrf_token": token}).status_code == 303
    with engine.begin() as connection:
        claimed = claim_due_accounts(connection, "w", NOW, NOW + timedelta(minutes=5), 10)
    assert [row.reference for row in claimed] == ["R-1"]


@pytest.mark.parametrize(
    ("days", "reason", "problem"),
    [("0", "x", "1 to 90 days"), ("91", "x", "1 to 90 days"), ("5", "  ", "say why")],
)
def test_a_bad_pause_is_refused_and_writes_nothing(
    agent: httpx.Client, engine: Engine, days: str, reason: str, problem: str
) -> None:
    add_account(engine)
    token = page_token(agent, "/inbox/accounts/R-1")
    refused = agent.post(
        "/inbox/accounts/R-1/pause", data={"csrf_token": token, "days": days, "reason": reason}
    )
    assert refused.status_code == 400 and problem in refused.text
    assert _account(engine).paused_until is None


def test_a_promise_holds_the_cadence_and_housekeeping_breaks_it_when_due_passes(
    agent: httpx.Client, engine: Engine
) -> None:
    add_account(engine)
    token = page_token(agent, "/inbox/accounts/R-1")
    due = date(2026, 11, 9)
    made = agent.post(
        "/inbox/accounts/R-1/promise",
        data={"csrf_token": token, "amount": "50.25", "due_on": due.isoformat()},
    )
    assert made.status_code == 303
    with engine.connect() as connection:
        row = connection.execute(select(promises_to_pay)).one()
    assert (row.amount_minor, row.currency, row.due_on, row.status, row.created_by) == (
        5025, "USD", due, "pending", "ana",
    )  # fmt: skip
    assert "$50.25" in agent.get("/inbox/accounts/R-1").text
    later = NOW + timedelta(days=8)
    assert housekeeping(engine, later).broken_promises == 1


@pytest.mark.parametrize(
    ("amount", "due_on", "problem"),
    [
        ("-5", "2026-11-09", "more than zero"),
        ("0", "2026-11-09", "more than zero"),
        ("abc", "2026-11-09", "is not an amount"),
        ("1.005", "2026-11-09", "at most 2 decimal"),
        ("500", "2026-11-09", "more than the balance"),
        ("10", "2026-11-01", "has passed"),
        ("10", "2027-06-01", "within 90 days"),
        ("10", "next week", "is not a date"),
    ],
)
def test_a_bad_promise_is_refused_and_writes_nothing(
    agent: httpx.Client, engine: Engine, amount: str, due_on: str, problem: str
) -> None:
    add_account(engine)
    token = page_token(agent, "/inbox/accounts/R-1")
    refused = agent.post(
        "/inbox/accounts/R-1/promise",
        data={"csrf_token": token, "amount": amount, "due_on": due_on},
    )
    assert refused.status_code == 400 and problem in refused.text
    with engine.connect() as connection:
        assert connection.execute(select(promises_to_pay)).all() == []


def test_a_dispute_blocks_collection_contact(agent: httpx.Client, engine: Engine) -> None:
    account_id = add_account(engine)
    token = page_token(agent, "/inbox/accounts/R-1")
    refused = agent.post("/inbox/accounts/R-1/dispute", data={"csrf_token": token, "note": " "})
    assert refused.status_code == 400
    made = agent.post(
        "/inbox/accounts/R-1/dispute",
        data={"csrf_token": token, "note": "Says the invoice was never delivered"},
    )
    assert made.status_code == 303
    with engine.connect() as connection:
        event = connection.execute(select(compliance_events)).one()
        assert (event.kind, event.source) == ("dispute", "agent ana")
        rules = load_ruleset()
        row = connection.execute(select(accounts).where(accounts.c.id == account_id)).one()
        records = load_debtors(connection, [row], NOW, rules.lookback_days, "US")
    decision = evaluate(situation(records[account_id], "sms", "+16175550101", NOW), rules)
    assert not decision.allowed
    assert any("DISPUTE" in code for code in decision.codes), decision.codes


def test_clearing_the_flag_keeps_the_event(agent: httpx.Client, engine: Engine) -> None:
    add_account(engine)
    _reply(engine, "This is not my debt")
    assert _account(engine).flag == "dispute"
    token = page_token(agent, "/inbox/accounts/R-1")
    assert (
        agent.post("/inbox/accounts/R-1/flag-cleared", data={"csrf_token": token}).status_code
        == 303
    )
    assert _account(engine).flag is None
    with engine.connect() as connection:
        assert connection.execute(select(compliance_events.c.kind)).scalars().all() == ["dispute"]


def test_actions_need_the_sessions_token(agent: httpx.Client, engine: Engine) -> None:
    add_account(engine)
    refused = agent.post("/inbox/accounts/R-1/pause", data={"days": "5", "reason": "x"})
    assert refused.status_code == 403
    assert _account(engine).paused_until is None


@pytest.mark.parametrize("role", [Role.MARKETER, Role.VIEWER])
def test_other_roles_may_not_use_the_inbox(server: Server, engine: Engine, role: Role) -> None:
    add_account(engine)
    add_user(engine, "someone", role)
    with sign_in(server.base, "someone") as client:
        assert client.get("/inbox").status_code == 403
        assert client.get("/inbox/accounts/R-1").status_code == 403
        token = page_token(client)
        pause = {"csrf_token": token, "days": "5", "reason": "x"}
        assert client.post("/inbox/accounts/R-1/pause", data=pause).status_code == 403
    with httpx.Client(base_url=server.base) as stranger:
        assert stranger.get("/inbox/accounts/R-1").status_code == 303
