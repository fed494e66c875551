"""Twilio's webhooks against a real server: valid, forged, replayed, out of order,
duplicated, for an unknown message, with extra fields; and what they are answered with."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from urllib.parse import parse_qsl

import pytest
from sqlalchemy import Engine, update

from outreach.clock import FixedClock
from outreach.compliance.engine import evaluate
from outreach.compliance.rules import load_ruleset
from outreach.compliance_store import inbox_messages, load_debtors, situation
from outreach.config import Settings
from outreach.dispatcher import Dispatcher
from outreach.events import provider_events
from outreach.providers.base import WebhookRequest
from outreach.providers.outbox import Outbox
from outreach.ratelimit import RateLimiter
from outreach.store import accounts, compliance_events, contact_points, suppressions
from tests.conftest import NOW, REPO
from tests.eventdata import (
    EMAIL,
    OTHER_PHONE,
    PHONE,
    add_account,
    add_attempt,
    attempt,
    count,
    rows,
)
from tests.providers.conftest import PUBLIC, signed_form, twiml
from tests.web.conftest import Server, call_webhook, sms_inbound, sms_status, twilio

IDEMPOTENCY = "I-Twilio-Idempotency-Token"
OFFER = "To stop these calls, press 9 or say stop."
CHECK = (
    "Hello, this is Northwind Customer Care. This call is for Pat Doe. If you are Pat Doe, "
    "press 1. If you are not, press 2."
)
CONFIRMED = (
    "You will not receive further automated calls from Northwind Customer Care at this number. "
    "Goodbye."
)


def test_a_status_callback_moves_its_attempt(engine: Engine, server: Server) -> None:
    attempt_id = add_attempt(engine, add_account(engine), message_id=None, status="sending")
    response = server.send(sms_status("delivered", attempt_id=attempt_id, FutureField="x"))
    assert (response.status_code, response.json()) == (200, {"stored": 1, "duplicates": 0})
    row = attempt(engine, attempt_id)
    assert (row.status, row.provider_message_id) == ("delivered", "SM0001")
    (stored,) = rows(engine, provider_events)
    assert stored.payload["FutureField"] == "x"  # extra fields are kept as they came


def test_a_forged_status_callback_is_refused_and_logged_without_its_payload(
    engine: Engine, server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    attempt_id = add_attempt(engine, add_account(engine))
    genuine = sms_status("delivered", attempt_id=attempt_id)
    forged = replace(genuine, body=genuine.body.replace(b"delivered", b"failed"))
    wrong_key = replace(genuine, headers={**genuine.headers, "X-Twilio-Signature": "AAAA"})
    unsigned = replace(
        genuine, headers={k: v for k, v in genuine.headers.items() if k != "X-Twilio-Signature"}
    )
    for request in (forged, wrong_key, unsigned):
        response = server.send(request)
        assert response.status_code == 403
        assert "X-Twilio-Signature" in response.json()["detail"]
    assert count(engine, provider_events) == 0
    assert attempt(engine, attempt_id).status == "sent"
    assert "refused" in caplog.text
    assert PHONE not in caplog.text and "SM0001" not in caplog.text


@pytest.mark.parametrize("query", ["?bodySHA256=", "?bodySHA256=0f1e", ""])
def test_a_forged_json_callback_is_refused(engine: Engine, server: Server, query: str) -> None:
    # Twilio signs a JSON body through its hash in the URL; a forgery may carry none, an
    # empty one or a wrong one.
    response = server.http.post(
        server.base + "/webhooks/twilio_sms/status" + query,
        content=b'{"MessageStatus": "delivered", "MessageSid": "SM0001"}',
        headers={"Content-Type": "application/json", "X-Twilio-Signature": "forged"},
    )
    assert response.status_code == 403
    assert count(engine, provider_events) == 0


def test_a_replayed_request_is_stored_once(engine: Engine, server: Server) -> None:
    add_attempt(engine, add_account(engine))
    request = sms_status("delivered")
    first = server.send(request, **{IDEMPOTENCY: "tok-1"})
    again = server.send(request, **{IDEMPOTENCY: "tok-1"})
    assert [first.json()["stored"], again.json()["stored"]] == [1, 0]
    assert count(engine, provider_events) == 1


def test_a_retry_is_known_by_twilios_token_alone(engine: Engine, server: Server) -> None:
    add_attempt(engine, add_account(engine))
    first = server.send(sms_status("sent"), **{IDEMPOTENCY: "tok-1"})
    retried = server.send(sms_status("delivered"), **{IDEMPOTENCY: "tok-1"})
    assert [first.json()["stored"], retried.json()["stored"]] == [1, 0]
    assert [row.request_token for row in rows(engine, provider_events)] == ["tok-1"]


def test_the_same_event_in_another_request_is_a_duplicate(engine: Engine, server: Server) -> None:
    add_attempt(engine, add_account(engine))
    first = server.send(sms_status("delivered"), **{IDEMPOTENCY: "tok-1"})
    second = server.send(sms_status("delivered", ApiVersion2="x"), **{IDEMPOTENCY: "tok-2"})
    assert [first.json()["duplicates"], second.json()["duplicates"]] == [0, 1]
    assert count(engine, provider_events) == 1


def test_out_of_order_callbacks_end_delivered(engine: Engine, server: Server) -> None:
    attempt_id = add_attempt(engine, add_account(engine), status="sending")
    for status in ("delivered", "sent", "queued"):
        assert server.send(sms_status(status, attempt_id=attempt_id)).status_code == 200
    assert attempt(engine, attempt_id).status == "delivered"
    assert count(engine, provider_events) == 3


def test_a_callback_for_an_unknown_message_is_kept(engine: Engine, server: Server) -> None:
    response = server.send(sms_status("delivered", sid="SMunknown"))
    assert response.json() == {"stored": 1, "duplicates": 0}
    (stored,) = rows(engine, provider_events)
    assert (stored.attempt_id, stored.provider_message_id) == (None, "SMunknown")


def test_error_21610_in_a_callback_suppresses_the_number(engine: Engine, server: Server) -> None:
    add_attempt(engine, add_account(engine))
    server.send(sms_status("failed", ErrorCode="21610"))
    assert [(s.address, s.reason) for s in rows(engine, suppressions)] == [(PHONE, "stop")]


def test_an_inbound_body_on_the_status_url_is_malformed(engine: Engine, server: Server) -> None:
    inbound = sms_inbound("hello")
    misplaced = replace(inbound, url=inbound.url.replace("/inbound", "/status"))
    resigned = signed_form(misplaced.url, _params(inbound.body))
    response = server.send(resigned)
    assert response.status_code == 400
    assert "inbound request was posted to the message_status URL" in response.json()["detail"]
    unreadable = signed_form(misplaced.url, [("AccountSid", "AC1"), ("Something", "else")])
    assert server.send(unreadable).status_code == 400
    assert count(engine, provider_events) == 0


def _params(body: bytes) -> list[tuple[str, str]]:
    return parse_qsl(body.decode(), keep_blank_values=True)


def test_an_inbound_reply_reaches_the_inbox_and_twiml_answers_nothing(
    engine: Engine, server: Server
) -> None:
    account_id = add_account(engine)
    response = server.send(sms_inbound("I paid yesterday"))
    assert response.headers["content-type"].startswith("text/xml")
    assert response.text.endswith("<Response />")
    (reply,) = rows(engine, inbox_messages)
    assert (reply.account_id, reply.intent, reply.body) == (account_id, "paid", "I paid yesterday")


def test_a_stop_in_words_is_confirmed_once_in_twiml(engine: Engine, server: Server) -> None:
    """Once: a retry of the same request is answered as the first was, since Twilio retries
    only what it got no answer to; another message after the stop is not answered."""
    add_account(engine)
    first = server.send(sms_inbound("please stop texting me", sid="SM1"), **{IDEMPOTENCY: "t1"})
    retried = server.send(sms_inbound("please stop texting me", sid="SM1"), **{IDEMPOTENCY: "t1"})
    again = server.send(sms_inbound("stop texting me!!", sid="SM2"))
    confirmation = server.app.state.writer.policy.replies.opt_out_confirmation
    assert first.text.count("<Message>") == 1
    assert f"<Message>{confirmation}</Message>" in first.text
    assert retried.text == first.text
    assert "<Message>" not in again.text
    assert [(s.address, s.reason) for s in rows(engine, suppressions)] == [(PHONE, "stop")]


@pytest.mark.parametrize("body", ["ALTO", "Parar.", "no me manden mensajes", "ＳＴＯＰ"])
def test_a_stop_twilio_does_not_know_is_recorded_and_confirmed_by_outreach(
    engine: Engine, server: Server, body: str
) -> None:
    """Spanish, or STOP in a phone's full-width letters: Twilio's keywords are English and
    ASCII, so Twilio neither blocks nor answers; outreach does both."""
    add_account(engine)
    response = server.send(sms_inbound(body))
    confirmation = server.app.state.writer.policy.replies.opt_out_confirmation
    assert f"<Message>{confirmation}</Message>" in response.text
    assert [(s.address, s.reason) for s in rows(engine, suppressions)] == [(PHONE, "stop")]


def verdict(engine: Engine, account_id: int, channel: str, address: str, *, automated: bool) -> str:
    """The compliance engine's verdict now for a contact of the account."""
    rules = load_ruleset()
    with engine.connect() as connection:
        (row,) = [a for a in rows(engine, accounts) if a.id == account_id]
        record = load_debtors(connection, [row], NOW, 30, "US", rules=rules)[account_id]
    found = situation(record, channel, address, NOW, automated=automated)
    return evaluate(found, rules).verdict


