"""Agents find an account by reference, name, phone or email, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Connection, Engine, create_engine, insert, make_url, select, text, update
from sqlalchemy.exc import DBAPIError

from outreach.config import Settings
from outreach.db import make_engine, upgrade
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
        ("élise@exemple.fr", ["X_%25-9"]),  # beyond ASCII, in another case
        ("ÉLISE@EXEMPLE.FR", ["X_%25-9"]),
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


# Names whose lower case PostgreSQL and Python spell differently: PostgreSQL's lower() makes
# every capital sigma a medial σ and a dotted capital I a plain i (under libc's locales),
# Python's a final ς at a word's end and an i with a combining dot.
NAMES_BEYOND_ASCII = {"GR-1": "Σίσυφος ΟΔΥΣΣΕΥΣ", "TR-1": "İlkay Straße"}
FOUND_BEYOND_ASCII = [
    ("Σίσυφος ΟΔΥΣΣΕΥΣ", ["GR-1"]),  # typed as stored
    ("ΟΔΥΣΣΕΥΣ", ["GR-1"]),  # a final capital sigma
    ("σίσυφος οδυσσ", ["GR-1"]),  # another case, where every folding agrees
    ("İlkay Straße", ["TR-1"]),  # typed as stored
    ("LKAY STRAẞE", ["TR-1"]),  # a capital sharp s
]


def add_names_beyond_ascii(engine: Engine) -> None:
    for reference, name in NAMES_BEYOND_ASCII.items():
        account = add_account(engine, reference, phone=None, email=None)
        with engine.begin() as connection:
            connection.execute(update(accounts).where(accounts.c.id == account).values(name=name))


@pytest.mark.parametrize(("query", "references"), FOUND_BEYOND_ASCII)
def test_a_name_is_found_as_it_was_typed_whatever_its_letters(
    agent: httpx.Client, engine: Engine, query: str, references: list[str]
) -> None:
    add_names_beyond_ascii(engine)
    assert found(agent, query) == references


def test_postgresql_indexes_references_in_byte_order(engine: Engine) -> None:
    """The reference search compares in byte order; SQLite's unique index does already."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            names = connection.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'account'"
            ).scalars()
            assert "ix_account_reference_c" not in list(names)
            return
        definition = connection.execute(
            text(
                "SELECT indexdef FROM pg_indexes"
                " WHERE tablename = 'account' AND indexname = 'ix_account_reference_c'"
            )
        ).scalar_one()
    assert definition.endswith('USING btree (reference COLLATE "C")'), definition


# PostgreSQL's collations other than C: its unique index on the reference does not keep
# byte order under them. Each a database of its own, skipped where the server lacks it.
LOCALES = {
    "en-US ICU": "LOCALE_PROVIDER icu ICU_LOCALE 'en-US'",
    "en_US.UTF-8 libc": "LOCALE_PROVIDER libc LC_COLLATE 'en_US.UTF-8' LC_CTYPE 'en_US.UTF-8'",
    "C.UTF-8 libc": "LOCALE_PROVIDER libc LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'",
}


@pytest.fixture(scope="module", params=list(LOCALES))
def locale_database(postgres_url: str, request: pytest.FixtureRequest) -> Iterator[Engine]:
    """A migrated PostgreSQL database created with one of ``LOCALES``, holding the
    accounts beyond ASCII and INV-1001."""
    url = make_url(postgres_url)
    label = re.sub(r"\W", "_", request.param).lower()
    name = f"outreach_search_{label}_{os.getpid()}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            if (connection.dialect.server_version_info or (0,)) < (15,):
                pytest.skip("choosing a database's locale provider needs PostgreSQL 15")
            try:
                connection.exec_driver_sql(
                    f"CREATE DATABASE {name} TEMPLATE template0 {LOCALES[request.param]}"
                )
            except DBAPIError as error:
                if "locale" not in str(error.orig).lower():
                    raise
                pytest.skip(f"this PostgreSQL has no {request.param}: {error.orig}")
        engine = make_engine(
            Settings(database_url=url.set(database=name).render_as_string(hide_password=False))
        )
        try:
            if request.param.startswith("en"):
                with engine.connect() as connection:  # as a language sorts, not in byte order
                    assert connection.exec_driver_sql("SELECT 'a' < 'B'").scalar_one()
            upgrade(engine)
            add_names_beyond_ascii(engine)
            add_account(engine, "INV-1001")
            yield engine
        finally:
            engine.dispose()
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def _reference_plan(connection: Connection, query: str) -> str:
    (where,) = [where for way, where in _readings(connection, query, "US") if way == "reference"]
    compiled = _query(where).compile(connection, compile_kwargs={"literal_binds": True})
    return "\n".join(connection.exec_driver_sql(f"EXPLAIN {compiled}").scalars())


@pytest.mark.postgres
def test_under_a_locale_a_reference_is_found_through_an_index(
    locale_database: Engine,
) -> None:
    with locale_database.connect() as connection:
        connection.exec_driver_sql("SET enable_seqscan = off")  # a small table scans
        plan = _reference_plan(connection, "INV-10")
        assert "ix_account_reference_c" in plan and "Index Cond" in plan, plan
        # Without it the unique index is read whole, each reference compared in turn.
        connection.exec_driver_sql("DROP INDEX ix_account_reference_c")
        unserved = _reference_plan(connection, "INV-10")
        connection.rollback()
        assert "Index Cond" not in unserved, unserved
        found = find_accounts(connection, "INV-10", "US")
    assert (found.way, [row.reference for row in found.rows]) == ("reference", ["INV-1001"])


@pytest.mark.postgres
def test_under_a_locale_a_name_is_found_as_it_was_typed(
    locale_database: Engine,
) -> None:
    with locale_database.connect() as connection:
        for query, references in FOUND_BEYOND_ASCII:
            found = find_accounts(connection, query, "US")
            assert [row.reference for row in found.rows] == references, query
