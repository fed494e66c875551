"""The web UI's frame: pages from ``ui_templates``, signing in and out, the start page.

Every page is served with a strict Content-Security-Policy (scripts and styles only from
``/static``), not cached, and never framed. The sections (the inbox, the template
editor) are routers of their own, added by ``install_ui``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine, Select, func, select
from starlette.concurrency import run_in_threadpool

from outreach.compliance_store import attempts, inbox_messages
from outreach.config import Settings
from outreach.inbox import LISTED
from outreach.models import Role
from outreach.review import Settlement, count_held
from outreach.store import accounts
from outreach.users import UserRecord, authenticate, end_sessions
from outreach.web import (
    account_search,
    admin_pages,
    answer_pages,
    editor_pages,
    inbox_pages,
    review_pages,
)
from outreach.web.auth import (
    AnyUser,
    CsrfRejected,
    Forbidden,
    Session,
    Sessions,
    SignInRequired,
    role_names,
    safe_next,
    sessions_of,
    sign_in_address,
)
from outreach.web.html_previews import HtmlPreviews
from outreach.web.paths import path_segment

_HERE = Path(__file__).parent
pages = Jinja2Templates(directory=_HERE / "ui_templates")
# A reference or a username in a link's path: ``urlencode`` would leave "/" and dot
# segments as they are, and the link would open another page.
pages.env.filters["segment"] = path_segment
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
        "object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Section:
    label: str
    href: str
    roles: tuple[Role, ...]


# The sections in the top bar, each shown to the roles that may use it.
SECTIONS = (
    Section("Inbox", "/inbox", (Role.AGENT,)),
    Section("Templates", "/templates", (Role.MARKETER,)),
    Section("Held", "/review", (Role.ADMIN,)),
    Section("Users", "/admin/users", (Role.ADMIN,)),
)


def render(
    request: Request,
    template: str,
    session: Session | None,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    notices: Sequence[tuple[str, str]] = (),
) -> HTMLResponse:
    """A page in the layout, with the sections ``session``'s user may open."""
    path = request.url.path
    nav = [
        {"label": s.label, "href": s.href, "current": path.startswith(s.href)}
        for s in SECTIONS
        if session is not None and session.user.may(*s.roles)
    ]
    values = {
        "session": session,
        "nav": nav,
        "notices": [{"kind": kind, "text": text} for kind, text in notices],
        "title": "outreach",
        **(context or {}),
    }
    response = pages.TemplateResponse(request, template, values, status_code=status)
    response.headers.update(PAGE_HEADERS)
    return response


def message_page(
    request: Request, session: Session | None, title: str, message: str, status: int
) -> HTMLResponse:
    return render(
        request, "message.html", session, {"title": title, "message": message}, status=status
    )


router = APIRouter()