@pytest.mark.parametrize(
    ("body", "blocked"),
    [
        ("STOP. Don't email me either.", ("email", EMAIL)),
        ("Stop calling me. STOP", ("voice", PHONE)),
    ],
)
def test_a_stop_that_names_another_medium_stops_texts_and_that_medium(
    engine: Engine, server: Server, body: str, blocked: tuple[str, str]
) -> None:
    """The bare STOP opts the number out of texts and is confirmed; the other medium it
    names is not used at all, not even by an agent's call (it was read as the STOP alone,
    and email and calls went on)."""
    account_id = add_account(engine)
    response = server.send(sms_inbound(body))
    confirmation = server.app.state.writer.policy.replies.opt_out_confirmation
    assert f"<Message>{confirmation}</Message>" in response.text
    assert [(s.channel, s.address, s.reason) for s in rows(engine, suppressions)] == [
        ("sms", PHONE, "stop")
    ]
    prohibited = [
        e.channel for e in rows(engine, compliance_events) if e.kind == "prohibited_medium"
    ]
    assert prohibited == [blocked[0]]
    assert verdict(engine, account_id, *blocked, automated=False) == "block"
    assert verdict(engine, account_id, "sms", PHONE, automated=False) == "block"


@pytest.mark.parametrize(
    "body",
    [
        "No recibir mas mensajes", "Quítenme de su lista", "Sáquenme de la lista",
        "I withdraw my consent", "I do not consent to texts", "Can you please stop",
        "I am asking you to stop", "Stop this number",
    ],
)  # fmt: skip
def test_other_ways_to_say_stop_opt_the_number_out(
    engine: Engine, server: Server, body: str
) -> None:
    """Each was read as an ordinary reply: no suppression, and an agent could text again."""
    account_id = add_account(engine)
    response = server.send(sms_inbound(body))
    confirmation = server.app.state.writer.policy.replies.opt_out_confirmation
    assert f"<Message>{confirmation}</Message>" in response.text
    assert [(s.address, s.reason) for s in rows(engine, suppressions)] == [(PHONE, "stop")]
    (reply,) = rows(engine, inbox_messages, direction="inbound")
    assert reply.intent == "opt_out"
    assert verdict(engine, account_id, "sms", PHONE, automated=False) == "block"


