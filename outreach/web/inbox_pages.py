"""The agents' inbox: debtors' replies waiting for someone, an account's page with its
thread, and what an agent records (``outreach.agent_actions``).

Every change is a plain form (POST, then a redirect back with a notice), so the pages work
without scripts; a refused one shows the account page again with the reason, and writes
nothing. Debtors' words are shown as text: the UI's templates escape everything.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Connection, Engine, select

from outreach import agent_actions as actions
from outreach.compliance_store import attempts, inbox_messages
from outreach.errors import NotFoundError
from outreach.inbox import clear_flag, handle, open_replies, thread
from outreach.intents import Intent
from outreach.models import InboxStatus, PromiseStatus
from outreach.rendering.context import format_money
from outreach.store import accounts, compliance_events, promises_to_pay
from outreach.web import ui
from outreach.web.auth import Agent, Session

router = APIRouter()
PAGE_SIZE = 50
_INTENTS = tuple(intent.value for intent in Intent)


@router.get("/inbox", response_class=HTMLResponse)
def inbox(
    request: Request,
    session: Agent,
    intent: str | None = None,
    sender: str | None = None,
    before: int | None = None,
) -> Response:
    unknown = {"unknown": True, "known": False}.get(sender or "")
    with _engine(request).connect() as connection:
        items = open_replies(
            connection, limit=PAGE_SIZE + 1, before_id=before, intent=intent or None,
            unknown_sender=unknown,
        )  # fmt: skip
    more = len(items) > PAGE_SIZE
    items = items[:PAGE_SIZE]
    filters = {"intent": intent or "", "sender": sender or ""}
    following = None
    if more:
        query = "&".join(f"{k}={quote(v)}" for k, v in filters.items() if v)
        following = f"/inbox?before={items[-1].id}" + (f"&{query}" if query else "")
    values = {
        "title": "Inbox", "items": items, "filters": filters, "intents": _INTENTS,
        "following": following,
    }  # fmt: skip
    return ui.render(request, "inbox.html", session, values, notices=ui.notice_from(request))


@router.get("/inbox/accounts/{reference}", response_class=HTMLResponse)
def account_page(request: Request, session: Agent, reference: str) -> Response:
    return _account_page(request, session, reference, notices=ui.notice_from(request))


@router.post("/inbox/accounts/{reference}/handled")
def mark_handled(
    request: Request, session: Agent, reference: str, message_id: Annotated[int, Form()]
) -> Response:
    def act(connection: Connection, account: actions.AccountRef, now: datetime) -> str:
        owner = connection.execute(
            select(inbox_messages.c.account_id).where(inbox_messages.c.id == message_id)
        ).scalar_one_or_none()
        if owner != account.id:
            raise NotFoundError(f"no message {message_id} in the inbox of {reference}")
        handle(connection, message_id, now, session.user.id)
        return "The reply is handled."

    return _change(request, session, reference, act)


@router.post("/inbox/accounts/{reference}/flag-cleared")
def flag_cleared(request: Request, session: Agent, reference: str) -> Response:
    def act(connection: Connection, account: actions.AccountRef, now: datetime) -> str:
        clear_flag(connection, account.id, now)
        return "The flag is cleared; what caused it stays on record."

    return _change(request, session, reference, act)


@router.post("/inbox/accounts/{reference}/pause")
def pause(
    request: Request,
    session: Agent,
    reference: str,
    days: Annotated[int, Form()],
    reason: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    def act(connection: Connection, account: actions.AccountRef, now: datetime) -> str:
        # The reason names the agent: the account has no other column for who paused it.
        why = f"{reason.strip()} ({session.user.username})" if reason.strip() else ""
        until = actions.pause(connection, account, days, why, now)
        return f"Outreach is paused until {until:%Y-%m-%d %H:%M} UTC."

    return _change(request, session, reference, act)


@router.post("/inbox/accounts/{reference}/resume")
def resume(request: Request, session: Agent, reference: str) -> Response:
    def act(connection: Connection, account: actions.AccountRef, now: datetime) -> str:
        actions.resume(connection, account, now)
        return "Outreach resumes: the account is due now, as compliance allows."

    return _change(request, session, reference, act)


@router.post("/inbox/accounts/{reference}/promise")
def promise(
    request: Request,
    session: Agent,
    reference: str,
    amount: Annotated[str, Form(max_length=40)],
    due_on: Annotated[str, Form(max_length=20)],
) -> Response:
    def act(connection: Connection, account: actions.AccountRef, now: datetime) -> str:
        try:
            day = date.fromisoformat(due_on.strip())
        except ValueError:
            raise actions.ActionRefused(f"{due_on!r} is not a date (YYYY-MM-DD)") from None
        minor = actions.parse_amount(amount, account.currency)
        today = now.astimezone(_zone(connection, account.id)).date()
        actions.promise(connection, account, minor, day, today, session.user.username, now)
        return f"Promise to pay {amount.strip()} {account.currency} by {day.isoformat()} noted."

    return _change(request, session, reference, act)


@router.post("/inbox/accounts/{reference}/dispute")
def dispute(
    request: Request,
    session: Agent,
    reference: str,
    note: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    def act(connection: Connection, account: actions.AccountRef, now: datetime) -> str:
        actions.record_dispute(connection, account, note, session.user.username, now)
        return "The dispute is recorded: collection contact stops until it is resolved."

    return _change(request, session, reference, act)


def _change(request: Request, session: Session, reference: str, act: Any) -> Response:
    """Run ``act`` in one transaction; a refusal shows the page again and writes nothing."""
    now: datetime = request.app.state.clock.now()
    try:
        with _engine(request).begin() as connection:
            account = actions.account_by_reference(connection, reference)
            done = act(connection, account, now)
    except NotFoundError as exc:
        return _account_page(request, session, reference, [("error", str(exc))], status=404)
    except actions.ActionRefused as exc:
        return _account_page(request, session, reference, [("error", str(exc))], status=400)
    where = f"/inbox/accounts/{quote(reference, safe='')}?done={quote(done, safe='')}"
    return RedirectResponse(where, status_code=303)


def _account_page(
    request: Request,
    session: Session,
    reference: str,
    notices: list[tuple[str, str]],
    status: int = 200,
) -> HTMLResponse:
    now: datetime = request.app.state.clock.now()
    with _engine(request).connect() as connection:
        row = connection.execute(select(accounts).where(accounts.c.reference == reference)).first()
        if row is None:
            message = f"There is no account {reference}."
            return ui.message_page(request, session, "No such account", message, 404)
        messages = thread(connection, row.id)
        promises = connection.execute(
            select(promises_to_pay)
            .where(promises_to_pay.c.account_id == row.id)
            .order_by(promises_to_pay.c.created_at.desc())
            .limit(10)
        ).all()
        events = connection.execute(
            select(compliance_events)
            .where(compliance_events.c.account_id == row.id)
            .order_by(compliance_events.c.occurred_at.desc(), compliance_events.c.id.desc())
            .limit(20)
        ).all()
        sent = connection.execute(
            select(
                attempts.c.channel,
                attempts.c.status,
                attempts.c.step_key,
                attempts.c.created_at,
                attempts.c.to_address,
            )
            .where(attempts.c.account_id == row.id)
            .order_by(attempts.c.created_at.desc(), attempts.c.id.desc())
            .limit(20)
        ).all()
    paused = row.paused_until is not None and _aware(row.paused_until) > now
    values = {
        "title": f"Account {row.reference}",
        "account": row,
        "balance": format_money(row.balance_minor, row.currency, row.locale),
        "paused": paused,
        "messages": messages,
        "open_status": InboxStatus.OPEN,
        "promises": [
            {"amount": format_money(p.amount_minor, p.currency, row.locale), "row": p}
            for p in promises
        ],
        "pending": PromiseStatus.PENDING,
        "events": events,
        "attempts": sent,
        "today": now.date().isoformat(),
    }
    return ui.render(request, "inbox_account.html", session, values, notices=notices,
                     status=status)  # fmt: skip


def _zone(connection: Connection, account_id: int) -> ZoneInfo:
    """The debtor's zone: a promise 'for today' is the debtor's today."""
    name = connection.execute(
        select(accounts.c.timezone).where(accounts.c.id == account_id)
    ).scalar_one_or_none()
    return ZoneInfo(name or "UTC")


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine
