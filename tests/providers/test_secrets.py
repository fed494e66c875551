"""Credentials never reach a log line, an error message or an error's attributes."""

from __future__ import annotations

import logging

import httpx
import pytest
import respx

from outreach.clock import FixedClock
from outreach.config import Settings
from outreach.errors import ChannelError, WebhookRejected
from outreach.providers.base import OutboundMessage, Provider
from outreach.providers.registry import build_provider
from tests.providers.conftest import SECRETS, load_json, twilio_request

pytestmark = pytest.mark.anyio

MESSAGES = {
    "twilio_sms": OutboundMessage(1, "k1", "sms", "+16175550199", "Hi"),
    "twilio_voice": OutboundMessage(2, "k2", "voice", "+16175550199", "Hi", voicemail="Call us"),
    "sendgrid_email": OutboundMessage(3, "k3", "email", "d@example.net", "Hi", subject="S"),
}
FAILURES: list[object] = [
    401, 403, 429, 500,
    httpx.ConnectError("refused"), httpx.ReadTimeout("late"), httpx.RemoteProtocolError("gone"),
]  # fmt: skip


def exposed(error: BaseException, log: str) -> list[str]:
    text = " ".join([str(error), repr(error), repr(vars(error)), log])
    return [secret for secret in SECRETS if secret in text]


@pytest.mark.parametrize("name", list(MESSAGES))
@pytest.mark.parametrize("failure", FAILURES, ids=str)
async def test_no_secret_in_send_failures(
    name: str,
    failure: object,
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    router: respx.MockRouter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    provider: Provider = build_provider(name, MESSAGES[name].channel, settings, client, clock)
    route = router.route(method="POST")
    if isinstance(failure, int):
        body = load_json(
            "rest/sendgrid_errors.json" if name == "sendgrid_email" else "rest/twilio_errors.json"
        )
        route.respond(failure, json=next(iter(body.values())))
    else:
        route.mock(side_effect=failure)
    with pytest.raises(ChannelError) as raised:
        await provider.send(MESSAGES[name])
    logging.getLogger("outreach").error("send failed: %s", raised.value)
    assert exposed(raised.value, caplog.text) == []


@pytest.mark.parametrize("name", ["twilio_sms", "twilio_voice"])
def test_no_secret_in_webhook_rejections(
    name: str, settings: Settings, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    provider = build_provider(
        name, "sms" if name == "twilio_sms" else "voice", settings, client, clock
    )
    request = twilio_request("sms_status_sent.json", token="someone-elses-token")
    with pytest.raises(WebhookRejected) as raised:
        provider.verify(request)
    assert exposed(raised.value, "") == []


def test_no_secret_in_settings_repr_or_problems(settings: Settings) -> None:
    text = repr(settings) + " ".join(f"{p.message} {p.remedy}" for p in settings.problems())
    assert [secret for secret in SECRETS if secret in text] == []
