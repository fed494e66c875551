from __future__ import annotations

import base64
import json
from urllib.parse import parse_qsl

import httpx
import pytest
import respx
from pydantic import SecretStr
from twilio.request_validator import RequestValidator

from outreach.channels import SmsChannel
from outreach.clock import FixedClock
from outreach.config import Settings
from outreach.errors import ChannelError, WebhookRejected
from outreach.providers.base import EventType, OutboundMessage, WebhookRequest
from outreach.providers.twilio_sms import TwilioSms
from tests.providers.conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PUBLIC,
    load_json,
    signed_form,
    twilio_request,
)

pytestmark = pytest.mark.anyio

MESSAGES = f"https://twilio.test/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
# The Messages create parameters Twilio's api v2010 OpenAPI document lists.
DOCUMENTED = {
    "To", "StatusCallback", "ApplicationSid", "MaxPrice", "ProvideFeedback", "Attempt",
    "ValidityPeriod", "ForceDelivery", "ContentRetention", "AddressRetention", "SmartEncoded",
    "PersistentAction", "TrafficType", "ShortenUrls", "ScheduleType", "SendAt", "SendAsMms",
    "ContentVariables", "RiskCheck", "From", "FallbackFrom", "MessagingServiceSid", "Body",
    "MediaUrl", "ContentSid",
}  # fmt: skip
MESSAGE = OutboundMessage(7, "acct-1:step-1:sms", "sms", "+16175550199", "Your balance is due.")


def sms(settings: Settings, client: httpx.AsyncClient, clock: FixedClock) -> TwilioSms:
    return TwilioSms(settings, client, clock, SmsChannel())


def sent_form(router: respx.MockRouter) -> dict[str, str]:
    return dict(parse_qsl(router.calls.last.request.content.decode()))


async def test_send_posts_the_documented_form(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, router: respx.MockRouter
) -> None:
    router.post(MESSAGES).respond(201, json=load_json("rest/twilio_message_created.json"))
    result = await sms(settings, client, clock).send(MESSAGE)
    assert result.provider_message_id == "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    assert result.status is EventType.QUEUED
    form = sent_form(router)
    assert set(form) <= DOCUMENTED
    assert form == {
        "To": "+16175550199",
        "Body": "Your balance is due.",
        "From": "+16175550100",
        "StatusCallback": f"{PUBLIC}/webhooks/twilio_sms/status?attempt_id=7",
    }
    request = router.calls.last.request
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    user, token = base64.b64decode(request.headers["Authorization"][6:]).decode().split(":")
    assert (user, token) == (ACCOUNT_SID, AUTH_TOKEN)


async def test_a_messaging_service_and_an_api_key(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, router: respx.MockRouter
) -> None:
    keyed = settings.model_copy(
        update={
            "twilio_messaging_service_sid": "MG" + "d" * 32,
            "twilio_api_key_sid": "SK" + "e" * 32,
            "twilio_api_key_secret": SecretStr("key-secret"),
        }
    )
    router.post(MESSAGES).respond(201, json=load_json("rest/twilio_message_created.json"))
    provider = sms(keyed, client, clock)
    await provider.send(MESSAGE)
    form = sent_form(router)
    assert form["MessagingServiceSid"] == "MG" + "d" * 32
    assert "From" not in form
    assert provider.sender(MESSAGE) == "MG" + "d" * 32
    authorization = router.calls.last.request.headers["Authorization"]
    assert base64.b64decode(authorization[6:]).decode() == "SK" + "e" * 32 + ":key-secret"


@pytest.mark.parametrize(
    ("status", "code", "retryable", "ambiguous", "suppression", "contact_status"),
    [
        (400, "21211", False, False, None, "invalid"),
        (400, "21610", False, False, "stop", None),
        (400, "21614", False, False, None, "invalid"),
        (400, "21617", False, False, None, None),
        (401, "20003", True, False, None, None),  # our credentials: every message waits
        (429, "20429", True, False, None, None),
        # Twilio: a 500 may have sent the message; a 503 is safe to retry with backoff.
        (500, "20500", False, True, None, None),
        (503, "20503", True, False, None, None),
    ],
)
async def test_error_codes_are_classified(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    router: respx.MockRouter,
    status: int,
    code: str,
    retryable: bool,
    ambiguous: bool,
    suppression: str | None,
    contact_status: str | None,
) -> None:
    router.post(MESSAGES).respond(status, json=load_json("rest/twilio_errors.json")[code])
    with pytest.raises(ChannelError) as raised:
        await sms(settings, client, clock).send(MESSAGE)
    error = raised.value
    assert (error.retryable, error.ambiguous) == (retryable, ambiguous)
    assert error.outage == (code == "20003")
    assert (error.code, error.status_code) == (code, status)
    assert (error.suppression, error.contact_status) == (suppression, contact_status)
    # Twilio's own words may quote the number: kept as detail, out of the message.
    assert error.detail
    assert "+1555000" not in str(error)