@pytest.mark.parametrize("body", ["Opt out", "opt-out", "OPT OUT!"])
def test_an_opt_out_twilio_does_not_know_is_confirmed_by_outreach(
    engine: Engine, server: Server, body: str
) -> None:
    """Twilio acts only on a message that is one word of its list (OPTOUT, not "opt out"):
    outreach reads these as the keyword they are, and confirms them itself."""
    add_account(engine)
    response = server.send(sms_inbound(body))
    confirmation = server.app.state.writer.policy.replies.opt_out_confirmation
    assert f"<Message>{confirmation}</Message>" in response.text
    assert [(s.address, s.reason) for s in rows(engine, suppressions)] == [(PHONE, "stop")]
    assert [m.direction for m in rows(engine, inbox_messages)] == ["outbound"]


@pytest.mark.parametrize("body", ["STOP", "optout", "Revoke"])
def test_stop_as_twilio_answers_it_is_recorded_and_left_to_twilio(
    engine: Engine, server: Server, body: str
) -> None:
    add_account(engine)
    response = server.send(sms_inbound(body))
    assert "<Message>" not in response.text
    assert [s.reason for s in rows(engine, suppressions)] == ["stop"]
    assert rows(engine, inbox_messages) == []


def test_twilio_advanced_opt_out_type_is_honoured(engine: Engine, server: Server) -> None:
    add_account(engine)
    params = [
        ("AccountSid", "AC1"), ("Body", "arret"), ("From", PHONE), ("To", "+16175550100"),
        ("MessageSid", "SMopt"), ("OptOutType", "STOP"), ("SmsStatus", "received"),
    ]  # fmt: skip
    response = server.send(twilio("/webhooks/twilio_sms/inbound", params))
    assert "<Message>" not in response.text
    assert [s.reason for s in rows(engine, suppressions)] == ["stop"]


def test_a_reply_from_an_unknown_sender_is_kept(engine: Engine, server: Server) -> None:
    server.send(sms_inbound("Who is this?", sender="+16175550199"))
    (reply,) = rows(engine, inbox_messages)
    assert (reply.account_id, reply.from_address) == (None, "+16175550199")


def test_the_twiml_fetch_asks_a_person_who_they_are_and_gives_a_machine_the_voicemail(
    engine: Engine, server: Server
) -> None:
    account_id = add_account(engine)
    call = add_attempt(engine, account_id, channel="voice", message_id="CA0001")
    person = server.send(
        call_webhook("twiml", call, CallStatus="in-progress", AnsweredBy="human", Extra="1")
    )
    assert person.headers["content-type"].startswith("text/xml")
    root = twiml(person.text)
    assert [child.tag for child in root] == ["Gather", "Hangup"]
    assert root[0].attrib["action"] == (
        f"{PUBLIC}/webhooks/twilio_voice/identity?attempt_id={call}&lang=en"
    )
    assert [say.text for say in root[0].findall("Say")] == [CHECK]
    assert "$120.50" not in person.text and "balance" not in person.text.lower()
    machine = server.send(
        call_webhook("twiml", call, sid="CA0001", CallStatus="in-progress",
                     AnsweredBy="machine_end_beep")
    )  # fmt: skip
    assert "Please call Northwind Customer Care." in machine.text
    assert "$120.50" not in machine.text
    assert OFFER in machine.text  # it names no debt: a limited-content voicemail may say it
    replayed = server.send(
        call_webhook("twiml", call, CallStatus="in-progress", AnsweredBy="human", Extra="1")
    )
    assert replayed.text == person.text  # a retried fetch still gets its TwiML
    assert count(engine, provider_events) == 2
    assert attempt(engine, call).status == "delivered"


def test_the_twiml_fetch_for_an_unknown_call_hangs_up(engine: Engine, server: Server) -> None:
    response = server.send(
        call_webhook("twiml", None, sid="CAunknown", CallStatus="in-progress", AnsweredBy="human")
    )
    assert "<Hangup />" in response.text and "<Say" not in response.text


