"""Signing in to the web UI: a signed session cookie, roles, and CSRF tokens.

- The session is a cookie signed with a key derived from ``SECRET_KEY`` (itsdangerous),
  ``HttpOnly``, ``SameSite=Lax``, and ``Secure`` when the request came over https. It holds
  the user's id, a stamp of their password hash and session epoch, and the session's CSRF
  token; it lasts ``SESSION_HOURS``. The user is read again on every request, so disabling
  a user, enabling them again, a new role or password end their sessions at once (each
  raises the epoch: see ``outreach.users``). Signing out raises it too, ending every
  session of the user, in every browser, copies of the cookie included.
- Every form that changes something carries the session's CSRF token (``csrf_token``, or
  the ``X-CSRF-Token`` header for the editor's scripts); the sign-in form carries one of
  its own, from a short-lived cookie (double submit).
- Five failed sign-ins for one name within 15 minutes hold that name back for 15 minutes,
  whatever the password, counted in the database for every web process
  (``outreach.web.throttle``). An attempt takes its place in the count before its password
  is checked, so that attempts made at once cannot pass together: a name never has more
  than five attempts failed or being checked within the window.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import Engine

from outreach.config import Settings
from outreach.models import Role
from outreach.users import UserRecord, same_stamp, user_by_id
from outreach.web.sign_in_slots import SignInSlots
from outreach.web.throttle import SignInThrottle

SESSION_COOKIE = "outreach_session"
SIGN_IN_COOKIE = "outreach_sign_in"
SESSION_HOURS = 12
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


class SignInRequired(Exception):
    """No valid session: pages send the browser to the sign-in form, scripts get 401."""


class Forbidden(Exception):
    """Signed in, without a role for this page."""

    def __init__(self, roles: tuple[Role, ...]) -> None:
        self.roles = roles
        super().__init__(", ".join(role.value for role in roles))


class CsrfRejected(Exception):
    """A change without the session's token: not from one of our forms."""


@dataclass(frozen=True)
class Session:
    user: UserRecord
    csrf: str


class Sessions:
    """Makes and reads session cookies for one app."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        # A key of its own: a session cookie can never pass for an unsubscribe token.
        key = hmac.new(
            settings.secret_key.get_secret_value().encode(), b"outreach web session", "sha256"
        ).hexdigest()
        self._signer = URLSafeTimedSerializer(key, salt="session")
        self._sign_in_signer = URLSafeTimedSerializer(key, salt="sign-in")
        self.engine = engine
        self.throttle = SignInThrottle(engine)
        self.slots = SignInSlots()

    def start(self, request: Request, response: Response, user: UserRecord) -> None:
        token = self._signer.dumps(
            {"u": user.id, "s": user.session_stamp, "c": secrets.token_urlsafe(32)}
        )
        self._set(request, response, SESSION_COOKIE, token, SESSION_HOURS * 3600)
        response.delete_cookie(SIGN_IN_COOKIE, path="/login")

    def end(self, response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/")

    def read(self, request: Request) -> Session | None:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        try:
            data = self._signer.loads(token, max_age=SESSION_HOURS * 3600)
            user_id, stamp, csrf = int(data["u"]), str(data["s"]), str(data["c"])
        except (BadSignature, KeyError, TypeError, ValueError):
            return None
        with self.engine.connect() as connection:
            user = user_by_id(connection, user_id)
        if user is None or not user.active or not same_stamp(user.session_stamp, stamp):
            return None
        return Session(user, csrf)

    def sign_in_token(self, request: Request) -> tuple[str, bool]:
        """The sign-in form's CSRF token: the cookie's, or a new one (``True``: to be set
        with ``remember_sign_in_token``)."""
        current = self._sign_in_value(request)
        if current is not None:
            return current, False
        return secrets.token_urlsafe(32), True

    def remember_sign_in_token(self, request: Request, response: Response, token: str) -> None:
        value = self._sign_in_signer.dumps(token)
        self._set(request, response, SIGN_IN_COOKIE, value, 3600, path="/login")

    def sign_in_token_matches(self, request: Request, submitted: str) -> bool:
        current = self._sign_in_value(request)
        return current is not None and same_token(current, submitted)

    def _sign_in_value(self, request: Request) -> str | None:
        cookie = request.cookies.get(SIGN_IN_COOKIE)
        if not cookie:
            return None
        try:
            return str(self._sign_in_signer.loads(cookie, max_age=3600))
        except BadSignature:
            return None

    def _set(
        self, request: Request, response: Response, name: str, value: str, age: int,
        path: str = "/",
    ) -> None:  # fmt: skip
        # Secure over https, including behind a proxy that says so (X-Forwarded-Proto,
        # which uvicorn takes from the proxies it trusts).
        response.set_cookie(
            name, value, max_age=age, path=path, httponly=True, samesite="lax",
            secure=request.url.scheme == "https",
        )  # fmt: skip


def same_token(submitted: str, expected: str) -> bool:
    """Constant-time comparison of any text a client sends (``compare_digest`` refuses
    non-ASCII strings with an error, which would answer 500 instead of 403)."""
    return hmac.compare_digest(submitted.encode(), expected.encode())


def sessions_of(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.sessions
    return sessions


def current_session(request: Request) -> Session:
    session = sessions_of(request).read(request)
    if session is None:
        raise SignInRequired
    request.state.session = session  # for the page layout
    return session


def signed_in(*roles: Role) -> Callable[..., Awaitable[Session]]:
    """A dependency: the session of a user holding one of ``roles`` (any role if none;
    an admin passes every check). A request that changes something (not GET or HEAD)
    must also carry the session's CSRF token."""

    async def check(
        request: Request, session: Annotated[Session, Depends(current_session)]
    ) -> Session:
        if roles and not session.user.may(*roles):
            raise Forbidden(roles)
        if request.method not in ("GET", "HEAD"):
            submitted = request.headers.get(CSRF_HEADER)
            if submitted is None:
                form = await request.form()
                field = form.get(CSRF_FIELD)
                submitted = field if isinstance(field, str) else None
            if not submitted or not same_token(submitted, session.csrf):
                raise CsrfRejected
        return session

    return check


# The sessions a route may take: ``session: AnyUser`` and so on.
AnyUser = Annotated[Session, Depends(signed_in())]
Agent = Annotated[Session, Depends(signed_in(Role.AGENT))]
Marketer = Annotated[Session, Depends(signed_in(Role.MARKETER))]
Admin = Annotated[Session, Depends(signed_in(Role.ADMIN))]


def sign_in_address(request: Request) -> str:
    """The sign-in form, returning to this page afterwards."""
    # The path as the browser sent it: decoded, a reference's "%2F" would become "/".
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else request.url.path
    target = path + (f"?{request.url.query}" if request.url.query else "")
    return f"/login?next={quote(target, safe='')}"


# The longest page address returned to after signing in (the sign-in form carries it in a
# field); from a longer one, signing in opens the start page.
NEXT_CHARS = 2000


def safe_next(target: str | None) -> str:
    """Where to go after signing in: only a path on this site (no open redirect), of at
    most ``NEXT_CHARS`` characters (the start page otherwise)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target if len(target) <= NEXT_CHARS else "/"


def role_names(roles: tuple[Role, ...]) -> str:
    return " or ".join(role.value for role in roles) or "any"


def session_of(request: Request) -> Session | None:
    """The session a page was served under, if any (set by ``current_session``)."""
    session: Any = getattr(request.state, "session", None)
    return session if isinstance(session, Session) else None
