"""The agents' inbox: debtors' replies waiting for someone, an account's page with its
thread, and what an agent records (``outreach.agent_actions``).

Every change is a plain form (POST, then a redirect back with a notice), so the pages work
without scripts; a refused one shows its page again with the reason (400, 404 for an
account or message that is not there, 409 when what the page showed has changed since it
was opened), and writes nothing. Debtors' words are shown as
text: the UI's templates escape everything.
"""

from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Connection, Engine, case, select

from outreach import agent_actions as actions
from outreach.answers import ANSWERED_CHANNELS, seen_answers
from outreach.compliance_store import attempts, is_placed, placed_time
from outreach.config import Settings
from outreach.errors import NotFoundError
from outreach.inbox import flagged_accounts, open_replies, thread
from outreach.intents import Intent
from outreach.models import InboxStatus, PromiseStatus
from outreach.rendering.context import format_money
from outreach.replies import reply_holds
from outreach.store import accounts, compliance_events, promises_to_pay
from outreach.web import ui
from outreach.web.auth import Agent, Session
from outreach.web.notices import notice_from, notice_query
from outreach.web.paths import from_segment, path_segment

router = APIRouter()
PAGE_SIZE = 50
_INTENTS = tuple(intent.value for intent in Intent)


@router.get("/inbox", response_class=HTMLResponse)
def inbox(
    request: Request,
    session: Agent,
    intent: str | None = None,
    sender: str | None = None,
    before: str | None = None,
) -> Response:
    filters = {"intent": intent or "", "sender": sender or ""}
    if "\x00" in filters["intent"]:  # no reply's (and PostgreSQL cannot compare one)
        refused = [("error", "The intent asked for holds a NUL character: choose one.")]
        return _inbox_page(request, session, {**filters, "intent": ""}, None, refused, 400)
    try:
        # Parsed here, not by FastAPI: a bad or oversized id gets the page and its reason,
        # not a bare 422 or a database overflow.
        last = whole_number(before, "reply id") if before is not None else None
    except actions.ActionRefused as exc:
        return _inbox_page(request, session, filters, None, [("error", str(exc))], status=400)
    return _inbox_page(request, session, filters, last, notice_from(request))


@router.post("/inbox/handled")
def unmatched_handled(
    request: Request, session: Agent, message_id: Annotated[str, Form(max_length=20)] = ""
) -> Response:
    """A reply under no account (unknown or unverified sender), handled from the inbox:
    it has no account page to be handled on."""
    now: datetime = request.app.state.clock.now()
    try:
        ident = whole_number(message_id, "message")
        with engine_of(request).begin() as connection:
            actions.handle_unmatched_reply(connection, ident, session.user.id, now)
    except NotFoundError as exc:
        return _inbox_page(request, session, {}, None, [("error", str(exc))], status=404)
    except actions.ActionRefused as exc:
        return _inbox_page(request, session, {}, None, [("error", str(exc))], status=400)
    return RedirectResponse(f"/inbox?{notice_query(request, 'The reply is handled.')}", 303)


# ``:path``: a reference may hold "/", which the link sends as %2F and routing decodes.
# Each action's route ends in its own word, so a reference is what comes before it.
@router.get("/inbox/accounts/{reference:path}", response_class=HTMLResponse)
def account(request: Request, session: Agent, reference: str) -> Response:
    name = from_segment(reference)
    if name.endswith("/") and not _exists(request, name):
        # "/inbox/accounts/R-1/", typed or pasted with a trailing slash: R-1's page, unless
        # a reference really ends in "/" (its link writes it as %2F, read here alike).
        bare = name.rstrip("/")
        if bare and _exists(request, bare):
            query = f"?{request.url.query}" if request.url.query else ""
            return RedirectResponse(f"/inbox/accounts/{path_segment(bare)}{query}", 308)
    return account_page(request, session, name, notices=notice_from(request))


def _exists(request: Request, reference: str) -> bool:
    if "\x00" in reference:
        return False
    with engine_of(request).connect() as connection:
        found = connection.execute(
            select(accounts.c.id).where(accounts.c.reference == reference)
        ).first()
    return found is not None


