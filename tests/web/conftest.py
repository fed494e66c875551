"""A real uvicorn server on 127.0.0.1 (a thread, a free port) serving ``create_app`` over
the ``engine`` fixture's database, and signed requests as each provider makes them."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import Engine

from outreach.clock import FixedClock
from outreach.config import Settings
from outreach.providers.base import WebhookRequest
from outreach.providers.outbox import SIGNATURE_HEADER as OUTBOX_SIGNATURE
from outreach.providers.outbox import sign as outbox_sign
from outreach.web.app import create_app
from tests.conftest import NOW, REPO
from tests.providers.conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    NOW_EPOCH,
    PUBLIC,
    SECRET_KEY,
    SENDGRID_KEY,
    EcdsaKeys,
    sendgrid_events_request,
    signed_form,
)

TIMESTAMP = NOW_EPOCH


@pytest.fixture
def settings(tmp_path: Path, event_keys: EcdsaKeys, inbound_keys: EcdsaKeys) -> Settings:
    # PUBLIC is not where the server listens: Twilio's signatures are checked against the
    # public address, as behind a proxy.
    return Settings(
        _env_file=None,
        secret_key=SecretStr(SECRET_KEY),
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=SecretStr(AUTH_TOKEN),
        twilio_from_number="+16175550100",
        twilio_api_base_url="https://twilio.test",
        sendgrid_api_key=SecretStr(SENDGRID_KEY),
        sendgrid_from_email="billing@example.com",
        sendgrid_webhook_public_key=event_keys.public_b64,
        sendgrid_inbound_public_key=inbound_keys.public_b64,
        public_base_url=PUBLIC,
        channels_dir=REPO / "channels",
        templates_dir=REPO / "templates",
        schedules_dir=REPO / "schedules",
        outbox_path=tmp_path / "outbox.jsonl",
        reply_pause_days=7,
    )


@dataclass
class Server:
    """A running server; ``send`` posts a WebhookRequest to it at its own path."""

    base: str
    app: FastAPI
    http: httpx.Client

    def send(self, request: WebhookRequest, **headers: str) -> httpx.Response:
        parts = urlsplit(request.url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return self.http.post(
            self.base + path, content=request.body, headers={**request.headers, **headers}
        )


@contextmanager
def serving(app: FastAPI) -> Iterator[Server]:
    """``app`` under uvicorn on 127.0.0.1, on a port the system picked, for the block."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    with httpx.Client(timeout=30) as http:
        base = f"http://127.0.0.1:{port}"
        for _ in range(500):  # up to ten seconds for the server to listen
            if server.started:
                break
            if not thread.is_alive():
                pytest.fail("the server did not start")
            threading.Event().wait(0.02)
        else:
            pytest.fail("the server did not start within ten seconds")
        try:
            yield Server(base, app, http)
        finally:
            server.should_exit = True
            thread.join(timeout=30)
            sock.close()


@pytest.fixture
def server(engine: Engine, settings: Settings) -> Iterator[Server]:
    with serving(create_app(settings, engine, clock=FixedClock(NOW))) as running:
        yield running


def twilio(path: str, params: list[tuple[str, str]], **changes: str) -> WebhookRequest:
    """A Twilio webhook for ``path`` (with its query), signed for the public URL."""
    request = signed_form(PUBLIC + path, params)
    return replace(request, headers={**request.headers, **changes})


def sms_status(
    status: str, *, sid: str = "SM0001", attempt_id: int | None = None, **extra: str
) -> WebhookRequest:
    query = f"?attempt_id={attempt_id}" if attempt_id is not None else ""
    params = [
        ("SmsSid", sid), ("SmsStatus", status), ("MessageStatus", status),
        ("To", "+16175550101"), ("MessageSid", sid), ("AccountSid", ACCOUNT_SID),
        ("From", "+16175550100"), ("ApiVersion", "2010-04-01"), *extra.items(),
    ]  # fmt: skip
    return twilio(f"/webhooks/twilio_sms/status{query}", params)


def sms_inbound(body: str, *, sid: str = "SMin1", sender: str = "+16175550101") -> WebhookRequest:
    params = [
        ("AccountSid", ACCOUNT_SID), ("ApiVersion", "2010-04-01"), ("Body", body),
        ("From", sender), ("To", "+16175550100"), ("MessageSid", sid), ("SmsSid", sid),
        ("NumMedia", "0"), ("NumSegments", "1"), ("SmsStatus", "received"),
        ("FutureParameter", "added-later"),
    ]  # fmt: skip
    return twilio("/webhooks/twilio_sms/inbound", params)


def call_webhook(
    kind: str, attempt_id: int | None, sid: str = "CA0001", **fields: str
) -> WebhookRequest:
    query = f"?attempt_id={attempt_id}" if attempt_id is not None else ""
    params = [("AccountSid", ACCOUNT_SID), ("CallSid", sid), ("To", "+16175550101"),
              ("From", "+16175550100"), *fields.items()]  # fmt: skip
    return twilio(f"/webhooks/twilio_voice/{kind}{query}", params)


def sendgrid_events(items: list[dict[str, object]], keys: EcdsaKeys) -> WebhookRequest:
    return sendgrid_events_request(json.dumps(items).encode(), keys, TIMESTAMP)


def multipart(fields: Mapping[str, str], boundary: str = "xYzZY") -> bytes:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    return ("".join(parts) + f"--{boundary}--\r\n").encode()


def sendgrid_inbound(fields: Mapping[str, str], keys: EcdsaKeys) -> WebhookRequest:
    body = multipart(fields)
    return WebhookRequest(
        method="POST",
        url=f"{PUBLIC}/webhooks/sendgrid_email/inbound",
        headers={
            "Content-Type": "multipart/form-data; boundary=xYzZY",
            "X-Twilio-Email-Event-Webhook-Signature": keys.sign(TIMESTAMP, body),
            "X-Twilio-Email-Event-Webhook-Timestamp": TIMESTAMP,
        },
        body=body,
    )


def outbox_events(items: list[dict[str, object]], secret: str = SECRET_KEY) -> WebhookRequest:
    body = json.dumps(items).encode()
    return WebhookRequest(
        method="POST",
        url=f"{PUBLIC}/webhooks/outbox/events",
        headers={"Content-Type": "application/json", OUTBOX_SIGNATURE: outbox_sign(secret, body)},
        body=body,
    )
