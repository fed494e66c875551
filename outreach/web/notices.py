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
    seal = request.query_params.get("seal", "")
    if not text or not hmac.compare_digest(seal.encode(), _seal(request, text[:LONGEST]).encode()):
        return []
    return [("ok", text[:LONGEST])]


def _seal(request: Request, text: str) -> str:
    secret = request.app.state.settings.secret_key.get_secret_value().encode()
    # A key of its own: a seal can never pass for a session cookie or an unsubscribe token.
    key = hmac.new(secret, b"outreach web notice", hashlib.sha256).digest()
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:32]
