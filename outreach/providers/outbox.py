"""The outbox: the provider when none is configured. Nothing leaves the machine.

Each message goes through the same path as a real one (rate limits, the attempt record,
events) and is written as one JSON line to OUTBOX_PATH, where an operator can read it. A
call's line also has the opt-out it offers and the TwiML Twilio would play (``opt_out``,
``twiml``), built by the same code as the Twilio provider's: to a person, the identity
check (``human``); after it, the message to the debtor who pressed 1 (``debtor``), the
goodbye to someone else (``not_the_debtor``); to a machine, the ``voicemail``.
For the demo, the outbox then plays the provider's part: ``due_events`` hands back, once
their time has come, the events a real provider would have posted (sent, delivered, a
call answered by a person or a machine, and a person's answer to the identity check:
mostly the debtor's 1, now and then someone else's 2) and now and then a sample reply ("I'll pay
Friday", "STOP"), as normalized events for the same event-applying path.

Its webhook (``/webhooks/outbox/events``) takes those events as JSON, signed with
HMAC-SHA256 of the body under SECRET_KEY, so that ``outreach simulate`` or a test can
replay them over HTTP through verify, parse and apply like any provider's.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from outreach.channels import OutboxSimulation, VoiceChannel, load_voice
from outreach.clock import Clock
from outreach.config import Settings
from outreach.errors import ChannelError, WebhookRejected
from outreach.models.messaging import SuppressionReason
from outreach.providers.base import (
    IDENTITY_CHECK,
    PLAY_MESSAGE,
    Channel,
    EventType,
    OutboundMessage,
    Provider,
    ProviderEvent,
    SendResult,
    WebhookRequest,
    attempt_id_from,
    dedupe_key,
    payload_digest,
    unique_events,
)
from outreach.providers.keywords import reply_intent
from outreach.providers.twilio_voice import (
    CONFIRM_DIGIT,
    NOT_THE_DEBTOR_DIGIT,
    PLAY_NOT_THE_DEBTOR,
    PLAY_VOICEMAIL,
    call_language,
    call_outcome,
    company_or_none,
    gather_url,
    identity_fields,
    identity_twiml,
    identity_url,
    played_twiml,
)
from outreach.rendering.context import Company, call_identity_texts, call_opt_out_texts

SIGNATURE_HEADER = "X-Outreach-Signature"
SAMPLE_REPLIES = (
    "I'll pay Friday",
    "Can I set up a payment plan?",
    "Who is this?",
    "I already paid this last week",
    "STOP",
    "HELP",
)
# Outboxes of several channels may share one file: one whole line at a time.
_FILE_LOCK = threading.Lock()
_OUTCOMES = {EventType.DELIVERED: "delivered", EventType.BOUNCED: "failed"}
# Of the demo's calls answered by a person, the share answered by someone else.
_WRONG_PARTY_SHARE = 0.1


@dataclass(frozen=True)
class _Pending:
    due_at: datetime
    payload: dict[str, Any]


def sign(secret_key: str, body: bytes) -> str:
    return hmac.new(secret_key.encode("utf-8"), body, hashlib.sha256).hexdigest()


class Outbox(Provider):
    """One outbox per channel; they may share a file (each line names its channel)."""

    name: ClassVar[str] = "outbox"
    webhook_paths: ClassVar[dict[str, str]] = {"events": "/webhooks/outbox/events"}
    # A replay's batch: a few thousand events (a few hundred bytes each) in one post.
    webhook_body_limits: ClassVar[dict[str, int]] = {"events": 1024 * 1024}

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        channel: Channel,
        simulation: OutboxSimulation | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.channel = channel
        self.simulation = simulation or OutboxSimulation()
        self.path: Path = settings.outbox_path
        self._pending: list[_Pending] = []
        # What a call would say, as the Twilio provider would say it.
        self._voice: VoiceChannel | None = None
        self._company: Company | None = None
        if channel == "voice":
            self._voice = load_voice(settings.channels_dir)
            self._company = company_or_none(settings.templates_dir)

    def sender(self, message: OutboundMessage) -> str:
        return message.from_address or f"outbox-{message.channel}"

    async def send(self, message: OutboundMessage) -> SendResult:
        if message.channel != self.channel:
            raise ChannelError(
                f"outbox for {self.channel} was handed a {message.channel} message",
                provider=self.name,
            )
        now = self.clock.now()
        message_id = "OB" + hashlib.sha256(message.idempotency_key.encode()).hexdigest()[:32]
        record = {
            "provider": self.name,
            "message_id": message_id,
            "attempt_id": message.attempt_id,
            "idempotency_key": message.idempotency_key,
            "channel": message.channel,
            "to": message.to,
            "from": self.sender(message),
            "subject": message.subject,
            "body": message.body,
            "html": message.html,
            "voicemail": message.voicemail,
            "template": message.template,
            "tone": message.tone,
            "queued_at": now.isoformat(),
            **self._call_script(message),
        }
        line = json.dumps(record, ensure_ascii=False) + "\n"
        try:
            await asyncio.to_thread(self._append, line)
        except OSError as exc:
            raise ChannelError(
                f"outbox: cannot write {self.path} ({exc.strerror}); check OUTBOX_PATH",
                provider=self.name,
                retryable=True,
                # Our settings or our disk, not the message: every message waits for it.
                outage=True,
            ) from None
        self._simulate(message, message_id, now)
        return SendResult(
            provider=self.name,
            provider_message_id=message_id,
            status=EventType.QUEUED,
            sender=self.sender(message),
            raw=record,
        )

    def _call_script(self, message: OutboundMessage) -> dict[str, Any]:
        """For a call: the opt-out it offers, and the TwiML each who answers gets."""
        if self._voice is None:
            return {}
        voice, company = self._voice, self._company
        language = call_language(message.locale)
        base = message.callback_base_url or self.settings.public_base_url
        action = gather_url(base, message.attempt_id, language)

        def played(what: str) -> str:
            return played_twiml(
                voice, company, what, message.body, message.voicemail or "", action, language
            )

        # Without a name to ask for, a person gets what a machine does (``answer_twiml``).
        name = " ".join((message.debtor_name or "").split())
        check = call_identity_texts(company, language, name).check
        person = (
            identity_twiml(voice, check, identity_url(base, message.attempt_id, language))
            if name
            else played(PLAY_VOICEMAIL)
        )
        return {
            "opt_out": call_opt_out_texts(company, language).offer,
            "twiml": {
                "human": person,
                "debtor": played(PLAY_MESSAGE),
                "not_the_debtor": played(PLAY_NOT_THE_DEBTOR),
                "voicemail": played(PLAY_VOICEMAIL),
            },
        }

    def _append(self, line: str) -> None:
        with _FILE_LOCK:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)

    # --- the demo's provider ------------------------------------------------------------

    def _simulate(self, message: OutboundMessage, message_id: str, sent_at: datetime) -> None:
        # Seeded by the message, so that the same demo plays out the same way each time.
        chance = random.Random(message.idempotency_key)
        delay = timedelta(seconds=self.simulation.delivery_delay_seconds)
        base = {
            "message_id": message_id,
            "attempt_id": message.attempt_id,
            "channel": message.channel,
            "from": self.sender(message),
            "to": message.to,
        }

        def later(after: timedelta, **fields: Any) -> None:
            at = sent_at + after
            self._pending.append(_Pending(at, {**base, **fields, "timestamp": at.isoformat()}))

        later(timedelta(0), event="sent")
        if message.channel == "voice":
            self._simulate_call(chance, delay, later)
            return
        if message.channel == "email" and message.to.lower().startswith("bounce"):
            later(delay, event="bounced")
            return
        later(delay, event="delivered")
        if message.channel == "email" and chance.random() < 0.5:
            later(delay * 2, event="opened")
        if chance.random() < self.simulation.reply_rate:
            later(
                delay * 3,
                event="reply",
                body=chance.choice(SAMPLE_REPLIES),
                **{"from": message.to, "to": self.sender(message)},
            )

    def _simulate_call(
        self, chance: random.Random, delay: timedelta, later: Callable[..., None]
    ) -> None:
        roll = chance.random()
        answered_by = "human" if roll < 0.35 else "machine_end_beep" if roll < 0.75 else None
        if answered_by is None:
            later(delay, event="no-answer" if roll < 0.9 else "busy")
            return
        later(delay, event="answered", answered_by=answered_by)
        if answered_by == "human":
            # The identity check's answer, as Twilio would post it: the message is played
            # to the debtor only; someone else is a wrong party for the account.
            someone_else = chance.random() < _WRONG_PARTY_SHARE
            digits = NOT_THE_DEBTOR_DIGIT if someone_else else CONFIRM_DIGIT
            later(delay * 1.5, event=IDENTITY_CHECK, digits=digits)
        later(delay * 2, event="completed", answered_by=answered_by)

    def due_events(self, now: datetime) -> list[ProviderEvent]:
        """Simulated events whose time has come, each handed out once."""
        due = [p for p in self._pending if p.due_at <= now]
        self._pending = [p for p in self._pending if p.due_at > now]
        return [self._event(p.payload) for p in sorted(due, key=lambda p: p.due_at)]

    def signed_request(self, events: list[ProviderEvent], url: str) -> WebhookRequest:
        """The webhook request a replay of ``events`` makes (what ``simulate`` posts)."""
        body = json.dumps([dict(e.payload) for e in events], ensure_ascii=False).encode()
        signature = sign(self.settings.secret_key.get_secret_value(), body)
        return WebhookRequest(
            method="POST",
            url=url,
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
            body=body,
        )

    # --- the webhook --------------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        given = request.header(SIGNATURE_HEADER) or ""
        expected = sign(self.settings.secret_key.get_secret_value(), request.body)
        # Signatures are ASCII (compare_digest would refuse other text with a TypeError).
        if not given.isascii() or not hmac.compare_digest(expected, given):
            raise WebhookRejected(f"{SIGNATURE_HEADER} does not match the body")

    def parse(self, request: WebhookRequest) -> list[ProviderEvent]:
        batch = request.json()
        items = batch if isinstance(batch, list) else [batch]
        return unique_events([self._event(item) for item in items if isinstance(item, dict)])

    def _event(self, item: dict[str, Any]) -> ProviderEvent:
        raw_status = str(item.get("event", ""))
        occurred = _when(item.get("timestamp")) or self.clock.now()
        if raw_status == IDENTITY_CHECK:
            # A simulated answer to the identity check, recorded as Twilio's is.
            return self._item_event(
                item, IDENTITY_CHECK, occurred, **identity_fields(str(item.get("digits") or ""))
            )
        answered_by = item.get("answered_by")
        event_type = _event_type(raw_status, answered_by, _text(item, "body") or "")
        outcome = (
            call_outcome(raw_status, answered_by)
            if item.get("channel") == "voice"
            else _OUTCOMES.get(event_type)
        )
        opted_out = (
            SuppressionReason.UNSUBSCRIBE
            if item.get("channel") == "email"
            else SuppressionReason.STOP
        )
        suppression = {
            EventType.OPTED_OUT: opted_out.value,
            EventType.BOUNCED: SuppressionReason.BOUNCE.value,
        }.get(event_type)
        return self._item_event(
            item,
            "reply" if raw_status == "reply" else "status",
            occurred,
            event_type=event_type,
            body=_text(item, "body"),
            raw_status=raw_status,
            outcome=outcome,
            suppression=suppression,
        )

    def _item_event(
        self, item: dict[str, Any], kind: str, occurred: datetime, **answer: Any
    ) -> ProviderEvent:
        """The event of one outbox item: what every item carries, then what its kind says
        (``answer``). The item's ``event`` keys it: a message has one of each."""
        event = str(item.get("event", ""))
        return ProviderEvent(
            provider=self.name,
            kind=kind,
            dedupe_key=dedupe_key(
                self.name, _text(item, "message_id") or payload_digest(item), event
            ),
            occurred_at=occurred,
            payload=item,
            provider_message_id=_text(item, "message_id"),
            attempt_id=attempt_id_from(item.get("attempt_id")),
            from_address=_text(item, "from"),
            to_address=_text(item, "to"),
            **answer,
        )


def _text(item: dict[str, Any], key: str) -> str | None:
    """A text field of a replayed event: a number as its digits, anything else (a list, an
    object) as absent, so one odd field cannot make the batch unstorable on every retry."""
    value = item.get(key)
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _event_type(raw_status: str, answered_by: object, body: str) -> EventType:
    if raw_status == "reply":
        return reply_intent(body)
    if raw_status == "answered":
        return EventType.ANSWERED_HUMAN if answered_by == "human" else EventType.ANSWERED_MACHINE
    known = {
        "sent": EventType.SENT,
        "delivered": EventType.DELIVERED,
        "opened": EventType.OPENED,
        "bounced": EventType.BOUNCED,
        "completed": EventType.COMPLETED,
        "no-answer": EventType.NO_ANSWER,
        "busy": EventType.BUSY,
    }
    return known.get(raw_status, EventType.UNKNOWN)


def _when(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
        return parsed.astimezone(UTC) if parsed.tzinfo is not None else None
    except (ValueError, OverflowError):  # a time UTC cannot hold (past 9999): when received
        return None
