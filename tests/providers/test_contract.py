"""One contract suite for every provider (DESIGN rule 5).

Each provider sends and returns an id; refuses a forged signature with WebhookRejected
(the web layer's 403); maps a status it does not know to UNKNOWN, keeping the payload; and
gives the same event delivered twice the same dedupe key, once per batch.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace

import httpx
import pytest
import respx

from outreach.clock import FixedClock
from outreach.config import Settings
from outreach.errors import WebhookRejected
from outreach.providers.base import EventType, OutboundMessage, Provider, WebhookRequest
from outreach.providers.outbox import Outbox
from outreach.providers.registry import PROVIDERS, build_provider
from tests.providers.conftest import (
    PUBLIC,
    EcdsaKeys,
    load_json,
    sendgrid_events_request,
    twilio_request,
)

pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class Case:
    name: str
    channel: str
    message: OutboundMessage
    mock: Callable[[respx.MockRouter], None]
    # A valid, signed webhook whose status is ``status``.
    webhook: Callable[[Provider, EcdsaKeys, str], WebhookRequest]
    known_status: str


def _twilio_sms_webhook(provider: Provider, keys: EcdsaKeys, status: str) -> WebhookRequest:
    return twilio_request(
        "sms_status_delivered.json", changes={"MessageStatus": status, "SmsStatus": status}
    )


def _twilio_voice_webhook(provider: Provider, keys: EcdsaKeys, status: str) -> WebhookRequest:
    return twilio_request("voice_status_no_answer.json", changes={"CallStatus": status})


def _sendgrid_webhook(provider: Provider, keys: EcdsaKeys, status: str) -> WebhookRequest:
    events = load_json("sendgrid/event_delivered.json")
    events[0]["event"] = status
    return sendgrid_events_request(json.dumps(events).encode(), keys)


def _outbox_webhook(provider: Provider, keys: EcdsaKeys, status: str) -> WebhookRequest:
    assert isinstance(provider, Outbox)
    body = json.dumps(
        [{"message_id": "OB1", "attempt_id": 42, "event": status, "channel": "sms"}]
    ).encode()
    request = provider.signed_request([], f"{PUBLIC}/webhooks/outbox/events")
    return _resign_outbox(provider, replace(request, body=body))


def _resign_outbox(provider: Outbox, request: WebhookRequest) -> WebhookRequest:
    from outreach.providers.outbox import SIGNATURE_HEADER, sign

    signature = sign(provider.settings.secret_key.get_secret_value(), request.body)
    return replace(request, headers={**request.headers, SIGNATURE_HEADER: signature})


def _twilio_created(kind: str) -> Callable[[respx.MockRouter], None]:
    def mock(router: respx.MockRouter) -> None:
        body = load_json(f"rest/twilio_{kind}_created.json")
        router.post(url__regex=r"https://twilio\.test/2010-04-01/Accounts/AC\w+/\w+\.json").respond(
            201, json=body
        )

    return mock


def _sendgrid_accepted(router: respx.MockRouter) -> None:
    router.post("https://sendgrid.test/v3/mail/send").respond(
        202, headers={"X-Message-Id": "W86EgYT6SQKk0lRflfLRsA"}
    )


def _no_http(router: respx.MockRouter) -> None:
    """The outbox makes no request at all (the router asserts every call was mocked)."""


SMS = OutboundMessage(7, "acct-1:step-1:sms", "sms", "+16175550199", "Your balance is due.")
CASES = [
    Case("outbox", "sms", SMS, _no_http, _outbox_webhook, "delivered"),
    Case("twilio_sms", "sms", SMS, _twilio_created("message"), _twilio_sms_webhook, "delivered"),
    Case(
        "twilio_voice",
        "voice",
        OutboundMessage(
            8,
            "acct-1:step-2:voice",
            "voice",
            "+16175550199",
            "Hello, this is Acme.",
            voicemail="Please call Acme at 617-555-0100.",
        ),
        _twilio_created("call"),
        _twilio_voice_webhook,
        "busy",
    ),
    Case(
        "sendgrid_email",
        "email",
        OutboundMessage(
            9,
            "acct-1:step-3:email",
            "email",
            "debtor@example.net",
            "Your balance is due.",
            subject="Your balance",
            html="<p>Your balance is due.</p>",
        ),
        _sendgrid_accepted,
        _sendgrid_webhook,
        "delivered",
    ),
]


@pytest.fixture(params=CASES, ids=[case.name for case in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def provider(
    case: Case, settings: Settings, client: httpx.AsyncClient, clock: FixedClock
) -> Provider:
    return build_provider(case.name, case.channel, settings, client, clock)  # type: ignore[arg-type]


def test_every_registered_provider_is_in_the_suite() -> None:
    assert {case.name for case in CASES} == set(PROVIDERS)


async def test_send_returns_an_id(case: Case, provider: Provider, router: respx.MockRouter) -> None:
    case.mock(router)
    result = await provider.send(case.message)
    assert result.provider == case.name
    assert result.provider_message_id
    assert result.status is EventType.QUEUED
    assert result.sender


def test_a_signed_webhook_is_accepted(
    case: Case, provider: Provider, event_keys: EcdsaKeys
) -> None:
    request = case.webhook(provider, event_keys, case.known_status)
    provider.verify(request)
    (event,) = provider.parse(request)
    assert event.event_type is not EventType.UNKNOWN
    assert event.provider == case.name
    assert event.occurred_at.utcoffset() is not None


@pytest.mark.parametrize("forgery", ["signature", "body", "missing"])
def test_a_forged_signature_is_rejected(
    case: Case, provider: Provider, event_keys: EcdsaKeys, forgery: str
) -> None:
    request = case.webhook(provider, event_keys, case.known_status)
    if forgery == "body":
        # The status a forger would like us to believe, in an otherwise genuine request.
        status = case.known_status.encode()
        forged = replace(request, body=request.body.replace(status, b"failed", 1))
    elif forgery == "missing":
        headers = {k: v for k, v in request.headers.items() if "signature" not in k.lower()}
        forged = replace(request, headers=headers)
    else:
        headers = {
            k: (
                "MEUCIQDforgedforgedforgedforgedforgedforgedforgedforgedAiA="
                if "signature" in k.lower()
                else v
            )
            for k, v in request.headers.items()
        }
        forged = replace(request, headers=headers)
    assert forged != request
    with pytest.raises(WebhookRejected) as rejected:
        provider.verify(forged)
    assert rejected.value.status_code == 403


def test_an_unknown_status_maps_to_unknown(
    case: Case, provider: Provider, event_keys: EcdsaKeys
) -> None:
    request = case.webhook(provider, event_keys, "teleported")
    provider.verify(request)
    (event,) = provider.parse(request)
    assert event.event_type is EventType.UNKNOWN
    assert event.raw_status is not None and event.raw_status.startswith("teleported")
    assert event.payload  # kept as it came


def test_the_same_event_twice_counts_once(
    case: Case, provider: Provider, event_keys: EcdsaKeys
) -> None:
    first = provider.parse(case.webhook(provider, event_keys, case.known_status))
    again = provider.parse(case.webhook(provider, event_keys, case.known_status))
    assert [e.dedupe_key for e in first] == [e.dedupe_key for e in again]
    other = provider.parse(case.webhook(provider, event_keys, "failed"))
    assert other[0].dedupe_key != first[0].dedupe_key
    assert all(len(e.dedupe_key) <= 128 for e in [*first, *other])
