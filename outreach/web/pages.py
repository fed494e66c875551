"""The few pages a debtor may see: plain HTML, no scripts, nothing cached or referred."""

from __future__ import annotations

import html

from fastapi import Response
from fastapi.responses import HTMLResponse

UNSUBSCRIBED = "You are unsubscribed. We will send no more email to this address."
# The address holds a token: no cache may keep the page, no link may pass it on.
# Nor may another site frame it, to lead a click onto its button.
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}


def page(title: str, message: str, *, button: str | None = None, status: int = 200) -> Response:
    """A plain page; with ``button``, a form that POSTs back to the same address."""
    form = (
        '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
        f'<button type="submit">{html.escape(button)}</button></form>'
        if button
        else ""
    )
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title></head>"
        '<body style="font-family: sans-serif; max-width: 32rem; margin: 3rem auto">'
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>{form}</body></html>"
    )
    return HTMLResponse(body, status_code=status, headers=_HEADERS)


def mask(address: str) -> str:
    """``p***@example.com``: enough to recognize one's own address, little to a stranger."""
    local, at, domain = address.partition("@")
    return f"{local[:1]}***{at}{domain}" if at else "this address"
