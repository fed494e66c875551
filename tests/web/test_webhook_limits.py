"""How large a body each webhook takes, and where a large one is verified and parsed: a
forged body is refused for its size before Twilio's signature check reads every field of
it, and a large genuine one is read in a worker thread, off the loop the daemon shares."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from outreach.clock import FixedClock
from outreach.events import provider_events
from outreach.providers.base import WebhookRequest
from outreach.providers.sendgrid_email import unsubscribe_token
from tests.eventdata import EMAIL, add_account, add_attempt, count, rows
from tests.providers.conftest import SECRET_KEY, EcdsaKeys
from tests.web.conftest import Server, sendgrid_events, sendgrid_inbound, sms_inbound

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
KIB = 1024
MIB = 1024 * KIB


@pytest.mark.parametrize(
    "path",
    [
        "/webhooks/twilio_sms/status",
        "/webhooks/twilio_sms/inbound",
        "/webhooks/twilio_voice/status",
        "/webhooks/outbox/events",
        "/webhooks/sendgrid_email/unsubscribe?attempt_id=1&token=x",
    ],
)
def test_a_body_over_a_small_webhooks_cap_is_refused_unread(
    engine: Engine, server: Server, path: str
) -> None:
    """A forged 32 MB form held the event loop for seconds while Twilio's signature check
    parsed it: these webhooks take no body near that size, and refuse it unverified."""
    body = b"a=1&" * (MIB // 4 + 1)  # just over 1 MiB: larger than any of these takes
    headers = FORM | {"X-Twilio-Signature": "forged", "X-Outreach-Signature": "forged"}
    response = server.http.post(server.base + path, content=body, headers=headers)
    assert response.status_code == 413
    assert "the most this webhook takes" in response.json()["detail"]
    assert count(engine, provider_events) == 0


def test_twilios_webhooks_take_64_kib(server: Server) -> None:
    body = b"a=1&" * (16 * KIB + 1)  # 64 KiB and 4 bytes
    headers = FORM | {"X-Twilio-Signature": "forged"}
    response = server.http.post(
        server.base + "/webhooks/twilio_sms/status", content=body, headers=headers
    )
    assert response.status_code == 413
    assert response.json()["detail"] == (
        "the body is larger than 65,536 bytes, the most this webhook takes"
    )
    under = server.http.post(
        server.base + "/webhooks/twilio_sms/status", content=body[: 64 * KIB], headers=headers
    )
    assert under.status_code == 403  # read, then refused for its signature


def test_the_longest_text_a_debtor_can_send_is_taken(engine: Engine, server: Server) -> None:
    """Guards against over-correction: 1,600 emoji, each 12 bytes percent-encoded."""
    add_account(engine)
    response = server.send(sms_inbound("\U0001f600" * 1600))
    assert response.status_code == 200, response.text


def test_an_event_batch_over_5_mib_is_refused(server: Server, event_keys: EcdsaKeys) -> None:
    item = {"event": "open", "email": EMAIL, "sg_event_id": "e", "padding": "x" * 1000}
    request = sendgrid_events([item] * 5300, event_keys)
    assert len(request.body) > 5 * MIB
    response = server.send(request)
    assert response.status_code == 413


def _where_checked(server: Server, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record, for each SendGrid request verified, whether it was on the event loop."""
    provider = server.app.state.webhooks.providers["sendgrid_email"]
    verify = provider.verify
    seen: list[str] = []

    def recording(request: WebhookRequest) -> None:
        try:
            asyncio.get_running_loop()
            seen.append("loop")
        except RuntimeError:
            seen.append("thread")
        verify(request)

    monkeypatch.setattr(provider, "verify", recording)
    return seen


def test_a_large_inbound_email_is_verified_off_the_event_loop(
    engine: Engine, server: Server, inbound_keys: EcdsaKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An Inbound Parse message of megabytes (attachments) is taken, and checked in a
    worker thread: the dispatcher's loop goes on meanwhile. A small one stays on the loop."""
    seen = _where_checked(server, monkeypatch)
    fields = {"from": f"Pat Doe <{EMAIL}>", "to": "billing@reply.example.com",
              "subject": "Re: your balance", "text": "I paid yesterday."}  # fmt: skip
    small = server.send(sendgrid_inbound(fields, inbound_keys))
    large = server.send(sendgrid_inbound(fields | {"attachment1": "x" * (6 * MIB)}, inbound_keys))
    assert (small.status_code, large.status_code) == (200, 200)
    assert seen == ["loop", "thread"]


def _one_click(attempt_id: int) -> str:
    token = unsubscribe_token(SECRET_KEY, attempt_id)
    return f"/webhooks/sendgrid_email/unsubscribe?attempt_id={attempt_id}&token={token}"


def test_a_one_click_post_keeps_only_its_marker_and_a_burst_is_one_event(
    engine: Engine, server: Server
) -> None:
    mail = add_attempt(engine, add_account(engine), channel="email", to=EMAIL, message_id="X1")
    url = server.base + _one_click(mail)
    body = b"List-Unsubscribe=One-Click&" + b"x" * (32 * KIB)
    clock = server.app.state.clock
    assert isinstance(clock, FixedClock)
    for _ in range(3):  # three POSTs within one second: a client's retries
        assert server.http.post(url, content=body, headers=FORM).status_code == 200
        clock.advance(timedelta(milliseconds=300))
    (stored,) = rows(engine, provider_events)
    assert stored.payload["body"].startswith("List-Unsubscribe=One-Click")
    assert len(stored.payload["body"]) <= 256
