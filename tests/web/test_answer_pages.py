"""Answering a debtor from the account's page, on a real server over SQLite and
PostgreSQL: the form, the queued answer in the conversation, and refusals that keep what
the agent wrote."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine, select

from outreach.compliance_store import attempts, decisions, inbox_messages
from outreach.events import apply_events
from outreach.models import Role
from tests.conftest import NOW
from tests.eventdata import PHONE, add_account, inbound
from tests.web.conftest import Server
from tests.web.ui_support import add_user, page_token, seed_templates, sign_in

_FORM_KEY = re.compile(r'name="form_key" value="([^"]+)"')
_SEEN = re.compile(r'name="seen" value="((\d+):\d+)"')


@pytest.fixture
def agent(server: Server, engine: Engine) -> Iterator[httpx.Client]:
    seed_templates(engine)
    add_user(engine, "ana", Role.AGENT)
    with sign_in(server.base, "ana") as client:
        yield client


def _reply(engine: Engine, text: str = "Can I pay on Friday?", key: str = "r1") -> int:
    apply_events(engine, [inbound(text, key=key, at=NOW)], NOW)
    with engine.connect() as connection:
        return int(connection.execute(select(inbox_messages.c.id)).scalars().all()[-1])


def _form(client: httpx.Client, reference: str = "R-1") -> dict[str, str]:
    page = client.get(f"/inbox/accounts/{reference}").text
    found = _FORM_KEY.search(page)
    assert found, "the page has no answer form"
    token = page_token(client, f"/inbox/accounts/{reference}")
    return {"csrf_token": token, "form_key": found.group(1)}


def _seen(page: str) -> dict[int, str]:
    """Each answer form's ``seen``, by the reply it answers."""
    return {int(reply): value for value, reply in _SEEN.findall(page)}


def test_an_agent_answers_a_reply_and_sees_it_in_the_conversation(
    agent: httpx.Client, engine: Engine
) -> None:
    add_account(engine)
    reply = _reply(engine)
    page = agent.get("/inbox/accounts/R-1").text
    assert "Answer by sms" in page and f"Answer to {PHONE}" in page
    form = _form(agent) | {"message_id": str(reply), "answer": "Friday is fine.", "handled": "yes"}
    sent = agent.post("/inbox/accounts/R-1/answer", data=form)
    assert sent.status_code == 303
    shown = agent.get(sent.headers["location"]).text
    assert f"Answer queued to {PHONE} by sms." in shown
    assert "Friday is fine." in shown and '<span class="tag">queued</span>' in shown
    with engine.connect() as connection:
        [attempt] = connection.execute(select(attempts)).all()
        thread = connection.execute(select(inbox_messages).order_by(inbox_messages.c.id)).all()
    assert attempt.automated is False and attempt.body.startswith("Friday is fine.")
    assert thread[0].status == "handled"
    assert (thread[1].direction, thread[1].attempt_id) == ("outbound", attempt.id)
    # The same form again (a double click, a resend after a lost answer): one answer.
    again = agent.post("/inbox/accounts/R-1/answer", data=form)
    assert "That answer was already queued." in agent.get(again.headers["location"]).text
    with engine.connect() as connection:
        assert len(connection.execute(select(attempts)).all()) == 1


def test_a_blocked_answer_is_refused_with_its_reasons_and_keeps_the_words(
    agent: httpx.Client, engine: Engine
) -> None:
    add_account(engine)
    reply = _reply(engine)
    apply_events(engine, [inbound("STOP", key="stop", at=NOW)], NOW)
    words = 'Sorry to see you go <b>"Pat"</b>'
    form = _form(agent) | {"message_id": str(reply), "answer": words}
    refused = agent.post("/inbox/accounts/R-1/answer", data=form)
    assert refused.status_code == 409
    assert "Compliance does not allow an answer by sms now" in refused.text
    assert "Sorry to see you go &lt;b&gt;&#34;Pat&#34;&lt;/b&gt;</textarea>" in refused.text
    with engine.connect() as connection:
        assert connection.execute(select(attempts)).all() == []
        verdicts = connection.execute(
            select(decisions.c.verdict).where(decisions.c.stage == "answer")
        ).scalars()
        assert list(verdicts) == ["block"]


