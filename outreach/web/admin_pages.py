"""Users of the web UI, managed by an admin: who may sign in, with which role.

The same operations as ``outreach users`` (``outreach.users``): add a user, change a role,
disable or enable, set a new password. Each change to a user ends their open sessions. The
last active admin cannot be disabled or given another role, and an admin does not disable
themselves, so that someone can always manage users from here.

Passwords are typed twice, checked like the CLI's (at least 12 characters), never shown
again, never kept in a refused form and never logged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Connection

from outreach.errors import NotFoundError
from outreach.models import Role
from outreach.store import hold_writes
from outreach.users import (
    UserError,
    create_user,
    list_users,
    set_active,
    set_password,
    set_role,
    user_by_name,
)
from outreach.web import ui
from outreach.web.auth import Admin, Session
from outreach.web.inbox_pages import engine_of
from outreach.web.notices import notice_from, notice_query
from outreach.web.paths import from_segment

router = APIRouter()
ROLE_HELP = {
    Role.ADMIN: "everything, users and held messages included",
    Role.MARKETER: "message templates",
    Role.AGENT: "the inbox: replies, answers, promises, disputes, contact at work, pauses",
    Role.VIEWER: "signs in and sees the start page only",
}


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(request: Request, session: Admin) -> Response:
    return _page(request, session, notice_from(request))


@router.post("/admin/users")
def add_user(
    request: Request,
    session: Admin,
    username: Annotated[str, Form()] = "",
    display_name: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    password_again: Annotated[str, Form()] = "",
) -> Response:
    typed = {"username": username[:100], "display_name": display_name[:200], "role": role}

    def act(connection: Connection, now: datetime) -> str:
        chosen = _role(role)
        _same(password, password_again)
        user = create_user(connection, username, password, chosen, now, display_name)
        return f"{user.username} ({user.role.value}) can now sign in."

    return _change(request, session, act, typed)


@router.post("/admin/users/{username}/role")
def change_role(
    request: Request, session: Admin, username: str, role: Annotated[str, Form()] = ""
) -> Response:
    username = from_segment(username)  # "!.." for "..": see ``outreach.web.paths``

    def act(connection: Connection, now: datetime) -> str:
        chosen = _role(role)
        set_role(connection, username, chosen)
        return f"{username} is now {chosen.value}; their sessions have ended."

    return _change(request, session, act, signs_out=username)


@router.post("/admin/users/{username}/active")
def change_active(
    request: Request, session: Admin, username: str, active: Annotated[str, Form()] = ""
) -> Response:
    username = from_segment(username)

    def act(connection: Connection, now: datetime) -> str:
        if active not in ("yes", "no"):
            raise UserError("say whether the user may sign in (yes or no)")
        if active == "no" and user_by_name(connection, username).id == session.user.id:
            raise UserError("you cannot disable yourself: another admin can")
        set_active(connection, username, active == "yes")
        if active == "yes":
            return f"{username} can sign in again."
        return f"{username} can no longer sign in; their sessions have ended."

    return _change(request, session, act)


@router.post("/admin/users/{username}/password")
def change_password(
    request: Request,
    session: Admin,
    username: str,
    password: Annotated[str, Form()] = "",
    password_again: Annotated[str, Form()] = "",
) -> Response:
    username = from_segment(username)

    def act(connection: Connection, now: datetime) -> str:
        _same(password, password_again)
        set_password(connection, username, password)
        return f"The password of {username} is changed; their sessions have ended."

    return _change(request, session, act, signs_out=username)


def _change(
    request: Request,
    session: Session,
    act: Any,
    typed: dict[str, str] | None = None,
    *,
    signs_out: str | None = None,
) -> Response:
    """Run ``act`` in one transaction; back to the list with its notice, or the list again
    with the reason (nothing written). A change that ends the admin's own sessions signs
    them out: the sign-in page follows."""
    now: datetime = request.app.state.clock.now()
    try:
        with engine_of(request).begin() as connection:
            # SQLite: the writer's lock before the first read, so that a change made by
            # another admin meanwhile is waited for and read, not refused as "locked".
            hold_writes(connection)
            done = act(connection, now)
    except NotFoundError as exc:
        return _page(request, session, [("error", str(exc))], 404, typed)
    except UserError as exc:
        return _page(request, session, [("error", str(exc))], 400, typed)
    if signs_out is not None and signs_out.strip().lower() == session.user.username:
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse(f"/admin/users?{notice_query(request, done)}", status_code=303)


def _page(
    request: Request,
    session: Session,
    notices: list[tuple[str, str]],
    status: int = 200,
    typed: dict[str, str] | None = None,
) -> HTMLResponse:
    with engine_of(request).connect() as connection:
        people = list_users(connection)
    values = {
        "title": "Users",
        "people": people,
        "roles": [(role.value, ROLE_HELP[role]) for role in Role],
        "typed": typed or {"role": Role.AGENT.value},
    }
    return ui.render(request, "admin_users.html", session, values, notices=notices,
                     status=status)  # fmt: skip


def _role(value: str) -> Role:
    try:
        return Role(value.strip().lower())
    except ValueError:
        names = ", ".join(role.value for role in Role)
        raise UserError(f"{value[:20]!r} is not a role: choose one of {names}") from None


def _same(password: str, again: str) -> None:
    if password != again:
        raise UserError("the two passwords differ: type the same one twice")
