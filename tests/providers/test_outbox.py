from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from outreach.channels import OutboxSimulation
from outreach.clock import FixedClock
from outreach.config import Settings
from outreach.errors import ChannelError
from outreach.providers.base import EventType, OutboundMessage
from outreach.providers.outbox import SAMPLE_REPLIES, Outbox
from tests.providers.conftest import PUBLIC, twiml

pytestmark = pytest.mark.anyio

SMS = OutboundMessage(7, "acct-1:step-1:sms", "sms", "+16175550199", "Your balance is due.")


def outbox(
    settings: Settings, clock: FixedClock, channel: str = "sms", **simulation: float
) -> Outbox:
    return Outbox(settings, clock, channel, OutboxSimulation(**simulation))  # type: ignore[arg-type]


async def test_each_message_is_one_json_line_an_operator_can_read(
    settings: Settings, clock: FixedClock
) -> None:
    sms = outbox(settings, clock)
    first = await sms.send(SMS)
    await sms.send(OutboundMessage(8, "acct-2:step-1:sms", "sms", "+16175550198", "Hello"))
    lines = settings.outbox_path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    record = json.loads(lines[0])
    assert record["message_id"] == first.provider_message_id
    assert (record["attempt_id"], record["channel"], record["to"], record["body"]) == (
        7, "sms", "+16175550199", "Your balance is due.",
    )  # fmt: skip
    assert record["queued_at"] == clock.now().isoformat()


async def test_a_message_for_another_channel_is_refused(
    settings: Settings, clock: FixedClock
) -> None:
    with pytest.raises(ChannelError):
        await outbox(settings, clock, "email").send(SMS)


async def test_an_unwritable_outbox_is_retryable(settings: Settings, clock: FixedClock) -> None:
    settings.outbox_path.mkdir()  # a directory where the file should be
    with pytest.raises(ChannelError) as raised:
        await outbox(settings, clock).send(SMS)
    assert raised.value.retryable


async def test_delivery_comes_after_the_delay_and_each_event_once(
    settings: Settings, clock: FixedClock
) -> None:
    sms = outbox(settings, clock, delivery_delay_seconds=5, reply_rate=0)
    result = await sms.send(SMS)
    (sent,) = sms.due_events(clock.now())
    assert (sent.event_type, sent.attempt_id) == (EventType.SENT, 7)
    assert sms.due_events(clock.now() + timedelta(seconds=4)) == []
    (delivered,) = sms.due_events(clock.now() + timedelta(seconds=5))
    assert delivered.event_type is EventType.DELIVERED
    assert delivered.provider_message_id == result.provider_message_id
    assert delivered.occurred_at == clock.now() + timedelta(seconds=5)
    assert sms.due_events(clock.now() + timedelta(days=1)) == []


async def test_sample_replies_go_through_the_keyword_reading(
    settings: Settings, clock: FixedClock
) -> None:
    sms = outbox(settings, clock, delivery_delay_seconds=1, reply_rate=1)
    for number in range(30):
        await sms.send(OutboundMessage(number, f"k{number}", "sms", "+16175550199", "Hi"))
    replies = [e for e in sms.due_events(clock.now() + timedelta(hours=1)) if e.kind == "reply"]
    assert len(replies) == 30
    assert {e.body for e in replies} <= set(SAMPLE_REPLIES)
    stops = [e for e in replies if e.body == "STOP"]
    assert stops and all(
        (e.event_type, e.suppression) == (EventType.OPTED_OUT, "stop") for e in stops
    )
    assert any(e.event_type is EventType.REPLIED for e in replies)
    assert all(e.from_address == "+16175550199" for e in replies)


async def test_the_same_demo_plays_the_same_way(settings: Settings, clock: FixedClock) -> None:
    def played(box: Outbox) -> list[tuple[str, str | None]]:
        return [
            (e.event_type.value, e.body) for e in box.due_events(clock.now() + timedelta(days=1))
        ]

    first, second = outbox(settings, clock, reply_rate=0.5), outbox(settings, clock, reply_rate=0.5)
    for box in (first, second):
        for number in range(10):
            await box.send(OutboundMessage(number, f"k{number}", "sms", "+16175550199", "Hi"))
    assert played(first) == played(second)


async def test_calls_end_with_a_contact_history_outcome(
    settings: Settings, clock: FixedClock
) -> None:
    calls = outbox(settings, clock, "voice")
    for number in range(40):
        await calls.send(
            OutboundMessage(
                number, f"call{number}", "voice", "+16175550199", "Hello", voicemail="Call us"
            )
        )
    events = calls.due_events(clock.now() + timedelta(days=1))
    outcomes = {e.outcome for e in events if e.outcome}
    assert outcomes <= {"conversation", "limited_content_message", "no_answer", "busy"}
    assert {"conversation", "limited_content_message", "no_answer"} <= outcomes
    answered = {e.event_type for e in events if e.raw_status == "answered"}
    assert answered == {EventType.ANSWERED_HUMAN, EventType.ANSWERED_MACHINE}


