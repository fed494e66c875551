"""Apply normalized provider events: attempt status, suppressions, replies, opt-outs.

Webhooks (and the outbox's simulated deliveries) arrive here as ``ProviderEvent`` values
after verification and parsing. Each is stored once (its dedupe key is unique: the same
event delivered twice counts once), then applied:

- an attempt's status only moves forward (``delivered`` never goes back to ``sent``); an
  ``unknown`` attempt is resolved by the provider's word about it;
- a call's outcome (no answer, voicemail, conversation, busy...) is kept for the
  compliance history;
- an opt-out, unsubscribe, bounce or spam report suppresses the address, and an opt-out is
  recorded as a compliance event on every account that uses the address; an opt-in lifts
  the debtor's own suppressions of it;
- a reply lands in the agents' inbox and pauses the account until an agent resumes it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, or_, select, update

from outreach.compliance_store import attempts, inbox_messages
from outreach.models import AttemptStatus, ContactStatus, SuppressionReason
from outreach.models import ProviderEvent as ProviderEventRow
from outreach.providers.base import EventType, ProviderEvent
from outreach.store import (
    accounts,
    compliance_events,
    contact_points,
    insert_ignoring_duplicates,
    suppressions,
    table_of,
)

log = logging.getLogger("outreach.events")
provider_events = table_of(ProviderEventRow)

# A reply pauses the account's outreach this long unless an agent resumes it sooner.
REPLY_PAUSE = timedelta(days=14)

_STATUS_OF = {
    EventType.SENT: AttemptStatus.SENT,
    EventType.DELIVERED: AttemptStatus.DELIVERED,
    EventType.COMPLETED: AttemptStatus.DELIVERED,
    EventType.UNDELIVERED: AttemptStatus.UNDELIVERED,
    EventType.NO_ANSWER: AttemptStatus.UNDELIVERED,
    EventType.BUSY: AttemptStatus.UNDELIVERED,
    EventType.FAILED: AttemptStatus.FAILED,
    EventType.BOUNCED: AttemptStatus.FAILED,
    EventType.DROPPED: AttemptStatus.FAILED,
}
# Later states outrank earlier ones; final states do not move.
_RANK = {
    AttemptStatus.QUEUED: 0,
    AttemptStatus.SENDING: 1,
    AttemptStatus.UNKNOWN: 1,
    AttemptStatus.SENT: 2,
    AttemptStatus.UNDELIVERED: 3,
    AttemptStatus.FAILED: 3,
    AttemptStatus.DELIVERED: 3,
}
_OPT_OUT = {
    EventType.OPTED_OUT: SuppressionReason.STOP,
    EventType.UNSUBSCRIBED: SuppressionReason.UNSUBSCRIBE,
    EventType.COMPLAINED: SuppressionReason.COMPLAINT,
}


@dataclass
class Applied:
    stored: int = 0
    duplicates: int = 0


def apply_events(engine: Engine, events: Sequence[ProviderEvent], now: datetime) -> Applied:
    """Store and apply each event once, all in one transaction."""
    applied = Applied()
    with engine.begin() as connection:
        for event in events:
            if _store(connection, event, now):
                applied.stored += 1
                _apply(connection, event, now)
            else:
                applied.duplicates += 1
    return applied


def _store(connection: Connection, event: ProviderEvent, now: datetime) -> bool:
    attempt = _attempt_of(connection, event)
    result = connection.execute(
        insert_ignoring_duplicates(connection, provider_events).values(
            provider=event.provider,
            kind=event.kind,
            event_type=event.event_type.value,
            raw_status=(event.raw_status or "")[:64] or None,
            provider_message_id=event.provider_message_id,
            attempt_id=attempt.id if attempt is not None else None,
            account_id=attempt.account_id if attempt is not None else None,
            dedupe_key=event.dedupe_key,
            occurred_at=event.occurred_at,
            received_at=now,
            payload=dict(event.payload),
        )
    )
    return bool(result.rowcount)


def _attempt_of(connection: Connection, event: ProviderEvent) -> Any:
    if event.attempt_id is not None:
        found = connection.execute(
            select(attempts).where(attempts.c.id == event.attempt_id)
        ).first()
        if found is not None:
            return found
    if event.provider_message_id:
        return connection.execute(
            select(attempts).where(attempts.c.provider_message_id == event.provider_message_id)
        ).first()
    return None


def _apply(connection: Connection, event: ProviderEvent, now: datetime) -> None:
    attempt = _attempt_of(connection, event)
    if attempt is not None:
        _move_attempt(connection, attempt, event, now)
    channel = _channel_of(event, attempt)
    if event.suppression or event.event_type in _OPT_OUT:
        _suppress(connection, event, channel, now)
    if event.event_type == EventType.OPTED_IN:
        _opt_in(connection, event, channel, now)
    if event.contact_status and event.to_address and attempt is not None:
        connection.execute(
            update(contact_points)
            .where(
                contact_points.c.account_id == attempt.account_id,
                contact_points.c.address == event.to_address,
                contact_points.c.status == ContactStatus.ACTIVE,
            )
            .values(status=event.contact_status, updated_at=now)
        )
    if event.event_type == EventType.REPLIED:
        _reply(connection, event, attempt, channel, now)


def _move_attempt(
    connection: Connection, attempt: Any, event: ProviderEvent, now: datetime
) -> None:
    values: dict[str, Any] = {}
    status = _STATUS_OF.get(event.event_type)
    if status is not None and _RANK.get(status, 0) > _RANK.get(attempt.status, 3):
        values["status"] = status
    if attempt.provider_message_id is None and event.provider_message_id:
        values["provider_message_id"] = event.provider_message_id
    if event.outcome and event.outcome != attempt.outcome:
        values["outcome"] = event.outcome
    if event.error_code and status in (AttemptStatus.FAILED, AttemptStatus.UNDELIVERED):
        values["error_code"] = event.error_code[:32]
    if values:
        connection.execute(
            update(attempts).where(attempts.c.id == attempt.id).values(updated_at=now, **values)
        )


_FROM_DEBTOR = (EventType.REPLIED, EventType.OPTED_OUT, EventType.OPTED_IN,
                EventType.HELP_REQUESTED)  # fmt: skip


def _address_of_debtor(event: ProviderEvent) -> str | None:
    """The debtor's own address: the sender of what the debtor sent, else the recipient."""
    if event.event_type in _FROM_DEBTOR and event.from_address:
        return event.from_address
    return event.to_address