# Twilio's refusals of our sender: TWILIO_FROM_NUMBER mistyped or not SMS-capable (21212,
# 21601), or TWILIO_MESSAGING_SERVICE_SID naming no usable Messaging Service (21701, 21704,
# 21705). Every text would be refused alike.
SENDER_REFUSED = ["21212", "21601", "21701", "21704", "21705"]
# Refusals of our sender that also come for one destination it cannot reach (a short code
# of another country): the text is tried again, each try counted, and nothing else waits.
SENDER_OR_DESTINATION = ["21606", "21659", "21703"]


@pytest.mark.parametrize("code", SENDER_REFUSED)
async def test_a_sender_refused_by_twilio_is_our_setting_and_holds_the_text(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    router: respx.MockRouter,
    code: str,
) -> None:
    router.post(MESSAGES).respond(400, json=load_json("rest/twilio_errors.json")[code])
    with pytest.raises(ChannelError) as raised:
        await sms(settings, client, clock).send(MESSAGE)
    error = raised.value
    assert (error.retryable, error.outage, error.ambiguous) == (True, True, False)
    assert (error.code, error.status_code) == (code, 400)
    # Nothing about the recipient: no suppression, the number stays as it is.
    assert (error.suppression, error.contact_status) == (None, None)
    assert "TWILIO_FROM_NUMBER" in str(error) or "TWILIO_MESSAGING_SERVICE_SID" in str(error)
    assert "+1617555" not in str(error)


@pytest.mark.parametrize("code", SENDER_OR_DESTINATION)
async def test_a_sender_refused_for_one_destination_is_tried_again_as_the_messages_own(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    router: respx.MockRouter,
    code: str,
) -> None:
    router.post(MESSAGES).respond(400, json=load_json("rest/twilio_errors.json")[code])
    with pytest.raises(ChannelError) as raised:
        await sms(settings, client, clock).send(MESSAGE)
    error = raised.value
    assert (error.retryable, error.outage, error.ambiguous) == (True, False, False)
    assert (error.suppression, error.contact_status) == (None, None)
    assert "if every text is refused" in str(error)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirected_message_post_holds_the_text_until_the_base_url_is_fixed(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    router: respx.MockRouter,
    status: int,
) -> None:
    router.post(MESSAGES).respond(status, headers={"Location": MESSAGES})
    with pytest.raises(ChannelError) as raised:
        await sms(settings, client, clock).send(MESSAGE)
    error = raised.value
    assert (error.retryable, error.outage, error.ambiguous) == (True, True, False)
    assert router.calls.call_count == 1  # the redirect is not followed


async def test_a_see_other_after_the_message_post_holds_it_for_review(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, router: respx.MockRouter
) -> None:
    router.post(MESSAGES).respond(303, headers={"Location": MESSAGES})
    with pytest.raises(ChannelError) as raised:
        await sms(settings, client, clock).send(MESSAGE)
    assert (raised.value.retryable, raised.value.ambiguous) == (False, True)


async def test_429_honours_retry_after(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, router: respx.MockRouter
) -> None:
    body = load_json("rest/twilio_errors.json")["20429"]
    router.post(MESSAGES).respond(429, json=body, headers={"Retry-After": "7"})
    with pytest.raises(ChannelError) as raised:
        await sms(settings, client, clock).send(MESSAGE)
    assert raised.value.retryable
    assert raised.value.retry_after == 7


@pytest.mark.parametrize(
    ("failure", "retryable", "ambiguous"),
    [
        (httpx.ConnectError("refused"), True, False),
        (httpx.ConnectTimeout("slow connect"), True, False),
        (httpx.PoolTimeout("pool"), True, False),
        (httpx.ReadTimeout("slow answer"), False, True),
        (httpx.ReadError("reset"), False, True),
        (httpx.RemoteProtocolError("closed"), False, True),
        (httpx.WriteError("broken pipe"), False, True),
    ],
)
async def test_transport_failures_say_whether_the_request_left(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    router: respx.MockRouter,
    failure: Exception,
    retryable: bool,
    ambiguous: bool,
) -> None:
    router.post(MESSAGES).mock(side_effect=failure)
    with pytest.raises(ChannelError) as raised:
        await sms(settings, client, clock).send(MESSAGE)
    assert (raised.value.retryable, raised.value.ambiguous) == (retryable, ambiguous)


