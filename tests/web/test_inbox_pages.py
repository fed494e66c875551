"""The agents' inbox pages on a real server, on SQLite and PostgreSQL: what they show, and
that each action writes what the planner, housekeeping and compliance read."""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from markupsafe import escape
from sqlalchemy import Engine, insert, select

from outreach.clock import FixedClock
from outreach.compliance.engine import evaluate
from outreach.compliance.rules import load_ruleset
from outreach.compliance_store import decisions, inbox_messages, load_debtors, situation
from outreach.events import apply_events
from outreach.housekeeping import housekeeping
from outreach.leases import claim_due_accounts
from outreach.models import Role
from outreach.planner import Planner
from outreach.store import accounts, compliance_events, contact_points, promises_to_pay
from outreach.users import users
from outreach.web.paths import from_segment, path_segment
from tests.conftest import NOW
from tests.eventdata import OTHER_PHONE, add_account, add_attempt, inbound
from tests.test_planner import make_settings, publish_templates
from tests.web.conftest import Server
from tests.web.ui_support import add_user, browser_path, csrf_of, page_token, sign_in


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


def _form(client: httpx.Client, label: str, path: str = "/inbox/accounts/R-1") -> dict[str, str]:
    """The hidden fields of the page's form named ``label``, as a browser would send them."""
    page = client.get(path).text
    form = page[page.index(f'aria-label="{label}"') :].split("</form>")[0]
    return {
        name: html.unescape(value)
        for name, value in re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', form)
    }


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


@pytest.mark.parametrize("before", ["abc", "9" * 20, "-1", ""])
def test_a_bad_page_marker_is_refused_with_its_reason(
    agent: httpx.Client, engine: Engine, before: str
) -> None:
    add_account(engine)
    _reply(engine, "Hello")
    refused = agent.get("/inbox", params={"before": before})
    assert refused.status_code == 400 and "is not a reply id" in refused.text
    assert "text/html" in refused.headers["content-type"]


def test_the_account_page_shows_the_thread_and_records(agent: httpx.Client, engine: Engine) -> None:
    add_account(engine)
    _reply(engine, "This is not my debt <script>alert(1)</script>")
    page = agent.get("/inbox/accounts/R-1")
    assert page.status_code == 200
    assert "Pat Doe" in page.text and "$120.50" in page.text
    assert "This is not my debt &lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>" not in page.text
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


@pytest.mark.parametrize(
    ("message", "status", "problem"),
    [
        ("9999", 404, "no message 9999"),
        ("abc", 400, "not a message"),
        ("", 400, "not a message"),
        ("9" * 19, 400, "not a message"),
    ],
)
def test_an_unknown_message_is_refused(
    agent: httpx.Client, engine: Engine, message: str, status: int, problem: str
) -> None:
    add_account(engine)
    _reply(engine, "Hello")
    token = page_token(agent, "/inbox/accounts/R-1")
    refused = agent.post(
        "/inbox/accounts/R-1/handled", data={"csrf_token": token, "message_id": message}
    )
    assert refused.status_code == status and problem in refused.text
    with engine.connect() as connection:
        assert connection.execute(select(inbox_messages.c.status)).scalar_one() == "open"


def test_a_reply_handled_twice_keeps_the_first_agent(
    server: Server, agent: httpx.Client, engine: Engine
) -> None:
    add_account(engine)
    message_id = _reply(engine, "Hello")
    token = page_token(agent, "/inbox/accounts/R-1")
    form = {"csrf_token": token, "message_id": str(message_id)}
    assert agent.post("/inbox/accounts/R-1/handled", data=form).status_code == 303
    add_user(engine, "bea", Role.AGENT)
    with sign_in(server.base, "bea") as other:
        again = {**form, "csrf_token": page_token(other, "/inbox/accounts/R-1")}
        refused = other.post("/inbox/accounts/R-1/handled", data=again)
    assert refused.status_code == 400 and "already handled" in refused.text
    with engine.connect() as connection:
        handled_by = connection.execute(select(inbox_messages.c.handled_by)).scalar_one()
        ana = connection.execute(select(users.c.id).where(users.c.username == "ana"))
        assert handled_by == ana.scalar_one()


def test_replies_under_no_account_are_handled_from_the_inbox(
    agent: httpx.Client, engine: Engine
) -> None:
    named = add_account(engine)
    attempt_id = add_attempt(engine, named)
    unknown = _reply(engine, "Who is this?", sender=OTHER_PHONE, key="u")
    with engine.begin() as connection:
        unverified = connection.execute(
            insert(inbox_messages)
            .values(
                account_id=None, attempt_id=attempt_id, direction="inbound", channel="sms",
                from_address="+16175550177", to_address="+16175550100",
                body="This is not my debt", intent="dispute", status="open", received_at=NOW,
            )
            .returning(inbox_messages.c.id)
        ).scalar_one()  # fmt: skip
    page = agent.get("/inbox").text
    assert page.count('action="/inbox/handled"') == 2
    token = page_token(agent, "/inbox")
    for message_id in (unknown, unverified):
        done = agent.post("/inbox/handled", data={"csrf_token": token, "message_id": message_id})
        assert done.status_code == 303
        assert "The reply is handled." in agent.get(done.headers["location"]).text
    with engine.connect() as connection:
        rows = connection.execute(select(inbox_messages.c.status, inbox_messages.c.handled_by))
        assert {(status, by is not None) for status, by in rows} == {("handled", True)}
        # The account the unverified reply names is not touched: no hold, no flag.
        assert connection.execute(select(compliance_events)).all() == []
    assert _account(engine).flag is None and _account(engine).paused_until is None


def test_a_notice_shows_only_as_the_app_sealed_it(agent: httpx.Client, engine: Engine) -> None:
    """A link made elsewhere cannot put words on the app's pages; one the app made shows
    its notice, and its words changed show nothing."""
    _reply(engine, "Who is this?", sender=OTHER_PHONE, key="u")
    fake = "Your session expired: sign in again at https://example.net"
    assert fake not in agent.get("/inbox", params={"done": fake}).text
    assert fake not in agent.get("/inbox", params={"done": fake, "seal": "0" * 32}).text
    forged = agent.get("/inbox", params={"done": fake, "seal": "é" * 32})
    assert forged.status_code == 200 and fake not in forged.text
    token = page_token(agent, "/inbox")
    [message_id] = agent.get("/inbox").text.split('name="message_id" value="')[1:2]
    done = agent.post(
        "/inbox/handled", data={"csrf_token": token, "message_id": message_id.split('"')[0]}
    )
    where = done.headers["location"]
    assert "The reply is handled." in agent.get(where).text
    changed = where.replace("handled", "forgotten")
    assert changed != where and "The reply is forgotten." not in agent.get(changed).text


