"""Calls through Twilio's Calls API, with answering-machine detection and call progress.

A person who answers is first asked who they are, with nothing said about a debt: "This
is {lcm_name}. This call is for Pat Doe. If you are Pat Doe, press 1. If you are not,
press 2." (a ``<Gather>`` of one key posted to our ``identity`` webhook). Detection tells
a person from a machine, not the debtor from a roommate, and the message names the debt
(15 USC 1692c(b), Reg F 1006.6(d)(1)). Only 1 plays the full message (the template's
``human`` block); 2 plays a neutral goodbye and marks the number a wrong party for the
account; no key, or another one, plays the limited-content voicemail; 9 opts out. An
answering machine gets only the limited-content voicemail. Two ways to get there
(``twiml_mode`` in channels/voice.yaml):

- ``url`` (default): the call asks Twilio to detect a machine first (``MachineDetection``,
  synchronous) and then fetch TwiML from our ``twiml`` webhook with ``AnsweredBy``; the web
  layer answers with ``answer_twiml``.
- ``inline``: the call carries the voicemail TwiML itself (safe for anyone to hear) and
  detection runs asynchronously (``AsyncAmd``); when it reports a person, the web layer
  may switch the live call to the identity check with ``update_call``.

Every call offers an automated opt-out before it ends (47 CFR 64.1200(b)(3)): after the
message, a ``<Gather>`` says "To stop these calls, press 9 or say stop." (the words from
templates/company.yaml, in the call's language) and listens for the answer. Twilio posts
what the person pressed or said to our ``gather`` webhook; 9 or a request to stop becomes
an ``opted_out`` event for the number on voice, and ``answer_gather`` confirms it before
hanging up. Spoken words are then read as a text's are (``outreach.replies``): "stop
calling me" is a request not to be called at all, on any number (1006.14(h)), and the
words reach the inbox.

Status callbacks report call progress (initiated, ringing, answered, completed); each
final status maps to an outcome of the contact history (conversation, no_answer, ...).
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
from twilio.twiml.voice_response import VoiceResponse

from outreach.channels import VoiceChannel
from outreach.clock import Clock
from outreach.config import Settings
from outreach.errors import ChannelError, ConfigError
from outreach.intents import stop_request
from outreach.models.accounts import ContactStatus
from outreach.models.messaging import SuppressionReason
from outreach.providers.base import (
    IDENTITY_CHECK,
    PLAY_MESSAGE,
    SAID_IN_OUR_CALL,
    Channel,
    EventType,
    OutboundMessage,
    Provider,
    ProviderEvent,
    SendResult,
    WebhookRequest,
    attempt_id_from,
    callback_url,
    dedupe_key,
    payload_digest,
)
from outreach.providers.twilio_common import (
    code_rule,
    form_payload,
    post_form,
    request_token,
    require_credentials,
    verify_signature,
)
from outreach.rendering.context import (
    CallIdentityTexts,
    CallOptOutTexts,
    Company,
    call_identity_texts,
    call_opt_out_texts,
    load_company,
)

log = logging.getLogger("outreach.providers.twilio_voice")
INVALID = ContactStatus.INVALID.value
WRONG_NUMBER = ContactStatus.WRONG_NUMBER.value

# Twilio's call statuses (the spec's call_enum_status, plus "initiated") in our words.
CALL_STATUS: dict[str, EventType] = {
    "queued": EventType.QUEUED,
    "initiated": EventType.SENT,
    "ringing": EventType.SENT,
    "in-progress": EventType.DELIVERED,  # answered; refined by AnsweredBy below
    "completed": EventType.COMPLETED,
    "busy": EventType.BUSY,
    "no-answer": EventType.NO_ANSWER,
    "failed": EventType.FAILED,
    "canceled": EventType.FAILED,
}
MACHINE = frozenset(
    {"machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other"}
)
# A fax answered: nothing is said (``answer_twiml`` hangs up) and the number is no voice
# line. The call failed, whatever its status says later (``completed``), and the number's
# voice contact point is marked invalid, as for 13224: no call goes to it again until an
# agent or an import says otherwise. Its texts are another contact point's, untouched.
FAX = "fax"
# A final call status as an outcome of the contact history (compliance counts them).
_FINAL_OUTCOMES = {
    "busy": "busy",
    "no-answer": "no_answer",
    "failed": "failed",
    "canceled": "failed",
}
_TWIML_STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]

# The key that opts out, and the words that do anywhere in what a person says ("please
# stop calling"): revocation by any reasonable means (47 CFR 64.1200(a)(10)), so a word
# that may mean stop is read as stop. English and Spanish, the languages we ship. The
# offer has just asked them to "say stop", so "stop" in the answer is honoured even in a
# sentence about something else ("I paid, stop by the office"): a stop nobody meant
# silences calls to one number, a missed one breaks the law.
OPT_OUT_DIGIT = "9"
_OPT_OUT_SPEECH = re.compile(
    r"\b(stop|stopall|quit|cancel|unsubscribe|revoke|opt ?out|remove me|remove my number|"
    r"do ?n[o'\u2019]?t call|no more calls|alto|parar|pare|no (me )?llamen?)\b",
    re.IGNORECASE,
)
# Speech recognition in the call's language, told which words to expect: the ones a
# request to stop is most often made of, in either of the ways it is read.
_SPEECH_LANGUAGES = {"en": "en-US", "es": "es-US"}
_SPEECH_HINTS = {
    "en": "stop, stop calling, quit, cancel, unsubscribe, opt out, no more, no more calls, "
    "remove me, remove my number, take me off your list, leave me alone",
    "es": "alto, parar, basta, detener, detente, cancelar, no más, no más llamadas, "
    "ya no me llamen, no me llamen más, dejen de llamarme, quítenme de su lista",
}
_LANGUAGE = re.compile(r"[a-z]{2,3}")
_SPOKEN_LENGTH = 1000  # a Gather listens for a few seconds; more is not speech


def call_language(locale: str | None) -> str:
    """The language a call is in ("en", "es"), from its locale or our callback's ``lang``."""
    language = (locale or "").replace("-", "_").split("_")[0].lower()
    return language if _LANGUAGE.fullmatch(language) else "en"