@router.get("/login", response_class=HTMLResponse)
def sign_in_form(request: Request, next: str | None = None, ended: str | None = None) -> Response:
    """``ended``: a form was sent after the session ended, and nothing was saved."""
    sessions = sessions_of(request)
    if sessions.read(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _fresh_sign_in_page(request, safe_next(next), ended=ended is not None)


def _fresh_sign_in_page(
    request: Request, target: str, *, ended: bool = False,
    sent: Sequence[tuple[str, str]] = (), status: int = 200,
) -> HTMLResponse:  # fmt: skip
    sessions = sessions_of(request)
    token, new = sessions.sign_in_token(request)
    values = {"ended": ended, "sent": sent}
    page = _sign_in_page(request, token, target, "", None, status=status, more=values)
    if new:
        sessions.remember_sign_in_token(request, page, token)
    return page


@router.post("/login", response_class=HTMLResponse)
def sign_in(
    request: Request,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    # Not bounded here: an address too long to return to signs in all the same, to the
    # start page (``safe_next``); the body's cap bounds what is read.
    next: Annotated[str, Form()] = "/",
) -> Response:
    sessions = sessions_of(request)
    target = safe_next(next)
    if not sessions.sign_in_token_matches(request, csrf_token):
        # An expired form, or a request made elsewhere: start again with a fresh form.
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    user, problem = _check_password(request, sessions, username, password)
    if user is None:
        status = 503 if problem == BUSY else 401
        return _sign_in_page(request, csrf_token, target, username, problem, status=status)
    response = RedirectResponse(target, status_code=303)
    sessions.start(request, response, user)
    return response


BUSY = "The server is busy checking other sign-ins. Try again in a minute."
NAME_HELD = "Too many failed attempts for this name. Wait 15 minutes and try again."
ADDRESS_HELD = "Too many failed sign-ins from this address. Wait 15 minutes and try again."


def _check_password(
    request: Request, sessions: Sessions, username: str, password: str
) -> tuple[UserRecord | None, str | None]:
    """The user the name and password sign in, or why none."""
    # The attempt counts as a failure from before its password is checked until it is
    # known right, so that attempts made at once cannot pass the throttle together.
    # The client's address is the proxy's unless uvicorn trusts the proxy's headers
    # (FORWARDED_ALLOW_IPS): see docs/web-ui.md.
    # An unknown client (a Unix socket without proxy headers) counts as one address.
    address = request.client.host if request.client is not None else ""
    throttle = sessions.throttle
    reservation = throttle.reserve(username, address)
    if reservation is None:
        return None, NAME_HELD if throttle.held(username) else ADDRESS_HELD
    with sessions.slots.slot() as free:  # a few checks at a time: each holds 64 MiB
        if not free:
            throttle.released(username, reservation)
            return None, BUSY
        try:
            with sessions.engine.begin() as connection:
                now = request.app.state.clock.now()
                user = authenticate(connection, username, password, now)
        except BaseException:
            throttle.failed(username, reservation, address)  # the password may have been checked
            raise
    if user is None:
        throttle.failed(username, reservation, address)
        return None, "The username or password is not right, or the user is disabled."
    throttle.succeeded(username, reservation, address)
    return user, None


def _sign_in_page(
    request: Request, token: str, target: str, username: str, problem: str | None,
    status: int = 200, more: Mapping[str, Any] | None = None,
) -> HTMLResponse:  # fmt: skip
    values: dict[str, Any] = {"title": "Sign in", "token": token, "next": target}
    values |= {"username": username, "problem": problem, **(more or {})}
    return render(request, "login.html", None, values, status=status)


# The fields of the UI's forms whose typed words are worth keeping, shown back after the
# session ended: only these, so that a field added later (a password, a hidden key) is not
# shown until it is listed here.
KEPT_FIELDS = frozenset({
    "answer", "note", "reason", "source", "days", "amount", "due_on", "provider_id",
    "username", "display_name",
})  # fmt: skip
# Never shown back, listed or not: a password on the page would stay in its history.
_SECRET_WORDS = ("password", "token", "secret")


def kept_field(name: str) -> bool:
    """Whether a form's field ``name`` is shown back to copy after the session ended."""
    return name in KEPT_FIELDS and not _secret_name(name)


def _secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


async def session_ended(request: Request) -> Response:
    """A form sent after its session ended (12 hours after signing in, or signed out
    elsewhere): nothing is saved, and signing in returns to the form's page. Sent from one
    of the app's own pages, the sign-in form comes in its place with what was typed in the
    fields worth keeping (``kept_field``: never a password), to copy (escaped, and never
    sent again by itself); from anywhere else, no words of the request are shown (a page
    elsewhere could put its own words on ours), only that the change was not saved."""
    target = form_page(request)
    if not same_origin(request):
        where = f"/login?next={quote(target, safe='')}&ended=1"
        return RedirectResponse(where, status_code=303)
    sent = await _kept_words(request)
    return _fresh_sign_in_page(request, target, ended=True, sent=sent, status=401)


async def _kept_words(request: Request) -> list[tuple[str, str]]:
    """What was typed in the form's fields worth keeping (``kept_field``), in order."""
    form = await request.form()
    return [
        (name, value)
        for name, value in form.multi_items()
        if isinstance(value, str) and value.strip() and kept_field(name)
    ]


# The fields that say what a form acts on (the message answered, the kind of a request, the
# template's path, the form's key against recording it twice): sent again, hidden, with the
# words of an out-of-date form, which would be refused or mean something else without them.
# Never one named like a secret (``_SECRET_WORDS``).
CARRIED_FIELDS = frozenset({
    "message_id", "form_key", "seen", "handled", "kind", "shown_until", "shown_reason",
    "role", "path", "based_on", "action", "sample", "tries",
})  # fmt: skip
# The carried fields that are the user's choice (not an identifier), with the words that
# name them: shown as text beside the form, so what will be sent again is seen.
SHOWN_CARRIED = {
    "kind": "Kind", "role": "Role", "handled": "Mark the reply handled",
    "action": "Action", "sample": "Preview for",
}  # fmt: skip
# How a message held for review went (the review page's choice).
SETTLE_CHOICES = (
    (Settlement.SENT.value, "sent: the provider has it"),
    (Settlement.RESEND.value, "send again: the provider does not have it"),
    (Settlement.CANCEL.value, "cancel: it did not go and is not to go"),
)
# Choices from a list that come back as that list (its label, its options), to change
# before sending again.
CHOSEN_FIELDS: Mapping[str, tuple[str, Sequence[tuple[str, str]]]] = {
    "how": ("It was", SETTLE_CHOICES),
}


def carried_field(name: str) -> bool:
    return name in CARRIED_FIELDS and not _secret_name(name)


def _choices(form: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The form's ``CHOSEN_FIELDS``, each as a list with what was chosen (if any) selected."""
    return [
        {"name": name, "label": label, "options": options, "value": form.get(name, "")}
        for name, (label, options) in CHOSEN_FIELDS.items()
        if name in form
    ]


def _passwords(names: Sequence[str]) -> list[str]:
    """The form's password fields, never shown back: they come back empty, to type again."""
    return list(dict.fromkeys(name for name in names if "password" in name.lower()))


async def out_of_date(request: Request, session: Session) -> Response | None:
    """A form from one of the app's own pages whose token is an earlier session's (the user
    signed in again, in another tab, since the page was shown): refused, nothing saved, and
    the words typed (``kept_field``) come back in the same form with this session's token,
    to check and send again with one click. ``None`` when there is nothing to keep, or the
    request did not come from one of our pages (its words are never shown)."""
    if not same_origin(request):
        return None
    words = await _kept_words(request)
    if not words:
        return None
    form = await request.form()
    carried = [
        (name, value)
        for name, value in form.multi_items()
        if isinstance(value, str) and carried_field(name)
    ]
    values = {
        "title": "Form out of date",
        "action": _raw_path(request) + (f"?{request.url.query}" if request.url.query else ""),
        "sent": words,
        "carried": carried,
        "shown": [(SHOWN_CARRIED[name], value) for name, value in carried if name in SHOWN_CARRIED],
        "chosen": _choices(form),
        "passwords": _passwords(list(form.keys())),
        "back": form_page(request),
    }
    return render(request, "out_of_date.html", session, values, status=403)


def same_origin(request: Request) -> bool:
    """Whether the browser says the request came from one of this site's pages."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    return request.headers.get("origin") == _origin(request)


def _origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def form_page(request: Request) -> str:
    """The page a form sent to ``request`` came from: the Referer, when it is one of the
    UI's pages on this site; otherwise the page that holds that form."""
    referer = urlsplit(request.headers.get("referer", ""))
    if f"{referer.scheme}://{referer.netloc}" == _origin(request) and _ui_page(referer.path):
        target = referer.path + (f"?{referer.query}" if referer.query else "")
        return safe_next(target)
    path = _raw_path(request)
    if path.startswith("/inbox/accounts/"):  # an account's action: the account's page
        return safe_next(path.rsplit("/", 1)[0])
    return next((s.href for s in SECTIONS if _under(path, s.href)), "/")


def _raw_path(request: Request) -> str:
    """The path as the browser sent it: decoded, a reference's "%2F" would become "/"."""
    raw = request.scope.get("raw_path")
    return raw.decode("latin-1") if isinstance(raw, bytes) else request.url.path


def _ui_page(path: str) -> bool:
    return path == "/" or any(_under(path, section.href) for section in SECTIONS)


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


@router.post("/logout")
def sign_out(request: Request, session: AnyUser) -> Response:
    """Ends every session of the user, in every browser (copies of the cookie included),
    and deletes this browser's cookie."""
    sessions = sessions_of(request)
    with sessions.engine.begin() as connection:
        end_sessions(connection, session.user.id)
    response = RedirectResponse("/login", status_code=303)
    sessions.end(response)
    return response


def messages_planned(start: datetime, end: datetime) -> Select[tuple[str, int]]:
    """How many messages planned from ``start`` until ``end`` are in each status (through
    ``ix_attempt_created_status``: the day's messages, not every one there is)."""
    return (
        select(attempts.c.status, func.count())
        .where(attempts.c.created_at >= start, attempts.c.created_at < end)
        .group_by(attempts.c.status)
        .order_by(attempts.c.status)
    )


@router.get("/", response_class=HTMLResponse)
def start_page(request: Request, session: AnyUser) -> Response:
    engine: Engine = request.app.state.engine
    now: datetime = request.app.state.clock.now()
    since = datetime.combine(now.date(), time(0), tzinfo=now.tzinfo)
    with engine.connect() as connection:
        # As the inbox lists them: a message on several accounts counts once.
        open_replies = connection.execute(
            select(func.count()).select_from(inbox_messages).where(*LISTED)
        ).scalar_one()
        flagged = connection.execute(
            select(func.count()).where(accounts.c.flag.is_not(None))
        ).scalar_one()
        paused = connection.execute(
            select(func.count()).where(accounts.c.paused_until > now)
        ).scalar_one()
        held = count_held(connection)
        by_status = connection.execute(messages_planned(since, since + timedelta(1))).all()
    inbox = "/inbox" if session.user.may(Role.AGENT) else "/"
    cards = [
        {"label": "replies waiting", "count": open_replies, "href": inbox},
        {"label": "accounts flagged", "count": flagged, "href": f"{inbox}#flagged"},
        {"label": "accounts paused", "count": paused, "href": inbox},
    ]
    values = {
        "title": "Start",
        "cards": cards,
        "held": held,
        "settles": session.user.may(Role.ADMIN),
        "attempts": [tuple(row) for row in by_status],
    }
    return render(request, "home.html", session, values)


def install_ui(app: FastAPI, settings: Settings, engine: Engine) -> None:
    """Add the UI's routes, its static files and its error pages to ``app``."""
    app.state.sessions = Sessions(settings, engine)
    app.state.html_previews = HtmlPreviews(engine)
    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")
    app.include_router(router)
    app.include_router(inbox_pages.router)
    app.include_router(answer_pages.router)
    app.include_router(account_search.router)
    app.include_router(editor_pages.router)
    app.include_router(admin_pages.router)
    app.include_router(review_pages.router)

    @app.exception_handler(SignInRequired)
    async def _sign_in_first(request: Request, _: SignInRequired) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": "sign in first"}, status_code=401)
        if request.method in ("GET", "HEAD"):
            return RedirectResponse(sign_in_address(request), status_code=303)
        if request.url.path == "/logout":  # signed out already: nothing was lost
            return RedirectResponse("/login", status_code=303)
        return await session_ended(request)

    @app.exception_handler(Forbidden)
    def _forbidden(request: Request, error: Forbidden) -> Response:
        message = f"This page is for users with the {role_names(error.roles)} role."
        if _wants_json(request):
            return JSONResponse({"detail": message}, status_code=403)
        session = sessions_of(request).read(request)
        return message_page(request, session, "Not for your role", message, 403)

    @app.exception_handler(CsrfRejected)
    async def _csrf(request: Request, _: CsrfRejected) -> Response:
        message = "This form was not sent from an open outreach page. Reload it and try again."
        if _wants_json(request):
            return JSONResponse({"detail": message}, status_code=403)
        # Read in a worker thread, as the handler's database look-up would block the loop.
        session = await run_in_threadpool(sessions_of(request).read, request)
        if session is not None and (again := await out_of_date(request, session)) is not None:
            return again
        return message_page(request, session, "Not sent from outreach", message, 403)


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "") or bool(
        request.headers.get("x-csrf-token")
    )