def test_an_accounts_reply_is_handled_on_its_page_only(agent: httpx.Client, engine: Engine) -> None:
    add_account(engine)
    message_id = _reply(engine, "Hello")
    assert 'action="/inbox/handled"' not in agent.get("/inbox").text
    token = page_token(agent, "/inbox")
    refused = agent.post("/inbox/handled", data={"csrf_token": token, "message_id": message_id})
    assert refused.status_code == 400 and "handle it on its page" in refused.text
    missing = agent.post("/inbox/handled", data={"csrf_token": token, "message_id": "9999"})
    assert missing.status_code == 404 and "no message 9999" in missing.text
    assert _account(engine).paused_until is not None


def test_a_pause_stops_the_planner_and_resume_makes_the_account_due(
    agent: httpx.Client, engine: Engine
) -> None:
    add_account(engine)
    paused = agent.post(
        "/inbox/accounts/R-1/pause",
        data=_form(agent, "Pause") | {"days": "10", "reason": "hardship call"},
    )
    assert paused.status_code == 303
    account = _account(engine)
    assert account.pause_reason == "hardship call (ana)"
    with engine.begin() as connection:
        assert claim_due_accounts(connection, "w", NOW, NOW + timedelta(minutes=5), 10) == []
    page = agent.get("/inbox/accounts/R-1").text
    assert "paused until" in page and "Resume outreach" in page
    assert agent.post("/inbox/accounts/R-1/resume", data=_form(agent, "Resume")).status_code == 303
    with engine.begin() as connection:
        claimed = claim_due_accounts(connection, "w", NOW, NOW + timedelta(minutes=5), 10)
    assert [row.reference for row in claimed] == ["R-1"]


def test_resuming_an_agents_pause_while_a_reply_waits_keeps_the_reply_pause(
    agent: httpx.Client, engine: Engine
) -> None:
    add_account(engine)
    agent.post(
        "/inbox/accounts/R-1/pause",
        data=_form(agent, "Pause") | {"days": "3", "reason": "trip"},
    )
    _reply(engine, "Back next week")  # during the agent's pause, which stays
    assert _account(engine).pause_reason == "trip (ana)"
    clicked = _form(agent, "Resume")
    resumed = agent.post("/inbox/accounts/R-1/resume", data=clicked)
    assert resumed.status_code == 303
    page = agent.get(resumed.headers["location"]).text
    assert "a reply waits in the inbox: outreach stays paused until" in page
    assert _account(engine).pause_reason == "a reply waits in the inbox"
    # The same click sent again (a double click) ends no reply pause the page did not show.
    again = agent.post("/inbox/accounts/R-1/resume", data=clicked)
    assert again.status_code == 409
    assert "Not resumed: the pause changed since this page was opened" in again.text
    assert "paused until 2026-11-09 15:00 UTC: a reply waits in the inbox" in again.text
    assert _account(engine).pause_reason == "a reply waits in the inbox"
    with engine.begin() as connection:
        assert claim_due_accounts(connection, "w", NOW, NOW + timedelta(minutes=5), 10) == []
    # Resuming the reply pause from a page that shows it is the agent's choice: outreach runs.
    chosen = agent.post("/inbox/accounts/R-1/resume", data=_form(agent, "Resume"))
    assert "Outreach resumes" in agent.get(chosen.headers["location"]).text
    assert _account(engine).paused_until is None


def test_a_resume_or_new_pause_from_an_out_of_date_page_leaves_a_newer_pause(
    server: Server, engine: Engine
) -> None:
    """Ana's page shows her 1-day pause; Bob then pauses the account for 60 days (the debtor
    is in hospital). Resuming or changing the pause from Ana's page is refused (409), with
    the page as it is now and her words kept; from that page she may act on Bob's pause."""
    add_user(engine, "ana", Role.AGENT)
    add_user(engine, "bob", Role.AGENT)
    add_account(engine)
    with sign_in(server.base, "ana") as ana, sign_in(server.base, "bob") as bob:
        first = _form(ana, "Pause") | {"days": "1", "reason": "call back tomorrow"}
        assert ana.post("/inbox/accounts/R-1/pause", data=first).status_code == 303
        anas_resume, anas_change = _form(ana, "Resume"), _form(ana, "Pause")
        hospital = _form(bob, "Pause") | {"days": "60", "reason": "debtor in hospital"}
        assert bob.post("/inbox/accounts/R-1/pause", data=hospital).status_code == 303
        resumed = ana.post("/inbox/accounts/R-1/resume", data=anas_resume)
        assert resumed.status_code == 409
        assert "Not resumed: the pause changed since this page was opened" in resumed.text
        assert "paused until 2027-01-01 15:00 UTC: debtor in hospital (bob)" in resumed.text
        changed = ana.post(
            "/inbox/accounts/R-1/pause",
            data=anas_change | {"days": "2", "reason": "call back Friday"},
        )
        assert changed.status_code == 409 and "Not paused: the pause changed" in changed.text
        assert 'value="call back Friday"' in changed.text  # her words, to send again
        account = _account(engine)
        assert (account.paused_until, account.pause_reason) == (
            NOW + timedelta(days=60), "debtor in hospital (bob)",
        )  # fmt: skip
        # The page that came back shows Bob's pause: changing it from there is deliberate.
        now_shown = re.search(r'aria-label="Pause".*?</form>', changed.text, re.S)
        assert now_shown and "debtor in hospital (bob)" in html.unescape(now_shown.group(0))
        again = _form(ana, "Pause") | {"days": "2", "reason": "call back Friday"}
        assert ana.post("/inbox/accounts/R-1/pause", data=again).status_code == 303
    assert _account(engine).pause_reason == "call back Friday (ana)"


def test_a_pause_form_that_does_not_say_which_pause_it_showed_is_refused(
    agent: httpx.Client, engine: Engine
) -> None:
    add_account(engine)
    token = page_token(agent, "/inbox/accounts/R-1")
    old = {"csrf_token": token, "days": "5", "reason": "x"}
    refused = agent.post("/inbox/accounts/R-1/pause", data=old)
    assert refused.status_code == 400 and "does not say which pause it showed" in refused.text
    assert _account(engine).paused_until is None


@pytest.mark.parametrize(
    ("days", "reason", "problem"),
    [
        ("0", "x", "1 to 90 days"),
        ("91", "x", "1 to 90 days"),
        ("5", "  ", "say why"),
        ("five", "x", "give a whole number"),
        ("-3", "x", "give a whole number"),
        ("5", "on the phone\x00", "the reason holds a NUL character"),
    ],
)
def test_a_bad_pause_is_refused_and_writes_nothing(
    agent: httpx.Client, engine: Engine, days: str, reason: str, problem: str
) -> None:
    add_account(engine)
    form = _form(agent, "Pause") | {"days": days, "reason": reason}
    refused = agent.post("/inbox/accounts/R-1/pause", data=form)
    assert refused.status_code == 400 and problem in refused.text
    assert _account(engine).paused_until is None


def test_an_account_under_the_reply_pause_is_paused_longer_from_its_page(
    agent: httpx.Client, engine: Engine
) -> None:
    """ "I'm in hospital for a month": the reply paused the account; the agent pauses it for
    30 days from its page, without resuming first (which would make it due at once). The
    agent's pause replaces the reply pause: handling the reply leaves it on."""
    add_account(engine)
    message_id = _reply(engine, "I'm in hospital for a month")
    page = agent.get("/inbox/accounts/R-1").text
    assert "Resume outreach" in page and "<h3>Change the pause</h3>" in page
    form = _form(agent, "Pause") | {"days": "30", "reason": "in hospital"}
    paused = agent.post("/inbox/accounts/R-1/pause", data=form)
    assert paused.status_code == 303
    assert "paused until 2026-12-02 15:00 UTC." in agent.get(paused.headers["location"]).text
    account = _account(engine)
    assert (account.paused_until, account.pause_reason) == (
        NOW + timedelta(days=30), "in hospital (ana)",
    )  # fmt: skip
    handled = {"csrf_token": page_token(agent, "/inbox/accounts/R-1"), "message_id": message_id}
    assert agent.post("/inbox/accounts/R-1/handled", data=handled).status_code == 303
    assert _account(engine).paused_until == NOW + timedelta(days=30)
    housekeeping(engine, NOW + timedelta(days=8), reply_pause=timedelta(days=7))
    with engine.begin() as connection:
        later = NOW + timedelta(days=8)
        assert claim_due_accounts(connection, "w", later, later + timedelta(minutes=5), 10) == []


def test_a_shorter_pause_than_an_open_replys_hands_over_to_the_reply_pause(
    agent: httpx.Client, engine: Engine
) -> None:
    """Paused for 2 days under a reply's 7: the page says the reply still holds, and when
    the agent's pause ends with the reply open, housekeeping puts the reply pause back."""
    add_account(engine)
    _reply(engine, "Call me next week")
    form = _form(agent, "Pause") | {"days": "2", "reason": "asked for a call"}
    paused = agent.post("/inbox/accounts/R-1/pause", data=form)
    assert paused.status_code == 303
    assert (
        "A reply waits in the inbox: unless it is handled first, outreach then stays paused "
        "until 2026-11-09 15:00 UTC."
    ) in agent.get(paused.headers["location"]).text
    assert _account(engine).paused_until == NOW + timedelta(days=2)
    ended = NOW + timedelta(days=2, minutes=1)
    housekeeping(engine, ended, reply_pause=timedelta(days=7))
    account = _account(engine)
    assert (account.paused_until, account.pause_reason) == (
        NOW + timedelta(days=7), "a reply waits in the inbox",
    )  # fmt: skip


def test_an_agents_pause_is_changed_from_the_page(agent: httpx.Client, engine: Engine) -> None:
    add_account(engine)
    first = _form(agent, "Pause") | {"days": "10", "reason": "hardship call"}
    assert agent.post("/inbox/accounts/R-1/pause", data=first).status_code == 303
    assert "<h3>Change the pause</h3>" in agent.get("/inbox/accounts/R-1").text
    shorter = _form(agent, "Pause") | {"days": "3", "reason": "call moved up"}
    changed = agent.post("/inbox/accounts/R-1/pause", data=shorter)
    assert changed.status_code == 303
    assert "A reply waits" not in agent.get(changed.headers["location"]).text
    account = _account(engine)
    assert (account.paused_until, account.pause_reason) == (
        NOW + timedelta(days=3), "call moved up (ana)",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("action", "form"),
    [
        ("dispute", {"note": "never\x00 delivered"}),
        ("workplace", {"kind": "workplace_inconvenient", "note": "said\x00 on a call"}),
    ],
)
def test_a_note_holding_a_nul_is_refused_and_writes_nothing(
    agent: httpx.Client, engine: Engine, action: str, form: dict[str, str]
) -> None:
    """A NUL pasted into a note: the page's reason, not a server error (PostgreSQL cannot
    store one)."""
    add_account(engine)
    token = page_token(agent, "/inbox/accounts/R-1")
    refused = agent.post(f"/inbox/accounts/R-1/{action}", data={"csrf_token": token, **form})
    assert refused.status_code == 400 and "the note holds a NUL character" in refused.text
    with engine.connect() as connection:
        assert connection.execute(select(compliance_events)).all() == []


# A dispute as an agent writes it down on a call: 635 characters.
LONG_NOTE = (
    (
        "Debtor says the invoice was for a service never delivered; she cancelled the contract "
        "in writing on 3 March & has the confirmation e-mail <kept>, and the amount also "
        "includes a late fee she was never told about. "
    )
    * 3
).strip()


