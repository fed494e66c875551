from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl

import httpx
import pytest
import respx
import yaml

from outreach.attempt_status import advance, progress_of
from outreach.channels import VoiceChannel
from outreach.clock import FixedClock
from outreach.config import Settings
from outreach.errors import ChannelError
from outreach.providers.base import EventType, OutboundMessage, WebhookRequest
from outreach.providers.twilio_voice import PLAY_NOT_THE_DEBTOR, TwilioVoice, asks_to_stop
from outreach.rendering.context import CALL_IDENTITY_DEFAULTS, CALL_OPT_OUT_DEFAULTS
from outreach.rendering.lint import LCM_FORBIDDEN
from tests.conftest import REPO
from tests.providers.conftest import (
    ACCOUNT_SID,
    PUBLIC,
    load_json,
    signed_form,
    twilio_request,
    twiml,
)

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
OFFER = "To stop these calls, press 9 or say stop."


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
    assert form["Url"] == [f"{PUBLIC}/webhooks/twilio_voice/twiml?attempt_id=8&lang=en"]
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
    assert OFFER in twiml  # whoever answers can opt out, before detection says who it is
    assert form["AsyncAmd"] == ["true"]
    assert form["AsyncAmdStatusCallback"] == [
        f"{PUBLIC}/webhooks/twilio_voice/amd?attempt_id=8&lang=en"
    ]
    assert "Url" not in form


