"""What outreach decided, sent and heard back."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, Index, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from outreach.models.base import document, reference_to, short, text, when


class AttemptStatus(StrEnum):
    QUEUED = "queued"  # planned and allowed; waiting for dispatch
    SENDING = "sending"  # handed to the provider; outcome not yet known
    SENT = "sent"  # the provider accepted it
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    CANCELLED = "cancelled"  # withdrawn before sending (blocked at send time, STOP, paid)
    UNKNOWN = "unknown"  # the provider may have accepted it: held for review, never resent


class Attempt(SQLModel, table=True):
    """One message outreach decided to send, from queued to its final status."""

    __table_args__ = (
        # The same step on the same channel is planned at most once per account.
        UniqueConstraint("idempotency_key"),
        Index("ix_attempt_account_created", "account_id", "created_at"),
        Index("ix_attempt_dispatch", "status", "next_try_at"),
        # The start page's count of the day's messages by status, without reading them all.
        Index("ix_attempt_created_status", "created_at", "status"),
        Index("ix_attempt_provider_message", "provider_message_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = reference_to("account", index=False)
    contact_point_id: int | None = reference_to("contact_point", nullable=True, index=False)
    template_version_id: int | None = reference_to("template_version", nullable=True, index=False)
    idempotency_key: str = short(200)
    step_key: str = short(64)
    channel: str = short(8)
    provider: str | None = short(32, nullable=True, default=None)
    to_address: str = short(320)
    template_name: str = short(100)
    tone: str = short(16)
    locale: str = short(16)
    subject: str | None = short(300, nullable=True, default=None)
    body: str = text()
    body_html: str | None = text(nullable=True)
    voicemail: str | None = text(nullable=True)  # voice: what a machine is left
    # A cadence message: a digest of the account's facts it was written from, checked
    # again before it leaves (``outreach.written_facts``).
    facts_digest: str | None = short(16, nullable=True, default=None)
    status: str = short(16, default=AttemptStatus.QUEUED)
    # What came of it, in compliance's words (no_answer, voicemail, conversation, busy...).
    outcome: str | None = short(32, nullable=True, default=None)
    automated: bool = True  # planned by the daemon; False for an agent's own message
    provider_message_id: str | None = short(100, nullable=True, default=None)
    error_code: str | None = short(32, nullable=True, default=None)
    error_message: str | None = short(500, nullable=True, default=None)
    tries: int = 0
    # The provider outages it has waited out since it was last tried (sent, or refused
    # for itself): the next outage's wait doubles with each (``dispatcher._outage_wait``).
    # Looks that are not tries (a spent rate, a stop) keep it. Defaulted (0) by the
    # database only: an insert that leaves it out is valid on a schema from before it too.
    outages: int = Field(default=0, sa_column=Column(Integer(), nullable=False, server_default="0"))
    next_try_at: datetime | None = when(nullable=True)
    acquired_by: str | None = short(64, nullable=True, default=None)
    acquired_until: datetime | None = when(nullable=True)
    created_at: datetime = when()
    updated_at: datetime = when()
    sent_at: datetime | None = when(nullable=True)
    # When its latest send was marked ``sending`` (it leaves then, or at its rate-limit
    # slot seconds later): a message sent hours after it was planned, or held for review,
    # counts for the caps from then.
    placed_at: datetime | None = when(nullable=True)
    # An agent's answer: when the debtor's message it may respond to at once came, even in
    # a time they designated inconvenient (see ``Contact.responding_to``).
    responding_to: datetime | None = when(nullable=True)
    # An ``unknown`` attempt settled by hand (``outreach attempts settle``): who settled
    # it, when, and what they wrote of it.
    reviewed_by: str | None = short(64, nullable=True, default=None)
    reviewed_at: datetime | None = when(nullable=True)
    review_note: str | None = short(500, nullable=True, default=None)


class StepOutcome(StrEnum):
    QUEUED = "queued"  # an attempt was planned for it
    SKIPPED = "skipped"  # missed, its conditions not met, or blocked on every channel


class CadenceStep(SQLModel, table=True):
    """A cadence step dealt with for an account: the cadence's memory of where it is."""

    __tablename__ = "cadence_step"
    __table_args__ = (UniqueConstraint("account_id", "step_key"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = reference_to("account", index=False)
    step_key: str = short(64)
    outcome: str = short(16)
    reason: str | None = short(200, nullable=True, default=None)
    at: datetime = when()


class Verdict(StrEnum):
    ALLOW = "allow"
    DEFER = "defer"  # not before a given instant
    BLOCK = "block"  # not until an event lifts it


class Decision(SQLModel, table=True):
    """Compliance's verdict on one proposed contact, stored whether or not it was sent."""

    __table_args__ = (Index("ix_decision_account_decided", "account_id", "decided_at"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = reference_to("account", index=False)
    attempt_id: int | None = reference_to("attempt", nullable=True, index=False)
    stage: str = short(16)  # plan, dispatch, explain
    step_key: str | None = short(64, nullable=True, default=None)
    channel: str = short(8)
    address: str | None = short(320, nullable=True, default=None)
    verdict: str = short(8)
    not_before: datetime | None = when(nullable=True)
    reasons: list[dict[str, Any]] = document()
    rules_evaluated: list[str] | None = document(nullable=True)
    input_snapshot: dict[str, Any] | None = document(nullable=True)
    ruleset_version: str = short(64)
    decided_at: datetime = when()


class ProviderEvent(SQLModel, table=True):
    """A normalized event from a provider webhook; the raw payload is kept as it came."""

    __tablename__ = "provider_event"
    __table_args__ = (
        # The same webhook delivered twice is stored once: by the event's own key, and by
        # the provider's token for a webhook request it retries (Twilio's
        # I-Twilio-Idempotency-Token), where it sends one.
        UniqueConstraint("dedupe_key"),
        UniqueConstraint("provider", "request_token"),
        Index("ix_provider_event_message", "provider", "provider_message_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    provider: str = short(32)
    kind: str = short(32)  # which webhook: message_status, inbound, event_webhook...
    event_type: str = short(24)
    raw_status: str | None = short(64, nullable=True, default=None)
    provider_message_id: str | None = short(100, nullable=True, default=None)
    attempt_id: int | None = reference_to("attempt", nullable=True)
    account_id: int | None = reference_to("account", nullable=True, index=False)
    dedupe_key: str = short(128)
    request_token: str | None = short(128, nullable=True, default=None)
    occurred_at: datetime | None = when(nullable=True)
    received_at: datetime = when()
    payload: dict[str, Any] = document()
    # The text this event was answered with (an SMS opt-out's confirmation), so that a
    # retried request, whose first answer never reached the provider, gets it again.
    answer: str | None = text(nullable=True)


class SuppressionReason(StrEnum):
    STOP = "stop"  # an SMS opt-out keyword
    UNSUBSCRIBE = "unsubscribe"
    BOUNCE = "bounce"
    COMPLAINT = "complaint"  # spam report
    CARRIER_OPT_OUT = "carrier_opt_out"
    INVALID = "invalid"  # the address cannot receive this channel
    MANUAL = "manual"


class Suppression(SQLModel, table=True):
    """An address that must not receive a channel, with the message that said so."""

    __table_args__ = (Index("ix_suppression_address", "address", "channel"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = short(8)
    address: str = short(320)
    reason: str = short(24)
    source: str = short(500)
    provider_event_id: int | None = reference_to("provider_event", nullable=True, index=False)
    created_at: datetime = when()
    lifted_at: datetime | None = when(nullable=True)
    lifted_reason: str | None = short(200, nullable=True, default=None)


class InboxStatus(StrEnum):
    OPEN = "open"
    HANDLED = "handled"


class InboxMessage(SQLModel, table=True):
    """A debtor's message for an agent (or an agent's answer in the same thread)."""

    __tablename__ = "inbox_message"
    __table_args__ = (
        Index("ix_inbox_message_status", "status", "received_at"),
        Index("ix_inbox_message_account", "account_id", "received_at"),
        # One debtor's message is stored once per account with the sender's address, each
        # copy naming the same event: answering or handling one finds the others by it.
        Index("ix_inbox_message_event", "provider_event_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int | None = reference_to("account", nullable=True, index=False)
    provider_event_id: int | None = reference_to("provider_event", nullable=True, index=False)
    attempt_id: int | None = reference_to("attempt", nullable=True, index=False)  # answered
    direction: str = short(8, default="inbound")
    channel: str = short(8)
    from_address: str = short(320)
    to_address: str = short(320)
    subject: str | None = short(300, nullable=True, default=None)
    body: str = text()
    intent: str | None = short(24, nullable=True, default=None)
    status: str = short(16, default=InboxStatus.OPEN)
    received_at: datetime = when()
    handled_by: int | None = reference_to("user", nullable=True, index=False)
    handled_at: datetime | None = when(nullable=True)