async def test_a_created_message_in_another_unicode_encoding_is_read(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, router: respx.MockRouter
) -> None:
    # JSON may come in UTF-16 as well as UTF-8 (RFC 8259 says UTF-8; httpx reads both).
    created = load_json("rest/twilio_message_created.json")
    body = json.dumps(created).encode("utf-16")
    router.post(MESSAGES).respond(201, content=body, headers={"Content-Type": "application/json"})
    result = await sms(settings, client, clock).send(MESSAGE)
    assert result.provider_message_id == created["sid"]


async def test_a_success_without_a_sid_is_ambiguous(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, router: respx.MockRouter
) -> None:
    router.post(MESSAGES).respond(201, text="<html>gateway</html>")
    with pytest.raises(ChannelError) as raised:
        await sms(settings, client, clock).send(MESSAGE)
    assert raised.value.ambiguous and not raised.value.retryable


@pytest.mark.parametrize(
    ("payload", "event_type", "error_code", "contact_status", "outcome"),
    [
        ("sms_status_sent.json", EventType.SENT, None, None, None),
        ("sms_status_delivered.json", EventType.DELIVERED, None, None, "delivered"),
        ("sms_status_undelivered_30007.json", EventType.UNDELIVERED, "30007", None, "failed"),
        ("sms_status_failed_30008.json", EventType.FAILED, "30008", None, "failed"),
    ],
)
def test_status_callbacks(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    payload: str,
    event_type: EventType,
    error_code: str | None,
    contact_status: str | None,
    outcome: str | None,
) -> None:
    provider = sms(settings, client, clock)
    request = twilio_request(payload)
    provider.verify(request)
    (event,) = provider.parse(request)
    assert event.kind == "message_status"
    assert event.event_type is event_type
    assert event.provider_message_id == "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    assert event.attempt_id == 42  # from our StatusCallback URL, signed with it
    assert (event.error_code, event.contact_status, event.outcome) == (
        error_code, contact_status, outcome,
    )  # fmt: skip
    assert event.payload["FutureParameter"] == "added-later"
    assert event.occurred_at == clock.now()


