"""The app around the webhooks: health, unknown URLs, the bodies each path takes, the
body-link unsubscribe page, a burst of callbacks, switching a live call, and access logs
without secrets."""

from __future__ import annotations

import http.client
import json
import logging
import resource
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from pydantic import SecretStr
from sqlalchemy import Engine

from outreach.channels import VoiceChannel
from outreach.clock import FixedClock
from outreach.config import Settings
from outreach.events import provider_events
from outreach.providers.transport import make_http_client
from outreach.providers.twilio_voice import TwilioVoice
from outreach.store import compliance_events, suppressions
from outreach.unsubscribe import unsubscribe_url
from outreach.web.access_log import RedactPaths, redact
from outreach.web.app import create_app
from outreach.web.body_limit import EDITOR_BYTES, FORM_BYTES
from tests.conftest import NOW
from tests.eventdata import EMAIL, add_account, add_attempt, attempt, count, rows
from tests.providers.conftest import ACCOUNT_SID, PUBLIC, SECRET_KEY, twiml
from tests.web.conftest import Server, call_webhook, serving, sms_status

PUBLIC_URL = "https://outreach.example.com"


def test_health_answers(server: Server) -> None:
    assert server.http.get(server.base + "/healthz").json()["database"] == "ok"


@pytest.mark.parametrize(
    "path",
    ["/webhooks/nobody/status", "/webhooks/twilio_sms/elsewhere", "/webhooks/outbox/status"],
)
def test_urls_that_are_no_webhook_answer_404(server: Server, path: str) -> None:
    assert server.http.post(server.base + path, content=b"x").status_code == 404


def test_no_api_description_is_served(server: Server) -> None:
    """It would list every route, the admin's included, to anyone."""
    for path in ("/openapi.json", "/docs", "/redoc"):
        assert server.http.get(server.base + path).status_code == 404, path


def test_an_unconfigured_provider_has_no_webhooks(engine: Engine, tmp_path: Path) -> None:
    bare = Settings(_env_file=None, outbox_path=tmp_path / "o.jsonl")
    with serving(create_app(bare, engine)) as server:
        response = server.http.post(server.base + "/webhooks/twilio_sms/status", content=b"")
        assert response.status_code == 404
        outbox = server.http.post(server.base + "/webhooks/outbox/events", content=b"[]")
        assert outbox.status_code == 403  # served, and unsigned