def asks_to_stop(digits: str | None, speech: str | None) -> bool:
    """Whether a Gather's input is the opt-out: the key 9, or words asking to stop. Words
    are read as a text's are too (``outreach.intents``), so whatever stops texts stops
    calls: "no more", "basta", "remove" as all that is said, "leave me alone", "dejen de
    llamarme", "quítenme de su lista"; but "no more" in a sentence about paying asks
    nothing there either ("I can pay fifty, no more than that")."""
    if (digits or "").strip() == OPT_OUT_DIGIT:
        return True
    if not speech:
        return False
    return bool(_OPT_OUT_SPEECH.search(speech)) or stop_request(speech, "voice") is not None


def company_or_none(templates_dir: Path) -> Company | None:
    """The company file, or None (the built-in opt-out words) when it cannot be read: a
    call must offer its opt-out even then."""
    try:
        return load_company(templates_dir)
    except ConfigError as exc:
        log.warning("voice: the opt-out words fall back to the defaults: %s", exc)
        return None


GATHER_PATH = "/webhooks/twilio_voice/gather"
IDENTITY_PATH = "/webhooks/twilio_voice/identity"

# The identity check's keys, and what each plays next: only the debtor hears the message
# (``PLAY_MESSAGE``).
CONFIRM_DIGIT = "1"
NOT_THE_DEBTOR_DIGIT = "2"
PLAY_NOT_THE_DEBTOR = "not the debtor"  # a neutral goodbye
PLAY_VOICEMAIL = "voicemail"  # no answer, or another key: the limited-content message
PLAY_OPT_OUT = "opt-out"  # the opt-out's confirmation
PLAY_HANG_UP = "hang up"  # a call we do not know: nothing is said
_IDENTITY_TIMEOUT = 6  # seconds to press a key once the question is said


def identity_answer(digits: str | None) -> str:
    """What the identity check's answer plays next (``PLAY_...``)."""
    pressed = (digits or "").strip()
    if pressed == CONFIRM_DIGIT:
        return PLAY_MESSAGE
    if pressed == NOT_THE_DEBTOR_DIGIT:
        return PLAY_NOT_THE_DEBTOR
    if pressed == OPT_OUT_DIGIT:
        return PLAY_OPT_OUT
    return PLAY_VOICEMAIL


def gather_url(base: str, attempt_id: int | None, language: str) -> str:
    """Where Twilio posts what the person pressed or said; our attempt id and the call's
    language ride along, signed with the rest of the URL."""
    query: dict[str, object] = {"lang": language}
    if attempt_id is not None:
        query = {"attempt_id": attempt_id, **query}
    return callback_url(base, GATHER_PATH, **query)


