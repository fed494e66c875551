"""Agents find an account by reference, name, phone or email, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine

from outreach.models import Role
from tests.eventdata import add_account
from tests.web.conftest import Server
from tests.web.ui_support import add_user, sign_in


@pytest.fixture
def agent(server: Server, engine: Engine) -> Iterator[httpx.Client]:
    add_user(engine, "ana", Role.AGENT)
    add_account(engine, "INV-1001")
    add_account(engine, "INV-1002", phone="+16175550111", email="sam.o'neil@example.com")
    add_account(engine, "X_%-9", phone="+16175550122", email="x@example.com")
    with sign_in(server.base, "ana") as client:
        yield client


def found(client: httpx.Client, query: str) -> list[str]:
    page = client.get("/inbox/accounts", params={"q": query})
    assert page.status_code == 200, page.text
    return [part.split('"')[0] for part in page.text.split('<a href="/inbox/accounts/')[1:]]


@pytest.mark.parametrize(
    ("query", "references"),
    [
        ("INV-100", ["INV-1001", "INV-1002"]),  # a reference's beginning
        ("INV-1002", ["INV-1002"]),
        ("pat do", ["INV-1001", "INV-1002", "X_%25-9"]),  # a part of the name, any case
        ("(617) 555-0111", ["INV-1002"]),  # a phone number as people write it
        ("+1 617 555 0122", ["X_%25-9"]),
        ("SAM.O'NEIL@EXAMPLE.COM", ["INV-1002"]),  # an email, in any case
        ("X_%", ["X_%25-9"]),  # wildcards are plain characters
        ("_%", []),
        ("617 555 0199", []),
    ],
)
def test_accounts_are_found_by_what_an_agent_knows(
    agent: httpx.Client, query: str, references: list[str]
) -> None:
    assert found(agent, query) == references


def test_the_search_page_guides_and_refuses_what_it_cannot_search(
    agent: httpx.Client,
) -> None:
    empty = agent.get("/inbox/accounts")
    assert empty.status_code == 200 and "Reference, name, phone or email" in empty.text
    assert "Accounts found" not in empty.text
    short = agent.get("/inbox/accounts", params={"q": "I"})
    assert short.status_code == 400 and "Search for 2 to 200 characters." in short.text
    none = agent.get("/inbox/accounts", params={"q": "nobody at all"})
    assert "No account matches “nobody at all”." in none.text
    assert 'href="/inbox/accounts"' in agent.get("/inbox").text


def test_only_agents_search(server: Server, engine: Engine, agent: httpx.Client) -> None:
    add_user(engine, "mo", Role.MARKETER)
    with sign_in(server.base, "mo") as marketer:
        assert marketer.get("/inbox/accounts", params={"q": "INV"}).status_code == 403


def test_a_long_list_is_cut_and_says_so(
    agent: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from outreach.web import account_search

    monkeypatch.setattr(account_search, "MAX_RESULTS", 2)
    page = agent.get("/inbox/accounts", params={"q": "Pat"}).text
    assert page.count('<a href="/inbox/accounts/') == 2
    assert "Only the first 2 are shown" in page