def test_a_body_too_large_is_refused_before_it_is_read(server: Server) -> None:
    port = int(server.base.rsplit(":", 1)[1])
    head = (
        "POST /webhooks/twilio_sms/status HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Length: {64 * 1024 * 1024}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode() + b"x" * 1024)
        status_line = sock.makefile("rb").readline()
    assert status_line.split()[1] == b"413"


def answer_to(server: Server, head: str, *chunks: bytes) -> tuple[int, dict[str, str], bytes]:
    """The answer to a request sent as written: its head, then ``chunks`` and no more (a
    body shorter than its ``Content-Length`` or without its last chunk is never finished,
    and a server that waits for the rest times out)."""
    port = int(server.base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(head.encode())
            for chunk in chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed before the rest was sent: the answer is read below
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()


def declared(path: str, length: int, *headers: str) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {length}",
             "Content-Type: application/x-www-form-urlencoded", *headers]  # fmt: skip
    return "\r\n".join(lines) + "\r\n\r\n"


@pytest.mark.parametrize("path", ["/login", "/admin/users", "/logout", "/u/token", "/nowhere"])
def test_a_body_declared_larger_than_a_page_takes_is_refused_before_it_is_read(
    server: Server, path: str
) -> None:
    """Forms are read before the sign-in check: a stranger's 600 MiB sign-in would be held
    in memory whole. The server answers without waiting for a byte past the head."""
    status, headers, text = answer_to(server, declared(path, 600 * 1024 * 1024), b"f=1")
    assert status == 413
    assert headers["content-type"].startswith("text/plain")
    assert headers["connection"] == "close"
    assert text.decode() == "The request is too large: this address takes at most 256 KiB.\n"


def test_a_stranger_cannot_make_the_server_hold_a_huge_sign_in_form(server: Server) -> None:
    """600 fields of 1 MiB each (Starlette's own bounds: 1,000 fields, 1 MiB each) were
    read whole before the sign-in was looked at: 575 MiB held for one request."""
    sent = 0

    def fields() -> Iterator[bytes]:
        nonlocal sent
        value = b"a" * (1024 * 1024 - 64)
        for n in range(600):
            part = (b"&" if n else b"") + f"f{n}=".encode() + value
            sent += len(part)
            yield part

    kind = {"Content-Type": "application/x-www-form-urlencoded"}
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    with httpx.Client(base_url=server.base, timeout=120) as client:
        answer = client.post("/login", content=fields(), headers=kind)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024 - before  # MiB
    assert answer.status_code == 413
    assert sent < 64 * 1024 * 1024, "the server read the body on"
    assert grown < 64, f"the process grew by {grown} MiB for one request"


def test_a_body_sent_in_chunks_is_stopped_once_past_the_limit(server: Server) -> None:
    head = (
        "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n\r\n"
    )
    size = 16 * 1024
    chunk = f"{size:x}\r\n".encode() + b"a" * size + b"\r\n"
    # Five bytes past the limit, and the body's last chunk never comes: only a server that
    # stopped reading it answers.
    chunks = [b"5\r\nuser=\r\n"] + [chunk] * (FORM_BYTES // size)
    status, _, text = answer_to(server, head, *chunks)
    assert status == 413
    assert b"too large" in text


def test_a_body_the_pages_refuse_still_reaches_a_webhook(server: Server) -> None:
    body = b"a" * (1024 * 1024)
    kind = {"Content-Type": "application/x-www-form-urlencoded"}
    assert server.http.post(server.base + "/login", content=body, headers=kind).status_code == 413
    # Inbound Parse takes up to 32 MiB (each webhook has its own cap: test_webhook_limits).
    webhook = server.http.post(
        server.base + "/webhooks/sendgrid_email/inbound", content=body, headers=kind
    )
    assert webhook.status_code == 403  # read whole, and unsigned


def test_the_editor_takes_a_larger_body_and_its_script_is_answered_in_json(
    server: Server,
) -> None:
    """Its templates' text may take up to 1.2 MB (see test_editor_pages for the largest)."""
    kind = {"Content-Type": "application/x-www-form-urlencoded"}
    body = b"a" * (2 * FORM_BYTES)
    preview = server.http.post(server.base + "/templates/preview", content=body, headers=kind)
    assert preview.status_code == 303  # past the body's limit, to the sign-in check
    json_head = declared("/templates/preview", EDITOR_BYTES + 1, "Accept: application/json")
    status, headers, text = answer_to(server, json_head, b"{")
    assert status == 413 and headers["content-type"] == "application/json"
    assert json.loads(text) == {
        "detail": "The request is too large: this address takes at most 2,048 KiB."
    }


def test_the_body_link_shows_a_page_and_unsubscribes_on_post(
    engine: Engine, server: Server
) -> None:
    account_id = add_account(engine)
    url = unsubscribe_url(server.base, SECRET_KEY, EMAIL, "R-1")
    shown = server.http.get(url)
    assert shown.status_code == 200
    assert "P***@example.com" in shown.text and EMAIL not in shown.text
    assert shown.headers["referrer-policy"] == "no-referrer"
    # No other site may frame it and lead a click onto its button.
    assert shown.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in shown.headers["content-security-policy"]
    assert rows(engine, suppressions) == []
    done = server.http.post(url, data={"List-Unsubscribe": "One-Click"})
    assert "You are unsubscribed" in done.text
    (suppression,) = rows(engine, suppressions)
    assert (suppression.channel, suppression.address, suppression.reason) == (
        "email",
        EMAIL.lower(),  # the ledger's spelling of every email address
        "unsubscribe",
    )
    assert suppression.provider_event_id == rows(engine, provider_events)[0].id
    assert [e.kind for e in rows(engine, compliance_events, account_id=account_id)] == ["opt_out"]


def test_a_forged_body_link_is_refused(engine: Engine, server: Server) -> None:
    url = unsubscribe_url(server.base, "another-secret", EMAIL, "R-1")
    assert server.http.get(url).status_code == 403
    assert server.http.post(url).status_code == 403
    not_ascii = unsubscribe_url(server.base, SECRET_KEY, EMAIL, "R-1") + "%C3%A9"
    assert server.http.get(not_ascii).status_code == 403
    assert server.http.post(not_ascii).status_code == 403
    assert rows(engine, suppressions) == []


def rotated(settings: Settings) -> Settings:
    """``settings`` after SECRET_KEY was replaced, the key before kept as a previous one."""
    return settings.model_copy(
        update={
            "secret_key": SecretStr("the-new-key-for-tests-only-9876543210"),
            "secret_key_previous": SecretStr(f"an-older-key-for-tests, {SECRET_KEY}"),
        }
    )


def test_a_link_sent_before_the_key_was_rotated_still_unsubscribes(
    engine: Engine, settings: Settings
) -> None:
    add_account(engine)
    sent = unsubscribe_url(PUBLIC_URL, SECRET_KEY, EMAIL, "R-1")  # in yesterday's email
    with serving(create_app(rotated(settings), engine, clock=FixedClock(NOW))) as server:
        url = server.base + sent.removeprefix(PUBLIC_URL)
        assert server.http.get(url).status_code == 200
        done = server.http.post(url, data={"List-Unsubscribe": "One-Click"})
        assert "You are unsubscribed" in done.text
    assert [s.address for s in rows(engine, suppressions)] == [EMAIL.lower()]


def test_a_link_no_key_signed_names_another_way_to_opt_out(engine: Engine, server: Server) -> None:
    """Whoever followed it wants no more email: the page says how else to ask."""
    url = unsubscribe_url(server.base, "a-key-removed-long-ago", EMAIL, "R-1")
    for shown in (server.http.get(url), server.http.post(url)):
        assert shown.status_code == 403
        assert "This unsubscribe link is not valid." in shown.text
        assert "billing@northwind.example.com" in shown.text and "(800) 555-0199" in shown.text
    assert rows(engine, suppressions) == []


def test_a_burst_of_callbacks_is_answered_only_once_stored_and_none_is_lost(
    engine: Engine, server: Server
) -> None:
    account_id = add_account(engine)
    ids = [add_attempt(engine, account_id, message_id=f"SM{n:04d}") for n in range(60)]
    requests = [
        sms_status(status, sid=f"SM{n:04d}", attempt_id=attempt_id)
        for n, attempt_id in enumerate(ids)
        for status in ("sent", "delivered")
    ]
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(server.send, requests))
    assert {response.status_code for response in answers} == {200}
    assert count(engine, provider_events) == len(requests)
    assert {attempt(engine, attempt_id).status for attempt_id in ids} == {"delivered"}


def test_a_person_detected_late_is_asked_who_they_are(engine: Engine, settings: Settings) -> None:
    """Inline mode: the call starts with the voicemail; once AMD reports a person, the
    live call is switched to the identity check, not to the message (it names the debt)."""
    call = add_attempt(engine, add_account(engine), channel="voice", message_id="CA0001")
    router = respx.MockRouter(assert_all_called=False, assert_all_mocked=True)
    update = router.post(
        f"https://twilio.test/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/CA0001.json"
    ).respond(200, json={"sid": "CA0001", "status": "in-progress"})
    client = make_http_client(transport=httpx.MockTransport(router.handler))
    voice = TwilioVoice(settings, client, FixedClock(NOW), VoiceChannel(twiml_mode="inline"))
    app = create_app(settings, engine, clock=FixedClock(NOW), providers={voice.name: voice})
    with serving(app) as server:
        response = server.send(call_webhook("amd", call, AnsweredBy="human"))
        assert response.json() == {"stored": 1, "duplicates": 0}
        server.send(call_webhook("amd", call, AnsweredBy="human"))  # a retry switches nothing
    assert update.call_count == 1
    (sent,) = parse_qs(update.calls[0].request.content.decode())["Twiml"]
    root = twiml(sent)
    assert [child.tag for child in root] == ["Gather", "Hangup"]
    gather = root[0]
    assert gather.attrib["action"] == (
        f"{PUBLIC}/webhooks/twilio_voice/identity?attempt_id={call}&lang=en"
    )
    assert [say.text for say in gather.findall("Say")] == [
        "Hello, this is Northwind Customer Care. This call is for Pat Doe. "
        "If you are Pat Doe, press 1. If you are not, press 2."
    ]
    assert "120.50" not in sent and "balance" not in sent


def test_access_logs_carry_no_tokens_or_addresses(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("uvicorn.access.test")
    RedactPaths.install(logger)
    RedactPaths.install(logger)
    assert len(logger.filters) == 1
    token_url = unsubscribe_url("", SECRET_KEY, EMAIL, "R-1")
    with caplog.at_level(logging.INFO, logger="uvicorn.access.test"):
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1", "GET", token_url + "?x=1", "1.1", 200)
        logger.info(
            '%s - "%s %s HTTP/%s" %d', "127.0.0.1", "POST",
            "/webhooks/sendgrid_email/unsubscribe?attempt_id=4&token=secret", "1.1", 200,
        )  # fmt: skip
    assert token_url.split("/u/")[1] not in caplog.text
    assert "token=secret" not in caplog.text
    assert "/u/(token)" in caplog.text
    assert redact("/webhooks/twilio_sms/status?attempt_id=3") == "/webhooks/twilio_sms/status"