def test_a_callback_error_code_that_means_the_number_cannot_receive(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    request = twilio_request("sms_status_undelivered_30007.json", changes={"ErrorCode": "30006"})
    (event,) = sms(settings, client, clock).parse(request)
    assert event.contact_status == "invalid"


@pytest.mark.parametrize(
    ("body", "opt_out_type", "event_type", "suppression"),
    [
        ("Ahoy", None, EventType.REPLIED, None),
        ("I'll pay Friday", None, EventType.REPLIED, None),
        ("STOP", "STOP", EventType.OPTED_OUT, "stop"),
        (" stop. ", None, EventType.OPTED_OUT, "stop"),
        ("Unsubscribe", None, EventType.OPTED_OUT, "stop"),
        ("OptOut", None, EventType.OPTED_OUT, "stop"),
        ("revoke", None, EventType.OPTED_OUT, "stop"),
        # Twilio's keywords are single words: these it neither answers nor blocks.
        ("Opt out", None, EventType.REPLIED, None),
        ("opt-out", None, EventType.REPLIED, None),
        ("start", None, EventType.OPTED_IN, None),
        ("HELP", None, EventType.HELP_REQUESTED, None),
        ("please stop calling me at work", None, EventType.REPLIED, None),
    ],
)
def test_inbound_messages(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    body: str,
    opt_out_type: str | None,
    event_type: EventType,
    suppression: str | None,
) -> None:
    payload = "inbound_sms_optout_stop.json" if opt_out_type else "inbound_sms.json"
    request = twilio_request(payload, changes={"Body": body})
    provider = sms(settings, client, clock)
    provider.verify(request)
    (event,) = provider.parse(request)
    assert event.kind == "inbound"
    assert (event.event_type, event.suppression) == (event_type, suppression)
    assert (event.from_address, event.to_address, event.body) == (
        "+15017122661", "+15558675310", body,
    )  # fmt: skip
    assert event.attempt_id is None


def test_signature_over_a_url_with_a_query_and_a_port_behind_a_proxy(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    public = "https://outreach.example.com:8443/app"
    provider = sms(settings.model_copy(update={"public_base_url": public}), client, clock)
    params = [("MessageSid", "SM1"), ("MessageStatus", "sent"), ("To", "+16175550199")]
    signed = signed_form(f"{public}/webhooks/twilio_sms/status?attempt_id=5&x=1", params)
    # The web layer behind the proxy sees its own scheme, host, port and path.
    seen = WebhookRequest(
        "POST", "http://127.0.0.1:8000/webhooks/twilio_sms/status?attempt_id=5&x=1",
        signed.headers, signed.body,
    )  # fmt: skip
    provider.verify(seen)
    assert provider.parse(seen)[0].attempt_id == 5
    with pytest.raises(WebhookRejected):
        provider.verify(
            WebhookRequest("POST", seen.url.replace("attempt_id=5", "attempt_id=6"),
                           seen.headers, seen.body)
        )  # fmt: skip


@pytest.mark.parametrize(
    "signed_url",
    [
        "https://outreach.example.com/webhooks/twilio_sms/status?attempt_id=5",
        "https://outreach.example.com:443/webhooks/twilio_sms/status?attempt_id=5",
    ],
)
def test_twilio_may_sign_with_or_without_the_default_port(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, signed_url: str
) -> None:
    signed = signed_form(signed_url, [("MessageSid", "SM1"), ("MessageStatus", "sent")])
    request = WebhookRequest(
        "POST", f"{PUBLIC}/webhooks/twilio_sms/status?attempt_id=5", signed.headers, signed.body
    )
    sms(settings, client, clock).verify(request)


def test_repeated_keys_are_all_signed(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    params = [("MessageSid", "SM1"), ("MessageStatus", "sent"), ("Tag", "b"), ("Tag", "a")]
    request = signed_form(f"{PUBLIC}/webhooks/twilio_sms/status", params)
    provider = sms(settings, client, clock)
    provider.verify(request)
    assert provider.parse(request)[0].payload["Tag"] == ["b", "a"]
    dropped = signed_form(f"{PUBLIC}/webhooks/twilio_sms/status", params[:3])
    with pytest.raises(WebhookRejected):
        provider.verify(WebhookRequest("POST", request.url, dropped.headers, request.body))


def test_twilio_published_vector_passes_our_check(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    """twilio-python's own RequestValidator test case, through our verify."""
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": "CA1234567890ABCDE", "Caller": "+14158675309", "Digits": "1234",
        "From": "+14158675309", "To": "+18005551212",
    }  # fmt: skip
    provider = sms(
        settings.model_copy(
            update={
                "twilio_auth_token": SecretStr("12345"),
                "public_base_url": "https://mycompany.com",
            }
        ),
        client,
        clock,
    )
    request = WebhookRequest(
        "POST", url, {"X-Twilio-Signature": "RSOYDt4T1cUTdK1PDd93/VVr8B8="},
        b"", form=list(params.items()),
    )  # fmt: skip
    provider.verify(request)


def json_request(query: str, body: bytes, signature: str) -> WebhookRequest:
    return WebhookRequest(
        "POST",
        f"{PUBLIC}/webhooks/twilio_sms/status?{query}",
        {"Content-Type": "application/json", "X-Twilio-Signature": signature},
        body,
    )


def test_a_json_body_is_signed_through_its_hash_in_the_url(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    body = b'{"MessageStatus": "delivered"}'
    validator = RequestValidator(AUTH_TOKEN)
    query = f"attempt_id=5&bodySHA256={validator.compute_hash(body.decode())}"
    signature = validator.compute_signature(f"{PUBLIC}/webhooks/twilio_sms/status?{query}", {})
    provider = sms(settings, client, clock)
    provider.verify(json_request(query, body, signature))
    with pytest.raises(WebhookRejected):
        provider.verify(json_request(query, body.replace(b"delivered", b"failed"), signature))


@pytest.mark.parametrize("query", ["bodySHA256=", "attempt_id=5&bodySHA256=&x=1"])
def test_an_empty_body_hash_is_refused(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, query: str
) -> None:
    # The SDK's validator reads an empty hash as none, and would take the JSON for fields.
    body = b'{"MessageStatus": "delivered"}'
    signature = RequestValidator(AUTH_TOKEN).compute_signature(
        f"{PUBLIC}/webhooks/twilio_sms/status?{query}", {}
    )
    with pytest.raises(WebhookRejected, match="bodySHA256"):
        sms(settings, client, clock).verify(json_request(query, body, signature))


def test_without_an_auth_token_nothing_is_accepted(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    keyed = settings.model_copy(
        update={
            "twilio_auth_token": None,
            "twilio_api_key_sid": "SK" + "e" * 32,
            "twilio_api_key_secret": SecretStr("key-secret"),
        }
    )
    with pytest.raises(WebhookRejected, match="TWILIO_AUTH_TOKEN"):
        sms(keyed, client, clock).verify(twilio_request("sms_status_sent.json"))