@pytest.mark.parametrize(
    ("action", "form", "problem", "kept"),
    [
        ("dispute", {"note": LONG_NOTE}, "the note is 635 characters: at most 500", LONG_NOTE),
        ("workplace", {"kind": "workplace_prohibited", "note": LONG_NOTE},
         "the note is 635 characters: at most 500", LONG_NOTE),
        ("pause", {"days": "7", "reason": "r" * 195},
         "the reason is 195 characters: at most 194", "r" * 195),
    ],
)  # fmt: skip
def test_a_note_or_reason_too_long_to_keep_comes_back_with_the_words(
    agent: httpx.Client, engine: Engine, action: str, form: dict[str, str], problem: str,
    kept: str,
) -> None:  # fmt: skip
    """Longer than the record keeps: the page says why (not a bare 422), writes nothing,
    and the words are back in their form, to shorten; the forms say how long they may be
    (a pause's reason leaves room for the agent's name, " (ana)")."""
    add_account(engine)
    page = agent.get("/inbox/accounts/R-1").text
    assert re.search(r'<textarea name="note" rows="3" maxlength="500" required>', page)
    assert re.search(r'<input name="note" maxlength="500"', page)
    assert re.search(r'<input name="reason" maxlength="194"', page)
    fields = _form(agent, "Pause") if action == "pause" else {"csrf_token": csrf_of(page)}
    refused = agent.post(f"/inbox/accounts/R-1/{action}", data=fields | form)
    assert refused.status_code == 400 and problem in refused.text
    assert "text/html" in refused.headers["content-type"]
    assert html.escape(kept, quote=action != "dispute") in refused.text
    if action == "workplace":
        assert '<option value="workplace_prohibited" selected>' in refused.text
    with engine.connect() as connection:
        assert connection.execute(select(compliance_events)).all() == []
    assert _account(engine).paused_until is None
    # As long as is kept, the note is kept whole.
    whole = {"dispute": {"note": LONG_NOTE[:500]},
             "workplace": {"kind": "workplace_prohibited", "note": LONG_NOTE[:500]},
             "pause": {"days": "7", "reason": "r" * 194}}[action]  # fmt: skip
    assert agent.post(f"/inbox/accounts/R-1/{action}", data=fields | whole).status_code == 303
    with engine.connect() as connection:
        notes = connection.execute(select(compliance_events.c.note)).scalars().all()
    assert notes == ([] if action == "pause" else [LONG_NOTE[:500]])


def test_an_address_or_filter_holding_a_nul_names_nothing(
    agent: httpx.Client, engine: Engine
) -> None:
    """No reference holds a NUL (PostgreSQL cannot even compare one): the account's page
    and its forms answer that there is no such account, and the inbox refuses the filter."""
    add_account(engine)
    token = page_token(agent, "/inbox/accounts/R-1")
    assert agent.get("/inbox/accounts/R%00-1").status_code == 404
    assert agent.get("/inbox/accounts/R-1%00/").status_code == 404
    for action, form in (("dispute", {"note": "never delivered"}),
                         ("answer", {"message_id": "1", "answer": "Hello"})):  # fmt: skip
        missing = agent.post(f"/inbox/accounts/R%00-1/{action}",
                             data={"csrf_token": token, **form})  # fmt: skip
        assert missing.status_code == 404, action
    refused = agent.get("/inbox?intent=dispute%00")
    assert refused.status_code == 400 and "holds a NUL character" in refused.text
    with engine.connect() as connection:
        assert connection.execute(select(compliance_events)).all() == []


def test_the_inbox_lists_the_accounts_flagged_for_the_agents(
    agent: httpx.Client, engine: Engine
) -> None:
    """A cadence handed off, a dispute: the agents' queue, most recently flagged first;
    clearing the flag on the account's page takes it off."""
    add_account(engine)
    add_account(engine, "R-2", phone=OTHER_PHONE, email=None)
    with engine.begin() as connection:
        for reference, flag, hours in (("R-1", "handoff", 2), ("R-2", "dispute", 1)):
            connection.execute(
                accounts.update()
                .where(accounts.c.reference == reference)
                .values(flag=flag, flagged_at=NOW - timedelta(hours=hours))
            )
    page = agent.get("/inbox").text
    flagged = page[page.index('aria-label="Accounts flagged"') :]
    assert flagged.index("R-2") < flagged.index("R-1")
    assert '<span class="tag warn">handoff</span>' in flagged
    cleared = agent.post("/inbox/accounts/R-1/flag-cleared", data=_form(agent, "Flag"))
    assert cleared.status_code == 303
    flagged = agent.get("/inbox").text.split('aria-label="Accounts flagged"')[1]
    assert "R-2" in flagged and "/inbox/accounts/R-1" not in flagged


def test_a_promise_holds_the_cadence_and_housekeeping_breaks_it_when_due_passes(
    agent: httpx.Client, engine: Engine, tmp_path: Path
) -> None:
    add_account(engine)
    due = date(2026, 11, 9)
    made = agent.post(
        "/inbox/accounts/R-1/promise",
        data=_form(agent, "Promise to pay") | {"amount": "50.25", "due_on": due.isoformat()},
    )
    assert made.status_code == 303
    with engine.connect() as connection:
        row = connection.execute(select(promises_to_pay)).one()
    assert (row.amount_minor, row.currency, row.due_on, row.status, row.created_by) == (
        5025, "USD", due, "pending", "ana",
    )  # fmt: skip
    page = agent.get(made.headers["location"]).text
    assert "Promise to pay $50.25 by 2026-11-09 recorded." in page
    # The planner reads it: the cadence stops while the promise is pending.
    publish_templates(engine, FixedClock(NOW))
    settings = make_settings(engine, tmp_path)
    report = Planner(engine, settings, FixedClock(NOW), "w", processes=1).tick()
    assert dict(report.outcomes) == {"stopped": 1}
    with engine.connect() as connection:
        reasons = connection.execute(select(decisions.c.reasons)).scalar_one()
    assert [reason["code"] for reason in reasons] == ["CADENCE_STOPPED_PROMISE_PENDING"]
    # Housekeeping keeps it until its day has passed, then breaks it.
    assert housekeeping(engine, datetime(2026, 11, 9, 23, 59, tzinfo=UTC)).broken_promises == 0
    assert housekeeping(engine, NOW + timedelta(days=8)).broken_promises == 1


