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

from outreach.config import Settings
from outreach.errors import OutreachError, WebhookRejected
from outreach.models import SuppressionReason
from outreach.providers.base import EventType, ProviderEvent, WebhookRequest, dedupe_key
from outreach.rendering.context import load_company
from outreach.unsubscribe import BadUnsubscribeToken, UnsubscribeRequest, read_token
from outreach.web.pages import UNSUBSCRIBED, mask, page
from outreach.web.webhooks import Webhooks
from outreach.web.writer import EventWriter

router = APIRouter()


@router.get("/u/{token}")
def unsubscribe_link_page(token: str, request: Request) -> Response:
    try:
        wanted = _read(request.app.state.settings, token)
    except BadUnsubscribeToken as exc:
        return not_valid(request.app.state.settings, str(exc))
    return page(
        "Unsubscribe",
        f"Stop all email to {mask(wanted.address)}?",
        button="Unsubscribe",
    )


@router.post("/u/{token}")
async def unsubscribe_link(token: str, request: Request) -> Response:
    settings = request.app.state.settings
    try:
        wanted = _read(settings, token)
    except BadUnsubscribeToken as exc:
        return not_valid(settings, str(exc))
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
        return not_valid(request.app.state.settings, "This unsubscribe link is not valid.")
    return page("Unsubscribe", "Stop all email to this address?", button="Unsubscribe")


def _read(settings: Settings, token: str) -> UnsubscribeRequest:
    return read_token(
        settings.secret_key.get_secret_value(), token, settings.previous_secret_keys()
    )


def not_valid(settings: Settings, reason: str) -> Response:
    """The refusal of a link, with another way to opt out: whoever followed it wants no
    more email, and the law wants the opt-out to work (CAN-SPAM, Reg F 1006.6(e))."""
    message = reason[:1].upper() + reason[1:].rstrip(".") + "."
    try:
        company = load_company(settings.templates_dir)
    except (OutreachError, OSError, ValueError):  # unreadable: the refusal alone, not a 500
        return page("Unsubscribe", message, status=403)
    other_way = f" To stop our emails, write to {company.email} or call {company.phone}."
    return page("Unsubscribe", message + other_way, status=403)
