from __future__ import annotations

import itertools
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.headerregistry import UnstructuredHeader

import httpx
import pytest
import respx

from outreach.channels import EmailChannel
from outreach.clock import Clock, FixedClock, ScaledClock
from outreach.config import Settings
from outreach.errors import ChannelError, WebhookRejected
from outreach.providers.base import EventType, OutboundMessage, ProviderEvent, WebhookRequest
from outreach.providers.inbound_email import _html_text
from outreach.providers.sendgrid_email import (
    MAX_TIMESTAMP_AGE,
    MAX_TIMESTAMP_AHEAD,
    TIMESTAMP_HEADER,
    SendgridEmail,
    unsubscribe_token,
)
from tests.conftest import NOW
from tests.providers.conftest import (
    NOW_EPOCH,
    PAYLOADS,
    PUBLIC,
    SECRET_KEY,
    SENDGRID_KEY,
    EcdsaKeys,
    inbound_request,
    load_json,
    new_keys,
    sendgrid_events_request,
)

pytestmark = pytest.mark.anyio

SEND = "https://sendgrid.test/v3/mail/send"
EMAIL = OutboundMessage(
    9, "acct-1:step-3:email", "email", "debtor@example.net", "Your balance is due.",
    subject="Your balance", html="<p>Your balance is due.</p>",
)  # fmt: skip
CONFIG = EmailChannel(
    from_name="Acme Billing",
    reply_to="billing+{attempt_id}@reply.example.com",
    unsubscribe_mailto="unsubscribe@reply.example.com",
    categories=["outreach"],
)


def email(settings: Settings, client: httpx.AsyncClient, clock: Clock) -> SendgridEmail:
    return SendgridEmail(settings, client, clock, CONFIG)


