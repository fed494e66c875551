"""A STOP stops every later message to that number at once, queued ones included: the real
dispatcher checks compliance again at the moment of sending and sees the opt-out."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import Engine

from outreach.clock import FixedClock
from outreach.config import Settings
from outreach.dispatcher import Dispatcher
from outreach.events import apply_events
from outreach.providers.outbox import Outbox
from outreach.ratelimit import RateLimiter
from tests.conftest import NOW, REPO
from tests.eventdata import OTHER_PHONE, PHONE, add_account, add_attempt, attempt, inbound
from tests.providers.conftest import twiml


def test_a_stop_blocks_the_attempts_already_queued_for_that_number(
    engine: Engine, tmp_path: Path
) -> None:
    stopped = add_attempt(engine, add_account(engine, "R-1"), status="queued", message_id=None)
    control = add_attempt(
        engine, add_account(engine, "R-2", phone=OTHER_PHONE), status="queued", message_id=None,
        to=OTHER_PHONE,
    )  # fmt: skip
    apply_events(engine, [inbound("STOP", sender=PHONE)], NOW)

    clock = FixedClock(NOW)  # the same instant the STOP was stored
    settings = Settings(
        _env_file=None,
        secret_key=SecretStr("test-secret"),
        channels_dir=REPO / "channels",
        schedules_dir=REPO / "schedules",
        outbox_path=tmp_path / "outbox.jsonl",
    )
    outboxes = {channel: Outbox(settings, clock, channel) for channel in ("sms", "email", "voice")}
    dispatcher = Dispatcher(engine, settings, clock, "test-worker", outboxes, RateLimiter({}))
    report = asyncio.run(dispatcher.tick())

    assert (report.outcomes["blocked"], report.outcomes["sent"]) == (1, 1)
    blocked = attempt(engine, stopped)
    assert blocked.status == "cancelled"
    assert blocked.error_message == "CARRIER_STOP_KEYWORD"
    assert attempt(engine, control).status == "sent"
    sent = [json.loads(line) for line in settings.outbox_path.read_text().splitlines()]
    assert [message["to"] for message in sent] == [OTHER_PHONE]


def test_a_dispatched_call_asks_for_the_accounts_debtor_by_name(
    engine: Engine, tmp_path: Path
) -> None:
    """The dispatcher hands the debtor's name to the call, so that a person who answers is
    asked for them before anything about the account is said (the outbox shows the TwiML
    Twilio would play)."""
    call = add_attempt(engine, add_account(engine), channel="voice", status="queued",
                       message_id=None)  # fmt: skip
    clock = FixedClock(NOW)
    settings = Settings(
        _env_file=None,
        secret_key=SecretStr("test-secret"),
        channels_dir=REPO / "channels",
        schedules_dir=REPO / "schedules",
        templates_dir=REPO / "templates",
        outbox_path=tmp_path / "outbox.jsonl",
    )
    outboxes = {channel: Outbox(settings, clock, channel) for channel in ("sms", "email", "voice")}
    dispatcher = Dispatcher(engine, settings, clock, "test-worker", outboxes, RateLimiter({}))
    asyncio.run(dispatcher.tick())
    assert attempt(engine, call).status == "sent"
    (line,) = [json.loads(line) for line in settings.outbox_path.read_text().splitlines()]
    person = twiml(line["twiml"]["human"])
    assert [child.tag for child in person] == ["Gather", "Hangup"]
    assert [say.text for say in person.iter("Say")] == [
        "Hello, this is Northwind Customer Care. This call is for Pat Doe. If you are Pat Doe, "
        "press 1. If you are not, press 2."
    ]
    assert "120.50" not in line["twiml"]["human"]