async def test_an_email_to_a_bounce_address_bounces(settings: Settings, clock: FixedClock) -> None:
    mail = outbox(settings, clock, "email")
    await mail.send(OutboundMessage(3, "k3", "email", "bounce@example.net", "Hi", subject="S"))
    events = mail.due_events(clock.now() + timedelta(days=1))
    assert [e.event_type for e in events] == [EventType.SENT, EventType.BOUNCED]
    assert events[-1].suppression == "bounce"


async def test_a_replay_over_the_webhook_gives_the_same_events(
    settings: Settings, clock: FixedClock
) -> None:
    sms = outbox(settings, clock, reply_rate=1)
    await sms.send(SMS)
    events = sms.due_events(clock.now() + timedelta(days=1))
    request = sms.signed_request(events, f"{PUBLIC}/webhooks/outbox/events")
    sms.verify(request)
    assert sms.parse(request) == events


@pytest.mark.parametrize("stamp", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+05:00"])
async def test_an_event_time_past_the_dates_utc_can_hold_is_taken_as_the_time_received(
    settings: Settings, clock: FixedClock, stamp: str
) -> None:
    sms = outbox(settings, clock, reply_rate=1)
    await sms.send(SMS)
    (sent, *_) = sms.due_events(clock.now() + timedelta(days=1))
    item = {**sent.payload, "timestamp": stamp}
    url = f"{PUBLIC}/webhooks/outbox/events"
    request = sms.signed_request([replace(sent, payload=item)], url)
    (event,) = sms.parse(request)
    assert event.occurred_at == clock.now()


async def test_a_call_line_shows_the_opt_out_it_offers(
    settings: Settings, clock: FixedClock
) -> None:
    calls = outbox(settings, clock, "voice")
    await calls.send(
        OutboundMessage(5, "call5", "voice", "+16175550199", "Hello Pat", voicemail="Call us",
                        debtor_name="Pat Doe")
    )  # fmt: skip
    await calls.send(
        OutboundMessage(6, "call6", "voice", "+16175550199", "Hola", voicemail="Llame", locale="es")
    )
    english, spanish = (
        json.loads(line) for line in settings.outbox_path.read_text("utf-8").splitlines()
    )
    assert english["opt_out"] == "To stop these calls, press 9 or say stop."
    action = f"{PUBLIC}/webhooks/twilio_voice/gather?attempt_id=5&amp;lang=en"
    heard_after = (
        ("debtor", "Hello Pat"),
        ("not_the_debtor", "Thank you. Sorry to have bothered you."),
        ("voicemail", "Call us"),
    )
    for heard, text in heard_after:
        tree = twiml(english["twiml"][heard])
        gather = tree.find("Gather")
        assert gather is not None and gather.attrib["numDigits"] == "1"
        assert tree[0].tag == "Say" and tree[0].text == text  # the message, then the offer
        assert [say.text for say in gather.findall("Say")] == [english["opt_out"]]
        assert action in english["twiml"][heard]
    # A person is asked who they are first, as Twilio would ask them.
    person = twiml(english["twiml"]["human"])
    assert [child.tag for child in person] == ["Gather", "Hangup"]
    assert person[0].attrib["action"] == (
        f"{PUBLIC}/webhooks/twilio_voice/identity?attempt_id=5&lang=en"
    )
    assert "Hello Pat" not in english["twiml"]["human"]
    assert "This call is for Pat Doe." in english["twiml"]["human"]
    # No name to ask for: a person hears what a machine does.
    assert spanish["twiml"]["human"] == spanish["twiml"]["voicemail"]
    assert spanish["opt_out"] == "Para dejar de recibir estas llamadas, marque 9 o diga alto."
    sms = outbox(settings, clock)
    await sms.send(SMS)
    last = json.loads(settings.outbox_path.read_text("utf-8").splitlines()[-1])
    assert "twiml" not in last and "opt_out" not in last


async def test_a_simulated_call_a_person_answers_goes_through_the_identity_check(
    settings: Settings, clock: FixedClock
) -> None:
    """The demo's calls as Twilio's go: a person's answer to "if you are Pat Doe, press 1"
    comes between the answer and the end of the call, mostly the debtor's 1."""
    calls = outbox(settings, clock, "voice")
    for n in range(200):
        message = OutboundMessage(n, f"call{n}", "voice", "+16175550199", "Hello Pat",
                                  voicemail="Call us", debtor_name="Pat Doe")  # fmt: skip
        await calls.send(message)
    events = calls.due_events(clock.now() + timedelta(days=1))
    pressed: list[str | None] = []
    for n in range(200):
        own = [e for e in events if e.attempt_id == n]
        kinds = [(e.kind, e.raw_status) for e in own]
        if ("status", "answered") not in kinds or own[1].payload["answered_by"] != "human":
            assert all(kind != "identity" for kind, _ in kinds)
            continue
        assert [kind for kind, _ in kinds] == ["status", "status", "identity", "status"]
        identity = own[2]
        pressed.append(identity.raw_status)
        assert identity.contact_status == (
            "wrong_number" if identity.raw_status == "keypress 2: not the debtor" else None
        )
    assert set(pressed) == {"keypress 1: human", "keypress 2: not the debtor"}
    assert pressed.count("keypress 1: human") > pressed.count("keypress 2: not the debtor")
