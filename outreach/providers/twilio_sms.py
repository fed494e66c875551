"""SMS through Twilio's Messages API, with status callbacks and inbound messages.

Send: a form POST to ``/2010-04-01/Accounts/{sid}/Messages.json`` with ``To``, ``Body``,
``From`` or ``MessagingServiceSid``, and a ``StatusCallback`` carrying our attempt id, so
that a callback can be tied to its attempt even before the message SID is stored.
Webhooks: status callbacks (``MessageStatus``) and inbound messages (``Body``), both signed
with ``X-Twilio-Signature``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx

from outreach.channels import SmsChannel
from outreach.clock import Clock
from outreach.config import Settings
from outreach.errors import ChannelError
from outreach.models.messaging import SuppressionReason
from outreach.providers.base import (
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
from outreach.providers.keywords import OPT_OUT_TYPES, provider_intent
from outreach.providers.twilio_common import (
    code_rule,
    form_payload,
    post_form,
    request_token,
    require_credentials,
    verify_signature,
)

# Twilio's message statuses (the spec's message_enum_status) in our words.
MESSAGE_STATUS: dict[str, EventType] = {
    "accepted": EventType.QUEUED,
    "scheduled": EventType.QUEUED,
    "queued": EventType.QUEUED,
    "sending": EventType.QUEUED,
    "sent": EventType.SENT,
    "delivered": EventType.DELIVERED,
    "partially_delivered": EventType.DELIVERED,
    "read": EventType.OPENED,
    "undelivered": EventType.UNDELIVERED,
    "failed": EventType.FAILED,
    "canceled": EventType.FAILED,
    "receiving": EventType.REPLIED,
    "received": EventType.REPLIED,
}
_OUTCOMES = {
    EventType.DELIVERED: "delivered",
    EventType.UNDELIVERED: "failed",
    EventType.FAILED: "failed",
}


class TwilioSms(Provider):
    name: ClassVar[str] = "twilio_sms"
    channel: Channel = "sms"
    webhook_paths: ClassVar[dict[str, str]] = {
        "message_status": "/webhooks/twilio_sms/status",
        "inbound": "/webhooks/twilio_sms/inbound",
    }

    def __init__(
        self, settings: Settings, client: httpx.AsyncClient, clock: Clock, config: SmsChannel
    ) -> None:
        require_credentials(settings)
        self.settings = settings
        self.client = client
        self.clock = clock
        self.config = config

    def sender(self, message: OutboundMessage) -> str:
        return (
            message.from_address
            or self.settings.twilio_messaging_service_sid
            or self.settings.twilio_from_number
            or ""
        )

    async def send(self, message: OutboundMessage) -> SendResult:
        base = message.callback_base_url or self.settings.public_base_url
        form: dict[str, str] = {
            "To": message.to,
            "Body": message.body,
            "StatusCallback": callback_url(
                base, self.webhook_paths["message_status"], attempt_id=message.attempt_id
            ),
        }
        if message.from_address:
            form["From"] = message.from_address
        elif self.settings.twilio_messaging_service_sid:
            form["MessagingServiceSid"] = self.settings.twilio_messaging_service_sid
        elif self.settings.twilio_from_number:
            form["From"] = self.settings.twilio_from_number
        else:
            raise ChannelError(
                f"{self.name}: no sender: set TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID",
                provider=self.name,
            )
        created = await post_form(
            self.client, self.settings, self.clock, self.name, "Messages.json", form
        )
        return SendResult(
            provider=self.name,
            provider_message_id=str(created["sid"]),
            status=MESSAGE_STATUS.get(str(created.get("status")), EventType.UNKNOWN),
            sender=self.sender(message),
            raw=created,
        )

    def verify(self, request: WebhookRequest) -> None:
        verify_signature(self.settings, request)

    def request_token(self, request: WebhookRequest) -> str | None:
        return request_token(request)

    def parse(self, request: WebhookRequest) -> list[ProviderEvent]:
        fields = request.form_dict()
        payload = form_payload(request)
        if "MessageStatus" in fields:
            return [self._status(fields, payload, request)]
        if "Body" in fields or fields.get("SmsStatus") == "received":
            return [self._inbound(fields, payload)]
        return [
            ProviderEvent(
                provider=self.name,
                kind="unrecognized",
                event_type=EventType.UNKNOWN,
                dedupe_key=dedupe_key(
                    self.name, "unrecognized", _message_sid(fields) or payload_digest(payload)
                ),
                occurred_at=self.clock.now(),
                payload=payload,
                provider_message_id=_message_sid(fields),
            )
        ]

    def _status(
        self, fields: dict[str, str], payload: dict[str, Any], request: WebhookRequest
    ) -> ProviderEvent:
        raw_status = fields["MessageStatus"]
        event_type = MESSAGE_STATUS.get(raw_status, EventType.UNKNOWN)
        error_code = fields.get("ErrorCode") or None
        rule = code_rule(error_code) if event_type in _OUTCOMES else None
        sid = _message_sid(fields)
        return ProviderEvent(
            provider=self.name,
            kind="message_status",
            event_type=event_type,
            dedupe_key=dedupe_key(self.name, "status", sid or payload_digest(payload), raw_status),
            # Status callbacks carry no event time of their own (RawDlrDoneDate is the
            # carrier's, in its own format): the time we heard of it.
            occurred_at=self.clock.now(),
            payload=payload,
            provider_message_id=sid,
            attempt_id=attempt_id_from(request.query().get("attempt_id")),
            from_address=fields.get("From"),
            to_address=fields.get("To"),
            raw_status=raw_status,
            error_code=error_code,
            outcome=_OUTCOMES.get(event_type),
            suppression=rule.suppression if rule else None,
            contact_status=rule.contact_status if rule else None,
        )

    def _inbound(self, fields: dict[str, str], payload: dict[str, Any]) -> ProviderEvent:
        body = fields.get("Body", "")
        # Twilio's Advanced Opt-Out says what it understood; otherwise read the keyword as
        # Twilio does (one word of its list). What Twilio did not catch ("Opt out") is a
        # reply, which outreach reads, acts on and answers itself.
        understood = OPT_OUT_TYPES.get(fields.get("OptOutType", "").upper())
        event_type = understood or provider_intent(body)
        sid = _message_sid(fields)
        return ProviderEvent(
            provider=self.name,
            kind="inbound",
            event_type=event_type,
            dedupe_key=dedupe_key(self.name, "inbound", sid or payload_digest(payload)),
            occurred_at=self.clock.now(),
            payload=payload,
            provider_message_id=sid,
            from_address=fields.get("From"),
            to_address=fields.get("To"),
            body=body,
            raw_status=fields.get("OptOutType") or fields.get("SmsStatus"),
            suppression=(
                SuppressionReason.STOP.value if event_type is EventType.OPTED_OUT else None
            ),
        )


def _message_sid(fields: dict[str, str]) -> str | None:
    return fields.get("MessageSid") or fields.get("SmsSid") or fields.get("SmsMessageSid")