def test_call_status_callbacks_in_any_order_record_the_outcome(
    engine: Engine, server: Server
) -> None:
    call = add_attempt(engine, add_account(engine), channel="voice", message_id="CA0001")
    completed = call_webhook("status", call, CallStatus="completed", AnsweredBy="human",
                             CallDuration="42", CallbackSource="call-progress-events")  # fmt: skip
    ringing = call_webhook("status", call, CallStatus="ringing",
                           CallbackSource="call-progress-events")  # fmt: skip
    for request in (completed, ringing, completed):
        assert server.send(request).status_code == 200
    row = attempt(engine, call)
    assert (row.status, row.outcome) == ("delivered", "conversation")
    assert count(engine, provider_events) == 2


@pytest.mark.parametrize("detected_by", ["twiml", "amd", "status"])
def test_a_call_answered_by_a_fax_fails_and_the_number_is_no_longer_called(
    engine: Engine, server: Server, detected_by: str
) -> None:
    """AnsweredBy=fax (a documented detection result): nothing is said, and the call's
    ``completed`` after it does not make it delivered, whatever the order. A fax line is
    not the debtor's voice line: its voice contact point is marked invalid (as for 13224);
    its sms point, consent and all, is another's and untouched."""
    account_id = add_account(engine)
    call = add_attempt(engine, account_id, channel="voice", message_id="CA0001")
    completed = call_webhook("status", call, CallStatus="completed", AnsweredBy="fax",
                             CallDuration="3", CallbackSource="call-progress-events")  # fmt: skip
    detected = {
        "twiml": call_webhook("twiml", call, CallStatus="in-progress", AnsweredBy="fax"),
        "amd": call_webhook("amd", call, AnsweredBy="fax"),
        "status": completed,
    }[detected_by]
    answered = server.send(detected)
    assert answered.status_code == 200
    if detected_by == "twiml":
        assert "<Say" not in answered.text and "<Hangup" in answered.text
    for request in (completed, detected):  # the completed status after it, and a retry
        assert server.send(request).status_code == 200
    row = attempt(engine, call)
    assert (row.status, row.outcome) == ("failed", "failed")
    points = {p.channel: p.status for p in rows(engine, contact_points, account_id=account_id)
              if p.address == PHONE}  # fmt: skip
    assert points == {"voice": "invalid", "sms": "active"}
    assert rows(engine, suppressions) == []


def test_an_async_amd_result_is_stored(engine: Engine, server: Server) -> None:
    call = add_attempt(engine, add_account(engine), channel="voice", message_id="CA0001")
    response = server.send(call_webhook("amd", call, AnsweredBy="machine_end_beep"))
    assert response.json() == {"stored": 1, "duplicates": 0}
    (stored,) = rows(engine, provider_events)
    assert (stored.kind, stored.event_type) == ("amd", "answered_machine")


def gather(call: int | None, sid: str = "CA0001", **fields: str) -> WebhookRequest:
    """What Twilio posts to the Gather's action once the person pressed or said something."""
    return call_webhook("gather", call, sid=sid, CallStatus="in-progress", **fields)


def voice_opt_outs(engine: Engine) -> list[tuple[str, str, str]]:
    return [(row.channel, row.address, row.reason) for row in rows(engine, suppressions)]


def opt_out_events(engine: Engine) -> list[tuple[int, str, str | None, str | None]]:
    return [
        (row.account_id, row.kind, row.channel, row.address)
        for row in rows(engine, compliance_events)
    ]


def test_pressing_9_opts_the_number_out_of_every_accounts_automated_calls(
    engine: Engine, server: Server, settings: Settings
) -> None:
    first, second = add_account(engine, "R-1"), add_account(engine, "R-2")  # one number
    control = add_account(engine, "R-3", phone=OTHER_PHONE)
    call = add_attempt(engine, first, channel="voice", message_id="CA0001", status="delivered")

    response = server.send(gather(call, Digits="9", FinishedOnKey=""))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    answer = twiml(response.text)
    assert [(child.tag, child.text) for child in answer] == [("Say", CONFIRMED), ("Hangup", None)]
    assert voice_opt_outs(engine) == [("voice", PHONE, "stop")]
    assert opt_out_events(engine) == [
        (first, "opt_out", "voice", PHONE),
        (second, "opt_out", "voice", PHONE),
    ]
    (stored,) = rows(engine, provider_events)
    assert (stored.kind, stored.event_type, stored.attempt_id) == ("gather", "opted_out", call)

    # A later automated call to that number is blocked on every account using it, at the
    # moment of sending; another number still gets its call.
    later = [
        add_attempt(engine, account_id, channel="voice", status="queued", message_id=None,
                    to=phone, step_key="day-7")
        for account_id, phone in ((first, PHONE), (second, PHONE), (control, OTHER_PHONE))
    ]  # fmt: skip
    report = asyncio.run(_dispatcher(engine, settings).tick())
    assert (report.outcomes["blocked"], report.outcomes["sent"]) == (2, 1)
    for attempt_id in later[:2]:
        row = attempt(engine, attempt_id)
        assert row.status == "cancelled"
        assert "POLICY_DO_NOT_CALL" in (row.error_message or "")
    assert attempt(engine, later[2]).status == "sent"