def test_input_that_cannot_be_sent_is_refused_and_kept(agent: httpx.Client, engine: Engine) -> None:
    add_account(engine)
    reply = _reply(engine)
    words = "word " * 120
    form = _form(agent) | {"message_id": str(reply), "answer": words}
    refused = agent.post("/inbox/accounts/R-1/answer", data=form)
    assert refused.status_code == 400 and "the limit is 3 segments" in refused.text
    assert words.strip() in refused.text
    bad_id = agent.post("/inbox/accounts/R-1/answer", data=form | {"message_id": "abc"})
    assert bad_id.status_code == 400 and "is not a message id" in bad_id.text
    missing = agent.post("/inbox/accounts/R-1/answer", data=form | {"message_id": "999"})
    assert missing.status_code == 404
    # Far beyond what the form allows (pasted past its limit, a browser without it): the
    # page says so and keeps every word, and so for any field out of bounds.
    pasted = "A long story. " * 1000
    too_long = agent.post("/inbox/accounts/R-1/answer", data=form | {"answer": pasted})
    assert too_long.status_code == 400 and "an answer is at most 2000 characters" in too_long.text
    assert pasted.strip() in too_long.text
    odd = [("form_key", "k" * 500), ("seen", "1" * 50), ("seen", f"{reply}:x"),
           ("seen", f"{reply + 1}:0"), ("seen", ":0")]  # fmt: skip
    for field, value in odd:
        out = agent.post("/inbox/accounts/R-1/answer", data=form | {"answer": "Kept", field: value})
        assert out.status_code == 400 and "Kept</textarea>" in out.text, value
        if field == "seen":
            assert "the answer form is out of date: open the account again" in out.text
    with engine.connect() as connection:
        assert connection.execute(select(attempts)).all() == []


def test_only_agents_answer_and_only_with_the_form_token(
    server: Server, agent: httpx.Client, engine: Engine
) -> None:
    add_account(engine)
    reply = _reply(engine)
    form = _form(agent) | {"message_id": str(reply), "answer": "Hello"}
    forged = agent.post("/inbox/accounts/R-1/answer", data=form | {"csrf_token": "x" * 20})
    assert forged.status_code == 403
    add_user(engine, "mo", Role.MARKETER)
    with sign_in(server.base, "mo") as marketer:
        token = page_token(marketer, "/templates")
        denied = marketer.post("/inbox/accounts/R-1/answer", data=form | {"csrf_token": token})
        assert denied.status_code == 403
    with engine.connect() as connection:
        assert connection.execute(select(attempts)).all() == []


def test_a_reply_another_agent_answered_meanwhile_is_not_answered_twice(
    server: Server, agent: httpx.Client, engine: Engine
) -> None:
    add_account(engine)
    reply = _reply(engine)
    add_user(engine, "bo", Role.AGENT)
    with sign_in(server.base, "bo") as other:
        # Both open the account; Bo answers first.
        hers = _form(agent) | {"message_id": str(reply), "answer": "Friday is fine."}
        seen = _seen(other.get("/inbox/accounts/R-1").text)[reply]
        assert seen == f"{reply}:0"
        his = _form(other) | {"message_id": str(reply), "answer": "Yes, Friday.", "seen": seen}
        assert other.post("/inbox/accounts/R-1/answer", data=his).status_code == 303
    hers["seen"] = seen
    late = agent.post("/inbox/accounts/R-1/answer", data=hers)
    assert late.status_code == 409
    assert "bo answered this reply at" in late.text and "Friday is fine.</textarea>" in late.text
    # Having read Bo's answer on the page she was shown, she may still send hers.
    again = _form(agent) | {"message_id": str(reply), "answer": "Friday is fine."}
    again["seen"] = _seen(late.text)[reply]
    assert agent.post("/inbox/accounts/R-1/answer", data=again).status_code == 303
    with engine.connect() as connection:
        assert len(connection.execute(select(attempts)).all()) == 2


