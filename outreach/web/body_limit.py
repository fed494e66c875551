"""A cap on the size of a request's body, for every path but the webhooks'.

FastAPI reads a route's whole form before its dependencies run, the sign-in and role
checks among them, and Starlette bounds a form only at 1,000 fields of 1 MiB each: an
anonymous ``POST /login`` could make the server hold a gigabyte. ``BodyLimit`` answers 413
before reading a body whose declared ``Content-Length`` is over the limit, and stops one
sent in chunks once it passes it, whatever the route would have done with it.

The webhooks read their bodies themselves, each with a cap of its own (its provider's
``max_body``: 64 KiB for most, 32 MiB for SendGrid's Inbound Parse, which posts messages
of up to 30 MB), and are left to it.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

KIB = 1024
MIB = 1024 * KIB
# The largest legitimate form outside the editor is an agent's answer (2,000 characters):
# a few tens of KiB even with every character percent-encoded. 256 KiB leaves room.
FORM_BYTES = 256 * KIB
# The editor posts a template's source, up to ``editor_pages.SOURCE_CHARS`` (100,000
# characters). The preview's script sends it as JSON, where an emoji is two "\uXXXX"
# escapes: 12 bytes a character, 1.2 MB at worst. A form sends at most 900 KB: the
# textarea's ``maxlength`` counts an emoji as two, so a character is at worst three UTF-8
# bytes, "%E2%82%AC" (a CRLF line end takes 6 bytes for one character); Starlette's own
# bound on a form's field, 1 MiB, holds it. With the other fields: 2 MiB.
EDITOR_BYTES = 2 * MIB
# Where a limit other than FORM_BYTES applies (None: no limit here), by path prefix.
LIMITS: Mapping[str, int | None] = {"/templates/": EDITOR_BYTES, "/webhooks/": None}


class BodyTooLarge(Exception):
    """What the app's ``receive`` raises once the body has passed its limit."""


class BodyLimit:
    """ASGI middleware: 413 for a body over the limit of its path (``limit_for``)."""

    def __init__(
        self, app: ASGIApp, *, default: int = FORM_BYTES, limits: Mapping[str, int | None] = LIMITS
    ) -> None:
        self.app = app
        self.default = default
        self.limits = limits

    def limit_for(self, path: str) -> int | None:
        for prefix, limit in self.limits.items():
            if path.startswith(prefix):
                return limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limit_for(_route_path(scope)) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await _refuse(scope, send, limit)  # before a byte of the body is read
            return
        received = 0
        over = False
        started = False

        async def counted() -> Message:
            nonlocal received, over
            if over:
                raise BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    raise BodyTooLarge
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            if over and not started:
                return  # the app's answer to a body it could not read: ours goes instead
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, sending)
        except Exception:
            if not over or started:
                raise
        if over and not started:
            await _refuse(scope, send, limit)


def _route_path(scope: Scope) -> str:
    """The path the routes see: without the ``root_path`` a proxy's prefix adds to it."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :] or "/"
    return path


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            text = value.strip()
            return int(text) if text.isdigit() else None  # the server refuses a wrong one
    return None


async def _refuse(scope: Scope, send: Send, limit: int) -> None:
    """A short plain answer (JSON for the editor's script), and the connection closed: the
    rest of the body is not read."""
    detail = f"The request is too large: this address takes at most {limit // KIB:,} KiB."
    accept = b""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"accept":
            accept = value
    if b"application/json" in accept:
        body = b'{"detail":"' + detail.encode() + b'"}'
        kind = b"application/json"
    else:
        body = detail.encode() + b"\n"
        kind = b"text/plain; charset=utf-8"
    headers = [
        (b"content-type", kind),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
