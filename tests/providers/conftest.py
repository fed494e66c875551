"""Provider fixtures: settings with test credentials, a respx router as the transport,
payloads from tests/providers/payloads/, and signers for each provider's webhooks.

Credentials here are made up for the tests; signatures are computed with the SDKs'
own code (RequestValidator) or with a key pair generated per test run (SendGrid ECDSA).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from xml.etree import ElementTree

import httpx
import pytest
import respx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr
from twilio.request_validator import RequestValidator

from outreach.clock import FixedClock
from outreach.config import Settings
from outreach.providers.base import WebhookRequest
from outreach.providers.transport import make_http_client
from tests.conftest import NOW, REPO

PAYLOADS = Path(__file__).parent / "payloads"
ACCOUNT_SID = "AC" + "c" * 32
AUTH_TOKEN = "test-auth-token-5f2a9c"
API_KEY_SECRET = "test-api-key-secret-77d1e0"
SENDGRID_KEY = "SG.test-sendgrid-key-4b8e"
SECRET_KEY = "test-secret-key-a1b2c3d4e5"
PUBLIC = "https://outreach.example.com"
SECRETS = (AUTH_TOKEN, API_KEY_SECRET, SENDGRID_KEY, SECRET_KEY)
# When the tests' SendGrid requests are signed: now, by the tests' clock.
NOW_EPOCH = str(int(NOW.timestamp()))


@dataclass(frozen=True)
class EcdsaKeys:
    private: ec.EllipticCurvePrivateKey
    public_b64: str  # as SendGrid shows it: base64 DER SubjectPublicKeyInfo

    def sign(self, timestamp: str, body: bytes) -> str:
        signature = self.private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(signature).decode()


def new_keys() -> EcdsaKeys:
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return EcdsaKeys(private, base64.b64encode(der).decode())


@pytest.fixture
def settings(tmp_path: Path, event_keys: EcdsaKeys, inbound_keys: EcdsaKeys) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        secret_key=SecretStr(SECRET_KEY),
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=SecretStr(AUTH_TOKEN),
        twilio_from_number="+16175550100",
        twilio_api_base_url="https://twilio.test",
        sendgrid_api_key=SecretStr(SENDGRID_KEY),
        sendgrid_api_base_url="https://sendgrid.test",
        sendgrid_from_email="billing@example.com",
        sendgrid_webhook_public_key=event_keys.public_b64,
        sendgrid_inbound_public_key=inbound_keys.public_b64,
        public_base_url=PUBLIC,
        channels_dir=REPO / "channels",
        templates_dir=REPO / "templates",
        outbox_path=tmp_path / "outbox.jsonl",
    )


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def router() -> respx.MockRouter:
    return respx.MockRouter(assert_all_called=False, assert_all_mocked=True)


@pytest.fixture
def client(router: respx.MockRouter) -> httpx.AsyncClient:
    # A mock transport holds no connections, so the client needs no closing.
    return make_http_client(transport=httpx.MockTransport(router.handler))


def load_json(relative: str) -> Any:
    return json.loads((PAYLOADS / relative).read_text(encoding="utf-8"))


def twilio_request(
    relative: str,
    *,
    token: str = AUTH_TOKEN,
    url: str | None = None,
    changes: dict[str, str] | None = None,
) -> WebhookRequest:
    """A payload file as Twilio posts it, signed for its URL (or ``url``)."""
    fixture = load_json(f"twilio/{relative}")
    params = [(key, value) for key, value in fixture["params"]]
    for key, value in (changes or {}).items():
        params = [(k, value if k == key else v) for k, v in params]
        if key not in {k for k, _ in params}:
            params.append((key, value))
    return signed_form(url or fixture["url"], params, token=token)


def twiml(text: str) -> ElementTree.Element:
    """TwiML as a tree, to check its verbs and attributes."""
    return ElementTree.fromstring(text)  # noqa: S314 - TwiML our own code built


def signed_form(
    url: str, params: list[tuple[str, str]], *, token: str = AUTH_TOKEN
) -> WebhookRequest:
    multi: dict[str, list[str]] = {}
    for key, value in params:
        multi.setdefault(key, []).append(value)

    class Multi(dict[str, list[str]]):
        def getall(self, key: str) -> list[str]:
            return self[key]

    signature = RequestValidator(token).compute_signature(url, Multi(multi))
    return WebhookRequest(
        method="POST",
        url=url,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
            "User-Agent": "TwilioProxy/1.1",
        },
        body=urlencode(params).encode(),
    )


def sendgrid_events_request(
    body: bytes, keys: EcdsaKeys, timestamp: str = NOW_EPOCH
) -> WebhookRequest:
    return WebhookRequest(
        method="POST",
        url=f"{PUBLIC}/webhooks/sendgrid_email/events",
        headers={
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": keys.sign(timestamp, body),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        },
        body=body,
    )


def inbound_request(relative: str, keys: EcdsaKeys, timestamp: str = NOW_EPOCH) -> WebhookRequest:
    body = (PAYLOADS / f"sendgrid/{relative}").read_bytes()
    return WebhookRequest(
        method="POST",
        url=f"{PUBLIC}/webhooks/sendgrid_email/inbound",
        headers={
            "Content-Type": "multipart/form-data; boundary=xYzZY",
            "X-Twilio-Email-Event-Webhook-Signature": keys.sign(timestamp, body),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        },
        body=body,
    )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