async def test_send_posts_mail_send_json(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, router: respx.MockRouter
) -> None:
    router.post(SEND).respond(202, headers={"X-Message-Id": "W86EgYT6SQKk0lRflfLRsA"})
    result = await email(settings, client, clock).send(EMAIL)
    assert (result.provider_message_id, result.status) == (
        "W86EgYT6SQKk0lRflfLRsA",
        EventType.QUEUED,
    )
    request = router.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {SENDGRID_KEY}"
    assert request.headers["Content-Type"] == "application/json"
    body = json.loads(request.content)
    # The same bytes as httpx's own ``json=`` encoding.
    assert httpx.Request("POST", SEND, json=body).content == request.content
    token = unsubscribe_token(SECRET_KEY, 9)
    assert body == {
        "from": {"email": "billing@example.com", "name": "Acme Billing"},
        "personalizations": [{"to": [{"email": "debtor@example.net"}]}],
        "subject": "Your balance",
        "content": [
            {"type": "text/plain", "value": "Your balance is due."},
            {"type": "text/html", "value": "<p>Your balance is due.</p>"},
        ],
        "reply_to": {"email": "billing+9@reply.example.com"},
        "custom_args": {
            "outreach_attempt_id": "9",
            "outreach_idempotency_key": "acct-1:step-3:email",
        },
        "headers": {
            "List-Unsubscribe": (
                f"<{PUBLIC}/webhooks/sendgrid_email/unsubscribe?attempt_id=9&token={token}>, "
                "<mailto:unsubscribe@reply.example.com?subject=unsubscribe>"
            ),
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        "categories": ["outreach"],
    }


@pytest.mark.parametrize(
    ("status", "retryable", "ambiguous"),
    [
        (400, False, False),
        (401, True, False),  # our key refused: every message waits, none fails
        (403, True, False),
        (413, False, False),
        (500, False, True),
        (502, False, True),
        (503, True, False),
        (504, False, True),
    ],
)
async def test_error_answers_are_classified(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    router: respx.MockRouter,
    status: int,
    retryable: bool,
    ambiguous: bool,
) -> None:
    router.post(SEND).respond(status, json=load_json("rest/sendgrid_errors.json")[str(status)])
    with pytest.raises(ChannelError) as raised:
        await email(settings, client, clock).send(EMAIL)
    assert (raised.value.retryable, raised.value.ambiguous) == (retryable, ambiguous)
    assert raised.value.outage == (status in (401, 403))
    assert raised.value.status_code == status
    assert raised.value.detail


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirected_mail_send_holds_the_email_until_the_base_url_is_fixed(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    router: respx.MockRouter,
    status: int,
) -> None:
    # SENDGRID_API_BASE_URL on http://, or a proxy: SendGrid never saw the message.
    router.post(SEND).respond(status, headers={"Location": SEND})
    with pytest.raises(ChannelError) as raised:
        await email(settings, client, clock).send(EMAIL)
    error = raised.value
    assert (error.retryable, error.outage, error.ambiguous) == (True, True, False)
    assert "SENDGRID_API_BASE_URL" in str(error) or "base URL" in str(error)
    assert router.calls.call_count == 1


async def test_a_see_other_after_mail_send_holds_the_email_for_review(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, router: respx.MockRouter
) -> None:
    router.post(SEND).respond(303, headers={"Location": "https://sendgrid.test/v3/messages"})
    with pytest.raises(ChannelError) as raised:
        await email(settings, client, clock).send(EMAIL)
    assert (raised.value.retryable, raised.value.ambiguous) == (False, True)


async def test_429_waits_until_the_limit_resets(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, router: respx.MockRouter
) -> None:
    reset = int(clock.now().timestamp()) + 30
    router.post(SEND).respond(
        429,
        json=load_json("rest/sendgrid_errors.json")["429"],
        headers={"X-RateLimit-Reset": str(reset)},
    )
    with pytest.raises(ChannelError) as raised:
        await email(settings, client, clock).send(EMAIL)
    assert raised.value.retryable and raised.value.retry_after == 30


@pytest.mark.parametrize("header", [None, "", " "])
async def test_an_acceptance_without_a_message_id_is_ambiguous(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    router: respx.MockRouter,
    header: str | None,
) -> None:
    headers = {} if header is None else {"X-Message-Id": header}
    router.post(SEND).respond(202, headers=headers)
    with pytest.raises(ChannelError) as raised:
        await email(settings, client, clock).send(EMAIL)
    assert raised.value.ambiguous and not raised.value.retryable
    assert raised.value.status_code == 202


async def test_a_read_timeout_is_ambiguous(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, router: respx.MockRouter
) -> None:
    router.post(SEND).mock(side_effect=httpx.ReadTimeout("no answer"))
    with pytest.raises(ChannelError) as raised:
        await email(settings, client, clock).send(EMAIL)
    assert raised.value.ambiguous and not raised.value.retryable


EXPECTED_EVENTS = [
    ("processed", EventType.SENT, None, None),
    ("deferred", EventType.DEFERRED, None, None),
    ("delivered", EventType.DELIVERED, None, "delivered"),
    ("open", EventType.OPENED, None, None),
    ("click", EventType.CLICKED, None, None),
    ("bounce", EventType.BOUNCED, "bounce", "failed"),
    ("blocked", EventType.UNDELIVERED, None, "failed"),
    ("dropped", EventType.DROPPED, "bounce", "failed"),
    ("spamreport", EventType.COMPLAINED, "complaint", None),
    ("unsubscribe", EventType.UNSUBSCRIBED, "unsubscribe", None),
    ("groupunsubscribe", EventType.UNSUBSCRIBED, "unsubscribe", None),
    # One unsubscribe group's resubscribe: stored, and no opt-in (it lifts nothing).
    ("groupresubscribe", EventType.UNKNOWN, None, None),
]


@pytest.mark.parametrize(("name", "event_type", "suppression", "outcome"), EXPECTED_EVENTS)
def test_each_documented_event(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    event_keys: EcdsaKeys,
    name: str,
    event_type: EventType,
    suppression: str | None,
    outcome: str | None,
) -> None:
    provider = email(settings, client, clock)
    request = sendgrid_events_request((_payload(f"event_{name}.json")), event_keys)
    provider.verify(request)
    (event,) = provider.parse(request)
    assert (event.event_type, event.suppression, event.outcome) == (
        event_type,
        suppression,
        outcome,
    )
    assert event.attempt_id == 42  # our custom arg, returned as a top-level key
    assert event.to_address == "example@test.com"
    assert event.provider_message_id == "14c5d75ce93.dfd.64b469"
    assert event.occurred_at == datetime(2017, 12, 15, 0, 59, 29, tzinfo=UTC)
    assert event.payload["future_field"] == {"added": "later"}
    assert event.contact_status == ("invalid" if suppression == "bounce" else None)


def test_a_drop_suppresses_only_for_reasons_about_the_address(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, event_keys: EcdsaKeys
) -> None:
    events = load_json("sendgrid/event_dropped.json")
    events[0]["reason"] = "Spam Content (if spam checker app enabled)"
    (event,) = email(settings, client, clock).parse(
        sendgrid_events_request(json.dumps(events).encode(), event_keys)
    )
    assert (event.event_type, event.suppression) == (EventType.DROPPED, None)


def test_a_batch_of_every_type_and_a_duplicate(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, event_keys: EcdsaKeys
) -> None:
    batch = load_json("sendgrid/event_batch_all_types.json")
    body = json.dumps([*batch, batch[2]], separators=(",", ":")).encode() + b"\r\n"
    request = sendgrid_events_request(body, event_keys)
    provider = email(settings, client, clock)
    provider.verify(request)
    events = provider.parse(request)
    assert len(events) == 11
    unknown = [e.raw_status for e in events if e.event_type is EventType.UNKNOWN]
    assert unknown == ["group_resubscribe"]


def test_the_signature_covers_the_exact_bytes(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, event_keys: EcdsaKeys
) -> None:
    provider = email(settings, client, clock)
    body = _payload("event_delivered.json").rstrip() + b"\r\n"
    request = sendgrid_events_request(body, event_keys)
    provider.verify(request)
    for forged in (
        replace(request, body=body.rstrip()),  # the trailing CRLF is signed too
        replace(
            request,
            headers={**request.headers, TIMESTAMP_HEADER: str(int(NOW_EPOCH) + 1)},
        ),
        sendgrid_events_request(body, new_keys()),  # someone else's key
    ):
        with pytest.raises(WebhookRejected):
            provider.verify(forged)


@pytest.mark.parametrize(
    ("signed_at", "accepted"),
    [
        (NOW, True),
        # SendGrid retries a post for up to 72 hours, perhaps under its first timestamp.
        (NOW - timedelta(hours=72), True),
        (NOW - MAX_TIMESTAMP_AGE + timedelta(seconds=1), True),
        (NOW + MAX_TIMESTAMP_AHEAD, True),
        # A captured batch replayed a week later, or one signed for later on.
        (NOW - timedelta(days=7), False),
        (NOW - MAX_TIMESTAMP_AGE - timedelta(seconds=1), False),
        (NOW + MAX_TIMESTAMP_AHEAD + timedelta(seconds=1), False),
        (NOW + timedelta(days=30), False),
    ],
)
def test_a_signed_request_is_accepted_only_near_its_timestamp(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    event_keys: EcdsaKeys,
    inbound_keys: EcdsaKeys,
    signed_at: datetime,
    accepted: bool,
) -> None:
    """The signature covers the timestamp so that a captured request cannot be replayed
    for ever: genuinely signed, it is still refused outside the window."""
    provider = email(settings, client, clock)
    timestamp = str(int(signed_at.timestamp()))
    events = sendgrid_events_request(_payload("event_delivered.json"), event_keys, timestamp)
    inbound = inbound_request("inbound_default_data.crlf.multipart", inbound_keys, timestamp)
    for request in (events, inbound):
        if accepted:
            provider.verify(request)
        else:
            with pytest.raises(WebhookRejected, match="Timestamp"):
                provider.verify(request)


def test_a_demos_clock_does_not_move_the_window(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, event_keys: EcdsaKeys
) -> None:
    """``outreach run --start ... --speed 60`` shows another time; SendGrid signs in real
    time, which the window is measured against."""
    demo = ScaledClock(clock.now() - timedelta(days=30), speed=60, wall=clock)
    clock.advance(timedelta(hours=2))  # the demo's clock is now 30 days behind, less 5
    timestamp = str(int(clock.now().timestamp()))
    request = sendgrid_events_request(_payload("event_delivered.json"), event_keys, timestamp)
    email(settings, client, demo).verify(request)


@pytest.mark.parametrize("timestamp", ["", " 1793631600", "1793631600.5", "-1", "١٢٣", "9" * 40])
def test_a_timestamp_that_is_not_epoch_seconds_is_refused(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    event_keys: EcdsaKeys,
    timestamp: str,
) -> None:
    request = sendgrid_events_request(_payload("event_delivered.json"), event_keys, timestamp)
    with pytest.raises(WebhookRejected):
        email(settings, client, clock).verify(request)


@pytest.mark.parametrize("timestamp", ["253402300800", "999999999999"])
def test_a_timestamp_past_the_last_date_python_can_hold_is_refused_as_in_the_future(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    event_keys: EcdsaKeys,
    timestamp: str,
) -> None:
    """Epoch seconds after the year 9999 are refused as ahead of the clock, before any
    signature is checked, rather than failing as no date."""
    request = sendgrid_events_request(_payload("event_delivered.json"), event_keys, timestamp)
    with pytest.raises(WebhookRejected, match="in the future"):
        email(settings, client, clock).verify(request)


def test_without_the_public_key_nothing_is_accepted(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, event_keys: EcdsaKeys
) -> None:
    provider = email(
        settings.model_copy(update={"sendgrid_webhook_public_key": None}), client, clock
    )
    with pytest.raises(WebhookRejected, match="SENDGRID_WEBHOOK_PUBLIC_KEY"):
        provider.verify(sendgrid_events_request(_payload("event_open.json"), event_keys))


@pytest.mark.parametrize(
    ("payload", "subject"),
    [
        ("inbound_default_data.crlf.multipart", "Testing non-raw"),
        ("inbound_default_data.multipart", "Testing non-raw"),
        ("inbound_raw_data.crlf.multipart", "Inbound Parse Test Raw Data"),
        ("inbound_raw_data.multipart", "Inbound Parse Test Raw Data"),
        (
            "inbound_raw_data_with_attachments.crlf.multipart",
            "Inbound Parse Test Raw Data with Attachment",
        ),
    ],
)
def test_inbound_parse_becomes_a_reply(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    inbound_keys: EcdsaKeys,
    payload: str,
    subject: str,
) -> None:
    provider = email(settings, client, clock)
    request = inbound_request(payload, inbound_keys)
    provider.verify(request)
    (event,) = provider.parse(request)
    assert (event.kind, event.event_type) == ("inbound", EventType.REPLIED)
    assert (event.from_address, event.subject) == ("test@example.com", subject)
    assert event.body == "Hello Twilio SendGrid!"
    assert event.to_address is not None and event.to_address.startswith("inbound@")


def test_inbound_parse_is_verified_with_its_own_key(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, event_keys: EcdsaKeys
) -> None:
    request = inbound_request("inbound_default_data.crlf.multipart", event_keys)
    with pytest.raises(WebhookRejected):
        email(settings, client, clock).verify(request)


def test_a_reply_to_our_tagged_address_names_its_attempt_and_stop_unsubscribes(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, inbound_keys: EcdsaKeys
) -> None:
    body = (
        (_raw("inbound_default_data.crlf.multipart"))
        .replace(b"inbound@inbound.example.com", b"billing+42@reply.example.com")
        .replace(b"Hello Twilio SendGrid!", b"STOP\r\n\r\n> On Monday Acme wrote:")
    )
    request = _signed_inbound(body, inbound_keys)
    provider = email(settings, client, clock)
    provider.verify(request)
    (event,) = provider.parse(request)
    assert event.attempt_id == 42
    assert (event.event_type, event.suppression) == (EventType.OPTED_OUT, "unsubscribe")


def test_a_raw_mode_text_in_a_charset_python_does_not_know_is_read_as_utf_8(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, inbound_keys: EcdsaKeys
) -> None:
    """Refused, it would be refused on every retry, and an opt-out in it lost."""
    body = (
        _raw("inbound_raw_data.crlf.multipart")
        .replace(b"text/plain; charset=UTF-8", b"text/plain; charset=unknown-8bit")
        .replace(b"Hello Twilio SendGrid!\r\n\r\n--", b"STOP\r\n\r\nFran\xe7ois\r\n\r\n--")
    )
    request = _signed_inbound(body, inbound_keys)
    provider = email(settings, client, clock)
    provider.verify(request)
    (event,) = provider.parse(request)
    assert (event.body, event.event_type) == ("STOP\r\n\r\nFran\ufffdois", EventType.OPTED_OUT)


@pytest.mark.parametrize(
    "message_id",
    [
        b"<abc@[127.0.0.1>",  # AttributeError from the stdlib's header parser
        b"<a@[",  # UnboundLocalError
    ],
)
def test_a_parsed_mode_opt_out_whose_message_id_the_header_parser_fails_on_is_read(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    inbound_keys: EcdsaKeys,
    message_id: bytes,
) -> None:
    """Refused, it would be refused on every retry, and the opt-out lost: the Message-ID
    is taken as written."""
    body = (
        _raw("inbound_default_data.crlf.multipart")
        .replace(
            b"MIME-Version: 1.0\r\n", b"MIME-Version: 1.0\r\nMessage-ID: " + message_id + b"\r\n"
        )
        .replace(b"Hello Twilio SendGrid!", b"STOP")
    )
    request = _signed_inbound(body, inbound_keys)
    provider = email(settings, client, clock)
    provider.verify(request)
    (event,) = provider.parse(request)
    assert (event.from_address, event.body) == ("test@example.com", "STOP")
    assert (event.event_type, event.suppression) == (EventType.OPTED_OUT, "unsubscribe")
    assert event.dedupe_key == f"sendgrid_email:inbound:{message_id.decode()}"


@pytest.mark.parametrize(
    ("sender", "found"),
    [
        (b".a:?", "test@example.com"),  # AttributeError: the envelope's sender
        (b".a:? <Pat@Example.com>", "pat@example.com"),  # the address the header names
    ],
)
def test_a_raw_mode_opt_out_whose_from_the_header_parser_fails_on_is_read(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    inbound_keys: EcdsaKeys,
    sender: bytes,
    found: str,
) -> None:
    body = (
        _raw("inbound_raw_data.crlf.multipart")
        .replace(b"From: Example User <test@example.com>", b"From: " + sender)
        .replace(b"Hello Twilio SendGrid!\r\n\r\n--", b"STOP\r\n\r\n--")
    )
    request = _signed_inbound(body, inbound_keys)
    provider = email(settings, client, clock)
    provider.verify(request)
    (event,) = provider.parse(request)
    assert (event.from_address, event.body, event.event_type) == (
        found, "STOP", EventType.OPTED_OUT,
    )  # fmt: skip


def test_a_subject_the_header_parser_fails_on_is_taken_with_its_encoded_words_decoded(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    inbound_keys: EcdsaKeys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No subject the stdlib's parser fails on is known (a Message-ID's and a From's are):
    taken as written, "=?utf-8?q?Re=3A_STOP?=" was no STOP."""

    def fails(*_args: object, **_kwargs: object) -> None:
        raise AttributeError("'str' object has no attribute 'value'")

    monkeypatch.setattr(UnstructuredHeader, "parse", classmethod(fails))
    message = (
        "From: Example User <test@example.com>\r\nTo: inbound@inbound.inbound.com\r\n"
        "Subject: =?utf-8?q?Re=3A?=\r\n =?iso-8859-1?q?_STOP?=\r\n"
        "Content-Type: text/plain\r\n\r\n\r\n"
    )
    event = _parse_raw(settings, client, clock, inbound_keys, message)
    assert (event.subject, event.body) == ("Re: STOP", "")
    assert (event.event_type, event.suppression) == (EventType.OPTED_OUT, "unsubscribe")


@pytest.mark.parametrize(
    "subject",
    [
        "=?x-unknown?q?Re=3A_STOP?=",  # a charset Python does not know: as written
        "=?utf-8?b?Re: STOP?=",  # no base64: as written
    ],
)
def test_a_subject_the_header_parser_fails_on_whose_encoded_words_cannot_be_read_is_as_written(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    inbound_keys: EcdsaKeys,
    monkeypatch: pytest.MonkeyPatch,
    subject: str,
) -> None:
    def fails(*_args: object, **_kwargs: object) -> None:
        raise AttributeError("'str' object has no attribute 'value'")

    monkeypatch.setattr(UnstructuredHeader, "parse", classmethod(fails))
    message = (
        "From: Example User <test@example.com>\r\nTo: inbound@inbound.inbound.com\r\n"
        f"Subject: {subject}\r\nContent-Type: text/plain\r\n\r\nSTOP\r\n"
    )
    event = _parse_raw(settings, client, clock, inbound_keys, message)
    assert (event.subject, event.body, event.event_type) == (subject, "STOP", EventType.OPTED_OUT)


def test_a_raw_mode_opt_out_nested_deeper_than_the_parser_recurses_is_read(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, inbound_keys: EcdsaKeys
) -> None:
    """A thousand multipart/mixed parts, one in another: read from its first text part."""
    depth = 1000
    nested = "".join(
        f"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n" for i in range(depth)
    )
    ends = "".join(f"\r\n--b{i}--" for i in reversed(range(depth)))
    message = (
        "From: Example User <test@example.com>\r\nTo: inbound@inbound.inbound.com\r\n"
        f"Subject: Re: your balance\r\n{nested}Content-Type: text/plain\r\n\r\n"
        f"STOP\r\n\r\nSent from my phone{ends}\r\n"
    )
    body = _form({"email": message, "envelope": '{"to":["inbound@inbound.inbound.com"]}'})
    request = _signed_inbound(body, inbound_keys)
    provider = email(settings, client, clock)
    provider.verify(request)
    (event,) = provider.parse(request)
    assert (event.from_address, event.subject) == ("test@example.com", "Re: your balance")
    assert (event.body, event.event_type) == ("STOP\r\n\r\nSent from my phone", EventType.OPTED_OUT)


@pytest.mark.parametrize(
    "declared",
    [
        'boundary="b x{i}"',  # RFC 2046: a space inside, quoted
        "boundary*=utf-8''b%20x{i}",  # RFC 2231: with its charset, percent-encoded
        'boundary*0="b x"; boundary*1="{i}"',  # RFC 2231: in sections
        "boundary*0*=utf-8''b%20; boundary*1=x{i}",  # both
    ],
)
def test_a_raw_mode_opt_out_nested_too_deep_is_cut_at_each_boundary_the_rfcs_allow(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    inbound_keys: EcdsaKeys,
    declared: str,
) -> None:
    """Each boundary missed, the message was one piece the parser fails on, and the STOP
    stored as a plain reply."""
    depth = 1000
    nested = "".join(
        f"Content-Type: multipart/mixed; {declared.format(i=i)}\r\n\r\n--b x{i}\r\n"
        for i in range(depth)
    )
    ends = "".join(f"\r\n--b x{i}--" for i in reversed(range(depth)))
    message = (
        "From: Example User <test@example.com>\r\nTo: inbound@inbound.inbound.com\r\n"
        f"Subject: Re: your balance\r\n{nested}Content-Type: text/plain\r\n\r\n"
        f"STOP\r\n{ends}\r\n"
    )
    event = _parse_raw(settings, client, clock, inbound_keys, message)
    assert (event.from_address, event.subject) == ("test@example.com", "Re: your balance")
    assert (event.body, event.event_type) == ("STOP", EventType.OPTED_OUT)


def test_a_raw_mode_part_nested_too_deep_to_read_is_skipped_for_the_text_after_it(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, inbound_keys: EcdsaKeys
) -> None:
    """A forwarded message nested deeper than the parser recurses, under boundaries with a
    quote in them (no character RFC 2046 allows, not looked for), then the reply's text."""
    depth = 1000
    nested = "".join(
        f'Content-Type: multipart/mixed; boundary="x\\"y{i}"\r\n\r\n--x"y{i}\r\n'
        for i in range(depth)
    )
    message = (
        "From: Example User <test@example.com>\r\nTo: inbound@inbound.inbound.com\r\n"
        "Subject: Re: your balance\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n"
        f"--outer\r\n{nested}Content-Type: text/plain\r\n\r\nforwarded\r\n"
        "--outer\r\nContent-Type: text/plain\r\n\r\nSTOP\r\n--outer--\r\n"
    )
    event = _parse_raw(settings, client, clock, inbound_keys, message)
    assert (event.body, event.event_type) == ("STOP", EventType.OPTED_OUT)


def test_a_raw_mode_opt_out_whose_boundaries_are_all_missed_is_read_from_its_body_as_written(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, inbound_keys: EcdsaKeys
) -> None:
    """No piece of it can be parsed: its body is read as written, the lines that look like
    boundaries and the MIME headers after them dropped."""
    depth = 1000
    nested = "".join(
        f'Content-Type: multipart/mixed; boundary="x\\"y{i}"\r\n\r\n--x"y{i}\r\n'
        for i in range(depth)
    )
    ends = "".join(f'\r\n--x"y{i}--' for i in reversed(range(depth)))
    message = (
        "From: Example User <test@example.com>\r\nTo: inbound@inbound.inbound.com\r\n"
        f"Subject: Re: your balance\r\n{nested}Content-Type: text/plain\r\n\r\n"
        f"STOP\r\n\r\nSent from my phone{ends}\r\n"
    )
    event = _parse_raw(settings, client, clock, inbound_keys, message)
    assert (event.from_address, event.subject) == ("test@example.com", "Re: your balance")
    assert (event.body, event.event_type) == ("STOP\r\n\r\nSent from my phone", EventType.OPTED_OUT)


def test_a_field_in_a_charset_that_cannot_replace_what_it_fails_on_is_read_as_utf_8(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, inbound_keys: EcdsaKeys
) -> None:
    """The idna codec refuses errors="replace" (a UnicodeError, once a 400 on every
    retry); a charset name with a NUL in it is no charset either."""
    body = (
        _raw("inbound_default_data.crlf.multipart")
        .replace(b'"text":"UTF-8"', b'"text":"idna"')
        .replace(b'"subject":"UTF-8"', b'"subject":"utf-8\\u0000"')
        .replace(b"Hello Twilio SendGrid!", b"STOP \xe2\x80\x94 Fran\xe7ois")
        .replace(b"Testing non-raw", b"Re: balance \xe2\x80\x94 due")
    )
    request = _signed_inbound(body, inbound_keys)
    provider = email(settings, client, clock)
    provider.verify(request)
    (event,) = provider.parse(request)
    assert (event.body, event.subject) == ("STOP \u2014 Fran\ufffdois", "Re: balance \u2014 due")


def test_a_raw_mode_part_in_a_charset_that_cannot_replace_what_it_fails_on_is_read_as_utf_8(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, inbound_keys: EcdsaKeys
) -> None:
    body = (
        _raw("inbound_raw_data.crlf.multipart")
        .replace(b"text/plain; charset=UTF-8", b"text/plain; charset=idna")
        .replace(b"Hello Twilio SendGrid!\r\n\r\n--", b"STOP\r\n\r\nFran\xe7ois\r\n\r\n--")
    )
    request = _signed_inbound(body, inbound_keys)
    provider = email(settings, client, clock)
    provider.verify(request)
    (event,) = provider.parse(request)
    assert (event.body, event.event_type) == ("STOP\r\n\r\nFran\ufffdois", EventType.OPTED_OUT)


def test_markup_nested_beyond_a_mails_is_read_flat_and_quickly() -> None:
    """Nesting built to slow the block-by-block reading (whose tree building grows faster
    than the input) is read flat: the words are all there, on one line."""
    html = "<p>STOP</p>" + "<div>" * 200_000 + "deep words" + "</div>" * 200_000
    text = _html_text(html)
    assert text.startswith("STOP") and "deep words" not in text  # past the part read
    assert _html_text("<p>STOP</p>" + "<div>" * 20_000 + "x") == "STOP x"


def test_html_the_stdlibs_parser_fails_on_gives_the_words_before_it(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, inbound_keys: EcdsaKeys
) -> None:
    """A marked section of an unknown keyword (which made the stdlib's HTMLParser assert)
    is read as a browser reads it."""
    body = (
        _raw("inbound_default_data.crlf.multipart")
        .replace(b"Hello Twilio SendGrid!\r\n", b"")
        .replace(b"<strong>Hello Twilio SendGrid!", b"<p>STOP</p><![x]y")
    )
    request = _signed_inbound(body, inbound_keys)
    provider = email(settings, client, clock)
    provider.verify(request)
    (event,) = provider.parse(request)
    assert (event.body, event.event_type) == ("STOP", EventType.OPTED_OUT)


def test_a_message_that_cannot_be_read_is_read_from_the_form_fields_and_not_logged(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    inbound_keys: EcdsaKeys,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The last resort, for a failure nobody foresaw: what the fields say is stored, and
    the opt-out honoured, rather than a post refused on every retry."""

    def fails(*_args: object, **_kwargs: object) -> None:
        raise AttributeError("'str' object has no attribute 'value': test@example.com STOP")

    monkeypatch.setattr("outreach.providers.inbound_email._header", fails)
    body = _raw("inbound_default_data.crlf.multipart").replace(b"Hello Twilio SendGrid!", b"STOP")
    request = _signed_inbound(body, inbound_keys)
    provider = email(settings, client, clock)
    provider.verify(request)
    (event,) = provider.parse(request)
    assert (event.from_address, event.to_address) == (
        "test@example.com", "inbound@inbound.example.com",
    )  # fmt: skip
    assert (event.subject, event.body) == ("Testing non-raw", "STOP")
    assert (event.event_type, event.suppression) == (EventType.OPTED_OUT, "unsubscribe")
    assert event.payload["SPF"] == "pass"
    assert "AttributeError" in caplog.text
    assert "test@example.com" not in caplog.text and "STOP" not in caplog.text


def test_a_raw_mode_message_that_cannot_be_read_is_read_from_its_body_as_written(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    inbound_keys: EcdsaKeys,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Raw mode posts no text field: the last resort takes the first plain text the raw
    message's body holds as written, rather than nothing (a STOP stored as a reply)."""

    def fails(*_args: object, **_kwargs: object) -> None:
        raise AttributeError("'str' object has no attribute 'value': test@example.com STOP")

    monkeypatch.setattr("outreach.providers.inbound_email._header", fails)
    body = _raw("inbound_raw_data.crlf.multipart").replace(
        b"Hello Twilio SendGrid!\r\n\r\n--", b"STOP\r\n\r\nSent from my phone\r\n\r\n--"
    )
    request = _signed_inbound(body, inbound_keys)
    provider = email(settings, client, clock)
    provider.verify(request)
    (event,) = provider.parse(request)
    assert event.from_address == "test@example.com"
    assert (event.body, event.event_type) == ("STOP\r\n\r\nSent from my phone", EventType.OPTED_OUT)
    assert "test@example.com" not in caplog.text and "STOP" not in caplog.text


@pytest.mark.parametrize(
    ("payload", "text"),
    [
        ("inbound_raw_data.crlf.multipart", b"Hello Twilio SendGrid!\r\n\r\n--"),
        ("inbound_default_data.crlf.multipart", b"Hello Twilio SendGrid!\r\n"),
    ],
)
def test_two_messages_read_from_the_form_fields_alone_are_no_duplicates_but_a_redelivery_is(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    inbound_keys: EcdsaKeys,
    monkeypatch: pytest.MonkeyPatch,
    payload: str,
    text: bytes,
) -> None:
    """With no Message-ID read, two mails from one sender with one subject and one text
    (two STOPs, a day apart) were merged as one; the message as posted tells them apart."""

    def fails(*_args: object, **_kwargs: object) -> None:
        raise AttributeError("'str' object has no attribute 'value'")

    monkeypatch.setattr("outreach.providers.inbound_email._header", fails)
    first = _raw(payload).replace(text, text.replace(b"Hello Twilio SendGrid!", b"STOP"))
    second = first.replace(b"Date: Wed, 10 Aug 2016", b"Date: Thu, 11 Aug 2016")
    assert second != first
    provider = email(settings, client, clock)
    keys = []
    for body in (first, second, first):
        request = _signed_inbound(body, inbound_keys)
        provider.verify(request)
        (event,) = provider.parse(request)
        assert (event.body, event.event_type) == ("STOP", EventType.OPTED_OUT)
        keys.append(event.dedupe_key)
    assert keys[0] != keys[1] and keys[0] == keys[2]


def test_a_form_with_a_file_name_the_header_parser_fails_on_is_read(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, inbound_keys: EcdsaKeys
) -> None:
    """An attachment's file name comes from the sender's mail; ``filename*="''"`` makes
    the modern header parser raise IndexError, the legacy one reads the form."""
    attachment = (
        b'--xYzZY\r\nContent-Disposition: form-data; name="attachment1"; '
        b"filename*=\"''\"\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8\r\n"
    )
    body = attachment + _raw("inbound_default_data.crlf.multipart").replace(
        b"Hello Twilio SendGrid!", b"STOP"
    )
    request = _signed_inbound(body, inbound_keys)
    provider = email(settings, client, clock)
    provider.verify(request)
    (event,) = provider.parse(request)
    assert (event.from_address, event.body) == ("test@example.com", "STOP")
    assert event.event_type is EventType.OPTED_OUT
    assert "attachment1" not in event.payload


def test_a_form_nested_deeper_than_the_parser_recurses_is_refused_as_no_form(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, inbound_keys: EcdsaKeys
) -> None:
    """SendGrid posts no such form: a 400 (the parser's RecursionError was a 500)."""
    boundaries = ["xYzZY", *(f"b{i}" for i in range(1000))]
    body = "".join(
        f"--{outer}\r\nContent-Type: multipart/mixed; boundary={inner}\r\n\r\n"
        for outer, inner in itertools.pairwise(boundaries)
    ).encode()
    request = _signed_inbound(body, inbound_keys)
    provider = email(settings, client, clock)
    provider.verify(request)
    with pytest.raises(WebhookRejected, match="multipart body could not be read"):
        provider.parse(request)


@pytest.mark.parametrize(
    "payload", ["inbound_default_data.crlf.multipart", "inbound_raw_data.crlf.multipart"]
)
@pytest.mark.parametrize(
    ("sender", "envelope_sender", "found"),
    [
        # A display name with an unquoted comma, as some mailers write it.
        (b"User, Example <test@example.com>", b"test@example.com", "test@example.com"),
        (b"User, Example <Test@Example.com>", b"bounces@relay.example.net", "test@example.com"),
        # No address in the header: the envelope's sender.
        (b"Example User", b"test@example.com", "test@example.com"),
    ],
)
def test_the_sender_is_the_address_the_from_header_names(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    inbound_keys: EcdsaKeys,
    payload: str,
    sender: bytes,
    envelope_sender: bytes,
    found: str,
) -> None:
    body = (
        _raw(payload)
        .replace(b"Example User <test@example.com>", sender)
        .replace(b'"from":"test@example.com"', b'"from":"' + envelope_sender + b'"')
    )
    request = _signed_inbound(body, inbound_keys)
    provider = email(settings, client, clock)
    provider.verify(request)
    (event,) = provider.parse(request)
    assert (event.from_address, event.channel) == (found, "email")


@pytest.mark.parametrize(
    ("text", "event_type"),
    [
        (b"Yes", EventType.OPTED_IN),
        (b"START\r\n\r\nOn Mon, Nov 2, 2026 Acme wrote:\r\n> Reply STOP", EventType.OPTED_IN),
        # An opt-in is the whole reply: "Yes." and then more answers something else.
        (b"Yes.\r\nCan someone call me tomorrow?", EventType.REPLIED),
        (b"Yes please call me", EventType.REPLIED),
        # An opt-out may stand on the first line, a mail client's words after it.
        (b"STOP\r\nSent from my iPhone", EventType.OPTED_OUT),
        (b"Unsubscribe\r\nI paid already", EventType.OPTED_OUT),
    ],
)
def test_an_email_reply_is_a_keyword_as_its_whole_text_says(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    inbound_keys: EcdsaKeys,
    text: bytes,
    event_type: EventType,
) -> None:
    body = _raw("inbound_default_data.crlf.multipart").replace(
        b"\r\n\r\nHello Twilio SendGrid!", b"\r\n\r\n" + text
    )
    request = _signed_inbound(body, inbound_keys)
    provider = email(settings, client, clock)
    provider.verify(request)
    (event,) = provider.parse(request)
    assert event.event_type == event_type


@pytest.mark.parametrize(
    ("subject", "event_type"),
    [
        (b"STOP", EventType.OPTED_OUT),
        (b"Re: STOP", EventType.OPTED_OUT),
        (b"RE: Fwd: unsubscribe", EventType.OPTED_OUT),
        (b"Re: Your balance", EventType.REPLIED),
    ],
)
def test_an_email_with_no_text_is_a_keyword_as_its_subject_says(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    inbound_keys: EcdsaKeys,
    subject: bytes,
    event_type: EventType,
) -> None:
    """A reply's prefixes are the mail client's, not the sender's words."""
    body = (
        _raw("inbound_default_data.crlf.multipart")
        .replace(b"Hello Twilio SendGrid!", b"")
        .replace(b"Testing non-raw", subject)
    )
    request = _signed_inbound(body, inbound_keys)
    provider = email(settings, client, clock)
    provider.verify(request)
    (event,) = provider.parse(request)
    assert (event.body, event.event_type) == ("", event_type), event.subject


def test_one_click_unsubscribe(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    provider = email(settings, client, clock)
    token = unsubscribe_token(SECRET_KEY, 9)
    url = f"{PUBLIC}/webhooks/sendgrid_email/unsubscribe?attempt_id=9&token={token}"
    request = WebhookRequest(
        "POST", url, {"Content-Type": "application/x-www-form-urlencoded"},
        b"List-Unsubscribe=One-Click",
    )  # fmt: skip
    provider.verify(request)
    (event,) = provider.parse(request)
    assert (event.event_type, event.attempt_id, event.suppression) == (
        EventType.UNSUBSCRIBED, 9, "unsubscribe",
    )  # fmt: skip
    with pytest.raises(WebhookRejected):
        provider.verify(replace(request, url=url.replace("attempt_id=9", "attempt_id=10")))


def test_each_one_click_post_is_an_event_of_its_own(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    """The POST carries nothing but the URL: a second press, after a resubscribe or not, is
    known from a retry by nothing, and each is its own event (by when it came)."""
    provider = email(settings, client, clock)
    token = unsubscribe_token(SECRET_KEY, 9)
    url = f"{PUBLIC}/webhooks/sendgrid_email/unsubscribe?attempt_id=9&token={token}"
    request = WebhookRequest(
        "POST", url, {"Content-Type": "application/x-www-form-urlencoded"},
        b"List-Unsubscribe=One-Click",
    )  # fmt: skip
    (first,) = provider.parse(request)
    clock.advance(timedelta(minutes=2))
    (second,) = provider.parse(request)
    assert (first.occurred_at, second.occurred_at) == (NOW, NOW + timedelta(minutes=2))
    assert first.dedupe_key != second.dedupe_key


def _payload(name: str) -> bytes:
    return json.dumps(load_json(f"sendgrid/{name}")).encode()


def _raw(name: str) -> bytes:
    return (PAYLOADS / "sendgrid" / name).read_bytes()


def _form(fields: dict[str, str]) -> bytes:
    """An Inbound Parse multipart body of ``fields``."""
    parts = [
        f'--xYzZY\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    return ("".join(parts) + "--xYzZY--\r\n").encode()


def _parse_raw(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    keys: EcdsaKeys,
    message: str,
) -> ProviderEvent:
    """The event a signed raw-mode post of ``message`` becomes."""
    body = _form({"email": message, "envelope": '{"to":["inbound@inbound.inbound.com"]}'})
    request = _signed_inbound(body, keys)
    provider = email(settings, client, clock)
    provider.verify(request)
    (event,) = provider.parse(request)
    return event


def _signed_inbound(body: bytes, keys: EcdsaKeys) -> WebhookRequest:
    return WebhookRequest(
        "POST",
        f"{PUBLIC}/webhooks/sendgrid_email/inbound",
        {
            "Content-Type": "multipart/form-data; boundary=xYzZY",
            "X-Twilio-Email-Event-Webhook-Signature": keys.sign(NOW_EPOCH, body),
            "X-Twilio-Email-Event-Webhook-Timestamp": NOW_EPOCH,
        },
        body,
    )