def test_a_promise_is_for_the_debtors_today_or_later_and_breaks_when_it_ends_there(
    server: Server, agent: httpx.Client, engine: Engine
) -> None:
    add_account(engine)
    add_account(engine, "R-TOKYO", phone=None, email=None)
    with engine.begin() as connection:
        connection.execute(
            accounts.update().where(accounts.c.reference == "R-TOKYO").values(timezone="Asia/Tokyo")
        )
    # At NOW (15:00 UTC) it is already 3 November in Tokyo: the 2nd has passed there.
    form = _form(agent, "Promise to pay", "/inbox/accounts/R-TOKYO")
    form |= {"amount": "10", "due_on": "2026-11-02"}
    refused = agent.post("/inbox/accounts/R-TOKYO/promise", data=form)
    assert refused.status_code == 400 and "for 2026-11-03 or later" in refused.text
    # At 02:00 UTC on the 3rd it is still the 2nd in Boston: a promise for the debtor's
    # today holds until the day has ended there (05:00 UTC), whatever the UTC date says.
    late = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
    server.app.state.clock.set(late)
    assert 'min="2026-11-02"' in agent.get("/inbox/accounts/R-1").text
    refused = agent.post("/inbox/accounts/R-1/promise", data=form | {"due_on": "2026-11-01"})
    assert refused.status_code == 400 and "for 2026-11-02 or later" in refused.text
    made = agent.post("/inbox/accounts/R-1/promise", data=form)
    assert made.status_code == 303
    assert housekeeping(engine, late).broken_promises == 0
    assert housekeeping(engine, datetime(2026, 11, 3, 4, 59, tzinfo=UTC)).broken_promises == 0
    assert housekeeping(engine, datetime(2026, 11, 3, 5, 0, tzinfo=UTC)).broken_promises == 1


