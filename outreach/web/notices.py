"""The notice a page shows after a change ("Published version 3."), carried by the
redirect's query string and sealed with the app's key: a link made elsewhere cannot put
words of its own on the app's pages (``/inbox?done=Your session expired: sign in at ...``).
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote

from fastapi import Request

LONGEST = 200


def notice_query(request: Request, text: str) -> str:
    """``done=...&seal=...`` for a redirect to a page that shows ``text`` once."""
    text = text[:LONGEST]
    return f"done={quote(text, safe='')}&seal={_seal(request, text)}"


def notice_from(request: Request) -> list[tuple[str, str]]:
    """The notice the request's query carries, if the app sealed it; else none."""
    text = request.query_params.get("done")
    seal = request.query_params.get("seal", "").encode()
    if not text:
        return []
    text = text[:LONGEST]
    # Sealed with a key in SECRET_KEY_PREVIOUS: a redirect made just before a restart.
    settings = request.app.state.settings
    keys = (settings.secret_key.get_secret_value(), *settings.previous_secret_keys())
    if not any(hmac.compare_digest(seal, _seal_with(key, text).encode()) for key in keys):
        return []
    return [("ok", text)]


def _seal(request: Request, text: str) -> str:
    return _seal_with(request.app.state.settings.secret_key.get_secret_value(), text)


def _seal_with(secret: str, text: str) -> str:
    # A key of its own: a seal can never pass for a session cookie or an unsubscribe token.
    key = hmac.new(secret.encode(), b"outreach web notice", hashlib.sha256).digest()
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:32]