def _dispatcher(engine: Engine, settings: Settings) -> Dispatcher:
    clock = FixedClock(NOW)  # the instant the opt-out was stored
    settings = settings.model_copy(update={"schedules_dir": REPO / "schedules"})
    outboxes = {channel: Outbox(settings, clock, channel) for channel in ("sms", "email", "voice")}
    return Dispatcher(engine, settings, clock, "test-worker", outboxes, RateLimiter({}))


def test_saying_stop_opts_the_number_out(engine: Engine, server: Server) -> None:
    account_id = add_account(engine)
    call = add_attempt(engine, account_id, channel="voice", message_id="CA0001")
    response = server.send(gather(call, SpeechResult="Stop.", Confidence="0.92"))
    assert CONFIRMED in response.text
    assert voice_opt_outs(engine) == [("voice", PHONE, "stop")]
    assert opt_out_events(engine) == [(account_id, "opt_out", "voice", PHONE)]
    assert rows(engine, inbox_messages) == []  # a keyword: an instruction, not a message


def test_saying_stop_calling_me_is_about_every_number(
    engine: Engine, server: Server, settings: Settings
) -> None:
    """Words that name calls ask not to be called at all (1006.14(h)), as a text's do: the
    number called is opted out, calls to the debtor's other numbers stop too, and the
    words reach the inbox from the number called, to ours."""
    account_id = add_account(engine)
    call = add_attempt(engine, account_id, channel="voice", message_id="CA0001")
    said = "Please stop calling me"
    response = server.send(gather(call, SpeechResult=said, Confidence="0.92"))
    assert CONFIRMED in response.text
    assert voice_opt_outs(engine) == [("voice", PHONE, "stop")]
    # Its consent to robocalls and robotexts is revoked too (revoke-all), held by the number.
    assert sorted(opt_out_events(engine), key=str) == [
        (account_id, "consent_revoked", None, PHONE),
        (account_id, "opt_out", "voice", PHONE),
        (account_id, "prohibited_medium", "voice", None),
    ]
    (reply,) = rows(engine, inbox_messages)
    assert (reply.channel, reply.body, reply.intent) == ("voice", said, "opt_out")
    assert (reply.from_address, reply.to_address) == (PHONE, "+16175550100")
    other = add_attempt(engine, account_id, channel="voice", status="queued", message_id=None,
                        to=OTHER_PHONE, step_key="day-7")  # fmt: skip
    asyncio.run(_dispatcher(engine, settings).tick())
    assert attempt(engine, other).status == "cancelled"


def test_saying_stop_texting_me_in_a_call_opts_the_number_called_out_of_calls_too(
    engine: Engine, server: Server
) -> None:
    """The Gather asked about calls: whatever else the words name, the number called is
    opted out of them, and texts are prohibited as asked."""
    account_id = add_account(engine)
    call = add_attempt(engine, account_id, channel="voice", message_id="CA0001")
    response = server.send(gather(call, SpeechResult="Stop texting me", Confidence="0.9"))
    assert CONFIRMED in response.text
    assert voice_opt_outs(engine) == [("voice", PHONE, "stop")]
    assert (account_id, "prohibited_medium", "sms", None) in opt_out_events(engine)


def test_saying_stop_and_stop_texting_me_in_a_call_stops_calls_and_texts(
    engine: Engine, server: Server
) -> None:
    """The bare "Stop." was read alone: the number called was opted out of calls, and
    texts went on."""
    account_id = add_account(engine)
    call = add_attempt(engine, account_id, channel="voice", message_id="CA0001")
    said = "Stop. Stop texting me too."
    response = server.send(gather(call, SpeechResult=said, Confidence="0.9"))
    assert CONFIRMED in response.text
    assert voice_opt_outs(engine) == [("voice", PHONE, "stop")]
    assert sorted(opt_out_events(engine), key=str) == [
        (account_id, "consent_revoked", None, PHONE),
        (account_id, "opt_out", "voice", PHONE),
        (account_id, "prohibited_medium", "sms", None),
    ]
    assert verdict(engine, account_id, "sms", PHONE, automated=False) == "block"


def test_saying_dont_call_me_at_work_opts_this_number_out_and_holds_work(
    engine: Engine, server: Server
) -> None:
    account_id = add_account(engine)
    call = add_attempt(engine, account_id, channel="voice", message_id="CA0001")
    server.send(gather(call, SpeechResult="Don't call me at work", Confidence="0.9"))
    assert voice_opt_outs(engine) == [("voice", PHONE, "stop")]  # asked in this call
    kinds = {kind for _, kind, _, _ in opt_out_events(engine)}
    assert kinds == {"opt_out", "workplace_inconvenient"}


def test_a_spanish_call_is_confirmed_in_spanish(engine: Engine, server: Server) -> None:
    call = add_attempt(engine, add_account(engine), channel="voice", message_id="CA0001")
    request = twilio(
        f"/webhooks/twilio_voice/gather?attempt_id={call}&lang=es",
        [("CallSid", "CA0001"), ("To", PHONE), ("From", "+16175550100"),
         ("CallStatus", "in-progress"), ("SpeechResult", "Alto, no me llamen más.")],
    )  # fmt: skip
    response = server.send(request)
    spanish = "No recibirá más llamadas automatizadas de Northwind Customer Care a este número."
    assert spanish in response.text
    assert voice_opt_outs(engine) == [("voice", PHONE, "stop")]


