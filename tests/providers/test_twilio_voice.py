from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from outreach.channels import VoiceChannel
from outreach.clock import FixedClock
from outreach.config import Settings
from outreach.errors import ChannelError
from outreach.providers.base import EventType, OutboundMessage
from outreach.providers.twilio_voice import TwilioVoice
from tests.providers.conftest import ACCOUNT_SID, PUBLIC, load_json, twilio_request

pytestmark = pytest.mark.anyio

CALLS = f"https://twilio.test/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"
# The Calls create parameters Twilio's api v2010 OpenAPI document lists.
DOCUMENTED = {
    "To", "From", "Method", "FallbackUrl", "FallbackMethod", "StatusCallback",
    "StatusCallbackEvent", "StatusCallbackMethod", "SendDigits", "Timeout", "Record",
    "RecordingChannels", "RecordingStatusCallback", "RecordingStatusCallbackMethod",
    "SipAuthUsername", "SipAuthPassword", "MachineDetection", "MachineDetectionTimeout",
    "RecordingStatusCallbackEvent", "Trim", "CallerId", "MachineDetectionSpeechThreshold",
    "MachineDetectionSpeechEndThreshold", "MachineDetectionSilenceTimeout", "AsyncAmd",
    "AsyncAmdStatusCallback", "AsyncAmdStatusCallbackMethod", "Byoc", "CallReason",
    "CallToken", "RecordingTrack", "TimeLimit", "ClientNotificationUrl", "Url", "Twiml",
    "ApplicationSid",
}  # fmt: skip
HUMAN = "Hello, this is Acme about your account ending 4411, balance $120.00."
VOICEMAIL = "This is Jane from Acme. Please call us at 617-555-0100."
CALL = OutboundMessage(
    8, "acct-1:step-2:voice", "voice", "+16175550199", HUMAN, voicemail=VOICEMAIL
)


def voice(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, **config: object
) -> TwilioVoice:
    return TwilioVoice(settings, client, clock, VoiceChannel.model_validate(config))


