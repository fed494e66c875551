"""``POST /webhooks/{provider}/{kind}``: verify, parse, apply; then answer the provider.

- A body over its webhook's cap (the provider's ``max_body``: 64 KiB for most) gets 413
  before it is verified; a body over 64 KiB is verified and parsed in a worker thread.
- A request that fails verification gets 403; it is logged with the reason, never with
  its payload (debtors' numbers and words).
- A verified body that cannot be read, or that is another kind of webhook than its URL
  says, gets 400 with the reason. Unknown extra fields are accepted (providers add them).
- The events are handed to the batched writer; the answer leaves only once they are
  committed. If they cannot be stored the answer is 503, and the provider retries.
- Twilio's inbound messages are answered with TwiML (the text back to a keyword, if any),
  its TwiML fetch for a call with what the call says (to a person, the identity check; to
  a machine, the voicemail and the opt-out offer), the identity check's answer with the
  message (the debtor pressed 1) or words that name no debt, the call's Gather with the
  opt-out's confirmation or a hang-up; everything else with a summary.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import httpx
from fastapi import APIRouter, BackgroundTasks, Request, Response
from fastapi.responses import JSONResponse
from twilio.twiml.messaging_response import MessagingResponse

from outreach.clock import Clock
from outreach.config import Settings
from outreach.errors import ChannelError, ConfigError, WebhookRejected
from outreach.events import EventResult
from outreach.providers.base import (
    IDENTITY_CHECK,
    WEBHOOK_BODY,
    Channel,
    EventType,
    Provider,
    ProviderEvent,
    WebhookRequest,
)
from outreach.providers.outbox import Outbox
from outreach.providers.registry import PROVIDERS, build_provider
from outreach.providers.twilio_sms import TwilioSms
from outreach.providers.twilio_voice import TwilioVoice, call_language
from outreach.web.pages import UNSUBSCRIBED, page
from outreach.web.writer import EventWriter, WriterBusy

log = logging.getLogger("outreach.web.webhooks")
router = APIRouter()

# A body up to this size is verified and parsed on the event loop; a larger one (an
# Inbound Parse message, an Event Webhook batch) in a worker thread: megabytes would hold
# up the loop, which the daemon's dispatcher shares, for as long as they take.
INLINE_BODY = WEBHOOK_BODY
_T = TypeVar("_T")
HANG_UP = '<?xml version="1.0" encoding="UTF-8"?><Response><Hangup /></Response>'


@dataclass(frozen=True)
class Webhooks:
    """The providers that take webhooks here, by name, and the writer of their events."""

    providers: Mapping[str, Provider]
    writer: EventWriter

    def kind_of(self, provider_name: str, kind: str) -> tuple[Provider, str] | None:
        """The provider and the webhook kind a URL is for, if it is one of ours."""
        provider = self.providers.get(provider_name)
        if provider is None:
            return None
        path = f"/webhooks/{provider_name}/{kind}"
        found = next((k for k, p in provider.webhook_paths.items() if p == path), None)
        return (provider, found) if found is not None else None


def webhook_providers(
    settings: Settings, client: httpx.AsyncClient, clock: Clock
) -> dict[str, Provider]:
    """Every provider these settings configure (the outbox always): each one's webhooks
    are served whichever channel it carries today, so late events still land."""
    built: dict[str, Provider] = {}
    for name, provider_class in PROVIDERS.items():
        channel: Channel = "sms" if name == Outbox.name else provider_class.channel
        try:
            built[name] = build_provider(name, channel, settings, client, clock)
        except ConfigError:
            continue  # not configured: its webhooks answer 404
    return built


@router.post("/webhooks/{provider_name}/{kind}")
async def receive_webhook(
    provider_name: str, kind: str, request: Request, background: BackgroundTasks
) -> Response:
    hooks: Webhooks = request.app.state.webhooks
    found = hooks.kind_of(provider_name, kind)
    if found is None:
        return _problem(404, f"no webhook at /webhooks/{provider_name}/{kind}")
    provider, path_kind = found
    limit = provider.max_body(path_kind)
    body = await _read_body(request, limit)
    if body is None:
        log.warning("webhook %s/%s refused: a body over %s bytes", provider_name, kind, limit)
        return _problem(
            413, f"the body is larger than {limit:,} bytes, the most this webhook takes"
        )
    incoming = WebhookRequest("POST", str(request.url), dict(request.headers), body)
    try:
        await _off_the_loop(provider.verify, incoming)
    except WebhookRejected as exc:
        log.warning("webhook %s/%s refused: %s", provider_name, kind, exc)
        return _problem(403, str(exc))
    try:
        events = await _off_the_loop(provider.parse, incoming)
    except WebhookRejected as exc:
        return _malformed(provider_name, kind, str(exc))
    except (ValueError, KeyError, TypeError, LookupError) as exc:
        # Not the exception's text: it may quote the body.
        return _malformed(provider_name, kind, f"the body cannot be read ({type(exc).__name__})")
    wrong = _wrong_kind(provider, path_kind, events)
    if wrong is not None:
        return _malformed(provider_name, kind, wrong)
    try:
        results = await hooks.writer.submit(events, provider.request_token(incoming))
    except WriterBusy:
        return _problem(503, "too many events wait to be stored; retry", retry_after=5)
    except Exception:  # the writer logged why; the provider retries
        return _problem(503, "the events could not be stored; retry", retry_after=5)
    if path_kind == "unsubscribe" and "text/html" in request.headers.get("accept", ""):
        return page("Unsubscribed", UNSUBSCRIBED)  # a person pressed our page's button
    return _answer(provider, path_kind, incoming, events, results, background)


def _answer(
    provider: Provider,
    path_kind: str,
    incoming: WebhookRequest,
    events: Sequence[ProviderEvent],
    results: Sequence[EventResult],
    background: BackgroundTasks,
) -> Response:
    if isinstance(provider, TwilioSms) and path_kind == "inbound":
        reply = MessagingResponse()
        for result in results:
            if result.answer:
                reply.message(result.answer)
        return Response(str(reply), media_type="text/xml")
    # The call's language rides on our own callback URLs (signed with them).
    language = call_language(incoming.query().get("lang"))
    if isinstance(provider, TwilioVoice) and path_kind == "twiml":
        script = results[0].call if results else None
        if script is None:  # a call we did not place, or no longer know: say nothing
            return Response(HANG_UP, media_type="text/xml")
        twiml = provider.answer_event(
            events[0], script.human, script.voicemail, language, name=script.name
        )
        return Response(twiml, media_type="text/xml")
    if isinstance(provider, TwilioVoice) and path_kind == IDENTITY_CHECK:
        # Answered from the event, not from whether it was new: a retry plays the same.
        if not events:
            return Response(HANG_UP, media_type="text/xml")
        script = results[0].call if results else None
        twiml = provider.answer_identity(
            events[0],
            script.human if script is not None else None,
            script.voicemail if script is not None else None,
            language,
        )
        return Response(twiml, media_type="text/xml")
    if isinstance(provider, TwilioVoice) and path_kind == "gather":
        # Answered from the event, not from whether it was new: a retried opt-out is
        # confirmed again, and recorded once.
        if not events:
            return Response(HANG_UP, media_type="text/xml")
        return Response(provider.answer_gather(events[0], language), media_type="text/xml")
    if isinstance(provider, TwilioVoice) and path_kind == "amd":
        _switch_to_a_person(provider, events, results, background, language)
    stored = sum(result.stored for result in results)
    return JSONResponse({"stored": stored, "duplicates": len(results) - stored})


def _switch_to_a_person(
    provider: TwilioVoice,
    events: Sequence[ProviderEvent],
    results: Sequence[EventResult],
    background: BackgroundTasks,
    language: str,
) -> None:
    """Inline mode plays the voicemail first; a person, once detected, is asked who they
    are (the identity check), and hears the message once they say they are the debtor."""
    if provider.config.twiml_mode != "inline":
        return
    for event, result in zip(events, results, strict=True):
        human = event.event_type == EventType.ANSWERED_HUMAN
        if human and result.stored and result.call is not None and event.provider_message_id:
            twiml = provider.answer_twiml(
                "human",
                result.call.human,
                result.call.voicemail,
                name=result.call.name,
                attempt_id=event.attempt_id,
                language=language,
            )
            background.add_task(_update_call, provider, event.provider_message_id, twiml)


async def _update_call(provider: TwilioVoice, call_sid: str, twiml: str) -> None:
    try:
        await provider.update_call(call_sid, twiml)
    except ChannelError as exc:
        log.warning("could not switch a call to the identity check: %s", exc)


def _wrong_kind(provider: Provider, path_kind: str, events: Sequence[ProviderEvent]) -> str | None:
    kinds = {event.kind for event in events}
    if "unrecognized" in kinds:
        return f"the body is not a {provider.name} {path_kind} request"
    wrong = sorted((kinds & set(provider.webhook_paths)) - {path_kind})
    if wrong:
        return f"a {wrong[0]} request was posted to the {path_kind} URL"
    return None


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The raw body, or None when it is larger than ``limit`` (known from its declared
    length before a byte is read, or once the bytes sent pass it)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _off_the_loop(check: Callable[[WebhookRequest], _T], incoming: WebhookRequest) -> _T:
    """``check(incoming)``, in a worker thread when the body is larger than INLINE_BODY."""
    if len(incoming.body) <= INLINE_BODY:
        return check(incoming)
    return await asyncio.to_thread(check, incoming)


def _malformed(provider_name: str, kind: str, reason: str) -> Response:
    log.warning("webhook %s/%s malformed: %s", provider_name, kind, reason)
    return _problem(400, reason)


def _problem(status: int, detail: str, *, retry_after: int | None = None) -> Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)
