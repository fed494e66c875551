"""One suite over every webhook kind, on a real server: a valid request for a message we do
not know, with a field nobody documented, is stored (once, however often it is replayed);
a forged one is refused with 403 and stores nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest
from sqlalchemy import Engine

from outreach.events import provider_events
from outreach.providers.base import WebhookRequest
from outreach.providers.sendgrid_email import unsubscribe_token
from tests.eventdata import count, rows
from tests.providers.conftest import PUBLIC, SECRET_KEY, EcdsaKeys
from tests.web.conftest import (
    Server,
    call_webhook,
    outbox_events,
    sendgrid_events,
    sendgrid_inbound,
    sms_inbound,
    sms_status,
)

EXTRA = "added-later"


@dataclass(frozen=True)
class Keys:
    events: EcdsaKeys
    inbound: EcdsaKeys


def _tampered(request: WebhookRequest) -> WebhookRequest:
    return replace(request, body=request.body.replace(EXTRA.encode(), b"changed-after"))


def _one_click(keys: Keys) -> WebhookRequest:
    token = unsubscribe_token(SECRET_KEY, 999)
    return WebhookRequest(
        "POST",
        f"{PUBLIC}/webhooks/sendgrid_email/unsubscribe?attempt_id=999&token={token}",
        {"Content-Type": "application/x-www-form-urlencoded"},
        b"List-Unsubscribe=One-Click",
    )


def _other_token(request: WebhookRequest) -> WebhookRequest:
    return replace(request, url=request.url.replace("token=", "token=x"))


@dataclass(frozen=True)
class Kind:
    name: str
    valid: Callable[[Keys], WebhookRequest]
    forge: Callable[[WebhookRequest], WebhookRequest] = _tampered
    keeps_extra: bool = True


KINDS = [
    Kind("twilio_sms/status", lambda k: sms_status("delivered", sid="SMnew", Extra=EXTRA)),
    Kind("twilio_sms/inbound", lambda k: sms_inbound(f"Who is this? {EXTRA}", sid="SMin9")),
    Kind(
        "twilio_voice/status",
        lambda k: call_webhook(
            "status",
            None,
            sid="CAnew",
            CallStatus="completed",
            CallDuration="5",
            CallbackSource="call-progress-events",
            Extra=EXTRA,
        ),
    ),
    Kind(
        "twilio_voice/twiml",
        lambda k: call_webhook(
            "twiml", None, sid="CAnew", CallStatus="in-progress", AnsweredBy="human", Extra=EXTRA
        ),
    ),
    Kind(
        "twilio_voice/gather",
        lambda k: call_webhook(
            "gather", None, sid="CAnew", CallStatus="in-progress", Digits="9", Extra=EXTRA
        ),
    ),
    Kind(
        "twilio_voice/amd",
        lambda k: call_webhook("amd", None, sid="CAnew", AnsweredBy="machine_start", Extra=EXTRA),
    ),
    Kind(
        "sendgrid_email/events",
        lambda k: sendgrid_events(
            [
                {
                    "email": "new@example.com",
                    "event": "delivered",
                    "sg_event_id": "ev-new",
                    "sg_message_id": "sg-new.filter0001",
                    "timestamp": 1793710800,
                    "extra": EXTRA,
                }
            ],
            k.events,
        ),
    ),
    Kind(
        "sendgrid_email/inbound",
        lambda k: sendgrid_inbound(
            {
                "from": "new@example.com",
                "to": "billing@reply.example.com",
                "subject": "Hi",
                "text": "Who is this?",
                "extra": EXTRA,
            },
            k.inbound,
        ),
    ),
    Kind("sendgrid_email/unsubscribe", _one_click, _other_token, keeps_extra=False),
    Kind(
        "outbox/events",
        lambda k: outbox_events(
            [{"message_id": "OBnew", "event": "delivered", "channel": "sms", "extra": EXTRA}]
        ),
    ),
]


@pytest.mark.parametrize("kind", KINDS, ids=[kind.name for kind in KINDS])
def test_every_webhook_kind_is_verified_stored_once_and_kept_when_unknown(
    engine: Engine, server: Server, kind: Kind, event_keys: EcdsaKeys, inbound_keys: EcdsaKeys
) -> None:
    request = kind.valid(Keys(event_keys, inbound_keys))
    assert request.url.startswith(f"{PUBLIC}/webhooks/{kind.name}")

    forged = server.send(kind.forge(request))
    assert forged.status_code == 403
    assert count(engine, provider_events) == 0

    first = server.send(request)
    replayed = server.send(request)
    assert (first.status_code, replayed.status_code) == (200, 200)
    (stored,) = rows(engine, provider_events)
    assert stored.attempt_id is None  # a message we never sent is kept all the same
    if kind.keeps_extra:
        assert EXTRA in str(stored.payload)