@pytest.mark.parametrize("said", ["No más.", "basta", "dejen de llamarme"])
def test_saying_no_mas_in_a_spanish_call_opts_the_number_out(
    engine: Engine, server: Server, said: str
) -> None:
    """Words that stop a text stop a call: said alone, "no más" and "basta" are a stop."""
    call = add_attempt(engine, add_account(engine), channel="voice", message_id="CA0001")
    request = twilio(
        f"/webhooks/twilio_voice/gather?attempt_id={call}&lang=es",
        [("CallSid", "CA0001"), ("To", PHONE), ("From", "+16175550100"),
         ("CallStatus", "in-progress"), ("SpeechResult", said)],
    )  # fmt: skip
    assert "No recibirá más llamadas automatizadas" in server.send(request).text
    assert voice_opt_outs(engine) == [("voice", PHONE, "stop")]


@pytest.mark.parametrize(
    "fields",
    [
        {"Digits": "1"},
        {"SpeechResult": "Hello? Who is this?", "Confidence": "0.8"},
        # "No more" inside a sentence about paying asks nothing.
        {"SpeechResult": "I can pay fifty dollars, no more than that", "Confidence": "0.9"},
    ],
)
def test_other_input_records_no_opt_out_and_hangs_up(
    engine: Engine, server: Server, fields: dict[str, str]
) -> None:
    call = add_attempt(engine, add_account(engine), channel="voice", message_id="CA0001")
    response = server.send(gather(call, **fields))
    assert response.status_code == 200
    assert [child.tag for child in twiml(response.text)] == ["Hangup"]
    assert voice_opt_outs(engine) == [] and opt_out_events(engine) == []
    assert count(engine, provider_events) == 1  # kept, as every verified event is


def test_a_forged_gather_is_refused_and_opts_nothing_out(engine: Engine, server: Server) -> None:
    call = add_attempt(engine, add_account(engine), channel="voice", message_id="CA0001")
    genuine = gather(call, Digits="1")
    forged = replace(genuine, body=genuine.body.replace(b"Digits=1", b"Digits=9"))
    unsigned = replace(
        genuine, headers={k: v for k, v in genuine.headers.items() if k != "X-Twilio-Signature"}
    )
    other_token = replace(genuine, body=gather(call, Digits="9").body)
    signed_elsewhere = signed_form(
        f"{PUBLIC}/webhooks/twilio_voice/gather?attempt_id={call}",
        [("CallSid", "CA0001"), ("To", PHONE), ("Digits", "9")],
        token="not-our-auth-token",
    )
    for request in (forged, unsigned, other_token, signed_elsewhere):
        assert server.send(request).status_code == 403
    assert count(engine, provider_events) == 0
    assert voice_opt_outs(engine) == [] and opt_out_events(engine) == []


def test_a_retried_gather_opts_out_once_and_is_confirmed_each_time(
    engine: Engine, server: Server
) -> None:
    first, second = add_account(engine, "R-1"), add_account(engine, "R-2")
    call = add_attempt(engine, first, channel="voice", message_id="CA0001")
    request = gather(call, Digits="9")
    answers = [
        server.send(request, **{IDEMPOTENCY: "tok-g"}),
        server.send(request, **{IDEMPOTENCY: "tok-g"}),
        server.send(request),  # a retry without Twilio's token: the same call's Gather
    ]
    assert [CONFIRMED in answer.text for answer in answers] == [True, True, True]
    assert count(engine, provider_events) == 1
    assert voice_opt_outs(engine) == [("voice", PHONE, "stop")]
    assert opt_out_events(engine) == [
        (first, "opt_out", "voice", PHONE),
        (second, "opt_out", "voice", PHONE),
    ]


def test_a_gather_for_a_call_we_do_not_know_still_opts_out_the_number_called(
    engine: Engine, server: Server
) -> None:
    account_id = add_account(engine)
    response = server.send(gather(None, sid="CAunknown", Digits="9"))
    assert CONFIRMED in response.text
    assert voice_opt_outs(engine) == [("voice", PHONE, "stop")]
    assert opt_out_events(engine) == [(account_id, "opt_out", "voice", PHONE)]


def test_a_gather_posted_to_the_twiml_url_is_malformed(engine: Engine, server: Server) -> None:
    call = add_attempt(engine, add_account(engine), channel="voice", message_id="CA0001")
    request = call_webhook("twiml", call, CallStatus="in-progress", Digits="9")
    assert server.send(request).status_code == 400
    assert voice_opt_outs(engine) == []


def identity(
    call: int | None, sid: str = "CA0001", lang: str = "en", **fields: str
) -> WebhookRequest:
    """What Twilio posts to the identity check's action: the key pressed, or none."""
    query = f"attempt_id={call}&lang={lang}" if call is not None else f"lang={lang}"
    params = [("AccountSid", "ACbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"), ("CallSid", sid),
              ("To", PHONE), ("From", "+16175550100"), ("CallStatus", "in-progress"),
              *fields.items()]  # fmt: skip
    return twilio(f"/webhooks/twilio_voice/identity?{query}", params)


