"""Setting a session cookie again under the current ``SECRET_KEY``.

A cookie signed with a key in ``SECRET_KEY_PREVIOUS`` is still a session
(``Sessions.read``); the response to the request that used it carries the cookie signed
with the current key, so that the previous key can be removed later without signing out
anyone who has used the UI since. A response that sets or removes the session cookie
itself (signing in or out) keeps its own.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from outreach.web.auth import SESSION_COOKIE, Renewal, Session, Sessions


class SessionRenewal:
    """ASGI middleware: adds the renewed session cookie to a response's headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The state the route's request writes the session to (``current_session``): the
        # same dict, made here before the app copies the scope.
        state = scope.setdefault("state", {})

        async def renewing(message: Message) -> None:
            if message["type"] == "http.response.start":
                session = state.get("session")
                if isinstance(session, Session) and session.renewed is not None:
                    message["headers"] = _with_cookie(scope, message["headers"], session.renewed)
            await send(message)

        await self.app(scope, receive, renewing)


def _with_cookie(
    scope: Scope, headers: list[tuple[bytes, bytes]], renewal: Renewal
) -> list[tuple[bytes, bytes]]:
    prefix = f"{SESSION_COOKIE}=".encode()
    if any(k.lower() == b"set-cookie" and v.startswith(prefix) for k, v in headers):
        return headers
    request = Request(scope)
    sessions: Sessions = request.app.state.sessions
    # Made by the same code as every session cookie: the same flags, Secure over https.
    made = Response()
    sessions.renew(request, made, renewal)
    return [*headers, *(h for h in made.raw_headers if h[0] == b"set-cookie")]