@router.post("/inbox/accounts/{reference:path}/handled")
def mark_handled(
    request: Request,
    session: Agent,
    reference: str,
    message_id: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    def act(connection: Connection, account: actions.AccountRef, now: datetime) -> str:
        ident = whole_number(message_id, "message")
        actions.handle_reply(connection, account, ident, session.user.id, now)
        return "The reply is handled."

    return _change(request, session, reference, act)


@router.post("/inbox/accounts/{reference:path}/flag-cleared")
def flag_cleared(
    request: Request,
    session: Agent,
    reference: str,
    flag: Annotated[str, Form(max_length=40)] = "",
    flagged_at: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Clears the flag the page showed (``flag``, raised at ``flagged_at``), and no other."""

    def act(connection: Connection, account: actions.AccountRef, now: datetime) -> str:
        if not flag:  # a page from before the field: which flag it showed is unknown
            raise actions.ActionRefused(
                "Not cleared: this page does not say which flag it showed: open the account "
                "again and clear the flag from there"
            )
        try:
            shown_at = datetime.fromisoformat(flagged_at) if flagged_at else None
        except ValueError:
            raise actions.ActionRefused(
                "the flag form is out of date: open the account again"
            ) from None
        actions.clear_flag(connection, account, flag, shown_at, now)
        return "The flag is cleared; what caused it stays on record."

    return _change(request, session, reference, act)


@router.post("/inbox/accounts/{reference:path}/pause")
def pause(
    request: Request,
    session: Agent,
    reference: str,
    days: Annotated[str, Form(max_length=20)] = "",
    # No length limit on what the agent typed: the action refuses a long reason with the
    # page, the words kept, where FastAPI would answer a bare 422.
    reason: Annotated[str, Form()] = "",
    shown_until: Annotated[str | None, Form()] = None,
    shown_reason: Annotated[str, Form()] = "",
) -> Response:
    def act(connection: Connection, account: actions.AccountRef, now: datetime) -> str:
        length = whole_number(days, "number of days")
        shown = shown_pause(shown_until, shown_reason, "Not paused")
        # The reason names the agent: the account has no other column for who paused it.
        by = session.user.username
        until = actions.pause(connection, account, length, reason, now, by=by, shown=shown)
        done = f"Outreach is paused until {until:%Y-%m-%d %H:%M} UTC."
        # A shorter pause than an open reply's: housekeeping hands over to the reply pause.
        settings: Settings = request.app.state.settings
        reply_pause = timedelta(days=settings.reply_pause_days)
        held = reply_holds(connection, [account.id], until, reply_pause).get(account.id)
        if held is not None:
            done += (
                f" A reply waits in the inbox: unless it is handled first, outreach then stays "
                f"paused until {held:%Y-%m-%d %H:%M} UTC."
            )
        return done

    typed = {"pause_days": days, "pause_reason": reason}
    return _change(request, session, reference, act, typed)


@router.post("/inbox/accounts/{reference:path}/resume")
def resume(
    request: Request,
    session: Agent,
    reference: str,
    shown_until: Annotated[str | None, Form()] = None,
    shown_reason: Annotated[str, Form()] = "",
) -> Response:
    """Ends the pause the page showed, and no other (a double click's second resume, or
    another agent's newer pause, is refused)."""

    def act(connection: Connection, account: actions.AccountRef, now: datetime) -> str:
        shown = shown_pause(shown_until, shown_reason, "Not resumed")
        settings: Settings = request.app.state.settings
        reply_pause = timedelta(days=settings.reply_pause_days)
        held = actions.resume(connection, account, now, reply_pause=reply_pause, shown=shown)
        if held is not None:
            return (
                f"This pause is over, but a reply waits in the inbox: outreach stays paused "
                f"until {held:%Y-%m-%d %H:%M} UTC, or until the replies are handled."
            )
        return "Outreach resumes: the account is due now, as compliance allows."

    return _change(request, session, reference, act)


# What the pause forms say when the page showed outreach running.
RUNNING = "running"


def shown_pause(until: str | None, reason: str, refused: str) -> actions.ShownPause:
    """The pause a form says its page showed (``shown_until``: when it ends, or
    ``RUNNING``; ``shown_reason``: why)."""
    if not until:  # a page from before the fields: which pause it showed is unknown
        raise actions.ActionRefused(
            f"{refused}: this page does not say which pause it showed: open the account "
            "again and act from there"
        )
    if until == RUNNING:
        return actions.ShownPause(None)
    try:
        return actions.ShownPause(datetime.fromisoformat(until), reason)
    except ValueError:
        raise actions.ActionRefused(
            "the pause form is out of date: open the account again"
        ) from None


@router.post("/inbox/accounts/{reference:path}/promise")
def promise(
    request: Request,
    session: Agent,
    reference: str,
    amount: Annotated[str, Form(max_length=40)] = "",
    due_on: Annotated[str, Form(max_length=20)] = "",
    form_key: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    def act(connection: Connection, account: actions.AccountRef, now: datetime) -> str:
        minor = actions.parse_amount(amount, account.currency)
        try:
            day = date.fromisoformat(due_on.strip())
        except ValueError:
            raise actions.ActionRefused(f"{due_on.strip()!r} is not a date (YYYY-MM-DD)") from None
        made = actions.promise(
            connection, account, minor, day, session.user.username, now, form_key=form_key
        )
        if made is None:
            return "That promise was already recorded."
        shown = format_money(minor, account.currency, account.locale)
        return f"Promise to pay {shown} by {day.isoformat()} recorded."

    return _change(request, session, reference, act)


@router.post("/inbox/accounts/{reference:path}/dispute")
def dispute(
    request: Request,
    session: Agent,
    reference: str,
    note: Annotated[str, Form()] = "",  # no bound: ``record_dispute`` refuses a long one
    form_key: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    def act(connection: Connection, account: actions.AccountRef, now: datetime) -> str:
        made = actions.record_dispute(
            connection, account, note, session.user.username, now, form_key=_key(form_key)
        )
        if not made:
            return "That dispute was already recorded."
        return "The dispute is recorded: collection contact stops until it is resolved."

    return _change(request, session, reference, act, {"dispute_note": note})


@router.post("/inbox/accounts/{reference:path}/workplace")
def workplace(
    request: Request,
    session: Agent,
    reference: str,
    kind: Annotated[str, Form(max_length=40)] = "",
    note: Annotated[str, Form()] = "",  # no bound: ``record_workplace`` refuses a long one
    form_key: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    def act(connection: Connection, account: actions.AccountRef, now: datetime) -> str:
        done = actions.record_workplace(connection, account, kind, note, session.user.username,
                                        now, form_key=_key(form_key))  # fmt: skip
        if done is None:
            return "What the debtor said about contact at work was already recorded."
        return f"Recorded: {done}."

    return _change(
        request, session, reference, act, {"workplace_kind": kind, "workplace_note": note}
    )


def _key(form_key: str) -> str | None:
    """A compliance form's key; None for a form without one (a page from before the forms
    carried one, a post made by hand), which records as it did, each time it is sent: a
    dispute or a word about contact at work is not turned away for a missing key."""
    return form_key or None


def _change(
    request: Request, session: Session, reference: str, act: Any,
    typed: dict[str, str] | None = None,
) -> Response:  # fmt: skip
    """Run ``act`` in one transaction; a refusal shows the page again and writes nothing,
    with what the agent ``typed`` back in its form. ``reference`` is the route's, as
    routing decoded it."""
    reference = from_segment(reference)
    now: datetime = request.app.state.clock.now()
    try:
        with engine_of(request).begin() as connection:
            account = actions.account_by_reference(connection, reference)
            done = act(connection, account, now)
    except NotFoundError as exc:
        return account_page(request, session, reference, [("error", str(exc))], status=404)
    except actions.ChangedMeanwhile as exc:
        return account_page(request, session, reference, [("error", str(exc))], 409, typed=typed)
    except actions.ActionRefused as exc:
        return account_page(request, session, reference, [("error", str(exc))], 400, typed=typed)
    where = f"/inbox/accounts/{path_segment(reference)}?{notice_query(request, done)}"
    return RedirectResponse(where, status_code=303)


def _inbox_page(
    request: Request,
    session: Session,
    filters: dict[str, str],
    before: int | None,
    notices: list[tuple[str, str]],
    status: int = 200,
) -> HTMLResponse:
    intent, sender = filters.get("intent", ""), filters.get("sender", "")
    unknown = {"unknown": True, "known": False}.get(sender)
    with engine_of(request).connect() as connection:
        items = open_replies(
            connection, limit=PAGE_SIZE + 1, before_id=before, intent=intent or None,
            unknown_sender=unknown,
        )  # fmt: skip
        flagged = flagged_accounts(connection, limit=PAGE_SIZE + 1)
    more = len(items) > PAGE_SIZE
    items = items[:PAGE_SIZE]
    shown = {"intent": intent, "sender": sender}
    following = None
    if more:
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in shown.items() if v)
        following = f"/inbox?before={items[-1].id}" + (f"&{query}" if query else "")
    values = {
        "title": "Inbox", "items": items, "filters": shown, "intents": _INTENTS,
        "following": following, "flagged": flagged[:PAGE_SIZE],
        "more_flagged": len(flagged) > PAGE_SIZE,
    }  # fmt: skip
    return ui.render(request, "inbox.html", session, values, notices=notices, status=status)


def account_page(
    request: Request,
    session: Session,
    reference: str,
    notices: list[tuple[str, str]],
    status: int = 200,
    kept: dict[str, str] | None = None,
    typed: dict[str, str] | None = None,
) -> HTMLResponse:
    """The account's page; ``kept``: an answer the agent wrote that was refused, shown
    again in its form (``message_id``, ``text``); ``typed``: what the agent wrote in
    another form that was refused (``dispute_note``, ``pause_reason``...), shown again."""
    now: datetime = request.app.state.clock.now()
    with engine_of(request).connect() as connection:
        row = (
            None  # no reference holds a NUL (PostgreSQL cannot compare one)
            if "\x00" in reference
            else connection.execute(
                select(accounts).where(accounts.c.reference == reference)
            ).first()
        )
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
                # When it left, as the caps count it; when it was planned, if it never did.
                case((is_placed, placed_time), else_=attempts.c.created_at).label("at"),
                attempts.c.to_address,
                # Why one failed, was cancelled or waits: ours, then the provider's words.
                attempts.c.error_message,
            )
            .where(attempts.c.account_id == row.id)
            .order_by(attempts.c.created_at.desc(), attempts.c.id.desc())
            .limit(20)
        ).all()
        seen = seen_answers(connection, row.id)
    paused = row.paused_until is not None and row.paused_until > now
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
        "first_promise_day": actions.earliest_promise_day(actions.account_ref(row), now),
        "answerable": ANSWERED_CHANNELS,
        "answer_key": secrets.token_urlsafe(18),
        "promise_key": secrets.token_urlsafe(18),
        "dispute_key": secrets.token_urlsafe(18),
        "workplace_key": secrets.token_urlsafe(18),
        "answer_seen": seen,
        "kept": kept or {},
        "typed": typed or {},
        "running": RUNNING,
        "reason_chars": actions.reason_chars(session.user.username),
        "note_chars": actions.NOTE_CHARS,
    }
    return ui.render(request, "inbox_account.html", session, values, notices=notices,
                     status=status)  # fmt: skip


def whole_number(text: str, what: str) -> int:
    """A form's whole number, refused with the page's reason (not a bare 422) if it is not
    one."""
    cleaned = text.strip()
    # Nine digits at most: a larger number names no row and fits no column.
    if not cleaned.isascii() or not cleaned.isdigit() or len(cleaned) > 9:
        shown = cleaned if len(cleaned) <= 20 else cleaned[:20] + "..."
        raise actions.ActionRefused(f"{shown!r} is not a {what}: give a whole number")
    return int(cleaned)


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine
