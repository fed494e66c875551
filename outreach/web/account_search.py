"""Finding an account without a reply to start from: a debtor on the phone, a letter, a
colleague's note. Agents search by reference, name, phone number or email address.

A phone number is read as the importer reads it (any common format, the default region's
when it has no country code) and matched exactly; an email address is matched exactly, in
any case; anything else is a reference's beginning or, when no reference begins so, a part
of a name. Only the name search reads the whole table (about a second a million accounts).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import phonenumbers
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import ColumnElement, Connection, Select, String, literal, select

from outreach.config import Settings
from outreach.opt_outs import same_address
from outreach.rendering.context import format_money
from outreach.store import accounts, contact_points, folded
from outreach.web import ui
from outreach.web.auth import Agent
from outreach.web.inbox_pages import engine_of

router = APIRouter()
MAX_RESULTS = 50
MIN_QUERY = 2
MAX_QUERY = 200


@router.get("/inbox/accounts", response_class=HTMLResponse)
def search(request: Request, session: Agent, q: str = "") -> Response:
    query = " ".join(q.split())
    values: dict[str, Any] = {"title": "Find an account", "q": query, "results": None}
    if not query:
        return ui.render(request, "accounts.html", session, values)
    if "\x00" in query:  # no database stores it; PostgreSQL refuses it outright
        notice = "Search for printable characters only."
        return ui.render(
            request, "accounts.html", session, values, notices=[("error", notice)], status=400
        )
    if not MIN_QUERY <= len(query) <= MAX_QUERY:
        notice = f"Search for {MIN_QUERY} to {MAX_QUERY} characters."
        return ui.render(
            request, "accounts.html", session, values, notices=[("error", notice)], status=400
        )
    settings: Settings = request.app.state.settings
    with engine_of(request).connect() as connection:
        found = find_accounts(connection, query, settings.default_region)
    values["results"] = [
        {"row": row, "balance": format_money(row.balance_minor, row.currency, row.locale)}
        for row in found.rows[:MAX_RESULTS]
    ]
    values["more"] = len(found.rows) > MAX_RESULTS
    values["way"] = found.way
    return ui.render(request, "accounts.html", session, values)


def find_accounts(connection: Connection, query: str, region: str) -> Found:
    """Up to ``MAX_RESULTS + 1`` accounts matching ``query``, by reference, and what they
    matched: the first of the query's readings that finds any."""
    for way, where in _readings(connection, query, region):
        rows = list(connection.execute(_query(where)))
        if rows:
            return Found(way, rows)
    return Found(None, [])


def _query(where: ColumnElement[bool]) -> Select[Any]:
    return select(*_COLUMNS).where(where).order_by(accounts.c.reference).limit(MAX_RESULTS + 1)


@dataclass(frozen=True)
class Found:
    way: str | None  # "email", "phone", "reference" or "name"; None when nothing matched
    rows: list[Any]


_COLUMNS = (accounts.c.id, accounts.c.reference, accounts.c.name, accounts.c.balance_minor,
            accounts.c.currency, accounts.c.locale, accounts.c.status, accounts.c.paused_until,
            accounts.c.flag, accounts.c.next_contact_at)  # fmt: skip
_PHONE_CHARACTERS = frozenset("0123456789+()-. ")


def _readings(
    connection: Connection, query: str, region: str
) -> Iterator[tuple[str, ColumnElement[bool]]]:
    """Each way ``query`` may be meant, the likeliest first. All but a name's part are
    answered by an index; a name's part reads every account, so it comes last, and only
    when nothing else matched."""
    if "@" in query:
        # Addresses keep the case they came in; the index on their lower case finds them.
        yield (
            "email",
            accounts.c.id.in_(
                select(contact_points.c.account_id).where(
                    contact_points.c.channel == "email",
                    # Without case, every letter's, as replies find their sender.
                    same_address(connection, contact_points.c.address, ("email",), query),
                )
            ),
        )
        return
    phone = _phone(query, region)
    if phone is not None:
        yield (
            "phone",
            accounts.c.id.in_(
                select(contact_points.c.account_id).where(
                    contact_points.c.channel.in_(("sms", "voice")),
                    contact_points.c.address == phone,
                )
            ),
        )
    # A reference's beginning, as a range. Under PostgreSQL's language locales a range
    # would not mean "begins with": compared there in byte order, which its index on the
    # reference in the C collation answers (SQLite's unique index compares bytes already).
    reference: ColumnElement[str] = accounts.c.reference
    if connection.dialect.name == "postgresql":
        reference = reference.collate("C")
    yield "reference", (reference >= query) & (reference < query + "\U0010ffff")
    if phone is None:
        # The query is folded by the database as the name is: PostgreSQL's lower() and
        # Python's disagree on a final sigma and a dotted capital I. Its LIKE wildcards are
        # escaped first (folding leaves "/", "%" and "_" as they are).
        part = folded(connection, literal(_like_escaped(query), String))
        yield "name", folded(connection, accounts.c.name).contains(part, escape="/")


def _like_escaped(text: str) -> str:
    """``text`` as a LIKE pattern matching itself, with "/" as the escape character."""
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


def _phone(query: str, region: str) -> str | None:
    """The number ``query`` is, in E.164, if it is written as phone numbers are (digits,
    spaces, + ( ) - .) with at least seven digits."""
    if not set(query) <= _PHONE_CHARACTERS or sum(ch.isdigit() for ch in query) < 7:
        return None
    try:
        number = phonenumbers.parse(query, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