def identity_fields(digits: str | None) -> dict[str, Any]:
    """An identity check answer's event fields, whoever posts it (Twilio, the outbox):
    what was pressed and which words that plays next are its ``raw_status``, the call's
    record of what was said."""
    pressed = (digits or "").strip()
    played = identity_answer(pressed)
    event_type = {
        PLAY_MESSAGE: EventType.ANSWERED_HUMAN,
        PLAY_NOT_THE_DEBTOR: EventType.ANSWERED_HUMAN,
        PLAY_OPT_OUT: EventType.OPTED_OUT,
    }.get(played, EventType.UNKNOWN)
    heard = f"keypress {pressed}" if pressed else "no input"
    return {
        "event_type": event_type,
        "raw_status": f"{heard}: {played}"[:64],
        "suppression": SuppressionReason.STOP.value if played == PLAY_OPT_OUT else None,
        # Someone else answers at this number: a wrong party for the account called.
        "contact_status": WRONG_NUMBER if played == PLAY_NOT_THE_DEBTOR else None,
    }


def unknown_call_identity(event: ProviderEvent) -> ProviderEvent:
    """An identity check's answer in a call we do not know, as ``answer_identity`` answers
    it: only an opt-out is confirmed, anything else hangs up, so its ``raw_status`` says
    so (not the message or a goodbye that was never played), and it marks no number."""
    heard, _, played = (event.raw_status or "").rpartition(": ")
    if played == PLAY_OPT_OUT or not heard:
        return event
    return replace(event, raw_status=f"{heard}: {PLAY_HANG_UP}"[:64], contact_status=None)


def identity_url(base: str, attempt_id: int | None, language: str) -> str:
    """Where Twilio posts the key pressed at the identity check, signed like the Gather's."""
    query: dict[str, object] = {"lang": language}
    if attempt_id is not None:
        query = {"attempt_id": attempt_id, **query}
    return callback_url(base, IDENTITY_PATH, **query)


def identity_twiml(config: VoiceChannel, check: str, action: str) -> str:
    """The question to whoever answered, in a Gather of one key posted to ``action``; no
    key is posted too (``actionOnEmptyResult``), so that what follows is decided, and
    recorded, there. Nothing in it names the debt."""
    response = VoiceResponse()
    gather = response.gather(
        input="dtmf",
        num_digits=1,
        action=action,
        method="POST",
        timeout=_IDENTITY_TIMEOUT,
        action_on_empty_result=True,
    )
    gather.say(check, voice=config.voice, language=config.language)
    response.hangup()  # not reached while the action answers
    return str(response)


def opt_out_twiml(config: VoiceChannel, text: str, offer: str, action: str, language: str) -> str:
    """``text``, then ``offer`` in a Gather of one key or speech posted to ``action``, then
    a hang-up. The Gather listens only once the message is said: a person answering with
    "Hello?" must not cut the message short."""
    response = VoiceResponse()
    response.say(text, voice=config.voice, language=config.language)
    gather = response.gather(
        input="dtmf speech",
        num_digits=1,
        action=action,
        method="POST",
        language=_SPEECH_LANGUAGES.get(language, config.language),
        hints=_SPEECH_HINTS.get(language),
        speech_timeout="auto",
    )
    gather.say(offer, voice=config.voice, language=config.language)
    response.hangup()  # no input: the Gather falls through to here
    return str(response)


def played_twiml(
    config: VoiceChannel,
    company: Company | None,
    played: str,
    human: str,
    voicemail: str,
    action: str,
    language: str,
) -> str:
    """The words ``played`` names (``PLAY_...``), each followed by the opt-out offer posted
    to ``action``; the opt-out's confirmation ends the call."""
    texts = call_opt_out_texts(company, language)
    if played == PLAY_OPT_OUT:
        response = VoiceResponse()
        response.say(texts.confirmation, voice=config.voice, language=config.language)
        response.hangup()
        return str(response)
    said = {
        PLAY_MESSAGE: human,
        PLAY_NOT_THE_DEBTOR: call_identity_texts(company, language, "").not_the_debtor,
    }.get(played, voicemail)
    return opt_out_twiml(config, said, texts.offer, action, language)


