"""Email through SendGrid's Mail Send API, with the Event Webhook and Inbound Parse.

Send: JSON built with the SDK's mail helpers, POSTed to ``/v3/mail/send``; our attempt id
rides in ``custom_args`` (SendGrid returns custom args as top-level keys of every event),
and ``List-Unsubscribe`` with ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC
8058) points at our signed one-click URL. Webhooks:

- ``event_webhook``: JSON batches signed with ECDSA (the SDK's ``EventWebhook``, key
  SENDGRID_WEBHOOK_PUBLIC_KEY) over the timestamp header and the raw body.
- ``inbound``: Inbound Parse multipart posts, signed the same way by a Parse security policy
  (key SENDGRID_INBOUND_PUBLIC_KEY); they become replies.
- ``unsubscribe``: the one-click POST a mailbox provider sends for List-Unsubscribe,
  verified by the token we put in the URL.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.mail import (
    Category,
    CustomArg,
    From,
    Header,
    HtmlContent,
    Mail,
    PlainTextContent,
    ReplyTo,
    Subject,
    To,
)

from outreach.channels import EmailChannel
from outreach.clock import Clock, wall_clock
from outreach.config import Settings
from outreach.errors import ChannelError, ConfigError, WebhookRejected
from outreach.intents import reply_text, subject_words
from outreach.models.accounts import ContactStatus
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
    unique_events,
)
from outreach.providers.failures import CodeRule, http_failure, transport_failure
from outreach.providers.inbound_email import parse_inbound
from outreach.providers.keywords import reply_intent
from outreach.providers.transport import HttpAnswer, post_bytes

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
# How far a signed request's timestamp may be from now. The signature covers the timestamp
# so that a captured request cannot be replayed for ever. SendGrid retries an Event Webhook
# post that was not answered 2xx for up to 72 hours, and does not say whether a retry is
# signed again or keeps its first timestamp: 4 days back is accepted, so that no retry (an
# unsubscribe in it) is refused; a few minutes ahead allows for clocks that disagree.
MAX_TIMESTAMP_AGE = timedelta(days=4)
MAX_TIMESTAMP_AHEAD = timedelta(minutes=5)
ATTEMPT_ARG = "outreach_attempt_id"
KEY_ARG = "outreach_idempotency_key"

# SendGrid answers errors as {"errors": [{"message", "field", "help"}]} without codes, so
# the HTTP status is the code. 429 and 503 are retried by the shared rules; other 5xx are
# ambiguous (see failures.py).
SENDGRID_STATUS: dict[int, CodeRule] = {
    400: CodeRule("the request was invalid"),
    401: CodeRule("authorization required: check SENDGRID_API_KEY", outage=True),
    403: CodeRule(
        "access forbidden: the key lacks Mail Send, or the sender is not verified", outage=True
    ),
    404: CodeRule("not found: check SENDGRID_API_BASE_URL", outage=True),
    405: CodeRule("method not allowed: check SENDGRID_API_BASE_URL", outage=True),
    413: CodeRule("the message is too large"),
    429: CodeRule("too many requests", retryable=True),
}

# Event Webhook events in our words; bounce with type "blocked" is told apart below.
EVENTS: dict[str, EventType] = {
    "processed": EventType.SENT,
    "deferred": EventType.DEFERRED,
    "delivered": EventType.DELIVERED,
    "open": EventType.OPENED,
    "click": EventType.CLICKED,
    "bounce": EventType.BOUNCED,
    "dropped": EventType.DROPPED,
    "spamreport": EventType.COMPLAINED,
    "unsubscribe": EventType.UNSUBSCRIBED,
    # An unsubscribe group's (asm_group_id): outreach sends no ``asm`` block, so a group
    # unsubscribe is taken as the whole address's, the stricter reading.
    "group_unsubscribe": EventType.UNSUBSCRIBED,
    # Resubscribed to one unsubscribe group on SendGrid's preference page: stored, and
    # nothing else. It lifts no opt-out: not SendGrid's global unsubscribe (not a group's),
    # not our one-click unsubscribe nor a reply's (SendGrid never hears of them), and the
    # group unsubscribes it might undo are recorded as the address's, not the group's.
    "group_resubscribe": EventType.UNKNOWN,
}
_EVENT_SUPPRESSIONS = {
    "bounce": SuppressionReason.BOUNCE.value,
    "spamreport": SuppressionReason.COMPLAINT.value,
    "unsubscribe": SuppressionReason.UNSUBSCRIBE.value,
    "group_unsubscribe": SuppressionReason.UNSUBSCRIBE.value,
}
# A drop suppresses the address only when the reason is about the address itself (not
# about the content or the account).
_DROP_SUPPRESSIONS = {
    "bounced address": SuppressionReason.BOUNCE.value,
    "unsubscribed address": SuppressionReason.UNSUBSCRIBE.value,
    "spam reporting address": SuppressionReason.COMPLAINT.value,
    "invalid": SuppressionReason.INVALID.value,
}
_OUTCOMES = {
    EventType.DELIVERED: "delivered",
    EventType.BOUNCED: "failed",
    EventType.DROPPED: "failed",
    EventType.UNDELIVERED: "failed",
}
_PLUS_ATTEMPT = re.compile(r"\+(\d{1,18})@")
_MESSAGE_ID_SUFFIX = re.compile(r"\.(?:filter|recvd|ismtpd|geopod)", re.IGNORECASE)


def unsubscribe_token(secret_key: str, attempt_id: int) -> str:
    """The token that proves a one-click unsubscribe URL is ours (HMAC of the attempt id)."""
    digest = hmac.new(
        secret_key.encode("utf-8"), f"unsubscribe:{attempt_id}".encode(), hashlib.sha256
    )
    return digest.hexdigest()[:32]


class SendgridEmail(Provider):
    name: ClassVar[str] = "sendgrid_email"
    channel: Channel = "email"
    webhook_paths: ClassVar[dict[str, str]] = {
        "event_webhook": "/webhooks/sendgrid_email/events",
        "inbound": "/webhooks/sendgrid_email/inbound",
        "unsubscribe": "/webhooks/sendgrid_email/unsubscribe",
    }
    # Inbound Parse posts messages of up to 30 MB with their attachments. The Event Webhook
    # posts a batch every 30 seconds or once it reaches 768 KB: 5 MiB leaves room to spare.
    webhook_body_limits: ClassVar[dict[str, int]] = {
        "inbound": 32 * 1024 * 1024,
        "event_webhook": 5 * 1024 * 1024,
    }

    def __init__(
        self, settings: Settings, client: httpx.AsyncClient, clock: Clock, config: EmailChannel
    ) -> None:
        if settings.sendgrid_api_key is None:
            raise ConfigError("SendGrid is not configured: set SENDGRID_API_KEY")
        self.settings = settings
        self.client = client
        self.clock = clock
        self.config = config

    def sender(self, message: OutboundMessage) -> str:
        return message.from_address or self.settings.sendgrid_from_email or ""

    def mail_json(self, message: OutboundMessage) -> dict[str, Any]:
        """The Mail Send body, built with the SDK's helpers."""
        sender = self.sender(message)
        if not sender:
            raise ChannelError(
                f"{self.name}: no sender address: set SENDGRID_FROM_EMAIL", provider=self.name
            )
        if not message.subject:
            raise ChannelError(
                f"{self.name}: attempt {message.attempt_id} has no subject", provider=self.name
            )
        mail = Mail(
            from_email=From(sender, self.config.from_name),
            to_emails=To(message.to),
            subject=Subject(message.subject),
            plain_text_content=PlainTextContent(message.body),
            html_content=HtmlContent(message.html) if message.html else None,
        )
        reply_to = message.reply_to or self.config.reply_to
        if reply_to:
            mail.reply_to = ReplyTo(reply_to.replace("{attempt_id}", str(message.attempt_id)))
        mail.custom_arg = [
            CustomArg(ATTEMPT_ARG, str(message.attempt_id)),
            CustomArg(KEY_ARG, message.idempotency_key),
        ]
        targets = [f"<{self._unsubscribe_url(message)}>"]
        if self.config.unsubscribe_mailto:
            targets.append(f"<mailto:{self.config.unsubscribe_mailto}?subject=unsubscribe>")
        mail.header = [
            Header("List-Unsubscribe", ", ".join(targets)),
            Header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ]
        if self.config.categories:
            mail.category = [Category(name) for name in self.config.categories]
        built: dict[str, Any] = mail.get()
        return built

    def _unsubscribe_url(self, message: OutboundMessage) -> str:
        if message.unsubscribe_url:
            return message.unsubscribe_url
        base = message.callback_base_url or self.settings.public_base_url
        token = unsubscribe_token(self.settings.secret_key.get_secret_value(), message.attempt_id)
        return callback_url(
            base, self.webhook_paths["unsubscribe"], attempt_id=message.attempt_id, token=token
        )

    async def send(self, message: OutboundMessage) -> SendResult:
        body = self.mail_json(message)
        assert self.settings.sendgrid_api_key is not None
        url = self.settings.sendgrid_api_base_url.rstrip("/") + "/v3/mail/send"
        key = self.settings.sendgrid_api_key.get_secret_value()
        try:
            response = await post_bytes(
                self.client,
                url,
                json.dumps(
                    body, ensure_ascii=False, separators=(",", ":"), allow_nan=False
                ).encode(),
                {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise transport_failure(self.name, exc) from None
        if response.status_code == 202 or response.is_success:
            # Events name the message by sg_message_id, which starts with X-Message-Id.
            message_id = (response.headers.get("X-Message-Id") or "").strip()
            if not message_id:
                # Accepted, but we cannot tell which message: never send it again on our own.
                raise ChannelError(
                    f"{self.name}: HTTP {response.status_code} without X-Message-Id; the "
                    "message may have been accepted, so hold it for review",
                    provider=self.name,
                    ambiguous=True,
                    status_code=response.status_code,
                )
            return SendResult(
                provider=self.name,
                provider_message_id=message_id,
                status=EventType.QUEUED,
                sender=self.sender(message),
                raw={"status_code": response.status_code, "x_message_id": message_id},
            )
        raise self._error(response)

    def _error(self, response: HttpAnswer) -> ChannelError:
        try:
            errors = response.json().get("errors", [])
        except (ValueError, AttributeError):
            errors = []
        detail = "; ".join(
            str(error.get("message")) + (f" ({error['field']})" if error.get("field") else "")
            for error in errors
            if isinstance(error, dict)
        )
        return http_failure(
            self.name,
            response,
            self.clock.now(),
            code=str(response.status_code),
            rule=SENDGRID_STATUS.get(response.status_code),
            detail=detail or None,
            retry_after=_rate_limit_reset(response, self.clock.now()),
        )

    # --- webhooks -----------------------------------------------------------------------

    def _kind(self, request: WebhookRequest) -> str:
        # The token first: RFC 8058 says a one-click POST SHOULD be multipart/form-data.
        if "token" in request.query():
            return "unsubscribe"
        content_type = (request.header("Content-Type") or "").lower()
        if content_type.startswith("multipart/form-data"):
            return "inbound"
        return "event_webhook"

    def verify(self, request: WebhookRequest) -> None:
        kind = self._kind(request)
        if kind == "unsubscribe":
            self._verify_unsubscribe(request)
            return
        setting = (
            "SENDGRID_INBOUND_PUBLIC_KEY" if kind == "inbound" else "SENDGRID_WEBHOOK_PUBLIC_KEY"
        )
        key = (
            self.settings.sendgrid_inbound_public_key
            if kind == "inbound"
            else self.settings.sendgrid_webhook_public_key
        )
        if not key:
            raise WebhookRejected(f"{setting} is not set, so this {kind} cannot be verified")
        signature = request.header(SIGNATURE_HEADER)
        timestamp = request.header(TIMESTAMP_HEADER)
        if not signature or not timestamp:
            raise WebhookRejected(f"the request lacks {SIGNATURE_HEADER} or {TIMESTAMP_HEADER}")
        self._check_timestamp(timestamp)
        if not _ecdsa_valid(key, setting, timestamp, request.body, signature):
            raise WebhookRejected(f"{SIGNATURE_HEADER} does not match the body; check {setting}")

    def _check_timestamp(self, timestamp: str) -> None:
        """Refuse a signed request whose timestamp is not epoch seconds, or is older than
        ``MAX_TIMESTAMP_AGE`` or later than ``MAX_TIMESTAMP_AHEAD`` (a replay)."""
        text = timestamp
        if not (text.isascii() and text.isdigit()) or len(text) > 12:
            raise WebhookRejected(f"{TIMESTAMP_HEADER} is not a time in epoch seconds")
        # Seconds, not a datetime: twelve digits reach past the year 9999, which no
        # datetime holds, and anyone can send them before the signature is checked.
        signed_at = int(text)
        # SendGrid signs in real time, whatever time a demo's clock shows.
        now = wall_clock(self.clock).now().timestamp()
        if signed_at < now - MAX_TIMESTAMP_AGE.total_seconds():
            raise WebhookRejected(
                f"{TIMESTAMP_HEADER} is more than {MAX_TIMESTAMP_AGE.days} days old (a replay?)"
            )
        if signed_at > now + MAX_TIMESTAMP_AHEAD.total_seconds():
            raise WebhookRejected(f"{TIMESTAMP_HEADER} is in the future: check the clock")

    def _verify_unsubscribe(self, request: WebhookRequest) -> None:
        query = request.query()
        attempt_id = attempt_id_from(query.get("attempt_id"))
        if attempt_id is None:
            raise WebhookRejected("the unsubscribe URL names no attempt")
        token = query.get("token", "")
        # A URL in an email sent before SECRET_KEY was rotated is signed with a previous key.
        keys = (self.settings.secret_key.get_secret_value(), *self.settings.previous_secret_keys())
        # Tokens are ASCII (compare_digest would refuse other text with a TypeError).
        if not token.isascii() or not any(
            hmac.compare_digest(unsubscribe_token(key, attempt_id), token) for key in keys
        ):
            raise WebhookRejected("the unsubscribe token does not match")

    def parse(self, request: WebhookRequest) -> list[ProviderEvent]:
        kind = self._kind(request)
        if kind == "inbound":
            return [self._inbound(request)]
        if kind == "unsubscribe":
            return [self._one_click(request)]
        batch = request.json()
        items = batch if isinstance(batch, list) else [batch]
        return unique_events([self._event(item) for item in items if isinstance(item, dict)])

    def _event(self, item: dict[str, Any]) -> ProviderEvent:
        raw_status = str(item.get("event", ""))
        event_type = EVENTS.get(raw_status, EventType.UNKNOWN)
        if raw_status == "bounce" and item.get("type") == "blocked":
            # Blocked: the receiving server refused this message, not the address.
            event_type = EventType.UNDELIVERED
            suppression = None
        elif raw_status == "dropped":
            suppression = _DROP_SUPPRESSIONS.get(str(item.get("reason", "")).strip().lower())
        else:
            suppression = _EVENT_SUPPRESSIONS.get(raw_status)
        event_id = item.get("sg_event_id")
        message_id = item.get("sg_message_id")
        return ProviderEvent(
            provider=self.name,
            channel=self.channel,
            kind="event_webhook",
            event_type=event_type,
            dedupe_key=dedupe_key(
                self.name, raw_status, str(event_id) if event_id else payload_digest(item)
            ),
            occurred_at=_from_epoch(item.get("timestamp")) or self.clock.now(),
            payload=item,
            provider_message_id=(
                _MESSAGE_ID_SUFFIX.split(str(message_id), 1)[0] if message_id else None
            ),
            attempt_id=attempt_id_from(item.get(ATTEMPT_ARG)),
            to_address=str(item["email"]).lower() if item.get("email") else None,
            raw_status=raw_status + (f":{item['type']}" if item.get("type") else ""),
            error_code=str(item["status"]) if item.get("status") else None,
            outcome=_OUTCOMES.get(event_type),
            suppression=suppression,
            contact_status=(
                ContactStatus.INVALID.value
                if suppression in {SuppressionReason.BOUNCE, SuppressionReason.INVALID}
                else None
            ),
        )

    def _inbound(self, request: WebhookRequest) -> ProviderEvent:
        email = parse_inbound(request.body, request.header("Content-Type") or "")
        event_type = _inbound_intent(email.text, email.subject)
        attempt_id = next(
            (
                attempt_id_from(match.group(1))
                for address in (email.to_address, *email.envelope_to)
                if (match := _PLUS_ATTEMPT.search(address))
            ),
            None,
        )
        # With no Message-ID, what the mail says; read from the form fields alone, the
        # message as posted too (a redelivery is the same post).
        identity = email.message_id or payload_digest(
            {"from": email.from_address, "to": email.to_address, "subject": email.subject,
             "text": email.text} | ({"message": email.digest} if email.digest else {})
        )  # fmt: skip
        return ProviderEvent(
            provider=self.name,
            channel=self.channel,
            kind="inbound",
            event_type=event_type,
            dedupe_key=dedupe_key(self.name, "inbound", identity),
            occurred_at=self.clock.now(),
            payload=email.fields,
            attempt_id=attempt_id,
            from_address=email.from_address,
            to_address=email.to_address,
            subject=email.subject,
            body=email.text,
            raw_status="inbound",
            suppression=(
                SuppressionReason.UNSUBSCRIBE.value if event_type is EventType.OPTED_OUT else None
            ),
        )

    def _one_click(self, request: WebhookRequest) -> ProviderEvent:
        attempt_id = attempt_id_from(request.query().get("attempt_id"))
        now = self.clock.now()
        return ProviderEvent(
            provider=self.name,
            channel=self.channel,
            kind="unsubscribe",
            event_type=EventType.UNSUBSCRIBED,
            # The POST carries nothing but the URL, so a retry cannot be told from a second
            # press (one after an opt-in must unsubscribe again): each counts, as each click
            # of the body link does, but POSTs within one second are one (a client's or a
            # script's burst of them adds one row). One that finds the address unsubscribed
            # adds no suppression (``opt_outs.suppress_address``).
            dedupe_key=dedupe_key(
                self.name, "one-click", attempt_id, now.replace(microsecond=0).isoformat()
            ),
            occurred_at=now,
            # The start of the body, where "List-Unsubscribe=One-Click" is in either form
            # encoding; the rest says nothing and is not kept.
            payload={
                "attempt_id": attempt_id,
                "body": request.body[:ONE_CLICK_KEPT].decode("utf-8", "replace"),
            },
            attempt_id=attempt_id,
            raw_status="one-click",
            suppression=SuppressionReason.UNSUBSCRIBE.value,
        )


# How much of a one-click POST's body is kept: its List-Unsubscribe=One-Click marker,
# as a form or as multipart/form-data with its boundary.
ONE_CLICK_KEPT = 256


def _inbound_intent(text: str, subject: str) -> EventType:
    """What an email reply asks for. An opt-in is the whole reply (without its quoted
    history and signature), or with no text the subject, as a text's is: "Yes." followed
    by a question answers something else. An opt-out may be the first line alone ("STOP",
    then the mail client's own words): a stop nobody meant costs a message, a missed one
    breaks the law."""
    said = reply_text(text)
    # With no text, the subject, as the sender wrote it: "Re: STOP" is a STOP too.
    intent = reply_intent(said) if said else reply_intent(subject_words(subject))
    if intent in {EventType.OPTED_OUT, EventType.OPTED_IN}:
        return intent
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    if first_line and reply_intent(first_line) is EventType.OPTED_OUT:
        return EventType.OPTED_OUT
    return EventType.REPLIED


def _ecdsa_valid(key: str, setting: str, timestamp: str, body: bytes, signature: str) -> bool:
    try:
        verifier = EventWebhook(key)
    except ValueError:
        raise WebhookRejected(f"{setting} is not a valid public key") from None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    try:
        if text is not None:
            return bool(verifier.verify_signature(text, signature, timestamp))
        # Binary attachments: the same check as the SDK's, over the bytes as received.
        verifier.public_key.verify(
            base64.b64decode(signature), timestamp.encode() + body, ec.ECDSA(hashes.SHA256())
        )
        return True
    except (InvalidSignature, binascii.Error, ValueError):
        return False


def _from_epoch(value: object) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(str(value)), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _rate_limit_reset(response: HttpAnswer, now: datetime) -> float | None:
    """SendGrid's 429 names when the limit resets (X-RateLimit-Reset, epoch seconds)."""
    if response.status_code != 429:
        return None
    reset = _from_epoch(response.headers.get("X-RateLimit-Reset"))
    return max(0.0, (reset - now).total_seconds()) if reset else None