def test_an_answer_to_another_reply_leaves_a_form_as_it_was(
    server: Server, agent: httpx.Client, engine: Engine
) -> None:
    """Two replies on one account, the page open for two agents: Bo answers the first.
    Ana's form for the second still sends; hers for the first, opened before Bo's answer,
    is refused (409)."""
    add_account(engine)
    first = _reply(engine, "Can I pay on Friday?", key="r1")
    second = _reply(engine, "And what about the fee?", key="r2")
    hers = _form(agent)
    seen = _seen(agent.get("/inbox/accounts/R-1").text)
    assert seen == {first: f"{first}:0", second: f"{second}:0"}
    add_user(engine, "bo", Role.AGENT)
    with sign_in(server.base, "bo") as other:
        his_seen = _seen(other.get("/inbox/accounts/R-1").text)[first]
        his = _form(other) | {"message_id": str(first), "answer": "Yes, Friday.", "seen": his_seen}
        assert other.post("/inbox/accounts/R-1/answer", data=his).status_code == 303
    about_fee = hers | {"message_id": str(second), "answer": "The fee is waived.",
                        "seen": seen[second]}  # fmt: skip
    assert agent.post("/inbox/accounts/R-1/answer", data=about_fee).status_code == 303
    about_friday = hers | {"message_id": str(first), "answer": "Friday is fine.",
                           "seen": seen[first]}  # fmt: skip
    late = agent.post("/inbox/accounts/R-1/answer", data=about_friday)
    assert late.status_code == 409
    assert "bo answered this reply at" in late.text and "Friday is fine.</textarea>" in late.text
    with engine.connect() as connection:
        bodies = connection.execute(select(attempts.c.body).order_by(attempts.c.id)).all()
    assert len(bodies) == 2
    assert bodies[0].body.startswith("Yes, Friday.")
    assert bodies[1].body.startswith("The fee is waived.")


def test_a_form_from_before_replies_were_told_apart_is_still_checked(
    server: Server, agent: httpx.Client, engine: Engine
) -> None:
    """A page opened before this version carries the account's newest attempt as a bare
    number: an answer to the same reply queued since is still caught."""
    add_account(engine)
    reply = _reply(engine)
    hers = _form(agent) | {"message_id": str(reply), "answer": "Friday is fine.", "seen": "0"}
    add_user(engine, "bo", Role.AGENT)
    with sign_in(server.base, "bo") as other:
        his = _form(other) | {"message_id": str(reply), "answer": "Yes, Friday."}
        assert other.post("/inbox/accounts/R-1/answer", data=his).status_code == 303
    late = agent.post("/inbox/accounts/R-1/answer", data=hers)
    assert late.status_code == 409 and "bo answered this reply at" in late.text


def test_a_text_answered_from_another_account_with_the_number_is_shown_and_checked(
    server: Server, agent: httpx.Client, engine: Engine
) -> None:
    """R-A and R-B have the same phone: its text is in both inboxes. Each page says so.
    Bo answers it from R-A while Ana has R-B's page open: her answer is refused (409),
    and the page she gets says who answered it, from which account, and what; having
    read it, she may still send hers."""
    add_account(engine, "R-A")
    add_account(engine, "R-B")
    apply_events(engine, [inbound("Can I pay on Friday?", key="r1", at=NOW)], NOW)
    with engine.connect() as connection:
        on_a, on_b = connection.execute(select(inbox_messages.c.id)).scalars().all()
    page = agent.get("/inbox/accounts/R-B").text
    assert 'Also in the inbox of <a href="/inbox/accounts/R-A">R-A</a> (open)' in page
    # The inbox lists it once, naming both accounts.
    listing = agent.get("/inbox").text
    assert listing.count("Can I pay on Friday?") == 1
    assert 'also <a href="/inbox/accounts/R-B">R-B</a>' in listing
    # And the start page counts it once.
    assert re.search(r"<strong>1</strong>\s*<span>replies waiting</span>", agent.get("/").text)
    hers = _form(agent, "R-B") | {"message_id": str(on_b), "answer": "Friday is fine.",
                                  "seen": _seen(page)[on_b], "handled": "yes"}  # fmt: skip
    add_user(engine, "bo", Role.AGENT)
    with sign_in(server.base, "bo") as other:
        his_seen = _seen(other.get("/inbox/accounts/R-A").text)[on_a]
        his = _form(other, "R-A") | {"message_id": str(on_a), "answer": "Yes, Friday.",
                                     "seen": his_seen, "handled": "yes"}  # fmt: skip
        assert other.post("/inbox/accounts/R-A/answer", data=his).status_code == 303
    late = agent.post("/inbox/accounts/R-B/answer", data=hers)
    assert late.status_code == 409
    assert "bo answered this reply from R-A at 2026-11-02 15:00 UTC" in late.text
    assert "Friday is fine.</textarea>" in late.text
    assert 'Answered from <a href="/inbox/accounts/R-A">R-A</a> by bo at 2026-11-02 15:00' in (
        late.text
    )
    assert '<span class="body">Yes, Friday.</span>' in late.text
    assert "(handled)" in late.text  # R-A's copy, and R-B's with it
    again = hers | {"seen": _seen(late.text)[on_b]}
    assert agent.post("/inbox/accounts/R-B/answer", data=again).status_code == 303
    with engine.connect() as connection:
        answered = connection.execute(select(attempts.c.account_id).order_by(attempts.c.id))
        assert len(answered.all()) == 2