def _channel_of(event: ProviderEvent, attempt: Any) -> str:
    if attempt is not None:
        return str(attempt.channel)
    if "@" in (_address_of_debtor(event) or ""):
        return "email"
    return "voice" if event.provider == "twilio_voice" else "sms"


def _accounts_using(connection: Connection, channel: str, address: str) -> list[int]:
    return list(
        connection.execute(
            select(contact_points.c.account_id)
            .where(contact_points.c.channel == channel, contact_points.c.address == address)
            .distinct()
        ).scalars()
    )


def _suppress(connection: Connection, event: ProviderEvent, channel: str, now: datetime) -> None:
    address = _address_of_debtor(event)
    if not address:
        return
    reason = event.suppression or _OPT_OUT[event.event_type].value
    active = connection.execute(
        select(suppressions.c.id).where(
            suppressions.c.channel == channel,
            suppressions.c.address == address,
            suppressions.c.reason == reason,
            suppressions.c.lifted_at.is_(None),
        )
    ).first()
    if active is None:
        connection.execute(
            suppressions.insert().values(
                channel=channel, address=address, reason=reason,
                source=f"{event.provider} {event.kind} {event.raw_status or ''}".strip()[:500],
                created_at=now,
            )
        )  # fmt: skip
    if reason in (SuppressionReason.STOP, SuppressionReason.UNSUBSCRIBE):
        for account_id in _accounts_using(connection, channel, address):
            connection.execute(
                compliance_events.insert().values(
                    account_id=account_id, kind="opt_out", channel=channel, address=address,
                    occurred_at=event.occurred_at, source=f"{event.provider} {event.kind}"[:200],
                    note=(event.body or "")[:500] or None,
                )
            )  # fmt: skip


def _opt_in(connection: Connection, event: ProviderEvent, channel: str, now: datetime) -> None:
    address = _address_of_debtor(event)
    if not address:
        return
    # Only the debtor's own word is lifted; bounces and complaints stay.
    connection.execute(
        update(suppressions)
        .where(
            suppressions.c.channel == channel,
            suppressions.c.address == address,
            suppressions.c.lifted_at.is_(None),
            or_(
                suppressions.c.reason == SuppressionReason.STOP,
                suppressions.c.reason == SuppressionReason.CARRIER_OPT_OUT,
            ),
        )
        .values(lifted_at=now, lifted_reason=f"opt-in by {event.provider}"[:200])
    )
    for account_id in _accounts_using(connection, channel, address):
        connection.execute(
            compliance_events.insert().values(
                account_id=account_id, kind="opt_in", channel=channel, address=address,
                occurred_at=event.occurred_at, source=f"{event.provider} {event.kind}"[:200],
            )
        )  # fmt: skip


def _reply(
    connection: Connection, event: ProviderEvent, attempt: Any, channel: str, now: datetime
) -> None:
    sender = event.from_address or ""
    account_ids = (
        [attempt.account_id]
        if attempt is not None
        else _accounts_using(connection, channel, sender)
    )
    for account_id in account_ids or [None]:
        connection.execute(
            inbox_messages.insert().values(
                account_id=account_id, channel=channel, from_address=sender[:320],
                to_address=(event.to_address or "")[:320], subject=event.subject,
                body=event.body or "", direction="inbound", status="open", received_at=now,
            )
        )  # fmt: skip
        if account_id is not None:
            connection.execute(
                update(accounts)
                .where(accounts.c.id == account_id)
                .values(
                    paused_until=now + REPLY_PAUSE,
                    pause_reason="a reply waits in the inbox",
                    updated_at=now,
                )
            )
    log.info("events: a %s reply from a debtor is in the inbox", channel)