async def test_url_mode_lets_twilio_detect_a_machine_before_fetching_twiml(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, router: respx.MockRouter
) -> None:
    router.post(CALLS).respond(201, json=load_json("rest/twilio_call_created.json"))
    result = await voice(settings, client, clock).send(CALL)
    assert result.provider_message_id == "CAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    form = parse_qs(router.calls.last.request.content.decode())
    assert set(form) <= DOCUMENTED
    assert form["Url"] == [f"{PUBLIC}/webhooks/twilio_voice/twiml?attempt_id=8"]
    assert form["MachineDetection"] == ["DetectMessageEnd"]
    assert form["StatusCallback"] == [f"{PUBLIC}/webhooks/twilio_voice/status?attempt_id=8"]
    assert form["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert (form["To"], form["From"]) == (["+16175550199"], ["+16175550100"])
    assert "Twiml" not in form and "AsyncAmd" not in form


async def test_inline_mode_carries_only_the_voicemail(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, router: respx.MockRouter
) -> None:
    router.post(CALLS).respond(201, json=load_json("rest/twilio_call_created.json"))
    await voice(settings, client, clock, twiml_mode="inline").send(CALL)
    form = parse_qs(router.calls.last.request.content.decode())
    assert set(form) <= DOCUMENTED
    (twiml,) = form["Twiml"]
    assert VOICEMAIL in twiml and "4411" not in twiml
    assert form["AsyncAmd"] == ["true"]
    assert form["AsyncAmdStatusCallback"] == [f"{PUBLIC}/webhooks/twilio_voice/amd?attempt_id=8"]
    assert "Url" not in form


async def test_a_call_needs_a_voicemail(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    without = OutboundMessage(8, "k", "voice", "+16175550199", HUMAN)
    with pytest.raises(ChannelError, match="voicemail"):
        await voice(settings, client, clock).send(without)


@pytest.mark.parametrize(
    ("answered_by", "hears_full_message"),
    [
        ("human", True),
        ("machine_end_beep", False),
        ("machine_end_silence", False),
        ("machine_start", False),
        ("unknown", False),
        (None, False),
    ],
)
def test_a_person_hears_the_message_and_a_machine_only_the_voicemail(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    answered_by: str | None,
    hears_full_message: bool,
) -> None:
    twiml = voice(settings, client, clock).answer_twiml(answered_by, HUMAN, VOICEMAIL)
    assert twiml.startswith("<?xml") and "<Say" in twiml and "<Hangup" in twiml
    assert ("4411" in twiml) is hears_full_message
    assert (VOICEMAIL in twiml) is not hears_full_message


def test_a_fax_gets_nothing(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    twiml = voice(settings, client, clock).answer_twiml("fax", HUMAN, VOICEMAIL)
    assert "<Say" not in twiml and "<Hangup" in twiml


async def test_update_call_replaces_what_a_live_call_plays(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, router: respx.MockRouter
) -> None:
    sid = "CA" + "a" * 32
    route = router.post(CALLS.replace("Calls.json", f"Calls/{sid}.json")).respond(
        200, json=load_json("rest/twilio_call_created.json")
    )
    await voice(settings, client, clock).update_call(sid, "<Response><Say>hi</Say></Response>")
    assert parse_qs(route.calls.last.request.content.decode()) == {
        "Twiml": ["<Response><Say>hi</Say></Response>"]
    }


@pytest.mark.parametrize(
    ("payload", "kind", "event_type", "outcome"),
    [
        ("voice_status_completed_human.json", "call_status", EventType.COMPLETED, "conversation"),
        ("voice_status_no_answer.json", "call_status", EventType.NO_ANSWER, "no_answer"),
        ("voice_status_busy.json", "call_status", EventType.BUSY, "busy"),
        ("voice_status_failed.json", "call_status", EventType.FAILED, "failed"),
        ("voice_status_canceled.json", "call_status", EventType.FAILED, "failed"),
        ("voice_amd_async_machine_end_beep.json", "amd", EventType.ANSWERED_MACHINE, None),
        ("voice_twiml_fetch_answered_machine.json", "twiml", EventType.ANSWERED_MACHINE, None),
    ],
)
def test_call_webhooks(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    payload: str,
    kind: str,
    event_type: EventType,
    outcome: str | None,
) -> None:
    provider = voice(settings, client, clock)
    request = twilio_request(payload)
    provider.verify(request)
    (event,) = provider.parse(request)
    assert (event.kind, event.event_type, event.outcome) == (kind, event_type, outcome)
    assert event.provider_message_id == "CAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    assert event.attempt_id == 42
    assert event.payload["FutureParameter"] == "added-later"


def test_progress_events_carry_their_timestamp(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    (event,) = voice(settings, client, clock).parse(twilio_request("voice_status_busy.json"))
    assert event.occurred_at == datetime(2023, 8, 10, 22, 23, 41, tzinfo=UTC)


@pytest.mark.parametrize(
    ("call_status", "answered_by", "event_type", "outcome"),
    [
        ("in-progress", "human", EventType.ANSWERED_HUMAN, None),
        ("in-progress", "machine_end_beep", EventType.ANSWERED_MACHINE, None),
        ("ringing", "", EventType.SENT, None),
        ("completed", "machine_end_beep", EventType.COMPLETED, "limited_content_message"),
        ("completed", "machine_start", EventType.COMPLETED, "voicemail"),
        ("completed", "fax", EventType.COMPLETED, "failed"),
    ],
)
def test_answering_machine_results_shape_the_outcome(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    call_status: str,
    answered_by: str,
    event_type: EventType,
    outcome: str | None,
) -> None:
    request = twilio_request(
        "voice_status_completed_human.json",
        changes={"CallStatus": call_status, "AnsweredBy": answered_by},
    )
    (event,) = voice(settings, client, clock).parse(request)
    assert (event.event_type, event.outcome) == (event_type, outcome)


def test_the_same_progress_event_twice_has_one_key_and_each_status_its_own(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    provider = voice(settings, client, clock)
    keys = {
        provider.parse(twilio_request("voice_status_completed_human.json", changes=changes))[0]
        .dedupe_key
        for changes in (
            {"CallStatus": "ringing"}, {"CallStatus": "ringing"}, {"CallStatus": "completed"},
        )
    }  # fmt: skip
    assert len(keys) == 2


@pytest.mark.parametrize(("code", "contact_status"), [("13224", "invalid"), ("21211", "invalid")])
async def test_numbers_that_cannot_be_called(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    router: respx.MockRouter,
    code: str,
    contact_status: str,
) -> None:
    router.post(CALLS).respond(400, json=load_json("rest/twilio_errors.json")[code])
    with pytest.raises(ChannelError) as raised:
        await voice(settings, client, clock).send(CALL)
    assert raised.value.contact_status == contact_status
    assert not raised.value.retryable
