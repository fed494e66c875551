"""The people who use the web UI: accounts with a role, and their passwords.

Passwords are stored as Argon2id hashes (argon2-cffi's defaults, OWASP's first choice)
and are never logged or shown. A disabled user cannot sign in, and a signed-in one is
signed out on their next request (``outreach.web.auth`` reads the user on every request).

Every change to a user (disabled, enabled, a new role, a new password) and every sign-out
raises their session epoch, which is part of the stamp each session cookie carries: the
sessions open before the change end, and no later change brings them back.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Update, select, update
from sqlalchemy.exc import IntegrityError

from outreach.errors import NotFoundError, OutreachError
from outreach.models import Role, User
from outreach.store import hold_writes, table_of

users = table_of(User)
MIN_PASSWORD_LENGTH = 12
DISPLAY_NAME_LENGTH = 200
_hasher = PasswordHasher()
# Verified when the username is unknown, so that a wrong name takes as long as a wrong
# password and the answer time does not say which names exist.
_ABSENT_HASH = _hasher.hash("no such user: this hash only spends the same time")


class UserError(OutreachError):
    """A user cannot be created or changed as asked (a taken name, a short password)."""


@dataclass(frozen=True)
class UserRecord:
    id: int
    username: str
    display_name: str
    role: Role
    active: bool
    # Changes with the password and the session epoch: a session made under an older
    # stamp has ended.
    session_stamp: str

    def may(self, *roles: Role) -> bool:
        """Whether this user holds one of ``roles`` (none: any role); an admin may do
        everything."""
        return self.active and (not roles or self.role is Role.ADMIN or self.role in roles)


def create_user(
    connection: Connection,
    username: str,
    password: str,
    role: Role,
    now: datetime,
    display_name: str = "",
) -> UserRecord:
    name = _username(username)
    shown = _display_name(display_name)
    check_password(password)
    try:
        connection.execute(
            users.insert().values(
                username=name,
                display_name=shown or name,
                password_hash=_hasher.hash(password),
                role=role.value,
                active=True,
                created_at=now,
            )
        )
    except IntegrityError:
        raise UserError(f"a user named {name!r} already exists") from None
    return user_by_name(connection, name)


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise UserError("a password may have at most 1,024 characters")


def authenticate(
    connection: Connection, username: str, password: str, now: datetime
) -> UserRecord | None:
    """The user, if the name and password match an active user; records the sign-in.

    The sign-in stands only if the user's row is still the one whose password was checked:
    a new password, a new role, a disabling or a sign-out committed during the check (an
    admin's reset, say) makes it fail, so that the old password never opens a session
    after the reset, nor writes its own hash over the new one."""
    name = username.strip().lower()
    # No name holds a NUL (PostgreSQL cannot even compare one): unknown, and checked as
    # long as any other unknown name.
    row = None if "\x00" in name else _row_named(connection, name)
    if row is None:
        _verify(_ABSENT_HASH, password)
        return None
    if not _verify(row.password_hash, password) or not row.active:
        return None
    password_hash = row.password_hash
    new_hash = None
    if _hasher.check_needs_rehash(password_hash):  # the parameters were raised since
        new_hash = _hasher.hash(password)
    if _sign_in(connection, row, row.password_hash, new_hash, now):
        return _record(row, password_hash=new_hash or password_hash)
    # Changed since it was read. Another sign-in of the same user may have rehashed the
    # same password meanwhile (same session epoch, still active, another hash): checked
    # against the new hash, the sign-in stands. A reset, a disabling or a sign-out
    # (a new epoch) leaves it refused: the password checked may be the old one.
    again = connection.execute(select(users).where(users.c.id == row.id)).first()
    if (
        again is None
        or again.session_epoch != row.session_epoch
        or not again.active
        or again.password_hash == row.password_hash
        or not _verify(again.password_hash, password)
        or not _sign_in(connection, again, again.password_hash, None, now)
    ):
        return None
    return _record(again)


def _sign_in(
    connection: Connection, row: Any, read_hash: str, new_hash: str | None, now: datetime
) -> bool:
    """Record the sign-in (and the new hash, if any) if the row is as it was read."""
    values: dict[str, object] = {"last_login_at": now}
    if new_hash is not None:
        values["password_hash"] = new_hash
    signed = connection.execute(
        update(users)
        .where(
            users.c.id == row.id,
            users.c.password_hash == read_hash,
            users.c.session_epoch == row.session_epoch,
            users.c.active.is_(True),
        )
        .values(**values)
    ).rowcount
    return bool(signed == 1)


def user_by_id(connection: Connection, user_id: int) -> UserRecord | None:
    row = connection.execute(select(users).where(users.c.id == user_id)).first()
    return _record(row) if row is not None else None


def user_by_name(connection: Connection, username: str) -> UserRecord:
    name = username.strip().lower()
    row = None if "\x00" in name else _row_named(connection, name)
    if row is None:
        raise NotFoundError(f"no user named {username!r}")
    return _record(row)


def _row_named(connection: Connection, name: str) -> Any:
    return connection.execute(select(users).where(users.c.username == name)).first()


def list_users(connection: Connection) -> list[tuple[UserRecord, datetime | None]]:
    """Every user with their last sign-in, by name."""
    rows = connection.execute(select(users).order_by(users.c.username))
    return [(_record(row), row.last_login_at) for row in rows]


def set_password(connection: Connection, username: str, password: str) -> None:
    """A new password; the user's open sessions end."""
    check_password(password)
    user = user_by_name(connection, username)
    connection.execute(_ending_sessions(user.id).values(password_hash=_hasher.hash(password)))


def set_active(connection: Connection, username: str, active: bool) -> None:
    """Disable or enable the user; either way their open sessions end (enabling a user
    does not bring back the sessions that disabling ended)."""
    hold_writes(connection)  # before the read: see ``_locked``
    user, admins = _locked(connection, username)
    if not active:
        _keep_an_admin(user, admins, "disabled")
    connection.execute(_ending_sessions(user.id).values(active=active))


def set_role(connection: Connection, username: str, role: Role) -> None:
    """Another role; the user's open sessions end."""
    hold_writes(connection)
    user, admins = _locked(connection, username)
    if role is not Role.ADMIN:
        _keep_an_admin(user, admins, f"made {role.value}")
    connection.execute(_ending_sessions(user.id).values(role=role.value))


def _locked(connection: Connection, username: str) -> tuple[UserRecord, list[int]]:
    """The user as they are now, and the ids of the active admins, all their rows locked
    until the change commits.

    The user's row and the active admins' are locked in one statement, in id order (no
    deadlock), then read again by the same statement, and the change is decided on the
    second read: on PostgreSQL the first may have waited for another change, and only a
    statement started after that change committed sees a user it made admin (the first
    re-reads only the rows it had matched). So a user made admin, or an admin taken away,
    by another change committed meanwhile is read as it is now, and two admins taking
    each other away at once cannot each count the other and leave none (the second
    waits, then reads what committed). On SQLite the locking clause is
    left out: the callers took the one writer's lock before they read (``hold_writes``),
    so the second waits for the first to commit, then reads."""
    user_id = user_by_name(connection, username).id  # a user's id and name never change
    locking = (
        select(users)
        .where(
            ((users.c.role == Role.ADMIN.value) & users.c.active.is_(True))
            | (users.c.id == user_id)
        )
        .order_by(users.c.id)
        .with_for_update()
    )
    connection.execute(locking).all()
    # Once more: on PostgreSQL (READ COMMITTED) a statement that waited for a lock
    # re-checks only the rows it had matched, so a user made admin by the change it waited
    # for is not among them. The second statement takes a new snapshot and sees it; the
    # rows it matched before are locked already.
    rows = connection.execute(locking).all()
    [user] = [_record(row) for row in rows if row.id == user_id]
    admins = [row.id for row in rows if row.role == Role.ADMIN.value and row.active]
    return user, admins


def _keep_an_admin(user: UserRecord, admins: list[int], change: str) -> None:
    """Refuse to take away the last active admin: nobody could manage users from the web
    UI any more."""
    if not (user.active and user.role is Role.ADMIN):
        return
    if not [admin for admin in admins if admin != user.id]:
        raise UserError(
            f"{user.username} is the only active admin and cannot be {change}: make another "
            "user admin first"
        )


def end_sessions(connection: Connection, user_id: int) -> None:
    """End every open session of the user, in every browser (signing out)."""
    connection.execute(_ending_sessions(user_id))


def _ending_sessions(user_id: int) -> Update:
    return (
        update(users).where(users.c.id == user_id).values(session_epoch=users.c.session_epoch + 1)
    )


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _display_name(display_name: str) -> str:
    """The name the pages greet the user by, as typed (without spaces around it)."""
    shown = display_name.strip()
    if any(unicodedata.category(c) == "Cc" for c in shown):
        # A NUL, a line break, an escape: nothing a name shows (and PostgreSQL cannot store
        # a NUL).
        raise UserError("a display name holds no control characters (a NUL, a line break)")
    return shown[:DISPLAY_NAME_LENGTH]


def _username(username: str) -> str:
    name = username.strip().lower()
    if not name or len(name) > 100 or not all(c.isalnum() or c in "._-@" for c in name):
        raise UserError(
            f"{username!r}: a username has 1 to 100 letters, digits and . _ - @ (no spaces)"
        )
    if not name.strip("."):
        # "." and ".." are not names a URL's path can hold as they are (the Users page's
        # links write them specially); none of the dots-only kind is taken any more.
        raise UserError(f"{username!r}: a username is not only dots")
    return name


def _record(row: Any, password_hash: str | None = None) -> UserRecord:
    """The user of ``row`` (with ``password_hash`` in place of the row's, if given)."""
    return UserRecord(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        role=Role(row.role),
        active=bool(row.active),
        session_stamp=session_stamp(password_hash or row.password_hash, row.session_epoch),
    )


def session_stamp(password_hash: str, session_epoch: int) -> str:
    """What a session cookie carries to stay valid: it changes with the password hash and
    with the session epoch."""
    return hashlib.sha256(f"{session_epoch}:{password_hash}".encode()).hexdigest()[:16]


def same_stamp(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
