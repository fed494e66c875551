"""Agents find an account by reference, name, phone or email, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine, insert, select, update

from outreach.models import Role
from outreach.store import accounts, contact_points
from outreach.web.account_search import _query, _readings, find_accounts
from tests.conftest import NOW
from tests.eventdata import add_account
from tests.web.conftest import Server
from tests.web.ui_support import add_user, sign_in


@pytest.fixture
def agent(server: Server, engine: Engine) -> Iterator[httpx.Client]:
    add_user(engine, "ana", Role.AGENT)
    add_account(engine, "INV-1001")
    add_account(engine, "INV-1002", phone="+16175550111", email="sam.o'neil@example.com")
    add_account(engine, "X_%-9", phone="+16175550122", email="x@example.com")
    with engine.begin() as connection:
        connection.execute(
            insert(contact_points).values(
                account_id=select(accounts.c.id).where(accounts.c.reference == "X_%-9")
                .scalar_subquery(),
                channel="email", address="Élise@Exemple.fr", kind="personal", priority=1,
                consent=True, status="active", created_at=NOW, updated_at=NOW,
            )
        )  # fmt: skip
    # A mailbox kept as the debtor wrote it, a name beyond ASCII, seven digits in a reference.
    elodie = add_account(engine, "INV-1234567", phone=None, email="Elodie.Brule@Example.com")
    with engine.begin() as connection:
        connection.execute(
            update(accounts).where(accounts.c.id == elodie).values(name="Élodie Brûlé")
        )
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
        ("INV-1234567", ["INV-1234567"]),  # digits in a reference do not make it a phone
        ("INV-1", ["INV-1001", "INV-1002", "INV-1234567"]),
        ("pat do", ["INV-1001", "INV-1002", "X_%25-9"]),  # a part of the name, any case
        ("élodie", ["INV-1234567"]),  # any case beyond ASCII too
        ("BRÛLÉ", ["INV-1234567"]),
        ("elodie.brule@example.com", ["INV-1234567"]),  # stored with capitals
        ("Élise@Exemple.fr", ["X_%25-9"]),  # beyond ASCII, typed as stored
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
    nul = agent.get("/inbox/accounts", params={"q": "ab\x00cd"})
    assert nul.status_code == 400 and "printable characters only" in nul.text
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


def test_what_an_agent_is_told_the_search_matched(agent: httpx.Client) -> None:
    said = {
        "INV-10": "Accounts whose reference begins with “INV-10”.",
        "pat": "Accounts whose name contains “pat”.",
        "(617) 555-0111": "Accounts with the phone number “(617) 555-0111”.",
        "x@example.com": "Accounts with the email address “x@example.com”.",
    }
    for query, line in said.items():
        assert line in agent.get("/inbox/accounts", params={"q": query}).text


@pytest.mark.parametrize("query", ["INV-10", "(617) 555-0111", "Sam.O'Neil@example.com"])
def test_only_a_name_search_reads_every_account(engine: Engine, query: str) -> None:
    """A reference, a phone number or an email is found through an index; a query
    beginning a reference never goes on to the name search."""
    if engine.dialect.name != "sqlite":
        pytest.skip("the query plans checked are SQLite's")
    add_account(engine, "INV-1002", phone="+16175550111", email="sam.o'neil@example.com")
    with engine.connect() as connection:
        assert find_accounts(connection, query, "US").way != "name"
        for way, where in _readings(connection, query, "US"):
            if way == "name":
                continue
            compiled = _query(where).compile(
                dialect=connection.dialect, compile_kwargs={"literal_binds": True}
            )
            plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}").all()
            steps = " | ".join(str(row[-1]) for row in plan)
            assert "SCAN" not in steps.replace("SCAN CONSTANT", ""), (way, steps)
