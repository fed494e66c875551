"""``outreach users``: who may sign in to the web UI, and with which role."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from outreach.cli.common import out, with_database
from outreach.errors import OutreachError
from outreach.models import Role
from outreach.users import (
    check_password,
    create_user,
    list_users,
    set_active,
    set_password,
    set_role,
)

users_app = typer.Typer(help="Users of the web UI and their roles.", no_args_is_help=True)
ROLES = ", ".join(role.value for role in Role)
_STDIN_HELP = "Read the password from the first line of standard input (for scripts)."


@users_app.command("add")
def add(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(help="Letters, digits and . _ - @.")],
    role: Annotated[str, typer.Option(help=f"One of {ROLES}.")],
    name: Annotated[str, typer.Option("--name", help="The name the UI shows.")] = "",
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help=_STDIN_HELP)] = False,
) -> None:
    """Create a user; the password is asked for (twice) unless read from standard input."""
    context = with_database(ctx)
    chosen = _role(role)
    password = _password(password_stdin)
    with context.engine.begin() as connection:
        user = create_user(connection, username, password, chosen, context.clock.now(), name)
    out.print(f"User {user.username} ({user.role.value}) can now sign in.")


@users_app.command("list")
def list_(ctx: typer.Context) -> None:
    """Every user, their role, and when they last signed in."""
    context = with_database(ctx)
    with context.engine.connect() as connection:
        rows = list_users(connection)
    table = Table("username", "name", "role", "active", "last sign-in")
    for user, last in rows:
        when = last.isoformat(timespec="minutes") if last else "never"
        table.add_row(user.username, user.display_name, user.role.value,
                      "yes" if user.active else "no", when)  # fmt: skip
    out.print(table)


@users_app.command("password")
def password(
    ctx: typer.Context,
    username: str,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help=_STDIN_HELP)] = False,
) -> None:
    """Set a new password; the user's open sessions end."""
    context = with_database(ctx)
    new = _password(password_stdin)
    with context.engine.begin() as connection:
        set_password(connection, username, new)
    out.print(f"The password of {username} is changed; their sessions have ended.")


@users_app.command("role")
def role(ctx: typer.Context, username: str, role: Annotated[str, typer.Argument()]) -> None:
    """Give a user another role; their open sessions end."""
    context = with_database(ctx)
    chosen = _role(role)
    with context.engine.begin() as connection:
        set_role(connection, username, chosen)
    out.print(f"{username} is now {chosen.value}; their sessions have ended.")


@users_app.command("disable")
def disable(ctx: typer.Context, username: str) -> None:
    """Stop a user from signing in; their open sessions end at once."""
    _set_active(ctx, username, False)
    out.print(f"{username} can no longer sign in.")


@users_app.command("enable")
def enable(ctx: typer.Context, username: str) -> None:
    """Let a disabled user sign in again (the sessions that disabling ended stay ended)."""
    _set_active(ctx, username, True)
    out.print(f"{username} can sign in again.")


def _set_active(ctx: typer.Context, username: str, active: bool) -> None:
    context = with_database(ctx)
    with context.engine.begin() as connection:
        set_active(connection, username, active)


def _role(value: str) -> Role:
    try:
        return Role(value.strip().lower())
    except ValueError:
        raise OutreachError(f"--role {value!r}: use one of {ROLES}") from None


def _password(from_stdin: bool) -> str:
    if from_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
    else:
        value = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    check_password(value)
    return value