def said(response_text: str) -> list[str]:
    """Every Say of a TwiML answer, in order."""
    return [say.text or "" for say in twiml(response_text).iter("Say")]


def flags(engine: Engine) -> dict[int, str | None]:
    return {row.id: row.flag for row in rows(engine, accounts)}


def phone_points(engine: Engine) -> set[tuple[int, str, str]]:
    return {(p.account_id, p.channel, p.status) for p in rows(engine, contact_points)
            if p.address == PHONE}  # fmt: skip


@pytest.mark.parametrize(
    ("collector", "language", "body"),
    [
        ("first_party", "en", "Your balance of $120.50 is due. Reply STOP to opt out."),
        ("third_party", "es", "Esta es una comunicacion de un cobrador de deudas. Su saldo de "
                              "$120.50 esta vencido."),
    ],
)  # fmt: skip
def test_only_the_debtors_1_plays_the_message(
    engine: Engine, server: Server, collector: str, language: str, body: str
) -> None:
    """Every person is asked first, for an account's own creditor as for a collector: the
    amount alone tells whoever answered of the debt. Only 1 plays the message, with the
    opt-out offer after it; the event records what was pressed and played."""
    account_id = add_account(engine)
    with engine.begin() as connection:
        connection.execute(
            update(accounts).where(accounts.c.id == account_id).values(collector_type=collector)
        )
    call = add_attempt(engine, account_id, channel="voice", message_id="CA0001", body=body,
                       locale=language)  # fmt: skip
    asked = server.send(call_webhook("twiml", call, CallStatus="in-progress", AnsweredBy="human"))
    assert "120.50" not in asked.text and "cobrador" not in asked.text
    answer = server.send(identity(call, lang=language, Digits="1"))
    assert answer.status_code == 200
    assert said(answer.text)[0] == body
    assert (
        twiml(answer.text)[1]
        .attrib["action"]
        .endswith(f"/gather?attempt_id={call}&lang={language}")
    )
    assert [(e.kind, e.raw_status) for e in rows(engine, provider_events)][-1] == (
        "identity",
        "keypress 1: human",
    )
    assert flags(engine) == {account_id: None}


@pytest.mark.parametrize("fields", [{"Digits": ""}, {}, {"Digits": "5"}])
def test_no_key_or_another_at_the_identity_check_plays_only_the_voicemail(
    engine: Engine, server: Server, fields: dict[str, str]
) -> None:
    account_id = add_account(engine)
    call = add_attempt(engine, account_id, channel="voice", message_id="CA0001")
    answer = server.send(identity(call, **fields))
    assert said(answer.text) == ["Please call Northwind Customer Care.", OFFER]
    (event,) = rows(engine, provider_events)
    assert event.raw_status.endswith(": voicemail") and event.attempt_id == call
    assert flags(engine) == {account_id: None}
    assert {status for _, _, status in phone_points(engine)} == {"active"}


def rename(engine: Engine, account_id: int, name: str) -> None:
    with engine.begin() as connection:
        connection.execute(update(accounts).where(accounts.c.id == account_id).values(name=name))


def test_not_me_hears_a_goodbye_and_the_number_is_a_wrong_party_for_the_account(
    engine: Engine, server: Server
) -> None:
    """Pressing 2: a goodbye that names no debt, the opt-out still offered; this account
    no longer texts or calls the number, and is flagged for an agent. Another debtor's
    account at the number keeps it: whoever answered may be that debtor."""
    called, other = add_account(engine, "R-1"), add_account(engine, "R-2")
    rename(engine, other, "Sam Roe")
    call = add_attempt(engine, called, channel="voice", message_id="CA0001")
    request = identity(call, Digits="2")
    for _ in range(2):  # a retry plays the same, and records nothing twice
        answer = server.send(request)
        assert said(answer.text) == ["Thank you. Sorry to have bothered you.", OFFER]
        assert "120.50" not in answer.text
    assert phone_points(engine) == {
        (called, "sms", "wrong_number"), (called, "voice", "wrong_number"),
        (other, "sms", "active"), (other, "voice", "active"),
    }  # fmt: skip
    assert flags(engine) == {called: "wrong_number", other: None}
    (event,) = rows(engine, provider_events)
    assert (event.kind, event.raw_status, event.attempt_id) == (
        "identity",
        "keypress 2: not the debtor",
        call,
    )
    assert voice_opt_outs(engine) == []


def test_not_me_is_a_wrong_party_for_every_account_of_the_debtor_asked_for(
    engine: Engine, server: Server
) -> None:
    """Whoever pressed 2 is not Pat Doe: none of Pat Doe's accounts at the number texts or
    calls it again (one written "pat  DOE" sounds the same in the call), each is flagged;
    Sam Roe's account there keeps it."""
    called, same, spelt, other = (add_account(engine, f"R-{n}") for n in range(1, 5))
    rename(engine, spelt, " pat  DOE ")
    rename(engine, other, "Sam Roe")
    call = add_attempt(engine, called, channel="voice", message_id="CA0001")
    server.send(identity(call, Digits="2"))
    assert phone_points(engine) == {
        (called, "sms", "wrong_number"), (called, "voice", "wrong_number"),
        (same, "sms", "wrong_number"), (same, "voice", "wrong_number"),
        (spelt, "sms", "wrong_number"), (spelt, "voice", "wrong_number"),
        (other, "sms", "active"), (other, "voice", "active"),
    }  # fmt: skip
    wrong = "wrong_number"
    assert flags(engine) == {called: wrong, same: wrong, spelt: wrong, other: None}