def answered_event(answered_by: str | None) -> EventType:
    if answered_by == FAX:
        return EventType.FAILED
    if answered_by == "human":
        return EventType.ANSWERED_HUMAN
    if answered_by in MACHINE:
        return EventType.ANSWERED_MACHINE
    return EventType.UNKNOWN


def call_outcome(call_status: str, answered_by: str | None) -> str | None:
    """The contact-history outcome of a final call status, None while the call goes on."""
    if call_status in _FINAL_OUTCOMES:
        return _FINAL_OUTCOMES[call_status]
    if call_status != "completed":
        return None
    if answered_by in {"machine_end_beep", "machine_end_silence", "machine_end_other"}:
        return "limited_content_message"  # the voicemail was left after the greeting
    if answered_by == "machine_start":
        return "voicemail"
    if answered_by == FAX:
        return "failed"
    # A person, or no detection result: counted as a conversation, the stricter reading.
    return "conversation"


class TwilioVoice(Provider):
    name: ClassVar[str] = "twilio_voice"
    channel: Channel = "voice"
    webhook_paths: ClassVar[dict[str, str]] = {
        "call_status": "/webhooks/twilio_voice/status",
        "amd": "/webhooks/twilio_voice/amd",
        "twiml": "/webhooks/twilio_voice/twiml",
        "gather": GATHER_PATH,
        IDENTITY_CHECK: IDENTITY_PATH,
    }

    def __init__(
        self, settings: Settings, client: httpx.AsyncClient, clock: Clock, config: VoiceChannel
    ) -> None:
        require_credentials(settings)
        self.settings = settings
        self.client = client
        self.clock = clock
        self.config = config
        self.company = company_or_none(settings.templates_dir)

    def sender(self, message: OutboundMessage) -> str:
        return message.from_address or self.settings.twilio_from_number or ""

    def opt_out_texts(self, language: str) -> CallOptOutTexts:
        return call_opt_out_texts(self.company, language)

    def gather_url(self, attempt_id: int | None, language: str, base_url: str | None = None) -> str:
        return gather_url(base_url or self.settings.public_base_url, attempt_id, language)

    def identity_texts(self, language: str, name: str) -> CallIdentityTexts:
        return call_identity_texts(self.company, language, name)

    def answer_twiml(
        self,
        answered_by: str | None,
        human: str,
        voicemail: str,
        *,
        name: str = "",
        attempt_id: int | None = None,
        language: str = "en",
        base_url: str | None = None,
    ) -> str:
        """What to play once Twilio knows who answered: to a person, the identity check
        (the message waits for the debtor's 1: ``answer_identity``); to a machine, the
        voicemail and the opt-out offer after it."""
        if answered_by == FAX:
            response = VoiceResponse()
            response.hangup()
            return str(response)
        if answered_by == "human" and name.strip():
            return identity_twiml(
                self.config,
                self.identity_texts(language, name).check,
                identity_url(base_url or self.settings.public_base_url, attempt_id, language),
            )
        # A machine, no detection result, or a person we cannot ask for by name: only
        # what anyone may hear.
        return self.play(PLAY_VOICEMAIL, human, voicemail, attempt_id=attempt_id,
                         language=language, base_url=base_url)  # fmt: skip

    def play(
        self,
        played: str,
        human: str,
        voicemail: str,
        *,
        attempt_id: int | None = None,
        language: str = "en",
        base_url: str | None = None,
    ) -> str:
        """The words ``played`` names (``played_twiml``)."""
        action = self.gather_url(attempt_id, language, base_url)
        return played_twiml(self.config, self.company, played, human, voicemail, action, language)

    def answer_event(
        self, event: ProviderEvent, human: str, voicemail: str, language: str = "en", name: str = ""
    ) -> str:
        """``answer_twiml`` for a parsed TwiML fetch or AMD result (by its AnsweredBy)."""
        answered_by = event.payload.get("AnsweredBy")
        return self.answer_twiml(
            answered_by if isinstance(answered_by, str) else None,
            human,
            voicemail,
            name=name,
            attempt_id=event.attempt_id,
            language=language,
        )

    def answer_identity(
        self, event: ProviderEvent, human: str | None, voicemail: str | None, language: str
    ) -> str:
        """The answer to the identity check: the message only to the debtor (1). For a
        call we do not know (no ``human``), only an opt-out is answered, with its
        confirmation; anything else hangs up."""
        digits = event.payload.get("Digits")
        played = identity_answer(digits if isinstance(digits, str) else None)
        if human is None and played != PLAY_OPT_OUT:
            return self._say_and_hang_up(None)
        return self.play(played, human or "", voicemail or "", attempt_id=event.attempt_id,
                         language=language)  # fmt: skip

    def answer_gather(self, event: ProviderEvent, language: str) -> str:
        """The answer to a Gather: the confirmation after an opt-out, then a hang-up."""
        if event.event_type == EventType.OPTED_OUT:
            return self._say_and_hang_up(self.opt_out_texts(language).confirmation)
        return self._say_and_hang_up(None)

    def _say_and_hang_up(self, text: str | None) -> str:
        response = VoiceResponse()
        if text:
            response.say(text, voice=self.config.voice, language=self.config.language)
        response.hangup()
        return str(response)

    async def send(self, message: OutboundMessage) -> SendResult:
        sender = self.sender(message)
        if not sender:
            raise ChannelError(
                f"{self.name}: no number to call from: set TWILIO_FROM_NUMBER", provider=self.name
            )
        if not message.voicemail:
            raise ChannelError(
                f"{self.name}: attempt {message.attempt_id} has no voicemail text; a voice "
                "template needs a voicemail block",
                provider=self.name,
            )
        base = message.callback_base_url or self.settings.public_base_url
        paths = self.webhook_paths
        language = call_language(message.locale)
        ours = {"attempt_id": message.attempt_id, "lang": language}
        form: dict[str, str | list[str]] = {
            "To": message.to,
            "From": sender,
            "Timeout": str(self.config.ring_timeout),
            "StatusCallback": callback_url(
                base, paths["call_status"], attempt_id=message.attempt_id
            ),
            "StatusCallbackMethod": "POST",
            "StatusCallbackEvent": _TWIML_STATUS_EVENTS,
            "MachineDetection": self.config.machine_detection,
            "MachineDetectionTimeout": str(self.config.machine_detection_timeout),
        }
        if self.config.twiml_mode == "url":
            form["Url"] = callback_url(base, paths["twiml"], **ours)
            form["Method"] = "POST"
        else:
            form["Twiml"] = self.answer_twiml(
                None,
                message.body,
                message.voicemail,
                attempt_id=message.attempt_id,
                language=language,
                base_url=base,
            )
            form["AsyncAmd"] = "true"
            form["AsyncAmdStatusCallback"] = callback_url(base, paths["amd"], **ours)
            form["AsyncAmdStatusCallbackMethod"] = "POST"
        created = await post_form(
            self.client, self.settings, self.clock, self.name, "Calls.json", form
        )
        return SendResult(
            provider=self.name,
            provider_message_id=str(created["sid"]),
            status=CALL_STATUS.get(str(created.get("status")), EventType.UNKNOWN),
            sender=sender,
            raw=created,
        )

    async def update_call(self, call_sid: str, twiml: str) -> None:
        """Replace what a live call is playing (inline mode, once AMD reports a person)."""
        await post_form(
            self.client, self.settings, self.clock, self.name, f"Calls/{call_sid}.json",
            {"Twiml": twiml},
        )  # fmt: skip

    def verify(self, request: WebhookRequest) -> None:
        verify_signature(self.settings, request)

    def request_token(self, request: WebhookRequest) -> str | None:
        return request_token(request)

    def parse(self, request: WebhookRequest) -> list[ProviderEvent]:
        fields = request.form_dict()
        payload = form_payload(request)
        attempt_id = attempt_id_from(request.query().get("attempt_id"))
        call_sid = fields.get("CallSid")
        answered_by = fields.get("AnsweredBy") or None
        common: dict[str, Any] = {
            "provider": self.name,
            "payload": payload,
            "provider_message_id": call_sid,
            "attempt_id": attempt_id,
            "from_address": fields.get("From"),
            "to_address": fields.get("To"),
            "occurred_at": _timestamp(fields.get("Timestamp")) or self.clock.now(),
        }
        fax: dict[str, Any] = (
            {"outcome": "failed", "contact_status": INVALID} if answered_by == FAX else {}
        )
        sid = call_sid or payload_digest(payload)
        if urlsplit(request.url).path.endswith(self.webhook_paths[IDENTITY_CHECK]):
            return [self._identity_event(fields, sid, common)]
        if self._is_gather(request, fields):
            return [self._gather_event(fields, sid, common)]
        if "CallStatus" not in fields:
            if answered_by is None:
                return [
                    ProviderEvent(
                        kind="unrecognized",
                        event_type=EventType.UNKNOWN,
                        dedupe_key=dedupe_key(self.name, "unrecognized", sid),
                        **common,
                    )
                ]
            # The asynchronous AMD result.
            return [
                ProviderEvent(
                    kind="amd",
                    event_type=answered_event(answered_by),
                    dedupe_key=dedupe_key(self.name, "amd", sid),
                    raw_status=answered_by,
                    **fax,
                    **common,
                )
            ]
        call_status = fields["CallStatus"]
        if "CallbackSource" not in fields and "CallDuration" not in fields:
            # Twilio fetching TwiML: the call was answered, by AnsweredBy when AMD ran.
            event_type = answered_event(answered_by) if answered_by else EventType.DELIVERED
            return [
                ProviderEvent(
                    kind="twiml",
                    event_type=event_type,
                    dedupe_key=dedupe_key(self.name, "twiml", sid, answered_by or "-"),
                    raw_status=call_status,
                    **fax,
                    **common,
                )
            ]
        event_type = CALL_STATUS.get(call_status, EventType.UNKNOWN)
        if (call_status == "in-progress" and answered_by) or (
            call_status == "completed" and answered_by == FAX
        ):
            event_type = answered_event(answered_by)
        error_code = fields.get("ErrorCode") or fields.get("SipResponseCode") or None
        rule = code_rule(fields.get("ErrorCode"))
        return [
            ProviderEvent(
                kind="call_status",
                event_type=event_type,
                dedupe_key=dedupe_key(self.name, "status", sid, call_status),
                raw_status=call_status,
                error_code=error_code,
                outcome=fax.get("outcome", call_outcome(call_status, answered_by)),
                suppression=rule.suppression if rule else None,
                contact_status=fax.get("contact_status", rule.contact_status if rule else None),
                **common,
            )
        ]

    def _is_gather(self, request: WebhookRequest, fields: dict[str, str]) -> bool:
        """What a person pressed or said: Twilio adds Digits or SpeechResult to the call's
        fields; a request to our gather URL is one whatever it carries."""
        if "Digits" in fields or "SpeechResult" in fields:
            return True
        return urlsplit(request.url).path.endswith(self.webhook_paths["gather"])

    def _gather_event(
        self, fields: dict[str, str], sid: str, common: dict[str, Any]
    ) -> ProviderEvent:
        digits = fields.get("Digits", "").strip()
        speech = fields.get("SpeechResult", "")
        opted_out = asks_to_stop(digits, speech)
        if opted_out:
            event_type = EventType.OPTED_OUT
        elif digits:
            event_type = EventType.ANSWERED_HUMAN  # only a person presses keys
        else:
            event_type = EventType.UNKNOWN  # words that were not a request to stop
        # The words themselves stay out of the status (and the logs). A request to stop
        # in words is read like a text's ("stop calling me" is about every number, not
        # only this one) and kept for an agent: it is the body.
        raw_status = f"keypress {digits}" if digits else "speech" if speech else "no input"
        return ProviderEvent(
            kind=SAID_IN_OUR_CALL,
            event_type=event_type,
            # One Gather a call: its answer hangs up.
            dedupe_key=dedupe_key(self.name, "gather", sid),
            raw_status=raw_status[:64],
            suppression=SuppressionReason.STOP.value if opted_out else None,
            body=(speech.strip()[:_SPOKEN_LENGTH] or None) if opted_out else None,
            **common,
        )

    def _identity_event(
        self, fields: dict[str, str], sid: str, common: dict[str, Any]
    ) -> ProviderEvent:
        """The answer to "if you are Pat Doe, press 1": what was pressed, and which words
        that plays next, are its ``raw_status`` (the call's record of what was said)."""
        return ProviderEvent(
            kind=IDENTITY_CHECK,
            # One identity check a call: its answer decides the rest of the call.
            dedupe_key=dedupe_key(self.name, IDENTITY_CHECK, sid),
            **identity_fields(fields.get("Digits")),
            **common,
        )


def _timestamp(value: str | None) -> datetime | None:
    """Twilio's RFC 2822 ``Timestamp`` (call progress events), as aware UTC."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
        return parsed.astimezone(UTC) if parsed.tzinfo is not None else None
    except (TypeError, ValueError, OverflowError):  # numbers no date holds: when received
        return None
