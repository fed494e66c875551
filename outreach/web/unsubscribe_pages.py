"""Unsubscribing from email without a login.

- ``/u/{token}``: the signed link in an email's body (``outreach.unsubscribe``). GET shows
  a page with one button; POST (that button, or a client's one-click POST) suppresses
  the address. A GET never unsubscribes: mail scanners open links on their own.
- ``GET /webhooks/sendgrid_email/unsubscribe``: the page for the List-Unsubscribe URL
  opened in a browser (RFC 8058 wants one); its POST is the webhook route's, which also
  answers a browser with a page.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from outreach.errors import WebhookRejected
from outreach.models import SuppressionReason
from outreach.providers.base import EventType, ProviderEvent, WebhookRequest, dedupe_key
from outreach.unsubscribe import BadUnsubscribeToken, read_token
from outreach.web.pages import UNSUBSCRIBED, mask, page
from outreach.web.webhooks import Webhooks
from outreach.web.writer import EventWriter

router = APIRouter()


@router.get("/u/{token}")
def unsubscribe_link_page(token: str, request: Request) -> Response:
    try:
        wanted = read_token(request.app.state.settings.secret_key.get_secret_value(), token)
    except BadUnsubscribeToken as exc:
        return page("Unsubscribe", str(exc), status=403)
    return page(
        "Unsubscribe",
        f"Stop all email to {mask(wanted.address)}?",
        button="Unsubscribe",
    )


@router.post("/u/{token}")
async def unsubscribe_link(token: str, request: Request) -> Response:
    settings = request.app.state.settings
    try:
        wanted = read_token(settings.secret_key.get_secret_value(), token)
    except BadUnsubscribeToken as exc:
        return page("Unsubscribe", str(exc), status=403)
    now = request.app.state.clock.now()
    event = ProviderEvent(
        provider="outreach",
        kind="unsubscribe_link",
        event_type=EventType.UNSUBSCRIBED,
        # Each click counts: after a resubscribe, the same link unsubscribes again.
        dedupe_key=dedupe_key("outreach", "unsubscribe-link", wanted.reference, now.isoformat()),
        occurred_at=now,
        payload={"address": wanted.address, "reference": wanted.reference},
        to_address=wanted.address,
        raw_status="link",
        suppression=SuppressionReason.UNSUBSCRIBE.value,
    )
    writer: EventWriter = request.app.state.writer
    try:
        await writer.submit([event])
    except Exception:
        return page("Unsubscribe", "Something went wrong; please try again.", status=503)
    return page("Unsubscribed", UNSUBSCRIBED)


@router.get("/webhooks/sendgrid_email/unsubscribe")
def one_click_page(request: Request) -> Response:
    hooks: Webhooks = request.app.state.webhooks
    found = hooks.kind_of("sendgrid_email", "unsubscribe")
    if found is None:
        return page("Unsubscribe", "This link is not in use.", status=404)
    provider, _ = found
    try:
        provider.verify(WebhookRequest("GET", str(request.url), dict(request.headers), b""))
    except WebhookRejected:
        return page("Unsubscribe", "This unsubscribe link is not valid.", status=403)
    return page("Unsubscribe", "Stop all email to this address?", button="Unsubscribe")
