"""The provider contract: what every provider takes, returns and understands.

A provider sends an ``OutboundMessage`` and answers with a ``SendResult`` or raises a
``ChannelError`` that says whether sending again is safe. It verifies a webhook
(``WebhookRequest``) or raises ``WebhookRejected``, and parses it into ``ProviderEvent``
values in one vocabulary, ``EventType``: the provider's own words stop here (DESIGN rule 3)
and the raw payload is kept. Providers never touch the database.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

from outreach.errors import WebhookRejected
from outreach.records import quick_init

Channel = Literal["sms", "email", "voice"]


class EventType(StrEnum):
    """Everything a provider can tell us about a message, in our words."""

    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    BOUNCED = "bounced"
    DROPPED = "dropped"
    DEFERRED = "deferred"
    COMPLAINED = "complained"
    UNSUBSCRIBED = "unsubscribed"
    OPENED = "opened"
    CLICKED = "clicked"
    REPLIED = "replied"
    OPTED_OUT = "opted_out"
    OPTED_IN = "opted_in"
    HELP_REQUESTED = "help_requested"
    ANSWERED_HUMAN = "answered_human"
    ANSWERED_MACHINE = "answered_machine"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    COMPLETED = "completed"
    UNKNOWN = "unknown"


@quick_init
@dataclass(frozen=True)
class OutboundMessage:
    """One message to send, as the dispatcher hands it over."""

    attempt_id: int
    idempotency_key: str
    channel: Channel
    to: str
    body: str  # the SMS, the email's text part, or what a person hears on a call
    from_address: str | None = None  # None: the channel's default sender
    subject: str | None = None  # email
    html: str | None = None  # email
    voicemail: str | None = None  # voice: the limited-content message for a machine
    template: str | None = None
    tone: str | None = None
    locale: str | None = None
    reply_to: str | None = None  # email; None: the channel's reply-to
    unsubscribe_url: str | None = None  # email; None: our signed one-click URL
    callback_base_url: str | None = None  # None: the PUBLIC_BASE_URL setting
    debtor_name: str | None = None  # voice: whom the identity check asks for


@dataclass(frozen=True)
class SendResult:
    """The provider took the message: its id for it, and the status it reported."""

    provider: str
    provider_message_id: str
    status: EventType
    sender: str
    raw: Mapping[str, Any] = field(default_factory=dict)


# The event kind of what a person pressed or said in a call we placed: its words, if any,
# are the body, and the debtor is the number called (``to_address``).
SAID_IN_OUR_CALL = "gather"
# The event kind of the answer to a call's identity check ("if you are Pat Doe, press 1"):
# its ``raw_status`` says what was pressed and which words were played after it.
IDENTITY_CHECK = "identity"
# What the identity check plays to the debtor who confirmed (the template's human block):
# an answer whose ``raw_status`` ends with it is a debtor who heard the message, whichever
# provider recorded it (Twilio, the outbox).
PLAY_MESSAGE = "human"


@dataclass(frozen=True)
class ProviderEvent:
    """A normalized webhook event (distinct from the database row of the same name)."""

    provider: str
    kind: str  # which webhook: message_status, inbound, call_status, amd, event_webhook...
    event_type: EventType
    dedupe_key: str  # the same event delivered twice has the same key
    occurred_at: datetime  # aware, UTC
    payload: Mapping[str, Any]  # as the provider sent it
    provider_message_id: str | None = None
    attempt_id: int | None = None
    from_address: str | None = None
    to_address: str | None = None
    subject: str | None = None
    body: str | None = None  # replies
    raw_status: str | None = None
    error_code: str | None = None
    outcome: str | None = None  # for the contact history: conversation, no_answer, ...
    suppression: str | None = None  # a SuppressionReason value the event calls for
    contact_status: str | None = None  # a ContactStatus value, e.g. invalid
    # The channel the event is about, when the provider carries one only (an email is an
    # email, whichever attempt it names): an attempt on another channel is not its attempt.
    channel: Channel | None = None

    @property
    def from_debtor(self) -> bool:
        """Whether the debtor sent it (a reply: their address is ``from_address``), rather
        than it being about our message or call (``to_address`` is theirs)."""
        return self.body is not None and self.kind != SAID_IN_OUR_CALL


@dataclass(frozen=True)
class WebhookRequest:
    """A webhook request as the web layer received it, independent of any framework.

    ``url`` is the address the provider called, query string included; ``body`` the raw
    bytes exactly as received (signatures cover them).
    """

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    form: Sequence[tuple[str, str]] | None = None  # parsed fields, if the web layer has them

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)

    def form_items(self) -> list[tuple[str, str]]:
        """Form fields in order, repeated keys kept (from ``form`` or the urlencoded body)."""
        if self.form is not None:
            return list(self.form)
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            raise WebhookRejected("the form body is not UTF-8") from None
        return parse_qsl(text, keep_blank_values=True)

    def form_dict(self) -> dict[str, str]:
        """The first value of each field."""
        fields: dict[str, str] = {}
        for key, value in self.form_items():
            fields.setdefault(key, value)
        return fields

    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.url).query, keep_blank_values=True))

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            raise WebhookRejected("the body is not JSON") from None


# A webhook's largest body unless its provider says otherwise: a Twilio callback, a
# one-click unsubscribe, an inbound text (1,600 characters, each at most 12 bytes
# percent-encoded, with the other fields) are a few KB at most. Twilio's signature is checked
# over every form field, so a forged body costs what it weighs before it can be refused.
WEBHOOK_BODY = 64 * 1024


class Provider(ABC):
    """What the dispatcher and the webhook routes need from every provider."""

    name: ClassVar[str]
    channel: Channel  # the outbox serves any channel, so this is per instance
    # Webhook kinds this provider receives, by the path (under PUBLIC_BASE_URL) it asks for.
    webhook_paths: ClassVar[Mapping[str, str]]
    # The largest body a webhook kind takes where it is not WEBHOOK_BODY (see ``max_body``).
    webhook_body_limits: ClassVar[Mapping[str, int]] = {}

    def max_body(self, kind: str) -> int:
        """The largest body, in bytes, the ``kind`` webhook takes: anything larger is
        refused (413) before it is verified or parsed."""
        return self.webhook_body_limits.get(kind, WEBHOOK_BODY)

    @abstractmethod
    def sender(self, message: OutboundMessage) -> str:
        """The sender a message goes out as: the key for per-sender rate limits."""

    @abstractmethod
    async def send(self, message: OutboundMessage) -> SendResult:
        """Hand the message over; raises ``ChannelError`` when the provider does not take it."""

    @abstractmethod
    def verify(self, request: WebhookRequest) -> None:
        """Raise ``WebhookRejected`` unless the request provably comes from the provider."""

    @abstractmethod
    def parse(self, request: WebhookRequest) -> list[ProviderEvent]:
        """The events in a verified request, each once."""

    def request_token(self, request: WebhookRequest) -> str | None:
        """The provider's own id for this webhook request, the same on each retry of it
        (None when the provider sends none): a retried request is stored once."""
        return None


def dedupe_key(provider: str, *parts: object) -> str:
    """A key that is the same whenever the same event arrives again (at most 128 chars)."""
    key = ":".join([provider, *(str(part) for part in parts)])
    if len(key) <= 128:
        return key
    return f"{provider}:sha256:{hashlib.sha256(key.encode('utf-8')).hexdigest()}"


def unique_events(events: Sequence[ProviderEvent]) -> list[ProviderEvent]:
    """Events in order, the second of any two with the same dedupe key dropped."""
    seen: set[str] = set()
    kept = []
    for event in events:
        if event.dedupe_key not in seen:
            seen.add(event.dedupe_key)
            kept.append(event)
    return kept


# attempt.id is a 32-bit integer: a larger number is none of ours, and PostgreSQL would
# refuse it in a query (the whole batch with it).
MAX_ATTEMPT_ID = 2**31 - 1


def attempt_id_from(value: object) -> int | None:
    """Our attempt id from a query string or custom argument, if it is one."""
    text = str(value).strip() if value is not None else ""
    # str.isdigit() also passes "²" (int() raises) and "٣" (int() reads 3): ASCII only.
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        return None
    number = int(text)
    return number if number <= MAX_ATTEMPT_ID else None


def callback_url(base: str, path: str, **query: object) -> str:
    """``base`` + ``path`` with ``query``: where a provider posts back about one message."""
    url = base.rstrip("/") + path
    return f"{url}?{urlencode(query)}" if query else url


def payload_digest(payload: Mapping[str, Any]) -> str:
    """A short stable digest of a payload, for events that carry no id of their own."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]
