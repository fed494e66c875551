"""Finding an account without a reply to start from: a debtor on the phone, a letter, a
colleague's note. Agents search by reference, name, phone number or email address.

A phone number is read as the importer reads it (any common format, the default region's
when it has no country code) and matched exactly; an email address is matched exactly
(stored in lower case); anything else is a reference's beginning or a part of a name. The
name search reads the whole table: on a million accounts it takes a moment.
"""

from __future__ import annotations

from typing import Any

import phonenumbers
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import ColumnElement, Connection, func, select

from outreach.config import Settings
from outreach.rendering.context import format_money
from outreach.store import accounts, contact_points
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
        for row in found[:MAX_RESULTS]
    ]
    values["more"] = len(found) > MAX_RESULTS
    return ui.render(request, "accounts.html", session, values)


def find_accounts(connection: Connection, query: str, region: str) -> list[Any]:
    """Up to ``MAX_RESULTS + 1`` accounts matching ``query``, by reference."""
    columns = (accounts.c.id, accounts.c.reference, accounts.c.name, accounts.c.balance_minor,
               accounts.c.currency, accounts.c.locale, accounts.c.status,
               accounts.c.paused_until, accounts.c.flag, accounts.c.next_contact_at)  # fmt: skip
    address = _address(query, region)
    where: ColumnElement[bool]
    if address is not None:
        owners = select(contact_points.c.account_id).where(contact_points.c.address == address)
        where = accounts.c.id.in_(owners)
    else:
        # A reference's beginning, as a range the unique index answers; a part of a name.
        where = (
            (accounts.c.reference >= query) & (accounts.c.reference < query + "\U0010ffff")
        ) | func.lower(accounts.c.name).contains(query.lower(), autoescape=True)
    return list(
        connection.execute(
            select(*columns).where(where).order_by(accounts.c.reference).limit(MAX_RESULTS + 1)
        )
    )


def _address(query: str, region: str) -> str | None:
    """The contact point address ``query`` names, if it is an email or a phone number."""
    if "@" in query:
        return query.lower()
    if sum(ch.isdigit() for ch in query) < 7:
        return None
    try:
        number = phonenumbers.parse(query, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