@pytest.mark.parametrize(
    ("amount", "due_on", "problem"),
    [
        ("-5", "2026-11-09", "more than zero"),
        ("0", "2026-11-09", "more than zero"),
        ("abc", "2026-11-09", "is not an amount"),
        ("1.005", "2026-11-09", "more than 2 decimal places"),
        ("40,50", "2026-11-09", "is not an amount"),
        ("1e2", "2026-11-09", "is not an amount"),
        ("$10", "2026-11-09", "is not an amount"),
        ("", "2026-11-09", "is not an amount"),
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
    refused = agent.post(
        "/inbox/accounts/R-1/promise",
        data=_form(agent, "Promise to pay") | {"amount": amount, "due_on": due_on},
    )
    assert refused.status_code == 400 and problem in refused.text
    with engine.connect() as connection:
        assert connection.execute(select(promises_to_pay)).all() == []


def _pending(engine: Engine) -> list[tuple[int, str | None]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(promises_to_pay.c.amount_minor, promises_to_pay.c.form_key).where(
                promises_to_pay.c.status == "pending"
            )
        )
        return [(row.amount_minor, row.form_key) for row in rows]


def test_the_same_promise_form_sent_twice_records_one_promise(
    agent: httpx.Client, engine: Engine
) -> None:
    """A double click, or the form sent again after its answer was lost: one promise, not
    two pending ones that would add up past what the debtor promised."""
    add_account(engine)
    form = _form(agent, "Promise to pay") | {"amount": "50.00", "due_on": "2026-11-20"}
    first = agent.post("/inbox/accounts/R-1/promise", data=form)
    second = agent.post("/inbox/accounts/R-1/promise", data=form)
    assert first.status_code == second.status_code == 303
    assert "That promise was already recorded." in agent.get(second.headers["location"]).text
    assert _pending(engine) == [(5000, form["form_key"])]
    # The same form brought back (the browser's Back button) and changed: refused, not told
    # "already recorded" for a promise that was not made.
    changed = agent.post("/inbox/accounts/R-1/promise", data=form | {"amount": "40.00"})
    assert changed.status_code == 409
    assert "this form recorded a promise of $50.00 by 2026-11-20 already" in changed.text
    assert _pending(engine) == [(5000, form["form_key"])]
    # A new form, opened after the first, is a promise of its own.
    another = _form(agent, "Promise to pay") | {"amount": "20.00", "due_on": "2026-11-25"}
    assert another["form_key"] != form["form_key"]
    assert agent.post("/inbox/accounts/R-1/promise", data=another).status_code == 303
    assert sorted(amount for amount, _ in _pending(engine)) == [2000, 5000]


def test_the_same_promise_form_sent_at_the_same_moment_records_one_promise(
    server: Server, engine: Engine
) -> None:
    """Four copies of one form, sent at once by four connections of one session."""
    add_account(engine)
    add_user(engine, "ana", Role.AGENT)
    with sign_in(server.base, "ana") as client:
        form = _form(client, "Promise to pay") | {"amount": "50.00", "due_on": "2026-11-20"}
        cookies = dict(client.cookies)
    start = threading.Barrier(4)
    statuses: list[int] = []

    def send() -> None:
        with httpx.Client(base_url=server.base, cookies=cookies, timeout=60) as copy:
            start.wait()
            statuses.append(copy.post("/inbox/accounts/R-1/promise", data=form).status_code)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert statuses == [303] * 4
    assert _pending(engine) == [(5000, form["form_key"])]


@pytest.mark.parametrize("key", ["", "short", "not a key at all, with spaces"])
def test_a_promise_form_without_its_key_records_nothing(
    agent: httpx.Client, engine: Engine, key: str
) -> None:
    add_account(engine)
    form = _form(agent, "Promise to pay") | {"amount": "5", "due_on": "2026-11-20"}
    refused = agent.post("/inbox/accounts/R-1/promise", data=form | {"form_key": key})
    assert refused.status_code == 400 and "the promise form is out of date" in refused.text
    assert _pending(engine) == []


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
        records = load_debtors(connection, [row], NOW, rules.lookback_days, "US", rules=rules)
    decision = evaluate(situation(records[account_id], "sms", "+16175550101", NOW), rules)
    assert not decision.allowed
    assert any("DISPUTE" in code for code in decision.codes), decision.codes


def _events(engine: Engine) -> list[tuple[str, str | None, str | None]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(compliance_events.c.kind, compliance_events.c.note, compliance_events.c.form_key)
            .order_by(compliance_events.c.id)
        )  # fmt: skip
        return [(row.kind, row.note, row.form_key) for row in rows]


def test_the_same_dispute_form_sent_twice_records_one_dispute(
    agent: httpx.Client, engine: Engine
) -> None:
    """A double click, or the page sent again after its answer was lost: one dispute, and
    the second send says so; a form opened afterwards records a dispute of its own."""
    add_account(engine)
    form = _form(agent, "Dispute") | {"note": "Says the invoice was never delivered"}
    first = agent.post("/inbox/accounts/R-1/dispute", data=form)
    second = agent.post("/inbox/accounts/R-1/dispute", data=form)
    assert first.status_code == second.status_code == 303
    assert "The dispute is recorded" in agent.get(first.headers["location"]).text
    assert "That dispute was already recorded." in agent.get(second.headers["location"]).text
    once = [("dispute", "Says the invoice was never delivered", form["form_key"])]
    assert _events(engine) == once
    # The same form brought back (the browser's Back button) with another note: refused,
    # not told "already recorded" of a note that was not; the note comes back in the form.
    changed = agent.post("/inbox/accounts/R-1/dispute", data=form | {"note": "Paid in March"})
    assert changed.status_code == 409
    recorded = "this form recorded the dispute event (Says the invoice was never delivered)"
    assert f"{recorded} already, not this one" in changed.text
    assert ">Paid in March</textarea>" in changed.text
    assert _events(engine) == once
    another = _form(agent, "Dispute") | {"note": "Paid in March"}
    assert another["form_key"] != form["form_key"]
    assert agent.post("/inbox/accounts/R-1/dispute", data=another).status_code == 303
    assert [note for _, note, _ in _events(engine)] == [
        "Says the invoice was never delivered", "Paid in March"
    ]  # fmt: skip


def test_the_same_contact_at_work_form_sent_twice_records_once(
    agent: httpx.Client, engine: Engine
) -> None:
    """An employer's prohibition sent twice is one event; the same form sent again with
    another choice is refused rather than taken for the first."""
    add_account(engine)
    form = _form(agent, "Contact at work") | {"kind": "workplace_prohibited", "note": "HR"}
    first = agent.post("/inbox/accounts/R-1/workplace", data=form, follow_redirects=True)
    assert "Recorded: the debtor&#39;s employer prohibits contact at work" in first.text
    again = agent.post("/inbox/accounts/R-1/workplace", data=form, follow_redirects=True)
    assert again.status_code == 200
    assert "What the debtor said about contact at work was already recorded." in again.text
    assert _events(engine) == [("workplace_prohibited", "HR", form["form_key"])]
    lifted = agent.post("/inbox/accounts/R-1/workplace", data=form | {"kind": "workplace_allowed"})
    assert lifted.status_code == 409
    assert "this form recorded the workplace prohibited event (HR) already" in lifted.text
    assert _events(engine) == [("workplace_prohibited", "HR", form["form_key"])]
    # The dispute form's key is its own: a dispute from the same page records.
    dispute = _form(agent, "Dispute") | {"note": "Not my debt"}
    assert dispute["form_key"] != form["form_key"]
    assert agent.post("/inbox/accounts/R-1/dispute", data=dispute).status_code == 303
    assert len(_events(engine)) == 2


@pytest.mark.parametrize("action", ["dispute", "workplace"])
def test_the_same_compliance_form_sent_at_the_same_moment_records_once(
    server: Server, engine: Engine, action: str
) -> None:
    """Four copies of one form, sent at once by four connections of one session."""
    add_account(engine)
    add_user(engine, "ana", Role.AGENT)
    label = {"dispute": "Dispute", "workplace": "Contact at work"}[action]
    with sign_in(server.base, "ana") as client:
        form = _form(client, label) | {"note": "said on a call", "kind": "workplace_prohibited"}
        cookies = dict(client.cookies)
    start = threading.Barrier(4)
    statuses: list[int] = []

    def send() -> None:
        with httpx.Client(base_url=server.base, cookies=cookies, timeout=60) as copy:
            start.wait()
            statuses.append(copy.post(f"/inbox/accounts/R-1/{action}", data=form).status_code)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert statuses == [303] * 4
    assert [key for _, _, key in _events(engine)] == [form["form_key"]]


def test_a_compliance_form_without_a_key_records_each_time_and_a_bad_key_is_refused(
    agent: httpx.Client, engine: Engine
) -> None:
    """A form from a page opened before the forms carried a key (or a post made by hand)
    records as it did: a dispute is never turned away for a missing key. A key no form
    carries is refused, the note kept to send again."""
    add_account(engine)
    token = page_token(agent, "/inbox/accounts/R-1")
    for _ in range(2):
        sent = agent.post("/inbox/accounts/R-1/dispute", data={"csrf_token": token, "note": "no"})
        assert sent.status_code == 303
    assert _events(engine) == [("dispute", "no", None), ("dispute", "no", None)]
    for action, label in (("dispute", "dispute"), ("workplace", "contact at work")):
        refused = agent.post(
            f"/inbox/accounts/R-1/{action}",
            data={"csrf_token": token, "note": "kept", "kind": "workplace_prohibited",
                  "form_key": "not a key"},
        )  # fmt: skip
        assert refused.status_code == 400
        assert f"the {label} form is out of date" in refused.text and "kept" in refused.text
    assert len(_events(engine)) == 2


def test_contact_at_work_is_recorded_and_holds_work_numbers_only(
    agent: httpx.Client, engine: Engine
) -> None:
    """The debtor said on the phone not to be called at work: the agent records it, and a
    work number is held back while the mobile stays open, until the debtor agrees again."""
    account_id = add_account(engine)
    work = "+16175550177"
    _work_number(engine, account_id, work)
    token = page_token(agent, "/inbox/accounts/R-1")
    assert 'action="/inbox/accounts/R-1/workplace"' in agent.get("/inbox/accounts/R-1").text
    refused = agent.post(
        "/inbox/accounts/R-1/workplace", data={"csrf_token": token, "kind": "cease"}
    )
    assert refused.status_code == 400
    assert "is not something to record about contact at work" in refused.text
    assert _calls(engine, account_id, work) == {"+16175550101": True, work: True}
    made = agent.post(
        "/inbox/accounts/R-1/workplace",
        data={"csrf_token": token, "kind": "workplace_inconvenient", "note": "said on a call"},
        follow_redirects=True,
    )
    assert made.status_code == 200
    assert "Recorded: the debtor finds contact at work inconvenient" in made.text
    with engine.connect() as connection:
        event = connection.execute(select(compliance_events)).one()
    assert (event.kind, event.source, event.note) == (
        "workplace_inconvenient", "agent ana", "said on a call"
    )  # fmt: skip
    assert _calls(engine, account_id, work) == {"+16175550101": True, work: False}
    agent.post("/inbox/accounts/R-1/workplace",
               data={"csrf_token": token, "kind": "workplace_convenient"})  # fmt: skip
    assert _calls(engine, account_id, work) == {"+16175550101": True, work: True}


def test_lifting_on_one_account_names_the_persons_others_that_still_hold_it(
    agent: httpx.Client, engine: Engine
) -> None:
    """A reply recorded the request on both accounts with the number: the agent's lift on
    one says the other still holds it (the request is the person's), and it holds until
    lifted there too."""
    first = add_account(engine, "R-1")
    add_account(engine, "R-2")
    work = "+16175550177"
    _work_number(engine, first, work)
    _reply(engine, "Don't call me at work")
    token = page_token(agent, "/inbox/accounts/R-1")
    lifted = agent.post("/inbox/accounts/R-1/workplace", follow_redirects=True,
                        data={"csrf_token": token, "kind": "workplace_convenient"})  # fmt: skip
    assert "other account(s) R-2 still hold the workplace inconvenient" in lifted.text
    assert _calls(engine, first, work)[work] is False
    done = agent.post("/inbox/accounts/R-2/workplace", follow_redirects=True,
                      data={"csrf_token": token, "kind": "workplace_convenient"})  # fmt: skip
    assert "Recorded: the debtor agrees to contact at work again." in done.text
    assert _calls(engine, first, work)[work] is True


def _work_number(engine: Engine, account_id: int, number: str) -> None:
    with engine.begin() as connection:
        connection.execute(insert(contact_points).values(
            account_id=account_id, channel="voice", address=number, kind="work", priority=1,
            consent=True, consent_source="test", consent_at=NOW, status="active",
            created_at=NOW, updated_at=NOW,
        ))  # fmt: skip


def _calls(engine: Engine, account_id: int, work: str) -> dict[str, bool]:
    """Whether a manual call to the mobile and to the work number would be allowed now."""
    rules = load_ruleset()
    with engine.connect() as connection:
        row = connection.execute(select(accounts).where(accounts.c.id == account_id)).one()
        record = load_debtors(connection, [row], NOW, 30, "US", rules=rules)[account_id]
    return {
        to: evaluate(situation(record, "voice", to, NOW, automated=False), rules).allowed
        for to in ("+16175550101", work)
    }


def test_clearing_the_flag_keeps_the_event(agent: httpx.Client, engine: Engine) -> None:
    add_account(engine)
    _reply(engine, "This is not my debt")
    assert _account(engine).flag == "dispute"
    cleared = agent.post("/inbox/accounts/R-1/flag-cleared", data=_form(agent, "Flag"))
    assert cleared.status_code == 303
    assert _account(engine).flag is None
    with engine.connect() as connection:
        assert connection.execute(select(compliance_events.c.kind)).scalars().all() == ["dispute"]


def test_a_page_opened_before_the_flag_changed_does_not_clear_it(
    agent: httpx.Client, engine: Engine
) -> None:
    """Ana opens an account flagged dispute; the debtor then names an attorney. Her Clear,
    sent from the page as it was, is refused (409) and the attorney flag stays in the queue;
    the page shows it, and clearing it from there, once seen, works."""
    add_account(engine)
    _reply(engine, "This is not my debt", key="d")
    shown = _form(agent, "Flag")
    assert shown["flag"] == "dispute"
    _reply(engine, "Talk to my attorney", key="a")
    assert _account(engine).flag == "attorney"
    refused = agent.post("/inbox/accounts/R-1/flag-cleared", data=shown)
    assert refused.status_code == 409
    assert "It is now attorney (raised 2026-11-02 15:00 UTC)" in refused.text
    assert "<h3>Flag: attorney</h3>" in refused.text
    assert _account(engine).flag == "attorney"
    flagged = agent.get("/inbox").text.split('aria-label="Accounts flagged"')[1]
    assert "/inbox/accounts/R-1" in flagged
    again = agent.post("/inbox/accounts/R-1/flag-cleared", data=_form(agent, "Flag"))
    assert again.status_code == 303 and _account(engine).flag is None


def test_a_flag_raised_again_by_a_new_reply_is_not_cleared_from_an_older_page(
    server: Server, agent: httpx.Client, engine: Engine
) -> None:
    """The same flag, raised again by a later reply: the page showed the first one only."""
    add_account(engine)
    _reply(engine, "This is not my debt", key="d1")
    shown = _form(agent, "Flag")
    later = NOW + timedelta(hours=1)
    apply_events(engine, [inbound("I dispute this, again", key="d2", at=later)], later)
    assert (_account(engine).flag, _account(engine).flagged_at) == ("dispute", later)
    refused = agent.post("/inbox/accounts/R-1/flag-cleared", data=shown)
    assert refused.status_code == 409 and "It is now dispute" in refused.text
    assert _account(engine).flag == "dispute"


def test_a_flag_cleared_meanwhile_or_a_hand_off_under_it_is_not_cleared_unseen(
    agent: httpx.Client, engine: Engine
) -> None:
    """Clearing a reply's flag puts the pending hand-off's in its place, as before; the same
    form sent again (a double click, a second agent's page) does not clear that hand-off,
    which nobody has seen: it stays pending and flagged."""
    add_account(engine)
    _reply(engine, "This is not my debt")
    with engine.begin() as connection:
        connection.execute(accounts.update().values(handoff="pending"))
    shown = _form(agent, "Flag")
    assert agent.post("/inbox/accounts/R-1/flag-cleared", data=shown).status_code == 303
    assert (_account(engine).flag, _account(engine).handoff) == ("handoff", "pending")
    again = agent.post("/inbox/accounts/R-1/flag-cleared", data=shown)
    assert again.status_code == 409 and "It is now handoff" in again.text
    assert (_account(engine).flag, _account(engine).handoff) == ("handoff", "pending")
    # Cleared from the page that shows the hand-off, it is seen.
    seen = agent.post("/inbox/accounts/R-1/flag-cleared", data=_form(agent, "Flag"))
    assert seen.status_code == 303
    assert (_account(engine).flag, _account(engine).handoff) == (None, "seen")
    # A page still showing it, sent once more: nothing left to clear, and it says so.
    late = agent.post("/inbox/accounts/R-1/flag-cleared", data=shown)
    assert late.status_code == 409 and "the account has no flag now" in late.text


@pytest.mark.parametrize(
    "sent",
    [{}, {"flag": "dispute", "flagged_at": "yesterday"}],
    ids=["without-the-flag", "damaged"],
)
def test_a_flag_form_that_does_not_say_what_it_showed_clears_nothing(
    agent: httpx.Client, engine: Engine, sent: dict[str, str]
) -> None:
    add_account(engine)
    _reply(engine, "This is not my debt")
    token = page_token(agent, "/inbox/accounts/R-1")
    refused = agent.post("/inbox/accounts/R-1/flag-cleared", data={"csrf_token": token} | sent)
    assert refused.status_code == 400 and "open the account again" in refused.text
    assert _account(engine).flag == "dispute"


# References an agent may meet: slashes, dot segments, and what the escape itself uses.
AWKWARD = ("INV/2024/001", "X/../R-2", ".", "..", "!.", "!!..", "R-2/pause", "%2E%2E", "a b?#")


@given(st.text(min_size=1, max_size=64))
def test_a_path_segment_is_one_segment_no_browser_resolves_and_reads_back(value: str) -> None:
    segment = path_segment(value)
    assert "/" not in segment and browser_path("/" + segment) == "/" + segment
    assert from_segment(unquote(segment)) == value  # what routing decodes, read back


def test_an_account_whose_reference_holds_slashes_opens_and_is_acted_on_from_its_links(
    agent: httpx.Client, engine: Engine
) -> None:
    account_id = add_account(engine, "INV/2024/001")
    found = agent.get("/inbox/accounts", params={"q": "INV/2024"})
    href = "/inbox/accounts/INV%2F2024%2F001"
    assert f'href="{href}"' in found.text
    page = agent.get(href)
    assert page.status_code == 200 and "<h1>INV/2024/001: " in page.text
    action = re.findall(r'action="([^"]*/dispute)"', page.text)
    assert action == [href + "/dispute"]
    form = {"csrf_token": page_token(agent, href), "note": "Never delivered"}
    done = agent.post(action[0], data=form)
    assert done.status_code == 303 and done.headers["location"].startswith(href + "?")
    assert "The dispute is recorded" in agent.get(done.headers["location"]).text
    with engine.connect() as connection:
        assert connection.execute(select(compliance_events.c.account_id)).scalars().all() == [
            account_id
        ]
    # Typed with its slashes as they are, the address opens it too.
    assert "<h1>INV/2024/001: " in agent.get("/inbox/accounts/INV/2024/001").text


def test_a_link_to_an_account_opens_that_account_whatever_its_reference(
    agent: httpx.Client, engine: Engine
) -> None:
    ids = {ref: add_account(engine, ref, phone=None, email=None) for ref in ("R-2", *AWKWARD)}
    with engine.begin() as connection:
        connection.execute(accounts.update().values(flag="handoff", flagged_at=NOW))
    flagged = agent.get("/inbox").text.split('aria-label="Accounts flagged"')[1]
    links = {
        html.unescape(text): href
        for href, text in re.findall(r'<a href="([^"]+)">([^<]*)</a>', flagged)
    }
    assert set(links) == set(ids)
    for reference in AWKWARD:
        page = agent.get(browser_path(links[reference]))
        assert page.status_code == 200, reference
        assert f"<h1>{html.escape(reference, quote=False)}: " in page.text, reference
        (action,) = re.findall(r'action="([^"]*/dispute)"', page.text)
        form = {"csrf_token": page_token(agent, "/inbox"), "note": f"about {reference}"}
        done = agent.post(browser_path(html.unescape(action)), data=form)
        assert done.status_code == 303, reference
        back = agent.get(
            browser_path(done.headers["location"]) + "?" + done.headers["location"].split("?")[1]
        )
        assert f"<h1>{html.escape(reference, quote=False)}: " in back.text, reference
    with engine.connect() as connection:
        disputed = connection.execute(select(compliance_events.c.account_id)).scalars().all()
    assert sorted(disputed) == sorted(ids[reference] for reference in AWKWARD)


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


def test_an_account_address_typed_with_a_trailing_slash_opens_the_account(
    agent: httpx.Client, engine: Engine
) -> None:
    add_account(engine, "R-1")
    moved = agent.get("/inbox/accounts/R-1/")
    assert moved.status_code == 308 and moved.headers["location"] == "/inbox/accounts/R-1"
    assert "<h1>R-1: " in agent.get(moved.headers["location"]).text
    # A reference that really ends in "/" is that account's, however it is written.
    add_account(engine, "R-2/", phone=None, email=None)
    for path in ("/inbox/accounts/R-2/", "/inbox/accounts/R-2%2F"):
        assert "<h1>R-2/: " in agent.get(path).text
    assert agent.get("/inbox/accounts/R-3/").status_code == 404


def test_an_accounts_recent_attempts_say_why_one_did_not_go(
    agent: httpx.Client, engine: Engine
) -> None:
    """A failed, cancelled or held message shows why (ours, then the provider's words),
    escaped; a message sent after a refused try does not show the old refusal."""
    account_id = add_account(engine)
    why = "the provider refused the message: Twilio 21211 <b>Invalid 'To' Phone Number</b>"
    add_attempt(engine, account_id, status="failed", message_id=None, error_message=why)
    add_attempt(engine, account_id, status="cancelled", message_id=None, step_key="day-3",
                error_message="OUT_OF_DATE")  # fmt: skip
    add_attempt(engine, account_id, status="sent", message_id="SM0002", step_key="day-7",
                error_message="the provider could not be reached: timeout")  # fmt: skip
    page = agent.get("/inbox/accounts/R-1").text
    recent = page.split('aria-label="Recent attempts"')[1]
    assert str(escape(why)) in recent and "<b>Invalid" not in recent
    assert "OUT_OF_DATE" in recent
    assert "could not be reached" not in recent


def test_the_account_page_says_from_when_the_debt_is_time_barred(
    agent: httpx.Client, engine: Engine
) -> None:
    add_account(engine)
    assert "Time-barred" not in agent.get("/inbox/accounts/R-1").text
    with engine.begin() as connection:
        connection.execute(accounts.update().values(time_barred_on=date(2026, 6, 30)))
    page = agent.get("/inbox/accounts/R-1")
    assert page.status_code == 200
    assert "Time-barred from 2026-06-30" in page.text


def test_the_account_page_says_since_when_a_debt_collector_has_the_debt(
    agent: httpx.Client, engine: Engine
) -> None:
    add_account(engine)
    placed = datetime(2026, 10, 20, 14, 30, tzinfo=UTC)
    # The creditor's own account: no collector since, whatever the column holds.
    with engine.begin() as connection:
        connection.execute(accounts.update().values(collector_since=placed))
    assert "Debt collector since" not in agent.get("/inbox/accounts/R-1").text
    with engine.begin() as connection:
        connection.execute(accounts.update().values(collector_type="third_party"))
    page = agent.get("/inbox/accounts/R-1")
    assert page.status_code == 200
    assert "Debt collector since 2026-10-20 14:30 UTC" in page.text