async def test_a_call_needs_a_voicemail(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    without = OutboundMessage(8, "k", "voice", "+16175550199", HUMAN)
    with pytest.raises(ChannelError, match="voicemail"):
        await voice(settings, client, clock).send(without)


CHECK = (
    "Hello, this is Northwind Customer Care. This call is for Pat Doe. If you are Pat Doe, "
    "press 1. If you are not, press 2."
)
IDENTITY = f"{PUBLIC}/webhooks/twilio_voice/identity?attempt_id=42&lang=en"


@pytest.mark.parametrize(
    "answered_by", ["machine_end_beep", "machine_end_silence", "machine_start", "unknown", None]
)
def test_a_machine_hears_only_the_voicemail(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, answered_by: str | None
) -> None:
    twiml = voice(settings, client, clock).answer_twiml(
        answered_by, HUMAN, VOICEMAIL, name="Pat Doe"
    )
    assert twiml.startswith("<?xml") and "<Say" in twiml and "<Hangup" in twiml
    assert "4411" not in twiml and VOICEMAIL in twiml


def test_a_person_is_asked_who_they_are_before_anything_about_the_account(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    """Detection tells a person from a machine, not the debtor from whoever else lives
    there: nothing of the message is said until the debtor presses 1."""
    said = voice(settings, client, clock).answer_twiml(
        "human", HUMAN, VOICEMAIL, name="Pat  Doe", attempt_id=42, language="en"
    )
    root = twiml(said)
    assert [child.tag for child in root] == ["Gather", "Hangup"]
    gather = root[0]
    assert gather.attrib == {
        "input": "dtmf", "numDigits": "1", "action": IDENTITY, "method": "POST",
        "timeout": "6", "actionOnEmptyResult": "true",
    }  # fmt: skip
    assert [say.text for say in gather.findall("Say")] == [CHECK]
    assert "4411" not in said and "120.00" not in said and VOICEMAIL not in said
    assert not LCM_FORBIDDEN.search(CHECK)


def test_a_person_we_cannot_ask_for_by_name_hears_only_the_voicemail(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    said = voice(settings, client, clock).answer_twiml("human", HUMAN, VOICEMAIL, name=" ")
    assert "4411" not in said and VOICEMAIL in said and "<Gather" in said


def identity(digits: str | None, url: str = IDENTITY) -> WebhookRequest:
    """What Twilio posts to the identity check's action: the key, or none (a timeout)."""
    request = twilio_request("voice_gather_digits.json", url=url)
    if digits is None:
        params = [(k, v) for k, v in parse_qsl(request.body.decode(), keep_blank_values=True)
                  if k not in ("Digits", "FinishedOnKey")]  # fmt: skip
        return signed_form(url, params)
    return twilio_request("voice_gather_digits.json", url=url, changes={"Digits": digits})


@pytest.mark.parametrize(
    ("digits", "event_type", "raw_status", "contact_status"),
    [
        ("1", EventType.ANSWERED_HUMAN, "keypress 1: human", None),
        ("2", EventType.ANSWERED_HUMAN, "keypress 2: not the debtor", "wrong_number"),
        ("9", EventType.OPTED_OUT, "keypress 9: opt-out", None),
        ("5", EventType.UNKNOWN, "keypress 5: voicemail", None),
        (None, EventType.UNKNOWN, "no input: voicemail", None),
    ],
)
def test_the_identity_checks_answer_records_what_was_pressed_and_played(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    digits: str | None,
    event_type: EventType,
    raw_status: str,
    contact_status: str | None,
) -> None:
    provider = voice(settings, client, clock)
    request = identity(digits)
    provider.verify(request)
    (event,) = provider.parse(request)
    assert (event.kind, event.event_type, event.raw_status) == ("identity", event_type, raw_status)
    assert event.contact_status == contact_status
    assert event.suppression == ("stop" if digits == "9" else None)
    assert (event.attempt_id, event.to_address) == (42, "+15558675310")


@pytest.mark.parametrize(
    ("digits", "first_said"),
    [
        ("1", HUMAN),
        ("2", "Thank you. Sorry to have bothered you."),
        ("5", VOICEMAIL),
        (None, VOICEMAIL),
    ],
)
def test_only_the_debtors_1_plays_the_message_and_every_answer_offers_the_opt_out(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    digits: str | None,
    first_said: str,
) -> None:
    provider = voice(settings, client, clock)
    (event,) = provider.parse(identity(digits))
    root = twiml(provider.answer_identity(event, HUMAN, VOICEMAIL, "en"))
    assert [child.tag for child in root] == ["Say", "Gather", "Hangup"]
    assert root[0].text == first_said
    gather = root[1]
    assert gather.attrib["action"] == f"{PUBLIC}/webhooks/twilio_voice/gather?attempt_id=42&lang=en"
    assert [say.text for say in gather.findall("Say")] == [OFFER]


def test_pressing_9_at_the_identity_check_is_confirmed_and_ends_the_call(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    provider = voice(settings, client, clock)
    (event,) = provider.parse(identity("9"))
    root = twiml(provider.answer_identity(event, HUMAN, VOICEMAIL, "en"))
    assert [child.tag for child in root] == ["Say", "Hangup"]
    assert root[0].text == (
        "You will not receive further automated calls from Northwind Customer Care at this "
        "number. Goodbye."
    )
    (unknown,) = provider.parse(identity("1"))  # a call we do not know: nothing said
    assert [c.tag for c in twiml(provider.answer_identity(unknown, None, None, "en"))] == ["Hangup"]


def test_a_spanish_call_asks_in_spanish(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    provider = voice(settings, client, clock)
    root = twiml(provider.answer_twiml("human", "Hola", "Llame", name="Ana Ruiz", language="es"))
    (say,) = root[0].findall("Say")
    assert say.text == (
        "Hola, le llamamos de Northwind Customer Care. Esta llamada es para Ana Ruiz. "
        "Si usted es Ana Ruiz, marque 1. Si no lo es, marque 2."
    )
    assert root[0].attrib["action"].endswith("/identity?lang=es")
    (event,) = provider.parse(identity("2", url=IDENTITY.replace("lang=en", "lang=es")))
    assert "Disculpe la molestia." in provider.answer_identity(event, "Hola", "Llame", "es")


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
    "stamp",
    [
        "Fri, 31 Dec 9999 23:00:00 -0500",  # after the year 9999 once in UTC
        "Thu, 10 Aug 2023 22:23:41 +99999999999999999999",
        "Thu, 10 Aug 99999999999999999999 22:23:41 +0000",
    ],
)
def test_a_timestamp_no_date_can_hold_is_taken_as_the_time_received(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, stamp: str
) -> None:
    request = twilio_request("voice_status_busy.json", changes={"Timestamp": stamp})
    (event,) = voice(settings, client, clock).parse(request)
    assert event.occurred_at == clock.now()


@pytest.mark.parametrize(
    ("call_status", "answered_by", "event_type", "outcome"),
    [
        ("in-progress", "human", EventType.ANSWERED_HUMAN, None),
        ("in-progress", "machine_end_beep", EventType.ANSWERED_MACHINE, None),
        ("ringing", "", EventType.SENT, None),
        ("completed", "machine_end_beep", EventType.COMPLETED, "limited_content_message"),
        ("completed", "machine_start", EventType.COMPLETED, "voicemail"),
        # A fax: the call failed, whatever its status says, and the number is no voice line.
        ("completed", "fax", EventType.FAILED, "failed"),
        ("in-progress", "fax", EventType.FAILED, "failed"),
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
    assert event.contact_status == ("invalid" if answered_by == "fax" else None)


@pytest.mark.parametrize(
    ("payload", "changes"),
    [
        ("voice_twiml_fetch_answered_machine.json", {"AnsweredBy": "fax"}),
        ("voice_amd_async_machine_end_beep.json", {"AnsweredBy": "fax"}),
        ("voice_status_completed_human.json", {"AnsweredBy": "fax"}),
    ],
)
def test_a_fax_answering_is_a_failed_call_that_no_later_status_makes_delivered(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    payload: str,
    changes: dict[str, str],
) -> None:
    (event,) = voice(settings, client, clock).parse(twilio_request(payload, changes=changes))
    failed = progress_of(event.event_type, event.outcome, event.error_code)
    assert (failed.status, failed.outcome, event.contact_status) == ("failed", "failed", "invalid")
    completed = voice(settings, client, clock).parse(
        twilio_request("voice_status_completed_human.json")
    )[0]
    later = progress_of(completed.event_type, completed.outcome, completed.error_code)
    assert later.status == "delivered"
    assert advance(failed, later) == advance(later, failed) == failed


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


@pytest.mark.parametrize("code", ["21210", "21212"])
async def test_a_caller_id_refused_by_twilio_is_our_setting_and_holds_the_call(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    router: respx.MockRouter,
    code: str,
) -> None:
    # 21210: TWILIO_FROM_NUMBER is neither a Twilio number nor a verified caller ID of the
    # account; 21212: it is no phone number at all. Every call would be refused alike.
    router.post(CALLS).respond(400, json=load_json("rest/twilio_errors.json")[code])
    with pytest.raises(ChannelError) as raised:
        await voice(settings, client, clock).send(CALL)
    error = raised.value
    assert (error.retryable, error.outage, error.ambiguous) == (True, True, False)
    assert (error.code, error.contact_status, error.suppression) == (code, None, None)
    assert "TWILIO_FROM_NUMBER" in str(error)


@pytest.mark.parametrize(("status", "outage"), [(301, True), (308, True), (303, False)])
async def test_a_redirected_call_post_is_an_outage_and_a_see_other_is_held_for_review(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    router: respx.MockRouter,
    status: int,
    outage: bool,
) -> None:
    router.post(CALLS).respond(status, headers={"Location": CALLS})
    with pytest.raises(ChannelError) as raised:
        await voice(settings, client, clock).send(CALL)
    assert (raised.value.outage, raised.value.ambiguous) == (outage, not outage)


@pytest.mark.parametrize("answered_by", ["machine_end_beep", "unknown", None])
def test_every_call_offers_an_opt_out_by_key_or_speech(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, answered_by: str | None
) -> None:
    root = twiml(
        voice(settings, client, clock).answer_twiml(
            answered_by, HUMAN, VOICEMAIL, attempt_id=8, language="en"
        )
    )
    gather = root.find("Gather")
    assert gather is not None
    assert gather.attrib == {
        "input": "dtmf speech",
        "numDigits": "1",
        "action": f"{PUBLIC}/webhooks/twilio_voice/gather?attempt_id=8&lang=en",
        "method": "POST",
        "language": "en-US",
        "hints": (
            "stop, stop calling, quit, cancel, unsubscribe, opt out, no more, no more calls, "
            "remove me, remove my number, take me off your list, leave me alone"
        ),
        "speechTimeout": "auto",
    }
    # The message first, heard whole: the Gather listens only for the offer after it (a
    # person answering "Hello?" does not cut the message); no input: hang up.
    assert [child.tag for child in root] == ["Say", "Gather", "Hangup"]
    assert root[0].text == VOICEMAIL
    assert [say.text for say in gather.findall("Say")] == [OFFER]


def test_a_spanish_call_offers_the_opt_out_in_spanish(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    gather = twiml(
        voice(settings, client, clock).answer_twiml(
            "human", "Hola", "Llame", attempt_id=8, language="es"
        )
    ).find("Gather")
    assert gather is not None
    assert gather.attrib["language"] == "es-US"
    assert gather.attrib["action"].endswith("gather?attempt_id=8&lang=es")
    assert gather.attrib["hints"] == (
        "alto, parar, basta, detener, detente, cancelar, no más, no más llamadas, "
        "ya no me llamen, no me llamen más, dejen de llamarme, quítenme de su lista"
    )
    assert [say.text for say in gather.findall("Say")][-1] == (
        "Para dejar de recibir estas llamadas, marque 9 o diga alto."
    )


async def test_the_call_language_rides_on_every_callback_url(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, router: respx.MockRouter
) -> None:
    router.post(CALLS).respond(201, json=load_json("rest/twilio_call_created.json"))
    await voice(settings, client, clock).send(replace(CALL, locale="es_US"))
    form = parse_qs(router.calls.last.request.content.decode())
    assert form["Url"] == [f"{PUBLIC}/webhooks/twilio_voice/twiml?attempt_id=8&lang=es"]


def test_the_opt_out_words_come_from_the_company_file(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, tmp_path: Path
) -> None:
    company = yaml.safe_load((REPO / "templates" / "company.yaml").read_text(encoding="utf-8"))
    company["texts"]["en"]["call_opt_out"] = "Press 9 or say stop to end these calls."
    company["texts"]["en"]["call_opt_out_confirmation"] = "Done. {company} will not call."
    (tmp_path / "company.yaml").write_text(yaml.safe_dump(company), encoding="utf-8")
    provider = voice(settings.model_copy(update={"templates_dir": tmp_path}), client, clock)
    assert "Press 9 or say stop to end these calls." in provider.answer_twiml(
        "human", HUMAN, VOICEMAIL
    )
    (event,) = provider.parse(twilio_request("voice_gather_digits.json"))
    assert "Done. Northwind Customer Care will not call." in provider.answer_gather(event, "en")


def test_the_goodbye_to_someone_else_names_the_business_as_the_check_does(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, tmp_path: Path
) -> None:
    company = yaml.safe_load((REPO / "templates" / "company.yaml").read_text(encoding="utf-8"))
    company["texts"]["en"]["call_not_the_debtor"] = "Thank you. {company} is sorry to bother you."
    (tmp_path / "company.yaml").write_text(yaml.safe_dump(company), encoding="utf-8")
    provider = voice(settings.model_copy(update={"templates_dir": tmp_path}), client, clock)
    goodbye = provider.play(PLAY_NOT_THE_DEBTOR, HUMAN, VOICEMAIL)
    assert "Thank you. Northwind Customer Care is sorry to bother you." in goodbye
    assert "{company}" not in goodbye


def test_without_a_company_file_the_default_words_are_used(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock, tmp_path: Path
) -> None:
    provider = voice(settings.model_copy(update={"templates_dir": tmp_path}), client, clock)
    assert OFFER in provider.answer_twiml("human", HUMAN, VOICEMAIL)
    (event,) = provider.parse(twilio_request("voice_gather_digits.json"))
    assert "further automated calls from us at this number." in provider.answer_gather(event, "en")


@pytest.mark.parametrize("language", sorted(CALL_IDENTITY_DEFAULTS))
def test_the_identity_check_names_no_debt(language: str) -> None:
    # Said to whoever answers, before they say who they are (15 USC 1692c(b)).
    company = yaml.safe_load((REPO / "templates" / "company.yaml").read_text(encoding="utf-8"))
    shipped = company["texts"][language]
    for text in (*CALL_IDENTITY_DEFAULTS[language], shipped["call_identity_check"],
                 shipped["call_not_the_debtor"]):  # fmt: skip
        assert not LCM_FORBIDDEN.search(text), text


@pytest.mark.parametrize("language", sorted(CALL_OPT_OUT_DEFAULTS))
def test_the_opt_out_words_name_no_debt(language: str) -> None:
    # The offer is also left on voicemail, and whoever presses 9 may not be the debtor:
    # neither may say what a limited-content message may not (Reg F 1006.2(j)).
    company = yaml.safe_load((REPO / "templates" / "company.yaml").read_text(encoding="utf-8"))
    shipped = company["texts"][language]
    for text in (*CALL_OPT_OUT_DEFAULTS[language], shipped["call_opt_out"],
                 shipped["call_opt_out_confirmation"]):  # fmt: skip
        assert not LCM_FORBIDDEN.search(text), text


@pytest.mark.parametrize(
    ("payload", "changes", "opted_out", "raw_status", "said"),
    [
        ("voice_gather_digits.json", {}, True, "keypress 9", None),
        ("voice_gather_digits.json", {"Digits": "1"}, False, "keypress 1", None),
        # A request to stop in words is kept, to be read as a text's would be.
        ("voice_gather_speech.json", {}, True, "speech", "Please stop calling me."),
        ("voice_gather_speech.json", {"SpeechResult": "Hello? Who is this?"}, False, "speech",
         None),
        ("voice_gather_speech.json", {"SpeechResult": "no more"}, True, "speech", "no more"),
        ("voice_gather_speech.json", {"SpeechResult": "I can pay fifty, no more than that."},
         False, "speech", None),
    ],
)  # fmt: skip
def test_a_gather_is_an_opt_out_on_9_or_a_request_to_stop(
    settings: Settings,
    client: httpx.AsyncClient,
    clock: FixedClock,
    payload: str,
    changes: dict[str, str],
    opted_out: bool,
    raw_status: str,
    said: str | None,
) -> None:
    provider = voice(settings, client, clock)
    request = twilio_request(payload, changes=changes)
    provider.verify(request)
    (event,) = provider.parse(request)
    assert (event.kind, event.raw_status, event.attempt_id) == ("gather", raw_status, 42)
    assert (event.event_type == EventType.OPTED_OUT) is opted_out
    assert event.suppression == ("stop" if opted_out else None)
    assert (event.to_address, event.body) == ("+15558675310", said)  # the number we called
    assert event.payload["FutureParameter"] == "added-later"
    answer = twiml(provider.answer_gather(event, "en"))
    assert [child.tag for child in answer] == (["Say", "Hangup"] if opted_out else ["Hangup"])
    if opted_out:
        assert answer[0].text == (
            "You will not receive further automated calls from Northwind Customer Care at this "
            "number. Goodbye."
        )


def test_a_retried_gather_has_the_same_key(
    settings: Settings, client: httpx.AsyncClient, clock: FixedClock
) -> None:
    provider = voice(settings, client, clock)
    first, again = (provider.parse(twilio_request("voice_gather_digits.json")) for _ in "12")
    assert first[0].dedupe_key == again[0].dedupe_key


@pytest.mark.parametrize(
    ("digits", "speech", "stop"),
    [
        ("9", None, True),
        (" 9 ", None, True),
        ("1", None, False),
        ("#", None, False),
        ("", "stop", True),
        (None, "Please stop calling.", True),
        (None, "Quit calling me", True),
        (None, "cancel", True),
        (None, "Unsubscribe me.", True),
        (None, "Don’t call me again", True),
        (None, "do not call this number", True),
        (None, "Alto", True),
        (None, "por favor, parar", True),
        (None, "No me llamen más", True),
        (None, "Hello?", False),
        (None, "I'll pay on Friday", False),
        (None, "Yes, speaking", False),
        (None, "", False),
    ],
)
def test_what_asks_to_stop(digits: str | None, speech: str | None, stop: bool) -> None:
    assert asks_to_stop(digits, speech) is stop


# What speech recognition returns for a request to stop: any case, with no punctuation or a
# trailing period, "más" with or without its accent. Each stops calls as it stops texts.
SPOKEN_STOPS = [
    "no more", "No more.", "No more please", "no more calls", "No more messages.",
    "no more texts", "remove me", "Remove my number.", "remove me from your list",
    "Take me off your list.", "take me off your list", "please remove", "Remove please.",
    "stop calling", "Stop calling me.", "leave me alone", "Leave me alone.", "unsubscribe",
    "opt out", "Opt-out.", "basta", "Basta ya.", "detener", "Detente.", "ya no llamen",
    "Ya no me llamen.", "no más", "No mas.", "no más llamadas", "No mas llamadas.",
    "quítenme de su lista", "Quitenme de su lista.", "sáquenme de la lista",
    "no me llamen más", "Cancelar.", "dejen de llamar", "Dejen de llamarme.",
    "déjenme en paz", "I am revoking my prior express consent", "Retiro mi consentimiento",
    "You do not have my consent to call me", "I do not consent to these calls",
]  # fmt: skip
# Talk about paying, or anything else, with a word of a stop inside it: "no more", "no
# más", "remove" and "basta" ask to stop only as all that is said (with a plea at most), as
# in a text; a question asks nothing.
SPOKEN_OTHER = [
    "I can pay fifty dollars no more than that", "I can pay fifty dollars, no more than that.",
    "no more than fifty a month", "I have no more money", "No more?", "remove the late fee",
    "Can you remove the fee?", "no más tengo cincuenta", "ahora no más",
    "voy a pagar no más de cien", "basta con cincuenta dólares", "quítenme el cargo",
    "déjenme pagar mañana", "I'm calling to pay", "What is the balance?",
    # A consent to the call's recording, or to paying, is no consent to be called.
    "I do not consent to this call being recorded", "I don't consent to the call recording",
    "I withdraw my consent for the ACH",
]  # fmt: skip


@pytest.mark.parametrize(
    ("speech", "stop"),
    [(speech, True) for speech in SPOKEN_STOPS] + [(speech, False) for speech in SPOKEN_OTHER],
)
def test_what_said_in_a_call_opts_out(speech: str, stop: bool) -> None:
    assert asks_to_stop(None, speech) is stop