def test_not_me_tells_the_agent_why_in_the_inbox(engine: Engine, server: Server) -> None:
    """As a "wrong number" text does: an open inbox message on each account marked, saying
    who pressed 2 at which number, the called account's naming the call, and the reply
    pause until an agent reads it."""
    called, same = add_account(engine, "R-1"), add_account(engine, "R-2")
    call = add_attempt(engine, called, channel="voice", message_id="CA0001")
    for _ in range(2):  # a retry adds nothing
        server.send(identity(call, Digits="2"))
    (event,) = rows(engine, provider_events)
    messages = {m.account_id: m for m in rows(engine, inbox_messages)}
    assert messages.keys() == {called, same}
    for account_id, message in messages.items():
        assert (message.direction, message.status, message.intent, message.channel) == (
            "inbound", "open", "wrong_number", "voice"
        )  # fmt: skip
        assert (message.from_address, message.provider_event_id) == (PHONE, event.id)
        assert message.body == f"Pressed 2 in a call to {PHONE} asking for Pat Doe: not Pat Doe."
        assert message.attempt_id == (call if account_id == called else None)
        assert message.received_at is not None
    paused = {row.id: row.pause_reason for row in rows(engine, accounts)}
    assert paused == {called: "a reply waits in the inbox", same: "a reply waits in the inbox"}


def test_pressing_9_at_the_identity_check_opts_the_number_out(
    engine: Engine, server: Server
) -> None:
    account_id = add_account(engine)
    call = add_attempt(engine, account_id, channel="voice", message_id="CA0001")
    answer = server.send(identity(call, Digits="9"))
    assert said(answer.text) == [CONFIRMED]
    assert voice_opt_outs(engine) == [("voice", PHONE, "stop")]
    assert flags(engine) == {account_id: None}


def test_a_forged_identity_answer_is_refused_and_plays_nothing(
    engine: Engine, server: Server
) -> None:
    account_id = add_account(engine)
    call = add_attempt(engine, account_id, channel="voice", message_id="CA0001")
    genuine = identity(call, Digits="2")
    forged = replace(genuine, body=genuine.body.replace(b"Digits=2", b"Digits=1"))
    elsewhere = signed_form(
        f"{PUBLIC}/webhooks/twilio_voice/identity?attempt_id={call}&lang=en",
        [("CallSid", "CA0001"), ("To", PHONE), ("Digits", "1")],
        token="not-our-auth-token",
    )
    for request in (forged, elsewhere):
        response = server.send(request)
        assert response.status_code == 403 and "120.50" not in response.text
    assert count(engine, provider_events) == 0
    assert {status for _, _, status in phone_points(engine)} == {"active"}


def test_an_identity_answer_for_a_call_we_do_not_know_plays_nothing(
    engine: Engine, server: Server
) -> None:
    add_account(engine)
    answer = server.send(identity(None, sid="CAunknown", Digits="1"))
    assert [child.tag for child in twiml(answer.text)] == ["Hangup"]
    answer = server.send(identity(None, sid="CAother", Digits="2"))
    assert [child.tag for child in twiml(answer.text)] == ["Hangup"]
    answer = server.send(identity(None, sid="CAsilent"))
    assert [child.tag for child in twiml(answer.text)] == ["Hangup"]
    assert said(server.send(identity(None, sid="CAstop", Digits="9")).text) == [CONFIRMED]
    assert {status for _, _, status in phone_points(engine)} == {"active"}
    # Recorded as what was played: no message, no goodbye, no voicemail.
    recorded = {row.provider_message_id: row.raw_status for row in rows(engine, provider_events)}
    assert recorded == {
        "CAunknown": "keypress 1: hang up",
        "CAother": "keypress 2: hang up",
        "CAsilent": "no input: hang up",
        "CAstop": "keypress 9: opt-out",
    }
    assert count(engine, inbox_messages) == 0


def test_an_attempt_id_past_32_bits_is_none_of_ours_not_an_error(
    engine: Engine, server: Server
) -> None:
    """attempt.id is 32 bits: a larger ?attempt_id= is kept as an event for no attempt, on
    PostgreSQL too, whose query would refuse the number (503 on every retry)."""
    for sid, number in (("SM1", 2**31), ("SM2", 999_999_999_999_999_999)):
        response = server.send(sms_status("delivered", sid=sid, attempt_id=number))
        assert (response.status_code, response.json()) == (200, {"stored": 1, "duplicates": 0})
    assert [event.attempt_id for event in rows(engine, provider_events)] == [None, None]


def test_a_stop_from_a_sender_longer_than_any_address_is_kept_without_it(
    engine: Engine, server: Server
) -> None:
    """No address we store is over 320 characters: the message is kept, with no address
    (cut short it could be someone else's), instead of being refused on every retry."""
    response = server.send(sms_inbound("STOP", sender="+1" * 200))
    assert response.status_code == 200, response.text
    assert count(engine, provider_events) == 1
    assert count(engine, suppressions) == 0
